//! The literals section of a compressed block (RFC 8878 3.1.1.3.1). Literals are not staged
//! in a buffer: raw ones are read from the input, Huffman-coded ones decoded straight into the
//! output as the sequences ask for them (the streams are consumed in order).

use super::bits::Back;
use super::huffman::Huf;
use super::{MAX_BLOCK, R, corrupt};

/// Huffman streams: 1 or 4, each regenerating its share (RFC 8878 3.1.1.3.1.6).
pub struct HufLits<'a> {
    streams: [&'a [u8]; 4],
    counts: [usize; 4],
    /// 1 or 4.
    n: usize,
    /// Stream being read, and the symbols it still owes.
    cur: usize,
    left: usize,
    r: Back<'a>,
}

pub enum Lits<'a> {
    Raw(&'a [u8]),
    Rle(u8, usize),
    Huf(HufLits<'a>, usize),
}

/// Parses the section at the start of block `b`; returns it and its length.
pub fn parse<'a>(b: &'a [u8], huf: &mut Huf) -> R<(Lits<'a>, usize)> {
    let byte = |i: usize| {
        b.get(i)
            .copied()
            .map(usize::from)
            .ok_or(corrupt("literals header past the block"))
    };
    let b0 = byte(0)?;
    let (ty, sf) = (b0 & 3, (b0 >> 2) & 3);
    if ty < 2 {
        let (n, hl) = match sf {
            0 | 2 => (b0 >> 3, 1),
            1 => ((b0 >> 4) | byte(1)? << 4, 2),
            _ => ((b0 >> 4) | byte(1)? << 4 | byte(2)? << 12, 3),
        };
        if n > MAX_BLOCK {
            return Err(corrupt("literals larger than a block"));
        }
        return if ty == 0 {
            let raw = b
                .get(hl..hl + n)
                .ok_or(corrupt("literals past the block"))?;
            Ok((Lits::Raw(raw), hl + n))
        } else {
            Ok((Lits::Rle(byte(hl)? as u8, n), hl + 1))
        };
    }
    let (four, hl, bits) = match sf {
        0 => (false, 3, 10),
        1 => (true, 3, 10),
        2 => (true, 4, 14),
        _ => (true, 5, 18),
    };
    let mut h = 0u64;
    for i in 0..hl {
        h |= (byte(i)? as u64) << (8 * i);
    }
    let mask = (1u64 << bits) - 1;
    let n = ((h >> 4) & mask) as usize;
    let size = ((h >> (4 + bits)) & mask) as usize;
    if n > MAX_BLOCK {
        return Err(corrupt("literals larger than a block"));
    }
    let mut data = b
        .get(hl..hl + size)
        .ok_or(corrupt("literals past the block"))?;
    if ty == 2 {
        let used = huf.read(data)?;
        data = data.get(used..).unwrap_or(&[]);
    } else if !huf.valid {
        return Err(corrupt(
            "treeless literals without a previous Huffman table",
        ));
    }
    let (streams, counts, nstreams) = if four {
        let jump = |i: usize| {
            data.get(2 * i..2 * i + 2)
                .map(|s| usize::from(u16::from_le_bytes([s[0], s[1]])))
                .ok_or(corrupt("Huffman jump table past the literals"))
        };
        let (s1, s2, s3) = (jump(0)?, jump(1)?, jump(2)?);
        let bad = corrupt("Huffman streams past the literals");
        let a = 6 + s1;
        let c = a + s2 + s3;
        let (d1, d2, d3, d4) = (
            data.get(6..a).ok_or(bad)?,
            data.get(a..a + s2).ok_or(bad)?,
            data.get(a + s2..c).ok_or(bad)?,
            data.get(c..).ok_or(bad)?,
        );
        let seg = n.div_ceil(4);
        let last = n
            .checked_sub(3 * seg)
            .ok_or(corrupt("too few literals for 4 Huffman streams"))?;
        ([d1, d2, d3, d4], [seg, seg, seg, last], 4)
    } else {
        ([data, &[][..], &[], &[]], [n, 0, 0, 0], 1)
    };
    let r = Back::new(streams[0])?;
    let lits = HufLits {
        streams,
        counts,
        n: nstreams,
        cur: 0,
        left: counts[0],
        r,
    };
    Ok((Lits::Huf(lits, n), hl + size))
}

impl Lits<'_> {
    /// Literals not yet taken.
    pub fn remaining(&self) -> usize {
        match self {
            Lits::Raw(s) => s.len(),
            Lits::Rle(_, n) | Lits::Huf(_, n) => *n,
        }
    }

    /// Writes the next `dst.len()` literals (the caller checked [`Lits::remaining`]).
    #[inline]
    pub fn take(&mut self, huf: &Huf, dst: &mut [u8]) -> R<()> {
        let k = dst.len();
        match self {
            Lits::Raw(s) => {
                let (a, rest) = s.split_at_checked(k).ok_or(corrupt("literals"))?;
                dst.copy_from_slice(a);
                *s = rest;
            }
            Lits::Rle(b, n) => {
                *n = n.checked_sub(k).ok_or(corrupt("literals"))?;
                dst.fill(*b);
            }
            Lits::Huf(h, n) => {
                *n = n.checked_sub(k).ok_or(corrupt("literals"))?;
                h.take(huf, dst)?;
            }
        }
        Ok(())
    }

    /// After the last literal: every Huffman stream consumed exactly.
    pub fn finish(&mut self) -> R<()> {
        if let Lits::Huf(h, _) = self {
            while h.cur + 1 < h.n {
                h.next_stream()?;
            }
            if h.left != 0 || !h.r.finished() {
                return Err(corrupt("Huffman stream not consumed exactly"));
            }
        }
        Ok(())
    }
}

impl HufLits<'_> {
    fn take(&mut self, huf: &Huf, mut dst: &mut [u8]) -> R<()> {
        // Bounded: each pass either writes or moves to the next of 4 streams.
        while !dst.is_empty() {
            if self.left == 0 {
                self.next_stream()?;
                continue;
            }
            let k = self.left.min(dst.len());
            let (a, b) = dst.split_at_mut(k);
            huf.decode(&mut self.r, a);
            self.left -= k;
            dst = b;
        }
        Ok(())
    }

    /// Checks the current stream ended exactly and opens the next one.
    fn next_stream(&mut self) -> R<()> {
        if self.left != 0 || !self.r.finished() {
            return Err(corrupt("Huffman stream not consumed exactly"));
        }
        self.cur += 1;
        let s = self
            .streams
            .get(self.cur)
            .filter(|_| self.cur < self.n)
            .ok_or(corrupt("literals past the Huffman streams"))?;
        self.r = Back::new(s)?;
        self.left = self.counts.get(self.cur).copied().unwrap_or(0);
        Ok(())
    }
}
