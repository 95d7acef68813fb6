//! Xen error numbers (`xen/include/public/errno.h`), as returned negated by hypercalls.

use core::fmt;

/// A hypercall failure: the positive Xen errno.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct XenError(pub i32);

impl XenError {
    pub const EPERM: XenError = XenError(1);
    pub const ENOENT: XenError = XenError(2);
    pub const ESRCH: XenError = XenError(3);
    pub const EIO: XenError = XenError(5);
    pub const E2BIG: XenError = XenError(7);
    pub const EAGAIN: XenError = XenError(11);
    pub const ENOMEM: XenError = XenError(12);
    pub const EACCES: XenError = XenError(13);
    pub const EFAULT: XenError = XenError(14);
    pub const EBUSY: XenError = XenError(16);
    pub const EEXIST: XenError = XenError(17);
    pub const ENODEV: XenError = XenError(19);
    pub const EINVAL: XenError = XenError(22);
    pub const ENOSPC: XenError = XenError(28);
    pub const ENOSYS: XenError = XenError(38);
    pub const EOPNOTSUPP: XenError = XenError(95);

    /// Turn a raw hypercall result into `Ok(value)` or `Err(errno)`.
    pub fn check(rc: i64) -> Result<u64, XenError> {
        if rc < 0 {
            Err(XenError(rc.unsigned_abs().min(i32::MAX as u64) as i32))
        } else {
            Ok(rc as u64)
        }
    }

    /// The symbolic name, for logs.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            5 => "EIO",
            7 => "E2BIG",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            19 => "ENODEV",
            22 => "EINVAL",
            28 => "ENOSPC",
            38 => "ENOSYS",
            95 => "EOPNOTSUPP",
            _ => "E?",
        }
    }
}

impl fmt::Debug for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-{} ({})", self.name(), self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_maps_negative_to_errno() {
        assert_eq!(XenError::check(0), Ok(0));
        assert_eq!(XenError::check(7), Ok(7));
        assert_eq!(XenError::check(-38), Err(XenError::ENOSYS));
        assert_eq!(XenError::ENOSYS.to_string(), "-ENOSYS (38)");
        assert_eq!(XenError::check(i64::MIN), Err(XenError(i32::MAX)));
    }
}
