//! Loading bzImages into a simulated guest memory: a synthetic bzImage around each format, and
//! the real Debian kernel.

use std::vec;
use std::vec::Vec;

use super::*;
use crate::kernel::Compression;
use crate::kernel::elf::parse;
use crate::kernel::testutil::{linux_payload, real_vmlinuz, synthetic_kernel};

fn bzimage(payload: &[u8], pref: u64, init: u32) -> Vec<u8> {
    crate::kernel::testutil::bzimage_with(payload, pref, init)
}

/// Loads `image` into a simulated guest memory and checks every segment against the ELF.
fn load(image: &[u8], elf: &[u8]) -> BzLoad {
    let plan = plan_bzimage(image).unwrap();
    assert_eq!(plan.elf_len, elf.len());
    let mut guest = vec![0x77u8; plan.map_len as usize];
    let k = load_bzimage(image, &plan, &mut guest).unwrap();
    assert_eq!(k, parse(elf).unwrap());
    for s in &k.segments {
        let at = (s.paddr - plan.base) as usize;
        let file = &elf[s.offset as usize..(s.offset + s.filesz) as usize];
        assert!(
            guest[at..at + file.len()] == *file,
            "segment {:#x}",
            s.paddr
        );
        let bss = at + file.len()..at + s.memsz as usize;
        assert!(guest[bss].iter().all(|&b| b == 0));
    }
    plan
}

#[test]
fn synthetic_bzimages_load_in_each_format() {
    let elf = synthetic_kernel(150_000);
    let k = parse(&elf).unwrap();
    let span = (k.end - k.start).max(elf.len() as u64) as u32;
    for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
        let Some(p) = linux_payload(c, &elf) else {
            continue;
        };
        let img = bzimage(&p, k.start, span);
        let plan = load(&img, &elf);
        assert_eq!(plan.base, k.start);
        assert!(plan.map_len >= u64::from(span));
        // A mapping shorter than the plan says: refused before anything is written.
        let mut short = vec![0u8; plan.map_len as usize - 1];
        let e = load_bzimage(&img, &plan, &mut short).unwrap_err();
        assert!(matches!(e, LoadError::SliceTooShort { .. }), "{e}");
    }
}

#[test]
fn bad_bzimages_are_errors() {
    let elf = synthetic_kernel(10_000);
    let Some(p) = linux_payload(Compression::Gzip, &elf) else {
        return;
    };
    // Loads above 4 GiB.
    let img = bzimage(&p, 0xffff_f000, 0x10_0000);
    assert!(matches!(plan_bzimage(&img), Err(LoadError::Above4G { .. })));
    // A base above the kernel's first segment: the ELF cannot be placed.
    let img = bzimage(&p, 0x200_0000, 0x10_0000);
    let plan = plan_bzimage(&img).unwrap();
    let mut guest = vec![0u8; plan.map_len as usize];
    let e = load_bzimage(&img, &plan, &mut guest).unwrap_err();
    assert!(
        matches!(e, LoadError::Elf(ElfError::NotInPlace { .. })),
        "{e}"
    );
    // A payload that is not a kernel, and one that is not supported.
    let junk = linux_payload(Compression::Gzip, b"not an ELF at all, just text").unwrap();
    let img = bzimage(&junk, 0x100_0000, 0x1000);
    let plan = plan_bzimage(&img).unwrap();
    let mut guest = vec![0u8; plan.map_len as usize];
    assert!(matches!(
        load_bzimage(&img, &plan, &mut guest),
        Err(LoadError::Elf(ElfError::NotElf))
    ));
    let img = bzimage(b"BZh91AY&SY\0\0\0\0", 0x100_0000, 0x1000);
    let e = plan_bzimage(&img).unwrap_err();
    assert_eq!(
        e.to_string(),
        "decompressing the kernel: not supported: bzip2"
    );
}

#[test]
fn real_debian_bzimage_loads() {
    let Some((_, img)) = real_vmlinuz() else {
        return;
    };
    let plan = plan_bzimage(&img).unwrap();
    std::eprintln!(
        "real bzImage: {:?} payload, ELF {} bytes, base {:#x}, map {} bytes (init_size {:?})",
        plan.payload.compression,
        plan.elf_len,
        plan.base,
        plan.map_len,
        init_size(&img)
    );
    let mut guest = vec![0u8; plan.map_len as usize];
    let k = load_bzimage(&img, &plan, &mut guest).unwrap();
    assert!(k.start >= plan.base && k.end <= plan.end());
    assert_eq!(k.segments.len(), 4);
    std::eprintln!("entry {:#x}, kernel {:#x}..{:#x}", k.entry, k.start, k.end);
}
