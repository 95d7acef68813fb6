//! Boot scenarios: dom0 alone under QEMU's PVH loader, dom0 under Xen 4.17 and 4.20 with 1, 2,
//! 4 and 8 vCPUs, `maxcpus=` container rewrites, faults, and bad input. Each asserts on dom0's JSON report and on Xen's own log.
//!
//! The runs take turns (one QEMU at a time); every run leaves `target/runs/<run>/` with its
//! `serial.log`, `report.json` and `qemu-cmdline.txt`.

use image::Outcome;
use image::XenVersion;
use report::{ModuleStatus, PciBarKind, XenAdd};
use tests::{
    assert_bar, assert_container_matches_xen, assert_container_rewritten, assert_device_check,
    assert_dom0_under_xen, assert_madt_matches, assert_nothing_crashed, assert_pass,
    assert_pci_matches_xen, assert_ready_phase, assert_smp, assert_timer_event,
    assert_xen_log_clean, boot, check, config, dom0, garbage_module, pci, pci_function,
};

/// (a) dom0 alone through QEMU's PVH loader: start_info v1 with a memory map, no Xen.
#[test]
fn bare_pvh_without_xen() {
    let out = boot(&config(XenVersion::None, 1, "test-bare"));
    assert_pass(&out);
    let x = &out.report.xen_log;
    check!(
        out,
        x.xen_lines == 0,
        "{} '(XEN)' lines in a run without Xen",
        x.xen_lines
    );
    check!(
        out,
        x.version.is_none() && !x.pvh_dom0_built,
        "Xen lines in a run without Xen"
    );
    let d = dom0(&out);
    check!(out, !d.under_xen, "dom0 says under_xen = {}", d.under_xen);
    let si_version = d.start_info.map(|s| s.version);
    check!(
        out,
        si_version == Some(1),
        "QEMU's PVH loader gives start_info version 1, dom0 says {si_version:?}"
    );
    check!(
        out,
        d.memmap_source == "start_info",
        "dom0's memory map came from {}, expected start_info",
        d.memmap_source
    );
    let entries = d.memory_map.len();
    check!(out, entries > 0, "dom0 reports an empty memory map");
    assert_ready_phase(&out);
    assert_madt_matches(&out, 1, false);
}

/// Without Xen the vCPU count comes from the firmware's MADT.
#[test]
fn bare_pvh_counts_cpus_from_the_madt() {
    let out = boot(&config(XenVersion::None, 2, "test-bare-smp2"));
    assert_pass(&out);
    let d = dom0(&out);
    check!(
        out,
        d.vcpus == 2,
        "dom0 reports {} vCPUs, expected 2",
        d.vcpus
    );
    assert_madt_matches(&out, 2, false);
}

fn xen_boot(xen: XenVersion, smp: u32) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let out = boot(&config(
        xen,
        smp,
        &format!("test-xen{major}.{minor}-smp{smp}"),
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_dom0_under_xen(&out, major, minor);
    assert_ready_phase(&out);
    assert_madt_matches(&out, smp, true);
    assert_timer_event(&out);
    assert_smp(&out, smp);
    assert_container_matches_xen(&out, smp);
    assert_pci_matches_xen(&out);
    // The toolstack's foundations on dom0 itself: an interdomain event channel looped back and
    // dispatched to its handler, and the grant table mapped.
    let tests = &dom0(&out).selftests;
    for want in ["interdomain event channel", "grant table"] {
        check!(
            out,
            tests
                .iter()
                .any(|t| t.starts_with(want) && t.ends_with(": ok")),
            "self-test {want:?} did not pass: {tests:?}"
        );
    }
    // The default topology's devices, with the BAR sizes QEMU gives them.
    let d = dom0(&out);
    let virtio = pci_function(&out, d, 0x1af4, 0x1041);
    assert_bar(&out, virtio, 4, PciBarKind::Mem64, 0x4000);
    let e1000e = pci_function(&out, d, 0x8086, 0x10d3);
    assert_bar(&out, e1000e, 0, PciBarKind::Mem32, 0x20000);
    let nvme = pci_function(&out, d, 0x1b36, 0x0010);
    assert_bar(&out, nvme, 0, PciBarKind::Mem64, 0x4000);
    for f in [virtio, e1000e, nvme] {
        assert_device_check(&out, f);
    }
}

/// Xen 4.17, four vCPUs: every AP up, working, with the same MTRRs.
#[test]
fn xen_4_17_smp4() {
    xen_boot(XenVersion::V4_17, 4);
}

/// Xen 4.17, eight vCPUs.
#[test]
fn xen_4_17_smp8() {
    xen_boot(XenVersion::V4_17, 8);
}

/// Xen 4.20, four vCPUs.
#[test]
fn xen_4_20_smp4() {
    xen_boot(XenVersion::V4_20, 4);
}

/// Xen 4.20, eight vCPUs.
#[test]
fn xen_4_20_smp8() {
    xen_boot(XenVersion::V4_20, 8);
}

/// (b) Xen 4.17, one vCPU.
#[test]
fn xen_4_17_smp1() {
    xen_boot(XenVersion::V4_17, 1);
}

/// (b) Xen 4.17, two vCPUs.
#[test]
fn xen_4_17_smp2() {
    xen_boot(XenVersion::V4_17, 2);
}

/// (c) Xen 4.20, one vCPU.
#[test]
fn xen_4_20_smp1() {
    xen_boot(XenVersion::V4_20, 1);
}

/// (c) Xen 4.20, two vCPUs.
#[test]
fn xen_4_20_smp2() {
    xen_boot(XenVersion::V4_20, 2);
}

/// (d) An unknown dom0 option is reported, not fatal.
#[test]
fn unknown_option_is_reported() {
    let mut cfg = config(XenVersion::V4_17, 1, "test-bogus-option");
    cfg.expect_errors = vec!["unknown option 'bogus-option'".into()];
    cfg.dom0_args = vec!["bogus-option=1".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 17);
    let d = dom0(&out);
    let wanted = "unknown option 'bogus-option'";
    let errors = &d.errors;
    check!(
        out,
        errors.iter().any(|s| s.contains(wanted)),
        "dom0's report errors {errors:?} do not mention {wanted:?}"
    );
    check!(
        out,
        out.analysis
            .dom0_lines
            .iter()
            .any(|l| l.contains(wanted) && !l.contains("DOM0-REPORT-JSON")),
        "dom0's console lines never say {wanted:?}"
    );
}

/// (d) A boot module of random bytes is reported as not recognised, and nothing crashes.
#[test]
fn garbage_module_is_not_recognised() {
    let mut cfg = config(XenVersion::V4_17, 1, "test-garbage-module");
    cfg.expect_errors = vec!["not recognised".into()];
    cfg.module = Some(garbage_module());
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 17);
    assert_nothing_crashed(&out);
    let d = dom0(&out);
    let Some(module) = d.modules.first() else {
        panic!("dom0 reports no module{}", tests::context(&out));
    };
    check!(
        out,
        module.size == 4096,
        "dom0 reports module size {}, expected 4096",
        module.size
    );
    let not_recognised = module.kind == "unknown"
        && matches!(&module.status, ModuleStatus::Rejected(why) if why.starts_with("not recognised"));
    check!(
        out,
        not_recognised,
        "dom0 does not say the module was not recognised: modules[0] = {module:?}"
    );
}

/// A CPU exception in dom0 under Xen is reported (vector, error code, RIP, CR2, registers) and
/// ends the run with the crash code, never as a triple fault: Xen's log must not show one.
#[test]
fn page_fault_under_xen_is_reported() {
    let mut cfg = config(XenVersion::V4_17, 1, "test-fault-pf");
    cfg.dom0_args = vec!["fault-test=page-fault".into()];
    let out = boot(&cfg);
    check!(
        out,
        out.report.qemu_exit_code == Some(37) && out.report.outcome == Outcome::Crashed,
        "expected the crash exit (37), got {:?} / {}",
        out.report.qemu_exit_code,
        out.report.outcome.as_str()
    );
    for needle in [
        "FATAL CPU exception #PF page fault (vector 14)",
        "CR2=0x0000000100001234",
        "non-present page on read access to 0x100001234",
        "DOM0-RESULT: failed: CPU exception",
    ] {
        check!(
            out,
            out.serial.contains(needle),
            "the console lacks {needle:?}"
        );
    }
    check!(
        out,
        out.serial.contains("RIP=0x") && out.serial.contains("R15="),
        "the exception report lacks the registers"
    );
    check!(
        out,
        !out.serial.contains("Triple fault"),
        "Xen saw a triple fault: dom0's exception handling failed"
    );
    assert_xen_log_clean(&out, 4, 17);
}

/// A stack overflow in dom0 lands on the boot stack's unmapped guard page: a reported double
/// fault (its handler runs on its own IST stack) that ends the run with the crash code; never
/// the page tables below the stack overwritten, never a triple fault.
#[test]
fn stack_overflow_under_xen_is_a_reported_double_fault() {
    let mut cfg = config(XenVersion::V4_20, 1, "test-fault-stack");
    cfg.dom0_args = vec!["fault-test=stack-overflow".into()];
    let out = boot(&cfg);
    check!(
        out,
        out.report.qemu_exit_code == Some(37) && out.report.outcome == Outcome::Crashed,
        "expected the crash exit (37), got {:?} / {}",
        out.report.qemu_exit_code,
        out.report.outcome.as_str()
    );
    for needle in [
        "boot stack: 256 KiB, guard page at 0x",
        "fault-test: writing below the boot stack's bottom",
        "#DF",
        "DOM0-RESULT: failed: CPU exception",
    ] {
        check!(
            out,
            out.serial.contains(needle),
            "the console lacks {needle:?}"
        );
    }
    check!(
        out,
        !out.serial.contains("Triple fault"),
        "Xen saw a triple fault: the guard page did not turn the overflow into a #DF"
    );
    assert_xen_log_clean(&out, 4, 20);
}

/// The same without Xen: #UD on QEMU's own PVH loader.
#[test]
fn invalid_opcode_without_xen_is_reported() {
    let mut cfg = config(XenVersion::None, 1, "test-fault-ud");
    cfg.dom0_args = vec!["fault-test=invalid-opcode".into()];
    let out = boot(&cfg);
    check!(
        out,
        out.report.qemu_exit_code == Some(37),
        "expected the crash exit (37), got {:?}",
        out.report.qemu_exit_code
    );
    check!(
        out,
        out.serial
            .contains("FATAL CPU exception #UD invalid opcode (vector 6)"),
        "the console lacks the #UD report"
    );
}

/// `on-ready=idle`: dom0 stays up in its `SCHEDOP_block` loop without crashing: the run only
/// ends when the bench's timeout kills QEMU, after Xen's state dump shows vCPU 0 asleep.
#[test]
fn idle_dom0_stays_up_in_schedop_block() {
    let mut cfg = config(XenVersion::V4_17, 1, "test-idle");
    cfg.dom0_args = vec!["on-ready=idle".into()];
    cfg.timeout = std::time::Duration::from_secs(8);
    // Idle means silent: after 2 s without a console byte the harness asks Xen for its state.
    cfg.silence = Some(std::time::Duration::from_secs(2));
    let out = boot(&cfg);
    check!(
        out,
        out.report.outcome == Outcome::Timeout,
        "an idle dom0 should still be running at the timeout, got {} ({})",
        out.report.outcome.as_str(),
        out.report.reason
    );
    check!(
        out,
        out.analysis
            .dom0_lines
            .iter()
            .any(|l| l.contains("idle: serving events in SCHEDOP_block")),
        "dom0 never said it went idle"
    );
    check!(
        out,
        out.serial.contains("DOM0-RESULT: ready"),
        "dom0 never became ready"
    );
    assert_xen_log_clean(&out, 4, 17);
    // At the timeout the harness asked Xen for its state (`qemu::XEN_DUMP_KEYS`): Xen's own
    // 'q' dump shows dom0's vCPU 0 blocked (`_VPF_blocked`, bit 0 of pause_flags), i.e. really
    // asleep in SCHEDOP_block rather than spinning.
    let dump = out
        .serial
        .split_once(image::qemu::XEN_DUMP_MARK)
        .map(|(_, d)| d)
        .unwrap_or_default();
    // 'q' and 'e' say which key they answer; 'r' (run queues) starts with the scheduler.
    for (key, says) in [
        ('q', "'q' pressed -> dumping domain info"),
        ('r', "CPUs info:"),
        ('e', "'e' pressed -> dumping event-channel info"),
    ] {
        check!(
            out,
            dump.contains(says),
            "Xen did not answer debug key {key:?} after the timeout ({says:?})"
        );
    }
    check!(
        out,
        out.report.reason.contains("Xen's state (debug keys q r e)"),
        "the timeout's reason does not point at Xen's dump: {}",
        out.report.reason
    );
    let d0 = dump
        .split("General information for domain 0:")
        .nth(1)
        .unwrap_or_default();
    let flags = d0
        .lines()
        .find_map(|l| l.split("pause_flags=").nth(1))
        .and_then(|f| u64::from_str_radix(f.trim(), 16).ok());
    check!(
        out,
        flags.is_some_and(|f| f & 1 == 1),
        "Xen's 'q' dump does not show dom0's vCPU 0 blocked: pause_flags {flags:?}"
    );
    // The silences before the timeout: Xen answered each, and a blocked dom0 with an empty run
    // queue is no scheduler stall.
    let silences = &out.report.silences;
    check!(
        out,
        !silences.is_empty() && silences.iter().all(|s| !s.scheduler_stall),
        "silences: {silences:?}"
    );
    let after_silence = out
        .serial
        .split_once(image::qemu::XEN_SILENCE_MARK)
        .map(|(_, d)| d)
        .unwrap_or_default();
    check!(
        out,
        after_silence.contains("'q' pressed -> dumping domain info"),
        "Xen did not answer the dump keys typed after a silence"
    );
    // QEMU's own view came with each (QMP): CPU 0 halted in Xen's idle loop, and nothing the
    // lost-wakeup reader would take for a frozen emulator (an idle machine has no interrupt
    // pending while it halts).
    check!(
        out,
        after_silence.contains("image: qemu: (info lapic)")
            && after_silence.contains("image: qemu: RIP=ffff82d0")
            && after_silence.contains("HLT=1"),
        "no QEMU view (registers, local APIC) after a silence"
    );
    check!(
        out,
        silences.iter().all(|s| s.qemu_lost_wakeup.is_none()),
        "an idle machine read as QEMU's lost wakeup: {silences:?}"
    );
}

/// Without Xen, `maxcpus=2` on a 4-CPU machine: dom0 rewrites MADT, XSDT and RSDP for a
/// 2-CPU container and uses them; the rewritten tables validate like the firmware's.
#[test]
fn bare_maxcpus_rewrites_the_madt() {
    let mut cfg = config(XenVersion::None, 4, "test-bare-maxcpus");
    cfg.dom0_args = vec!["maxcpus=2".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_container_rewritten(&out, 2, &[0, 1]);
}

/// Under Xen with 4 vCPUs and `maxcpus=2`: dom0 runs 2, and its container MADT (2 vCPUs)
/// replaces the 4-vCPU one Xen crafted.
#[test]
fn xen_maxcpus_runs_fewer_vcpus_and_rewrites_the_madt() {
    let mut cfg = config(XenVersion::V4_20, 4, "test-xen-maxcpus");
    cfg.dom0_args = vec!["maxcpus=2".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 20);
    let d = dom0(&out);
    let started = d.smp.as_ref().map(|s| s.started);
    check!(
        out,
        started == Some(1),
        "expected 1 AP started: {:?}",
        d.smp
    );
    assert_container_rewritten(&out, 2, &[0, 2]);
}

/// A vCPU whose MTRRs disagree with vCPU 0's is found (`fault-test=mtrr-skew` changes vCPU 1's
/// default type), and `mtrr=fix` rewrites them to match, as Linux does on AP bring-up.
#[test]
fn mtrr_disagreement_is_found_and_fixed() {
    let mut cfg = config(XenVersion::V4_17, 2, "test-mtrr-skew");
    cfg.dom0_args = vec!["fault-test=mtrr-skew".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    let m = dom0(&out).mtrr.clone().unwrap_or_default();
    check!(out, !m.consistent && !m.corrected, "skew not found: {m:?}");
    check!(
        out,
        m.problems
            .iter()
            .any(|s| s.contains("disagree") && s.contains("0x2ff") || s.contains("MTRRdefType")),
        "no problem names vCPU 1's MTRRdefType: {m:?}"
    );

    let mut cfg = config(XenVersion::V4_17, 2, "test-mtrr-fix");
    cfg.dom0_args = vec!["fault-test=mtrr-skew".into(), "mtrr=fix".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 17);
    let m = dom0(&out).mtrr.clone().unwrap_or_default();
    check!(
        out,
        m.corrected,
        "mtrr=fix did not make the vCPUs agree: {m:?}"
    );
}

/// The `bridges` topology: a PCIe switch three levels deep, a PCIe-to-PCI bridge with a
/// conventional bridge behind it, a multi-function device. Every function is found, reported
/// to Xen after its bridge, and Xen agrees.
fn pci_bridges(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let mut cfg = config(xen, 1, &format!("test-pci-bridges-{major}.{minor}"));
    cfg.topology = image::Topology::Bridges;
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_pci_matches_xen(&out);
    let d = dom0(&out);
    // NVMe behind root port -> switch upstream port -> downstream port.
    let nvme = pci_function(&out, d, 0x1b36, 0x0010);
    let mut depth = 0;
    let funcs = &pci(&out).functions;
    let mut at = nvme.parent.clone();
    while let Some(p) = at {
        depth += 1;
        at = funcs
            .iter()
            .find(|f| f.sbdf == p)
            .and_then(|f| f.parent.clone());
    }
    check!(
        out,
        depth == 3,
        "the NVMe controller sits {depth} bridges deep, expected 3"
    );
    // The conventional e1000 behind the PCIe-to-PCI bridge and the PCI bridge.
    let e1000 = pci_function(&out, d, 0x8086, 0x100e);
    assert_bar(&out, e1000, 0, PciBarKind::Mem32, 0x20000);
    for f in [nvme, e1000, pci_function(&out, d, 0x1af4, 0x1041)] {
        assert_device_check(&out, f);
    }
    // Both functions of the multi-function device on the root bus.
    for sbdf in ["0000:00:06.0", "0000:00:06.1"] {
        check!(
            out,
            funcs.iter().any(|f| f.sbdf == sbdf),
            "{sbdf} (multi-function) missing"
        );
    }
    check!(
        out,
        pci(&out).tree.contains("-[0000:00]-"),
        "no lspci-style tree in the report"
    );
}

#[test]
fn pci_bridges_under_xen_4_17() {
    pci_bridges(XenVersion::V4_17);
}

#[test]
fn pci_bridges_under_xen_4_20() {
    pci_bridges(XenVersion::V4_20);
}

/// Without Xen, dom0 enumerates through ECAM from the roots the ACPI namespace names (one host
/// bridge, `\_SB_.PCI0`) and reports nothing to Xen.
#[test]
fn pci_without_xen() {
    let out = boot(&config(XenVersion::None, 1, "test-pci-bare"));
    assert_pass(&out);
    let d = dom0(&out);
    let source = &pci(&out).source;
    check!(
        out,
        source == "ECAM (MCFG), roots from ACPI",
        "source {source}"
    );
    let virtio = pci_function(&out, d, 0x1af4, 0x1041);
    assert_bar(&out, virtio, 4, PciBarKind::Mem64, 0x4000);
    check!(
        out,
        virtio.xen_add == XenAdd::NotReported,
        "xen_add {}",
        virtio.xen_add
    );
}

/// `pci-bars=all` (the bring-up exercise): every memory BAR moves (decoding off, written, read
/// back, decoding restored), every device still answers at its new address (a known register
/// read through the moved BAR), and Xen's log shows no BAR write while mapped and no refusal
/// to map (vPCI followed every move).
fn pci_move_all_bars(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let mut cfg = config(xen, 1, &format!("test-pci-bars-all-{major}.{minor}"));
    cfg.dom0_args = vec!["pci-bars=all".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_pci_matches_xen(&out);
    let d = dom0(&out);
    let moves: Vec<String> = pci(&out).bar_moves.clone();
    check!(
        out,
        !moves.iter().any(|m| m.contains("FAILED")),
        "a BAR move failed: {moves:?}"
    );
    let bar_moves: Vec<&String> = moves.iter().filter(|m| m.contains(" -> ")).collect();
    check!(
        out,
        bar_moves.len() >= 10,
        "only {} BARs moved: {moves:?}",
        bar_moves.len()
    );
    for (v, dv) in [(0x1af4, 0x1041), (0x8086, 0x10d3), (0x1b36, 0x0010)] {
        let f = pci_function(&out, d, v, dv);
        assert_device_check(&out, f);
        // The BAR the check read is at the address the move put it at.
        let sbdf = f.sbdf.as_str();
        let moved: Vec<&&String> = bar_moves.iter().filter(|m| m.starts_with(sbdf)).collect();
        check!(out, !moved.is_empty(), "no BAR of {sbdf} moved: {moves:?}");
        for m in moved {
            // "ssss:bb:dd.f BARn 0xold -> 0xnew: ok (ok)"
            let mut w = m.split_whitespace();
            let (_, bar, _, _, new) = (w.next(), w.next(), w.next(), w.next(), w.next());
            let idx: u8 = bar
                .and_then(|b| b.strip_prefix("BAR"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(99);
            let new = new
                .map(|n| n.trim_end_matches(':'))
                .and_then(|n| u64::from_str_radix(n.trim_start_matches("0x"), 16).ok());
            let now = f.bars.iter().find(|b| b.index == idx).map(|b| b.address);
            check!(
                out,
                now.is_some() && now == new,
                "{sbdf} BAR{idx} is at {now:?}, moved to {new:?}"
            );
        }
    }
}

#[test]
fn pci_move_all_bars_under_xen_4_17() {
    pci_move_all_bars(XenVersion::V4_17);
}

#[test]
fn pci_move_all_bars_under_xen_4_20() {
    pci_move_all_bars(XenVersion::V4_20);
}

/// `pci-renumber=2` on the bridges topology: the functions whose bus changes are removed from
/// Xen first (Xen logs `PCI remove device` for each), the new numbers are programmed, every
/// function answers at its new SBDF, and each is re-added. Xen's IOMMU code knows only the bus
/// numbers the firmware used at Xen boot (AMD IVRS ranges): re-adds on new buses are refused
/// with -ENODEV, which dom0 must say and explain; re-adds on known buses succeed, and Xen logs
/// them.
#[test]
fn pci_renumber_follows_xens_protocol() {
    let mut cfg = config(XenVersion::V4_20, 1, "test-pci-renumber");
    // Re-adds on buses Xen's IOMMU code never saw are refused (explained below).
    cfg.expect_errors = vec!["PHYSDEVOP_pci_device_add".into()];
    cfg.topology = image::Topology::Bridges;
    cfg.dom0_args = vec!["pci-renumber=2".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 20);
    let d = dom0(&out);
    let log: Vec<String> = pci(&out).renumber.clone();
    let removes: Vec<&str> = log
        .iter()
        .filter_map(|l| l.strip_prefix("Xen remove "))
        .filter_map(|l| l.strip_suffix(": ok"))
        .collect();
    check!(
        out,
        !removes.is_empty(),
        "nothing was removed from Xen: {log:?}"
    );
    for r in &removes {
        let line = format!("PCI remove device {r}");
        check!(out, out.serial.contains(&line), "Xen's log lacks {line:?}");
    }
    let answers: Vec<&String> = log.iter().filter(|l| l.contains(" answers at ")).collect();
    check!(
        out,
        answers.len() == removes.len(),
        "not every moved function was found again: {log:?}"
    );
    check!(
        out,
        answers.iter().all(|l| l.ends_with(": ok")),
        "a function is not at its new SBDF: {log:?}"
    );
    let adds: Vec<&String> = log.iter().filter(|l| l.starts_with("Xen add ")).collect();
    check!(
        out,
        adds.len() == removes.len(),
        "re-adds {adds:?} do not match removes {removes:?}"
    );
    let mut accepted = 0;
    for a in &adds {
        let sbdf = a
            .trim_start_matches("Xen add ")
            .split(':')
            .take(3)
            .collect::<Vec<_>>()
            .join(":");
        if a.ends_with(": ok") {
            accepted += 1;
            let line = format!("PCI add device {sbdf}");
            check!(
                out,
                out.serial.matches(&line).count() >= 1,
                "Xen's log lacks {line:?}"
            );
        } else {
            check!(
                out,
                a.contains("-ENODEV") && a.contains("did not exist when Xen booted"),
                "an unexplained refusal: {a}"
            );
        }
    }
    check!(out, accepted >= 1, "Xen accepted no re-add: {adds:?}");
    // Every function dom0 now reports answers at its new place.
    let moved_new: Vec<String> = answers
        .iter()
        .filter_map(|l| l.split(" answers at ").nth(1))
        .map(|s| s.trim_end_matches(": ok").to_string())
        .collect();
    for n in &moved_new {
        check!(
            out,
            d.pci
                .as_ref()
                .is_some_and(|p| p.functions.iter().any(|f| f.sbdf == *n)),
            "{n} missing from dom0's final enumeration"
        );
    }
}

/// `pci-vfs=2` on an SR-IOV NVMe controller (QEMU 7.2 has no igb): dom0 places the VF BARs the
/// firmware left unassigned, enables 2 VFs after reporting the PF, finds them, and reports them
/// to Xen as virtual functions of their PF. Xen 4.17 adds them (`PCI add virtual function`);
/// 4.20's vPCI refuses them (-ENODEV, "MSI-X vector table at invalid BAR0": SR-IOV is
/// unsupported for a PVH dom0), which dom0 must report and explain.
fn pci_sriov(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let mut cfg = config(xen, 1, &format!("test-pci-sriov-{major}.{minor}"));
    if minor >= 20 {
        // 4.20's vPCI refuses a PVH dom0's VFs (explained below).
        cfg.expect_errors = vec!["PHYSDEVOP_pci_device_add".into()];
    }
    cfg.topology = image::Topology::Sriov;
    cfg.dom0_args = vec!["pci-vfs=2".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    let p = pci(&out);
    let vfs: Vec<&report::PciFunction> = p
        .functions
        .iter()
        .filter(|f| f.kind.starts_with("VF of "))
        .collect();
    check!(
        out,
        vfs.len() == 2,
        "expected 2 VFs, dom0 reports {}",
        vfs.len()
    );
    check!(
        out,
        p.problems.iter().any(|s| s.contains("VF BAR0 assigned")),
        "the unassigned VF BAR was not placed: {:?}",
        p.problems
    );
    let order = &out.report.xen_log.pci_devices_added;
    for vf in vfs {
        let sbdf = vf.sbdf.as_str();
        let pf = vf.kind.trim_start_matches("VF of ").to_string();
        if minor == 17 {
            check!(
                out,
                vf.xen_add.is_ok(),
                "Xen 4.17 refused VF {sbdf}: {}",
                vf.xen_add
            );
            let line = format!("PCI add virtual function {sbdf}");
            check!(out, out.serial.contains(&line), "Xen's log lacks {line:?}");
            let pos = |s: &str| order.iter().position(|x| x == s);
            check!(
                out,
                pos(&pf) < pos(sbdf),
                "Xen added VF {sbdf} before its PF {pf}"
            );
        } else {
            let refused = matches!(&vf.xen_add, XenAdd::Refused(r)
                if r.contains("-ENODEV") && r.contains("SR-IOV is unsupported"));
            check!(out, refused, "{sbdf}: {}", vf.xen_add);
            let line = format!("DEVICE BUG: {sbdf}: MSI-X vector table at invalid BAR0");
            check!(out, out.serial.contains(&line), "Xen's log lacks {line:?}");
        }
    }
}

#[test]
fn pci_sriov_vfs_under_xen_4_17() {
    pci_sriov(XenVersion::V4_17);
}

#[test]
fn pci_sriov_vfs_refused_by_xen_4_20() {
    pci_sriov(XenVersion::V4_20);
}

/// A boot bundle (the one module Xen gives dom0) is read in place: its DomUs are listed with
/// their kernels' formats; a corrupted one is rejected with the reason, and dom0 boots on.
#[test]
fn boot_bundle_is_read_and_a_corrupt_one_rejected() {
    use toolstack::bundle::FileKind;
    // A tiny ELF64 x86-64 header as the "kernel" (e_machine 62 at offset 18).
    let mut kernel = vec![0u8; 4096];
    kernel[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    kernel[18] = 62;
    let demo: image::bundle::DomainSpecInput =
        "name=demo,memory=64,vcpus=2,kernel=k1,device=console,cmdline=console=hvc0"
            .parse()
            .expect("spec");
    let bytes =
        image::bundle::pack(&[demo], &[(FileKind::Kernel, "k1".into(), kernel)]).expect("pack");
    let dir = image::target_dir().join("test-data");
    std::fs::create_dir_all(&dir).expect("test-data dir");
    let good = dir.join("bundle.bin");
    std::fs::write(&good, &bytes).expect("write bundle");
    let mut cfg = config(XenVersion::V4_17, 1, "test-bundle");
    // The "kernel" is only an ELF header: dom0 reads the bundle, then cannot build the DomU.
    cfg.expect_errors = vec!["domu demo: build failed".into()];
    cfg.module = Some(good);
    let out = boot(&cfg);
    assert_pass(&out);
    let m = dom0(&out).modules.first().cloned().unwrap_or_default();
    check!(out, m.kind == "boot bundle", "module kind {}", m.kind);
    let used = matches!(&m.status, ModuleStatus::Used(what)
        if what.contains("demo (64 MiB, 2 vCPUs, kernel k1: ELF64 x86-64"));
    check!(out, used, "status {:?}", m.status);

    let mut bad = bytes.clone();
    let last = bad.len() - 9;
    bad[last] ^= 0x40;
    let badp = dir.join("bundle-corrupt.bin");
    std::fs::write(&badp, &bad).expect("write corrupt bundle");
    let mut cfg = config(XenVersion::V4_17, 1, "test-bundle-corrupt");
    cfg.expect_errors = vec!["boot bundle rejected".into()];
    cfg.module = Some(badp);
    let out = boot(&cfg);
    assert_pass(&out);
    assert_nothing_crashed(&out);
    let d = dom0(&out);
    let status = d
        .modules
        .first()
        .map(|m| m.status.clone())
        .unwrap_or_default();
    let rejected = matches!(&status, ModuleStatus::Rejected(why)
        if why.to_ascii_lowercase().contains("crc"));
    check!(out, rejected, "status {status:?}");
    check!(
        out,
        d.errors.iter().any(|s| s.contains("boot bundle rejected")),
        "no error reported for the corrupt bundle"
    );
}
