//! The PCI part of the report, built from an enumeration (`pci::Topology`).

use super::*;

impl PciSummary {
    /// The summary of `topo`, every function's `xen_add` "not reported" and `enumerate_ns`
    /// 0 until the caller fills them in.
    pub fn from_topology(source: &str, topo: &pci::Topology) -> PciSummary {
        let segments = topo
            .segments
            .iter()
            .map(|s| {
                let mut text = String::new();
                let _ = write!(
                    text,
                    "{:04x} [bus {:02x}-{:02x}] {}",
                    s.segment,
                    s.start_bus,
                    s.end_bus,
                    if s.ecam { "ECAM" } else { "CF8/CFC" }
                );
                text
            })
            .collect();
        let functions = topo
            .functions
            .iter()
            .map(|f| PciFunction::from_function(f, topo))
            .collect();
        PciSummary {
            source: source.into(),
            segments,
            functions,
            mmcfg_reserved: Vec::new(),
            windows: Vec::new(),
            bar_moves: Vec::new(),
            renumber: Vec::new(),
            problems: topo.problems.clone(),
            tree: pci::tree::tree_text(topo),
            enumerate_ns: 0,
            enumerate_config_reads: 0,
            enumerate_config_writes: 0,
        }
    }

    /// Records what `PHYSDEVOP_pci_device_add` said for `sbdf`; false if no such function.
    pub fn set_xen_add(&mut self, sbdf: pci::Sbdf, result: XenAdd) -> bool {
        let name = alloc::format!("{sbdf}");
        match self.functions.iter_mut().find(|f| f.sbdf == name) {
            Some(f) => {
                f.xen_add = result;
                true
            }
            None => false,
        }
    }

    /// Problems of the summary and of every function.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
            + self
                .functions
                .iter()
                .map(|f| f.problems.len())
                .sum::<usize>()
    }
}

impl PciFunction {
    /// One function of `topo`, `xen_add` "not reported".
    pub fn from_function(f: &pci::Function, topo: &pci::Topology) -> PciFunction {
        use pci::FunctionKind;
        let mut kind = String::new();
        let _ = match (f.physfn, f.kind) {
            (Some(pf), _) => write!(kind, "VF of {pf}"),
            (None, FunctionKind::Endpoint) => write!(kind, "endpoint"),
            (
                None,
                FunctionKind::Bridge {
                    secondary,
                    subordinate,
                    ..
                },
            ) => write!(kind, "bridge [{secondary:02x}-{subordinate:02x}]"),
            (None, FunctionKind::CardBus) => write!(kind, "CardBus bridge"),
            (None, FunctionKind::Unknown(t)) => write!(kind, "unknown header type {t:#04x}"),
        };
        let parent = f
            .parent
            .and_then(|p| topo.functions.get(p))
            .map(|p| alloc::format!("{}", p.sbdf));
        let bars = f
            .bars
            .iter()
            .chain(f.rom.iter())
            .map(|b| PciBar {
                index: b.index,
                kind: b.kind.into(),
                prefetchable: b.prefetchable,
                address: b.address,
                size: b.size,
            })
            .collect();
        let caps = f
            .caps
            .iter()
            .map(|c| {
                let mut s = String::new();
                let _ = match c.id {
                    pci::regs::CAP_PCIE if f.pcie.is_some_and(|p| p.offset == c.offset) => {
                        write!(s, "{} ({})", c.name, f.pcie_type.unwrap_or("?"))
                    }
                    pci::regs::CAP_MSIX if f.msix.is_some_and(|m| m.offset == c.offset) => {
                        let size = f.msix.map_or(0, |m| m.table_size);
                        write!(s, "{} (table size {size})", c.name)
                    }
                    pci::regs::CAP_MSI if f.msi.is_some_and(|m| m.offset == c.offset) => {
                        let n = f.msi.map_or(0, |m| m.vectors);
                        let plural = if n == 1 { "" } else { "s" };
                        write!(s, "{} ({n} vector{plural})", c.name)
                    }
                    _ if c.name == "unknown" => write!(s, "unknown {:#04x}", c.id),
                    _ => write!(s, "{}", c.name),
                };
                s
            })
            .collect();
        let ext_caps = f
            .ext_caps
            .iter()
            .map(|c| {
                let mut s = String::new();
                let _ = match (&f.sriov, c.id) {
                    (Some(sr), pci::regs::EXT_SRIOV) if sr.offset == c.offset => {
                        write!(s, "{} ({} of {} VFs)", c.name, sr.num_vfs, sr.total_vfs)
                    }
                    _ if c.name == "unknown" => write!(s, "unknown {:#06x}", c.id),
                    _ => write!(s, "{}", c.name),
                };
                s
            })
            .collect();
        PciFunction {
            sbdf: alloc::format!("{}", f.sbdf),
            vendor: f.vendor,
            device: f.device,
            class: f.class,
            header_type: f.header_type,
            kind,
            parent,
            bars,
            caps,
            ext_caps,
            xen_add: XenAdd::NotReported,
            irq: String::new(),
            device_check: String::new(),
            problems: f.problems.clone(),
        }
    }
}
