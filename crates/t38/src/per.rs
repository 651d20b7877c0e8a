//! The few ITU-T X.691 aligned PER (ALIGNED variant) primitives T.38 needs.
//!
//! Only what the T.38 ASN.1 module uses: single bits, small fixed-width
//! fields, octet alignment, general length determinants (X.691 clause 11.9,
//! including fragmentation in units of 16K), and "normally small
//! non-negative whole numbers" (clause 11.6) for enumeration extensions.

use crate::Error;

/// One fragment of a general length determinant (X.691 11.9.3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    /// The whole (remaining) count: the last fragment.
    Final(usize),
    /// `m` × 16384 items follow, then another length determinant.
    Fragment(usize),
}

const FRAGMENT: usize = 16384;

/// Bit-level writer, most significant bit first.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
    /// Bits already used in the last octet of `buf` (0 = aligned).
    used: u8,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn bit(&mut self, b: bool) {
        if self.used == 0 {
            self.buf.push(0);
        }
        if b && let Some(last) = self.buf.last_mut() {
            *last |= 0x80 >> self.used;
        }
        self.used = (self.used + 1) % 8;
    }

    /// Writes the `n` low bits of `v`, most significant first.
    pub(crate) fn bits(&mut self, v: u32, n: u8) {
        for i in (0..n).rev() {
            self.bit((v >> i) & 1 == 1);
        }
    }

    pub(crate) fn align(&mut self) {
        self.used = 0;
    }

    pub(crate) fn octets(&mut self, data: &[u8]) {
        self.align();
        self.buf.extend_from_slice(data);
    }

    /// Normally small non-negative whole number (X.691 11.6); T.38 only
    /// ever needs values below 64, the one-bit-plus-six-bits form.
    pub(crate) fn small_whole(&mut self, v: u8) {
        self.bit(false);
        self.bits(u32::from(v), 6);
    }

    /// Writes one fragment of an unconstrained length determinant for
    /// `remaining` items and returns how many items this fragment covers.
    pub(crate) fn length(&mut self, remaining: usize) -> Length {
        self.align();
        if remaining < 0x80 {
            self.buf.push(remaining as u8);
            Length::Final(remaining)
        } else if remaining < FRAGMENT {
            self.buf.push(0x80 | (remaining >> 8) as u8);
            self.buf.push(remaining as u8);
            Length::Final(remaining)
        } else {
            let m = (remaining / FRAGMENT).min(4);
            self.buf.push(0xC0 | m as u8);
            Length::Fragment(m * FRAGMENT)
        }
    }

    /// Writes a whole open type / unconstrained OCTET STRING: length
    /// determinant(s) then the octets (X.691 10.2, 11.9).
    pub(crate) fn length_prefixed(&mut self, data: &[u8]) {
        let mut rest = data;
        loop {
            match self.length(rest.len()) {
                Length::Final(n) => {
                    self.octets(&rest[..n]);
                    return;
                }
                Length::Fragment(n) => {
                    let (head, tail) = rest.split_at(n);
                    self.octets(head);
                    rest = tail;
                }
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Bit-level reader over untrusted input; every read is bounds checked.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, Error> {
        let byte = self.buf.get(self.pos / 8).ok_or(Error::Truncated)?;
        let b = (byte >> (7 - self.pos % 8)) & 1 == 1;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn bits(&mut self, n: u8) -> Result<u32, Error> {
        let mut v = 0;
        for _ in 0..n {
            v = (v << 1) | u32::from(self.bit()?);
        }
        Ok(v)
    }

    pub(crate) fn align(&mut self) {
        self.pos = self.pos.div_ceil(8) * 8;
    }

    pub(crate) fn octet(&mut self) -> Result<u8, Error> {
        self.align();
        let b = *self.buf.get(self.pos / 8).ok_or(Error::Truncated)?;
        self.pos += 8;
        Ok(b)
    }

    pub(crate) fn octets(&mut self, n: usize) -> Result<&'a [u8], Error> {
        self.align();
        let start = self.pos / 8;
        let end = start.checked_add(n).ok_or(Error::Truncated)?;
        let s = self.buf.get(start..end).ok_or(Error::Truncated)?;
        self.pos = end * 8;
        Ok(s)
    }

    pub(crate) fn small_whole(&mut self) -> Result<u8, Error> {
        if self.bit()? {
            // Values of 64 and more: no T.38 enumeration has that many
            // extension values.
            return Err(Error::UnsupportedExtension);
        }
        Ok(self.bits(6)? as u8)
    }

    pub(crate) fn length(&mut self) -> Result<Length, Error> {
        let first = self.octet()?;
        if first & 0x80 == 0 {
            Ok(Length::Final(usize::from(first)))
        } else if first & 0x40 == 0 {
            let second = self.octet()?;
            Ok(Length::Final(
                usize::from(first & 0x3F) << 8 | usize::from(second),
            ))
        } else {
            let m = usize::from(first & 0x3F);
            if !(1..=4).contains(&m) {
                return Err(Error::BadLength);
            }
            Ok(Length::Fragment(m * FRAGMENT))
        }
    }

    /// Reads a whole open type / unconstrained OCTET STRING.
    pub(crate) fn length_prefixed(&mut self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        loop {
            match self.length()? {
                Length::Final(n) => {
                    out.extend_from_slice(self.octets(n)?);
                    return Ok(out);
                }
                Length::Fragment(n) => out.extend_from_slice(self.octets(n)?),
            }
        }
    }

    /// Octets left after aligning.
    pub(crate) fn remaining_octets(&self) -> usize {
        self.buf.len().saturating_sub(self.pos.div_ceil(8))
    }

    /// The unread rest, after aligning to an octet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos.div_ceil(8)..).unwrap_or(&[])
    }
}

/// SEQUENCE OF: length determinant(s) for the count, then the items
/// (X.691 20.6, with fragmentation for 16K items and more).
pub(crate) fn write_list<T, E>(
    w: &mut Writer,
    items: &[T],
    mut item: impl FnMut(&mut Writer, &T) -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = items;
    loop {
        let (n, last) = match w.length(rest.len()) {
            Length::Final(n) => (n, true),
            Length::Fragment(n) => (n, false),
        };
        let (now, later) = rest.split_at(n);
        for x in now {
            item(w, x)?;
        }
        rest = later;
        if last {
            return Ok(());
        }
    }
}

/// Reads a SEQUENCE OF whose items each take at least `1 / per_octet`
/// octets; counts the remaining input cannot hold are refused before any
/// item is read.
pub(crate) fn read_list<'a, T>(
    r: &mut Reader<'a>,
    per_octet: usize,
    mut item: impl FnMut(&mut Reader<'a>) -> Result<T, Error>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    loop {
        let (n, last) = match r.length()? {
            Length::Final(n) => (n, true),
            Length::Fragment(n) => (n, false),
        };
        if n > r.remaining_octets().saturating_mul(per_octet) {
            return Err(Error::Truncated);
        }
        for _ in 0..n {
            out.push(item(r)?);
        }
        if last {
            return Ok(out);
        }
    }
}
