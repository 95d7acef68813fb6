//! Phase 7: the CPU report (`hwdom::cpu_report`) from every vCPU's per-CPU block; with
//! `mtrr=fix`, the vCPUs whose MTRRs differ from vCPU 0's are made to rewrite them.

use alloc::string::String;
use core::sync::atomic::Ordering;

use hwdom::cpu_report::{VcpuFacts, Vcpus};
use hwdom::options::MtrrMode;
use report::{BootReport, SmpSummary};
use xen::memmap::MemoryMap;

use crate::hypercall::Xen;
use crate::{boot, percpu, smp, time};

/// dom0's vCPUs as `hwdom::cpu_report` sees them.
struct PerCpuBlocks {
    xen: Option<Xen>,
}

impl Vcpus for PerCpuBlocks {
    fn facts(&self, id: u32) -> VcpuFacts {
        let Some(c) = percpu::cpu(id as usize) else {
            return VcpuFacts {
                id,
                ..Default::default()
            };
        };
        let online = c.online_tsc.load(Ordering::Acquire);
        VcpuFacts {
            id,
            known: true,
            up: c.online.load(Ordering::Acquire),
            cpuid: c.cpuid.lock().clone(),
            mtrr: c.mtrr.lock().clone(),
            online_ns: time::ticks_to_ns(online.saturating_sub(boot::entry_tsc())),
            work_done: c.work_done.load(Ordering::Acquire),
        }
    }

    fn write_mtrrs(&self, id: u32, writes: &[(u32, u64)]) -> Result<u64, String> {
        let Some(x) = &self.xen else {
            return Err("no Xen: the other vCPUs are not running".into());
        };
        smp::queue_mtrr_fix(writes.iter().map(|&(m, v)| (id as usize, m, v)).collect());
        smp::run_on(x, id as usize, smp::apply_mtrr_fix, 0).map(|(n, _)| n)
    }
}

pub fn report(
    rep: &mut BootReport,
    map: &MemoryMap,
    smp_summary: Option<SmpSummary>,
    mode: MtrrMode,
    x: Option<Xen>,
) {
    hwdom::cpu_report::report_cpus(
        rep,
        map,
        &PerCpuBlocks { xen: x },
        smp_summary,
        mode,
        x.is_some(),
    );
}
