//! The real hypercall: through the hypercall page Xen fills when dom0 writes the page's address to
//! the MSR named by CPUID leaf `base+2` (Xen `*_init_hypercall_page()`). The MSR is written from
//! 64-bit mode, because that write also latches the 64-bit shared_info layout
//! (`hvm_latch_shinfo_size()`).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use xen::cpuid::XenLeaves;
use xen::hypercall::{Call, Hypercall};

#[repr(C, align(4096))]
struct HypercallPage(UnsafeCell<[u8; 4096]>);

// SAFETY: Xen writes the page once (at the MSR write); afterwards it is only executed and read.
unsafe impl Sync for HypercallPage {}

static PAGE: HypercallPage = HypercallPage(UnsafeCell::new([0xc3; 4096]));
static READY: AtomicBool = AtomicBool::new(false);

/// The hypercall interface of the running Xen. Only obtainable after [`init`].
#[derive(Debug, Clone, Copy)]
pub struct Xen(());

/// Install the hypercall page. Call once, from long mode, when CPUID found Xen.
pub fn init(leaves: &XenLeaves) -> Xen {
    let addr = PAGE.0.get() as u64;
    // Identity map: the page's virtual address is its guest-physical address.
    // SAFETY: Xen's CPUID leaf names this MSR for this; the page is aligned RAM nothing else uses.
    unsafe { crate::arch::wrmsr(leaves.hypercall_msr, addr) };
    READY.store(true, Ordering::Release);
    Xen(())
}

/// The handle, if [`init`] ran.
pub fn get() -> Option<Xen> {
    READY.load(Ordering::Acquire).then_some(Xen(()))
}

/// Which instruction Xen wrote into the stubs (`mov eax, imm32` then `vmcall`/`vmmcall`).
pub fn page_insn() -> &'static str {
    let mut b = [0u8; 3];
    for (i, x) in b.iter_mut().enumerate() {
        // SAFETY: reading bytes 5..8 of the page Xen filled; in bounds, no concurrent writer.
        *x = unsafe { core::ptr::read_volatile(PAGE.0.get().cast::<u8>().add(5 + i)) };
    }
    match b {
        [0x0f, 0x01, 0xd9] => "vmmcall",
        [0x0f, 0x01, 0xc1] => "vmcall",
        _ => "unknown",
    }
}

impl Hypercall for Xen {
    fn hypercall(&self, call: &mut Call<'_>) -> i64 {
        let op = call.op();
        let [a0, a1, a2, a3, a4] = call.reg_values();
        if op >= 128 {
            return -i64::from(xen::XenError::ENOSYS.0);
        }
        crate::stats::hypercall(op);
        let entry = PAGE.0.get() as u64 + u64::from(op) * 32;
        let ret: i64;
        // Every buffer argument is a live borrow held by `call` for the duration of this asm
        // (identity map: address == guest-physical address). Xen may rewrite the argument
        // registers (continuations), so they are all clobbered.
        // SAFETY: `Xen` exists only after `init`, so `entry` is Xen's `mov eax, op; vm(m)call; ret`.
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
