//! MTRR decoding, the effective memory-type map, and checks (Intel SDM vol. 3 §12.11; AMD's
//! APM vol. 2 §7.7 uses the same MSRs).
//!
//! Xen 4.17 gives a PVH hardware domain the host's MTRRs (reference §6.2): `MTRRcap` with FIX,
//! WC and VCNT = host VCNT capped at 40, the host's fixed and variable ranges, and
//! `MTRRdefType` with E and FE. Each vCPU has its own virtual copy, and dom0's writes change
//! only that copy (which feeds the EPT/NPT memory type). These functions read such a state,
//! say what type each address gets, check it against the memory map, compare vCPUs and
//! compute the writes that make every vCPU match vCPU 0 (what Linux's `mtrr_ap_init` does).
//!
//! MSRs:
//! - `MTRRcap` (0xFE): VCNT in bits 7:0, FIX bit 8, WC bit 10, SMRR bit 11.
//! - `MTRRdefType` (0x2FF): default type in bits 7:0, FE (fixed enable) bit 10, E bit 11.
//! - Fixed ranges: 0x250 (8 × 64 KiB from 0), 0x258 (8 × 16 KiB from 0x80000), 0x259
//!   (8 × 16 KiB from 0xA0000), 0x268..=0x26F (8 × 4 KiB each from 0xC0000); byte *k* of an
//!   MSR is the type of its *k*-th piece.
//! - Variable range *n*: `PHYSBASE` 0x200+2n (type in bits 7:0, base in bits MAXPHYADDR-1:12)
//!   and `PHYSMASK` 0x201+2n (V bit 11, mask in bits MAXPHYADDR-1:12). An address matches
//!   when `addr & mask == base & mask`. At most 40 pairs fit below 0x250.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::ops::Range;

use xen::memmap::{MemType as MapType, MemoryMap};

/// `IA32_MTRRCAP`.
pub const MSR_MTRRCAP: u32 = 0xfe;
/// `IA32_MTRR_DEF_TYPE`.
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// The fixed-range MSRs in address order.
pub const FIXED_MSRS: [u32; 11] = [
    0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d, 0x26e, 0x26f,
];
/// Variable ranges that fit in 0x200..0x250 (Xen's `MTRR_VCNT_MAX`).
pub const MAX_VAR_RANGES: usize = 40;
/// `MTRRcap` VCNT field.
pub const CAP_VCNT: u64 = 0xff;
/// `MTRRcap.FIX`: fixed-range MSRs exist.
pub const CAP_FIX: u64 = 1 << 8;
/// `MTRRcap.WC`: the WC type is supported.
pub const CAP_WC: u64 = 1 << 10;
/// `MTRRdefType.FE`: fixed ranges enabled.
pub const DEF_TYPE_FE: u64 = 1 << 10;
/// `MTRRdefType.E`: MTRRs enabled.
pub const DEF_TYPE_E: u64 = 1 << 11;
/// `PHYSMASK.V`: the variable range is valid.
pub const PHYSMASK_V: u64 = 1 << 11;
/// The fixed ranges cover [0, 1 MiB).
pub const FIXED_END: u64 = 0x10_0000;
/// How many separate blocks of one non-contiguous variable range [`MtrrState::ranges`]
/// follows in one call; past them the type map is only sampled (and so approximate).
pub const MAX_BLOCKS: usize = 1024;

/// The MSRs `(PHYSBASE, PHYSMASK)` of variable range `n`: (0x200 + 2n, 0x201 + 2n). Only
/// `n < 40` names variable-range MSRs; larger `n` gives other MSRs (saturating, no panic).
pub fn var_msrs(n: u32) -> (u32, u32) {
    let base = 0x200u32.saturating_add(n.saturating_mul(2));
    (base, base.saturating_add(1))
}

/// A memory type encoding as MTRRs use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemType {
    /// 0: uncacheable.
    Uc,
    /// 1: write-combining.
    Wc,
    /// 4: write-through.
    Wt,
    /// 5: write-protected.
    Wp,
    /// 6: write-back.
    Wb,
    /// 2, 3, 7..=255: reserved (a write of one #GPs on real hardware).
    Reserved(u8),
}

impl MemType {
    pub fn from_raw(raw: u8) -> MemType {
        match raw {
            0 => MemType::Uc,
            1 => MemType::Wc,
            4 => MemType::Wt,
            5 => MemType::Wp,
            6 => MemType::Wb,
            other => MemType::Reserved(other),
        }
    }

    pub fn raw(self) -> u8 {
        match self {
            MemType::Uc => 0,
            MemType::Wc => 1,
            MemType::Wt => 4,
            MemType::Wp => 5,
            MemType::Wb => 6,
            MemType::Reserved(raw) => raw,
        }
    }

    /// "UC", "WC", "WT", "WP", "WB" or "reserved".
    pub fn name(self) -> &'static str {
        match self {
            MemType::Uc => "UC",
            MemType::Wc => "WC",
            MemType::Wt => "WT",
            MemType::Wp => "WP",
            MemType::Wb => "WB",
            MemType::Reserved(_) => "reserved",
        }
    }
}

impl fmt::Display for MemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemType::Reserved(raw) => write!(f, "reserved({raw})"),
            t => f.write_str(t.name()),
        }
    }
}

/// The type the MTRRs give an address. `conflict`: several variable ranges match with types
/// the SDM gives no result for (e.g. WC and WB); `ty` is then UC, the safe guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    pub ty: MemType,
    pub conflict: bool,
}

impl Resolved {
    const fn plain(ty: MemType) -> Resolved {
        Resolved {
            ty,
            conflict: false,
        }
    }
}

impl fmt::Display for Resolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.conflict {
            f.write_str("undefined")
        } else {
            write!(f, "{}", self.ty)
        }
    }
}

/// One vCPU's MTRR MSRs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MtrrState {
    /// `MTRRcap` (0xFE).
    pub cap: u64,
    /// `MTRRdefType` (0x2FF).
    pub def_type: u64,
    /// The 11 fixed-range MSRs in [`FIXED_MSRS`] order; `None` if `cap.FIX` is clear.
    pub fixed: Option<[u64; 11]>,
    /// `(PHYSBASE n, PHYSMASK n)` for `n < cap.VCNT` (at most 40 are used).
    pub var: Vec<(u64, u64)>,
}

/// Clamp a MAXPHYADDR to what the architecture allows (32..=52), so hostile CPUID values
/// cannot make a shift overflow.
fn clamp_phys(bits: u8) -> u32 {
    u32::from(bits).clamp(32, 52)
}

/// The address bits a PHYSBASE/PHYSMASK field holds: MAXPHYADDR-1:12.
fn field_mask(phys: u32) -> u64 {
    ((1u64 << phys) - 1) & !0xfff
}

/// (first address, piece size) of each fixed-range MSR; each covers 8 pieces.
const FIXED_LAYOUT: [(u64, u64); 11] = [
    (0x0, 0x10000),
    (0x80000, 0x4000),
    (0xa0000, 0x4000),
    (0xc0000, 0x1000),
    (0xc8000, 0x1000),
    (0xd0000, 0x1000),
    (0xd8000, 0x1000),
    (0xe0000, 0x1000),
    (0xe8000, 0x1000),
    (0xf0000, 0x1000),
    (0xf8000, 0x1000),
];

/// Which fixed-range MSR (index into [`FIXED_MSRS`]) and byte cover `addr` (< 1 MiB).
fn fixed_slot(addr: u64) -> Option<(usize, usize)> {
    FIXED_LAYOUT
        .iter()
        .enumerate()
        .find(|(_, (start, piece))| addr >= *start && addr < start + 8 * piece)
        .map(|(j, (start, piece))| (j, ((addr - start) / piece) as usize))
}

/// Every boundary between fixed-range pieces, 0 and 1 MiB included.
fn fixed_boundaries() -> impl Iterator<Item = u64> {
    FIXED_LAYOUT
        .iter()
        .flat_map(|&(start, piece)| (0..8).map(move |k| start + k * piece))
        .chain(core::iter::once(FIXED_END))
}

/// A decoded, valid variable range.
#[derive(Debug, Clone, Copy)]
struct Var {
    index: usize,
    ty: MemType,
    /// PHYSBASE & mask: the bits an address must have.
    base: u64,
    /// PHYSMASK restricted to bits MAXPHYADDR-1:12.
    mask: u64,
    /// Size of one matching block: the lowest set mask bit (the whole space if the mask is 0).
    block: u64,
    /// The mask is ones from MAXPHYADDR-1 down to log2(block): one aligned block matches.
    contiguous: bool,
}

impl Var {
    fn decode(index: usize, (base, mask): (u64, u64), phys: u32) -> Option<Var> {
        if mask & PHYSMASK_V == 0 {
            return None;
        }
        let field = field_mask(phys);
        let m = mask & field;
        let block = if m == 0 {
            1u64 << phys
        } else {
            1u64 << m.trailing_zeros()
        };
        Some(Var {
            index,
            ty: MemType::from_raw(base.to_le_bytes()[0]),
            base: base & m,
            mask: m,
            block,
            contiguous: m == field & !(block - 1),
        })
    }

    fn matches(&self, addr: u64) -> bool {
        addr & self.mask == self.base
    }

    /// The one block a contiguous range covers (cannot overflow: base < 2^52, aligned).
    fn span(&self) -> Range<u64> {
        self.base..self.base + self.block
    }

    /// The matching blocks that meet [start, end), at most `max`; and whether more remain.
    fn blocks(&self, start: u64, end: u64, max: usize) -> (Vec<Range<u64>>, bool) {
        let mut out = Vec::new();
        let mut at = start & !(self.block - 1);
        while at < end {
            let Some(x) = next_match(at, self.mask, self.base) else {
                break;
            };
            if x >= end {
                break;
            }
            if out.len() == max {
                return (out, true);
            }
            let Some(next) = x.checked_add(self.block) else {
                out.push(x..u64::MAX);
                break;
            };
            out.push(x..next);
            at = next;
        }
        (out, false)
    }
}

/// The smallest `x >= a` with `x & m == b` (where `b` has no bits outside `m`), if any.
fn next_match(a: u64, m: u64, b: u64) -> Option<u64> {
    let diff = (a ^ b) & m;
    if diff == 0 {
        return Some(a);
    }
    // The highest constrained bit where `a` is wrong decides.
    let h = 63 - diff.leading_zeros();
    let low = u64::MAX >> (63 - h); // bits h..=0
    if b & (1u64 << h) != 0 {
        // `a` has 0 where 1 is needed: keep a's higher bits, then the smallest tail.
        Some((a & !low) | (b & low))
    } else {
        // `a` has 1 where 0 is needed: the free bits above h must count up by one.
        if h == 63 {
            return None;
        }
        let high_fixed = m & !low;
        let bumped = ((a & !low) | high_fixed).checked_add(1u64 << (h + 1))?;
        Some((bumped & !m & !low) | b)
    }
}

/// Combine the types of the variable ranges matching one address (SDM §12.11.4.1).
fn combine(types: impl Iterator<Item = MemType>, default: MemType) -> Resolved {
    let mut first = None;
    let (mut same, mut any_uc, mut wt_wb_only) = (true, false, true);
    for t in types {
        match first {
            None => first = Some(t),
            Some(f) if f != t => same = false,
            Some(_) => {}
        }
        any_uc |= t == MemType::Uc;
        wt_wb_only &= matches!(t, MemType::Wt | MemType::Wb);
    }
    match first {
        None => Resolved::plain(default),
        Some(t) if same => Resolved::plain(t),
        Some(_) if any_uc => Resolved::plain(MemType::Uc),
        Some(_) if wt_wb_only => Resolved::plain(MemType::Wt),
        Some(_) => Resolved {
            ty: MemType::Uc,
            conflict: true,
        },
    }
}

/// A name for an MTRR MSR, e.g. "MTRRphysMask0" or "MTRRfix4K_C8000".
pub fn msr_name(msr: u32) -> String {
    match msr {
        MSR_MTRRCAP => String::from("MTRRcap"),
        MSR_MTRR_DEF_TYPE => String::from("MTRRdefType"),
        0x200..=0x24f => {
            let n = (msr - 0x200) / 2;
            let kind = if msr.is_multiple_of(2) {
                "Base"
            } else {
                "Mask"
            };
            format!("MTRRphys{kind}{n}")
        }
        _ => match FIXED_MSRS.iter().position(|&m| m == msr) {
            Some(j) => {
                let (start, piece) = FIXED_LAYOUT[j];
                format!("MTRRfix{}K_{start:05X}", piece >> 10)
            }
            None => format!("MSR {msr:#x}"),
        },
    }
}

impl MtrrState {
    /// Read a vCPU's MTRRs through `rdmsr` (only the MSRs `MTRRcap` says exist: fixed ranges
    /// if FIX, and `min(VCNT, 40)` variable ranges, so a hostile VCNT cannot make it read
    /// the fixed-range MSRs as variable ones). The caller makes sure CPUID has the MTRR bit.
    pub fn read(rdmsr: &dyn Fn(u32) -> u64) -> MtrrState {
        let cap = rdmsr(MSR_MTRRCAP);
        let def_type = rdmsr(MSR_MTRR_DEF_TYPE);
        let fixed = (cap & CAP_FIX != 0).then(|| FIXED_MSRS.map(rdmsr));
        let count = ((cap & CAP_VCNT) as usize).min(MAX_VAR_RANGES);
        let var = (0..count as u32)
            .map(|n| {
                let (b, m) = var_msrs(n);
                (rdmsr(b), rdmsr(m))
            })
            .collect();
        MtrrState {
            cap,
            def_type,
            fixed,
            var,
        }
    }

    /// `MTRRcap.VCNT`, as the register says (may exceed 40).
    pub fn vcnt(&self) -> u32 {
        (self.cap & CAP_VCNT) as u32
    }

    /// The variable ranges in effect: the first `min(var.len(), VCNT, 40)`.
    pub fn active_var(&self) -> &[(u64, u64)] {
        let n = self.var.len().min(self.vcnt() as usize).min(MAX_VAR_RANGES);
        &self.var[..n]
    }

    fn vars(&self, phys: u32) -> impl Iterator<Item = Var> + '_ {
        self.active_var()
            .iter()
            .enumerate()
            .filter_map(move |(i, &pair)| Var::decode(i, pair, phys))
    }

    /// `MTRRdefType.E`.
    pub fn enabled(&self) -> bool {
        self.def_type & DEF_TYPE_E != 0
    }

    /// MTRRs enabled, `MTRRdefType.FE` set, and fixed-range MSRs present.
    pub fn fixed_enabled(&self) -> bool {
        self.enabled() && self.def_type & DEF_TYPE_FE != 0 && self.fixed.is_some()
    }

    /// `MTRRdefType` bits 7:0.
    pub fn default_type(&self) -> MemType {
        MemType::from_raw(self.def_type.to_le_bytes()[0])
    }

    fn fixed_type(&self, addr: u64) -> Option<MemType> {
        let fixed = self.fixed.as_ref()?;
        let (j, k) = fixed_slot(addr)?;
        Some(MemType::from_raw(fixed[j].to_le_bytes()[k]))
    }

    /// Every MSR of this state as `(index, value)`, in ascending MSR order: `MTRRcap`, the
    /// active variable ranges, the fixed ranges (if present), `MTRRdefType`.
    pub fn msrs(&self) -> Vec<(u32, u64)> {
        let mut out = vec![(MSR_MTRRCAP, self.cap)];
        for (n, &(base, mask)) in self.active_var().iter().enumerate() {
            let (b, m) = var_msrs(n as u32);
            out.push((b, base));
            out.push((m, mask));
        }
        if let Some(fixed) = &self.fixed {
            out.extend(FIXED_MSRS.iter().copied().zip(fixed.iter().copied()));
        }
        out.push((MSR_MTRR_DEF_TYPE, self.def_type));
        out
    }

    /// The effective type of the byte at `addr` (SDM §12.11.4.1): MTRRs disabled → UC; below
    /// 1 MiB with fixed ranges enabled → the fixed range; otherwise the matching variable
    /// ranges (one → its type; several → UC if any is UC, WT if all are WT or WB, else a
    /// conflict); none → the default type. `phys_bits` is MAXPHYADDR (clamped to 32..=52).
    pub fn type_at(&self, addr: u64, phys_bits: u8) -> Resolved {
        if !self.enabled() {
            return Resolved::plain(MemType::Uc);
        }
        if addr < FIXED_END
            && self.fixed_enabled()
            && let Some(t) = self.fixed_type(addr)
        {
            return Resolved::plain(t);
        }
        let phys = clamp_phys(phys_bits);
        combine(
            self.vars(phys).filter(|v| v.matches(addr)).map(|v| v.ty),
            self.default_type(),
        )
    }

    /// The type map of `[start, end)` (cut at 2^MAXPHYADDR) as maximal runs in address order.
    ///
    /// Types can only change at fixed-range piece boundaries and at variable-range block
    /// boundaries, so each run's type is that of its first byte. A non-contiguous mask
    /// matches many separate blocks; the first [`MAX_BLOCKS`] of each such range inside the
    /// span are followed exactly, past them the map is sampled at the other boundaries only
    /// (such masks are flagged by [`check`]).
    pub fn ranges(&self, start: u64, end: u64, phys_bits: u8) -> Vec<(Range<u64>, Resolved)> {
        let phys = clamp_phys(phys_bits);
        let end = end.min(1u64 << phys);
        if start >= end {
            return Vec::new();
        }
        let mut cuts = vec![start, end];
        if self.enabled() {
            if self.fixed_enabled() && start < FIXED_END {
                cuts.extend(fixed_boundaries());
            }
            for v in self.vars(phys) {
                if v.contiguous {
                    let s = v.span();
                    cuts.extend([s.start, s.end]);
                } else {
                    for b in v.blocks(start, end, MAX_BLOCKS).0 {
                        cuts.extend([b.start, b.end]);
                    }
                }
            }
        }
        cuts.retain(|&c| c >= start && c <= end);
        lean::sort_dedup(&mut cuts);
        let mut out: Vec<(Range<u64>, Resolved)> = Vec::new();
        for w in cuts.windows(2) {
            let r = self.type_at(w[0], phys_bits);
            match out.last_mut() {
                Some((range, last)) if *last == r => range.end = w[1],
                _ => out.push((w[0]..w[1], r)),
            }
        }
        out
    }

    /// Each valid variable range (V set) as text: "0x0-0x80000000 WB" (end exclusive), or
    /// "0x10000000 mask 0xff00001000 UC (non-contiguous mask)".
    pub fn describe(&self, phys_bits: u8) -> Vec<String> {
        let phys = clamp_phys(phys_bits);
        self.vars(phys)
            .map(|v| {
                if v.contiguous {
                    let s = v.span();
                    format!("{:#x}-{:#x} {}", s.start, s.end, v.ty)
                } else {
                    format!(
                        "{:#x} mask {:#x} {} (non-contiguous mask)",
                        v.base, v.mask, v.ty
                    )
                }
            })
            .collect()
    }
}

mod check;

pub use check::{Problem, ProblemKind, check, compare, corrections};

#[cfg(test)]
mod tests;
