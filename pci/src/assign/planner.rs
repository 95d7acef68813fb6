//! The planner: where every BAR, ROM and VF BAR region goes, and each bridge's windows
//! (see the parent module's documentation for the rules).

use super::*;

impl<'a> Planner<'a> {
    pub(super) fn new(topo: &'a Topology, windows: &[Window]) -> Planner<'a> {
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

    pub(super) fn host_ok(&self, pool: Pool, r: &Range<u64>) -> bool {
        self.host[pi(pool)].iter().any(|w| contains(w, r))
    }

    /// Is bridge `a` (a topology index) `b` or above it?
    pub(super) fn is_ancestor(&self, a: usize, b: Option<usize>) -> bool {
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
    pub(super) fn pick_bad(&mut self) {
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
    pub(super) fn hulls(&mut self) {
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
    pub(super) fn incremental(&mut self) {
        let mut order: Vec<usize> = (0..self.regions.len())
            .filter(|&k| self.regions[k].moving)
            .collect();
        lean::sort_by_key(&mut order, |&k| core::cmp::Reverse(self.regions[k].size));
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
            lean::sort_dedup(&mut cands);
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
    pub(super) fn valid(&self, k: usize, r: &Range<u64>, pools: &[Pool]) -> bool {
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
    pub(super) fn structured(&mut self) {
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
                lean::sort_by_key(&mut kids, |c| core::cmp::Reverse(c.align));
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

    pub(super) fn overflow(&mut self, b: usize, pool: Pool) {
        let text = format!(
            "{}: {} window size overflows",
            self.topo.functions[b].sbdf,
            pool.name()
        );
        problem(&mut self.problems, text);
    }

    pub(super) fn children(
        &self,
        node: Option<usize>,
        pool: Pool,
        need: &[Option<(u64, u64)>],
    ) -> Vec<Child> {
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
    pub(super) fn layout(
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
                lean::sort_by_key(&mut kids, |c| c.align);
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
                    lean::sort_by_key(&mut kids, |c| core::cmp::Reverse(c.align));
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
    pub(super) fn root_slot(
        &self,
        pool: Pool,
        c: &Child,
        layout: &[(Placed, u64)],
        taken: &[Range<u64>],
    ) -> Option<u64> {
        let mut fallback = None;
        let mut windows = self.host[pi(pool)].clone();
        if pool == Pool::Mem {
            lean::sort_by_key(&mut windows, |w| core::cmp::Reverse(w.end));
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

    pub(super) fn commit(
        &mut self,
        layout: &[(Placed, u64)],
        base: u64,
        pool: Pool,
        notes: &mut Vec<String>,
    ) {
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
    pub(super) fn check(&mut self) {
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
