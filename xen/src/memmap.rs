//! The e820-style memory map a PVH dom0 gets from Xen.
//!
//! Two wire formats reach dom0:
//! - `XENMEM_memory_map` (memory_op 9) fills an array of packed 20-byte `struct e820entry`
//!   {u64 addr; u64 size; u32 type} (`xen/include/public/arch-x86/xen.h` via `asm/e820.h`).
//!   This is the only source for a PVH dom0: Xen never puts a map in its start_info.
//! - `hvm_start_info` v1 may point at 24-byte `struct hvm_memmap_table_entry`
//!   {u64 addr; u64 size; u32 type; u32 reserved} (`public/arch-x86/hvm/start_info.h`);
//!   QEMU's PVH loader passes one.
//!
//! Both use the E820 type numbers (`XEN_HVM_MEMMAP_TYPE_*`). The map is kept as given (sorted),
//! and every question asked of it is answered conservatively: a byte that some entry calls RAM
//! and another calls reserved is not RAM.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

/// One region's type (`XEN_HVM_MEMMAP_TYPE_*`, the same numbers as E820).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemType {
    /// 1: usable RAM.
    Ram,
    /// 2: reserved (firmware, MMIO windows such as MMCFG, Xen's VM86 TSS).
    Reserved,
    /// 3: ACPI tables, reclaimable once parsed (Xen puts its crafted MADT/XSDT/RSDP here).
    Acpi,
    /// 4: ACPI NVS, must be preserved.
    Nvs,
    /// 5: unusable (Xen marks host RAM beyond the dom0 allocation this way).
    Unusable,
    /// 6: disabled.
    Disabled,
    /// 7: persistent memory.
    Pmem,
    /// Any other number; treated like reserved everywhere.
    Other(u32),
}

impl MemType {
    /// Decode the raw type number.
    pub fn from_raw(raw: u32) -> Self {
        match raw {
            1 => MemType::Ram,
            2 => MemType::Reserved,
            3 => MemType::Acpi,
            4 => MemType::Nvs,
            5 => MemType::Unusable,
            6 => MemType::Disabled,
            7 => MemType::Pmem,
            other => MemType::Other(other),
        }
    }

    /// The raw type number.
    pub fn raw(self) -> u32 {
        match self {
            MemType::Ram => 1,
            MemType::Reserved => 2,
            MemType::Acpi => 3,
            MemType::Nvs => 4,
            MemType::Unusable => 5,
            MemType::Disabled => 6,
            MemType::Pmem => 7,
            MemType::Other(raw) => raw,
        }
    }

    /// A short lower-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            MemType::Ram => "ram",
            MemType::Reserved => "reserved",
            MemType::Acpi => "acpi",
            MemType::Nvs => "nvs",
            MemType::Unusable => "unusable",
            MemType::Disabled => "disabled",
            MemType::Pmem => "pmem",
            MemType::Other(_) => "other",
        }
    }
}

impl fmt::Display for MemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemType::Other(raw) => write!(f, "other({raw})"),
            kind => f.write_str(kind.name()),
        }
    }
}

/// One entry of the map: `[addr, addr + size)` of type `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    pub addr: u64,
    pub size: u64,
    pub kind: MemType,
}

impl MemRegion {
    pub const fn new(addr: u64, size: u64, kind: MemType) -> Self {
        MemRegion { addr, size, kind }
    }

    /// The exclusive end, or `None` if it does not fit in a u64.
    pub fn checked_end(&self) -> Option<u64> {
        self.addr.checked_add(self.size)
    }

    /// The exclusive end, saturated at `u64::MAX`. Regions inside a [`MemoryMap`] never
    /// saturate: the map rejects entries whose end overflows.
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }

    /// True if `paddr` lies inside the region.
    pub fn contains(&self, paddr: u64) -> bool {
        paddr >= self.addr && paddr < self.end()
    }
}

impl fmt::Display for MemRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x}) {}", self.addr, self.end(), self.kind)
    }
}

/// Why a memory map was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemMapError {
    /// More entries than [`MemoryMap::MAX_ENTRIES`].
    TooManyEntries { count: usize, max: usize },
    /// The buffer is shorter than `count` entries of `entry_size` bytes.
    Truncated {
        count: usize,
        entry_size: usize,
        needed: usize,
        got: usize,
    },
    /// Entry `index` (in the order given) ends past 2^64 - 1.
    EndOverflow { index: usize, addr: u64, size: u64 },
}

impl fmt::Display for MemMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemMapError::TooManyEntries { count, max } => {
                write!(
                    f,
                    "memory map has {count} entries (at most {max} supported)"
                )
            }
            MemMapError::Truncated {
                count,
                entry_size,
                needed,
                got,
            } => write!(
                f,
                "memory map truncated: {count} entries of {entry_size} bytes need {needed} bytes, \
                 only {got} given"
            ),
            MemMapError::EndOverflow { index, addr, size } => write!(
                f,
                "memory map entry {index} [{addr:#x}, +{size:#x}) ends beyond the 64-bit address space"
            ),
        }
    }
}

/// An e820-style memory map, sorted by address, with the oddities found while building it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryMap {
    regions: Vec<MemRegion>,
    warnings: Vec<String>,
}

/// Size of a packed `struct e820entry` as `XENMEM_memory_map` writes it.
const E820_ENTRY_SIZE: usize = 20;
/// Size of `struct hvm_memmap_table_entry`.
const HVM_ENTRY_SIZE: usize = 24;

use crate::le::{u32_at as le_u32, u64_at as le_u64};

impl MemoryMap {
    /// The most entries accepted. Xen's own limit for a domain map is E820MAX (1024 on x86).
    pub const MAX_ENTRIES: usize = 1024;

    fn check_len(bytes: &[u8], nr_entries: usize, entry_size: usize) -> Result<(), MemMapError> {
        if nr_entries > Self::MAX_ENTRIES {
            return Err(MemMapError::TooManyEntries {
                count: nr_entries,
                max: Self::MAX_ENTRIES,
            });
        }
        // Cannot overflow: nr_entries <= 1024.
        let needed = nr_entries * entry_size;
        if bytes.len() < needed {
            return Err(MemMapError::Truncated {
                count: nr_entries,
                entry_size,
                needed,
                got: bytes.len(),
            });
        }
        Ok(())
    }

    /// Parse `XENMEM_memory_map` output: `nr_entries` packed 20-byte `struct e820entry`
    /// {u64 addr; u64 size; u32 type}. Bytes past the last entry are ignored.
    pub fn from_e820_bytes(bytes: &[u8], nr_entries: usize) -> Result<MemoryMap, MemMapError> {
        Self::check_len(bytes, nr_entries, E820_ENTRY_SIZE)?;
        let regions: Vec<MemRegion> = bytes
            .chunks_exact(E820_ENTRY_SIZE)
            .take(nr_entries)
            .map(|e| MemRegion::new(le_u64(e, 0), le_u64(e, 8), MemType::from_raw(le_u32(e, 16))))
            .collect();
        Self::build(&regions, Vec::new())
    }

    /// Parse a start_info v1 table: `nr_entries` 24-byte `struct hvm_memmap_table_entry`
    /// {u64 addr; u64 size; u32 type; u32 reserved}. A non-zero `reserved` is only a warning.
    pub fn from_hvm_table_bytes(bytes: &[u8], nr_entries: usize) -> Result<MemoryMap, MemMapError> {
        Self::check_len(bytes, nr_entries, HVM_ENTRY_SIZE)?;
        let mut warnings = Vec::new();
        let mut regions = Vec::with_capacity(nr_entries);
        for (index, e) in bytes
            .chunks_exact(HVM_ENTRY_SIZE)
            .take(nr_entries)
            .enumerate()
        {
            let reserved = le_u32(e, 20);
            if reserved != 0 {
                warnings.push(format!(
                    "memory map entry {index}: reserved field is {reserved:#x} (expected 0)"
                ));
            }
            regions.push(MemRegion::new(
                le_u64(e, 0),
                le_u64(e, 8),
                MemType::from_raw(le_u32(e, 16)),
            ));
        }
        Self::build(&regions, warnings)
    }

    /// Build a map from regions in any order.
    pub fn from_regions(regions: &[MemRegion]) -> Result<MemoryMap, MemMapError> {
        if regions.len() > Self::MAX_ENTRIES {
            return Err(MemMapError::TooManyEntries {
                count: regions.len(),
                max: Self::MAX_ENTRIES,
            });
        }
        Self::build(regions, Vec::new())
    }

    fn build(input: &[MemRegion], mut warnings: Vec<String>) -> Result<MemoryMap, MemMapError> {
        let mut regions = Vec::with_capacity(input.len());
        for (index, r) in input.iter().enumerate() {
            if r.checked_end().is_none() {
                return Err(MemMapError::EndOverflow {
                    index,
                    addr: r.addr,
                    size: r.size,
                });
            }
            if r.size == 0 {
                warnings.push(format!(
                    "memory map entry {index} at {:#x} ({}) has size 0; dropped",
                    r.addr, r.kind
                ));
                continue;
            }
            if let MemType::Other(raw) = r.kind {
                warnings.push(format!(
                    "memory map entry {index} [{:#x}, {:#x}) has unknown type {raw}; \
                     treated as reserved",
                    r.addr,
                    r.end()
                ));
            }
            regions.push(*r);
        }
        // Stable sort: equal addresses keep the order Xen gave them.
        lean::sort_by_key(&mut regions, |r| (r.addr, r.size));
        // Overlaps are kept (the conservative queries below cope with them) but reported.
        // Sorted by start, so each region need only be compared with the furthest end so far.
        let mut furthest: Option<MemRegion> = None;
        for r in &regions {
            if let Some(prev) = furthest {
                if r.addr < prev.end() {
                    warnings.push(format!("memory map entries overlap: {prev} and {r}"));
                }
                if r.end() > prev.end() {
                    furthest = Some(*r);
                }
            } else {
                furthest = Some(*r);
            }
        }
        Ok(MemoryMap { regions, warnings })
    }

    /// The regions, sorted by address (zero-size entries dropped).
    pub fn regions(&self) -> &[MemRegion] {
        &self.regions
    }

    /// What was odd about the map: zero-size entries dropped, overlaps, unknown types.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Bytes covered by regions of `kind` (overlapping regions of the same kind count once;
    /// overlaps with other kinds are not subtracted).
    pub fn total(&self, kind: MemType) -> u64 {
        let mut total = 0u64;
        let mut covered_to = 0u64;
        for r in self.regions.iter().filter(|r| r.kind == kind) {
            let start = r.addr.max(covered_to);
            let end = r.end();
            if end > start {
                total = total.saturating_add(end - start);
                covered_to = end;
            }
        }
        total
    }

    /// The end of the run of bytes from `addr` for which every covering region satisfies
    /// `pred` and at least one region covers. Returns `addr` if `addr` itself is not covered.
    pub fn coverage_end(&self, addr: u64, pred: impl Fn(MemType) -> bool) -> u64 {
        // Extend through matching regions (sorted by start, so one pass suffices).
        let mut end = addr;
        for r in self.regions.iter().filter(|r| pred(r.kind)) {
            if r.addr > end {
                break;
            }
            if r.end() > end {
                end = r.end();
            }
        }
        // Cut at the first non-matching region that reaches into [addr, end).
        for r in self.regions.iter().filter(|r| !pred(r.kind)) {
            if r.addr >= end {
                break;
            }
            if r.end() > addr {
                end = r.addr.max(addr);
            }
        }
        end
    }

    /// True if `[addr, addr + len)` is wholly covered by (possibly adjacent or overlapping)
    /// regions whose kind satisfies `pred`, and no byte of it is also covered by a region whose
    /// kind does not. A range whose end overflows is never covered. An empty range is covered
    /// if `addr` itself is (so a zero-length pointer into a hole still fails).
    pub fn covered_by(&self, addr: u64, len: u64, pred: impl Fn(MemType) -> bool) -> bool {
        let Some(end) = addr.checked_add(len.max(1)) else {
            return false;
        };
        self.coverage_end(addr, pred) >= end
    }

    /// True if `[addr, addr + len)` is RAM and nothing else (see [`MemoryMap::covered_by`]).
    pub fn is_ram(&self, addr: u64, len: u64) -> bool {
        self.covered_by(addr, len, |k| k == MemType::Ram)
    }

    /// RAM minus the `taken` ranges (kernel image, start_info, modules, page tables), each
    /// remaining piece shrunk inward to `align`, empty pieces dropped, sorted and disjoint.
    ///
    /// Bytes that are RAM in one entry and something else in another are not free. `align` is
    /// meant to be a power of two; 0 is taken as 1 and other values are rounded up to the next
    /// power of two. Inverted `taken` ranges (start > end) are empty and ignored.
    pub fn free_ram(&self, taken: &[Range<u64>], align: u64) -> Vec<Range<u64>> {
        let Some(align) = align.max(1).checked_next_power_of_two() else {
            return Vec::new();
        };
        // Union of the RAM regions.
        let mut free: Vec<Range<u64>> = Vec::new();
        for r in self.regions.iter().filter(|r| r.kind == MemType::Ram) {
            match free.last_mut() {
                Some(last) if r.addr <= last.end => last.end = last.end.max(r.end()),
                _ => free.push(r.addr..r.end()),
            }
        }
        // Minus everything that is not RAM, then minus what is taken.
        for r in self.regions.iter().filter(|r| r.kind != MemType::Ram) {
            subtract(&mut free, r.addr..r.end());
        }
        for t in taken {
            subtract(&mut free, t.clone());
        }
        free.into_iter()
            .filter_map(|piece| {
                let start = piece.start.checked_next_multiple_of(align)?;
                let end = piece.end & !(align - 1);
                (start < end).then_some(start..end)
            })
            .collect()
    }

    /// Where the PCI hole below 4 GiB starts: the end of the last RAM (or RAM Xen withheld from
    /// dom0, "unusable") below 4 GiB, rounded up to 1 MiB. Reserved entries below it are
    /// firmware RAM (ACPI tables, SMM); reserved entries above it are MMIO (MMCONFIG, chipset).
    pub fn low_ram_end(&self) -> u64 {
        const GIB4: u64 = 1 << 32;
        self.regions
            .iter()
            .filter(|r| matches!(r.kind, MemType::Ram | MemType::Unusable))
            .map(|r| r.end())
            .filter(|&e| e <= GIB4)
            .max()
            .unwrap_or(0)
            .next_multiple_of(1 << 20)
    }

    /// The parts of `[lo, hi)` that no entry covers, in order.
    pub fn gaps(&self, lo: u64, hi: u64) -> Vec<Range<u64>> {
        if lo >= hi {
            return Vec::new();
        }
        let mut out = alloc::vec![lo..hi];
        for r in &self.regions {
            subtract(&mut out, r.addr..r.end());
        }
        out
    }
}

/// Remove `hole` from a sorted list of disjoint ranges.
fn subtract(ranges: &mut Vec<Range<u64>>, hole: Range<u64>) {
    if hole.start >= hole.end {
        return;
    }
    let mut out = Vec::with_capacity(ranges.len() + 1);
    for r in ranges.drain(..) {
        if r.end <= hole.start || r.start >= hole.end {
            out.push(r);
            continue;
        }
        if r.start < hole.start {
            out.push(r.start..hole.start);
        }
        if r.end > hole.end {
            out.push(hole.end..r.end);
        }
    }
    *ranges = out;
}

#[cfg(test)]
mod tests;
