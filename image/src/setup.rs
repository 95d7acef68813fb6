//! One-time host set-up: the `x86_64-unknown-none` target, QEMU, and the dom0 build.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{is_root, run_captured, run_captured_tail, run_inherited, which};

/// The Rust target dom0 is built for.
pub const DOM0_TARGET: &str = "x86_64-unknown-none";
const QEMU: &str = "qemu-system-x86_64";
const QEMU_INSTALL: &str =
    "apt-get update && apt-get install -y --no-install-recommends qemu-system-x86";

/// Adds the `x86_64-unknown-none` target through rustup when it is not installed.
pub fn ensure_target(quiet: bool) -> Result<()> {
    if target_installed() {
        return Ok(());
    }
    if which("rustup").is_none() {
        bail!(
            "the Rust target {DOM0_TARGET} is not installed and there is no rustup to add it; \
             install it with your toolchain's installer"
        );
    }
    if !quiet {
        eprintln!("image: rustup target add {DOM0_TARGET}");
    }
    run_captured(Command::new("rustup").args(["target", "add", DOM0_TARGET]))
        .context("adding the dom0 target")?;
    Ok(())
}

fn target_installed() -> bool {
    if which("rustup").is_some()
        && let Ok(out) = Command::new("rustup")
            .args(["target", "list", "--installed"])
            .output()
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.trim() == DOM0_TARGET);
    }
    // No rustup: look in the sysroot.
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let root = String::from_utf8_lossy(&o.stdout).trim().to_string();
            Path::new(&root)
                .join("lib/rustlib")
                .join(DOM0_TARGET)
                .is_dir()
        })
        .unwrap_or(false)
}

/// Finds `qemu-system-x86_64`, installing Debian's `qemu-system-x86` when root.
pub fn ensure_qemu(quiet: bool) -> Result<PathBuf> {
    if let Some(q) = which(QEMU) {
        return Ok(q);
    }
    if !is_root() {
        bail!("{QEMU} is missing; install it with:\n  sudo sh -c '{QEMU_INSTALL}'");
    }
    if !quiet {
        eprintln!("image: {QEMU} is missing; running: {QEMU_INSTALL}");
    }
    let apt = |args: &[&str]| {
        run_captured(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .with_context(|| format!("installing QEMU failed; try by hand: {QEMU_INSTALL}"))
    };
    apt(&["update"])?;
    apt(&[
        "install",
        "-y",
        "--no-install-recommends",
        "qemu-system-x86",
    ])?;
    which(QEMU).with_context(|| format!("{QEMU} still missing after installing qemu-system-x86"))
}

/// Builds dom0 with the `dom0` profile in its own target directory (so that this works from
/// inside `cargo test`/`cargo run`, which hold the lock of the main target directory).
/// Returns the ELF path.
pub fn build_dom0(workspace: &Path, quiet: bool) -> Result<PathBuf> {
    build_bare(workspace, "dom0", quiet)
}

/// Builds the hostile test guest (the `testguest` crate) like dom0, in the same target
/// directory (they share their dependencies). Returns the ELF path.
pub fn build_testguest(workspace: &Path, quiet: bool) -> Result<PathBuf> {
    build_bare(workspace, "testguest", quiet)
}

/// Builds the `x86_64-unknown-none` binary `package` (whose binary has the same name) with
/// the `dom0` profile into `target/dom0`.
fn build_bare(workspace: &Path, package: &str, quiet: bool) -> Result<PathBuf> {
    let target_dir = workspace.join("target").join("dom0");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "-p",
            package,
            "--target",
            DOM0_TARGET,
            "--profile",
            "dom0",
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    if quiet {
        cmd.arg("--quiet");
        run_captured_tail(&mut cmd, 60).with_context(|| format!("building {package}"))?;
    } else {
        run_inherited(&mut cmd).with_context(|| format!("building {package}"))?;
    }
    let elf = target_dir.join(DOM0_TARGET).join("dom0").join(package);
    if !elf.is_file() {
        bail!("{package} built, but {} is missing", elf.display());
    }
    Ok(elf)
}
