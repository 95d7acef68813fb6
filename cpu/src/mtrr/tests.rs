//! Tests of `mtrr.rs`.

use super::*;
use std::collections::BTreeMap;
use xen::memmap::MemRegion;

const WB8: u64 = 0x0606_0606_0606_0606;
const PHYS: u8 = 40;
const MASK40: u64 = (1 << 40) - 1;

/// A variable range [base, base + size) of type `ty` for 40 address bits.
fn range(base: u64, size: u64, ty: MemType) -> (u64, u64) {
    (
        base | u64::from(ty.raw()),
        (!(size - 1) & MASK40 & !0xfff) | PHYSMASK_V,
    )
}

/// Xen 4.17's PVH dom0 on QEMU q35 + SeaBIOS: the host MTRRs copied. SeaBIOS makes WB the
/// default with one UC range over the 32-bit PCI hole, fixed ranges WB except the VGA
/// window [0xA0000, 0xC0000) UC; Xen's virtual MTRRcap is WC | FIX | host VCNT (8).
fn qemu_xen() -> MtrrState {
    let mut fixed = [WB8; 11];
    fixed[2] = 0;
    let mut var = vec![(0, 0); 8];
    var[0] = range(0x8000_0000, 0x8000_0000, MemType::Uc);
    MtrrState {
        cap: CAP_WC | CAP_FIX | 8,
        def_type: DEF_TYPE_E | DEF_TYPE_FE | 6,
        fixed: Some(fixed),
        var,
    }
}

fn qemu_map() -> MemoryMap {
    MemoryMap::from_regions(&[
        MemRegion::new(0, 0x9f000, MapType::Ram),
        MemRegion::new(0x9f000, 0x61000, MapType::Reserved),
        MemRegion::new(0x10_0000, 0x7f60f16 - 0x10_0000, MapType::Ram),
        MemRegion::new(0x7f60f16, 0xea, MapType::Acpi),
        MemRegion::new(0xb000_0000, 0x1000_0000, MapType::Reserved),
        MemRegion::new(0xfed1_c000, 0x4000, MapType::Reserved),
        MemRegion::new(0x1_0000_0000, 0x8000_0000, MapType::Ram),
    ])
    .unwrap()
}

fn qemu_mmio() -> Vec<(Range<u64>, bool)> {
    vec![
        // MMCONFIG, a NIC BAR, the VGA framebuffer (prefetchable).
        (0xb000_0000..0xc000_0000, false),
        (0xfebf_0000..0xfebf_1000, false),
        (0xfd00_0000..0xfe00_0000, true),
    ]
}

fn plain(ty: MemType) -> Resolved {
    Resolved::plain(ty)
}

fn kinds(p: &[Problem]) -> Vec<ProblemKind> {
    p.iter().map(|p| p.kind).collect()
}

#[test]
fn qemu_seabios_state_under_xen() {
    let s = qemu_xen();
    assert!(s.enabled() && s.fixed_enabled());
    assert_eq!(s.default_type(), MemType::Wb);
    assert_eq!(s.type_at(0, PHYS), plain(MemType::Wb));
    assert_eq!(s.type_at(0x9ffff, PHYS), plain(MemType::Wb));
    assert_eq!(s.type_at(0xa0000, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0xbffff, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0xc0000, PHYS), plain(MemType::Wb));
    assert_eq!(s.type_at(0x7fff_ffff, PHYS), plain(MemType::Wb));
    assert_eq!(s.type_at(0x8000_0000, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0xffff_ffff, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0x1_0000_0000, PHYS), plain(MemType::Wb));
    assert_eq!(
        s.ranges(0, u64::MAX, PHYS),
        vec![
            (0..0xa0000, plain(MemType::Wb)),
            (0xa0000..0xc0000, plain(MemType::Uc)),
            (0xc0000..0x8000_0000, plain(MemType::Wb)),
            (0x8000_0000..0x1_0000_0000, plain(MemType::Uc)),
            (0x1_0000_0000..1 << 40, plain(MemType::Wb)),
        ]
    );
    assert_eq!(s.describe(PHYS), ["0x80000000-0x100000000 UC"]);
    assert_eq!(check(&s, &qemu_map(), &qemu_mmio(), PHYS), vec![]);
    let all = vec![s.clone(), s.clone(), s.clone(), s];
    assert!(compare(&all).is_empty());
    assert!(corrections(&all).is_empty());
}

#[test]
fn uc_default_with_wb_ranges() {
    // The other common firmware style: default UC, WB ranges over RAM.
    let mut s = qemu_xen();
    s.def_type = DEF_TYPE_E | DEF_TYPE_FE;
    s.var[0] = range(0, 0x8000_0000, MemType::Wb);
    s.var[1] = range(0x1_0000_0000, 0x1_0000_0000, MemType::Wb);
    assert_eq!(
        s.describe(PHYS),
        ["0x0-0x80000000 WB", "0x100000000-0x200000000 WB"]
    );
    assert_eq!(check(&s, &qemu_map(), &qemu_mmio(), PHYS), vec![]);
    // RAM past the WB ranges is UC.
    let map = MemoryMap::from_regions(&[
        MemRegion::new(0x10_0000, 0x8000_0000, MapType::Ram),
        MemRegion::new(0x1_0000_0000, 0x1_8000_0000, MapType::Ram),
    ])
    .unwrap();
    let p = check(&s, &map, &[], PHYS);
    assert_eq!(kinds(&p), [ProblemKind::RamNotWriteBack; 2]);
    assert_eq!(
        p[0].detail,
        "RAM [0x100000, 0x80100000) is not all WB: [0x80000000, 0x80100000) UC"
    );
    assert_eq!(
        p[1].to_string(),
        "ram_not_write_back: RAM [0x100000000, 0x280000000) is not all WB: \
             [0x200000000, 0x280000000) UC"
    );
}

#[test]
fn disabled_mtrrs() {
    let mut s = qemu_xen();
    s.def_type = 6 | DEF_TYPE_FE;
    assert!(!s.enabled() && !s.fixed_enabled());
    assert_eq!(s.type_at(0x1000, PHYS), plain(MemType::Uc));
    assert_eq!(
        s.ranges(0, 1 << 32, PHYS),
        vec![(0..1 << 32, plain(MemType::Uc))]
    );
    let p = check(&s, &qemu_map(), &qemu_mmio(), PHYS);
    assert_eq!(kinds(&p), [ProblemKind::Disabled]);
    assert!(p[0].detail.contains("0x406"), "{}", p[0].detail);
    // All zeros (what a PVH domU gets from Xen before the toolstack sets it up).
    let p = check(&MtrrState::default(), &qemu_map(), &[], PHYS);
    assert_eq!(kinds(&p), [ProblemKind::Disabled]);
}

#[test]
fn overlap_rules() {
    let mut s = qemu_xen();
    s.var[1] = range(0x4000_0000, 0x4000_0000, MemType::Wb);
    s.var[2] = range(0x4000_0000, 0x1000_0000, MemType::Uc);
    s.var[3] = range(0x5000_0000, 0x1000_0000, MemType::Wt);
    s.var[4] = range(0x6000_0000, 0x1000_0000, MemType::Wc);
    s.var[5] = range(0x7000_0000, 0x1000_0000, MemType::Wb); // same type twice: fine
    assert_eq!(s.type_at(0x4000_0000, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0x5000_0000, PHYS), plain(MemType::Wt));
    let conflict = Resolved {
        ty: MemType::Uc,
        conflict: true,
    };
    assert_eq!(s.type_at(0x6000_0000, PHYS), conflict);
    assert_eq!(conflict.to_string(), "undefined");
    assert_eq!(s.type_at(0x7000_0000, PHYS), plain(MemType::Wb));
    // The WB range 1 ends where the hole's UC range 0 begins.
    assert_eq!(
        s.ranges(0x3000_0000, 0x9000_0000, PHYS),
        vec![
            (0x3000_0000..0x4000_0000, plain(MemType::Wb)),
            (0x4000_0000..0x5000_0000, plain(MemType::Uc)),
            (0x5000_0000..0x6000_0000, plain(MemType::Wt)),
            (0x6000_0000..0x7000_0000, conflict),
            (0x7000_0000..0x8000_0000, plain(MemType::Wb)),
            (0x8000_0000..0x9000_0000, plain(MemType::Uc)),
        ]
    );
    let map =
        MemoryMap::from_regions(&[MemRegion::new(0x3000_0000, 0x5000_0000, MapType::Ram)]).unwrap();
    let p = check(&s, &map, &[], PHYS);
    assert_eq!(
        kinds(&p),
        [ProblemKind::OverlapConflict, ProblemKind::RamNotWriteBack]
    );
    assert_eq!(
        p[0].detail,
        "[0x60000000, 0x70000000): variable ranges 1 (WB), 4 (WC) overlap and the SDM \
             defines no resulting type"
    );
    assert_eq!(
        p[1].detail,
        "RAM [0x30000000, 0x80000000) is not all WB: [0x40000000, 0x50000000) UC, \
             [0x50000000, 0x60000000) WT, [0x60000000, 0x70000000) undefined"
    );
}

#[test]
fn cached_mmio() {
    let mut s = qemu_xen();
    // The hole's UC range made too small: the NIC BAR and framebuffer are WB.
    s.var[0] = range(0xc000_0000, 0x2000_0000, MemType::Uc);
    s.var[1] = range(0xfd00_0000, 0x100_0000, MemType::Wc);
    let mut mmio = qemu_mmio();
    mmio.push((0xfd00_0000..0xfd00_1000, false)); // WC over a non-prefetchable BAR
    let p = check(&s, &qemu_map(), &mmio, PHYS);
    let details: Vec<&str> = p.iter().map(|p| p.detail.as_str()).collect();
    assert_eq!(kinds(&p), [ProblemKind::MmioCached; 3]);
    assert_eq!(
        details,
        [
            // MMCONFIG and the NIC BAR fall outside the UC range: WB.
            "MMIO [0xb0000000, 0xc0000000) must be UC: [0xb0000000, 0xc0000000) WB",
            "MMIO [0xfebf0000, 0xfebf1000) must be UC: [0xfebf0000, 0xfebf1000) WB",
            // The framebuffer may be WC, a non-prefetchable BAR may not.
            "MMIO [0xfd000000, 0xfd001000) must be UC: [0xfd000000, 0xfd001000) WC",
        ]
    );
    // A UC range over [0xc0000000, 4 GiB) fixes the BAR; MMCONFIG stays WB.
    s.var[0] = range(0xc000_0000, 0x4000_0000, MemType::Uc);
    let p = check(&s, &qemu_map(), &mmio[..3], PHYS);
    assert_eq!(kinds(&p), [ProblemKind::MmioCached]);
    // A range straddling the UC range's start: only the WB part is listed.
    let p = check(&s, &qemu_map(), &[(0xbfff_f000..0xc000_1000, false)], PHYS);
    assert_eq!(
        p[0].detail,
        "MMIO [0xbffff000, 0xc0001000) must be UC: [0xbffff000, 0xc0000000) WB"
    );
    // An inverted or empty MMIO range is ignored.
    assert!(
        check(
            &qemu_xen(),
            &qemu_map(),
            &[(Range { start: 10, end: 5 }, false), (7..7, false)],
            PHYS
        )
        .is_empty()
    );
}

#[test]
fn ram_uncached() {
    let mut s = qemu_xen();
    s.var[1] = range(0x100_0000, 0x100_0000, MemType::Uc);
    let p = check(&s, &qemu_map(), &qemu_mmio(), PHYS);
    assert_eq!(kinds(&p), [ProblemKind::RamNotWriteBack]);
    assert_eq!(
        p[0].detail,
        "RAM [0x100000, 0x7f60f16) is not all WB: [0x1000000, 0x2000000) UC"
    );
    // Fixed ranges make low RAM UC.
    let mut s = qemu_xen();
    s.fixed.as_mut().unwrap()[0] = 0x0606_0606_0606_0600;
    let p = check(&s, &qemu_map(), &[], PHYS);
    assert_eq!(
        p[0].detail,
        "RAM [0x0, 0x9f000) is not all WB: [0x0, 0x10000) UC"
    );
    // With FE clear the fixed ranges do not apply: the variable ranges and default rule.
    s.def_type &= !DEF_TYPE_FE;
    assert!(!s.fixed_enabled());
    assert_eq!(s.type_at(0xa0000, PHYS), plain(MemType::Wb));
    assert!(check(&s, &qemu_map(), &[], PHYS).is_empty());
}

#[test]
fn non_contiguous_mask() {
    let mut s = qemu_xen();
    // [0x1000_0000, 0x2000_0000) but only pages with bit 12 clear.
    s.var[1] = (0x1000_0000, (0xff_f000_0000 | 0x1000) | PHYSMASK_V);
    assert_eq!(s.type_at(0x1000_0000, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0x1000_1000, PHYS), plain(MemType::Wb));
    assert_eq!(s.type_at(0x1fff_e000, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0x2000_0000, PHYS), plain(MemType::Wb));
    assert_eq!(
        s.ranges(0x0fff_f000, 0x1000_3800, PHYS),
        vec![
            (0x0fff_f000..0x1000_0000, plain(MemType::Wb)),
            (0x1000_0000..0x1000_1000, plain(MemType::Uc)),
            (0x1000_1000..0x1000_2000, plain(MemType::Wb)),
            (0x1000_2000..0x1000_3000, plain(MemType::Uc)),
            (0x1000_3000..0x1000_3800, plain(MemType::Wb)),
        ]
    );
    // Starting mid-block.
    assert_eq!(
        s.ranges(0x1000_0800, 0x1000_1800, PHYS),
        vec![
            (0x1000_0800..0x1000_1000, plain(MemType::Uc)),
            (0x1000_1000..0x1000_1800, plain(MemType::Wb)),
        ]
    );
    assert_eq!(
        s.describe(PHYS),
        [
            "0x80000000-0x100000000 UC",
            "0x10000000 mask 0xfff0001000 UC (non-contiguous mask)"
        ]
    );
    // The whole 256 MiB: the first MAX_BLOCKS blocks exactly, then sampled.
    let runs = s.ranges(0x1000_0000, 0x2000_0000, PHYS);
    assert_eq!(runs.len(), 2 * MAX_BLOCKS);
    assert_eq!(runs.last().unwrap().0.end, 0x2000_0000);
    let map =
        MemoryMap::from_regions(&[MemRegion::new(0x10_0000, 0x3000_0000, MapType::Ram)]).unwrap();
    let p = check(&s, &map, &qemu_mmio(), PHYS);
    assert_eq!(
        kinds(&p),
        [ProblemKind::NonContiguousMask, ProblemKind::RamNotWriteBack]
    );
    assert!(
        p[0].detail
            .starts_with("variable range 1 (PHYSBASE 0x10000000")
    );
    assert!(p[1].detail.ends_with(" and 1020 more"), "{}", p[1].detail);
    // A mask with a hole at the top (firmware that assumed fewer address bits) aliases.
    let mut s = qemu_xen();
    s.var[0] = (0x8000_0000, 0xf_8000_0000 | PHYSMASK_V);
    assert_eq!(s.type_at(0x8000_0000, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0x10_8000_0000, PHYS), plain(MemType::Uc));
    assert_eq!(s.type_at(0x10_0000_0000, PHYS), plain(MemType::Wb));
    assert_eq!(
        kinds(&check(&s, &qemu_map(), &[], PHYS)),
        [ProblemKind::NonContiguousMask]
    );
    // With 36 address bits the same mask is contiguous.
    assert!(check(&s, &qemu_map(), &[], 36).is_empty());
}

#[test]
fn next_match_agrees_with_brute_force() {
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rand = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..2000 {
        let m = rand() & 0x3ff;
        let b = rand() & m;
        let a = rand() & 0x3ff;
        let want = (a..0x400).find(|x| x & m == b);
        let got = next_match(a, m, b).filter(|&x| x < 0x400);
        assert_eq!(got, want, "a={a:#x} m={m:#x} b={b:#x}");
    }
    // At the top of the address space there is no next match.
    assert_eq!(next_match(u64::MAX, 1 << 63, 0), None);
    assert_eq!(next_match(u64::MAX - 1, 1, 1), Some(u64::MAX));
    assert_eq!(next_match(u64::MAX, 1, 0), None);
}

#[test]
fn hostile_states() {
    // VCNT 255, every variable range non-contiguous over the whole space, reserved
    // types everywhere: bounded work, no panic.
    let all = (0..255u64)
        .map(|i| ((0x1000 * (i & 1)) | 7, 0x1000 | PHYSMASK_V))
        .collect::<Vec<_>>();
    let s = MtrrState {
        cap: 0xff | CAP_FIX,
        def_type: DEF_TYPE_E | DEF_TYPE_FE | 2,
        fixed: Some([u64::MAX; 11]),
        var: all,
    };
    assert_eq!(s.active_var().len(), MAX_VAR_RANGES);
    for bits in [0, 1, 36, 52, 64, 255] {
        let runs = s.ranges(0, u64::MAX, bits);
        assert!(!runs.is_empty() && runs.len() <= 2 * MAX_BLOCKS + 100);
        let _ = s.type_at(u64::MAX, bits);
        assert_eq!(s.describe(bits).len(), MAX_VAR_RANGES);
    }
    let p = check(&s, &qemu_map(), &qemu_mmio(), 255);
    let k = kinds(&p);
    assert_eq!(k[0], ProblemKind::VcntTooLarge);
    assert!(
        p[0].detail
            .starts_with("MTRRcap 0x1ff says 255 variable ranges")
    );
    assert_eq!(
        k.iter()
            .filter(|&&k| k == ProblemKind::ReservedType)
            .count(),
        1 + 11 + 40
    );
    assert_eq!(
        k.iter()
            .filter(|&&k| k == ProblemKind::NonContiguousMask)
            .count(),
        40
    );
    assert!(k.contains(&ProblemKind::OverlapConflict) || k.contains(&ProblemKind::RamNotWriteBack));
    assert_eq!(p[1].detail, "MTRRdefType 0xc02 has reserved default type 2");
    assert_eq!(
        p[2].detail,
        "MTRRfix64K_00000 (MSR 0x250) = 0xffffffffffffffff has reserved type 255 for \
             [0x0, 0x10000) (and 7 more pieces)"
    );
    // A reserved type alone in a range is what the address gets.
    let mut s = qemu_xen();
    s.var[1] = range(0x1000_0000, 0x1000, MemType::Reserved(7));
    assert_eq!(s.type_at(0x1000_0000, PHYS), plain(MemType::Reserved(7)));
    // var longer than VCNT: the extra entries are ignored; shorter: only those given.
    let mut s = qemu_xen();
    s.cap = CAP_FIX | 1;
    s.var[1] = range(0, 0x1000, MemType::Uc);
    assert_eq!(s.type_at(0, 1), plain(MemType::Wb));
    s.var.truncate(0);
    assert_eq!(s.type_at(0x8000_0000, PHYS), plain(MemType::Wb));
    // FE set without fixed-range MSRs: fixed ranges are not in effect.
    let mut s = qemu_xen();
    s.fixed = None;
    assert!(!s.fixed_enabled());
    assert_eq!(s.type_at(0xa0000, PHYS), plain(MemType::Wb));
    // Mask 0 with V: one range over everything.
    let mut s = qemu_xen();
    s.var[0] = (5, PHYSMASK_V);
    assert_eq!(s.describe(PHYS), ["0x0-0x10000000000 WP"]);
    assert_eq!(s.type_at(0x1234_5000, PHYS), plain(MemType::Wp));
}

#[test]
fn read_through_rdmsr() {
    let mut msrs = BTreeMap::new();
    let s = qemu_xen();
    for (msr, v) in s.msrs() {
        msrs.insert(msr, v);
    }
    let rd = |msr: u32| *msrs.get(&msr).unwrap_or(&0xbad);
    assert_eq!(MtrrState::read(&rd), s);
    // No FIX: the fixed MSRs are not read; VCNT 200 reads 40 pairs only.
    msrs.insert(MSR_MTRRCAP, 200);
    let seen = std::cell::RefCell::new(Vec::new());
    let rd = |msr: u32| {
        seen.borrow_mut().push(msr);
        *msrs.get(&msr).unwrap_or(&0)
    };
    let r = MtrrState::read(&rd);
    assert_eq!((r.fixed, r.var.len()), (None, 40));
    assert!(
        seen.borrow()
            .iter()
            .all(|&m| m == 0xfe || m == 0x2ff || m < 0x250)
    );
    assert_eq!(var_msrs(0), (0x200, 0x201));
    assert_eq!(var_msrs(39), (0x24e, 0x24f));
    assert_eq!(var_msrs(u32::MAX), (u32::MAX, u32::MAX));
}

#[test]
fn msr_names() {
    assert_eq!(msr_name(0xfe), "MTRRcap");
    assert_eq!(msr_name(0x2ff), "MTRRdefType");
    assert_eq!(msr_name(0x200), "MTRRphysBase0");
    assert_eq!(msr_name(0x24f), "MTRRphysMask39");
    assert_eq!(msr_name(0x250), "MTRRfix64K_00000");
    assert_eq!(msr_name(0x258), "MTRRfix16K_80000");
    assert_eq!(msr_name(0x259), "MTRRfix16K_A0000");
    assert_eq!(msr_name(0x26f), "MTRRfix4K_F8000");
    assert_eq!(msr_name(0x1234), "MSR 0x1234");
    assert_eq!(MemType::Reserved(3).to_string(), "reserved(3)");
    for raw in 0..=255u8 {
        assert_eq!(MemType::from_raw(raw).raw(), raw);
    }
}

#[test]
fn disagreeing_vcpus_and_corrections() {
    let v0 = qemu_xen();
    let v1 = v0.clone();
    // vCPU 2: left with MTRRs off and the hole range invalid.
    let mut v2 = v0.clone();
    v2.def_type = 6;
    v2.var[0].1 &= !PHYSMASK_V;
    // vCPU 3: VGA window WB and an extra UC range.
    let mut v3 = v0.clone();
    v3.fixed.as_mut().unwrap()[2] = WB8;
    v3.var[1] = range(0x4000_0000, 0x1000_0000, MemType::Uc);
    // vCPU 4: fewer variable ranges and no fixed ranges (a different MTRRcap).
    let mut v4 = v0.clone();
    v4.cap = CAP_WC | 2;
    v4.fixed = None;
    v4.var.truncate(2);
    v4.var[0] = (0, 0);
    let states = [v0, v1, v2, v3, v4];
    let p = compare(&states);
    let details: Vec<&str> = p.iter().map(|p| p.detail.as_str()).collect();
    assert!(p.iter().all(|p| p.kind == ProblemKind::Disagree));
    assert_eq!(
        details,
        [
            "vCPU 2: MTRRphysMask0 (MSR 0x201) is 0xff80000000, vCPU 0 has 0xff80000800",
            "vCPU 2: MTRRdefType (MSR 0x2ff) is 0x6, vCPU 0 has 0xc06",
            "vCPU 3: MTRRphysBase1 (MSR 0x202) is 0x40000000, vCPU 0 has 0x0",
            "vCPU 3: MTRRphysMask1 (MSR 0x203) is 0xfff0000800, vCPU 0 has 0x0",
            "vCPU 3: MTRRfix16K_A0000 (MSR 0x259) is 0x606060606060606, vCPU 0 has 0x0",
            "vCPU 4: MTRRcap (MSR 0xfe) is 0x402, vCPU 0 has 0x508",
            "vCPU 4: MTRRphysBase0 (MSR 0x200) is 0x0, vCPU 0 has 0x80000000",
            "vCPU 4: MTRRphysMask0 (MSR 0x201) is 0x0, vCPU 0 has 0xff80000800",
            "vCPU 4: MTRRphysBase2 (MSR 0x204) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysMask2 (MSR 0x205) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysBase3 (MSR 0x206) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysMask3 (MSR 0x207) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysBase4 (MSR 0x208) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysMask4 (MSR 0x209) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysBase5 (MSR 0x20a) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysMask5 (MSR 0x20b) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysBase6 (MSR 0x20c) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysMask6 (MSR 0x20d) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysBase7 (MSR 0x20e) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRphysMask7 (MSR 0x20f) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRfix64K_00000 (MSR 0x250) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix16K_80000 (MSR 0x258) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix16K_A0000 (MSR 0x259) is absent, vCPU 0 has 0x0",
            "vCPU 4: MTRRfix4K_C0000 (MSR 0x268) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix4K_C8000 (MSR 0x269) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix4K_D0000 (MSR 0x26a) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix4K_D8000 (MSR 0x26b) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix4K_E0000 (MSR 0x26c) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix4K_E8000 (MSR 0x26d) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix4K_F0000 (MSR 0x26e) is absent, vCPU 0 has 0x606060606060606",
            "vCPU 4: MTRRfix4K_F8000 (MSR 0x26f) is absent, vCPU 0 has 0x606060606060606",
        ]
    );
    // The reverse view: MSRs only the other vCPU has.
    let p = compare(&[states[4].clone(), states[0].clone()]);
    assert_eq!(
        p[3].detail,
        "vCPU 1: MTRRphysBase2 (MSR 0x204) is 0x0, absent on vCPU 0"
    );

    let c = corrections(&states);
    assert_eq!(
        c,
        [
            // vCPU 2: off, the hole's mask, on.
            (2, 0x2ff, 0),
            (2, 0x201, 0xff_8000_0800),
            (2, 0x2ff, 0xc06),
            // vCPU 3: off, fixed first, then variable (base before mask), on.
            (3, 0x2ff, 0),
            (3, 0x259, 0),
            (3, 0x202, 0),
            (3, 0x203, 0),
            (3, 0x2ff, 0xc06),
            // vCPU 4: only the ranges it has; FE cleared as it has no fixed ranges.
            (4, 0x2ff, 0),
            (4, 0x200, 0x8000_0000),
            (4, 0x201, 0xff_8000_0800),
            (4, 0x2ff, 0x806),
        ]
    );
    // Applying them makes vCPUs 2 and 3 identical to vCPU 0.
    let mut fixed_up = states.to_vec();
    for &(vcpu, msr, value) in &c {
        let s = &mut fixed_up[vcpu];
        match msr {
            MSR_MTRR_DEF_TYPE => s.def_type = value,
            0x200..=0x24f => {
                let n = ((msr - 0x200) / 2) as usize;
                if msr.is_multiple_of(2) {
                    s.var[n].0 = value;
                } else {
                    s.var[n].1 = value;
                }
            }
            _ => {
                let j = FIXED_MSRS.iter().position(|&m| m == msr).unwrap();
                s.fixed.as_mut().unwrap()[j] = value;
            }
        }
    }
    assert_eq!(fixed_up[2], fixed_up[0]);
    assert_eq!(fixed_up[3], fixed_up[0]);
    assert!(compare(&fixed_up[..4]).is_empty());
    assert!(corrections(&fixed_up[..4]).is_empty());
    assert!(compare(&[]).is_empty() && corrections(&[]).is_empty());
    assert!(compare(&states[..1]).is_empty() && corrections(&states[..1]).is_empty());
}
