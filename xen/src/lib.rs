//! The Xen public ABI as Rust types, and safe wrappers over a small [`Hypercall`] trait.
//!
//! Everything here is plain safe code: the only way to reach the hypervisor is a
//! [`Hypercall`] implementation (dom0's `vmcall`/`vmmcall`, or a fake in host tests), and the
//! only way to read guest memory is a [`start_info::PhysRead`] implementation.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod cpuid;
pub mod domctl;
pub mod errno;
pub mod events;
pub mod gnttab;
pub mod hypercall;
pub mod le;
pub mod memmap;
pub mod ops;
pub mod platform;
pub mod ring;
pub mod start_info;
pub mod vcpu;

#[cfg(any(test, feature = "fake"))]
pub mod fake;

pub use errno::XenError;
pub use hypercall::{Arg, Call, Hypercall};
