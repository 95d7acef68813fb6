//! dom0's boot report: what Xen, the firmware and the machine gave dom0 and how its boot went,
//! as one line of JSON (for the test bench and other tools) and as text (for people).
//!
//! The JSON document is one line, ASCII only, keys in snake_case, addresses and sizes as
//! numbers. Its top-level keys (in order): `report_version` (1), `dom0_version`, `under_xen`,
//! `ready`, `xen` (object or null), `start_info` (object or null), `cmdline`, `options`
//! (object name → value), `memmap_source`, `memory_map` (array of
//! `{"addr","size","end","type","type_raw"}`), `ram_bytes`, `heap` `{"size","used","peak"}`,
//! `vcpus`, `tsc_khz`, `phases` (array of `{"name","at_ns"}`), `timer` (object or null),
//! `acpi` (object or null, see [`AcpiSummary`]), `cpu` (object or null, see [`CpuSummary`]),
//! `vcpu_list` (array, see [`VcpuStatus`]), `smp` (object or null, see [`SmpSummary`]), `mtrr`
//! (object or null, see [`MtrrSummary`]), `pci` (object or null, see [`PciSummary`]),
//! `modules`, `warnings`, `errors`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod json;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

pub use json::{JsonError, JsonWriter};
use xen::memmap::MemRegion;

/// The version of the JSON layout; bumped when a key changes meaning or goes away.
pub const REPORT_VERSION: u64 = 1;

/// What Xen said about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XenInfo {
    pub major: u32,
    pub minor: u32,
    /// `XENVER_extraversion`, e.g. ".0" or "-unstable".
    pub extra: String,
    /// Names of the `XENVER_get_features` bits that are set.
    pub features: Vec<String>,
    /// `XENVER_capabilities`, e.g. "xen-3.0-x86_64 hvm-3.0-x86_32 ...".
    pub caps: String,
    /// "vmcall" (Intel) or "vmmcall" (AMD), as the hypercall page uses.
    pub hypercall_insn: String,
}

/// The start_info header fields worth reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartInfoSummary {
    pub paddr: u64,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub rsdp: u64,
}

/// dom0's heap, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeapStats {
    pub size: u64,
    pub used: u64,
    pub peak: u64,
}

/// A boot milestone, `at_ns` after dom0's entry point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Phase {
    pub name: String,
    pub at_ns: u64,
}

/// The timer self-check: a one-shot timer asked for `requested_ns` from now fired after
/// `delivered_ns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimerCheck {
    pub requested_ns: u64,
    pub delivered_ns: u64,
    /// How it was armed and delivered, e.g. "VCPUOP_set_singleshot_timer + VIRQ_TIMER".
    pub via: String,
}

/// One start_info module and what dom0 made of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSummary {
    pub index: u32,
    pub paddr: u64,
    pub size: u64,
    pub cmdline: String,
    /// What it was recognised as, e.g. "bundle", "unknown".
    pub kind: String,
    /// What happened to it, e.g. "ok", "ignored", or an error.
    pub status: String,
}

/// One DomU dom0 built from the boot bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomuSummary {
    pub name: String,
    /// 0 if it was never created.
    pub domid: u64,
    pub memory_mib: u64,
    pub vcpus: u64,
    /// "running", "poweroff", "reboot", "crash", ... or "build failed".
    pub state: String,
    /// Build steps and their durations (ns).
    pub build_steps: Vec<(String, u64)>,
    /// ns from dom0's entry: build start, unpause, first console line, init's first line, stop.
    pub built_at_ns: u64,
    pub started_at_ns: u64,
    pub first_console_ns: Option<u64>,
    pub init_ns: Option<u64>,
    pub stopped_at_ns: Option<u64>,
    pub console_lines: u64,
    pub console_bytes: u64,
    /// The first and last lines of its console.
    pub console: Vec<String>,
    pub xenstore_requests: u64,
    /// Nodes the DomU wrote, as "path=value" (its own tree after it stopped).
    pub xenstore_written: Vec<String>,
    /// Bytes of dom0's heap the xenstore service charges to the DomU now (its nodes,
    /// watches, transactions and queued messages); 0 once it has been released.
    pub xenstore_bytes: u64,
    /// The most bytes it was charged at once.
    pub xenstore_peak_bytes: u64,
    /// Its xenstore requests refused for quota, memory, permission or size reasons.
    pub xenstore_refused: u64,
    /// Times its console was throttled: rate-limit periods (100 ms) in which it used its
    /// whole allowance and further output was left in its ring (times, not bytes).
    pub console_throttled: u64,
    /// One line per class of refusal with its count, e.g. "xenstore: ENOMEM memory quota x
    /// 12" (at most 16 lines).
    pub refusals: Vec<String>,
    pub restarts: u64,
    /// Foreign-mapped pages while building and heap bytes dom0 holds for it.
    pub pages_copied: u64,
    pub dom0_heap_bytes: u64,
    pub errors: Vec<String>,
}

/// The toolstack's view: the domctl version found, and the DomUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolstackSummary {
    pub domctl_version: u64,
    pub domctl_probes: u64,
    /// dom0 frames used for foreign mappings (first, count).
    pub window: (u64, u64),
    /// The xenstore memory limit of each DomU (`xenstore-quota=`), in bytes.
    pub xenstore_limit_bytes: u64,
    /// What all DomUs together may make the xenstore service hold, in bytes.
    pub xenstore_global_limit_bytes: u64,
    pub domus: Vec<DomuSummary>,
    /// Destroyed domains still mapped or otherwise not fully gone, as Xen reports them.
    pub leaks: Vec<String>,
}

impl ToolstackSummary {
    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.u64_field("domctl_version", self.domctl_version)?;
        j.u64_field("domctl_probes", self.domctl_probes)?;
        j.u64_field("window_gfn", self.window.0)?;
        j.u64_field("window_pages", self.window.1)?;
        j.u64_field("xenstore_limit_bytes", self.xenstore_limit_bytes)?;
        j.u64_field(
            "xenstore_global_limit_bytes",
            self.xenstore_global_limit_bytes,
        )?;
        j.key("domus")?;
        j.begin_array()?;
        for d in &self.domus {
            j.begin_object()?;
            j.str_field("name", &d.name)?;
            j.u64_field("domid", d.domid)?;
            j.u64_field("memory_mib", d.memory_mib)?;
            j.u64_field("vcpus", d.vcpus)?;
            j.str_field("state", &d.state)?;
            j.key("build_steps")?;
            j.begin_object()?;
            for (k, v) in &d.build_steps {
                j.u64_field(k, *v)?;
            }
            j.end_object()?;
            j.u64_field("built_at_ns", d.built_at_ns)?;
            j.u64_field("started_at_ns", d.started_at_ns)?;
            for (k, v) in [
                ("first_console_ns", d.first_console_ns),
                ("init_ns", d.init_ns),
                ("stopped_at_ns", d.stopped_at_ns),
            ] {
                j.key(k)?;
                match v {
                    Some(v) => j.u64(v)?,
                    None => j.null()?,
                }
            }
            j.u64_field("console_lines", d.console_lines)?;
            j.u64_field("console_bytes", d.console_bytes)?;
            str_array_field(j, "console", &d.console)?;
            j.u64_field("xenstore_requests", d.xenstore_requests)?;
            str_array_field(j, "xenstore_written", &d.xenstore_written)?;
            j.u64_field("xenstore_bytes", d.xenstore_bytes)?;
            j.u64_field("xenstore_peak_bytes", d.xenstore_peak_bytes)?;
            j.u64_field("xenstore_refused", d.xenstore_refused)?;
            j.u64_field("console_throttled", d.console_throttled)?;
            str_array_field(j, "refusals", &d.refusals)?;
            j.u64_field("restarts", d.restarts)?;
            j.u64_field("pages_copied", d.pages_copied)?;
            j.u64_field("dom0_heap_bytes", d.dom0_heap_bytes)?;
            str_array_field(j, "errors", &d.errors)?;
            j.end_object()?;
        }
        j.end_array()?;
        str_array_field(j, "leaks", &self.leaks)?;
        j.end_object()
    }
}

/// One table the root table (XSDT or RSDT) lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcpiTable {
    /// The 4-byte signature as text (non-printable bytes escaped by whoever fills it in).
    pub signature: String,
    pub paddr: u64,
    /// The header's length field.
    pub length: u32,
    /// The header's revision byte.
    pub revision: u8,
    /// Checksum, length, signature and revision were all right (problems go to the summary's
    /// `problems`, prefixed with the signature and address).
    pub ok: bool,
}

/// The MADT for dom0's own container: built from the firmware's MADT and the vCPUs dom0 runs,
/// compared with the one dom0 was given, and put in place when they differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMadt {
    /// vCPUs in the container MADT.
    pub vcpus: u32,
    pub apic_ids: Vec<u32>,
    /// What it was compared with: "Xen's crafted MADT" or "the firmware MADT".
    pub compared_with: String,
    /// Where the firmware's own RSDP was found (0 if not).
    pub native_rsdp: u64,
    /// Every difference, entry by entry (empty: identical).
    pub differences: Vec<String>,
    /// dom0 wrote new MADT/XSDT/RSDP into its memory and uses them from now on.
    pub rewritten: bool,
    /// Addresses of the rewritten RSDP and MADT (0 if not rewritten).
    pub rsdp: u64,
    pub madt: u64,
}

/// What dom0 found in ACPI: the RSDP, the root table's list, and the MADT's CPUs and
/// interrupt controllers. In JSON: `{"rsdp","revision","oem_id","root","tables":[{"signature",
/// "paddr","length"}],"madt_cpus","madt_apic_ids","ioapics","overrides","problems"}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AcpiSummary {
    /// Physical address of the RSDP dom0 used (under Xen: `start_info.rsdp_paddr`).
    pub rsdp: u64,
    /// The RSDP's revision (Xen's crafted RSDP: 2).
    pub revision: u8,
    pub oem_id: String,
    /// "XSDT" or "RSDT"; empty if no root table was read.
    pub root: String,
    /// The tables the root table lists, in its order.
    pub tables: Vec<AcpiTable>,
    /// Enabled CPUs in the MADT (Local APIC and x2APIC entries).
    pub madt_cpus: u32,
    /// Their APIC ids, in table order.
    pub madt_apic_ids: Vec<u32>,
    /// IO APIC entries in the MADT.
    pub ioapics: u32,
    /// Interrupt Source Override entries in the MADT.
    pub overrides: u32,
    /// Signatures of the tables that were sound and used (including DSDT/FACS the FADT names).
    pub present: Vec<String>,
    /// FADT revision and the flags that matter to dom0 (e.g. "hw_reduced", "no_vga").
    pub fadt: Vec<String>,
    /// MCFG entries as text: "segment 0 buses 0x00-0xff at 0xb0000000".
    pub mcfg: Vec<String>,
    /// The container MADT check (see [`ContainerMadt`]).
    pub container: Option<ContainerMadt>,
    /// What was wrong (bad tables, odd entries), each naming the table and offset.
    pub problems: Vec<String>,
}

/// What vCPU 0's CPUID says (dom0 fills it from `cpu::CpuidReport`). In JSON: `{"vendor",
/// "family","model","stepping","brand","features","phys_addr_bits","xen_tsc_mode",
/// "xen_tsc_emulated","xen_hvm_flags"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSummary {
    /// e.g. "AuthenticAMD".
    pub vendor: String,
    /// Display family, model and stepping (extended fields applied).
    pub family: u32,
    pub model: u32,
    pub stepping: u32,
    /// The brand string; empty if the CPU has none.
    pub brand: String,
    /// Names of the feature flags that are set, e.g. "sse2", "x2apic", "hypervisor".
    pub features: Vec<String>,
    /// MAXPHYADDR.
    pub phys_addr_bits: u8,
    /// Xen's `base+3` EBX (0 when not under Xen).
    pub xen_tsc_mode: u32,
    /// Xen emulates RDTSC for dom0.
    pub xen_tsc_emulated: bool,
    /// Names of Xen's `base+4` EAX flags that are set, e.g. "x2apic_virt".
    pub xen_hvm_flags: Vec<String>,
}

/// One vCPU and how its bring-up went. In JSON: `{"id","apic_id","up","online_ns",
/// "work_done","cpuid_differences","mtrr_problems"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VcpuStatus {
    /// Xen's vCPU id.
    pub id: u32,
    /// Its (initial) APIC id; Xen gives vCPU n APIC id 2n.
    pub apic_id: u32,
    /// It came online.
    pub up: bool,
    /// When it came online, since dom0's entry (0 for vCPU 0 or when not up).
    pub online_ns: u64,
    /// Units of test work it completed (dom0 decides what a unit is).
    pub work_done: u64,
    /// How its CPUID differs from vCPU 0's, one item per field.
    pub cpuid_differences: Vec<String>,
    /// What is wrong with its MTRRs (its own checks and disagreements with vCPU 0).
    pub mtrr_problems: Vec<String>,
}

/// How starting the other vCPUs went. In JSON: `{"started","failed",
/// "first_up_to_last_online_ns","ipi_round_trip_ns"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmpSummary {
    /// vCPUs started besides vCPU 0.
    pub started: u32,
    /// What went wrong, one item per vCPU that did not come up (or other failure).
    pub failed: Vec<String>,
    /// From the first start request to the last vCPU online.
    pub first_up_to_last_online_ns: u64,
    /// One IPI to another vCPU and its answer back; 0 if not measured.
    pub ipi_round_trip_ns: u64,
}

/// What the MTRRs say (vCPU 0's, plus whether all vCPUs agree). In JSON: `{"enabled",
/// "default_type","variable","fixed_enabled","problems","consistent","corrected"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MtrrSummary {
    /// `MTRRdefType.E`.
    pub enabled: bool,
    /// "WB", "UC", ...
    pub default_type: String,
    /// The valid variable ranges, e.g. "0x80000000-0x100000000 UC".
    pub variable: Vec<String>,
    pub fixed_enabled: bool,
    /// Problems with vCPU 0's MTRRs (RAM not WB, MMIO cached, overlaps, ...).
    pub problems: Vec<String>,
    /// Every vCPU had the same MTRRs as vCPU 0 when checked.
    pub consistent: bool,
    /// dom0 rewrote the differing vCPUs' MTRRs to match vCPU 0's.
    pub corrected: bool,
}

/// PCI: how config space was reached, what enumeration found, and what Xen said to each
/// `PHYSDEVOP_pci_device_add`. Build it with [`PciSummary::from_topology`].
///
/// JSON: `{"source","segments","enumerate_ns","mmcfg_reserved","functions","problems","tree"}`;
/// each function `{"sbdf","vendor","device","class","header_type","kind","parent","bars",
/// "caps","ext_caps","xen_add","problems"}`, each BAR `{"index","kind","prefetchable",
/// "address","size"}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciSummary {
    /// "ECAM (MCFG)" or "CF8/CFC".
    pub source: String,
    /// One per segment entry scanned: "0000 [bus 00-ff] ECAM".
    pub segments: Vec<String>,
    /// In enumeration order (bridges before what is behind them, PFs before their VFs).
    pub functions: Vec<PciFunction>,
    /// One per MCFG region reported with `PHYSDEVOP_pci_mmcfg_reserved`, with its result:
    /// "0000 [bus 00-ff] at 0xb0000000: ok".
    pub mmcfg_reserved: Vec<String>,
    /// The host bridge windows BARs were checked against, and how they were found.
    pub windows: Vec<String>,
    /// `pci-bars=`: the mode, then every BAR move and bridge window write with its result
    /// ("0000:01:00.0 BAR4 0xfd200000 -> 0xfe000000: ok").
    pub bar_moves: Vec<String>,
    /// `pci-renumber=`: every Xen remove, bus register write and Xen re-add, with its result.
    pub renumber: Vec<String>,
    /// Problems not tied to one function (garbage functions, segment trouble, limits).
    pub problems: Vec<String>,
    /// The hierarchy drawn as `lspci -tv` does (lines end in '\n').
    pub tree: String,
    /// Time the enumeration took.
    pub enumerate_ns: u64,
}

/// One PCI function.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciFunction {
    /// "ssss:bb:dd.f".
    pub sbdf: String,
    pub vendor: u16,
    pub device: u16,
    /// Base class << 16 | sub-class << 8 | programming interface.
    pub class: u32,
    /// The raw header type register (bit 7: multi-function).
    pub header_type: u8,
    /// "endpoint", "bridge [01-02]", "VF of 0000:01:00.0", "CardBus bridge" or
    /// "unknown header type 0x7f".
    pub kind: String,
    /// The bridge above ("ssss:bb:dd.f"); `None` on a root bus.
    pub parent: Option<String>,
    /// BARs, then the expansion ROM (kind "rom").
    pub bars: Vec<PciBar>,
    /// Capability names, some with a detail: "PCI Express (root port)", "MSI-X (table size 3)".
    pub caps: Vec<String>,
    /// Extended capability names: "Advanced Error Reporting", "SR-IOV (4 of 8 VFs)".
    pub ext_caps: Vec<String>,
    /// What `PHYSDEVOP_pci_device_add` returned: "ok", "-ENODEV (19)"..., or "not reported".
    pub xen_add: String,
    /// A register read through the device's BAR that proves it answers there (see
    /// `drivers::pcicheck`), with "ok"/"FAILED"; empty when dom0 has no check for the device.
    pub device_check: String,
    /// Everything wrong with it, each naming the function and the register offset.
    pub problems: Vec<String>,
}

/// One BAR of a [`PciFunction`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PciBar {
    /// 0..=5, 6 for the expansion ROM.
    pub index: u8,
    /// "mem32", "mem64", "io" or "rom".
    pub kind: String,
    pub prefetchable: bool,
    pub address: u64,
    /// 0 if not sized.
    pub size: u64,
}

/// Everything dom0 reports about its boot. All owned, so it can be filled step by step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BootReport {
    pub dom0_version: String,
    pub under_xen: bool,
    pub xen: Option<XenInfo>,
    pub start_info: Option<StartInfoSummary>,
    pub cmdline: String,
    /// Options that took effect (name, value).
    pub options: Vec<(String, String)>,
    pub memory_map: Vec<MemRegion>,
    /// "start_info" or "XENMEM_memory_map".
    pub memmap_source: String,
    pub ram_bytes: u64,
    pub heap: HeapStats,
    pub vcpus: u32,
    /// Milestones in boot order.
    pub phases: Vec<Phase>,
    pub timer: Option<TimerCheck>,
    /// `None` if ACPI was not looked at (no RSDP, or not reached).
    pub acpi: Option<AcpiSummary>,
    /// `None` if CPUID was not summarised.
    pub cpu: Option<CpuSummary>,
    /// Every vCPU dom0 knows of, vCPU 0 first; empty if bring-up was not reached.
    pub vcpu_list: Vec<VcpuStatus>,
    /// `None` if no other vCPU was started.
    pub smp: Option<SmpSummary>,
    /// `None` if the MTRRs were not read.
    pub mtrr: Option<MtrrSummary>,
    /// `None` if PCI was not enumerated.
    pub pci: Option<PciSummary>,
    /// Self-tests of Xen interfaces the toolstack builds on (interdomain event channel loopback,
    /// grant table mapping), one line each with its result.
    pub selftests: Vec<String>,
    pub modules: Vec<ModuleSummary>,
    /// DomUs built from the boot bundle (None: no bundle with domains).
    pub toolstack: Option<ToolstackSummary>,
    /// What the boot watchdog saw: phases that made no progress for over a second, where, and
    /// Xen's view of the boot vCPU then (empty when the boot never stalled).
    pub watchdog: Vec<String>,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    /// dom0 reached the point where it serves (or would serve) its purpose.
    pub ready: bool,
    /// 0 if unknown.
    pub tsc_khz: u64,
}

impl BootReport {
    /// The report as one line of JSON (no newline at the end).
    pub fn write_json(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let mut j = JsonWriter::new(w);
        self.json(&mut j)?;
        j.finish()?;
        Ok(())
    }

    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.u64_field("report_version", REPORT_VERSION)?;
        j.str_field("dom0_version", &self.dom0_version)?;
        j.bool_field("under_xen", self.under_xen)?;
        j.bool_field("ready", self.ready)?;

        j.key("xen")?;
        match &self.xen {
            None => j.null()?,
            Some(x) => {
                j.begin_object()?;
                j.u64_field("major", x.major.into())?;
                j.u64_field("minor", x.minor.into())?;
                j.str_field("extra", &x.extra)?;
                j.key("version")?;
                j.str(&XenVersion(x).to_compact())?;
                j.key("features")?;
                j.begin_array()?;
                for f in &x.features {
                    j.str(f)?;
                }
                j.end_array()?;
                j.str_field("caps", &x.caps)?;
                j.str_field("hypercall_insn", &x.hypercall_insn)?;
                j.end_object()?;
            }
        }

        j.key("start_info")?;
        match &self.start_info {
            None => j.null()?,
            Some(s) => {
                j.begin_object()?;
                j.u64_field("paddr", s.paddr)?;
                j.u64_field("version", s.version.into())?;
                j.u64_field("flags", s.flags.into())?;
                j.u64_field("nr_modules", s.nr_modules.into())?;
                j.u64_field("rsdp", s.rsdp)?;
                j.end_object()?;
            }
        }

        j.str_field("cmdline", &self.cmdline)?;
        j.key("options")?;
        j.begin_object()?;
        for (name, value) in &self.options {
            j.str_field(name, value)?;
        }
        j.end_object()?;

        j.str_field("memmap_source", &self.memmap_source)?;
        j.key("memory_map")?;
        j.begin_array()?;
        for r in &self.memory_map {
            j.begin_object()?;
            j.u64_field("addr", r.addr)?;
            j.u64_field("size", r.size)?;
            j.u64_field("end", r.end())?;
            j.str_field("type", r.kind.name())?;
            j.u64_field("type_raw", r.kind.raw().into())?;
            j.end_object()?;
        }
        j.end_array()?;
        j.u64_field("ram_bytes", self.ram_bytes)?;

        j.key("heap")?;
        j.begin_object()?;
        j.u64_field("size", self.heap.size)?;
        j.u64_field("used", self.heap.used)?;
        j.u64_field("peak", self.heap.peak)?;
        j.end_object()?;
        j.u64_field("vcpus", self.vcpus.into())?;
        j.u64_field("tsc_khz", self.tsc_khz)?;

        j.key("phases")?;
        j.begin_array()?;
        for p in &self.phases {
            j.begin_object()?;
            j.str_field("name", &p.name)?;
            j.u64_field("at_ns", p.at_ns)?;
            j.end_object()?;
        }
        j.end_array()?;

        j.key("timer")?;
        match &self.timer {
            None => j.null()?,
            Some(t) => {
                j.begin_object()?;
                j.u64_field("requested_ns", t.requested_ns)?;
                j.u64_field("delivered_ns", t.delivered_ns)?;
                j.str_field("via", &t.via)?;
                j.end_object()?;
            }
        }

        j.key("acpi")?;
        match &self.acpi {
            None => j.null()?,
            Some(a) => a.json(j)?,
        }

        j.key("cpu")?;
        match &self.cpu {
            None => j.null()?,
            Some(c) => c.json(j)?,
        }
        j.key("vcpu_list")?;
        j.begin_array()?;
        for v in &self.vcpu_list {
            v.json(j)?;
        }
        j.end_array()?;
        j.key("smp")?;
        match &self.smp {
            None => j.null()?,
            Some(s) => s.json(j)?,
        }
        j.key("mtrr")?;
        match &self.mtrr {
            None => j.null()?,
            Some(m) => m.json(j)?,
        }
        j.key("pci")?;
        match &self.pci {
            None => j.null()?,
            Some(p) => p.json(j)?,
        }
        str_array_field(j, "selftests", &self.selftests)?;

        j.key("modules")?;
        j.begin_array()?;
        for m in &self.modules {
            j.begin_object()?;
            j.u64_field("index", m.index.into())?;
            j.u64_field("paddr", m.paddr)?;
            j.u64_field("size", m.size)?;
            j.str_field("cmdline", &m.cmdline)?;
            j.str_field("kind", &m.kind)?;
            j.str_field("status", &m.status)?;
            j.end_object()?;
        }
        j.end_array()?;
        j.key("toolstack")?;
        match &self.toolstack {
            None => j.null()?,
            Some(t) => t.json(j)?,
        }

        for (name, list) in [
            ("watchdog", &self.watchdog),
            ("warnings", &self.warnings),
            ("errors", &self.errors),
        ] {
            j.key(name)?;
            j.begin_array()?;
            for s in list {
                j.str(s)?;
            }
            j.end_array()?;
        }
        j.end_object()
    }

    /// The report as text for people, one item per line, each line ending in '\n'. Strings
    /// from outside (cmdlines, Xen's strings, messages) have control characters escaped so
    /// they cannot break the layout.
    pub fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(w, "dom0 boot report: {}", Clean(&self.dom0_version))?;
        match (&self.xen, self.under_xen) {
            (Some(x), _) => writeln!(w, ", under Xen {}", XenVersion(x))?,
            (None, true) => writeln!(w, ", under Xen")?,
            (None, false) => writeln!(w, ", not under Xen")?,
        }
        if let Some(x) = &self.xen {
            writeln!(
                w,
                "Xen: {}, caps \"{}\", hypercall instruction {}",
                XenVersion(x),
                Clean(&x.caps),
                Clean(&x.hypercall_insn)
            )?;
            w.write_str("Xen features:")?;
            if x.features.is_empty() {
                w.write_str(" (none)")?;
            }
            for f in &x.features {
                write!(w, " {}", Clean(f))?;
            }
            w.write_char('\n')?;
        }
        match &self.start_info {
            None => writeln!(w, "start_info: none")?,
            Some(s) => {
                write!(
                    w,
                    "start_info: at {:#x}, version {}, flags {:#x}",
                    s.paddr, s.version, s.flags
                )?;
                let names = [(1, "privileged"), (2, "initdomain")];
                let mut sep = " (";
                for (bit, name) in names {
                    if s.flags & bit != 0 {
                        write!(w, "{sep}{name}")?;
                        sep = ", ";
                    }
                }
                if sep == ", " {
                    w.write_char(')')?;
                }
                let plural = if s.nr_modules == 1 { "" } else { "s" };
                write!(w, ", {} module{plural}, rsdp ", s.nr_modules)?;
                if s.rsdp == 0 {
                    writeln!(w, "none")?;
                } else {
                    writeln!(w, "{:#x}", s.rsdp)?;
                }
            }
        }
        writeln!(w, "cmdline: \"{}\"", Clean(&self.cmdline))?;
        w.write_str("options:")?;
        if self.options.is_empty() {
            w.write_str(" (defaults)")?;
        }
        for (name, value) in &self.options {
            write!(w, " {}={}", Clean(name), Clean(value))?;
        }
        w.write_char('\n')?;

        let source = if self.memmap_source.is_empty() {
            "unknown source"
        } else {
            &self.memmap_source
        };
        let n = self.memory_map.len();
        let plural = if n == 1 { "y" } else { "ies" };
        writeln!(w, "memory map ({}, {n} entr{plural}):", Clean(source))?;
        for r in &self.memory_map {
            // Inclusive end, as Xen and Linux print e820 maps.
            let last = r.end().saturating_sub(u64::from(r.size != 0));
            writeln!(
                w,
                "  [mem {:#018x}-{:#018x}] {:>10}  {}",
                r.addr,
                last,
                Size(r.size),
                r.kind
            )?;
        }
        writeln!(
            w,
            "RAM: {} ({} bytes)",
            Size(self.ram_bytes),
            self.ram_bytes
        )?;
        // With a vCPU list, the vCPU section after ACPI says it all.
        if self.vcpu_list.is_empty() {
            writeln!(w, "vCPUs: {}", self.vcpus)?;
        }
        if self.tsc_khz == 0 {
            writeln!(w, "TSC: unknown")?;
        } else {
            writeln!(w, "TSC: {} kHz", self.tsc_khz)?;
        }
        writeln!(
            w,
            "heap: {} used of {} (peak {})",
            Size(self.heap.used),
            Size(self.heap.size),
            Size(self.heap.peak)
        )?;

        writeln!(w, "timeline (ms since entry):")?;
        let mut prev = 0u64;
        for p in &self.phases {
            let delta = p.at_ns.saturating_sub(prev);
            writeln!(
                w,
                "  {:>12}  (+{})  {}",
                Ms(p.at_ns),
                Ms(delta),
                Clean(&p.name)
            )?;
            prev = p.at_ns;
        }
        if self.phases.is_empty() {
            writeln!(w, "  (none)")?;
        }
        match &self.timer {
            None => writeln!(w, "timer: not checked")?,
            Some(t) => writeln!(
                w,
                "timer: requested {} ms, delivered after {} ms via {}",
                Ms(t.requested_ns),
                Ms(t.delivered_ns),
                Clean(&t.via)
            )?,
        }

        match &self.acpi {
            None => writeln!(w, "ACPI: none")?,
            Some(a) => a.write_text(w)?,
        }
        if let Some(c) = &self.cpu {
            c.write_text(w, self.under_xen)?;
        }
        self.write_vcpus_text(w)?;
        if let Some(s) = &self.smp {
            s.write_text(w)?;
        }
        if let Some(m) = &self.mtrr {
            m.write_text(w)?;
        }
        match &self.pci {
            None => writeln!(w, "PCI: not enumerated")?,
            Some(p) => p.write_text(w)?,
        }

        for t in &self.selftests {
            writeln!(w, "self-test: {}", Clean(t))?;
        }
        writeln!(w, "modules ({}):", self.modules.len())?;
        for m in &self.modules {
            writeln!(
                w,
                "  #{} [{:#x}, +{:#x}) {}  kind {}  status {}  cmdline \"{}\"",
                m.index,
                m.paddr,
                m.size,
                Size(m.size),
                Clean(&m.kind),
                Clean(&m.status),
                Clean(&m.cmdline)
            )?;
        }
        if let Some(t) = &self.toolstack {
            writeln!(
                w,
                "toolstack: domctl interface {:#x} ({} probe(s)), {} DomU(s), xenstore limit {} KiB per DomU ({} KiB for all)",
                t.domctl_version,
                t.domctl_probes,
                t.domus.len(),
                t.xenstore_limit_bytes / 1024,
                t.xenstore_global_limit_bytes / 1024
            )?;
            for d in &t.domus {
                writeln!(
                    w,
                    "  {} (domain {}): {}, {} MiB, {} vCPU(s), {} console lines, {} xenstore requests",
                    Clean(&d.name),
                    d.domid,
                    Clean(&d.state),
                    d.memory_mib,
                    d.vcpus,
                    d.console_lines,
                    d.xenstore_requests
                )?;
                writeln!(
                    w,
                    "    xenstore: {} bytes held, peak {}, {} request(s) refused; console throttled {} time(s)",
                    d.xenstore_bytes,
                    d.xenstore_peak_bytes,
                    d.xenstore_refused,
                    d.console_throttled
                )?;
                for r in &d.refusals {
                    writeln!(w, "    - {}", Clean(r))?;
                }
            }
        }
        if !self.watchdog.is_empty() {
            writeln!(w, "watchdog ({})", self.watchdog.len())?;
            for s in &self.watchdog {
                writeln!(w, "  - {}", Clean(s))?;
            }
        }
        for (title, list) in [("warnings", &self.warnings), ("errors", &self.errors)] {
            write!(w, "{title} ({})", list.len())?;
            if list.is_empty() {
                w.write_str(": none")?;
            }
            w.write_char('\n')?;
            for s in list {
                writeln!(w, "  - {}", Clean(s))?;
            }
        }
        writeln!(
            w,
            "result: {}",
            if self.ready { "READY" } else { "NOT READY" }
        )
    }
}

impl AcpiSummary {
    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.u64_field("rsdp", self.rsdp)?;
        j.u64_field("revision", self.revision.into())?;
        j.str_field("oem_id", &self.oem_id)?;
        j.str_field("root", &self.root)?;
        j.key("tables")?;
        j.begin_array()?;
        for t in &self.tables {
            j.begin_object()?;
            j.str_field("signature", &t.signature)?;
            j.u64_field("paddr", t.paddr)?;
            j.u64_field("length", t.length.into())?;
            j.u64_field("revision", t.revision.into())?;
            j.bool_field("ok", t.ok)?;
            j.end_object()?;
        }
        j.end_array()?;
        j.u64_field("madt_cpus", self.madt_cpus.into())?;
        j.key("madt_apic_ids")?;
        j.begin_array()?;
        for &id in &self.madt_apic_ids {
            j.u64(id.into())?;
        }
        j.end_array()?;
        j.u64_field("ioapics", self.ioapics.into())?;
        j.u64_field("overrides", self.overrides.into())?;
        str_array_field(j, "present", &self.present)?;
        str_array_field(j, "fadt", &self.fadt)?;
        str_array_field(j, "mcfg", &self.mcfg)?;
        j.key("container")?;
        match &self.container {
            None => j.null()?,
            Some(c) => {
                j.begin_object()?;
                j.u64_field("vcpus", c.vcpus.into())?;
                j.key("apic_ids")?;
                j.begin_array()?;
                for &id in &c.apic_ids {
                    j.u64(id.into())?;
                }
                j.end_array()?;
                j.str_field("compared_with", &c.compared_with)?;
                j.u64_field("native_rsdp", c.native_rsdp)?;
                str_array_field(j, "differences", &c.differences)?;
                j.bool_field("rewritten", c.rewritten)?;
                j.u64_field("rsdp", c.rsdp)?;
                j.u64_field("madt", c.madt)?;
                j.end_object()?;
            }
        }
        j.key("problems")?;
        j.begin_array()?;
        for p in &self.problems {
            j.str(p)?;
        }
        j.end_array()?;
        j.end_object()
    }

    /// "ACPI: RSDP rev 2 at 0x..., OEM "...", XSDT with N tables: ...; MADT: ..." and the
    /// problems, one per line.
    fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(
            w,
            "ACPI: RSDP rev {} at {:#x}, OEM \"{}\", ",
            self.revision,
            self.rsdp,
            Clean(&self.oem_id)
        )?;
        if self.root.is_empty() {
            w.write_str("no root table")?;
        } else {
            let n = self.tables.len();
            let plural = if n == 1 { "" } else { "s" };
            write!(w, "{} with {n} table{plural}", Clean(&self.root))?;
            if n != 0 {
                w.write_char(':')?;
                for t in &self.tables {
                    write!(w, " {}", Clean(&t.signature))?;
                }
            }
        }
        if self.tables.iter().any(|t| t.signature == "APIC") {
            let plural = |n: u32| if n == 1 { "" } else { "s" };
            write!(
                w,
                "; MADT: {} CPU{}",
                self.madt_cpus,
                plural(self.madt_cpus)
            )?;
            if !self.madt_apic_ids.is_empty() {
                let ids = if self.madt_apic_ids.len() == 1 {
                    "id"
                } else {
                    "ids"
                };
                write!(w, " (APIC {ids}")?;
                for id in &self.madt_apic_ids {
                    write!(w, " {id}")?;
                }
                w.write_char(')')?;
            }
            write!(
                w,
                ", {} IO-APIC{}, {} override{}",
                self.ioapics,
                plural(self.ioapics),
                self.overrides,
                plural(self.overrides)
            )?;
        } else {
            w.write_str("; no MADT")?;
        }
        w.write_char('\n')?;
        if !self.fadt.is_empty() {
            w.write_str("ACPI FADT:")?;
            write_words(w, &self.fadt)?;
            w.write_char('\n')?;
        }
        for m in &self.mcfg {
            writeln!(w, "ACPI MCFG: {}", Clean(m))?;
        }
        if let Some(c) = &self.container {
            write!(
                w,
                "container MADT: {} vCPU{}, APIC ids",
                c.vcpus,
                if c.vcpus == 1 { "" } else { "s" }
            )?;
            for id in &c.apic_ids {
                write!(w, " {id}")?;
            }
            if c.differences.is_empty() {
                write!(w, "; identical to {}", Clean(&c.compared_with))?;
            } else {
                write!(
                    w,
                    "; {} difference(s) from {}",
                    c.differences.len(),
                    Clean(&c.compared_with)
                )?;
            }
            if c.rewritten {
                write!(
                    w,
                    "; rewritten: RSDP {:#x}, MADT {:#x} (in use)",
                    c.rsdp, c.madt
                )?;
            }
            w.write_char('\n')?;
            for d in &c.differences {
                writeln!(w, "  - {}", Clean(d))?;
            }
        }
        if !self.problems.is_empty() {
            writeln!(w, "ACPI problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(w, "  - {}", Clean(p))?;
            }
        }
        Ok(())
    }
}

/// `name` as a JSON array of strings.
fn str_array_field(j: &mut JsonWriter<'_>, name: &str, list: &[String]) -> Result<(), JsonError> {
    j.key(name)?;
    j.begin_array()?;
    for s in list {
        j.str(s)?;
    }
    j.end_array()
}

/// " a b c" (each cleaned), or " (none)".
fn write_words(w: &mut dyn fmt::Write, list: &[String]) -> fmt::Result {
    if list.is_empty() {
        return w.write_str(" (none)");
    }
    for s in list {
        write!(w, " {}", Clean(s))?;
    }
    Ok(())
}

impl CpuSummary {
    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.str_field("vendor", &self.vendor)?;
        j.u64_field("family", self.family.into())?;
        j.u64_field("model", self.model.into())?;
        j.u64_field("stepping", self.stepping.into())?;
        j.str_field("brand", &self.brand)?;
        str_array_field(j, "features", &self.features)?;
        j.u64_field("phys_addr_bits", self.phys_addr_bits.into())?;
        j.u64_field("xen_tsc_mode", self.xen_tsc_mode.into())?;
        j.bool_field("xen_tsc_emulated", self.xen_tsc_emulated)?;
        str_array_field(j, "xen_hvm_flags", &self.xen_hvm_flags)?;
        j.end_object()
    }

    /// "CPU: AuthenticAMD family 15 model 107 stepping 1 "brand", 40-bit physical
    /// addresses", the features, and (under Xen) Xen's TSC mode and HVM flags.
    fn write_text(&self, w: &mut dyn fmt::Write, under_xen: bool) -> fmt::Result {
        write!(
            w,
            "CPU: {} family {} model {} stepping {}",
            Clean(&self.vendor),
            self.family,
            self.model,
            self.stepping
        )?;
        if !self.brand.is_empty() {
            write!(w, " \"{}\"", Clean(&self.brand))?;
        }
        writeln!(w, ", {}-bit physical addresses", self.phys_addr_bits)?;
        w.write_str("CPU features:")?;
        write_words(w, &self.features)?;
        w.write_char('\n')?;
        let xen_said = self.xen_tsc_mode != 0 || self.xen_tsc_emulated;
        if under_xen || xen_said || !self.xen_hvm_flags.is_empty() {
            let rdtsc = if self.xen_tsc_emulated {
                "emulated"
            } else {
                "native"
            };
            write!(
                w,
                "CPU under Xen: TSC mode {}, RDTSC {rdtsc}; HVM flags:",
                self.xen_tsc_mode
            )?;
            write_words(w, &self.xen_hvm_flags)?;
            w.write_char('\n')?;
        }
        Ok(())
    }
}

impl VcpuStatus {
    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.u64_field("id", self.id.into())?;
        j.u64_field("apic_id", self.apic_id.into())?;
        j.bool_field("up", self.up)?;
        j.u64_field("online_ns", self.online_ns)?;
        j.u64_field("work_done", self.work_done)?;
        str_array_field(j, "cpuid_differences", &self.cpuid_differences)?;
        str_array_field(j, "mtrr_problems", &self.mtrr_problems)?;
        j.end_object()
    }
}

impl SmpSummary {
    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.u64_field("started", self.started.into())?;
        str_array_field(j, "failed", &self.failed)?;
        j.u64_field(
            "first_up_to_last_online_ns",
            self.first_up_to_last_online_ns,
        )?;
        j.u64_field("ipi_round_trip_ns", self.ipi_round_trip_ns)?;
        j.end_object()
    }

    /// "SMP: 3 started, IPI round trip 0.012 ms, 0 failed" and the failures, one per line.
    fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        write!(w, "SMP: {} started, IPI round trip ", self.started)?;
        if self.ipi_round_trip_ns == 0 {
            w.write_str("not measured")?;
        } else {
            write!(w, "{} ms", Ms(self.ipi_round_trip_ns))?;
        }
        writeln!(w, ", {} failed", self.failed.len())?;
        for f in &self.failed {
            writeln!(w, "  - {}", Clean(f))?;
        }
        Ok(())
    }
}

impl MtrrSummary {
    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.bool_field("enabled", self.enabled)?;
        j.str_field("default_type", &self.default_type)?;
        str_array_field(j, "variable", &self.variable)?;
        j.bool_field("fixed_enabled", self.fixed_enabled)?;
        str_array_field(j, "problems", &self.problems)?;
        j.bool_field("consistent", self.consistent)?;
        j.bool_field("corrected", self.corrected)?;
        j.end_object()
    }

    /// "MTRR: enabled, default WB, 1 variable range: 0x80000000-0x100000000 UC; fixed ranges
    /// enabled; consistent across vCPUs; problems: none", then the problems, one per line.
    fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let on_off = |b: bool| if b { "enabled" } else { "disabled" };
        write!(
            w,
            "MTRR: {}, default {}, {} variable range{}",
            on_off(self.enabled),
            Clean(&self.default_type),
            self.variable.len(),
            if self.variable.len() == 1 { "" } else { "s" }
        )?;
        for (i, v) in self.variable.iter().enumerate() {
            let sep = if i == 0 { ": " } else { ", " };
            write!(w, "{sep}{}", Clean(v))?;
        }
        write!(w, "; fixed ranges {}; ", on_off(self.fixed_enabled))?;
        match (self.consistent, self.corrected) {
            (true, _) => w.write_str("consistent across vCPUs")?,
            (false, true) => w.write_str("inconsistent across vCPUs, corrected")?,
            (false, false) => w.write_str("inconsistent across vCPUs, not corrected")?,
        }
        if self.problems.is_empty() {
            writeln!(w, "; problems: none")
        } else {
            writeln!(w, "; problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(w, "  - {}", Clean(p))?;
            }
            Ok(())
        }
    }
}

impl PciSummary {
    /// The summary of `topo`, every function's `xen_add` "not reported" and `enumerate_ns`
    /// 0 until the caller fills them in.
    pub fn from_topology(source: &str, topo: &pci::Topology) -> PciSummary {
        let segments = topo
            .segments
            .iter()
            .map(|s| {
                let mut text = String::new();
                let _ = write!(
                    text,
                    "{:04x} [bus {:02x}-{:02x}] {}",
                    s.segment,
                    s.start_bus,
                    s.end_bus,
                    if s.ecam { "ECAM" } else { "CF8/CFC" }
                );
                text
            })
            .collect();
        let functions = topo
            .functions
            .iter()
            .map(|f| PciFunction::from_function(f, topo))
            .collect();
        PciSummary {
            source: source.into(),
            segments,
            functions,
            mmcfg_reserved: Vec::new(),
            windows: Vec::new(),
            bar_moves: Vec::new(),
            renumber: Vec::new(),
            problems: topo.problems.clone(),
            tree: pci::tree::tree_text(topo),
            enumerate_ns: 0,
        }
    }

    /// Records what `PHYSDEVOP_pci_device_add` said for `sbdf`; false if no such function.
    pub fn set_xen_add(&mut self, sbdf: pci::Sbdf, result: &str) -> bool {
        let name = alloc::format!("{sbdf}");
        match self.functions.iter_mut().find(|f| f.sbdf == name) {
            Some(f) => {
                f.xen_add = result.into();
                true
            }
            None => false,
        }
    }

    /// Problems of the summary and of every function.
    pub fn problem_count(&self) -> usize {
        self.problems.len()
            + self
                .functions
                .iter()
                .map(|f| f.problems.len())
                .sum::<usize>()
    }

    fn json(&self, j: &mut JsonWriter<'_>) -> Result<(), JsonError> {
        j.begin_object()?;
        j.str_field("source", &self.source)?;
        str_array_field(j, "segments", &self.segments)?;
        j.u64_field("enumerate_ns", self.enumerate_ns)?;
        str_array_field(j, "mmcfg_reserved", &self.mmcfg_reserved)?;
        str_array_field(j, "windows", &self.windows)?;
        str_array_field(j, "bar_moves", &self.bar_moves)?;
        str_array_field(j, "renumber", &self.renumber)?;
        j.key("functions")?;
        j.begin_array()?;
        for f in &self.functions {
            j.begin_object()?;
            j.str_field("sbdf", &f.sbdf)?;
            j.u64_field("vendor", f.vendor.into())?;
            j.u64_field("device", f.device.into())?;
            j.u64_field("class", f.class.into())?;
            j.u64_field("header_type", f.header_type.into())?;
            j.str_field("kind", &f.kind)?;
            j.key("parent")?;
            match &f.parent {
                None => j.null()?,
                Some(p) => j.str(p)?,
            }
            j.key("bars")?;
            j.begin_array()?;
            for b in &f.bars {
                j.begin_object()?;
                j.u64_field("index", b.index.into())?;
                j.str_field("kind", &b.kind)?;
                j.bool_field("prefetchable", b.prefetchable)?;
                j.u64_field("address", b.address)?;
                j.u64_field("size", b.size)?;
                j.end_object()?;
            }
            j.end_array()?;
            str_array_field(j, "caps", &f.caps)?;
            str_array_field(j, "ext_caps", &f.ext_caps)?;
            j.str_field("xen_add", &f.xen_add)?;
            j.str_field("device_check", &f.device_check)?;
            str_array_field(j, "problems", &f.problems)?;
            j.end_object()?;
        }
        j.end_array()?;
        str_array_field(j, "problems", &self.problems)?;
        j.str_field("tree", &self.tree)?;
        j.end_object()
    }

    /// "PCI: ECAM (MCFG), segments 0000 [bus 00-ff] ECAM; 7 functions in 0.120 ms; 0
    /// problems", the MMCFG reports, the tree, one line per function (its problems below
    /// it), then the problems of no one function.
    fn write_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let n = self.functions.len();
        write!(w, "PCI: {}, segments", Clean(&self.source))?;
        write_words(w, &self.segments)?;
        let problems = self.problem_count();
        writeln!(
            w,
            "; {n} function{} in {} ms; {problems} problem{}",
            if n == 1 { "" } else { "s" },
            Ms(self.enumerate_ns),
            if problems == 1 { "" } else { "s" }
        )?;
        for m in &self.mmcfg_reserved {
            writeln!(w, "PCI mmcfg_reserved: {}", Clean(m))?;
        }
        for m in &self.bar_moves {
            writeln!(w, "PCI BAR move: {}", Clean(m))?;
        }
        for m in &self.renumber {
            writeln!(w, "PCI renumber: {}", Clean(m))?;
        }
        for m in &self.windows {
            writeln!(w, "PCI window: {}", Clean(m))?;
        }
        if !self.tree.is_empty() {
            writeln!(w, "PCI tree:")?;
            for line in self.tree.lines() {
                writeln!(w, "  {}", Clean(line))?;
            }
        }
        for f in &self.functions {
            write!(
                w,
                "  {} {:04x}:{:04x} class {:06x} {}",
                Clean(&f.sbdf),
                f.vendor,
                f.device,
                f.class,
                Clean(&f.kind)
            )?;
            if let Some(p) = &f.parent {
                write!(w, " below {}", Clean(p))?;
            }
            w.write_str("; BARs:")?;
            if f.bars.is_empty() {
                w.write_str(" none")?;
            }
            for (i, b) in f.bars.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                if b.kind == "rom" {
                    write!(w, "{sep}rom")?;
                } else {
                    write!(w, "{sep}{} {}", b.index, Clean(&b.kind))?;
                }
                if b.prefetchable {
                    w.write_str(" pref")?;
                }
                write!(w, " {:#x}", b.address)?;
                if b.size != 0 {
                    write!(w, "+{:#x}", b.size)?;
                }
            }
            w.write_str("; caps:")?;
            write_list(w, &f.caps)?;
            if !f.ext_caps.is_empty() {
                w.write_str("; ext caps:")?;
                write_list(w, &f.ext_caps)?;
            }
            write!(w, "; xen add {}", Clean(&f.xen_add))?;
            if !f.device_check.is_empty() {
                write!(w, "; check: {}", Clean(&f.device_check))?;
            }
            writeln!(w)?;
            for p in &f.problems {
                writeln!(w, "    - {}", Clean(p))?;
            }
        }
        if !self.problems.is_empty() {
            writeln!(w, "PCI problems ({}):", self.problems.len())?;
            for p in &self.problems {
                writeln!(w, "  - {}", Clean(p))?;
            }
        }
        Ok(())
    }
}

/// " a, b, c" (each cleaned), or " none".
fn write_list(w: &mut dyn fmt::Write, list: &[String]) -> fmt::Result {
    if list.is_empty() {
        return w.write_str(" none");
    }
    for (i, s) in list.iter().enumerate() {
        let sep = if i == 0 { " " } else { ", " };
        write!(w, "{sep}{}", Clean(s))?;
    }
    Ok(())
}

impl PciFunction {
    /// One function of `topo`, `xen_add` "not reported".
    pub fn from_function(f: &pci::Function, topo: &pci::Topology) -> PciFunction {
        use pci::FunctionKind;
        let mut kind = String::new();
        let _ = match (f.physfn, f.kind) {
            (Some(pf), _) => write!(kind, "VF of {pf}"),
            (None, FunctionKind::Endpoint) => write!(kind, "endpoint"),
            (
                None,
                FunctionKind::Bridge {
                    secondary,
                    subordinate,
                    ..
                },
            ) => write!(kind, "bridge [{secondary:02x}-{subordinate:02x}]"),
            (None, FunctionKind::CardBus) => write!(kind, "CardBus bridge"),
            (None, FunctionKind::Unknown(t)) => write!(kind, "unknown header type {t:#04x}"),
        };
        let parent = f
            .parent
            .and_then(|p| topo.functions.get(p))
            .map(|p| alloc::format!("{}", p.sbdf));
        let bars = f
            .bars
            .iter()
            .chain(f.rom.iter())
            .map(|b| PciBar {
                index: b.index,
                kind: b.kind.name().into(),
                prefetchable: b.prefetchable,
                address: b.address,
                size: b.size,
            })
            .collect();
        let caps = f
            .caps
            .iter()
            .map(|c| {
                let mut s = String::new();
                let _ = match c.id {
                    pci::regs::CAP_PCIE if f.pcie.is_some_and(|p| p.offset == c.offset) => {
                        write!(s, "{} ({})", c.name, f.pcie_type.unwrap_or("?"))
                    }
                    pci::regs::CAP_MSIX if f.msix.is_some_and(|m| m.offset == c.offset) => {
                        let size = f.msix.map_or(0, |m| m.table_size);
                        write!(s, "{} (table size {size})", c.name)
                    }
                    pci::regs::CAP_MSI if f.msi.is_some_and(|m| m.offset == c.offset) => {
                        let n = f.msi.map_or(0, |m| m.vectors);
                        let plural = if n == 1 { "" } else { "s" };
                        write!(s, "{} ({n} vector{plural})", c.name)
                    }
                    _ if c.name == "unknown" => write!(s, "unknown {:#04x}", c.id),
                    _ => write!(s, "{}", c.name),
                };
                s
            })
            .collect();
        let ext_caps = f
            .ext_caps
            .iter()
            .map(|c| {
                let mut s = String::new();
                let _ = match (&f.sriov, c.id) {
                    (Some(sr), pci::regs::EXT_SRIOV) if sr.offset == c.offset => {
                        write!(s, "{} ({} of {} VFs)", c.name, sr.num_vfs, sr.total_vfs)
                    }
                    _ if c.name == "unknown" => write!(s, "unknown {:#06x}", c.id),
                    _ => write!(s, "{}", c.name),
                };
                s
            })
            .collect();
        PciFunction {
            sbdf: alloc::format!("{}", f.sbdf),
            vendor: f.vendor,
            device: f.device,
            class: f.class,
            header_type: f.header_type,
            kind,
            parent,
            bars,
            caps,
            ext_caps,
            xen_add: "not reported".into(),
            device_check: String::new(),
            problems: f.problems.clone(),
        }
    }
}

impl BootReport {
    /// "vCPUs: 4 up in 3.200 ms: 0 (APIC 0) 1 (APIC 2) ...", then one line per vCPU with its
    /// timing and work, and its CPUID differences and MTRR problems indented below it.
    /// Nothing when the list is empty (the short "vCPUs: N" line stands instead).
    fn write_vcpus_text(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let list = &self.vcpu_list;
        if list.is_empty() {
            return Ok(());
        }
        let up = list.iter().filter(|v| v.up).count();
        let total = list.len().max(self.vcpus as usize);
        if up == total {
            write!(w, "vCPUs: {up} up")?;
        } else {
            write!(w, "vCPUs: {up} of {total} up")?;
        }
        if let Some(s) = &self.smp {
            write!(w, " in {} ms", Ms(s.first_up_to_last_online_ns))?;
        }
        w.write_char(':')?;
        for v in list {
            write!(w, " {} (APIC {}", v.id, v.apic_id)?;
            if !v.up {
                w.write_str(", down")?;
            }
            w.write_char(')')?;
        }
        w.write_char('\n')?;
        for v in list {
            write!(w, "  vCPU {} (APIC {}): ", v.id, v.apic_id)?;
            if v.up {
                writeln!(w, "online at {} ms, work {}", Ms(v.online_ns), v.work_done)?;
            } else {
                writeln!(w, "down")?;
            }
            for d in &v.cpuid_differences {
                writeln!(w, "    CPUID differs from vCPU 0: {}", Clean(d))?;
            }
            for p in &v.mtrr_problems {
                writeln!(w, "    MTRR: {}", Clean(p))?;
            }
        }
        Ok(())
    }
}

/// "4.17.0" from major, minor and extraversion.
struct XenVersion<'a>(&'a XenInfo);

impl XenVersion<'_> {
    fn to_compact(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = write!(s, "{}.{}{}", self.0.major, self.0.minor, self.0.extra);
        s
    }
}

impl fmt::Display for XenVersion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}{}",
            self.0.major,
            self.0.minor,
            Clean(&self.0.extra)
        )
    }
}

/// A string with control characters shown as `\xNN`, so it stays on its line.
struct Clean<'a>(&'a str);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let mut plain_from = 0;
        for (i, c) in s.char_indices() {
            if c.is_control() {
                f.write_str(&s[plain_from..i])?;
                write!(f, "\\x{{{:x}}}", u32::from(c))?;
                plain_from = i + c.len_utf8();
            }
        }
        f.write_str(&s[plain_from..])
    }
}

/// Nanoseconds as milliseconds with three decimals.
struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = String::new();
        write!(
            buf,
            "{}.{:03}",
            self.0 / 1_000_000,
            self.0 % 1_000_000 / 1000
        )?;
        f.pad(&buf)
    }
}

/// A byte count in B, KiB, MiB, GiB or TiB, with one decimal when not exact.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        let bytes = self.0;
        let mut buf = String::new();
        match UNITS.iter().find(|(_, shift)| bytes >> shift != 0) {
            None => write!(buf, "{bytes} B")?,
            Some(&(unit, shift)) => {
                let whole = bytes >> shift;
                let rest = bytes & ((1u64 << shift) - 1);
                if rest == 0 {
                    write!(buf, "{whole} {unit}")?;
                } else {
                    let tenths = (u128::from(rest) * 10) >> shift;
                    write!(buf, "{whole}.{tenths} {unit}")?;
                }
            }
        }
        f.pad(&buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use xen::memmap::MemType;

    fn sample() -> BootReport {
        BootReport {
            selftests: vec![
                "grant table: 1 of at most 64 frames, frame 0 mapped at 0x1b5000: ok".into(),
            ],
            dom0_version: "rust-dom0 0.1.0".into(),
            under_xen: true,
            xen: Some(XenInfo {
                major: 4,
                minor: 17,
                extra: ".0".into(),
                features: vec!["writable_page_tables".into(), "hvm_callback_vector".into()],
                caps: "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64".into(),
                hypercall_insn: "vmmcall".into(),
            }),
            start_info: Some(StartInfoSummary {
                paddr: 0x202030,
                version: 0,
                flags: 3,
                nr_modules: 1,
                rsdp: 0x7f60f16,
            }),
            cmdline: "loglevel=debug on-ready=qemu-exit".into(),
            options: vec![
                ("loglevel".into(), "debug".into()),
                ("on-ready".into(), "qemu-exit".into()),
            ],
            memory_map: vec![
                MemRegion::new(0, 0x9f000, MemType::Ram),
                MemRegion::new(0x9f000, 0x61000, MemType::Reserved),
                MemRegion::new(0x100000, 0x7f60f16 - 0x100000, MemType::Ram),
                MemRegion::new(0x7f60f16, 0xea, MemType::Acpi),
                MemRegion::new(0xb000_0000, 0x1000_0000, MemType::Reserved),
                MemRegion::new(0xfed0_0000, 0x400, MemType::Other(12)),
            ],
            memmap_source: "XENMEM_memory_map".into(),
            ram_bytes: 0x9f000 + 0x7f60f16 - 0x100000,
            heap: HeapStats {
                size: 4 << 20,
                used: 12345,
                peak: 20480,
            },
            vcpus: 2,
            phases: vec![
                Phase {
                    name: "entry".into(),
                    at_ns: 0,
                },
                Phase {
                    name: "console".into(),
                    at_ns: 1_234_567,
                },
                Phase {
                    name: "ready".into(),
                    at_ns: 12_000_000,
                },
            ],
            timer: Some(TimerCheck {
                requested_ns: 1_000_000,
                delivered_ns: 1_002_000,
                via: "VCPUOP_set_singleshot_timer".into(),
            }),
            // Xen 4.17's crafted RSDP, XSDT and MADT (packed downwards from 0x7f61000) on a
            // QEMU q35 host; HPET and WAET are hidden by Xen.
            acpi: Some(AcpiSummary {
                rsdp: 0x7f60f16,
                revision: 2,
                oem_id: "BOCHS ".into(),
                root: "XSDT".into(),
                tables: vec![
                    AcpiTable {
                        signature: "APIC".into(),
                        paddr: 0x7f60f76,
                        length: 0x8a,
                        revision: 1,
                        ok: true,
                    },
                    AcpiTable {
                        signature: "FACP".into(),
                        paddr: 0x7fe1a3c,
                        length: 0xf4,
                        revision: 1,
                        ok: true,
                    },
                    AcpiTable {
                        signature: "MCFG".into(),
                        paddr: 0x7fe1b88,
                        length: 0x3c,
                        revision: 1,
                        ok: true,
                    },
                ],
                madt_cpus: 2,
                madt_apic_ids: vec![0, 2],
                ioapics: 1,
                overrides: 5,
                present: vec![
                    "APIC".into(),
                    "FACP".into(),
                    "MCFG".into(),
                    "DSDT".into(),
                    "FACS".into(),
                ],
                fadt: vec!["revision 3".into()],
                mcfg: vec!["segment 0 buses 0x00-0xff at 0xb0000000".into()],
                container: Some(ContainerMadt {
                    vcpus: 2,
                    apic_ids: vec![0, 2],
                    compared_with: "Xen's crafted MADT".into(),
                    native_rsdp: 0xf59e0,
                    differences: vec![],
                    rewritten: false,
                    rsdp: 0,
                    madt: 0,
                }),
                problems: vec![],
            }),
            // qemu64 (+svm) under Xen 4.17, two vCPUs, SeaBIOS's MTRRs copied by Xen.
            cpu: Some(CpuSummary {
                vendor: "AuthenticAMD".into(),
                family: 15,
                model: 107,
                stepping: 1,
                brand: "QEMU Virtual CPU version 2.5+".into(),
                features: strings(&[
                    "fpu",
                    "tsc",
                    "apic",
                    "mtrr",
                    "pat",
                    "sse2",
                    "x2apic",
                    "hypervisor",
                    "svm",
                    "lm",
                ]),
                phys_addr_bits: 40,
                xen_tsc_mode: 0,
                xen_tsc_emulated: true,
                xen_hvm_flags: strings(&[
                    "apic_access_virt",
                    "iommu_mappings",
                    "vcpu_id_present",
                    "domid_present",
                    "upcall_vector",
                ]),
            }),
            vcpu_list: vec![
                VcpuStatus {
                    id: 0,
                    apic_id: 0,
                    up: true,
                    online_ns: 0,
                    work_done: 1000,
                    ..VcpuStatus::default()
                },
                VcpuStatus {
                    id: 1,
                    apic_id: 2,
                    up: true,
                    online_ns: 3_456_789,
                    work_done: 1000,
                    ..VcpuStatus::default()
                },
            ],
            smp: Some(SmpSummary {
                started: 1,
                failed: vec![],
                first_up_to_last_online_ns: 3_200_000,
                ipi_round_trip_ns: 12_345,
            }),
            mtrr: Some(MtrrSummary {
                enabled: true,
                default_type: "WB".into(),
                variable: strings(&["0x80000000-0x100000000 UC"]),
                fixed_enabled: true,
                problems: vec![],
                consistent: true,
                corrected: false,
            }),
            pci: Some(sample_pci()),
            modules: vec![ModuleSummary {
                index: 0,
                paddr: 0x200000,
                size: 0x1000,
                cmdline: "bundle.cpio".into(),
                kind: "bundle".into(),
                status: "ok".into(),
            }],
            toolstack: None,
            watchdog: vec![
                "watchdog: no progress in the pci phase for 1053 ms; last step: config write \
                 0000:01:00.0 +0x004 = 0x00000100; Xen: vCPU 0 runnable for 1100 ms"
                    .into(),
            ],
            warnings: vec!["memory map entry 5 has unknown type 12".into()],
            errors: vec![],
            ready: true,
            tsc_khz: 2_000_000,
        }
    }

    /// QEMU q35 under Xen: host bridge, a root port with a virtio-net behind it.
    fn sample_pci() -> PciSummary {
        PciSummary {
            source: "ECAM (MCFG)".into(),
            segments: strings(&["0000 [bus 00-ff] ECAM"]),
            functions: vec![
                PciFunction {
                    sbdf: "0000:00:00.0".into(),
                    vendor: 0x8086,
                    device: 0x29c0,
                    class: 0x06_00_00,
                    header_type: 0,
                    kind: "endpoint".into(),
                    parent: None,
                    bars: vec![],
                    caps: vec![],
                    ext_caps: vec![],
                    xen_add: "ok".into(),
                    device_check: String::new(),
                    problems: vec![],
                },
                PciFunction {
                    sbdf: "0000:00:01.0".into(),
                    vendor: 0x1b36,
                    device: 0x000c,
                    class: 0x06_04_00,
                    header_type: 1,
                    kind: "bridge [01-01]".into(),
                    parent: None,
                    bars: vec![PciBar {
                        index: 0,
                        kind: "mem32".into(),
                        prefetchable: false,
                        address: 0xfeb0_0000,
                        size: 0x1000,
                    }],
                    caps: strings(&["PCI Express (root port)", "MSI-X (table size 1)"]),
                    ext_caps: strings(&["Advanced Error Reporting"]),
                    xen_add: "ok".into(),
                    device_check: String::new(),
                    problems: vec![],
                },
                PciFunction {
                    sbdf: "0000:01:00.0".into(),
                    vendor: 0x1af4,
                    device: 0x1041,
                    class: 0x02_00_00,
                    header_type: 0,
                    kind: "endpoint".into(),
                    parent: Some("0000:00:01.0".into()),
                    bars: vec![
                        PciBar {
                            index: 4,
                            kind: "mem64".into(),
                            prefetchable: true,
                            address: 0xfe00_0000,
                            size: 0x4000,
                        },
                        PciBar {
                            index: 6,
                            kind: "rom".into(),
                            prefetchable: false,
                            address: 0xfe84_0000,
                            size: 0x40000,
                        },
                    ],
                    caps: strings(&["MSI-X (table size 3)", "PCI Express (endpoint)"]),
                    ext_caps: vec![],
                    xen_add: "-ENODEV (19)".into(),
                    device_check: String::new(),
                    problems: strings(&[
                        "0000:01:00.0: BAR 1 (0x14): unassigned (address 0, size 0x1000)",
                    ]),
                },
            ],
            mmcfg_reserved: strings(&["0000 [bus 00-ff] at 0xb0000000: ok"]),
            windows: vec!["[0xc0000000, 0xfec00000): a gap in the memory map".into()],
            bar_moves: Vec::new(),
            renumber: Vec::new(),
            problems: strings(&["0000:00:05.0: ID (0x00) changed between two reads"]),
            tree: "-[0000:00]-+-00.0  8086:29c0 Host bridge\n           \\-01.0-[01]----00.0  \
                   1af4:1041 Ethernet controller\n"
                .into(),
            enumerate_ns: 1_234_567,
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|&s| String::from(s)).collect()
    }

    fn json(r: &BootReport) -> (String, Value) {
        let mut s = String::new();
        r.write_json(&mut s).unwrap();
        let v = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        (s, v)
    }

    fn text(r: &BootReport) -> String {
        let mut s = String::new();
        r.write_text(&mut s).unwrap();
        s
    }

    #[test]
    fn json_has_the_values() {
        let (s, v) = json(&sample());
        assert!(!s.contains('\n') && s.is_ascii());
        assert_eq!(v["report_version"], 1);
        assert_eq!(v["dom0_version"], "rust-dom0 0.1.0");
        assert_eq!(v["under_xen"], true);
        assert_eq!(v["ready"], true);
        assert_eq!(v["xen"]["major"], 4);
        assert_eq!(v["xen"]["minor"], 17);
        assert_eq!(v["xen"]["extra"], ".0");
        assert_eq!(v["xen"]["version"], "4.17.0");
        assert_eq!(v["xen"]["features"][1], "hvm_callback_vector");
        assert_eq!(v["xen"]["hypercall_insn"], "vmmcall");
        assert_eq!(v["start_info"]["paddr"], 0x202030);
        assert_eq!(v["start_info"]["flags"], 3);
        assert_eq!(v["start_info"]["rsdp"], 0x7f60f16);
        assert_eq!(v["cmdline"], "loglevel=debug on-ready=qemu-exit");
        assert_eq!(v["options"]["on-ready"], "qemu-exit");
        assert_eq!(v["memmap_source"], "XENMEM_memory_map");
        let map = v["memory_map"].as_array().unwrap();
        assert_eq!(map.len(), 6);
        assert_eq!(map[2]["addr"], 0x100000);
        assert_eq!(map[2]["end"], 0x7f60f16);
        assert_eq!(map[2]["type"], "ram");
        assert_eq!(map[3]["size"], 0xea);
        assert_eq!(map[3]["type"], "acpi");
        assert_eq!(map[5]["type"], "other");
        assert_eq!(map[5]["type_raw"], 12);
        assert_eq!(v["ram_bytes"], 0x9f000 + 0x7f60f16 - 0x100000);
        assert_eq!(v["heap"]["used"], 12345);
        assert_eq!(v["vcpus"], 2);
        assert_eq!(v["tsc_khz"], 2_000_000);
        assert_eq!(v["phases"][1]["name"], "console");
        assert_eq!(v["phases"][1]["at_ns"], 1_234_567);
        assert_eq!(v["timer"]["delivered_ns"], 1_002_000);
        let acpi = &v["acpi"];
        assert_eq!(acpi["rsdp"], 0x7f60f16);
        assert_eq!(acpi["revision"], 2);
        assert_eq!(acpi["oem_id"], "BOCHS ");
        assert_eq!(acpi["root"], "XSDT");
        let tables = acpi["tables"].as_array().unwrap();
        assert_eq!(tables.len(), 3);
        assert_eq!(
            tables[0],
            serde_json::json!({"signature": "APIC", "paddr": 0x7f60f76, "length": 0x8a, "revision": 1, "ok": true})
        );
        assert_eq!(acpi["mcfg"][0], "segment 0 buses 0x00-0xff at 0xb0000000");
        assert_eq!(acpi["container"]["apic_ids"], serde_json::json!([0, 2]));
        assert_eq!(acpi["container"]["differences"], serde_json::json!([]));
        assert_eq!(acpi["container"]["rewritten"], false);
        assert_eq!(tables[2]["signature"], "MCFG");
        assert_eq!(acpi["madt_cpus"], 2);
        assert_eq!(acpi["madt_apic_ids"], serde_json::json!([0, 2]));
        assert_eq!(acpi["ioapics"], 1);
        assert_eq!(acpi["overrides"], 5);
        assert_eq!(acpi["problems"], serde_json::json!([]));
        // Key order: `acpi` sits between `timer` and `modules`.
        let timer = s.find("\"timer\":").unwrap();
        let acpi_at = s.find("\"acpi\":").unwrap();
        assert!(timer < acpi_at && acpi_at < s.find("\"modules\":").unwrap());
        assert_eq!(
            v["cpu"],
            serde_json::json!({
                "vendor": "AuthenticAMD",
                "family": 15,
                "model": 107,
                "stepping": 1,
                "brand": "QEMU Virtual CPU version 2.5+",
                "features": ["fpu", "tsc", "apic", "mtrr", "pat", "sse2", "x2apic", "hypervisor",
                             "svm", "lm"],
                "phys_addr_bits": 40,
                "xen_tsc_mode": 0,
                "xen_tsc_emulated": true,
                "xen_hvm_flags": ["apic_access_virt", "iommu_mappings", "vcpu_id_present",
                                  "domid_present", "upcall_vector"],
            })
        );
        assert_eq!(
            v["vcpu_list"][1],
            serde_json::json!({
                "id": 1,
                "apic_id": 2,
                "up": true,
                "online_ns": 3_456_789,
                "work_done": 1000,
                "cpuid_differences": [],
                "mtrr_problems": [],
            })
        );
        assert_eq!(v["vcpu_list"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["smp"],
            serde_json::json!({
                "started": 1,
                "failed": [],
                "first_up_to_last_online_ns": 3_200_000,
                "ipi_round_trip_ns": 12_345,
            })
        );
        assert_eq!(
            v["mtrr"],
            serde_json::json!({
                "enabled": true,
                "default_type": "WB",
                "variable": ["0x80000000-0x100000000 UC"],
                "fixed_enabled": true,
                "problems": [],
                "consistent": true,
                "corrected": false,
            })
        );
        assert_eq!(v["pci"]["source"], "ECAM (MCFG)");
        assert_eq!(v["pci"]["segments"][0], "0000 [bus 00-ff] ECAM");
        assert_eq!(v["pci"]["enumerate_ns"], 1_234_567);
        assert_eq!(
            v["pci"]["mmcfg_reserved"][0],
            "0000 [bus 00-ff] at 0xb0000000: ok"
        );
        assert_eq!(v["pci"]["functions"].as_array().unwrap().len(), 3);
        assert_eq!(
            v["pci"]["functions"][2],
            serde_json::json!({
                "sbdf": "0000:01:00.0",
                "vendor": 0x1af4,
                "device": 0x1041,
                "class": 0x020000,
                "header_type": 0,
                "kind": "endpoint",
                "parent": "0000:00:01.0",
                "bars": [
                    {"index": 4, "kind": "mem64", "prefetchable": true, "address": 0xfe000000u64,
                     "size": 0x4000},
                    {"index": 6, "kind": "rom", "prefetchable": false, "address": 0xfe840000u64,
                     "size": 0x40000},
                ],
                "caps": ["MSI-X (table size 3)", "PCI Express (endpoint)"],
                "ext_caps": [],
                "xen_add": "-ENODEV (19)",
                "device_check": "",
                "problems": ["0000:01:00.0: BAR 1 (0x14): unassigned (address 0, size 0x1000)"],
            })
        );
        assert_eq!(v["pci"]["functions"][0]["parent"], Value::Null);
        assert_eq!(v["pci"]["functions"][1]["kind"], "bridge [01-01]");
        assert_eq!(
            v["pci"]["problems"][0],
            "0000:00:05.0: ID (0x00) changed between two reads"
        );
        assert!(
            v["pci"]["tree"]
                .as_str()
                .unwrap()
                .starts_with("-[0000:00]-+-00.0  8086:29c0")
        );
        // Key order: acpi, cpu, vcpu_list, smp, mtrr, pci, modules.
        let order: Vec<usize> = ["acpi", "cpu", "vcpu_list", "smp", "mtrr", "pci", "modules"]
            .iter()
            .map(|k| s.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert_eq!(v["modules"][0]["kind"], "bundle");
        assert_eq!(v["modules"][0]["size"], 0x1000);
        assert_eq!(v["warnings"][0], "memory map entry 5 has unknown type 12");
        assert!(
            v["watchdog"][0]
                .as_str()
                .is_some_and(|w| w.starts_with("watchdog: no progress in the pci phase")),
            "{}",
            v["watchdog"]
        );
        assert_eq!(v["errors"], Value::Array(vec![]));
    }

    #[test]
    fn json_of_an_empty_report() {
        let (_, v) = json(&BootReport::default());
        assert_eq!(v["xen"], Value::Null);
        assert_eq!(v["start_info"], Value::Null);
        assert_eq!(v["timer"], Value::Null);
        assert_eq!(v["acpi"], Value::Null);
        assert_eq!(v["cpu"], Value::Null);
        assert_eq!(v["vcpu_list"], serde_json::json!([]));
        assert_eq!(v["smp"], Value::Null);
        assert_eq!(v["mtrr"], Value::Null);
        assert_eq!(v["pci"], Value::Null);
        assert_eq!(v["under_xen"], false);
        assert_eq!(v["options"], serde_json::json!({}));
        assert_eq!(v["memory_map"], serde_json::json!([]));
    }

    #[test]
    fn json_extreme_numbers() {
        let mut r = sample();
        r.memory_map = vec![MemRegion::new(u64::MAX - 1, 1, MemType::Ram)];
        r.ram_bytes = u64::MAX;
        r.phases = vec![Phase {
            name: String::new(),
            at_ns: u64::MAX,
        }];
        let (_, v) = json(&r);
        assert_eq!(v["ram_bytes"].as_u64(), Some(u64::MAX));
        assert_eq!(v["memory_map"][0]["end"].as_u64(), Some(u64::MAX));
        assert_eq!(v["phases"][0]["at_ns"].as_u64(), Some(u64::MAX));
        r.acpi = Some(AcpiSummary {
            rsdp: u64::MAX,
            revision: u8::MAX,
            tables: vec![AcpiTable {
                signature: String::new(),
                paddr: u64::MAX,
                length: u32::MAX,
                revision: 1,
                ok: true,
            }],
            madt_cpus: u32::MAX,
            madt_apic_ids: vec![u32::MAX, 0],
            ioapics: u32::MAX,
            overrides: u32::MAX,
            ..AcpiSummary::default()
        });
        let (_, v) = json(&r);
        assert_eq!(v["acpi"]["rsdp"].as_u64(), Some(u64::MAX));
        assert_eq!(v["acpi"]["revision"], 255);
        assert_eq!(v["acpi"]["tables"][0]["paddr"].as_u64(), Some(u64::MAX));
        assert_eq!(
            v["acpi"]["tables"][0]["length"].as_u64(),
            Some(u32::MAX.into())
        );
        assert_eq!(
            v["acpi"]["madt_apic_ids"][0].as_u64(),
            Some(u32::MAX.into())
        );
        assert_eq!(v["acpi"]["overrides"].as_u64(), Some(u32::MAX.into()));
        r.cpu.as_mut().unwrap().family = u32::MAX;
        r.cpu.as_mut().unwrap().phys_addr_bits = u8::MAX;
        r.cpu.as_mut().unwrap().xen_tsc_mode = u32::MAX;
        r.vcpu_list[1].id = u32::MAX;
        r.vcpu_list[1].apic_id = u32::MAX;
        r.vcpu_list[1].online_ns = u64::MAX;
        r.vcpu_list[1].work_done = u64::MAX;
        r.smp = Some(SmpSummary {
            started: u32::MAX,
            failed: vec![],
            first_up_to_last_online_ns: u64::MAX,
            ipi_round_trip_ns: u64::MAX,
        });
        let (_, v) = json(&r);
        assert_eq!(v["cpu"]["family"].as_u64(), Some(u32::MAX.into()));
        assert_eq!(v["cpu"]["phys_addr_bits"], 255);
        assert_eq!(v["cpu"]["xen_tsc_mode"].as_u64(), Some(u32::MAX.into()));
        assert_eq!(v["vcpu_list"][1]["id"].as_u64(), Some(u32::MAX.into()));
        assert_eq!(v["vcpu_list"][1]["online_ns"].as_u64(), Some(u64::MAX));
        assert_eq!(v["vcpu_list"][1]["work_done"].as_u64(), Some(u64::MAX));
        assert_eq!(v["smp"]["started"].as_u64(), Some(u32::MAX.into()));
        assert_eq!(
            v["smp"]["first_up_to_last_online_ns"].as_u64(),
            Some(u64::MAX)
        );
        assert_eq!(v["smp"]["ipi_round_trip_ns"].as_u64(), Some(u64::MAX));
        let t = text(&r);
        assert!(
            t.contains(
                "vCPUs: 2 up in 18446744073709.551 ms: 0 (APIC 0) 4294967295 (APIC 4294967295)\n"
            ),
            "{t}"
        );
        // A region whose end does not fit saturates rather than wrapping.
        r.memory_map = vec![MemRegion::new(u64::MAX, 5, MemType::Ram)];
        let (_, v) = json(&r);
        assert_eq!(v["memory_map"][0]["end"].as_u64(), Some(u64::MAX));
    }

    #[test]
    fn hostile_strings_in_json_and_text() {
        let evil = "a\"b\\c\n{\"injected\":1}\r\u{1b}[2J\u{0}\u{e9}\u{1f600}";
        let mut r = sample();
        r.cmdline = evil.into();
        r.options = vec![(evil.into(), evil.into())];
        r.errors = vec![evil.into()];
        r.modules[0].cmdline = evil.into();
        r.phases[0].name = evil.into();
        r.xen.as_mut().unwrap().features = vec![evil.into()];
        {
            let a = r.acpi.as_mut().unwrap();
            a.oem_id = evil.into();
            a.root = evil.into();
            a.tables[1].signature = evil.into();
            a.problems = vec![evil.into()];
        }
        {
            let c = r.cpu.as_mut().unwrap();
            c.vendor = evil.into();
            c.brand = evil.into();
            c.features = vec![evil.into()];
            c.xen_hvm_flags = vec![evil.into()];
            r.vcpu_list[1].cpuid_differences = vec![evil.into()];
            r.vcpu_list[1].mtrr_problems = vec![evil.into()];
            r.smp.as_mut().unwrap().failed = vec![evil.into()];
            let m = r.mtrr.as_mut().unwrap();
            m.default_type = evil.into();
            m.variable = vec![evil.into()];
            m.problems = vec![evil.into()];
            let p = r.pci.as_mut().unwrap();
            p.source = evil.into();
            p.tree = evil.into();
            p.functions[2].sbdf = evil.into();
            p.functions[2].kind = evil.into();
            p.functions[2].caps = vec![evil.into()];
            p.functions[2].xen_add = evil.into();
            p.functions[2].problems = vec![evil.into()];
            p.problems = vec![evil.into()];
        }
        let (s, v) = json(&r);
        assert!(!s.contains('\n') && s.is_ascii());
        assert_eq!(v["cmdline"], evil);
        assert_eq!(v["options"][evil], evil);
        assert_eq!(v["errors"][0], evil);
        assert_eq!(v["modules"][0]["cmdline"], evil);
        assert_eq!(v["acpi"]["oem_id"], evil);
        assert_eq!(v["acpi"]["root"], evil);
        assert_eq!(v["acpi"]["tables"][1]["signature"], evil);
        assert_eq!(v["acpi"]["problems"][0], evil);
        assert_eq!(v["cpu"]["vendor"], evil);
        assert_eq!(v["cpu"]["brand"], evil);
        assert_eq!(v["cpu"]["features"][0], evil);
        assert_eq!(v["cpu"]["xen_hvm_flags"][0], evil);
        assert_eq!(v["vcpu_list"][1]["cpuid_differences"][0], evil);
        assert_eq!(v["vcpu_list"][1]["mtrr_problems"][0], evil);
        assert_eq!(v["smp"]["failed"][0], evil);
        assert_eq!(v["mtrr"]["default_type"], evil);
        assert_eq!(v["mtrr"]["variable"][0], evil);
        assert_eq!(v["mtrr"]["problems"][0], evil);
        assert_eq!(v["pci"]["source"], evil);
        assert_eq!(v["pci"]["tree"], evil);
        assert_eq!(v["pci"]["functions"][2]["sbdf"], evil);
        assert_eq!(v["pci"]["functions"][2]["kind"], evil);
        assert_eq!(v["pci"]["functions"][2]["caps"][0], evil);
        assert_eq!(v["pci"]["functions"][2]["xen_add"], evil);
        assert_eq!(v["pci"]["functions"][2]["problems"][0], evil);
        assert_eq!(v["pci"]["problems"][0], evil);
        assert!(v.get("injected").is_none());

        let t = text(&r);
        assert!(!t.contains('\r') && !t.contains('\u{1b}') && !t.contains('\u{0}'));
        assert!(t.contains(
            "cmdline: \"a\"b\\c\\x{a}{\"injected\":1}\\x{d}\\x{1b}[2J\\x{0}\u{e9}\u{1f600}\""
        ));
        // Every line is one of ours: the newline in the string did not start a new line.
        assert!(t.lines().all(|l| !l.starts_with("{\"injected\"")));
    }

    #[test]
    fn text_has_the_key_lines() {
        let t = text(&sample());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "dom0 boot report: rust-dom0 0.1.0, under Xen 4.17.0"
        );
        for expected in [
            "Xen: 4.17.0, caps \"xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64\", hypercall instruction vmmcall",
            "Xen features: writable_page_tables hvm_callback_vector",
            "start_info: at 0x202030, version 0, flags 0x3 (privileged, initdomain), 1 module, rsdp 0x7f60f16",
            "cmdline: \"loglevel=debug on-ready=qemu-exit\"",
            "options: loglevel=debug on-ready=qemu-exit",
            "memory map (XENMEM_memory_map, 6 entries):",
            "  [mem 0x0000000000000000-0x000000000009efff]    636 KiB  ram",
            "  [mem 0x000000000009f000-0x00000000000fffff]    388 KiB  reserved",
            "  [mem 0x0000000000100000-0x0000000007f60f15]  126.3 MiB  ram",
            "  [mem 0x0000000007f60f16-0x0000000007f60fff]      234 B  acpi",
            "  [mem 0x00000000b0000000-0x00000000bfffffff]    256 MiB  reserved",
            "  [mem 0x00000000fed00000-0x00000000fed003ff]      1 KiB  other(12)",
            "RAM: 126.9 MiB (133168918 bytes)",
            "TSC: 2000000 kHz",
            "heap: 12.0 KiB used of 4 MiB (peak 20 KiB)",
            "timeline (ms since entry):",
            "         0.000  (+0.000)  entry",
            "         1.234  (+1.234)  console",
            "        12.000  (+10.765)  ready",
            "timer: requested 1.000 ms, delivered after 1.002 ms via VCPUOP_set_singleshot_timer",
            "ACPI: RSDP rev 2 at 0x7f60f16, OEM \"BOCHS \", XSDT with 3 tables: APIC FACP MCFG; \
             MADT: 2 CPUs (APIC ids 0 2), 1 IO-APIC, 5 overrides",
            "CPU: AuthenticAMD family 15 model 107 stepping 1 \"QEMU Virtual CPU version 2.5+\", \
             40-bit physical addresses",
            "CPU features: fpu tsc apic mtrr pat sse2 x2apic hypervisor svm lm",
            "CPU under Xen: TSC mode 0, RDTSC emulated; HVM flags: apic_access_virt \
             iommu_mappings vcpu_id_present domid_present upcall_vector",
            "vCPUs: 2 up in 3.200 ms: 0 (APIC 0) 1 (APIC 2)",
            "  vCPU 0 (APIC 0): online at 0.000 ms, work 1000",
            "  vCPU 1 (APIC 2): online at 3.456 ms, work 1000",
            "SMP: 1 started, IPI round trip 0.012 ms, 0 failed",
            "MTRR: enabled, default WB, 1 variable range: 0x80000000-0x100000000 UC; fixed ranges \
             enabled; consistent across vCPUs; problems: none",
            "PCI: ECAM (MCFG), segments 0000 [bus 00-ff] ECAM; 3 functions in 1.234 ms; 2 problems",
            "PCI mmcfg_reserved: 0000 [bus 00-ff] at 0xb0000000: ok",
            "PCI tree:",
            "  -[0000:00]-+-00.0  8086:29c0 Host bridge",
            "             \\-01.0-[01]----00.0  1af4:1041 Ethernet controller",
            "  0000:00:00.0 8086:29c0 class 060000 endpoint; BARs: none; caps: none; xen add ok",
            "  0000:00:01.0 1b36:000c class 060400 bridge [01-01]; BARs: 0 mem32 0xfeb00000+0x1000; \
             caps: PCI Express (root port), MSI-X (table size 1); ext caps: Advanced Error \
             Reporting; xen add ok",
            "  0000:01:00.0 1af4:1041 class 020000 endpoint below 0000:00:01.0; BARs: 4 mem64 pref \
             0xfe000000+0x4000, rom 0xfe840000+0x40000; caps: MSI-X (table size 3), PCI Express \
             (endpoint); xen add -ENODEV (19)",
            "    - 0000:01:00.0: BAR 1 (0x14): unassigned (address 0, size 0x1000)",
            "PCI problems (1):",
            "  - 0000:00:05.0: ID (0x00) changed between two reads",
            "modules (1):",
            "  #0 [0x200000, +0x1000) 4 KiB  kind bundle  status ok  cmdline \"bundle.cpio\"",
            "watchdog (1)",
            "  - watchdog: no progress in the pci phase for 1053 ms; last step: config write \
             0000:01:00.0 +0x004 = 0x00000100; Xen: vCPU 0 runnable for 1100 ms",
            "warnings (1)",
            "  - memory map entry 5 has unknown type 12",
            "errors (0): none",
            "result: READY",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{t}");
        }
        assert!(t.ends_with('\n'));
        // The short vCPU count gives way to the vCPU section, which sits after ACPI.
        assert!(!lines.contains(&"vCPUs: 2"));
        let at = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();
        let order = [
            "ACPI:", "CPU:", "vCPUs:", "SMP:", "MTRR:", "PCI:", "modules",
        ]
        .map(at);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{t}");
    }

    #[test]
    fn text_of_an_empty_report() {
        let t = text(&BootReport::default());
        for expected in [
            "dom0 boot report: , not under Xen",
            "start_info: none",
            "options: (defaults)",
            "memory map (unknown source, 0 entries):",
            "TSC: unknown",
            "  (none)",
            "timer: not checked",
            "ACPI: none",
            "PCI: not enumerated",
            "vCPUs: 0",
            "result: NOT READY",
        ] {
            assert!(
                t.lines().any(|l| l == expected),
                "missing {expected:?} in\n{t}"
            );
        }
    }

    #[test]
    fn text_start_info_variants() {
        let mut r = sample();
        r.start_info = Some(StartInfoSummary {
            paddr: 0x6000,
            version: 1,
            flags: 0,
            nr_modules: 0,
            rsdp: 0,
        });
        r.xen = None;
        let t = text(&r);
        assert!(
            t.contains("start_info: at 0x6000, version 1, flags 0x0, 0 modules, rsdp none\n"),
            "{t}"
        );
        assert!(t.starts_with("dom0 boot report: rust-dom0 0.1.0, under Xen\n"));
    }

    #[test]
    fn text_acpi_variants() {
        let acpi_lines = |a: AcpiSummary| -> Vec<String> {
            let r = BootReport {
                acpi: Some(a),
                ..BootReport::default()
            };
            text(&r)
                .lines()
                .skip_while(|l| !l.starts_with("ACPI"))
                .take_while(|l| !l.starts_with("PCI") && !l.starts_with("modules"))
                .map(String::from)
                .collect()
        };
        // No root table read, problems listed (control characters escaped).
        let lines = acpi_lines(AcpiSummary {
            rsdp: 0xf5a40,
            revision: 0,
            oem_id: "BOCHS ".into(),
            problems: vec![
                "RSDT: checksum over bytes [0x0, 0x34) sums to 0x01, not 0".into(),
                "two\nlines".into(),
            ],
            ..AcpiSummary::default()
        });
        assert_eq!(
            lines,
            vec![
                "ACPI: RSDP rev 0 at 0xf5a40, OEM \"BOCHS \", no root table; no MADT",
                "ACPI problems (2):",
                "  - RSDT: checksum over bytes [0x0, 0x34) sums to 0x01, not 0",
                "  - two\\x{a}lines",
            ]
        );
        // One table, one CPU, singular forms.
        let one = |sig: &str| AcpiTable {
            signature: sig.into(),
            paddr: 0xe0000,
            length: 0x50,
            revision: 1,
            ok: true,
        };
        let lines = acpi_lines(AcpiSummary {
            rsdp: 0xf5a40,
            revision: 2,
            root: "RSDT".into(),
            tables: vec![one("APIC")],
            madt_cpus: 1,
            madt_apic_ids: vec![7],
            ioapics: 1,
            overrides: 1,
            ..AcpiSummary::default()
        });
        assert_eq!(
            lines,
            vec![
                "ACPI: RSDP rev 2 at 0xf5a40, OEM \"\", RSDT with 1 table: APIC; MADT: 1 CPU \
                 (APIC id 7), 1 IO-APIC, 1 override"
            ]
        );
        // A MADT without CPUs; an empty XSDT.
        let lines = acpi_lines(AcpiSummary {
            root: "XSDT".into(),
            tables: vec![one("FACP"), one("APIC")],
            ..AcpiSummary::default()
        });
        assert_eq!(
            lines,
            vec![
                "ACPI: RSDP rev 0 at 0x0, OEM \"\", XSDT with 2 tables: FACP APIC; MADT: 0 CPUs, \
                 0 IO-APICs, 0 overrides"
            ]
        );
        let lines = acpi_lines(AcpiSummary {
            root: "XSDT".into(),
            ..AcpiSummary::default()
        });
        assert_eq!(
            lines,
            vec!["ACPI: RSDP rev 0 at 0x0, OEM \"\", XSDT with 0 tables; no MADT"]
        );
    }

    #[test]
    fn text_cpu_vcpu_mtrr_variants() {
        let section = |r: &BootReport| -> Vec<String> {
            text(r)
                .lines()
                .skip_while(|l| !l.starts_with("ACPI"))
                .skip(1)
                .take_while(|l| !l.starts_with("PCI") && !l.starts_with("modules"))
                .map(String::from)
                .collect()
        };
        // Not under Xen, no brand, a vCPU that did not come up, one that differs, no SMP
        // summary, MTRRs inconsistent and corrected, with problems.
        let r = BootReport {
            vcpus: 4,
            cpu: Some(CpuSummary {
                vendor: "GenuineIntel".into(),
                family: 6,
                model: 0x55,
                stepping: 4,
                phys_addr_bits: 46,
                ..CpuSummary::default()
            }),
            vcpu_list: vec![
                VcpuStatus {
                    id: 0,
                    up: true,
                    ..VcpuStatus::default()
                },
                VcpuStatus {
                    id: 1,
                    apic_id: 2,
                    up: true,
                    online_ns: 1_500_000,
                    work_done: 7,
                    cpuid_differences: strings(&["family: 6 vs 15"]),
                    mtrr_problems: strings(&["disagree: vCPU 1: MTRRdefType (MSR 0x2ff) is 0x6"]),
                },
                VcpuStatus {
                    id: 2,
                    apic_id: 4,
                    ..VcpuStatus::default()
                },
            ],
            mtrr: Some(MtrrSummary {
                enabled: false,
                default_type: "UC".into(),
                problems: strings(&["disabled: MTRRs are disabled", "two\nlines"]),
                consistent: false,
                corrected: true,
                ..MtrrSummary::default()
            }),
            ..BootReport::default()
        };
        assert_eq!(
            section(&r),
            [
                "CPU: GenuineIntel family 6 model 85 stepping 4, 46-bit physical addresses",
                "CPU features: (none)",
                "vCPUs: 2 of 4 up: 0 (APIC 0) 1 (APIC 2) 2 (APIC 4, down)",
                "  vCPU 0 (APIC 0): online at 0.000 ms, work 0",
                "  vCPU 1 (APIC 2): online at 1.500 ms, work 7",
                "    CPUID differs from vCPU 0: family: 6 vs 15",
                "    MTRR: disagree: vCPU 1: MTRRdefType (MSR 0x2ff) is 0x6",
                "  vCPU 2 (APIC 4): down",
                "MTRR: disabled, default UC, 0 variable ranges; fixed ranges disabled; \
                 inconsistent across vCPUs, corrected; problems (2):",
                "  - disabled: MTRRs are disabled",
                "  - two\\x{a}lines",
            ]
        );
        assert!(!text(&r).contains("vCPUs: 4\n"));
        // Under Xen with nothing set, SMP failures, several ranges, not corrected.
        let r = BootReport {
            under_xen: true,
            cpu: Some(CpuSummary::default()),
            smp: Some(SmpSummary {
                started: 0,
                failed: strings(&["vCPU 1: VCPUOP_up failed: -EINVAL"]),
                first_up_to_last_online_ns: 0,
                ipi_round_trip_ns: 0,
            }),
            mtrr: Some(MtrrSummary {
                enabled: true,
                default_type: "UC".into(),
                variable: strings(&["0x0-0x80000000 WB", "0x100000000-0x180000000 WB"]),
                fixed_enabled: true,
                consistent: false,
                ..MtrrSummary::default()
            }),
            ..BootReport::default()
        };
        assert_eq!(
            section(&r),
            [
                "CPU:  family 0 model 0 stepping 0, 0-bit physical addresses",
                "CPU features: (none)",
                "CPU under Xen: TSC mode 0, RDTSC native; HVM flags: (none)",
                "SMP: 0 started, IPI round trip not measured, 1 failed",
                "  - vCPU 1: VCPUOP_up failed: -EINVAL",
                "MTRR: enabled, default UC, 2 variable ranges: 0x0-0x80000000 WB, \
                 0x100000000-0x180000000 WB; fixed ranges enabled; inconsistent across vCPUs, \
                 not corrected; problems: none",
            ]
        );
        assert!(text(&r).contains("\nvCPUs: 0\n"));
    }

    #[test]
    fn sizes_and_times() {
        let s = |b| Size(b).to_string();
        assert_eq!(s(0), "0 B");
        assert_eq!(s(1023), "1023 B");
        assert_eq!(s(1024), "1 KiB");
        assert_eq!(s(1536), "1.5 KiB");
        assert_eq!(s(1 << 20), "1 MiB");
        assert_eq!(s(3 << 30), "3 GiB");
        assert_eq!(s(u64::MAX), "16777215.9 TiB");
        assert_eq!(Ms(0).to_string(), "0.000");
        assert_eq!(Ms(999).to_string(), "0.000");
        assert_eq!(Ms(1_500_000).to_string(), "1.500");
        assert_eq!(Ms(u64::MAX).to_string(), "18446744073709.551");
        assert_eq!(format!("{:>8}", Ms(1_000)), "   0.001");
    }

    #[test]
    fn write_errors_propagate() {
        struct Fails;
        impl fmt::Write for Fails {
            fn write_str(&mut self, _: &str) -> fmt::Result {
                Err(fmt::Error)
            }
        }
        assert!(sample().write_json(&mut Fails).is_err());
        assert!(sample().write_text(&mut Fails).is_err());
    }

    #[test]
    fn pci_summary_from_an_enumeration() {
        use pci::regs::{CMD_IO, CMD_MASTER, CMD_MEM, PCIE_TYPE_ENDPOINT, PCIE_TYPE_ROOT_PORT};
        use pci::sim::{SimBar, SimConfig, SimDevice, SimSriov};
        let sbdf = |b, d, f| pci::Sbdf::new(0, b, d, f).unwrap();
        let sim = SimConfig::new();
        sim.add(
            sbdf(0, 0, 0),
            SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
        );
        sim.add(
            sbdf(0, 1, 0),
            SimDevice::bridge(0x1b36, 0x000c, 1, 1)
                .pcie(PCIE_TYPE_ROOT_PORT)
                .ari_forwarding(true)
                .aer(),
        );
        sim.add(
            sbdf(1, 0, 0),
            SimDevice::endpoint(0x8086, 0x10fb, 0x02_00_00)
                .command(CMD_IO | CMD_MEM | CMD_MASTER)
                .bar(0, SimBar::mem64(0x8_0000, 0xfe00_0000).prefetchable())
                .bar(4, SimBar::io(0x20, 0xe000))
                .rom(0x10000, 0, false)
                .msi(2, true)
                .msix(64, 0)
                .pcie(PCIE_TYPE_ENDPOINT)
                .ari(0)
                .raw_ext_cap(0x4242, 8)
                .sriov(SimSriov::new(4, 0x80, 1, 0x10ed).enabled(2)),
        );
        sim.add(sbdf(0, 2, 0), SimDevice::cardbus(0x104c, 0xac56));
        let segs = [pci::Segment {
            segment: 0,
            start_bus: 0,
            end_bus: 0xff,
            ecam: true,
        }];
        let topo = pci::enumerate(&sim, &segs, &pci::EnumOptions::default());
        assert!(sim.violations().is_empty());
        let mut p = PciSummary::from_topology("ECAM (MCFG)", &topo);
        p.enumerate_ns = 250_000;
        assert_eq!(p.segments, ["0000 [bus 00-ff] ECAM"]);
        let sbdfs: Vec<&str> = p.functions.iter().map(|f| f.sbdf.as_str()).collect();
        assert_eq!(
            sbdfs,
            [
                "0000:00:00.0",
                "0000:00:01.0",
                "0000:01:00.0",
                "0000:01:10.0",
                "0000:01:10.1",
                "0000:00:02.0"
            ]
        );
        assert!(p.functions.iter().all(|f| f.xen_add == "not reported"));
        for a in pci::xen_add_order(&topo) {
            let result = if a.sbdf == sbdf(0, 2, 0) {
                "-EOPNOTSUPP (95)"
            } else {
                "ok"
            };
            assert!(p.set_xen_add(a.sbdf, result));
        }
        assert!(!p.set_xen_add(sbdf(9, 9, 0), "ok"));
        let pf = &p.functions[2];
        assert_eq!(pf.kind, "endpoint");
        assert_eq!(pf.parent.as_deref(), Some("0000:00:01.0"));
        assert_eq!(
            pf.caps,
            [
                "MSI (4 vectors)",
                "MSI-X (table size 64)",
                "PCI Express (endpoint)"
            ]
        );
        assert_eq!(
            pf.ext_caps,
            [
                "Alternative Routing-ID Interpretation",
                "unknown 0x4242",
                "SR-IOV (2 of 4 VFs)"
            ]
        );
        let bars: Vec<(u8, &str, bool, u64, u64)> = pf
            .bars
            .iter()
            .map(|b| (b.index, b.kind.as_str(), b.prefetchable, b.address, b.size))
            .collect();
        assert_eq!(
            bars,
            [
                (0, "mem64", true, 0xfe00_0000, 0x8_0000),
                (4, "io", false, 0xe000, 0x20),
                (6, "rom", false, 0, 0x10000)
            ]
        );
        assert_eq!(p.functions[1].kind, "bridge [01-01]");
        assert_eq!(p.functions[3].kind, "VF of 0000:01:00.0");
        assert_eq!(p.functions[3].parent.as_deref(), Some("0000:00:01.0"));
        assert_eq!(p.functions[5].kind, "CardBus bridge");
        assert_eq!(p.functions[5].xen_add, "-EOPNOTSUPP (95)");
        assert_eq!(p.problem_count(), 1, "{p:#?}");

        let r = BootReport {
            pci: Some(p),
            ..BootReport::default()
        };
        let (_, v) = json(&r);
        assert_eq!(v["pci"]["functions"][3]["kind"], "VF of 0000:01:00.0");
        assert_eq!(v["pci"]["functions"][2]["bars"][1]["kind"], "io");
        assert_eq!(
            v["pci"]["functions"][5]["problems"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let t = text(&r);
        for expected in [
            "PCI: ECAM (MCFG), segments 0000 [bus 00-ff] ECAM; 6 functions in 0.250 ms; 1 problem",
            "PCI tree:",
            "  -[0000:00]-+-00.0  8086:29c0 Host bridge",
            "             +-01.0-[01]--+-00.0  8086:10fb Ethernet controller",
            "             |            +-10.0  8086:10ed Ethernet controller (VF of 0000:01:00.0)",
            "             |            \\-10.1  8086:10ed Ethernet controller (VF of 0000:01:00.0)",
            "             \\-02.0  104c:ac56 CardBus bridge",
            "  0000:01:10.1 8086:10ed class 020000 VF of 0000:01:00.0 below 0000:00:01.0; BARs: \
             none; caps: PCI Express (endpoint); ext caps: Alternative Routing-ID \
             Interpretation; xen add ok",
            "  0000:00:02.0 104c:ac56 class 060700 CardBus bridge; BARs: none; caps: none; xen \
             add -EOPNOTSUPP (95)",
            "    - 0000:00:02.0: CardBus bridge (header type 2 at 0x0e): listed, not trusted; \
             BARs and buses behind it not read",
        ] {
            assert!(
                t.lines().any(|l| l == expected),
                "missing {expected:?} in\n{t}"
            );
        }
        assert!(!t.contains("PCI problems"));
    }

    /// The per-DomU accounting of issue 10 (another test reads these exact keys).
    #[test]
    fn toolstack_reports_xenstore_accounting_and_refusals() {
        let mut r = sample();
        r.toolstack = Some(ToolstackSummary {
            xenstore_limit_bytes: 2_621_440,
            xenstore_global_limit_bytes: 57_374_956,
            domus: vec![DomuSummary {
                name: "hostile".into(),
                domid: 2,
                xenstore_peak_bytes: 2_454_519,
                xenstore_refused: 1311,
                console_throttled: 7,
                refusals: strings(&[
                    "xenstore: ENOMEM memory quota x 151",
                    "console: throttled x 7",
                ]),
                ..DomuSummary::default()
            }],
            ..ToolstackSummary::default()
        });
        let (_, v) = json(&r);
        let t = &v["toolstack"];
        assert_eq!(t["xenstore_limit_bytes"], 2_621_440);
        assert_eq!(t["xenstore_global_limit_bytes"], 57_374_956);
        let d = &t["domus"][0];
        assert_eq!(d["xenstore_bytes"], 0);
        assert_eq!(d["xenstore_peak_bytes"], 2_454_519);
        assert_eq!(d["xenstore_refused"], 1311);
        assert_eq!(d["console_throttled"], 7);
        assert_eq!(
            d["refusals"],
            serde_json::json!([
                "xenstore: ENOMEM memory quota x 151",
                "console: throttled x 7"
            ])
        );
        let t = text(&r);
        for expected in [
            "    xenstore: 0 bytes held, peak 2454519, 1311 request(s) refused; console throttled 7 time(s)",
            "    - xenstore: ENOMEM memory quota x 151",
        ] {
            assert!(
                t.lines().any(|l| l == expected),
                "missing {expected:?} in\n{t}"
            );
        }
        assert!(t.contains("xenstore limit 2560 KiB per DomU (56030 KiB for all)"));
    }
}
