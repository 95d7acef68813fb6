//! Kernel image formats, in one place for dom0 and the host tool: what a kernel file is
//! ([`kernel_format`]), the bzImage setup header and its payload ([`bzimage`]), the payload's
//! compression ([`compression`]), and the ELF64 reader with Xen's ELF notes ([`elf`]: the
//! program headers, the notes, and the PVH kernel a domain builder loads).
//!
//! Nothing here trusts its input: every offset is checked, every error says what and where, and
//! no input makes it panic (host tests feed truncated and random images).

use core::fmt;

pub mod bzimage;
pub mod bzload;
pub mod compression;
pub mod decompress;
pub mod elf;
#[cfg(test)]
pub(crate) mod testutil;

pub use bzimage::{BzError, BzPayload, locate_payload};
pub use bzload::{BzLoad, LoadError, load_bzimage, plan_bzimage};
pub use compression::Compression;
pub use elf::{ElfError, Kernel, Segment};

/// What a kernel file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An ELF file (`vmlinux`); `class` is 32 or 64, `machine` is `e_machine` (62 = x86-64).
    Elf {
        class: u8,
        machine: u16,
    },
    /// A Linux bzImage: boot protocol `version` (e.g. 0x020f), and its compressed payload or
    /// why it cannot be found.
    BzImage {
        version: u16,
        payload: Result<BzPayload, BzError>,
    },
    Unknown,
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KernelFormat::Elf { class, machine } => {
                let m = match machine {
                    62 => "x86-64",
                    3 => "i386",
                    183 => "aarch64",
                    _ => "",
                };
                if m.is_empty() {
                    write!(f, "ELF{class} (machine {machine})")
                } else {
                    write!(f, "ELF{class} {m}")
                }
            }
            KernelFormat::BzImage { version, payload } => {
                write!(
                    f,
                    "bzImage (boot protocol {}.{:02}",
                    version >> 8,
                    version & 0xff
                )?;
                match payload {
                    Ok(p) => write!(
                        f,
                        ", {} payload of {} bytes at {:#x}",
                        p.compression.as_str(),
                        p.len,
                        p.offset
                    )?,
                    Err(e) => write!(f, "; {e}")?,
                }
                f.write_str(")")
            }
            KernelFormat::Unknown => f.write_str("unknown format"),
        }
    }
}

/// Recognises a kernel image: ELF, bzImage (with its payload's compression), or unknown.
pub fn kernel_format(data: &[u8]) -> KernelFormat {
    if data.len() >= 20 && data[..4] == *b"\x7fELF" {
        let class = match data[4] {
            1 => 32,
            2 => 64,
            _ => return KernelFormat::Unknown,
        };
        let machine = if data[5] == 2 {
            u16::from_be_bytes([data[18], data[19]])
        } else {
            xen::le::get_u16(data, 18).unwrap_or(0)
        };
        return KernelFormat::Elf { class, machine };
    }
    match bzimage::protocol(data) {
        Some(version) => KernelFormat::BzImage {
            version,
            payload: locate_payload(data),
        },
        None => KernelFormat::Unknown,
    }
}

#[cfg(test)]
mod tests;
