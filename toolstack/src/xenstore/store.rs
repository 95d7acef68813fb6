//! The store: the tree plus watches, transactions, domains and quotas, driven one request at
//! a time by [`Store::handle`].

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::path::{canonicalize, domain_path, parse_domid, parse_u64};
use super::perms::{Access, Perms};
use super::tree::{self, Caller, Change, Direct, InTx, Transaction, Tree, View, watch_matches};
use super::wire::{
    Message, MsgType, Request, XENSTORE_ABS_PATH_MAX, XENSTORE_PAYLOAD_MAX, XsError, split_args,
};
use super::{DomId, Quota};

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
    watches: BTreeMap<DomId, Vec<Watch>>,
    txns: BTreeMap<(DomId, u32), Transaction>,
    next_tx: BTreeMap<DomId, u32>,
    domains: BTreeMap<DomId, DomainInfo>,
    targets: BTreeMap<DomId, DomId>,
    special: BTreeMap<&'static str, Perms>,
    events: Vec<DomainEvent>,
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
        let mut special = BTreeMap::new();
        special.insert(INTRODUCE_DOMAIN, Perms::new(0, Access::None));
        special.insert(RELEASE_DOMAIN, Perms::new(0, Access::None));
        Store {
            tree: Tree::new(),
            quota,
            watches: BTreeMap::new(),
            txns: BTreeMap::new(),
            next_tx: BTreeMap::new(),
            domains: BTreeMap::new(),
            targets: BTreeMap::new(),
            special,
            events: Vec::new(),
        }
    }

    pub fn quota(&self) -> &Quota {
        &self.quota
    }

    /// Domains introduced and not released.
    pub fn domains(&self) -> &BTreeMap<DomId, DomainInfo> {
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
        let mut pending = Pending::default();
        let reply = match self.dispatch(dom, req, &mut pending) {
            Ok(payload) => req.reply(payload),
            Err(e) => req.error(e),
        };
        let mut out = Vec::with_capacity(1 + pending.direct.len());
        out.push(Reply {
            to: dom,
            msg: reply,
        });
        out.append(&mut pending.direct);
        for c in &pending.changes {
            self.fire(c, &mut out);
        }
        out
    }

    /// The domain died or was destroyed without XS_RELEASE: same clean-up, `@releaseDomain`
    /// fires. Returns the watch events.
    pub fn domain_gone(&mut self, dom: DomId) -> Vec<Reply> {
        let mut pending = Pending::default();
        self.remove_domain(dom, &mut pending);
        let mut out = Vec::new();
        for c in &pending.changes {
            self.fire(c, &mut out);
        }
        out
    }

    fn fire(&self, c: &Change, out: &mut Vec<Reply>) {
        for (&wdom, ws) in &self.watches {
            let target = self.targets.get(&wdom).copied();
            if wdom != 0 && !c.perms.access_for(wdom, target).can_read() {
                continue;
            }
            for w in ws {
                let epath = match watch_matches(&w.abs, &c.path, c.recurse) {
                    Some(true) if w.relative => relativize(&c.path, wdom),
                    Some(true) => c.path.clone(),
                    Some(false) => w.raw.clone(),
                    None => continue,
                };
                out.push(Reply {
                    to: wdom,
                    msg: Message::watch_event(epath.as_bytes(), &w.token),
                });
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

    fn dispatch(
        &mut self,
        dom: DomId,
        req: &Request,
        pending: &mut Pending,
    ) -> Result<Vec<u8>, XsError> {
        let ok = || Ok(b"OK\0".to_vec());
        let kind = req.kind().ok_or(XsError::Inval)?;
        match kind {
            MsgType::Read
            | MsgType::Directory
            | MsgType::DirectoryPart
            | MsgType::GetPerms
            | MsgType::Write
            | MsgType::Mkdir
            | MsgType::Rm
            | MsgType::SetPerms => self.node_request(dom, kind, req, pending),
            MsgType::Watch => {
                let a = args_n(&req.payload, 2)?;
                let p = canonicalize(dom, a[0], true)?;
                let token = a[1].to_vec();
                // Every event for this watch must fit in one message.
                if token.len() + XENSTORE_ABS_PATH_MAX + 2 > XENSTORE_PAYLOAD_MAX {
                    return Err(XsError::Inval);
                }
                let n = self.watches.get(&dom).map_or(0, Vec::len);
                let ws = self.watches.entry(dom).or_default();
                if ws.iter().any(|w| w.abs == p.abs && w.token == token) {
                    return Err(XsError::Exist);
                }
                if dom != 0 && n >= self.quota.max_watches {
                    return Err(XsError::TooBig);
                }
                let raw = String::from_utf8_lossy(a[0]).into_owned();
                pending.direct.push(Reply {
                    to: dom,
                    msg: Message::watch_event(raw.as_bytes(), &token),
                });
                ws.push(Watch {
                    raw,
                    abs: p.abs,
                    relative: p.relative,
                    token,
                });
                ok()
            }
            MsgType::Unwatch => {
                let a = args_n(&req.payload, 2)?;
                let p = canonicalize(dom, a[0], true)?;
                let ws = self.watches.get_mut(&dom).ok_or(XsError::NoEnt)?;
                let i = ws
                    .iter()
                    .position(|w| w.abs == p.abs && w.token == a[1])
                    .ok_or(XsError::NoEnt)?;
                ws.remove(i);
                if ws.is_empty() {
                    self.watches.remove(&dom);
                }
                ok()
            }
            MsgType::TransactionStart => {
                if req.tx_id != 0 {
                    return Err(XsError::Busy);
                }
                let open = self.txns.range((dom, 0)..=(dom, u32::MAX)).count();
                if dom != 0 && open >= self.quota.max_transactions {
                    return Err(XsError::NoSpc);
                }
                let next = self.next_tx.entry(dom).or_insert(0);
                loop {
                    *next = next.wrapping_add(1);
                    if *next != 0 && !self.txns.contains_key(&(dom, *next)) {
                        break;
                    }
                }
                let id = *next;
                self.txns.insert((dom, id), Transaction::default());
                Ok(format!("{id}\0").into_bytes())
            }
            MsgType::TransactionEnd => {
                let commit = match one_arg(&req.payload)? {
                    b"T" => true,
                    b"F" => false,
                    _ => return Err(XsError::Inval),
                };
                let tx = self.txns.remove(&(dom, req.tx_id)).ok_or(XsError::NoEnt)?;
                if commit {
                    self.commit(dom, tx, pending)?;
                }
                ok()
            }
            MsgType::Introduce => {
                Store::require_dom0(dom)?;
                let a = args_n(&req.payload, 3)?;
                let d = parse_domid(a[0])?;
                let gfn = parse_u64(a[1])?;
                let port = u32::try_from(parse_u64(a[2])?).map_err(|_| XsError::Inval)?;
                if d == 0 || d >= super::DOMID_FIRST_RESERVED {
                    return Err(XsError::Inval);
                }
                let info = DomainInfo { gfn, port };
                match self.domains.get(&d) {
                    Some(old) if *old == info => {}
                    Some(_) => return Err(XsError::Inval),
                    None => {
                        self.domains.insert(d, info);
                        self.events
                            .push(DomainEvent::Introduced { dom: d, gfn, port });
                        pending.changes.push(self.special_change(INTRODUCE_DOMAIN));
                    }
                }
                ok()
            }
            MsgType::Release => {
                Store::require_dom0(dom)?;
                let d = parse_domid(one_arg(&req.payload)?)?;
                if d == 0 {
                    return Err(XsError::Inval);
                }
                if !self.domains.contains_key(&d) {
                    return Err(XsError::NoEnt);
                }
                self.remove_domain(d, pending);
                ok()
            }
            MsgType::GetDomainPath => {
                let d = parse_domid(one_arg(&req.payload)?)?;
                Ok(format!("{}\0", domain_path(d)).into_bytes())
            }
            MsgType::IsDomainIntroduced => {
                let d = parse_domid(one_arg(&req.payload)?)?;
                let yes = d == 0 || self.domains.contains_key(&d);
                Ok(if yes {
                    b"T\0".to_vec()
                } else {
                    b"F\0".to_vec()
                })
            }
            MsgType::Resume => {
                Store::require_dom0(dom)?;
                let d = parse_domid(one_arg(&req.payload)?)?;
                if self.domains.contains_key(&d) {
                    ok()
                } else {
                    Err(XsError::NoEnt)
                }
            }
            MsgType::SetTarget => {
                Store::require_dom0(dom)?;
                let a = args_n(&req.payload, 2)?;
                let d = parse_domid(a[0])?;
                let t = parse_domid(a[1])?;
                if !self.domains.contains_key(&d) {
                    return Err(XsError::NoEnt);
                }
                self.targets.insert(d, t);
                ok()
            }
            MsgType::ResetWatches => {
                self.watches.remove(&dom);
                let keys: Vec<_> = self
                    .txns
                    .range((dom, 0)..=(dom, u32::MAX))
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    self.txns.remove(&k);
                }
                ok()
            }
            MsgType::Control => {
                Store::require_dom0(dom)?;
                let a = split_args(&req.payload).ok_or(XsError::Inval)?;
                match a.first().copied() {
                    Some(b"print") => ok(),
                    Some(b"check") => self.check().map_err(|_| XsError::Io).and_then(|()| ok()),
                    _ => Err(XsError::Inval),
                }
            }
            MsgType::WatchEvent | MsgType::Error => Err(XsError::Inval),
        }
    }

    fn commit(
        &mut self,
        dom: DomId,
        tx: Transaction,
        pending: &mut Pending,
    ) -> Result<(), XsError> {
        if tx.overflow {
            return Err(XsError::NoSpc);
        }
        for (p, g) in &tx.reads {
            if self.tree.generation(p) != *g {
                return Err(XsError::Again);
            }
        }
        if dom != 0 {
            let d = tx.delta.get(&dom).copied().unwrap_or(0);
            if d > 0 && self.tree.owned_by(dom) + d > i64::from(self.quota.max_nodes) {
                return Err(XsError::NoSpc);
            }
        }
        for (p, n) in tx.overlay {
            match n {
                Some(n) => self.tree.insert(p, n),
                None => self.tree.remove(&p),
            }
        }
        pending.changes.extend(tx.changes);
        Ok(())
    }

    fn remove_domain(&mut self, d: DomId, pending: &mut Pending) {
        self.watches.remove(&d);
        self.txns.retain(|(td, _), _| *td != d);
        self.next_tx.remove(&d);
        self.targets.retain(|k, v| *k != d && *v != d);
        self.domains.remove(&d);
        self.tree.revoke(d);
        for p in self.special.values_mut() {
            p.revoke(d);
        }
        self.events.push(DomainEvent::Released { dom: d });
        pending.changes.push(self.special_change(RELEASE_DOMAIN));
    }

    fn node_request(
        &mut self,
        dom: DomId,
        kind: MsgType,
        req: &Request,
        pending: &mut Pending,
    ) -> Result<Vec<u8>, XsError> {
        let who = Caller {
            dom,
            target: self.targets.get(&dom).copied(),
            quota: &self.quota,
        };
        // The special nodes only have permissions (outside any transaction).
        if matches!(kind, MsgType::GetPerms | MsgType::SetPerms) {
            let a = args_n(&req.payload, 1)?;
            let p = canonicalize(dom, a[0], true)?;
            if p.abs.starts_with('@') {
                let key = *self
                    .special
                    .keys()
                    .find(|k| **k == p.abs)
                    .ok_or(XsError::NoEnt)?;
                let cur = &self.special[key];
                if kind == MsgType::GetPerms {
                    return if who.may(cur, Access::Read) {
                        Ok(cur.encode())
                    } else {
                        Err(XsError::Acces)
                    };
                }
                let new = Perms::parse(&a[1..])?;
                if !who.may(cur, Access::Write) {
                    return Err(XsError::Acces);
                }
                if !who.privileged() && new.owner() != cur.owner() {
                    return Err(XsError::Perm);
                }
                self.special.insert(key, new);
                return Ok(b"OK\0".to_vec());
            }
        }
        if req.tx_id == 0 {
            let mut v = Direct {
                tree: &mut self.tree,
                changes: &mut pending.changes,
            };
            node_op(&mut v, &who, kind, &req.payload)
        } else {
            let key = (dom, req.tx_id);
            let mut tx = self.txns.remove(&key).ok_or(XsError::NoEnt)?;
            let r = {
                let mut v = InTx {
                    tree: &self.tree,
                    tx: &mut tx,
                    max_nodes: self.quota.max_tx_nodes,
                };
                node_op(&mut v, &who, kind, &req.payload)
            };
            self.txns.insert(key, tx);
            r
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

fn node_op<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    kind: MsgType,
    payload: &[u8],
) -> Result<Vec<u8>, XsError> {
    if v.full() {
        return Err(XsError::NoSpc);
    }
    let ok = b"OK\0".to_vec();
    let path = |raw: &[u8]| canonicalize(who.dom, raw, false).map(|p| p.abs);
    match kind {
        MsgType::Read => tree::read(v, who, &path(one_arg(payload)?)?),
        MsgType::Directory => tree::directory(v, who, &path(one_arg(payload)?)?),
        MsgType::GetPerms => tree::get_perms(v, who, &path(one_arg(payload)?)?),
        MsgType::Mkdir => tree::mkdir(v, who, &path(one_arg(payload)?)?).map(|()| ok),
        MsgType::Rm => {
            let p = path(one_arg(payload)?)?;
            if p == "/" {
                // Removing the root is refused, after the access check.
                return match tree::with_root_access(v, who) {
                    Ok(()) => Err(XsError::Inval),
                    Err(e) => Err(e),
                };
            }
            tree::rm(v, who, &p).map(|()| ok)
        }
        MsgType::Write => {
            let nul = payload.iter().position(|b| *b == 0).ok_or(XsError::Inval)?;
            tree::write(v, who, &path(&payload[..nul])?, &payload[nul + 1..]).map(|()| ok)
        }
        MsgType::SetPerms => {
            let a = args_n(payload, 2)?;
            let perms = Perms::parse(&a[1..])?;
            tree::set_perms(v, who, &path(a[0])?, perms).map(|()| ok)
        }
        MsgType::DirectoryPart => {
            let a = split_args(payload).ok_or(XsError::Inval)?;
            if a.len() != 2 {
                return Err(XsError::Inval);
            }
            let off = parse_u64(a[1])?;
            tree::directory_part(v, who, &path(a[0])?, off)
        }
        _ => Err(XsError::Inval),
    }
}
