//! Phase 5: shared_info and the upcall, VIRQ_TIMER checked, the vCPU count, and the
//! interdomain event channel and grant table self-tests (what the DomU backends will need).

use alloc::format;
use alloc::string::ToString;

use hwdom::finding;
use log::info;
use report::{BootReport, TimerCheck};

use crate::hypercall::Xen;
use crate::{arch, boot, events, time};

pub fn init(x: Option<Xen>, rep: &mut BootReport) {
    let Some(x) = x else {
        time::phase("events");
        return;
    };
    match events::init(&x) {
        Ok(port) => {
            info!(
                "events: shared_info mapped, upcall vector {:#x}, VIRQ_TIMER on port {}",
                arch::UPCALL_VECTOR,
                port.0
            );
            match events::timer_check(&x, 1_000_000) {
                Ok(t) => {
                    info!(
                        "timer: 1 ms one-shot delivered as VIRQ_TIMER after {} us ({} SCHEDOP_poll)",
                        t.delivered_ns / 1000,
                        t.polls
                    );
                    rep.timer = Some(TimerCheck {
                        requested_ns: t.requested_ns,
                        delivered_ns: t.delivered_ns,
                        via: "VIRQ_TIMER".to_string(),
                    });
                }
                Err((what, e)) => finding::error(rep, format!("timer: {what}: {e}")),
            }
        }
        Err((what, e)) => finding::error(rep, format!("events: {what} failed: {e}")),
    }
    if time::khz_source() == "none" {
        time::set_khz(events::time_info().tsc_khz(), "Xen pvclock");
        rep.tsc_khz = time::khz();
    }
    match xen::ops::count_vcpus(&x, boot::MAX_CPUS as u32) {
        Ok(n) => rep.vcpus = n,
        Err(e) => finding::error(rep, format!("VCPUOP_is_up: {e}")),
    }
    info!("vCPUs: {} (VCPUOP_is_up), vCPU 0 running", rep.vcpus);
    match events::interdomain_loopback(&x) {
        Ok((a, b)) => rep.selftests.push(format!(
            "interdomain event channel: port {} (EVTCHNOP_alloc_unbound) bound as port {} \
             (EVTCHNOP_bind_interdomain), sent on {}, dispatched to {}'s handler: ok",
            a.0, b.0, b.0, a.0
        )),
        Err((what, e)) => {
            let m = format!("interdomain event channel: {what}: {e}");
            finding::error(rep, m.clone());
            rep.selftests.push(format!("{m}: FAILED"));
        }
    }
    match events::map_grant_table(&x) {
        Ok((n, max, addr)) => rep.selftests.push(format!(
            "grant table: {n} of at most {max} frames, frame 0 mapped at {addr:#x}: ok"
        )),
        Err((what, e)) => {
            let m = format!("grant table: {what}: {e}");
            finding::error(rep, m.clone());
            rep.selftests.push(format!("{m}: FAILED"));
        }
    }
    for t in &rep.selftests {
        info!("self-test: {t}");
    }
    time::phase("events");
}
