//! Loading a decompressed kernel ELF where it lies: the file was decompressed into the guest's
//! memory at guest address `base` (dom0's mapping of it is one slice), and each `PT_LOAD`
//! segment is moved from its file offset to its physical address inside that same slice, the
//! way Linux's boot decompressor does after decompressing (`arch/x86/boot/compressed/misc.c`,
//! `parse_elf`: `memmove(output + (p_paddr - LOAD_PHYSICAL_ADDR), output + p_offset,
//! p_filesz)`). That works because, in vmlinux, every segment's file offset is at least its
//! distance from the base, so segments only move down and a move never overwrites bytes a
//! later move still reads.
//!
//! Which base: a segment moves to `p_paddr - base`, down (or not at all) when that is at most
//! `p_offset`, so [`in_place_base`] gives the lowest base at which no segment moves up,
//! `max(p_paddr - p_offset)`: for Debian's 6.1 kernel 0xE00000 (the first `p_paddr` 0x1000000
//! minus its `p_offset` 0x200000; then only the per-CPU and init segments move). Linux's own
//! choice is the highest, the first `p_paddr` (the bzImage's `pref_address`,
//! `LOAD_PHYSICAL_ADDR`), with the setup header's `init_size` bytes from it. Any base from
//! [`in_place_base`] up to the first segment's address works if the slice is [`InPlace::span`]
//! bytes long.

use alloc::vec::Vec;
use core::ops::Range;

use super::{ElfError, Kernel, parse};

/// One segment's move inside the slice: `len` file bytes from offset `src` to `dst` (both
/// relative to the base), then `zero` (the segment's bss, relative to the base) cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub src: u64,
    pub dst: u64,
    pub len: u64,
    pub zero: Range<u64>,
}

/// How a decompressed kernel is loaded in place: the kernel, the moves in the order they must
/// be done, and the bytes from the base the slice must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlace {
    pub kernel: Kernel,
    pub moves: Vec<Move>,
    /// max(file length, highest segment end - base).
    pub span: u64,
}

/// The lowest base (guest address of the file's first byte) at which every segment moves down
/// or stays: the largest `p_paddr - p_offset` over the loadable segments.
pub fn in_place_base(elf: &[u8]) -> Result<u64, ElfError> {
    let k = parse(elf)?;
    let mut base = 0;
    for s in &k.segments {
        let b = s.paddr.checked_sub(s.offset).ok_or(ElfError::NotInPlace {
            paddr: s.paddr,
            why: "its file offset is above its physical address",
        })?;
        base = base.max(b);
    }
    Ok(base)
}

/// Plans loading `elf` (the decompressed file, at guest address `base`) in place.
///
/// A segment that moves down (or stays) is moved in ascending address order: it can only
/// overwrite bytes below its source, which earlier segments have already left, since segments
/// do not overlap. A segment that moves up is accepted only if it lands wholly past the end of
/// the file (it then overwrites nothing still needed, and is moved first); any other upward
/// move would overwrite bytes not yet moved, and is refused.
pub fn plan_in_place(elf: &[u8], base: u64) -> Result<InPlace, ElfError> {
    let kernel = parse(elf)?;
    let file = elf.len() as u64;
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut span = file;
    for s in &kernel.segments {
        let dst = s.paddr.checked_sub(base).ok_or(ElfError::NotInPlace {
            paddr: s.paddr,
            why: "it loads below the base the file was decompressed at",
        })?;
        // parse() checked offset + filesz against the file and paddr + memsz below 4 GiB.
        let m = Move {
            src: s.offset,
            dst,
            len: s.filesz,
            zero: dst + s.filesz..dst + s.memsz,
        };
        span = span.max(dst + s.memsz);
        if dst <= s.offset {
            down.push(m);
        } else if dst >= file {
            up.push(m);
        } else {
            return Err(ElfError::NotInPlace {
                paddr: s.paddr,
                why: "it would move up over file bytes not yet moved",
            });
        }
    }
    // kernel.segments is sorted by address, so `down` is in ascending order.
    up.extend(down);
    Ok(InPlace {
        kernel,
        moves: up,
        span,
    })
}

/// Loads the decompressed kernel ELF in `out[..file_len]` in place: `out` is the guest's memory
/// from guest address `base`, at least [`InPlace::span`] bytes. Moves each segment to
/// `p_paddr - base` (memmove semantics) and zeroes its bss; returns the kernel (segments,
/// PVH entry from `XEN_ELFNOTE_PHYS32_ENTRY`). The ELF headers are overwritten.
pub fn load_in_place(out: &mut [u8], file_len: usize, base: u64) -> Result<Kernel, ElfError> {
    let room = out.len();
    let elf = out.get(..file_len).ok_or(ElfError::InPlaceRoom {
        needed: file_len as u64,
        room,
    })?;
    let plan = plan_in_place(elf, base)?;
    if plan.span > room as u64 {
        return Err(ElfError::InPlaceRoom {
            needed: plan.span,
            room,
        });
    }
    for m in &plan.moves {
        // All within `room` (checked through span above), so the conversions are exact.
        let (src, dst, len) = (m.src as usize, m.dst as usize, m.len as usize);
        if src != dst {
            out.copy_within(src..src + len, dst);
        }
        if let Some(z) = out.get_mut(m.zero.start as usize..m.zero.end as usize) {
            z.fill(0);
        }
    }
    Ok(plan.kernel)
}

#[cfg(test)]
mod tests;
