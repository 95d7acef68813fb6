//! The boot bundle packer: writes the single boot module dom0 reads with
//! `toolstack::bundle::parse` (the format is documented there).
//!
//! [`encode`] is the plain writer; [`pack`] checks its inputs, encodes, and proves the result
//! by parsing it back with the toolstack's own reader, so a bundle it returns is one dom0
//! accepts. `cargo image bundle` is the CLI over [`pack`]; `cargo image run --bundle FILE`
//! checks a bundle the same way and hands it to dom0 as its boot module.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use toolstack::bundle::{self as wire, FileKind};

pub use toolstack::bundle::Bundle;
pub use toolstack::kernel::{KernelFormat, kernel_format};

/// A domain to describe in a bundle; the packer's counterpart of `toolstack::bundle::DomainSpec`.
///
/// From the command line (`FromStr`):
/// `name=NAME,memory=MIB,vcpus=N,kernel=NAME[,initrd=NAME][,device=DEV]...[,tsc_mode=MODE]`
/// `[,cmdline=TEXT]`, keys in any order except that `cmdline=` must come last: it takes the rest
/// of the argument verbatim, commas included. `DEV` is `console`, `vif` or
/// `vif=aa:bb:cc:dd:ee:ff`; `MODE` is xl.cfg's `default`, `always_emulate` or `native`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpecInput {
    pub name: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cmdline: String,
    /// Name of the kernel entry.
    pub kernel: String,
    /// Name of the initrd entry.
    pub initrd: Option<String>,
    /// Devices as written in a domain description: `console`, `vif`, `vif=<mac>`.
    pub devices: Vec<String>,
    /// `tsc_mode=`, written only when given (dom0 takes `default` otherwise).
    pub tsc_mode: Option<wire::TscMode>,
}

impl DomainSpecInput {
    /// The domain description payload (`key=value` lines).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "name={}", self.name);
        let _ = writeln!(s, "memory={}", self.memory_mib);
        let _ = writeln!(s, "vcpus={}", self.vcpus);
        let _ = writeln!(s, "kernel={}", self.kernel);
        if let Some(i) = &self.initrd {
            let _ = writeln!(s, "initrd={i}");
        }
        for d in &self.devices {
            let _ = writeln!(s, "device={d}");
        }
        if let Some(m) = self.tsc_mode {
            let _ = writeln!(s, "tsc_mode={}", m.as_str());
        }
        if !self.cmdline.is_empty() {
            let _ = writeln!(s, "cmdline={}", self.cmdline);
        }
        s
    }

    /// The strings that go into the description verbatim.
    fn text_fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("name", self.name.as_str()),
            ("kernel", &self.kernel),
            ("cmdline", &self.cmdline),
        ]
        .into_iter()
        .chain(self.initrd.iter().map(|i| ("initrd", i.as_str())))
        .chain(self.devices.iter().map(|d| ("device", d.as_str())))
    }
}

impl FromStr for DomainSpecInput {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut name = None;
        let mut memory = None;
        let mut vcpus = None;
        let mut kernel = None;
        let mut initrd = None;
        let mut tsc_mode = None;
        let mut cmdline = None;
        let mut devices = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            if let Some(c) = rest.strip_prefix("cmdline=") {
                cmdline = Some(c.to_string());
                break;
            }
            let (item, tail) = rest.split_once(',').unwrap_or((rest, ""));
            rest = tail;
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!("{item:?} is not key=value"));
            };
            let slot = match key {
                "name" => &mut name,
                "memory" => &mut memory,
                "vcpus" => &mut vcpus,
                "kernel" => &mut kernel,
                "initrd" => &mut initrd,
                "tsc_mode" => &mut tsc_mode,
                "device" => {
                    devices.push(value.to_string());
                    continue;
                }
                _ => {
                    return Err(format!(
                        "unknown key {key:?} (name, memory, vcpus, kernel, initrd, device, \
                         tsc_mode, cmdline)"
                    ));
                }
            };
            if slot.is_some() {
                return Err(format!("{key} given twice"));
            }
            *slot = Some(value.to_string());
        }
        let need = |v: Option<String>, k: &str| v.ok_or_else(|| format!("missing {k}="));
        let name = need(name, "name")?;
        let memory = need(memory, "memory")?;
        let vcpus = need(vcpus, "vcpus")?;
        let kernel = need(kernel, "kernel")?;
        Ok(DomainSpecInput {
            name,
            memory_mib: memory
                .parse()
                .map_err(|_| format!("memory={memory:?} is not a number of MiB"))?,
            vcpus: vcpus
                .parse()
                .map_err(|_| format!("vcpus={vcpus:?} is not a number"))?,
            cmdline: cmdline.unwrap_or_default(),
            kernel,
            initrd,
            devices,
            tsc_mode: tsc_mode
                .map(|m| {
                    wire::TscMode::parse(&m)
                        .ok_or_else(|| format!("tsc_mode={m:?}: default, always_emulate or native"))
                })
                .transpose()?,
        })
    }
}

/// A `--file KIND:NAME=PATH` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileArg {
    pub kind: FileKind,
    pub name: String,
    pub path: PathBuf,
}

impl FromStr for FileArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("{s:?} is not KIND:NAME=PATH (KIND is kernel or initrd)");
        let (kind, rest) = s.split_once(':').ok_or_else(err)?;
        let (name, path) = rest.split_once('=').ok_or_else(err)?;
        let kind = match kind {
            "kernel" => FileKind::Kernel,
            "initrd" => FileKind::Initrd,
            _ => return Err(err()),
        };
        if name.is_empty() || path.is_empty() {
            return Err(err());
        }
        Ok(FileArg {
            kind,
            name: name.to_string(),
            path: PathBuf::from(path),
        })
    }
}

impl FileArg {
    /// Reads the file: the `(kind, name, bytes)` [`pack`] takes.
    pub fn load(&self) -> Result<(FileKind, String, Vec<u8>)> {
        let data = std::fs::read(&self.path)
            .with_context(|| format!("reading {} {}", self.kind, self.path.display()))?;
        Ok((self.kind, self.name.clone(), data))
    }
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(wire::ALIGN), 0);
}

fn write_entry(out: &mut Vec<u8>, ty: u32, name: &str, payload: &[u8]) {
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    pad(out);
    out.extend_from_slice(payload);
    pad(out);
}

/// Writes a bundle: header, then the domain descriptions, then the files, in the given order.
/// It does not validate; see [`pack`].
pub fn encode(domains: &[DomainSpecInput], files: &[(FileKind, String, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0u8; wire::HEADER_LEN];
    for d in domains {
        write_entry(&mut out, wire::TYPE_DOMAIN, &d.name, d.to_text().as_bytes());
    }
    for (kind, name, data) in files {
        write_entry(&mut out, kind.type_id(), name, data);
    }
    let count = (domains.len() + files.len()) as u32;
    let total = out.len() as u64;
    let crc = wire::crc32(&out[wire::HEADER_LEN..]);
    out[0..8].copy_from_slice(&wire::MAGIC);
    out[8..12].copy_from_slice(&wire::VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&count.to_le_bytes());
    out[16..24].copy_from_slice(&total.to_le_bytes());
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Packs a bundle and checks it: inputs that would change meaning when written as text (control
/// characters, which could smuggle in extra `key=value` lines) are refused, and the result is
/// parsed back with `toolstack::bundle::parse`, whose error (duplicate or missing names, bad
/// sizes, ...) is returned if dom0 would reject it.
pub fn pack(domains: &[DomainSpecInput], files: &[(FileKind, String, Vec<u8>)]) -> Result<Vec<u8>> {
    for d in domains {
        for (key, v) in d.text_fields() {
            if v.chars().any(char::is_control) {
                bail!("domain {:?}: {key} {v:?} holds a control character", d.name);
            }
        }
    }
    let out = encode(domains, files);
    toolstack::bundle::parse(&out).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(out)
}

/// Reads and validates a bundle file; returns its bytes.
pub fn check_file(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    toolstack::bundle::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(bytes)
}

/// A human-readable listing of a (valid) bundle.
pub fn describe(bytes: &[u8]) -> Result<String> {
    let b = toolstack::bundle::parse(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut s = format!(
        "boot bundle v{}: {} bytes, {} domain(s), {} file(s)\n",
        wire::VERSION,
        bytes.len(),
        b.domains.len(),
        b.files.len()
    );
    for d in &b.domains {
        let _ = write!(
            s,
            "  domain {}: {} MiB, {} vCPU(s), kernel {}",
            d.name, d.memory_mib, d.vcpus, d.kernel
        );
        if let Some(i) = &d.initrd {
            let _ = write!(s, ", initrd {i}");
        }
        for dev in &d.devices {
            let _ = write!(s, ", {dev}");
        }
        let _ = writeln!(s, ", cmdline {:?}", d.cmdline);
    }
    for f in &b.files {
        let _ = write!(s, "  {} {}: {} bytes", f.kind, f.name, f.data.len());
        if f.kind == FileKind::Kernel {
            let _ = write!(s, ", {}", kernel_format(f.data));
            // What dom0's domain builder will do with it (the same code decides in dom0).
            match toolstack::builder::kernel_plan(f.data) {
                Ok(plan) => {
                    let _ = write!(s, "; dom0: {plan}");
                }
                Err(why) => {
                    let _ = write!(s, "; dom0 CANNOT boot it: {why}");
                }
            }
        }
        s.push('\n');
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolstack::bundle::{BundleErrorKind, Device, DomainSpec, parse};

    fn demo() -> DomainSpecInput {
        "name=demo,memory=64,vcpus=2,kernel=vmlinuz,initrd=initrd.img,device=console,\
         device=vif=00:16:3e:00:00:01,cmdline=console=hvc0 root=/dev/xvda,ro x=1"
            .parse()
            .unwrap()
    }

    fn files() -> Vec<(FileKind, String, Vec<u8>)> {
        vec![
            (
                FileKind::Kernel,
                "vmlinuz".into(),
                b"\x7fELF\x02\x01".repeat(5),
            ),
            (FileKind::Initrd, "initrd.img".into(), vec![0xab; 13]),
        ]
    }

    #[test]
    fn domain_spec_cli_syntax() {
        let d = demo();
        assert_eq!(
            d,
            DomainSpecInput {
                name: "demo".into(),
                memory_mib: 64,
                vcpus: 2,
                cmdline: "console=hvc0 root=/dev/xvda,ro x=1".into(),
                kernel: "vmlinuz".into(),
                initrd: Some("initrd.img".into()),
                devices: vec!["console".into(), "vif=00:16:3e:00:00:01".into()],
                tsc_mode: None,
            }
        );
        let d: DomainSpecInput = "kernel=k,vcpus=1,memory=8,name=x".parse().unwrap();
        assert_eq!((d.cmdline.as_str(), d.initrd), ("", None));
        for bad in [
            "name=x,memory=8,vcpus=1",
            "name=x,memory=8M,vcpus=1,kernel=k",
            "name=x,memory=8,vcpus=-1,kernel=k",
            "name=x,name=y,memory=8,vcpus=1,kernel=k",
            "name=x,memory=8,vcpus=1,kernel=k,colour=red",
            "name=x,memory=8,vcpus=1,kernel=k,console",
            "name=x,memory=8,vcpus=1,kernel=k,tsc_mode=fast",
            "name=x,memory=8,vcpus=1,kernel=k,tsc_mode=native,tsc_mode=native",
            "",
        ] {
            assert!(bad.parse::<DomainSpecInput>().is_err(), "{bad}");
        }
        let d: DomainSpecInput = "name=x,memory=8,vcpus=1,kernel=k,tsc_mode=native"
            .parse()
            .unwrap();
        assert_eq!(d.tsc_mode, Some(wire::TscMode::Native));
        assert!(d.to_text().contains("\ntsc_mode=native\n"));
    }

    #[test]
    fn file_arg_syntax() {
        let f: FileArg = "kernel:vmlinuz=/boot/vmlinuz-6.1=x".parse().unwrap();
        assert_eq!(
            f,
            FileArg {
                kind: FileKind::Kernel,
                name: "vmlinuz".into(),
                path: "/boot/vmlinuz-6.1=x".into()
            }
        );
        let f: FileArg = "initrd:i=rel/path".parse().unwrap();
        assert_eq!(f.kind, FileKind::Initrd);
        for bad in [
            "vmlinuz=/x",
            "disk:a=/x",
            "kernel:=/x",
            "kernel:a=",
            "kernel:a",
        ] {
            assert!(bad.parse::<FileArg>().is_err(), "{bad}");
        }
    }

    #[test]
    fn description_text() {
        assert_eq!(
            demo().to_text(),
            "name=demo\nmemory=64\nvcpus=2\nkernel=vmlinuz\ninitrd=initrd.img\n\
             device=console\ndevice=vif=00:16:3e:00:00:01\n\
             cmdline=console=hvc0 root=/dev/xvda,ro x=1\n"
        );
    }

    #[test]
    fn layout_is_exact() {
        let b = encode(&[], &[(FileKind::Kernel, "k".into(), vec![1, 2, 3])]);
        let mut want = Vec::new();
        want.extend_from_slice(b"XDB0BNDL");
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(&64u64.to_le_bytes());
        let body: Vec<u8> = [
            &2u32.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            &3u64.to_le_bytes(),
            b"k\0\0\0\0\0\0\0",
            &[1, 2, 3, 0, 0, 0, 0, 0],
        ]
        .concat();
        want.extend_from_slice(&wire::crc32(&body).to_le_bytes());
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(&body);
        assert_eq!(b, want);
        // The empty bundle is just the header.
        let e = encode(&[], &[]);
        assert_eq!(e.len(), 32);
        assert_eq!(
            parse(&e).unwrap(),
            Bundle {
                domains: vec![],
                files: vec![]
            }
        );
    }

    #[test]
    fn round_trip() {
        let d2: DomainSpecInput = "name=tiny,memory=1,vcpus=128,kernel=vmlinuz,tsc_mode=native"
            .parse()
            .unwrap();
        let files = files();
        let bytes = pack(&[demo(), d2], &files).unwrap();
        assert_eq!(bytes.len() % 8, 0);
        let b = parse(&bytes).unwrap();
        assert_eq!(
            b.domains[0],
            DomainSpec {
                name: "demo".into(),
                memory_mib: 64,
                vcpus: 2,
                cmdline: "console=hvc0 root=/dev/xvda,ro x=1".into(),
                kernel: "vmlinuz".into(),
                initrd: Some("initrd.img".into()),
                devices: vec![
                    Device::Console,
                    Device::Vif {
                        mac: Some([0, 0x16, 0x3e, 0, 0, 1])
                    }
                ],
                tsc_mode: wire::TscMode::Default,
            }
        );
        assert_eq!(b.domains[1].vcpus, 128);
        assert_eq!(b.domains[1].tsc_mode, wire::TscMode::Native);
        assert_eq!(b.files.len(), 2);
        for ((kind, name, data), f) in files.iter().zip(&b.files) {
            assert_eq!(
                (f.kind, f.name, f.data),
                (*kind, name.as_str(), data.as_slice())
            );
            assert_eq!(f.offset % 8, 0);
        }
        let listing = describe(&bytes).unwrap();
        assert!(
            listing.contains("domain demo: 64 MiB, 2 vCPU(s)"),
            "{listing}"
        );
        assert!(
            listing.contains("kernel vmlinuz: 30 bytes, ELF64"),
            "{listing}"
        );
    }

    #[test]
    fn pack_rejects_what_dom0_would() {
        let files = files();
        let mut d = demo();
        d.kernel = "missing".into();
        let e = pack(&[d], &files).unwrap_err().to_string();
        assert!(e.contains("needs kernel \"missing\""), "{e}");

        let mut d = demo();
        d.vcpus = 129;
        assert!(pack(&[d], &files).is_err());
        let mut d = demo();
        d.memory_mib = 0;
        assert!(pack(&[d], &files).is_err());
        let mut d = demo();
        d.devices.push("vif=zz".into());
        assert!(pack(&[d], &files).is_err());

        let mut dup = files.clone();
        dup.push(files[0].clone());
        assert!(pack(&[demo()], &dup).is_err());
        assert!(pack(&[], &[(FileKind::Kernel, "x".repeat(65), vec![])]).is_err());

        // A newline in the command line must not become a second `device=` line.
        let mut d = demo();
        d.cmdline = "quiet\ndevice=console".into();
        let e = pack(&[d], &files).unwrap_err().to_string();
        assert!(e.contains("control character"), "{e}");
    }

    #[test]
    fn check_file_validates() {
        let dir = std::env::temp_dir().join(format!("bundle-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.bin");
        let bytes = pack(&[demo()], &files()).unwrap();
        std::fs::write(&good, &bytes).unwrap();
        assert_eq!(check_file(&good).unwrap(), bytes);
        let bad = dir.join("bad.bin");
        let mut broken = bytes.clone();
        *broken.last_mut().unwrap() ^= 0xff;
        std::fs::write(&bad, &broken).unwrap();
        let e = check_file(&bad).unwrap_err().to_string();
        assert!(e.contains("CRC mismatch"), "{e}");
        assert!(check_file(&dir.join("absent")).is_err());
        let f = FileArg {
            kind: FileKind::Kernel,
            name: "k".into(),
            path: good.clone(),
        };
        assert_eq!(f.load().unwrap().2, bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn randomized_round_trips() {
        // Deterministic pseudo-random bundles: every one packs and parses back identically.
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..300 {
            let nfiles = 1 + (next() % 4) as usize;
            let files: Vec<_> = (0..nfiles)
                .map(|j| {
                    let len = (next() % 40) as usize;
                    let kind = if j == 0 || next() % 2 == 0 {
                        FileKind::Kernel
                    } else {
                        FileKind::Initrd
                    };
                    (
                        kind,
                        format!("f{j}-{i}"),
                        (0..len).map(|_| next() as u8).collect(),
                    )
                })
                .collect();
            let d = DomainSpecInput {
                name: format!("dom{i}"),
                memory_mib: 1 + next() % (1 << 20),
                vcpus: 1 + (next() % 128) as u32,
                cmdline: "x,".repeat((next() % 10) as usize),
                kernel: files[0].1.clone(),
                initrd: None,
                devices: vec!["vif".into(); (next() % 3) as usize],
                tsc_mode: [
                    None,
                    Some(wire::TscMode::Native),
                    Some(wire::TscMode::AlwaysEmulate),
                ][(next() % 3) as usize],
            };
            let bytes = pack(std::slice::from_ref(&d), &files).unwrap();
            let b = parse(&bytes).unwrap();
            assert_eq!(b.domains[0].memory_mib, d.memory_mib);
            assert_eq!(b.domains[0].cmdline, d.cmdline);
            assert_eq!(
                Some(b.domains[0].tsc_mode),
                d.tsc_mode.or(Some(wire::TscMode::Default))
            );
            assert_eq!(b.files.len(), nfiles);
            for (f, (_, n, data)) in b.files.iter().zip(&files) {
                assert_eq!((f.name, f.data), (n.as_str(), data.as_slice()));
            }
        }
        // And a flipped byte anywhere is caught by the CRC or the header checks.
        let bytes = pack(&[demo()], &files()).unwrap();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(parse(&b).is_err(), "flip at {i}");
        }
        assert!(matches!(
            parse(&bytes[..bytes.len() - 8]).unwrap_err().kind,
            BundleErrorKind::Truncated { .. }
        ));
    }
}
