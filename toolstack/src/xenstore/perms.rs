//! Node permissions: a non-empty list of `<c><domid>` entries; the first names the owner and
//! gives the access of every domain not listed.

use alloc::format;
use alloc::vec::Vec;

use super::DomId;
use super::path::parse_domid;
use super::wire::XsError;

/// One access class (`n`, `r`, `w`, `b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    None,
    Read,
    Write,
    Both,
}

impl Access {
    pub fn from_char(c: u8) -> Option<Access> {
        Some(match c {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return None,
        })
    }

    pub fn to_char(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }

    /// `self` grants everything `need` asks for.
    pub fn covers(self, need: Access) -> bool {
        (!need.can_read() || self.can_read()) && (!need.can_write() || self.can_write())
    }

    fn union(self, o: Access) -> Access {
        match (
            self.can_read() || o.can_read(),
            self.can_write() || o.can_write(),
        ) {
            (true, true) => Access::Both,
            (true, false) => Access::Read,
            (false, true) => Access::Write,
            (false, false) => Access::None,
        }
    }
}

/// One entry of a permission list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    pub dom: DomId,
    pub access: Access,
}

/// A node's permission list (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms(Vec<Perm>);

impl Perms {
    /// Owned by `owner`, `others` for everyone else.
    pub fn new(owner: DomId, others: Access) -> Perms {
        Perms(alloc::vec![Perm {
            dom: owner,
            access: others
        }])
    }

    /// From a list; `None` if empty.
    pub fn from_list(list: Vec<Perm>) -> Option<Perms> {
        if list.is_empty() {
            None
        } else {
            Some(Perms(list))
        }
    }

    /// Add (or replace) the entry for `dom`.
    pub fn with(mut self, dom: DomId, access: Access) -> Perms {
        if let Some(p) = self.0[1..].iter_mut().find(|p| p.dom == dom) {
            p.access = access;
        } else {
            self.0.push(Perm { dom, access });
        }
        self
    }

    /// The same list with `dom` as owner (what an unprivileged creator gets).
    pub fn with_owner(mut self, dom: DomId) -> Perms {
        self.0[0].dom = dom;
        self
    }

    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    pub fn owner(&self) -> DomId {
        self.0[0].dom
    }

    /// Parse the strings of XS_SET_PERMS (`"n0"`, `"r5"`, …).
    pub fn parse(args: &[&[u8]]) -> Result<Perms, XsError> {
        let mut v = Vec::with_capacity(args.len());
        for a in args {
            let (&c, id) = a.split_first().ok_or(XsError::Inval)?;
            let access = Access::from_char(c).ok_or(XsError::Inval)?;
            v.push(Perm {
                dom: parse_domid(id)?,
                access,
            });
        }
        Perms::from_list(v).ok_or(XsError::Inval)
    }

    /// The XS_GET_PERMS reply: each entry NUL-terminated.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            out.extend_from_slice(format!("{}{}\0", p.access.to_char(), p.dom).as_bytes());
        }
        out
    }

    /// What `dom` may do, not counting dom0's privilege: the owner may do everything, a listed
    /// domain gets its entry, anyone else the owner entry's class. `target` (XS_SET_TARGET:
    /// a device model acting for a guest) adds the target's rights.
    pub fn access_for(&self, dom: DomId, target: Option<DomId>) -> Access {
        let one = |d: DomId| -> Access {
            if d == self.owner() {
                return Access::Both;
            }
            self.0[1..]
                .iter()
                .find(|p| p.dom == d)
                .map_or(self.0[0].access, |p| p.access)
        };
        let mut a = one(dom);
        if let Some(t) = target {
            a = a.union(one(t));
        }
        a
    }

    /// Drop every mention of a dead domain; nodes it owned pass to dom0 (XSA-322: a reused
    /// domain id must not inherit rights).
    pub fn revoke(&mut self, dom: DomId) -> bool {
        let before = self.0.len();
        let owner_gone = self.0[0].dom == dom;
        if owner_gone {
            self.0[0].dom = 0;
        }
        let first = self.0[0];
        let mut rest: Vec<Perm> = self.0[1..]
            .iter()
            .copied()
            .filter(|p| p.dom != dom)
            .collect();
        rest.insert(0, first);
        self.0 = rest;
        owner_gone || self.0.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_encode() {
        let p = Perms::parse(&[b"n0", b"r5", b"b7"]).unwrap();
        assert_eq!(p.encode(), b"n0\0r5\0b7\0");
        assert_eq!(p.owner(), 0);
        assert!(Perms::parse(&[]).is_err());
        assert!(Perms::parse(&[b"x0"]).is_err());
        assert!(Perms::parse(&[b"r"]).is_err());
        assert!(Perms::parse(&[b"r-1"]).is_err());
        assert!(Perms::parse(&[b"r99999"]).is_err());
    }

    #[test]
    fn access() {
        let p = Perms::parse(&[b"n3", b"r5", b"w6"]).unwrap();
        assert_eq!(p.access_for(3, None), Access::Both);
        assert_eq!(p.access_for(5, None), Access::Read);
        assert_eq!(p.access_for(6, None), Access::Write);
        assert_eq!(p.access_for(9, None), Access::None);
        assert_eq!(p.access_for(9, Some(3)), Access::Both);
        let q = Perms::parse(&[b"r3"]).unwrap();
        assert_eq!(q.access_for(9, None), Access::Read);
        let mut r = Perms::parse(&[b"n3", b"r5"]).unwrap();
        assert!(r.revoke(3));
        assert_eq!(r.encode(), b"n0\0r5\0");
        assert!(r.revoke(5));
        assert_eq!(r.encode(), b"n0\0");
        assert!(!r.revoke(8));
    }
}
