//! Capability lists: names, and bounded walks that survive hostile lists.
//!
//! The standard list starts at the pointer at 0x34 and lives in 0x40..0x100; the extended
//! list (PCIe, ECAM only) starts at 0x100 and lives in 0x100..0x1000. A walk stops, with a
//! problem naming the function and the offset, at a pointer into the header, an unaligned
//! pointer, a pointer it has seen before (a cycle), a header that reads all ones, or after
//! the most capabilities that fit (48 standard, 960 extended).

use crate::model::{Cap, ExtCap, Function, Msi, Msix, Pcie, Sriov};
use crate::regs::*;
use crate::{ConfigSpace, Sbdf, problem};
use alloc::format;
use alloc::vec::Vec;

/// Most standard capabilities that fit in 0x40..0x100.
pub const MAX_CAPS: usize = (0x100 - 0x40) / 4;
/// Most extended capabilities that fit in 0x100..0x1000.
pub const MAX_EXT_CAPS: usize = (0x1000 - 0x100) / 4;

/// The name of a standard capability (PCI Code and ID Assignment 1.11, section 2).
pub fn cap_name(id: u8) -> &'static str {
    match id {
        0x01 => "Power Management",
        0x02 => "AGP",
        0x03 => "VPD",
        0x04 => "Slot ID",
        0x05 => "MSI",
        0x06 => "CompactPCI Hot Swap",
        0x07 => "PCI-X",
        0x08 => "HyperTransport",
        0x09 => "Vendor Specific",
        0x0a => "Debug Port",
        0x0b => "CompactPCI Central Resource Control",
        0x0c => "PCI Hot-Plug",
        0x0d => "Bridge Subsystem Vendor ID",
        0x0e => "AGP 8x",
        0x0f => "Secure Device",
        0x10 => "PCI Express",
        0x11 => "MSI-X",
        0x12 => "SATA Data/Index",
        0x13 => "Advanced Features",
        0x14 => "Enhanced Allocation",
        0x15 => "Flattening Portal Bridge",
        _ => "unknown",
    }
}

/// The name of an extended capability (PCI Code and ID Assignment 1.11, section 3).
pub fn ext_cap_name(id: u16) -> &'static str {
    match id {
        0x0001 => "Advanced Error Reporting",
        0x0002 => "Virtual Channel",
        0x0003 => "Device Serial Number",
        0x0004 => "Power Budgeting",
        0x0005 => "Root Complex Link Declaration",
        0x0006 => "Root Complex Internal Link Control",
        0x0007 => "Root Complex Event Collector Endpoint Association",
        0x0008 => "Multi-Function Virtual Channel",
        0x0009 => "Virtual Channel (MFVC present)",
        0x000a => "RCRB Header",
        0x000b => "Vendor Specific",
        0x000c => "Configuration Access Correlation",
        0x000d => "Access Control Services",
        0x000e => "Alternative Routing-ID Interpretation",
        0x000f => "Address Translation Services",
        0x0010 => "SR-IOV",
        0x0011 => "MR-IOV",
        0x0012 => "Multicast",
        0x0013 => "Page Request",
        0x0015 => "Resizable BAR",
        0x0016 => "Dynamic Power Allocation",
        0x0017 => "TPH Requester",
        0x0018 => "Latency Tolerance Reporting",
        0x0019 => "Secondary PCI Express",
        0x001a => "PMUX",
        0x001b => "PASID",
        0x001c => "LN Requester",
        0x001d => "Downstream Port Containment",
        0x001e => "L1 PM Substates",
        0x001f => "Precision Time Measurement",
        0x0020 => "M-PCIe",
        0x0021 => "FRS Queueing",
        0x0022 => "Readiness Time Reporting",
        0x0023 => "Designated Vendor-Specific",
        0x0024 => "VF Resizable BAR",
        0x0025 => "Data Link Feature",
        0x0026 => "Physical Layer 16.0 GT/s",
        0x0027 => "Lane Margining at the Receiver",
        0x0028 => "Hierarchy ID",
        0x0029 => "Native PCIe Enclosure Management",
        0x002a => "Physical Layer 32.0 GT/s",
        0x002b => "Alternate Protocol",
        0x002c => "System Firmware Intermediary",
        0x002d => "Shadow Functions",
        0x002e => "Data Object Exchange",
        0x002f => "Device 3",
        0x0030 => "Integrity and Data Encryption",
        0x0031 => "Physical Layer 64.0 GT/s",
        _ => "unknown",
    }
}

/// The name of a PCIe device/port type (PCI Express Capabilities register bits 7:4).
pub fn pcie_type_name(port_type: u8) -> &'static str {
    match port_type {
        PCIE_TYPE_ENDPOINT => "endpoint",
        PCIE_TYPE_LEGACY_ENDPOINT => "legacy endpoint",
        PCIE_TYPE_ROOT_PORT => "root port",
        PCIE_TYPE_UPSTREAM => "upstream switch port",
        PCIE_TYPE_DOWNSTREAM => "downstream switch port",
        PCIE_TYPE_PCIE_TO_PCI => "PCIe-to-PCI bridge",
        PCIE_TYPE_PCI_TO_PCIE => "PCI-to-PCIe bridge",
        PCIE_TYPE_RC_ENDPOINT => "root complex integrated endpoint",
        PCIE_TYPE_RC_EVENT_COLLECTOR => "root complex event collector",
        _ => "reserved device/port type",
    }
}

/// A set of dword offsets seen in one walk (config space is 1024 dwords).
struct Seen([u64; 16]);

impl Seen {
    fn new() -> Seen {
        Seen([0; 16])
    }
    /// Marks `offset`; false if it was marked already.
    fn insert(&mut self, offset: u16) -> bool {
        let dword = usize::from(offset >> 2) & 1023;
        let (word, bit) = (dword / 64, dword % 64);
        let fresh = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        fresh
    }
}

/// Walks the standard capability list of `f` (header type 0 or 1, STATUS says a list is
/// there), filling `caps`, `pcie`, `msi`, `msix` and (bridges) `subsystem`.
pub(crate) fn walk_caps(cs: &dyn ConfigSpace, f: &mut Function) {
    let sbdf = f.sbdf;
    let mut ptr = (cs.read32(sbdf, CAP_PTR) & 0xff) as u16;
    let mut from = CAP_PTR;
    let mut seen = Seen::new();
    while ptr != 0 {
        if ptr < HEADER_END {
            problem(
                &mut f.problems,
                format!(
                    "{sbdf}: capability pointer at {from:#x} is {ptr:#x}, inside the header; \
                     rest of the list ignored"
                ),
            );
            return;
        }
        if ptr & 3 != 0 {
            problem(
                &mut f.problems,
                format!(
                    "{sbdf}: capability pointer at {from:#x} is {ptr:#x}, not dword aligned; \
                     rest of the list ignored"
                ),
            );
            return;
        }
        if !seen.insert(ptr) {
            problem(
                &mut f.problems,
                format!(
                    "{sbdf}: capability pointer at {from:#x} goes back to {ptr:#x} (a cycle); \
                     rest of the list ignored"
                ),
            );
            return;
        }
        if f.caps.len() >= MAX_CAPS {
            // Unreachable with the cycle check (48 aligned offsets in 0x40..0x100), kept as
            // the documented bound.
            problem(
                &mut f.problems,
                format!("{sbdf}: more than {MAX_CAPS} capabilities at {ptr:#x}; rest ignored"),
            );
            return;
        }
        let header = cs.read32(sbdf, ptr);
        if header == u32::MAX {
            problem(
                &mut f.problems,
                format!("{sbdf}: capability at {ptr:#x} reads all ones; rest of the list ignored"),
            );
            return;
        }
        let id = header as u8;
        let reg = (header >> 16) as u16;
        f.caps.push(Cap {
            id,
            offset: ptr,
            name: cap_name(id),
        });
        parse_cap(cs, f, id, ptr, reg);
        from = ptr + 1;
        ptr = u16::from((header >> 8) as u8);
    }
}

/// True (and a problem logged) if the `len` bytes of the capability at `at` do not fit below
/// `end`.
fn too_short(f: &mut Function, what: &str, at: u16, len: u16, end: u16) -> bool {
    if u32::from(at) + u32::from(len) > u32::from(end) {
        let sbdf = f.sbdf;
        problem(
            &mut f.problems,
            format!(
                "{sbdf}: {what} capability at {at:#x} needs {len:#x} bytes but config space \
                 ends at {end:#x}; not parsed"
            ),
        );
        true
    } else {
        false
    }
}

fn parse_cap(cs: &dyn ConfigSpace, f: &mut Function, id: u8, at: u16, reg: u16) {
    let sbdf = f.sbdf;
    match id {
        CAP_PCIE if f.pcie.is_none() => {
            let port_type = ((reg >> 4) & 0xf) as u8;
            let version = (reg & 0xf) as u8;
            let mut pcie = Pcie {
                offset: at,
                version,
                port_type,
                slot: reg & 0x100 != 0,
                ari_forwarding: false,
            };
            // Device Control 2 (ARI forwarding) matters only above other functions.
            let is_port = matches!(
                port_type,
                PCIE_TYPE_ROOT_PORT | PCIE_TYPE_DOWNSTREAM | PCIE_TYPE_PCI_TO_PCIE
            );
            if is_port && version >= 2 && !too_short(f, "PCI Express", at, PCIE_CAP_LEN, 0x100) {
                let ctl2 = cs.read32(sbdf, at + PCIE_DEVCTL2);
                pcie.ari_forwarding = ctl2 != u32::MAX && ctl2 & PCIE_ARI_FORWARDING != 0;
            }
            f.pcie_type = Some(pcie_type_name(port_type));
            f.pcie = Some(pcie);
        }
        CAP_MSI if f.msi.is_none() => {
            let mmc = (reg >> 1) & 7;
            if mmc > 5 {
                problem(
                    &mut f.problems,
                    format!(
                        "{sbdf}: MSI capability at {at:#x}: reserved Multiple Message Capable \
                         value {mmc}"
                    ),
                );
            }
            f.msi = Some(Msi {
                offset: at,
                vectors: 1 << mmc.min(5),
                addr64: reg & (1 << 7) != 0,
                masking: reg & (1 << 8) != 0,
                enabled: reg & 1 != 0,
            });
        }
        CAP_MSIX if f.msix.is_none() => {
            if too_short(f, "MSI-X", at, 12, 0x100) {
                return;
            }
            let table = cs.read32(sbdf, at + MSIX_TABLE);
            let pba = cs.read32(sbdf, at + MSIX_PBA);
            let msix = Msix {
                offset: at,
                table_size: (reg & 0x7ff) + 1,
                table_bir: (table & 7) as u8,
                table_offset: table & !7,
                pba_bir: (pba & 7) as u8,
                pba_offset: pba & !7,
                enabled: reg & (1 << 15) != 0,
                function_mask: reg & (1 << 14) != 0,
            };
            for (what, bir) in [("table", msix.table_bir), ("PBA", msix.pba_bir)] {
                if bir > 5 {
                    problem(
                        &mut f.problems,
                        format!(
                            "{sbdf}: MSI-X capability at {at:#x}: {what} in reserved BAR \
                             indicator {bir}"
                        ),
                    );
                }
            }
            f.msix = Some(msix);
        }
        CAP_SSVID if f.subsystem.is_none() => {
            if too_short(f, "Bridge Subsystem Vendor ID", at, 8, 0x100) {
                return;
            }
            f.subsystem = subsystem(cs.read32(sbdf, at + 4));
        }
        _ => {}
    }
}

/// (subsystem vendor, subsystem id) from the dword holding both, `None` if unset.
pub(crate) fn subsystem(dword: u32) -> Option<(u16, u16)> {
    let vendor = dword as u16;
    if vendor == 0 || vendor == 0xffff {
        None
    } else {
        Some((vendor, (dword >> 16) as u16))
    }
}

/// Walks the extended capability list of `f` from 0x100, filling `ext_caps`, `ari` and
/// `sriov` (without its VF BARs, which [`crate::bar`] sizes).
pub(crate) fn walk_ext_caps(cs: &dyn ConfigSpace, f: &mut Function) {
    let sbdf = f.sbdf;
    let mut at = EXT_CAP_START;
    let mut from = EXT_CAP_START;
    let mut seen = Seen::new();
    seen.insert(at);
    let mut count = 0usize;
    loop {
        let header = cs.read32(sbdf, at);
        if header == u32::MAX {
            let what = if at == EXT_CAP_START {
                "extended config space at 0x100 reads all ones (not reachable?)".into()
            } else {
                format!("extended capability at {at:#x} (pointed to from {from:#x}) reads all ones")
            };
            problem(&mut f.problems, format!("{sbdf}: {what}"));
            return;
        }
        if header == 0 && at == EXT_CAP_START {
            return; // No extended capabilities.
        }
        let id = header as u16;
        let version = ((header >> 16) & 0xf) as u8;
        let next = (header >> 20) as u16;
        if id != 0 {
            f.ext_caps.push(ExtCap {
                id,
                version,
                offset: at,
                name: ext_cap_name(id),
            });
            parse_ext_cap(cs, f, id, at);
        }
        count += 1;
        if next == 0 {
            return;
        }
        let bad = if next < EXT_CAP_START {
            Some("inside the standard config space")
        } else if next & 3 != 0 {
            Some("not dword aligned")
        } else if !seen.insert(next) {
            Some("seen before (a cycle)")
        } else if count >= MAX_EXT_CAPS {
            Some("beyond the most extended capabilities that fit")
        } else {
            None
        };
        if let Some(why) = bad {
            problem(
                &mut f.problems,
                format!(
                    "{sbdf}: extended capability at {at:#x} points to {next:#x}, {why}; \
                     rest of the list ignored"
                ),
            );
            return;
        }
        from = at;
        at = next;
    }
}

fn parse_ext_cap(cs: &dyn ConfigSpace, f: &mut Function, id: u16, at: u16) {
    let sbdf = f.sbdf;
    match id {
        EXT_ARI if !f.ari => {
            if too_short(f, "ARI", at, 8, CONFIG_SPACE_SIZE) {
                return;
            }
            f.ari = true;
            f.ari_next_fn = (cs.read32(sbdf, at + ARI_CAP) >> 8) as u8;
        }
        EXT_SRIOV if f.sriov.is_none() => {
            if too_short(f, "SR-IOV", at, SRIOV_CAP_LEN, CONFIG_SPACE_SIZE) {
                return;
            }
            let ctrl = cs.read32(sbdf, at + SRIOV_CTRL) as u16;
            let counts = cs.read32(sbdf, at + SRIOV_INITIAL_TOTAL);
            let num = cs.read32(sbdf, at + SRIOV_NUM_VFS) as u16;
            let offset_stride = cs.read32(sbdf, at + SRIOV_OFFSET_STRIDE);
            let vf_device = (cs.read32(sbdf, at + SRIOV_VF_DEVICE) >> 16) as u16;
            let s = Sriov {
                offset: at,
                total_vfs: (counts >> 16) as u16,
                initial_vfs: counts as u16,
                num_vfs: num,
                vf_offset: offset_stride as u16,
                vf_stride: (offset_stride >> 16) as u16,
                vf_device,
                vf_enabled: ctrl & SRIOV_CTRL_VFE != 0,
                vf_mse: ctrl & SRIOV_CTRL_VF_MSE != 0,
                ari_hierarchy: ctrl & SRIOV_CTRL_ARI_HIERARCHY != 0,
                control: ctrl,
                vf_bars: Vec::new(),
            };
            let mut bad = Vec::new();
            if s.num_vfs > s.total_vfs {
                bad.push(format!(
                    "NumVFs {} above TotalVFs {} (at {:#x})",
                    s.num_vfs,
                    s.total_vfs,
                    at + SRIOV_NUM_VFS
                ));
            }
            if s.initial_vfs > s.total_vfs {
                bad.push(format!(
                    "InitialVFs {} above TotalVFs {} (at {:#x})",
                    s.initial_vfs,
                    s.total_vfs,
                    at + SRIOV_INITIAL_TOTAL
                ));
            }
            if s.vf_enabled && s.num_vfs > 0 && s.vf_offset == 0 {
                bad.push(format!(
                    "First VF Offset 0 (at {:#x}) would put VF 0 on the PF itself",
                    at + SRIOV_OFFSET_STRIDE
                ));
            }
            if s.vf_enabled && s.num_vfs > 1 && s.vf_stride == 0 {
                bad.push(format!(
                    "VF Stride 0 (at {:#x}) with {} VFs",
                    at + SRIOV_OFFSET_STRIDE + 2,
                    s.num_vfs
                ));
            }
            for b in bad {
                problem(
                    &mut f.problems,
                    format!("{sbdf}: SR-IOV capability at {at:#x}: {b}"),
                );
            }
            f.sriov = Some(s);
        }
        _ => {}
    }
}

/// Finds the offset of extended capability `id` of `sbdf` (bounded walk, no problems
/// logged): `Err` says why it was not found.
pub fn find_ext_cap(cs: &dyn ConfigSpace, sbdf: Sbdf, id: u16) -> Result<u16, &'static str> {
    let mut at = EXT_CAP_START;
    let mut seen = Seen::new();
    seen.insert(at);
    for _ in 0..MAX_EXT_CAPS {
        let header = cs.read32(sbdf, at);
        if header == u32::MAX {
            return Err("extended config space reads all ones");
        }
        if header as u16 == id && header != 0 {
            return Ok(at);
        }
        let next = (header >> 20) as u16;
        if next == 0 {
            break;
        }
        if next < EXT_CAP_START || next & 3 != 0 || !seen.insert(next) {
            return Err("extended capability list is broken");
        }
        at = next;
    }
    Err("no such extended capability")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(cap_name(0x10), "PCI Express");
        assert_eq!(cap_name(0x11), "MSI-X");
        assert_eq!(cap_name(0x05), "MSI");
        assert_eq!(cap_name(0x01), "Power Management");
        assert_eq!(cap_name(0xee), "unknown");
        assert_eq!(ext_cap_name(0x10), "SR-IOV");
        assert_eq!(ext_cap_name(0x0e), "Alternative Routing-ID Interpretation");
        assert_eq!(ext_cap_name(0x0d), "Access Control Services");
        assert_eq!(ext_cap_name(0x01), "Advanced Error Reporting");
        assert_eq!(ext_cap_name(0x15), "Resizable BAR");
        assert_eq!(ext_cap_name(0x14), "unknown");
        assert_eq!(pcie_type_name(4), "root port");
        assert_eq!(pcie_type_name(5), "upstream switch port");
        assert_eq!(pcie_type_name(6), "downstream switch port");
        assert_eq!(pcie_type_name(7), "PCIe-to-PCI bridge");
        assert_eq!(pcie_type_name(0), "endpoint");
        assert_eq!(pcie_type_name(0xf), "reserved device/port type");
    }

    #[test]
    fn seen_set() {
        let mut s = Seen::new();
        assert!(s.insert(0x100));
        assert!(!s.insert(0x100));
        assert!(!s.insert(0x101)); // same dword
        assert!(s.insert(0xffc));
        assert!(!s.insert(0xffc));
        let mut s = Seen::new();
        assert!(s.insert(0xfffe)); // masked into range, never panics
    }
}
