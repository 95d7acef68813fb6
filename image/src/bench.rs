//! `cargo image bench`: dom0 size, boot-to-ready time over several runs, and the smallest
//! `dom0_mem` that still reaches ready.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::{Outcome, RunConfig, Topology, XenVersion, prepare_with, run, target_dir};

/// Bench settings.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub runs: u32,
    pub xen: XenVersion,
    pub timeout: Duration,
    /// Bisection range for the smallest dom0_mem (MiB).
    pub mem_range: (u32, u32),
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            runs: 5,
            xen: XenVersion::V4_17,
            timeout: Duration::from_secs(90),
            // 1 MiB: below it nothing can boot (Xen itself cannot build a dom0 in 1 MiB).
            mem_range: (1, 64),
        }
    }
}

/// One measured boot.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRun {
    pub run: String,
    pub outcome: Outcome,
    pub reason: String,
    /// dom0's own entry-to-ready time (its `ready` phase), in ns of guest time.
    pub ready_ns: Option<u64>,
    pub wall_ms: u64,
    pub serial_log: String,
}

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// One probe of the dom0_mem bisection.
#[derive(Debug, Clone, Serialize)]
pub struct MemProbe {
    pub dom0_mem_mib: u32,
    pub outcome: Outcome,
    pub reason: String,
    pub run: String,
}

/// `target/bench/bench.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub configuration: Value,
    pub dom0_elf: String,
    pub dom0_elf_bytes: u64,
    pub dom0_elf_stripped_bytes: Option<u64>,
    pub runs: Vec<BenchRun>,
    pub ready_ms: Option<Stats>,
    pub wall_ms: Option<Stats>,
    /// Smallest dom0_mem (MiB) that reached ready; `None` if even the top of the range failed.
    pub min_dom0_mem_mib: Option<u32>,
    pub mem_probes: Vec<MemProbe>,
}

/// dom0's `ready` phase time: `phases` as a list of `{name, at_ns}` or an object by name.
pub fn ready_ns(dom0: &::report::BootReport) -> Option<u64> {
    dom0.phases
        .iter()
        .find(|p| p.name == "ready")
        .map(|p| p.at_ns)
}

fn stripped_size(elf: &Path) -> Option<u64> {
    let tmp = std::env::temp_dir().join(format!("image-bench-stripped-{}", std::process::id()));
    let ok = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    let done = ok(Command::new("objcopy")
        .arg("--strip-all")
        .arg(elf)
        .arg(&tmp))
        || ok(Command::new("strip").arg("-o").arg(&tmp).arg(elf));
    let size = done
        .then(|| std::fs::metadata(&tmp).ok().map(|m| m.len()))
        .flatten();
    let _ = std::fs::remove_file(&tmp);
    size
}

fn base_config(cfg: &BenchConfig) -> RunConfig {
    RunConfig {
        xen: cfg.xen,
        smp: 1,
        mem_mib: 1024,
        dom0_mem_mib: 64,
        topology: Topology::Default,
        timeout: cfg.timeout,
        quiet: true,
        ..RunConfig::default()
    }
}

/// Runs the bench, printing progress and the table, and writes `target/bench/bench.json`.
pub fn bench(cfg: &BenchConfig) -> Result<(BenchResult, PathBuf)> {
    let prepared = prepare_with(cfg.xen, false)?;
    let base = base_config(cfg);
    let configuration = serde_json::json!({
        "xen": cfg.xen.as_str(),
        "xen_package": prepared.xen_package,
        "smp": base.smp,
        "mem_mib": base.mem_mib,
        "dom0_mem_mib": base.dom0_mem_mib,
        "topology": base.topology.name(),
        "dom0_args": crate::dom0_args_for_run(&base.dom0_args),
        "runs": cfg.runs,
        "timeout_s": cfg.timeout.as_secs(),
        "accel": "tcg",
        "cpu": "qemu64,+svm,+npt",
    });
    println!(
        "bench configuration: Xen {} ({}), QEMU q35 TCG qemu64,+svm,+npt, smp 1, {} MiB, \
         dom0_mem {} MiB, topology {}, {} runs",
        cfg.xen.as_str(),
        prepared.xen_package.as_deref().unwrap_or("no Xen"),
        base.mem_mib,
        base.dom0_mem_mib,
        base.topology.name(),
        cfg.runs
    );
    let dom0_elf_bytes = std::fs::metadata(&prepared.dom0_elf)?.len();
    let stripped = stripped_size(&prepared.dom0_elf);

    let mut runs = Vec::new();
    for i in 1..=cfg.runs {
        let mut rc = base.clone();
        rc.run_name = Some(format!("bench-{i}"));
        let out = run(&rc)?;
        let ready = out.dom0().and_then(ready_ns);
        println!(
            "  run {i}/{}: {:<7} ready {:>10} wall {:>7} ms  {}",
            cfg.runs,
            out.report.outcome.as_str(),
            ready.map_or("-".to_string(), |ns| format!("{:.3} ms", ns as f64 / 1e6)),
            out.report.wall_ms,
            out.report.serial_log
        );
        runs.push(BenchRun {
            run: out.report.run.clone(),
            outcome: out.report.outcome,
            reason: out.report.reason.clone(),
            ready_ns: ready,
            wall_ms: out.report.wall_ms,
            serial_log: out.report.serial_log.clone(),
        });
    }
    let passed: Vec<&BenchRun> = runs.iter().filter(|r| r.outcome == Outcome::Pass).collect();
    let ready_ms = Stats::of(
        &passed
            .iter()
            .filter_map(|r| r.ready_ns)
            .map(|ns| ns as f64 / 1e6)
            .collect::<Vec<_>>(),
    );
    let wall_ms = Stats::of(&passed.iter().map(|r| r.wall_ms as f64).collect::<Vec<_>>());

    // The measured runs used dom0_mem 64 MiB: when they all passed, the top of the range is
    // known to reach ready and needs no probe of its own.
    let top_known_good =
        base.dom0_mem_mib == cfg.mem_range.1 && !runs.is_empty() && passed.len() == runs.len();
    let (min_mem, probes) = bisect_mem(&base, cfg.mem_range, top_known_good)?;

    let result = BenchResult {
        configuration,
        dom0_elf: prepared.dom0_elf.display().to_string(),
        dom0_elf_bytes,
        dom0_elf_stripped_bytes: stripped,
        runs,
        ready_ms,
        wall_ms,
        min_dom0_mem_mib: min_mem,
        mem_probes: probes,
    };
    print_table(&result, cfg);
    let dir = target_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("written {}", path.display());
    Ok((result, path))
}

/// Smallest dom0_mem in `[lo, hi]` that reaches ready, assuming more memory never hurts.
fn bisect_mem(
    base: &RunConfig,
    (lo, hi): (u32, u32),
    top_known_good: bool,
) -> Result<(Option<u32>, Vec<MemProbe>)> {
    let mut probes = Vec::new();
    let mut probe = |mib: u32| -> Result<bool> {
        let mut rc = base.clone();
        rc.dom0_mem_mib = mib;
        rc.run_name = Some(format!("bench-mem{mib}"));
        let out = run(&rc)?;
        println!(
            "  dom0_mem {mib:>3} MiB: {:<7} {}",
            out.report.outcome.as_str(),
            if out.passed() { "" } else { &out.report.reason }
        );
        probes.push(MemProbe {
            dom0_mem_mib: mib,
            outcome: out.report.outcome,
            reason: out.report.reason.clone(),
            run: out.report.run.clone(),
        });
        Ok(out.passed())
    };
    println!("smallest dom0_mem: bisection over {lo}..={hi} MiB");
    if top_known_good {
        println!("  dom0_mem {hi:>3} MiB: pass    (the measured runs above; no extra probe)");
    } else if !probe(hi)? {
        return Ok((None, probes));
    }
    if probe(lo)? {
        return Ok((Some(lo), probes));
    }
    let (mut bad, mut good) = (lo, hi);
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if probe(mid)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok((Some(good), probes))
}

fn print_table(r: &BenchResult, cfg: &BenchConfig) {
    let row = |name: &str, s: Option<Stats>| match s {
        Some(s) => println!(
            "{name:<28} {:>10.3} {:>10.3} {:>10.3}",
            s.median, s.min, s.max
        ),
        None => println!("{name:<28} {:>10} {:>10} {:>10}", "-", "-", "-"),
    };
    let passed = r.runs.iter().filter(|x| x.outcome == Outcome::Pass).count();
    println!();
    println!(
        "== bench: Xen {}, smp 1, QEMU 1024 MiB, dom0_mem 64 MiB, topology default, TCG ==",
        cfg.xen.as_str()
    );
    println!(
        "dom0 ELF                     {} bytes (stripped: {})",
        r.dom0_elf_bytes,
        r.dom0_elf_stripped_bytes
            .map_or("unknown".to_string(), |b| format!("{b} bytes"))
    );
    println!("runs passed                  {passed}/{}", r.runs.len());
    println!("{:<28} {:>10} {:>10} {:>10}", "", "median", "min", "max");
    row("dom0 entry→ready (guest ms)", r.ready_ms);
    row("QEMU wall (ms)", r.wall_ms);
    match r.min_dom0_mem_mib {
        Some(m) => println!(
            "smallest dom0_mem reaching ready: {m} MiB ({} probe runs, range {}..={} MiB)",
            r.mem_probes.len(),
            cfg.mem_range.0,
            cfg.mem_range.1
        ),
        None => println!(
            "smallest dom0_mem: none in {}..={} MiB reached ready ({} probes)",
            cfg.mem_range.0,
            cfg.mem_range.1,
            r.mem_probes.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap().median, 2.5);
    }

    #[test]
    fn ready_phase() {
        let r = |j: &str| ::report::BootReport::from_json(j).unwrap();
        let list =
            r(r#"{"phases": [{"name": "entry", "at_ns": 1}, {"name": "ready", "at_ns": 42}]}"#);
        assert_eq!(ready_ns(&list), Some(42));
        assert_eq!(ready_ns(&r(r#"{"phases": []}"#)), None);
        assert_eq!(ready_ns(&r("{}")), None);
    }
}
