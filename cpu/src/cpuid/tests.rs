//! Tests of `cpuid.rs`.

use super::*;
use std::cell::RefCell;
use std::collections::BTreeMap;

fn regs(s: &[u8]) -> Vec<u32> {
    s.chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidResult {
    CpuidResult { eax, ebx, ecx, edx }
}

fn vendor_leaf(max: u32, v: &[u8; 12]) -> CpuidResult {
    let w = regs(v);
    r(max, w[0], w[2], w[1])
}

/// A table-driven CPU; leaves not in the table answer like an Intel CPU beyond its
/// maximum (the highest basic leaf's data), so a read past the maximum shows up.
#[derive(Default)]
struct Cpu {
    leaves: BTreeMap<(u32, u32), CpuidResult>,
    reads: RefCell<Vec<(u32, u32)>>,
}

impl Cpu {
    fn set(&mut self, leaf: u32, sub: u32, v: CpuidResult) -> &mut Self {
        self.leaves.insert((leaf, sub), v);
        self
    }
    /// Brand leaves from `s`, NUL-padded (or cut) to 48 bytes.
    fn brand(&mut self, s: &[u8]) -> &mut Self {
        let mut b = [0u8; 48];
        let n = s.len().min(48);
        b[..n].copy_from_slice(&s[..n]);
        let w = regs(&b);
        for i in 0..3 {
            let b = &w[i * 4..i * 4 + 4];
            self.set(0x8000_0002 + i as u32, 0, r(b[0], b[1], b[2], b[3]));
        }
        self
    }
    fn cpuid(&self, leaf: u32, sub: u32) -> CpuidResult {
        self.reads.borrow_mut().push((leaf, sub));
        match self.leaves.get(&(leaf, sub)) {
            Some(v) => *v,
            None => r(0xdead_beef, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff),
        }
    }
    fn report(&self) -> CpuidReport {
        CpuidReport::collect(&|l, s| self.cpuid(l, s))
    }
    fn read(&self, leaf: u32) -> bool {
        self.reads.borrow().iter().any(|&(l, _)| l == leaf)
    }
}

fn xen_leaves(cpu: &mut Cpu, vcpu: u32) {
    let s = regs(b"XenVMMXenVMM");
    cpu.set(0x4000_0000, 0, r(0x4000_0005, s[0], s[1], s[2]))
        .set(0x4000_0001, 0, r((4 << 16) | 17, 0, 0, 0))
        .set(0x4000_0002, 0, r(1, 0x4000_0000, 0, 0))
        .set(0x4000_0003, 0, r(1, 0, 2_000_000, 1))
        // apic_access_virt | iommu_mappings | vcpu_id_present | domid_present |
        // upcall_vector, as Xen 4.17 sets on this bench.
        .set(0x4000_0004, 0, r(0x5d, vcpu, 0, 0))
        .set(0x4000_0005, 0, r(0, 0, 0, 0));
}

/// QEMU's qemu64 (AuthenticAMD, family 15 model 107 stepping 1) with +svm, under Xen
/// 4.17 as a PVH dom0's vCPU `vcpu`. Leaf values as Xen's HVM policy presents them.
fn qemu64_under_xen(vcpu: u32) -> Cpu {
    let mut cpu = Cpu::default();
    // Family 15 = base 0xF + ext 0; model 107 = 0x6B = ext 0x6, base 0xB; stepping 1.
    let eax1 = (0x6 << 16) | (0xf << 8) | (0xb << 4) | 1;
    assert_eq!(eax1, 0x0006_0fb1);
    let edx1 = (1 << 0)
        | (1 << 4)
        | (1 << 5)
        | (1 << 6)
        | (1 << 9)
        | (1 << 12)
        | (1 << 13)
        | (1 << 16)
        | (1 << 17)
        | (1 << 19)
        | (1 << 23)
        | (1 << 24)
        | (1 << 25)
        | (1 << 26);
    let ecx1 = 1 | (1 << 13) | (1 << 21) | (1 << 23) | (1 << 24) | (1 << 31);
    cpu.set(0, 0, vendor_leaf(0xd, b"AuthenticAMD"))
        .set(1, 0, r(eax1, (2 * vcpu) << 24 | 0x0000_0800, ecx1, edx1))
        .set(7, 0, r(0, 0, 0, 0))
        .set(0xb, 0, r(0, 1, 0x100, 2 * vcpu))
        .set(0xd, 0, r(0, 0, 0, 0))
        .set(0x8000_0000, 0, vendor_leaf(0x8000_0008, b"AuthenticAMD"))
        .set(
            0x8000_0001,
            0,
            r(
                0x0006_0fb1,
                0,
                1 | (1 << 2) | (1 << 5) | (1 << 6),
                (1 << 11) | (1 << 20) | (1 << 29),
            ),
        )
        .brand(b"QEMU Virtual CPU version 2.5+\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0")
        .set(0x8000_0005, 0, r(0, 0, 0, 0))
        .set(0x8000_0006, 0, r(0, 0, 0, 0))
        .set(0x8000_0007, 0, r(0, 0, 0, 0))
        .set(0x8000_0008, 0, r(0x3028, 0, 0, 0));
    xen_leaves(&mut cpu, vcpu);
    cpu
}

#[test]
fn qemu64_under_xen_4_17() {
    let cpu = qemu64_under_xen(1);
    let rep = cpu.report();
    assert_eq!(rep.vendor, "AuthenticAMD");
    assert_eq!((rep.family, rep.model, rep.stepping), (15, 107, 1));
    assert_eq!(rep.brand, "QEMU Virtual CPU version 2.5+");
    assert_eq!(rep.max_leaf, 0xd);
    assert_eq!(rep.max_ext_leaf, 0x8000_0008);
    assert_eq!(rep.initial_apic_id, 2);
    assert_eq!(rep.x2apic_id, Some(2));
    assert_eq!(
        rep.features,
        [
            "fpu",
            "tsc",
            "msr",
            "pae",
            "apic",
            "mtrr",
            "pge",
            "pat",
            "pse36",
            "clflush",
            "mmx",
            "fxsr",
            "sse",
            "sse2",
            "sse3",
            "cx16",
            "x2apic",
            "popcnt",
            "tsc_deadline",
            "hypervisor",
            "syscall",
            "nx",
            "lm",
            "lahf_lm",
            "svm",
            "abm",
            "sse4a"
        ]
    );
    assert!(rep.has("svm") && !rep.has("vmx") && !rep.has("invtsc"));
    assert_eq!((rep.phys_addr_bits, rep.virt_addr_bits), (40, 48));
    let x = rep.xen.unwrap();
    assert_eq!((x.base, x.major, x.minor), (0x4000_0000, 4, 17));
    assert_eq!(x.hypercall_msr, 0x4000_0000);
    assert_eq!(
        (x.tsc_mode, x.tsc_khz, x.tsc_emulated),
        (0, 2_000_000, true)
    );
    assert_eq!(
        x.hvm_flags,
        [
            "apic_access_virt",
            "iommu_mappings",
            "vcpu_id_present",
            "domid_present",
            "upcall_vector"
        ]
    );
    assert_eq!((x.vcpu_id, x.domid), (Some(1), Some(0)));
    // Nothing past the maxima was read.
    assert!(!cpu.read(0x8000_0009) && !cpu.read(0xe));
}

#[test]
fn intel_with_extended_model() {
    let mut cpu = Cpu::default();
    // Skylake-SP: family 6, model 0x55 (ext 5, base 5), stepping 4.
    let mut brand = *b"       Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\0";
    brand[47] = 0;
    cpu.set(0, 0, vendor_leaf(0x16, b"GenuineIntel"))
        .set(1, 0, r(0x0005_0654, 0x0710_0800, (1 << 5) | (1 << 28), 1))
        .set(
            7,
            0,
            r(
                0,
                (1 << 5) | (1 << 16) | (1 << 20),
                1 << 3,
                (1 << 10) | (1 << 26) | (1 << 27) | (1 << 31),
            ),
        )
        .set(0xb, 0, r(1, 2, 0x100, 7))
        .set(0x8000_0000, 0, r(0x8000_0008, 0, 0, 0))
        .set(0x8000_0001, 0, r(0, 0, 1, (1 << 27) | (1 << 29)))
        .brand(&brand)
        .set(0x8000_0007, 0, r(0, 0, 0, 1 << 8))
        .set(0x8000_0008, 0, r(0x302e, 0, 0, 0));
    let rep = cpu.report();
    assert_eq!(rep.vendor, "GenuineIntel");
    assert_eq!((rep.family, rep.model, rep.stepping), (6, 0x55, 4));
    assert_eq!(rep.brand, "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz");
    assert_eq!(rep.initial_apic_id, 7);
    assert_eq!(rep.x2apic_id, Some(7));
    assert_eq!(
        rep.features,
        [
            "fpu",
            "vmx",
            "avx",
            "avx2",
            "avx512f",
            "smap",
            "pku",
            "md_clear",
            "spec_ctrl",
            "stibp",
            "ssbd",
            "rdtscp",
            "lm",
            "lahf_lm",
            "invtsc"
        ]
    );
    assert_eq!((rep.phys_addr_bits, rep.virt_addr_bits), (46, 48));
    // No Xen signature anywhere (the fallback answers garbage).
    assert_eq!(rep.xen, None);
}

#[test]
fn signature_rules() {
    // Extended model is ignored for families other than 6 and 0xF.
    assert_eq!(signature(0x0005_0542), (5, 4, 2));
    // Extended family only counts for base family 0xF (Zen 2: 0x17, model 0x31).
    assert_eq!(signature(0x0083_0f10), (0x17, 0x31, 0));
    assert_eq!(signature(0x0ff0_0600), (6, 0, 0));
    assert_eq!(signature(u32::MAX), (0xf + 0xff, 0xff, 0xf));
    assert_eq!(signature(0), (0, 0, 0));
}

#[test]
fn max_leaf_1_reads_nothing_beyond() {
    let mut cpu = Cpu::default();
    cpu.set(0, 0, vendor_leaf(1, b"GenuineIntel"))
        .set(1, 0, r(0x0000_0633, 0x0100_0000, 0, 1 | (1 << 12)))
        // No extended leaves: 0x8000_0000 echoes the highest basic leaf.
        .set(
            0x8000_0000,
            0,
            r(0x0000_0633, 0x0100_0000, 0, 1 | (1 << 12)),
        );
    let rep = cpu.report();
    assert!(!cpu.read(7) && !cpu.read(0xb));
    assert!(!cpu.read(0x8000_0001) && !cpu.read(0x8000_0002) && !cpu.read(0x8000_0008));
    assert_eq!((rep.family, rep.model, rep.stepping), (6, 3, 3));
    assert_eq!(rep.initial_apic_id, 1);
    assert_eq!(rep.x2apic_id, None);
    assert_eq!(rep.max_ext_leaf, 0);
    assert_eq!(rep.features, ["fpu", "mtrr"]);
    assert_eq!(rep.brand, "");
    assert_eq!((rep.phys_addr_bits, rep.virt_addr_bits), (36, 32));
}

#[test]
fn max_leaf_0_and_all_garbage() {
    // Max leaf 0: not even leaf 1 is read.
    let mut cpu = Cpu::default();
    cpu.set(0, 0, vendor_leaf(0, b"Geode\xffby\x00NSC"));
    let rep = cpu.report();
    assert!(!cpu.read(1));
    assert_eq!(rep.vendor, "Geode?by?NSC");
    assert_eq!(
        (rep.family, rep.model, rep.stepping, rep.initial_apic_id),
        (0, 0, 0, 0)
    );
    assert!(rep.features.is_empty());

    // Every leaf all-ones: every basic flag set, no extended leaves (0xffff_ffff is not
    // an extended maximum), nothing panics, the Xen scan gives up.
    let ones = |_: u32, _: u32| r(u32::MAX, u32::MAX, u32::MAX, u32::MAX);
    let rep = CpuidReport::collect(&ones);
    assert_eq!(rep.features.len(), 64 - 11);
    assert!(rep.has("ssbd") && !rep.has("lm"));
    assert_eq!(rep.max_ext_leaf, 0);
    assert_eq!(rep.x2apic_id, Some(u32::MAX));
    assert_eq!(rep.xen, None);

    // Extended leaves all present and full of control bytes.
    let wild = |leaf: u32, _: u32| match leaf {
        0x8000_0000 => r(0x8000_ffff, 0, 0, 0),
        0x8000_0008 => r(0xffff_ffff, 0, 0, 0),
        _ => r(0x0101_0101, 0x7f7f_7f7f, 0x0a0a_0a0a, 0x2020_2020),
    };
    let rep = CpuidReport::collect(&wild);
    assert_eq!(rep.max_ext_leaf, 0x8000_ffff);
    assert_eq!(rep.brand, "????????????    ????????????    ????????????");
    assert_eq!((rep.phys_addr_bits, rep.virt_addr_bits), (255, 255));
}

#[test]
fn brand_with_padding_and_nul() {
    let mut cpu = qemu64_under_xen(0);
    cpu.brand(b"   AMD EPYC 7763 64-Core Processor               ");
    assert_eq!(cpu.report().brand, "AMD EPYC 7763 64-Core Processor");
    cpu.brand(b"\0MD EPYC 7763 64-Core Processor                 ");
    assert_eq!(cpu.report().brand, "");
    // Max ext leaf 0x8000_0003: the brand leaves are incomplete and not read.
    cpu.set(0x8000_0000, 0, r(0x8000_0003, 0, 0, 0));
    let rep = cpu.report();
    assert_eq!(rep.brand, "");
    assert_eq!(rep.phys_addr_bits, 36);
    assert!(rep.has("lm"));
}

#[test]
fn leaf_0xb_absent_when_empty() {
    let mut cpu = qemu64_under_xen(0);
    cpu.set(0xb, 0, r(0, 0, 0, 0));
    assert_eq!(cpu.report().x2apic_id, None);
}

#[test]
fn xen_with_few_leaves() {
    let mut cpu = qemu64_under_xen(3);
    let s = regs(b"XenVMMXenVMM");
    cpu.set(0x4000_0000, 0, r(0x4000_0002, s[0], s[1], s[2]));
    let x = cpu.report().xen.unwrap();
    assert_eq!((x.tsc_mode, x.tsc_khz, x.tsc_emulated), (0, 0, false));
    assert!(x.hvm_flags.is_empty());
    assert_eq!((x.vcpu_id, x.domid), (None, None));
    assert!(!cpu.read(0x4000_0003) && !cpu.read(0x4000_0004));
    // All HVM flag bits set and a TSC mode: names for the known bits only.
    let mut cpu = qemu64_under_xen(3);
    cpu.set(0x4000_0003, 0, r(0, 2, 0, 0))
        .set(0x4000_0004, 0, r(u32::MAX, 3, 0x1_0007, 0));
    let x = cpu.report().xen.unwrap();
    assert_eq!(x.tsc_mode, 2);
    assert_eq!(x.hvm_flags, HVM_FLAG_NAMES);
    assert_eq!((x.vcpu_id, x.domid), (Some(3), Some(7)));
}

#[test]
fn no_differences_between_vcpus_of_one_domain() {
    let a = qemu64_under_xen(0).report();
    let b = qemu64_under_xen(3).report();
    assert_ne!(a, b);
    assert_eq!(differences(&a, &b), Vec::<String>::new());
    // A vCPU without leaf 0xB data only differs in its x2APIC id: not reported.
    let mut c = qemu64_under_xen(2);
    c.set(0xb, 0, r(0, 0, 0, 0));
    assert!(differences(&a, &c.report()).is_empty());
}

#[test]
fn differences_found() {
    let a = qemu64_under_xen(0).report();
    let mut cpu = qemu64_under_xen(1);
    cpu.set(1, 0, r(0x0005_0654, 2 << 24, 0, 1))
        .brand(b"Other\0                                          ")
        .set(0x8000_0008, 0, r(0x302e, 0, 0, 0))
        .set(0x4000_0003, 0, r(0, 1, 1_000_000, 0))
        .set(0x4000_0004, 0, r(0x2c, 1, 0, 0));
    let b = cpu.report();
    let d = differences(&a, &b);
    assert_eq!(
        d,
        [
            "family: 15 vs 6",
            "model: 107 vs 85",
            "stepping: 1 vs 4",
            "brand: \"QEMU Virtual CPU version 2.5+\" vs \"Other\"",
            "feature tsc: present vs absent",
            "feature msr: present vs absent",
            "feature pae: present vs absent",
            "feature apic: present vs absent",
            "feature mtrr: present vs absent",
            "feature pge: present vs absent",
            "feature pat: present vs absent",
            "feature pse36: present vs absent",
            "feature clflush: present vs absent",
            "feature mmx: present vs absent",
            "feature fxsr: present vs absent",
            "feature sse: present vs absent",
            "feature sse2: present vs absent",
            "feature sse3: present vs absent",
            "feature cx16: present vs absent",
            "feature x2apic: present vs absent",
            "feature popcnt: present vs absent",
            "feature tsc_deadline: present vs absent",
            "feature hypervisor: present vs absent",
            "phys_addr_bits: 40 vs 46",
            "Xen tsc_mode: 0 vs 1",
            "Xen tsc_khz: 2000000 vs 1000000",
            "Xen tsc_emulated: true vs false",
            "Xen HVM flag apic_access_virt: present vs absent",
            "Xen HVM flag domid_present: present vs absent",
            "Xen HVM flag ext_dest_id: absent vs present",
            "Xen HVM flag upcall_vector: present vs absent",
            "Xen domid: 0 vs none",
        ]
    );
    // Symmetric in count, and reversed in wording.
    let back = differences(&b, &a);
    assert_eq!(back.len(), d.len());
    assert_eq!(back[0], "family: 6 vs 15");

    let mut v = a.clone();
    v.vendor = "GenuineIntel".into();
    v.xen = None;
    v.features.push("made_up");
    assert_eq!(
        differences(&a, &v),
        [
            "vendor: \"AuthenticAMD\" vs \"GenuineIntel\"",
            "feature made_up: absent vs present",
            "Xen leaves: present vs absent"
        ]
    );
}
