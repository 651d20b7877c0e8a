//! Two-dimensional line coding (T.4 §4.2.1.3, used by MR and by T.6 MMR): each changing element of the
//! coding line is coded relative to the reference line above, in pass, horizontal or vertical mode.

use crate::bits::{BitReader, BitWriter, Sink};
use crate::codes;
use crate::runs::{put_run, run_code, run_of};

/// Ends a line's changing elements with the sentinels the search for b1 relies on, making it a reference line:
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

/// The all-white line above a page's first line, as a reference line.
pub fn white_reference(width: u32) -> Vec<u32> {
    let mut v = Vec::with_capacity(64);
    seal_reference(&mut v, width);
    v
}

/// Codes one line two-dimensionally against `reference`. Both are sealed lines of changing elements (see
/// [`seal_reference`]; the coding line needs two sentinels at least) whose own elements increase strictly,
/// as [`crate::runs::row_to_changes`] gives them.
///
/// a1 is never searched for: a0 only moves to a1, to a2 (the element after it) or by a pass to b2 (left of
/// a1), so a1 is the coding line's next element. b1 is the first element of the reference line right of a0
/// whose colour change is to the opposite of the coding colour (even entries start black runs): its search
/// starts where the last code leaves it, at the first candidate of the right parity, and steps two places at
/// a time; the sentinels stop it at the latest, so it needs no bounds test. A string of V0 codes, where the
/// coding line follows the reference, is found by comparing the two lines element by element and written
/// as one string of 1 bits.
pub fn encode_line(w: &mut BitWriter, coding: &[u32], reference: &[u32], width: u32) {
    debug_assert!(coding.len() >= 2 && coding[coding.len() - 2..] == [width; 2]);
    debug_assert!(reference.len() >= 3 && reference[reference.len() - 3..] == [width; 3]);
    w.with_sink(|s| encode_line_to(s, coding, reference, width));
}

#[inline(always)]
fn encode_line_to(s: &mut Sink<'_>, coding: &[u32], reference: &[u32], width: u32) {
    // a0 + 1, the first place b1 may be (a0 is −1, left of the line, until the first code).
    let mut lo = 0u32;
    // a1 is `coding[ai]`; the search for b1 starts at `bi`, whose parity is the coding colour's (odd for
    // black), so the colour needs no variable of its own.
    let mut ai = 0usize;
    let mut bi = 0usize;
    loop {
        let a1 = coding[ai];
        let mut i = bi;
        while reference[i] < lo {
            i += 2;
        }
        let b1 = reference[i];
        if a1 == b1 {
            // V0, and more while the coding line goes on following the reference: past a0 = b1, the next b1
            // is the reference's next element (its own elements increase strictly, and the colour changes
            // with the parity), and b2 is not left of it, so there is no pass. The sentinels match at the
            // line's end, where the string stops.
            let more = coding[ai + 1..]
                .iter()
                .zip(&reference[i + 1..])
                .take_while(|(c, r)| c == r)
                .count();
            let last = coding[ai + more];
            if last == width {
                // The sentinels went on matching; the string ends with the first of them.
                let to_end = coding[ai..]
                    .iter()
                    .position(|&c| c == width)
                    .unwrap_or(more);
                s.ones(to_end + 1);
                break;
            }
            s.ones(more + 1);
            ai += more + 1;
            bi = i + more + 1;
            lo = last + 1;
            continue;
        }
        let b2 = reference[i + 1];
        if b2 < a1 {
            // a0 moves to b2; b1 is right of it, of the same colour.
            let (c, l) = codes::PASS;
            s.put(u32::from(c), u32::from(l));
            lo = b2 + 1;
            bi = i + 2;
            continue;
        }
        let v = a1.wrapping_sub(b1).wrapping_add(3);
        if v < 7 {
            let (c, l) = codes::VERTICAL[v as usize];
            s.put(u32::from(c), u32::from(l));
            if a1 == width {
                break;
            }
            // The colour changes, and with it the parity; a0 = a1 may be left of b1, so the reference's
            // element before b1 may be the next b1.
            bi = if i == 0 { 1 } else { i - 1 };
            ai += 1;
            lo = a1 + 1;
            continue;
        }
        let black = i & 1 == 1;
        let a2 = coding[ai + 1];
        let start = lo.saturating_sub(1);
        let (r1, r2) = (a1 - start, a2 - a1);
        let (hc, hl) = (
            u32::from(codes::HORIZONTAL.0),
            u32::from(codes::HORIZONTAL.1),
        );
        match (run_code(r1, black), run_code(r2, !black)) {
            // The mode code and the first run's code come to at most 28 bits; both runs' codes are usually
            // short enough to join them.
            (Some((c1, l1)), Some((c2, l2))) => {
                if hl + l1 + l2 <= 32 {
                    s.put((((hc << l1) | c1) << l2) | c2, hl + l1 + l2);
                } else {
                    s.put((hc << l1) | c1, hl + l1);
                    s.put(c2, l2);
                }
            }
            _ => {
                s.put(hc, hl);
                put_run(s, r1, black);
                put_run(s, r2, !black);
            }
        }
        if a2 == width {
            break;
        }
        // a0 moves to a2, the colour stays: b1 is at or right of where it was.
        ai += 2;
        bi = i;
        lo = a2 + 1;
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
#[non_exhaustive]
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
    // Cursor for b1: the scan starts one place before it (a vertical mode can move a0 left of the last b1),
    // at the first entry of the right parity.
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
        let mut sealed = coding.to_vec();
        seal_reference(&mut sealed, width);
        let mut w = BitWriter::default();
        encode_line(&mut w, &sealed, reference, width);
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
