//! The PVH entry: Xen (or QEMU's PVH loader) starts us in 32-bit protected mode, paging off,
//! `ebx` = guest-physical address of `hvm_start_info` (Xen `docs/misc/pvh.pandoc`). The stub
//! zeroes .bss, takes the entry TSC, builds an identity map of the low 4 GiB with 2 MiB pages
//! (0–3 GiB write-back, 3–4 GiB uncached: the PCI/MMIO hole), enters long mode and calls
//! `rust_start(start_info_paddr)`.
//!
//! No `XEN_ELFNOTE_SUPPORTED_FEATURES` note: from 4.20.4 Xen rejects a PVH hardware domain whose
//! note lacks `XENFEAT_dom0`, and without the note there is nothing to get wrong.

use core::arch::global_asm;

use x86_64::registers::control::{Cr0Flags, Cr4Flags};
use x86_64::registers::model_specific::EferFlags;
use x86_64::structures::gdt::Descriptor;
use x86_64::structures::paging::{PageTable, PageTableFlags};

use crate::cell::BootCell;

/// GDT selectors set up by the stub (the TSS descriptor is filled in by [`crate::trap`]).
pub const KERNEL_CS: u16 = 0x08;

global_asm!(
    include_str!("asm/entry.S"),
    xen_elfnote_phys32_entry = const XEN_ELFNOTE_PHYS32_ENTRY,
    kernel_cs = const KERNEL_CS,
    kernel_ds = const KERNEL_DS,
    kernel_code64 = const segment_bits(Descriptor::kernel_code_segment()),
    kernel_data = const segment_bits(Descriptor::kernel_data_segment()),
    max_cpus = const MAX_CPUS,
    table = const TABLE,
    large_page = const LARGE_PAGE,
    uncached = const UNCACHED,
    hole_first_2m = const HOLE_FIRST_2M,
    cr4_pae = const CR4_PAE,
    msr_efer = const MSR_EFER,
    efer_lme = const EFER_LME,
    cr0_pg_wp = const CR0_PG_WP,
    boot_stack_size = const BOOT_STACK_SIZE,
    stack_guard = const STACK_GUARD,
);

/// `XEN_ELFNOTE_PHYS32_ENTRY` (public/elfnote.h): the PVH entry point note.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// The flat data selector.
pub const KERNEL_DS: u16 = 0x10;

/// The GDT's code and data descriptors are the crate's (`Descriptor::kernel_code_segment`, a
/// 64-bit DPL0 code segment, and `kernel_data_segment`, flat data), written into the stub's
/// GDT as numbers because the 32-bit stub loads that GDT before any Rust runs.
const fn segment_bits(d: Descriptor) -> u64 {
    match d {
        Descriptor::UserSegment(bits) => bits,
        Descriptor::SystemSegment(..) => panic!("a code or data segment is a user segment"),
    }
}
/// Page-table bits the stub writes (`x86_64::structures::paging::PageTableFlags`).
const TABLE: u64 = PageTableFlags::PRESENT.bits() | PageTableFlags::WRITABLE.bits();
const LARGE_PAGE: u64 = TABLE | PageTableFlags::HUGE_PAGE.bits();
const UNCACHED: u64 = PageTableFlags::WRITE_THROUGH.bits() | PageTableFlags::NO_CACHE.bits();
/// The first 2 MiB page of the MMIO hole the stub maps uncached (3 GiB).
const HOLE_FIRST_2M: u32 = 1536;
const CR4_PAE: u64 = Cr4Flags::PHYSICAL_ADDRESS_EXTENSION.bits();
const MSR_EFER: u32 = 0xc000_0080;
const EFER_LME: u64 = EferFlags::LONG_MODE_ENABLE.bits();
const CR0_PG_WP: u64 = Cr0Flags::PAGING.bits() | Cr0Flags::WRITE_PROTECT.bits();

/// vCPUs dom0 can run: Xen gives a PVH dom0 at most `HVM_MAX_VCPUS` = 128.
pub const MAX_CPUS: usize = 128;

/// The TSS selector of `cpu`.
pub const fn tss_selector(cpu: usize) -> u16 {
    (0x18 + 16 * cpu) as u16
}

/// TSC value at the first instruction of the entry stub.
#[unsafe(no_mangle)]
pub static ENTRY_TSC: BootCell<u64> = BootCell::new(0);

/// `ebx` at entry, kept for the exception path.
#[unsafe(no_mangle)]
pub static START_INFO_PADDR: BootCell<u32> = BootCell::new(0);

// The boot page tables (the crate's `PageTable`: 512 entries, 4 KiB aligned); the stub fills
// them as plain memory before paging is on, `crate::mem` edits them through the crate's
// `PageTableEntry`.
#[unsafe(no_mangle)]
pub static BOOT_PML4: BootCell<PageTable> = BootCell::new(PageTable::new());
#[unsafe(no_mangle)]
pub static BOOT_PDPT: BootCell<PageTable> = BootCell::new(PageTable::new());
#[unsafe(no_mangle)]
pub static BOOT_PD: BootCell<[PageTable; 4]> = BootCell::new([const { PageTable::new() }; 4]);

/// The boot vCPU's stack: boot, then the DomU service loop and the domain builder (whose
/// decompressors keep tens of KiB of state in their frames).
pub const BOOT_STACK_SIZE: usize = 256 * 1024;
/// The page below the boot stack, left unmapped (`mem::guard_boot_stack`): an overflow faults
/// there (a reported double fault on its own IST stack) instead of overwriting the page tables
/// that sit below it in .bss.
pub const STACK_GUARD: usize = 4096;

#[repr(C, align(16))]
pub struct Stack<const N: usize>(pub [u8; N]);

/// A stack with its guard page first (the stack grows down towards it).
#[repr(C, align(4096))]
pub struct GuardedStack<const N: usize> {
    pub guard: [u8; STACK_GUARD],
    pub stack: [u8; N],
}

#[unsafe(no_mangle)]
pub static BOOT_STACK: BootCell<GuardedStack<BOOT_STACK_SIZE>> = BootCell::new(GuardedStack {
    guard: [0; STACK_GUARD],
    stack: [0; BOOT_STACK_SIZE],
});

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// `[start, end)` of the loaded image (text, data and bss) in guest-physical memory.
pub fn image_range() -> core::ops::Range<u64> {
    // Addresses of linker symbols; nothing is read through them.
    let s = &raw const __image_start as u64;
    let e = &raw const __image_end as u64;
    s..e
}

/// The TSC at entry.
pub fn entry_tsc() -> u64 {
    // SAFETY: written once by the entry stub before any Rust code ran; only read afterwards.
    unsafe { ENTRY_TSC.get().read() }
}
