//! Each vCPU's own block ([`PerCpu`]), found through GS (`gs:[0]` points back at the block)
//! or by id. The bottom of dom0's interrupt-side modules: `events` (the upcall), `trap`,
//! `smp` and `watchdog` all use it, and it uses none of them, so their imports form no cycle
//! (order: `arch`, `boot` → `percpu` → `events` → `trap`, `smp`, `watchdog`).

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use x86_64::VirtAddr;
use x86_64::structures::tss::TaskStateSegment;

use crate::boot::MAX_CPUS;

/// The 64-bit TSS (SDM vol. 3 §8.7), from the `x86_64` crate. Only the IST slots are used:
/// dom0 runs in ring 0 only.
pub type Tss = TaskStateSegment;

/// A TSS whose IST1..3 (double fault, NMI, machine check) are the given stack tops.
pub const fn tss_with_ist(df: u64, nmi: u64, mc: u64) -> Tss {
    let mut t = TaskStateSegment::new();
    t.interrupt_stack_table[0] = VirtAddr::new_truncate(df);
    t.interrupt_stack_table[1] = VirtAddr::new_truncate(nmi);
    t.interrupt_stack_table[2] = VirtAddr::new_truncate(mc);
    t
}

/// One vCPU's own data. `self_ptr` must stay first: `gs:[0]` reads it.
#[repr(C)]
pub struct PerCpu {
    self_ptr: u64,
    pub id: u32,
    /// Guest-physical address of this vCPU's `vcpu_info` (a shared_info slot, or a registered
    /// area for ids of 32 and more).
    pub vcpu_info: u64,
    pub timer_port: AtomicU32,
    pub ipi_port: AtomicU32,
    pub online: AtomicBool,
    pub online_tsc: AtomicU64,
    /// Set once the vCPU has read its CPUID and MTRRs (after it reported in).
    pub details_ready: AtomicBool,
    pub timer_events: AtomicU64,
    pub ipis: AtomicU64,
    pub(crate) work_fn: AtomicU64,
    pub(crate) work_arg: AtomicU64,
    pub work_result: AtomicU64,
    pub work_done: AtomicU64,
    /// This vCPU's MTRRs, read on arrival (`None` without the CPUID MTRR bit).
    pub mtrr: spin::Mutex<Option<cpu::MtrrState>>,
    /// This vCPU's CPUID, read on arrival.
    pub cpuid: spin::Mutex<Option<cpu::CpuidReport>>,
    pub(crate) tss: Tss,
}

impl PerCpu {
    pub(crate) const fn new(id: u32, vcpu_info: u64, tss: Tss) -> Self {
        PerCpu {
            self_ptr: 0,
            id,
            vcpu_info,
            timer_port: AtomicU32::new(u32::MAX),
            ipi_port: AtomicU32::new(u32::MAX),
            online: AtomicBool::new(false),
            online_tsc: AtomicU64::new(0),
            details_ready: AtomicBool::new(false),
            timer_events: AtomicU64::new(0),
            ipis: AtomicU64::new(0),
            work_fn: AtomicU64::new(0),
            work_arg: AtomicU64::new(0),
            work_result: AtomicU64::new(0),
            work_done: AtomicU64::new(0),
            mtrr: spin::Mutex::new(None),
            cpuid: spin::Mutex::new(None),
            tss,
        }
    }
}

static CPUS: [AtomicPtr<PerCpu>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];

/// vCPU `id`'s block, if it has one.
pub fn cpu(id: usize) -> Option<&'static PerCpu> {
    let p = CPUS.get(id)?.load(Ordering::Acquire);
    // SAFETY: non-null entries point at blocks leaked for ever (`Box::leak`) and only read
    // through shared references (all mutable state is atomic or locked).
    unsafe { p.as_ref() }
}

/// The calling vCPU's block.
pub fn current() -> &'static PerCpu {
    // SAFETY: GS base is set to the block (whose first field points at itself) by `init_bsp`
    // and `ap_main` before interrupts are enabled on that CPU, and never changed.
    let p = unsafe { crate::arch::gs_read(0) } as *const PerCpu;
    // SAFETY: as in `cpu`: a leaked block, shared references only.
    unsafe { &*p }
}

pub(crate) fn install(pc: &'static mut PerCpu) -> &'static PerCpu {
    pc.self_ptr = pc as *mut PerCpu as u64;
    CPUS[pc.id as usize].store(pc, Ordering::Release);
    pc
}

/// The boot CPU's block. Its TSS stays the static one `trap::init` loaded.
pub fn init_bsp(vcpu_info: u64) {
    let pc = install(Box::leak(Box::new(PerCpu::new(
        0,
        vcpu_info,
        tss_with_ist(0, 0, 0),
    ))));
    // SAFETY: the MSR is IA32_GS_BASE; the block lives for ever and begins with its own address.
    unsafe { crate::arch::wrmsr(crate::arch::MSR_GS_BASE, pc as *const PerCpu as u64) };
}

/// Set up the BSP's block without Xen (no vcpu_info).
pub fn init_bsp_bare() {
    init_bsp(0);
}
