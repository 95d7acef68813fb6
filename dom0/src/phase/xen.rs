//! Phase 1: is Xen there? CPUID leaves, the hypercall page, the console, the TSC frequency.

use alloc::format;
use alloc::string::{String, ToString};

use hwdom::finding;
use log::info;
use report::{BootReport, XenInfo};

use crate::hypercall::{self, Xen};
use crate::{arch, console, events, percpu, time};

/// Detect Xen and bring up the console; `None` when dom0 runs without Xen (diagnostics only).
pub fn detect(rep: &mut BootReport, start_info_paddr: u32) -> Option<Xen> {
    let leaves = xen::cpuid::find_xen(&arch::cpuid);
    let x = leaves.as_ref().map(hypercall::init);
    if x.is_some() {
        percpu::init_bsp(events::shared_info_addr());
    } else {
        percpu::init_bsp_bare();
    }
    time::phase("xen detected");
    match (&leaves, x) {
        (Some(l), Some(_)) => {
            console::enable(console::XEN);
            if let Some(k) = l.tsc_khz {
                time::set_khz(u64::from(k), "Xen CPUID leaf base+3");
            }
            time::set_tsc_traps(l.tsc_emulated);
        }
        _ => {
            console::enable(console::SERIAL);
            if let Some(k) = time::calibrate_with_pit() {
                time::set_khz(k, "PIT channel 2");
            }
        }
    }
    console::init_log(log::LevelFilter::Info);
    console::set_buffering(true);
    time::phase("console");
    rep.under_xen = x.is_some();
    info!(
        "dom0 {}: PVH entry, start_info at {start_info_paddr:#x}",
        crate::VERSION
    );
    match (&leaves, x) {
        (Some(l), Some(x)) => {
            let insn = hypercall::page_insn();
            // The version from CPUID leaf base+1; XENVER_version would say the same at the cost
            // of another VM exit.
            let (maj, min) = (l.major, l.minor);
            let extra = xen::ops::xen_extraversion(&x).unwrap_or_default();
            let caps = xen::ops::xen_capabilities(&x).unwrap_or_default();
            let feats = xen::ops::xen_features(&x, 0).unwrap_or(0);
            info!(
                "running under Xen {maj}.{min}{extra} (CPUID base {:#x}, hypercall page uses {insn}), features {feats:#x}",
                l.base
            );
            rep.xen = Some(XenInfo {
                major: maj,
                minor: min,
                version: format!("{maj}.{min}{extra}"),
                extra,
                features: xen::ops::feature_names(feats),
                caps,
                hypercall_insn: insn.to_string(),
            });
        }
        _ => {
            let sig = xen::cpuid::hypervisor_signature(&arch::cpuid);
            let what = match sig {
                Some(s) => format!("hypervisor signature {:?}", String::from_utf8_lossy(&s)),
                None => "no hypervisor".to_string(),
            };
            log::warn!(
                "not running under Xen ({what}): Xen services are unavailable, diagnostics only"
            );
            rep.warnings.push(format!("not running under Xen ({what})"));
        }
    }
    rep.tsc_khz = time::khz();
    info!("TSC {} kHz (from {})", time::khz(), time::khz_source());
    if time::tsc_traps() {
        finding::warn(
            rep,
            "Xen emulates the TSC for dom0 (no invariant TSC): every TSC read traps, so log \
             lines are not timestamped; see the phase timeline",
        );
    }
    x
}
