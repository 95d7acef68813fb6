//! Thin wrappers over x86 instructions. Each one is a single instruction whose only effect is
//! the documented one; callers decide whether that effect is appropriate.

use core::arch::asm;

use xen::cpuid::CpuidResult;

/// `cpuid` (safe in core since 1.87-ish; wrapped for the `CpuidResult` type).
pub fn cpuid(leaf: u32, sub: u32) -> CpuidResult {
    let r = core::arch::x86_64::__cpuid_count(leaf, sub);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter (CR4.TSD is clear: we never set it).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Write a byte to an I/O port.
///
/// # Safety
/// The port must be one whose write has no effect on memory safety (console, debug exit, PIT).
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

/// Write a dword to an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

/// Read a byte from an I/O port.
///
/// # Safety
/// The port must be one whose read has no effect on memory safety.
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Read a dword from an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: the caller vouches for the port.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// # Safety
/// Writing an MSR can change paging, interrupts or hypervisor state; the caller must know the MSR.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the caller vouches for the MSR and value.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// # Safety
/// Reading an MSR that does not exist raises #GP; the caller must know the MSR is there.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller vouches for the MSR.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    };
    u64::from(lo) | (u64::from(hi) << 32)
}

/// IA32_GS_BASE: dom0 keeps each vCPU's per-CPU block address there.
pub const MSR_GS_BASE: u32 = 0xc000_0101;

/// Read the quadword at `gs:[off]`.
///
/// # Safety
/// GS base must point at a live block at least `off + 8` bytes long.
pub unsafe fn gs_read(off: usize) -> u64 {
    let v: u64;
    // SAFETY: the caller vouches for GS base and the offset.
    unsafe {
        asm!("mov {}, gs:[{}]", out(reg) v, in(reg) off, options(nostack, preserves_flags, readonly))
    };
    v
}

pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Enable interrupts.
pub fn sti() {
    // SAFETY: the IDT is loaded before any caller runs (see `trap::init`), so any interrupt
    // delivered from here on reaches a handler.
    unsafe { asm!("sti", options(nomem, nostack)) }
}

/// Disable interrupts.
pub fn cli() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) }
}

pub fn interrupts_enabled() -> bool {
    let f: u64;
    // SAFETY: pushfq/pop only reads RFLAGS through the stack.
    unsafe { asm!("pushfq", "pop {}", out(reg) f, options(nomem, preserves_flags)) }
    f & (1 << 9) != 0
}

/// Halt until the next interrupt, forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        cli();
        // SAFETY: hlt with interrupts off parks the CPU; nothing else happens.
        unsafe { asm!("hlt", options(nomem, nostack)) }
    }
}
