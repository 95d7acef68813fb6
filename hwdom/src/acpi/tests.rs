//! The ACPI phase on tables built by `acpi_fixup::build` in a fake physical memory: Xen's
//! crafted MADT against the container dom0 wants, the rewrite when they differ, the vCPU count
//! checks, and tables that are missing or point at nonsense.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use acpi_fixup::build::{ApicIdScheme, ContainerSpec, build_madt, build_rsdp, build_xsdt};
use acpi_fixup::{MadtSummary, SdtHeader};
use report::BootReport;

use super::*;
use crate::testkit::{FakePlatform, q35_map};

const GIVEN_RSDP: u64 = 0x7ffe_0000;
const NATIVE_RSDP: u64 = 0xe_0000;

fn xsdt(entries: &[u64]) -> Vec<u8> {
    let h = SdtHeader {
        signature: *b"XSDT",
        revision: 1,
        oem_id: *b"BOCHS ",
        ..Default::default()
    };
    build_xsdt(&h, entries).unwrap()
}

/// The firmware's MADT: 4 CPUs, ids 0..3.
fn native_madt() -> Vec<u8> {
    build_madt(&ContainerSpec::new(4, ApicIdScheme::Identity)).unwrap()
}

/// A platform whose firmware tables sit in the BIOS area (RSDP at 0xe0000) and whose Xen
/// crafted a PVH dom0 MADT for `xen_vcpus` vCPUs (RSDP at 0x7ffe0000, in the map's ACPI range).
fn machine(xen_vcpus: u32, with_native: bool) -> FakePlatform {
    let mut p = FakePlatform::new(pci::sim::SimConfig::new());
    let native = native_madt();
    let host = MadtSummary::parse(&native).unwrap();
    let crafted = build_madt(&ContainerSpec::xen_pvh_dom0(&host, xen_vcpus)).unwrap();
    let (x_at, m_at) = (GIVEN_RSDP + 0x100, GIVEN_RSDP + 0x200);
    p.regions
        .push((GIVEN_RSDP, build_rsdp(x_at, *b"BOCHS ").to_vec()));
    p.regions.push((x_at, xsdt(&[m_at])));
    p.regions.push((m_at, crafted));
    if with_native {
        // The BIOS area is scanned whole, 0xe0000..0x100000.
        let mut bios = vec![0u8; 0x2_0000];
        let rsdp = build_rsdp(NATIVE_RSDP + 0x1000, *b"BOCHS ");
        bios[..rsdp.len()].copy_from_slice(&rsdp);
        let x = xsdt(&[NATIVE_RSDP + 0x2000]);
        bios[0x1000..0x1000 + x.len()].copy_from_slice(&x);
        bios[0x2000..0x2000 + native.len()].copy_from_slice(&native);
        p.regions.push((NATIVE_RSDP, bios));
    }
    p
}

fn under_xen(vcpus: u32) -> BootReport {
    BootReport {
        under_xen: true,
        vcpus,
        ..Default::default()
    }
}

#[test]
fn xen_madt_equal_to_the_container_is_kept() {
    let p = machine(2, true);
    let mut rep = under_xen(2);
    let mcfg = boot_survey(&p, &mut rep, &q35_map(), GIVEN_RSDP, None, 2, None);
    assert!(mcfg.mcfg.is_empty());
    let acpi = rep.acpi.as_ref().unwrap();
    assert_eq!(acpi.root, "XSDT");
    assert_eq!(acpi.madt_apic_ids, [0, 2]);
    let c = acpi.container.as_ref().unwrap();
    assert_eq!(c.compared_with, "Xen's crafted MADT");
    assert_eq!(c.native_rsdp, NATIVE_RSDP);
    assert!(c.differences.is_empty(), "{:?}", c.differences);
    assert!(!c.rewritten);
    assert!(p.placed.borrow().is_empty());
    assert!(rep.warnings.is_empty(), "{:?}", rep.warnings);
}

#[test]
fn maxcpus_below_xens_count_rewrites_the_madt_and_the_rewrite_validates() {
    let p = machine(4, true);
    let mut rep = under_xen(4);
    boot_survey(&p, &mut rep, &q35_map(), GIVEN_RSDP, Some(2), 2, None);
    let acpi = rep.acpi.as_ref().unwrap();
    let c = acpi.container.as_ref().unwrap();
    assert!(!c.differences.is_empty());
    assert!(c.rewritten);
    assert_eq!(c.apic_ids, [0, 2]);
    // MADT, XSDT and RSDP were placed in dom0's memory, and re-read cleanly from there.
    assert_eq!(p.placed.borrow().len(), 3);
    assert_eq!(c.rsdp, p.placed.borrow()[2].0);
    // The rewritten set has the given set's only flaw (this test's tables have no FADT) and
    // nothing more.
    let given: Vec<&String> = acpi
        .problems
        .iter()
        .filter(|p| !p.starts_with("rewritten"))
        .collect();
    let rewritten: Vec<&String> = acpi
        .problems
        .iter()
        .filter(|p| p.starts_with("rewritten"))
        .collect();
    assert_eq!(given.len(), 1, "{given:?}");
    assert_eq!(rewritten.len(), 1, "{rewritten:?}");
    assert!(rewritten[0].ends_with("no usable FADT (\"FACP\") listed (expected one)"));
    let again = acpi_fixup::validate::validate(&Placed(&p), c.rsdp);
    assert_eq!(again.madt.unwrap().apic_ids, [0, 2]);
}

#[test]
fn a_madt_that_disagrees_with_vcpuop_is_up_is_a_warning() {
    let p = machine(2, true);
    let mut rep = under_xen(3);
    boot_survey(&p, &mut rep, &q35_map(), GIVEN_RSDP, None, 3, None);
    assert_eq!(rep.warnings, ["MADT lists 2 vCPUs but Xen says 3"]);
    assert_eq!(rep.vcpus, 3, "Xen's count stands");
}

/// UEFI: nothing in the BIOS area; the firmware's tables are where the EFI configuration table
/// says (`crate::firmware`), in reserved memory.
#[test]
fn on_uefi_the_container_is_compared_with_the_madt_behind_the_efi_rsdp() {
    const EFI_RSDP: u64 = 0xfed0_0000;
    let mut p = machine(2, false);
    let native = native_madt();
    p.regions
        .push((EFI_RSDP, build_rsdp(EFI_RSDP + 0x100, *b"BOCHS ").to_vec()));
    p.regions
        .push((EFI_RSDP + 0x100, xsdt(&[EFI_RSDP + 0x200])));
    p.regions.push((EFI_RSDP + 0x200, native));
    let mut rep = under_xen(2);
    boot_survey(
        &p,
        &mut rep,
        &q35_map(),
        GIVEN_RSDP,
        None,
        2,
        Some(EFI_RSDP),
    );
    let acpi = rep.acpi.as_ref().unwrap();
    let c = acpi.container.as_ref().expect("compared");
    assert_eq!(c.native_rsdp, EFI_RSDP);
    assert!(c.differences.is_empty(), "{:?}", c.differences);
}

#[test]
fn without_the_firmware_madt_the_container_is_not_compared() {
    let p = machine(2, false);
    let mut rep = under_xen(2);
    boot_survey(&p, &mut rep, &q35_map(), GIVEN_RSDP, None, 2, None);
    let acpi = rep.acpi.as_ref().unwrap();
    assert!(acpi.container.is_none());
    assert!(
        acpi.problems
            .contains(&"container MADT: the firmware's MADT was not found; not compared".into()),
        "{:?}",
        acpi.problems
    );
}

#[test]
fn without_xen_the_madt_counts_the_cpus_cut_to_maxcpus() {
    let p = machine(4, true);
    let mut rep = BootReport::default();
    boot_survey(&p, &mut rep, &q35_map(), GIVEN_RSDP, None, 1, None);
    assert_eq!(rep.vcpus, 4);
    assert!(
        rep.acpi.as_ref().unwrap().container.is_none(),
        "Container::Firmware: no check"
    );
    let mut rep = BootReport::default();
    boot_survey(&p, &mut rep, &q35_map(), GIVEN_RSDP, Some(3), 1, None);
    assert_eq!(rep.vcpus, 3);
}

#[test]
fn no_rsdp_is_a_warning_and_one_cpu_without_xen() {
    let p = machine(2, true);
    let mut rep = BootReport::default();
    assert!(
        boot_survey(&p, &mut rep, &q35_map(), 0, None, 1, None)
            .mcfg
            .is_empty()
    );
    assert_eq!(
        rep.warnings,
        ["no RSDP in start_info: ACPI tables not read"]
    );
    assert_eq!(rep.vcpus, 1);
    assert!(rep.acpi.is_none());
}

#[test]
fn an_rsdp_pointing_outside_acpi_memory_is_refused_without_reading_it() {
    // 0xc0000000 is a gap in the map (where BARs live): never read as a table.
    let p = machine(2, true);
    let mut rep = under_xen(2);
    boot_survey(&p, &mut rep, &q35_map(), 0xc000_0000, None, 2, None);
    let acpi = rep.acpi.as_ref().unwrap();
    assert!(acpi.tables.is_empty());
    assert!(!acpi.problems.is_empty());
}

#[test]
fn container_choice() {
    assert_eq!(
        Container::choose(true, Some(1), 2),
        Container::XenPvh { vcpus: 2 }
    );
    assert_eq!(
        Container::choose(false, Some(3), 1),
        Container::FirmwareLimited { cpus: 3 }
    );
    assert_eq!(Container::choose(false, None, 1), Container::Firmware);
}
