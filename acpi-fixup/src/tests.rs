//! Tests of `lib.rs`.

use super::*;

fn fix_checksum(bytes: &mut [u8], at: usize, len: usize) {
    bytes[at] = 0;
    bytes[at] = 0u8.wrapping_sub(checksum(&bytes[..len]));
}

/// An RSDP like the one Xen crafts for a PVH dom0 (revision 2, OEM "Xen").
fn rsdp_v2(xsdt: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RSD PTR ");
    b.push(0);
    b.extend_from_slice(b"Xen\0\0\0");
    b.push(2);
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&36u32.to_le_bytes());
    b.extend_from_slice(&xsdt.to_le_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    fix_checksum(&mut b, 8, 20);
    fix_checksum(&mut b, 32, 36);
    b
}

fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(sig);
    b.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
    b.push(1);
    b.push(0);
    b.extend_from_slice(b"Xen\0\0\0");
    b.extend_from_slice(b"HVM\0\0\0\0\0");
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(b"HVML");
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(body);
    let len = b.len();
    fix_checksum(&mut b, 9, len);
    b
}

/// The XSDT Xen 4.17 built for a PVH dom0 on QEMU/SeaBIOS (seen in a real run): its
/// signature and OEM fields are the IVT bytes at address 0, length and checksum are right.
#[test]
fn xen_4_17_xsdt_with_ivt_signature() {
    let mut body = Vec::new();
    for e in [0x0406_0f76u64, 0x3ffe_213d, 0x3ffe_22e9] {
        body.extend_from_slice(&e.to_le_bytes());
    }
    let mut t = sdt(b"XSDT", &body);
    t[0..4].copy_from_slice(&[0x53, 0xff, 0x00, 0xf0]);
    let len = t.len();
    fix_checksum(&mut t, 9, len);
    assert!(matches!(
        parse_xsdt_entries(&t),
        Err(AcpiError::BadSignature { .. })
    ));
    let (e, sig) = parse_xsdt_entries_any_signature(&t).unwrap();
    assert_eq!(e, [0x0406_0f76, 0x3ffe_213d, 0x3ffe_22e9]);
    assert_eq!(sig, [0x53, 0xff, 0x00, 0xf0]);
    // Still no leniency about the checksum or the length.
    t[40] ^= 1;
    assert!(matches!(
        parse_xsdt_entries_any_signature(&t),
        Err(AcpiError::BadChecksum { .. })
    ));
    assert!(parse_xsdt_entries_any_signature(&t[..30]).is_err());
}

#[test]
fn good_rsdp_v2() {
    let b = rsdp_v2(0x7f60f3a);
    let r = Rsdp::parse(&b).unwrap();
    assert_eq!(r.revision, 2);
    assert_eq!(&r.oem_id, b"Xen\0\0\0");
    assert_eq!(r.length, 36);
    assert_eq!(r.xsdt_address, Some(0x7f60f3a));
    assert_eq!(r.root_table(), RootTable::Xsdt(0x7f60f3a));
    // Longer buffers are fine.
    let mut longer = b.clone();
    longer.extend_from_slice(&[0xff; 10]);
    assert_eq!(Rsdp::parse(&longer), Ok(r));
}

#[test]
fn good_rsdp_v1() {
    let mut b = rsdp_v2(0);
    b.truncate(20);
    b[15] = 0;
    b[16..20].copy_from_slice(&0xe1000u32.to_le_bytes());
    fix_checksum(&mut b, 8, 20);
    let r = Rsdp::parse(&b).unwrap();
    assert_eq!((r.revision, r.length, r.xsdt_address), (0, 20, None));
    assert_eq!(r.root_table(), RootTable::Rsdt(0xe1000));
    // A v2 RSDP with a zero XSDT address falls back to the RSDT.
    let mut b = rsdp_v2(0);
    b[16..20].copy_from_slice(&0xe1000u32.to_le_bytes());
    fix_checksum(&mut b, 8, 20);
    fix_checksum(&mut b, 32, 36);
    assert_eq!(
        Rsdp::parse(&b).unwrap().root_table(),
        RootTable::Rsdt(0xe1000)
    );
}

#[test]
fn broken_rsdps() {
    let good = rsdp_v2(0x1000);
    for len in 0..20 {
        assert!(
            matches!(
                Rsdp::parse(&good[..len]),
                Err(AcpiError::Truncated { needed: 20, .. })
            ),
            "{len}"
        );
    }
    let err = Rsdp::parse(&good[..30]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "RSDP: truncated at offset 0x1e: needs 0x24 bytes, only 0x1e available"
    );

    let mut b = good.clone();
    b[0] = b'r';
    assert_eq!(
        Rsdp::parse(&b).unwrap_err().to_string(),
        "RSDP: bad signature at offset 0x0 (expected \"RSD PTR \")"
    );

    let mut b = good.clone();
    b[10] ^= 1;
    let err = Rsdp::parse(&b).unwrap_err();
    assert_eq!(
        err,
        AcpiError::BadChecksum {
            table: TableId::Rsdp,
            len: 20,
            sum: 0xff,
            checksum_offset: 8
        }
    );
    assert_eq!(
        err.to_string(),
        "RSDP: checksum over bytes [0x0, 0x14) sums to 0xff, not 0 (checksum byte at offset 0x8)"
    );

    // Extended checksum broken (the first one still good).
    let mut b = good.clone();
    b[24] ^= 0x10;
    let err = Rsdp::parse(&b).unwrap_err();
    assert!(matches!(
        err,
        AcpiError::BadChecksum {
            len: 36,
            checksum_offset: 32,
            ..
        }
    ));

    // Length lies: too small, and beyond the buffer.
    for (length, expect_trunc) in [(0u32, false), (35, false), (37, true), (u32::MAX, true)] {
        let mut b = good.clone();
        b[20..24].copy_from_slice(&length.to_le_bytes());
        fix_checksum(&mut b, 8, 20);
        let err = Rsdp::parse(&b).unwrap_err();
        if expect_trunc {
            assert!(
                matches!(err, AcpiError::Truncated { offset: 36, .. }),
                "{err:?}"
            );
        } else {
            assert_eq!(
                err,
                AcpiError::BadLength {
                    table: TableId::Rsdp,
                    offset: 20,
                    length,
                    min: 36
                }
            );
        }
    }
}

#[test]
fn good_sdt_and_xsdt() {
    let mut body = Vec::new();
    for addr in [0x7f60f16u64, 0x7f60fa2, 0] {
        body.extend_from_slice(&addr.to_le_bytes());
    }
    let xsdt = sdt(b"XSDT", &body);
    let h = SdtHeader::parse(&xsdt).unwrap();
    assert_eq!(&h.signature, b"XSDT");
    assert_eq!(h.length, 60);
    assert_eq!(h.revision, 1);
    assert_eq!(&h.oem_id, b"Xen\0\0\0");
    assert_eq!(&h.oem_table_id, b"HVM\0\0\0\0\0");
    assert_eq!(&h.creator_id, b"HVML");
    assert_eq!(h.body(&xsdt).len(), 24);
    assert_eq!(parse_xsdt_entries(&xsdt), Ok(vec![0x7f60f16, 0x7f60fa2, 0]));

    // Unaligned: the same table at an odd offset in a buffer.
    let mut buf = vec![0u8; 3];
    buf.extend_from_slice(&xsdt);
    assert_eq!(
        parse_xsdt_entries(&buf[3..]),
        Ok(vec![0x7f60f16, 0x7f60fa2, 0])
    );

    // Empty XSDT.
    assert_eq!(parse_xsdt_entries(&sdt(b"XSDT", &[])), Ok(vec![]));

    let mut body = Vec::new();
    for addr in [0xe1000u32, 0xe2000] {
        body.extend_from_slice(&addr.to_le_bytes());
    }
    assert_eq!(
        parse_rsdt_entries(&sdt(b"RSDT", &body)),
        Ok(vec![0xe1000, 0xe2000])
    );
}

#[test]
fn broken_sdts() {
    let good = sdt(b"APIC", &[1, 2, 3, 4]);
    let err = SdtHeader::parse(&good[..35]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "APIC: truncated at offset 0x23: needs 0x24 bytes, only 0x23 available"
    );
    let err = SdtHeader::parse(&good[..2]).unwrap_err();
    assert_eq!(
        err,
        AcpiError::Truncated {
            table: TableId::Sdt(*b"AP\0\0"),
            offset: 2,
            needed: 36,
            available: 2
        }
    );
    assert!(
        err.to_string().starts_with("AP\\x00\\x00: truncated"),
        "{err}"
    );
    assert!(SdtHeader::parse(&[]).is_err());
    // Table longer than the buffer.
    let err = SdtHeader::parse(&good[..39]).unwrap_err();
    assert_eq!(
        err,
        AcpiError::Truncated {
            table: TableId::Sdt(*b"APIC"),
            offset: 39,
            needed: 40,
            available: 39
        }
    );
    // Length lies.
    for length in [0u32, 35, 41, u32::MAX] {
        let mut b = good.clone();
        b[4..8].copy_from_slice(&length.to_le_bytes());
        fix_checksum(&mut b, 9, 36);
        let err = SdtHeader::parse(&b).unwrap_err();
        if length < 36 {
            assert_eq!(
                err.to_string(),
                format!(
                    "APIC: length field at offset 0x4 says {length:#x}, less than the 0x24-byte fixed part"
                )
            );
        } else {
            assert!(matches!(err, AcpiError::Truncated { .. }), "{err:?}");
        }
    }
    // Checksum covers the body too.
    let mut b = good.clone();
    b[37] = 0x42;
    let err = SdtHeader::parse(&b).unwrap_err();
    assert!(matches!(
        err,
        AcpiError::BadChecksum {
            len: 40,
            checksum_offset: 9,
            ..
        }
    ));
    assert!(
        err.to_string()
            .starts_with("APIC: checksum over bytes [0x0, 0x28)"),
        "{err}"
    );
    // Wrong table for the entries parser; garbage signature shown escaped.
    assert_eq!(
        parse_xsdt_entries(&good).unwrap_err().to_string(),
        "APIC: bad signature at offset 0x0 (expected \"XSDT\")"
    );
    let weird = sdt(&[0xff, b'S', b'D', 0x01], &[]);
    assert_eq!(
        parse_xsdt_entries(&weird).unwrap_err().to_string(),
        "\\xffSD\\x01: bad signature at offset 0x0 (expected \"XSDT\")"
    );
}

#[test]
fn ragged_xsdt() {
    let xsdt = sdt(b"XSDT", &[0; 12]);
    let err = parse_xsdt_entries(&xsdt).unwrap_err();
    assert_eq!(
        err,
        AcpiError::RaggedEntries {
            table: TableId::Sdt(*b"XSDT"),
            offset: 36,
            len: 12,
            entry_size: 8
        }
    );
    assert_eq!(
        err.to_string(),
        "XSDT: entries at offset 0x24 are 0xc bytes, not a multiple of 8"
    );
    assert!(parse_rsdt_entries(&sdt(b"RSDT", &[0; 6])).is_err());
}
