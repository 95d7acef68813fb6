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
    let u16_at = |o: usize| xen::le::get_u16(e, o).unwrap_or(0);
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
        lean::sort(&mut enabled);
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
mod tests;
