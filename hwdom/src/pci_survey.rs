//! The PCI survey: find the ECAM windows, enumerate, size and check BARs against the host
//! bridge windows, report every function to Xen in Linux's order (`PHYSDEVOP_pci_device_add`,
//! after `PHYSDEVOP_pci_mmcfg_reserved` for each MCFG window), enable SR-IOV VFs, renumber buses
//! and move BARs when asked, and read one register of each known device through its BAR.

use alloc::format;
use alloc::string::{String, ToString};

use alloc::vec::Vec;
use core::ops::Range;

use log::{info, warn};
use pci::{ConfigSpace, Sbdf};
use report::{BootReport, PciSummary, XenAdd};
use xen::memmap::MemoryMap;
use xen::{Hypercall, XenError};

use crate::finding;
use crate::host_bridges::{self, AcpiFacts};
use crate::options::PciBars;
use crate::platform::{EcamWindow, Platform};

/// What the command line asks of the survey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurveyOptions {
    /// `pci-bars=`
    pub bars: PciBars,
    /// `pci-renumber=GAP`
    pub renumber: Option<u8>,
    /// `pci-vfs=N`: enable up to N VFs of each SR-IOV PF.
    pub vfs: u16,
    /// `pci-roots=probe`: ignore the ACPI host bridges.
    pub probe_roots: bool,
}

/// How one `PHYSDEVOP_pci_device_add` went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenAddOutcome {
    pub sbdf: Sbdf,
    pub result: Result<(), XenError>,
    /// Why Xen refused, when dom0 knows (appended to the errno in the report).
    pub explanation: Option<String>,
}

impl XenAddOutcome {
    /// What the report says: accepted, or the errno and the explanation.
    pub fn report(&self) -> XenAdd {
        match (&self.result, &self.explanation) {
            (Ok(()), _) => XenAdd::Ok,
            (Err(e), None) => XenAdd::Refused(e.to_string()),
            (Err(e), Some(why)) => XenAdd::Refused(format!("{e} ({why})")),
        }
    }
}

/// Enumerate PCI (ECAM through the MCFG windows, else CF8/CFC), size BARs with decoding off,
/// check them against the host bridge windows, and report every function to Xen in topological
/// order (MCFG windows first, with `PHYSDEVOP_pci_mmcfg_reserved`).
pub fn survey<P: Platform>(
    p: &P,
    x: Option<&dyn Hypercall>,
    rep: &mut BootReport,
    map: &MemoryMap,
    acpi: &AcpiFacts,
    opts: SurveyOptions,
) -> PciSummary {
    let mut windows = Vec::new();
    let mut mmcfg_reserved = Vec::new();
    let mut problems = Vec::new();
    for m in &acpi.mcfg {
        let size = (u64::from(m.end_bus) + 1) << 20;
        let (start, end) = (m.base + (u64::from(m.start_bus) << 20), m.base + size);
        if let Err(e) = p.map_uncached(start, end) {
            problems.push(format!(
                "MCFG segment {} at {:#x}: not mapped: {e}",
                m.segment, m.base
            ));
            continue;
        }
        if let Some(x) = x {
            // Linux's xen_mcfg_late(): so Xen uses the window for extended config space.
            let r = xen::ops::pci_mmcfg_reserved(x, m.base, m.segment, m.start_bus, m.end_bus);
            let r = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            mmcfg_reserved.push(format!(
                "segment {} buses {:#04x}-{:#04x} at {:#x}: {r}",
                m.segment, m.start_bus, m.end_bus, m.base
            ));
        }
        windows.push(EcamWindow {
            segment: m.segment,
            start_bus: m.start_bus,
            end_bus: m.end_bus,
            base: m.base,
        });
    }
    let from_namespace: &[aml::HostBridge] = if opts.probe_roots {
        &[]
    } else {
        &acpi.host_bridges
    };
    let roots = host_bridges::roots(&windows, from_namespace);
    problems.extend(roots.problems.iter().cloned());
    let mut source = roots.source.clone();
    let mut segments = roots.segments.clone();
    let cfg = p.config_space(&windows);
    let counting = pci::Counting::new(&cfg);
    let t0 = p.now_ns();
    let mut topo = pci::enumerate(&counting, &segments, &pci::EnumOptions::default());
    if !roots.from_acpi {
        // No host bridge in the namespace: find the roots nothing reached (expander bridges,
        // a second root complex) by probing, as Linux's pcibios_fixup_peer_bridges() does.
        let extra = host_bridges::probe_unreached(&counting, &segments, &topo);
        if !extra.is_empty() {
            for e in &extra {
                let msg = format!(
                    "PCI: root bus {:04x}:{:02x} found by probing (no ACPI host bridge names it)",
                    e.segment, e.start_bus
                );
                finding::warn(rep, msg.clone());
                problems.push(msg);
            }
            segments.extend(extra);
            topo = pci::enumerate(&counting, &segments, &pci::EnumOptions::default());
            source.push_str(", more roots by probing");
        }
    }
    let enumerate_ns = p.now_ns().saturating_sub(t0);
    let (config_reads, config_writes) = counting.counts();
    // Host bridge windows: each present host bridge's _CRS memory windows (Linux's
    // acpi_pci_root_create()); without them, the memory map's gaps in the PCI hole (above low
    // RAM, below the IO-APIC/LAPIC range) and above 4 GiB beyond all RAM and reserved entries.
    let crs = host_bridges::crs_windows(from_namespace);
    let gaps = host_bridge_windows(map);
    let bridge_windows: Vec<Range<u64>> = if crs.is_empty() {
        gaps.clone()
    } else {
        crs.iter().map(|(r, _)| r.clone()).collect()
    };
    pci::check_bars(&mut topo, &bridge_windows);
    info!(
        "PCI: {} functions on {} buses via {source} in {} us ({config_reads} config reads, \
         {config_writes} writes)",
        topo.functions.len(),
        topo.buses.len(),
        enumerate_ns / 1000
    );
    for pr in topo.all_problems() {
        warn!("PCI: {pr}");
    }
    let mut xen_results: Vec<XenAddOutcome> = Vec::new();
    if let Some(x) = x {
        for a in pci::xen_add_order(&topo) {
            let pxm = pxm_of(&topo, from_namespace, a.sbdf);
            xen_results.push(xen_add(x, &a, pxm, rep, None));
        }
        let refused = xen_results.iter().filter(|r| r.result.is_err()).count();
        info!(
            "PCI: {} functions reported to Xen, {refused} refused",
            topo.functions.len()
        );
    }
    if opts.vfs > 0 {
        topo = enable_vfs(
            p,
            x,
            rep,
            &cfg,
            &segments,
            topo,
            &bridge_windows,
            opts.vfs,
            &mut xen_results,
            &mut problems,
        );
    }
    let mut renumber_log = Vec::new();
    if let Some(gap) = opts.renumber {
        topo = renumber_buses(
            &cfg,
            &segments,
            topo,
            gap,
            x,
            &mut xen_results,
            &mut renumber_log,
            rep,
        );
        pci::check_bars(&mut topo, &bridge_windows);
    }
    let mut moves_log = Vec::new();
    if opts.bars != PciBars::Keep {
        if roots.from_acpi && !crs.is_empty() && segments.len() > 1 {
            // Several host bridges: each root's BARs go into that bridge's own _CRS windows.
            for (seg, b) in segments.iter().zip(&roots.bridges) {
                let Some(b) = b.and_then(|i| from_namespace.get(i)) else {
                    continue;
                };
                let mut sub = topo.root_subtree(seg.segment, seg.start_bus);
                if sub.functions.is_empty() {
                    continue;
                }
                let own: Vec<Range<u64>> = host_bridges::crs_windows(core::slice::from_ref(b))
                    .into_iter()
                    .map(|(r, _)| r)
                    .collect();
                moves_log.push(format!("{} (root bus {:02x}):", b.path, seg.start_bus));
                move_bars(&cfg, &mut sub, &own, opts.bars, &mut moves_log, rep);
                for f in sub.functions {
                    if let Some(i) = topo.index_of(f.sbdf) {
                        topo.functions[i].bars = f.bars;
                    }
                }
            }
        } else {
            move_bars(
                &cfg,
                &mut topo,
                &bridge_windows,
                opts.bars,
                &mut moves_log,
                rep,
            );
        }
    }
    let mut sum = PciSummary::from_topology(&source, &topo);
    sum.enumerate_ns = enumerate_ns;
    sum.enumerate_config_reads = config_reads;
    sum.enumerate_config_writes = config_writes;
    sum.mmcfg_reserved = mmcfg_reserved;
    sum.problems.extend(problems);
    sum.bar_moves = moves_log;
    sum.renumber = renumber_log;
    for r in &xen_results {
        sum.set_xen_add(r.sbdf, r.report());
    }
    sum.segments = segments
        .iter()
        .zip(roots.bridges.iter().chain(core::iter::repeat(&None)))
        .map(|(s, b)| {
            let from = match b.and_then(|i| from_namespace.get(i)) {
                Some(b) => format!(" ({})", b.path),
                None => String::new(),
            };
            format!(
                "{:04x} [bus {:02x}-{:02x}] {}{from}",
                s.segment,
                s.start_bus,
                s.end_bus,
                if s.ecam { "ECAM" } else { "CF8/CFC" }
            )
        })
        .collect();
    sum.windows = if crs.is_empty() {
        gaps.iter()
            .map(|w| {
                format!(
                    "[{:#x}, {:#x}): a gap in the memory map (no host bridge _CRS)",
                    w.start, w.end
                )
            })
            .collect()
    } else {
        let mut v: Vec<String> = crs
            .iter()
            .map(|(w, b)| format!("[{:#x}, {:#x}): _CRS of {b}", w.start, w.end))
            .collect();
        // What the memory-map gaps would have given, for comparison (not used).
        v.extend(gaps.iter().map(|w| {
            format!(
                "[{:#x}, {:#x}): memory-map gap (not used: _CRS is the truth)",
                w.start, w.end
            )
        }));
        v
    };
    for (i, text) in host_bridges::irq_routes(&topo, from_namespace) {
        if let Some(f) = sum.functions.get_mut(i) {
            f.irq = text;
        }
    }
    let (ok, bad) = device_checks(p, &cfg, &topo, &mut sum, rep);
    if ok + bad > 0 {
        info!("PCI: device checks through the BARs: {ok} ok, {bad} failed");
    }
    sum
}

/// SR-IOV, in Linux's order: the PF was reported with its VFs off (Xen sizes the VF BARs when
/// the PF is added, which it cannot do once VF Enable is set); now give unassigned VF BARs a
/// place, enable the VFs, wait, find them, and report them as virtual functions of their PF.
#[allow(clippy::too_many_arguments)]
fn enable_vfs<P: Platform>(
    p: &P,
    x: Option<&dyn Hypercall>,
    rep: &mut BootReport,
    cfg: &P::Config,
    segments: &[pci::Segment],
    topo: pci::Topology,
    bridge_windows: &[Range<u64>],
    vfs: u16,
    xen_results: &mut Vec<XenAddOutcome>,
    problems: &mut Vec<String>,
) -> pci::Topology {
    let pfs: Vec<(Sbdf, u16)> = topo
        .functions
        .iter()
        .filter_map(|f| f.sriov.as_ref().map(|s| (f.sbdf, s.total_vfs.min(vfs))))
        .filter(|&(_, n)| n > 0)
        .collect();
    if pfs.is_empty() {
        return topo;
    }
    for &(pf, n) in &pfs {
        for m in assign_vf_bars(cfg, &topo, pf) {
            info!("PCI: {m}");
            problems.push(m);
        }
        match pci::enable_vfs(cfg, pf, n) {
            Ok(v) => info!("PCI: {pf}: {} VFs enabled", v.len()),
            Err(e) => {
                warn!("PCI: {pf}: enabling {n} VFs failed: {e}");
                problems.push(format!("{pf}: enabling {n} VFs failed: {e}"));
            }
        }
    }
    // SR-IOV 1.1 §3.3.3.1: wait 100 ms after VF Enable before touching the VFs.
    let t = p.now_ns();
    while p.now_ns().saturating_sub(t) < 100_000_000 {
        p.relax();
    }
    let mut topo = pci::enumerate(cfg, segments, &pci::EnumOptions::default());
    pci::check_bars(&mut topo, bridge_windows);
    if let Some(x) = x {
        for a in pci::xen_add_order(&topo) {
            if !xen_results.iter().any(|r| r.sbdf == a.sbdf) {
                let why = a.physfn.is_some().then_some(
                    "Xen's vPCI keeps no BARs for a VF of a PVH dom0: VF BARs read 0 in the VF's \
                     config space, so its MSI-X table has no BAR; SR-IOV is unsupported for a PVH \
                     dom0 in Xen's SUPPORT.md",
                );
                xen_results.push(xen_add(x, &a, None, rep, why.map(String::from)));
            }
        }
    }
    topo
}

/// Give a PF's unassigned VF BARs (SR-IOV capability) a place before its VFs are enabled: Xen
/// 4.20 refuses a VF whose MSI-X table sits in an unassigned BAR ("DEVICE BUG: ... MSI-X vector
/// table at invalid BAR0", -ENODEV), and firmware (SeaBIOS) leaves VF BARs unassigned. Each VF
/// BAR region (per-VF size x TotalVFs, aligned to the per-VF size) goes into a free part of the
/// memory window of the bridge above the PF, written with the PF's decoding off and read back.
pub fn assign_vf_bars(cfg: &impl ConfigSpace, topo: &pci::Topology, pf: Sbdf) -> Vec<String> {
    let mut notes = Vec::new();
    let Some(f) = topo.find(pf) else { return notes };
    let Some(sriov) = &f.sriov else { return notes };
    let Some(bridge) = f.parent.and_then(|i| topo.functions.get(i)) else {
        return notes;
    };
    // The bridge's memory window (0x20: base and limit, bits 31:20 of the address).
    let w = cfg.read32(bridge.sbdf, 0x20);
    let (base, limit) = (
        u64::from(w & 0xfff0) << 16,
        (u64::from(w >> 16 & 0xfff0) << 16) | 0xf_ffff,
    );
    if base > limit {
        notes.push(format!(
            "{pf}: VF BARs unassigned and the bridge above has no memory window"
        ));
        return notes;
    }
    // What already lies in the window: the BARs of every function behind the bridge.
    let mut used: Vec<(u64, u64)> = topo
        .functions
        .iter()
        .filter(|g| g.parent == f.parent)
        .flat_map(|g| g.bars.iter())
        .filter(|b| b.address != 0 && b.size != 0)
        .map(|b| (b.address, b.address + b.size))
        .collect();
    for vb in sriov
        .vf_bars
        .iter()
        .filter(|b| b.address == 0 && b.size != 0)
    {
        let total = vb.size * u64::from(sriov.total_vfs.max(1));
        let mut at = base.next_multiple_of(vb.size);
        while at + total - 1 <= limit {
            match used.iter().find(|&&(s, e)| at < e && s < at + total) {
                Some(&(_, e)) => at = e.next_multiple_of(vb.size),
                None => break,
            }
        }
        if at + total - 1 > limit {
            notes.push(format!(
                "{pf}: no room for VF BAR{} ({:#x} x {} VFs) in the bridge window [{base:#x}, {limit:#x}]",
                vb.index, vb.size, sriov.total_vfs
            ));
            continue;
        }
        let reg = sriov.offset + pci::regs::SRIOV_VF_BAR0 + 4 * u16::from(vb.index);
        let cmd = cfg.read32(pf, 4) & 0xffff;
        cfg.write32(pf, 4, cmd & !0x3);
        let low_flags = cfg.read32(pf, reg) & 0xf;
        cfg.write32(pf, reg, (at as u32 & !0xf) | low_flags);
        if vb.kind == pci::BarKind::Mem64 {
            cfg.write32(pf, reg + 4, (at >> 32) as u32);
        }
        let back = u64::from(cfg.read32(pf, reg) & !0xf)
            | if vb.kind == pci::BarKind::Mem64 {
                u64::from(cfg.read32(pf, reg + 4)) << 32
            } else {
                0
            };
        cfg.write32(pf, 4, cmd);
        used.push((at, at + total));
        notes.push(format!(
            "{pf}: VF BAR{} assigned [{at:#x}, {:#x}) ({} VFs x {:#x}){}",
            vb.index,
            at + total,
            sriov.total_vfs,
            vb.size,
            if back == at {
                String::new()
            } else {
                format!("; reads back {back:#x}: FAILED")
            }
        ));
    }
    notes
}

/// One `PHYSDEVOP_pci_device_add`; a refusal is an error in the report.
fn xen_add(
    x: &dyn Hypercall,
    a: &pci::XenAdd,
    pxm: Option<u32>,
    rep: &mut BootReport,
    why_if_enodev: Option<String>,
) -> XenAddOutcome {
    let physfn = a.physfn.map(|p| (p.bus(), p.devfn()));
    let result = xen::ops::pci_device_add(
        x,
        a.sbdf.segment(),
        a.sbdf.bus(),
        a.sbdf.devfn(),
        a.flags,
        physfn,
        pxm,
    );
    if let Err(e) = result {
        finding::error(
            rep,
            format!("PCI: PHYSDEVOP_pci_device_add {}: {e}", a.sbdf),
        );
    }
    XenAddOutcome {
        sbdf: a.sbdf,
        explanation: why_if_enodev.filter(|_| result == Err(XenError::ENODEV)),
        result,
    }
}

/// `_PXM` of the host bridge above `sbdf` (Linux's `xen_add_device` walks up to it).
fn pxm_of(topo: &pci::Topology, bridges: &[aml::HostBridge], sbdf: Sbdf) -> Option<u32> {
    let i = topo.index_of(sbdf)?;
    let root = topo.functions[topo.root_of(i)].sbdf;
    host_bridges::bridge_of(bridges, root)?.pxm
}

/// `pci-bars=`: plan and apply BAR moves (each with decoding off, written, read back, decoding
/// restored: Xen's vPCI ignores a BAR write while the BAR is mapped), then update `topo`.
fn move_bars(
    cfg: &impl ConfigSpace,
    topo: &mut pci::Topology,
    windows: &[Range<u64>],
    bars: PciBars,
    log: &mut Vec<String>,
    rep: &mut BootReport,
) {
    let mode = match bars {
        PciBars::Keep => pci::assign::BarMode::Keep,
        PciBars::Unassigned => pci::assign::BarMode::Unassigned,
        PciBars::All => pci::assign::BarMode::All,
    };
    let windows: Vec<pci::assign::Window> = windows
        .iter()
        .map(|r| pci::assign::Window {
            range: r.clone(),
            // General windows: both kinds of memory BAR may go there.
            prefetchable: false,
        })
        .collect();
    let plan = pci::assign::plan(topo, &windows, mode);
    log.push(format!(
        "pci-bars={}: {} BAR moves, {} bridges' windows",
        bars.name(),
        plan.moves.len(),
        plan.bridges.len()
    ));
    for pr in &plan.problems {
        warn!("PCI: BAR plan: {pr}");
        log.push(format!("problem: {pr}"));
    }
    let mut failed = 0;
    for a in pci::assign::apply(cfg, topo, &plan) {
        if !a.ok {
            failed += 1;
            finding::error(rep, format!("PCI: {}: {}", a.what, a.detail));
        }
        let detail = if a.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.detail)
        };
        log.push(format!(
            "{}: {}{detail}",
            a.what,
            if a.ok { "ok" } else { "FAILED" }
        ));
    }
    for m in &plan.moves {
        if let Some(i) = topo.index_of(m.sbdf)
            && let Some(b) = topo.functions[i].bars.iter_mut().find(|b| b.index == m.bar)
        {
            b.address = m.new;
        }
    }
    info!(
        "PCI: {} BARs moved ({failed} steps failed)",
        plan.moves.len()
    );
}

/// `pci-renumber=GAP`: Xen does not follow bus renumbering (vPCI, the IOMMU and its pdev list
/// are keyed by SBDF), so: decoding off and `PHYSDEVOP_pci_device_remove` for every function
/// whose SBDF changes (deepest first; Xen 4.17's vpci_remove_device does not unmap BARs, hence
/// decoding off first), program the new bus numbers, enumerate again, re-add the moved
/// functions at their new SBDFs (bridges first), and restore their command registers.
#[allow(clippy::too_many_arguments)]
fn renumber_buses(
    cfg: &impl ConfigSpace,
    segments: &[pci::Segment],
    topo: pci::Topology,
    gap: u8,
    x: Option<&dyn Hypercall>,
    xen_results: &mut Vec<XenAddOutcome>,
    log: &mut Vec<String>,
    rep: &mut BootReport,
) -> pci::Topology {
    let plan = pci::renumber::plan(&topo, gap);
    for pr in &plan.problems {
        warn!("PCI: renumber plan: {pr}");
        log.push(format!("problem: {pr}"));
    }
    if plan.moved.is_empty() {
        log.push(format!("pci-renumber={gap}: no function changes SBDF"));
        return topo;
    }
    log.push(format!(
        "pci-renumber={gap}: {} functions change SBDF",
        plan.moved.len()
    ));
    let mut saved: Vec<(Sbdf, u32)> = Vec::new();
    for &(old, _) in plan.moved.iter().rev() {
        let cmd = cfg.read32(old, 4) & 0xffff;
        saved.push((old, cmd));
        cfg.write32(old, 4, cmd & !0x3);
        if let Some(x) = x {
            let r = match xen::ops::pci_device_remove(x, old.segment(), old.bus(), old.devfn()) {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    finding::error(rep, format!("PCI: PHYSDEVOP_pci_device_remove {old}: {e}"));
                    e.to_string()
                }
            };
            log.push(format!("Xen remove {old}: {r}"));
        }
        xen_results.retain(|r| r.sbdf != old);
    }
    for (what, ok) in pci::renumber::apply(cfg, &topo, &plan) {
        if !ok {
            finding::error(rep, format!("PCI: renumber: {what}"));
        }
        log.push(format!("{what}: {}", if ok { "ok" } else { "FAILED" }));
    }
    let new_topo = pci::enumerate(cfg, segments, &pci::EnumOptions::default());
    let moved_new: Vec<Sbdf> = plan.moved.iter().map(|&(_, n)| n).collect();
    for &(old, new) in &plan.moved {
        if new_topo.find(new).is_none() {
            finding::error(
                rep,
                format!("PCI: renumber: {old} is not at {new} afterwards"),
            );
        }
    }
    if let Some(x) = x {
        // Bus numbers the firmware used when Xen booted: Xen's IOMMU code resolved its units
        // (AMD IVRS ranges, VT-d DMAR scopes) for those only.
        let boot_buses: Vec<u8> = topo.buses.iter().map(|b| b.number).collect();
        for a in pci::xen_add_order(&new_topo)
            .into_iter()
            .filter(|a| moved_new.contains(&a.sbdf))
        {
            let why = (!boot_buses.contains(&a.sbdf.bus())).then(|| {
                format!(
                    "bus {:#04x} did not exist when Xen booted: its IOMMU code only knows the \
                     firmware's bus numbers, so the device stays out of vPCI and the IOMMU",
                    a.sbdf.bus()
                )
            });
            let r = xen_add(x, &a, None, rep, why);
            log.push(format!("Xen add {}: {}", a.sbdf, r.report()));
            xen_results.push(r);
        }
    }
    for &(old, new) in &plan.moved {
        if let Some(&(_, cmd)) = saved.iter().find(|(s, _)| *s == old) {
            cfg.write32(new, 4, cmd);
        }
    }
    info!("PCI: renumbered: {} functions moved", plan.moved.len());
    new_topo
}

/// Read one known register of each device dom0 knows through its BAR (`drivers::pcicheck`), with
/// memory decoding on (a driver turns it on; under Xen dom0 has reported the device first, so
/// vPCI maps the BARs into dom0 when it sees the bit set).
fn device_checks<P: Platform>(
    p: &P,
    cfg: &P::Config,
    topo: &pci::Topology,
    sum: &mut PciSummary,
    rep: &mut BootReport,
) -> (u32, u32) {
    let (mut ok, mut bad) = (0, 0);
    for f in &topo.functions {
        let Some(check) = drivers::pcicheck::check_for(f.vendor, f.device, f.class) else {
            continue;
        };
        let cmd = cfg.read32(f.sbdf, 4) & 0xffff;
        if cmd & 0x2 == 0 {
            // COMMAND.MEM on; the STATUS half written as zero (its bits are write-1-to-clear).
            cfg.write32(f.sbdf, 4, cmd | 0x2);
        }
        let caps: Vec<(u8, u16)> = f.caps.iter().map(|c| (c.id, c.offset)).collect();
        let rd = |off: u16| cfg.read32(f.sbdf, off);
        let mmio = |bar: u8, off: u64, width: u8| -> Option<u32> {
            let b = f.bars.iter().find(|b| {
                b.index == bar && matches!(b.kind, pci::BarKind::Mem32 | pci::BarKind::Mem64)
            })?;
            let w = u64::from(width);
            // Only inside a memory BAR enumeration sized and found assigned, naturally aligned.
            if b.address == 0
                || !matches!(width, 2 | 4)
                || !off.is_multiple_of(w)
                || off.checked_add(w)? > b.size
            {
                return None;
            }
            p.read_mmio(b.address + off, width)
        };
        let r = drivers::pcicheck::run(check, &caps, &rd, &mmio);
        if r.ok {
            ok += 1;
        } else {
            bad += 1;
            // A warning in the report, not only on the console: a device that does not answer
            // at its BAR (a BAR dom0 cannot map, a dead device) must not pass unnoticed.
            finding::warn(
                rep,
                format!("PCI: {}: device check failed: {}", f.sbdf, r.detail),
            );
        }
        let name = format!("{}", f.sbdf);
        if let Some(pf) = sum.functions.iter_mut().find(|p| p.sbdf == name) {
            pf.device_check = format!("{}: {}", if r.ok { "ok" } else { "FAILED" }, r.detail);
        }
    }
    (ok, bad)
}

/// The gaps of the memory map in the PCI hole (from the end of low RAM to 0xfec00000, where the
/// IO-APIC/HPET/LAPIC range begins) and above 4 GiB (from the end of the highest entry to
/// 1 TiB): where firmware and dom0 may put BARs.
pub fn host_bridge_windows(map: &MemoryMap) -> Vec<Range<u64>> {
    let top = map
        .regions()
        .iter()
        .map(|r| r.end())
        .max()
        .unwrap_or(0)
        .max(1 << 32);
    let mut out = map.gaps(map.low_ram_end(), 0xfec0_0000);
    out.extend(map.gaps(top, 1 << 40));
    out
}

#[cfg(test)]
mod tests;
