//! CPUID and MTRR decoding and consistency checks for dom0's vCPUs.
//!
//! Everything here is pure: CPUID comes in through a `cpuid(leaf, subleaf)` closure and MTRR
//! state as plain MSR values, so dom0 reads the hardware (on each vCPU) and these modules
//! decide what it means. Nothing trusts its input: leaves beyond the advertised maximum are
//! never read, and hostile MSR values give problems, not panics.
//!
//! - [`cpuid`]: a [`CpuidReport`] per vCPU (vendor, signature, features, Xen's leaves) and
//!   [`cpuid::differences`] between two vCPUs.
//! - [`mtrr`]: [`MtrrState`] decoding (SDM vol. 3 §12.11), the effective memory type map,
//!   checks against the memory map and MMIO ranges, cross-vCPU comparison and the writes that
//!   make every vCPU match vCPU 0.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod cpuid;
pub mod mtrr;

pub use cpuid::{CpuidReport, XenCpuid};
pub use mtrr::{MtrrState, Problem, ProblemKind};
