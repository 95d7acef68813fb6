//! The MTRR checks: each vCPU's MTRRs against the memory map (RAM write-back, MMIO uncached,
//! fixed ranges, overlaps), the vCPUs against each other, and the MSR writes that make every
//! vCPU use vCPU 0's.

use super::*;

/// What kind of problem [`check`] or [`compare`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// `MTRRdefType.E` is clear: everything is UC.
    Disabled,
    /// Some RAM is not WB.
    RamNotWriteBack,
    /// Some MMIO is not UC (or WC where allowed).
    MmioCached,
    /// Variable ranges overlap with types that have no defined combination.
    OverlapConflict,
    /// A valid variable range's mask is not contiguous.
    NonContiguousMask,
    /// `MTRRcap.VCNT` > 40.
    VcntTooLarge,
    /// A reserved type encoding is in use.
    ReservedType,
    /// An MSR differs from vCPU 0's.
    Disagree,
}

impl ProblemKind {
    /// A snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            ProblemKind::Disabled => "disabled",
            ProblemKind::RamNotWriteBack => "ram_not_write_back",
            ProblemKind::MmioCached => "mmio_cached",
            ProblemKind::OverlapConflict => "overlap_conflict",
            ProblemKind::NonContiguousMask => "non_contiguous_mask",
            ProblemKind::VcntTooLarge => "vcnt_too_large",
            ProblemKind::ReservedType => "reserved_type",
            ProblemKind::Disagree => "disagree",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem, with a human-readable detail naming addresses, ranges and MSRs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
}

impl Problem {
    fn new(kind: ProblemKind, detail: String) -> Problem {
        Problem { kind, detail }
    }
}

/// "`kind`: `detail`".
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// How many runs a problem's detail lists before "and N more".
const LISTED_RUNS: usize = 4;
/// How many conflicting runs get a problem of their own.
const LISTED_CONFLICTS: usize = 8;

fn runs_text(runs: &[(Range<u64>, Resolved)]) -> String {
    let mut s = String::new();
    for (i, (r, t)) in runs.iter().take(LISTED_RUNS).enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        // Writing to a String cannot fail.
        let _ = write!(s, "{sep}[{:#x}, {:#x}) {t}", r.start, r.end);
    }
    if runs.len() > LISTED_RUNS {
        let _ = write!(s, " and {} more", runs.len() - LISTED_RUNS);
    }
    s
}

/// Check one vCPU's MTRRs: RAM (`xen::memmap::MemType::Ram`) must be WB, each `mmio` range
/// must be UC (or WC when its flag says WC is acceptable, e.g. a prefetchable BAR), and the
/// state itself must be sane (enabled, VCNT ≤ 40, no reserved types, contiguous masks, no
/// undefined overlaps). With MTRRs disabled only the state checks and [`ProblemKind::Disabled`]
/// are reported (every address is UC, so all RAM is uncached). Addresses at or beyond
/// 2^`phys_bits` are not checked.
pub fn check(
    state: &MtrrState,
    map: &MemoryMap,
    mmio: &[(Range<u64>, bool)],
    phys_bits: u8,
) -> Vec<Problem> {
    let phys = clamp_phys(phys_bits);
    let mut out = Vec::new();
    let vcnt = state.vcnt();
    if vcnt as usize > MAX_VAR_RANGES {
        out.push(Problem::new(
            ProblemKind::VcntTooLarge,
            format!(
                "MTRRcap {:#x} says {vcnt} variable ranges; only {MAX_VAR_RANGES} fit below the \
                 fixed-range MSRs, so only the first {MAX_VAR_RANGES} are used",
                state.cap
            ),
        ));
    }
    if let MemType::Reserved(raw) = state.default_type() {
        out.push(Problem::new(
            ProblemKind::ReservedType,
            format!(
                "MTRRdefType {:#x} has reserved default type {raw}",
                state.def_type
            ),
        ));
    }
    if let Some(fixed) = &state.fixed {
        for (j, &value) in fixed.iter().enumerate() {
            let bad: Vec<(usize, u8)> = value
                .to_le_bytes()
                .iter()
                .enumerate()
                .filter(|&(_, &b)| matches!(MemType::from_raw(b), MemType::Reserved(_)))
                .map(|(k, &b)| (k, b))
                .collect();
            if let Some(&(k, raw)) = bad.first() {
                let (start, piece) = FIXED_LAYOUT[j];
                let at = start + k as u64 * piece;
                let more = if bad.len() > 1 {
                    format!(" (and {} more pieces)", bad.len() - 1)
                } else {
                    String::new()
                };
                out.push(Problem::new(
                    ProblemKind::ReservedType,
                    format!(
                        "{} (MSR {:#x}) = {value:#x} has reserved type {raw} for [{at:#x}, \
                         {:#x}){more}",
                        msr_name(FIXED_MSRS[j]),
                        FIXED_MSRS[j],
                        at + piece
                    ),
                ));
            }
        }
    }
    for v in state.vars(phys) {
        let (base_msr, _) = var_msrs(v.index as u32);
        if let MemType::Reserved(raw) = v.ty {
            out.push(Problem::new(
                ProblemKind::ReservedType,
                format!(
                    "variable range {} (MSR {base_msr:#x}) has reserved type {raw}",
                    v.index
                ),
            ));
        }
        if !v.contiguous {
            let (base, mask) = state.active_var()[v.index];
            out.push(Problem::new(
                ProblemKind::NonContiguousMask,
                format!(
                    "variable range {} (PHYSBASE {base:#x}, PHYSMASK {mask:#x}) has a \
                     non-contiguous mask for {phys} address bits: it matches separate {:#x}-byte \
                     blocks; the type map follows the first {MAX_BLOCKS} per range",
                    v.index, v.block
                ),
            ));
        }
    }
    if !state.enabled() {
        out.push(Problem::new(
            ProblemKind::Disabled,
            format!(
                "MTRRs are disabled (MTRRdefType {:#x} has E clear): all memory, RAM included, \
                 is uncached",
                state.def_type
            ),
        ));
        return out;
    }

    let limit = 1u64 << phys;
    let conflicts: Vec<Range<u64>> = state
        .ranges(0, limit, phys_bits)
        .into_iter()
        .filter(|(_, r)| r.conflict)
        .map(|(range, _)| range)
        .collect();
    for range in conflicts.iter().take(LISTED_CONFLICTS) {
        let mut which = String::new();
        for (i, v) in state
            .vars(phys)
            .filter(|v| v.matches(range.start))
            .enumerate()
        {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(which, "{sep}{} ({})", v.index, v.ty);
        }
        out.push(Problem::new(
            ProblemKind::OverlapConflict,
            format!(
                "[{:#x}, {:#x}): variable ranges {which} overlap and the SDM defines no \
                 resulting type",
                range.start, range.end
            ),
        ));
    }
    if conflicts.len() > LISTED_CONFLICTS {
        out.push(Problem::new(
            ProblemKind::OverlapConflict,
            format!(
                "{} more runs with undefined overlapping types",
                conflicts.len() - LISTED_CONFLICTS
            ),
        ));
    }

    for r in map.regions().iter().filter(|r| r.kind == MapType::Ram) {
        let bad: Vec<(Range<u64>, Resolved)> = state
            .ranges(r.addr, r.end(), phys_bits)
            .into_iter()
            .filter(|(_, t)| t.conflict || t.ty != MemType::Wb)
            .collect();
        if !bad.is_empty() {
            out.push(Problem::new(
                ProblemKind::RamNotWriteBack,
                format!(
                    "RAM [{:#x}, {:#x}) is not all WB: {}",
                    r.addr,
                    r.end(),
                    runs_text(&bad)
                ),
            ));
        }
    }

    for (range, wc_ok) in mmio {
        let ok =
            |t: &Resolved| !t.conflict && (t.ty == MemType::Uc || (*wc_ok && t.ty == MemType::Wc));
        let bad: Vec<(Range<u64>, Resolved)> = state
            .ranges(range.start, range.end, phys_bits)
            .into_iter()
            .filter(|(_, t)| !ok(t))
            .collect();
        if !bad.is_empty() {
            let want = if *wc_ok { "UC or WC" } else { "UC" };
            out.push(Problem::new(
                ProblemKind::MmioCached,
                format!(
                    "MMIO [{:#x}, {:#x}) must be {want}: {}",
                    range.start,
                    range.end,
                    runs_text(&bad)
                ),
            ));
        }
    }
    out
}

/// Compare every vCPU's MTRR MSRs with vCPU 0's: one [`ProblemKind::Disagree`] per MSR that
/// differs (or exists on only one of the two), per vCPU, in vCPU then MSR order.
pub fn compare(states: &[MtrrState]) -> Vec<Problem> {
    let Some((first, rest)) = states.split_first() else {
        return Vec::new();
    };
    let reference = first.msrs();
    let mut out = Vec::new();
    for (k, state) in rest.iter().enumerate() {
        let vcpu = k + 1;
        let other = state.msrs();
        let (mut i, mut j) = (0, 0);
        while i < reference.len() || j < other.len() {
            let a = reference.get(i).copied();
            let b = other.get(j).copied();
            let (msr, va, vb) = match (a, b) {
                (Some((ma, va)), Some((mb, vb))) if ma == mb => {
                    i += 1;
                    j += 1;
                    (ma, Some(va), Some(vb))
                }
                (Some((ma, va)), Some((mb, _))) if ma < mb => {
                    i += 1;
                    (ma, Some(va), None)
                }
                (Some((ma, va)), None) => {
                    i += 1;
                    (ma, Some(va), None)
                }
                (_, Some((mb, vb))) => {
                    j += 1;
                    (mb, None, Some(vb))
                }
                (None, None) => break,
            };
            let name = msr_name(msr);
            let detail = match (va, vb) {
                (Some(x), Some(y)) if x != y => {
                    format!("vCPU {vcpu}: {name} (MSR {msr:#x}) is {y:#x}, vCPU 0 has {x:#x}")
                }
                (Some(x), None) => {
                    format!("vCPU {vcpu}: {name} (MSR {msr:#x}) is absent, vCPU 0 has {x:#x}")
                }
                (None, Some(y)) => {
                    format!("vCPU {vcpu}: {name} (MSR {msr:#x}) is {y:#x}, absent on vCPU 0")
                }
                _ => continue,
            };
            out.push(Problem::new(ProblemKind::Disagree, detail));
        }
    }
    out
}

/// The MSR writes `(vcpu, msr, value)` that give every vCPU vCPU 0's MTRRs, as Linux's
/// `mtrr_ap_init` does, in the SDM §12.11.7.2 order for each vCPU that differs:
/// 1. `MTRRdefType` = its current value with E, FE and the type cleared (MTRRs off, as
///    Linux's `prepare_set` writes it);
/// 2. the fixed-range MSRs that differ (only if both vCPUs have them);
/// 3. the variable ranges that differ, PHYSBASE before PHYSMASK, over the ranges the vCPU
///    has (ranges vCPU 0 lacks are cleared to 0);
/// 4. `MTRRdefType` = vCPU 0's value (FE cleared if the vCPU has no fixed ranges).
///
/// The caller runs these with caches disabled and flushed, as the SDM describes. `MTRRcap`
/// is read-only and never written; a vCPU whose VCNT is smaller than the ranges vCPU 0 uses
/// cannot be fully corrected ([`compare`] reports it).
pub fn corrections(states: &[MtrrState]) -> Vec<(usize, u32, u64)> {
    let Some((first, rest)) = states.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, state) in rest.iter().enumerate() {
        let vcpu = k + 1;
        let mut body = Vec::new();
        if let (Some(want), Some(have)) = (&first.fixed, &state.fixed) {
            for (j, (&w, &h)) in want.iter().zip(have.iter()).enumerate() {
                if w != h {
                    body.push((FIXED_MSRS[j], w));
                }
            }
        }
        let want_var = first.active_var();
        for (n, &(have_base, have_mask)) in state.active_var().iter().enumerate() {
            let (want_base, want_mask) = want_var.get(n).copied().unwrap_or((0, 0));
            let (b, m) = var_msrs(n as u32);
            if have_base != want_base {
                body.push((b, want_base));
            }
            if have_mask != want_mask {
                body.push((m, want_mask));
            }
        }
        let mut def = first.def_type;
        if state.fixed.is_none() {
            def &= !DEF_TYPE_FE;
        }
        if body.is_empty() && state.def_type == def {
            continue;
        }
        out.push((vcpu, MSR_MTRR_DEF_TYPE, state.def_type & !0xcff));
        out.extend(body.into_iter().map(|(msr, v)| (vcpu, msr, v)));
        out.push((vcpu, MSR_MTRR_DEF_TYPE, def));
    }
    out
}
