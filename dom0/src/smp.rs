//! Bringing up dom0's other vCPUs and sending them work.
//!
//! Each AP starts in 64-bit mode straight from `VCPUOP_initialise` with a `vcpu_hvm_context`
//! (no real-mode trampoline): paging on with the boot page tables, its own stack, and its
//! per-CPU block in `rdi`. Xen leaves GDTR and IDTR unset, so the AP's first instructions load
//! the shared GDT, reload CS, then its own TSS (own IST stacks) and the shared IDT. GS base holds
//! the per-CPU block (`gs:[0]` points back at it).
//!
//! Every vCPU has a VIRQ_TIMER port and an IPI port bound to it. Work is sent by writing the
//! target's mailbox and notifying its IPI port; the target runs it in its upcall and notifies
//! the sender's IPI port back.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use xen::events::{layout, port_word_bit};
use xen::ops::{self, EvtchnPort};
use xen::vcpu::VcpuContext64;
use xen::{Hypercall, XenError};

use crate::boot::MAX_CPUS;
use crate::percpu::{PerCpu, current, install, tss_with_ist};

/// Work a vCPU can be sent: a plain function of one argument.
pub type WorkFn = fn(u64) -> u64;

/// Read this vCPU's CPUID and MTRRs into its block (each CPUID and MSR read is a VM exit under
/// Xen, so APs do it after they reported in).
fn read_details(pc: &PerCpu) {
    *pc.cpuid.lock() = Some(cpu::CpuidReport::collect(&crate::arch::cpuid));
    if crate::arch::cpuid(1, 0).edx & (1 << 12) != 0 {
        let rdmsr = |msr: u32| {
            // `MtrrState::read` only asks for MTRRcap, MTRRdefType, the fixed ranges when
            // MTRRcap.FIX says they exist and min(VCNT, 40) variable pairs (Xen's cap).
            // SAFETY: CPUID.1:EDX.MTRR is set, so every MSR asked for exists.
            unsafe { crate::arch::rdmsr(msr) }
        };
        *pc.mtrr.lock() = Some(cpu::MtrrState::read(&rdmsr));
    }
    pc.details_ready.store(true, Ordering::Release);
}

/// Write MSRs on the calling vCPU.
///
/// # Safety
/// Each write must be one `cpu::mtrr::corrections` produced for this vCPU (MTRR MSRs, in the
/// SDM's order), so only memory types change, to those vCPU 0 already uses.
unsafe fn write_mtrrs(writes: &[(u32, u64)]) {
    for &(msr, v) in writes {
        // SAFETY: the caller's promise.
        unsafe { crate::arch::wrmsr(msr, v) };
    }
}

/// MTRR writes queued for each vCPU by [`queue_mtrr_fix`].
static MTRR_FIX: spin::Mutex<Vec<(usize, u32, u64)>> = spin::Mutex::new(Vec::new());

/// Queue `cpu::mtrr::corrections` output; [`apply_mtrr_fix`] run on each vCPU applies its part.
pub fn queue_mtrr_fix(writes: Vec<(usize, u32, u64)>) {
    *MTRR_FIX.lock() = writes;
}

/// Work function: apply this vCPU's queued MTRR writes, re-read its MTRRs; returns the count.
pub fn apply_mtrr_fix(_: u64) -> u64 {
    let me = current();
    let mine: Vec<(u32, u64)> = MTRR_FIX
        .lock()
        .iter()
        .filter(|(c, _, _)| *c == me.id as usize)
        .map(|&(_, m, v)| (m, v))
        .collect();
    // SAFETY: these are `corrections` output for this vCPU (see `queue_mtrr_fix`).
    unsafe { write_mtrrs(&mine) };
    read_details(me);
    mine.len() as u64
}

/// Work (`fault-test=mtrr-skew`): change this vCPU's default memory type (MTRRdefType bits 7:0)
/// to UC, or to WB if it already is UC, then re-read its details. Returns the new MTRRdefType.
pub fn skew_mtrr(_: u64) -> u64 {
    let me = current();
    if crate::arch::cpuid(1, 0).edx & (1 << 12) == 0 {
        return 0;
    }
    // Changing the default type only changes how memory no range covers is cached (slower, not
    // unsafe); the test then has dom0 set it back with `mtrr=fix`.
    // SAFETY: CPUID.1:EDX.MTRR is set, so MTRRdefType (0x2FF) exists.
    let new = unsafe {
        let v = crate::arch::rdmsr(0x2ff);
        let ty = if v & 0xff == 0 { 6 } else { 0 };
        let new = (v & !0xff) | ty;
        crate::arch::wrmsr(0x2ff, new);
        new
    };
    read_details(me);
    new
}

/// Read the boot CPU's CPUID and MTRRs (APs read theirs when they arrive).
pub fn read_bsp_details() {
    read_details(current());
}

core::arch::global_asm!(
    include_str!("asm/ap.S"),
    kernel_cs = const crate::boot::KERNEL_CS,
    kernel_ds = const crate::boot::KERNEL_DS,
);

unsafe extern "C" {
    fn ap_start64();
}

/// First Rust code on an AP: `pc` is its block (from `rdi`), interrupts are off.
#[unsafe(no_mangle)]
extern "C" fn ap_main(pc: *mut PerCpu) -> ! {
    // SAFETY: the BSP passed this vCPU's own block, leaked for ever; this CPU is the only one
    // that uses its TSS.
    unsafe {
        crate::trap::load_tss((*pc).id as usize, &raw const (*pc).tss);
        crate::arch::wrmsr(crate::arch::MSR_GS_BASE, pc as u64);
    }
    crate::trap::load_idt();
    let me = current();
    crate::events::enable_upcalls(me);
    // Report in first, then do the slow part (each MSR read is a VM exit).
    me.online_tsc.store(crate::arch::rdtsc(), Ordering::Release);
    me.online.store(true, Ordering::Release);
    notify_bsp();
    read_details(me);
    notify_bsp();
    match crate::hypercall::get() {
        Some(x) => worker_loop(&x, me),
        None => crate::arch::halt_forever(),
    }
}

/// An AP's life after start-up: with interrupts off, sleep in `SCHEDOP_poll` on its IPI port
/// (race-free: Xen checks the port's pending bit after marking the vCPU blocked), run the work
/// it is sent in thread context, answer, sleep again. Upcalls only run inside work that enables
/// interrupts (the timer probe).
///
/// Every sleep has a deadline: vCPU 1 is the boot watchdog and looks every
/// [`crate::watchdog::TICK_NS`] while a boot phase is watched; otherwise an AP wakes at least
/// once a second. (An AP that slept without a timeout left its physical CPU with nothing of
/// dom0's to schedule; see `watchdog` and the README's note on Xen 4.17 for what that hid.)
fn worker_loop(x: &dyn Hypercall, me: &PerCpu) -> ! {
    crate::arch::cli();
    let port = me.ipi_port.load(Ordering::Acquire);
    let Some((w, bit)) = port_word_bit(port) else {
        crate::arch::halt_forever()
    };
    let watchdog = me.id == 1;
    loop {
        crate::events::clear_pending(w, bit);
        run_pending_work(me);
        let now = crate::events::system_time_ns();
        let watching = watchdog && crate::watchdog::watching();
        if watching {
            crate::watchdog::tick(x, now, me.id);
        }
        let sleep = if watching {
            crate::watchdog::TICK_NS
        } else {
            AP_IDLE_POLL_NS
        };
        if ops::sched_poll(x, &[EvtchnPort(port)], now + sleep).is_err() {
            let _ = ops::sched_yield(x);
        }
    }
}

/// The longest an idle AP sleeps before it looks again (work is always announced on its IPI
/// port; this only bounds the wait).
const AP_IDLE_POLL_NS: u64 = 1_000_000_000;

fn run_pending_work(me: &PerCpu) {
    let f = me.work_fn.swap(0, Ordering::AcqRel);
    if f == 0 {
        return;
    }
    me.ipis.fetch_add(1, Ordering::Relaxed);
    // SAFETY: only `run_on` stores here, and it stores a `WorkFn` cast to u64.
    let work: WorkFn = unsafe { core::mem::transmute::<usize, WorkFn>(f as usize) };
    let r = work(me.work_arg.load(Ordering::Acquire));
    me.work_result.store(r, Ordering::Release);
    me.work_done.fetch_add(1, Ordering::AcqRel);
    notify_bsp();
}

/// Wake the boot CPU (it sleeps in `SCHEDOP_poll` on its IPI port while it waits for APs).
fn notify_bsp() {
    if let (Some(x), Some(bsp)) = (crate::hypercall::get(), crate::percpu::cpu(0)) {
        let _ = ops::evtchn_send(&x, EvtchnPort(bsp.ipi_port.load(Ordering::Acquire)));
    }
}

/// Called by the upcall when this vCPU's IPI port fired (the boot CPU's port: APs answering,
/// APs reporting in). APs take their own IPIs in [`worker_loop`].
pub fn on_ipi(me: &PerCpu) {
    me.ipis.fetch_add(1, Ordering::Relaxed);
    run_pending_work(me);
}

/// What happened when the APs were started.
#[derive(Debug, Default)]
pub struct SmpResult {
    pub started: u32,
    pub failed: Vec<String>,
    pub first_up_tsc: u64,
    pub last_online_tsc: u64,
}

const AP_STACK: usize = 32 * 1024;
const AP_IST: usize = 8 * 1024;

fn leak_stack(size: usize) -> Option<u64> {
    let layout = core::alloc::Layout::from_size_align(size, 16).ok()?;
    // SAFETY: a non-zero-sized layout; the memory is never freed (a vCPU stack for ever).
    let p = unsafe { alloc::alloc::alloc(layout) };
    (!p.is_null()).then(|| p as u64 + size as u64)
}

/// Bind this vCPU's (BSP's) IPI port.
pub fn bind_bsp_ipi(x: &dyn Hypercall) -> Result<(), XenError> {
    crate::events::set_ipi_hook(on_ipi);
    let p = ops::bind_ipi(x, 0)?;
    ops::evtchn_unmask(x, p)?;
    if let Some(bsp) = crate::percpu::cpu(0) {
        bsp.ipi_port.store(p.0, Ordering::Release);
    }
    Ok(())
}

/// Prepare vCPUs `1..n` (stacks, per-CPU blocks, event channels, `VCPUOP_initialise`), then
/// start them all back to back with `VCPUOP_up` and wait (bounded) for each to report in.
pub fn start_aps(x: &dyn Hypercall, n: u32, shared_info: u64) -> SmpResult {
    let mut res = SmpResult::default();
    let n = n.min(MAX_CPUS as u32);
    let cr3 = crate::arch::read_cr3();
    let mut ready: Vec<u32> = Vec::new();
    for id in 1..n {
        match prepare(x, id, shared_info, cr3) {
            Ok(()) => ready.push(id),
            Err(e) => res.failed.push(format!("vCPU {id}: {e}")),
        }
    }
    let mut started: Vec<u32> = Vec::new();
    res.first_up_tsc = crate::arch::rdtsc();
    for id in ready {
        match ops::vcpu_up(x, id) {
            Ok(()) => started.push(id),
            Err(e) => res.failed.push(format!("vCPU {id}: VCPUOP_up: {e}")),
        }
    }
    // Wait up to 2 s (TSC) for every started vCPU to report in, and then for its MTRRs. Each
    // AP notifies our IPI port at both steps; we sleep in SCHEDOP_poll on it with interrupts
    // off (consuming its pending bit ourselves), so this vCPU leaves its pCPU to the others.
    let t0 = crate::arch::rdtsc();
    let pending = |f: fn(&PerCpu) -> bool| {
        started
            .iter()
            .filter(|&&id| crate::percpu::cpu(id as usize).is_some_and(|c| !f(c)))
            .count()
    };
    let my_port = current().ipi_port.load(Ordering::Acquire);
    let was_on = crate::arch::interrupts_enabled();
    crate::arch::cli();
    loop {
        if let Some((w, bit)) = port_word_bit(my_port) {
            crate::events::clear_pending(w, bit);
        }
        if pending(|c| c.online.load(Ordering::Acquire) && c.details_ready.load(Ordering::Acquire))
            == 0
        {
            break;
        }
        if crate::time::ticks_to_ns(crate::arch::rdtsc() - t0) > 2_000_000_000 {
            for &id in &started {
                if crate::percpu::cpu(id as usize)
                    .is_some_and(|c| !c.online.load(Ordering::Acquire))
                {
                    res.failed.push(format!(
                        "vCPU {id}: started but did not report in within 2 s"
                    ));
                }
            }
            break;
        }
        let deadline = crate::events::system_time_ns() + 50_000_000;
        if ops::sched_poll(x, &[EvtchnPort(my_port)], deadline).is_err() {
            let _ = ops::sched_yield(x);
        }
    }
    if was_on {
        crate::arch::sti();
    }
    for &id in &started {
        if let Some(c) =
            crate::percpu::cpu(id as usize).filter(|c| c.online.load(Ordering::Acquire))
        {
            res.started += 1;
            res.last_online_tsc = res
                .last_online_tsc
                .max(c.online_tsc.load(Ordering::Acquire));
        }
    }
    res
}

fn prepare(x: &dyn Hypercall, id: u32, shared_info: u64, cr3: u64) -> Result<(), String> {
    let stack = leak_stack(AP_STACK).ok_or("no memory for its stack")?;
    let (df, nmi, mc) = (
        leak_stack(AP_IST).ok_or("no memory for its IST stacks")?,
        leak_stack(AP_IST).ok_or("no memory for its IST stacks")?,
        leak_stack(AP_IST).ok_or("no memory for its IST stacks")?,
    );
    let vcpu_info = if (id as usize) < layout::LEGACY_MAX_VCPUS {
        shared_info + (layout::VCPU_INFO + id as usize * layout::VCPU_INFO_SIZE) as u64
    } else {
        // Xen 4.17 refuses VCPUOP_initialise for ids >= 32 until their vcpu_info is placed.
        let area: Box<VcpuInfoArea> = Box::new(VcpuInfoArea([0; 64]));
        let addr = Box::leak(area) as *mut VcpuInfoArea as u64;
        ops::register_vcpu_info(x, id, addr)
            .map_err(|e| format!("VCPUOP_register_vcpu_info: {e}"))?;
        addr
    };
    let pc = install(Box::leak(Box::new(PerCpu::new(
        id,
        vcpu_info,
        tss_with_ist(df, nmi, mc),
    ))));
    let t = ops::bind_virq(x, ops::VIRQ_TIMER, id).map_err(|e| format!("bind VIRQ_TIMER: {e}"))?;
    pc.timer_port.store(t.0, Ordering::Release);
    let i = ops::bind_ipi(x, id).map_err(|e| format!("EVTCHNOP_bind_ipi: {e}"))?;
    pc.ipi_port.store(i.0, Ordering::Release);
    for p in [t, i] {
        ops::evtchn_unmask(x, p).map_err(|e| format!("EVTCHNOP_unmask: {e}"))?;
    }
    let ctx = VcpuContext64::long_mode(
        ap_start64 as *const () as u64,
        stack,
        cr3,
        pc as *const PerCpu as u64,
    );
    ops::vcpu_initialise(x, id, &ctx).map_err(|e| format!("VCPUOP_initialise: {e}"))?;
    Ok(())
}

#[repr(C, align(64))]
struct VcpuInfoArea([u8; 64]);

/// Run `f(arg)` on vCPU `id` and wait (bounded, 1 s) for its answer. Returns the result and the
/// round-trip time in TSC ticks. Call on the boot CPU.
pub fn run_on(x: &dyn Hypercall, id: usize, f: WorkFn, arg: u64) -> Result<(u64, u64), String> {
    let target = crate::percpu::cpu(id)
        .filter(|c| c.online.load(Ordering::Acquire))
        .ok_or("vCPU not online")?;
    let me = current();
    let my_port = me.ipi_port.load(Ordering::Acquire);
    let (w, bit) = port_word_bit(my_port).ok_or("no IPI port on this vCPU")?;
    let before = target.work_done.load(Ordering::Acquire);
    let was_on = crate::arch::interrupts_enabled();
    crate::arch::cli();
    target.work_arg.store(arg, Ordering::Release);
    target
        .work_fn
        .store(f as *const () as u64, Ordering::Release);
    let t0 = crate::arch::rdtsc();
    let r = (|| {
        ops::evtchn_send(x, EvtchnPort(target.ipi_port.load(Ordering::Acquire)))
            .map_err(|e| format!("EVTCHNOP_send: {e}"))?;
        loop {
            // Consume our own IPI port's pending bit ourselves (interrupts are off), then look:
            // the target updates work_done before it notifies us, so nothing is missed.
            crate::events::clear_pending(w, bit);
            if target.work_done.load(Ordering::Acquire) != before {
                return Ok((
                    target.work_result.load(Ordering::Acquire),
                    crate::arch::rdtsc() - t0,
                ));
            }
            if crate::time::ticks_to_ns(crate::arch::rdtsc() - t0) > 1_000_000_000 {
                return Err(String::from("no answer within 1 s"));
            }
            let deadline = crate::events::system_time_ns() + 100_000_000;
            ops::sched_poll(x, &[EvtchnPort(my_port)], deadline)
                .map_err(|e| format!("SCHEDOP_poll: {e}"))?;
        }
    })();
    if was_on {
        crate::arch::sti();
    }
    r
}
