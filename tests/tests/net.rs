//! Issue 12: unmodified Debian DomUs with Linux's netfront on dom0's netback and switch.
//!
//! Each DomU's init loads `xen-netfront.ko`, gives eth0 an address and pings the other DomU
//! through dom0 (`domu-ip=`, `domu-ping=` on its command line); under Xen 4.17 alpha also pings
//! dom0's own address 100 times and fetches `/report.json` from it; under Xen 4.20 alpha sends
//! 64 MiB of random bytes to beta over TCP (`domu-tcp-send=`, `domu-tcp-recv=`). The evidence:
//! each guest kernel's own ping succeeds and both ends hash the same 64 MiB (their consoles),
//! dom0's per-vif counters agree, both backends close cleanly at power-off, Xen destroys both
//! domains (no grant mapping left behind, or the domain would linger: `assert_no_domu_leaks`),
//! and Xen logs no grant-table complaint.

use image::XenVersion;
use report::DomuSummary;
use tests::{
    assert_domu_ran, assert_no_domu_leaks, assert_pass, assert_xen_log_clean, boot, check, domu,
    domu_config, serial,
};

const ALPHA: (&str, &str, &str) = ("alpha", "00:16:3e:00:00:0a", "10.0.0.1");
const BETA: (&str, &str, &str) = ("beta", "00:16:3e:00:00:0b", "10.0.0.2");

/// MiB alpha sends to beta over TCP (Xen 4.20 run).
const TCP_MIB: u64 = 64;

fn spec((name, mac, ip): (&str, &str, &str), peer: &str, extra: &str) -> String {
    format!("{name}:vif={mac},cmdline=domu-ip={ip}/24 domu-ping={peer}{extra}")
}

fn two_domus_ping_each_other(xen: XenVersion, tcp: bool) {
    let (_, minor) = xen.major_minor().expect("a Xen version");
    let (a, b) = if tcp {
        (
            // The sender holds the 64 MiB in RAM before sending it.
            spec(
                ALPHA,
                BETA.2,
                &format!(
                    " domu-tcp-send={}:5001:{TCP_MIB} domu-dom0-cpu=10.0.0.254",
                    BETA.2
                ),
            )
            // Native TSC (xl.cfg's tsc_mode=native): under QEMU's software CPU Xen would
            // otherwise trap every clock read of the guests, a third of the transfer's time.
            .replacen(":vif", ":memory=256,tsc_mode=native,vif", 1),
            spec(BETA, ALPHA.2, " domu-tcp-recv=5001").replacen(":vif", ":tsc_mode=native,vif", 1),
        )
    } else {
        // alpha also pings dom0's own address and fetches its report over HTTP.
        (
            spec(ALPHA, BETA.2, " domu-dom0=10.0.0.254"),
            spec(BETA, ALPHA.2, ""),
        )
    };
    let out = boot(&domu_config(
        xen,
        1,
        &format!("test-net-ping-4.{minor}"),
        &[&a, &b],
        &[],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, minor);
    for ((name, mac, ip), peer) in [(ALPHA, BETA.2), (BETA, ALPHA.2)] {
        assert_domu_ran(&out, name, "poweroff");
        let d: &DomuSummary = domu(&out, name);
        let said = |prefix: &str| d.console.iter().any(|l| l.starts_with(prefix));
        // The guest's own words: its netfront came up with the MAC dom0 gave it, and its
        // kernel's ping got answers through dom0's switch.
        check!(
            out,
            said(&format!("DOMU-INIT: eth0 {mac} {ip}/24")),
            "{name}: no eth0 line with {mac}: {:?}",
            d.console
        );
        check!(
            out,
            said(&format!("DOMU-INIT: ping {peer} ok")),
            "{name}: its ping of {peer} failed: {:?}",
            d.console
        );
        // dom0's side agrees: one vif, connected once, closed at power-off, frames both ways.
        check!(out, d.vifs.len() == 1, "{name}: vifs {:?}", d.vifs);
        let Some(v) = d.vifs.first() else { continue };
        check!(out, v.mac == mac, "{name}: vif MAC {}", v.mac);
        check!(out, v.connects == 1, "{name}: {} connects", v.connects);
        check!(
            out,
            v.state == "6",
            "{name}: backend state {} at the end",
            v.state
        );
        // ARP and at least the successful ping's request and reply each way.
        check!(out, v.tx_packets >= 2 && v.rx_packets >= 2, "{name}: {v:?}");
        check!(
            out,
            v.tx_copy_errors == 0 && v.rx_copy_errors == 0 && v.tx_dropped == 0,
            "{name}: {v:?}"
        );
        check!(
            out,
            v.error.is_none(),
            "{name}: dom0 closed its vif: {:?}",
            v.error
        );
        check!(out, d.errors.is_empty(), "{name}: errors {:?}", d.errors);
        // The TSC mode as Xen holds it (XEN_DOMCTL_gettscinfo): native where asked; under
        // `default` Xen traps rdtsc exactly when it does so for dom0 (this emulated CPU has no
        // invariant TSC, so both do).
        let dom0_traps = tests::dom0(&out)
            .cpu
            .as_ref()
            .is_some_and(|c| c.xen_tsc_emulated);
        let want = if tcp {
            ("native", false)
        } else {
            ("default", dom0_traps)
        };
        check!(
            out,
            (d.tsc_mode.as_str(), d.tsc_emulated) == want && (tcp || dom0_traps),
            "{name}: tsc_mode {:?}, emulated {} (dom0's TSC emulated: {dom0_traps})",
            d.tsc_mode,
            d.tsc_emulated
        );
    }
    if !tcp {
        let alpha = domu(&out, "alpha");
        let said = |prefix: &str| {
            alpha
                .console
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
                .unwrap_or_default()
        };
        let ping = said("DOMU-INIT: dom0 ping: ");
        check!(
            out,
            ping.starts_with("100 packets transmitted, 100 packets received, 0% packet loss"),
            "alpha's 100 pings of dom0: {ping:?}"
        );
        // The report alpha fetched is, byte for byte, the one dom0 printed at ready.
        let fetched = said("DOMU-INIT: dom0 ready.json: ");
        let printed = s_first_report(&out);
        let want = format!(
            "HTTP/1.0 200 OK, md5 {}, {} bytes",
            md5(printed.as_bytes()),
            printed.len()
        );
        check!(
            out,
            fetched == want,
            "alpha fetched {fetched:?}, dom0 printed {want:?}"
        );
        let net = tests::dom0(&out)
            .toolstack
            .as_ref()
            .and_then(|t| t.dom0_net.clone())
            .unwrap_or_default();
        check!(
            out,
            net.address == "10.0.0.254/24" && net.http_requests >= 1 && net.frames_in >= 100,
            "dom0's endpoint: {net:?}"
        );
    }
    if tcp {
        let line = |name: &str, prefix: &str| {
            domu(&out, name)
                .console
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
                .unwrap_or_default()
        };
        let sent = line("alpha", &format!("DOMU-INIT: tcp sent {TCP_MIB} MiB md5 "));
        let got = line("beta", "DOMU-INIT: tcp received md5 ");
        let sent_md5 = sent.split(' ').next().unwrap_or("");
        check!(
            out,
            sent.contains(" yes from ") && sent_md5.len() == 32,
            "alpha did not send its {TCP_MIB} MiB: {sent:?}"
        );
        check!(
            out,
            got == sent_md5,
            "beta received md5 {got:?}, alpha sent {sent_md5:?}"
        );
        // dom0 carried all of it: at least 64 MiB from alpha's vif into beta's.
        let bytes = TCP_MIB << 20;
        let (a, b) = (&domu(&out, "alpha").vifs[0], &domu(&out, "beta").vifs[0]);
        check!(
            out,
            a.tx_bytes >= bytes && b.rx_bytes >= bytes,
            "{a:?} {b:?}"
        );
        check!(
            out,
            a.copy_hypercalls > 0 && a.grant_copies >= a.copy_hypercalls,
            "{a:?}"
        );
        // Issue 12: dom0 memory per vif <= 64 KiB plus the backlog, which stays in its bound
        // (the receiver's filled up during the transfer: it was used, not idle).
        for v in [a, b] {
            check!(
                out,
                v.memory_bytes > 0 && v.memory_bytes <= 64 << 10,
                "vif memory {} B: {v:?}",
                v.memory_bytes
            );
            check!(
                out,
                v.rx_backlog_limit_bytes == 1 << 20
                    && v.rx_backlog_peak_bytes <= v.rx_backlog_limit_bytes,
                "{v:?}"
            );
        }
        check!(out, b.rx_backlog_peak_bytes > 0, "{b:?}");
        // dom0's `/cpu.txt`, read by alpha before and after its transfer: dom0 served passes
        // and grant copies in between, and Xen's two accounts of dom0's CPU agree (the
        // domain's `cpu_time` from XEN_DOMCTL_getdomaininfo, the sum of its vCPUs' running
        // time from VCPUOP_get_runstate_info; read a moment apart, so within 50 ms).
        let w = image::netbench::Dom0Window::parse(
            &line("alpha", "DOMU-INIT: dom0 cpu before tcp send: "),
            &line("alpha", "DOMU-INIT: dom0 cpu after tcp send: "),
        );
        check!(out, w.is_some(), "no /cpu.txt window around the transfer");
        if let Some(w) = w {
            let vcpus = tests::dom0(&out).vcpus as usize;
            let sum: f64 = w.dom0_vcpus_s.iter().sum();
            let hc = |k: &str| w.hypercalls.iter().find(|(n, _)| n == k).map_or(0, |h| h.1);
            check!(
                out,
                w.passes > 0 && hc("grant_table_op") > 0 && w.window_s > 0.0,
                "{w:?}"
            );
            check!(
                out,
                w.dom0_vcpus_s.len() == vcpus && (w.dom0_s - sum).abs() < 0.05,
                "dom0 {} s, its {vcpus} vCPUs {:?}",
                w.dom0_s,
                w.dom0_vcpus_s
            );
        }
        // GSO end to end: alpha's netfront sent large TCP packets (`feature-gso-tcpv4`), and
        // beta's, which asked for GSO on RX, got them whole (a GSO extra slot each) with the
        // MD5 above still equal; none were refused on either side.
        check!(
            out,
            a.tx_gso_packets > 0 && b.rx_gso_packets > 0,
            "no GSO packet crossed whole: {a:?} {b:?}"
        );
        check!(
            out,
            a.tx_gso_dropped == 0 && b.rx_copy_errors == 0,
            "{a:?} {b:?}"
        );
    }
    assert_no_domu_leaks(&out);
    let s = serial(&out);
    let grant_lines: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("(XEN)") && l.to_ascii_lowercase().contains("grant"))
        .collect();
    check!(
        out,
        grant_lines.is_empty(),
        "Xen complains about grants: {grant_lines:?}"
    );
}

#[test]
fn two_debian_domus_ping_each_other_under_xen_4_17() {
    two_domus_ping_each_other(XenVersion::V4_17, false);
}

#[test]
fn two_debian_domus_ping_each_other_and_move_64_mib_under_xen_4_20() {
    two_domus_ping_each_other(XenVersion::V4_20, true);
}

/// The JSON of the first `DOM0-REPORT-JSON` line (the report at ready, which dom0 serves).
fn s_first_report(out: &image::RunOutcome) -> String {
    serial(out)
        .lines()
        .find_map(|l| l.strip_prefix("DOM0-REPORT-JSON "))
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// MD5 with the host's `md5sum` (what the guest's busybox computes).
fn md5(bytes: &[u8]) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut c = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("md5sum");
    c.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_string()
}

/// A hostile netfront (the test guest with a vif and `hostile=netif`) next to two Linux DomUs
/// moving 8 MiB over TCP: its packet from a grant it never made fails alone (status -1), its
/// slot crossing a page closes its vif only (backend Closing, the reason in its `error` node
/// and in dom0's report); the Linux transfer completes with the right checksum; dom0 destroys
/// the hostile guest after `domu-stop=` and nothing leaks. Xen's own log carries the hostile
/// guest's account of what dom0 did (its debug-port lines).
///
/// History: in 2 of 5 CI runs (CI22, CI25 of 2026-12-05) the whole emulated machine went
/// silent right after the Linux DomUs' network came up and the run timed out, so the scenario
/// was ignored for a while. It passed 6 of 6 runs on 2026-12-05 before it was run again by
/// default (five with the host loaded, three of them next to the other net scenarios); should
/// it stall again, the run's serial log ends with Xen's own state (debug keys q, r, e after an
/// idle minute without console output, and at the timeout), which says whether Xen's
/// scheduler sat on a runnable vCPU or dom0 waited.
///
/// The Linux DomUs run with `tsc_mode=native`, as in the 64 MiB scenario: with Xen trapping
/// every clock read of theirs (this emulated CPU has no invariant TSC) the 8 MiB took 13–85 s
/// when it passed and did not finish within the 150 s window in three runs of 2026-12-06, two
/// of them in CI (the last: 4.3 MiB, mostly single-segment packets). What this scenario
/// checks is the hostile guest's isolation, not that emulation cost; `default` mode is covered
/// by the ping and DomU scenarios. alpha prints its connection's state every 10 s
/// (`tcp progress`), and a failed check quotes the last of those lines.
#[test]
fn hostile_netfront_next_to_a_linux_transfer_under_xen_4_20() {
    let a = spec(ALPHA, BETA.2, &format!(" domu-tcp-send={}:5001:8", BETA.2)).replacen(
        ":vif",
        ":memory=256,tsc_mode=native,vif",
        1,
    );
    let b = spec(BETA, ALPHA.2, " domu-tcp-recv=5001").replacen(":vif", ":tsc_mode=native,vif", 1);
    let out = boot(&domu_config(
        XenVersion::V4_20,
        1,
        "test-net-hostile-4.20",
        &[&a, &b, "hostile:kernel=testguest,vif,cmdline=hostile=netif"],
        &["domu-stop=150"],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 20);
    assert_domu_ran(&out, "alpha", "poweroff");
    assert_domu_ran(&out, "beta", "poweroff");
    let line = |name: &str, prefix: &str| {
        domu(&out, name)
            .console
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .unwrap_or_default()
    };
    let sent = line("alpha", "DOMU-INIT: tcp sent 8 MiB md5 ");
    let got = line("beta", "DOMU-INIT: tcp received md5 ");
    let sent_md5 = sent.split(' ').next().unwrap_or("");
    let progress = domu(&out, "alpha")
        .console
        .iter()
        .rfind(|l| l.starts_with("DOMU-INIT: tcp progress"))
        .cloned()
        .unwrap_or_default();
    check!(
        out,
        sent.contains(" yes from ") && sent_md5.len() == 32 && got == sent_md5,
        "the Linux transfer: alpha sent {sent:?}, beta received {got:?}; alpha's last \
         progress line: {progress:?}"
    );
    let h = domu(&out, "hostile");
    check!(out, h.state.name() == "destroyed", "hostile: {}", h.state);
    let v = h.vifs.first().cloned().unwrap_or_default();
    check!(
        out,
        v.connects == 1 && v.tx_copy_errors == 1 && v.tx_packets == 0 && v.state == "5",
        "hostile vif: {v:?}"
    );
    check!(
        out,
        v.error
            .as_deref()
            .is_some_and(|e| e.contains("CrossesPage")),
        "hostile vif error: {:?}",
        v.error
    );
    // Xen's log, from the guest's debug port: what it saw dom0 do.
    let s = serial(&out);
    let xen_says = |want: &str| {
        s.lines()
            .any(|l| l.starts_with("(d") && l.contains(&format!("HOSTILE: {want}")))
    };
    for want in [
        "netif connected: backend state 4",
        "netif bad grant: 1 response(s), status -1",
        "netif after a slot crossing its page: backend state 5, error \"TX ring: CrossesPage",
    ] {
        check!(out, xen_says(want), "Xen's log lacks the guest's {want:?}");
    }
    // The Linux DomUs' vifs were not touched by it; their TSC is native as asked (Xen's
    // XEN_DOMCTL_gettscinfo, in dom0's report).
    for name in ["alpha", "beta"] {
        let d = domu(&out, name);
        check!(
            out,
            d.tsc_mode == "native" && !d.tsc_emulated,
            "{name}: tsc_mode {:?}, emulated {}",
            d.tsc_mode,
            d.tsc_emulated
        );
        let v = &d.vifs[0];
        check!(
            out,
            v.error.is_none() && v.tx_copy_errors == 0,
            "{name}: {v:?}"
        );
    }
    assert_no_domu_leaks(&out);
}
