//! gzip (RFC 1952): the member header and trailer are read here, the deflate stream (RFC 1951)
//! by `miniz_oxide`'s raw inflater in one call with `TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF`,
//! so the output slice is the 32 KiB history window and nothing but the inflater's state is
//! allocated. Linux builds gzip kernels with `gzip -n -f -9` and appends nothing (the
//! trailer's ISIZE is the size).

use alloc::boxed::Box;

use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

use super::{Compression, DecompressError, ErrorKind, crc32};

const FHCRC: u8 = 1 << 1;
const FEXTRA: u8 = 1 << 2;
const FNAME: u8 = 1 << 3;
const FCOMMENT: u8 = 1 << 4;
const FRESERVED: u8 = 0xe0;

fn err(at: usize, kind: ErrorKind) -> DecompressError {
    DecompressError::new(Compression::Gzip, at, kind)
}

/// Length of the member header at the start of `d`.
pub fn header_len(d: &[u8]) -> Result<usize, DecompressError> {
    let byte = |at: usize| d.get(at).copied().ok_or(err(d.len(), ErrorKind::Truncated));
    if byte(0)? != 0x1f || byte(1)? != 0x8b {
        return Err(err(0, ErrorKind::Corrupt("no gzip magic 1f 8b")));
    }
    if byte(2)? != 8 {
        return Err(err(
            2,
            ErrorKind::Corrupt("compression method is not deflate (8)"),
        ));
    }
    let flags = byte(3)?;
    if flags & FRESERVED != 0 {
        return Err(err(3, ErrorKind::Corrupt("reserved header flags are set")));
    }
    let mut at = 10;
    byte(at - 1)?;
    if flags & FEXTRA != 0 {
        let xlen = usize::from(u16::from_le_bytes([byte(at)?, byte(at + 1)?]));
        at += 2 + xlen;
        if at > d.len() {
            return Err(err(d.len(), ErrorKind::Truncated));
        }
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = d.get(at..).unwrap_or(&[]);
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(err(d.len(), ErrorKind::Truncated))?;
            at += nul + 1;
        }
    }
    if flags & FHCRC != 0 {
        let want = u16::from_le_bytes([byte(at)?, byte(at + 1)?]);
        let got = (crc32(d.get(..at).unwrap_or(&[])) & 0xffff) as u16;
        if want != got {
            return Err(err(
                at,
                ErrorKind::CheckMismatch {
                    what: "header CRC16",
                    expected: u64::from(want),
                    actual: u64::from(got),
                },
            ));
        }
        at += 2;
    }
    Ok(at)
}

/// Decompresses one gzip member into `out`; checks CRC32 and ISIZE.
// Not inlined into the dispatcher: one decoder's state at a time on dom0's stack.
#[inline(never)]
pub fn decompress_into(input: &[u8], out: &mut [u8]) -> Result<usize, DecompressError> {
    let start = header_len(input)?;
    let body = input.get(start..).unwrap_or(&[]);
    let mut state = Box::<DecompressorOxide>::default();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, used, written) = decompress(&mut state, body, out, 0, flags);
    let at = start + used;
    match status {
        TINFLStatus::Done => {}
        TINFLStatus::HasMoreOutput => {
            return Err(err(
                at,
                ErrorKind::OutputTooSmall {
                    room: out.len(),
                    needed: None,
                },
            ));
        }
        // Without TINFL_FLAG_HAS_MORE_INPUT, running out of input is reported as "cannot make
        // progress" (or "needs more input"): the stream is cut short.
        TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
            return Err(err(input.len(), ErrorKind::Truncated));
        }
        TINFLStatus::Failed => {
            return Err(err(at, ErrorKind::Corrupt("invalid deflate data")));
        }
        TINFLStatus::Adler32Mismatch | TINFLStatus::BadParam => {
            return Err(err(at, ErrorKind::Corrupt("inflater refused the stream")));
        }
    }
    let trailer = input
        .get(at..at + 8)
        .ok_or(err(input.len(), ErrorKind::Truncated))?;
    let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let data = out.get(..written).unwrap_or(&[]);
    let got = crc32(data);
    if got != want_crc {
        return Err(err(
            at,
            ErrorKind::CheckMismatch {
                what: "CRC32",
                expected: u64::from(want_crc),
                actual: u64::from(got),
            },
        ));
    }
    if isize != written as u32 {
        return Err(err(
            at + 4,
            ErrorKind::SizeMismatch {
                what: "ISIZE",
                expected: u64::from(isize),
                produced: written as u64,
            },
        ));
    }
    super::check_trailer(Compression::Gzip, input, at + 8, written)?;
    Ok(written)
}
