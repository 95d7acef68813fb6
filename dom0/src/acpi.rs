//! Reading the ACPI tables the boot loader points at (`hvm_start_info.rsdp_paddr`): the RSDP,
//! the root table, every table header, and the MADT. Under Xen these are Xen's crafted RSDP,
//! XSDT and MADT (the MADT lists dom0's vCPUs as x2APIC entries, APIC id = 2 × vCPU id), plus
//! the native tables Xen lets through. Every read is checked against the memory map first, so
//! a bad pointer yields a report line, never a read of MMIO.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use acpi_fixup::{MadtSummary, RootTable, Rsdp, SdtHeader};
use report::{AcpiSummary, AcpiTable};
use xen::memmap::{MemType, MemoryMap};
use xen::start_info::PhysRead;

/// No table dom0 reads is anywhere near this big; a larger length is a corrupt header.
const MAX_TABLE: u32 = 1 << 20;
/// Root tables with more entries than this are corrupt.
const MAX_ENTRIES: usize = 256;

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

/// Read a whole table at `addr` (header first, for its length).
fn read_table(
    phys: &dyn PhysRead,
    map: &MemoryMap,
    addr: u64,
) -> Result<(SdtHeader, Vec<u8>), String> {
    let head = read(phys, map, "table header", addr, SdtHeader::SIZE as u64)?;
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if !(SdtHeader::SIZE as u32..=MAX_TABLE).contains(&len) {
        let sig = String::from_utf8_lossy(&head[..4]).into_owned();
        return Err(format!("table {sig:?} at {addr:#x} claims length {len:#x}"));
    }
    let bytes = read(phys, map, "table", addr, u64::from(len))?;
    let h = SdtHeader::parse(&bytes).map_err(|e| format!("table at {addr:#x}: {e}"))?;
    Ok((h, bytes))
}

fn sig(s: &[u8; 4]) -> String {
    s.iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Everything dom0 learns from ACPI at boot, and the MADT summary if there is one.
pub fn survey(
    phys: &dyn PhysRead,
    map: &MemoryMap,
    rsdp_paddr: u64,
    under_xen: bool,
) -> (AcpiSummary, Option<MadtSummary>) {
    let mut s = AcpiSummary {
        rsdp: rsdp_paddr,
        ..Default::default()
    };
    let mut madt = None;
    let rsdp = match read(phys, map, "RSDP", rsdp_paddr, Rsdp::V2_SIZE as u64)
        .and_then(|b| Rsdp::parse(&b).map_err(|e| format!("RSDP at {rsdp_paddr:#x}: {e}")))
    {
        Ok(r) => r,
        Err(e) => {
            s.problems.push(e);
            return (s, None);
        }
    };
    s.revision = rsdp.revision;
    s.oem_id = String::from_utf8_lossy(&rsdp.oem_id).into_owned();
    let (root_addr, entry_size) = match rsdp.root_table() {
        RootTable::Xsdt(a) => {
            s.root = "XSDT".to_string();
            (a, 8)
        }
        RootTable::Rsdt(a) => {
            s.root = "RSDT".to_string();
            (u64::from(a), 4)
        }
    };
    let root = s.root.clone();
    let entries = match read_table(phys, map, root_addr).and_then(|(_, bytes)| {
        if entry_size == 4 {
            return acpi_fixup::parse_rsdt_entries(&bytes)
                .map_err(|e| format!("RSDT at {root_addr:#x}: {e}"));
        }
        match acpi_fixup::parse_xsdt_entries(&bytes) {
            Ok(e) => Ok(e),
            Err(acpi_fixup::AcpiError::BadSignature { .. }) if under_xen => {
                // Xen 4.17 on firmware with no XSDT copies the header from address 0; length,
                // checksum and entries are Xen's own and sound (see acpi-fixup).
                let (e, bad) = acpi_fixup::parse_xsdt_entries_any_signature(&bytes)
                    .map_err(|e| format!("XSDT at {root_addr:#x}: {e}"))?;
                s.problems.push(format!(
                    "Xen's crafted XSDT at {root_addr:#x} has signature {:02x?} instead of \"XSDT\" \
                     (Xen 4.17 copies it from address 0 when the firmware has no XSDT); its checksum \
                     is valid, so its {} entries are used",
                    bad,
                    e.len()
                ));
                Ok(e)
            }
            Err(e) => Err(format!("{root} at {root_addr:#x}: {e}")),
        }
    }) {
        Ok(e) => e,
        Err(e) => {
            s.problems.push(e);
            return (s, None);
        }
    };
    if entries.len() > MAX_ENTRIES {
        s.problems.push(format!(
            "{} lists {} tables; reading the first {MAX_ENTRIES}",
            s.root,
            entries.len()
        ));
    }
    for &addr in entries.iter().take(MAX_ENTRIES) {
        let head = match read(phys, map, "table header", addr, SdtHeader::SIZE as u64) {
            Ok(h) => h,
            Err(e) => {
                s.problems.push(e);
                continue;
            }
        };
        let signature: [u8; 4] = [head[0], head[1], head[2], head[3]];
        let length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        s.tables.push(AcpiTable {
            signature: sig(&signature),
            paddr: addr,
            length,
        });
        if let Some(n) = coverage_note(map, &sig(&signature), addr, u64::from(length)) {
            s.problems.push(n);
        }
        if &signature == b"APIC" && madt.is_none() {
            match read_table(phys, map, addr).and_then(|(_, b)| {
                MadtSummary::parse(&b).map_err(|e| format!("MADT at {addr:#x}: {e}"))
            }) {
                Ok(m) => {
                    s.madt_cpus = m.cpus_enabled;
                    s.madt_apic_ids = m.apic_ids.clone();
                    s.ioapics = m.ioapics.len() as u32;
                    s.overrides = m.overrides;
                    s.problems.extend(m.problems.iter().cloned());
                    madt = Some(m);
                }
                Err(e) => s.problems.push(e),
            }
        }
    }
    (s, madt)
}
