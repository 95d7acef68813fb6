//! dom0's work as Xen's hardware domain, free of the platform.
//!
//! `dom0` boots, owns the page tables, the consoles, the vCPUs and every `unsafe` access; what it
//! *decides* lives here, written against traits so that host tests run it on `xen::fake::FakeXen`
//! and `pci::sim`:
//!
//! - [`options`]: dom0's own command-line options (`pci-bars=`, `maxcpus=`, `report=`, ...).
//! - [`finding`]: the one way to log a finding and record it in the report.
//! - [`platform`]: the small trait dom0 implements for this crate (map a range uncached, read a
//!   device register, place bytes in memory dom0 keeps, read physical memory, time).
//! - [`pci_survey`]: ECAM windows, enumeration, BAR checks, `PHYSDEVOP_pci_device_add` in
//!   Linux's order, SR-IOV VFs, bus renumbering, BAR moves, device checks.
//! - [`cpu_report`]: vCPU 0's CPUID, every vCPU's status, the MTRR check across vCPUs.
//! - [`acpi`]: the ACPI walk, the container MADT choice and check, and the rewrite.
//! - [`modules`]: what each boot module is, and the bundle's DomUs.
//! - [`domu`]: what the report says about a DomU that stopped.
//!
//! Module order (no cycles): `options`, `finding`, `platform` → `acpi`, `modules`,
//! `cpu_report`, `pci_survey`.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

pub mod acpi;
pub mod cpu_report;
pub mod domu;
pub mod finding;
pub mod firmware;
pub mod host_bridges;
pub mod modules;
pub mod options;
pub mod pci_survey;
pub mod platform;
pub mod uplink;

pub use platform::Platform;

#[cfg(test)]
mod testkit;
