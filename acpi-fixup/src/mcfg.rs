//! The MCFG (PCI Firmware Specification 3.x, section 4.1.2): where each PCI segment's ECAM
//! (memory-mapped configuration space) is.
//!
//! Layout: the 36-byte header, 8 reserved bytes, then 16-byte entries: base address (u64, the
//! address of bus 0's configuration space even when the range starts later), segment (u16),
//! start bus, end bus, 4 reserved bytes. Each bus takes 1 MiB (32 devices × 8 functions × 4 KiB).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::{AcpiError, SdtHeader, TableId, u64_at};

/// One ECAM region.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct McfgEntry {
    /// Address of bus 0's configuration space in this segment.
    pub base: u64,
    pub segment: u16,
    pub start_bus: u8,
    pub end_bus: u8,
}

impl McfgEntry {
    /// Bytes of configuration space one bus takes.
    pub const BUS_SIZE: u64 = 1 << 20;

    /// The address range `[start, end)` the entry's buses occupy; `None` if it overflows or the
    /// bus range is backwards.
    pub fn range(&self) -> Option<(u64, u64)> {
        if self.end_bus < self.start_bus {
            return None;
        }
        let start = self
            .base
            .checked_add(u64::from(self.start_bus) * Self::BUS_SIZE)?;
        let end = self
            .base
            .checked_add((u64::from(self.end_bus) + 1) * Self::BUS_SIZE)?;
        Some((start, end))
    }

    /// The alignment the base should have: the power of two that covers buses
    /// `0..=end_bus` (256 MiB for a full 256-bus segment), as a decoder of that many bus-number
    /// bits needs.
    pub fn decode_alignment(&self) -> u64 {
        (u64::from(self.end_bus) + 1).next_power_of_two() * Self::BUS_SIZE
    }
}

/// Size of the header and the 8 reserved bytes.
pub const FIXED_SIZE: usize = SdtHeader::SIZE + 8;
/// Size of one entry.
pub const ENTRY_SIZE: usize = 16;

/// Parse an MCFG. Errors for a bad header or a length below the fixed part or not a whole
/// number of entries; the returned problems name each entry's offset and what was expected
/// (end bus before start bus, base not 1 MiB aligned or not aligned to its decode size, zero
/// base, overflow, overlap with another entry of the same segment).
pub fn parse(table: &[u8]) -> Result<(Vec<McfgEntry>, Vec<String>), AcpiError> {
    let hdr = SdtHeader::parse_expecting(table, "MCFG")?;
    let id = TableId::Sdt(hdr.signature);
    let len = hdr.length as usize;
    if len < FIXED_SIZE {
        return Err(AcpiError::BadLength {
            table: id,
            offset: 4,
            length: hdr.length,
            min: FIXED_SIZE,
        });
    }
    let body = &table[FIXED_SIZE..len];
    if !body.len().is_multiple_of(ENTRY_SIZE) {
        return Err(AcpiError::RaggedEntries {
            table: id,
            offset: FIXED_SIZE,
            len: body.len(),
            entry_size: ENTRY_SIZE,
        });
    }
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, e) in body.chunks_exact(ENTRY_SIZE).enumerate() {
        let off = FIXED_SIZE + i * ENTRY_SIZE;
        let m = McfgEntry {
            base: u64_at(e, 0),
            segment: xen::le::get_u16(e, 8).unwrap_or(0),
            start_bus: e[10],
            end_bus: e[11],
        };
        if m.end_bus < m.start_bus {
            problems.push(format!(
                "MCFG: entry at offset {off:#x}: end bus {:#04x} (offset {:#x}) is below start \
                 bus {:#04x} (expected end >= start)",
                m.end_bus,
                off + 11,
                m.start_bus
            ));
        }
        if m.base == 0 {
            problems.push(format!(
                "MCFG: entry at offset {off:#x}: base address is 0 (expected the ECAM base)"
            ));
        } else if !m.base.is_multiple_of(McfgEntry::BUS_SIZE) {
            problems.push(format!(
                "MCFG: entry at offset {off:#x}: base {:#x} is not 1 MiB aligned (expected a \
                 multiple of 0x100000)",
                m.base
            ));
        } else if !m.base.is_multiple_of(m.decode_alignment()) {
            problems.push(format!(
                "MCFG: entry at offset {off:#x}: base {:#x} is not aligned to {:#x}, the size \
                 that buses 0..={:#04x} decode (expected base aligned to 1 MiB << bus bits)",
                m.base,
                m.decode_alignment(),
                m.end_bus
            ));
        }
        if m.end_bus >= m.start_bus && m.range().is_none() {
            problems.push(format!(
                "MCFG: entry at offset {off:#x}: base {:#x} plus buses up to {:#04x} runs past \
                 the end of the address space",
                m.base, m.end_bus
            ));
        }
        for (j, other) in entries.iter().enumerate() {
            let other: &McfgEntry = other;
            if other.segment == m.segment
                && m.start_bus <= other.end_bus
                && other.start_bus <= m.end_bus
                && m.end_bus >= m.start_bus
                && other.end_bus >= other.start_bus
            {
                problems.push(format!(
                    "MCFG: entry at offset {off:#x}: segment {:#x} buses {:#04x}-{:#04x} overlap \
                     the entry at offset {:#x} (buses {:#04x}-{:#04x}; expected each bus once)",
                    m.segment,
                    m.start_bus,
                    m.end_bus,
                    FIXED_SIZE + j * ENTRY_SIZE,
                    other.start_bus,
                    other.end_bus
                ));
            }
        }
        // The overlap check is quadratic; a table with more entries than segments × buses can
        // hold is hostile, and what was parsed so far is enough to report it.
        if entries.len() >= 4096 {
            problems.push(format!(
                "MCFG: more than 4096 entries; stopped at offset {off:#x}"
            ));
            break;
        }
        entries.push(m);
    }
    Ok((entries, problems))
}

/// Build an MCFG with the given OEM/creator fields (from `header`) and entries.
pub fn build(header: &SdtHeader, entries: &[McfgEntry]) -> Option<Vec<u8>> {
    let mut h = *header;
    h.signature = *b"MCFG";
    h.revision = 1;
    let mut t = Vec::with_capacity(FIXED_SIZE + entries.len() * ENTRY_SIZE);
    t.extend_from_slice(&h.to_bytes());
    t.extend_from_slice(&[0; 8]);
    for e in entries {
        t.extend_from_slice(&e.base.to_le_bytes());
        t.extend_from_slice(&e.segment.to_le_bytes());
        t.extend_from_slice(&[e.start_bus, e.end_bus, 0, 0, 0, 0]);
    }
    crate::finish_table(&mut t)?;
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q35() -> McfgEntry {
        McfgEntry {
            base: 0xB000_0000,
            segment: 0,
            start_bus: 0,
            end_bus: 0xFF,
        }
    }

    #[test]
    fn good_mcfg() {
        let t = build(&SdtHeader::default(), &[q35()]).unwrap();
        assert_eq!(t.len(), 60);
        let (e, p) = parse(&t).unwrap();
        assert_eq!(e, vec![q35()]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(q35().range(), Some((0xB000_0000, 0xC000_0000)));
        // Two segments, and a segment whose range starts at bus 0x40 (base is still bus 0's).
        let more = [
            q35(),
            McfgEntry {
                base: 0x38_0000_0000,
                segment: 1,
                start_bus: 0x40,
                end_bus: 0x7F,
            },
        ];
        let (e, p) = parse(&build(&SdtHeader::default(), &more).unwrap()).unwrap();
        assert_eq!(e, more);
        assert!(p.is_empty(), "{p:?}");
        // No entries at all is valid.
        assert_eq!(
            parse(&build(&SdtHeader::default(), &[]).unwrap()).unwrap(),
            (vec![], vec![])
        );
    }

    #[test]
    fn bad_entries() {
        let bad = [
            McfgEntry {
                end_bus: 0,
                start_bus: 1,
                ..q35()
            },
            McfgEntry {
                base: 0xB000_1000,
                segment: 1,
                ..q35()
            },
            McfgEntry {
                base: 0xB010_0000,
                segment: 2,
                ..q35()
            },
            McfgEntry {
                base: 0,
                segment: 3,
                ..q35()
            },
            McfgEntry {
                base: 0xFFFF_FFFF_FFF0_0000,
                segment: 4,
                end_bus: 0,
                ..q35()
            },
            McfgEntry {
                base: 0xE000_0000,
                start_bus: 0x80,
                ..q35()
            },
        ];
        let (e, p) = parse(&build(&SdtHeader::default(), &bad).unwrap()).unwrap();
        assert_eq!(e.len(), 6);
        assert_eq!(
            p,
            vec![
                "MCFG: entry at offset 0x2c: end bus 0x00 (offset 0x37) is below start bus 0x01 \
                 (expected end >= start)",
                "MCFG: entry at offset 0x3c: base 0xb0001000 is not 1 MiB aligned (expected a \
                 multiple of 0x100000)",
                "MCFG: entry at offset 0x4c: base 0xb0100000 is not aligned to 0x10000000, the \
                 size that buses 0..=0xff decode (expected base aligned to 1 MiB << bus bits)",
                "MCFG: entry at offset 0x5c: base address is 0 (expected the ECAM base)",
                "MCFG: entry at offset 0x6c: base 0xfffffffffff00000 plus buses up to 0x00 runs \
                 past the end of the address space",
                // The last entry is fine: a backwards range overlaps nothing.
            ]
        );
    }

    #[test]
    fn overlapping_entries() {
        let e = [
            q35(),
            McfgEntry {
                base: 0xE000_0000,
                start_bus: 0x80,
                ..q35()
            },
        ];
        let (_, p) = parse(&build(&SdtHeader::default(), &e).unwrap()).unwrap();
        assert_eq!(
            p,
            vec![
                "MCFG: entry at offset 0x3c: segment 0x0 buses 0x80-0xff overlap the entry at \
                 offset 0x2c (buses 0x00-0xff; expected each bus once)"
            ]
        );
    }

    #[test]
    fn broken_tables() {
        let mut t = build(&SdtHeader::default(), &[q35()]).unwrap();
        t.push(0);
        crate::finish_table(&mut t).unwrap();
        assert_eq!(
            parse(&t).unwrap_err().to_string(),
            "MCFG: entries at offset 0x2c are 0x11 bytes, not a multiple of 16"
        );
        let mut t = build(&SdtHeader::default(), &[]).unwrap();
        t.truncate(40);
        crate::finish_table(&mut t).unwrap();
        assert!(matches!(
            parse(&t),
            Err(AcpiError::BadLength { min: 44, .. })
        ));
        let t = build(&SdtHeader::default(), &[q35()]).unwrap();
        assert!(matches!(parse(&t[..50]), Err(AcpiError::Truncated { .. })));
    }

    #[test]
    fn many_entries_are_bounded() {
        let e: Vec<McfgEntry> = (0..5000u32)
            .map(|i| McfgEntry {
                base: 0x1_0000_0000 + u64::from(i) * 0x1000_0000,
                segment: i as u16,
                start_bus: 0,
                end_bus: 0xFF,
            })
            .collect();
        let (got, p) = parse(&build(&SdtHeader::default(), &e).unwrap()).unwrap();
        assert_eq!(got.len(), 4096);
        assert_eq!(p.len(), 1);
    }
}
