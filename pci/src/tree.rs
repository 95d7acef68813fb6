//! Text for people: the hierarchy in the style of `lspci -tv` (IDs and class names instead of
//! names from pci.ids), and one function in detail.

use crate::model::{Function, FunctionKind, Topology};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use lean::VecMap;

/// The name of a class code (base class << 16 | sub-class << 8 | prog-if), as lspci names
/// them; the base class's name for sub-classes not listed.
pub fn class_name(class: u32) -> &'static str {
    let base = (class >> 16) as u8;
    let sub = (class >> 8) as u8;
    let prog_if = class as u8;
    match (base, sub) {
        (0x00, 0x00) => "Non-VGA unclassified device",
        (0x00, 0x01) => "VGA compatible unclassified device",
        (0x01, 0x00) => "SCSI storage controller",
        (0x01, 0x01) => "IDE interface",
        (0x01, 0x02) => "Floppy disk controller",
        (0x01, 0x04) => "RAID bus controller",
        (0x01, 0x05) => "ATA controller",
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x07) => "Serial Attached SCSI controller",
        (0x01, 0x08) => "Non-Volatile memory controller",
        (0x01, _) => "Mass storage controller",
        (0x02, 0x00) => "Ethernet controller",
        (0x02, 0x07) => "Infiniband controller",
        (0x02, _) => "Network controller",
        (0x03, 0x00) => "VGA compatible controller",
        (0x03, 0x01) => "XGA compatible controller",
        (0x03, 0x02) => "3D controller",
        (0x03, _) => "Display controller",
        (0x04, 0x00) => "Multimedia video controller",
        (0x04, 0x01) => "Multimedia audio controller",
        (0x04, 0x03) => "Audio device",
        (0x04, _) => "Multimedia controller",
        (0x05, 0x00) => "RAM memory",
        (0x05, 0x01) => "FLASH memory",
        (0x05, _) => "Memory controller",
        (0x06, 0x00) => "Host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x02) => "EISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, 0x05) => "PCMCIA bridge",
        (0x06, 0x07) => "CardBus bridge",
        (0x06, 0x09) => "Semi-transparent PCI-to-PCI bridge",
        (0x06, _) => "Bridge",
        (0x07, 0x00) => "Serial controller",
        (0x07, 0x01) => "Parallel controller",
        (0x07, 0x02) => "Multiport serial controller",
        (0x07, 0x03) => "Modem",
        (0x07, _) => "Communication controller",
        (0x08, 0x00) => "PIC",
        (0x08, 0x01) => "DMA controller",
        (0x08, 0x02) => "Timer",
        (0x08, 0x03) => "RTC",
        (0x08, 0x05) => "SD Host controller",
        (0x08, 0x06) => "IOMMU",
        (0x08, _) => "System peripheral",
        (0x09, _) => "Input device controller",
        (0x0a, _) => "Docking station",
        (0x0b, _) => "Processor",
        (0x0c, 0x00) => "FireWire (IEEE 1394)",
        (0x0c, 0x03) => match prog_if {
            0x00 => "USB controller (UHCI)",
            0x10 => "USB controller (OHCI)",
            0x20 => "USB controller (EHCI)",
            0x30 => "USB controller (xHCI)",
            _ => "USB controller",
        },
        (0x0c, 0x04) => "Fibre Channel",
        (0x0c, 0x05) => "SMBus",
        (0x0c, 0x07) => "IPMI Interface",
        (0x0c, _) => "Serial bus controller",
        (0x0d, _) => "Wireless controller",
        (0x0e, _) => "Intelligent controller",
        (0x0f, _) => "Satellite communications controller",
        (0x10, _) => "Encryption controller",
        (0x11, _) => "Signal processing controller",
        (0x12, _) => "Processing accelerators",
        (0x13, _) => "Non-Essential Instrumentation",
        (0x40, _) => "Coprocessor",
        (0xff, _) => "Unassigned class",
        _ => "Unknown class",
    }
}

/// What a tree line leads to.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// A root bus (segment, bus).
    Root(u16, u8),
    /// A function (index).
    Func(usize),
}

struct Tree<'a> {
    topo: &'a Topology,
    /// Children of each bridge (by index), and of each root bus (by segment, bus), in
    /// enumeration order.
    below: VecMap<usize, Vec<usize>>,
    roots: VecMap<(u16, u8), Vec<usize>>,
    out: String,
}

impl Tree<'_> {
    /// Prints `line`, then turns it into the start of the next line: every '+' or '|' becomes
    /// '|' (a sibling still to come), everything else a space.
    fn emit(&mut self, line: &mut String) {
        self.out.push_str(line);
        self.out.push('\n');
        let next: String = line
            .chars()
            .map(|c| if c == '+' || c == '|' { '|' } else { ' ' })
            .collect();
        *line = next;
    }

    fn list(&mut self, line: &mut String, nodes: &[Node]) {
        let col = line.len();
        match nodes {
            [] => self.emit(line),
            [only] => {
                line.push_str("--");
                self.node(line, *only);
            }
            _ => {
                for (i, n) in nodes.iter().enumerate() {
                    line.truncate(col);
                    line.push_str(if i + 1 == nodes.len() { "\\-" } else { "+-" });
                    self.node(line, *n);
                }
            }
        }
    }

    fn node(&mut self, line: &mut String, node: Node) {
        match node {
            Node::Root(segment, bus) => {
                let _ = write!(line, "[{segment:04x}:{bus:02x}]-");
                let kids = self.kids(self.roots.get(&(segment, bus)));
                self.list(line, &kids);
            }
            Node::Func(i) => {
                let topo = self.topo;
                let Some(f) = topo.functions.get(i) else {
                    return;
                };
                let parent_bus = f.parent.and_then(|p| match topo.functions.get(p)?.kind {
                    FunctionKind::Bridge { secondary, .. } => Some(secondary),
                    _ => None,
                });
                let on_own_bus = match parent_bus {
                    Some(b) => f.sbdf.bus() == b,
                    None => true,
                };
                if on_own_bus {
                    let _ = write!(line, "{:02x}.{:x}", f.sbdf.device(), f.sbdf.function());
                } else {
                    // A VF on a bus number past its PF's.
                    let _ = write!(
                        line,
                        "{:02x}:{:02x}.{:x}",
                        f.sbdf.bus(),
                        f.sbdf.device(),
                        f.sbdf.function()
                    );
                }
                match (f.kind, self.below.contains_key(&i)) {
                    (
                        FunctionKind::Bridge {
                            secondary,
                            subordinate,
                            ..
                        },
                        true,
                    ) => {
                        if secondary == subordinate {
                            let _ = write!(line, "-[{secondary:02x}]--");
                        } else {
                            let _ = write!(line, "-[{secondary:02x}-{subordinate:02x}]--");
                        }
                        let kids = self.kids(self.below.get(&i));
                        self.list(line, &kids);
                    }
                    _ => {
                        line.push_str("  ");
                        describe(line, f);
                        self.emit(line);
                    }
                }
            }
        }
    }

    fn kids(&self, list: Option<&Vec<usize>>) -> Vec<Node> {
        list.map(|l| l.iter().map(|&i| Node::Func(i)).collect())
            .unwrap_or_default()
    }
}

/// "8086:29c0 Host bridge", with " (VF of 0000:01:00.0)" for VFs.
fn describe(out: &mut String, f: &Function) {
    let _ = write!(
        out,
        "{:04x}:{:04x} {}",
        f.vendor,
        f.device,
        class_name(f.class)
    );
    if let Some(pf) = f.physfn {
        let _ = write!(out, " (VF of {pf})");
    }
}

/// The hierarchy as `lspci -tv` draws it, one line per function or empty bridge:
///
/// ```text
/// -[0000:00]-+-00.0  8086:29c0 Host bridge
///            +-01.0-[01]----00.0  1af4:1041 Ethernet controller
///            \-1f.0  8086:2918 ISA bridge
/// ```
///
/// A bridge that was scanned shows its bus range and what is behind it; one that was not
/// (bad bus numbers) shows as a plain line. Several root buses are drawn as siblings.
/// Empty for an empty topology.
pub fn tree_text(topo: &Topology) -> String {
    let mut t = Tree {
        topo,
        below: VecMap::new(),
        roots: VecMap::new(),
        out: String::new(),
    };
    // Children come after their bridge (the enumeration's order); anything else (a
    // hand-made topology) is left out rather than risking a loop.
    for (i, f) in topo.functions.iter().enumerate() {
        match f.parent {
            Some(p) if p < i => t.below.entry(p).or_default().push(i),
            Some(_) => {}
            None => t
                .roots
                .entry((f.sbdf.segment(), f.sbdf.bus()))
                .or_default()
                .push(i),
        }
    }
    // Bridges that were followed draw their bus even when nothing is on it.
    let mut roots: Vec<Node> = Vec::new();
    for bus in &topo.buses {
        match bus.bridge {
            Some(b) if b < topo.functions.len() => {
                t.below.entry(b).or_default();
            }
            Some(_) => {}
            None => roots.push(Node::Root(bus.segment, bus.number)),
        }
    }
    if topo.functions.is_empty() {
        return String::new();
    }
    let mut line = String::from("-");
    match roots.as_slice() {
        [one] => t.node(&mut line, *one),
        _ => {
            for (i, n) in roots.iter().enumerate() {
                line.truncate(1);
                line.push_str(if i + 1 == roots.len() { "\\-" } else { "+-" });
                t.node(&mut line, *n);
            }
        }
    }
    t.out
}

/// One function in detail, several lines, each ending in '\n':
///
/// ```text
/// 0000:01:00.0 1af4:1041 (rev 01) Ethernet controller [020000], header type 0x00 (endpoint)
///   subsystem 1af4:1100; below 0000:00:01.0 (depth 1); PCIe endpoint
///   command 0x0107 (I/O- Mem+ BusMaster+), status 0x0010
///   BAR 1 (0x14): mem32 at 0xfe800000, size 0x1000
///   capabilities: 0x40 MSI-X (table size 3), 0x50 PCI Express (endpoint)
///   extended capabilities: 0x100 Advanced Error Reporting v2
///   problem: ...
/// ```
pub fn detail_text(f: &Function) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{} {:04x}:{:04x} (rev {:02x}) {} [{:06x}], header type {:#04x} (",
        f.sbdf,
        f.vendor,
        f.device,
        f.revision,
        class_name(f.class),
        f.class,
        f.header_type
    );
    match f.kind {
        FunctionKind::Endpoint => s.push_str("endpoint"),
        FunctionKind::Bridge {
            primary,
            secondary,
            subordinate,
        } => {
            let _ = write!(
                s,
                "bridge, buses primary {primary:02x} secondary {secondary:02x} subordinate \
                 {subordinate:02x}"
            );
        }
        FunctionKind::CardBus => s.push_str("CardBus bridge, not trusted"),
        FunctionKind::Unknown(t) => {
            let _ = write!(s, "unknown type {t:#04x}, not trusted");
        }
    }
    if f.multifunction {
        s.push_str(", multi-function");
    }
    s.push_str(")\n ");
    match f.subsystem {
        Some((v, d)) => {
            let _ = write!(s, " subsystem {v:04x}:{d:04x};");
        }
        None => s.push_str(" no subsystem;"),
    }
    if let Some(pf) = f.physfn {
        let _ = write!(s, " VF of {pf};");
    }
    if f.depth == 0 {
        s.push_str(" on a root bus");
    } else {
        let _ = write!(s, " depth {}", f.depth);
    }
    if let Some(t) = f.pcie_type {
        let _ = write!(s, "; PCIe {t}");
        if f.pcie.is_some_and(|p| p.ari_forwarding) {
            s.push_str(" (ARI forwarding on)");
        }
    }
    if f.ari {
        let _ = write!(s, "; ARI (next function {:#x})", f.ari_next_fn);
    }
    s.push('\n');
    let flag = |on: bool| if on { '+' } else { '-' };
    let _ = writeln!(
        s,
        "  command {:#06x} (I/O{} Mem{} BusMaster{}), status {:#06x}",
        f.command,
        flag(f.command & 1 != 0),
        flag(f.command & 2 != 0),
        flag(f.command & 4 != 0),
        f.status
    );
    for b in f.bars.iter().chain(f.rom.iter()) {
        let _ = write!(s, "  {b}");
        if b.size != 0 {
            let _ = write!(s, " ({})", Human(b.size));
        }
        s.push('\n');
    }
    if let Some(sr) = &f.sriov {
        let _ = writeln!(
            s,
            "  SR-IOV: {} of {} VFs (initial {}), VF Enable{}, VF MSE{}, offset {:#x} stride {:#x}, \
             VF device {:04x}",
            sr.num_vfs,
            sr.total_vfs,
            sr.initial_vfs,
            flag(sr.vf_enabled),
            flag(sr.vf_mse),
            sr.vf_offset,
            sr.vf_stride,
            sr.vf_device
        );
        for b in &sr.vf_bars {
            let _ = write!(s, "  VF {b}");
            if b.size != 0 {
                let _ = write!(s, " ({} per VF)", Human(b.size));
            }
            s.push('\n');
        }
    }
    if !f.caps.is_empty() {
        s.push_str("  capabilities:");
        for (i, c) in f.caps.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(s, "{sep}{:#04x} {}", c.offset, c.name);
            match c.id {
                0x10 => {
                    if let Some(t) = f.pcie_type {
                        let _ = write!(s, " ({t})");
                    }
                }
                0x11 => {
                    if let Some(m) = f.msix.filter(|m| m.offset == c.offset) {
                        let _ = write!(
                            s,
                            " (table size {}, {})",
                            m.table_size,
                            if m.enabled { "enabled" } else { "disabled" }
                        );
                    }
                }
                0x05 => {
                    if let Some(m) = f.msi.filter(|m| m.offset == c.offset) {
                        let _ = write!(
                            s,
                            " ({} vector{}{}, {})",
                            m.vectors,
                            if m.vectors == 1 { "" } else { "s" },
                            if m.addr64 { ", 64-bit" } else { "" },
                            if m.enabled { "enabled" } else { "disabled" }
                        );
                    }
                }
                0x00 | 0x12..=0xff if c.name == "unknown" => {
                    let _ = write!(s, " (id {:#04x})", c.id);
                }
                _ => {}
            }
        }
        s.push('\n');
    }
    if !f.ext_caps.is_empty() {
        s.push_str("  extended capabilities:");
        for (i, c) in f.ext_caps.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let _ = write!(s, "{sep}{:#x} {} v{}", c.offset, c.name, c.version);
            if c.name == "unknown" {
                let _ = write!(s, " (id {:#06x})", c.id);
            }
        }
        s.push('\n');
    }
    for p in &f.problems {
        let _ = writeln!(s, "  problem: {p}");
    }
    s
}

/// A size as lspci prints it: "4K", "16M", "256", "1.5M" is not possible for BARs (powers
/// of two), so whole units only.
struct Human(u64);

impl core::fmt::Display for Human {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const UNITS: [(&str, u32); 4] = [("T", 40), ("G", 30), ("M", 20), ("K", 10)];
        for (unit, shift) in UNITS {
            if self.0 >> shift != 0 && self.0 & ((1 << shift) - 1) == 0 {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}
