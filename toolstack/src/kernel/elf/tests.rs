//! Tests of the ELF reader.
use super::*;

#[test]
fn parses_a_pvh_kernel() {
    let k = build_test_kernel(0x100_0000, &[0x90; 100], 4096, 0x10);
    let p = parse(&k).unwrap();
    assert_eq!(p.entry, 0x100_0010);
    assert_eq!(p.segments.len(), 1);
    assert_eq!(p.start, 0x100_0000);
    assert_eq!(p.end, 0x100_0000 + 100 + 4096);
}

#[test]
fn rejects_hostile_kernels() {
    assert_eq!(parse(b"MZ"), Err(ElfError::NotElf));
    let good = build_test_kernel(0x100_0000, &[0x90; 100], 0, 0);
    // Truncated anywhere: an error, never a panic.
    for n in 0..good.len() {
        assert!(parse(&good[..n]).is_err(), "accepted a kernel cut at {n}");
    }
    // Entry outside the segments.
    let k = build_test_kernel(0x100_0000, &[0x90; 100], 0, 0x1000);
    assert_eq!(parse(&k), Err(ElfError::EntryOutsideSegments(0x100_1000)));
    // Segment above 4 GiB.
    let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
    k[64 + 24..64 + 32].copy_from_slice(&0xffff_ffff_f000u64.to_le_bytes());
    assert!(matches!(parse(&k), Err(ElfError::BadSegment { .. })));
    // filesz > memsz.
    let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
    k[64 + 40..64 + 48].copy_from_slice(&1u64.to_le_bytes());
    assert!(matches!(parse(&k), Err(ElfError::BadSegment { .. })));
    // Huge file size.
    let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
    k[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(parse(&k), Err(ElfError::BadSegment { .. })));
    // No PVH note: PT_NOTE turned into PT_NULL.
    let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
    k[120..124].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(parse(&k), Err(ElfError::NoPvhEntry { notes: 0, xen: 0 }));
    // Note with an absurd namesz.
    let mut k = build_test_kernel(0x100_0000, &[0x90; 16], 0, 0);
    let note_off = 64 + 112;
    k[note_off..note_off + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(parse(&k), Err(ElfError::NoPvhEntry { notes: 0, xen: 0 }));
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x1234_5678;
    let good = build_test_kernel(0x100_0000, &[0x90; 64], 64, 0);
    for _ in 0..3000 {
        let mut k = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % k.len();
            k[i] = (x >> 32) as u8;
        }
        let _ = parse(&k);
    }
}
