//! The CPU side of the report: vCPU 0's CPUID, every vCPU's status and CPUID differences, and
//! the MTRRs checked against the memory map and compared across vCPUs (optionally corrected by
//! making every vCPU use vCPU 0's, `mtrr=fix`).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

use log::{info, warn};
use report::{BootReport, CpuSummary, MtrrSummary, SmpSummary, VcpuStatus};
use xen::memmap::{MemType, MemoryMap};

use crate::options::MtrrMode;

/// What dom0 learnt about one vCPU (its per-CPU block, read once).
#[derive(Debug, Clone, Default)]
pub struct VcpuFacts {
    pub id: u32,
    /// dom0 has a per-CPU block for it (it was started, or tried).
    pub known: bool,
    /// Running (vCPU 0 always).
    pub up: bool,
    /// CPUID as that vCPU saw it.
    pub cpuid: Option<cpu::CpuidReport>,
    /// Its MTRRs as it read them.
    pub mtrr: Option<cpu::MtrrState>,
    /// When it reported in, since dom0's entry (0 for vCPU 0).
    pub online_ns: u64,
    /// Work items it has done.
    pub work_done: u64,
}

/// The vCPUs, as the CPU report needs them: their facts, and running MTRR writes on one.
pub trait Vcpus {
    /// Facts of vCPU `id` (read again: they change after an MTRR fix).
    fn facts(&self, id: u32) -> VcpuFacts;
    /// Write `(msr, value)` pairs on vCPU `id` and read its MTRRs back; how many were written.
    fn write_mtrrs(&self, id: u32, writes: &[(u32, u64)]) -> Result<u64, String>;
}

/// Fill `rep.cpu`, `rep.vcpu_list`, `rep.smp` and `rep.mtrr`. `can_fix`: the vCPUs can be
/// asked to rewrite their MTRRs (under Xen, with IPIs).
pub fn report_cpus(
    rep: &mut BootReport,
    map: &MemoryMap,
    vcpus: &dyn Vcpus,
    smp_summary: Option<SmpSummary>,
    mode: MtrrMode,
    can_fix: bool,
) {
    let bsp = vcpus.facts(0);
    if !bsp.known {
        return;
    }
    let bsp_cpuid = bsp.cpuid.clone();
    let phys_bits = bsp_cpuid.as_ref().map_or(36, |c| c.phys_addr_bits);
    if let Some(c) = &bsp_cpuid {
        info!(
            "CPU: {} family {} model {} stepping {} {:?}, {} physical address bits",
            c.vendor, c.family, c.model, c.stepping, c.brand, c.phys_addr_bits
        );
        rep.cpu = Some(CpuSummary {
            vendor: c.vendor.clone(),
            family: c.family,
            model: c.model,
            stepping: c.stepping,
            brand: c.brand.clone(),
            features: c.features.iter().map(|f| String::from(*f)).collect(),
            phys_addr_bits: c.phys_addr_bits,
            xen_tsc_mode: c.xen.as_ref().map_or(0, |x| x.tsc_mode),
            xen_tsc_emulated: c.xen.as_ref().is_some_and(|x| x.tsc_emulated),
            xen_hvm_flags: c.xen.as_ref().map_or_else(Vec::new, |x| {
                x.hvm_flags.iter().map(|f| String::from(*f)).collect()
            }),
        });
    }
    let mut states: Vec<(u32, cpu::MtrrState)> = Vec::new();
    for id in 0..rep.vcpus.max(1) {
        let v = if id == 0 {
            bsp.clone()
        } else {
            vcpus.facts(id)
        };
        if !v.known {
            rep.vcpu_list.push(VcpuStatus {
                id,
                ..Default::default()
            });
            continue;
        }
        let differences = match (&bsp_cpuid, &v.cpuid) {
            (Some(a), Some(b)) if id != 0 => cpu::cpuid::differences(a, b),
            _ => Vec::new(),
        };
        for d in &differences {
            warn!("vCPU {id}: CPUID differs from vCPU 0: {d}");
        }
        if let Some(m) = v.mtrr.clone() {
            states.push((id, m));
        }
        rep.vcpu_list.push(VcpuStatus {
            id,
            apic_id: v
                .cpuid
                .as_ref()
                .map_or(0, |c| c.x2apic_id.unwrap_or(c.initial_apic_id)),
            up: id == 0 || v.up,
            online_ns: if id == 0 { 0 } else { v.online_ns },
            work_done: v.work_done,
            cpuid_differences: differences,
            mtrr_problems: Vec::new(),
        });
    }
    rep.smp = smp_summary;

    let Some((_, first)) = states.first() else {
        info!("MTRR: not available (CPUID has no MTRR bit)");
        return;
    };
    let mut problems: Vec<String> = cpu::mtrr::check(first, map, &uncached_mmio(map), phys_bits)
        .iter()
        .map(|p| p.to_string())
        .collect();
    let only_states: Vec<cpu::MtrrState> = states.iter().map(|(_, m)| m.clone()).collect();
    let disagreements = cpu::mtrr::compare(&only_states);
    let consistent = disagreements.is_empty();
    let mut corrected = false;
    for p in &disagreements {
        problems.push(p.to_string());
    }
    if !consistent && mode == MtrrMode::Fix && can_fix {
        // corrections() indexes the states slice; map back to vCPU ids.
        let fixes: Vec<(u32, u32, u64)> = cpu::mtrr::corrections(&only_states)
            .into_iter()
            .map(|(i, m, v)| (states[i].0, m, v))
            .collect();
        let mut targets: Vec<u32> = fixes.iter().map(|f| f.0).collect();
        lean::sort_dedup(&mut targets);
        for id in targets {
            let writes: Vec<(u32, u64)> = fixes
                .iter()
                .filter(|f| f.0 == id)
                .map(|&(_, m, v)| (m, v))
                .collect();
            match vcpus.write_mtrrs(id, &writes) {
                Ok(n) => info!("MTRR: vCPU {id}: {n} MSRs rewritten to match vCPU 0"),
                Err(e) => problems.push(alloc::format!("MTRR fix on vCPU {id} failed: {e}")),
            }
        }
        let after: Vec<cpu::MtrrState> = (0..rep.vcpus)
            .filter_map(|id| vcpus.facts(id).mtrr)
            .collect();
        corrected = cpu::mtrr::compare(&after).is_empty();
    }
    for p in &problems {
        warn!("MTRR: {p}");
    }
    info!(
        "MTRR: {}, default {}, {} variable ranges, {} across {} vCPUs{}",
        if first.enabled() {
            "enabled"
        } else {
            "disabled"
        },
        first.default_type(),
        first.describe(phys_bits).len(),
        if consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        states.len(),
        if corrected { " (corrected)" } else { "" }
    );
    rep.mtrr = Some(MtrrSummary {
        enabled: first.enabled(),
        default_type: first.default_type().to_string(),
        variable: first.describe(phys_bits),
        fixed_enabled: first.fixed_enabled(),
        problems,
        consistent,
        corrected,
    });
}

/// MMIO that must not be cached: reserved ranges in the PCI hole, i.e. above the last RAM (or
/// RAM Xen withheld, "unusable") below 4 GiB: MMCONFIG, chipset and firmware MMIO. Reserved
/// ranges below that are firmware RAM (ACPI tables, SMM), rightly write-back.
fn uncached_mmio(map: &MemoryMap) -> Vec<(Range<u64>, bool)> {
    let top_of_low_ram = map.low_ram_end();
    map.regions()
        .iter()
        .filter(|r| r.kind == MemType::Reserved && r.addr >= top_of_low_ram && r.end() <= 1 << 32)
        .map(|r| (r.addr..r.end(), false))
        .collect()
}

#[cfg(test)]
mod tests;
