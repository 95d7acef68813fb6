//! The DomU guest for boot bundles: Debian's unmodified Linux kernel and a busybox initramfs.
//!
//! [`fetch_linux`] downloads Debian's `linux-image-amd64` dependency target (the versioned
//! `linux-image-<ver>-amd64` package) and `busybox-static` with the same private apt state
//! [`crate::xenpkg`] uses for Xen (no root, the system's apt state untouched), then makes:
//!
//! * `vmlinux.elf`: the kernel ELF, taken out of the bzImage (its XZ, gzip or zstd payload is
//!   decompressed with the host's `xz`, `gzip` or `zstd`) and compacted to its program headers
//!   and the bytes of its `PT_LOAD` and `PT_NOTE` segments (no sections, no symbols). It must
//!   carry Xen's `XEN_ELFNOTE_PHYS32_ENTRY` note: that is the PVH entry a DomU builder jumps to.
//! * `initramfs.cpio`: an uncompressed newc archive with `/bin/busybox`, the kernel's
//!   `xen-netfront.ko` (Debian builds it as a module) and an `/init` script
//!   ([`INIT_SCRIPT`]) that reports on the console, writes a xenstore key through
//!   `/dev/xen/xenbus`, and then powers off, crashes or stays up as the kernel command line
//!   (`domu-test=crash|stay`) asks.
//!
//! Cache layout: `<target>/guest/<kernel version>/{vmlinux.elf, vmlinuz, busybox,
//! xen-netfront.ko, initramfs.cpio, guest.txt}` and `<target>/guest/current` (the version last fetched). Once
//! they exist, a call is offline and quick; the initramfs is rebuilt from the cached busybox
//! whenever the script in this file changes, and the ELF from the cached bzImage whenever the
//! compactor does.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use toolstack::kernel::elf::{
    EHDR_LEN, PHDR_LEN, PT_LOAD, PT_NOTE, PT_PHDR, program_headers, xen_phys32_entry,
};
use toolstack::kernel::{Compression, locate_payload};

use crate::bundle::DomainSpecInput;
use crate::util::run_captured;
use crate::xenpkg::{AptPrivate, private_sources, write_atomic};
use deb::{deb_version, extract_member, extract_members, find_deb, list_members};

/// The Debian release the guest comes from.
pub const SUITE: &str = "bookworm";
/// The metapackage whose dependency names the current kernel package.
pub const KERNEL_METAPACKAGE: &str = "linux-image-amd64";
/// The package that provides a static `/bin/busybox`.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// Name of the kernel entry in a bundle made by [`domu_bundle`].
pub const KERNEL_ENTRY: &str = "linux";
/// Name of the initrd entry in a bundle made by [`domu_bundle`].
pub const INITRD_ENTRY: &str = "initramfs";
/// Name of the test guest's kernel entry in a bundle made by [`domu_bundle`].
pub const TESTGUEST_ENTRY: &str = "testguest";
/// Name of the bzImage entry (the kernel as Debian ships it) in a bundle made by
/// [`domu_bundle`].
pub const VMLINUZ_ENTRY: &str = "vmlinuz";
/// Test guest memory when `memory=` is not given (MiB): it needs little more than its image.
pub const TESTGUEST_MEMORY_MIB: u64 = 32;
/// The start of every DomU command line; a [`DomuSpec`]'s `cmdline_extra` is appended.
pub const DEFAULT_CMDLINE: &str = "console=hvc0 loglevel=4";
/// DomU memory when `memory=` is not given (MiB).
pub const DEFAULT_DOMU_MEMORY_MIB: u64 = 128;
/// DomU vCPUs when `vcpus=` is not given.
pub const DEFAULT_DOMU_VCPUS: u32 = 1;

/// The guest files, ready in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestFiles {
    /// The kernel release, e.g. `6.1.0-56-amd64` (`uname -r` in the guest).
    pub kernel_version: String,
    /// `<package> <version>` the kernel came from.
    pub kernel_package: String,
    /// `<package> <version>` busybox came from.
    pub busybox_package: String,
    /// The compacted kernel ELF.
    pub vmlinux: PathBuf,
    /// The bzImage as the package ships it (`/boot/vmlinuz-<version>`).
    pub vmlinuz: PathBuf,
    /// The newc initramfs.
    pub initramfs: PathBuf,
    /// The value of the kernel's `XEN_ELFNOTE_PHYS32_ENTRY` note.
    pub phys32_entry: u64,
}

/// Returns the cached guest, downloading and building it first if needed.
pub fn fetch_linux(target_dir: &Path, quiet: bool) -> Result<GuestFiles> {
    let root = target_dir.join("guest");
    if let Some(files) = cached(&root)? {
        return Ok(files);
    }
    fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    if !quiet {
        eprintln!(
            "image: fetching the DomU guest (Debian {SUITE} {KERNEL_METAPACKAGE} and \
             {BUSYBOX_PACKAGE}) into {}",
            root.display()
        );
    }
    let work = root.join(format!("work-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let result = download_and_build(&work, &root, quiet);
    let _ = fs::remove_dir_all(&work);
    let files = result.context("fetching the DomU guest kernel and busybox from Debian")?;
    if !quiet {
        eprintln!(
            "image: guest ready: Linux {} ({})",
            files.kernel_version, files.kernel_package
        );
    }
    Ok(files)
}

/// Bumped whenever [`compact_elf`] changes what it writes: a cached `vmlinux.elf` made by
/// another version is made again from the cached `vmlinuz`, offline.
const COMPACTOR_VERSION: u32 = 2;

/// The cached guest, if complete. The kernel ELF is remade from the cached bzImage when the
/// compactor changed, and the initramfs is (re)written when it differs from what the current
/// [`INIT_SCRIPT`] and the cached busybox make.
fn cached(root: &Path) -> Result<Option<GuestFiles>> {
    let Ok(version) = fs::read_to_string(root.join("current")) else {
        return Ok(None);
    };
    let version = version.trim();
    if !valid_version(version) {
        return Ok(None);
    }
    let dir = root.join(version);
    let (Ok(meta), Ok(busybox), Ok(netfront)) = (
        fs::read_to_string(dir.join("guest.txt")),
        fs::read(dir.join("busybox")),
        fs::read(dir.join(NETFRONT_MODULE)),
    ) else {
        return Ok(None);
    };
    let field = |key: &str| {
        meta.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    let (Some(kernel_package), Some(busybox_package)) =
        (field("kernel_package"), field("busybox_package"))
    else {
        return Ok(None);
    };
    let elf_path = dir.join("vmlinux.elf");
    let current = field("compactor") == Some(COMPACTOR_VERSION.to_string());
    let phys32_entry = match fs::read(&elf_path) {
        Ok(elf) if current => xen_phys32_entry(&elf)
            .with_context(|| format!("cached kernel {}", elf_path.display()))?,
        _ => {
            let Ok(vmlinuz) = fs::read(dir.join("vmlinuz")) else {
                return Ok(None);
            };
            let work = dir.join(format!("work-{}", std::process::id()));
            let _ = fs::remove_dir_all(&work);
            fs::create_dir_all(&work)?;
            let made = make_kernel_elf(&dir, &vmlinuz, &work);
            let _ = fs::remove_dir_all(&work);
            let (entry, _) = made.with_context(|| format!("remaking {}", elf_path.display()))?;
            write_meta(&dir, &kernel_package, &busybox_package, entry)?;
            entry
        }
    };
    let initramfs = write_initramfs(&dir, &busybox, &netfront)?;
    Ok(Some(GuestFiles {
        kernel_version: version.to_string(),
        kernel_package,
        busybox_package,
        vmlinux: elf_path,
        vmlinuz: dir.join("vmlinuz"),
        initramfs,
        phys32_entry,
    }))
}

/// Makes `dir/vmlinux.elf` from a bzImage; returns the PVH entry and the size of the ELF
/// before compaction.
fn make_kernel_elf(dir: &Path, vmlinuz: &[u8], work: &Path) -> Result<(u64, usize)> {
    let vmlinux = decompress_kernel(vmlinuz, work)?;
    let compact = compact_elf(&vmlinux).context("compacting the kernel ELF")?;
    let entry = xen_phys32_entry(&compact).context("the kernel cannot boot as a PVH DomU")?;
    write_atomic(&dir.join("vmlinux.elf"), &compact)?;
    Ok((entry, vmlinux.len()))
}

fn write_meta(dir: &Path, kernel_package: &str, busybox_package: &str, entry: u64) -> Result<()> {
    let meta = format!(
        "kernel_package={kernel_package}\nbusybox_package={busybox_package}\n\
         phys32_entry={entry:#x}\ncompactor={COMPACTOR_VERSION}\n"
    );
    write_atomic(&dir.join("guest.txt"), meta.as_bytes())
}

/// A kernel release string safe to use as a directory name.
fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with('.')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-~".contains(c))
}

/// The versioned kernel package `apt-cache depends linux-image-amd64` names, e.g.
/// `linux-image-6.1.0-56-amd64`.
pub fn kernel_package_from_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends:"))
        .map(|p| p.split_whitespace().next().unwrap_or(""))
        .find(|p| {
            p.strip_prefix("linux-image-")
                .is_some_and(|v| v.ends_with("-amd64") && valid_version(v))
        })
        .map(str::to_string)
}

fn download_and_build(work: &Path, root: &Path, quiet: bool) -> Result<GuestFiles> {
    let sources = private_sources(SUITE)?;
    let apt = AptPrivate::create(work, &sources)?;
    apt.run(&["update"], work)?;
    let depends = apt.query(&["depends", KERNEL_METAPACKAGE], work)?;
    let kernel_pkg = kernel_package_from_depends(&depends).with_context(|| {
        format!("`apt-cache depends {KERNEL_METAPACKAGE}` names no linux-image-*-amd64 package:\n{depends}")
    })?;
    let version = kernel_pkg["linux-image-".len()..].to_string();
    apt.run(&["download", &kernel_pkg, BUSYBOX_PACKAGE], work)?;
    let kernel_deb = find_deb(work, &kernel_pkg)?;
    let busybox_deb = find_deb(work, BUSYBOX_PACKAGE)?;
    let kernel_package = format!("{kernel_pkg} {}", deb_version(&kernel_deb)?);
    let busybox_package = format!("{BUSYBOX_PACKAGE} {}", deb_version(&busybox_deb)?);

    let unpacked = work.join("unpacked");
    fs::create_dir_all(&unpacked)?;
    let vmlinuz_member = format!("./boot/vmlinuz-{version}");
    extract_member(&kernel_deb, &vmlinuz_member, &unpacked)?;
    extract_member(&busybox_deb, "./bin/busybox", &unpacked)?;
    let vmlinuz_path = unpacked.join(&vmlinuz_member);
    let vmlinuz =
        fs::read(&vmlinuz_path).with_context(|| format!("reading {}", vmlinuz_path.display()))?;
    let busybox = fs::read(unpacked.join("bin/busybox")).context("reading bin/busybox")?;
    let netfront = netfront_module(&kernel_deb, &version, &unpacked, work)?;
    if busybox.get(..4) != Some(b"\x7fELF".as_slice()) {
        bail!(
            "{} holds a bin/busybox that is not an ELF file",
            busybox_deb.display()
        );
    }

    let dir = root.join(&version);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (phys32_entry, vmlinux_len) = make_kernel_elf(&dir, &vmlinuz, work)
        .with_context(|| format!("unpacking {vmlinuz_member} of {}", kernel_deb.display()))?;
    if !quiet {
        let size = fs::metadata(dir.join("vmlinux.elf"))?.len();
        eprintln!(
            "image: kernel ELF: {vmlinux_len} bytes decompressed, {size} bytes compacted, \
             PHYS32_ENTRY {phys32_entry:#x}"
        );
    }
    write_atomic(&dir.join("vmlinuz"), &vmlinuz)?;
    write_atomic(&dir.join("busybox"), &busybox)?;
    write_atomic(&dir.join(NETFRONT_MODULE), &netfront)?;
    let initramfs = write_initramfs(&dir, &busybox, &netfront)?;
    // The bench's baseline (virtio-net without Xen) needs modules from this package too.
    if let Err(e) = virtio::extract_virtio(&kernel_deb, &version, &dir, work) {
        eprintln!("image: no virtio-net modules for the bench baseline: {e:#}");
    }
    write_meta(&dir, &kernel_package, &busybox_package, phys32_entry)?;
    // `current` last: the cache counts as complete only once it names a finished directory.
    write_atomic(&root.join("current"), format!("{version}\n").as_bytes())?;
    Ok(GuestFiles {
        kernel_version: version,
        kernel_package,
        busybox_package,
        vmlinux: dir.join("vmlinux.elf"),
        vmlinuz: dir.join("vmlinuz"),
        initramfs,
        phys32_entry,
    })
}

/// The netfront driver in the cache and in the initramfs (`/lib/modules/xen-netfront.ko`).
pub const NETFRONT_MODULE: &str = "xen-netfront.ko";

/// Debian builds `xen-netfront` as a module (reference: netback-and-nic-notes §3), compressed
/// with XZ in recent packages: take it out of the kernel package and decompress it with the
/// host's `xz`, so busybox's `insmod` can load it.
fn netfront_module(
    kernel_deb: &Path,
    version: &str,
    unpacked: &Path,
    work: &Path,
) -> Result<Vec<u8>> {
    let base = format!("./lib/modules/{version}/kernel/drivers/net/xen-netfront.ko");
    let xz = format!("{base}.xz");
    if extract_member(kernel_deb, &xz, unpacked).is_ok() {
        let path = unpacked.join(&xz);
        let out = run_captured(Command::new("xz").arg("-dc").arg(&path).current_dir(work))
            .with_context(|| format!("decompressing {xz} (is `xz` installed?)"))?;
        return check_module(out.stdout, &xz);
    }
    extract_member(kernel_deb, &base, unpacked)
        .with_context(|| format!("{} has neither {xz} nor {base}", kernel_deb.display()))?;
    let bytes = fs::read(unpacked.join(&base)).with_context(|| format!("reading {base}"))?;
    check_module(bytes, &base)
}

fn check_module(bytes: Vec<u8>, what: &str) -> Result<Vec<u8>> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        bail!("{what} is not an ELF kernel module");
    }
    Ok(bytes)
}

/// Decompresses a bzImage's payload with the host's `xz`, `gzip` or `zstd` and returns the
/// kernel ELF. The payload ends with the 4-byte little-endian uncompressed size the kernel
/// build appends; it is checked against what the tool produced.
fn decompress_kernel(vmlinuz: &[u8], work: &Path) -> Result<Vec<u8>> {
    let payload = locate_payload(vmlinuz).map_err(|e| anyhow!("{e}"))?;
    let bytes = &vmlinuz[payload.offset..payload.offset + payload.len];
    let (stream, size) = bytes.split_at(bytes.len() - 4);
    let size = xen::le::u32_at(size, 0) as usize;
    let (tool, extension) = host_tool(payload.compression).with_context(|| {
        format!(
            "the bzImage payload is {}-compressed: this tool unpacks gzip, XZ or zstd",
            payload.compression.as_str()
        )
    })?;
    let file = work.join(format!("payload.{extension}"));
    fs::write(&file, stream).with_context(|| format!("writing {}", file.display()))?;
    let out = run_captured(Command::new(tool).arg("-dc").arg(&file))?.stdout;
    if out.len() != size {
        bail!(
            "{tool} made {} bytes of the {extension} payload, but the bzImage says {size}",
            out.len()
        );
    }
    if out.get(..4) != Some(b"\x7fELF".as_slice()) {
        bail!("the bzImage payload did not decompress to an ELF file");
    }
    Ok(out)
}

/// The host command that decompresses `c` (`-dc FILE`) and its file extension.
pub fn host_tool(c: Compression) -> Option<(&'static str, &'static str)> {
    match c {
        Compression::Gzip => Some(("gzip", "gz")),
        Compression::Xz => Some(("xz", "xz")),
        Compression::Zstd => Some(("zstd", "zst")),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// ELF (read with `toolstack::kernel::elf`; written here)

const PAGE: u64 = 4096;

/// Writes a new ELF64 that holds only the ELF header, the program headers and the bytes of the
/// `PT_LOAD` and `PT_NOTE` segments: section headers are dropped (`e_shoff`, `e_shnum`,
/// `e_shstrndx` = 0) and every kept segment gets its new `p_offset`.
///
/// Each `PT_LOAD` keeps its file offset modulo 4 KiB (so offset and address stay congruent
/// modulo the page size); where that breaks congruence modulo a larger `p_align` (Linux uses
/// 2 MiB), `p_align` is lowered to 4 KiB rather than padding megabytes. A `PT_NOTE` (or any
/// other segment) whose bytes lie inside a `PT_LOAD` points into that copy; a `PT_NOTE` outside
/// every `PT_LOAD` is copied on its own; other segments with file bytes outside every `PT_LOAD`
/// are dropped (so is `PT_PHDR`), and those with none (`PT_GNU_STACK`) are kept as they are.
///
/// Zero bytes at the end of a `PT_LOAD`'s file image are not copied: its `p_filesz` shrinks and
/// `p_memsz` stays, and an ELF loader zero-fills from `p_filesz` to `p_memsz` anyway (Linux's
/// last segment carries `.bss` as file bytes because `.init.scratch` follows it: 24 MiB of
/// zeros in Debian's 6.1 kernel). Bytes another kept segment points at are always kept.
pub fn compact_elf(elf: &[u8]) -> Result<Vec<u8>> {
    let phdrs = program_headers(elf)?;
    let mut ranges = Vec::with_capacity(phdrs.len());
    for (i, p) in phdrs.iter().enumerate() {
        let range = p.file_range(i, elf.len())?;
        if p.p_type == PT_LOAD && p.p_filesz > p.p_memsz {
            bail!(
                "program header {i}: PT_LOAD with p_filesz 0x{:x} larger than p_memsz 0x{:x}",
                p.p_filesz,
                p.p_memsz
            );
        }
        ranges.push(range);
    }
    if !phdrs.iter().any(|p| p.p_type == PT_LOAD) {
        bail!("the ELF file has no PT_LOAD segment");
    }
    let inside_load = |r: &std::ops::Range<usize>| {
        phdrs
            .iter()
            .zip(&ranges)
            .position(|(p, l)| p.p_type == PT_LOAD && l.start <= r.start && r.end <= l.end)
    };
    // Which headers survive, and how their bytes are found in the new file.
    enum Place {
        Copy,
        Inside(usize),
        NoBytes,
    }
    let mut kept: Vec<(usize, Place)> = Vec::new();
    for (i, p) in phdrs.iter().enumerate() {
        let place = if p.p_type == PT_LOAD {
            Place::Copy
        } else if p.p_type == PT_PHDR {
            // It would describe the old table; the new file has no use for it.
            continue;
        } else if p.p_filesz == 0 {
            Place::NoBytes
        } else if let Some(l) = inside_load(&ranges[i]) {
            Place::Inside(l)
        } else if p.p_type == PT_NOTE {
            Place::Copy
        } else {
            continue;
        };
        kept.push((i, place));
    }
    // Bound the output: overlapping segments must not make it balloon.
    let copied: u64 = kept
        .iter()
        .filter(|(_, pl)| matches!(pl, Place::Copy))
        .map(|(i, _)| phdrs[*i].p_filesz + PAGE)
        .sum();
    if copied > elf.len() as u64 + (phdrs.len() as u64) * 2 * PAGE {
        bail!("the segments' file ranges overlap too much (0x{copied:x} bytes to copy)");
    }

    let mut out = elf[..EHDR_LEN].to_vec();
    out[32..40].copy_from_slice(&(EHDR_LEN as u64).to_le_bytes()); // e_phoff
    out[40..48].copy_from_slice(&0u64.to_le_bytes()); // e_shoff
    out[56..58].copy_from_slice(&(kept.len() as u16).to_le_bytes()); // e_phnum
    out[60..62].copy_from_slice(&0u16.to_le_bytes()); // e_shnum
    out[62..64].copy_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    let table = out.len();
    out.resize(table + kept.len() * PHDR_LEN, 0);
    // How much of each PT_LOAD other segments point into.
    let mut needed = vec![0usize; phdrs.len()];
    for (i, place) in &kept {
        if let Place::Inside(l) = place {
            needed[*l] = needed[*l].max(ranges[*i].end - ranges[*l].start);
        }
    }
    let mut new_offset = vec![0u64; phdrs.len()];
    let mut new_phdrs = Vec::with_capacity(kept.len());
    for (i, place) in &kept {
        let mut p = phdrs[*i];
        if let Place::Copy = place {
            let mut bytes = &elf[ranges[*i].clone()];
            if p.p_type == PT_LOAD {
                let nonzero = bytes.iter().rposition(|&b| b != 0).map_or(0, |n| n + 1);
                bytes = &bytes[..nonzero.max(needed[*i])];
                p.p_filesz = bytes.len() as u64;
            }
            let cursor = out.len() as u64;
            let start = if p.p_type == PT_LOAD {
                // The first offset from `cursor` on that is congruent to the old one mod 4 KiB.
                let s = cursor - cursor % PAGE + p.p_offset % PAGE;
                if s < cursor { s + PAGE } else { s }
            } else {
                cursor.next_multiple_of(p.p_align.clamp(1, 8))
            };
            out.resize(start as usize, 0);
            out.extend_from_slice(bytes);
            new_offset[*i] = start;
            if p.p_type == PT_LOAD && p.p_align > PAGE && start % p.p_align != p.p_vaddr % p.p_align
            {
                p.p_align = PAGE;
            }
        }
        new_phdrs.push((p, place));
    }
    let mut table_bytes = Vec::with_capacity(kept.len() * PHDR_LEN);
    for ((i, _), (mut p, place)) in kept.iter().zip(new_phdrs) {
        p.p_offset = match place {
            Place::Copy => new_offset[*i],
            Place::Inside(l) => new_offset[*l] + (phdrs[*i].p_offset - phdrs[*l].p_offset),
            Place::NoBytes => 0,
        };
        table_bytes.extend_from_slice(&p.to_bytes());
    }
    out[table..table + table_bytes.len()].copy_from_slice(&table_bytes);
    Ok(out)
}

// The initramfs: `guest/initramfs.rs`; the bench's baseline guest: `guest/virtio.rs`.
mod deb;
mod initramfs;
pub use initramfs::*;
pub mod virtio;

// ---------------------------------------------------------------------------------------------
// DomUs for a boot bundle

/// Which kernel a `--domu` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomuKernel {
    /// Debian's Linux with the busybox initramfs ([`fetch_linux`]), as the ELF taken out of
    /// its bzImage on the host.
    #[default]
    Linux,
    /// The same kernel as the package ships it: the bzImage, which dom0 decompresses itself.
    Vmlinuz,
    /// The project's hostile test guest (the `testguest` crate, built by
    /// [`crate::setup::build_testguest`]): no initrd; it floods its console, xenstore and event
    /// channels and ignores `control/shutdown`.
    Testguest,
}

impl DomuKernel {
    /// The value of `kernel=`.
    pub fn name(self) -> &'static str {
        match self {
            DomuKernel::Linux => "linux",
            DomuKernel::Vmlinuz => "vmlinuz",
            DomuKernel::Testguest => "testguest",
        }
    }
}

/// A DomU running the fetched guest (or the test guest), as `cargo image run --domu
/// NAME[:OPTS]` describes it.
///
/// `FromStr`: `NAME[:kernel=linux|vmlinuz|testguest][,memory=MIB][,vcpus=N][,vif[=MAC]]...`
/// `[,tsc_mode=default|always_emulate|native][,cmdline=TEXT]`;
/// `cmdline=` must come last and takes the rest verbatim (commas included). For Linux its text
/// is appended to [`DEFAULT_CMDLINE`]; the test guest gets it alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomuSpec {
    pub name: String,
    /// [`DomuKernel::Linux`] by default.
    pub kernel: DomuKernel,
    /// MiB; [`DEFAULT_DOMU_MEMORY_MIB`] by default ([`TESTGUEST_MEMORY_MIB`] for the test
    /// guest).
    pub memory_mib: u64,
    /// [`DEFAULT_DOMU_VCPUS`] by default.
    pub vcpus: u32,
    /// Appended (after a space) to [`DEFAULT_CMDLINE`]; empty for none.
    pub cmdline_extra: String,
    /// Network interfaces, in order: `vif` (a MAC dom0 picks) or `vif=MAC`, as bundle devices.
    pub vifs: Vec<String>,
    /// xl.cfg's `tsc_mode`; `None` leaves it out of the bundle (dom0 then uses `default`).
    pub tsc_mode: Option<toolstack::bundle::TscMode>,
}

impl DomuSpec {
    /// A Linux DomU with the default memory, vCPUs and command line.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            kernel: DomuKernel::Linux,
            memory_mib: DEFAULT_DOMU_MEMORY_MIB,
            vcpus: DEFAULT_DOMU_VCPUS,
            cmdline_extra: String::new(),
            vifs: Vec::new(),
            tsc_mode: None,
        }
    }

    /// The full kernel command line.
    pub fn cmdline(&self) -> String {
        let extra = self.cmdline_extra.trim();
        match self.kernel {
            DomuKernel::Testguest => extra.to_string(),
            DomuKernel::Linux | DomuKernel::Vmlinuz if extra.is_empty() => {
                DEFAULT_CMDLINE.to_string()
            }
            DomuKernel::Linux | DomuKernel::Vmlinuz => format!("{DEFAULT_CMDLINE} {extra}"),
        }
    }

    /// The bundle description: kernel [`KERNEL_ENTRY`] and initrd [`INITRD_ENTRY`] (or kernel
    /// [`TESTGUEST_ENTRY`] and no initrd), a console.
    pub fn domain_input(&self) -> DomainSpecInput {
        let (kernel, initrd) = match self.kernel {
            DomuKernel::Linux => (KERNEL_ENTRY, Some(INITRD_ENTRY.to_string())),
            DomuKernel::Vmlinuz => (VMLINUZ_ENTRY, Some(INITRD_ENTRY.to_string())),
            DomuKernel::Testguest => (TESTGUEST_ENTRY, None),
        };
        DomainSpecInput {
            name: self.name.clone(),
            memory_mib: self.memory_mib,
            vcpus: self.vcpus,
            cmdline: self.cmdline(),
            kernel: kernel.to_string(),
            initrd,
            devices: std::iter::once("console".to_string())
                .chain(self.vifs.iter().cloned())
                .collect(),
            tsc_mode: self.tsc_mode,
        }
    }
}

impl FromStr for DomuSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, opts) = s.split_once(':').unwrap_or((s, ""));
        if name.is_empty() {
            return Err(format!(
                "{s:?}: the DomU needs a name \
                 (NAME[:memory=MIB,vcpus=N,vif[=MAC],tsc_mode=MODE,cmdline=TEXT])"
            ));
        }
        let mut spec = DomuSpec::new(name);
        let (mut memory, mut vcpus, mut kernel, mut tsc) = (false, false, false, false);
        let mut rest = opts;
        while !rest.is_empty() {
            if let Some(c) = rest.strip_prefix("cmdline=") {
                spec.cmdline_extra = c.to_string();
                break;
            }
            let (item, tail) = rest.split_once(',').unwrap_or((rest, ""));
            rest = tail;
            if item == "vif" || item.starts_with("vif=") {
                if toolstack::bundle::parse_device(item).is_none() {
                    return Err(format!(
                        "{item:?}: vif=MAC needs a unicast aa:bb:cc:dd:ee:ff"
                    ));
                }
                spec.vifs.push(item.to_string());
                continue;
            }
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "{item:?} is not key=value (kernel, memory, vcpus, vif, tsc_mode, cmdline)"
                ));
            };
            match key {
                "kernel" if !kernel => {
                    kernel = true;
                    spec.kernel = match value {
                        "linux" => DomuKernel::Linux,
                        "vmlinuz" => DomuKernel::Vmlinuz,
                        "testguest" => DomuKernel::Testguest,
                        _ => {
                            return Err(format!("kernel={value:?}: linux, vmlinuz or testguest"));
                        }
                    };
                }
                "memory" if !memory => {
                    memory = true;
                    spec.memory_mib = value
                        .parse()
                        .ok()
                        .filter(|&m| m > 0)
                        .ok_or_else(|| format!("memory={value:?} is not a number of MiB"))?;
                }
                "vcpus" if !vcpus => {
                    vcpus = true;
                    spec.vcpus = value
                        .parse()
                        .ok()
                        .filter(|&v| v > 0)
                        .ok_or_else(|| format!("vcpus={value:?} is not a number of vCPUs"))?;
                }
                "tsc_mode" if !tsc => {
                    tsc = true;
                    spec.tsc_mode =
                        Some(toolstack::bundle::TscMode::parse(value).ok_or_else(|| {
                            format!("tsc_mode={value:?}: default, always_emulate or native")
                        })?);
                }
                "memory" | "vcpus" | "kernel" | "tsc_mode" => {
                    return Err(format!("{key} given twice"));
                }
                _ => {
                    return Err(format!(
                        "unknown key {key:?} (kernel, memory, vcpus, vif, tsc_mode, cmdline)"
                    ));
                }
            }
        }
        if spec.kernel == DomuKernel::Testguest && !memory {
            spec.memory_mib = TESTGUEST_MEMORY_MIB;
        }
        Ok(spec)
    }
}

/// Packs a bundle of `domus`: the Linux ones share one kernel entry ([`KERNEL_ENTRY`]) and one
/// initrd entry ([`INITRD_ENTRY`]) from `linux`, the test guests one kernel entry
/// ([`TESTGUEST_ENTRY`]) read from `testguest` (checked by [`crate::bundle::pack`]). Each file
/// is packed only if a DomU uses it, and must then be given.
pub fn domu_bundle(
    domus: &[DomuSpec],
    linux: Option<&GuestFiles>,
    testguest: Option<&Path>,
) -> Result<Vec<u8>> {
    use toolstack::bundle::FileKind;
    if domus.is_empty() {
        bail!("no DomUs to pack");
    }
    let read = |p: &Path| fs::read(p).with_context(|| format!("reading {}", p.display()));
    let mut files = Vec::new();
    let uses = |k: DomuKernel| domus.iter().any(|d| d.kernel == k);
    if uses(DomuKernel::Linux) || uses(DomuKernel::Vmlinuz) {
        let Some(guest) = linux else {
            bail!("a Linux DomU needs the Debian guest (cargo image fetch-linux)");
        };
        if uses(DomuKernel::Linux) {
            files.push((
                FileKind::Kernel,
                KERNEL_ENTRY.to_string(),
                read(&guest.vmlinux)?,
            ));
        }
        if uses(DomuKernel::Vmlinuz) {
            files.push((
                FileKind::Kernel,
                VMLINUZ_ENTRY.to_string(),
                read(&guest.vmlinuz)?,
            ));
        }
        files.push((
            FileKind::Initrd,
            INITRD_ENTRY.to_string(),
            read(&guest.initramfs)?,
        ));
    }
    if domus.iter().any(|d| d.kernel == DomuKernel::Testguest) {
        let Some(path) = testguest else {
            bail!("a kernel=testguest DomU needs the test guest's ELF");
        };
        files.push((FileKind::Kernel, TESTGUEST_ENTRY.to_string(), read(path)?));
    }
    let domains: Vec<DomainSpecInput> = domus.iter().map(DomuSpec::domain_input).collect();
    crate::bundle::pack(&domains, &files).map_err(|e| anyhow!("packing the DomU bundle: {e:#}"))
}

/// dom0's memory when DomUs are given and `dom0_mem` is not fixed: at least this (MiB); the
/// bundle with the kernel lands in dom0's memory.
pub const DOMU_DOM0_MEM_MIB: u32 = 256;

/// `(mem_mib, dom0_mem_mib)` for a run with `domus`: with `fixed` the given values; otherwise
/// `dom0_mem` at least [`DOMU_DOM0_MEM_MIB`] and the machine at least `dom0_mem` + the DomUs'
/// memory + 256 MiB (for Xen).
pub fn memory_for_domus(
    mem_mib: u32,
    dom0_mem_mib: u32,
    domus: &[DomuSpec],
    fixed: bool,
) -> (u32, u32) {
    if domus.is_empty() || fixed {
        return (mem_mib, dom0_mem_mib);
    }
    let dom0 = dom0_mem_mib.max(DOMU_DOM0_MEM_MIB);
    let domus_mib: u64 = domus.iter().map(|d| d.memory_mib).sum();
    let need = u64::from(dom0) + domus_mib + 256;
    let mem = u32::try_from(need).unwrap_or(u32::MAX).max(mem_mib);
    (mem, dom0)
}

#[cfg(test)]
mod tests;
