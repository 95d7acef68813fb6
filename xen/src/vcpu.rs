//! `struct vcpu_hvm_context` (public/hvm/hvm_vcpu.h): the register state `VCPUOP_initialise`
//! starts an HVM/PVH vCPU with. dom0 starts its APs directly in 64-bit mode with it, so it needs
//! no real-mode trampoline.

use crate::le::{put_u32, put_u64};

/// `VCPU_HVM_MODE_32B` / `VCPU_HVM_MODE_64B` (the committed ABI; early drafts numbered them
/// differently).
pub const VCPU_HVM_MODE_32B: u32 = 0;
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// sizeof(struct vcpu_hvm_context): mode, pad, then the 120-byte register union.
pub const VCPU_HVM_CONTEXT_SIZE: usize = 128;

pub const CR0_PE: u64 = 1 << 0;
pub const CR0_ET: u64 = 1 << 4;
pub const CR0_WP: u64 = 1 << 16;
pub const CR0_PG: u64 = 1 << 31;
pub const CR4_PAE: u64 = 1 << 5;
pub const EFER_LME: u64 = 1 << 8;
pub const EFER_LMA: u64 = 1 << 10;

/// The 64-bit register set (`struct vcpu_hvm_x86_64`, all u64: rax rcx rdx rbx rsp rbp rsi rdi
/// rip rflags cr0 cr3 cr4 efer). Xen forces flat segments (CS 0xa9b, data 0xc93, TR 0x8b) and
/// leaves GDTR/IDTR unset: the vCPU must load its own before anything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VcpuContext64 {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// Why Xen would refuse a context (`arch_set_info_hvm_guest()` checks for 64B mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextError {
    NonCanonicalRip(u64),
    PagingOff,
    NoPae,
    NoLongMode,
}

fn canonical(a: u64) -> bool {
    let top = a >> 47;
    top == 0 || top == 0x1_ffff
}

impl VcpuContext64 {
    /// A long-mode context: paging on with `cr3`, interrupts off, entering at `rip` with stack
    /// `rsp` and first argument `rdi`.
    pub fn long_mode(rip: u64, rsp: u64, cr3: u64, rdi: u64) -> Self {
        VcpuContext64 {
            rip,
            rsp,
            rdi,
            cr3,
            rflags: 0x2, // bit 1 is always set; IF clear
            cr0: CR0_PE | CR0_ET | CR0_WP | CR0_PG,
            cr4: CR4_PAE,
            efer: EFER_LME | EFER_LMA,
            ..Default::default()
        }
    }

    /// The checks Xen makes for 64B mode, so a bad context is caught before the hypercall.
    pub fn validate(&self) -> Result<(), ContextError> {
        if !canonical(self.rip) {
            return Err(ContextError::NonCanonicalRip(self.rip));
        }
        if self.cr0 & CR0_PG == 0 {
            return Err(ContextError::PagingOff);
        }
        if self.cr4 & CR4_PAE == 0 {
            return Err(ContextError::NoPae);
        }
        if self.efer & EFER_LME == 0 {
            return Err(ContextError::NoLongMode);
        }
        Ok(())
    }

    /// The 128-byte `vcpu_hvm_context` in 64B mode.
    pub fn to_bytes(&self) -> [u8; VCPU_HVM_CONTEXT_SIZE] {
        let mut b = [0u8; VCPU_HVM_CONTEXT_SIZE];
        put_u32(&mut b, 0, VCPU_HVM_MODE_64B);
        let regs = [
            self.rax,
            self.rcx,
            self.rdx,
            self.rbx,
            self.rsp,
            self.rbp,
            self.rsi,
            self.rdi,
            self.rip,
            self.rflags,
            self.cr0,
            self.cr3,
            self.cr4,
            self.efer,
        ];
        for (i, r) in regs.iter().enumerate() {
            put_u64(&mut b, 8 + 8 * i, *r);
        }
        b
    }

    /// Decode a 64B-mode context (for fakes and tests); `None` for another mode or a bad size.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() < VCPU_HVM_CONTEXT_SIZE || crate::le::get_u32(b, 0)? != VCPU_HVM_MODE_64B {
            return None;
        }
        if crate::le::get_u32(b, 4)? != 0 {
            return None; // pad must be 0
        }
        let r = |i: usize| crate::le::u64_at(b, 8 + 8 * i);
        Some(VcpuContext64 {
            rax: r(0),
            rcx: r(1),
            rdx: r(2),
            rbx: r(3),
            rsp: r(4),
            rbp: r(5),
            rsi: r(6),
            rdi: r(7),
            rip: r(8),
            rflags: r(9),
            cr0: r(10),
            cr3: r(11),
            cr4: r(12),
            efer: r(13),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_public_header() {
        let c = VcpuContext64::long_mode(0x10_2000, 0x20_0000, 0x12_5000, 7);
        let b = c.to_bytes();
        assert_eq!(crate::le::u32_at(&b, 0), VCPU_HVM_MODE_64B);
        assert_eq!(crate::le::u32_at(&b, 4), 0);
        assert_eq!(crate::le::u64_at(&b, 8 + 4 * 8), 0x20_0000); // rsp @40
        assert_eq!(crate::le::u64_at(&b, 8 + 7 * 8), 7); // rdi @64
        assert_eq!(crate::le::u64_at(&b, 8 + 8 * 8), 0x10_2000); // rip @72
        assert_eq!(crate::le::u64_at(&b, 8 + 10 * 8), 0x8001_0011); // cr0 @88
        assert_eq!(crate::le::u64_at(&b, 8 + 11 * 8), 0x12_5000); // cr3 @96
        assert_eq!(crate::le::u64_at(&b, 8 + 13 * 8), 0x500); // efer @112
        assert_eq!(VcpuContext64::from_bytes(&b), Some(c));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn xen_would_refuse_these() {
        let good = VcpuContext64::long_mode(0x10_2000, 0x20_0000, 0x12_5000, 0);
        assert_eq!(
            VcpuContext64 {
                rip: 0x0000_8000_0000_0000,
                ..good
            }
            .validate(),
            Err(ContextError::NonCanonicalRip(0x0000_8000_0000_0000))
        );
        assert_eq!(
            VcpuContext64 {
                cr0: CR0_PE,
                ..good
            }
            .validate(),
            Err(ContextError::PagingOff)
        );
        assert_eq!(
            VcpuContext64 { cr4: 0, ..good }.validate(),
            Err(ContextError::NoPae)
        );
        assert_eq!(
            VcpuContext64 { efer: 0, ..good }.validate(),
            Err(ContextError::NoLongMode)
        );
        assert!(
            VcpuContext64 {
                rip: 0xffff_8000_0000_0000,
                ..good
            }
            .validate()
            .is_ok()
        );
        let mut b = good.to_bytes();
        b[4] = 1;
        assert_eq!(VcpuContext64::from_bytes(&b), None);
        assert_eq!(VcpuContext64::from_bytes(&b[..64]), None);
    }
}
