//! The node tree, the transaction overlay, and the node operations written once for both
//! (through [`View`]).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use lean::{VecMap, VecSet};

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

mod ops;
pub(crate) use ops::*;

/// One node: value, permissions, child names and the generation of its last change.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub value: Vec<u8>,
    pub perms: Perms,
    pub children: VecSet<String>,
    pub generation: u64,
}

impl Node {
    fn new(value: Vec<u8>, perms: Perms) -> Node {
        Node {
            value,
            perms,
            children: VecSet::new(),
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
    pub owned: VecMap<DomId, i64>,
    /// Bytes charged to each domain for the nodes it owns.
    pub bytes: VecMap<DomId, u64>,
    /// Their sum over every domain but dom0.
    pub domu_bytes: u64,
    pub next_gen: u64,
}

impl Tree {
    pub fn new() -> Tree {
        let mut t = Tree {
            nodes: BTreeMap::new(),
            owned: VecMap::new(),
            bytes: VecMap::new(),
            domu_bytes: 0,
            next_gen: 0,
        };
        t.insert(
            "/".to_string(),
            Node::new(Vec::new(), Perms::new(0, Access::None)),
        );
        t
    }

    fn count(owned: &mut VecMap<DomId, i64>, dom: DomId, delta: i64) {
        let e = owned.entry(dom).or_insert(0);
        *e += delta;
        if *e == 0 {
            owned.remove(&dom);
        }
    }

    /// Charge `dom` `add` bytes and release `sub`; `domu` is the sum over DomUs.
    fn charge(bytes: &mut VecMap<DomId, u64>, domu: &mut u64, dom: DomId, add: u64, sub: u64) {
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
        let mut owned: VecMap<DomId, i64> = VecMap::new();
        let mut bytes: VecMap<DomId, u64> = VecMap::new();
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
    pub overlay: VecMap<String, Option<Node>>,
    /// Generation (or absence) of every node read or written, as first seen.
    pub reads: VecMap<String, Option<u64>>,
    /// Owned-node count changes per domain.
    pub delta: VecMap<DomId, i64>,
    /// Watch records to fire on commit: one per changed node (its permissions, and whether
    /// a subtree went away), so a node written 5,000 times fires its watches once.
    pub changes: VecMap<String, (Perms, bool)>,
    /// The transaction went over a limit; it can only fail (with this error).
    pub failed: Option<XsError>,
    /// Bytes charged to its domain for it (see `account`).
    pub bytes: u64,
}

impl Transaction {
    pub fn new() -> Transaction {
        Transaction {
            overlay: VecMap::new(),
            reads: VecMap::new(),
            delta: VecMap::new(),
            changes: VecMap::new(),
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
