//! Runs and changing elements. A coded line is a list of changing elements (T.4 §4.2.1.3.1): the positions
//! where the colour changes, starting from an imaginary white pixel before the line, so even entries start
//! black runs and odd entries start white runs. Rows are the shared bitmap convention: 1 bit per pixel, most
//! significant bit leftmost, 1 = black.

use crate::bits::{BitReader, BitWriter, Sink};
use crate::codes;

/// Writes the changing elements of a row of `width` pixels to the front of `out` and answers how many
/// there are. `out` holds at least `width` entries (a row has at most that many changes), so the hot loop
/// stores without growing a vector.
///
/// Sixty-four pixels at a time: XOR-ing a word with itself shifted right by one pixel (the previous word's
/// last pixel shifted in) leaves a 1 exactly where the colour changes, so a white word costs one compare
/// and each change one leading-zero count.
pub fn row_to_changes(row: &[u8], width: u32, out: &mut [u32]) -> usize {
    let mut n = 0;
    for_each_change(row, width, |pos| {
        out[n] = pos;
        n += 1;
    });
    n
}

/// Calls `f` with each changing element of a row, left to right (see [`row_to_changes`]).
#[inline(always)]
fn for_each_change(row: &[u8], width: u32, mut f: impl FnMut(u32)) {
    let bytes = (width as usize).div_ceil(8).min(row.len());
    let row = &row[..bytes];
    // Words wholly inside the line need no test against the width; the last, partial one is masked.
    let whole = (width as usize / 64 * 8).min(bytes);
    let mut carry = 0u64; // the last pixel of the previous word, white before the line
    let mut base = 0u32;
    for chunk in row[..whole].chunks_exact(8) {
        let word = u64::from_be_bytes(chunk.try_into().expect("eight bytes"));
        let diff = word ^ ((word >> 1) | (carry << 63));
        carry = word & 1;
        push_changes(diff, base, &mut f);
        base += 64;
    }
    let rest = &row[(base / 8) as usize..];
    if !rest.is_empty() && base < width {
        let mut w = [0u8; 8];
        let k = rest.len().min(8);
        w[..k].copy_from_slice(&rest[..k]);
        let word = u64::from_be_bytes(w);
        // Bits past the width (padding) are not pixels.
        let inside = !u64::MAX.checked_shr(width - base).unwrap_or(0);
        let diff = word ^ ((word >> 1) | (carry << 63));
        push_changes(diff & inside, base, &mut f);
    }
}

#[inline(always)]
fn push_changes(mut diff: u64, base: u32, f: &mut impl FnMut(u32)) {
    while diff != 0 {
        let lz = diff.leading_zeros();
        f(base + lz);
        diff ^= 0x8000_0000_0000_0000u64 >> lz;
    }
}

/// Codes one line one-dimensionally from its changing elements: alternating white and black runs, starting
/// white. A white run and a black run at a time, so each run's table is known where it is looked up.
pub fn encode_1d(w: &mut BitWriter, changes: &[u32], width: u32) {
    w.with_sink(|s| {
        let mut a0 = 0u32;
        let mut pairs = changes.chunks_exact(2);
        for pair in &mut pairs {
            put_run_in(s, pair[0] - a0, &WHITE_RUNS);
            put_run_in(s, pair[1] - pair[0], &BLACK_RUNS);
            a0 = pair[1];
        }
        if let [c] = *pairs.remainder() {
            put_run_in(s, c - a0, &WHITE_RUNS);
            put_run_in(s, width - c, &BLACK_RUNS);
        } else {
            put_run_in(s, width - a0, &WHITE_RUNS);
        }
    });
}

const RUN_TABLE_LEN: usize = 2560 + 64;

/// The whole code of every run 0..2624 (make-up code then terminating code, up to 25 bits), built at
/// compile time from T.4's tables, so a run is one lookup and one write.
const fn run_codes(term: &[(u16, u8); 64], makeup: &[(u16, u8); 27]) -> [(u32, u8); RUN_TABLE_LEN] {
    let mut t = [(0u32, 0u8); RUN_TABLE_LEN];
    let mut run = 0;
    while run < RUN_TABLE_LEN {
        let (m, r) = (run / 64, run % 64);
        let (tc, tl) = term[r];
        t[run] = if m == 0 {
            (tc as u32, tl)
        } else {
            let (mc, ml) = if m <= 27 {
                makeup[m - 1]
            } else {
                codes::EXT_MAKEUP[m - 28]
            };
            (((mc as u32) << tl) | tc as u32, ml + tl)
        };
        run += 1;
    }
    t
}

static WHITE_RUNS: [(u32, u8); RUN_TABLE_LEN] = run_codes(&codes::WHITE_TERM, &codes::WHITE_MAKEUP);
static BLACK_RUNS: [(u32, u8); RUN_TABLE_LEN] = run_codes(&codes::BLACK_TERM, &codes::BLACK_MAKEUP);

/// Paints a row (already zeroed, i.e. white) from its changing elements (increasing, none past `width`).
///
/// Sixty-four pixels at a time: the black runs within a word are gathered in a register, and the word is
/// stored once, when the runs move past it (the words a long run covers are stored whole).
pub fn changes_to_row(changes: &[u32], width: u32, row: &mut [u8]) {
    let mut p = Painter::new(row);
    let mut pairs = changes.chunks_exact(2);
    for pair in &mut pairs {
        p.paint(pair[0], pair[1]);
    }
    if let [start] = *pairs.remainder() {
        p.paint(start, width);
    }
    p.finish();
}

/// Paints black runs, left to right, into a zeroed row.
pub struct Painter<'r> {
    row: &'r mut [u8],
    /// The word (64 pixels) `word` holds.
    at: usize,
    word: u64,
}

impl<'r> Painter<'r> {
    pub fn new(row: &'r mut [u8]) -> Self {
        Self {
            row,
            at: 0,
            word: 0,
        }
    }

    /// Pixels `start..end` (start ≤ end, not left of an earlier run's end).
    #[inline(always)]
    pub fn paint(&mut self, start: u32, end: u32) {
        let first = (start / 64) as usize;
        if first != self.at {
            self.store(self.at, self.word);
            self.at = first;
            self.word = 0;
        }
        let last = (end / 64) as usize;
        if last == first {
            // Both ends in this word (an empty run's mask is empty).
            self.word |= (u64::MAX >> (start % 64)) ^ (u64::MAX >> (end % 64));
            return;
        }
        self.word |= u64::MAX >> (start % 64);
        self.store(first, self.word);
        for at in first + 1..last {
            self.store(at, u64::MAX);
        }
        self.at = last;
        // The run's end in its last word (nothing if it ends on the word's boundary).
        self.word = !(u64::MAX >> (end % 64));
    }

    #[inline(always)]
    fn store(&mut self, at: usize, word: u64) {
        let b = at * 8;
        if let Some(d) = self.row.get_mut(b..b + 8) {
            d.copy_from_slice(&word.to_be_bytes());
        } else {
            self.store_tail(b, word);
        }
    }

    /// The row's last bytes, fewer than eight.
    #[cold]
    fn store_tail(&mut self, b: usize, word: u64) {
        if let Some(d) = self.row.get_mut(b..) {
            let n = d.len().min(8);
            d[..n].copy_from_slice(&word.to_be_bytes()[..n]);
        }
    }

    pub fn finish(mut self) {
        if self.word != 0 {
            self.store(self.at, self.word);
        }
    }
}

/// Writes a run of one colour: make-up codes as needed, then a terminating code (T.4 §4.1.1).
#[inline]
pub(crate) fn put_run(s: &mut Sink<'_>, run: u32, black: bool) {
    put_run_in(s, run, if black { &BLACK_RUNS } else { &WHITE_RUNS });
}

/// [`put_run`] with the colour's table.
#[inline(always)]
fn put_run_in(s: &mut Sink<'_>, mut run: u32, table: &[(u32, u8); RUN_TABLE_LEN]) {
    while run >= RUN_TABLE_LEN as u32 {
        let (c, l) = codes::EXT_MAKEUP[12];
        s.put(u32::from(c), u32::from(l));
        run -= 2560;
    }
    let (c, l) = table[run as usize];
    s.put(c, u32::from(l));
}

/// The code of a run (its make-up code, if any, then its terminating code) if it is a single table entry
/// (runs below 2624): the horizontal mode merges it with the mode code.
#[inline(always)]
pub fn run_code(run: u32, black: bool) -> Option<(u32, u32)> {
    let table = if black { &BLACK_RUNS } else { &WHITE_RUNS };
    table.get(run as usize).map(|&(c, l)| (c, u32::from(l)))
}

const PEEK: u32 = 13;
const DECODE_LEN: usize = 1 << PEEK;

/// A lookup table indexed by the next 13 bits, built at compile time from T.4's tables. Each entry is
/// `run << 4 | code length`: runs below 64 are terminating codes (the run ends), the others make-up codes
/// (more follows). Length 0 marks what no run code starts with: an invalid code, or eleven or more zeros
/// (an EOL, or fill before one).
const fn run_decode_table(term: &[(u16, u8); 64], makeup: &[(u16, u8); 27]) -> [u16; DECODE_LEN] {
    let mut t = [0u16; DECODE_LEN];
    let mut i = 0;
    while i < 64 + 27 + 13 {
        let ((code, len), run) = if i < 64 {
            (term[i], i)
        } else if i < 64 + 27 {
            (makeup[i - 64], (i - 63) * 64)
        } else {
            (codes::EXT_MAKEUP[i - 64 - 27], 1792 + (i - 64 - 27) * 64)
        };
        let shift = PEEK - len as u32;
        let base = (code as usize) << shift;
        let mut j = 0;
        while j < 1 << shift {
            t[base + j] = ((run as u16) << 4) | len as u16;
            j += 1;
        }
        i += 1;
    }
    t
}

static WHITE_DECODE: [u16; DECODE_LEN] = run_decode_table(&codes::WHITE_TERM, &codes::WHITE_MAKEUP);
static BLACK_DECODE: [u16; DECODE_LEN] = run_decode_table(&codes::BLACK_TERM, &codes::BLACK_MAKEUP);

/// Reads one run of a colour (make-ups and a terminating code). `None` at an invalid code or an EOL.
/// The colour is known where it is called: the table is a constant, and the common case (a terminating
/// code) is one lookup.
#[inline(always)]
pub fn run_of<const BLACK: bool>(r: &mut BitReader<'_>) -> Option<u32> {
    let table = if BLACK { &BLACK_DECODE } else { &WHITE_DECODE };
    let mut total = 0u32;
    loop {
        let e = table[r.peek(PEEK) as usize];
        let len = u32::from(e & 15);
        if len == 0 {
            return None;
        }
        r.consume_peeked(len);
        let run = u32::from(e >> 4);
        total += run;
        if run < 64 {
            return Some(total);
        }
        if total > 1 << 20 {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bits: &str) -> (Vec<u8>, u32) {
        let width = bits.len() as u32;
        let mut v = vec![0u8; bits.len().div_ceil(8)];
        for (i, c) in bits.chars().enumerate() {
            if c == '1' {
                v[i / 8] |= 0x80 >> (i % 8);
            }
        }
        (v, width)
    }

    #[test]
    fn changes_round_trip_rows() {
        for bits in [
            "0000",
            "1111",
            "0110",
            "1000000000000000000000001",
            "01".repeat(40).as_str(),
            &("0".repeat(100) + &"1".repeat(70) + "0"),
        ] {
            let (r, width) = row(bits);
            let mut ch = vec![0; width as usize];
            let n = row_to_changes(&r, width, &mut ch);
            ch.truncate(n);
            let mut back = vec![0u8; r.len()];
            changes_to_row(&ch, width, &mut back);
            assert_eq!(back, r, "{bits}");
        }
        let mut ch = [0; 8];
        let (r, w) = row("0011100");
        let n = row_to_changes(&r, w, &mut ch);
        assert_eq!(ch[..n], [2, 5]);
        let (r, w) = row("1100");
        let n = row_to_changes(&r, w, &mut ch);
        assert_eq!(ch[..n], [0, 2]);
    }

    #[test]
    fn every_run_length_round_trips() {
        for black in [false, true] {
            let mut w = BitWriter::default();
            let runs: Vec<u32> = (0..3000).chain([5000, 2560, 2623, 2624, 9999]).collect();
            w.with_sink(|s| {
                for &run in &runs {
                    put_run(s, run, black);
                }
            });
            let data = w.finish();
            let mut r = BitReader::new(&data);
            for &run in &runs {
                let got = if black {
                    run_of::<true>(&mut r)
                } else {
                    run_of::<false>(&mut r)
                };
                assert_eq!(got, Some(run), "black {black} run {run}");
            }
        }
    }

    #[test]
    fn codes_are_prefix_free() {
        for (term, makeup) in [
            (&codes::WHITE_TERM, &codes::WHITE_MAKEUP),
            (&codes::BLACK_TERM, &codes::BLACK_MAKEUP),
        ] {
            let all: Vec<(u16, u8)> = term
                .iter()
                .chain(makeup.iter())
                .chain(codes::EXT_MAKEUP.iter())
                .chain([codes::EOL].iter())
                .copied()
                .collect();
            for (i, a) in all.iter().enumerate() {
                for (j, b) in all.iter().enumerate() {
                    if i != j && a.1 <= b.1 {
                        assert_ne!(b.0 >> (b.1 - a.1), a.0, "{a:?} is a prefix of {b:?}");
                    }
                }
            }
        }
    }
}
