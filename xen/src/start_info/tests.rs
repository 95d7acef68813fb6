//! Tests of `start_info.rs`.

// Lists of one range are what these tests mean.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use crate::memmap::MemRegion;
use core::cell::Cell;

/// Guest memory as a Vec starting at `base`; reads outside fail like dom0's bounds check.
struct VecMem {
    base: u64,
    bytes: Vec<u8>,
    reads: Cell<usize>,
}

impl VecMem {
    fn new(base: u64, len: usize) -> Self {
        VecMem {
            base,
            bytes: vec![0; len],
            reads: Cell::new(0),
        }
    }
    fn put(&mut self, paddr: u64, data: &[u8]) {
        let off = (paddr - self.base) as usize;
        self.bytes[off..off + data.len()].copy_from_slice(data);
    }
}

impl PhysRead for VecMem {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
        self.reads.set(self.reads.get() + 1);
        let err = PhysReadError {
            paddr,
            len: buf.len(),
        };
        let off = usize::try_from(paddr.checked_sub(self.base).ok_or(err)?).unwrap();
        let end = off.checked_add(buf.len()).ok_or(err)?;
        buf.copy_from_slice(self.bytes.get(off..end).ok_or(err)?);
        Ok(())
    }
}

struct FailingMem;
impl PhysRead for FailingMem {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
        Err(PhysReadError {
            paddr,
            len: buf.len(),
        })
    }
}

#[allow(clippy::too_many_arguments)]
fn header_bytes(
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist: u64,
    cmdline: u64,
    rsdp: u64,
    memmap: u64,
    memmap_entries: u32,
) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&XEN_HVM_START_MAGIC_VALUE.to_le_bytes());
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&nr_modules.to_le_bytes());
    b.extend_from_slice(&modlist.to_le_bytes());
    b.extend_from_slice(&cmdline.to_le_bytes());
    b.extend_from_slice(&rsdp.to_le_bytes());
    if version >= 1 {
        b.extend_from_slice(&memmap.to_le_bytes());
        b.extend_from_slice(&memmap_entries.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
    }
    b
}

fn modlist_entry(paddr: u64, size: u64, cmdline: u64) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [paddr, size, cmdline, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

const IMAGE: Range<u64> = 0x100000..0x180000;
const RAM_END: u64 = 0x7f60f16;
const BUNDLE: u64 = 0x200000;
const BUNDLE_CMDLINE: u64 = 0x201000;
const DOM0_CMDLINE: u64 = 0x202000;
const MODLIST: u64 = 0x202010;
const SI: u64 = 0x202030;

/// The map Xen 4.17 gives a 128 MiB PVH dom0 (via XENMEM_memory_map).
fn dom0_map() -> MemoryMap {
    MemoryMap::from_regions(&[
        MemRegion::new(0, 0x9f000, MemType::Ram),
        MemRegion::new(0x9f000, 0x61000, MemType::Reserved),
        MemRegion::new(0x100000, RAM_END - 0x100000, MemType::Ram),
        MemRegion::new(RAM_END, 0x7f61000 - RAM_END, MemType::Acpi),
        MemRegion::new(0x7f61000, 0x9f000, MemType::Unusable),
        MemRegion::new(0xb000_0000, 0x1000_0000, MemType::Reserved),
    ])
    .unwrap()
}

/// Memory laid out the way Xen's `pvh_load_kernel()` does it: the module (here the boot
/// bundle), its cmdline, page pad, dom0's cmdline rounded to 8, the modlist entry, then
/// hvm_start_info; version 0, flags 3, one module.
fn xen_dom0_memory() -> VecMem {
    let mut mem = VecMem::new(0, 0x210000);
    mem.put(BUNDLE, &[0xaa; 0x1000]);
    mem.put(BUNDLE_CMDLINE, b"bundle.cpio\0");
    mem.put(DOM0_CMDLINE, b"loglevel=debug\0");
    mem.put(MODLIST, &modlist_entry(BUNDLE, 0x1000, BUNDLE_CMDLINE));
    mem.put(
        SI,
        &header_bytes(0, 3, 1, MODLIST, DOM0_CMDLINE, RAM_END, 0, 0),
    );
    mem
}

fn load(mem: &VecMem) -> Result<StartInfo, StartInfoError> {
    let hdr = StartInfoHeader::read(SI, mem)?;
    StartInfo::load(SI, hdr, &dom0_map(), IMAGE, mem)
}

/// Rewrite the one modlist entry.
fn with_module(paddr: u64, size: u64, cmdline: u64) -> VecMem {
    let mut mem = xen_dom0_memory();
    mem.put(MODLIST, &modlist_entry(paddr, size, cmdline));
    mem
}

#[test]
fn good_v0_like_xen_gives_dom0() {
    let mem = xen_dom0_memory();
    let hdr = StartInfoHeader::read(SI, &mem).unwrap();
    assert_eq!(
        hdr,
        StartInfoHeader {
            magic: XEN_HVM_START_MAGIC_VALUE,
            version: 0,
            flags: 3,
            nr_modules: 1,
            modlist_paddr: MODLIST,
            cmdline_paddr: DOM0_CMDLINE,
            rsdp_paddr: RAM_END,
            memmap_paddr: 0,
            memmap_entries: 0,
        }
    );
    assert!(hdr.is_initdomain() && hdr.is_privileged());
    assert_eq!(hdr.size(), 40);
    // v0: exactly one 40-byte read, nothing past it.
    assert_eq!(mem.reads.get(), 1);
    assert_eq!(read_memmap(&hdr, &mem), Ok(None));

    let si = StartInfo::load(SI, hdr, &dom0_map(), IMAGE, &mem).unwrap();
    assert_eq!(si.cmdline, "loglevel=debug");
    assert_eq!(
        si.modules,
        vec![ModuleInfo {
            index: 0,
            paddr: BUNDLE,
            size: 0x1000,
            cmdline: "bundle.cpio".into(),
            cmdline_paddr: BUNDLE_CMDLINE,
        }]
    );
    assert!(si.warnings.is_empty(), "{:?}", si.warnings);
    assert_eq!(
        si.taken_ranges(),
        vec![
            SI..SI + 40,
            MODLIST..MODLIST + 32,
            DOM0_CMDLINE..DOM0_CMDLINE + 15,
            BUNDLE_CMDLINE..BUNDLE_CMDLINE + 12,
            BUNDLE..BUNDLE + 0x1000,
        ]
    );
}

/// QEMU's PVH loader (`-kernel` with a PVH note): version 1, flags 0, the header, modlist
/// and memory map in the option ROM's data below 1 MiB, the cmdline in low RAM, the initrd
/// at the top of RAM, the RSDP in the BIOS area.
#[test]
fn good_v1_like_qemu_loader() {
    let si_at = 0xc0100;
    let map_at = 0xc0200;
    let modlist_at = 0xc0180;
    let regions = [
        MemRegion::new(0, 0x9fc00, MemType::Ram),
        MemRegion::new(0x9fc00, 0x400, MemType::Reserved),
        MemRegion::new(0xf0000, 0x10000, MemType::Reserved),
        MemRegion::new(0x100000, 0x7ee0000, MemType::Ram),
        MemRegion::new(0x7fe0000, 0x20000, MemType::Reserved),
        MemRegion::new(0xfffc0000, 0x40000, MemType::Reserved),
    ];
    let mut table = Vec::new();
    for r in &regions {
        table.extend_from_slice(&r.addr.to_le_bytes());
        table.extend_from_slice(&r.size.to_le_bytes());
        table.extend_from_slice(&r.kind.raw().to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
    }
    let mut mem = VecMem::new(0, 0x8000000);
    mem.put(0x20000, b"console=serial on-ready=qemu-exit\0");
    mem.put(0x7f00000, &[1; 0x1000]);
    mem.put(modlist_at, &modlist_entry(0x7f00000, 0x1000, 0));
    mem.put(map_at, &table);
    mem.put(
        si_at,
        &header_bytes(1, 0, 1, modlist_at, 0x20000, 0xf5a80, map_at, 6),
    );

    let hdr = StartInfoHeader::read(si_at, &mem).unwrap();
    assert_eq!((hdr.version, hdr.flags, hdr.memmap_entries), (1, 0, 6));
    assert!(!hdr.is_initdomain());
    assert_eq!(hdr.size(), 56);
    let map = read_memmap(&hdr, &mem).unwrap().expect("v1 map");
    assert_eq!(map.regions(), &regions[..]);
    let si = StartInfo::load(si_at, hdr, &map, 0x1000000..0x1400000, &mem).unwrap();
    assert_eq!(si.cmdline, "console=serial on-ready=qemu-exit");
    assert_eq!(si.modules.len(), 1);
    assert_eq!(si.modules[0].cmdline, "");
    assert!(si.warnings.is_empty(), "{:?}", si.warnings);
}

#[test]
fn no_cmdline_no_modules_no_rsdp() {
    let mut mem = xen_dom0_memory();
    mem.put(SI, &header_bytes(0, 3, 0, 0, 0, 0, 0, 0));
    let si = load(&mem).unwrap();
    assert_eq!(si.cmdline, "");
    assert!(si.modules.is_empty());
    assert_eq!(si.taken_ranges(), [SI..SI + 40].to_vec());
}

#[test]
fn parse_truncated_buffers() {
    let v0 = header_bytes(0, 3, 0, 0, 0, 0, 0, 0);
    assert!(StartInfoHeader::parse(&v0).is_ok());
    for len in 0..40 {
        let err = StartInfoHeader::parse(&v0[..len]).unwrap_err();
        assert_eq!(
            err,
            StartInfoError::Truncated {
                what: "start_info header",
                needed: 40,
                got: len
            }
        );
    }
    let v1 = header_bytes(1, 0, 0, 0, 0, 0, 0x5000, 3);
    let parsed = StartInfoHeader::parse(&v1).unwrap();
    assert_eq!((parsed.memmap_paddr, parsed.memmap_entries), (0x5000, 3));
    let err = StartInfoHeader::parse(&v1[..55]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "start_info v1 header truncated: need 56 bytes, got 55"
    );
    // A v0 header followed by junk keeps memmap at 0.
    let mut long = v0.clone();
    long.extend_from_slice(&[0xff; 16]);
    assert_eq!(StartInfoHeader::parse(&long).unwrap().memmap_entries, 0);
}

#[test]
fn bad_magic_names_the_address() {
    let mut mem = xen_dom0_memory();
    mem.put(SI, &0x1234_5678u32.to_le_bytes());
    let err = StartInfoHeader::read(SI, &mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::BadMagic {
            found: 0x1234_5678,
            paddr: Some(SI)
        }
    );
    assert_eq!(
        err.to_string(),
        "bad magic 0x12345678 at 0x202030 (expected 0x336ec578)"
    );
    let err = StartInfoHeader::parse(&[0; 40]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad magic 0x00000000 (expected 0x336ec578)"
    );
}

#[test]
fn versions() {
    let mut b = header_bytes(1, 0, 0, 0, 0, 0, 0, 0);
    for (version, ok) in [(0, true), (1, true), (2, true), (255, true), (256, false)] {
        b[4..8].copy_from_slice(&u32::to_le_bytes(version));
        assert_eq!(StartInfoHeader::parse(&b).is_ok(), ok, "version {version}");
    }
    b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = StartInfoHeader::parse(&b).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::BadVersion {
            version: u32::MAX,
            paddr: None
        }
    );

    // A newer version loads with a warning.
    let mut mem = xen_dom0_memory();
    mem.put(SI, &header_bytes(7, 3, 1, MODLIST, DOM0_CMDLINE, 0, 0, 0));
    let si = load(&mem).unwrap();
    assert_eq!(si.header.version, 7);
    assert_eq!(si.warnings.len(), 1);
    assert!(
        si.warnings[0].contains("version 7 is newer"),
        "{:?}",
        si.warnings
    );

    // An implausible one is refused from memory with its address.
    mem.put(SI + 4, &1000u32.to_le_bytes());
    let err = StartInfoHeader::read(SI, &mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::BadVersion {
            version: 1000,
            paddr: Some(SI)
        }
    );
    assert!(err.to_string().contains("at 0x202030"), "{err}");
}

#[test]
fn unknown_flags_warned() {
    let mut mem = xen_dom0_memory();
    mem.put(SI + 8, &0x8000_0003u32.to_le_bytes());
    let si = load(&mem).unwrap();
    assert_eq!(
        si.warnings,
        [
            "start_info flags 0x80000003 has unknown bits 0x80000000 (known: SIF_PRIVILEGED, \
              SIF_INITDOMAIN)"
        ]
    );
}

#[test]
fn read_failures() {
    assert_eq!(
        StartInfoHeader::read(0, &FailingMem),
        Err(StartInfoError::NullPointer)
    );
    let err = StartInfoHeader::read(0x1000, &FailingMem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::Read {
            what: "start_info header",
            err: PhysReadError {
                paddr: 0x1000,
                len: 40
            }
        }
    );
    assert_eq!(
        err.to_string(),
        "cannot read start_info header: cannot read 0x28 bytes at 0x1000"
    );
    let err = StartInfoHeader::read(u64::MAX - 8, &FailingMem).unwrap_err();
    assert!(
        matches!(err, StartInfoError::AddressOverflow { .. }),
        "{err:?}"
    );

    // A v1 header whose tail is unreadable.
    let mut mem = VecMem::new(0x1000, 48);
    mem.put(0x1000, &header_bytes(1, 0, 0, 0, 0, 0, 0, 0)[..48]);
    let err = StartInfoHeader::read(0x1000, &mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::Read {
            what: "start_info v1 fields",
            err: PhysReadError {
                paddr: 0x1028,
                len: 16
            }
        }
    );

    // A reader that fails after the header: the cmdline read reports it.
    let mem = xen_dom0_memory();
    let hdr = StartInfoHeader::read(SI, &mem).unwrap();
    let err = StartInfo::load(SI, hdr, &dom0_map(), IMAGE, &FailingMem).unwrap_err();
    assert!(
        matches!(
            err,
            StartInfoError::Read {
                what: "command line",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn cmdline_checks() {
    // Outside RAM (in the ACPI area, above 1 MiB).
    let mut mem = xen_dom0_memory();
    mem.put(SI + 24, &(RAM_END + 8).to_le_bytes());
    let err = load(&mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::CmdlineOutsideRam {
            owner: CmdlineOwner::Dom0,
            paddr: RAM_END + 8
        }
    );
    assert_eq!(
        err.to_string(),
        "cmdline at 0x7f60f1e is outside RAM (and not below 1 MiB)"
    );
    // In a hole; and at u64::MAX.
    mem.put(SI + 24, &0x9000_0000u64.to_le_bytes());
    assert!(matches!(
        load(&mem),
        Err(StartInfoError::CmdlineOutsideRam { .. })
    ));
    mem.put(SI + 24, &u64::MAX.to_le_bytes());
    assert!(matches!(
        load(&mem),
        Err(StartInfoError::CmdlineOutsideRam { .. })
    ));

    // Not NUL-terminated within 4096 bytes.
    let mut mem = xen_dom0_memory();
    mem.put(0x203000, &[b'a'; 4096]);
    mem.put(SI + 24, &0x203000u64.to_le_bytes());
    let err = load(&mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::CmdlineUnterminated {
            owner: CmdlineOwner::Dom0,
            paddr: 0x203000,
            scanned: 4096
        }
    );
    // 4095 characters + NUL is the longest accepted.
    mem.put(0x203000 + 4095, &[0]);
    assert_eq!(load(&mem).unwrap().cmdline.len(), 4095);

    // Runs into the end of RAM before its NUL.
    let mut mem = VecMem::new(0, RAM_END as usize);
    let tail = xen_dom0_memory();
    mem.bytes[..tail.bytes.len()].copy_from_slice(&tail.bytes);
    mem.put(RAM_END - 10, &[b'x'; 10]);
    mem.put(SI + 24, &(RAM_END - 10).to_le_bytes());
    let err = load(&mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::CmdlineUnterminated {
            owner: CmdlineOwner::Dom0,
            paddr: RAM_END - 10,
            scanned: 10
        }
    );
    // ... and a short string right at the end of RAM is fine (no read past RAM).
    mem.put(RAM_END - 3, b"ok\0");
    mem.put(SI + 24, &(RAM_END - 3).to_le_bytes());
    assert_eq!(load(&mem).unwrap().cmdline, "ok");

    // Not UTF-8.
    let mut mem = xen_dom0_memory();
    mem.put(DOM0_CMDLINE, b"abc\xff\xfe\0");
    let err = load(&mem).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cmdline at 0x202000 is not UTF-8 (bad byte at offset 3)"
    );
    // UTF-8 is fine.
    mem.put(DOM0_CMDLINE, "caf\u{e9}\0".as_bytes());
    assert_eq!(load(&mem).unwrap().cmdline, "caf\u{e9}");

    // Below 1 MiB outside RAM (BIOS area) is accepted.
    mem.put(0xf0000, b"low\0");
    mem.put(SI + 24, &0xf0000u64.to_le_bytes());
    assert_eq!(load(&mem).unwrap().cmdline, "low");
}

#[test]
fn module_count_and_list_checks() {
    let mut mem = xen_dom0_memory();
    mem.put(SI + 12, &65u32.to_le_bytes());
    assert_eq!(
        load(&mem),
        Err(StartInfoError::TooManyModules { count: 65, max: 64 })
    );
    mem.put(SI + 12, &u32::MAX.to_le_bytes());
    assert!(matches!(
        load(&mem),
        Err(StartInfoError::TooManyModules { .. })
    ));

    let mut mem = xen_dom0_memory();
    mem.put(SI + 16, &0u64.to_le_bytes());
    let err = load(&mem).unwrap_err();
    assert_eq!(err.to_string(), "nr_modules is 1 but modlist_paddr is 0");

    for bad in [0x9000_0000, RAM_END - 16, u64::MAX - 8] {
        mem.put(SI + 16, &u64::to_le_bytes(bad));
        assert_eq!(
            load(&mem),
            Err(StartInfoError::ModlistOutsideRam {
                paddr: bad,
                len: 32
            }),
            "{bad:#x}"
        );
    }
    mem.put(SI + 16, &0x9000_0000u64.to_le_bytes());
    assert_eq!(
        load(&mem).unwrap_err().to_string(),
        "module list [0x90000000, +0x20) is outside RAM (and not below 1 MiB)"
    );

    // nr_modules 0 with a stray modlist pointer: a warning only.
    let mut mem = xen_dom0_memory();
    mem.put(SI + 12, &0u32.to_le_bytes());
    let si = load(&mem).unwrap();
    assert!(si.modules.is_empty());
    assert_eq!(
        si.warnings,
        ["modlist_paddr 0x202010 ignored: nr_modules is 0"]
    );
}

#[test]
fn module_range_checks() {
    let err = load(&with_module(BUNDLE, 0, 0)).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::ModuleEmpty {
            index: 0,
            paddr: BUNDLE
        }
    );
    assert_eq!(err.to_string(), "module 0 at 0x200000 has size 0");

    let err = load(&with_module(u64::MAX - 0xfff, 0x2000, 0)).unwrap_err();
    assert!(
        matches!(err, StartInfoError::ModuleOverflow { index: 0, .. }),
        "{err:?}"
    );
    let err = load(&with_module(1, u64::MAX, 0)).unwrap_err();
    assert!(
        matches!(err, StartInfoError::ModuleOverflow { .. }),
        "{err:?}"
    );

    // Runs past the end of RAM into the ACPI tables.
    let err = load(&with_module(RAM_END - 0x1000, 0x1001, 0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module 0 [0x7f5ff16, +0x1001) is not wholly in RAM"
    );
    // In the MMCFG window.
    let err = load(&with_module(0xb000_0000, 0x1000, 0)).unwrap_err();
    assert!(
        matches!(err, StartInfoError::ModuleOutsideRam { .. }),
        "{err:?}"
    );

    let err = load(&with_module(0x17f000, 0x2000, 0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module 0 [0x17f000, +0x2000) overlaps the dom0 image [0x100000, 0x180000)"
    );
    // Touching the image's end is fine.
    assert!(load(&with_module(0x180000, 0x1000, 0)).is_ok());

    let err = load(&with_module(SI + 0x20, 0x1000, 0)).unwrap_err();
    assert!(
        matches!(err, StartInfoError::ModuleOverlapsStartInfo { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("overlaps the start_info header [0x202030, 0x202058)")
    );

    let err = load(&with_module(MODLIST - 0x10, 0x11, 0)).unwrap_err();
    assert!(
        matches!(err, StartInfoError::ModuleOverlapsModlist { .. }),
        "{err:?}"
    );
}

#[test]
fn modules_must_not_overlap_each_other() {
    let mut mem = xen_dom0_memory();
    let mut list = modlist_entry(0x300000, 0x2000, 0);
    list.extend(modlist_entry(0x400000, 0x1000, 0));
    list.extend(modlist_entry(0x301000, 0x1000, 0));
    mem.put(0x205000, &list);
    mem.put(SI + 12, &3u32.to_le_bytes());
    mem.put(SI + 16, &0x205000u64.to_le_bytes());
    let err = load(&mem).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module 2 [0x301000, +0x1000) overlaps module 0 [0x300000, 0x302000)"
    );
    // Adjacent modules are fine.
    mem.put(0x205000 + 64, &modlist_entry(0x302000, 0x1000, 0));
    let si = load(&mem).unwrap();
    assert_eq!(
        si.modules.iter().map(|m| m.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn module_cmdline_errors_name_the_module() {
    let err = load(&with_module(BUNDLE, 0x1000, 0x9000_0000)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "module 0 cmdline at 0x90000000 is outside RAM (and not below 1 MiB)"
    );
    let mut mem = with_module(BUNDLE, 0x1000, 0x204000);
    mem.put(0x204000, b"\xc3(\0");
    let err = load(&mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::CmdlineNotUtf8 {
            owner: CmdlineOwner::Module(0),
            paddr: 0x204000,
            offset: 0
        }
    );
}

#[test]
fn module_reserved_field_warned() {
    let mut mem = xen_dom0_memory();
    mem.put(MODLIST + 24, &7u64.to_le_bytes());
    let si = load(&mem).unwrap();
    assert_eq!(
        si.warnings,
        ["module 0: reserved field is 0x7 (expected 0)"]
    );
}

#[test]
fn rsdp_checks() {
    let mut mem = xen_dom0_memory();
    for ok in [0, 0xf5a80, RAM_END, 0x9f000, 0x100000, 0xb000_0000] {
        mem.put(SI + 32, &u64::to_le_bytes(ok));
        assert!(load(&mem).is_ok(), "{ok:#x}");
    }
    for bad in [0x9000_0000, RAM_END + 0xea - 4, u64::MAX, 0x7f61000] {
        mem.put(SI + 32, &u64::to_le_bytes(bad));
        assert_eq!(
            load(&mem),
            Err(StartInfoError::RsdpOutside { paddr: bad }),
            "{bad:#x}"
        );
    }
    assert_eq!(
        load(&mem).unwrap_err().to_string(),
        "rsdp at 0x7f61000 is neither below 1 MiB nor in an ACPI, NVS, reserved or RAM region"
    );
}

#[test]
fn header_not_in_ram_is_a_warning() {
    let mut mem = VecMem::new(0, 0x210000);
    mem.bytes.copy_from_slice(&xen_dom0_memory().bytes);
    let map = MemoryMap::from_regions(&[
        MemRegion::new(0, 0x202000, MemType::Ram),
        MemRegion::new(0x202000, 0x1000, MemType::Reserved),
    ])
    .unwrap();
    mem.put(SI, &header_bytes(0, 3, 0, 0, 0, 0, 0, 0));
    let hdr = StartInfoHeader::read(SI, &mem).unwrap();
    let si = StartInfo::load(SI, hdr, &map, IMAGE, &mem).unwrap();
    assert_eq!(si.warnings, ["start_info header at 0x202030 is not in RAM"]);
}

#[test]
fn read_memmap_cases() {
    let mut hdr = StartInfoHeader::parse(&header_bytes(1, 0, 0, 0, 0, 0, 0x1000, 0)).unwrap();
    assert_eq!(read_memmap(&hdr, &FailingMem), Ok(None));
    hdr.memmap_entries = 2;
    hdr.memmap_paddr = 0;
    assert_eq!(
        read_memmap(&hdr, &FailingMem).unwrap_err().to_string(),
        "memmap_entries is 2 but memmap_paddr is 0"
    );
    hdr.memmap_paddr = 0x1000;
    let err = read_memmap(&hdr, &FailingMem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::Read {
            what: "start_info memory map",
            err: PhysReadError {
                paddr: 0x1000,
                len: 48
            }
        }
    );
    hdr.memmap_entries = u32::MAX;
    let err = read_memmap(&hdr, &FailingMem).unwrap_err();
    assert!(matches!(
        err,
        StartInfoError::Memmap(MemMapError::TooManyEntries { .. })
    ));
    assert!(
        err.to_string().starts_with("start_info memory map: "),
        "{err}"
    );

    // An entry that overflows is named.
    let mut mem = VecMem::new(0x1000, 48);
    let mut table = Vec::new();
    for (addr, size) in [(0u64, 0x1000u64), (u64::MAX, 2)] {
        table.extend_from_slice(&addr.to_le_bytes());
        table.extend_from_slice(&size.to_le_bytes());
        table.extend_from_slice(&1u32.to_le_bytes());
        table.extend_from_slice(&0u32.to_le_bytes());
    }
    mem.put(0x1000, &table);
    hdr.memmap_entries = 2;
    let err = read_memmap(&hdr, &mem).unwrap_err();
    assert_eq!(
        err,
        StartInfoError::Memmap(MemMapError::EndOverflow {
            index: 1,
            addr: u64::MAX,
            size: 2
        })
    );
    hdr.version = 0;
    assert_eq!(read_memmap(&hdr, &mem), Ok(None));
}

#[test]
fn image_range_hostile() {
    // An inverted image range overlaps nothing.
    let mem = xen_dom0_memory();
    let hdr = StartInfoHeader::read(SI, &mem).unwrap();
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 0x300000..0x100000;
    assert!(StartInfo::load(SI, hdr, &dom0_map(), inverted, &mem).is_ok());
    let err = StartInfo::load(SI, hdr, &dom0_map(), 0..u64::MAX, &mem).unwrap_err();
    assert!(matches!(err, StartInfoError::ModuleOverlapsImage { .. }));
}
