//! zstd (RFC 8878), decoded in one call into the output slice, which is also the history
//! matches copy from: the heap holds only the decoding tables ([`STATE_BYTES`]), whatever the
//! frame's window (Linux's `zstd -22 --ultra` declares 128 MiB and no content size). Literals
//! are never staged: raw ones are copied from the input, Huffman-coded ones decoded into the
//! output as each sequence asks for them.
//!
//! The frame's structure (block headers, checksum) is walked first, so that a cut-off input is
//! reported as truncated at the exact byte; an error inside a block names the block's offset.
//! The content size and the content checksum (XXH64) are checked here. Dictionaries are not
//! supported (Linux does not use them).

mod bits;
mod fse;
mod huffman;
mod literals;
mod sequences;

use super::xxh64::xxh64;
use super::{Compression, DecompressError, ErrorKind};

const MAGIC: u32 = 0xfd2f_b528;
/// Largest block content (RFC 8878 3.1.1.2.3: min(window, 128 KiB)).
const MAX_BLOCK: usize = 128 * 1024;

/// Heap bytes the decoder takes: its Huffman and FSE tables (two boxes).
pub const STATE_BYTES: usize = core::mem::size_of::<[huffman::Entry; 2048]>()
    + core::mem::size_of::<[sequences::Entry; sequences::ENTRIES]>();

/// Errors inside a block; the caller adds the block's offset.
type R<T> = Result<T, ErrorKind>;

const fn corrupt(why: &'static str) -> ErrorKind {
    ErrorKind::Corrupt(why)
}

fn err(at: usize, kind: ErrorKind) -> DecompressError {
    DecompressError::new(Compression::Zstd, at, kind)
}

/// A frame header, as read from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    /// Window size (RFC 8878 3.1.1.1.2): how far back matches may reach.
    pub window: u64,
    pub content_size: Option<u64>,
    pub checksum: bool,
}

/// Reads the frame header at the start of `d`.
pub fn frame_header(d: &[u8]) -> Result<FrameHeader, DecompressError> {
    let byte = |at: usize| d.get(at).copied().ok_or(err(d.len(), ErrorKind::Truncated));
    let magic = u32::from_le_bytes([byte(0)?, byte(1)?, byte(2)?, byte(3)?]);
    if magic != MAGIC {
        return Err(err(0, ErrorKind::Corrupt("no zstd frame magic")));
    }
    let fhd = byte(4)?;
    if fhd & 0x08 != 0 {
        return Err(err(
            4,
            ErrorKind::Corrupt("reserved frame header bit is set"),
        ));
    }
    let single = fhd & 0x20 != 0;
    let dict_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_len = match (fhd >> 6, single) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let mut at = 5;
    let mut window = 0;
    if !single {
        let wd = byte(at)?;
        let base = 1u64 << (10 + (wd >> 3));
        window = base + (base / 8) * u64::from(wd & 7);
        at += 1;
    }
    // A dictionary ID of 0 is the same as none (RFC 8878 3.1.1.1.3).
    let mut dict = 0u32;
    for i in 0..dict_len {
        dict |= u32::from(byte(at + i)?) << (8 * i);
    }
    if dict != 0 {
        return Err(err(at, ErrorKind::Unsupported("zstd dictionary")));
    }
    at += dict_len;
    let mut fcs = 0u64;
    for i in 0..fcs_len {
        fcs |= u64::from(byte(at + i)?) << (8 * i);
    }
    if fcs_len == 2 {
        fcs += 256;
    }
    let content_size = (fcs_len != 0).then_some(fcs);
    if single {
        window = fcs;
    }
    Ok(FrameHeader {
        len: at + fcs_len,
        window,
        content_size,
        checksum: fhd & 0x04 != 0,
    })
}

/// The frame's end after a header of `h.len` bytes: every block header and body present, so
/// that a cut is reported at the input's end before anything is decoded.
fn walk_blocks(d: &[u8], h: &FrameHeader) -> Result<usize, DecompressError> {
    let mut at = h.len;
    // Bounded: each block moves `at` forward by at least 3 bytes.
    loop {
        let (last, ty, size) = block_header(d, at)?;
        let body = if ty == 1 { 1 } else { size };
        at += 3 + body;
        if at > d.len() {
            return Err(err(d.len(), ErrorKind::Truncated));
        }
        if last {
            break;
        }
    }
    if h.checksum {
        at += 4;
        if at > d.len() {
            return Err(err(d.len(), ErrorKind::Truncated));
        }
    }
    Ok(at)
}

/// The block header at `at` (RFC 8878 3.1.1.2): (last block, type, size).
fn block_header(d: &[u8], at: usize) -> Result<(bool, u32, usize), DecompressError> {
    let b = d
        .get(at..at + 3)
        .ok_or(err(d.len(), ErrorKind::Truncated))?;
    let v = u32::from_le_bytes([b[0], b[1], b[2], 0]);
    let (ty, size) = ((v >> 1) & 3, (v >> 3) as usize);
    if ty == 3 {
        return Err(err(at, ErrorKind::Corrupt("reserved block type")));
    }
    if size > MAX_BLOCK {
        return Err(err(at, ErrorKind::Corrupt("block larger than 128 KiB")));
    }
    Ok((v & 1 != 0, ty, size))
}

/// The tables and repeat offsets that carry over from block to block within a frame.
struct Decoder {
    huf: huffman::Huf,
    seq: sequences::Tables,
    /// Repeat offsets (RFC 8878 3.1.1.5), 1, 4 and 8 at the frame's start.
    rep: [u32; 3],
}

impl Decoder {
    /// Decodes compressed block `b` (RFC 8878 3.1.1.3) into `out` at `w`; returns the new
    /// write position.
    fn block(&mut self, b: &[u8], out: &mut [u8], w: usize, window: u64) -> R<usize> {
        let (mut lits, used) = literals::parse(b, &mut self.huf)?;
        let rest = b
            .get(used..)
            .ok_or(corrupt("literals section past the block"))?;
        let (n, used) = self.seq.read_header(rest)?;
        let bits = rest
            .get(used..)
            .ok_or(corrupt("sequences header past the block"))?;
        if n == 0 {
            if !bits.is_empty() {
                return Err(corrupt("bytes after an empty sequences section"));
            }
            let room = out.len();
            let small = ErrorKind::OutputTooSmall { room, needed: None };
            let end = w
                .checked_add(lits.remaining())
                .filter(|&e| e <= room)
                .ok_or(small)?;
            lits.take(&self.huf, out.get_mut(w..end).ok_or(small)?)?;
            lits.finish()?;
            return Ok(end);
        }
        self.seq
            .execute(bits, n, &mut lits, &self.huf, out, w, window, &mut self.rep)
    }
}

/// Decompresses one zstd frame into `out`; checks the content size and checksum if present.
// Not inlined into the dispatcher: one decoder's state at a time on dom0's stack.
#[inline(never)]
pub fn decompress_into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError> {
    let room = out.len();
    let h = frame_header(input)?;
    if let Some(n) = h.content_size.filter(|&n| n > room as u64) {
        return Err(err(
            4,
            ErrorKind::OutputTooSmall {
                room,
                needed: Some(n),
            },
        ));
    }
    let end = walk_blocks(input, &h)?;
    let (Some(huf), Some(seq)) = (huffman::Huf::new(), sequences::Tables::new()) else {
        return Err(err(0, ErrorKind::Unsupported("zstd decoder tables")));
    };
    let mut dec = Decoder {
        huf,
        seq,
        rep: [1, 4, 8],
    };
    let small = ErrorKind::OutputTooSmall { room, needed: None };
    let mut at = h.len;
    let mut written: usize = 0;
    // Bounded by the walk above: the same blocks, already known to be in the input.
    loop {
        let (last, ty, size) = block_header(input, at)?;
        let body = input.get(at + 3..).unwrap_or(&[]);
        let next = match ty {
            0 => {
                let src = body.get(..size).ok_or(err(at, ErrorKind::Truncated))?;
                let dst = written
                    .checked_add(size)
                    .and_then(|e| out.get_mut(written..e))
                    .ok_or(err(at, small))?;
                dst.copy_from_slice(src);
                written + size
            }
            1 => {
                let b = *body.first().ok_or(err(at, ErrorKind::Truncated))?;
                let dst = written
                    .checked_add(size)
                    .and_then(|e| out.get_mut(written..e))
                    .ok_or(err(at, small))?;
                dst.fill(b);
                written + size
            }
            _ => {
                let src = body.get(..size).ok_or(err(at, ErrorKind::Truncated))?;
                dec.block(src, out, written, h.window)
                    .map_err(|k| err(at, k))?
            }
        };
        written = next;
        at += 3 + if ty == 1 { 1 } else { size };
        if last {
            break;
        }
    }
    drop(dec);
    if let Some(n) = h.content_size.filter(|&n| n != written as u64) {
        return Err(err(
            end,
            ErrorKind::SizeMismatch {
                what: "frame content size",
                expected: n,
                produced: written as u64,
            },
        ));
    }
    super::check_trailer(Compression::Zstd, input, end, written)?;
    if h.checksum {
        let want = input
            .get(end - 4..end)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let got = xxh64(out.get(..written).unwrap_or(&[])) as u32;
        if want != got {
            return Err(err(
                end - 4,
                ErrorKind::CheckMismatch {
                    what: "content checksum (XXH64)",
                    expected: u64::from(want),
                    actual: u64::from(got),
                },
            ));
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
