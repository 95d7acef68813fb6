//! Tests of `build.rs`.

use super::*;
use crate::madt::{FLAG_ONLINE_CAPABLE, LOCAL_X2APIC};
use crate::{checksum, parse_xsdt_entries_any_signature};

/// A QEMU q35-style native MADT, written out by hand in QEMU's order: 2 CPUs (type 0), IO
/// APIC 0 at 0xFEC00000, the five ISOs QEMU writes, a Local APIC NMI on LINT1 for all
/// processors. Revision 3, PCAT_COMPAT.
pub(crate) fn native_madt() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"APIC");
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(&[3, 0]);
    t.extend_from_slice(b"BOCHS BXPC    ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
    t.extend_from_slice(&[0, 8, 1, 1, 1, 0, 0, 0]);
    t.extend_from_slice(&[1, 12, 0, 0, 0x00, 0x00, 0xC0, 0xFE, 0, 0, 0, 0]);
    t.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    for irq in [5u8, 9, 10, 11] {
        t.extend_from_slice(&[2, 10, 0, irq, irq, 0, 0, 0, 0x0D, 0]);
    }
    t.extend_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
    crate::finish_table(&mut t).unwrap();
    t
}

/// The MADT Xen 4.17 crafts for a PVH dom0 on that host, written out by hand from the
/// layout in the reference (§4), not through the builder.
fn xen_golden(vcpus: u32) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"APIC");
    t.extend_from_slice(&[0; 4]); // length
    t.push(3); // min(3, 4)
    t.push(0); // checksum
    t.extend_from_slice(b"BOCHS BXPC    ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&[0x00, 0x00, 0xE0, 0xFE]); // LAPIC 0xFEE00000
    t.extend_from_slice(&[0, 0, 0, 0]); // flags
    t.extend_from_slice(&[1, 12, 0, 0, 0x00, 0x00, 0xC0, 0xFE, 0, 0, 0, 0]);
    for i in 0..vcpus {
        t.extend_from_slice(&[9, 16, 0, 0]);
        t.extend_from_slice(&(2 * i).to_le_bytes());
        t.extend_from_slice(&[1, 0, 0, 0]);
        t.extend_from_slice(&i.to_le_bytes());
    }
    t.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    for irq in [5u8, 9, 10, 11] {
        t.extend_from_slice(&[2, 10, 0, irq, irq, 0, 0, 0, 0x0D, 0]);
    }
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    t[9] = 0u8.wrapping_sub(checksum(&t));
    t
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn xen_dom0_layout_golden_bytes() {
    let host = MadtSummary::parse(&native_madt()).unwrap();
    assert!(host.problems.is_empty(), "{:?}", host.problems);
    for vcpus in [1u32, 2, 4] {
        let built = build_madt(&ContainerSpec::xen_pvh_dom0(&host, vcpus)).unwrap();
        assert_eq!(hex(&built), hex(&xen_golden(vcpus)), "{vcpus} vCPUs");
        assert_eq!(built.len(), 44 + 12 + 16 * vcpus as usize + 50);
        assert!(compare_madt(&xen_golden(vcpus), &built).is_empty());
    }
    // The literal bytes for one vCPU (length 0x7a), for anyone porting this.
    let one = build_madt(&ContainerSpec::xen_pvh_dom0(&host, 1)).unwrap();
    assert_eq!(
        hex(&one),
        concat!(
            "415049437a000000", // "APIC", length 0x7a
            "03",               // revision
            "80",               // checksum
            "424f43485320",     // "BOCHS "
            "4258504320202020", // "BXPC    "
            "01000000",
            "42585043", // "BXPC"
            "01000000",
            "0000e0fe", // 0xFEE00000
            "00000000", // flags
            "010c00000000c0fe00000000",
            "091000000000000001000000", /* x2APIC id 0, enabled */
            "00000000",                 // uid 0
            "020a0000020000000000",
            "020a0005050000000d00",
            "020a0009090000000d00",
            "020a000a0a0000000d00",
            "020a000b0b0000000d00",
        )
    );
    // 4 vCPUs: ids 0, 2, 4, 6.
    let s = MadtSummary::parse(&xen_golden(4)).unwrap();
    assert_eq!(s.apic_ids, vec![0, 2, 4, 6]);
    assert_eq!((s.x2apic_entries, s.lapic_entries), (4, 0));
}

#[test]
fn xen_revision_is_capped_at_4() {
    let mut native = native_madt();
    native[8] = 6;
    crate::finish_table(&mut native).unwrap();
    let host = MadtSummary::parse(&native).unwrap();
    let built = build_madt(&ContainerSpec::xen_pvh_dom0(&host, 2)).unwrap();
    assert_eq!(built[8], 4);
}

#[test]
fn builder_is_stable_and_parses_back() {
    let host = MadtSummary::parse(&native_madt()).unwrap();
    let spec = ContainerSpec::from_host_madt(&host, 3, ApicIdScheme::TimesTwo);
    let a = build_madt(&spec).unwrap();
    let b = build_madt(&spec.clone()).unwrap();
    assert_eq!(a, b);
    let s = MadtSummary::parse(&a).unwrap();
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.apic_ids, vec![0, 2, 4]);
    assert_eq!((s.lapic_entries, s.x2apic_entries), (3, 0));
    assert_eq!(s.ioapics, host.ioapics);
    assert_eq!(s.override_entries, host.override_entries);
    assert_eq!(s.nmis, host.nmis);
    assert_eq!(s.flags, 1);
    assert_eq!(s.header.oem_id, *b"BOCHS ");
    // A native MADT rebuilt from its own summary lists the same entries; QEMU puts the
    // CPUs first, the builder the IO APICs.
    let same = ContainerSpec::from_host_madt(&host, 2, ApicIdScheme::Identity);
    let rebuilt = build_madt(&same).unwrap();
    let d = compare_madt_labeled(&native_madt(), "native", &rebuilt, "built");
    assert_eq!(
        d,
        vec!["order: IO APIC id 0 moved: entry #2 in native, #0 in built"]
    );
}

#[test]
fn entry_kinds() {
    let spec = |n, scheme, kind| {
        let mut s = ContainerSpec::new(n, scheme);
        s.entries = kind;
        s
    };
    // Auto: ids up to 254 give type 0.
    let t = build_madt(&spec(128, ApicIdScheme::TimesTwo, EntryKind::Auto)).unwrap();
    assert_eq!(t[44], 0);
    // Auto: id 256 needs x2APIC.
    let t = build_madt(&spec(129, ApicIdScheme::TimesTwo, EntryKind::Auto)).unwrap();
    assert_eq!(t[44], LOCAL_X2APIC);
    let s = MadtSummary::parse(&t).unwrap();
    assert_eq!(s.x2apic_entries, 129);
    assert_eq!(*s.apic_ids.last().unwrap(), 256);
    // Lapic forced with a too large id.
    assert_eq!(
        build_madt(&spec(129, ApicIdScheme::TimesTwo, EntryKind::Lapic)),
        Err(BuildError::BadApicId {
            vcpu: 128,
            id: 256,
            why: "does not fit a Local APIC entry (at most 0xfe)"
        })
    );
    assert!(matches!(
        build_madt(&spec(1, ApicIdScheme::List(vec![0xFF]), EntryKind::Lapic)),
        Err(BuildError::BadApicId { id: 0xFF, .. })
    ));
    assert_eq!(
        build_madt(&spec(
            256,
            ApicIdScheme::List((0..256).map(|i| i % 200 + i / 200 * 1000).collect()),
            EntryKind::Lapic
        )),
        Err(BuildError::UidTooLarge { vcpus: 256 })
    );
    // X2apic forced with small ids.
    let t = build_madt(&spec(2, ApicIdScheme::Identity, EntryKind::X2apic)).unwrap();
    assert_eq!(MadtSummary::parse(&t).unwrap().apic_ids, vec![0, 1]);
    // Lists.
    let t = build_madt(&spec(
        3,
        ApicIdScheme::List(vec![7, 3, 0x1_0000]),
        EntryKind::Auto,
    ))
    .unwrap();
    assert_eq!(
        MadtSummary::parse(&t).unwrap().apic_ids,
        vec![7, 3, 0x1_0000]
    );
    assert_eq!(
        build_madt(&spec(3, ApicIdScheme::List(vec![7, 3]), EntryKind::Auto)),
        Err(BuildError::ApicIdCount { vcpus: 3, ids: 2 })
    );
    assert_eq!(
        build_madt(&spec(3, ApicIdScheme::List(vec![7, 3, 7]), EntryKind::Auto)),
        Err(BuildError::DuplicateApicId {
            id: 7,
            vcpus: (0, 2)
        })
    );
    assert!(matches!(
        build_madt(&spec(
            1,
            ApicIdScheme::List(vec![u32::MAX]),
            EntryKind::X2apic
        )),
        Err(BuildError::BadApicId { .. })
    ));
    assert_eq!(
        build_madt(&spec(0, ApicIdScheme::Identity, EntryKind::Auto)),
        Err(BuildError::NoVcpus)
    );
    assert!(matches!(
        build_madt(&spec(u32::MAX, ApicIdScheme::TimesTwo, EntryKind::Auto)),
        Err(BuildError::TooManyVcpus { .. })
    ));
    // The most vCPUs allowed still builds.
    let t = build_madt(&spec(MAX_VCPUS, ApicIdScheme::TimesTwo, EntryKind::Auto)).unwrap();
    assert_eq!(t.len(), 44 + 16 * MAX_VCPUS as usize);
}

#[test]
fn nmi_entry_types() {
    let mut s = ContainerSpec::new(2, ApicIdScheme::Identity);
    s.nmis = vec![
        Nmi::Source { flags: 5, gsi: 3 },
        Nmi::Local {
            uid: None,
            flags: 0,
            lint: 1,
        },
        Nmi::Local {
            uid: Some(1),
            flags: 0xD,
            lint: 0,
        },
        Nmi::Local {
            uid: Some(300),
            flags: 0,
            lint: 1,
        },
    ];
    let sum = MadtSummary::parse(&build_madt(&s).unwrap()).unwrap();
    let types: Vec<u8> = sum.entries.iter().map(|e| e.entry.entry_type()).collect();
    assert_eq!(types, vec![0, 0, 3, 4, 4, 0xA]);
    assert_eq!(sum.nmis, s.nmis);
    s.entries = EntryKind::X2apic;
    let sum = MadtSummary::parse(&build_madt(&s).unwrap()).unwrap();
    let types: Vec<u8> = sum.entries.iter().map(|e| e.entry.entry_type()).collect();
    assert_eq!(types, vec![9, 9, 3, 0xA, 0xA, 0xA]);
    assert_eq!(sum.nmis, s.nmis);
}

#[test]
fn xsdt_and_rsdp() {
    let h = SdtHeader {
        oem_id: *b"BOCHS ",
        oem_table_id: *b"BXPC    ",
        signature: *b"RSDT",
        revision: 9,
        ..SdtHeader::default()
    };
    let x = build_xsdt(&h, &[0x1000, 0x2_0000_0000, 0x3000]).unwrap();
    assert_eq!(x.len(), 36 + 24);
    let parsed = SdtHeader::parse(&x).unwrap();
    assert_eq!((&parsed.signature, parsed.revision), (b"XSDT", 1));
    assert_eq!(parsed.oem_id, *b"BOCHS ");
    assert_eq!(
        parse_xsdt_entries(&x).unwrap(),
        vec![0x1000, 0x2_0000_0000, 0x3000]
    );
    assert_eq!(build_xsdt(&h, &[]).unwrap().len(), 36);

    let r = build_rsdp(0x07F6_0F3A, *b"Xen\0\0\0");
    let p = Rsdp::parse(&r).unwrap();
    assert_eq!(p.revision, 2);
    assert_eq!(p.rsdt_address, 0);
    assert_eq!(p.xsdt_address, Some(0x07F6_0F3A));
    assert_eq!(checksum(&r[..20]), 0);
    assert_eq!(checksum(&r), 0);
    assert_eq!(build_rsdp(0x07F6_0F3A, *b"Xen\0\0\0"), r);
}

#[test]
fn replace_madt_in_xsdt() {
    let x = build_xsdt(&SdtHeader::default(), &[0x1000, 0x2000, 0x1000]).unwrap();
    let y = replace_in_xsdt(&x, 0x1000, 0xABC0).unwrap();
    assert_eq!(
        parse_xsdt_entries(&y).unwrap(),
        vec![0xABC0, 0x2000, 0xABC0]
    );
    assert_eq!(y.len(), x.len());
    // Trailing bytes are dropped.
    let mut longer = x.clone();
    longer.extend_from_slice(&[0xFF; 5]);
    assert_eq!(replace_in_xsdt(&longer, 0x1000, 0xABC0).unwrap(), y);
    assert_eq!(
        replace_in_xsdt(&x, 0x5000, 1),
        Err(BuildError::NotFound { addr: 0x5000 })
    );
    let mut bad = x.clone();
    bad[40] ^= 1;
    assert!(matches!(
        replace_in_xsdt(&bad, 0x1000, 1),
        Err(BuildError::Acpi(AcpiError::BadChecksum { .. }))
    ));
    // Xen 4.17's IVT-signature XSDT is refused, and can be rebuilt instead.
    let mut ivt = x.clone();
    ivt[..4].copy_from_slice(&[0x53, 0xFF, 0x00, 0xF0]);
    crate::finish_table(&mut ivt).unwrap();
    assert!(matches!(
        replace_in_xsdt(&ivt, 0x1000, 1),
        Err(BuildError::Acpi(AcpiError::BadSignature { .. }))
    ));
    let (mut e, _) = parse_xsdt_entries_any_signature(&ivt).unwrap();
    e[0] = 1;
    let fixed = build_xsdt(&SdtHeader::parse(&ivt).unwrap(), &e).unwrap();
    assert_eq!(parse_xsdt_entries(&fixed).unwrap(), vec![1, 0x2000, 0x1000]);
}

#[test]
fn compare_reports_each_difference() {
    let host = MadtSummary::parse(&native_madt()).unwrap();
    let xen = build_madt(&ContainerSpec::xen_pvh_dom0(&host, 4)).unwrap();
    // OEM fields and checksum do not matter.
    let mut other_oem = xen.clone();
    other_oem[10..16].copy_from_slice(b"OTHER ");
    crate::finish_table(&mut other_oem).unwrap();
    assert!(compare_madt(&xen, &other_oem).is_empty());

    // Type 0 entries instead of type 9, identity ids, PCAT_COMPAT, other LAPIC address.
    let mut spec = ContainerSpec::xen_pvh_dom0(&host, 4);
    spec.entries = EntryKind::Lapic;
    spec.apic_id = ApicIdScheme::List(vec![0, 2, 4, 5]);
    spec.flags = 1;
    spec.lapic_addr = 0xFEE1_0000;
    let d = compare_madt_labeled(&xen, "xen", &build_madt(&spec).unwrap(), "built");
    assert_eq!(
        d,
        vec![
            "header: local APIC address 0xfee00000 in xen, 0xfee10000 in built",
            "header: flags 0x0 in xen, 0x1 in built",
            "processor uid 0: type 9 (Local x2APIC) in xen (entry #1 at 0x38), 0 (Local \
                 APIC) in built (entry #1 at 0x38)",
            "processor uid 1: type 9 (Local x2APIC) in xen (entry #2 at 0x48), 0 (Local \
                 APIC) in built (entry #2 at 0x40)",
            "processor uid 2: type 9 (Local x2APIC) in xen (entry #3 at 0x58), 0 (Local \
                 APIC) in built (entry #3 at 0x48)",
            "processor uid 3: type 9 (Local x2APIC) in xen (entry #4 at 0x68), 0 (Local \
                 APIC) in built (entry #4 at 0x50)",
            "processor uid 3: apic id 0x6 in xen (entry #4 at 0x68), 0x5 in built (entry #4 \
                 at 0x50)",
        ]
    );

    // Missing, extra, changed flags and moved entries.
    let mut spec = ContainerSpec::xen_pvh_dom0(&host, 4);
    spec.apic_id = ApicIdScheme::List(vec![0, 2, 4, 6]);
    spec.overrides.swap(0, 2);
    spec.overrides.pop();
    spec.nmis.push(Nmi::Source { flags: 0, gsi: 7 });
    spec.revision = 5;
    let mut b = build_madt(&spec).unwrap();
    // Mark uid 1 online-capable instead of enabled.
    let at = 44 + 12 + 16 + 8;
    b[at..at + 4].copy_from_slice(&FLAG_ONLINE_CAPABLE.to_le_bytes());
    crate::finish_table(&mut b).unwrap();
    let d = compare_madt(&xen, &b);
    assert_eq!(
        d,
        vec![
            "header: revision 3 in a, 5 in b",
            "processor uid 1: flags 0x1 in a (entry #2 at 0x48), 0x2 in b (entry #2 at 0x48)",
            "only in a: entry #9 at 0xa0: type 2 (Interrupt Source Override) bus 0 source \
                 11 gsi 11 flags 0xd",
            "only in b: entry #9 at 0xa0: type 3 (NMI Source) gsi 7 flags 0x0",
            "order: override of bus 0 IRQ 0 moved: entry #5 in a, #7 in b",
            "order: override of bus 0 IRQ 5 moved: entry #6 in a, #6 in b",
        ]
    );

    // Broken tables.
    let mut broken = xen.clone();
    broken[20] ^= 1;
    let d = compare_madt(&xen, &broken);
    assert_eq!(d.len(), 1);
    assert!(
        d[0].starts_with("b: does not parse: APIC: checksum"),
        "{d:?}"
    );
    let d = compare_madt(&[], &[1, 2]);
    assert_eq!(d.len(), 2);
    // Entry problems show up.
    let mut dup = ContainerSpec::new(2, ApicIdScheme::Identity);
    dup.entries = EntryKind::X2apic;
    let mut t = build_madt(&dup).unwrap();
    t[44 + 16 + 4] = 0; // second CPU's id 1 -> 0
    crate::finish_table(&mut t).unwrap();
    let d = compare_madt(&build_madt(&dup).unwrap(), &t);
    assert_eq!(
        d,
        vec![
            "b: APIC: APIC id 0x0 appears in 2 enabled entries (at offsets 0x2c, 0x3c; \
                 expected each id once)",
            "processor uid 1: apic id 0x1 in a (entry #1 at 0x3c), 0x0 in b (entry #1 at \
                 0x3c)",
        ]
    );
}

#[test]
fn longest_increasing_run() {
    assert_eq!(longest_increasing(&[]), Vec::<usize>::new());
    assert_eq!(longest_increasing(&[0, 1, 2]), vec![0, 1, 2]);
    assert_eq!(longest_increasing(&[2, 0, 1]), vec![1, 2]);
    assert_eq!(longest_increasing(&[3, 1, 2, 0, 4]).len(), 3);
}

#[test]
fn compare_random_tables_never_panics() {
    let mut state = 0xDEAD_BEEF_1234_5678u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base = native_madt();
    for _ in 0..500 {
        let mut a = base.clone();
        let mut b = base.clone();
        for t in [&mut a, &mut b] {
            for _ in 0..(next() % 6) {
                let i = 44 + (next() as usize) % (t.len() - 44);
                t[i] = next() as u8;
            }
            crate::finish_table(t).unwrap();
        }
        let _ = compare_madt(&a, &b);
        // A table compared with itself differs only by its own problems, listed twice.
        let problems = MadtSummary::parse(&a).unwrap().problems.len();
        assert_eq!(compare_madt(&a, &a).len(), 2 * problems);
    }
}
