//! Reading guest-physical memory through the identity map, and refining the boot page tables
//! once the memory map is known.

use xen::memmap::{MemType, MemoryMap};
use xen::start_info::{PhysRead, PhysReadError};

/// The boot stub identity-maps the low 4 GiB.
pub const MAPPED_LIMIT: u64 = 1 << 32;

/// Reads guest-physical memory below [`MAPPED_LIMIT`]. Callers (the start_info validator) check
/// addresses against the memory map before reading anything they did not get from Xen directly.
#[derive(Debug)]
pub struct IdentityMem;

impl PhysRead for IdentityMem {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
        let err = PhysReadError {
            paddr,
            len: buf.len(),
        };
        let end = paddr.checked_add(buf.len() as u64).ok_or(err)?;
        if end > MAPPED_LIMIT || paddr == 0 {
            return Err(err);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            // SAFETY: [paddr, end) lies inside the identity map the boot stub built (checked
            // above), so the address is mapped; a volatile byte read cannot be torn or elided.
            *b = unsafe { core::ptr::read_volatile((paddr + i as u64) as *const u8) };
        }
        Ok(())
    }
}

/// Set the cache attribute of every 2 MiB page of the low 4 GiB: write-back if it holds any
/// RAM/ACPI/NVS, uncached otherwise (MMIO, MMCONFIG, holes). Returns (write-back, uncached)
/// page counts.
pub fn refine_cacheability(map: &MemoryMap) -> (u32, u32) {
    const PWT_PCD: u64 = 0x18;
    let (mut wb, mut uc) = (0, 0);
    let pd = &raw mut crate::boot::BOOT_PD;
    for i in 0..2048u64 {
        let start = i << 21;
        let cached = map.regions().iter().any(|r| {
            matches!(r.kind, MemType::Ram | MemType::Acpi | MemType::Nvs)
                && r.addr < start + (1 << 21)
                && r.addr.saturating_add(r.size) > start
        });
        let (t, e) = ((i / 512) as usize, (i % 512) as usize);
        // SAFETY: single-threaded boot; the boot page directory is live and only this function
        // changes it. Only the cache bits of an identity mapping change; the address stays.
        unsafe {
            let entry = &mut (*pd)[t].0[e];
            if cached {
                *entry &= !PWT_PCD;
                wb += 1;
            } else {
                *entry |= PWT_PCD;
                uc += 1;
            }
        }
    }
    // SAFETY: reloading CR3 with its current value flushes the TLB so the new attributes apply.
    unsafe {
        core::arch::asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags))
    };
    (wb, uc)
}
