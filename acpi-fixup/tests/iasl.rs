//! Every table the builders emit, checked by ACPICA's `iasl` (Debian package `acpica-tools`):
//!
//! 1. `iasl -d table.dat` must exit 0 and say nothing about checksums, invalid fields or errors,
//!    neither on its output nor in the `.dsl` it writes;
//! 2. that `.dsl`, compiled again with `iasl -oa` (no AML optimizations), must give back the same
//!    bytes, except the checksum and the compiler ID/revision iasl writes in (offsets 9, 28-35):
//!    so iasl read every field the way the builder meant it.
//!
//! iasl (20200925, Debian bookworm) cannot load a binary RSDP (its file loader reads the bytes
//! " PTR" at offset 4 as a table length), so the RSDP is checked the other way round: its fields
//! are written as an iasl data-table source, compiled, and the 36 bytes iasl makes (iasl computes
//! both checksums) must equal the builder's.
//!
//! If `iasl` is missing and the test runs as root (CI does), it installs the package with
//! `apt-get install -y --no-install-recommends acpica-tools` (after `apt-get update` if that
//! fails); otherwise it fails with the command to run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use acpi_fixup::build::{
    ApicIdScheme, ContainerSpec, EntryKind, IoApic, Nmi, Override, build_madt, build_rsdp,
    build_xsdt, replace_in_xsdt,
};
use acpi_fixup::domu::{DomuSpec, domu_tables, domu_tables_with};
use acpi_fixup::mcfg::{self, McfgEntry};
use acpi_fixup::{MadtSummary, SdtHeader};

const INSTALL: &str = "apt-get install -y --no-install-recommends acpica-tools";

fn have_iasl() -> bool {
    Command::new("iasl").arg("-v").output().is_ok()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn apt(args: &[&str]) -> bool {
    Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Make sure `iasl` runs, installing it if this is root; the error says what to do otherwise.
fn ensure_iasl() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if have_iasl() {
                return Ok(());
            }
            if !is_root() {
                return Err(format!(
                    "iasl is missing and this test is not root; install it with:\n  sudo {INSTALL}"
                ));
            }
            let install: Vec<&str> = INSTALL.split(' ').skip(1).collect();
            let installed = apt(&install) || (apt(&["update"]) && apt(&install));
            if !installed {
                return Err(format!("`{INSTALL}` failed (after `apt-get update` too)"));
            }
            if have_iasl() {
                Ok(())
            } else {
                Err(format!("`{INSTALL}` succeeded but iasl still does not run"))
            }
        })
        .clone()
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("acpi-fixup-iasl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// What `iasl -d` said about one table.
struct Disassembly {
    ok: bool,
    /// stdout and stderr.
    output: String,
    /// The `.dsl` it wrote.
    dsl: String,
}

impl Disassembly {
    /// Lines that say something is wrong: on iasl's output any mention of a checksum, "invalid"
    /// or "error"; in the `.dsl`, "incorrect", "invalid", "error" or "warning" (the header's
    /// plain `Checksum` field is listed there too, so a checksum line counts only with one of
    /// those words or iasl's "should be").
    fn complaints(&self) -> Vec<String> {
        let bad_output = |l: &str| {
            let l = l.to_ascii_lowercase();
            l.contains("checksum") || l.contains("invalid") || l.contains("error")
        };
        let bad_dsl = |l: &str| {
            let l = l.to_ascii_lowercase();
            l.contains("incorrect")
                || l.contains("invalid")
                || l.contains("error")
                || l.contains("warning")
                || (l.contains("checksum") && l.contains("should be"))
        };
        let mut out: Vec<String> = self
            .output
            .lines()
            .filter(|l| bad_output(l))
            .map(|l| format!("output: {l}"))
            .collect();
        out.extend(
            self.dsl
                .lines()
                .filter(|l| bad_dsl(l))
                .map(|l| format!("dsl: {l}")),
        );
        out
    }
}

/// Run iasl with `args` in `dir`: (exit 0, stdout + stderr).
fn iasl(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("iasl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run iasl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A compiler run is clean: exit 0 and iasl's summary counts nothing.
fn compiled_cleanly(ok: bool, output: &str) -> bool {
    ok && output
        .lines()
        .any(|l| l.contains("Compilation successful. 0 Errors, 0 Warnings, 0 Remarks"))
}

/// Compile `name.dsl` (in `dir`) with optimizations off; the `.aml` it gives.
fn recompile(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    let (ok, output) = iasl(dir, &["-oa", &format!("{name}.dsl")]);
    if !compiled_cleanly(ok, &output) {
        return Err(output);
    }
    std::fs::read(dir.join(format!("{name}.aml"))).map_err(|e| format!("{e}\n{output}"))
}

/// Offsets where `a` and `b` differ, leaving out the checksum (9) and the compiler ID and
/// revision (28-35), which iasl writes itself; a length difference counts as offset `len`.
fn differences(a: &[u8], b: &[u8]) -> Vec<usize> {
    let mut d: Vec<usize> = (0..a.len().min(b.len()))
        .filter(|&i| a[i] != b[i] && i != 9 && !(28..36).contains(&i))
        .collect();
    if a.len() != b.len() {
        d.push(a.len().min(b.len()));
    }
    d
}

/// The RSDP's fields as an iasl data-table source (the layout `iasl -T RSDP` writes).
fn rsdp_source(r: &[u8]) -> String {
    let u32_at = |o: usize| u32::from_le_bytes(r[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(r[o..o + 8].try_into().unwrap());
    format!(
        "[0008] Signature : \"{}\"\n\
         [0001] Checksum : {:02X}\n\
         [0006] Oem ID : \"{}\"\n\
         [0001] Revision : {:02X}\n\
         [0004] RSDT Address : {:08X}\n\
         [0004] Length : {:08X}\n\
         [0008] XSDT Address : {:016X}\n\
         [0001] Extended Checksum : {:02X}\n\
         [0003] Reserved : {:02X}{:02X}{:02X}\n",
        String::from_utf8_lossy(&r[0..8]),
        r[8],
        String::from_utf8_lossy(&r[9..15]),
        r[15],
        u32_at(16),
        u32_at(20),
        u64_at(24),
        r[32],
        r[35],
        r[34],
        r[33],
    )
}

/// Compile the RSDP's source with iasl: the 36 bytes iasl makes of it.
fn compile_rsdp(dir: &Path, name: &str, r: &[u8]) -> Result<Vec<u8>, String> {
    std::fs::write(dir.join(format!("{name}.asl")), rsdp_source(r)).unwrap();
    let (ok, output) = iasl(dir, &[&format!("{name}.asl")]);
    if !compiled_cleanly(ok, &output) {
        return Err(output);
    }
    std::fs::read(dir.join(format!("{name}.aml"))).map_err(|e| format!("{e}\n{output}"))
}

fn disassemble(dir: &Path, name: &str, bytes: &[u8]) -> Disassembly {
    let dat = dir.join(format!("{name}.dat"));
    std::fs::write(&dat, bytes).unwrap();
    let out = Command::new("iasl")
        .arg("-d")
        .arg(&dat)
        .current_dir(dir)
        .output()
        .expect("run iasl");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl"))).unwrap_or_default();
    Disassembly {
        ok: out.status.success(),
        output,
        dsl,
    }
}

/// Every table the crate emits, by a file name.
fn emitted() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for vcpus in [1u32, 4, 129] {
        let d = domu_tables(vcpus, 0xFC00_0000).unwrap();
        out.push((format!("domu{vcpus}_rsdp"), d.rsdp.1.clone()));
        for (_, t) in &d.tables {
            let sig = String::from_utf8_lossy(&t[..4]).to_lowercase();
            out.push((format!("domu{vcpus}_{sig}"), t.clone()));
        }
    }
    let mut s = DomuSpec::new(2, 0x10_0000);
    s.ioapics = vec![IoApic {
        id: 1,
        addr: 0xFEC0_0000,
        gsi_base: 0,
    }];
    s.overrides = vec![Override {
        bus: 0,
        source: 0,
        gsi: 2,
        flags: 0,
    }];
    let d = domu_tables_with(&s).unwrap();
    out.push((
        "domu_ioapic_apic".into(),
        d.table(b"APIC").unwrap().1.to_vec(),
    ));

    // Xen's dom0 layout on a QEMU-like host, with its XSDT and RSDP.
    let mut native = ContainerSpec::new(2, ApicIdScheme::Identity);
    native.entries = EntryKind::Lapic;
    native.flags = 1;
    native.revision = 3;
    native.ioapics = s.ioapics.clone();
    native.overrides = vec![Override {
        bus: 0,
        source: 0,
        gsi: 2,
        flags: 0,
    }];
    for irq in [5u8, 9, 10, 11] {
        native.overrides.push(Override {
            bus: 0,
            source: irq,
            gsi: u32::from(irq),
            flags: 0xD,
        });
    }
    native.nmis = vec![Nmi::Local {
        uid: None,
        flags: 0,
        lint: 1,
    }];
    let native_madt = build_madt(&native).unwrap();
    out.push(("native_apic".into(), native_madt.clone()));
    let host = MadtSummary::parse(&native_madt).unwrap();
    for vcpus in [1u32, 2, 4] {
        let madt = build_madt(&ContainerSpec::xen_pvh_dom0(&host, vcpus)).unwrap();
        out.push((format!("xen_dom0_{vcpus}_apic"), madt));
    }
    let xsdt = build_xsdt(&host.header, &[0x7F6_0F71, 0x7FFE_2000, 0x7FFE_2300]).unwrap();
    out.push(("xen_dom0_xsdt".into(), xsdt.clone()));
    out.push((
        "xen_dom0_xsdt_replaced".into(),
        replace_in_xsdt(&xsdt, 0x7F6_0F71, 0x7F7_0000).unwrap(),
    ));
    out.push((
        "xen_dom0_rsdp".into(),
        build_rsdp(0x7F6_0F3D, *b"BOCHS ").to_vec(),
    ));

    // A container with every NMI kind, x2APIC entries.
    let mut c = ContainerSpec::from_host_madt(&host, 3, ApicIdScheme::TimesTwo);
    c.entries = EntryKind::X2apic;
    c.nmis.push(Nmi::Source { flags: 0, gsi: 7 });
    c.nmis.push(Nmi::Local {
        uid: Some(2),
        flags: 0xD,
        lint: 0,
    });
    out.push(("container_x2apic_apic".into(), build_madt(&c).unwrap()));

    out.push((
        "mcfg".into(),
        mcfg::build(
            &host.header,
            &[McfgEntry {
                base: 0xB000_0000,
                segment: 0,
                start_bus: 0,
                end_bus: 0xFF,
            }],
        )
        .unwrap(),
    ));
    out
}

#[test]
fn iasl_accepts_every_emitted_table() {
    if let Err(e) = ensure_iasl() {
        panic!("{e}");
    }
    let dir = temp_dir("ok");
    let mut failures = Vec::new();
    let mut report = String::new();
    for (name, bytes) in emitted() {
        if name.ends_with("rsdp") {
            match compile_rsdp(&dir, &name, &bytes) {
                Ok(aml) if aml == bytes => report.push_str(&format!("== {name}: compiled, same\n")),
                Ok(aml) => failures.push(format!(
                    "{name}: iasl makes {aml:02x?} of its fields, the builder {bytes:02x?}"
                )),
                Err(out) => failures.push(format!("{name}: iasl refused its source:\n{out}")),
            }
            continue;
        }
        let d = disassemble(&dir, &name, &bytes);
        let complaints = d.complaints();
        report.push_str(&format!(
            "== {name}: exit ok {}\n{}\n",
            d.ok,
            d.output.trim()
        ));
        if !d.ok || !complaints.is_empty() || d.dsl.is_empty() {
            failures.push(format!(
                "{name}: exit ok {}, {} bytes of .dsl, complaints {complaints:#?}\n{}",
                d.ok,
                d.dsl.len(),
                d.output
            ));
            continue;
        }
        match recompile(&dir, &name) {
            Ok(aml) => {
                let diff = differences(&bytes, &aml);
                if !diff.is_empty() {
                    failures.push(format!(
                        "{name}: recompiled .dsl differs at offsets {diff:?}\nbuilt {bytes:02x?}\n\
                         iasl  {aml:02x?}"
                    ));
                }
            }
            Err(out) => failures.push(format!("{name}: .dsl does not recompile:\n{out}")),
        }
    }
    // Shown with `cargo test -- --nocapture`: what iasl said.
    println!("{report}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checks above would notice: a wrong checksum draws a complaint from `iasl -d`, and an
/// RSDP with a wrong checksum is not what iasl makes of its fields.
#[test]
fn iasl_notices_bad_checksums() {
    if let Err(e) = ensure_iasl() {
        panic!("{e}");
    }
    let dir = temp_dir("bad");
    let d = domu_tables(2, 0x1000).unwrap();
    for (name, sig) in [
        ("bad_apic", b"APIC"),
        ("bad_facp", b"FACP"),
        ("bad_dsdt", b"DSDT"),
    ] {
        let mut t = d.table(sig).unwrap().1.to_vec();
        t[9] = t[9].wrapping_add(1);
        let r = disassemble(&dir, name, &t);
        let complaints = r.complaints();
        assert!(
            complaints
                .iter()
                .any(|c| c.to_lowercase().contains("checksum")),
            "{name}: no checksum complaint in\n{}\n{}",
            r.output,
            r.dsl
        );
    }
    for at in [8usize, 32] {
        let mut r = d.rsdp.1.clone();
        r[at] = r[at].wrapping_add(1);
        let aml = compile_rsdp(&dir, &format!("bad_rsdp_{at}"), &r).unwrap();
        assert_ne!(aml, r);
        assert_eq!(aml, d.rsdp.1, "iasl fixes the checksum at {at}");
    }
    // A field iasl reads differently from what was meant shows in the round trip: an MADT
    // whose x2APIC entry claims 15 bytes is disassembled with complaints or recompiled
    // differently.
    let mut t = d.table(b"APIC").unwrap().1.to_vec();
    t[44 + 1] = 7;
    acpi_fixup::finish_table(&mut t).unwrap();
    let r = disassemble(&dir, "bad_entry", &t);
    let noticed = !r.ok
        || !r.complaints().is_empty()
        || recompile(&dir, "bad_entry").map_or(true, |aml| !differences(&t, &aml).is_empty());
    assert!(noticed, "{}\n{}", r.output, r.dsl);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sanity check of the header the emitted tables share.
#[test]
fn emitted_tables_have_sound_headers() {
    for (name, bytes) in emitted() {
        if name.ends_with("rsdp") {
            acpi_fixup::Rsdp::parse(&bytes).unwrap();
        } else {
            SdtHeader::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
