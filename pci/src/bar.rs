//! Base address registers: decoding, sizing with decoding off, and the checks on the result.
//!
//! Sizing a BAR means writing all ones to it and reading back which address bits stuck.
//! Under Xen's vPCI a write to a memory BAR while COMMAND.MEM is set is ignored (and logged),
//! so the sequence for a function is: save COMMAND; clear its I/O and memory decode bits (one
//! write, only if either was set); for each BAR write all ones (both halves of a 64-bit BAR),
//! read back, and write the original value back; the same for the expansion ROM; then write
//! the saved COMMAND back. No BAR is written while its decoding is on. VF BARs (in the PF's
//! SR-IOV capability) are sized the same way with the SR-IOV VF Memory Space Enable bit in
//! place of COMMAND.MEM.

use crate::model::{Bar, BarKind, Function};
use crate::regs::*;
use crate::{ConfigSpace, Sbdf, problem};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// A decoded BAR register before sizing.
#[derive(Debug, Clone, Copy)]
struct Slot {
    index: u8,
    offset: u16,
    kind: BarKind,
    lo: u32,
    hi: u32,
}

impl Slot {
    fn address(&self) -> u64 {
        match self.kind {
            BarKind::Io => u64::from(self.lo & BAR_IO_ADDR),
            BarKind::Mem32 => u64::from(self.lo & BAR_MEM_ADDR),
            BarKind::Mem64 => u64::from(self.hi) << 32 | u64::from(self.lo & BAR_MEM_ADDR),
            BarKind::Rom => u64::from(self.lo & ROM_ADDR),
        }
    }

    fn prefetchable(&self) -> bool {
        matches!(self.kind, BarKind::Mem32 | BarKind::Mem64) && self.lo & BAR_PREFETCH != 0
    }
}

/// What a register is called in problems: "BAR 2 (0x18)", "VF BAR 0 (0x1a4)", "ROM (0x30)".
struct Name<'a> {
    what: &'a str,
    slot: &'a Slot,
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.slot.kind == BarKind::Rom {
            write!(f, "ROM ({:#x})", self.slot.offset)
        } else {
            write!(
                f,
                "{} {} ({:#x})",
                self.what, self.slot.index, self.slot.offset
            )
        }
    }
}

/// Decodes the BAR registers `regs` (starting at `base`) into slots; broken ones become
/// problems. `io_allowed` is false for VF BARs.
fn decode(
    sbdf: Sbdf,
    regs: &[u32],
    base: u16,
    what: &str,
    io_allowed: bool,
    problems: &mut Vec<String>,
) -> Vec<Slot> {
    let mut slots = Vec::with_capacity(regs.len() + 1);
    let mut i = 0;
    while i < regs.len() {
        let lo = regs[i];
        let offset = base + 4 * i as u16;
        let index = i as u8;
        i += 1;
        let kind = if lo & BAR_IO != 0 {
            if !io_allowed {
                problem(
                    problems,
                    format!(
                        "{sbdf}: {what} {index} ({offset:#x}) says I/O space, which it may not; ignored"
                    ),
                );
                continue;
            }
            BarKind::Io
        } else {
            match lo & BAR_MEM_TYPE_MASK {
                0 | BAR_MEM_TYPE_1M => BarKind::Mem32,
                BAR_MEM_TYPE_64 => {
                    if i >= regs.len() {
                        problem(
                            problems,
                            format!(
                                "{sbdf}: {what} {index} ({offset:#x}) is 64-bit but is the \
                                 last slot; ignored"
                            ),
                        );
                        continue;
                    }
                    i += 1;
                    BarKind::Mem64
                }
                _ => {
                    problem(
                        problems,
                        format!(
                            "{sbdf}: {what} {index} ({offset:#x}) has the reserved memory type \
                             3 (value {lo:#x}); ignored"
                        ),
                    );
                    continue;
                }
            }
        };
        let hi = if kind == BarKind::Mem64 {
            regs[i - 1]
        } else {
            0
        };
        slots.push(Slot {
            index,
            offset,
            kind,
            lo,
            hi,
        });
    }
    slots
}

/// Writes all ones to `slot`, reads back, writes the original back; returns the readback.
/// Decoding must be off.
fn size_slot(cs: &dyn ConfigSpace, sbdf: Sbdf, slot: &Slot) -> (u32, u32) {
    let ones = match slot.kind {
        BarKind::Rom => ROM_ADDR | (slot.lo & ROM_ENABLE),
        _ => u32::MAX,
    };
    cs.write32(sbdf, slot.offset, ones);
    let lo = cs.read32(sbdf, slot.offset);
    let mut hi = 0;
    if slot.kind == BarKind::Mem64 {
        cs.write32(sbdf, slot.offset + 4, u32::MAX);
        hi = cs.read32(sbdf, slot.offset + 4);
    }
    // A register that reads 0 after all ones is not implemented: nothing to put back.
    if lo != 0 || slot.lo != 0 {
        cs.write32(sbdf, slot.offset, slot.lo);
    }
    if slot.kind == BarKind::Mem64 && (hi != 0 || slot.hi != 0) {
        cs.write32(sbdf, slot.offset + 4, slot.hi);
    }
    (lo, hi)
}

/// The size from a sizing readback, or why there is none. `Ok(0)`: not implemented.
fn size_from(kind: BarKind, lo: u32, hi: u32) -> Result<u64, String> {
    let (mask, top_bits): (u64, &[u32]) = match kind {
        BarKind::Io => (u64::from(lo & BAR_IO_ADDR), &[15, 31]),
        BarKind::Mem32 => (u64::from(lo & BAR_MEM_ADDR), &[31]),
        BarKind::Rom => (u64::from(lo & ROM_ADDR), &[31]),
        // Upper address bits may be hardwired to zero; the run of ones must still be whole.
        BarKind::Mem64 => (u64::from(hi) << 32 | u64::from(lo & BAR_MEM_ADDR), &[]),
    };
    if mask == 0 {
        return Ok(0);
    }
    let size = mask & mask.wrapping_neg();
    let run = mask >> size.trailing_zeros();
    if run & run.wrapping_add(1) != 0 {
        return Err(format!("size mask {mask:#x} has holes"));
    }
    let top = 63 - mask.leading_zeros();
    if !top_bits.is_empty() && !top_bits.contains(&top) {
        return Err(format!(
            "size mask {mask:#x} stops below the register's top address bit"
        ));
    }
    Ok(size)
}

/// Builds the [`Bar`] of `slot` from its sizing readback (`None`: not sized).
fn finish(
    sbdf: Sbdf,
    slot: &Slot,
    what: &str,
    readback: Option<(u32, u32)>,
    enabled: bool,
) -> Option<Bar> {
    let name = Name { what, slot };
    let mut bar = Bar {
        index: slot.index,
        offset: slot.offset,
        kind: slot.kind,
        prefetchable: slot.prefetchable(),
        address: slot.address(),
        size: 0,
        enabled,
        problems: Vec::new(),
    };
    let Some((lo, hi)) = readback else {
        // Unsized: keep what looks programmed.
        return (bar.address != 0).then_some(bar);
    };
    match size_from(slot.kind, lo, hi) {
        Ok(0) => {
            if slot.lo != 0 || slot.hi != 0 {
                problem(
                    &mut bar.problems,
                    format!(
                        "{sbdf}: {name} reads {:#x} but sizes to nothing (all ones read back \
                         as 0); ignored",
                        slot.lo
                    ),
                );
                return Some(bar);
            }
            return None;
        }
        Ok(size) => bar.size = size,
        Err(why) => {
            problem(
                &mut bar.problems,
                format!("{sbdf}: {name}: {why}; size unknown"),
            );
            return Some(bar);
        }
    }
    let type_bits = match slot.kind {
        BarKind::Io => 0x3,
        BarKind::Rom => 0,
        _ => 0xf,
    };
    if lo & type_bits != slot.lo & type_bits {
        problem(
            &mut bar.problems,
            format!(
                "{sbdf}: {name}: type bits changed from {:#x} to {:#x} while sizing",
                slot.lo & type_bits,
                lo & type_bits
            ),
        );
    }
    if bar.address & (bar.size - 1) != 0 {
        problem(
            &mut bar.problems,
            format!(
                "{sbdf}: {name}: address {:#x} not aligned to its size {:#x}",
                bar.address, bar.size
            ),
        );
    }
    let rom_off = slot.kind == BarKind::Rom && slot.lo & ROM_ENABLE == 0;
    if bar.address == 0 && !rom_off {
        problem(
            &mut bar.problems,
            format!(
                "{sbdf}: {name}: unassigned (address 0, size {:#x})",
                bar.size
            ),
        );
    } else if bar.address.checked_add(bar.size).is_none() {
        problem(
            &mut bar.problems,
            format!(
                "{sbdf}: {name}: {:#x} + size {:#x} wraps past the top of the address space",
                bar.address, bar.size
            ),
        );
    }
    Some(bar)
}

/// Reads (and with `size`, sizes) the BARs and the expansion ROM of `f` (header type 0 or 1;
/// `f.command` must hold COMMAND as read), filling `f.bars`, `f.rom` and the problems.
pub(crate) fn read_bars(cs: &dyn ConfigSpace, f: &mut Function, size: bool) {
    let sbdf = f.sbdf;
    let (count, rom_offset) = match f.header_type & 0x7f {
        HEADER_ENDPOINT => (6, ROM0),
        HEADER_BRIDGE => (2, ROM1),
        _ => return,
    };
    let mut regs = [0u32; 6];
    for (i, r) in regs.iter_mut().take(count).enumerate() {
        *r = cs.read32(sbdf, BAR0 + 4 * i as u16);
    }
    let mut problems = Vec::new();
    let mut slots = decode(sbdf, &regs[..count], BAR0, "BAR", true, &mut problems);
    let rom = cs.read32(sbdf, rom_offset);
    if rom != u32::MAX {
        slots.push(Slot {
            index: 6,
            offset: rom_offset,
            kind: BarKind::Rom,
            lo: rom,
            hi: 0,
        });
    }
    let cmd = f.command;
    let mut sized = size;
    // Linux keeps memory decoding on for host bridges (some stop decoding RAM otherwise),
    // and BARs must not be written with decoding on: leave them unsized.
    if size && f.class >> 8 == 0x0600 && cmd & CMD_MEM != 0 {
        sized = false;
        if slots.iter().any(|s| s.lo != 0 || s.hi != 0) {
            problem(
                &mut problems,
                format!(
                    "{sbdf}: BARs (0x10) not sized: a host bridge keeps memory decoding on \
                     (COMMAND {cmd:#06x})"
                ),
            );
        }
    }
    let decode_bits = cmd & (CMD_IO | CMD_MEM);
    if sized && decode_bits != 0 {
        // STATUS (the upper half) is write-1-to-clear: write zeros there.
        cs.write32(sbdf, COMMAND, u32::from(cmd & !decode_bits));
        let now = cs.read32(sbdf, COMMAND) as u16;
        if now & decode_bits != 0 {
            cs.write32(sbdf, COMMAND, u32::from(cmd));
            sized = false;
            problem(
                &mut problems,
                format!(
                    "{sbdf}: COMMAND (0x04) decode bits stay set (wrote {:#06x}, reads \
                     {now:#06x}); BARs not sized",
                    cmd & !decode_bits
                ),
            );
        }
    }
    // At most 6 BARs and the ROM.
    let mut readbacks = [None; 7];
    if sized {
        for (s, rb) in slots.iter().zip(readbacks.iter_mut()) {
            *rb = Some(size_slot(cs, sbdf, s));
        }
        if decode_bits != 0 {
            cs.write32(sbdf, COMMAND, u32::from(cmd));
        }
    }
    for (s, rb) in slots.iter().zip(readbacks) {
        let enabled = match s.kind {
            BarKind::Io => cmd & CMD_IO != 0,
            BarKind::Rom => cmd & CMD_MEM != 0 && s.lo & ROM_ENABLE != 0,
            _ => cmd & CMD_MEM != 0,
        };
        if let Some(bar) = finish(sbdf, s, "BAR", rb, enabled) {
            f.problems.extend(bar.problems.iter().cloned());
            if bar.kind == BarKind::Rom {
                f.rom = Some(bar);
            } else {
                f.bars.push(bar);
            }
        }
    }
    f.problems.append(&mut problems);
}

/// Reads (and with `size`, sizes) the VF BARs in the SR-IOV capability of PF `f`, filling
/// `f.sriov.vf_bars` with each VF's share: `address` is VF 0's, `size` per VF.
pub(crate) fn read_vf_bars(cs: &dyn ConfigSpace, f: &mut Function, size: bool) {
    let sbdf = f.sbdf;
    let Some(sriov) = &f.sriov else { return };
    let at = sriov.offset;
    let ctrl = sriov.control;
    let mut regs = [0u32; 6];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = cs.read32(sbdf, at + SRIOV_VF_BAR0 + 4 * i as u16);
    }
    let mut problems = Vec::new();
    let slots = decode(
        sbdf,
        &regs,
        at + SRIOV_VF_BAR0,
        "VF BAR",
        false,
        &mut problems,
    );
    let mut readbacks = [None; 6];
    let mse = ctrl & SRIOV_CTRL_VF_MSE != 0;
    let mut size = size;
    if size && mse {
        // The upper half (SR-IOV Status) is write-1-to-clear: write zeros there.
        cs.write32(sbdf, at + SRIOV_CTRL, u32::from(ctrl & !SRIOV_CTRL_VF_MSE));
        let now = cs.read32(sbdf, at + SRIOV_CTRL) as u16;
        if now & SRIOV_CTRL_VF_MSE != 0 {
            cs.write32(sbdf, at + SRIOV_CTRL, u32::from(ctrl));
            size = false;
            problem(
                &mut problems,
                format!(
                    "{sbdf}: SR-IOV VF MSE (at {:#x}) stays set; VF BARs not sized",
                    at + SRIOV_CTRL
                ),
            );
        }
    }
    if size {
        for (s, rb) in slots.iter().zip(readbacks.iter_mut()) {
            *rb = Some(size_slot(cs, sbdf, s));
        }
        if mse {
            cs.write32(sbdf, at + SRIOV_CTRL, u32::from(ctrl));
        }
    }
    let enabled = ctrl & SRIOV_CTRL_VF_MSE != 0;
    let mut bars = Vec::new();
    for (s, rb) in slots.iter().zip(readbacks) {
        if let Some(bar) = finish(sbdf, s, "VF BAR", rb, enabled) {
            problems.extend(bar.problems.iter().cloned());
            bars.push(bar);
        }
    }
    f.problems.append(&mut problems);
    if let Some(s) = &mut f.sriov {
        s.vf_bars = bars;
    }
}

/// VF `i`'s BARs, from the PF's VF BARs: VF i decodes `address + i * size`.
pub(crate) fn vf_bars(pf_vf_bars: &[Bar], i: u16) -> Vec<Bar> {
    pf_vf_bars
        .iter()
        .map(|b| Bar {
            address: if b.address == 0 {
                0
            } else {
                b.address
                    .saturating_add(b.size.saturating_mul(u64::from(i)))
            },
            problems: Vec::new(),
            ..b.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_from_readbacks() {
        assert_eq!(size_from(BarKind::Mem32, 0xffff_f000, 0), Ok(0x1000));
        assert_eq!(size_from(BarKind::Mem32, 0xffff_f008, 0), Ok(0x1000));
        assert_eq!(size_from(BarKind::Mem32, 0, 0), Ok(0));
        assert_eq!(size_from(BarKind::Mem32, 0x8000_0000, 0), Ok(0x8000_0000));
        assert_eq!(size_from(BarKind::Io, 0xffff_ffe1, 0), Ok(0x20));
        // A 16-bit I/O decoder reads 0 in the upper half.
        assert_eq!(size_from(BarKind::Io, 0x0000_ffe1, 0), Ok(0x20));
        assert_eq!(size_from(BarKind::Rom, 0xfffc_0000, 0), Ok(0x40000));
        assert_eq!(
            size_from(BarKind::Mem64, 0xfc00_000c, 0xffff_ffff),
            Ok(0x400_0000)
        );
        assert_eq!(
            size_from(BarKind::Mem64, 0x0000_000c, 0xffff_fff0),
            Ok(0x10_0000_0000)
        );
        // Upper bits hardwired to zero: accepted (a contiguous run).
        assert_eq!(size_from(BarKind::Mem64, 0xfff0_0004, 0xff), Ok(0x10_0000));
        assert!(size_from(BarKind::Mem32, 0xff00_ff00, 0).is_err());
        assert!(size_from(BarKind::Mem32, 0x0fff_f000, 0).is_err());
        assert!(size_from(BarKind::Mem64, 0xf000_0000, 0xf0f0_f0f0).is_err());
        assert!(size_from(BarKind::Io, 0x00ff_ffe1, 0).is_err());
    }

    #[test]
    fn decode_types() {
        let s = Sbdf::new(0, 1, 0, 0).unwrap();
        let mut p = Vec::new();
        let slots = decode(
            s,
            &[0xfe00_000c, 0, 0xc001, 0x6, 0xfe10_0000, 0x4],
            BAR0,
            "BAR",
            true,
            &mut p,
        );
        let kinds: Vec<_> = slots.iter().map(|s| (s.index, s.kind)).collect();
        assert_eq!(
            kinds,
            [(0, BarKind::Mem64), (2, BarKind::Io), (4, BarKind::Mem32)]
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("0000:01:00.0: BAR 3 (0x1c) has the reserved memory type 3"));
        assert!(p[1].contains("0000:01:00.0: BAR 5 (0x24) is 64-bit but is the last slot"));
        assert!(slots[0].prefetchable());
        assert_eq!(slots[0].address(), 0xfe00_0000);
    }
}
