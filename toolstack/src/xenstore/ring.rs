//! The shared ring page (`struct xenstore_domain_interface`) and the per-domain connection:
//! pull complete requests out of `req[]`, push replies and events into `rsp[]`.
//!
//! The page is shared with a guest that may be hostile: indexes are read once per pass,
//! checked (`prod - cons <= 1024`), and every loop is bounded by the ring size.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use super::DomId;
use super::store::{DomainEvent, Reply, Store};
use super::wire::{HEADER_LEN, Header, Message, MsgType, ProtoError, Request};

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

/// Access to a ring page. On real shared memory `load_u32` must be an acquire load (ring bytes
/// are read after it) and `store_u32` a release store (ring bytes written before it are
/// visible first); the byte copies may be plain volatile copies.
pub trait RingPage {
    fn load_u32(&self, off: usize) -> u32;
    fn store_u32(&mut self, off: usize, v: u32);
    fn read_bytes(&self, off: usize, dst: &mut [u8]);
    fn write_bytes(&mut self, off: usize, src: &[u8]);
}

/// A page in ordinary memory (host tests, or a copy). Out-of-range accesses read zeros and
/// write nothing.
impl RingPage for [u8] {
    fn load_u32(&self, off: usize) -> u32 {
        let mut w = [0u8; 4];
        if let Some(s) = self.get(off..off + 4) {
            w.copy_from_slice(s);
        }
        u32::from_le_bytes(w)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        if let Some(s) = self.get_mut(off..off + 4) {
            s.copy_from_slice(&v.to_le_bytes());
        }
    }
    fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        match self.get(off..off + dst.len()) {
            Some(s) => dst.copy_from_slice(s),
            None => dst.fill(0),
        }
    }
    fn write_bytes(&mut self, off: usize, src: &[u8]) {
        if let Some(s) = self.get_mut(off..off + src.len()) {
            s.copy_from_slice(src);
        }
    }
}

impl<const N: usize> RingPage for [u8; N] {
    fn load_u32(&self, off: usize) -> u32 {
        self[..].load_u32(off)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        self[..].store_u32(off, v);
    }
    fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self[..].read_bytes(off, dst);
    }
    fn write_bytes(&mut self, off: usize, src: &[u8]) {
        self[..].write_bytes(off, src);
    }
}

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
/// outgoing messages.
#[derive(Debug)]
pub struct Connection {
    dom: DomId,
    inbuf: Vec<u8>,
    out: VecDeque<Vec<u8>>,
    out_off: usize,
    broken: Option<RingError>,
    max_pending: usize,
    dropped: u64,
    requests: u64,
}

impl Connection {
    pub fn new(dom: DomId, max_pending: usize) -> Connection {
        Connection {
            dom,
            inbuf: Vec::with_capacity(HEADER_LEN),
            out: VecDeque::new(),
            out_off: 0,
            broken: None,
            max_pending,
            dropped: 0,
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

    /// Requests read from the ring so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Watch events dropped because the queue was full.
    pub fn dropped_events(&self) -> u64 {
        self.dropped
    }

    fn fail<P: RingPage + ?Sized>(&mut self, page: &mut P, e: RingError) -> RingError {
        self.broken = Some(e);
        page.store_u32(L::ERROR, e.code());
        e
    }

    /// Take up to `max` complete requests out of the request ring. Returns them and whether
    /// anything was consumed (then the guest is to be notified). Stops early while too many
    /// replies are queued (the guest is not reading its responses).
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
                if self.inbuf.is_empty()
                    && (reqs.len() >= max || self.out.len() + reqs.len() >= self.max_pending)
                {
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
            self.inbuf.resize(start + take as usize, 0);
            page.read_bytes(L::REQ + idx, &mut self.inbuf[start..start + first]);
            page.read_bytes(L::REQ, &mut self.inbuf[start + first..]);
            cons = cons.wrapping_add(take);
            avail -= take;
            consumed = true;
        }
        if consumed {
            page.store_u32(L::REQ_CONS, cons);
        }
        Ok((reqs, consumed))
    }

    /// Queue a message for the guest. Watch events beyond the pending limit are dropped (and
    /// counted); replies are always queued (their number is bounded by the read throttle).
    pub fn queue(&mut self, m: &Message) -> bool {
        if self.broken.is_some() {
            return false;
        }
        if m.msg_type == MsgType::WatchEvent as u32 && self.out.len() >= self.max_pending {
            self.dropped += 1;
            return false;
        }
        self.out.push_back(m.encode());
        true
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
            let Some(front) = self.out.front() else { break };
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
                self.out.pop_front();
                self.out_off = 0;
            }
        }
        if wrote {
            page.store_u32(L::RSP_PROD, prod);
        }
        Ok(wrote)
    }
}

/// The store plus one connection per introduced domain; dom0 is an in-process client.
#[derive(Debug)]
pub struct Server {
    pub store: Store,
    conns: BTreeMap<DomId, Connection>,
    local: VecDeque<Message>,
    events: Vec<DomainEvent>,
    /// Requests taken from one ring per `service` call.
    pub batch: usize,
}

impl Server {
    pub fn new(store: Store) -> Server {
        Server {
            store,
            conns: BTreeMap::new(),
            local: VecDeque::new(),
            events: Vec::new(),
            batch: 64,
        }
    }

    pub fn connection(&self, dom: DomId) -> Option<&Connection> {
        self.conns.get(&dom)
    }

    /// Open (or reset) the connection of `dom` (XS_INTRODUCE does this itself).
    pub fn connect(&mut self, dom: DomId) {
        let max = self.store.quota().max_pending;
        self.conns.insert(dom, Connection::new(dom, max));
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

    fn route(&mut self, replies: Vec<Reply>) {
        for r in replies {
            if r.to == 0 {
                self.local.push_back(r.msg);
            } else if let Some(c) = self.conns.get_mut(&r.to) {
                c.queue(&r.msg);
            }
        }
        for e in self.store.take_domain_events() {
            match e {
                DomainEvent::Introduced { dom, .. } => self.connect(dom),
                DomainEvent::Released { dom } => {
                    self.conns.remove(&dom);
                }
            }
            self.events.push(e);
        }
    }

    /// A request from dom0 itself; returns every message queued for dom0 (its reply first,
    /// then watch events, including earlier ones).
    pub fn local(&mut self, req: &Request) -> Vec<Message> {
        let r = self.store.handle(0, req);
        self.route(r);
        self.local.drain(..).collect()
    }

    /// Messages queued for dom0 by other domains' actions (watch events).
    pub fn take_local(&mut self) -> Vec<Message> {
        self.local.drain(..).collect()
    }

    /// Serve `dom`'s ring after an event: read a batch of requests, handle them, write the
    /// replies. Returns whether to notify `dom`. Other domains may have received watch events:
    /// see [`Server::domains_with_output`].
    pub fn service<P: RingPage + ?Sized>(
        &mut self,
        dom: DomId,
        page: &mut P,
    ) -> Result<bool, RingError> {
        let batch = self.batch;
        let Some(c) = self.conns.get_mut(&dom) else {
            return Ok(false);
        };
        let (reqs, consumed) = c.read_requests(page, batch)?;
        c.requests += reqs.len() as u64;
        for r in &reqs {
            let out = self.store.handle(dom, r);
            self.route(out);
        }
        let wrote = self.flush(dom, page)?;
        Ok(consumed || wrote)
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
