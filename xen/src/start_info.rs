//! `struct hvm_start_info`: what a PVH entry point finds in `%ebx`
//! (Xen `public/arch-x86/hvm/start_info.h`).
//!
//! Everything here distrusts the structure: every pointer is checked against the memory map
//! before it is followed, all arithmetic is checked, and every refusal says which field and
//! which address was wrong. Memory is only read through [`PhysRead`].

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use crate::memmap::{MemMapError, MemType, MemoryMap};

/// `XEN_HVM_START_MAGIC_VALUE`: "xEn3" with the 0x80 bit of 'E' set.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;
/// `SIF_PRIVILEGED` (`public/xen.h`): the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN` (`public/xen.h`): the domain is the initial (hardware) domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// Flag bits this code knows.
pub const SIF_KNOWN: u32 = SIF_PRIVILEGED | SIF_INITDOMAIN;

/// The highest `version` accepted. The ABI only appends fields, so newer versions are read
/// with the v1 layout; anything this large is taken to be garbage, not a future ABI.
pub const MAX_PLAUSIBLE_VERSION: u32 = 255;
/// The most modules accepted (Xen hands a PVH dom0 one).
pub const MAX_MODULES: u32 = 64;
/// The longest command line accepted, including its NUL.
pub const MAX_CMDLINE: usize = 4096;
/// Size of `struct hvm_modlist_entry`.
pub const MODLIST_ENTRY_SIZE: usize = 32;
/// Size of `struct hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;
/// Memory below this is accepted for command lines, the module list and the RSDP whatever the
/// map says: loaders (QEMU's PVH option ROM, BIOS areas) put things there outside e820 RAM.
pub const LOW_MEMORY_END: u64 = 1 << 20;
/// The smallest RSDP (ACPI 1.0, 20 bytes); it must at least be readable.
const RSDP_MIN_SIZE: u64 = 20;

/// Reads guest-physical memory. dom0 implements it over its identity map (with its own bounds
/// check); tests over a Vec.
pub trait PhysRead {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PhysReadError>;
}

/// A [`PhysRead`] refused `len` bytes at `paddr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysReadError {
    pub paddr: u64,
    pub len: usize,
}

impl fmt::Display for PhysReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read {:#x} bytes at {:#x}", self.len, self.paddr)
    }
}

/// Which command line an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineOwner {
    /// `hvm_start_info.cmdline_paddr`.
    Dom0,
    /// `hvm_modlist_entry.cmdline_paddr` of module `n`.
    Module(u32),
}

impl fmt::Display for CmdlineOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineOwner::Dom0 => f.write_str("cmdline"),
            CmdlineOwner::Module(n) => write!(f, "module {n} cmdline"),
        }
    }
}

/// Why start_info (or something it points at) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartInfoError {
    /// `%ebx` was 0: the loader passed no start_info.
    NullPointer,
    /// The [`PhysRead`] failed while reading `what`.
    Read {
        what: &'static str,
        err: PhysReadError,
    },
    /// `what` needs `needed` bytes at `paddr` and the addition overflows.
    AddressOverflow {
        what: &'static str,
        paddr: u64,
        len: u64,
    },
    /// A buffer given to a parser is too short.
    Truncated {
        what: &'static str,
        needed: usize,
        got: usize,
    },
    /// The magic is wrong (`paddr` known when read from memory).
    BadMagic { found: u32, paddr: Option<u64> },
    /// `version` beyond [`MAX_PLAUSIBLE_VERSION`].
    BadVersion { version: u32, paddr: Option<u64> },
    /// A command line lies neither in RAM nor below 1 MiB.
    CmdlineOutsideRam { owner: CmdlineOwner, paddr: u64 },
    /// No NUL within `scanned` bytes (the 4096-byte limit or the end of readable memory).
    CmdlineUnterminated {
        owner: CmdlineOwner,
        paddr: u64,
        scanned: usize,
    },
    /// The command line is not UTF-8; `offset` is the first bad byte.
    CmdlineNotUtf8 {
        owner: CmdlineOwner,
        paddr: u64,
        offset: usize,
    },
    /// `nr_modules` beyond [`MAX_MODULES`].
    TooManyModules { count: u32, max: u32 },
    /// `nr_modules` > 0 but `modlist_paddr` is 0.
    ModlistNull { count: u32 },
    /// The module list lies neither in RAM nor below 1 MiB.
    ModlistOutsideRam { paddr: u64, len: u64 },
    /// A module has size 0.
    ModuleEmpty { index: u32, paddr: u64 },
    /// `paddr + size` overflows.
    ModuleOverflow { index: u32, paddr: u64, size: u64 },
    /// A module is not wholly in RAM.
    ModuleOutsideRam { index: u32, paddr: u64, size: u64 },
    /// A module overlaps the dom0 kernel image.
    ModuleOverlapsImage {
        index: u32,
        paddr: u64,
        size: u64,
        image: Range<u64>,
    },
    /// A module overlaps the start_info header.
    ModuleOverlapsStartInfo {
        index: u32,
        paddr: u64,
        size: u64,
        header: Range<u64>,
    },
    /// A module overlaps the module list.
    ModuleOverlapsModlist {
        index: u32,
        paddr: u64,
        size: u64,
        modlist: Range<u64>,
    },
    /// Two modules overlap.
    ModuleOverlapsModule {
        index: u32,
        paddr: u64,
        size: u64,
        other: u32,
        other_range: Range<u64>,
    },
    /// The RSDP pointer is neither below 1 MiB nor in an ACPI, NVS, reserved or RAM region.
    RsdpOutside { paddr: u64 },
    /// `memmap_entries` > 0 but `memmap_paddr` is 0.
    MemmapNull { entries: u32 },
    /// The start_info memory map itself was refused.
    Memmap(MemMapError),
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StartInfoError::*;
        match self {
            NullPointer => f.write_str("no start_info: the loader passed a null pointer in %ebx"),
            Read { what, err } => write!(f, "cannot read {what}: {err}"),
            AddressOverflow { what, paddr, len } => {
                write!(
                    f,
                    "{what} at {paddr:#x} (+{len:#x}) wraps around the address space"
                )
            }
            Truncated { what, needed, got } => {
                write!(f, "{what} truncated: need {needed} bytes, got {got}")
            }
            BadMagic { found, paddr } => {
                write!(f, "bad magic {found:#010x}")?;
                if let Some(p) = paddr {
                    write!(f, " at {p:#x}")?;
                }
                write!(f, " (expected {XEN_HVM_START_MAGIC_VALUE:#010x})")
            }
            BadVersion { version, paddr } => {
                write!(f, "start_info version {version}")?;
                if let Some(p) = paddr {
                    write!(f, " at {p:#x}")?;
                }
                write!(
                    f,
                    " is not plausible (known: 0, 1; at most {MAX_PLAUSIBLE_VERSION} accepted)"
                )
            }
            CmdlineOutsideRam { owner, paddr } => {
                write!(
                    f,
                    "{owner} at {paddr:#x} is outside RAM (and not below 1 MiB)"
                )
            }
            CmdlineUnterminated {
                owner,
                paddr,
                scanned,
            } => {
                write!(
                    f,
                    "{owner} at {paddr:#x} has no NUL terminator within {scanned} bytes"
                )
            }
            CmdlineNotUtf8 {
                owner,
                paddr,
                offset,
            } => {
                write!(
                    f,
                    "{owner} at {paddr:#x} is not UTF-8 (bad byte at offset {offset})"
                )
            }
            TooManyModules { count, max } => {
                write!(f, "nr_modules is {count} (at most {max} accepted)")
            }
            ModlistNull { count } => {
                write!(f, "nr_modules is {count} but modlist_paddr is 0")
            }
            ModlistOutsideRam { paddr, len } => write!(
                f,
                "module list [{paddr:#x}, +{len:#x}) is outside RAM (and not below 1 MiB)"
            ),
            ModuleEmpty { index, paddr } => write!(f, "module {index} at {paddr:#x} has size 0"),
            ModuleOverflow { index, paddr, size } => {
                write!(
                    f,
                    "module {index} [{paddr:#x}, +{size:#x}) wraps around the address space"
                )
            }
            ModuleOutsideRam { index, paddr, size } => {
                write!(
                    f,
                    "module {index} [{paddr:#x}, +{size:#x}) is not wholly in RAM"
                )
            }
            ModuleOverlapsImage {
                index,
                paddr,
                size,
                image,
            } => write!(
                f,
                "module {index} [{paddr:#x}, +{size:#x}) overlaps the dom0 image [{:#x}, {:#x})",
                image.start, image.end
            ),
            ModuleOverlapsStartInfo {
                index,
                paddr,
                size,
                header,
            } => write!(
                f,
                "module {index} [{paddr:#x}, +{size:#x}) overlaps the start_info header \
                 [{:#x}, {:#x})",
                header.start, header.end
            ),
            ModuleOverlapsModlist {
                index,
                paddr,
                size,
                modlist,
            } => write!(
                f,
                "module {index} [{paddr:#x}, +{size:#x}) overlaps the module list [{:#x}, {:#x})",
                modlist.start, modlist.end
            ),
            ModuleOverlapsModule {
                index,
                paddr,
                size,
                other,
                other_range,
            } => write!(
                f,
                "module {index} [{paddr:#x}, +{size:#x}) overlaps module {other} [{:#x}, {:#x})",
                other_range.start, other_range.end
            ),
            RsdpOutside { paddr } => write!(
                f,
                "rsdp at {paddr:#x} is neither below 1 MiB nor in an ACPI, NVS, reserved or RAM \
                 region"
            ),
            MemmapNull { entries } => {
                write!(f, "memmap_entries is {entries} but memmap_paddr is 0")
            }
            Memmap(e) => write!(f, "start_info memory map: {e}"),
        }
    }
}

impl From<MemMapError> for StartInfoError {
    fn from(e: MemMapError) -> Self {
        StartInfoError::Memmap(e)
    }
}

use crate::le::{u32_at as le_u32, u64_at as le_u64};

fn read_at(
    mem: &dyn PhysRead,
    what: &'static str,
    paddr: u64,
    buf: &mut [u8],
) -> Result<(), StartInfoError> {
    // usize -> u64 never truncates on the targets this runs on.
    let len = buf.len() as u64;
    if paddr.checked_add(len).is_none() {
        return Err(StartInfoError::AddressOverflow { what, paddr, len });
    }
    mem.read(paddr, buf)
        .map_err(|err| StartInfoError::Read { what, err })
}

/// The fixed part of `struct hvm_start_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartInfoHeader {
    pub magic: u32,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub modlist_paddr: u64,
    pub cmdline_paddr: u64,
    pub rsdp_paddr: u64,
    /// v1 and later; 0 for v0.
    pub memmap_paddr: u64,
    /// v1 and later; 0 for v0 (and for every dom0 Xen builds).
    pub memmap_entries: u32,
}

impl StartInfoHeader {
    /// v0: fields up to and including `rsdp_paddr`.
    pub const SIZE_V0: usize = 40;
    /// v1: adds `memmap_paddr`, `memmap_entries` and `reserved`.
    pub const SIZE_V1: usize = 56;

    /// Parse the fixed part. `bytes` holds at least SIZE_V0 bytes (SIZE_V1 read when
    /// version >= 1).
    pub fn parse(bytes: &[u8]) -> Result<Self, StartInfoError> {
        if bytes.len() < Self::SIZE_V0 {
            return Err(StartInfoError::Truncated {
                what: "start_info header",
                needed: Self::SIZE_V0,
                got: bytes.len(),
            });
        }
        let magic = le_u32(bytes, 0);
        if magic != XEN_HVM_START_MAGIC_VALUE {
            return Err(StartInfoError::BadMagic {
                found: magic,
                paddr: None,
            });
        }
        let version = le_u32(bytes, 4);
        if version > MAX_PLAUSIBLE_VERSION {
            return Err(StartInfoError::BadVersion {
                version,
                paddr: None,
            });
        }
        let (memmap_paddr, memmap_entries) = if version >= 1 {
            if bytes.len() < Self::SIZE_V1 {
                return Err(StartInfoError::Truncated {
                    what: "start_info v1 header",
                    needed: Self::SIZE_V1,
                    got: bytes.len(),
                });
            }
            (le_u64(bytes, 40), le_u32(bytes, 48))
        } else {
            (0, 0)
        };
        Ok(StartInfoHeader {
            magic,
            version,
            flags: le_u32(bytes, 8),
            nr_modules: le_u32(bytes, 12),
            modlist_paddr: le_u64(bytes, 16),
            cmdline_paddr: le_u64(bytes, 24),
            rsdp_paddr: le_u64(bytes, 32),
            memmap_paddr,
            memmap_entries,
        })
    }

    /// Read SIZE_V0, check magic, then read the rest if version >= 1.
    pub fn read(paddr: u64, mem: &dyn PhysRead) -> Result<Self, StartInfoError> {
        if paddr == 0 {
            return Err(StartInfoError::NullPointer);
        }
        let mut buf = [0u8; Self::SIZE_V1];
        read_at(mem, "start_info header", paddr, &mut buf[..Self::SIZE_V0])?;
        // Check before reading more: the next bytes may not even be readable for a v0 header.
        let magic = le_u32(&buf, 0);
        if magic != XEN_HVM_START_MAGIC_VALUE {
            return Err(StartInfoError::BadMagic {
                found: magic,
                paddr: Some(paddr),
            });
        }
        match le_u32(&buf, 4) {
            0 => return Self::parse(&buf[..Self::SIZE_V0]),
            version if version > MAX_PLAUSIBLE_VERSION => {
                return Err(StartInfoError::BadVersion {
                    version,
                    paddr: Some(paddr),
                });
            }
            _ => {}
        }
        let rest_at = paddr + Self::SIZE_V0 as u64; // read_at checked paddr + 40.
        read_at(
            mem,
            "start_info v1 fields",
            rest_at,
            &mut buf[Self::SIZE_V0..],
        )?;
        Self::parse(&buf)
    }

    /// `SIF_INITDOMAIN` is set: this is the hardware domain.
    pub fn is_initdomain(&self) -> bool {
        self.flags & SIF_INITDOMAIN != 0
    }

    /// `SIF_PRIVILEGED` is set.
    pub fn is_privileged(&self) -> bool {
        self.flags & SIF_PRIVILEGED != 0
    }

    /// Bytes the header occupies in memory for its version.
    pub fn size(&self) -> usize {
        if self.version == 0 {
            Self::SIZE_V0
        } else {
            Self::SIZE_V1
        }
    }
}

/// One `hvm_modlist_entry`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    pub index: u32,
    pub paddr: u64,
    pub size: u64,
    pub cmdline: String,
    /// Where the cmdline was (0 = none), so it can be kept out of free memory.
    pub cmdline_paddr: u64,
}

impl ModuleInfo {
    /// `[paddr, paddr + size)`; never overflows once validated.
    pub fn range(&self) -> Range<u64> {
        self.paddr..self.paddr.saturating_add(self.size)
    }
}

/// start_info with every pointer validated and followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartInfo {
    pub paddr: u64,
    pub header: StartInfoHeader,
    pub cmdline: String,
    pub modules: Vec<ModuleInfo>,
    /// Oddities that did not stop the boot (new version, unknown flags, ...).
    pub warnings: Vec<String>,
}

/// Load the start_info memory map (v1, memmap_entries > 0) if present. Ok(None) for v0 or 0
/// entries (the dom0 case: Xen never passes one to a PVH dom0; dom0 then asks
/// XENMEM_memory_map).
pub fn read_memmap(
    hdr: &StartInfoHeader,
    mem: &dyn PhysRead,
) -> Result<Option<MemoryMap>, StartInfoError> {
    if hdr.version == 0 || hdr.memmap_entries == 0 {
        return Ok(None);
    }
    if hdr.memmap_paddr == 0 {
        return Err(StartInfoError::MemmapNull {
            entries: hdr.memmap_entries,
        });
    }
    let count = hdr.memmap_entries as usize;
    if count > MemoryMap::MAX_ENTRIES {
        return Err(MemMapError::TooManyEntries {
            count,
            max: MemoryMap::MAX_ENTRIES,
        }
        .into());
    }
    let mut buf = vec![0u8; count * MEMMAP_ENTRY_SIZE];
    read_at(mem, "start_info memory map", hdr.memmap_paddr, &mut buf)?;
    Ok(Some(MemoryMap::from_hvm_table_bytes(&buf, count)?))
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// End of the memory readable from `paddr` for cmdlines and the module list: below 1 MiB
/// anything goes (loaders use low memory outside e820 RAM), above it only RAM.
fn low_or_ram_end(map: &MemoryMap, paddr: u64) -> u64 {
    let ram = |k| k == MemType::Ram;
    if paddr < LOW_MEMORY_END {
        map.coverage_end(LOW_MEMORY_END, ram)
    } else {
        map.coverage_end(paddr, ram)
    }
}

/// Read a NUL-terminated UTF-8 string of at most [`MAX_CMDLINE`] bytes (NUL included).
/// Reads in small chunks so a short string near the end of readable memory is fine.
fn read_cmdline(
    owner: CmdlineOwner,
    paddr: u64,
    map: &MemoryMap,
    mem: &dyn PhysRead,
) -> Result<String, StartInfoError> {
    if paddr == 0 {
        return Ok(String::new());
    }
    let limit_end = low_or_ram_end(map, paddr);
    if limit_end <= paddr {
        return Err(StartInfoError::CmdlineOutsideRam { owner, paddr });
    }
    let avail = usize::try_from(limit_end - paddr)
        .unwrap_or(usize::MAX)
        .min(MAX_CMDLINE);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 256];
    while bytes.len() < avail {
        let at = paddr + bytes.len() as u64; // < limit_end, no overflow.
        // Stay within one 256-byte block so a reader with page-granular checks is not asked
        // for bytes past the string's page.
        let to_boundary = 256 - (at % 256) as usize;
        let n = to_boundary.min(avail - bytes.len());
        read_at(mem, "command line", at, &mut chunk[..n])?;
        if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
            bytes.extend_from_slice(&chunk[..nul]);
            return String::from_utf8(bytes).map_err(|e| StartInfoError::CmdlineNotUtf8 {
                owner,
                paddr,
                offset: e.utf8_error().valid_up_to(),
            });
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    Err(StartInfoError::CmdlineUnterminated {
        owner,
        paddr,
        scanned: avail,
    })
}

impl StartInfo {
    /// Validate every pointer against the memory map and read cmdline + module list.
    /// `image` = [start, end) of the dom0 kernel image in guest-physical memory; `paddr` =
    /// where the header is.
    pub fn load(
        paddr: u64,
        hdr: StartInfoHeader,
        map: &MemoryMap,
        image: Range<u64>,
        mem: &dyn PhysRead,
    ) -> Result<StartInfo, StartInfoError> {
        let mut warnings = Vec::new();
        if hdr.version > 1 {
            warnings.push(format!(
                "start_info version {} is newer than this dom0 knows (1); reading the v1 fields \
                 only",
                hdr.version
            ));
        }
        let unknown = hdr.flags & !SIF_KNOWN;
        if unknown != 0 {
            warnings.push(format!(
                "start_info flags {:#x} has unknown bits {unknown:#x} (known: SIF_PRIVILEGED, \
                 SIF_INITDOMAIN)",
                hdr.flags
            ));
        }
        let header = paddr..paddr.saturating_add(hdr.size() as u64);
        if paddr >= LOW_MEMORY_END && !map.is_ram(paddr, hdr.size() as u64) {
            warnings.push(format!("start_info header at {paddr:#x} is not in RAM"));
        }

        let cmdline = read_cmdline(CmdlineOwner::Dom0, hdr.cmdline_paddr, map, mem)?;

        if hdr.rsdp_paddr != 0 {
            let low = hdr
                .rsdp_paddr
                .checked_add(RSDP_MIN_SIZE)
                .is_some_and(|end| end <= LOW_MEMORY_END);
            // Xen puts its crafted RSDP in an E820_ACPI entry; firmware ones sit in reserved or
            // NVS areas, and QEMU's own loader leaves it in the BIOS area below 1 MiB.
            let in_map = map.covered_by(hdr.rsdp_paddr, RSDP_MIN_SIZE, |k| {
                matches!(
                    k,
                    MemType::Acpi | MemType::Nvs | MemType::Reserved | MemType::Ram
                )
            });
            if !low && !in_map {
                return Err(StartInfoError::RsdpOutside {
                    paddr: hdr.rsdp_paddr,
                });
            }
        }

        let modules = Self::load_modules(&hdr, &header, map, &image, mem, &mut warnings)?;
        Ok(StartInfo {
            paddr,
            header: hdr,
            cmdline,
            modules,
            warnings,
        })
    }

    fn load_modules(
        hdr: &StartInfoHeader,
        header: &Range<u64>,
        map: &MemoryMap,
        image: &Range<u64>,
        mem: &dyn PhysRead,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<ModuleInfo>, StartInfoError> {
        let count = hdr.nr_modules;
        if count == 0 {
            if hdr.modlist_paddr != 0 {
                warnings.push(format!(
                    "modlist_paddr {:#x} ignored: nr_modules is 0",
                    hdr.modlist_paddr
                ));
            }
            return Ok(Vec::new());
        }
        if count > MAX_MODULES {
            return Err(StartInfoError::TooManyModules {
                count,
                max: MAX_MODULES,
            });
        }
        if hdr.modlist_paddr == 0 {
            return Err(StartInfoError::ModlistNull { count });
        }
        // count <= 64: no overflow in the length.
        let list_len = count as usize * MODLIST_ENTRY_SIZE;
        let list_at = hdr.modlist_paddr;
        let list_fits = list_at
            .checked_add(list_len as u64)
            .is_some_and(|end| low_or_ram_end(map, list_at) >= end);
        if !list_fits {
            return Err(StartInfoError::ModlistOutsideRam {
                paddr: list_at,
                len: list_len as u64,
            });
        }
        let modlist = list_at..list_at + list_len as u64;
        let mut raw = vec![0u8; list_len];
        read_at(mem, "module list", list_at, &mut raw)?;

        let mut modules: Vec<ModuleInfo> = Vec::with_capacity(count as usize);
        for (index, entry) in (0..count).zip(raw.chunks_exact(MODLIST_ENTRY_SIZE)) {
            let paddr = le_u64(entry, 0);
            let size = le_u64(entry, 8);
            let cmdline_paddr = le_u64(entry, 16);
            let reserved = le_u64(entry, 24);
            if reserved != 0 {
                warnings.push(format!(
                    "module {index}: reserved field is {reserved:#x} (expected 0)"
                ));
            }
            if size == 0 {
                return Err(StartInfoError::ModuleEmpty { index, paddr });
            }
            let Some(end) = paddr.checked_add(size) else {
                return Err(StartInfoError::ModuleOverflow { index, paddr, size });
            };
            if !map.is_ram(paddr, size) {
                return Err(StartInfoError::ModuleOutsideRam { index, paddr, size });
            }
            let range = paddr..end;
            if overlaps(&range, image) {
                return Err(StartInfoError::ModuleOverlapsImage {
                    index,
                    paddr,
                    size,
                    image: image.clone(),
                });
            }
            if overlaps(&range, header) {
                return Err(StartInfoError::ModuleOverlapsStartInfo {
                    index,
                    paddr,
                    size,
                    header: header.clone(),
                });
            }
            if overlaps(&range, &modlist) {
                return Err(StartInfoError::ModuleOverlapsModlist {
                    index,
                    paddr,
                    size,
                    modlist: modlist.clone(),
                });
            }
            if let Some(other) = modules.iter().find(|m| overlaps(&range, &m.range())) {
                return Err(StartInfoError::ModuleOverlapsModule {
                    index,
                    paddr,
                    size,
                    other: other.index,
                    other_range: other.range(),
                });
            }
            let cmdline = read_cmdline(CmdlineOwner::Module(index), cmdline_paddr, map, mem)?;
            modules.push(ModuleInfo {
                index,
                paddr,
                size,
                cmdline,
                cmdline_paddr,
            });
        }
        Ok(modules)
    }

    /// The guest-physical ranges start_info occupies (header, module list, command lines,
    /// modules), for [`MemoryMap::free_ram`].
    pub fn taken_ranges(&self) -> Vec<Range<u64>> {
        let mut out = Vec::with_capacity(2 + 2 * self.modules.len());
        out.push(self.paddr..self.paddr.saturating_add(self.header.size() as u64));
        if !self.modules.is_empty() {
            let len = (self.modules.len() * MODLIST_ENTRY_SIZE) as u64;
            let at = self.header.modlist_paddr;
            out.push(at..at.saturating_add(len));
        }
        let mut cmdline = |paddr: u64, s: &str| {
            if paddr != 0 {
                out.push(paddr..paddr.saturating_add(s.len() as u64 + 1));
            }
        };
        cmdline(self.header.cmdline_paddr, &self.cmdline);
        for m in &self.modules {
            cmdline(m.cmdline_paddr, &m.cmdline);
        }
        out.extend(self.modules.iter().map(ModuleInfo::range));
        out
    }
}

#[cfg(test)]
mod tests;
