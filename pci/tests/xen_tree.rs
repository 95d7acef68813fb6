//! The plan of PHYSDEVOP_pci_device_add calls, and the text views.

mod common;

use common::*;
use pci::regs::*;
use pci::sim::{SimBar, SimConfig, SimDevice, SimSriov};
use pci::tree::{class_name, detail_text, tree_text};
use pci::{EnumOptions, XenAdd, xen_add_order};

#[test]
fn q35_reports_in_topological_order_with_no_flags() {
    let t = run(&q35());
    let order = xen_add_order(&t);
    assert_eq!(order.len(), 7);
    for (a, f) in order.iter().zip(&t.functions) {
        assert_eq!(
            *a,
            XenAdd {
                sbdf: f.sbdf,
                flags: 0,
                physfn: None
            }
        );
    }
    let pos = |s| order.iter().position(|a| a.sbdf == s).unwrap();
    assert!(pos(sbdf(0, 1, 0)) < pos(sbdf(1, 0, 0)));
}

/// A root port with ARI forwarding on, below it an ARI device with 12 functions (0..=11),
/// function 0 an SR-IOV PF whose 3 VFs sit at devfn 0x80, 0x81, 0x82.
fn ari_machine(forwarding: bool) -> SimConfig {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7000, 1, 1)
            .pcie(PCIE_TYPE_ROOT_PORT)
            .ari_forwarding(forwarding),
    );
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::endpoint(0x8086, 0x1234, 0x02_00_00)
            .pcie(PCIE_TYPE_RC_ENDPOINT)
            .ari(0),
    );
    for f in 0..12u8 {
        let mut dev = SimDevice::endpoint(0x15b3, 0x1017, 0x02_00_00)
            .pcie(0)
            .ari(if f < 11 { f + 1 } else { 0 })
            .bar(
                0,
                SimBar::mem32(0x1000, 0xe000_0000 + u64::from(f) * 0x1000),
            );
        if f == 0 {
            dev = dev.sriov(
                SimSriov::new(3, 0x80, 1, 0x1018)
                    .bar(0, SimBar::mem32(0x1000, 0xe100_0000))
                    .enabled(3),
            );
        }
        sim.add(pci::Sbdf::from_devfn(0, 1, f), dev);
    }
    sim
}

#[test]
fn ari_extended_functions_and_vfs() {
    let t = run(&ari_machine(true));
    assert_eq!(
        t.problem_count(),
        0,
        "{:#?}",
        t.all_problems().collect::<Vec<_>>()
    );
    let order = xen_add_order(&t);
    let got: Vec<(String, u32, Option<String>)> = order
        .iter()
        .map(|a| (a.sbdf.to_string(), a.flags, a.physfn.map(|p| p.to_string())))
        .collect();
    let mut want = vec![("0000:00:01.0".to_string(), 0, None)];
    want.push(("0000:01:00.0".into(), 0, None));
    for vf in 0..3 {
        want.push((
            format!("0000:01:10.{vf}"),
            XEN_PCI_DEV_VIRTFN,
            Some("0000:01:00.0".into()),
        ));
    }
    for f in 1..12u8 {
        let s = pci::Sbdf::from_devfn(0, 1, f);
        // Functions 1..7 are ordinary; 8..11 (device number 1) exist only through ARI.
        let flags = if f >= 8 { XEN_PCI_DEV_EXTFN } else { 0 };
        want.push((s.to_string(), flags, None));
    }
    // A root-complex device with ARI on bus 0: no bridge above, so no ARI bus.
    want.push(("0000:00:02.0".into(), 0, None));
    assert_eq!(got, want);
}

#[test]
fn no_extfn_without_ari_forwarding() {
    let t = pci::enumerate(&ari_machine(false), &ecam(), &EnumOptions::default());
    // The port lets device 0 only: functions 0..7, and the VFs at devfn 0x80.. do not answer.
    assert_eq!(t.functions.len(), 1 + 8 + 1);
    assert!(xen_add_order(&t).iter().all(|a| a.flags == 0));
}

#[test]
fn tree_of_q35() {
    let t = run(&q35());
    let text = tree_text(&t);
    assert_eq!(
        text,
        "-[0000:00]-+-00.0  8086:29c0 Host bridge\n\
         \x20          +-01.0-[01]----00.0  1af4:1041 Ethernet controller\n\
         \x20          +-02.0  1234:1111 VGA compatible controller\n\
         \x20          +-1f.0  8086:2918 ISA bridge\n\
         \x20          +-1f.2  8086:2922 SATA controller\n\
         \x20          \\-1f.3  8086:2930 SMBus\n"
    );
}

#[test]
fn tree_with_nesting_empty_bridges_and_two_roots() {
    let sim = SimConfig::new();
    sim.add_root(0, 0x80);
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    sim.add(sbdf(0, 1, 0), SimDevice::bridge(0x8086, 0x7000, 1, 3));
    sim.add(sbdf(1, 0, 0), SimDevice::bridge(0x10b5, 0x8796, 2, 2));
    sim.add(
        sbdf(2, 0, 0),
        SimDevice::endpoint(0x144d, 0xa808, 0x01_08_02),
    );
    sim.add(sbdf(1, 1, 0), SimDevice::bridge(0x10b5, 0x8796, 3, 3));
    sim.add(sbdf(0, 2, 0), SimDevice::bridge(0x8086, 0x7001, 0, 0));
    sim.add(
        sbdf(0x80, 0, 0),
        SimDevice::endpoint(0x1022, 0x1480, 0x06_00_00),
    );
    let segs = [
        pci::Segment {
            segment: 0,
            start_bus: 0,
            end_bus: 0x7f,
            ecam: true,
        },
        pci::Segment {
            segment: 0,
            start_bus: 0x80,
            end_bus: 0xff,
            ecam: true,
        },
    ];
    let t = pci::enumerate(&sim, &segs, &EnumOptions::default());
    let text = tree_text(&t);
    let want = [
        "-+-[0000:00]-+-00.0  8086:29c0 Host bridge",
        " |           +-01.0-[01-03]--+-00.0-[02]----00.0  144d:a808 Non-Volatile memory controller",
        " |           |               \\-01.0-[03]--",
        " |           \\-02.0  8086:7001 PCI bridge",
        " \\-[0000:80]---00.0  1022:1480 Host bridge",
    ];
    assert_eq!(text.lines().collect::<Vec<_>>(), want, "\n{text}");
    assert_eq!(tree_text(&pci::Topology::default()), "");
}

#[test]
fn details() {
    let t = run(&q35());
    let d = detail_text(t.find(sbdf(1, 0, 0)).unwrap());
    let lines: Vec<&str> = d.lines().collect();
    assert_eq!(
        lines,
        [
            "0000:01:00.0 1af4:1041 (rev 01) Ethernet controller [020000], header type 0x00 (endpoint)",
            "  subsystem 1af4:1100; depth 1; PCIe endpoint",
            "  command 0x0007 (I/O+ Mem+ BusMaster+), status 0x2010",
            "  BAR 1 (0x14): mem32 at 0xfe800000, size 0x1000 (4K)",
            "  BAR 4 (0x20): mem64 prefetchable at 0xfe000000, size 0x4000 (16K)",
            "  ROM (0x30): rom at 0xfe840000, size 0x40000, disabled (256K)",
            "  capabilities: 0x40 MSI-X (table size 3, disabled), 0x4c PCI Express (endpoint), 0x88 Power Management",
        ]
    );
    let rp = detail_text(&t.functions[1]);
    assert!(
        rp.contains("header type 0x01 (bridge, buses primary 00 secondary 01 subordinate 01)"),
        "{rp}"
    );
    assert!(rp.contains("extended capabilities: 0x100 Advanced Error Reporting v2, 0x148 Access Control Services v1"), "{rp}");
    let lpc = detail_text(&t.functions[4]);
    assert!(
        lpc.contains("ISA bridge [060100], header type 0x80 (endpoint, multi-function)"),
        "{lpc}"
    );
    assert!(lpc.contains("no subsystem; on a root bus"), "{lpc}");
}

#[test]
fn details_of_a_pf_and_problems() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 5, 0),
        SimDevice::endpoint(0x8086, 0x10fb, 0x02_00_00)
            .pcie(0)
            .sriov(SimSriov::new(8, 0x10, 1, 0x10ed).bar(0, SimBar::mem32(0x4000, 0)))
            .bar(0, SimBar::mem32(0x1000, 0)),
    );
    let t = run(&sim);
    let d = detail_text(&t.functions[0]);
    assert!(d.contains("  SR-IOV: 0 of 8 VFs (initial 8), VF Enable-, VF MSE-, offset 0x10 stride 0x1, VF device 10ed\n"), "{d}");
    assert!(
        d.contains("  VF BAR 0 (0x124): mem32 at 0x0, size 0x4000, disabled (16K per VF)\n"),
        "{d}"
    );
    assert!(
        d.contains("  problem: 0000:00:05.0: BAR 0 (0x10): unassigned (address 0, size 0x1000)\n"),
        "{d}"
    );
    assert!(
        d.contains(
            "  problem: 0000:00:05.0: VF BAR 0 (0x124): unassigned (address 0, size 0x4000)\n"
        ),
        "{d}"
    );
}

#[test]
fn class_names() {
    assert_eq!(class_name(0x06_00_00), "Host bridge");
    assert_eq!(class_name(0x06_04_01), "PCI bridge");
    assert_eq!(class_name(0x02_00_00), "Ethernet controller");
    assert_eq!(class_name(0x02_80_00), "Network controller");
    assert_eq!(class_name(0x01_08_02), "Non-Volatile memory controller");
    assert_eq!(class_name(0x0c_03_30), "USB controller (xHCI)");
    assert_eq!(class_name(0x03_00_00), "VGA compatible controller");
    assert_eq!(class_name(0x08_06_00), "IOMMU");
    assert_eq!(class_name(0xff_00_00), "Unassigned class");
    assert_eq!(class_name(0x77_00_00), "Unknown class");
}

#[test]
fn hand_made_topologies_do_not_panic() {
    let mut t = run(&q35());
    t.functions[0].parent = Some(0);
    t.functions[2].parent = Some(99);
    t.functions[3].parent = Some(5);
    t.buses.push(pci::Bus {
        segment: 0,
        number: 9,
        bridge: Some(1234),
    });
    let tree = tree_text(&t);
    assert!(tree.contains("1f.3"), "{tree}");
    assert_eq!(xen_add_order(&t).len(), 7);
    pci::check_bars(&mut t, &[]);
    assert!(t.problem_count() > 0);
    for f in &t.functions {
        detail_text(f);
    }
}
