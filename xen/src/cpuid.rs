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
mod tests {
    use super::*;

    fn regs(s: &[u8; 12]) -> (u32, u32, u32) {
        let w = |i: usize| u32::from_le_bytes(s[i..i + 4].try_into().unwrap());
        (w(0), w(4), w(8))
    }

    /// A CPU like QEMU TCG's qemu64 under Xen 4.17.
    fn xen_cpu(leaf: u32, _sub: u32) -> CpuidResult {
        let (b, c, d) = regs(b"XenVMMXenVMM");
        match leaf {
            0 => {
                let (b, d, c) = regs(b"AuthenticAMD");
                CpuidResult {
                    eax: 0xd,
                    ebx: b,
                    ecx: c,
                    edx: d,
                }
            }
            1 => CpuidResult {
                ecx: 1 << 31,
                ..Default::default()
            },
            0x4000_0000 => CpuidResult {
                eax: 0x4000_0005,
                ebx: b,
                ecx: c,
                edx: d,
            },
            0x4000_0001 => CpuidResult {
                eax: (4 << 16) | 17,
                ..Default::default()
            },
            0x4000_0002 => CpuidResult {
                eax: 1,
                ebx: 0x4000_0000,
                ..Default::default()
            },
            0x4000_0003 => CpuidResult {
                eax: 1,
                ecx: 2_000_000,
                ..Default::default()
            },
            0x4000_0004 => CpuidResult {
                eax: 0x5c,
                ebx: 0,
                ecx: 0,
                edx: 0,
            },
            _ => CpuidResult::default(),
        }
    }

    #[test]
    fn finds_xen_and_reads_its_leaves() {
        let x = find_xen(&xen_cpu).unwrap();
        assert_eq!((x.base, x.major, x.minor), (0x4000_0000, 4, 17));
        assert_eq!(x.hypercall_msr, 0x4000_0000);
        assert_eq!(x.tsc_khz, Some(2_000_000));
        assert!(x.tsc_emulated);
        assert_eq!(hvm_leaf(&xen_cpu, &x), Some((0x5c, Some(0), Some(0))));
        assert_eq!(vendor(&xen_cpu), Vendor::Amd);
        assert_eq!(vendor(&xen_cpu).hypercall_insn(), HypercallInsn::Vmmcall);
        assert_eq!(&hypervisor_signature(&xen_cpu).unwrap(), b"XenVMMXenVMM");
    }

    #[test]
    fn finds_xen_behind_viridian_leaves() {
        let f = |leaf: u32, sub: u32| {
            let (b, c, d) = regs(b"Microsoft Hv");
            match leaf {
                0x4000_0000 => CpuidResult {
                    eax: 0x4000_0006,
                    ebx: b,
                    ecx: c,
                    edx: d,
                },
                l if (0x4000_0100..0x4000_0200).contains(&l) => xen_cpu(l - 0x100, sub),
                _ => xen_cpu(leaf, sub),
            }
        };
        let fixed = |leaf: u32, sub: u32| {
            let mut r = f(leaf, sub);
            if leaf == 0x4000_0100 {
                r.eax = 0x4000_0105;
            }
            r
        };
        assert_eq!(find_xen(&fixed).unwrap().base, 0x4000_0100);
    }

    #[test]
    fn no_xen_on_bare_metal_or_other_hypervisors() {
        // Bare metal: no hypervisor bit, and the 0x4000_xxxx leaves echo the highest basic leaf.
        let bare = |leaf: u32, sub: u32| {
            if leaf >= 0x4000_0000 {
                return CpuidResult {
                    eax: 0x0000_0d00,
                    ebx: 0x340,
                    ecx: 0x440,
                    edx: 0,
                };
            }
            let mut r = xen_cpu(leaf, sub);
            if leaf == 1 {
                r.ecx = 0;
            }
            r
        };
        assert_eq!(find_xen(&bare), None);
        assert_eq!(hypervisor_signature(&bare), None);
        let kvm = |leaf: u32, sub: u32| {
            if leaf == 0x4000_0000 {
                let (b, c, d) = regs(b"KVMKVMKVM\0\0\0");
                CpuidResult {
                    eax: 0x4000_0001,
                    ebx: b,
                    ecx: c,
                    edx: d,
                }
            } else if leaf >= 0x4000_0000 {
                CpuidResult::default()
            } else {
                xen_cpu(leaf, sub)
            }
        };
        assert_eq!(find_xen(&kvm), None);
        assert_eq!(&hypervisor_signature(&kvm).unwrap(), b"KVMKVMKVM\0\0\0");
    }

    #[test]
    fn rejects_xen_signature_with_too_few_leaves() {
        let short = |leaf: u32, sub: u32| {
            let mut r = xen_cpu(leaf, sub);
            if leaf == 0x4000_0000 {
                r.eax = 0x4000_0001;
            }
            r
        };
        assert_eq!(find_xen(&short), None);
        let wrapped = |leaf: u32, sub: u32| {
            let mut r = xen_cpu(leaf, sub);
            if leaf == 0x4000_0000 {
                r.eax = 3; // below the base: garbage
            }
            r
        };
        assert_eq!(find_xen(&wrapped), None);
    }

    #[test]
    fn intel_uses_vmcall() {
        let intel = |leaf: u32, sub: u32| {
            if leaf == 0 {
                let (b, d, c) = regs(b"GenuineIntel");
                CpuidResult {
                    eax: 0xd,
                    ebx: b,
                    ecx: c,
                    edx: d,
                }
            } else {
                xen_cpu(leaf, sub)
            }
        };
        assert_eq!(vendor(&intel).hypercall_insn(), HypercallInsn::Vmcall);
        assert_eq!(vendor(&intel).name(), "GenuineIntel");
    }
}
