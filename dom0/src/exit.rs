//! How a run ends: a result line on every console, then QEMU's isa-debug-exit (test bench,
//! `on-ready=qemu-exit`), `SCHEDOP_shutdown` under Xen, or a halt.
//!
//! isa-debug-exit codes (QEMU exits with `(v << 1) | 1`): 0x10 → 33 ready, 0x11 → 35 dom0
//! stopped on an error it reported, 0x12 → 37 CPU exception or panic.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use xen::ops::ShutdownReason;

static QEMU_EXIT: AtomicBool = AtomicBool::new(false);
const DEBUG_EXIT_PORT: u16 = 0xf4;

pub const CODE_READY: u32 = 0x10;
pub const CODE_FAILED: u32 = 0x11;
pub const CODE_CRASHED: u32 = 0x12;

/// Allow ending the run through QEMU's isa-debug-exit port (only the test bench asks for it:
/// on real hardware port 0xf4 may belong to something else).
pub fn enable_qemu_exit() {
    QEMU_EXIT.store(true, Ordering::Relaxed);
}

fn qemu_exit(code: u32) {
    if QEMU_EXIT.load(Ordering::Relaxed) {
        // SAFETY: the bench configured an isa-debug-exit device at 0xf4; writing it ends QEMU.
        unsafe { crate::arch::outl(DEBUG_EXIT_PORT, code) };
    }
}

fn shutdown(reason: ShutdownReason) {
    if let Some(x) = crate::hypercall::get() {
        let e = xen::ops::sched_shutdown(&x, reason);
        let _ = writeln!(
            crate::console::Emergency,
            "dom0: SCHEDOP_shutdown returned {e}"
        );
    }
}

/// dom0 is ready and was asked to power off (or exit QEMU).
pub fn poweroff_ready() -> ! {
    qemu_exit(CODE_READY);
    shutdown(ShutdownReason::Poweroff);
    crate::arch::halt_forever()
}

/// Stop cleanly after an error dom0 has explained.
pub fn fail_clean(reason: &str) -> ! {
    let _ = writeln!(crate::console::Emergency, "DOM0-RESULT: failed: {reason}");
    qemu_exit(CODE_FAILED);
    shutdown(ShutdownReason::Poweroff);
    crate::arch::halt_forever()
}

/// Stop after a CPU exception or panic.
pub fn fail_hard(reason: &str) -> ! {
    let _ = writeln!(crate::console::Emergency, "DOM0-RESULT: failed: {reason}");
    qemu_exit(CODE_CRASHED);
    shutdown(ShutdownReason::Crash);
    crate::arch::halt_forever()
}
