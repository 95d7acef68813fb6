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
    /// Time spent mapping, copying (or, in `with_mapped`, in the caller's function: a
    /// bzImage's decompression and in-place load) and unmapping, in ns.
    pub map_ns: u64,
    pub copy_ns: u64,
    pub unmap_ns: u64,
    /// Write with grant copies (`grant_write`); cleared after one fails.
    pub grant_copy: bool,
    /// Grant copies issued.
    pub grant_copies: u64,
    /// Why grant copies were given up, if they were.
    pub grant_fallback: Option<GrantWriteError>,
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
            let t0 = crate::time::since_entry_ns();
            let whole = domctl::map_foreign(self.x, dom, &gfns, &at, &mut errs);
            let t1 = crate::time::since_entry_ns();
            self.map_ns += t1 - t0;
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
            let t2 = crate::time::since_entry_ns();
            self.copy_ns += t2 - t1;
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
            self.unmap_ns += crate::time::since_entry_ns() - t2;
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

impl ForeignMem<'_> {
    /// Writes `data` to the paused DomU with grant copies (`toolstack::builder::grantcopy`):
    /// its grant-table frame 0 is mapped at the copy chunk's first page, each round's lent
    /// grants are written there, the copies issued, and every lent entry is cleared again
    /// before the frame is unmapped. `Err` leaves the DomU's memory partly written and the
    /// caller falls back to foreign mappings, which rewrite all of it.
    fn grant_write(&mut self, dom: DomId, gpa: u64, data: &[u8]) -> Result<(), GrantWriteError> {
        use toolstack::builder::grantcopy;
        use xen::gnttab::{self, GrantStatus};
        let src = data.as_ptr() as u64;
        let len = data.len() as u64;
        // dom0's own memory is identity-mapped: the slice's address is its guest-physical one.
        if !crate::mem::is_mapped(src, len) {
            return Err(GrantWriteError::NotIdentityMapped);
        }
        // A v1 grant entry names a 32-bit frame (16 TiB of guest memory).
        if gpa.saturating_add(len) > u64::from(u32::MAX) * PAGE {
            return Err(GrantWriteError::FrameTooHigh);
        }
        let frame = self.chunk_gfn;
        domctl::map_grant_frame(self.x, dom, frame).map_err(GrantWriteError::MapFrame)?;
        // Frame 0 of the DomU's grant table is now mapped at `frame` until the `unmap_own` at
        // the end, and the DomU is paused: what the `set_grant_entry` calls below rely on.

        // Source and destination at different offsets in their pages: stage each round in a
        // page-aligned bounce buffer so that every copy is a whole page (`BOUNCE_PAGES`).
        let mut bounce = match src % PAGE == gpa % PAGE {
            true => Vec::new(),
            false => alloc::vec![0u8; (grantcopy::BOUNCE_PAGES + 1) * PAGE as usize],
        };
        let bounce_at = bounce.as_ptr() as u64;
        let bounce_base = (bounce_at + PAGE - 1) & !(PAGE - 1);
        let (mut s, mut d, mut left) = (src, gpa, len);
        let mut lent = 0usize;
        let mut result = Ok(());
        while left > 0 {
            let r = if bounce.is_empty() {
                grantcopy::plan_round(dom, s, d, left, usize::MAX)
            } else {
                let staged = bounce_base + d % PAGE;
                let r = grantcopy::plan_round(dom, staged, d, left, grantcopy::BOUNCE_PAGES);
                let (at, from) = ((staged - bounce_at) as usize, (s - src) as usize);
                let n = r.bytes as usize;
                bounce[at..at + n].copy_from_slice(&data[from..from + n]);
                r
            };
            for &(gref, page) in &r.grants {
                let entry = toolstack::builder::grant_entry_bytes(0, page);
                // SAFETY: the grant frame is mapped at `frame` (above); the DomU is paused.
                unsafe { set_grant_entry(frame, gref, Some(entry)) };
            }
            lent = lent.max(r.grants.len());
            let mut status = alloc::vec![GrantStatus::OKAY; r.copies.len()];
            let t0 = crate::time::since_entry_ns();
            let done = gnttab::copy(self.x, &r.copies, &mut status);
            self.copy_ns += crate::time::since_entry_ns() - t0;
            match done {
                Err(e) => result = Err(GrantWriteError::Copy(e)),
                Ok(()) => {
                    if let Some(st) = status.iter().find(|st| !st.ok()) {
                        result = Err(GrantWriteError::Status(*st));
                    }
                }
            }
            if result.is_err() {
                break;
            }
            self.pages += r.grants.len() as u64;
            self.grant_copies += r.copies.len() as u64;
            crate::watchdog::progress();
            s += r.bytes;
            d += r.bytes;
            left -= r.bytes;
        }
        for k in 0..lent {
            // SAFETY: the grant frame is still mapped at `frame`; the DomU is paused.
            unsafe { set_grant_entry(frame, grantcopy::LENT_REFS.start + k as u32, None) };
        }
        let unmapped = domctl::unmap_own(self.x, frame);
        result?;
        unmapped.map_err(GrantWriteError::UnmapFrame)
    }
}

/// Writes at least this long go through grant copies.
const GRANT_COPY_MIN: usize = 64 << 10;

/// Why [`ForeignMem::grant_write`] gave up (the write then goes through foreign mappings).
#[derive(Debug, Clone, Copy)]
pub enum GrantWriteError {
    NotIdentityMapped,
    FrameTooHigh,
    MapFrame(XenError),
    Copy(XenError),
    Status(xen::gnttab::GrantStatus),
    UnmapFrame(XenError),
}

impl core::fmt::Display for GrantWriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotIdentityMapped => write!(f, "the source is not in dom0's identity map"),
            Self::FrameTooHigh => write!(f, "a frame beyond what a v1 grant entry can name"),
            Self::MapFrame(e) => write!(f, "mapping the DomU's grant frame 0: {e}"),
            Self::Copy(e) => write!(f, "GNTTABOP_copy: {e}"),
            Self::Status(st) => write!(f, "GNTTABOP_copy: a copy failed with {}", st.name()),
            Self::UnmapFrame(e) => write!(f, "unmapping the DomU's grant frame 0: {e}"),
        }
    }
}

impl GuestMemory for ForeignMem<'_> {
    fn write(&mut self, dom: DomId, gpa: u64, data: &[u8]) -> Result<(), XenError> {
        // Small writes (start_info, ACPI tables) stay on foreign mappings: mapping the grant
        // frame costs about as much as mapping their few pages.
        if self.grant_copy && data.len() >= GRANT_COPY_MIN {
            match self.grant_write(dom, gpa, data) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // Once per build: the rest of it goes through foreign mappings.
                    log::warn!(
                        "domu builder: grant copies into domain {dom} failed ({e}); \
                         writing through foreign mappings instead"
                    );
                    self.grant_copy = false;
                    self.grant_fallback = Some(e);
                }
            }
        }
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
        let t0 = crate::time::since_entry_ns();
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
        let t1 = crate::time::since_entry_ns();
        self.map_ns += t1 - t0;
        f(out);
        let t2 = crate::time::since_entry_ns();
        self.copy_ns += t2 - t1;
        self.pages += n;
        let unmapped = unmap_all(self.x, &mapped);
        self.unmap_ns += crate::time::since_entry_ns() - t2;
        unmapped
    }
    fn seed_grants(&mut self, dom: DomId, entries: &[(u32, [u8; 8])]) -> Result<(), XenError> {
        let at = self.chunk_gfn;
        domctl::map_grant_frame(self.x, dom, at)?;
        for &(r, e) in entries {
            // The first chunk page now holds frame 0 of the DomU's grant table (mapped just
            // above); references past that page are skipped.
            // SAFETY: the frame is mapped at `at` until the unmap below; the DomU is paused.
            unsafe { set_grant_entry(at, r, Some(e)) };
        }
        domctl::unmap_own(self.x, at)
    }
}

/// Writes v1 grant entry `gref` (`None` clears it) in a grant-table frame mapped at dom0's
/// frame `table_gfn`. A grant is written domid/frame first and flags last, and revoked flags
/// first, with volatile stores, so Xen never sees a half-written grant as valid. A reference
/// past the frame's 512 entries is ignored.
///
/// # Safety
/// A grant-table frame of a paused domain must be mapped, writable, at `table_gfn`.
unsafe fn set_grant_entry(table_gfn: u64, gref: u32, entry: Option<[u8; 8]>) {
    let off = gref as usize * 8;
    if off + 8 > PAGE as usize {
        return;
    }
    let base = (table_gfn * PAGE) as *mut u8;
    // SAFETY: [base + off, base + off + 8) lies in the mapped frame (checked above; caller).
    unsafe {
        let flags = base.add(off).cast::<u16>();
        match entry {
            Some(e) => {
                for (i, b) in e[2..8].iter().enumerate() {
                    core::ptr::write_volatile(base.add(off + 2 + i), *b);
                }
                core::sync::atomic::fence(Ordering::Release);
                core::ptr::write_volatile(flags, u16::from_le_bytes([e[0], e[1]]));
            }
            None => {
                core::ptr::write_volatile(flags, 0);
                core::sync::atomic::fence(Ordering::Release);
                for i in 0..6 {
                    core::ptr::write_volatile(base.add(off + 2 + i), 0);
                }
            }
        }
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
