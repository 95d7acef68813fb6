//! Host tests of the option parser.
use alloc::format;
use alloc::string::ToString;

use super::*;

fn parse(s: &str) -> (Dom0Options, Vec<String>) {
    let (o, e) = Dom0Options::parse(s);
    (o, e.iter().map(|e| e.to_string()).collect())
}

#[test]
fn tables_agree() {
    assert_eq!(KNOWN_NAMES.len(), OPTIONS.len());
    for (a, b) in KNOWN_NAMES.iter().zip(OPTIONS) {
        assert_eq!(*a, b.name);
    }
    fn joined(names: impl Iterator<Item = &'static str>) -> String {
        names.collect::<Vec<_>>().join("|")
    }
    assert_eq!(
        LogLevel::EXPECTED,
        joined(LogLevel::ALL.iter().map(|v| v.name()))
    );
    assert_eq!(
        OnReady::EXPECTED,
        joined(OnReady::ALL.iter().map(|v| v.name()))
    );
    assert_eq!(
        ReportFormat::EXPECTED,
        joined(ReportFormat::ALL.iter().map(|v| v.name()))
    );
    assert_eq!(
        ConsoleChoice::EXPECTED,
        joined(ConsoleChoice::ALL.iter().map(|v| v.name()))
    );
}

#[test]
fn defaults() {
    let (o, e) = parse("");
    assert!(e.is_empty());
    assert_eq!(o, Dom0Options::default());
    assert_eq!(o.loglevel, LogLevel::Info);
    assert_eq!(o.on_ready, OnReady::Idle);
    assert_eq!(o.report, ReportFormat::Both);
    assert_eq!(o.console, ConsoleChoice::Auto);
    assert!(o.report.wants_text() && o.report.wants_json());
    assert!(!ReportFormat::None.wants_text() && !ReportFormat::None.wants_json());
    assert!(ReportFormat::Json.wants_json() && !ReportFormat::Json.wants_text());
}

#[test]
fn all_options() {
    let (o, e) = parse("loglevel=trace on-ready=qemu-exit report=json console=e9");
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(o.loglevel, LogLevel::Trace);
    assert_eq!(o.on_ready, OnReady::QemuExit);
    assert_eq!(o.report, ReportFormat::Json);
    assert_eq!(o.console, ConsoleChoice::E9);
    assert_eq!(
        o.given,
        [
            ("loglevel".into(), "trace".into()),
            ("on-ready".into(), "qemu-exit".into()),
            ("report".into(), "json".into()),
            ("console".into(), "e9".into()),
        ]
    );
    for v in ["error", "warn", "info", "debug", "trace"] {
        let (o, _) = parse(&format!("loglevel={v}"));
        assert_eq!(o.loglevel.name(), v);
    }
}

#[test]
fn underscores_and_case() {
    let (o, e) = parse("on_ready=PowerOff REPORT=text");
    assert_eq!(o.on_ready, OnReady::Poweroff);
    assert_eq!(o.given, [("on-ready".into(), "PowerOff".into())]);
    // Names are case-sensitive (as Xen's and Linux's are); values are not.
    assert_eq!(
        e,
        [
            "unknown option 'REPORT' (known: loglevel, on-ready, report, console, fault-test, mtrr, maxcpus, pci-bars, pci-roots, pci-renumber, pci-vfs, domu-stop, xenstore-quota, ip, nic, linger)"
        ]
    );
}

#[test]
fn unknown_and_bad_values_are_skipped() {
    let (o, e) = parse("foo loglevel=loud console=serial bar=1 report=");
    assert_eq!(o.console, ConsoleChoice::Serial);
    assert_eq!(o.loglevel, LogLevel::Info);
    assert_eq!(o.report, ReportFormat::Both);
    assert_eq!(
        e,
        [
            "unknown option 'foo' (known: loglevel, on-ready, report, console, fault-test, mtrr, maxcpus, pci-bars, pci-roots, pci-renumber, pci-vfs, domu-stop, xenstore-quota, ip, nic, linger)",
            "option 'loglevel': bad value 'loud' (expected one of error|warn|info|debug|trace)",
            "unknown option 'bar' (known: loglevel, on-ready, report, console, fault-test, mtrr, maxcpus, pci-bars, pci-roots, pci-renumber, pci-vfs, domu-stop, xenstore-quota, ip, nic, linger)",
            "option 'report': bad value '' (expected one of text|json|both|none)",
        ]
    );
    assert_eq!(o.given, [("console".into(), "serial".into())]);
}

#[test]
fn bare_name_and_empty_name() {
    let (o, e) = Dom0Options::parse("loglevel =debug = ==");
    assert_eq!(o, Dom0Options::default());
    assert_eq!(
        e,
        [
            OptionError::MissingValue {
                name: "loglevel".into(),
                expected: LogLevel::EXPECTED
            },
            OptionError::EmptyName {
                word: "=debug".into()
            },
            OptionError::EmptyName { word: "=".into() },
            OptionError::EmptyName { word: "==".into() },
        ]
    );
    assert_eq!(
        e[0].to_string(),
        "option 'loglevel' needs a value (expected one of error|warn|info|debug|trace)"
    );
    assert_eq!(
        e[1].to_string(),
        "'=debug': option name before '=' is empty"
    );
    // A second '=' belongs to the value.
    let (_, e) = parse("loglevel=debug=x");
    assert_eq!(
        e,
        ["option 'loglevel': bad value 'debug=x' (expected one of error|warn|info|debug|trace)"]
    );
}

#[test]
fn repeats_last_wins_and_are_reported() {
    let (o, e) = parse("loglevel=warn report=none loglevel=debug");
    assert_eq!(o.loglevel, LogLevel::Debug);
    assert_eq!(
        o.given,
        [
            ("loglevel".into(), "debug".into()),
            ("report".into(), "none".into())
        ]
    );
    assert_eq!(
        e,
        ["option 'loglevel' given more than once ('warn', then 'debug'); the last one wins"]
    );
    assert!(Dom0Options::parse("report=json report=text").1[0].is_note());
    assert!(!Dom0Options::parse("foo").1[0].is_note());
    // A bad repeat does not undo the good value.
    let (o, e) = parse("loglevel=warn loglevel=x");
    assert_eq!(o.loglevel, LogLevel::Warn);
    assert_eq!(e.len(), 1);
}

#[test]
fn weird_whitespace() {
    let (o, e) = parse("\t\n  loglevel=debug\r\n\x0b\x0c console=xen \u{a0}report=text  ");
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(o.loglevel, LogLevel::Debug);
    assert_eq!(o.console, ConsoleChoice::Xen);
    assert_eq!(o.report, ReportFormat::Text);
    let (o, e) = parse(" \t \n ");
    assert!(e.is_empty());
    assert_eq!(o, Dom0Options::default());
}

#[test]
fn image_path_first_word_is_skipped() {
    for first in ["/boot/dom0.elf", "dom0.elf", "dom0.gz", "(hd0)/dom0", "./d"] {
        let (o, e) = parse(&format!("{first} loglevel=debug"));
        assert!(e.is_empty(), "{first}: {e:?}");
        assert_eq!(o.loglevel, LogLevel::Debug);
    }
    // Only the first word.
    let (_, e) = parse("loglevel=debug /boot/x.elf");
    assert_eq!(e.len(), 1);
    // Not a path, or a known option whose value has a slash: parsed as usual.
    let (_, e) = parse("dom0 loglevel=debug");
    assert_eq!(e.len(), 1);
    let (_, e) = parse("console=/dev/ttyS0");
    assert_eq!(
        e,
        ["option 'console': bad value '/dev/ttyS0' (expected one of auto|xen|serial|e9)"]
    );
}

#[test]
fn non_ascii() {
    let (o, e) = parse("l\u{f6}glevel=debug loglevel=d\u{e9}bug console=\u{1f600} report=json");
    assert_eq!(o.report, ReportFormat::Json);
    assert_eq!(
        e,
        [
            "unknown option 'l\u{f6}glevel' (known: loglevel, on-ready, report, console, fault-test, mtrr, maxcpus, pci-bars, pci-roots, pci-renumber, pci-vfs, domu-stop, xenstore-quota, ip, nic, linger)",
            "option 'loglevel': bad value 'd\u{e9}bug' (expected one of error|warn|info|debug|trace)",
            "option 'console': bad value '\u{1f600}' (expected one of auto|xen|serial|e9)",
        ]
    );
    // A Turkish dotless i is not ASCII-case-equal to "i".
    let (o, e) = parse("loglevel=\u{131}nfo");
    assert_eq!(o.loglevel, LogLevel::Info);
    assert_eq!(e.len(), 1);
}

#[test]
fn very_long_input_is_bounded() {
    let long_name: String = "\u{e9}".repeat(10_000);
    let (_, e) = Dom0Options::parse(&format!("{long_name}=1"));
    let OptionError::Unknown { name } = &e[0] else {
        panic!("{e:?}")
    };
    assert_eq!(name.chars().count(), MAX_QUOTED + 3);
    assert!(name.ends_with("..."));

    let long_value = "x".repeat(100_000);
    let (_, e) = Dom0Options::parse(&format!("loglevel={long_value}"));
    assert!(e[0].to_string().len() < 200);

    let mut many = "junk ".repeat(10_000);
    many.push_str("loglevel=trace");
    let (o, e) = Dom0Options::parse(&many);
    assert_eq!(o.loglevel, LogLevel::Trace);
    assert_eq!(e.len(), MAX_ERRORS + 1);
    assert_eq!(
        e[MAX_ERRORS],
        OptionError::Suppressed {
            count: 10_000 - MAX_ERRORS
        }
    );
    assert_eq!(
        e[MAX_ERRORS].to_string(),
        "9984 more command-line problems not shown"
    );
}

#[test]
fn pci_options() {
    let (o, e) = Dom0Options::parse("pci-bars=all pci-renumber=2");
    assert!(e.is_empty(), "{e:?}");
    assert_eq!((o.pci_bars, o.pci_renumber), (PciBars::All, Some(2)));
    assert_eq!(Dom0Options::parse("pci-renumber=33").1.len(), 1);
    assert_eq!(Dom0Options::parse("pci-bars=some").1.len(), 1);
}

#[test]
fn maxcpus_is_a_bounded_number() {
    assert_eq!(Dom0Options::parse("maxcpus=2").0.maxcpus, Some(2));
    assert_eq!(Dom0Options::parse("maxcpus=128").0.maxcpus, Some(128));
    for bad in [
        "maxcpus=0",
        "maxcpus=129",
        "maxcpus=-1",
        "maxcpus=two",
        "maxcpus=",
        "maxcpus",
    ] {
        let (o, e) = Dom0Options::parse(bad);
        assert_eq!(o.maxcpus, None, "{bad}");
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
    }
}

#[test]
fn fault_test_values() {
    let (o, e) = Dom0Options::parse("fault-test=page-fault");
    assert!(e.is_empty());
    assert_eq!(o.fault_test, FaultTest::PageFault);
    let (o, e) = Dom0Options::parse("fault-test=invalid-opcode");
    assert!(e.is_empty());
    assert_eq!(o.fault_test, FaultTest::InvalidOpcode);
    let (o, e) = Dom0Options::parse("fault-test=triple");
    assert_eq!(o.fault_test, FaultTest::None);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string()
            .contains("none|page-fault|invalid-opcode|stack-overflow|mtrr-skew")
    );
    assert_eq!(
        Dom0Options::parse("fault-test=mtrr-skew").0.fault_test,
        FaultTest::MtrrSkew
    );
}

#[test]
fn xenstore_quota_is_bounded() {
    assert_eq!(Dom0Options::parse("").0.xenstore_quota_kib, None);
    assert_eq!(
        Dom0Options::parse("xenstore-quota=4096")
            .0
            .xenstore_quota_kib,
        Some(4096)
    );
    for bad in [
        "xenstore-quota=63",
        "xenstore-quota=1048577",
        "xenstore-quota=2M",
        "xenstore-quota",
    ] {
        let (o, e) = Dom0Options::parse(bad);
        assert_eq!(o.xenstore_quota_kib, None, "{bad}");
        assert_eq!(e.len(), 1, "{bad}");
    }
}

#[test]
fn domu_stop_is_bounded() {
    assert_eq!(Dom0Options::parse("domu-stop=20").0.domu_stop, 20);
    for bad in [
        "domu-stop=-1",
        "domu-stop=86401",
        "domu-stop=x",
        "domu-stop",
    ] {
        let (o, e) = Dom0Options::parse(bad);
        assert_eq!(o.domu_stop, 0, "{bad}");
        assert_eq!(e.len(), 1, "{bad}");
    }
}

#[test]
fn known_names() {
    assert_eq!(
        Dom0Options::known_names(),
        [
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
            "linger"
        ]
    );
}

#[test]
fn keyword_helpers() {
    assert_eq!(LogLevel::from_name("DEBUG"), Some(LogLevel::Debug));
    assert_eq!(LogLevel::from_name(""), None);
    assert_eq!(OnReady::QemuExit.to_string(), "qemu-exit");
    assert_eq!(ConsoleChoice::ALL.len(), 4);
    // More verbose levels compare greater (as in the `log` crate).
    assert!(LogLevel::Error < LogLevel::Warn && LogLevel::Debug < LogLevel::Trace);
}

#[test]
fn ip_takes_an_address_with_prefix_or_none() {
    assert_eq!(
        Dom0Options::default().ip,
        Dom0Ip::Static {
            addr: [10, 0, 0, 254],
            prefix: 24
        }
    );
    let (o, e) = Dom0Options::parse("ip=192.168.7.1/16");
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(
        o.ip,
        Dom0Ip::Static {
            addr: [192, 168, 7, 1],
            prefix: 16
        }
    );
    assert_eq!(Dom0Options::parse("ip=none").0.ip, Dom0Ip::Off);
    for bad in [
        "ip=10.0.0.1",
        "ip=10.0.0.0/24",
        "ip=10.0.0.255/24",
        "ip=10.0.0.1/31",
        "ip=10.0.0.1/0",
        "ip=0.1.2.3/8",
        "ip=224.0.0.1/4",
        "ip=127.0.0.1/8",
        "ip=10.0.0/24",
        "ip=10.0.0.1.5/24",
        "ip=10.0.0.300/24",
        "ip",
    ] {
        let (o, e) = Dom0Options::parse(bad);
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert_eq!(o.ip, Dom0Ip::default(), "{bad}");
    }
}

#[test]
fn nic_linger_and_dhcp() {
    let (o, e) = Dom0Options::parse("nic=auto ip=dhcp linger=30");
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(o.nic, NicChoice::Auto);
    assert_eq!(o.ip, Dom0Ip::Dhcp);
    assert_eq!(o.linger, Some(Linger::Seconds(30)));
    let (o, _) = Dom0Options::parse("nic=01:00.0 linger=forever");
    assert_eq!(o.nic, NicChoice::At(pci::Sbdf::new(0, 1, 0, 0).unwrap()));
    assert_eq!(o.linger, Some(Linger::Forever));
    let (o, _) = Dom0Options::parse("nic=0001:1f:1f.7");
    assert_eq!(
        o.nic,
        NicChoice::At(pci::Sbdf::new(1, 0x1f, 0x1f, 7).unwrap())
    );
    assert_eq!(Dom0Options::parse("").0.nic, NicChoice::None);
    assert_eq!(Dom0Options::parse("").0.linger, None);
    for bad in [
        "nic=",
        "nic=1:2",
        "nic=00:20.0",
        "nic=00:1f.8",
        "nic=100:00.0",
        "nic=00:00.0.0",
        "nic=eth0",
        "linger=0",
        "linger=86401",
        "linger=-1",
        "linger=",
    ] {
        let (o, e) = Dom0Options::parse(bad);
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert_eq!((o.nic, o.linger), (NicChoice::None, None), "{bad}");
    }
}

#[test]
fn pci_roots_takes_acpi_or_probe() {
    assert_eq!(Dom0Options::parse("").0.pci_roots, PciRoots::Acpi);
    assert_eq!(
        Dom0Options::parse("pci-roots=probe").0.pci_roots,
        PciRoots::Probe
    );
    let (o, e) = Dom0Options::parse("pci-roots=bios");
    assert_eq!(o.pci_roots, PciRoots::Acpi);
    assert!(alloc::format!("{}", e[0]).contains("acpi|probe"), "{e:?}");
}
