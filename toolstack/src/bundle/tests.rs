//! Tests of `bundle.rs`.

use super::*;
use crate::kernel::{KernelFormat, kernel_format};
use alloc::format;
use alloc::vec;

#[test]
fn crc32_known_vectors() {
    assert_eq!(crc32(b""), 0);
    assert_eq!(crc32(b"a"), 0xe8b7_be43);
    assert_eq!(crc32(b"abc"), 0x3524_41c2);
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414f_a339
    );
    assert_eq!(crc32(&[0u8; 32]), 0x190a_55ad);
    assert_eq!(crc32(&[0xffu8; 32]), 0xff6c_ab0b);
    assert_eq!(crc32_update(crc32(b"12345"), b"6789"), 0xcbf4_3926);
}

/// A minimal independent writer for tests (the real packer lives in `image`).
fn entry(out: &mut Vec<u8>, ty: u32, name: &[u8], payload: &[u8]) {
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(name);
    out.resize(out.len().next_multiple_of(8), 0);
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(8), 0);
}

fn finish(mut out: Vec<u8>, count: u32) -> Vec<u8> {
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..16].copy_from_slice(&count.to_le_bytes());
    let total = out.len() as u64;
    out[16..24].copy_from_slice(&total.to_le_bytes());
    fix_crc(&mut out);
    out
}

fn fix_crc(b: &mut [u8]) {
    if b.len() >= HEADER_LEN {
        let c = crc32(&b[HEADER_LEN..]);
        b[24..28].copy_from_slice(&c.to_le_bytes());
    }
}

const DEMO: &str = "name=demo\nmemory=64\nvcpus=2\nkernel=vmlinuz\ninitrd=initrd.img\n\
                        cmdline=console=hvc0 root=/dev/xvda, x=y\ndevice=console\n\
                        device=vif=00:16:3e:0a:0b:0c\ndevice=vif\n";

fn build(entries: &[(u32, &[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER_LEN];
    for (t, n, p) in entries {
        entry(&mut out, *t, n, p);
    }
    finish(out, entries.len() as u32)
}

fn sample() -> Vec<u8> {
    build(&[
        (TYPE_DOMAIN, b"demo", DEMO.as_bytes()),
        (
            TYPE_KERNEL,
            b"vmlinuz",
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0abc",
        ),
        (TYPE_INITRD, b"initrd.img", b"initrd!"),
    ])
}

fn kind_of(b: &[u8]) -> BundleErrorKind {
    parse(b).unwrap_err().kind
}

#[test]
fn parses_sample() {
    let b = sample();
    let bundle = parse(&b).unwrap();
    assert_eq!(bundle.domains.len(), 1);
    let d = &bundle.domains[0];
    assert_eq!(
        *d,
        DomainSpec {
            name: "demo".into(),
            memory_mib: 64,
            vcpus: 2,
            cmdline: "console=hvc0 root=/dev/xvda, x=y".into(),
            kernel: "vmlinuz".into(),
            initrd: Some("initrd.img".into()),
            devices: vec![
                Device::Console,
                Device::Vif {
                    mac: Some([0x00, 0x16, 0x3e, 0x0a, 0x0b, 0x0c])
                },
                Device::Vif { mac: None },
            ],
            tsc_mode: TscMode::Default,
        }
    );
    let k = bundle.kernel_of(d).unwrap();
    assert_eq!(k.offset % 8, 0);
    assert_eq!(&b[k.offset..k.offset + k.data.len()], k.data);
    assert_eq!(
        kernel_format(k.data),
        KernelFormat::Elf {
            class: 64,
            machine: 62
        }
    );
    assert_eq!(bundle.initrd_of(d).unwrap().data, b"initrd!");
    assert_eq!(bundle.files.len(), 2);
    assert!(bundle.domain("demo").is_some());
    // Zero-copy: the payload points into the module.
    assert!(core::ptr::eq(k.data.as_ptr(), b[k.offset..].as_ptr()));
}

#[test]
fn trailing_module_padding_is_ignored() {
    let mut b = sample();
    b.extend_from_slice(&[0xaa; 4096]);
    assert!(parse(&b).is_ok());
}

#[test]
fn header_errors() {
    use BundleErrorKind as K;
    let good = sample();
    assert!(matches!(
        kind_of(&good[..31]),
        K::Truncated { need: 32, .. }
    ));
    let mut b = good.clone();
    b[0] = b'Y';
    assert_eq!(kind_of(&b), K::BadMagic);
    let mut b = good.clone();
    b[8] = 2;
    assert_eq!(parse(&b).unwrap_err().offset, 8);
    assert_eq!(kind_of(&b), K::UnsupportedVersion(2));
    let mut b = good.clone();
    b[28] = 1;
    assert_eq!(kind_of(&b), K::ReservedNotZero);
    let e = parse(&good[..good.len() - 8]).unwrap_err();
    assert_eq!(e.offset, 16);
    assert!(matches!(e.kind, K::Truncated { .. }));
    let mut b = good.clone();
    b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(kind_of(&b), K::BadTotalLength(_)));
    let mut b = good.clone();
    b[16..24].copy_from_slice(&(u64::MAX - 7).to_le_bytes());
    assert!(matches!(kind_of(&b), K::Truncated { .. }));
    let mut b = good.clone();
    b[16..24].copy_from_slice(&20u64.to_le_bytes());
    assert!(matches!(kind_of(&b), K::BadTotalLength(20)));
    let mut b = good.clone();
    *b.last_mut().unwrap() ^= 1;
    let e = parse(&b).unwrap_err();
    assert_eq!(e.offset, 24);
    assert!(matches!(e.kind, K::BadCrc { .. }));
    let s = format!("{e}");
    assert!(s.contains("CRC mismatch"), "{s}");
}

fn patched(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = sample();
    f(&mut b);
    fix_crc(&mut b);
    b
}

#[test]
fn entry_errors() {
    use BundleErrorKind as K;
    // First entry at 32: type @32, name_len @36, payload_len @40, name @48.
    let b = patched(|b| b[32] = 9);
    assert_eq!(parse(&b).unwrap_err().offset, 32);
    assert_eq!(kind_of(&b), K::UnknownEntryType { entry: 0, ty: 9 });
    let b = patched(|b| b[36..40].copy_from_slice(&0u32.to_le_bytes()));
    assert_eq!(kind_of(&b), K::NameEmpty { entry: 0 });
    let b = patched(|b| b[36..40].copy_from_slice(&65u32.to_le_bytes()));
    assert_eq!(kind_of(&b), K::NameTooLong { entry: 0, len: 65 });
    let b = patched(|b| b[48] = 0xff);
    assert_eq!(kind_of(&b), K::NameNotUtf8 { entry: 0 });
    assert_eq!(parse(&b).unwrap_err().offset, 48);
    let b = patched(|b| b[48] = b'\n');
    assert_eq!(kind_of(&b), K::NameHasControlChar { entry: 0 });
    let b = patched(|b| b[40..48].copy_from_slice(&u64::MAX.to_le_bytes()));
    assert_eq!(kind_of(&b), K::LengthOverflow { entry: 0 });
    let b = patched(|b| b[40..48].copy_from_slice(&(u64::MAX - 60).to_le_bytes()));
    assert_eq!(kind_of(&b), K::LengthOverflow { entry: 0 });
    let b = patched(|b| b[40..48].copy_from_slice(&100_000u64.to_le_bytes()));
    assert_eq!(kind_of(&b), K::EntryPastEnd { entry: 0 });
    let b = patched(|b| b[52] = 1); // padding after the 4-byte name
    assert_eq!(kind_of(&b), K::PaddingNotZero { entry: 0 });
    let b = patched(|b| b[12] = 4);
    assert_eq!(kind_of(&b), K::EntryPastEnd { entry: 3 });
    let b = patched(|b| b[12] = 2);
    assert!(matches!(kind_of(&b), K::TrailingBytes { .. }));
}

#[test]
fn duplicate_names() {
    let k: &[u8] = b"k";
    let b = build(&[(TYPE_KERNEL, b"a", k), (TYPE_KERNEL, b"a", k)]);
    let e = parse(&b).unwrap_err();
    assert_eq!(
        e.kind,
        BundleErrorKind::DuplicateName {
            kind: EntryKind::File(FileKind::Kernel),
            name: "a".into()
        }
    );
    assert_eq!(e.offset, 32 + 16 + 8 + 8);
    // The same name in different kinds is fine.
    let b = build(&[(TYPE_KERNEL, b"a", k), (TYPE_INITRD, b"a", k)]);
    assert_eq!(parse(&b).unwrap().files.len(), 2);
    let d: &[u8] = b"name=d\nmemory=1\nvcpus=1\nkernel=a\n";
    let b = build(&[
        (TYPE_DOMAIN, b"d", d),
        (TYPE_DOMAIN, b"d", d),
        (TYPE_KERNEL, b"a", k),
    ]);
    assert!(matches!(
        kind_of(&b),
        BundleErrorKind::DuplicateName {
            kind: EntryKind::Domain,
            ..
        }
    ));
}

fn domain_err(desc: &str) -> BundleError {
    let b = build(&[
        (TYPE_DOMAIN, b"d", desc.as_bytes()),
        (TYPE_KERNEL, b"k", b"x"),
        (TYPE_INITRD, b"i", b"y"),
    ]);
    parse(&b).unwrap_err()
}

fn domain_ok(desc: &str) -> DomainSpec {
    let b = build(&[
        (TYPE_DOMAIN, b"d", desc.as_bytes()),
        (TYPE_KERNEL, b"k", b"x"),
        (TYPE_INITRD, b"i", b"y"),
    ]);
    parse(&b).unwrap().domains.remove(0)
}

#[test]
fn domain_description_rules() {
    use BundleErrorKind as K;
    let base = "name=d\nmemory=16\nvcpus=1\nkernel=k\n";
    let d = domain_ok(base);
    assert_eq!((d.memory_mib, d.vcpus, d.cmdline.as_str()), (16, 1, ""));
    assert_eq!(d.initrd, None);
    assert!(d.devices.is_empty());
    assert_eq!(d.tsc_mode, TscMode::Default);
    // xl.cfg's spellings, once each; anything else is refused at its line.
    for (v, m) in [
        ("default", TscMode::Default),
        ("always_emulate", TscMode::AlwaysEmulate),
        ("native", TscMode::Native),
    ] {
        assert_eq!(domain_ok(&format!("{base}tsc_mode={v}\n")).tsc_mode, m);
    }
    for bad in ["", "Native", "native ", "2", "native_paravirt", "pvrdtscp"] {
        let e = domain_err(&format!("{base}tsc_mode={bad}\n"));
        assert_eq!(
            (e.offset, e.kind),
            (
                56 + base.len(),
                K::DomainBadValue {
                    key: "tsc_mode".into()
                }
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        domain_err(&format!("{base}tsc_mode=native\ntsc_mode=native\n")).kind,
        K::DomainDuplicateKey("tsc_mode".into())
    );
    // No trailing newline, blank lines.
    assert_eq!(
        domain_ok("name=d\n\nmemory=16\nvcpus=128\nkernel=k").vcpus,
        128
    );
    assert_eq!(
        domain_ok("name=d\nmemory=1048576\nvcpus=1\nkernel=k").memory_mib,
        1 << 20
    );

    // Description payload at 32 + 16 + 8 = 56; the error points at the line.
    let e = domain_err("name=d\nmemory=16\nvcpus=1\nkernel=k\nbogus");
    assert_eq!((e.offset, e.kind), (56 + base.len(), K::DomainLineSyntax));
    assert_eq!(
        domain_err(&format!("{base}colour=red\n")).kind,
        K::DomainUnknownKey("colour".into())
    );
    assert_eq!(
        domain_err(&format!("{base}vcpus=2\n")).kind,
        K::DomainDuplicateKey("vcpus".into())
    );
    assert_eq!(
        domain_err("name=d\nvcpus=1\nkernel=k\n").kind,
        K::DomainMissingKey("memory")
    );
    assert_eq!(
        domain_err("name=d\nmemory=1\nvcpus=1\n").kind,
        K::DomainMissingKey("kernel")
    );
    for bad in ["0", "1048577", "99999999999999"] {
        let e = domain_err(&format!("name=d\nmemory={bad}\nvcpus=1\nkernel=k\n"));
        assert!(matches!(e.kind, K::MemoryOutOfRange(_)), "{bad}: {e}");
        assert_eq!(e.offset, 56 + "name=d\n".len());
    }
    for bad in ["0", "129", "4294967296"] {
        let e = domain_err(&format!("name=d\nmemory=1\nvcpus={bad}\nkernel=k\n"));
        assert!(matches!(e.kind, K::VcpusOutOfRange(_)), "{bad}: {e}");
    }
    for bad in ["", "+1", "-1", " 1", "1 ", "0x10", "１"] {
        let e = domain_err(&format!("name=d\nmemory={bad}\nvcpus=1\nkernel=k\n"));
        assert_eq!(
            e.kind,
            K::DomainBadValue {
                key: "memory".into()
            },
            "{bad:?}"
        );
    }
    assert_eq!(
        domain_err("name=d\nmemory=1\nvcpus=1\nkernel=k\ncmdline=a\rb\n").kind,
        K::DomainBadValue {
            key: "cmdline".into()
        }
    );
    let long = "x".repeat(MAX_CMDLINE_LEN + 1);
    assert_eq!(
        domain_err(&format!("{base}cmdline={long}\n")).kind,
        K::CmdlineTooLong(MAX_CMDLINE_LEN + 1)
    );
    assert_eq!(
        domain_err("name=e\nmemory=1\nvcpus=1\nkernel=k\n").kind,
        K::DomainNameMismatch {
            entry: "d".into(),
            name: "e".into()
        }
    );
    assert_eq!(
        domain_err("name=d\nmemory=1\nvcpus=1\nkernel=nope\n").kind,
        K::MissingKernel {
            domain: "d".into(),
            kernel: "nope".into()
        }
    );
    // The initrd "i" is not a kernel.
    assert!(matches!(
        domain_err("name=d\nmemory=1\nvcpus=1\nkernel=i\n").kind,
        K::MissingKernel { .. }
    ));
    assert_eq!(
        domain_err(&format!("{base}initrd=k\n")).kind,
        K::MissingInitrd {
            domain: "d".into(),
            initrd: "k".into()
        }
    );
    for bad in [
        "vif=00:16:3e:00:00",
        "vif=00:16:3e:00:00:01:02",
        "vif=01:16:3e:00:00:01",
        "vif=0:16:3e:00:00:01",
        "vif=",
        "disk",
        "console ",
    ] {
        assert_eq!(
            domain_err(&format!("{base}device={bad}\n")).kind,
            K::BadDevice(bad.into())
        );
    }
    assert_eq!(
        domain_err(&format!("{base}device=console\ndevice=console\n")).kind,
        K::DuplicateConsole
    );
    assert_eq!(
        domain_ok(&format!("{base}cmdline=caf\u{e9}\n")).cmdline,
        "caf\u{e9}"
    );
    assert_eq!(
        parse_domain(&[b'a', 0xc3], 100).unwrap_err(),
        BundleError {
            offset: 101,
            kind: K::DomainNotUtf8
        }
    );
    let mut bytes = base.as_bytes().to_vec();
    bytes.push(0xff);
    let b = build(&[(TYPE_DOMAIN, b"d", &bytes), (TYPE_KERNEL, b"k", b"x")]);
    let e = parse(&b).unwrap_err();
    assert_eq!((e.offset, e.kind), (56 + base.len(), K::DomainNotUtf8));
}

#[test]
fn device_display_round_trips() {
    for s in ["console", "vif", "vif=00:16:3e:0a:bb:fc"] {
        assert_eq!(format!("{}", parse_device(s).unwrap()), s);
    }
    assert_eq!(
        parse_device("vif=00:16:3E:0A:BB:FC"),
        Some(Device::Vif {
            mac: Some([0, 0x16, 0x3e, 0x0a, 0xbb, 0xfc])
        })
    );
}

/// xorshift64*: deterministic, dependency-free randomness for the fuzz test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// 100 000 randomly mutated bundles: parse never panics, and whatever it accepts is
/// self-consistent (payloads inside the module, references resolved).
#[test]
fn fuzz_mutated_bundles_never_panic() {
    let seeds = [sample(), {
        let d: &[u8] = b"name=a\nmemory=1\nvcpus=1\nkernel=k\ndevice=vif\n";
        build(&[(TYPE_KERNEL, b"k", &[7u8; 13]), (TYPE_DOMAIN, b"a", d)])
    }];
    let interesting: [u64; 8] = [0, 1, 7, 8, 64, 65, u64::MAX, u64::MAX - 7];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut rejected_past_crc) = (0u32, 0u32);
    for i in 0..100_000 {
        let mut b = seeds[i % seeds.len()].clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(7) {
                0 => {
                    let at = rng.below(b.len());
                    b[at] ^= 1 << rng.below(8);
                }
                1 => {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                2 => {
                    let at = rng.below(b.len() - 7) & !7;
                    let v = interesting[rng.below(interesting.len())];
                    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
                3 => {
                    let at = rng.below(b.len() - 3) & !3;
                    let v = interesting[rng.below(interesting.len())] as u32;
                    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                4 => b.truncate(rng.below(b.len() + 1)),
                5 => {
                    let at = rng.below(b.len() + 1);
                    b.insert(at, rng.next() as u8);
                }
                _ => {
                    let at = rng.below(b.len());
                    b[at] = [b'=', b'\n', b'0', b'9', 0xc3, b':'][rng.below(6)];
                }
            }
            if b.len() < 8 {
                break;
            }
        }
        // Mostly keep the CRC right, so that mutations reach the entry parser.
        if rng.below(8) != 0 {
            fix_crc(&mut b);
        }
        match parse(&b) {
            Ok(bundle) => {
                accepted += 1;
                for f in &bundle.files {
                    assert!(f.offset % 8 == 0 && f.offset + f.data.len() <= b.len());
                    let _ = kernel_format(f.data);
                }
                for d in &bundle.domains {
                    assert!(bundle.kernel_of(d).is_some());
                    assert!(d.initrd.is_none() || bundle.initrd_of(d).is_some());
                    assert!((1..=MAX_VCPUS).contains(&d.vcpus));
                    assert!((1..=MAX_MEMORY_MIB).contains(&d.memory_mib));
                }
            }
            Err(e) => {
                if !matches!(e.kind, BundleErrorKind::BadCrc { .. }) {
                    rejected_past_crc += 1;
                }
                assert!(e.offset <= b.len(), "{e}");
                let _ = format!("{e}");
            }
        }
    }
    // The mutations exercise the parser past the header.
    assert!(accepted > 100, "accepted {accepted}");
    assert!(rejected_past_crc > 10_000, "{rejected_past_crc}");
}
