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
mod tests {
    // Lists of one range are what these tests mean.
    #![allow(clippy::single_range_in_vec_init)]

    use super::*;
    use crate::memmap::MemRegion;
    use core::cell::Cell;

    /// Guest memory as a Vec starting at `base`; reads outside fail like dom0's bounds check.
    struct VecMem {
        base: u64,
        bytes: Vec<u8>,
        reads: Cell<usize>,
    }

    impl VecMem {
        fn new(base: u64, len: usize) -> Self {
            VecMem {
                base,
                bytes: vec![0; len],
                reads: Cell::new(0),
            }
        }
        fn put(&mut self, paddr: u64, data: &[u8]) {
            let off = (paddr - self.base) as usize;
            self.bytes[off..off + data.len()].copy_from_slice(data);
        }
    }

    impl PhysRead for VecMem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
            self.reads.set(self.reads.get() + 1);
            let err = PhysReadError {
                paddr,
                len: buf.len(),
            };
            let off = usize::try_from(paddr.checked_sub(self.base).ok_or(err)?).unwrap();
            let end = off.checked_add(buf.len()).ok_or(err)?;
            buf.copy_from_slice(self.bytes.get(off..end).ok_or(err)?);
            Ok(())
        }
    }

    struct FailingMem;
    impl PhysRead for FailingMem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
            Err(PhysReadError {
                paddr,
                len: buf.len(),
            })
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn header_bytes(
        version: u32,
        flags: u32,
        nr_modules: u32,
        modlist: u64,
        cmdline: u64,
        rsdp: u64,
        memmap: u64,
        memmap_entries: u32,
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&XEN_HVM_START_MAGIC_VALUE.to_le_bytes());
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&nr_modules.to_le_bytes());
        b.extend_from_slice(&modlist.to_le_bytes());
        b.extend_from_slice(&cmdline.to_le_bytes());
        b.extend_from_slice(&rsdp.to_le_bytes());
        if version >= 1 {
            b.extend_from_slice(&memmap.to_le_bytes());
            b.extend_from_slice(&memmap_entries.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
        }
        b
    }

    fn modlist_entry(paddr: u64, size: u64, cmdline: u64) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [paddr, size, cmdline, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b
    }

    const IMAGE: Range<u64> = 0x100000..0x180000;
    const RAM_END: u64 = 0x7f60f16;
    const BUNDLE: u64 = 0x200000;
    const BUNDLE_CMDLINE: u64 = 0x201000;
    const DOM0_CMDLINE: u64 = 0x202000;
    const MODLIST: u64 = 0x202010;
    const SI: u64 = 0x202030;

    /// The map Xen 4.17 gives a 128 MiB PVH dom0 (via XENMEM_memory_map).
    fn dom0_map() -> MemoryMap {
        MemoryMap::from_regions(&[
            MemRegion::new(0, 0x9f000, MemType::Ram),
            MemRegion::new(0x9f000, 0x61000, MemType::Reserved),
            MemRegion::new(0x100000, RAM_END - 0x100000, MemType::Ram),
            MemRegion::new(RAM_END, 0x7f61000 - RAM_END, MemType::Acpi),
            MemRegion::new(0x7f61000, 0x9f000, MemType::Unusable),
            MemRegion::new(0xb000_0000, 0x1000_0000, MemType::Reserved),
        ])
        .unwrap()
    }

    /// Memory laid out the way Xen's `pvh_load_kernel()` does it: the module (here the boot
    /// bundle), its cmdline, page pad, dom0's cmdline rounded to 8, the modlist entry, then
    /// hvm_start_info; version 0, flags 3, one module.
    fn xen_dom0_memory() -> VecMem {
        let mut mem = VecMem::new(0, 0x210000);
        mem.put(BUNDLE, &[0xaa; 0x1000]);
        mem.put(BUNDLE_CMDLINE, b"bundle.cpio\0");
        mem.put(DOM0_CMDLINE, b"loglevel=debug\0");
        mem.put(MODLIST, &modlist_entry(BUNDLE, 0x1000, BUNDLE_CMDLINE));
        mem.put(
            SI,
            &header_bytes(0, 3, 1, MODLIST, DOM0_CMDLINE, RAM_END, 0, 0),
        );
        mem
    }

    fn load(mem: &VecMem) -> Result<StartInfo, StartInfoError> {
        let hdr = StartInfoHeader::read(SI, mem)?;
        StartInfo::load(SI, hdr, &dom0_map(), IMAGE, mem)
    }

    /// Rewrite the one modlist entry.
    fn with_module(paddr: u64, size: u64, cmdline: u64) -> VecMem {
        let mut mem = xen_dom0_memory();
        mem.put(MODLIST, &modlist_entry(paddr, size, cmdline));
        mem
    }

    #[test]
    fn good_v0_like_xen_gives_dom0() {
        let mem = xen_dom0_memory();
        let hdr = StartInfoHeader::read(SI, &mem).unwrap();
        assert_eq!(
            hdr,
            StartInfoHeader {
                magic: XEN_HVM_START_MAGIC_VALUE,
                version: 0,
                flags: 3,
                nr_modules: 1,
                modlist_paddr: MODLIST,
                cmdline_paddr: DOM0_CMDLINE,
                rsdp_paddr: RAM_END,
                memmap_paddr: 0,
                memmap_entries: 0,
            }
        );
        assert!(hdr.is_initdomain() && hdr.is_privileged());
        assert_eq!(hdr.size(), 40);
        // v0: exactly one 40-byte read, nothing past it.
        assert_eq!(mem.reads.get(), 1);
        assert_eq!(read_memmap(&hdr, &mem), Ok(None));

        let si = StartInfo::load(SI, hdr, &dom0_map(), IMAGE, &mem).unwrap();
        assert_eq!(si.cmdline, "loglevel=debug");
        assert_eq!(
            si.modules,
            vec![ModuleInfo {
                index: 0,
                paddr: BUNDLE,
                size: 0x1000,
                cmdline: "bundle.cpio".into(),
                cmdline_paddr: BUNDLE_CMDLINE,
            }]
        );
        assert!(si.warnings.is_empty(), "{:?}", si.warnings);
        assert_eq!(
            si.taken_ranges(),
            vec![
                SI..SI + 40,
                MODLIST..MODLIST + 32,
                DOM0_CMDLINE..DOM0_CMDLINE + 15,
                BUNDLE_CMDLINE..BUNDLE_CMDLINE + 12,
                BUNDLE..BUNDLE + 0x1000,
            ]
        );
    }

    /// QEMU's PVH loader (`-kernel` with a PVH note): version 1, flags 0, the header, modlist
    /// and memory map in the option ROM's data below 1 MiB, the cmdline in low RAM, the initrd
    /// at the top of RAM, the RSDP in the BIOS area.
    #[test]
    fn good_v1_like_qemu_loader() {
        let si_at = 0xc0100;
        let map_at = 0xc0200;
        let modlist_at = 0xc0180;
        let regions = [
            MemRegion::new(0, 0x9fc00, MemType::Ram),
            MemRegion::new(0x9fc00, 0x400, MemType::Reserved),
            MemRegion::new(0xf0000, 0x10000, MemType::Reserved),
            MemRegion::new(0x100000, 0x7ee0000, MemType::Ram),
            MemRegion::new(0x7fe0000, 0x20000, MemType::Reserved),
            MemRegion::new(0xfffc0000, 0x40000, MemType::Reserved),
        ];
        let mut table = Vec::new();
        for r in &regions {
            table.extend_from_slice(&r.addr.to_le_bytes());
            table.extend_from_slice(&r.size.to_le_bytes());
            table.extend_from_slice(&r.kind.raw().to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
        }
        let mut mem = VecMem::new(0, 0x8000000);
        mem.put(0x20000, b"console=serial on-ready=qemu-exit\0");
        mem.put(0x7f00000, &[1; 0x1000]);
        mem.put(modlist_at, &modlist_entry(0x7f00000, 0x1000, 0));
        mem.put(map_at, &table);
        mem.put(
            si_at,
            &header_bytes(1, 0, 1, modlist_at, 0x20000, 0xf5a80, map_at, 6),
        );

        let hdr = StartInfoHeader::read(si_at, &mem).unwrap();
        assert_eq!((hdr.version, hdr.flags, hdr.memmap_entries), (1, 0, 6));
        assert!(!hdr.is_initdomain());
        assert_eq!(hdr.size(), 56);
        let map = read_memmap(&hdr, &mem).unwrap().expect("v1 map");
        assert_eq!(map.regions(), &regions[..]);
        let si = StartInfo::load(si_at, hdr, &map, 0x1000000..0x1400000, &mem).unwrap();
        assert_eq!(si.cmdline, "console=serial on-ready=qemu-exit");
        assert_eq!(si.modules.len(), 1);
        assert_eq!(si.modules[0].cmdline, "");
        assert!(si.warnings.is_empty(), "{:?}", si.warnings);
    }

    #[test]
    fn no_cmdline_no_modules_no_rsdp() {
        let mut mem = xen_dom0_memory();
        mem.put(SI, &header_bytes(0, 3, 0, 0, 0, 0, 0, 0));
        let si = load(&mem).unwrap();
        assert_eq!(si.cmdline, "");
        assert!(si.modules.is_empty());
        assert_eq!(si.taken_ranges(), [SI..SI + 40].to_vec());
    }

    #[test]
    fn parse_truncated_buffers() {
        let v0 = header_bytes(0, 3, 0, 0, 0, 0, 0, 0);
        assert!(StartInfoHeader::parse(&v0).is_ok());
        for len in 0..40 {
            let err = StartInfoHeader::parse(&v0[..len]).unwrap_err();
            assert_eq!(
                err,
                StartInfoError::Truncated {
                    what: "start_info header",
                    needed: 40,
                    got: len
                }
            );
        }
        let v1 = header_bytes(1, 0, 0, 0, 0, 0, 0x5000, 3);
        let parsed = StartInfoHeader::parse(&v1).unwrap();
        assert_eq!((parsed.memmap_paddr, parsed.memmap_entries), (0x5000, 3));
        let err = StartInfoHeader::parse(&v1[..55]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "start_info v1 header truncated: need 56 bytes, got 55"
        );
        // A v0 header followed by junk keeps memmap at 0.
        let mut long = v0.clone();
        long.extend_from_slice(&[0xff; 16]);
        assert_eq!(StartInfoHeader::parse(&long).unwrap().memmap_entries, 0);
    }

    #[test]
    fn bad_magic_names_the_address() {
        let mut mem = xen_dom0_memory();
        mem.put(SI, &0x1234_5678u32.to_le_bytes());
        let err = StartInfoHeader::read(SI, &mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::BadMagic {
                found: 0x1234_5678,
                paddr: Some(SI)
            }
        );
        assert_eq!(
            err.to_string(),
            "bad magic 0x12345678 at 0x202030 (expected 0x336ec578)"
        );
        let err = StartInfoHeader::parse(&[0; 40]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad magic 0x00000000 (expected 0x336ec578)"
        );
    }

    #[test]
    fn versions() {
        let mut b = header_bytes(1, 0, 0, 0, 0, 0, 0, 0);
        for (version, ok) in [(0, true), (1, true), (2, true), (255, true), (256, false)] {
            b[4..8].copy_from_slice(&u32::to_le_bytes(version));
            assert_eq!(StartInfoHeader::parse(&b).is_ok(), ok, "version {version}");
        }
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = StartInfoHeader::parse(&b).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::BadVersion {
                version: u32::MAX,
                paddr: None
            }
        );

        // A newer version loads with a warning.
        let mut mem = xen_dom0_memory();
        mem.put(SI, &header_bytes(7, 3, 1, MODLIST, DOM0_CMDLINE, 0, 0, 0));
        let si = load(&mem).unwrap();
        assert_eq!(si.header.version, 7);
        assert_eq!(si.warnings.len(), 1);
        assert!(
            si.warnings[0].contains("version 7 is newer"),
            "{:?}",
            si.warnings
        );

        // An implausible one is refused from memory with its address.
        mem.put(SI + 4, &1000u32.to_le_bytes());
        let err = StartInfoHeader::read(SI, &mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::BadVersion {
                version: 1000,
                paddr: Some(SI)
            }
        );
        assert!(err.to_string().contains("at 0x202030"), "{err}");
    }

    #[test]
    fn unknown_flags_warned() {
        let mut mem = xen_dom0_memory();
        mem.put(SI + 8, &0x8000_0003u32.to_le_bytes());
        let si = load(&mem).unwrap();
        assert_eq!(
            si.warnings,
            [
                "start_info flags 0x80000003 has unknown bits 0x80000000 (known: SIF_PRIVILEGED, \
              SIF_INITDOMAIN)"
            ]
        );
    }

    #[test]
    fn read_failures() {
        assert_eq!(
            StartInfoHeader::read(0, &FailingMem),
            Err(StartInfoError::NullPointer)
        );
        let err = StartInfoHeader::read(0x1000, &FailingMem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::Read {
                what: "start_info header",
                err: PhysReadError {
                    paddr: 0x1000,
                    len: 40
                }
            }
        );
        assert_eq!(
            err.to_string(),
            "cannot read start_info header: cannot read 0x28 bytes at 0x1000"
        );
        let err = StartInfoHeader::read(u64::MAX - 8, &FailingMem).unwrap_err();
        assert!(
            matches!(err, StartInfoError::AddressOverflow { .. }),
            "{err:?}"
        );

        // A v1 header whose tail is unreadable.
        let mut mem = VecMem::new(0x1000, 48);
        mem.put(0x1000, &header_bytes(1, 0, 0, 0, 0, 0, 0, 0)[..48]);
        let err = StartInfoHeader::read(0x1000, &mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::Read {
                what: "start_info v1 fields",
                err: PhysReadError {
                    paddr: 0x1028,
                    len: 16
                }
            }
        );

        // A reader that fails after the header: the cmdline read reports it.
        let mem = xen_dom0_memory();
        let hdr = StartInfoHeader::read(SI, &mem).unwrap();
        let err = StartInfo::load(SI, hdr, &dom0_map(), IMAGE, &FailingMem).unwrap_err();
        assert!(
            matches!(
                err,
                StartInfoError::Read {
                    what: "command line",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn cmdline_checks() {
        // Outside RAM (in the ACPI area, above 1 MiB).
        let mut mem = xen_dom0_memory();
        mem.put(SI + 24, &(RAM_END + 8).to_le_bytes());
        let err = load(&mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::CmdlineOutsideRam {
                owner: CmdlineOwner::Dom0,
                paddr: RAM_END + 8
            }
        );
        assert_eq!(
            err.to_string(),
            "cmdline at 0x7f60f1e is outside RAM (and not below 1 MiB)"
        );
        // In a hole; and at u64::MAX.
        mem.put(SI + 24, &0x9000_0000u64.to_le_bytes());
        assert!(matches!(
            load(&mem),
            Err(StartInfoError::CmdlineOutsideRam { .. })
        ));
        mem.put(SI + 24, &u64::MAX.to_le_bytes());
        assert!(matches!(
            load(&mem),
            Err(StartInfoError::CmdlineOutsideRam { .. })
        ));

        // Not NUL-terminated within 4096 bytes.
        let mut mem = xen_dom0_memory();
        mem.put(0x203000, &[b'a'; 4096]);
        mem.put(SI + 24, &0x203000u64.to_le_bytes());
        let err = load(&mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::CmdlineUnterminated {
                owner: CmdlineOwner::Dom0,
                paddr: 0x203000,
                scanned: 4096
            }
        );
        // 4095 characters + NUL is the longest accepted.
        mem.put(0x203000 + 4095, &[0]);
        assert_eq!(load(&mem).unwrap().cmdline.len(), 4095);

        // Runs into the end of RAM before its NUL.
        let mut mem = VecMem::new(0, RAM_END as usize);
        let tail = xen_dom0_memory();
        mem.bytes[..tail.bytes.len()].copy_from_slice(&tail.bytes);
        mem.put(RAM_END - 10, &[b'x'; 10]);
        mem.put(SI + 24, &(RAM_END - 10).to_le_bytes());
        let err = load(&mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::CmdlineUnterminated {
                owner: CmdlineOwner::Dom0,
                paddr: RAM_END - 10,
                scanned: 10
            }
        );
        // ... and a short string right at the end of RAM is fine (no read past RAM).
        mem.put(RAM_END - 3, b"ok\0");
        mem.put(SI + 24, &(RAM_END - 3).to_le_bytes());
        assert_eq!(load(&mem).unwrap().cmdline, "ok");

        // Not UTF-8.
        let mut mem = xen_dom0_memory();
        mem.put(DOM0_CMDLINE, b"abc\xff\xfe\0");
        let err = load(&mem).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cmdline at 0x202000 is not UTF-8 (bad byte at offset 3)"
        );
        // UTF-8 is fine.
        mem.put(DOM0_CMDLINE, "caf\u{e9}\0".as_bytes());
        assert_eq!(load(&mem).unwrap().cmdline, "caf\u{e9}");

        // Below 1 MiB outside RAM (BIOS area) is accepted.
        mem.put(0xf0000, b"low\0");
        mem.put(SI + 24, &0xf0000u64.to_le_bytes());
        assert_eq!(load(&mem).unwrap().cmdline, "low");
    }

    #[test]
    fn module_count_and_list_checks() {
        let mut mem = xen_dom0_memory();
        mem.put(SI + 12, &65u32.to_le_bytes());
        assert_eq!(
            load(&mem),
            Err(StartInfoError::TooManyModules { count: 65, max: 64 })
        );
        mem.put(SI + 12, &u32::MAX.to_le_bytes());
        assert!(matches!(
            load(&mem),
            Err(StartInfoError::TooManyModules { .. })
        ));

        let mut mem = xen_dom0_memory();
        mem.put(SI + 16, &0u64.to_le_bytes());
        let err = load(&mem).unwrap_err();
        assert_eq!(err.to_string(), "nr_modules is 1 but modlist_paddr is 0");

        for bad in [0x9000_0000, RAM_END - 16, u64::MAX - 8] {
            mem.put(SI + 16, &u64::to_le_bytes(bad));
            assert_eq!(
                load(&mem),
                Err(StartInfoError::ModlistOutsideRam {
                    paddr: bad,
                    len: 32
                }),
                "{bad:#x}"
            );
        }
        mem.put(SI + 16, &0x9000_0000u64.to_le_bytes());
        assert_eq!(
            load(&mem).unwrap_err().to_string(),
            "module list [0x90000000, +0x20) is outside RAM (and not below 1 MiB)"
        );

        // nr_modules 0 with a stray modlist pointer: a warning only.
        let mut mem = xen_dom0_memory();
        mem.put(SI + 12, &0u32.to_le_bytes());
        let si = load(&mem).unwrap();
        assert!(si.modules.is_empty());
        assert_eq!(
            si.warnings,
            ["modlist_paddr 0x202010 ignored: nr_modules is 0"]
        );
    }

    #[test]
    fn module_range_checks() {
        let err = load(&with_module(BUNDLE, 0, 0)).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::ModuleEmpty {
                index: 0,
                paddr: BUNDLE
            }
        );
        assert_eq!(err.to_string(), "module 0 at 0x200000 has size 0");

        let err = load(&with_module(u64::MAX - 0xfff, 0x2000, 0)).unwrap_err();
        assert!(
            matches!(err, StartInfoError::ModuleOverflow { index: 0, .. }),
            "{err:?}"
        );
        let err = load(&with_module(1, u64::MAX, 0)).unwrap_err();
        assert!(
            matches!(err, StartInfoError::ModuleOverflow { .. }),
            "{err:?}"
        );

        // Runs past the end of RAM into the ACPI tables.
        let err = load(&with_module(RAM_END - 0x1000, 0x1001, 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "module 0 [0x7f5ff16, +0x1001) is not wholly in RAM"
        );
        // In the MMCFG window.
        let err = load(&with_module(0xb000_0000, 0x1000, 0)).unwrap_err();
        assert!(
            matches!(err, StartInfoError::ModuleOutsideRam { .. }),
            "{err:?}"
        );

        let err = load(&with_module(0x17f000, 0x2000, 0)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "module 0 [0x17f000, +0x2000) overlaps the dom0 image [0x100000, 0x180000)"
        );
        // Touching the image's end is fine.
        assert!(load(&with_module(0x180000, 0x1000, 0)).is_ok());

        let err = load(&with_module(SI + 0x20, 0x1000, 0)).unwrap_err();
        assert!(
            matches!(err, StartInfoError::ModuleOverlapsStartInfo { .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("overlaps the start_info header [0x202030, 0x202058)")
        );

        let err = load(&with_module(MODLIST - 0x10, 0x11, 0)).unwrap_err();
        assert!(
            matches!(err, StartInfoError::ModuleOverlapsModlist { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn modules_must_not_overlap_each_other() {
        let mut mem = xen_dom0_memory();
        let mut list = modlist_entry(0x300000, 0x2000, 0);
        list.extend(modlist_entry(0x400000, 0x1000, 0));
        list.extend(modlist_entry(0x301000, 0x1000, 0));
        mem.put(0x205000, &list);
        mem.put(SI + 12, &3u32.to_le_bytes());
        mem.put(SI + 16, &0x205000u64.to_le_bytes());
        let err = load(&mem).unwrap_err();
        assert_eq!(
            err.to_string(),
            "module 2 [0x301000, +0x1000) overlaps module 0 [0x300000, 0x302000)"
        );
        // Adjacent modules are fine.
        mem.put(0x205000 + 64, &modlist_entry(0x302000, 0x1000, 0));
        let si = load(&mem).unwrap();
        assert_eq!(
            si.modules.iter().map(|m| m.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
    }

    #[test]
    fn module_cmdline_errors_name_the_module() {
        let err = load(&with_module(BUNDLE, 0x1000, 0x9000_0000)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "module 0 cmdline at 0x90000000 is outside RAM (and not below 1 MiB)"
        );
        let mut mem = with_module(BUNDLE, 0x1000, 0x204000);
        mem.put(0x204000, b"\xc3(\0");
        let err = load(&mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::CmdlineNotUtf8 {
                owner: CmdlineOwner::Module(0),
                paddr: 0x204000,
                offset: 0
            }
        );
    }

    #[test]
    fn module_reserved_field_warned() {
        let mut mem = xen_dom0_memory();
        mem.put(MODLIST + 24, &7u64.to_le_bytes());
        let si = load(&mem).unwrap();
        assert_eq!(
            si.warnings,
            ["module 0: reserved field is 0x7 (expected 0)"]
        );
    }

    #[test]
    fn rsdp_checks() {
        let mut mem = xen_dom0_memory();
        for ok in [0, 0xf5a80, RAM_END, 0x9f000, 0x100000, 0xb000_0000] {
            mem.put(SI + 32, &u64::to_le_bytes(ok));
            assert!(load(&mem).is_ok(), "{ok:#x}");
        }
        for bad in [0x9000_0000, RAM_END + 0xea - 4, u64::MAX, 0x7f61000] {
            mem.put(SI + 32, &u64::to_le_bytes(bad));
            assert_eq!(
                load(&mem),
                Err(StartInfoError::RsdpOutside { paddr: bad }),
                "{bad:#x}"
            );
        }
        assert_eq!(
            load(&mem).unwrap_err().to_string(),
            "rsdp at 0x7f61000 is neither below 1 MiB nor in an ACPI, NVS, reserved or RAM region"
        );
    }

    #[test]
    fn header_not_in_ram_is_a_warning() {
        let mut mem = VecMem::new(0, 0x210000);
        mem.bytes.copy_from_slice(&xen_dom0_memory().bytes);
        let map = MemoryMap::from_regions(&[
            MemRegion::new(0, 0x202000, MemType::Ram),
            MemRegion::new(0x202000, 0x1000, MemType::Reserved),
        ])
        .unwrap();
        mem.put(SI, &header_bytes(0, 3, 0, 0, 0, 0, 0, 0));
        let hdr = StartInfoHeader::read(SI, &mem).unwrap();
        let si = StartInfo::load(SI, hdr, &map, IMAGE, &mem).unwrap();
        assert_eq!(si.warnings, ["start_info header at 0x202030 is not in RAM"]);
    }

    #[test]
    fn read_memmap_cases() {
        let mut hdr = StartInfoHeader::parse(&header_bytes(1, 0, 0, 0, 0, 0, 0x1000, 0)).unwrap();
        assert_eq!(read_memmap(&hdr, &FailingMem), Ok(None));
        hdr.memmap_entries = 2;
        hdr.memmap_paddr = 0;
        assert_eq!(
            read_memmap(&hdr, &FailingMem).unwrap_err().to_string(),
            "memmap_entries is 2 but memmap_paddr is 0"
        );
        hdr.memmap_paddr = 0x1000;
        let err = read_memmap(&hdr, &FailingMem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::Read {
                what: "start_info memory map",
                err: PhysReadError {
                    paddr: 0x1000,
                    len: 48
                }
            }
        );
        hdr.memmap_entries = u32::MAX;
        let err = read_memmap(&hdr, &FailingMem).unwrap_err();
        assert!(matches!(
            err,
            StartInfoError::Memmap(MemMapError::TooManyEntries { .. })
        ));
        assert!(
            err.to_string().starts_with("start_info memory map: "),
            "{err}"
        );

        // An entry that overflows is named.
        let mut mem = VecMem::new(0x1000, 48);
        let mut table = Vec::new();
        for (addr, size) in [(0u64, 0x1000u64), (u64::MAX, 2)] {
            table.extend_from_slice(&addr.to_le_bytes());
            table.extend_from_slice(&size.to_le_bytes());
            table.extend_from_slice(&1u32.to_le_bytes());
            table.extend_from_slice(&0u32.to_le_bytes());
        }
        mem.put(0x1000, &table);
        hdr.memmap_entries = 2;
        let err = read_memmap(&hdr, &mem).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::Memmap(MemMapError::EndOverflow {
                index: 1,
                addr: u64::MAX,
                size: 2
            })
        );
        hdr.version = 0;
        assert_eq!(read_memmap(&hdr, &mem), Ok(None));
    }

    #[test]
    fn image_range_hostile() {
        // An inverted image range overlaps nothing.
        let mem = xen_dom0_memory();
        let hdr = StartInfoHeader::read(SI, &mem).unwrap();
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = 0x300000..0x100000;
        assert!(StartInfo::load(SI, hdr, &dom0_map(), inverted, &mem).is_ok());
        let err = StartInfo::load(SI, hdr, &dom0_map(), 0..u64::MAX, &mem).unwrap_err();
        assert!(matches!(err, StartInfoError::ModuleOverlapsImage { .. }));
    }
}
