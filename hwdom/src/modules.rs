//! Boot modules: what each one is (from its first bytes), and the boot bundle's DomUs.
//!
//! A module dom0 does not recognise is an error in the report and is ignored; a bundle that does
//! not parse is refused with `toolstack::bundle`'s reason; neither stops the boot.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use log::info;
use report::{BootReport, ModuleStatus, ModuleSummary};
use xen::start_info::ModuleInfo;

use toolstack::kernel::{Compression, bzimage};

use crate::finding;
use crate::platform::Platform;

/// What a module is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    /// dom0's boot bundle (`toolstack::bundle`, magic `XDB0BNDL`).
    BootBundle,
    Elf,
    /// A Linux bzImage (`toolstack::kernel::bzimage`).
    BzImage,
    /// Compressed data (`toolstack::kernel::Compression`, never `Unknown`).
    Compressed(Compression),
    /// A newc cpio archive (an initramfs).
    Cpio,
}

impl ModuleKind {
    /// The report's words for it.
    pub fn name(self) -> &'static str {
        match self {
            ModuleKind::BootBundle => "boot bundle",
            ModuleKind::Elf => "ELF image",
            ModuleKind::BzImage => "bzImage",
            ModuleKind::Compressed(c) => match c {
                Compression::Gzip => "gzip data",
                Compression::Xz => "xz data",
                Compression::Zstd => "zstd data",
                Compression::Lz4 => "lz4 data",
                Compression::Bzip2 => "bzip2 data",
                Compression::Lzma => "lzma data",
                Compression::Lzo => "lzo data",
                Compression::Unknown => "data",
            },
            ModuleKind::Cpio => "cpio archive",
        }
    }
}

/// Bytes of a module's head that [`classify`] looks at (a bzImage's setup header included).
pub const HEAD_LEN: usize = bzimage::HEADER_END;

/// What a module looks like from its first bytes; the bytes themselves when not recognised.
pub fn classify(head: &[u8]) -> Result<ModuleKind, String> {
    match head {
        [b'X', b'D', b'B', b'0', b'B', b'N', b'D', b'L', ..] => Ok(ModuleKind::BootBundle),
        [0x7f, b'E', b'L', b'F', ..] => Ok(ModuleKind::Elf),
        [b'0', b'7', b'0', b'7', b'0', b'1' | b'2', ..] => Ok(ModuleKind::Cpio),
        _ if bzimage::is_bzimage(head) => Ok(ModuleKind::BzImage),
        _ => match Compression::detect(head) {
            Compression::Unknown => {
                let mut s = String::new();
                for b in head.iter().take(8) {
                    let _ = write!(s, "{b:02x} ");
                }
                Err(format!("first bytes {}", s.trim_end()))
            }
            c => Ok(ModuleKind::Compressed(c)),
        },
    }
}

/// Describe every module in the report; returns the boot bundle's bytes when one parsed.
pub fn survey<'a, P: Platform>(
    p: &'a P,
    rep: &mut BootReport,
    modules: &[ModuleInfo],
) -> Option<&'a [u8]> {
    let mut bundle = None;
    for m in modules {
        let mut head = [0u8; HEAD_LEN];
        let n = head
            .len()
            .min(usize::try_from(m.size).unwrap_or(usize::MAX));
        let kind = match p.phys().read(m.paddr, &mut head[..n]) {
            Ok(()) => classify(&head[..n]),
            Err(e) => Err(format!("unreadable: {e}")),
        };
        let (kind, status) = match kind {
            Ok(ModuleKind::BootBundle) => match read_bundle(p, m, rep) {
                Ok((bytes, status)) => {
                    bundle = Some(bytes);
                    (
                        ModuleKind::BootBundle.name().to_string(),
                        ModuleStatus::Used(status),
                    )
                }
                Err(why) => (
                    ModuleKind::BootBundle.name().to_string(),
                    ModuleStatus::Rejected(why),
                ),
            },
            Ok(k) => {
                info!(
                    "module {}: {} bytes at {:#x}: {}",
                    m.index,
                    m.size,
                    m.paddr,
                    k.name()
                );
                (k.name().to_string(), ModuleStatus::Recognised)
            }
            Err(why) => {
                finding::error(
                    rep,
                    format!(
                        "module {} ({} bytes at {:#x}): not recognised ({why}); ignored",
                        m.index, m.size, m.paddr
                    ),
                );
                (
                    "unknown".to_string(),
                    ModuleStatus::Rejected(format!("not recognised ({why})")),
                )
            }
        };
        rep.modules.push(ModuleSummary {
            index: m.index,
            paddr: m.paddr,
            size: m.size,
            cmdline: m.cmdline.clone(),
            kind,
            status,
        });
    }
    bundle
}

/// Parse a boot bundle module in place (`toolstack::bundle`) and describe its DomUs: the bytes
/// and the report's status line, or why it was refused (also an error in the report).
fn read_bundle<'a, P: Platform>(
    p: &'a P,
    m: &ModuleInfo,
    rep: &mut BootReport,
) -> Result<(&'a [u8], String), String> {
    let Some(bytes) = p.module_bytes(m.paddr, m.size) else {
        let msg = format!("module {}: not in the identity map; not read", m.index);
        finding::error(rep, msg.clone());
        return Err(msg);
    };
    match toolstack::bundle::parse(bytes) {
        Ok(b) => {
            let doms: Vec<String> = b
                .domains
                .iter()
                .map(|d| {
                    let kernel = b
                        .kernel_of(d)
                        .map(|k| format!("{}", toolstack::kernel::kernel_format(k.data)))
                        .unwrap_or_else(|| "missing".to_string());
                    format!(
                        "{} ({} MiB, {} vCPU{}, kernel {}: {kernel}{})",
                        d.name,
                        d.memory_mib,
                        d.vcpus,
                        if d.vcpus == 1 { "" } else { "s" },
                        d.kernel,
                        d.initrd
                            .as_ref()
                            .map_or(String::new(), |i| format!(", initrd {i}"))
                    )
                })
                .collect();
            info!(
                "module {}: boot bundle with {} DomU(s): {}",
                m.index,
                b.domains.len(),
                doms.join("; ")
            );
            let status = format!(
                "{} DomU(s), {} file(s): {}",
                b.domains.len(),
                b.files.len(),
                doms.join("; ")
            );
            Ok((bytes, status))
        }
        Err(e) => {
            finding::error(
                rep,
                format!("module {}: boot bundle rejected: {e}", m.index),
            );
            Err(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests;
