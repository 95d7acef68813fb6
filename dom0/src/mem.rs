//! Reading guest-physical memory through the identity map, refining the boot page tables once
//! the memory map is known, and extending the identity map above 4 GiB.

use alloc::vec::Vec;

use xen::memmap::{MemType, MemoryMap};
use xen::start_info::{PhysRead, PhysReadError};

use x86_64::PhysAddr;
use x86_64::structures::paging::{PageTable, PageTableFlags as Flags};

/// A present, writable entry pointing at the next table.
const TABLE: Flags = Flags::PRESENT.union(Flags::WRITABLE);
/// A present, writable large page (2 MiB in a page directory, 1 GiB in a PDPT).
const LARGE_PAGE: Flags = TABLE.union(Flags::HUGE_PAGE);
/// PWT | PCD: uncached (with the default PAT).
const UNCACHED: Flags = Flags::WRITE_THROUGH.union(Flags::NO_CACHE);

/// The boot stub identity-maps the low 4 GiB.
pub const MAPPED_LIMIT: u64 = 1 << 32;

/// The top of the lower canonical half (128 TiB, 4-level paging); dom0 maps nothing beyond
/// it.
pub const MAP_CEILING: u64 = 1 << 47;

/// Ranges identity-mapped above 4 GiB, in address order (only [`map_identity`] adds to it).
static HIGH: spin::Mutex<Vec<(u64, u64)>> = spin::Mutex::new(Vec::new());

/// True if every byte of `[addr, addr+len)` is identity-mapped.
pub fn is_mapped(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    if end <= MAPPED_LIMIT {
        return true;
    }
    // Walk the mapped ranges from `addr` upwards; they are sorted and 2 MiB-granular.
    let mut at = addr;
    if at < MAPPED_LIMIT {
        at = MAPPED_LIMIT;
    }
    for &(s, e) in HIGH.lock().iter() {
        if s <= at && at < e {
            at = e;
        }
        if at >= end {
            return true;
        }
    }
    at >= end
}

/// How an identity mapping caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    WriteBack,
    /// For MMIO above 4 GiB (64-bit BARs); first user: the PCI milestone.
    #[allow(dead_code)]
    Uncached,
}

/// Why a range could not be mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// Beyond [`MAP_CEILING`].
    TooHigh { end: u64 },
    /// No memory for a page directory.
    NoMemory,
}

fn one_gib_pages() -> bool {
    crate::arch::cpuid(0x8000_0000, 0).eax >= 0x8000_0001
        && crate::arch::cpuid(0x8000_0001, 0).edx & (1 << 26) != 0
}

/// Identity-map `[start, end)` above 4 GiB (rounded out to 2 MiB), with 1 GiB pages where the
/// CPU has them (CPUID 0x8000_0001 EDX bit 26) and the range covers whole GiBs, else 2 MiB
/// pages in page directories taken from the heap. Ranges below 4 GiB are already mapped.
pub fn map_identity(start: u64, end: u64, cache: Cache) -> Result<(), MapError> {
    const MIB2: u64 = 1 << 21;
    const GIB: u64 = 1 << 30;
    if end > MAP_CEILING {
        return Err(MapError::TooHigh { end });
    }
    let start = (start.max(MAPPED_LIMIT)) & !(MIB2 - 1);
    let end = end.div_ceil(MIB2) * MIB2;
    if start >= end {
        return Ok(());
    }
    let attr = match cache {
        Cache::WriteBack => Flags::empty(),
        Cache::Uncached => UNCACHED,
    };
    let big = one_gib_pages();
    let pml4 = crate::boot::BOOT_PML4.get();
    let mut at = start;
    while at < end {
        let gib_abs = at / GIB;
        let gib = (gib_abs % 512) as usize;
        // The PML4 and PDPTs are the live tables: BOOT_PDPT under PML4 entry 0 (the boot
        // stub's), heap PDPTs under the others (512 GiB each, for BARs firmware puts high:
        // OVMF's 64-bit window is at 896 GiB on q35).
        // SAFETY: boot CPU only, no existing mapping changes, each entry maps to itself.
        unsafe {
            let l4 = (at >> 39) as usize;
            let pdpt = if l4 == 0 {
                crate::boot::BOOT_PDPT.get()
            } else {
                let e4 = &mut (&mut *pml4)[l4];
                if !e4.flags().contains(Flags::PRESENT) {
                    let layout = core::alloc::Layout::new::<PageTable>();
                    let t = alloc::alloc::alloc_zeroed(layout);
                    if t.is_null() {
                        return Err(MapError::NoMemory);
                    }
                    e4.set_addr(PhysAddr::new(t as u64), TABLE);
                }
                e4.addr().as_u64() as *mut PageTable
            };
            let e = &mut (&mut *pdpt)[gib];
            let present = e.flags().contains(Flags::PRESENT);
            if !present && big && at.is_multiple_of(GIB) && end - at >= GIB {
                e.set_addr(PhysAddr::new(at), LARGE_PAGE | attr); // a 1 GiB page
                at += GIB;
                continue;
            }
            if present && e.flags().contains(Flags::HUGE_PAGE) {
                at = (gib_abs + 1) * GIB; // already a 1 GiB page
                continue;
            }
            if !present {
                // A zeroed, page-aligned page directory from the heap, never freed.
                let layout = core::alloc::Layout::new::<PageTable>();
                let pd = alloc::alloc::alloc_zeroed(layout);
                if pd.is_null() {
                    return Err(MapError::NoMemory);
                }
                e.set_addr(PhysAddr::new(pd as u64), TABLE);
            }
            let pd = e.addr().as_u64() as *mut PageTable;
            let stop = end.min((gib_abs + 1) * GIB);
            while at < stop {
                (&mut *pd)[((at / MIB2) % 512) as usize]
                    .set_addr(PhysAddr::new(at), LARGE_PAGE | attr);
                at += MIB2;
            }
        }
    }
    let mut h = HIGH.lock();
    h.push((start, end));
    lean::sort(&mut h);
    // Merge neighbours so `is_mapped` can walk them in one pass.
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(h.len());
    for &(s, e) in h.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *h = merged;
    Ok(())
}

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
        if paddr == 0 || !is_mapped(paddr, buf.len() as u64) {
            return Err(err);
        }
        // Byte reads up to 8-byte alignment, then whole aligned words, then the tail: one load
        // per 8 bytes (ACPI tables and the BIOS area scan are read this way; under emulation
        // every load counts).
        let mut i = 0usize;
        let len = buf.len();
        while i < len && !(paddr + i as u64).is_multiple_of(8) {
            // SAFETY: [paddr, paddr+len) is identity-mapped (checked above: the boot stub's
            // 4 GiB or a `map_identity` range); a volatile load cannot be torn or elided.
            buf[i] = unsafe { core::ptr::read_volatile((paddr + i as u64) as *const u8) };
            i += 1;
        }
        while i + 8 <= len {
            // SAFETY: as above; the address is 8-byte aligned and all 8 bytes are in range.
            let w = unsafe { core::ptr::read_volatile((paddr + i as u64) as *const u64) };
            buf[i..i + 8].copy_from_slice(&w.to_le_bytes());
            i += 8;
        }
        while i < len {
            // SAFETY: as above.
            buf[i] = unsafe { core::ptr::read_volatile((paddr + i as u64) as *const u8) };
            i += 1;
        }
        Ok(())
    }
}

/// The 4 KiB page table that replaces the 2 MiB page holding the boot stack's guard page.
static GUARD_PT: crate::cell::BootCell<PageTable> = crate::cell::BootCell::new(PageTable::new());

/// Unmap the guard page below the boot stack (`boot::STACK_GUARD`): the 2 MiB page that holds
/// it is split into 4 KiB pages with the same (write-back) attributes, all present but the
/// guard. Call once, after [`refine_cacheability`], before the APs start. Returns the guard's
/// address.
pub fn guard_boot_stack() -> Result<u64, &'static str> {
    let guard = crate::boot::BOOT_STACK.get() as u64;
    if !guard.is_multiple_of(4096) || guard >= MAPPED_LIMIT {
        return Err("the boot stack's guard page is not a page below 4 GiB");
    }
    let i = guard >> 21;
    let (t, e) = ((i / 512) as usize, (i % 512) as usize);
    let pd = crate::boot::BOOT_PD.get();
    let pt = GUARD_PT.get();
    // Single-threaded boot (the APs are not up); the boot page directory is live and only
    // `mem` edits it. GUARD_PT is a static table used by nothing else; it gets the same
    // identity mapping the 2 MiB entry gives, minus the guard page, before the directory entry
    // points at it, and the TLB is flushed after.
    // SAFETY: no other CPU or code touches these tables now (above).
    unsafe {
        let entry = &mut (&mut *pd)[t][e];
        let flags = entry.flags();
        if !flags.contains(Flags::PRESENT | Flags::HUGE_PAGE) {
            return Err("the page holding the boot stack's guard is not a 2 MiB page");
        }
        let small = (flags - Flags::HUGE_PAGE) & (TABLE | UNCACHED);
        let base = i << 21;
        for (k, pte) in (&mut *pt).iter_mut().enumerate() {
            let addr = base + ((k as u64) << 12);
            if addr == guard {
                pte.set_unused();
            } else {
                pte.set_addr(PhysAddr::new(addr), small);
            }
        }
        entry.set_addr(PhysAddr::new(pt as u64), TABLE);
    }
    x86_64::instructions::tlb::flush_all();
    Ok(guard)
}

/// Set the cache attribute of every 2 MiB page of the low 4 GiB: write-back if it holds any
/// RAM/ACPI/NVS, uncached otherwise (MMIO, MMCONFIG, holes). Returns (write-back, uncached)
/// page counts.
pub fn refine_cacheability(map: &MemoryMap) -> (u32, u32) {
    let (mut wb, mut uc) = (0, 0);
    let pd = crate::boot::BOOT_PD.get();
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
            let entry = &mut (&mut *pd)[t][e];
            let flags = entry.flags();
            if cached {
                entry.set_flags(flags - UNCACHED);
                wb += 1;
            } else {
                entry.set_flags(flags | UNCACHED);
                uc += 1;
            }
        }
    }
    // Reloading CR3 with its current value flushes the TLB so the new attributes apply.
    x86_64::instructions::tlb::flush_all();
    (wb, uc)
}
