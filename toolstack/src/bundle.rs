//! The boot bundle: the one boot module Xen hands a PVH dom0, packing everything dom0 needs to
//! build DomUs (domain descriptions, kernels, initrds).
//!
//! [`parse`] validates a whole bundle up front and returns zero-copy slices into the module; it
//! never panics, whatever the bytes. The host packer is `image::bundle::pack`
//! (`cargo image bundle`).
//!
//! # Format, version 1
//!
//! All integers are little-endian. Offsets are from the start of the module.
//!
//! Header, 32 bytes:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 8 | magic `"XDB0BNDL"` |
//! | 8  | 4 | format version, `1` |
//! | 12 | 4 | entry count |
//! | 16 | 8 | total length of the bundle in bytes, header included; a multiple of 8 |
//! | 24 | 4 | CRC-32 (IEEE 802.3, as in zlib/PNG) of bytes `32..total length` |
//! | 28 | 4 | reserved, zero |
//!
//! The module may be longer than the total length (a loader may pad it); the rest is ignored.
//!
//! Then `entry count` entries, each starting 8-byte aligned, back to back:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0  | 4 | type: `1` domain description, `2` kernel, `3` initrd |
//! | 4  | 4 | name length `n`, 1..=64 |
//! | 8  | 8 | payload length `p` |
//! | 16 | n | name, UTF-8 without control characters |
//! | .. | .. | zero padding to the next multiple of 8 |
//! | .. | p | payload (so every payload starts 8-byte aligned) |
//! | .. | .. | zero padding to the next multiple of 8 |
//!
//! The last entry must end exactly at the total length. Names are unique per type. A kernel or
//! initrd payload is the file's bytes, unchanged.
//!
//! ## Domain description payload
//!
//! UTF-8 text, one `key=value` per line (`\n`), split at the first `=`; values are taken
//! verbatim (no trimming, no quoting, no control characters). Empty lines are ignored.
//!
//! | key | | meaning |
//! |---|---|---|
//! | `name` | required | the domain's name; must equal the entry's name |
//! | `memory` | required | memory in MiB, decimal, 1..=1048576 (1 TiB) |
//! | `vcpus` | required | vCPU count, decimal, 1..=128 |
//! | `kernel` | required | name of a kernel entry in this bundle |
//! | `initrd` | optional | name of an initrd entry in this bundle |
//! | `cmdline` | optional | the guest kernel command line (may hold `=`, spaces, commas), at most 2048 bytes |
//! | `device` | repeatable | `console`, `vif` or `vif=<mac>` (`aa:bb:cc:dd:ee:ff`, unicast) |
//! | `tsc_mode` | optional | xl.cfg's `default` (when absent), `always_emulate` or `native`: whether Xen traps the DomU's `rdtsc` (`XEN_DOMCTL_settscinfo`) |
//!
//! Every key but `device` may appear once; unknown keys are errors.
//!
//! ```text
//! name=demo
//! memory=64
//! vcpus=1
//! kernel=vmlinuz
//! cmdline=console=hvc0 root=/dev/xvda
//! device=console
//! device=vif=00:16:3e:00:00:01
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

pub use xen::domctl::TscMode;

/// The bundle magic.
pub const MAGIC: [u8; 8] = *b"XDB0BNDL";
/// The format version this code reads and writes.
pub const VERSION: u32 = 1;
/// Size of the bundle header.
pub const HEADER_LEN: usize = 32;
/// Size of an entry's fixed header (type, name length, payload length).
pub const ENTRY_HEADER_LEN: usize = 16;
/// Longest entry name in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most vCPUs a domain may ask for.
pub const MAX_VCPUS: u32 = 128;
/// Most memory a domain may ask for, in MiB (1 TiB).
pub const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Longest guest command line (Linux's x86 `COMMAND_LINE_SIZE`).
pub const MAX_CMDLINE_LEN: usize = 2048;
/// Alignment of entries and payloads.
pub const ALIGN: usize = 8;

/// Entry type numbers.
pub const TYPE_DOMAIN: u32 = 1;
/// Entry type of a kernel.
pub const TYPE_KERNEL: u32 = 2;
/// Entry type of an initrd.
pub const TYPE_INITRD: u32 = 3;

// ---------------------------------------------------------------------------------------------
// CRC-32

/// Continues a CRC-32 (IEEE, reflected, polynomial 0x04c11db7) over `data`; start with
/// `crc = 0`. `crc32_update(crc32_update(0, a), b) == crc32(a ++ b)`. The one CRC-32 of the
/// crate is `kernel::decompress::Crc32` (gzip's and XZ's check, slicing-by-8).
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = crate::kernel::decompress::Crc32::resume(crc);
    c.update(data);
    c.finish()
}

/// CRC-32 (IEEE 802.3 / zlib / PNG) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_update(0, data)
}

// ---------------------------------------------------------------------------------------------
// Types

/// What a file entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Kernel,
    Initrd,
}

impl FileKind {
    /// The entry type number.
    pub const fn type_id(self) -> u32 {
        match self {
            FileKind::Kernel => TYPE_KERNEL,
            FileKind::Initrd => TYPE_INITRD,
        }
    }

    /// `kernel` or `initrd`.
    pub const fn as_str(self) -> &'static str {
        match self {
            FileKind::Kernel => "kernel",
            FileKind::Initrd => "initrd",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Domain,
    File(FileKind),
}

impl EntryKind {
    fn from_type(t: u32) -> Option<Self> {
        match t {
            TYPE_DOMAIN => Some(EntryKind::Domain),
            TYPE_KERNEL => Some(EntryKind::File(FileKind::Kernel)),
            TYPE_INITRD => Some(EntryKind::File(FileKind::Initrd)),
            _ => None,
        }
    }

    /// `domain`, `kernel` or `initrd`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EntryKind::Domain => "domain",
            EntryKind::File(k) => k.as_str(),
        }
    }
}

/// A device a domain gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Device {
    /// The PV console.
    Console,
    /// A network interface; without a MAC the toolstack picks one.
    Vif { mac: Option<[u8; 6]> },
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Console => f.write_str("console"),
            Device::Vif { mac: None } => f.write_str("vif"),
            Device::Vif { mac: Some(m) } => write!(
                f,
                "vif={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
        }
    }
}

/// A domain to build, from a domain description entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    pub name: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cmdline: String,
    /// Name of the kernel entry.
    pub kernel: String,
    /// Name of the initrd entry.
    pub initrd: Option<String>,
    pub devices: Vec<Device>,
    /// How Xen gives the DomU its TSC ([`TscMode::Default`] unless the description says).
    pub tsc_mode: TscMode,
}

/// A kernel or initrd in the bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File<'a> {
    pub kind: FileKind,
    pub name: &'a str,
    /// The payload, a slice of the module (8-byte aligned within it).
    pub data: &'a [u8],
    /// Offset of the payload in the module.
    pub offset: usize,
}

/// A parsed, validated bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle<'a> {
    /// Domains in bundle order.
    pub domains: Vec<DomainSpec>,
    /// Kernels and initrds in bundle order.
    pub files: Vec<File<'a>>,
}

impl<'a> Bundle<'a> {
    /// The file of this kind and name.
    pub fn file(&self, kind: FileKind, name: &str) -> Option<&File<'a>> {
        self.files.iter().find(|f| f.kind == kind && f.name == name)
    }

    /// The domain of this name.
    pub fn domain(&self, name: &str) -> Option<&DomainSpec> {
        self.domains.iter().find(|d| d.name == name)
    }

    /// The kernel of a domain of this bundle (always present after [`parse`]).
    pub fn kernel_of(&self, d: &DomainSpec) -> Option<&File<'a>> {
        self.file(FileKind::Kernel, &d.kernel)
    }

    /// The initrd of a domain of this bundle, if it has one.
    pub fn initrd_of(&self, d: &DomainSpec) -> Option<&File<'a>> {
        d.initrd
            .as_deref()
            .and_then(|n| self.file(FileKind::Initrd, n))
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Why a bundle was rejected, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleError {
    /// Byte offset in the module of the offending field, entry or line.
    pub offset: usize,
    pub kind: BundleErrorKind,
}

/// The reason a bundle was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleErrorKind {
    /// The module ends before `need` bytes (a header, or the header's total length).
    Truncated {
        need: u64,
        have: usize,
    },
    BadMagic,
    UnsupportedVersion(u32),
    ReservedNotZero,
    /// The total length is smaller than the header or not a multiple of 8.
    BadTotalLength(u64),
    BadCrc {
        stored: u32,
        computed: u32,
    },
    /// An entry's header, name or payload runs past the total length.
    EntryPastEnd {
        entry: u32,
    },
    /// An entry's lengths overflow when added up.
    LengthOverflow {
        entry: u32,
    },
    UnknownEntryType {
        entry: u32,
        ty: u32,
    },
    NameEmpty {
        entry: u32,
    },
    NameTooLong {
        entry: u32,
        len: u32,
    },
    NameNotUtf8 {
        entry: u32,
    },
    NameHasControlChar {
        entry: u32,
    },
    PaddingNotZero {
        entry: u32,
    },
    /// Bytes between the last entry and the total length.
    TrailingBytes {
        len: u64,
    },
    DuplicateName {
        kind: EntryKind,
        name: String,
    },
    /// A domain description is not UTF-8.
    DomainNotUtf8,
    /// A line of a domain description has no `=`.
    DomainLineSyntax,
    DomainUnknownKey(String),
    DomainDuplicateKey(String),
    DomainMissingKey(&'static str),
    DomainBadValue {
        key: String,
    },
    /// The description's `name` differs from its entry's name.
    DomainNameMismatch {
        entry: String,
        name: String,
    },
    MemoryOutOfRange(u64),
    VcpusOutOfRange(u64),
    CmdlineTooLong(usize),
    BadDevice(String),
    DuplicateConsole,
    MissingKernel {
        domain: String,
        kernel: String,
    },
    MissingInitrd {
        domain: String,
        initrd: String,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BundleErrorKind as K;
        write!(f, "boot bundle, offset {:#x}: ", self.offset)?;
        match &self.kind {
            K::Truncated { need, have } => {
                write!(f, "truncated: need {need} bytes, module has {have}")
            }
            K::BadMagic => f.write_str("bad magic (not a boot bundle)"),
            K::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            K::ReservedNotZero => f.write_str("reserved header field is not zero"),
            K::BadTotalLength(l) => write!(f, "bad total length {l}"),
            K::BadCrc { stored, computed } => {
                write!(
                    f,
                    "CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"
                )
            }
            K::EntryPastEnd { entry } => write!(f, "entry {entry} runs past the end"),
            K::LengthOverflow { entry } => write!(f, "entry {entry}: lengths overflow"),
            K::UnknownEntryType { entry, ty } => write!(f, "entry {entry}: unknown type {ty}"),
            K::NameEmpty { entry } => write!(f, "entry {entry}: empty name"),
            K::NameTooLong { entry, len } => {
                write!(f, "entry {entry}: name of {len} bytes (max {MAX_NAME_LEN})")
            }
            K::NameNotUtf8 { entry } => write!(f, "entry {entry}: name is not UTF-8"),
            K::NameHasControlChar { entry } => {
                write!(f, "entry {entry}: name has a control character")
            }
            K::PaddingNotZero { entry } => write!(f, "entry {entry}: padding is not zero"),
            K::TrailingBytes { len } => write!(f, "{len} bytes after the last entry"),
            K::DuplicateName { kind, name } => {
                write!(f, "duplicate {} name {name:?}", kind.as_str())
            }
            K::DomainNotUtf8 => f.write_str("domain description is not UTF-8"),
            K::DomainLineSyntax => f.write_str("domain description line without '='"),
            K::DomainUnknownKey(k) => write!(f, "domain description: unknown key {k:?}"),
            K::DomainDuplicateKey(k) => write!(f, "domain description: duplicate key {k:?}"),
            K::DomainMissingKey(k) => write!(f, "domain description: missing key {k:?}"),
            K::DomainBadValue { key } => write!(f, "domain description: bad value for {key:?}"),
            K::DomainNameMismatch { entry, name } => {
                write!(
                    f,
                    "domain entry {entry:?} describes a domain named {name:?}"
                )
            }
            K::MemoryOutOfRange(m) => {
                write!(f, "memory {m} MiB out of range 1..={MAX_MEMORY_MIB}")
            }
            K::VcpusOutOfRange(v) => write!(f, "vcpus {v} out of range 1..={MAX_VCPUS}"),
            K::CmdlineTooLong(l) => {
                write!(f, "cmdline of {l} bytes (max {MAX_CMDLINE_LEN})")
            }
            K::BadDevice(d) => write!(f, "bad device {d:?}"),
            K::DuplicateConsole => f.write_str("more than one console device"),
            K::MissingKernel { domain, kernel } => {
                write!(
                    f,
                    "domain {domain:?} needs kernel {kernel:?}, not in the bundle"
                )
            }
            K::MissingInitrd { domain, initrd } => {
                write!(
                    f,
                    "domain {domain:?} needs initrd {initrd:?}, not in the bundle"
                )
            }
        }
    }
}

impl core::error::Error for BundleError {}

fn err<T>(offset: usize, kind: BundleErrorKind) -> Result<T, BundleError> {
    Err(BundleError { offset, kind })
}

// ---------------------------------------------------------------------------------------------
// Parsing

use xen::le::{get_u32 as u32_at, get_u64 as u64_at};

fn align_up(x: usize) -> Option<usize> {
    Some(x.checked_add(ALIGN - 1)? & !(ALIGN - 1))
}

/// Parses and fully validates a boot bundle. The result borrows the file payloads from `bytes`.
pub fn parse(bytes: &[u8]) -> Result<Bundle<'_>, BundleError> {
    use BundleErrorKind as K;
    if bytes.len() < HEADER_LEN {
        return err(
            0,
            K::Truncated {
                need: HEADER_LEN as u64,
                have: bytes.len(),
            },
        );
    }
    if bytes[..8] != MAGIC {
        return err(0, K::BadMagic);
    }
    let version = u32_at(bytes, 8).unwrap_or(0);
    if version != VERSION {
        return err(8, K::UnsupportedVersion(version));
    }
    let count = u32_at(bytes, 12).unwrap_or(0);
    let total = u64_at(bytes, 16).unwrap_or(0);
    if total < HEADER_LEN as u64 || !total.is_multiple_of(ALIGN as u64) {
        return err(16, K::BadTotalLength(total));
    }
    if total > bytes.len() as u64 {
        return err(
            16,
            K::Truncated {
                need: total,
                have: bytes.len(),
            },
        );
    }
    // `total <= bytes.len()`, so it fits a usize.
    let total = total as usize;
    let bytes = &bytes[..total];
    if u32_at(bytes, 28) != Some(0) {
        return err(28, K::ReservedNotZero);
    }
    let stored = u32_at(bytes, 24).unwrap_or(0);
    let computed = crc32(&bytes[HEADER_LEN..]);
    if stored != computed {
        return err(24, K::BadCrc { stored, computed });
    }

    let mut files: Vec<File<'_>> = Vec::new();
    // (entry offset, entry name, payload offset, payload)
    let mut domain_entries: Vec<(usize, &str, usize, &[u8])> = Vec::new();
    let mut off = HEADER_LEN;
    for entry in 0..count {
        let start = off;
        let (Some(ty), Some(name_len), Some(payload_len)) = (
            u32_at(bytes, off),
            u32_at(bytes, off + 4),
            u64_at(bytes, off + 8),
        ) else {
            return err(start, K::EntryPastEnd { entry });
        };
        let Some(kind) = EntryKind::from_type(ty) else {
            return err(start, K::UnknownEntryType { entry, ty });
        };
        if name_len == 0 {
            return err(start + 4, K::NameEmpty { entry });
        }
        if name_len as usize > MAX_NAME_LEN {
            return err(
                start + 4,
                K::NameTooLong {
                    entry,
                    len: name_len,
                },
            );
        }
        let name_off = start + ENTRY_HEADER_LEN;
        let name_end = name_off + name_len as usize;
        let Some(name_bytes) = bytes.get(name_off..name_end) else {
            return err(start, K::EntryPastEnd { entry });
        };
        let Ok(name) = core::str::from_utf8(name_bytes) else {
            return err(name_off, K::NameNotUtf8 { entry });
        };
        if name.chars().any(char::is_control) {
            return err(name_off, K::NameHasControlChar { entry });
        }
        let Some(payload_off) = align_up(name_end) else {
            return err(start, K::LengthOverflow { entry });
        };
        let Some(payload_end) = usize::try_from(payload_len)
            .ok()
            .and_then(|p| payload_off.checked_add(p))
        else {
            return err(start + 8, K::LengthOverflow { entry });
        };
        let Some(entry_end) = align_up(payload_end) else {
            return err(start + 8, K::LengthOverflow { entry });
        };
        if entry_end > total {
            return err(start, K::EntryPastEnd { entry });
        }
        let pad_ok = bytes[name_end..payload_off].iter().all(|&b| b == 0)
            && bytes[payload_end..entry_end].iter().all(|&b| b == 0);
        if !pad_ok {
            return err(start, K::PaddingNotZero { entry });
        }
        let payload = &bytes[payload_off..payload_end];
        let duplicate = match kind {
            EntryKind::Domain => domain_entries.iter().any(|d| d.1 == name),
            EntryKind::File(k) => files.iter().any(|f| f.kind == k && f.name == name),
        };
        if duplicate {
            return err(
                start,
                K::DuplicateName {
                    kind,
                    name: name.to_string(),
                },
            );
        }
        match kind {
            EntryKind::Domain => domain_entries.push((start, name, payload_off, payload)),
            EntryKind::File(k) => files.push(File {
                kind: k,
                name,
                data: payload,
                offset: payload_off,
            }),
        }
        off = entry_end;
    }
    if off != total {
        return err(
            off,
            K::TrailingBytes {
                len: (total - off) as u64,
            },
        );
    }

    let mut domains = Vec::with_capacity(domain_entries.len());
    for (start, name, payload_off, payload) in domain_entries {
        let d = parse_domain(payload, payload_off)?;
        if d.name != name {
            return err(
                start,
                K::DomainNameMismatch {
                    entry: name.to_string(),
                    name: d.name,
                },
            );
        }
        if !files
            .iter()
            .any(|f| f.kind == FileKind::Kernel && f.name == d.kernel)
        {
            return err(
                payload_off,
                K::MissingKernel {
                    domain: d.name,
                    kernel: d.kernel,
                },
            );
        }
        if let Some(initrd) = &d.initrd
            && !files
                .iter()
                .any(|f| f.kind == FileKind::Initrd && f.name == *initrd)
        {
            return err(
                payload_off,
                K::MissingInitrd {
                    domain: d.name.clone(),
                    initrd: initrd.clone(),
                },
            );
        }
        domains.push(d);
    }
    Ok(Bundle { domains, files })
}

/// A strict decimal number: digits only, no sign, no overflow.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME_LEN && !s.chars().any(char::is_control)
}

/// Parses a MAC `aa:bb:cc:dd:ee:ff` (hex, either case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for m in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

/// Parses a device as written in a domain description: `console`, `vif`, `vif=<mac>` (a unicast
/// MAC).
pub fn parse_device(s: &str) -> Option<Device> {
    match s {
        "console" => Some(Device::Console),
        "vif" => Some(Device::Vif { mac: None }),
        _ => {
            let mac = parse_mac(s.strip_prefix("vif=")?)?;
            // The group bit makes it a multicast address, which no NIC may own.
            if mac[0] & 1 != 0 {
                return None;
            }
            Some(Device::Vif { mac: Some(mac) })
        }
    }
}

/// Parses a domain description payload found at `base` in the module (for error offsets).
fn parse_domain(payload: &[u8], base: usize) -> Result<DomainSpec, BundleError> {
    use BundleErrorKind as K;
    let text = match core::str::from_utf8(payload) {
        Ok(t) => t,
        Err(e) => return err(base + e.valid_up_to(), K::DomainNotUtf8),
    };
    let mut name = None;
    let mut memory = None;
    let mut vcpus = None;
    let mut cmdline = None;
    let mut kernel = None;
    let mut initrd = None;
    let mut tsc_mode = None;
    let mut devices = Vec::new();

    let mut line_off = base;
    for line in text.split('\n') {
        let at = line_off;
        line_off += line.len() + 1;
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return err(at, K::DomainLineSyntax);
        };
        let bad_value = || {
            err(
                at,
                K::DomainBadValue {
                    key: key.to_string(),
                },
            )
        };
        if value.chars().any(char::is_control) {
            return bad_value();
        }
        let slot: &mut Option<&str> = match key {
            "name" => &mut name,
            "memory" => &mut memory,
            "vcpus" => &mut vcpus,
            "cmdline" => &mut cmdline,
            "kernel" => &mut kernel,
            "initrd" => &mut initrd,
            "tsc_mode" => &mut tsc_mode,
            "device" => {
                let Some(d) = parse_device(value) else {
                    return err(at, K::BadDevice(value.to_string()));
                };
                if d == Device::Console && devices.contains(&Device::Console) {
                    return err(at, K::DuplicateConsole);
                }
                devices.push(d);
                continue;
            }
            _ => return err(at, K::DomainUnknownKey(key.to_string())),
        };
        if slot.is_some() {
            return err(at, K::DomainDuplicateKey(key.to_string()));
        }
        let ok = match key {
            "name" | "kernel" | "initrd" => valid_name(value),
            "memory" => match parse_decimal(value) {
                Some(m) if (1..=MAX_MEMORY_MIB).contains(&m) => true,
                Some(m) => return err(at, K::MemoryOutOfRange(m)),
                None => false,
            },
            "vcpus" => match parse_decimal(value) {
                Some(v) if (1..=u64::from(MAX_VCPUS)).contains(&v) => true,
                Some(v) => return err(at, K::VcpusOutOfRange(v)),
                None => false,
            },
            "cmdline" if value.len() > MAX_CMDLINE_LEN => {
                return err(at, K::CmdlineTooLong(value.len()));
            }
            "tsc_mode" => TscMode::parse(value).is_some(),
            _ => true,
        };
        if !ok {
            return bad_value();
        }
        *slot = Some(value);
    }
    let (Some(name), Some(memory), Some(vcpus), Some(kernel)) = (name, memory, vcpus, kernel)
    else {
        let missing = if name.is_none() {
            "name"
        } else if memory.is_none() {
            "memory"
        } else if vcpus.is_none() {
            "vcpus"
        } else {
            "kernel"
        };
        return err(base, K::DomainMissingKey(missing));
    };
    // Both were range-checked above.
    let memory_mib = parse_decimal(memory).unwrap_or(0);
    let vcpus = parse_decimal(vcpus).unwrap_or(0) as u32;
    Ok(DomainSpec {
        name: name.to_string(),
        memory_mib,
        vcpus,
        cmdline: cmdline.unwrap_or("").to_string(),
        kernel: kernel.to_string(),
        initrd: initrd.map(str::to_string),
        devices,
        tsc_mode: tsc_mode.and_then(TscMode::parse).unwrap_or_default(),
    })
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests;
