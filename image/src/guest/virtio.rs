//! The baseline guest of `cargo image bench-net` (issue 12): the same Debian kernel booted by
//! QEMU directly, without Xen, with a virtio-net NIC. Debian builds virtio-net (and, depending
//! on the release, virtio-pci and its helpers) as modules, so the baseline's initramfs is the
//! DomU's plus those modules in load order, under `/lib/modules/virtio/` with an `order` file
//! that `/init` reads when the command line says `domu-nic=virtio`.
//!
//! Which modules: the closure of [`ROOT_MODULES`] over each module's `depends=` (its
//! `.modinfo`; the package ships no `modules.dep`, depmod makes it at install), minus what
//! `modules.builtin` lists; dependencies load first (what `modprobe` does).
//! Cache: `<target>/guest/<version>/virtio/{order, *.ko}`; a guest cached before this existed
//! gets them from the same kernel package, downloaded again once.

use super::*;

/// The modules a virtio-net NIC on QEMU's PCI bus needs (module names).
pub const ROOT_MODULES: [&str; 2] = ["virtio_pci", "virtio_net"];

/// The cache subdirectory and its load-order file.
pub const VIRTIO_DIR: &str = "virtio";
pub const VIRTIO_ORDER: &str = "order";

/// A module's name from its path (`.../virtio-rng.ko.xz` -> `virtio_rng`): the kernel treats
/// `-` and `_` alike in module names.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The `depends=` of a module's `.modinfo` (NUL-separated `key=value` strings).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"depends=";
    let mut at = 0;
    while let Some(i) = ko[at..].windows(key.len()).position(|w| w == key) {
        let start = at + i;
        if start == 0 || ko[start - 1] == 0 {
            let v = &ko[start + key.len()..];
            let v = &v[..v.iter().position(|&b| b == 0).unwrap_or(v.len())];
            return String::from_utf8_lossy(v)
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.replace('-', "_"))
                .collect();
        }
        at = start + 1;
    }
    Vec::new()
}

/// The modules to load, dependencies first: the closure of `roots` over `deps_of`, without
/// those `builtin` names. Depth is bounded (this is input).
pub fn load_order(
    roots: &[&str],
    builtin: &[String],
    deps_of: &mut dyn FnMut(&str) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    fn visit(
        name: &str,
        builtin: &[String],
        deps_of: &mut dyn FnMut(&str) -> Result<Vec<String>>,
        order: &mut Vec<String>,
        depth: usize,
    ) -> Result<()> {
        if builtin.iter().any(|b| b == name) || order.iter().any(|o| o == name) {
            return Ok(());
        }
        if depth > 32 {
            bail!("module dependencies deeper than 32 at {name} (a cycle?)");
        }
        for d in deps_of(name)? {
            visit(&d, builtin, deps_of, order, depth + 1)?;
        }
        order.push(name.to_string());
        Ok(())
    }
    let mut order = Vec::new();
    for r in roots {
        visit(r, builtin, deps_of, &mut order, 0)?;
    }
    Ok(order)
}

/// Takes the virtio-net modules out of `kernel_deb` into `dir/virtio/` (decompressed), with the
/// `order` file last (the directory counts as complete once it exists).
pub(super) fn extract_virtio(
    kernel_deb: &Path,
    version: &str,
    dir: &Path,
    work: &Path,
) -> Result<()> {
    let unpacked = work.join("virtio-unpacked");
    fs::create_dir_all(&unpacked)?;
    let base = format!("./lib/modules/{version}/");
    let listing = list_members(kernel_deb)?;
    let builtin_member = format!("{base}modules.builtin");
    extract_members(kernel_deb, std::slice::from_ref(&builtin_member), &unpacked)?;
    let builtin: Vec<String> = fs::read_to_string(unpacked.join(&builtin_member))
        .with_context(|| format!("reading {builtin_member}"))?
        .lines()
        .map(module_name)
        .collect();
    let mut modules: Modules = Vec::new();
    let mut deps_of = |name: &str| -> Result<Vec<String>> {
        let member = listing
            .iter()
            .find(|m| m.starts_with(&base) && m.contains(".ko") && module_name(m) == name)
            .with_context(|| format!("module {name} is neither built in nor in the package"))?;
        extract_members(kernel_deb, std::slice::from_ref(member), &unpacked)?;
        let path = unpacked.join(member);
        let bytes = match [("xz", ".xz"), ("zstd", ".zst"), ("gzip", ".gz")]
            .iter()
            .find(|(_, ext)| member.ends_with(ext))
        {
            Some((tool, _)) => {
                run_captured(Command::new(tool).arg("-dc").arg(&path))
                    .with_context(|| format!("decompressing {member} (is `{tool}` installed?)"))?
                    .stdout
            }
            None => fs::read(&path).with_context(|| format!("reading {member}"))?,
        };
        let bytes = check_module(bytes, member)?;
        let deps = modinfo_depends(&bytes);
        modules.push((name.to_string(), bytes));
        Ok(deps)
    };
    let order = load_order(&ROOT_MODULES, &builtin, &mut deps_of)?;
    let out = dir.join(VIRTIO_DIR);
    fs::create_dir_all(&out)?;
    let mut names = String::new();
    for name in &order {
        let (_, bytes) = modules
            .iter()
            .find(|(n, _)| n == name)
            .context("a module in the order was never read")?;
        write_atomic(&out.join(format!("{name}.ko")), bytes)?;
        names.push_str(&format!("{name}.ko\n"));
    }
    write_atomic(&out.join(VIRTIO_ORDER), names.as_bytes())
}

/// Modules (file name, bytes) in load order.
pub type Modules = Vec<(String, Vec<u8>)>;

/// The cached virtio modules in load order, or `None` if they were never extracted.
fn cached_virtio(dir: &Path) -> Result<Option<Modules>> {
    let out = dir.join(VIRTIO_DIR);
    let Ok(order) = fs::read_to_string(out.join(VIRTIO_ORDER)) else {
        return Ok(None);
    };
    let mut mods = Vec::new();
    for name in order.lines().filter(|l| !l.is_empty()) {
        if name.contains('/') || name.starts_with('.') {
            bail!(
                "{}: bad module name {name:?}",
                out.join(VIRTIO_ORDER).display()
            );
        }
        let bytes = fs::read(out.join(name)).with_context(|| format!("reading cached {name}"))?;
        mods.push((name.to_string(), bytes));
    }
    Ok(Some(mods))
}

/// What the baseline boots: the bzImage as Debian ships it and an initramfs with the virtio
/// modules.
#[derive(Debug, Clone)]
pub struct BaselineGuest {
    pub kernel_version: String,
    pub vmlinuz: PathBuf,
    pub initramfs: Vec<u8>,
    /// The modules `/init` loads, in order.
    pub modules: Vec<String>,
}

/// The baseline guest, from the cache; the kernel package is downloaded again (once) when the
/// cached guest predates the virtio modules.
pub fn baseline_guest(target_dir: &Path, quiet: bool) -> Result<BaselineGuest> {
    let files = fetch_linux(target_dir, quiet)?;
    let root = target_dir.join("guest");
    let dir = root.join(&files.kernel_version);
    let mods = match cached_virtio(&dir)? {
        Some(m) => m,
        None => {
            let package = files
                .kernel_package
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            if !quiet {
                eprintln!("image: fetching {package} again for its virtio-net modules");
            }
            let work = root.join(format!("work-virtio-{}", std::process::id()));
            let _ = fs::remove_dir_all(&work);
            fs::create_dir_all(&work)?;
            let result = (|| {
                let apt = AptPrivate::create(&work, &private_sources(SUITE)?)?;
                apt.run(&["update"], &work)?;
                apt.run(&["download", &package], &work)?;
                let deb = find_deb(&work, &package)?;
                extract_virtio(&deb, &files.kernel_version, &dir, &work)
            })();
            let _ = fs::remove_dir_all(&work);
            result.context("taking the virtio-net modules out of the kernel package")?;
            cached_virtio(&dir)?.context("virtio modules missing right after extraction")?
        }
    };
    let busybox = fs::read(dir.join("busybox")).context("reading the cached busybox")?;
    let netfront = fs::read(dir.join(NETFRONT_MODULE)).context("reading the cached netfront")?;
    Ok(BaselineGuest {
        kernel_version: files.kernel_version.clone(),
        vmlinuz: dir.join("vmlinuz"),
        initramfs: initramfs_with(&busybox, &netfront, &mods),
        modules: mods.into_iter().map(|(n, _)| n).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_order_puts_dependencies_first_and_skips_builtins() {
        let deps = |n: &str| -> Vec<String> {
            let d: &[&str] = match n {
                "virtio_net" => &["net_failover", "virtio", "virtio_ring"],
                "net_failover" => &["failover"],
                "virtio_pci" => &["virtio_pci_modern_dev", "virtio", "virtio_ring"],
                "virtio_ring" => &["virtio"],
                _ => &[],
            };
            d.iter().map(|s| s.to_string()).collect()
        };
        let o = load_order(&ROOT_MODULES, &[], &mut |n| Ok(deps(n))).unwrap();
        assert_eq!(
            o,
            [
                "virtio_pci_modern_dev",
                "virtio",
                "virtio_ring",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net",
            ]
        );
        // Built in: nothing to load for them.
        let builtin = vec!["virtio".to_string(), "virtio_ring".to_string()];
        let o = load_order(&ROOT_MODULES, &builtin, &mut |n| Ok(deps(n))).unwrap();
        assert_eq!(o.len(), 5);
        // A missing module is an error; a cycle is bounded, not endless.
        assert!(load_order(&ROOT_MODULES, &[], &mut |_| bail!("no such module")).is_err());
        let cyc = |n: &str| -> Result<Vec<String>> {
            Ok(vec![if n == "a" { "b" } else { "a" }.to_string()])
        };
        assert!(load_order(&["a"], &[], &mut |n| cyc(n)).is_err());
    }

    #[test]
    fn reads_depends_from_modinfo() {
        let ko = b"\x7fELF....\0license=GPL\0depends=net_failover,virtio-ring\0retpoline=Y\0";
        assert_eq!(modinfo_depends(ko), ["net_failover", "virtio_ring"]);
        assert!(modinfo_depends(b"\0depends=\0name=x\0").is_empty());
        assert!(modinfo_depends(b"xdepends=a\0").is_empty());
        assert!(modinfo_depends(b"\0depends=a").len() == 1);
        assert_eq!(
            module_name("./lib/modules/v/kernel/drivers/char/hw_random/virtio-rng.ko.xz"),
            "virtio_rng"
        );
    }
}
