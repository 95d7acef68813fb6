//! The parts of an ELF64 kernel a PVH domain builder needs: loadable segments (by physical
//! address, `p_paddr`, as libxc does for HVM containers) and the Xen ELF notes, above all
//! `XEN_ELFNOTE_PHYS32_ENTRY` (public/elfnote.h). Every offset and size is checked against the
//! file before use: a hostile kernel gets an error, never a panic.

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use xen::le::{get_u16 as u16_at, get_u32 as u32_at, get_u64 as u64_at};

mod inplace;
pub use inplace::{InPlace, Move, in_place_base, load_in_place, plan_in_place};

/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical entry point of the PVH ABI.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`.
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// `XEN_ELFNOTE_GUEST_OS`.
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
pub const PT_NOTE: u32 = 4;

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

/// Why an ELF file cannot be read, or a kernel cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    /// Not ELF64 little-endian (`EI_CLASS`, `EI_DATA`).
    NotElf64Le {
        class: u8,
        data: u8,
    },
    NotX86_64,
    BadEhsize(u16),
    BadPhentsize(u16),
    NoProgramHeaders,
    TooManyProgramHeaders(usize),
    /// The program header table runs past the end of the file.
    TablePastEnd {
        phoff: u64,
        phnum: usize,
        len: usize,
    },
    BadSegment {
        index: usize,
        why: &'static str,
    },
    /// A segment's file bytes run past the end of the file.
    SegmentPastEnd {
        index: usize,
        offset: u64,
        filesz: u64,
        len: usize,
    },
    /// A note in segment `index` is cut off at segment offset `at`.
    NoteCutOff {
        index: usize,
        at: usize,
    },
    NoLoadSegments,
    /// No `XEN_ELFNOTE_PHYS32_ENTRY`: not a PVH kernel (`notes` notes, `xen` of them Xen's).
    NoPvhEntry {
        notes: usize,
        xen: usize,
    },
    BadPvhEntrySize(usize),
    EntryOutsideSegments(u32),
    /// The segment at `paddr` cannot be moved into place inside the decompressed file
    /// ([`load_in_place`]).
    NotInPlace {
        paddr: u64,
        why: &'static str,
    },
    /// Loading in place needs `needed` bytes from the base, the slice has `room`.
    InPlaceRoom {
        needed: u64,
        room: usize,
    },
}

impl core::error::Error for ElfError {}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::NotElf64Le { class, data } => write!(
                f,
                "ELF class {class} data {data}: only ELF64 little-endian is supported"
            ),
            ElfError::NotX86_64 => write!(f, "not an x86-64 ELF (e_machine is not 62)"),
            ElfError::BadEhsize(n) => write!(f, "e_ehsize {n} is not {EHDR_LEN}"),
            ElfError::BadPhentsize(n) => write!(f, "e_phentsize {n} is not {PHDR_LEN}"),
            ElfError::NoProgramHeaders => write!(f, "the ELF file has no program headers"),
            ElfError::TooManyProgramHeaders(n) => {
                write!(f, "{n} program headers (more than {MAX_PHDRS})")
            }
            ElfError::TablePastEnd { phoff, phnum, len } => write!(
                f,
                "program header table at 0x{phoff:x} ({phnum} entries) runs past the end of the \
                 {len}-byte file"
            ),
            ElfError::BadSegment { index, why } => write!(f, "program header {index}: {why}"),
            ElfError::SegmentPastEnd {
                index,
                offset,
                filesz,
                len,
            } => write!(
                f,
                "program header {index}: file bytes 0x{offset:x}+0x{filesz:x} run past the end \
                 of the {len}-byte file"
            ),
            ElfError::NoteCutOff { index, at } => write!(
                f,
                "program header {index}: note at segment offset 0x{at:x} is cut off"
            ),
            ElfError::NoLoadSegments => write!(f, "the ELF file has no PT_LOAD segment"),
            ElfError::NoPvhEntry { notes, xen } => write!(
                f,
                "the kernel ELF has no Xen note XEN_ELFNOTE_PHYS32_ENTRY (type 18) in its \
                 PT_NOTE segments ({notes} notes, {xen} of them Xen's): it has no PVH entry \
                 point (Linux needs CONFIG_PVH=y)"
            ),
            ElfError::BadPvhEntrySize(n) => write!(
                f,
                "XEN_ELFNOTE_PHYS32_ENTRY has a {n}-byte value (4 or 8 expected)"
            ),
            ElfError::EntryOutsideSegments(e) => {
                write!(f, "PVH entry {e:#x} is outside every loadable segment")
            }
            ElfError::NotInPlace { paddr, why } => {
                write!(f, "segment at {paddr:#x} cannot be loaded in place: {why}")
            }
            ElfError::InPlaceRoom { needed, room } => write!(
                f,
                "loading the kernel in place needs {needed} bytes from its base, the mapping \
                 has {room}"
            ),
        }
    }
}

/// ELF64 header and program header sizes.
pub const EHDR_LEN: usize = 64;
pub const PHDR_LEN: usize = 56;
/// `PT_PHDR`.
pub const PT_PHDR: u32 = 6;
/// More program headers than any kernel has; a bound on hostile input.
pub const MAX_PHDRS: usize = 256;

/// One ELF64 program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl Phdr {
    /// The program header at byte `at` of `d`.
    pub fn read(d: &[u8], at: usize) -> Option<Self> {
        Some(Self {
            p_type: u32_at(d, at)?,
            p_flags: u32_at(d, at + 4)?,
            p_offset: u64_at(d, at + 8)?,
            p_vaddr: u64_at(d, at + 16)?,
            p_paddr: u64_at(d, at + 24)?,
            p_filesz: u64_at(d, at + 32)?,
            p_memsz: u64_at(d, at + 40)?,
            p_align: u64_at(d, at + 48)?,
        })
    }

    /// The header's 56 bytes.
    pub fn to_bytes(&self) -> [u8; PHDR_LEN] {
        let mut b = [0u8; PHDR_LEN];
        b[0..4].copy_from_slice(&self.p_type.to_le_bytes());
        b[4..8].copy_from_slice(&self.p_flags.to_le_bytes());
        for (i, v) in [
            self.p_offset,
            self.p_vaddr,
            self.p_paddr,
            self.p_filesz,
            self.p_memsz,
            self.p_align,
        ]
        .iter()
        .enumerate()
        {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// The segment's file bytes, checked against a file of `len` bytes (`index`: for the error).
    pub fn file_range(&self, index: usize, len: usize) -> Result<Range<usize>, ElfError> {
        let end = self
            .p_offset
            .checked_add(self.p_filesz)
            .filter(|&e| e <= len as u64)
            .ok_or(ElfError::SegmentPastEnd {
                index,
                offset: self.p_offset,
                filesz: self.p_filesz,
                len,
            })?;
        Ok(self.p_offset as usize..end as usize)
    }
}

/// Checks an ELF64 little-endian header and returns its program headers.
pub fn program_headers(elf: &[u8]) -> Result<Vec<Phdr>, ElfError> {
    if elf.len() < EHDR_LEN || elf[..4] != *b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    if elf[4] != 2 || elf[5] != 1 {
        return Err(ElfError::NotElf64Le {
            class: elf[4],
            data: elf[5],
        });
    }
    let phoff = u64_at(elf, 32).unwrap_or(0);
    let ehsize = u16_at(elf, 52).unwrap_or(0);
    let phentsize = u16_at(elf, 54).unwrap_or(0);
    let phnum = usize::from(u16_at(elf, 56).unwrap_or(0));
    if usize::from(ehsize) != EHDR_LEN {
        return Err(ElfError::BadEhsize(ehsize));
    }
    if phnum == 0 {
        return Err(ElfError::NoProgramHeaders);
    }
    if usize::from(phentsize) != PHDR_LEN {
        return Err(ElfError::BadPhentsize(phentsize));
    }
    if phnum > MAX_PHDRS {
        return Err(ElfError::TooManyProgramHeaders(phnum));
    }
    phoff
        .checked_add((phnum * PHDR_LEN) as u64)
        .filter(|&e| e <= elf.len() as u64)
        .ok_or(ElfError::TablePastEnd {
            phoff,
            phnum,
            len: elf.len(),
        })?;
    let phoff = phoff as usize;
    (0..phnum)
        .map(|i| {
            Phdr::read(elf, phoff + i * PHDR_LEN).ok_or(ElfError::TablePastEnd {
                phoff: phoff as u64,
                phnum,
                len: elf.len(),
            })
        })
        .collect()
}

/// One ELF note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The name without its terminating NUL.
    pub name: Vec<u8>,
    pub n_type: u32,
    pub desc: Vec<u8>,
}

/// The notes of one `PT_NOTE` segment's bytes (`align`: 4, or 8 when `p_align` is 8), and the
/// segment offset where a cut-off note stopped the walk, if one did.
fn walk_notes(seg: &[u8], align: usize) -> (Vec<Note>, Option<usize>) {
    let mut notes = Vec::new();
    let mut at = 0usize;
    while at < seg.len() {
        let one = || -> Option<(Note, usize)> {
            let namesz = u32_at(seg, at)? as usize;
            let descsz = u32_at(seg, at + 4)? as usize;
            let n_type = u32_at(seg, at + 8)?;
            let name_at = at + 12;
            let desc_at = name_at
                .checked_add(namesz)?
                .checked_next_multiple_of(align)?;
            let end = desc_at.checked_add(descsz)?;
            let name = seg.get(name_at..name_at.checked_add(namesz)?)?;
            let desc = seg.get(desc_at..end)?;
            let name = name.strip_suffix(&[0]).unwrap_or(name);
            let note = Note {
                name: name.to_vec(),
                n_type,
                desc: desc.to_vec(),
            };
            Some((note, end.checked_next_multiple_of(align)?))
        };
        match one() {
            Some((n, next)) => {
                notes.push(n);
                at = next;
            }
            None => return (notes, Some(at)),
        }
    }
    (notes, None)
}

/// The notes of every `PT_NOTE` segment of `elf`, in order, and the first cut-off note.
fn all_notes(elf: &[u8], phdrs: &[Phdr]) -> Result<(Vec<Note>, Option<ElfError>), ElfError> {
    let mut notes = Vec::new();
    let mut cut = None;
    for (i, p) in phdrs.iter().enumerate() {
        if p.p_type != PT_NOTE {
            continue;
        }
        let seg = &elf[p.file_range(i, elf.len())?];
        let (n, stop) = walk_notes(seg, if p.p_align == 8 { 8 } else { 4 });
        notes.extend(n);
        if let Some(at) = stop {
            cut.get_or_insert(ElfError::NoteCutOff { index: i, at });
        }
    }
    Ok((notes, cut))
}

/// Every note in the file's `PT_NOTE` segments; a cut-off note is an error.
pub fn notes(elf: &[u8]) -> Result<Vec<Note>, ElfError> {
    let phdrs = program_headers(elf)?;
    match all_notes(elf, &phdrs)? {
        (_, Some(e)) => Err(e),
        (n, None) => Ok(n),
    }
}

/// The value of `XEN_ELFNOTE_PHYS32_ENTRY` among `notes` (a 4- or 8-byte address).
fn phys32_entry(notes: &[Note]) -> Result<u64, ElfError> {
    let Some(note) = notes
        .iter()
        .find(|n| n.name == b"Xen" && n.n_type == XEN_ELFNOTE_PHYS32_ENTRY)
    else {
        return Err(ElfError::NoPvhEntry {
            notes: notes.len(),
            xen: notes.iter().filter(|n| n.name == b"Xen").count(),
        });
    };
    match note.desc.len() {
        4 => Ok(u64::from(u32_at(&note.desc, 0).unwrap_or(0))),
        8 => Ok(u64_at(&note.desc, 0).unwrap_or(0)),
        n => Err(ElfError::BadPvhEntrySize(n)),
    }
}

/// The PVH entry point (`XEN_ELFNOTE_PHYS32_ENTRY`) of an ELF file; an error says clearly when
/// the kernel has none (it would not boot as a PVH guest).
pub fn xen_phys32_entry(elf: &[u8]) -> Result<u64, ElfError> {
    phys32_entry(&notes(elf)?)
}

/// Highest physical address a segment may reach (the PVH entry is 32-bit: the kernel must be
/// loaded below 4 GiB).
pub const LOAD_LIMIT: u64 = 1 << 32;

/// Parse `data` as a PVH kernel: its loadable segments and Xen notes. Notes after a cut-off
/// one are not read (the kernel then fails only if the entry note was among them).
pub fn parse(data: &[u8]) -> Result<Kernel, ElfError> {
    if data.get(0..4) != Some(b"\x7fELF") {
        return Err(ElfError::NotElf);
    }
    let phdrs = program_headers(data)?;
    if u16_at(data, 18) != Some(62) {
        return Err(ElfError::NotX86_64);
    }
    let mut segments = Vec::new();
    for (index, p) in phdrs.iter().enumerate() {
        p.file_range(index, data.len())
            .map_err(|_| ElfError::BadSegment {
                index,
                why: "file bytes run past the end of the file",
            })?;
        if p.p_type != PT_LOAD {
            continue;
        }
        if p.p_filesz > p.p_memsz {
            return Err(ElfError::BadSegment {
                index,
                why: "p_filesz is larger than p_memsz",
            });
        }
        if p.p_memsz == 0 {
            continue;
        }
        if p.p_paddr
            .checked_add(p.p_memsz)
            .is_none_or(|e| e > LOAD_LIMIT)
        {
            return Err(ElfError::BadSegment {
                index,
                why: "loads above 4 GiB",
            });
        }
        segments.push(Segment {
            paddr: p.p_paddr,
            offset: p.p_offset,
            filesz: p.p_filesz,
            memsz: p.p_memsz,
        });
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    lean::sort_by_key(&mut segments, |s| s.paddr);
    for (i, w) in segments.windows(2).enumerate() {
        if w[0].paddr + w[0].memsz > w[1].paddr {
            return Err(ElfError::BadSegment {
                index: i + 1,
                why: "overlaps another loadable segment",
            });
        }
    }
    let (notes, _) = all_notes(data, &phdrs)?;
    let entry = u32::try_from(phys32_entry(&notes)?)
        .map_err(|_| ElfError::EntryOutsideSegments(u32::MAX))?;
    let xen = |ty| notes.iter().find(|n| n.name == b"Xen" && n.n_type == ty);
    let features = xen(XEN_ELFNOTE_SUPPORTED_FEATURES).and_then(|n| u32_at(&n.desc, 0));
    let guest_os = xen(XEN_ELFNOTE_GUEST_OS).and_then(|n| {
        let s = n.desc.split(|&c| c == 0).next().unwrap_or(&[]);
        core::str::from_utf8(s)
            .ok()
            .map(alloc::string::String::from)
    });
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
mod tests;
