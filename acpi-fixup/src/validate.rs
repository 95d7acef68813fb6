//! Walking and checking a machine's ACPI tables: RSDP (v1 or v2) → XSDT/RSDT → every table it
//! lists, plus the DSDT and FACS the FADT points at.
//!
//! Every table gets a [`TableCheck`]: its header is checked (signature, length, checksum,
//! revision for the tables this crate knows), then the FADT, MADT and MCFG are parsed in detail.
//! A table whose header is broken is reported and skipped (`used: false`); a table that parses
//! but has inconsistencies is used and its problems listed. Every problem names the table, the
//! byte offset in it, and what was expected.
//!
//! Reading goes through [`TableSource`], so the same walk runs on dom0's guest-physical reads,
//! on tables a test lays out, and on a DomU's tables from [`crate::domu`].

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::fadt::{Facs, FadtSummary};
use crate::madt::MadtSummary;
use crate::mcfg::McfgEntry;
use crate::{
    AcpiError, RootTable, Rsdp, SdtHeader, TableId, parse_rsdt_entries,
    parse_xsdt_entries_any_signature,
};

/// Where tables are read from.
pub trait TableSource {
    /// The `len` bytes at physical address `paddr`, or `None` if they cannot be read (outside
    /// the memory the source covers, or not ACPI memory).
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>>;
}

impl<T: TableSource + ?Sized> TableSource for &T {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        (**self).read(paddr, len)
    }
}

/// Read `len` bytes at `paddr` from regions given as (start address, bytes): the read must lie
/// wholly inside one region.
fn read_regions<'a>(
    regions: impl Iterator<Item = (u64, &'a [u8])>,
    paddr: u64,
    len: usize,
) -> Option<Vec<u8>> {
    let end = paddr.checked_add(len as u64)?;
    for (start, bytes) in regions {
        let Some(rend) = start.checked_add(bytes.len() as u64) else {
            continue;
        };
        if paddr >= start && end <= rend {
            let off = usize::try_from(paddr - start).ok()?;
            return bytes.get(off..off.checked_add(len)?).map(<[u8]>::to_vec);
        }
    }
    None
}

impl TableSource for [(u64, Vec<u8>)] {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        read_regions(self.iter().map(|(a, b)| (*a, b.as_slice())), paddr, len)
    }
}

impl TableSource for Vec<(u64, Vec<u8>)> {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        self.as_slice().read(paddr, len)
    }
}

impl TableSource for [(u64, &[u8])] {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        read_regions(self.iter().copied(), paddr, len)
    }
}

impl TableSource for BTreeMap<u64, Vec<u8>> {
    fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
        // Only the region starting at or below `paddr` can hold it.
        let (start, bytes) = self.range(..=paddr).next_back()?;
        read_regions(core::iter::once((*start, bytes.as_slice())), paddr, len)
    }
}

/// No table is read past this length; a longer length field is reported as a lie. (The largest
/// real DSDTs are a few hundred KiB.)
pub const MAX_TABLE_LEN: u32 = 8 << 20;
/// At most this many root table entries are followed.
pub const MAX_ROOT_ENTRIES: usize = 1024;

/// The check of one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCheck {
    /// The 4-byte signature as found (non-printable bytes as `\xNN`; "????" if unreadable).
    pub signature: String,
    pub paddr: u64,
    /// The length field (0 if unreadable).
    pub length: u32,
    /// The revision byte (0 if unreadable).
    pub revision: u8,
    /// No problems at all.
    pub ok: bool,
    /// The header was sound and the table's content was used; `false`: reported and skipped.
    pub used: bool,
    /// What is wrong, each naming the table, the offset and what was expected.
    pub problems: Vec<String>,
}

/// The result of a walk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcpiValidation {
    pub rsdp_paddr: u64,
    /// The RSDP, if it was sound.
    pub rsdp: Option<Rsdp>,
    /// The root table the RSDP names (XSDT if its address is non-zero, else RSDT).
    pub root: Option<RootTable>,
    /// The root table(s) first, then every table in root-table order, then the DSDT and FACS
    /// the FADT points at.
    pub tables: Vec<TableCheck>,
    /// The first sound FADT.
    pub fadt: Option<FadtSummary>,
    /// The entries of the first sound MCFG.
    pub mcfg: Vec<McfgEntry>,
    /// The first sound MADT.
    pub madt: Option<MadtSummary>,
    /// Signatures of the tables that were used, in walk order (an SSDT appears once per SSDT).
    pub present: Vec<String>,
    /// Problems not about one table: the RSDP, the walk itself.
    pub problems: Vec<String>,
}

impl AcpiValidation {
    /// No problem anywhere.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.tables.iter().all(|t| t.ok)
    }

    /// Whether a table with this signature was found and used.
    pub fn has(&self, signature: &str) -> bool {
        self.present.iter().any(|s| s == signature)
    }

    /// How many tables with this signature were used.
    pub fn count(&self, signature: &str) -> usize {
        self.present.iter().filter(|s| *s == signature).count()
    }

    /// Every problem, each table's prefixed with its address: for a report.
    pub fn all_problems(&self) -> Vec<String> {
        let mut out = self.problems.clone();
        for t in &self.tables {
            for p in &t.problems {
                out.push(format!("{} at {:#x}: {p}", t.signature, t.paddr));
            }
        }
        out
    }
}

/// The revisions a table of this signature may have (ACPI 6.5; DMAR: VT-d 4.x; IVRS: AMD IOMMU
/// 3.x), `None` for tables this crate does not know.
pub fn revision_range(signature: &[u8; 4]) -> Option<(u8, u8)> {
    Some(match signature {
        b"XSDT" | b"RSDT" => (1, 1),
        b"FACP" => (1, crate::fadt::MAX_REVISION),
        // Revision 4 is ACPI 6.0-6.2, 5 is 6.3-6.4, 6/7 are 6.5.
        b"APIC" => (1, 7),
        b"MCFG" | b"HPET" | b"SLIT" | b"WAET" | b"BGRT" | b"FPDT" => (1, 1),
        // Revision 1: 32-bit AML integers, 2: 64-bit.
        b"DSDT" | b"SSDT" => (1, 2),
        b"SRAT" => (1, 3),
        b"DMAR" => (1, 2),
        b"IVRS" => (1, 2),
        _ => return None,
    })
}

/// The least length a table of this signature may have.
fn min_length(signature: &[u8; 4]) -> usize {
    match signature {
        b"FACP" => crate::fadt::MIN_SIZE,
        b"APIC" | b"MCFG" | b"SLIT" => SdtHeader::SIZE + 8,
        b"HPET" => 56,
        b"SRAT" | b"DMAR" | b"IVRS" => SdtHeader::SIZE + 12,
        _ => SdtHeader::SIZE,
    }
}

/// The walker's state.
struct Walk<'s, S: TableSource + ?Sized> {
    src: &'s S,
    v: AcpiValidation,
    /// The check of the FADT in use.
    fadt_idx: Option<usize>,
}

/// What a table was expected to be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Any,
    Sig(&'static str),
}

impl<S: TableSource + ?Sized> Walk<'_, S> {
    /// Read and check the header and checksum of the table at `paddr`; on success also the
    /// whole table's bytes. The check is pushed either way; its index is returned.
    fn read_sdt(&mut self, paddr: u64, expect: Expect) -> (usize, Option<Vec<u8>>) {
        let mut c = TableCheck {
            signature: "????".to_string(),
            paddr,
            ..TableCheck::default()
        };
        let bytes = self.fetch(paddr, &mut c);
        let idx = self.v.tables.len();
        let bytes = bytes.and_then(|b| {
            let sig: [u8; 4] = [b[0], b[1], b[2], b[3]];
            if let Expect::Sig(want) = expect
                && sig != *want.as_bytes()
            {
                c.problems.push(
                    AcpiError::BadSignature {
                        table: TableId::Sdt(sig),
                        expected: want,
                    }
                    .to_string(),
                );
                return None;
            }
            if let Err(e) = SdtHeader::parse(&b) {
                c.problems.push(e.to_string());
                return None;
            }
            let min = min_length(&sig);
            if (c.length as usize) < min {
                c.problems.push(
                    AcpiError::BadLength {
                        table: TableId::Sdt(sig),
                        offset: 4,
                        length: c.length,
                        min,
                    }
                    .to_string(),
                );
                return None;
            }
            if let Some((lo, hi)) = revision_range(&sig)
                && !(lo..=hi).contains(&c.revision)
            {
                // A revision outside the known range is reported, the table still used: its
                // layout is a superset of the last known one.
                c.problems.push(
                    AcpiError::BadRevision {
                        table: TableId::Sdt(sig),
                        offset: 8,
                        revision: c.revision,
                        min: lo,
                        max: hi,
                    }
                    .to_string(),
                );
            }
            if !sig.iter().all(|&x| x.is_ascii_graphic()) {
                c.problems.push(format!(
                    "{}: signature at offset 0x0 has non-printable bytes (expected 4 ASCII \
                     letters or digits)",
                    TableId::Sdt(sig)
                ));
            }
            Some(b)
        });
        c.used = bytes.is_some();
        self.v.tables.push(c);
        (idx, bytes)
    }

    /// The header fields into `c`, then the whole table (bounded by [`MAX_TABLE_LEN`]).
    fn fetch(&mut self, paddr: u64, c: &mut TableCheck) -> Option<Vec<u8>> {
        let Some(head) = self.src.read(paddr, SdtHeader::SIZE) else {
            c.problems.push(format!(
                "table at {paddr:#x}: offset 0x0: cannot read the {}-byte header (expected ACPI \
                 memory)",
                SdtHeader::SIZE
            ));
            return None;
        };
        if head.len() < SdtHeader::SIZE {
            c.problems.push(format!(
                "table at {paddr:#x}: offset {:#x}: source returned {} bytes (expected {})",
                head.len(),
                head.len(),
                SdtHeader::SIZE
            ));
            return None;
        }
        let sig = [head[0], head[1], head[2], head[3]];
        c.signature = format!("{}", TableId::Sdt(sig));
        c.length = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        c.revision = head[8];
        if (c.length as usize) < SdtHeader::SIZE {
            c.problems.push(
                AcpiError::BadLength {
                    table: TableId::Sdt(sig),
                    offset: 4,
                    length: c.length,
                    min: SdtHeader::SIZE,
                }
                .to_string(),
            );
            return None;
        }
        if c.length > MAX_TABLE_LEN {
            c.problems.push(format!(
                "{}: length at offset 0x4 is {:#x} (expected at most {MAX_TABLE_LEN:#x}); not read",
                TableId::Sdt(sig),
                c.length
            ));
            return None;
        }
        match self.src.read(paddr, c.length as usize) {
            Some(mut b) if b.len() >= c.length as usize => {
                b.truncate(c.length as usize);
                Some(b)
            }
            Some(b) => {
                c.problems.push(
                    AcpiError::Truncated {
                        table: TableId::Sdt(sig),
                        offset: b.len(),
                        needed: c.length as usize,
                        available: b.len(),
                    }
                    .to_string(),
                );
                None
            }
            None => {
                c.problems.push(format!(
                    "{}: offset {:#x}: cannot read the table's {:#x} bytes (length at offset 0x4 \
                     runs past readable memory)",
                    TableId::Sdt(sig),
                    SdtHeader::SIZE,
                    c.length
                ));
                None
            }
        }
    }

    fn problem(&mut self, idx: usize, p: String) {
        if let Some(c) = self.v.tables.get_mut(idx) {
            c.problems.push(p);
        }
    }

    fn used(&mut self, idx: usize) {
        if let Some(c) = self.v.tables.get(idx) {
            let s = c.signature.clone();
            self.v.present.push(s);
        }
    }

    /// Check the table the root lists at `paddr` and take what it says.
    fn table(&mut self, paddr: u64, expect: Expect) {
        // The FACS has no SDT header (no checksum, no revision): checked on its own.
        if let Some(head) = self.src.read(paddr, 4)
            && head == b"FACS"
        {
            self.facs(paddr);
            return;
        }
        let (idx, bytes) = self.read_sdt(paddr, expect);
        let Some(bytes) = bytes else { return };
        self.used(idx);
        let sig = [bytes[0], bytes[1], bytes[2], bytes[3]];
        match &sig {
            b"FACP" => match FadtSummary::parse(&bytes) {
                Ok(f) => {
                    for p in &f.problems {
                        self.problem(idx, p.clone());
                    }
                    if self.v.fadt.is_none() {
                        self.v.fadt = Some(f);
                        self.fadt_idx = Some(idx);
                    } else {
                        self.problem(idx, "FACP: a second FADT (expected one); ignored".into());
                    }
                }
                Err(e) => self.problem(idx, e.to_string()),
            },
            b"APIC" => match MadtSummary::parse(&bytes) {
                Ok(m) => {
                    for p in &m.problems {
                        self.problem(idx, p.clone());
                    }
                    if self.v.madt.is_none() {
                        self.v.madt = Some(m);
                    } else {
                        self.problem(idx, "APIC: a second MADT (expected one); ignored".into());
                    }
                }
                Err(e) => self.problem(idx, e.to_string()),
            },
            b"MCFG" => match crate::mcfg::parse(&bytes) {
                Ok((e, p)) => {
                    for p in p {
                        self.problem(idx, p);
                    }
                    if self.v.mcfg.is_empty() {
                        self.v.mcfg = e;
                    }
                }
                Err(e) => self.problem(idx, e.to_string()),
            },
            b"DSDT" if expect == Expect::Any => self.problem(
                idx,
                "DSDT: listed in the root table (expected only through the FADT's X_DSDT/DSDT)"
                    .into(),
            ),
            b"XSDT" | b"RSDT" => self.problem(
                idx,
                format!(
                    "{}: a root table listed in the root table (expected only through the RSDP)",
                    TableId::Sdt(sig)
                ),
            ),
            _ => {}
        }
    }

    fn facs(&mut self, paddr: u64) {
        let mut c = TableCheck {
            signature: "FACS".into(),
            paddr,
            ..TableCheck::default()
        };
        // Length first (no checksum to guide us), then the whole structure.
        let len = self
            .src
            .read(paddr, 8)
            .and_then(|h| xen::le::get_u32(&h, 4))
            .unwrap_or(0);
        c.length = len;
        let want = (len as usize).clamp(Facs::MIN_SIZE, MAX_TABLE_LEN as usize);
        let bytes = self
            .src
            .read(paddr, want)
            .or_else(|| self.src.read(paddr, Facs::MIN_SIZE));
        match bytes.as_deref().map(Facs::parse) {
            Some(Ok(f)) => {
                c.revision = f.version;
                c.used = true;
                if !paddr.is_multiple_of(64) {
                    c.problems.push(format!(
                        "FACS: at {paddr:#x}, offset 0x0: not 64-byte aligned (expected a \
                         multiple of 0x40)"
                    ));
                }
            }
            Some(Err(e)) => c.problems.push(e.to_string()),
            None => c.problems.push(format!(
                "FACS at {paddr:#x}: offset 0x0: cannot read {} bytes (expected ACPI memory)",
                Facs::MIN_SIZE
            )),
        }
        if c.used {
            self.v.present.push("FACS".into());
        }
        self.v.tables.push(c);
    }
}

/// Walk and check every table reachable from the RSDP at `rsdp_paddr`.
///
/// An XSDT whose signature is wrong but whose length and checksum are sound (Xen 4.17's crafted
/// XSDT on firmware without one, [`crate::parse_xsdt_entries_any_signature`]) is reported and
/// its entries still followed. With a v2 RSDP naming both an XSDT and an RSDT, the XSDT is
/// walked and the RSDT's header checked.
pub fn validate<S: TableSource + ?Sized>(src: &S, rsdp_paddr: u64) -> AcpiValidation {
    let mut w = Walk {
        src,
        v: AcpiValidation {
            rsdp_paddr,
            ..AcpiValidation::default()
        },
        fadt_idx: None,
    };
    walk(&mut w, rsdp_paddr);
    for t in &mut w.v.tables {
        t.ok = t.problems.is_empty();
    }
    w.v
}

fn walk<S: TableSource + ?Sized>(w: &mut Walk<'_, S>, rsdp_paddr: u64) {
    let src = w.src;
    let raw = src
        .read(rsdp_paddr, Rsdp::V2_SIZE)
        .or_else(|| src.read(rsdp_paddr, Rsdp::V1_SIZE));
    let Some(raw) = raw else {
        w.v.problems.push(format!(
            "RSDP at {rsdp_paddr:#x}: offset 0x0: cannot read {} bytes (expected ACPI memory)",
            Rsdp::V1_SIZE
        ));
        return;
    };
    let rsdp = match Rsdp::parse(&raw) {
        Ok(r) => r,
        Err(e) => {
            w.v.problems.push(format!("RSDP at {rsdp_paddr:#x}: {e}"));
            return;
        }
    };
    if rsdp.revision == 1 {
        w.v.problems.push(format!(
            "RSDP at {rsdp_paddr:#x}: revision at offset 0xf is 1 (expected 0 for ACPI 1.0 or 2 \
             and later); read as ACPI 1.0"
        ));
    }
    w.v.rsdp = Some(rsdp);
    let root = rsdp.root_table();
    w.v.root = Some(root);

    // The RSDT's header when the XSDT is what is walked.
    if let RootTable::Xsdt(_) = root
        && rsdp.rsdt_address != 0
    {
        w.read_sdt(u64::from(rsdp.rsdt_address), Expect::Sig("RSDT"));
    }

    let (root_addr, is_xsdt) = match root {
        RootTable::Xsdt(a) => (a, true),
        RootTable::Rsdt(a) => (u64::from(a), false),
    };
    if root_addr == 0 {
        w.v.problems.push(format!(
            "RSDP at {rsdp_paddr:#x}: offset 0x10: RSDT address is 0 and there is no XSDT \
             (expected a root table)"
        ));
        return;
    }
    let (ridx, rbytes) = w.read_sdt(root_addr, Expect::Any);
    let Some(rbytes) = rbytes else { return };
    let rsig = [rbytes[0], rbytes[1], rbytes[2], rbytes[3]];
    let want = if is_xsdt { "XSDT" } else { "RSDT" };
    let entries = if is_xsdt {
        parse_xsdt_entries_any_signature(&rbytes).map(|(e, _)| e)
    } else {
        parse_rsdt_entries(&rbytes)
    };
    if rsig != *want.as_bytes() {
        w.problem(
            ridx,
            AcpiError::BadSignature {
                table: TableId::Sdt(rsig),
                expected: want,
            }
            .to_string(),
        );
        if !is_xsdt {
            if let Some(c) = w.v.tables.get_mut(ridx) {
                c.used = false;
            }
            return;
        }
        w.problem(
            ridx,
            format!(
                "{}: length and checksum are sound, so its entries are followed (Xen 4.17 \
                 copies the XSDT header from address 0 when the firmware has no XSDT)",
                TableId::Sdt(rsig)
            ),
        );
    }
    let entries = match entries {
        Ok(e) => e,
        Err(e) => {
            w.problem(ridx, e.to_string());
            if let Some(c) = w.v.tables.get_mut(ridx) {
                c.used = false;
            }
            return;
        }
    };
    w.v.present.push(want.into());
    let esize = if is_xsdt { 8 } else { 4 };
    if entries.len() > MAX_ROOT_ENTRIES {
        w.problem(
            ridx,
            format!(
                "{want}: {} entries (expected at most {MAX_ROOT_ENTRIES}); the rest not followed",
                entries.len()
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, &addr) in entries.iter().take(MAX_ROOT_ENTRIES).enumerate() {
        let off = SdtHeader::SIZE + i * esize;
        if addr == 0 {
            w.problem(
                ridx,
                format!("{want}: entry #{i} at offset {off:#x} is 0 (expected a table address)"),
            );
            continue;
        }
        if !seen.insert(addr) {
            w.problem(
                ridx,
                format!(
                    "{want}: entry #{i} at offset {off:#x} repeats address {addr:#x} (expected \
                     each table once)"
                ),
            );
            continue;
        }
        w.table(addr, Expect::Any);
    }

    // The DSDT and FACS the FADT points at.
    if let Some(f) = w.v.fadt.clone() {
        if let Some(d) = f.dsdt_address() {
            if seen.insert(d) {
                w.table(d, Expect::Sig("DSDT"));
            } else if let Some(other) = w.v.tables.iter().find(|t| t.paddr == d)
                && other.signature != "DSDT"
            {
                let p = format!(
                    "FACP: X_DSDT/DSDT (offsets 0x8c/0x28) point at {d:#x}, which holds {} \
                     (expected a DSDT)",
                    other.signature
                );
                if let Some(i) = w.fadt_idx {
                    w.problem(i, p);
                }
            }
        }
        if let Some(facs) = f.facs_address()
            && seen.insert(facs)
        {
            w.facs(facs);
        }
    } else {
        w.v.problems.push(format!(
            "{want} at {root_addr:#x}: no usable FADT (\"FACP\") listed (expected one)"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{
        ApicIdScheme, ContainerSpec, EntryKind, build_madt, build_rsdp, build_xsdt,
    };
    use crate::fadt::tests::qemu_fadt;
    use crate::madt::IoApic;
    use crate::{finish_table, set_checksum};

    fn sdt(sig: &[u8; 4], rev: u8, body: &[u8]) -> Vec<u8> {
        let h = SdtHeader {
            signature: *sig,
            revision: rev,
            oem_id: *b"BOCHS ",
            ..SdtHeader::default()
        };
        let mut t = h.to_bytes().to_vec();
        t.extend_from_slice(body);
        finish_table(&mut t).unwrap();
        t
    }

    fn facs() -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"FACS");
        f[4..8].copy_from_slice(&64u32.to_le_bytes());
        f[32] = 1;
        f
    }

    fn madt() -> Vec<u8> {
        let mut s = ContainerSpec::new(2, ApicIdScheme::Identity);
        s.entries = EntryKind::Lapic;
        s.ioapics = vec![IoApic {
            id: 0,
            addr: 0xFEC0_0000,
            gsi_base: 0,
        }];
        build_madt(&s).unwrap()
    }

    /// A QEMU-like machine: RSDP v2 at 0xF5A00 with an RSDT and an XSDT, FADT (rev 3) with FACS
    /// and DSDT, MADT, MCFG, HPET, an SSDT.
    struct Machine {
        tables: BTreeMap<u64, Vec<u8>>,
    }

    const RSDP: u64 = 0xF_5A00;
    const RSDT: u64 = 0x7FFE_1000;
    const XSDT: u64 = 0x7FFE_1100;
    const FACS: u64 = 0x7FFE_0000;
    const DSDT: u64 = 0x7FFE_0040;
    const FACP: u64 = 0x7FFE_2000;
    const APIC: u64 = 0x7FFE_2200;
    const MCFG: u64 = 0x7FFE_2300;
    const HPET: u64 = 0x7FFE_2400;
    const SSDT: u64 = 0x7FFE_2500;

    impl Machine {
        fn new() -> Machine {
            let mut tables = BTreeMap::new();
            let listed = [FACP, APIC, MCFG, HPET, SSDT];
            let mut rsdp = build_rsdp(XSDT, *b"BOCHS ").to_vec();
            rsdp[16..20].copy_from_slice(&(RSDT as u32).to_le_bytes());
            set_checksum(&mut rsdp, 8, 20);
            set_checksum(&mut rsdp, 32, 36);
            tables.insert(RSDP, rsdp);
            let mut body = Vec::new();
            for a in listed {
                body.extend_from_slice(&(a as u32).to_le_bytes());
            }
            tables.insert(RSDT, sdt(b"RSDT", 1, &body));
            tables.insert(XSDT, build_xsdt(&SdtHeader::default(), &listed).unwrap());
            tables.insert(FACS, facs());
            // Scope (\_SB) {}
            tables.insert(
                DSDT,
                sdt(b"DSDT", 1, &[0x10, 0x06, 0x5C, 0x5F, 0x53, 0x42, 0x5F]),
            );
            tables.insert(FACP, qemu_fadt());
            tables.insert(APIC, madt());
            tables.insert(
                MCFG,
                crate::mcfg::build(
                    &SdtHeader::default(),
                    &[McfgEntry {
                        base: 0xB000_0000,
                        segment: 0,
                        start_bus: 0,
                        end_bus: 0xFF,
                    }],
                )
                .unwrap(),
            );
            tables.insert(HPET, sdt(b"HPET", 1, &[0; 20]));
            tables.insert(SSDT, sdt(b"SSDT", 1, &[]));
            Machine { tables }
        }

        fn set(&mut self, at: u64, t: Vec<u8>) {
            self.tables.insert(at, t);
        }

        fn get(&self, at: u64) -> Vec<u8> {
            self.tables[&at].clone()
        }

        fn run(&self) -> AcpiValidation {
            validate(&self.tables, RSDP)
        }
    }

    fn check<'a>(v: &'a AcpiValidation, sig: &str) -> &'a TableCheck {
        v.tables
            .iter()
            .find(|t| t.signature == sig)
            .unwrap_or_else(|| panic!("no {sig} in {:?}", v.tables))
    }

    #[test]
    fn sound_machine() {
        let v = Machine::new().run();
        assert!(v.ok(), "{:#?}", v.all_problems());
        assert_eq!(v.root, Some(RootTable::Xsdt(XSDT)));
        assert_eq!(
            v.present,
            vec![
                "XSDT", "FACP", "APIC", "MCFG", "HPET", "SSDT", "DSDT", "FACS"
            ]
        );
        let sigs: Vec<&str> = v.tables.iter().map(|t| t.signature.as_str()).collect();
        assert_eq!(
            sigs,
            vec![
                "RSDT", "XSDT", "FACP", "APIC", "MCFG", "HPET", "SSDT", "DSDT", "FACS"
            ]
        );
        assert!(v.tables.iter().all(|t| t.used && t.ok));
        let f = v.fadt.as_ref().unwrap();
        assert_eq!(f.sci_int, 9);
        assert!(f.legacy_devices() && f.has_8042() && !f.hw_reduced());
        assert_eq!(v.mcfg.len(), 1);
        assert_eq!(v.madt.as_ref().unwrap().apic_ids, vec![0, 1]);
        assert!(v.has("HPET") && !v.has("DMAR") && !v.has("IVRS") && !v.has("SRAT"));
        assert_eq!(v.count("SSDT"), 1);
        assert_eq!(check(&v, "FACP").length, 244);
        assert_eq!(check(&v, "FACS").paddr, FACS);
    }

    #[test]
    fn rsdp_v1_walks_the_rsdt() {
        let mut m = Machine::new();
        let mut r = m.get(RSDP);
        r.truncate(20);
        r[15] = 0;
        set_checksum(&mut r, 8, 20);
        m.set(RSDP, r);
        let v = m.run();
        assert!(v.ok(), "{:#?}", v.all_problems());
        assert_eq!(v.root, Some(RootTable::Rsdt(RSDT as u32)));
        assert_eq!(v.present[0], "RSDT");
        assert!(v.has("APIC"));
    }

    #[test]
    fn broken_rsdps() {
        let mut m = Machine::new();
        let mut r = m.get(RSDP);
        r[12] ^= 1;
        m.set(RSDP, r);
        let v = m.run();
        assert_eq!(
            v.problems,
            vec![
                "RSDP at 0xf5a00: RSDP: checksum over bytes [0x0, 0x14) sums to 0x01, not 0 \
                 (checksum byte at offset 0x8)"
            ]
        );
        assert!(v.tables.is_empty() && v.rsdp.is_none());
        let v = validate(&BTreeMap::new(), 0x1000);
        assert_eq!(
            v.problems,
            vec!["RSDP at 0x1000: offset 0x0: cannot read 20 bytes (expected ACPI memory)"]
        );
        // Revision 1 is not a revision ACPI defines.
        let mut m = Machine::new();
        let mut r = m.get(RSDP);
        r.truncate(20);
        r[15] = 1;
        set_checksum(&mut r, 8, 20);
        m.set(RSDP, r);
        let v = m.run();
        assert_eq!(
            v.problems,
            vec![
                "RSDP at 0xf5a00: revision at offset 0xf is 1 (expected 0 for ACPI 1.0 or 2 and \
                 later); read as ACPI 1.0"
            ]
        );
    }

    #[test]
    fn each_corruption_class_has_its_error() {
        // (what is done to the MADT, the problem expected in its check, whether it is used)
        type Corrupt = fn(&mut Vec<u8>);
        let cases: Vec<(&str, Corrupt, &str, bool)> = vec![
            (
                "checksum",
                |t| t[40] ^= 0x10,
                "APIC: checksum over bytes [0x0, 0x48) sums to 0x10, not 0 (checksum byte at \
                 offset 0x9)",
                false,
            ),
            (
                "length beyond memory",
                |t| {
                    t[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
                },
                "APIC: offset 0x24: cannot read the table's 0x1000 bytes (length at offset 0x4 \
                 runs past readable memory)",
                false,
            ),
            (
                "length below the header",
                |t| {
                    t[4..8].copy_from_slice(&8u32.to_le_bytes());
                },
                "APIC: length field at offset 0x4 says 0x8, less than the 0x24-byte fixed part",
                false,
            ),
            (
                "length below the MADT's fixed part",
                |t| {
                    t.truncate(40);
                    finish_table(t).unwrap();
                },
                "APIC: length field at offset 0x4 says 0x28, less than the 0x2c-byte fixed part",
                false,
            ),
            (
                "huge length",
                |t| {
                    t[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
                },
                "APIC: length at offset 0x4 is 0xffffffff (expected at most 0x800000); not read",
                false,
            ),
            (
                "truncated",
                |t| t.truncate(20),
                "table at 0x7ffe2200: offset 0x0: cannot read the 36-byte header (expected ACPI \
                 memory)",
                false,
            ),
            (
                "revision 0",
                |t| {
                    t[8] = 0;
                    finish_table(t).unwrap();
                },
                "APIC: revision at offset 0x8 is 0 (expected 1..=7)",
                true,
            ),
            (
                "revision too new",
                |t| {
                    t[8] = 0x42;
                    finish_table(t).unwrap();
                },
                "APIC: revision at offset 0x8 is 66 (expected 1..=7)",
                true,
            ),
            (
                "entry past the end",
                |t| {
                    t[44 + 12 + 1] = 40;
                    finish_table(t).unwrap();
                },
                "APIC: entry at offset 0x38 (type 0, Local APIC, length 40) runs past the end \
                 of the table at 0x48; stopped",
                true,
            ),
            (
                "duplicated APIC id",
                |t| {
                    t[44 + 12 + 8 + 3] = 0;
                    finish_table(t).unwrap();
                },
                "APIC: APIC id 0x0 appears in 2 enabled entries (at offsets 0x38, 0x40; expected \
                 each id once)",
                true,
            ),
            (
                "unknown entry type",
                |t| {
                    t.extend_from_slice(&[0x42, 4, 0, 0]);
                    finish_table(t).unwrap();
                },
                "APIC: entry at offset 0x48 has reserved type 0x42 (expected a type up to 0x1b, \
                 or an OEM type from 0x80); not interpreted",
                true,
            ),
            (
                "non-printable signature",
                |t| {
                    t[0] = 0;
                    finish_table(t).unwrap();
                },
                "\\x00PIC: signature at offset 0x0 has non-printable bytes (expected 4 ASCII \
                 letters or digits)",
                true,
            ),
        ];
        for (what, corrupt, expected, used) in cases {
            let mut m = Machine::new();
            let mut t = m.get(APIC);
            corrupt(&mut t);
            m.set(APIC, t);
            let v = m.run();
            let c = v.tables.iter().find(|c| c.paddr == APIC).unwrap();
            assert!(!c.ok, "{what}");
            assert_eq!(c.used, used, "{what}: {c:?}");
            assert_eq!(c.problems, vec![expected.to_string()], "{what}");
            // The rest of the machine is still walked.
            assert!(v.fadt.is_some() && v.has("MCFG") && v.has("DSDT"), "{what}");
            assert_eq!(v.madt.is_some(), used && c.signature == "APIC", "{what}");
            // Only this table is not ok.
            assert_eq!(v.tables.iter().filter(|c| !c.ok).count(), 1, "{what}");
        }
    }

    #[test]
    fn bad_signature_where_one_is_expected() {
        // The FADT's DSDT pointer leads to an SSDT.
        let mut m = Machine::new();
        let mut f = m.get(FACP);
        f[40..44].copy_from_slice(&(SSDT as u32).to_le_bytes());
        f[140..148].copy_from_slice(&SSDT.to_le_bytes());
        finish_table(&mut f).unwrap();
        m.set(FACP, f);
        let v = m.run();
        // The SSDT was already walked (listed), so it is not checked twice; the real DSDT is not
        // reached at all.
        assert!(!v.has("DSDT"));
        assert_eq!(
            check(&v, "FACP").problems,
            vec![
                "FACP: X_DSDT/DSDT (offsets 0x8c/0x28) point at 0x7ffe2500, which holds SSDT \
                 (expected a DSDT)"
            ]
        );
        // Now with the SSDT not listed.
        let mut m = Machine::new();
        let mut f = m.get(FACP);
        f[40..44].copy_from_slice(&0x7FFE_2600u32.to_le_bytes());
        f[140..148].copy_from_slice(&0x7FFE_2600u64.to_le_bytes());
        finish_table(&mut f).unwrap();
        m.set(FACP, f);
        m.set(0x7FFE_2600, sdt(b"SSDT", 2, &[]));
        let v = m.run();
        let c = v.tables.iter().find(|c| c.paddr == 0x7FFE_2600).unwrap();
        assert_eq!(
            c.problems,
            vec!["SSDT: bad signature at offset 0x0 (expected \"DSDT\")"]
        );
        assert!(!c.used);
    }

    #[test]
    fn root_table_problems() {
        // Zero entry, repeated entry, unreadable entry.
        let mut m = Machine::new();
        m.set(
            XSDT,
            build_xsdt(&SdtHeader::default(), &[FACP, 0, APIC, FACP, 0x9000_0000]).unwrap(),
        );
        let v = m.run();
        let x = check(&v, "XSDT");
        assert_eq!(
            x.problems,
            vec![
                "XSDT: entry #1 at offset 0x2c is 0 (expected a table address)",
                "XSDT: entry #3 at offset 0x3c repeats address 0x7ffe2000 (expected each table \
                 once)",
            ]
        );
        let bad = v.tables.iter().find(|c| c.paddr == 0x9000_0000).unwrap();
        assert_eq!(bad.signature, "????");
        assert_eq!(
            bad.problems,
            vec![
                "table at 0x90000000: offset 0x0: cannot read the 36-byte header (expected ACPI \
                 memory)"
            ]
        );
        // Ragged XSDT: reported and nothing followed.
        let mut m = Machine::new();
        let mut x = m.get(XSDT);
        x.extend_from_slice(&[0; 4]);
        finish_table(&mut x).unwrap();
        m.set(XSDT, x);
        let v = m.run();
        assert_eq!(
            check(&v, "XSDT").problems,
            vec!["XSDT: entries at offset 0x24 are 0x2c bytes, not a multiple of 8"]
        );
        assert!(!check(&v, "XSDT").used && v.fadt.is_none());
        // Xen 4.17's IVT-signature XSDT: reported, entries followed.
        let mut m = Machine::new();
        let mut x = m.get(XSDT);
        x[..4].copy_from_slice(&[0x53, 0xFF, 0x00, 0xF0]);
        finish_table(&mut x).unwrap();
        m.set(XSDT, x);
        let v = m.run();
        let c = v.tables.iter().find(|c| c.paddr == XSDT).unwrap();
        assert_eq!(c.signature, "S\\xff\\x00\\xf0");
        assert_eq!(c.problems.len(), 3, "{:?}", c.problems);
        assert!(c.problems[0].contains("non-printable"));
        assert_eq!(
            c.problems[1],
            "S\\xff\\x00\\xf0: bad signature at offset 0x0 (expected \"XSDT\")"
        );
        assert!(v.fadt.is_some() && v.madt.is_some());
        // No FADT at all.
        let mut m = Machine::new();
        m.set(XSDT, build_xsdt(&SdtHeader::default(), &[APIC]).unwrap());
        let v = m.run();
        assert_eq!(
            v.problems,
            vec!["XSDT at 0x7ffe1100: no usable FADT (\"FACP\") listed (expected one)"]
        );
        // RSDT header broken while the XSDT is walked.
        let mut m = Machine::new();
        let mut r = m.get(RSDT);
        r[20] ^= 1;
        m.set(RSDT, r);
        let v = m.run();
        assert!(!check(&v, "RSDT").used);
        assert!(v.madt.is_some());
    }

    #[test]
    fn fadt_dsdt_and_facs_problems() {
        let mut m = Machine::new();
        let mut f = m.get(FACS);
        f[32] = 7;
        m.set(FACS, f);
        let mut d = m.get(DSDT);
        d[8] = 3;
        finish_table(&mut d).unwrap();
        m.set(DSDT, d);
        let v = m.run();
        assert_eq!(
            check(&v, "FACS").problems,
            vec!["FACS: revision at offset 0x20 is 7 (expected 0..=3)"]
        );
        assert_eq!(
            check(&v, "DSDT").problems,
            vec!["DSDT: revision at offset 0x8 is 3 (expected 1..=2)"]
        );
        // Misaligned FACS.
        let mut m = Machine::new();
        let mut fadt = m.get(FACP);
        fadt[36..40].copy_from_slice(&0x7FFE_3010u32.to_le_bytes());
        fadt[132..140].fill(0);
        finish_table(&mut fadt).unwrap();
        m.set(FACP, fadt);
        m.set(0x7FFE_3010, facs());
        let v = m.run();
        assert_eq!(
            check(&v, "FACS").problems,
            vec![
                "FACS: at 0x7ffe3010, offset 0x0: not 64-byte aligned (expected a multiple of 0x40)"
            ]
        );
        // FADT field problems land in the FADT's check.
        let mut m = Machine::new();
        let mut fadt = m.get(FACP);
        fadt[91] = 2;
        finish_table(&mut fadt).unwrap();
        m.set(FACP, fadt);
        let v = m.run();
        assert_eq!(
            check(&v, "FACP").problems,
            vec!["FACP: PM_TMR_LEN at offset 0x5b is 2 (expected 4 with a PM timer block)"]
        );
        assert!(check(&v, "FACP").used);
    }

    #[test]
    fn mcfg_problems_and_presence() {
        let mut m = Machine::new();
        m.set(
            MCFG,
            crate::mcfg::build(
                &SdtHeader::default(),
                &[McfgEntry {
                    base: 0xB008_0000,
                    segment: 0,
                    start_bus: 0,
                    end_bus: 0xFF,
                }],
            )
            .unwrap(),
        );
        let dmar = 0x7FFE_2700;
        let mut x =
            build_xsdt(&SdtHeader::default(), &[FACP, APIC, MCFG, HPET, SSDT, dmar]).unwrap();
        m.set(dmar, sdt(b"DMAR", 1, &[0; 12]));
        m.set(XSDT, core::mem::take(&mut x));
        let v = m.run();
        assert_eq!(
            check(&v, "MCFG").problems,
            vec![
                "MCFG: entry at offset 0x2c: base 0xb0080000 is not 1 MiB aligned (expected a \
                 multiple of 0x100000)"
            ]
        );
        assert_eq!(v.mcfg[0].base, 0xB008_0000);
        assert!(v.has("DMAR"));
        // A DMAR too short for its fixed part is skipped.
        m.set(dmar, sdt(b"DMAR", 1, &[0; 4]));
        let v = m.run();
        assert!(!v.has("DMAR"));
        assert_eq!(
            check(&v, "DMAR").problems,
            vec!["DMAR: length field at offset 0x4 says 0x28, less than the 0x30-byte fixed part"]
        );
    }

    #[test]
    fn facs_listed_in_the_xsdt_is_checked_as_facs() {
        let mut m = Machine::new();
        m.set(
            XSDT,
            build_xsdt(&SdtHeader::default(), &[FACP, FACS, APIC]).unwrap(),
        );
        let v = m.run();
        assert!(v.ok(), "{:?}", v.all_problems());
        assert_eq!(v.count("FACS"), 1);
    }

    /// A source that returns fewer bytes than asked for, or more.
    struct Liar(BTreeMap<u64, Vec<u8>>, isize);

    impl TableSource for Liar {
        fn read(&self, paddr: u64, len: usize) -> Option<Vec<u8>> {
            let mut v = self.0.read(paddr, len)?;
            if self.1 < 0 {
                v.truncate(len.saturating_sub(self.1.unsigned_abs()));
            } else {
                v.extend(core::iter::repeat_n(0xAA, self.1 as usize));
            }
            Some(v)
        }
    }

    #[test]
    fn lying_sources_do_not_panic() {
        for delta in [-100isize, -37, -36, -20, -5, -1, 1, 7, 100] {
            let v = validate(&Liar(Machine::new().tables, delta), RSDP);
            // Short reads are problems; extra bytes are ignored.
            assert_eq!(v.ok(), delta > 0, "{delta}: {:?}", v.all_problems());
            for c in &v.tables {
                assert_eq!(c.ok, c.problems.is_empty());
            }
        }
    }

    #[test]
    fn sources() {
        let regions: Vec<(u64, Vec<u8>)> = vec![(0x1000, vec![1, 2, 3, 4]), (0x2000, vec![5; 8])];
        assert_eq!(regions.read(0x1001, 2), Some(vec![2, 3]));
        assert_eq!(regions.read(0x1003, 2), None);
        assert_eq!(regions.read(0x2000, 8), Some(vec![5; 8]));
        assert_eq!(regions.read(u64::MAX, 2), None);
        let slices: [(u64, &[u8]); 1] = [(u64::MAX - 2, &[1, 2])];
        assert_eq!(slices[..].read(u64::MAX - 2, 1), Some(vec![1]));
        assert_eq!(slices[..].read(u64::MAX - 1, 1), Some(vec![2]));
        assert_eq!(slices[..].read(u64::MAX - 2, 3), None);
        let map: BTreeMap<u64, Vec<u8>> = regions.into_iter().collect();
        assert_eq!(map.read(0x2004, 4), Some(vec![5; 4]));
        assert_eq!(map.read(0x0, 1), None);
        let by_ref: &dyn TableSource = &&map;
        assert_eq!(by_ref.read(0x1000, 0), Some(vec![]));
    }

    #[test]
    fn random_machines_never_panic() {
        let mut state = 0x0123_4567_89AB_CDEFu64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = Machine::new();
        let addrs: Vec<u64> = base.tables.keys().copied().collect();
        for round in 0..2000 {
            let mut m = Machine {
                tables: base.tables.clone(),
            };
            for _ in 0..(1 + next() % 4) {
                let at = addrs[(next() as usize) % addrs.len()];
                let t = m.tables.get_mut(&at).unwrap();
                if t.is_empty() {
                    continue;
                }
                let i = (next() as usize) % t.len();
                t[i] = next() as u8;
                if round % 2 == 0 && at != RSDP {
                    finish_table(t);
                }
                if round % 7 == 0 {
                    let n = (next() as usize) % t.len();
                    t.truncate(n);
                }
            }
            let v = m.run();
            for c in &v.tables {
                assert_eq!(c.ok, c.problems.is_empty());
            }
            let _ = v.all_problems();
        }
    }
}
