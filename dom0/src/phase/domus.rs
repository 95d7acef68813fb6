//! Phase 10: the boot bundle's DomUs, built and served (`crate::domu`) until they all stop;
//! their errors and the toolstack's leaks go into the report, which goes out again.

use alloc::format;
use alloc::vec::Vec;

use hwdom::options::Dom0Options;
use report::{BootReport, DomuState, PciBarKind};
use xen::memmap::MemoryMap;

use crate::hypercall::Xen;
use crate::phase::ready;
use crate::{domu, println, watchdog};

/// Serve the bundle's DomUs, and the network with them; with no DomU, the network alone when
/// there is an uplink or `linger=` asks for it.
pub fn serve(
    x: Xen,
    bundle: Option<&[u8]>,
    map: &MemoryMap,
    opts: &Dom0Options,
    rep: &mut BootReport,
    uplink: Option<domu::net::Uplink>,
) {
    let empty = toolstack::bundle::Bundle {
        domains: Vec::new(),
        files: Vec::new(),
    };
    let parsed = bundle.and_then(|b| toolstack::bundle::parse(b).ok());
    let b = parsed.as_ref().unwrap_or(&empty);
    if b.domains.is_empty() && uplink.is_none() && opts.linger.is_none() {
        return;
    }
    // Guest memory must not be placed over a BAR dom0 found.
    let busy: Vec<(u64, u64)> = rep
        .pci
        .iter()
        .flat_map(|p| p.functions.iter())
        .flat_map(|f| f.bars.iter())
        .filter(|b| b.kind != PciBarKind::Io && b.size > 0)
        .map(|b| (b.address, b.address.saturating_add(b.size)))
        .collect();
    // vCPU 1 watches the loop as it watched the boot: a stall is reported, a vCPU 0 that Xen
    // leaves runnable without running is re-placed (`watchdog`). With one vCPU nothing can.
    let watched = watchdog::ap_watches();
    if watched {
        log::info!("watchdog: vCPU 1 watches the DomU service loop");
        watchdog::begin(watchdog::Phase::Domus);
    }
    let mut uplink_out = rep.uplink.clone();
    let t = domu::run(
        x,
        b,
        map,
        &busy,
        domu::Options {
            stop_after_s: u64::from(opts.domu_stop),
            xenstore_quota_kib: opts.xenstore_quota_kib,
            ip: opts.ip,
            linger: opts.linger,
        },
        // What dom0's web server serves: the report as it was at ready, its network parts live.
        domu::net::Pages {
            report: rep.clone(),
        },
        uplink,
        &mut uplink_out,
    );
    if let Some(u) = &uplink_out
        && u.state == report::UplinkState::Stopped
    {
        rep.errors.push(format!(
            "uplink {} ({}): {}",
            u.sbdf,
            u.model,
            u.error.as_deref().unwrap_or("stopped")
        ));
    }
    rep.uplink = uplink_out;
    // `domu` logged each of these when it happened; here they only join the report.
    for d in &t.domus {
        for e in &d.errors {
            rep.errors.push(format!("domu {}: {e}", d.name));
        }
        if matches!(d.state, DomuState::BuildFailed | DomuState::Crash) {
            rep.warnings.push(format!("domu {}: {}", d.name, d.state));
        }
    }
    for l in &t.leaks {
        rep.errors.push(format!("toolstack: {l}"));
    }
    if watched {
        watchdog::end();
        ready::record_stalls(rep);
    }
    rep.toolstack = Some(t);
    ready::record_heap(rep);
    ready::emit_report(rep, opts.report);
    println!("DOM0-DOMUS: done");
}
