//! The firmware Xen booted from (issue 15). Under UEFI the firmware's RSDP is in the EFI
//! configuration table, not in the BIOS area below 1 MiB where dom0 looks on a BIOS machine.
//! A PVH dom0 has no EFI system table of its own; Xen hands out the table's address with
//! `XENPF_firmware_info`/`XEN_FW_EFI_CONFIG_TABLE`, as Linux's `xen_efi_probe()` reads it. The
//! table and what it points to are firmware memory (EFI runtime data, ACPI reclaim), which
//! Xen identity-maps for the hardware domain as reserved/ACPI/NVS entries of its memory map;
//! nothing is read outside those entries (a read elsewhere would be dom0's own RAM, or fault).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use log::{info, warn};
use report::{BootReport, FirmwareSummary};
use xen::memmap::{MemType, MemoryMap};
use xen::platform::{efi_config_table, efi_mem_info, efi_memory_type_name, efi_version};
use xen::start_info::PhysRead;
use xen::{Hypercall, XenError};

/// Most configuration table entries read (real firmware has about 10 to 20).
const MAX_ENTRIES: u32 = 256;
/// Most memory-map entries whose EFI type is asked.
const MAX_TYPED: usize = 64;

/// `EFI_ACPI_20_TABLE_GUID` and friends, as the bytes of an `EFI_GUID` (UEFI 2.10 §4.6).
const GUIDS: [(&str, [u8; 16]); 5] = [
    (
        "ACPI 2.0 RSDP",
        guid(
            0x8868_e871,
            0xe4f1,
            0x11d3,
            [0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81],
        ),
    ),
    (
        "ACPI 1.0 RSDP",
        guid(
            0xeb9d_2d30,
            0x2d88,
            0x11d3,
            [0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d],
        ),
    ),
    (
        "SMBIOS",
        guid(
            0xeb9d_2d31,
            0x2d88,
            0x11d3,
            [0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d],
        ),
    ),
    (
        "SMBIOS3",
        guid(
            0xf2fd_1544,
            0x9794,
            0x4a2c,
            [0x99, 0x2e, 0xe5, 0xbb, 0xcf, 0x20, 0xe3, 0x94],
        ),
    ),
    (
        "EFI memory attributes",
        guid(
            0xdcfa_911d,
            0x26eb,
            0x469f,
            [0xa2, 0x20, 0x38, 0xb7, 0xdc, 0x46, 0x12, 0x20],
        ),
    ),
];

const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

fn guid_text(g: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
        u16::from_le_bytes([g[4], g[5]]),
        u16::from_le_bytes([g[6], g[7]]),
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// Whether `[addr, addr+len)` is firmware memory Xen maps for dom0: every page it touches in a
/// reserved, ACPI or NVS entry of dom0's memory map.
fn firmware_memory(map: &MemoryMap, addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    let mut page = addr & !0xfff;
    while page < end {
        let ok = map.regions().iter().any(|r| {
            matches!(r.kind, MemType::Reserved | MemType::Acpi | MemType::Nvs)
                && r.addr <= page
                && r.end() >= (page + 0x1000).min(end)
        });
        if !ok {
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
    len: usize,
) -> Result<Vec<u8>, String> {
    if !firmware_memory(map, addr, len as u64) {
        return Err(format!(
            "{what} at {addr:#x} (+{len:#x}) is not in a reserved/ACPI/NVS entry of dom0's memory \
             map: not read"
        ));
    }
    let mut buf = alloc::vec![0u8; len];
    phys.read(addr, &mut buf)
        .map_err(|e| format!("{what} at {addr:#x}: {e}"))?;
    Ok(buf)
}

/// Asks Xen what firmware it booted from, records it in the report, and returns the
/// firmware's RSDP when the EFI configuration table names one (`None` on a BIOS boot: dom0
/// then looks below 1 MiB).
pub fn survey(
    x: &dyn Hypercall,
    phys: &dyn PhysRead,
    map: &MemoryMap,
    rep: &mut BootReport,
) -> Option<u64> {
    let mut s = FirmwareSummary::default();
    let version = match efi_version(x) {
        Ok(v) => v,
        Err(XenError::ENOSYS) => {
            s.boot = "bios".into();
            info!("firmware: BIOS (Xen reports no EFI boot)");
            rep.firmware = Some(s);
            return None;
        }
        Err(e) => {
            s.boot = "unknown".into();
            s.problems
                .push(format!("XENPF_firmware_info (XEN_FW_EFI_VERSION): {e}"));
            rep.firmware = Some(s);
            return None;
        }
    };
    s.boot = "uefi".into();
    s.efi_version = format!("{}.{:02}", version >> 16, version & 0xffff);
    match efi_config_table(x) {
        Ok((addr, n)) => {
            s.config_table = format!("{addr:#x} ({n} entries)");
            let n = n.min(MAX_ENTRIES);
            if n < MAX_ENTRIES {
                config_table(phys, map, addr, n, &mut s);
            } else {
                s.problems.push(format!(
                    "EFI configuration table: {n} entries or more; not read"
                ));
            }
        }
        Err(e) => s.problems.push(format!(
            "XENPF_firmware_info (XEN_FW_EFI_CONFIG_TABLE): {e}"
        )),
    }
    for r in map
        .regions()
        .iter()
        .filter(|r| !matches!(r.kind, MemType::Ram | MemType::Unusable))
        .take(MAX_TYPED)
    {
        let kind = match efi_mem_info(x, r.addr) {
            Ok(m) => format!(
                "{} (attributes {:#x})",
                efi_memory_type_name(m.kind),
                m.attr
            ),
            Err(XenError::ESRCH) => "in no EFI memory descriptor".into(),
            Err(e) => format!("XEN_FW_EFI_MEM_INFO: {e}"),
        };
        s.memory.push(format!(
            "[{:#x}, {:#x}) {}: {kind}",
            r.addr,
            r.end(),
            r.kind.name()
        ));
    }
    info!(
        "firmware: UEFI {}, configuration table {}, RSDP {:#x}",
        s.efi_version, s.config_table, s.rsdp
    );
    for p in &s.problems {
        warn!("firmware: {p}");
    }
    let rsdp = (s.rsdp != 0).then_some(s.rsdp);
    rep.firmware = Some(s);
    rsdp
}

fn config_table(phys: &dyn PhysRead, map: &MemoryMap, addr: u64, n: u32, s: &mut FirmwareSummary) {
    let bytes = match read(phys, map, "EFI configuration table", addr, n as usize * 24) {
        Ok(b) => b,
        Err(e) => {
            s.problems.push(e);
            return;
        }
    };
    let (mut acpi20, mut acpi10) = (None, None);
    for e in bytes.chunks_exact(24) {
        let ptr = u64::from_le_bytes([e[16], e[17], e[18], e[19], e[20], e[21], e[22], e[23]]);
        let name = GUIDS
            .iter()
            .find(|(_, g)| g[..] == e[..16])
            .map(|(n, _)| *n);
        match name {
            Some("ACPI 2.0 RSDP") => acpi20 = Some(ptr),
            Some("ACPI 1.0 RSDP") => acpi10 = Some(ptr),
            _ => {}
        }
        let label = name.map_or_else(|| guid_text(&e[..16]), String::from);
        s.efi_tables.push(format!("{label} at {ptr:#x}"));
    }
    let Some(rsdp) = acpi20.or(acpi10) else {
        s.problems
            .push("EFI configuration table: no ACPI RSDP entry".into());
        return;
    };
    match read(phys, map, "RSDP", rsdp, 8) {
        Ok(sig) if sig == b"RSD PTR " => s.rsdp = rsdp,
        Ok(sig) => s.problems.push(format!(
            "EFI configuration table: the ACPI entry at {rsdp:#x} has signature {sig:02x?}, not \
             \"RSD PTR \""
        )),
        Err(e) => s.problems.push(e),
    }
}

#[cfg(test)]
mod tests;
