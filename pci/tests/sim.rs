//! The simulator itself behaves like hardware: BAR sizing, decoding rules, routing by the
//! bridges' current bus numbers, PCIe ports, SR-IOV, counters.

mod common;

use common::*;
use pci::regs::*;
use pci::sim::{Hostile, SimBar, SimConfig, SimDevice, SimSriov};
use pci::{ConfigSpace, read_ids};

#[test]
fn bars_size_like_hardware() {
    let sim = SimConfig::new();
    let s = sbdf(0, 3, 0);
    sim.add(
        s,
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00)
            .bar(0, SimBar::io(0x20, 0xc040))
            .bar(1, SimBar::mem32(0x1000, 0xfebf_1000))
            .bar(2, SimBar::mem64(0x4000, 0x8_fe00_0000).prefetchable())
            .rom(0x40000, 0xfeb8_0000, true),
    );
    assert_eq!(sim.read32(s, 0x10), 0xc041);
    assert_eq!(sim.read32(s, 0x14), 0xfebf_1000);
    assert_eq!(sim.read32(s, 0x18), 0xfe00_000c);
    assert_eq!(sim.read32(s, 0x1c), 0x8);
    assert_eq!(sim.read32(s, 0x30), 0xfeb8_0001);
    for off in [0x10, 0x14, 0x18, 0x1c, 0x20, 0x30] {
        sim.write32(s, off, u32::MAX);
    }
    assert_eq!(sim.read32(s, 0x10), 0xffff_ffe1);
    assert_eq!(sim.read32(s, 0x14), 0xffff_f000);
    assert_eq!(sim.read32(s, 0x18), 0xffff_c00c);
    assert_eq!(sim.read32(s, 0x1c), u32::MAX);
    assert_eq!(sim.read32(s, 0x20), 0, "unimplemented");
    assert_eq!(sim.read32(s, 0x30), 0xfffc_0001);
    // Decoding was off all along.
    assert!(sim.violations().is_empty());
}

#[test]
fn bar_writes_with_decoding_on_are_violations() {
    let sim = SimConfig::new();
    let s = sbdf(0, 3, 0);
    sim.add(
        s,
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00)
            .bar(0, SimBar::io(0x20, 0xc040))
            .bar(1, SimBar::mem32(0x1000, 0xfebf_1000))
            .rom(0x40000, 0xfeb8_0000, false),
    );
    sim.write32(s, 0x04, u32::from(CMD_IO));
    sim.write32(s, 0x14, u32::MAX); // memory BAR, MEM off: fine
    sim.write32(s, 0x10, u32::MAX); // I/O BAR with IO on
    sim.write32(s, 0x04, u32::from(CMD_MEM));
    sim.write32(s, 0x10, 0xc041); // I/O BAR, IO off: fine
    sim.write32(s, 0x14, 0xfebf_1000); // memory BAR with MEM on
    sim.write32(s, 0x30, 0); // ROM with MEM on
    sim.write32(s, 0x24, 0); // unimplemented BAR with decoding on
    let v = sim.violations();
    assert_eq!(v.len(), 4, "{v:#?}");
    assert_eq!(
        v[0],
        "0000:00:03.0: write 0xffffffff to BAR 0 (0x10) with decoding on (COMMAND 0x0001)"
    );
    assert!(v[1].contains("BAR 1 (0x14)") && v[2].contains("ROM (0x30)"));
    assert!(v[3].contains("BAR 5 (0x24)"));
}

#[test]
fn command_and_status_bits() {
    let sim = SimConfig::new();
    let s = sbdf(0, 3, 0);
    sim.add(
        s,
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00)
            .status(0xa000)
            .pm(),
    );
    assert_eq!(sim.read32(s, 4) >> 16, 0xa010);
    sim.write32(s, 4, 0x5fff_ffff | 0x2000_0000);
    // Writable COMMAND bits only; STATUS bit 13 cleared by writing 1, bit 15 kept.
    assert_eq!(sim.read32(s, 4), 0x8010_0547);
    // The default narrow writes are read-modify-write of the dword: writing COMMAND that way
    // writes STATUS's set bits back as ones and clears them (why enumeration writes COMMAND
    // with a zero STATUS half).
    sim.write16(s, 4, 0);
    assert_eq!(sim.read32(s, 4), 0x0010_0000);
}

#[test]
fn routing_follows_the_bridges_current_registers() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), SimDevice::bridge(0x8086, 0x244e, 1, 1));
    sim.add(
        sbdf(1, 0, 0),
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00),
    );
    assert_eq!(read_ids(&sim, sbdf(1, 0, 0)), Some((0x1af4, 0x1000)));
    assert_eq!(read_ids(&sim, sbdf(2, 0, 0)), None);
    // Renumber: the device moves to bus 5.
    sim.write32(sbdf(0, 1, 0), 0x18, 0x0005_0500);
    assert_eq!(read_ids(&sim, sbdf(1, 0, 0)), None);
    assert_eq!(read_ids(&sim, sbdf(5, 0, 0)), Some((0x1af4, 0x1000)));
    // A bridge forwarding nothing hides it.
    sim.write32(sbdf(0, 1, 0), 0x18, 0);
    assert_eq!(read_ids(&sim, sbdf(5, 0, 0)), None);
    assert_eq!(read_ids(&sim, sbdf(0, 1, 0)), Some((0x8086, 0x244e)));
    // Another segment's bus 0 is not this one's.
    assert_eq!(read_ids(&sim, pci::Sbdf::new(1, 0, 1, 0).unwrap()), None);
}

#[test]
fn pcie_ports_pass_device_0_only_without_ari_forwarding() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7000, 1, 1)
            .pcie(PCIE_TYPE_ROOT_PORT)
            .ari_forwarding(false),
    );
    sim.add(sbdf(1, 0, 0), SimDevice::endpoint(0x1af4, 0, 0));
    sim.add(sbdf(1, 1, 0), SimDevice::endpoint(0x1af4, 1, 0));
    assert!(read_ids(&sim, sbdf(1, 0, 0)).is_some());
    assert!(read_ids(&sim, sbdf(1, 1, 0)).is_none());
    let dc2 = sim.cap_offset(sbdf(0, 1, 0), CAP_PCIE).unwrap() + PCIE_DEVCTL2;
    sim.write32(sbdf(0, 1, 0), dc2, PCIE_ARI_FORWARDING);
    assert!(read_ids(&sim, sbdf(1, 1, 0)).is_some());
}

#[test]
fn sriov_vfs_come_and_go_with_vf_enable() {
    let sim = SimConfig::new();
    let pf = sbdf(0, 4, 0);
    sim.add(
        pf,
        SimDevice::endpoint(0x8086, 0x10fb, 0x02_00_00)
            .pcie(0)
            .sriov(SimSriov::new(4, 0x08, 2, 0x10ed).bar(0, SimBar::mem32(0x4000, 0xd000_0000))),
    );
    let at = sim.ext_cap_offset(pf, EXT_SRIOV).unwrap();
    let vf0 = sbdf(0, 5, 0);
    assert_eq!(sim.read32(vf0, 8), u32::MAX);
    sim.write32(pf, at + SRIOV_NUM_VFS, 2);
    sim.write32(pf, at + SRIOV_CTRL, u32::from(SRIOV_CTRL_VFE));
    // VF 0 at 00:05.0, VF 1 at 00:05.2: ID reads all ones, class as the PF, BARs 0.
    assert_eq!(sim.read32(vf0, 0), u32::MAX);
    assert_eq!(sim.read32(vf0, 8), 0x02_00_00_01);
    assert_eq!(sim.read32(sbdf(0, 5, 2), 8), 0x02_00_00_01);
    assert_eq!(sim.read32(sbdf(0, 5, 1), 8), u32::MAX);
    assert_eq!(sim.read32(vf0, 0x10), 0);
    // NumVFs is frozen while VFs are enabled.
    sim.write32(pf, at + SRIOV_NUM_VFS, 4);
    assert_eq!(sim.read32(pf, at + SRIOV_NUM_VFS), 2);
    // VF BAR sizing; a write with VF MSE on is a violation.
    sim.write32(pf, at + SRIOV_VF_BAR0, u32::MAX);
    assert_eq!(sim.read32(pf, at + SRIOV_VF_BAR0), 0xffff_c000);
    assert!(sim.violations().is_empty());
    sim.write32(
        pf,
        at + SRIOV_CTRL,
        u32::from(SRIOV_CTRL_VFE | SRIOV_CTRL_VF_MSE),
    );
    sim.write32(pf, at + SRIOV_VF_BAR0, 0xd000_0000);
    assert_eq!(sim.violations().len(), 1);
    sim.write32(pf, at + SRIOV_CTRL, 0);
    assert_eq!(sim.read32(vf0, 8), u32::MAX);
}

#[test]
fn hostile_functions_and_counters() {
    let sim = SimConfig::new();
    let g = sbdf(0, 1, 0);
    sim.add(g, SimDevice::endpoint(1, 2, 3).hostile(Hostile::Garbage));
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::endpoint(1, 2, 3).hostile(Hostile::AllOnes),
    );
    sim.add(
        sbdf(0, 3, 0),
        SimDevice::endpoint(1, 2, 3).hostile(Hostile::SameEverywhere),
    );
    let a = sim.read32(g, 0);
    let b = sim.read32(g, 0);
    assert_ne!(a, b);
    assert_eq!(read_ids(&sim, sbdf(0, 2, 0)), None);
    assert_eq!(sim.read32(sbdf(0, 3, 0), 0x40), 0x0002_0001);
    assert_eq!(sim.reads(), 4);
    sim.write32(g, 4, 0);
    assert_eq!(sim.writes(), 1);
    sim.peek32(g, 0);
    sim.poke32(g, 0, 0);
    assert_eq!((sim.reads(), sim.writes()), (4, 1));
    sim.reset_counts();
    assert_eq!((sim.reads(), sim.writes()), (0, 0));
}

#[test]
fn capabilities_are_laid_out_and_found() {
    let sim = SimConfig::new();
    let s = sbdf(0, 3, 0);
    sim.add(
        s,
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00)
            .pm()
            .msi(3, true)
            .pcie(0)
            .msix(8, 2)
            .aer()
            .acs()
            .ari(0)
            .rebar()
            .raw_ext_cap(0x23, 12),
    );
    assert_eq!(sim.cap_offset(s, CAP_PM), Some(0x40));
    assert_eq!(sim.cap_offset(s, CAP_MSI), Some(0x48));
    assert_eq!(sim.cap_offset(s, CAP_PCIE), Some(0x60));
    assert_eq!(sim.cap_offset(s, CAP_MSIX), Some(0x9c));
    assert_eq!(sim.ext_cap_offset(s, 0x23), Some(0x164));
    assert_eq!(pci::caps::find_ext_cap(&sim, s, EXT_REBAR), Ok(0x158));
    assert_eq!(
        pci::caps::find_ext_cap(&sim, s, 0x99),
        Err("no such extended capability")
    );
    let t = run(&sim);
    let f = &t.functions[0];
    let caps: Vec<_> = f.caps.iter().map(|c| c.name).collect();
    assert_eq!(caps, ["Power Management", "MSI", "PCI Express", "MSI-X"]);
    assert_eq!(f.msi.map(|m| (m.vectors, m.addr64)), Some((8, true)));
    let m = f.msix.unwrap();
    assert_eq!(
        (m.table_size, m.table_bir, m.pba_bir, m.pba_offset),
        (8, 2, 2, 0x800)
    );
    let ext: Vec<_> = f.ext_caps.iter().map(|c| c.name).collect();
    assert_eq!(
        ext,
        [
            "Advanced Error Reporting",
            "Access Control Services",
            "Alternative Routing-ID Interpretation",
            "Resizable BAR",
            "Designated Vendor-Specific"
        ]
    );
}
