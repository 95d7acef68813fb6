//! The console backend: drains a DomU's PV console ring (`struct xencons_interface`,
//! public/io/console.h) into lines for dom0's console and the run report.
//!
//! The guest controls the indices. Like C xenconsoled (`buffer_append`), a producer index more
//! than a ring ahead of the consumer is not trusted: the backend reports it, skips to the
//! producer and goes on (XSA-39: never loop on guest indices). Bytes are sanitised (control
//! characters other than tab become `?`), lines are cut at [`MAX_LINE`], and the backend keeps
//! at most [`KEEP_LINES`] lines for the report.

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
}

/// What one [`ConsoleBackend::service`] produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub lines: Vec<String>,
    /// Bytes were consumed: notify the guest (it may be waiting for room).
    pub notify: bool,
    /// The guest's indices were corrupt (reported once per occurrence).
    pub bad_indices: Option<(u32, u32)>,
}

impl ConsoleBackend {
    pub fn new() -> ConsoleBackend {
        ConsoleBackend::default()
    }

    /// Drain everything the guest has written so far.
    pub fn service<P: RingPage + ?Sized>(&mut self, page: &mut P) -> Drained {
        let mut out = Drained::default();
        let cons = page.load_u32(L::OUT_CONS);
        let prod = page.load_u32(L::OUT_PROD);
        let avail = prod.wrapping_sub(cons);
        if avail == 0 {
            return out;
        }
        let mut start = cons;
        if avail > L::OUT_SIZE {
            self.bad_indices += 1;
            out.bad_indices = Some((cons, prod));
            // Take the last ring's worth, as if the consumer had been lapped.
            start = prod.wrapping_sub(L::OUT_SIZE);
        }
        let n = prod.wrapping_sub(start);
        let mut buf = alloc::vec![0u8; n as usize];
        let first = (start % L::OUT_SIZE) as usize;
        let until_wrap = (L::OUT_SIZE as usize - first).min(n as usize);
        page.read_bytes(L::OUT + first, &mut buf[..until_wrap]);
        if until_wrap < n as usize {
            page.read_bytes(L::OUT, &mut buf[until_wrap..]);
        }
        page.store_u32(L::OUT_CONS, prod);
        out.notify = true;
        self.bytes += u64::from(n);
        for &c in &buf {
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
        out
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
        // Producer behind consumer: also "more than a ring", same handling, no loop.
        page.store_u32(L::OUT_PROD, 5);
        let d = c.service(&mut page[..]);
        assert!(d.bad_indices.is_some());
        assert_eq!(page.load_u32(L::OUT_CONS), 5);
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
