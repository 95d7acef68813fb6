//! The FADT ("FACP", ACPI 6.5 section 5.2.9): the fields dom0 cares about.
//!
//! Under Xen the FADT a PVH dom0 sees is the native one (Xen passes it through), so its PM
//! blocks, SCI and reset register describe the real machine; the FADT in a DomU's tables is
//! built by [`crate::domu`] (hardware-reduced). A FADT shorter than its revision implies is
//! read as if the missing fields were zero, the way ACPICA does (`acpi_tb_create_local_fadt`),
//! and named in `problems`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use xen::le::{get_u16, get_u32, get_u64};

use crate::{AcpiError, SdtHeader, TableId};

/// FADT `Flags` (offset 112) bits.
pub mod flags {
    pub const WBINVD: u32 = 1 << 0;
    pub const WBINVD_FLUSH: u32 = 1 << 1;
    pub const PROC_C1: u32 = 1 << 2;
    pub const P_LVL2_UP: u32 = 1 << 3;
    /// Power button is a control method device (or absent), not a fixed feature.
    pub const PWR_BUTTON: u32 = 1 << 4;
    /// Sleep button is a control method device (or absent), not a fixed feature.
    pub const SLP_BUTTON: u32 = 1 << 5;
    pub const FIX_RTC: u32 = 1 << 6;
    pub const RTC_S4: u32 = 1 << 7;
    /// The PM timer is 32 bits wide (else 24).
    pub const TMR_VAL_EXT: u32 = 1 << 8;
    pub const DCK_CAP: u32 = 1 << 9;
    /// The reset register is supported.
    pub const RESET_REG_SUP: u32 = 1 << 10;
    pub const SEALED_CASE: u32 = 1 << 11;
    pub const HEADLESS: u32 = 1 << 12;
    pub const CPU_SW_SLP: u32 = 1 << 13;
    pub const PCI_EXP_WAK: u32 = 1 << 14;
    pub const USE_PLATFORM_CLOCK: u32 = 1 << 15;
    pub const S4_RTC_STS_VALID: u32 = 1 << 16;
    pub const REMOTE_POWER_ON_CAPABLE: u32 = 1 << 17;
    pub const FORCE_APIC_CLUSTER_MODEL: u32 = 1 << 18;
    pub const FORCE_APIC_PHYSICAL_DESTINATION_MODE: u32 = 1 << 19;
    /// ACPI 5.0: no fixed hardware (PM1/GPE blocks, PM timer, SCI-based events, FACS needed).
    pub const HW_REDUCED_ACPI: u32 = 1 << 20;
    pub const LOW_POWER_S0_IDLE_CAPABLE: u32 = 1 << 21;
}

/// FADT `IAPC_BOOT_ARCH` (offset 109) bits.
pub mod boot_arch {
    /// Legacy (ISA/LPC) devices may exist that are not described in ACPI.
    pub const LEGACY_DEVICES: u16 = 1 << 0;
    /// An 8042 keyboard controller exists.
    pub const I8042: u16 = 1 << 1;
    /// Do not probe for VGA.
    pub const VGA_NOT_PRESENT: u16 = 1 << 2;
    /// Do not enable MSI.
    pub const MSI_NOT_SUPPORTED: u16 = 1 << 3;
    /// Do not enable PCIe ASPM.
    pub const PCIE_ASPM_CONTROLS: u16 = 1 << 4;
    /// ACPI 5.0: no CMOS RTC at the legacy ports.
    pub const CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;
}

/// Field offsets.
pub mod offset {
    pub const FIRMWARE_CTRL: usize = 36;
    pub const DSDT: usize = 40;
    pub const PREFERRED_PM_PROFILE: usize = 45;
    pub const SCI_INT: usize = 46;
    pub const SMI_CMD: usize = 48;
    pub const PM1A_EVT_BLK: usize = 56;
    pub const PM1A_CNT_BLK: usize = 64;
    pub const PM_TMR_BLK: usize = 76;
    pub const PM_TMR_LEN: usize = 91;
    pub const IAPC_BOOT_ARCH: usize = 109;
    pub const FLAGS: usize = 112;
    pub const RESET_REG: usize = 116;
    pub const RESET_VALUE: usize = 128;
    pub const MINOR_VERSION: usize = 131;
    pub const X_FIRMWARE_CTRL: usize = 132;
    pub const X_DSDT: usize = 140;
    pub const X_PM1A_EVT_BLK: usize = 148;
    pub const X_PM1A_CNT_BLK: usize = 172;
    pub const X_PM_TMR_BLK: usize = 208;
    pub const SLEEP_CONTROL_REG: usize = 244;
    pub const SLEEP_STATUS_REG: usize = 256;
    pub const HYPERVISOR_VENDOR: usize = 268;
}

/// The newest FADT revision (ACPI 6.0 to 6.5).
pub const MAX_REVISION: u8 = 6;
/// ACPI 1.0 size, the least any FADT may be.
pub const MIN_SIZE: usize = 116;
/// Size of a revision 6 FADT.
pub const V6_SIZE: usize = 276;
/// Size of a revision 5 FADT.
pub const V5_SIZE: usize = 268;
/// ACPICA's "V2" size: FADTs of at most this length (revisions 1 and 2) have no
/// IAPC_BOOT_ARCH or preferred profile; ACPICA clears them, and so does this parser.
const V2_SIZE: usize = 129;
/// The first revision that defines HW_REDUCED_ACPI and CMOS_RTC_NOT_PRESENT (ACPI 5.0).
pub const HW_REDUCED_REVISION: u8 = 5;

/// The length a FADT of `revision` has (the least the parser accepts without a problem).
pub fn size_for_revision(revision: u8) -> usize {
    match revision {
        0 | 1 => MIN_SIZE,
        2 => V2_SIZE,
        3 | 4 => 244,
        5 => V5_SIZE,
        _ => V6_SIZE,
    }
}

/// A Generic Address Structure (ACPI 6.5 5.2.3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gas {
    /// 0 system memory, 1 system I/O, 2 PCI config, ...
    pub space_id: u8,
    pub bit_width: u8,
    pub bit_offset: u8,
    pub access_size: u8,
    pub address: u64,
}

impl Gas {
    pub const SIZE: usize = 12;
    pub const SYSTEM_MEMORY: u8 = 0;
    pub const SYSTEM_IO: u8 = 1;

    /// Decode the 12 bytes at `off` of `b` (zeroes where `b` ends).
    pub fn read(b: &[u8], off: usize) -> Gas {
        let byte = |i: usize| off.checked_add(i).and_then(|o| b.get(o)).copied();
        Gas {
            space_id: byte(0).unwrap_or(0),
            bit_width: byte(1).unwrap_or(0),
            bit_offset: byte(2).unwrap_or(0),
            access_size: byte(3).unwrap_or(0),
            address: off.checked_add(4).and_then(|o| get_u64(b, o)).unwrap_or(0),
        }
    }

    /// The 12-byte encoding.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0] = self.space_id;
        b[1] = self.bit_width;
        b[2] = self.bit_offset;
        b[3] = self.access_size;
        b[4..].copy_from_slice(&self.address.to_le_bytes());
        b
    }

    /// A system I/O port block of `bytes` bytes at `port` (what a legacy 32-bit FADT field
    /// means).
    pub fn io_port(port: u32, bytes: u8) -> Gas {
        Gas {
            space_id: Self::SYSTEM_IO,
            bit_width: bytes.saturating_mul(8),
            bit_offset: 0,
            access_size: 0,
            address: u64::from(port),
        }
    }
}

/// What a FADT says that dom0 uses or reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FadtSummary {
    pub revision: u8,
    /// `FADT Minor Version` (offset 131, low nibble); 0 before revision 5.
    pub minor_version: u8,
    pub length: u32,
    /// `Flags` (see [`flags`]).
    pub flags: u32,
    /// `IAPC_BOOT_ARCH` (see [`boot_arch`]); 0 for FADTs of revision 1-2 length.
    pub iapc_boot_arch: u16,
    pub preferred_pm_profile: u8,
    /// The SCI's GSI (or 8259 vector on PIC systems).
    pub sci_int: u16,
    /// SMI command port; 0 when there is no SMM.
    pub smi_cmd: u32,
    /// The PM timer: X_PM_TMR_BLK if set, else PM_TMR_BLK as an I/O block; `None` if neither.
    pub pm_timer: Option<Gas>,
    /// `PM_TMR_LEN` (4 when there is a timer).
    pub pm_timer_len: u8,
    /// PM1a event block (X_ form if set, else the port); `None` if neither.
    pub pm1a_event: Option<Gas>,
    /// PM1a control block (X_ form if set, else the port); `None` if neither.
    pub pm1a_control: Option<Gas>,
    /// 32-bit `DSDT` (offset 40).
    pub dsdt: u32,
    /// 64-bit `X_DSDT` (offset 140); 0 if absent.
    pub x_dsdt: u64,
    /// 32-bit `FIRMWARE_CTRL` (FACS address, offset 36).
    pub firmware_ctrl: u32,
    /// 64-bit `X_FIRMWARE_CTRL` (offset 132); 0 if absent.
    pub x_firmware_ctrl: u64,
    /// The reset register and value, if `RESET_REG_SUP` is set.
    pub reset: Option<(Gas, u8)>,
    /// ACPI 5.0 sleep control / status registers (hardware-reduced sleep); `None` if zero.
    pub sleep_control: Option<Gas>,
    pub sleep_status: Option<Gas>,
    /// ACPI 6.0 hypervisor vendor identity (offset 268); 0 if absent.
    pub hypervisor_vendor: u64,
    /// What is inconsistent, each naming the field's offset and what was expected.
    pub problems: Vec<String>,
}

impl FadtSummary {
    /// Parse a FADT (`table` starts with the header and may be longer than the table). Errors
    /// for a bad header (signature, length, checksum) or a length below the ACPI 1.0 size;
    /// inconsistencies in the fields go to `problems`.
    pub fn parse(table: &[u8]) -> Result<FadtSummary, AcpiError> {
        let hdr = SdtHeader::parse_expecting(table, "FACP")?;
        let id = TableId::Sdt(hdr.signature);
        let len = hdr.length as usize;
        if len < MIN_SIZE {
            return Err(AcpiError::BadLength {
                table: id,
                offset: 4,
                length: hdr.length,
                min: MIN_SIZE,
            });
        }
        // Only the table's own bytes; fields past its length read as 0.
        let t = &table[..len];
        let u8_at = |o: usize| t.get(o).copied().unwrap_or(0);
        let u16_at = |o: usize| get_u16(t, o).unwrap_or(0);
        let u32_at = |o: usize| get_u32(t, o).unwrap_or(0);
        let u64_at = |o: usize| get_u64(t, o).unwrap_or(0);
        // A GAS only if the table holds all of it.
        let gas_at = |o: usize| (len >= o + Gas::SIZE).then(|| Gas::read(t, o));
        let old_style = len <= V2_SIZE;

        let mut s = FadtSummary {
            revision: hdr.revision,
            minor_version: if hdr.revision >= 5 {
                u8_at(offset::MINOR_VERSION) & 0xF
            } else {
                0
            },
            length: hdr.length,
            flags: u32_at(offset::FLAGS),
            iapc_boot_arch: if old_style {
                0
            } else {
                u16_at(offset::IAPC_BOOT_ARCH)
            },
            preferred_pm_profile: if old_style {
                0
            } else {
                u8_at(offset::PREFERRED_PM_PROFILE)
            },
            sci_int: u16_at(offset::SCI_INT),
            smi_cmd: u32_at(offset::SMI_CMD),
            pm_timer_len: u8_at(offset::PM_TMR_LEN),
            dsdt: u32_at(offset::DSDT),
            x_dsdt: u64_at(offset::X_DSDT),
            firmware_ctrl: u32_at(offset::FIRMWARE_CTRL),
            x_firmware_ctrl: u64_at(offset::X_FIRMWARE_CTRL),
            hypervisor_vendor: u64_at(offset::HYPERVISOR_VENDOR),
            ..FadtSummary::default()
        };
        // The X_ block if its address is set, else the legacy port (`len` bytes).
        let block = |x_off: usize, port_off: usize, plen: u8| match gas_at(x_off)
            .filter(|g| g.address != 0)
        {
            Some(g) => Some(g),
            None => {
                let port = u32_at(port_off);
                (port != 0).then(|| Gas::io_port(port, plen))
            }
        };
        s.pm_timer = block(offset::X_PM_TMR_BLK, offset::PM_TMR_BLK, s.pm_timer_len);
        s.pm1a_event = block(offset::X_PM1A_EVT_BLK, offset::PM1A_EVT_BLK, u8_at(88));
        s.pm1a_control = block(offset::X_PM1A_CNT_BLK, offset::PM1A_CNT_BLK, u8_at(89));
        if s.flags & flags::RESET_REG_SUP != 0 {
            s.reset = Some((Gas::read(t, offset::RESET_REG), u8_at(offset::RESET_VALUE)));
        }
        s.sleep_control = gas_at(offset::SLEEP_CONTROL_REG).filter(|g| g.address != 0);
        s.sleep_status = gas_at(offset::SLEEP_STATUS_REG).filter(|g| g.address != 0);
        s.check(len);
        Ok(s)
    }

    fn check(&mut self, len: usize) {
        let mut p = Vec::new();
        let rev = self.revision;
        if rev == 0 || rev > MAX_REVISION {
            p.push(format!(
                "FACP: revision at offset 0x8 is {rev} (expected 1..={MAX_REVISION})"
            ));
        }
        let want = size_for_revision(rev);
        if rev <= MAX_REVISION && len < want {
            p.push(format!(
                "FACP: length at offset 0x4 is {len:#x}, short for revision {rev} (expected at \
                 least {want:#x}); missing fields read as 0"
            ));
        }
        let hw_reduced = self.hw_reduced();
        if hw_reduced && rev < HW_REDUCED_REVISION {
            p.push(format!(
                "FACP: flags at offset {:#x} set HW_REDUCED_ACPI, defined only from revision \
                 {HW_REDUCED_REVISION} (expected revision >= {HW_REDUCED_REVISION}, is {rev})",
                offset::FLAGS
            ));
        }
        if self.iapc_boot_arch & boot_arch::CMOS_RTC_NOT_PRESENT != 0 && rev < HW_REDUCED_REVISION {
            p.push(format!(
                "FACP: IAPC_BOOT_ARCH at offset {:#x} sets CMOS_RTC_NOT_PRESENT, defined only \
                 from revision {HW_REDUCED_REVISION} (is {rev})",
                offset::IAPC_BOOT_ARCH
            ));
        }
        if self.dsdt == 0 && self.x_dsdt == 0 {
            p.push(format!(
                "FACP: DSDT (offset {:#x}) and X_DSDT (offset {:#x}) are both 0 (expected the \
                 DSDT's address)",
                offset::DSDT,
                offset::X_DSDT
            ));
        } else if self.dsdt != 0 && self.x_dsdt != 0 && u64::from(self.dsdt) != self.x_dsdt {
            p.push(format!(
                "FACP: DSDT (offset {:#x}) is {:#x} but X_DSDT (offset {:#x}) is {:#x} \
                 (expected the same address, or one of them 0); X_DSDT is used",
                offset::DSDT,
                self.dsdt,
                offset::X_DSDT,
                self.x_dsdt
            ));
        }
        if self.firmware_ctrl != 0
            && self.x_firmware_ctrl != 0
            && u64::from(self.firmware_ctrl) != self.x_firmware_ctrl
        {
            p.push(format!(
                "FACP: FIRMWARE_CTRL (offset {:#x}) is {:#x} but X_FIRMWARE_CTRL (offset {:#x}) \
                 is {:#x} (expected the same address, or one of them 0); X_FIRMWARE_CTRL is used",
                offset::FIRMWARE_CTRL,
                self.firmware_ctrl,
                offset::X_FIRMWARE_CTRL,
                self.x_firmware_ctrl
            ));
        }
        if !hw_reduced {
            if self.facs_address().is_none() {
                p.push(format!(
                    "FACP: FIRMWARE_CTRL (offset {:#x}) and X_FIRMWARE_CTRL (offset {:#x}) are \
                     both 0 (expected a FACS, required unless HW_REDUCED_ACPI)",
                    offset::FIRMWARE_CTRL,
                    offset::X_FIRMWARE_CTRL
                ));
            }
            if self.pm1a_event.is_none() {
                p.push(format!(
                    "FACP: PM1a_EVT_BLK (offset {:#x}) and X_PM1a_EVT_BLK (offset {:#x}) are \
                     both 0 (expected a PM1a event block, required unless HW_REDUCED_ACPI)",
                    offset::PM1A_EVT_BLK,
                    offset::X_PM1A_EVT_BLK
                ));
            }
            if self.pm1a_control.is_none() {
                p.push(format!(
                    "FACP: PM1a_CNT_BLK (offset {:#x}) and X_PM1a_CNT_BLK (offset {:#x}) are \
                     both 0 (expected a PM1a control block, required unless HW_REDUCED_ACPI)",
                    offset::PM1A_CNT_BLK,
                    offset::X_PM1A_CNT_BLK
                ));
            }
        }
        if let Some(Gas {
            space_id: Gas::SYSTEM_IO,
            ..
        }) = self.pm_timer
            && self.pm_timer_len != 4
        {
            p.push(format!(
                "FACP: PM_TMR_LEN at offset {:#x} is {} (expected 4 with a PM timer block)",
                offset::PM_TMR_LEN,
                self.pm_timer_len
            ));
        }
        self.problems = p;
    }

    /// `HW_REDUCED_ACPI` (flags bit 20).
    pub fn hw_reduced(&self) -> bool {
        self.flags & flags::HW_REDUCED_ACPI != 0
    }
    /// `LEGACY_DEVICES` (IAPC_BOOT_ARCH bit 0).
    pub fn legacy_devices(&self) -> bool {
        self.iapc_boot_arch & boot_arch::LEGACY_DEVICES != 0
    }
    /// `8042` (IAPC_BOOT_ARCH bit 1).
    pub fn has_8042(&self) -> bool {
        self.iapc_boot_arch & boot_arch::I8042 != 0
    }
    /// `VGA Not Present` (IAPC_BOOT_ARCH bit 2).
    pub fn vga_not_present(&self) -> bool {
        self.iapc_boot_arch & boot_arch::VGA_NOT_PRESENT != 0
    }
    /// `MSI Not Supported` (IAPC_BOOT_ARCH bit 3).
    pub fn msi_not_supported(&self) -> bool {
        self.iapc_boot_arch & boot_arch::MSI_NOT_SUPPORTED != 0
    }
    /// `PCIe ASPM Controls` (IAPC_BOOT_ARCH bit 4).
    pub fn pcie_aspm_controls(&self) -> bool {
        self.iapc_boot_arch & boot_arch::PCIE_ASPM_CONTROLS != 0
    }
    /// `CMOS RTC Not Present` (IAPC_BOOT_ARCH bit 5).
    pub fn cmos_rtc_not_present(&self) -> bool {
        self.iapc_boot_arch & boot_arch::CMOS_RTC_NOT_PRESENT != 0
    }
    /// The PM timer counts 32 bits (`TMR_VAL_EXT`), else 24.
    pub fn pm_timer_32bit(&self) -> bool {
        self.flags & flags::TMR_VAL_EXT != 0
    }
    /// The DSDT to use: X_DSDT if non-zero, else DSDT; `None` if both are 0.
    pub fn dsdt_address(&self) -> Option<u64> {
        match (self.x_dsdt, self.dsdt) {
            (0, 0) => None,
            (0, d) => Some(u64::from(d)),
            (x, _) => Some(x),
        }
    }
    /// The FACS to use: X_FIRMWARE_CTRL if non-zero, else FIRMWARE_CTRL; `None` if both 0.
    pub fn facs_address(&self) -> Option<u64> {
        match (self.x_firmware_ctrl, self.firmware_ctrl) {
            (0, 0) => None,
            (0, f) => Some(u64::from(f)),
            (x, _) => Some(x),
        }
    }
}

/// The FACS (ACPI 6.5 5.2.10), which has no checksum and no standard header: signature
/// "FACS", length (at least 64), version at offset 32. It must be 64-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facs {
    pub length: u32,
    pub hardware_signature: u32,
    pub version: u8,
}

impl Facs {
    pub const MIN_SIZE: usize = 64;
    /// The newest FACS version (ACPI 4.0 and later).
    pub const MAX_VERSION: u8 = 3;

    /// Parse a FACS (`bytes` may be longer than it).
    pub fn parse(bytes: &[u8]) -> Result<Facs, AcpiError> {
        let mut sig = [0u8; 4];
        let n = bytes.len().min(4);
        sig[..n].copy_from_slice(&bytes[..n]);
        let table = TableId::Sdt(sig);
        if bytes.len() < 8 {
            return Err(AcpiError::Truncated {
                table,
                offset: bytes.len(),
                needed: 8,
                available: bytes.len(),
            });
        }
        if &sig != b"FACS" {
            return Err(AcpiError::BadSignature {
                table,
                expected: "FACS",
            });
        }
        let length = get_u32(bytes, 4).unwrap_or(0);
        if (length as usize) < Self::MIN_SIZE {
            return Err(AcpiError::BadLength {
                table,
                offset: 4,
                length,
                min: Self::MIN_SIZE,
            });
        }
        if bytes.len() < length as usize {
            return Err(AcpiError::Truncated {
                table,
                offset: bytes.len(),
                needed: length as usize,
                available: bytes.len(),
            });
        }
        let version = bytes[32];
        if version > Self::MAX_VERSION {
            return Err(AcpiError::BadRevision {
                table,
                offset: 32,
                revision: version,
                min: 0,
                max: Self::MAX_VERSION,
            });
        }
        Ok(Facs {
            length,
            hardware_signature: get_u32(bytes, 8).unwrap_or(0),
            version,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::finish_table;

    /// A FADT like QEMU q35's (revision 3, 244 bytes): PM blocks at 0x600, SCI 9, FACS and DSDT
    /// set in both forms.
    pub(crate) fn qemu_fadt() -> Vec<u8> {
        let mut t = vec![0u8; 244];
        t[..4].copy_from_slice(b"FACP");
        t[8] = 3;
        t[10..16].copy_from_slice(b"BOCHS ");
        t[16..24].copy_from_slice(b"BXPC    ");
        t[36..40].copy_from_slice(&0x7FFE_0000u32.to_le_bytes());
        t[40..44].copy_from_slice(&0x7FFE_0040u32.to_le_bytes());
        t[46..48].copy_from_slice(&9u16.to_le_bytes());
        t[48..52].copy_from_slice(&0xB2u32.to_le_bytes());
        t[56..60].copy_from_slice(&0x600u32.to_le_bytes());
        t[64..68].copy_from_slice(&0x604u32.to_le_bytes());
        t[76..80].copy_from_slice(&0x608u32.to_le_bytes());
        t[88] = 4;
        t[89] = 2;
        t[91] = 4;
        t[109..111].copy_from_slice(&(boot_arch::LEGACY_DEVICES | boot_arch::I8042).to_le_bytes());
        let f = flags::WBINVD | flags::PROC_C1 | flags::TMR_VAL_EXT | flags::RESET_REG_SUP;
        t[112..116].copy_from_slice(&f.to_le_bytes());
        t[116..128].copy_from_slice(&Gas::io_port(0xCF9, 1).to_bytes());
        t[128] = 0x0F;
        t[132..140].copy_from_slice(&0x7FFE_0000u64.to_le_bytes());
        t[140..148].copy_from_slice(&0x7FFE_0040u64.to_le_bytes());
        t[148..160].copy_from_slice(&Gas::io_port(0x600, 4).to_bytes());
        t[172..184].copy_from_slice(&Gas::io_port(0x604, 2).to_bytes());
        t[208..220].copy_from_slice(&Gas::io_port(0x608, 4).to_bytes());
        finish_table(&mut t).unwrap();
        t
    }

    #[test]
    fn qemu_fadt_fields() {
        let s = FadtSummary::parse(&qemu_fadt()).unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!((s.revision, s.length, s.minor_version), (3, 244, 0));
        assert_eq!(s.sci_int, 9);
        assert!(!s.hw_reduced());
        assert!(s.legacy_devices() && s.has_8042());
        assert!(!s.vga_not_present() && !s.msi_not_supported() && !s.cmos_rtc_not_present());
        assert!(s.pm_timer_32bit());
        assert_eq!(s.pm_timer, Some(Gas::io_port(0x608, 4)));
        assert_eq!(s.dsdt_address(), Some(0x7FFE_0040));
        assert_eq!(s.facs_address(), Some(0x7FFE_0000));
        assert_eq!(s.reset, Some((Gas::io_port(0xCF9, 1), 0x0F)));
        assert_eq!(s.sleep_control, None);
    }

    #[test]
    fn fadt_inconsistencies() {
        // DSDT mismatch, no FACS, PM_TMR_LEN wrong, HW_REDUCED on revision 3.
        let mut t = qemu_fadt();
        t[140..148].copy_from_slice(&0x1234_5678u64.to_le_bytes());
        t[36..40].fill(0);
        t[132..140].fill(0);
        t[91] = 3;
        finish_table(&mut t).unwrap();
        let s = FadtSummary::parse(&t).unwrap();
        assert_eq!(s.dsdt_address(), Some(0x1234_5678));
        assert_eq!(
            s.problems,
            vec![
                "FACP: DSDT (offset 0x28) is 0x7ffe0040 but X_DSDT (offset 0x8c) is 0x12345678 \
                 (expected the same address, or one of them 0); X_DSDT is used",
                "FACP: FIRMWARE_CTRL (offset 0x24) and X_FIRMWARE_CTRL (offset 0x84) are both 0 \
                 (expected a FACS, required unless HW_REDUCED_ACPI)",
                "FACP: PM_TMR_LEN at offset 0x5b is 3 (expected 4 with a PM timer block)",
            ]
        );
        let mut t = qemu_fadt();
        t[112..116].copy_from_slice(&flags::HW_REDUCED_ACPI.to_le_bytes());
        finish_table(&mut t).unwrap();
        let s = FadtSummary::parse(&t).unwrap();
        assert_eq!(
            s.problems,
            vec![
                "FACP: flags at offset 0x70 set HW_REDUCED_ACPI, defined only from revision 5 \
                 (expected revision >= 5, is 3)"
            ]
        );
    }

    #[test]
    fn short_and_old_fadts() {
        // ACPI 1.0: 116 bytes, revision 1; IAPC_BOOT_ARCH is reserved there.
        let mut t = qemu_fadt();
        t.truncate(116);
        t[8] = 1;
        t[109] = 0xFF;
        finish_table(&mut t).unwrap();
        let s = FadtSummary::parse(&t).unwrap();
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(
            (s.iapc_boot_arch, s.x_dsdt, s.dsdt_address()),
            (0, 0, Some(0x7FFE_0040))
        );
        assert_eq!(s.pm_timer, Some(Gas::io_port(0x608, 4)));
        // Revision 5 claimed, 244 bytes long.
        let mut t = qemu_fadt();
        t[8] = 5;
        finish_table(&mut t).unwrap();
        let s = FadtSummary::parse(&t).unwrap();
        assert_eq!(
            s.problems,
            vec![
                "FACP: length at offset 0x4 is 0xf4, short for revision 5 (expected at least \
                 0x10c); missing fields read as 0"
            ]
        );
        // Too short for anything.
        let mut t = qemu_fadt();
        t.truncate(100);
        finish_table(&mut t).unwrap();
        assert_eq!(
            FadtSummary::parse(&t).unwrap_err().to_string(),
            "FACP: length field at offset 0x4 says 0x64, less than the 0x74-byte fixed part"
        );
        // Bad revisions.
        for rev in [0u8, 7, 0xFF] {
            let mut t = qemu_fadt();
            t[8] = rev;
            finish_table(&mut t).unwrap();
            let s = FadtSummary::parse(&t).unwrap();
            assert_eq!(
                s.problems[0],
                format!("FACP: revision at offset 0x8 is {rev} (expected 1..=6)")
            );
        }
    }

    #[test]
    fn facs() {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"FACS");
        f[4..8].copy_from_slice(&64u32.to_le_bytes());
        f[32] = 2;
        assert_eq!(
            Facs::parse(&f),
            Ok(Facs {
                length: 64,
                hardware_signature: 0,
                version: 2
            })
        );
        assert!(matches!(
            Facs::parse(&f[..63]),
            Err(AcpiError::Truncated { .. })
        ));
        assert!(matches!(
            Facs::parse(&f[..3]),
            Err(AcpiError::Truncated { .. })
        ));
        let mut g = f.clone();
        g[32] = 9;
        assert_eq!(
            Facs::parse(&g).unwrap_err().to_string(),
            "FACS: revision at offset 0x20 is 9 (expected 0..=3)"
        );
        let mut g = f.clone();
        g[4] = 10;
        assert!(matches!(Facs::parse(&g), Err(AcpiError::BadLength { .. })));
        let mut g = f;
        g[0] = b'X';
        assert!(matches!(
            Facs::parse(&g),
            Err(AcpiError::BadSignature { .. })
        ));
    }

    #[test]
    fn random_fadts_never_panic() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let n = 116 + (next() % 200) as usize;
            let mut t: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            t[..4].copy_from_slice(b"FACP");
            finish_table(&mut t).unwrap();
            let s = FadtSummary::parse(&t).unwrap();
            let _ = (s.dsdt_address(), s.facs_address());
            let _ = Facs::parse(&t);
        }
    }
}
