//! The memory side of serving DomUs: copying into a DomU through foreign mappings in the copy
//! chunk of dom0's window, and the ring pages shared with it. The only `unsafe` of `domu`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use toolstack::builder::GuestMemory;
use toolstack::xenstore::RingPage;
use xen::domctl::{self, DomId};
use xen::{Hypercall, XenError};

use super::{CHUNK_PAGES, MAPPED_PAGES, PAGE};

/// Copies into a DomU through the copy chunk of the window, and maps ranges of it whole in the
/// window's mapped area (`with_mapped`).
pub struct ForeignMem<'a> {
    pub x: &'a dyn Hypercall,
    pub chunk_gfn: u64,
    pub mapped_gfn: u64,
    /// Pages copied or zeroed so far.
    pub pages: u64,
}

/// Undo foreign mappings at dom0's frames `at`, in multicalls of `CHUNK_PAGES`.
fn unmap_all(x: &dyn Hypercall, at: &[u64]) -> Result<(), XenError> {
    let mut first_err = None;
    for part in at.chunks(CHUNK_PAGES as usize) {
        let r =
            domctl::unmap_own_batch(x, part).and_then(|rs| match rs.iter().find(|&&r| r != 0) {
                Some(&r) => Err(XenError(r.unsigned_abs() as i32)),
                None => Ok(()),
            });
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

impl ForeignMem<'_> {
    fn copy(&mut self, dom: DomId, gpa: u64, len: u64, src: Option<&[u8]>) -> Result<(), XenError> {
        if len == 0 {
            return Ok(());
        }
        let end = gpa.checked_add(len).ok_or(XenError::EINVAL)?;
        let mut f = gpa / PAGE;
        let last = (end - 1) / PAGE;
        while f <= last {
            let n = CHUNK_PAGES.min(last - f + 1);
            let gfns: Vec<u64> = (f..f + n).collect();
            let at: Vec<u64> = (self.chunk_gfn..self.chunk_gfn + n).collect();
            let mut errs = alloc::vec![0i32; n as usize];
            let whole = domctl::map_foreign(self.x, dom, &gfns, &at, &mut errs);
            let bad = match whole {
                Err(e) => Some(e),
                Ok(()) => errs
                    .iter()
                    .find(|&&e| e != 0)
                    .map(|&e| XenError(e.unsigned_abs() as i32)),
            };
            if bad.is_none() {
                let lo = gpa.max(f * PAGE);
                let hi = end.min((f + n) * PAGE);
                let dst = (self.chunk_gfn * PAGE + (lo - f * PAGE)) as *mut u8;
                let count = (hi - lo) as usize;
                match src {
                    // [dst, dst+count) lies in the copy chunk, identity-mapped write-back by
                    // `map_window` and now backed by the DomU's frames; only this builder
                    // (boot vCPU, single-threaded) touches it, and `from` is an ordinary slice.
                    Some(s) => {
                        let from = &s[(lo - gpa) as usize..(hi - gpa) as usize];
                        // SAFETY: dst..dst+count is the mapped chunk (above); no overlap.
                        unsafe { core::ptr::copy_nonoverlapping(from.as_ptr(), dst, count) };
                    }
                    // SAFETY: dst..dst+count is the mapped chunk (above).
                    None => unsafe { core::ptr::write_bytes(dst, 0, count) },
                }
                self.pages += n;
            }
            // Undo the mappings in one multicall (one trap instead of one per page).
            let mapped: Vec<u64> = errs
                .iter()
                .enumerate()
                .filter(|(_, e)| whole.is_ok() && **e == 0)
                .map(|(i, _)| self.chunk_gfn + i as u64)
                .collect();
            let mut unmap_err = None;
            if !mapped.is_empty() {
                match domctl::unmap_own_batch(self.x, &mapped) {
                    Err(e) => unmap_err = Some(e),
                    Ok(rs) => {
                        if let Some(r) = rs.iter().find(|&&r| r != 0) {
                            unmap_err = Some(XenError(r.unsigned_abs() as i32));
                        }
                    }
                }
            }
            if let Some(e) = bad.or(unmap_err) {
                return Err(e);
            }
            // Building a DomU copies for a second or more: each chunk is progress.
            crate::watchdog::progress();
            f += n;
        }
        Ok(())
    }
}

impl GuestMemory for ForeignMem<'_> {
    fn write(&mut self, dom: DomId, gpa: u64, data: &[u8]) -> Result<(), XenError> {
        self.copy(dom, gpa, data.len() as u64, Some(data))
    }
    fn zero(&mut self, dom: DomId, gpa: u64, len: u64) -> Result<(), XenError> {
        self.copy(dom, gpa, len, None)
    }
    fn with_mapped(
        &mut self,
        dom: DomId,
        gpa: u64,
        len: u64,
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), XenError> {
        if len == 0 {
            return Ok(());
        }
        let end = gpa.checked_add(len).ok_or(XenError::EINVAL)?;
        let (first, last) = (gpa / PAGE, (end - 1) / PAGE);
        let n = last - first + 1;
        if n > MAPPED_PAGES {
            return Err(XenError::EINVAL);
        }
        // Map the whole range, a batch at a time; on a failure undo what was mapped.
        let mut mapped: Vec<u64> = Vec::with_capacity(n as usize);
        let mut bad = None;
        let mut f0 = first;
        while f0 <= last && bad.is_none() {
            let k = CHUNK_PAGES.min(last - f0 + 1);
            let gfns: Vec<u64> = (f0..f0 + k).collect();
            let base = self.mapped_gfn + (f0 - first);
            let at: Vec<u64> = (base..base + k).collect();
            let mut errs = alloc::vec![0i32; k as usize];
            match domctl::map_foreign(self.x, dom, &gfns, &at, &mut errs) {
                Err(e) => bad = Some(e),
                Ok(()) => {
                    for (i, e) in errs.iter().enumerate() {
                        if *e == 0 {
                            mapped.push(at[i]);
                        } else {
                            bad.get_or_insert(XenError(e.unsigned_abs() as i32));
                        }
                    }
                }
            }
            crate::watchdog::progress();
            f0 += k;
        }
        if let Some(e) = bad {
            let _ = unmap_all(self.x, &mapped);
            return Err(e);
        }
        let at = (self.mapped_gfn * PAGE + gpa % PAGE) as *mut u8;
        // The range lies in the window's mapped area (n <= MAPPED_PAGES pages from
        // `mapped_gfn`), identity-mapped by `map_window`, every page now backed by a DomU
        // frame; only the builder (boot vCPU, one call at a time) uses it, and the frames are
        // unmapped below, after the slice's last use.
        // SAFETY: [at, at + len) is mapped, writable and used by nothing else (above).
        let out = unsafe { core::slice::from_raw_parts_mut(at, len as usize) };
        f(out);
        self.pages += n;
        unmap_all(self.x, &mapped)
    }
    fn seed_grants(&mut self, dom: DomId, entries: &[(u32, [u8; 8])]) -> Result<(), XenError> {
        let at = self.chunk_gfn;
        domctl::map_grant_frame(self.x, dom, at)?;
        let base = (at * PAGE) as *mut u8;
        for (r, e) in entries {
            let off = *r as usize * 8;
            if off + 8 > PAGE as usize {
                continue;
            }
            // The first chunk page now holds frame 0 of the DomU's grant table (mapped just
            // above, write-back in dom0's page tables). The entry is written domid/frame first
            // and flags last (a volatile u16 store), so the grant never looks valid half-written.
            // SAFETY: `off + 8` is inside that mapped page, and the DomU is paused.
            unsafe {
                for (i, b) in e[2..8].iter().enumerate() {
                    core::ptr::write_volatile(base.add(off + 2 + i), *b);
                }
                core::sync::atomic::fence(Ordering::Release);
                core::ptr::write_volatile(
                    base.add(off).cast::<u16>(),
                    u16::from_le_bytes([e[0], e[1]]),
                );
            }
        }
        domctl::unmap_own(self.x, at)
    }
}

/// A ring page shared with a DomU (foreign-mapped at a window slot). The guest writes it
/// concurrently: indices are atomics (acquire/release as the ring protocol needs), bytes are
/// copied with volatile accesses, and every offset is bounds-checked.
pub struct SharedPage(*mut u8);

impl SharedPage {
    /// The ring page foreign-mapped at window slot `slot` (a page frame number).
    pub fn at_slot(slot: u64) -> SharedPage {
        SharedPage((slot * PAGE) as *mut u8)
    }

    fn atomic(&self, off: usize) -> Option<&AtomicU32> {
        if !off.is_multiple_of(4) || off + 4 > PAGE as usize {
            return None;
        }
        // The page stays mapped as long as this SharedPage lives (the slot is unmapped only
        // after the DomU's connection is dropped).
        // SAFETY: mapped page (above); `off` is 4-aligned and inside it.
        Some(unsafe { AtomicU32::from_ptr(self.0.add(off).cast()) })
    }
}

impl RingPage for SharedPage {
    fn load_u32(&self, off: usize) -> u32 {
        self.atomic(off).map_or(0, |a| a.load(Ordering::Acquire))
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        if let Some(a) = self.atomic(off) {
            a.store(v, Ordering::Release);
        }
    }
    fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        if off + dst.len() > PAGE as usize {
            dst.fill(0);
            return;
        }
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: inside the mapped page (checked above).
            *d = unsafe { core::ptr::read_volatile(self.0.add(off + i)) };
        }
    }
    fn write_bytes(&mut self, off: usize, src: &[u8]) {
        if off + src.len() > PAGE as usize {
            return;
        }
        for (i, s) in src.iter().enumerate() {
            // SAFETY: inside the mapped page (checked above).
            unsafe { core::ptr::write_volatile(self.0.add(off + i), *s) };
        }
    }
}
