//! The PCI roots, as Linux finds them: each ACPI host bridge (`PNP0A03`/`PNP0A08`) with its
//! `_SEG`, bus range (`_CRS`, else `_BBN`), windows (`_CRS`), interrupt routing (`_PRT`) and
//! proximity domain (`_PXM`), read from the DSDT and SSDTs by the `aml` crate. Without a
//! namespace (no DSDT, or no host bridge in it) dom0 enumerates from each MCFG window's first
//! bus and then probes the bus numbers nothing reached, as Linux's `pcibios_fixup_peer_bridges`
//! does, and says so.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use acpi_fixup::validate::TableCheck;
use aml::{HostBridge, Namespace, PrtSource, RangeKind};
use pci::{ConfigSpace, Sbdf};
use report::HostBridgeSummary;

use crate::platform::EcamWindow;

/// The facts of the ACPI phase the PCI survey needs.
#[derive(Debug, Default, Clone)]
pub struct AcpiFacts {
    /// MCFG entries: the ECAM windows.
    pub mcfg: Vec<acpi_fixup::McfgEntry>,
    /// PCI host bridges in namespace order (present or not).
    pub host_bridges: Vec<HostBridge>,
}

/// Loads the DSDT and SSDTs among `tables` (read with `read`) and finds the host bridges.
/// Returns the namespace line for the report (with the time loading and evaluating took, by
/// `now_ns`), the bridges, and the problems.
pub fn read_namespace(
    tables: &[TableCheck],
    read: impl Fn(u64, usize) -> Option<Vec<u8>>,
    now_ns: impl Fn() -> u64,
) -> (String, Vec<HostBridge>, Vec<String>) {
    let mut problems = Vec::new();
    let mut blocks = Vec::new();
    // The DSDT first (it sets the integer width), then each SSDT in table order.
    let dsdt = tables.iter().filter(|t| t.signature == "DSDT");
    let ssdts = tables.iter().filter(|t| t.signature == "SSDT");
    for t in dsdt.chain(ssdts) {
        if !t.used {
            problems.push(format!(
                "{} at {:#x}: not loaded into the namespace (the table is unsound)",
                t.signature, t.paddr
            ));
            continue;
        }
        match read(t.paddr, t.length as usize) {
            Some(b) => blocks.push(b),
            None => problems.push(format!(
                "{} at {:#x} (+{:#x}): unreadable; not loaded into the namespace",
                t.signature, t.paddr, t.length
            )),
        }
    }
    if blocks.is_empty() {
        return (String::new(), Vec::new(), problems);
    }
    let t0 = now_ns();
    let mut ns = Namespace::new();
    for b in &blocks {
        ns.load(b);
    }
    let t1 = now_ns();
    problems.extend(ns.problems.iter().map(|p| format!("AML: {p}")));
    let (bridges, eval_problems) = aml::host_bridges(&ns);
    let t2 = now_ns();
    problems.extend(eval_problems.into_iter().map(|p| format!("AML: {p}")));
    let line = format!(
        "{}: {} objects, {} devices, {} PCI host bridges (loaded in {} us, evaluated in {} us)",
        ns.tables.join(" "),
        ns.objects.len(),
        ns.devices.len(),
        bridges.len(),
        t1.saturating_sub(t0) / 1000,
        t2.saturating_sub(t1) / 1000
    );
    (line, bridges, problems)
}

fn range_text(r: &aml::AddressRange) -> String {
    let kind = match r.kind {
        RangeKind::Memory => "mem",
        RangeKind::Io => "io",
        RangeKind::BusNumber => "bus",
    };
    if r.translation == 0 {
        format!("{kind} {:#x}-{:#x}", r.min, r.max)
    } else {
        format!(
            "{kind} {:#x}-{:#x} (translation {:#x})",
            r.min, r.max, r.translation
        )
    }
}

/// The report's view of one host bridge.
pub fn summary(b: &HostBridge) -> HostBridgeSummary {
    HostBridgeSummary {
        path: format!("{}", b.path),
        hid: b.hid.clone(),
        status: b.status,
        segment: b.segment,
        bus_start: b.bus_start,
        bus_end: b.bus_end,
        uid: b.uid,
        pxm: b.pxm,
        windows: b.windows.iter().map(range_text).collect(),
        routing: match &b.routing {
            Ok(e) => {
                let refused = e
                    .iter()
                    .filter_map(|x| match &x.source {
                        PrtSource::Link { gsi: Err(why), .. } => Some(why),
                        _ => None,
                    })
                    .next();
                match refused {
                    None => format!("{} entries", e.len()),
                    Some(why) => format!("{} entries; link devices not evaluated: {why}", e.len()),
                }
            }
            Err(e) => format!("not evaluated: {e}"),
        },
        problems: b.problems.clone(),
    }
}

/// Where enumeration starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// "ECAM (MCFG)" or "CF8/CFC", with ", roots from ACPI" when the namespace named them.
    pub source: String,
    pub segments: Vec<pci::Segment>,
    /// The host bridge of each entry of `segments` (same order); `None` without ACPI.
    pub bridges: Vec<Option<usize>>,
    pub from_acpi: bool,
    pub problems: Vec<String>,
}

/// The roots to enumerate: every present host bridge in namespace order, reached through the
/// MCFG window that covers its root bus (CF8/CFC for segment 0 when no window does); without
/// host bridges, each MCFG window's first bus (or CF8/CFC bus 0), to be completed by
/// [`probe_unreached`].
pub fn roots(windows: &[EcamWindow], bridges: &[HostBridge]) -> Roots {
    let mut r = Roots {
        source: String::from(if windows.is_empty() {
            "CF8/CFC"
        } else {
            "ECAM (MCFG)"
        }),
        segments: Vec::new(),
        bridges: Vec::new(),
        from_acpi: false,
        problems: Vec::new(),
    };
    for (i, b) in bridges.iter().enumerate() {
        if !b.present() {
            r.problems.push(format!(
                "{}: _STA {:#x} (not present): not enumerated",
                b.path, b.status
            ));
            continue;
        }
        let w = windows
            .iter()
            .find(|w| w.segment == b.segment && (w.start_bus..=w.end_bus).contains(&b.bus_start));
        let seg = match w {
            Some(w) => pci::Segment {
                segment: b.segment,
                start_bus: b.bus_start,
                end_bus: b.bus_end.min(w.end_bus),
                ecam: true,
            },
            None if b.segment == 0 => {
                if !windows.is_empty() {
                    r.problems.push(format!(
                        "{}: root bus {:#04x} is in no MCFG window; through CF8/CFC (no extended \
                         config space)",
                        b.path, b.bus_start
                    ));
                }
                pci::Segment {
                    segment: 0,
                    start_bus: b.bus_start,
                    end_bus: b.bus_end,
                    ecam: false,
                }
            }
            None => {
                r.problems.push(format!(
                    "{}: segment {:04x} has no MCFG window: its buses cannot be reached; not \
                     enumerated",
                    b.path, b.segment
                ));
                continue;
            }
        };
        r.segments.push(seg);
        r.bridges.push(Some(i));
    }
    if !r.segments.is_empty() {
        r.from_acpi = true;
        r.source.push_str(", roots from ACPI");
        return r;
    }
    if windows.is_empty() {
        r.segments.push(pci::Segment {
            segment: 0,
            start_bus: 0,
            end_bus: 255,
            ecam: false,
        });
    } else {
        r.segments.extend(windows.iter().map(|w| pci::Segment {
            segment: w.segment,
            start_bus: w.start_bus,
            end_bus: w.end_bus,
            ecam: true,
        }));
    }
    r.bridges = alloc::vec![None; r.segments.len()];
    r
}

/// Without ACPI roots: the bus numbers of each window that enumeration did not reach and that
/// have a device (function 0 of any device answers), as extra roots, each up to the next one.
/// Costs 32 config reads per bus not reached, and an enumeration below each root found.
pub fn probe_unreached(
    cfg: &dyn ConfigSpace,
    segments: &[pci::Segment],
    topo: &pci::Topology,
) -> Vec<pci::Segment> {
    let mut found: Vec<pci::Segment> = Vec::new();
    let mut reached: Vec<(u16, u8)> = topo.buses.iter().map(|b| (b.segment, b.number)).collect();
    for s in segments {
        for bus in s.start_bus..=s.end_bus {
            if reached.contains(&(s.segment, bus)) {
                continue;
            }
            let alive = (0..32u8).any(|d| {
                let id = cfg.read32(Sbdf::from_devfn(s.segment, bus, d << 3), 0);
                !matches!(id & 0xffff, 0xffff | 0)
            });
            if alive {
                let root = pci::Segment {
                    start_bus: bus,
                    ..*s
                };
                // What it reaches is not probed again (Linux scans each found bus at once).
                let below = pci::enumerate(cfg, &[root], &pci::EnumOptions::default());
                reached.extend(below.buses.iter().map(|b| (b.segment, b.number)));
                found.push(root);
            }
        }
    }
    // Each extra root ends below the next one of its segment.
    for i in 0..found.len() {
        if let Some(next) = found[i + 1..]
            .iter()
            .find(|n| n.segment == found[i].segment)
            .map(|n| n.start_bus)
        {
            found[i].end_bus = next - 1;
        }
    }
    found
}

/// The memory windows of the present host bridges (`_CRS`), as half-open ranges, each with
/// the bridge it belongs to; empty when no bridge has any.
pub fn crs_windows(bridges: &[HostBridge]) -> Vec<(Range<u64>, String)> {
    bridges
        .iter()
        .filter(|b| b.present())
        .flat_map(|b| {
            b.windows
                .iter()
                .filter(|w| w.kind == RangeKind::Memory && w.translation == 0)
                .map(move |w| (w.min..w.max.saturating_add(1), format!("{}", b.path)))
        })
        .collect()
}

/// The host bridge whose root bus holds `root` (a function on a root bus).
pub fn bridge_of(bridges: &[HostBridge], root: Sbdf) -> Option<&HostBridge> {
    bridges
        .iter()
        .find(|b| b.present() && b.segment == root.segment() && b.bus_start == root.bus())
}

/// Each function's legacy interrupt through its host bridge's `_PRT`: the pin swizzled at
/// each bridge above it (`(pin + device) % 4`, PCI-to-PCI Bridge spec §9.1, Linux's
/// `pci_swizzle_interrupt_pin`; bridges' own `_PRT` objects are not consulted), then the entry
/// for (device, pin) on the root bus. Returns (index, text) for functions with a pin.
pub fn irq_routes(topo: &pci::Topology, bridges: &[HostBridge]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, f) in topo.functions.iter().enumerate() {
        if f.interrupt_pin == 0 || f.physfn.is_some() {
            continue;
        }
        let orig = f.interrupt_pin - 1;
        let mut pin = orig;
        let mut at = i;
        while let Some(p) = topo.functions[at].parent.filter(|&p| p < at) {
            pin = (pin + topo.functions[at].sbdf.device()) % 4;
            at = p;
        }
        let root = topo.functions[at].sbdf;
        let name = ["INTA", "INTB", "INTC", "INTD"][usize::from(orig)];
        let Some(b) = bridge_of(bridges, root) else {
            continue;
        };
        let Ok(prt) = &b.routing else { continue };
        let text = match prt
            .iter()
            .find(|e| e.dev == root.device() && e.pin == pin)
            .map(|e| &e.source)
        {
            Some(PrtSource::Gsi(g)) => format!("{name} -> GSI {g}"),
            Some(PrtSource::Link {
                device, gsi: Ok(g), ..
            }) => format!("{name} -> GSI {g} ({device})"),
            Some(PrtSource::Link { device, .. }) => {
                format!("{name} -> {device} (link device not evaluated)")
            }
            None => format!(
                "{name} -> no _PRT entry for device {:02x} pin {} of {}",
                root.device(),
                ["A", "B", "C", "D"][usize::from(pin)],
                b.path
            ),
        };
        out.push((i, text));
    }
    out
}

#[cfg(test)]
mod tests;
