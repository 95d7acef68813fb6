//! The RX path against a simulated frontend that posts (or withholds) buffers.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::ring::{REQ_PROD, RSP_EVENT, RSP_PROD};

struct Frontend {
    page: [u8; 4096],
    prod: u32,
}

impl Frontend {
    fn new() -> Frontend {
        let mut page = [0u8; 4096];
        page.store_u32(RSP_EVENT, 1);
        Frontend { page, prod: 0 }
    }

    /// Post `n` buffers (ids and grants numbered from the current producer index).
    fn post(&mut self, n: u32) {
        for _ in 0..n {
            let at = 64 + (self.prod & 255) as usize * RX_SLOT;
            let r = RxRequest {
                id: self.prod as u16,
                gref: 1000 + self.prod,
            };
            self.page[at..at + RX_SLOT].copy_from_slice(&r.to_bytes());
            self.prod += 1;
        }
        self.page.store_u32(REQ_PROD, self.prod);
    }
}

#[test]
fn packets_wait_for_buffers_and_fill_them_in_order() {
    let mut f = Frontend::new();
    let mut ring = BackRing::attach(&f.page[..], RX_SLOT).unwrap();
    let mut q = RxQueue::new();
    assert!(q.push(vec![1; 60], 0));
    assert!(q.push(vec![2; 9000], 0)); // three slots
    // No buffers yet: nothing is taken.
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    assert!(d.packets.is_empty() && q.len() == 2);
    // Two buffers: the first packet goes, the second waits for three.
    f.post(2);
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    assert_eq!(d.packets.len(), 1);
    assert_eq!(
        d.copies,
        [RxCopy {
            packet: 0,
            src: 0,
            gref: 1000,
            len: 60
        }]
    );
    let r = d.responses(&[true]);
    assert_eq!(
        r,
        [RxResponse {
            id: 0,
            offset: 0,
            flags: NETRXF_DATA_VALIDATED,
            status: 60
        }]
    );
    ring.respond(&mut f.page[..], &r[0].to_bytes());
    f.post(2);
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    assert_eq!(d.packets.len(), 1);
    let lens: Vec<u16> = d.copies.iter().map(|c| c.len).collect();
    assert_eq!(lens, [4096, 4096, 808]);
    let r = d.responses(&[true, true, true]);
    assert_eq!(r[0].flags, NETRXF_DATA_VALIDATED | NETRXF_MORE_DATA);
    assert_eq!(r[1].flags, NETRXF_MORE_DATA);
    assert_eq!(r[2].flags, 0);
    assert_eq!(
        r.iter().map(|x| i32::from(x.status)).sum::<i32>(),
        9000,
        "statuses are the bytes per slot"
    );
    // Responses go into the slots of their requests.
    for x in &r {
        ring.respond(&mut f.page[..], &x.to_bytes());
    }
    assert!(ring.push_responses(&mut f.page[..]));
    assert_eq!(f.page.load_u32(RSP_PROD), 4);
    // Each response sits in the slot of the request it answers (netfront indexes by slot).
    for slot in 0..4usize {
        let at = 64 + slot * RX_SLOT;
        assert_eq!(
            u16::from_le_bytes([f.page[at], f.page[at + 1]]),
            slot as u16
        );
    }
    assert!(q.is_empty());
}

#[test]
fn a_failed_copy_fails_its_packet_only() {
    let mut f = Frontend::new();
    f.post(4);
    let mut ring = BackRing::attach(&f.page[..], RX_SLOT).unwrap();
    let mut q = RxQueue::new();
    q.push(vec![1; 5000], 0);
    q.push(vec![2; 100], 0);
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    let r = d.responses(&[true, false, true]);
    assert_eq!(r[0].status, NETIF_RSP_ERROR);
    assert_eq!(r[1].status, NETIF_RSP_ERROR);
    assert_eq!(r[2].status, 100);
}

#[test]
fn a_frontend_that_posts_nothing_gets_a_bounded_backlog() {
    // XSA-392: dom0 must not queue without limit for a guest that never posts RX buffers.
    let mut q = RxQueue::new();
    let mut accepted = 0;
    for i in 0..10_000u64 {
        if q.push(vec![0; 1500], i) {
            accepted += 1;
        }
    }
    assert_eq!(accepted, MAX_PACKETS);
    assert_eq!(q.counters.dropped_full, 10_000 - MAX_PACKETS as u64);
    assert_eq!(q.counters.peak_bytes, MAX_PACKETS as u64 * 1500);
    // Big packets hit the byte bound first.
    let mut q = RxQueue::new();
    let n = (0..100).filter(|_| q.push(vec![0; 60_000], 0)).count();
    assert_eq!(n, MAX_BYTES / 60_000);
    assert!(q.counters.peak_bytes <= MAX_BYTES as u64);
    // Waiting too long: dropped, and room comes back.
    q.expire(DRAIN_NS - 1);
    assert_eq!(q.counters.dropped_stale, 0);
    q.expire(DRAIN_NS);
    assert!(q.is_empty());
    assert_eq!(q.counters.dropped_stale, n as u64);
    assert!(q.push(vec![0; 60_000], DRAIN_NS));
    // Nonsense sizes are refused.
    assert!(!q.push(Vec::new(), 0));
    assert!(!q.push(vec![0; MAX_PACKET + 1], 0));
    assert_eq!(q.counters.dropped_size, 2);
}

#[test]
fn a_hostile_req_prod_is_fatal() {
    let mut f = Frontend::new();
    let mut ring = BackRing::attach(&f.page[..], RX_SLOT).unwrap();
    let mut q = RxQueue::new();
    q.push(vec![0; 60], 0);
    f.page.store_u32(REQ_PROD, 300);
    assert!(q.deliver(&mut ring, &f.page[..]).is_err());
    assert_eq!(q.len(), 1, "nothing was taken");
}
