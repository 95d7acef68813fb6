//! Memory BAR (re)allocation: [`plan`] where every memory BAR and every bridge window
//! should go, and [`apply`] the plan with decoding off.
//!
//! Two pools of memory space: the non-prefetchable one (32-bit and non-prefetchable BARs,
//! bridge memory windows, below 4 GiB) and the prefetchable one (64-bit prefetchable BARs,
//! bridge prefetchable windows, above 4 GiB if a host window is there). I/O BARs, VF BARs and
//! expansion ROMs are never moved; they are obstacles and are checked.
//!
//! - [`BarMode::All`] relays everything out hierarchically: each bridge's window sizes bottom
//!   up (aligned children, largest alignment first, rounded to 1 MiB and to the window's
//!   alignment), then top-down placement from the top of each window, so every BAR gets an
//!   address different from firmware's (which fills bottom-up); at the host level the next
//!   slot down is taken while any BAR would keep its address.
//! - [`BarMode::Unassigned`] keeps every good BAR and places the bad ones (address 0,
//!   overlapping another, outside every host window) in free space, growing bridge windows
//!   only where that claims nothing of a sibling's.
//! - [`BarMode::Keep`] moves nothing and reports the windows the current placement needs.
//!
//! Nothing panics: what does not fit becomes a problem naming the BAR and its size.

use crate::model::BarKind;
use crate::regs::*;
use crate::{ConfigSpace, FunctionKind, Sbdf, Topology};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

mod planner;
mod program;

pub use program::apply;

const MIB: u64 = 1 << 20;
const FOUR_GIB: u64 = 1 << 32;

/// Which BARs [`plan`] moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarMode {
    /// None; report the bridge windows the current placement needs.
    Keep,
    /// Those unassigned (address 0), overlapping another BAR, or outside every host window.
    Unassigned,
    /// Every memory BAR, to an address different from the old one; every bridge window.
    All,
}

/// A host bridge (root bus) memory window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub range: Range<u64>,
    /// May hold prefetchable BARs only (a pref-only window); non-prefetchable BARs go below
    /// 4 GiB in windows without it.
    pub prefetchable: bool,
}

/// One BAR to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BarMove {
    pub sbdf: Sbdf,
    /// BAR index (the low slot of a 64-bit pair); 6 is the expansion ROM.
    pub bar: u8,
    pub kind: BarKind,
    pub size: u64,
    pub old: u64,
    pub new: u64,
}

/// A bridge's memory windows (`None`: closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeWindows {
    pub sbdf: Sbdf,
    /// 1 MiB granular, below 4 GiB.
    pub mem: Option<Range<u64>>,
    /// 1 MiB granular, 64-bit.
    pub pref: Option<Range<u64>>,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllocPlan {
    pub moves: Vec<BarMove>,
    /// Every bridge, top-down (topological order).
    pub bridges: Vec<BridgeWindows>,
    pub problems: Vec<String>,
}

/// One step of [`apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pool {
    Mem,
    Pref,
}

impl Pool {
    fn name(self) -> &'static str {
        match self {
            Pool::Mem => "memory",
            Pool::Pref => "prefetchable",
        }
    }
}

/// A memory region: a BAR, an expansion ROM or a PF's VF BAR (all VFs).
#[derive(Debug, Clone)]
struct Region {
    sbdf: Sbdf,
    bar: u8,
    kind: BarKind,
    size: u64,
    old: u64,
    pool: Pool,
    /// Topology index of the bridge whose secondary side it is on (`None`: a root bus).
    owner: Option<usize>,
    /// A memory BAR with a usable size: may move.
    movable: bool,
    /// Chosen to move.
    moving: bool,
    /// Where it is (or will be); `None` while unplaced.
    at: Option<u64>,
    name: String,
}

impl Region {
    fn range(&self) -> Option<Range<u64>> {
        let a = self.at?;
        Some(a..a.checked_add(self.size)?)
    }
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

fn contains(outer: &Range<u64>, inner: &Range<u64>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

fn align_down(v: u64, a: u64) -> u64 {
    v & !(a - 1)
}

/// 1 MiB-granular hull of `r`.
fn mib_hull(r: &Range<u64>) -> Option<Range<u64>> {
    Some(align_down(r.start, MIB)..align_up(r.end, MIB)?)
}

fn union(a: Option<Range<u64>>, b: &Range<u64>) -> Range<u64> {
    match a {
        Some(a) => a.start.min(b.start)..a.end.max(b.end),
        None => b.clone(),
    }
}

struct Planner<'a> {
    topo: &'a Topology,
    regions: Vec<Region>,
    /// Topology indices of the bridges (VFs excluded), topological order.
    bridges: Vec<usize>,
    /// Per topology index: the bridge above (None for roots).
    parent: Vec<Option<usize>>,
    /// Windows per topology index (only bridges' entries are used): [mem, pref].
    win: Vec<[Option<Range<u64>>; 2]>,
    /// Host windows usable per pool, ordered by preference.
    host: [Vec<Range<u64>>; 2],
    problems: Vec<String>,
}

fn pi(p: Pool) -> usize {
    match p {
        Pool::Mem => 0,
        Pool::Pref => 1,
    }
}

/// Plans where every memory BAR and bridge window goes; see the module documentation.
pub fn plan(topo: &Topology, windows: &[Window], mode: BarMode) -> AllocPlan {
    let mut p = Planner::new(topo, windows);
    match mode {
        BarMode::Keep => {}
        BarMode::Unassigned => p.pick_bad(),
        BarMode::All => {
            for r in &mut p.regions {
                r.moving = r.movable;
            }
        }
    }
    if mode == BarMode::All {
        p.structured();
    } else {
        for r in &mut p.regions {
            r.at = (!r.moving && r.old != 0).then_some(r.old);
        }
        p.hulls();
        p.incremental();
    }
    p.check();
    let mut plan = AllocPlan::default();
    for r in &p.regions {
        if r.moving
            && let Some(new) = r.at
        {
            plan.moves.push(BarMove {
                sbdf: r.sbdf,
                bar: r.bar,
                kind: r.kind,
                size: r.size,
                old: r.old,
                new,
            });
        }
    }
    lean::sort_by_key(&mut plan.moves, |m| (m.sbdf, m.bar));
    for &b in &p.bridges {
        let [mem, pref] = p.win[b].clone();
        plan.bridges.push(BridgeWindows {
            sbdf: topo.functions[b].sbdf,
            mem,
            pref,
        });
    }
    plan.problems = p.problems;
    plan
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Leaf(usize),
    Bridge(usize),
}

#[derive(Debug, Clone, Copy)]
enum Placed {
    Leaf(usize),
    /// Bridge, window size.
    Window(usize, u64),
}

#[derive(Debug, Clone, Copy)]
struct Child {
    item: Item,
    size: u64,
    align: u64,
}

/// Packs `kids` from offset 0, largest alignment first: (end, largest alignment); `None` on
/// overflow.
fn pack(kids: &[Child]) -> Option<(u64, u64)> {
    let mut sorted: Vec<&Child> = kids.iter().collect();
    lean::sort_by_key(&mut sorted, |c| core::cmp::Reverse(c.align));
    let mut off = 0u64;
    let mut align = 1;
    for c in sorted {
        off = align_up(off, c.align)?.checked_add(c.size)?;
        align = align.max(c.align);
    }
    Some((off, align))
}

fn problem(list: &mut Vec<String>, text: String) {
    crate::problem(list, text);
}
