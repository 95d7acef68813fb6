//! The Linux x86 bzImage: the boot sector and setup header (Linux's
//! `Documentation/arch/x86/boot.rst`), and where its compressed kernel lies (boot protocol 2.08
//! and later: `payload_offset` and `payload_length`, relative to the protected-mode code at
//! `(setup_sects + 1) * 512`). Every field is bounds-checked: a hostile image gets an error.

use core::fmt;

use xen::le::{get_u16, get_u32};

use super::Compression;

/// `setup_sects`: 512-byte sectors of real-mode setup code (0 means 4).
pub const SETUP_SECTS: usize = 0x1f1;
/// `boot_flag`: 0xAA55.
pub const BOOT_FLAG: usize = 0x1fe;
/// `header`: the "HdrS" signature.
pub const HEADER_MAGIC: usize = 0x202;
/// `version`: the boot protocol version.
pub const VERSION: usize = 0x206;
/// `payload_offset` (protocol 2.08+).
pub const PAYLOAD_OFFSET: usize = 0x248;
/// `payload_length` (protocol 2.08+).
pub const PAYLOAD_LENGTH: usize = 0x24c;
/// The setup header up to `payload_length`.
pub const HEADER_END: usize = 0x250;
/// `pref_address` (protocol 2.10+): the preferred load address, `LOAD_PHYSICAL_ADDR`.
pub const PREF_ADDRESS: usize = 0x258;
/// `init_size` (protocol 2.10+): the linear memory the kernel needs from its load address
/// while it decompresses and sets itself up (`arch/x86/boot/header.S`: the larger of the
/// decompressor's and the decompressed kernel's needs).
pub const INIT_SIZE: usize = 0x260;

/// Where a bzImage's compressed kernel lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BzPayload {
    /// Boot protocol version, e.g. `0x020f`.
    pub protocol: u16,
    /// Offset of the payload in the file.
    pub offset: usize,
    /// Length of the payload, including the 4-byte uncompressed size the kernel build appends.
    pub len: usize,
    pub compression: Compression,
}

/// Why a file is not a bzImage this code can take the kernel out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BzError {
    TooShort(usize),
    NoBootFlag,
    NoHdrS,
    OldProtocol(u16),
    Overflow,
    PastEnd {
        offset: usize,
        end: usize,
        setup_sects: usize,
        rel: usize,
        len: usize,
        file: usize,
    },
    PayloadTooShort(usize),
    UnknownCompression {
        offset: usize,
        head: [u8; 6],
    },
}

impl core::error::Error for BzError {}

impl fmt::Display for BzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BzError::TooShort(n) => write!(
                f,
                "{n} bytes is too short for a bzImage setup header (0x{HEADER_END:x} bytes)"
            ),
            BzError::NoBootFlag => f.write_str("not a bzImage: no 0xAA55 boot flag at 0x1FE"),
            BzError::NoHdrS => {
                f.write_str("not a bzImage: no \"HdrS\" setup header signature at 0x202")
            }
            BzError::OldProtocol(p) => write!(
                f,
                "bzImage boot protocol {}.{:02} has no payload fields (2.08 or later needed)",
                p >> 8,
                p & 0xff
            ),
            BzError::Overflow => f.write_str("bzImage payload offset or length overflows"),
            BzError::PastEnd {
                offset,
                end,
                setup_sects,
                rel,
                len,
                file,
            } => write!(
                f,
                "bzImage payload 0x{offset:x}..0x{end:x} (setup_sects {setup_sects}, \
                 payload_offset 0x{rel:x}, payload_length 0x{len:x}) runs past the end of the \
                 {file}-byte file"
            ),
            BzError::PayloadTooShort(n) => write!(
                f,
                "bzImage payload of {n} bytes is too short to hold a compressed kernel"
            ),
            BzError::UnknownCompression { offset, head } => write!(
                f,
                "bzImage payload at 0x{offset:x} starts with {head:02x?}: no compression this \
                 code knows (gzip, XZ, zstd, LZ4, bzip2, LZMA, LZO)"
            ),
        }
    }
}

/// Whether `data` carries the bzImage setup header signature ("HdrS" at 0x202).
pub fn is_bzimage(data: &[u8]) -> bool {
    data.get(HEADER_MAGIC..HEADER_MAGIC + 4) == Some(b"HdrS".as_slice())
}

/// The boot protocol version of a file with the "HdrS" signature.
pub fn protocol(data: &[u8]) -> Option<u16> {
    is_bzimage(data).then(|| get_u16(data, VERSION))?
}

/// `pref_address`, for boot protocol 2.10 and later.
pub fn pref_address(image: &[u8]) -> Option<u64> {
    (protocol(image)? >= 0x020a).then(|| xen::le::get_u64(image, PREF_ADDRESS))?
}

/// `init_size`, for boot protocol 2.10 and later.
pub fn init_size(image: &[u8]) -> Option<u32> {
    (protocol(image)? >= 0x020a).then(|| get_u32(image, INIT_SIZE))?
}

/// Finds the compressed kernel of a bzImage from its setup header.
pub fn locate_payload(image: &[u8]) -> Result<BzPayload, BzError> {
    if image.len() < HEADER_END {
        return Err(BzError::TooShort(image.len()));
    }
    if get_u16(image, BOOT_FLAG) != Some(0xaa55) {
        return Err(BzError::NoBootFlag);
    }
    if !is_bzimage(image) {
        return Err(BzError::NoHdrS);
    }
    let protocol = get_u16(image, VERSION).unwrap_or(0);
    if protocol < 0x0208 {
        return Err(BzError::OldProtocol(protocol));
    }
    let setup_sects = match image[SETUP_SECTS] {
        0 => 4,
        n => usize::from(n),
    };
    let pm_start = (setup_sects + 1) * 512;
    let rel = get_u32(image, PAYLOAD_OFFSET).unwrap_or(0) as usize;
    let len = get_u32(image, PAYLOAD_LENGTH).unwrap_or(0) as usize;
    let offset = pm_start.checked_add(rel).ok_or(BzError::Overflow)?;
    let end = offset.checked_add(len).ok_or(BzError::Overflow)?;
    if end > image.len() {
        return Err(BzError::PastEnd {
            offset,
            end,
            setup_sects,
            rel,
            len,
            file: image.len(),
        });
    }
    if len < 8 {
        return Err(BzError::PayloadTooShort(len));
    }
    let payload = &image[offset..end];
    let compression = Compression::detect(payload);
    if compression == Compression::Unknown {
        let mut head = [0u8; 6];
        head.copy_from_slice(&payload[..6]);
        return Err(BzError::UnknownCompression { offset, head });
    }
    Ok(BzPayload {
        protocol,
        offset,
        len,
        compression,
    })
}
