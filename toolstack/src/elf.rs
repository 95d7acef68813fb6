//! The parts of an ELF64 kernel a PVH domain builder needs: loadable segments (by physical
//! address, `p_paddr`, as libxc does for HVM containers) and the Xen ELF notes, above all
//! `XEN_ELFNOTE_PHYS32_ENTRY` (public/elfnote.h). Every offset and size is checked against the
//! file before use: a hostile kernel gets an error, never a panic.

use alloc::vec::Vec;
use core::fmt;

use xen::le::{get_u16 as u16_at, get_u32 as u32_at, get_u64 as u64_at};

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical entry point of the PVH ABI.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// `XEN_ELFNOTE_GUEST_OS`.
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

/// A loadable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address.
    pub paddr: u64,
    /// Bytes taken from the file (`offset..offset+filesz`).
    pub offset: u64,
    pub filesz: u64,
    /// Bytes in memory; `memsz - filesz` are zeroed (bss).
    pub memsz: u64,
}

/// A parsed PVH-capable kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    pub segments: Vec<Segment>,
    /// `XEN_ELFNOTE_PHYS32_ENTRY`.
    pub entry: u32,
    /// `XEN_ELFNOTE_SUPPORTED_FEATURES`, if present.
    pub features: Option<u32>,
    /// `XEN_ELFNOTE_GUEST_OS`, if present.
    pub guest_os: Option<alloc::string::String>,
    /// Lowest and highest (exclusive) physical address any segment occupies.
    pub start: u64,
    pub end: u64,
}

/// Why a kernel cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    NotX86_64,
    Truncated(&'static str),
    BadSegment {
        index: usize,
        why: &'static str,
    },
    NoLoadSegments,
    /// No `XEN_ELFNOTE_PHYS32_ENTRY`: not a PVH kernel.
    NoPvhEntry,
    EntryOutsideSegments(u32),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::NotX86_64 => write!(f, "not a 64-bit little-endian x86-64 ELF"),
            ElfError::Truncated(what) => write!(f, "truncated: {what} runs past the end"),
            ElfError::BadSegment { index, why } => write!(f, "program header {index}: {why}"),
            ElfError::NoLoadSegments => write!(f, "no PT_LOAD segments"),
            ElfError::NoPvhEntry => write!(
                f,
                "no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel (Linux needs CONFIG_PVH=y)"
            ),
            ElfError::EntryOutsideSegments(e) => {
                write!(f, "PVH entry {e:#x} is outside every loadable segment")
            }
        }
    }
}

/// Highest physical address a segment may reach (the PVH entry is 32-bit: the kernel must be
/// loaded below 4 GiB).
pub const LOAD_LIMIT: u64 = 1 << 32;

/// Parse `data` as a PVH kernel.
pub fn parse(data: &[u8]) -> Result<Kernel, ElfError> {
    if data.get(0..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    // EI_CLASS 2 (64-bit), EI_DATA 1 (little-endian), e_machine 62 (x86-64)
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) || u16_at(data, 18) != Some(62) {
        return Err(ElfError::NotX86_64);
    }
    let phoff = u64_at(data, 32).ok_or(ElfError::Truncated("ELF header"))?;
    let phentsize = u64::from(u16_at(data, 54).ok_or(ElfError::Truncated("ELF header"))?);
    let phnum = u64::from(u16_at(data, 56).ok_or(ElfError::Truncated("ELF header"))?);
    if phentsize < 56 {
        return Err(ElfError::Truncated(
            "program header entries (e_phentsize < 56)",
        ));
    }
    phoff
        .checked_add(phentsize * phnum)
        .filter(|&e| e <= data.len() as u64)
        .ok_or(ElfError::Truncated("program header table"))?;
    let mut segments = Vec::new();
    let mut entry = None;
    let mut features = None;
    let mut guest_os = None;
    for i in 0..phnum {
        let o = (phoff + i * phentsize) as usize;
        let p_type = u32_at(data, o).ok_or(ElfError::Truncated("program header"))?;
        let offset = u64_at(data, o + 8).ok_or(ElfError::Truncated("program header"))?;
        let paddr = u64_at(data, o + 24).ok_or(ElfError::Truncated("program header"))?;
        let filesz = u64_at(data, o + 32).ok_or(ElfError::Truncated("program header"))?;
        let memsz = u64_at(data, o + 40).ok_or(ElfError::Truncated("program header"))?;
        let index = i as usize;
        let file_end = offset
            .checked_add(filesz)
            .filter(|&e| e <= data.len() as u64)
            .ok_or(ElfError::BadSegment {
                index,
                why: "file bytes run past the end of the file",
            })?;
        match p_type {
            PT_LOAD => {
                if filesz > memsz {
                    return Err(ElfError::BadSegment {
                        index,
                        why: "p_filesz is larger than p_memsz",
                    });
                }
                if memsz == 0 {
                    continue;
                }
                if paddr.checked_add(memsz).is_none_or(|e| e > LOAD_LIMIT) {
                    return Err(ElfError::BadSegment {
                        index,
                        why: "loads above 4 GiB",
                    });
                }
                segments.push(Segment {
                    paddr,
                    offset,
                    filesz,
                    memsz,
                });
            }
            PT_NOTE => {
                let notes = &data[offset as usize..file_end as usize];
                scan_notes(notes, &mut entry, &mut features, &mut guest_os);
            }
            _ => {}
        }
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    segments.sort_by_key(|s| s.paddr);
    for (i, w) in segments.windows(2).enumerate() {
        if w[0].paddr + w[0].memsz > w[1].paddr {
            return Err(ElfError::BadSegment {
                index: i + 1,
                why: "overlaps another loadable segment",
            });
        }
    }
    let entry = entry.ok_or(ElfError::NoPvhEntry)?;
    if !segments
        .iter()
        .any(|s| u64::from(entry) >= s.paddr && u64::from(entry) < s.paddr + s.memsz)
    {
        return Err(ElfError::EntryOutsideSegments(entry));
    }
    let start = segments[0].paddr;
    let end = segments
        .iter()
        .map(|s| s.paddr + s.memsz)
        .max()
        .unwrap_or(start);
    Ok(Kernel {
        segments,
        entry,
        features,
        guest_os,
        start,
        end,
    })
}

/// Walk ELF notes (namesz, descsz, type, name padded to 4, desc padded to 4) named "Xen".
fn scan_notes(
    mut b: &[u8],
    entry: &mut Option<u32>,
    features: &mut Option<u32>,
    guest_os: &mut Option<alloc::string::String>,
) {
    while b.len() >= 12 {
        let (Some(namesz), Some(descsz), Some(ty)) = (u32_at(b, 0), u32_at(b, 4), u32_at(b, 8))
        else {
            return;
        };
        let name_end = 12usize.saturating_add(namesz as usize);
        let desc_start = name_end.next_multiple_of(4);
        let desc_end = desc_start.saturating_add(descsz as usize);
        let (Some(name), Some(desc)) = (b.get(12..name_end), b.get(desc_start..desc_end)) else {
            return;
        };
        if name == b"Xen\0" || name == b"Xen" {
            match ty {
                XEN_ELFNOTE_PHYS32_ENTRY => {
                    // Linux emits a 4-byte value; accept a wider one if it fits 32 bits.
                    *entry = match desc.len() {
                        4 => u32_at(desc, 0),
                        8 => u64_at(desc, 0).and_then(|v| u32::try_from(v).ok()),
                        _ => None,
                    };
                }
                XEN_ELFNOTE_SUPPORTED_FEATURES => *features = u32_at(desc, 0),
                XEN_ELFNOTE_GUEST_OS => {
                    let s = desc.split(|&c| c == 0).next().unwrap_or(&[]);
                    *guest_os = core::str::from_utf8(s)
                        .ok()
                        .map(alloc::string::String::from);
                }
                _ => {}
            }
        }
        let next = desc_end.next_multiple_of(4);
        if next > b.len() {
            return;
        }
        b = &b[next..];
    }
}

/// Build a minimal PVH ELF (for tests and benchmarks): one PT_LOAD of `code` at `paddr` with
/// `bss` zero bytes after it, and a PT_NOTE with PHYS32_ENTRY = `paddr + entry_off`.
pub fn build_test_kernel(paddr: u64, code: &[u8], bss: u64, entry_off: u32) -> Vec<u8> {
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&((paddr as u32).wrapping_add(entry_off)).to_le_bytes());
    let phoff = 64u64;
    let note_off = phoff + 2 * 56;
    let code_off = (note_off + note.len() as u64).next_multiple_of(16);
    let mut f = alloc::vec![0u8; code_off as usize];
    f[0..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes());
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[32..40].copy_from_slice(&phoff.to_le_bytes());
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&2u16.to_le_bytes());
    let ph = |f: &mut Vec<u8>, at: usize, ty: u32, off: u64, pa: u64, fsz: u64, msz: u64| {
        f[at..at + 4].copy_from_slice(&ty.to_le_bytes());
        f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
        f[at + 16..at + 24].copy_from_slice(&pa.to_le_bytes());
        f[at + 24..at + 32].copy_from_slice(&pa.to_le_bytes());
        f[at + 32..at + 40].copy_from_slice(&fsz.to_le_bytes());
        f[at + 40..at + 48].copy_from_slice(&msz.to_le_bytes());
    };
    let n = code.len() as u64;
    ph(&mut f, 64, PT_LOAD, code_off, paddr, n, n + bss);
    ph(&mut f, 120, PT_NOTE, note_off, 0, note.len() as u64, 0);
    f[note_off as usize..note_off as usize + note.len()].copy_from_slice(&note);
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pvh_kernel() {
        let k = build_test_kernel(0x100_0000, &[0x90; 100], 4096, 0x10);
        let p = parse(&k).unwrap();
        assert_eq!(p.entry, 0x100_0010);
        assert_eq!(p.segments.len(), 1);
        assert_eq!(p.start, 0x100_0000);
        assert_eq!(p.end, 0x100_0000 + 100 + 4096);
    }

    #[test]
    fn rejects_hostile_kernels() {
        assert_eq!(parse(b"MZ"), Err(ElfError::NotElf));
        let good = build_test_kernel(0x100_0000, &[0x90; 100], 0, 0);
        // Truncated anywhere: an error, never a panic.
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "accepted a kernel cut at {n}");
        }
        // Entry outside the segments.
        let k = build_test_kernel(0x100_0000, &[0x90; 100], 0, 0x1000);
        assert_eq!(parse(&k), Err(ElfError::EntryOutsideSegments(0x100_1000)));
        // Segment above 4 GiB.
        let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
        k[64 + 24..64 + 32].copy_from_slice(&0xffff_ffff_f000u64.to_le_bytes());
        assert!(matches!(parse(&k), Err(ElfError::BadSegment { .. })));
        // filesz > memsz.
        let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
        k[64 + 40..64 + 48].copy_from_slice(&1u64.to_le_bytes());
        assert!(matches!(parse(&k), Err(ElfError::BadSegment { .. })));
        // Huge file size.
        let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
        k[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(parse(&k), Err(ElfError::BadSegment { .. })));
        // No PVH note: PT_NOTE turned into PT_NULL.
        let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
        k[120..124].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse(&k), Err(ElfError::NoPvhEntry));
        // Note with an absurd namesz.
        let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
        let note_off = 64 + 112;
        k[note_off..note_off + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&k), Err(ElfError::NoPvhEntry));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x1234_5678;
        let good = build_test_kernel(0x100_0000, &[0x90; 64], 64, 0);
        for _ in 0..3000 {
            let mut k = good.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % k.len();
                k[i] = (x >> 32) as u8;
            }
            let _ = parse(&k);
        }
    }
}
