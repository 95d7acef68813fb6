//! Tests of `memmap.rs`.

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
    let top = MemoryMap::from_regions(&[MemRegion::new(u64::MAX - 0x2fff, 0x2fff, Ram)]).unwrap();
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
