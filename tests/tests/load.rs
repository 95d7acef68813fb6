//! Boot scenarios with the host kept busy: Xen 4.17 and 4.20, 2 and 4 vCPUs, the default and
//! the `bridges` topologies, each with a busy process on the host for the length of the boot.
//!
//! Why: on Xen 4.17 with 2 vCPUs and a busy host, dom0 used to hang in the PCI survey, silently
//! (credit2 left vCPU 0 runnable with no physical CPU taking it; see `dom0/src/watchdog.rs`).
//! Each scenario must reach ready with everything the quiet scenarios check (Xen's own `PCI add
//! device` lines, no BAR warning, every AP up); what the watchdog saw is printed, and may only
//! be the two kinds it knows (a phase held for over a second that moved again, or vCPU 0
//! re-placed after Xen's scheduler stranded it). Wall times are printed, not asserted.

use image::{Topology, XenVersion};
use tests::{
    assert_pass, assert_pci_matches_xen, assert_ready_phase, assert_smp, assert_xen_log_clean,
    boot_busy, check, config, dom0,
};

/// One busy process, as in the report of the hang (`yes > /dev/null`); the bench machines have
/// two cores, and QEMU's two vCPU threads then share them with it.
const BUSY: usize = 1;

fn busy_boot(xen: XenVersion, smp: u32, topology: Topology) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let mut cfg = config(
        xen,
        smp,
        &format!("test-busy-{major}.{minor}-smp{smp}-{}", topology.name()),
    );
    cfg.topology = topology;
    let out = boot_busy(&cfg, BUSY);
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_ready_phase(&out);
    assert_smp(&out, smp);
    assert_pci_matches_xen(&out);
    let d = dom0(&out);
    let errors = &d.errors;
    check!(out, errors.is_empty(), "dom0 reported errors: {errors:?}");
    for w in &d.watchdog {
        eprintln!("  {w}");
        check!(
            out,
            (w.starts_with("watchdog: no progress in the ") && w.contains("; moved again after "))
                || w.starts_with("watchdog: Xen's scheduler left vCPU 0 runnable"),
            "a watchdog entry of an unexpected kind: {w}"
        );
    }
    let ready_ms = image::bench::ready_ns(d).unwrap_or(0) / 1_000_000;
    eprintln!(
        "  busy host, Xen {major}.{minor}, {smp} vCPUs, {}: entry->ready {ready_ms} ms (guest time), \
         wall {} ms",
        topology.name(),
        out.report.wall_ms
    );
}

#[test]
fn busy_xen_4_17_smp2_default() {
    busy_boot(XenVersion::V4_17, 2, Topology::Default);
}

#[test]
fn busy_xen_4_17_smp4_default() {
    busy_boot(XenVersion::V4_17, 4, Topology::Default);
}

#[test]
fn busy_xen_4_17_smp2_bridges() {
    busy_boot(XenVersion::V4_17, 2, Topology::Bridges);
}

#[test]
fn busy_xen_4_17_smp4_bridges() {
    busy_boot(XenVersion::V4_17, 4, Topology::Bridges);
}

#[test]
fn busy_xen_4_20_smp2_default() {
    busy_boot(XenVersion::V4_20, 2, Topology::Default);
}

#[test]
fn busy_xen_4_20_smp4_default() {
    busy_boot(XenVersion::V4_20, 4, Topology::Default);
}

#[test]
fn busy_xen_4_20_smp2_bridges() {
    busy_boot(XenVersion::V4_20, 2, Topology::Bridges);
}

#[test]
fn busy_xen_4_20_smp4_bridges() {
    busy_boot(XenVersion::V4_20, 4, Topology::Bridges);
}
