//! Taking files out of Debian packages (`.deb`) with the host's `ar`, `tar` and `dpkg-deb`,
//! without installing them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::util::run_captured;

/// The `.deb` of `package` that `apt-get download` left in `dir`.
pub(super) fn find_deb(dir: &Path, package: &str) -> Result<PathBuf> {
    let prefix = format!("{package}_");
    fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.extension().is_some_and(|x| x == "deb")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .with_context(|| {
            format!(
                "apt-get download left no {package}_*.deb in {}",
                dir.display()
            )
        })
}

pub(super) fn deb_version(deb: &Path) -> Result<String> {
    let out = run_captured(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Extracts one member of a `.deb`'s data archive into `dest`.
pub(super) fn extract_member(deb: &Path, member: &str, dest: &Path) -> Result<()> {
    extract_members(deb, &[member.to_string()], dest)
}

/// The member names of a `.deb`'s data archive (`tar -t`).
pub(super) fn list_members(deb: &Path) -> Result<Vec<String>> {
    let scratch = std::env::temp_dir().join(format!("image-list-{}", std::process::id()));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let result = (|| {
        let data = data_member(deb)?;
        run_captured(
            Command::new("ar")
                .arg("x")
                .arg(std::path::absolute(deb)?)
                .arg(&data)
                .current_dir(&scratch),
        )?;
        let out = run_captured(
            Command::new("tar")
                .arg("-t")
                .arg("-f")
                .arg(scratch.join(&data)),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect())
    })();
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// The name of a `.deb`'s `data.tar.*` member.
pub(super) fn data_member(deb: &Path) -> Result<String> {
    let listing = run_captured(Command::new("ar").arg("t").arg(deb))?;
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::trim)
        .find(|m| m.starts_with("data.tar"))
        .map(str::to_string)
        .with_context(|| format!("{} has no data.tar member", deb.display()))
}

/// Extracts members of a `.deb`'s data archive into `dest` (the kernel package holds hundreds
/// of MiB of modules that are not needed): `ar` takes out `data.tar.*`, then one `tar` (which
/// knows every compression dpkg uses) takes out the members.
pub(super) fn extract_members(deb: &Path, members: &[String], dest: &Path) -> Result<()> {
    let data = data_member(deb)?;
    let data = data.as_str();
    let scratch = dest.join(format!(".{data}"));
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    run_captured(
        Command::new("ar")
            .arg("x")
            .arg(std::path::absolute(deb)?)
            .arg(data)
            .current_dir(&scratch),
    )?;
    let result = run_captured(
        Command::new("tar")
            .arg("-x")
            .arg("-f")
            .arg(scratch.join(data))
            .arg("-C")
            .arg(dest)
            .args(members),
    )
    .with_context(|| format!("extracting {} from {}", members.join(" "), deb.display()));
    let _ = fs::remove_dir_all(&scratch);
    result.map(drop)
}
