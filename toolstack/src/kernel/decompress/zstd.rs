//! zstd (RFC 8878) with `ruzstd`. `ruzstd` has no single-call mode: its `DecodeBuffer` is a
//! ring buffer that keeps the frame's window on the heap (it reserves the whole window when a
//! frame starts) and hands out only what lies beyond it. Linux builds zstd kernels from a pipe
//! (`zstd -22 --ultra`, `scripts/Makefile.lib`), so the frame declares the level's window,
//! 128 MiB, and no content size. This module lowers the declared window (the frame header has
//! no checksum) to the smallest window holding the whole output slice: decoding a valid frame
//! is unchanged, and the heap peaks at min(window, output slice) rounded up to a power of two
//! (the ring buffer's capacity) plus one block of 128 KiB and the decoder's tables, not
//! 128 MiB: 64 MiB for Debian's 6.1 kernel (65.9 MB). Pass an output slice cut to
//! [`super::decompressed_size`] to keep that at the kernel's size. `ruzstd` panics if that
//! allocation fails (`RingBuffer::reserve_amortized`): dom0 must have the heap before it
//! decodes a zstd kernel.
//!
//! The frame's structure (block headers, checksum) is walked first, so that a cut-off input is
//! reported as truncated at the exact byte, and each block is decoded on its own so that an
//! error names the block's offset. The content checksum (XXH64) is checked here.

use alloc::boxed::Box;

use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
use ruzstd::io::Read;

use super::xxh64::xxh64;
use super::{Compression, DecompressError, ErrorKind};

const MAGIC: u32 = 0xfd2f_b528;
/// The largest window `ruzstd` takes on a reset (`MAXIMUM_ALLOWED_WINDOW_SIZE`).
const RUZSTD_MAX_WINDOW: u64 = 100 << 20;
/// Largest block content (RFC 8878 3.1.1.2.3: min(window, 128 KiB)).
const MAX_BLOCK: usize = 128 * 1024;

fn err(at: usize, kind: ErrorKind) -> DecompressError {
    DecompressError::new(Compression::Zstd, at, kind)
}

/// A frame header, as read from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: usize,
    /// Offset of the window descriptor, if the frame has one (not single-segment).
    pub window_at: Option<usize>,
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
    if dict_len != 0 {
        return Err(err(
            4,
            ErrorKind::Unsupported("zstd frame with a dictionary"),
        ));
    }
    let fcs_len = match (fhd >> 6, single) {
        (0, false) => 0,
        (0, true) => 1,
        (1, _) => 2,
        (2, _) => 4,
        _ => 8,
    };
    let mut at = 5;
    let mut window = 0;
    let window_at = (!single).then_some(at);
    if !single {
        let wd = byte(at)?;
        let base = 1u64 << (10 + (wd >> 3));
        window = base + (base / 8) * u64::from(wd & 7);
        at += 1;
    }
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
        window_at,
        window,
        content_size,
        checksum: fhd & 0x04 != 0,
    })
}

/// The smallest window descriptor (RFC 8878 3.1.1.1.2) whose window holds `size` bytes.
fn window_descriptor(size: u64) -> (u8, u64) {
    for exp in 0u8..=31 {
        let base = 1u64 << (10 + exp);
        for mantissa in 0u8..8 {
            let w = base + (base / 8) * u64::from(mantissa);
            if w >= size {
                return ((exp << 3) | mantissa, w);
            }
        }
    }
    (0xff, u64::MAX)
}

/// The offsets of the frame's blocks after a header of `hlen` bytes, and the frame's end.
fn walk_blocks(
    d: &[u8],
    h: &FrameHeader,
) -> Result<(alloc::vec::Vec<usize>, usize), DecompressError> {
    let mut blocks = alloc::vec::Vec::new();
    let mut at = h.len;
    loop {
        let b = d
            .get(at..at + 3)
            .ok_or(err(d.len(), ErrorKind::Truncated))?;
        let v = u32::from_le_bytes([b[0], b[1], b[2], 0]);
        let size = (v >> 3) as usize;
        let body = match (v >> 1) & 3 {
            0 | 2 => size,
            1 => 1,
            _ => return Err(err(at, ErrorKind::Corrupt("reserved block type"))),
        };
        if size > MAX_BLOCK {
            return Err(err(at, ErrorKind::Corrupt("block larger than 128 KiB")));
        }
        blocks.push(at);
        at += 3 + body;
        if at > d.len() {
            return Err(err(d.len(), ErrorKind::Truncated));
        }
        if v & 1 != 0 {
            break;
        }
    }
    if h.checksum {
        at += 4;
        if at > d.len() {
            return Err(err(d.len(), ErrorKind::Truncated));
        }
    }
    Ok((blocks, at))
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
    let (blocks, end) = walk_blocks(input, &h)?;
    let mut head = [0u8; 18];
    let head = head
        .get_mut(..h.len)
        .ok_or(err(4, ErrorKind::Corrupt("frame header too long")))?;
    head.copy_from_slice(input.get(..h.len).unwrap_or(&[]));
    // The window needs to hold no more than the whole output: the slice's size, or less when
    // the frame says its content size or the payload ends with the size Linux appends (if that
    // lied, a match reaching past the smaller window is an error in ruzstd, not wrong data).
    let appended = (input.len() == end + 4)
        .then(|| input.get(end..end + 4))
        .flatten()
        .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
    let whole = [h.content_size, appended]
        .into_iter()
        .flatten()
        .fold(room as u64, u64::min);
    let mut window = h.window;
    if let Some(wd_at) = h.window_at {
        let (wd, w) = window_descriptor(whole.max(1024));
        if w < h.window {
            head[wd_at] = wd;
            window = w;
        }
    }
    if window > RUZSTD_MAX_WINDOW {
        return Err(err(
            4,
            ErrorKind::Unsupported("zstd window above 100 MiB (ruzstd's limit)"),
        ));
    }
    let mut decoder = Box::new(FrameDecoder::new());
    // Twice: ruzstd's first `init` creates its ring buffer empty, which then grows by doubling
    // and copying (peak 1.5 times the window: 96 MiB for Debian's 64 MiB); a second `init`
    // resets it, which reserves the whole window in one allocation (ruzstd 0.8,
    // `DecodeBuffer::reset`). The ring rounds its capacity up to a power of two.
    for _ in 0..2 {
        decoder
            .init(&*head)
            .map_err(|_| err(4, ErrorKind::Corrupt("frame header refused by the decoder")))?;
    }
    let mut written = 0;
    for (i, &at) in blocks.iter().enumerate() {
        let next = blocks.get(i + 1).copied().unwrap_or(end);
        let mut src = input.get(at..next).unwrap_or(&[]);
        decoder
            .decode_blocks(&mut src, BlockDecodingStrategy::UptoBlocks(1))
            .map_err(|_| err(at, ErrorKind::Corrupt("invalid compressed block")))?;
        let free = out.get_mut(written..).unwrap_or(&mut []);
        let n = decoder
            .read(free)
            .map_err(|_| err(at, ErrorKind::Corrupt("decoder could not drain")))?;
        written += n;
        if decoder.can_collect() > 0 && written == room {
            return Err(err(at, ErrorKind::OutputTooSmall { room, needed: None }));
        }
    }
    if !decoder.is_finished() {
        return Err(err(end, ErrorKind::Corrupt("frame did not finish")));
    }
    while decoder.can_collect() > 0 {
        let free = out.get_mut(written..).unwrap_or(&mut []);
        let n = decoder
            .read(free)
            .map_err(|_| err(end, ErrorKind::Corrupt("decoder could not drain")))?;
        if n == 0 {
            return Err(err(end, ErrorKind::OutputTooSmall { room, needed: None }));
        }
        written += n;
    }
    drop(decoder);
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
