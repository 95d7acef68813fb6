//! Turning SR-IOV virtual functions on (on request; enumeration never does).

use crate::caps::find_ext_cap;
use crate::enumerate::vf_sbdf;
use crate::regs::*;
use crate::{ConfigSpace, Sbdf};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The SBDFs of VFs 0..count of `pf` for a First VF Offset and VF Stride.
pub fn vf_sbdfs(pf: Sbdf, offset: u16, stride: u16, count: u16) -> Result<Vec<Sbdf>, String> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if offset == 0 {
        return Err(format!(
            "{pf}: First VF Offset is 0, which would put VF 0 on the PF"
        ));
    }
    if count > 1 && stride == 0 {
        return Err(format!("{pf}: VF Stride is 0 with {count} VFs"));
    }
    (0..count).map(|i| vf_sbdf(pf, offset, stride, i)).collect()
}

/// Enables `count` VFs on the PF at `pf`: clears VF Enable if it was set, writes NumVFs,
/// reads First VF Offset and VF Stride (which may depend on NumVFs), then sets VF Enable and
/// VF Memory Space Enable. `count` 0 only disables. Returns the VFs' addresses.
///
/// Needs extended config space (ECAM). The PCIe spec wants 100 ms before the new VFs are
/// touched (SR-IOV 1.1 section 3.3.3.1); waiting is the caller's job, as is reporting the VFs
/// to Xen afterwards (PF first). The ARI Capable Hierarchy bit is left as the firmware set
/// it. The bridge above must route the VFs' bus numbers, which this does not check.
pub fn enable_vfs(cs: &dyn ConfigSpace, pf: Sbdf, count: u16) -> Result<Vec<Sbdf>, String> {
    let at = find_ext_cap(cs, pf, EXT_SRIOV)
        .map_err(|why| format!("{pf}: no SR-IOV capability (from 0x100): {why}"))?;
    let total = (cs.read32(pf, at + SRIOV_INITIAL_TOTAL) >> 16) as u16;
    if count > total {
        return Err(format!(
            "{pf}: {count} VFs asked for, but TotalVFs (at {:#x}) is {total}",
            at + SRIOV_INITIAL_TOTAL + 2
        ));
    }
    let ctrl = cs.read32(pf, at + SRIOV_CTRL) as u16;
    let off = ctrl & !(SRIOV_CTRL_VFE | SRIOV_CTRL_VF_MSE);
    if ctrl != off {
        // The upper half (SR-IOV Status) is write-1-to-clear: write zeros there.
        cs.write32(pf, at + SRIOV_CTRL, u32::from(off));
    }
    cs.write32(pf, at + SRIOV_NUM_VFS, u32::from(count));
    if count == 0 {
        return Ok(Vec::new());
    }
    let num = cs.read32(pf, at + SRIOV_NUM_VFS) as u16;
    if num != count {
        return Err(format!(
            "{pf}: NumVFs (at {:#x}) reads {num} after writing {count}",
            at + SRIOV_NUM_VFS
        ));
    }
    let os = cs.read32(pf, at + SRIOV_OFFSET_STRIDE);
    let vfs = vf_sbdfs(pf, os as u16, (os >> 16) as u16, count)
        .map_err(|e| format!("{e} (SR-IOV capability at {at:#x}); VFs left disabled"))?;
    let on = off | SRIOV_CTRL_VFE | SRIOV_CTRL_VF_MSE;
    cs.write32(pf, at + SRIOV_CTRL, u32::from(on));
    let now = cs.read32(pf, at + SRIOV_CTRL) as u16;
    if now & SRIOV_CTRL_VFE == 0 {
        return Err(format!(
            "{pf}: VF Enable (at {:#x}) did not stick (reads {now:#06x})",
            at + SRIOV_CTRL
        ));
    }
    Ok(vfs)
}
