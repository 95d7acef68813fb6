//! The PVH entry, as in dom0 (`dom0/src/boot.rs`), cut down to what a test guest needs: dom0's
//! domain builder starts the boot vCPU in 32-bit protected mode, paging off, `ebx` =
//! guest-physical address of `hvm_start_info`. The stub zeroes .bss, identity-maps the low
//! 4 GiB with 2 MiB write-back pages (the xenstore and console rings live just below 4 GiB, at
//! the builder's special PFNs), enters long mode and calls `rust_start(start_info_paddr)`.
//! Interrupts stay off for the whole life of the guest: it polls, it never takes an upcall.

use core::arch::global_asm;

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
GDT:
    .quad 0                       /* null */
    .quad 0x00af9a000000ffff      /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff      /* 0x10: flat data */
GDT_END:
    .p2align 2
    .word 0
GDT_PTR:
    .word GDT_END - GDT - 1
    .long GDT

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx                  /* start_info */

    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd

    /* PML4[0] -> PDPT; PDPT[0..4] -> PD[0..4]; PD: 2048 x 2 MiB write-back pages = 4 GiB. */
    mov eax, offset GUEST_PDPT
    or eax, 3
    mov dword ptr [GUEST_PML4], eax
    mov eax, offset GUEST_PD
    or eax, 3
    xor ecx, ecx
2:  mov dword ptr [GUEST_PDPT + ecx * 8], eax
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jb 2b
    xor ecx, ecx
3:  mov eax, ecx
    shl eax, 21
    or eax, 0x83                  /* present, writable, 2 MiB page */
    mov dword ptr [GUEST_PD + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jb 3b

    mov eax, offset GUEST_PML4
    mov cr3, eax
    mov eax, cr4
    or eax, 0x20                  /* PAE */
    mov cr4, eax
    mov ecx, 0xc0000080           /* EFER.LME */
    mov eax, 0x100
    xor edx, edx
    wrmsr
    mov eax, cr0
    or eax, 0x80010000            /* PG | WP */
    mov cr0, eax

    mov esp, offset GUEST_STACK_TOP
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
    mov rsp, offset GUEST_STACK_TOP
    xor ebp, ebp
    mov edi, esi
    call rust_start
4:  cli
    hlt
    jmp 4b
"#
);

#[repr(C, align(4096))]
pub struct PageTable(pub [u64; 512]);

#[unsafe(no_mangle)]
pub static mut GUEST_PML4: PageTable = PageTable([0; 512]);
#[unsafe(no_mangle)]
pub static mut GUEST_PDPT: PageTable = PageTable([0; 512]);
#[unsafe(no_mangle)]
pub static mut GUEST_PD: [PageTable; 4] = [const { PageTable([0; 512]) }; 4];

const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
pub struct Stack([u8; STACK_SIZE]);

#[unsafe(no_mangle)]
pub static mut GUEST_STACK: Stack = Stack([0; STACK_SIZE]);

global_asm!(
    r#"
    .global GUEST_STACK_TOP
    .set GUEST_STACK_TOP, GUEST_STACK + {size}
"#,
    size = const STACK_SIZE,
);
