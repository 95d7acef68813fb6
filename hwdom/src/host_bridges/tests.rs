//! The PCI roots from ACPI on the namespace QEMU gives a q35 machine with two PCIe expander
//! bridges (`aml/tests/data`), over a simulated machine with the same buses, and the probing
//! fallback without a namespace.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use pci::Sbdf;
use pci::sim::{SimBar, SimConfig, SimDevice};
use report::BootReport;
use xen::fake::FakeXen;

use super::*;
use crate::options::PciBars;
use crate::pci_survey::{SurveyOptions, survey};
use crate::testkit::{FakePlatform, q35_map};

const EXPANDER_DSDT: &[u8] = include_bytes!("../../../aml/tests/data/q35-expander-dsdt.aml");

fn sbdf(bus: u8, dev: u8, f: u8) -> Sbdf {
    Sbdf::new(0, bus, dev, f).unwrap()
}

fn mcfg() -> Vec<acpi_fixup::McfgEntry> {
    alloc::vec![acpi_fixup::McfgEntry {
        base: 0xb000_0000,
        segment: 0,
        start_bus: 0,
        end_bus: 255,
    }]
}

fn expander_bridges() -> Vec<HostBridge> {
    let mut ns = Namespace::new();
    ns.load(EXPANDER_DSDT);
    aml::host_bridges(&ns).0
}

fn facts() -> AcpiFacts {
    AcpiFacts {
        mcfg: mcfg(),
        host_bridges: expander_bridges(),
    }
}

/// The expander machine: root complex (host bridge, a root port with virtio behind it), PC80
/// (a root port, a NIC behind it) and PC40 (an endpoint on its root bus; ids dom0 has no
/// device check for), BARs where
/// SeaBIOS put them (inside each bridge's _CRS windows).
fn expander_machine() -> SimConfig {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    sim.add(
        sbdf(0, 3, 0),
        SimDevice::bridge(0x1b36, 0x000c, 1, 1).pin(1),
    );
    sim.add(
        sbdf(1, 0, 0),
        SimDevice::endpoint(0x15ad, 0x07b0, 0x02_00_00)
            .pin(1)
            .bar(1, SimBar::mem32(0x1000, 0xfea0_0000)),
    );
    sim.add_root(0, 0x80);
    sim.add(
        sbdf(0x80, 0, 0),
        SimDevice::bridge(0x1b36, 0x000c, 0x81, 0x81).pin(1),
    );
    sim.add(
        sbdf(0x81, 0, 0),
        SimDevice::endpoint(0x14e4, 0x165f, 0x02_00_00)
            .pin(1)
            .bar(0, SimBar::mem32(0x2_0000, 0xfe60_0000)),
    );
    sim.add_root(0, 0x40);
    sim.add(
        sbdf(0x40, 0, 0),
        SimDevice::endpoint(0x15ad, 0x07b0, 0x02_00_00)
            .pin(1)
            .bar(1, SimBar::mem32(0x1000, 0xfe80_0000)),
    );
    sim
}

fn keep() -> SurveyOptions {
    SurveyOptions {
        bars: PciBars::Keep,
        renumber: None,
        vfs: 0,
        probe_roots: false,
    }
}

fn added(x: &FakeXen) -> Vec<String> {
    x.pci_adds()
        .iter()
        .map(|&(s, b, df, _, _)| format!("{}", Sbdf::new(s, b, df >> 3, df & 7).unwrap()))
        .collect()
}

#[test]
fn the_namespace_gives_three_roots_in_namespace_order() {
    let r = roots(
        &[EcamWindow {
            segment: 0,
            start_bus: 0,
            end_bus: 255,
            base: 0xb000_0000,
        }],
        &expander_bridges(),
    );
    assert!(r.from_acpi);
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    let got: Vec<(u8, u8, bool)> = r
        .segments
        .iter()
        .map(|s| (s.start_bus, s.end_bus, s.ecam))
        .collect();
    assert_eq!(
        got,
        [(0, 0x3f, true), (0x80, 0x84, true), (0x40, 0x41, true)]
    );
    assert_eq!(r.source, "ECAM (MCFG), roots from ACPI");
}

#[test]
fn absent_bridges_and_segments_without_a_window_are_not_enumerated() {
    let mut b = expander_bridges();
    b[1].status = 0; // PC80: _STA says not present
    b[2].segment = 1; // PC40 on a segment no MCFG window covers
    let r = roots(
        &[EcamWindow {
            segment: 0,
            start_bus: 0,
            end_bus: 255,
            base: 0xb000_0000,
        }],
        &b,
    );
    assert_eq!(r.segments.len(), 1);
    assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
    assert!(r.problems[0].contains("\\_SB_.PC80: _STA 0x0 (not present)"));
    assert!(r.problems[1].contains("segment 0001 has no MCFG window"));
    // Without MCFG, segment 0's roots go through CF8/CFC.
    let r = roots(&[], &expander_bridges());
    assert!(r.segments.iter().all(|s| !s.ecam));
    assert_eq!(r.source, "CF8/CFC, roots from ACPI");
}

#[test]
fn every_root_is_enumerated_and_reported_to_xen_in_linux_order_with_its_pxm() {
    let p = FakePlatform::new(expander_machine());
    let x = FakeXen::new(4, 17);
    let mut rep = BootReport::default();
    let mut f = facts();
    f.host_bridges[1].pxm = Some(1);
    let sum = survey(&p, Some(&x), &mut rep, &q35_map(), &f, keep());
    assert_eq!(
        added(&x),
        [
            "0000:00:00.0",
            "0000:00:03.0",
            "0000:01:00.0",
            "0000:80:00.0",
            "0000:81:00.0",
            "0000:40:00.0"
        ]
    );
    // _PXM of PC80 goes with each function below it (XEN_PCI_DEV_PXM, optarr[0]).
    assert_eq!(x.pci_pxms(), [(0, 0x80, 0, 1), (0, 0x81, 0, 1)]);
    assert_eq!(
        sum.segments,
        [
            "0000 [bus 00-3f] ECAM (\\_SB_.PCI0)",
            "0000 [bus 80-84] ECAM (\\_SB_.PC80)",
            "0000 [bus 40-41] ECAM (\\_SB_.PC40)"
        ]
    );
    assert!(rep.warnings.is_empty() && rep.errors.is_empty(), "{rep:?}");
    assert!(
        sum.windows
            .contains(&"[0xfd000000, 0xfd400000): _CRS of \\_SB_.PC80".into()),
        "{:?}",
        sum.windows
    );
    assert!(
        sum.windows
            .iter()
            .any(|w| w.contains("memory-map gap (not used"))
    );
    // Every BAR is inside a _CRS window: no problems.
    assert!(sum.problems.is_empty(), "{:?}", sum.problems);
}

#[test]
fn legacy_interrupts_follow_prt_through_the_bridges_above() {
    let p = FakePlatform::new(expander_machine());
    let mut rep = BootReport::default();
    let sum = survey(&p, None, &mut rep, &q35_map(), &facts(), keep());
    let irq = |s: &str| {
        sum.functions
            .iter()
            .find(|f| f.sbdf == s)
            .map(|f| f.irq.clone())
            .unwrap()
    };
    // 01:00.0 INTA -> root port 00:03.0 (device 3) pin A: PCI0's PRTA, through a GSI link.
    assert!(
        irq("0000:01:00.0").starts_with("INTA -> GSI "),
        "{}",
        irq("0000:01:00.0")
    );
    assert!(irq("0000:01:00.0").contains("\\_SB_.GSI"));
    assert_eq!(irq("0000:01:00.0"), irq("0000:00:03.0"));
    // Below PC80 the routing goes through LNKx, whose _CRS reads the LPC bridge: refused.
    assert!(
        irq("0000:81:00.0").ends_with("(link device not evaluated)"),
        "{}",
        irq("0000:81:00.0")
    );
    assert_eq!(irq("0000:00:00.0"), "");
}

#[test]
fn without_a_namespace_unreached_roots_are_probed_and_named() {
    let p = FakePlatform::new(expander_machine());
    let x = FakeXen::new(4, 20);
    let mut rep = BootReport::default();
    let f = AcpiFacts {
        mcfg: mcfg(),
        host_bridges: Vec::new(),
    };
    let sum = survey(&p, Some(&x), &mut rep, &q35_map(), &f, keep());
    let adds = added(&x);
    assert_eq!(adds.len(), 6, "{adds:?}");
    assert!(adds.contains(&"0000:81:00.0".into()));
    assert_eq!(sum.source, "ECAM (MCFG), more roots by probing");
    assert_eq!(rep.warnings.len(), 2, "{:?}", rep.warnings);
    assert!(rep.warnings[0].contains("root bus 0000:40 found by probing"));
    assert!(rep.warnings[1].contains("root bus 0000:80 found by probing"));
    assert!(sum.windows[0].contains("a gap in the memory map"));
}

#[test]
fn pci_roots_probe_ignores_the_namespace() {
    let p = FakePlatform::new(expander_machine());
    let mut rep = BootReport::default();
    let opts = SurveyOptions {
        probe_roots: true,
        ..keep()
    };
    let sum = survey(&p, None, &mut rep, &q35_map(), &facts(), opts);
    assert_eq!(sum.source, "ECAM (MCFG), more roots by probing");
    assert_eq!(sum.functions.len(), 6);
    assert_eq!(rep.warnings.len(), 2, "{:?}", rep.warnings);
    assert!(sum.functions.iter().all(|f| f.irq.is_empty()));
    assert!(sum.windows[0].contains("a gap in the memory map"));
}

#[test]
fn pci_bars_all_places_each_roots_bars_in_its_own_crs_windows() {
    let p = FakePlatform::new(expander_machine());
    let mut rep = BootReport::default();
    let opts = SurveyOptions {
        bars: PciBars::All,
        ..keep()
    };
    let f = facts();
    let sum = survey(&p, None, &mut rep, &q35_map(), &f, opts);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    let inside = |s: &str, bridge: usize| {
        let func = sum.functions.iter().find(|x| x.sbdf == s).unwrap();
        let bar = func.bars.iter().find(|b| b.size > 0).unwrap();
        let ok = f.host_bridges[bridge].windows.iter().any(|w| {
            w.kind == RangeKind::Memory
                && w.min <= bar.address
                && bar.address + bar.size - 1 <= w.max
        });
        (ok, bar.address)
    };
    let (ok, at) = inside("0000:81:00.0", 1);
    assert!(
        ok && at != 0xfe60_0000,
        "81:00.0 BAR at {at:#x}; {:?}",
        sum.bar_moves
    );
    let (ok, at) = inside("0000:40:00.0", 2);
    assert!(
        ok && at != 0xfe80_0000,
        "40:00.0 BAR at {at:#x}; {:?}",
        sum.bar_moves
    );
    let (ok, at) = inside("0000:01:00.0", 0);
    assert!(ok, "01:00.0 BAR at {at:#x}; {:?}", sum.bar_moves);
    assert!(
        sum.bar_moves
            .iter()
            .any(|m| m.starts_with("\\_SB_.PC80 (root bus 80)"))
    );
}

#[test]
fn unsound_or_unreadable_definition_blocks_are_named() {
    let t = |sig: &str, used: bool| TableCheck {
        signature: sig.into(),
        paddr: 0x1000,
        length: EXPANDER_DSDT.len() as u32,
        revision: 1,
        ok: used,
        used,
        problems: Vec::new(),
    };
    let (line, b, problems) = read_namespace(
        &[t("DSDT", true)],
        |_, _| Some(EXPANDER_DSDT.to_vec()),
        || 0,
    );
    assert_eq!(b.len(), 3);
    assert!(line.starts_with("DSDT: "), "{line}");
    assert!(
        line.ends_with(" devices, 3 PCI host bridges (loaded in 0 us, evaluated in 0 us)"),
        "{line}"
    );
    assert!(problems.is_empty(), "{problems:?}");
    let (line, b, problems) =
        read_namespace(&[t("DSDT", false), t("SSDT", true)], |_, _| None, || 0);
    assert!(line.is_empty() && b.is_empty());
    assert!(
        problems[0].contains("DSDT at 0x1000: not loaded"),
        "{problems:?}"
    );
    assert!(problems[1].contains("SSDT at 0x1000 (+0x"), "{problems:?}");
}
