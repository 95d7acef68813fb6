//! The node tree, the transaction overlay, and the node operations written once for both
//! (through [`View`]).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::DomId;
use super::Quota;
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
    pub next_gen: u64,
}

impl Tree {
    pub fn new() -> Tree {
        let mut t = Tree {
            nodes: BTreeMap::new(),
            owned: BTreeMap::new(),
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

    pub fn owned_by(&self, dom: DomId) -> i64 {
        self.owned.get(&dom).copied().unwrap_or(0)
    }

    pub fn generation(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).map(|n| n.generation)
    }

    pub fn insert(&mut self, path: String, mut node: Node) {
        self.next_gen += 1;
        node.generation = self.next_gen;
        Tree::count(&mut self.owned, node.perms.owner(), 1);
        if let Some(old) = self.nodes.insert(path, node) {
            Tree::count(&mut self.owned, old.perms.owner(), -1);
        }
    }

    pub fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            Tree::count(&mut self.owned, old.perms.owner(), -1);
        }
    }

    pub fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> Option<Perms> {
        let n = self.nodes.get_mut(path)?;
        let old = n.perms.owner();
        f(n);
        self.next_gen += 1;
        n.generation = self.next_gen;
        let new = n.perms.owner();
        let perms = n.perms.clone();
        if old != new {
            Tree::count(&mut self.owned, old, -1);
            Tree::count(&mut self.owned, new, 1);
        }
        Some(perms)
    }

    /// Strip a dead domain from every permission list (its nodes pass to dom0).
    pub fn revoke(&mut self, dom: DomId) {
        for n in self.nodes.values_mut() {
            let old = n.perms.owner();
            if n.perms.revoke(dom) {
                self.next_gen += 1;
                n.generation = self.next_gen;
                if old != n.perms.owner() {
                    Tree::count(&mut self.owned, old, -1);
                    Tree::count(&mut self.owned, n.perms.owner(), 1);
                }
            }
        }
    }

    /// Structural invariants (tests and `XS_CONTROL check`).
    pub fn check(&self) -> Result<(), &'static str> {
        let mut owned: BTreeMap<DomId, i64> = BTreeMap::new();
        if !self.nodes.contains_key("/") {
            return Err("root missing");
        }
        for (p, n) in &self.nodes {
            Tree::count(&mut owned, n.perms.owner(), 1);
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
        Ok(())
    }
}

/// A transaction: copy-on-write overlay plus the generation of every node it looked at.
#[derive(Debug, Default)]
pub(crate) struct Transaction {
    /// Changed nodes (`None` = removed).
    pub overlay: BTreeMap<String, Option<Node>>,
    /// Generation (or absence) of every node read or written, as first seen.
    pub reads: BTreeMap<String, Option<u64>>,
    /// Owned-node count changes per domain.
    pub delta: BTreeMap<DomId, i64>,
    /// Watch events to fire on commit.
    pub changes: Vec<Change>,
    /// The transaction touched more nodes than the quota allows; it can only fail.
    pub overflow: bool,
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
    fn full(&self) -> bool;
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
    fn full(&self) -> bool {
        false
    }
}

/// Operations inside a transaction.
pub(crate) struct InTx<'a> {
    pub tree: &'a Tree,
    pub tx: &'a mut Transaction,
    pub max_nodes: usize,
}

impl InTx<'_> {
    fn note(&mut self, path: &str) {
        if self.tx.reads.contains_key(path) {
            return;
        }
        if self.tx.reads.len() >= self.max_nodes {
            self.tx.overflow = true;
            return;
        }
        self.tx
            .reads
            .insert(path.to_string(), self.tree.generation(path));
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
        if let Some(o) = self.current_owner(path) {
            self.adjust(o, -1);
        }
        self.adjust(node.perms.owner(), 1);
        self.tx.overlay.insert(path.to_string(), Some(node));
    }
    fn remove(&mut self, path: &str) {
        self.note(path);
        if let Some(o) = self.current_owner(path) {
            self.adjust(o, -1);
            self.tx.overlay.insert(path.to_string(), None);
        }
    }
    fn modify(&mut self, path: &str, f: impl FnOnce(&mut Node)) -> Option<Perms> {
        self.note(path);
        let mut node = match self.tx.overlay.remove(path) {
            Some(Some(n)) => n,
            Some(None) => {
                self.tx.overlay.insert(path.to_string(), None);
                return None;
            }
            None => self.tree.nodes.get(path)?.clone(),
        };
        let old = node.perms.owner();
        f(&mut node);
        let new = node.perms.owner();
        if old != new {
            self.adjust(old, -1);
            self.adjust(new, 1);
        }
        let perms = node.perms.clone();
        self.tx.overlay.insert(path.to_string(), Some(node));
        Some(perms)
    }
    fn owned_by(&self, dom: DomId) -> i64 {
        self.tree.owned_by(dom) + self.tx.delta.get(&dom).copied().unwrap_or(0)
    }
    fn changed(&mut self, c: Change) {
        self.tx.changes.push(c);
    }
    fn full(&self) -> bool {
        self.tx.overflow
    }
}

/// Who is asking.
#[derive(Debug)]
pub(crate) struct Caller<'q> {
    pub dom: DomId,
    pub target: Option<DomId>,
    pub quota: &'q Quota,
}

impl Caller<'_> {
    pub fn privileged(&self) -> bool {
        self.dom == 0
    }

    pub fn may(&self, perms: &Perms, need: Access) -> bool {
        self.privileged() || perms.access_for(self.dom, self.target).covers(need)
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
        if depth(path) > who.quota.max_depth
            || v.owned_by(who.dom).saturating_add(n) > i64::from(who.quota.max_nodes)
        {
            return Err(XsError::NoSpc);
        }
    }
    let mut perms = v.get(top).map(|n| n.perms.clone()).ok_or(XsError::NoEnt)?;
    if !who.privileged() {
        // Inherit the parent's permissions; unprivileged domains own what they create.
        perms = perms.with_owner(who.dom);
    }
    for p in todo.iter().rev() {
        let val = if p == path {
            value.to_vec()
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
        return Err(XsError::NoSpc);
    }
    match v.get(path).map(|n| who.may(&n.perms, Access::Write)) {
        Some(false) => Err(XsError::Acces),
        Some(true) => {
            let perms = v
                .modify(path, |n| n.value = value.to_vec())
                .ok_or(XsError::NoEnt)?;
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
        return Err(XsError::NoSpc);
    }
    let owner = with_node(v, who, path, Access::Write, |n| n.perms.owner())?;
    if !who.privileged() && perms.owner() != owner {
        // Only the control domain may give a node away.
        return Err(XsError::Perm);
    }
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
