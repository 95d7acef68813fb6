//! SR-IOV: VFs found from the PF's capability, their BARs from the PF's VF BARs, enabling
//! VFs on request, and broken SR-IOV capabilities.

mod common;

use common::*;
use pci::regs::*;
use pci::sim::{SimBar, SimConfig, SimDevice, SimSriov};
use pci::{BarKind, EnumOptions, Sbdf};

/// Where the SR-IOV capability lands (after AER at 0x100 and ARI at 0x148).
const SR: u16 = 0x150;

fn pf(sriov: SimSriov) -> SimDevice {
    pf_at(sriov, 0x3_0000_0000)
}

fn pf_at(sriov: SimSriov, bar0: u64) -> SimDevice {
    SimDevice::endpoint(0x8086, 0x10fb, 0x02_00_00)
        .subsystem(0x8086, 0x000c)
        .command(ON)
        .bar(0, SimBar::mem64(0x8_0000, bar0).prefetchable())
        .pcie(PCIE_TYPE_ENDPOINT)
        .msix(64, 0)
        .aer()
        .ari(0)
        .sriov(sriov)
}

fn vf_bars() -> SimSriov {
    SimSriov::new(8, 0x10, 1, 0x10ed)
        .bar(0, SimBar::mem64(0x4000, 0x2_0000_0000).prefetchable())
        .bar(3, SimBar::mem64(0x4000, 0x2_0010_0000).prefetchable())
}

#[test]
fn enabled_vfs_follow_their_pf() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 5, 0), pf(vf_bars().enabled(4)));
    sim.add(
        sbdf(0, 6, 0),
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00),
    );
    let t = run(&sim);
    assert_eq!(
        names(&t),
        [
            "0000:00:05.0",
            "0000:00:07.0",
            "0000:00:07.1",
            "0000:00:07.2",
            "0000:00:07.3",
            "0000:00:06.0"
        ]
    );
    assert_eq!(
        t.problem_count(),
        0,
        "{:#?}",
        t.all_problems().collect::<Vec<_>>()
    );
    let p = &t.functions[0];
    let s = p.sriov.as_ref().unwrap();
    assert_eq!(
        (
            s.total_vfs,
            s.initial_vfs,
            s.num_vfs,
            s.vf_offset,
            s.vf_stride,
            s.vf_device,
            s.vf_enabled,
            s.vf_mse
        ),
        (8, 8, 4, 0x10, 1, 0x10ed, true, true)
    );
    let vf_bars: Vec<_> = s
        .vf_bars
        .iter()
        .map(|b| (b.index, b.offset, b.kind, b.address, b.size))
        .collect();
    assert_eq!(
        vf_bars,
        [
            (0, SR + 0x24, BarKind::Mem64, 0x2_0000_0000, 0x4000),
            (3, SR + 0x30, BarKind::Mem64, 0x2_0010_0000, 0x4000)
        ]
    );
    for (i, vf) in t.functions[1..5].iter().enumerate() {
        assert_eq!((vf.vendor, vf.device), (0x8086, 0x10ed));
        assert_eq!(vf.physfn, Some(sbdf(0, 5, 0)));
        assert_eq!(vf.subsystem, Some((0x8086, 0x000c)));
        assert_eq!(vf.class, 0x02_00_00);
        assert!(vf.is_vf() && vf.sriov.is_none());
        assert_eq!(vf.pcie_type, Some("endpoint"));
        assert!(vf.ari);
        let bars: Vec<_> = vf.bars.iter().map(|b| (b.address, b.size)).collect();
        let i = i as u64;
        assert_eq!(
            bars,
            [
                (0x2_0000_0000 + i * 0x4000, 0x4000),
                (0x2_0010_0000 + i * 0x4000, 0x4000)
            ]
        );
    }
    // VF MSE was on: cleared for sizing (no violation, checked by `run`), then restored.
    let ctrl = sim.peek32(sbdf(0, 5, 0), SR + SRIOV_CTRL) as u16;
    assert_eq!(ctrl, SRIOV_CTRL_VFE | SRIOV_CTRL_VF_MSE);
}

#[test]
fn disabled_vfs_are_not_listed_until_enabled() {
    let sim = SimConfig::new();
    let pf_at = sbdf(0, 5, 0);
    sim.add(pf_at, pf(vf_bars()));
    let t = run(&sim);
    assert_eq!(t.functions.len(), 1);
    assert!(!t.functions[0].sriov.as_ref().unwrap().vf_enabled);

    let vfs = pci::enable_vfs(&sim, pf_at, 3).unwrap();
    let vf_names: Vec<_> = vfs.iter().map(|v| v.to_string()).collect();
    assert_eq!(vf_names, ["0000:00:07.0", "0000:00:07.1", "0000:00:07.2"]);
    let ctrl = sim.peek32(pf_at, SR + SRIOV_CTRL) as u16;
    assert_eq!(
        ctrl & (SRIOV_CTRL_VFE | SRIOV_CTRL_VF_MSE),
        SRIOV_CTRL_VFE | SRIOV_CTRL_VF_MSE
    );
    let t = run(&sim);
    assert_eq!(t.functions.len(), 4);
    let order = pci::xen_add_order(&t);
    assert_eq!(order[0].flags, 0);
    for a in &order[1..] {
        assert_eq!((a.flags, a.physfn), (XEN_PCI_DEV_VIRTFN, Some(pf_at)));
    }

    // A different count: disabled first (NumVFs cannot change while enabled).
    let vfs = pci::enable_vfs(&sim, pf_at, 8).unwrap();
    assert_eq!(vfs.len(), 8);
    assert_eq!(run(&sim).functions.len(), 9);
    // 0 disables.
    assert_eq!(pci::enable_vfs(&sim, pf_at, 0).unwrap(), Vec::<Sbdf>::new());
    assert_eq!(run(&sim).functions.len(), 1);
}

#[test]
fn enable_vfs_refuses() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 5, 0), pf(vf_bars()));
    sim.add(
        sbdf(0, 6, 0),
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00).pcie(0),
    );
    let e = pci::enable_vfs(&sim, sbdf(0, 5, 0), 9).unwrap_err();
    assert_eq!(
        e,
        "0000:00:05.0: 9 VFs asked for, but TotalVFs (at 0x15e) is 8"
    );
    let e = pci::enable_vfs(&sim, sbdf(0, 6, 0), 1).unwrap_err();
    assert!(
        e.starts_with("0000:00:06.0: no SR-IOV capability (from 0x100)"),
        "{e}"
    );
    let e = pci::enable_vfs(&sim, sbdf(0, 9, 0), 1).unwrap_err();
    assert!(e.contains("extended config space reads all ones"), "{e}");
    // A First VF Offset of 0 would put VF 0 on the PF: VFs stay off.
    sim.poke16(sbdf(0, 5, 0), SR + SRIOV_OFFSET_STRIDE, 0);
    let e = pci::enable_vfs(&sim, sbdf(0, 5, 0), 2).unwrap_err();
    assert!(e.contains("First VF Offset is 0"), "{e}");
    assert_eq!(sim.peek32(sbdf(0, 5, 0), SR + SRIOV_CTRL) & 1, 0);
    assert_eq!(
        pci::vf_sbdfs(sbdf(0, 5, 0), 0x10, 0, 2).unwrap_err(),
        "0000:00:05.0: VF Stride is 0 with 2 VFs"
    );
}

#[test]
fn vfs_on_the_next_bus() {
    // A PF behind a root port whose range covers the bus after it: VFs at 02:00.x are
    // reached as type 1 requests through the port.
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7000, 1, 2).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        sbdf(1, 0, 0),
        pf(SimSriov::new(4, 0x100, 1, 0x10ed).enabled(4)),
    );
    let t = run(&sim);
    assert_eq!(
        names(&t),
        [
            "0000:00:01.0",
            "0000:01:00.0",
            "0000:02:00.0",
            "0000:02:00.1",
            "0000:02:00.2",
            "0000:02:00.3"
        ]
    );
    assert_eq!(t.problem_count(), 0);
    assert!(
        t.functions[2..]
            .iter()
            .all(|f| f.parent == Some(0) && f.depth == 1)
    );
    let tree = pci::tree::tree_text(&t);
    assert!(
        tree.contains("02:00.3  8086:10ed Ethernet controller (VF of 0000:01:00.0)"),
        "{tree}"
    );
}

#[test]
fn vfs_beyond_the_bridge_are_skipped() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7000, 1, 1).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        sbdf(1, 0, 0),
        pf(SimSriov::new(4, 0x100, 1, 0x10ed).enabled(2)),
    );
    let t = run(&sim);
    assert_eq!(t.functions.len(), 2);
    let p = problems_with(&t, "VF 0 at 0000:02:00.0");
    assert_eq!(p.len(), 1);
    assert!(p[0].starts_with("0000:01:00.0: VF 0 at 0000:02:00.0 (SR-IOV offset/stride at 0x164) is beyond the bus range of the bridge above (up to 0x01); skipped"), "{}", p[0]);
}

#[test]
fn vfs_behind_a_port_without_ari_forwarding_do_not_answer() {
    // VFs at devfn 0x10.. on the port's own bus need ARI forwarding; without it the port
    // drops them and each VF is reported as not answering.
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7000, 1, 1).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        sbdf(1, 0, 0),
        pf(SimSriov::new(2, 0x80, 2, 0x10ed).enabled(2)),
    );
    let t = run(&sim);
    assert_eq!(t.functions.len(), 2);
    assert_eq!(
        problems_with(&t, "does not answer (0x08 reads all ones)").len(),
        2
    );
    // With ARI forwarding on (as Linux would turn it on) they answer.
    sim.write32_dc2(sbdf(0, 1, 0));
    let t = run(&sim);
    assert_eq!(names(&t)[2..], ["0000:01:10.0", "0000:01:10.2"]);
    let order = pci::xen_add_order(&t);
    assert_eq!(order[2].flags, XEN_PCI_DEV_VIRTFN);
}

trait Dc2 {
    fn write32_dc2(&self, port: Sbdf);
}

impl Dc2 for SimConfig {
    /// Sets ARI Forwarding Enable on a port whose PCIe capability is at 0x40 (supported bit
    /// poked in first, as the builder left it out).
    fn write32_dc2(&self, port: Sbdf) {
        use pci::ConfigSpace;
        self.poke32(port, 0x40 + PCIE_DEVCAP2, PCIE_ARI_FORWARDING);
        // Device Control 2 without ARI in its write mask: poke, as firmware would have set it.
        let v = self.read32(port, 0x40 + PCIE_DEVCTL2);
        self.poke32(port, 0x40 + PCIE_DEVCTL2, v | PCIE_ARI_FORWARDING);
    }
}

#[test]
fn broken_sriov_capabilities() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 5, 0),
        pf(SimSriov::new(4, 0x10, 1, 0x10ed).enabled(4)),
    );
    sim.add(
        sbdf(0, 0x10, 0),
        pf_at(SimSriov::new(4, 0x08, 0, 0x10ed).enabled(3), 0x3_1000_0000),
    );
    sim.add(
        sbdf(0, 0x18, 0),
        pf_at(SimSriov::new(2, 0x08, 1, 0x10ed), 0x3_2000_0000),
    );
    // 00:05.0: NumVFs above TotalVFs (poked: the register is read-only while enabled).
    sim.poke16(sbdf(0, 5, 0), SR + SRIOV_NUM_VFS, 9);
    // 00:18.0: VF Enable poked on, with VF 0 on top of 00:19.0, a function found by the scan.
    sim.add(
        sbdf(0, 0x19, 0),
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00),
    );
    sim.poke16(sbdf(0, 0x18, 0), SR + SRIOV_NUM_VFS, 1);
    sim.poke16(sbdf(0, 0x18, 0), SR + SRIOV_CTRL, 1);
    let t = pci::enumerate(&sim, &ecam(), &EnumOptions::default());
    let p: Vec<&str> = t.all_problems().collect();
    assert!(
        p.iter().any(|p| p.contains(
            "0000:00:05.0: SR-IOV capability at 0x150: NumVFs 9 above TotalVFs 4 (at 0x160)"
        )),
        "{p:#?}"
    );
    assert!(
        p.iter().any(|p| p.contains(
            "0000:00:10.0: SR-IOV capability at 0x150: VF Stride 0 (at 0x166) with 3 VFs"
        )),
        "{p:#?}"
    );
    // 00:05.0 still gets its 4 VFs (TotalVFs caps it); 00:10.0 gets none.
    assert_eq!(
        t.functions
            .iter()
            .filter(|f| f.physfn == Some(sbdf(0, 5, 0)))
            .count(),
        4
    );
    assert_eq!(
        t.functions
            .iter()
            .filter(|f| f.physfn == Some(sbdf(0, 0x10, 0)))
            .count(),
        0
    );
    // 00:18.0's VF 0 would be 00:19.0, where a real function answers with its own ID.
    assert!(
        p.iter().any(|p| p.starts_with(
            "0000:00:18.0: VF 0 at 0000:00:19.0: ID (0x00) reads 0x10001af4, not a VF's 0xffffffff"
        )),
        "{p:#?}"
    );
    assert_eq!(
        t.functions
            .iter()
            .filter(|f| f.sbdf == sbdf(0, 0x19, 0))
            .count(),
        1
    );
    assert_eq!(
        t.functions
            .iter()
            .find(|f| f.sbdf == sbdf(0, 0x19, 0))
            .unwrap()
            .physfn,
        None
    );
}

#[test]
fn vfs_reading_their_ids_are_not_listed_twice() {
    // Some devices put the PF's vendor and the VF device ID in a VF's ID register: the VF
    // is accepted, and the scan that then finds it as a function does not list it again.
    let sim = SimConfig::new();
    sim.add(sbdf(0, 5, 0), pf(vf_bars().enabled(2)));
    sim.poke32(sbdf(0, 7, 0), 0, 0x10ed_8086);
    let t = run(&sim);
    assert_eq!(names(&t), ["0000:00:05.0", "0000:00:07.0", "0000:00:07.1"]);
    assert_eq!(
        t.problems,
        [
            "0000:00:07.0: answers the scan (ID 8086:10ed at 0x00) at the address of a VF \
          already listed; not listed twice"
        ]
    );
}
