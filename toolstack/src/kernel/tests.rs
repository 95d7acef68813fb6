//! The kernel formats on built images: every compression magic, the setup header's fields,
//! truncated and randomly damaged headers.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn bzimage(version: u16, setup_sects: u8, payload: &[u8]) -> Vec<u8> {
    let sects = if setup_sects == 0 { 4 } else { setup_sects };
    let pm = (usize::from(sects) + 1) * 512;
    let mut b = vec![0u8; pm + 16 + payload.len()];
    b[bzimage::SETUP_SECTS] = setup_sects;
    b[0x1fe] = 0x55;
    b[0x1ff] = 0xaa;
    b[bzimage::HEADER_MAGIC..bzimage::HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
    b[bzimage::VERSION..bzimage::VERSION + 2].copy_from_slice(&version.to_le_bytes());
    b[bzimage::PAYLOAD_OFFSET..bzimage::PAYLOAD_OFFSET + 4].copy_from_slice(&16u32.to_le_bytes());
    b[bzimage::PAYLOAD_LENGTH..bzimage::PAYLOAD_LENGTH + 4]
        .copy_from_slice(&(payload.len() as u32).to_le_bytes());
    b[pm + 16..].copy_from_slice(payload);
    b
}

#[test]
fn kernel_formats() {
    // Each payload padded to the 8 bytes a compressed kernel needs at least.
    let cases: &[(&[u8], Compression)] = &[
        (&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0], Compression::Gzip),
        (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0], Compression::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0], Compression::Zstd),
        (&[0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0], Compression::Lz4),
        (b"BZh91AY&", Compression::Bzip2),
        (&[0x5d, 0, 0, 0x80, 0, 0, 0, 0], Compression::Lzma),
        (&[0x89, b'L', b'Z', b'O', 0, 0, 0, 0], Compression::Lzo),
        (b"????????", Compression::Unknown),
    ];
    for &(payload, c) in cases {
        for sects in [0u8, 27] {
            let img = bzimage(0x020f, sects, payload);
            let pm = (usize::from(if sects == 0 { 4 } else { sects }) + 1) * 512;
            assert_eq!(
                kernel_format(&img),
                KernelFormat::BzImage {
                    version: 0x020f,
                    payload: if c == Compression::Unknown {
                        Err(BzError::UnknownCompression {
                            offset: pm + 16,
                            head: payload[..6].try_into().unwrap(),
                        })
                    } else {
                        Ok(BzPayload {
                            protocol: 0x020f,
                            offset: pm + 16,
                            len: payload.len(),
                            compression: c,
                        })
                    }
                }
            );
        }
    }
    let f = kernel_format(&bzimage(0x020f, 27, &[0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0]));
    assert_eq!(
        format!("{f}"),
        "bzImage (boot protocol 2.15, zstd payload of 8 bytes at 0x3810)"
    );
    // Old protocol: no payload fields.
    assert_eq!(
        kernel_format(&bzimage(0x0207, 1, b"x")),
        KernelFormat::BzImage {
            version: 0x0207,
            payload: Err(BzError::OldProtocol(0x0207))
        }
    );
    assert_eq!(
        format!("{}", kernel_format(&bzimage(0x0207, 1, b"x"))),
        "bzImage (boot protocol 2.07; bzImage boot protocol 2.07 has no payload fields (2.08 \
         or later needed))"
    );
    // Payload past the end.
    let mut img = bzimage(0x020f, 1, b"\x1f\x8b");
    img.truncate(img.len() - 1);
    assert!(matches!(
        kernel_format(&img),
        KernelFormat::BzImage {
            payload: Err(BzError::PastEnd { .. }),
            ..
        }
    ));
    let elf32 = b"\x7fELF\x01\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x03\0";
    assert_eq!(
        kernel_format(elf32),
        KernelFormat::Elf {
            class: 32,
            machine: 3
        }
    );
    assert_eq!(format!("{}", kernel_format(elf32)), "ELF32 i386");
    assert_eq!(kernel_format(b""), KernelFormat::Unknown);
    assert_eq!(kernel_format(b"\x7fELF"), KernelFormat::Unknown);
    assert_eq!(kernel_format(&[0u8; 0x300]), KernelFormat::Unknown);
    assert_eq!(kernel_format(&[0u8; 0x204]), KernelFormat::Unknown);
}

#[test]
fn kernel_format_never_panics_on_random_input() {
    let mut x = 42u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = bzimage(0x020f, 2, &[0x1f, 0x8b, 0, 0]);
    for _ in 0..20_000 {
        let mut b = base.clone();
        for _ in 0..4 {
            let at = next() as usize % 0x260;
            b[at] = next() as u8;
        }
        let keep = next() as usize % (b.len() + 1);
        b.truncate(keep);
        let _ = kernel_format(&b);
    }
}

// ---- bzImage ----

fn bzimage_at(setup_sects: u8, rel: u32, payload: &[u8], protocol: u16) -> Vec<u8> {
    let pm = (usize::from(if setup_sects == 0 { 4 } else { setup_sects }) + 1) * 512;
    let mut img = vec![0u8; pm + rel as usize + payload.len()];
    img[0x1f1] = setup_sects;
    img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&protocol.to_le_bytes());
    img[0x248..0x24c].copy_from_slice(&rel.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img[pm + rel as usize..].copy_from_slice(payload);
    img
}

const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2, 3, 4, 5, 6];

#[test]
fn bzimage_payload_is_found() {
    let p = locate_payload(&bzimage_at(27, 0x2cc, XZ, 0x020f)).unwrap();
    assert_eq!(
        p,
        BzPayload {
            protocol: 0x020f,
            offset: 28 * 512 + 0x2cc,
            len: XZ.len(),
            compression: Compression::Xz
        }
    );
    // setup_sects 0 means 4.
    let p = locate_payload(&bzimage_at(0, 16, XZ, 0x0208)).unwrap();
    assert_eq!(p.offset, 5 * 512 + 16);
    let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let zst = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 9];
    assert_eq!(
        locate_payload(&bzimage_at(1, 0, &gz, 0x020f))
            .unwrap()
            .compression,
        Compression::Gzip
    );
    assert_eq!(
        locate_payload(&bzimage_at(1, 0, &zst, 0x020f))
            .unwrap()
            .compression,
        Compression::Zstd
    );
}

fn err(img: &[u8]) -> String {
    format!("{}", locate_payload(img).unwrap_err())
}

#[test]
fn bzimage_bad_headers_are_named() {
    let good = bzimage_at(3, 0x100, XZ, 0x020f);
    assert!(err(&[]).contains("too short"));
    assert!(err(&good[..0x24f]).contains("too short"));
    let mut b = good.clone();
    b[0x1fe] = 0;
    assert!(err(&b).contains("0xAA55"));
    let mut b = good.clone();
    b[0x202] = b'X';
    assert!(err(&b).contains("HdrS"));
    assert!(err(&bzimage_at(3, 0, XZ, 0x0207)).contains("2.07"));
    // Payload past the end: offset, length, and both at their maximum.
    for (rel, len) in [
        (0x100u32, 13u32),
        (u32::MAX, 12),
        (0x100, u32::MAX),
        (u32::MAX, u32::MAX),
    ] {
        let mut b = good.clone();
        b[0x248..0x24c].copy_from_slice(&rel.to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&len.to_le_bytes());
        assert!(
            err(&b).contains("past the end"),
            "{rel:x} {len:x}: {}",
            err(&b)
        );
    }
    // setup_sects so large the protected-mode part starts past the end.
    let mut b = good.clone();
    b[0x1f1] = 255;
    assert!(err(&b).contains("past the end"));
    assert!(err(&bzimage_at(3, 0, b"LZMA????", 0x020f)).contains("no compression this code knows"));
    assert!(err(&bzimage_at(3, 0, &XZ[..6], 0x020f)).contains("too short"));
    // Every truncation of a good image is an error, never a panic.
    for n in 0..good.len() {
        assert!(locate_payload(&good[..n]).is_err(), "{n}");
    }
    assert!(locate_payload(&good).is_ok());
}

#[test]
fn bzimage_random_headers_never_panic() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let good = bzimage_at(3, 0x100, XZ, 0x020f);
    for _ in 0..5000 {
        let mut b = good.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = [0x1f1, 0x206, 0x207, 0x248, 0x249, 0x24b, 0x24c, 0x24f][next() as usize % 8];
            b[at] = next() as u8;
        }
        b.truncate(next() as usize % (good.len() + 1));
        if let Ok(p) = locate_payload(&b) {
            assert!(p.offset + p.len <= b.len());
        }
    }
}
