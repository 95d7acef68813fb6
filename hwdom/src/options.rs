//! dom0's own command-line options, from the start_info cmdline.
//!
//! Syntax: options separated by whitespace, each `name=value` or a bare `name`. Names accept
//! `_` for `-` (as Xen and Linux do). Values are matched without regard to ASCII case. There
//! is no quoting.
//!
//! Bad input loses nothing: an unknown option, a bad value, a missing value or an empty name is
//! reported and skipped, and parsing goes on with the next word. A repeated option: the last
//! one wins, and the repeat is reported (as [`OptionError::Repeated`]) so a report shows it.
//! At most [`MAX_ERRORS`] problems are kept; the rest are counted in one
//! [`OptionError::Suppressed`]. Names and values quoted in errors are cut to
//! [`MAX_QUOTED`] characters.
//!
//! Xen strips the image name from the module string for most loaders; when the first word
//! still looks like a path (contains `/` or ends in `.elf`/`.gz`) it is skipped silently.
//!
//! To add an option: add a field to [`Dom0Options`] and one [`OptSpec`] line to `OPTIONS`.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Declares a keyword-valued option type: the enum, its words and the "expected" text
/// (checked against the words by a unit test).
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident expected $expected:literal {
            $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order of [`Self::EXPECTED`].
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The accepted words, for error messages.
            pub const EXPECTED: &'static str = $expected;

            /// The word that selects this value.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)+
                }
            }

            /// The value a word selects (ASCII case ignored).
            pub fn from_name(word: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name().eq_ignore_ascii_case(word))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

keyword_enum! {
    /// `loglevel=`: the most detailed messages dom0 prints (more verbose compares greater).
    pub enum LogLevel expected "error|warn|info|debug|trace" {
        Error = "error",
        Warn = "warn",
        #[default]
        Info = "info",
        Debug = "debug",
        Trace = "trace",
    }
}

keyword_enum! {
    /// `on-ready=`: what dom0 does once it is ready.
    pub enum OnReady expected "idle|poweroff|qemu-exit" {
        /// Serve events forever, blocked in `SCHEDOP_block` between them.
        #[default]
        Idle = "idle",
        /// `SCHEDOP_shutdown(SHUTDOWN_poweroff)`.
        Poweroff = "poweroff",
        /// Write the result to QEMU's isa-debug-exit port (the test bench).
        QemuExit = "qemu-exit",
    }
}

keyword_enum! {
    /// `report=`: which boot report forms dom0 prints.
    pub enum ReportFormat expected "text|json|both|none" {
        Text = "text",
        Json = "json",
        #[default]
        Both = "both",
        None = "none",
    }
}

keyword_enum! {
    /// `console=`: where dom0 writes its console.
    pub enum ConsoleChoice expected "auto|xen|serial|e9" {
        /// Xen's console (CONSOLEIO_write) under Xen, else the serial port.
        #[default]
        Auto = "auto",
        /// `CONSOLEIO_write` only.
        Xen = "xen",
        /// The 16550 UART at COM1.
        Serial = "serial",
        /// The 0xE9 debug port (Xen's and QEMU's debugcon).
        E9 = "e9",
    }
}

keyword_enum! {
    /// `fault-test=`: raise a CPU exception on purpose once the console is up (bring-up and the
    /// test bench use it to prove that a fault is reported, never a silent triple fault).
    pub enum FaultTest expected "none|page-fault|invalid-opcode|stack-overflow|mtrr-skew" {
        #[default]
        None = "none",
        /// Read an address outside dom0's identity map: #PF with CR2 = that address.
        PageFault = "page-fault",
        /// Execute `ud2`: #UD.
        InvalidOpcode = "invalid-opcode",
        /// Run off the bottom of the boot stack: the guard page turns it into a reported
        /// double fault (on its own IST stack), not a triple fault.
        StackOverflow = "stack-overflow",
        /// Make vCPU 1's default MTRR type differ from vCPU 0's, so the MTRR check (and
        /// `mtrr=fix`) has a real disagreement to find (and correct).
        MtrrSkew = "mtrr-skew",
    }
}

keyword_enum! {
    /// `mtrr=`: check the vCPUs' MTRRs (report only), or also make every vCPU use vCPU 0's
    /// MTRRs when they disagree (what Linux does on AP bring-up, `mtrr_ap_init`).
    pub enum MtrrMode expected "check|fix" {
        #[default]
        Check = "check",
        Fix = "fix",
    }
}

keyword_enum! {
    /// `pci-bars=`: where BARs go. `keep`: firmware placement; `unassigned`: place what the
    /// firmware left unassigned or conflicting; `all`: move every memory BAR (the bring-up
    /// exercise: every device must still answer at its new address).
    pub enum PciBars expected "keep|unassigned|all" {
        #[default]
        Keep = "keep",
        Unassigned = "unassigned",
        All = "all",
    }
}

keyword_enum! {
    /// `pci-roots=`: where PCI enumeration starts. `acpi`: every host bridge of the ACPI
    /// namespace (probing only when there is none); `probe`: ignore the namespace, start from
    /// each MCFG window's first bus and probe every bus nothing reached (what dom0 does on a
    /// machine without a usable DSDT; a diagnostic to compare the two).
    pub enum PciRoots expected "acpi|probe" {
        #[default]
        Acpi = "acpi",
        Probe = "probe",
    }
}

impl ReportFormat {
    pub fn wants_text(self) -> bool {
        matches!(self, ReportFormat::Text | ReportFormat::Both)
    }
    pub fn wants_json(self) -> bool {
        matches!(self, ReportFormat::Json | ReportFormat::Both)
    }
}

/// dom0's own address on its switch when `ip=` is not given.
pub const DEFAULT_IP: [u8; 4] = [10, 0, 0, 254];
pub const DEFAULT_PREFIX: u8 = 24;

/// `ip=`: dom0's own IPv4 address on its switch (issue 12), or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dom0Ip {
    /// `ip=ADDR/PREFIX` (default [`DEFAULT_IP`]/[`DEFAULT_PREFIX`]).
    Static { addr: [u8; 4], prefix: u8 },
    /// `ip=none`: no IP stack on dom0's port.
    Off,
    /// `ip=dhcp`: an address from a DHCP server reached through the NIC uplink (`nic=`).
    Dhcp,
}

impl Default for Dom0Ip {
    fn default() -> Self {
        Dom0Ip::Static {
            addr: DEFAULT_IP,
            prefix: DEFAULT_PREFIX,
        }
    }
}

impl Dom0Ip {
    /// `none`, or `a.b.c.d/p` with p in 1..=30 and a unicast host address (not the network's
    /// or broadcast address, not 0.x, multicast or reserved).
    fn parse(v: &str) -> Option<Dom0Ip> {
        match v {
            "none" => return Some(Dom0Ip::Off),
            "dhcp" => return Some(Dom0Ip::Dhcp),
            _ => {}
        }
        let (a, p) = v.split_once('/')?;
        let prefix: u8 = p.parse().ok().filter(|p| (1..=30).contains(p))?;
        let mut addr = [0u8; 4];
        let mut parts = a.split('.');
        for b in &mut addr {
            *b = parts.next()?.parse().ok()?;
        }
        if parts.next().is_some() || addr[0] == 0 || addr[0] >= 224 || addr[0] == 127 {
            return None;
        }
        let host = u32::from_be_bytes(addr) & (u32::MAX >> prefix);
        if host == 0 || host == u32::MAX >> prefix {
            return None;
        }
        Some(Dom0Ip::Static { addr, prefix })
    }
}

/// `nic=`: which NIC becomes the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NicChoice {
    /// `nic=none` (default): no NIC is touched beyond enumeration and the BAR check.
    #[default]
    None,
    /// `nic=auto`: the first function, in enumeration order, that a driver supports.
    Auto,
    /// `nic=[SSSS:]BB:DD.F`: that function (an error in the report if no driver supports it).
    At(pci::Sbdf),
}

impl NicChoice {
    fn parse(v: &str) -> Option<NicChoice> {
        match v {
            "none" => return Some(NicChoice::None),
            "auto" => return Some(NicChoice::Auto),
            _ => {}
        }
        // `ssss:bb:dd.f` or `bb:dd.f`, as Xen and lspci print them.
        v.parse::<pci::Sbdf>().ok().map(NicChoice::At)
    }
}

/// `linger=`: how long dom0 keeps serving once no DomU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linger {
    Seconds(u32),
    Forever,
}

/// dom0's options after parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dom0Options {
    pub loglevel: LogLevel,
    pub on_ready: OnReady,
    pub report: ReportFormat,
    pub console: ConsoleChoice,
    pub fault_test: FaultTest,
    pub mtrr: MtrrMode,
    /// `maxcpus=N`: run on at most N CPUs (1..=128). Without Xen this also makes dom0 rewrite
    /// the MADT for its container to list only those CPUs.
    pub maxcpus: Option<u32>,
    pub pci_bars: PciBars,
    pub pci_roots: PciRoots,
    /// `pci-renumber=N`: renumber the PCI buses depth-first, leaving N spare bus numbers after
    /// each bridge for hot-plug (0..=32), following Xen's remove / renumber / re-add protocol.
    pub pci_renumber: Option<u8>,
    /// `domu-stop=S`: S seconds after the first DomU started, ask every running DomU to power
    /// off through xenstore `control/shutdown` (what `xl shutdown` does); 0 = never (1..=86400).
    pub domu_stop: u32,
    /// `pci-vfs=N`: enable up to N virtual functions on every SR-IOV physical function (0..=255)
    /// and report them to Xen as virtual functions of their PF.
    pub pci_vfs: u16,
    /// `xenstore-quota=KiB`: the most dom0's xenstore service holds for one DomU (its nodes,
    /// watches, transactions and queued messages; 64..=1048576 KiB). `None`: C xenstored's
    /// 2.5 MiB.
    pub xenstore_quota_kib: Option<u32>,
    /// `ip=ADDR/PREFIX|dhcp|none`: dom0's own address on its switch (10.0.0.254/24 by default).
    pub ip: Dom0Ip,
    /// `nic=none|auto|BB:DD.F|SSSS:BB:DD.F`: the physical NIC dom0 drives as its switch's uplink
    /// (issue 13). `None` (the default): dom0 leaves every NIC alone.
    pub nic: NicChoice,
    /// `linger=S|forever`: keep serving the network S seconds after the last DomU stopped (or
    /// after ready, with no DomUs); `None`: stop serving with the last DomU.
    pub linger: Option<Linger>,
    /// The options that took effect, one per name (canonical name, value as given), in the
    /// order first given; a repeat updates the value in place.
    pub given: Vec<(String, String)>,
}

/// What was wrong with one word of the command line. The word was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    /// No option of that name.
    Unknown { name: String },
    /// The value is not one the option accepts.
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
    /// A bare name for an option that needs a value.
    MissingValue {
        name: String,
        expected: &'static str,
    },
    /// `=value` with nothing before the `=`.
    EmptyName { word: String },
    /// Given more than once: the last one wins (not an error in itself, reported so it shows).
    Repeated {
        name: String,
        previous: String,
        value: String,
    },
    /// More problems than [`MAX_ERRORS`]; this many more were not kept.
    Suppressed { count: usize },
}

impl OptionError {
    /// True for a note rather than an error: a repeated option still took effect (the last
    /// value wins), so a report may list it under warnings.
    pub fn is_note(&self) -> bool {
        matches!(self, OptionError::Repeated { .. })
    }
}

/// The most problems kept from one command line.
pub const MAX_ERRORS: usize = 16;
/// The most characters of a name or value quoted in an error.
pub const MAX_QUOTED: usize = 64;

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::Unknown { name } => {
                write!(f, "unknown option '{name}' (known: ")?;
                for (i, known) in Dom0Options::known_names().iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(known)?;
                }
                f.write_str(")")
            }
            OptionError::BadValue {
                name,
                value,
                expected,
            } => {
                write!(
                    f,
                    "option '{name}': bad value '{value}' (expected one of {expected})"
                )
            }
            OptionError::MissingValue { name, expected } => {
                write!(
                    f,
                    "option '{name}' needs a value (expected one of {expected})"
                )
            }
            OptionError::EmptyName { word } => {
                write!(f, "'{word}': option name before '=' is empty")
            }
            OptionError::Repeated {
                name,
                previous,
                value,
            } => write!(
                f,
                "option '{name}' given more than once ('{previous}', then '{value}'); the last \
                 one wins"
            ),
            OptionError::Suppressed { count } => {
                write!(f, "{count} more command-line problems not shown")
            }
        }
    }
}

/// One known option: its name, what it accepts, and how it sets [`Dom0Options`].
/// `apply` gets `None` for a bare name and returns false if the value is not accepted.
struct OptSpec {
    name: &'static str,
    expected: &'static str,
    apply: fn(&mut Dom0Options, Option<&str>) -> bool,
}

/// Sets a keyword field from a value; a bare name is refused.
macro_rules! keyword_opt {
    ($name:literal, $ty:ident, $field:ident) => {
        OptSpec {
            name: $name,
            expected: $ty::EXPECTED,
            apply: |o, v| match v.and_then($ty::from_name) {
                Some(x) => {
                    o.$field = x;
                    true
                }
                None => false,
            },
        }
    };
}

const OPTIONS: &[OptSpec] = &[
    keyword_opt!("loglevel", LogLevel, loglevel),
    keyword_opt!("on-ready", OnReady, on_ready),
    keyword_opt!("report", ReportFormat, report),
    keyword_opt!("console", ConsoleChoice, console),
    keyword_opt!("fault-test", FaultTest, fault_test),
    keyword_opt!("mtrr", MtrrMode, mtrr),
    OptSpec {
        name: "maxcpus",
        expected: "a number of CPUs, 1 to 128",
        apply: |o, v| match v.and_then(|v| v.parse::<u32>().ok()) {
            Some(n @ 1..=128) => {
                o.maxcpus = Some(n);
                true
            }
            _ => false,
        },
    },
    keyword_opt!("pci-bars", PciBars, pci_bars),
    keyword_opt!("pci-roots", PciRoots, pci_roots),
    OptSpec {
        name: "pci-renumber",
        expected: "a number of spare buses per bridge, 0 to 32",
        apply: |o, v| match v.and_then(|v| v.parse::<u8>().ok()) {
            Some(n @ 0..=32) => {
                o.pci_renumber = Some(n);
                true
            }
            _ => false,
        },
    },
    OptSpec {
        name: "pci-vfs",
        expected: "a number of virtual functions per SR-IOV device, 0 to 255",
        apply: |o, v| match v.and_then(|v| v.parse::<u16>().ok()) {
            Some(n @ 0..=255) => {
                o.pci_vfs = n;
                true
            }
            _ => false,
        },
    },
    OptSpec {
        name: "domu-stop",
        expected: "seconds after the first DomU started, 0 to 86400",
        apply: |o, v| match v.and_then(|v| v.parse::<u32>().ok()) {
            Some(n @ 0..=86400) => {
                o.domu_stop = n;
                true
            }
            _ => false,
        },
    },
    OptSpec {
        name: "xenstore-quota",
        expected: "KiB of xenstore memory per DomU, 64 to 1048576",
        apply: |o, v| match v.and_then(|v| v.parse::<u32>().ok()) {
            Some(n @ 64..=1_048_576) => {
                o.xenstore_quota_kib = Some(n);
                true
            }
            _ => false,
        },
    },
    OptSpec {
        name: "ip",
        expected: "dom0's IPv4 address on its switch as a.b.c.d/prefix (prefix 1 to 30), dhcp or none",
        apply: |o, v| match v.and_then(Dom0Ip::parse) {
            Some(ip) => {
                o.ip = ip;
                true
            }
            None => false,
        },
    },
    OptSpec {
        name: "nic",
        expected: "none, auto, or a PCI function as BB:DD.F or SSSS:BB:DD.F (hex)",
        apply: |o, v| match v.and_then(NicChoice::parse) {
            Some(n) => {
                o.nic = n;
                true
            }
            None => false,
        },
    },
    OptSpec {
        name: "linger",
        expected: "seconds to keep serving after the last DomU stopped (1 to 86400), or forever",
        apply: |o, v| match v {
            Some("forever") => {
                o.linger = Some(Linger::Forever);
                true
            }
            _ => match v.and_then(|v| v.parse::<u32>().ok()) {
                Some(n @ 1..=86400) => {
                    o.linger = Some(Linger::Seconds(n));
                    true
                }
                _ => false,
            },
        },
    },
];

const KNOWN_NAMES: &[&str] = &[
    "loglevel",
    "on-ready",
    "report",
    "console",
    "fault-test",
    "mtrr",
    "maxcpus",
    "pci-bars",
    "pci-roots",
    "pci-renumber",
    "pci-vfs",
    "domu-stop",
    "xenstore-quota",
    "ip",
    "nic",
    "linger",
];

/// Cut `s` to [`MAX_QUOTED`] characters (on a char boundary) for an error message.
fn quoted(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => {
            let mut out = String::from(&s[..cut]);
            out.push_str("...");
            out
        }
        None => String::from(s),
    }
}

/// True for a first word that is a path to the image rather than an option.
fn looks_like_path(word: &str) -> bool {
    let name = word.split_once('=').map_or(word, |(n, _)| n);
    if find_option(name).is_some() {
        return false;
    }
    word.contains('/') || word.ends_with(".elf") || word.ends_with(".gz")
}

fn find_option(name: &str) -> Option<&'static OptSpec> {
    OPTIONS.iter().find(|o| {
        o.name.len() == name.len()
            && o.name
                .bytes()
                .zip(name.bytes())
                .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
    })
}

impl Dom0Options {
    /// Parse a command line; returns the options and every problem found (see the module
    /// docs: bad words are skipped, the rest still applies).
    pub fn parse(cmdline: &str) -> (Dom0Options, Vec<OptionError>) {
        let mut opts = Dom0Options::default();
        let mut errors = Vec::new();
        let mut suppressed = 0usize;
        let mut report = |e: OptionError| {
            if errors.len() < MAX_ERRORS {
                errors.push(e);
            } else {
                suppressed += 1;
            }
        };
        for (i, word) in cmdline.split_whitespace().enumerate() {
            if i == 0 && looks_like_path(word) {
                continue;
            }
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (word, None),
            };
            if name.is_empty() {
                report(OptionError::EmptyName { word: quoted(word) });
                continue;
            }
            let Some(spec) = find_option(name) else {
                report(OptionError::Unknown { name: quoted(name) });
                continue;
            };
            if !(spec.apply)(&mut opts, value) {
                report(match value {
                    None => OptionError::MissingValue {
                        name: spec.name.into(),
                        expected: spec.expected,
                    },
                    Some(v) => OptionError::BadValue {
                        name: spec.name.into(),
                        value: quoted(v),
                        expected: spec.expected,
                    },
                });
                continue;
            }
            let value = String::from(value.unwrap_or(""));
            match opts.given.iter_mut().find(|(n, _)| n == spec.name) {
                Some((_, previous)) => {
                    report(OptionError::Repeated {
                        name: spec.name.into(),
                        previous: quoted(previous),
                        value: quoted(&value),
                    });
                    *previous = value;
                }
                None => opts.given.push((spec.name.into(), value)),
            }
        }
        if suppressed > 0 {
            errors.push(OptionError::Suppressed { count: suppressed });
        }
        (opts, errors)
    }

    /// The option names this dom0 knows.
    pub fn known_names() -> &'static [&'static str] {
        KNOWN_NAMES
    }
}

#[cfg(test)]
mod tests;
