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

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use lean::VecSet;

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
        c.length = xen::le::u32_at(&head, 4);
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
    // One walker for every source (through `dyn`): dom0 validates two kinds of source and the
    // walker is large.
    validate_dyn(&src, rsdp_paddr)
}

fn validate_dyn(src: &dyn TableSource, rsdp_paddr: u64) -> AcpiValidation {
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
    // Bounded by MAX_ROOT_ENTRIES: a sorted Vec is enough (and small code).
    let mut seen: VecSet<u64> = VecSet::new();
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
mod tests;
