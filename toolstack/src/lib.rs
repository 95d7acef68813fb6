//! The toolstack in dom0: the boot bundle, the xenstore service, and (next) the domain
//! builder, console backend and domain lifecycle.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;
pub mod bundle;
pub mod xenstore;
