//! A CPUID report for one vCPU, and the differences between two vCPUs' reports.
//!
//! Leaves are read only when the maximum basic (leaf 0) or extended (leaf 0x8000_0000) leaf
//! allows them: beyond those, CPUs return the data of the highest basic leaf (Intel) or
//! zeros, and either would be misread as flags.
//!
//! Under Xen (reference §6.1) the policy is the HVM default: the per-vCPU fields are the
//! initial APIC id (CPUID.1:EBX[31:24] = 2·vcpu_id), the x2APIC id (CPUID.0xB:EDX) and the
//! vCPU id in Xen's leaf `base+4`. Everything else should be identical on every vCPU.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Display;

use xen::cpuid::{CpuidResult, find_xen, hvm_leaf};

/// What one vCPU's CPUID says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuidReport {
    /// Leaf 0's 12-byte vendor string, e.g. "AuthenticAMD" (bytes outside printable ASCII
    /// shown as '?').
    pub vendor: String,
    /// Display family: the base family, plus the extended family when the base is 0xF.
    pub family: u32,
    /// Display model: the extended model is prepended when the base family is 6 or 0xF.
    pub model: u32,
    pub stepping: u32,
    /// Leaves 0x8000_0002..=0x8000_0004 up to the first NUL, trimmed; empty if absent.
    pub brand: String,
    /// Leaf 0 EAX.
    pub max_leaf: u32,
    /// Leaf 0x8000_0000 EAX, or 0 when it is not in 0x8000_0000..=0x8000_FFFF (no extended
    /// leaves; the value is then garbage).
    pub max_ext_leaf: u32,
    /// CPUID.1:EBX[31:24].
    pub initial_apic_id: u32,
    /// CPUID.0xB:EDX, if leaf 0xB exists (see [`CpuidReport::collect`]).
    pub x2apic_id: Option<u32>,
    /// Names of the set flags that matter to a dom0 and its guests, in [`FEATURE_NAMES`]
    /// order.
    pub features: Vec<&'static str>,
    /// 0x8000_0008 EAX[7:0]; 36 when that leaf is absent or says 0.
    pub phys_addr_bits: u8,
    /// 0x8000_0008 EAX[15:8]; when absent or 0: 48 with long mode, 32 without.
    pub virt_addr_bits: u8,
    /// Xen's leaves, if Xen is there.
    pub xen: Option<XenCpuid>,
}

/// What Xen's CPUID leaves (`base`..`base+4`, reference §2.1) say to this vCPU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XenCpuid {
    /// 0x4000_0000, or 0x4000_0100 behind Viridian leaves.
    pub base: u32,
    pub major: u32,
    pub minor: u32,
    /// `base+2` EBX: the MSR that takes the hypercall page address.
    pub hypercall_msr: u32,
    /// `base+3` subleaf 0 EBX (0 if Xen has no such leaf).
    pub tsc_mode: u32,
    /// `base+3` subleaf 0 ECX; 0 if Xen gave none.
    pub tsc_khz: u32,
    /// `base+3` subleaf 0 EAX bit 0: every RDTSC traps to Xen.
    pub tsc_emulated: bool,
    /// Names of the set `base+4` EAX flags, in [`HVM_FLAG_NAMES`] order.
    pub hvm_flags: Vec<&'static str>,
    /// `base+4` EBX when `vcpu_id_present`.
    pub vcpu_id: Option<u32>,
    /// `base+4` ECX[15:0] when `domid_present`.
    pub domid: Option<u16>,
}

/// Where a feature flag lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    /// Leaf 1 ECX.
    L1Ecx,
    /// Leaf 1 EDX.
    L1Edx,
    /// Leaf 7 subleaf 0 EBX.
    L7Ebx,
    /// Leaf 7 subleaf 0 ECX.
    L7Ecx,
    /// Leaf 7 subleaf 0 EDX.
    L7Edx,
    /// Leaf 0x8000_0001 ECX.
    E1Ecx,
    /// Leaf 0x8000_0001 EDX.
    E1Edx,
    /// Leaf 0x8000_0007 EDX.
    E7Edx,
}

/// The flags reported, with their register and bit (SDM vol. 2A CPUID, APM vol. 3 App. E).
const FEATURES: [(Reg, u8, &str); 64] = [
    (Reg::L1Edx, 0, "fpu"),
    (Reg::L1Edx, 4, "tsc"),
    (Reg::L1Edx, 5, "msr"),
    (Reg::L1Edx, 6, "pae"),
    (Reg::L1Edx, 9, "apic"),
    (Reg::L1Edx, 12, "mtrr"),
    (Reg::L1Edx, 13, "pge"),
    (Reg::L1Edx, 16, "pat"),
    (Reg::L1Edx, 17, "pse36"),
    (Reg::L1Edx, 19, "clflush"),
    (Reg::L1Edx, 23, "mmx"),
    (Reg::L1Edx, 24, "fxsr"),
    (Reg::L1Edx, 25, "sse"),
    (Reg::L1Edx, 26, "sse2"),
    (Reg::L1Edx, 28, "ht"),
    (Reg::L1Ecx, 0, "sse3"),
    (Reg::L1Ecx, 1, "pclmulqdq"),
    (Reg::L1Ecx, 5, "vmx"),
    (Reg::L1Ecx, 6, "smx"),
    (Reg::L1Ecx, 9, "ssse3"),
    (Reg::L1Ecx, 12, "fma"),
    (Reg::L1Ecx, 13, "cx16"),
    (Reg::L1Ecx, 17, "pcid"),
    (Reg::L1Ecx, 19, "sse4_1"),
    (Reg::L1Ecx, 20, "sse4_2"),
    (Reg::L1Ecx, 21, "x2apic"),
    (Reg::L1Ecx, 22, "movbe"),
    (Reg::L1Ecx, 23, "popcnt"),
    (Reg::L1Ecx, 24, "tsc_deadline"),
    (Reg::L1Ecx, 25, "aes"),
    (Reg::L1Ecx, 26, "xsave"),
    (Reg::L1Ecx, 27, "osxsave"),
    (Reg::L1Ecx, 28, "avx"),
    (Reg::L1Ecx, 29, "f16c"),
    (Reg::L1Ecx, 30, "rdrand"),
    (Reg::L1Ecx, 31, "hypervisor"),
    (Reg::L7Ebx, 0, "fsgsbase"),
    (Reg::L7Ebx, 3, "bmi1"),
    (Reg::L7Ebx, 5, "avx2"),
    (Reg::L7Ebx, 7, "smep"),
    (Reg::L7Ebx, 8, "bmi2"),
    (Reg::L7Ebx, 9, "erms"),
    (Reg::L7Ebx, 10, "invpcid"),
    (Reg::L7Ebx, 16, "avx512f"),
    (Reg::L7Ebx, 20, "smap"),
    (Reg::L7Ebx, 23, "clflushopt"),
    (Reg::L7Ebx, 29, "sha"),
    (Reg::L7Ecx, 2, "umip"),
    (Reg::L7Ecx, 3, "pku"),
    (Reg::L7Edx, 10, "md_clear"),
    // IBRS and IBPB (MSR_SPEC_CTRL / MSR_PRED_CMD).
    (Reg::L7Edx, 26, "spec_ctrl"),
    (Reg::L7Edx, 27, "stibp"),
    (Reg::L7Edx, 31, "ssbd"),
    (Reg::E1Edx, 11, "syscall"),
    (Reg::E1Edx, 20, "nx"),
    (Reg::E1Edx, 26, "pdpe1gb"),
    (Reg::E1Edx, 27, "rdtscp"),
    (Reg::E1Edx, 29, "lm"),
    (Reg::E1Ecx, 0, "lahf_lm"),
    (Reg::E1Ecx, 2, "svm"),
    (Reg::E1Ecx, 4, "cr8_legacy"),
    (Reg::E1Ecx, 5, "abm"),
    (Reg::E1Ecx, 6, "sse4a"),
    (Reg::E7Edx, 8, "invtsc"),
];

/// Every feature name [`CpuidReport::features`] may hold, in report order.
pub const FEATURE_NAMES: [&str; 64] = {
    let mut names = [""; 64];
    let mut i = 0;
    while i < 64 {
        names[i] = FEATURES[i].2;
        i += 1;
    }
    names
};

/// Names of Xen's `base+4` EAX bits 0..=6 (`XEN_HVM_CPUID_*`).
pub const HVM_FLAG_NAMES: [&str; 7] = [
    "apic_access_virt",
    "x2apic_virt",
    "iommu_mappings",
    "vcpu_id_present",
    "domid_present",
    "ext_dest_id",
    "upcall_vector",
];

/// The leaves the feature flags come from (zeros where a leaf is absent).
#[derive(Debug, Default)]
struct FlagLeaves {
    l1: CpuidResult,
    l7: CpuidResult,
    e1: CpuidResult,
    e7: CpuidResult,
}

impl FlagLeaves {
    fn reg(&self, reg: Reg) -> u32 {
        match reg {
            Reg::L1Ecx => self.l1.ecx,
            Reg::L1Edx => self.l1.edx,
            Reg::L7Ebx => self.l7.ebx,
            Reg::L7Ecx => self.l7.ecx,
            Reg::L7Edx => self.l7.edx,
            Reg::E1Ecx => self.e1.ecx,
            Reg::E1Edx => self.e1.edx,
            Reg::E7Edx => self.e7.edx,
        }
    }

    fn features(&self) -> Vec<&'static str> {
        FEATURES
            .iter()
            .filter(|&&(reg, bit, _)| (self.reg(reg) >> bit) & 1 != 0)
            .map(|&(_, _, name)| name)
            .collect()
    }
}

/// Display family, model and stepping from CPUID.1:EAX (SDM vol. 2A "Figure 3-6", APM vol. 3
/// CPUID Fn0000_0001_EAX): the extended family (bits 27:20) is added only when the base
/// family (bits 11:8) is 0xF; the extended model (bits 19:16) is prepended when the base
/// family is 6 or 0xF.
pub fn signature(eax: u32) -> (u32, u32, u32) {
    let stepping = eax & 0xf;
    let base_model = (eax >> 4) & 0xf;
    let base_family = (eax >> 8) & 0xf;
    let ext_model = (eax >> 16) & 0xf;
    let ext_family = (eax >> 20) & 0xff;
    let family = if base_family == 0xf {
        base_family + ext_family
    } else {
        base_family
    };
    let model = if base_family == 6 || base_family == 0xf {
        (ext_model << 4) | base_model
    } else {
        base_model
    };
    (family, model, stepping)
}

/// Bytes as text: printable ASCII kept, anything else shown as '?'.
fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

fn regs_bytes(regs: &[u32]) -> Vec<u8> {
    regs.iter().flat_map(|r| r.to_le_bytes()).collect()
}

/// The brand string from leaves 0x8000_0002..=0x8000_0004: up to the first NUL, trimmed.
fn brand(leaves: [CpuidResult; 3]) -> String {
    let regs: Vec<u32> = leaves
        .iter()
        .flat_map(|r| [r.eax, r.ebx, r.ecx, r.edx])
        .collect();
    let bytes = regs_bytes(&regs);
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from(printable(&bytes[..end]).trim())
}

impl CpuidReport {
    /// Read this vCPU's CPUID through `cpuid(leaf, subleaf)`.
    ///
    /// Leaf 1 is read if leaf 0 says `max_leaf >= 1`, leaf 7 if `>= 7`, leaf 0xB if `>= 0xB`;
    /// leaf 0xB counts as present when its subleaf 0 says anything at all (EBX[15:0] logical
    /// processors, ECX[15:8] level type, or an EDX x2APIC id). Extended leaves are read only if
    /// 0x8000_0000 EAX lies in 0x8000_0000..=0x8000_FFFF and reaches them. Xen's leaves are
    /// found with [`xen::cpuid::find_xen`] (whatever the hypervisor bit says).
    pub fn collect(cpuid: &dyn Fn(u32, u32) -> CpuidResult) -> CpuidReport {
        let l0 = cpuid(0, 0);
        let max_leaf = l0.eax;
        let vendor = printable(&regs_bytes(&[l0.ebx, l0.edx, l0.ecx]));

        let mut flags = FlagLeaves::default();
        if max_leaf >= 1 {
            flags.l1 = cpuid(1, 0);
        }
        if max_leaf >= 7 {
            flags.l7 = cpuid(7, 0);
        }
        let x2apic_id = if max_leaf >= 0xb {
            let t = cpuid(0xb, 0);
            let present = t.ebx & 0xffff != 0 || (t.ecx >> 8) & 0xff != 0 || t.edx != 0;
            present.then_some(t.edx)
        } else {
            None
        };

        let e0 = cpuid(0x8000_0000, 0);
        let max_ext_leaf = if (0x8000_0000..=0x8000_ffff).contains(&e0.eax) {
            e0.eax
        } else {
            0
        };
        if max_ext_leaf >= 0x8000_0001 {
            flags.e1 = cpuid(0x8000_0001, 0);
        }
        let brand = if max_ext_leaf >= 0x8000_0004 {
            self::brand([
                cpuid(0x8000_0002, 0),
                cpuid(0x8000_0003, 0),
                cpuid(0x8000_0004, 0),
            ])
        } else {
            String::new()
        };
        if max_ext_leaf >= 0x8000_0007 {
            flags.e7 = cpuid(0x8000_0007, 0);
        }
        let features = flags.features();
        let long_mode = features.contains(&"lm");
        let (mut phys_addr_bits, mut virt_addr_bits) = (0u8, 0u8);
        if max_ext_leaf >= 0x8000_0008 {
            let [p, v, _, _] = cpuid(0x8000_0008, 0).eax.to_le_bytes();
            (phys_addr_bits, virt_addr_bits) = (p, v);
        }
        if phys_addr_bits == 0 {
            phys_addr_bits = 36;
        }
        if virt_addr_bits == 0 {
            virt_addr_bits = if long_mode { 48 } else { 32 };
        }

        let (family, model, stepping) = signature(flags.l1.eax);
        CpuidReport {
            vendor,
            family,
            model,
            stepping,
            brand,
            max_leaf,
            max_ext_leaf,
            initial_apic_id: flags.l1.ebx >> 24,
            x2apic_id,
            features,
            phys_addr_bits,
            virt_addr_bits,
            xen: collect_xen(cpuid),
        }
    }

    /// True if the named feature (one of [`FEATURE_NAMES`]) is set.
    pub fn has(&self, feature: &str) -> bool {
        self.features.contains(&feature)
    }
}

fn collect_xen(cpuid: &dyn Fn(u32, u32) -> CpuidResult) -> Option<XenCpuid> {
    let x = find_xen(cpuid)?;
    let leaves_beyond_base = x.max_leaf.saturating_sub(x.base);
    let tsc_mode = if leaves_beyond_base >= 3 {
        cpuid(x.base.wrapping_add(3), 0).ebx
    } else {
        0
    };
    let (flags, vcpu_id, domid) = hvm_leaf(cpuid, &x).unwrap_or((0, None, None));
    let hvm_flags = HVM_FLAG_NAMES
        .iter()
        .enumerate()
        .filter(|&(bit, _)| flags & (1u32 << bit) != 0)
        .map(|(_, &name)| name)
        .collect();
    Some(XenCpuid {
        base: x.base,
        major: x.major,
        minor: x.minor,
        hypercall_msr: x.hypercall_msr,
        tsc_mode,
        tsc_khz: x.tsc_khz.unwrap_or(0),
        tsc_emulated: x.tsc_emulated,
        hvm_flags,
        vcpu_id,
        domid,
    })
}

fn field<T: PartialEq + Display>(out: &mut Vec<String>, name: &str, a: T, b: T) {
    if a != b {
        out.push(format!("{name}: {a} vs {b}"));
    }
}

fn hex_field(out: &mut Vec<String>, name: &str, a: u32, b: u32) {
    if a != b {
        out.push(format!("{name}: {a:#x} vs {b:#x}"));
    }
}

/// Names in `all` set in exactly one of `a` and `b`, as "`kind` name: present vs absent".
fn flag_differences(out: &mut Vec<String>, kind: &str, all: &[&str], a: &[&str], b: &[&str]) {
    for name in all {
        let (in_a, in_b) = (a.contains(name), b.contains(name));
        if in_a != in_b {
            let word = |set: bool| if set { "present" } else { "absent" };
            out.push(format!("{kind} {name}: {} vs {}", word(in_a), word(in_b)));
        }
    }
}

fn opt<T: Display>(v: Option<T>) -> String {
    match v {
        Some(v) => format!("{v}"),
        None => String::from("none"),
    }
}

/// What differs between two vCPUs' reports that should not: everything except the APIC ids
/// (`initial_apic_id`, `x2apic_id`) and Xen's `vcpu_id`. One string per difference, each
/// "`field`: `a's value` vs `b's value`"; empty when the two agree.
pub fn differences(a: &CpuidReport, b: &CpuidReport) -> Vec<String> {
    let mut d = Vec::new();
    if a.vendor != b.vendor {
        d.push(format!("vendor: {:?} vs {:?}", a.vendor, b.vendor));
    }
    field(&mut d, "family", a.family, b.family);
    field(&mut d, "model", a.model, b.model);
    field(&mut d, "stepping", a.stepping, b.stepping);
    if a.brand != b.brand {
        d.push(format!("brand: {:?} vs {:?}", a.brand, b.brand));
    }
    hex_field(&mut d, "max_leaf", a.max_leaf, b.max_leaf);
    hex_field(&mut d, "max_ext_leaf", a.max_ext_leaf, b.max_ext_leaf);
    // Flags not in the table cannot be in a collected report, but a hand-made one may hold
    // anything: compare those too.
    flag_differences(&mut d, "feature", &FEATURE_NAMES, &a.features, &b.features);
    let extra: Vec<&str> = a
        .features
        .iter()
        .chain(&b.features)
        .copied()
        .filter(|n| !FEATURE_NAMES.contains(n))
        .collect();
    flag_differences(&mut d, "feature", &dedup(extra), &a.features, &b.features);
    field(&mut d, "phys_addr_bits", a.phys_addr_bits, b.phys_addr_bits);
    field(&mut d, "virt_addr_bits", a.virt_addr_bits, b.virt_addr_bits);
    match (&a.xen, &b.xen) {
        (None, None) => {}
        (Some(_), None) => d.push(String::from("Xen leaves: present vs absent")),
        (None, Some(_)) => d.push(String::from("Xen leaves: absent vs present")),
        (Some(x), Some(y)) => {
            hex_field(&mut d, "Xen base", x.base, y.base);
            if (x.major, x.minor) != (y.major, y.minor) {
                d.push(format!(
                    "Xen version: {}.{} vs {}.{}",
                    x.major, x.minor, y.major, y.minor
                ));
            }
            hex_field(
                &mut d,
                "Xen hypercall_msr",
                x.hypercall_msr,
                y.hypercall_msr,
            );
            field(&mut d, "Xen tsc_mode", x.tsc_mode, y.tsc_mode);
            field(&mut d, "Xen tsc_khz", x.tsc_khz, y.tsc_khz);
            field(&mut d, "Xen tsc_emulated", x.tsc_emulated, y.tsc_emulated);
            flag_differences(
                &mut d,
                "Xen HVM flag",
                &HVM_FLAG_NAMES,
                &x.hvm_flags,
                &y.hvm_flags,
            );
            let extra: Vec<&str> = x
                .hvm_flags
                .iter()
                .chain(&y.hvm_flags)
                .copied()
                .filter(|n| !HVM_FLAG_NAMES.contains(n))
                .collect();
            flag_differences(
                &mut d,
                "Xen HVM flag",
                &dedup(extra),
                &x.hvm_flags,
                &y.hvm_flags,
            );
            field(&mut d, "Xen domid", opt(x.domid), opt(y.domid));
        }
    }
    d
}

fn dedup(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
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
}
