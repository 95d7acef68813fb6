//! Fetches a Xen hypervisor binary from Debian's `xen-hypervisor-*-amd64` packages.
//!
//! No root is needed and the system's apt state is never touched: apt runs with a private
//! sources file, lists directory, cache and an empty dpkg status. The archive URI comes from
//! this machine's own apt configuration, so nothing here names a package archive host.
//!
//! Cache layout: `<workspace>/target/xen/<ver>/xen` (decompressed ELF that QEMU's multiboot
//! loader boots) and `<workspace>/target/xen/<ver>/package.txt` (`<package> <version>`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::XenVersion;
use crate::util::{is_root, run_captured, tail_lines};

/// A fetched Xen binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenBinary {
    /// The decompressed hypervisor ELF.
    pub elf: PathBuf,
    /// `<package name> <package version>`, as in `package.txt`.
    pub package: String,
}

/// Where one Xen version is found in Debian.
#[derive(Debug, Clone, Copy)]
struct Origin {
    package: &'static str,
    /// Path of the gzipped hypervisor inside the package.
    gz_path: &'static str,
    /// The Debian release whose main archive carries this package.
    suite: &'static str,
}

fn origin(xen: XenVersion) -> Option<Origin> {
    match xen {
        XenVersion::V4_17 => Some(Origin {
            package: "xen-hypervisor-4.17-amd64",
            gz_path: "boot/xen-4.17-amd64.gz",
            suite: "bookworm",
        }),
        XenVersion::V4_20 => Some(Origin {
            package: "xen-hypervisor-4.20-amd64",
            gz_path: "boot/xen-4.20-amd64.gz",
            suite: "trixie",
        }),
        XenVersion::None => None,
    }
}

/// Returns the cached Xen for `xen`, downloading it first if needed.
pub fn fetch(xen: XenVersion, target_dir: &Path, quiet: bool) -> Result<XenBinary> {
    let Some(origin) = origin(xen) else {
        bail!("--xen none runs without Xen: there is nothing to fetch");
    };
    let dir = target_dir.join("xen").join(xen.as_str());
    let elf = dir.join("xen");
    let package_txt = dir.join("package.txt");
    if elf.is_file() && package_txt.is_file() {
        let package = fs::read_to_string(&package_txt)?.trim().to_string();
        return Ok(XenBinary { elf, package });
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if !quiet {
        eprintln!(
            "image: fetching Xen {} (Debian package {}) into {}",
            xen.as_str(),
            origin.package,
            dir.display()
        );
    }
    let work = dir.join(format!("work-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let result = download_and_unpack(origin, &work, &dir);
    let _ = fs::remove_dir_all(&work);
    let package = result.with_context(|| {
        format!(
            "fetching Xen {} from Debian package {}",
            xen.as_str(),
            origin.package
        )
    })?;
    if !quiet {
        eprintln!(
            "image: Xen {} ready: {} ({package})",
            xen.as_str(),
            elf.display()
        );
    }
    Ok(XenBinary { elf, package })
}

fn download_and_unpack(origin: Origin, work: &Path, dir: &Path) -> Result<String> {
    let sources = private_sources(origin.suite)?;
    let apt = AptPrivate::create(work, &sources)?;
    apt.run(&["update"], work)?;
    apt.run(&["download", origin.package], work)?;
    let deb = fs::read_dir(work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", work.display()))?;
    let version = run_captured(Command::new("dpkg-deb").arg("-f").arg(&deb).arg("Version"))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let unpacked = work.join("unpacked");
    run_captured(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let gz = unpacked.join(origin.gz_path);
    if !gz.is_file() {
        bail!("{} has no {}", deb.display(), origin.gz_path);
    }
    let elf = run_captured(Command::new("gzip").arg("-dc").arg(&gz))?.stdout;
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) {
        bail!("{} did not decompress to an ELF file", gz.display());
    }
    let package = format!("{} {version}", origin.package);
    // package.txt first, the ELF last: the cache counts as complete only when both exist.
    write_atomic(&dir.join("package.txt"), format!("{package}\n").as_bytes())?;
    write_atomic(&dir.join("xen"), &elf)?;
    Ok(package)
}

/// Writes `data` to `path` through a temporary file and a rename, so a reader never sees half
/// a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

/// apt-get (and apt-cache) with private state under one directory: a private sources file,
/// lists directory, cache and an empty dpkg status. Used for Xen here and for the DomU guest
/// in [`crate::guest`].
pub(crate) struct AptPrivate {
    options: Vec<String>,
}

impl AptPrivate {
    /// Lays out the private state under `work` with `sources` (deb822 text).
    pub(crate) fn create(work: &Path, sources: &str) -> Result<Self> {
        let parts = work.join("sources.list.d");
        let lists = work.join("lists");
        let cache = work.join("cache");
        fs::create_dir_all(&parts)?;
        fs::create_dir_all(lists.join("partial"))?;
        fs::create_dir_all(cache.join("archives").join("partial"))?;
        let list = work.join("private.sources");
        fs::write(&list, sources)?;
        let status = work.join("status");
        fs::write(&status, "")?;
        let mut options = vec![
            format!("Dir::Etc::SourceList={}", list.display()),
            format!("Dir::Etc::SourceParts={}", parts.display()),
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            format!("Dir::State::Status={}", status.display()),
            "Acquire::Languages=none".to_string(),
        ];
        if is_root() {
            // Root apt drops to the `_apt` user for downloads, which cannot write here.
            options.push("APT::Sandbox::User=root".to_string());
        }
        Ok(Self { options })
    }

    /// Runs `apt-get -q ARGS` in `cwd` (where `download` leaves its `.deb` files).
    pub(crate) fn run(&self, args: &[&str], cwd: &Path) -> Result<()> {
        self.tool("apt-get", args, cwd).map(drop)
    }

    /// Runs `apt-cache ARGS` on the private state and returns its standard output.
    pub(crate) fn query(&self, args: &[&str], cwd: &Path) -> Result<String> {
        self.tool("apt-cache", args, cwd)
    }

    fn tool(&self, program: &str, args: &[&str], cwd: &Path) -> Result<String> {
        let mut cmd = Command::new(program);
        cmd.arg("-q");
        for option in &self.options {
            cmd.arg("-o").arg(option);
        }
        cmd.args(args).current_dir(cwd).env("LC_ALL", "C");
        let out = run_captured(&mut cmd)?;
        // `apt-get update` exits 0 even when an index could not be fetched.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.lines().any(|l| l.starts_with("E:")) {
            bail!(
                "`{program} {}` reported errors:\n{}",
                args.join(" "),
                tail_lines(&stderr, 15)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// One apt source entry, in deb822 terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceEntry {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// A keyring path or an inline key block (continuation lines kept verbatim).
    pub signed_by: Option<String>,
}

impl SourceEntry {
    fn to_deb822(&self) -> String {
        let mut s = format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\n",
            self.uris.join(" "),
            self.suites.join(" "),
            self.components.join(" ")
        );
        if let Some(key) = &self.signed_by {
            s.push_str(&format!("Signed-By: {key}\n"));
        }
        s
    }
}

/// Parses deb822 `.sources` text. Entries with `Enabled: no` are left out.
pub fn parse_deb822(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut flush = |fields: &mut Vec<(String, String)>| {
        if fields.is_empty() {
            return;
        }
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        let words = |key: &str| {
            get(key)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let enabled = get("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        if enabled {
            entries.push(SourceEntry {
                types: words("Types"),
                uris: words("URIs"),
                suites: words("Suites"),
                components: words("Components"),
                signed_by: get("Signed-By").map(|v| v.trim_end().to_string()),
            });
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            flush(&mut fields);
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push('\n');
                value.push_str(line);
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    flush(&mut fields);
    entries
}

/// Parses one-line-style `sources.list` text (`deb [opts] uri suite comp...`).
pub fn parse_one_line(text: &str) -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(after) = rest.strip_prefix('[') {
            let Some((opts, tail)) = after.split_once(']') else {
                continue;
            };
            for opt in opts.split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = tail;
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        entries.push(SourceEntry {
            types: vec!["deb".into()],
            uris: vec![uri.into()],
            suites: vec![suite.into()],
            components: words.map(str::to_string).collect(),
            signed_by,
        });
    }
    entries
}

/// Every enabled source entry of this machine's apt configuration.
fn system_entries() -> Vec<SourceEntry> {
    let mut entries = Vec::new();
    if let Ok(text) = fs::read_to_string("/etc/apt/sources.list") {
        entries.extend(parse_one_line(&text));
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            match path.extension().and_then(|x| x.to_str()) {
                Some("sources") => entries.extend(parse_deb822(&text)),
                Some("list") => entries.extend(parse_one_line(&text)),
                _ => {}
            }
        }
    }
    entries
}

/// This machine's release codename, from `/etc/os-release`.
fn codename() -> Result<String> {
    let text = fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    codename_from_os_release(&text).context("/etc/os-release names no VERSION_CODENAME")
}

fn codename_from_os_release(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| *k == "VERSION_CODENAME")
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// Builds the private sources text that reaches `suite` through this machine's own archive.
pub(crate) fn private_sources(suite: &str) -> Result<String> {
    let entries = system_entries();
    let codename = codename()?;
    sources_for(suite, &codename, &entries).with_context(|| {
        format!(
            "this machine's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d) \
             have no 'deb' entry for its release '{codename}'"
        )
    })
}

/// The sources text for `suite`, given the machine's `codename` and its entries.
///
/// * The machine runs `suite` itself: its own entries for that release family
///   (`bookworm`, `bookworm-updates`, `bookworm-security`, ...).
/// * Otherwise: one entry with the URI and keyring of the machine's main archive entry (the one
///   whose suite is exactly the codename), suite `suite`, component `main`.
pub fn sources_for(suite: &str, codename: &str, entries: &[SourceEntry]) -> Option<String> {
    let family = |s: &str| s == codename || s.starts_with(&format!("{codename}-"));
    let debs = entries
        .iter()
        .filter(|e| e.types.iter().any(|t| t == "deb") && !e.uris.is_empty());
    if suite == codename {
        let mut out = String::new();
        for e in debs {
            let suites: Vec<String> = e.suites.iter().filter(|s| family(s)).cloned().collect();
            if suites.is_empty() {
                continue;
            }
            let entry = SourceEntry {
                suites,
                ..e.clone()
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&entry.to_deb822());
        }
        return (!out.is_empty()).then_some(out);
    }
    let main = debs
        .clone()
        .find(|e| e.suites.iter().any(|s| s == codename))?;
    let entry = SourceEntry {
        types: vec!["deb".into()],
        uris: vec![main.uris[0].clone()],
        suites: vec![suite.into()],
        components: vec!["main".into()],
        signed_by: main.signed_by.clone(),
    };
    Some(entry.to_deb822())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Example archive names only; the real ones come from the machine at run time.
    const DEB822: &str = "\
Types: deb
# a comment
URIs: http://archive.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://archive.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://other.invalid/repo
Suites: nodistro
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 abc
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb-src
URIs: http://archive.invalid/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://archive.invalid/disabled
Suites: bookworm
Components: main
";

    #[test]
    fn parses_deb822() {
        let e = parse_deb822(DEB822);
        assert_eq!(e.len(), 4);
        assert_eq!(e[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(e[1].uris, ["http://archive.invalid/debian-security"]);
        let key = e[2].signed_by.as_deref().unwrap();
        assert!(key.starts_with("\n -----BEGIN PGP"), "{key:?}");
        assert!(key.ends_with("-----END PGP PUBLIC KEY BLOCK-----"));
        assert_eq!(e[3].types, ["deb-src"]);
    }

    #[test]
    fn parses_one_line() {
        let text = "# comment\n\
            deb [arch=amd64 signed-by=/k.gpg] http://archive.invalid/debian bookworm main contrib\n\
            deb-src http://archive.invalid/debian bookworm main\n\
            deb http://archive.invalid/debian-security bookworm-security main # trailing\n";
        let e = parse_one_line(text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(e[0].components, ["main", "contrib"]);
        assert_eq!(e[1].suites, ["bookworm-security"]);
        assert_eq!(e[1].signed_by, None);
    }

    #[test]
    fn same_release_copies_the_family() {
        let e = parse_deb822(DEB822);
        let text = sources_for("bookworm", "bookworm", &e).unwrap();
        let again = parse_deb822(&text);
        assert_eq!(again.len(), 2, "{text}");
        assert_eq!(again[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(again[1].suites, ["bookworm-security"]);
        assert!(!text.contains("other.invalid"));
    }

    #[test]
    fn other_release_uses_the_main_archive() {
        let e = parse_deb822(DEB822);
        let text = sources_for("trixie", "bookworm", &e).unwrap();
        assert_eq!(
            text,
            "Types: deb\nURIs: http://archive.invalid/debian\nSuites: trixie\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
        assert_eq!(sources_for("trixie", "jammy", &e), None);
    }

    #[test]
    fn inline_keys_survive() {
        let e = parse_deb822(DEB822);
        let mut entry = e[2].clone();
        entry.suites = vec!["bookworm".into()];
        let text = sources_for("trixie", "bookworm", &[entry]).unwrap();
        let back = parse_deb822(&text);
        assert_eq!(back[0].signed_by, e[2].signed_by);
    }

    #[test]
    fn os_release() {
        let text = "NAME=\"Debian\"\nVERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(codename_from_os_release(text).as_deref(), Some("bookworm"));
        assert_eq!(codename_from_os_release("ID=x\n"), None);
    }
}
