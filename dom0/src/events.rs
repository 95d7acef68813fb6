//! Event channels: the shared_info page, the upcall vector, and VIRQ_TIMER.
//!
//! Xen delivers events as IDT vector [`UPCALL_VECTOR`] (`HVM_PARAM_CALLBACK_IRQ`, vector type,
//! needs `XENFEAT_hvm_callback_vector`; no LAPIC EOI is needed for this delivery type). The
//! handler uses the 2-level ABI: clear `evtchn_upcall_pending`, take `evtchn_pending_sel`, then
//! clear and handle each pending, unmasked port.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use xen::events::{VcpuTimeInfo, for_each_pending, layout, port_word_bit};
use xen::ops::{self, EvtchnPort};
use xen::{Hypercall, XenError};

use crate::arch::UPCALL_VECTOR;
use crate::percpu::PerCpu;

#[repr(C, align(4096))]
struct SharedPage(UnsafeCell<[u8; 4096]>);

// SAFETY: after XENMEM_add_to_physmap this page *is* Xen's shared_info; it is only accessed
// through atomics (below), which is how both sides share it.
unsafe impl Sync for SharedPage {}

static SHARED: SharedPage = SharedPage(UnsafeCell::new([0; 4096]));

fn a32(off: usize) -> &'static AtomicU32 {
    assert!(off + 4 <= 4096 && off.is_multiple_of(4));
    // SAFETY: in bounds, 4-byte aligned (the page is 4096-aligned), static, atomic-only access.
    unsafe { AtomicU32::from_ptr(SHARED.0.get().cast::<u8>().add(off).cast()) }
}

fn a64(off: usize) -> &'static AtomicU64 {
    assert!(off + 8 <= 4096 && off.is_multiple_of(8));
    // SAFETY: in bounds, 8-byte aligned, static, atomic-only access.
    unsafe { AtomicU64::from_ptr(SHARED.0.get().cast::<u8>().add(off).cast()) }
}

const VCPU0: usize = layout::VCPU_INFO;

/// Guest-physical address of the shared_info page (also where vCPU 0..31's `vcpu_info` are).
pub fn shared_info_addr() -> u64 {
    SHARED.0.get() as u64
}

/// A byte of a vCPU's `vcpu_info`.
fn vi8(cpu: &PerCpu, off: usize) -> &'static AtomicU8 {
    assert!(off < layout::VCPU_INFO_SIZE && cpu.vcpu_info != 0);
    // SAFETY: `vcpu_info` is the address of a live, 64-byte, 64-aligned area shared with Xen
    // (a shared_info slot or a registered area, leaked for ever); `off` is inside it.
    unsafe { AtomicU8::from_ptr((cpu.vcpu_info + off as u64) as *mut u8) }
}

/// A quadword of a vCPU's `vcpu_info`.
fn vi64(cpu: &PerCpu, off: usize) -> &'static AtomicU64 {
    assert!(off + 8 <= layout::VCPU_INFO_SIZE && off.is_multiple_of(8) && cpu.vcpu_info != 0);
    // SAFETY: as in `vi8`; the area is 64-aligned, so `off` (a multiple of 8) is aligned.
    unsafe { AtomicU64::from_ptr((cpu.vcpu_info + off as u64) as *mut u64) }
}

/// Per-port handlers for everything that is not a vCPU's timer or IPI port (interdomain
/// channels: backends, xenstore, consoles). Stored as fn addresses; 0 = none.
const HANDLED_PORTS: usize = 1024;
static HANDLERS: [AtomicU64; HANDLED_PORTS] = [const { AtomicU64::new(0) }; HANDLED_PORTS];

/// Call `f(port)` from the upcall whenever `port` fires (on whichever vCPU it is bound to).
pub fn register(port: EvtchnPort, f: fn(u32)) -> bool {
    match HANDLERS.get(port.0 as usize) {
        Some(slot) => {
            slot.store(f as *const () as u64, Ordering::Release);
            true
        }
        None => false,
    }
}

static UPCALLS: AtomicU64 = AtomicU64::new(0);
static OTHER_EVENTS: AtomicU64 = AtomicU64::new(0);
static SPURIOUS: AtomicU64 = AtomicU64::new(0);

/// Map shared_info, route events to the upcall vector and bind VIRQ_TIMER on vCPU 0.
pub fn init(x: &dyn Hypercall) -> Result<EvtchnPort, (&'static str, XenError)> {
    let gfn = SHARED.0.get() as u64 >> 12;
    ops::map_shared_info(x, gfn).map_err(|e| ("XENMEM_add_to_physmap(shared_info)", e))?;
    ops::hvm_set_param(
        x,
        ops::HVM_PARAM_CALLBACK_IRQ,
        ops::callback_via_vector(UPCALL_VECTOR),
    )
    .map_err(|e| ("HVMOP_set_param(CALLBACK_IRQ)", e))?;
    let port =
        ops::bind_virq(x, ops::VIRQ_TIMER, 0).map_err(|e| ("EVTCHNOP_bind_virq(TIMER)", e))?;
    let bsp = crate::percpu::current();
    bsp.timer_port.store(port.0, Ordering::Release);
    ops::evtchn_unmask(x, port).map_err(|e| ("EVTCHNOP_unmask", e))?;
    enable_upcalls(bsp);
    Ok(port)
}

/// Let Xen raise upcalls on this vCPU (`evtchn_upcall_mask` = 0).
pub fn enable_upcalls(me: &PerCpu) {
    if me.vcpu_info != 0 {
        vi8(me, layout::UPCALL_MASK).store(0, Ordering::Release);
    }
}

/// Clear a pending bit of the 2-level bitmap (for a consumer that runs with interrupts off).
pub fn clear_pending(word: usize, bit: u64) {
    a64(layout::EVTCHN_PENDING + 8 * word).fetch_and(!bit, Ordering::AcqRel);
}

/// Mask a port in the 2-level bitmap: it still becomes pending and wakes `SCHEDOP_poll`, but
/// raises no upcall (the DomU service loop polls its ports with interrupts off).
pub fn mask(port: EvtchnPort) {
    if let Some((w, bit)) = port_word_bit(port.0) {
        a64(layout::EVTCHN_MASK + 8 * w).fetch_or(bit, Ordering::AcqRel);
    }
}

/// Clear a port's pending bit; true if it was set.
pub fn take_pending(port: EvtchnPort) -> bool {
    match port_word_bit(port.0) {
        Some((w, bit)) => {
            a64(layout::EVTCHN_PENDING + 8 * w).fetch_and(!bit, Ordering::AcqRel) & bit != 0
        }
        None => false,
    }
}

/// What the upcall runs for the boot CPU's VIRQ_TIMER (the watchdog's checker) and for a
/// vCPU's IPI port (`smp`'s work mailbox). Set once by those modules, so that `events` calls up
/// into neither and the interrupt-side modules import each other without a cycle.
static BSP_TIMER_HOOK: spin::Once<fn()> = spin::Once::new();
static IPI_HOOK: spin::Once<fn(&PerCpu)> = spin::Once::new();

/// Run `f` on every VIRQ_TIMER event of the boot CPU (first call wins).
pub fn set_bsp_timer_hook(f: fn()) {
    BSP_TIMER_HOOK.call_once(|| f);
}

/// Run `f` on every event of a vCPU's IPI port (first call wins).
pub fn set_ipi_hook(f: fn(&PerCpu)) {
    IPI_HOOK.call_once(|| f);
}

/// The upcall on the current vCPU (interrupts are off: interrupt gate).
pub fn upcall() {
    let me = crate::percpu::current();
    UPCALLS.fetch_add(1, Ordering::Relaxed);
    if me.vcpu_info == 0 {
        return;
    }
    vi8(me, layout::UPCALL_PENDING).store(0, Ordering::SeqCst);
    loop {
        let sel = vi64(me, layout::PENDING_SEL).swap(0, Ordering::AcqRel);
        if sel == 0 {
            break;
        }
        let mut pending = [0u64; 64];
        let mut mask = [0u64; 64];
        for w in 0..64 {
            pending[w] = a64(layout::EVTCHN_PENDING + 8 * w).load(Ordering::Acquire);
            mask[w] = a64(layout::EVTCHN_MASK + 8 * w).load(Ordering::Acquire);
        }
        for_each_pending(sel, &pending, &mask, |port| {
            if let Some((w, bit)) = port_word_bit(port) {
                clear_pending(w, bit);
            }
            if port == me.timer_port.load(Ordering::Relaxed) {
                me.timer_events.fetch_add(1, Ordering::AcqRel);
                if me.id == 0
                    && let Some(f) = BSP_TIMER_HOOK.get()
                {
                    f();
                }
            } else if port == me.ipi_port.load(Ordering::Relaxed) {
                if let Some(f) = IPI_HOOK.get() {
                    f(me);
                }
            } else {
                let h = HANDLERS
                    .get(port as usize)
                    .map_or(0, |s| s.load(Ordering::Acquire));
                if h == 0 {
                    OTHER_EVENTS.fetch_add(1, Ordering::Relaxed);
                } else {
                    // SAFETY: only `register` stores here, and it stores an `fn(u32)`.
                    let f: fn(u32) = unsafe { core::mem::transmute::<usize, fn(u32)>(h as usize) };
                    f(port);
                }
            }
        });
    }
}

/// An interrupt on a vector nobody asked for: counted, reported, ignored.
pub fn note_spurious(_vector: u8) {
    SPURIOUS.fetch_add(1, Ordering::Relaxed);
}

/// Xen system time (ns) from vCPU 0's pvclock record.
pub fn system_time_ns() -> u64 {
    let t = time_info();
    t.system_time_at(crate::arch::rdtsc())
}

/// A consistent copy of vCPU 0's `vcpu_time_info` (retry while Xen updates it: odd version).
pub fn time_info() -> VcpuTimeInfo {
    let base = VCPU0 + layout::TIME;
    for _ in 0..1000 {
        let v1 = a32(base).load(Ordering::Acquire);
        let mut b = [0u8; 32];
        for (i, chunk) in b.chunks_exact_mut(4).enumerate() {
            chunk.copy_from_slice(&a32(base + 4 * i).load(Ordering::Acquire).to_le_bytes());
        }
        let v2 = a32(base).load(Ordering::Acquire);
        if v1 == v2 && v1 & 1 == 0 {
            return VcpuTimeInfo::from_bytes(&b);
        }
    }
    VcpuTimeInfo::default()
}

/// Outcome of arming the one-shot timer and sleeping until VIRQ_TIMER arrives.
#[derive(Debug)]
pub struct TimerCheck {
    pub requested_ns: u64,
    pub delivered_ns: u64,
    pub polls: u32,
}

/// Arm the timer `delay_ns` ahead, sleep in `SCHEDOP_poll` on the timer port until Xen raises
/// VIRQ_TIMER, then let the upcall take it.
///
/// Interrupts stay off while polling so the port's pending bit is still set when Xen checks it;
/// `sti; SCHEDOP_block` would race: an upcall landing between the two consumes the one-shot
/// event and the block then sleeps forever.
pub fn timer_check(
    x: &dyn Hypercall,
    delay_ns: u64,
) -> Result<TimerCheck, (&'static str, XenError)> {
    let me = crate::percpu::current();
    let port = EvtchnPort(me.timer_port.load(Ordering::Acquire));
    let (w, bit) = port_word_bit(port.0).ok_or(("VIRQ_TIMER port", XenError::EINVAL))?;
    let before = me.timer_events.load(Ordering::Acquire);
    let was_on = crate::arch::interrupts_enabled();
    crate::arch::cli();
    let start = system_time_ns();
    let deadline = start + delay_ns;
    ops::set_timer(x, deadline).map_err(|e| ("set_timer_op", e))?;
    let mut polls = 0u32;
    let tsc0 = crate::arch::rdtsc();
    while a64(layout::EVTCHN_PENDING + 8 * w).load(Ordering::Acquire) & bit == 0 {
        // Bounded by the TSC (not by Xen time, which is part of what is tested).
        if crate::time::ticks_to_ns(crate::arch::rdtsc() - tsc0) > 1_000_000_000 {
            if was_on {
                crate::arch::sti();
            }
            return Err(("VIRQ_TIMER not pending within 1 s", XenError::EAGAIN));
        }
        ops::sched_poll(x, &[port], deadline + 1_000_000_000).map_err(|e| ("SCHEDOP_poll", e))?;
        polls += 1;
    }
    let fired_at = system_time_ns();
    crate::arch::sti();
    // The upcall is injected as soon as interrupts are on; give it a bounded moment.
    let tsc1 = crate::arch::rdtsc();
    while me.timer_events.load(Ordering::Acquire) == before {
        if crate::time::ticks_to_ns(crate::arch::rdtsc() - tsc1) > 100_000_000 {
            return Err((
                "VIRQ_TIMER pending but no upcall within 100 ms",
                XenError::EAGAIN,
            ));
        }
        core::hint::spin_loop();
    }
    if !was_on {
        crate::arch::cli();
    }
    Ok(TimerCheck {
        requested_ns: delay_ns,
        delivered_ns: fired_at.saturating_sub(start),
        polls,
    })
}

static LOOPBACK_EVENTS: AtomicU64 = AtomicU64::new(0);

fn loopback_handler(_port: u32) {
    LOOPBACK_EVENTS.fetch_add(1, Ordering::AcqRel);
}

/// Item 2 of the toolstack, proven on dom0 itself: allocate an unbound port, bind the other end
/// of it with EVTCHNOP_bind_interdomain (dom0 to dom0), unmask both, send on one end and check
/// the upcall dispatched the event to the handler registered for the other end.
pub fn interdomain_loopback(
    x: &dyn Hypercall,
) -> Result<(EvtchnPort, EvtchnPort), (&'static str, XenError)> {
    let a = ops::alloc_unbound(x, ops::DOMID_SELF, 0).map_err(|e| ("EVTCHNOP_alloc_unbound", e))?;
    let b = ops::bind_interdomain(x, 0, a).map_err(|e| ("EVTCHNOP_bind_interdomain", e))?;
    register(a, loopback_handler);
    for p in [a, b] {
        ops::evtchn_unmask(x, p).map_err(|e| ("EVTCHNOP_unmask", e))?;
    }
    let (w, bit) = port_word_bit(a.0).ok_or(("port number", XenError::EINVAL))?;
    let before = LOOPBACK_EVENTS.load(Ordering::Acquire);
    let was_on = crate::arch::interrupts_enabled();
    crate::arch::cli();
    ops::evtchn_send(x, b).map_err(|e| ("EVTCHNOP_send", e))?;
    let t0 = crate::arch::rdtsc();
    while a64(layout::EVTCHN_PENDING + 8 * w).load(Ordering::Acquire) & bit == 0 {
        if crate::time::ticks_to_ns(crate::arch::rdtsc() - t0) > 1_000_000_000 {
            return Err(("the event never became pending", XenError::EAGAIN));
        }
        let deadline = system_time_ns() + 100_000_000;
        ops::sched_poll(x, &[a], deadline).map_err(|e| ("SCHEDOP_poll", e))?;
    }
    crate::arch::sti();
    let t1 = crate::arch::rdtsc();
    while LOOPBACK_EVENTS.load(Ordering::Acquire) == before {
        if crate::time::ticks_to_ns(crate::arch::rdtsc() - t1) > 100_000_000 {
            return Err((
                "pending but not dispatched to its handler",
                XenError::EAGAIN,
            ));
        }
        core::hint::spin_loop();
    }
    if !was_on {
        crate::arch::cli();
    }
    Ok((a, b))
}

#[repr(C, align(4096))]
struct GrantPage(UnsafeCell<[u8; 4096]>);

// SAFETY: after XENMEM_add_to_physmap this page is dom0's grant table frame 0, shared with Xen;
// dom0 only writes grant entries through it (none yet) and never reads it as Rust data.
unsafe impl Sync for GrantPage {}

static GRANT_FRAME0: GrantPage = GrantPage(UnsafeCell::new([0; 4096]));

/// Map frame 0 of dom0's grant table into a page of dom0's own; (frames, max frames, address).
pub fn map_grant_table(x: &dyn Hypercall) -> Result<(u32, u32, u64), (&'static str, XenError)> {
    let (n, max) =
        ops::gnttab_query_size(x, ops::DOMID_SELF).map_err(|e| ("GNTTABOP_query_size", e))?;
    let addr = GRANT_FRAME0.0.get() as u64;
    ops::map_grant_table_frame(x, 0, addr >> 12)
        .map_err(|e| ("XENMEM_add_to_physmap(grant_table)", e))?;
    Ok((n, max, addr))
}

/// Counters for the report: (upcalls, timer events, other events, spurious vectors).
pub fn counters() -> (u64, u64, u64, u64) {
    (
        UPCALLS.load(Ordering::Relaxed),
        crate::percpu::cpu(0).map_or(0, |c| c.timer_events.load(Ordering::Relaxed)),
        OTHER_EVENTS.load(Ordering::Relaxed),
        SPURIOUS.load(Ordering::Relaxed),
    )
}

/// Idle forever: serve events, sleeping in `SCHEDOP_block` between them. All work happens in
/// the upcall, so a wakeup that lands just before the block costs nothing: the loop has nothing
/// to do but sleep again. (Xen's `do_block()` returns at once while an upcall is deliverable.)
pub fn idle(x: &dyn Hypercall) -> ! {
    crate::arch::sti();
    loop {
        if ops::sched_block(x).is_err() {
            // Not expected; don't spin hot if Xen refuses.
            let _ = ops::sched_yield(x);
        }
    }
}
