//! Tests of `validate.rs`.

use super::*;
use crate::build::{ApicIdScheme, ContainerSpec, EntryKind, build_madt, build_rsdp, build_xsdt};
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
        vec!["FACS: at 0x7ffe3010, offset 0x0: not 64-byte aligned (expected a multiple of 0x40)"]
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
    let mut x = build_xsdt(&SdtHeader::default(), &[FACP, APIC, MCFG, HPET, SSDT, dmar]).unwrap();
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
