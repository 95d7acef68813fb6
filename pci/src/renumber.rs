//! Bus renumbering: [`plan`] new bus numbers for every bridge (depth first, with spare
//! numbers for hot-plug), then [`apply`] them without ever making a bridge unreachable when
//! it is written or letting two sibling bridges' ranges overlap.
//!
//! Xen does not follow bus renumbering (reference §3.4): the caller must remove every
//! function in [`RenumberPlan::moved`] from Xen (`PHYSDEVOP_pci_device_remove`) before
//! [`apply`], and add them again at their new SBDF afterwards. The devices must be quiescent
//! (no DMA in flight): a PCIe completion is routed by the requester's bus number.
//!
//! # The order of writes in [`apply`]
//!
//! Every bridge whose secondary or subordinate bus changes is first *closed*
//! (secondary = subordinate = 0, as Linux's `pci_scan_bridge_extend` clears them before
//! reconfiguring), children before parents, at its old address; then *opened* with its final
//! numbers, parents before children, at its new address. Proof that this is safe:
//! - Closing bridge X (reverse depth-first order): its ancestors come before it in depth-first
//!   order, so they are still open with their old numbers and X answers at its old address.
//! - Opening bridge X (depth-first order): its ancestors are either unchanged or were opened
//!   with their final numbers before it, so X answers at its new address.
//! - At every moment each open bridge has either its old numbers (while closing) or its
//!   final ones (while opening; unchanged bridges have both), and a closed bridge routes
//!   nothing (bus 0 is never below a bridge). The old and the final numbering are each free
//!   of overlaps, so no two open siblings ever overlap and no open bridge leaves its open
//!   parent's range.
//!
//! Bridges whose numbers stay but whose bus moves get their primary bus written in the
//! second pass. Finally every function is checked at its new SBDF (ID, or for a VF its class
//! register) and each moved non-VF function gets one config write (COMMAND written back
//! as read, STATUS half zero so no error bit is cleared), because a PCIe function captures
//! its bus number from type 0 configuration writes.
//!
//! Bridges whose range enumeration did not follow (unconfigured, looping, overlapping) are
//! numbered as if nothing were behind them (`gap` spare buses). After [`apply`], enumerate
//! again: what is behind them appears, and another [`plan`] makes room for it.

use crate::model::{FunctionKind, Topology};
use crate::regs::*;
use crate::{ConfigSpace, Sbdf, read_ids};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use lean::VecMap;

/// One bridge's bus numbers after renumbering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeBuses {
    /// Where the bridge is now.
    pub old: Sbdf,
    /// Where it will be (its own bus renumbered).
    pub new: Sbdf,
    pub primary: u8,
    pub secondary: u8,
    pub subordinate: u8,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenumberPlan {
    /// Every bridge reached, changed or not, in depth-first order.
    pub bridges: Vec<BridgeBuses>,
    /// Every function (bridges included) whose SBDF changes, old -> new, in topological order.
    pub moved: Vec<(Sbdf, Sbdf)>,
    /// Every function whose SBDF stays.
    pub unchanged: Vec<Sbdf>,
    /// Why nothing can be done; when not empty, the other lists are empty.
    pub problems: Vec<String>,
}

impl RenumberPlan {
    /// The new SBDF of the function now at `old` (itself if it does not move).
    pub fn new_sbdf(&self, old: Sbdf) -> Option<Sbdf> {
        if self.unchanged.contains(&old) {
            return Some(old);
        }
        self.moved.iter().find(|(o, _)| *o == old).map(|&(_, n)| n)
    }
}

/// Renumber depth-first from each root bus: each bridge's secondary = next free bus, its
/// subordinate = the last bus used below it + `gap` (spare numbers for hot-plug), never
/// beyond the segment's end_bus (problem if it does not fit; then plan nothing).
///
/// Root buses keep their numbers; a root bus's hierarchy must also stay below the next root
/// bus of the same segment. VFs move with their PF (same routing-ID offset), and the buses
/// VFs sit on beyond their PF's are reserved right after that bus, before any bridge on it
/// (as Linux does). Functions are moved in `topo`'s order.
pub fn plan(topo: &Topology, gap: u8) -> RenumberPlan {
    match Planner::new(topo, gap).run() {
        Ok(p) => p,
        Err(why) => {
            log::warn!("pci: {why}");
            RenumberPlan {
                problems: vec![why],
                ..RenumberPlan::default()
            }
        }
    }
}

struct Planner<'a> {
    topo: &'a Topology,
    gap: u16,
    /// Per function: its new address once decided.
    new: Vec<Option<Sbdf>>,
    /// Non-VF functions directly below each bridge (by index).
    kids: Vec<Vec<usize>>,
    /// VFs of each PF (by index).
    vfs: Vec<Vec<usize>>,
    /// Bridges whose secondary bus enumeration scanned.
    followed: Vec<bool>,
    bridges: Vec<BridgeBuses>,
}

impl<'a> Planner<'a> {
    fn new(topo: &'a Topology, gap: u8) -> Planner<'a> {
        let n = topo.functions.len();
        let mut kids = vec![Vec::new(); n];
        let mut vfs = vec![Vec::new(); n];
        let mut followed = vec![false; n];
        let at: VecMap<Sbdf, usize> = topo
            .functions
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.is_vf())
            .map(|(i, f)| (f.sbdf, i))
            .collect();
        for (i, f) in topo.functions.iter().enumerate() {
            if let Some(pf) = f.physfn {
                if let Some(&p) = at.get(&pf) {
                    vfs[p].push(i);
                }
            } else if let Some(p) = f.parent
                && p < n
            {
                kids[p].push(i);
            }
        }
        for b in &topo.buses {
            if let Some(i) = b.bridge
                && i < n
            {
                followed[i] = true;
            }
        }
        Planner {
            topo,
            gap: u16::from(gap),
            new: vec![None; n],
            kids,
            vfs,
            followed,
            bridges: Vec::new(),
        }
    }

    fn run(mut self) -> Result<RenumberPlan, String> {
        let topo = self.topo;
        let roots: Vec<(u16, u8)> = topo
            .buses
            .iter()
            .filter(|b| b.bridge.is_none())
            .map(|b| (b.segment, b.number))
            .collect();
        for &(seg, root) in &roots {
            let end = topo
                .segments
                .iter()
                .filter(|s| s.segment == seg && s.start_bus == root)
                .map(|s| s.end_bus)
                .min()
                .unwrap_or(root);
            // Below the next root bus of the segment, if any.
            let next_root = roots
                .iter()
                .filter(|&&(s, b)| s == seg && b > root)
                .map(|&(_, b)| b - 1)
                .min();
            let limit = u16::from(next_root.map_or(end, |n| n.min(end)));
            let on_root: Vec<usize> = topo
                .functions
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.parent.is_none()
                        && !f.is_vf()
                        && f.sbdf.segment() == seg
                        && f.sbdf.bus() == root
                })
                .map(|(i, _)| i)
                .collect();
            let mut last = u16::from(root);
            self.bus(&on_root, seg, root, root, limit, None, &mut last)?;
        }
        let mut p = RenumberPlan {
            bridges: self.bridges,
            ..RenumberPlan::default()
        };
        for (f, new) in topo.functions.iter().zip(&self.new) {
            match new {
                Some(n) if *n == f.sbdf => p.unchanged.push(f.sbdf),
                Some(n) => p.moved.push((f.sbdf, *n)),
                None => {
                    return Err(format!(
                        "{}: not reached from a root bus; cannot renumber",
                        f.sbdf
                    ));
                }
            }
        }
        Ok(p)
    }

    /// Numbers the bus now numbered `old` as `new`: its functions, its VFs' buses, then the
    /// bridges on it depth first. `last` is the last bus number used so far.
    #[allow(clippy::too_many_arguments)]
    fn bus(
        &mut self,
        fns: &[usize],
        seg: u16,
        old: u8,
        new: u8,
        limit: u16,
        bridge: Option<Sbdf>,
        last: &mut u16,
    ) -> Result<(), String> {
        let topo = self.topo;
        let delta = i32::from(new) - i32::from(old);
        for &i in fns {
            let f = &topo.functions[i];
            self.new[i] = Some(Sbdf::from_devfn(seg, new, f.sbdf.devfn()));
            for k in 0..self.vfs[i].len() {
                let v = self.vfs[i][k];
                let vf = topo.functions[v].sbdf;
                let rid = i32::from(vf.bdf()) + delta * 256;
                let moved = u16::try_from(rid)
                    .ok()
                    .map(|r| Sbdf::from_devfn(seg, (r >> 8) as u8, r as u8))
                    .filter(|s| u16::from(s.bus()) <= limit);
                let Some(moved) = moved else {
                    return Err(format!(
                        "{vf}: VF of {} would be past bus {limit:#04x} after renumbering",
                        f.sbdf
                    ));
                };
                self.new[v] = Some(moved);
                *last = (*last).max(u16::from(moved.bus()));
            }
        }
        for &i in fns {
            let f = &topo.functions[i];
            if !matches!(f.kind, FunctionKind::Bridge { .. }) {
                continue;
            }
            let secondary = *last + 1;
            let at = self.new[i].unwrap_or(f.sbdf);
            let too_far = |what: &str, n: u16| {
                let above = bridge.map_or(String::new(), |b| format!(" (below {b})"));
                format!(
                    "{}: bridge{above} needs {what} bus {n:#x}, past the last usable bus \
                     {limit:#04x}; nothing renumbered",
                    f.sbdf
                )
            };
            if secondary > limit {
                return Err(too_far("secondary", secondary));
            }
            let slot = self.bridges.len();
            self.bridges.push(BridgeBuses {
                old: f.sbdf,
                new: at,
                primary: new,
                secondary: secondary as u8,
                subordinate: secondary as u8,
            });
            *last = secondary;
            if self.followed[i] {
                let FunctionKind::Bridge {
                    secondary: old_sec, ..
                } = f.kind
                else {
                    continue;
                };
                let below = core::mem::take(&mut self.kids[i]);
                self.bus(
                    &below,
                    seg,
                    old_sec,
                    secondary as u8,
                    limit,
                    Some(f.sbdf),
                    last,
                )?;
            }
            let subordinate = *last + self.gap;
            if subordinate > limit {
                return Err(too_far("subordinate", subordinate));
            }
            self.bridges[slot].subordinate = subordinate as u8;
            *last = subordinate;
        }
        Ok(())
    }
}

/// What a bridge looked like when enumerated: (vendor, device), [primary, secondary,
/// subordinate].
fn bridge_before(topo: &Topology, at: Sbdf) -> Option<((u16, u16), [u8; 3])> {
    let f = topo.find(at)?;
    match f.kind {
        FunctionKind::Bridge {
            primary,
            secondary,
            subordinate,
        } => Some(((f.vendor, f.device), [primary, secondary, subordinate])),
        _ => None,
    }
}

/// Writes bus numbers at `at` after checking that the expected bridge answers there; reads
/// them back. `None` if the bridge is not there (then nothing is written).
fn write_buses(cs: &dyn ConfigSpace, at: Sbdf, ids: (u16, u16), buses: [u8; 3]) -> Option<bool> {
    if read_ids(cs, at) != Some(ids) || cs.read8(at, HEADER + 2) & 0x7f != HEADER_BRIDGE {
        return None;
    }
    let old = cs.read32(at, BUS_NUMBERS);
    let value = (old & 0xff00_0000)
        | u32::from(buses[2]) << 16
        | u32::from(buses[1]) << 8
        | u32::from(buses[0]);
    cs.write32(at, BUS_NUMBERS, value);
    Some(cs.read32(at, BUS_NUMBERS) & 0x00ff_ffff == value & 0x00ff_ffff)
}

/// Program the new bus numbers of `plan` (made by [`plan`] from `topo`): close the changing
/// bridges children first, open them parents first (see the module documentation for why
/// this order is safe), then check every function at its new SBDF. One `(step, ok)` per
/// bridge written and per function checked. Stops at the first bridge that does not answer
/// where it should (nothing is written to an address holding something else). A plan with
/// problems writes nothing.
pub fn apply(cs: &dyn ConfigSpace, topo: &Topology, plan: &RenumberPlan) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    if !plan.problems.is_empty() {
        out.push(("plan has problems; nothing written".into(), false));
        return out;
    }
    let mut before = Vec::with_capacity(plan.bridges.len());
    for b in &plan.bridges {
        match bridge_before(topo, b.old) {
            Some(x) => before.push(x),
            None => {
                out.push((
                    format!("{}: not a bridge of the topology; nothing written", b.old),
                    false,
                ));
                return out;
            }
        }
    }
    let changes = |i: usize| {
        let b = &plan.bridges[i];
        let [_, sec, sub] = before[i].1;
        (sec, sub) != (b.secondary, b.subordinate)
    };
    // Close, children before parents, at the old addresses.
    for i in (0..plan.bridges.len()).rev() {
        if !changes(i) {
            continue;
        }
        let b = &plan.bridges[i];
        let (ids, [pri, sec, sub]) = before[i];
        let step = format!(
            "{}: close bus numbers [{sec:02x}-{sub:02x}] (secondary/subordinate 0)",
            b.old
        );
        match write_buses(cs, b.old, ids, [pri, 0, 0]) {
            Some(ok) => out.push((step, ok)),
            None => {
                out.push((format!("{step}: bridge not found there; stopped"), false));
                return out;
            }
        }
    }
    // Open, parents before children, at the new addresses.
    for (i, b) in plan.bridges.iter().enumerate() {
        let (ids, [pri, ..]) = before[i];
        if !changes(i) && pri == b.primary && b.old == b.new {
            continue;
        }
        let step = format!(
            "{}: bus numbers primary {:02x}, secondary {:02x}, subordinate {:02x}{}",
            b.new,
            b.primary,
            b.secondary,
            b.subordinate,
            if b.old != b.new {
                format!(" (was {})", b.old)
            } else {
                String::new()
            }
        );
        match write_buses(cs, b.new, ids, [b.primary, b.secondary, b.subordinate]) {
            Some(ok) => out.push((step, ok)),
            None => {
                out.push((format!("{step}: bridge not found there; stopped"), false));
                return out;
            }
        }
    }
    // Check every function where it should be now; moved ones capture their bus number.
    for f in &topo.functions {
        let Some(new) = plan.new_sbdf(f.sbdf) else {
            continue;
        };
        if f.is_vf() {
            let ok = cs.read32(new, CLASS_REV) != u32::MAX;
            if new != f.sbdf {
                out.push((format!("{}: VF answers at {new}", f.sbdf), ok));
            } else if !ok {
                out.push((format!("{new}: VF does not answer"), false));
            }
            continue;
        }
        let ok = read_ids(cs, new) == Some((f.vendor, f.device));
        if new == f.sbdf {
            if !ok {
                out.push((
                    format!(
                        "{new}: {:04x}:{:04x} does not answer any more",
                        f.vendor, f.device
                    ),
                    false,
                ));
            }
            continue;
        }
        if ok {
            // A type 0 config write: the function captures its new bus number.
            let command = cs.read16(new, COMMAND);
            cs.write32(new, COMMAND, u32::from(command));
        }
        out.push((
            format!(
                "{}: {:04x}:{:04x} answers at {new}",
                f.sbdf, f.vendor, f.device
            ),
            ok,
        ));
    }
    out
}

#[cfg(test)]
mod tests;
