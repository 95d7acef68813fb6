//! Reading the ACPI tables the boot loader points at (`hvm_start_info.rsdp_paddr`): the RSDP,
//! the root table, every table header, and the MADT. Under Xen these are Xen's crafted RSDP,
//! XSDT and MADT (the MADT lists dom0's vCPUs as x2APIC entries, APIC id = 2 × vCPU id), plus
//! the native tables Xen lets through. Every read is checked against the memory map first, so
//! a bad pointer yields a report line, never a read of MMIO.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use acpi_fixup::build::{
    ApicIdScheme, ContainerSpec, build_madt, build_rsdp, build_xsdt, compare_madt_labeled,
};
use acpi_fixup::validate::{AcpiValidation, TableSource, validate};
use acpi_fixup::{MadtSummary, RootTable, Rsdp, SdtHeader};
use log::{info, warn};
use report::{AcpiSummary, AcpiTable, BootReport, ContainerMadt};
use xen::memmap::{MemType, MemoryMap};
use xen::start_info::PhysRead;

use crate::finding;
use crate::host_bridges::{self, AcpiFacts};
use crate::platform::Platform;

fn acpi_kind(k: MemType) -> bool {
    matches!(
        k,
        MemType::Acpi | MemType::Nvs | MemType::Reserved | MemType::Ram
    )
}

/// Whether `[addr, addr+len)` may be read as ACPI data: below 1 MiB (the BIOS area is
/// identity-mapped for dom0 whatever the map says), or every 4 KiB page it touches holds some
/// ACPI, NVS, reserved or RAM memory. Page granularity, because that is how Xen maps dom0's
/// memory: a page partly covered by an ACPI entry is backed whole. (Needed in practice: Xen's
/// e820 entry for its crafted tables can be shorter than the tables, see [`survey`].)
fn readable(map: &MemoryMap, addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    if addr != 0 && end <= 0x10_0000 {
        return true;
    }
    let mut page = addr & !0xfff;
    while page < end {
        let touches = map
            .regions()
            .iter()
            .any(|r| acpi_kind(r.kind) && r.addr < page + 0x1000 && r.end() > page);
        if !touches {
            return false;
        }
        page += 0x1000;
    }
    addr != 0
}

fn read(
    phys: &dyn PhysRead,
    map: &MemoryMap,
    what: &str,
    addr: u64,
    len: u64,
) -> Result<Vec<u8>, String> {
    if !readable(map, addr, len) {
        return Err(format!(
            "{what} at {addr:#x} (+{len:#x}) is outside ACPI/reserved/RAM memory"
        ));
    }
    let mut buf = alloc::vec![0u8; len as usize];
    phys.read(addr, &mut buf)
        .map_err(|e| format!("{what} at {addr:#x}: {e}"))?;
    Ok(buf)
}

/// A note when a table is not wholly inside the memory map's ACPI/NVS/reserved/RAM entries.
fn coverage_note(map: &MemoryMap, sig: &str, addr: u64, len: u64) -> Option<String> {
    if addr.saturating_add(len) <= 0x10_0000 || map.covered_by(addr, len, acpi_kind) {
        return None;
    }
    let end = map.coverage_end(addr, acpi_kind);
    Some(format!(
        "{sig} at {addr:#x} (+{len:#x}) runs {} bytes past the end of its memory-map entry at {end:#x} \
         (Xen's pvh_add_mem_range() moves an entry's start down without growing it when a table is \
         placed just below; the bytes are in the same backed page)",
        addr + len - end.max(addr)
    ))
}

/// Reads tables for `acpi_fixup::validate`, refusing anything outside ACPI/NVS/reserved/RAM
/// memory (page-granular, see [`readable`]).
struct MapSource<'a> {
    phys: &'a dyn PhysRead,
    map: &'a MemoryMap,
}

impl TableSource for MapSource<'_> {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        read(self.phys, self.map, "table", paddr, len as u64).ok()
    }
}

/// Find the firmware's own RSDP where the ACPI spec says it is on a PC: the first KiB of the
/// EBDA (segment at 0x40E) or 0xE0000-0xFFFFF, on a 16-byte boundary, with a valid checksum.
/// Under Xen this is the native RSDP, which Xen leaves mapped below 1 MiB for dom0.
fn find_native_rsdp(phys: &dyn PhysRead) -> Option<u64> {
    let mut seg = [0u8; 2];
    let ebda = phys
        .read(0x40e, &mut seg)
        .ok()
        .map(|()| u64::from(u16::from_le_bytes(seg)) << 4);
    let mut areas: Vec<(u64, u64)> = Vec::new();
    if let Some(e) = ebda.filter(|&e| (0x8_0000..0xa_0000).contains(&e)) {
        areas.push((e, e + 1024));
    }
    areas.push((0xe_0000, 0x10_0000));
    for (start, end) in areas {
        let mut buf = alloc::vec![0u8; (end - start) as usize];
        if phys.read(start, &mut buf).is_err() {
            continue;
        }
        for off in (0..buf.len().saturating_sub(Rsdp::V1_SIZE)).step_by(16) {
            if &buf[off..off + 8] == b"RSD PTR " && Rsdp::parse(&buf[off..]).is_ok() {
                return Some(start + off as u64);
            }
        }
    }
    None
}

/// What dom0 wants for its own container's MADT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Under Xen: the vCPUs dom0 runs, in Xen's PVH layout (x2APIC, APIC id = 2 x vCPU).
    XenPvh { vcpus: u32 },
    /// Without Xen, limited by `maxcpus=`: the first `cpus` enabled CPUs of the firmware MADT.
    FirmwareLimited { cpus: u32 },
    /// Without Xen, not limited: the firmware MADT as it is (no container check).
    Firmware,
}

impl Container {
    /// The container dom0 checks its MADT against: under Xen, the vCPUs it runs; without Xen,
    /// the firmware's, cut to `maxcpus=` when given.
    pub fn choose(under_xen: bool, maxcpus: Option<u32>, run_vcpus: u32) -> Container {
        match (under_xen, maxcpus) {
            (true, _) => Container::XenPvh { vcpus: run_vcpus },
            (false, Some(n)) => Container::FirmwareLimited { cpus: n },
            (false, None) => Container::Firmware,
        }
    }
}

/// The ACPI phase of the boot: walk the tables at `rsdp_paddr` (0: none given), check and
/// rewrite the container MADT, reconcile the vCPU count with the MADT, and put it all in the
/// report. Returns what the PCI survey needs: the MCFG entries (the ECAM windows) and the
/// host bridges of the ACPI namespace.
pub fn boot_survey(
    p: &impl Platform,
    rep: &mut BootReport,
    map: &MemoryMap,
    rsdp_paddr: u64,
    maxcpus: Option<u32>,
    run_vcpus: u32,
    firmware_rsdp: Option<u64>,
) -> AcpiFacts {
    if rsdp_paddr == 0 {
        finding::warn(rep, "no RSDP in start_info: ACPI tables not read");
        if !rep.under_xen {
            rep.vcpus = 1;
        }
        return AcpiFacts::default();
    }
    let container = Container::choose(rep.under_xen, maxcpus, run_vcpus);
    let (acpi, madt, facts) = survey(p, map, rsdp_paddr, container, firmware_rsdp);
    let names: Vec<&str> = acpi.tables.iter().map(|t| t.signature.as_str()).collect();
    info!(
        "ACPI: RSDP rev {} at {:#x} ({}), {} tables: {}",
        acpi.revision,
        acpi.rsdp,
        acpi.oem_id.trim_end(),
        acpi.tables.len(),
        names.join(" ")
    );
    for pr in &acpi.problems {
        warn!("ACPI: {pr}");
    }
    if let Some(c) = &acpi.container {
        if c.differences.is_empty() {
            info!(
                "ACPI: container MADT ({} vCPUs) identical to {}",
                c.vcpus, c.compared_with
            );
        } else {
            warn!(
                "ACPI: container MADT ({} vCPUs) differs from {} in {} places{}",
                c.vcpus,
                c.compared_with,
                c.differences.len(),
                if c.rewritten {
                    "; rewritten tables in use"
                } else {
                    ""
                }
            );
        }
    }
    if !acpi.namespace.is_empty() {
        info!("ACPI: namespace {}", acpi.namespace);
    }
    for b in &acpi.host_bridges {
        info!(
            "ACPI: host bridge {} ({}) segment {:04x} buses {:02x}-{:02x}, {} windows, _PRT {}",
            b.path,
            b.hid,
            b.segment,
            b.bus_start,
            b.bus_end,
            b.windows.len(),
            b.routing
        );
    }
    reconcile_vcpus(rep, madt.as_ref(), maxcpus);
    rep.acpi = Some(acpi);
    facts
}

/// The vCPU count against the MADT. Under Xen, Xen's crafted MADT and `VCPUOP_is_up` must agree
/// (APIC id = 2 x vCPU id); without Xen the MADT is the only count (cut to `maxcpus=`).
pub fn reconcile_vcpus(rep: &mut BootReport, madt: Option<&MadtSummary>, maxcpus: Option<u32>) {
    match (madt, rep.under_xen) {
        (Some(m), true) => {
            info!(
                "MADT: {} vCPUs (APIC ids {:?}), {} IO-APICs",
                m.cpus_enabled,
                m.apic_ids,
                m.ioapics.len()
            );
            if m.cpus_enabled != rep.vcpus {
                let w = format!(
                    "MADT lists {} vCPUs but Xen says {}",
                    m.cpus_enabled, rep.vcpus
                );
                finding::warn(rep, w);
            }
        }
        (Some(m), false) => {
            rep.vcpus = m.cpus_enabled.min(maxcpus.unwrap_or(u32::MAX));
            info!(
                "vCPUs: {} enabled in the MADT (APIC ids {:?}); only the boot CPU runs",
                m.cpus_enabled, m.apic_ids
            );
        }
        (None, false) => {
            rep.vcpus = 1;
            warn!("vCPUs: no usable MADT; counting the boot CPU only");
            rep.warnings
                .push("no usable MADT: vCPU count is the boot CPU only".to_string());
        }
        (None, true) => {}
    }
}

/// Everything dom0 learns from ACPI at boot: the walk of the tables it was given (every check
/// of `acpi_fixup::validate`), the MADT summary, and the container MADT check, which rewrites
/// MADT, XSDT and RSDP into dom0's memory when the container differs from what dom0 was given.
pub fn survey(
    p: &impl Platform,
    map: &MemoryMap,
    rsdp_paddr: u64,
    container: Container,
    firmware_rsdp: Option<u64>,
) -> (AcpiSummary, Option<MadtSummary>, AcpiFacts) {
    let phys = p.phys();
    let src = MapSource { phys, map };
    let v = validate(&src, rsdp_paddr);
    let mut s = AcpiSummary {
        rsdp: rsdp_paddr,
        ..Default::default()
    };
    if let Some(r) = &v.rsdp {
        s.revision = r.revision;
        s.oem_id = String::from_utf8_lossy(&r.oem_id).into_owned();
    }
    s.root = match v.root {
        Some(RootTable::Xsdt(_)) => "XSDT".to_string(),
        Some(RootTable::Rsdt(_)) => "RSDT".to_string(),
        None => String::new(),
    };
    let root_addr = match v.root {
        Some(RootTable::Xsdt(a)) => a,
        Some(RootTable::Rsdt(a)) => u64::from(a),
        None => 0,
    };
    // The tables the root table lists (the walk also checks the root itself and DSDT/FACS).
    // DSDT and FACS come from the FADT, not the root table: they are in `present`.
    let fadt_named =
        |t: &&acpi_fixup::validate::TableCheck| matches!(t.signature.as_str(), "DSDT" | "FACS");
    for t in v
        .tables
        .iter()
        .filter(|t| t.paddr != root_addr && !fadt_named(t))
    {
        s.tables.push(AcpiTable {
            signature: t.signature.clone(),
            paddr: t.paddr,
            length: t.length,
            revision: t.revision,
            ok: t.ok,
        });
        if let Some(n) = coverage_note(map, &t.signature, t.paddr, u64::from(t.length)) {
            s.problems.push(n);
        }
    }
    s.problems.extend(v.all_problems());
    s.present = v.present.clone();
    if let Some(f) = &v.fadt {
        s.fadt.push(format!("revision {}", f.revision));
        for (on, name) in [
            (f.hw_reduced(), "hw_reduced"),
            (f.legacy_devices(), "legacy_devices"),
            (f.has_8042(), "8042"),
            (f.vga_not_present(), "no_vga"),
            (f.msi_not_supported(), "no_msi"),
            (f.cmos_rtc_not_present(), "no_cmos_rtc"),
        ] {
            if on {
                s.fadt.push(name.to_string());
            }
        }
    }
    for m in &v.mcfg {
        s.mcfg.push(format!(
            "segment {} buses {:#04x}-{:#04x} at {:#x}",
            m.segment, m.start_bus, m.end_bus, m.base
        ));
    }
    let madt = v.madt.clone();
    if let Some(m) = &madt {
        s.madt_cpus = m.cpus_enabled;
        s.madt_apic_ids = m.apic_ids.clone();
        s.ioapics = m.ioapics.len() as u32;
        s.overrides = m.overrides;
    }
    if let Some(m) = &madt {
        s.container = container_check(p, map, &v, m, (container, firmware_rsdp), &mut s.problems);
    }
    let (line, bridges, problems) =
        host_bridges::read_namespace(&v.tables, |a, n| src.read(a, n), || p.now_ns());
    s.namespace = line;
    s.host_bridges = bridges.iter().map(host_bridges::summary).collect();
    s.problems.extend(problems);
    let facts = AcpiFacts {
        mcfg: v.mcfg.clone(),
        host_bridges: bridges,
    };
    (s, madt, facts)
}

/// Build the container MADT, compare it with the one dom0 was given, rewrite when they differ.
fn container_check(
    p: &impl Platform,
    map: &MemoryMap,
    given: &AcpiValidation,
    given_madt: &MadtSummary,
    (container, firmware_rsdp): (Container, Option<u64>),
    problems: &mut Vec<String>,
) -> Option<ContainerMadt> {
    let phys = p.phys();
    let madt_entry = given
        .tables
        .iter()
        .find(|t| t.signature == "APIC" && t.used)?;
    let given_bytes = read(
        phys,
        map,
        "MADT",
        madt_entry.paddr,
        u64::from(madt_entry.length),
    )
    .ok()?;
    // The firmware's RSDP: from the EFI configuration table on a UEFI boot (crate::firmware),
    // else where a BIOS puts it below 1 MiB.
    let native_rsdp = firmware_rsdp.or_else(|| find_native_rsdp(phys));
    let (spec, compared_with) = match container {
        Container::Firmware => return None,
        Container::XenPvh { vcpus } => {
            // The host's own MADT (its IO-APICs and overrides), from the firmware's RSDP.
            let native = native_rsdp.and_then(|r| validate(&MapSource { phys, map }, r).madt);
            let Some(native) = native else {
                problems.push(
                    "container MADT: the firmware's MADT was not found; not compared".to_string(),
                );
                return None;
            };
            (
                ContainerSpec::xen_pvh_dom0(&native, vcpus),
                "Xen's crafted MADT",
            )
        }
        Container::FirmwareLimited { cpus } => {
            let ids: Vec<u32> = given_madt
                .apic_ids
                .iter()
                .copied()
                .take(cpus as usize)
                .collect();
            let n = ids.len() as u32;
            (
                ContainerSpec::from_host_madt(given_madt, n, ApicIdScheme::List(ids)),
                "the firmware MADT",
            )
        }
    };
    let built = match build_madt(&spec) {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!("container MADT: cannot build it: {e:?}"));
            return None;
        }
    };
    let differences = compare_madt_labeled(&given_bytes, "given", &built, "container");
    let mut c = ContainerMadt {
        vcpus: spec.vcpus,
        apic_ids: spec.apic_ids().unwrap_or_default(),
        compared_with: compared_with.to_string(),
        native_rsdp: native_rsdp.unwrap_or(0),
        differences,
        ..Default::default()
    };
    if !c.differences.is_empty() {
        match rewrite(p, given, &built) {
            Ok((rsdp, madt)) => {
                // Check what was written exactly like what dom0 was given (no memory-map check:
                // dom0 placed these tables in its own memory).
                let again = validate(&Placed(phys), rsdp);
                for p in again.all_problems() {
                    problems.push(format!("rewritten tables: {p}"));
                }
                c.rewritten = true;
                c.rsdp = rsdp;
                c.madt = madt;
            }
            Err(e) => problems.push(format!("container MADT: not rewritten: {e}")),
        }
    }
    Some(c)
}

/// Reads the tables dom0 wrote itself (placed in memory dom0 keeps).
struct Placed<'a>(&'a dyn PhysRead);

impl TableSource for Placed<'_> {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        let mut b = alloc::vec![0u8; len];
        self.0.read(paddr, &mut b).ok()?;
        Some(b)
    }
}

/// Write the container MADT, an XSDT listing it instead of the old one (every other entry as
/// it was), and an RSDP for that XSDT. Returns (RSDP, MADT) addresses.
fn rewrite(p: &impl Platform, given: &AcpiValidation, madt: &[u8]) -> Result<(u64, u64), String> {
    let madt_addr = p.place(madt)?;
    let old_madt = given
        .tables
        .iter()
        .find(|t| t.signature == "APIC")
        .map(|t| t.paddr);
    let root_addr = match given.root {
        Some(RootTable::Xsdt(a)) => a,
        Some(RootTable::Rsdt(a)) => u64::from(a),
        None => return Err("no root table".to_string()),
    };
    let entries: Vec<u64> = given
        .tables
        .iter()
        .filter(|t| t.paddr != root_addr && !matches!(t.signature.as_str(), "DSDT" | "FACS"))
        .map(|t| {
            if Some(t.paddr) == old_madt {
                madt_addr
            } else {
                t.paddr
            }
        })
        .collect();
    let oem = given.rsdp.as_ref().map_or(*b"RUSTD0", |r| r.oem_id);
    let header = SdtHeader {
        signature: *b"XSDT",
        revision: 1,
        oem_id: oem,
        ..Default::default()
    };
    let xsdt = build_xsdt(&header, &entries).map_err(|e| format!("XSDT: {e:?}"))?;
    let xsdt_addr = p.place(&xsdt)?;
    let rsdp = build_rsdp(xsdt_addr, oem);
    Ok((p.place(&rsdp)?, madt_addr))
}

#[cfg(test)]
mod tests;
