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

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC32_TABLE: [u32; 256] = crc32_table();

/// Continues a CRC-32 (IEEE, reflected, polynomial 0x04c11db7) over `data`; start with
/// `crc = 0`. `crc32_update(crc32_update(0, a), b) == crc32(a ++ b)`.
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC32_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
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
    })
}

// ---------------------------------------------------------------------------------------------
// Kernel formats

/// The compression of a bzImage's payload, by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    Lz4,
    Bzip2,
    Lzma,
    Lzo,
    Unknown,
}

impl Compression {
    /// Recognises the compression of `data` by its first bytes.
    pub fn detect(data: &[u8]) -> Self {
        const MAGICS: &[(&[u8], Compression)] = &[
            (&[0x1f, 0x8b], Compression::Gzip),
            (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], Compression::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
            (&[0x02, 0x21, 0x4c, 0x18], Compression::Lz4),
            (b"BZh", Compression::Bzip2),
            (&[0x5d, 0x00, 0x00], Compression::Lzma),
            (&[0x89, 0x4c, 0x5a, 0x4f], Compression::Lzo),
        ];
        MAGICS
            .iter()
            .find(|(m, _)| data.starts_with(m))
            .map_or(Compression::Unknown, |&(_, c)| c)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Bzip2 => "bzip2",
            Compression::Lzma => "lzma",
            Compression::Lzo => "lzo",
            Compression::Unknown => "unknown",
        }
    }
}

/// Where a bzImage's compressed payload lies and what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BzPayload {
    /// Offset in the file (protected-mode code start + `payload_offset`).
    pub offset: usize,
    pub len: usize,
    pub compression: Compression,
}

/// What a kernel file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// An ELF file (`vmlinux`); `class` is 32 or 64, `machine` is `e_machine` (62 = x86-64).
    Elf {
        class: u8,
        machine: u16,
    },
    /// A Linux bzImage: boot protocol `version` (e.g. 0x020f) and, from protocol 2.08 on and if
    /// it lies within the file, the compressed payload.
    BzImage {
        version: u16,
        payload: Option<BzPayload>,
    },
    Unknown,
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KernelFormat::Elf { class, machine } => {
                let m = match machine {
                    62 => "x86-64",
                    3 => "i386",
                    183 => "aarch64",
                    _ => "",
                };
                if m.is_empty() {
                    write!(f, "ELF{class} (machine {machine})")
                } else {
                    write!(f, "ELF{class} {m}")
                }
            }
            KernelFormat::BzImage { version, payload } => {
                write!(
                    f,
                    "bzImage (boot protocol {}.{:02}",
                    version >> 8,
                    version & 0xff
                )?;
                if let Some(p) = payload {
                    write!(
                        f,
                        ", {} payload of {} bytes at {:#x}",
                        p.compression.as_str(),
                        p.len,
                        p.offset
                    )?;
                }
                f.write_str(")")
            }
            KernelFormat::Unknown => f.write_str("unknown format"),
        }
    }
}

/// Offsets in a Linux x86 boot sector / setup header (Documentation/arch/x86/boot.rst).
const BZ_SETUP_SECTS: usize = 0x1f1;
const BZ_HEADER_MAGIC: usize = 0x202;
const BZ_VERSION: usize = 0x206;
const BZ_PAYLOAD_OFFSET: usize = 0x248;
const BZ_PAYLOAD_LENGTH: usize = 0x24c;

/// Recognises a kernel image: ELF, bzImage (with its payload's compression), or unknown.
pub fn kernel_format(data: &[u8]) -> KernelFormat {
    if data.len() >= 20 && data[..4] == *b"\x7fELF" {
        let class = match data[4] {
            1 => 32,
            2 => 64,
            _ => return KernelFormat::Unknown,
        };
        let machine = if data[5] == 2 {
            u16::from_be_bytes([data[18], data[19]])
        } else {
            u16::from_le_bytes([data[18], data[19]])
        };
        return KernelFormat::Elf { class, machine };
    }
    if data.get(BZ_HEADER_MAGIC..BZ_HEADER_MAGIC + 4) != Some(b"HdrS".as_slice()) {
        return KernelFormat::Unknown;
    }
    let Some(version) = data
        .get(BZ_VERSION..BZ_VERSION + 2)
        .map(|v| u16::from_le_bytes([v[0], v[1]]))
    else {
        return KernelFormat::Unknown;
    };
    let payload = (|| {
        if version < 0x0208 {
            return None;
        }
        let setup_sects = match *data.get(BZ_SETUP_SECTS)? {
            0 => 4,
            n => usize::from(n),
        };
        let pm_start = (setup_sects + 1) * 512;
        let off = usize::try_from(u32_at(data, BZ_PAYLOAD_OFFSET)?).ok()?;
        let len = usize::try_from(u32_at(data, BZ_PAYLOAD_LENGTH)?).ok()?;
        let start = pm_start.checked_add(off)?;
        let bytes = data.get(start..start.checked_add(len)?)?;
        Some(BzPayload {
            offset: start,
            len,
            compression: Compression::detect(bytes),
        })
    })();
    KernelFormat::BzImage { version, payload }
}

// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec;

    #[test]
    fn crc32_known_vectors() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"a"), 0xe8b7_be43);
        assert_eq!(crc32(b"abc"), 0x3524_41c2);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
        assert_eq!(crc32(&[0u8; 32]), 0x190a_55ad);
        assert_eq!(crc32(&[0xffu8; 32]), 0xff6c_ab0b);
        assert_eq!(crc32_update(crc32(b"12345"), b"6789"), 0xcbf4_3926);
    }

    /// A minimal independent writer for tests (the real packer lives in `image`).
    fn entry(out: &mut Vec<u8>, ty: u32, name: &[u8], payload: &[u8]) {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(name);
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(payload);
        out.resize(out.len().next_multiple_of(8), 0);
    }

    fn finish(mut out: Vec<u8>, count: u32) -> Vec<u8> {
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        out[12..16].copy_from_slice(&count.to_le_bytes());
        let total = out.len() as u64;
        out[16..24].copy_from_slice(&total.to_le_bytes());
        fix_crc(&mut out);
        out
    }

    fn fix_crc(b: &mut [u8]) {
        if b.len() >= HEADER_LEN {
            let c = crc32(&b[HEADER_LEN..]);
            b[24..28].copy_from_slice(&c.to_le_bytes());
        }
    }

    const DEMO: &str = "name=demo\nmemory=64\nvcpus=2\nkernel=vmlinuz\ninitrd=initrd.img\n\
                        cmdline=console=hvc0 root=/dev/xvda, x=y\ndevice=console\n\
                        device=vif=00:16:3e:0a:0b:0c\ndevice=vif\n";

    fn build(entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_LEN];
        for (t, n, p) in entries {
            entry(&mut out, *t, n, p);
        }
        finish(out, entries.len() as u32)
    }

    fn sample() -> Vec<u8> {
        build(&[
            (TYPE_DOMAIN, b"demo", DEMO.as_bytes()),
            (
                TYPE_KERNEL,
                b"vmlinuz",
                b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0abc",
            ),
            (TYPE_INITRD, b"initrd.img", b"initrd!"),
        ])
    }

    fn kind_of(b: &[u8]) -> BundleErrorKind {
        parse(b).unwrap_err().kind
    }

    #[test]
    fn parses_sample() {
        let b = sample();
        let bundle = parse(&b).unwrap();
        assert_eq!(bundle.domains.len(), 1);
        let d = &bundle.domains[0];
        assert_eq!(
            *d,
            DomainSpec {
                name: "demo".into(),
                memory_mib: 64,
                vcpus: 2,
                cmdline: "console=hvc0 root=/dev/xvda, x=y".into(),
                kernel: "vmlinuz".into(),
                initrd: Some("initrd.img".into()),
                devices: vec![
                    Device::Console,
                    Device::Vif {
                        mac: Some([0x00, 0x16, 0x3e, 0x0a, 0x0b, 0x0c])
                    },
                    Device::Vif { mac: None },
                ],
            }
        );
        let k = bundle.kernel_of(d).unwrap();
        assert_eq!(k.offset % 8, 0);
        assert_eq!(&b[k.offset..k.offset + k.data.len()], k.data);
        assert_eq!(
            kernel_format(k.data),
            KernelFormat::Elf {
                class: 64,
                machine: 62
            }
        );
        assert_eq!(bundle.initrd_of(d).unwrap().data, b"initrd!");
        assert_eq!(bundle.files.len(), 2);
        assert!(bundle.domain("demo").is_some());
        // Zero-copy: the payload points into the module.
        assert!(core::ptr::eq(k.data.as_ptr(), b[k.offset..].as_ptr()));
    }

    #[test]
    fn trailing_module_padding_is_ignored() {
        let mut b = sample();
        b.extend_from_slice(&[0xaa; 4096]);
        assert!(parse(&b).is_ok());
    }

    #[test]
    fn header_errors() {
        use BundleErrorKind as K;
        let good = sample();
        assert!(matches!(
            kind_of(&good[..31]),
            K::Truncated { need: 32, .. }
        ));
        let mut b = good.clone();
        b[0] = b'Y';
        assert_eq!(kind_of(&b), K::BadMagic);
        let mut b = good.clone();
        b[8] = 2;
        assert_eq!(parse(&b).unwrap_err().offset, 8);
        assert_eq!(kind_of(&b), K::UnsupportedVersion(2));
        let mut b = good.clone();
        b[28] = 1;
        assert_eq!(kind_of(&b), K::ReservedNotZero);
        let e = parse(&good[..good.len() - 8]).unwrap_err();
        assert_eq!(e.offset, 16);
        assert!(matches!(e.kind, K::Truncated { .. }));
        let mut b = good.clone();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(kind_of(&b), K::BadTotalLength(_)));
        let mut b = good.clone();
        b[16..24].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
        assert!(matches!(kind_of(&b), K::Truncated { .. }));
        let mut b = good.clone();
        b[16..24].copy_from_slice(&20u64.to_le_bytes());
        assert!(matches!(kind_of(&b), K::BadTotalLength(20)));
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 1;
        let e = parse(&b).unwrap_err();
        assert_eq!(e.offset, 24);
        assert!(matches!(e.kind, K::BadCrc { .. }));
        let s = format!("{e}");
        assert!(s.contains("CRC mismatch"), "{s}");
    }

    fn patched(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut b = sample();
        f(&mut b);
        fix_crc(&mut b);
        b
    }

    #[test]
    fn entry_errors() {
        use BundleErrorKind as K;
        // First entry at 32: type @32, name_len @36, payload_len @40, name @48.
        let b = patched(|b| b[32] = 9);
        assert_eq!(parse(&b).unwrap_err().offset, 32);
        assert_eq!(kind_of(&b), K::UnknownEntryType { entry: 0, ty: 9 });
        let b = patched(|b| b[36..40].copy_from_slice(&0u32.to_le_bytes()));
        assert_eq!(kind_of(&b), K::NameEmpty { entry: 0 });
        let b = patched(|b| b[36..40].copy_from_slice(&65u32.to_le_bytes()));
        assert_eq!(kind_of(&b), K::NameTooLong { entry: 0, len: 65 });
        let b = patched(|b| b[48] = 0xff);
        assert_eq!(kind_of(&b), K::NameNotUtf8 { entry: 0 });
        assert_eq!(parse(&b).unwrap_err().offset, 48);
        let b = patched(|b| b[48] = b'\n');
        assert_eq!(kind_of(&b), K::NameHasControlChar { entry: 0 });
        let b = patched(|b| b[40..48].copy_from_slice(&u64::MAX.to_le_bytes()));
        assert_eq!(kind_of(&b), K::LengthOverflow { entry: 0 });
        let b = patched(|b| b[40..48].copy_from_slice(&(u64::MAX - 60).to_le_bytes()));
        assert_eq!(kind_of(&b), K::LengthOverflow { entry: 0 });
        let b = patched(|b| b[40..48].copy_from_slice(&100_000u64.to_le_bytes()));
        assert_eq!(kind_of(&b), K::EntryPastEnd { entry: 0 });
        let b = patched(|b| b[52] = 1); // padding after the 4-byte name
        assert_eq!(kind_of(&b), K::PaddingNotZero { entry: 0 });
        let b = patched(|b| b[12] = 4);
        assert_eq!(kind_of(&b), K::EntryPastEnd { entry: 3 });
        let b = patched(|b| b[12] = 2);
        assert!(matches!(kind_of(&b), K::TrailingBytes { .. }));
    }

    #[test]
    fn duplicate_names() {
        let k: &[u8] = b"k";
        let b = build(&[(TYPE_KERNEL, b"a", k), (TYPE_KERNEL, b"a", k)]);
        let e = parse(&b).unwrap_err();
        assert_eq!(
            e.kind,
            BundleErrorKind::DuplicateName {
                kind: EntryKind::File(FileKind::Kernel),
                name: "a".into()
            }
        );
        assert_eq!(e.offset, 32 + 16 + 8 + 8);
        // The same name in different kinds is fine.
        let b = build(&[(TYPE_KERNEL, b"a", k), (TYPE_INITRD, b"a", k)]);
        assert_eq!(parse(&b).unwrap().files.len(), 2);
        let d: &[u8] = b"name=d\nmemory=1\nvcpus=1\nkernel=a\n";
        let b = build(&[
            (TYPE_DOMAIN, b"d", d),
            (TYPE_DOMAIN, b"d", d),
            (TYPE_KERNEL, b"a", k),
        ]);
        assert!(matches!(
            kind_of(&b),
            BundleErrorKind::DuplicateName {
                kind: EntryKind::Domain,
                ..
            }
        ));
    }

    fn domain_err(desc: &str) -> BundleError {
        let b = build(&[
            (TYPE_DOMAIN, b"d", desc.as_bytes()),
            (TYPE_KERNEL, b"k", b"x"),
            (TYPE_INITRD, b"i", b"y"),
        ]);
        parse(&b).unwrap_err()
    }

    fn domain_ok(desc: &str) -> DomainSpec {
        let b = build(&[
            (TYPE_DOMAIN, b"d", desc.as_bytes()),
            (TYPE_KERNEL, b"k", b"x"),
            (TYPE_INITRD, b"i", b"y"),
        ]);
        parse(&b).unwrap().domains.remove(0)
    }

    #[test]
    fn domain_description_rules() {
        use BundleErrorKind as K;
        let base = "name=d\nmemory=16\nvcpus=1\nkernel=k\n";
        let d = domain_ok(base);
        assert_eq!((d.memory_mib, d.vcpus, d.cmdline.as_str()), (16, 1, ""));
        assert_eq!(d.initrd, None);
        assert!(d.devices.is_empty());
        // No trailing newline, blank lines.
        assert_eq!(
            domain_ok("name=d\n\nmemory=16\nvcpus=128\nkernel=k").vcpus,
            128
        );
        assert_eq!(
            domain_ok("name=d\nmemory=1048576\nvcpus=1\nkernel=k").memory_mib,
            1 << 20
        );

        // Description payload at 32 + 16 + 8 = 56; the error points at the line.
        let e = domain_err("name=d\nmemory=16\nvcpus=1\nkernel=k\nbogus");
        assert_eq!((e.offset, e.kind), (56 + base.len(), K::DomainLineSyntax));
        assert_eq!(
            domain_err(&format!("{base}colour=red\n")).kind,
            K::DomainUnknownKey("colour".into())
        );
        assert_eq!(
            domain_err(&format!("{base}vcpus=2\n")).kind,
            K::DomainDuplicateKey("vcpus".into())
        );
        assert_eq!(
            domain_err("name=d\nvcpus=1\nkernel=k\n").kind,
            K::DomainMissingKey("memory")
        );
        assert_eq!(
            domain_err("name=d\nmemory=1\nvcpus=1\n").kind,
            K::DomainMissingKey("kernel")
        );
        for bad in ["0", "1048577", "99999999999999"] {
            let e = domain_err(&format!("name=d\nmemory={bad}\nvcpus=1\nkernel=k\n"));
            assert!(matches!(e.kind, K::MemoryOutOfRange(_)), "{bad}: {e}");
            assert_eq!(e.offset, 56 + "name=d\n".len());
        }
        for bad in ["0", "129", "4294967296"] {
            let e = domain_err(&format!("name=d\nmemory=1\nvcpus={bad}\nkernel=k\n"));
            assert!(matches!(e.kind, K::VcpusOutOfRange(_)), "{bad}: {e}");
        }
        for bad in ["", "+1", "-1", " 1", "1 ", "0x10", "１"] {
            let e = domain_err(&format!("name=d\nmemory={bad}\nvcpus=1\nkernel=k\n"));
            assert_eq!(
                e.kind,
                K::DomainBadValue {
                    key: "memory".into()
                },
                "{bad:?}"
            );
        }
        assert_eq!(
            domain_err("name=d\nmemory=1\nvcpus=1\nkernel=k\ncmdline=a\rb\n").kind,
            K::DomainBadValue {
                key: "cmdline".into()
            }
        );
        let long = "x".repeat(MAX_CMDLINE_LEN + 1);
        assert_eq!(
            domain_err(&format!("{base}cmdline={long}\n")).kind,
            K::CmdlineTooLong(MAX_CMDLINE_LEN + 1)
        );
        assert_eq!(
            domain_err("name=e\nmemory=1\nvcpus=1\nkernel=k\n").kind,
            K::DomainNameMismatch {
                entry: "d".into(),
                name: "e".into()
            }
        );
        assert_eq!(
            domain_err("name=d\nmemory=1\nvcpus=1\nkernel=nope\n").kind,
            K::MissingKernel {
                domain: "d".into(),
                kernel: "nope".into()
            }
        );
        // The initrd "i" is not a kernel.
        assert!(matches!(
            domain_err("name=d\nmemory=1\nvcpus=1\nkernel=i\n").kind,
            K::MissingKernel { .. }
        ));
        assert_eq!(
            domain_err(&format!("{base}initrd=k\n")).kind,
            K::MissingInitrd {
                domain: "d".into(),
                initrd: "k".into()
            }
        );
        for bad in [
            "vif=00:16:3e:00:00",
            "vif=00:16:3e:00:00:01:02",
            "vif=01:16:3e:00:00:01",
            "vif=0:16:3e:00:00:01",
            "vif=",
            "disk",
            "console ",
        ] {
            assert_eq!(
                domain_err(&format!("{base}device={bad}\n")).kind,
                K::BadDevice(bad.into())
            );
        }
        assert_eq!(
            domain_err(&format!("{base}device=console\ndevice=console\n")).kind,
            K::DuplicateConsole
        );
        assert_eq!(
            domain_ok(&format!("{base}cmdline=caf\u{e9}\n")).cmdline,
            "caf\u{e9}"
        );
        assert_eq!(
            parse_domain(&[b'a', 0xc3], 100).unwrap_err(),
            BundleError {
                offset: 101,
                kind: K::DomainNotUtf8
            }
        );
        let mut bytes = base.as_bytes().to_vec();
        bytes.push(0xff);
        let b = build(&[(TYPE_DOMAIN, b"d", &bytes), (TYPE_KERNEL, b"k", b"x")]);
        let e = parse(&b).unwrap_err();
        assert_eq!((e.offset, e.kind), (56 + base.len(), K::DomainNotUtf8));
    }

    #[test]
    fn device_display_round_trips() {
        for s in ["console", "vif", "vif=00:16:3e:0a:bb:fc"] {
            assert_eq!(format!("{}", parse_device(s).unwrap()), s);
        }
        assert_eq!(
            parse_device("vif=00:16:3E:0A:BB:FC"),
            Some(Device::Vif {
                mac: Some([0, 0x16, 0x3e, 0x0a, 0xbb, 0xfc])
            })
        );
    }

    fn bzimage(version: u16, setup_sects: u8, payload: &[u8]) -> Vec<u8> {
        let sects = if setup_sects == 0 { 4 } else { setup_sects };
        let pm = (usize::from(sects) + 1) * 512;
        let mut b = vec![0u8; pm + 16 + payload.len()];
        b[BZ_SETUP_SECTS] = setup_sects;
        b[0x1fe] = 0x55;
        b[0x1ff] = 0xaa;
        b[BZ_HEADER_MAGIC..BZ_HEADER_MAGIC + 4].copy_from_slice(b"HdrS");
        b[BZ_VERSION..BZ_VERSION + 2].copy_from_slice(&version.to_le_bytes());
        b[BZ_PAYLOAD_OFFSET..BZ_PAYLOAD_OFFSET + 4].copy_from_slice(&16u32.to_le_bytes());
        b[BZ_PAYLOAD_LENGTH..BZ_PAYLOAD_LENGTH + 4]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b[pm + 16..].copy_from_slice(payload);
        b
    }

    #[test]
    fn kernel_formats() {
        let cases: &[(&[u8], Compression)] = &[
            (&[0x1f, 0x8b, 8, 0], Compression::Gzip),
            (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0], Compression::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0], Compression::Zstd),
            (&[0x02, 0x21, 0x4c, 0x18, 0], Compression::Lz4),
            (b"BZh91AY", Compression::Bzip2),
            (&[0x5d, 0, 0, 0x80], Compression::Lzma),
            (&[0x89, b'L', b'Z', b'O'], Compression::Lzo),
            (b"????", Compression::Unknown),
        ];
        for &(payload, c) in cases {
            for sects in [0u8, 27] {
                let img = bzimage(0x020f, sects, payload);
                let pm = (usize::from(if sects == 0 { 4 } else { sects }) + 1) * 512;
                assert_eq!(
                    kernel_format(&img),
                    KernelFormat::BzImage {
                        version: 0x020f,
                        payload: Some(BzPayload {
                            offset: pm + 16,
                            len: payload.len(),
                            compression: c
                        })
                    }
                );
            }
        }
        let f = kernel_format(&bzimage(0x020f, 27, &[0x28, 0xb5, 0x2f, 0xfd]));
        assert_eq!(
            format!("{f}"),
            "bzImage (boot protocol 2.15, zstd payload of 4 bytes at 0x3810)"
        );
        // Old protocol: no payload fields.
        assert_eq!(
            kernel_format(&bzimage(0x0207, 1, b"x")),
            KernelFormat::BzImage {
                version: 0x0207,
                payload: None
            }
        );
        // Payload past the end.
        let mut img = bzimage(0x020f, 1, b"\x1f\x8b");
        img.truncate(img.len() - 1);
        assert!(matches!(
            kernel_format(&img),
            KernelFormat::BzImage { payload: None, .. }
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

    /// xorshift64*: deterministic, dependency-free randomness for the fuzz test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// 100 000 randomly mutated bundles: parse never panics, and whatever it accepts is
    /// self-consistent (payloads inside the module, references resolved).
    #[test]
    fn fuzz_mutated_bundles_never_panic() {
        let seeds = [sample(), {
            let d: &[u8] = b"name=a\nmemory=1\nvcpus=1\nkernel=k\ndevice=vif\n";
            build(&[(TYPE_KERNEL, b"k", &[7u8; 13]), (TYPE_DOMAIN, b"a", d)])
        }];
        let interesting: [u64; 8] = [0, 1, 7, 8, 64, 65, u64::MAX, u64::MAX - 7];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut rejected_past_crc) = (0u32, 0u32);
        for i in 0..100_000 {
            let mut b = seeds[i % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                match rng.below(7) {
                    0 => {
                        let at = rng.below(b.len());
                        b[at] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let at = rng.below(b.len());
                        b[at] = rng.next() as u8;
                    }
                    2 => {
                        let at = rng.below(b.len() - 7) & !7;
                        let v = interesting[rng.below(interesting.len())];
                        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    }
                    3 => {
                        let at = rng.below(b.len() - 3) & !3;
                        let v = interesting[rng.below(interesting.len())] as u32;
                        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    4 => b.truncate(rng.below(b.len() + 1)),
                    5 => {
                        let at = rng.below(b.len() + 1);
                        b.insert(at, rng.next() as u8);
                    }
                    _ => {
                        let at = rng.below(b.len());
                        b[at] = [b'=', b'\n', b'0', b'9', 0xc3, b':'][rng.below(6)];
                    }
                }
                if b.len() < 8 {
                    break;
                }
            }
            // Mostly keep the CRC right, so that mutations reach the entry parser.
            if rng.below(8) != 0 {
                fix_crc(&mut b);
            }
            match parse(&b) {
                Ok(bundle) => {
                    accepted += 1;
                    for f in &bundle.files {
                        assert!(f.offset % 8 == 0 && f.offset + f.data.len() <= b.len());
                        let _ = kernel_format(f.data);
                    }
                    for d in &bundle.domains {
                        assert!(bundle.kernel_of(d).is_some());
                        assert!(d.initrd.is_none() || bundle.initrd_of(d).is_some());
                        assert!((1..=MAX_VCPUS).contains(&d.vcpus));
                        assert!((1..=MAX_MEMORY_MIB).contains(&d.memory_mib));
                    }
                }
                Err(e) => {
                    if !matches!(e.kind, BundleErrorKind::BadCrc { .. }) {
                        rejected_past_crc += 1;
                    }
                    assert!(e.offset <= b.len(), "{e}");
                    let _ = format!("{e}");
                }
            }
        }
        // The mutations exercise the parser past the header.
        assert!(accepted > 100, "accepted {accepted}");
        assert!(rejected_past_crc > 10_000, "{rejected_past_crc}");
    }

    #[test]
    fn kernel_format_never_panics_on_random_input() {
        let mut rng = Rng(42);
        let base = bzimage(0x020f, 2, &[0x1f, 0x8b, 0, 0]);
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..4 {
                let at = rng.below(0x260);
                b[at] = rng.next() as u8;
            }
            b.truncate(rng.below(b.len() + 1));
            let _ = kernel_format(&b);
        }
    }
}
