//! Request dispatch: each xenstore request type against the tree (directly or inside a
//! transaction), with its permission, quota and accounting checks; transaction commit; a
//! domain's removal.

use super::*;

impl Store {
    pub(super) fn dispatch(
        &mut self,
        who: &Caller<'_>,
        req: &Request,
        pending: &mut Pending,
    ) -> Result<Vec<u8>, XsError> {
        let dom = who.dom;
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
            | MsgType::SetPerms => self.node_request(who, kind, req, pending),
            MsgType::Watch => {
                let a = args_n(&req.payload, 2)?;
                let p = canonicalize(dom, a[0], true)?;
                let token = a[1].to_vec();
                // Every event for this watch must fit in one message.
                if token.len() + XENSTORE_ABS_PATH_MAX + 2 > XENSTORE_PAYLOAD_MAX {
                    return Err(XsError::Inval);
                }
                let n = self.watches.get(&dom).map_or(0, Vec::len);
                if self
                    .watches
                    .get(&dom)
                    .is_some_and(|ws| ws.iter().any(|w| w.abs == p.abs && w.token == token))
                {
                    return Err(XsError::Exist);
                }
                if dom != 0 && n >= self.quota.max_watches {
                    who.refuse(Refusal::WatchQuota);
                    return Err(XsError::TooBig);
                }
                let raw = String::from_utf8_lossy(a[0]).into_owned();
                let w = Watch {
                    raw,
                    abs: p.abs,
                    relative: p.relative,
                    token,
                };
                // Charged with what its vector may grow to before it is stored.
                who.take(w.cost())?;
                let ws = self.watches.entry(dom).or_default();
                ws.try_reserve(1).map_err(|_| XsError::NoMem)?;
                pending.direct.push(Reply {
                    to: dom,
                    msg: Message::watch_event(w.raw.as_bytes(), &w.token),
                });
                *self.watch_bytes.entry(dom).or_insert(0) += w.cost();
                ws.push(w);
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
                let cost = ws.remove(i).cost();
                if ws.is_empty() {
                    self.watches.remove(&dom);
                }
                self.uncharge_watch(dom, cost);
                ok()
            }
            MsgType::TransactionStart => {
                if req.tx_id != 0 {
                    return Err(XsError::Busy);
                }
                let open = self.txns.range((dom, 0)..=(dom, u32::MAX)).count();
                if dom != 0 && open >= self.quota.max_transactions {
                    who.refuse(Refusal::TransactionQuota);
                    return Err(XsError::NoSpc);
                }
                who.take(TX_OVERHEAD)?;
                let next = self.next_tx.entry(dom).or_insert(0);
                loop {
                    *next = next.wrapping_add(1);
                    if *next != 0 && !self.txns.contains_key(&(dom, *next)) {
                        break;
                    }
                }
                let id = *next;
                self.txns.insert((dom, id), Transaction::new());
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
                    self.commit(who, tx, pending)?;
                }
                ok()
            }
            MsgType::Introduce => {
                Store::require_dom0(dom)?;
                let a = args_n(&req.payload, 3)?;
                let d = parse_domid(a[0])?;
                let gfn = parse_u64(a[1])?;
                let port = u32::try_from(parse_u64(a[2])?).map_err(|_| XsError::Inval)?;
                if d == 0 || d >= super::super::DOMID_FIRST_RESERVED {
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
                self.watch_bytes.remove(&dom);
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

    pub(super) fn uncharge_watch(&mut self, dom: DomId, cost: u64) {
        if let Some(b) = self.watch_bytes.get_mut(&dom) {
            *b = b.saturating_sub(cost);
            if *b == 0 {
                self.watch_bytes.remove(&dom);
            }
        }
    }

    /// Apply a transaction. Nothing is copied: staged nodes move into the tree (what the
    /// tree's maps allocate for them is at most what the transaction was charged for them),
    /// and each changed node's watches fire once, through the bounded outbox.
    pub(super) fn commit(
        &mut self,
        who: &Caller<'_>,
        mut tx: Transaction,
        pending: &mut Pending,
    ) -> Result<(), XsError> {
        let dom = who.dom;
        if let Some(e) = tx.failed {
            who.refuse(match e {
                XsError::NoMem => who.binding,
                _ => Refusal::TransactionQuota,
            });
            return Err(e);
        }
        for (p, g) in &tx.reads {
            if self.tree.generation(p) != *g {
                return Err(XsError::Again);
            }
        }
        if dom != 0 {
            let d = tx.delta.get(&dom).copied().unwrap_or(0);
            if d > 0 && self.tree.owned_by(dom) + d > i64::from(self.quota.max_nodes) {
                who.refuse(Refusal::NodeQuota);
                return Err(XsError::NoSpc);
            }
        }
        pending.changes = tx.take_changes();
        for (p, n) in core::mem::take(&mut tx.overlay) {
            match n {
                Some(n) => self.tree.insert(p, n),
                None => self.tree.remove(&p),
            }
        }
        Ok(())
    }

    pub(super) fn remove_domain(&mut self, d: DomId, pending: &mut Pending) {
        self.watches.remove(&d);
        self.watch_bytes.remove(&d);
        self.txns.retain(|(td, _), _| *td != d);
        self.next_tx.remove(&d);
        self.targets.retain(|k, v| *k != d && *v != d);
        self.domains.remove(&d);
        // Orphans are deleted (C's default), then the domain is struck from every list.
        pending.changes.extend(self.tree.remove_owned(d));
        self.tree.revoke(d);
        for p in self.special.values_mut() {
            p.revoke(d);
        }
        self.events.push(DomainEvent::Released { dom: d });
        pending.changes.push(self.special_change(RELEASE_DOMAIN));
    }

    pub(super) fn node_request(
        &mut self,
        who: &Caller<'_>,
        kind: MsgType,
        req: &Request,
        pending: &mut Pending,
    ) -> Result<Vec<u8>, XsError> {
        let dom = who.dom;
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
                // Write access and ownership, as for any node (C: XS_PERM_WRITE |
                // XS_PERM_OWNER on the special nodes too).
                if !who.may(cur, Access::Write) || !who.owns(cur) {
                    return Err(XsError::Acces);
                }
                if !who.privileged() && new.entries().len() > self.quota.max_perms {
                    who.refuse(Refusal::PermQuota);
                    return Err(XsError::NoSpc);
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
            node_op(&mut v, who, kind, &req.payload)
        } else {
            let key = (dom, req.tx_id);
            let mut tx = self.txns.remove(&key).ok_or(XsError::NoEnt)?;
            let r = {
                let mut v = InTx {
                    tree: &self.tree,
                    tx: &mut tx,
                    max_nodes: self.quota.max_tx_nodes,
                    who,
                };
                node_op(&mut v, who, kind, &req.payload)
            };
            self.txns.insert(key, tx);
            r
        }
    }
}

fn node_op<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    kind: MsgType,
    payload: &[u8],
) -> Result<Vec<u8>, XsError> {
    if let Some(e) = v.failed() {
        who.refuse(match e {
            XsError::NoMem => who.binding,
            _ => Refusal::TransactionQuota,
        });
        return Err(e);
    }
    let r = node_op_inner(v, who, kind, payload);
    // A transaction that went over a limit while staging this request fails it.
    match v.failed() {
        Some(e) => Err(e),
        None => r,
    }
}

fn node_op_inner<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    kind: MsgType,
    payload: &[u8],
) -> Result<Vec<u8>, XsError> {
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
