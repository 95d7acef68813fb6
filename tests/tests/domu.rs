//! DomU scenarios: dom0 builds unmodified Debian Linux kernels (from Debian's
//! `linux-image-amd64`, fetched by `image`) with a busybox initramfs as PVH DomUs from the boot
//! bundle, serves their xenstore and consoles, and notices when they stop. Each asserts on
//! dom0's report, on the guests' own console lines and xenstore writes, and on Xen's log.

use image::XenVersion;
use tests::{
    assert_domu_ran, assert_no_domu_leaks, assert_pass, assert_xen_log_clean, boot, check, domu,
    domu_config, serial,
};

/// (a) One Debian DomU boots to init, reads and writes its xenstore tree, and powers off.
fn one_domu(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let out = boot(&domu_config(
        xen,
        1,
        &format!("test-domu-xen{major}.{minor}"),
        &["demo"],
        &[],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_domu_ran(&out, "demo", "poweroff");
    assert_no_domu_leaks(&out);
    let d = domu(&out, "demo");
    // The domctl interface dom0 found is the one this Xen speaks.
    let want = if minor >= 19 { 0x17 } else { 0x15 };
    let version = tests::dom0(&out)
        .toolstack
        .as_ref()
        .map(|t| t.domctl_version);
    check!(
        out,
        version == Some(want),
        "domctl interface {version:x?} on Xen {major}.{minor}, expected {want:#x}"
    );
    for (k, v) in [
        ("first_console_ns", d.first_console_ns),
        ("init_ns", d.init_ns),
        ("stopped_at_ns", d.stopped_at_ns),
    ] {
        check!(out, v.is_some(), "DomU demo: no {k}: {d:?}");
    }
}

#[test]
fn debian_domu_under_xen_4_17() {
    one_domu(XenVersion::V4_17);
}

#[test]
fn debian_domu_under_xen_4_20() {
    one_domu(XenVersion::V4_20);
}

/// (b) Two DomUs at once, one with two vCPUs (its MADT comes from `acpi-fixup`): each boots,
/// each console keeps its own prefix, both power off.
#[test]
fn two_domus_at_once() {
    let out = boot(&domu_config(
        XenVersion::V4_20,
        2,
        "test-domu-two",
        &["alpha", "beta:vcpus=2"],
        &[],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 20);
    let a = assert_domu_ran(&out, "alpha", "poweroff");
    let b = assert_domu_ran(&out, "beta", "poweroff");
    check!(out, a != b, "both DomUs got domain id {a}");
    let beta = domu(&out, "beta");
    let up = beta
        .console
        .iter()
        .find(|l| l.starts_with("DOMU-INIT: up"))
        .cloned()
        .unwrap_or_default();
    check!(
        out,
        up.ends_with("vcpus=2"),
        "beta should run with 2 vCPUs online, its init says {up:?}"
    );
    assert_no_domu_leaks(&out);
}

/// (c) A DomU whose init exits (kernel panic, SHUTDOWN_crash) is noticed and removed while
/// another keeps running; that one is then asked to power off through xenstore
/// `control/shutdown` (`domu-stop=`), which Linux's xenbus handles.
#[test]
fn crashing_domu_is_removed_and_the_other_keeps_running() {
    let out = boot(&domu_config(
        XenVersion::V4_17,
        2,
        "test-domu-crash",
        &[
            // Both on dom0's switch with netfront connected when one crashes (issue 12):
            // the crashed one's rings must be unmapped and its channels closed, or Xen
            // cannot free it (`assert_no_domu_leaks`).
            "crashy:vif,cmdline=domu-ip=10.0.0.3/24 domu-test=crash",
            "steady:vif,cmdline=domu-ip=10.0.0.4/24 domu-test=stay",
        ],
        &["domu-stop=90"],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 17);
    assert_domu_ran(&out, "crashy", "crash");
    assert_domu_ran(&out, "steady", "poweroff");
    let c = domu(&out, "crashy");
    let s = domu(&out, "steady");
    let (c_stop, s_stop) = (
        c.stopped_at_ns.unwrap_or(u64::MAX),
        s.stopped_at_ns.unwrap_or(0),
    );
    check!(
        out,
        c_stop < s_stop,
        "the crashed DomU was removed at {c_stop} ns, after the other stopped at {s_stop} ns"
    );
    let log = serial(&out);
    for want in [
        "[crashy] DOMU-INIT: crashing",
        "[steady] DOMU-INIT: staying",
        "domu crashy: domain",
        "domu steady: asked to power off (control/shutdown)",
    ] {
        check!(out, log.contains(want), "the serial log lacks {want:?}");
    }
    check!(
        out,
        log.contains("Kernel panic"),
        "crashy's console should show the kernel panic that made it crash"
    );
    // Each vif had connected, and both were closed with their DomU.
    for d in [c, s] {
        let v = d.vifs.first();
        check!(
            out,
            v.is_some_and(|v| v.connects == 1 && v.error.is_none()),
            "DomU {}: vifs {:?}",
            d.name,
            d.vifs
        );
    }
    assert_no_domu_leaks(&out);
}
