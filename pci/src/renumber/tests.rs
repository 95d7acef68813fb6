//! Tests of `renumber.rs`.

use super::*;
use crate::enumerate::enumerate;
use crate::model::{EnumOptions, Segment};
use crate::sim::{SimConfig, SimDevice, SimSriov};

fn s(b: u8, d: u8, f: u8) -> Sbdf {
    Sbdf::new(0, b, d, f).unwrap()
}

fn seg(end_bus: u8) -> Vec<Segment> {
    vec![Segment {
        segment: 0,
        start_bus: 0,
        end_bus,
        ecam: true,
    }]
}

fn scan(sim: &SimConfig, segs: &[Segment]) -> Topology {
    enumerate(sim, segs, &EnumOptions::default())
}

/// Firmware-like contiguous numbering:
/// - 00:00.0 host bridge, 00:1f.0 LPC;
/// - root port 00:01.0 [01-03] -> switch up 01:00.0 [02-03] -> down 02:00.0 [03-03] ->
///   multi-function endpoint 03:00.0/.1;
/// - root port 00:02.0 [04-06] -> PCIe-to-PCI 04:00.0 [05-06] -> bus 05: endpoint
///   05:01.0 and PCI bridge 05:02.0 [06-06] -> endpoint 06:03.0;
/// - root port 00:03.0 [07-07] -> SR-IOV PF 07:00.0 with 3 VFs at 07:00.1..3.
fn fixture() -> SimConfig {
    let sim = SimConfig::new();
    sim.add(s(0, 0, 0), SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00));
    sim.add(
        s(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7001, 1, 3).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        s(1, 0, 0),
        SimDevice::bridge(0x10b5, 0x8700, 2, 3).pcie(PCIE_TYPE_UPSTREAM),
    );
    sim.add(
        s(2, 0, 0),
        SimDevice::bridge(0x10b5, 0x8701, 3, 3).pcie(PCIE_TYPE_DOWNSTREAM),
    );
    sim.add(
        s(3, 0, 0),
        SimDevice::endpoint(0x8086, 0x1521, 0x02_00_00).pcie(PCIE_TYPE_ENDPOINT),
    );
    sim.add(
        s(3, 0, 1),
        SimDevice::endpoint(0x8086, 0x1522, 0x02_00_00).pcie(PCIE_TYPE_ENDPOINT),
    );
    sim.add(
        s(0, 2, 0),
        SimDevice::bridge(0x8086, 0x7002, 4, 6).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        s(4, 0, 0),
        SimDevice::bridge(0x104c, 0x8240, 5, 6).pcie(PCIE_TYPE_PCIE_TO_PCI),
    );
    sim.add(s(5, 1, 0), SimDevice::endpoint(0x1000, 0x0030, 0x01_00_00));
    sim.add(s(5, 2, 0), SimDevice::bridge(0x8086, 0x244e, 6, 6));
    sim.add(s(6, 3, 0), SimDevice::endpoint(0x10ec, 0x8139, 0x02_00_00));
    sim.add(
        s(0, 3, 0),
        SimDevice::bridge(0x8086, 0x7003, 7, 7).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        s(7, 0, 0),
        SimDevice::endpoint(0x15b3, 0x1017, 0x02_00_00)
            .pcie(PCIE_TYPE_ENDPOINT)
            .sriov(SimSriov::new(4, 1, 1, 0x1018).enabled(3)),
    );
    sim.add(
        s(0, 0x1f, 0),
        SimDevice::endpoint(0x8086, 0x2918, 0x06_01_00),
    );
    sim
}

fn bridge_map(p: &RenumberPlan) -> Vec<(String, [u8; 3])> {
    p.bridges
        .iter()
        .map(|b| (b.new.to_string(), [b.primary, b.secondary, b.subordinate]))
        .collect()
}

/// After `apply`, a new enumeration finds every function of `before` at its planned
/// SBDF, same IDs, same parent (mapped), same depth and kind, bridges with the planned
/// numbers; nothing else; and nothing wrong.
fn check_applied(before: &Topology, plan: &RenumberPlan, after: &Topology) {
    assert_eq!(
        after.problem_count(),
        0,
        "{:?}",
        after.all_problems().collect::<Vec<_>>()
    );
    assert_eq!(after.functions.len(), before.functions.len());
    for f in &before.functions {
        let new = plan.new_sbdf(f.sbdf).unwrap();
        let g = after
            .find(new)
            .unwrap_or_else(|| panic!("{} not at {new}", f.sbdf));
        assert_eq!((g.vendor, g.device, g.depth), (f.vendor, f.device, f.depth));
        assert_eq!(g.is_vf(), f.is_vf());
        let parent_of = |t: &Topology, x: &crate::Function| x.parent.map(|p| t.functions[p].sbdf);
        assert_eq!(
            parent_of(after, g),
            parent_of(before, f).map(|p| plan.new_sbdf(p).unwrap()),
            "{}",
            f.sbdf
        );
        if let FunctionKind::Bridge {
            primary,
            secondary,
            subordinate,
        } = g.kind
        {
            let b = plan.bridges.iter().find(|b| b.new == new).unwrap();
            assert_eq!(
                [primary, secondary, subordinate],
                [b.primary, b.secondary, b.subordinate]
            );
        } else {
            assert_eq!(g.kind, f.kind);
        }
    }
}

#[test]
fn gap_zero_on_firmware_numbering_changes_nothing() {
    let sim = fixture();
    let topo = scan(&sim, &seg(0xff));
    assert_eq!(
        topo.problem_count(),
        0,
        "{:?}",
        topo.all_problems().collect::<Vec<_>>()
    );
    assert_eq!(topo.functions.len(), 17);
    let p = plan(&topo, 0);
    assert!(p.problems.is_empty() && p.moved.is_empty(), "{p:?}");
    assert_eq!(p.unchanged.len(), 17);
    assert_eq!(
        bridge_map(&p),
        [
            ("0000:00:01.0".into(), [0, 1, 3]),
            ("0000:01:00.0".into(), [1, 2, 3]),
            ("0000:02:00.0".into(), [2, 3, 3]),
            ("0000:00:02.0".into(), [0, 4, 6]),
            ("0000:04:00.0".into(), [4, 5, 6]),
            ("0000:05:02.0".into(), [5, 6, 6]),
            ("0000:00:03.0".into(), [0, 7, 7]),
        ]
    );
    sim.reset_counts();
    let steps = apply(&sim, &topo, &p);
    assert!(steps.is_empty(), "{steps:?}");
    assert_eq!(sim.writes(), 0);
}

#[test]
fn gap_two_shifts_later_buses_and_everything_follows() {
    let sim = fixture();
    let topo = scan(&sim, &seg(0xff));
    let p = plan(&topo, 2);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(
        bridge_map(&p),
        [
            ("0000:00:01.0".into(), [0, 1, 9]),
            ("0000:01:00.0".into(), [1, 2, 7]),
            ("0000:02:00.0".into(), [2, 3, 5]),
            ("0000:00:02.0".into(), [0, 0x0a, 0x12]),
            ("0000:0a:00.0".into(), [0x0a, 0x0b, 0x10]),
            ("0000:0b:02.0".into(), [0x0b, 0x0c, 0x0e]),
            ("0000:00:03.0".into(), [0, 0x13, 0x15]),
        ]
    );
    let moved: Vec<String> = p.moved.iter().map(|(o, n)| format!("{o}->{n}")).collect();
    assert_eq!(
        moved,
        [
            "0000:04:00.0->0000:0a:00.0",
            "0000:05:01.0->0000:0b:01.0",
            "0000:05:02.0->0000:0b:02.0",
            "0000:06:03.0->0000:0c:03.0",
            "0000:07:00.0->0000:13:00.0",
            "0000:07:00.1->0000:13:00.1",
            "0000:07:00.2->0000:13:00.2",
            "0000:07:00.3->0000:13:00.3",
        ]
    );
    assert_eq!(p.unchanged.len(), 9);
    let steps = apply(&sim, &topo, &p);
    assert!(steps.iter().all(|(_, ok)| *ok), "{steps:#?}");
    // 6 closed (00:03.0 too), 7 opened (00:01.0 [1-3] -> [1-9] ...), 8 moved checked.
    assert_eq!(steps.len(), 7 + 7 + 8, "{steps:#?}");
    assert!(sim.violations().is_empty());
    let after = scan(&sim, &seg(0xff));
    check_applied(&topo, &p, &after);
    // Idempotent: the same plan on the result changes nothing.
    let again = plan(&after, 2);
    assert!(again.moved.is_empty() && again.problems.is_empty());
    assert_eq!(bridge_map(&again), bridge_map(&p));
    // And back to tight numbering.
    let tight = plan(&after, 0);
    assert_eq!(tight.moved.len(), 8);
    let steps = apply(&sim, &after, &tight);
    assert!(steps.iter().all(|(_, ok)| *ok), "{steps:#?}");
    let back = scan(&sim, &seg(0xff));
    check_applied(&after, &tight, &back);
    assert_eq!(back, topo);
}

#[test]
fn overflow_past_end_bus_is_a_problem_and_writes_nothing() {
    let sim = fixture();
    let topo = scan(&sim, &seg(0x10));
    assert_eq!(topo.problem_count(), 0);
    let p = plan(&topo, 2);
    assert_eq!(p.problems.len(), 1, "{p:?}");
    assert!(
        p.problems[0].contains("0000:00:02.0: bridge needs subordinate bus 0x12")
            && p.problems[0].contains("0x10"),
        "{}",
        p.problems[0]
    );
    assert!(p.bridges.is_empty() && p.moved.is_empty() && p.unchanged.is_empty());
    sim.reset_counts();
    let steps = apply(&sim, &topo, &p);
    assert_eq!(
        steps,
        [("plan has problems; nothing written".into(), false)]
    );
    assert_eq!((sim.writes(), sim.reads()), (0, 0));
    // Fits exactly at 0x15.
    let topo = scan(&sim, &seg(0x15));
    assert!(plan(&topo, 2).problems.is_empty());
    let topo = scan(&sim, &seg(0x14));
    let p = plan(&topo, 2);
    assert!(p.problems[0].contains("00:03.0"), "{:?}", p.problems);
}

#[test]
fn next_root_bus_limits_the_one_below() {
    let sim = fixture();
    sim.add_root(0, 0x10);
    sim.add(
        s(0x10, 0, 0),
        SimDevice::endpoint(0x8086, 0x0e00, 0x06_00_00),
    );
    sim.add(
        s(0x10, 1, 0),
        SimDevice::bridge(0x8086, 0x0e01, 0x11, 0x11).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        s(0x11, 0, 0),
        SimDevice::endpoint(0x144d, 0xa808, 0x01_08_02),
    );
    let segs = [
        seg(0xff)[0],
        Segment {
            start_bus: 0x10,
            ..seg(0xff)[0]
        },
    ];
    let topo = scan(&sim, &segs);
    assert_eq!(topo.problem_count(), 0);
    let p = plan(&topo, 2);
    assert_eq!(p.problems.len(), 1, "{p:?}");
    assert!(
        p.problems[0].contains("past the last usable bus 0x0f"),
        "{}",
        p.problems[0]
    );
    let p = plan(&topo, 0);
    assert!(p.moved.is_empty() && p.problems.is_empty(), "{p:?}");
    assert_eq!(p.bridges.last().map(|b| b.secondary), Some(0x11));
    // Gap 1 fits below 0x10 (00:03.0 ends at 0x0e); the second root's port is numbered
    // from 0x10 on.
    let p = plan(&topo, 1);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.bridges[6].subordinate, 0x0e);
    assert_eq!(
        (p.bridges[7].secondary, p.bridges[7].subordinate),
        (0x11, 0x12)
    );
    let steps = apply(&sim, &topo, &p);
    assert!(steps.iter().all(|(_, ok)| *ok), "{steps:#?}");
    check_applied(&topo, &p, &scan(&sim, &segs));
}

#[test]
fn unconfigured_bridges_get_numbers() {
    // Firmware configured 00:02.0 [01-02] but left 00:01.0 (and the bridge behind it)
    // unconfigured: 00:01.0 takes bus 1, so 00:02.0's hierarchy shifts up while both
    // are siblings -- a naive order would overlap them.
    let sim = SimConfig::new();
    sim.add(
        s(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7001, 0x20, 0x21).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        s(0x20, 0, 0),
        SimDevice::bridge(0x10b5, 0x8700, 0x21, 0x21).pcie(PCIE_TYPE_UPSTREAM),
    );
    sim.add(
        s(0x21, 0, 0),
        SimDevice::endpoint(0x1b36, 0x0010, 0x01_08_02),
    );
    sim.poke32(s(0x20, 0, 0), BUS_NUMBERS, 0);
    sim.poke32(s(0, 1, 0), BUS_NUMBERS, 0);
    sim.add(
        s(0, 2, 0),
        SimDevice::bridge(0x8086, 0x7002, 1, 2).pcie(PCIE_TYPE_ROOT_PORT),
    );
    sim.add(
        s(1, 0, 0),
        SimDevice::bridge(0x104c, 0x8240, 2, 2).pcie(PCIE_TYPE_PCIE_TO_PCI),
    );
    sim.add(s(2, 4, 0), SimDevice::endpoint(0x10ec, 0x8139, 0x02_00_00));
    let topo = scan(&sim, &seg(0xff));
    assert_eq!(topo.functions.len(), 4);
    assert!(topo.all_problems().any(|p| p.contains("not configured")));
    let p = plan(&topo, 0);
    assert_eq!(
        bridge_map(&p),
        [
            ("0000:00:01.0".into(), [0, 1, 1]),
            ("0000:00:02.0".into(), [0, 2, 3]),
            ("0000:02:00.0".into(), [2, 3, 3]),
        ]
    );
    let steps = apply(&sim, &topo, &p);
    assert!(steps.iter().all(|(_, ok)| *ok), "{steps:#?}");
    let after = scan(&sim, &seg(0xff));
    // The upstream port behind 00:01.0 appears, itself unconfigured.
    assert_eq!(after.functions.len(), 5);
    assert!(after.find(s(1, 0, 0)).is_some());
    assert_eq!(after.find(s(3, 4, 0)).map(|f| f.device), Some(0x8139));
    // A second round numbers it too; a third changes nothing.
    let p2 = plan(&after, 0);
    let steps = apply(&sim, &after, &p2);
    assert!(steps.iter().all(|(_, ok)| *ok), "{steps:#?}");
    let last = scan(&sim, &seg(0xff));
    assert_eq!(
        last.problem_count(),
        0,
        "{:?}",
        last.all_problems().collect::<Vec<_>>()
    );
    assert_eq!(last.functions.len(), 6);
    assert_eq!(last.find(s(2, 0, 0)).map(|f| f.device), Some(0x0010));
    assert_eq!(last.find(s(4, 4, 0)).map(|f| f.device), Some(0x8139));
    assert!(plan(&last, 0).moved.is_empty());
}

#[test]
fn apply_stops_when_a_bridge_is_not_where_the_plan_says() {
    let sim = fixture();
    let topo = scan(&sim, &seg(0xff));
    let mut p = plan(&topo, 2);
    // Pretend the PCI bridge was elsewhere.
    let b = p.bridges.iter_mut().find(|b| b.old == s(5, 2, 0)).unwrap();
    b.old = s(5, 3, 0);
    let steps = apply(&sim, &topo, &p);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(
        !steps[0].1 && steps[0].0.contains("0000:05:03.0"),
        "{steps:?}"
    );
}

/// Re-enumerates (read only) after every bus-number write and fails on any overlap or
/// range escape among the bridges reachable at that moment.
struct Watch<'a> {
    sim: &'a SimConfig,
    segs: Vec<Segment>,
    seen: core::cell::RefCell<Vec<String>>,
}

impl ConfigSpace for Watch<'_> {
    fn read32(&self, sbdf: Sbdf, offset: u16) -> u32 {
        self.sim.read32(sbdf, offset)
    }
    fn write32(&self, sbdf: Sbdf, offset: u16, value: u32) {
        self.sim.write32(sbdf, offset, value);
        if offset != BUS_NUMBERS {
            return;
        }
        let opts = EnumOptions {
            size_bars: false,
            ..EnumOptions::default()
        };
        let t = enumerate(self.sim, &self.segs, &opts);
        for p in t.all_problems() {
            if !p.contains("not configured") {
                self.seen
                    .borrow_mut()
                    .push(format!("after {sbdf} <- {value:#x}: {p}"));
            }
        }
    }
}

#[test]
fn no_overlap_or_escape_at_any_step() {
    let sim = fixture();
    let segs = seg(0xff);
    let topo = scan(&sim, &segs);
    let w = Watch {
        sim: &sim,
        segs: segs.clone(),
        seen: Default::default(),
    };
    for gap in [3, 0, 1, 0] {
        let before = scan(&sim, &segs);
        let p = plan(&before, gap);
        let steps = apply(&w, &before, &p);
        assert!(steps.iter().all(|(_, ok)| *ok), "{steps:#?}");
        check_applied(&before, &p, &scan(&sim, &segs));
    }
    assert_eq!(*w.seen.borrow(), Vec::<String>::new());
    assert_eq!(scan(&sim, &segs), topo);
}
