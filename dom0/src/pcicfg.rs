//! PCI configuration space access for the `pci` crate: ECAM through the MCFG windows, and the
//! legacy 0xCF8/0xCFC ports for segment 0's first 256 bytes where no window covers a bus.
//!
//! Under Xen both are trapped and emulated by vPCI (ECAM is never mapped into dom0; CF8 takes
//! 4-byte accesses only), so every access is a VM exit, and what dom0 sees is what Xen lets it
//! see. Without Xen they reach the chipset.

use alloc::vec::Vec;

use hwdom::platform::EcamWindow;
use pci::{ConfigSpace, Sbdf};

/// Config access through ECAM windows, falling back to CF8/CFC for segment 0.
#[derive(Debug)]
pub struct Dom0Config {
    windows: Vec<EcamWindow>,
    cf8: spin::Mutex<()>,
}

const CF8: u16 = 0xcf8;
const CFC: u16 = 0xcfc;

impl Dom0Config {
    /// `windows` must be identity-mapped and uncached (below 4 GiB the boot map covers them
    /// and the MTRR/PAT check marks the PCI hole; above, the caller maps them first).
    pub fn new(windows: Vec<EcamWindow>) -> Self {
        Dom0Config {
            windows,
            cf8: spin::Mutex::new(()),
        }
    }

    fn ecam_addr(&self, sbdf: Sbdf, offset: u16) -> Option<u64> {
        let w = self.windows.iter().find(|w| {
            w.segment == sbdf.segment() && (w.start_bus..=w.end_bus).contains(&sbdf.bus())
        })?;
        if offset >= 4096 {
            return None;
        }
        let rel = u64::from(sbdf.bus() - w.start_bus) << 20
            | u64::from(sbdf.device()) << 15
            | u64::from(sbdf.function()) << 12
            | u64::from(offset & !3);
        Some(w.base + rel)
    }

    fn cf8_address(sbdf: Sbdf, offset: u16) -> Option<u32> {
        (sbdf.segment() == 0 && offset < 256).then(|| {
            0x8000_0000
                | u32::from(sbdf.bus()) << 16
                | u32::from(sbdf.device()) << 11
                | u32::from(sbdf.function()) << 8
                | u32::from(offset & 0xfc)
        })
    }
}

impl ConfigSpace for Dom0Config {
    fn read32(&self, sbdf: Sbdf, offset: u16) -> u32 {
        crate::watchdog::config_access(false, sbdf, offset, 0);
        if let Some(a) = self.ecam_addr(sbdf, offset) {
            // SAFETY: `a` is inside an MCFG window the caller mapped (see `new`), 4-byte aligned;
            // a config read has no memory effects on dom0.
            return unsafe { core::ptr::read_volatile(a as *const u32) };
        }
        match Self::cf8_address(sbdf, offset) {
            Some(addr) => {
                let _g = self.cf8.lock();
                // SAFETY: the CF8/CFC pair is the PCI configuration mechanism #1, serialised by
                // the lock; under Xen both ports are trapped by vPCI.
                unsafe {
                    crate::arch::outl(CF8, addr);
                    crate::arch::inl(CFC)
                }
            }
            None => u32::MAX,
        }
    }

    fn write32(&self, sbdf: Sbdf, offset: u16, value: u32) {
        crate::watchdog::config_access(true, sbdf, offset, value);
        if let Some(a) = self.ecam_addr(sbdf, offset) {
            // SAFETY: as in `read32`; the `pci` crate only writes registers it means to (BAR
            // sizing with decoding off, command, bus numbers), which is dom0's job.
            unsafe { core::ptr::write_volatile(a as *mut u32, value) };
            return;
        }
        if let Some(addr) = Self::cf8_address(sbdf, offset) {
            let _g = self.cf8.lock();
            // SAFETY: as in `read32`.
            unsafe {
                crate::arch::outl(CF8, addr);
                crate::arch::outl(CFC, value);
            }
        }
    }
}
