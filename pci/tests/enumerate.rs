//! Enumeration against the simulator: a q35-like machine, BAR sizing, bridges and their bus
//! numbers, capability lists, multi-function and ARI, limits.

mod common;

use common::*;
use pci::regs::*;
use pci::sim::{Hostile, SimBar, SimConfig, SimDevice};
use pci::{BarKind, ConfigSpace, EnumOptions, FunctionKind, Segment};

#[test]
fn q35_in_topological_order() {
    let sim = q35();
    let t = run(&sim);
    assert_eq!(
        names(&t),
        [
            "0000:00:00.0",
            "0000:00:01.0",
            "0000:01:00.0",
            "0000:00:02.0",
            "0000:00:1f.0",
            "0000:00:1f.2",
            "0000:00:1f.3"
        ]
    );
    assert_eq!(
        t.problem_count(),
        0,
        "{:#?}",
        t.all_problems().collect::<Vec<_>>()
    );
    let rp = &t.functions[1];
    assert_eq!(
        rp.kind,
        FunctionKind::Bridge {
            primary: 0,
            secondary: 1,
            subordinate: 1
        }
    );
    assert_eq!(rp.pcie_type, Some("root port"));
    assert_eq!(rp.parent, None);
    assert_eq!(rp.depth, 0);
    let nic = &t.functions[2];
    assert_eq!((nic.vendor, nic.device), (0x1af4, 0x1041));
    assert_eq!(nic.class, 0x02_00_00);
    assert_eq!(nic.subsystem, Some((0x1af4, 0x1100)));
    assert_eq!(nic.parent, Some(1));
    assert_eq!(nic.depth, 1);
    assert_eq!(nic.pcie_type, Some("endpoint"));
    assert_eq!(nic.msix.map(|m| (m.table_size, m.table_bir)), Some((3, 1)));
    let caps: Vec<_> = nic.caps.iter().map(|c| (c.offset, c.name)).collect();
    assert_eq!(
        caps,
        [
            (0x40, "MSI-X"),
            (0x4c, "PCI Express"),
            (0x88, "Power Management")
        ]
    );
    assert!(nic.ext_caps.is_empty());
    let rp_ext: Vec<_> = rp
        .ext_caps
        .iter()
        .map(|c| (c.id, c.offset, c.version))
        .collect();
    assert_eq!(rp_ext, [(0x0001, 0x100, 2), (0x000d, 0x148, 1)]);
    assert_eq!(rp.ext_caps[1].name, "Access Control Services");
    // ICH9 function 0 says multi-function; the host bridge does not.
    assert!(t.functions[4].multifunction);
    assert!(!t.functions[0].multifunction);
    // Depth-first: everything behind a bridge comes right after it.
    for (i, f) in t.functions.iter().enumerate() {
        if let Some(p) = f.parent {
            assert!(p < i && t.functions[p].is_bridge());
        }
    }
    assert_eq!(t.buses.len(), 2);
    assert_eq!(t.buses[1].bridge, Some(1));
}

#[test]
fn bars_sized_with_decoding_off_and_restored() {
    let sim = q35();
    let before: Vec<u32> = (0..0x40)
        .step_by(4)
        .map(|o| sim.peek32(sbdf(1, 0, 0), o))
        .collect();
    let t = run(&sim);
    let nic = t.find(sbdf(1, 0, 0)).unwrap();
    let bars: Vec<_> = nic
        .bars
        .iter()
        .map(|b| {
            (
                b.index,
                b.offset,
                b.kind,
                b.prefetchable,
                b.address,
                b.size,
                b.enabled,
            )
        })
        .collect();
    assert_eq!(
        bars,
        [
            (1, 0x14, BarKind::Mem32, false, 0xfe80_0000, 0x1000, true),
            (4, 0x20, BarKind::Mem64, true, 0xfe00_0000, 0x4000, true),
        ]
    );
    let rom = nic.rom.as_ref().unwrap();
    assert_eq!(
        (
            rom.index,
            rom.offset,
            rom.kind,
            rom.address,
            rom.size,
            rom.enabled
        ),
        (6, 0x30, BarKind::Rom, 0xfe84_0000, 0x40000, false)
    );
    let sata = t.find(sbdf(0, 0x1f, 2)).unwrap();
    assert_eq!(
        sata.bars
            .iter()
            .map(|b| (b.kind, b.address, b.size))
            .collect::<Vec<_>>(),
        [
            (BarKind::Io, 0xc040, 0x20),
            (BarKind::Mem32, 0xfebf_1000, 0x1000)
        ]
    );
    let vga = t.find(sbdf(0, 2, 0)).unwrap();
    assert_eq!(
        vga.rom.as_ref().map(|r| (r.size, r.enabled)),
        Some((0x10000, true))
    );
    assert_eq!(vga.bars[0].size, 0x100_0000);
    assert!(vga.bars[0].prefetchable);
    // The root port's own BAR.
    assert_eq!(t.functions[1].bars[0].size, 0x1000);
    // Every register is as it was: BARs, ROM and COMMAND restored, and STATUS's
    // write-1-to-clear error bit still set.
    let after: Vec<u32> = (0..0x40)
        .step_by(4)
        .map(|o| sim.peek32(sbdf(1, 0, 0), o))
        .collect();
    assert_eq!(before, after);
    assert_eq!(sim.peek32(sbdf(1, 0, 0), COMMAND) >> 16 & 0x2000, 0x2000);
}

#[test]
fn sizing_order_is_command_off_bars_command_back() {
    let sim = q35();
    let rec = Recorder::new(&sim);
    pci::enumerate(&rec, &ecam(), &EnumOptions::default());
    let nic = sbdf(1, 0, 0);
    let writes: Vec<(u16, u32)> = rec
        .accesses()
        .into_iter()
        .filter_map(|a| match a {
            Access::Write(s, o, v) if s == nic => Some((o, v)),
            _ => None,
        })
        .collect();
    // COMMAND: decoding off (STATUS half zero), then each implemented BAR, the 64-bit pair
    // both halves, the ROM; finally COMMAND back as it was.
    assert_eq!(writes.first(), Some(&(0x04, u32::from(CMD_MASTER))));
    assert_eq!(writes.last(), Some(&(0x04, u32::from(ON))));
    let middle = &writes[1..writes.len() - 1];
    assert!(
        middle.iter().all(|&(o, _)| (0x10..=0x30).contains(&o)),
        "{middle:x?}"
    );
    assert!(middle.contains(&(0x20, u32::MAX)) && middle.contains(&(0x24, u32::MAX)));
    assert!(middle.contains(&(0x20, 0xfe00_000c)) && middle.contains(&(0x24, 0)));
    assert!(middle.contains(&(0x30, 0xffff_f800)));
    // Unimplemented BARs (reading 0 after all ones) are not written back.
    assert_eq!(middle.iter().filter(|&&(o, _)| o == 0x10).count(), 1);
    // The host bridge keeps memory decoding on (as Linux does): nothing written to it.
    assert!(
        rec.accesses()
            .iter()
            .all(|a| !matches!(a, Access::Write(s, _, _) if *s == sbdf(0, 0, 0)))
    );
}

#[test]
fn without_sizing_nothing_is_written() {
    let sim = q35();
    let t = pci::enumerate(
        &sim,
        &ecam(),
        &EnumOptions {
            size_bars: false,
            ..EnumOptions::default()
        },
    );
    assert_eq!(sim.writes(), 0);
    let nic = t.find(sbdf(1, 0, 0)).unwrap();
    let bars: Vec<_> = nic.bars.iter().map(|b| (b.address, b.size)).collect();
    assert_eq!(bars, [(0xfe80_0000, 0), (0xfe00_0000, 0)]);
    assert_eq!(t.problem_count(), 0);
}

#[test]
fn cf8_reaches_no_extended_space() {
    let sim = q35();
    let rec = Recorder::new(&sim);
    let segs = [Segment {
        segment: 0,
        start_bus: 0,
        end_bus: 0xff,
        ecam: false,
    }];
    let t = pci::enumerate(&rec, &segs, &EnumOptions::default());
    assert_eq!(t.functions.len(), 7);
    assert!(t.functions.iter().all(|f| f.ext_caps.is_empty()));
    assert!(rec.accesses().iter().all(|a| match a {
        Access::Read(_, o) | Access::Write(_, o, _) => *o < 0x100,
    }));
}

#[test]
fn reads_are_few() {
    // Each access is a trap into Xen: keep them few. Behind the root port only device 0 is
    // probed (a PCIe link has one device), and absent devices cost one read.
    let sim = q35();
    let rec = Recorder::new(&sim);
    pci::enumerate(
        &rec,
        &ecam(),
        &EnumOptions {
            size_bars: false,
            ..EnumOptions::default()
        },
    );
    let on_bus1 = rec
        .accesses()
        .iter()
        .filter(|a| matches!(a, Access::Read(s, _) if s.bus() == 1 && s.device() != 0))
        .count();
    assert_eq!(on_bus1, 0);
    let absent_probes = rec
        .accesses()
        .iter()
        .filter(
            |a| matches!(a, Access::Read(s, 0) if s.bus() == 0 && [3, 4, 30].contains(&s.device())),
        )
        .count();
    assert_eq!(absent_probes, 3);
    assert!(sim.reads() < 200, "{} reads", sim.reads());
}

#[test]
fn hostile_functions_are_skipped_and_scanning_goes_on() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::endpoint(0x1234, 1, 0x02_00_00).hostile(Hostile::Garbage),
    );
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::endpoint(0x1234, 2, 0x02_00_00).hostile(Hostile::OnesAfterId),
    );
    sim.add(
        sbdf(0, 3, 0),
        SimDevice::endpoint(0x1234, 3, 0x02_00_00).hostile(Hostile::SameEverywhere),
    );
    sim.add(
        sbdf(0, 4, 0),
        SimDevice::endpoint(0x1234, 4, 0x02_00_00).hostile(Hostile::AllOnes),
    );
    sim.add(
        sbdf(0, 5, 0),
        SimDevice::endpoint(0x1af4, 0x1000, 0x02_00_00).bar(0, SimBar::io(0x20, 0xc000)),
    );
    let t = run(&sim);
    assert_eq!(names(&t), ["0000:00:05.0"]);
    assert_eq!(t.functions[0].bars[0].size, 0x20);
    let p = &t.problems;
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(p[0].starts_with("0000:00:01.0: ID (0x00) changed between two reads"));
    assert!(p[1].starts_with("0000:00:02.0: ID (0x00) 0x00021234 but COMMAND (0x04)"));
    assert!(p[2].starts_with("0000:00:03.0: every register (0x00-0x0c) reads 0x00031234"));
    // Nothing was written to the hostile ones.
    // 00:05.0 only (decoding off): all ones to 6 BAR slots and the ROM, the I/O BAR put back.
    assert_eq!(sim.writes(), 6 + 1 + 1);
}

#[test]
fn header_types_other_than_0_and_1_are_listed_not_trusted() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::cardbus(0x104c, 0xac56).bar(0, SimBar::mem32(0x1000, 0xfe00_0000)),
    );
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::endpoint(0x1234, 0x5678, 0x0b_40_00).header_type(0x7f),
    );
    let t = run(&sim);
    assert_eq!(t.functions[0].kind, FunctionKind::CardBus);
    assert_eq!(t.functions[1].kind, FunctionKind::Unknown(0x7f));
    assert!(
        t.functions
            .iter()
            .all(|f| f.bars.is_empty() && f.caps.is_empty())
    );
    assert_eq!(sim.writes(), 0);
    assert!(t.functions[0].problems[0].contains("CardBus bridge (header type 2 at 0x0e)"));
    assert!(
        t.functions[1].problems[0]
            .contains("0000:00:02.0: unknown header type 0x7f (0x0e): listed, not trusted")
    );
}

#[test]
fn class_and_header_disagree() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), SimDevice::endpoint(0x1234, 1, 0x06_04_00));
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::bridge(0x1234, 2, 1, 1).header_type(1),
    );
    sim.poke32(sbdf(0, 2, 0), 0x08, 0x02_00_00_01);
    let t = run(&sim);
    assert!(t.functions[0].problems[0].contains("says PCI-to-PCI bridge but header type"));
    assert!(t.functions[1].problems[0].contains("is not a PCI-to-PCI bridge"));
    // The header type decides: the second is still followed as a bridge.
    assert_eq!(t.buses.len(), 2);
}

fn bridge(sec: u8, sub: u8) -> SimDevice {
    SimDevice::bridge(0x8086, 0x244e, sec, sub)
}

fn nic(n: u16) -> SimDevice {
    SimDevice::endpoint(0x8086, n, 0x02_00_00)
}

#[test]
fn bridge_looping_back_to_an_ancestor() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), bridge(1, 3));
    sim.add(sbdf(1, 0, 0), bridge(2, 3));
    sim.add(sbdf(2, 0, 0), bridge(3, 3));
    sim.add(sbdf(3, 0, 0), nic(1));
    // 02:00.0 now claims bus 1 again, its grandparent's bus.
    sim.poke32(sbdf(2, 0, 0), 0x18, 0x0001_0102);
    sim.add(sbdf(2, 1, 0), nic(2));
    let t = run(&sim);
    assert_eq!(
        names(&t),
        [
            "0000:00:01.0",
            "0000:01:00.0",
            "0000:02:00.0",
            "0000:02:01.0"
        ]
    );
    let p = problems_with(&t, "0000:02:00.0: bridge bus numbers (0x18)");
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("secondary bus 0x01 (0x19) is not above its own bus 0x02 (a loop)"));
    assert!(p[0].ends_with("nothing behind it scanned"));
}

#[test]
fn bridge_overlapping_a_sibling() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), bridge(1, 2));
    sim.add(sbdf(1, 0, 0), nic(1));
    sim.add(sbdf(0, 2, 0), bridge(3, 4));
    sim.add(sbdf(3, 0, 0), nic(2));
    // 00:02.0 now claims [2-4], overlapping 00:01.0's [1-2].
    sim.poke32(sbdf(0, 2, 0), 0x18, 0x0004_0200);
    let t = run(&sim);
    assert_eq!(names(&t), ["0000:00:01.0", "0000:01:00.0", "0000:00:02.0"]);
    let p = problems_with(&t, "0000:00:02.0");
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains("bus range [0x02-0x04] overlaps sibling 0000:00:01.0's [0x01-0x02]"));
}

#[test]
fn bridge_outside_its_parents_range() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), bridge(1, 2));
    sim.add(sbdf(1, 0, 0), bridge(2, 2));
    sim.add(sbdf(1, 1, 0), bridge(3, 3)); // bus 3 is not behind 00:01.0
    sim.add(sbdf(2, 0, 0), nic(1));
    let t = run(&sim);
    assert_eq!(
        names(&t),
        [
            "0000:00:01.0",
            "0000:01:00.0",
            "0000:02:00.0",
            "0000:01:01.0"
        ]
    );
    let p = problems_with(&t, "0000:01:01.0");
    assert!(p[0].contains("secondary bus 0x03 (0x19) is outside its parent's range [0x01-0x02]"));
}

#[test]
fn subordinate_beyond_the_parent_is_clamped() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), bridge(1, 3));
    sim.add(sbdf(1, 0, 0), bridge(2, 3));
    sim.add(sbdf(2, 0, 0), nic(1));
    sim.poke8(sbdf(1, 0, 0), 0x1a, 9);
    let t = run(&sim);
    assert_eq!(t.functions.len(), 3);
    let p = problems_with(&t, "0000:01:00.0");
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("subordinate bus 0x09 (0x1a) is outside its parent's range [0x01-0x03]; scanned up to 0x03 only"));
}

#[test]
fn bad_and_unconfigured_bridges() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), bridge(0, 0));
    sim.add(sbdf(0, 2, 0), bridge(5, 4));
    sim.add(sbdf(0, 3, 0), bridge(0x20, 0x20));
    sim.add(sbdf(0x20, 0, 0), nic(1));
    let segs = [Segment {
        segment: 0,
        start_bus: 0,
        end_bus: 0x1f,
        ecam: true,
    }];
    let t = pci::enumerate(&sim, &segs, &EnumOptions::default());
    assert_eq!(t.functions.len(), 3);
    assert_eq!(t.buses.len(), 1);
    let all: Vec<&str> = t.all_problems().collect();
    assert!(all[0].contains(
        "0000:00:01.0: bridge bus numbers (0x18): not configured (secondary and subordinate 0)"
    ));
    assert!(all[1].contains("0000:00:02.0: bridge bus numbers (0x18): subordinate bus 0x04 (0x1a) is below secondary bus 0x05"));
    assert!(all[2].contains("0000:00:03.0: bridge bus numbers (0x18): secondary bus 0x20 (0x19) is beyond the segment's end bus 0x1f"));
}

#[test]
fn a_bus_is_never_scanned_twice() {
    // Two root buses of one segment (a second host bridge at bus 0x80), whose bridge claims
    // a bus already scanned below the first.
    let sim = SimConfig::new();
    sim.add_root(0, 0x80);
    sim.add(sbdf(0, 1, 0), bridge(1, 1));
    sim.add(sbdf(1, 0, 0), nic(1));
    sim.add(sbdf(0x80, 0, 0), nic(2));
    sim.add(sbdf(0x80, 1, 0), bridge(0x81, 0x81));
    sim.poke32(sbdf(0x80, 1, 0), 0x18, 0x0001_0180);
    let segs = [
        Segment {
            segment: 0,
            start_bus: 0,
            end_bus: 0x7f,
            ecam: true,
        },
        Segment {
            segment: 0,
            start_bus: 0x80,
            end_bus: 0xff,
            ecam: true,
        },
        // The same root bus again.
        Segment {
            segment: 0,
            start_bus: 0,
            end_bus: 0xff,
            ecam: true,
        },
    ];
    let t = pci::enumerate(&sim, &segs, &EnumOptions::default());
    assert_eq!(
        names(&t),
        [
            "0000:00:01.0",
            "0000:01:00.0",
            "0000:80:00.0",
            "0000:80:01.0"
        ]
    );
    assert!(problems_with(&t, "0000:80:01.0")[0].contains("is not above its own bus 0x80"));
    assert_eq!(
        t.problems,
        ["segment 0000: root bus 0x00 already scanned; not scanned again"]
    );
    let buses: Vec<_> = t.buses.iter().map(|b| b.number).collect();
    assert_eq!(buses, [0, 1, 0x80]);
}

#[test]
fn already_scanned_secondary_bus() {
    let sim = SimConfig::new();
    sim.add_root(0, 0x40);
    sim.add(sbdf(0, 1, 0), bridge(0x41, 0x41));
    sim.add(sbdf(0x41, 0, 0), nic(1));
    sim.add(sbdf(0x40, 1, 0), bridge(0x42, 0x42));
    sim.poke8(sbdf(0x40, 1, 0), 0x19, 0x41);
    sim.poke8(sbdf(0x40, 1, 0), 0x1a, 0x41);
    let segs = [
        Segment {
            segment: 0,
            start_bus: 0,
            end_bus: 0xff,
            ecam: true,
        },
        Segment {
            segment: 0,
            start_bus: 0x40,
            end_bus: 0xff,
            ecam: true,
        },
    ];
    let t = pci::enumerate(&sim, &segs, &EnumOptions::default());
    assert_eq!(t.functions.len(), 3);
    assert!(
        problems_with(&t, "0000:40:01.0")[0]
            .contains("secondary bus 0x41 (0x19) was already scanned")
    );
}

#[test]
fn segments_and_bad_segment_entries() {
    let sim = SimConfig::new();
    sim.add_root(1, 0);
    sim.add(Sbdf(1, 0, 3, 0), nic(7));
    sim.add(sbdf(0, 3, 0), nic(8));
    let segs = [
        Segment {
            segment: 1,
            start_bus: 0,
            end_bus: 0xff,
            ecam: true,
        },
        Segment {
            segment: 0,
            start_bus: 9,
            end_bus: 8,
            ecam: true,
        },
    ];
    let t = pci::enumerate(&sim, &segs, &EnumOptions::default());
    assert_eq!(names(&t), ["0001:00:03.0"]);
    assert_eq!(
        t.problems,
        ["segment 0000: start bus 0x09 above end bus 0x08; not scanned"]
    );
}

#[allow(non_snake_case)]
fn Sbdf(s: u16, b: u8, d: u8, f: u8) -> pci::Sbdf {
    pci::Sbdf::new(s, b, d, f).unwrap()
}

#[test]
fn multifunction_rules() {
    let sim = SimConfig::new();
    // Device 1: function 0 without the multi-function bit hides function 1.
    sim.add(sbdf(0, 1, 0), nic(1).single_function());
    sim.add(sbdf(0, 1, 1), nic(2));
    // Device 2: no function 0, so function 3 is not probed.
    sim.add(sbdf(0, 2, 3), nic(3));
    // Device 3: functions 0, 2 and 7 with a hole.
    sim.add(sbdf(0, 3, 0), nic(4));
    sim.add(sbdf(0, 3, 2), nic(5));
    sim.add(sbdf(0, 3, 7), nic(6));
    let t = run(&sim);
    assert_eq!(
        names(&t),
        [
            "0000:00:01.0",
            "0000:00:03.0",
            "0000:00:03.2",
            "0000:00:03.7"
        ]
    );
    assert_eq!(t.problem_count(), 0);
}

#[test]
fn ari_functions_beyond_7() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        bridge(1, 1).pcie(PCIE_TYPE_ROOT_PORT).ari_forwarding(true),
    );
    // 16 functions (devfn 0..15) chained by ARI, not in order.
    let order = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15];
    for (i, &f) in order.iter().enumerate() {
        let next = order.get(i + 1).copied().unwrap_or(0);
        sim.add(
            pci::Sbdf::from_devfn(0, 1, f),
            nic(u16::from(f)).pcie(PCIE_TYPE_ENDPOINT).ari(next),
        );
    }
    // Not in the chain: never probed.
    sim.add(pci::Sbdf::from_devfn(0, 1, 10), nic(10).pcie(0).ari(0));
    let t = run(&sim);
    let found: Vec<u8> = t.functions[1..].iter().map(|f| f.sbdf.devfn()).collect();
    assert_eq!(found, order);
    assert!(t.functions[0].pcie.unwrap().ari_forwarding);
    assert_eq!(t.problem_count(), 0);
    // Without ARI forwarding the port lets only device 0 through: functions 0..7.
    sim.write32(sbdf(0, 1, 0), 0x40 + PCIE_DEVCTL2, 0);
    let t = run(&sim);
    assert_eq!(t.functions.len(), 1 + 8);
}

#[test]
fn broken_ari_chain() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        bridge(1, 1).pcie(PCIE_TYPE_DOWNSTREAM).ari_forwarding(true),
    );
    sim.add(pci::Sbdf::from_devfn(0, 1, 0), nic(0).pcie(0).ari(9));
    sim.add(pci::Sbdf::from_devfn(0, 1, 9), nic(9).pcie(0).ari(4));
    sim.add(pci::Sbdf::from_devfn(0, 1, 4), nic(4).pcie(0).ari(0));
    let t = run(&sim);
    assert_eq!(names(&t), ["0000:00:01.0", "0000:01:00.0", "0000:01:01.1"]);
    let p = problems_with(&t, "0000:01:01.1");
    assert!(p[0].contains("ARI Next Function Number 0x4 (at 0x105) is not after function 0x9"));
}

#[test]
fn capability_list_cycles_and_bad_pointers() {
    let sim = SimConfig::new();
    let dev = || nic(1).pm().msi(2, true).pcie(0).msix(8, 0);
    for d in 1..=6 {
        sim.add(sbdf(0, d, 0), dev());
    }
    // 00:01.0: MSI's next (0x49) points back to PM at 0x40.
    sim.poke8(sbdf(0, 1, 0), 0x49, 0x40);
    // 00:02.0: the list starts inside the header.
    sim.poke8(sbdf(0, 2, 0), 0x34, 0x20);
    // 00:03.0: an unaligned pointer.
    sim.poke8(sbdf(0, 3, 0), 0x41, 0x4a);
    // 00:04.0: a capability that points to itself.
    sim.poke8(sbdf(0, 4, 0), 0x61, 0x60);
    // 00:05.0: a capability reading all ones.
    sim.poke32(sbdf(0, 5, 0), 0x48, u32::MAX);
    let t = run(&sim);
    assert_eq!(t.functions.len(), 6);
    let caps = |i: usize| {
        t.functions[i]
            .caps
            .iter()
            .map(|c| c.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(caps(0), ["Power Management", "MSI"]);
    assert!(
        t.functions[0].problems[0]
            .contains("0000:00:01.0: capability pointer at 0x49 goes back to 0x40 (a cycle)")
    );
    assert!(caps(1).is_empty());
    assert!(
        t.functions[1].problems[0]
            .contains("capability pointer at 0x34 is 0x20, inside the header")
    );
    assert_eq!(caps(2), ["Power Management"]);
    assert!(
        t.functions[2].problems[0]
            .contains("capability pointer at 0x41 is 0x4a, not dword aligned")
    );
    assert_eq!(caps(3), ["Power Management", "MSI", "PCI Express"]);
    assert!(t.functions[3].problems[0].contains("capability pointer at 0x61 goes back to 0x60"));
    assert_eq!(caps(4), ["Power Management"]);
    assert!(t.functions[4].problems[0].contains("capability at 0x48 reads all ones"));
    assert_eq!(caps(5), ["Power Management", "MSI", "PCI Express", "MSI-X"]);
    assert_eq!(t.functions[5].msi.unwrap().vectors, 4);
    assert!(t.functions[5].problems.is_empty());
}

#[test]
fn longest_capability_lists_are_bounded() {
    let sim = SimConfig::new();
    sim.add(sbdf(0, 1, 0), nic(1).pcie(0).aer());
    let s = sbdf(0, 1, 0);
    // 48 vendor-specific capabilities filling 0x40..0x100, the last pointing to the first.
    // The first is a PCI Express capability (so extended space is read).
    sim.poke8(s, 0x34, 0x40);
    for at in (0x40u16..0x100).step_by(4) {
        let next = if at == 0xfc { 0x40 } else { at + 4 };
        let id = if at == 0x40 { 0x10 } else { 0x09 };
        sim.poke32(s, at, id | u32::from(next) << 8);
    }
    // 960 extended capabilities filling 0x100..0x1000, the last pointing to the first.
    for at in (0x100u16..0x1000).step_by(4) {
        let next = if at == 0xffc { 0x100 } else { at + 4 };
        sim.poke32(s, at, 0x0b | 1 << 16 | u32::from(next) << 20);
    }
    let t = run(&sim);
    let f = &t.functions[0];
    assert_eq!(f.caps.len(), 48);
    assert_eq!(f.ext_caps.len(), 960);
    assert_eq!(f.problems.len(), 2, "{:#?}", f.problems);
    assert!(f.problems[0].contains("capability pointer at 0xfd goes back to 0x40"));
    assert!(
        f.problems[1]
            .contains("extended capability at 0xffc points to 0x100, seen before (a cycle)")
    );
    assert_eq!(f.pcie_type, Some("endpoint"));
    assert_eq!(f.caps[1].name, "Vendor Specific");
    assert_eq!(f.ext_caps[0].name, "Vendor Specific");
}

#[test]
fn extended_capability_lists_that_break() {
    let sim = SimConfig::new();
    let dev = || nic(1).pcie(0).aer().acs().ari(0).rebar();
    for d in 1..=5 {
        sim.add(sbdf(0, d, 0), dev());
    }
    // AER at 0x100 (0x48 long), ACS at 0x148, ARI at 0x150, ReBAR at 0x158.
    let next = |to: u16| 0x0001_0000 | u32::from(to) << 20;
    // 00:01.0: ACS points back to AER.
    sim.poke32(sbdf(0, 1, 0), 0x148, 0x000d | next(0x100));
    // 00:02.0: AER points into standard space.
    sim.poke32(sbdf(0, 2, 0), 0x100, 0x0001 | 0x0002_0000 | 0x0c0 << 20);
    // 00:03.0: unaligned.
    sim.poke32(sbdf(0, 3, 0), 0x100, 0x0001 | 0x0002_0000 | 0x149 << 20);
    // 00:04.0: extended space reads all ones at 0x100.
    sim.poke32(sbdf(0, 4, 0), 0x100, u32::MAX);
    let t = run(&sim);
    let ids = |i: usize| {
        t.functions[i]
            .ext_caps
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(0), [0x1, 0xd]);
    assert!(
        t.functions[0].problems[0]
            .contains("extended capability at 0x148 points to 0x100, seen before (a cycle)")
    );
    assert_eq!(ids(1), [0x1]);
    assert!(
        t.functions[1].problems[0].contains("points to 0xc0, inside the standard config space")
    );
    assert_eq!(ids(2), [0x1]);
    assert!(t.functions[2].problems[0].contains("points to 0x149, not dword aligned"));
    assert!(ids(3).is_empty());
    assert!(t.functions[3].problems[0].contains("extended config space at 0x100 reads all ones"));
    assert_eq!(ids(4), [0x1, 0xd, 0xe, 0x15]);
    let names: Vec<_> = t.functions[4].ext_caps.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "Advanced Error Reporting",
            "Access Control Services",
            "Alternative Routing-ID Interpretation",
            "Resizable BAR"
        ]
    );
    assert!(t.functions[4].ari);
}

#[test]
fn hostile_bars() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        nic(1)
            .command(ON)
            // Writable bits with holes.
            .bar(0, SimBar::mem32(0x1000, 0xfe00_0000).with_mask(0xff00_ff00))
            // Ignores writes (a device Xen keeps read-only): reads back its address.
            .bar(1, SimBar::mem32(0x1000, 0xfebf_1000).with_mask(0))
            // Unassigned.
            .bar(2, SimBar::mem32(0x1000, 0))
            // 64-bit in the last slot.
            .bar(5, SimBar::mem32(0x1000, 0xfe10_0000)),
    );
    // BAR 3: reserved memory type 3; BAR 5: says 64-bit.
    sim.poke32(sbdf(0, 1, 0), 0x1c, 0xfe20_0006);
    sim.poke32(sbdf(0, 1, 0), 0x24, 0xfe10_0004);
    let t = run(&sim);
    let f = &t.functions[0];
    let bars: Vec<_> = f
        .bars
        .iter()
        .map(|b| (b.index, b.address, b.size))
        .collect();
    assert_eq!(
        bars,
        [(0, 0xfe00_0000, 0), (1, 0xfebf_1000, 0), (2, 0, 0x1000)]
    );
    let p = &f.problems;
    assert_eq!(p.len(), 5, "{p:#?}");
    assert!(p.iter().any(|p| {
        p.contains("0000:00:01.0: BAR 0 (0x10): size mask 0xff00ff00 has holes; size unknown")
    }));
    assert!(
        p.iter()
            .any(|p| p.contains("BAR 1 (0x14): size mask 0xfebf1000 has holes"))
    );
    assert!(
        p.iter()
            .any(|p| p.contains("BAR 2 (0x18): unassigned (address 0, size 0x1000)"))
    );
    assert!(
        p.iter()
            .any(|p| p.contains("BAR 3 (0x1c) has the reserved memory type 3"))
    );
    assert!(
        p.iter()
            .any(|p| p.contains("BAR 5 (0x24) is 64-bit but is the last slot"))
    );
    assert_eq!(f.bars[0].problems.len(), 1);
    // Registers restored, decoding back on.
    assert_eq!(sim.peek32(sbdf(0, 1, 0), 0x10), 0xfe00_0000);
    assert_eq!(sim.peek32(sbdf(0, 1, 0), 0x1c), 0xfe20_0006);
    assert_eq!(sim.peek32(sbdf(0, 1, 0), 0x04) as u16, ON);
}

#[test]
fn decoding_that_cannot_be_turned_off_means_no_sizing() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        nic(1)
            .command(ON)
            .command_readonly()
            .bar(0, SimBar::mem32(0x1000, 0xfe00_0000)),
    );
    let t = run(&sim);
    let f = &t.functions[0];
    assert_eq!(f.bars.len(), 1);
    assert_eq!(f.bars[0].size, 0);
    assert!(f.problems[0].contains("0000:00:01.0: COMMAND (0x04) decode bits stay set"));
    // COMMAND written (and put back), never a BAR.
    assert_eq!(sim.writes(), 2);
}

#[test]
fn host_bridge_with_bars_keeps_decoding() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x1022, 0x1480, 0x06_00_00)
            .command(CMD_MEM)
            .bar(0, SimBar::mem32(0x10_0000, 0xfe00_0000)),
    );
    let t = run(&sim);
    assert_eq!(sim.writes(), 0);
    let f = &t.functions[0];
    assert_eq!((f.bars[0].address, f.bars[0].size), (0xfe00_0000, 0));
    assert!(f.problems[0].contains("a host bridge keeps memory decoding on"));
}

#[test]
fn overlapping_bars_and_host_bridge_windows() {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 1, 0),
        nic(1)
            .command(ON)
            .bar(0, SimBar::mem32(0x2000, 0xfe00_0000))
            .bar(1, SimBar::io(0x20, 0xc000)),
    );
    sim.add(
        sbdf(0, 2, 0),
        nic(2)
            .command(ON)
            .bar(0, SimBar::mem32(0x1000, 0xfe00_1000))
            .bar(1, SimBar::io(0x20, 0xc020))
            .bar(2, SimBar::mem64(0x10_0000, 0x1_0000_0000)),
    );
    let mut t = run(&sim);
    let p0 = &t.functions[0].problems;
    assert_eq!(p0.len(), 1, "{p0:#?}");
    assert_eq!(
        p0[0],
        "0000:00:01.0 BAR 0 (0x10) [0xfe000000-0xfe001fff] overlaps 0000:00:02.0 BAR 0 (0x10) \
         [0xfe001000-0xfe001fff] in memory space"
    );
    assert_eq!(t.functions[1].problems.len(), 1);
    assert_eq!(t.functions[0].bars[0].problems.len(), 1);
    // I/O BARs side by side do not overlap.
    let windows = [0xfe00_0000..0xff00_0000, 0x100_0000_0000..0x200_0000_0000];
    pci::check_bars(&mut t, &windows);
    let p1 = &t.functions[1].problems;
    assert_eq!(
        p1.last().unwrap(),
        "0000:00:02.0 BAR 2 (0x18) [0x100000000-0x1000fffff] is outside every host bridge window"
    );
    assert_eq!(t.functions[0].problems.len(), 1);
}

#[test]
fn function_limit() {
    let (sim, _) = pci::sim::large_tree();
    let t = pci::enumerate(
        &sim,
        &ecam(),
        &EnumOptions {
            size_bars: false,
            max_functions: 100,
        },
    );
    assert_eq!(t.functions.len(), 100);
    assert_eq!(t.problems.len(), 1);
    assert!(t.problems[0].contains("more than 100 functions; enumeration stopped here"));
}

#[test]
fn large_tree_enumerates_completely_and_correctly() {
    let (sim, expect) = pci::sim::large_tree();
    let t = run(&sim);
    assert_eq!(
        t.problem_count(),
        0,
        "{:?}",
        t.all_problems().take(5).collect::<Vec<_>>()
    );
    assert_eq!(t.functions.len(), 2059);
    let got: Vec<_> = t
        .functions
        .iter()
        .map(|f| (f.sbdf, f.vendor, f.device, f.layout()))
        .collect();
    assert_eq!(got, expect.functions);
    assert_eq!(t.buses.len(), expect.buses);
    let mut buses: Vec<u8> = t.buses.iter().map(|b| b.number).collect();
    buses.sort();
    assert_eq!(buses, (0..=255).collect::<Vec<u8>>());
    let bars: usize = t.functions.iter().map(|f| f.bars.len()).sum();
    assert_eq!(bars, expect.bars);
    for f in &t.functions {
        for b in &f.bars {
            let want = match b.kind {
                BarKind::Mem64 => 0x4000,
                BarKind::Mem32 => 0x1000,
                BarKind::Io if f.sbdf.bus() == 0 => 0x40,
                BarKind::Io => 0x20,
                BarKind::Rom => 0,
            };
            assert_eq!(b.size, want, "{} {b}", f.sbdf);
        }
        if let Some(p) = f.parent {
            assert!(p < t.functions.iter().position(|g| g.sbdf == f.sbdf).unwrap());
            assert_eq!(f.depth, t.functions[p].depth + 1);
        }
    }
    let depth3 = t.functions.iter().filter(|f| f.depth == 3).count();
    assert_eq!(depth3, 15 * 15 * 8);
    // Endpoints behind ARI-forwarding ports were found through the ARI chain.
    let ari_ports = t
        .functions
        .iter()
        .filter(|f| f.pcie.is_some_and(|p| p.ari_forwarding))
        .count();
    assert_eq!(ari_ports, 15 * 7);
}

#[test]
fn random_corruption_never_panics_or_writes_bars_with_decoding_on() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let sim = q35();
        sim.add(
            sbdf(0, 5, 0),
            nic(5)
                .command(ON)
                .pcie(0)
                .msix(4, 0)
                .aer()
                .ari(0)
                .sriov(
                    pci::sim::SimSriov::new(8, 0x10, 1, 0x10ed)
                        .bar(0, SimBar::mem64(0x4000, 0x2_0000_0000))
                        .enabled(4),
                )
                .bar(0, SimBar::mem64(0x10000, 0x3_0000_0000)),
        );
        let targets = [
            sbdf(0, 0, 0),
            sbdf(0, 1, 0),
            sbdf(1, 0, 0),
            sbdf(0, 2, 0),
            sbdf(0, 0x1f, 2),
            sbdf(0, 5, 0),
        ];
        for _ in 0..(1 + round % 8) {
            let r = rand();
            let s = targets[(r % targets.len() as u64) as usize];
            let off = if r & 0x100 != 0 {
                ((r >> 12) % 0x40) as u16 * 4
            } else {
                ((r >> 12) % 0x400) as u16 * 4
            };
            sim.poke32(s, off, (r >> 32) as u32);
        }
        let t = pci::enumerate(&sim, &ecam(), &EnumOptions::default());
        assert_eq!(sim.violations(), Vec::<String>::new(), "round {round}");
        assert!(t.functions.len() < 64);
        let _ = pci::xen_add_order(&t);
        let _ = pci::tree::tree_text(&t);
        for f in &t.functions {
            let _ = pci::tree::detail_text(f);
            for p in &f.problems {
                assert!(p.contains(':'), "{p}");
            }
        }
    }
}
