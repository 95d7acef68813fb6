//! The store: the tree plus watches, transactions, domains and quotas, driven one request at
//! a time by [`Store::handle`].

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::Cell;
use lean::VecMap;

use super::account::{
    DOM0_SLACK, DomainStats, Refusal, Refusals, TX_OVERHEAD, WATCH_OVERHEAD, output_reserve,
};
use super::path::{canonicalize, domain_path, parse_domid, parse_u64, too_long};
use super::perms::{Access, Perms};
use super::tree::{self, Caller, Change, Direct, InTx, Transaction, Tree, View, watch_matches};
use super::wire::{
    HEADER_LEN, Message, MsgType, Request, XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XsError,
    split_args,
};
use super::{DomId, Quota};

mod dispatch;

/// Where watch events go. The store asks for room *before* it builds an event, so what one
/// request (a commit of many changes seen by many watches) allocates for events is bounded by
/// the room its receivers have, never by changes × watches.
pub trait Outbox {
    /// Is there room for a message of `wire_len` bytes for `to`? (A "no" drops the event;
    /// the outbox counts it.)
    fn room(&mut self, to: DomId, wire_len: usize) -> bool;
    fn push(&mut self, to: DomId, msg: Message);
    /// The reply to a request (always kept: the read throttle bounds them). `false`: it
    /// could not be queued (no memory).
    fn reply(&mut self, to: DomId, msg: Message) -> bool;
}

/// Unbounded: every event is kept (dom0's convenience calls and tests).
impl Outbox for Vec<Reply> {
    fn room(&mut self, _to: DomId, _wire_len: usize) -> bool {
        true
    }
    fn push(&mut self, to: DomId, msg: Message) {
        Vec::push(self, Reply { to, msg });
    }
    fn reply(&mut self, to: DomId, msg: Message) -> bool {
        Vec::push(self, Reply { to, msg });
        true
    }
}

/// Special watch path fired when a domain is introduced.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// Special watch path fired when a domain is released.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// A message for one domain's connection: a reply or a watch event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub to: DomId,
    pub msg: Message,
}

/// Work for the caller outside the store (mapping rings, binding event channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainEvent {
    /// XS_INTRODUCE: map `gfn` of `dom` and bind its event channel `port`.
    Introduced { dom: DomId, gfn: u64, port: u32 },
    /// XS_RELEASE: drop the domain's connection.
    Released { dom: DomId },
}

/// What XS_INTRODUCE recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    pub gfn: u64,
    pub port: u32,
}

#[derive(Clone, Debug)]
struct Watch {
    /// As the client sent it (reported back for the initial event and ancestor removal).
    raw: String,
    abs: String,
    relative: bool,
    token: Vec<u8>,
}

impl Watch {
    fn cost(&self) -> u64 {
        WATCH_OVERHEAD + (self.raw.capacity() + self.abs.capacity() + self.token.capacity()) as u64
    }
}

#[derive(Default)]
struct Pending {
    changes: Vec<Change>,
    direct: Vec<Reply>,
}

/// The xenstore service state.
#[derive(Debug)]
pub struct Store {
    tree: Tree,
    quota: Quota,
    watches: VecMap<DomId, Vec<Watch>>,
    txns: VecMap<(DomId, u32), Transaction>,
    next_tx: VecMap<DomId, u32>,
    domains: VecMap<DomId, DomainInfo>,
    targets: VecMap<DomId, DomId>,
    special: VecMap<&'static str, Perms>,
    events: Vec<DomainEvent>,
    /// Bytes charged to each domain for its watches.
    watch_bytes: VecMap<DomId, u64>,
    /// What each domain was refused (kept after release until [`Store::take_refusals`]).
    refusals: VecMap<DomId, Refusals>,
    /// Most bytes all DomUs together may make the service hold (see [`Store::set_global_limit`]).
    global_limit: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(Quota::default())
    }
}

fn one_arg(payload: &[u8]) -> Result<&[u8], XsError> {
    match split_args(payload) {
        Some(v) if v.len() == 1 => Ok(v[0]),
        _ => Err(XsError::Inval),
    }
}

fn args_n(payload: &[u8], n: usize) -> Result<Vec<&[u8]>, XsError> {
    match split_args(payload) {
        Some(v) if v.len() >= n => Ok(v),
        _ => Err(XsError::Inval),
    }
}

/// Length of [`relativize`]'s answer, without building it.
fn relative_len(path: &str, dom: DomId) -> usize {
    let mut base = [0u8; 24];
    let mut w = Cursor(&mut base, 0);
    let _ = core::fmt::Write::write_fmt(&mut w, format_args!("/local/domain/{dom}/"));
    let n = w.1;
    match path.as_bytes().get(..n) {
        Some(p) if p == &base[..n] && path.len() > n => path.len() - n,
        _ => path.len(),
    }
}

struct Cursor<'a>(&'a mut [u8], usize);

impl core::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.1 + s.len();
        let dst = self.0.get_mut(self.1..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.1 = end;
        Ok(())
    }
}

fn relativize(path: &str, dom: DomId) -> String {
    let base = domain_path(dom);
    match path
        .strip_prefix(base.as_str())
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(rel) if !rel.is_empty() => rel.to_string(),
        _ => path.to_string(),
    }
}

impl Store {
    /// An empty store: just `/` (owned by dom0, no access for others).
    pub fn new(quota: Quota) -> Store {
        let mut special = VecMap::new();
        special.insert(INTRODUCE_DOMAIN, Perms::new(0, Access::None));
        special.insert(RELEASE_DOMAIN, Perms::new(0, Access::None));
        Store {
            tree: Tree::new(),
            quota,
            watches: VecMap::new(),
            txns: VecMap::new(),
            next_tx: VecMap::new(),
            domains: VecMap::new(),
            targets: VecMap::new(),
            special,
            events: Vec::new(),
            watch_bytes: VecMap::new(),
            refusals: VecMap::new(),
            global_limit: u64::MAX,
        }
    }

    /// Cap what all DomUs together may make the service hold (their nodes, watches,
    /// transactions, and an output reserve of [`output_reserve`] per introduced domain).
    pub fn set_global_limit(&mut self, bytes: u64) {
        self.global_limit = bytes;
    }

    pub fn global_limit(&self) -> u64 {
        self.global_limit
    }

    /// Bytes charged to `dom` for what the store holds for it: nodes it owns, its watches
    /// and its open transactions (its connection's queue is charged by the [`super::Server`]).
    pub fn charged(&self, dom: DomId) -> u64 {
        let tx: u64 = self
            .txns
            .range((dom, 0)..=(dom, u32::MAX))
            .map(|(_, t)| t.bytes)
            .sum();
        self.tree.bytes_of(dom) + self.watch_bytes.get(&dom).copied().unwrap_or(0) + tx
    }

    /// What all DomUs hold, plus the output reserve of every introduced domain.
    pub fn domu_total(&self) -> u64 {
        let tree = self.tree.domu_bytes;
        let watches: u64 = self.watch_bytes.range(1..).map(|(_, b)| *b).sum();
        let tx: u64 = self.txns.range((1, 0)..).map(|(_, t)| t.bytes).sum();
        let reserve = self.domains.len() as u64
            * output_reserve(self.quota.max_output_bytes, self.quota.max_pending);
        tree + watches + tx + reserve
    }

    /// The most `dom`'s own requests may make the store hold for it: its limit less the
    /// output reserve and [`DOM0_SLACK`].
    pub fn state_limit(&self) -> u64 {
        self.quota
            .max_bytes
            .saturating_sub(output_reserve(
                self.quota.max_output_bytes,
                self.quota.max_pending,
            ))
            .saturating_sub(DOM0_SLACK)
    }

    /// Bytes `dom` may still add, and which limit binds (`None`: dom0, unlimited).
    fn room(&self, dom: DomId) -> (Option<u64>, Refusal) {
        if dom == 0 {
            return (None, Refusal::MemoryQuota);
        }
        let own = self.state_limit().saturating_sub(self.charged(dom));
        let all = self.global_limit.saturating_sub(self.domu_total());
        if all < own {
            (Some(all), Refusal::GlobalCap)
        } else {
            (Some(own), Refusal::MemoryQuota)
        }
    }

    /// Count a refusal for `dom` (the service counts output it held back the same way).
    pub fn note_refusal(&mut self, dom: DomId, why: Refusal) {
        if dom != 0 {
            self.refusals.entry(dom).or_default().add(why);
        }
    }

    /// Count `n` refusals of one kind for `dom`.
    pub fn note_refusals(&mut self, dom: DomId, why: Refusal, n: u64) {
        if dom != 0 && n > 0 {
            self.refusals.entry(dom).or_default().add_n(why, n);
        }
    }

    /// What `dom` was refused so far.
    pub fn refusals(&self, dom: DomId) -> Refusals {
        self.refusals.get(&dom).cloned().unwrap_or_default()
    }

    /// Forget `dom`'s refusal counters (after reporting them).
    pub fn take_refusals(&mut self, dom: DomId) -> Refusals {
        self.refusals.remove(&dom).unwrap_or_default()
    }

    /// Current charge and refusals of `dom` (peak is the server's business).
    pub fn stats(&self, dom: DomId) -> DomainStats {
        DomainStats {
            bytes: self.charged(dom),
            peak_bytes: 0,
            refusals: self.refusals(dom),
        }
    }

    /// Recompute every charge from scratch and compare (tests and fuzzing).
    pub fn check_accounting(&self) -> Result<(), &'static str> {
        self.tree.check()?;
        let mut wb: VecMap<DomId, u64> = VecMap::new();
        for (d, ws) in &self.watches {
            let c: u64 = ws.iter().map(Watch::cost).sum();
            if c > 0 {
                wb.insert(*d, c);
            }
        }
        if wb != self.watch_bytes {
            return Err("watch charges wrong");
        }
        for (&(d, _), t) in &self.txns {
            if d != 0 && t.bytes < super::account::TX_OVERHEAD {
                return Err("transaction charge wrong");
            }
        }
        if self.domu_total()
            > self.global_limit.max(
                self.domains.len() as u64
                    * output_reserve(self.quota.max_output_bytes, self.quota.max_pending),
            )
        {
            return Err("all-DomU cap exceeded");
        }
        for d in self.domains.keys() {
            if self.charged(*d) > self.state_limit() + DOM0_SLACK {
                return Err("a domain holds more than its limit");
            }
        }
        Ok(())
    }

    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Domains introduced and not released.
    pub fn domains(&self) -> &VecMap<DomId, DomainInfo> {
        &self.domains
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.tree.nodes.len()
    }

    /// Introductions and releases since the last call (the caller maps/unmaps rings).
    pub fn take_domain_events(&mut self) -> Vec<DomainEvent> {
        core::mem::take(&mut self.events)
    }

    /// Check the tree's invariants.
    pub fn check(&self) -> Result<(), &'static str> {
        self.tree.check()
    }

    /// Handle one request from `dom`. The first reply always goes to `dom` (the answer, or
    /// an XS_ERROR); any further ones are watch events for whichever domain they name.
    pub fn handle(&mut self, dom: DomId, req: &Request) -> Vec<Reply> {
        let mut out = Vec::new();
        self.handle_to(dom, req, &mut out);
        out
    }

    /// Handle one request from `dom`: hands its reply to `out` first, then every watch event
    /// it causes, each one only if `out` has room for it.
    pub fn handle_to(&mut self, dom: DomId, req: &Request, out: &mut dyn Outbox) {
        let mut pending = Pending::default();
        // Only requests that can make the store hold more need to know the room (reads
        // outside transactions allocate nothing that stays: they get none).
        let may_grow = req.tx_id != 0
            || matches!(
                req.kind(),
                Some(
                    MsgType::Write
                        | MsgType::Mkdir
                        | MsgType::SetPerms
                        | MsgType::Watch
                        | MsgType::TransactionStart
                )
            );
        let (room, binding) = if may_grow || dom == 0 {
            self.room(dom)
        } else {
            (Some(0), Refusal::MemoryQuota)
        };
        let quota = self.quota.clone();
        let who = Caller {
            dom,
            target: self.targets.get(&dom).copied(),
            quota: &quota,
            room: Cell::new(room),
            binding,
            refusal: Cell::new(None),
        };
        let r = self.dispatch(&who, req, &mut pending);
        if dom != 0
            && let Err(e) = r
        {
            let why = who.refusal.get().or(match e {
                XsError::Acces | XsError::Perm => Some(Refusal::Permission),
                XsError::NoMem => Some(Refusal::Allocation),
                XsError::Inval if too_long(dom, &req.payload) => Some(Refusal::PathSize),
                _ => None,
            });
            if let Some(why) = why {
                self.note_refusal(dom, why);
            }
        }
        let reply = match r {
            Ok(payload) => req.reply(payload),
            Err(e) => req.error(e),
        };
        if !out.reply(dom, reply) {
            self.note_refusal(dom, Refusal::Allocation);
        }
        for Reply { to, msg } in pending.direct {
            if out.room(to, msg.wire_len()) {
                out.push(to, msg);
            }
        }
        for c in &pending.changes {
            self.fire(c, out);
        }
    }

    /// The domain died or was destroyed without XS_RELEASE: same clean-up, `@releaseDomain`
    /// fires. Returns the watch events.
    pub fn domain_gone(&mut self, dom: DomId) -> Vec<Reply> {
        let mut out = Vec::new();
        self.domain_gone_to(dom, &mut out);
        out
    }

    /// [`Store::domain_gone`] with bounded event delivery.
    pub fn domain_gone_to(&mut self, dom: DomId, out: &mut dyn Outbox) {
        let mut pending = Pending::default();
        self.remove_domain(dom, &mut pending);
        for c in &pending.changes {
            self.fire(c, out);
        }
    }

    /// Hand the events of one change to `out`: each watch that matches gets one event, built
    /// only once its receiver is known to have room.
    fn fire(&self, c: &Change, out: &mut dyn Outbox) {
        for (&wdom, ws) in &self.watches {
            let target = self.targets.get(&wdom).copied();
            if wdom != 0 && !c.perms.access_for(wdom, target).can_read() {
                continue;
            }
            for w in ws {
                let Some(names_change) = watch_matches(&w.abs, &c.path, c.recurse) else {
                    continue;
                };
                let elen = match names_change {
                    true if w.relative => relative_len(&c.path, wdom),
                    true => c.path.len(),
                    false => w.raw.len(),
                };
                if !out.room(wdom, HEADER_LEN + elen + w.token.len() + 2) {
                    continue;
                }
                let epath = match names_change {
                    true if w.relative => relativize(&c.path, wdom),
                    true => c.path.clone(),
                    false => w.raw.clone(),
                };
                out.push(wdom, Message::watch_event(epath.as_bytes(), &w.token));
            }
        }
    }

    fn special_change(&self, name: &'static str) -> Change {
        Change {
            path: name.to_string(),
            perms: self
                .special
                .get(name)
                .cloned()
                .unwrap_or_else(|| Perms::new(0, Access::None)),
            recurse: false,
        }
    }

    fn require_dom0(dom: DomId) -> Result<(), XsError> {
        if dom == 0 {
            Ok(())
        } else {
            Err(XsError::Acces)
        }
    }

    // --- Convenience for the toolstack in dom0 (and tests) ---

    /// Run a request as `dom` and return its answer payload (watch events are dropped).
    pub fn call(&mut self, dom: DomId, ty: MsgType, args: &[&[u8]]) -> Result<Vec<u8>, XsError> {
        let r = self.handle(dom, &Message::request(ty, 0, 0, args));
        reply_result(&r[0].msg)
    }

    /// Write `value` at `path` as dom0 (parents created as needed).
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<Vec<Reply>, XsError> {
        let mut payload = Vec::with_capacity(path.len() + 1 + value.len());
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        payload.extend_from_slice(value);
        let r = self.handle(0, &Message::new(MsgType::Write, 0, 0, payload));
        reply_result(&r[0].msg).map(|_| r[1..].to_vec())
    }

    /// Set the permissions of `path` as dom0.
    pub fn set_perms(&mut self, path: &str, perms: &Perms) -> Result<Vec<Reply>, XsError> {
        let mut payload = Vec::new();
        payload.extend_from_slice(path.as_bytes());
        payload.push(0);
        payload.extend_from_slice(&perms.encode());
        let r = self.handle(0, &Message::new(MsgType::SetPerms, 0, 0, payload));
        reply_result(&r[0].msg).map(|_| r[1..].to_vec())
    }
}

/// The payload of a reply, or the error it carries.
pub fn reply_result(m: &Message) -> Result<Vec<u8>, XsError> {
    if m.msg_type != MsgType::Error as u32 {
        return Ok(m.payload.clone());
    }
    const ALL: [XsError; 16] = [
        XsError::Inval,
        XsError::Acces,
        XsError::Exist,
        XsError::IsDir,
        XsError::NoEnt,
        XsError::NoMem,
        XsError::NoSpc,
        XsError::Io,
        XsError::NotEmpty,
        XsError::NoSys,
        XsError::RoFs,
        XsError::Busy,
        XsError::Again,
        XsError::IsConn,
        XsError::TooBig,
        XsError::Perm,
    ];
    let name = m.payload.strip_suffix(&[0]).unwrap_or(&m.payload);
    Err(ALL
        .iter()
        .copied()
        .find(|e| e.name().as_bytes() == name)
        .unwrap_or(XsError::Io))
}
