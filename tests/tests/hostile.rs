//! Hostile DomU scenario (issue 10): the project's hostile test guest (`testguest`, booted with
//! `--domu hostile:kernel=testguest`) floods its console, xenstore and event channels next to
//! an unmodified Debian Linux DomU, and ignores `control/shutdown`.
//!
//! Asserted, under Xen 4.17 and 4.20, on dom0's report **and** Xen's own log:
//! * the Linux DomU boots to init, is served (its xenstore writes are in the tree) and powers
//!   off on its own, before the hostile guest is gone;
//! * dom0 never panics, takes no exception and reaches the end of its run; Xen logs no crash;
//! * the hostile guest really did its work: Xen's log carries its progress lines (port 0xE9,
//!   `(d<id>) HOSTILE: ...`, a channel that bypasses dom0) through every phase, including
//!   the count of error replies dom0 sent it, which must be > 0;
//! * dom0 served it (its console lines reached dom0's console, thousands of xenstore requests
//!   answered), throttled its console, noticed its event storm, reported its bad console
//!   indices once with a count, and names and counts its refusals in the report, with as
//!   many ENOMEM (over its memory limit) and EACCES (SET_PERMS) as the guest says it
//!   received; the xenstore bytes charged to it peaked under the per-DomU limit; the Linux
//!   DomU was refused nothing;
//! * dom0 had to destroy it after the `domu-stop=` grace period, and Xen forgot the domain:
//!   no leaks (Xen's `getdomaininfo`), and no line from it in Xen's log after the destroy;
//! * everything it held in xenstore is freed (`xenstore_bytes` = 0 after release).

use image::XenVersion;
use tests::{
    assert_domu_ran, assert_no_domu_leaks, assert_pass, assert_xen_log_clean, boot, check, domu,
    domu_config, serial,
};

/// `domu-stop=`: seconds after the first DomU started. The hostile guest finishes its phases in
/// 45-55 s of guest time here (Linux powers off after about 15-20 s); it then ignores
/// `control/shutdown` and dom0 destroys it 30 s later.
const STOP_AFTER_S: u64 = 100;

/// The phases the guest announces, in order (see `testguest/src/main.rs`).
const PHASES: [&str; 11] = [
    "console-flood",
    "console-bad-index",
    "xenstore-hello",
    "xenstore-flood",
    "xenstore-read-responses",
    "xenstore-transactions",
    "xenstore-set-perms",
    "xenstore-oversized",
    "console-flood-again",
    "event-storm",
    "ignore-shutdown",
];

/// The number after `prefix` in `text`, if any.
fn number_after(text: &str, prefix: &str) -> Option<u64> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The strings of a list, borrowed.
fn strings(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn hostile_next_to_linux(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let stop = format!("domu-stop={STOP_AFTER_S}");
    let mut cfg = domu_config(
        xen,
        1,
        &format!("test-hostile-xen{major}.{minor}"),
        &["demo", "hostile:kernel=testguest"],
        &[&stop],
    );
    // Its deliberately bad console indices are reported as an error (one line, with a count).
    cfg.expect_errors = vec!["console ring indices out of range".into()];
    let out = boot(&cfg);
    // dom0 reached the end (QEMU exit 33, report printed), Xen saw no crash or panic.
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    let log = serial(&out);
    for bad in [
        "dom0: PANIC",
        "FATAL CPU exception",
        "Triple fault",
        "domain_crash",
    ] {
        check!(out, !log.contains(bad), "the serial log has {bad:?}");
    }

    // The Linux DomU: booted, served, powered off by itself.
    let linux_id = assert_domu_ran(&out, "demo", "poweroff");

    // The hostile guest ran every phase: Xen's own log has its debug-port lines.
    let h = domu(&out, "hostile");
    let hid = h.domid;
    check!(
        out,
        hid > 0 && hid != linux_id,
        "hostile guest: domain id {hid}"
    );
    let xen_line = |what: &str| format!("(d{hid}) HOSTILE: {what}");
    let mut at = 0;
    for p in PHASES {
        let want = xen_line(&format!("phase {p}"));
        match log[at..].find(&want) {
            Some(i) => at += i,
            None => panic!(
                "Xen's log lacks {want:?} (in order after the previous phase){}",
                tests::context(&out)
            ),
        }
    }
    let errors_prefix = xen_line("xenstore error replies: ");
    let refused_seen = number_after(&log, &errors_prefix).unwrap_or(0);
    check!(
        out,
        refused_seen > 0,
        "the hostile guest counted {refused_seen} xenstore error replies ({errors_prefix:?} in \
         Xen's log)"
    );
    let line = |prefix: &str| {
        log.lines()
            .find_map(|l| l.find(prefix).map(|i| l[i..].to_string()))
            .unwrap_or_default()
    };
    eprintln!("{}", line(&errors_prefix));
    eprintln!("{}", line(&xen_line("event-storm sent")));

    // dom0 served it: its console reached dom0's console, its requests were answered, and
    // its bad console indices are named.
    check!(
        out,
        log.contains("[hostile] HOSTILE: up: domain"),
        "dom0's console lacks the hostile guest's first line"
    );
    let requests = h.xenstore_requests;
    check!(
        out,
        requests >= 1000,
        "dom0 answered only {requests} xenstore requests of the hostile guest"
    );
    // Its bad console indices are one report with a count, not one per occurrence.
    let bad_index_reports: Vec<&str> = strings(&h.errors)
        .into_iter()
        .filter(|e| e.contains("console ring indices out of range"))
        .collect();
    check!(
        out,
        bad_index_reports.len() == 1
            && number_after(bad_index_reports[0], "out of range x ").is_some_and(|n| n >= 1),
        "dom0 should report the hostile guest's bad console indices once, with a count: {:?}",
        h.errors
    );

    // dom0's accounting (issue 10): the refusals are named and counted, the console was
    // throttled, the event storm noticed, the bytes it made dom0 hold stayed under the limit and went back to 0 when it
    // was released; the Linux DomU next to it was refused nothing.
    let t = tests::dom0(&out).toolstack.clone().unwrap_or_default();
    let limit = t.xenstore_limit_bytes;
    check!(out, limit > 0, "toolstack.xenstore_limit_bytes is {limit}");
    let peak = h.xenstore_peak_bytes;
    check!(
        out,
        peak > 0 && peak <= limit,
        "hostile guest: xenstore peak {peak} bytes, limit {limit}"
    );
    let refused = h.xenstore_refused;
    check!(
        out,
        refused > 0,
        "dom0 reports {refused} xenstore refusals for the hostile guest"
    );
    let throttled = h.console_throttled;
    check!(
        out,
        throttled > 0,
        "dom0 never throttled the hostile guest's console: {throttled}"
    );
    let refusals = strings(&h.refusals);
    for want in [
        "xenstore: ",
        "console: throttled",
        "console: bad ring indices",
        "evtchn: ",
    ] {
        check!(
            out,
            refusals.iter().any(|r| r.starts_with(want)),
            "dom0's refusals for the hostile guest lack {want:?}: {refusals:?}"
        );
    }
    check!(
        out,
        h.storm_peak_wakeups >= u64::from(toolstack::service::STORM_MIN_WAKEUPS),
        "the hostile guest's storm peaked at {} fruitless wakeups in a period",
        h.storm_peak_wakeups
    );
    // What dom0 counted is what the guest received: it went over its memory limit (ENOMEM)
    // and was refused SET_PERMS (EACCES) as many times on both sides.
    let guest_errors = line(&errors_prefix);
    for errno in ["ENOMEM", "EACCES"] {
        let seen = number_after(&guest_errors, &format!("{errno} "));
        let counted = refusals
            .iter()
            .find(|r| r.starts_with("xenstore: ") && r.contains(errno))
            .and_then(|r| number_after(r, " x "));
        check!(
            out,
            seen.is_some_and(|n| n > 0) && seen == counted,
            "{errno}: the guest received {seen:?}, dom0 counted {counted:?} ({guest_errors:?}; \
             {refusals:?})"
        );
    }
    let demo = domu(&out, "demo");
    for (name, d) in [("hostile", h), ("demo", demo)] {
        check!(
            out,
            d.xenstore_bytes == 0,
            "DomU {name}: xenstore still charges {} bytes after its release",
            d.xenstore_bytes
        );
    }
    check!(
        out,
        demo.xenstore_refused == 0 && demo.console_throttled == 0,
        "the Linux DomU was refused {} xenstore requests and throttled {} times",
        demo.xenstore_refused,
        demo.console_throttled
    );
    eprintln!(
        "hostile guest: {requests} xenstore requests, {refused} refused, peak {peak} of {limit} \
         bytes, console throttled {throttled} times; refusals {refusals:?}"
    );

    // It ignored control/shutdown, so dom0 destroyed it after the grace period, after the
    // Linux DomU had powered off by itself.
    check!(
        out,
        log.contains("domu hostile: asked to power off (control/shutdown)")
            && log.contains("domu hostile: ignored control/shutdown for 30 s; destroying it"),
        "dom0 did not ask the hostile guest to stop and then destroy it"
    );
    check!(
        out,
        h.state != report::DomuState::Poweroff,
        "the hostile guest cannot have powered off: {}",
        h.state
    );
    let (linux_stop, hostile_stop) = (
        demo.stopped_at_ns.unwrap_or(u64::MAX),
        h.stopped_at_ns.unwrap_or(0),
    );
    check!(
        out,
        linux_stop < hostile_stop,
        "Linux stopped at {linux_stop} ns, the hostile guest at {hostile_stop} ns"
    );
    // Xen's side of the destroy: the guest printed until dom0 destroyed it, never after, and
    // Xen no longer knows the domain (dom0's leak check asks Xen).
    let destroyed = log
        .find(&format!("domu hostile: domain {hid} stopped"))
        .unwrap_or(0);
    check!(
        out,
        destroyed > 0 && log[..destroyed].contains(&xen_line("still here")),
        "the hostile guest was not seen looping before dom0 destroyed it"
    );
    check!(
        out,
        !log[destroyed..].contains(&format!("(d{hid}) ")),
        "Xen still logs lines from domain {hid} after dom0 destroyed it"
    );
    assert_no_domu_leaks(&out);
}

#[test]
fn hostile_domu_next_to_linux_under_xen_4_17() {
    hostile_next_to_linux(XenVersion::V4_17);
}

#[test]
fn hostile_domu_next_to_linux_under_xen_4_20() {
    hostile_next_to_linux(XenVersion::V4_20);
}
