//! dom0: a PVH hardware domain for Xen.
//!
//! `rust_start` is the boot as a list of phases (`phase` has one module per phase and says what
//! each does); the decisions of the hardware domain (options, PCI survey and Xen reports, CPU
//! report, ACPI, modules) live in the `hwdom` crate, host-tested, and run here on
//! [`platform::Dom0Platform`]. `docs/ARCHITECTURE.md` has the whole map. The rest of this crate
//! is the thin platform layer: the PVH entry stub, paging, traps, heap, hypercalls, event
//! channels, vCPUs, consoles, the boot watchdog, and the DomU service loop (`domu`).
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod boot;
mod cell;
mod console;
mod domu;
mod events;
mod exit;
mod heap;
mod hypercall;
mod mem;
mod nic;
mod pcicfg;
mod percpu;
mod phase;
mod platform;
mod smp;
mod stats;
mod time;
mod trap;
mod watchdog;

use alloc::string::ToString;
use core::fmt::Write as _;

use hwdom::options::OnReady;
use hwdom::pci_survey::SurveyOptions;
use hwdom::platform::Platform as _;
use log::{error, info};
use report::BootReport;

use crate::platform::Dom0Platform;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The first Rust code, on the boot stack, interrupts off, identity map of the low 4 GiB.
#[unsafe(no_mangle)]
extern "C" fn rust_start(start_info_paddr: u32) -> ! {
    time::phase("long mode");
    trap::init();
    let mut rep = BootReport {
        dom0_version: VERSION.to_string(),
        ..Default::default()
    };
    let x = phase::xen::detect(&mut rep, start_info_paddr);
    let (si, map) = phase::start::load(start_info_paddr, x, &mut rep);
    let opts = phase::options::apply(&si, x, &mut rep);
    phase::memory::init(&si, &map, &mut rep);
    phase::options::overflow_stack_test(opts.fault_test);
    phase::events::init(x, &mut rep);
    let vcpus = phase::vcpus::start(x, &opts, &mut rep);
    let p = Dom0Platform { xen: x };
    let hv = x.as_ref().map(|x| x as &dyn xen::Hypercall);

    watchdog::begin(watchdog::Phase::Cpu);
    phase::cpu::report(&mut rep, &map, vcpus.summary, opts.mtrr, x);
    time::phase("cpu");

    watchdog::begin(watchdog::Phase::Acpi);
    let firmware_rsdp = hv.and_then(|x| hwdom::firmware::survey(x, p.phys(), &map, &mut rep));
    let acpi = hwdom::acpi::boot_survey(
        &p,
        &mut rep,
        &map,
        si.header.rsdp_paddr,
        opts.maxcpus,
        vcpus.run_vcpus,
        firmware_rsdp,
    );
    time::phase("acpi");

    watchdog::begin(watchdog::Phase::Pci);
    let survey = SurveyOptions {
        bars: opts.pci_bars,
        renumber: opts.pci_renumber,
        vfs: opts.pci_vfs,
        probe_roots: opts.pci_roots == hwdom::options::PciRoots::Probe,
    };
    rep.pci = Some(hwdom::pci_survey::survey(
        &p, hv, &mut rep, &map, &acpi, survey,
    ));
    time::phase("pci");

    watchdog::begin(watchdog::Phase::Modules);
    let bundle = hwdom::modules::survey(&p, &mut rep, &si.modules);
    time::phase("modules");

    let uplink = match x {
        Some(_) => phase::nic::bring_up(&p, &mut rep, &acpi.mcfg, &opts),
        None => {
            phase::nic::without_xen(&mut rep, &opts);
            None
        }
    };
    time::phase("nic");

    phase::ready::finish(x, &mut rep, opts.report);
    if let Some(x) = x {
        phase::domus::serve(x, bundle, &map, &opts, &mut rep, uplink);
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
