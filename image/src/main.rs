//! `cargo image ...`: build dom0, fetch Xen, boot Xen + dom0 under QEMU, benchmark, and print a
//! GRUB entry for real hardware.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand};
use image::bench::{BenchConfig, bench};
use image::{Iommu, Outcome, RunConfig, Topology, XenVersion};

#[derive(Debug, Parser)]
#[command(
    name = "cargo image",
    bin_name = "cargo image",
    about = "Build the Rust PVH dom0 and boot it under Xen (or alone) in QEMU"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Set up the machine, build dom0 and boot it; writes target/runs/<run>/.
    Run(RunArgs),
    /// Build dom0 only and print its path and size.
    Build,
    /// Pack a boot bundle: the one boot module dom0 reads to build DomUs.
    ///
    /// Example:
    ///   cargo image bundle --domain name=demo,memory=64,vcpus=1,kernel=vmlinuz,device=console,cmdline="console=hvc0"
    ///     --file kernel:vmlinuz=/boot/vmlinuz -o target/bundle.bin
    ///
    /// Then boot it: cargo image run --bundle target/bundle.bin
    #[command(verbatim_doc_comment)]
    Bundle(BundleArgs),
    /// Download the DomU guest (Debian's Linux kernel and busybox) into target/guest/ and make
    /// the kernel ELF and the initramfs `--domu` boots.
    FetchLinux,
    /// Download Xen from Debian's packages into target/xen/<ver>/.
    FetchXen {
        /// Xen version(s) to fetch.
        #[arg(long, value_enum, default_values_t = [XenVersion::V4_17])]
        xen: Vec<XenVersion>,
    },
    /// Measure dom0 size, boot-to-ready time and the smallest dom0_mem that reaches ready.
    Bench {
        /// Boots to measure.
        #[arg(long, default_value_t = 5)]
        runs: u32,
        #[arg(long, value_enum, default_value_t = XenVersion::V4_17)]
        xen: XenVersion,
        /// Per-boot timeout in seconds.
        #[arg(long, default_value_t = 90)]
        timeout: u64,
    },
    /// Measure dom0's network in one boot: two Debian DomUs on its switch, DomU->dom0 and
    /// DomU->DomU TCP throughput, ping round trips, grant copies per hypercall.
    BenchNet {
        #[arg(long, value_enum, default_value_t = XenVersion::V4_20)]
        xen: XenVersion,
        /// MiB per transfer.
        #[arg(long, default_value_t = 64)]
        mib: u64,
        /// Timeout for each boot, in seconds.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
        /// Only the baseline: the same kernel under QEMU without Xen, virtio-net.
        #[arg(long)]
        baseline_only: bool,
        /// CPUs of the emulated machine (Xen's pCPUs, and the baseline guest's vCPUs). 2, the
        /// smallest machine on which the sender, the receiver and dom0 need not take turns on
        /// one CPU (the baseline's receiver is QEMU itself, on the host); `--smp 1` measures
        /// the three time-sharing one CPU, as the network scenarios run.
        #[arg(long, default_value_t = 2)]
        smp: u32,
        /// The NIC for the DomU -> host boot (through dom0's switch and uplink).
        #[arg(long, value_enum, default_value_t = image::UplinkNic::VirtioNet)]
        uplink: image::UplinkNic,
        /// Skip the DomU -> host boot.
        #[arg(long)]
        no_uplink: bool,
        /// The DomUs' tsc_mode (xl.cfg's): QEMU's software CPU has no invariant TSC, so under
        /// `default` Xen traps every rdtsc of a DomU; `native` is what a host with an
        /// invariant TSC gives them under `default`.
        #[arg(long, default_value = "native", value_parser = parse_tsc_mode)]
        tsc_mode: toolstack::bundle::TscMode,
        /// Appended to every Linux guest's kernel command line (the DomUs' and the
        /// baseline's), e.g. `sysctl.net.ipv4.tcp_tso_rtt_log=0` (Linux reads `sysctl.*`
        /// parameters at boot): to see what the guests' own TCP settings do to the result.
        #[arg(long, default_value = "")]
        guest_cmdline: String,
        /// Xen's scheduler in both Xen boots. credit1 by default: under QEMU's multi-threaded
        /// TCG a busy host can deschedule an emulated CPU holding credit2's one runqueue lock
        /// while the other spins on it (see docs/NETBENCH.md).
        #[arg(long, value_enum, default_value_t = image::netbench::XenSched::Credit)]
        sched: image::netbench::XenSched,
        /// An extra word for Xen's command line in both Xen boots (repeatable, after the
        /// scheduler's), e.g. `bootscrub=idle`.
        #[arg(long = "xen-arg", allow_hyphen_values = true)]
        xen_args: Vec<String>,
        /// Whole measurements back to back; prints each and the medians (this host's load
        /// moves the baseline between boots, so compare medians of several runs).
        #[arg(long, default_value_t = 1)]
        runs: u32,
    },
    /// Make a GRUB rescue ISO (BIOS and UEFI) with Xen, dom0 and an optional boot bundle, for
    /// a real machine (burn it, or `dd` it to a USB stick) or for `cargo image run
    /// --firmware uefi`. Needs grub-pc-bin, grub-efi-amd64-bin, xorriso and mtools.
    Iso {
        /// Xen from Debian's packages to put on it.
        #[arg(long, value_enum, default_value_t = XenVersion::V4_17)]
        xen: XenVersion,
        /// Xen's dom0_mem in MiB.
        #[arg(long, default_value_t = 256)]
        dom0_mem: u32,
        /// A boot bundle (`cargo image bundle`) for dom0 to build DomUs from.
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Where to write it [default: target/dom0-xen-<ver>.iso].
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// dom0's command line.
        #[arg(last = true)]
        dom0_args: Vec<String>,
    },
    /// Print a GRUB2 menuentry that boots Xen with this dom0 on real hardware.
    GrubEntry {
        /// dom0's command line.
        #[arg(last = true)]
        dom0_args: Vec<String>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Xen to boot under; `none` boots dom0 alone through QEMU's PVH loader.
    #[arg(long, value_enum, default_value_t = XenVersion::V4_17)]
    xen: XenVersion,
    /// vCPUs (QEMU -smp, and dom0_max_vcpus under Xen).
    #[arg(long, default_value_t = 1)]
    smp: u32,
    /// QEMU RAM in MiB.
    #[arg(long, default_value_t = 1024)]
    mem: u32,
    /// Xen's dom0_mem in MiB [default: 64; with --domu 256, and --mem raised to fit the DomUs].
    #[arg(long)]
    dom0_mem: Option<u32>,
    /// PCI topology.
    #[arg(long, value_enum, default_value_t = Topology::Default)]
    topology: Topology,
    /// Machine firmware
    #[arg(long, value_enum, default_value_t = image::iso::Firmware::Bios)]
    firmware: image::iso::Firmware,
    /// The IOMMU QEMU emulates.
    #[arg(long, value_enum, default_value_t = Iommu::Amd)]
    iommu: Iommu,
    /// Seconds before QEMU is killed.
    #[arg(long, default_value_t = 90)]
    timeout: u64,
    /// A boot module for dom0 (passed as is).
    #[arg(long)]
    module: Option<PathBuf>,
    /// A boot bundle for dom0 (from `cargo image bundle`): checked, then passed as dom0's boot
    /// module like --module.
    #[arg(long, conflicts_with = "module")]
    bundle: Option<PathBuf>,
    /// A DomU running Debian's Linux with a busybox initramfs (kernel=linux: the ELF taken out
    /// of the bzImage on the host; kernel=vmlinuz: the bzImage as shipped, decompressed by
    /// dom0), or with kernel=testguest the project's hostile test guest (repeatable):
    /// NAME[:kernel=linux|vmlinuz|testguest][,memory=MIB][,vcpus=N][,vif[=MAC]...][,cmdline=TEXT]
    /// (defaults linux, 128 MiB (testguest 32 MiB), 1 vCPU, no vif; for Linux TEXT is
    /// appended to "console=hvc0 loglevel=4"; it must come last; `domu-ip=ADDR/PREFIX
    /// domu-ping=PEER` makes the test init bring up eth0 and ping PEER). The DomUs are packed into a boot bundle in the run
    /// directory that is passed as dom0's module.
    #[arg(long = "domu", value_name = "NAME[:OPTS]", conflicts_with_all = ["module", "bundle"])]
    domus: Vec<image::DomuSpec>,
    /// An extra word for Xen's command line (repeatable).
    #[arg(long = "xen-arg", allow_hyphen_values = true)]
    xen_args: Vec<String>,
    /// Suffix for the run name.
    #[arg(long)]
    name: Option<String>,
    /// An error the run provokes on purpose (repeatable): the run passes only if every error
    /// in dom0's report contains one of these texts and each text matches an error. Without it
    /// any error in dom0's report fails the run.
    #[arg(long = "expect-error", value_name = "TEXT")]
    expect_errors: Vec<String>,
    /// Do not stream the serial console.
    #[arg(long)]
    quiet: bool,
    /// Serve dom0's report to the host: forward 127.0.0.1:PORT (loopback only) to dom0's
    /// HTTP server through the uplink NIC, and add `nic=` (the --uplink NIC), `ip=dhcp` and
    /// `linger=60` to dom0's command line unless they are given.
    #[arg(long, value_name = "PORT")]
    http: Option<u16>,
    /// The NIC dom0 drives with --http (default topology): virtio-net (0000:01:00.0) or
    /// e1000e (0000:02:00.0).
    #[arg(long, value_enum, default_value_t = image::UplinkNic::VirtioNet)]
    uplink: image::UplinkNic,
    /// dom0's command line (`on-ready=qemu-exit` is added unless an `on-ready=` is given).
    #[arg(last = true)]
    dom0_args: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct BundleArgs {
    /// A domain (repeatable):
    /// name=NAME,memory=MIB,vcpus=N,kernel=NAME[,initrd=NAME][,device=DEV]...[,cmdline=TEXT]
    /// where DEV is console, vif or vif=aa:bb:cc:dd:ee:ff. cmdline= must come last: it takes
    /// the rest of the argument verbatim, commas included.
    #[arg(long = "domain", value_name = "SPEC")]
    domains: Vec<image::bundle::DomainSpecInput>,
    /// A file (repeatable): kernel:NAME=PATH or initrd:NAME=PATH; domains refer to NAME.
    #[arg(long = "file", value_name = "KIND:NAME=PATH")]
    files: Vec<image::bundle::FileArg>,
    /// Where to write the bundle [default: target/bundle.bin in the workspace].
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("image: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Run(args) => run(args),
        Cmd::Bundle(args) => {
            let files = args
                .files
                .iter()
                .map(image::bundle::FileArg::load)
                .collect::<Result<Vec<_>>>()?;
            let bytes = image::bundle::pack(&args.domains, &files)?;
            let out = args
                .output
                .unwrap_or_else(|| image::target_dir().join("bundle.bin"));
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&out, &bytes)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", out.display()))?;
            print!("{}", image::bundle::describe(&bytes)?);
            println!("wrote {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Build => {
            let p = image::prepare_with(XenVersion::None, false)?;
            let size = std::fs::metadata(&p.dom0_elf)?.len();
            println!("{} ({size} bytes)", p.dom0_elf.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FetchLinux => {
            let g = image::guest::fetch_linux(&image::target_dir(), false)?;
            let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len());
            println!("Linux {} ({})", g.kernel_version, g.kernel_package);
            println!(
                "  kernel:    {} ({} bytes, XEN_ELFNOTE_PHYS32_ENTRY {:#x})",
                g.vmlinux.display(),
                size(&g.vmlinux)?,
                g.phys32_entry
            );
            println!(
                "  initramfs: {} ({} bytes, {})",
                g.initramfs.display(),
                size(&g.initramfs)?,
                g.busybox_package
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FetchXen { xen } => {
            for v in xen {
                if v == XenVersion::None {
                    println!("--xen none: nothing to fetch");
                    continue;
                }
                let bin = image::fetch_xen(v, false)?;
                println!(
                    "Xen {}: {} ({})",
                    v.as_str(),
                    bin.elf.display(),
                    bin.package
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench { runs, xen, timeout } => {
            let cfg = BenchConfig {
                runs: runs.max(1),
                xen,
                timeout: Duration::from_secs(timeout),
                ..BenchConfig::default()
            };
            let (result, _) = bench(&cfg)?;
            let all_passed = result.runs.iter().all(|r| r.outcome == Outcome::Pass);
            Ok(if all_passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Cmd::BenchNet {
            xen,
            mib,
            timeout,
            baseline_only,
            smp,
            uplink,
            no_uplink,
            tsc_mode,
            guest_cmdline,
            sched,
            xen_args,
            runs,
        } => {
            let cfg = image::netbench::NetBenchConfig {
                sched,
                xen_args,
                guest_cmdline: match guest_cmdline.trim() {
                    "" => String::new(),
                    t => format!(" {t}"),
                },
                tsc_mode,
                runs: runs.clamp(1, 20),
                xen,
                mib: mib.clamp(1, 512),
                timeout: Duration::from_secs(timeout),
                baseline_only,
                smp: smp.clamp(1, 4),
                uplink: (!no_uplink).then_some(uplink),
            };
            image::netbench::bench_net(&cfg)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Iso {
            xen,
            dom0_mem,
            bundle,
            output,
            dom0_args,
        } => {
            if xen == XenVersion::None {
                anyhow::bail!("the ISO boots Xen: --xen 4.17 or 4.20");
            }
            if let Some(b) = &bundle {
                image::bundle::check_file(b)?;
            }
            for a in &dom0_args {
                image::qemu::check_dom0_arg(a)?;
            }
            let p = image::prepare_with(xen, false)?;
            let out = output.unwrap_or_else(|| {
                image::target_dir().join(format!("dom0-xen-{}.iso", xen.as_str()))
            });
            let out = std::path::absolute(&out)?;
            let xen_elf = p.xen_elf.as_deref().expect("Xen was fetched");
            image::iso::make_iso(
                &out,
                xen_elf,
                &p.dom0_elf,
                bundle.as_deref(),
                &image::iso::real_xen_cmdline(dom0_mem),
                &dom0_args,
            )?;
            println!(
                "{} ({} bytes): Xen {} ({}), dom0, {}\n\
                 BIOS and UEFI boot it from a CD or a USB stick (dd if={} of=/dev/sdX bs=4M);\n\
                 Xen's console is on the first serial port (115200 8n1) and the screen.",
                out.display(),
                std::fs::metadata(&out)?.len(),
                xen.as_str(),
                p.xen_package.as_deref().unwrap_or("?"),
                match &bundle {
                    Some(b) => format!("bundle {}", b.display()),
                    None => "no bundle".to_string(),
                },
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::GrubEntry { dom0_args } => {
            print!("{}", grub_entry(&dom0_args));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(a: RunArgs) -> Result<ExitCode> {
    if let Some(b) = &a.bundle {
        image::bundle::check_file(b)?;
    }
    let mut dom0_args = a.dom0_args;
    let mut nic_forward = image::qemu::NicForward::default();
    let mut timeout = a.timeout;
    if let Some(port) = a.http {
        dom0_args = image::uplink_args(&dom0_args, a.uplink);
        nic_forward = image::qemu::NicForward {
            model: a.uplink.qemu_model().to_string(),
            http_port: Some(port),
            guestfwd: None,
        };
        let linger = dom0_args
            .iter()
            .find_map(|w| w.strip_prefix("linger="))
            .unwrap_or("60")
            .to_string();
        if let Ok(s) = linger.parse::<u64>() {
            timeout = timeout.max(s + 120);
        }
        eprintln!(
            "image: dom0's report will be at http://127.0.0.1:{port}/ and              http://127.0.0.1:{port}/report.json once dom0 has its DHCP lease              (\"dom0 on its switch: 10.0.2.15/24\" on the console); dom0 serves for {linger} s              after its DomUs stop (linger=), and QEMU is killed after {timeout} s (--timeout)"
        );
    }
    let cfg = RunConfig {
        nic_forward,
        xen: a.xen,
        smp: a.smp,
        mem_mib: a.mem,
        dom0_mem_mib: a.dom0_mem.unwrap_or(RunConfig::default().dom0_mem_mib),
        dom0_mem_fixed: a.dom0_mem.is_some(),
        domus: a.domus,
        topology: a.topology,
        iommu: a.iommu,
        timeout: Duration::from_secs(timeout),
        module: a.module.or(a.bundle),
        dom0_args,
        xen_args: a.xen_args,
        run_name: a.name,
        quiet: a.quiet,
        expect_errors: a.expect_errors,
        firmware: a.firmware,
        silence: None,
        give_up: None,
    };
    let out = image::run(&cfg)?;
    let r = &out.report;
    let exit = r
        .qemu_exit_code
        .map_or("killed".to_string(), |c| c.to_string());
    eprintln!();
    if r.outcome == Outcome::Timeout {
        eprintln!("image: timed out after {timeout} s; last 30 lines:");
        eprintln!("{}", out.tail(30));
    }
    eprintln!(
        "image: run {}: {} - {} (QEMU exit {exit}, {:.1} s)",
        r.run,
        r.outcome.as_str().to_uppercase(),
        r.reason,
        r.wall_ms as f64 / 1000.0
    );
    if let Some(d) = out.dom0()
        && !d.errors.is_empty()
    {
        eprintln!("dom0 reported {} error(s):", d.errors.len());
        for e in &d.errors {
            eprintln!("  - {e}");
        }
    }
    eprintln!("  serial log:   {}", out.serial_log.display());
    eprintln!("  report:       {}", out.report_json.display());
    eprintln!("  QEMU command: {}", out.qemu_cmdline.display());
    if !out.passed() {
        let next = match r.outcome {
            Outcome::Timeout => {
                "next: read the end of the serial log; if the boot was only slow, raise --timeout"
            }
            Outcome::Crashed => {
                "next: read the crash in the serial log (xen_log.crash_lines in report.json) \
                 and the last dom0 lines before it"
            }
            _ => {
                "next: read the serial log and report.json; rerun without --quiet to watch the \
                 console"
            }
        };
        eprintln!("{next}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn grub_entry(dom0_args: &[String]) -> String {
    let elf = image::target_dir()
        .join("dom0")
        .join(image::setup::DOM0_TARGET)
        .join("dom0")
        .join("dom0");
    // The same entry as the ISO's (image::iso), with Debian's gzipped Xen.
    let entry = image::iso::MenuEntry {
        xen: "/boot/xen.gz".into(),
        xen_cmdline: image::iso::real_xen_cmdline(256),
        dom0: "/boot/dom0.elf".into(),
        dom0_args: dom0_args.to_vec(),
        bundle: None,
    };
    format!(
        "# Copy the dom0 ELF ({elf}, built by `cargo image build`) to /boot/dom0.elf and\n\
         # Debian's xen-hypervisor package's boot/xen-*-amd64.gz to /boot/xen.gz, then add this\n\
         # to /etc/grub.d/40_custom and run update-grub. (`cargo image iso` makes a bootable\n\
         # image with the same entry.)\n{}",
        entry.grub(),
        elf = elf.display()
    )
}

fn parse_tsc_mode(s: &str) -> Result<toolstack::bundle::TscMode, String> {
    toolstack::bundle::TscMode::parse(s)
        .ok_or_else(|| format!("{s:?}: default, always_emulate or native"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_args_parse() {
        let cli = Cli::try_parse_from([
            "image",
            "run",
            "--xen",
            "4.20",
            "--smp",
            "2",
            "--topology",
            "minimal",
            "--xen-arg",
            "iommu=1",
            "--",
            "a=1",
            "b",
        ])
        .unwrap();
        let Cmd::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.xen, XenVersion::V4_20);
        assert_eq!(a.smp, 2);
        assert_eq!(a.topology, Topology::Minimal);
        assert_eq!(a.xen_args, ["iommu=1"]);
        assert_eq!(a.dom0_args, ["a=1", "b"]);
        assert_eq!(a.dom0_mem, None);
        assert!(a.domus.is_empty());
    }

    /// The README's `cargo image bench-net`: 2 CPUs, 64 MiB, the virtio-net uplink, one run.
    #[test]
    fn bench_net_defaults() {
        let cli = Cli::try_parse_from(["image", "bench-net"]).unwrap();
        let Cmd::BenchNet {
            smp,
            mib,
            runs,
            no_uplink,
            uplink,
            ..
        } = cli.command
        else {
            panic!("not bench-net")
        };
        assert_eq!((smp, mib, runs, no_uplink), (2, 64, 1, false));
        assert_eq!(uplink, image::UplinkNic::VirtioNet);
        // Xen's command line: the scheduler (credit1 unless asked), then each `--xen-arg`
        // word as given, so that a `sched=` among them wins.
        let words = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Cmd::BenchNet {
                sched, xen_args, ..
            } => sched.with(&xen_args),
            _ => panic!("not bench-net"),
        };
        assert_eq!(words(&["image", "bench-net"]), ["sched=credit"]);
        assert_eq!(
            words(&["image", "bench-net", "--sched", "credit2"]),
            ["sched=credit2"]
        );
        assert_eq!(
            words(&["image", "bench-net", "--xen-arg", "sched=credit2"]),
            ["sched=credit", "sched=credit2"]
        );
        let xen_args = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Cmd::BenchNet { xen_args, .. } => xen_args,
            _ => panic!("not bench-net"),
        };
        assert!(xen_args(&["image", "bench-net"]).is_empty());
        assert_eq!(
            xen_args(&[
                "image",
                "bench-net",
                "--xen-arg",
                "bootscrub=1",
                "--xen-arg",
                "sched=credit"
            ]),
            ["bootscrub=1", "sched=credit"]
        );
    }

    #[test]
    fn run_domus_parse() {
        let cli = Cli::try_parse_from([
            "image",
            "run",
            "--domu",
            "demo",
            "--domu",
            "crashy:memory=128,vcpus=2,cmdline=domu-test=crash",
            "--domu",
            "hostile:kernel=testguest",
            "--dom0-mem",
            "300",
        ])
        .unwrap();
        let Cmd::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.domus.len(), 3);
        assert_eq!(a.domus[2].kernel, image::DomuKernel::Testguest);
        assert_eq!(a.domus[0], image::DomuSpec::new("demo"));
        assert_eq!(a.domus[1].vcpus, 2);
        assert_eq!(a.domus[1].cmdline_extra, "domu-test=crash");
        assert_eq!(a.dom0_mem, Some(300));
        for other in ["--bundle", "--module"] {
            assert!(Cli::try_parse_from(["image", "run", "--domu", "a", other, "b"]).is_err());
        }
        assert!(Cli::try_parse_from(["image", "run", "--domu", "a:memory=x"]).is_err());
        assert!(Cli::try_parse_from(["image", "run", "--domu", "a:kernel=bsd"]).is_err());
        assert!(Cli::try_parse_from(["image", "fetch-linux"]).is_ok());
    }

    #[test]
    fn run_bundle_is_the_module() {
        let cli = Cli::try_parse_from(["image", "run", "--bundle", "b.bin"]).unwrap();
        let Cmd::Run(a) = cli.command else {
            panic!("not run")
        };
        assert_eq!(a.bundle, Some(PathBuf::from("b.bin")));
        assert_eq!(a.module.or(a.bundle), Some(PathBuf::from("b.bin")));
        assert!(Cli::try_parse_from(["image", "run", "--bundle", "b", "--module", "m"]).is_err());
    }

    #[test]
    fn bundle_args_parse() {
        let cli = Cli::try_parse_from([
            "image",
            "bundle",
            "--domain",
            "name=demo,memory=64,vcpus=1,kernel=vmlinuz,cmdline=console=hvc0 quiet,x",
            "--file",
            "kernel:vmlinuz=/boot/vmlinuz",
            "--file",
            "initrd:initrd.img=/boot/initrd.img",
            "-o",
            "out.bin",
        ])
        .unwrap();
        let Cmd::Bundle(a) = cli.command else {
            panic!("not bundle")
        };
        assert_eq!(a.domains.len(), 1);
        assert_eq!(a.domains[0].name, "demo");
        assert_eq!(a.domains[0].memory_mib, 64);
        assert_eq!(a.domains[0].cmdline, "console=hvc0 quiet,x");
        assert_eq!(a.files.len(), 2);
        assert_eq!(a.files[1].name, "initrd.img");
        assert_eq!(a.output, Some(PathBuf::from("out.bin")));
        let bad = Cli::try_parse_from(["image", "bundle", "--file", "vmlinuz=/x"]);
        assert!(bad.is_err());
        let bad = Cli::try_parse_from(["image", "bundle", "--domain", "name=x"]);
        assert!(bad.is_err());
    }

    #[test]
    fn grub_entry_lines() {
        let e = grub_entry(&["loglevel=debug".into()]);
        assert!(e.contains(
            "\tmultiboot2 /boot/xen.gz dom0=pvh dom0_mem=256M,max:256M loglvl=all \
             guest_loglvl=all console=com1,vga com1=115200,8n1\n"
        ));
        assert!(e.contains("\tmodule2 /boot/dom0.elf loglevel=debug\n"));
    }
}
