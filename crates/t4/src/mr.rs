//! Two-dimensional line coding (T.4 §4.2.1.3, used by MR and by T.6 MMR): each changing element of the
//! coding line is coded relative to the reference line above, in pass, horizontal or vertical mode.

use crate::bits::{BitReader, BitWriter};
use crate::codes;
use crate::runs::{put_run, run_of};

/// Ends a line's changing elements with the sentinels [`find_b1`] relies on, making it a reference line:
/// three entries at `width` (the imaginary changes past the line's end, of both colours, and b2 after them).
fn seal_reference(changes: &mut Vec<u32>, width: u32) {
    changes.extend_from_slice(&[width; 3]);
}

/// The line just coded becomes the reference for the next: sealed, and swapped into `reference` (whose
/// old contents `cur` gets back, to be cleared and reused).
pub fn make_reference(cur: &mut Vec<u32>, reference: &mut Vec<u32>, width: u32) {
    seal_reference(cur, width);
    std::mem::swap(cur, reference);
}

/// The changing elements of a sealed reference line, without its sentinels.
pub fn reference_changes(reference: &[u32]) -> usize {
    reference.len().saturating_sub(3)
}

/// The all-white line above a page's first line, as a reference line.
pub fn white_reference(width: u32) -> Vec<u32> {
    let mut v = Vec::with_capacity(64);
    seal_reference(&mut v, width);
    v
}

/// Position of b1 (and b2 after it): the first changing element of the reference line to the right of `a0`
/// whose colour change is to the opposite of `black` (even entries start black runs). `bi` is a cursor kept
/// between calls; it may step back one place, because a vertical mode can move a0 left of the previous b1.
/// The reference line is sealed ([`seal_reference`]) and `a0` is left of the line's end, so the scan stops
/// at a sentinel at the latest: entries of the right parity are visited two apart, with no bounds test.
#[inline]
fn find_b1(reference: &[u32], bi: &mut usize, a0: i64, black: bool) -> (u32, u32) {
    debug_assert!(reference.len() >= 3 && i64::from(reference[reference.len() - 1]) > a0);
    let mut i = bi.saturating_sub(1);
    i += (i & 1) ^ usize::from(black);
    while i64::from(reference[i]) <= a0 {
        i += 2;
    }
    *bi = i;
    (reference[i], reference[i + 1])
}

/// Codes one line two-dimensionally against `reference` (both as changing elements).
pub fn encode_line(w: &mut BitWriter, coding: &[u32], reference: &[u32], width: u32) {
    let mut a0: i64 = -1;
    let mut black = false;
    let mut ai = 0usize;
    let mut bi = 0usize;
    while a0 < i64::from(width) {
        while ai < coding.len() && i64::from(coding[ai]) <= a0 {
            ai += 1;
        }
        let a1 = coding.get(ai).copied().unwrap_or(width);
        let (b1, b2) = find_b1(reference, &mut bi, a0, black);
        if b2 < a1 {
            let (c, l) = codes::PASS;
            w.put(u32::from(c), u32::from(l));
            a0 = i64::from(b2);
            continue;
        }
        let d = i64::from(a1) - i64::from(b1);
        if d.abs() <= 3 {
            let (c, l) = codes::VERTICAL[(d + 3) as usize];
            w.put(u32::from(c), u32::from(l));
            a0 = i64::from(a1);
            black = !black;
            continue;
        }
        let a2 = coding.get(ai + 1).copied().unwrap_or(width);
        let start = a0.max(0) as u32;
        let (c, l) = codes::HORIZONTAL;
        w.put(u32::from(c), u32::from(l));
        put_run(w, a1 - start, black);
        put_run(w, a2 - a1, !black);
        a0 = i64::from(a2);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Invalid,
    Pass,
    Horizontal,
    /// a1 − b1.
    Vertical(i8),
    /// Seven or more zeros: EOL, EOFB or an extension code, none of which may appear inside a line.
    Zeros,
}

const MODE_PEEK: u32 = 7;

/// The mode codes by their next seven bits, built at compile time.
static MODES: [(Mode, u8); 128] = {
    let mut t = [(Mode::Invalid, 0u8); 128];
    let mut i = 0;
    while i < 2 + 7 {
        let ((code, len), mode) = match i {
            0 => (codes::PASS, Mode::Pass),
            1 => (codes::HORIZONTAL, Mode::Horizontal),
            v => (codes::VERTICAL[v - 2], Mode::Vertical(v as i8 - 5)),
        };
        let shift = MODE_PEEK - len as u32;
        let base = (code as usize) << shift;
        let mut j = 0;
        while j < 1 << shift {
            t[base + j] = (mode, len);
            j += 1;
        }
        i += 1;
    }
    t[0] = (Mode::Zeros, 0);
    t[1] = (Mode::Zeros, 0);
    t
};

/// Why a two-dimensional line could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineError {
    /// A code that is not in the tables, or a run past the line's end.
    Corrupt,
    /// Zeros where a mode code was expected: the line ended early (an EOL or EOFB follows).
    Interrupted,
}

/// What [`decode_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// The line's changing elements are in `out`.
    Coded,
    /// Every code was V0: the line is the reference line again (its changing elements are in `out` too).
    /// Only reported for a strictly increasing reference line.
    Same,
}

/// Decodes one line against `reference` into `out` (changing elements).
///
/// `strict` says the reference line's changing elements are strictly increasing (no zero-length runs), so
/// a string of V0 codes (1 bits) takes the reference's elements one after another, copied as a block.
pub fn decode_line(
    r: &mut BitReader<'_>,
    reference: &[u32],
    strict: bool,
    width: u32,
    out: &mut Vec<u32>,
) -> Result<Line, LineError> {
    // The reader in registers for the line, stored back whatever happens (resynchronisation goes on from
    // where decoding stopped).
    let mut br = *r;
    let result = if strict {
        decode_line_with::<true>(&mut br, reference, width, out)
    } else {
        decode_line_with::<false>(&mut br, reference, width, out)
    };
    *r = br;
    result
}

#[inline(always)]
fn decode_line_with<const STRICT: bool>(
    r: &mut BitReader<'_>,
    reference: &[u32],
    width: u32,
    out: &mut Vec<u32>,
) -> Result<Line, LineError> {
    out.clear();
    debug_assert!(reference.len() >= 3 && reference[reference.len() - 1] == width);
    // The reference line's own changing elements, all left of `width`; the sentinels follow.
    let real = reference.len() - 3;
    let w = width as i32;
    let mut a0: i32 = -1;
    let mut black = false;
    // Cursor for b1 (see `find_b1`).
    let mut bi = 0usize;
    let mut zero_run = false;
    let mut same = STRICT;
    loop {
        if r.available() < 32 {
            r.refill();
        }
        // b1: the first element right of a0 of the parity for this colour. The sentinels stop the scan.
        let mut i = bi.saturating_sub(1);
        i += (i & 1) ^ usize::from(black);
        while reference[i] as i32 <= a0 {
            i += 2;
        }
        let b1 = reference[i] as i32;
        let bits = r.bits();
        if STRICT && bits >> 63 == 1 {
            // V0 codes: each takes the next element of the reference line (they increase strictly, and the
            // parity alternates as the colour does).
            // At most 32 at a time: a peek looks at no more (and a 64-bit shift would overflow).
            let ones = (!bits).leading_zeros().min(r.available()).min(32);
            let left = real.saturating_sub(i);
            let k = ones as usize;
            if k <= left {
                if k == 1 {
                    // The usual case; a memcpy call costs more.
                    out.push(reference[i]);
                } else {
                    out.extend_from_slice(&reference[i..i + k]);
                }
                r.consume_peeked(ones);
                a0 = reference[i + k - 1] as i32;
                black ^= k & 1 == 1;
                bi = i + k;
                continue;
            }
            // The line ends with the V0 onto the sentinel.
            if left > 0 {
                out.extend_from_slice(&reference[i..i + left]);
            }
            r.consume_peeked(left as u32 + 1);
            break;
        }
        let (mode, len) = MODES[(bits >> (64 - MODE_PEEK)) as usize];
        r.consume_peeked(u32::from(len));
        match mode {
            Mode::Vertical(d) => {
                same &= d == 0;
                let a1 = b1 + i32::from(d);
                if a1 <= a0 || a1 > w {
                    return Err(LineError::Corrupt);
                }
                bi = i;
                black = !black;
                if a1 >= w {
                    break;
                }
                out.push(a1 as u32);
                a0 = a1;
            }
            Mode::Pass => {
                same = false;
                let b2 = reference[i + 1] as i32;
                if b2 <= a0 {
                    return Err(LineError::Corrupt);
                }
                bi = i;
                a0 = b2;
                if a0 >= w {
                    break;
                }
            }
            Mode::Horizontal => {
                same = false;
                bi = i;
                let start = a0.max(0);
                let (run1, run2) = if black {
                    let r1 = run_of::<true>(r).ok_or(LineError::Corrupt)?;
                    (r1, run_of::<false>(r).ok_or(LineError::Corrupt)?)
                } else {
                    let r1 = run_of::<false>(r).ok_or(LineError::Corrupt)?;
                    (r1, run_of::<true>(r).ok_or(LineError::Corrupt)?)
                };
                let a1 = start + run1 as i32;
                let a2 = a1 + run2 as i32;
                if a2 > w {
                    return Err(LineError::Corrupt);
                }
                // A zero-length first run at the line start is an ordinary change at 0.
                if a1 < w {
                    out.push(a1 as u32);
                }
                if a2 < w {
                    out.push(a2 as u32);
                }
                a0 = a2;
                if a0 == start && run1 == 0 && run2 == 0 {
                    return Err(LineError::Corrupt);
                }
                // Only a zero-length run can repeat a changing element.
                zero_run |= run1 == 0 || run2 == 0;
                if a0 >= w {
                    break;
                }
            }
            Mode::Zeros => return Err(LineError::Interrupted),
            Mode::Invalid => return Err(LineError::Corrupt),
        }
    }
    if zero_run {
        normalize(out);
    }
    Ok(if same { Line::Same } else { Line::Coded })
}

/// Removes pairs of equal changing elements (zero-length runs), which would confuse the next line's b1.
fn normalize(out: &mut Vec<u32>) {
    if out.windows(2).all(|p| p[0] < p[1]) {
        return;
    }
    let mut v: Vec<u32> = Vec::with_capacity(out.len());
    for &c in out.iter() {
        if v.last() == Some(&c) {
            v.pop();
        } else {
            v.push(c);
        }
    }
    *out = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(coding: &[u32], reference: &[u32], width: u32) {
        let mut reference = reference.to_vec();
        seal_reference(&mut reference, width);
        let reference = &reference[..];
        let mut w = BitWriter::default();
        encode_line(&mut w, coding, reference, width);
        let data = w.finish();
        let mut r = BitReader::new(&data);
        let mut out = Vec::new();
        decode_line(&mut r, reference, true, width, &mut out).expect("decodes");
        assert_eq!(out, coding, "coding {coding:?} reference {reference:?}");
    }

    #[test]
    fn modes_round_trip() {
        let w = 1728;
        round_trip(&[], &[], w);
        round_trip(&[0], &[], w);
        round_trip(&[10, 20], &[10, 20], w);
        round_trip(&[8, 21], &[10, 20], w);
        round_trip(&[100, 200], &[10, 20], w);
        round_trip(&[100, 200], &[10, 20, 30, 40, 150, 160], w);
        round_trip(&[0, 1727], &[5, 6], w);
        round_trip(&[5, 7, 9, 11], &[6, 8, 10, 12], w);
        round_trip(&[1, 2], &[0, 3], w);
    }
}
