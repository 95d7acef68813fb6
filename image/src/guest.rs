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
//! * `initramfs.cpio`: an uncompressed newc archive with `/bin/busybox` and an `/init` script
//!   ([`INIT_SCRIPT`]) that reports on the console, writes a xenstore key through
//!   `/dev/xen/xenbus`, and then powers off, crashes or stays up as the kernel command line
//!   (`domu-test=crash|stay`) asks.
//!
//! Cache layout: `<target>/guest/<kernel version>/{vmlinux.elf, vmlinuz, busybox,
//! initramfs.cpio, guest.txt}` and `<target>/guest/current` (the version last fetched). Once
//! they exist, a call is offline and quick; the initramfs is rebuilt from the cached busybox
//! whenever the script in this file changes, and the ELF from the cached bzImage whenever the
//! compactor does.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};

use crate::bundle::DomainSpecInput;
use crate::util::run_captured;
use crate::xenpkg::{AptPrivate, private_sources, write_atomic};

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
/// Test guest memory when `memory=` is not given (MiB): it needs little more than its image.
pub const TESTGUEST_MEMORY_MIB: u64 = 32;
/// The start of every DomU command line; a [`DomuSpec`]'s `cmdline_extra` is appended.
pub const DEFAULT_CMDLINE: &str = "console=hvc0 loglevel=4";
/// DomU memory when `memory=` is not given (MiB).
pub const DEFAULT_DOMU_MEMORY_MIB: u64 = 128;
/// DomU vCPUs when `vcpus=` is not given.
pub const DEFAULT_DOMU_VCPUS: u32 = 1;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical PVH entry point.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

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
    let (Ok(meta), Ok(busybox)) = (
        fs::read_to_string(dir.join("guest.txt")),
        fs::read(dir.join("busybox")),
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
    let initramfs = write_initramfs(&dir, &busybox)?;
    Ok(Some(GuestFiles {
        kernel_version: version.to_string(),
        kernel_package,
        busybox_package,
        vmlinux: elf_path,
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
    let initramfs = write_initramfs(&dir, &busybox)?;
    write_meta(&dir, &kernel_package, &busybox_package, phys32_entry)?;
    // `current` last: the cache counts as complete only once it names a finished directory.
    write_atomic(&root.join("current"), format!("{version}\n").as_bytes())?;
    Ok(GuestFiles {
        kernel_version: version,
        kernel_package,
        busybox_package,
        vmlinux: dir.join("vmlinux.elf"),
        initramfs,
        phys32_entry,
    })
}

/// The `.deb` of `package` that `apt-get download` left in `dir`.
fn find_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|x| x == "deb")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .with_context(|| {
            format!(
                "apt-get download left no {package}_*.deb in {}",
                dir.display()
            )
        })
}

fn deb_version(deb: &Path) -> Result<String> {
    let out = run_captured(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Extracts one member of a `.deb`'s data archive into `dest` (the kernel package holds
/// hundreds of MiB of modules that are not needed): `ar` takes out `data.tar.*`, then `tar`
/// (which knows every compression dpkg uses) takes out the member.
fn extract_member(deb: &Path, member: &str, dest: &Path) -> Result<()> {
    let listing = run_captured(Command::new("ar").arg("t").arg(deb))?;
    let listing = String::from_utf8_lossy(&listing.stdout);
    let data = listing
        .lines()
        .map(str::trim)
        .find(|m| m.starts_with("data.tar"))
        .with_context(|| format!("{} has no data.tar member", deb.display()))?;
    let scratch = dest.join(format!(".{data}"));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    run_captured(
        Command::new("ar")
            .arg("x")
            .arg(std::path::absolute(deb)?)
            .arg(data)
            .current_dir(&scratch),
    )?;
    let result = run_captured(
        Command::new("tar")
            .arg("-x")
            .arg("-f")
            .arg(scratch.join(data))
            .arg("-C")
            .arg(dest)
            .arg(member),
    )
    .with_context(|| format!("extracting {member} from {}", deb.display()));
    let _ = fs::remove_dir_all(&scratch);
    result.map(drop)
}

/// Decompresses a bzImage's payload with the host's `xz`, `gzip` or `zstd` and returns the
/// kernel ELF. The payload ends with the 4-byte little-endian uncompressed size the kernel
/// build appends; it is checked against what the tool produced.
fn decompress_kernel(vmlinuz: &[u8], work: &Path) -> Result<Vec<u8>> {
    let payload = locate_payload(vmlinuz)?;
    let bytes = &vmlinuz[payload.offset..payload.offset + payload.len];
    let (stream, size) = bytes.split_at(bytes.len() - 4);
    let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
    let file = work.join(format!("payload.{}", payload.compression.extension()));
    fs::write(&file, stream).with_context(|| format!("writing {}", file.display()))?;
    let tool = payload.compression.tool();
    let out = run_captured(Command::new(tool).arg("-dc").arg(&file))?.stdout;
    if out.len() != size {
        bail!(
            "{tool} made {} bytes of the {} payload, but the bzImage says {size}",
            out.len(),
            payload.compression.extension()
        );
    }
    if out.get(..4) != Some(b"\x7fELF".as_slice()) {
        bail!("the bzImage payload did not decompress to an ELF file");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// bzImage

/// How a bzImage payload is compressed (the ones this tool can undo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    /// From the payload's first bytes.
    pub fn from_magic(data: &[u8]) -> Option<Self> {
        if data.starts_with(&[0x1f, 0x8b]) {
            Some(Self::Gzip)
        } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Some(Self::Xz)
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Self::Zstd)
        } else {
            None
        }
    }

    /// The host command that decompresses it (`-dc FILE`).
    pub fn tool(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Xz => "xz",
            Self::Zstd => "zstd",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Gzip => "gz",
            Self::Xz => "xz",
            Self::Zstd => "zst",
        }
    }
}

/// Where a bzImage's compressed kernel lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BzPayload {
    /// Boot protocol version, e.g. `0x020f`.
    pub protocol: u16,
    /// Offset of the payload in the file.
    pub offset: usize,
    /// Length of the payload, including the 4-byte uncompressed size at its end.
    pub len: usize,
    pub compression: Compression,
}

fn le16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?))
}

fn le32(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn le64(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// Finds the compressed kernel of a bzImage from its setup header (boot protocol 2.08 or later:
/// `setup_sects` at 0x1F1, `payload_offset` and `payload_length` at 0x248 and 0x24C, relative
/// to the protected-mode code at `(setup_sects + 1) * 512`).
pub fn locate_payload(image: &[u8]) -> Result<BzPayload> {
    const HEADER_END: usize = 0x250;
    if image.len() < HEADER_END {
        bail!(
            "{} bytes is too short for a bzImage setup header (0x{HEADER_END:x} bytes)",
            image.len()
        );
    }
    if le16(image, 0x1fe) != Some(0xaa55) {
        bail!("not a bzImage: no 0xAA55 boot flag at 0x1FE");
    }
    if image.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        bail!("not a bzImage: no \"HdrS\" setup header signature at 0x202");
    }
    let protocol = le16(image, 0x206).unwrap_or(0);
    if protocol < 0x0208 {
        bail!(
            "bzImage boot protocol {}.{:02} has no payload fields (2.08 or later needed)",
            protocol >> 8,
            protocol & 0xff
        );
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let pm_start = (setup_sects + 1) * 512;
    let rel = le32(image, 0x248).unwrap_or(0) as usize;
    let len = le32(image, 0x24c).unwrap_or(0) as usize;
    let offset = pm_start
        .checked_add(rel)
        .context("bzImage payload offset overflows")?;
    let end = offset
        .checked_add(len)
        .context("bzImage payload length overflows")?;
    if end > image.len() {
        bail!(
            "bzImage payload 0x{offset:x}..0x{end:x} (setup_sects {setup_sects}, \
             payload_offset 0x{rel:x}, payload_length 0x{len:x}) runs past the end of the \
             {}-byte file",
            image.len()
        );
    }
    if len < 8 {
        bail!("bzImage payload of {len} bytes is too short to hold a compressed kernel");
    }
    let payload = &image[offset..end];
    let compression = Compression::from_magic(payload).with_context(|| {
        format!(
            "bzImage payload at 0x{offset:x} starts with {:02x?}: not gzip, XZ or zstd",
            &payload[..payload.len().min(6)]
        )
    })?;
    Ok(BzPayload {
        protocol,
        offset,
        len,
        compression,
    })
}

// ---------------------------------------------------------------------------------------------
// ELF

const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PAGE: u64 = 4096;
/// More program headers than any kernel has; a bound on hostile input.
const MAX_PHDRS: usize = 256;

/// One ELF64 program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub p_flags: u32,
    pub p_offset: u64,
    pub p_vaddr: u64,
    pub p_paddr: u64,
    pub p_filesz: u64,
    pub p_memsz: u64,
    pub p_align: u64,
}

impl Phdr {
    fn read(d: &[u8], at: usize) -> Option<Self> {
        Some(Self {
            p_type: le32(d, at)?,
            p_flags: le32(d, at + 4)?,
            p_offset: le64(d, at + 8)?,
            p_vaddr: le64(d, at + 16)?,
            p_paddr: le64(d, at + 24)?,
            p_filesz: le64(d, at + 32)?,
            p_memsz: le64(d, at + 40)?,
            p_align: le64(d, at + 48)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.p_type.to_le_bytes());
        out.extend_from_slice(&self.p_flags.to_le_bytes());
        for v in [
            self.p_offset,
            self.p_vaddr,
            self.p_paddr,
            self.p_filesz,
            self.p_memsz,
            self.p_align,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// The file range, checked against a file of `len` bytes.
    fn file_range(&self, index: usize, len: usize) -> Result<std::ops::Range<usize>> {
        let end = self
            .p_offset
            .checked_add(self.p_filesz)
            .filter(|&e| e <= len as u64)
            .with_context(|| {
                format!(
                    "program header {index}: file bytes 0x{:x}+0x{:x} run past the end of the \
                     {len}-byte file",
                    self.p_offset, self.p_filesz
                )
            })?;
        Ok(self.p_offset as usize..end as usize)
    }
}

/// Checks an ELF64 little-endian header and returns its program headers.
pub fn program_headers(elf: &[u8]) -> Result<Vec<Phdr>> {
    if elf.len() < EHDR_LEN || elf[..4] != *b"\x7fELF" {
        bail!("not an ELF file");
    }
    if elf[4] != 2 || elf[5] != 1 {
        bail!(
            "ELF class {} data {}: only ELF64 little-endian is supported",
            elf[4],
            elf[5]
        );
    }
    let phoff = le64(elf, 32).unwrap_or(0);
    let ehsize = le16(elf, 52).unwrap_or(0);
    let phentsize = le16(elf, 54).unwrap_or(0);
    let phnum = usize::from(le16(elf, 56).unwrap_or(0));
    if usize::from(ehsize) != EHDR_LEN {
        bail!("e_ehsize {ehsize} is not {EHDR_LEN}");
    }
    if phnum == 0 {
        bail!("the ELF file has no program headers");
    }
    if usize::from(phentsize) != PHDR_LEN {
        bail!("e_phentsize {phentsize} is not {PHDR_LEN}");
    }
    if phnum > MAX_PHDRS {
        bail!("{phnum} program headers (more than {MAX_PHDRS})");
    }
    let table_end = phoff
        .checked_add((phnum * PHDR_LEN) as u64)
        .filter(|&e| e <= elf.len() as u64)
        .with_context(|| {
            format!(
                "program header table at 0x{phoff:x} ({phnum} entries) runs past the end of \
                 the {}-byte file",
                elf.len()
            )
        })?;
    let _ = table_end;
    let phoff = phoff as usize;
    (0..phnum)
        .map(|i| Phdr::read(elf, phoff + i * PHDR_LEN).context("program header out of bounds"))
        .collect()
}

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
        p.write(&mut table_bytes);
    }
    out[table..table + table_bytes.len()].copy_from_slice(&table_bytes);
    Ok(out)
}

/// One ELF note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The name without its terminating NUL.
    pub name: Vec<u8>,
    pub n_type: u32,
    pub desc: Vec<u8>,
}

/// Every note in the file's `PT_NOTE` segments.
pub fn elf_notes(elf: &[u8]) -> Result<Vec<Note>> {
    let mut notes = Vec::new();
    for (i, p) in program_headers(elf)?.iter().enumerate() {
        if p.p_type != PT_NOTE {
            continue;
        }
        let seg = &elf[p.file_range(i, elf.len())?];
        let align = if p.p_align == 8 { 8 } else { 4 };
        let mut at = 0usize;
        while at < seg.len() {
            let bad = || format!("program header {i}: note at segment offset 0x{at:x} is cut off");
            let namesz = le32(seg, at).with_context(bad)? as usize;
            let descsz = le32(seg, at + 4).with_context(bad)? as usize;
            let n_type = le32(seg, at + 8).with_context(bad)?;
            let name_at = at + 12;
            let desc_at = name_at
                .checked_add(namesz)
                .map(|e| e.next_multiple_of(align))
                .with_context(bad)?;
            let end = desc_at.checked_add(descsz).with_context(bad)?;
            let name = seg.get(name_at..name_at + namesz).with_context(bad)?;
            let desc = seg.get(desc_at..end).with_context(bad)?;
            let name = name.strip_suffix(&[0]).unwrap_or(name);
            notes.push(Note {
                name: name.to_vec(),
                n_type,
                desc: desc.to_vec(),
            });
            at = end.next_multiple_of(align);
        }
    }
    Ok(notes)
}

/// The value of the `Xen` note `XEN_ELFNOTE_PHYS32_ENTRY` (a 4- or 8-byte address); an error
/// says clearly when the kernel has none (it would not boot as a PVH guest).
pub fn xen_phys32_entry(elf: &[u8]) -> Result<u64> {
    let notes = elf_notes(elf)?;
    let Some(note) = notes
        .iter()
        .find(|n| n.name == b"Xen" && n.n_type == XEN_ELFNOTE_PHYS32_ENTRY)
    else {
        let xen = notes.iter().filter(|n| n.name == b"Xen").count();
        bail!(
            "the kernel ELF has no Xen note XEN_ELFNOTE_PHYS32_ENTRY (type 18) in its PT_NOTE \
             segments ({} notes, {xen} of them Xen's): it has no PVH entry point",
            notes.len()
        );
    };
    match note.desc.len() {
        4 => Ok(u64::from(le32(&note.desc, 0).unwrap_or(0))),
        8 => Ok(le64(&note.desc, 0).unwrap_or(0)),
        n => bail!("XEN_ELFNOTE_PHYS32_ENTRY has a {n}-byte value (4 or 8 expected)"),
    }
}

// ---------------------------------------------------------------------------------------------
// initramfs

/// The newc ("070701") cpio writer: entries in the order given, then `TRAILER!!!`.
/// Times are 0 and owners root, so the same inputs give the same bytes.
#[derive(Debug, Default)]
pub struct CpioWriter {
    out: Vec<u8>,
    next_ino: u32,
}

/// File type bits of `st_mode`.
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

impl CpioWriter {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.next_ino += 1;
        let fields = [
            self.next_ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        let mut header = String::from("070701");
        for f in fields {
            let _ = write!(header, "{f:08X}");
        }
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }

    /// A directory; `perm` is e.g. `0o755`.
    pub fn dir(&mut self, path: &str, perm: u32) {
        self.entry(path, S_IFDIR | perm, 2, (0, 0), &[]);
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.entry(path, S_IFREG | perm, 1, (0, 0), data);
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.entry(path, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Appends the trailer and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }
}

/// `/init`: see the module documentation. Every command goes through `/bin/busybox`, so no
/// applet links are needed.
/// `/sbin/poweroff` in the initramfs.
pub const POWEROFF_SCRIPT: &str =
    "#!/bin/busybox sh\necho 'DOMU-INIT: poweroff requested'\nexec /bin/busybox poweroff -f\n";

pub const INIT_SCRIPT: &str = r#"#!/bin/busybox sh
# DomU init for the Rust PVH dom0's tests (written by image/src/guest.rs).
bb=/bin/busybox
$bb mount -t devtmpfs devtmpfs /dev 2>/dev/null
$bb mount -t proc proc /proc
$bb mount -t sysfs sysfs /sys

cpus=0
online=$($bb cat /sys/devices/system/cpu/online 2>/dev/null)
for r in $(echo "$online" | $bb tr ',' ' '); do
    case $r in
        *-*) cpus=$((cpus + ${r#*-} - ${r%-*} + 1)) ;;
        *) cpus=$((cpus + 1)) ;;
    esac
done
[ "$cpus" -gt 0 ] || cpus=$($bb nproc)
echo "DOMU-INIT: up $($bb uname -r) vcpus=$cpus"

# One XS_WRITE (type 11) through xenbus_dev_frontend: a 16-byte header
# {u32 type, u32 req_id, u32 tx_id, u32 len}, then "<path>\0<value>".
le32() {
    for s in 0 8 16 24; do
        printf "\\$(printf %03o $((($1 >> s) & 255)))"
    done
}
# Runs in a subshell ($(...)): a failed `exec` must not end init.
xs_write() {
    [ -e /dev/xen/xenbus ] || return 1
    exec 3<>/dev/xen/xenbus || return 1
    len=$((${#1} + 1 + ${#2}))
    { le32 11; le32 1; le32 0; le32 $len; printf '%s\000%s' "$1" "$2"; } >&3
    # The reply: a 16-byte header and "OK\0" (an error name is longer).
    $bb timeout 10 $bb dd bs=1 count=19 <&3 2>/dev/null | $bb tr -cd 'A-Za-z'
}
reply=$(xs_write data/init "hello from init" 2>/dev/null)
case $reply in
    *OK*) echo "DOMU-INIT: xenstore write ok" ;;
    *) echo "DOMU-INIT: xenstore write failed${reply:+ ($reply)}" ;;
esac

cmdline=" $($bb cat /proc/cmdline) "
case $cmdline in
    *" domu-test=crash "*)
        echo "DOMU-INIT: crashing"
        exit 1
        ;;
    *" domu-test=stay "*)
        echo "DOMU-INIT: staying"
        while true; do $bb sleep 1; done
        ;;
esac
echo "DOMU-INIT: powering off"
$bb poweroff -f
echo o > /proc/sysrq-trigger
$bb reboot -f
"#;

/// The initramfs: `/bin/busybox`, `/init` ([`INIT_SCRIPT`]), `/dev/console` (so init has a
/// console before devtmpfs is mounted) and the directories `/init` mounts on.
pub fn initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut w = CpioWriter::new();
    for d in ["bin", "dev", "etc", "proc", "sys", "sbin", "tmp"] {
        w.dir(d, if d == "tmp" { 0o1777 } else { 0o755 });
    }
    w.char_dev("dev/console", 0o600, 5, 1);
    w.file("bin/busybox", 0o755, busybox);
    w.file("init", 0o755, INIT_SCRIPT.as_bytes());
    // What Linux runs for a xenstore `control/shutdown` = "poweroff" (orderly_poweroff() runs
    // /sbin/poweroff); busybox's own applet would signal init, a shell script that would die.
    w.file("sbin/poweroff", 0o755, POWEROFF_SCRIPT.as_bytes());
    w.finish()
}

/// Writes `dir/initramfs.cpio` if it is missing or differs from [`initramfs`]`(busybox)`.
fn write_initramfs(dir: &Path, busybox: &[u8]) -> Result<PathBuf> {
    let path = dir.join("initramfs.cpio");
    let bytes = initramfs(busybox);
    if fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
        write_atomic(&path, &bytes)?;
    }
    Ok(path)
}

// ---------------------------------------------------------------------------------------------
// DomUs for a boot bundle

/// Which kernel a `--domu` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomuKernel {
    /// Debian's Linux with the busybox initramfs ([`fetch_linux`]).
    #[default]
    Linux,
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
            DomuKernel::Testguest => "testguest",
        }
    }
}

/// A DomU running the fetched guest (or the test guest), as `cargo image run --domu
/// NAME[:OPTS]` describes it.
///
/// `FromStr`: `NAME[:kernel=linux|testguest][,memory=MIB][,vcpus=N][,cmdline=TEXT]`;
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
        }
    }

    /// The full kernel command line.
    pub fn cmdline(&self) -> String {
        let extra = self.cmdline_extra.trim();
        match self.kernel {
            DomuKernel::Testguest => extra.to_string(),
            DomuKernel::Linux if extra.is_empty() => DEFAULT_CMDLINE.to_string(),
            DomuKernel::Linux => format!("{DEFAULT_CMDLINE} {extra}"),
        }
    }

    /// The bundle description: kernel [`KERNEL_ENTRY`] and initrd [`INITRD_ENTRY`] (or kernel
    /// [`TESTGUEST_ENTRY`] and no initrd), a console.
    pub fn domain_input(&self) -> DomainSpecInput {
        let (kernel, initrd) = match self.kernel {
            DomuKernel::Linux => (KERNEL_ENTRY, Some(INITRD_ENTRY.to_string())),
            DomuKernel::Testguest => (TESTGUEST_ENTRY, None),
        };
        DomainSpecInput {
            name: self.name.clone(),
            memory_mib: self.memory_mib,
            vcpus: self.vcpus,
            cmdline: self.cmdline(),
            kernel: kernel.to_string(),
            initrd,
            devices: vec!["console".to_string()],
        }
    }
}

impl FromStr for DomuSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, opts) = s.split_once(':').unwrap_or((s, ""));
        if name.is_empty() {
            return Err(format!(
                "{s:?}: the DomU needs a name (NAME[:memory=MIB,vcpus=N,cmdline=TEXT])"
            ));
        }
        let mut spec = DomuSpec::new(name);
        let (mut memory, mut vcpus, mut kernel) = (false, false, false);
        let mut rest = opts;
        while !rest.is_empty() {
            if let Some(c) = rest.strip_prefix("cmdline=") {
                spec.cmdline_extra = c.to_string();
                break;
            }
            let (item, tail) = rest.split_once(',').unwrap_or((rest, ""));
            rest = tail;
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "{item:?} is not key=value (kernel, memory, vcpus, cmdline)"
                ));
            };
            match key {
                "kernel" if !kernel => {
                    kernel = true;
                    spec.kernel = match value {
                        "linux" => DomuKernel::Linux,
                        "testguest" => DomuKernel::Testguest,
                        _ => return Err(format!("kernel={value:?}: linux or testguest")),
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
                "memory" | "vcpus" | "kernel" => return Err(format!("{key} given twice")),
                _ => {
                    return Err(format!(
                        "unknown key {key:?} (kernel, memory, vcpus, cmdline)"
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
    if domus.iter().any(|d| d.kernel == DomuKernel::Linux) {
        let Some(guest) = linux else {
            bail!("a Linux DomU needs the Debian guest (cargo image fetch-linux)");
        };
        files.push((
            FileKind::Kernel,
            KERNEL_ENTRY.to_string(),
            read(&guest.vmlinux)?,
        ));
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
mod tests {
    use super::*;

    // ---- cpio ----

    #[derive(Debug)]
    struct Entry {
        name: String,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    /// A strict newc reader: magic, hex fields, 4-byte alignment of every header and every
    /// data block, zero padding, the trailer last and nothing after it.
    fn parse_cpio(a: &[u8]) -> Vec<Entry> {
        assert_eq!(a.len() % 4, 0, "archive length not 4-aligned");
        let mut at = 0;
        let mut out = Vec::new();
        loop {
            assert_eq!(at % 4, 0, "header at {at} not 4-aligned");
            let h = &a[at..at + 110];
            assert_eq!(&h[..6], b"070701");
            let f: Vec<u32> = (0..13)
                .map(|i| {
                    let hex = std::str::from_utf8(&h[6 + i * 8..14 + i * 8]).unwrap();
                    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{hex}");
                    u32::from_str_radix(hex, 16).unwrap()
                })
                .collect();
            let namesize = f[11] as usize;
            let name = &a[at + 110..at + 110 + namesize];
            assert_eq!(name.last(), Some(&0), "name not NUL-terminated");
            let name = std::str::from_utf8(&name[..namesize - 1])
                .unwrap()
                .to_string();
            let data_at = (at + 110 + namesize).next_multiple_of(4);
            assert!(a[at + 110 + namesize..data_at].iter().all(|&b| b == 0));
            let size = f[6] as usize;
            let data = a[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            assert!(a[data_at + size..next].iter().all(|&b| b == 0));
            assert_eq!(
                (f[2], f[3], f[5], f[12]),
                (0, 0, 0, 0),
                "uid gid mtime check"
            );
            at = next;
            let trailer = name == "TRAILER!!!";
            out.push(Entry {
                name,
                ino: f[0],
                mode: f[1],
                nlink: f[4],
                rdev: (f[9], f[10]),
                data,
            });
            if trailer {
                assert_eq!(at, a.len(), "bytes after the trailer");
                return out;
            }
        }
    }

    #[test]
    fn cpio_round_trip() {
        let mut w = CpioWriter::new();
        w.dir("d", 0o755);
        w.file("d/f", 0o644, b"hello");
        w.file("empty", 0o600, b"");
        w.file("four", 0o600, b"1234");
        w.symlink("link", "d/f");
        w.char_dev("console", 0o600, 5, 1);
        let a = w.finish();
        let e = parse_cpio(&a);
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["d", "d/f", "empty", "four", "link", "console", "TRAILER!!!"]
        );
        assert_eq!(e[0].mode, S_IFDIR | 0o755);
        assert_eq!(e[0].nlink, 2);
        assert_eq!(
            (e[1].mode, e[1].data.as_slice()),
            (S_IFREG | 0o644, &b"hello"[..])
        );
        assert!(e[2].data.is_empty());
        assert_eq!(
            (e[4].mode, e[4].data.as_slice()),
            (S_IFLNK | 0o777, &b"d/f"[..])
        );
        assert_eq!((e[5].mode, e[5].rdev), (S_IFCHR | 0o600, (5, 1)));
        // Distinct inode numbers (the kernel links entries with equal ino/nlink > 1).
        let mut inos: Vec<u32> = e[..6].iter().map(|e| e.ino).collect();
        inos.dedup();
        assert_eq!(inos.len(), 6);
        assert_eq!((e[6].mode, e[6].data.len()), (0, 0));
        // The exact first header: ino 1, mode 040755, nlink 2, namesize 2.
        let fields = [1, 0o40755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 0];
        let want: String = fields.iter().map(|f| format!("{f:08X}")).collect();
        assert_eq!(a[..110], *format!("070701{want}").as_bytes());
        assert_eq!(&a[110..112], b"d\0");
        // The empty archive is the trailer alone.
        let empty = CpioWriter::new().finish();
        assert_eq!(parse_cpio(&empty).len(), 1);
        assert_eq!(empty.len(), 124);
    }

    #[test]
    fn cpio_alignment_for_every_name_and_size() {
        for name_len in 1..9 {
            for size in 0..9 {
                let mut w = CpioWriter::new();
                let name = "n".repeat(name_len);
                let data = vec![0xa5; size];
                w.file(&name, 0o644, &data);
                let e = parse_cpio(&w.finish());
                assert_eq!(
                    (e[0].name.as_str(), e[0].data.as_slice()),
                    (name.as_str(), data.as_slice())
                );
            }
        }
    }

    #[test]
    fn initramfs_layout() {
        let bb = b"\x7fELF fake busybox".to_vec();
        let a = initramfs(&bb);
        let e = parse_cpio(&a);
        let find = |n: &str| {
            e.iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("{n}"))
        };
        for d in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
            assert_eq!(find(d).mode & 0o170000, S_IFDIR, "{d}");
        }
        assert_eq!(find("tmp").mode, S_IFDIR | 0o1777);
        assert_eq!(find("bin/busybox").mode, S_IFREG | 0o755);
        assert_eq!(find("bin/busybox").data, bb);
        let init = find("init");
        assert_eq!(init.mode, S_IFREG | 0o755);
        assert_eq!(init.data, INIT_SCRIPT.as_bytes());
        assert_eq!(find("dev/console").rdev, (5, 1));
        // Directories come before what is in them.
        let pos = |n: &str| e.iter().position(|e| e.name == n).unwrap();
        assert!(pos("bin") < pos("bin/busybox") && pos("dev") < pos("dev/console"));
        assert_eq!(initramfs(&bb), a, "not deterministic");
    }

    #[test]
    fn init_script_says_what_the_tests_look_for() {
        let s = INIT_SCRIPT;
        assert!(s.starts_with("#!/bin/busybox sh\n"));
        for needle in [
            "mount -t devtmpfs devtmpfs /dev",
            "mount -t proc proc /proc",
            "mount -t sysfs sysfs /sys",
            "/sys/devices/system/cpu/online",
            "echo \"DOMU-INIT: up $($bb uname -r) vcpus=$cpus\"",
            "/dev/xen/xenbus",
            "le32 11; le32 1; le32 0; le32 $len;",
            "xs_write data/init \"hello from init\"",
            "DOMU-INIT: xenstore write ok",
            "DOMU-INIT: xenstore write failed",
            "*\" domu-test=crash \"*)",
            "DOMU-INIT: crashing\"\n        exit 1",
            "*\" domu-test=stay \"*)",
            "while true; do $bb sleep 1; done",
            "DOMU-INIT: powering off",
            "$bb poweroff -f\necho o > /proc/sysrq-trigger\n$bb reboot -f\n",
        ] {
            assert!(s.contains(needle), "init script lacks {needle:?}");
        }
        // Every command runs through busybox: no applet links are in the archive.
        for applet in [
            "mount", "cat", "tr", "nproc", "uname", "timeout", "dd", "sleep",
        ] {
            assert!(!s.contains(&format!("\n{applet} ")), "{applet} without $bb");
        }
    }

    // ---- bzImage ----

    fn bzimage(setup_sects: u8, rel: u32, payload: &[u8], protocol: u16) -> Vec<u8> {
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
        let p = locate_payload(&bzimage(27, 0x2cc, XZ, 0x020f)).unwrap();
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
        let p = locate_payload(&bzimage(0, 16, XZ, 0x0208)).unwrap();
        assert_eq!(p.offset, 5 * 512 + 16);
        let gz = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        let zst = [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0, 9];
        assert_eq!(
            locate_payload(&bzimage(1, 0, &gz, 0x020f))
                .unwrap()
                .compression,
            Compression::Gzip
        );
        assert_eq!(
            locate_payload(&bzimage(1, 0, &zst, 0x020f))
                .unwrap()
                .compression,
            Compression::Zstd
        );
        assert_eq!(Compression::Zstd.tool(), "zstd");
    }

    fn err(img: &[u8]) -> String {
        format!("{:#}", locate_payload(img).unwrap_err())
    }

    #[test]
    fn bzimage_bad_headers_are_named() {
        let good = bzimage(3, 0x100, XZ, 0x020f);
        assert!(err(&[]).contains("too short"));
        assert!(err(&good[..0x24f]).contains("too short"));
        let mut b = good.clone();
        b[0x1fe] = 0;
        assert!(err(&b).contains("0xAA55"));
        let mut b = good.clone();
        b[0x202] = b'X';
        assert!(err(&b).contains("HdrS"));
        assert!(err(&bzimage(3, 0, XZ, 0x0207)).contains("2.07"));
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
        assert!(err(&bzimage(3, 0, b"LZMA????", 0x020f)).contains("not gzip, XZ or zstd"));
        assert!(err(&bzimage(3, 0, &XZ[..6], 0x020f)).contains("too short"));
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
        let good = bzimage(3, 0x100, XZ, 0x020f);
        for _ in 0..5000 {
            let mut b = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let at =
                    [0x1f1, 0x206, 0x207, 0x248, 0x249, 0x24b, 0x24c, 0x24f][next() as usize % 8];
                b[at] = next() as u8;
            }
            b.truncate(next() as usize % (good.len() + 1));
            if let Ok(p) = locate_payload(&b) {
                assert!(p.offset + p.len <= b.len());
            }
        }
    }

    // ---- ELF ----

    fn put_phdr(out: &mut [u8], at: usize, p: Phdr) {
        let mut v = Vec::new();
        p.write(&mut v);
        out[at..at + PHDR_LEN].copy_from_slice(&v);
    }

    fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&ty.to_le_bytes());
        n.extend_from_slice(name);
        n.push(0);
        n.resize(n.len().next_multiple_of(4), 0);
        n.extend_from_slice(desc);
        n.resize(n.len().next_multiple_of(4), 0);
        n
    }

    const LOAD0_OFF: usize = 0x20_0000;
    const NOTE_IN_LOAD: usize = 0x20_0100;
    const LOAD1_OFF: usize = 0x20_3123;
    const OUTER_NOTE_OFF: usize = 0x20_5000;

    /// A vmlinux-like ELF: two LOADs with 2 MiB alignment, a PT_NOTE inside the first (Xen's
    /// PHYS32_ENTRY among other notes), a GNU_STACK, a PT_NOTE outside every LOAD, a
    /// PT_DYNAMIC-like segment with bytes outside every LOAD, a PT_PHDR, "debug" bytes and
    /// section headers.
    fn vmlinux_like(notes: &[u8]) -> (Vec<u8>, Vec<Phdr>) {
        let mut elf = vec![0u8; 0x21_0000];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[6] = 1;
        elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[24..32].copy_from_slice(&0x100_0000u64.to_le_bytes());
        elf[32..40].copy_from_slice(&64u64.to_le_bytes());
        elf[40..48].copy_from_slice(&0x20_8000u64.to_le_bytes()); // e_shoff
        elf[52..54].copy_from_slice(&64u16.to_le_bytes());
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[58..60].copy_from_slice(&64u16.to_le_bytes());
        elf[60..62].copy_from_slice(&5u16.to_le_bytes());
        elf[62..64].copy_from_slice(&4u16.to_le_bytes());
        for (i, b) in elf.iter_mut().enumerate().skip(0x1000) {
            *b = (i * 7 + i / 251) as u8; // recognisable bytes everywhere
        }
        // A zero tail in the first LOAD (a .bss in the file), then bytes again in the second.
        elf[LOAD0_OFF + 0x1000..LOAD0_OFF + 0x2000].fill(0);
        elf[NOTE_IN_LOAD..NOTE_IN_LOAD + notes.len()].copy_from_slice(notes);
        let outer = note(b"GNU", 3, b"buildid!");
        elf[OUTER_NOTE_OFF..OUTER_NOTE_OFF + outer.len()].copy_from_slice(&outer);
        let phdrs = vec![
            Phdr {
                p_type: PT_PHDR,
                p_flags: 4,
                p_offset: 64,
                p_vaddr: 0x40,
                p_paddr: 0x40,
                p_filesz: 8 * 56,
                p_memsz: 8 * 56,
                p_align: 8,
            },
            Phdr {
                p_type: PT_LOAD,
                p_flags: 5,
                p_offset: LOAD0_OFF as u64,
                p_vaddr: 0xffff_ffff_8100_0000,
                p_paddr: 0x100_0000,
                p_filesz: 0x2000,
                p_memsz: 0x3000,
                p_align: 0x20_0000,
            },
            Phdr {
                p_type: PT_LOAD,
                p_flags: 6,
                p_offset: LOAD1_OFF as u64,
                p_vaddr: 0xffff_ffff_8220_3123,
                p_paddr: 0x220_3123,
                p_filesz: 0x800,
                p_memsz: 0x10_0000,
                p_align: 0x20_0000,
            },
            Phdr {
                p_type: PT_NOTE,
                p_flags: 4,
                p_offset: NOTE_IN_LOAD as u64,
                p_vaddr: 0xffff_ffff_8100_0100,
                p_paddr: 0x100_0100,
                p_filesz: notes.len() as u64,
                p_memsz: notes.len() as u64,
                p_align: 4,
            },
            Phdr {
                p_type: 0x6474_e551,
                p_flags: 6,
                p_offset: 0,
                p_vaddr: 0,
                p_paddr: 0,
                p_filesz: 0,
                p_memsz: 0,
                p_align: 16,
            },
            Phdr {
                p_type: PT_NOTE,
                p_flags: 4,
                p_offset: OUTER_NOTE_OFF as u64,
                p_vaddr: 0,
                p_paddr: 0,
                p_filesz: outer.len() as u64,
                p_memsz: outer.len() as u64,
                p_align: 4,
            },
            Phdr {
                p_type: 2,
                p_flags: 6,
                p_offset: 0x20_6000,
                p_vaddr: 0,
                p_paddr: 0,
                p_filesz: 0x100,
                p_memsz: 0x100,
                p_align: 8,
            },
            Phdr {
                p_type: PT_LOAD,
                p_flags: 6,
                p_offset: 0x20_7000,
                p_vaddr: 0xffff_ffff_8300_0000,
                p_paddr: 0x300_0000,
                p_filesz: 0,
                p_memsz: 0x1000,
                p_align: 0x1000,
            },
        ];
        elf[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, p) in phdrs.iter().enumerate() {
            put_phdr(&mut elf, 64 + i * PHDR_LEN, *p);
        }
        (elf, phdrs)
    }

    fn xen_notes(entry: &[u8]) -> Vec<u8> {
        [
            note(b"Xen", 6, b"linux\0"),
            note(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, entry),
            note(b"Linux", 1, b"x"),
        ]
        .concat()
    }

    #[test]
    fn compaction_keeps_loads_and_notes_only() {
        let (elf, old) = vmlinux_like(&xen_notes(&0x100_0850u64.to_le_bytes()));
        let out = compact_elf(&elf).unwrap();
        assert!(out.len() < 0x5000, "{} bytes", out.len());
        assert_eq!(&out[..32], &elf[..32], "ident, type, machine, entry");
        assert_eq!(le64(&out, 32), Some(64));
        assert_eq!(le64(&out, 40), Some(0), "e_shoff");
        assert_eq!(le16(&out, 60), Some(0), "e_shnum");
        assert_eq!(le16(&out, 62), Some(0), "e_shstrndx");
        let new = program_headers(&out).unwrap();
        // PT_PHDR and the segment with bytes outside every LOAD are gone, the rest in order.
        let types: Vec<u32> = new.iter().map(|p| p.p_type).collect();
        assert_eq!(
            types,
            [PT_LOAD, PT_LOAD, PT_NOTE, 0x6474_e551, PT_NOTE, PT_LOAD]
        );
        let kept = [&old[1], &old[2], &old[3], &old[4], &old[5], &old[7]];
        for (n, o) in new.iter().zip(kept) {
            assert_eq!(
                (n.p_flags, n.p_vaddr, n.p_paddr, n.p_memsz),
                (o.p_flags, o.p_vaddr, o.p_paddr, o.p_memsz)
            );
            let (nr, or) = (
                n.file_range(0, out.len()).unwrap(),
                o.file_range(0, elf.len()).unwrap(),
            );
            // The kept bytes, and only zeros left out.
            let (kept, dropped) = elf[or].split_at(nr.len());
            assert_eq!(out[nr], *kept, "bytes of {o:?}");
            assert!(dropped.iter().all(|&b| b == 0), "{o:?}");
            if n.p_type == PT_LOAD {
                assert_eq!(n.p_offset % PAGE, o.p_offset % PAGE);
                assert_eq!(n.p_offset % n.p_align, n.p_vaddr % n.p_align);
            }
        }
        // 2 MiB alignment could not be kept without padding: lowered to a page (the loop
        // above checked offset/address congruence with whatever p_align is left).
        assert_eq!((new[0].p_align, new[1].p_align), (PAGE, PAGE));
        assert_eq!(new[5].p_align, 0x1000);
        // The note inside the first LOAD points into its copy.
        assert_eq!(
            new[2].p_offset - new[0].p_offset,
            (NOTE_IN_LOAD - LOAD0_OFF) as u64
        );
        assert_eq!(new[3].p_offset, 0);
        // The first LOAD's zero tail is left to the loader; the others are whole.
        assert_eq!(new[0].p_filesz, 0x1000);
        assert_eq!(
            (new[1].p_filesz, new[4].p_filesz),
            (old[2].p_filesz, old[5].p_filesz)
        );
        assert_eq!(xen_phys32_entry(&out).unwrap(), 0x100_0850);
        assert_eq!(xen_phys32_entry(&elf).unwrap(), 0x100_0850);
        let notes = elf_notes(&out).unwrap();
        assert_eq!(notes.len(), 4);
        assert_eq!(
            (notes[3].name.as_slice(), notes[3].n_type),
            (&b"GNU"[..], 3)
        );
        // Compacting again changes nothing.
        assert_eq!(compact_elf(&out).unwrap(), out);
    }

    #[test]
    fn phys32_entry_note_forms() {
        let (elf, _) = vmlinux_like(&xen_notes(&0x100_0850u32.to_le_bytes()));
        assert_eq!(
            xen_phys32_entry(&compact_elf(&elf).unwrap()).unwrap(),
            0x100_0850
        );
        let (elf, _) = vmlinux_like(&xen_notes(&[1, 2, 3]));
        let e = format!("{:#}", xen_phys32_entry(&elf).unwrap_err());
        assert!(e.contains("3-byte"), "{e}");
        let without = [note(b"Xen", 6, b"linux\0"), note(b"Linux", 18, b"abcd")].concat();
        let (elf, _) = vmlinux_like(&without);
        let e = format!("{:#}", xen_phys32_entry(&elf).unwrap_err());
        assert!(e.contains("no Xen note XEN_ELFNOTE_PHYS32_ENTRY"), "{e}");
        assert!(e.contains("1 of them Xen's"), "{e}");
        // A note whose sizes run past its segment.
        let mut bad = note(b"Xen", 18, &[0; 8]);
        bad[4..8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let (elf, _) = vmlinux_like(&bad);
        let e = format!("{:#}", xen_phys32_entry(&elf).unwrap_err());
        assert!(e.contains("cut off"), "{e}");
    }

    fn patched(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let (mut elf, _) = vmlinux_like(&xen_notes(&[0; 8]));
        f(&mut elf);
        format!("{:#}", compact_elf(&elf).unwrap_err())
    }

    fn set_phdr(elf: &mut [u8], i: usize, f: impl FnOnce(&mut Phdr)) {
        let mut p = Phdr::read(elf, 64 + i * PHDR_LEN).unwrap();
        f(&mut p);
        put_phdr(elf, 64 + i * PHDR_LEN, p);
    }

    #[test]
    fn hostile_elves_are_rejected() {
        assert!(compact_elf(b"").is_err());
        assert!(patched(|e| e[1] = b'X').contains("not an ELF"));
        assert!(patched(|e| e[4] = 1).contains("ELF64 little-endian"));
        assert!(patched(|e| e[5] = 2).contains("ELF64 little-endian"));
        assert!(patched(|e| e.truncate(63)).contains("not an ELF"));
        assert!(patched(|e| e[52] = 52).contains("e_ehsize"));
        assert!(patched(|e| e[54] = 32).contains("e_phentsize"));
        assert!(
            patched(|e| e[56..58].copy_from_slice(&0u16.to_le_bytes()))
                .contains("no program headers")
        );
        assert!(
            patched(|e| e[56..58].copy_from_slice(&0xffffu16.to_le_bytes()))
                .contains("program headers (more than")
        );
        assert!(
            patched(|e| e[32..40].copy_from_slice(&u64::MAX.to_le_bytes()))
                .contains("runs past the end")
        );
        assert!(
            patched(|e| e[32..40].copy_from_slice(&(0x21_0000u64 - 100).to_le_bytes()))
                .contains("runs past the end")
        );
        assert!(
            patched(|e| set_phdr(e, 1, |p| p.p_offset = u64::MAX - 4)).contains("past the end")
        );
        assert!(patched(|e| set_phdr(e, 2, |p| p.p_filesz = 0x21_0000)).contains("past the end"));
        assert!(patched(|e| set_phdr(e, 1, |p| p.p_memsz = 0x10)).contains("larger than p_memsz"));
        assert!(
            patched(|e| {
                for i in [1, 2, 7] {
                    set_phdr(e, i, |p| p.p_type = 0x7000_0000);
                }
            })
            .contains("no PT_LOAD")
        );
        // 256 LOADs each covering the whole file: refused, not a 256-fold copy.
        let mut elf = vec![0u8; 64 + 256 * PHDR_LEN];
        elf[..64].copy_from_slice(&vmlinux_like(&[]).0[..64]);
        elf[56..58].copy_from_slice(&256u16.to_le_bytes());
        let len = elf.len() as u64;
        for i in 0..256 {
            let p = Phdr {
                p_type: PT_LOAD,
                p_flags: 4,
                p_offset: 0,
                p_vaddr: 0,
                p_paddr: 0,
                p_filesz: len,
                p_memsz: len,
                p_align: 8,
            };
            put_phdr(&mut elf, 64 + i * PHDR_LEN, p);
        }
        let e = format!("{:#}", compact_elf(&elf).unwrap_err());
        assert!(e.contains("overlap too much"), "{e}");
    }

    #[test]
    fn random_elf_damage_never_panics() {
        let (good, _) = vmlinux_like(&xen_notes(&[0x50, 8, 0, 1, 0, 0, 0, 0]));
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut ok = 0;
        for _ in 0..3000 {
            let mut b = good.clone();
            for _ in 0..(next() % 6 + 1) {
                let at = next() as usize % (64 + 8 * PHDR_LEN);
                b[at] = if next() % 2 == 0 { next() as u8 } else { 0xff };
            }
            if next() % 8 == 0 {
                b.truncate(next() as usize % b.len());
            }
            if let Ok(out) = compact_elf(&b) {
                ok += 1;
                let phdrs = program_headers(&out).unwrap();
                for (i, p) in phdrs.iter().enumerate() {
                    p.file_range(i, out.len()).unwrap();
                }
                let _ = xen_phys32_entry(&out);
            }
            let _ = elf_notes(&b);
        }
        assert!(ok > 0);
    }

    // ---- packages, DomUs ----

    #[test]
    fn kernel_package_is_read_from_apt_cache() {
        let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
        assert_eq!(
            kernel_package_from_depends(text).as_deref(),
            Some("linux-image-6.1.0-56-amd64")
        );
        let text = "linux-image-amd64\n  Depends: initramfs-tools\n |Depends: linux-image-6.12.9-amd64 (= 6.12.9-1)\n";
        assert_eq!(
            kernel_package_from_depends(text).as_deref(),
            Some("linux-image-6.12.9-amd64")
        );
        assert_eq!(kernel_package_from_depends("linux-image-amd64\n"), None);
        assert_eq!(
            kernel_package_from_depends("  Depends: linux-image-../../x-amd64\n"),
            None
        );
        assert!(!valid_version("../x") && !valid_version("") && valid_version("6.1.0-56-amd64"));
    }

    #[test]
    fn domu_specs_parse() {
        assert_eq!("demo".parse::<DomuSpec>().unwrap(), DomuSpec::new("demo"));
        let d: DomuSpec = "crashy:memory=64,vcpus=2,cmdline=domu-test=crash x=a,b"
            .parse()
            .unwrap();
        assert_eq!(
            d,
            DomuSpec {
                name: "crashy".into(),
                kernel: DomuKernel::Linux,
                memory_mib: 64,
                vcpus: 2,
                cmdline_extra: "domu-test=crash x=a,b".into()
            }
        );
        assert_eq!(d.cmdline(), "console=hvc0 loglevel=4 domu-test=crash x=a,b");
        assert_eq!(DomuSpec::new("x").cmdline(), DEFAULT_CMDLINE);
        let i = d.domain_input();
        assert_eq!(
            (i.kernel.as_str(), i.initrd.as_deref()),
            ("linux", Some("initramfs"))
        );
        assert_eq!(i.devices, ["console"]);
        for bad in [
            "",
            ":memory=1",
            "x:memory=0",
            "x:vcpus=two",
            "x:memory=1,memory=2",
            "x:colour=red",
            "x:memory",
            "x:kernel=bsd",
            "x:kernel=linux,kernel=testguest",
        ] {
            assert!(bad.parse::<DomuSpec>().is_err(), "{bad}");
        }
        // The test guest: its own small default memory, no initrd, only the given cmdline.
        let h: DomuSpec = "hostile:kernel=testguest".parse().unwrap();
        assert_eq!(h.kernel, DomuKernel::Testguest);
        assert_eq!(h.memory_mib, TESTGUEST_MEMORY_MIB);
        assert_eq!(h.cmdline(), "");
        let i = h.domain_input();
        assert_eq!((i.kernel.as_str(), i.initrd), ("testguest", None));
        assert_eq!(i.devices, ["console"]);
        let h: DomuSpec = "h:memory=48,kernel=testguest,cmdline=x".parse().unwrap();
        assert_eq!((h.memory_mib, h.cmdline().as_str()), (48, "x"));
        assert_eq!(
            "l:kernel=linux".parse::<DomuSpec>().unwrap(),
            DomuSpec::new("l")
        );
    }

    #[test]
    fn memory_is_raised_for_domus() {
        let two = [DomuSpec::new("a"), "b:memory=512".parse().unwrap()];
        assert_eq!(memory_for_domus(1024, 64, &[], false), (1024, 64));
        assert_eq!(
            memory_for_domus(1024, 64, &two, false),
            (256 + 128 + 512 + 256, 256)
        );
        assert_eq!(memory_for_domus(4096, 512, &two, false), (4096, 512));
        assert_eq!(memory_for_domus(1024, 64, &two, true), (1024, 64));
    }

    #[test]
    fn domu_bundles_share_one_kernel_and_initrd() {
        let dir = std::env::temp_dir().join(format!("guest-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (elf, _) = vmlinux_like(&xen_notes(&[0x50, 8, 0, 1]));
        let elf = compact_elf(&elf).unwrap();
        fs::write(dir.join("vmlinux.elf"), &elf).unwrap();
        let initramfs = write_initramfs(&dir, b"bb").unwrap();
        let guest = GuestFiles {
            kernel_version: "6.1.0-0-amd64".into(),
            kernel_package: "k 1".into(),
            busybox_package: "b 1".into(),
            vmlinux: dir.join("vmlinux.elf"),
            initramfs,
            phys32_entry: 0x100_0850,
        };
        let domus = [
            DomuSpec::new("demo"),
            "crashy:memory=64,vcpus=2,cmdline=domu-test=crash"
                .parse()
                .unwrap(),
        ];
        let bytes = domu_bundle(&domus, Some(&guest), None).unwrap();
        let b = toolstack::bundle::parse(&bytes).unwrap();
        assert_eq!(b.files.len(), 2);
        assert_eq!(
            (b.files[0].name, b.files[0].data),
            ("linux", elf.as_slice())
        );
        assert_eq!(b.files[1].name, "initramfs");
        assert_eq!(b.domains.len(), 2);
        assert_eq!(
            b.domains[1].cmdline,
            "console=hvc0 loglevel=4 domu-test=crash"
        );
        assert_eq!((b.domains[1].memory_mib, b.domains[1].vcpus), (64, 2));
        assert_eq!(b.domains[0].memory_mib, 128);
        assert!(
            b.domains
                .iter()
                .all(|d| d.kernel == "linux" && d.initrd.as_deref() == Some("initramfs"))
        );
        // A name dom0 would refuse is refused here.
        let long = [DomuSpec::new(&"n".repeat(65))];
        assert!(domu_bundle(&long, Some(&guest), None).is_err());
        assert!(domu_bundle(&[], Some(&guest), None).is_err());

        // A test guest next to a Linux DomU: its own kernel entry, no initrd; each file only
        // when a DomU needs it, and an error when one is needed but missing.
        fs::write(dir.join("testguest"), &elf).unwrap();
        let tg = dir.join("testguest");
        let mixed = [
            DomuSpec::new("demo"),
            "hostile:kernel=testguest".parse().unwrap(),
        ];
        let bytes = domu_bundle(&mixed, Some(&guest), Some(&tg)).unwrap();
        let b = toolstack::bundle::parse(&bytes).unwrap();
        let names: Vec<&str> = b.files.iter().map(|f| f.name).collect();
        assert_eq!(names, ["linux", "initramfs", "testguest"]);
        assert_eq!(
            (b.domains[1].kernel.as_str(), b.domains[1].initrd.as_deref()),
            ("testguest", None)
        );
        assert_eq!(b.domains[1].memory_mib, TESTGUEST_MEMORY_MIB);
        let only = &mixed[1..];
        let b = domu_bundle(only, None, Some(&tg)).unwrap();
        assert_eq!(toolstack::bundle::parse(&b).unwrap().files.len(), 1);
        assert!(domu_bundle(only, Some(&guest), None).is_err());
        assert!(domu_bundle(&mixed[..1], None, Some(&tg)).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
