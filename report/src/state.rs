//! Results the report carries as text on the wire but as enums in code: what Xen said to a
//! `PHYSDEVOP_pci_device_add`, and what dom0 did with a start_info module. Each keeps the
//! wire string it always had (so `report_version` is unchanged) through `From<String>` and
//! `Display`.

use alloc::string::{String, ToString};
use core::fmt;

use serde::{Deserialize, Serialize};

/// What `PHYSDEVOP_pci_device_add` gave for one function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum XenAdd {
    /// dom0 did not report it (no Xen, or not reached): "not reported".
    #[default]
    NotReported,
    /// Xen accepted it: "ok".
    Ok,
    /// Xen refused it: the errno ("-ENODEV (19)"), and dom0's explanation when it has one.
    Refused(String),
}

impl XenAdd {
    /// Whether Xen accepted the function.
    pub fn is_ok(&self) -> bool {
        matches!(self, XenAdd::Ok)
    }
}

impl fmt::Display for XenAdd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenAdd::NotReported => f.write_str("not reported"),
            XenAdd::Ok => f.write_str("ok"),
            XenAdd::Refused(why) => f.write_str(why),
        }
    }
}

impl From<String> for XenAdd {
    fn from(s: String) -> Self {
        match s.as_str() {
            "ok" => XenAdd::Ok,
            "not reported" | "" => XenAdd::NotReported,
            _ => XenAdd::Refused(s),
        }
    }
}

impl From<&str> for XenAdd {
    fn from(s: &str) -> Self {
        XenAdd::from(String::from(s))
    }
}

impl From<XenAdd> for String {
    fn from(x: XenAdd) -> String {
        x.to_string()
    }
}

/// What dom0 did with a start_info module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ModuleStatus {
    /// Not looked at (a report built by hand): "".
    #[default]
    Unseen,
    /// Read and used; the text says what it held ("1 DomU(s), 2 file(s): demo (...)").
    Used(String),
    /// Recognised, but nothing in dom0 consumes this kind: "recognised; nothing consumes it
    /// yet".
    Recognised,
    /// Refused, and why: "rejected: <why>" (also an error in the report).
    Rejected(String),
}

impl ModuleStatus {
    const RECOGNISED: &'static str = "recognised; nothing consumes it yet";
    const REJECTED: &'static str = "rejected: ";

    /// Whether dom0 refused the module.
    pub fn is_rejected(&self) -> bool {
        matches!(self, ModuleStatus::Rejected(_))
    }
}

impl fmt::Display for ModuleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleStatus::Unseen => Ok(()),
            ModuleStatus::Used(what) => f.write_str(what),
            ModuleStatus::Recognised => f.write_str(Self::RECOGNISED),
            ModuleStatus::Rejected(why) => write!(f, "{}{why}", Self::REJECTED),
        }
    }
}

impl From<String> for ModuleStatus {
    fn from(s: String) -> Self {
        if s.is_empty() {
            ModuleStatus::Unseen
        } else if s == Self::RECOGNISED {
            ModuleStatus::Recognised
        } else if let Some(why) = s.strip_prefix(Self::REJECTED) {
            ModuleStatus::Rejected(why.into())
        } else {
            ModuleStatus::Used(s)
        }
    }
}

impl From<&str> for ModuleStatus {
    fn from(s: &str) -> Self {
        ModuleStatus::from(String::from(s))
    }
}

impl From<ModuleStatus> for String {
    fn from(m: ModuleStatus) -> String {
        m.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip() {
        for (text, x) in [
            ("ok", XenAdd::Ok),
            ("not reported", XenAdd::NotReported),
            ("-ENODEV (19)", XenAdd::Refused("-ENODEV (19)".into())),
        ] {
            assert_eq!(XenAdd::from(text), x);
            assert_eq!(x.to_string(), text);
        }
        for (text, m) in [
            ("", ModuleStatus::Unseen),
            (
                "recognised; nothing consumes it yet",
                ModuleStatus::Recognised,
            ),
            (
                "rejected: CRC mismatch",
                ModuleStatus::Rejected("CRC mismatch".into()),
            ),
            (
                "1 DomU(s), 1 file(s): web",
                ModuleStatus::Used("1 DomU(s), 1 file(s): web".into()),
            ),
        ] {
            assert_eq!(ModuleStatus::from(text), m);
            assert_eq!(m.to_string(), text);
        }
        let json = serde_json::to_string(&ModuleStatus::Rejected("x".into())).unwrap();
        assert_eq!(json, r#""rejected: x""#);
        let back: XenAdd = serde_json::from_str(r#""-EPERM (1)""#).unwrap();
        assert_eq!(back, XenAdd::Refused("-EPERM (1)".into()));
    }
}
