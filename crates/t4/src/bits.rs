//! Bit streams, most significant bit first (FillOrder 1; T.4 sends each byte's first bit first).

/// Appends codes to a byte vector.
#[derive(Debug, Default)]
pub struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    /// Bits waiting in `acc` (always < 32 between calls).
    n: u32,
}

impl BitWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            out: Vec::with_capacity(bytes),
            acc: 0,
            n: 0,
        }
    }

    /// Writes the low `len` bits of `code` (len ≤ 32).
    #[inline]
    pub fn put(&mut self, code: u32, len: u32) {
        debug_assert!(len <= 32);
        // Only the low `len` bits (none for an empty code: a 32-bit shift would overflow).
        let code = code & u32::MAX.checked_shr(32 - len).unwrap_or(0);
        self.with_sink(|s| s.put(code, len));
    }

    /// Runs `f` with the writer's pending bits in a [`Sink`], a local whose address never escapes, so they
    /// stay in registers (a call to grow the vector would otherwise make the compiler keep them in memory).
    #[inline(always)]
    pub(crate) fn with_sink<R>(&mut self, f: impl FnOnce(&mut Sink<'_>) -> R) -> R {
        let mut s = Sink {
            out: &mut self.out,
            acc: self.acc,
            n: self.n,
        };
        let r = f(&mut s);
        self.acc = s.acc;
        self.n = s.n;
        r
    }

    /// Writes `count` zero bits.
    pub fn zeros(&mut self, mut count: u32) {
        while count > 0 {
            let n = count.min(32);
            self.put(0, n);
            count -= n;
        }
    }

    /// Writes `count` one bits.
    pub fn ones(&mut self, count: usize) {
        self.with_sink(|s| s.ones(count));
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> u64 {
        self.out.len() as u64 * 8 + u64::from(self.n)
    }

    /// Pads with zero bits to a byte boundary.
    pub fn align(&mut self) {
        let pad = (8 - self.n % 8) % 8;
        self.put(0, pad);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.align();
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
        self.out
    }
}

/// A [`BitWriter`] lent to an encoder's hot loop (see [`BitWriter::with_sink`]).
pub(crate) struct Sink<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl Sink<'_> {
    /// [`BitWriter::put`] of a code with no bits set above its `len` (len ≤ 32): neither a mask nor a test
    /// for an empty code.
    #[inline(always)]
    pub(crate) fn put(&mut self, code: u32, len: u32) {
        debug_assert!(len <= 32 && u64::from(code) >> len == 0);
        self.acc = (self.acc << len) | u64::from(code);
        self.n += len;
        if self.n >= 32 {
            self.n -= 32;
            let word = (self.acc >> self.n) as u32;
            self.out.extend_from_slice(&word.to_be_bytes());
        }
    }

    /// Writes `count` one bits.
    #[inline(always)]
    pub(crate) fn ones(&mut self, mut count: usize) {
        while count > 32 {
            self.put(u32::MAX, 32);
            count -= 32;
        }
        if count > 0 {
            let n = count as u32;
            self.put(u32::MAX >> (32 - n), n);
        }
    }
}

/// Reads codes from a byte slice. Reading past the end yields zero bits and sets `overrun`, so decoders
/// need no bounds checks on their hot path and still notice truncated data.
///
/// `Copy`, so a decoder's hot loop can work on a copy in registers and store it back when done.
#[derive(Debug, Clone, Copy)]
pub struct BitReader<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load.
    next: usize,
    acc: u64,
    /// Valid bits in `acc`, left-aligned.
    n: u32,
}

impl<'a> BitReader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        let mut r = Self {
            data,
            next: 0,
            acc: 0,
            n: 0,
        };
        r.refill();
        r
    }

    /// Tops `acc` up to at least 56 valid bits: eight bytes in one load away from the end, one byte at a
    /// time near it. Bits below the valid ones are always the stream's own next bits (or zeros), so
    /// loading some of them again is harmless.
    #[inline(always)]
    pub(crate) fn refill(&mut self) {
        if let Some(b) = self.data.get(self.next..self.next + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            self.acc |= u64::from_be_bytes(w) >> self.n;
            let bytes = (63 - self.n) >> 3;
            self.next += bytes as usize;
            self.n += bytes * 8;
            return;
        }
        *self = self.refilled_slow();
    }

    /// The end of the data: by value, so a reader kept in registers by its caller stays there.
    #[cold]
    #[inline(never)]
    fn refilled_slow(mut self) -> Self {
        self.refill_slow();
        self
    }

    fn refill_slow(&mut self) {
        while self.n <= 56 {
            let byte = match self.data.get(self.next) {
                Some(b) => *b,
                None => {
                    // Past the end: pretend zeros (counted by `position`, which `at_end` compares with the real bits).
                    if self.n > 32 {
                        return;
                    }
                    0
                }
            };
            self.next += 1;
            self.acc |= u64::from(byte) << (56 - self.n);
            self.n += 8;
        }
    }

    /// The next 64 bits, of which the first [`BitReader::available`] are loaded (the others are the
    /// stream's own next bits or zeros).
    #[inline(always)]
    pub(crate) fn bits(&self) -> u64 {
        self.acc
    }

    /// Bits loaded and not yet consumed (more than 32 after a refill).
    #[inline(always)]
    pub(crate) fn available(&self) -> u32 {
        self.n
    }

    /// The next `len` bits (len ≤ 32) without consuming them.
    #[inline(always)]
    pub fn peek(&mut self, len: u32) -> u32 {
        if self.n < len {
            self.refill();
        }
        (self.acc >> (64 - len)) as u32
    }

    #[inline(always)]
    pub fn consume(&mut self, len: u32) {
        if self.n < len {
            self.refill();
        }
        self.consume_peeked(len);
    }

    /// [`BitReader::consume`] of at most as many bits as the last [`BitReader::peek`] looked at (which
    /// made sure they are loaded): the decoders' hot path, with no test. (A refill always leaves more than
    /// 32 bits, the most a peek asks for.)
    #[inline(always)]
    pub fn consume_peeked(&mut self, len: u32) {
        debug_assert!(len <= self.n);
        self.acc <<= len;
        self.n -= len;
    }

    #[inline]
    pub fn bit(&mut self) -> u32 {
        let b = self.peek(1);
        self.consume(1);
        b
    }

    /// Bits consumed in total: every byte loaded (past the end, the zeros pretended) less those waiting.
    pub fn position(&self) -> u64 {
        self.next as u64 * 8 - u64::from(self.n)
    }

    pub fn total_bits(&self) -> u64 {
        self.data.len() as u64 * 8
    }

    /// Whether every real bit has been consumed.
    pub fn at_end(&self) -> bool {
        self.position() >= self.total_bits()
    }

    /// Skips to the next byte boundary.
    pub fn align(&mut self) {
        let pad = ((8 - self.position() % 8) % 8) as u32;
        self.consume(pad);
    }

    /// Skips zero bits; answers how many.
    pub fn skip_zeros(&mut self) -> u64 {
        let mut count = 0;
        while !self.at_end() {
            let w = self.peek(32);
            if w != 0 {
                let z = w.leading_zeros();
                self.consume(z);
                return count + u64::from(z);
            }
            self.consume(32);
            count += 32;
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let mut w = BitWriter::default();
        let codes = [
            (0b1, 1),
            (0b0101, 4),
            (0xABCDE, 20),
            (0, 11),
            (1, 1),
            (0xFFFF_FFFF, 32),
            (0b10, 2),
        ];
        for (c, l) in codes {
            w.put(c, l);
        }
        let bits = w.bit_len();
        assert_eq!(bits, 71);
        let data = w.finish();
        assert_eq!(data.len(), 9);
        let mut r = BitReader::new(&data);
        for (c, l) in codes {
            assert_eq!(r.peek(l), c, "{l}");
            r.consume(l);
        }
        assert!(!r.at_end());
        r.align();
        assert!(r.at_end());
        assert_eq!(r.peek(8), 0, "zeros past the end");
    }

    #[test]
    fn skips_zero_runs() {
        let data = [0, 0, 0, 0, 0, 0b0001_0000];
        let mut r = BitReader::new(&data);
        assert_eq!(r.skip_zeros(), 43);
        assert_eq!(r.bit(), 1);
    }
}
