//! Node paths: validation, relative → absolute, and the helpers the tree and watches need.

use alloc::format;
use alloc::string::String;

use super::DomId;
use super::wire::{XENSTORE_ABS_PATH_MAX, XENSTORE_REL_PATH_MAX, XsError};

/// `/local/domain/<domid>`, the home of a domain and the base of its relative paths.
pub fn domain_path(dom: DomId) -> String {
    format!("/local/domain/{dom}")
}

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// A path as the client wrote it and its absolute form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPath {
    /// Absolute path (`/…`) or special name (`@…`).
    pub abs: String,
    /// The client sent a relative path (events are then reported relative).
    pub relative: bool,
}

/// Validate a client path and make it absolute. `special` allows `@name` (watch paths and
/// the permissions of `@introduceDomain`/`@releaseDomain`).
pub fn canonicalize(dom: DomId, raw: &[u8], special: bool) -> Result<ClientPath, XsError> {
    if raw.is_empty() || !raw.iter().all(|c| valid_char(*c)) {
        return Err(XsError::Inval);
    }
    // All bytes are ASCII from here on.
    let s = core::str::from_utf8(raw).map_err(|_| XsError::Inval)?;
    if let Some(name) = s.strip_prefix('@') {
        if !special || name.is_empty() || name.contains('/') || s.len() > XENSTORE_REL_PATH_MAX {
            return Err(XsError::Inval);
        }
        return Ok(ClientPath {
            abs: String::from(s),
            relative: false,
        });
    }
    let (abs, relative) = if s.starts_with('/') {
        (String::from(s), false)
    } else {
        if s.len() > XENSTORE_REL_PATH_MAX {
            return Err(XsError::Inval);
        }
        (format!("{}/{}", domain_path(dom), s), true)
    };
    if abs.len() > XENSTORE_ABS_PATH_MAX
        || abs.contains("//")
        || (abs.len() > 1 && abs.ends_with('/'))
        || (dom != 0 && unprivileged_len(&abs) > XENSTORE_REL_PATH_MAX)
    {
        return Err(XsError::Inval);
    }
    Ok(ClientPath { abs, relative })
}

/// The length C xenstored holds an unprivileged domain's path to (`ACC_PATHLEN`, 2,048 by
/// default): the part after a `/local/domain/<id>/` prefix, or the whole path.
fn unprivileged_len(abs: &str) -> usize {
    let Some(rest) = abs.strip_prefix("/local/domain/") else {
        return abs.len();
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest.as_bytes().get(digits) {
        Some(b'/') if (1..=5).contains(&digits) => rest.len() - digits - 1,
        _ => abs.len(),
    }
}

/// The first argument of a request from `dom` is a path over the unprivileged length limit
/// (to tell that refusal apart from a malformed path in the report).
pub fn too_long(dom: DomId, payload: &[u8]) -> bool {
    let first = payload.split(|b| *b == 0).next().unwrap_or(&[]);
    if dom == 0 || first.is_empty() {
        return false;
    }
    if first[0] == b'/' {
        core::str::from_utf8(first).is_ok_and(|s| unprivileged_len(s) > XENSTORE_REL_PATH_MAX)
    } else {
        first.len() > XENSTORE_REL_PATH_MAX
    }
}

/// Parent of an absolute path (`None` for the root).
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// Last component of an absolute path.
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// `parent/name`.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// `child` lies strictly below `ancestor`.
pub fn is_below(child: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return child.len() > 1 && child.starts_with('/');
    }
    child.len() > ancestor.len()
        && child.starts_with(ancestor)
        && child.as_bytes()[ancestor.len()] == b'/'
}

/// Number of components (`/` = 0, `/a/b` = 2).
pub fn depth(path: &str) -> usize {
    if path == "/" {
        0
    } else {
        path.bytes().filter(|b| *b == b'/').count()
    }
}

/// Parse a decimal domain id (what XS_INTRODUCE & co. and permission strings carry).
pub fn parse_domid(raw: &[u8]) -> Result<DomId, XsError> {
    parse_u64(raw)
        .ok()
        .and_then(|v| DomId::try_from(v).ok())
        .ok_or(XsError::Inval)
}

/// Parse a decimal number without sign, spaces or overflow.
pub fn parse_u64(raw: &[u8]) -> Result<u64, XsError> {
    if raw.is_empty() || raw.len() > 20 {
        return Err(XsError::Inval);
    }
    let mut v: u64 = 0;
    for c in raw {
        if !c.is_ascii_digit() {
            return Err(XsError::Inval);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(XsError::Inval)?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths() {
        let c = canonicalize(5, b"device/vif", false).unwrap();
        assert_eq!(c.abs, "/local/domain/5/device/vif");
        assert!(c.relative);
        assert_eq!(canonicalize(5, b"/", false).unwrap().abs, "/");
        assert_eq!(
            canonicalize(5, b"/a/b-c_d@e", false).unwrap().abs,
            "/a/b-c_d@e"
        );
        for bad in [
            &b""[..],
            b"/a/",
            b"/a//b",
            b"a/",
            b"/a b",
            b"/a\0",
            b"/\xff",
            b"/a.b",
            b"@x",
        ] {
            assert_eq!(canonicalize(5, bad, false), Err(XsError::Inval), "{bad:?}");
        }
        assert_eq!(
            canonicalize(5, b"@releaseDomain", true).unwrap().abs,
            "@releaseDomain"
        );
        assert!(canonicalize(5, b"@", true).is_err());
        let long = alloc::vec![b'a'; XENSTORE_REL_PATH_MAX + 1];
        assert!(canonicalize(5, &long, false).is_err());
        let mut abs = alloc::vec![b'/'];
        abs.extend(core::iter::repeat_n(b'a', XENSTORE_ABS_PATH_MAX - 1));
        assert!(canonicalize(0, &abs, false).is_ok());
        // Unprivileged domains: 2,048 bytes (after a /local/domain/<id>/ prefix), as C.
        assert!(canonicalize(5, &abs, false).is_err());
        assert!(canonicalize(5, &abs[..XENSTORE_REL_PATH_MAX], false).is_ok());
        assert!(canonicalize(5, &abs[..XENSTORE_REL_PATH_MAX + 1], false).is_err());
        let mut home = b"/local/domain/7/".to_vec();
        home.extend(core::iter::repeat_n(b'a', XENSTORE_REL_PATH_MAX));
        assert!(canonicalize(5, &home, false).is_ok());
        home.push(b'a');
        assert!(canonicalize(5, &home, false).is_err());
        assert!(canonicalize(0, &home, false).is_ok());
        abs.push(b'a');
        assert!(canonicalize(0, &abs, false).is_err());
    }

    #[test]
    fn helpers() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_below("/a/b", "/a"));
        assert!(!is_below("/ab", "/a"));
        assert!(!is_below("/a", "/a"));
        assert!(is_below("/a", "/"));
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
        assert_eq!(parse_domid(b"65535"), Ok(65535));
        assert!(parse_domid(b"65536").is_err());
        assert!(parse_domid(b"-1").is_err());
        assert!(parse_domid(b"").is_err());
        assert!(parse_u64(b"99999999999999999999").is_err());
    }
}
