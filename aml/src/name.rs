//! AML names (ACPI 6.5 §20.2.2): name segments, name strings and absolute paths.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::Cursor;

/// A 4-character name segment, padded with `_` as AML stores it (`_SB_`, `PCI0`).
pub type NameSeg = [u8; 4];

/// An absolute namespace path (`\_SB_.PCI0`); the root is the empty path.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Path(pub Vec<NameSeg>);

impl Path {
    pub fn root() -> Path {
        Path(Vec::new())
    }

    /// Parses `\_SB_.PCI0` or `\_SB.PCI0` (short segments are padded with `_`).
    pub fn parse(s: &str) -> Option<Path> {
        let s = s.strip_prefix('\\')?;
        if s.is_empty() {
            return Some(Path::root());
        }
        let mut segs = Vec::new();
        for part in s.split('.') {
            let b = part.as_bytes();
            if b.is_empty() || b.len() > 4 {
                return None;
            }
            let mut seg = *b"____";
            seg[..b.len()].copy_from_slice(b);
            segs.push(seg);
        }
        Some(Path(segs))
    }

    pub fn child(&self, seg: NameSeg) -> Path {
        let mut p = self.clone();
        p.0.push(seg);
        p
    }

    pub fn parent(&self) -> Option<Path> {
        let mut p = self.clone();
        p.0.pop()?;
        Some(p)
    }

    pub fn last(&self) -> Option<NameSeg> {
        self.0.last().copied()
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\\")?;
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for &c in seg {
                write!(f, "{}", char::from(c))?;
            }
        }
        Ok(())
    }
}

/// A name string as written in AML: absolute (`\`), or relative with `^` prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameString {
    pub root: bool,
    /// Number of `^` (parent) prefixes.
    pub up: u8,
    pub segs: Vec<NameSeg>,
}

impl NameString {
    /// A single relative segment: the ACPI search rules apply (scope, then each parent).
    pub fn searches(&self) -> bool {
        !self.root && self.up == 0 && self.segs.len() == 1
    }

    /// The path this names relative to `scope` (no search).
    pub fn resolve_in(&self, scope: &Path) -> Option<Path> {
        let mut base = if self.root {
            Path::root()
        } else {
            scope.clone()
        };
        for _ in 0..self.up {
            base.0.pop()?;
        }
        base.0.extend_from_slice(&self.segs);
        Some(base)
    }
}

impl fmt::Display for NameString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.root {
            f.write_str("\\")?;
        }
        for _ in 0..self.up {
            f.write_str("^")?;
        }
        let p = Path(self.segs.clone());
        let s = alloc::format!("{p}");
        f.write_str(&s[1..])
    }
}

/// Whether `b` can start a name string (root, parent prefix, dual/multi prefix, lead char).
pub fn is_name_start(b: u8) -> bool {
    matches!(b, b'\\' | b'^' | 0x2e | 0x2f | b'A'..=b'Z' | b'_')
}

fn seg(c: &mut Cursor<'_>) -> Result<NameSeg, String> {
    let at = c.pos;
    let b = c.take(4)?;
    let ok = matches!(b[0], b'A'..=b'Z' | b'_')
        && b[1..]
            .iter()
            .all(|&x| matches!(x, b'A'..=b'Z' | b'0'..=b'9' | b'_'));
    if !ok {
        return Err(alloc::format!("bad name segment {b:02x?} at {at:#x}"));
    }
    Ok([b[0], b[1], b[2], b[3]])
}

/// Reads a NameString (§20.2.2).
pub(crate) fn name_string(c: &mut Cursor<'_>) -> Result<NameString, String> {
    let mut n = NameString {
        root: false,
        up: 0,
        segs: Vec::new(),
    };
    if c.peek()? == b'\\' {
        c.pos += 1;
        n.root = true;
    } else {
        while c.peek()? == b'^' {
            c.pos += 1;
            n.up = n.up.saturating_add(1);
        }
    }
    match c.peek()? {
        0x00 => c.pos += 1,
        0x2e => {
            c.pos += 1;
            n.segs.push(seg(c)?);
            n.segs.push(seg(c)?);
        }
        0x2f => {
            c.pos += 1;
            let count = c.u8()?;
            for _ in 0..count {
                n.segs.push(seg(c)?);
            }
        }
        _ => n.segs.push(seg(c)?),
    }
    Ok(n)
}
