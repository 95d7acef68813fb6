//! `report.json` of a run, and the verdict (pass / fail / timeout / crashed) with its reason.

use ::report::BootReport;
use serde::{Deserialize, Serialize};

use crate::qemu::Topology;
use crate::xenlog::{Analysis, Dom0Result, XenLog};
use crate::{XenVersion, util};

/// QEMU exit status for dom0's isa-debug-exit write of v: `(v << 1) | 1`.
pub const EXIT_READY: i32 = 33;
/// dom0 stopped on an error it reported.
pub const EXIT_DOM0_ERROR: i32 = 35;
/// CPU exception or panic in dom0.
pub const EXIT_DOM0_EXCEPTION: i32 = 37;

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Timeout,
    Crashed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Timeout => "timeout",
            Outcome::Crashed => "crashed",
        }
    }
}

/// `target/runs/<run>/report.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run: String,
    pub xen: XenVersion,
    /// `<package> <version>` of the Debian package Xen came from; `null` without Xen.
    pub xen_package: Option<String>,
    pub smp: u32,
    pub mem_mib: u32,
    pub dom0_mem_mib: u32,
    pub topology: Topology,
    pub dom0_args: Vec<String>,
    #[serde(default)]
    pub xen_args: Vec<String>,
    #[serde(default)]
    pub module: Option<String>,
    /// `null` when QEMU was killed (timeout, or stopped after a Xen panic or dom0 crash).
    pub qemu_exit_code: Option<i32>,
    pub outcome: Outcome,
    pub reason: String,
    pub wall_ms: u64,
    pub dom0_elf_bytes: u64,
    /// dom0's `DOM0-RESULT:` line, if any.
    #[serde(default)]
    pub dom0_result: Option<Dom0Result>,
    /// dom0's `DOM0-REPORT-JSON` object.
    pub dom0: Option<BootReport>,
    pub xen_log: XenLog,
    pub serial_log: String,
    /// Stretches without console output after which the harness asked Xen for its state
    /// (`qemu::Watch::silence`); the dumps are in `serial.log`.
    #[serde(default)]
    pub silences: Vec<crate::qemu::Silence>,
}

/// What the verdict is decided from.
#[derive(Debug, Clone, Copy)]
pub struct Evidence<'a> {
    pub under_xen: bool,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub timeout_secs: u64,
    /// The Xen line that made the runner stop QEMU early.
    pub stopped_after: Option<&'a str>,
    /// Why the runner gave the run up early ([`crate::RunConfig::give_up`]).
    pub gave_up: Option<&'a str>,
    pub qemu_stderr: &'a str,
    pub analysis: &'a Analysis,
    pub serial: &'a str,
    /// Errors the run provokes on purpose: each of dom0's errors must contain one of these,
    /// and each must match an error ([`crate::RunConfig::expect_errors`]).
    pub expect_errors: &'a [String],
}

/// Decides the outcome and a one-line reason.
pub fn verdict(e: &Evidence<'_>) -> (Outcome, String) {
    let a = e.analysis;
    let x = &a.xen;
    let first_crash = x.crash_lines.first().map(String::as_str).unwrap_or("");
    if x.panic {
        return (
            Outcome::Crashed,
            format!("Xen panicked: {}", panic_summary(x)),
        );
    }
    if x.dom0_crashed {
        return (
            Outcome::Crashed,
            format!("Xen reports that dom0 crashed: {first_crash}"),
        );
    }
    if e.exit_code == Some(EXIT_DOM0_EXCEPTION) {
        let detail = match &a.dom0_result {
            Some(Dom0Result::Failed(r)) => r.clone(),
            _ => last_dom0_line(a),
        };
        return (
            Outcome::Crashed,
            format!("dom0 hit a CPU exception or panic (QEMU exit 37): {detail}"),
        );
    }
    if let Some(line) = e.stopped_after {
        // Crashes and panics were caught above: here dom0 halted or rebooted the machine.
        let ready = if a.dom0_result == Some(Dom0Result::Ready) {
            "after 'DOM0-RESULT: ready' "
        } else {
            ""
        };
        return (
            Outcome::Fail,
            format!(
                "dom0 stopped the machine {ready}without the isa-debug-exit exit \
                 (Xen: {line:?}); QEMU was stopped"
            ),
        );
    }
    if let Some(why) = e.gave_up {
        return (
            Outcome::Fail,
            format!("the runner gave the run up before its timeout: {why}; QEMU was stopped"),
        );
    }
    if e.timed_out {
        // The last line before the harness first asked Xen for its state (see
        // `qemu::Watch`): after a silence or at the timeout.
        let first_mark = [crate::qemu::XEN_SILENCE_MARK, crate::qemu::XEN_DUMP_MARK]
            .iter()
            .filter_map(|m| e.serial.find(m))
            .min();
        let before = first_mark.map_or(e.serial, |at| &e.serial[..at]);
        let dumped = e.serial.contains(crate::qemu::XEN_DUMP_MARK);
        let last = util::tail_lines(before.trim_end(), 1);
        let last = crate::xenlog::clean_line(&last);
        let stalled = e
            .serial
            .split_once(crate::qemu::XEN_DUMP_MARK)
            .is_some_and(|(_, d)| crate::xenlog::scheduler_stall(d));
        let dump = match (dumped, stalled) {
            (true, true) => {
                "; Xen's state (debug keys q r e) follows it in serial.log: its run queues \
                 show a vCPU queued while every CPU idles (the scheduler stall, see README)"
            }
            (true, false) => "; Xen's state (debug keys q r e) follows it in serial.log",
            (false, _) => "",
        };
        return (
            Outcome::Timeout,
            format!(
                "timed out after {} s (last line: {last:?}{dump})",
                e.timeout_secs
            ),
        );
    }
    let ready = a.dom0_result == Some(Dom0Result::Ready);
    let xen_ok = !e.under_xen || x.pvh_dom0_built;
    if e.exit_code == Some(EXIT_READY)
        && ready
        && xen_ok
        && let Some(d) = &a.dom0_report
    {
        // An honest run: dom0 reached ready, but errors in its report fail it unless the run
        // asked for exactly those.
        let unexpected: Vec<&String> = d
            .errors
            .iter()
            .filter(|err| !e.expect_errors.iter().any(|x| err.contains(x.as_str())))
            .collect();
        if let Some(first) = unexpected.first() {
            return (
                Outcome::Fail,
                format!(
                    "dom0 reached ready but reported {} error(s), first: {first}",
                    unexpected.len()
                ),
            );
        }
        if let Some(missing) = e
            .expect_errors
            .iter()
            .find(|x| !d.errors.iter().any(|err| err.contains(x.as_str())))
        {
            return (
                Outcome::Fail,
                format!("dom0 reported no error containing {missing:?}, which this run expects"),
            );
        }
        return (Outcome::Pass, "dom0 reached ready".to_string());
    }
    let reason = match e.exit_code {
        Some(EXIT_DOM0_ERROR) => match &a.dom0_result {
            Some(Dom0Result::Failed(r)) => format!("dom0 stopped on an error: {r}"),
            _ => format!(
                "dom0 stopped on an error (QEMU exit 35) without a DOM0-RESULT line; last line: {}",
                last_dom0_line(a)
            ),
        },
        Some(0) => format!(
            "the machine reset or powered off without a dom0 result (QEMU exit 0; a triple \
             fault does this); last dom0 line: {}",
            last_dom0_line(a)
        ),
        Some(EXIT_READY) if !ready => {
            "QEMU exit 33 but dom0 printed no 'DOM0-RESULT: ready'".to_string()
        }
        Some(EXIT_READY) if a.dom0_report.is_none() => match &a.dom0_report_error {
            Some(err) => err.clone(),
            None => "dom0 printed no DOM0-REPORT-JSON line".to_string(),
        },
        Some(EXIT_READY) => "Xen never printed '*** Building a PVH Dom0 ***'".to_string(),
        Some(code) => format!(
            "QEMU exited with {code}: {}",
            util::tail_lines(e.qemu_stderr.trim(), 3).replace('\n', " | ")
        ),
        None => "QEMU was killed".to_string(),
    };
    (Outcome::Fail, reason)
}

fn panic_summary(x: &XenLog) -> String {
    let mut lines = x
        .crash_lines
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with("Panic on CPU"));
    lines
        .next()
        .cloned()
        .unwrap_or_else(|| "see serial.log".into())
}

fn last_dom0_line(a: &Analysis) -> String {
    a.dom0_lines
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!("{:?}", l.trim()))
        .unwrap_or_else(|| "(none)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenlog::analyse;

    fn judge(serial: &str, under_xen: bool, exit: Option<i32>) -> (Outcome, String) {
        let a = analyse(serial);
        verdict(&Evidence {
            under_xen,
            exit_code: exit,
            timed_out: false,
            timeout_secs: 90,
            stopped_after: None,
            gave_up: None,
            qemu_stderr: "",
            analysis: &a,
            serial,
            expect_errors: &[],
        })
    }

    const READY: &str = "DOM0-REPORT-JSON {\"ready\":true}\nDOM0-RESULT: ready\n";

    #[test]
    fn pass_needs_everything() {
        assert_eq!(judge(READY, false, Some(33)).0, Outcome::Pass);
        let xen = format!("(XEN) *** Building a PVH Dom0 ***\n{READY}");
        assert_eq!(judge(&xen, true, Some(33)).0, Outcome::Pass);
        let (o, r) = judge(READY, true, Some(33));
        assert_eq!(o, Outcome::Fail);
        assert!(r.contains("Building a PVH Dom0"), "{r}");
        let (o, r) = judge("DOM0-RESULT: ready\n", false, Some(33));
        assert_eq!(o, Outcome::Fail);
        assert!(r.contains("no DOM0-REPORT-JSON"), "{r}");
        let (o, r) = judge("DOM0-REPORT-JSON {}\n", false, Some(33));
        assert_eq!(o, Outcome::Fail);
        assert!(r.contains("DOM0-RESULT: ready"), "{r}");
    }

    #[test]
    fn errors_in_dom0s_report_fail_the_run_unless_expected() {
        let serial = "DOM0-REPORT-JSON {\"ready\":true,\"errors\":[\"module 0: not recognised\",\"PCI: x\"]}\nDOM0-RESULT: ready\n";
        let a = analyse(serial);
        let judge = |expect: &[&str]| {
            let expect: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
            verdict(&Evidence {
                under_xen: false,
                exit_code: Some(33),
                timed_out: false,
                timeout_secs: 90,
                stopped_after: None,
                gave_up: None,
                qemu_stderr: "",
                analysis: &a,
                serial,
                expect_errors: &expect,
            })
        };
        let (o, r) = judge(&[]);
        assert_eq!(o, Outcome::Fail);
        assert_eq!(
            r,
            "dom0 reached ready but reported 2 error(s), first: module 0: not recognised"
        );
        let (o, r) = judge(&["not recognised"]);
        assert_eq!(o, Outcome::Fail);
        assert!(r.contains("1 error(s), first: PCI: x"), "{r}");
        assert_eq!(judge(&["not recognised", "PCI:"]).0, Outcome::Pass);
        let (o, r) = judge(&["not recognised", "PCI:", "never happens"]);
        assert_eq!(o, Outcome::Fail);
        assert!(r.contains("\"never happens\""), "{r}");
    }

    #[test]
    fn failures_have_reasons() {
        let (o, r) = judge("DOM0-RESULT: failed: no memmap\n", false, Some(35));
        assert_eq!(
            (o, r.as_str()),
            (Outcome::Fail, "dom0 stopped on an error: no memmap")
        );
        let (o, r) = judge("booting\n", false, Some(0));
        assert_eq!(o, Outcome::Fail);
        assert!(
            r.contains("without a dom0 result") && r.contains("booting"),
            "{r}"
        );
        let (o, _) = judge("x\n", false, Some(37));
        assert_eq!(o, Outcome::Crashed);
        let (o, r) = judge("(XEN) Panic on CPU 0:\n(XEN) boom\n", true, None);
        assert_eq!(o, Outcome::Crashed);
        assert!(r.contains("Xen panicked"), "{r}");
        let (o, r) = judge(
            &format!("(XEN) Hardware Dom0 crashed\n{READY}"),
            true,
            Some(33),
        );
        assert_eq!(o, Outcome::Crashed);
        assert!(r.contains("Hardware Dom0 crashed"), "{r}");
    }

    #[test]
    fn timeout_names_the_last_line() {
        let serial = "a\nlast words\r\n";
        let a = analyse(serial);
        let (o, r) = verdict(&Evidence {
            under_xen: false,
            exit_code: None,
            timed_out: true,
            timeout_secs: 7,
            stopped_after: None,
            gave_up: None,
            qemu_stderr: "",
            analysis: &a,
            serial,
            expect_errors: &[],
        });
        assert_eq!(o, Outcome::Timeout);
        assert_eq!(r, "timed out after 7 s (last line: \"last words\")");
    }

    #[test]
    fn a_run_given_up_says_why() {
        let serial = "DOMU-INIT: tcp progress at 99.00 s: OutSegs=1\n";
        let a = analyse(serial);
        let (o, r) = verdict(&Evidence {
            under_xen: true,
            exit_code: None,
            timed_out: false,
            timeout_secs: 900,
            stopped_after: None,
            gave_up: Some("no new TCP segment from 10 s to 99 s of guest time"),
            qemu_stderr: "",
            analysis: &a,
            serial,
            expect_errors: &[],
        });
        assert_eq!(o, Outcome::Fail);
        assert!(
            r.contains("gave the run up before its timeout: no new TCP segment"),
            "{r}"
        );
    }

    /// The verdict of a Xen run killed at its 420 s timeout with this console.
    fn timed_out_under_xen(serial: &str) -> (Outcome, String) {
        let a = analyse(serial);
        verdict(&Evidence {
            under_xen: true,
            exit_code: None,
            timed_out: true,
            timeout_secs: 420,
            stopped_after: None,
            gave_up: None,
            qemu_stderr: "",
            analysis: &a,
            serial,
            expect_errors: &[],
        })
    }

    #[test]
    fn timeout_names_the_last_line_before_xen_was_asked_for_its_state() {
        let serial = format!(
            "(XEN) booting\n(d1) stuck here\n{}\n(XEN) 'q' pressed -> dumping domain info\n",
            crate::qemu::XEN_DUMP_MARK
        );
        let (o, r) = timed_out_under_xen(&serial);
        assert_eq!(o, Outcome::Timeout);
        assert!(
            r.contains("(last line: \"(d1) stuck here\"; Xen's state"),
            "{r}"
        );
        assert!(!r.contains("scheduler stall"), "{r}");
        // The same with Xen's run queues showing the stall.
        let stalled = format!(
            "(XEN) booting\n(d1) stuck here\n{} [QEMU used 0.0% of a CPU in the 300 s since \
             the last console byte]\n(XEN) RUNQ:\n(XEN) \t  0: [1.0] flags=20 cpu=0 credit=5\n(XEN) CPUs info:\n\
             (XEN) CPU[00] current=d[IDLE]v0, curr=d[IDLE]v0, prev=NULL\n",
            crate::qemu::XEN_DUMP_MARK
        );
        let (_, r) = timed_out_under_xen(&stalled);
        assert!(r.contains("the scheduler stall"), "{r}");
    }
}
