//! The MADT ("APIC", ACPI 6.5 section 5.2.12): what CPUs and interrupt controllers it lists.
//!
//! Xen crafts the MADT a PVH dom0 sees (`pvh_setup_acpi_madt()`): revision `min(native, 4)`,
//! flags 0, LAPIC address 0xFEE00000, then one IO APIC entry per host IO-APIC, one **Local
//! x2APIC** entry (type 9) per dom0 vCPU (uid *i*, x2APIC id 2·*i*, enabled), and the native
//! Interrupt Source Overrides. There are no type-0 Local APIC entries, so both kinds are counted
//! here. Firmware MADTs (QEMU, real machines) use type 0 and often add NMI entries.
//!
//! [`MadtSummary::parse`] refuses a table whose header is bad (signature, length, checksum, or
//! too short for the 8-byte fixed part after the header). Anything wrong in the entries is
//! reported in [`MadtSummary::problems`], each message naming the byte offset (from the start of
//! the table), and what was parsed before it is kept: a diagnostics report wants to show what
//! the firmware said, even when part of it is wrong. Every entry that could be decoded is kept
//! in [`MadtSummary::entries`] (with its offset), which is what the builder and
//! [`crate::build::compare_madt`] work from.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::{AcpiError, SdtHeader, TableId, u32_at, u64_at};

/// Entry types this module decodes.
pub const LOCAL_APIC: u8 = 0;
pub const IO_APIC: u8 = 1;
pub const INTERRUPT_SOURCE_OVERRIDE: u8 = 2;
pub const NMI_SOURCE: u8 = 3;
pub const LOCAL_APIC_NMI: u8 = 4;
pub const LOCAL_APIC_ADDRESS_OVERRIDE: u8 = 5;
pub const LOCAL_X2APIC: u8 = 9;
pub const LOCAL_X2APIC_NMI: u8 = 0xA;
/// The last entry type ACPI defines (0x1B, RISC-V PLIC). 0x1C..=0x7F are reserved, 0x80..=0xFF
/// are for OEMs.
pub const LAST_DEFINED_TYPE: u8 = 0x1B;
/// The first OEM-defined entry type.
pub const FIRST_OEM_TYPE: u8 = 0x80;

/// Local APIC / x2APIC flags: the processor is usable.
pub const FLAG_ENABLED: u32 = 1 << 0;
/// Local APIC / x2APIC flags: the processor can be brought online (MADT revision 5 and later).
pub const FLAG_ONLINE_CAPABLE: u32 = 1 << 1;
/// MADT flags: the system also has dual 8259 PICs.
pub const PCAT_COMPAT: u32 = 1 << 0;

/// The first MADT revision (ACPI 6.3) that defines the online-capable flag; before it the bit
/// is reserved and ignored (as Linux does, `acpi_support_online_capable`).
const ONLINE_CAPABLE_REVISION: u8 = 5;

/// At most this many problems are kept; the rest are counted in one last message, so a hostile
/// table cannot make the list grow without bound.
pub const MAX_PROBLEMS: usize = 32;

/// An IO APIC (MADT type 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IoApic {
    pub id: u8,
    /// Physical base address of its registers.
    pub addr: u32,
    /// The first GSI it handles.
    pub gsi_base: u32,
}

/// An Interrupt Source Override (MADT type 2): ISA IRQ `source` on `bus` (always 0, ISA) is
/// GSI `gsi`, with MPS INTI `flags` (bits 0-1 polarity, 2-3 trigger mode).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Override {
    pub bus: u8,
    pub source: u8,
    pub gsi: u32,
    pub flags: u16,
}

/// An NMI description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Nmi {
    /// Type 3 (NMI Source): GSI `gsi` is an NMI, with MPS INTI `flags`.
    Source { flags: u16, gsi: u32 },
    /// Type 4 (Local APIC NMI) or 0xA (Local x2APIC NMI): local interrupt pin `lint` (0 or 1)
    /// of the processor with ACPI uid `uid` (`None`: all processors, 0xFF / 0xFFFFFFFF in the
    /// table) is wired to NMI, with MPS INTI `flags`.
    Local {
        uid: Option<u32>,
        flags: u16,
        lint: u8,
    },
}

/// One decoded MADT entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadtEntry {
    /// Type 0, Processor Local APIC.
    LocalApic { uid: u8, apic_id: u8, flags: u32 },
    /// Type 1.
    IoApic(IoApic),
    /// Type 2.
    Override(Override),
    /// Type 3.
    NmiSource { flags: u16, gsi: u32 },
    /// Type 4 (uid 0xFF: all processors).
    LocalApicNmi { uid: u8, flags: u16, lint: u8 },
    /// Type 5: the 64-bit local APIC address that replaces the header's 32-bit one.
    LapicAddressOverride { addr: u64 },
    /// Type 9, Processor Local x2APIC.
    LocalX2apic {
        x2apic_id: u32,
        flags: u32,
        uid: u32,
    },
    /// Type 0xA (uid 0xFFFFFFFF: all processors).
    LocalX2apicNmi { uid: u32, flags: u16, lint: u8 },
    /// Any other type: the bytes after the 2-byte entry header.
    Other { entry_type: u8, body: Vec<u8> },
}

/// A decoded entry and where it starts (offset from the start of the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadtEntryAt {
    pub offset: usize,
    pub entry: MadtEntry,
}

impl MadtEntry {
    /// The entry type byte.
    pub fn entry_type(&self) -> u8 {
        match self {
            MadtEntry::LocalApic { .. } => LOCAL_APIC,
            MadtEntry::IoApic(_) => IO_APIC,
            MadtEntry::Override(_) => INTERRUPT_SOURCE_OVERRIDE,
            MadtEntry::NmiSource { .. } => NMI_SOURCE,
            MadtEntry::LocalApicNmi { .. } => LOCAL_APIC_NMI,
            MadtEntry::LapicAddressOverride { .. } => LOCAL_APIC_ADDRESS_OVERRIDE,
            MadtEntry::LocalX2apic { .. } => LOCAL_X2APIC,
            MadtEntry::LocalX2apicNmi { .. } => LOCAL_X2APIC_NMI,
            MadtEntry::Other { entry_type, .. } => *entry_type,
        }
    }

    /// Append the entry in its ACPI encoding (the spec's length for known types; reserved
    /// fields zero). `None` for an `Other` entry whose body does not fit a 255-byte entry.
    pub fn encode(&self, out: &mut Vec<u8>) -> Option<()> {
        let t = self.entry_type();
        match self {
            MadtEntry::LocalApic {
                uid,
                apic_id,
                flags,
            } => {
                out.extend_from_slice(&[t, 8, *uid, *apic_id]);
                out.extend_from_slice(&flags.to_le_bytes());
            }
            MadtEntry::IoApic(io) => {
                out.extend_from_slice(&[t, 12, io.id, 0]);
                out.extend_from_slice(&io.addr.to_le_bytes());
                out.extend_from_slice(&io.gsi_base.to_le_bytes());
            }
            MadtEntry::Override(o) => {
                out.extend_from_slice(&[t, 10, o.bus, o.source]);
                out.extend_from_slice(&o.gsi.to_le_bytes());
                out.extend_from_slice(&o.flags.to_le_bytes());
            }
            MadtEntry::NmiSource { flags, gsi } => {
                out.extend_from_slice(&[t, 8]);
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&gsi.to_le_bytes());
            }
            MadtEntry::LocalApicNmi { uid, flags, lint } => {
                out.extend_from_slice(&[t, 6, *uid]);
                out.extend_from_slice(&flags.to_le_bytes());
                out.push(*lint);
            }
            MadtEntry::LapicAddressOverride { addr } => {
                out.extend_from_slice(&[t, 12, 0, 0]);
                out.extend_from_slice(&addr.to_le_bytes());
            }
            MadtEntry::LocalX2apic {
                x2apic_id,
                flags,
                uid,
            } => {
                out.extend_from_slice(&[t, 16, 0, 0]);
                out.extend_from_slice(&x2apic_id.to_le_bytes());
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&uid.to_le_bytes());
            }
            MadtEntry::LocalX2apicNmi { uid, flags, lint } => {
                out.extend_from_slice(&[t, 12]);
                out.extend_from_slice(&flags.to_le_bytes());
                out.extend_from_slice(&uid.to_le_bytes());
                out.extend_from_slice(&[*lint, 0, 0, 0]);
            }
            MadtEntry::Other { body, .. } => {
                let len = u8::try_from(body.len().checked_add(2)?).ok()?;
                out.extend_from_slice(&[t, len]);
                out.extend_from_slice(body);
            }
        }
        Some(())
    }

    /// The entry's fields as (name, value) pairs, `type` first; what
    /// [`crate::build::compare_madt`] compares.
    pub fn fields(&self) -> Vec<(&'static str, u64)> {
        let mut f = alloc::vec![("type", u64::from(self.entry_type()))];
        match self {
            MadtEntry::LocalApic {
                uid,
                apic_id,
                flags,
            } => f.extend([
                ("uid", u64::from(*uid)),
                ("apic id", u64::from(*apic_id)),
                ("flags", u64::from(*flags)),
            ]),
            MadtEntry::IoApic(io) => f.extend([
                ("id", u64::from(io.id)),
                ("address", u64::from(io.addr)),
                ("gsi base", u64::from(io.gsi_base)),
            ]),
            MadtEntry::Override(o) => f.extend([
                ("bus", u64::from(o.bus)),
                ("source", u64::from(o.source)),
                ("gsi", u64::from(o.gsi)),
                ("flags", u64::from(o.flags)),
            ]),
            MadtEntry::NmiSource { flags, gsi } => {
                f.extend([("gsi", u64::from(*gsi)), ("flags", u64::from(*flags))])
            }
            MadtEntry::LocalApicNmi { uid, flags, lint } => f.extend([
                ("uid", u64::from(*uid)),
                ("lint", u64::from(*lint)),
                ("flags", u64::from(*flags)),
            ]),
            MadtEntry::LapicAddressOverride { addr } => f.push(("address", *addr)),
            MadtEntry::LocalX2apic {
                x2apic_id,
                flags,
                uid,
            } => f.extend([
                ("uid", u64::from(*uid)),
                ("apic id", u64::from(*x2apic_id)),
                ("flags", u64::from(*flags)),
            ]),
            MadtEntry::LocalX2apicNmi { uid, flags, lint } => f.extend([
                ("uid", u64::from(*uid)),
                ("lint", u64::from(*lint)),
                ("flags", u64::from(*flags)),
            ]),
            MadtEntry::Other { body, .. } => f.push(("length", body.len() as u64 + 2)),
        }
        f
    }

    /// The NMI this entry describes, if it is one of types 3, 4, 0xA.
    pub fn nmi(&self) -> Option<Nmi> {
        match *self {
            MadtEntry::NmiSource { flags, gsi } => Some(Nmi::Source { flags, gsi }),
            MadtEntry::LocalApicNmi { uid, flags, lint } => Some(Nmi::Local {
                uid: (uid != 0xFF).then_some(u32::from(uid)),
                flags,
                lint,
            }),
            MadtEntry::LocalX2apicNmi { uid, flags, lint } => Some(Nmi::Local {
                uid: (uid != u32::MAX).then_some(uid),
                flags,
                lint,
            }),
            _ => None,
        }
    }
}

impl fmt::Display for MadtEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {} ({})",
            self.entry_type(),
            entry_name(self.entry_type())
        )?;
        for (name, value) in self.fields().into_iter().skip(1) {
            if name == "address" || name == "flags" {
                write!(f, " {name} {value:#x}")?;
            } else {
                write!(f, " {name} {value}")?;
            }
        }
        Ok(())
    }
}

/// What a MADT says, as counts and lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MadtSummary {
    /// The table header (OEM fields are what a container MADT copies).
    pub header: SdtHeader,
    /// The header's revision (Xen's crafted MADT: `min(native, 4)`).
    pub revision: u8,
    /// Local APIC address (offset 36). Xen: 0xFEE00000. A type-5 override is not applied.
    pub lapic_addr: u32,
    /// Flags (offset 40); bit 0 PCAT_COMPAT (dual 8259s present). Xen's crafted MADT: 0.
    pub flags: u32,
    /// Local APIC and x2APIC entries with the enabled flag.
    pub cpus_enabled: u32,
    /// Entries not enabled but online-capable (only from MADT revision 5 on).
    pub cpus_online_capable: u32,
    /// Entries neither enabled nor online-capable.
    pub cpus_disabled: u32,
    /// The APIC ids of the enabled entries, in table order (type 0 ids widened to u32).
    pub apic_ids: Vec<u32>,
    /// Type 9 (Processor Local x2APIC) entries, whatever their flags.
    pub x2apic_entries: u32,
    /// Type 0 (Processor Local APIC) entries, whatever their flags.
    pub lapic_entries: u32,
    /// Type 1 entries, in table order.
    pub ioapics: Vec<IoApic>,
    /// Number of type 2 (Interrupt Source Override) entries.
    pub overrides: u32,
    /// The type 2 entries, in table order.
    pub override_entries: Vec<Override>,
    /// Number of NMI entries: type 3 (NMI Source), 4 (Local APIC NMI), 0xA (Local x2APIC NMI).
    pub nmi_entries: u32,
    /// Those NMI entries, in table order.
    pub nmis: Vec<Nmi>,
    /// The type of every other entry, in table order.
    pub other_entries: Vec<u8>,
    /// Every entry that could be decoded, in table order, with its offset. Entries too short
    /// for their type are left out (and named in `problems`).
    pub entries: Vec<MadtEntryAt>,
    /// What was wrong with the entries, each naming the byte offset from the table start.
    pub problems: Vec<String>,
}

/// A short name for an entry type, for messages.
pub fn entry_name(t: u8) -> &'static str {
    match t {
        LOCAL_APIC => "Local APIC",
        IO_APIC => "IO APIC",
        INTERRUPT_SOURCE_OVERRIDE => "Interrupt Source Override",
        NMI_SOURCE => "NMI Source",
        LOCAL_APIC_NMI => "Local APIC NMI",
        LOCAL_APIC_ADDRESS_OVERRIDE => "Local APIC Address Override",
        LOCAL_X2APIC => "Local x2APIC",
        LOCAL_X2APIC_NMI => "Local x2APIC NMI",
        FIRST_OEM_TYPE..=0xFF => "OEM",
        t if t > LAST_DEFINED_TYPE => "reserved",
        _ => "other",
    }
}

/// The size an entry of a decoded type must have at least.
fn min_len(t: u8) -> Option<usize> {
    match t {
        LOCAL_APIC => Some(8),
        IO_APIC => Some(12),
        INTERRUPT_SOURCE_OVERRIDE => Some(10),
        NMI_SOURCE => Some(8),
        LOCAL_APIC_NMI => Some(6),
        LOCAL_APIC_ADDRESS_OVERRIDE => Some(12),
        LOCAL_X2APIC => Some(16),
        LOCAL_X2APIC_NMI => Some(12),
        _ => None,
    }
}

/// Decode an entry of a known type whose bytes `e` are at least `min_len` long.
fn decode(t: u8, e: &[u8]) -> MadtEntry {
    let u16_at = |o: usize| u16::from_le_bytes([e[o], e[o + 1]]);
    match t {
        LOCAL_APIC => MadtEntry::LocalApic {
            uid: e[2],
            apic_id: e[3],
            flags: u32_at(e, 4),
        },
        IO_APIC => MadtEntry::IoApic(IoApic {
            id: e[2],
            addr: u32_at(e, 4),
            gsi_base: u32_at(e, 8),
        }),
        INTERRUPT_SOURCE_OVERRIDE => MadtEntry::Override(Override {
            bus: e[2],
            source: e[3],
            gsi: u32_at(e, 4),
            flags: u16_at(8),
        }),
        NMI_SOURCE => MadtEntry::NmiSource {
            flags: u16_at(2),
            gsi: u32_at(e, 4),
        },
        LOCAL_APIC_NMI => MadtEntry::LocalApicNmi {
            uid: e[2],
            flags: u16_at(3),
            lint: e[5],
        },
        LOCAL_APIC_ADDRESS_OVERRIDE => MadtEntry::LapicAddressOverride { addr: u64_at(e, 4) },
        LOCAL_X2APIC => MadtEntry::LocalX2apic {
            x2apic_id: u32_at(e, 4),
            flags: u32_at(e, 8),
            uid: u32_at(e, 12),
        },
        LOCAL_X2APIC_NMI => MadtEntry::LocalX2apicNmi {
            flags: u16_at(2),
            uid: u32_at(e, 4),
            lint: e[8],
        },
        _ => MadtEntry::Other {
            entry_type: t,
            body: e.get(2..).unwrap_or(&[]).to_vec(),
        },
    }
}

/// The problem list with its cap.
struct Problems {
    list: Vec<String>,
    dropped: usize,
}

impl Problems {
    fn push(&mut self, msg: String) {
        if self.list.len() < MAX_PROBLEMS {
            self.list.push(msg);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped != 0 {
            self.list
                .push(format!("APIC: {} more problems not listed", self.dropped));
        }
        self.list
    }
}

impl MadtSummary {
    /// Size of the header plus the LAPIC address and flags.
    pub const FIXED_SIZE: usize = SdtHeader::SIZE + 8;

    /// Parse a whole MADT (`table` starts with the 36-byte header and may be longer than the
    /// table). Errors only for a bad header: wrong signature, length or checksum, or a length
    /// too small for the fixed part. Problems in the entries go to `problems`.
    pub fn parse(table: &[u8]) -> Result<MadtSummary, AcpiError> {
        let hdr = SdtHeader::parse_expecting(table, "APIC")?;
        let len = hdr.length as usize;
        if len < Self::FIXED_SIZE {
            return Err(AcpiError::BadLength {
                table: TableId::Sdt(hdr.signature),
                offset: 4,
                length: hdr.length,
                min: Self::FIXED_SIZE,
            });
        }
        // `parse_expecting` checked that `len` bytes are there.
        let table = &table[..len];
        let mut s = MadtSummary {
            header: hdr,
            revision: hdr.revision,
            lapic_addr: u32_at(table, 36),
            flags: u32_at(table, 40),
            ..MadtSummary::default()
        };
        let mut problems = Problems {
            list: Vec::new(),
            dropped: 0,
        };
        let online_capable_defined = hdr.revision >= ONLINE_CAPABLE_REVISION;
        // (APIC id, entry offset) of the enabled CPUs, for the duplicate check.
        let mut enabled: Vec<(u32, usize)> = Vec::new();

        let mut off = Self::FIXED_SIZE;
        while off < len {
            let left = len - off;
            if left < 2 {
                problems.push(format!(
                    "APIC: entry at offset {off:#x}: only {left} byte left before the end of the \
                     table at {len:#x}, too short for an entry header; stopped"
                ));
                break;
            }
            let t = table[off];
            let elen = usize::from(table[off + 1]);
            if elen < 2 {
                problems.push(format!(
                    "APIC: entry at offset {off:#x} (type {t}, {}) has length {elen}, less than \
                     2; stopped",
                    entry_name(t)
                ));
                break;
            }
            if elen > left {
                problems.push(format!(
                    "APIC: entry at offset {off:#x} (type {t}, {}, length {elen}) runs past the \
                     end of the table at {len:#x}; stopped",
                    entry_name(t)
                ));
                break;
            }
            let start = off;
            let e = &table[off..off + elen];
            off += elen;

            let Some(min) = min_len(t) else {
                if t > LAST_DEFINED_TYPE && t < FIRST_OEM_TYPE {
                    problems.push(format!(
                        "APIC: entry at offset {start:#x} has reserved type {t:#x} (expected a \
                         type up to {LAST_DEFINED_TYPE:#x}, or an OEM type from \
                         {FIRST_OEM_TYPE:#x}); not interpreted"
                    ));
                }
                s.other_entries.push(t);
                s.entries.push(MadtEntryAt {
                    offset: start,
                    entry: decode(t, e),
                });
                continue;
            };
            if elen < min {
                problems.push(format!(
                    "APIC: entry at offset {start:#x} (type {t}, {}) has length {elen}, needs at \
                     least {min}; skipped",
                    entry_name(t)
                ));
                continue;
            }
            let entry = decode(t, e);
            match &entry {
                MadtEntry::LocalApic { apic_id, flags, .. } => {
                    s.lapic_entries = s.lapic_entries.saturating_add(1);
                    s.count_cpu(
                        &mut problems,
                        &mut enabled,
                        (u32::from(*apic_id), *flags, 0xFF),
                        t,
                        start,
                        online_capable_defined,
                    );
                }
                MadtEntry::LocalX2apic {
                    x2apic_id, flags, ..
                } => {
                    s.x2apic_entries = s.x2apic_entries.saturating_add(1);
                    s.count_cpu(
                        &mut problems,
                        &mut enabled,
                        (*x2apic_id, *flags, u32::MAX),
                        t,
                        start,
                        online_capable_defined,
                    );
                }
                MadtEntry::IoApic(io) => s.ioapics.push(*io),
                MadtEntry::Override(o) => {
                    s.overrides = s.overrides.saturating_add(1);
                    s.override_entries.push(*o);
                }
                MadtEntry::LapicAddressOverride { .. } => s.other_entries.push(t),
                other => {
                    if let Some(n) = other.nmi() {
                        s.nmi_entries = s.nmi_entries.saturating_add(1);
                        s.nmis.push(n);
                    }
                }
            }
            s.entries.push(MadtEntryAt {
                offset: start,
                entry,
            });
        }

        // The same APIC id twice among the enabled CPUs is a firmware bug (sorting keeps this
        // O(n log n) for a hostile table with many entries).
        enabled.sort_unstable();
        let mut i = 0;
        while i < enabled.len() {
            let id = enabled[i].0;
            let run = enabled[i..].iter().take_while(|&&(x, _)| x == id).count();
            if run > 1 {
                let mut offsets = String::new();
                for (k, &(_, o)) in enabled[i..i + run].iter().enumerate() {
                    if k == 8 {
                        offsets.push_str(", ...");
                        break;
                    }
                    if k != 0 {
                        offsets.push_str(", ");
                    }
                    offsets.push_str(&format!("{o:#x}"));
                }
                problems.push(format!(
                    "APIC: APIC id {id:#x} appears in {run} enabled entries (at offsets \
                     {offsets}; expected each id once)"
                ));
            }
            i += run;
        }

        s.problems = problems.finish();
        Ok(s)
    }

    /// Count a Local APIC / x2APIC entry: `cpu` is (APIC id, flags, the invalid id for its type).
    fn count_cpu(
        &mut self,
        problems: &mut Problems,
        enabled: &mut Vec<(u32, usize)>,
        cpu: (u32, u32, u32),
        t: u8,
        offset: usize,
        online_capable_defined: bool,
    ) {
        let (id, flags, invalid) = cpu;
        if id == invalid {
            // Linux ignores these (a placeholder id); say so only if it claims to be a usable
            // CPU.
            if flags & FLAG_ENABLED != 0 {
                problems.push(format!(
                    "APIC: entry at offset {offset:#x} ({}) is enabled with the invalid APIC id \
                     {id:#x}; ignored",
                    entry_name(t)
                ));
            }
        } else if flags & FLAG_ENABLED != 0 {
            self.cpus_enabled = self.cpus_enabled.saturating_add(1);
            self.apic_ids.push(id);
            enabled.push((id, offset));
        } else if online_capable_defined && flags & FLAG_ONLINE_CAPABLE != 0 {
            self.cpus_online_capable = self.cpus_online_capable.saturating_add(1);
        } else {
            self.cpus_disabled = self.cpus_disabled.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum;

    /// A MADT with `entries` after the fixed part, checksum fixed.
    fn madt(revision: u8, lapic: u32, flags: u32, entries: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"APIC");
        b.extend_from_slice(&((44 + entries.len()) as u32).to_le_bytes());
        b.push(revision);
        b.push(0);
        b.extend_from_slice(b"BOCHS ");
        b.extend_from_slice(b"BXPC    ");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(b"BXPC");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&lapic.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(entries);
        fix(&mut b);
        b
    }

    fn fix(b: &mut [u8]) {
        let len = b.len();
        b[9] = 0;
        b[9] = 0u8.wrapping_sub(checksum(&b[..len]));
    }

    fn ioapic(id: u8, addr: u32, gsi: u32) -> Vec<u8> {
        let mut e = vec![IO_APIC, 12, id, 0];
        e.extend_from_slice(&addr.to_le_bytes());
        e.extend_from_slice(&gsi.to_le_bytes());
        e
    }

    fn x2apic(id: u32, flags: u32, uid: u32) -> Vec<u8> {
        let mut e = vec![LOCAL_X2APIC, 16, 0, 0];
        e.extend_from_slice(&id.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        e
    }

    fn lapic(uid: u8, id: u8, flags: u32) -> Vec<u8> {
        let mut e = vec![LOCAL_APIC, 8, uid, id];
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    fn iso(source: u8, gsi: u32, flags: u16) -> Vec<u8> {
        let mut e = vec![INTERRUPT_SOURCE_OVERRIDE, 10, 0, source];
        e.extend_from_slice(&gsi.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e
    }

    fn lapic_nmi(uid: u8, flags: u16, lint: u8) -> Vec<u8> {
        let mut e = vec![LOCAL_APIC_NMI, 6, uid];
        e.extend_from_slice(&flags.to_le_bytes());
        e.push(lint);
        e
    }

    /// The MADT Xen 4.17 crafts for a PVH dom0 with 2 vCPUs on a QEMU q35 host.
    fn xen_madt() -> Vec<u8> {
        let mut entries = ioapic(0, 0xFEC0_0000, 0);
        entries.extend(x2apic(0, FLAG_ENABLED, 0));
        entries.extend(x2apic(2, FLAG_ENABLED, 1));
        entries.extend(iso(0, 2, 0));
        // IRQ9 (SCI): active high, level triggered.
        entries.extend(iso(9, 9, 0x000D));
        madt(4, 0xFEE0_0000, 0, &entries)
    }

    /// A QEMU-style firmware MADT: `-smp 2,maxcpus=4`, one IO-APIC, the five ISOs QEMU
    /// writes, and a Local APIC NMI for all processors on LINT1.
    fn qemu_madt() -> Vec<u8> {
        let mut entries = Vec::new();
        entries.extend(lapic(0, 0, FLAG_ENABLED));
        entries.extend(lapic(1, 1, FLAG_ENABLED));
        entries.extend(lapic(2, 2, 0));
        entries.extend(lapic(3, 3, 0));
        entries.extend(ioapic(0, 0xFEC0_0000, 0));
        entries.extend(iso(0, 2, 0));
        for irq in [5, 9, 10, 11] {
            entries.extend(iso(irq, u32::from(irq), 0x000D));
        }
        entries.extend(lapic_nmi(0xFF, 0, 1));
        madt(3, 0xFEE0_0000, 1, &entries)
    }

    #[test]
    fn xen_pvh_dom0_madt() {
        let t = xen_madt();
        let s = MadtSummary::parse(&t).unwrap();
        let io = IoApic {
            id: 0,
            addr: 0xFEC0_0000,
            gsi_base: 0,
        };
        let isos = vec![
            Override {
                bus: 0,
                source: 0,
                gsi: 2,
                flags: 0,
            },
            Override {
                bus: 0,
                source: 9,
                gsi: 9,
                flags: 0xD,
            },
        ];
        let cpu = |id, uid| MadtEntry::LocalX2apic {
            x2apic_id: id,
            flags: FLAG_ENABLED,
            uid,
        };
        assert_eq!(
            s,
            MadtSummary {
                header: SdtHeader::parse(&t).unwrap(),
                revision: 4,
                lapic_addr: 0xFEE0_0000,
                flags: 0,
                cpus_enabled: 2,
                cpus_online_capable: 0,
                cpus_disabled: 0,
                apic_ids: vec![0, 2],
                x2apic_entries: 2,
                lapic_entries: 0,
                ioapics: vec![io],
                overrides: 2,
                override_entries: isos.clone(),
                nmi_entries: 0,
                nmis: vec![],
                other_entries: vec![],
                entries: vec![
                    MadtEntryAt {
                        offset: 0x2c,
                        entry: MadtEntry::IoApic(io),
                    },
                    MadtEntryAt {
                        offset: 0x38,
                        entry: cpu(0, 0),
                    },
                    MadtEntryAt {
                        offset: 0x48,
                        entry: cpu(2, 1),
                    },
                    MadtEntryAt {
                        offset: 0x58,
                        entry: MadtEntry::Override(isos[0]),
                    },
                    MadtEntryAt {
                        offset: 0x62,
                        entry: MadtEntry::Override(isos[1]),
                    },
                ],
                problems: vec![],
            }
        );
        // Every decoded entry encodes back to the bytes it came from.
        let mut again = Vec::new();
        for e in &s.entries {
            e.entry.encode(&mut again).unwrap();
        }
        assert_eq!(again, t[44..]);
        // Xen places it with alignment 1, and the buffer may run on past the table.
        let mut buf = vec![0xAAu8; 3];
        buf.extend_from_slice(&t);
        buf.extend_from_slice(&[0xFF; 7]);
        assert_eq!(MadtSummary::parse(&buf[3..]), Ok(s));
    }

    #[test]
    fn qemu_madt_with_type0_entries() {
        let s = MadtSummary::parse(&qemu_madt()).unwrap();
        assert_eq!(s.revision, 3);
        assert_eq!(s.flags, 1);
        assert_eq!(s.lapic_entries, 4);
        assert_eq!(s.x2apic_entries, 0);
        assert_eq!(
            (s.cpus_enabled, s.cpus_online_capable, s.cpus_disabled),
            (2, 0, 2)
        );
        assert_eq!(s.apic_ids, vec![0, 1]);
        assert_eq!(
            s.ioapics,
            vec![IoApic {
                id: 0,
                addr: 0xFEC0_0000,
                gsi_base: 0
            }]
        );
        assert_eq!(s.overrides, 5);
        assert_eq!(s.override_entries[1].flags, 0xD);
        assert_eq!(s.nmi_entries, 1);
        assert_eq!(
            s.nmis,
            vec![Nmi::Local {
                uid: None,
                flags: 0,
                lint: 1
            }]
        );
        let mut again = Vec::new();
        for e in &s.entries {
            e.entry.encode(&mut again).unwrap();
        }
        assert_eq!(again, qemu_madt()[44..]);
        assert!(s.other_entries.is_empty());
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn online_capable_only_from_revision_5() {
        let mut entries = lapic(0, 0, FLAG_ENABLED);
        entries.extend(lapic(1, 1, FLAG_ONLINE_CAPABLE));
        entries.extend(x2apic(0x100, FLAG_ONLINE_CAPABLE, 2));
        entries.extend(x2apic(0x101, 0, 3));
        // Enabled wins over online-capable.
        entries.extend(x2apic(0x102, FLAG_ENABLED | FLAG_ONLINE_CAPABLE, 4));
        let s = MadtSummary::parse(&madt(5, 0xFEE0_0000, 0, &entries)).unwrap();
        assert_eq!(
            (s.cpus_enabled, s.cpus_online_capable, s.cpus_disabled),
            (2, 2, 1)
        );
        assert_eq!(s.apic_ids, vec![0, 0x102]);
        let s = MadtSummary::parse(&madt(4, 0xFEE0_0000, 0, &entries)).unwrap();
        assert_eq!(
            (s.cpus_enabled, s.cpus_online_capable, s.cpus_disabled),
            (2, 0, 3)
        );
    }

    #[test]
    fn other_entries_and_nmi_kinds() {
        // Type 5 (LAPIC address override, 12 bytes), an unknown type 0x80, a type 0xA NMI.
        let mut entries = vec![5, 12, 0, 0];
        entries.extend_from_slice(&0xFEE0_0000u64.to_le_bytes());
        entries.extend_from_slice(&[0x80, 2]);
        let mut nmi = vec![LOCAL_X2APIC_NMI, 12, 1, 0];
        nmi.extend_from_slice(&u32::MAX.to_le_bytes());
        nmi.extend_from_slice(&[1, 0, 0, 0]);
        entries.extend(&nmi);
        entries.extend(lapic_nmi(0xFF, 0, 1));
        let s = MadtSummary::parse(&madt(4, 0, 0, &entries)).unwrap();
        assert_eq!(s.other_entries, vec![5, 0x80]);
        assert_eq!(s.nmi_entries, 2);
        assert!(s.problems.is_empty());
    }

    #[test]
    fn broken_checksum_is_an_error() {
        let mut t = xen_madt();
        t[50] ^= 1;
        let err = MadtSummary::parse(&t).unwrap_err();
        assert!(
            matches!(
                err,
                AcpiError::BadChecksum {
                    checksum_offset: 9,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("APIC: checksum over bytes [0x0, 0x6c)")
        );
    }

    #[test]
    fn bad_headers_are_errors() {
        // Wrong signature.
        let mut t = xen_madt();
        t[..4].copy_from_slice(b"FACP");
        fix(&mut t);
        assert_eq!(
            MadtSummary::parse(&t).unwrap_err().to_string(),
            "FACP: bad signature at offset 0x0 (expected \"APIC\")"
        );
        // Header fine but no room for the LAPIC address and flags.
        for body in 0..8 {
            let mut t = madt(4, 0, 0, &[]);
            t.truncate(36 + body);
            t[4..8].copy_from_slice(&((36 + body) as u32).to_le_bytes());
            fix(&mut t);
            let err = MadtSummary::parse(&t).unwrap_err();
            assert_eq!(
                err,
                AcpiError::BadLength {
                    table: TableId::Sdt(*b"APIC"),
                    offset: 4,
                    length: (36 + body) as u32,
                    min: 44
                }
            );
        }
        // Empty table with just the fixed part is fine.
        let s = MadtSummary::parse(&madt(1, 0xFEE0_0000, 1, &[])).unwrap();
        assert_eq!((s.cpus_enabled, s.problems.len()), (0, 0));
    }

    #[test]
    fn truncated_table_is_an_error() {
        let t = xen_madt();
        for cut in 0..t.len() {
            let err = MadtSummary::parse(&t[..cut]).unwrap_err();
            assert!(matches!(err, AcpiError::Truncated { .. }), "{cut}: {err:?}");
        }
        assert_eq!(
            MadtSummary::parse(&t[..100]).unwrap_err().to_string(),
            "APIC: truncated at offset 0x64: needs 0x6c bytes, only 0x64 available"
        );
    }

    #[test]
    fn zero_length_entry_stops_and_keeps_what_was_parsed() {
        let mut entries = ioapic(0, 0xFEC0_0000, 0);
        entries.extend(x2apic(0, FLAG_ENABLED, 0));
        entries.extend_from_slice(&[LOCAL_X2APIC, 0]);
        entries.extend(x2apic(2, FLAG_ENABLED, 1));
        let s = MadtSummary::parse(&madt(4, 0xFEE0_0000, 0, &entries)).unwrap();
        assert_eq!(s.apic_ids, vec![0]);
        assert_eq!(s.ioapics.len(), 1);
        assert_eq!(
            s.problems,
            vec![
                "APIC: entry at offset 0x48 (type 9, Local x2APIC) has length 0, less than 2; \
                 stopped"
                    .to_string()
            ]
        );
        // Length 1 is as bad.
        let s = MadtSummary::parse(&madt(4, 0, 0, &[0, 1, 0, 0])).unwrap();
        assert_eq!(
            s.problems,
            vec![
                "APIC: entry at offset 0x2c (type 0, Local APIC) has length 1, less than 2; stopped"
            ]
        );
    }

    #[test]
    fn entry_running_past_the_end() {
        let mut entries = x2apic(0, FLAG_ENABLED, 0);
        let mut last = x2apic(2, FLAG_ENABLED, 1);
        last[1] = 20;
        entries.extend(last);
        let s = MadtSummary::parse(&madt(4, 0xFEE0_0000, 0, &entries)).unwrap();
        assert_eq!(s.apic_ids, vec![0]);
        assert_eq!(s.x2apic_entries, 1);
        assert_eq!(
            s.problems,
            vec![
                "APIC: entry at offset 0x3c (type 9, Local x2APIC, length 20) runs past the end \
                 of the table at 0x4c; stopped"
            ]
        );
        // A single stray byte at the end.
        let mut entries = lapic(0, 0, FLAG_ENABLED);
        entries.push(0);
        let s = MadtSummary::parse(&madt(4, 0, 0, &entries)).unwrap();
        assert_eq!(s.apic_ids, vec![0]);
        assert_eq!(
            s.problems,
            vec![
                "APIC: entry at offset 0x34: only 1 byte left before the end of the table at \
                 0x35, too short for an entry header; stopped"
            ]
        );
    }

    #[test]
    fn short_known_entries_are_skipped() {
        // A Local APIC entry of 6 bytes, an IO APIC of 8, then a good x2APIC.
        let mut entries = vec![LOCAL_APIC, 6, 0, 0, 1, 0];
        entries.extend_from_slice(&[IO_APIC, 8, 0, 0, 0, 0, 0xC0, 0xFE]);
        entries.extend(x2apic(4, FLAG_ENABLED, 0));
        let s = MadtSummary::parse(&madt(4, 0, 0, &entries)).unwrap();
        assert_eq!(s.apic_ids, vec![4]);
        assert_eq!((s.lapic_entries, s.x2apic_entries), (0, 1));
        assert!(s.ioapics.is_empty());
        assert_eq!(
            s.problems,
            vec![
                "APIC: entry at offset 0x2c (type 0, Local APIC) has length 6, needs at least 8; \
                 skipped",
                "APIC: entry at offset 0x32 (type 1, IO APIC) has length 8, needs at least 12; \
                 skipped",
            ]
        );
        // Longer entries than the spec's are accepted (later revisions may extend them).
        let mut e = lapic(0, 7, FLAG_ENABLED);
        e[1] = 10;
        e.extend_from_slice(&[0, 0]);
        let s = MadtSummary::parse(&madt(4, 0, 0, &e)).unwrap();
        assert_eq!((s.apic_ids.clone(), s.problems.len()), (vec![7], 0));
    }

    #[test]
    fn invalid_and_duplicate_apic_ids() {
        let mut entries = lapic(0, 0xFF, FLAG_ENABLED);
        entries.extend(lapic(1, 0xFF, 0));
        entries.extend(x2apic(u32::MAX, FLAG_ENABLED, 2));
        entries.extend(lapic(3, 1, FLAG_ENABLED));
        entries.extend(x2apic(1, FLAG_ENABLED, 4));
        entries.extend(lapic(5, 1, FLAG_ENABLED));
        let s = MadtSummary::parse(&madt(4, 0, 0, &entries)).unwrap();
        assert_eq!((s.lapic_entries, s.x2apic_entries), (4, 2));
        assert_eq!(s.apic_ids, vec![1, 1, 1]);
        assert_eq!((s.cpus_enabled, s.cpus_disabled), (3, 0));
        assert_eq!(
            s.problems,
            vec![
                "APIC: entry at offset 0x2c (Local APIC) is enabled with the invalid APIC id \
                 0xff; ignored",
                "APIC: entry at offset 0x3c (Local x2APIC) is enabled with the invalid APIC id \
                 0xffffffff; ignored",
                "APIC: APIC id 0x1 appears in 3 enabled entries (at offsets 0x4c, 0x54, 0x64; \
                 expected each id once)",
            ]
        );
    }

    #[test]
    fn problems_are_capped() {
        let mut entries = Vec::new();
        for _ in 0..100 {
            entries.extend_from_slice(&[LOCAL_APIC, 2]);
        }
        let s = MadtSummary::parse(&madt(4, 0, 0, &entries)).unwrap();
        assert_eq!(s.problems.len(), MAX_PROBLEMS + 1);
        assert_eq!(
            s.problems[MAX_PROBLEMS],
            format!("APIC: {} more problems not listed", 100 - MAX_PROBLEMS)
        );
    }

    #[test]
    fn every_entry_length_for_every_known_type() {
        for t in [0u8, 1, 2, 3, 4, 5, 9, 0xA, 0xFF] {
            for elen in 0..=255u8 {
                let mut entries = vec![0u8; 300];
                entries[0] = t;
                entries[1] = elen;
                for cut in [0usize, 1, 2, 8, 16, 255, 300] {
                    let s = MadtSummary::parse(&madt(5, 0, 0, &entries[..cut])).unwrap();
                    assert!(s.problems.len() <= MAX_PROBLEMS + 1);
                    assert_eq!(s.cpus_enabled as usize, s.apic_ids.len());
                }
            }
        }
    }

    #[test]
    fn random_bodies_never_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = qemu_madt();
        for round in 0..3000 {
            let mut t = if round % 2 == 0 {
                base.clone()
            } else {
                let n = (next() % 200) as usize;
                let body: Vec<u8> = (0..n).map(|_| next() as u8).collect();
                madt((next() % 8) as u8, 0, 0, &body)
            };
            for _ in 0..(next() % 8) {
                let i = 44 + (next() as usize) % (t.len() - 43).max(1);
                if i < t.len() {
                    t[i] = next() as u8;
                }
            }
            fix(&mut t);
            let s = MadtSummary::parse(&t).unwrap();
            assert_eq!(s.cpus_enabled as usize, s.apic_ids.len());
            assert!(
                (s.lapic_entries + s.x2apic_entries) as usize
                    >= (s.cpus_enabled + s.cpus_online_capable + s.cpus_disabled) as usize
            );
            assert!(s.problems.len() <= MAX_PROBLEMS + 1);
        }
    }
}
