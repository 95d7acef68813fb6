//! `cargo image bench-net`: dom0's network measured in one boot (issue 12). Two Debian DomUs
//! on dom0's switch: alpha pings beta and dom0, sends MIB MiB of random bytes to dom0's
//! discard port, then MIB MiB to beta over TCP (both ends hash it). The guests time their own
//! transfers (`/proc/uptime`, 10 ms), so the numbers are guest time, like the boot bench.
//! The report adds dom0's grant copies per hypercall. Written to `target/bench/net.json`.
//!
//! The baseline, in the same invocation: the same Debian kernel booted by QEMU directly (no
//! Xen, [`crate::guest::virtio`]) with a virtio-net NIC on QEMU's user network (`restrict=on`),
//! pinging the network's gateway and sending the same MiB over TCP to a sink on the host that
//! QEMU starts for the connection (`guestfwd` to `md5sum`), whose MD5 is compared with the
//! guest's. Same TCG, same guest clock, same `nc`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::qemu::{path_arg, run_qemu};
use crate::{DomuSpec, Outcome, RunConfig, XenVersion, run, target_dir};

/// Xen's scheduler in the bench's Xen boots (`sched=` on Xen's command line).
///
/// credit1 by default. Under QEMU's multi-threaded TCG each emulated CPU is a host thread the
/// host may deschedule at any instruction, also while it holds one of Xen's spinlocks, and the
/// other emulated CPU then spins until that thread runs again: lock-holder preemption, which
/// a real machine does not have. credit2 (Xen's default) keeps one runqueue, and one lock,
/// for both pCPUs and takes it on every wakeup and every scheduling decision; in a register
/// profile of DomU -> host (twelfth session) 4.4% of both CPUs' samples sat in the `pause`
/// loop of Xen's spinlock on that one lock (6.5% on all locks). credit1 has a runqueue per
/// pCPU and steals work with a trylock. With the host kept busy (a process burning 30% of one
/// of its two cores) DomU -> DomU was 35, 117, 46% of the baseline under credit2 and 82, 70,
/// 74% under credit1 (`docs/NETBENCH.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
pub enum XenSched {
    /// credit1 (`sched=credit`): a runqueue per pCPU.
    #[default]
    Credit,
    /// credit2 (`sched=credit2`), Xen 4.17's and 4.20's own default.
    Credit2,
}

impl XenSched {
    pub fn as_str(self) -> &'static str {
        match self {
            XenSched::Credit => "credit",
            XenSched::Credit2 => "credit2",
        }
    }

    /// The words added to Xen's command line: `sched=`, then `extra` (so that a `sched=` among
    /// them wins: Xen keeps a parameter's last value).
    pub fn with(self, extra: &[String]) -> Vec<String> {
        let mut w = vec![format!("sched={}", self.as_str())];
        w.extend(extra.iter().cloned());
        w
    }
}

/// Settings.
#[derive(Debug, Clone)]
pub struct NetBenchConfig {
    pub xen: XenVersion,
    /// MiB per transfer.
    pub mib: u64,
    pub timeout: Duration,
    /// Only the baseline boot (no Xen).
    pub baseline_only: bool,
    /// CPUs of the emulated machine, for both boots (Xen's pCPUs; the baseline guest's vCPUs).
    pub smp: u32,
    /// The NIC for the DomU → host boot (issue 13); `None`: skip that boot.
    pub uplink: Option<crate::UplinkNic>,
    /// The DomUs' `tsc_mode` (xl.cfg's). QEMU's software CPU has no invariant TSC, so under
    /// `default` Xen traps every `rdtsc` of a DomU, and a Linux guest reads the TSC for each
    /// clock read; `native` is what a host with an invariant TSC gives under `default`.
    pub tsc_mode: toolstack::bundle::TscMode,
    /// Appended to every Linux guest's kernel command line (the DomUs' and the baseline's),
    /// with a leading space or empty: e.g. ` sysctl.net.ipv4.tcp_tso_rtt_log=0` to see how
    /// the guests' TCP sizing moves the result (Linux reads `sysctl.*` parameters at boot).
    pub guest_cmdline: String,
    /// Xen's scheduler in both Xen boots.
    pub sched: XenSched,
    /// Extra words for Xen's command line, in both Xen boots (after `sched=`: a `sched=`
    /// among them wins).
    pub xen_args: Vec<String>,
    /// Whole measurements (Xen boots and baseline boot) back to back; the medians are the
    /// result. This host's load moves the baseline by 2x between boots, so one pair says little.
    pub runs: u32,
}

impl NetBenchConfig {
    /// The words added to Xen's command line: the scheduler, then `--xen-arg`'s.
    pub fn xen_words(&self) -> Vec<String> {
        self.sched.with(&self.xen_args)
    }
}

/// Several runs and their medians (`target/bench/net.json`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NetBenchSeries {
    pub runs: Vec<NetBenchResult>,
    pub median_domu_to_dom0_mib_s: Option<f64>,
    pub median_domu_to_domu_mib_s: Option<f64>,
    pub median_domu_to_host_mib_s: Option<f64>,
    pub median_baseline_mib_s: Option<f64>,
    /// Medians of each run's own share (each run's Xen boot against the baseline boot right
    /// after it), the issues' targets (>= 0.5).
    pub median_domu_to_domu_vs_baseline: Option<f64>,
    pub median_domu_to_host_vs_baseline: Option<f64>,
}

/// The median of the values present (the mean of the middle two for an even count).
pub fn median(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let mut v: Vec<f64> = values
        .into_iter()
        .flatten()
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

impl NetBenchSeries {
    pub fn of(runs: Vec<NetBenchResult>) -> NetBenchSeries {
        let m = |f: fn(&NetBenchResult) -> Option<f64>| median(runs.iter().map(f));
        NetBenchSeries {
            median_domu_to_dom0_mib_s: m(|r| r.domu_to_dom0_mib_s),
            median_domu_to_domu_mib_s: m(|r| r.domu_to_domu_mib_s),
            median_domu_to_host_mib_s: m(|r| r.domu_to_host_mib_s),
            median_baseline_mib_s: m(|r| r.baseline_mib_s),
            median_domu_to_domu_vs_baseline: m(|r| r.domu_to_domu_vs_baseline),
            median_domu_to_host_vs_baseline: m(|r| r.domu_to_host_vs_baseline),
            runs,
        }
    }
}

/// `cfg.runs` measurements back to back ([`bench_net_once`]), each printed, then the medians;
/// writes `target/bench/net.json` (every run and the medians).
pub fn bench_net(cfg: &NetBenchConfig) -> Result<NetBenchSeries> {
    let n = cfg.runs.max(1);
    let mut runs = Vec::new();
    for i in 1..=n {
        if n > 1 {
            println!("bench-net: run {i} of {n}");
        }
        runs.push(bench_net_once(cfg)?);
    }
    let series = NetBenchSeries::of(runs);
    if n > 1 {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0));
        println!("bench-net: medians of {n} runs");
        println!(
            "  DomU -> dom0 {} MiB/s, DomU -> DomU {} MiB/s, DomU -> host {} MiB/s, baseline {} MiB/s",
            f(series.median_domu_to_dom0_mib_s),
            f(series.median_domu_to_domu_mib_s),
            f(series.median_domu_to_host_mib_s),
            f(series.median_baseline_mib_s)
        );
        println!(
            "  DomU -> DomU / baseline {} (each run's own share; target >= 50%), DomU -> host / baseline {}",
            pct(series.median_domu_to_domu_vs_baseline),
            pct(series.median_domu_to_host_vs_baseline)
        );
    }
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("net.json");
    std::fs::write(&path, serde_json::to_string_pretty(&series)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("written {}", path.display());
    Ok(series)
}

/// What one run measured.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct NetBenchResult {
    pub xen: String,
    /// CPUs of the emulated machine (`--smp`): Xen's pCPUs, the baseline guest's vCPUs.
    pub cpus: u32,
    pub mib: u64,
    pub run: String,
    /// DomU → dom0's discard port, MiB/s.
    pub domu_to_dom0_mib_s: Option<f64>,
    /// DomU → DomU over TCP, MiB/s (MD5s equal at both ends).
    pub domu_to_domu_mib_s: Option<f64>,
    pub md5_match: bool,
    /// Average round trips, ms: DomU → DomU (3 pings) and DomU → dom0 (100 pings).
    pub ping_domu_ms: Option<f64>,
    pub ping_dom0_ms: Option<f64>,
    pub ping_dom0_lost: Option<u32>,
    /// On the sender's vif: `gnttab_copy` ops per `GNTTABOP_copy` hypercall.
    pub copies_per_hypercall: Option<f64>,
    /// Why a DomU → DomU transfer was slow, from the sender's kernel (`/proc/net/snmp` and
    /// `netstat`, the TCP transfer's share: after it minus after the dom0 send): segments sent,
    /// retransmitted, and retransmission timeouts (each at least 200 ms of nothing).
    pub domu_to_domu_out_segs: Option<u64>,
    pub domu_to_domu_retrans_segs: Option<u64>,
    pub domu_to_domu_timeouts: Option<u64>,
    /// How often CUBIC's HyStart ended the sender's slow start during the DomU → DomU transfer
    /// (ACK-train and delay rules together) and the mean congestion window it left at
    /// (segments). After it, Linux paces at 1.2x instead of 2x cwnd/srtt and its GSO packets
    /// (about 1 ms of the pacing rate) shrink with it.
    pub domu_to_domu_hystart_exits: Option<u64>,
    pub domu_to_domu_hystart_cwnd: Option<f64>,
    /// Of those exits, the ones by the delay rule (the round's RTT rose by max(4 ms, min
    /// RTT / 8)); the others were by the ACK-train rule (ACKs under 2 ms apart for longer
    /// than half the min RTT).
    pub domu_to_domu_hystart_by_delay: Option<u64>,
    /// The receiver's delayed ACKs over the run.
    pub domu_to_domu_delayed_acks: Option<u64>,
    /// Where the sender's and the receiver's vCPU time went during the DomU → DomU transfer
    /// (their `/proc/stat`): on one pCPU, what neither used went to dom0, Xen, or idle.
    pub domu_to_domu_sender_cpu: Option<CpuSplit>,
    pub domu_to_domu_receiver_cpu: Option<CpuSplit>,
    /// dom0's `/cpu.txt` over the DomU → DomU and the DomU → dom0 transfers.
    pub domu_to_domu_dom0: Option<Dom0Window>,
    pub domu_to_dom0_dom0: Option<Dom0Window>,
    /// Bytes per packet dom0 delivered into the receiver (its vif's RX bytes / packets: Linux
    /// sizes its TSO packets by its pacing rate, so a slow transfer sends small ones).
    pub domu_to_domu_rx_packet_bytes: Option<f64>,
    /// The baseline: the same kernel under QEMU without Xen, virtio-net to a host sink, MiB/s
    /// (MD5 of what the sink got equal to the guest's), and its ping to QEMU's gateway, ms.
    pub baseline_mib_s: Option<f64>,
    pub baseline_md5_match: bool,
    pub baseline_ping_ms: Option<f64>,
    /// The baseline sender's vCPU time during its transfer.
    pub baseline_sender_cpu: Option<CpuSplit>,
    /// DomU → DomU throughput as a share of the baseline's (the target: >= 0.5).
    pub domu_to_domu_vs_baseline: Option<f64>,
    /// Issue 13: a DomU → a sink on the host through dom0's switch and NIC uplink (the
    /// baseline's path with Xen and dom0 in it), MiB/s, the NIC, MD5 equal at the sink, and
    /// the share of the baseline (target >= 0.5 on virtio-net).
    pub domu_to_host_mib_s: Option<f64>,
    pub domu_to_host_nic: Option<String>,
    pub domu_to_host_md5_match: bool,
    pub domu_to_host_vs_baseline: Option<f64>,
    /// The DomU → host sender's vCPU time during its transfer, and dom0's `/cpu.txt` over it.
    pub domu_to_host_sender_cpu: Option<CpuSplit>,
    pub domu_to_host_dom0: Option<Dom0Window>,
    /// The DomUs' `tsc_mode`, and whether Xen trapped their `rdtsc` (dom0's report, from
    /// `XEN_DOMCTL_gettscinfo`).
    pub tsc_mode: String,
    pub tsc_emulated: bool,
    /// What `--guest-cmdline` added to the guests' kernel command lines (empty: nothing).
    pub guest_cmdline: String,
    /// Xen's scheduler (`--sched`).
    pub sched: String,
    /// The extra words on Xen's command line (`--xen-arg`).
    pub xen_args: Vec<String>,
}

/// What dom0's `/cpu.txt` changed by over a transfer (the sender reads it before and after):
/// Xen's CPU time of dom0 and of each DomU on the switch, the window, and dom0's own counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Dom0Window {
    /// Xen system time between the two reads, s.
    pub window_s: f64,
    /// CPU time Xen gave dom0 (all its vCPUs), and each DomU on the switch, s (named `d<domid>`
    /// until [`Dom0Window::name`] puts the DomU's name there).
    pub dom0_s: f64,
    pub domus_s: Vec<(String, f64)>,
    /// The pCPUs' time over the window minus everyone's CPU time: idle, s (one pCPU until
    /// [`Dom0Window::on_pcpus`] says otherwise).
    pub idle_s: f64,
    /// dom0's service passes, TSC reads, and hypercalls by kind (`hc_*` keys, `hc_` dropped).
    pub passes: u64,
    pub tsc_reads: u64,
    pub hypercalls: Vec<(String, u64)>,
    /// Each of dom0's vCPUs' running time (`d0v<N>_run_ns`), s: the service loop's vCPU 0, the
    /// watchdog's vCPU 1. Empty with a dom0 that does not say.
    pub dom0_vcpus_s: Vec<f64>,
}

impl Dom0Window {
    /// From the `before` and `after` lines (`key=value` each); `None` if either lacks a key the
    /// other has, or the clock went backwards.
    pub fn parse(before: &str, after: &str) -> Option<Dom0Window> {
        let kv = |l: &str| -> Option<Vec<(String, u64)>> {
            l.split_whitespace()
                .map(|p| {
                    let (k, v) = p.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect()
        };
        let (b, a) = (kv(before)?, kv(after)?);
        let delta = |k: &str| -> Option<u64> {
            let at = |l: &[(String, u64)]| l.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
            at(&a)?.checked_sub(at(&b)?)
        };
        let s = |ns: u64| ns as f64 / 1e9;
        let mut w = Dom0Window {
            window_s: s(delta("now_ns")?),
            dom0_s: s(delta("d0_ns")?),
            passes: delta("passes")?,
            tsc_reads: delta("tsc_reads")?,
            ..Dom0Window::default()
        };
        for id in 0.. {
            match delta(&format!("d0v{id}_run_ns")) {
                Some(d) => w.dom0_vcpus_s.push(s(d)),
                None => break,
            }
        }
        for (k, _) in &a {
            if let Some(id) = k.strip_prefix('d').and_then(|r| r.strip_suffix("_ns")) {
                if let (Ok(id), Some(d)) = (id.parse::<u16>(), delta(k))
                    && id != 0
                {
                    w.domus_s.push((format!("d{id}"), s(d)));
                }
            } else if let Some(name) = k.strip_prefix("hc_") {
                w.hypercalls.push((name.to_string(), delta(k)?));
            }
        }
        let used = w.dom0_s + w.domus_s.iter().map(|(_, t)| t).sum::<f64>();
        w.idle_s = (w.window_s - used).max(0.0);
        Some(w)
    }

    /// The window `console` shows around `what` (its `dom0 cpu before/after WHAT:` lines).
    fn from_console(console: &[String], what: &str) -> Option<Dom0Window> {
        let read = |when: &str| {
            let p = format!("DOMU-INIT: dom0 cpu {when} {what}: ");
            console.iter().find_map(|l| l.strip_prefix(p.as_str()))
        };
        Dom0Window::parse(read("before")?, read("after")?)
    }

    /// Names and idle from the run: the DomUs' names (the report's list) for `d<domid>`, idle
    /// over `pcpus` pCPUs.
    fn place(&mut self, domus: &[report::DomuSummary], pcpus: u32) {
        let names: Vec<(u64, String)> = domus.iter().map(|d| (d.domid, d.name.clone())).collect();
        self.name(&names);
        self.on_pcpus(pcpus);
    }

    /// Idle for a machine of `n` pCPUs.
    pub fn on_pcpus(&mut self, n: u32) {
        let used = self.dom0_s + self.domus_s.iter().map(|(_, t)| t).sum::<f64>();
        self.idle_s = (self.window_s * f64::from(n.max(1)) - used).max(0.0);
    }

    /// Put DomU names in place of `d<domid>`.
    pub fn name(&mut self, domus: &[(u64, String)]) {
        for (k, _) in &mut self.domus_s {
            if let Some((_, n)) = domus.iter().find(|(id, _)| format!("d{id}") == *k) {
                k.clone_from(n);
            }
        }
    }
}

impl std::fmt::Display for Dom0Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} s: dom0 {:.2} s", self.window_s, self.dom0_s)?;
        if !self.dom0_vcpus_s.is_empty() {
            let v: Vec<String> = self
                .dom0_vcpus_s
                .iter()
                .enumerate()
                .map(|(i, t)| format!("vCPU{i} {t:.2} s"))
                .collect();
            write!(f, " ({})", v.join(", "))?;
        }
        for (n, t) in &self.domus_s {
            write!(f, ", {n} {t:.2} s")?;
        }
        write!(
            f,
            ", idle {:.2} s; dom0: {} passes, {} TSC reads, hypercalls",
            self.idle_s, self.passes, self.tsc_reads
        )?;
        for (n, c) in self.hypercalls.iter().filter(|(_, c)| *c > 0) {
            write!(f, " {n} {c}")?;
        }
        Ok(())
    }
}

/// A guest vCPU's time over a transfer, seconds (`/proc/stat` deltas the guest's init prints as
/// `busy= idle= steal=` in 10 ms ticks): busy (user, system, interrupts), idle, and steal
/// (runnable while Xen ran another domain; 0 without Xen).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct CpuSplit {
    pub busy_s: f64,
    pub idle_s: f64,
    pub steal_s: f64,
}

impl CpuSplit {
    /// From a `tcp stats` line; `None` if it lacks any of the three.
    fn parse(line: &str) -> Option<CpuSplit> {
        let s = |k| tcp_stat(line, k).map(|t| t as f64 / 100.0);
        Some(CpuSplit {
            busy_s: s("busy")?,
            idle_s: s("idle")?,
            steal_s: s("steal")?,
        })
    }
}

impl std::fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "busy {:.2} s, idle {:.2} s, steal {:.2} s",
            self.busy_s, self.idle_s, self.steal_s
        )
    }
}

/// What the baseline boot measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baseline {
    pub mib_s: Option<f64>,
    pub md5_match: bool,
    pub ping_ms: Option<f64>,
    /// The sender's vCPU time during the transfer.
    pub sender_cpu: Option<CpuSplit>,
    /// dom0's `/cpu.txt` over the transfer (the DomU → host boot; none for the baseline).
    pub dom0_window: Option<Dom0Window>,
}

/// The `DOMU-INIT:` lines of a serial console (the kernel may print between them).
fn init_lines(serial: &str) -> Vec<String> {
    serial
        .lines()
        .filter_map(|l| l.find("DOMU-INIT:").map(|i| l[i..].trim_end().to_string()))
        .collect()
}

/// Parse the baseline guest's console and the sink's `md5sum` output.
pub fn parse_baseline(console: &[String], sink_md5: &str, mib: u64) -> Baseline {
    let sent = console.iter().find_map(|l| {
        l.strip_prefix(&format!("DOMU-INIT: tcp sent {mib} MiB md5 "))
            .map(str::to_string)
    });
    let mut b = Baseline::default();
    if let Some(s) = sent {
        let md5 = s.split(' ').next().unwrap_or("");
        b.md5_match = md5.len() == 32 && sink_md5.split_whitespace().next() == Some(md5);
        if s.contains(" yes from ") {
            b.mib_s = span(&s).map(|secs| mib as f64 / secs);
        }
    }
    b.ping_ms = console
        .iter()
        .find_map(|l| l.strip_prefix("DOMU-INIT: ping "))
        .and_then(rtt_avg);
    b.sender_cpu = console
        .iter()
        .find_map(|l| l.strip_prefix("DOMU-INIT: tcp stats after tcp sent: "))
        .and_then(CpuSplit::parse);
    b.dom0_window = Dom0Window::from_console(console, "tcp send");
    b
}

/// How long a transfer may send no new segment before the boot is given up (guest time, from
/// the sender's `tcp progress` lines, one every 10 s).
pub const STALL_S: f64 = 60.0;

/// Whether the guest's TCP transfer has stopped moving: its `tcp progress` lines show the same
/// `OutSegs` (segments sent, retransmissions not counted) over at least [`STALL_S`] of guest
/// time. Seen once on the baseline: QEMU's user network stopped acknowledging, the guest backed
/// off to a 104 s retransmission timeout, and the bench waited for its 900 s timeout.
pub fn transfer_stalled(serial: &str) -> Option<String> {
    let progress: Vec<(f64, u64, &str)> = serial
        .lines()
        .filter_map(|l| {
            let rest = l.trim_end_matches('\r');
            let rest = &rest[rest.find("DOMU-INIT: tcp progress at ")?..];
            let (at, state) = rest
                .strip_prefix("DOMU-INIT: tcp progress at ")?
                .split_once(" s: ")?;
            Some((at.parse().ok()?, tcp_stat(state, "OutSegs")?, state))
        })
        .collect();
    let &(t1, segs, state) = progress.last()?;
    // The earliest line of the run of lines with the last one's count.
    let t0 = progress
        .iter()
        .rev()
        .take_while(|&&(_, s, _)| s == segs)
        .last()
        .map(|&(t, _, _)| t)?;
    (t1 - t0 >= STALL_S).then(|| {
        let conn = state.split(" OutSegs=").next().unwrap_or(state);
        let timeouts = tcp_stat(state, "TCPTimeouts").map_or(String::new(), |n| {
            format!(", {n} retransmission timeouts so far")
        });
        format!("no new TCP segment from {t0:.0} s to {t1:.0} s of guest time ({conn}{timeouts})")
    })
}

/// Boot the baseline guest under QEMU without Xen and measure it (see the module docs).
pub fn baseline(mib: u64, smp: u32, timeout: Duration, extra: &str) -> Result<Baseline> {
    let qemu = crate::setup::ensure_qemu(true)?;
    let g = crate::guest::virtio::baseline_guest(&target_dir(), true)?;
    let dir = target_dir().join("bench").join("baseline");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, &g.initramfs)?;
    let sink = dir.join("sink.md5");
    let args = baseline_args(&g.vmlinuz, &initrd, &sink, mib, smp, extra)?;
    println!(
        "bench-net: baseline: Linux {} under QEMU without Xen, virtio-net ({}), {mib} MiB to a \
         host sink",
        g.kernel_version,
        g.modules.join(" ")
    );
    let watch = crate::qemu::Watch {
        timeout,
        live_log: Some(dir.join("serial.log")),
        give_up: Some(transfer_stalled),
        ..Default::default()
    };
    let f = run_qemu(&qemu, &args, &watch)?;
    let serial = String::from_utf8_lossy(&f.serial).into_owned();
    std::fs::write(dir.join("serial.log"), &serial)?;
    if let Some(why) = &f.gave_up {
        bail!(
            "the baseline guest's transfer stalled: {why}. Its peer is QEMU's user network \
             (`guestfwd` to a host sink), which stopped acknowledging; nothing of Xen or dom0 \
             is in this boot. Run the bench again; see {}",
            dir.join("serial.log").display()
        );
    }
    let console = init_lines(&serial);
    let sink_md5 = std::fs::read_to_string(&sink).unwrap_or_default();
    let b = parse_baseline(&console, &sink_md5, mib);
    if f.timed_out || b.mib_s.is_none() || !b.md5_match {
        bail!(
            "the baseline guest did not complete its transfer{} (sink md5 {:?}); see {}",
            if f.timed_out { " (timed out)" } else { "" },
            sink_md5.trim(),
            dir.join("serial.log").display()
        );
    }
    Ok(b)
}

/// QEMU's command line for the baseline: q35 under TCG like the Xen bench, one CPU, the bzImage
/// booted directly, virtio-net on a restricted user network whose 10.0.2.100:9 runs `md5sum`.
pub fn baseline_args(
    vmlinuz: &Path,
    initrd: &Path,
    sink: &Path,
    mib: u64,
    smp: u32,
    extra: &str,
) -> Result<Vec<String>> {
    let sink = path_arg(sink)?;
    if sink.contains([',', '\'', ' ']) {
        bail!(
            "the bench directory {sink} must not contain ',', ' ' or quotes (QEMU option syntax)"
        );
    }
    let append = format!(
        "console=ttyS0 quiet domu-ip=10.0.2.15/24 domu-nic=virtio domu-ping=10.0.2.2 \
         domu-tcp-send=10.0.2.100:9:{mib}{extra}"
    );
    Ok([
        "-machine",
        "q35,accel=tcg",
        "-cpu",
        "qemu64",
        "-smp",
        &smp.to_string(),
        "-m",
        &(256 + 2 * mib).to_string(),
        "-nographic",
        "-no-reboot",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-kernel",
        &path_arg(vmlinuz)?,
        "-initrd",
        &path_arg(initrd)?,
        "-append",
        &append,
        "-netdev",
        &format!("user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:9-cmd:sh -c 'md5sum > {sink}'"),
        "-device",
        "virtio-net-pci,netdev=n0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect())
}

/// `from T0 to T1` at the end of `line`: T1 - T0 seconds.
fn span(line: &str) -> Option<f64> {
    let (_, rest) = line.rsplit_once(" from ")?;
    let (t0, t1) = rest.split_once(" to ")?;
    let d = t1.trim().parse::<f64>().ok()? - t0.trim().parse::<f64>().ok()?;
    (d > 0.0).then_some(d)
}

/// The avg of "round-trip min/avg/max = a/b/c ms".
fn rtt_avg(line: &str) -> Option<f64> {
    let (_, v) = line.split_once("min/avg/max = ")?;
    v.split('/').nth(1)?.trim().parse().ok()
}

/// `KEY=N` in a `tcp stats` line.
fn tcp_stat(line: &str, key: &str) -> Option<u64> {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
}

/// Parse the guests' console lines into a result (`alpha` and `beta` consoles).
pub fn parse(alpha: &[String], beta: &[String], mib: u64) -> NetBenchResult {
    let find = |c: &[String], p: &str| c.iter().find_map(|l| l.strip_prefix(p).map(str::to_string));
    let rate = |secs: Option<f64>| secs.map(|s| mib as f64 / s);
    let mut r = NetBenchResult {
        mib,
        ..NetBenchResult::default()
    };
    if let Some(l) = find(alpha, &format!("DOMU-INIT: dom0 send {mib} MiB yes")) {
        r.domu_to_dom0_mib_s = rate(span(&l));
    }
    let sent = find(alpha, &format!("DOMU-INIT: tcp sent {mib} MiB md5 "));
    let got = find(beta, "DOMU-INIT: tcp received md5 ");
    if let (Some(s), Some(g)) = (&sent, &got) {
        let md5 = s.split(' ').next().unwrap_or("");
        r.md5_match = md5.len() == 32 && md5 == g;
        if s.contains(" yes from ") {
            r.domu_to_domu_mib_s = rate(span(s));
        }
    }
    let stat = |c: &[String], after: &str, key: &str| {
        find(c, &format!("DOMU-INIT: tcp stats after {after}: ")).and_then(|l| tcp_stat(&l, key))
    };
    let delta = |key: &str| {
        let (b, a) = (stat(alpha, "dom0 send", key), stat(alpha, "tcp sent", key));
        a.map(|a| a.saturating_sub(b.unwrap_or(0)))
    };
    r.domu_to_domu_out_segs = delta("OutSegs");
    r.domu_to_domu_retrans_segs = delta("RetransSegs");
    r.domu_to_domu_timeouts = delta("TCPTimeouts");
    r.domu_to_domu_delayed_acks = stat(beta, "tcp received", "DelayedACKs");
    let exits = delta("TCPHystartTrainDetect")
        .zip(delta("TCPHystartDelayDetect"))
        .map(|(t, d)| t + d);
    let cwnds = delta("TCPHystartTrainCwnd")
        .zip(delta("TCPHystartDelayCwnd"))
        .map(|(t, d)| t + d);
    r.domu_to_domu_hystart_exits = exits;
    r.domu_to_domu_hystart_by_delay = delta("TCPHystartDelayDetect");
    r.domu_to_domu_hystart_cwnd = exits
        .zip(cwnds)
        .filter(|&(n, _)| n > 0)
        .map(|(n, c)| c as f64 / n as f64);
    let line =
        |c: &[String], after: &str| find(c, &format!("DOMU-INIT: tcp stats after {after}: "));
    r.domu_to_domu_sender_cpu = line(alpha, "tcp sent").and_then(|l| CpuSplit::parse(&l));
    r.domu_to_domu_dom0 = Dom0Window::from_console(alpha, "tcp send");
    r.domu_to_dom0_dom0 = Dom0Window::from_console(alpha, "dom0 send");
    r.domu_to_domu_receiver_cpu = line(beta, "tcp received").and_then(|l| CpuSplit::parse(&l));
    r.ping_domu_ms = find(alpha, "DOMU-INIT: ping ").and_then(|l| rtt_avg(&l));
    if let Some(l) = find(alpha, "DOMU-INIT: dom0 ping: ") {
        r.ping_dom0_ms = rtt_avg(&l);
        r.ping_dom0_lost = l
            .split(", ")
            .find_map(|p| p.strip_suffix(" packets received"))
            .and_then(|n| n.parse::<u32>().ok())
            .map(|n| 100u32.saturating_sub(n));
    }
    r
}

/// Issue 13's path: one Debian DomU leases an address through dom0's switch and NIC uplink and
/// sends MIB MiB to the same host sink as the baseline (`guestfwd` to `md5sum`).
fn domu_to_host(cfg: &NetBenchConfig, nic: crate::UplinkNic) -> Result<Baseline> {
    let mib = cfg.mib;
    let dir = target_dir().join("bench").join("uplink");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let sink = dir.join("sink.md5");
    // dom0 leases first (its DHCP runs before the DomU has booted), so it holds QEMU's first
    // address, 10.0.2.15 (the uplink scenarios check it); were it otherwise, the reads of
    // `/cpu.txt` would fail and the run would print no CPU line for this path.
    let gamma = format!(
        "gamma:memory={},vif,tsc_mode={},cmdline=domu-ip=dhcp domu-dom0-cpu=10.0.2.15 \
         domu-tcp-send=10.0.2.100:9:{mib}{}",
        128 + 2 * mib,
        cfg.tsc_mode.as_str(),
        cfg.guest_cmdline
    );
    let rc = RunConfig {
        xen: cfg.xen,
        smp: cfg.smp,
        timeout: cfg.timeout,
        quiet: true,
        domus: vec![gamma.parse::<DomuSpec>().map_err(anyhow::Error::msg)?],
        dom0_args: vec![format!("nic={}", nic.sbdf()), "ip=dhcp".into()],
        run_name: Some(format!("bench-net-uplink-{mib}m")),
        xen_args: cfg.xen_words(),
        nic_forward: crate::qemu::NicForward {
            model: nic.qemu_model().to_string(),
            http_port: None,
            guestfwd: Some((9, format!("sh -c 'md5sum > {}'", path_arg(&sink)?))),
        },
        // gamma's peer is QEMU's user network, like the baseline's (see `transfer_stalled`).
        give_up: Some(transfer_stalled),
        ..RunConfig::default()
    };
    println!(
        "bench-net: a Debian DomU through dom0's switch and its {} uplink to a host sink, {mib} MiB",
        nic.qemu_model()
    );
    let out = run_measured(&rc)?;
    if out.report.outcome != Outcome::Pass {
        bail!(
            "the uplink run did not pass ({}): {}",
            out.report.reason,
            out.report.serial_log
        );
    }
    let console = out
        .dom0()
        .and_then(|d| d.toolstack.as_ref())
        .and_then(|t| t.domus.iter().rev().find(|d| d.name == "gamma"))
        .map(|d| d.console.clone())
        .unwrap_or_default();
    let sink_md5 = std::fs::read_to_string(&sink).unwrap_or_default();
    let mut b = parse_baseline(&console, &sink_md5, mib);
    if let Some(w) = b.dom0_window.as_mut() {
        let domus = out
            .dom0()
            .and_then(|d| d.toolstack.as_ref())
            .map(|t| &t.domus[..]);
        w.place(domus.unwrap_or_default(), cfg.smp);
    }
    if b.mib_s.is_none() || !b.md5_match {
        bail!(
            "the DomU's transfer through the uplink did not complete (sink md5 {:?}); see {}",
            sink_md5.trim(),
            out.report.serial_log
        );
    }
    Ok(b)
}

/// Boot once, measure, print a table.
pub fn bench_net_once(cfg: &NetBenchConfig) -> Result<NetBenchResult> {
    let mib = cfg.mib;
    if cfg.baseline_only {
        let b = baseline(mib, cfg.smp, cfg.timeout, &cfg.guest_cmdline)?;
        let r = NetBenchResult {
            mib,
            cpus: cfg.smp,
            baseline_mib_s: b.mib_s,
            baseline_md5_match: b.md5_match,
            baseline_ping_ms: b.ping_ms,
            baseline_sender_cpu: b.sender_cpu,
            ..NetBenchResult::default()
        };
        print_result(&r);
        return Ok(r);
    }
    let tsc = cfg.tsc_mode.as_str();
    let alpha = format!(
        "alpha:memory={},vif=00:16:3e:00:00:0a,tsc_mode={tsc},cmdline=domu-ip=10.0.0.1/24 \
         domu-ping=10.0.0.2 domu-dom0=10.0.0.254 domu-dom0-send={mib} domu-dom0-cpu=10.0.0.254 \
         domu-tcp-send=10.0.0.2:5001:{mib}{extra}",
        128 + 2 * mib,
        extra = cfg.guest_cmdline
    );
    let beta = format!(
        "beta:vif=00:16:3e:00:00:0b,tsc_mode={tsc},cmdline=domu-ip=10.0.0.2/24 domu-tcp-recv=5001\
         {}",
        cfg.guest_cmdline
    );
    let domus = [alpha.as_str(), beta.as_str()]
        .iter()
        .map(|d| d.parse::<DomuSpec>().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    let rc = RunConfig {
        xen: cfg.xen,
        smp: cfg.smp,
        timeout: cfg.timeout,
        quiet: true,
        domus,
        run_name: Some(format!("bench-net-{mib}m")),
        xen_args: cfg.xen_words(),
        ..RunConfig::default()
    };
    println!(
        "bench-net: Xen {} on {} CPUs, two Debian DomUs on dom0's switch (tsc_mode={tsc}), {mib} \
         MiB per transfer{}; Xen's command line adds {:?}",
        cfg.xen.as_str(),
        cfg.smp,
        match cfg.guest_cmdline.trim() {
            "" => String::new(),
            t => format!("; the guests' command lines add {t:?}"),
        },
        cfg.xen_words().join(" ")
    );
    let out = run_measured(&rc)?;
    if out.report.outcome != Outcome::Pass {
        bail!(
            "the run did not pass ({}): {}",
            out.report.reason,
            out.report.serial_log
        );
    }
    let domus = out
        .dom0()
        .and_then(|d| d.toolstack.as_ref())
        .map(|t| t.domus.clone())
        .unwrap_or_default();
    let console = |n: &str| {
        domus
            .iter()
            .rev()
            .find(|d| d.name == n)
            .map(|d| d.console.clone())
            .unwrap_or_default()
    };
    let mut r = parse(&console("alpha"), &console("beta"), mib);
    r.xen = cfg.xen.as_str().to_string();
    r.cpus = cfg.smp;
    r.tsc_mode = tsc.to_string();
    r.guest_cmdline = cfg.guest_cmdline.trim().to_string();
    r.sched = cfg.sched.as_str().to_string();
    r.xen_args.clone_from(&cfg.xen_args);
    r.tsc_emulated = domus.iter().any(|d| d.tsc_emulated);
    if let Some(d) = domus.iter().find(|d| d.tsc_mode != tsc) {
        bail!(
            "DomU {} runs with tsc_mode {:?} (Xen's answer), not {tsc}: {}",
            d.name,
            d.tsc_mode,
            out.report.serial_log
        );
    }
    r.run = out.report.run.clone();
    for w in [&mut r.domu_to_domu_dom0, &mut r.domu_to_dom0_dom0]
        .into_iter()
        .flatten()
    {
        w.place(&domus, cfg.smp);
    }
    if let Some(v) = first_vif(&domus, "alpha").filter(|v| v.copy_hypercalls > 0) {
        r.copies_per_hypercall = Some(v.grant_copies as f64 / v.copy_hypercalls as f64);
    }
    if let Some(v) = first_vif(&domus, "beta").filter(|v| v.rx_packets > 0) {
        r.domu_to_domu_rx_packet_bytes = Some(v.rx_bytes as f64 / v.rx_packets as f64);
    }
    if let Some(nic) = cfg.uplink {
        let h = domu_to_host(cfg, nic)?;
        r.domu_to_host_mib_s = h.mib_s;
        r.domu_to_host_md5_match = h.md5_match;
        r.domu_to_host_sender_cpu = h.sender_cpu;
        r.domu_to_host_dom0 = h.dom0_window;
        r.domu_to_host_nic = Some(nic.qemu_model().to_string());
    }
    if r.md5_match && r.domu_to_domu_mib_s.is_some() {
        let b = baseline(mib, cfg.smp, cfg.timeout, &cfg.guest_cmdline)?;
        r.baseline_mib_s = b.mib_s;
        r.baseline_md5_match = b.md5_match;
        r.baseline_ping_ms = b.ping_ms;
        r.baseline_sender_cpu = b.sender_cpu;
        r.domu_to_domu_vs_baseline = r.domu_to_domu_mib_s.zip(b.mib_s).map(|(d, b)| d / b);
        r.domu_to_host_vs_baseline = r.domu_to_host_mib_s.zip(b.mib_s).map(|(d, b)| d / b);
    }
    print_result(&r);
    println!("  run: {}", out.report.serial_log);
    if !r.md5_match || r.domu_to_domu_mib_s.is_none() || r.domu_to_dom0_mib_s.is_none() {
        bail!("a transfer did not complete; see {}", out.report.serial_log);
    }
    Ok(r)
}

fn print_result(r: &NetBenchResult) {
    let f = |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.2} {unit}"));
    println!(
        "  DomU -> dom0 (discard)    {}",
        f(r.domu_to_dom0_mib_s, "MiB/s")
    );
    println!(
        "  DomU -> DomU (TCP)        {}  (MD5 {})",
        f(r.domu_to_domu_mib_s, "MiB/s"),
        if r.md5_match {
            "equal"
        } else {
            "DIFFERENT or missing"
        }
    );
    println!("  ping DomU -> DomU avg     {}", f(r.ping_domu_ms, "ms"));
    println!(
        "  ping DomU -> dom0 avg     {}  ({} of 100 lost)",
        f(r.ping_dom0_ms, "ms"),
        r.ping_dom0_lost.map_or("-".to_string(), |n| n.to_string())
    );
    println!(
        "  grant copies/hypercall    {}",
        f(r.copies_per_hypercall, "")
    );
    let n = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    println!(
        "  DomU -> DomU TCP          {} segments, {} retransmitted, {} timeouts; receiver {} delayed ACKs; {} B per packet into it",
        n(r.domu_to_domu_out_segs),
        n(r.domu_to_domu_retrans_segs),
        n(r.domu_to_domu_timeouts),
        n(r.domu_to_domu_delayed_acks),
        r.domu_to_domu_rx_packet_bytes
            .map_or("-".to_string(), |b| format!("{b:.0}"))
    );
    match (r.domu_to_domu_hystart_exits, r.domu_to_domu_hystart_cwnd) {
        (Some(0), _) => println!("  DomU -> DomU slow start   not ended by HyStart"),
        (Some(n), Some(c)) => println!(
            "  DomU -> DomU slow start   ended by HyStart {n} time(s) ({} by its delay rule, the \
             others by its ACK-train rule), at a cwnd of {c:.0} segments",
            r.domu_to_domu_hystart_by_delay.unwrap_or(0)
        ),
        _ => {}
    }
    let cpu = |c: Option<CpuSplit>| c.map_or("-".to_string(), |c| c.to_string());
    println!(
        "  DomU -> DomU vCPU time    sender {}; receiver {}",
        cpu(r.domu_to_domu_sender_cpu),
        cpu(r.domu_to_domu_receiver_cpu)
    );
    for (what, w) in [
        ("DomU -> dom0", &r.domu_to_dom0_dom0),
        ("DomU -> DomU", &r.domu_to_domu_dom0),
        ("DomU -> host", &r.domu_to_host_dom0),
    ] {
        if let Some(w) = w {
            println!("  CPU during {what}: {w}");
        }
    }
    println!(
        "  baseline (no Xen, virtio) {}  (MD5 {}), ping gateway avg {}",
        f(r.baseline_mib_s, "MiB/s"),
        if r.baseline_md5_match {
            "equal"
        } else {
            "DIFFERENT or missing"
        },
        f(r.baseline_ping_ms, "ms")
    );
    println!(
        "  baseline vCPU time        sender {}",
        cpu(r.baseline_sender_cpu)
    );
    if let Some(nic) = &r.domu_to_host_nic {
        println!(
            "  DomU -> host via {nic:<11} {}  (MD5 {}); sender {}",
            f(r.domu_to_host_mib_s, "MiB/s"),
            if r.domu_to_host_md5_match {
                "equal"
            } else {
                "DIFFERENT or missing"
            },
            cpu(r.domu_to_host_sender_cpu)
        );
    }
    if let Some(v) = r.domu_to_host_vs_baseline {
        println!(
            "  DomU -> host / baseline   {:.0}% (target >= 50% on virtio-net)",
            v * 100.0
        );
    }
    if let Some(v) = r.domu_to_domu_vs_baseline {
        println!(
            "  DomU -> DomU / baseline   {:.0}% (target >= 50%)",
            v * 100.0
        );
    }
    if !r.tsc_mode.is_empty() {
        println!(
            "  DomUs' tsc_mode           {} (rdtsc {} by Xen)",
            r.tsc_mode,
            if r.tsc_emulated { "trapped" } else { "native" }
        );
    }
}

/// Boot for a measurement. A boot during which the emulated machine stood still (the
/// harness's silence: a minute without console output with QEMU idle, e.g. the emulator's lost
/// wakeup, see README, Troubleshooting) measured the freeze, not the network: it is booted once
/// more, and said so. If that boot froze too, its numbers are kept and the line says so.
fn run_measured(rc: &RunConfig) -> Result<crate::RunOutcome> {
    let out = run(rc)?;
    if out.report.silences.is_empty() {
        return Ok(out);
    }
    println!(
        "bench-net: the emulated machine stood still for a minute or more during this boot \
         ({}; {}): its transfer times measure that, so it is booted once more",
        freeze(&out),
        out.report.serial_log
    );
    let again = run(rc)?;
    if !again.report.silences.is_empty() {
        println!(
            "bench-net: it stood still again ({}; {}): these numbers include the freeze",
            freeze(&again),
            again.report.serial_log
        );
    }
    Ok(again)
}

/// What kind of standstill a boot's silences were.
fn freeze(out: &crate::RunOutcome) -> &'static str {
    if out
        .report
        .silences
        .iter()
        .any(|s| s.qemu_lost_wakeup.is_some())
    {
        "QEMU's lost wakeup"
    } else {
        "console silent with QEMU idle"
    }
}

/// DomU `name`'s first vif in the report (the last DomU of that name, as for its console: a
/// restarted one is the one that ran the transfer).
fn first_vif<'a>(domus: &'a [report::DomuSummary], name: &str) -> Option<&'a report::VifSummary> {
    domus
        .iter()
        .rev()
        .find(|d| d.name == name)
        .and_then(|d| d.vifs.first())
}

#[cfg(test)]
mod tests {

    #[test]
    fn medians_of_runs() {
        assert_eq!(median([]), None);
        assert_eq!(median([None, None]), None);
        assert_eq!(median([Some(3.0)]), Some(3.0));
        assert_eq!(
            median([Some(0.62), None, Some(0.37), Some(0.45)]),
            Some(0.45)
        );
        assert_eq!(
            median([Some(1.0), Some(4.0), Some(2.0), Some(3.0)]),
            Some(2.5)
        );
        assert_eq!(median([Some(f64::NAN), Some(1.0)]), Some(1.0));
        let run = |d: f64, b: f64| NetBenchResult {
            domu_to_domu_mib_s: Some(d),
            baseline_mib_s: Some(b),
            domu_to_domu_vs_baseline: Some(d / b),
            ..NetBenchResult::default()
        };
        // The share is the median of each run's own share, not the ratio of the medians.
        let s = NetBenchSeries::of(vec![run(4.0, 8.0), run(6.0, 6.0), run(3.0, 12.0)]);
        assert_eq!(s.median_domu_to_domu_mib_s, Some(4.0));
        assert_eq!(s.median_baseline_mib_s, Some(8.0));
        assert_eq!(s.median_domu_to_domu_vs_baseline, Some(0.5));
        assert_eq!(s.median_domu_to_host_vs_baseline, None);
        assert_eq!(s.runs.len(), 3);
    }

    use super::*;

    #[test]
    fn parses_what_the_guest_init_prints() {
        let alpha: Vec<String> = [
            "DOMU-INIT: ping 10.0.0.2 ok (round-trip min/avg/max = 8.717/16.368/21.107 ms)",
            "DOMU-INIT: dom0 ping: 100 packets transmitted, 98 packets received, 2% packet loss; round-trip min/avg/max = 1.000/2.500/9.000 ms",
            "DOMU-INIT: dom0 send 64 MiB yes from 30.10 to 62.10",
            "DOMU-INIT: tcp sent 64 MiB md5 1b77e79fa446831a77eadecd617e9c90 yes from 63.00 to 95.00",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let beta = vec![
            "DOMU-INIT: tcp received md5 1b77e79fa446831a77eadecd617e9c90".to_string(),
            "DOMU-INIT: tcp stats after tcp received: OutSegs=9 RetransSegs=0 TCPTimeouts=0 \
             TCPFastRetrans=0 TCPLossProbes=0 DelayedACKs=17 TCPOFOQueue=0"
                .to_string(),
        ];
        let r = parse(&alpha, &beta, 64);
        assert_eq!(r.domu_to_domu_delayed_acks, Some(17));
        // No stats from the sender: none reported, nothing guessed.
        assert_eq!(r.domu_to_domu_retrans_segs, None);
        assert_eq!(r.domu_to_dom0_mib_s, Some(2.0));
        assert_eq!(r.domu_to_domu_mib_s, Some(2.0));
        assert!(r.md5_match);
        assert_eq!(r.ping_domu_ms, Some(16.368));
        assert_eq!(r.ping_dom0_ms, Some(2.5));
        assert_eq!(r.ping_dom0_lost, Some(2));
        // The sender's counters: the TCP transfer's share is after it minus after the dom0
        // send.
        let mut alpha2 = alpha.clone();
        alpha2.insert(
            3,
            "DOMU-INIT: tcp stats after dom0 send: OutSegs=23000 RetransSegs=4 TCPTimeouts=1 \
             TCPFastRetrans=0 TCPLossProbes=2 DelayedACKs=0 TCPOFOQueue=0"
                .into(),
        );
        alpha2.push(
            "DOMU-INIT: tcp stats after tcp sent: OutSegs=46500 RetransSegs=10 TCPTimeouts=4 \
             TCPFastRetrans=1 TCPLossProbes=3 DelayedACKs=0 TCPOFOQueue=0 \
             TCPHystartTrainDetect=1 TCPHystartTrainCwnd=90 TCPHystartDelayDetect=1 \
             TCPHystartDelayCwnd=40 busy=1250 idle=300 steal=1650"
                .into(),
        );
        let r = parse(&alpha2, &beta, 64);
        // The sender's vCPU time over the transfer (ticks of 10 ms); the receiver printed none.
        assert_eq!(
            r.domu_to_domu_sender_cpu,
            Some(CpuSplit {
                busy_s: 12.5,
                idle_s: 3.0,
                steal_s: 16.5
            })
        );
        assert_eq!(r.domu_to_domu_receiver_cpu, None);
        assert_eq!(CpuSplit::parse("busy=1 idle=2"), None);
        assert_eq!(r.domu_to_domu_out_segs, Some(23500));
        assert_eq!(r.domu_to_domu_retrans_segs, Some(6));
        assert_eq!(r.domu_to_domu_timeouts, Some(3));
        // HyStart: the dom0 send's line has no such counters (an older kernel's or init's),
        // so all of the TCP transfer's count; the mean cwnd at its exits.
        assert_eq!(r.domu_to_domu_hystart_exits, Some(2));
        assert_eq!(r.domu_to_domu_hystart_cwnd, Some(65.0));
        assert_eq!(r.domu_to_domu_hystart_by_delay, Some(1));
        // Two exits (cwnd 90 and 40) already before the transfer: this transfer none.
        let mut alpha3 = alpha2.clone();
        alpha3[3].push_str(
            " TCPHystartTrainDetect=1 TCPHystartTrainCwnd=90 TCPHystartDelayDetect=1 \
             TCPHystartDelayCwnd=40",
        );
        let r3 = parse(&alpha3, &beta, 64);
        assert_eq!(r3.domu_to_domu_hystart_exits, Some(0));
        assert_eq!(r3.domu_to_domu_hystart_cwnd, None);
        assert_eq!(tcp_stat("OutSegs=1 RetransSegs=x", "RetransSegs"), None);
        assert_eq!(tcp_stat("OutSegs=1 XOutSegs=2", "OutSegs"), Some(1));
        // A different hash or a failed send is not a measurement.
        let beta = vec!["DOMU-INIT: tcp received md5 ffff".to_string()];
        assert!(!parse(&alpha, &beta, 64).md5_match);
        assert_eq!(parse(&alpha, &[], 8).domu_to_domu_mib_s, None);
    }

    /// The baseline stall seen on 2026-12-06 (its console, shortened): given up once a minute
    /// of guest time passed without a new segment; a moving or too short one is not.
    #[test]
    fn a_transfer_that_stopped_moving_is_given_up() {
        let line = |t: f64, segs: u64, timeouts: u64| {
            format!(
                "DOMU-INIT: tcp progress at {t:.2} s: cwnd=1 ssthresh=53 rto=104440ms \
                 queues=0009D26F:00000000 OutSegs={segs} RetransSegs=0 TCPTimeouts={timeouts}\r\n"
            )
        };
        let mut console = String::from("DOMU-INIT: up 6.1.0-57-amd64 vcpus=1\n");
        console += &line(38.2, 26100, 0);
        for k in 0..6u32 {
            console += &line(48.3 + 10.0 * f64::from(k), 26238, 3 + u64::from(k));
        }
        // 50 s of guest time without a new segment: not yet.
        assert_eq!(transfer_stalled(&console), None);
        console += &line(108.5, 26238, 9);
        let why = transfer_stalled(&console).expect("stalled");
        assert!(why.contains("from 48 s to 108 s"), "{why}");
        assert!(why.contains("cwnd=1 ssthresh=53 rto=104440ms"), "{why}");
        assert!(why.contains("9 retransmission timeouts"), "{why}");
        // It moved again: not stalled.
        console += &line(118.6, 26300, 9);
        assert_eq!(transfer_stalled(&console), None);
        // A DomU's line as dom0 relays it (`[name] ` first) counts too; a garbled one does
        // not; no lines, no verdict.
        let relayed = "[gamma] DOMU-INIT: tcp progress at 10.00 s: cwnd=5 OutSegs=7\n\
                       [gamma] DOMU-INIT: tcp progress at x s: OutSegs=8\n\
                       [gamma] DOMU-INIT: tcp progress at 75.00 s: cwnd=1 OutSegs=7\n";
        assert_eq!(
            transfer_stalled(relayed).as_deref(),
            Some("no new TCP segment from 10 s to 75 s of guest time (cwnd=1)")
        );
        assert_eq!(transfer_stalled(""), None);
    }

    #[test]
    fn dom0_window_is_the_difference_of_two_cpu_pages() {
        let before = "now_ns=1000000000 passes=10 tsc_reads=20 hc_grant_table_op=5 \
                      hc_sched_op=10 hc_other=1 d0_ns=500000000 d1_ns=2000000000 d2_ns=100";
        let after = "now_ns=11000000000 passes=1010 tsc_reads=2020 hc_grant_table_op=805 \
                     hc_sched_op=1010 hc_other=1 d0_ns=4500000000 d1_ns=4000000000 \
                     d2_ns=2000000100";
        let mut w = Dom0Window::parse(before, after).unwrap();
        w.name(&[(1, "alpha".into()), (2, "beta".into())]);
        assert_eq!(w.window_s, 10.0);
        assert_eq!(w.dom0_s, 4.0);
        assert_eq!(
            w.domus_s,
            vec![("alpha".to_string(), 2.0), ("beta".to_string(), 2.0)]
        );
        assert_eq!(w.idle_s, 2.0);
        w.on_pcpus(2);
        assert_eq!(w.idle_s, 12.0);
        w.on_pcpus(1);
        assert_eq!((w.passes, w.tsc_reads), (1000, 2000));
        assert_eq!(
            w.hypercalls,
            vec![
                ("grant_table_op".to_string(), 800),
                ("sched_op".to_string(), 1000),
                ("other".to_string(), 0)
            ]
        );
        let shown = w.to_string();
        assert!(shown.starts_with("10.00 s: dom0 4.00 s, alpha 2.00 s, beta 2.00 s, idle 2.00 s"));
        assert!(
            shown.ends_with("hypercalls grant_table_op 800 sched_op 1000"),
            "{shown}"
        );
        assert!(w.dom0_vcpus_s.is_empty());
        // With dom0's vCPUs' running times: each one's share, named in the line; a vCPU only
        // one read has is left out with those after it.
        let v = |t: &str, r0: u64, r1: u64| format!("{t} d0v0_run_ns={r0} d0v1_run_ns={r1}");
        let w = Dom0Window::parse(&v(before, 0, 0), &v(after, 3_500_000_000, 500_000_000)).unwrap();
        assert_eq!(w.dom0_vcpus_s, vec![3.5, 0.5]);
        assert_eq!(w.domus_s.len(), 2, "{:?}", w.domus_s);
        assert!(
            w.to_string()
                .starts_with("10.00 s: dom0 4.00 s (vCPU0 3.50 s, vCPU1 0.50 s), d1 2.00 s"),
            "{w}"
        );
        let w = Dom0Window::parse(&v(before, 0, 0), &format!("{after} d0v0_run_ns=7")).unwrap();
        assert_eq!(w.dom0_vcpus_s, vec![7e-9]);
        // A lost or garbled read, a counter going backwards, a key missing: no window.
        assert_eq!(Dom0Window::parse("", after), None);
        assert_eq!(Dom0Window::parse(before, "now_ns=x"), None);
        assert_eq!(Dom0Window::parse(after, before), None);
        assert_eq!(Dom0Window::parse("now_ns=1", "now_ns=2 d0_ns=1"), None);
    }

    #[test]
    fn parses_the_baseline_console_and_sink() {
        let serial = "[    1.0] virtio_net virtio0 eth0: renamed\r\n\
            DOMU-INIT: ping 10.0.2.2 ok (round-trip min/avg/max = 0.5/0.750/1.0 ms)\r\n\
            junk DOMU-INIT: tcp sent 8 MiB md5 1b77e79fa446831a77eadecd617e9c90 yes from 3.00 to 5.00\r\n";
        let c = init_lines(serial);
        let b = parse_baseline(&c, "1b77e79fa446831a77eadecd617e9c90  -\n", 8);
        assert_eq!(b.mib_s, Some(4.0));
        assert!(b.md5_match);
        assert_eq!(b.ping_ms, Some(0.75));
        assert_eq!(b.dom0_window, None);
        // The DomU → host boot: the sender read dom0's /cpu.txt around its transfer.
        let mut c2 = c.clone();
        c2.push(
            "DOMU-INIT: dom0 cpu before tcp send: now_ns=0 passes=0 tsc_reads=0 d0_ns=0".into(),
        );
        c2.push(
            "DOMU-INIT: dom0 cpu after tcp send: now_ns=2000000000 passes=9 tsc_reads=9 \
             d0_ns=500000000"
                .into(),
        );
        let w = parse_baseline(&c2, "", 8).dom0_window.unwrap();
        assert_eq!(
            (w.window_s, w.dom0_s, w.idle_s, w.passes),
            (2.0, 0.5, 1.5, 9)
        );
        assert!(!parse_baseline(&c, "", 8).md5_match);
        assert!(!parse_baseline(&c, "ffff  -", 8).md5_match);
        let args = baseline_args(
            Path::new("/k"),
            Path::new("/i"),
            Path::new("/s.md5"),
            8,
            2,
            "",
        )
        .unwrap();
        assert!(
            args.iter()
                .any(|a| a.contains("guestfwd=tcp:10.0.2.100:9-cmd:sh -c 'md5sum > /s.md5'"))
        );
        assert!(
            args.iter()
                .any(|a| a.contains("domu-tcp-send=10.0.2.100:9:8"))
        );
        assert!(
            baseline_args(
                Path::new("/k"),
                Path::new("/i"),
                Path::new("/a'b"),
                8,
                2,
                ""
            )
            .is_err()
        );
    }
}
