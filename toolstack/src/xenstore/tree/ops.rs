//! The node operations every request type is made of (read, directory, write, mkdir, rm,
//! permissions), over a [`View`] (the tree itself, or a transaction), each checking the
//! caller's access and the quotas first.

use super::*;

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
