//! Boot media for real machines and for the UEFI bench (issue 15): a GRUB rescue image
//! (`grub-mkrescue`: BIOS and UEFI boot from one ISO, also written to a USB stick with `dd`)
//! holding Xen, dom0 and an optional boot bundle, with the same menu entry the README gives for
//! an installed GRUB; and the OVMF firmware `cargo image run --firmware uefi` boots it with.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::run_captured;

/// Which firmware the QEMU machine runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum Firmware {
    /// SeaBIOS, QEMU's default; Xen and dom0 are loaded with `-kernel`/`-initrd` (multiboot).
    #[default]
    Bios,
    /// OVMF (Debian's `ovmf` package), booting a GRUB rescue ISO (`cargo image iso`) that loads
    /// Xen with multiboot2 through EFI, as on a UEFI server.
    Uefi,
    /// SeaBIOS booting the same GRUB rescue ISO (GRUB's BIOS half), as on a legacy server.
    BiosIso,
}

/// What a menu entry boots. Paths are as GRUB sees them (`/boot/xen`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    pub xen: String,
    pub xen_cmdline: String,
    pub dom0: String,
    pub dom0_args: Vec<String>,
    /// The boot bundle (dom0's second module), if any.
    pub bundle: Option<String>,
}

impl MenuEntry {
    /// The GRUB2 `menuentry`: Xen by multiboot2 (which works under BIOS and under UEFI, where
    /// Xen keeps EFI boot services until it has read the firmware's tables), dom0 as the first
    /// module (GRUB passes its path as the first word, which Xen drops), the bundle second.
    pub fn grub(&self) -> String {
        let mut dom0 = format!("module2 {}", self.dom0);
        for a in &self.dom0_args {
            dom0.push(' ');
            dom0.push_str(a);
        }
        let bundle = match &self.bundle {
            Some(b) => format!("\tmodule2 {b}\n"),
            None => String::new(),
        };
        format!(
            "menuentry 'Xen with the Rust PVH dom0' {{\n\
             \tinsmod part_gpt\n\
             \tinsmod part_msdos\n\
             \tinsmod gzio\n\
             \tmultiboot2 {} {}\n\
             \t{dom0}\n\
             {bundle}}}\n",
            self.xen, self.xen_cmdline
        )
    }
}

/// The rescue image's `grub.cfg`: GRUB on the serial line and the screen, no menu delay.
pub fn grub_cfg(entry: &MenuEntry) -> String {
    format!(
        "serial --unit=0 --speed=115200\n\
         terminal_input serial console\n\
         terminal_output serial console\n\
         set timeout=0\n\
         set default=0\n\
         {}",
        entry.grub()
    )
}

/// Xen's command line on a real machine: PVH dom0 with `dom0_mem` MiB, full logging, the
/// console on the first serial port and the screen.
pub fn real_xen_cmdline(dom0_mem_mib: u32) -> String {
    format!(
        "dom0=pvh dom0_mem={dom0_mem_mib}M,max:{dom0_mem_mib}M loglvl=all guest_loglvl=all \
         console=com1,vga com1=115200,8n1"
    )
}

const NEEDS: &str = "apt-get install grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools";

/// Writes a GRUB rescue ISO to `out` with Xen, dom0 and the bundle under `/boot`.
pub fn make_iso(
    out: &Path,
    xen: &Path,
    dom0: &Path,
    bundle: Option<&Path>,
    xen_cmdline: &str,
    dom0_args: &[String],
) -> Result<()> {
    for tool in ["grub-mkrescue", "xorriso", "mformat"] {
        if which(tool).is_none() {
            bail!("{tool} is missing; the ISO needs GRUB for BIOS and UEFI and xorriso: {NEEDS}");
        }
    }
    for (dir, what) in [
        ("/usr/lib/grub/i386-pc", "grub-pc-bin (BIOS boot)"),
        ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin (UEFI boot)"),
    ] {
        if !Path::new(dir).is_dir() {
            bail!("{dir} is missing: install {what}: {NEEDS}");
        }
    }
    let stage = out.with_extension("iso.d");
    let _ = std::fs::remove_dir_all(&stage);
    let boot = stage.join("boot");
    std::fs::create_dir_all(boot.join("grub"))
        .with_context(|| format!("creating {}", boot.display()))?;
    let copy = |from: &Path, name: &str| -> Result<()> {
        std::fs::copy(from, boot.join(name))
            .with_context(|| format!("copying {} into the ISO", from.display()))?;
        Ok(())
    };
    copy(xen, "xen")?;
    copy(dom0, "dom0.elf")?;
    if let Some(b) = bundle {
        copy(b, "bundle.bin")?;
    }
    let entry = MenuEntry {
        xen: "/boot/xen".into(),
        xen_cmdline: xen_cmdline.into(),
        dom0: "/boot/dom0.elf".into(),
        dom0_args: dom0_args.to_vec(),
        bundle: bundle.map(|_| "/boot/bundle.bin".into()),
    };
    std::fs::write(boot.join("grub").join("grub.cfg"), grub_cfg(&entry))?;
    run_captured(Command::new("grub-mkrescue").arg("-o").arg(out).arg(&stage))
        .with_context(|| format!("grub-mkrescue could not write {}", out.display()))?;
    let _ = std::fs::remove_dir_all(&stage);
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|f| f.is_file())
    })
}

/// OVMF's code (read-only) and a fresh copy of its variable store in `run_dir`.
pub fn ovmf(run_dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let code = Path::new("/usr/share/OVMF/OVMF_CODE_4M.fd");
    let vars = Path::new("/usr/share/OVMF/OVMF_VARS_4M.fd");
    if !code.is_file() || !vars.is_file() {
        bail!(
            "{} is missing: --firmware uefi needs Debian's OVMF: apt-get install ovmf",
            code.display()
        );
    }
    let copy = run_dir.join("OVMF_VARS.fd");
    std::fs::copy(vars, &copy).with_context(|| format!("copying {}", vars.display()))?;
    Ok((code.to_path_buf(), copy))
}

/// QEMU arguments that boot `iso` under OVMF (`Some((code, vars))`) or SeaBIOS.
pub fn iso_args(ovmf: Option<(&Path, &Path)>, iso: &Path) -> Result<Vec<String>> {
    let arg = crate::qemu::path_arg;
    let mut v = Vec::new();
    if let Some((code, vars)) = ovmf {
        v.push("-drive".into());
        v.push(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            arg(code)?
        ));
        v.push("-drive".into());
        v.push(format!("if=pflash,format=raw,unit=1,file={}", arg(vars)?));
    }
    v.push("-drive".into());
    v.push(format!("file={},media=cdrom,readonly=on", arg(iso)?));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn menu_entry_has_xen_dom0_and_bundle_in_order() {
        let e = MenuEntry {
            xen: "/boot/xen.gz".into(),
            xen_cmdline: "dom0=pvh dom0_mem=256M".into(),
            dom0: "/boot/dom0.elf".into(),
            dom0_args: vec!["loglevel=debug".into()],
            bundle: Some("/boot/bundle.bin".into()),
        };
        let g = e.grub();
        let x = g
            .find("\tmultiboot2 /boot/xen.gz dom0=pvh dom0_mem=256M\n")
            .unwrap();
        let d = g.find("\tmodule2 /boot/dom0.elf loglevel=debug\n").unwrap();
        let b = g.find("\tmodule2 /boot/bundle.bin\n").unwrap();
        assert!(x < d && d < b, "{g}");
        assert!(grub_cfg(&e).starts_with("serial --unit=0"));
    }
}
