//! The firmware survey against a fake Xen that booted through EFI (or not), over a fake
//! physical memory holding an EFI configuration table.

use alloc::vec;
use alloc::vec::Vec;

use report::BootReport;
use xen::fake::{FakeEfi, FakeXen};
use xen::memmap::{MemRegion, MemoryMap};

use super::*;
use crate::platform::Platform;
use crate::testkit::FakePlatform;

const TABLE: u64 = 0x7f00_0000;
const RSDP: u64 = 0x7f10_0000;

/// RAM, EFI runtime data (reserved), ACPI tables: what Xen gives a PVH dom0 under OVMF.
fn uefi_map() -> MemoryMap {
    MemoryMap::from_regions(&[
        MemRegion {
            addr: 0,
            size: 0x7f00_0000,
            kind: MemType::Ram,
        },
        MemRegion {
            addr: 0x7f00_0000,
            size: 0xe0_0000,
            kind: MemType::Reserved,
        },
        MemRegion {
            addr: 0x7fe0_0000,
            size: 0x20_0000,
            kind: MemType::Nvs,
        },
    ])
    .unwrap()
}

fn entry(g: [u8; 16], ptr: u64) -> Vec<u8> {
    let mut e = g.to_vec();
    e.extend_from_slice(&ptr.to_le_bytes());
    e
}

fn efi_machine(table_at: u64, rsdp_sig: &[u8; 8]) -> (FakePlatform, FakeXen) {
    let mut p = FakePlatform::new(pci::sim::SimConfig::new());
    let mut t = entry(GUIDS[3].1, 0x7f20_0000);
    t.extend(entry(GUIDS[0].1, RSDP));
    t.extend(entry([0x11; 16], 0x7f30_0000));
    p.regions.push((table_at, t));
    p.regions.push((RSDP, rsdp_sig.to_vec()));
    let x = FakeXen::new(4, 20);
    x.set_efi(FakeEfi {
        version: 0x0002_0046,
        config_table: (table_at, 3),
        memmap: vec![
            (0x7f00_0000, 0xe0_0000, 6, 0x8000_0000_0000_000f),
            (0x7fe0_0000, 0x20_0000, 10, 0xf),
        ],
    });
    (p, x)
}

#[test]
fn uefi_rsdp_comes_from_the_efi_configuration_table() {
    let (p, x) = efi_machine(TABLE, b"RSD PTR ");
    let mut rep = BootReport::default();
    let rsdp = survey(&x, p.phys(), &uefi_map(), &mut rep);
    assert_eq!(rsdp, Some(RSDP));
    let f = rep.firmware.unwrap();
    assert_eq!(f.boot, "uefi");
    assert_eq!(f.efi_version, "2.70");
    assert_eq!(f.config_table, "0x7f000000 (3 entries)");
    assert_eq!(
        f.efi_tables,
        [
            "SMBIOS3 at 0x7f200000",
            "ACPI 2.0 RSDP at 0x7f100000",
            "11111111-1111-1111-1111-111111111111 at 0x7f300000"
        ]
    );
    assert_eq!(f.rsdp, RSDP);
    assert_eq!(
        f.memory,
        [
            "[0x7f000000, 0x7fe00000) reserved: EfiRuntimeServicesData (attributes 0x800000000000000f)",
            "[0x7fe00000, 0x80000000) nvs: EfiACPIMemoryNVS (attributes 0xf)"
        ]
    );
    assert!(f.problems.is_empty(), "{:?}", f.problems);
}

#[test]
fn a_bios_boot_is_named_and_gives_no_rsdp() {
    let p = FakePlatform::new(pci::sim::SimConfig::new());
    let x = FakeXen::new(4, 17);
    let mut rep = BootReport::default();
    assert_eq!(survey(&x, p.phys(), &uefi_map(), &mut rep), None);
    let f = rep.firmware.unwrap();
    assert_eq!(f.boot, "bios");
    assert!(f.problems.is_empty() && f.efi_tables.is_empty());
}

#[test]
fn a_table_outside_firmware_memory_is_not_read() {
    // In dom0's RAM the address is dom0's own memory, not the firmware's.
    let (p, x) = efi_machine(0x100_0000, b"RSD PTR ");
    let mut rep = BootReport::default();
    assert_eq!(survey(&x, p.phys(), &uefi_map(), &mut rep), None);
    let f = rep.firmware.unwrap();
    assert!(f.efi_tables.is_empty());
    assert!(
        f.problems[0].contains("EFI configuration table at 0x1000000 (+0x48) is not in a reserved"),
        "{:?}",
        f.problems
    );
}

#[test]
fn an_acpi_entry_without_an_rsdp_is_refused() {
    let (p, x) = efi_machine(TABLE, b"NOT RSDP");
    let mut rep = BootReport::default();
    assert_eq!(survey(&x, p.phys(), &uefi_map(), &mut rep), None);
    let f = rep.firmware.unwrap();
    assert!(
        f.problems[0].contains("not \"RSD PTR \""),
        "{:?}",
        f.problems
    );
}

#[test]
fn a_hostile_entry_count_is_not_followed() {
    let (p, x) = efi_machine(TABLE, b"RSD PTR ");
    x.set_efi(FakeEfi {
        version: 0x0002_0046,
        config_table: (TABLE, u32::MAX),
        memmap: Vec::new(),
    });
    let mut rep = BootReport::default();
    assert_eq!(survey(&x, p.phys(), &uefi_map(), &mut rep), None);
    let f = rep.firmware.unwrap();
    assert!(
        f.problems[0].contains("entries or more; not read"),
        "{:?}",
        f.problems
    );
    assert!(
        f.memory[0].ends_with("in no EFI memory descriptor"),
        "{:?}",
        f.memory
    );
}
