//! The guest's side of Xen: the hypercall page (CPUID leaf `base+2` names the MSR, written from
//! 64-bit mode as dom0 does), the `xen` crate's [`Hypercall`] trait over it, the shared_info
//! page (for Xen's system time and the event-channel pending bits that `SCHEDOP_poll` looks
//! at), and Xen's HVM debug port 0xE9, which Xen prints in its own log as `(d<id>) text` with
//! `guest_loglvl=all`, a channel that does not go through dom0 at all.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use xen::cpuid::{CpuidResult, XenLeaves};
use xen::events::{VcpuTimeInfo, layout, port_word_bit};
use xen::hypercall::{Call, Hypercall};
use xen::ops::{self, EvtchnPort};

#[repr(C, align(4096))]
struct Page(UnsafeCell<[u8; 4096]>);

// SAFETY: the hypercall page is written by Xen once (at the MSR write) and then only executed;
// the shared_info page is only accessed through atomics after Xen maps it.
unsafe impl Sync for Page {}

static HYPERCALL_PAGE: Page = Page(UnsafeCell::new([0xc3; 4096]));
static SHARED_INFO: Page = Page(UnsafeCell::new([0; 4096]));

pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The hypercall interface; only obtainable through [`init`].
#[derive(Debug, Clone, Copy)]
pub struct Xen(());

/// Find Xen, install the hypercall page and map shared_info. `None` without Xen.
pub fn init() -> Option<(Xen, XenLeaves)> {
    let leaves = xen::cpuid::find_xen(&cpuid)?;
    let addr = HYPERCALL_PAGE.0.get() as u64;
    // SAFETY: Xen's CPUID leaf names this MSR for exactly this; the page is aligned RAM of this
    // image that nothing else uses (identity map: its address is its guest-physical address).
    unsafe {
        core::arch::asm!("wrmsr", in("ecx") leaves.hypercall_msr, in("eax") addr as u32,
                         in("edx") (addr >> 32) as u32, options(nostack, preserves_flags));
    }
    let x = Xen(());
    ops::map_shared_info(&x, SHARED_INFO.0.get() as u64 >> 12).ok()?;
    Some((x, leaves))
}

impl Hypercall for Xen {
    fn hypercall(&self, call: &mut Call<'_>) -> i64 {
        let op = call.op();
        let [a0, a1, a2, a3, a4] = call.reg_values();
        if op >= 128 {
            return -i64::from(xen::XenError::ENOSYS.0);
        }
        let entry = HYPERCALL_PAGE.0.get() as u64 + u64::from(op) * 32;
        let ret: i64;
        // `Xen` exists only after `init` wrote the MSR, so `entry` is Xen's stub
        // `mov eax, op; vmcall/vmmcall; ret`. Buffer arguments are live borrows held by `call`
        // (identity map: address == guest-physical address).
        // SAFETY: as above; Xen may clobber the argument registers, all marked clobbered.
        unsafe {
            core::arch::asm!(
                "call {entry}",
                entry = in(reg) entry,
                inout("rax") u64::from(op) => ret,
                inout("rdi") a0 => _,
                inout("rsi") a1 => _,
                inout("rdx") a2 => _,
                inout("r10") a3 => _,
                inout("r8") a4 => _,
            );
        }
        ret
    }
}

fn shared_u32(off: usize) -> &'static AtomicU32 {
    assert!(off + 4 <= 4096 && off.is_multiple_of(4));
    // SAFETY: in bounds and aligned inside the static page, which is only accessed atomically.
    unsafe { AtomicU32::from_ptr(SHARED_INFO.0.get().cast::<u8>().add(off).cast()) }
}

fn shared_u64(off: usize) -> &'static AtomicU64 {
    assert!(off + 8 <= 4096 && off.is_multiple_of(8));
    // SAFETY: as in `shared_u32`.
    unsafe { AtomicU64::from_ptr(SHARED_INFO.0.get().cast::<u8>().add(off).cast()) }
}

/// Xen system time (ns since Xen booted) from vCPU 0's pvclock record.
pub fn now_ns() -> u64 {
    let base = layout::VCPU_INFO + layout::TIME;
    for _ in 0..1000 {
        let v1 = shared_u32(base).load(Ordering::Acquire);
        let mut b = [0u8; 32];
        for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(
                &shared_u32(base + 4 * i)
                    .load(Ordering::Acquire)
                    .to_le_bytes(),
            );
        }
        if v1 & 1 == 0 && shared_u32(base).load(Ordering::Acquire) == v1 {
            return VcpuTimeInfo::from_bytes(&b).system_time_at(rdtsc());
        }
    }
    0
}

/// Clear `port`'s pending bit (so that the next `SCHEDOP_poll` on it sleeps).
pub fn clear_pending(port: EvtchnPort) {
    if let Some((w, bit)) = port_word_bit(port.0) {
        shared_u64(layout::EVTCHN_PENDING + 8 * w).fetch_and(!bit, Ordering::AcqRel);
    }
}

/// Sleep until one of `ports` is notified or `ns` have passed.
pub fn wait(x: &Xen, ports: &[EvtchnPort], ns: u64) {
    for &p in ports {
        clear_pending(p);
    }
    let _ = ops::sched_poll(x, ports, now_ns().saturating_add(ns).max(1));
}

/// Write `line` and a newline to Xen's HVM debug port (`XEN_HVM_DEBUGCONS_IOPORT`).
pub fn debug_port_line(line: &str) {
    for b in line.bytes().chain(core::iter::once(b'\n')) {
        // SAFETY: port 0xE9 is Xen's debug console for HVM guests: a write only prints.
        unsafe {
            core::arch::asm!("out dx, al", in("dx") 0xe9u16, in("al") b,
                             options(nomem, nostack, preserves_flags));
        }
    }
}
