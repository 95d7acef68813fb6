//! Thin wrappers over x86 instructions, on the `x86_64` crate (port I/O, MSRs, control
//! registers, interrupt flag, `hlt`). Each one is a single instruction whose only effect is the
//! documented one; callers decide whether that effect is appropriate.

use core::arch::asm;

use x86_64::instructions::interrupts;
use x86_64::instructions::port::Port;
use x86_64::registers::control::{Cr2, Cr3};
use x86_64::registers::model_specific::Msr;
use xen::cpuid::CpuidResult;

/// The IDT vector Xen delivers event-channel upcalls on (`HVM_PARAM_CALLBACK_IRQ`, type
/// vector); `trap` routes it to `events::upcall`.
pub const UPCALL_VECTOR: u8 = 0xf3;

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
    crate::stats::tsc_read();
    // SAFETY: rdtsc only reads the time-stamp counter (CR4.TSD is clear: we never set it).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Write a byte to an I/O port.
///
/// # Safety
/// The port must be one whose write has no effect on memory safety (console, debug exit, PIT).
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::<u8>::new(port).write(v) }
}

/// Write a dword to an I/O port.
///
/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::<u32>::new(port).write(v) }
}

/// Read a byte from an I/O port.
///
/// # Safety
/// The port must be one whose read has no effect on memory safety.
pub unsafe fn inb(port: u16) -> u8 {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::<u8>::new(port).read() }
}

/// Read a dword from an I/O port.
///
/// # Safety
/// As [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    // SAFETY: the caller vouches for the port.
    unsafe { Port::<u32>::new(port).read() }
}

/// # Safety
/// Writing an MSR can change paging, interrupts or hypervisor state; the caller must know the MSR.
pub unsafe fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the caller vouches for the MSR and value.
    unsafe { Msr::new(msr).write(v) }
}

/// # Safety
/// Reading an MSR that does not exist raises #GP; the caller must know the MSR is there.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller vouches for the MSR.
    unsafe { Msr::new(msr).read() }
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

/// The page-fault address (CR2), raw: it may be non-canonical after a bad access.
pub fn read_cr2() -> u64 {
    Cr2::read_raw()
}

/// The page-table root and flags (CR3), raw.
pub fn read_cr3() -> u64 {
    let (frame, flags) = Cr3::read_raw();
    frame.start_address().as_u64() | u64::from(flags)
}

/// Enable interrupts.
pub fn sti() {
    // The IDT is loaded before any caller runs (see `trap::init`), so any interrupt delivered
    // from here on reaches a handler.
    interrupts::enable();
}

/// Disable interrupts.
pub fn cli() {
    interrupts::disable();
}

pub fn interrupts_enabled() -> bool {
    interrupts::are_enabled()
}

/// Halt until the next interrupt, forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        cli();
        x86_64::instructions::hlt();
    }
}
