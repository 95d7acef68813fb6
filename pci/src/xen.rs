//! The plan of `PHYSDEVOP_pci_device_add` calls: every function, in topological order, with
//! the flags Linux's `xen_add_device()` (drivers/xen/pci.c) would give it.
//!
//! - Bridges come before the functions behind them (Xen updates its `bus2bridge` table from a
//!   bridge's bus registers when the bridge is added), and a PF before its VFs (Xen adds an
//!   unknown PF itself when a VF names it, but reporting in order keeps its log readable).
//! - A VF gets `XEN_PCI_DEV_VIRTFN` and its PF in `physfn`.
//! - Otherwise a function gets `XEN_PCI_DEV_EXTFN` when ARI is enabled on its bus and its
//!   device number (devfn bits 7:3) is not 0, i.e. ARI function numbers 8..255, which exist
//!   only as ARI functions. ARI is enabled on a bus when the bridge above has ARI Forwarding
//!   Enable set (Device Control 2 bit 5) and function 0 on the bus has an ARI capability,
//!   which is how Linux sets `bus->self->ari_enabled`.

use crate::Sbdf;
use crate::model::Topology;
use crate::regs::{XEN_PCI_DEV_EXTFN, XEN_PCI_DEV_VIRTFN};
use alloc::vec::Vec;
use lean::VecMap;

/// One `PHYSDEVOP_pci_device_add` call (without `XEN_PCI_DEV_PXM`, which needs ACPI).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenAdd {
    pub sbdf: Sbdf,
    /// `XEN_PCI_DEV_EXTFN` (1), `XEN_PCI_DEV_VIRTFN` (2).
    pub flags: u32,
    /// The PF, for VFs.
    pub physfn: Option<Sbdf>,
}

/// Every function of `topo`, in the order to report them to Xen, with their flags.
pub fn xen_add_order(topo: &Topology) -> Vec<XenAdd> {
    let index: VecMap<Sbdf, usize> = topo
        .functions
        .iter()
        .enumerate()
        .map(|(i, f)| (f.sbdf, i))
        .collect();
    // The order is the enumeration's: depth first, bridges before their buses, VFs right
    // after their PF.
    topo.functions
        .iter()
        .map(|f| {
            if let Some(pf) = f.physfn {
                return XenAdd {
                    sbdf: f.sbdf,
                    flags: XEN_PCI_DEV_VIRTFN,
                    physfn: Some(pf),
                };
            }
            let ari_bus = f
                .parent
                .and_then(|p| topo.functions.get(p))
                .is_some_and(|bridge| bridge.pcie.is_some_and(|p| p.ari_forwarding))
                && index
                    .get(&Sbdf::from_devfn(f.sbdf.segment(), f.sbdf.bus(), 0))
                    .is_some_and(|&i| topo.functions[i].ari);
            let flags = if ari_bus && f.sbdf.device() != 0 {
                XEN_PCI_DEV_EXTFN
            } else {
                0
            };
            XenAdd {
                sbdf: f.sbdf,
                flags,
                physfn: None,
            }
        })
        .collect()
}
