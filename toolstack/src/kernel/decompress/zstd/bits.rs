//! Bit readers (RFC 8878 4.1): FSE table descriptions are read forwards, least significant bit
//! first; FSE and Huffman bitstreams backwards, from the end mark in their last byte.

use super::{R, corrupt};

/// A forward little-endian bit reader over a table description; reads past the end give zeros
/// and are caught by the caller through [`Fwd::bytes_used`].
pub struct Fwd<'a> {
    d: &'a [u8],
    bit: usize,
}

impl<'a> Fwd<'a> {
    pub fn new(d: &'a [u8]) -> Self {
        Self { d, bit: 0 }
    }

    /// The next 32 bits (zeros past the end).
    pub fn peek(&self) -> u32 {
        let at = self.bit / 8;
        let mut v = 0u64;
        for i in 0..5 {
            let b = self.d.get(at + i).copied().unwrap_or(0);
            v |= u64::from(b) << (8 * i);
        }
        (v >> (self.bit % 8)) as u32
    }

    pub fn skip(&mut self, n: u32) {
        self.bit += n as usize;
    }

    /// Whole bytes consumed so far.
    pub fn bytes_used(&self) -> usize {
        self.bit.div_ceil(8)
    }
}

/// A backward bit reader (RFC 8878 4.1, "bitstreams are read backwards"). `acc` holds the next
/// bits at its top; bits below the `nbits` valid ones are zero or the stream's next bits, so
/// a refill can OR whole words in. Reading past the stream's start gives zeros and makes
/// `nbits` negative: callers check [`Back::finished`] or [`Back::overrun`].
pub struct Back<'a> {
    d: &'a [u8],
    /// Bytes `d[..idx]` are not loaded yet.
    idx: usize,
    acc: u64,
    nbits: i32,
}

impl<'a> Back<'a> {
    /// Starts after the end mark: the highest set bit of the last byte.
    pub fn new(d: &'a [u8]) -> R<Self> {
        let last = *d.last().ok_or(corrupt("empty bitstream"))?;
        if last == 0 {
            return Err(corrupt("bitstream without its end mark"));
        }
        let mut b = Self {
            d,
            idx: d.len(),
            acc: 0,
            nbits: 0,
        };
        b.refill();
        b.consume(last.leading_zeros() + 1);
        Ok(b)
    }

    /// Loads bytes until at least 57 bits are valid or the stream's start is reached.
    #[inline]
    pub fn refill(&mut self) {
        if self.nbits < 0 {
            return;
        }
        let have = self.nbits as u32;
        if self.idx >= 8 {
            let k = (64 - have) / 8;
            if k == 0 {
                return;
            }
            if let Some(w) = self
                .d
                .get(self.idx - 8..self.idx)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
            {
                self.acc |= u64::from_le_bytes(w) >> have;
                self.idx -= k as usize;
                self.nbits += 8 * k as i32;
            }
            return;
        }
        while self.nbits <= 56 && self.idx > 0 {
            self.idx -= 1;
            let b = self.d.get(self.idx).copied().unwrap_or(0);
            self.acc |= u64::from(b) << (56 - self.nbits);
            self.nbits += 8;
        }
    }

    /// The next `n` (0..=32) bits without consuming them; zeros past the start.
    #[inline]
    pub fn peek(&self, n: u32) -> u32 {
        ((self.acc >> 1) >> (63 - n)) as u32
    }

    #[inline]
    pub fn consume(&mut self, n: u32) {
        self.acc <<= n;
        self.nbits -= n as i32;
    }

    /// Reads `n` (0..=32) bits, refilling first if needed.
    #[inline]
    pub fn read(&mut self, n: u32) -> u32 {
        if self.nbits < n as i32 {
            self.refill();
        }
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Every bit read, none past the start (RFC 8878 3.1.1.3.2.2, 4.2.2).
    pub fn finished(&self) -> bool {
        self.nbits == 0 && self.idx == 0
    }

    /// More bits read than the stream has.
    pub fn overrun(&self) -> bool {
        self.nbits < 0
    }
}
