//! The service loop's decisions, including the hostile cases: a DomU that notifies without
//! pause, deadlines in the past, clocks near the end of their range, BARs everywhere.

use super::*;

const MS: u64 = 1_000_000;

#[test]
fn a_storm_pauses_the_ports_until_the_period_ends_and_then_they_come_back() {
    let mut g = StormGuard::default();
    let t0 = 5_000 * MS;
    // dom0 is busy with others: three passes for each of this DomU's fruitless wakeups, so
    // only the rate counts.
    for i in 0..STORM_WAKEUPS {
        for _ in 0..3 {
            g.pass(t0 + u64::from(i));
        }
        assert_eq!(g.wakeup(t0 + u64::from(i)), None, "wakeup {i}");
        assert!(g.polled(t0 + u64::from(i)));
    }
    assert_eq!(g.wakeup(t0 + 60), Some(STORM_WAKEUPS + 1));
    assert_eq!(g.storms, 1);
    assert!(!g.polled(t0 + 61));
    assert_eq!(g.paused_until(), Some(t0 + STORM_PERIOD_NS));
    // More wakeups in the same period neither start another storm nor extend the pause.
    assert_eq!(g.wakeup(t0 + 70), None);
    assert_eq!(g.storms, 1);
    assert!(g.polled(t0 + STORM_PERIOD_NS));
    assert_eq!(g.paused_until(), None);
}

#[test]
fn a_busy_but_polite_domu_is_never_paused() {
    let mut g = StormGuard::default();
    // 40 fruitless wakeups per period among 100 passes (the others found its work), for 100
    // periods.
    for p in 0..100u64 {
        for i in 0..100u64 {
            let t = p * STORM_PERIOD_NS + i * MS;
            g.pass(t);
            if i % 5 < 2 {
                assert_eq!(g.wakeup(t), None);
            }
            assert!(g.polled(t));
        }
    }
    assert_eq!(g.storms, 0);
    assert_eq!(g.peak_wakeups, 40);
}

#[test]
fn a_few_fruitless_kicks_on_an_idle_dom0_are_not_a_storm() {
    // Every pass is this DomU's fruitless kick, but fewer than STORM_MIN_WAKEUPS a period.
    let mut g = StormGuard::default();
    for p in 0..50u64 {
        for i in 0..u64::from(STORM_MIN_WAKEUPS - 1) {
            let t = p * STORM_PERIOD_NS + i * 5 * MS;
            g.pass(t);
            assert_eq!(g.wakeup(t), None);
        }
    }
    assert_eq!(g.storms, 0);
}

#[test]
fn a_storm_on_a_slow_dom0_is_still_a_storm() {
    // dom0 manages only 25 passes a period (a loaded emulator), and the guest's notifications
    // make every one of them fruitless: far under STORM_WAKEUPS, still a storm.
    let mut g = StormGuard::default();
    let mut first = None;
    for p in 0..10u64 {
        for i in 0..25u64 {
            let t = p * STORM_PERIOD_NS + i * 4 * MS;
            if !g.polled(t) {
                continue;
            }
            g.pass(t);
            if let Some(n) = g.wakeup(t) {
                first.get_or_insert((p, i, n));
            }
        }
    }
    assert_eq!(
        first,
        Some((0, u64::from(STORM_MIN_WAKEUPS) - 1, STORM_MIN_WAKEUPS))
    );
    assert_eq!(g.storms, 10, "one storm per period");
    // One pass in ten found its work: 90%, still a storm; two in ten: not.
    for (every, storms) in [(10u64, 1u64), (5, 0)] {
        let mut g = StormGuard::default();
        for i in 0..25u64 {
            let t = i * 4 * MS;
            g.pass(t);
            if i % every != every - 1 {
                g.wakeup(t);
            }
        }
        assert_eq!(g.storms, storms, "one pass in {every} found work");
    }
}

#[test]
fn the_clock_at_its_end_does_not_overflow_the_guard() {
    let mut g = StormGuard::default();
    for _ in 0..=STORM_WAKEUPS {
        g.wakeup(u64::MAX - 1);
    }
    assert!(g.storms <= 1);
    let _ = g.polled(u64::MAX);
}

#[test]
fn sleep_is_bounded_both_ways() {
    assert_eq!(sleep_ns(0, []), MAX_SLEEP_NS);
    assert_eq!(sleep_ns(100 * MS, [130 * MS]), 30 * MS);
    assert_eq!(sleep_ns(100 * MS, [130 * MS, 120 * MS]), 20 * MS);
    // A deadline already past: the shortest sleep, not a spin and not an underflow.
    assert_eq!(sleep_ns(100 * MS, [10 * MS]), MIN_SLEEP_NS);
    assert_eq!(sleep_ns(0, [u64::MAX]), MAX_SLEEP_NS);
}

#[test]
fn round_robin_starts_with_a_different_domu_each_wakeup() {
    let mut r = RoundRobin::default();
    let orders: Vec<Vec<usize>> = (0..4).map(|_| r.order(3).collect()).collect();
    assert_eq!(
        orders,
        [vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]
    );
    // The set shrinks when a DomU stops: still each one once.
    let mut once: Vec<usize> = r.order(2).collect();
    once.sort_unstable();
    assert_eq!(once, [0, 1]);
    assert_eq!(r.order(0).count(), 0);
}

#[test]
fn stop_is_asked_after_the_delay_and_enforced_after_the_grace() {
    let s = 1_000 * MS; // 1 s
    assert_eq!(
        stop_step(10 * s, 0, Some(0), None),
        StopStep::Wait,
        "domu-stop=0: never"
    );
    assert_eq!(
        stop_step(10 * s, 5, None, None),
        StopStep::Wait,
        "nothing started yet"
    );
    assert_eq!(stop_step(4 * s, 5, Some(0), None), StopStep::Wait);
    assert_eq!(stop_step(5 * s, 5, Some(0), None), StopStep::Ask);
    assert_eq!(stop_step(20 * s, 5, Some(0), Some(5 * s)), StopStep::Wait);
    assert_eq!(
        stop_step(5 * s + STOP_GRACE_NS + 1, 5, Some(0), Some(5 * s)),
        StopStep::Destroy
    );
    // Huge values saturate instead of wrapping into "now".
    assert_eq!(stop_step(10 * s, u64::MAX, Some(1), None), StopStep::Wait);
    assert_eq!(
        stop_step(u64::MAX, 1, Some(0), Some(u64::MAX - 1)),
        StopStep::Wait
    );
}

#[test]
fn only_a_guest_reboot_restarts() {
    use crate::domain::{Action, policy};
    let cases = [
        (
            StopReason::Shutdown(ShutdownCode::Poweroff),
            Action::Destroy,
        ),
        (StopReason::Shutdown(ShutdownCode::Reboot), Action::Restart),
        (StopReason::Shutdown(ShutdownCode::Crash), Action::Destroy),
        (StopReason::Dying, Action::Destroy),
        (StopReason::Vanished, Action::Destroy),
        (StopReason::IgnoredShutdown, Action::Destroy),
    ];
    for (r, action) in cases {
        assert_eq!(policy(r.code(), 0), action, "{r:?}");
    }
}

#[test]
fn refusal_lines_are_bounded_and_keep_the_console_and_storm_lines() {
    let stormy = || {
        let mut g = StormGuard::default();
        for i in 0..=STORM_WAKEUPS {
            g.wakeup(u64::from(i));
        }
        assert!(g.polled(STORM_PERIOD_NS));
        for i in 0..=STORM_WAKEUPS {
            g.wakeup(STORM_PERIOD_NS + u64::from(i));
        }
        g
    };
    let xs: Vec<String> = (0..20)
        .map(|i| format!("xenstore: class {i} x 1"))
        .collect();
    let l = refusal_lines(xs, 3, 1, &stormy());
    assert_eq!(l.len(), MAX_REFUSAL_LINES);
    // xenstore's classes are the ones cut: the console's and the storm's lines stay.
    assert_eq!(l[MAX_REFUSAL_LINES - 3], "console: throttled x 3");
    assert_eq!(l[MAX_REFUSAL_LINES - 2], "console: bad ring indices x 1");
    assert!(l[MAX_REFUSAL_LINES - 1].starts_with("evtchn: "));
    let l = refusal_lines(vec!["xenstore: quota x 4".into()], 3, 0, &stormy());
    assert_eq!(
        l,
        [
            "xenstore: quota x 4",
            "console: throttled x 3",
            "evtchn: event storm, ports polled less x 2 (at most 51 fruitless wakeups in 100 ms)"
        ]
    );
    let l = refusal_lines(vec![], 0, 0, &StormGuard::default());
    assert!(l.is_empty());
}

#[test]
#[allow(clippy::single_range_in_vec_init)] // slices of gaps, one gap each
fn the_window_avoids_bars_and_stays_gib_aligned() {
    const GIB: u64 = 1 << 30;
    let size = 1536 * 4096;
    let gaps = [4 * GIB + 0x1000..8 * GIB, 16 * GIB..64 * GIB];
    assert_eq!(window_base(&gaps, &[], size), Some(5 * GIB));
    // A BAR at 5 GiB: the next aligned place after it.
    assert_eq!(
        window_base(&gaps, &[(5 * GIB, 5 * GIB + 0x4000)], size),
        Some(6 * GIB)
    );
    // BARs filling the first gap: the second one.
    let busy = [(4 * GIB, 8 * GIB)];
    assert_eq!(window_base(&gaps, &busy, size), Some(16 * GIB));
    // No room at all, and gaps near the top of the address space: None, no overflow.
    assert_eq!(
        window_base(&[4 * GIB..5 * GIB], &[(0, u64::MAX)], size),
        None
    );
    assert_eq!(window_base(&[u64::MAX - 0x1000..u64::MAX], &[], size), None);
}

#[test]
fn xenstore_limits_default_and_option() {
    assert_eq!(xenstore_limits(None, 4 << 20), (2560 * 1024, 1 << 20));
    assert_eq!(xenstore_limits(Some(64), 0), (64 * 1024, 0));
}
