//! The PVH entry: Xen (or QEMU's PVH loader) starts us in 32-bit protected mode, paging off,
//! `ebx` = guest-physical address of `hvm_start_info` (Xen `docs/misc/pvh.pandoc`). The stub
//! zeroes .bss, takes the entry TSC, builds an identity map of the low 4 GiB with 2 MiB pages
//! (0–3 GiB write-back, 3–4 GiB uncached: the PCI/MMIO hole), enters long mode and calls
//! `rust_start(start_info_paddr)`.
//!
//! No `XEN_ELFNOTE_SUPPORTED_FEATURES` note: from 4.20.4 Xen rejects a PVH hardware domain whose
//! note lacks `XENFEAT_dom0`, and without the note there is nothing to get wrong.

use crate::cell::BootCell;
use core::arch::global_asm;

/// GDT selectors set up by the stub (the TSS descriptor is filled in by [`crate::trap`]).
pub const KERNEL_CS: u16 = 0x08;

global_asm!(
    r#"
    .section .note.Xen, "a"
    .p2align 2
    .long 4                 /* namesz */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_start32

    .section .data.gdt, "aw"
    .p2align 4
    .global GDT
GDT:
    .quad 0                       /* null */
    .quad 0x00af9a000000ffff      /* 0x08: 64-bit code, DPL0 */
    .quad 0x00cf92000000ffff      /* 0x10: flat data */
    .fill {max_cpus} * 2, 8, 0    /* 0x18 + 16 * cpu: each vCPU's 64-bit TSS, filled at run time */
GDT_END:
    .p2align 2
    .word 0
GDT_PTR:                          /* for lgdt in 32-bit mode: 32-bit base */
    .word GDT_END - GDT - 1
    .long GDT
    .p2align 3
    .word 0, 0, 0
    .global GDT_PTR64
GDT_PTR64:                        /* for lgdt in 64-bit mode (APs): 64-bit base */
    .word GDT_END - GDT - 1
    .quad GDT

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx                  /* start_info, kept across the stub */
    rdtsc
    mov ebp, eax
    mov ebx, edx

    /* Zero .bss (page tables, stacks, heap seed). Loaders zero it too; do not rely on it.
     * Dwords, not bytes: under emulation each rep iteration costs the same, whatever its size
     * (.bss is 4 KiB-aligned and a multiple of 4 KiB, see link.ld). */
    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd
    mov dword ptr [ENTRY_TSC], ebp
    mov dword ptr [ENTRY_TSC + 4], ebx
    mov dword ptr [START_INFO_PADDR], esi

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD[0..4]; PD: 2048 x 2 MiB pages = 4 GiB. */
    mov eax, offset BOOT_PDPT
    or eax, 3
    mov dword ptr [BOOT_PML4], eax
    mov eax, offset BOOT_PD
    or eax, 3
    xor ecx, ecx
2:  mov dword ptr [BOOT_PDPT + ecx * 8], eax
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jb 2b
    xor ecx, ecx
3:  mov eax, ecx
    shl eax, 21
    or eax, 0x83                  /* present, writable, 2 MiB page */
    cmp ecx, 1536                 /* 3 GiB and up: MMIO hole, uncached */
    jb 4f
    or eax, 0x18                  /* PWT | PCD */
4:  mov dword ptr [BOOT_PD + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jb 3b

    mov eax, offset BOOT_PML4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20                  /* PAE */
    mov cr4, eax
    /* EFER = LME. The PVH ABI enters with EFER = 0, so there is nothing to preserve, and
     * skipping the read saves a VM exit (about 1 ms on the emulated test bench). */
    mov ecx, 0xc0000080
    mov eax, 0x100
    xor edx, edx
    wrmsr
    mov eax, cr0
    or eax, 0x80010000            /* PG | WP */
    mov cr0, eax

    /* The PVH ABI leaves esp unspecified (Xen sets 0): take our own stack before the far
     * return pushes anything. */
    mov esp, offset BOOT_STACK_TOP
    lgdt [GDT_PTR]
    push 0x08
    mov eax, offset long_mode_entry
    push eax
    retf

    .code64
long_mode_entry:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    mov rsp, offset BOOT_STACK_TOP
    xor ebp, ebp
    mov edi, esi
    call rust_start
5:  cli
    hlt
    jmp 5b
"#,
    max_cpus = const MAX_CPUS,
);

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

#[repr(C, align(4096))]
pub struct PageTable(pub [u64; 512]);

#[unsafe(no_mangle)]
pub static BOOT_PML4: BootCell<PageTable> = BootCell::new(PageTable([0; 512]));
#[unsafe(no_mangle)]
pub static BOOT_PDPT: BootCell<PageTable> = BootCell::new(PageTable([0; 512]));
#[unsafe(no_mangle)]
pub static BOOT_PD: BootCell<[PageTable; 4]> = BootCell::new([const { PageTable([0; 512]) }; 4]);

pub const BOOT_STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
pub struct Stack<const N: usize>(pub [u8; N]);

#[unsafe(no_mangle)]
pub static BOOT_STACK: BootCell<Stack<BOOT_STACK_SIZE>> =
    BootCell::new(Stack([0; BOOT_STACK_SIZE]));

global_asm!(
    r#"
    .global BOOT_STACK_TOP
    .set BOOT_STACK_TOP, BOOT_STACK + {size}
"#,
    size = const BOOT_STACK_SIZE,
);

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
