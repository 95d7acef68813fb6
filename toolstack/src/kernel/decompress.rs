//! Decompressing a bzImage's payload straight into the guest's memory: single-call decoders
//! whose output slice (dom0's mapping of the guest range) is also their dictionary, so dom0's
//! heap holds only each decoder's fixed state, never a copy of the kernel.
//!
//! Why single-call: Linux compresses x86 kernels with large windows (XZ: `--lzma2=,dict=32MiB`
//! in `scripts/xz_wrap.sh`; zstd: `zstd -22 --ultra`, window up to 128 MiB, `scripts/Makefile.lib`
//! `cmd_zstd22`). A ring-buffer decoder would need that window in dom0's heap. Linux's own boot
//! decompressor (`arch/x86/boot/compressed/misc.c`, `lib/decompress_*.c` in "pre-boot" mode)
//! decodes in one call into the output buffer and then moves the ELF's segments into place;
//! [`super::elf::load_in_place`] is that second step.
//!
//! What each format costs on the heap (the output slice is the guest's memory):
//! - gzip ([`miniz_oxide`] raw inflate with a non-wrapping output buffer): one
//!   `DecompressorOxide`, [`GZIP_STATE_BYTES`]; the window is the output itself.
//! - XZ ([`xz4rust`]): one `XzDecoder` ([`XZ_STATE_BYTES`]) and a [`xz::SCRATCH`]-byte staging
//!   buffer; the LZMA2 dictionary is the output slice (see [`xz`] for how, and for the x86 BCJ
//!   filter, which is applied in place afterwards).
//! - zstd (our own decoder, [`zstd`]): the Huffman and FSE decoding tables,
//!   [`ZSTD_STATE_BYTES`]; the window is the output itself, literals are decoded straight into
//!   it.
//!
//! The payload of a bzImage ends with the 4-byte little-endian uncompressed size (Linux's
//! `size_append` in `scripts/Makefile.lib`; for gzip it is the trailer's ISIZE):
//! [`decompressed_size`] reads it, and [`output_room`] says how large the output slice must be.

use core::fmt;

use super::Compression;

mod crc32;
pub mod gzip;
mod xxh64;
pub mod xz;
pub mod zstd;

pub use crc32::{Crc32, crc32};

/// Heap bytes the gzip decoder's state takes (`miniz_oxide`'s `DecompressorOxide`).
pub const GZIP_STATE_BYTES: usize =
    core::mem::size_of::<miniz_oxide::inflate::core::DecompressorOxide>();
/// Heap bytes the XZ decoder's state takes (`xz4rust`'s `XzDecoder`, without its dictionary).
pub const XZ_STATE_BYTES: usize = core::mem::size_of::<xz4rust::XzDecoder<'static>>();
/// Heap bytes the zstd decoder's state takes (its decoding tables).
pub const ZSTD_STATE_BYTES: usize = zstd::STATE_BYTES;

/// What went wrong, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A format this builder does not decode (bzip2, LZMA, LZO, LZ4, unknown).
    NotSupported,
    /// A feature of a supported format that this builder does not decode (`what`).
    Unsupported(&'static str),
    /// The input ends before the stream does.
    Truncated,
    /// The input is not a valid stream at `at`; the reason.
    Corrupt(&'static str),
    /// A check over the data does not match (`what`: which check).
    CheckMismatch {
        what: &'static str,
        expected: u64,
        actual: u64,
    },
    /// The stream would produce more than the output slice holds (`needed`, when known, is how
    /// much room it asks for).
    OutputTooSmall { room: usize, needed: Option<u64> },
    /// The stream produced `produced` bytes but its size field (`what`) says `expected`.
    SizeMismatch {
        what: &'static str,
        expected: u64,
        produced: u64,
    },
}

/// A decompression error: the format, the byte offset in the input where it failed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecompressError {
    pub format: Compression,
    /// Offset in the input (the payload) where decoding stopped.
    pub at: usize,
    pub kind: ErrorKind,
}

impl DecompressError {
    pub(crate) const fn new(format: Compression, at: usize, kind: ErrorKind) -> Self {
        Self { format, at, kind }
    }
}

impl core::error::Error for DecompressError {}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.format.as_str();
        let at = self.at;
        match self.kind {
            ErrorKind::NotSupported => write!(f, "not supported: {name}"),
            ErrorKind::Unsupported(what) => write!(f, "{name}: not supported at {at}: {what}"),
            ErrorKind::Truncated => write!(f, "{name}: truncated at byte {at}"),
            ErrorKind::Corrupt(why) => write!(f, "{name}: corrupt block at {at}: {why}"),
            ErrorKind::CheckMismatch {
                what,
                expected,
                actual,
            } => write!(
                f,
                "{name}: {what} mismatch at {at}: stream says {expected:#x}, data gives \
                 {actual:#x}"
            ),
            ErrorKind::OutputTooSmall { room, needed } => {
                write!(f, "{name}: output larger than {room} bytes")?;
                match needed {
                    Some(n) => write!(f, " ({n} needed, stream at byte {at})"),
                    None => write!(f, " (at byte {at} of the stream)"),
                }
            }
            ErrorKind::SizeMismatch {
                what,
                expected,
                produced,
            } => write!(
                f,
                "{name}: produced {produced} bytes but the {what} says {expected} (at byte {at})"
            ),
        }
    }
}

/// Decompresses `input` (one stream; a bzImage payload with its trailing size is fine) into
/// `out`, which is also the decoder's dictionary; returns the number of bytes written.
///
/// Nothing before the returned length is meaningful on error (the slice may hold partial
/// output); bytes after it are not written, except that XZ may need `out` larger than the
/// output (see [`output_room`]).
pub fn decompress_into(
    c: Compression,
    input: &[u8],
    out: &mut [u8],
) -> Result<usize, DecompressError> {
    match c {
        Compression::Gzip => gzip::decompress_into(input, out),
        Compression::Xz => xz::decompress_into(input, out),
        Compression::Zstd => zstd::decompress_into(input, out),
        other => Err(DecompressError::new(other, 0, ErrorKind::NotSupported)),
    }
}

/// The uncompressed size of a bzImage payload, read before decoding so that dom0 can size its
/// mapping: the last 4 bytes (Linux's `size_append`, gzip's ISIZE). For XZ the stream's index
/// is read too and must agree (it is exact and checked by CRC32). This is a claim of the
/// input; [`decompress_into`] checks it against what the stream produces.
pub fn decompressed_size(c: Compression, payload: &[u8]) -> Result<usize, DecompressError> {
    if !matches!(c, Compression::Gzip | Compression::Xz | Compression::Zstd) {
        return Err(DecompressError::new(c, 0, ErrorKind::NotSupported));
    }
    let n = payload.len();
    let tail = n
        .checked_sub(4)
        .and_then(|at| payload.get(at..))
        .ok_or(DecompressError::new(c, n, ErrorKind::Truncated))?;
    let size = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    if c == Compression::Xz {
        let index = xz::stream_layout(payload)?.uncompressed;
        if index != size as u64 {
            return Err(DecompressError::new(
                c,
                n - 4,
                ErrorKind::SizeMismatch {
                    what: "size appended to the payload",
                    expected: size as u64,
                    produced: index,
                },
            ));
        }
    }
    Ok(size)
}

/// How large the output slice given to [`decompress_into`] must be for `payload`: the
/// uncompressed size, except for XZ, where it is the smallest LZMA2 dictionary size (2^n or
/// 3 * 2^(n-1) bytes) at least that large, so up to 1.5 times it: the decoder's dictionary is
/// the output slice and must be as large as the dictionary the stream is told to use. Bytes
/// past the uncompressed size are never written.
pub fn output_room(c: Compression, payload: &[u8]) -> Result<usize, DecompressError> {
    let size = decompressed_size(c, payload)?;
    if c == Compression::Xz {
        return Ok(xz::dict_room(size as u64).0 as usize);
    }
    Ok(size)
}

/// The bytes after a stream that ends at `end`: nothing, or the 4-byte size Linux appends,
/// which must then be `produced`. Anything else is an error: a stream whose header lost its
/// check (a flipped flag) would otherwise leave its old check bytes behind unnoticed.
pub(crate) fn check_trailer(
    c: Compression,
    input: &[u8],
    end: usize,
    produced: usize,
) -> Result<(), DecompressError> {
    match input.get(end..) {
        Some([]) => Ok(()),
        Some(&[a, b, c4, d]) => {
            let size = u32::from_le_bytes([a, b, c4, d]);
            if size as usize == produced {
                Ok(())
            } else {
                Err(DecompressError::new(
                    c,
                    end,
                    ErrorKind::SizeMismatch {
                        what: "size appended to the payload",
                        expected: u64::from(size),
                        produced: produced as u64,
                    },
                ))
            }
        }
        _ => Err(DecompressError::new(
            c,
            end,
            ErrorKind::Corrupt(
                "unexpected bytes after the stream (only Linux's 4-byte size may follow)",
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
