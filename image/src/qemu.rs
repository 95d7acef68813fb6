//! The QEMU command line (machine, CPU, PCI topologies, Xen or bare PVH boot) and the process
//! runner that streams the serial console with a timeout.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::xenlog::{clean_line, is_terminal_xen_line};

/// The IOMMU QEMU emulates (Xen needs one for a PVH dom0).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Iommu {
    /// AMD-Vi (`amd-iommu`) with `-cpu qemu64,+svm,+npt`. Its IVRS covers the bus range the
    /// firmware numbered; Xen refuses devices outside it.
    #[default]
    Amd,
    /// Intel VT-d (`intel-iommu,intremap=off`) with `-cpu max,-rdtscp` and Xen's
    /// `iommu=1,no-sharept`; its DMAR unit includes every PCI device.
    Intel,
}

impl Iommu {
    pub fn name(self) -> &'static str {
        match self {
            Iommu::Amd => "amd",
            Iommu::Intel => "intel",
        }
    }

    /// What Xen's command line needs for this IOMMU.
    pub fn xen_args(self) -> &'static [&'static str] {
        match self {
            Iommu::Amd => &[],
            Iommu::Intel => &["iommu=1,no-sharept"],
        }
    }
}

/// A named set of PCI devices to boot with. `--topology NAME` takes these names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Topology {
    /// q35 with three PCIe root ports carrying virtio-net (modern only), e1000e and an NVMe
    /// controller with a 1 MiB disk.
    #[default]
    Default,
    /// q35 with no extra devices.
    Minimal,
    /// Bridges of every kind: a PCIe switch three levels deep (root port, upstream port, two
    /// downstream ports carrying virtio-net and NVMe), a PCIe-to-PCI bridge with a conventional
    /// PCI bridge and an e1000 behind it, and a multi-function device (virtio-serial, functions
    /// 0 and 1) on the root complex.
    Bridges,
    /// The default devices plus an SR-IOV NVMe controller (3 virtual functions available;
    /// dom0's `pci-vfs=` enables them).
    Sriov,
    /// Two PCIe expander bridges (`pxb-pcie`, extra PCI roots like a multi-root server's):
    /// root bus 0x40 with a root port and virtio-net behind it, root bus 0x80 with a root port,
    /// a switch (upstream and two downstream ports) and e1000e and NVMe behind it, on NUMA node
    /// 1 (a memory-less second node). Only the ACPI namespace (or probing) finds these buses:
    /// nothing below bus 0 leads to them.
    Expander,
}

impl Topology {
    /// Every topology, in `--help` order.
    pub const ALL: &'static [Topology] = &[
        Topology::Default,
        Topology::Minimal,
        Topology::Bridges,
        Topology::Sriov,
        Topology::Expander,
    ];

    /// The name `--topology` takes.
    pub fn name(self) -> &'static str {
        match self {
            Topology::Default => "default",
            Topology::Minimal => "minimal",
            Topology::Bridges => "bridges",
            Topology::Sriov => "sriov",
            Topology::Expander => "expander",
        }
    }

    /// Parses a `--topology` name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// NUMA nodes the topology needs (`expander`: all RAM on node 0 and a memory-less node 1
    /// for the second expander bridge, so that its ACPI host bridge has a `_PXM`).
    pub fn numa_args(self, mem_mib: u32) -> Vec<String> {
        match self {
            Topology::Expander => [
                "-object".to_string(),
                format!("memory-backend-ram,id=numa0,size={mem_mib}M"),
                "-numa".into(),
                "node,nodeid=0,memdev=numa0".into(),
                "-numa".into(),
                "node,nodeid=1".into(),
            ]
            .into(),
            _ => Vec::new(),
        }
    }

    /// QEMU arguments for this topology's devices. Files the devices need (disk images) are
    /// created in `run_dir`. `fwd` adds port forwards to one NIC's user network.
    pub fn qemu_args(self, run_dir: &Path, fwd: &NicForward) -> Result<Vec<String>> {
        let mut b = DeviceBuilder {
            fwd: fwd.clone(),
            ..DeviceBuilder::default()
        };
        match self {
            Topology::Minimal => {}
            Topology::Bridges => {
                let rp = b.root_port();
                b.args.push("-device".into());
                b.args.push(format!("x3130-upstream,id=up1,bus={rp}"));
                for (i, port) in [(1, "dp1"), (2, "dp2")] {
                    b.args.push("-device".into());
                    b.args.push(format!(
                        "xio3130-downstream,id={port},bus=up1,chassis={},slot={i}",
                        20 + i
                    ));
                }
                b.nic("virtio-net-pci", "dp1", ",disable-legacy=on,romfile=");
                let disk = b.disk_image(run_dir, "nvme.img", 1024 * 1024)?;
                b.args.push("-device".into());
                b.args
                    .push(format!("nvme,serial=dom0nvme,drive={disk},bus=dp2"));
                let rp = b.root_port();
                b.args.push("-device".into());
                b.args.push(format!("pcie-pci-bridge,id=pcipb,bus={rp}"));
                b.args.push("-device".into());
                b.args
                    .push("pci-bridge,id=pb1,bus=pcipb,chassis_nr=30,addr=0x1".into());
                b.nic("e1000", "pb1", ",romfile=,addr=0x2");
                for f in 0..2 {
                    b.args.push("-device".into());
                    b.args.push(format!(
                        "virtio-serial-pci,bus=pcie.0,addr=0x6.{f}{}",
                        if f == 0 { ",multifunction=on" } else { "" }
                    ));
                }
            }
            Topology::Sriov => {
                args_default(&mut b, run_dir)?;
                let rp = b.root_port();
                // QEMU's NVMe SR-IOV (docs/system/devices/nvme.rst) needs an NVM subsystem and
                // flexible queue/interrupt resources shared between the PF and its VFs.
                b.args.push("-device".into());
                b.args.push("nvme-subsys,id=subsys0".into());
                b.args.push("-device".into());
                b.args.push(format!(
                    "nvme,serial=dom0sriov,subsys=subsys0,bus={rp},sriov_max_vfs=3,\
                     sriov_vq_flexible=6,sriov_vi_flexible=3,max_ioqpairs=8,msix_qsize=10"
                ));
            }
            Topology::Expander => {
                // pxb2 sits on NUMA node 1 (see `numa_args`): its host bridge gets `_PXM` 1.
                for (id, bus, node) in [("pxb1", 0x40, ""), ("pxb2", 0x80, ",numa_node=1")] {
                    b.args.push("-device".into());
                    b.args
                        .push(format!("pxb-pcie,id={id},bus_nr={bus:#x},bus=pcie.0{node}"));
                }
                let rp = b.root_port_on("pxb1");
                b.nic(
                    "virtio-net-pci",
                    &rp,
                    ",disable-legacy=on,iommu_platform=on,romfile=",
                );
                let rp = b.root_port_on("pxb2");
                b.args.push("-device".into());
                b.args.push(format!("x3130-upstream,id=xup,bus={rp}"));
                for (i, port) in [(1, "xdp1"), (2, "xdp2")] {
                    b.args.push("-device".into());
                    b.args.push(format!(
                        "xio3130-downstream,id={port},bus=xup,chassis={},slot={i}",
                        80 + i
                    ));
                }
                b.nic("e1000e", "xdp1", ",romfile=");
                let disk = b.disk_image(run_dir, "nvme.img", 1024 * 1024)?;
                b.args.push("-device".into());
                b.args
                    .push(format!("nvme,serial=dom0nvme,drive={disk},bus=xdp2"));
            }
            Topology::Default => args_default(&mut b, run_dir)?,
        }
        Ok(b.args)
    }
}

/// The default topology's devices: virtio-net, e1000e and NVMe behind their own root ports.
fn args_default(b: &mut DeviceBuilder, run_dir: &Path) -> Result<()> {
    let rp = b.root_port();
    // iommu_platform=on: the device translates its DMA through the IOMMU, as dom0 needs
    // (drivers::virtio::AccessPlatform).
    b.nic(
        "virtio-net-pci",
        &rp,
        ",disable-legacy=on,iommu_platform=on,romfile=",
    );
    let rp = b.root_port();
    b.nic("e1000e", &rp, ",romfile=");
    let rp = b.root_port();
    let disk = b.disk_image(run_dir, "nvme.img", 1024 * 1024)?;
    b.args.push("-device".into());
    b.args
        .push(format!("nvme,serial=dom0nvme,drive={disk},bus={rp}"));
    Ok(())
}

/// dom0's address on QEMU's user network when it leases by DHCP first (QEMU hands out
/// 10.0.2.15 up, one per MAC, in order of request), and the address `guestfwd` listens on.
pub const DOM0_DHCP_ADDR: &str = "10.0.2.15";
pub const GUESTFWD_ADDR: &str = "10.0.2.100";

/// Forwards on the user network of the NIC dom0 drives as its uplink (issue 13).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NicForward {
    /// The QEMU device whose network gets the forwards: "virtio-net-pci" or "e1000e" (the
    /// first such NIC of the topology). Empty: no forwards.
    pub model: String,
    /// `hostfwd=tcp:127.0.0.1:PORT-10.0.2.15:80`: the host's loopback PORT reaches dom0's
    /// HTTP server (loopback only; `restrict=on` stays).
    pub http_port: Option<u16>,
    /// `guestfwd=tcp:10.0.2.100:PORT-cmd:CMD`: each connection to 10.0.2.100:PORT from the
    /// machine runs CMD with the connection as its stdin and stdout.
    pub guestfwd: Option<(u16, String)>,
}

impl NicForward {
    /// The `-netdev user` options for a NIC of `model` (empty unless it is the uplink).
    fn netdev_options(&self, model: &str) -> String {
        if self.model != model {
            return String::new();
        }
        let mut o = String::new();
        if let Some(p) = self.http_port {
            o.push_str(&format!(",hostfwd=tcp:127.0.0.1:{p}-{DOM0_DHCP_ADDR}:80"));
        }
        if let Some((port, c)) = &self.guestfwd {
            // QEMU's option syntax: a ',' in a value is written ",,".
            o.push_str(&format!(
                ",guestfwd=tcp:{GUESTFWD_ADDR}:{port}-cmd:{}",
                c.replace(',', ",,")
            ));
        }
        o
    }
}

/// Hands out unique ids and chassis numbers while devices are added.
#[derive(Debug, Default)]
struct DeviceBuilder {
    fwd: NicForward,
    /// The forwards went to a NIC already (only the first of a model gets them).
    forwarded: bool,
    args: Vec<String>,
    root_ports: u32,
    nics: u32,
    drives: u32,
}

impl DeviceBuilder {
    /// Adds a `pcie-root-port` on the root complex and returns its id.
    fn root_port(&mut self) -> String {
        self.root_ports += 1;
        let id = format!("rp{}", self.root_ports);
        self.args.push("-device".into());
        self.args.push(format!(
            "pcie-root-port,id={id},bus=pcie.0,chassis={n},slot=0,port={n}",
            n = self.root_ports
        ));
        id
    }

    /// Adds a `pcie-root-port` on the expander bridge `pxb` and returns its id.
    fn root_port_on(&mut self, pxb: &str) -> String {
        self.root_ports += 1;
        let id = format!("rp{}", self.root_ports);
        self.args.push("-device".into());
        self.args.push(format!(
            "pcie-root-port,id={id},bus={pxb},chassis={n},slot=0,port={n}",
            n = self.root_ports
        ));
        id
    }

    /// Adds a NIC with a user-mode network that reaches nothing outside (`restrict=on`).
    fn nic(&mut self, model: &str, bus: &str, extra: &str) {
        let id = format!("net{}", self.nics);
        self.nics += 1;
        let extra_net = if self.forwarded {
            String::new()
        } else {
            self.fwd.netdev_options(model)
        };
        self.forwarded |= !extra_net.is_empty();
        self.args.push("-netdev".into());
        self.args
            .push(format!("user,id={id},restrict=on{extra_net}"));
        self.args.push("-device".into());
        self.args
            .push(format!("{model},netdev={id},bus={bus}{extra}"));
    }

    /// Creates a zeroed raw disk image and adds a `-drive if=none` for it; returns the drive id.
    fn disk_image(&mut self, run_dir: &Path, name: &str, bytes: u64) -> Result<String> {
        let path = run_dir.join(name);
        let file = std::fs::File::create(&path)
            .with_context(|| format!("creating disk image {}", path.display()))?;
        file.set_len(bytes)?;
        let path = path_arg(&path)?;
        let id = format!("drive{}", self.drives);
        self.drives += 1;
        self.args.push("-drive".into());
        self.args
            .push(format!("file={path},if=none,format=raw,id={id}"));
        Ok(id)
    }
}

/// A path as a QEMU option value: it must not hold ',' (QEMU's option and module separator)
/// nor ' ' (the multiboot module command line separator).
pub fn path_arg(path: &Path) -> Result<String> {
    let s = path
        .to_str()
        .with_context(|| format!("path {} is not UTF-8", path.display()))?;
    if s.contains([',', ' ']) {
        bail!(
            "path '{s}' contains ',' or ' ', which QEMU cannot pass through -kernel/-initrd/-drive; \
             move the workspace or the file to a path without them"
        );
    }
    Ok(s.to_string())
}

/// Machine, CPU and the devices every run has.
pub fn base_args(smp: u32, mem_mib: u32, iommu: Iommu) -> Vec<String> {
    let (cpu, iommu_dev) = match iommu {
        Iommu::Amd => ("qemu64,+svm,+npt", "amd-iommu"),
        // -rdtscp: Xen under this emulation cannot decode RDTSCP exits, which crashes Linux guests.
        Iommu::Intel => ("max,-rdtscp", "intel-iommu,intremap=off"),
    };
    [
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        cpu,
        "-smp",
        &smp.to_string(),
        "-m",
        &mem_mib.to_string(),
        "-nographic",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-device",
        iommu_dev,
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The QMP socket of a run: `IMAGE_QMP=PATH` if set (a profiler or a debugger can attach to
/// it, e.g. `info registers` through `human-monitor-command`), else a fresh path under the
/// system's temporary directory (a Unix socket path must stay under 108 bytes; a run
/// directory may be deeper than that).
pub fn qmp_path() -> PathBuf {
    match std::env::var("IMAGE_QMP") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::env::temp_dir().join(format!("image-qmp-{}-{n}.sock", std::process::id()))
        }
    }
}

/// QEMU's arguments for a QMP socket at `path`.
pub fn qmp_args(path: &Path) -> Vec<String> {
    vec![
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", path.display()),
    ]
}

/// What the harness asks QEMU (HMP through QMP's `human-monitor-command`) when a machine goes
/// silent: each vCPU's registers (`HLT=1` and `RFL`'s IF tell a halted CPU waiting for an
/// interrupt), its local APIC (the timer's LVT and counts, ISR/IRR: an interrupt left in
/// service blocks every lower one), the IOAPIC's pins and the interrupt counts.
pub const QEMU_VIEW_COMMANDS: &[&str] =
    &["info registers -a", "info lapic", "info pic", "info irq"];

/// QEMU's view of the machine through QMP at `path`, as lines prefixed `image: qemu: `; each
/// socket operation is bounded (2 s), so a QEMU that does not answer costs at most that and
/// a line saying so.
pub fn qemu_view(path: &Path) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixStream;
    let ask = || -> std::io::Result<Vec<String>> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut w = s.try_clone()?;
        let mut r = BufReader::new(s);
        // A reply is the next line that is not an asynchronous event.
        let reply = |r: &mut BufReader<UnixStream>| -> std::io::Result<serde_json::Value> {
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                let v: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                if v.get("event").is_none() {
                    return Ok(v);
                }
            }
        };
        reply(&mut r)?; // the greeting
        writeln!(w, r#"{{"execute":"qmp_capabilities"}}"#)?;
        reply(&mut r)?;
        let mut out = Vec::new();
        for c in QEMU_VIEW_COMMANDS {
            let cmd = serde_json::json!({
                "execute": "human-monitor-command",
                "arguments": { "command-line": c }
            });
            writeln!(w, "{cmd}")?;
            let v = reply(&mut r)?;
            out.push(format!("image: qemu: ({c})"));
            match v.get("return").and_then(|t| t.as_str()) {
                Some(text) => out.extend(
                    text.lines()
                        .map(str::trim_end)
                        .filter(|l| !l.is_empty())
                        .map(|l| format!("image: qemu: {l}")),
                ),
                None => out.push(format!("image: qemu: {v}")),
            }
        }
        Ok(out)
    };
    ask().unwrap_or_else(|e| {
        vec![format!(
            "image: qemu: QMP at {} did not answer: {e}",
            path.display()
        )]
    })
}

/// What happened to the QEMU process.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Raw serial console bytes.
    pub serial: Vec<u8>,
    /// QEMU's stderr.
    pub stderr: String,
    /// QEMU's exit code; `None` when it was killed.
    pub exit_code: Option<i32>,
    /// Killed because `timeout` passed.
    pub timed_out: bool,
    /// Killed early because Xen printed a line after which it only waits (panic, dom0 crash).
    pub stopped_after: Option<String>,
    /// Killed early because [`Watch::give_up`] said the run cannot finish, and why.
    pub gave_up: Option<String>,
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// Silences after which Xen was asked for its state ([`Watch::silence`]).
    pub silences: Vec<Silence>,
}

/// How long QEMU may go on after Xen printed a terminal line (it prints the rest of the crash).
const GRACE_AFTER_TERMINAL_LINE: Duration = Duration::from_millis(1500);

/// How a QEMU process is run and watched (see [`run_qemu`]).
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Kill QEMU after this long.
    pub timeout: Duration,
    /// Print the serial console, line by line, as it comes.
    pub stream: bool,
    /// Append the raw serial console to this file as it comes (`tail -f` a live run).
    pub live_log: Option<PathBuf>,
    /// Xen owns the serial console: at the timeout, ask it for its state with debug keys
    /// ([`XEN_DUMP_KEYS`]) before QEMU is killed, so a hang leaves Xen's view of every vCPU.
    pub xen_console: bool,
    /// With `xen_console`: after this long without a byte on the console while QEMU also
    /// used almost no CPU ([`IDLE_PERCENT`]), ask Xen for its state too (and again after each
    /// further such stretch), without stopping the run.
    pub silence: Option<Duration>,
    /// QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`, see [`qmp_args`]): at a
    /// silence and at the timeout the harness also asks QEMU itself for the vCPUs' registers,
    /// local APICs, IOAPIC and interrupt counts ([`QEMU_VIEW_COMMANDS`]), which Xen cannot
    /// give when the whole machine is halted and deaf to its console.
    pub qmp: Option<PathBuf>,
    /// Looked at the serial console so far about once a second while it grows: `Some(why)`
    /// stops the run at once (what it waits for can no longer come, e.g. a transfer that has
    /// not moved for a minute), rather than at the timeout.
    pub give_up: Option<fn(&str) -> Option<String>>,
}

/// One stretch without console output during which the harness asked Xen for its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    /// Seconds after QEMU started.
    pub at_s: u64,
    /// Xen's run-queue dump showed the stall its credit2 scheduler can fall into here: a
    /// runnable vCPU queued while every CPU idles (see README, Troubleshooting). A key press
    /// makes the idle CPU schedule again, so such a run moves on after the dump.
    pub scheduler_stall: bool,
    /// QEMU's own view ([`crate::xenlog::qemu_lost_wakeup`]): its CPU 0 halted with
    /// interrupts enabled and this vector pending in its local APIC, undelivered (the
    /// emulator's lost wakeup; see README, Troubleshooting).
    #[serde(default)]
    pub qemu_lost_wakeup: Option<u8>,
}

/// What a timed-out run types on Xen's console: three Ctrl-A switch its input from dom0 to Xen
/// (`conswitch`, xen/drivers/char/console.c), then `q` (domains and vCPUs: pause flags, poll,
/// pending upcalls), `r` (the scheduler's run queues) and `e` (event channels). A key press
/// also makes Xen's CPU run its softirqs, so the run may move on; the report says it stalled.
pub const XEN_DUMP_KEYS: &[u8] = b"\x01\x01\x01qre";

/// The line the harness puts in the serial log before it types [`XEN_DUMP_KEYS`].
pub const XEN_DUMP_MARK: &str = "image: timed out; asking Xen for its state (debug keys q r e)";

/// The line before the dump keys typed after a silence ([`Watch::silence`]).
pub const XEN_SILENCE_MARK: &str =
    "image: no console output for a while; asking Xen for its state (debug keys q r e)";

/// How long Xen gets to print its dumps before QEMU is killed.
const XEN_DUMP_GRACE: Duration = Duration::from_secs(4);

/// Runs QEMU with `args` until it exits or `watch.timeout` passes, keeping the serial console
/// (and streaming or logging it as `watch` says).
pub fn run_qemu(qemu: &Path, args: &[String], watch: &Watch) -> Result<Finished> {
    let start = Instant::now();
    let timeout = watch.timeout;
    let mut child = Command::new(qemu)
        .args(args)
        // Xen reads its console from here (the dump keys at a timeout); nothing else is typed.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", qemu.display()))?;
    let mut keyboard = child.stdin.take();
    let serial = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().context("QEMU stdout")?;
    let live = match &watch.live_log {
        Some(p) => {
            Some(std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?)
        }
        None => None,
    };
    let stream = watch.stream;
    let reader = {
        let serial = Arc::clone(&serial);
        thread::spawn(move || pump_serial(stdout, &serial, stream, live))
    };
    let mut stderr_pipe = child.stderr.take().context("QEMU stderr")?;
    let stderr_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });

    let mut timed_out = false;
    let mut asked_xen = false;
    // Xen takes the console input at the first three Ctrl-A and keeps it (a second three would
    // hand it back to dom0).
    let mut xen_has_input = false;
    // The last console byte: when, and QEMU's CPU time then (to tell a halted machine from a
    // busy, quiet one).
    let pid = child.id();
    let (mut heard_len, mut heard_at, mut heard_cpu) = (0usize, start, cpu_ticks(pid));
    let mut silence_marks: Vec<(u64, usize)> = Vec::new();
    // QEMU's CPU use since the last console byte, in % of one CPU, and how the mark says it.
    let busy_since_heard = |heard_at: Instant, heard_cpu: Option<u64>| {
        let wall = heard_at.elapsed().as_secs_f64();
        match (heard_cpu, cpu_ticks(pid)) {
            (Some(a), Some(b)) if wall > 0.0 => {
                let pct = (b.saturating_sub(a) as f64 / TICKS_PER_S) / wall * 100.0;
                let says = format!(
                    " [QEMU used {pct:.1}% of a CPU in the {wall:.0} s since the last console byte]"
                );
                (Some(pct), says)
            }
            _ => (None, String::new()),
        }
    };
    let mut stopped_after: Option<String> = None;
    let mut kill_at: Option<Instant> = None;
    let mut scanned = 0usize;
    let mut gave_up: Option<String> = None;
    let (mut give_up_at, mut give_up_len) = (start, 0usize);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        let now = Instant::now();
        if now.duration_since(start) >= timeout && !asked_xen {
            timed_out = kill_at.is_none();
            if timed_out && watch.xen_console {
                // Type the dump keys and give Xen a few seconds to print them.
                asked_xen = true;
                let mark = format!("{XEN_DUMP_MARK}{}", busy_since_heard(heard_at, heard_cpu).1);
                ask_xen_for_state(
                    &serial,
                    keyboard.as_mut(),
                    &mark,
                    &mut xen_has_input,
                    watch.qmp.as_deref(),
                );
                kill_at = Some(Instant::now() + XEN_DUMP_GRACE);
                continue;
            }
            kill(&mut child);
            break None;
        }
        if watch.xen_console && kill_at.is_none() {
            let len = serial.lock().unwrap_or_else(|e| e.into_inner()).len();
            if len != heard_len {
                (heard_len, heard_at, heard_cpu) = (len, now, cpu_ticks(pid));
            } else if watch
                .silence
                .is_some_and(|quiet| now.duration_since(heard_at) >= quiet)
            {
                // Only a machine that also stopped using the CPU is worth asking: a quiet one
                // still computing (a DomU moving data without printing) is left alone.
                let (pct, says) = busy_since_heard(heard_at, heard_cpu);
                if pct.is_some_and(|p| p < IDLE_PERCENT) {
                    let mark_at = len;
                    let mark = format!("{XEN_SILENCE_MARK}{says}");
                    ask_xen_for_state(
                        &serial,
                        keyboard.as_mut(),
                        &mark,
                        &mut xen_has_input,
                        watch.qmp.as_deref(),
                    );
                    silence_marks.push((now.duration_since(start).as_secs(), mark_at));
                }
                heard_at = Instant::now();
                heard_cpu = cpu_ticks(pid);
            }
        }
        if let Some(test) = watch.give_up.filter(|_| kill_at.is_none())
            && now.duration_since(give_up_at) >= Duration::from_secs(1)
        {
            give_up_at = now;
            let text = {
                let buf = serial.lock().unwrap_or_else(|e| e.into_inner());
                (buf.len() != give_up_len).then(|| {
                    give_up_len = buf.len();
                    String::from_utf8_lossy(&buf).into_owned()
                })
            };
            if let Some(why) = text.as_deref().and_then(test) {
                gave_up = Some(why);
                kill(&mut child);
                break None;
            }
        }
        if let Some(at) = kill_at {
            if now >= at {
                kill(&mut child);
                break None;
            }
        } else if let Some(line) = scan_terminal(&serial, &mut scanned) {
            stopped_after = Some(line);
            kill_at = Some(now + GRACE_AFTER_TERMINAL_LINE);
        }
        thread::sleep(Duration::from_millis(20));
    };
    let wall = start.elapsed();
    drop(keyboard);
    let _ = reader.join();
    let stderr = stderr_reader.join().unwrap_or_default();
    let serial = std::mem::take(&mut *serial.lock().unwrap_or_else(|e| e.into_inner()));
    let silences = silence_marks
        .iter()
        .map(|&(at_s, from)| {
            let after = String::from_utf8_lossy(serial.get(from..).unwrap_or_default());
            // This silence's own view: up to the next mark.
            let own = after
                .get(1..)
                .and_then(|a| a.find(XEN_SILENCE_MARK).map(|n| &after[..n + 1]))
                .unwrap_or(&after);
            Silence {
                at_s,
                scheduler_stall: crate::xenlog::scheduler_stall(&after),
                qemu_lost_wakeup: crate::xenlog::qemu_lost_wakeup(own),
            }
        })
        .collect();
    Ok(Finished {
        serial,
        stderr,
        exit_code: status.and_then(|s| s.code()),
        timed_out,
        stopped_after,
        gave_up,
        wall,
        silences,
    })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Looks at complete lines after `scanned` for a terminal Xen line.
fn scan_terminal(serial: &Mutex<Vec<u8>>, scanned: &mut usize) -> Option<String> {
    let buf = serial.lock().unwrap_or_else(|e| e.into_inner());
    let end = buf[*scanned..].iter().rposition(|&b| b == b'\n')? + *scanned + 1;
    let text = String::from_utf8_lossy(&buf[*scanned..end]).into_owned();
    *scanned = end;
    text.lines()
        .map(clean_line)
        .find(|l| is_terminal_xen_line(l))
}

/// Below this share of one CPU since the last console byte, the emulated machine counts as
/// halted (a guest spinning or copying keeps QEMU near 100%).
pub const IDLE_PERCENT: f64 = 5.0;

/// `USER_HZ`: the unit of `/proc/<pid>/stat`'s CPU times (100 on x86-64 Linux).
const TICKS_PER_S: f64 = 100.0;

/// User + system CPU time of process `pid` in `USER_HZ` ticks (`/proc/<pid>/stat` fields 14
/// and 15), or `None` off Linux or once it is gone.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Puts `mark` in the serial log, then QEMU's own view of the machine as it is before anything
/// disturbs it (with a QMP socket, [`note_qemu_view`]), and types [`XEN_DUMP_KEYS`] on Xen's
/// console (the three Ctrl-A only while dom0 still has the input).
fn ask_xen_for_state(
    serial: &Mutex<Vec<u8>>,
    keyboard: Option<&mut std::process::ChildStdin>,
    mark: &str,
    xen_has_input: &mut bool,
    qmp: Option<&Path>,
) {
    {
        let mut s = serial.lock().unwrap_or_else(|e| e.into_inner());
        if s.last().is_some_and(|&b| b != b'\n') {
            s.push(b'\n');
        }
        s.extend_from_slice(mark.as_bytes());
        s.push(b'\n');
    }
    note_qemu_view(serial, qmp);
    if let Some(k) = keyboard {
        // Xen polls or takes an interrupt per character; a pause between keys keeps each
        // dump whole before the next one starts.
        let (switch, keys) = XEN_DUMP_KEYS.split_at(3);
        if !*xen_has_input {
            let _ = k.write_all(switch).and_then(|()| k.flush());
            *xen_has_input = true;
        }
        for &key in keys {
            thread::sleep(Duration::from_millis(300));
            let _ = k.write_all(&[key]).and_then(|()| k.flush());
        }
    }
}

/// Appends QEMU's own view ([`qemu_view`]) to the serial log (and nothing without a socket).
fn note_qemu_view(serial: &Mutex<Vec<u8>>, qmp: Option<&Path>) {
    let Some(p) = qmp else { return };
    let lines = qemu_view(p);
    let mut s = serial.lock().unwrap_or_else(|e| e.into_inner());
    if s.last().is_some_and(|&b| b != b'\n') {
        s.push(b'\n');
    }
    for l in lines {
        s.extend_from_slice(l.as_bytes());
        s.push(b'\n');
    }
}

/// Copies QEMU's stdout into `serial` (and `live`, raw, as it comes); when `stream`, also
/// prints it line by line, cleaned.
fn pump_serial(
    mut from: impl Read,
    serial: &Mutex<Vec<u8>>,
    stream: bool,
    mut live: Option<std::fs::File>,
) {
    let mut chunk = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    let out = std::io::stdout();
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(f) = live.as_mut() {
            // Best effort: the log kept in memory is the one the run is judged on.
            let _ = f.write_all(&chunk[..n]);
        }
        serial
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(&chunk[..n]);
        if stream {
            pending.extend_from_slice(&chunk[..n]);
            while let Some(p) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=p).collect();
                let text = clean_line(&String::from_utf8_lossy(&line));
                let _ = writeln!(out.lock(), "{text}");
            }
        }
    }
    if stream && !pending.is_empty() {
        let text = clean_line(&String::from_utf8_lossy(&pending));
        let _ = writeln!(out.lock(), "{text}");
    }
}

/// The Xen command line for a run.
pub fn xen_cmdline(dom0_mem_mib: u32, smp: u32, extra: &[String]) -> String {
    let mut s = format!(
        "console=com1 com1=115200,8n1 dom0=pvh dom0_mem={dom0_mem_mib}M,max:{dom0_mem_mib}M \
         dom0_max_vcpus={smp} loglvl=all guest_loglvl=all noreboot"
    );
    // Xen's default scheduler, credit2, strands a runnable dom0 vCPU on its run queue with
    // every pCPU idle in about 1 of 3 boots with 8 vCPUs under TCG on a loaded host ('q' and
    // 'r' debug keys: d0v0 pause_flags=0 on RUNQ, all CPUs current=IDLE; a key press revives
    // it). 0 of 12 such boots hung with credit1, as drakvuf also chose. A `--xen-arg sched=...`
    // comes later on the line and wins.
    if smp >= 8 {
        s.push_str(" sched=credit");
    }
    for arg in extra {
        s.push(' ');
        s.push_str(arg);
    }
    s
}

/// Checks that a dom0 argument survives QEMU's module string (no ',' and no spaces).
pub fn check_dom0_arg(arg: &str) -> Result<()> {
    if arg.contains([',', ' ', '\t', '\n']) || arg.is_empty() {
        bail!(
            "dom0 argument {arg:?} is empty or contains ',' or whitespace, which QEMU's module \
             string cannot carry"
        );
    }
    Ok(())
}

/// Where a run's boot files are.
#[derive(Debug, Clone)]
pub struct BootFiles {
    pub xen: Option<PathBuf>,
    pub dom0: PathBuf,
    pub module: Option<PathBuf>,
}

/// `-kernel/-append/-initrd` for Xen + dom0 (Xen given) or bare PVH dom0 (no Xen).
pub fn boot_args(
    files: &BootFiles,
    xen_cmdline: &str,
    dom0_args: &[String],
) -> Result<Vec<String>> {
    for a in dom0_args {
        check_dom0_arg(a)?;
    }
    let dom0 = path_arg(&files.dom0)?;
    let module = files.module.as_deref().map(path_arg).transpose()?;
    let mut args = Vec::new();
    match &files.xen {
        Some(xen) => {
            // Xen drops the first word (the image name) of the dom0 module string.
            let mut dom0_module = dom0;
            for a in dom0_args {
                dom0_module.push(' ');
                dom0_module.push_str(a);
            }
            if let Some(m) = module {
                dom0_module.push(',');
                dom0_module.push_str(&m);
            }
            args.extend([
                "-kernel".into(),
                path_arg(xen)?,
                "-append".into(),
                xen_cmdline.into(),
                "-initrd".into(),
                dom0_module,
            ]);
        }
        None => {
            args.extend([
                "-kernel".into(),
                dom0,
                "-append".into(),
                dom0_args.join(" "),
            ]);
            if let Some(m) = module {
                args.extend(["-initrd".into(), m]);
            }
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_names_round_trip() {
        for t in Topology::ALL {
            assert_eq!(Topology::from_name(t.name()), Some(*t));
        }
        assert_eq!(Topology::from_name("nope"), None);
    }

    #[test]
    fn default_topology_devices() {
        let dir = std::env::temp_dir().join(format!("image-topo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = Topology::Default
            .qemu_args(&dir, &NicForward::default())
            .unwrap();
        let joined = args.join(" ");
        assert_eq!(joined.matches("pcie-root-port").count(), 3, "{joined}");
        assert!(
            joined
                .contains("virtio-net-pci,netdev=net0,bus=rp1,disable-legacy=on,iommu_platform=on")
        );
        assert!(joined.contains("e1000e,netdev=net1,bus=rp2"));
        assert!(joined.contains("nvme,serial=dom0nvme,drive=drive0,bus=rp3"));
        assert_eq!(joined.matches("restrict=on").count(), 2);
        assert!(!joined.contains("hostfwd") && !joined.contains("guestfwd"));
        // Forwards go to the uplink's network only, loopback only, commas escaped.
        let fwd = NicForward {
            model: "e1000e".into(),
            http_port: Some(8080),
            guestfwd: Some((80, "sh -c 'a,b'".into())),
        };
        let args = Topology::Default.qemu_args(&dir, &fwd).unwrap();
        assert!(
            args.contains(&"user,id=net0,restrict=on".to_string()),
            "{args:?}"
        );
        assert!(
            args.contains(
                &"user,id=net1,restrict=on,hostfwd=tcp:127.0.0.1:8080-10.0.2.15:80,\
                  guestfwd=tcp:10.0.2.100:80-cmd:sh -c 'a,,b'"
                    .to_string()
            ),
            "{args:?}"
        );
        let img = dir.join("nvme.img");
        assert_eq!(std::fs::metadata(&img).unwrap().len(), 1024 * 1024);
        assert!(
            Topology::Minimal
                .qemu_args(&dir, &NicForward::default())
                .unwrap()
                .is_empty()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn xen_boot_args() {
        let files = BootFiles {
            xen: Some("/t/xen".into()),
            dom0: "/t/dom0".into(),
            module: Some("/t/mod".into()),
        };
        let cmdline = xen_cmdline(64, 2, &["iommu=1".into()]);
        assert_eq!(
            cmdline,
            "console=com1 com1=115200,8n1 dom0=pvh dom0_mem=64M,max:64M dom0_max_vcpus=2 \
             loglvl=all guest_loglvl=all noreboot iommu=1"
        );
        assert!(xen_cmdline(64, 8, &[]).ends_with(" noreboot sched=credit"));
        assert!(
            xen_cmdline(64, 8, &["sched=credit2".into()]).ends_with("sched=credit sched=credit2")
        );
        assert!(!xen_cmdline(64, 4, &[]).contains("sched="));
        let args = boot_args(
            &files,
            &cmdline,
            &["a=1".into(), "on-ready=qemu-exit".into()],
        )
        .unwrap();
        assert_eq!(args[0], "-kernel");
        assert_eq!(args[1], "/t/xen");
        assert_eq!(args[5], "/t/dom0 a=1 on-ready=qemu-exit,/t/mod");
    }

    #[test]
    fn bare_boot_args() {
        let files = BootFiles {
            xen: None,
            dom0: "/t/dom0".into(),
            module: None,
        };
        let args = boot_args(&files, "", &["a=1".into(), "b".into()]).unwrap();
        assert_eq!(args, ["-kernel", "/t/dom0", "-append", "a=1 b"]);
    }

    #[test]
    fn rejects_separators() {
        assert!(path_arg(Path::new("/a,b")).is_err());
        assert!(path_arg(Path::new("/a b")).is_err());
        assert!(check_dom0_arg("x=1,2").is_err());
        assert!(check_dom0_arg("x y").is_err());
        assert!(check_dom0_arg("x=1").is_ok());
    }
}

#[cfg(test)]
mod qmp_tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixListener;

    fn socket(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("qmp-test-{}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    /// A QMP server that greets, sends an event before each reply (as QEMU may), and answers
    /// each command with `answer(command-line)`.
    fn serve(
        path: &Path,
        answer: fn(&str) -> serde_json::Value,
    ) -> thread::JoinHandle<Vec<String>> {
        let l = UnixListener::bind(path).unwrap();
        thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut asked = Vec::new();
            writeln!(w, r#"{{"QMP": {{"version": {{}}, "capabilities": []}}}}"#).unwrap();
            for line in BufReader::new(s).lines() {
                let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
                writeln!(w, r#"{{"event": "RTC_CHANGE", "data": {{}}}}"#).unwrap();
                let reply = match v["execute"].as_str().unwrap() {
                    "qmp_capabilities" => serde_json::json!({"return": {}}),
                    "human-monitor-command" => {
                        let c = v["arguments"]["command-line"].as_str().unwrap().to_string();
                        let r = answer(&c);
                        asked.push(c);
                        r
                    }
                    other => panic!("unexpected {other}"),
                };
                writeln!(w, "{reply}").unwrap();
            }
            asked
        })
    }

    #[test]
    fn qemu_view_asks_each_command_and_prefixes_its_lines() {
        let p = socket("ok");
        let server = serve(&p, |c| {
            if c.starts_with("info registers") {
                serde_json::json!({"return": "\r\nCPU#0\r\nRIP=ffff82d040300000 RFL=00000202 CPL=0 HLT=1\r\n"})
            } else if c == "info irq" {
                serde_json::json!({"error": {"class": "GenericError", "desc": "no irq stats"}})
            } else {
                serde_json::json!({"return": format!("{c} says hello\n")})
            }
        });
        let lines = qemu_view(&p);
        assert_eq!(server.join().unwrap(), QEMU_VIEW_COMMANDS);
        assert!(
            lines.iter().all(|l| l.starts_with("image: qemu: ")),
            "{lines:#?}"
        );
        assert!(
            lines.contains(
                &"image: qemu: RIP=ffff82d040300000 RFL=00000202 CPL=0 HLT=1".to_string()
            )
        );
        assert!(lines.contains(&"image: qemu: (info lapic)".to_string()));
        assert!(lines.contains(&"image: qemu: info lapic says hello".to_string()));
        // An error reply is shown as QEMU gave it, and the rest still asked.
        assert!(
            lines.iter().any(|l| l.contains("no irq stats")),
            "{lines:#?}"
        );
        let _ = std::fs::remove_file(&p);
    }

    #[test]
    fn qemu_view_is_bounded_when_qemu_does_not_answer() {
        // Nothing listening: one line, at once.
        let p = socket("none");
        let lines = qemu_view(&p);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("did not answer"), "{lines:?}");
        // A socket that accepts and then says nothing: one line after the read bound.
        let l = UnixListener::bind(&p).unwrap();
        let hold = thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            thread::sleep(Duration::from_secs(4));
            drop(s);
        });
        let t = Instant::now();
        let lines = qemu_view(&p);
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("did not answer"), "{lines:?}");
        hold.join().unwrap();
        let _ = std::fs::remove_file(&p);
    }
}
