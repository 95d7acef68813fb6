//! Tests of `madt.rs`.

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
        vec!["APIC: entry at offset 0x2c (type 0, Local APIC) has length 1, less than 2; stopped"]
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
