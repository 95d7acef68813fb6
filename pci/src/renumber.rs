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

use crate::enumerate::{FunctionKind, Topology};
use crate::regs::*;
use crate::{ConfigSpace, Sbdf, read_ids};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

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
        let at: BTreeMap<Sbdf, usize> = topo
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
mod tests {
    use super::*;
    use crate::enumerate::{EnumOptions, Segment, enumerate};
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
            let parent_of =
                |t: &Topology, x: &crate::Function| x.parent.map(|p| t.functions[p].sbdf);
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
}
