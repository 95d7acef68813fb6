//! The sequences section (RFC 8878 3.1.1.3.2) and sequence execution (3.1.1.4, 3.1.1.5): the
//! output slice before the write position is the history matches copy from.

use alloc::boxed::Box;
use alloc::vec;

use super::bits::Back;
use super::fse::{self, LL_DEFAULT, MAX_SYMBOLS, ML_DEFAULT, OF_DEFAULT};
use super::huffman::Huf;
use super::literals::Lits;
use super::{R, corrupt};
use crate::kernel::decompress::ErrorKind;

/// A decoding table entry with its code's value base and extra bits resolved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Entry {
    base: u32,
    next: u16,
    bits: u8,
    extra: u8,
}

/// Literal length codes 16..=35 and match length codes 32..=52: (base, extra bits)
/// (RFC 8878 3.1.1.3.2.1.1).
const LL_CODES: [(u32, u8); 20] = [
    (16, 1),
    (18, 1),
    (20, 1),
    (22, 1),
    (24, 2),
    (28, 2),
    (32, 3),
    (40, 3),
    (48, 4),
    (64, 6),
    (128, 7),
    (256, 8),
    (512, 9),
    (1024, 10),
    (2048, 11),
    (4096, 12),
    (8192, 13),
    (16384, 14),
    (32768, 15),
    (65536, 16),
];
const ML_CODES: [(u32, u8); 21] = [
    (35, 1),
    (37, 1),
    (39, 1),
    (41, 1),
    (43, 2),
    (47, 2),
    (51, 3),
    (59, 3),
    (67, 4),
    (83, 4),
    (99, 5),
    (131, 7),
    (259, 8),
    (515, 9),
    (1027, 10),
    (2051, 11),
    (4099, 12),
    (8195, 13),
    (16387, 14),
    (32771, 15),
    (65539, 16),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ll,
    Of,
    Ml,
}

impl Kind {
    /// (largest accuracy log, alphabet size, default distribution, its log, table offset).
    fn params(self) -> (u32, usize, &'static [i16], u32, usize) {
        match self {
            Kind::Ll => (9, 36, &LL_DEFAULT, 6, LL_AT),
            Kind::Ml => (9, 53, &ML_DEFAULT, 6, ML_AT),
            Kind::Of => (8, 32, &OF_DEFAULT, 5, OF_AT),
        }
    }

    fn entry(self, sym: u8, bits: u8, next: u16) -> Entry {
        let s = u32::from(sym);
        let (base, extra) = match self {
            Kind::Ll if s < 16 => (s, 0),
            Kind::Ll => LL_CODES.get(s as usize - 16).copied().unwrap_or((0, 0)),
            Kind::Ml if s < 32 => (s + 3, 0),
            Kind::Ml => ML_CODES.get(s as usize - 32).copied().unwrap_or((0, 0)),
            Kind::Of => (1 << (s & 31), sym & 31),
        };
        Entry {
            base,
            next,
            bits,
            extra,
        }
    }
}

const LL_AT: usize = 0;
const ML_AT: usize = 512;
const OF_AT: usize = 1024;
pub const ENTRIES: usize = 1280;

/// The three decoding tables, kept across blocks for the repeat mode.
#[derive(Debug)]
pub struct Tables {
    /// LL at 0 (512 cells), ML at 512 (512), OF at 1024 (256).
    t: Box<[Entry; ENTRIES]>,
    /// Accuracy log of each table (LL, OF, ML), None before the first one.
    log: [Option<u32>; 3],
}

impl Tables {
    /// Fills the table on the heap (`Box::new` of an array may build it on the stack first);
    /// None cannot happen (the lengths agree) but avoids a fallback array on the stack.
    pub fn new() -> Option<Self> {
        let t = vec![Entry::default(); ENTRIES].into_boxed_slice();
        Some(Self {
            t: t.try_into().ok()?,
            log: [None; 3],
        })
    }

    /// Reads the section's header and table descriptions (RFC 8878 3.1.1.3.2.1-2); returns
    /// the number of sequences and the bytes used.
    pub fn read_header(&mut self, d: &[u8]) -> R<(usize, usize)> {
        let byte = |i: usize| {
            d.get(i)
                .copied()
                .map(usize::from)
                .ok_or(corrupt("sequences header past the block"))
        };
        let b0 = byte(0)?;
        let (n, mut at) = match b0 {
            0 => return Ok((0, 1)),
            1..=127 => (b0, 1),
            128..=254 => (((b0 - 128) << 8) + byte(1)?, 2),
            _ => (byte(1)? + (byte(2)? << 8) + 0x7f00, 3),
        };
        let modes = byte(at)?;
        at += 1;
        if modes & 3 != 0 {
            return Err(corrupt("reserved bits in the sequence compression modes"));
        }
        for (i, kind) in [Kind::Ll, Kind::Of, Kind::Ml].into_iter().enumerate() {
            let mode = (modes >> (6 - 2 * i)) & 3;
            at += self.read_table(kind, i, mode, d.get(at..).unwrap_or(&[]))?;
        }
        Ok((n, at))
    }

    /// One table in `mode` (RFC 8878 3.1.1.3.2.1.1); returns the bytes its description took.
    fn read_table(&mut self, kind: Kind, i: usize, mode: usize, d: &[u8]) -> R<usize> {
        let (max_log, syms, default, default_log, at) = kind.params();
        let cells = self.t.get_mut(at..).unwrap_or(&mut []);
        let (log, used) = match mode {
            0 => {
                fse::build(default, default_log, cells, |s, b, n| kind.entry(s, b, n))?;
                (default_log, 0)
            }
            1 => {
                let s = *d
                    .first()
                    .ok_or(corrupt("sequences header past the block"))?;
                if usize::from(s) >= syms {
                    return Err(corrupt("RLE sequence code out of range"));
                }
                if let Some(c) = cells.first_mut() {
                    *c = kind.entry(s, 0, 0);
                }
                (0, 1)
            }
            2 => {
                let mut norm = [0i16; MAX_SYMBOLS];
                let (log, n, used) = fse::read_counts(d, max_log, syms, &mut norm)?;
                fse::build(&norm[..n], log, cells, |s, b, n| kind.entry(s, b, n))?;
                (log, used)
            }
            _ => (
                self.log[i].ok_or(corrupt("repeated sequence table without a previous one"))?,
                0,
            ),
        };
        self.log[i] = Some(log);
        Ok(used)
    }

    /// Decodes `n` sequences from bitstream `d` and executes them into `out` from `w` on
    /// (RFC 8878 3.1.1.3.2.2, 3.1.1.4); then appends the remaining literals. Returns the new
    /// write position.
    #[allow(clippy::too_many_arguments)]
    pub fn execute(
        &self,
        d: &[u8],
        n: usize,
        lits: &mut Lits<'_>,
        huf: &Huf,
        out: &mut [u8],
        mut w: usize,
        window: u64,
        rep: &mut [u32; 3],
    ) -> R<usize> {
        let room = out.len();
        let small = ErrorKind::OutputTooSmall { room, needed: None };
        let [Some(ll_log), Some(of_log), Some(ml_log)] = self.log else {
            return Err(corrupt("sequence tables missing"));
        };
        let t = &*self.t;
        let mut r = Back::new(d)?;
        let mut ll_s = r.read(ll_log) as usize;
        let mut of_s = r.read(of_log) as usize;
        let mut ml_s = r.read(ml_log) as usize;
        for i in 0..n {
            let ll_e = t[LL_AT + (ll_s & 511)];
            let of_e = t[OF_AT + (of_s & 255)];
            let ml_e = t[ML_AT + (ml_s & 511)];
            // Bits in this order: offset, match length, literal length (3.1.1.3.2.2).
            let of_v = of_e.base | r.read(u32::from(of_e.extra));
            let ml = (ml_e.base + r.read(u32::from(ml_e.extra))) as usize;
            let ll = (ll_e.base + r.read(u32::from(ll_e.extra))) as usize;
            if i + 1 < n {
                ll_s = usize::from(ll_e.next) + r.read(u32::from(ll_e.bits)) as usize;
                ml_s = usize::from(ml_e.next) + r.read(u32::from(ml_e.bits)) as usize;
                of_s = usize::from(of_e.next) + r.read(u32::from(of_e.bits)) as usize;
            }
            let offset = if of_v > 3 {
                let o = of_v - 3;
                *rep = [o, rep[0], rep[1]];
                o
            } else {
                // Repeat offsets (3.1.1.5): with no literals, each index moves up by one.
                let k = of_v - 1 + u32::from(ll == 0);
                match k {
                    0 => rep[0],
                    1 => {
                        *rep = [rep[1], rep[0], rep[2]];
                        rep[0]
                    }
                    2 => {
                        *rep = [rep[2], rep[0], rep[1]];
                        rep[0]
                    }
                    _ => {
                        let o = rep[0].wrapping_sub(1);
                        *rep = [o, rep[0], rep[1]];
                        o
                    }
                }
            } as usize;
            if ll > lits.remaining() {
                return Err(corrupt("literal length past the literals"));
            }
            let lit_end = w.checked_add(ll).filter(|&e| e <= room).ok_or(small)?;
            lits.take(huf, out.get_mut(w..lit_end).ok_or(small)?)?;
            w = lit_end;
            if offset == 0 {
                return Err(corrupt("match offset 0"));
            }
            if offset > w {
                return Err(corrupt("match offset beyond the output so far"));
            }
            if offset as u64 > window {
                return Err(corrupt("match offset beyond the window"));
            }
            let end = w.checked_add(ml).filter(|&e| e <= room).ok_or(small)?;
            copy_match(out, w, offset, end);
            w = end;
        }
        if !r.finished() {
            return Err(corrupt("sequence bitstream not consumed exactly"));
        }
        let end = w
            .checked_add(lits.remaining())
            .filter(|&e| e <= room)
            .ok_or(small)?;
        lits.take(huf, out.get_mut(w..end).ok_or(small)?)?;
        lits.finish()?;
        Ok(end)
    }
}

/// Copies `out[w - offset..]` to `out[w..end]` (0 < offset <= w, end <= out.len()).
#[inline]
fn copy_match(out: &mut [u8], w: usize, offset: usize, end: usize) {
    let src = w - offset;
    if offset >= end - w {
        out.copy_within(src..src + (end - w), w);
    } else if offset == 1 {
        let b = out[src];
        out[w..end].fill(b);
    } else {
        // Overlapping: the bytes from `src` repeat with period `offset`, so each copy can take
        // everything already written, doubling the length.
        let mut at = w;
        while at < end {
            let len = (at - src).min(end - at);
            out.copy_within(src..src + len, at);
            at += len;
        }
    }
}
