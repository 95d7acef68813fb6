//! Checks on an enumerated topology: BARs that overlap each other, and memory BARs outside every
//! host bridge window. Each finding is a problem on the function that owns the BAR.

use crate::model::{Bar, BarKind, Function, Topology};
use crate::problem;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

/// Which BAR of a function a range came from.
#[derive(Debug, Clone, Copy)]
enum Which {
    Bar(usize),
    Rom,
    VfBar(usize),
}

fn bar_mut(f: &mut Function, which: Which) -> Option<&mut Bar> {
    match which {
        Which::Bar(i) => f.bars.get_mut(i),
        Which::Rom => f.rom.as_mut(),
        Which::VfBar(i) => f.sriov.as_mut().and_then(|s| s.vf_bars.get_mut(i)),
    }
}

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    function: usize,
    which: Which,
}

/// The decoded ranges of every function's BARs (VF BARs as the PF's whole aperture for
/// TotalVFs; VFs themselves skipped), memory and I/O apart.
fn spans(topo: &Topology) -> (Vec<Span>, Vec<Span>) {
    let mut mem = Vec::new();
    let mut io = Vec::new();
    for (i, f) in topo.functions.iter().enumerate() {
        if f.is_vf() {
            continue;
        }
        let mut add = |b: &Bar, which: Which, count: u64| {
            if b.size == 0 || b.address == 0 {
                return;
            }
            let span = Span {
                start: b.address,
                end: b.address.saturating_add(b.size.saturating_mul(count)),
                function: i,
                which,
            };
            if b.kind == BarKind::Io {
                io.push(span);
            } else {
                mem.push(span);
            }
        };
        for (j, b) in f.bars.iter().enumerate() {
            add(b, Which::Bar(j), 1);
        }
        if let Some(rom) = &f.rom
            && rom.enabled
        {
            add(rom, Which::Rom, 1);
        }
        if let Some(s) = &f.sriov {
            for (j, b) in s.vf_bars.iter().enumerate() {
                add(b, Which::VfBar(j), u64::from(s.total_vfs.max(1)));
            }
        }
    }
    (mem, io)
}

fn describe(topo: &Topology, s: &Span) -> String {
    let f = &topo.functions[s.function];
    let what = match s.which {
        Which::Bar(i) => f
            .bars
            .get(i)
            .map(|b| format!("BAR {} ({:#x})", b.index, b.offset)),
        Which::Rom => f.rom.as_ref().map(|b| format!("ROM ({:#x})", b.offset)),
        Which::VfBar(i) => f
            .sriov
            .as_ref()
            .and_then(|s| s.vf_bars.get(i))
            .map(|b| format!("VF BAR {} ({:#x}) for all VFs", b.index, b.offset)),
    };
    format!(
        "{} {} [{:#x}-{:#x}]",
        f.sbdf,
        what.unwrap_or_default(),
        s.start,
        s.end.saturating_sub(1)
    )
}

fn flag(topo: &mut Topology, s: &Span, text: String) {
    let f = &mut topo.functions[s.function];
    if let Some(b) = bar_mut(f, s.which) {
        b.problems.push(text.clone());
    }
    problem(&mut f.problems, text);
}

/// Flags BARs that overlap each other (within a function or across functions).
pub(crate) fn check_overlaps(topo: &mut Topology) {
    let (mut mem, mut io) = spans(topo);
    for (list, space) in [(&mut mem, "memory"), (&mut io, "I/O")] {
        lean::sort_by_key(list, |s| (s.start, s.end));
        let mut widest: Option<Span> = None;
        for s in list.iter() {
            if let Some(w) = widest {
                if s.start < w.end {
                    let (a, b) = (describe(topo, s), describe(topo, &w));
                    flag(topo, s, format!("{a} overlaps {b} in {space} space"));
                    flag(topo, &w, format!("{b} overlaps {a} in {space} space"));
                }
                if s.end > w.end {
                    widest = Some(*s);
                }
            } else {
                widest = Some(*s);
            }
        }
    }
}

/// Flags every memory BAR (the ROM if enabled; a PF's VF BARs for TotalVFs) that is not
/// inside one of `windows` (the host bridges' memory windows, from ACPI `_CRS` or the
/// firmware's e820 holes). I/O BARs are not checked. Each call adds its own problems.
pub fn check_bars(topo: &mut Topology, windows: &[Range<u64>]) {
    let (mem, _) = spans(topo);
    for s in &mem {
        if windows.iter().any(|w| w.start <= s.start && s.end <= w.end) {
            continue;
        }
        let text = format!("{} is outside every host bridge window", describe(topo, s));
        flag(topo, s, text);
    }
}
