//! Enumeration: depth-first through PCI-to-PCI and PCIe bridges from each segment's first
//! bus, with every function's header, capabilities, extended capabilities, BARs (sized with
//! decoding off, see [`crate::bar`]) and SR-IOV virtual functions.
//!
//! Nothing read is trusted. Absent functions (vendor 0xffff or 0) are skipped; a function
//! whose header is garbage (its ID changes between two reads, the rest reads all ones, or
//! every register reads the same value) is skipped with a problem; bridges whose bus
//! numbers loop back, leave their parent's range, overlap a sibling, run past the segment or
//! reach a bus already scanned are listed but not followed; header types other than 0 and 1
//! are listed but neither sized nor followed; capability lists are walked with bounds. Every
//! problem is a string that names the function (`ssss:bb:dd.f`) and the register offset.
//! Enumeration always ends: each bus is scanned at most once and the function count is
//! capped ([`EnumOptions::max_functions`]).

use crate::bar;
use crate::caps;
use crate::model::*;
use crate::regs::*;
use crate::{ConfigSpace, Sbdf, problem};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Enumerates every segment in `segments`, depth first from its `start_bus`.
///
/// Several entries may name the same segment (other root buses); a bus already scanned is
/// not scanned again.
pub fn enumerate(cs: &dyn ConfigSpace, segments: &[Segment], opts: &EnumOptions) -> Topology {
    let mut e = Enumerator {
        cs,
        opts,
        topo: Topology {
            segments: segments.to_vec(),
            ..Topology::default()
        },
        scanned: Vec::new(),
        found: Found::default(),
        full: false,
    };
    for seg in segments {
        if e.full {
            break;
        }
        e.scan_segment(seg);
    }
    crate::check::check_overlaps(&mut e.topo);
    e.topo
}

/// Where a bus sits while its functions are probed.
#[derive(Debug)]
struct Frame {
    bus: u8,
    /// Highest bus number allowed below this bus (the bridge's subordinate, or the
    /// segment's end bus).
    hi: u8,
    parent: Option<usize>,
    depth: u8,
    /// Behind a PCIe root or downstream port: only device 0 exists (as Linux scans).
    only_dev0: bool,
    /// The bridge above has ARI Forwarding enabled.
    ari_fwd: bool,
    /// Functions follow the ARI Next Function chain (device 0's function 0 has ARI).
    ari: bool,
    /// Next devfn to probe.
    next: Option<u8>,
    /// Bus ranges of the bridges on this bus so far, with their function indices.
    claimed: Vec<(u8, u8, usize)>,
}

impl Frame {
    /// Moves to the next devfn after probing `devfn` (`found`: what was there, if anything).
    /// Returns a problem if an ARI chain is broken.
    fn advance(&mut self, devfn: u8, found: Option<&Function>) -> Option<String> {
        if devfn == 0 && self.ari_fwd && found.is_some_and(|f| f.ari) {
            self.ari = true;
        }
        if self.ari {
            self.next = None;
            let f = found?;
            if !f.ari || f.ari_next_fn == 0 {
                return None;
            }
            if f.ari_next_fn <= devfn {
                let at = f.ext_cap(EXT_ARI).map_or(0, |c| c.offset) + ARI_CAP + 1;
                return Some(format!(
                    "{}: ARI Next Function Number {:#x} (at {at:#x}) is not after function \
                     {devfn:#x}; the rest of the chain is ignored",
                    f.sbdf, f.ari_next_fn
                ));
            }
            self.next = Some(f.ari_next_fn);
            return None;
        }
        let (dev, func) = (devfn >> 3, devfn & 7);
        let next_dev = if self.only_dev0 || dev == 31 {
            None
        } else {
            Some((dev + 1) << 3)
        };
        self.next = if func == 0 {
            match found {
                Some(f) if f.multifunction => Some(devfn + 1),
                _ => next_dev,
            }
        } else if func < 7 {
            Some(devfn + 1)
        } else {
            next_dev
        };
        None
    }
}

/// The functions listed so far: a bit per devfn, per bus, per segment.
#[derive(Default)]
struct Found(Vec<(u16, Box<[[u64; 4]; 256]>)>);

impl Found {
    fn contains(&self, sbdf: &Sbdf) -> bool {
        let (bus, devfn) = (usize::from(sbdf.bus()), usize::from(sbdf.devfn()));
        self.0
            .iter()
            .find(|(s, _)| *s == sbdf.segment())
            .is_some_and(|(_, b)| b[bus][devfn / 64] & (1 << (devfn % 64)) != 0)
    }

    fn insert(&mut self, sbdf: Sbdf) {
        let i = match self.0.iter().position(|(s, _)| *s == sbdf.segment()) {
            Some(i) => i,
            None => {
                self.0.push((sbdf.segment(), Box::new([[0; 4]; 256])));
                self.0.len() - 1
            }
        };
        let (bus, devfn) = (usize::from(sbdf.bus()), usize::from(sbdf.devfn()));
        self.0[i].1[bus][devfn / 64] |= 1 << (devfn % 64);
    }
}

struct Enumerator<'a> {
    cs: &'a dyn ConfigSpace,
    opts: &'a EnumOptions,
    topo: Topology,
    /// Buses taken, per segment (scanned, or holding VFs).
    scanned: Vec<(u16, [u64; 4])>,
    found: Found,
    full: bool,
}

// Returned by value and unpacked at once; never stored, so the size is no cost.
#[allow(clippy::large_enum_variant)]
enum Probe {
    Absent,
    Garbage(String),
    Present(Function),
}

impl Enumerator<'_> {
    fn is_taken(&self, segment: u16, bus: u8) -> bool {
        self.scanned
            .iter()
            .find(|(s, _)| *s == segment)
            .is_some_and(|(_, bits)| bits[usize::from(bus / 64)] & (1 << (bus % 64)) != 0)
    }

    fn take(&mut self, segment: u16, bus: u8) {
        let i = match self.scanned.iter().position(|(s, _)| *s == segment) {
            Some(i) => i,
            None => {
                self.scanned.push((segment, [0; 4]));
                self.scanned.len() - 1
            }
        };
        self.scanned[i].1[usize::from(bus / 64)] |= 1 << (bus % 64);
    }

    fn scan_segment(&mut self, seg: &Segment) {
        let s = seg.segment;
        if seg.start_bus > seg.end_bus {
            problem(
                &mut self.topo.problems,
                format!(
                    "segment {s:04x}: start bus {:#04x} above end bus {:#04x}; not scanned",
                    seg.start_bus, seg.end_bus
                ),
            );
            return;
        }
        if self.is_taken(s, seg.start_bus) {
            problem(
                &mut self.topo.problems,
                format!(
                    "segment {s:04x}: root bus {:#04x} already scanned; not scanned again",
                    seg.start_bus
                ),
            );
            return;
        }
        self.take(s, seg.start_bus);
        self.topo.buses.push(Bus {
            segment: s,
            number: seg.start_bus,
            bridge: None,
        });
        let mut stack = vec![Frame {
            bus: seg.start_bus,
            hi: seg.end_bus,
            parent: None,
            depth: 0,
            only_dev0: false,
            ari_fwd: false,
            ari: false,
            next: Some(0),
            claimed: Vec::new(),
        }];
        while let Some(top) = stack.last_mut() {
            let Some(devfn) = top.next else {
                stack.pop();
                continue;
            };
            let sbdf = Sbdf::from_devfn(s, top.bus, devfn);
            let mut f = match probe(self.cs, sbdf, seg.ecam) {
                Probe::Absent => {
                    top.advance(devfn, None);
                    continue;
                }
                Probe::Garbage(why) => {
                    problem(&mut self.topo.problems, why);
                    top.advance(devfn, None);
                    continue;
                }
                Probe::Present(f) => f,
            };
            if self.found.contains(&sbdf) {
                // A VF listed already answers the scan with a real ID.
                problem(
                    &mut self.topo.problems,
                    format!(
                        "{sbdf}: answers the scan (ID {:04x}:{:04x} at 0x00) at the address of \
                     a VF already listed; not listed twice",
                        f.vendor, f.device
                    ),
                );
                top.advance(devfn, None);
                continue;
            }
            if self.topo.functions.len() >= self.opts.max_functions {
                self.stop(sbdf);
                return;
            }
            f.parent = top.parent;
            f.depth = top.depth;
            if let Some(p) = top.advance(devfn, Some(&f)) {
                problem(&mut f.problems, p);
            }
            if matches!(f.layout(), HEADER_ENDPOINT | HEADER_BRIDGE) {
                bar::read_bars(self.cs, &mut f, self.opts.size_bars);
                if f.sriov.is_some() {
                    bar::read_vf_bars(self.cs, &mut f, self.opts.size_bars);
                }
            }
            let hi = top.hi;
            let index = self.topo.functions.len();
            let child = match f.kind {
                FunctionKind::Bridge {
                    primary,
                    secondary,
                    subordinate,
                } => self.check_bridge(seg, top, &mut f, index, [primary, secondary, subordinate]),
                _ => None,
            };
            self.found.insert(sbdf);
            self.topo.functions.push(f);
            self.add_vfs(index, hi);
            if self.full {
                return;
            }
            if let Some((secondary, subordinate)) = child {
                let bridge = &self.topo.functions[index];
                let port = bridge.pcie.map(|p| p.port_type);
                let ari_fwd = bridge.pcie.is_some_and(|p| p.ari_forwarding);
                let depth = bridge.depth.saturating_add(1);
                self.take(s, secondary);
                self.topo.buses.push(Bus {
                    segment: s,
                    number: secondary,
                    bridge: Some(index),
                });
                stack.push(Frame {
                    bus: secondary,
                    hi: subordinate,
                    parent: Some(index),
                    depth,
                    only_dev0: matches!(
                        port,
                        Some(PCIE_TYPE_ROOT_PORT | PCIE_TYPE_DOWNSTREAM | PCIE_TYPE_PCI_TO_PCIE)
                    ),
                    ari_fwd,
                    ari: false,
                    next: Some(0),
                    claimed: Vec::new(),
                });
            }
        }
    }

    fn stop(&mut self, at: Sbdf) {
        self.full = true;
        problem(
            &mut self.topo.problems,
            format!(
                "{at}: more than {} functions; enumeration stopped here",
                self.opts.max_functions
            ),
        );
    }

    /// Checks a bridge's bus numbers; `Some((secondary, subordinate))` to scan behind it
    /// (subordinate clamped to the parent's range), `None` (with a problem) not to.
    fn check_bridge(
        &self,
        seg: &Segment,
        frame: &mut Frame,
        f: &mut Function,
        index: usize,
        [primary, secondary, subordinate]: [u8; 3],
    ) -> Option<(u8, u8)> {
        let sbdf = f.sbdf;
        let bus = frame.bus;
        let refuse = |f: &mut Function, why: String| {
            problem(
                &mut f.problems,
                format!("{sbdf}: bridge bus numbers (0x18): {why}; nothing behind it scanned"),
            );
            None
        };
        if secondary == 0 && subordinate == 0 {
            return refuse(f, "not configured (secondary and subordinate 0)".into());
        }
        if primary != bus {
            problem(
                &mut f.problems,
                format!(
                    "{sbdf}: bridge primary bus (0x18) is {primary:#04x}, but it sits on bus \
                     {bus:#04x}"
                ),
            );
        }
        if secondary <= bus {
            return refuse(
                f,
                format!(
                    "secondary bus {secondary:#04x} (0x19) is not above its own bus {bus:#04x} \
                     (a loop)"
                ),
            );
        }
        if secondary > seg.end_bus {
            return refuse(
                f,
                format!(
                    "secondary bus {secondary:#04x} (0x19) is beyond the segment's end bus \
                     {:#04x}",
                    seg.end_bus
                ),
            );
        }
        if secondary > frame.hi {
            return refuse(
                f,
                format!(
                    "secondary bus {secondary:#04x} (0x19) is outside its parent's range \
                     [{:#04x}-{:#04x}]",
                    bus, frame.hi
                ),
            );
        }
        if subordinate < secondary {
            return refuse(
                f,
                format!(
                    "subordinate bus {subordinate:#04x} (0x1a) is below secondary bus \
                     {secondary:#04x}"
                ),
            );
        }
        let mut sub = subordinate;
        if sub > frame.hi {
            problem(
                &mut f.problems,
                format!(
                    "{sbdf}: bridge subordinate bus {sub:#04x} (0x1a) is outside its parent's \
                     range [{bus:#04x}-{:#04x}]; scanned up to {:#04x} only",
                    frame.hi, frame.hi
                ),
            );
            sub = frame.hi;
        }
        if let Some(&(lo, up, other)) = frame
            .claimed
            .iter()
            .find(|&&(lo, up, _)| secondary <= up && lo <= sub)
        {
            let other = self.topo.functions[other].sbdf;
            return refuse(
                f,
                format!(
                    "bus range [{secondary:#04x}-{sub:#04x}] overlaps sibling {other}'s \
                     [{lo:#04x}-{up:#04x}]"
                ),
            );
        }
        if self.is_taken(seg.segment, secondary) {
            return refuse(
                f,
                format!("secondary bus {secondary:#04x} (0x19) was already scanned"),
            );
        }
        frame.claimed.push((secondary, sub, index));
        Some((secondary, sub))
    }

    /// Adds the VFs of the PF at `pf` (VF Enable set, NumVFs > 0) right after it.
    fn add_vfs(&mut self, pf: usize, hi: u8) {
        let pf_fn = &self.topo.functions[pf];
        let Some(s) = &pf_fn.sriov else { return };
        if !s.vf_enabled || s.num_vfs == 0 || s.vf_offset == 0 {
            return; // The last: a problem was logged when the capability was read.
        }
        let count = s.num_vfs.min(s.total_vfs);
        if count > 1 && s.vf_stride == 0 {
            return; // Logged with the capability.
        }
        let pf_sbdf = pf_fn.sbdf;
        let (offset, stride) = (s.vf_offset, s.vf_stride);
        let mut found_on_bus = None;
        for i in 0..count {
            if self.topo.functions.len() >= self.opts.max_functions {
                self.stop(pf_sbdf);
                return;
            }
            let vf = match vf_sbdf(pf_sbdf, offset, stride, i) {
                Ok(vf) => vf,
                Err(why) => {
                    problem(&mut self.topo.functions[pf].problems, why);
                    return;
                }
            };
            let why = if vf.bus() > hi {
                Some(format!(
                    "is beyond the bus range of the bridge above (up to {hi:#04x})"
                ))
            } else if vf.bus() != pf_sbdf.bus()
                && found_on_bus != Some(vf.bus())
                && self.is_taken(vf.segment(), vf.bus())
            {
                Some(format!(
                    "is on bus {:#04x}, which a bridge claims",
                    vf.bus()
                ))
            } else if self.found.contains(&vf) {
                Some("collides with a function found by the scan".into())
            } else {
                None
            };
            if let Some(why) = why {
                let at = self.topo.functions[pf]
                    .sriov
                    .as_ref()
                    .map_or(0, |s| s.offset + SRIOV_OFFSET_STRIDE);
                problem(
                    &mut self.topo.functions[pf].problems,
                    format!(
                        "{pf_sbdf}: VF {i} at {vf} (SR-IOV offset/stride at {at:#x}) {why}; skipped"
                    ),
                );
                continue;
            }
            if vf.bus() != pf_sbdf.bus() && found_on_bus != Some(vf.bus()) {
                self.take(vf.segment(), vf.bus());
                found_on_bus = Some(vf.bus());
            }
            if let Some(f) = self.probe_vf(pf, vf, i) {
                self.found.insert(vf);
                self.topo.functions.push(f);
            }
        }
    }

    fn probe_vf(&mut self, pf: usize, vf: Sbdf, i: u16) -> Option<Function> {
        let cs = self.cs;
        let class_rev = cs.read32(vf, CLASS_REV);
        let pf_fn = &mut self.topo.functions[pf];
        let pf_sbdf = pf_fn.sbdf;
        if class_rev == u32::MAX {
            problem(
                &mut pf_fn.problems,
                format!("{pf_sbdf}: VF {i} at {vf} does not answer (0x08 reads all ones); skipped"),
            );
            return None;
        }
        // A VF's ID register reads all ones (SR-IOV 1.1 section 3.4.1.1); some devices put
        // the PF's vendor and the VF device ID there. Anything else is another function.
        let id = cs.read32(vf, ID);
        let vf_device = pf_fn.sriov.as_ref().map_or(0, |s| s.vf_device);
        let own = u32::from(pf_fn.vendor) | u32::from(vf_device) << 16;
        if id != u32::MAX && id != own {
            problem(
                &mut pf_fn.problems,
                format!(
                    "{pf_sbdf}: VF {i} at {vf}: ID (0x00) reads {id:#010x}, not a VF's \
                     0xffffffff; another function answers there; skipped"
                ),
            );
            return None;
        }
        let header = cs.read32(vf, HEADER);
        let cmd_status = cs.read32(vf, COMMAND);
        let pf_fn = &self.topo.functions[pf];
        let s = pf_fn.sriov.as_ref()?;
        let header_type = (header >> 16) as u8;
        let mut f = Function {
            sbdf: vf,
            vendor: pf_fn.vendor,
            device: s.vf_device,
            subsystem: pf_fn.subsystem,
            revision: class_rev as u8,
            class: class_rev >> 8,
            header_type,
            multifunction: false,
            interrupt_pin: 0,
            kind: FunctionKind::Endpoint,
            command: cmd_status as u16,
            status: (cmd_status >> 16) as u16,
            bars: bar::vf_bars(&s.vf_bars, i),
            rom: None,
            caps: Vec::new(),
            ext_caps: Vec::new(),
            pcie_type: None,
            pcie: None,
            msi: None,
            msix: None,
            sriov: None,
            ari: false,
            ari_next_fn: 0,
            physfn: Some(pf_fn.sbdf),
            parent: pf_fn.parent,
            depth: pf_fn.depth,
            problems: Vec::new(),
        };
        let ecam = self
            .topo
            .segments
            .iter()
            .any(|seg| seg.segment == vf.segment() && seg.ecam);
        if header_type & 0x7f != HEADER_ENDPOINT {
            problem(
                &mut f.problems,
                format!("{vf}: VF header type {header_type:#04x} (0x0e), expected 0"),
            );
        } else {
            read_caps(cs, &mut f, ecam);
        }
        Some(f)
    }
}

/// VF `i` of `pf`: routing ID = PF's + First VF Offset + i * VF Stride.
pub fn vf_sbdf(pf: Sbdf, offset: u16, stride: u16, i: u16) -> Result<Sbdf, String> {
    let rid = u64::from(pf.bdf()) + u64::from(offset) + u64::from(i) * u64::from(stride);
    if rid > 0xffff {
        return Err(format!(
            "{pf}: VF {i} routing ID {rid:#x} (offset {offset:#x}, stride {stride:#x}) is past \
             bus 0xff"
        ));
    }
    Ok(Sbdf::from_devfn(pf.segment(), (rid >> 8) as u8, rid as u8))
}

/// Reads the header of `sbdf`: nothing written.
fn probe(cs: &dyn ConfigSpace, sbdf: Sbdf, ecam: bool) -> Probe {
    let id = cs.read32(sbdf, ID);
    let vendor = id as u16;
    if vendor == 0xffff || vendor == 0 {
        return Probe::Absent;
    }
    let class_rev = cs.read32(sbdf, CLASS_REV);
    let header = cs.read32(sbdf, HEADER);
    let cmd_status = cs.read32(sbdf, COMMAND);
    let again = cs.read32(sbdf, ID);
    if again != id {
        return Probe::Garbage(format!(
            "{sbdf}: ID (0x00) changed between two reads ({id:#010x}, then {again:#010x}); \
             garbage, skipped"
        ));
    }
    if [class_rev, header, cmd_status].contains(&u32::MAX) {
        return Probe::Garbage(format!(
            "{sbdf}: ID (0x00) {id:#010x} but COMMAND (0x04), class (0x08) or header type \
             (0x0c) reads all ones; garbage, skipped"
        ));
    }
    if class_rev == id && header == id && cmd_status == id {
        return Probe::Garbage(format!(
            "{sbdf}: every register (0x00-0x0c) reads {id:#010x}; garbage, skipped"
        ));
    }
    let header_type = (header >> 16) as u8;
    let class = class_rev >> 8;
    let mut f = Function {
        sbdf,
        vendor,
        device: (id >> 16) as u16,
        subsystem: None,
        revision: class_rev as u8,
        class,
        header_type,
        multifunction: header_type & HEADER_MULTIFUNCTION != 0,
        interrupt_pin: match (cs.read32(sbdf, INTERRUPT) >> 8) as u8 {
            p @ 1..=4 => p,
            _ => 0,
        },
        kind: FunctionKind::Endpoint,
        command: cmd_status as u16,
        status: (cmd_status >> 16) as u16,
        bars: Vec::new(),
        rom: None,
        caps: Vec::new(),
        ext_caps: Vec::new(),
        pcie_type: None,
        pcie: None,
        msi: None,
        msix: None,
        sriov: None,
        ari: false,
        ari_next_fn: 0,
        physfn: None,
        parent: None,
        depth: 0,
        problems: Vec::new(),
    };
    let is_ppb_class = class >> 8 == 0x0604 || class >> 8 == 0x0609;
    match header_type & 0x7f {
        HEADER_ENDPOINT => {
            f.subsystem = caps::subsystem(cs.read32(sbdf, SUBSYSTEM));
            if is_ppb_class {
                problem(
                    &mut f.problems,
                    format!(
                        "{sbdf}: class {class:06x} (0x09) says PCI-to-PCI bridge but header type \
                         (0x0e) is 0; treated as an endpoint"
                    ),
                );
            }
        }
        HEADER_BRIDGE => {
            let b = cs.read32(sbdf, BUS_NUMBERS);
            f.kind = FunctionKind::Bridge {
                primary: b as u8,
                secondary: (b >> 8) as u8,
                subordinate: (b >> 16) as u8,
            };
            if !is_ppb_class {
                problem(
                    &mut f.problems,
                    format!(
                        "{sbdf}: header type (0x0e) 1 (bridge) but class {class:06x} (0x09) is \
                         not a PCI-to-PCI bridge"
                    ),
                );
            }
        }
        HEADER_CARDBUS => {
            f.kind = FunctionKind::CardBus;
            problem(
                &mut f.problems,
                format!(
                    "{sbdf}: CardBus bridge (header type 2 at 0x0e): listed, not trusted; BARs \
                     and buses behind it not read"
                ),
            );
        }
        other => {
            f.kind = FunctionKind::Unknown(other);
            problem(
                &mut f.problems,
                format!("{sbdf}: unknown header type {other:#04x} (0x0e): listed, not trusted"),
            );
        }
    }
    if matches!(f.layout(), HEADER_ENDPOINT | HEADER_BRIDGE) {
        read_caps(cs, &mut f, ecam);
    }
    Probe::Present(f)
}

/// Standard capabilities (if STATUS says there are any), then extended ones (if extended
/// config space is reachable and the function is PCIe).
fn read_caps(cs: &dyn ConfigSpace, f: &mut Function, ecam: bool) {
    if f.status & STATUS_CAP_LIST != 0 {
        caps::walk_caps(cs, f);
    }
    if ecam && f.pcie.is_some() {
        caps::walk_ext_caps(cs, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_routing_ids() {
        let pf = Sbdf::new(0, 3, 0, 0).unwrap();
        assert_eq!(vf_sbdf(pf, 0x80, 2, 0).unwrap().to_string(), "0000:03:10.0");
        assert_eq!(vf_sbdf(pf, 0x80, 2, 3).unwrap().to_string(), "0000:03:10.6");
        assert_eq!(
            vf_sbdf(pf, 0x100, 1, 1).unwrap().to_string(),
            "0000:04:00.1"
        );
        let last = Sbdf::new(0, 0xff, 0, 0).unwrap();
        let e = vf_sbdf(last, 0x100, 1, 0).unwrap_err();
        assert!(e.contains("0000:ff:00.0: VF 0 routing ID 0x10000"), "{e}");
    }

    #[test]
    fn frame_walks_devices_and_functions() {
        let mut fr = Frame {
            bus: 0,
            hi: 0xff,
            parent: None,
            depth: 0,
            only_dev0: false,
            ari_fwd: false,
            ari: false,
            next: Some(0),
            claimed: Vec::new(),
        };
        let mut seen = Vec::new();
        while let Some(d) = fr.next {
            seen.push(d);
            fr.advance(d, None);
        }
        assert_eq!(seen.len(), 32);
        assert!(seen.iter().all(|d| d & 7 == 0));
        fr.only_dev0 = true;
        fr.next = Some(0);
        fr.advance(0, None);
        assert_eq!(fr.next, None);
    }
}
