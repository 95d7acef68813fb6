//! Loading in place: synthetic kernels with segments that move down, stay, or move up past the
//! file; hostile layouts refused; the real Debian kernel decompressed into a simulated guest
//! memory and loaded there, compared with a plain copy of each segment.

use std::vec;
use std::vec::Vec;

use super::*;
use crate::kernel::decompress::{decompress_into, output_room};
use crate::kernel::elf::{PHDR_LEN, Phdr, program_headers};
use crate::kernel::testutil::{linux_payload, real_kernel, synthetic_kernel};

/// What a copying loader would put at `base..base+span`: each segment's file bytes at its
/// address, zeros elsewhere (bss included).
fn copied(elf: &[u8], base: u64, span: usize) -> Vec<u8> {
    let k = parse(elf).unwrap();
    let mut m = vec![0u8; span];
    for s in &k.segments {
        let d = (s.paddr - base) as usize;
        let f = s.offset as usize..(s.offset + s.filesz) as usize;
        m[d..d + f.len()].copy_from_slice(&elf[f]);
    }
    m
}

/// Checks that `mem` (loaded in place) holds every segment as [`copied`] does.
fn same_segments(mem: &[u8], elf: &[u8], base: u64) {
    let want = copied(elf, base, mem.len());
    for s in &parse(elf).unwrap().segments {
        let r = (s.paddr - base) as usize..(s.paddr - base + s.memsz) as usize;
        assert!(
            mem[r.clone()] == want[r.clone()],
            "segment at {:#x} differs",
            s.paddr
        );
    }
}

/// Rewrites program header `i` of `elf`.
fn set_phdr(elf: &mut [u8], i: usize, f: impl FnOnce(&mut Phdr)) {
    let mut p = program_headers(elf).unwrap()[i];
    f(&mut p);
    let at = 64 + i * PHDR_LEN;
    elf[at..at + PHDR_LEN].copy_from_slice(&p.to_bytes());
}

#[test]
fn synthetic_kernel_loads_in_place() {
    let elf = synthetic_kernel(50_000);
    let base = in_place_base(&elf).unwrap();
    let k = parse(&elf).unwrap();
    assert_eq!(base, k.segments[0].paddr - k.segments[0].offset);
    for b in [base, base + 0x40, k.segments[0].paddr] {
        let plan = plan_in_place(&elf, b).unwrap();
        let mut mem = vec![0xeeu8; plan.span as usize];
        mem[..elf.len()].copy_from_slice(&elf);
        let got = load_in_place(&mut mem, elf.len(), b).unwrap();
        assert_eq!(got, k);
        same_segments(&mem, &elf, b);
    }
    // Below the lowest base, the segment would move up over itself.
    let e = plan_in_place(&elf, base - 1).unwrap_err();
    assert!(matches!(e, ElfError::NotInPlace { .. }), "{e}");
    // Too small a slice.
    let mut mem = elf.clone();
    let e = load_in_place(&mut mem, elf.len(), base).unwrap_err();
    assert!(matches!(e, ElfError::InPlaceRoom { .. }), "{e}");
    // The file length past the slice.
    assert!(load_in_place(&mut mem.clone(), elf.len() + 1, base).is_err());
}

#[test]
fn a_segment_may_move_up_only_past_the_file() {
    // The code segment's address put far above the file: it moves up, wholly past the file.
    let mut elf = synthetic_kernel(20_000);
    let far = 0x100_0000 + 0x10_0000;
    set_phdr(&mut elf, 0, |p| p.p_paddr = far);
    // The entry note must follow the segment: rewrite the note's value (build_test_kernel puts
    // the note after the two program headers: 12 bytes of header, "Xen\0", the value).
    let note_val = 64 + 2 * PHDR_LEN + 16;
    elf[note_val..note_val + 4].copy_from_slice(&(far as u32 + 0x40).to_le_bytes());
    let base = 0x100_0000 - 0x1000;
    let plan = plan_in_place(&elf, base).unwrap();
    assert!(plan.moves[0].dst > elf.len() as u64);
    let mut mem = vec![0u8; plan.span as usize];
    mem[..elf.len()].copy_from_slice(&elf);
    load_in_place(&mut mem, elf.len(), base).unwrap();
    same_segments(&mem, &elf, base);
    // Moving up by less than the file's length would overwrite its own bytes: refused.
    let near = plan_in_place(&elf, far - 0x200).unwrap_err();
    assert!(matches!(near, ElfError::NotInPlace { .. }), "{near}");
}

#[test]
fn segments_below_the_base_are_refused() {
    let elf = synthetic_kernel(4_000);
    let e = plan_in_place(&elf, 0x200_0000).unwrap_err();
    assert!(e.to_string().contains("below the base"), "{e}");
    // An offset above the address: no base works.
    let mut bad = elf.clone();
    set_phdr(&mut bad, 0, |p| p.p_paddr = 0x10);
    assert!(in_place_base(&bad).is_err());
}

/// Decompresses `payload` into a simulated guest memory at `base` (as dom0 would into its
/// mapping), loads it in place and compares with a copying loader.
fn into_guest(c: Compression, payload: &[u8], elf: &[u8], base: u64) {
    let plan = plan_in_place(elf, base).unwrap();
    let room = output_room(c, payload).unwrap().max(plan.span as usize);
    let mut guest = vec![0x5au8; room];
    let n = decompress_into(c, payload, &mut guest).unwrap();
    assert_eq!(n, elf.len());
    let k = load_in_place(&mut guest, n, base).unwrap();
    assert_eq!(k, parse(elf).unwrap());
    same_segments(&guest, elf, base);
}

use crate::kernel::Compression;

#[test]
fn streams_into_a_simulated_guest_memory() {
    let elf = synthetic_kernel(200_000);
    let base = in_place_base(&elf).unwrap();
    for c in [Compression::Gzip, Compression::Xz, Compression::Zstd] {
        if let Some(p) = linux_payload(c, &elf) {
            into_guest(c, &p, &elf, base);
        }
    }
}

#[test]
fn real_kernel_into_a_simulated_guest_memory() {
    let Some((_, c, payload, elf)) = real_kernel() else {
        return;
    };
    let base = in_place_base(&elf).unwrap();
    let k = parse(&elf).unwrap();
    std::eprintln!(
        "real kernel: base {base:#x}, first segment {:#x}, span {:#x}, moves {:?}",
        k.segments[0].paddr,
        plan_in_place(&elf, base).unwrap().span,
        plan_in_place(&elf, base).unwrap().moves
    );
    into_guest(c, &payload, &elf, base);
    // Linux's own choice: the first segment's address (the bzImage's pref_address).
    into_guest(c, &payload, &elf, k.segments[0].paddr);
}

#[test]
fn damaged_headers_never_panic() {
    // Random bytes written over the ELF and program headers: an error or a consistent load.
    let elf = synthetic_kernel(8_000);
    let base = in_place_base(&elf).unwrap();
    let mut r = crate::kernel::testutil::Rng(0xe1f);
    for _ in 0..5000 {
        let mut e = elf.clone();
        for _ in 0..1 + r.below(6) {
            let at = r.below(64 + 2 * PHDR_LEN + 24);
            e[at] = r.next() as u8;
        }
        let b = if r.below(2) == 0 {
            base
        } else {
            r.next() & 0xffff_ffff
        };
        let mut mem = e.clone();
        mem.resize(e.len() + r.below(0x8000), 0);
        let n = e.len();
        if let Ok(k) = load_in_place(&mut mem, n, b) {
            for s in &k.segments {
                assert!(s.paddr >= b && s.paddr - b + s.memsz <= mem.len() as u64);
            }
        }
    }
}
