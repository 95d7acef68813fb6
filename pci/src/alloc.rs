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

use crate::bar::BarKind;
use crate::regs::*;
use crate::{ConfigSpace, FunctionKind, Sbdf, Topology};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

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
    plan.moves.sort_by_key(|m| (m.sbdf, m.bar));
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

impl<'a> Planner<'a> {
    fn new(topo: &'a Topology, windows: &[Window]) -> Planner<'a> {
        let n = topo.functions.len();
        let mut parent = vec![None; n];
        let mut bridges = Vec::new();
        for (i, f) in topo.functions.iter().enumerate() {
            // A parent index that is not an earlier bridge is ignored (hostile topology).
            parent[i] = f
                .parent
                .filter(|&p| p < i && topo.functions[p].is_bridge() && !topo.functions[p].is_vf());
            if f.is_bridge() && !f.is_vf() {
                bridges.push(i);
            }
        }
        let mut regions = Vec::new();
        let mut problems = Vec::new();
        for (i, f) in topo.functions.iter().enumerate() {
            if f.is_vf() {
                continue;
            }
            let layout_ok = matches!(f.kind, FunctionKind::Endpoint | FunctionKind::Bridge { .. });
            for b in f.bars.iter().chain(f.rom.iter()) {
                // A disabled expansion ROM decodes nothing: neither moved nor in the way.
                if !b.kind.is_memory() || (b.kind == BarKind::Rom && !b.enabled) {
                    continue;
                }
                let pow2 = b.size.is_power_of_two() && b.size >= 16;
                let fits = match b.kind {
                    BarKind::Mem64 => true,
                    _ => b.size <= FOUR_GIB / 2,
                };
                let movable = layout_ok && pow2 && fits;
                if b.kind != BarKind::Rom && b.size != 0 && !(pow2 && fits) {
                    problem(
                        &mut problems,
                        format!(
                            "{} BAR{}: size {:#x} cannot be placed; kept",
                            f.sbdf, b.index, b.size
                        ),
                    );
                }
                let pool = if b.kind == BarKind::Mem64 && b.prefetchable {
                    Pool::Pref
                } else {
                    Pool::Mem
                };
                regions.push(Region {
                    sbdf: f.sbdf,
                    bar: b.index,
                    kind: b.kind,
                    size: b.size,
                    old: b.address,
                    pool,
                    owner: parent[i],
                    movable,
                    moving: false,
                    at: None,
                    name: if b.kind == BarKind::Rom {
                        format!("{} ROM", f.sbdf)
                    } else {
                        format!("{} BAR{}", f.sbdf, b.index)
                    },
                });
            }
            if let Some(s) = &f.sriov {
                let count = u64::from(s.num_vfs.min(s.total_vfs));
                for b in &s.vf_bars {
                    if !b.kind.is_memory() || count == 0 || b.address == 0 {
                        continue;
                    }
                    regions.push(Region {
                        sbdf: f.sbdf,
                        bar: b.index,
                        kind: b.kind,
                        size: b.size.saturating_mul(count),
                        old: b.address,
                        pool: if b.kind == BarKind::Mem64 && b.prefetchable {
                            Pool::Pref
                        } else {
                            Pool::Mem
                        },
                        owner: parent[i],
                        movable: false,
                        moving: false,
                        at: None,
                        name: format!("{} VF BAR{}", f.sbdf, b.index),
                    });
                }
            }
        }
        let mut mem = Vec::new();
        let mut high = Vec::new();
        let mut low = Vec::new();
        for w in windows {
            let r = &w.range;
            if r.start >= r.end {
                continue;
            }
            let lo = r.start..r.end.min(FOUR_GIB);
            let hi = r.start.max(FOUR_GIB)..r.end;
            if lo.start < lo.end {
                if !w.prefetchable {
                    mem.push(lo.clone());
                }
                low.push(lo);
            }
            if hi.start < hi.end {
                high.push(hi);
            }
        }
        high.append(&mut low);
        Planner {
            topo,
            regions,
            bridges,
            parent,
            win: vec![[None, None]; n],
            host: [mem, high],
            problems,
        }
    }

    fn host_ok(&self, pool: Pool, r: &Range<u64>) -> bool {
        self.host[pi(pool)].iter().any(|w| contains(w, r))
    }

    /// Is bridge `a` (a topology index) `b` or above it?
    fn is_ancestor(&self, a: usize, b: Option<usize>) -> bool {
        let mut cur = b;
        for _ in 0..=self.parent.len() {
            match cur {
                Some(c) if c == a => return true,
                Some(c) => cur = self.parent[c],
                None => return false,
            }
        }
        false
    }

    /// Unassigned mode: chooses the BARs to move.
    fn pick_bad(&mut self) {
        // ROMs (enabled ones; they move in All mode only) are kept.
        for r in &mut self.regions {
            if r.kind == BarKind::Rom {
                r.movable = false;
            }
            if !r.movable {
                continue;
            }
            let range = r.old..r.old.saturating_add(r.size);
            // The prefetchable pool's windows include every window below 4 GiB.
            let outside = !self.host[pi(r.pool)].iter().any(|w| contains(w, &range));
            r.moving = r.old == 0 || outside || r.old & (r.size - 1) != 0;
        }
        // Overlapping pairs: the smaller (then the later) movable one moves.
        let n = self.regions.len();
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (&self.regions[i], &self.regions[j]);
                if a.moving || b.moving || a.old == 0 || b.old == 0 || a.size == 0 || b.size == 0 {
                    continue;
                }
                let ra = a.old..a.old.saturating_add(a.size);
                let rb = b.old..b.old.saturating_add(b.size);
                if !overlaps(&ra, &rb) {
                    continue;
                }
                let pick = match (a.movable, b.movable) {
                    (true, true) if a.size < b.size => i,
                    (_, true) => j,
                    (true, false) => i,
                    (false, false) => {
                        let text = format!(
                            "{} ({:#x}, size {:#x}) overlaps {} ({:#x}, size {:#x}); neither can move",
                            a.name, a.old, a.size, b.name, b.old, b.size
                        );
                        problem(&mut self.problems, text);
                        continue;
                    }
                };
                self.regions[pick].moving = true;
            }
        }
    }

    /// The 1 MiB hulls of what is placed below each bridge.
    fn hulls(&mut self) {
        for w in &mut self.win {
            *w = [None, None];
        }
        for k in 0..self.regions.len() {
            let r = &self.regions[k];
            let Some(range) = r.range() else { continue };
            let Some(h) = mib_hull(&range) else { continue };
            let (pool, mut cur) = (r.pool, r.owner);
            for _ in 0..=self.parent.len() {
                let Some(b) = cur else { break };
                let w = &mut self.win[b][pi(pool)];
                *w = Some(union(w.take(), &h));
                cur = self.parent[b];
            }
        }
    }

    /// Unassigned/Keep: places the moving regions one by one, largest first.
    fn incremental(&mut self) {
        let mut order: Vec<usize> = (0..self.regions.len())
            .filter(|&k| self.regions[k].moving)
            .collect();
        order.sort_by_key(|&k| core::cmp::Reverse(self.regions[k].size));
        for k in order {
            let size = self.regions[k].size;
            let pool = self.regions[k].pool;
            let owner = self.regions[k].owner;
            let mut edges = Vec::new();
            let mut pools = vec![pool];
            if pool == Pool::Pref {
                pools.push(Pool::Mem);
            }
            for &p in &pools {
                for w in &self.host[pi(p)] {
                    edges.push(w.start);
                    edges.push(w.end);
                }
            }
            for r in &self.regions {
                if let Some(x) = r.range() {
                    edges.push(x.start);
                    edges.push(x.end);
                }
            }
            for &b in &self.bridges {
                for w in self.win[b].iter().flatten() {
                    edges.push(w.start);
                    edges.push(w.end);
                }
            }
            let mut cands = Vec::new();
            for e in edges {
                if let Some(u) = align_up(e, size) {
                    cands.push(u);
                }
                if let Some(d) = e.checked_sub(size) {
                    cands.push(align_down(d, size));
                }
            }
            cands.sort_unstable();
            cands.dedup();
            let own = owner.and_then(|o| self.win[o][pi(pool)].clone());
            let mut best = None;
            let mut grown = None;
            for &a in &cands {
                let Some(end) = a.checked_add(size) else {
                    continue;
                };
                let r = a..end;
                if !self.valid(k, &r, &pools) {
                    continue;
                }
                if own.as_ref().is_some_and(|w| contains(w, &r)) {
                    best = Some(a);
                    break;
                }
                if grown.is_none() {
                    grown = Some(a);
                }
            }
            match best.or(grown) {
                Some(a) => {
                    self.regions[k].at = Some(a);
                    self.hulls();
                }
                None => {
                    let r = &self.regions[k];
                    let text = format!(
                        "{} ({}, size {:#x}, at {:#x}) does not fit anywhere; not moved",
                        r.name,
                        r.pool.name(),
                        r.size,
                        r.old
                    );
                    problem(&mut self.problems, text);
                }
            }
        }
    }

    /// Could region `k` go at `r`, growing the windows above it?
    fn valid(&self, k: usize, r: &Range<u64>, pools: &[Pool]) -> bool {
        let me = &self.regions[k];
        if !pools.iter().any(|&p| self.host_ok(p, r)) {
            return false;
        }
        if self
            .regions
            .iter()
            .enumerate()
            .any(|(j, q)| j != k && q.range().is_some_and(|x| overlaps(&x, r)))
        {
            return false;
        }
        let Some(h) = mib_hull(r) else { return false };
        // The windows after growing.
        let grown = |b: usize, p: usize| -> Option<Range<u64>> {
            let w = self.win[b][p].clone();
            if p == pi(me.pool) && self.is_ancestor(b, me.owner) {
                Some(union(w, &h))
            } else {
                w
            }
        };
        for &b in &self.bridges {
            let anc = self.is_ancestor(b, me.owner);
            for p in 0..2 {
                let Some(w) = grown(b, p) else { continue };
                if !anc && overlaps(&w, r) {
                    return false;
                }
                if !(anc && p == pi(me.pool)) {
                    continue;
                }
                if !self.host_ok(me.pool, &w) {
                    return false;
                }
                // A grown window must claim nothing of a non-descendant.
                for (j, q) in self.regions.iter().enumerate() {
                    if j == k || self.is_ancestor(b, q.owner) {
                        continue;
                    }
                    if q.range().is_some_and(|x| overlaps(&x, &w)) {
                        return false;
                    }
                }
                for &c in &self.bridges {
                    if c == b || self.is_ancestor(c, Some(b)) || self.is_ancestor(b, Some(c)) {
                        continue;
                    }
                    for q in 0..2 {
                        if grown(c, q).is_some_and(|x| overlaps(&x, &w)) {
                            return false;
                        }
                    }
                }
                let other = grown(b, 1 - p);
                if other.is_some_and(|x| overlaps(&x, &w)) {
                    return false;
                }
            }
        }
        true
    }

    /// All mode: sizes bottom-up, places top-down.
    fn structured(&mut self) {
        let n = self.topo.functions.len();
        // (size, align) per bridge and pool; None: nothing below.
        let mut need: [Vec<Option<(u64, u64)>>; 2] = [vec![None; n], vec![None; n]];
        for pool in [Pool::Mem, Pool::Pref] {
            for b in self.bridges.clone().into_iter().rev() {
                let kids = self.children(Some(b), pool, &need[pi(pool)]);
                if kids.is_empty() {
                    continue;
                }
                match pack(&kids) {
                    Some((end, align)) => match align_up(end, MIB) {
                        Some(size) => need[pi(pool)][b] = Some((size, align.max(MIB))),
                        None => self.overflow(b, pool),
                    },
                    None => self.overflow(b, pool),
                }
            }
        }
        // What stays put: regions that do not move, and (once known) root-level children
        // that do not fit, at their old places.
        let mut obstacles: Vec<Range<u64>> = self
            .regions
            .iter()
            .filter(|r| !r.moving && r.old != 0 && r.size != 0)
            .map(|r| r.old..r.old.saturating_add(r.size))
            .collect();
        let mut failed: Vec<(Pool, usize, bool)> = Vec::new();
        let mut notes;
        // Each round either places everything or finds another root child that does not
        // fit (which then stays out): at most one round per root child, plus one.
        for _ in 0..=self.regions.len() + self.bridges.len() {
            notes = Vec::new();
            for r in &mut self.regions {
                if r.moving {
                    r.at = None;
                }
            }
            for w in &mut self.win {
                *w = [None, None];
            }
            let mut taken = obstacles.clone();
            let mut new_failure = false;
            for pool in [Pool::Mem, Pool::Pref] {
                let need = &need[pi(pool)];
                let mut kids = self.children(None, pool, need);
                kids.retain(|c| {
                    let key = match c.item {
                        Item::Leaf(k) => (pool, k, false),
                        Item::Bridge(b) => (pool, b, true),
                    };
                    !failed.contains(&key)
                });
                kids.sort_by_key(|c| core::cmp::Reverse(c.align));
                for c in kids {
                    let mut layout = Vec::new();
                    self.layout(c.item, 0, pool, need, &mut layout);
                    if let Some(base) = self.root_slot(pool, &c, &layout, &taken) {
                        taken.push(base..base + c.size);
                        self.commit(&layout, base, pool, &mut notes);
                        continue;
                    }
                    new_failure = true;
                    let mut inside: Vec<String> = Vec::new();
                    let mut hull: Option<Range<u64>> = None;
                    for l in &layout {
                        if let Placed::Leaf(k) = l.0 {
                            let r = &self.regions[k];
                            inside.push(format!("{} size {:#x}", r.name, r.size));
                            if r.old != 0
                                && let Some(h) = r
                                    .old
                                    .checked_add(r.size)
                                    .and_then(|e| mib_hull(&(r.old..e)))
                            {
                                hull = Some(union(hull, &h));
                            }
                        }
                    }
                    let (what, key) = match c.item {
                        Item::Leaf(k) => {
                            let r = &self.regions[k];
                            if r.old != 0 {
                                obstacles.push(r.old..r.old.saturating_add(r.size));
                            }
                            (r.name.clone(), (pool, k, false))
                        }
                        Item::Bridge(b) => {
                            obstacles.extend(hull);
                            (
                                format!("{} {} window", self.topo.functions[b].sbdf, pool.name()),
                                (pool, b, true),
                            )
                        }
                    };
                    failed.push(key);
                    let text = format!(
                        "{what} (size {:#x}) does not fit in the host windows; not moved: {}",
                        c.size,
                        inside.join(", ")
                    );
                    problem(&mut self.problems, text);
                }
            }
            if !new_failure {
                for t in notes {
                    problem(&mut self.problems, t);
                }
                break;
            }
        }
        // Whatever did not fit stays where it was: the hulls of those regions' old places
        // keep the windows around them.
        for r in &mut self.regions {
            if r.at.is_none() {
                r.moving = false;
                r.at = (r.old != 0).then_some(r.old);
            }
        }
        let placed = self.win.clone();
        self.hulls();
        for (i, w) in self.win.iter_mut().enumerate() {
            for p in 0..2 {
                if let Some(x) = &placed[i][p] {
                    w[p] = Some(union(w[p].take(), x));
                }
            }
        }
    }

    fn overflow(&mut self, b: usize, pool: Pool) {
        let text = format!(
            "{}: {} window size overflows",
            self.topo.functions[b].sbdf,
            pool.name()
        );
        problem(&mut self.problems, text);
    }

    fn children(&self, node: Option<usize>, pool: Pool, need: &[Option<(u64, u64)>]) -> Vec<Child> {
        let mut out = Vec::new();
        for (k, r) in self.regions.iter().enumerate() {
            if r.moving && r.pool == pool && r.owner == node {
                out.push(Child {
                    item: Item::Leaf(k),
                    size: r.size,
                    align: r.size,
                });
            }
        }
        for &b in &self.bridges {
            if self.parent[b] == node
                && let Some((size, align)) = need[b]
            {
                out.push(Child {
                    item: Item::Bridge(b),
                    size,
                    align,
                });
            }
        }
        out
    }

    /// Relative placement of `item` (at `base`) and everything below it, top-down.
    fn layout(
        &self,
        item: Item,
        base: u64,
        pool: Pool,
        need: &[Option<(u64, u64)>],
        out: &mut Vec<(Placed, u64)>,
    ) {
        match item {
            Item::Leaf(k) => out.push((Placed::Leaf(k), base)),
            Item::Bridge(b) => {
                let Some((size, _)) = need[b] else { return };
                out.push((Placed::Window(b, size), base));
                let mut kids = self.children(Some(b), pool, need);
                // From the top down, smallest alignment first, if that fits; else as sized.
                kids.sort_by_key(|c| c.align);
                let mut cursor = base + size;
                let mut at = Vec::with_capacity(kids.len());
                for c in &kids {
                    match cursor.checked_sub(c.size).map(|p| align_down(p, c.align)) {
                        Some(p) if p >= base => {
                            at.push(p);
                            cursor = p;
                        }
                        _ => break,
                    }
                }
                if at.len() != kids.len() {
                    // Stable: ties keep the order `pack` saw.
                    kids.sort_by_key(|c| core::cmp::Reverse(c.align));
                    at.clear();
                    let mut off = base;
                    for c in &kids {
                        // Fits: `need` was computed with this packing.
                        off = align_up(off, c.align).unwrap_or(off);
                        at.push(off);
                        off = off.saturating_add(c.size);
                    }
                }
                for (c, p) in kids.iter().zip(at) {
                    self.layout(c.item, p, pool, need, out);
                }
            }
        }
    }

    /// A base for a root-level child: from the top of the host windows down, free, and
    /// moving every BAR below it; the first free slot if none moves all.
    fn root_slot(
        &self,
        pool: Pool,
        c: &Child,
        layout: &[(Placed, u64)],
        taken: &[Range<u64>],
    ) -> Option<u64> {
        let mut fallback = None;
        let mut windows = self.host[pi(pool)].clone();
        if pool == Pool::Mem {
            windows.sort_by_key(|w| core::cmp::Reverse(w.end));
        }
        for w in &windows {
            let Some(top) = w.end.checked_sub(c.size) else {
                continue;
            };
            let mut pos = align_down(top, c.align);
            for _ in 0..4096 {
                if pos < w.start {
                    break;
                }
                let r = pos..pos + c.size;
                if let Some(t) = taken.iter().find(|t| overlaps(t, &r)) {
                    match t.start.checked_sub(c.size) {
                        Some(p) => pos = align_down(p, c.align),
                        None => break,
                    }
                    continue;
                }
                let same = layout.iter().any(|(p, rel)| match p {
                    Placed::Leaf(k) => pos + rel == self.regions[*k].old,
                    Placed::Window(..) => false,
                });
                if !same {
                    return Some(pos);
                }
                fallback.get_or_insert(pos);
                match pos.checked_sub(c.align) {
                    Some(p) => pos = p,
                    None => break,
                }
            }
        }
        fallback
    }

    fn commit(&mut self, layout: &[(Placed, u64)], base: u64, pool: Pool, notes: &mut Vec<String>) {
        for (p, rel) in layout {
            let at = base + rel;
            match *p {
                Placed::Leaf(k) => {
                    let r = &mut self.regions[k];
                    if at == r.old {
                        let text = format!(
                            "{} (size {:#x}) keeps its address {at:#x}: no other slot",
                            r.name, r.size
                        );
                        notes.push(text);
                    }
                    self.regions[k].at = Some(at);
                }
                Placed::Window(b, size) => self.win[b][pi(pool)] = Some(at..at + size),
            }
        }
    }

    /// Final consistency check of the placement; anything wrong becomes a problem.
    fn check(&mut self) {
        let mut out = Vec::new();
        for (k, r) in self.regions.iter().enumerate() {
            let Some(x) = r.range() else { continue };
            if r.size == 0 {
                continue;
            }
            if r.moving && !self.host_ok(r.pool, &x) {
                out.push(format!(
                    "{} at {:#x} (size {:#x}) is outside the host windows",
                    r.name, x.start, r.size
                ));
            }
            for &b in &self.bridges {
                let anc = self.is_ancestor(b, r.owner);
                let w = &self.win[b];
                if anc && !w[pi(r.pool)].as_ref().is_some_and(|w| contains(w, &x)) {
                    out.push(format!(
                        "{} at {:#x} (size {:#x}) is outside the {} window of bridge {}",
                        r.name,
                        x.start,
                        r.size,
                        r.pool.name(),
                        self.topo.functions[b].sbdf
                    ));
                }
                if !anc && w.iter().flatten().any(|w| overlaps(w, &x)) {
                    out.push(format!(
                        "{} at {:#x} (size {:#x}) is inside a window of bridge {}, which is not above it",
                        r.name, x.start, r.size, self.topo.functions[b].sbdf
                    ));
                }
            }
            for q in &self.regions[k + 1..] {
                if q.size != 0
                    && q.range().is_some_and(|y| overlaps(&x, &y))
                    && (r.moving || q.moving)
                {
                    out.push(format!(
                        "{} at {:#x} overlaps {} at {:#x}",
                        r.name,
                        x.start,
                        q.name,
                        q.at.unwrap_or(0)
                    ));
                }
            }
        }
        for &b in &self.bridges {
            if let Some(m) = &self.win[b][0]
                && m.end > FOUR_GIB
            {
                out.push(format!(
                    "{}: memory window {:#x}..{:#x} above 4 GiB",
                    self.topo.functions[b].sbdf, m.start, m.end
                ));
            }
        }
        for t in out {
            problem(&mut self.problems, t);
        }
    }
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
    sorted.sort_by_key(|c| core::cmp::Reverse(c.align));
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

/// Programs `plan`: every bridge's windows (top-down), then every BAR, each with the
/// function's decoding off, read back and verified, COMMAND restored.
pub fn apply(cs: &dyn ConfigSpace, topo: &Topology, plan: &AllocPlan) -> Vec<Applied> {
    let mut out = Vec::new();
    for bw in &plan.bridges {
        apply_bridge(cs, bw, &mut out);
    }
    let mut i = 0;
    while i < plan.moves.len() {
        let sbdf = plan.moves[i].sbdf;
        let mut j = i;
        while j < plan.moves.len() && plan.moves[j].sbdf == sbdf {
            j += 1;
        }
        apply_function(cs, topo, &plan.moves[i..j], &mut out);
        i = j;
    }
    out
}

/// Turns `bits` of COMMAND off; `Err` with the readback if they stay on.
fn decode_off(cs: &dyn ConfigSpace, sbdf: Sbdf, bits: u16) -> Result<u16, u16> {
    let cmd = cs.read32(sbdf, COMMAND) as u16;
    if cmd & bits != 0 {
        // STATUS (the upper half) is write-1-to-clear: write zeros there.
        cs.write32(sbdf, COMMAND, u32::from(cmd & !bits));
        let now = cs.read32(sbdf, COMMAND) as u16;
        if now & bits != 0 {
            cs.write32(sbdf, COMMAND, u32::from(cmd));
            return Err(now);
        }
    }
    Ok(cmd)
}

fn restore(cs: &dyn ConfigSpace, sbdf: Sbdf, cmd: u16, bits: u16) {
    if cmd & bits != 0 {
        cs.write32(sbdf, COMMAND, u32::from(cmd));
    }
}

fn show(r: &Option<Range<u64>>) -> String {
    match r {
        Some(r) => format!("{:#x}..{:#x}", r.start, r.end),
        None => String::from("closed"),
    }
}

fn apply_bridge(cs: &dyn ConfigSpace, bw: &BridgeWindows, out: &mut Vec<Applied>) {
    let s = bw.sbdf;
    let cmd = match decode_off(cs, s, CMD_MEM) {
        Ok(c) => c,
        Err(now) => {
            out.push(Applied {
                what: format!("{s} windows mem {} pref {}", show(&bw.mem), show(&bw.pref)),
                ok: false,
                detail: format!("COMMAND memory decode stays on ({now:#06x}); not written"),
            });
            return;
        }
    };
    // Memory window (0x20): bits 15:4 of base and limit are address bits 31:20.
    let mem = match &bw.mem {
        Some(r) if r.start < r.end && r.end <= FOUR_GIB => {
            ((r.start >> 16) as u32 & 0xfff0) | (((r.end - 1) >> 16) as u32 & 0xfff0) << 16
        }
        _ => 0x0000_fff0,
    };
    cs.write32(s, 0x20, mem);
    let got = cs.read32(s, 0x20) & 0xfff0_fff0;
    out.push(Applied {
        what: format!("{s} memory window {}", show(&bw.mem)),
        ok: got == mem,
        detail: if got == mem {
            String::from("ok")
        } else {
            format!("wrote {mem:#010x}, reads {got:#010x}")
        },
    });
    // Prefetchable window (0x24, upper halves at 0x28/0x2c), in Linux's order: the upper
    // limit first (closing the window meanwhile), the rest, the upper base, the upper limit.
    let cap64 = cs.read32(s, 0x24) & 0xf == 1;
    let (lo, base_hi, limit_hi) = match &bw.pref {
        Some(r) if r.start < r.end => {
            let last = r.end - 1;
            (
                ((r.start >> 16) as u32 & 0xfff0) | ((last >> 16) as u32 & 0xfff0) << 16,
                (r.start >> 32) as u32,
                (last >> 32) as u32,
            )
        }
        _ => (0x0000_fff0, 0, 0),
    };
    let (ok, detail) = if !cap64 && (base_hi | limit_hi) != 0 {
        (
            false,
            String::from("prefetchable window is 32-bit only; not written"),
        )
    } else {
        if cap64 {
            cs.write32(s, 0x2c, 0);
        }
        cs.write32(s, 0x24, lo);
        if cap64 {
            cs.write32(s, 0x28, base_hi);
            cs.write32(s, 0x2c, limit_hi);
        }
        let got = cs.read32(s, 0x24) & 0xfff0_fff0;
        let (gb, gl) = if cap64 {
            (cs.read32(s, 0x28), cs.read32(s, 0x2c))
        } else {
            (0, 0)
        };
        if (got, gb, gl) == (lo, base_hi, limit_hi) {
            (true, String::from("ok"))
        } else {
            (
                false,
                format!(
                    "wrote {lo:#010x}/{base_hi:#x}/{limit_hi:#x}, reads {got:#010x}/{gb:#x}/{gl:#x}"
                ),
            )
        }
    };
    out.push(Applied {
        what: format!("{s} prefetchable window {}", show(&bw.pref)),
        ok,
        detail,
    });
    restore(cs, s, cmd, CMD_MEM);
}

fn apply_function(
    cs: &dyn ConfigSpace,
    topo: &Topology,
    moves: &[BarMove],
    out: &mut Vec<Applied>,
) {
    let s = moves[0].sbdf;
    let f = topo.find(s);
    let name = |m: &BarMove| {
        let what = if m.bar == 6 {
            String::from("ROM")
        } else {
            format!("BAR{}", m.bar)
        };
        format!("{s} {what} {:#x} -> {:#x}", m.old, m.new)
    };
    let offset = |m: &BarMove| -> Option<u16> {
        let f = f?;
        match (m.bar, f.layout()) {
            (6, HEADER_ENDPOINT) => Some(ROM0),
            (6, HEADER_BRIDGE) => Some(ROM1),
            (0..=5, HEADER_ENDPOINT) | (0..=1, HEADER_BRIDGE) => Some(BAR0 + 4 * u16::from(m.bar)),
            _ => None,
        }
    };
    let bits = CMD_MEM | CMD_IO;
    let cmd = match decode_off(cs, s, bits) {
        Ok(c) => c,
        Err(now) => {
            for m in moves {
                out.push(Applied {
                    what: name(m),
                    ok: false,
                    detail: format!("COMMAND decode stays on ({now:#06x}); not written"),
                });
            }
            return;
        }
    };
    for m in moves {
        let Some(off) = offset(m) else {
            out.push(Applied {
                what: name(m),
                ok: false,
                detail: String::from("no such BAR register"),
            });
            continue;
        };
        let cur = cs.read32(s, off);
        let (addr_mask, keep) = if m.kind == BarKind::Rom {
            (ROM_ADDR, ROM_ENABLE)
        } else {
            (BAR_MEM_ADDR, !BAR_MEM_ADDR)
        };
        cs.write32(s, off, (m.new as u32 & addr_mask) | (cur & keep));
        let wide = m.kind == BarKind::Mem64;
        if wide {
            cs.write32(s, off + 4, (m.new >> 32) as u32);
        }
        let lo = u64::from(cs.read32(s, off) & addr_mask);
        let hi = if wide {
            u64::from(cs.read32(s, off + 4)) << 32
        } else {
            0
        };
        let got = hi | lo;
        out.push(Applied {
            what: name(m),
            ok: got == m.new,
            detail: if got == m.new {
                String::from("ok")
            } else {
                format!("wrote {:#x}, reads back {got:#x}", m.new)
            },
        });
    }
    restore(cs, s, cmd, bits);
}

impl core::fmt::Display for Applied {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.what, self.detail)
    }
}
