//! The one way dom0 reports something it found wrong: logged at its level, and recorded in the
//! report (`errors` or `warnings`), with the same text in both places.

use alloc::string::String;

use report::BootReport;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// dom0 went on, but something is not as it should be (`BootReport::warnings`).
    Warning,
    /// Something dom0 was asked to do or should have done failed (`BootReport::errors`).
    Error,
}

/// Log `msg` at `severity` and record it in `rep`.
pub fn record(rep: &mut BootReport, severity: Severity, msg: impl Into<String>) {
    let msg = msg.into();
    match severity {
        Severity::Warning => {
            log::warn!("{msg}");
            rep.warnings.push(msg);
        }
        Severity::Error => {
            log::error!("{msg}");
            rep.errors.push(msg);
        }
    }
}

/// A warning: logged and recorded.
pub fn warn(rep: &mut BootReport, msg: impl Into<String>) {
    record(rep, Severity::Warning, msg);
}

/// An error: logged and recorded.
pub fn error(rep: &mut BootReport, msg: impl Into<String>) {
    record(rep, Severity::Error, msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_severity_lands_in_its_list() {
        let mut rep = BootReport::default();
        warn(&mut rep, "w");
        error(&mut rep, alloc::format!("e{}", 1));
        assert_eq!(rep.warnings, ["w"]);
        assert_eq!(rep.errors, ["e1"]);
    }
}
