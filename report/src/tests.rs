//! Tests of `lib.rs`.

use super::*;
use serde_json::Value;
use xen::memmap::{MemRegion, MemType};

fn sample() -> BootReport {
    BootReport {
        report_version: ReportVersion::default(),
        selftests: vec![
            "grant table: 1 of at most 64 frames, frame 0 mapped at 0x1b5000: ok".into(),
        ],
        dom0_version: "rust-dom0 0.1.0".into(),
        under_xen: true,
        xen: Some(XenInfo {
            major: 4,
            minor: 17,
            extra: ".0".into(),
            version: "4.17.0".into(),
            features: vec!["writable_page_tables".into(), "hvm_callback_vector".into()],
            caps: "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64".into(),
            hypercall_insn: "vmmcall".into(),
        }),
        start_info: Some(StartInfoSummary {
            paddr: 0x202030,
            version: 0,
            flags: 3,
            nr_modules: 1,
            rsdp: 0x7f60f16,
        }),
        cmdline: "loglevel=debug on-ready=qemu-exit".into(),
        options: vec![
            ("loglevel".into(), "debug".into()),
            ("on-ready".into(), "qemu-exit".into()),
        ],
        memory_map: vec![
            (&MemRegion::new(0, 0x9f000, MemType::Ram)).into(),
            (&MemRegion::new(0x9f000, 0x61000, MemType::Reserved)).into(),
            (&MemRegion::new(0x100000, 0x7f60f16 - 0x100000, MemType::Ram)).into(),
            (&MemRegion::new(0x7f60f16, 0xea, MemType::Acpi)).into(),
            (&MemRegion::new(0xb000_0000, 0x1000_0000, MemType::Reserved)).into(),
            (&MemRegion::new(0xfed0_0000, 0x400, MemType::Other(12))).into(),
        ],
        memmap_source: "XENMEM_memory_map".into(),
        ram_bytes: 0x9f000 + 0x7f60f16 - 0x100000,
        heap: HeapStats {
            size: 4 << 20,
            used: 12345,
            peak: 20480,
        },
        vcpus: 2,
        phases: vec![
            Phase {
                name: "entry".into(),
                at_ns: 0,
            },
            Phase {
                name: "console".into(),
                at_ns: 1_234_567,
            },
            Phase {
                name: "ready".into(),
                at_ns: 12_000_000,
            },
        ],
        timer: Some(TimerCheck {
            requested_ns: 1_000_000,
            delivered_ns: 1_002_000,
            via: "VCPUOP_set_singleshot_timer".into(),
        }),
        // Xen 4.17's crafted RSDP, XSDT and MADT (packed downwards from 0x7f61000) on a
        // QEMU q35 host; HPET and WAET are hidden by Xen.
        acpi: Some(AcpiSummary {
            rsdp: 0x7f60f16,
            revision: 2,
            oem_id: "BOCHS ".into(),
            root: "XSDT".into(),
            tables: vec![
                AcpiTable {
                    signature: "APIC".into(),
                    paddr: 0x7f60f76,
                    length: 0x8a,
                    revision: 1,
                    ok: true,
                },
                AcpiTable {
                    signature: "FACP".into(),
                    paddr: 0x7fe1a3c,
                    length: 0xf4,
                    revision: 1,
                    ok: true,
                },
                AcpiTable {
                    signature: "MCFG".into(),
                    paddr: 0x7fe1b88,
                    length: 0x3c,
                    revision: 1,
                    ok: true,
                },
            ],
            madt_cpus: 2,
            madt_apic_ids: vec![0, 2],
            ioapics: 1,
            overrides: 5,
            present: vec![
                "APIC".into(),
                "FACP".into(),
                "MCFG".into(),
                "DSDT".into(),
                "FACS".into(),
            ],
            fadt: vec!["revision 3".into()],
            mcfg: vec!["segment 0 buses 0x00-0xff at 0xb0000000".into()],
            container: Some(ContainerMadt {
                vcpus: 2,
                apic_ids: vec![0, 2],
                compared_with: "Xen's crafted MADT".into(),
                native_rsdp: 0xf59e0,
                differences: vec![],
                rewritten: false,
                rsdp: 0,
                madt: 0,
            }),
            namespace: "DSDT: 1201 objects, 45 devices, 1 PCI host bridges".into(),
            host_bridges: vec![HostBridgeSummary {
                path: "\\_SB_.PCI0".into(),
                hid: "PNP0A08".into(),
                status: 0xf,
                segment: 0,
                bus_start: 0,
                bus_end: 0xff,
                uid: Some(0),
                pxm: None,
                windows: strings(&["io 0xd00-0xffff", "mem 0x80000000-0xafffffff"]),
                routing: "128 entries".into(),
                problems: vec![],
            }],
            problems: vec![],
        }),
        // qemu64 (+svm) under Xen 4.17, two vCPUs, SeaBIOS's MTRRs copied by Xen.
        cpu: Some(CpuSummary {
            vendor: "AuthenticAMD".into(),
            family: 15,
            model: 107,
            stepping: 1,
            brand: "QEMU Virtual CPU version 2.5+".into(),
            features: strings(&[
                "fpu",
                "tsc",
                "apic",
                "mtrr",
                "pat",
                "sse2",
                "x2apic",
                "hypervisor",
                "svm",
                "lm",
            ]),
            phys_addr_bits: 40,
            xen_tsc_mode: 0,
            xen_tsc_emulated: true,
            xen_hvm_flags: strings(&[
                "apic_access_virt",
                "iommu_mappings",
                "vcpu_id_present",
                "domid_present",
                "upcall_vector",
            ]),
        }),
        vcpu_list: vec![
            VcpuStatus {
                id: 0,
                apic_id: 0,
                up: true,
                online_ns: 0,
                work_done: 1000,
                ..VcpuStatus::default()
            },
            VcpuStatus {
                id: 1,
                apic_id: 2,
                up: true,
                online_ns: 3_456_789,
                work_done: 1000,
                ..VcpuStatus::default()
            },
        ],
        smp: Some(SmpSummary {
            started: 1,
            failed: vec![],
            first_up_to_last_online_ns: 3_200_000,
            ipi_round_trip_ns: 12_345,
        }),
        mtrr: Some(MtrrSummary {
            enabled: true,
            default_type: "WB".into(),
            variable: strings(&["0x80000000-0x100000000 UC"]),
            fixed_enabled: true,
            problems: vec![],
            consistent: true,
            corrected: false,
        }),
        pci: Some(sample_pci()),
        modules: vec![ModuleSummary {
            index: 0,
            paddr: 0x200000,
            size: 0x1000,
            cmdline: "bundle.cpio".into(),
            kind: "bundle".into(),
            status: "ok".into(),
        }],
        toolstack: None,
        firmware: Some(FirmwareSummary {
            boot: "bios".into(),
            ..Default::default()
        }),
        uplink: None,
        watchdog: vec![
            "watchdog: no progress in the pci phase for 1053 ms; last step: config write \
                 0000:01:00.0 +0x004 = 0x00000100; Xen: vCPU 0 runnable for 1100 ms"
                .into(),
        ],
        warnings: vec!["memory map entry 5 has unknown type 12".into()],
        errors: vec![],
        ready: true,
        tsc_khz: 2_000_000,
    }
}

/// QEMU q35 under Xen: host bridge, a root port with a virtio-net behind it.
fn sample_pci() -> PciSummary {
    PciSummary {
        source: "ECAM (MCFG)".into(),
        segments: strings(&["0000 [bus 00-ff] ECAM"]),
        functions: vec![
            PciFunction {
                sbdf: "0000:00:00.0".into(),
                vendor: 0x8086,
                device: 0x29c0,
                class: 0x06_00_00,
                header_type: 0,
                kind: "endpoint".into(),
                parent: None,
                bars: vec![],
                caps: vec![],
                ext_caps: vec![],
                xen_add: "ok".into(),
                irq: String::new(),
                device_check: String::new(),
                problems: vec![],
            },
            PciFunction {
                sbdf: "0000:00:01.0".into(),
                vendor: 0x1b36,
                device: 0x000c,
                class: 0x06_04_00,
                header_type: 1,
                kind: "bridge [01-01]".into(),
                parent: None,
                bars: vec![PciBar {
                    index: 0,
                    kind: PciBarKind::Mem32,
                    prefetchable: false,
                    address: 0xfeb0_0000,
                    size: 0x1000,
                }],
                caps: strings(&["PCI Express (root port)", "MSI-X (table size 1)"]),
                ext_caps: strings(&["Advanced Error Reporting"]),
                xen_add: "ok".into(),
                irq: String::new(),
                device_check: String::new(),
                problems: vec![],
            },
            PciFunction {
                sbdf: "0000:01:00.0".into(),
                vendor: 0x1af4,
                device: 0x1041,
                class: 0x02_00_00,
                header_type: 0,
                kind: "endpoint".into(),
                parent: Some("0000:00:01.0".into()),
                bars: vec![
                    PciBar {
                        index: 4,
                        kind: PciBarKind::Mem64,
                        prefetchable: true,
                        address: 0xfe00_0000,
                        size: 0x4000,
                    },
                    PciBar {
                        index: 6,
                        kind: PciBarKind::Rom,
                        prefetchable: false,
                        address: 0xfe84_0000,
                        size: 0x40000,
                    },
                ],
                caps: strings(&["MSI-X (table size 3)", "PCI Express (endpoint)"]),
                ext_caps: vec![],
                xen_add: "-ENODEV (19)".into(),
                irq: "INTA -> GSI 16 (\\_SB_.GSIE)".into(),
                device_check: String::new(),
                problems: strings(&[
                    "0000:01:00.0: BAR 1 (0x14): unassigned (address 0, size 0x1000)",
                ]),
            },
        ],
        mmcfg_reserved: strings(&["0000 [bus 00-ff] at 0xb0000000: ok"]),
        windows: vec!["[0xc0000000, 0xfec00000): a gap in the memory map".into()],
        bar_moves: Vec::new(),
        renumber: Vec::new(),
        problems: strings(&["0000:00:05.0: ID (0x00) changed between two reads"]),
        tree: "-[0000:00]-+-00.0  8086:29c0 Host bridge\n           \\-01.0-[01]----00.0  \
                   1af4:1041 Ethernet controller\n"
            .into(),
        enumerate_ns: 1_234_567,
        enumerate_config_reads: 120,
        enumerate_config_writes: 30,
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|&s| String::from(s)).collect()
}

fn json(r: &BootReport) -> (String, Value) {
    let mut s = String::new();
    r.write_json(&mut s).unwrap();
    let v = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
    (s, v)
}

fn text(r: &BootReport) -> String {
    let mut s = String::new();
    r.write_text(&mut s).unwrap();
    s
}

#[test]
fn json_has_the_values() {
    let (s, v) = json(&sample());
    assert!(!s.contains('\n') && s.is_ascii());
    assert_eq!(v["report_version"], 1);
    assert_eq!(v["dom0_version"], "rust-dom0 0.1.0");
    assert_eq!(v["under_xen"], true);
    assert_eq!(v["ready"], true);
    assert_eq!(v["xen"]["major"], 4);
    assert_eq!(v["xen"]["minor"], 17);
    assert_eq!(v["xen"]["extra"], ".0");
    assert_eq!(v["xen"]["version"], "4.17.0");
    assert_eq!(v["xen"]["features"][1], "hvm_callback_vector");
    assert_eq!(v["xen"]["hypercall_insn"], "vmmcall");
    assert_eq!(v["start_info"]["paddr"], 0x202030);
    assert_eq!(v["start_info"]["flags"], 3);
    assert_eq!(v["start_info"]["rsdp"], 0x7f60f16);
    assert_eq!(v["cmdline"], "loglevel=debug on-ready=qemu-exit");
    assert_eq!(v["options"]["on-ready"], "qemu-exit");
    assert_eq!(v["memmap_source"], "XENMEM_memory_map");
    let map = v["memory_map"].as_array().unwrap();
    assert_eq!(map.len(), 6);
    assert_eq!(map[2]["addr"], 0x100000);
    assert_eq!(map[2]["end"], 0x7f60f16);
    assert_eq!(map[2]["type"], "ram");
    assert_eq!(map[3]["size"], 0xea);
    assert_eq!(map[3]["type"], "acpi");
    assert_eq!(map[5]["type"], "other");
    assert_eq!(map[5]["type_raw"], 12);
    assert_eq!(v["ram_bytes"], 0x9f000 + 0x7f60f16 - 0x100000);
    assert_eq!(v["heap"]["used"], 12345);
    assert_eq!(v["vcpus"], 2);
    assert_eq!(v["tsc_khz"], 2_000_000);
    assert_eq!(v["phases"][1]["name"], "console");
    assert_eq!(v["phases"][1]["at_ns"], 1_234_567);
    assert_eq!(v["timer"]["delivered_ns"], 1_002_000);
    let acpi = &v["acpi"];
    assert_eq!(acpi["rsdp"], 0x7f60f16);
    assert_eq!(acpi["revision"], 2);
    assert_eq!(acpi["oem_id"], "BOCHS ");
    assert_eq!(acpi["root"], "XSDT");
    let tables = acpi["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 3);
    assert_eq!(
        tables[0],
        serde_json::json!({"signature": "APIC", "paddr": 0x7f60f76, "length": 0x8a, "revision": 1, "ok": true})
    );
    assert_eq!(acpi["mcfg"][0], "segment 0 buses 0x00-0xff at 0xb0000000");
    assert_eq!(acpi["container"]["apic_ids"], serde_json::json!([0, 2]));
    assert_eq!(acpi["container"]["differences"], serde_json::json!([]));
    assert_eq!(acpi["container"]["rewritten"], false);
    assert_eq!(tables[2]["signature"], "MCFG");
    assert_eq!(acpi["madt_cpus"], 2);
    assert_eq!(acpi["madt_apic_ids"], serde_json::json!([0, 2]));
    assert_eq!(acpi["ioapics"], 1);
    assert_eq!(acpi["overrides"], 5);
    assert_eq!(acpi["problems"], serde_json::json!([]));
    assert_eq!(acpi["host_bridges"][0]["path"], "\\_SB_.PCI0");
    assert_eq!(acpi["host_bridges"][0]["bus_end"], 0xff);
    assert_eq!(
        acpi["host_bridges"][0]["windows"][1],
        "mem 0x80000000-0xafffffff"
    );
    assert_eq!(acpi["host_bridges"][0]["pxm"], Value::Null);
    assert_eq!(v["firmware"]["boot"], "bios");
    assert_eq!(v["firmware"]["efi_tables"], serde_json::json!([]));
    // Key order: `acpi` sits between `timer` and `modules`.
    let timer = s.find("\"timer\":").unwrap();
    let acpi_at = s.find("\"acpi\":").unwrap();
    assert!(timer < acpi_at && acpi_at < s.find("\"modules\":").unwrap());
    assert_eq!(
        v["cpu"],
        serde_json::json!({
            "vendor": "AuthenticAMD",
            "family": 15,
            "model": 107,
            "stepping": 1,
            "brand": "QEMU Virtual CPU version 2.5+",
            "features": ["fpu", "tsc", "apic", "mtrr", "pat", "sse2", "x2apic", "hypervisor",
                         "svm", "lm"],
            "phys_addr_bits": 40,
            "xen_tsc_mode": 0,
            "xen_tsc_emulated": true,
            "xen_hvm_flags": ["apic_access_virt", "iommu_mappings", "vcpu_id_present",
                              "domid_present", "upcall_vector"],
        })
    );
    assert_eq!(
        v["vcpu_list"][1],
        serde_json::json!({
            "id": 1,
            "apic_id": 2,
            "up": true,
            "online_ns": 3_456_789,
            "work_done": 1000,
            "cpuid_differences": [],
            "mtrr_problems": [],
        })
    );
    assert_eq!(v["vcpu_list"].as_array().unwrap().len(), 2);
    assert_eq!(
        v["smp"],
        serde_json::json!({
            "started": 1,
            "failed": [],
            "first_up_to_last_online_ns": 3_200_000,
            "ipi_round_trip_ns": 12_345,
        })
    );
    assert_eq!(
        v["mtrr"],
        serde_json::json!({
            "enabled": true,
            "default_type": "WB",
            "variable": ["0x80000000-0x100000000 UC"],
            "fixed_enabled": true,
            "problems": [],
            "consistent": true,
            "corrected": false,
        })
    );
    assert_eq!(v["pci"]["source"], "ECAM (MCFG)");
    assert_eq!(v["pci"]["segments"][0], "0000 [bus 00-ff] ECAM");
    assert_eq!(v["pci"]["enumerate_ns"], 1_234_567);
    assert_eq!(
        v["pci"]["mmcfg_reserved"][0],
        "0000 [bus 00-ff] at 0xb0000000: ok"
    );
    assert_eq!(v["pci"]["functions"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["pci"]["functions"][2],
        serde_json::json!({
            "sbdf": "0000:01:00.0",
            "vendor": 0x1af4,
            "device": 0x1041,
            "class": 0x020000,
            "header_type": 0,
            "kind": "endpoint",
            "parent": "0000:00:01.0",
            "bars": [
                {"index": 4, "kind": "mem64", "prefetchable": true, "address": 0xfe000000u64,
                 "size": 0x4000},
                {"index": 6, "kind": "rom", "prefetchable": false, "address": 0xfe840000u64,
                 "size": 0x40000},
            ],
            "caps": ["MSI-X (table size 3)", "PCI Express (endpoint)"],
            "ext_caps": [],
            "xen_add": "-ENODEV (19)",
            "irq": "INTA -> GSI 16 (\\_SB_.GSIE)",
            "device_check": "",
            "problems": ["0000:01:00.0: BAR 1 (0x14): unassigned (address 0, size 0x1000)"],
        })
    );
    assert_eq!(v["pci"]["functions"][0]["parent"], Value::Null);
    assert_eq!(v["pci"]["functions"][1]["kind"], "bridge [01-01]");
    assert_eq!(
        v["pci"]["problems"][0],
        "0000:00:05.0: ID (0x00) changed between two reads"
    );
    assert!(
        v["pci"]["tree"]
            .as_str()
            .unwrap()
            .starts_with("-[0000:00]-+-00.0  8086:29c0")
    );
    // Key order: acpi, cpu, vcpu_list, smp, mtrr, pci, modules.
    let order: Vec<usize> = ["acpi", "cpu", "vcpu_list", "smp", "mtrr", "pci", "modules"]
        .iter()
        .map(|k| s.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert_eq!(v["modules"][0]["kind"], "bundle");
    assert_eq!(v["modules"][0]["size"], 0x1000);
    assert_eq!(v["warnings"][0], "memory map entry 5 has unknown type 12");
    assert!(
        v["watchdog"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("watchdog: no progress in the pci phase")),
        "{}",
        v["watchdog"]
    );
    assert_eq!(v["errors"], Value::Array(vec![]));
}

#[test]
fn json_of_an_empty_report() {
    let (_, v) = json(&BootReport::default());
    assert_eq!(v["xen"], Value::Null);
    assert_eq!(v["start_info"], Value::Null);
    assert_eq!(v["timer"], Value::Null);
    assert_eq!(v["acpi"], Value::Null);
    assert_eq!(v["cpu"], Value::Null);
    assert_eq!(v["vcpu_list"], serde_json::json!([]));
    assert_eq!(v["smp"], Value::Null);
    assert_eq!(v["mtrr"], Value::Null);
    assert_eq!(v["pci"], Value::Null);
    assert_eq!(v["under_xen"], false);
    assert_eq!(v["options"], serde_json::json!({}));
    assert_eq!(v["memory_map"], serde_json::json!([]));
}

#[test]
fn json_extreme_numbers() {
    let mut r = sample();
    r.memory_map = vec![(&MemRegion::new(u64::MAX - 1, 1, MemType::Ram)).into()];
    r.ram_bytes = u64::MAX;
    r.phases = vec![Phase {
        name: String::new(),
        at_ns: u64::MAX,
    }];
    let (_, v) = json(&r);
    assert_eq!(v["ram_bytes"].as_u64(), Some(u64::MAX));
    assert_eq!(v["memory_map"][0]["end"].as_u64(), Some(u64::MAX));
    assert_eq!(v["phases"][0]["at_ns"].as_u64(), Some(u64::MAX));
    r.acpi = Some(AcpiSummary {
        rsdp: u64::MAX,
        revision: u8::MAX,
        tables: vec![AcpiTable {
            signature: String::new(),
            paddr: u64::MAX,
            length: u32::MAX,
            revision: 1,
            ok: true,
        }],
        madt_cpus: u32::MAX,
        madt_apic_ids: vec![u32::MAX, 0],
        ioapics: u32::MAX,
        overrides: u32::MAX,
        ..AcpiSummary::default()
    });
    let (_, v) = json(&r);
    assert_eq!(v["acpi"]["rsdp"].as_u64(), Some(u64::MAX));
    assert_eq!(v["acpi"]["revision"], 255);
    assert_eq!(v["acpi"]["tables"][0]["paddr"].as_u64(), Some(u64::MAX));
    assert_eq!(
        v["acpi"]["tables"][0]["length"].as_u64(),
        Some(u32::MAX.into())
    );
    assert_eq!(
        v["acpi"]["madt_apic_ids"][0].as_u64(),
        Some(u32::MAX.into())
    );
    assert_eq!(v["acpi"]["overrides"].as_u64(), Some(u32::MAX.into()));
    r.cpu.as_mut().unwrap().family = u32::MAX;
    r.cpu.as_mut().unwrap().phys_addr_bits = u8::MAX;
    r.cpu.as_mut().unwrap().xen_tsc_mode = u32::MAX;
    r.vcpu_list[1].id = u32::MAX;
    r.vcpu_list[1].apic_id = u32::MAX;
    r.vcpu_list[1].online_ns = u64::MAX;
    r.vcpu_list[1].work_done = u64::MAX;
    r.smp = Some(SmpSummary {
        started: u32::MAX,
        failed: vec![],
        first_up_to_last_online_ns: u64::MAX,
        ipi_round_trip_ns: u64::MAX,
    });
    let (_, v) = json(&r);
    assert_eq!(v["cpu"]["family"].as_u64(), Some(u32::MAX.into()));
    assert_eq!(v["cpu"]["phys_addr_bits"], 255);
    assert_eq!(v["cpu"]["xen_tsc_mode"].as_u64(), Some(u32::MAX.into()));
    assert_eq!(v["vcpu_list"][1]["id"].as_u64(), Some(u32::MAX.into()));
    assert_eq!(v["vcpu_list"][1]["online_ns"].as_u64(), Some(u64::MAX));
    assert_eq!(v["vcpu_list"][1]["work_done"].as_u64(), Some(u64::MAX));
    assert_eq!(v["smp"]["started"].as_u64(), Some(u32::MAX.into()));
    assert_eq!(
        v["smp"]["first_up_to_last_online_ns"].as_u64(),
        Some(u64::MAX)
    );
    assert_eq!(v["smp"]["ipi_round_trip_ns"].as_u64(), Some(u64::MAX));
    let t = text(&r);
    assert!(
        t.contains(
            "vCPUs: 2 up in 18446744073709.551 ms: 0 (APIC 0) 4294967295 (APIC 4294967295)\n"
        ),
        "{t}"
    );
    // A region whose end does not fit saturates rather than wrapping.
    r.memory_map = vec![(&MemRegion::new(u64::MAX, 5, MemType::Ram)).into()];
    let (_, v) = json(&r);
    assert_eq!(v["memory_map"][0]["end"].as_u64(), Some(u64::MAX));
}

#[test]
fn hostile_strings_in_json_and_text() {
    let evil = "a\"b\\c\n{\"injected\":1}\r\u{1b}[2J\u{0}\u{e9}\u{1f600}";
    let mut r = sample();
    r.cmdline = evil.into();
    r.options = vec![(evil.into(), evil.into())];
    r.errors = vec![evil.into()];
    r.modules[0].cmdline = evil.into();
    r.phases[0].name = evil.into();
    r.xen.as_mut().unwrap().features = vec![evil.into()];
    {
        let a = r.acpi.as_mut().unwrap();
        a.oem_id = evil.into();
        a.root = evil.into();
        a.tables[1].signature = evil.into();
        a.problems = vec![evil.into()];
    }
    {
        let c = r.cpu.as_mut().unwrap();
        c.vendor = evil.into();
        c.brand = evil.into();
        c.features = vec![evil.into()];
        c.xen_hvm_flags = vec![evil.into()];
        r.vcpu_list[1].cpuid_differences = vec![evil.into()];
        r.vcpu_list[1].mtrr_problems = vec![evil.into()];
        r.smp.as_mut().unwrap().failed = vec![evil.into()];
        let m = r.mtrr.as_mut().unwrap();
        m.default_type = evil.into();
        m.variable = vec![evil.into()];
        m.problems = vec![evil.into()];
        let p = r.pci.as_mut().unwrap();
        p.source = evil.into();
        p.tree = evil.into();
        p.functions[2].sbdf = evil.into();
        p.functions[2].kind = evil.into();
        p.functions[2].caps = vec![evil.into()];
        p.functions[2].xen_add = evil.into();
        p.functions[2].problems = vec![evil.into()];
        p.problems = vec![evil.into()];
    }
    let (s, v) = json(&r);
    assert!(!s.contains('\n') && s.is_ascii());
    assert_eq!(v["cmdline"], evil);
    assert_eq!(v["options"][evil], evil);
    assert_eq!(v["errors"][0], evil);
    assert_eq!(v["modules"][0]["cmdline"], evil);
    assert_eq!(v["acpi"]["oem_id"], evil);
    assert_eq!(v["acpi"]["root"], evil);
    assert_eq!(v["acpi"]["tables"][1]["signature"], evil);
    assert_eq!(v["acpi"]["problems"][0], evil);
    assert_eq!(v["cpu"]["vendor"], evil);
    assert_eq!(v["cpu"]["brand"], evil);
    assert_eq!(v["cpu"]["features"][0], evil);
    assert_eq!(v["cpu"]["xen_hvm_flags"][0], evil);
    assert_eq!(v["vcpu_list"][1]["cpuid_differences"][0], evil);
    assert_eq!(v["vcpu_list"][1]["mtrr_problems"][0], evil);
    assert_eq!(v["smp"]["failed"][0], evil);
    assert_eq!(v["mtrr"]["default_type"], evil);
    assert_eq!(v["mtrr"]["variable"][0], evil);
    assert_eq!(v["mtrr"]["problems"][0], evil);
    assert_eq!(v["pci"]["source"], evil);
    assert_eq!(v["pci"]["tree"], evil);
    assert_eq!(v["pci"]["functions"][2]["sbdf"], evil);
    assert_eq!(v["pci"]["functions"][2]["kind"], evil);
    assert_eq!(v["pci"]["functions"][2]["caps"][0], evil);
    assert_eq!(v["pci"]["functions"][2]["xen_add"], evil);
    assert_eq!(v["pci"]["functions"][2]["problems"][0], evil);
    assert_eq!(v["pci"]["problems"][0], evil);
    assert!(v.get("injected").is_none());

    let t = text(&r);
    assert!(!t.contains('\r') && !t.contains('\u{1b}') && !t.contains('\u{0}'));
    assert!(t.contains(
        "cmdline: \"a\"b\\c\\x{a}{\"injected\":1}\\x{d}\\x{1b}[2J\\x{0}\u{e9}\u{1f600}\""
    ));
    // Every line is one of ours: the newline in the string did not start a new line.
    assert!(t.lines().all(|l| !l.starts_with("{\"injected\"")));
}

#[test]
fn text_has_the_key_lines() {
    let t = text(&sample());
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(
        lines[0],
        "dom0 boot report: rust-dom0 0.1.0, under Xen 4.17.0"
    );
    for expected in [
        "Xen: 4.17.0, caps \"xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64\", hypercall instruction vmmcall",
        "Xen features: writable_page_tables hvm_callback_vector",
        "start_info: at 0x202030, version 0, flags 0x3 (privileged, initdomain), 1 module, rsdp 0x7f60f16",
        "cmdline: \"loglevel=debug on-ready=qemu-exit\"",
        "options: loglevel=debug on-ready=qemu-exit",
        "memory map (XENMEM_memory_map, 6 entries):",
        "  [mem 0x0000000000000000-0x000000000009efff]    636 KiB  ram",
        "  [mem 0x000000000009f000-0x00000000000fffff]    388 KiB  reserved",
        "  [mem 0x0000000000100000-0x0000000007f60f15]  126.3 MiB  ram",
        "  [mem 0x0000000007f60f16-0x0000000007f60fff]      234 B  acpi",
        "  [mem 0x00000000b0000000-0x00000000bfffffff]    256 MiB  reserved",
        "  [mem 0x00000000fed00000-0x00000000fed003ff]      1 KiB  other(12)",
        "RAM: 126.9 MiB (133168918 bytes)",
        "TSC: 2000000 kHz",
        "heap: 12.0 KiB used of 4 MiB (peak 20 KiB)",
        "timeline (ms since entry):",
        "         0.000  (+0.000)  entry",
        "         1.234  (+1.234)  console",
        "        12.000  (+10.765)  ready",
        "timer: requested 1.000 ms, delivered after 1.002 ms via VCPUOP_set_singleshot_timer",
        "ACPI: RSDP rev 2 at 0x7f60f16, OEM \"BOCHS \", XSDT with 3 tables: APIC FACP MCFG; \
             MADT: 2 CPUs (APIC ids 0 2), 1 IO-APIC, 5 overrides",
        "CPU: AuthenticAMD family 15 model 107 stepping 1 \"QEMU Virtual CPU version 2.5+\", \
             40-bit physical addresses",
        "CPU features: fpu tsc apic mtrr pat sse2 x2apic hypervisor svm lm",
        "CPU under Xen: TSC mode 0, RDTSC emulated; HVM flags: apic_access_virt \
             iommu_mappings vcpu_id_present domid_present upcall_vector",
        "vCPUs: 2 up in 3.200 ms: 0 (APIC 0) 1 (APIC 2)",
        "  vCPU 0 (APIC 0): online at 0.000 ms, work 1000",
        "  vCPU 1 (APIC 2): online at 3.456 ms, work 1000",
        "SMP: 1 started, IPI round trip 0.012 ms, 0 failed",
        "MTRR: enabled, default WB, 1 variable range: 0x80000000-0x100000000 UC; fixed ranges \
             enabled; consistent across vCPUs; problems: none",
        "PCI: ECAM (MCFG), segments 0000 [bus 00-ff] ECAM; 3 functions in 1.234 ms; 2 problems",
        "PCI mmcfg_reserved: 0000 [bus 00-ff] at 0xb0000000: ok",
        "PCI tree:",
        "  -[0000:00]-+-00.0  8086:29c0 Host bridge",
        "             \\-01.0-[01]----00.0  1af4:1041 Ethernet controller",
        "  0000:00:00.0 8086:29c0 class 060000 endpoint; BARs: none; caps: none; xen add ok",
        "  0000:00:01.0 1b36:000c class 060400 bridge [01-01]; BARs: 0 mem32 0xfeb00000+0x1000; \
             caps: PCI Express (root port), MSI-X (table size 1); ext caps: Advanced Error \
             Reporting; xen add ok",
        "  0000:01:00.0 1af4:1041 class 020000 endpoint below 0000:00:01.0; BARs: 4 mem64 pref \
             0xfe000000+0x4000, rom 0xfe840000+0x40000; caps: MSI-X (table size 3), PCI Express \
             (endpoint); xen add -ENODEV (19)",
        "    - 0000:01:00.0: BAR 1 (0x14): unassigned (address 0, size 0x1000)",
        "PCI problems (1):",
        "  - 0000:00:05.0: ID (0x00) changed between two reads",
        "modules (1):",
        "  #0 [0x200000, +0x1000) 4 KiB  kind bundle  status ok  cmdline \"bundle.cpio\"",
        "watchdog (1)",
        "  - watchdog: no progress in the pci phase for 1053 ms; last step: config write \
             0000:01:00.0 +0x004 = 0x00000100; Xen: vCPU 0 runnable for 1100 ms",
        "warnings (1)",
        "  - memory map entry 5 has unknown type 12",
        "errors (0): none",
        "result: READY",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{t}");
    }
    assert!(t.ends_with('\n'));
    // The short vCPU count gives way to the vCPU section, which sits after ACPI.
    assert!(!lines.contains(&"vCPUs: 2"));
    let at = |prefix: &str| lines.iter().position(|l| l.starts_with(prefix)).unwrap();
    let order = [
        "ACPI:", "CPU:", "vCPUs:", "SMP:", "MTRR:", "PCI:", "modules",
    ]
    .map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}\n{t}");
}

#[test]
fn text_of_an_empty_report() {
    let t = text(&BootReport::default());
    for expected in [
        "dom0 boot report: , not under Xen",
        "start_info: none",
        "options: (defaults)",
        "memory map (unknown source, 0 entries):",
        "TSC: unknown",
        "  (none)",
        "timer: not checked",
        "ACPI: none",
        "PCI: not enumerated",
        "vCPUs: 0",
        "result: NOT READY",
    ] {
        assert!(
            t.lines().any(|l| l == expected),
            "missing {expected:?} in\n{t}"
        );
    }
}

#[test]
fn text_start_info_variants() {
    let mut r = sample();
    r.start_info = Some(StartInfoSummary {
        paddr: 0x6000,
        version: 1,
        flags: 0,
        nr_modules: 0,
        rsdp: 0,
    });
    r.xen = None;
    let t = text(&r);
    assert!(
        t.contains("start_info: at 0x6000, version 1, flags 0x0, 0 modules, rsdp none\n"),
        "{t}"
    );
    assert!(t.starts_with("dom0 boot report: rust-dom0 0.1.0, under Xen\n"));
}

#[test]
fn text_acpi_variants() {
    let acpi_lines = |a: AcpiSummary| -> Vec<String> {
        let r = BootReport {
            acpi: Some(a),
            ..BootReport::default()
        };
        text(&r)
            .lines()
            .skip_while(|l| !l.starts_with("ACPI"))
            .take_while(|l| !l.starts_with("PCI") && !l.starts_with("modules"))
            .map(String::from)
            .collect()
    };
    // No root table read, problems listed (control characters escaped).
    let lines = acpi_lines(AcpiSummary {
        rsdp: 0xf5a40,
        revision: 0,
        oem_id: "BOCHS ".into(),
        problems: vec![
            "RSDT: checksum over bytes [0x0, 0x34) sums to 0x01, not 0".into(),
            "two\nlines".into(),
        ],
        ..AcpiSummary::default()
    });
    assert_eq!(
        lines,
        vec![
            "ACPI: RSDP rev 0 at 0xf5a40, OEM \"BOCHS \", no root table; no MADT",
            "ACPI problems (2):",
            "  - RSDT: checksum over bytes [0x0, 0x34) sums to 0x01, not 0",
            "  - two\\x{a}lines",
        ]
    );
    // One table, one CPU, singular forms.
    let one = |sig: &str| AcpiTable {
        signature: sig.into(),
        paddr: 0xe0000,
        length: 0x50,
        revision: 1,
        ok: true,
    };
    let lines = acpi_lines(AcpiSummary {
        rsdp: 0xf5a40,
        revision: 2,
        root: "RSDT".into(),
        tables: vec![one("APIC")],
        madt_cpus: 1,
        madt_apic_ids: vec![7],
        ioapics: 1,
        overrides: 1,
        ..AcpiSummary::default()
    });
    assert_eq!(
        lines,
        vec![
            "ACPI: RSDP rev 2 at 0xf5a40, OEM \"\", RSDT with 1 table: APIC; MADT: 1 CPU \
                 (APIC id 7), 1 IO-APIC, 1 override"
        ]
    );
    // A MADT without CPUs; an empty XSDT.
    let lines = acpi_lines(AcpiSummary {
        root: "XSDT".into(),
        tables: vec![one("FACP"), one("APIC")],
        ..AcpiSummary::default()
    });
    assert_eq!(
        lines,
        vec![
            "ACPI: RSDP rev 0 at 0x0, OEM \"\", XSDT with 2 tables: FACP APIC; MADT: 0 CPUs, \
                 0 IO-APICs, 0 overrides"
        ]
    );
    let lines = acpi_lines(AcpiSummary {
        root: "XSDT".into(),
        ..AcpiSummary::default()
    });
    assert_eq!(
        lines,
        vec!["ACPI: RSDP rev 0 at 0x0, OEM \"\", XSDT with 0 tables; no MADT"]
    );
}

#[test]
fn text_cpu_vcpu_mtrr_variants() {
    let section = |r: &BootReport| -> Vec<String> {
        text(r)
            .lines()
            .skip_while(|l| !l.starts_with("ACPI"))
            .skip(1)
            .take_while(|l| !l.starts_with("PCI") && !l.starts_with("modules"))
            .map(String::from)
            .collect()
    };
    // Not under Xen, no brand, a vCPU that did not come up, one that differs, no SMP
    // summary, MTRRs inconsistent and corrected, with problems.
    let r = BootReport {
        vcpus: 4,
        cpu: Some(CpuSummary {
            vendor: "GenuineIntel".into(),
            family: 6,
            model: 0x55,
            stepping: 4,
            phys_addr_bits: 46,
            ..CpuSummary::default()
        }),
        vcpu_list: vec![
            VcpuStatus {
                id: 0,
                up: true,
                ..VcpuStatus::default()
            },
            VcpuStatus {
                id: 1,
                apic_id: 2,
                up: true,
                online_ns: 1_500_000,
                work_done: 7,
                cpuid_differences: strings(&["family: 6 vs 15"]),
                mtrr_problems: strings(&["disagree: vCPU 1: MTRRdefType (MSR 0x2ff) is 0x6"]),
            },
            VcpuStatus {
                id: 2,
                apic_id: 4,
                ..VcpuStatus::default()
            },
        ],
        mtrr: Some(MtrrSummary {
            enabled: false,
            default_type: "UC".into(),
            problems: strings(&["disabled: MTRRs are disabled", "two\nlines"]),
            consistent: false,
            corrected: true,
            ..MtrrSummary::default()
        }),
        ..BootReport::default()
    };
    assert_eq!(
        section(&r),
        [
            "CPU: GenuineIntel family 6 model 85 stepping 4, 46-bit physical addresses",
            "CPU features: (none)",
            "vCPUs: 2 of 4 up: 0 (APIC 0) 1 (APIC 2) 2 (APIC 4, down)",
            "  vCPU 0 (APIC 0): online at 0.000 ms, work 0",
            "  vCPU 1 (APIC 2): online at 1.500 ms, work 7",
            "    CPUID differs from vCPU 0: family: 6 vs 15",
            "    MTRR: disagree: vCPU 1: MTRRdefType (MSR 0x2ff) is 0x6",
            "  vCPU 2 (APIC 4): down",
            "MTRR: disabled, default UC, 0 variable ranges; fixed ranges disabled; \
                 inconsistent across vCPUs, corrected; problems (2):",
            "  - disabled: MTRRs are disabled",
            "  - two\\x{a}lines",
        ]
    );
    assert!(!text(&r).contains("vCPUs: 4\n"));
    // Under Xen with nothing set, SMP failures, several ranges, not corrected.
    let r = BootReport {
        under_xen: true,
        cpu: Some(CpuSummary::default()),
        smp: Some(SmpSummary {
            started: 0,
            failed: strings(&["vCPU 1: VCPUOP_up failed: -EINVAL"]),
            first_up_to_last_online_ns: 0,
            ipi_round_trip_ns: 0,
        }),
        mtrr: Some(MtrrSummary {
            enabled: true,
            default_type: "UC".into(),
            variable: strings(&["0x0-0x80000000 WB", "0x100000000-0x180000000 WB"]),
            fixed_enabled: true,
            consistent: false,
            ..MtrrSummary::default()
        }),
        ..BootReport::default()
    };
    assert_eq!(
        section(&r),
        [
            "CPU:  family 0 model 0 stepping 0, 0-bit physical addresses",
            "CPU features: (none)",
            "CPU under Xen: TSC mode 0, RDTSC native; HVM flags: (none)",
            "SMP: 0 started, IPI round trip not measured, 1 failed",
            "  - vCPU 1: VCPUOP_up failed: -EINVAL",
            "MTRR: enabled, default UC, 2 variable ranges: 0x0-0x80000000 WB, \
                 0x100000000-0x180000000 WB; fixed ranges enabled; inconsistent across vCPUs, \
                 not corrected; problems: none",
        ]
    );
    assert!(text(&r).contains("\nvCPUs: 0\n"));
}

#[test]
fn sizes_and_times() {
    let s = |b| Size(b).to_string();
    assert_eq!(s(0), "0 B");
    assert_eq!(s(1023), "1023 B");
    assert_eq!(s(1024), "1 KiB");
    assert_eq!(s(1536), "1.5 KiB");
    assert_eq!(s(1 << 20), "1 MiB");
    assert_eq!(s(3 << 30), "3 GiB");
    assert_eq!(s(u64::MAX), "16777215.9 TiB");
    assert_eq!(Ms(0).to_string(), "0.000");
    assert_eq!(Ms(999).to_string(), "0.000");
    assert_eq!(Ms(1_500_000).to_string(), "1.500");
    assert_eq!(Ms(u64::MAX).to_string(), "18446744073709.551");
    assert_eq!(format!("{:>8}", Ms(1_000)), "   0.001");
}

#[test]
fn write_errors_propagate() {
    struct Fails;
    impl fmt::Write for Fails {
        fn write_str(&mut self, _: &str) -> fmt::Result {
            Err(fmt::Error)
        }
    }
    assert!(sample().write_json(&mut Fails).is_err());
    assert!(sample().write_text(&mut Fails).is_err());
}

#[test]
fn pci_summary_from_an_enumeration() {
    use pci::regs::{CMD_IO, CMD_MASTER, CMD_MEM, PCIE_TYPE_ENDPOINT, PCIE_TYPE_ROOT_PORT};
    use pci::sim::{SimBar, SimConfig, SimDevice, SimSriov};
    let sbdf = |b, d, f| pci::Sbdf::new(0, b, d, f).unwrap();
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x1b36, 0x000c, 1, 1)
            .pcie(PCIE_TYPE_ROOT_PORT)
            .ari_forwarding(true)
            .aer(),
    );
    sim.add(
        sbdf(1, 0, 0),
        SimDevice::endpoint(0x8086, 0x10fb, 0x02_00_00)
            .command(CMD_IO | CMD_MEM | CMD_MASTER)
            .bar(0, SimBar::mem64(0x8_0000, 0xfe00_0000).prefetchable())
            .bar(4, SimBar::io(0x20, 0xe000))
            .rom(0x10000, 0, false)
            .msi(2, true)
            .msix(64, 0)
            .pcie(PCIE_TYPE_ENDPOINT)
            .ari(0)
            .raw_ext_cap(0x4242, 8)
            .sriov(SimSriov::new(4, 0x80, 1, 0x10ed).enabled(2)),
    );
    sim.add(sbdf(0, 2, 0), SimDevice::cardbus(0x104c, 0xac56));
    let segs = [pci::Segment {
        segment: 0,
        start_bus: 0,
        end_bus: 0xff,
        ecam: true,
    }];
    let topo = pci::enumerate(&sim, &segs, &pci::EnumOptions::default());
    assert!(sim.violations().is_empty());
    let mut p = PciSummary::from_topology("ECAM (MCFG)", &topo);
    p.enumerate_ns = 250_000;
    assert_eq!(p.segments, ["0000 [bus 00-ff] ECAM"]);
    let sbdfs: Vec<&str> = p.functions.iter().map(|f| f.sbdf.as_str()).collect();
    assert_eq!(
        sbdfs,
        [
            "0000:00:00.0",
            "0000:00:01.0",
            "0000:01:00.0",
            "0000:01:10.0",
            "0000:01:10.1",
            "0000:00:02.0"
        ]
    );
    assert!(p.functions.iter().all(|f| f.xen_add == XenAdd::NotReported));
    for a in pci::xen_add_order(&topo) {
        let result = if a.sbdf == sbdf(0, 2, 0) {
            XenAdd::Refused("-EOPNOTSUPP (95)".into())
        } else {
            XenAdd::Ok
        };
        assert!(p.set_xen_add(a.sbdf, result));
    }
    assert!(!p.set_xen_add(sbdf(9, 9, 0), XenAdd::Ok));
    let pf = &p.functions[2];
    assert_eq!(pf.kind, "endpoint");
    assert_eq!(pf.parent.as_deref(), Some("0000:00:01.0"));
    assert_eq!(
        pf.caps,
        [
            "MSI (4 vectors)",
            "MSI-X (table size 64)",
            "PCI Express (endpoint)"
        ]
    );
    assert_eq!(
        pf.ext_caps,
        [
            "Alternative Routing-ID Interpretation",
            "unknown 0x4242",
            "SR-IOV (2 of 4 VFs)"
        ]
    );
    let bars: Vec<(u8, &str, bool, u64, u64)> = pf
        .bars
        .iter()
        .map(|b| (b.index, b.kind.name(), b.prefetchable, b.address, b.size))
        .collect();
    assert_eq!(
        bars,
        [
            (0, "mem64", true, 0xfe00_0000, 0x8_0000),
            (4, "io", false, 0xe000, 0x20),
            (6, "rom", false, 0, 0x10000)
        ]
    );
    assert_eq!(p.functions[1].kind, "bridge [01-01]");
    assert_eq!(p.functions[3].kind, "VF of 0000:01:00.0");
    assert_eq!(p.functions[3].parent.as_deref(), Some("0000:00:01.0"));
    assert_eq!(p.functions[5].kind, "CardBus bridge");
    assert_eq!(p.functions[5].xen_add, XenAdd::from("-EOPNOTSUPP (95)"));
    assert_eq!(p.problem_count(), 1, "{p:#?}");

    let r = BootReport {
        pci: Some(p),
        ..BootReport::default()
    };
    let (_, v) = json(&r);
    assert_eq!(v["pci"]["functions"][3]["kind"], "VF of 0000:01:00.0");
    assert_eq!(v["pci"]["functions"][2]["bars"][1]["kind"], "io");
    assert_eq!(
        v["pci"]["functions"][5]["problems"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let t = text(&r);
    for expected in [
        "PCI: ECAM (MCFG), segments 0000 [bus 00-ff] ECAM; 6 functions in 0.250 ms; 1 problem",
        "PCI tree:",
        "  -[0000:00]-+-00.0  8086:29c0 Host bridge",
        "             +-01.0-[01]--+-00.0  8086:10fb Ethernet controller",
        "             |            +-10.0  8086:10ed Ethernet controller (VF of 0000:01:00.0)",
        "             |            \\-10.1  8086:10ed Ethernet controller (VF of 0000:01:00.0)",
        "             \\-02.0  104c:ac56 CardBus bridge",
        "  0000:01:10.1 8086:10ed class 020000 VF of 0000:01:00.0 below 0000:00:01.0; BARs: \
             none; caps: PCI Express (endpoint); ext caps: Alternative Routing-ID \
             Interpretation; xen add ok",
        "  0000:00:02.0 104c:ac56 class 060700 CardBus bridge; BARs: none; caps: none; xen \
             add -EOPNOTSUPP (95)",
        "    - 0000:00:02.0: CardBus bridge (header type 2 at 0x0e): listed, not trusted; \
             BARs and buses behind it not read",
    ] {
        assert!(
            t.lines().any(|l| l == expected),
            "missing {expected:?} in\n{t}"
        );
    }
    assert!(!t.contains("PCI problems"));
}

/// The per-DomU accounting of issue 10 (another test reads these exact keys).
#[test]
fn toolstack_reports_xenstore_accounting_and_refusals() {
    let mut r = sample();
    r.toolstack = Some(ToolstackSummary {
        xenstore_limit_bytes: 2_621_440,
        xenstore_global_limit_bytes: 57_374_956,
        domus: vec![DomuSummary {
            name: "hostile".into(),
            domid: 2,
            xenstore_peak_bytes: 2_454_519,
            xenstore_refused: 1311,
            console_throttled: 7,
            storm_peak_wakeups: 33,
            refusals: strings(&[
                "xenstore: ENOMEM memory quota x 151",
                "console: throttled x 7",
            ]),
            ..DomuSummary::default()
        }],
        ..ToolstackSummary::default()
    });
    let (_, v) = json(&r);
    let t = &v["toolstack"];
    assert_eq!(t["xenstore_limit_bytes"], 2_621_440);
    assert_eq!(t["xenstore_global_limit_bytes"], 57_374_956);
    let d = &t["domus"][0];
    assert_eq!(d["xenstore_bytes"], 0);
    assert_eq!(d["xenstore_peak_bytes"], 2_454_519);
    assert_eq!(d["xenstore_refused"], 1311);
    assert_eq!(d["console_throttled"], 7);
    assert_eq!(d["storm_peak_wakeups"], 33);
    assert_eq!(
        d["refusals"],
        serde_json::json!([
            "xenstore: ENOMEM memory quota x 151",
            "console: throttled x 7"
        ])
    );
    let t = text(&r);
    for expected in [
        "    xenstore: 0 bytes held, peak 2454519, 1311 request(s) refused; console throttled 7 time(s); at most 33 fruitless wakeup(s) in 100 ms",
        "    - xenstore: ENOMEM memory quota x 151",
    ] {
        assert!(
            t.lines().any(|l| l == expected),
            "missing {expected:?} in\n{t}"
        );
    }
    assert!(t.contains("xenstore limit 2560 KiB per DomU (56030 KiB for all)"));
}

#[test]
fn json_round_trips_through_the_typed_report() {
    let r = sample();
    let (s, _) = json(&r);
    let back = BootReport::from_json(&s).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.report_version, ReportVersion(REPORT_VERSION));
    // Unknown keys (a newer dom0) and missing ones (an older one) are tolerated.
    let v: BootReport =
        BootReport::from_json(r#"{"report_version":1,"ready":true,"future_key":[1,2]}"#).unwrap();
    assert!(v.ready);
    assert!(v.errors.is_empty());
}

/// The uplink and dom0's DHCP lease in both forms; an unknown state word is refused.
#[test]
fn uplink_and_dhcp_in_json_and_text() {
    let mut r = sample();
    r.uplink = Some(UplinkSummary {
        sbdf: "0000:01:00.0".into(),
        ids: "1af4:1041".into(),
        model: "virtio-net".into(),
        state: UplinkState::Up,
        mac: "52:54:00:12:34:56".into(),
        link_up: true,
        features: 0x3_0001_0020,
        service: "polled".into(),
        tx_frames: 3,
        rx_frames: 4,
        ..Default::default()
    });
    r.toolstack = Some(ToolstackSummary {
        dom0_net: Some(Dom0NetSummary {
            address: "10.0.2.15/24".into(),
            dhcp: true,
            dhcp_server: "10.0.2.2".into(),
            router: "10.0.2.2".into(),
            dhcp_leases: 1,
            ..Default::default()
        }),
        ..Default::default()
    });
    let mut j = String::new();
    r.write_json(&mut j).unwrap();
    let back = BootReport::from_json(&j).unwrap();
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["uplink"]["state"], "up");
    assert_eq!(v["toolstack"]["dom0_net"]["dhcp_server"], "10.0.2.2");
    let mut t = String::new();
    r.write_text(&mut t).unwrap();
    assert!(
        t.contains(
            "uplink 0000:01:00.0 [1af4:1041] virtio-net: up, link up, MAC 52:54:00:12:34:56"
        ),
        "{t}"
    );
    assert!(
        t.contains("DHCP: 1 lease(s), 0 lost; server 10.0.2.2"),
        "{t}"
    );
    let bad = j.replace("\"state\":\"up\"", "\"state\":\"sideways\"");
    assert!(BootReport::from_json(&bad).is_err());
    // An unsupported NIC names itself, with no counters line.
    r.uplink = Some(UplinkSummary {
        sbdf: "0000:03:00.0".into(),
        ids: "14e4:165f".into(),
        state: UplinkState::Unsupported,
        error: Some("no driver for 14e4:165f (class 02:00:00)".into()),
        ..Default::default()
    });
    let mut t = String::new();
    r.write_text(&mut t).unwrap();
    assert!(
        t.contains("uplink 0000:03:00.0 [14e4:165f] no driver: unsupported, link down"),
        "{t}"
    );
    assert!(t.contains("error: no driver for 14e4:165f"), "{t}");
    assert!(!t.contains("frames ("), "{t}");
}
