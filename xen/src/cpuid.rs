//! Finding Xen through CPUID (public/arch-x86/cpuid.h), and choosing the hypercall instruction.
//!
//! Pure functions over a `cpuid(leaf, subleaf)` closure, so the scan is tested on the host
//! against crafted leaves.

/// The four registers a CPUID leaf returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidResult {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// The CPU vendor from leaf 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
    Hygon,
    Other([u8; 12]),
}

impl Vendor {
    /// Xen's hypercall page uses `vmmcall` on AMD and Hygon (SVM), `vmcall` elsewhere (VMX).
    pub fn hypercall_insn(self) -> HypercallInsn {
        match self {
            Vendor::Amd | Vendor::Hygon => HypercallInsn::Vmmcall,
            _ => HypercallInsn::Vmcall,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Vendor::Intel => "GenuineIntel",
            Vendor::Amd => "AuthenticAMD",
            Vendor::Hygon => "HygonGenuine",
            Vendor::Other(s) => core::str::from_utf8(s).unwrap_or("?"),
        }
    }
}

/// The instruction that enters Xen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HypercallInsn {
    Vmcall,
    Vmmcall,
}

impl HypercallInsn {
    pub fn name(self) -> &'static str {
        match self {
            HypercallInsn::Vmcall => "vmcall",
            HypercallInsn::Vmmcall => "vmmcall",
        }
    }
}

fn sig(order: [u32; 3]) -> [u8; 12] {
    let mut s = [0u8; 12];
    s[0..4].copy_from_slice(&order[0].to_le_bytes());
    s[4..8].copy_from_slice(&order[1].to_le_bytes());
    s[8..12].copy_from_slice(&order[2].to_le_bytes());
    s
}

/// The vendor (leaf 0: EBX, EDX, ECX).
pub fn vendor(cpuid: &dyn Fn(u32, u32) -> CpuidResult) -> Vendor {
    let r = cpuid(0, 0);
    let s = sig([r.ebx, r.edx, r.ecx]);
    match &s {
        b"GenuineIntel" => Vendor::Intel,
        b"AuthenticAMD" => Vendor::Amd,
        b"HygonGenuine" => Vendor::Hygon,
        _ => Vendor::Other(s),
    }
}

/// CPUID.1:ECX bit 31: "running under a hypervisor".
pub fn hypervisor_bit(cpuid: &dyn Fn(u32, u32) -> CpuidResult) -> bool {
    cpuid(1, 0).ecx & (1 << 31) != 0
}

/// The signature at leaf 0x4000_0000 (EBX, ECX, EDX), whatever hypervisor it names
/// (`XenVMMXenVMM`, `KVMKVMKVM\0\0\0`, `TCGTCGTCGTCG`, ...), if the hypervisor bit is set.
pub fn hypervisor_signature(cpuid: &dyn Fn(u32, u32) -> CpuidResult) -> Option<[u8; 12]> {
    if !hypervisor_bit(cpuid) {
        return None;
    }
    let r = cpuid(0x4000_0000, 0);
    Some(sig([r.ebx, r.ecx, r.edx]))
}

/// What Xen's CPUID leaves say (`base` .. `base + 4`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenLeaves {
    /// 0x4000_0000 normally; 0x4000_0100 when Viridian leaves come first.
    pub base: u32,
    pub max_leaf: u32,
    pub major: u32,
    pub minor: u32,
    /// MSR to write the hypercall page address to (`base+2` EBX).
    pub hypercall_msr: u32,
    pub hypercall_pages: u32,
    /// TSC frequency in kHz (`base+3` subleaf 0 ECX), if Xen gave one.
    pub tsc_khz: Option<u32>,
    /// Xen emulates RDTSC for this domain (`base+3` subleaf 0 EAX bit 0): every read traps.
    pub tsc_emulated: bool,
}

pub const XEN_HVM_CPUID_APIC_ACCESS_VIRT: u32 = 1 << 0;
pub const XEN_HVM_CPUID_X2APIC_VIRT: u32 = 1 << 1;
pub const XEN_HVM_CPUID_IOMMU_MAPPINGS: u32 = 1 << 2;
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
pub const XEN_HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;

/// Scan for Xen's leaves the way Linux, FreeBSD and XTF do: bases 0x4000_0000 + n·0x100,
/// signature `XenVMMXenVMM` and at least two leaves beyond the base.
///
/// The hypervisor bit (CPUID.1:ECX[31]) is not consulted: on bare metal the 0x4000_xxxx leaves
/// return the highest basic leaf's data, which cannot spell Xen's signature, and under Xen each
/// CPUID is a VM exit. For the same reason leaf `base+4` (HVM flags, vCPU and domain ids) is
/// only read by [`hvm_leaf`] when wanted.
pub fn find_xen(cpuid: &dyn Fn(u32, u32) -> CpuidResult) -> Option<XenLeaves> {
    for n in 0..0x100u32 {
        let base = 0x4000_0000 + n * 0x100;
        let r = cpuid(base, 0);
        if &sig([r.ebx, r.ecx, r.edx]) != b"XenVMMXenVMM" {
            // Hypervisor leaf blocks sit back to back (Viridian at 0x4000_0000, then Xen at
            // 0x4000_0100); a base whose max-leaf is not inside its own block has no hypervisor
            // leaves (bare metal returns the highest basic leaf there), so stop scanning.
            if r.eax < base || r.eax > base + 0xff {
                break;
            }
            continue;
        }
        let max_leaf = r.eax;
        if max_leaf < base || max_leaf - base < 2 {
            continue;
        }
        let v = cpuid(base + 1, 0);
        let hc = cpuid(base + 2, 0);
        let (tsc_khz, tsc_emulated) = if max_leaf - base >= 3 {
            let t = cpuid(base + 3, 0);
            (Some(t.ecx).filter(|&k| k != 0), t.eax & 1 != 0)
        } else {
            (None, false)
        };
        return Some(XenLeaves {
            base,
            max_leaf,
            major: v.eax >> 16,
            minor: v.eax & 0xffff,
            hypercall_msr: hc.ebx,
            hypercall_pages: hc.eax,
            tsc_khz,
            tsc_emulated,
        });
    }
    None
}

/// Leaf `base+4` (HVM only): flags, and this vCPU's and domain's ids when Xen says they are
/// present. `None` when Xen has no such leaf.
pub fn hvm_leaf(
    cpuid: &dyn Fn(u32, u32) -> CpuidResult,
    x: &XenLeaves,
) -> Option<(u32, Option<u32>, Option<u16>)> {
    if x.max_leaf - x.base < 4 {
        return None;
    }
    let h = cpuid(x.base + 4, 0);
    Some((
        h.eax,
        (h.eax & XEN_HVM_CPUID_VCPU_ID_PRESENT != 0).then_some(h.ebx),
        (h.eax & XEN_HVM_CPUID_DOMID_PRESENT != 0).then_some(h.ecx as u16),
    ))
}

#[cfg(test)]
mod tests;
