//! Test helpers: compressing with the host's tools (the tests skip with a printed reason when
//! one is missing, as no Rust compressor is a dependency), the real Debian kernel found where
//! the `image` crate caches it, synthetic kernels, a seeded generator.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::string::String;
use std::vec::Vec;
use std::{eprintln, fs, io::Write, thread};

use super::Compression;
use super::elf::build_test_kernel;

/// Runs `tool args` with `data` on stdin; its stdout, or `None` (printed) if the tool is not
/// there. A tool that fails is a broken test: it panics.
pub fn run_tool(tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let mut child = match Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIP: cannot run {tool}: {e}");
            return None;
        }
    };
    let mut stdin = child.stdin.take()?;
    let data = data.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().expect("waiting for the tool");
    writer
        .join()
        .expect("stdin writer")
        .expect("writing the tool's stdin");
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        out.status
    );
    Some(out.stdout)
}

/// `data` compressed the way Linux's build compresses the kernel for a bzImage
/// (`scripts/Makefile.lib`, `scripts/xz_wrap.sh`), from a pipe, with the 4-byte size appended
/// (`size_append`) where Linux appends it (not for gzip: its trailer has ISIZE).
pub fn linux_payload(c: Compression, data: &[u8]) -> Option<Vec<u8>> {
    let mut out = match c {
        Compression::Gzip => run_tool("gzip", &["-n", "-f", "-9", "-c"], data)?,
        Compression::Xz => run_tool(
            "xz",
            &[
                "--check=crc32",
                "--threads=1",
                "--x86",
                "--lzma2=dict=32MiB",
                "-c",
            ],
            data,
        )?,
        Compression::Zstd => run_tool("zstd", &["-22", "--ultra", "-q", "-c"], data)?,
        _ => return None,
    };
    if c != Compression::Gzip {
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    }
    Some(out)
}

/// A bzImage (boot protocol 2.15, 27 setup sectors as in Debian's) around `payload`, loading
/// at `pref` with `init` bytes of `init_size`.
pub fn bzimage_with(payload: &[u8], pref: u64, init: u32) -> Vec<u8> {
    use super::bzimage::{
        HEADER_MAGIC, INIT_SIZE, PAYLOAD_LENGTH, PAYLOAD_OFFSET, PREF_ADDRESS, SETUP_SECTS, VERSION,
    };
    let pm = 28 * 512;
    let mut b = std::vec![0u8; pm + payload.len()];
    b[SETUP_SECTS] = 27;
    b[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
    b[HEADER_MAGIC..HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
    b[VERSION..VERSION + 2].copy_from_slice(&0x020fu16.to_le_bytes());
    b[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&0u32.to_le_bytes());
    b[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    b[PREF_ADDRESS..PREF_ADDRESS + 8].copy_from_slice(&pref.to_le_bytes());
    b[INIT_SIZE..INIT_SIZE + 4].copy_from_slice(&init.to_le_bytes());
    b[pm..].copy_from_slice(payload);
    b
}

/// Deterministic xorshift64* generator.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Code-like bytes: runs of repeated "instructions", calls and jumps (`E8`/`E9` with small
/// operands, which the x86 BCJ filter converts) and noise.
pub fn code_like(len: usize, seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        match r.below(6) {
            0 => {
                v.push(0xe8 + r.below(2) as u8);
                let op = (r.below(1 << 20) as i32 - (1 << 19)) as u32;
                v.extend_from_slice(&op.to_le_bytes());
            }
            1 => v.extend_from_slice(&[0x48, 0x89, 0xe5, 0x55, 0xc3]),
            2 => {
                let back = r.below(v.len().min(4096)) + 1;
                let n = r.below(64).min(back);
                let start = v.len() - back;
                for i in 0..n {
                    v.push(v[start + i]);
                }
            }
            3 => v.extend(std::iter::repeat_n(0, r.below(32))),
            _ => v.push(r.next() as u8),
        }
    }
    v.truncate(len);
    v
}

/// A synthetic PVH kernel ELF with `code` bytes of code-like content.
pub fn synthetic_kernel(code: usize) -> Vec<u8> {
    build_test_kernel(0x100_0000, &code_like(code, 7), 0x4000, 0x40)
}

/// The real Debian kernel (bzImage) the `image` crate caches under
/// `<target>/guest/<version>/vmlinuz` (see `image/src/guest.rs`, `fetch_linux`), or the file
/// named by `TOOLSTACK_TEST_VMLINUZ`; `None` with the reason printed when there is none (these
/// tests never download it).
pub fn real_vmlinuz() -> Option<(String, Vec<u8>)> {
    if let Some(p) = std::env::var_os("TOOLSTACK_TEST_VMLINUZ") {
        let p = PathBuf::from(p);
        return match fs::read(&p) {
            Ok(b) => Some((p.display().to_string(), b)),
            Err(e) => {
                eprintln!("SKIP: TOOLSTACK_TEST_VMLINUZ={}: {e}", p.display());
                None
            }
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let root = target.join("guest");
    let version = match fs::read_to_string(root.join("current")) {
        Ok(v) => v.trim().to_string(),
        Err(_) => {
            eprintln!(
                "SKIP: no real kernel: {} has no cached guest (`cargo image` fetches it), and \
                 TOOLSTACK_TEST_VMLINUZ is not set",
                root.display()
            );
            return None;
        }
    };
    let path = root.join(&version).join("vmlinuz");
    match fs::read(&path) {
        Ok(b) => Some((version, b)),
        Err(e) => {
            eprintln!("SKIP: no real kernel: {}: {e}", path.display());
            None
        }
    }
}

/// The real kernel's payload, and its ELF decompressed by the host's tool (the reference).
pub fn real_kernel() -> Option<(String, Compression, Vec<u8>, Vec<u8>)> {
    let (version, img) = real_vmlinuz()?;
    let p = super::locate_payload(&img).ok()?;
    let payload = img.get(p.offset..p.offset + p.len)?.to_vec();
    let tool = match p.compression {
        Compression::Gzip => "gzip",
        Compression::Xz => "xz",
        Compression::Zstd => "zstd",
        other => {
            eprintln!("SKIP: the real kernel is {}-compressed", other.as_str());
            return None;
        }
    };
    let stream = payload.get(..payload.len() - 4)?;
    let elf = run_tool(tool, &["-dqc"], stream)?;
    Some((version, p.compression, payload, elf))
}

/// `real`'s ELF recompressed as Linux would with `c`, cached in the temporary directory (zstd
/// -22 takes a minute on a 60 MB kernel).
pub fn recompressed(version: &str, c: Compression, elf: &[u8]) -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join("toolstack-kernel-tests");
    let path = dir.join(std::format!("{version}-{}.payload", c.as_str()));
    if let Ok(b) = fs::read(&path) {
        return Some(b);
    }
    let b = linux_payload(c, elf)?;
    let _ = fs::create_dir_all(&dir);
    let tmp = path.with_extension(std::format!("tmp{}", std::process::id()));
    if fs::write(&tmp, &b).is_ok() {
        let _ = fs::rename(&tmp, &path);
    }
    Some(b)
}
