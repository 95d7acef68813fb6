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
    lean::sort_dedup(&mut v);
    v
}

#[cfg(test)]
mod tests;
