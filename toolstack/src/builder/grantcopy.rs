//! Writing into a paused DomU with `GNTTABOP_copy` instead of foreign mappings.
//!
//! Why: mapping a DomU page into dom0 (`XENMEM_add_to_physmap_batch`, `XENMAPSPACE_gmfn_foreign`)
//! and unmapping it again changes dom0's p2m and its IOMMU page tables, with flushes, page by
//! page; for Debian's kernel that was about 90% of the "kernel" build step on the bench (map
//! 173-186 ms, unmap 187-206 ms, the copy itself 12-14 ms). A grant copy has Xen copy from
//! dom0's frame to the DomU's frame through its own direct map, with no mapping at all.
//!
//! How: the builder lends itself grants in the DomU's first grant-table frame, the entries
//! after the reserved ones (`GNTTAB_NR_RESERVED_ENTRIES`, public/grant_table.h), each
//! permitting dom0 to write one page; copies go to those grants; then the entries are cleared
//! again before the DomU first runs. This module plans the rounds (which grant names which
//! page, which copy goes where); dom0 writes the entries and issues the copies.

use alloc::vec::Vec;

use xen::domctl::DomId;
use xen::gnttab::{Copy, CopyPtr};

use super::PAGE;

/// The grant references the builder lends itself: frame 0 of a v1 grant table holds 512
/// entries of 8 bytes, and the first 8 are reserved (console, xenstore, ...).
pub const LENT_REFS: core::ops::Range<u32> = 8..512;

/// One round: the grants to write (reference, the DomU's frame), then the copies to issue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Round {
    pub grants: Vec<(u32, u64)>,
    pub copies: Vec<Copy>,
    /// Bytes of the write this round covers.
    pub bytes: u64,
}

/// How many pages a round moves through dom0's bounce buffer when the source and the
/// destination are not at the same offset in their pages (a bundle payload is only 8-byte
/// aligned): copying them to a page-aligned buffer first (a `memcpy` in dom0, about 1 ms per
/// 4 MiB under TCG) makes every grant copy a whole page, half as many as split copies, and
/// each copy costs Xen about 13 us there. 64 pages are one `GNTTABOP_copy` batch.
pub const BOUNCE_PAGES: usize = 64;

/// Plans the first round of writing `len` bytes from dom0's guest-physical address `src` to
/// the DomU's `gpa`: one grant per DomU page (at most `max_pages`, and at most
/// `LENT_REFS.len()`), and copies
/// split wherever a page of either side ends, so none crosses a page (Xen refuses those with
/// `GNTST_bad_copy_arg`). The caller advances `src`, `gpa` and `len` by `bytes` and plans the
/// next round. `len == 0` plans nothing.
pub fn plan_round(dom: DomId, src: u64, gpa: u64, len: u64, max_pages: usize) -> Round {
    let mut r = Round::default();
    let refs = LENT_REFS.len().min(max_pages) as u64;
    let (mut s, mut d, mut left) = (src, gpa, len);
    while left > 0 {
        let page = d / PAGE;
        let gref = match r.grants.last() {
            Some(&(g, p)) if p == page => g,
            _ => {
                if r.grants.len() as u64 == refs {
                    break;
                }
                let g = LENT_REFS.start + r.grants.len() as u32;
                r.grants.push((g, page));
                g
            }
        };
        let n = left.min(PAGE - s % PAGE).min(PAGE - d % PAGE);
        r.copies.push(Copy {
            source: CopyPtr::Local {
                gfn: s / PAGE,
                offset: (s % PAGE) as u16,
            },
            dest: CopyPtr::Grant {
                domid: dom,
                gref,
                offset: (d % PAGE) as u16,
            },
            len: n as u16,
        });
        s += n;
        d += n;
        left -= n;
        r.bytes += n;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays rounds into a simulated guest memory from a simulated dom0 memory, checking
    /// every copy against its round's grants.
    fn replay(src: u64, gpa: u64, len: u64) -> (usize, Vec<u8>, Vec<u8>) {
        let dom0: Vec<u8> = (0..(src + len + PAGE) as usize)
            .map(|i| (i * 7 + 3) as u8)
            .collect();
        let mut guest = alloc::vec![0u8; (gpa + len + PAGE) as usize];
        let (mut s, mut d, mut left, mut rounds) = (src, gpa, len, 0);
        while left > 0 {
            let r = plan_round(5, s, d, left, usize::MAX);
            assert!(r.bytes > 0 && r.bytes <= left);
            assert!(r.grants.len() <= LENT_REFS.len());
            let mut refs: Vec<u32> = r.grants.iter().map(|g| g.0).collect();
            refs.dedup();
            assert_eq!(refs.len(), r.grants.len(), "a grant lent twice in a round");
            for c in &r.copies {
                assert!(c.within_pages(), "{c:?} crosses a page");
                let (
                    CopyPtr::Local { gfn, offset: so },
                    CopyPtr::Grant {
                        domid,
                        gref,
                        offset,
                    },
                ) = (c.source, c.dest)
                else {
                    panic!("{c:?}");
                };
                assert_eq!(domid, 5);
                assert!(LENT_REFS.contains(&gref));
                let frame = r.grants.iter().find(|g| g.0 == gref).unwrap().1;
                let from = (gfn * PAGE) as usize + usize::from(so);
                let to = (frame * PAGE) as usize + usize::from(offset);
                let n = usize::from(c.len);
                guest[to..to + n].copy_from_slice(&dom0[from..from + n]);
            }
            s += r.bytes;
            d += r.bytes;
            left -= r.bytes;
            rounds += 1;
        }
        let want = dom0[src as usize..(src + len) as usize].to_vec();
        let got = guest[gpa as usize..(gpa + len) as usize].to_vec();
        (rounds, want, got)
    }

    #[test]
    fn aligned_write_is_one_copy_per_page() {
        let r = plan_round(1, 0x10_0000, 0x20_0000, 3 * PAGE, 64);
        assert_eq!(r.grants, [(8, 0x200), (9, 0x201), (10, 0x202)]);
        assert_eq!(r.copies.len(), 3);
        assert!(r.copies.iter().all(|c| c.len == 4096));
        assert_eq!(r.bytes, 3 * PAGE);
    }

    #[test]
    fn misaligned_sides_split_where_either_page_ends() {
        for (src, gpa, len) in [
            (0x1001, 0x2000, 10_000),
            (0x1000, 0x2ff0, 9_000),
            (0x1ffe, 0x3ffd, 5),
            (0x1234, 0x5678, 3 * PAGE + 17),
            (0, 0, 1),
        ] {
            let (_, want, got) = replay(src, gpa, len);
            assert_eq!(want, got, "src {src:#x} gpa {gpa:#x} len {len}");
        }
    }

    #[test]
    fn a_long_write_takes_rounds_of_at_most_the_lent_grants() {
        let len = 3 * 504 * PAGE + 100;
        let (rounds, want, got) = replay(0x3_0010, 0x100_0000, len);
        assert_eq!(rounds, 4);
        assert!(want == got);
        let r = plan_round(1, 0, 0x100_0000, len, usize::MAX);
        assert_eq!(r.grants.len(), 504);
        assert_eq!(r.bytes, 504 * PAGE);
        // A bounce buffer of 64 pages bounds a round at 64 pages, ending where a page ends.
        let r = plan_round(1, 0x3_0010, 0x100_0800, len, 64);
        assert_eq!(r.grants.len(), 64);
        assert_eq!(r.bytes, 64 * PAGE - 0x800);
    }

    #[test]
    fn nothing_to_write_plans_nothing() {
        assert_eq!(plan_round(1, 0x1000, 0x2000, 0, 64), Round::default());
    }
}
