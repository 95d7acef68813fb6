//! ACPI for dom0: parsing and validating the tables Xen and the firmware give it, building
//! MADT/XSDT/RSDP for a container, and the tables a PVH DomU boots with.
//!
//! - [`validate`]: walk RSDP → XSDT/RSDT → every table through a [`validate::TableSource`];
//!   checksums, lengths, signatures, revisions, and the FADT, MCFG and MADT in detail.
//! - [`build`]: a container's MADT ([`build::ContainerSpec`], including the exact layout Xen
//!   crafts for a PVH dom0), XSDT and RSDP, and an entry-by-entry MADT comparison.
//! - [`domu`]: RSDP, XSDT, FADT (hardware-reduced), MADT and DSDT for a PVH DomU.
//!
//! Parsers take byte slices (dom0 copies a table out of guest memory once it knows its
//! length) and never trust a length field: every error names the table and the byte offset
//! where it went wrong. Xen's crafted tables for a PVH dom0 are placed with alignment 1
//! (`pvh_setup_acpi()`), so nothing here assumes alignment.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod build;
pub mod domu;
pub mod fadt;
pub mod madt;
pub mod mcfg;
pub mod validate;

pub use fadt::FadtSummary;
pub use madt::MadtSummary;
pub use mcfg::McfgEntry;

use alloc::vec::Vec;
use core::fmt;

/// Which table an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableId {
    Rsdp,
    /// A system description table, by its 4-byte signature (as found, maybe garbage).
    Sdt([u8; 4]),
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableId::Rsdp => f.write_str("RSDP"),
            TableId::Sdt(sig) => write_signature(f, sig),
        }
    }
}

/// A signature as text, non-printable bytes as `\xNN`.
fn write_signature(f: &mut fmt::Formatter<'_>, sig: &[u8]) -> fmt::Result {
    for &b in sig {
        if b.is_ascii_graphic() || b == b' ' {
            f.write_str(core::str::from_utf8(&[b]).unwrap_or("?"))?;
        } else {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// Why a table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// The table needs `needed` bytes but only `available` were given; `offset` is where the
    /// missing part starts.
    Truncated {
        table: TableId,
        offset: usize,
        needed: usize,
        available: usize,
    },
    /// The signature at offset 0 is not the expected one.
    BadSignature {
        table: TableId,
        expected: &'static str,
    },
    /// The bytes `[0, len)` do not sum to 0 mod 256; `checksum_offset` is the checksum field.
    BadChecksum {
        table: TableId,
        len: usize,
        sum: u8,
        checksum_offset: usize,
    },
    /// A length field (at `offset`) says `length`, less than the table's fixed part `min`.
    BadLength {
        table: TableId,
        offset: usize,
        length: u32,
        min: usize,
    },
    /// The entry array at `offset` is `len` bytes, not a multiple of `entry_size`.
    RaggedEntries {
        table: TableId,
        offset: usize,
        len: usize,
        entry_size: usize,
    },
    /// The revision byte at `offset` is `revision`, outside `min..=max` for this table.
    BadRevision {
        table: TableId,
        offset: usize,
        revision: u8,
        min: u8,
        max: u8,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcpiError::Truncated {
                table,
                offset,
                needed,
                available,
            } => write!(
                f,
                "{table}: truncated at offset {offset:#x}: needs {needed:#x} bytes, only \
                 {available:#x} available"
            ),
            AcpiError::BadSignature { table, expected } => {
                write!(
                    f,
                    "{table}: bad signature at offset 0x0 (expected \"{expected}\")"
                )
            }
            AcpiError::BadChecksum {
                table,
                len,
                sum,
                checksum_offset,
            } => write!(
                f,
                "{table}: checksum over bytes [0x0, {len:#x}) sums to {sum:#04x}, not 0 \
                 (checksum byte at offset {checksum_offset:#x})"
            ),
            AcpiError::BadLength {
                table,
                offset,
                length,
                min,
            } => write!(
                f,
                "{table}: length field at offset {offset:#x} says {length:#x}, less than the \
                 {min:#x}-byte fixed part"
            ),
            AcpiError::RaggedEntries {
                table,
                offset,
                len,
                entry_size,
            } => write!(
                f,
                "{table}: entries at offset {offset:#x} are {len:#x} bytes, not a multiple of \
                 {entry_size}"
            ),
            AcpiError::BadRevision {
                table,
                offset,
                revision,
                min,
                max,
            } => {
                if min == max {
                    write!(
                        f,
                        "{table}: revision at offset {offset:#x} is {revision} (expected {min})"
                    )
                } else {
                    write!(
                        f,
                        "{table}: revision at offset {offset:#x} is {revision} (expected \
                         {min}..={max})"
                    )
                }
            }
        }
    }
}

use xen::le::{u32_at, u64_at};

/// The structure's `length` field (at `length_offset`), checked: at least `min`, all of it in
/// `bytes`, and its bytes summing to 0 (the checksum byte is at `checksum_offset`).
fn checked_length(
    table: TableId,
    bytes: &[u8],
    length_offset: usize,
    min: usize,
    checksum_offset: usize,
) -> Result<u32, AcpiError> {
    let length = u32_at(bytes, length_offset);
    let len = length as usize;
    if len < min {
        return Err(AcpiError::BadLength {
            table,
            offset: length_offset,
            length,
            min,
        });
    }
    need(table, bytes, len)?;
    let sum = checksum(&bytes[..len]);
    if sum != 0 {
        return Err(AcpiError::BadChecksum {
            table,
            len,
            sum,
            checksum_offset,
        });
    }
    Ok(length)
}

/// The byte sum of `bytes` mod 256 (0 for a table whose checksum is right).
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b))
}

/// Set the byte at `at` so that `bytes[..len]` sums to 0. Out-of-range arguments do nothing.
pub(crate) fn set_checksum(bytes: &mut [u8], at: usize, len: usize) {
    if at >= len || len > bytes.len() {
        return;
    }
    bytes[at] = 0;
    bytes[at] = 0u8.wrapping_sub(checksum(&bytes[..len]));
}

fn need(table: TableId, bytes: &[u8], needed: usize) -> Result<(), AcpiError> {
    if bytes.len() < needed {
        Err(AcpiError::Truncated {
            table,
            offset: bytes.len(),
            needed,
            available: bytes.len(),
        })
    } else {
        Ok(())
    }
}

/// The Root System Description Pointer (ACPI 6.5 section 5.2.5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rsdp {
    pub oem_id: [u8; 6],
    /// 0 for ACPI 1.0 (20-byte RSDP); 2 or more adds length, XSDT address and the extended
    /// checksum.
    pub revision: u8,
    pub rsdt_address: u32,
    /// 20 for revision < 2, else the length field.
    pub length: u32,
    /// `None` for revision < 2.
    pub xsdt_address: Option<u64>,
}

impl Rsdp {
    pub const SIGNATURE: &'static [u8; 8] = b"RSD PTR ";
    /// Size of the ACPI 1.0 part the first checksum covers.
    pub const V1_SIZE: usize = 20;
    /// Size of the revision 2 structure.
    pub const V2_SIZE: usize = 36;

    /// Parse and validate an RSDP. `bytes` may be longer than the structure.
    pub fn parse(bytes: &[u8]) -> Result<Rsdp, AcpiError> {
        let table = TableId::Rsdp;
        need(table, bytes, Self::V1_SIZE)?;
        if &bytes[0..8] != Self::SIGNATURE {
            return Err(AcpiError::BadSignature {
                table,
                expected: "RSD PTR ",
            });
        }
        let sum = checksum(&bytes[..Self::V1_SIZE]);
        if sum != 0 {
            return Err(AcpiError::BadChecksum {
                table,
                len: Self::V1_SIZE,
                sum,
                checksum_offset: 8,
            });
        }
        let mut oem_id = [0u8; 6];
        oem_id.copy_from_slice(&bytes[9..15]);
        let revision = bytes[15];
        let rsdt_address = u32_at(bytes, 16);
        if revision < 2 {
            return Ok(Rsdp {
                oem_id,
                revision,
                rsdt_address,
                length: Self::V1_SIZE as u32,
                xsdt_address: None,
            });
        }
        need(table, bytes, Self::V2_SIZE)?;
        let length = checked_length(table, bytes, 20, Self::V2_SIZE, 32)?;
        Ok(Rsdp {
            oem_id,
            revision,
            rsdt_address,
            length,
            xsdt_address: Some(u64_at(bytes, 24)),
        })
    }

    /// The root table to follow: the XSDT if there is one (non-zero), else the RSDT.
    pub fn root_table(&self) -> RootTable {
        match self.xsdt_address {
            Some(x) if x != 0 => RootTable::Xsdt(x),
            _ => RootTable::Rsdt(self.rsdt_address),
        }
    }
}

/// Where the root table is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootTable {
    Xsdt(u64),
    Rsdt(u32),
}

/// The 36-byte header every system description table starts with (ACPI 6.5 5.2.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SdtHeader {
    pub signature: [u8; 4],
    pub length: u32,
    pub revision: u8,
    pub checksum: u8,
    pub oem_id: [u8; 6],
    pub oem_table_id: [u8; 8],
    pub oem_revision: u32,
    pub creator_id: [u8; 4],
    pub creator_revision: u32,
}

impl SdtHeader {
    pub const SIZE: usize = 36;

    /// Parse the header and validate the whole table: `length` at least the header, all
    /// `length` bytes present in `bytes`, and their checksum 0. `bytes` may be longer.
    pub fn parse(bytes: &[u8]) -> Result<SdtHeader, AcpiError> {
        let mut signature = [0u8; 4];
        let n = bytes.len().min(4);
        signature[..n].copy_from_slice(&bytes[..n]);
        let table = TableId::Sdt(signature);
        need(table, bytes, Self::SIZE)?;
        let length = checked_length(table, bytes, 4, Self::SIZE, 9)?;
        let mut oem_id = [0u8; 6];
        oem_id.copy_from_slice(&bytes[10..16]);
        let mut oem_table_id = [0u8; 8];
        oem_table_id.copy_from_slice(&bytes[16..24]);
        let mut creator_id = [0u8; 4];
        creator_id.copy_from_slice(&bytes[28..32]);
        Ok(SdtHeader {
            signature,
            length,
            revision: bytes[8],
            checksum: bytes[9],
            oem_id,
            oem_table_id,
            oem_revision: u32_at(bytes, 24),
            creator_id,
            creator_revision: u32_at(bytes, 32),
        })
    }

    /// Like [`SdtHeader::parse`], and the signature must be `expected`.
    pub fn parse_expecting(bytes: &[u8], expected: &'static str) -> Result<SdtHeader, AcpiError> {
        let hdr = Self::parse(bytes)?;
        if hdr.signature[..] != *expected.as_bytes() {
            return Err(AcpiError::BadSignature {
                table: TableId::Sdt(hdr.signature),
                expected,
            });
        }
        Ok(hdr)
    }

    /// The table's body (after the header), given the bytes it was parsed from.
    pub fn body<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes.get(Self::SIZE..self.length as usize).unwrap_or(&[])
    }

    /// The 36 header bytes as they are: signature, `length`, revision, `checksum`, OEM and
    /// creator fields. Builders write this, append the body, then [`finish_table`].
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.signature);
        b[4..8].copy_from_slice(&self.length.to_le_bytes());
        b[8] = self.revision;
        b[9] = self.checksum;
        b[10..16].copy_from_slice(&self.oem_id);
        b[16..24].copy_from_slice(&self.oem_table_id);
        b[24..28].copy_from_slice(&self.oem_revision.to_le_bytes());
        b[28..32].copy_from_slice(&self.creator_id);
        b[32..36].copy_from_slice(&self.creator_revision.to_le_bytes());
        b
    }

    /// The signature as text (non-printable bytes as `\xNN`).
    pub fn signature_str(&self) -> alloc::string::String {
        alloc::format!("{}", TableId::Sdt(self.signature))
    }
}

/// Make a table built in `bytes` consistent: the length field (offset 4) becomes
/// `bytes.len()` and the checksum (offset 9) is set. Returns `None` (and changes nothing) if the
/// table is shorter than a header or longer than `u32::MAX`.
pub fn finish_table(bytes: &mut [u8]) -> Option<()> {
    if bytes.len() < SdtHeader::SIZE {
        return None;
    }
    let len = u32::try_from(bytes.len()).ok()?;
    bytes[4..8].copy_from_slice(&len.to_le_bytes());
    set_checksum(bytes, 9, bytes.len());
    Some(())
}

/// The entries of an XSDT whose header is intact (length, checksum) but whose signature is not
/// "XSDT", and the signature it carries.
///
/// Xen 4.17's PVH dom0 builder copies the "native XSDT header" even when the firmware has only
/// an ACPI 1.0 RSDP (no XSDT, as SeaBIOS under QEMU): it then copies 36 bytes from address 0
/// (the real-mode IVT) and fixes up only length and checksum (`pvh_setup_acpi_xsdt()`; later Xen
/// falls back to the RSDT header). The entries Xen wrote are sound, so a caller that knows it
/// reads Xen's crafted root table can use them, and report the bad signature.
pub fn parse_xsdt_entries_any_signature(bytes: &[u8]) -> Result<(Vec<u64>, [u8; 4]), AcpiError> {
    let hdr = SdtHeader::parse(bytes)?;
    Ok((entries_of(&hdr, bytes, 8)?, hdr.signature))
}

fn parse_entries(
    bytes: &[u8],
    signature: &'static str,
    entry_size: usize,
) -> Result<Vec<u64>, AcpiError> {
    let hdr = SdtHeader::parse_expecting(bytes, signature)?;
    entries_of(&hdr, bytes, entry_size)
}

fn entries_of(hdr: &SdtHeader, bytes: &[u8], entry_size: usize) -> Result<Vec<u64>, AcpiError> {
    let body = hdr.body(bytes);
    if !body.len().is_multiple_of(entry_size) {
        return Err(AcpiError::RaggedEntries {
            table: TableId::Sdt(hdr.signature),
            offset: SdtHeader::SIZE,
            len: body.len(),
            entry_size,
        });
    }
    Ok(body
        .chunks_exact(entry_size)
        .map(|e| {
            if entry_size == 8 {
                u64_at(e, 0)
            } else {
                u64::from(u32_at(e, 0))
            }
        })
        .collect())
}

/// The table addresses in an XSDT: 8-byte entries, read unaligned (Xen's crafted XSDT is at
/// alignment 1, and 8-byte entries after a 36-byte header are never 8-aligned anyway).
/// Zero entries are returned as they are.
pub fn parse_xsdt_entries(bytes: &[u8]) -> Result<Vec<u64>, AcpiError> {
    parse_entries(bytes, "XSDT", 8)
}

/// The table addresses in an RSDT: 4-byte entries.
pub fn parse_rsdt_entries(bytes: &[u8]) -> Result<Vec<u64>, AcpiError> {
    parse_entries(bytes, "RSDT", 4)
}

#[cfg(test)]
mod tests;
