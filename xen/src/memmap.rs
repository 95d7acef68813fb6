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
        regions.sort_by_key(|r| (r.addr, r.size));
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
mod tests {
    // Lists of one range are what these tests mean.
    #![allow(clippy::single_range_in_vec_init)]

    use super::*;
    use MemType::*;

    const MIB: u64 = 1 << 20;

    /// A map as Xen 4.17 gives a PVH dom0 with dom0_mem=128M on a QEMU q35 host: a copy of
    /// the host e820, RAM past the allocation turned unusable, crafted ACPI tables carved
    /// (alignment 1) from the end of the highest RAM entry below 4 GiB.
    fn xen_dom0_regions() -> Vec<MemRegion> {
        vec![
            MemRegion::new(0, 0x9f000, Ram),
            MemRegion::new(0x9f000, 0x61000, Reserved),
            MemRegion::new(0x100000, 0x7f60f16 - 0x100000, Ram),
            MemRegion::new(0x7f60f16, 0x7f61000 - 0x7f60f16, Acpi),
            MemRegion::new(0x7f61000, 0x7fe0000 - 0x7f61000, Unusable),
            MemRegion::new(0x7fe0000, 0x20000, Reserved),
            MemRegion::new(0xb000_0000, 0x1000_0000, Reserved),
            MemRegion::new(0xfed1_c000, 0x4000, Reserved),
            MemRegion::new(0xfeff_c000, 0x4000, Reserved),
            MemRegion::new(0xfffc_0000, 0x40000, Reserved),
            MemRegion::new(0x1_0000_0000, 0x4000_0000, Unusable),
        ]
    }

    #[test]
    fn pci_hole_and_gaps() {
        let map = MemoryMap::from_regions(&xen_dom0_regions()).unwrap();
        // Unusable (RAM Xen kept) ends at 0x7fe0000 below 4 GiB; the reserved firmware RAM after
        // it does not move the hole's start.
        assert_eq!(map.low_ram_end(), 0x8000000);
        assert_eq!(
            map.gaps(map.low_ram_end(), 0xfec0_0000),
            vec![0x800_0000..0xb000_0000, 0xc000_0000..0xfec0_0000]
        );
        assert_eq!(
            map.gaps(0, 0x20_0000),
            vec![] as Vec<Range<u64>>,
            "RAM, reserved and RAM cover the first 2 MiB"
        );
        assert_eq!(
            map.gaps(0x1_4000_0000, 0x1_8000_0000),
            vec![0x1_4000_0000..0x1_8000_0000]
        );
        assert_eq!(map.gaps(5, 5), vec![] as Vec<Range<u64>>);
        assert_eq!(
            map.gaps(0x2_0000_0000, 0x2_0000_0000),
            vec![] as Vec<Range<u64>>
        );
        assert_eq!(map.gaps(9, 3), vec![] as Vec<Range<u64>>);
        assert_eq!(MemoryMap::from_regions(&[]).unwrap().low_ram_end(), 0);
    }

    fn e820_bytes(regions: &[MemRegion]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in regions {
            out.extend_from_slice(&r.addr.to_le_bytes());
            out.extend_from_slice(&r.size.to_le_bytes());
            out.extend_from_slice(&r.kind.raw().to_le_bytes());
        }
        out
    }

    fn hvm_bytes(regions: &[MemRegion]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in regions {
            out.extend_from_slice(&r.addr.to_le_bytes());
            out.extend_from_slice(&r.size.to_le_bytes());
            out.extend_from_slice(&r.kind.raw().to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
        }
        out
    }

    #[test]
    fn memtype_round_trips() {
        for raw in 0..20 {
            assert_eq!(MemType::from_raw(raw).raw(), raw);
        }
        assert_eq!(MemType::from_raw(1), Ram);
        assert_eq!(MemType::from_raw(7), Pmem);
        assert_eq!(MemType::from_raw(12), Other(12));
        assert_eq!(Other(12).name(), "other");
        assert_eq!(Other(12).to_string(), "other(12)");
        assert_eq!(Acpi.to_string(), "acpi");
        let names: Vec<_> = (1..=8).map(|r| MemType::from_raw(r).name()).collect();
        assert_eq!(
            names,
            [
                "ram", "reserved", "acpi", "nvs", "unusable", "disabled", "pmem", "other"
            ]
        );
    }

    #[test]
    fn region_end_and_display() {
        let r = MemRegion::new(0x1000, 0x2000, Ram);
        assert_eq!(r.end(), 0x3000);
        assert_eq!(r.checked_end(), Some(0x3000));
        assert!(r.contains(0x1000) && r.contains(0x2fff) && !r.contains(0x3000));
        assert_eq!(r.to_string(), "[0x1000, 0x3000) ram");
        let huge = MemRegion::new(u64::MAX, 2, Ram);
        assert_eq!(huge.checked_end(), None);
        assert_eq!(huge.end(), u64::MAX);
    }

    #[test]
    fn realistic_xen_dom0_map_from_e820() {
        let regions = xen_dom0_regions();
        let bytes = e820_bytes(&regions);
        assert_eq!(bytes.len(), regions.len() * 20);
        let map = MemoryMap::from_e820_bytes(&bytes, regions.len()).unwrap();
        assert_eq!(map.regions(), &regions[..]);
        assert!(map.warnings().is_empty(), "{:?}", map.warnings());
        assert_eq!(map.total(Ram), 0x9f000 + 0x7f60f16 - 0x100000);
        assert_eq!(map.total(Acpi), 0xea);
        assert!(map.is_ram(0, 0x9f000));
        assert!(!map.is_ram(0, 0x9f001));
        assert!(map.is_ram(0x100000, 0x1000));
        assert!(map.is_ram(0x7f60f00, 0x16));
        assert!(!map.is_ram(0x7f60f00, 0x17));
        assert!(!map.is_ram(0xb000_0000, 1));
        assert!(map.covered_by(0x7f60f16, 36, |k| k == Acpi));
        // Adjacent regions of different matching kinds cover together.
        assert!(map.covered_by(0x7f60000, 0x2000, |k| matches!(k, Ram | Acpi | Unusable)));
        // A hole (0x8000000..0xb0000000) is never covered.
        assert!(!map.covered_by(0x8000000, 1, |_| true));
    }

    #[test]
    fn e820_ignores_trailing_bytes_and_rejects_short_buffers() {
        let regions = xen_dom0_regions();
        let mut bytes = e820_bytes(&regions);
        bytes.extend_from_slice(&[0xff; 7]);
        let map = MemoryMap::from_e820_bytes(&bytes, 2).unwrap();
        assert_eq!(map.regions().len(), 2);
        let err = MemoryMap::from_e820_bytes(&bytes[..59], 3).unwrap_err();
        assert_eq!(
            err,
            MemMapError::Truncated {
                count: 3,
                entry_size: 20,
                needed: 60,
                got: 59
            }
        );
        assert_eq!(
            err.to_string(),
            "memory map truncated: 3 entries of 20 bytes need 60 bytes, only 59 given"
        );
        assert_eq!(MemoryMap::from_e820_bytes(&[], 0).unwrap().regions(), &[]);
    }

    #[test]
    fn too_many_entries_rejected_before_reading() {
        let err = MemoryMap::from_e820_bytes(&[], usize::MAX).unwrap_err();
        assert_eq!(
            err,
            MemMapError::TooManyEntries {
                count: usize::MAX,
                max: 1024
            }
        );
        let err = MemoryMap::from_hvm_table_bytes(&[], 1025).unwrap_err();
        assert!(err.to_string().contains("1025 entries"), "{err}");
        let many = vec![MemRegion::new(0, 1, Ram); 1025];
        assert!(MemoryMap::from_regions(&many).is_err());
        assert!(MemoryMap::from_regions(&many[..1024]).is_ok());
    }

    #[test]
    fn hvm_table_parses_and_warns_on_reserved() {
        let regions = xen_dom0_regions();
        let mut bytes = hvm_bytes(&regions);
        let map = MemoryMap::from_hvm_table_bytes(&bytes, regions.len()).unwrap();
        assert_eq!(map.regions(), &regions[..]);
        assert!(map.warnings().is_empty());
        bytes[24 + 20] = 5; // entry 1's reserved field
        let map = MemoryMap::from_hvm_table_bytes(&bytes, regions.len()).unwrap();
        assert_eq!(
            map.warnings(),
            ["memory map entry 1: reserved field is 0x5 (expected 0)"]
        );
        let err = MemoryMap::from_hvm_table_bytes(&bytes[..47], 2).unwrap_err();
        assert!(matches!(
            err,
            MemMapError::Truncated {
                needed: 48,
                got: 47,
                ..
            }
        ));
    }

    #[test]
    fn overflowing_entry_named_by_index() {
        let mut regions = xen_dom0_regions();
        regions.push(MemRegion::new(u64::MAX - 0xfff, 0x1000, Reserved));
        let err = MemoryMap::from_e820_bytes(&e820_bytes(&regions), regions.len()).unwrap_err();
        assert_eq!(
            err,
            MemMapError::EndOverflow {
                index: 11,
                addr: u64::MAX - 0xfff,
                size: 0x1000
            }
        );
        assert_eq!(
            err.to_string(),
            "memory map entry 11 [0xfffffffffffff000, +0x1000) ends beyond the 64-bit address space"
        );
        let err = MemoryMap::from_regions(&[MemRegion::new(1, u64::MAX, Ram)]).unwrap_err();
        assert!(matches!(err, MemMapError::EndOverflow { index: 0, .. }));
        // Ending exactly at u64::MAX is fine.
        let map = MemoryMap::from_regions(&[MemRegion::new(1, u64::MAX - 1, Ram)]).unwrap();
        assert!(map.is_ram(u64::MAX - 1, 1));
        assert!(!map.is_ram(u64::MAX - 1, 2));
    }

    #[test]
    fn zero_size_entries_dropped_with_warning() {
        let map = MemoryMap::from_regions(&[
            MemRegion::new(0x1000, 0, Ram),
            MemRegion::new(0x2000, 0x1000, Ram),
        ])
        .unwrap();
        assert_eq!(map.regions(), &[MemRegion::new(0x2000, 0x1000, Ram)]);
        assert_eq!(
            map.warnings(),
            ["memory map entry 0 at 0x1000 (ram) has size 0; dropped"]
        );
        assert!(!map.is_ram(0x1000, 0));
        assert!(map.is_ram(0x2000, 0));
    }

    #[test]
    fn unknown_types_warned_and_not_ram() {
        let map = MemoryMap::from_regions(&[MemRegion::new(0x1000, 0x1000, Other(12))]).unwrap();
        assert_eq!(map.warnings().len(), 1);
        assert!(
            map.warnings()[0].contains("unknown type 12"),
            "{:?}",
            map.warnings()
        );
        assert!(!map.is_ram(0x1000, 1));
    }

    #[test]
    fn unsorted_input_is_sorted() {
        let mut regions = xen_dom0_regions();
        regions.reverse();
        let map = MemoryMap::from_regions(&regions).unwrap();
        assert_eq!(map.regions(), &xen_dom0_regions()[..]);
        assert!(map.warnings().is_empty());
    }

    #[test]
    fn overlaps_warned_and_conservative() {
        let map = MemoryMap::from_regions(&[
            MemRegion::new(0x100000, 0x100000, Ram),
            MemRegion::new(0x180000, 0x1000, Reserved),
            MemRegion::new(0x150000, 0x10000, Ram),
        ])
        .unwrap();
        assert_eq!(map.warnings().len(), 2, "{:?}", map.warnings());
        assert!(map.warnings()[0].contains("[0x100000, 0x200000) ram"));
        assert!(map.is_ram(0x100000, 0x80000));
        assert!(!map.is_ram(0x17f000, 0x2000));
        assert!(!map.is_ram(0x180000, 1));
        assert!(map.is_ram(0x181000, 0x7f000));
        assert!(!map.is_ram(0x181000, 0x80000));
        // Same-kind overlap counts once.
        assert_eq!(map.total(Ram), 0x100000);
        assert_eq!(map.coverage_end(0x100000, |k| k == Ram), 0x180000);
        assert_eq!(map.coverage_end(0x180000, |k| k == Ram), 0x180000);
        assert_eq!(map.coverage_end(0x180800, |k| k == Ram), 0x180800);
        assert_eq!(map.coverage_end(0x181000, |k| k == Ram), 0x200000);
        // A reserved region entirely inside RAM: the whole RAM is not RAM any more there.
        let map = MemoryMap::from_regions(&[
            MemRegion::new(0, 0x10000, Ram),
            MemRegion::new(0, 0x10000, Reserved),
        ])
        .unwrap();
        assert!(!map.is_ram(0, 1));
        assert!(map.covered_by(0, 0x10000, |k| matches!(k, Ram | Reserved)));
    }

    #[test]
    fn covered_by_hostile_ranges() {
        let map = MemoryMap::from_regions(&xen_dom0_regions()).unwrap();
        assert!(!map.is_ram(u64::MAX, 1));
        assert!(!map.is_ram(0x100000, u64::MAX));
        assert!(!map.is_ram(u64::MAX, u64::MAX));
        assert!(!map.covered_by(u64::MAX, 0, |_| true));
        assert!(!MemoryMap::default().is_ram(0, 1));
        assert_eq!(MemoryMap::default().total(Ram), 0);
    }

    #[test]
    fn free_ram_subtracts_and_aligns() {
        let map = MemoryMap::from_regions(&xen_dom0_regions()).unwrap();
        let taken = [0x100000..0x180000, 0x200000..0x201234, 0x7000000..0x7001000];
        let free = map.free_ram(&taken, 0x1000);
        assert_eq!(
            free,
            vec![
                0..0x9f000,
                0x180000..0x200000,
                0x202000..0x7000000,
                0x7001000..0x7f60000,
            ]
        );
        // 2 MiB alignment drops small pieces.
        let free = map.free_ram(&taken, 2 * MIB);
        assert_eq!(free, vec![0x400000..0x7000000, 0x7200000..0x7e00000]);
        // Non-power-of-two is rounded up; 0 means no alignment.
        assert_eq!(map.free_ram(&taken, 0x900), map.free_ram(&taken, 0x1000));
        let unaligned = map.free_ram(&[], 0);
        assert_eq!(unaligned.last(), Some(&(0x100000..0x7f60f16)));
    }

    #[test]
    fn free_ram_hostile_inputs() {
        let map = MemoryMap::from_regions(&xen_dom0_regions()).unwrap();
        #[allow(clippy::reversed_empty_ranges)]
        let inverted = [0x7000000..0x100000, u64::MAX..0];
        assert_eq!(map.free_ram(&inverted, 1), map.free_ram(&[], 1));
        let everything = 0..u64::MAX;
        assert_eq!(map.free_ram(core::slice::from_ref(&everything), 1), vec![]);
        assert_eq!(map.free_ram(&[], u64::MAX), vec![]);
        assert_eq!(map.free_ram(&[], 1 << 63), vec![]);
        // RAM up to the very top of the address space.
        let top =
            MemoryMap::from_regions(&[MemRegion::new(u64::MAX - 0x2fff, 0x2fff, Ram)]).unwrap();
        assert_eq!(
            top.free_ram(&[], 0x1000),
            [u64::MAX - 0x2fff..u64::MAX - 0xfff].to_vec()
        );
        // Overlapping RAM merges; reserved inside RAM is cut out.
        let map = MemoryMap::from_regions(&[
            MemRegion::new(0, 0x3000, Ram),
            MemRegion::new(0x2000, 0x3000, Ram),
            MemRegion::new(0x1000, 0x1000, Reserved),
        ])
        .unwrap();
        assert_eq!(map.free_ram(&[], 0x1000), vec![0..0x1000, 0x2000..0x5000]);
    }
}
