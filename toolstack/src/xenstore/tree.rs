//! The node tree, the transaction overlay, and the node operations written once for both
//! (through [`View`]).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use core::cell::Cell;

use super::DomId;
use super::Quota;
use super::account::{
    CHANGE_OVERHEAD, PERM_BYTES, READ_OVERHEAD, Refusal, STAGED_OVERHEAD, TX_OVERHEAD, node_cost,
    staged_cost, try_copy,
};
use super::path::{basename, depth, is_below, join, parent};
use super::perms::{Access, Perms};
use super::wire::{XENSTORE_PAYLOAD_MAX, XsError};

/// One node: value, permissions, child names and the generation of its last change.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub value: Vec<u8>,
    pub perms: Perms,
    pub children: BTreeSet<String>,
    pub generation: u64,
}

impl Node {
    fn new(value: Vec<u8>, perms: Perms) -> Node {
        Node {
            value,
            perms,
            children: BTreeSet::new(),
            generation: 0,
        }
    }

    /// What this node costs its owner in the tree (see [`node_cost`]).
    pub fn cost(&self, path: &str) -> u64 {
        node_cost(
            path.len(),
            self.value.len(),
            self.perms.entries().len(),
            basename(path).len(),
        )
    }

    /// What a copy of it staged in a transaction costs (see [`staged_cost`]).
    pub fn staged_cost(&self, path: &str) -> u64 {
        staged_cost(
            path.len(),
            self.value.len(),
            self.perms.entries().len(),
            self.children.len(),
            self.children.iter().map(String::len).sum(),
        )
    }
}

/// A modification to report to watchers.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub path: String,
    /// Permissions of the node (before removal for `rm`): who may see the event.
    pub perms: Perms,
    /// The whole subtree went away: watches below `path` fire too (with their own path).
    pub recurse: bool,
}

/// The committed tree.
#[derive(Debug)]
pub(crate) struct Tree {
    pub nodes: BTreeMap<String, Node>,
    /// Number of nodes each domain owns (the node quota).
    pub owned: BTreeMap<DomId, i64>,
    /// Bytes charged to each domain for the nodes it owns.
    pub bytes: BTreeMap<DomId, u64>,
    /// Their sum over every domain but dom0.
    pub domu_bytes: u64,
    pub next_gen: u64,
}

impl Tree {
    pub fn new() -> Tree {
        let mut t = Tree {
            nodes: BTreeMap::new(),
            owned: BTreeMap::new(),
            bytes: BTreeMap::new(),
            domu_bytes: 0,
            next_gen: 0,
        };
        t.insert(
            "/".to_string(),
            Node::new(Vec::new(), Perms::new(0, Access::None)),
        );
        t
    }

    fn count(owned: &mut BTreeMap<DomId, i64>, dom: DomId, delta: i64) {
        let e = owned.entry(dom).or_insert(0);
        *e += delta;
        if *e == 0 {
            owned.remove(&dom);
        }
    }

    /// Charge `dom` `add` bytes and release `sub`; `domu` is the sum over DomUs.
    fn charge(bytes: &mut BTreeMap<DomId, u64>, domu: &mut u64, dom: DomId, add: u64, sub: u64) {
        let e = bytes.entry(dom).or_insert(0);
        let old = *e;
        *e = e.saturating_add(add).saturating_sub(sub);
        if dom != 0 {
            *domu = domu.saturating_add(*e).saturating_sub(old);
        }
        if *e == 0 {
            bytes.remove(&dom);
        }
    }

    pub fn owned_by(&self, dom: DomId) -> i64 {
        self.owned.get(&dom).copied().unwrap_or(0)
    }

    /// Bytes charged to `dom` for its nodes.
    pub fn bytes_of(&self, dom: DomId) -> u64 {
        self.bytes.get(&dom).copied().unwrap_or(0)
    }

    pub fn generation(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).map(|n| n.generation)
    }

    pub fn insert(&mut self, path: String, mut node: Node) {
        self.next_gen += 1;
        node.generation = self.next_gen;
        Tree::count(&mut self.owned, node.perms.owner(), 1);
        Tree::charge(
            &mut self.bytes,
            &mut self.domu_bytes,
            node.perms.owner(),
            node.cost(&path),
            0,
        );
        let (plen, nlen) = (path.len(), basename(&path).len());
        if let Some(old) = self.nodes.insert(path, node) {
            Tree::count(&mut self.owned, old.perms.owner(), -1);
            let c = node_cost(plen, old.value.len(), old.perms.entries().len(), nlen);
            Tree::charge(
                &mut self.bytes,
                &mut self.domu_bytes,
                old.perms.owner(),
                0,
                c,
            );
        }
    }

    pub fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            Tree::count(&mut self.owned, old.perms.owner(), -1);
            Tree::charge(
                &mut self.bytes,
                &mut self.domu_bytes,
                old.perms.owner(),
                0,
                old.cost(path),
            );
        }
    }

    pub fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> Option<Perms> {
        let n = self.nodes.get_mut(path)?;
        let old = n.perms.owner();
        let old_cost = n.cost(path);
        f(n);
        self.next_gen += 1;
        n.generation = self.next_gen;
        let new = n.perms.owner();
        let perms = n.perms.clone();
        if old != new {
            Tree::count(&mut self.owned, old, -1);
            Tree::count(&mut self.owned, new, 1);
        }
        Tree::charge(&mut self.bytes, &mut self.domu_bytes, old, 0, old_cost);
        Tree::charge(&mut self.bytes, &mut self.domu_bytes, new, n.cost(path), 0);
        Some(perms)
    }

    /// Strip a dead domain from every permission list (XSA-322: a reused domain id must not
    /// inherit rights).
    pub fn revoke(&mut self, dom: DomId) {
        for (p, n) in self.nodes.iter_mut() {
            let old = n.perms.owner();
            let old_cost = n.cost(p);
            if n.perms.revoke(dom) {
                self.next_gen += 1;
                n.generation = self.next_gen;
                if old != n.perms.owner() {
                    Tree::count(&mut self.owned, old, -1);
                    Tree::count(&mut self.owned, n.perms.owner(), 1);
                }
                Tree::charge(&mut self.bytes, &mut self.domu_bytes, old, 0, old_cost);
                Tree::charge(
                    &mut self.bytes,
                    &mut self.domu_bytes,
                    n.perms.owner(),
                    n.cost(p),
                    0,
                );
            }
        }
    }

    /// Remove every node a dead domain owns, with everything below it, and return the
    /// removals to report to watchers. C xenstored deletes such orphans by default
    /// (`domain_tree_remove`; `-K` keeps them for dom0): nothing a dead domain made stays
    /// charged to nobody.
    pub fn remove_owned(&mut self, dom: DomId) -> Vec<Change> {
        let roots: Vec<String> = self
            .nodes
            .iter()
            .filter(|(p, n)| n.perms.owner() == dom && p.as_str() != "/")
            .map(|(p, _)| p.clone())
            .collect();
        let mut out = Vec::new();
        for root in roots {
            let Some(perms) = self.nodes.get(&root).map(|n| n.perms.clone()) else {
                continue; // already gone with an ancestor
            };
            let mut stack = vec![root.clone()];
            while let Some(p) = stack.pop() {
                if let Some(n) = self.nodes.get(&p) {
                    stack.extend(n.children.iter().map(|c| join(&p, c)));
                }
                self.remove(&p);
            }
            if let Some(pp) = parent(&root) {
                let name = basename(&root).to_string();
                self.modify(pp, |n| {
                    n.children.remove(&name);
                });
            }
            out.push(Change {
                path: root,
                perms,
                recurse: true,
            });
        }
        out
    }

    /// Structural invariants (tests and `XS_CONTROL check`).
    pub fn check(&self) -> Result<(), &'static str> {
        let mut owned: BTreeMap<DomId, i64> = BTreeMap::new();
        let mut bytes: BTreeMap<DomId, u64> = BTreeMap::new();
        let mut domu = 0u64;
        if !self.nodes.contains_key("/") {
            return Err("root missing");
        }
        for (p, n) in &self.nodes {
            Tree::count(&mut owned, n.perms.owner(), 1);
            Tree::charge(&mut bytes, &mut domu, n.perms.owner(), n.cost(p), 0);
            if n.generation == 0 || n.generation > self.next_gen {
                return Err("bad generation");
            }
            if let Some(pp) = parent(p) {
                match self.nodes.get(pp) {
                    Some(par) if par.children.contains(basename(p)) => {}
                    _ => return Err("node not linked from its parent"),
                }
            }
            for c in &n.children {
                if !self.nodes.contains_key(&join(p, c)) {
                    return Err("dangling child");
                }
            }
        }
        if owned != self.owned {
            return Err("owner counts wrong");
        }
        if bytes != self.bytes {
            return Err("byte charges wrong");
        }
        if domu != self.domu_bytes {
            return Err("DomU byte total wrong");
        }
        Ok(())
    }
}

/// A transaction: copy-on-write overlay plus the generation of every node it looked at.
#[derive(Debug)]
pub(crate) struct Transaction {
    /// Changed nodes (`None` = removed): one entry per node however often it is written.
    pub overlay: BTreeMap<String, Option<Node>>,
    /// Generation (or absence) of every node read or written, as first seen.
    pub reads: BTreeMap<String, Option<u64>>,
    /// Owned-node count changes per domain.
    pub delta: BTreeMap<DomId, i64>,
    /// Watch records to fire on commit: one per changed node (its permissions, and whether
    /// a subtree went away), so a node written 5,000 times fires its watches once.
    pub changes: BTreeMap<String, (Perms, bool)>,
    /// The transaction went over a limit; it can only fail (with this error).
    pub failed: Option<XsError>,
    /// Bytes charged to its domain for it (see `account`).
    pub bytes: u64,
}

impl Transaction {
    pub fn new() -> Transaction {
        Transaction {
            overlay: BTreeMap::new(),
            reads: BTreeMap::new(),
            delta: BTreeMap::new(),
            changes: BTreeMap::new(),
            failed: None,
            bytes: TX_OVERHEAD,
        }
    }

    /// The watch records, in path order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        core::mem::take(&mut self.changes)
            .into_iter()
            .map(|(path, (perms, recurse))| Change {
                path,
                perms,
                recurse,
            })
            .collect()
    }
}

/// Access to nodes, either directly on the tree or through a transaction.
pub(crate) trait View {
    fn get(&mut self, path: &str) -> Option<&Node>;
    fn insert(&mut self, path: &str, node: Node);
    fn remove(&mut self, path: &str);
    /// Change a node in place; returns its permissions afterwards (`None`: absent).
    fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> Option<Perms>;
    fn owned_by(&self, dom: DomId) -> i64;
    fn changed(&mut self, c: Change);
    /// The view can only fail from now on (a transaction over its limits).
    fn failed(&self) -> Option<XsError>;
    /// May `who` make the tree hold `bytes` more, charged to `payer`? Checked before a
    /// direct change allocates; a transaction checks as it stages instead.
    fn afford(&self, who: &Caller<'_>, payer: DomId, bytes: u64) -> Result<(), XsError>;
}

/// Operations outside a transaction.
pub(crate) struct Direct<'a> {
    pub tree: &'a mut Tree,
    pub changes: &'a mut Vec<Change>,
}

impl View for Direct<'_> {
    fn get(&mut self, path: &str) -> Option<&Node> {
        self.tree.nodes.get(path)
    }
    fn insert(&mut self, path: &str, node: Node) {
        self.tree.insert(path.to_string(), node);
    }
    fn remove(&mut self, path: &str) {
        self.tree.remove(path);
    }
    fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> Option<Perms> {
        self.tree.modify(path, f)
    }
    fn owned_by(&self, dom: DomId) -> i64 {
        self.tree.owned_by(dom)
    }
    fn changed(&mut self, c: Change) {
        self.changes.push(c);
    }
    fn failed(&self) -> Option<XsError> {
        None
    }
    fn afford(&self, who: &Caller<'_>, payer: DomId, bytes: u64) -> Result<(), XsError> {
        // What a domain makes a node owned by someone else hold is charged to that owner (as
        // C xenstored does) and bounded by the value-size and permission quotas.
        if who.privileged() || payer != who.dom {
            return Ok(());
        }
        who.take(bytes)
    }
}

/// Operations inside a transaction. Everything staged is charged to the transaction's
/// domain as it is staged; past the domain's room the transaction fails (`ENOMEM`) and
/// stages nothing more.
pub(crate) struct InTx<'a> {
    pub tree: &'a Tree,
    pub tx: &'a mut Transaction,
    pub max_nodes: usize,
    pub who: &'a Caller<'a>,
}

impl InTx<'_> {
    fn fail(&mut self, e: XsError, why: Refusal) {
        if self.tx.failed.is_none() {
            self.tx.failed = Some(e);
            self.who.refuse(why);
        }
    }

    /// Charge `add` more and release `sub` (net growth must fit the room).
    fn grow(&mut self, add: u64, sub: u64) -> bool {
        if self.tx.failed.is_some() {
            return false;
        }
        if add > sub && self.who.take(add - sub).is_err() {
            self.tx.failed = Some(XsError::NoMem);
            return false;
        }
        self.tx.bytes = self.tx.bytes.saturating_add(add).saturating_sub(sub);
        true
    }

    fn note(&mut self, path: &str) {
        if self.tx.reads.contains_key(path) || self.tx.failed.is_some() {
            return;
        }
        if self.tx.reads.len() >= self.max_nodes {
            self.fail(XsError::NoSpc, Refusal::TransactionQuota);
            return;
        }
        if self.grow(READ_OVERHEAD + path.len() as u64, 0) {
            self.tx
                .reads
                .insert(path.to_string(), self.tree.generation(path));
        }
    }

    fn current_owner(&self, path: &str) -> Option<DomId> {
        match self.tx.overlay.get(path) {
            Some(o) => o.as_ref().map(|n| n.perms.owner()),
            None => self.tree.nodes.get(path).map(|n| n.perms.owner()),
        }
    }

    fn adjust(&mut self, dom: DomId, d: i64) {
        *self.tx.delta.entry(dom).or_insert(0) += d;
    }

    fn staged(&self, path: &str) -> u64 {
        match self.tx.overlay.get(path) {
            Some(Some(n)) => n.staged_cost(path),
            Some(None) => STAGED_OVERHEAD + path.len() as u64,
            None => 0,
        }
    }

    /// Put `entry` in the overlay at `path`, charging the difference.
    fn stage(&mut self, path: &str, entry: Option<Node>) -> bool {
        let new = match &entry {
            Some(n) => n.staged_cost(path),
            None => STAGED_OVERHEAD + path.len() as u64,
        };
        let old = self.staged(path);
        if !self.grow(new, old) {
            return false;
        }
        match self.tx.overlay.get_mut(path) {
            Some(slot) => *slot = entry,
            None => {
                self.tx.overlay.insert(path.to_string(), entry);
            }
        }
        true
    }
}

impl View for InTx<'_> {
    fn get(&mut self, path: &str) -> Option<&Node> {
        self.note(path);
        match self.tx.overlay.get(path) {
            Some(o) => o.as_ref(),
            None => self.tree.nodes.get(path),
        }
    }
    fn insert(&mut self, path: &str, node: Node) {
        self.note(path);
        let old = self.current_owner(path);
        let owner = node.perms.owner();
        if self.stage(path, Some(node)) {
            if let Some(o) = old {
                self.adjust(o, -1);
            }
            self.adjust(owner, 1);
        }
    }
    fn remove(&mut self, path: &str) {
        self.note(path);
        if let Some(o) = self.current_owner(path)
            && self.stage(path, None)
        {
            self.adjust(o, -1);
        }
    }
    fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> Option<Perms> {
        self.note(path);
        let mut node = match self.tx.overlay.get(path) {
            Some(Some(n)) => n.clone(),
            Some(None) => return None,
            None => self.tree.nodes.get(path)?.clone(),
        };
        let old = node.perms.owner();
        f(&mut node);
        let new = node.perms.owner();
        let perms = node.perms.clone();
        if self.stage(path, Some(node)) && old != new {
            self.adjust(old, -1);
            self.adjust(new, 1);
        }
        Some(perms)
    }
    fn owned_by(&self, dom: DomId) -> i64 {
        self.tree.owned_by(dom) + self.tx.delta.get(&dom).copied().unwrap_or(0)
    }
    fn changed(&mut self, c: Change) {
        let add = c.perms.entries().len() as u64 * PERM_BYTES;
        match self.tx.changes.get(&c.path) {
            Some((p, _)) => {
                let sub = p.entries().len() as u64 * PERM_BYTES;
                if self.grow(add, sub)
                    && let Some(e) = self.tx.changes.get_mut(&c.path)
                {
                    e.0 = c.perms;
                    e.1 |= c.recurse;
                }
            }
            None => {
                if self.grow(CHANGE_OVERHEAD + c.path.len() as u64 + add, 0) {
                    self.tx.changes.insert(c.path, (c.perms, c.recurse));
                }
            }
        }
    }
    fn failed(&self) -> Option<XsError> {
        self.tx.failed
    }
    fn afford(&self, _who: &Caller<'_>, _payer: DomId, _bytes: u64) -> Result<(), XsError> {
        Ok(())
    }
}

/// Who is asking, and how many more bytes its requests may make the service hold.
#[derive(Debug)]
pub(crate) struct Caller<'q> {
    pub dom: DomId,
    pub target: Option<DomId>,
    pub quota: &'q Quota,
    /// Bytes this request may still add (`None`: dom0, unlimited), and which limit binds.
    pub room: Cell<Option<u64>>,
    pub binding: Refusal,
    /// Why the request was refused, when a quota refused it.
    pub refusal: Cell<Option<Refusal>>,
}

impl Caller<'_> {
    pub fn privileged(&self) -> bool {
        self.dom == 0
    }

    pub fn may(&self, perms: &Perms, need: Access) -> bool {
        self.privileged() || perms.access_for(self.dom, self.target).covers(need)
    }

    /// The caller owns the node (or acts for its owner through XS_SET_TARGET), or is dom0
    /// (C xenstored's `XS_PERM_OWNER`).
    pub fn owns(&self, perms: &Perms) -> bool {
        self.privileged() || perms.owner() == self.dom || self.target == Some(perms.owner())
    }

    /// Record why the request is being refused (the first reason wins).
    pub fn refuse(&self, why: Refusal) {
        if self.refusal.get().is_none() {
            self.refusal.set(Some(why));
        }
    }

    /// Take `bytes` from the room, or refuse with `ENOMEM`.
    pub fn take(&self, bytes: u64) -> Result<(), XsError> {
        match self.room.get() {
            None => Ok(()),
            Some(r) if bytes <= r => {
                self.room.set(Some(r - bytes));
                Ok(())
            }
            Some(_) => {
                self.refuse(self.binding);
                Err(XsError::NoMem)
            }
        }
    }
}

/// The error for a missing node: `EACCES` if the nearest existing ancestor does not grant
/// `need` (so nothing leaks about what is there), else `ENOENT`.
fn missing<V: View>(v: &mut V, who: &Caller<'_>, path: &str, need: Access) -> XsError {
    let mut p = path;
    while let Some(pp) = parent(p) {
        p = pp;
        if let Some(n) = v.get(p) {
            return if who.may(&n.perms, need) {
                XsError::NoEnt
            } else {
                XsError::Acces
            };
        }
    }
    XsError::NoEnt
}

/// Look a node up for `need`; returns a clone of the requested part via `f`.
fn with_node<V: View, T>(
    v: &mut V,
    who: &Caller<'_>,
    path: &str,
    need: Access,
    f: impl FnOnce(&Node) -> T,
) -> Result<T, XsError> {
    if let Some(n) = v.get(path) {
        return if who.may(&n.perms, need) {
            Ok(f(n))
        } else {
            Err(XsError::Acces)
        };
    }
    Err(missing(v, who, path, need))
}

pub(crate) fn read<V: View>(v: &mut V, who: &Caller<'_>, path: &str) -> Result<Vec<u8>, XsError> {
    with_node(v, who, path, Access::Read, |n| n.value.clone())
}

fn child_blob(n: &Node) -> Vec<u8> {
    let mut out = Vec::new();
    for c in &n.children {
        out.extend_from_slice(c.as_bytes());
        out.push(0);
    }
    out
}

pub(crate) fn directory<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    path: &str,
) -> Result<Vec<u8>, XsError> {
    let blob = with_node(v, who, path, Access::Read, child_blob)?;
    if blob.len() > XENSTORE_PAYLOAD_MAX {
        return Err(XsError::TooBig);
    }
    Ok(blob)
}

/// XS_DIRECTORY_PART: `gen\0` then whole names from byte `offset` that fit; an extra empty
/// name marks the end of the list.
pub(crate) fn directory_part<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    path: &str,
    offset: u64,
) -> Result<Vec<u8>, XsError> {
    let (blob, generation) = with_node(v, who, path, Access::Read, |n| {
        (child_blob(n), n.generation)
    })?;
    let offset = usize::try_from(offset).map_err(|_| XsError::Inval)?;
    if offset > blob.len() {
        return Err(XsError::Inval);
    }
    let mut out = alloc::format!("{generation}\0").into_bytes();
    let rest = &blob[offset..];
    let room = XENSTORE_PAYLOAD_MAX - out.len() - 1;
    if rest.len() <= room {
        out.extend_from_slice(rest);
        out.push(0);
    } else {
        let cut = rest[..room]
            .iter()
            .rposition(|b| *b == 0)
            .map_or(0, |i| i + 1);
        out.extend_from_slice(&rest[..cut]);
    }
    Ok(out)
}

pub(crate) fn get_perms<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    path: &str,
) -> Result<Vec<u8>, XsError> {
    with_node(v, who, path, Access::Read, |n| n.perms.encode())
}

/// Create `path` (and any missing parents, with empty values) holding `value`.
fn create<V: View>(v: &mut V, who: &Caller<'_>, path: &str, value: &[u8]) -> Result<(), XsError> {
    let e = missing(v, who, path, Access::Write);
    if e != XsError::NoEnt {
        return Err(e);
    }
    let mut todo = vec![path.to_string()];
    let mut p = path;
    let top = loop {
        let pp = parent(p).ok_or(XsError::Inval)?;
        if v.get(pp).is_some() {
            break pp;
        }
        todo.push(pp.to_string());
        p = pp;
    };
    if !who.privileged() {
        let n = i64::try_from(todo.len()).unwrap_or(i64::MAX);
        if depth(path) > who.quota.max_depth {
            who.refuse(Refusal::PathSize);
            return Err(XsError::NoSpc);
        }
        if v.owned_by(who.dom).saturating_add(n) > i64::from(who.quota.max_nodes) {
            who.refuse(Refusal::NodeQuota);
            return Err(XsError::NoSpc);
        }
    }
    let mut perms = v.get(top).map(|n| n.perms.clone()).ok_or(XsError::NoEnt)?;
    if !who.privileged() {
        // Inherit the parent's permissions; unprivileged domains own what they create.
        perms = perms.with_owner(who.dom);
    }
    // Everything is charged before anything is allocated (XSA-326: the quota is checked
    // first, so a refused request leaves nothing behind).
    let cost: u64 = todo
        .iter()
        .map(|p| {
            let vlen = if p == path { value.len() } else { 0 };
            node_cost(p.len(), vlen, perms.entries().len(), basename(p).len())
        })
        .sum();
    v.afford(who, perms.owner(), cost)?;
    let mut value = Some(try_copy(value)?);
    for p in todo.iter().rev() {
        let val = if p == path {
            value.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        v.insert(p, Node::new(val, perms.clone()));
        let name = basename(p).to_string();
        let pp = parent(p).ok_or(XsError::Inval)?;
        v.modify(pp, |n| {
            n.children.insert(name);
        });
    }
    v.changed(Change {
        path: path.to_string(),
        perms,
        recurse: false,
    });
    Ok(())
}

pub(crate) fn write<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    path: &str,
    value: &[u8],
) -> Result<(), XsError> {
    if !who.privileged() && value.len() > who.quota.max_value_len {
        who.refuse(Refusal::ValueSize);
        return Err(XsError::NoSpc);
    }
    let found = v.get(path).map(|n| {
        (
            who.may(&n.perms, Access::Write),
            n.perms.owner(),
            n.value.len(),
        )
    });
    match found {
        Some((false, _, _)) => Err(XsError::Acces),
        Some((true, owner, old_len)) => {
            v.afford(who, owner, value.len().saturating_sub(old_len) as u64)?;
            let val = try_copy(value)?;
            let perms = v.modify(path, |n| n.value = val).ok_or(XsError::NoEnt)?;
            v.changed(Change {
                path: path.to_string(),
                perms,
                recurse: false,
            });
            Ok(())
        }
        None => create(v, who, path, value),
    }
}

pub(crate) fn mkdir<V: View>(v: &mut V, who: &Caller<'_>, path: &str) -> Result<(), XsError> {
    match v.get(path).map(|n| who.may(&n.perms, Access::Write)) {
        Some(false) => Err(XsError::Acces),
        Some(true) => Ok(()),
        None => create(v, who, path, &[]),
    }
}

pub(crate) fn rm<V: View>(v: &mut V, who: &Caller<'_>, path: &str) -> Result<(), XsError> {
    let perms = match v
        .get(path)
        .map(|n| (who.may(&n.perms, Access::Write), n.perms.clone()))
    {
        Some((false, _)) => return Err(XsError::Acces),
        Some((true, p)) => p,
        None => {
            let e = missing(v, who, path, Access::Write);
            if e != XsError::NoEnt {
                return Err(e);
            }
            // Removing what is not there is fine if the parent exists.
            return match parent(path) {
                Some(pp) if v.get(pp).is_some() => Ok(()),
                _ => Err(XsError::NoEnt),
            };
        }
    };
    let pp = parent(path).ok_or(XsError::Inval)?;
    let mut stack = vec![path.to_string()];
    let mut doomed = Vec::new();
    while let Some(p) = stack.pop() {
        if let Some(n) = v.get(&p) {
            stack.extend(n.children.iter().map(|c| join(&p, c)));
        }
        doomed.push(p);
    }
    for p in &doomed {
        v.remove(p);
    }
    let name = basename(path).to_string();
    v.modify(pp, |n| {
        n.children.remove(&name);
    });
    v.changed(Change {
        path: path.to_string(),
        perms,
        recurse: true,
    });
    Ok(())
}

pub(crate) fn set_perms<V: View>(
    v: &mut V,
    who: &Caller<'_>,
    path: &str,
    perms: Perms,
) -> Result<(), XsError> {
    if !who.privileged() && perms.entries().len() > who.quota.max_perms {
        who.refuse(Refusal::PermQuota);
        return Err(XsError::NoSpc);
    }
    let (owner, owns, old) = with_node(v, who, path, Access::Write, |n| {
        (n.perms.owner(), who.owns(&n.perms), n.perms.entries().len())
    })?;
    if !owns {
        // Write access is not enough: C xenstored asks for XS_PERM_WRITE | XS_PERM_OWNER.
        return Err(XsError::Acces);
    }
    if !who.privileged() && perms.owner() != owner {
        // Only the control domain may give a node away.
        return Err(XsError::Perm);
    }
    let grow = perms.entries().len().saturating_sub(old) as u64 * PERM_BYTES;
    v.afford(who, owner, grow)?;
    let p = perms.clone();
    v.modify(path, |n| n.perms = p).ok_or(XsError::NoEnt)?;
    v.changed(Change {
        path: path.to_string(),
        perms,
        recurse: false,
    });
    Ok(())
}

/// Does a change at `changed` (recursive if `recurse`) concern a watch on `wpath`?
/// Returns `Some(true)` when the event names the changed path, `Some(false)` when it names the
/// watch path (an ancestor of the watch went away).
pub(crate) fn watch_matches(wpath: &str, changed: &str, recurse: bool) -> Option<bool> {
    if wpath == changed || is_below(changed, wpath) {
        Some(true)
    } else if recurse && is_below(wpath, changed) {
        Some(false)
    } else {
        None
    }
}

/// Write access to the root (checked before refusing to remove it).
pub(crate) fn with_root_access<V: View>(v: &mut V, who: &Caller<'_>) -> Result<(), XsError> {
    with_node(v, who, "/", Access::Write, |_| ())
}
