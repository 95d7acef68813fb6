//! What the orchestration needs from dom0's platform layer, and nothing more.
//!
//! dom0 implements [`Platform`] over its identity map, its MMIO accessors and the TSC; host tests
//! implement it over a `Vec` of "physical memory" and a simulated clock.

use alloc::string::String;

use xen::start_info::PhysRead;

/// One ECAM window: segment, bus range and base (from the MCFG).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcamWindow {
    pub segment: u16,
    pub start_bus: u8,
    pub end_bus: u8,
    pub base: u64,
}

/// dom0's platform, as the hardware-domain logic sees it.
pub trait Platform {
    /// Config-space access through ECAM windows (and CF8/CFC for segment 0 elsewhere).
    type Config: pci::ConfigSpace;

    /// A config-space accessor for these windows (already mapped by [`Platform::map_uncached`]).
    fn config_space(&self, windows: &[EcamWindow]) -> Self::Config;

    /// Make `[start, end)` readable and writable, uncached (MMIO above the boot map).
    fn map_uncached(&self, start: u64, end: u64) -> Result<(), String>;

    /// Read a 2- or 4-byte device register at physical address `paddr` (mapped uncached first
    /// when it is not yet); `None` if it cannot be mapped.
    fn read_mmio(&self, paddr: u64, width: u8) -> Option<u32>;

    /// Copy `bytes` into memory dom0 keeps for as long as it runs (16-byte aligned); its
    /// physical address.
    fn place(&self, bytes: &[u8]) -> Result<u64, String>;

    /// Physical memory, for tables and modules (checked against the memory map by the caller).
    fn phys(&self) -> &dyn PhysRead;

    /// A boot module's bytes in place (memory nothing writes while dom0 runs), if dom0 can
    /// reach all of `[paddr, paddr + len)`.
    fn module_bytes(&self, paddr: u64, len: u64) -> Option<&[u8]>;

    /// Monotonic nanoseconds since dom0's entry.
    fn now_ns(&self) -> u64;

    /// Let others run while waiting (`SCHEDOP_yield` under Xen).
    fn relax(&self);
}
