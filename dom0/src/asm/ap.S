/* An AP's first instructions: Xen started it in 64-bit mode (VCPUOP_initialise) with the
 * boot page tables, its stack and its per-CPU block in rdi (see smp.rs). */
    .section .text.ap, "ax"
    .code64
    .global ap_start64
ap_start64:
    /* Xen set flat segments but no GDTR/IDTR: load ours, then reload CS and the data segments. */
    lgdt [GDT_PTR64]
    push {kernel_cs}
    lea rax, [rip + 2f]
    push rax
    retfq
2:  mov ax, {kernel_ds}
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    and rsp, -16
    xor ebp, ebp
    call ap_main
3:  cli
    hlt
    jmp 3b
