//! Tests of `cpuid.rs`.

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
