//! Tests of `guest.rs`.

use super::*;
use toolstack::kernel::elf::{Phdr, XEN_ELFNOTE_PHYS32_ENTRY, notes as elf_notes};
use xen::le::{get_u16 as le16, get_u64 as le64};

// ---- cpio ----

#[derive(Debug)]
struct Entry {
    name: String,
    ino: u32,
    mode: u32,
    nlink: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// A strict newc reader: magic, hex fields, 4-byte alignment of every header and every
/// data block, zero padding, the trailer last and nothing after it.
fn parse_cpio(a: &[u8]) -> Vec<Entry> {
    assert_eq!(a.len() % 4, 0, "archive length not 4-aligned");
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        assert_eq!(at % 4, 0, "header at {at} not 4-aligned");
        let h = &a[at..at + 110];
        assert_eq!(&h[..6], b"070701");
        let f: Vec<u32> = (0..13)
            .map(|i| {
                let hex = std::str::from_utf8(&h[6 + i * 8..14 + i * 8]).unwrap();
                assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{hex}");
                u32::from_str_radix(hex, 16).unwrap()
            })
            .collect();
        let namesize = f[11] as usize;
        let name = &a[at + 110..at + 110 + namesize];
        assert_eq!(name.last(), Some(&0), "name not NUL-terminated");
        let name = std::str::from_utf8(&name[..namesize - 1])
            .unwrap()
            .to_string();
        let data_at = (at + 110 + namesize).next_multiple_of(4);
        assert!(a[at + 110 + namesize..data_at].iter().all(|&b| b == 0));
        let size = f[6] as usize;
        let data = a[data_at..data_at + size].to_vec();
        let next = (data_at + size).next_multiple_of(4);
        assert!(a[data_at + size..next].iter().all(|&b| b == 0));
        assert_eq!(
            (f[2], f[3], f[5], f[12]),
            (0, 0, 0, 0),
            "uid gid mtime check"
        );
        at = next;
        let trailer = name == "TRAILER!!!";
        out.push(Entry {
            name,
            ino: f[0],
            mode: f[1],
            nlink: f[4],
            rdev: (f[9], f[10]),
            data,
        });
        if trailer {
            assert_eq!(at, a.len(), "bytes after the trailer");
            return out;
        }
    }
}

#[test]
fn cpio_round_trip() {
    let mut w = CpioWriter::new();
    w.dir("d", 0o755);
    w.file("d/f", 0o644, b"hello");
    w.file("empty", 0o600, b"");
    w.file("four", 0o600, b"1234");
    w.symlink("link", "d/f");
    w.char_dev("console", 0o600, 5, 1);
    let a = w.finish();
    let e = parse_cpio(&a);
    let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["d", "d/f", "empty", "four", "link", "console", "TRAILER!!!"]
    );
    assert_eq!(e[0].mode, S_IFDIR | 0o755);
    assert_eq!(e[0].nlink, 2);
    assert_eq!(
        (e[1].mode, e[1].data.as_slice()),
        (S_IFREG | 0o644, &b"hello"[..])
    );
    assert!(e[2].data.is_empty());
    assert_eq!(
        (e[4].mode, e[4].data.as_slice()),
        (S_IFLNK | 0o777, &b"d/f"[..])
    );
    assert_eq!((e[5].mode, e[5].rdev), (S_IFCHR | 0o600, (5, 1)));
    // Distinct inode numbers (the kernel links entries with equal ino/nlink > 1).
    let mut inos: Vec<u32> = e[..6].iter().map(|e| e.ino).collect();
    inos.dedup();
    assert_eq!(inos.len(), 6);
    assert_eq!((e[6].mode, e[6].data.len()), (0, 0));
    // The exact first header: ino 1, mode 040755, nlink 2, namesize 2.
    let fields = [1, 0o40755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 2, 0];
    let want: String = fields.iter().map(|f| format!("{f:08X}")).collect();
    assert_eq!(a[..110], *format!("070701{want}").as_bytes());
    assert_eq!(&a[110..112], b"d\0");
    // The empty archive is the trailer alone.
    let empty = CpioWriter::new().finish();
    assert_eq!(parse_cpio(&empty).len(), 1);
    assert_eq!(empty.len(), 124);
}

#[test]
fn cpio_alignment_for_every_name_and_size() {
    for name_len in 1..9 {
        for size in 0..9 {
            let mut w = CpioWriter::new();
            let name = "n".repeat(name_len);
            let data = vec![0xa5; size];
            w.file(&name, 0o644, &data);
            let e = parse_cpio(&w.finish());
            assert_eq!(
                (e[0].name.as_str(), e[0].data.as_slice()),
                (name.as_str(), data.as_slice())
            );
        }
    }
}

#[test]
fn initramfs_layout() {
    let bb = b"\x7fELF fake busybox".to_vec();
    let nf = b"\x7fELF fake netfront".to_vec();
    let a = initramfs(&bb, &nf);
    let e = parse_cpio(&a);
    let find = |n: &str| {
        e.iter()
            .find(|e| e.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    for d in ["bin", "dev", "etc", "proc", "sys", "tmp"] {
        assert_eq!(find(d).mode & 0o170000, S_IFDIR, "{d}");
    }
    assert_eq!(find("tmp").mode, S_IFDIR | 0o1777);
    assert_eq!(find("bin/busybox").mode, S_IFREG | 0o755);
    assert_eq!(find("bin/busybox").data, bb);
    assert_eq!(find("lib/modules/xen-netfront.ko").data, nf);
    assert!(
        e.iter().position(|e| e.name == "lib/modules").unwrap()
            < e.iter()
                .position(|e| e.name == "lib/modules/xen-netfront.ko")
                .unwrap()
    );
    let init = find("init");
    assert_eq!(init.mode, S_IFREG | 0o755);
    assert_eq!(init.data, INIT_SCRIPT.as_bytes());
    assert_eq!(find("dev/console").rdev, (5, 1));
    // Directories come before what is in them.
    let pos = |n: &str| e.iter().position(|e| e.name == n).unwrap();
    assert!(pos("bin") < pos("bin/busybox") && pos("dev") < pos("dev/console"));
    assert_eq!(initramfs(&bb, &nf), a, "not deterministic");
}

#[test]
fn init_script_says_what_the_tests_look_for() {
    let s = INIT_SCRIPT;
    assert!(s.starts_with("#!/bin/busybox sh\n"));
    for needle in [
        "mount -t devtmpfs devtmpfs /dev",
        "mount -t proc proc /proc",
        "mount -t sysfs sysfs /sys",
        "/sys/devices/system/cpu/online",
        "echo \"DOMU-INIT: up $($bb uname -r) vcpus=$cpus\"",
        "/dev/xen/xenbus",
        "le32 11; le32 1; le32 0; le32 $len;",
        "xs_write data/init \"hello from init\"",
        "DOMU-INIT: xenstore write ok",
        "DOMU-INIT: xenstore write failed",
        "*\" domu-test=crash \"*)",
        "DOMU-INIT: crashing\"\n        exit 1",
        "*\" domu-test=stay \"*)",
        "while true; do $bb sleep 1; done",
        "DOMU-INIT: powering off",
        "$bb poweroff -f\necho o > /proc/sysrq-trigger\n$bb reboot -f\n",
    ] {
        assert!(s.contains(needle), "init script lacks {needle:?}");
    }
    // Every command runs through busybox: no applet links are in the archive.
    for applet in [
        "mount", "cat", "tr", "nproc", "uname", "timeout", "dd", "sleep",
    ] {
        assert!(!s.contains(&format!("\n{applet} ")), "{applet} without $bb");
    }
}

// ---- ELF ----

fn put_phdr(out: &mut [u8], at: usize, p: Phdr) {
    out[at..at + PHDR_LEN].copy_from_slice(&p.to_bytes());
}

fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
    let mut n = Vec::new();
    n.extend_from_slice(&(name.len() as u32 + 1).to_le_bytes());
    n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    n.extend_from_slice(&ty.to_le_bytes());
    n.extend_from_slice(name);
    n.push(0);
    n.resize(n.len().next_multiple_of(4), 0);
    n.extend_from_slice(desc);
    n.resize(n.len().next_multiple_of(4), 0);
    n
}

const LOAD0_OFF: usize = 0x20_0000;
const NOTE_IN_LOAD: usize = 0x20_0100;
const LOAD1_OFF: usize = 0x20_3123;
const OUTER_NOTE_OFF: usize = 0x20_5000;

/// A vmlinux-like ELF: two LOADs with 2 MiB alignment, a PT_NOTE inside the first (Xen's
/// PHYS32_ENTRY among other notes), a GNU_STACK, a PT_NOTE outside every LOAD, a
/// PT_DYNAMIC-like segment with bytes outside every LOAD, a PT_PHDR, "debug" bytes and
/// section headers.
fn vmlinux_like(notes: &[u8]) -> (Vec<u8>, Vec<Phdr>) {
    let mut elf = vec![0u8; 0x21_0000];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[6] = 1;
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[24..32].copy_from_slice(&0x100_0000u64.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes());
    elf[40..48].copy_from_slice(&0x20_8000u64.to_le_bytes()); // e_shoff
    elf[52..54].copy_from_slice(&64u16.to_le_bytes());
    elf[54..56].copy_from_slice(&56u16.to_le_bytes());
    elf[58..60].copy_from_slice(&64u16.to_le_bytes());
    elf[60..62].copy_from_slice(&5u16.to_le_bytes());
    elf[62..64].copy_from_slice(&4u16.to_le_bytes());
    for (i, b) in elf.iter_mut().enumerate().skip(0x1000) {
        *b = (i * 7 + i / 251) as u8; // recognisable bytes everywhere
    }
    // A zero tail in the first LOAD (a .bss in the file), then bytes again in the second.
    elf[LOAD0_OFF + 0x1000..LOAD0_OFF + 0x2000].fill(0);
    elf[NOTE_IN_LOAD..NOTE_IN_LOAD + notes.len()].copy_from_slice(notes);
    let outer = note(b"GNU", 3, b"buildid!");
    elf[OUTER_NOTE_OFF..OUTER_NOTE_OFF + outer.len()].copy_from_slice(&outer);
    let phdrs = vec![
        Phdr {
            p_type: PT_PHDR,
            p_flags: 4,
            p_offset: 64,
            p_vaddr: 0x40,
            p_paddr: 0x40,
            p_filesz: 8 * 56,
            p_memsz: 8 * 56,
            p_align: 8,
        },
        Phdr {
            p_type: PT_LOAD,
            p_flags: 5,
            p_offset: LOAD0_OFF as u64,
            p_vaddr: 0xffff_ffff_8100_0000,
            p_paddr: 0x100_0000,
            p_filesz: 0x2000,
            p_memsz: 0x3000,
            p_align: 0x20_0000,
        },
        Phdr {
            p_type: PT_LOAD,
            p_flags: 6,
            p_offset: LOAD1_OFF as u64,
            p_vaddr: 0xffff_ffff_8220_3123,
            p_paddr: 0x220_3123,
            p_filesz: 0x800,
            p_memsz: 0x10_0000,
            p_align: 0x20_0000,
        },
        Phdr {
            p_type: PT_NOTE,
            p_flags: 4,
            p_offset: NOTE_IN_LOAD as u64,
            p_vaddr: 0xffff_ffff_8100_0100,
            p_paddr: 0x100_0100,
            p_filesz: notes.len() as u64,
            p_memsz: notes.len() as u64,
            p_align: 4,
        },
        Phdr {
            p_type: 0x6474_e551,
            p_flags: 6,
            p_offset: 0,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: 0,
            p_memsz: 0,
            p_align: 16,
        },
        Phdr {
            p_type: PT_NOTE,
            p_flags: 4,
            p_offset: OUTER_NOTE_OFF as u64,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: outer.len() as u64,
            p_memsz: outer.len() as u64,
            p_align: 4,
        },
        Phdr {
            p_type: 2,
            p_flags: 6,
            p_offset: 0x20_6000,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: 0x100,
            p_memsz: 0x100,
            p_align: 8,
        },
        Phdr {
            p_type: PT_LOAD,
            p_flags: 6,
            p_offset: 0x20_7000,
            p_vaddr: 0xffff_ffff_8300_0000,
            p_paddr: 0x300_0000,
            p_filesz: 0,
            p_memsz: 0x1000,
            p_align: 0x1000,
        },
    ];
    elf[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for (i, p) in phdrs.iter().enumerate() {
        put_phdr(&mut elf, 64 + i * PHDR_LEN, *p);
    }
    (elf, phdrs)
}

fn xen_notes(entry: &[u8]) -> Vec<u8> {
    [
        note(b"Xen", 6, b"linux\0"),
        note(b"Xen", XEN_ELFNOTE_PHYS32_ENTRY, entry),
        note(b"Linux", 1, b"x"),
    ]
    .concat()
}

#[test]
fn compaction_keeps_loads_and_notes_only() {
    let (elf, old) = vmlinux_like(&xen_notes(&0x100_0850u64.to_le_bytes()));
    let out = compact_elf(&elf).unwrap();
    assert!(out.len() < 0x5000, "{} bytes", out.len());
    assert_eq!(&out[..32], &elf[..32], "ident, type, machine, entry");
    assert_eq!(le64(&out, 32), Some(64));
    assert_eq!(le64(&out, 40), Some(0), "e_shoff");
    assert_eq!(le16(&out, 60), Some(0), "e_shnum");
    assert_eq!(le16(&out, 62), Some(0), "e_shstrndx");
    let new = program_headers(&out).unwrap();
    // PT_PHDR and the segment with bytes outside every LOAD are gone, the rest in order.
    let types: Vec<u32> = new.iter().map(|p| p.p_type).collect();
    assert_eq!(
        types,
        [PT_LOAD, PT_LOAD, PT_NOTE, 0x6474_e551, PT_NOTE, PT_LOAD]
    );
    let kept = [&old[1], &old[2], &old[3], &old[4], &old[5], &old[7]];
    for (n, o) in new.iter().zip(kept) {
        assert_eq!(
            (n.p_flags, n.p_vaddr, n.p_paddr, n.p_memsz),
            (o.p_flags, o.p_vaddr, o.p_paddr, o.p_memsz)
        );
        let (nr, or) = (
            n.file_range(0, out.len()).unwrap(),
            o.file_range(0, elf.len()).unwrap(),
        );
        // The kept bytes, and only zeros left out.
        let (kept, dropped) = elf[or].split_at(nr.len());
        assert_eq!(out[nr], *kept, "bytes of {o:?}");
        assert!(dropped.iter().all(|&b| b == 0), "{o:?}");
        if n.p_type == PT_LOAD {
            assert_eq!(n.p_offset % PAGE, o.p_offset % PAGE);
            assert_eq!(n.p_offset % n.p_align, n.p_vaddr % n.p_align);
        }
    }
    // 2 MiB alignment could not be kept without padding: lowered to a page (the loop
    // above checked offset/address congruence with whatever p_align is left).
    assert_eq!((new[0].p_align, new[1].p_align), (PAGE, PAGE));
    assert_eq!(new[5].p_align, 0x1000);
    // The note inside the first LOAD points into its copy.
    assert_eq!(
        new[2].p_offset - new[0].p_offset,
        (NOTE_IN_LOAD - LOAD0_OFF) as u64
    );
    assert_eq!(new[3].p_offset, 0);
    // The first LOAD's zero tail is left to the loader; the others are whole.
    assert_eq!(new[0].p_filesz, 0x1000);
    assert_eq!(
        (new[1].p_filesz, new[4].p_filesz),
        (old[2].p_filesz, old[5].p_filesz)
    );
    assert_eq!(xen_phys32_entry(&out).unwrap(), 0x100_0850);
    assert_eq!(xen_phys32_entry(&elf).unwrap(), 0x100_0850);
    let notes = elf_notes(&out).unwrap();
    assert_eq!(notes.len(), 4);
    assert_eq!(
        (notes[3].name.as_slice(), notes[3].n_type),
        (&b"GNU"[..], 3)
    );
    // Compacting again changes nothing.
    assert_eq!(compact_elf(&out).unwrap(), out);
}

#[test]
fn phys32_entry_note_forms() {
    let (elf, _) = vmlinux_like(&xen_notes(&0x100_0850u32.to_le_bytes()));
    assert_eq!(
        xen_phys32_entry(&compact_elf(&elf).unwrap()).unwrap(),
        0x100_0850
    );
    let (elf, _) = vmlinux_like(&xen_notes(&[1, 2, 3]));
    let e = format!("{:#}", xen_phys32_entry(&elf).unwrap_err());
    assert!(e.contains("3-byte"), "{e}");
    let without = [note(b"Xen", 6, b"linux\0"), note(b"Linux", 18, b"abcd")].concat();
    let (elf, _) = vmlinux_like(&without);
    let e = format!("{:#}", xen_phys32_entry(&elf).unwrap_err());
    assert!(e.contains("no Xen note XEN_ELFNOTE_PHYS32_ENTRY"), "{e}");
    assert!(e.contains("1 of them Xen's"), "{e}");
    // A note whose sizes run past its segment.
    let mut bad = note(b"Xen", 18, &[0; 8]);
    bad[4..8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let (elf, _) = vmlinux_like(&bad);
    let e = format!("{:#}", xen_phys32_entry(&elf).unwrap_err());
    assert!(e.contains("cut off"), "{e}");
}

fn patched(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let (mut elf, _) = vmlinux_like(&xen_notes(&[0; 8]));
    f(&mut elf);
    format!("{:#}", compact_elf(&elf).unwrap_err())
}

fn set_phdr(elf: &mut [u8], i: usize, f: impl FnOnce(&mut Phdr)) {
    let mut p = Phdr::read(elf, 64 + i * PHDR_LEN).unwrap();
    f(&mut p);
    put_phdr(elf, 64 + i * PHDR_LEN, p);
}

#[test]
fn hostile_elves_are_rejected() {
    assert!(compact_elf(b"").is_err());
    assert!(patched(|e| e[1] = b'X').contains("not an ELF"));
    assert!(patched(|e| e[4] = 1).contains("ELF64 little-endian"));
    assert!(patched(|e| e[5] = 2).contains("ELF64 little-endian"));
    assert!(patched(|e| e.truncate(63)).contains("not an ELF"));
    assert!(patched(|e| e[52] = 52).contains("e_ehsize"));
    assert!(patched(|e| e[54] = 32).contains("e_phentsize"));
    assert!(
        patched(|e| e[56..58].copy_from_slice(&0u16.to_le_bytes())).contains("no program headers")
    );
    assert!(
        patched(|e| e[56..58].copy_from_slice(&0xffffu16.to_le_bytes()))
            .contains("program headers (more than")
    );
    assert!(
        patched(|e| e[32..40].copy_from_slice(&u64::MAX.to_le_bytes()))
            .contains("runs past the end")
    );
    assert!(
        patched(|e| e[32..40].copy_from_slice(&(0x21_0000u64 - 100).to_le_bytes()))
            .contains("runs past the end")
    );
    assert!(patched(|e| set_phdr(e, 1, |p| p.p_offset = u64::MAX - 4)).contains("past the end"));
    assert!(patched(|e| set_phdr(e, 2, |p| p.p_filesz = 0x21_0000)).contains("past the end"));
    assert!(patched(|e| set_phdr(e, 1, |p| p.p_memsz = 0x10)).contains("larger than p_memsz"));
    assert!(
        patched(|e| {
            for i in [1, 2, 7] {
                set_phdr(e, i, |p| p.p_type = 0x7000_0000);
            }
        })
        .contains("no PT_LOAD")
    );
    // 256 LOADs each covering the whole file: refused, not a 256-fold copy.
    let mut elf = vec![0u8; 64 + 256 * PHDR_LEN];
    elf[..64].copy_from_slice(&vmlinux_like(&[]).0[..64]);
    elf[56..58].copy_from_slice(&256u16.to_le_bytes());
    let len = elf.len() as u64;
    for i in 0..256 {
        let p = Phdr {
            p_type: PT_LOAD,
            p_flags: 4,
            p_offset: 0,
            p_vaddr: 0,
            p_paddr: 0,
            p_filesz: len,
            p_memsz: len,
            p_align: 8,
        };
        put_phdr(&mut elf, 64 + i * PHDR_LEN, p);
    }
    let e = format!("{:#}", compact_elf(&elf).unwrap_err());
    assert!(e.contains("overlap too much"), "{e}");
}

#[test]
fn random_elf_damage_never_panics() {
    let (good, _) = vmlinux_like(&xen_notes(&[0x50, 8, 0, 1, 0, 0, 0, 0]));
    let mut x = 0x1234_5678_9abc_def1u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut ok = 0;
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..(next() % 6 + 1) {
            let at = next() as usize % (64 + 8 * PHDR_LEN);
            b[at] = if next() % 2 == 0 { next() as u8 } else { 0xff };
        }
        if next() % 8 == 0 {
            b.truncate(next() as usize % b.len());
        }
        if let Ok(out) = compact_elf(&b) {
            ok += 1;
            let phdrs = program_headers(&out).unwrap();
            for (i, p) in phdrs.iter().enumerate() {
                p.file_range(i, out.len()).unwrap();
            }
            let _ = xen_phys32_entry(&out);
        }
        let _ = elf_notes(&b);
    }
    assert!(ok > 0);
}

// ---- packages, DomUs ----

#[test]
fn kernel_package_is_read_from_apt_cache() {
    let text = "linux-image-amd64\n  Depends: linux-image-6.1.0-56-amd64\n";
    assert_eq!(
        kernel_package_from_depends(text).as_deref(),
        Some("linux-image-6.1.0-56-amd64")
    );
    let text = "linux-image-amd64\n  Depends: initramfs-tools\n |Depends: linux-image-6.12.9-amd64 (= 6.12.9-1)\n";
    assert_eq!(
        kernel_package_from_depends(text).as_deref(),
        Some("linux-image-6.12.9-amd64")
    );
    assert_eq!(kernel_package_from_depends("linux-image-amd64\n"), None);
    assert_eq!(
        kernel_package_from_depends("  Depends: linux-image-../../x-amd64\n"),
        None
    );
    assert!(!valid_version("../x") && !valid_version("") && valid_version("6.1.0-56-amd64"));
}

#[test]
fn domu_specs_parse() {
    assert_eq!("demo".parse::<DomuSpec>().unwrap(), DomuSpec::new("demo"));
    let d: DomuSpec = "crashy:memory=64,vcpus=2,cmdline=domu-test=crash x=a,b"
        .parse()
        .unwrap();
    assert_eq!(
        d,
        DomuSpec {
            name: "crashy".into(),
            kernel: DomuKernel::Linux,
            memory_mib: 64,
            vcpus: 2,
            cmdline_extra: "domu-test=crash x=a,b".into(),
            vifs: Vec::new(),
            tsc_mode: None,
        }
    );
    assert_eq!(d.cmdline(), "console=hvc0 loglevel=4 domu-test=crash x=a,b");
    assert_eq!(DomuSpec::new("x").cmdline(), DEFAULT_CMDLINE);
    let i = d.domain_input();
    assert_eq!(
        (i.kernel.as_str(), i.initrd.as_deref()),
        ("linux", Some("initramfs"))
    );
    assert_eq!(i.devices, ["console"]);
    // Network interfaces: `vif` (dom0 picks the MAC) or `vif=MAC`, in order, as devices.
    let n: DomuSpec = "net:vif,vif=00:16:3e:00:00:09,cmdline=domu-ip=10.0.0.1/24"
        .parse()
        .unwrap();
    assert_eq!(n.vifs, ["vif", "vif=00:16:3e:00:00:09"]);
    assert_eq!(
        n.domain_input().devices,
        ["console", "vif", "vif=00:16:3e:00:00:09"]
    );
    assert!(n.cmdline().ends_with("domu-ip=10.0.0.1/24"));
    assert_eq!(n.domain_input().tsc_mode, None, "left to dom0's default");
    // xl.cfg's tsc_mode goes into the bundle as given.
    let t: DomuSpec = "t:tsc_mode=native,vif".parse().unwrap();
    assert_eq!(t.tsc_mode, Some(toolstack::bundle::TscMode::Native));
    assert!(t.domain_input().to_text().contains("\ntsc_mode=native\n"));
    for bad in [
        "x:vif=zz",
        "x:vif=01:00:5e:00:00:01",
        "",
        ":memory=1",
        "x:memory=0",
        "x:vcpus=two",
        "x:memory=1,memory=2",
        "x:colour=red",
        "x:memory",
        "x:kernel=bsd",
        "x:kernel=linux,kernel=testguest",
        "x:tsc_mode=fast",
        "x:tsc_mode=native,tsc_mode=default",
    ] {
        assert!(bad.parse::<DomuSpec>().is_err(), "{bad}");
    }
    // The test guest: its own small default memory, no initrd, only the given cmdline.
    let h: DomuSpec = "hostile:kernel=testguest".parse().unwrap();
    assert_eq!(h.kernel, DomuKernel::Testguest);
    assert_eq!(h.memory_mib, TESTGUEST_MEMORY_MIB);
    assert_eq!(h.cmdline(), "");
    let i = h.domain_input();
    assert_eq!((i.kernel.as_str(), i.initrd), ("testguest", None));
    assert_eq!(i.devices, ["console"]);
    let h: DomuSpec = "h:memory=48,kernel=testguest,cmdline=x".parse().unwrap();
    assert_eq!((h.memory_mib, h.cmdline().as_str()), (48, "x"));
    assert_eq!(
        "l:kernel=linux".parse::<DomuSpec>().unwrap(),
        DomuSpec::new("l")
    );
}

#[test]
fn memory_is_raised_for_domus() {
    let two = [DomuSpec::new("a"), "b:memory=512".parse().unwrap()];
    assert_eq!(memory_for_domus(1024, 64, &[], false), (1024, 64));
    assert_eq!(
        memory_for_domus(1024, 64, &two, false),
        (256 + 128 + 512 + 256, 256)
    );
    assert_eq!(memory_for_domus(4096, 512, &two, false), (4096, 512));
    assert_eq!(memory_for_domus(1024, 64, &two, true), (1024, 64));
}

#[test]
fn domu_bundles_share_one_kernel_and_initrd() {
    let dir = std::env::temp_dir().join(format!("guest-test-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let (elf, _) = vmlinux_like(&xen_notes(&[0x50, 8, 0, 1]));
    let elf = compact_elf(&elf).unwrap();
    fs::write(dir.join("vmlinux.elf"), &elf).unwrap();
    let initramfs = write_initramfs(&dir, b"bb", b"nf").unwrap();
    let guest = GuestFiles {
        kernel_version: "6.1.0-0-amd64".into(),
        kernel_package: "k 1".into(),
        busybox_package: "b 1".into(),
        vmlinux: dir.join("vmlinux.elf"),
        vmlinuz: dir.join("vmlinuz"),
        initramfs,
        phys32_entry: 0x100_0850,
    };
    let domus = [
        DomuSpec::new("demo"),
        "crashy:memory=64,vcpus=2,cmdline=domu-test=crash"
            .parse()
            .unwrap(),
    ];
    let bytes = domu_bundle(&domus, Some(&guest), None).unwrap();
    let b = toolstack::bundle::parse(&bytes).unwrap();
    assert_eq!(b.files.len(), 2);
    assert_eq!(
        (b.files[0].name, b.files[0].data),
        ("linux", elf.as_slice())
    );
    assert_eq!(b.files[1].name, "initramfs");
    assert_eq!(b.domains.len(), 2);
    assert_eq!(
        b.domains[1].cmdline,
        "console=hvc0 loglevel=4 domu-test=crash"
    );
    assert_eq!((b.domains[1].memory_mib, b.domains[1].vcpus), (64, 2));
    assert_eq!(b.domains[0].memory_mib, 128);
    assert!(
        b.domains
            .iter()
            .all(|d| d.kernel == "linux" && d.initrd.as_deref() == Some("initramfs"))
    );
    // A name dom0 would refuse is refused here.
    let long = [DomuSpec::new(&"n".repeat(65))];
    assert!(domu_bundle(&long, Some(&guest), None).is_err());
    assert!(domu_bundle(&[], Some(&guest), None).is_err());

    // The bzImage as shipped: its own kernel entry with the same initrd, and the ELF only if
    // another DomU uses it.
    fs::write(dir.join("vmlinuz"), b"a bzImage").unwrap();
    let bz: [DomuSpec; 1] = ["plain:kernel=vmlinuz".parse().unwrap()];
    let bytes = domu_bundle(&bz, Some(&guest), None).unwrap();
    let b = toolstack::bundle::parse(&bytes).unwrap();
    let names: Vec<&str> = b.files.iter().map(|f| f.name).collect();
    assert_eq!(names, ["vmlinuz", "initramfs"]);
    assert_eq!(b.files[0].data, b"a bzImage");
    assert_eq!(b.domains[0].kernel, "vmlinuz");

    // A test guest next to a Linux DomU: its own kernel entry, no initrd; each file only
    // when a DomU needs it, and an error when one is needed but missing.
    fs::write(dir.join("testguest"), &elf).unwrap();
    let tg = dir.join("testguest");
    let mixed = [
        DomuSpec::new("demo"),
        "hostile:kernel=testguest".parse().unwrap(),
    ];
    let bytes = domu_bundle(&mixed, Some(&guest), Some(&tg)).unwrap();
    let b = toolstack::bundle::parse(&bytes).unwrap();
    let names: Vec<&str> = b.files.iter().map(|f| f.name).collect();
    assert_eq!(names, ["linux", "initramfs", "testguest"]);
    assert_eq!(
        (b.domains[1].kernel.as_str(), b.domains[1].initrd.as_deref()),
        ("testguest", None)
    );
    assert_eq!(b.domains[1].memory_mib, TESTGUEST_MEMORY_MIB);
    let only = &mixed[1..];
    let b = domu_bundle(only, None, Some(&tg)).unwrap();
    assert_eq!(toolstack::bundle::parse(&b).unwrap().files.len(), 1);
    assert!(domu_bundle(only, Some(&guest), None).is_err());
    assert!(domu_bundle(&mixed[..1], None, Some(&tg)).is_err());
    fs::remove_dir_all(&dir).unwrap();
}
