//! The toolstack in dom0: the boot bundle, the PVH domain builder, the xenstore service, the
//! console backend and the domain lifecycle logic.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;
pub mod builder;
pub mod bundle;
pub mod console;
pub mod domain;
pub mod kernel;
pub mod service;
pub mod vif;
pub mod xenstore;
