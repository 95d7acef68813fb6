//! Reads a serial console log: Xen's own lines (`(XEN) ...`) and dom0's result and report lines.
//!
//! Pure functions over text, so they are unit-tested without QEMU. The log may hold `\r\n`
//! line ends, ANSI escapes, stray control bytes and bytes that are not UTF-8: callers convert
//! lossily ([`String::from_utf8_lossy`]) and every line is cleaned before it is read.

use report::BootReport;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Prefix of dom0's result line.
pub const RESULT_MARKER: &str = "DOM0-RESULT: ";
/// Prefix of dom0's one-line JSON report.
pub const REPORT_MARKER: &str = "DOM0-REPORT-JSON ";

const XEN_PREFIX: &str = "(XEN) ";
/// Most lines of one kind kept in a report (warnings, BAR lines, panic text).
const KEEP: usize = 200;

/// What Xen's own console lines say.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XenLog {
    /// Version from `Xen version 4.17.x ...`, e.g. `4.17.7`.
    pub version: Option<String>,
    /// `*** Building a PVH Dom0 ***` was printed.
    pub pvh_dom0_built: bool,
    /// Xen reported that dom0 crashed (or triple-faulted, or was `domain_crash`ed).
    pub dom0_crashed: bool,
    /// Xen panicked.
    pub panic: bool,
    /// `ssss:bb:dd.f` of every `PCI add device|extended function|virtual function` line, in order,
    /// without repeats.
    pub pci_devices_added: Vec<String>,
    /// `ignored BAR ... write while mapped` and `not mapping BAR` lines.
    pub bar_warnings: Vec<String>,
    /// Lines with `WARNING`, without repeats.
    pub warnings: Vec<String>,
    /// Lines that show the crash or panic (the panic block, the crash lines).
    #[serde(default)]
    pub crash_lines: Vec<String>,
    /// How many `(XEN)` lines the log holds.
    #[serde(default)]
    pub xen_lines: usize,
    /// Xen's own command line, from `Command line: ...`.
    #[serde(default)]
    pub cmdline: Option<String>,
    /// Physical CPUs Xen started, from `Brought up N CPUs`.
    #[serde(default)]
    pub cpus: Option<u32>,
}

impl XenLog {
    /// `(major, minor)` of [`XenLog::version`].
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let v = self.version.as_deref()?;
        let mut parts = v.split(['.', '-', '+']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }
}

/// dom0's `DOM0-RESULT:` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "result", content = "reason")]
pub enum Dom0Result {
    /// `DOM0-RESULT: ready`
    Ready,
    /// `DOM0-RESULT: failed: <reason>`
    Failed(String),
    /// Any other text after the marker.
    Other(String),
}

/// Everything read from one serial log.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    pub xen: XenLog,
    /// The last `DOM0-RESULT:` line.
    pub dom0_result: Option<Dom0Result>,
    /// The last `DOM0-REPORT-JSON` object that parsed.
    pub dom0_report: Option<BootReport>,
    /// Why the last `DOM0-REPORT-JSON` line did not parse, if it did not.
    pub dom0_report_error: Option<String>,
    /// dom0's own lines (no `(XEN)` lines), cleaned.
    pub dom0_lines: Vec<String>,
}

/// Removes ANSI escape sequences and control characters (tab kept), and a trailing `\r`.
pub fn clean_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params... final byte in 0x40..=0x7e; other escapes: ESC + one char.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// Splits a cleaned line into (dom0 part, Xen part). Xen's part is the text after `(XEN) `.
fn split_xen(line: &str) -> (&str, Option<&str>) {
    match line.find(XEN_PREFIX) {
        Some(p) => (&line[..p], Some(&line[p + XEN_PREFIX.len()..])),
        None => (line, None),
    }
}

/// Strips the `(d0) ` prefix that Xen puts on dom0's port-0xE9 output.
fn strip_guest_prefix(text: &str) -> &str {
    text.trim_start().strip_prefix("(d0) ").unwrap_or(text)
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if list.len() < KEEP && !list.iter().any(|x| x == item) {
        list.push(item.to_string());
    }
}

/// The `ssss:bb:dd.f` after `PCI add device|extended function|virtual function`.
fn pci_add_sbdf(xen: &str) -> Option<String> {
    let pos = xen.find("PCI add ")?;
    let rest = &xen[pos + "PCI add ".len()..];
    let rest = ["device ", "extended function ", "virtual function "]
        .iter()
        .find_map(|kind| rest.strip_prefix(kind))?;
    let token = rest.split_whitespace().next()?;
    is_sbdf(token).then(|| token.to_ascii_lowercase())
}

/// `ssss:bb:dd.f` in hex.
pub fn is_sbdf(s: &str) -> bool {
    let b = s.as_bytes();
    let hex = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_hexdigit);
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && hex(0..4)
        && hex(5..7)
        && hex(8..10)
        && hex(11..12)
}

fn is_dom0_crash(xen: &str) -> bool {
    xen.contains("Hardware Dom0 crashed")
        || xen.contains("Domain 0 crashed")
        || (xen.contains("Domain 0 (vcpu") && xen.contains("crashed"))
        || xen.contains("domain_crash")
        || (xen.contains("d0v") && xen.to_ascii_lowercase().contains("triple fault"))
}

/// Reads one serial log.
pub fn analyse(serial: &str) -> Analysis {
    let mut a = Analysis::default();
    let mut in_star_block = false;
    let mut star_block: Vec<String> = Vec::new();
    let mut last_report: Option<&str> = None;
    let lines: Vec<String> = serial.split('\n').map(clean_line).collect();
    // dom0 and Xen share the serial line: Xen can print a whole line of its own in the middle of
    // one of dom0's (seen: "...\"mtrr_prob(XEN) uart interrupt taking more than 4ms, switched to
    // polling\r\nlems\":[]}..."). The dom0 text before such a Xen line continues on the next
    // line that is not Xen's, so dom0's lines are reassembled before they are read.
    let mut dom0_logical: Vec<String> = Vec::new();
    let mut cut = String::new();
    let mut xen_parts: Vec<&str> = Vec::new();
    for line in &lines {
        let (dom0_part, xen_part) = split_xen(line);
        let dom0_text = strip_guest_prefix(dom0_part);
        match xen_part {
            Some(x) => {
                cut.push_str(dom0_text);
                xen_parts.push(x);
            }
            None if !cut.is_empty() => {
                cut.push_str(dom0_text);
                dom0_logical.push(std::mem::take(&mut cut));
            }
            None => dom0_logical.push(dom0_text.to_string()),
        }
    }
    if !cut.is_empty() {
        dom0_logical.push(cut);
    }
    for text in &dom0_logical {
        if !text.trim().is_empty() {
            read_dom0_line(&mut a, text, &mut last_report);
        }
    }
    for xen in xen_parts {
        a.xen.xen_lines += 1;
        let x = &mut a.xen;
        if x.version.is_none()
            && let Some(rest) = xen.trim_start().strip_prefix("Xen version ")
        {
            x.version = rest.split_whitespace().next().map(str::to_string);
        }
        if x.cmdline.is_none()
            && let Some(rest) = xen.trim_start().strip_prefix("Command line: ")
        {
            x.cmdline = Some(rest.trim().to_string());
        }
        if let Some(rest) = xen.trim_start().strip_prefix("Brought up ")
            && let Some(n) = rest
                .strip_suffix(" CPUs")
                .or_else(|| rest.strip_suffix(" CPU"))
        {
            x.cpus = n.trim().parse().ok();
        }
        if xen.contains("*** Building a PVH Dom0 ***") {
            x.pvh_dom0_built = true;
        }
        if xen.contains("Panic on CPU") {
            x.panic = true;
        }
        if is_dom0_crash(xen) {
            x.dom0_crashed = true;
            push_unique(&mut x.crash_lines, xen.trim());
        }
        if let Some(sbdf) = pci_add_sbdf(xen) {
            push_unique(&mut x.pci_devices_added, &sbdf);
        }
        if (xen.contains("ignored BAR") && xen.contains("write while mapped"))
            || xen.contains("not mapping BAR")
        {
            push_unique(&mut x.bar_warnings, xen.trim());
        }
        if xen.contains("WARNING") {
            push_unique(&mut x.warnings, xen.trim());
        }
        // Panic blocks sit between two lines of 40 asterisks.
        let stars = xen.trim();
        if stars.len() == 40 && stars.bytes().all(|b| b == b'*') {
            if in_star_block {
                if star_block.iter().any(|l| l.contains("Panic on CPU")) {
                    for l in star_block.drain(..) {
                        push_unique(&mut x.crash_lines, &l);
                    }
                }
                star_block.clear();
            }
            in_star_block = !in_star_block;
        } else if in_star_block && star_block.len() < KEEP {
            star_block.push(xen.trim().to_string());
        }
    }
    // An unterminated panic block (the log was cut) still counts.
    if star_block.iter().any(|l| l.contains("Panic on CPU")) {
        for l in &star_block {
            push_unique(&mut a.xen.crash_lines, l);
        }
    }
    if let Some(text) = last_report {
        match parse_report(text) {
            Ok(v) => a.dom0_report = Some(v),
            Err(e) => a.dom0_report_error = Some(e),
        }
    }
    a
}

fn read_dom0_line<'a>(a: &mut Analysis, text: &'a str, last_report: &mut Option<&'a str>) {
    if a.dom0_lines.len() < 100_000 {
        a.dom0_lines.push(text.to_string());
    }
    if let Some(p) = text.find(REPORT_MARKER) {
        *last_report = Some(&text[p + REPORT_MARKER.len()..]);
    }
    if let Some(p) = text.find(RESULT_MARKER) {
        let rest = text[p + RESULT_MARKER.len()..].trim();
        a.dom0_result = Some(if rest == "ready" {
            Dom0Result::Ready
        } else if let Some(reason) = rest.strip_prefix("failed") {
            Dom0Result::Failed(reason.trim_start_matches(':').trim().to_string())
        } else {
            Dom0Result::Other(rest.to_string())
        });
    }
}

/// Parses the first JSON value after the marker; trailing bytes (e.g. an interleaved console
/// line) are ignored. It must be an object, read as a typed `report::BootReport` (keys it does
/// not know are ignored, missing ones take their defaults).
fn parse_report(text: &str) -> Result<BootReport, String> {
    let mut stream = serde_json::Deserializer::from_str(text.trim_start()).into_iter::<Value>();
    match stream.next() {
        Some(Ok(v @ Value::Object(_))) => serde_json::from_value(v)
            .map_err(|e| format!("DOM0-REPORT-JSON does not match the report's shape: {e}")),
        Some(Ok(_)) => Err("DOM0-REPORT-JSON is not a JSON object".into()),
        Some(Err(e)) => Err(format!("DOM0-REPORT-JSON does not parse: {e}")),
        None => Err("DOM0-REPORT-JSON line is empty".into()),
    }
}

/// A Xen line after which Xen will print nothing useful: the run can be stopped.
/// (`noreboot` makes Xen wait forever after a panic, a dom0 crash, or dom0 halting or
/// rebooting the machine.)
pub fn is_terminal_xen_line(line: &str) -> bool {
    let (_, xen) = split_xen(line);
    xen.is_some_and(|x| {
        [
            "Manual reset required",
            "Reboot disabled on cmdline",
            "Hardware Dom0 crashed",
            "Hardware Dom0 halted",
            "Hardware Dom0 shutdown",
            "Hardware domain 0 did unsupported soft reset",
            "Panic on CPU",
        ]
        .iter()
        .any(|m| x.contains(m))
    })
}

/// Whether a dump the harness asked for (`text` starts at its mark line) shows a scheduler
/// stall: QEMU used almost no CPU since the last console byte (the emulated machine was
/// halted, per the mark's `[QEMU used N% ...]`), yet Xen's first run-queue dump (debug key
/// `r`) has a guest vCPU on a `RUNQ` while every CPU's `current` is the idle vCPU. Both are
/// needed: Xen may run the key handlers in a tasklet on the idle vCPU, so on a busy machine
/// the dump itself shows runnable vCPUs queued behind an idle CPU.
pub fn scheduler_stall(text: &str) -> bool {
    let head = text.get(..text.len().min(600)).unwrap_or(text);
    let cpu = head
        .split("QEMU used ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|p| p.trim().parse::<f64>().ok());
    if !cpu.is_some_and(|p| p < crate::qemu::IDLE_PERCENT) {
        return false;
    }
    let mut in_runq = false;
    let mut in_cpus = false;
    let (mut queued, mut cpus, mut idle) = (0, 0, 0);
    for line in text.lines() {
        let (_, xen) = split_xen(line);
        let Some(x) = xen else { continue };
        let x = x.trim();
        if x.starts_with("RUNQ:") {
            in_runq = !in_cpus;
            continue;
        }
        if x.starts_with("CPUs info:") {
            in_runq = false;
            in_cpus = true;
            continue;
        }
        if in_runq && x.contains(": [") && !x.contains("[32767.") {
            // "  0: [0.0] flags=0 cpu=0 credit=..." (credit2), "  0: [1.0] pri=0 ..." (credit1);
            // domain 32767 is the idle domain.
            queued += 1;
        }
        if in_cpus {
            if let Some(cur) = x.split("current=").nth(1) {
                cpus += 1;
                if cur.starts_with("d[IDLE]") {
                    idle += 1;
                }
            } else if !x.starts_with("CPU[") {
                // The CPU list ended (the next dump started).
                break;
            }
        }
    }
    queued > 0 && cpus > 0 && idle == cpus
}

/// QEMU's own view after a silence (the `image: qemu:` lines [`crate::qemu::qemu_view`]
/// writes) shows the emulator's lost wakeup seen on this bench (QEMU 7.2, TCG with nested
/// SVM): CPU 0 halted (`HLT=1`) with interrupts enabled (`RFL` bit 9), and its local APIC
/// holding a vector in IRR whose priority class is above the processor priority (PPR), with
/// nothing in service. A real CPU would take that interrupt at once; the machine instead stays
/// halted for good, deaf even to Xen's console (its timer interrupt is the one pending).
/// Returns the pending vector.
pub fn qemu_lost_wakeup(text: &str) -> Option<u8> {
    let mut halted_if = None;
    let (mut irr, mut isr_empty, mut ppr) = (None, false, None);
    for line in text.lines() {
        let Some(q) = line.strip_prefix("image: qemu: ") else {
            continue;
        };
        let q = q.trim();
        if q.starts_with("CPU#") && q != "CPU#0" {
            // Only CPU 0's registers (the first `info registers -a` block) count.
            if halted_if.is_some() {
                break;
            }
        }
        if halted_if.is_none() && q.contains("RIP=") && q.contains("HLT=") {
            let rfl = q
                .split("RFL=")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|h| u64::from_str_radix(h, 16).ok());
            halted_if = Some(q.contains("HLT=1") && rfl.is_some_and(|f| f & 0x200 != 0));
        }
        if let Some(rest) = q.strip_prefix("IRR") {
            // The local APIC's IRR line ("IRR\t 250 "); the IOAPIC's is "IRR      (none)".
            if irr.is_none() {
                irr = Some(
                    rest.split_whitespace()
                        .filter_map(|v| v.parse::<u8>().ok())
                        .max(),
                );
            }
        }
        if let Some(rest) = q.strip_prefix("ISR") {
            isr_empty = rest.trim() == "(none)";
        }
        if q.starts_with("APR ") {
            ppr = q
                .split("PPR 0x")
                .nth(1)
                .and_then(|p| u8::from_str_radix(p.trim(), 16).ok());
        }
    }
    let vector = irr.flatten()?;
    (halted_if == Some(true) && isr_empty && (vector & 0xf0) > (ppr? & 0xf0)).then_some(vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Xen 4.20's `r` dump (credit2, one CPU) from an idle dom0, and the stalled shape the
    /// README describes (d0v0 queued, every CPU idle).
    const RUNQ_IDLE: &str = "(XEN) sched_smt_power_savings: disabled\n(XEN) NOW=6446281030\n\
        (XEN) Online Cpus: 0\n(XEN) Scheduler: SMP Credit Scheduler rev2 (credit2)\n\
        (XEN) Domain info:\n(XEN) \t  1: [0.0] flags=20 cpu=0 credit=2120808 [w=256]\n\
        (XEN) Runqueue 0:\n(XEN) CPU[00] runq=0, sibling={0}, core={0}\n(XEN) RUNQ:\n\
        (XEN) CPUs info:\n(XEN) CPU[00] current=d[IDLE]v0, curr=d[IDLE]v0, prev=NULL\n\
        (XEN) 'e' pressed -> dumping event-channel info\n";

    #[test]
    fn an_empty_run_queue_is_no_stall() {
        assert!(!scheduler_stall(&(mark("0.1") + RUNQ_IDLE)));
        assert!(!scheduler_stall(""));
    }

    /// The harness's mark line with QEMU's CPU use since the last console byte.
    fn mark(cpu: &str) -> String {
        format!(
            "\n{} [QEMU used {cpu}% of a CPU in the 60 s since the last console byte]\n",
            crate::qemu::XEN_SILENCE_MARK
        )
    }

    #[test]
    fn a_queued_vcpu_with_every_cpu_idle_is_a_stall() {
        let queued = RUNQ_IDLE.replace(
            "(XEN) RUNQ:\n",
            "(XEN) RUNQ:\n(XEN) \t  0: [0.0] flags=0 cpu=0 credit=-10000000 [w=256]\n",
        );
        let stalled = mark("0.3") + &queued;
        assert!(scheduler_stall(&stalled));
        // A busy machine: the queue is what the key handlers' tasklet preempted.
        assert!(!scheduler_stall(&(mark("97.5") + &queued)));
        // Without QEMU's CPU figure it cannot be told.
        assert!(!scheduler_stall(&queued));
        // The same queue while the CPU runs a guest vCPU is ordinary contention.
        let busy = stalled.replace("current=d[IDLE]v0, curr", "current=d1v0, curr");
        assert!(!scheduler_stall(&busy));
        // Two CPUs, one busy: not the stall.
        let two = stalled.replace(
            "(XEN) 'e' pressed",
            "(XEN) CPU[01] current=d0v1, curr=d0v1, prev=NULL\n(XEN) 'e' pressed",
        );
        assert!(!scheduler_stall(&two));
    }

    const GOOD: &str = "\
\x1b[0m Xen 4.17.7 banner junk\r
(XEN) Xen version 4.17.7 (Debian 4.17.7+13-g2445b30a44-0+deb12u1) (pkg-xen-devel@x) (gcc) debug=n\r
(XEN) Command line: console=com1 dom0=pvh dom0_max_vcpus=2\r
(XEN) Brought up 2 CPUs\r
(XEN) PCI add device 0000:00:00.0\r
(XEN) PCI add device 0000:00:01.0\r
(XEN) PCI add extended function 0000:01:00.1\r
(XEN) PCI add virtual function 0000:01:10.0\r
(XEN) PCI add device 0000:00:01.0\r
(XEN) *** Building a PVH Dom0 ***\r
(XEN) WARNING: PVH is an experimental mode with limited functionality\r
(XEN) WARNING: PVH is an experimental mode with limited functionality\r
(XEN) ***************************************************\r
(XEN) WARNING: CONSOLE OUTPUT IS SYNCHRONOUS\r
(XEN) ***************************************************\r
dom0: hello\x07\r
(XEN) d0v0 0000:00:03.0: ignored BAR 1 write while mapped\r
(XEN) 0000:00:04.0: not mapping BAR [fe000, fe3ff] invalid position\r
DOM0-REPORT-JSON {\"under_xen\":true,\"xen\":{\"major\":4,\"minor\":17},\"phases\":[{\"name\":\"ready\",\"at_ns\":5}]}\r
DOM0-RESULT: ready\r
";

    #[test]
    fn reads_a_good_boot() {
        let a = analyse(GOOD);
        let x = &a.xen;
        assert_eq!(x.version.as_deref(), Some("4.17.7"));
        assert_eq!(x.major_minor(), Some((4, 17)));
        assert!(x.pvh_dom0_built);
        assert!(!x.dom0_crashed && !x.panic);
        assert!(x.crash_lines.is_empty(), "{:?}", x.crash_lines);
        assert_eq!(
            x.pci_devices_added,
            [
                "0000:00:00.0",
                "0000:00:01.0",
                "0000:01:00.1",
                "0000:01:10.0"
            ]
        );
        assert_eq!(x.bar_warnings.len(), 2);
        assert!(x.bar_warnings[0].starts_with("d0v0 0000:00:03.0: ignored BAR 1"));
        assert_eq!(x.warnings.len(), 2, "{:?}", x.warnings);
        assert_eq!(x.xen_lines, 16);
        assert_eq!(
            x.cmdline.as_deref(),
            Some("console=com1 dom0=pvh dom0_max_vcpus=2")
        );
        assert_eq!(x.cpus, Some(2));
        assert_eq!(a.dom0_result, Some(Dom0Result::Ready));
        let r = a.dom0_report.unwrap();
        assert_eq!(r.xen.unwrap().minor, 17);
        assert!(a.dom0_lines.iter().any(|l| l == "dom0: hello"));
        let lossy = String::from_utf8_lossy(b"dom0: bad \xff byte\r\nDOM0-RESULT: ready\r\n");
        let a = analyse(&lossy);
        assert_eq!(a.dom0_lines[0], "dom0: bad \u{fffd} byte");
        assert_eq!(a.dom0_result, Some(Dom0Result::Ready));
    }

    #[test]
    fn bare_log_has_no_xen_lines() {
        let a = analyse("DOM0-REPORT-JSON {\"under_xen\":false}\nDOM0-RESULT: ready\n");
        assert_eq!(a.xen, XenLog::default());
        assert_eq!(a.dom0_result, Some(Dom0Result::Ready));
        assert!(!a.dom0_report.unwrap().under_xen);
    }

    #[test]
    fn reads_a_panic() {
        let log = "\
(XEN) Xen version 4.20.3 (Debian 4.20.3+127) debug=n\n\
(XEN) ****************************************\n\
(XEN) Panic on CPU 0:\n\
(XEN) Could not construct domain 0\n\
(XEN) ****************************************\n\
(XEN) \n\
(XEN) Manual reset required ('noreboot' specified)\n";
        let a = analyse(log);
        assert!(a.xen.panic);
        assert!(!a.xen.pvh_dom0_built);
        assert_eq!(analyse("(XEN) Brought up 1 CPU\n").xen.cpus, Some(1));
        assert_eq!(a.xen.major_minor(), Some((4, 20)));
        assert_eq!(
            a.xen.crash_lines,
            ["Panic on CPU 0:", "Could not construct domain 0"]
        );
        assert!(is_terminal_xen_line(
            "(XEN) Manual reset required ('noreboot' specified)"
        ));
        assert!(!is_terminal_xen_line("dom0: Manual reset required"));
        assert!(is_terminal_xen_line(
            "(XEN) Hardware Dom0 halted: halting machine"
        ));
    }

    #[test]
    fn cut_panic_block_counts() {
        let a = analyse(
            "(XEN) ****************************************\n(XEN) Panic on CPU 1:\n(XEN) FATAL TRAP",
        );
        assert!(a.xen.panic);
        assert_eq!(a.xen.crash_lines, ["Panic on CPU 1:", "FATAL TRAP"]);
    }

    #[test]
    fn reads_dom0_crashes() {
        for line in [
            "(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.",
            "(XEN) Domain 0 crashed: 'noreboot' set - not rebooting.",
            "(XEN) d0v1 Triple fault - invoking HVM shutdown action 1",
            "(XEN) domain_crash called from svm.c:1234",
            "(XEN) Domain 0 (vcpu#0) crashed on cpu#0:",
        ] {
            let a = analyse(line);
            assert!(a.xen.dom0_crashed, "{line}");
            assert_eq!(a.xen.crash_lines.len(), 1, "{line}");
        }
        let a = analyse("(XEN) d0v0 triple fault\n");
        assert!(a.xen.dom0_crashed);
        // dom0 quoting the words is not a crash: only Xen's lines count.
        let a = analyse("dom0: pretend Hardware Dom0 crashed\n");
        assert!(!a.xen.dom0_crashed);
    }

    #[test]
    fn xen_line_inside_the_dom0_json_line_is_cut_out() {
        // Bytes from a real Xen 4.20 run with 4 vCPUs.
        let log = "DOM0-REPORT-JSON {\"vcpu_list\":[{\"id\":1,\"mtrr_prob(XEN) uart interrupt taking more than 4ms, switched to polling\r\nlems\":[\"x\"]}],\"vcpus\":2}\r\nDOM0-RESULT: ready\r\n";
        let a = analyse(log);
        let r = a.dom0_report.expect("the report reassembles");
        assert_eq!(r.vcpus, 2);
        assert_eq!(r.vcpu_list[0].id, 1);
        assert_eq!(r.vcpu_list[0].mtrr_problems, ["x"]);
        assert_eq!(a.dom0_result, Some(Dom0Result::Ready));
        assert_eq!(a.xen.xen_lines, 1);
    }

    #[test]
    fn failed_result_and_bad_json() {
        let log = "DOM0-REPORT-JSON {\"a\":1\nDOM0-RESULT: failed: no memory map\n";
        let a = analyse(log);
        assert_eq!(
            a.dom0_result,
            Some(Dom0Result::Failed("no memory map".into()))
        );
        assert!(a.dom0_report.is_none());
        assert!(a.dom0_report_error.unwrap().contains("does not parse"));
    }

    #[test]
    fn report_with_trailing_garbage_and_guest_prefix() {
        let log = "(d0) DOM0-REPORT-JSON {\"errors\":[\"x\",\"y\"]}(XEN) some xen line\n";
        let a = analyse(log);
        assert_eq!(a.dom0_report.unwrap().errors[1], "y");
        assert_eq!(a.xen.xen_lines, 1);
        let a = analyse("DOM0-REPORT-JSON {\"vcpus\":1} trailing words\n");
        assert_eq!(a.dom0_report.unwrap().vcpus, 1);
        let a = analyse("DOM0-REPORT-JSON [1]\n");
        assert!(a.dom0_report_error.unwrap().contains("not a JSON object"));
    }

    #[test]
    fn cleans_lines() {
        assert_eq!(clean_line("\x1b[1;31mred\x1b[0m\r"), "red");
        assert_eq!(clean_line("a\x00b\tc"), "ab\tc");
        assert_eq!(clean_line("\x1b7x"), "x");
    }

    #[test]
    fn sbdf() {
        assert!(is_sbdf("0000:00:1f.7"));
        assert!(!is_sbdf("0000:00:1f"));
        assert!(!is_sbdf("00:1f.7"));
        assert!(!is_sbdf("0000:0g:1f.7"));
        assert_eq!(
            pci_add_sbdf("PCI add device 0000:AB:01.0 (phys fn)").as_deref(),
            Some("0000:ab:01.0")
        );
        assert_eq!(pci_add_sbdf("PCI add device garbage"), None);
    }

    /// QEMU's view as the harness logged it in a hostile 4.20 run that froze (trimmed).
    const LOST_WAKEUP: &str = "image: no console output for a while; asking Xen for its state (debug keys q r e) [QEMU used 0.0% of a CPU in the 60 s since the last console byte]\n\
        image: qemu: (info registers -a)\nimage: qemu: CPU#0\n\
        image: qemu: RIP=ffff82d040302757 RFL=00000206 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\n\
        image: qemu: EFER=0000000000001d01\nimage: qemu: (info lapic)\n\
        image: qemu: LVTT\t 0x000000fa active-hi edge                 one-shot     Fixed  (vec 250)\n\
        image: qemu: Timer\t DCR=0xb (divide by 1) initial_count = 701437 current_count = 0\n\
        image: qemu: ISR\t (none)\nimage: qemu: IRR\t 250 \n\
        image: qemu: APR 0x00 TPR 0x10 DFR 0x0f LDR 0x01 PPR 0x10\n\
        image: qemu: (info pic)\nimage: qemu:   IRR      (none)\n";

    #[test]
    fn lost_wakeup_is_read_from_qemus_view() {
        assert_eq!(qemu_lost_wakeup(LOST_WAKEUP), Some(250));
        // Interrupts off (IF clear): halting is the guest's own doing.
        let cli = LOST_WAKEUP.replace("RFL=00000206", "RFL=00000006");
        assert_eq!(qemu_lost_wakeup(&cli), None);
        // Running, not halted.
        assert_eq!(
            qemu_lost_wakeup(&LOST_WAKEUP.replace("HLT=1", "HLT=0")),
            None
        );
        // Nothing pending, or only below the processor priority, or one in service.
        assert_eq!(
            qemu_lost_wakeup(&LOST_WAKEUP.replace("IRR\t 250 ", "IRR\t (none)")),
            None
        );
        let low = LOST_WAKEUP.replace("PPR 0x10", "PPR 0xf0");
        assert_eq!(qemu_lost_wakeup(&low), None);
        let serving = LOST_WAKEUP.replace("ISR\t (none)", "ISR\t 251");
        assert_eq!(qemu_lost_wakeup(&serving), None);
        // No QEMU view at all (a run without QMP, or QEMU did not answer).
        assert_eq!(qemu_lost_wakeup(""), None);
        assert_eq!(
            qemu_lost_wakeup("image: qemu: QMP at /tmp/x did not answer: refused"),
            None
        );
    }
}
