//! `HYPERVISOR_platform_op` (`public/platform.h`), for what a hardware domain learns about the
//! firmware: `XENPF_firmware_info` with `XEN_FW_EFI_INFO` (Linux's `xen_efi_probe()` in
//! `arch/x86/xen/efi.c`). On a machine Xen booted through EFI this gives the EFI configuration
//! table (where the firmware's ACPI RSDP is: UEFI puts it in no BIOS area) and the EFI memory
//! descriptor behind any address. Without an EFI boot Xen answers `-ENOSYS`.

use crate::errno::XenError;
use crate::hypercall::{Arg, Hypercall, call, nr};
use crate::le::{put_u32, put_u64, u32_at, u64_at};
use crate::ops::issue;

pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;
pub const XENPF_FIRMWARE_INFO: u32 = 50;
pub const XEN_FW_EFI_INFO: u32 = 4;
pub const XEN_FW_EFI_VERSION: u32 = 0;
pub const XEN_FW_EFI_CONFIG_TABLE: u32 = 1;
pub const XEN_FW_EFI_MEM_INFO: u32 = 3;

/// `struct xen_platform_op`: cmd, interface_version, then a 128-byte union.
pub const PLATFORM_OP_SIZE: usize = 8 + 128;

/// One `XENPF_firmware_info` call of type `XEN_FW_EFI_INFO`; `fill` sets the IN fields of
/// `u.efi_info` (at offset 16). Returns the whole op as Xen wrote it back.
fn efi_info(
    h: &dyn Hypercall,
    index: u32,
    fill: impl FnOnce(&mut [u8]),
) -> Result<[u8; PLATFORM_OP_SIZE], XenError> {
    let mut op = [0u8; PLATFORM_OP_SIZE];
    put_u32(&mut op, 0, XENPF_FIRMWARE_INFO);
    put_u32(&mut op, 4, XENPF_INTERFACE_VERSION);
    put_u32(&mut op, 8, XEN_FW_EFI_INFO);
    put_u32(&mut op, 12, index);
    fill(&mut op);
    issue(h, call!(nr::PLATFORM_OP, Arg::InOut(&mut op)))?;
    Ok(op)
}

/// The EFI specification revision the firmware reports (`0x0002_0046` is 2.70).
pub fn efi_version(h: &dyn Hypercall) -> Result<u32, XenError> {
    let op = efi_info(h, XEN_FW_EFI_VERSION, |_| {})?;
    Ok(u32_at(&op, 16))
}

/// The EFI configuration table: its physical address and number of entries (each an
/// `EFI_CONFIGURATION_TABLE`: a 16-byte GUID and a 64-bit pointer).
pub fn efi_config_table(h: &dyn Hypercall) -> Result<(u64, u32), XenError> {
    let op = efi_info(h, XEN_FW_EFI_CONFIG_TABLE, |_| {})?;
    Ok((u64_at(&op, 16), u32_at(&op, 24)))
}

/// The EFI memory descriptor that holds an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EfiMemInfo {
    /// `EFI_MEMORY_TYPE` (7: conventional, 5/6: runtime services code/data, 9: ACPI reclaim,
    /// 10: ACPI NVS, 11: MMIO...).
    pub kind: u32,
    pub attr: u64,
    /// Bytes from the queried address to the end of the descriptor.
    pub size: u64,
}

/// `XEN_FW_EFI_MEM_INFO` for `addr` (`-ESRCH`: no descriptor holds it).
pub fn efi_mem_info(h: &dyn Hypercall, addr: u64) -> Result<EfiMemInfo, XenError> {
    let op = efi_info(h, XEN_FW_EFI_MEM_INFO, |op| {
        put_u64(op, 16, addr);
        put_u64(op, 24, u64::MAX);
    })?;
    Ok(EfiMemInfo {
        size: u64_at(&op, 24),
        attr: u64_at(&op, 32),
        kind: u32_at(&op, 40),
    })
}

/// The name of an `EFI_MEMORY_TYPE` (UEFI 2.10 §7.2.1).
pub fn efi_memory_type_name(kind: u32) -> &'static str {
    match kind {
        0 => "EfiReservedMemoryType",
        1 => "EfiLoaderCode",
        2 => "EfiLoaderData",
        3 => "EfiBootServicesCode",
        4 => "EfiBootServicesData",
        5 => "EfiRuntimeServicesCode",
        6 => "EfiRuntimeServicesData",
        7 => "EfiConventionalMemory",
        8 => "EfiUnusableMemory",
        9 => "EfiACPIReclaimMemory",
        10 => "EfiACPIMemoryNVS",
        11 => "EfiMemoryMappedIO",
        12 => "EfiMemoryMappedIOPortSpace",
        13 => "EfiPalCode",
        14 => "EfiPersistentMemory",
        15 => "EfiUnacceptedMemoryType",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests;
