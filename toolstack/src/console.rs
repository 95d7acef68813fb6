//! The console backend: drains a DomU's PV console ring (`struct xencons_interface`,
//! public/io/console.h) into lines for dom0's console and the run report.
//!
//! The guest controls the indices. Like C xenconsoled (`buffer_append`), a producer index more
//! than a ring ahead of the consumer is not trusted: the backend reports it, skips to the
//! producer and goes on (XSA-39: never loop on guest indices). Bytes are sanitised (control
//! characters other than tab become `?`), lines are cut at [`MAX_LINE`], and the backend keeps
//! at most [`KEEP_LINES`] lines for the report.
//!
//! A hostile guest gets nowhere by repetition: bad indices are recorded once with a count
//! (the first pair seen is kept), never once per wakeup; and output is rate-limited like
//! xenconsoled does (`RATE_LIMIT_ALLOWANCE` per `RATE_LIMIT_PERIOD`, there in events, here
//! in bytes, as a token bucket): a guest may send a burst of [`RATE_BURST`] bytes (a Linux
//! boot log replayed when hvc0 registers) and then [`RATE_BYTES_PER_S`]; past that the
//! backend leaves its output in its ring until the bucket refills, so a flooding guest waits
//! on its own full ring instead of flooding dom0's console. Each [`RATE_PERIOD_NS`] in which
//! that happened counts once in `throttled`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::xenstore::RingPage;

/// `struct xencons_interface` offsets.
pub mod layout {
    pub const IN: usize = 0;
    pub const IN_SIZE: u32 = 1024;
    pub const OUT: usize = 1024;
    pub const OUT_SIZE: u32 = 2048;
    pub const IN_CONS: usize = 3072;
    pub const IN_PROD: usize = 3076;
    pub const OUT_CONS: usize = 3080;
    pub const OUT_PROD: usize = 3084;
}
use layout as L;

/// Longest line kept; longer output is split.
pub const MAX_LINE: usize = 512;
/// Lines kept for the report (the first ones: a boot log's beginning matters most), then the
/// last [`KEEP_TAIL`] ones.
pub const KEEP_LINES: usize = 400;
pub const KEEP_TAIL: usize = 100;

/// Bytes a DomU's console may send at once (the bucket's size).
pub const RATE_BURST: u32 = 64 * 1024;
/// Bytes per second it may send after that (a Linux boot never gets near; a flood does).
pub const RATE_BYTES_PER_S: u64 = 32 * 1024;
/// Throttling is counted at most once per period (100 ms).
pub const RATE_PERIOD_NS: u64 = 100_000_000;

/// One DomU's console.
#[derive(Debug, Default)]
pub struct ConsoleBackend {
    partial: Vec<u8>,
    /// The first [`KEEP_LINES`] lines.
    pub head: Vec<String>,
    /// The last [`KEEP_TAIL`] lines after those.
    pub tail: alloc::collections::VecDeque<String>,
    pub lines: u64,
    pub bytes: u64,
    /// Times the guest's indices were out of range.
    pub bad_indices: u64,
    /// The first out-of-range pair (cons, prod).
    pub first_bad: Option<(u32, u32)>,
    /// Periods in which the guest used its whole allowance and its output was held back in
    /// its ring (times, not bytes).
    pub throttled: u64,
    /// Bytes it may send now (starts full) and when the bucket was last filled.
    tokens: Option<u32>,
    filled_at: u64,
    /// Start of the last period in which it was throttled.
    throttled_at: Option<u64>,
}

/// What one [`ConsoleBackend::service`] produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub lines: Vec<String>,
    /// Bytes were consumed: notify the guest (it may be waiting for room).
    pub notify: bool,
    /// The guest's indices were corrupt for the first time (later occurrences are only
    /// counted: see [`ConsoleBackend::bad_indices_report`]).
    pub bad_indices: Option<(u32, u32)>,
    /// Output was left in the ring: the guest is over its rate until `Some(t)` (ns).
    pub throttled_until: Option<u64>,
}

impl ConsoleBackend {
    pub fn new() -> ConsoleBackend {
        ConsoleBackend::default()
    }

    /// Drain everything the guest has written so far (no rate limit: at teardown).
    pub fn service<P: RingPage + ?Sized>(&mut self, page: &mut P) -> Drained {
        self.drain(page, u32::MAX).drained
    }

    /// Drain what the guest's rate allows at time `now_ns`.
    pub fn service_at<P: RingPage + ?Sized>(&mut self, page: &mut P, now_ns: u64) -> Drained {
        // Refill for the time since the last fill (whole bytes only).
        let mut tokens = self.tokens.unwrap_or(RATE_BURST);
        if self.tokens.is_none() || now_ns < self.filled_at {
            self.filled_at = now_ns;
        }
        let earned = (now_ns - self.filled_at).saturating_mul(RATE_BYTES_PER_S) / 1_000_000_000;
        if earned > 0 {
            let full = u64::from(tokens) + earned >= u64::from(RATE_BURST);
            tokens = u32::try_from(u64::from(tokens) + earned)
                .unwrap_or(u32::MAX)
                .min(RATE_BURST);
            // Keep the fraction of a byte earned (a full bucket earns nothing more).
            self.filled_at = if full {
                now_ns
            } else {
                self.filled_at + earned * 1_000_000_000 / RATE_BYTES_PER_S
            };
        }
        let mut d = self.drain(page, tokens);
        tokens -= d.taken.min(tokens);
        self.tokens = Some(tokens);
        let prod = page.load_u32(L::OUT_PROD);
        let cons = page.load_u32(L::OUT_CONS);
        if prod != cons && tokens == 0 {
            if self
                .throttled_at
                .is_none_or(|t| now_ns >= t.saturating_add(RATE_PERIOD_NS) || now_ns < t)
            {
                self.throttled_at = Some(now_ns);
                self.throttled += 1;
            }
            // When the bucket holds a line's worth again.
            let wait = (MAX_LINE as u64 * 1_000_000_000).div_ceil(RATE_BYTES_PER_S);
            d.drained.throttled_until = Some(now_ns + wait);
        }
        d.drained
    }

    /// One line for the report about bad indices: how often, and the first pair seen.
    pub fn bad_indices_report(&self) -> Option<String> {
        let (c, p) = self.first_bad?;
        Some(alloc::format!(
            "console ring indices out of range x {} (first: cons {c}, prod {p}); skipped ahead",
            self.bad_indices
        ))
    }

    fn drain<P: RingPage + ?Sized>(&mut self, page: &mut P, max: u32) -> Taken {
        let mut out = Drained::default();
        let cons = page.load_u32(L::OUT_CONS);
        let prod = page.load_u32(L::OUT_PROD);
        let avail = prod.wrapping_sub(cons);
        if avail == 0 || max == 0 {
            return Taken {
                drained: out,
                taken: 0,
            };
        }
        let mut start = cons;
        if avail > L::OUT_SIZE {
            self.bad_indices += 1;
            if self.first_bad.is_none() {
                self.first_bad = Some((cons, prod));
                out.bad_indices = Some((cons, prod));
            }
            // Take the last ring's worth, as if the consumer had been lapped.
            start = prod.wrapping_sub(L::OUT_SIZE);
        }
        let n = prod.wrapping_sub(start).min(max);
        let end = start.wrapping_add(n);
        // On the stack: draining a guest's ring never allocates.
        let mut whole = [0u8; L::OUT_SIZE as usize];
        let buf = &mut whole[..n as usize];
        let first = (start % L::OUT_SIZE) as usize;
        let until_wrap = (L::OUT_SIZE as usize - first).min(n as usize);
        page.read_bytes(L::OUT + first, &mut buf[..until_wrap]);
        if until_wrap < n as usize {
            page.read_bytes(L::OUT, &mut buf[until_wrap..]);
        }
        page.store_u32(L::OUT_CONS, end);
        out.notify = true;
        self.bytes += u64::from(n);
        for &c in buf.iter() {
            match c {
                b'\n' => self.finish_line(&mut out.lines),
                b'\r' => {}
                b'\t' => self.partial.push(b' '),
                c if c < 0x20 || c == 0x7f => self.partial.push(b'?'),
                c => self.partial.push(c),
            }
            if self.partial.len() >= MAX_LINE {
                self.finish_line(&mut out.lines);
            }
        }
        Taken {
            drained: out,
            taken: n,
        }
    }

    /// Whatever is left without a newline (at teardown).
    pub fn flush(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        let mut v = Vec::new();
        self.finish_line(&mut v);
        v.pop()
    }

    fn finish_line(&mut self, sink: &mut Vec<String>) {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        self.lines += 1;
        if self.head.len() < KEEP_LINES {
            self.head.push(line.clone());
        } else {
            if self.tail.len() == KEEP_TAIL {
                self.tail.pop_front();
            }
            self.tail.push_back(line.clone());
        }
        sink.push(line);
    }
}

struct Taken {
    drained: Drained,
    taken: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(page: &mut [u8], text: &[u8]) {
        let mut prod = page.load_u32(L::OUT_PROD);
        for &c in text {
            page[L::OUT + (prod % L::OUT_SIZE) as usize] = c;
            prod = prod.wrapping_add(1);
        }
        page.store_u32(L::OUT_PROD, prod);
    }

    #[test]
    fn lines_across_calls_and_wraps() {
        let mut page = alloc::vec![0u8; 4096];
        // Start near the u32 wrap and the ring end.
        page.store_u32(L::OUT_CONS, u32::MAX - 3);
        page.store_u32(L::OUT_PROD, u32::MAX - 3);
        let mut c = ConsoleBackend::new();
        put(&mut page, b"hello\r\nwor");
        let d = c.service(&mut page[..]);
        assert_eq!(d.lines, ["hello"]);
        assert!(d.notify);
        put(&mut page, b"ld\x1b[0m\tok\n");
        let d = c.service(&mut page[..]);
        assert_eq!(d.lines, ["world?[0m ok"]);
        assert_eq!(page.load_u32(L::OUT_CONS), page.load_u32(L::OUT_PROD));
        assert_eq!(c.service(&mut page[..]), Drained::default());
    }

    #[test]
    fn hostile_indices_are_survived() {
        let mut page = alloc::vec![0u8; 4096];
        page.store_u32(L::OUT_PROD, 1_000_000);
        let mut c = ConsoleBackend::new();
        let d = c.service(&mut page[..]);
        assert_eq!(d.bad_indices, Some((0, 1_000_000)));
        assert_eq!(page.load_u32(L::OUT_CONS), 1_000_000);
        assert_eq!(c.bad_indices, 1);
        // Producer behind consumer: also "more than a ring", same handling, no loop; only
        // counted this time.
        page.store_u32(L::OUT_PROD, 5);
        let d = c.service(&mut page[..]);
        assert_eq!(d.bad_indices, None);
        assert_eq!(c.bad_indices, 2);
        assert_eq!(page.load_u32(L::OUT_CONS), 5);
    }

    #[test]
    fn bad_index_reports_are_counted_not_accumulated() {
        let mut page = alloc::vec![0u8; 4096];
        let mut c = ConsoleBackend::new();
        let mut reports = Vec::new();
        for i in 0..10_000u32 {
            // The guest breaks its indices again before every wakeup.
            let cons = page.load_u32(L::OUT_CONS);
            page.store_u32(L::OUT_PROD, cons.wrapping_add(5000 + i));
            let d = c.service_at(&mut page[..], u64::from(i) * RATE_PERIOD_NS);
            reports.extend(d.bad_indices);
        }
        assert_eq!(reports, [(0, 5000)], "one report, the first pair");
        assert_eq!(c.bad_indices, 10_000);
        assert_eq!(
            c.bad_indices_report().unwrap(),
            "console ring indices out of range x 10000 (first: cons 0, prod 5000); skipped ahead"
        );
        // What the report keeps stays bounded too.
        assert!(c.head.len() + c.tail.len() <= KEEP_LINES + KEEP_TAIL);
    }

    #[test]
    fn a_flooding_console_is_throttled() {
        let mut page = alloc::vec![0u8; 4096];
        let mut c = ConsoleBackend::new();
        let mut t = 0u64;
        let mut taken = 0u64;
        let mut last = Drained::default();
        // The guest refills its ring before each of 1,000 wakeups in 50 ms.
        for _ in 0..1000 {
            let cons = page.load_u32(L::OUT_CONS);
            let prod = page.load_u32(L::OUT_PROD);
            put(
                &mut page,
                &alloc::vec![b'x'; (L::OUT_SIZE - prod.wrapping_sub(cons)) as usize],
            );
            let before = c.bytes;
            let d = c.service_at(&mut page[..], t);
            taken += c.bytes - before;
            t += 50_000; // 1,000 wakeups in 50 ms
            last = d;
        }
        assert!(last.throttled_until.is_some_and(|u| u > t));
        // The burst, and what 50 ms earn at the rate (the bucket refills in whole bytes).
        let allowed = u64::from(RATE_BURST) + RATE_BYTES_PER_S / 20;
        assert!(
            taken <= allowed && taken > allowed - 100,
            "{taken} of {allowed}"
        );
        assert_eq!(c.throttled, 1, "throttled, counted once per period");
        // A second later the bucket has refilled: the ring drains again.
        let before = c.bytes;
        let d = c.service_at(&mut page[..], 1_050_000_000);
        assert!(d.notify && c.bytes > before);
        assert_eq!(d.throttled_until, None);
        // A guest at a Linux boot's pace (a 64 KiB log replay, then a line every 10 ms) is
        // never throttled.
        let mut page = alloc::vec![0u8; 4096];
        let mut c = ConsoleBackend::new();
        let mut t = 0;
        for _ in 0..32 {
            put(&mut page, &[b'l'; 2000]);
            assert_eq!(c.service_at(&mut page[..], t).throttled_until, None);
        }
        for _ in 0..1000 {
            t += 10_000_000;
            put(&mut page, &[b'k'; 120]);
            assert_eq!(c.service_at(&mut page[..], t).throttled_until, None);
        }
        assert_eq!(c.throttled, 0);
    }

    #[test]
    fn long_lines_are_split_and_the_report_is_bounded() {
        let mut page = alloc::vec![0u8; 4096];
        let mut c = ConsoleBackend::new();
        put(&mut page, &[b'x'; 1500]);
        let d = c.service(&mut page[..]);
        assert_eq!(d.lines.len(), 2);
        assert_eq!(d.lines[0].len(), MAX_LINE);
        assert_eq!(c.flush().unwrap().len(), 1500 - 2 * MAX_LINE);
        for i in 0..1000 {
            put(&mut page, alloc::format!("line {i}\n").as_bytes());
            c.service(&mut page[..]);
        }
        assert_eq!(c.head.len(), KEEP_LINES);
        assert_eq!(c.tail.len(), KEEP_TAIL);
        assert_eq!(c.tail.back().map(String::as_str), Some("line 999"));
    }
}
