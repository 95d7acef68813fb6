//! BAR allocation against the simulator: plan in every mode, apply with decoding off,
//! verified by reading the hardware back.

mod common;

use common::*;
use pci::assign::{AllocPlan, BarMode, BarMove, Window, apply, plan};
use pci::regs::*;
use pci::sim::{SimBar, SimConfig, SimDevice};
use pci::{BarKind, EnumOptions, Sbdf, Topology, enumerate};
use std::ops::Range;

const MIB: u64 = 1 << 20;
const G4: u64 = 1 << 32;

fn host() -> Vec<Window> {
    vec![
        Window {
            range: 0xc000_0000..0xfec0_0000,
            prefetchable: false,
        },
        Window {
            range: 0x80_0000_0000..0x100_0000_0000,
            prefetchable: true,
        },
    ]
}

fn enumerate_sim(sim: &SimConfig) -> Topology {
    enumerate(sim, &ecam(), &EnumOptions::default())
}

/// Root ports 00:01.0 (switch: 01:00.0 up, 02:00.0/02:01.0 down, endpoints on 03 and 04)
/// and 00:02.0 (endpoint on 05), an endpoint on bus 0; firmware placement bottom-up,
/// decoding on everywhere.
fn machine() -> SimConfig {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x8086, 0x7001, 1, 4)
            .pcie(PCIE_TYPE_ROOT_PORT)
            .command(ON),
    );
    sim.add(
        sbdf(1, 0, 0),
        SimDevice::bridge(0x10b5, 0x8796, 2, 4)
            .bar(0, SimBar::mem32(0x4000, 0xc000_0000))
            .pcie(PCIE_TYPE_UPSTREAM)
            .command(ON),
    );
    sim.add(
        sbdf(2, 0, 0),
        SimDevice::bridge(0x10b5, 0x8796, 3, 3)
            .pcie(PCIE_TYPE_DOWNSTREAM)
            .command(ON),
    );
    sim.add(
        sbdf(2, 1, 0),
        SimDevice::bridge(0x10b5, 0x8796, 4, 4)
            .pcie(PCIE_TYPE_DOWNSTREAM)
            .command(ON),
    );
    sim.add(
        sbdf(3, 0, 0),
        SimDevice::endpoint(0x15b3, 0x1017, 0x02_00_00)
            .command(ON)
            .bar(0, SimBar::mem64(0x1000_0000, 0x80_0000_0000).prefetchable())
            .bar(2, SimBar::mem32(0x1_0000, 0xc010_0000))
            .bar(4, SimBar::mem64(0x4000, 0x80_1000_0000).prefetchable())
            .pcie(PCIE_TYPE_ENDPOINT),
    );
    sim.add(
        sbdf(4, 0, 0),
        SimDevice::endpoint(0x8086, 0x1533, 0x02_00_00)
            .command(ON)
            .bar(0, SimBar::mem32(0x10_0000, 0xc020_0000))
            .bar(1, SimBar::io(0x20, 0xe000))
            .bar(2, SimBar::mem64(0x20_0000, 0x80_1020_0000).prefetchable())
            .pcie(PCIE_TYPE_ENDPOINT),
    );
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::bridge(0x8086, 0x7002, 5, 5)
            .pcie(PCIE_TYPE_ROOT_PORT)
            .command(ON),
    );
    sim.add(
        sbdf(5, 0, 0),
        SimDevice::endpoint(0x1af4, 0x1041, 0x02_00_00)
            .command(ON)
            .bar(0, SimBar::mem32(0x1000, 0xc030_0000))
            .bar(1, SimBar::mem32(0x2000, 0xc030_2000))
            .bar(2, SimBar::mem64(0x80_0000, 0x80_1080_0000).prefetchable())
            .bar(4, SimBar::mem64(0x4000, 0xc030_4000))
            .rom(0x4_0000, 0xc034_0000, false)
            .pcie(PCIE_TYPE_ENDPOINT),
    );
    sim.add(
        sbdf(0, 0x1f, 0),
        SimDevice::endpoint(0x8086, 0x2922, 0x01_06_01)
            .command(ON)
            .bar(5, SimBar::mem32(0x1000, 0xc040_0000)),
    );
    sim
}

/// Every memory BAR (not ROMs) of the topology: (sbdf, index, kind, pref, address, size).
fn mem_bars(t: &Topology) -> Vec<(Sbdf, u8, BarKind, bool, u64, u64)> {
    let mut v = Vec::new();
    for f in &t.functions {
        for b in &f.bars {
            if matches!(b.kind, BarKind::Mem32 | BarKind::Mem64) {
                v.push((f.sbdf, b.index, b.kind, b.prefetchable, b.address, b.size));
            }
        }
    }
    v
}

fn inside(outer: &Range<u64>, a: u64, size: u64) -> bool {
    outer.start <= a && a + size <= outer.end
}

fn overlap(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The final address of every memory BAR under `p`.
fn final_addresses(t: &Topology, p: &AllocPlan) -> Vec<(Sbdf, u8, BarKind, bool, u64, u64)> {
    mem_bars(t)
        .into_iter()
        .map(|(s, i, k, pf, a, size)| {
            let new = p
                .moves
                .iter()
                .find(|m| m.sbdf == s && m.bar == i)
                .map_or(a, |m| m.new);
            (s, i, k, pf, new, size)
        })
        .collect()
}

/// Placement invariants: alignment, 32-bit below 4 GiB, inside every bridge window above
/// (matching pool) and no other, windows 1 MiB granular, nested, siblings apart, root
/// windows in the host windows, no overlaps.
fn check_placement(t: &Topology, windows: &[Window], p: &AllocPlan) {
    let finals = final_addresses(t, p);
    let index: std::collections::HashMap<Sbdf, usize> = t
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| (f.sbdf, i))
        .collect();
    let bridge: std::collections::HashMap<Sbdf, usize> = p
        .bridges
        .iter()
        .enumerate()
        .map(|(i, b)| (b.sbdf, i))
        .collect();
    let win = |s: Sbdf| &p.bridges[bridge[&s]];
    for &(s, i, kind, pref, a, size) in &finals {
        assert_eq!(a % size, 0, "{s} BAR{i} {a:#x} not aligned to {size:#x}");
        if kind == BarKind::Mem32 || !pref {
            assert!(a + size <= G4, "{s} BAR{i} {a:#x} above 4 GiB");
        }
        let f = &t.functions[index[&s]];
        let mut up = f.parent;
        if up.is_none() {
            assert!(
                windows.iter().any(|w| inside(&w.range, a, size)),
                "{s} BAR{i} {a:#x} outside host windows"
            );
        }
        while let Some(b) = up {
            let bw = win(t.functions[b].sbdf);
            let w = if kind == BarKind::Mem64 && pref {
                bw.pref.clone()
            } else {
                bw.mem.clone()
            };
            let w = w.unwrap_or_else(|| panic!("{s} BAR{i}: bridge {} has no window", bw.sbdf));
            assert!(
                inside(&w, a, size),
                "{s} BAR{i} {a:#x} outside {} {w:x?}",
                bw.sbdf
            );
            up = t.functions[b].parent;
        }
        // Not inside a window of a bridge that is not above it.
        for bw in &p.bridges {
            let bi = index[&bw.sbdf];
            let mut above = false;
            let mut up = f.parent;
            while let Some(b) = up {
                above |= b == bi;
                up = t.functions[b].parent;
            }
            if !above {
                for w in bw.mem.iter().chain(bw.pref.iter()) {
                    assert!(
                        !overlap(w, &(a..a + size)),
                        "{s} BAR{i} in {} {w:x?}",
                        bw.sbdf
                    );
                }
            }
        }
    }
    for (n, x) in finals.iter().enumerate() {
        for y in &finals[n + 1..] {
            assert!(
                !overlap(&(x.4..x.4 + x.5), &(y.4..y.4 + y.5)),
                "{x:x?} overlaps {y:x?}"
            );
        }
    }
    for bw in &p.bridges {
        let bi = index[&bw.sbdf];
        for (w, is_pref) in [(&bw.mem, false), (&bw.pref, true)] {
            let Some(w) = w else { continue };
            assert!(w.start < w.end);
            assert_eq!(w.start % MIB, 0, "{} {w:x?}", bw.sbdf);
            assert_eq!(w.end % MIB, 0, "{} {w:x?}", bw.sbdf);
            if !is_pref {
                assert!(w.end <= G4);
            }
            match t.functions[bi].parent {
                None => assert!(
                    windows
                        .iter()
                        .any(|h| inside(&h.range, w.start, w.end - w.start))
                ),
                Some(pb) => {
                    let pw = win(t.functions[pb].sbdf);
                    let outer = if is_pref { &pw.pref } else { &pw.mem };
                    let outer = outer.as_ref().unwrap();
                    assert!(
                        inside(outer, w.start, w.end - w.start),
                        "{} not nested",
                        bw.sbdf
                    );
                }
            }
            // Siblings apart (any pool).
            for other in &p.bridges {
                let oi = index[&other.sbdf];
                if oi != bi && t.functions[oi].parent == t.functions[bi].parent {
                    for ow in other.mem.iter().chain(other.pref.iter()) {
                        assert!(!overlap(w, ow), "{} and {} overlap", bw.sbdf, other.sbdf);
                    }
                }
            }
        }
    }
}

/// Applies `p` and checks every step, the hardware's readback and the violations.
fn apply_and_verify(sim: &SimConfig, t: &Topology, p: &AllocPlan) {
    let cmds: Vec<u32> = t
        .functions
        .iter()
        .map(|f| sim.peek32(f.sbdf, COMMAND) & 0xffff)
        .collect();
    let steps = apply(sim, t, p);
    for s in &steps {
        assert!(s.ok, "{s:?}");
    }
    assert_eq!(
        steps.len(),
        p.moves.len() + 2 * p.bridges.len(),
        "{steps:#?}"
    );
    assert_eq!(sim.violations(), Vec::<String>::new());
    // COMMAND restored.
    for (f, c) in t.functions.iter().zip(cmds) {
        assert_eq!(sim.peek32(f.sbdf, COMMAND) & 0xffff, c, "{}", f.sbdf);
    }
    // Re-enumerate: the BARs are where the plan says.
    let again = enumerate_sim(sim);
    assert_eq!(sim.violations(), Vec::<String>::new());
    assert_eq!(final_addresses(t, p), mem_bars(&again));
    // Bridge windows read back.
    for bw in &p.bridges {
        let mem = sim.peek32(bw.sbdf, 0x20);
        match &bw.mem {
            Some(w) => {
                assert_eq!(u64::from(mem & 0xfff0) << 16, w.start);
                assert_eq!((u64::from(mem >> 16 & 0xfff0) << 16) + MIB, w.end);
            }
            None => assert!(mem & 0xfff0 > mem >> 16 & 0xfff0),
        }
        let lo = sim.peek32(bw.sbdf, 0x24);
        assert_eq!(lo & 0xf, 1, "64-bit type nibble");
        let (bh, lh) = (
            u64::from(sim.peek32(bw.sbdf, 0x28)),
            u64::from(sim.peek32(bw.sbdf, 0x2c)),
        );
        match &bw.pref {
            Some(w) => {
                assert_eq!(bh << 32 | u64::from(lo & 0xfff0) << 16, w.start);
                assert_eq!((lh << 32 | u64::from(lo >> 16 & 0xfff0) << 16) + MIB, w.end);
            }
            None => {
                assert!(bh << 32 | u64::from(lo & 0xfff0) > lh << 32 | u64::from(lo >> 16 & 0xfff0))
            }
        }
    }
}

#[test]
fn all_moves_every_memory_bar() {
    let sim = machine();
    let t = enumerate_sim(&sim);
    assert_eq!(
        t.problem_count(),
        0,
        "{:?}",
        t.all_problems().collect::<Vec<_>>()
    );
    let p = plan(&t, &host(), BarMode::All);
    assert_eq!(p.problems, Vec::<String>::new());
    let bars = mem_bars(&t);
    assert_eq!(bars.len(), 11);
    assert_eq!(p.moves.len(), bars.len(), "{:#x?}", p.moves);
    for m in &p.moves {
        assert_ne!(m.new, m.old, "{m:x?}");
        assert!(matches!(m.kind, BarKind::Mem32 | BarKind::Mem64));
    }
    // 64-bit prefetchable BARs go above 4 GiB (a window is there), the rest below.
    for m in &p.moves {
        let (.., pref, _, _) = bars.iter().find(|b| b.0 == m.sbdf && b.1 == m.bar).unwrap();
        assert_eq!(m.new >= G4, *pref && m.kind == BarKind::Mem64, "{m:x?}");
    }
    assert_eq!(p.bridges.len(), 5);
    check_placement(&t, &host(), &p);
    // The switch's windows nest in the root port's.
    let rp = &p.bridges[0];
    assert_eq!(rp.sbdf, sbdf(0, 1, 0));
    assert!(rp.mem.is_some() && rp.pref.is_some());
    apply_and_verify(&sim, &t, &p);
    // A second All from the new placement moves everything again.
    let t2 = enumerate_sim(&sim);
    let p2 = plan(&t2, &host(), BarMode::All);
    assert_eq!(p2.problems, Vec::<String>::new());
    assert_eq!(p2.moves.len(), 11);
    assert!(p2.moves.iter().all(|m| m.new != m.old));
    check_placement(&t2, &host(), &p2);
    apply_and_verify(&sim, &t2, &p2);
}

#[test]
fn all_without_a_high_window_stays_below_4g() {
    let sim = machine();
    let t = enumerate_sim(&sim);
    let low = vec![Window {
        range: 0x8000_0000..0xfec0_0000,
        prefetchable: false,
    }];
    let p = plan(&t, &low, BarMode::All);
    assert_eq!(p.problems, Vec::<String>::new());
    assert_eq!(p.moves.len(), 11);
    assert!(
        p.moves
            .iter()
            .all(|m| m.new + m.size <= G4 && m.new != m.old)
    );
    check_placement(&t, &low, &p);
    apply_and_verify(&sim, &t, &p);
}

#[test]
fn all_tight_window_still_moves_everything() {
    // The window is exactly what firmware used plus one slot: top-down placement moves.
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 3, 0),
        SimDevice::endpoint(0x1af4, 0x1041, 0x02_00_00)
            .command(ON)
            .bar(0, SimBar::mem32(0x1000, 0xc000_0000))
            .bar(1, SimBar::mem32(0x1000, 0xc000_1000)),
    );
    let t = enumerate_sim(&sim);
    let w = vec![Window {
        range: 0xc000_0000..0xc000_2000,
        prefetchable: false,
    }];
    let p = plan(&t, &w, BarMode::All);
    assert_eq!(p.problems, Vec::<String>::new());
    assert_eq!(p.moves.len(), 2);
    assert!(p.moves.iter().all(|m| m.new != m.old), "{:x?}", p.moves);
    check_placement(&t, &w, &p);
    apply_and_verify(&sim, &t, &p);
    // One BAR in a window of exactly its size cannot move: a problem, no panic.
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 3, 0),
        SimDevice::endpoint(0x1af4, 0x1041, 0x02_00_00).bar(0, SimBar::mem32(0x1000, 0xc000_0000)),
    );
    let t = enumerate_sim(&sim);
    let w = vec![Window {
        range: 0xc000_0000..0xc000_1000,
        prefetchable: false,
    }];
    let p = plan(&t, &w, BarMode::All);
    assert_eq!(p.problems.len(), 1, "{:?}", p.problems);
    assert!(p.problems[0].contains("0000:00:03.0 BAR0 (size 0x1000) keeps its address"));
}

#[test]
fn keep_moves_nothing_and_reports_windows() {
    let sim = machine();
    let t = enumerate_sim(&sim);
    let p = plan(&t, &host(), BarMode::Keep);
    assert_eq!(p.moves, Vec::<BarMove>::new());
    assert_eq!(p.problems, Vec::<String>::new());
    let rp = &p.bridges[0];
    assert_eq!(rp.sbdf, sbdf(0, 1, 0));
    assert_eq!(rp.mem, Some(0xc000_0000..0xc030_0000));
    assert_eq!(rp.pref, Some(0x80_0000_0000..0x80_1040_0000));
    let rp2 = p.bridges.iter().find(|b| b.sbdf == sbdf(0, 2, 0)).unwrap();
    assert_eq!(rp2.mem, Some(0xc030_0000..0xc040_0000));
    assert_eq!(rp2.pref, Some(0x80_1080_0000..0x80_1100_0000));
    check_placement(&t, &host(), &p);
    apply_and_verify(&sim, &t, &p);
}

#[test]
fn unassigned_moves_only_bad_bars() {
    let sim = machine();
    // 05:00.0 BAR1 unassigned, 03:00.0 BAR2 overlapping 04:00.0 BAR0 (the smaller moves),
    // 00:1f.0 BAR5 outside every window.
    sim.poke32(sbdf(5, 0, 0), 0x14, 0);
    sim.poke32(sbdf(3, 0, 0), 0x18, 0xc020_0000);
    sim.poke32(sbdf(0, 0x1f, 0), 0x24, 0x1000_0000);
    let t = enumerate_sim(&sim);
    let p = plan(&t, &host(), BarMode::Unassigned);
    assert_eq!(p.problems, Vec::<String>::new());
    let moved: Vec<(Sbdf, u8)> = p.moves.iter().map(|m| (m.sbdf, m.bar)).collect();
    assert_eq!(
        moved,
        [
            (sbdf(0, 0x1f, 0), 5),
            (sbdf(3, 0, 0), 2),
            (sbdf(5, 0, 0), 1)
        ],
        "{:#x?}",
        p.moves
    );
    check_placement(&t, &host(), &p);
    // The unassigned BAR lands in its root port's existing window (no growth needed).
    let m = p.moves.iter().find(|m| m.sbdf == sbdf(5, 0, 0)).unwrap();
    assert!(inside(&(0xc030_0000..0xc040_0000), m.new, m.size), "{m:x?}");
    apply_and_verify(&sim, &t, &p);
    // Afterwards nothing is bad.
    let t2 = enumerate_sim(&sim);
    let p2 = plan(&t2, &host(), BarMode::Unassigned);
    assert_eq!(p2.moves, Vec::<BarMove>::new());
    assert_eq!(p2.problems, Vec::<String>::new());
}

#[test]
fn window_too_small_is_a_problem() {
    let sim = machine();
    let t = enumerate_sim(&sim);
    let tiny = vec![
        Window {
            range: 0xc000_0000..0xc080_0000,
            prefetchable: false,
        },
        Window {
            range: 0x80_0000_0000..0x80_0100_0000,
            prefetchable: true,
        },
    ];
    let p = plan(&t, &tiny, BarMode::All);
    assert!(!p.problems.is_empty());
    let all = p.problems.join("\n");
    // Root port 00:01.0's prefetchable window needs 260 MiB (256 MiB + 16 KiB, 2 MiB).
    assert!(
        all.contains("0000:00:01.0 prefetchable window (size 0x10400000) does not fit"),
        "{all}"
    );
    assert!(all.contains("0000:03:00.0 BAR0 size 0x10000000"), "{all}");
    // What fits still moves, and the placement is consistent.
    assert!(!p.moves.is_empty());
    for m in &p.moves {
        assert!(
            tiny.iter().any(|w| inside(&w.range, m.new, m.size)),
            "{m:x?}"
        );
    }
    // What stays is where firmware put it, inside the wider windows.
    check_placement(&t, &host(), &p);
    apply_and_verify(&sim, &t, &p);
    // Unassigned with no room for an unassigned BAR.
    sim.poke32(sbdf(5, 0, 0), 0x14, 0);
    let t = enumerate_sim(&sim);
    let none = vec![Window {
        range: 0xc000_0000..0xc000_1000,
        prefetchable: false,
    }];
    let p = plan(&t, &none, BarMode::Unassigned);
    assert!(
        p.problems
            .iter()
            .any(|s| s.contains("0000:05:00.0 BAR1 (memory, size 0x2000, at 0x0) does not fit")),
        "{:#?}",
        p.problems
    );
}

#[test]
fn hostile_sizes_do_not_panic() {
    let sim = machine();
    let mut t = enumerate_sim(&sim);
    let weird = [
        (0u64, 0u64),
        (3, 0x1000),
        (1 << 63, 0),
        (u64::MAX, u64::MAX - 4),
        (1 << 40, 0xc000_0000),
        (0x1000, !0xfff),
    ];
    let mut n = 0;
    for f in &mut t.functions {
        for b in &mut f.bars {
            if b.kind.is_memory() {
                let (size, address) = weird[n % weird.len()];
                b.size = size;
                b.address = address;
                n += 1;
            }
        }
    }
    for mode in [BarMode::Keep, BarMode::Unassigned, BarMode::All] {
        for w in [
            host(),
            vec![],
            vec![Window {
                range: 0..u64::MAX,
                prefetchable: false,
            }],
        ] {
            let p = plan(&t, &w, mode);
            for m in &p.moves {
                assert!(m.size.is_power_of_two() && m.new % m.size == 0, "{m:x?}");
            }
        }
    }
    // A parent index pointing anywhere.
    let mut t2 = enumerate_sim(&sim);
    for (i, f) in t2.functions.iter_mut().enumerate() {
        f.parent = Some(i + 3);
    }
    let _ = plan(&t2, &host(), BarMode::All);
}

#[test]
fn verify_mismatch_is_reported() {
    let sim = machine();
    let t = enumerate_sim(&sim);
    let p = AllocPlan {
        moves: vec![BarMove {
            sbdf: sbdf(5, 0, 0),
            bar: 0,
            kind: BarKind::Mem32,
            size: 0x1000,
            old: 0xc030_0000,
            new: 0xc031_0800, // not aligned: the low bits are hardwired
        }],
        ..AllocPlan::default()
    };
    let steps = apply(&sim, &t, &p);
    assert_eq!(steps.len(), 1);
    assert!(!steps[0].ok);
    assert_eq!(steps[0].what, "0000:05:00.0 BAR0 0xc0300000 -> 0xc0310800");
    assert!(steps[0].detail.contains("0xc0310800") && steps[0].detail.contains("0xc0310000"));
    assert_eq!(sim.violations(), Vec::<String>::new());
    // Decoding that cannot be turned off: nothing written.
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 3, 0),
        SimDevice::endpoint(0x1af4, 0x1041, 0x02_00_00)
            .command(ON)
            .bar(0, SimBar::mem32(0x1000, 0xc000_0000)),
    );
    let t = enumerate_sim(&sim);
    sim.poke32(sbdf(0, 3, 0), COMMAND, u32::from(ON));
    let p = plan(&t, &host(), BarMode::All);
    let sim2 = SimConfig::new();
    sim2.add(
        sbdf(0, 3, 0),
        SimDevice::endpoint(0x1af4, 0x1041, 0x02_00_00)
            .command(ON)
            .command_readonly()
            .bar(0, SimBar::mem32(0x1000, 0xc000_0000)),
    );
    let steps = apply(&sim2, &t, &p);
    assert_eq!(steps.len(), 1);
    assert!(
        !steps[0].ok && steps[0].detail.contains("decode stays on"),
        "{steps:?}"
    );
    assert_eq!(sim2.violations(), Vec::<String>::new());
}

#[test]
fn large_tree_all_then_unassigned() {
    let (sim, _) = pci::sim::large_tree();
    let t = enumerate_sim(&sim);
    let p = plan(&t, &host(), BarMode::All);
    assert_eq!(p.problems, Vec::<String>::new());
    assert_eq!(p.moves.len(), mem_bars(&t).len());
    assert!(p.moves.iter().all(|m| m.new != m.old));
    check_placement(&t, &host(), &p);
    apply_and_verify(&sim, &t, &p);
    let t2 = enumerate_sim(&sim);
    let p2 = plan(&t2, &host(), BarMode::Unassigned);
    assert_eq!(p2.problems, Vec::<String>::new());
    assert_eq!(p2.moves, Vec::<BarMove>::new());
}
