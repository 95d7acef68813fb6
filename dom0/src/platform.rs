//! dom0's side of `hwdom::Platform`: the identity map, uncached MMIO reads, never-freed heap
//! blocks for tables dom0 writes, the TSC clock, and `SCHEDOP_yield` while waiting.

use alloc::format;
use alloc::string::String;

use hwdom::platform::EcamWindow;
use xen::start_info::PhysRead;

use crate::hypercall::Xen;
use crate::mem::{self, IdentityMem};
use crate::pcicfg::Dom0Config;
use crate::time;

/// dom0 as the platform `hwdom` runs on.
#[derive(Debug, Clone, Copy)]
pub struct Dom0Platform {
    pub xen: Option<Xen>,
}

impl hwdom::Platform for Dom0Platform {
    type Config = Dom0Config;

    fn config_space(&self, windows: &[EcamWindow]) -> Dom0Config {
        Dom0Config::new(windows.to_vec())
    }

    fn map_uncached(&self, start: u64, end: u64) -> Result<(), String> {
        // Below MAPPED_LIMIT the boot stub's map covers it, with the PCI hole uncached
        // (`mem::refine_cacheability`).
        if end <= mem::MAPPED_LIMIT {
            return Ok(());
        }
        mem::map_identity(start, end, mem::Cache::Uncached).map_err(|e| format!("{e:?}"))
    }

    fn read_mmio(&self, paddr: u64, width: u8) -> Option<u32> {
        let w = u64::from(width);
        if !matches!(width, 2 | 4) || !paddr.is_multiple_of(w) {
            return None;
        }
        if !mem::is_mapped(paddr, w) {
            mem::map_identity(paddr, paddr + w, mem::Cache::Uncached).ok()?;
        }
        // `hwdom` only asks for registers inside a memory BAR that enumeration sized and found
        // assigned; the page is mapped uncached (the PCI hole, or just mapped above).
        Some(if width == 2 {
            // SAFETY: mapped device memory, a naturally aligned 2-byte read.
            u32::from(unsafe { core::ptr::read_volatile(paddr as *const u16) })
        } else {
            // SAFETY: mapped device memory, a naturally aligned 4-byte read.
            unsafe { core::ptr::read_volatile(paddr as *const u32) }
        })
    }

    fn place(&self, bytes: &[u8]) -> Result<u64, String> {
        // Never freed: the tables live as long as dom0. Heap memory is identity-mapped RAM, so
        // the pointer is the physical address.
        let block: &'static mut [u8] = alloc::boxed::Box::leak(
            alloc::vec![0u8; bytes.len().next_multiple_of(16).max(16) + 15].into_boxed_slice(),
        );
        let off = (block.as_ptr() as usize).next_multiple_of(16) - block.as_ptr() as usize;
        block[off..off + bytes.len()].copy_from_slice(bytes);
        Ok(block[off..].as_ptr() as u64)
    }

    fn phys(&self) -> &dyn PhysRead {
        &IdentityMem
    }

    fn module_bytes(&self, paddr: u64, len: u64) -> Option<&[u8]> {
        // `StartInfo::load` checked that a module is RAM overlapping neither the image nor
        // start_info, and the heap was built from free RAM excluding it (`taken_ranges`).
        if paddr == 0 || !mem::is_mapped(paddr, len) {
            return None;
        }
        // SAFETY: mapped RAM that nothing writes and that lives as long as dom0: a sound shared
        // slice (see above).
        Some(unsafe { core::slice::from_raw_parts(paddr as *const u8, usize::try_from(len).ok()?) })
    }

    fn now_ns(&self) -> u64 {
        time::since_entry_ns()
    }

    fn relax(&self) {
        if let Some(x) = &self.xen {
            let _ = xen::ops::sched_yield(x);
        }
    }
}
