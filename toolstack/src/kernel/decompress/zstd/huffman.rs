//! Huffman literals (RFC 8878 4.2): the tree description and the decoding table.

use alloc::boxed::Box;
use alloc::vec;

use super::bits::Back;
use super::fse::{self, MAX_SYMBOLS};
use super::{R, corrupt};

/// Largest code length (RFC 8878 4.2.1: Max_Number_of_Bits is at most 11).
const MAX_BITS: u32 = 11;
const TABLE: usize = 1 << MAX_BITS;

#[derive(Debug, Clone, Copy, Default)]
pub struct Entry {
    sym: u8,
    bits: u8,
}

/// A decoding table indexed by the next `log` bits of a stream; kept across blocks for
/// treeless literals (RFC 8878 3.1.1.3.1.1).
#[derive(Debug)]
pub struct Huf {
    table: Box<[Entry; TABLE]>,
    log: u32,
    pub valid: bool,
}

#[derive(Clone, Copy, Default)]
struct WeightEntry {
    sym: u8,
    bits: u8,
    next: u16,
}

impl Huf {
    /// As [`super::sequences::Tables::new`]: filled on the heap; None cannot happen.
    pub fn new() -> Option<Self> {
        let table = vec![Entry::default(); TABLE].into_boxed_slice();
        Some(Self {
            table: table.try_into().ok()?,
            log: 0,
            valid: false,
        })
    }

    /// Reads a tree description at the start of `d` (RFC 8878 4.2.1) and builds the table;
    /// returns the bytes used.
    pub fn read(&mut self, d: &[u8]) -> R<usize> {
        self.valid = false;
        let h = *d
            .first()
            .ok_or(corrupt("Huffman tree description past the literals"))?;
        let mut w = [0u8; 256];
        let (n, used) = if h < 128 {
            let src = d
                .get(1..1 + usize::from(h))
                .ok_or(corrupt("Huffman weights past the literals"))?;
            (fse_weights(src, &mut w)?, 1 + usize::from(h))
        } else {
            let n = usize::from(h) - 127;
            let bytes = n.div_ceil(2);
            let src = d
                .get(1..1 + bytes)
                .ok_or(corrupt("Huffman weights past the literals"))?;
            for (i, slot) in w.iter_mut().take(n).enumerate() {
                let b = src.get(i / 2).copied().unwrap_or(0);
                *slot = if i % 2 == 0 { b >> 4 } else { b & 15 };
            }
            (n, 1 + bytes)
        };
        self.build(&mut w, n)?;
        self.valid = true;
        Ok(used)
    }

    /// Completes the weights with the implied last one and fills the table (RFC 8878 4.2.1.3).
    fn build(&mut self, w: &mut [u8; 256], n: usize) -> R<()> {
        let mut total = 0u32;
        for &x in w.iter().take(n) {
            if u32::from(x) > MAX_BITS {
                return Err(corrupt("Huffman weight too large"));
            }
            total += (1 << x) >> 1;
        }
        if total == 0 {
            return Err(corrupt("Huffman weights all zero"));
        }
        let log = 32 - total.leading_zeros();
        if log > MAX_BITS {
            return Err(corrupt("Huffman code longer than 11 bits"));
        }
        let left = (1u32 << log) - total;
        if !left.is_power_of_two() {
            return Err(corrupt("Huffman weights do not complete a tree"));
        }
        *w.get_mut(n).ok_or(corrupt("too many Huffman weights"))? = left.trailing_zeros() as u8 + 1;
        let syms = n + 1;
        // Codes by ascending weight, then symbol: the longest codes take the lowest indices.
        let mut start = [0u32; MAX_BITS as usize + 2];
        let mut count = [0u32; MAX_BITS as usize + 2];
        for &x in w.iter().take(syms) {
            count[usize::from(x)] += 1;
        }
        let mut at = 0;
        for x in 1..=MAX_BITS as usize {
            start[x] = at;
            at += count[x] << (x - 1);
        }
        for (s, &x) in w.iter().take(syms).enumerate() {
            if x == 0 {
                continue;
            }
            let len = (1usize << x) >> 1;
            let from = start[usize::from(x)] as usize;
            let e = Entry {
                sym: s as u8,
                bits: (log + 1 - u32::from(x)) as u8,
            };
            self.table
                .get_mut(from..from + len)
                .ok_or(corrupt("Huffman table overflow"))?
                .fill(e);
            start[usize::from(x)] += len as u32;
        }
        self.log = log;
        Ok(())
    }

    /// Decodes `dst.len()` symbols from `r`.
    #[inline]
    pub fn decode(&self, r: &mut Back<'_>, dst: &mut [u8]) {
        let log = self.log;
        for chunk in dst.chunks_mut(4) {
            // 4 codes of at most 11 bits after a refill to at least 57 bits.
            r.refill();
            for b in chunk {
                let e = self.table[r.peek(log) as usize & (TABLE - 1)];
                r.consume(u32::from(e.bits));
                *b = e.sym;
            }
        }
    }
}

/// FSE-compressed weights (RFC 8878 4.2.1.2): two interleaved states over one bitstream, until
/// a state update reads past its start. Returns the number of weights.
fn fse_weights(src: &[u8], w: &mut [u8; 256]) -> R<usize> {
    let mut norm = [0i16; MAX_SYMBOLS];
    let (log, syms, used) = fse::read_counts(src, 6, 12, &mut norm)?;
    let mut t = [WeightEntry::default(); 64];
    fse::build(&norm[..syms], log, &mut t, |sym, bits, next| WeightEntry {
        sym,
        bits,
        next,
    })?;
    let mut r = Back::new(src.get(used..).unwrap_or(&[]))?;
    let mut s = [r.read(log) as usize, r.read(log) as usize];
    let mut n = 0;
    // At most 255 weights: the last symbol's is implied.
    for i in 0.. {
        let e = t[s[i % 2] & 63];
        *w.get_mut(n)
            .filter(|_| n < 255)
            .ok_or(corrupt("too many Huffman weights"))? = e.sym;
        n += 1;
        s[i % 2] = usize::from(e.next) + r.read(u32::from(e.bits)) as usize;
        if r.overrun() {
            let last = t[s[(i + 1) % 2] & 63];
            *w.get_mut(n)
                .filter(|_| n < 255)
                .ok_or(corrupt("too many Huffman weights"))? = last.sym;
            return Ok(n + 1);
        }
    }
    Err(corrupt("Huffman weights"))
}
