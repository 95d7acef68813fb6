//! Where dom0's time goes: counters its hot paths bump (hypercalls by number, TSC reads, service
//! passes) and the live `/cpu.txt` page that puts them next to Xen's CPU time of each domain
//! (`XEN_DOMCTL_getdomaininfo`'s `cpu_time`, as xentop shows it). A client reads the page
//! before and after a transfer; the differences say how much CPU dom0, each DomU and nobody
//! (idle, on one pCPU: the window minus their sum) spent, and on what.
//!
//! Each counter is one relaxed atomic add: no trap. Under QEMU's software CPU the things they
//! count are what costs: every hypercall and, where Xen emulates the TSC, every `rdtsc` is a
//! world switch (50-100 us each on the bench).

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};

use xen::domctl::{self, DomId, DomctlVersion};

use crate::hypercall::Xen;

/// Hypercalls made, by number (`__HYPERVISOR_*`; 64 and up are counted at 63).
static HYPERCALLS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
static TSC_READS: AtomicU64 = AtomicU64::new(0);
static PASSES: AtomicU64 = AtomicU64::new(0);

/// One hypercall `op` is about to be made.
pub fn hypercall(op: u32) {
    HYPERCALLS[(op as usize).min(63)].fetch_add(1, Ordering::Relaxed);
}

/// One `rdtsc`.
pub fn tsc_read() {
    TSC_READS.fetch_add(1, Ordering::Relaxed);
}

/// One pass of the DomU service loop (after a wakeup, or straight on when a ring was busy).
pub fn pass() {
    PASSES.fetch_add(1, Ordering::Relaxed);
}

/// The hypercalls the page names (Xen's `public/xen.h` numbers); the rest are `hc_other`.
const NAMED: [(u32, &str); 6] = [
    (20, "grant_table_op"),
    (29, "sched_op"),
    (32, "event_channel_op"),
    (36, "domctl"),
    (13, "multicall"),
    (24, "vcpu_op"),
];

/// The `/cpu.txt` page: one line of `key=value`, Xen's system time and CPU times in ns.
/// `domains`: whose `cpu_time` to include (dom0 is always first, as `d0_ns`); one Xen cannot
/// find (gone) is left out, unless `stopped` holds its final time.
pub fn cpu_page(
    x: &Xen,
    v: DomctlVersion,
    system_time_ns: u64,
    domains: impl Iterator<Item = DomId>,
    stopped: &[(DomId, u64)],
) -> String {
    let mut out = format!(
        "now_ns={system_time_ns} passes={} tsc_reads={}",
        PASSES.load(Ordering::Relaxed),
        TSC_READS.load(Ordering::Relaxed)
    );
    let mut other = 0;
    for (op, n) in HYPERCALLS.iter().enumerate() {
        let n = n.load(Ordering::Relaxed);
        match NAMED.iter().find(|(o, _)| *o as usize == op) {
            Some((_, name)) => {
                let _ = write!(out, " hc_{name}={n}");
            }
            None => other += n,
        }
    }
    let _ = write!(out, " hc_other={other}");
    // Each of dom0's vCPUs' running time (`VCPUOP_get_runstate_info`): the service loop's
    // vCPU 0 apart from the watchdog's vCPU 1, which `d0_ns` adds together.
    for id in (0..).take_while(|&id| crate::percpu::cpu(id).is_some()) {
        if let Ok(r) = xen::ops::vcpu_runstate(x, id as u32) {
            let _ = write!(out, " d0v{id}_run_ns={}", r.time_ns[0]);
        }
    }
    let mut shown: alloc::vec::Vec<DomId> = alloc::vec::Vec::new();
    for d in core::iter::once(0).chain(domains.filter(|&d| d != 0)) {
        if let Ok(i) = domctl::getdomaininfo(x, v, d) {
            let _ = write!(out, " d{d}_ns={}", i.cpu_time_ns);
            shown.push(d);
        }
    }
    for &(d, ns) in stopped.iter().filter(|(d, _)| !shown.contains(d)) {
        let _ = write!(out, " d{d}_ns={ns}");
    }
    out.push('\n');
    out
}
