//! Firmware facts (issue 15): UEFI boot (OVMF, GRUB rescue ISO, Xen by multiboot2 through EFI)
//! with the firmware's RSDP found through Xen's EFI configuration table, and every PCI host
//! bridge of the ACPI namespace. The `expander`
//! topology adds two PCIe expander bridges (QEMU's `pxb-pcie`, standing for the extra root
//! complexes of multi-root servers): their buses (0x40-0x41, 0x80-0x84) are reached from no
//! bridge below bus 0, only from their ACPI host bridges (`\_SB_.PC40`, `\_SB_.PC80`).
//!
//! Each scenario asserts on dom0's report and on Xen's own log (`PCI add device ...` for every
//! function, in dom0's order; no BAR warnings).

use image::XenVersion;
use tests::{
    assert_device_check, assert_pass, assert_pci_matches_xen, assert_xen_log_clean, boot, check,
    config, dom0, pci, pci_function,
};

/// The windows of a host bridge as (start, end inclusive): "mem 0xfd000000-0xfd3fffff".
fn mem_windows(w: &[String]) -> Vec<(u64, u64)> {
    w.iter()
        .filter_map(|s| s.strip_prefix("mem "))
        .filter_map(|s| {
            let (a, b) = s.split_once('-')?;
            let h = |x: &str| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok();
            Some((h(a)?, h(b.split(' ').next()?)?))
        })
        .collect()
}

/// Config reads and writes per function enumeration may make (measured: about 27 reads and 9
/// writes per function on the default topology, SeaBIOS and OVMF, Xen 4.17 and 4.20). Each is
/// a VM exit under Xen: a regression here is boot time on every machine.
const MAX_READS_PER_FUNCTION: u64 = 36;
const MAX_WRITES_PER_FUNCTION: u64 = 12;

fn assert_config_accesses(out: &image::RunOutcome) {
    let p = pci(out);
    let n = p.functions.len() as u64;
    let (r, w) = (p.enumerate_config_reads, p.enumerate_config_writes);
    check!(
        out,
        n > 0 && r > 0 && r <= MAX_READS_PER_FUNCTION * n && w <= MAX_WRITES_PER_FUNCTION * n,
        "enumeration made {r} config reads and {w} writes for {n} functions (at most \
         {MAX_READS_PER_FUNCTION} and {MAX_WRITES_PER_FUNCTION} per function)"
    );
}

/// UEFI: OVMF boots the GRUB rescue ISO, GRUB loads Xen by multiboot2 through EFI. dom0 gets
/// the EFI configuration table from `XENPF_firmware_info`, finds the firmware's RSDP there (the
/// one Xen's own log names), compares the container MADT with the firmware's, and reports the
/// EFI memory types behind its memory map.
fn uefi(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let mut cfg = config(xen, 1, &format!("test-uefi-{major}.{minor}"));
    cfg.firmware = image::iso::Firmware::Uefi;
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_pci_matches_xen(&out);
    assert_config_accesses(&out);
    check!(
        out,
        out.serial.contains("(XEN) EFI RAM map:"),
        "Xen did not boot through EFI (no 'EFI RAM map' in its log)"
    );
    let d = dom0(&out);
    let Some(fw) = &d.firmware else {
        panic!("dom0 reports no firmware");
    };
    check!(out, fw.boot == "uefi", "firmware {:?}", fw.boot);
    check!(
        out,
        fw.problems.is_empty(),
        "firmware problems {:?}",
        fw.problems
    );
    // Xen's log: "(XEN) ACPI: RSDP 3F77D014, 0024 (r2 BOCHS )".
    let xen_rsdp = out
        .serial
        .lines()
        .find_map(|l| l.split("(XEN) ACPI: RSDP ").nth(1))
        .and_then(|r| u64::from_str_radix(r.split(',').next()?.trim(), 16).ok());
    check!(
        out,
        xen_rsdp == Some(fw.rsdp) && fw.rsdp != 0,
        "dom0 found the firmware RSDP at {:#x}, Xen's log says {xen_rsdp:x?}",
        fw.rsdp
    );
    check!(
        out,
        fw.efi_tables
            .contains(&format!("ACPI 2.0 RSDP at {:#x}", fw.rsdp)),
        "EFI tables {:?}",
        fw.efi_tables
    );
    check!(
        out,
        fw.memory
            .iter()
            .any(|m| m.contains("EfiRuntimeServicesData"))
            && fw
                .memory
                .iter()
                .any(|m| m.contains("acpi: EfiACPIReclaimMemory")),
        "EFI memory types {:?}",
        fw.memory
    );
    let acpi = d.acpi.as_ref().expect("an ACPI survey");
    match &acpi.container {
        Some(c) => {
            check!(
                out,
                c.native_rsdp == fw.rsdp && c.differences.is_empty(),
                "container MADT {c:?}"
            );
        }
        None => check!(
            out,
            false,
            "container MADT not compared: {:?}",
            acpi.problems
        ),
    }
    // OVMF places 64-bit BARs at 896 GiB; dom0 maps them and the devices answer there.
    for (v, dv) in [(0x1af4, 0x1041), (0x8086, 0x10d3), (0x1b36, 0x0010)] {
        assert_device_check(&out, pci_function(&out, d, v, dv));
    }
}

#[test]
fn uefi_boot_through_the_iso_under_xen_4_17() {
    uefi(XenVersion::V4_17);
}

#[test]
fn uefi_boot_through_the_iso_under_xen_4_20() {
    uefi(XenVersion::V4_20);
}

/// The same ISO under SeaBIOS (GRUB's BIOS half): no EFI, the firmware's RSDP below 1 MiB.
#[test]
fn bios_boot_through_the_iso_under_xen_4_20() {
    let mut cfg = config(XenVersion::V4_20, 1, "test-bios-iso-4.20");
    cfg.firmware = image::iso::Firmware::BiosIso;
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 20);
    assert_pci_matches_xen(&out);
    check!(
        out,
        !out.serial.contains("(XEN) EFI RAM map:"),
        "Xen booted through EFI under SeaBIOS?"
    );
    let d = dom0(&out);
    let boot = d.firmware.as_ref().map(|f| f.boot.as_str());
    check!(out, boot == Some("bios"), "firmware {boot:?}");
    let c = d.acpi.as_ref().and_then(|a| a.container.as_ref());
    check!(
        out,
        c.is_some_and(|c| c.native_rsdp < 0x10_0000 && c.differences.is_empty()),
        "container MADT {c:?}"
    );
}

/// `pci-roots=probe` on the expander machine: the namespace ignored, dom0 probes every bus
/// number nothing reached from bus 0, finds both expanders' root buses, says so (two
/// warnings), and reports every function to Xen, as Xen's log shows.
#[test]
fn pci_roots_by_probing_find_the_expanders_under_xen_4_20() {
    let mut cfg = config(XenVersion::V4_20, 1, "test-pci-probe-4.20");
    cfg.topology = image::Topology::Expander;
    cfg.dom0_args = vec!["pci-roots=probe".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 20);
    assert_pci_matches_xen(&out);
    let d = dom0(&out);
    let p = pci(&out);
    check!(
        out,
        p.source == "ECAM (MCFG), more roots by probing",
        "PCI source {:?}",
        p.source
    );
    for bus in ["40", "80"] {
        let w = format!("PCI: root bus 0000:{bus} found by probing");
        check!(
            out,
            d.warnings.iter().any(|x| x.starts_with(&w)),
            "no warning {w:?}: {:?}",
            d.warnings
        );
    }
    check!(
        out,
        p.functions.len() == 16,
        "{} functions",
        p.functions.len()
    );
}

fn p_irq(d: &report::BootReport, sbdf: &str) -> String {
    d.pci
        .as_ref()
        .and_then(|p| p.functions.iter().find(|f| f.sbdf == sbdf))
        .map(|f| f.irq.clone())
        .unwrap_or_default()
}

fn expander(xen: XenVersion, bars_all: bool) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let name = format!(
        "test-pci-expander{}-{major}.{minor}",
        if bars_all { "-bars" } else { "" }
    );
    let mut cfg = config(xen, 1, &name);
    cfg.topology = image::Topology::Expander;
    if bars_all {
        cfg.dom0_args = vec!["pci-bars=all".into()];
    }
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_pci_matches_xen(&out);
    assert_config_accesses(&out);
    let d = dom0(&out);
    let boot = d.firmware.as_ref().map(|f| f.boot.as_str());
    check!(
        out,
        boot == Some("bios"),
        "SeaBIOS boot reported as {boot:?}"
    );
    let acpi = d.acpi.as_ref().expect("an ACPI survey");
    let bridges: Vec<(&str, u8, u8)> = acpi
        .host_bridges
        .iter()
        .map(|b| (b.path.as_str(), b.bus_start, b.bus_end))
        .collect();
    check!(
        out,
        bridges
            == [
                ("\\_SB_.PCI0", 0x00, 0x3f),
                ("\\_SB_.PC80", 0x80, 0x84),
                ("\\_SB_.PC40", 0x40, 0x41)
            ],
        "host bridges from the namespace: {bridges:?}"
    );
    // PC80 is on NUMA node 1 (`numa_node=1`): its _PXM goes to Xen with each function below
    // it (XEN_PCI_DEV_PXM), and Xen accepted every add (assert_pci_matches_xen).
    let pxm: Vec<Option<u32>> = acpi.host_bridges.iter().map(|b| b.pxm).collect();
    check!(
        out,
        pxm == [None, Some(1), None],
        "host bridge _PXM {pxm:?}"
    );
    check!(
        out,
        out.serial.contains("SRAT"),
        "Xen's log does not mention the SRAT (the machine has two NUMA nodes)"
    );
    // Legacy interrupts as _PRT routes them: the root complex's SATA through a GSI link, the
    // expanders' devices through LNKx (whose _CRS reads hardware: not evaluated).
    let irq = |s: &str| p_irq(d, s);
    check!(
        out,
        irq("0000:00:1f.2").starts_with("INTA -> GSI ")
            && irq("0000:00:1f.2").contains("\\_SB_.GSI"),
        "00:1f.2 irq {:?}",
        irq("0000:00:1f.2")
    );
    check!(
        out,
        irq("0000:83:00.0").ends_with("(link device not evaluated)"),
        "83:00.0 irq {:?}",
        irq("0000:83:00.0")
    );
    let p = pci(&out);
    check!(
        out,
        p.source == "ECAM (MCFG), roots from ACPI",
        "PCI source {:?}",
        p.source
    );
    // Exactly as Xen logs it: dom0's order (each root in namespace order, depth first) is
    // the order of Xen's `PCI add device` lines.
    let dom0_order: Vec<&str> = p.functions.iter().map(|f| f.sbdf.as_str()).collect();
    let xen_order = &out.report.xen_log.pci_devices_added;
    check!(
        out,
        dom0_order == *xen_order,
        "dom0 reported {dom0_order:?}, Xen logged {xen_order:?}"
    );
    // The devices behind the expanders are there and answer at their BARs.
    for (v, dv, bus) in [
        (0x8086, 0x10d3, "83"),
        (0x1b36, 0x0010, "84"),
        (0x1af4, 0x1041, "41"),
    ] {
        let f = pci_function(&out, d, v, dv);
        check!(
            out,
            f.sbdf == format!("0000:{bus}:00.0"),
            "{v:04x}:{dv:04x} at {}",
            f.sbdf
        );
        assert_device_check(&out, f);
    }
    // Every memory BAR lies in a _CRS window of its own root's host bridge.
    for f in &p.functions {
        let bus = u8::from_str_radix(&f.sbdf[5..7], 16).unwrap_or(0);
        let Some(b) = acpi
            .host_bridges
            .iter()
            .find(|b| (b.bus_start..=b.bus_end).contains(&bus))
        else {
            check!(out, false, "{} is below no host bridge", f.sbdf);
            continue;
        };
        let windows = mem_windows(&b.windows);
        for bar in f.bars.iter().filter(|b| b.kind != report::PciBarKind::Io) {
            if bar.kind == report::PciBarKind::Rom || bar.size == 0 {
                continue;
            }
            let end = bar.address + bar.size - 1;
            check!(
                out,
                windows.iter().any(|&(s, e)| s <= bar.address && end <= e),
                "{} BAR{} [{:#x}, {end:#x}] outside the windows of {}: {:?}",
                f.sbdf,
                bar.index,
                bar.address,
                b.path,
                b.windows
            );
        }
    }
    if bars_all {
        for root in ["\\_SB_.PC80 (root bus 80):", "\\_SB_.PC40 (root bus 40):"] {
            check!(
                out,
                p.bar_moves.iter().any(|m| m == root),
                "no BAR placement for {root} {:?}",
                p.bar_moves
            );
        }
        let failed: Vec<&String> = p
            .bar_moves
            .iter()
            .filter(|m| m.contains("FAILED"))
            .collect();
        check!(out, failed.is_empty(), "BAR moves failed: {failed:?}");
        let moved = p.bar_moves.iter().filter(|m| m.contains(" -> ")).count();
        check!(
            out,
            moved >= 8,
            "only {moved} BARs moved: {:?}",
            p.bar_moves
        );
    }
}

#[test]
fn pci_expander_bridges_under_xen_4_17() {
    expander(XenVersion::V4_17, false);
}

#[test]
fn pci_expander_bridges_under_xen_4_20() {
    expander(XenVersion::V4_20, false);
}

#[test]
fn pci_bars_all_in_crs_windows_of_expanders_under_xen_4_17() {
    expander(XenVersion::V4_17, true);
}

#[test]
fn pci_bars_all_in_crs_windows_of_expanders_under_xen_4_20() {
    expander(XenVersion::V4_20, true);
}
