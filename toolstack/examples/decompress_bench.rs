//! Host benchmark of the kernel decompressors on the real Debian kernel: its original payload
//! and the same ELF recompressed as Linux would (gzip -9, zstd -22 --ultra, XZ with the x86 BCJ
//! filter and a 32 MiB dictionary), each decoded into one output slice, best of 5. Prints MB/s
//! of output and the peak heap each decoder took (a counting global allocator), then the
//! in-place load.
//!
//! `cargo run --release -p toolstack --example decompress_bench [VMLINUZ]`; without an argument
//! the kernel is `TOOLSTACK_TEST_VMLINUZ` or the `image` crate's cache
//! (`target/guest/<current>/vmlinuz`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use toolstack::kernel::decompress::{self, GZIP_STATE_BYTES, XZ_STATE_BYTES, ZSTD_STATE_BYTES};
use toolstack::kernel::{Compression, elf, locate_payload};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: `p` was allocated by `System` with `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn kernel_path() -> PathBuf {
    if let Some(p) = std::env::args_os()
        .nth(1)
        .or(std::env::var_os("TOOLSTACK_TEST_VMLINUZ"))
    {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let guest = target.join("guest");
    let v = std::fs::read_to_string(guest.join("current")).unwrap_or_else(|_| {
        eprintln!(
            "no kernel: give a bzImage path, set TOOLSTACK_TEST_VMLINUZ, or let `cargo image` \
             cache the guest under {}",
            guest.display()
        );
        std::process::exit(2)
    });
    guest.join(v.trim()).join("vmlinuz")
}

fn tool(cmd: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    w.join().unwrap().unwrap();
    assert!(out.status.success(), "{cmd} failed");
    out.stdout
}

/// `elf` compressed as Linux's build does, with its size appended (not for gzip), cached.
fn linux_payload(c: Compression, elf: &[u8], key: &str) -> Vec<u8> {
    let dir = std::env::temp_dir().join("toolstack-kernel-tests");
    let path = dir.join(format!("{key}-{}.payload", c.as_str()));
    if let Ok(b) = std::fs::read(&path) {
        return b;
    }
    eprintln!(
        "compressing with {} (cached in {})",
        c.as_str(),
        path.display()
    );
    let mut p = match c {
        Compression::Gzip => tool("gzip", &["-n", "-f", "-9", "-c"], elf),
        Compression::Xz => tool(
            "xz",
            &[
                "--check=crc32",
                "--threads=1",
                "--x86",
                "--lzma2=dict=32MiB",
                "-c",
            ],
            elf,
        ),
        _ => tool("zstd", &["-22", "--ultra", "-q", "-c"], elf),
    };
    if c != Compression::Gzip {
        p.extend_from_slice(&(elf.len() as u32).to_le_bytes());
    }
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(&path, &p);
    p
}

fn main() {
    let path = kernel_path();
    let img = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let bz = locate_payload(&img).expect("a bzImage");
    let original = &img[bz.offset..bz.offset + bz.len];
    let size = decompress::decompressed_size(bz.compression, original).unwrap();
    let mut elf = vec![0u8; decompress::output_room(bz.compression, original).unwrap()];
    let n = decompress::decompress_into(bz.compression, original, &mut elf).unwrap();
    assert_eq!(n, size);
    elf.truncate(n);
    let key = format!(
        "{}-{}",
        path.file_name().unwrap().to_string_lossy(),
        img.len()
    );
    println!(
        "kernel {}: {} payload {} bytes, ELF {} bytes",
        path.display(),
        bz.compression.as_str(),
        bz.len,
        n
    );
    println!(
        "decoder state: gzip DecompressorOxide {GZIP_STATE_BYTES} B, XzDecoder {XZ_STATE_BYTES} \
         B (+ {} B staging), zstd tables {ZSTD_STATE_BYTES} B",
        decompress::xz::SCRATCH
    );
    println!(
        "{:<6} {:>10} {:>8} {:>10} {:>12}",
        "format", "input", "ratio", "MB/s out", "peak heap"
    );
    for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
        let payload = if c == bz.compression {
            original.to_vec()
        } else {
            linux_payload(c, &elf, &key)
        };
        let room = decompress::output_room(c, &payload).unwrap();
        let mut out = vec![0u8; room];
        let mut best = f64::MAX;
        let mut peak = 0;
        for _ in 0..5 {
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let t = Instant::now();
            let got = decompress::decompress_into(c, &payload, &mut out).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            peak = peak.max(PEAK.load(Ordering::Relaxed) - base);
            assert!(out[..got] == elf[..], "{c:?} output differs");
        }
        println!(
            "{:<6} {:>10} {:>7.2}x {:>10.1} {:>10} B",
            c.as_str(),
            payload.len(),
            n as f64 / payload.len() as f64,
            n as f64 / best / 1e6,
            peak
        );
    }
    let base = elf::in_place_base(&elf).unwrap();
    let plan = elf::plan_in_place(&elf, base).unwrap();
    let mut guest = vec![0u8; plan.span as usize];
    guest[..n].copy_from_slice(&elf);
    let t = Instant::now();
    let k = elf::load_in_place(&mut guest, n, base).unwrap();
    println!(
        "load_in_place at {base:#x}: {} segments, {} moves, span {} B, {:.1} ms",
        k.segments.len(),
        plan.moves.iter().filter(|m| m.src != m.dst).count(),
        plan.span,
        t.elapsed().as_secs_f64() * 1e3
    );
}
