//! The back end of a netif shared ring (`xen/include/public/io/ring.h`), over
//! [`xen::ring::RingPage`]: the frontend owns `req_prod` and `rsp_event`, the backend
//! `rsp_prod` and `req_event`; entries start at byte 64; netif's TX (12-byte slots) and RX
//! (8-byte slots) rings both hold 256 entries in a 4 KiB page.
//!
//! Guest-controlled indices are never trusted (XSA-39): a `req_prod` more than a ring ahead of
//! what the backend consumed is fatal for the ring, and each request is copied out of the page
//! once and used only from the copy (`RING_COPY_REQUEST`, XSA-155).

use xen::ring::RingPage;

/// `req_prod`, `req_event`, `rsp_prod`, `rsp_event` offsets.
pub const REQ_PROD: usize = 0;
pub const REQ_EVENT: usize = 4;
pub const RSP_PROD: usize = 8;
pub const RSP_EVENT: usize = 12;
/// Entries start here (after `pvt` and the padding).
pub const ENTRIES: usize = 64;
const PAGE: usize = 4096;

/// `__CONST_RING_SIZE`: the largest power of two of `slot`-byte entries after the header.
pub const fn ring_size(slot: usize) -> u32 {
    let n = ((PAGE - ENTRIES) / slot) as u32;
    if n == 0 {
        0
    } else {
        1 << (31 - n.leading_zeros())
    }
}

/// The frontend broke the ring protocol: the ring cannot be used any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadIndex {
    pub req_prod: u32,
    pub req_cons: u32,
}

/// The backend's side of one shared ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackRing {
    slot: usize,
    size: u32,
    /// Next request to consume.
    pub req_cons: u32,
    /// Next response to write (pushed with [`BackRing::push_responses`]).
    pub rsp_prod_pvt: u32,
}

impl BackRing {
    /// Attach to a ring the frontend initialised, at its current `rsp_prod` (Linux's
    /// `BACK_RING_ATTACH`); refused if `req_prod` is more than a ring ahead of it.
    pub fn attach<P: RingPage + ?Sized>(page: &P, slot: usize) -> Result<BackRing, BadIndex> {
        let size = ring_size(slot);
        let rsp = page.load_u32(RSP_PROD);
        let req = page.load_u32(REQ_PROD);
        if req.wrapping_sub(rsp) > size {
            return Err(BadIndex {
                req_prod: req,
                req_cons: rsp,
            });
        }
        Ok(BackRing {
            slot,
            size,
            req_cons: rsp,
            rsp_prod_pvt: rsp,
        })
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Requests posted and not yet consumed (`RING_HAS_UNCONSUMED_REQUESTS`), bounded by the
    /// room left for their responses; an impossible count is fatal.
    pub fn unconsumed<P: RingPage + ?Sized>(&self, page: &P) -> Result<u32, BadIndex> {
        let req_prod = page.load_u32(REQ_PROD);
        let posted = req_prod.wrapping_sub(self.req_cons);
        if posted > self.size {
            return Err(BadIndex {
                req_prod,
                req_cons: self.req_cons,
            });
        }
        let room = self
            .size
            .saturating_sub(self.req_cons.wrapping_sub(self.rsp_prod_pvt));
        Ok(posted.min(room))
    }

    fn at(&self, index: u32) -> usize {
        ENTRIES + (index & (self.size - 1)) as usize * self.slot
    }

    /// Copy the next request out of the page (once: only the copy is used) and consume it.
    pub fn take<P: RingPage + ?Sized, const N: usize>(&mut self, page: &P) -> [u8; N] {
        let mut b = [0u8; N];
        page.read_bytes(self.at(self.req_cons), &mut b[..N.min(self.slot)]);
        self.req_cons = self.req_cons.wrapping_add(1);
        b
    }

    /// Write the next response into its slot (not yet visible to the frontend).
    pub fn respond<P: RingPage + ?Sized>(&mut self, page: &mut P, bytes: &[u8]) {
        let n = bytes.len().min(self.slot);
        page.write_bytes(self.at(self.rsp_prod_pvt), &bytes[..n]);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Publish the responses written so far (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`): whether
    /// the frontend asked to be notified of them (`rsp_event` within the new ones).
    pub fn push_responses<P: RingPage + ?Sized>(&mut self, page: &mut P) -> bool {
        let old = page.load_u32(RSP_PROD);
        let new = self.rsp_prod_pvt;
        page.store_u32(RSP_PROD, new);
        let event = page.load_u32(RSP_EVENT);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// Whether `need` requests are posted; if not, ask to be notified of the very next one
    /// (`req_event = req_prod + 1`) and look once more (Linux netback's
    /// `xenvif_rx_ring_slots_available`). For RX: a packet waiting for more buffers than are
    /// posted must hear of the next post; [`BackRing::final_check`] returns early while any
    /// request is posted and would leave a stale `req_event`, and the packet would wait for
    /// an unrelated wakeup.
    pub fn await_requests<P: RingPage + ?Sized>(
        &mut self,
        page: &mut P,
        need: u32,
    ) -> Result<bool, BadIndex> {
        if self.unconsumed(page)? >= need {
            return Ok(true);
        }
        let prod = page.load_u32(REQ_PROD);
        page.store_u32(REQ_EVENT, prod.wrapping_add(1));
        Ok(self.unconsumed(page)? >= need)
    }

    /// Before sleeping (`RING_FINAL_CHECK_FOR_REQUESTS`): ask to be notified of the next
    /// request, then look once more, so a request posted meanwhile is not missed.
    pub fn final_check<P: RingPage + ?Sized>(&mut self, page: &mut P) -> Result<bool, BadIndex> {
        if self.unconsumed(page)? > 0 {
            return Ok(true);
        }
        page.store_u32(REQ_EVENT, self.req_cons.wrapping_add(1));
        Ok(self.unconsumed(page)? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netif_rings_hold_256_entries() {
        assert_eq!(ring_size(crate::wire::TX_SLOT), 256);
        assert_eq!(ring_size(crate::wire::RX_SLOT), 256);
        // xenstore-sized or odd slots follow the same rule.
        assert_eq!(ring_size(16), 128);
        assert_eq!(ring_size(4032), 1);
        assert_eq!(ring_size(5000), 0);
    }

    fn page_with(req_prod: u32, rsp_prod: u32) -> [u8; 4096] {
        let mut p = [0u8; 4096];
        p.store_u32(REQ_PROD, req_prod);
        p.store_u32(RSP_PROD, rsp_prod);
        p.store_u32(REQ_EVENT, 1);
        p.store_u32(RSP_EVENT, 1);
        p
    }

    #[test]
    fn attach_refuses_a_ring_more_than_full() {
        assert!(BackRing::attach(&page_with(256, 0)[..], 12).is_ok());
        assert_eq!(
            BackRing::attach(&page_with(257, 0)[..], 12),
            Err(BadIndex {
                req_prod: 257,
                req_cons: 0
            })
        );
        // Indices wrap: 5 requests ahead across the 2^32 boundary is fine.
        let r = BackRing::attach(&page_with(3, u32::MAX - 1)[..], 12).unwrap();
        assert_eq!(r.unconsumed(&page_with(3, u32::MAX - 1)[..]), Ok(5));
    }

    #[test]
    fn requests_are_copied_once_and_indices_checked_every_time() {
        let mut p = page_with(2, 0);
        p[64..76].copy_from_slice(&[1; 12]);
        p[76..88].copy_from_slice(&[2; 12]);
        let mut r = BackRing::attach(&p[..], 12).unwrap();
        let a: [u8; 12] = r.take(&p[..]);
        // The frontend rewrites the slot after it was taken: the copy is what counts.
        p[64..76].copy_from_slice(&[9; 12]);
        assert_eq!(a, [1; 12]);
        assert_eq!(r.unconsumed(&p[..]), Ok(1));
        // A hostile req_prod far ahead of req_cons is fatal.
        p.store_u32(REQ_PROD, 1000);
        assert_eq!(
            r.unconsumed(&p[..]),
            Err(BadIndex {
                req_prod: 1000,
                req_cons: 1
            })
        );
        // And one behind (wrapped) as well.
        p.store_u32(REQ_PROD, 0);
        assert!(r.unconsumed(&p[..]).is_err());
    }

    #[test]
    fn responses_go_in_order_and_notify_only_when_asked() {
        let mut p = page_with(3, 0);
        let mut r = BackRing::attach(&p[..], 8).unwrap();
        for i in 0..3u8 {
            let _: [u8; 8] = r.take(&p[..]);
            r.respond(&mut p[..], &[i; 8]);
        }
        // rsp_event 1: the frontend wants to hear of response 1 on: notify.
        assert!(r.push_responses(&mut p[..]));
        assert_eq!(p.load_u32(RSP_PROD), 3);
        assert_eq!(&p[64 + 16..64 + 24], &[2; 8]);
        // It asked to hear only from response 10: no notification for 3..5.
        p.store_u32(RSP_EVENT, 10);
        p.store_u32(REQ_PROD, 5);
        for _ in 0..2 {
            let _: [u8; 8] = r.take(&p[..]);
            r.respond(&mut p[..], &[7; 8]);
        }
        assert!(!r.push_responses(&mut p[..]));
    }

    #[test]
    fn final_check_sets_req_event_and_sees_late_requests() {
        let mut p = page_with(0, 0);
        let mut r = BackRing::attach(&p[..], 12).unwrap();
        assert_eq!(r.final_check(&mut p[..]), Ok(false));
        assert_eq!(p.load_u32(REQ_EVENT), 1);
        p.store_u32(REQ_PROD, 1);
        assert_eq!(r.final_check(&mut p[..]), Ok(true));
    }

    #[test]
    fn unconsumed_is_bounded_by_the_room_for_responses() {
        let p = page_with(256, 0);
        let mut r = BackRing::attach(&p[..], 12).unwrap();
        for _ in 0..10 {
            let _: [u8; 12] = r.take(&p[..]);
        }
        // 10 taken, none answered: 246 more may be taken before responses are written.
        assert_eq!(r.unconsumed(&p[..]), Ok(246));
    }
}
