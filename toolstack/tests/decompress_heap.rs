//! The heap each kernel decompressor takes, measured with a counting allocator (this test
//! binary's global allocator, `counting`, counts per thread the bytes live and the peak): zstd's must be
//! its decoding tables only, whatever window the frame declares (Linux's `zstd -22 --ultra`
//! declares 128 MiB).

use std::io::Write;
use std::process::{Command, Stdio};

use toolstack::kernel::Compression;
use toolstack::kernel::decompress::{self, ZSTD_STATE_BYTES};

mod counting;
use counting::peak_of;

fn zstd(args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("zstd")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().ok()?;
    w.join().ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

/// 3 MB of text-like data with long-range repeats.
fn sample() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut v = Vec::new();
    while v.len() < 3 << 20 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        if r.is_multiple_of(4) && v.len() > 4096 {
            let len = 8 + (r >> 8) as usize % 200;
            let from = (r >> 20) as usize % (v.len() - len);
            v.extend_from_within(from..from + len);
        } else {
            v.extend(
                std::iter::repeat_n(b"mov %rax, %rbx\n", 1 + (r >> 40) as usize % 3).flatten(),
            );
            v.push((r >> 56) as u8);
        }
    }
    v
}

#[test]
fn zstd_heap_is_its_tables_whatever_the_window() {
    let data = sample();
    for args in [&["-22", "--ultra", "-c"][..], &["-3", "--long=27", "-c"]] {
        let Some(mut p) = zstd(args, &data) else {
            eprintln!("SKIP: no zstd");
            return;
        };
        p.extend_from_slice(&(data.len() as u32).to_le_bytes());
        let mut out = vec![0u8; data.len()];
        let (n, peak) = peak_of(|| decompress::decompress_into(Compression::Zstd, &p, &mut out));
        assert_eq!(n, Ok(data.len()));
        assert!(out == data, "{args:?}");
        eprintln!("zstd {args:?}: peak heap {peak} B (tables {ZSTD_STATE_BYTES} B)");
        assert!(
            peak > 0 && peak as usize <= ZSTD_STATE_BYTES,
            "{args:?}: {peak} B"
        );
    }
}
