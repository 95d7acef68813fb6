//! The shared ring page (`struct xenstore_domain_interface`) and the per-domain connection:
//! pull complete requests out of `req[]`, push replies and events into `rsp[]`.
//!
//! The page is shared with a guest that may be hostile: indexes are read once per pass,
//! checked (`prod - cons <= 1024`), and every loop is bounded by the ring size.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use lean::VecMap;

use super::DomId;
use super::account::Refusal;
use super::store::{DomainEvent, Outbox, Store};
use super::wire::{
    HEADER_LEN, Header, Message, MsgType, ProtoError, Request, XENSTORE_PAYLOAD_MAX,
};

/// `XENSTORE_RING_SIZE`.
pub const XENSTORE_RING_SIZE: u32 = 1024;

/// Offsets in the ring page and the values of its status words.
pub mod ring_layout {
    pub const REQ: usize = 0;
    pub const RSP: usize = 1024;
    pub const REQ_CONS: usize = 2048;
    pub const REQ_PROD: usize = 2052;
    pub const RSP_CONS: usize = 2056;
    pub const RSP_PROD: usize = 2060;
    pub const SERVER_FEATURES: usize = 2064;
    pub const CONNECTION: usize = 2068;
    pub const ERROR: usize = 2072;
    /// Bytes of the page the interface uses (up to and including `error`).
    pub const LEN: usize = 2076;

    pub const CONNECTED: u32 = 0;
    pub const RECONNECT: u32 = 1;
    pub const ERROR_NONE: u32 = 0;
    pub const ERROR_COMM: u32 = 1;
    pub const ERROR_RINGIDX: u32 = 2;
    pub const ERROR_PROTO: u32 = 3;
}
use ring_layout as L;

pub use xen::ring::RingPage;

/// Why a connection stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Indexes claim more than a ring's worth of data (`XENSTORE_ERROR_RINGIDX`).
    Index,
    /// A header announced an oversized payload (`XENSTORE_ERROR_PROTO`).
    Proto,
}

impl RingError {
    fn code(self) -> u32 {
        match self {
            RingError::Index => L::ERROR_RINGIDX,
            RingError::Proto => L::ERROR_PROTO,
        }
    }
}

const MASK: u32 = XENSTORE_RING_SIZE - 1;

/// One domain's side of the ring: the partial request being assembled and the queue of
/// outgoing messages, bounded in messages and in bytes.
#[derive(Debug)]
pub struct Connection {
    dom: DomId,
    inbuf: Vec<u8>,
    /// Wire bytes of each queued message, and whether it is a reply (not a watch event).
    out: VecDeque<(Vec<u8>, bool)>,
    out_off: usize,
    /// Bytes of the messages in `out`.
    out_bytes: usize,
    /// Replies in `out` (C's outstanding requests: answered but not yet delivered).
    replies: usize,
    /// Requests read and not yet answered: room for a worst-case reply is kept for each, so
    /// the watch events they cause cannot crowd their replies past the byte bound.
    unanswered: usize,
    broken: Option<RingError>,
    max_pending: usize,
    max_outstanding: usize,
    max_output_bytes: usize,
    dropped: u64,
    held: u64,
    requests: u64,
}

/// Size of one queue slot (`(Vec<u8>, bool)`).
const SLOT: usize = core::mem::size_of::<(Vec<u8>, bool)>();

impl Connection {
    pub fn new(dom: DomId, max_pending: usize) -> Connection {
        let q = super::Quota::default();
        Connection::with_limits(dom, max_pending, q.max_outstanding, q.max_output_bytes)
    }

    /// A connection whose queue holds at most `max_pending` messages and `max_output_bytes`
    /// bytes, and which stops reading requests while `max_outstanding` replies are queued.
    pub fn with_limits(
        dom: DomId,
        max_pending: usize,
        max_outstanding: usize,
        max_output_bytes: usize,
    ) -> Connection {
        Connection {
            dom,
            inbuf: Vec::new(),
            out: VecDeque::new(),
            out_off: 0,
            out_bytes: 0,
            replies: 0,
            unanswered: 0,
            broken: None,
            max_pending,
            max_outstanding: max_outstanding.max(1),
            max_output_bytes,
            dropped: 0,
            held: 0,
            requests: 0,
        }
    }

    pub fn domid(&self) -> DomId {
        self.dom
    }

    /// Set once the guest broke the protocol; the connection is dead until re-introduced.
    pub fn broken(&self) -> Option<RingError> {
        self.broken
    }

    /// Messages queued and not yet (fully) in the ring.
    pub fn pending(&self) -> usize {
        self.out.len()
    }

    /// Bytes of the messages queued and not yet (fully) in the ring.
    pub fn pending_bytes(&self) -> usize {
        self.out_bytes
    }

    /// Requests read from the ring so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Watch events dropped because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    /// Times its requests were left in its ring because its replies were not read.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Heap bytes this connection holds (charged to its domain): the request being
    /// assembled and the queue.
    pub fn bytes(&self) -> u64 {
        (self.inbuf.capacity() + self.out_bytes + self.out.capacity() * SLOT) as u64
    }

    fn fail<P: RingPage + ?Sized>(&mut self, page: &mut P, e: RingError) -> RingError {
        self.broken = Some(e);
        page.store_u32(L::ERROR, e.code());
        e
    }

    /// May another request be read, with `taken` read but not yet answered? Only while
    /// fewer than `max_outstanding` replies wait and a worst-case reply for each would still
    /// fit the byte bound (XSA-326: an unread response ring must not grow dom0's memory).
    fn may_read(&self, taken: usize) -> bool {
        let worst = (self.unanswered + taken + 1) * (HEADER_LEN + XENSTORE_PAYLOAD_MAX);
        self.replies + self.unanswered + taken < self.max_outstanding
            && self.out.len() + taken < self.max_pending
            && self.out_bytes + worst
                <= self.max_output_bytes.max(HEADER_LEN + XENSTORE_PAYLOAD_MAX)
    }

    /// Take up to `max` complete requests out of the request ring. Returns them and whether
    /// anything was consumed (then the guest is to be notified). Stops early while too many
    /// replies are queued (the guest is not reading its responses): its requests wait in
    /// its ring.
    pub fn read_requests<P: RingPage + ?Sized>(
        &mut self,
        page: &mut P,
        max: usize,
    ) -> Result<(Vec<Request>, bool), RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let mut cons = page.load_u32(L::REQ_CONS);
        let prod = page.load_u32(L::REQ_PROD);
        let mut avail = prod.wrapping_sub(cons);
        if avail > XENSTORE_RING_SIZE {
            return Err(self.fail(page, RingError::Index));
        }
        let mut reqs = Vec::new();
        let mut consumed = false;
        loop {
            let want = if self.inbuf.len() >= HEADER_LEN {
                let h = match Header::parse(&self.inbuf) {
                    Ok(h) => h,
                    Err(ProtoError::PayloadTooLong(_)) | Err(ProtoError::Incomplete { .. }) => {
                        return Err(self.fail(page, RingError::Proto));
                    }
                };
                let total = HEADER_LEN + h.len as usize;
                if self.inbuf.len() == total {
                    match Message::parse(&self.inbuf) {
                        Ok(m) => reqs.push(m),
                        Err(_) => return Err(self.fail(page, RingError::Proto)),
                    }
                    self.inbuf.clear();
                    continue;
                }
                total - self.inbuf.len()
            } else {
                if self.inbuf.is_empty() && (reqs.len() >= max || !self.may_read(reqs.len())) {
                    if avail > 0 && !self.may_read(reqs.len()) {
                        self.held += 1;
                    }
                    break;
                }
                HEADER_LEN - self.inbuf.len()
            };
            // `want` ≤ 4096 + 16 and `avail` ≤ 1024: every pass consumes or stops.
            let take = core::cmp::min(want as u32, avail);
            if take == 0 {
                break;
            }
            let idx = (cons & MASK) as usize;
            let first = core::cmp::min(take as usize, XENSTORE_RING_SIZE as usize - idx);
            let start = self.inbuf.len();
            // The request is at most 4112 bytes; a heap that cannot give them stops the read
            // (the bytes stay in the ring) instead of aborting dom0.
            if self.inbuf.try_reserve_exact(want).is_err() {
                break;
            }
            self.inbuf.resize(start + take as usize, 0);
            page.read_bytes(L::REQ + idx, &mut self.inbuf[start..start + first]);
            page.read_bytes(L::REQ, &mut self.inbuf[start + first..]);
            cons = cons.wrapping_add(take);
            avail -= take;
            consumed = true;
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > 0 {
            // Do not keep a 4 KiB buffer per idle guest.
            self.inbuf = Vec::new();
        }
        if consumed {
            page.store_u32(L::REQ_CONS, cons);
        }
        self.unanswered += reqs.len();
        Ok((reqs, consumed))
    }

    /// Is there room for a watch event of `wire_len` bytes? A "no" counts a dropped event
    /// (C xenstored drops events for a domain over its quota too).
    pub fn room_for_event(&mut self, wire_len: usize) -> bool {
        if self.broken.is_some() {
            return false;
        }
        let reserved = self.unanswered * (HEADER_LEN + XENSTORE_PAYLOAD_MAX);
        if self.out.len() + self.unanswered >= self.max_pending
            || self.out_bytes + reserved + wire_len > self.max_output_bytes
        {
            self.dropped += 1;
            return false;
        }
        true
    }

    fn push(&mut self, m: &Message, reply: bool) -> bool {
        let mut v = Vec::new();
        if v.try_reserve_exact(m.wire_len()).is_err() || self.out.try_reserve(1).is_err() {
            return false;
        }
        m.encode_into(&mut v);
        self.out_bytes += v.len();
        self.replies += usize::from(reply);
        self.out.push_back((v, reply));
        true
    }

    /// Queue a message for the guest. Watch events beyond the queue's bounds are dropped (and
    /// counted); replies are always queued (their number and size are bounded by the read
    /// throttle). `false`: not queued.
    pub fn queue(&mut self, m: &Message) -> bool {
        if self.broken.is_some() {
            return false;
        }
        if m.msg_type == MsgType::WatchEvent as u32 {
            if !self.room_for_event(m.wire_len()) {
                return false;
            }
            return self.push(m, false);
        }
        self.unanswered = self.unanswered.saturating_sub(1);
        self.push(m, true)
    }

    /// Copy queued messages into the response ring as far as there is room. Returns whether
    /// anything was written (then the guest is to be notified).
    pub fn write_replies<P: RingPage + ?Sized>(&mut self, page: &mut P) -> Result<bool, RingError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let cons = page.load_u32(L::RSP_CONS);
        let mut prod = page.load_u32(L::RSP_PROD);
        let used = prod.wrapping_sub(cons);
        if used > XENSTORE_RING_SIZE {
            return Err(self.fail(page, RingError::Index));
        }
        let mut free = XENSTORE_RING_SIZE - used;
        let mut wrote = false;
        while free > 0 {
            let Some((front, reply)) = self.out.front() else {
                break;
            };
            let chunk = &front[self.out_off..];
            let n = core::cmp::min(chunk.len(), free as usize);
            let idx = (prod & MASK) as usize;
            let first = core::cmp::min(n, XENSTORE_RING_SIZE as usize - idx);
            page.write_bytes(L::RSP + idx, &chunk[..first]);
            page.write_bytes(L::RSP, &chunk[first..n]);
            prod = prod.wrapping_add(n as u32);
            free -= n as u32;
            wrote = true;
            self.out_off += n;
            if self.out_off == front.len() {
                let (len, reply) = (front.len(), *reply);
                self.out.pop_front();
                self.out_bytes -= len;
                self.replies -= usize::from(reply);
                self.out_off = 0;
            }
        }
        if self.out.is_empty() && self.out.capacity() > 8 {
            // A burst's queue is not kept (nor charged) once the guest caught up.
            self.out = VecDeque::new();
        }
        if wrote {
            page.store_u32(L::RSP_PROD, prod);
        }
        Ok(wrote)
    }
}

/// Watch events kept for dom0 itself at most (messages and bytes); dom0 drains them after
/// each of its own requests, and a DomU's changes must not grow them without bound either.
const LOCAL_MAX: usize = 1024;
const LOCAL_MAX_BYTES: usize = 256 * 1024;

/// Routes what the store produces: dom0's messages to the local queue, a DomU's to its
/// connection, each event only if its receiver has room.
struct Route<'a> {
    conns: &'a mut VecMap<DomId, Connection>,
    local: &'a mut VecDeque<Message>,
    local_bytes: &'a mut usize,
}

impl Outbox for Route<'_> {
    fn room(&mut self, to: DomId, wire_len: usize) -> bool {
        if to == 0 {
            return self.local.len() < LOCAL_MAX && *self.local_bytes + wire_len <= LOCAL_MAX_BYTES;
        }
        self.conns
            .get_mut(&to)
            .is_some_and(|c| c.room_for_event(wire_len))
    }
    fn push(&mut self, to: DomId, msg: Message) {
        if to == 0 {
            *self.local_bytes += msg.wire_len();
            self.local.push_back(msg);
        } else if let Some(c) = self.conns.get_mut(&to) {
            c.queue(&msg);
        }
    }
    fn reply(&mut self, to: DomId, msg: Message) -> bool {
        if to == 0 {
            *self.local_bytes += msg.wire_len();
            self.local.push_back(msg);
            return true;
        }
        match self.conns.get_mut(&to) {
            Some(c) => c.queue(&msg) || c.broken().is_some(),
            None => true,
        }
    }
}

/// The store plus one connection per introduced domain; dom0 is an in-process client.
#[derive(Debug)]
pub struct Server {
    pub store: Store,
    conns: VecMap<DomId, Connection>,
    local: VecDeque<Message>,
    local_bytes: usize,
    events: Vec<DomainEvent>,
    /// Most bytes charged to each domain (kept after release until taken).
    peaks: VecMap<DomId, u64>,
    /// Requests taken from one ring per `service` call (the work done for one domain on
    /// one wakeup is bounded by this).
    pub batch: usize,
}

impl Server {
    pub fn new(store: Store) -> Server {
        Server {
            store,
            conns: VecMap::new(),
            local: VecDeque::new(),
            local_bytes: 0,
            events: Vec::new(),
            peaks: VecMap::new(),
            batch: 64,
        }
    }

    pub fn connection(&self, dom: DomId) -> Option<&Connection> {
        self.conns.get(&dom)
    }

    /// Open (or reset) the connection of `dom` (XS_INTRODUCE does this itself).
    pub fn connect(&mut self, dom: DomId) {
        let q = self.store.quota();
        let c = Connection::with_limits(dom, q.max_pending, q.max_outstanding, q.max_output_bytes);
        self.conns.insert(dom, c);
    }

    /// Bytes charged to `dom` now: what the store holds for it and its connection.
    pub fn charged(&self, dom: DomId) -> u64 {
        self.store.charged(dom) + self.conns.get(&dom).map_or(0, Connection::bytes)
    }

    /// Record `dom`'s charge for its peak.
    pub fn sample(&mut self, dom: DomId) {
        if dom == 0 {
            return;
        }
        let now = self.charged(dom);
        let p = self.peaks.entry(dom).or_insert(0);
        *p = (*p).max(now);
    }

    /// [`Server::sample`] every connected domain.
    pub fn sample_all(&mut self) {
        let doms: Vec<DomId> = self.conns.keys().copied().collect();
        for d in doms {
            self.sample(d);
        }
    }

    /// What `dom` is charged, its peak, and what it was refused (the connection's dropped
    /// events and held reads included).
    pub fn stats(&self, dom: DomId) -> super::account::DomainStats {
        let mut s = self.store.stats(dom);
        s.bytes = self.charged(dom);
        s.peak_bytes = self.peaks.get(&dom).copied().unwrap_or(0).max(s.bytes);
        if let Some(c) = self.conns.get(&dom) {
            s.refusals.add_n(Refusal::EventDropped, c.dropped);
            s.refusals.add_n(Refusal::ReadHeld, c.held);
        }
        s
    }

    /// [`Server::stats`], forgetting the peak and the refusals (after the domain is gone).
    pub fn take_stats(&mut self, dom: DomId) -> super::account::DomainStats {
        let s = self.stats(dom);
        self.peaks.remove(&dom);
        let _ = self.store.take_refusals(dom);
        s
    }

    /// Queued output for `dom`'s ring?
    pub fn has_output(&self, dom: DomId) -> bool {
        self.conns.get(&dom).is_some_and(|c| c.pending() > 0)
    }

    /// Domains with queued output (flush their rings).
    pub fn domains_with_output(&self) -> Vec<DomId> {
        self.conns
            .iter()
            .filter(|(_, c)| c.pending() > 0 && c.broken().is_none())
            .map(|(d, _)| *d)
            .collect()
    }

    /// Introductions and releases for the caller to act on (map/unmap, bind/close).
    pub fn take_domain_events(&mut self) -> Vec<DomainEvent> {
        core::mem::take(&mut self.events)
    }

    /// Handle one request from `dom` and route its reply and events.
    fn handle(&mut self, dom: DomId, req: &Request) {
        let mut route = Route {
            conns: &mut self.conns,
            local: &mut self.local,
            local_bytes: &mut self.local_bytes,
        };
        self.store.handle_to(dom, req, &mut route);
        self.after_events();
    }

    fn after_events(&mut self) {
        for e in self.store.take_domain_events() {
            match e {
                DomainEvent::Introduced { dom, .. } => self.connect(dom),
                DomainEvent::Released { dom } => {
                    // Its last dropped/held counts go into its refusals before it goes.
                    self.sample(dom);
                    if let Some(c) = self.conns.remove(&dom) {
                        self.fold_counts(dom, &c);
                    }
                }
            }
            self.events.push(e);
        }
    }

    fn fold_counts(&mut self, dom: DomId, c: &Connection) {
        self.store
            .note_refusals(dom, Refusal::EventDropped, c.dropped);
        self.store.note_refusals(dom, Refusal::ReadHeld, c.held);
    }

    /// A request from dom0 itself; returns every message queued for dom0 (its reply first,
    /// then watch events, including earlier ones).
    pub fn local(&mut self, req: &Request) -> Vec<Message> {
        self.handle(0, req);
        self.take_local()
    }

    /// Messages queued for dom0 by other domains' actions (watch events).
    pub fn take_local(&mut self) -> Vec<Message> {
        self.local_bytes = 0;
        self.local.drain(..).collect()
    }

    /// The domain died without XS_RELEASE: clean up as for a release.
    pub fn domain_gone(&mut self, dom: DomId) {
        let mut route = Route {
            conns: &mut self.conns,
            local: &mut self.local,
            local_bytes: &mut self.local_bytes,
        };
        self.store.domain_gone_to(dom, &mut route);
        self.after_events();
    }

    /// Serve `dom`'s ring after an event: read requests (at most [`Server::batch`], and only
    /// while its replies are being read), handle them, write the replies. Returns whether
    /// to notify `dom`. Other domains may have received watch events: see
    /// [`Server::domains_with_output`].
    pub fn service<P: RingPage + ?Sized>(
        &mut self,
        dom: DomId,
        page: &mut P,
    ) -> Result<bool, RingError> {
        let mut left = self.batch;
        // Room the guest made in its response ring first: that may let its requests in.
        let mut notify = self.flush(dom, page)?;
        while left > 0 {
            let Some(c) = self.conns.get_mut(&dom) else {
                return Ok(notify);
            };
            // The read throttle keeps room for a worst-case reply to each request read, and
            // events only take what is left: the queue stays under `max_output_bytes`.
            let (reqs, consumed) = c.read_requests(page, left)?;
            c.requests += reqs.len() as u64;
            notify |= consumed;
            left = left.saturating_sub(reqs.len().max(1));
            let got = !reqs.is_empty();
            for r in &reqs {
                self.handle(dom, r);
                self.sample(dom);
            }
            notify |= self.flush(dom, page)?;
            if !got {
                break;
            }
        }
        Ok(notify)
    }

    /// Write queued output into `dom`'s ring. Returns whether to notify.
    pub fn flush<P: RingPage + ?Sized>(
        &mut self,
        dom: DomId,
        page: &mut P,
    ) -> Result<bool, RingError> {
        match self.conns.get_mut(&dom) {
            Some(c) => c.write_replies(page),
            None => Ok(false),
        }
    }
}
