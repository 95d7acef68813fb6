//! The boot watchdog: never a silent hang.
//!
//! The boot CPU marks the phase it is in ([`begin`]) and bumps a progress counter at each step
//! that can block inside Xen (every PCI config access goes through [`config_access`], which also
//! records the SBDF, register and value). A checker ([`tick`]) runs on an AP's worker loop, which
//! never sleeps longer than [`TICK_NS`] while a phase is watched; with one vCPU it runs from the
//! boot CPU's own VIRQ_TIMER (interrupts are on during watched phases then). When the counter
//! has not moved for [`STALL_NS`], it prints which phase and what the boot CPU is doing, asks Xen
//! what the boot vCPU's scheduler state is (`VCPUOP_get_runstate_info`), flushes the buffered
//! boot log, records the stall for the report, and keeps watching (next report after twice the
//! time). When progress resumes it records for how long the boot CPU was stuck.
//!
//! After ready, the DomU service loop is watched the same way ([`Phase::Domus`]) when an AP
//! watches: the loop counts each wakeup as progress ([`progress`]); since it may sleep in
//! `SCHEDOP_poll` for up to a second by design, a stall there is only reported after
//! [`DOMUS_STALL_NS`], and vCPU 0 is re-placed only when Xen says it is *runnable* without
//! running (never while it sleeps).
//!
//! The checker may run while the boot CPU is stopped anywhere (inside the allocator, holding the
//! console lock): it never allocates and only ever `try_lock`s.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use xen::Hypercall;
use xen::ops::{self, RunState};

/// How often the checker looks while a phase is watched.
pub const TICK_NS: u64 = 100_000_000;
/// No progress for this long is a stall (a whole boot takes ~0.2 s on the emulated bench, one
/// config access well under 1 ms; a stalled access is reported again at 2x, 4x, ...).
pub const STALL_NS: u64 = 1_000_000_000;
/// The DomU service loop wakes at least every `toolstack::service::MAX_SLEEP_NS` (1 s): three
/// of those without a wakeup is a stall.
pub const DOMUS_STALL_NS: u64 = 3 * toolstack::service::MAX_SLEEP_NS;

/// The boot phases the watchdog knows by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    Idle = 0,
    Smp,
    Cpu,
    Acpi,
    Pci,
    Modules,
    /// The DomU service loop (after ready).
    Domus,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Idle => "none",
            Phase::Smp => "smp",
            Phase::Cpu => "cpu",
            Phase::Acpi => "acpi",
            Phase::Pci => "pci",
            Phase::Modules => "modules",
            Phase::Domus => "domus",
        }
    }

    /// No progress for this long in the phase is a stall.
    fn stall_ns(self) -> u64 {
        match self {
            Phase::Domus => DOMUS_STALL_NS,
            _ => STALL_NS,
        }
    }

    fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Smp,
            2 => Phase::Cpu,
            3 => Phase::Acpi,
            4 => Phase::Pci,
            5 => Phase::Modules,
            6 => Phase::Domus,
            _ => Phase::Idle,
        }
    }
}

/// What the boot CPU was last doing inside the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Activity {
    None = 0,
    ConfigRead,
    ConfigWrite,
    XenPciAdd,
}

static PHASE: AtomicU8 = AtomicU8::new(0);
static PROGRESS: AtomicU64 = AtomicU64::new(0);
static ACT_KIND: AtomicU8 = AtomicU8::new(0);
static ACT_SBDF: AtomicU32 = AtomicU32::new(0);
static ACT_OFFSET: AtomicU16 = AtomicU16::new(0);
static ACT_VALUE: AtomicU32 = AtomicU32::new(0);
/// The boot CPU's VIRQ_TIMER drives the checker (no AP does).
static ON_BSP_TIMER: AtomicBool = AtomicBool::new(false);
/// vCPU 1's worker loop drives the checker.
static AP_WATCHES: AtomicBool = AtomicBool::new(false);

/// Enter a watched phase.
pub fn begin(p: Phase) {
    ACT_KIND.store(Activity::None as u8, Ordering::Relaxed);
    PHASE.store(p as u8, Ordering::Release);
    PROGRESS.fetch_add(1, Ordering::AcqRel);
}

/// One step of a watched loop (the DomU service loop's wakeups).
pub fn progress() {
    PROGRESS.fetch_add(1, Ordering::AcqRel);
}

/// Whether an AP's worker loop runs the checker (so [`Phase::Domus`] can be watched).
pub fn ap_watches() -> bool {
    AP_WATCHES.load(Ordering::Acquire)
}

/// Leave watched phases (dom0 is ready, or the DomU service loop ended).
pub fn end() {
    PHASE.store(Phase::Idle as u8, Ordering::Release);
    PROGRESS.fetch_add(1, Ordering::AcqRel);
    if ON_BSP_TIMER.swap(false, Ordering::AcqRel) {
        crate::arch::cli();
    }
}

/// Whether a phase is being watched (an AP's worker then polls with [`TICK_NS`]).
pub fn watching() -> bool {
    PHASE.load(Ordering::Acquire) != Phase::Idle as u8
}

/// Record what the boot CPU is about to do, and count it as progress.
pub fn activity(kind: Activity, sbdf: u32, offset: u16, value: u32) {
    ACT_KIND.store(kind as u8, Ordering::Relaxed);
    ACT_SBDF.store(sbdf, Ordering::Relaxed);
    ACT_OFFSET.store(offset, Ordering::Relaxed);
    ACT_VALUE.store(value, Ordering::Relaxed);
    PROGRESS.fetch_add(1, Ordering::AcqRel);
}

/// A PCI config access by the boot path (see `pcicfg`).
pub fn config_access(write: bool, sbdf: pci::Sbdf, offset: u16, value: u32) {
    let kind = if write {
        Activity::ConfigWrite
    } else {
        Activity::ConfigRead
    };
    activity(
        kind,
        u32::from(sbdf.segment()) << 16 | u32::from(sbdf.bdf()),
        offset,
        value,
    );
}

/// After this long without progress the watching AP asks Xen what vCPU 0 is doing.
pub const NUDGE_AFTER_NS: u64 = TICK_NS;
/// The domctl interface version (0: unknown, no nudging).
static DOMCTL_VERSION: AtomicU32 = AtomicU32::new(0);
static NUDGES: AtomicU32 = AtomicU32::new(0);
static NUDGE_FAILED: AtomicU32 = AtomicU32::new(0);
static LONGEST_STRANDED_NS: AtomicU64 = AtomicU64::new(0);

/// Let the watchdog re-place a stranded boot vCPU (needs the domctl interface version).
pub fn set_domctl_version(v: xen::domctl::DomctlVersion) {
    DOMCTL_VERSION.store(v.0, Ordering::Release);
}

/// Xen 4.17's credit2 can leave vCPU 0 *runnable* on its run queue with every physical CPU
/// idle: after a long busy stretch (the PCI survey, each config access a VM exit) its credit
/// sits at the floor (`CSCHED2_CREDIT_MIN`); when vPCI's deferred BAR (un)map preempts it
/// (`vpci_process_pending()` → -ERESTART, `hvm_do_resume()` raises SCHEDULE_SOFTIRQ), it is
/// queued and the CPU tickled for it is not its own; that CPU refuses it
/// (`runq_candidate()`: `snext->credit + CSCHED2_MIGRATE_RESIST > svc->credit`, the idle
/// unit's credit being `CSCHED2_CREDIT_MIN - 1`) and its own CPU, not tickled, stays idle.
/// Nothing schedules it until an unrelated interrupt makes its CPU run the scheduler.
///
/// Setting vCPU 0's hard affinity (unchanged: every CPU) makes Xen migrate it
/// (`vcpu_set_affinity()` → `_VPF_migrating`): it is taken off the queue and placed again on a
/// CPU that is told to schedule, which takes it. `xl vcpu-pin` does the same from a Linux dom0.
fn nudge_if_stranded(x: &dyn Hypercall, now_ns: u64) {
    let v = DOMCTL_VERSION.load(Ordering::Acquire);
    if v == 0 {
        return;
    }
    let Ok(r) = ops::vcpu_runstate(x, 0) else {
        return;
    };
    let stranded = now_ns.saturating_sub(r.state_entry_ns);
    if r.state != RunState::Runnable || stranded < TICK_NS / 2 {
        return;
    }
    LONGEST_STRANDED_NS.fetch_max(stranded, Ordering::Relaxed);
    let mut all = [0xffu8; 32];
    match xen::domctl::set_vcpu_affinity(x, xen::domctl::DomctlVersion(v), 0, 0, &mut all) {
        Ok(()) => NUDGES.fetch_add(1, Ordering::Relaxed),
        Err(_) => NUDGE_FAILED.fetch_add(1, Ordering::Relaxed),
    };
}

/// (re-placements done, re-placements Xen refused, longest time vCPU 0 sat runnable, ns) since
/// the last call; taken, so each is reported once.
pub fn nudges() -> (u32, u32, u64) {
    (
        NUDGES.swap(0, Ordering::Relaxed),
        NUDGE_FAILED.swap(0, Ordering::Relaxed),
        LONGEST_STRANDED_NS.swap(0, Ordering::Relaxed),
    )
}

/// One stall, as the checker saw it.
#[derive(Debug, Clone, Copy)]
pub struct Stall {
    pub phase: Phase,
    pub activity: Activity,
    pub sbdf: u32,
    pub offset: u16,
    pub value: u32,
    /// How long no progress had been made when it was reported (ns).
    pub stalled_ns: u64,
    /// vCPU 0's scheduler state then, and since when (ns), as Xen reports it.
    pub vcpu0: Option<(RunState, u64)>,
    /// Which vCPU noticed.
    pub noticed_by: u32,
    /// Set when progress resumed: the whole length of the stall (ns).
    pub resolved_after_ns: Option<u64>,
}

const MAX_STALLS: usize = 16;

struct Checker {
    last_progress: u64,
    since_ns: u64,
    next_report_ns: u64,
    /// Index into `stalls` of the stall being watched, if reported.
    open: Option<usize>,
    stalls: [Option<Stall>; MAX_STALLS],
    dropped: u32,
}

static CHECKER: spin::Mutex<Checker> = spin::Mutex::new(Checker {
    last_progress: 0,
    since_ns: 0,
    next_report_ns: STALL_NS,
    open: None,
    stalls: [None; MAX_STALLS],
    dropped: 0,
});

/// Look once (called every [`TICK_NS`] or so by the vCPU that watches). `now_ns` is Xen system
/// time.
pub fn tick(x: &dyn Hypercall, now_ns: u64, me: u32) {
    let Some(mut c) = CHECKER.try_lock() else {
        return;
    };
    let progress = PROGRESS.load(Ordering::Acquire);
    let phase = Phase::from_u8(PHASE.load(Ordering::Acquire));
    if progress != c.last_progress || phase == Phase::Idle {
        let since = c.since_ns;
        if let Some(i) = c.open.take()
            && let Some(s) = c.stalls[i].as_mut()
        {
            let len = now_ns.saturating_sub(since);
            s.resolved_after_ns = Some(len);
            let mut line = Line::new();
            let _ = writeln!(
                line,
                "[dom0] WARN  watchdog: the {} phase moved again after {} ms without progress",
                s.phase.name(),
                len / 1_000_000
            );
            line.emit();
        }
        c.last_progress = progress;
        c.since_ns = now_ns;
        c.next_report_ns = phase.stall_ns();
        return;
    }
    let stalled = now_ns.saturating_sub(c.since_ns);
    if me != 0 && stalled >= NUDGE_AFTER_NS {
        nudge_if_stranded(x, now_ns);
    }
    if stalled < c.next_report_ns {
        return;
    }
    c.next_report_ns = c.next_report_ns.saturating_mul(2);
    let s = Stall {
        phase,
        activity: match ACT_KIND.load(Ordering::Relaxed) {
            1 => Activity::ConfigRead,
            2 => Activity::ConfigWrite,
            3 => Activity::XenPciAdd,
            _ => Activity::None,
        },
        sbdf: ACT_SBDF.load(Ordering::Relaxed),
        offset: ACT_OFFSET.load(Ordering::Relaxed),
        value: ACT_VALUE.load(Ordering::Relaxed),
        stalled_ns: stalled,
        vcpu0: if me != 0 {
            ops::vcpu_runstate(x, 0)
                .ok()
                .map(|r| (r.state, now_ns.saturating_sub(r.state_entry_ns)))
        } else {
            None
        },
        noticed_by: me,
        resolved_after_ns: None,
    };
    let mut line = Line::new();
    let _ = writeln!(line, "[dom0] ERROR watchdog: {}", Described(&s));
    // The boot log may be held in the buffer: out with it first, so the stall line comes last
    // and everything before it is on the console.
    crate::console::try_unbuffer();
    line.emit();
    match c.open {
        Some(i) => c.stalls[i] = Some(s),
        None => match c.stalls.iter().position(Option::is_none) {
            Some(i) => {
                c.stalls[i] = Some(s);
                c.open = Some(i);
            }
            None => c.dropped += 1,
        },
    }
}

/// Stalls seen since the last call (for the report), and how many did not fit; taken, so each
/// is reported once. Called by the boot CPU once a watched stretch is over, so a stall still
/// open has ended by now (`now_ns`).
pub fn stalls(now_ns: u64) -> ([Option<Stall>; MAX_STALLS], u32) {
    let mut c = CHECKER.lock();
    let since = c.since_ns;
    if let Some(i) = c.open.take()
        && let Some(s) = c.stalls[i].as_mut()
    {
        s.resolved_after_ns = Some(now_ns.saturating_sub(since));
    }
    let out = (c.stalls, c.dropped);
    c.stalls = [None; MAX_STALLS];
    c.dropped = 0;
    out
}

/// One-line description of a stall, as printed and reported.
pub struct Described<'a>(pub &'a Stall);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(
            f,
            "no progress in the {} phase for {} ms",
            s.phase.name(),
            s.stalled_ns / 1_000_000
        )?;
        let sbdf = pci::Sbdf::from_devfn((s.sbdf >> 16) as u16, (s.sbdf >> 8) as u8, s.sbdf as u8);
        match s.activity {
            Activity::None => {}
            Activity::ConfigRead => {
                write!(f, "; last step: config read {sbdf} +{:#05x}", s.offset)?
            }
            Activity::ConfigWrite => write!(
                f,
                "; last step: config write {sbdf} +{:#05x} = {:#010x}{}",
                s.offset,
                s.value,
                if s.offset == 4 {
                    " (COMMAND: a decoding change makes Xen's vPCI map or unmap the BARs)"
                } else {
                    ""
                }
            )?,
            Activity::XenPciAdd => write!(f, "; last step: PHYSDEVOP_pci_device_add {sbdf}")?,
        }
        match s.vcpu0 {
            Some((st, ns)) => write!(
                f,
                "; Xen: vCPU 0 {} for {} ms (noticed by vCPU {})",
                st.name(),
                ns / 1_000_000,
                s.noticed_by
            )?,
            None => write!(f, "; noticed by vCPU {}", s.noticed_by)?,
        }
        if let Some(r) = s.resolved_after_ns {
            write!(f, "; moved again after {} ms", r / 1_000_000)?;
        }
        Ok(())
    }
}

/// Whether the boot CPU's periodic timer drives the checker (set by [`start`]).
static BSP_PERIODIC: AtomicBool = AtomicBool::new(false);

/// Start watching. With an AP (`ap_watches`), vCPU 1's worker loop calls [`tick`]. With one
/// vCPU there is no AP: the boot CPU gets a periodic VIRQ_TIMER every [`TICK_NS`]
/// (`VCPUOP_set_periodic_timer`) and interrupts stay on while phases are watched, so the upcall
/// runs the checker. That catches dom0 spinning in its own code; a vCPU stuck inside Xen cannot
/// take its own timer, which is why an AP watches when there is one.
pub fn start(x: &dyn Hypercall, ap_watches: bool) {
    AP_WATCHES.store(ap_watches, Ordering::Release);
    crate::events::set_bsp_timer_hook(on_bsp_timer);
    if !ap_watches && ops::vcpu_set_periodic_timer(x, 0, TICK_NS).is_ok() {
        BSP_PERIODIC.store(true, Ordering::Release);
        ON_BSP_TIMER.store(true, Ordering::Release);
        crate::arch::sti();
    }
}

/// Stop the boot CPU's periodic timer if [`start`] set one, and drop its last event.
pub fn stop(x: &dyn Hypercall) {
    if BSP_PERIODIC.swap(false, Ordering::AcqRel) {
        let _ = ops::vcpu_stop_periodic_timer(x, 0);
        if let Some(me) = crate::percpu::cpu(0) {
            crate::events::take_pending(ops::EvtchnPort(me.timer_port.load(Ordering::Acquire)));
        }
    }
}

/// From the boot CPU's VIRQ_TIMER upcall.
pub fn on_bsp_timer() {
    if !ON_BSP_TIMER.load(Ordering::Acquire) {
        return;
    }
    if let Some(x) = crate::hypercall::get() {
        let now = crate::events::system_time_ns();
        tick(&x, now, 0);
    }
}

/// A fixed-size line, formatted without the heap.
struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    fn emit(&self) {
        crate::console::emergency_write(&self.buf[..self.len]);
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
