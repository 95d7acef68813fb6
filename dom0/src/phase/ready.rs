//! Phase 9: ready. The watchdog stops and its findings, the heap and the phase timeline go into
//! the report; the report goes out (`report=`), then `DOM0-RESULT: ready`.

use alloc::format;
use alloc::string::{String, ToString};

use hwdom::options::ReportFormat;
use log::info;
use report::{BootReport, HeapStats, Phase};

use crate::hypercall::Xen;
use crate::{console, events, heap, println, time, watchdog};

pub fn finish(x: Option<Xen>, rep: &mut BootReport, fmt: ReportFormat) {
    watchdog::end();
    if let Some(x) = x {
        watchdog::stop(&x);
    }
    record_stalls(rep);
    time::phase("ready");
    rep.ready = true;
    record_heap(rep);
    rep.phases = time::phases()
        .into_iter()
        .map(|(n, ns)| Phase {
            name: n.to_string(),
            at_ns: ns,
        })
        .collect();
    console::set_buffering(false);
    emit_report(rep, fmt);
    let ready_us = rep.phases.last().map_or(0, |p| p.at_ns) / 1000;
    if rep.under_xen {
        let (upcalls, timer, other, spurious) = events::counters();
        info!(
            "events so far: {upcalls} upcalls, {timer} timer, {other} other, {spurious} spurious vectors"
        );
    }
    info!(
        "ready {}.{:03} ms after entry",
        ready_us / 1000,
        ready_us % 1000
    );
    println!("DOM0-RESULT: ready");
}

/// The heap's size, use and peak into the report.
pub fn record_heap(rep: &mut BootReport) {
    let (size, used, peak) = heap::stats();
    rep.heap = HeapStats { size, used, peak };
}

/// What the watchdog saw since the last call, into the report: a stall that resolved is a
/// warning (dom0 went on, but something held it for over a second), one that did not is an
/// error.
pub fn record_stalls(rep: &mut BootReport) {
    let now = if rep.under_xen {
        events::system_time_ns()
    } else {
        0
    };
    // The watchdog logged each stall when it saw it; here they only join the report.
    let (stalls, dropped) = watchdog::stalls(now);
    for s in stalls.iter().flatten() {
        let line = format!("watchdog: {}", watchdog::Described(s));
        rep.watchdog.push(line.clone());
        if s.resolved_after_ns.is_some() {
            rep.warnings.push(line);
        } else {
            rep.errors.push(line);
        }
    }
    let (nudges, refused, longest) = watchdog::nudges();
    if nudges + refused > 0 {
        let line = format!(
            "watchdog: Xen's scheduler left vCPU 0 runnable with no physical CPU taking it \
             (credit2, Xen 4.17; see the README) for up to {} ms; re-placed it {nudges} time(s) \
             with XEN_DOMCTL_setvcpuaffinity{}",
            longest / 1_000_000,
            if refused > 0 {
                format!(", {refused} refused")
            } else {
                String::new()
            }
        );
        rep.watchdog.push(line.clone());
        rep.warnings.push(line);
    }
    if dropped > 0 {
        rep.watchdog
            .push(format!("watchdog: {dropped} more stalls not recorded"));
    }
}

/// The report on the console, as text, JSON (one line after `DOM0-REPORT-JSON `) or both.
pub fn emit_report(rep: &BootReport, fmt: ReportFormat) {
    if matches!(fmt, ReportFormat::Text | ReportFormat::Both) {
        let mut s = String::new();
        let _ = rep.write_text(&mut s);
        console::print_str(&s);
    }
    if matches!(fmt, ReportFormat::Json | ReportFormat::Both) {
        let mut s = String::from("DOM0-REPORT-JSON ");
        let _ = rep.write_json(&mut s);
        s.push('\n');
        console::print_str(&s);
    }
}
