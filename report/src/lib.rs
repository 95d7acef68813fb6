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
//! `modules`, `toolstack`, `uplink` (object or null, see [`UplinkSummary`]), `warnings`,
//! `errors`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

/// The version of the JSON layout; bumped when a key changes meaning or goes away.
pub const REPORT_VERSION: u64 = 1;

/// The report's wire version; [`REPORT_VERSION`] in every report dom0 writes. Bump it when the
/// JSON's shape changes. (The move from hand-written emitters to serde kept version 1's shape:
/// same keys, same words for the enums.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReportVersion(pub u64);

impl Default for ReportVersion {
    fn default() -> Self {
        ReportVersion(REPORT_VERSION)
    }
}

/// One memory-map entry as reported (`xen::memmap::MemRegion` with its type's name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryRegion {
    pub addr: u64,
    pub size: u64,
    /// The type's name ("ram", "reserved", "acpi", ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// `addr + size` (saturating).
    pub end: u64,
    /// The raw e820 type.
    #[serde(rename = "type_raw")]
    pub kind_raw: u32,
}

impl From<&xen::memmap::MemRegion> for MemoryRegion {
    fn from(r: &xen::memmap::MemRegion) -> Self {
        MemoryRegion {
            addr: r.addr,
            size: r.size,
            end: r.end(),
            kind: r.kind.name().into(),
            kind_raw: r.kind.raw(),
        }
    }
}

/// `Vec<(String, V)>` as a JSON object, in order (options, build steps: order matters to a
/// reader, and names may repeat only if the writer lets them).
mod pairs_as_map {
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt;
    use core::marker::PhantomData;

    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde::ser::{Serialize, Serializer};

    pub fn serialize<S: Serializer, V: Serialize>(
        pairs: &[(String, V)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, V: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<(String, V)>, D::Error> {
        struct Pairs<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Pairs<V> {
            type Value = Vec<(String, V)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = m.next_entry()? {
                    out.push(pair);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Pairs(PhantomData))
    }
}

/// What a BAR decodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PciBarKind {
    #[default]
    Mem32,
    Mem64,
    Io,
    Rom,
}

impl PciBarKind {
    pub fn name(self) -> &'static str {
        match self {
            PciBarKind::Mem32 => "mem32",
            PciBarKind::Mem64 => "mem64",
            PciBarKind::Io => "io",
            PciBarKind::Rom => "rom",
        }
    }
}

impl From<pci::BarKind> for PciBarKind {
    fn from(k: pci::BarKind) -> Self {
        match k {
            pci::BarKind::Mem32 => PciBarKind::Mem32,
            pci::BarKind::Mem64 => PciBarKind::Mem64,
            pci::BarKind::Io => PciBarKind::Io,
            pci::BarKind::Rom => PciBarKind::Rom,
        }
    }
}

/// Where a DomU is in its life, as the report says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomuState {
    /// Not built yet.
    #[default]
    Building,
    /// The domain builder failed; the half-built domain was destroyed.
    #[serde(rename = "build failed")]
    BuildFailed,
    Running,
    /// It shut down with this `SHUTDOWN_*` reason.
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
    /// A shutdown code Xen does not define.
    Unknown,
    /// Xen says it is dying (destroyed by someone else).
    Dying,
    /// `XEN_DOMCTL_getdomaininfo` no longer finds it.
    Vanished,
    /// It ignored `control/shutdown` for the grace period; dom0 destroyed it.
    Destroyed,
}

impl DomuState {
    pub fn name(self) -> &'static str {
        match self {
            DomuState::Building => "building",
            DomuState::BuildFailed => "build failed",
            DomuState::Running => "running",
            DomuState::Poweroff => "poweroff",
            DomuState::Reboot => "reboot",
            DomuState::Suspend => "suspend",
            DomuState::Crash => "crash",
            DomuState::Watchdog => "watchdog",
            DomuState::SoftReset => "soft_reset",
            DomuState::Unknown => "unknown",
            DomuState::Dying => "dying",
            DomuState::Vanished => "vanished",
            DomuState::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for DomuState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What Xen said about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct XenInfo {
    pub major: u32,
    pub minor: u32,
    /// `XENVER_extraversion`, e.g. ".0" or "-unstable".
    pub extra: String,
    /// "4.17.0": major, minor and extraversion, as Xen prints its version.
    pub version: String,
    /// Names of the `XENVER_get_features` bits that are set.
    pub features: Vec<String>,
    /// `XENVER_capabilities`, e.g. "xen-3.0-x86_64 hvm-3.0-x86_32 ...".
    pub caps: String,
    /// "vmcall" (Intel) or "vmmcall" (AMD), as the hypercall page uses.
    pub hypercall_insn: String,
}

/// The start_info header fields worth reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartInfoSummary {
    pub paddr: u64,
    pub version: u32,
    pub flags: u32,
    pub nr_modules: u32,
    pub rsdp: u64,
}

/// dom0's heap, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeapStats {
    pub size: u64,
    pub used: u64,
    pub peak: u64,
}

/// A boot milestone, `at_ns` after dom0's entry point.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Phase {
    pub name: String,
    pub at_ns: u64,
}

/// The timer self-check: a one-shot timer asked for `requested_ns` from now fired after
/// `delivered_ns`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimerCheck {
    pub requested_ns: u64,
    pub delivered_ns: u64,
    /// How it was armed and delivered, e.g. "VCPUOP_set_singleshot_timer + VIRQ_TIMER".
    pub via: String,
}

/// One start_info module and what dom0 made of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModuleSummary {
    pub index: u32,
    pub paddr: u64,
    pub size: u64,
    pub cmdline: String,
    /// What it was recognised as, e.g. "bundle", "unknown".
    pub kind: String,
    /// What dom0 did with it (used, recognised only, or rejected and why).
    pub status: ModuleStatus,
}

/// One DomU dom0 built from the boot bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DomuSummary {
    pub name: String,
    /// 0 if it was never created.
    pub domid: u64,
    pub memory_mib: u64,
    pub vcpus: u64,
    pub state: DomuState,
    /// Build steps and their durations (ns).
    #[serde(with = "pairs_as_map")]
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
    /// The most wakeups its event channels caused dom0 for nothing (no request, console line
    /// or packet) in one 100 ms period: the storm guard's evidence, also for guests it never
    /// paused (a storm is over 50, or at least 20 that were 90% of dom0's passes).
    pub storm_peak_wakeups: u64,
    /// One line per class of refusal with its count, e.g. "xenstore: ENOMEM memory quota x
    /// 12" (at most 16 lines).
    pub refusals: Vec<String>,
    pub restarts: u64,
    /// Pages written while building (grant copies or foreign mappings) and heap bytes dom0
    /// holds for it.
    pub pages_copied: u64,
    /// `GNTTABOP_copy` operations the build wrote the kernel and initrd with (0 when it fell
    /// back to foreign mappings; dom0's log says why).
    pub grant_copies: u64,
    /// Its TSC mode as Xen holds it (`XEN_DOMCTL_gettscinfo`, xl.cfg's spelling: `default`,
    /// `always_emulate`, `native`), and whether Xen traps its `rdtsc` under that mode (for
    /// `default`: when the host's TSC is not invariant, as dom0's own CPUID leaf says).
    pub tsc_mode: String,
    pub tsc_emulated: bool,
    /// CPU time Xen gave it, ns (`XEN_DOMCTL_getdomaininfo`'s `cpu_time`, as xentop shows),
    /// read when dom0 found it stopped (0: not read).
    pub cpu_time_ns: u64,
    pub dom0_heap_bytes: u64,
    /// Its network interfaces, served by dom0's netback.
    pub vifs: Vec<VifSummary>,
    pub errors: Vec<String>,
}

/// The toolstack's view: the domctl version found, and the DomUs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolstackSummary {
    pub domctl_version: u64,
    pub domctl_probes: u64,
    /// dom0 frames used for foreign mappings: the first, and how many.
    pub window_gfn: u64,
    pub window_pages: u64,
    /// The xenstore memory limit of each DomU (`xenstore-quota=`), in bytes.
    pub xenstore_limit_bytes: u64,
    /// What all DomUs together may make the xenstore service hold, in bytes.
    pub xenstore_global_limit_bytes: u64,
    pub domus: Vec<DomuSummary>,
    /// dom0's own address on its switch (issue 12), if it has one.
    pub dom0_net: Option<Dom0NetSummary>,
    /// Destroyed domains still mapped or otherwise not fully gone, as Xen reports them.
    pub leaks: Vec<String>,
}

/// One table the root table (XSDT or RSDT) lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// The ACPI namespace dom0 read (DSDT and SSDTs, see the `aml` crate): "DSDT SSDT: 1234
    /// objects, 56 devices"; empty when no definition block was read.
    pub namespace: String,
    /// PCI host bridges (`PNP0A03`/`PNP0A08` devices) in namespace order: the PCI roots.
    pub host_bridges: Vec<HostBridgeSummary>,
    /// What was wrong (bad tables, odd entries), each naming the table and offset.
    pub problems: Vec<String>,
}

/// The firmware Xen booted from (issue 15), from `XENPF_firmware_info` (`XEN_FW_EFI_INFO`).
/// In JSON: `{"boot","efi_version","config_table","efi_tables","rsdp","memory","problems"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FirmwareSummary {
    /// "uefi", or "bios" when Xen reports no EFI boot.
    pub boot: String,
    /// "2.70" (EFI only).
    pub efi_version: String,
    /// "0x3f9ee018 (12 entries)" (EFI only).
    pub config_table: String,
    /// Each configuration table entry: "ACPI 2.0 RSDP at 0x3f77d014", "SMBIOS3 at ...", or the
    /// GUID of one dom0 does not know.
    pub efi_tables: Vec<String>,
    /// The firmware's own RSDP (ACPI 2.0 entry, else ACPI 1.0); 0 if none was found.
    pub rsdp: u64,
    /// The EFI memory type behind each non-RAM entry of dom0's memory map:
    /// "[0x3f77e000, 0x3f7fe000) nvs: EfiACPIMemoryNVS".
    pub memory: Vec<String>,
    pub problems: Vec<String>,
}

/// A PCI host bridge from the ACPI namespace. In JSON: `{"path","hid","status","segment",
/// "bus_start","bus_end","uid","pxm","windows","routing","problems"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostBridgeSummary {
    /// `\_SB_.PC80`.
    pub path: String,
    /// "PNP0A08" or "PNP0A03".
    pub hid: String,
    /// `_STA` (0xf when absent); a bridge without bit 0 (present) is not enumerated.
    pub status: u64,
    /// `_SEG`.
    pub segment: u16,
    /// The root bus (`_CRS` bus range, else `_BBN`) and the last bus behind it.
    pub bus_start: u8,
    pub bus_end: u8,
    pub uid: Option<u64>,
    /// `_PXM`, passed to Xen with each function below (`XEN_PCI_DEV_PXM`).
    pub pxm: Option<u32>,
    /// The windows `_CRS` produces: "mem 0xfd000000-0xfd3fffff", "io 0xc000-0xcfff".
    pub windows: Vec<String>,
    /// `_PRT`: "128 entries", or why it was not evaluated.
    pub routing: String,
    /// What could not be evaluated, per object.
    pub problems: Vec<String>,
}

/// What vCPU 0's CPUID says (dom0 fills it from `cpu::CpuidReport`). In JSON: `{"vendor",
/// "family","model","stepping","brand","features","phys_addr_bits","xen_tsc_mode",
/// "xen_tsc_emulated","xen_hvm_flags"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// Config-space dword reads and writes the enumeration made (every root, and the probing
    /// fallback): each one a VM exit under Xen.
    pub enumerate_config_reads: u64,
    pub enumerate_config_writes: u64,
}

/// One PCI function.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// What `PHYSDEVOP_pci_device_add` returned (on the wire: "ok", "-ENODEV (19)"..., or
    /// "not reported").
    pub xen_add: XenAdd,
    /// Its legacy interrupt as the host bridge's `_PRT` routes it (the pin swizzled through
    /// each bridge above): "INTA -> GSI 21 (\\_SB_.GSIF)", "INTA -> \\_SB_.LNKD (...)";
    /// empty without an interrupt pin or without a `_PRT`.
    pub irq: String,
    /// A register read through the device's BAR that proves it answers there (see
    /// `drivers::pcicheck`), with "ok"/"FAILED"; empty when dom0 has no check for the device.
    pub device_check: String,
    /// Everything wrong with it, each naming the function and the register offset.
    pub problems: Vec<String>,
}

/// One BAR of a [`PciFunction`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PciBar {
    /// 0..=5, 6 for the expansion ROM.
    pub index: u8,
    pub kind: PciBarKind,
    pub prefetchable: bool,
    pub address: u64,
    /// 0 if not sized.
    pub size: u64,
}

/// Everything dom0 reports about its boot. All owned, so it can be filled step by step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BootReport {
    pub report_version: ReportVersion,
    pub dom0_version: String,
    pub under_xen: bool,
    pub xen: Option<XenInfo>,
    pub start_info: Option<StartInfoSummary>,
    pub cmdline: String,
    /// Options that took effect (name, value).
    #[serde(with = "pairs_as_map")]
    pub options: Vec<(String, String)>,
    pub memory_map: Vec<MemoryRegion>,
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
    /// The firmware (EFI or BIOS) as Xen reports it; None without Xen.
    pub firmware: Option<FirmwareSummary>,
    /// The NIC uplink (`nic=`; None: not asked for).
    pub uplink: Option<UplinkSummary>,
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
    /// The report as one line of JSON (no newline at the end), pure ASCII: characters
    /// outside ASCII (in strings from guests, firmware or the command line) are written as
    /// `\uXXXX` escapes, so a serial console or Xen's byte-oriented console ring cannot mangle
    /// it, and serde_json escapes control characters, so it is always one line.
    pub fn write_json(&self, w: &mut dyn fmt::Write) -> fmt::Result {
        let s = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        for c in s.chars() {
            if c.is_ascii() {
                w.write_char(c)?;
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{:04x}", u)?;
                }
            }
        }
        Ok(())
    }

    /// Read a report written by [`BootReport::write_json`].
    pub fn from_json(s: &str) -> Result<BootReport, serde_json::Error> {
        serde_json::from_str(s)
    }
}

mod net;
mod pci_summary;
mod state;
mod text;

pub use net::{Dom0NetSummary, UplinkState, UplinkSummary, VifSummary};
pub use state::{ModuleStatus, XenAdd};

#[cfg(test)]
use text::{Ms, Size};

#[cfg(test)]
mod tests;
