//! Host tests of the decompressors: each format on synthetic kernels compressed by the host's
//! tools as Linux compresses them, and on the real Debian kernel when it is cached (recompressed
//! where its format differs); cut at many points and at every zstd block; randomly mutated;
//! output slices too small; formats not supported. No input may panic.

use std::string::ToString;
use std::vec::Vec;
use std::{eprintln, format, vec};

use super::*;
use crate::kernel::testutil::synthetic_kernel;
use crate::kernel::testutil::{Rng, linux_payload, real_kernel, recompressed, run_tool};

const FORMATS: [Compression; 3] = [Compression::Gzip, Compression::Xz, Compression::Zstd];

/// Decodes `payload` into a fresh slice of its output room; the bytes past the output must be
/// left as they were.
fn decode(c: Compression, payload: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let room = output_room(c, payload)?;
    let mut out = vec![0xa5u8; room];
    let n = decompress_into(c, payload, &mut out)?;
    assert!(
        out[n..].iter().all(|&b| b == 0xa5),
        "{c:?} wrote past its output"
    );
    out.truncate(n);
    Ok(out)
}

#[test]
fn check_functions_match_known_values() {
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    let mut c = Crc32::new();
    c.update(b"1234");
    c.update(b"56789");
    assert_eq!(c.finish(), 0xcbf4_3926);
    assert_eq!(super::xxh64::xxh64(b""), 0xef46_db37_51d8_e999);
    assert_eq!(super::xxh64::xxh64(b"abc"), 0x44bc_2cf5_ad77_0999);
}

#[test]
fn round_trip_each_format() {
    let elf = synthetic_kernel(300_000);
    for c in FORMATS {
        let Some(payload) = linux_payload(c, &elf) else {
            continue;
        };
        assert_eq!(decompressed_size(c, &payload), Ok(elf.len()), "{c:?}");
        assert_eq!(decode(c, &payload).unwrap(), elf, "{c:?}");
        // The exact size is enough for gzip and zstd; XZ needs its dictionary's room.
        let room = output_room(c, &payload).unwrap();
        assert!(room >= elf.len() && room as u64 <= elf.len() as u64 * 3 / 2 + 4096);
    }
}

#[test]
fn xz_variants() {
    let elf = synthetic_kernel(200_000);
    let xz = |args: &[&str]| {
        let mut p = run_tool("xz", args, &elf)?;
        p.extend_from_slice(&(elf.len() as u32).to_le_bytes());
        Some(p)
    };
    // Default xz: CRC64, no BCJ, 8 MiB dictionary; and no check at all; and no size appended.
    for args in [
        &["-c"][..],
        &["-c", "--check=none", "--x86", "--lzma2=preset=6"],
        &["-9e", "-c"],
    ] {
        let Some(p) = xz(args) else { return };
        assert_eq!(decode(Compression::Xz, &p).unwrap(), elf, "{args:?}");
        let mut out = vec![0; output_room(Compression::Xz, &p).unwrap()];
        let bare = &p[..p.len() - 4];
        assert_eq!(
            decompress_into(Compression::Xz, bare, &mut out),
            Ok(elf.len())
        );
    }
    // SHA-256 check and several blocks: clear errors.
    let p = xz(&["-c", "--check=sha256"]).unwrap();
    let e = decode(Compression::Xz, &p).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
    let p = xz(&["-c", "--block-size=65536"]).unwrap();
    let e = decode(Compression::Xz, &p).unwrap_err();
    assert!(e.to_string().contains("more than one block"), "{e}");
}

#[test]
fn zstd_and_gzip_variants() {
    let elf = synthetic_kernel(200_000);
    for args in [
        &["-3", "-c"][..],
        &["-19", "--no-check", "-c"],
        &["--long=27", "-c"],
    ] {
        let Some(p) = run_tool("zstd", args, &elf) else {
            return;
        };
        // No size appended here: the output slice is the ELF's size.
        let mut out = vec![0u8; elf.len()];
        assert_eq!(
            decompress_into(Compression::Zstd, &p, &mut out),
            Ok(elf.len())
        );
        assert_eq!(out, elf, "{args:?}");
        // A slice much larger than the output: nothing past the output is needed.
        let mut big = vec![0u8; 64 << 20];
        assert_eq!(
            decompress_into(Compression::Zstd, &p, &mut big),
            Ok(elf.len())
        );
    }
    // A gzip header with a file name and a header CRC.
    let Some(g) = run_tool("gzip", &["-n", "-c"], &elf) else {
        return;
    };
    let mut h = g[..10].to_vec();
    h[3] |= 0x08 | 0x02;
    h.extend_from_slice(b"vmlinux\0");
    let c16 = (crc32(&h) & 0xffff) as u16;
    h.extend_from_slice(&c16.to_le_bytes());
    h.extend_from_slice(&g[10..]);
    assert_eq!(decode(Compression::Gzip, &h).unwrap(), elf);
    h[12] ^= 1;
    let e = decode(Compression::Gzip, &h).unwrap_err();
    assert!(e.to_string().contains("header CRC16"), "{e}");
}

/// Cuts `payload` at many points (every byte near both ends, every `step` bytes between, and
/// at `extra`): before the stream's end, always an error; never a panic.
fn cut_everywhere(c: Compression, payload: &[u8], stream_end: usize, step: usize, extra: &[usize]) {
    let n = payload.len();
    let mut cuts: Vec<usize> = (0..n.min(300)).collect();
    cuts.extend((300..n).step_by(step));
    cuts.extend(n.saturating_sub(300)..n);
    cuts.extend_from_slice(extra);
    let mut truncated = 0;
    let mut out = vec![0u8; output_room(c, payload).unwrap()];
    for &cut in &cuts {
        match decompress_into(c, &payload[..cut], &mut out) {
            Err(e) => {
                truncated += usize::from(e.kind == ErrorKind::Truncated);
                assert!(e.at <= cut, "{c:?} cut at {cut}: error at {}", e.at);
            }
            Ok(_) => assert!(cut >= stream_end, "{c:?} accepted a stream cut at {cut}"),
        }
    }
    eprintln!(
        "{c:?}: {} cuts, {truncated} reported as truncated",
        cuts.len()
    );
}

/// The offsets of a zstd frame's blocks.
fn zstd_blocks(p: &[u8]) -> Vec<usize> {
    let h = super::zstd::frame_header(p).unwrap();
    let mut at = h.len;
    let mut v = vec![];
    while at + 3 <= p.len() {
        v.push(at);
        let w = u32::from_le_bytes([p[at], p[at + 1], p[at + 2], 0]);
        let body = if (w >> 1) & 3 == 1 {
            1
        } else {
            (w >> 3) as usize
        };
        at += 3 + body;
        v.push(at - 1);
        v.push(at + 1);
        if w & 1 != 0 {
            break;
        }
    }
    v.retain(|&x| x <= p.len());
    v
}

#[test]
fn truncation_is_an_error_never_a_panic() {
    let elf = synthetic_kernel(100_000);
    for c in FORMATS {
        let Some(p) = linux_payload(c, &elf) else {
            continue;
        };
        let end = if c == Compression::Gzip {
            p.len()
        } else {
            p.len() - 4
        };
        let blocks = if c == Compression::Zstd {
            zstd_blocks(&p)
        } else {
            vec![]
        };
        cut_everywhere(c, &p, end, 61, &blocks);
    }
}

/// Flips random bits in random bytes: an error, or (a byte no check covers, like gzip's MTIME)
/// the right output; never a panic nor wrong output.
fn mutate(c: Compression, payload: &[u8], expect: &[u8], rounds: usize, seed: u64) -> usize {
    let mut r = Rng(seed);
    let room = output_room(c, payload).unwrap();
    let mut out = vec![0u8; room + 4096];
    let mut errors = 0;
    for i in 0..rounds {
        let mut p = payload.to_vec();
        for _ in 0..1 + r.below(4) {
            // Mostly near the start (headers, first blocks), sometimes anywhere.
            let at = if i % 2 == 0 {
                r.below(p.len().min(512))
            } else {
                r.below(p.len())
            };
            p[at] ^= 1 + r.below(255) as u8;
        }
        match decompress_into(c, &p, &mut out) {
            Ok(n) => assert_eq!(&out[..n], expect, "{c:?} round {i}: wrong output accepted"),
            Err(e) => {
                errors += 1;
                assert!(
                    e.at <= p.len(),
                    "{c:?}: error offset {} past the input",
                    e.at
                );
                let _ = e.to_string();
            }
        }
    }
    errors
}

#[test]
fn random_mutations_never_panic() {
    let elf = synthetic_kernel(24_000);
    for (k, c) in FORMATS.into_iter().enumerate() {
        let Some(p) = linux_payload(c, &elf) else {
            continue;
        };
        let errors = mutate(c, &p, &elf, 3000, 0x9e37_79b9 + k as u64);
        eprintln!("{c:?}: {errors} of 3000 mutated payloads refused");
        assert!(errors > 2500, "{c:?}: only {errors} mutations caught");
    }
}

#[test]
fn output_slice_too_small() {
    let elf = synthetic_kernel(100_000);
    for c in FORMATS {
        let Some(p) = linux_payload(c, &elf) else {
            continue;
        };
        for short in [1, 4096, elf.len() / 2] {
            let room = output_room(c, &p).unwrap() - short;
            let mut out = vec![0u8; room];
            let e = decompress_into(c, &p, &mut out).unwrap_err();
            assert!(
                matches!(e.kind, ErrorKind::OutputTooSmall { .. }),
                "{c:?} in {room}: {e}"
            );
            assert!(
                e.to_string()
                    .contains(&format!("output larger than {room}")),
                "{e}"
            );
        }
    }
}

#[test]
fn unsupported_formats_say_so() {
    for (c, name) in [
        (Compression::Bzip2, "bzip2"),
        (Compression::Lzma, "lzma"),
        (Compression::Lzo, "lzo"),
        (Compression::Lz4, "lz4"),
        (Compression::Unknown, "unknown"),
    ] {
        let e = decompress_into(c, b"BZh91AY&SY....", &mut [0u8; 64]).unwrap_err();
        assert_eq!(e.to_string(), format!("not supported: {name}"));
        assert_eq!(
            decompressed_size(c, &[0; 16]).unwrap_err().kind,
            ErrorKind::NotSupported
        );
    }
}

#[test]
fn errors_name_the_format_and_the_offset() {
    let elf = synthetic_kernel(50_000);
    let Some(g) = linux_payload(Compression::Gzip, &elf) else {
        return;
    };
    let e = decode(Compression::Gzip, &g[..1000]).unwrap_err();
    assert_eq!(e.to_string(), "gzip: truncated at byte 1000");
    let mut bad = g.clone();
    let n = bad.len();
    bad[n - 8] ^= 0xff; // the CRC32 in the trailer
    let e = decode(Compression::Gzip, &bad).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("gzip: CRC32 mismatch at {}", n - 8)),
        "{e}"
    );
    let Some(z) = linux_payload(Compression::Zstd, &elf) else {
        return;
    };
    let e = decode(Compression::Zstd, &z[..z.len() - 20]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("zstd: truncated at byte {}", z.len() - 20)
    );
    let Some(x) = linux_payload(Compression::Xz, &elf) else {
        return;
    };
    let mut bad = x.clone();
    bad[40] ^= 0x55;
    let e = decode(Compression::Xz, &bad).unwrap_err();
    assert!(e.to_string().starts_with("xz: "), "{e}");
    eprintln!("examples: {e}");
}

#[test]
fn real_kernel_each_format() {
    let Some((version, c, payload, elf)) = real_kernel() else {
        return;
    };
    eprintln!(
        "real kernel {version}: {} payload of {} bytes, ELF {} bytes",
        c.as_str(),
        payload.len(),
        elf.len()
    );
    assert_eq!(decompressed_size(c, &payload), Ok(elf.len()));
    assert!(
        decode(c, &payload).unwrap() == elf,
        "original {c:?} payload"
    );
    for other in FORMATS.into_iter().filter(|&o| o != c) {
        let Some(p) = recompressed(&version, other, &elf) else {
            continue;
        };
        let t = std::time::Instant::now();
        let out = decode(other, &p).unwrap();
        eprintln!(
            "{other:?}: {} bytes in {:?} (test profile)",
            out.len(),
            t.elapsed()
        );
        assert!(out == elf, "recompressed {other:?}");
    }
}

#[test]
fn real_kernel_truncated_and_mutated() {
    let Some((version, c, payload, elf)) = real_kernel() else {
        return;
    };
    // XZ and zstd find a cut before decoding (the footer / the block walk): every zstd block
    // boundary, many XZ cuts; gzip decodes up to the cut, so a few.
    for f in FORMATS {
        let p = if f == c {
            payload.clone()
        } else {
            match recompressed(&version, f, &elf) {
                Some(p) => p,
                None => continue,
            }
        };
        let end = if f == Compression::Gzip {
            p.len()
        } else {
            p.len() - 4
        };
        let (step, extra) = match f {
            Compression::Zstd => (p.len() / 50, zstd_blocks(&p)),
            Compression::Xz => (p.len() / 500, vec![]),
            _ => (p.len() / 8, vec![]),
        };
        cut_everywhere(f, &p, end, step.max(1), &extra);
        let errors = mutate(f, &p, &elf, 6, 77);
        eprintln!("{f:?}: {errors} of 6 mutations of the real kernel refused");
    }
}

#[test]
fn zstd_size_appended_that_lies() {
    let elf = synthetic_kernel(400_000);
    let Some(mut p) = linux_payload(Compression::Zstd, &elf) else {
        return;
    };
    let n = p.len();
    // A smaller size: the frame decodes, then the appended size does not match; never wrong data.
    p[n - 4..].copy_from_slice(&4096u32.to_le_bytes());
    let mut out = vec![0u8; elf.len()];
    match decompress_into(Compression::Zstd, &p, &mut out) {
        Ok(k) => assert_eq!(&out[..k], &elf[..]),
        Err(e) => eprintln!("lying size: {e}"),
    }
}

/// A longer mutation run (`cargo test --release -p toolstack -- --ignored fuzz`), iterations
/// from `TOOLSTACK_FUZZ_ROUNDS` (default 50 000 per format).
#[test]
#[ignore]
fn fuzz_mutations_long() {
    let rounds = std::env::var("TOOLSTACK_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let elf = synthetic_kernel(16_000);
    for (k, c) in FORMATS.into_iter().enumerate() {
        let Some(p) = linux_payload(c, &elf) else {
            continue;
        };
        let errors = mutate(c, &p, &elf, rounds, 0x5eed + k as u64);
        eprintln!("{c:?}: {errors} of {rounds} mutated payloads refused");
    }
}
