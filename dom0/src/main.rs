//! dom0: a PVH hardware domain for Xen.
//!
//! Boot flow (`docs/ARCHITECTURE.md` has the whole map): PVH entry stub → traps → Xen detection
//! and hypercall page → console → start_info header → memory map (start_info v1, or
//! `XENMEM_memory_map`: Xen gives a PVH dom0 start_info version 0 with no map) → start_info
//! validated → options → cache attributes → heap → events and timer → vCPUs → (watched from here
//! by `watchdog`) CPU report → ACPI → PCI → modules → report → ready → the bundle's DomUs
//! (`domu::run`, until they all stop) → idle or exit.
#![no_std]
#![no_main]

extern crate alloc;

mod acpi;
mod arch;
mod boot;
mod console;
mod domu;
mod events;
mod exit;
mod heap;
mod hypercall;
mod mem;
mod pcicfg;
mod smp;
mod time;
mod trap;
mod watchdog;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write as _;

use log::{error, info, warn};
use report::{BootReport, HeapStats, ModuleSummary, Phase, StartInfoSummary, TimerCheck, XenInfo};
use xen::cmdline::{
    ConsoleChoice, Dom0Options, FaultTest, LogLevel, MtrrMode, OnReady, PciBars, ReportFormat,
};
use xen::memmap::MemoryMap;
use xen::start_info::{PhysRead, StartInfo, StartInfoHeader};

use crate::mem::IdentityMem;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Room for `XENMEM_memory_map` (Xen's E820MAX is 1024 entries on x86).
const E820_BUF_ENTRIES: usize = 256;

/// The first Rust code, on the boot stack, interrupts off, identity map of the low 4 GiB.
#[unsafe(no_mangle)]
extern "C" fn rust_start(start_info_paddr: u32) -> ! {
    time::phase("long mode");
    trap::init();
    let mut rep = BootReport {
        dom0_version: VERSION.to_string(),
        ..Default::default()
    };

    // --- Xen? -------------------------------------------------------------------------------
    let leaves = xen::cpuid::find_xen(&arch::cpuid);
    let x = leaves.as_ref().map(hypercall::init);
    if x.is_some() {
        smp::init_bsp(events::shared_info_addr());
    } else {
        smp::init_bsp_bare();
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
    info!("dom0 {VERSION}: PVH entry, start_info at {start_info_paddr:#x}");
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
            warn!("not running under Xen ({what}): Xen services are unavailable, diagnostics only");
            rep.warnings.push(format!("not running under Xen ({what})"));
        }
    }
    rep.tsc_khz = time::khz();
    info!("TSC {} kHz (from {})", time::khz(), time::khz_source());
    if time::tsc_traps() {
        let w = "Xen emulates the TSC for dom0 (no invariant TSC): every TSC read traps, so log \
                 lines are not timestamped; see the phase timeline"
            .to_string();
        warn!("{w}");
        rep.warnings.push(w);
    }

    // --- start_info and the memory map --------------------------------------------------------
    let phys = IdentityMem;
    let si_paddr = u64::from(start_info_paddr);
    let hdr = match StartInfoHeader::read(si_paddr, &phys) {
        Ok(h) => h,
        Err(e) => stop(&format!("start_info at {si_paddr:#x} is unusable: {e}")),
    };
    rep.start_info = Some(StartInfoSummary {
        paddr: si_paddr,
        version: hdr.version,
        flags: hdr.flags,
        nr_modules: hdr.nr_modules,
        rsdp: hdr.rsdp_paddr,
    });
    let map = match xen::start_info::read_memmap(&hdr, &phys) {
        Ok(Some(m)) => {
            rep.memmap_source = "start_info".to_string();
            m
        }
        Ok(None) => match x {
            Some(x) => {
                rep.memmap_source = "XENMEM_memory_map".to_string();
                match xenmem_memory_map(&x) {
                    Ok(m) => m,
                    Err(e) => stop(&e),
                }
            }
            None => stop("start_info has no memory map and there is no Xen to ask for one"),
        },
        Err(e) => stop(&format!("start_info memory map: {e}")),
    };
    time::phase("memory map");
    let si = match StartInfo::load(si_paddr, hdr, &map, boot::image_range(), &phys) {
        Ok(s) => s,
        Err(e) => stop(&format!("start_info: {e}")),
    };
    for w in map.warnings().iter().chain(si.warnings.iter()) {
        warn!("{w}");
        rep.warnings.push(w.clone());
    }
    time::phase("start_info");

    // --- options ------------------------------------------------------------------------------
    let (opts, opt_errors) = Dom0Options::parse(&si.cmdline);
    if opts.on_ready == OnReady::QemuExit {
        exit::enable_qemu_exit();
    }
    log::set_max_level(match opts.loglevel {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    });
    // The boot log is written out at ready (each byte costs Xen's UART a few microseconds of
    // emulated I/O on the test bench), or when its buffer fills, or on a fault. At
    // loglevel=debug and finer it goes out line by line, so a hang shows where it is.
    if log::max_level() >= log::LevelFilter::Debug {
        console::set_buffering(false);
    }
    match opts.console {
        ConsoleChoice::Auto => {}
        ConsoleChoice::Xen if x.is_some() => console::enable(console::XEN),
        ConsoleChoice::Serial if x.is_none() => console::enable(console::SERIAL),
        ConsoleChoice::E9 => console::enable(console::enabled() | console::E9),
        other => {
            let m = format!("console={other:?} is not available here; keeping the default");
            warn!("{m}");
            rep.warnings.push(m);
        }
    }
    info!("command line: {:?}", si.cmdline);
    for e in &opt_errors {
        if e.is_note() {
            warn!("command line: {e}");
            rep.warnings.push(format!("command line: {e}"));
        } else {
            error!("command line: {e}; ignored");
            rep.errors.push(format!("command line: {e}"));
        }
    }
    rep.cmdline = si.cmdline.clone();
    rep.options = opts.given.clone();
    fault_test(opts.fault_test);

    // --- memory -------------------------------------------------------------------------------
    let (wb, uc) = mem::refine_cacheability(&map);
    info!("identity map: 4 GiB in 2 MiB pages, {wb} write-back, {uc} uncached");
    let image = boot::image_range();
    if !map.is_ram(image.start, image.end - image.start) {
        let m = format!(
            "dom0 image [{:#x}, {:#x}) is not wholly in RAM",
            image.start, image.end
        );
        warn!("{m}");
        rep.warnings.push(m);
    }
    let mut taken = si.taken_ranges();
    taken.push(image.clone());
    taken.push(0..0x10_0000); // keep the first MiB for firmware data and AP trampolines
    let free = map.free_ram(&taken, 4096);
    let best = free
        .iter()
        .map(|r| r.start..r.end.min(mem::MAPPED_LIMIT))
        .filter(|r| r.end > r.start)
        .max_by_key(|r| r.end - r.start);
    match best {
        Some(r) => {
            // `free_ram` excluded the image, start_info, its strings and modules, and the
            // first MiB; nothing else in dom0 allocates from RAM.
            // SAFETY: so the range is identity-mapped RAM (below the mapped limit) nobody uses.
            unsafe { heap::add_main(r.start, r.end) };
            info!(
                "heap: [{:#x}, {:#x}) = {} KiB",
                r.start,
                r.end,
                (r.end - r.start) / 1024
            );
        }
        None => {
            let m = "no free RAM for the heap beyond the built-in 128 KiB".to_string();
            warn!("{m}");
            rep.warnings.push(m);
        }
    }
    // RAM above 4 GiB (Xen gives dom0 most of a big machine unless dom0_mem= says otherwise).
    let mut high = 0u64;
    for r in map
        .regions()
        .iter()
        .filter(|r| r.kind == xen::memmap::MemType::Ram)
    {
        if r.end() > mem::MAPPED_LIMIT {
            match mem::map_identity(r.addr, r.end(), mem::Cache::WriteBack) {
                Ok(()) => high += r.end() - r.addr.max(mem::MAPPED_LIMIT),
                Err(e) => {
                    let m = format!("RAM [{:#x}, {:#x}) not mapped: {e:?}", r.addr, r.end());
                    warn!("{m}");
                    rep.warnings.push(m);
                }
            }
        }
    }
    if high > 0 {
        info!("identity map: {} MiB of RAM above 4 GiB mapped", high >> 20);
    }
    rep.memory_map = map.regions().to_vec();
    rep.ram_bytes = map.total(xen::memmap::MemType::Ram);
    time::phase("heap");

    // --- events, timer, vCPUs -------------------------------------------------------------------
    if let Some(x) = x {
        match events::init(&x) {
            Ok(port) => {
                info!(
                    "events: shared_info mapped, upcall vector {:#x}, VIRQ_TIMER on port {}",
                    trap::UPCALL_VECTOR,
                    port.0
                );
                match events::timer_check(&x, 1_000_000) {
                    Ok(t) => {
                        info!(
                            "timer: 1 ms one-shot delivered as VIRQ_TIMER after {} us ({} SCHEDOP_poll)",
                            t.delivered_ns / 1000,
                            t.polls
                        );
                        rep.timer = Some(TimerCheck {
                            requested_ns: t.requested_ns,
                            delivered_ns: t.delivered_ns,
                            via: "VIRQ_TIMER".to_string(),
                        });
                    }
                    Err((what, e)) => {
                        error!("timer: {what}: {e}");
                        rep.errors.push(format!("timer: {what}: {e}"));
                    }
                }
            }
            Err((what, e)) => {
                error!("events: {what} failed: {e}");
                rep.errors.push(format!("events: {what} failed: {e}"));
            }
        }
        if time::khz_source() == "none" {
            time::set_khz(events::time_info().tsc_khz(), "Xen pvclock");
            rep.tsc_khz = time::khz();
        }
        match xen::ops::count_vcpus(&x, boot::MAX_CPUS as u32) {
            Ok(n) => rep.vcpus = n,
            Err(e) => rep.errors.push(format!("VCPUOP_is_up: {e}")),
        }
        info!("vCPUs: {} (VCPUOP_is_up), vCPU 0 running", rep.vcpus);
    }
    if let Some(x) = x {
        match events::interdomain_loopback(&x) {
            Ok((a, b)) => rep.selftests.push(format!(
                "interdomain event channel: port {} (EVTCHNOP_alloc_unbound) bound as port {} \
                 (EVTCHNOP_bind_interdomain), sent on {}, dispatched to {}'s handler: ok",
                a.0, b.0, b.0, a.0
            )),
            Err((what, e)) => {
                let m = format!("interdomain event channel: {what}: {e}");
                error!("{m}");
                rep.errors.push(m.clone());
                rep.selftests.push(format!("{m}: FAILED"));
            }
        }
        match events::map_grant_table(&x) {
            Ok((n, max, addr)) => rep.selftests.push(format!(
                "grant table: {n} of at most {max} frames, frame 0 mapped at {addr:#x}: ok"
            )),
            Err((what, e)) => {
                let m = format!("grant table: {what}: {e}");
                error!("{m}");
                rep.errors.push(m.clone());
                rep.selftests.push(format!("{m}: FAILED"));
            }
        }
        for t in &rep.selftests {
            info!("self-test: {t}");
        }
    }
    time::phase("events");

    // --- the other vCPUs --------------------------------------------------------------------------
    smp::read_bsp_details();
    let mut smp_summary: Option<report::SmpSummary> = None;
    // `maxcpus=`: run on at most that many vCPUs (the rest stay down, and the container MADT
    // lists only the ones dom0 runs).
    let run_vcpus = match opts.maxcpus {
        Some(m) if m < rep.vcpus => {
            info!(
                "SMP: maxcpus={m}: running {m} of the {} vCPUs Xen gave dom0",
                rep.vcpus
            );
            m
        }
        _ => rep.vcpus,
    };
    if let Some(x) = x {
        if let Err(e) = smp::bind_bsp_ipi(&x) {
            error!("SMP: EVTCHNOP_bind_ipi for vCPU 0: {e}");
            rep.errors
                .push(format!("SMP: EVTCHNOP_bind_ipi for vCPU 0: {e}"));
        } else if run_vcpus > 1 {
            let r = smp::start_aps(&x, run_vcpus, events::shared_info_addr());
            let span = time::ticks_to_ns(r.last_online_tsc.saturating_sub(r.first_up_tsc));
            let mut summary = report::SmpSummary {
                started: r.started,
                failed: r.failed.clone(),
                first_up_to_last_online_ns: span,
                ipi_round_trip_ns: 0,
            };
            info!(
                "SMP: {} of {} APs online, {} us from the first VCPUOP_up to the last report",
                r.started,
                run_vcpus - 1,
                span / 1000
            );
            for f in &r.failed {
                error!("SMP: {f}");
                rep.errors.push(format!("SMP: {f}"));
            }
            // Send each AP a piece of work and check its answer.
            for id in 1..run_vcpus as usize {
                match smp::run_on(&x, id, work_probe, id as u64) {
                    Ok((v, ticks)) if v == probe_answer(id as u64, id as u64) => {
                        let ns = time::ticks_to_ns(ticks);
                        info!("SMP: vCPU {id} ran its work, round trip {} us", ns / 1000);
                        if summary.ipi_round_trip_ns == 0 || ns < summary.ipi_round_trip_ns {
                            summary.ipi_round_trip_ns = ns;
                        }
                    }
                    Ok((v, _)) => {
                        let m = format!(
                            "SMP: vCPU {id} answered {v:#x}, expected {:#x}",
                            probe_answer(id as u64, id as u64)
                        );
                        error!("{m}");
                        rep.errors.push(m);
                    }
                    Err(e) => {
                        let m = format!("SMP: vCPU {id}: work not done: {e}");
                        error!("{m}");
                        rep.errors.push(m);
                    }
                }
            }
            // Every AP's own timer: arm a one-shot there and wait for its VIRQ_TIMER.
            for id in 1..run_vcpus as usize {
                match smp::run_on(&x, id, timer_probe, 1_000_000) {
                    Ok((ns, _)) if ns != u64::MAX => {
                        log::debug!(
                            "SMP: vCPU {id}: 1 ms timer delivered after {} us",
                            ns / 1000
                        )
                    }
                    Ok(_) => {
                        let m = format!("SMP: vCPU {id}: its VIRQ_TIMER did not arrive");
                        error!("{m}");
                        rep.errors.push(m);
                    }
                    Err(e) => {
                        let m = format!("SMP: vCPU {id}: timer probe not run: {e}");
                        error!("{m}");
                        rep.errors.push(m);
                    }
                }
            }
            if opts.fault_test == FaultTest::MtrrSkew && run_vcpus > 1 {
                match smp::run_on(&x, 1, smp::skew_mtrr, 0) {
                    Ok((v, _)) => warn!("fault-test: vCPU 1's MTRRdefType is now {v:#x}"),
                    Err(e) => error!("fault-test: could not skew vCPU 1's MTRRs: {e}"),
                }
            }
            smp_summary = Some(summary);
        }
    } else if rep.vcpus > 1 {
        info!("SMP: without Xen dom0 stays on the boot CPU (no INIT-SIPI start yet)");
    }
    time::phase("smp");
    // From here to ready the boot is watched: vCPU 1 (when it is up) or the boot CPU's own timer
    // notices a phase that stops making progress and says where (`watchdog`).
    if let Some(x) = x {
        if let Some(xi) = &rep.xen
            && let Ok((v, _)) = xen::domctl::DomctlVersion::detect(&x, xi.major, xi.minor)
        {
            watchdog::set_domctl_version(v);
        }
        let ap = smp::cpu(1).is_some_and(|c| c.online.load(core::sync::atomic::Ordering::Acquire));
        watchdog::start(&x, ap);
        if ap {
            info!("watchdog: vCPU 1 watches the boot");
        }
    }
    watchdog::begin(watchdog::Phase::Cpu);
    cpu_report(&mut rep, &map, smp_summary, opts.mtrr, x);
    watchdog::begin(watchdog::Phase::Acpi);

    // --- ACPI -----------------------------------------------------------------------------------
    let mut mcfg: Vec<acpi_fixup::McfgEntry> = Vec::new();
    if si.header.rsdp_paddr != 0 {
        let container = match (rep.under_xen, opts.maxcpus) {
            (true, _) => acpi::Container::XenPvh { vcpus: run_vcpus },
            (false, Some(n)) => acpi::Container::FirmwareLimited { cpus: n },
            (false, None) => acpi::Container::Firmware,
        };
        let (acpi, madt, found_mcfg) = acpi::survey(&phys, &map, si.header.rsdp_paddr, container);
        let names: Vec<&str> = acpi.tables.iter().map(|t| t.signature.as_str()).collect();
        info!(
            "ACPI: RSDP rev {} at {:#x} ({}), {} tables: {}",
            acpi.revision,
            acpi.rsdp,
            acpi.oem_id.trim_end(),
            acpi.tables.len(),
            names.join(" ")
        );
        for p in &acpi.problems {
            warn!("ACPI: {p}");
        }
        if let Some(c) = &acpi.container {
            if c.differences.is_empty() {
                info!(
                    "ACPI: container MADT ({} vCPUs) identical to {}",
                    c.vcpus, c.compared_with
                );
            } else {
                warn!(
                    "ACPI: container MADT ({} vCPUs) differs from {} in {} places{}",
                    c.vcpus,
                    c.compared_with,
                    c.differences.len(),
                    if c.rewritten {
                        "; rewritten tables in use"
                    } else {
                        ""
                    }
                );
            }
        }
        match (&madt, rep.under_xen) {
            (Some(m), true) => {
                info!(
                    "MADT: {} vCPUs (APIC ids {:?}), {} IO-APICs",
                    m.cpus_enabled,
                    m.apic_ids,
                    m.ioapics.len()
                );
                // Xen's crafted MADT and VCPUOP_is_up must agree (APIC id = 2 x vCPU id).
                if m.cpus_enabled != rep.vcpus {
                    let w = format!(
                        "MADT lists {} vCPUs but Xen says {}",
                        m.cpus_enabled, rep.vcpus
                    );
                    warn!("{w}");
                    rep.warnings.push(w);
                }
            }
            (Some(m), false) => {
                rep.vcpus = m.cpus_enabled.min(opts.maxcpus.unwrap_or(u32::MAX));
                info!(
                    "vCPUs: {} enabled in the MADT (APIC ids {:?}); only the boot CPU runs",
                    m.cpus_enabled, m.apic_ids
                );
            }
            (None, false) => {
                rep.vcpus = 1;
                warn!("vCPUs: no usable MADT; counting the boot CPU only");
                rep.warnings
                    .push("no usable MADT: vCPU count is the boot CPU only".to_string());
            }
            (None, true) => {}
        }
        mcfg = found_mcfg;
        rep.acpi = Some(acpi);
    } else {
        let w = "no RSDP in start_info: ACPI tables not read".to_string();
        warn!("{w}");
        rep.warnings.push(w);
        if !rep.under_xen {
            rep.vcpus = 1;
        }
    }
    time::phase("acpi");

    // --- PCI --------------------------------------------------------------------------------------
    watchdog::begin(watchdog::Phase::Pci);
    rep.pci = Some(pci_survey(
        &mut rep,
        &map,
        &mcfg,
        x,
        opts.pci_bars,
        opts.pci_renumber,
        opts.pci_vfs,
    ));
    time::phase("pci");

    // --- modules ------------------------------------------------------------------------------
    watchdog::begin(watchdog::Phase::Modules);
    let mut bundle_module: Option<(u64, u64)> = None;
    for m in &si.modules {
        let mut head = [0u8; 16];
        let n = head.len().min(m.size as usize);
        let kind = match phys.read(m.paddr, &mut head[..n]) {
            Ok(()) => classify(&head[..n]),
            Err(e) => Err(format!("unreadable: {e}")),
        };
        let (kind, status) = match kind {
            Ok("boot bundle") => {
                let r = read_bundle(m, &mut rep);
                if !r.1.starts_with("rejected") {
                    bundle_module = Some((m.paddr, m.size));
                }
                r
            }
            Ok(k) => {
                info!(
                    "module {}: {} bytes at {:#x}: {k}",
                    m.index, m.size, m.paddr
                );
                (
                    k.to_string(),
                    "recognised; nothing consumes it yet".to_string(),
                )
            }
            Err(why) => {
                let msg = format!(
                    "module {} ({} bytes at {:#x}): not recognised ({why}); ignored",
                    m.index, m.size, m.paddr
                );
                error!("{msg}");
                rep.errors.push(msg);
                (
                    "unknown".to_string(),
                    format!("rejected: not recognised ({why})"),
                )
            }
        };
        rep.modules.push(ModuleSummary {
            index: m.index,
            paddr: m.paddr,
            size: m.size,
            cmdline: m.cmdline.clone(),
            kind,
            status,
        });
    }
    time::phase("modules");

    // --- ready --------------------------------------------------------------------------------
    watchdog::end();
    if let Some(x) = x {
        watchdog::stop(&x);
    }
    record_stalls(&mut rep);
    time::phase("ready");
    rep.ready = true;
    let (size, used, peak) = heap::stats();
    rep.heap = HeapStats { size, used, peak };
    rep.phases = time::phases()
        .into_iter()
        .map(|(n, ns)| Phase {
            name: n.to_string(),
            at_ns: ns,
        })
        .collect();
    console::set_buffering(false);
    emit_report(&rep, opts.report);
    let ready_ms = rep.phases.last().map_or(0, |p| p.at_ns) as f64 / 1e6;
    if rep.under_xen {
        let (upcalls, timer, other, spurious) = events::counters();
        info!(
            "events so far: {upcalls} upcalls, {timer} timer, {other} other, {spurious} spurious vectors"
        );
    }
    info!("ready {ready_ms:.3} ms after entry");
    println!("DOM0-RESULT: ready");

    // --- DomUs from the boot bundle ---------------------------------------------------------------
    if let (Some((paddr, size)), Some(x)) = (bundle_module, x) {
        // SAFETY: the same mapped, never-written module `read_bundle` parsed above.
        let bytes = unsafe { core::slice::from_raw_parts(paddr as *const u8, size as usize) };
        if let Ok(b) = toolstack::bundle::parse(bytes)
            && !b.domains.is_empty()
        {
            let busy: Vec<(u64, u64)> = rep
                .pci
                .iter()
                .flat_map(|p| p.functions.iter())
                .flat_map(|f| f.bars.iter())
                .filter(|b| b.kind != "io" && b.size > 0)
                .map(|b| (b.address, b.address.saturating_add(b.size)))
                .collect();
            let t = domu::run(
                x,
                &b,
                &map,
                &busy,
                domu::Options {
                    stop_after_s: u64::from(opts.domu_stop),
                    xenstore_quota_kib: opts.xenstore_quota_kib,
                },
            );
            for d in &t.domus {
                for e in &d.errors {
                    rep.errors.push(format!("domu {}: {e}", d.name));
                }
                if d.state == "build failed" || d.state == "crash" {
                    rep.warnings.push(format!("domu {}: {}", d.name, d.state));
                }
            }
            for l in &t.leaks {
                rep.errors.push(format!("toolstack: {l}"));
            }
            rep.toolstack = Some(t);
            let (size, used, peak) = heap::stats();
            rep.heap = HeapStats { size, used, peak };
            emit_report(&rep, opts.report);
            println!("DOM0-DOMUS: done");
        }
    }

    match (opts.on_ready, x) {
        (OnReady::Idle, Some(x)) => {
            info!("idle: serving events in SCHEDOP_block");
            events::idle(&x)
        }
        (OnReady::Idle, None) => {
            info!("idle: no Xen, halting");
            arch::halt_forever()
        }
        (OnReady::Poweroff | OnReady::QemuExit, _) => exit::poweroff_ready(),
    }
}

/// What the boot watchdog saw, into the report: a stall that resolved is a warning (the boot
/// went on, but something held it for over a second), one that did not is an error.
fn record_stalls(rep: &mut BootReport) {
    let now = if rep.under_xen {
        events::system_time_ns()
    } else {
        0
    };
    let (stalls, dropped) = watchdog::stalls(now);
    for s in stalls.iter().flatten() {
        let line = format!("watchdog: {}", watchdog::Described(s));
        rep.watchdog.push(line.clone());
        if s.resolved_after_ns.is_some() {
            rep.warnings.push(line);
        } else {
            rep.errors.push(line);
        }
    }
    let (nudges, refused, longest) = watchdog::nudges();
    if nudges + refused > 0 {
        let line = format!(
            "watchdog: Xen's scheduler left vCPU 0 runnable with no physical CPU taking it \
             (credit2, Xen 4.17; see the README) for up to {} ms; re-placed it {nudges} time(s) \
             with XEN_DOMCTL_setvcpuaffinity{}",
            longest / 1_000_000,
            if refused > 0 {
                format!(", {refused} refused")
            } else {
                String::new()
            }
        );
        rep.watchdog.push(line.clone());
        rep.warnings.push(line);
    }
    if dropped > 0 {
        rep.watchdog
            .push(format!("watchdog: {dropped} more stalls not recorded"));
    }
}

/// Enumerate PCI (ECAM through the MCFG windows, else CF8/CFC), size BARs with decoding off,
/// check them against the host bridge windows, and report every function to Xen in topological
/// order (MCFG windows first, with `PHYSDEVOP_pci_mmcfg_reserved`).
fn pci_survey(
    rep: &mut BootReport,
    map: &MemoryMap,
    mcfg: &[acpi_fixup::McfgEntry],
    x: Option<hypercall::Xen>,
    bars: PciBars,
    renumber: Option<u8>,
    vfs: u16,
) -> report::PciSummary {
    let mut windows = Vec::new();
    let mut mmcfg_reserved = Vec::new();
    let mut problems = Vec::new();
    for m in mcfg {
        let size = (u64::from(m.end_bus) + 1) << 20;
        let (start, end) = (m.base + (u64::from(m.start_bus) << 20), m.base + size);
        if end > mem::MAPPED_LIMIT
            && let Err(e) = mem::map_identity(start, end, mem::Cache::Uncached)
        {
            problems.push(format!(
                "MCFG segment {} at {:#x}: not mapped: {e:?}",
                m.segment, m.base
            ));
            continue;
        }
        if let Some(x) = x {
            // Linux's xen_mcfg_late(): so Xen uses the window for extended config space.
            let r = xen::ops::pci_mmcfg_reserved(&x, m.base, m.segment, m.start_bus, m.end_bus);
            let r = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            mmcfg_reserved.push(format!(
                "segment {} buses {:#04x}-{:#04x} at {:#x}: {r}",
                m.segment, m.start_bus, m.end_bus, m.base
            ));
        }
        windows.push(pcicfg::EcamWindow {
            segment: m.segment,
            start_bus: m.start_bus,
            end_bus: m.end_bus,
            base: m.base,
        });
    }
    let (source, segments): (&str, Vec<pci::Segment>) = if windows.is_empty() {
        (
            "CF8/CFC",
            alloc::vec![pci::Segment {
                segment: 0,
                start_bus: 0,
                end_bus: 255,
                ecam: false
            }],
        )
    } else {
        (
            "ECAM (MCFG)",
            windows
                .iter()
                .map(|w| pci::Segment {
                    segment: w.segment,
                    start_bus: w.start_bus,
                    end_bus: w.end_bus,
                    ecam: true,
                })
                .collect(),
        )
    };
    let cfg = pcicfg::Dom0Config::new(windows);
    let t0 = arch::rdtsc();
    let mut topo = pci::enumerate(&cfg, &segments, &pci::EnumOptions::default());
    let enumerate_ns = time::ticks_to_ns(arch::rdtsc() - t0);
    // Host bridge windows: _CRS needs an AML interpreter dom0 does not have yet, so the windows
    // are the memory map's gaps in the PCI hole (above low RAM, below the IO-APIC/LAPIC range)
    // and above 4 GiB beyond all RAM and reserved entries.
    let bridge_windows = host_bridge_windows(map);
    pci::check_bars(&mut topo, &bridge_windows);
    info!(
        "PCI: {} functions on {} buses via {source} in {} us",
        topo.functions.len(),
        topo.buses.len(),
        enumerate_ns / 1000
    );
    for p in topo.all_problems() {
        warn!("PCI: {p}");
    }
    // Each function's PHYSDEVOP_pci_device_add result, by SBDF.
    let mut xen_results: Vec<(pci::Sbdf, String)> = Vec::new();
    if let Some(x) = x {
        for a in pci::xen_add_order(&topo) {
            let r = xen_add(&x, &a, rep);
            xen_results.push((a.sbdf, r));
        }
        let refused = xen_results.iter().filter(|(_, r)| r != "ok").count();
        info!(
            "PCI: {} functions reported to Xen, {refused} refused",
            topo.functions.len()
        );
    }
    // SR-IOV, in Linux's order: the PF was reported with its VFs off (Xen sizes the VF BARs when
    // the PF is added, which it cannot do once VF Enable is set); now give unassigned VF BARs a
    // place, enable the VFs, wait, find them, and report them as virtual functions of their PF.
    if vfs > 0 {
        let pfs: Vec<(pci::Sbdf, u16)> = topo
            .functions
            .iter()
            .filter_map(|f| f.sriov.as_ref().map(|s| (f.sbdf, s.total_vfs.min(vfs))))
            .filter(|&(_, n)| n > 0)
            .collect();
        for &(pf, n) in &pfs {
            for m in assign_vf_bars(&cfg, &topo, pf) {
                info!("PCI: {m}");
                problems.push(m);
            }
            match pci::enable_vfs(&cfg, pf, n) {
                Ok(v) => info!("PCI: {pf}: {} VFs enabled", v.len()),
                Err(e) => {
                    warn!("PCI: {pf}: enabling {n} VFs failed: {e}");
                    problems.push(format!("{pf}: enabling {n} VFs failed: {e}"));
                }
            }
        }
        if !pfs.is_empty() {
            // SR-IOV 1.1 §3.3.3.1: wait 100 ms after VF Enable before touching the VFs.
            let t = arch::rdtsc();
            while time::ticks_to_ns(arch::rdtsc() - t) < 100_000_000 {
                if let Some(x) = x {
                    let _ = xen::ops::sched_yield(&x);
                }
            }
            topo = pci::enumerate(&cfg, &segments, &pci::EnumOptions::default());
            pci::check_bars(&mut topo, &bridge_windows);
            if let Some(x) = x {
                for a in pci::xen_add_order(&topo) {
                    if !xen_results.iter().any(|(s, _)| *s == a.sbdf) {
                        let mut r = xen_add(&x, &a, rep);
                        if a.physfn.is_some() && r.contains("ENODEV") {
                            r.push_str(
                                " (Xen's vPCI keeps no BARs for a VF of a PVH dom0: VF BARs read 0 \
                                 in the VF's config space, so its MSI-X table has no BAR; SR-IOV is \
                                 unsupported for a PVH dom0 in Xen's SUPPORT.md)",
                            );
                        }
                        xen_results.push((a.sbdf, r));
                    }
                }
            }
        }
    }
    let mut renumber_log = Vec::new();
    if let Some(gap) = renumber {
        topo = renumber_buses(
            &cfg,
            &segments,
            topo,
            gap,
            x,
            &mut xen_results,
            &mut renumber_log,
            rep,
        );
        pci::check_bars(&mut topo, &bridge_windows);
    }
    let mut moves_log = Vec::new();
    if bars != PciBars::Keep {
        move_bars(&cfg, &mut topo, &bridge_windows, bars, &mut moves_log, rep);
    }
    let mut sum = report::PciSummary::from_topology(source, &topo);
    sum.enumerate_ns = enumerate_ns;
    sum.mmcfg_reserved = mmcfg_reserved;
    sum.problems.extend(problems);
    sum.bar_moves = moves_log;
    sum.renumber = renumber_log;
    for (sbdf, r) in &xen_results {
        sum.set_xen_add(*sbdf, r);
    }
    sum.windows = bridge_windows
        .iter()
        .map(|w| {
            format!(
                "[{:#x}, {:#x}): a gap in the memory map (_CRS not evaluated: no AML interpreter yet)",
                w.start, w.end
            )
        })
        .collect();
    let (ok, bad) = device_checks(&cfg, &topo, &mut sum);
    if ok + bad > 0 {
        info!("PCI: device checks through the BARs: {ok} ok, {bad} failed");
    }
    sum
}

/// Give a PF's unassigned VF BARs (SR-IOV capability) a place before its VFs are enabled: Xen
/// 4.20 refuses a VF whose MSI-X table sits in an unassigned BAR ("DEVICE BUG: ... MSI-X vector
/// table at invalid BAR0", -ENODEV), and firmware (SeaBIOS) leaves VF BARs unassigned. Each VF
/// BAR region (per-VF size x TotalVFs, aligned to the per-VF size) goes into a free part of the
/// memory window of the bridge above the PF, written with the PF's decoding off and read back.
fn assign_vf_bars(cfg: &pcicfg::Dom0Config, topo: &pci::Topology, pf: pci::Sbdf) -> Vec<String> {
    use pci::ConfigSpace as _;
    let mut notes = Vec::new();
    let Some(f) = topo.find(pf) else { return notes };
    let Some(sriov) = &f.sriov else { return notes };
    let Some(bridge) = f.parent.and_then(|i| topo.functions.get(i)) else {
        return notes;
    };
    // The bridge's memory window (0x20: base and limit, bits 31:20 of the address).
    let w = cfg.read32(bridge.sbdf, 0x20);
    let (base, limit) = (
        u64::from(w & 0xfff0) << 16,
        (u64::from(w >> 16 & 0xfff0) << 16) | 0xf_ffff,
    );
    if base > limit {
        notes.push(format!(
            "{pf}: VF BARs unassigned and the bridge above has no memory window"
        ));
        return notes;
    }
    // What already lies in the window: the BARs of every function behind the bridge.
    let mut used: Vec<(u64, u64)> = topo
        .functions
        .iter()
        .filter(|g| g.parent == f.parent)
        .flat_map(|g| g.bars.iter())
        .filter(|b| b.address != 0 && b.size != 0)
        .map(|b| (b.address, b.address + b.size))
        .collect();
    for vb in sriov
        .vf_bars
        .iter()
        .filter(|b| b.address == 0 && b.size != 0)
    {
        let total = vb.size * u64::from(sriov.total_vfs.max(1));
        let mut at = base.next_multiple_of(vb.size);
        while at + total - 1 <= limit {
            match used.iter().find(|&&(s, e)| at < e && s < at + total) {
                Some(&(_, e)) => at = e.next_multiple_of(vb.size),
                None => break,
            }
        }
        if at + total - 1 > limit {
            notes.push(format!(
                "{pf}: no room for VF BAR{} ({:#x} x {} VFs) in the bridge window [{base:#x}, {limit:#x}]",
                vb.index, vb.size, sriov.total_vfs
            ));
            continue;
        }
        let reg = sriov.offset + pci::regs::SRIOV_VF_BAR0 + 4 * u16::from(vb.index);
        let cmd = cfg.read32(pf, 4) & 0xffff;
        cfg.write32(pf, 4, cmd & !0x3);
        let low_flags = cfg.read32(pf, reg) & 0xf;
        cfg.write32(pf, reg, (at as u32 & !0xf) | low_flags);
        if vb.kind == pci::BarKind::Mem64 {
            cfg.write32(pf, reg + 4, (at >> 32) as u32);
        }
        let back = u64::from(cfg.read32(pf, reg) & !0xf)
            | if vb.kind == pci::BarKind::Mem64 {
                u64::from(cfg.read32(pf, reg + 4)) << 32
            } else {
                0
            };
        cfg.write32(pf, 4, cmd);
        used.push((at, at + total));
        notes.push(format!(
            "{pf}: VF BAR{} assigned [{at:#x}, {:#x}) ({} VFs x {:#x}){}",
            vb.index,
            at + total,
            sriov.total_vfs,
            vb.size,
            if back == at {
                String::new()
            } else {
                format!("; reads back {back:#x}: FAILED")
            }
        ));
    }
    notes
}

/// One `PHYSDEVOP_pci_device_add`; the result as report text ("ok" or the errno).
fn xen_add(x: &hypercall::Xen, a: &pci::XenAdd, rep: &mut BootReport) -> String {
    let physfn = a.physfn.map(|p| (p.bus(), p.devfn()));
    match xen::ops::pci_device_add(
        x,
        a.sbdf.segment(),
        a.sbdf.bus(),
        a.sbdf.devfn(),
        a.flags,
        physfn,
    ) {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            let m = format!("PHYSDEVOP_pci_device_add {}: {e}", a.sbdf);
            error!("PCI: {m}");
            rep.errors.push(format!("PCI: {m}"));
            e.to_string()
        }
    }
}

/// `pci-bars=`: plan and apply BAR moves (each with decoding off, written, read back, decoding
/// restored: Xen's vPCI ignores a BAR write while the BAR is mapped), then update `topo`.
fn move_bars(
    cfg: &pcicfg::Dom0Config,
    topo: &mut pci::Topology,
    windows: &[core::ops::Range<u64>],
    bars: PciBars,
    log: &mut Vec<String>,
    rep: &mut BootReport,
) {
    let mode = match bars {
        PciBars::Keep => pci::allocate::BarMode::Keep,
        PciBars::Unassigned => pci::allocate::BarMode::Unassigned,
        PciBars::All => pci::allocate::BarMode::All,
    };
    let windows: Vec<pci::allocate::Window> = windows
        .iter()
        .map(|r| pci::allocate::Window {
            range: r.clone(),
            // General windows: both kinds of memory BAR may go there.
            prefetchable: false,
        })
        .collect();
    let plan = pci::allocate::plan(topo, &windows, mode);
    log.push(format!(
        "pci-bars={}: {} BAR moves, {} bridges' windows",
        bars.name(),
        plan.moves.len(),
        plan.bridges.len()
    ));
    for p in &plan.problems {
        warn!("PCI: BAR plan: {p}");
        log.push(format!("problem: {p}"));
    }
    let mut failed = 0;
    for a in pci::allocate::apply(cfg, topo, &plan) {
        if !a.ok {
            failed += 1;
            rep.errors.push(format!("PCI: {}: {}", a.what, a.detail));
        }
        let detail = if a.detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.detail)
        };
        log.push(format!(
            "{}: {}{detail}",
            a.what,
            if a.ok { "ok" } else { "FAILED" }
        ));
    }
    for m in &plan.moves {
        if let Some(i) = topo.index_of(m.sbdf)
            && let Some(b) = topo.functions[i].bars.iter_mut().find(|b| b.index == m.bar)
        {
            b.address = m.new;
        }
    }
    info!(
        "PCI: {} BARs moved ({failed} steps failed)",
        plan.moves.len()
    );
}

/// `pci-renumber=GAP`: Xen does not follow bus renumbering (vPCI, the IOMMU and its pdev list
/// are keyed by SBDF), so: decoding off and `PHYSDEVOP_pci_device_remove` for every function
/// whose SBDF changes (deepest first; Xen 4.17's vpci_remove_device does not unmap BARs, hence
/// decoding off first), program the new bus numbers, enumerate again, re-add the moved
/// functions at their new SBDFs (bridges first), and restore their command registers.
#[allow(clippy::too_many_arguments)]
fn renumber_buses(
    cfg: &pcicfg::Dom0Config,
    segments: &[pci::Segment],
    topo: pci::Topology,
    gap: u8,
    x: Option<hypercall::Xen>,
    xen_results: &mut Vec<(pci::Sbdf, String)>,
    log: &mut Vec<String>,
    rep: &mut BootReport,
) -> pci::Topology {
    use pci::ConfigSpace as _;
    let plan = pci::renumber::plan(&topo, gap);
    for p in &plan.problems {
        warn!("PCI: renumber plan: {p}");
        log.push(format!("problem: {p}"));
    }
    if plan.moved.is_empty() {
        log.push(format!("pci-renumber={gap}: no function changes SBDF"));
        return topo;
    }
    log.push(format!(
        "pci-renumber={gap}: {} functions change SBDF",
        plan.moved.len()
    ));
    let mut saved: Vec<(pci::Sbdf, u32)> = Vec::new();
    for &(old, _) in plan.moved.iter().rev() {
        let cmd = cfg.read32(old, 4) & 0xffff;
        saved.push((old, cmd));
        cfg.write32(old, 4, cmd & !0x3);
        if let Some(x) = x {
            let r = match xen::ops::pci_device_remove(&x, old.segment(), old.bus(), old.devfn()) {
                Ok(()) => "ok".to_string(),
                Err(e) => {
                    rep.errors
                        .push(format!("PCI: PHYSDEVOP_pci_device_remove {old}: {e}"));
                    e.to_string()
                }
            };
            log.push(format!("Xen remove {old}: {r}"));
        }
        xen_results.retain(|(s, _)| *s != old);
    }
    for (what, ok) in pci::renumber::apply(cfg, &topo, &plan) {
        if !ok {
            rep.errors.push(format!("PCI: renumber: {what}"));
        }
        log.push(format!("{what}: {}", if ok { "ok" } else { "FAILED" }));
    }
    let new_topo = pci::enumerate(cfg, segments, &pci::EnumOptions::default());
    let moved_new: Vec<pci::Sbdf> = plan.moved.iter().map(|&(_, n)| n).collect();
    for &(old, new) in &plan.moved {
        if new_topo.find(new).is_none() {
            let m = format!("PCI: renumber: {old} is not at {new} afterwards");
            error!("{m}");
            rep.errors.push(m);
        }
    }
    if let Some(x) = x {
        // Bus numbers the firmware used when Xen booted: Xen's IOMMU code resolved its units
        // (AMD IVRS ranges, VT-d DMAR scopes) for those only.
        let boot_buses: Vec<u8> = topo.buses.iter().map(|b| b.number).collect();
        for a in pci::xen_add_order(&new_topo)
            .into_iter()
            .filter(|a| moved_new.contains(&a.sbdf))
        {
            let mut r = xen_add(&x, &a, rep);
            if r.contains("ENODEV") && !boot_buses.contains(&a.sbdf.bus()) {
                r.push_str(&format!(
                    " (bus {:#04x} did not exist when Xen booted: its IOMMU code only knows the \
                     firmware's bus numbers, so the device stays out of vPCI and the IOMMU)",
                    a.sbdf.bus()
                ));
            }
            log.push(format!("Xen add {}: {r}", a.sbdf));
            xen_results.push((a.sbdf, r));
        }
    }
    for &(old, new) in &plan.moved {
        if let Some(&(_, cmd)) = saved.iter().find(|(s, _)| *s == old) {
            cfg.write32(new, 4, cmd);
        }
    }
    info!("PCI: renumbered: {} functions moved", plan.moved.len());
    new_topo
}

/// Read one known register of each device dom0 knows through its BAR (`drivers::pcicheck`), with
/// memory decoding on (a driver turns it on; under Xen dom0 has reported the device first, so
/// vPCI maps the BARs into dom0 when it sees the bit set).
fn device_checks(
    cfg: &pcicfg::Dom0Config,
    topo: &pci::Topology,
    sum: &mut report::PciSummary,
) -> (u32, u32) {
    use pci::ConfigSpace as _;
    let (mut ok, mut bad) = (0, 0);
    for f in &topo.functions {
        let Some(check) = drivers::pcicheck::check_for(f.vendor, f.device, f.class) else {
            continue;
        };
        let cmd = cfg.read32(f.sbdf, 4) & 0xffff;
        if cmd & 0x2 == 0 {
            // COMMAND.MEM on; the STATUS half written as zero (its bits are write-1-to-clear).
            cfg.write32(f.sbdf, 4, cmd | 0x2);
        }
        let caps: Vec<(u8, u16)> = f.caps.iter().map(|c| (c.id, c.offset)).collect();
        let rd = |off: u16| cfg.read32(f.sbdf, off);
        let mmio = |bar: u8, off: u64, width: u8| -> Option<u32> {
            let b = f.bars.iter().find(|b| {
                b.index == bar && matches!(b.kind, pci::BarKind::Mem32 | pci::BarKind::Mem64)
            })?;
            let w = u64::from(width);
            if b.address == 0
                || !matches!(width, 2 | 4)
                || !off.is_multiple_of(w)
                || off.checked_add(w)? > b.size
            {
                return None;
            }
            let a = b.address + off;
            if !mem::is_mapped(a, w) {
                mem::map_identity(a, a + w, mem::Cache::Uncached).ok()?;
            }
            // `a` lies inside a memory BAR enumeration sized and found assigned, mapped
            // uncached (the PCI hole below 4 GiB, or mapped just above).
            // SAFETY: mapped device memory; a naturally aligned read of the register's width.
            Some(unsafe {
                if width == 2 {
                    u32::from(core::ptr::read_volatile(a as *const u16))
                } else {
                    core::ptr::read_volatile(a as *const u32)
                }
            })
        };
        let r = drivers::pcicheck::run(check, &caps, &rd, &mmio);
        if r.ok {
            ok += 1;
        } else {
            bad += 1;
            warn!("PCI: {}: device check failed: {}", f.sbdf, r.detail);
        }
        let name = format!("{}", f.sbdf);
        if let Some(pf) = sum.functions.iter_mut().find(|p| p.sbdf == name) {
            pf.device_check = format!("{}: {}", if r.ok { "ok" } else { "FAILED" }, r.detail);
        }
    }
    (ok, bad)
}

/// The gaps of the memory map in the PCI hole (from the end of low RAM to 0xfec00000, where the
/// IO-APIC/HPET/LAPIC range begins) and above 4 GiB (from the end of the highest entry to
/// 1 TiB): where firmware and dom0 may put BARs.
fn host_bridge_windows(map: &MemoryMap) -> Vec<core::ops::Range<u64>> {
    let top = map
        .regions()
        .iter()
        .map(|r| r.end())
        .max()
        .unwrap_or(0)
        .max(1 << 32);
    let mut out = map.gaps(map.low_ram_end(), 0xfec0_0000);
    out.extend(map.gaps(top, 1 << 40));
    out
}

/// The CPU side of the report: vCPU 0's CPUID, every vCPU's status and CPUID differences, and
/// the MTRRs checked against the memory map and compared across vCPUs (optionally corrected).
fn cpu_report(
    rep: &mut BootReport,
    map: &MemoryMap,
    smp_summary: Option<report::SmpSummary>,
    mode: MtrrMode,
    x: Option<hypercall::Xen>,
) {
    let Some(bsp) = smp::cpu(0) else { return };
    let bsp_cpuid = bsp.cpuid.lock().clone();
    let phys_bits = bsp_cpuid.as_ref().map_or(36, |c| c.phys_addr_bits);
    if let Some(c) = &bsp_cpuid {
        info!(
            "CPU: {} family {} model {} stepping {} {:?}, {} physical address bits",
            c.vendor, c.family, c.model, c.stepping, c.brand, c.phys_addr_bits
        );
        rep.cpu = Some(report::CpuSummary {
            vendor: c.vendor.clone(),
            family: c.family,
            model: c.model,
            stepping: c.stepping,
            brand: c.brand.clone(),
            features: c.features.iter().map(|f| String::from(*f)).collect(),
            phys_addr_bits: c.phys_addr_bits,
            xen_tsc_mode: c.xen.as_ref().map_or(0, |x| x.tsc_mode),
            xen_tsc_emulated: c.xen.as_ref().is_some_and(|x| x.tsc_emulated),
            xen_hvm_flags: c.xen.as_ref().map_or_else(Vec::new, |x| {
                x.hvm_flags.iter().map(|f| String::from(*f)).collect()
            }),
        });
    }
    let entry = boot::entry_tsc();
    let mut states: Vec<(usize, cpu::MtrrState)> = Vec::new();
    for id in 0..rep.vcpus.max(1) as usize {
        let Some(c) = smp::cpu(id) else {
            rep.vcpu_list.push(report::VcpuStatus {
                id: id as u32,
                ..Default::default()
            });
            continue;
        };
        let up = id == 0 || c.online.load(core::sync::atomic::Ordering::Acquire);
        let cpuid = c.cpuid.lock().clone();
        let differences = match (&bsp_cpuid, &cpuid) {
            (Some(a), Some(b)) if id != 0 => cpu::cpuid::differences(a, b),
            _ => Vec::new(),
        };
        for d in &differences {
            warn!("vCPU {id}: CPUID differs from vCPU 0: {d}");
        }
        if let Some(m) = c.mtrr.lock().clone() {
            states.push((id, m));
        }
        let online = c.online_tsc.load(core::sync::atomic::Ordering::Acquire);
        rep.vcpu_list.push(report::VcpuStatus {
            id: id as u32,
            apic_id: cpuid
                .as_ref()
                .map_or(0, |c| c.x2apic_id.unwrap_or(c.initial_apic_id)),
            up,
            online_ns: if id == 0 {
                0
            } else {
                time::ticks_to_ns(online.saturating_sub(entry))
            },
            work_done: c.work_done.load(core::sync::atomic::Ordering::Acquire),
            cpuid_differences: differences,
            mtrr_problems: Vec::new(),
        });
    }
    rep.smp = smp_summary;

    let Some((_, first)) = states.first() else {
        info!("MTRR: not available (CPUID has no MTRR bit)");
        return;
    };
    // MMIO that must not be cached: reserved ranges in the PCI hole, i.e. above the last RAM
    // (or RAM Xen withheld, "unusable") below 4 GiB: MMCONFIG, chipset and firmware MMIO.
    // Reserved ranges below that are firmware RAM (ACPI tables, SMM), rightly write-back. BARs
    // join this list with the PCI milestone.
    let top_of_low_ram = map.low_ram_end();
    let mmio: Vec<(core::ops::Range<u64>, bool)> = map
        .regions()
        .iter()
        .filter(|r| {
            r.kind == xen::memmap::MemType::Reserved
                && r.addr >= top_of_low_ram
                && r.end() <= 1 << 32
        })
        .map(|r| (r.addr..r.end(), false))
        .collect();
    let mut problems: Vec<String> = cpu::mtrr::check(first, map, &mmio, phys_bits)
        .iter()
        .map(|p| p.to_string())
        .collect();
    let only_states: Vec<cpu::MtrrState> = states.iter().map(|(_, m)| m.clone()).collect();
    let disagreements = cpu::mtrr::compare(&only_states);
    let consistent = disagreements.is_empty();
    let mut corrected = false;
    for p in &disagreements {
        problems.push(p.to_string());
    }
    if !consistent
        && mode == MtrrMode::Fix
        && let Some(x) = x
    {
        let fixes = cpu::mtrr::corrections(&only_states);
        // corrections() indexes the states slice; map back to vCPU ids.
        let fixes: Vec<(usize, u32, u64)> = fixes
            .into_iter()
            .map(|(i, m, v)| (states[i].0, m, v))
            .collect();
        let targets: alloc::collections::BTreeSet<usize> = fixes.iter().map(|f| f.0).collect();
        smp::queue_mtrr_fix(fixes);
        for id in targets {
            match smp::run_on(&x, id, smp::apply_mtrr_fix, 0) {
                Ok((n, _)) => info!("MTRR: vCPU {id}: {n} MSRs rewritten to match vCPU 0"),
                Err(e) => problems.push(format!("MTRR fix on vCPU {id} failed: {e}")),
            }
        }
        let after: Vec<cpu::MtrrState> = (0..rep.vcpus as usize)
            .filter_map(|id| smp::cpu(id).and_then(|c| c.mtrr.lock().clone()))
            .collect();
        corrected = cpu::mtrr::compare(&after).is_empty();
    }
    for p in &problems {
        warn!("MTRR: {p}");
    }
    info!(
        "MTRR: {}, default {}, {} variable ranges, {} across {} vCPUs{}",
        if first.enabled() {
            "enabled"
        } else {
            "disabled"
        },
        first.default_type(),
        first.describe(phys_bits).len(),
        if consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        states.len(),
        if corrected { " (corrected)" } else { "" }
    );
    rep.mtrr = Some(report::MtrrSummary {
        enabled: first.enabled(),
        default_type: first.default_type().to_string(),
        variable: first.describe(phys_bits),
        fixed_enabled: first.fixed_enabled(),
        problems,
        consistent,
        corrected,
    });
}

/// Work: the timer check on whichever vCPU runs it (its own VIRQ_TIMER port); the delivery
/// time in ns, or `u64::MAX` if the event never came.
fn timer_probe(delay_ns: u64) -> u64 {
    match hypercall::get().map(|x| events::timer_check(&x, delay_ns)) {
        Some(Ok(t)) => t.delivered_ns,
        _ => u64::MAX,
    }
}

/// The work each AP is sent: an answer that depends on the id in the per-CPU block of the vCPU
/// that runs it, so a right answer shows the work ran on the vCPU it was sent to.
fn work_probe(arg: u64) -> u64 {
    probe_answer(arg, u64::from(smp::current().id))
}

fn probe_answer(arg: u64, id: u64) -> u64 {
    (arg << 32) ^ (id * 0x9e37_79b9) ^ 0x5a5a
}

/// `fault-test=`: raise the requested exception so the bench can check it is reported.
fn fault_test(t: FaultTest) {
    match t {
        FaultTest::None | FaultTest::MtrrSkew => {}
        FaultTest::PageFault => {
            let addr = mem::MAPPED_LIMIT + 0x1234;
            warn!("fault-test: reading {addr:#x}, outside the identity map");
            console::flush();
            // SAFETY: deliberately faulting: the address is not mapped, so the read raises #PF
            // and the trap handler ends the run; no memory is accessed.
            let v = unsafe { core::ptr::read_volatile(addr as *const u64) };
            error!("fault-test: the read of {addr:#x} returned {v:#x} instead of faulting");
        }
        FaultTest::InvalidOpcode => {
            warn!("fault-test: executing ud2");
            console::flush();
            // SAFETY: ud2 raises #UD, which the trap handler reports and turns into the end of
            // the run; it touches no memory.
            unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        }
    }
}

/// Read the memory map from Xen (`XENMEM_memory_map`, memory_op 9).
fn xenmem_memory_map(x: &dyn xen::Hypercall) -> Result<MemoryMap, String> {
    let mut buf = alloc::vec![0u8; E820_BUF_ENTRIES * xen::ops::E820_ENTRY_SIZE];
    let n =
        xen::ops::memory_map(x, &mut buf).map_err(|e| format!("XENMEM_memory_map failed: {e}"))?;
    MemoryMap::from_e820_bytes(&buf, n)
        .map_err(|e| format!("XENMEM_memory_map returned a bad map: {e}"))
}

/// Parse a boot bundle module in place (`toolstack::bundle`) and describe its DomUs.
fn read_bundle(m: &xen::start_info::ModuleInfo, rep: &mut BootReport) -> (String, String) {
    // `StartInfo::load` checked that the module is RAM overlapping neither the image nor
    // start_info, and the heap was built from free RAM excluding it (`taken_ranges`).
    if !mem::is_mapped(m.paddr, m.size) {
        let msg = format!("module {}: not in the identity map; not read", m.index);
        rep.errors.push(msg.clone());
        return ("boot bundle".to_string(), format!("rejected: {msg}"));
    }
    // SAFETY: mapped RAM that nothing writes and that lives as long as dom0: a sound shared slice.
    let bytes = unsafe { core::slice::from_raw_parts(m.paddr as *const u8, m.size as usize) };
    match toolstack::bundle::parse(bytes) {
        Ok(b) => {
            let mut doms = Vec::new();
            for d in &b.domains {
                let kernel = b
                    .kernel_of(d)
                    .map(|k| format!("{:?}", toolstack::bundle::kernel_format(k.data)))
                    .unwrap_or_else(|| "missing".to_string());
                doms.push(format!(
                    "{} ({} MiB, {} vCPU{}, kernel {}: {kernel}{})",
                    d.name,
                    d.memory_mib,
                    d.vcpus,
                    if d.vcpus == 1 { "" } else { "s" },
                    d.kernel,
                    d.initrd
                        .as_ref()
                        .map_or(String::new(), |i| format!(", initrd {i}"))
                ));
            }
            info!(
                "module {}: boot bundle with {} DomU(s): {}",
                m.index,
                b.domains.len(),
                doms.join("; ")
            );
            (
                "boot bundle".to_string(),
                format!(
                    "{} DomU(s), {} file(s): {}",
                    b.domains.len(),
                    b.files.len(),
                    doms.join("; ")
                ),
            )
        }
        Err(e) => {
            let msg = format!("module {}: boot bundle rejected: {e}", m.index);
            error!("{msg}");
            rep.errors.push(msg);
            ("boot bundle".to_string(), format!("rejected: {e}"))
        }
    }
}

/// What a module looks like from its first bytes.
fn classify(head: &[u8]) -> Result<&'static str, String> {
    match head {
        [b'X', b'D', b'B', b'0', b'B', b'N', b'D', b'L', ..] => Ok("boot bundle"),
        [0x7f, b'E', b'L', b'F', ..] => Ok("ELF image"),
        [0x1f, 0x8b, ..] => Ok("gzip data"),
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Ok("xz data"),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Ok("zstd data"),
        [b'0', b'7', b'0', b'7', b'0', b'1' | b'2', ..] => Ok("cpio archive"),
        _ => {
            let mut s = String::new();
            for b in head.iter().take(8) {
                let _ = write!(s, "{b:02x} ");
            }
            Err(format!("first bytes {}", s.trim_end()))
        }
    }
}

fn emit_report(rep: &BootReport, fmt: ReportFormat) {
    if matches!(fmt, ReportFormat::Text | ReportFormat::Both) {
        let mut s = String::new();
        let _ = rep.write_text(&mut s);
        console::print_str(&s);
    }
    if matches!(fmt, ReportFormat::Json | ReportFormat::Both) {
        let mut s = String::from("DOM0-REPORT-JSON ");
        let _ = rep.write_json(&mut s);
        s.push('\n');
        console::print_str(&s);
    }
}

/// A clean stop after an error that makes going on pointless (bad start_info, no memory map).
fn stop(why: &str) -> ! {
    // Every console: add port 0xE9 (Xen's `(d0)` debug lines, QEMU's debugcon) to the usual one.
    console::enable(console::enabled() | console::E9);
    error!("{why}");
    error!(
        "dom0 cannot continue: check the boot loader configuration (Xen: dom0=pvh, one dom0 module)"
    );
    exit::fail_clean(why)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut w = console::Emergency;
    let _ = writeln!(w, "\ndom0: PANIC: {info}");
    exit::fail_hard("panic")
}
