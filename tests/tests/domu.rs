//! DomU scenarios: dom0 builds unmodified Debian Linux kernels (from Debian's
//! `linux-image-amd64`, fetched by `image`) with a busybox initramfs as PVH DomUs from the boot
//! bundle, serves their xenstore and consoles, and notices when they stop. Each asserts on
//! dom0's report, on the guests' own console lines and xenstore writes, and on Xen's log.

use image::XenVersion;
use tests::{
    assert_domu_ran, assert_no_domu_leaks, assert_pass, assert_xen_log_clean, boot, check, domu,
    domu_config, serial,
};

/// (a) One Debian DomU boots to init, reads and writes its xenstore tree, and powers off.
fn one_domu(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let out = boot(&domu_config(
        xen,
        1,
        &format!("test-domu-xen{major}.{minor}"),
        &["demo"],
        &[],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_domu_ran(&out, "demo", "poweroff");
    assert_no_domu_leaks(&out);
    let d = domu(&out, "demo");
    // The domctl interface dom0 found is the one this Xen speaks.
    let want = if minor >= 19 { 0x17 } else { 0x15 };
    let version = tests::dom0(&out)
        .toolstack
        .as_ref()
        .map(|t| t.domctl_version);
    check!(
        out,
        version == Some(want),
        "domctl interface {version:x?} on Xen {major}.{minor}, expected {want:#x}"
    );
    for (k, v) in [
        ("first_console_ns", d.first_console_ns),
        ("init_ns", d.init_ns),
        ("stopped_at_ns", d.stopped_at_ns),
    ] {
        check!(out, v.is_some(), "DomU demo: no {k}: {d:?}");
    }
    // The kernel and initrd went in by grant copies, whole pages (dom0 stages misaligned
    // payloads), none refused: the DomU booting is the proof the bytes are right.
    check!(
        out,
        d.grant_copies > 1000 && d.grant_copies <= d.pages_copied,
        "DomU demo: {} grant copies for {} pages written",
        d.grant_copies,
        d.pages_copied
    );
    let fell_back = serial(&out)
        .lines()
        .find(|l| l.contains("grant copies into domain"))
        .map(str::to_string);
    check!(
        out,
        fell_back.is_none(),
        "dom0 gave up grant copies: {fell_back:?}"
    );
    // No tsc_mode in its description: xl's `default`, which on this CPU without an invariant
    // TSC means Xen traps its rdtsc (as it does dom0's); dom0 says so in the report (Xen's
    // answer to XEN_DOMCTL_gettscinfo) and in its log, with the way out.
    check!(
        out,
        d.tsc_mode == "default" && d.tsc_emulated,
        "DomU demo: tsc_mode {:?}, emulated {}",
        d.tsc_mode,
        d.tsc_emulated
    );
    check!(
        out,
        serial(&out).contains(
            "domu demo: Xen traps its rdtsc (tsc_mode=default, and this host's TSC is not invariant)"
        ),
        "dom0 did not say that Xen traps the DomU's rdtsc"
    );
}

#[test]
fn debian_domu_under_xen_4_17() {
    one_domu(XenVersion::V4_17);
}

#[test]
fn debian_domu_under_xen_4_20() {
    one_domu(XenVersion::V4_20);
}

/// (b) Two DomUs at once, one with two vCPUs (its MADT comes from `acpi-fixup`): each boots,
/// each console keeps its own prefix, both power off.
#[test]
fn two_domus_at_once() {
    let out = boot(&domu_config(
        XenVersion::V4_20,
        2,
        "test-domu-two",
        &["alpha", "beta:vcpus=2"],
        &[],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 20);
    let a = assert_domu_ran(&out, "alpha", "poweroff");
    let b = assert_domu_ran(&out, "beta", "poweroff");
    check!(out, a != b, "both DomUs got domain id {a}");
    let beta = domu(&out, "beta");
    let up = beta
        .console
        .iter()
        .find(|l| l.starts_with("DOMU-INIT: up"))
        .cloned()
        .unwrap_or_default();
    check!(
        out,
        up.ends_with("vcpus=2"),
        "beta should run with 2 vCPUs online, its init says {up:?}"
    );
    assert_no_domu_leaks(&out);
}

/// (c) A DomU whose init exits (kernel panic, SHUTDOWN_crash) is noticed and removed while
/// another keeps running; that one is then asked to power off through xenstore
/// `control/shutdown` (`domu-stop=`), which Linux's xenbus handles.
#[test]
fn crashing_domu_is_removed_and_the_other_keeps_running() {
    let out = boot(&domu_config(
        XenVersion::V4_17,
        2,
        "test-domu-crash",
        &[
            // Both on dom0's switch with netfront connected when one crashes (issue 12):
            // the crashed one's rings must be unmapped and its channels closed, or Xen
            // cannot free it (`assert_no_domu_leaks`).
            "crashy:vif,cmdline=domu-ip=10.0.0.3/24 domu-test=crash",
            "steady:vif,cmdline=domu-ip=10.0.0.4/24 domu-test=stay",
        ],
        &["domu-stop=90"],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, 17);
    assert_domu_ran(&out, "crashy", "crash");
    assert_domu_ran(&out, "steady", "poweroff");
    let c = domu(&out, "crashy");
    let s = domu(&out, "steady");
    let (c_stop, s_stop) = (
        c.stopped_at_ns.unwrap_or(u64::MAX),
        s.stopped_at_ns.unwrap_or(0),
    );
    check!(
        out,
        c_stop < s_stop,
        "the crashed DomU was removed at {c_stop} ns, after the other stopped at {s_stop} ns"
    );
    let log = serial(&out);
    for want in [
        "[crashy] DOMU-INIT: crashing",
        "[steady] DOMU-INIT: staying",
        "domu crashy: domain",
        "domu steady: asked to power off (control/shutdown)",
    ] {
        check!(out, log.contains(want), "the serial log lacks {want:?}");
    }
    check!(
        out,
        log.contains("Kernel panic"),
        "crashy's console should show the kernel panic that made it crash"
    );
    // Each vif had connected, and both were closed with their DomU.
    for d in [c, s] {
        let v = d.vifs.first();
        check!(
            out,
            v.is_some_and(|v| v.connects == 1 && v.error.is_none()),
            "DomU {}: vifs {:?}",
            d.name,
            d.vifs
        );
    }
    assert_no_domu_leaks(&out);
}

/// (d) A DomU that reboots is rebuilt from the bundle and boots again (issue 14): xl's default
/// policy, restart on reboot at most `MAX_RESTARTS` times in a row, then leave it destroyed (a
/// boot loop). Its init reboots every time, so it boots four times, each a new domain that
/// runs init, and dom0 stops after the third restart; Xen frees all four.
fn rebooting_domu(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let out = boot(&domu_config(
        xen,
        1,
        &format!("test-domu-reboot-{major}.{minor}"),
        &["bouncy:cmdline=domu-test=reboot"],
        &[],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    let max = u64::from(toolstack::domain::MAX_RESTARTS);
    let lives: Vec<&report::DomuSummary> = tests::dom0(&out)
        .toolstack
        .as_ref()
        .map(|t| t.domus.iter().filter(|d| d.name == "bouncy").collect())
        .unwrap_or_default();
    check!(
        out,
        lives.len() as u64 == max + 1,
        "bouncy ran {} times, expected {}: {lives:?}",
        lives.len(),
        max + 1
    );
    let mut domids = Vec::new();
    for (k, d) in lives.iter().enumerate() {
        check!(
            out,
            d.restarts == k as u64 && d.state.name() == "reboot",
            "life {k}: restarts {}, state {}",
            d.restarts,
            d.state
        );
        check!(
            out,
            d.console.iter().any(|l| l.starts_with("DOMU-INIT: up 6."))
                && d.console.iter().any(|l| l == "DOMU-INIT: rebooting"),
            "life {k} did not boot to init and reboot: {:?}",
            d.console
        );
        check!(out, !domids.contains(&d.domid), "domid {} reused", d.domid);
        domids.push(d.domid);
    }
    let log = serial(&out);
    for k in 1..=max {
        let want = format!("domu bouncy: restarting (restart {k})");
        check!(out, log.contains(&want), "the serial log lacks {want:?}");
    }
    let over = format!("domu bouncy: restarting (restart {})", max + 1);
    check!(out, !log.contains(&over), "dom0 restarted past the limit");
    // Xen's own account: every one of the four domains is gone (getdomaininfo).
    assert_no_domu_leaks(&out);
}

#[test]
fn rebooting_domu_is_rebuilt_and_boots_again_under_xen_4_17() {
    rebooting_domu(XenVersion::V4_17);
}

#[test]
fn rebooting_domu_is_rebuilt_and_boots_again_under_xen_4_20() {
    rebooting_domu(XenVersion::V4_20);
}

/// (e) Issue 14: the Debian kernel exactly as its package ships it (`/boot/vmlinuz-*`, a
/// bzImage with an XZ payload, not unwrapped on the host) boots to init: dom0 decompresses the
/// payload straight into the DomU's memory and loads the ELF inside where it lies.
fn bzimage_domu(xen: XenVersion) {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let out = boot(&domu_config(
        xen,
        1,
        &format!("test-domu-bzimage-{major}.{minor}"),
        &["plain:kernel=vmlinuz"],
        &[],
    ));
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_domu_ran(&out, "plain", "poweroff");
    assert_no_domu_leaks(&out);
    let d = domu(&out, "plain");
    let step = |name: &str| {
        d.build_steps
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, ns)| *ns)
    };
    check!(
        out,
        step("decompress") > 0 && step("kernel") > 0,
        "build steps {:?}",
        d.build_steps
    );
    let m = tests::dom0(&out)
        .modules
        .first()
        .cloned()
        .unwrap_or_default();
    let described = matches!(&m.status, report::ModuleStatus::Used(what)
        if what.contains("kernel vmlinuz: bzImage") && what.contains("xz payload"));
    check!(out, described, "bundle status {:?}", m.status);
}

#[test]
fn debian_bzimage_boots_under_xen_4_17() {
    bzimage_domu(XenVersion::V4_17);
}

#[test]
fn debian_bzimage_boots_under_xen_4_20() {
    bzimage_domu(XenVersion::V4_20);
}

/// Boot `xen` with a bundle of `domains` (two 128 MiB DomUs at most) and `files`, written to
/// `target/test-data/bundle-NAME.bin`; `expect` are the errors the run provokes on purpose.
fn boot_bundle(
    xen: XenVersion,
    name: &str,
    domains: &[image::bundle::DomainSpecInput],
    files: &[(toolstack::bundle::FileKind, String, Vec<u8>)],
    expect: &[&str],
) -> image::RunOutcome {
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let bytes = image::bundle::pack(domains, files).expect("pack");
    let dir = image::target_dir().join("test-data");
    std::fs::create_dir_all(&dir).expect("test-data dir");
    let path = dir.join(format!("bundle-{name}.bin"));
    std::fs::write(&path, &bytes).expect("write bundle");
    let mut cfg = tests::config(xen, 1, &format!("test-domu-{name}-{major}.{minor}"));
    cfg.timeout = tests::DOMU_TIMEOUT;
    cfg.module = Some(path);
    cfg.dom0_mem_mib = 256;
    cfg.mem_mib = 256 + 2 * 128 + 256;
    cfg.expect_errors = expect.iter().map(|e| e.to_string()).collect();
    boot(&cfg)
}

/// (f) A bzImage whose payload is corrupt is refused with the decoder's error (the format and
/// the offset), the half-built domain is destroyed, and dom0 serves the other DomU as usual.
fn corrupt_bzimage(xen: XenVersion) {
    use toolstack::bundle::FileKind;
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let g = image::guest::fetch_linux(&image::target_dir(), true).expect("the Debian guest");
    let mut broken = std::fs::read(&g.vmlinuz).expect("the cached bzImage");
    let p = toolstack::kernel::locate_payload(&broken).expect("its payload");
    // A byte in the middle of the XZ stream: LZMA2 data the decoder or the CRC32 rejects.
    broken[p.offset + p.len / 2] ^= 0x5a;
    let domain = |spec: &str| -> image::bundle::DomainSpecInput { spec.parse().expect(spec) };
    let domains = [
        domain(
            "name=broken,memory=128,vcpus=1,kernel=broken,initrd=initramfs,device=console,cmdline=console=hvc0",
        ),
        domain(
            "name=demo,memory=128,vcpus=1,kernel=linux,initrd=initramfs,device=console,cmdline=console=hvc0 loglevel=4",
        ),
    ];
    let read = |p: &std::path::Path| std::fs::read(p).expect("guest file");
    let files = [
        (FileKind::Kernel, "broken".to_string(), broken),
        (FileKind::Kernel, "linux".to_string(), read(&g.vmlinux)),
        (
            FileKind::Initrd,
            "initramfs".to_string(),
            read(&g.initramfs),
        ),
    ];
    let out = boot_bundle(
        xen,
        "bzimage-corrupt",
        &domains,
        &files,
        &["domu broken: build failed"],
    );
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    assert_domu_ran(&out, "demo", "poweroff");
    let b = domu(&out, "broken");
    check!(
        out,
        b.state.name() == "build failed"
            && b.errors
                .iter()
                .any(|e| e.contains("decompress kernel") && e.contains("xz")),
        "broken: {} {:?}",
        b.state,
        b.errors
    );
    check!(
        out,
        b.errors.iter().any(|e| e.contains("destroyed again")),
        "the half-built domain was not destroyed: {:?}",
        b.errors
    );
    assert_no_domu_leaks(&out);
}

/// Debian's bzImage with its payload recompressed by the host's `tool` as Linux compresses
/// that format (`gzip -9`; `zstd -22 --ultra` followed by the 4-byte size, `cmd_zstd22`), the
/// setup header's payload length patched. Cached in `target/test-data` (zstd -22 takes ~12 s).
fn recompressed_bzimage(vmlinuz: &std::path::Path, c: toolstack::kernel::Compression) -> Vec<u8> {
    use toolstack::kernel::{Compression, decompress};
    let dir = image::target_dir().join("test-data");
    std::fs::create_dir_all(&dir).expect("test-data dir");
    let bz = std::fs::read(vmlinuz).expect("the cached bzImage");
    let cached = dir.join(format!("vmlinuz-{}-{}", c.as_str(), bz.len()));
    if let Ok(b) = std::fs::read(&cached) {
        return b;
    }
    let p = toolstack::kernel::locate_payload(&bz).expect("its payload");
    let payload = &bz[p.offset..p.offset + p.len];
    let mut raw = vec![0u8; decompress::output_room(Compression::Xz, payload).expect("room")];
    let n = decompress::decompress_into(Compression::Xz, payload, &mut raw).expect("XZ payload");
    raw.truncate(n);
    let args: &[&str] = match c {
        Compression::Gzip => &["-n", "-9", "-c"],
        _ => &["-22", "--ultra", "-T0", "-q", "-c"],
    };
    let tool = if c == Compression::Gzip {
        "gzip"
    } else {
        "zstd"
    };
    let mut child = std::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e} (apt-get install {tool})"));
    let mut stdin = child.stdin.take().expect("stdin");
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&raw).expect("feed the compressor");
        n
    });
    let out = child.wait_with_output().expect("compressor output");
    let n = feeder.join().expect("feeder");
    assert!(out.status.success(), "{tool} failed");
    let mut new = out.stdout;
    if c != Compression::Gzip {
        new.extend_from_slice(&(n as u32).to_le_bytes());
    }
    let mut b = bz[..p.offset].to_vec();
    b.extend_from_slice(&new);
    b.extend_from_slice(&bz[p.offset + p.len..]);
    let at = toolstack::kernel::bzimage::PAYLOAD_LENGTH;
    b[at..at + 4].copy_from_slice(&(new.len() as u32).to_le_bytes());
    std::fs::write(&cached, &b).expect("cache the bzImage");
    b
}

/// (g) Issue 14: the same Debian kernel as a gzip and as a zstd bzImage (its payload
/// recompressed as Linux does): both DomUs boot to init through dom0's own decoders, and dom0's
/// heap peak stays far below the kernel's size (each decoder writes into the DomU's memory; a
/// zstd decoder with its window on the heap needed 64 MiB here).
fn recompressed_bzimages(xen: XenVersion) {
    use toolstack::bundle::FileKind;
    use toolstack::kernel::Compression;
    let (major, minor) = xen.major_minor().expect("a Xen version");
    let g = image::guest::fetch_linux(&image::target_dir(), true).expect("the Debian guest");
    let domain = |spec: &str| -> image::bundle::DomainSpecInput { spec.parse().expect(spec) };
    let domains = [
        domain(
            "name=gz,memory=128,vcpus=1,kernel=gz,initrd=initramfs,device=console,cmdline=console=hvc0",
        ),
        domain(
            "name=zst,memory=128,vcpus=1,kernel=zst,initrd=initramfs,device=console,cmdline=console=hvc0",
        ),
    ];
    let files = [
        (
            FileKind::Kernel,
            "gz".to_string(),
            recompressed_bzimage(&g.vmlinuz, Compression::Gzip),
        ),
        (
            FileKind::Kernel,
            "zst".to_string(),
            recompressed_bzimage(&g.vmlinuz, Compression::Zstd),
        ),
        (
            FileKind::Initrd,
            "initramfs".to_string(),
            std::fs::read(&g.initramfs).expect("initramfs"),
        ),
    ];
    let out = boot_bundle(xen, "bzimage-gzip-zstd", &domains, &files, &[]);
    assert_pass(&out);
    assert_xen_log_clean(&out, major, minor);
    for (name, format) in [("gz", "gzip"), ("zst", "zstd")] {
        assert_domu_ran(&out, name, "poweroff");
        let d = domu(&out, name);
        let decompress = d
            .build_steps
            .iter()
            .find(|(n, _)| n == "decompress")
            .map_or(0, |(_, ns)| *ns);
        check!(out, decompress > 0, "{name}: steps {:?}", d.build_steps);
        println!("{name}: decompress {} ms", decompress / 1_000_000);
        let m = tests::dom0(&out)
            .modules
            .first()
            .cloned()
            .unwrap_or_default();
        let described = matches!(&m.status, report::ModuleStatus::Used(what)
            if what.contains(&format!("kernel {name}: bzImage"))
                && what.contains(&format!("{format} payload")));
        check!(out, described, "bundle status {:?}", m.status);
    }
    // Debian's kernel is 65.9 MB uncompressed: the decoders' state is kilobytes.
    let peak = tests::dom0(&out).heap.peak;
    check!(out, peak < 4 << 20, "dom0 heap peak {peak} B");
    assert_no_domu_leaks(&out);
}

#[test]
fn gzip_and_zstd_bzimages_boot_under_xen_4_20() {
    recompressed_bzimages(XenVersion::V4_20);
}

#[test]
fn corrupt_bzimage_is_refused_and_the_other_domu_runs_under_xen_4_17() {
    corrupt_bzimage(XenVersion::V4_17);
}

#[test]
fn corrupt_bzimage_is_refused_and_the_other_domu_runs_under_xen_4_20() {
    corrupt_bzimage(XenVersion::V4_20);
}
