//! Shared helpers for the boot tests: one QEMU at a time, and assertions that always say where
//! the run's serial log is.
//!
//! Every scenario checks dom0's JSON report *and* Xen's own log lines, so that no test can pass
//! on dom0's word alone.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use image::{Outcome, RunConfig, RunOutcome, XenVersion};
use report::{BootReport, DomuSummary, PciBarKind, PciFunction, PciSummary};

/// All QEMU runs of this process take turns (2 cores, software CPU emulation).
static QEMU: Mutex<()> = Mutex::new(());

/// Timeout for one boot in the tests: generous, since CI machines may be slower.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A configuration with the tests' defaults and a run name suffix.
pub fn config(xen: XenVersion, smp: u32, name: &str) -> RunConfig {
    RunConfig {
        xen,
        smp,
        timeout: TEST_TIMEOUT,
        run_name: Some(name.to_string()),
        quiet: true,
        ..RunConfig::default()
    }
}

/// Boots `cfg` (one QEMU at a time). Panics with the set-up error if the run could not start.
pub fn boot(cfg: &RunConfig) -> RunOutcome {
    boot_busy(cfg, 0)
}

/// Busy processes on the host, so a scenario boots the way it does on a machine that is doing
/// something else (TCG's vCPU threads then lose their host cores at random moments). Each is a
/// shell counting to [`BUSY_LIMIT_COUNT`] (about five minutes of one core), so even a test
/// killed outright cannot leave one spinning for long; dropping the guard kills them (the shell
/// itself is the child, so the kill reaches the loop).
#[derive(Debug)]
pub struct BusyHost {
    children: Vec<std::process::Child>,
}

/// How far a busy process counts before it ends by itself.
pub const BUSY_LIMIT_COUNT: u64 = 300_000_000;

impl BusyHost {
    pub fn start(n: usize) -> BusyHost {
        let children = (0..n)
            .map(|_| {
                std::process::Command::new("sh")
                    .args([
                        "-c",
                        &format!("n=0; while [ $n -lt {BUSY_LIMIT_COUNT} ]; do n=$((n+1)); done"),
                    ])
                    .stdin(std::process::Stdio::null())
                    .spawn()
                    .expect("start a busy process (sh)")
            })
            .collect();
        BusyHost { children }
    }
}

impl Drop for BusyHost {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Like [`boot`], with `busy` busy processes running on the host for exactly the length of the
/// boot (started once it is this run's turn, so waiting runs do not load each other).
pub fn boot_busy(cfg: &RunConfig, busy: usize) -> RunOutcome {
    let _turn = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let load = BusyHost::start(busy);
    let mut out = image::run(cfg).unwrap_or_else(|e| panic!("could not run {cfg:?}: {e:#}"));
    // QEMU 7.2's software CPU can leave the machine halted for good with a deliverable
    // interrupt pending in its local APIC (the lost wakeup of README's Troubleshooting; seen on
    // busy hosts at a DomU's power-off). Only that state, read from QEMU's own view after a
    // silence, earns the scenario one more boot; the second must pass every assertion by
    // itself, and the reason says the first froze.
    if out.report.outcome == Outcome::Timeout
        && let Some(v) = out.report.silences.iter().find_map(|s| s.qemu_lost_wakeup)
    {
        let first = out.report.run.clone();
        eprintln!(
            "{first}: QEMU froze with vector {v} pending in its local APIC (an emulator lost \
             wakeup, see README); booting the scenario once more"
        );
        out = image::run(cfg).unwrap_or_else(|e| panic!("could not run {cfg:?}: {e:#}"));
        out.report.reason = format!(
            "{} (second boot: the first, {first}, froze in QEMU with vector {v} pending)",
            out.report.reason
        );
    }
    drop(load);
    eprintln!(
        "{}: {} ({}) in {} ms{}; serial log {}",
        out.report.run,
        out.report.outcome.as_str(),
        out.report.reason,
        out.report.wall_ms,
        if busy > 0 {
            format!(" with {busy} busy process(es) on the host")
        } else {
            String::new()
        },
        out.serial_log.display()
    );
    out
}

/// Context for a failed assertion: where the logs are, the verdict, and the end of the log.
pub fn context(out: &RunOutcome) -> String {
    format!(
        "\n  run:        {}\n  serial log: {}\n  report:     {}\n  outcome:    {} ({})\n  \
         last lines of the serial log:\n{}",
        out.report.run,
        out.serial_log.display(),
        out.report_json.display(),
        out.report.outcome.as_str(),
        out.report.reason,
        indent(&out.tail(25))
    )
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `assert!` whose message carries the run's serial log path and log tail.
#[macro_export]
macro_rules! check {
    ($out:expr, $cond:expr, $($msg:tt)+) => {
        if !$cond {
            panic!("{}{}", format_args!($($msg)+), $crate::context(&$out));
        }
    };
}

/// dom0's report (parsed from its `DOM0-REPORT-JSON` line); fails the test if there is none.
pub fn dom0(out: &RunOutcome) -> &BootReport {
    match out.dom0() {
        Some(v) => v,
        None => panic!(
            "dom0 printed no parsable DOM0-REPORT-JSON line ({}){}",
            out.analysis
                .dom0_report_error
                .as_deref()
                .unwrap_or("no such line"),
            context(out)
        ),
    }
}

/// The run passed: QEMU exit 33, `DOM0-RESULT: ready`, a report, and (under Xen) a PVH dom0
/// built without crash or panic.
pub fn assert_pass(out: &RunOutcome) {
    check!(
        out,
        out.report.outcome == Outcome::Pass,
        "expected outcome pass, got {}: {}",
        out.report.outcome.as_str(),
        out.report.reason
    );
    check!(
        out,
        out.report.qemu_exit_code == Some(33),
        "expected QEMU exit 33, got {:?}",
        out.report.qemu_exit_code
    );
}

/// Xen's own log: the expected version, a PVH dom0 built, no dom0 crash, no panic.
pub fn assert_xen_log_clean(out: &RunOutcome, major: u32, minor: u32) {
    let x = &out.report.xen_log;
    check!(
        out,
        x.major_minor() == Some((major, minor)),
        "Xen's log shows version {:?}, expected {major}.{minor}",
        x.version
    );
    check!(
        out,
        x.pvh_dom0_built,
        "Xen's log has no '*** Building a PVH Dom0 ***'"
    );
    check!(
        out,
        !x.dom0_crashed,
        "Xen reports a dom0 crash: {:?}",
        x.crash_lines
    );
    check!(out, !x.panic, "Xen panicked: {:?}", x.crash_lines);
}

/// Nothing crashed: no Xen panic, no dom0 crash seen by Xen, no dom0 exception exit.
pub fn assert_nothing_crashed(out: &RunOutcome) {
    let x = &out.report.xen_log;
    check!(out, !x.panic, "Xen panicked: {:?}", x.crash_lines);
    check!(
        out,
        !x.dom0_crashed,
        "Xen reports a dom0 crash: {:?}",
        x.crash_lines
    );
    check!(
        out,
        out.report.outcome != Outcome::Crashed && out.report.qemu_exit_code != Some(37),
        "the run crashed: {}",
        out.report.reason
    );
}

/// The report's phases include one named `ready`.
pub fn assert_ready_phase(out: &RunOutcome) {
    let d = dom0(out);
    check!(
        out,
        image::bench::ready_ns(d).is_some(),
        "dom0's report has no 'ready' phase: phases = {:?}",
        d.phases
    );
    check!(out, d.ready, "dom0's report says ready = {}", d.ready);
}

/// dom0's report under Xen agrees with Xen's log and with the configuration.
pub fn assert_dom0_under_xen(out: &RunOutcome, major: u32, minor: u32) {
    let d = dom0(out);
    let cfg = &out.report;
    check!(out, d.under_xen, "dom0 says under_xen = {}", d.under_xen);
    let (dmaj, dmin) = (
        d.xen.as_ref().map(|x| u64::from(x.major)),
        d.xen.as_ref().map(|x| u64::from(x.minor)),
    );
    check!(
        out,
        (dmaj, dmin) == (Some(major.into()), Some(minor.into())),
        "dom0 says Xen {dmaj:?}.{dmin:?}, expected {major}.{minor}"
    );
    let xen_says = cfg
        .xen_log
        .major_minor()
        .map(|(a, b)| (u64::from(a), u64::from(b)));
    check!(
        out,
        xen_says == dmaj.zip(dmin),
        "dom0's Xen version {dmaj:?}.{dmin:?} disagrees with Xen's log {:?}",
        cfg.xen_log.version
    );
    // Xen's side of the vCPU and memory numbers: its command line and the CPUs it started.
    let xen_cmdline = cfg.xen_log.cmdline.as_deref().unwrap_or("");
    for word in [
        format!("dom0_max_vcpus={}", cfg.smp),
        format!("dom0_mem={}M", cfg.dom0_mem_mib),
    ] {
        check!(
            out,
            xen_cmdline.split(' ').any(|w| w.starts_with(&word)),
            "Xen's logged command line {xen_cmdline:?} lacks {word}"
        );
    }
    check!(
        out,
        cfg.xen_log.cpus == Some(cfg.smp),
        "Xen brought up {:?} CPUs, expected {}",
        cfg.xen_log.cpus,
        cfg.smp
    );
    check!(
        out,
        d.vcpus == cfg.smp,
        "dom0 reports {} vCPUs, expected {}",
        d.vcpus,
        cfg.smp
    );
    check!(
        out,
        d.memmap_source == "XENMEM_memory_map",
        "dom0's memory map came from {}, expected XENMEM_memory_map",
        d.memmap_source
    );
    let ram = d.ram_bytes;
    let want = u64::from(cfg.dom0_mem_mib) << 20;
    check!(
        out,
        ram >= want / 4 * 3 && ram <= want + (4 << 20),
        "dom0 reports {ram} bytes of RAM, not close to dom0_mem = {want} bytes"
    );
}

/// dom0's ACPI view agrees with the vCPU count: the MADT lists `smp` enabled CPUs, and under
/// Xen their APIC ids are 2 x vCPU id (Xen's crafted MADT, `pvh_setup_acpi_madt()`).
pub fn assert_madt_matches(out: &RunOutcome, smp: u32, under_xen: bool) {
    let d = dom0(out);
    let Some(acpi) = &d.acpi else {
        panic!("dom0 reports no ACPI survey{}", context(out));
    };
    check!(
        out,
        acpi.madt_cpus == smp,
        "dom0's MADT lists {} CPUs, expected {smp}",
        acpi.madt_cpus
    );
    let ids = &acpi.madt_apic_ids;
    let want: Vec<u32> = (0..smp)
        .map(|i| if under_xen { 2 * i } else { i })
        .collect();
    check!(
        out,
        *ids == want,
        "MADT APIC ids {ids:?}, expected {want:?}"
    );
}

/// dom0's container MADT (built from the firmware's MADT for the vCPUs it runs) equals the MADT
/// Xen crafted, entry for entry, and nothing was rewritten.
pub fn assert_container_matches_xen(out: &RunOutcome, smp: u32) {
    let d = dom0(out);
    let Some(c) = d.acpi.as_ref().and_then(|a| a.container.as_ref()) else {
        panic!(
            "dom0 made no container MADT check: {:?}{}",
            d.acpi,
            context(out)
        );
    };
    check!(
        out,
        c.compared_with == "Xen's crafted MADT",
        "compared with {}",
        c.compared_with
    );
    check!(out, c.vcpus == smp, "container vCPUs {}", c.vcpus);
    let want: Vec<u32> = (0..smp).map(|i| 2 * i).collect();
    check!(
        out,
        c.apic_ids == want,
        "container APIC ids {:?}",
        c.apic_ids
    );
    check!(
        out,
        c.differences.is_empty(),
        "the container MADT differs from Xen's: {:?}",
        c.differences
    );
    check!(
        out,
        !c.rewritten,
        "dom0 rewrote tables it had no reason to: {c:?}"
    );
    check!(out, c.native_rsdp != 0, "the firmware RSDP was not found");
}

/// dom0 rewrote MADT/XSDT/RSDP for a smaller container, and the rewritten tables passed the
/// same validation as what it was given.
pub fn assert_container_rewritten(out: &RunOutcome, cpus: u32, ids: &[u32]) {
    let d = dom0(out);
    let Some(acpi) = &d.acpi else {
        panic!("dom0 reports no ACPI survey{}", context(out));
    };
    let Some(c) = &acpi.container else {
        panic!("no container MADT check: {acpi:?}{}", context(out));
    };
    check!(out, c.rewritten, "no rewrite: {c:?}");
    check!(out, c.vcpus == cpus, "container vCPUs {}", c.vcpus);
    check!(
        out,
        c.apic_ids == ids,
        "container APIC ids {:?}",
        c.apic_ids
    );
    check!(out, c.rsdp != 0 && c.madt != 0, "{c:?}");
    let dropped = c
        .differences
        .iter()
        .filter(|s| s.starts_with("only in given"))
        .count();
    let firmware_cpus = acpi.madt_cpus;
    check!(
        out,
        dropped as u64 == u64::from(firmware_cpus) - u64::from(cpus),
        "expected {} CPUs dropped from the MADT, the differences say {dropped}: {:?}",
        firmware_cpus - cpus,
        c.differences
    );
    let bad: Vec<&String> = acpi
        .problems
        .iter()
        .filter(|s| s.starts_with("rewritten tables"))
        .collect();
    check!(
        out,
        bad.is_empty(),
        "the rewritten tables have problems: {bad:?}"
    );
}

/// dom0's PCI enumeration agrees with Xen: the set of SBDFs dom0 reports equals the set Xen's
/// own log shows as added (`PCI add device ...`, which needs `loglvl=all`), every add returned
/// ok, every bridge was added before the functions behind it, and Xen never logged a BAR
/// written while mapped or a BAR it would not map.
pub fn assert_pci_matches_xen(out: &RunOutcome) {
    let d = dom0(out);
    let Some(pci) = &d.pci else {
        panic!("dom0 did not enumerate PCI{}", context(out));
    };
    let funcs = &pci.functions;
    check!(out, !funcs.is_empty(), "dom0 found no PCI functions");
    let mut dom0_set: Vec<String> = funcs.iter().map(|f| f.sbdf.clone()).collect();
    dom0_set.sort();
    let xen_order = out.report.xen_log.pci_devices_added.clone();
    let mut xen_set = xen_order.clone();
    xen_set.sort();
    check!(
        out,
        dom0_set == xen_set,
        "dom0 enumerated {dom0_set:?}, Xen added {xen_set:?}"
    );
    for f in funcs {
        check!(
            out,
            f.xen_add.is_ok(),
            "Xen refused {}: {}",
            f.sbdf,
            f.xen_add
        );
        if let Some(parent) = &f.parent {
            let pos = |s: &str| xen_order.iter().position(|x| x == s);
            let (p, c) = (pos(parent), pos(&f.sbdf));
            check!(
                out,
                p < c,
                "Xen added {} before its bridge {parent}",
                f.sbdf
            );
        }
    }
    let w = &out.report.xen_log.bar_warnings;
    check!(out, w.is_empty(), "Xen logged BAR warnings: {w:?}");
}

/// dom0's PCI survey; fails the test if there is none.
pub fn pci(out: &RunOutcome) -> &PciSummary {
    match &dom0(out).pci {
        Some(p) => p,
        None => panic!("dom0 did not enumerate PCI{}", context(out)),
    }
}

/// The PCI function with these ids, from dom0's report.
pub fn pci_function<'a>(
    out: &RunOutcome,
    d: &'a BootReport,
    vendor: u16,
    device: u16,
) -> &'a PciFunction {
    let f = d.pci.as_ref().and_then(|p| {
        p.functions
            .iter()
            .find(|f| f.vendor == vendor && f.device == device)
    });
    match f {
        Some(f) => f,
        None => panic!("dom0 reports no {vendor:04x}:{device:04x}{}", context(out)),
    }
}

/// A BAR of `f` with this index, kind and size.
pub fn assert_bar(out: &RunOutcome, f: &PciFunction, index: u8, kind: PciBarKind, size: u64) {
    check!(
        out,
        f.bars
            .iter()
            .any(|b| b.index == index && b.kind == kind && b.size == size && b.address != 0),
        "{} has no assigned BAR {index} {kind:?} of size {size:#x}: {:?}",
        f.sbdf,
        f.bars
    );
}

/// dom0 read a known register of `f` through its BAR (virtio `num_queues`, e1000 STATUS, NVMe
/// VS): the device answers at the address dom0 reports.
pub fn assert_device_check(out: &RunOutcome, f: &PciFunction) {
    let c = &f.device_check;
    check!(out, c.starts_with("ok:"), "{} device check: {c:?}", f.sbdf);
}

/// dom0 proved event delivery: a one-shot timer came back as VIRQ_TIMER, not before it was due.
pub fn assert_timer_event(out: &RunOutcome) {
    let d = dom0(out);
    let Some(t) = &d.timer else {
        panic!("dom0 checked no timer{}", context(out));
    };
    check!(out, t.via == "VIRQ_TIMER", "dom0's timer check: {t:?}");
    let (req, got) = (t.requested_ns, t.delivered_ns);
    check!(
        out,
        req > 0 && got >= req,
        "timer delivered after {got} ns for a request of {req} ns"
    );
}

/// Every vCPU Xen gave dom0 came up, ran the work it was sent, and agrees on its MTRRs; APIC
/// ids (from each vCPU's own CPUID) are 2 x vCPU id, as Xen assigns them.
pub fn assert_smp(out: &RunOutcome, smp: u32) {
    let d = dom0(out);
    let list = &d.vcpu_list;
    check!(
        out,
        list.len() == smp as usize,
        "vcpu_list has {} entries, expected {smp}",
        list.len()
    );
    for (i, v) in list.iter().enumerate() {
        check!(out, v.up, "vCPU {i} is not up: {v:?}");
        check!(
            out,
            v.apic_id as usize == 2 * i,
            "vCPU {i} reports APIC id {}, expected {}",
            v.apic_id,
            2 * i
        );
        if i > 0 {
            // dom0 sends each AP two pieces of work: the id probe and its own timer check.
            check!(
                out,
                v.work_done == 2,
                "vCPU {i} did not run both pieces of work: {v:?}"
            );
        }
        check!(
            out,
            v.cpuid_differences.is_empty(),
            "vCPU {i} has CPUID differences: {v:?}"
        );
    }
    if smp > 1 {
        let s = d.smp.clone().unwrap_or_default();
        check!(out, s.started == smp - 1, "SMP summary: {s:?}");
        check!(out, s.failed.is_empty(), "SMP failures: {s:?}");
    }
    let errors = &d.errors;
    check!(out, errors.is_empty(), "dom0 reports errors: {errors:?}");
    let m = d.mtrr.clone().unwrap_or_default();
    check!(out, m.enabled, "MTRRs not enabled: {m:?}");
    check!(out, m.consistent, "vCPUs disagree on MTRRs: {m:?}");
    // Xen's own word on the APs: no line about d0v1.. that reports a fault, crash or error.
    let bad: Vec<&str> = out
        .serial
        .lines()
        .filter(|l| l.starts_with("(XEN)"))
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            lower.contains("d0v")
                && !lower.contains("d0v0")
                && ["fault", "crash", "error", "fail"]
                    .iter()
                    .any(|w| lower.contains(w))
        })
        .collect();
    check!(
        out,
        bad.is_empty(),
        "Xen reports trouble with dom0's APs: {bad:?}"
    );
}

/// A 4 KiB pseudo-random file (fixed seed) for the bad-module scenario.
pub fn garbage_module() -> PathBuf {
    let dir = image::target_dir().join("test-data");
    std::fs::create_dir_all(&dir).expect("creating target/test-data");
    let path = dir.join("garbage-module.bin");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect();
    std::fs::write(&path, bytes).expect("writing the garbage module");
    path
}

/// Timeout for a boot with Debian DomUs (Linux boots in 15-30 s of emulated time per DomU
/// here, nested in Xen under TCG).
pub const DOMU_TIMEOUT: Duration = Duration::from_secs(420);

/// A configuration that boots the fetched Debian kernel + busybox initramfs as `domus`
/// (`image::DomuSpec` syntax: `NAME[:memory=,vcpus=,cmdline=]`).
pub fn domu_config(
    xen: XenVersion,
    smp: u32,
    name: &str,
    domus: &[&str],
    dom0_args: &[&str],
) -> RunConfig {
    let mut c = config(xen, smp, name);
    c.timeout = DOMU_TIMEOUT;
    c.domus = domus
        .iter()
        .map(|d| {
            d.parse()
                .unwrap_or_else(|e| panic!("bad DomU spec {d:?}: {e:#}"))
        })
        .collect();
    c.dom0_args = dom0_args.iter().map(|s| s.to_string()).collect();
    c
}

/// The serial log of a run.
pub fn serial(out: &RunOutcome) -> String {
    std::fs::read_to_string(&out.serial_log).unwrap_or_default()
}

/// dom0's report of the DomU called `name` (its last incarnation).
pub fn domu<'a>(out: &'a RunOutcome, name: &str) -> &'a DomuSummary {
    let d = dom0(out);
    let list = d.toolstack.as_ref().map(|t| &t.domus);
    match list.and_then(|l| l.iter().rev().find(|v| v.name == name)) {
        Some(v) => v,
        None => panic!(
            "dom0 reports no DomU {name:?}: toolstack = {:?}{}",
            d.toolstack,
            context(out)
        ),
    }
}

/// A DomU booted the Debian kernel to our init, wrote to xenstore (itself and from init),
/// stopped in `state`, and dom0 released everything; Xen's own log shows its context loaded
/// and its kernel registering an event upcall.
pub fn assert_domu_ran(out: &RunOutcome, name: &str, state: &str) -> u64 {
    let d = domu(out, name);
    check!(
        out,
        d.state.name() == state,
        "DomU {name}: state {}, expected {state}: {d:?}",
        d.state
    );
    let console: Vec<&str> = d.console.iter().map(String::as_str).collect();
    check!(
        out,
        console.iter().any(|l| l.starts_with("DOMU-INIT: up 6.")),
        "DomU {name}: no 'DOMU-INIT: up' line from its init on its console: {console:?}"
    );
    check!(
        out,
        console.contains(&"DOMU-INIT: xenstore write ok"),
        "DomU {name}: init's xenstore write did not succeed: {console:?}"
    );
    let written: Vec<&str> = d.xenstore_written.iter().map(String::as_str).collect();
    for want in ["data/init=hello from init", "control/feature-poweroff=1"] {
        check!(
            out,
            written.contains(&want),
            "DomU {name}: xenstore lacks {want:?} (written by the guest): {written:?}"
        );
    }
    check!(
        out,
        d.xenstore_requests >= 5,
        "DomU {name}: only {} xenstore requests served",
        d.xenstore_requests
    );
    check!(
        out,
        d.errors.is_empty(),
        "DomU {name}: errors {:?}",
        d.errors
    );
    // An unmodified Linux guest is never taken for an event storm: its xenbus and netfront
    // kick for work (requests, console lines, packets, RX buffers), and only kicks that find
    // none count (`note_wakeup` in dom0/src/domu.rs).
    let storms: Vec<&String> = d
        .refusals
        .iter()
        .filter(|r| r.starts_with("evtchn:"))
        .collect();
    check!(
        out,
        storms.is_empty(),
        "DomU {name}: dom0 took it for an event storm: {storms:?}"
    );
    // The margin: its most fruitless wakeups in one period (a storm is over 50, or 20 that
    // were nearly all of dom0's passes).
    eprintln!(
        "DomU {name}: at most {} fruitless wakeups in a storm period",
        d.storm_peak_wakeups
    );
    let id = d.domid;
    check!(out, id > 0, "DomU {name}: no domain id");
    // Xen's side: it loaded the CPU record dom0 built, and the guest kernel registered its
    // event-channel upcall vector (it ran far enough to bring up Xen's PV interfaces).
    let log = serial(out);
    // 4.17 says "HVM1 restore: CPU 0", 4.20 "HVM restore d1: CPU 0".
    check!(
        out,
        log.contains(&format!("HVM{id} restore: CPU 0"))
            || log.contains(&format!("HVM restore d{id}: CPU 0")),
        "Xen's log lacks its 'restore: CPU 0' line for DomU {name} (domain {id})"
    );
    let want = format!("d{id}v0: upcall vector");
    check!(
        out,
        log.contains(&want),
        "Xen's log lacks {want:?} for DomU {name} (domain {id})"
    );
    // dom0 printed the guest's console lines with its name.
    check!(
        out,
        log.contains(&format!("[{name}] DOMU-INIT: up")),
        "dom0's console lacks the '[{name}] DOMU-INIT: up' line"
    );
    id
}

/// dom0 destroyed every DomU it built and Xen has forgotten them (no mapping kept one alive).
pub fn assert_no_domu_leaks(out: &RunOutcome) {
    let d = dom0(out);
    let leaks = d.toolstack.as_ref().map(|t| t.leaks.clone());
    check!(
        out,
        leaks.as_ref().is_some_and(Vec::is_empty),
        "toolstack leaks: {leaks:?}"
    );
    check!(
        out,
        serial(out).contains("DOM0-DOMUS: done"),
        "dom0 never finished serving its DomUs"
    );
}
