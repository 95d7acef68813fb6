/* The PVH entry stub (see boot.rs): the Xen ELF note, the GDT, pvh_start32 in 32-bit mode,
 * the identity map of the low 4 GiB, long mode, rust_start. Included by `global_asm!` with the
 * named constants (written as the constant's name in braces) passed from Rust, so every
 * number has one definition. */
    .section .note.Xen, "a"
    .p2align 2
    .long 4                 /* namesz */
    .long 4                 /* descsz */
    .long {xen_elfnote_phys32_entry}
    .asciz "Xen"
    .long pvh_start32

    .section .data.gdt, "aw"
    .p2align 4
    .global GDT
GDT:
    .quad 0                       /* null */
    .quad {kernel_code64}         /* selector {kernel_cs}: 64-bit code, DPL0 */
    .quad {kernel_data}           /* selector {kernel_ds}: flat data */
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
    or eax, {table}
    mov dword ptr [BOOT_PML4], eax
    mov eax, offset BOOT_PD
    or eax, {table}
    xor ecx, ecx
2:  mov dword ptr [BOOT_PDPT + ecx * 8], eax
    add eax, 4096
    inc ecx
    cmp ecx, 4
    jb 2b
    xor ecx, ecx
3:  mov eax, ecx
    shl eax, 21
    or eax, {large_page}          /* present, writable, 2 MiB page */
    cmp ecx, {hole_first_2m}      /* 3 GiB and up: MMIO hole, uncached */
    jb 4f
    or eax, {uncached}            /* PWT | PCD */
4:  mov dword ptr [BOOT_PD + ecx * 8], eax
    inc ecx
    cmp ecx, 2048
    jb 3b

    mov eax, offset BOOT_PML4
    mov cr3, eax
    mov eax, cr4
    or eax, {cr4_pae}             /* PAE */
    mov cr4, eax
    /* EFER = LME. The PVH ABI enters with EFER = 0, so there is nothing to preserve, and
     * skipping the read saves a VM exit (about 1 ms on the emulated test bench). */
    mov ecx, {msr_efer}
    mov eax, {efer_lme}
    xor edx, edx
    wrmsr
    mov eax, cr0
    or eax, {cr0_pg_wp}           /* PG | WP */
    mov cr0, eax

    /* The PVH ABI leaves esp unspecified (Xen sets 0): take our own stack before the far
     * return pushes anything. */
    mov esp, offset BOOT_STACK_TOP
    lgdt [GDT_PTR]
    push {kernel_cs}
    mov eax, offset long_mode_entry
    push eax
    retf

    .code64
long_mode_entry:
    mov ax, {kernel_ds}
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

    .global BOOT_STACK_TOP
    .set BOOT_STACK_TOP, BOOT_STACK + {stack_guard} + {boot_stack_size}
