//! XZ (the `.xz` container, LZMA2, the x86 BCJ filter) with `xz4rust`, whose decoder works
//! only in multi-call mode: a dictionary buffer apart from its output, written as a ring that
//! wraps at the dictionary size the block header declares (Linux: 32 MiB, `scripts/xz_wrap.sh`).
//! Linux's boot decompressor uses XZ Embedded's single-call mode instead (`lib/xz/xz_dec_lzma2.c`,
//! `XZ_SINGLE`: the output buffer is the dictionary). This module gets the same effect:
//!
//! 1. The stream's index (read from the end, CRC-checked) gives the exact uncompressed size;
//!    the stream must have a single block (`xz_wrap.sh` runs `--threads=1`: one block).
//! 2. The block header is copied (at most 1 KiB) and its LZMA2 dictionary-size property is
//!    raised to the smallest size holding the whole output ([`dict_room`]), its CRC32 redone.
//!    A larger dictionary decodes a valid stream to the same bytes; the ring never wraps.
//! 3. The decoder's fixed dictionary is the output slice, so after the last byte it holds the
//!    whole LZMA2 output. Its filtered output goes through a small staging buffer
//!    ([`SCRATCH`] bytes) only to be checked (the block's CRC32/CRC64 by the decoder) and
//!    hashed with CRC32 here.
//! 4. The dictionary holds the data before the BCJ filter (the filter runs on the decoder's
//!    output, `lib/xz/xz_dec_bcj.c`), so [`bcj_x86`] is applied to the whole slice in one
//!    pass, as single-call XZ Embedded does, and the CRC32 of the slice must equal that of the
//!    staged output: a stream that resets its dictionary mid-block, or anything else that
//!    makes the slice differ from what the decoder produced, is an error.
//!
//! Heap: the `XzDecoder` state ([`super::XZ_STATE_BYTES`]) and the staging buffer; the
//! 32 MiB dictionary is the guest's memory.

use alloc::boxed::Box;
use alloc::vec;

use xz4rust::{XzDecoder, XzError};

use super::{Compression, Crc32, DecompressError, ErrorKind, crc32};

/// Bytes of the staging buffer the decoder's output goes through to be checked.
pub const SCRATCH: usize = 16 * 1024;
/// Largest block header (`(size byte + 1) * 4`, size byte <= 255).
const MAX_BLOCK_HEADER: usize = 1024;
const STREAM_HEADER: usize = 12;
const FOOTER: usize = 12;
const MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
/// Filter IDs (xz-file-format.txt, 5.3).
const FILTER_X86: u64 = 0x04;
const FILTER_LZMA2: u64 = 0x21;

fn err(at: usize, kind: ErrorKind) -> DecompressError {
    DecompressError::new(Compression::Xz, at, kind)
}

fn corrupt(at: usize, why: &'static str) -> DecompressError {
    err(at, ErrorKind::Corrupt(why))
}

/// The smallest LZMA2 dictionary size (2^n or 3 * 2^(n-1), at least 4 KiB) holding `size`
/// bytes, and its property byte (xz-file-format.txt 5.3.1), capped at property 39 (3 GiB:
/// the largest `xz4rust` takes).
pub fn dict_room(size: u64) -> (u64, u8) {
    for props in 0u8..=39 {
        let dict = (2 + u64::from(props & 1)) << ((props >> 1) + 11);
        if dict >= size {
            return (dict, props);
        }
    }
    (3 << 30, 39)
}

/// A multibyte integer (xz-file-format.txt 1.2) at `*at`, advancing it.
fn vli(d: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..9 {
        let b = *d.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (i == 0 || b != 0).then_some(v);
        }
    }
    None
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// What the container says, read before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Exact uncompressed size, from the index.
    pub uncompressed: u64,
    /// Offset just past the stream footer.
    pub end: usize,
    /// Size of the (single) block's header, at offset 12.
    pub block_header: usize,
    /// Offset of the LZMA2 dictionary-size property byte in the input.
    pub lzma2_props_at: usize,
    /// The x86 BCJ filter's start offset, if the block uses it.
    pub bcj_x86: Option<u32>,
}

/// Reads the stream header, the footer and index (at the end of `d`, or 4 bytes before it when
/// the kernel build's size follows) and the single block's header.
pub fn stream_layout(d: &[u8]) -> Result<Layout, DecompressError> {
    if d.len() < STREAM_HEADER {
        return Err(err(d.len(), ErrorKind::Truncated));
    }
    if d.get(..6) != Some(&MAGIC[..]) {
        return Err(corrupt(0, "no XZ magic"));
    }
    let flags = d.get(6..8).unwrap_or(&[]);
    let want = le32(d, 8).unwrap_or(0);
    let got = crc32(flags);
    if want != got {
        return Err(check(8, "stream header CRC32", want, got));
    }
    // The footer: at the very end, or before the 4-byte size the kernel build appends.
    let footer_end = [d.len(), d.len().saturating_sub(4)]
        .into_iter()
        .find(|&e| e >= STREAM_HEADER + FOOTER && d.get(e - 2..e) == Some(b"YZ".as_slice()))
        .ok_or(err(d.len(), ErrorKind::Truncated))?;
    let f = footer_end - FOOTER;
    let want = le32(d, f).unwrap_or(0);
    let got = crc32(d.get(f + 4..f + 10).unwrap_or(&[]));
    if want != got {
        return Err(check(f, "stream footer CRC32", want, got));
    }
    if d.get(f + 8..f + 10) != Some(flags) {
        return Err(corrupt(
            f + 8,
            "stream footer flags differ from the header's",
        ));
    }
    let index_len = (u64::from(le32(d, f + 4).unwrap_or(0)) + 1) * 4;
    let index = usize::try_from(index_len)
        .ok()
        .and_then(|n| f.checked_sub(n))
        .filter(|&i| i >= STREAM_HEADER)
        .ok_or(corrupt(f + 4, "index size runs before the stream"))?;
    let records = index_records(d, index, f)?;
    let Some((uncompressed, block_header)) = records else {
        // No block: an empty stream.
        return Ok(Layout {
            uncompressed: 0,
            end: footer_end,
            block_header: 0,
            lzma2_props_at: 0,
            bcj_x86: None,
        });
    };
    let (lzma2_props_at, bcj_x86) = block_filters(d, block_header)?;
    Ok(Layout {
        uncompressed,
        end: footer_end,
        block_header,
        lzma2_props_at,
        bcj_x86,
    })
}

fn check(at: usize, what: &'static str, expected: u32, actual: u32) -> DecompressError {
    err(
        at,
        ErrorKind::CheckMismatch {
            what,
            expected: u64::from(expected),
            actual: u64::from(actual),
        },
    )
}

/// The index at `index..f`: `None` for no block, else the single block's uncompressed size and
/// its header's size (from the first byte of the block, at offset 12).
fn index_records(
    d: &[u8],
    index: usize,
    f: usize,
) -> Result<Option<(u64, usize)>, DecompressError> {
    let want = le32(d, f - 4).unwrap_or(0);
    let got = crc32(d.get(index..f - 4).unwrap_or(&[]));
    if want != got {
        return Err(check(f - 4, "index CRC32", want, got));
    }
    let mut at = index;
    if d.get(at) != Some(&0) {
        return Err(corrupt(at, "no index indicator"));
    }
    at += 1;
    let bad = |at| corrupt(at, "bad index record");
    let count = vli(d, &mut at).ok_or(bad(at))?;
    match count {
        0 => Ok(None),
        1 => {
            vli(d, &mut at).ok_or(bad(at))?;
            let uncompressed = vli(d, &mut at).ok_or(bad(at))?;
            let size = *d.get(STREAM_HEADER).ok_or(bad(STREAM_HEADER))?;
            if size == 0 {
                return Err(corrupt(
                    STREAM_HEADER,
                    "index lists a block but none follows",
                ));
            }
            Ok(Some((uncompressed, (usize::from(size) + 1) * 4)))
        }
        _ => Err(err(
            index,
            ErrorKind::Unsupported("XZ stream of more than one block (Linux makes one)"),
        )),
    }
}

/// Checks the block header at 12 (its CRC32 and filter chain: an optional x86 BCJ, then LZMA2)
/// and returns where the LZMA2 property byte is and the BCJ start offset.
fn block_filters(d: &[u8], len: usize) -> Result<(usize, Option<u32>), DecompressError> {
    let h = STREAM_HEADER;
    let end = h + len;
    if end > d.len() {
        return Err(err(d.len(), ErrorKind::Truncated));
    }
    let want = le32(d, end - 4).unwrap_or(0);
    let got = crc32(d.get(h..end - 4).unwrap_or(&[]));
    if want != got {
        return Err(check(end - 4, "block header CRC32", want, got));
    }
    let flags = *d.get(h + 1).unwrap_or(&0);
    if flags & 0x3c != 0 {
        return Err(corrupt(h + 1, "reserved block flags are set"));
    }
    let mut at = h + 2;
    let bad = |at| corrupt(at, "bad block header field");
    for present in [0x40, 0x80] {
        if flags & present != 0 {
            vli(d, &mut at).ok_or(bad(at))?;
        }
    }
    let filters = usize::from(flags & 3) + 1;
    let mut bcj = None;
    for i in 0..filters {
        let id_at = at;
        let id = vli(d, &mut at).ok_or(bad(at))?;
        let size = vli(d, &mut at).ok_or(bad(at))?;
        let props = at;
        at = usize::try_from(size)
            .ok()
            .and_then(|s| at.checked_add(s))
            .filter(|&a| a <= end - 4)
            .ok_or(bad(props))?;
        let last = i + 1 == filters;
        match (id, size, last) {
            (FILTER_LZMA2, 1, true) => return Ok((props, bcj)),
            (FILTER_X86, 0, false) => bcj = Some(0),
            (FILTER_X86, 4, false) => bcj = le32(d, props),
            (FILTER_LZMA2, _, _) => return Err(corrupt(id_at, "LZMA2 is not the last filter")),
            _ => {
                return Err(err(
                    id_at,
                    ErrorKind::Unsupported("XZ filter other than x86 BCJ and LZMA2"),
                ));
            }
        }
    }
    Err(corrupt(at, "no LZMA2 filter"))
}

/// What `xz4rust` said, as an error kind.
fn kind(e: &XzError, room: usize) -> ErrorKind {
    use ErrorKind::{CheckMismatch, Corrupt};
    let mismatch = |what, expected: u64, actual: u64| CheckMismatch {
        what,
        expected,
        actual,
    };
    match *e {
        XzError::ContentCrc32Mismatch(a, x) => {
            mismatch("CRC32 of the data", u64::from(x), u64::from(a))
        }
        XzError::ContentCrc64Mismatch(a, x) => mismatch("CRC64 of the data", x, a),
        XzError::IndexCrc32Mismatch(a, x) => mismatch("index CRC32", u64::from(x), u64::from(a)),
        XzError::BlockHeaderCrc32Mismatch(a, x) => {
            mismatch("block header CRC32", u64::from(x), u64::from(a))
        }
        XzError::DictionaryTooLarge(n) => ErrorKind::OutputTooSmall {
            room,
            needed: Some(n),
        },
        XzError::UnsupportedCheckType(_) | XzError::Sha256NotSupported => {
            ErrorKind::Unsupported("XZ check type other than none, CRC32 and CRC64")
        }
        XzError::CorruptedDataInLzma | XzError::DictionaryOverflow => Corrupt("invalid LZMA2 data"),
        XzError::LzmaPropertiesInvalid
        | XzError::LzmaPropertiesMissing
        | XzError::LzmaPropertiesTooLarge
        | XzError::UnsupportedLzmaProperties(_)
        | XzError::LzmaDictionaryResetExcepted => Corrupt("invalid LZMA2 chunk header"),
        XzError::MoreDataInBlockBodyThanHeaderIndicated
        | XzError::LessDataInBlockBodyThanHeaderIndicated => {
            Corrupt("block size differs from its header")
        }
        XzError::CorruptedDataInBlockIndex | XzError::FooterDecoderIndexMismatch(..) => {
            Corrupt("index does not match the blocks")
        }
        _ => Corrupt("invalid XZ container"),
    }
}

/// Decompresses one XZ stream into `out` (which must be [`super::output_room`] bytes at
/// least; see the module documentation).
// Not inlined into the dispatcher: one decoder's state at a time on dom0's stack.
#[inline(never)]
pub fn decompress_into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError> {
    let layout = stream_layout(input)?;
    let room = out.len();
    let size = usize::try_from(layout.uncompressed).unwrap_or(usize::MAX);
    super::check_trailer(Compression::Xz, input, layout.end, size)?;
    if size == 0 {
        return Ok(0);
    }
    let (dict, props) = dict_room(layout.uncompressed);
    if dict > room as u64 {
        return Err(err(
            layout.lzma2_props_at,
            ErrorKind::OutputTooSmall {
                room,
                needed: Some(dict),
            },
        ));
    }
    // The stream header and the block header, with the dictionary as large as the output.
    let head_len = STREAM_HEADER + layout.block_header;
    let mut head = [0u8; STREAM_HEADER + MAX_BLOCK_HEADER];
    let (head, rest) = match (head.get_mut(..head_len), input.get(..head_len)) {
        (Some(h), Some(src)) => {
            h.copy_from_slice(src);
            (h, input.get(head_len..).unwrap_or(&[]))
        }
        _ => return Err(err(input.len(), ErrorKind::Truncated)),
    };
    *head
        .get_mut(layout.lzma2_props_at)
        .ok_or(corrupt(layout.lzma2_props_at, "bad block header"))? = props;
    let c = crc32(head.get(STREAM_HEADER..head_len - 4).unwrap_or(&[]));
    if let Some(b) = head.get_mut(head_len - 4..head_len) {
        b.copy_from_slice(&c.to_le_bytes());
    }

    let staged = {
        let mut decoder = Box::new(XzDecoder::with_fixed_size_dict(&mut *out));
        let mut scratch = vec![0u8; SCRATCH];
        let mut crc = Crc32::new();
        let mut produced = 0u64;
        let mut done = false;
        for (base, piece) in [(0, &*head), (head_len, rest)] {
            let mut off = 0;
            while !done {
                let at = base + off;
                let r = match decoder.decode(piece.get(off..).unwrap_or(&[]), &mut scratch) {
                    Ok(r) => r,
                    // Not an error: the decoder wants more input than is left in this piece.
                    Err(XzError::NeedsLargerInputBuffer) => break,
                    Err(e) => return Err(err(at, kind(&e, room))),
                };
                let (used, made) = (r.input_consumed(), r.output_produced());
                off += used;
                crc.update(scratch.get(..made).unwrap_or(&[]));
                produced += made as u64;
                if produced > layout.uncompressed {
                    return Err(err(
                        base + off,
                        ErrorKind::SizeMismatch {
                            what: "index",
                            expected: layout.uncompressed,
                            produced,
                        },
                    ));
                }
                done = r.is_end_of_stream();
                if !r.made_progress() {
                    if off < piece.len() {
                        return Err(corrupt(at, "the decoder made no progress"));
                    }
                    break;
                }
            }
        }
        if !done {
            return Err(err(input.len(), ErrorKind::Truncated));
        }
        if produced != layout.uncompressed {
            return Err(err(
                layout.end,
                ErrorKind::SizeMismatch {
                    what: "index",
                    expected: layout.uncompressed,
                    produced,
                },
            ));
        }
        crc.finish()
    };
    let data = out.get_mut(..size).ok_or(err(
        layout.end,
        ErrorKind::OutputTooSmall { room, needed: None },
    ))?;
    if let Some(start) = layout.bcj_x86 {
        bcj_x86(data, start);
    }
    let got = crc32(data);
    if got != staged {
        return Err(check(
            layout.end,
            "CRC32 of the output in place (the dictionary was reset mid-block?)",
            staged,
            got,
        ));
    }
    Ok(size)
}

/// Reverses the x86 BCJ filter over a whole buffer that starts at stream position `start`.
///
/// The encoder turned the 32-bit relative operand of each `E8` (call) / `E9` (jmp) byte whose
/// operand's top byte is 00 or FF into an absolute address (position + 5 + operand), so that
/// calls to one function compress alike; a small history of recent `E8`/`E9` bytes (`mask`,
/// the last three positions) decides which candidates were converted, exactly as the encoder
/// did (the algorithm of the LZMA SDK's `Bra86.c`, which XZ's `simple/x86.c` and Linux's
/// `lib/xz/xz_dec_bcj.c` share). The last four bytes are never converted.
pub fn bcj_x86(buf: &mut [u8], start: u32) {
    // For each mask of recent candidates: may the current one be converted, and which byte of
    // the operand to test.
    const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const BYTE: [usize; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    let top = |b: u8| b == 0 || b == 0xff;
    let Some(limit) = buf.len().checked_sub(4) else {
        return;
    };
    let mut mask = 0usize;
    let mut last: Option<usize> = None;
    let mut i = 0;
    while i < limit {
        if buf[i] & 0xfe != 0xe8 {
            i += 1;
            continue;
        }
        let gap = last.map_or(usize::MAX, |p| i - p);
        last = Some(i);
        if gap > 3 {
            mask = 0;
        } else {
            mask = (mask << (gap - 1)) & 7;
            if mask != 0 && (!ALLOWED[mask] || top(buf[i + 4 - BYTE[mask]])) {
                mask = ((mask << 1) & 7) | 1;
                i += 1;
                continue;
            }
        }
        if !top(buf[i + 4]) {
            mask = ((mask << 1) & 7) | 1;
            i += 1;
            continue;
        }
        let mut src = u32::from_le_bytes([buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4]]);
        let here = start.wrapping_add(i as u32).wrapping_add(5);
        let mut dest = src.wrapping_sub(here);
        // The operand byte the history points at was tested above (not 00/FF), so this undoes
        // at most one extra step of the encoder (bounded anyway: no input may make it spin).
        for _ in 0..4 {
            let shift = BYTE[mask] * 8;
            if mask == 0 || !top((dest >> (24 - shift)) as u8) {
                break;
            }
            src = dest ^ ((1u32 << (32 - shift)) - 1);
            dest = src.wrapping_sub(here);
        }
        dest &= 0x01ff_ffff;
        dest |= 0u32.wrapping_sub(dest & 0x0100_0000);
        buf[i + 1..i + 5].copy_from_slice(&dest.to_le_bytes());
        i += 5;
    }
}
