//! ACPI tables for a PVH DomU: RSDP, XSDT, FADT, MADT and DSDT, laid out from one address.
//!
//! What a PVH guest needs (the HVMlite design, seed 002): a MADT listing its vCPUs (and an IO
//! APIC only if it has one; a PVH DomU has none unless asked), a FADT, a DSDT. The FADT is
//! revision 6 (ACPI 6.x) with:
//! - `HW_REDUCED_ACPI`: no PM1/GPE blocks, PM timer, SCI or FACS. (The seed's discussion
//!   rejected this flag for the *hardware domain*, whose FADT is the native one and whose
//!   sleep states are real; for a DomU, which has none of that hardware, it is the honest
//!   description, and it is what lets the FADT omit the FACS.)
//! - IAPC_BOOT_ARCH: `VGA_NOT_PRESENT` and `CMOS_RTC_NOT_PRESENT` (use Xen's PV wall clock);
//!   `LEGACY_DEVICES` and `8042` clear; `MSI_NOT_SUPPORTED` clear (MSI works).
//! - X_DSDT (and DSDT when below 4 GiB) pointing at the DSDT; FIRMWARE_CTRL 0.
//!
//! The DSDT holds `Scope (\_SB)` with one processor device per vCPU (`Device (Cnnn)`, `_HID`
//! "ACPI0007", `_UID` *i*), so the MADT's processor uids match processor objects (unlike the
//! MADT Xen crafts for dom0, reference §4).
//!
//! Layout: the RSDP at `base_paddr`, then XSDT, FADT, MADT, DSDT, each at the next 16-byte
//! aligned address. All checksums are set, and [`crate::validate::validate`] on the result
//! reports nothing.

use alloc::vec::Vec;

use crate::build::{
    ApicIdScheme, BuildError, CREATOR_ID, CREATOR_REVISION, ContainerSpec, EntryKind, OEM_ID,
    OEM_TABLE_ID, build_madt, build_rsdp, build_xsdt,
};
use crate::fadt::{self, boot_arch, flags};
use crate::madt::{IoApic, Override};
use crate::validate::TableSource;
use crate::{Rsdp, SdtHeader, finish_table};

/// The most vCPUs a DomU's tables describe (processor device names `C000`..`CFFF`).
pub const MAX_DOMU_VCPUS: u32 = 4096;
/// Tables after the RSDP start at multiples of this.
pub const TABLE_ALIGN: u64 = 16;
/// The most bytes [`DomuAcpi::image`] makes (4096 vCPUs need about 140 KiB).
pub const MAX_IMAGE: u64 = 1 << 20;
/// The FADT's minor version (ACPI 6.5).
pub const FADT_MINOR_VERSION: u8 = 5;

/// What goes into a DomU's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomuSpec {
    pub vcpus: u32,
    /// Where the RSDP goes; the other tables follow.
    pub base_paddr: u64,
    /// APIC ids (default: 2·*i*, as Xen gives HVM/PVH vCPUs).
    pub apic_id: ApicIdScheme,
    /// Processor entry type (default: [`EntryKind::Auto`]).
    pub entries: EntryKind,
    /// IO APICs (default: none).
    pub ioapics: Vec<IoApic>,
    /// Interrupt Source Overrides (default: none; only meaningful with an IO APIC).
    pub overrides: Vec<Override>,
    pub oem_id: [u8; 6],
    pub oem_table_id: [u8; 8],
}

impl DomuSpec {
    pub fn new(vcpus: u32, base_paddr: u64) -> DomuSpec {
        DomuSpec {
            vcpus,
            base_paddr,
            apic_id: ApicIdScheme::TimesTwo,
            entries: EntryKind::Auto,
            ioapics: Vec::new(),
            overrides: Vec::new(),
            oem_id: OEM_ID,
            oem_table_id: OEM_TABLE_ID,
        }
    }

    fn header(&self, signature: &[u8; 4], revision: u8) -> SdtHeader {
        SdtHeader {
            signature: *signature,
            length: 0,
            revision,
            checksum: 0,
            oem_id: self.oem_id,
            oem_table_id: self.oem_table_id,
            oem_revision: 1,
            creator_id: CREATOR_ID,
            creator_revision: CREATOR_REVISION,
        }
    }
}

/// A DomU's tables and where each goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomuAcpi {
    /// The RSDP's address (what `hvm_start_info.rsdp_paddr` carries) and bytes.
    pub rsdp: (u64, Vec<u8>),
    /// XSDT, FADT, MADT, DSDT, in address order.
    pub tables: Vec<(u64, Vec<u8>)>,
}

impl DomuAcpi {
    /// The first byte after the last table.
    pub fn end(&self) -> u64 {
        self.blocks()
            .map(|(a, t)| a.saturating_add(t.len() as u64))
            .max()
            .unwrap_or(self.rsdp.0)
    }

    /// The RSDP and every table, as (address, bytes).
    fn blocks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        core::iter::once(&self.rsdp)
            .chain(self.tables.iter())
            .map(|(a, t)| (*a, t.as_slice()))
    }

    /// Everything as one block of bytes starting at the lowest address (the RSDP's, as
    /// [`domu_tables`] lays them out), gaps zero: what the domain builder copies into the
    /// guest. `None` if the tables span more than [`MAX_IMAGE`] bytes (only possible for a
    /// `DomuAcpi` put together by hand).
    pub fn image(&self) -> Option<Vec<u8>> {
        let base = self.blocks().map(|(a, _)| a).min()?;
        let span = self.end().checked_sub(base)?;
        if span > MAX_IMAGE {
            return None;
        }
        let mut img = alloc::vec![0u8; span as usize];
        for (a, t) in self.blocks() {
            let off = (a - base) as usize;
            img.get_mut(off..off + t.len())?.copy_from_slice(t);
        }
        Some(img)
    }

    /// The table with this signature, and its address.
    pub fn table(&self, signature: &[u8; 4]) -> Option<(u64, &[u8])> {
        self.tables
            .iter()
            .find(|(_, t)| t.get(..4) == Some(&signature[..]))
            .map(|(a, t)| (*a, t.as_slice()))
    }
}

impl TableSource for DomuAcpi {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        let all: Vec<(u64, &[u8])> = self.blocks().collect();
        all[..].read(paddr, len)
    }
}

/// The tables for a PVH DomU with `vcpus` vCPUs (APIC ids 2·*i*, no IO APIC) from
/// `base_paddr`.
pub fn domu_tables(vcpus: u32, base_paddr: u64) -> Result<DomuAcpi, BuildError> {
    domu_tables_with(&DomuSpec::new(vcpus, base_paddr))
}

fn align_up(a: u64) -> Option<u64> {
    a.checked_add(TABLE_ALIGN - 1)
        .map(|x| x & !(TABLE_ALIGN - 1))
}

/// The tables for the DomU `spec` describes.
pub fn domu_tables_with(spec: &DomuSpec) -> Result<DomuAcpi, BuildError> {
    if spec.vcpus > MAX_DOMU_VCPUS {
        return Err(BuildError::TooManyVcpus {
            vcpus: spec.vcpus,
            max: MAX_DOMU_VCPUS,
        });
    }
    let mut madt_spec = ContainerSpec::new(spec.vcpus, spec.apic_id.clone());
    madt_spec.entries = spec.entries;
    madt_spec.ioapics = spec.ioapics.clone();
    madt_spec.overrides = spec.overrides.clone();
    madt_spec.oem_id = spec.oem_id;
    madt_spec.oem_table_id = spec.oem_table_id;
    let madt = build_madt(&madt_spec)?;
    let dsdt = build_dsdt(spec)?;

    let overflow = |what| BuildError::AddressOverflow { what };
    let rsdp_at = spec.base_paddr;
    let xsdt_len = (SdtHeader::SIZE + 2 * 8) as u64;
    let xsdt_at = rsdp_at
        .checked_add(Rsdp::V2_SIZE as u64)
        .and_then(align_up)
        .ok_or(overflow("XSDT"))?;
    let fadt_at = xsdt_at
        .checked_add(xsdt_len)
        .and_then(align_up)
        .ok_or(overflow("FADT"))?;
    let madt_at = fadt_at
        .checked_add(fadt::V6_SIZE as u64)
        .and_then(align_up)
        .ok_or(overflow("MADT"))?;
    let dsdt_at = madt_at
        .checked_add(madt.len() as u64)
        .and_then(align_up)
        .ok_or(overflow("DSDT"))?;
    dsdt_at
        .checked_add(dsdt.len() as u64)
        .ok_or(overflow("DSDT"))?;

    let fadt = build_fadt(spec, dsdt_at)?;
    let xsdt = build_xsdt(&spec.header(b"XSDT", 1), &[fadt_at, madt_at])?;
    let rsdp = build_rsdp(xsdt_at, spec.oem_id).to_vec();
    debug_assert_eq!(xsdt.len() as u64, xsdt_len);
    Ok(DomuAcpi {
        rsdp: (rsdp_at, rsdp),
        tables: alloc::vec![
            (xsdt_at, xsdt),
            (fadt_at, fadt),
            (madt_at, madt),
            (dsdt_at, dsdt)
        ],
    })
}

/// A revision 6 hardware-reduced FADT pointing at the DSDT at `dsdt`.
fn build_fadt(spec: &DomuSpec, dsdt: u64) -> Result<Vec<u8>, BuildError> {
    let mut t = alloc::vec![0u8; fadt::V6_SIZE];
    t[..SdtHeader::SIZE].copy_from_slice(&spec.header(b"FACP", fadt::MAX_REVISION).to_bytes());
    let dsdt32 = u32::try_from(dsdt).unwrap_or(0);
    t[fadt::offset::DSDT..fadt::offset::DSDT + 4].copy_from_slice(&dsdt32.to_le_bytes());
    let boot = boot_arch::VGA_NOT_PRESENT | boot_arch::CMOS_RTC_NOT_PRESENT;
    t[fadt::offset::IAPC_BOOT_ARCH..fadt::offset::IAPC_BOOT_ARCH + 2]
        .copy_from_slice(&boot.to_le_bytes());
    let f = flags::WBINVD | flags::PWR_BUTTON | flags::SLP_BUTTON | flags::HW_REDUCED_ACPI;
    t[fadt::offset::FLAGS..fadt::offset::FLAGS + 4].copy_from_slice(&f.to_le_bytes());
    t[fadt::offset::MINOR_VERSION] = FADT_MINOR_VERSION;
    t[fadt::offset::X_DSDT..fadt::offset::X_DSDT + 8].copy_from_slice(&dsdt.to_le_bytes());
    finish_table(&mut t).ok_or(BuildError::TooLarge)?;
    Ok(t)
}

/// AML `PkgLength` for `content` bytes that follow it (the encoding counts itself).
fn pkg_length(content: usize) -> Option<Vec<u8>> {
    for n in 1..=4usize {
        let total = content.checked_add(n)?;
        let max = match n {
            1 => 0x3F,
            2 => 0xFFF,
            3 => 0xF_FFFF,
            _ => 0xFFF_FFFF,
        };
        if total > max {
            continue;
        }
        if n == 1 {
            return Some(alloc::vec![total as u8]);
        }
        let mut out = alloc::vec![(((n - 1) << 6) | (total & 0xF)) as u8];
        for k in 0..n - 1 {
            out.push((total >> (4 + 8 * k)) as u8);
        }
        return Some(out);
    }
    None
}

/// AML for an integer constant.
fn aml_integer(v: u32, out: &mut Vec<u8>) {
    match v {
        0 => out.push(0x00),
        1 => out.push(0x01),
        2..=0xFF => out.extend_from_slice(&[0x0A, v as u8]),
        0x100..=0xFFFF => {
            out.push(0x0B);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        _ => {
            out.push(0x0C);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// `Device (Cnnn) { Name (_HID, "ACPI0007") Name (_UID, i) }`.
fn processor_device(i: u32, out: &mut Vec<u8>) -> Option<()> {
    let mut body = Vec::with_capacity(32);
    body.extend_from_slice(&[
        b'C',
        HEX[((i >> 8) & 0xF) as usize],
        HEX[((i >> 4) & 0xF) as usize],
        HEX[(i & 0xF) as usize],
    ]);
    body.push(0x08); // NameOp
    body.extend_from_slice(b"_HID");
    body.push(0x0D); // StringPrefix
    body.extend_from_slice(b"ACPI0007\0");
    body.push(0x08);
    body.extend_from_slice(b"_UID");
    aml_integer(i, &mut body);
    out.extend_from_slice(&[0x5B, 0x82]); // ExtOpPrefix DeviceOp
    out.extend_from_slice(&pkg_length(body.len())?);
    out.extend_from_slice(&body);
    Some(())
}

/// A revision 2 DSDT: `Scope (\_SB) { <one processor device per vCPU> }`.
fn build_dsdt(spec: &DomuSpec) -> Result<Vec<u8>, BuildError> {
    let mut devices = Vec::new();
    for i in 0..spec.vcpus {
        processor_device(i, &mut devices).ok_or(BuildError::TooLarge)?;
    }
    let mut scope_body = alloc::vec![b'\\', b'_', b'S', b'B', b'_'];
    scope_body.extend_from_slice(&devices);
    let mut t = spec.header(b"DSDT", 2).to_bytes().to_vec();
    t.push(0x10); // ScopeOp
    t.extend_from_slice(&pkg_length(scope_body.len()).ok_or(BuildError::TooLarge)?);
    t.extend_from_slice(&scope_body);
    finish_table(&mut t).ok_or(BuildError::TooLarge)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::validate;
    use crate::{MadtSummary, checksum};

    #[test]
    fn tables_validate_cleanly() {
        for vcpus in [1u32, 2, 4, 127, 128, 200, MAX_DOMU_VCPUS] {
            let d = domu_tables(vcpus, 0xFC00_0000).unwrap();
            let v = validate(&d, d.rsdp.0);
            assert!(v.ok(), "{vcpus}: {:#?}", v.all_problems());
            assert_eq!(v.present, vec!["XSDT", "FACP", "APIC", "DSDT"]);
            let f = v.fadt.as_ref().unwrap();
            assert!(f.hw_reduced());
            assert!(f.vga_not_present() && f.cmos_rtc_not_present());
            assert!(!f.legacy_devices() && !f.has_8042() && !f.msi_not_supported());
            assert_eq!(f.facs_address(), None);
            assert_eq!((f.revision, f.minor_version, f.length), (6, 5, 276));
            let m = v.madt.as_ref().unwrap();
            assert_eq!(m.cpus_enabled, vcpus);
            assert_eq!(m.apic_ids, (0..vcpus).map(|i| 2 * i).collect::<Vec<_>>());
            assert!(m.ioapics.is_empty());
            assert_eq!(m.flags, 0);
            // Type 0 up to id 254 (128 vCPUs), then x2APIC.
            if vcpus <= 128 {
                assert_eq!((m.lapic_entries, m.x2apic_entries), (vcpus, 0));
            } else {
                assert_eq!((m.lapic_entries, m.x2apic_entries), (0, vcpus));
            }
            for (a, t) in core::iter::once(&d.rsdp).chain(d.tables.iter()) {
                if a != &d.rsdp.0 {
                    assert_eq!(a % TABLE_ALIGN, 0);
                    assert_eq!(checksum(t), 0);
                }
            }
        }
    }

    #[test]
    fn layout() {
        let d = domu_tables(2, 0x1000).unwrap();
        assert_eq!(d.rsdp.0, 0x1000);
        let addrs: Vec<u64> = d.tables.iter().map(|(a, _)| *a).collect();
        // RSDP 36 -> XSDT at 0x1030 (52 bytes) -> FADT at 0x1070 (276) -> MADT at 0x1190.
        assert_eq!(addrs[..3], [0x1030, 0x1070, 0x1190]);
        let (madt_at, madt) = d.table(b"APIC").unwrap();
        assert_eq!(madt_at, 0x1190);
        assert_eq!(madt.len(), 44 + 2 * 8);
        assert_eq!(d.tables[3].0, 0x1190 + 60 + 4);
        assert_eq!(
            crate::parse_xsdt_entries(&d.tables[0].1).unwrap(),
            vec![0x1070, 0x1190]
        );
        let rsdp = Rsdp::parse(&d.rsdp.1).unwrap();
        assert_eq!(rsdp.xsdt_address, Some(0x1030));
        let f = crate::FadtSummary::parse(d.table(b"FACP").unwrap().1).unwrap();
        assert_eq!(f.dsdt_address(), Some(d.tables[3].0));
        assert_eq!(u64::from(f.dsdt), d.tables[3].0);
        // One image with everything in place.
        let img = d.image().unwrap();
        assert_eq!(img.len() as u64, d.end() - 0x1000);
        assert_eq!(&img[..36], &d.rsdp.1[..]);
        assert_eq!(&img[0x190..0x190 + 60], madt);
        // Stable.
        assert_eq!(domu_tables(2, 0x1000).unwrap(), d);
        // An unaligned base: the RSDP stays there, the rest is aligned.
        let d = domu_tables(2, 0x1003).unwrap();
        assert_eq!(d.rsdp.0, 0x1003);
        assert_eq!(d.tables[0].0, 0x1030);
        assert!(validate(&d, 0x1003).ok());
        // Hand-made nonsense does not panic.
        let mut odd = d.clone();
        odd.tables.push((u64::MAX - 1, vec![1, 2, 3]));
        assert_eq!(odd.image(), None);
        assert_eq!(odd.end(), u64::MAX);
        odd.tables = vec![(0, vec![1])];
        assert_eq!(odd.image().unwrap().len(), 0x1003 + 36);
    }

    #[test]
    fn above_4g_and_overflow() {
        let d = domu_tables(1, 0x1_0000_0000).unwrap();
        let f = crate::FadtSummary::parse(d.table(b"FACP").unwrap().1).unwrap();
        assert_eq!(f.dsdt, 0);
        assert_eq!(f.x_dsdt, d.tables[3].0);
        assert!(validate(&d, d.rsdp.0).ok());
        assert!(matches!(
            domu_tables(1, u64::MAX - 100),
            Err(BuildError::AddressOverflow { .. })
        ));
        assert_eq!(domu_tables(0, 0x1000), Err(BuildError::NoVcpus));
        assert!(matches!(
            domu_tables(MAX_DOMU_VCPUS + 1, 0x1000),
            Err(BuildError::TooManyVcpus { .. })
        ));
    }

    #[test]
    fn with_an_ioapic() {
        let mut s = DomuSpec::new(3, 0x10_0000);
        s.ioapics = vec![IoApic {
            id: 1,
            addr: 0xFEC0_0000,
            gsi_base: 0,
        }];
        s.apic_id = ApicIdScheme::Identity;
        let d = domu_tables_with(&s).unwrap();
        let m = MadtSummary::parse(d.table(b"APIC").unwrap().1).unwrap();
        assert_eq!(m.ioapics, s.ioapics);
        assert_eq!(m.apic_ids, vec![0, 1, 2]);
        assert!(validate(&d, d.rsdp.0).ok());
    }

    #[test]
    fn aml_encodings() {
        assert_eq!(pkg_length(5), Some(vec![6]));
        assert_eq!(pkg_length(62), Some(vec![63]));
        // 63 content bytes + 2 = 65 = 0x41: lead 0x40 | 1, then 0x04.
        assert_eq!(pkg_length(63), Some(vec![0x41, 0x04]));
        assert_eq!(pkg_length(0xFFD), Some(vec![0x4F, 0xFF]));
        assert_eq!(pkg_length(0xFFE), Some(vec![0x81, 0x00, 0x01]));
        assert_eq!(pkg_length(0xFFF_FFFB), Some(vec![0xCF, 0xFF, 0xFF, 0xFF]));
        assert_eq!(pkg_length(0xFFF_FFFC), None);
        let mut v = Vec::new();
        for i in [0u32, 1, 2, 255, 256, 65536] {
            aml_integer(i, &mut v);
        }
        assert_eq!(
            v,
            vec![0, 1, 0x0A, 2, 0x0A, 255, 0x0B, 0, 1, 0x0C, 0, 0, 1, 0]
        );
        // The DSDT for one vCPU, byte for byte after the header.
        let d = domu_tables(1, 0x1000).unwrap();
        let dsdt = d.table(b"DSDT").unwrap().1;
        assert_eq!(
            &dsdt[36..],
            &[
                0x10, 0x22, b'\\', b'_', b'S', b'B', b'_', // Scope (\_SB), PkgLength 34
                0x5B, 0x82, 0x1A, b'C', b'0', b'0', b'0', // Device (C000), PkgLength 26
                0x08, b'_', b'H', b'I', b'D', 0x0D, b'A', b'C', b'P', b'I', b'0', b'0', b'0', b'7',
                0, // Name (_HID, "ACPI0007")
                0x08, b'_', b'U', b'I', b'D', 0x00, // Name (_UID, Zero)
            ][..]
        );
    }
}
