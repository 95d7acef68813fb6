//! Module classification and the boot bundle: every kind by its magic, unknown and unreadable
//! modules, a good bundle, a corrupt one, one dom0 cannot reach.

use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use report::BootReport;
use xen::start_info::ModuleInfo;

use super::*;
use crate::testkit::FakePlatform;

/// A version-1 bundle (format in `toolstack::bundle`): one DomU `web`, its kernel.
fn bundle() -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, ty: u32, name: &str, payload: &[u8]) {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.resize(out.len().next_multiple_of(8), 0);
        out.extend_from_slice(payload);
        out.resize(out.len().next_multiple_of(8), 0);
    }
    let mut body = Vec::new();
    entry(
        &mut body,
        1,
        "web",
        b"name=web\nmemory=64\nvcpus=2\nkernel=vmlinux\n",
    );
    entry(&mut body, 2, "vmlinux", b"\x7fELF not really a kernel");
    let mut out = b"XDB0BNDL".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&((32 + body.len()) as u64).to_le_bytes());
    out.extend_from_slice(&toolstack::bundle::crc32(&body).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn module(index: u32, paddr: u64, size: usize) -> ModuleInfo {
    ModuleInfo {
        index,
        paddr,
        size: size as u64,
        cmdline: "m".to_string(),
        cmdline_paddr: 0,
    }
}

#[test]
fn each_kind_by_its_magic() {
    let cases: [(&[u8], ModuleKind); 7] = [
        (b"XDB0BNDL\x01\0\0\0", ModuleKind::BootBundle),
        (b"\x7fELF\x02\x01", ModuleKind::Elf),
        (b"\x1f\x8b\x08\0", ModuleKind::Compressed(Compression::Gzip)),
        (b"\xfd7zXZ\0\0", ModuleKind::Compressed(Compression::Xz)),
        (
            b"\x28\xb5\x2f\xfd\x04",
            ModuleKind::Compressed(Compression::Zstd),
        ),
        (b"070701000", ModuleKind::Cpio),
        (b"070702000", ModuleKind::Cpio),
    ];
    let mut bz = vec![0u8; HEAD_LEN];
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    assert_eq!(classify(&bz), Ok(ModuleKind::BzImage));
    assert_eq!(ModuleKind::BzImage.name(), "bzImage");
    for (head, kind) in cases {
        assert_eq!(classify(head), Ok(kind), "{head:x?}");
    }
}

#[test]
fn unknown_heads_name_their_first_bytes_and_short_ones_do_not_panic() {
    assert_eq!(
        classify(b"MZ\x90\0\x03\0\0\0\x04\0"),
        Err("first bytes 4d 5a 90 00 03 00 00 00".to_string())
    );
    assert_eq!(classify(b""), Err("first bytes ".to_string()));
    assert_eq!(classify(b"\x7fEL"), Err("first bytes 7f 45 4c".to_string()));
}

#[test]
fn a_good_bundle_is_described_and_returned() {
    let b = bundle();
    let mut p = FakePlatform::new(pci::sim::SimConfig::new());
    p.regions.push((0x200_0000, b.clone()));
    let mut rep = BootReport::default();
    let got = survey(&p, &mut rep, &[module(0, 0x200_0000, b.len())]);
    assert_eq!(got, Some(b.as_slice()));
    let m = &rep.modules[0];
    assert_eq!(m.kind, "boot bundle");
    assert!(
        matches!(&m.status, ModuleStatus::Used(what)
            if what.starts_with("1 DomU(s), 1 file(s): web (64 MiB, 2 vCPUs, kernel vmlinux: ")),
        "{:?}",
        m.status
    );
    assert!(rep.errors.is_empty(), "{:?}", rep.errors);
}

#[test]
fn a_corrupt_bundle_is_refused_with_its_reason_and_the_rest_is_still_read() {
    let mut b = bundle();
    let last = b.len() - 9;
    b[last] ^= 0xff; // the CRC no longer matches
    let mut p = FakePlatform::new(pci::sim::SimConfig::new());
    p.regions.push((0x200_0000, b.clone()));
    p.regions.push((0x300_0000, b"\x1f\x8b\x08\0rest".to_vec()));
    let mut rep = BootReport::default();
    let mods = [module(0, 0x200_0000, b.len()), module(1, 0x300_0000, 8)];
    assert_eq!(survey(&p, &mut rep, &mods), None);
    assert!(
        matches!(&rep.modules[0].status, ModuleStatus::Rejected(why) if why.contains("CRC")),
        "{:?}",
        rep.modules[0].status
    );
    assert!(
        rep.errors[0].starts_with("module 0: boot bundle rejected: "),
        "{:?}",
        rep.errors
    );
    assert_eq!(rep.modules[1].kind, "gzip data");
    assert_eq!(rep.modules[1].status, ModuleStatus::Recognised);
    assert_eq!(
        rep.modules[1].status.to_string(),
        "recognised; nothing consumes it yet"
    );
}

#[test]
fn unreadable_and_unreachable_modules_are_errors() {
    let b = bundle();
    let mut p = FakePlatform::new(pci::sim::SimConfig::new());
    // Readable head, but `module_bytes` refuses it (say, not in dom0's map): size differs.
    p.regions.push((0x200_0000, b.clone()));
    let mut rep = BootReport::default();
    let mods = [
        module(0, 0x200_0000, b.len() - 8),
        module(1, 0x900_0000, 4096),
    ];
    assert_eq!(survey(&p, &mut rep, &mods), None);
    assert_eq!(rep.modules[0].kind, "boot bundle");
    assert!(
        matches!(&rep.modules[0].status, ModuleStatus::Rejected(why)
            if why.contains("not in the identity map")),
        "{:?}",
        rep.modules[0].status
    );
    assert_eq!(rep.modules[1].kind, "unknown");
    assert!(
        matches!(&rep.modules[1].status, ModuleStatus::Rejected(why)
            if why.starts_with("not recognised (unreadable: ")),
        "{:?}",
        rep.modules[1].status
    );
    assert!(
        rep.modules[1]
            .status
            .to_string()
            .starts_with("rejected: not recognised (unreadable: ")
    );
    assert_eq!(rep.errors.len(), 2, "{:?}", rep.errors);
}

#[test]
fn an_empty_module_is_not_recognised() {
    let p = FakePlatform::new(pci::sim::SimConfig::new());
    let mut rep = BootReport::default();
    survey(&p, &mut rep, &[module(0, 0x100_0000, 0)]);
    assert_eq!(rep.modules[0].kind, "unknown");
}
