//! pci's data model: what enumeration finds and every other module reads. A function
//! ([`Function`]) with its header, capabilities, BARs ([`Bar`]) and SR-IOV state, the buses,
//! and the [`Topology`] of a whole enumeration. No module here depends on another pci module
//! but `regs`, so `bar`, `caps`, `enumerate`, `sriov`, `assign`, `renumber`, `tree` and `xen`
//! all build on this one without a cycle.

use crate::Sbdf;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// What a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// 32-bit memory (including the PCI 2.x "below 1 MiB" type).
    Mem32,
    /// 64-bit memory: this slot and the next.
    Mem64,
    /// I/O ports.
    Io,
    /// Expansion ROM (memory).
    Rom,
}

impl BarKind {
    /// "mem32", "mem64", "io" or "rom".
    pub fn name(self) -> &'static str {
        match self {
            BarKind::Mem32 => "mem32",
            BarKind::Mem64 => "mem64",
            BarKind::Io => "io",
            BarKind::Rom => "rom",
        }
    }

    /// Memory (including the ROM), as opposed to I/O ports.
    pub fn is_memory(self) -> bool {
        !matches!(self, BarKind::Io)
    }
}

/// One BAR (or the expansion ROM, or one VF's share of a VF BAR).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    /// 0..=5 for BARs (the first slot of a 64-bit pair), 6 for the expansion ROM.
    pub index: u8,
    /// Config-space offset of the register (of the low half for 64-bit BARs).
    pub offset: u16,
    pub kind: BarKind,
    pub prefetchable: bool,
    /// The address programmed (firmware's assignment); 0 if unassigned.
    pub address: u64,
    /// Bytes decoded; 0 if not sized (sizing off, or a nonsense size mask).
    pub size: u64,
    /// The BAR decodes now: COMMAND.IO or COMMAND.MEM for its kind (and the enable bit for
    /// the ROM; VF Memory Space Enable for VF BARs).
    pub enabled: bool,
    /// What is wrong with it, each naming the function and the register offset.
    pub problems: Vec<String>,
}

impl Bar {
    /// One past the last byte decoded (saturating).
    pub fn end(&self) -> u64 {
        self.address.saturating_add(self.size)
    }
}

impl fmt::Display for Bar {
    /// "BAR 0 (0x10): mem64 prefetchable at 0xfe000000, size 0x4000" (and ", disabled").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == BarKind::Rom {
            write!(f, "ROM ({:#x}): rom", self.offset)?;
        } else {
            write!(
                f,
                "BAR {} ({:#x}): {}",
                self.index,
                self.offset,
                self.kind.name()
            )?;
        }
        if self.prefetchable {
            f.write_str(" prefetchable")?;
        }
        write!(f, " at {:#x}", self.address)?;
        if self.size == 0 {
            f.write_str(", size unknown")?;
        } else {
            write!(f, ", size {:#x}", self.size)?;
        }
        if !self.enabled {
            f.write_str(", disabled")?;
        }
        Ok(())
    }
}

/// One ECAM region (MCFG entry) or, for CF8/CFC, segment 0 buses 0..=255.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub segment: u16,
    /// Enumeration starts here (the root bus).
    pub start_bus: u8,
    /// No bus number above this is scanned.
    pub end_bus: u8,
    /// Extended config space (>= 0x100) is reachable (ECAM; not CF8/CFC).
    pub ecam: bool,
}

/// How to enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnumOptions {
    /// Size BARs (writes to BARs and COMMAND, always with decoding off). Without it nothing
    /// is written, and BARs are listed with their addresses and size 0.
    pub size_bars: bool,
    /// Stop after this many functions (VFs included).
    pub max_functions: usize,
}

impl Default for EnumOptions {
    fn default() -> Self {
        EnumOptions {
            size_bars: true,
            max_functions: 4096,
        }
    }
}

/// What a function's header says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// Header type 0.
    Endpoint,
    /// Header type 1 (PCI-to-PCI bridge, PCIe port), with its bus-number registers.
    Bridge {
        primary: u8,
        secondary: u8,
        subordinate: u8,
    },
    /// Header type 2: listed, not trusted (no BARs, nothing behind it scanned).
    CardBus,
    /// Any other header type (bits 6:0): listed, not trusted.
    Unknown(u8),
}

/// A standard capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub id: u8,
    pub offset: u16,
    pub name: &'static str,
}

/// An extended capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtCap {
    pub id: u16,
    pub version: u8,
    pub offset: u16,
    pub name: &'static str,
}

/// The PCI Express capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pcie {
    pub offset: u16,
    /// Capability version (1 or 2).
    pub version: u8,
    /// Device/port type (bits 7:4 of the PCI Express Capabilities register).
    pub port_type: u8,
    /// Slot implemented (ports).
    pub slot: bool,
    /// ARI Forwarding Enable (Device Control 2 bit 5); read for root and downstream ports
    /// and PCI-to-PCIe bridges only.
    pub ari_forwarding: bool,
}

/// The MSI capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msi {
    pub offset: u16,
    /// Vectors the function can request (1..=32).
    pub vectors: u8,
    pub addr64: bool,
    pub masking: bool,
    pub enabled: bool,
}

/// The MSI-X capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msix {
    pub offset: u16,
    /// Entries in the table (1..=2048).
    pub table_size: u16,
    pub table_bir: u8,
    pub table_offset: u32,
    pub pba_bir: u8,
    pub pba_offset: u32,
    pub enabled: bool,
    pub function_mask: bool,
}

/// The SR-IOV capability of a PF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sriov {
    pub offset: u16,
    pub total_vfs: u16,
    pub initial_vfs: u16,
    pub num_vfs: u16,
    /// First VF Offset and VF Stride, in routing IDs.
    pub vf_offset: u16,
    pub vf_stride: u16,
    pub vf_device: u16,
    /// VF Enable.
    pub vf_enabled: bool,
    /// VF Memory Space Enable.
    pub vf_mse: bool,
    /// ARI Capable Hierarchy.
    pub ari_hierarchy: bool,
    /// The SR-IOV Control register as read.
    pub control: u16,
    /// Each VF's share of the VF BARs: VF 0's address, the size per VF.
    pub vf_bars: Vec<Bar>,
}

/// One function found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    pub sbdf: Sbdf,
    /// For VFs, the PF's vendor (a VF's own ID register reads 0xffff).
    pub vendor: u16,
    /// For VFs, the VF Device ID from the PF's SR-IOV capability.
    pub device: u16,
    pub subsystem: Option<(u16, u16)>,
    pub revision: u8,
    /// Base class << 16 | sub-class << 8 | programming interface.
    pub class: u32,
    /// The raw header type register (bit 7: multi-function).
    pub header_type: u8,
    pub multifunction: bool,
    /// Interrupt Pin (0x3d): 0 none, 1..4 INTA..INTD (0 for a VF, which has no INTx).
    pub interrupt_pin: u8,
    pub kind: FunctionKind,
    /// COMMAND and STATUS as first read.
    pub command: u16,
    pub status: u16,
    pub bars: Vec<Bar>,
    pub rom: Option<Bar>,
    pub caps: Vec<Cap>,
    pub ext_caps: Vec<ExtCap>,
    /// The PCIe device/port type's name, if the function has a PCIe capability.
    pub pcie_type: Option<&'static str>,
    pub pcie: Option<Pcie>,
    pub msi: Option<Msi>,
    pub msix: Option<Msix>,
    pub sriov: Option<Sriov>,
    /// Has an ARI capability.
    pub ari: bool,
    /// The ARI capability's Next Function Number (0 without ARI).
    pub ari_next_fn: u8,
    /// For VFs, the PF.
    pub physfn: Option<Sbdf>,
    /// Index (in [`Topology::functions`]) of the bridge above; `None` on a root bus.
    pub parent: Option<usize>,
    /// Bridges between the root bus and this function.
    pub depth: u8,
    /// Everything wrong with this function, its BARs' problems included; each names the
    /// function and the register offset.
    pub problems: Vec<String>,
}

impl Function {
    /// Header layout (type 0, 1, 2...), without the multi-function bit.
    pub fn layout(&self) -> u8 {
        self.header_type & 0x7f
    }

    pub fn is_bridge(&self) -> bool {
        matches!(self.kind, FunctionKind::Bridge { .. })
    }

    pub fn is_vf(&self) -> bool {
        self.physfn.is_some()
    }

    /// The capability with this ID, if any.
    pub fn cap(&self, id: u8) -> Option<&Cap> {
        self.caps.iter().find(|c| c.id == id)
    }

    /// The extended capability with this ID, if any.
    pub fn ext_cap(&self, id: u16) -> Option<&ExtCap> {
        self.ext_caps.iter().find(|c| c.id == id)
    }
}

/// A bus that was scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bus {
    pub segment: u16,
    pub number: u8,
    /// Index of the bridge whose secondary bus it is; `None` for a root bus.
    pub bridge: Option<usize>,
}

/// Everything enumeration found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    pub segments: Vec<Segment>,
    /// In topological order: each bridge before what is behind it, each PF before its VFs.
    pub functions: Vec<Function>,
    /// Buses scanned, in scan order.
    pub buses: Vec<Bus>,
    /// Problems not tied to a listed function (garbage functions, segment trouble, limits).
    pub problems: Vec<String>,
}

impl Topology {
    /// Index of the top of `i`'s chain of bridges: the function on a root bus above it.
    pub fn root_of(&self, mut i: usize) -> usize {
        // Parents come before their children (topological order): this ends.
        while let Some(p) = self
            .functions
            .get(i)
            .and_then(|f| f.parent)
            .filter(|&p| p < i)
        {
            i = p;
        }
        i
    }

    /// What lies below root bus `bus` of `segment` (the functions on it and everything behind
    /// their bridges), as a topology of its own with parent indices renumbered: per-root work,
    /// such as placing BARs in that host bridge's `_CRS` windows.
    pub fn root_subtree(&self, segment: u16, bus: u8) -> Topology {
        let on_root = |i: usize| {
            let r = self.functions[self.root_of(i)].sbdf;
            r.segment() == segment && r.bus() == bus
        };
        let keep: Vec<usize> = (0..self.functions.len()).filter(|&i| on_root(i)).collect();
        let new_index = |old: usize| keep.iter().position(|&k| k == old);
        let functions = keep
            .iter()
            .map(|&i| {
                let mut f = self.functions[i].clone();
                f.parent = f.parent.and_then(new_index);
                f
            })
            .collect();
        let buses = self
            .buses
            .iter()
            .filter_map(|b| match b.bridge {
                None if b.segment == segment && b.number == bus => Some(*b),
                Some(br) => new_index(br).map(|n| Bus {
                    bridge: Some(n),
                    ..*b
                }),
                None => None,
            })
            .collect();
        Topology {
            segments: self
                .segments
                .iter()
                .filter(|s| s.segment == segment && s.start_bus == bus)
                .cloned()
                .collect(),
            functions,
            buses,
            problems: Vec::new(),
        }
    }

    /// Index of the function at `sbdf` (linear search).
    pub fn index_of(&self, sbdf: Sbdf) -> Option<usize> {
        self.functions.iter().position(|f| f.sbdf == sbdf)
    }

    pub fn find(&self, sbdf: Sbdf) -> Option<&Function> {
        self.functions.iter().find(|f| f.sbdf == sbdf)
    }

    /// Indices of the functions directly below the bridge at `index` (VFs of PFs there
    /// included), or on the root buses for `None`.
    pub fn children(&self, index: Option<usize>) -> impl Iterator<Item = usize> + '_ {
        self.functions
            .iter()
            .enumerate()
            .filter(move |(_, f)| f.parent == index)
            .map(|(i, _)| i)
    }

    /// Topology-level problems, then every function's.
    pub fn all_problems(&self) -> impl Iterator<Item = &str> {
        self.problems
            .iter()
            .chain(self.functions.iter().flat_map(|f| f.problems.iter()))
            .map(String::as_str)
    }

    pub fn problem_count(&self) -> usize {
        self.problems.len()
            + self
                .functions
                .iter()
                .map(|f| f.problems.len())
                .sum::<usize>()
    }
}
