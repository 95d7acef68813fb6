//! Enumeration of a 256-bus, 2059-function simulated segment (`pci::sim::large_tree`), with
//! and without BAR sizing. A plain harness (no criterion: no extra dependencies to build):
//! `cargo bench -p pci` prints min / median / mean per run and the config accesses made,
//! which are what costs on real hardware (each one a trap into Xen).
//!
//! `cargo bench -p pci -- --quick` runs fewer iterations (so does an unoptimised build).

use pci::sim::large_tree;
use pci::{EnumOptions, Segment};
use std::time::{Duration, Instant};

fn main() {
    // `cargo test --benches` runs this unoptimised: a few runs only.
    let quick = cfg!(debug_assertions) || std::env::args().any(|a| a == "--quick");
    let iterations = if quick { 5 } else { 200 };
    let (sim, expect) = large_tree();
    let segs = [Segment {
        segment: 0,
        start_bus: 0,
        end_bus: 0xff,
        ecam: true,
    }];
    println!(
        "pci enumerate: simulated segment, {} buses, {} functions, {} BARs, {iterations} runs each",
        expect.buses,
        expect.functions.len(),
        expect.bars
    );
    for size_bars in [true, false] {
        let opts = EnumOptions {
            size_bars,
            ..EnumOptions::default()
        };
        // Warm up (and check the result once).
        let t = pci::enumerate(&sim, &segs, &opts);
        assert_eq!(t.functions.len(), expect.functions.len());
        assert_eq!(t.problem_count(), 0);
        sim.reset_counts();
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            let t = pci::enumerate(&sim, &segs, &opts);
            times.push(start.elapsed());
            std::hint::black_box(&t);
        }
        assert!(sim.violations().is_empty());
        times.sort();
        let total: Duration = times.iter().sum();
        let runs = iterations as u64;
        println!(
            "  size_bars={size_bars:<5}  min {:>8.3} ms  median {:>8.3} ms  mean {:>8.3} ms  \
             ({} reads, {} writes per run)",
            ms(times[0]),
            ms(times[times.len() / 2]),
            ms(total / iterations as u32),
            sim.reads() / runs,
            sim.writes() / runs
        );
    }
    // The text views over the same topology.
    let t = pci::enumerate(&sim, &segs, &EnumOptions::default());
    let start = Instant::now();
    let tree = pci::tree::tree_text(&t);
    let order = pci::xen_add_order(&t);
    println!(
        "  tree_text + xen_add_order: {:.3} ms ({} lines, {} adds)",
        ms(start.elapsed()),
        tree.lines().count(),
        order.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
