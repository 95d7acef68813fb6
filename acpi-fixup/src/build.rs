//! Building ACPI tables for a container: its MADT, an XSDT and an RSDP, and comparing MADTs.
//!
//! A [`ContainerSpec`] says what the MADT lists; [`build_madt`] writes it in one fixed order,
//! the order Xen uses for the MADT it crafts for a PVH dom0 (X17 `pvh_setup_acpi_madt()`):
//!
//! 1. IO APICs (type 1), as given;
//! 2. one processor entry per vCPU *i*: uid *i*, APIC id from [`ApicIdScheme`], flags enabled,
//!    as Local APIC (type 0) or Local x2APIC (type 9) entries ([`EntryKind`]);
//! 3. Interrupt Source Overrides (type 2), as given;
//! 4. NMIs, as given: sources (type 3), then local NMIs (type 4, or 0xA with x2APIC entries or
//!    uids above 254).
//!
//! [`ContainerSpec::xen_pvh_dom0`] fills a spec so that the result is byte for byte what Xen
//! 4.17.1 and later craft, so dom0 can compare "what Xen crafted" with "what the builder makes"
//! through [`compare_madt`]. Output depends only on the input (no addresses, no time).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use lean::VecMap;

use crate::madt::{FLAG_ENABLED, MadtEntry, MadtSummary};
pub use crate::madt::{IoApic, Nmi, Override};
use crate::{AcpiError, Rsdp, SdtHeader, finish_table, parse_xsdt_entries, set_checksum};

/// The local APIC address every x86 machine uses and Xen puts in its crafted MADT.
pub const DEFAULT_LAPIC_ADDR: u32 = 0xFEE0_0000;
/// The highest MADT revision Xen passes on (`min(native, 4)`, ACPI 6.1's).
pub const XEN_MAX_MADT_REVISION: u8 = 4;
/// The most vCPUs a built MADT may list (a 1 MiB table with x2APIC entries).
pub const MAX_VCPUS: u32 = 65536;

/// How vCPU *i* gets its APIC id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApicIdScheme {
    /// id = *i*.
    Identity,
    /// id = 2·*i*: Xen's scheme for HVM/PVH guests and for a PVH dom0.
    TimesTwo,
    /// id = `list[i]`; the list must have one id per vCPU, all different.
    List(Vec<u32>),
}

/// Which processor entries to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// Local x2APIC (type 9) entries if any id is above 254 (or there are more than 255 vCPUs,
    /// whose uids do not fit type 0's one byte), else Local APIC (type 0): what ACPI
    /// recommends.
    Auto,
    /// Local APIC (type 0) entries; every id must be at most 254 and at most 255 vCPUs.
    Lapic,
    /// Local x2APIC (type 9) entries, whatever the ids (as Xen does for a PVH dom0).
    X2apic,
}

/// What a container's MADT lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub vcpus: u32,
    pub apic_id: ApicIdScheme,
    pub entries: EntryKind,
    /// Local APIC address (header offset 36).
    pub lapic_addr: u32,
    /// MADT flags (header offset 40): bit 0 PCAT_COMPAT.
    pub flags: u32,
    pub ioapics: Vec<IoApic>,
    pub overrides: Vec<Override>,
    pub nmis: Vec<Nmi>,
    pub oem_id: [u8; 6],
    pub oem_table_id: [u8; 8],
    pub oem_revision: u32,
    pub creator_id: [u8; 4],
    pub creator_revision: u32,
    /// The MADT's revision byte.
    pub revision: u8,
}

/// OEM ID of the tables this crate makes from nothing.
pub const OEM_ID: [u8; 6] = *b"XENPVH";
/// OEM table ID of the tables this crate makes from nothing.
pub const OEM_TABLE_ID: [u8; 8] = *b"RUSTDOM0";
/// Creator ID of the tables this crate makes from nothing.
pub const CREATOR_ID: [u8; 4] = *b"RDM0";
/// Creator revision of the tables this crate makes from nothing.
pub const CREATOR_REVISION: u32 = 1;

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    /// A container needs at least one vCPU.
    NoVcpus,
    /// More vCPUs than [`MAX_VCPUS`] (or than the DomU builder supports).
    TooManyVcpus { vcpus: u32, max: u32 },
    /// [`ApicIdScheme::List`] has `ids` entries for `vcpus` vCPUs.
    ApicIdCount { vcpus: u32, ids: usize },
    /// vCPU `vcpu`'s APIC id does not exist or is the "invalid" id of its entry type
    /// (0xFF for Local APIC, 0xFFFFFFFF for x2APIC), or does not fit a Local APIC entry.
    BadApicId {
        vcpu: u32,
        id: u32,
        why: &'static str,
    },
    /// Two vCPUs were given the same APIC id.
    DuplicateApicId { id: u32, vcpus: (u32, u32) },
    /// A Local APIC entry's uid is one byte; more than 255 vCPUs need x2APIC entries.
    UidTooLarge { vcpus: u32 },
    /// The table would be longer than its 32-bit length field allows.
    TooLarge,
    /// An address does not fit where it has to go, or tables would run past the end of the
    /// address space.
    AddressOverflow { what: &'static str },
    /// The table given to modify is not sound.
    Acpi(AcpiError),
    /// The address to replace is not in the XSDT.
    NotFound { addr: u64 },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoVcpus => f.write_str("a container needs at least one vCPU"),
            BuildError::TooManyVcpus { vcpus, max } => {
                write!(f, "{vcpus} vCPUs, at most {max} supported")
            }
            BuildError::ApicIdCount { vcpus, ids } => {
                write!(f, "{ids} APIC ids given for {vcpus} vCPUs")
            }
            BuildError::BadApicId { vcpu, id, why } => {
                write!(f, "vCPU {vcpu}: APIC id {id:#x} {why}")
            }
            BuildError::DuplicateApicId { id, vcpus } => write!(
                f,
                "APIC id {id:#x} given to vCPU {} and vCPU {}",
                vcpus.0, vcpus.1
            ),
            BuildError::UidTooLarge { vcpus } => write!(
                f,
                "{vcpus} vCPUs do not fit Local APIC entries (one-byte uid); use x2APIC entries"
            ),
            BuildError::TooLarge => f.write_str("table longer than 4 GiB"),
            BuildError::AddressOverflow { what } => write!(f, "{what}: address overflow"),
            BuildError::Acpi(e) => write!(f, "{e}"),
            BuildError::NotFound { addr } => {
                write!(f, "XSDT: no entry holds address {addr:#x}")
            }
        }
    }
}

impl From<AcpiError> for BuildError {
    fn from(e: AcpiError) -> Self {
        BuildError::Acpi(e)
    }
}

impl ContainerSpec {
    /// A spec with no IO-APICs, overrides or NMIs, LAPIC at 0xFEE00000, flags 0, MADT revision
    /// 5 (ACPI 6.3), this crate's OEM fields.
    pub fn new(vcpus: u32, apic_id: ApicIdScheme) -> ContainerSpec {
        ContainerSpec {
            vcpus,
            apic_id,
            entries: EntryKind::Auto,
            lapic_addr: DEFAULT_LAPIC_ADDR,
            flags: 0,
            ioapics: Vec::new(),
            overrides: Vec::new(),
            nmis: Vec::new(),
            oem_id: OEM_ID,
            oem_table_id: OEM_TABLE_ID,
            oem_revision: 1,
            creator_id: CREATOR_ID,
            creator_revision: CREATOR_REVISION,
            revision: 5,
        }
    }

    /// A container on this host: the host MADT's IO-APICs, Interrupt Source Overrides and NMI
    /// entries (all kinds, as they are: a local NMI for one uid keeps that uid), its LAPIC
    /// address, flags, revision and OEM/creator fields; `vcpus` processors with ids from
    /// `scheme`, entry type chosen by [`EntryKind::Auto`].
    pub fn from_host_madt(host: &MadtSummary, vcpus: u32, scheme: ApicIdScheme) -> ContainerSpec {
        let h = &host.header;
        ContainerSpec {
            vcpus,
            apic_id: scheme,
            entries: EntryKind::Auto,
            lapic_addr: host.lapic_addr,
            flags: host.flags,
            ioapics: host.ioapics.clone(),
            overrides: host.override_entries.clone(),
            nmis: host.nmis.clone(),
            oem_id: h.oem_id,
            oem_table_id: h.oem_table_id,
            oem_revision: h.oem_revision,
            creator_id: h.creator_id,
            creator_revision: h.creator_revision,
            revision: host.revision,
        }
    }

    /// The MADT Xen 4.17.1 and later craft for a PVH dom0 with `vcpus` vCPUs on the host whose
    /// native MADT is `host` (reference §4): the native header (OEM and creator fields), revision
    /// `min(native, 4)`, LAPIC address 0xFEE00000, flags 0, the host's IO APICs, one x2APIC entry
    /// per vCPU (uid *i*, id 2·*i*, enabled), the host's Interrupt Source Overrides, and no NMI
    /// entries (4.17.0 still copied type-3 NMI sources; add them to `nmis` to model it).
    pub fn xen_pvh_dom0(host: &MadtSummary, vcpus: u32) -> ContainerSpec {
        let mut s = Self::from_host_madt(host, vcpus, ApicIdScheme::TimesTwo);
        s.entries = EntryKind::X2apic;
        s.lapic_addr = DEFAULT_LAPIC_ADDR;
        s.flags = 0;
        s.nmis.clear();
        s.revision = host.revision.min(XEN_MAX_MADT_REVISION);
        s
    }

    /// The APIC id of every vCPU, checked: one per vCPU, none invalid, none twice.
    pub fn apic_ids(&self) -> Result<Vec<u32>, BuildError> {
        if self.vcpus == 0 {
            return Err(BuildError::NoVcpus);
        }
        if self.vcpus > MAX_VCPUS {
            return Err(BuildError::TooManyVcpus {
                vcpus: self.vcpus,
                max: MAX_VCPUS,
            });
        }
        let ids: Vec<u32> = match &self.apic_id {
            ApicIdScheme::Identity => (0..self.vcpus).collect(),
            // Cannot overflow: vcpus <= MAX_VCPUS.
            ApicIdScheme::TimesTwo => (0..self.vcpus).map(|i| i * 2).collect(),
            ApicIdScheme::List(l) => {
                if l.len() != self.vcpus as usize {
                    return Err(BuildError::ApicIdCount {
                        vcpus: self.vcpus,
                        ids: l.len(),
                    });
                }
                l.clone()
            }
        };
        let mut seen: VecMap<u32, u32> = VecMap::new();
        for (i, &id) in ids.iter().enumerate() {
            let vcpu = i as u32;
            if id == u32::MAX {
                return Err(BuildError::BadApicId {
                    vcpu,
                    id,
                    why: "is the invalid x2APIC id",
                });
            }
            if let Some(&first) = seen.get(&id) {
                return Err(BuildError::DuplicateApicId {
                    id,
                    vcpus: (first, vcpu),
                });
            }
            seen.insert(id, vcpu);
        }
        Ok(ids)
    }

    /// Whether the processor entries will be x2APIC (type 9) ones.
    pub fn uses_x2apic(&self, ids: &[u32]) -> bool {
        match self.entries {
            EntryKind::X2apic => true,
            EntryKind::Lapic => false,
            EntryKind::Auto => ids.iter().any(|&id| id > 254) || self.vcpus > 255,
        }
    }

    /// The entries [`build_madt`] writes, in order.
    pub fn madt_entries(&self) -> Result<Vec<MadtEntry>, BuildError> {
        let ids = self.apic_ids()?;
        let x2 = self.uses_x2apic(&ids);
        let mut out = Vec::with_capacity(
            self.ioapics.len() + ids.len() + self.overrides.len() + self.nmis.len(),
        );
        out.extend(self.ioapics.iter().map(|io| MadtEntry::IoApic(*io)));
        if !x2 && self.vcpus > 255 {
            return Err(BuildError::UidTooLarge { vcpus: self.vcpus });
        }
        for (i, &id) in ids.iter().enumerate() {
            let vcpu = i as u32;
            out.push(if x2 {
                MadtEntry::LocalX2apic {
                    x2apic_id: id,
                    flags: FLAG_ENABLED,
                    uid: vcpu,
                }
            } else {
                let apic_id =
                    u8::try_from(id)
                        .ok()
                        .filter(|&b| b != 0xFF)
                        .ok_or(BuildError::BadApicId {
                            vcpu,
                            id,
                            why: "does not fit a Local APIC entry (at most 0xfe)",
                        })?;
                MadtEntry::LocalApic {
                    uid: vcpu as u8,
                    apic_id,
                    flags: FLAG_ENABLED,
                }
            });
        }
        out.extend(self.overrides.iter().map(|o| MadtEntry::Override(*o)));
        for n in &self.nmis {
            if let Nmi::Source { flags, gsi } = *n {
                out.push(MadtEntry::NmiSource { flags, gsi });
            }
        }
        for n in &self.nmis {
            if let Nmi::Local { uid, flags, lint } = *n {
                let short_uid = match uid {
                    None => Some(0xFF),
                    Some(u) => u8::try_from(u).ok().filter(|&b| b != 0xFF),
                };
                out.push(match short_uid {
                    Some(uid) if !x2 => MadtEntry::LocalApicNmi { uid, flags, lint },
                    _ => MadtEntry::LocalX2apicNmi {
                        uid: uid.unwrap_or(u32::MAX),
                        flags,
                        lint,
                    },
                });
            }
        }
        Ok(out)
    }

    /// The MADT header this spec gives (length and checksum filled in by [`build_madt`]).
    pub fn header(&self) -> SdtHeader {
        SdtHeader {
            signature: *b"APIC",
            length: 0,
            revision: self.revision,
            checksum: 0,
            oem_id: self.oem_id,
            oem_table_id: self.oem_table_id,
            oem_revision: self.oem_revision,
            creator_id: self.creator_id,
            creator_revision: self.creator_revision,
        }
    }
}

/// Write the MADT a spec describes (see the module documentation for the order).
pub fn build_madt(spec: &ContainerSpec) -> Result<Vec<u8>, BuildError> {
    let entries = spec.madt_entries()?;
    let mut t = Vec::with_capacity(MadtSummary::FIXED_SIZE + entries.len() * 16);
    t.extend_from_slice(&spec.header().to_bytes());
    t.extend_from_slice(&spec.lapic_addr.to_le_bytes());
    t.extend_from_slice(&spec.flags.to_le_bytes());
    for e in &entries {
        e.encode(&mut t).ok_or(BuildError::TooLarge)?;
    }
    finish_table(&mut t).ok_or(BuildError::TooLarge)?;
    Ok(t)
}

/// An XSDT listing `entries`, with the OEM and creator fields of `header` (Xen copies the native
/// XSDT's); signature "XSDT", revision 1, length and checksum computed.
pub fn build_xsdt(header: &SdtHeader, entries: &[u64]) -> Result<Vec<u8>, BuildError> {
    let size = entries
        .len()
        .checked_mul(8)
        .and_then(|n| n.checked_add(SdtHeader::SIZE))
        .filter(|&n| n <= u32::MAX as usize)
        .ok_or(BuildError::TooLarge)?;
    let mut h = *header;
    h.signature = *b"XSDT";
    h.revision = 1;
    let mut t = Vec::with_capacity(size);
    t.extend_from_slice(&h.to_bytes());
    for e in entries {
        t.extend_from_slice(&e.to_le_bytes());
    }
    finish_table(&mut t).ok_or(BuildError::TooLarge)?;
    Ok(t)
}

/// A revision-2 RSDP pointing at the XSDT at `xsdt` (RSDT address 0, as Xen's for a PVH dom0),
/// length 36, both checksums set.
pub fn build_rsdp(xsdt: u64, oem_id: [u8; 6]) -> [u8; Rsdp::V2_SIZE] {
    let mut b = [0u8; Rsdp::V2_SIZE];
    b[0..8].copy_from_slice(Rsdp::SIGNATURE);
    b[9..15].copy_from_slice(&oem_id);
    b[15] = 2;
    b[20..24].copy_from_slice(&(Rsdp::V2_SIZE as u32).to_le_bytes());
    b[24..32].copy_from_slice(&xsdt.to_le_bytes());
    set_checksum(&mut b, 8, Rsdp::V1_SIZE);
    set_checksum(&mut b, 32, Rsdp::V2_SIZE);
    b
}

/// The XSDT `xsdt` (a sound one: signature "XSDT", length, checksum) with every entry equal to
/// `old` replaced by `new`, the checksum recomputed, bytes past its length dropped.
///
/// Xen 4.17's crafted XSDT on firmware without one has a garbage signature
/// ([`crate::parse_xsdt_entries_any_signature`]); this refuses it. To replace in it, rebuild:
/// `build_xsdt(&header_with_any_oem_fields, &entries_with_the_replacement)`.
pub fn replace_in_xsdt(xsdt: &[u8], old: u64, new: u64) -> Result<Vec<u8>, BuildError> {
    let entries = parse_xsdt_entries(xsdt)?;
    if !entries.contains(&old) {
        return Err(BuildError::NotFound { addr: old });
    }
    let hdr = SdtHeader::parse(xsdt)?;
    let mut t = xsdt[..hdr.length as usize].to_vec();
    for (i, e) in entries.iter().enumerate() {
        if *e == old {
            let off = SdtHeader::SIZE + i * 8;
            t[off..off + 8].copy_from_slice(&new.to_le_bytes());
        }
    }
    finish_table(&mut t).ok_or(BuildError::TooLarge)?;
    Ok(t)
}

/// Every difference between MADTs `a` and `b` that matters to an OS, one line each; empty when
/// they describe the same machine. See [`compare_madt_labeled`].
pub fn compare_madt(a: &[u8], b: &[u8]) -> Vec<String> {
    compare_madt_labeled(a, "a", b, "b")
}

/// What identifies an entry across two tables, so that changed fields are reported as changes
/// of one entry rather than one entry gone and another new.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// Local APIC and x2APIC entries: the ACPI processor uid.
    Cpu(u32),
    IoApic(u8),
    /// Bus and source IRQ.
    Override(u8, u8),
    NmiSource(u32),
    /// uid (all processors as `u32::MAX`) and LINT pin.
    LocalNmi(u32, u8),
    LapicAddress,
    Other(u8, Vec<u8>),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Cpu(uid) => write!(f, "processor uid {uid}"),
            Key::IoApic(id) => write!(f, "IO APIC id {id}"),
            Key::Override(bus, src) => write!(f, "override of bus {bus} IRQ {src}"),
            Key::NmiSource(gsi) => write!(f, "NMI source GSI {gsi}"),
            Key::LocalNmi(u32::MAX, lint) => write!(f, "local NMI of all processors LINT{lint}"),
            Key::LocalNmi(uid, lint) => write!(f, "local NMI of uid {uid} LINT{lint}"),
            Key::LapicAddress => f.write_str("local APIC address override"),
            Key::Other(t, _) => write!(f, "type {t:#x} entry"),
        }
    }
}

fn key(e: &MadtEntry) -> Key {
    match e {
        MadtEntry::LocalApic { uid, .. } => Key::Cpu(u32::from(*uid)),
        MadtEntry::LocalX2apic { uid, .. } => Key::Cpu(*uid),
        MadtEntry::IoApic(io) => Key::IoApic(io.id),
        MadtEntry::Override(o) => Key::Override(o.bus, o.source),
        MadtEntry::NmiSource { gsi, .. } => Key::NmiSource(*gsi),
        MadtEntry::LocalApicNmi { uid, lint, .. } => Key::LocalNmi(
            if *uid == 0xFF {
                u32::MAX
            } else {
                u32::from(*uid)
            },
            *lint,
        ),
        MadtEntry::LocalX2apicNmi { uid, lint, .. } => Key::LocalNmi(*uid, *lint),
        MadtEntry::LapicAddressOverride { .. } => Key::LapicAddress,
        MadtEntry::Other { entry_type, body } => Key::Other(*entry_type, body.clone()),
    }
}

/// Whether a field's value reads better in hex.
fn hex_field(name: &str) -> bool {
    matches!(name, "flags" | "address" | "apic id")
}

/// Indices (into `seq`) of one longest strictly increasing subsequence.
fn longest_increasing(seq: &[usize]) -> Vec<usize> {
    // tails[k]: index in `seq` of the smallest tail of an increasing run of length k+1.
    let mut tails: Vec<usize> = Vec::new();
    let mut prev: Vec<Option<usize>> = alloc::vec![None; seq.len()];
    for (i, &v) in seq.iter().enumerate() {
        let pos = tails.partition_point(|&t| seq[t] < v);
        prev[i] = pos.checked_sub(1).map(|p| tails[p]);
        if pos == tails.len() {
            tails.push(i);
        } else {
            tails[pos] = i;
        }
    }
    let mut out = Vec::with_capacity(tails.len());
    let mut cur = tails.last().copied();
    while let Some(i) = cur {
        out.push(i);
        cur = prev[i];
    }
    out.reverse();
    out
}

/// Every difference between MADTs `a` and `b` (named `la` and `lb` in the lines), ignoring the
/// OEM and creator fields, the length and the checksum:
///
/// - a table that does not parse: one line with the error (nothing else is compared);
/// - header: revision, LAPIC address, flags;
/// - entry problems ([`MadtSummary::problems`]) of either table;
/// - entries are matched by identity (processors by ACPI uid across types 0 and 9, IO APICs by
///   id, overrides by bus and IRQ, NMIs by GSI or uid and LINT pin); for a matched pair every
///   differing field is a line (type, APIC id, flags, address, GSI, ...); an entry without a
///   partner is a line; and entries whose relative order differs are listed, fewest moves.
pub fn compare_madt_labeled(a: &[u8], la: &str, b: &[u8], lb: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (sa, sb) = match (MadtSummary::parse(a), MadtSummary::parse(b)) {
        (Ok(sa), Ok(sb)) => (sa, sb),
        (ea, eb) => {
            if let Err(e) = ea {
                out.push(format!("{la}: does not parse: {e}"));
            }
            if let Err(e) = eb {
                out.push(format!("{lb}: does not parse: {e}"));
            }
            return out;
        }
    };
    if sa.revision != sb.revision {
        out.push(format!(
            "header: revision {} in {la}, {} in {lb}",
            sa.revision, sb.revision
        ));
    }
    if sa.lapic_addr != sb.lapic_addr {
        out.push(format!(
            "header: local APIC address {:#x} in {la}, {:#x} in {lb}",
            sa.lapic_addr, sb.lapic_addr
        ));
    }
    if sa.flags != sb.flags {
        out.push(format!(
            "header: flags {:#x} in {la}, {:#x} in {lb}",
            sa.flags, sb.flags
        ));
    }
    for p in &sa.problems {
        out.push(format!("{la}: {p}"));
    }
    for p in &sb.problems {
        out.push(format!("{lb}: {p}"));
    }
    if sa.entries.len() != sb.entries.len() {
        out.push(format!(
            "entries: {} in {la}, {} in {lb}",
            sa.entries.len(),
            sb.entries.len()
        ));
    }

    // Match the k-th entry of a key in `a` with the k-th of that key in `b`.
    let mut pending: VecMap<Key, alloc::collections::VecDeque<usize>> = VecMap::new();
    for (j, e) in sb.entries.iter().enumerate() {
        pending.entry(key(&e.entry)).or_default().push_back(j);
    }
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let mut b_matched = alloc::vec![false; sb.entries.len()];
    for (i, e) in sa.entries.iter().enumerate() {
        let k = key(&e.entry);
        match pending.get_mut(&k).and_then(|q| q.pop_front()) {
            Some(j) => {
                b_matched[j] = true;
                pairs.push((i, j));
                let eb = &sb.entries[j];
                if e.entry == eb.entry {
                    continue;
                }
                let fa = e.entry.fields();
                let fb = eb.entry.fields();
                for (name, va) in &fa {
                    let vb = fb.iter().find(|(n, _)| n == name).map(|&(_, v)| v);
                    if vb == Some(*va) {
                        continue;
                    }
                    let show = |v: u64| {
                        if hex_field(name) {
                            format!("{v:#x}")
                        } else if *name == "type" {
                            format!("{v} ({})", crate::madt::entry_name(v as u8))
                        } else {
                            format!("{v}")
                        }
                    };
                    out.push(format!(
                        "{k}: {name} {} in {la} (entry #{i} at {:#x}), {} in {lb} (entry #{j} \
                         at {:#x})",
                        show(*va),
                        e.offset,
                        vb.map(show).unwrap_or_else(|| "absent".into()),
                        eb.offset
                    ));
                }
                for (name, vb) in &fb {
                    if !fa.iter().any(|(n, _)| n == name) {
                        out.push(format!(
                            "{k}: {name} absent in {la} (entry #{i} at {:#x}), {vb} in {lb} \
                             (entry #{j} at {:#x})",
                            e.offset, eb.offset
                        ));
                    }
                }
            }
            None => out.push(format!(
                "only in {la}: entry #{i} at {:#x}: {}",
                e.offset, e.entry
            )),
        }
    }
    for (j, e) in sb.entries.iter().enumerate() {
        if !b_matched[j] {
            out.push(format!(
                "only in {lb}: entry #{j} at {:#x}: {}",
                e.offset, e.entry
            ));
        }
    }
    // Order: the matched entries not on a longest common increasing run moved.
    let seq: Vec<usize> = pairs.iter().map(|&(_, j)| j).collect();
    let keep = longest_increasing(&seq);
    let mut keep_it = keep.iter().peekable();
    for (n, &(i, j)) in pairs.iter().enumerate() {
        if keep_it.peek() == Some(&&n) {
            keep_it.next();
            continue;
        }
        out.push(format!(
            "order: {} moved: entry #{i} in {la}, #{j} in {lb}",
            key(&sa.entries[i].entry)
        ));
    }
    out
}

#[cfg(test)]
mod tests;
