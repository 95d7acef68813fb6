//! Phase 6: the other vCPUs. Each is brought up with `VCPUOP_up`, sent a piece of work whose
//! answer proves where it ran, and made to check its own VIRQ_TIMER. Then the boot watchdog
//! starts (vCPU 1 watches vCPU 0 from here to ready).

use alloc::format;

use hwdom::finding;
use hwdom::options::{Dom0Options, FaultTest};
use log::{error, info, warn};
use report::{BootReport, SmpSummary};

use crate::hypercall::{self, Xen};
use crate::{events, percpu, smp, time, watchdog};

/// What the vCPU phase leaves for the later ones.
#[derive(Debug)]
pub struct Started {
    /// vCPUs dom0 runs on (`maxcpus=` may leave some of Xen's down).
    pub run_vcpus: u32,
    pub summary: Option<SmpSummary>,
}

pub fn start(x: Option<Xen>, opts: &Dom0Options, rep: &mut BootReport) -> Started {
    smp::read_bsp_details();
    // `maxcpus=`: run on at most that many vCPUs (the rest stay down, and the container MADT
    // lists only the ones dom0 runs).
    let run_vcpus = match opts.maxcpus {
        Some(m) if m < rep.vcpus => {
            info!(
                "SMP: maxcpus={m}: running {m} of the {} vCPUs Xen gave dom0",
                rep.vcpus
            );
            m
        }
        _ => rep.vcpus,
    };
    let mut summary = None;
    match x {
        Some(x) => {
            if let Err(e) = smp::bind_bsp_ipi(&x) {
                finding::error(rep, format!("SMP: EVTCHNOP_bind_ipi for vCPU 0: {e}"));
            } else if run_vcpus > 1 {
                summary = Some(start_aps(x, run_vcpus, opts.fault_test, rep));
            }
        }
        None if rep.vcpus > 1 => {
            info!("SMP: without Xen dom0 stays on the boot CPU (no INIT-SIPI start yet)")
        }
        None => {}
    }
    time::phase("smp");
    if let Some(x) = x {
        start_watchdog(x, rep);
    }
    Started { run_vcpus, summary }
}

fn start_aps(x: Xen, run_vcpus: u32, fault: FaultTest, rep: &mut BootReport) -> SmpSummary {
    let r = smp::start_aps(&x, run_vcpus, events::shared_info_addr());
    let span = time::ticks_to_ns(r.last_online_tsc.saturating_sub(r.first_up_tsc));
    let mut summary = SmpSummary {
        started: r.started,
        failed: r.failed.clone(),
        first_up_to_last_online_ns: span,
        ipi_round_trip_ns: 0,
    };
    info!(
        "SMP: {} of {} APs online, {} us from the first VCPUOP_up to the last report",
        r.started,
        run_vcpus - 1,
        span / 1000
    );
    for f in &r.failed {
        finding::error(rep, format!("SMP: {f}"));
    }
    // Send each AP a piece of work and check its answer.
    for id in 1..run_vcpus as usize {
        match smp::run_on(&x, id, work_probe, id as u64) {
            Ok((v, ticks)) if v == probe_answer(id as u64, id as u64) => {
                let ns = time::ticks_to_ns(ticks);
                info!("SMP: vCPU {id} ran its work, round trip {} us", ns / 1000);
                if summary.ipi_round_trip_ns == 0 || ns < summary.ipi_round_trip_ns {
                    summary.ipi_round_trip_ns = ns;
                }
            }
            Ok((v, _)) => finding::error(
                rep,
                format!(
                    "SMP: vCPU {id} answered {v:#x}, expected {:#x}",
                    probe_answer(id as u64, id as u64)
                ),
            ),
            Err(e) => finding::error(rep, format!("SMP: vCPU {id}: work not done: {e}")),
        }
    }
    // Every AP's own timer: arm a one-shot there and wait for its VIRQ_TIMER.
    for id in 1..run_vcpus as usize {
        match smp::run_on(&x, id, timer_probe, 1_000_000) {
            Ok((ns, _)) if ns != u64::MAX => {
                log::debug!(
                    "SMP: vCPU {id}: 1 ms timer delivered after {} us",
                    ns / 1000
                )
            }
            Ok(_) => finding::error(
                rep,
                format!("SMP: vCPU {id}: its VIRQ_TIMER did not arrive"),
            ),
            Err(e) => finding::error(rep, format!("SMP: vCPU {id}: timer probe not run: {e}")),
        }
    }
    if fault == FaultTest::MtrrSkew {
        match smp::run_on(&x, 1, smp::skew_mtrr, 0) {
            Ok((v, _)) => warn!("fault-test: vCPU 1's MTRRdefType is now {v:#x}"),
            Err(e) => error!("fault-test: could not skew vCPU 1's MTRRs: {e}"),
        }
    }
    summary
}

/// From here to ready the boot is watched: vCPU 1 (when it is up) or the boot CPU's own timer
/// notices a phase that stops making progress and says where (`watchdog`).
fn start_watchdog(x: Xen, rep: &BootReport) {
    if let Some(xi) = &rep.xen
        && let Ok((v, _)) = xen::domctl::DomctlVersion::detect(&x, xi.major, xi.minor)
    {
        watchdog::set_domctl_version(v);
    }
    let ap = percpu::cpu(1).is_some_and(|c| c.online.load(core::sync::atomic::Ordering::Acquire));
    watchdog::start(&x, ap);
    if ap {
        info!("watchdog: vCPU 1 watches the boot");
    }
}

/// Work: the timer check on whichever vCPU runs it (its own VIRQ_TIMER port); the delivery
/// time in ns, or `u64::MAX` if the event never came.
fn timer_probe(delay_ns: u64) -> u64 {
    match hypercall::get().map(|x| events::timer_check(&x, delay_ns)) {
        Some(Ok(t)) => t.delivered_ns,
        _ => u64::MAX,
    }
}

/// The work each AP is sent: an answer that depends on the id in the per-CPU block of the vCPU
/// that runs it, so a right answer shows the work ran on the vCPU it was sent to.
fn work_probe(arg: u64) -> u64 {
    probe_answer(arg, u64::from(percpu::current().id))
}

fn probe_answer(arg: u64, id: u64) -> u64 {
    (arg << 32) ^ (id * 0x9e37_79b9) ^ 0x5a5a
}
