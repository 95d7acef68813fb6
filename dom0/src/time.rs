//! Guest time since entry, from the TSC. The TSC frequency comes from Xen (CPUID leaf `base+3`,
//! or the pvclock record), or, without Xen, from the PIT.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::arch::rdtsc;

static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
/// ns per TSC tick as a 32.32 fixed-point factor (set with the frequency): the service loop
/// converts ticks on every wakeup, and a 128-bit division (`__udivti3`) each time was 3–9% of
/// dom0's samples in a network profile.
static NS_PER_TICK_FP32: AtomicU64 = AtomicU64::new(0);
static TSC_TRAPS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Xen emulates RDTSC for dom0 (no invariant TSC, as on the emulated test bench): each read is
/// a VM exit, so log lines stop carrying timestamps; the phase timeline keeps its own.
pub fn set_tsc_traps(t: bool) {
    TSC_TRAPS.store(t, Ordering::Relaxed);
}

pub fn tsc_traps() -> bool {
    TSC_TRAPS.load(Ordering::Relaxed)
}
static SOURCE: spin::Mutex<&'static str> = spin::Mutex::new("none");

pub fn set_khz(khz: u64, source: &'static str) {
    if khz != 0 {
        TSC_KHZ.store(khz, Ordering::Relaxed);
        NS_PER_TICK_FP32.store(ns_per_tick_fp32(khz), Ordering::Relaxed);
        *SOURCE.lock() = source;
    }
}

pub fn khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

pub fn khz_source() -> &'static str {
    *SOURCE.lock()
}

/// `10^6 / khz` ns per tick, times 2^32 (one division, when the frequency is set).
fn ns_per_tick_fp32(khz: u64) -> u64 {
    ((1_000_000u128 << 32) / u128::from(khz.max(1))).min(u128::from(u64::MAX)) as u64
}

/// TSC ticks to ns (0 before calibration): a multiply and a shift, off the exact quotient by
/// under one part in 10^9 (the factor is truncated to 2^-32 ns).
pub fn ticks_to_ns(ticks: u64) -> u64 {
    let f = NS_PER_TICK_FP32.load(Ordering::Relaxed);
    ((u128::from(ticks) * u128::from(f)) >> 32).min(u128::from(u64::MAX)) as u64
}

/// ns since the entry stub's first instruction.
pub fn since_entry_ns() -> u64 {
    since_entry_at(rdtsc())
}

/// [`since_entry_ns`] at TSC value `tsc` (a caller that also needs Xen's system time reads the
/// TSC once for both: under Xen's TSC emulation every read is a trap).
pub fn since_entry_at(tsc: u64) -> u64 {
    ticks_to_ns(tsc.saturating_sub(crate::boot::entry_tsc()))
}

/// Calibrate against PIT channel 2 (not under Xen: Xen owns the PIT and denies its ports).
/// Returns kHz, or None if the PIT gate never finished (no PIT).
pub fn calibrate_with_pit() -> Option<u64> {
    const PIT_HZ: u64 = 1_193_182;
    const MS: u64 = 10;
    let count = (PIT_HZ * MS / 1000) as u16;
    // SAFETY: ports 0x61 (gate/speaker), 0x43 and 0x42 (PIT channel 2) only program the timer.
    unsafe {
        let p61 = crate::arch::inb(0x61);
        crate::arch::outb(0x61, (p61 & !0x02) | 0x01); // gate on, speaker off
        crate::arch::outb(0x43, 0xb0); // channel 2, lobyte/hibyte, mode 0
        crate::arch::outb(0x42, count as u8);
        crate::arch::outb(0x42, (count >> 8) as u8);
        let t0 = rdtsc();
        let mut spins = 0u64;
        while crate::arch::inb(0x61) & 0x20 == 0 {
            spins += 1;
            if spins > 50_000_000 {
                return None;
            }
        }
        let t1 = rdtsc();
        crate::arch::outb(0x61, p61);
        Some((t1 - t0) / MS)
    }
}

const MAX_PHASES: usize = 32;
static PHASES: spin::Mutex<[(&str, u64); MAX_PHASES]> = spin::Mutex::new([("", 0); MAX_PHASES]);
static NPHASES: AtomicUsize = AtomicUsize::new(0);

/// Mark the end of a boot phase (TSC now).
pub fn phase(name: &'static str) {
    let t = rdtsc();
    let mut p = PHASES.lock();
    let n = NPHASES.load(Ordering::Relaxed);
    if n < MAX_PHASES {
        p[n] = (name, t);
        NPHASES.store(n + 1, Ordering::Relaxed);
    }
}

/// Phases as (name, ns since entry).
pub fn phases() -> alloc::vec::Vec<(&'static str, u64)> {
    let p = PHASES.lock();
    let e = crate::boot::entry_tsc();
    p[..NPHASES.load(Ordering::Relaxed)]
        .iter()
        .map(|&(n, t)| (n, ticks_to_ns(t.saturating_sub(e))))
        .collect()
}
