//! The decisions of dom0's DomU service loop, free of the platform: when a DomU's event
//! channels count as a storm, how long the loop sleeps, which DomU goes first on a wakeup, when
//! a DomU is asked to stop and when it is destroyed instead, what a stopped DomU's state is, and
//! where the foreign-mapping window goes. dom0 (`dom0/src/domu.rs`) does the hypercalls.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use xen::domctl::ShutdownCode;

/// Fruitless wakeups by one DomU's ports per [`STORM_PERIOD_NS`] before its ports are left out
/// of the poll set for the rest of the period (500 a second: a Linux guest's xenstore and
/// console traffic stays far below).
pub const STORM_WAKEUPS: u32 = 50;
pub const STORM_PERIOD_NS: u64 = 100_000_000;
/// The same DomU is also a storm when its fruitless wakeups were at least this many in the
/// period *and* at least [`STORM_SHARE_PERCENT`] of dom0's passes: under a slow or busy
/// emulator dom0 cannot loop 500 times a second, and a guest that notifies without pause then
/// makes nearly every pass fruitless while staying under [`STORM_WAKEUPS`] (a CI run on a
/// loaded host saw no storm at all that way). 20 in 100 ms still means a wakeup every 5 ms.
pub const STORM_MIN_WAKEUPS: u32 = 20;
pub const STORM_SHARE_PERCENT: u32 = 90;
/// The loop sleeps at most this long: a notification that went missing costs at most this.
pub const MAX_SLEEP_NS: u64 = 1_000_000_000;
/// ...and at least this long when it has a deadline (a throttled console, a storm's end).
pub const MIN_SLEEP_NS: u64 = 1_000_000;
/// Every DomU's state is checked with a domctl at least this often, and on `VIRQ_DOM_EXC`.
pub const CHECK_PERIOD_NS: u64 = 100_000_000;
/// `domu-stop=`: how long a DomU may ignore `control/shutdown` before it is destroyed (xl
/// shutdown's default wait is 60 s; the bench's guests answer in well under a second).
pub const STOP_GRACE_NS: u64 = 30_000_000_000;
/// At most this many classes of refusal lines per DomU in the report.
pub const MAX_REFUSAL_LINES: usize = 16;

/// One DomU's event-storm accounting (XSA-332): dom0's passes and the wakeups its ports caused
/// for nothing in the current period, and until when its ports are left out of the poll set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StormGuard {
    period_start: u64,
    wakeups: u32,
    passes: u32,
    until: Option<u64>,
    /// Storms so far.
    pub storms: u64,
    /// The most fruitless wakeups it caused in one period (the report's evidence).
    pub peak_wakeups: u32,
}

impl StormGuard {
    /// Whether the DomU's ports are in the poll set at `now` (a storm's pause ends by itself).
    pub fn polled(&mut self, now: u64) -> bool {
        if self.until.is_some_and(|u| now >= u) {
            self.until = None;
        }
        self.until.is_none()
    }

    /// When the current pause ends, if the DomU is paused.
    pub fn paused_until(&self) -> Option<u64> {
        self.until
    }

    fn roll(&mut self, now: u64) {
        if now >= self.period_start.saturating_add(STORM_PERIOD_NS) {
            self.period_start = now;
            self.wakeups = 0;
            self.passes = 0;
        }
    }

    /// Count one pass of dom0's loop at `now`, whoever caused it (call it for every DomU on
    /// every pass, before [`StormGuard::wakeup`]).
    pub fn pass(&mut self, now: u64) {
        self.roll(now);
        self.passes = self.passes.saturating_add(1);
    }

    /// Count one wakeup its ports caused at `now` for nothing; `Some(wakeups)` when this one
    /// starts a storm (the ports leave the poll set until the period ends): more than
    /// [`STORM_WAKEUPS`] in the period, or at least [`STORM_MIN_WAKEUPS`] that were
    /// [`STORM_SHARE_PERCENT`] of dom0's passes.
    pub fn wakeup(&mut self, now: u64) -> Option<u32> {
        self.roll(now);
        self.wakeups = self.wakeups.saturating_add(1);
        // A wakeup is a pass too, if the caller did not count it.
        self.passes = self.passes.max(self.wakeups);
        self.peak_wakeups = self.peak_wakeups.max(self.wakeups);
        let share = u64::from(self.wakeups) * 100
            >= u64::from(self.passes) * u64::from(STORM_SHARE_PERCENT);
        let storm = self.wakeups > STORM_WAKEUPS || (self.wakeups >= STORM_MIN_WAKEUPS && share);
        if storm && self.until.is_none() {
            self.until = Some(self.period_start.saturating_add(STORM_PERIOD_NS));
            self.storms += 1;
            return Some(self.wakeups);
        }
        None
    }
}

/// How long the loop may sleep at `now`: [`MAX_SLEEP_NS`], less when a deadline comes sooner
/// (never less than [`MIN_SLEEP_NS`], so a deadline in the past does not spin).
pub fn sleep_ns(now: u64, deadlines: impl IntoIterator<Item = u64>) -> u64 {
    deadlines
        .into_iter()
        .map(|d| d.saturating_sub(now).max(MIN_SLEEP_NS))
        .fold(MAX_SLEEP_NS, u64::min)
}

/// Which DomU is served first on each wakeup: a different one each time, so one that always
/// has work cannot starve the others of the bounded work per wakeup.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// The order of this wakeup's service over `n` DomUs.
    pub fn order(&mut self, n: usize) -> impl Iterator<Item = usize> + use<> {
        let first = if n == 0 { 0 } else { self.next % n };
        self.next = first + 1;
        (0..n).map(move |i| (first + i) % n)
    }
}

/// Why a DomU is no longer running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It shut down (`SCHEDOP_shutdown`), with this code.
    Shutdown(ShutdownCode),
    /// Xen says it is dying (destroyed by someone else).
    Dying,
    /// `XEN_DOMCTL_getdomaininfo` no longer finds it.
    Vanished,
    /// It ignored `control/shutdown` for [`STOP_GRACE_NS`]; dom0 destroyed it.
    IgnoredShutdown,
}

impl StopReason {
    /// The shutdown code for the restart policy (`domain::policy`); only a shutdown the guest
    /// chose can be a reboot.
    pub fn code(self) -> ShutdownCode {
        match self {
            StopReason::Shutdown(c) => c,
            StopReason::Dying => ShutdownCode::Other(255),
            StopReason::Vanished => ShutdownCode::Other(254),
            StopReason::IgnoredShutdown => ShutdownCode::Other(253),
        }
    }
}

/// What `domu-stop=` says to do with one running DomU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    /// Nothing yet.
    Wait,
    /// Write `poweroff` to its `control/shutdown` (what `xl shutdown` does).
    Ask,
    /// It ignored the request for the grace period: destroy it.
    Destroy,
}

/// `domu-stop=SECONDS` (0: never): ask every DomU to power off that long after the first one
/// started, and destroy the ones that ignore it for [`STOP_GRACE_NS`].
pub fn stop_step(
    now: u64,
    stop_after_s: u64,
    first_start: Option<u64>,
    asked: Option<u64>,
) -> StopStep {
    let Some(t0) = first_start.filter(|_| stop_after_s > 0) else {
        return StopStep::Wait;
    };
    if now < t0.saturating_add(stop_after_s.saturating_mul(1_000_000_000)) {
        return StopStep::Wait;
    }
    match asked {
        None => StopStep::Ask,
        Some(a) if now > a.saturating_add(STOP_GRACE_NS) => StopStep::Destroy,
        Some(_) => StopStep::Wait,
    }
}

/// What one DomU was refused or limited in, for the report: the xenstore refusal lines, then
/// the console's and the event channels', at most [`MAX_REFUSAL_LINES`] (xenstore's are cut
/// first: the console's and the storm's lines always stay).
pub fn refusal_lines(
    mut xenstore: Vec<String>,
    console_throttled: u64,
    console_bad_indices: u64,
    storm: &StormGuard,
) -> Vec<String> {
    let mut others = Vec::new();
    if console_throttled > 0 {
        others.push(format!("console: throttled x {console_throttled}"));
    }
    if console_bad_indices > 0 {
        others.push(format!("console: bad ring indices x {console_bad_indices}"));
    }
    if storm.storms > 0 {
        others.push(format!(
            "evtchn: event storm, ports polled less x {} (at most {} fruitless wakeups in {} ms)",
            storm.storms,
            storm.peak_wakeups,
            STORM_PERIOD_NS / 1_000_000
        ));
    }
    xenstore.truncate(MAX_REFUSAL_LINES - others.len());
    xenstore.extend(others);
    xenstore
}

/// Where the foreign-mapping window of `size` bytes goes: the first 1 GiB-aligned stretch of
/// `gaps` (the memory map's gaps between 4 GiB and the highest address dom0 can map) that no
/// `busy` range (a 64-bit BAR) overlaps, so no RAM page is replaced and no MMIO shadowed (Linux
/// takes such ranges from its unpopulated-alloc pool for the same purpose).
pub fn window_base(gaps: &[Range<u64>], busy: &[(u64, u64)], size: u64) -> Option<u64> {
    const GIB: u64 = 1 << 30;
    gaps.iter().find_map(|g| {
        let mut b = g.start.checked_next_multiple_of(GIB)?;
        while b.checked_add(size)? <= g.end {
            match busy.iter().find(|&&(s, e)| s < b + size && b < e) {
                None => return Some(b),
                Some(&(_, e)) => b = e.checked_next_multiple_of(GIB)?,
            }
        }
        None
    })
}

/// The xenstore limits: per DomU `xenstore-quota=` (KiB; C xenstored's 2.5 MiB by default), and
/// for all DomUs together a quarter of the heap free now, so that N hostile DomUs leave dom0
/// three quarters of it whatever N is (on a small dom0 that cap binds first).
pub fn xenstore_limits(quota_kib: Option<u32>, heap_free: u64) -> (u64, u64) {
    (
        quota_kib.map_or(crate::xenstore::DEFAULT_MAX_BYTES, |k| u64::from(k) * 1024),
        heap_free / 4,
    )
}

#[cfg(test)]
mod tests;
