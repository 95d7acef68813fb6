//! The survey against `pci::sim` (hardware that behaves like hardware) and `xen::fake::FakeXen`
//! (Xen's answers), checked on what Xen was told and what the report says.

use alloc::string::String;
use alloc::vec::Vec;

use pci::Sbdf;
use pci::regs::PCIE_TYPE_ENDPOINT;
use pci::sim::{SimBar, SimConfig, SimDevice, SimSriov};
use report::BootReport;
use xen::XenError;
use xen::fake::FakeXen;

use super::*;
use crate::host_bridges::AcpiFacts;
use crate::testkit::{FakePlatform, q35_map};

const MCFG_BASE: u64 = 0xb000_0000;

fn sbdf(bus: u8, dev: u8, f: u8) -> Sbdf {
    Sbdf::new(0, bus, dev, f).unwrap()
}

fn facts() -> AcpiFacts {
    AcpiFacts {
        mcfg: mcfg(),
        ..AcpiFacts::default()
    }
}

fn mcfg() -> Vec<acpi_fixup::McfgEntry> {
    alloc::vec![acpi_fixup::McfgEntry {
        base: MCFG_BASE,
        segment: 0,
        start_bus: 0,
        end_bus: 255,
    }]
}

/// Host bridge, an e1000 on the root bus, a root port with a virtio device behind it.
fn small_machine() -> SimConfig {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::endpoint(0x8086, 0x100e, 0x02_00_00)
            .command(0x7)
            .bar(0, SimBar::mem32(0x2_0000, 0xfeb8_0000)),
    );
    sim.add(sbdf(0, 3, 0), SimDevice::bridge(0x1b36, 0x000c, 1, 1));
    sim.add(
        sbdf(1, 0, 0),
        SimDevice::endpoint(0x1af4, 0x1041, 0x02_00_00).bar(4, SimBar::mem64(0x4000, 0)),
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

fn xen_adds(x: &FakeXen) -> Vec<String> {
    x.pci_adds()
        .iter()
        .map(|&(s, b, df, _, _)| alloc::format!("{}", Sbdf::new(s, b, df >> 3, df & 7).unwrap()))
        .collect()
}

#[test]
fn every_function_is_reported_to_xen_bridges_before_what_is_behind_them() {
    let p = FakePlatform::new(small_machine());
    let x = FakeXen::new(4, 17).with_mmcfg(MCFG_BASE, 0, 0, 255);
    let mut rep = BootReport::default();
    let sum = survey(&p, Some(&x), &mut rep, &q35_map(), &facts(), keep());
    assert_eq!(
        xen_adds(&x),
        [
            "0000:00:00.0",
            "0000:00:02.0",
            "0000:00:03.0",
            "0000:01:00.0"
        ]
    );
    assert_eq!(sum.source, "ECAM (MCFG)");
    assert_eq!(
        sum.mmcfg_reserved,
        ["segment 0 buses 0x00-0xff at 0xb0000000: ok"]
    );
    assert!(sum.functions.iter().all(|f| f.xen_add.is_ok()), "{sum:?}");
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
    // The config space came from the MCFG window, mapped uncached first.
    assert_eq!(
        p.mapped.borrow().as_slice(),
        [(MCFG_BASE, MCFG_BASE + (256 << 20))]
    );
    assert_eq!(p.windows_seen.borrow().len(), 1);
}

#[test]
fn a_refused_add_is_an_error_and_the_survey_goes_on() {
    let p = FakePlatform::new(small_machine());
    let x = FakeXen::new(4, 20).with_mmcfg(MCFG_BASE, 0, 0, 255);
    x.fail_op(xen::hypercall::nr::PHYSDEV_OP, XenError::ENODEV);
    let mut rep = BootReport::default();
    let sum = survey(&p, Some(&x), &mut rep, &q35_map(), &facts(), keep());
    assert_eq!(sum.functions.len(), 4);
    assert_eq!(rep.errors.len(), 4, "{:?}", rep.errors);
    assert!(
        rep.errors[0].starts_with("PCI: PHYSDEVOP_pci_device_add 0000:00:00.0: "),
        "{}",
        rep.errors[0]
    );
    assert!(
        sum.functions
            .iter()
            .all(|f| matches!(&f.xen_add, XenAdd::Refused(e) if e.contains("ENODEV")))
    );
    assert!(sum.mmcfg_reserved[0].ends_with(&alloc::format!("{}", XenError::ENODEV)));
}

#[test]
fn without_mcfg_config_space_is_cf8_and_without_xen_nothing_is_reported() {
    let p = FakePlatform::new(small_machine());
    let mut rep = BootReport::default();
    let sum = survey(
        &p,
        None,
        &mut rep,
        &q35_map(),
        &AcpiFacts::default(),
        keep(),
    );
    assert_eq!(sum.source, "CF8/CFC");
    assert_eq!(sum.functions.len(), 4);
    assert!(sum.mmcfg_reserved.is_empty());
    assert!(p.windows_seen.borrow().is_empty());
}

#[test]
fn an_unmappable_mcfg_window_is_a_problem_not_a_stop() {
    let mut p = FakePlatform::new(small_machine());
    p.map_limit = Some(MCFG_BASE);
    let x = FakeXen::new(4, 17).with_mmcfg(MCFG_BASE, 0, 0, 255);
    let mut rep = BootReport::default();
    let sum = survey(&p, Some(&x), &mut rep, &q35_map(), &facts(), keep());
    assert_eq!(sum.source, "CF8/CFC");
    assert!(
        sum.problems
            .iter()
            .any(|p| p.starts_with("MCFG segment 0 at 0xb0000000: not mapped")),
        "{:?}",
        sum.problems
    );
    // Xen is not told about a window dom0 does not use.
    assert!(sum.mmcfg_reserved.is_empty());
    assert_eq!(xen_adds(&x).len(), 4);
}

#[test]
fn device_checks_read_only_inside_the_bar() {
    let mut p = FakePlatform::new(small_machine());
    p.mmio = alloc::vec![(0xfeb8_0008, 0x8008_0783)];
    let mut rep = BootReport::default();
    let sum = survey(
        &p,
        None,
        &mut rep,
        &q35_map(),
        &AcpiFacts::default(),
        keep(),
    );
    let e1000 = sum
        .functions
        .iter()
        .find(|f| f.sbdf == "0000:00:02.0")
        .unwrap();
    assert_eq!(e1000.device_check, "ok: BAR0+0x0008 STATUS = 0x80080783");
    // The virtio device's BAR4 is unassigned (address 0): no MMIO read may happen there.
    assert!(
        p.mmio_reads
            .borrow()
            .iter()
            .all(|&(a, _)| (0xfeb8_0000..0xfeba_0000).contains(&a)),
        "{:?}",
        p.mmio_reads.borrow()
    );
    let virtio = sum
        .functions
        .iter()
        .find(|f| f.sbdf == "0000:01:00.0")
        .unwrap();
    assert!(
        virtio.device_check.starts_with("FAILED"),
        "{}",
        virtio.device_check
    );
}

#[test]
fn pci_bars_all_moves_bars_with_decoding_off() {
    let p = FakePlatform::new(small_machine());
    let mut rep = BootReport::default();
    let opts = SurveyOptions {
        bars: PciBars::All,
        ..keep()
    };
    let sum = survey(&p, None, &mut rep, &q35_map(), &AcpiFacts::default(), opts);
    assert!(
        sum.bar_moves[0].starts_with("pci-bars=all: "),
        "{:?}",
        sum.bar_moves
    );
    assert!(
        !sum.bar_moves.iter().any(|l| l.contains("FAILED")),
        "{:?}",
        sum.bar_moves
    );
    // The simulator records every BAR write made while decoding was on (what vPCI ignores).
    assert!(p.sim.violations().is_empty(), "{:?}", p.sim.violations());
    // The unassigned virtio BAR got an address inside a host bridge window.
    let virtio = sum
        .functions
        .iter()
        .find(|f| f.sbdf == "0000:01:00.0")
        .unwrap();
    let bar4 = virtio.bars.iter().find(|b| b.index == 4).unwrap();
    assert_ne!(bar4.address, 0);
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
}

#[test]
fn sriov_vfs_are_enabled_after_the_wait_and_reported_as_vfs_of_their_pf() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    sim.add(sbdf(0, 3, 0), SimDevice::bridge(0x1b36, 0x000c, 1, 1));
    // The bridge's memory window [0xfe000000, 0xfe3fffff].
    sim.poke32(sbdf(0, 3, 0), 0x20, 0xfe30_fe00);
    sim.add(
        sbdf(1, 0, 0),
        SimDevice::endpoint(0x8086, 0x10fb, 0x02_00_00)
            .bar(0, SimBar::mem64(0x8_0000, 0xfe00_0000))
            .pcie(PCIE_TYPE_ENDPOINT)
            .ari(0)
            .sriov(SimSriov::new(4, 0x10, 1, 0x10ed).bar(0, SimBar::mem64(0x4000, 0))),
    );
    let p = FakePlatform::new(sim);
    let x = FakeXen::new(4, 20).with_mmcfg(MCFG_BASE, 0, 0, 255);
    let mut rep = BootReport::default();
    let opts = SurveyOptions { vfs: 2, ..keep() };
    // Extended config space (where SR-IOV lives) needs ECAM.
    let sum = survey(&p, Some(&x), &mut rep, &q35_map(), &facts(), opts);
    // SR-IOV 1.1 §3.3.3.1: 100 ms before the VFs are touched, yielding meanwhile.
    assert!(p.clock_ns.get() >= 100_000_000 && p.relaxed.get() >= 100);
    let adds = x.pci_adds();
    let vfs: Vec<_> = adds.iter().filter(|a| a.4.is_some()).collect();
    assert_eq!(vfs.len(), 2, "{adds:?}");
    assert!(vfs.iter().all(|a| a.4 == Some((1, 0))), "{vfs:?}");
    assert!(
        sum.problems
            .iter()
            .any(|p| p.contains("VF BAR0 assigned [0xfe080000")),
        "{:?}",
        sum.problems
    );
    assert!(
        !sum.problems.iter().any(|p| p.contains("FAILED")),
        "{:?}",
        sum.problems
    );
}

#[test]
fn host_bridge_windows_are_the_gaps_of_the_pci_hole_and_above_4g() {
    let w = host_bridge_windows(&q35_map());
    assert_eq!(w[0], 0x8000_0000..0xb000_0000);
    assert_eq!(w[1], 0xc000_0000..0xfec0_0000);
    assert_eq!(w.last().unwrap().end, 1 << 40);
}

#[test]
fn outcome_text_names_the_errno_and_why() {
    let o = XenAddOutcome {
        sbdf: sbdf(2, 0, 0),
        result: Err(XenError::ENODEV),
        explanation: Some("bus 0x02 did not exist".into()),
    };
    assert_eq!(
        o.report(),
        XenAdd::Refused(alloc::format!(
            "{} (bus 0x02 did not exist)",
            XenError::ENODEV
        ))
    );
}
