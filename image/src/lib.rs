//! Host side of the Rust PVH dom0: builds dom0, fetches Xen from Debian packages, boots
//! Xen + dom0 (or dom0 alone through QEMU's PVH loader) under QEMU with a named PCI topology,
//! and writes a run report that combines dom0's own JSON report with what Xen's log says.
//!
//! The `image` binary (`cargo image ...`) is a thin CLI over this library; the `tests` crate
//! calls [`run`] directly.
//!
//! Exit protocol with dom0: dom0 writes `v` to the isa-debug-exit port 0xf4 and QEMU exits with
//! `(v << 1) | 1`: 33 ready, 35 dom0 reported an error, 37 CPU exception or panic in dom0.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub mod bench;
pub mod bundle;
pub mod guest;
pub mod iso;
pub mod netbench;
pub mod qemu;
pub mod report;
pub mod setup;
pub mod util;
pub mod xenlog;
pub mod xenpkg;

pub use guest::{DomuKernel, DomuSpec, GuestFiles};
pub use qemu::{Iommu, Topology};
pub use report::{Outcome, Report};
pub use xenlog::{Analysis, Dom0Result, XenLog};

/// Which Xen to boot dom0 under.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
pub enum XenVersion {
    /// Xen 4.17 from Debian 12 (bookworm).
    #[default]
    #[serde(rename = "4.17")]
    #[value(name = "4.17")]
    V4_17,
    /// Xen 4.20 from Debian 13 (trixie).
    #[serde(rename = "4.20")]
    #[value(name = "4.20")]
    V4_20,
    /// No Xen: QEMU's own PVH loader boots dom0 directly.
    #[serde(rename = "none")]
    #[value(name = "none")]
    None,
}

impl XenVersion {
    /// `4.17`, `4.20` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            XenVersion::V4_17 => "4.17",
            XenVersion::V4_20 => "4.20",
            XenVersion::None => "none",
        }
    }

    /// `(major, minor)`, or `None` for [`XenVersion::None`].
    pub fn major_minor(self) -> Option<(u32, u32)> {
        match self {
            XenVersion::V4_17 => Some((4, 17)),
            XenVersion::V4_20 => Some((4, 20)),
            XenVersion::None => None,
        }
    }
}

/// The workspace root (the directory above this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// One boot.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub xen: XenVersion,
    /// vCPUs of the QEMU machine, and `dom0_max_vcpus` under Xen.
    pub smp: u32,
    /// QEMU RAM (MiB).
    pub mem_mib: u32,
    /// Xen's `dom0_mem` (MiB).
    pub dom0_mem_mib: u32,
    pub topology: Topology,
    pub iommu: Iommu,
    pub timeout: Duration,
    /// A boot module (the second multiboot module under Xen; `-initrd` without Xen).
    pub module: Option<PathBuf>,
    /// dom0's command line words. `on-ready=qemu-exit` is added unless an `on-ready=` is given.
    pub dom0_args: Vec<String>,
    /// Extra words for Xen's command line.
    pub xen_args: Vec<String>,
    /// Suffix of the run name: `<UTC yyyymmdd-hhmmss>-<xen>-smp<N>-<suffix>`.
    pub run_name: Option<String>,
    /// Do not stream the serial console or build output to the terminal.
    pub quiet: bool,
    /// DomUs running the Debian Linux guest ([`guest::fetch_linux`]): [`run`] packs them into
    /// `bundle.bin` in the run directory (one shared kernel and initramfs) and passes it as
    /// dom0's boot module. Not together with `module`.
    pub domus: Vec<DomuSpec>,
    /// With `domus`, keep `mem_mib` and `dom0_mem_mib` as given. Otherwise [`run`] raises
    /// `dom0_mem_mib` to at least 256 MiB (the bundle lands in dom0's memory) and `mem_mib` to
    /// at least `dom0_mem_mib` + the DomUs' memory + 256 MiB ([`guest::memory_for_domus`]).
    pub dom0_mem_fixed: bool,
    /// Errors the run provokes on purpose (substrings): the run passes only if every error in
    /// dom0's report contains one of them and each matches one (`--expect-error`). Any other
    /// error in the report fails the run.
    pub expect_errors: Vec<String>,
    /// Port forwards on the uplink NIC's user network (`--http`, the uplink scenarios).
    pub nic_forward: qemu::NicForward,
    /// SeaBIOS with `-kernel` (default), or OVMF booting a GRUB rescue ISO made for the run.
    pub firmware: iso::Firmware,
    /// Under Xen, ask Xen for its state after this long without console output
    /// (`qemu::Watch::silence`); `None`: [`SILENCE_DUMP_AFTER`] for runs with DomUs, never
    /// for the others.
    pub silence: Option<Duration>,
    /// Stop the run early when this says, from the console so far, that what the run waits
    /// for can no longer come (`qemu::Watch::give_up`); the run then fails with its reason.
    pub give_up: Option<fn(&str) -> Option<String>>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            xen: XenVersion::V4_17,
            smp: 1,
            mem_mib: 1024,
            dom0_mem_mib: 64,
            topology: Topology::Default,
            iommu: Iommu::Amd,
            timeout: Duration::from_secs(90),
            module: None,
            dom0_args: Vec::new(),
            xen_args: Vec::new(),
            run_name: None,
            quiet: false,
            domus: Vec::new(),
            dom0_mem_fixed: false,
            expect_errors: Vec::new(),
            nic_forward: qemu::NicForward::default(),
            firmware: iso::Firmware::Bios,
            silence: None,
            give_up: None,
        }
    }
}

/// Everything a boot needs, ready on this machine.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub xen: XenVersion,
    /// The Xen ELF (none for [`XenVersion::None`]).
    pub xen_elf: Option<PathBuf>,
    /// `<package> <version>` Xen came from.
    pub xen_package: Option<String>,
    pub dom0_elf: PathBuf,
    pub qemu: PathBuf,
}

#[derive(Debug, Clone)]
struct Host {
    qemu: PathBuf,
    dom0_elf: PathBuf,
}

static HOST: OnceLock<Result<Host, String>> = OnceLock::new();
static XEN_CACHE: Mutex<Vec<(XenVersion, Result<xenpkg::XenBinary, String>)>> =
    Mutex::new(Vec::new());

fn host(quiet: bool) -> Result<Host> {
    let host = HOST.get_or_init(|| {
        let work = || -> Result<Host> {
            setup::ensure_target(quiet)?;
            let qemu = setup::ensure_qemu(quiet)?;
            let dom0_elf = setup::build_dom0(&workspace_root(), quiet)?;
            Ok(Host { qemu, dom0_elf })
        };
        work().map_err(|e| format!("{e:#}"))
    });
    host.clone().map_err(anyhow::Error::msg)
}

/// Builds the hostile test guest (`testguest`, once per process) and returns its ELF.
pub fn testguest_elf(quiet: bool) -> Result<PathBuf> {
    static ELF: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ELF.get_or_init(|| {
        setup::ensure_target(quiet)
            .and_then(|()| setup::build_testguest(&workspace_root(), quiet))
            .map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

/// Fetches Xen `xen` (once per process; later calls reuse the result).
pub fn fetch_xen(xen: XenVersion, quiet: bool) -> Result<xenpkg::XenBinary> {
    let mut cache = XEN_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, r)) = cache.iter().find(|(v, _)| *v == xen) {
        return r.clone().map_err(anyhow::Error::msg);
    }
    let r = xenpkg::fetch(xen, &target_dir(), quiet).map_err(|e| format!("{e:#}"));
    cache.push((xen, r.clone()));
    r.map_err(anyhow::Error::msg)
}

/// Gets the machine ready for `xen`: the dom0 target, QEMU, Xen, and a dom0 build.
/// The work is done once per process and shared by every thread that asks.
pub fn prepare(xen: XenVersion) -> Result<Prepared> {
    prepare_with(xen, true)
}

/// [`prepare`], optionally showing progress and build output.
pub fn prepare_with(xen: XenVersion, quiet: bool) -> Result<Prepared> {
    let host = host(quiet)?;
    let (xen_elf, xen_package) = match xen {
        XenVersion::None => (None, None),
        v => {
            let bin = fetch_xen(v, quiet)?;
            (Some(bin.elf), Some(bin.package))
        }
    };
    Ok(Prepared {
        xen,
        xen_elf,
        xen_package,
        dom0_elf: host.dom0_elf,
        qemu: host.qemu,
    })
}

/// The result of one boot.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// What was written to `report.json`.
    pub report: Report,
    /// Everything read from the serial log.
    pub analysis: Analysis,
    /// The serial console, converted lossily to text.
    pub serial: String,
    pub run_dir: PathBuf,
    pub serial_log: PathBuf,
    pub report_json: PathBuf,
    pub qemu_cmdline: PathBuf,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.report.outcome == Outcome::Pass
    }

    /// dom0's report, if it printed one that parsed.
    pub fn dom0(&self) -> Option<&::report::BootReport> {
        self.report.dom0.as_ref()
    }

    /// The last `n` lines of the serial log.
    pub fn tail(&self, n: usize) -> String {
        util::tail_lines(&self.serial, n)
            .lines()
            .map(xenlog::clean_line)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// dom0's arguments with `on-ready=qemu-exit` added unless an `on-ready=` is given.
/// The NIC of the default topology dom0 drives as its uplink in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum UplinkNic {
    /// virtio-net at 0000:01:00.0 (`iommu_platform=on`).
    #[default]
    VirtioNet,
    /// e1000e at 0000:02:00.0.
    E1000e,
}

impl UplinkNic {
    /// The QEMU device.
    pub fn qemu_model(self) -> &'static str {
        match self {
            UplinkNic::VirtioNet => "virtio-net-pci",
            UplinkNic::E1000e => "e1000e",
        }
    }

    /// Its address in the default topology (the firmware numbers the root ports' buses in
    /// order: virtio-net behind the first, e1000e behind the second).
    pub fn sbdf(self) -> &'static str {
        match self {
            UplinkNic::VirtioNet => "0000:01:00.0",
            UplinkNic::E1000e => "0000:02:00.0",
        }
    }
}

/// dom0's words with `nic=` (for `nic`), `ip=dhcp` and `linger=60` added where not given.
pub fn uplink_args(args: &[String], nic: UplinkNic) -> Vec<String> {
    let mut out = args.to_vec();
    for (name, value) in [
        ("nic=", format!("nic={}", nic.sbdf())),
        ("ip=", "ip=dhcp".to_string()),
        ("linger=", "linger=60".to_string()),
    ] {
        if !args.iter().any(|a| a.starts_with(name)) {
            out.push(value);
        }
    }
    out
}

pub fn dom0_args_for_run(args: &[String]) -> Vec<String> {
    let mut out = args.to_vec();
    if !args.iter().any(|a| a.starts_with("on-ready=")) {
        out.push("on-ready=qemu-exit".to_string());
    }
    out
}

fn sanitize_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// How long a run with DomUs may stay silent before Xen is asked for its state.
pub const SILENCE_DUMP_AFTER: Duration = Duration::from_secs(60);

/// Run directories kept under `target/runs` (each DomU run holds its ~40 MB boot bundle; a
/// full `cargo test` makes about 130 of them).
pub const KEEP_RUNS: usize = 200;

/// Removes the oldest run directories beyond the newest `keep` (by name: they start with
/// their UTC time stamp), but none younger than an hour (a run still going on).
fn prune_runs(runs: &Path, keep: usize, now: SystemTime) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    let mut dirs: Vec<(String, PathBuf, SystemTime)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            // Only the tool's own names: `YYYYMMDD-HHMMSS-...`.
            let stamped = name.len() > 15
                && name.as_bytes()[8] == b'-'
                && name[..8]
                    .bytes()
                    .chain(name[9..15].bytes())
                    .all(|b| b.is_ascii_digit());
            let modified = e.metadata().and_then(|m| m.modified()).ok()?;
            stamped.then(|| (name, e.path(), modified))
        })
        .collect();
    if dirs.len() <= keep {
        return;
    }
    dirs.sort_by(|a, b| a.0.cmp(&b.0));
    let excess = dirs.len() - keep;
    for (_, path, modified) in dirs.into_iter().take(excess) {
        let age = now.duration_since(modified).unwrap_or_default();
        if age >= Duration::from_secs(3600) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Creates `target/runs/<name>` (with `-2`, `-3`, ... if it exists) and returns it and the name.
fn create_run_dir(cfg: &RunConfig) -> Result<(String, PathBuf)> {
    let mut base = format!(
        "{}-{}-smp{}",
        util::utc_stamp(SystemTime::now()),
        cfg.xen.as_str(),
        cfg.smp
    );
    if let Some(suffix) = cfg.run_name.as_deref().filter(|s| !s.is_empty()) {
        base.push('-');
        base.push_str(&sanitize_name(suffix));
    }
    let runs = target_dir().join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("creating {}", runs.display()))?;
    prune_runs(&runs, KEEP_RUNS, SystemTime::now());
    for n in 1.. {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let dir = runs.join(&name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((name, dir)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    unreachable!("the counter is unbounded")
}

/// Boots one configuration and writes `serial.log`, `report.json` and `qemu-cmdline.txt`
/// under `target/runs/<run>/`. An `Err` means the run could not be set up (build, fetch, bad
/// arguments); everything that happens once QEMU starts is in the outcome.
pub fn run(cfg: &RunConfig) -> Result<RunOutcome> {
    if !cfg.domus.is_empty() && cfg.module.is_some() {
        bail!("--domu packs its own boot bundle: it cannot be combined with --bundle or --module");
    }
    let (mem_mib, dom0_mem_mib) = guest::memory_for_domus(
        cfg.mem_mib,
        cfg.dom0_mem_mib,
        &cfg.domus,
        cfg.dom0_mem_fixed,
    );
    let cfg = &RunConfig {
        mem_mib,
        dom0_mem_mib,
        ..cfg.clone()
    };
    if cfg.smp == 0 || cfg.smp > 64 {
        bail!("--smp must be 1..=64, not {}", cfg.smp);
    }
    if cfg.mem_mib < 64 {
        bail!("--mem must be at least 64 MiB, not {}", cfg.mem_mib);
    }
    if cfg.xen != XenVersion::None && cfg.dom0_mem_mib + 32 > cfg.mem_mib {
        bail!(
            "--dom0-mem {} MiB does not fit in --mem {} MiB with room for Xen",
            cfg.dom0_mem_mib,
            cfg.mem_mib
        );
    }
    if let Some(m) = &cfg.module
        && !m.is_file()
    {
        bail!("module {} is not a file", m.display());
    }
    let prepared = prepare_with(cfg.xen, cfg.quiet)?;
    let bundle = if cfg.domus.is_empty() {
        None
    } else {
        let uses = |k: guest::DomuKernel| cfg.domus.iter().any(|d| d.kernel == k);
        let linux = match uses(guest::DomuKernel::Linux) || uses(guest::DomuKernel::Vmlinuz) {
            true => Some(guest::fetch_linux(&target_dir(), cfg.quiet)?),
            false => None,
        };
        let testguest = match uses(guest::DomuKernel::Testguest) {
            true => Some(testguest_elf(cfg.quiet)?),
            false => None,
        };
        Some(guest::domu_bundle(
            &cfg.domus,
            linux.as_ref(),
            testguest.as_deref(),
        )?)
    };
    let dom0_args = dom0_args_for_run(&cfg.dom0_args);
    let mut xen_args: Vec<String> = cfg.iommu.xen_args().iter().map(|s| s.to_string()).collect();
    xen_args.extend(cfg.xen_args.iter().cloned());
    let xen_cmdline = qemu::xen_cmdline(cfg.dom0_mem_mib, cfg.smp, &xen_args);
    let boot_args = |module: Option<PathBuf>| {
        let files = qemu::BootFiles {
            xen: prepared.xen_elf.clone(),
            dom0: prepared.dom0_elf.clone(),
            module,
        };
        qemu::boot_args(&files, &xen_cmdline, &dom0_args)
    };

    let (name, run_dir, module, boot) = if let Some(bytes) = bundle {
        // The bundle goes into the run directory, so that directory comes first.
        let (name, run_dir) = create_run_dir(cfg)?;
        let path = std::path::absolute(run_dir.join("bundle.bin"))?;
        let boot = std::fs::write(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))
            .and_then(|()| boot_args(Some(path.clone())));
        match boot {
            Ok(boot) => (name, run_dir, Some(path), boot),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&run_dir);
                return Err(e);
            }
        }
    } else {
        let module = cfg
            .module
            .as_ref()
            .map(|m| std::path::absolute(m).unwrap_or_else(|_| m.clone()));
        // Check the arguments before a run directory is made for them.
        let boot = boot_args(module.clone())?;
        let (name, run_dir) = create_run_dir(cfg)?;
        (name, run_dir, module, boot)
    };
    let boot = match (cfg.firmware, &prepared.xen_elf) {
        (iso::Firmware::Bios, _) => boot,
        (_, None) => {
            let _ = std::fs::remove_dir_all(&run_dir);
            bail!(
                "--firmware uefi/bios-iso boot Xen from a GRUB ISO: they need --xen 4.17 or 4.20"
            );
        }
        (fw, Some(xen)) => {
            // The same Xen and dom0 command lines, from GRUB's menu instead of -append.
            let image = std::path::absolute(run_dir.join("boot.iso"))?;
            if !cfg.quiet {
                eprintln!("image: making {} (grub-mkrescue)", image.display());
            }
            iso::make_iso(
                &image,
                xen,
                &prepared.dom0_elf,
                module.as_deref(),
                &xen_cmdline,
                &dom0_args,
            )?;
            if fw == iso::Firmware::Uefi {
                let (code, vars) = iso::ovmf(&run_dir)?;
                iso::iso_args(Some((&code, &vars)), &image)?
            } else {
                iso::iso_args(None, &image)?
            }
        }
    };
    let mut args = qemu::base_args(cfg.smp, cfg.mem_mib, cfg.iommu);
    // QEMU's own view of a machine gone silent (`Watch::qmp`).
    let qmp = (cfg.xen != XenVersion::None).then(qemu::qmp_path);
    if let Some(p) = &qmp {
        let _ = std::fs::remove_file(p);
        args.extend(qemu::qmp_args(p));
    }
    args.extend(cfg.topology.numa_args(cfg.mem_mib));
    args.extend(cfg.topology.qemu_args(&run_dir, &cfg.nic_forward)?);
    args.extend(boot);
    let qemu_cmdline = run_dir.join("qemu-cmdline.txt");
    let line = util::shell_line(&prepared.qemu.to_string_lossy(), &args);
    std::fs::write(&qemu_cmdline, format!("{line}\n"))?;
    let dom0_elf_bytes = std::fs::metadata(&prepared.dom0_elf)?.len();
    if !cfg.quiet {
        eprintln!(
            "image: run {name}: Xen {}, smp {}, {} MiB (dom0 {} MiB), topology {}, dom0 {} bytes",
            cfg.xen.as_str(),
            cfg.smp,
            cfg.mem_mib,
            cfg.dom0_mem_mib,
            cfg.topology.name(),
            dom0_elf_bytes
        );
        for d in &cfg.domus {
            eprintln!(
                "image:   DomU {}: {} MiB, {} vCPU(s), cmdline {:?}",
                d.name,
                d.memory_mib,
                d.vcpus,
                d.cmdline()
            );
        }
    }

    // serial.log grows as the run goes (`tail -f` it); it is rewritten whole at the end.
    let serial_log = run_dir.join("serial.log");
    let watch = qemu::Watch {
        timeout: cfg.timeout,
        stream: !cfg.quiet,
        live_log: Some(serial_log.clone()),
        xen_console: cfg.xen != XenVersion::None,
        // DomU runs last minutes; a minute without a console byte is worth Xen's own view.
        silence: cfg
            .silence
            .or((!cfg.domus.is_empty()).then_some(SILENCE_DUMP_AFTER)),
        qmp: qmp.clone(),
        give_up: cfg.give_up,
    };
    let finished = qemu::run_qemu(&prepared.qemu, &args, &watch);
    if let Some(p) = &qmp {
        let _ = std::fs::remove_file(p);
    }
    let finished = finished?;
    std::fs::write(&serial_log, &finished.serial)?;
    if !finished.stderr.trim().is_empty() {
        std::fs::write(run_dir.join("qemu-stderr.txt"), &finished.stderr)?;
    }
    let serial = String::from_utf8_lossy(&finished.serial).into_owned();
    let analysis = xenlog::analyse(&serial);
    let (outcome, mut reason) = report::verdict(&report::Evidence {
        under_xen: cfg.xen != XenVersion::None,
        exit_code: finished.exit_code,
        timed_out: finished.timed_out,
        timeout_secs: cfg.timeout.as_secs(),
        stopped_after: finished.stopped_after.as_deref(),
        gave_up: finished.gave_up.as_deref(),
        qemu_stderr: &finished.stderr,
        analysis: &analysis,
        serial: &serial,
        expect_errors: &cfg.expect_errors,
    });
    if !finished.silences.is_empty() {
        let stalls = finished
            .silences
            .iter()
            .filter(|s| s.scheduler_stall)
            .count();
        reason.push_str(&format!(
            "; the console was silent {} time(s) for {} s and Xen was asked for its state \
             ({stalls} showed its scheduler stalled with a vCPU queued, which the key press \
             moved on); see serial.log",
            finished.silences.len(),
            watch.silence.unwrap_or_default().as_secs()
        ));
        if let Some(v) = finished.silences.iter().find_map(|s| s.qemu_lost_wakeup) {
            reason.push_str(&format!(
                "; QEMU's own view: its CPU halted with interrupts enabled and vector {v} \
                 pending in its local APIC, never delivered (the emulator's lost wakeup, not a \
                 guest or Xen hang; see README, Troubleshooting)"
            ));
        }
    }
    let report = Report {
        run: name,
        xen: cfg.xen,
        xen_package: prepared.xen_package.clone(),
        smp: cfg.smp,
        mem_mib: cfg.mem_mib,
        dom0_mem_mib: cfg.dom0_mem_mib,
        topology: cfg.topology,
        dom0_args,
        xen_args: cfg.xen_args.clone(),
        module: module.map(|m| m.display().to_string()),
        qemu_exit_code: finished.exit_code,
        outcome,
        reason,
        wall_ms: u64::try_from(finished.wall.as_millis()).unwrap_or(u64::MAX),
        dom0_elf_bytes,
        dom0_result: analysis.dom0_result.clone(),
        dom0: analysis.dom0_report.clone(),
        xen_log: analysis.xen.clone(),
        serial_log: serial_log.display().to_string(),
        silences: finished.silences.clone(),
    };
    let report_json = run_dir.join("report.json");
    std::fs::write(&report_json, serde_json::to_string_pretty(&report)? + "\n")?;
    Ok(RunOutcome {
        report,
        analysis,
        serial,
        run_dir,
        serial_log,
        report_json,
        qemu_cmdline,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_ready_is_added_once() {
        assert_eq!(dom0_args_for_run(&[]), ["on-ready=qemu-exit"]);
        let given = vec!["x=1".to_string(), "on-ready=halt".to_string()];
        assert_eq!(dom0_args_for_run(&given), given);
    }

    #[test]
    fn domus_exclude_a_module() {
        let cfg = RunConfig {
            domus: vec![DomuSpec::new("demo")],
            module: Some("m.bin".into()),
            ..RunConfig::default()
        };
        let e = run(&cfg).unwrap_err().to_string();
        assert!(e.contains("--domu packs its own boot bundle"), "{e}");
    }

    #[test]
    fn old_runs_are_pruned_beyond_the_newest() {
        let dir = std::env::temp_dir().join(format!("image-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for i in 0..5 {
            std::fs::create_dir_all(dir.join(format!("20261205-10000{i}-4.20-smp1"))).unwrap();
        }
        std::fs::create_dir_all(dir.join("mine")).unwrap();
        std::fs::write(dir.join("20261205-090000-file"), b"x").unwrap();
        // Within the hour nothing goes.
        prune_runs(&dir, 2, SystemTime::now());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 7);
        // Later, the three oldest stamped directories go; other names and files stay.
        prune_runs(&dir, 2, SystemTime::now() + Duration::from_secs(7200));
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "20261205-090000-file",
                "20261205-100003-4.20-smp1",
                "20261205-100004-4.20-smp1",
                "mine"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn names_are_tidy() {
        assert_eq!(sanitize_name("a b/c_d.e"), "a-b-c_d.e");
    }

    #[test]
    fn xen_versions_serialise_as_numbers() {
        assert_eq!(
            serde_json::to_string(&XenVersion::V4_20).unwrap(),
            "\"4.20\""
        );
        assert_eq!(
            serde_json::to_string(&XenVersion::None).unwrap(),
            "\"none\""
        );
        assert_eq!(
            serde_json::to_string(&Topology::Minimal).unwrap(),
            "\"minimal\""
        );
    }
}
