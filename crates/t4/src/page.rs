//! Whole pages: T.4 MH and MR with their EOL framing, fill and RTC (§4.1, §4.2), and T.6 MMR with EOFB; the
//! decoder recovers from corrupt lines as a fax receiver does.

use crate::bits::{BitReader, BitWriter};
use crate::runs::{Painter, changes_to_row, encode_1d, row_to_changes, run_of};
use crate::{Error, codes, mr};

/// How a page is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// T.4 one-dimensional (Modified Huffman).
    Mh,
    /// T.4 two-dimensional (Modified READ): one line in `k` is coded one-dimensionally (K = 2 at standard
    /// resolution, 4 at fine).
    Mr { k: u32 },
    /// T.6 (Modified Modified READ): every line two-dimensional, no EOL.
    Mmr,
}

/// A bilevel page in the shared bitmap convention (1 bit per pixel, rows padded to whole bytes, most
/// significant bit leftmost, 1 = black).
#[derive(Debug, Clone, Copy)]
pub struct PageRef<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

pub fn stride(width: u32) -> usize {
    (width as usize).div_ceil(8)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeOptions {
    pub coding: Coding,
    /// An EOL before each line (T.4 transmission, TIFF compression 3). MR always has them (each carries
    /// the tag bit saying how the line is coded); MMR never does.
    pub eol: bool,
    /// Fill bits so that every EOL ends on a byte boundary (TIFF T4Options bit 2).
    pub align_eol: bool,
    /// Each coded line (from its EOL to the next) at least this many bits: the minimum scan-line time of
    /// non-ECM transmission times the bit rate.
    pub min_line_bits: u32,
    /// End the page with RTC (T.4) or EOFB (T.6).
    pub end_marker: bool,
}

impl EncodeOptions {
    /// For fax transmission: EOLs, RTC / EOFB, no minimum.
    pub fn fax(coding: Coding) -> Self {
        Self {
            coding,
            eol: true,
            align_eol: false,
            min_line_bits: 0,
            end_marker: true,
        }
    }
}

fn check_page(page: &PageRef<'_>) -> Result<(), Error> {
    if page.width == 0 || page.width > crate::MAX_WIDTH {
        return Err(Error::BadWidth(page.width));
    }
    let need = stride(page.width)
        .checked_mul(page.height as usize)
        .ok_or(Error::TooLarge)?;
    if page.data.len() < need {
        return Err(Error::ShortBitmap {
            need,
            got: page.data.len(),
        });
    }
    Ok(())
}

/// Encodes a page.
pub fn encode(page: PageRef<'_>, o: &EncodeOptions) -> Result<Vec<u8>, Error> {
    check_page(&page)?;
    let s = stride(page.width);
    let mut w = BitWriter::with_capacity(page.data.len() / 8 + 64);
    // The changing elements of the line being coded and of the reference line, each followed by the three
    // sentinels of a sealed line (see `mr::make_reference`): room for the most a row has (one a pixel) and
    // them, allocated once, so finding a row's changes grows no vector.
    let row_changes = page.width as usize;
    let mut cur = vec![0u32; row_changes + 3];
    let mut reference = vec![page.width; row_changes + 3];
    let mut ref_len = 0usize;
    let framed = match o.coding {
        Coding::Mh => o.eol,
        Coding::Mr { .. } => true,
        Coding::Mmr => false,
    };
    let mut line_start = 0u64;
    let put_eol = |w: &mut BitWriter, line_start: &mut u64, tag: Option<bool>| {
        let used = w.bit_len() - *line_start;
        if *line_start > 0 && used < u64::from(o.min_line_bits) {
            w.zeros(u32::try_from(u64::from(o.min_line_bits) - used).unwrap_or(0));
        }
        if o.align_eol {
            let pad = (8 - (w.bit_len() + 12) % 8) % 8;
            w.zeros(pad as u32);
        }
        *line_start = w.bit_len().max(1);
        w.put(u32::from(codes::EOL.0), u32::from(codes::EOL.1));
        if let Some(one_d) = tag {
            w.put(u32::from(one_d), 1);
        }
    };
    for y in 0..page.height as usize {
        let row = &page.data[y * s..(y + 1) * s];
        if o.coding == Coding::Mh {
            // No reference line to keep.
            if framed {
                put_eol(&mut w, &mut line_start, None);
            }
            let n = row_to_changes(row, page.width, &mut cur);
            encode_1d(&mut w, &cur[..n], page.width);
            continue;
        }
        // MR codes one line in k one-dimensionally; MMR none (MH lines left the loop above).
        let one_d = matches!(o.coding, Coding::Mr { k } if y % k.max(1) as usize == 0);
        if framed {
            let tag = matches!(o.coding, Coding::Mr { .. }).then_some(one_d);
            put_eol(&mut w, &mut line_start, tag);
        }
        if !one_d && y > 0 && row == &page.data[(y - 1) * s..y * s] {
            // The same pixels as the line above: every changing element is V0 (a single 1 bit), and so is
            // the line's end; the reference line stays as it is.
            w.ones(ref_len + 1);
            continue;
        }
        let n = row_to_changes(row, page.width, &mut cur);
        cur[n..n + 3].fill(page.width);
        if one_d {
            encode_1d(&mut w, &cur[..n], page.width);
        } else {
            mr::encode_line(&mut w, &cur[..n + 3], &reference[..ref_len + 3], page.width);
        }
        std::mem::swap(&mut cur, &mut reference);
        ref_len = n;
    }
    if o.end_marker {
        match o.coding {
            Coding::Mmr => {
                w.put(u32::from(codes::EOL.0), u32::from(codes::EOL.1));
                w.put(u32::from(codes::EOL.0), u32::from(codes::EOL.1));
            }
            Coding::Mh | Coding::Mr { .. } => {
                let tag = matches!(o.coding, Coding::Mr { .. }).then_some(true);
                for _ in 0..6 {
                    put_eol(&mut w, &mut line_start, tag);
                }
            }
        }
    }
    Ok(w.finish())
}

/// Decodes one one-dimensional line: a white run and a black run at a time, so each run's table is known
/// where it is read. The black runs are painted into `row` (white) as they are read; with `LIST`, the
/// changing elements go to `out` as well (the reference line for MR's next lines). `Some(strict)` for a
/// good line, where `strict` says no run but the first was empty (the changing elements increase strictly;
/// see [`mr::decode_line`]); without `LIST` it means nothing.
fn decode_1d<const LIST: bool>(
    r: &mut BitReader<'_>,
    width: u32,
    out: &mut Vec<u32>,
    row: &mut [u8],
) -> Option<bool> {
    // The reader in registers for the line, stored back whatever happens.
    let mut br = *r;
    let result = decode_1d_with::<LIST>(&mut br, width, out, row);
    *r = br;
    result
}

#[inline(always)]
fn decode_1d_with<const LIST: bool>(
    r: &mut BitReader<'_>,
    width: u32,
    out: &mut Vec<u32>,
    row: &mut [u8],
) -> Option<bool> {
    if LIST {
        out.clear();
    }
    let mut p = Painter::new(row);
    let mut empty = false;
    let mut a0 = run_of::<false>(r)?;
    loop {
        if a0 >= width {
            p.finish();
            return (a0 == width).then_some(!empty);
        }
        if LIST {
            out.push(a0);
        }
        let black = run_of::<true>(r)?;
        empty |= LIST && black == 0;
        let end = a0 + black;
        if end >= width {
            p.paint(a0, width);
            p.finish();
            return (end == width).then_some(!empty);
        }
        p.paint(a0, end);
        a0 = end;
        if LIST {
            out.push(a0);
        }
        let white = run_of::<false>(r)?;
        empty |= LIST && white == 0;
        a0 += white;
    }
}

/// How the coded data is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    pub coding: Coding,
    pub width: u32,
    /// Lines expected (TIFF strips); `None` for a fax page, which ends at RTC / EOFB or the data's end.
    pub height: Option<u32>,
    /// Each line starts on a byte boundary and has no EOL (TIFF compression 2).
    pub aligned_rows: bool,
    /// At most this many lines, whatever the data says (decompression bombs).
    pub max_height: u32,
}

impl DecodeOptions {
    /// A fax page of unknown length.
    pub fn fax(coding: Coding, width: u32) -> Self {
        Self {
            coding,
            width,
            height: None,
            aligned_rows: false,
            max_height: crate::MAX_HEIGHT,
        }
    }
}

/// A decoded page and what a receiver's copy-quality check needs (T.30 §5.3.6.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub width: u32,
    pub data: Vec<u8>,
    pub stats: DecodeStats,
}

/// How a page's coded data ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEnd {
    /// RTC (T.4 §4.1.4) or EOFB (T.6 §2.4.1.1): the sender said the page is over.
    Terminator,
    /// All the lines expected were there (a TIFF strip's rows, or the `max_height` limit).
    Rows,
    /// The data ran out first: whatever followed is missing.
    DataEnd,
    /// A T.6 coding error: T.6 has no point to resynchronise at, so the rest of the page is lost.
    Error,
}

/// Lines appended to a caller's buffer, and the copy-quality counts.
struct Out<'v> {
    width: u32,
    stride: usize,
    data: &'v mut Vec<u8>,
    /// Where this page's (or strip's) first line starts in `data`.
    start: usize,
    rows: u32,
    bad: u32,
    run_bad: u32,
    max_run_bad: u32,
    first_bad: Option<u32>,
    max_rows: u32,
}

impl Out<'_> {
    fn push_good(&mut self, changes: &[u32]) -> bool {
        if self.rows >= self.max_rows {
            return false;
        }
        let start = self.data.len();
        self.data.resize(start + self.stride, 0);
        changes_to_row(changes, self.width, &mut self.data[start..]);
        self.rows += 1;
        self.run_bad = 0;
        true
    }

    /// A new row, white, for a decoder to paint; then [`Out::commit_row`] or [`Out::drop_row`]. (The
    /// decoders test `max_rows` before each line.)
    fn begin_row(&mut self) -> &mut [u8] {
        let start = self.data.len();
        self.data.resize(start + self.stride, 0);
        &mut self.data[start..]
    }

    /// The row begun is a good line.
    fn commit_row(&mut self) {
        self.rows += 1;
        self.run_bad = 0;
    }

    /// The row begun is not a line after all.
    fn drop_row(&mut self) {
        self.data.truncate(self.data.len() - self.stride);
    }

    /// A good line with the same pixels as the line above (white for the first): a line decoded as its
    /// reference line again. (The line above always has the reference line's pixels: a good line becomes
    /// the reference, and a bad one repeats the line above and leaves the reference as it is.)
    fn push_same(&mut self) -> bool {
        if !self.repeat_above() {
            return false;
        }
        self.run_bad = 0;
        true
    }

    /// A bad line: the line above again (white for the first).
    fn push_bad(&mut self) -> bool {
        if !self.repeat_above() {
            return false;
        }
        self.first_bad.get_or_insert(self.rows - 1);
        self.bad += 1;
        self.run_bad += 1;
        self.max_run_bad = self.max_run_bad.max(self.run_bad);
        true
    }

    /// Appends the line above again (white for the first) as a new row, unless the page is full.
    fn repeat_above(&mut self) -> bool {
        if self.rows >= self.max_rows {
            return false;
        }
        let start = self.data.len();
        if start >= self.start + self.stride {
            self.data.extend_from_within(start - self.stride..start);
        } else {
            self.data.resize(start + self.stride, 0);
        }
        self.rows += 1;
        true
    }

    fn stats(&self, end: PageEnd) -> DecodeStats {
        DecodeStats {
            height: self.rows,
            bad_lines: self.bad,
            max_consecutive_bad: self.max_run_bad,
            first_bad: self.first_bad,
            end,
        }
    }
}

/// Consumes fill and an EOL if they come next; answers whether one did.
fn take_eol(r: &mut BitReader<'_>) -> bool {
    let w = r.peek(32);
    if w >> 21 != 0 {
        return false;
    }
    if w != 0 {
        // The usual EOL: fill and the 1 within the next 32 bits (a 1 is always real data, never the zeros
        // read past the end).
        r.consume(w.leading_zeros() + 1);
        return true;
    }
    r.skip_zeros();
    if r.at_end() {
        return false;
    }
    r.consume(1);
    true
}

/// Skips to just after the next EOL (eleven or more zeros and a 1); false at the end of the data.
fn resync(r: &mut BitReader<'_>) -> bool {
    while !r.at_end() {
        let z = r.skip_zeros();
        if r.at_end() {
            return false;
        }
        r.consume(1);
        if z >= 11 {
            return true;
        }
    }
    false
}

/// Decodes a page.
pub fn decode(data: &[u8], o: &DecodeOptions) -> Result<Decoded, Error> {
    let expected = o.height.unwrap_or(0).min(o.max_height).min(8192) as usize;
    let mut out = Vec::with_capacity(stride(o.width.min(crate::MAX_WIDTH)) * expected);
    let stats = decode_into(data, o, &mut out)?;
    Ok(Decoded {
        width: o.width,
        data: out,
        stats,
    })
}

/// What [`decode_into`] appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeStats {
    /// Lines appended.
    pub height: u32,
    /// Lines that could not be decoded (each replaced by the line above).
    pub bad_lines: u32,
    /// The longest run of consecutive bad lines.
    pub max_consecutive_bad: u32,
    /// The row of the first bad line.
    pub first_bad: Option<u32>,
    /// How the data ended.
    pub end: PageEnd,
}

impl DecodeStats {
    /// The page ended with RTC / EOFB, or with all the lines expected.
    pub fn complete(&self) -> bool {
        matches!(self.end, PageEnd::Terminator | PageEnd::Rows)
    }
}

/// [`decode`], appending the lines to `out` (a TIFF page's strips go one after another into one buffer).
/// On error nothing is appended.
pub fn decode_into(
    data: &[u8],
    o: &DecodeOptions,
    out: &mut Vec<u8>,
) -> Result<DecodeStats, Error> {
    if o.width == 0 || o.width > crate::MAX_WIDTH {
        return Err(Error::BadWidth(o.width));
    }
    let max_rows = o.height.unwrap_or(u32::MAX).min(o.max_height);
    let start = out.len();
    let mut out = Out {
        width: o.width,
        stride: stride(o.width),
        data: out,
        start,
        rows: 0,
        bad: 0,
        run_bad: 0,
        max_run_bad: 0,
        first_bad: None,
        max_rows,
    };
    let mut r = BitReader::new(data);
    let end = match o.coding {
        Coding::Mmr => decode_mmr(&mut r, &mut out),
        Coding::Mh | Coding::Mr { .. } => decode_t4(&mut r, o, &mut out),
    };
    // Lines a TIFF strip promised but the data did not hold count as bad, as a receiver would print them.
    let end = match (end, o.height) {
        (PageEnd::DataEnd, Some(h)) if out.rows >= h => PageEnd::Rows,
        _ => end,
    };
    if let Some(h) = o.height {
        while out.rows < h.min(o.max_height) {
            out.push_bad();
        }
    }
    if out.rows == 0 && !matches!(end, PageEnd::Terminator | PageEnd::Rows) {
        return Err(Error::NoLines);
    }
    Ok(out.stats(end))
}

/// How [`decode_t4`] got a line's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinePixels {
    /// In the row begun for it.
    Painted,
    /// The line above again.
    Same,
    /// As changing elements.
    Coded,
}

fn decode_t4(r: &mut BitReader<'_>, o: &DecodeOptions, out: &mut Out<'_>) -> PageEnd {
    let two_d = matches!(o.coding, Coding::Mr { .. });
    // Room for most lines' changing elements from the start.
    let mut cur = Vec::with_capacity(o.width as usize / 4 + 8);
    let mut reference = mr::white_reference(o.width);
    reference.reserve(cur.capacity());
    // The reference line's changing elements increase strictly (see `mr::decode_line`).
    let mut strict = true;
    // After a corrupt line, two-dimensional lines cannot be trusted until a one-dimensional one.
    let mut lost = false;
    // Set when resynchronisation has just consumed an EOL.
    let mut resynced = false;
    loop {
        if out.rows >= out.max_rows {
            return PageEnd::Rows;
        }
        if o.aligned_rows {
            r.align();
        }
        let mut saw_eol = std::mem::take(&mut resynced);
        if !o.aligned_rows && take_eol(r) {
            if saw_eol {
                return PageEnd::Terminator;
            }
            saw_eol = true;
        }
        if r.at_end() {
            return PageEnd::DataEnd;
        }
        let one_d = !two_d || r.bit() == 1;
        // No code starts with eleven zeros: an EOL straight after an EOL (and tag) is RTC.
        if saw_eol && r.peek(11) == 0 {
            return PageEnd::Terminator;
        }
        // How the line came out, and whether its changing elements increase strictly.
        let decoded = if one_d {
            // Painted straight into a new row (which a bad line then replaces).
            let row = out.begin_row();
            let d = if two_d {
                decode_1d::<true>(r, o.width, &mut cur, row)
            } else {
                decode_1d::<false>(r, o.width, &mut cur, row)
            };
            if d.is_none() {
                out.drop_row();
            }
            d.map(|s| (LinePixels::Painted, s))
        } else if lost {
            None
        } else {
            match mr::decode_line(r, &reference, strict, o.width, &mut cur) {
                Ok(mr::Line::Same) => Some((LinePixels::Same, true)),
                Ok(mr::Line::Coded) => Some((LinePixels::Coded, true)),
                Err(_) => None,
            }
        };
        // With EOLs, a good line is followed by fill and an EOL, or by the data's end.
        let framed = !saw_eol || r.at_end() || r.peek(11) == 0;
        if let Some((how, cur_strict)) = decoded {
            if framed {
                lost = false;
                match how {
                    LinePixels::Painted => out.commit_row(),
                    // The reference line stays as it is.
                    LinePixels::Same => {
                        if !out.push_same() {
                            return PageEnd::Rows;
                        }
                        continue;
                    }
                    LinePixels::Coded => {
                        if !out.push_good(&cur) {
                            return PageEnd::Rows;
                        }
                    }
                }
                if two_d {
                    mr::make_reference(&mut cur, &mut reference, o.width);
                    strict = cur_strict;
                }
                continue;
            }
            if how == LinePixels::Painted {
                out.drop_row();
            }
        }
        lost |= two_d;
        if !out.push_bad() {
            return PageEnd::Rows;
        }
        if !o.aligned_rows {
            if !resync(r) {
                return PageEnd::DataEnd;
            }
            resynced = true;
        }
    }
}

fn decode_mmr(r: &mut BitReader<'_>, out: &mut Out<'_>) -> PageEnd {
    // Room for most lines' changing elements from the start.
    let mut cur = Vec::with_capacity(out.width as usize / 4 + 8);
    let mut reference = mr::white_reference(out.width);
    reference.reserve(cur.capacity());
    loop {
        if out.rows >= out.max_rows {
            return PageEnd::Rows;
        }
        if r.peek(24) == (u32::from(codes::EOL.0) << 12 | u32::from(codes::EOL.0)) {
            return PageEnd::Terminator;
        }
        if r.at_end() {
            return PageEnd::DataEnd;
        }
        match mr::decode_line(r, &reference, true, out.width, &mut cur) {
            Ok(mr::Line::Same) => {
                // The reference line stays as it is.
                if !out.push_same() {
                    return PageEnd::Rows;
                }
            }
            Ok(mr::Line::Coded) => {
                if !out.push_good(&cur) {
                    return PageEnd::Rows;
                }
                mr::make_reference(&mut cur, &mut reference, out.width);
            }
            Err(_) => {
                out.push_bad();
                // A line cut by the end of the data, or a coding error, after which T.6 has no
                // resynchronisation point: the rest of the page is lost.
                return if r.at_end() {
                    PageEnd::DataEnd
                } else {
                    PageEnd::Error
                };
            }
        }
    }
}
