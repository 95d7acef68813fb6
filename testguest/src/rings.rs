//! The guest ends of the two rings dom0 serves: the PV console (`struct xencons_interface`,
//! offsets from `toolstack::console::layout`) and xenstore (`struct xenstore_domain_interface`,
//! `toolstack::xenstore::ring_layout`, messages framed with `toolstack::xenstore::wire`).
//! Both pages are accessed through the toolstack's [`RingPage`] trait, the same one dom0 uses
//! for its end.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use toolstack::console::layout as con;
use toolstack::xenstore::{HEADER_LEN, Header, MsgType, ProtoError};
use toolstack::xenstore::{RingPage, XENSTORE_RING_SIZE, ring_layout as xs};
use xen::ops::{self, EvtchnPort};

use crate::hv::{self, Xen};

const PAGE: usize = 4096;

/// A ring page shared with dom0, at its guest-physical address (identity map). Indices are
/// atomics (acquire/release), bytes are volatile copies, every offset is checked.
#[derive(Debug)]
pub struct SharedPage(*mut u8);

impl SharedPage {
    /// The page at `pfn`.
    ///
    /// # Safety
    /// `pfn` must be a RAM page of this guest, below 4 GiB (identity-mapped by the boot stub),
    /// that only this object and the other end of the ring access.
    pub unsafe fn new(pfn: u64) -> SharedPage {
        SharedPage((pfn << 12) as *mut u8)
    }

    fn atomic(&self, off: usize) -> Option<&AtomicU32> {
        if !off.is_multiple_of(4) || off + 4 > PAGE {
            return None;
        }
        // SAFETY: the page is mapped RAM for the guest's whole life (see `new`); `off` is
        // 4-aligned and inside it.
        Some(unsafe { AtomicU32::from_ptr(self.0.add(off).cast()) })
    }
}

impl RingPage for SharedPage {
    fn load_u32(&self, off: usize) -> u32 {
        self.atomic(off).map_or(0, |a| a.load(Ordering::Acquire))
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        if let Some(a) = self.atomic(off) {
            a.store(v, Ordering::Release);
        }
    }
    fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        if off + dst.len() > PAGE {
            dst.fill(0);
            return;
        }
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: inside the mapped page (checked above).
            *d = unsafe { core::ptr::read_volatile(self.0.add(off + i)) };
        }
    }
    fn write_bytes(&mut self, off: usize, src: &[u8]) {
        if off + src.len() > PAGE {
            return;
        }
        for (i, s) in src.iter().enumerate() {
            // SAFETY: inside the mapped page (checked above).
            unsafe { core::ptr::write_volatile(self.0.add(off + i), *s) };
        }
    }
}

/// Copy `bytes` into the ring of `size` bytes (a power of two) at `base`, starting at index
/// `idx`: at most two contiguous pieces.
fn ring_put(page: &mut SharedPage, base: usize, size: u32, idx: u32, bytes: &[u8]) {
    let at = (idx & (size - 1)) as usize;
    let first = bytes.len().min(size as usize - at);
    page.write_bytes(base + at, &bytes[..first]);
    page.write_bytes(base, &bytes[first..]);
}

/// Copy `dst.len()` bytes out of the ring of `size` bytes at `base`, from index `idx`.
fn ring_get(page: &SharedPage, base: usize, size: u32, idx: u32, dst: &mut [u8]) {
    let at = (idx & (size - 1)) as usize;
    let first = dst.len().min(size as usize - at);
    let (a, b) = dst.split_at_mut(first);
    page.read_bytes(base + at, a);
    page.read_bytes(base, b);
}

/// The console's output ring.
#[derive(Debug)]
pub struct Console {
    page: SharedPage,
    pub port: EvtchnPort,
}

impl Console {
    pub fn new(page: SharedPage, port: EvtchnPort) -> Console {
        Console { page, port }
    }

    /// Put as much of `bytes` as fits into the ring now; returns how much.
    pub fn try_write(&mut self, bytes: &[u8]) -> usize {
        let cons = self.page.load_u32(con::OUT_CONS);
        let prod = self.page.load_u32(con::OUT_PROD);
        let used = prod.wrapping_sub(cons).min(con::OUT_SIZE);
        let n = bytes.len().min((con::OUT_SIZE - used) as usize);
        ring_put(&mut self.page, con::OUT, con::OUT_SIZE, prod, &bytes[..n]);
        self.page
            .store_u32(con::OUT_PROD, prod.wrapping_add(n as u32));
        n
    }

    /// Write all of `bytes`, notifying dom0 and waiting for room; gives up when dom0 has not
    /// taken a byte for `patience_ns`. Returns the bytes written.
    pub fn write(&mut self, x: &Xen, bytes: &[u8], patience_ns: u64) -> usize {
        let mut done = 0;
        let mut last_progress = hv::now_ns();
        while done < bytes.len() {
            let n = self.try_write(&bytes[done..]);
            done += n;
            let _ = ops::evtchn_send(x, self.port);
            if done == bytes.len() {
                break;
            }
            let now = hv::now_ns();
            if n > 0 {
                last_progress = now;
            } else if now - last_progress > patience_ns {
                break;
            }
            if n == 0 {
                hv::wait(x, &[self.port], 5_000_000);
            }
        }
        done
    }

    /// Claim that `extra` more bytes were written than the ring holds (bad indices), and tell
    /// dom0. Returns the producer index written.
    pub fn corrupt_producer(&mut self, x: &Xen, extra: u32) -> u32 {
        let cons = self.page.load_u32(con::OUT_CONS);
        let prod = cons.wrapping_add(extra);
        self.page.store_u32(con::OUT_PROD, prod);
        let _ = ops::evtchn_send(x, self.port);
        prod
    }

    /// dom0 has consumed everything written so far.
    pub fn drained(&self) -> bool {
        self.page.load_u32(con::OUT_CONS) == self.page.load_u32(con::OUT_PROD)
    }
}

/// What came back on the xenstore response ring.
#[derive(Debug, Default)]
pub struct Tally {
    pub replies: u64,
    pub watch_events: u64,
    /// Error replies by errno name (`ENOMEM`, `E2BIG`, `EQUOTA`, `EACCES`, ...).
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn add(&mut self, other: &Tally) {
        self.replies += other.replies;
        self.watch_events += other.watch_events;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }

    /// `ENOMEM 3, EQUOTA 10` (or `none`).
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return String::from("none");
        }
        let mut s = String::new();
        for (k, v) in &self.errors {
            if !s.is_empty() {
                s.push_str(", ");
            }
            s.push_str(&alloc::format!("{k} {v}"));
        }
        s
    }
}

/// One reply: its header and payload.
#[derive(Debug)]
pub struct Reply {
    pub header: Header,
    pub payload: Vec<u8>,
}

impl Reply {
    /// The errno name of an error reply.
    pub fn error(&self) -> Option<String> {
        (self.header.msg_type == MsgType::Error as u32).then(|| text(&self.payload))
    }
}

/// A NUL-terminated string payload as text.
pub fn text(payload: &[u8]) -> String {
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    String::from_utf8_lossy(&payload[..end]).into_owned()
}

/// The xenstore client: requests are queued in `outbuf` and streamed into the request ring as
/// dom0 makes room (a message may be larger than the ring); replies are read only when asked.
#[derive(Debug)]
pub struct Store {
    page: SharedPage,
    pub port: EvtchnPort,
    outbuf: Vec<u8>,
    inbuf: Vec<u8>,
    next_id: u32,
    /// Requests queued so far, and replies (not watch events) read so far.
    pub sent: u64,
    pub answered: u64,
    pub tally: Tally,
}

/// Queue no more than this many bytes ahead of the request ring.
const OUTBUF_LIMIT: usize = 8192;

impl Store {
    pub fn new(page: SharedPage, port: EvtchnPort) -> Store {
        Store {
            page,
            port,
            outbuf: Vec::new(),
            inbuf: Vec::new(),
            next_id: 1,
            sent: 0,
            answered: 0,
            tally: Tally::default(),
        }
    }

    /// Queue a request if there is room in the local queue; returns its request id.
    pub fn queue(&mut self, ty: MsgType, tx: u32, payload: &[u8]) -> Option<u32> {
        if self.outbuf.len() >= OUTBUF_LIMIT {
            return None;
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let h = Header {
            msg_type: ty as u32,
            req_id: id,
            tx_id: tx,
            len: payload.len() as u32,
        };
        self.outbuf.extend_from_slice(&h.encode());
        self.outbuf.extend_from_slice(payload);
        self.sent += 1;
        Some(id)
    }

    /// Move queued bytes into the request ring; returns how many moved. Notifies dom0.
    pub fn pump(&mut self, x: &Xen) -> usize {
        if self.outbuf.is_empty() {
            return 0;
        }
        let cons = self.page.load_u32(xs::REQ_CONS);
        let prod = self.page.load_u32(xs::REQ_PROD);
        let used = prod.wrapping_sub(cons).min(XENSTORE_RING_SIZE);
        let n = self.outbuf.len().min((XENSTORE_RING_SIZE - used) as usize);
        ring_put(
            &mut self.page,
            xs::REQ,
            XENSTORE_RING_SIZE,
            prod,
            &self.outbuf[..n],
        );
        self.page
            .store_u32(xs::REQ_PROD, prod.wrapping_add(n as u32));
        self.outbuf.drain(..n);
        let _ = ops::evtchn_send(x, self.port);
        n
    }

    /// Bytes still waiting to go into the request ring.
    pub fn backlog(&self) -> usize {
        self.outbuf.len()
    }

    /// Read one complete reply or watch event from the response ring, if there is one.
    pub fn recv(&mut self, x: &Xen) -> Option<Reply> {
        let cons = self.page.load_u32(xs::RSP_CONS);
        let prod = self.page.load_u32(xs::RSP_PROD);
        let avail = prod.wrapping_sub(cons).min(XENSTORE_RING_SIZE);
        if avail > 0 {
            let old = self.inbuf.len();
            self.inbuf.resize(old + avail as usize, 0);
            ring_get(
                &self.page,
                xs::RSP,
                XENSTORE_RING_SIZE,
                cons,
                &mut self.inbuf[old..],
            );
            self.page.store_u32(xs::RSP_CONS, cons.wrapping_add(avail));
            let _ = ops::evtchn_send(x, self.port);
        }
        let h = match Header::parse(&self.inbuf) {
            Ok(h) => h,
            Err(ProtoError::Incomplete { .. }) => return None,
            Err(ProtoError::PayloadTooLong(_)) => {
                // Not a reply dom0 may send; drop what we have rather than wait for ever.
                self.inbuf.clear();
                return None;
            }
        };
        let end = HEADER_LEN + h.len as usize;
        if self.inbuf.len() < end {
            return None;
        }
        let payload = self.inbuf[HEADER_LEN..end].to_vec();
        self.inbuf.drain(..end);
        let r = Reply { header: h, payload };
        if h.msg_type == MsgType::WatchEvent as u32 {
            self.tally.watch_events += 1;
        } else {
            self.answered += 1;
            self.tally.replies += 1;
            if let Some(e) = r.error() {
                *self.tally.errors.entry(e).or_default() += 1;
            }
        }
        Some(r)
    }

    /// Requests that have no reply yet.
    pub fn outstanding(&self) -> u64 {
        self.sent - self.answered
    }

    /// Read replies and events (and keep sending what is queued) until every request has its
    /// reply and nothing more has come for 100 ms, or nothing at all has come for `idle_ns`
    /// (dom0 stopped answering).
    pub fn drain(&mut self, x: &Xen, idle_ns: u64) {
        let mut last = hv::now_ns();
        loop {
            let mut progress = self.pump(x) > 0;
            while self.recv(x).is_some() {
                progress = true;
            }
            let now = hv::now_ns();
            let quiet = now - last;
            if progress {
                last = now;
            } else if quiet > idle_ns
                || (quiet > 100_000_000 && self.outstanding() == 0 && self.backlog() == 0)
            {
                return;
            } else {
                hv::wait(x, &[self.port], 10_000_000);
            }
        }
    }

    /// Send one request and wait (at most `timeout_ns`) for its reply; other replies and
    /// events read meanwhile are only counted.
    pub fn call(
        &mut self,
        x: &Xen,
        ty: MsgType,
        tx: u32,
        payload: &[u8],
        timeout_ns: u64,
    ) -> Option<Reply> {
        let deadline = hv::now_ns() + timeout_ns;
        let id = loop {
            if let Some(id) = self.queue(ty, tx, payload) {
                break id;
            }
            self.pump(x);
            while self.recv(x).is_some() {}
            if hv::now_ns() > deadline {
                return None;
            }
            hv::wait(x, &[self.port], 10_000_000);
        };
        while hv::now_ns() < deadline {
            self.pump(x);
            while let Some(r) = self.recv(x) {
                if r.header.req_id == id && r.header.msg_type != MsgType::WatchEvent as u32 {
                    return Some(r);
                }
            }
            hv::wait(x, &[self.port], 10_000_000);
        }
        None
    }
}
