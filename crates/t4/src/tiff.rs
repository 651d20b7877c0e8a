//! TIFF Class F: reading any bilevel TIFF that libtiff writes, and writing multi-page TIFF-F.
//!
//! Read: both byte orders, strips, FillOrder 1 and 2, Photometric WhiteIsZero and BlackIsZero,
//! compression 1 (none), 2 (CCITT RLE), 3 (T.4, one- or two-dimensional, with or without byte-aligned
//! EOLs), 4 (T.6) and 32773 (PackBits). Every offset, count and size is checked before use and bounded by
//! [`ReadLimits`]. Write: one strip per page, T.4 with byte-aligned EOLs or T.6, FillOrder 1, WhiteIsZero,
//! with the Class F fields (resolution, PageNumber, BadFaxLines, CleanFaxData, ConsecutiveBadFaxLines,
//! Software, DateTime).

use crate::Error;
use crate::page::{Coding, DecodeOptions, EncodeOptions, PageRef, decode_into, encode, stride};
use std::collections::HashSet;

/// Bounds on what a file may make the reader allocate or do.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max_pages: usize,
    /// Pixels in one page.
    pub max_pixels: u64,
}

impl Default for ReadLimits {
    fn default() -> Self {
        // 1000 pages; A3 at 400 dpi is about 31 M pixels.
        Self {
            max_pages: 1000,
            max_pixels: 64 * 1024 * 1024,
        }
    }
}

/// One page read from a file.
#[derive(Debug, Clone, PartialEq)]
pub struct TiffPage {
    pub width: u32,
    pub height: u32,
    /// The shared bitmap convention: 1 bit per pixel, rows padded to bytes, 1 = black.
    pub data: Vec<u8>,
    pub compression: u16,
    /// Pixels per `resolution_unit` (2: inch, 3: centimetre), as stored.
    pub x_resolution: Option<f64>,
    pub y_resolution: Option<f64>,
    pub resolution_unit: u16,
    /// (page, total) as stored in PageNumber.
    pub page_number: Option<(u16, u16)>,
    pub bad_fax_lines: Option<u32>,
    pub clean_fax_data: Option<u16>,
    pub consecutive_bad_fax_lines: Option<u32>,
    pub software: Option<String>,
    pub date_time: Option<String>,
    /// Lines this reader could not decode (replaced by the line above).
    pub decode_bad_lines: u32,
}

impl TiffPage {
    pub fn as_page(&self) -> PageRef<'_> {
        PageRef {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }

    /// Vertical resolution in lines per inch, whatever unit the file used.
    pub fn y_dpi(&self) -> Option<f64> {
        let f = if self.resolution_unit == 3 { 2.54 } else { 1.0 };
        self.y_resolution.map(|r| r * f)
    }

    pub fn x_dpi(&self) -> Option<f64> {
        let f = if self.resolution_unit == 3 { 2.54 } else { 1.0 };
        self.x_resolution.map(|r| r * f)
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Tiff(msg.into())
}

struct Reader<'a> {
    data: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn u16_at(&self, off: usize) -> Result<u16, Error> {
        let b = self
            .data
            .get(off..off + 2)
            .ok_or_else(|| bad(format!("offset {off} is past the end of the file")))?;
        let b = [b[0], b[1]];
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32_at(&self, off: usize) -> Result<u32, Error> {
        let b = self
            .data
            .get(off..off + 4)
            .ok_or_else(|| bad(format!("offset {off} is past the end of the file")))?;
        let b = [b[0], b[1], b[2], b[3]];
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

/// One directory entry, its values read.
struct Entry {
    tag: u16,
    values: Vec<u64>,
    rationals: Vec<f64>,
    text: Option<String>,
}

fn type_size(t: u16) -> Option<usize> {
    match t {
        1 | 2 | 6 | 7 => Some(1),
        3 | 8 => Some(2),
        4 | 9 | 11 => Some(4),
        5 | 10 | 12 => Some(8),
        _ => None,
    }
}

fn read_entry(r: &Reader<'_>, at: usize) -> Result<Option<Entry>, Error> {
    let tag = r.u16_at(at)?;
    let typ = r.u16_at(at + 2)?;
    let count = r.u32_at(at + 4)? as usize;
    let Some(size) = type_size(typ) else {
        return Ok(None);
    };
    // Bounded by the file: a value array cannot be larger than the file holding it.
    let total = size
        .checked_mul(count)
        .filter(|t| *t <= r.data.len())
        .ok_or_else(|| bad(format!("tag {tag} claims {count} values")))?;
    let base = if total <= 4 {
        at + 8
    } else {
        r.u32_at(at + 8)? as usize
    };
    if base.checked_add(total).is_none_or(|end| end > r.data.len()) {
        return Err(bad(format!("tag {tag} points past the end of the file")));
    }
    let mut e = Entry {
        tag,
        values: Vec::new(),
        rationals: Vec::new(),
        text: None,
    };
    match typ {
        2 => {
            let raw = &r.data[base..base + total];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            e.text = Some(String::from_utf8_lossy(&raw[..end]).into_owned());
        }
        1 | 6 | 7 => {
            e.values = r.data[base..base + total]
                .iter()
                .map(|b| u64::from(*b))
                .collect()
        }
        3 | 8 => {
            e.values = (0..count)
                .map(|i| r.u16_at(base + 2 * i).map(u64::from))
                .collect::<Result<_, _>>()?
        }
        4 | 9 => {
            e.values = (0..count)
                .map(|i| r.u32_at(base + 4 * i).map(u64::from))
                .collect::<Result<_, _>>()?
        }
        5 | 10 => {
            for i in 0..count {
                let (n, d) = (r.u32_at(base + 8 * i)?, r.u32_at(base + 8 * i + 4)?);
                e.rationals.push(if d == 0 {
                    0.0
                } else {
                    f64::from(n) / f64::from(d)
                });
            }
        }
        _ => {}
    }
    Ok(Some(e))
}

fn first(entries: &[Entry], tag: u16) -> Option<u64> {
    entries
        .iter()
        .find(|e| e.tag == tag)
        .and_then(|e| e.values.first().copied())
}

fn all(entries: &[Entry], tag: u16) -> Option<&[u64]> {
    entries
        .iter()
        .find(|e| e.tag == tag)
        .map(|e| e.values.as_slice())
}

/// A TIFF whose directories have been walked and checked once; pages are decoded one at a time with
/// [`TiffFile::page`], so a long document never needs all its bitmaps in memory. `D` is the file's bytes,
/// borrowed or owned (a `Vec<u8>`, a memory map, shared bytes).
pub struct TiffFile<D> {
    data: D,
    big_endian: bool,
    limits: ReadLimits,
    pages: Vec<Vec<Entry>>,
}

impl<D> std::fmt::Debug for TiffFile<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TiffFile")
            .field("pages", &self.pages.len())
            .finish()
    }
}

impl<D: AsRef<[u8]>> TiffFile<D> {
    /// Walks the directory chain, checking every page's size, sample layout and strips against the limits
    /// before anything is decoded.
    pub fn open(data: D, limits: &ReadLimits) -> Result<Self, Error> {
        Self::try_open(data, limits).map_err(|(e, _)| e)
    }

    /// [`TiffFile::open`] that gives the bytes back with the error (a caller can try another reader).
    pub fn try_open(data: D, limits: &ReadLimits) -> Result<Self, (Error, D)> {
        match walk(data.as_ref(), limits) {
            Ok((big_endian, pages)) => Ok(TiffFile {
                data,
                big_endian,
                limits: *limits,
                pages,
            }),
            Err(e) => Err((e, data)),
        }
    }

    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Decodes page `index` (from 0).
    pub fn page(&self, index: usize) -> Result<TiffPage, Error> {
        let e = self
            .pages
            .get(index)
            .ok_or_else(|| bad(format!("there is no page {}", index + 1)))?;
        let r = Reader {
            data: self.data.as_ref(),
            big_endian: self.big_endian,
        };
        read_page(&r, e, &self.limits)
    }
}

/// The byte order and every page's directory entries.
fn walk(data: &[u8], limits: &ReadLimits) -> Result<(bool, Vec<Vec<Entry>>), Error> {
    let big_endian = match data.get(..4) {
        Some([b'I', b'I', 42, 0]) => false,
        Some([b'M', b'M', 0, 42]) => true,
        Some([b'I', b'I', 43, 0] | [b'M', b'M', 0, 43]) => {
            return Err(Error::Unsupported("BigTIFF".into()));
        }
        _ => return Err(bad("not a TIFF file (no II*/MM* header)")),
    };
    let r = Reader { data, big_endian };
    let mut next = r.u32_at(4)? as usize;
    let mut seen = HashSet::new();
    let mut pages = Vec::new();
    while next != 0 {
        if !seen.insert(next) {
            return Err(bad("the directory chain loops"));
        }
        if pages.len() >= limits.max_pages {
            return Err(Error::TooManyPages {
                limit: limits.max_pages,
            });
        }
        let n = usize::from(r.u16_at(next)?);
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            if let Some(e) = read_entry(&r, next + 2 + 12 * i)? {
                entries.push(e);
            }
        }
        next = r.u32_at(next + 2 + 12 * n)? as usize;
        // Thumbnails and masks (NewSubfileType bit 0 or 2) are not pages.
        if first(&entries, 254).is_some_and(|t| t & 0b101 != 0) {
            continue;
        }
        layout(&entries, limits)?;
        pages.push(entries);
    }
    if pages.is_empty() {
        return Err(bad("the file has no pages"));
    }
    Ok((big_endian, pages))
}

/// Reads every page of a bilevel TIFF.
pub fn read(data: &[u8], limits: &ReadLimits) -> Result<Vec<TiffPage>, Error> {
    let file = TiffFile::open(data, limits)?;
    (0..file.page_count()).map(|i| file.page(i)).collect()
}

/// What decoding a page needs, checked.
struct Layout<'e> {
    width: u32,
    height: u32,
    compression: u16,
    photometric: u64,
    fill_order: u64,
    t4_options: u64,
    rows_per_strip: u32,
    strips: usize,
    offsets: &'e [u64],
    counts: &'e [u64],
}

fn layout<'e>(e: &'e [Entry], limits: &ReadLimits) -> Result<Layout<'e>, Error> {
    let width = first(e, 256).ok_or_else(|| bad("ImageWidth is missing"))?;
    let height = first(e, 257).ok_or_else(|| bad("ImageLength is missing"))?;
    if width == 0 || height == 0 {
        return Err(bad(format!("the page is {width} x {height} pixels")));
    }
    if width.saturating_mul(height) > limits.max_pixels {
        return Err(Error::PageTooLarge {
            width,
            height,
            limit: limits.max_pixels,
        });
    }
    if width > u64::from(crate::MAX_WIDTH) || height > u64::from(u32::MAX) {
        return Err(Error::Unsupported(format!("lines of {width} pixels")));
    }
    let (width, height) = (width as u32, height as u32);
    if first(e, 258).unwrap_or(1) != 1 || first(e, 277).unwrap_or(1) != 1 {
        return Err(Error::Unsupported(
            "a TIFF that is not bilevel (BitsPerSample and SamplesPerPixel must be 1)".into(),
        ));
    }
    if all(e, 322).is_some() || all(e, 324).is_some() {
        return Err(Error::Unsupported("tiled TIFF".into()));
    }
    let compression = first(e, 259).unwrap_or(1) as u16;
    let photometric = first(e, 262).unwrap_or(0);
    let fill_order = first(e, 266).unwrap_or(1);
    let t4_options = first(e, 292).unwrap_or(0);
    let rows_per_strip = first(e, 278)
        .unwrap_or(u64::from(u32::MAX))
        .clamp(1, u64::from(height)) as u32;
    let offsets = all(e, 273).ok_or_else(|| bad("StripOffsets is missing"))?;
    let counts = all(e, 279).ok_or_else(|| bad("StripByteCounts is missing"))?;
    let strips = height.div_ceil(rows_per_strip) as usize;
    if offsets.len() < strips || counts.len() < strips {
        return Err(bad(format!(
            "{strips} strips are needed; the file lists {}",
            offsets.len().min(counts.len())
        )));
    }
    if !matches!(compression, 1..=4 | 32773) {
        return Err(Error::Unsupported(format!("compression {compression}")));
    }
    if photometric > 1 {
        return Err(Error::Unsupported(format!(
            "photometric interpretation {photometric} for a bilevel page"
        )));
    }
    Ok(Layout {
        width,
        height,
        compression,
        photometric,
        fill_order,
        t4_options,
        rows_per_strip,
        strips,
        offsets,
        counts,
    })
}

fn read_page(r: &Reader<'_>, e: &[Entry], limits: &ReadLimits) -> Result<TiffPage, Error> {
    let Layout {
        width,
        height,
        compression,
        photometric,
        fill_order,
        t4_options,
        rows_per_strip,
        strips,
        offsets,
        counts,
    } = layout(e, limits)?;
    let st = stride(width);
    let mut out = Vec::with_capacity(st * height as usize);
    let mut decode_bad_lines = 0;
    for s in 0..strips {
        let rows = rows_per_strip.min(height - s as u32 * rows_per_strip);
        let (off, len) = (offsets[s] as usize, counts[s] as usize);
        let raw = r
            .data
            .get(off..off.saturating_add(len))
            .ok_or_else(|| bad(format!("strip {s} lies past the end of the file")))?;
        let reversed: Vec<u8>;
        let raw = if fill_order == 2 {
            reversed = raw.iter().map(|b| b.reverse_bits()).collect();
            &reversed
        } else {
            raw
        };
        let want = st * rows as usize;
        match compression {
            1 => {
                let got = raw
                    .get(..want)
                    .ok_or_else(|| bad(format!("strip {s} is shorter than its rows")))?;
                out.extend_from_slice(got);
            }
            32773 => {
                let got = unpack_bits(raw, want)
                    .ok_or_else(|| bad(format!("strip {s}: corrupt PackBits data")))?;
                out.extend_from_slice(&got);
            }
            2..=4 => {
                let coding = match compression {
                    2 => Coding::Mh,
                    3 if t4_options & 1 != 0 => Coding::Mr { k: 4 },
                    3 => Coding::Mh,
                    _ => Coding::Mmr,
                };
                let o = DecodeOptions {
                    coding,
                    width,
                    height: Some(rows),
                    aligned_rows: compression == 2,
                    max_height: rows,
                };
                let d =
                    decode_into(raw, &o, &mut out).map_err(|e| bad(format!("strip {s}: {e}")))?;
                decode_bad_lines += d.bad_lines;
            }
            other => return Err(Error::Unsupported(format!("compression {other}"))),
        }
    }
    if photometric == 1 {
        for b in &mut out {
            *b = !*b;
        }
    } else if photometric != 0 {
        return Err(Error::Unsupported(format!(
            "photometric interpretation {photometric} for a bilevel page"
        )));
    }
    // Pixels past the width in each row are white, whatever an uncompressed file or the inversion left
    // there: pages compare and encode the same however they were stored.
    if width % 8 != 0 {
        let keep = 0xFFu8 << (8 - width % 8);
        for row in out.chunks_mut(st) {
            if let Some(last) = row.last_mut() {
                *last &= keep;
            }
        }
    }
    let rational = |tag| {
        e.iter()
            .find(|x| x.tag == tag)
            .and_then(|x| x.rationals.first().copied())
    };
    let text = |tag| e.iter().find(|x| x.tag == tag).and_then(|x| x.text.clone());
    Ok(TiffPage {
        width,
        height,
        data: out,
        compression,
        x_resolution: rational(282),
        y_resolution: rational(283),
        resolution_unit: first(e, 296).unwrap_or(2) as u16,
        page_number: all(e, 297)
            .filter(|v| v.len() >= 2)
            .map(|v| (v[0] as u16, v[1] as u16)),
        bad_fax_lines: first(e, 326).map(|v| v as u32),
        clean_fax_data: first(e, 327).map(|v| v as u16),
        consecutive_bad_fax_lines: first(e, 328).map(|v| v as u32),
        software: text(305),
        date_time: text(306),
        decode_bad_lines,
    })
}

/// PackBits (TIFF 6 §9), stopping at `want` bytes.
fn unpack_bits(mut src: &[u8], want: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let (&n, rest) = src.split_first()?;
        src = rest;
        let n = n as i8;
        if n >= 0 {
            let k = n as usize + 1;
            out.extend_from_slice(src.get(..k)?);
            src = &src[k..];
        } else if n != -128 {
            let (&b, rest) = src.split_first()?;
            src = rest;
            out.extend(std::iter::repeat_n(b, (1 - i32::from(n)) as usize));
        }
    }
    out.truncate(want);
    Some(out)
}

/// One page to write.
#[derive(Debug, Clone, Copy)]
pub struct WritePage<'a> {
    pub page: PageRef<'a>,
    /// Horizontal and vertical resolution in pixels per inch (204 x 98 / 196 / 391 for fax).
    pub x_dpi: f64,
    pub y_dpi: f64,
    /// For received faxes: what the receiver's copy-quality check found.
    pub bad_fax_lines: Option<u32>,
    pub consecutive_bad_fax_lines: Option<u32>,
    /// 0: clean; 1: regenerated (bad lines replaced); 2: unclean.
    pub clean_fax_data: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// MH or MR become compression 3 (with byte-aligned EOLs), MMR compression 4; `None` writes the
    /// bitmaps uncompressed (compression 1, for tools that read nothing else).
    pub coding: Option<Coding>,
    pub software: Option<String>,
    /// "YYYY:MM:DD HH:MM:SS" as TIFF wants it.
    pub date_time: Option<String>,
}

/// A field value for the writer.
enum Val {
    Short(Vec<u16>),
    Long(u32),
    Rational(u32, u32),
    Ascii(String),
}

impl Val {
    /// (type, count, bytes of the value); values over 4 bytes are stored outside the directory.
    fn encode(&self) -> (u16, u32, Vec<u8>) {
        match self {
            Val::Short(v) => (
                3,
                v.len() as u32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            Val::Long(x) => (4, 1, x.to_le_bytes().to_vec()),
            Val::Rational(n, d) => (5, 1, [n.to_le_bytes(), d.to_le_bytes()].concat()),
            Val::Ascii(s) => (2, s.len() as u32 + 1, [s.as_bytes(), &[0]].concat()),
        }
    }
}

fn rational(v: f64) -> (u32, u32) {
    let v = if v.is_finite() && v > 0.0 { v } else { 0.0 };
    if (v - v.round()).abs() < 1e-9 {
        (v.round() as u32, 1)
    } else {
        ((v * 1000.0).round() as u32, 1000)
    }
}

fn io(e: std::io::Error) -> Error {
    Error::Io(e.to_string())
}

/// A page's strip as [`Writer`] stores it with `coding`: T.4 with byte-aligned EOLs (compression 3), T.6
/// with EOFB (compression 4), or the bitmap itself, borrowed (compression 1).
pub fn strip(
    page: PageRef<'_>,
    coding: Option<Coding>,
) -> Result<std::borrow::Cow<'_, [u8]>, Error> {
    match coding {
        None => {
            let len = stride(page.width)
                .checked_mul(page.height as usize)
                .ok_or(Error::TooLarge)?;
            let data = page.data.get(..len).ok_or(Error::ShortBitmap {
                need: len,
                got: page.data.len(),
            })?;
            Ok(std::borrow::Cow::Borrowed(data))
        }
        Some(coding) => {
            let opts = EncodeOptions {
                coding,
                eol: true,
                align_eol: true,
                min_line_bits: 0,
                end_marker: coding == Coding::Mmr,
            };
            encode(page, &opts).map(std::borrow::Cow::Owned)
        }
    }
}

/// Writes a TIFF Class F file page by page into any byte sink, never seeking back: each page is laid out as
/// its directory, the directory's long values, then its strip, so every offset is known when it is written.
/// Only one page's coded strip is held at a time. The page count is given up front (PageNumber carries it and
/// the last directory ends the chain); [`Writer::finish`] checks it was kept.
#[derive(Debug)]
pub struct Writer<W: std::io::Write> {
    out: W,
    options: WriteOptions,
    total: u16,
    written: u16,
    pos: u64,
}

impl<W: std::io::Write> Writer<W> {
    pub fn new(mut out: W, options: WriteOptions, total_pages: usize) -> Result<Self, Error> {
        let total = u16::try_from(total_pages).map_err(|_| bad("more than 65535 pages"))?;
        if total == 0 {
            return Err(bad("no pages to write"));
        }
        out.write_all(b"II\x2a\x00\x08\x00\x00\x00").map_err(io)?;
        Ok(Writer {
            out,
            options,
            total,
            written: 0,
            pos: 8,
        })
    }

    /// Codes and appends one page.
    pub fn add(&mut self, p: &WritePage<'_>) -> Result<(), Error> {
        let strip = strip(p.page, self.options.coding)?;
        self.add_strip(p, &strip)
    }

    /// Appends a page whose strip was coded by [`strip`] with this writer's coding (so pages can be coded
    /// on other threads and written in order here).
    pub fn add_strip(&mut self, p: &WritePage<'_>, strip: &[u8]) -> Result<(), Error> {
        if self.written == self.total {
            return Err(bad(format!("more pages than the {} announced", self.total)));
        }
        let (compression, options): (u16, Option<(u16, u32)>) = match self.options.coding {
            None => (1, None),
            Some(Coding::Mh) => (3, Some((292, 0b100))),
            Some(Coding::Mr { .. }) => (3, Some((292, 0b101))),
            Some(Coding::Mmr) => (4, Some((293, 0))),
        };
        let strip_len = u32::try_from(strip.len()).map_err(|_| Error::TooLarge)?;
        let (xn, xd) = rational(p.x_dpi);
        let (yn, yd) = rational(p.y_dpi);
        let mut fields: Vec<(u16, Val)> = vec![
            (254, Val::Long(2)),
            (256, Val::Long(p.page.width)),
            (257, Val::Long(p.page.height)),
            (258, Val::Short(vec![1])),
            (259, Val::Short(vec![compression])),
            (262, Val::Short(vec![0])),
            (266, Val::Short(vec![1])),
            (273, Val::Long(0)), // StripOffsets, known once the layout is
            (277, Val::Short(vec![1])),
            (278, Val::Long(p.page.height)),
            (279, Val::Long(strip_len)),
            (282, Val::Rational(xn, xd)),
            (283, Val::Rational(yn, yd)),
            (296, Val::Short(vec![2])),
            (297, Val::Short(vec![self.written, self.total])),
        ];
        if let Some((tag, value)) = options {
            fields.push((tag, Val::Long(value)));
        }
        if let Some(s) = &self.options.software {
            fields.push((305, Val::Ascii(s.clone())));
        }
        if let Some(d) = &self.options.date_time {
            fields.push((306, Val::Ascii(d.clone())));
        }
        if let Some(v) = p.bad_fax_lines {
            fields.push((326, Val::Long(v)));
        }
        if let Some(v) = p.clean_fax_data {
            fields.push((327, Val::Short(vec![v])));
        }
        if let Some(v) = p.consecutive_bad_fax_lines {
            fields.push((328, Val::Long(v)));
        }
        fields.sort_by_key(|(t, _)| *t);
        // Layout: directory, long values (each at an even offset), strip, padding to even.
        let ifd_len = 2 + 12 * fields.len() as u64 + 4;
        let encoded: Vec<(u16, u32, Vec<u8>)> = fields.iter().map(|(_, v)| v.encode()).collect();
        let mut remote_len = 0u64;
        for (_, _, bytes) in &encoded {
            if bytes.len() > 4 {
                remote_len += bytes.len().next_multiple_of(2) as u64;
            }
        }
        let strip_at = self.pos + ifd_len + remote_len;
        let end = strip_at + u64::from(strip_len).next_multiple_of(2);
        let fits = |v: u64| u32::try_from(v).map_err(|_| Error::TooLarge);
        let strip_at32 = fits(strip_at)?;
        let next = if self.written + 1 == self.total {
            0
        } else {
            fits(end)?
        };
        let mut head = Vec::with_capacity((ifd_len + remote_len) as usize);
        head.extend_from_slice(&(fields.len() as u16).to_le_bytes());
        let mut remote_at = self.pos + ifd_len;
        let mut remote = Vec::new();
        for ((tag, _), (typ, count, bytes)) in fields.iter().zip(&encoded) {
            head.extend_from_slice(&tag.to_le_bytes());
            head.extend_from_slice(&typ.to_le_bytes());
            head.extend_from_slice(&count.to_le_bytes());
            if *tag == 273 {
                head.extend_from_slice(&strip_at32.to_le_bytes());
            } else if bytes.len() > 4 {
                head.extend_from_slice(&fits(remote_at)?.to_le_bytes());
                remote.extend_from_slice(bytes);
                if bytes.len() % 2 == 1 {
                    remote.push(0);
                }
                remote_at += bytes.len().next_multiple_of(2) as u64;
            } else {
                let mut inline = [0u8; 4];
                inline[..bytes.len()].copy_from_slice(bytes);
                head.extend_from_slice(&inline);
            }
        }
        head.extend_from_slice(&next.to_le_bytes());
        head.extend_from_slice(&remote);
        self.out.write_all(&head).map_err(io)?;
        self.out.write_all(strip).map_err(io)?;
        if strip.len() % 2 == 1 {
            self.out.write_all(&[0]).map_err(io)?;
        }
        self.pos = end;
        self.written += 1;
        Ok(())
    }

    /// Flushes and returns the sink; every announced page must have been added.
    pub fn finish(mut self) -> Result<W, Error> {
        if self.written != self.total {
            return Err(bad(format!(
                "{} pages were announced and {} written",
                self.total, self.written
            )));
        }
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }
}

/// Writes pages as one TIFF Class F file.
pub fn write(pages: &[WritePage<'_>], o: &WriteOptions) -> Result<Vec<u8>, Error> {
    let mut w = Writer::new(Vec::new(), o.clone(), pages.len())?;
    for p in pages {
        w.add(p)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_bits_reads_literals_runs_and_no_ops() {
        let src = [2, 1, 2, 3, 0xFE, 9, 0x80, 0, 7];
        assert_eq!(unpack_bits(&src, 7), Some(vec![1, 2, 3, 9, 9, 9, 7]));
        assert_eq!(unpack_bits(&[5, 1], 6), None, "truncated");
    }

    #[test]
    fn written_files_read_back_with_their_fields() {
        let (w, h) = (1728u32, 50u32);
        let mut data = vec![0u8; stride(w) * h as usize];
        for y in 0..h as usize {
            for x in (y * 7 % 300)..(y * 7 % 300 + 40) {
                data[y * stride(w) + x / 8] |= 0x80 >> (x % 8);
            }
        }
        for coding in [
            None,
            Some(Coding::Mh),
            Some(Coding::Mr { k: 4 }),
            Some(Coding::Mmr),
        ] {
            let page = WritePage {
                page: PageRef {
                    width: w,
                    height: h,
                    data: &data,
                },
                x_dpi: 204.0,
                y_dpi: 196.0,
                bad_fax_lines: Some(3),
                consecutive_bad_fax_lines: Some(2),
                clean_fax_data: Some(1),
            };
            let file = write(
                &[page, page],
                &WriteOptions {
                    coding,
                    software: Some("faxhub".into()),
                    date_time: Some("2026:11:24 12:00:00".into()),
                },
            )
            .expect("write");
            let pages = read(&file, &ReadLimits::default()).expect("read");
            assert_eq!(pages.len(), 2);
            let p = &pages[1];
            assert_eq!((p.width, p.height, p.page_number), (w, h, Some((1, 2))));
            assert_eq!(p.data, data, "{coding:?}");
            assert_eq!((p.x_dpi(), p.y_dpi()), (Some(204.0), Some(196.0)));
            assert_eq!(
                (
                    p.bad_fax_lines,
                    p.consecutive_bad_fax_lines,
                    p.clean_fax_data
                ),
                (Some(3), Some(2), Some(1))
            );
            assert_eq!(p.software.as_deref(), Some("faxhub"));
            assert_eq!(p.date_time.as_deref(), Some("2026:11:24 12:00:00"));
        }
    }

    #[test]
    fn hostile_files_are_refused_cleanly() {
        assert!(read(b"", &ReadLimits::default()).is_err());
        assert!(read(b"II*\0\x08\0\0\0", &ReadLimits::default()).is_err());
        // A directory pointing at itself.
        let mut looped = b"II*\0\x08\0\0\0\0\0\x08\0\0\0".to_vec();
        looped.extend_from_slice(&[0; 8]);
        assert!(read(&looped, &ReadLimits::default()).is_err());
        // A page far over the pixel limit is refused before anything is allocated.
        let page = WritePage {
            page: PageRef {
                width: 8,
                height: 1,
                data: &[0],
            },
            x_dpi: 204.0,
            y_dpi: 98.0,
            bad_fax_lines: None,
            consecutive_bad_fax_lines: None,
            clean_fax_data: None,
        };
        let file = write(
            &[page],
            &WriteOptions {
                coding: Some(Coding::Mh),
                software: None,
                date_time: None,
            },
        )
        .expect("write");
        let tight = ReadLimits {
            max_pages: 1,
            max_pixels: 4,
        };
        assert!(read(&file, &tight).is_err());
    }
}
