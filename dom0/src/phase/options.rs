//! Phase 3: dom0's command line (`hwdom::options`): log level, console, `fault-test=`.

use alloc::format;

use hwdom::finding;
use hwdom::options::{ConsoleChoice, Dom0Options, FaultTest, LogLevel, OnReady};
use log::{error, info, warn};
use report::BootReport;
use xen::start_info::StartInfo;

use crate::hypercall::Xen;
use crate::{console, exit, mem};

/// Parse and apply the options; every bad one is in the report, none stops the boot.
pub fn apply(si: &StartInfo, x: Option<Xen>, rep: &mut BootReport) -> Dom0Options {
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
        other => finding::warn(
            rep,
            format!("console={other:?} is not available here; keeping the default"),
        ),
    }
    info!("command line: {:?}", si.cmdline);
    for e in &opt_errors {
        if e.is_note() {
            finding::warn(rep, format!("command line: {e}"));
        } else {
            error!("command line: {e}; ignored");
            rep.errors.push(format!("command line: {e}"));
        }
    }
    rep.cmdline = si.cmdline.clone();
    rep.options = opts.given.clone();
    fault_test(opts.fault_test);
    opts
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
        // Needs the guard page, which the memory phase installs: `overflow_stack_test`.
        FaultTest::StackOverflow => {}
        FaultTest::InvalidOpcode => {
            warn!("fault-test: executing ud2");
            console::flush();
            // SAFETY: ud2 raises #UD, which the trap handler reports and turns into the end of
            // the run; it touches no memory.
            unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        }
    }
}

/// `fault-test=stack-overflow`, once the guard page is in place (after the memory phase).
pub fn overflow_stack_test(t: FaultTest) {
    if t != FaultTest::StackOverflow {
        return;
    }
    warn!("fault-test: writing below the boot stack's bottom");
    console::flush();
    let bottom = crate::boot::BOOT_STACK.get() as u64 + crate::boot::STACK_GUARD as u64;
    // Move the stack pointer just below the stack's bottom and push: with the guard page the
    // push faults (#PF), the CPU cannot push the #PF frame there either, and raises #DF on its
    // IST stack, whose handler ends the run. Without the guard the push lands in the guard
    // page's bytes (dom0's own, unused) and the stack pointer is put back.
    // SAFETY: the only write is the push into the guard page (unmapped, or 4 KiB of .bss that
    // nothing uses); rsp is restored before any other code runs.
    unsafe {
        core::arch::asm!(
            "mov {saved}, rsp",
            "mov rsp, {below}",
            "push rax",
            "mov rsp, {saved}",
            saved = out(reg) _,
            below = in(reg) bottom - 64,
        )
    }
    error!("fault-test: the push below the boot stack did not fault: no guard page");
}
