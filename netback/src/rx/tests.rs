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

/// The data responses of `slots` (none may be an extra).
fn data(slots: &[RxSlot]) -> Vec<RxResponse> {
    slots
        .iter()
        .map(|s| match s {
            RxSlot::Response(r) => *r,
            RxSlot::Extra(e) => panic!("unexpected extra {e:?}"),
        })
        .collect()
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
    let r = data(&d.responses(&[true]));
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
    let r = data(&d.responses(&[true, true, true]));
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
    let r = data(&d.responses(&[true, false, true]));
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

/// A GSO packet for a frontend that takes them: it waits for one buffer per 4 KiB plus one for
/// the GSO extra; the first slot says extra-info, csum-blank and data-validated, the next one is
/// the extra (TCPv4, the MSS) and the data goes on after it (Linux netback's layout); a failed
/// copy keeps the chain (netfront drops the whole packet and stays in step).
#[test]
fn a_gso_packet_takes_an_extra_slot_after_its_first() {
    let mut f = Frontend::new();
    let mut ring = BackRing::attach(&f.page[..], RX_SLOT).unwrap();
    let mut q = RxQueue::new();
    let pkt = Packet {
        data: vec![7; 9000],
        gso_mss: Some(1448),
    };
    assert!(q.push(pkt.clone(), 0));
    f.post(3);
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    assert!(
        d.packets.is_empty(),
        "3 data slots + 1 extra: 3 buffers are not enough"
    );
    f.post(1);
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    assert_eq!(d.packets, [pkt]);
    let grefs: Vec<u32> = d.copies.iter().map(|c| c.gref).collect();
    assert_eq!(
        grefs,
        [1000, 1002, 1003],
        "the extra's buffer (1001) takes no data"
    );
    let r = d.responses(&[true; 3]);
    let RxSlot::Response(first) = r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(
        first.flags,
        NETRXF_EXTRA_INFO | NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED | NETRXF_MORE_DATA
    );
    assert_eq!((first.id, first.status), (0, 4096));
    assert_eq!(
        r[1].to_bytes(),
        [
            crate::wire::EXTRA_TYPE_GSO,
            0,
            0xa8,
            0x05,
            GSO_TYPE_TCPV4,
            0,
            0,
            0
        ]
    );
    let rest = data(&r[2..]);
    assert_eq!(
        rest.iter()
            .map(|x| (x.id, x.flags, x.status))
            .collect::<Vec<_>>(),
        [(2, NETRXF_MORE_DATA, 4096), (3, 0, 808)]
    );
    assert_eq!(q.counters.delivered_gso, 1);
    // A failed copy: every data slot is an error, the chain and the extra stay.
    let r = d.responses(&[true, false, true]);
    let RxSlot::Response(first) = r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(first.status, NETIF_RSP_ERROR);
    assert_eq!(first.flags, NETRXF_EXTRA_INFO | NETRXF_MORE_DATA);
    assert!(matches!(r[1], RxSlot::Extra(_)));
    assert!(data(&r[2..]).iter().all(|x| x.status == NETIF_RSP_ERROR));
}

/// A frontend that asked for GSO but never posts enough buffers for a whole GSO packet (data
/// slots + the extra) stalls only its own vif: the packet (and what queued behind it, in order)
/// waits within the backlog's bounds, is dropped as stale after `DRAIN_NS` (XSA-392), and later
/// frames then use the buffers that were posted.
#[test]
fn a_gso_packet_without_enough_buffers_waits_then_expires() {
    let mut f = Frontend::new();
    let mut ring = BackRing::attach(&f.page[..], RX_SLOT).unwrap();
    let mut q = RxQueue::new();
    let big = Packet {
        data: vec![1; 60_000],
        gso_mss: Some(1448),
    };
    assert!(q.push(big, 0));
    assert!(q.push(vec![2; 60], 0));
    f.post(15); // 15 data slots are needed, plus 1 for the extra
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    assert!(
        d.packets.is_empty() && q.len() == 2,
        "in order: the small frame waits too"
    );
    q.expire(DRAIN_NS - 1);
    assert_eq!(q.len(), 2);
    q.expire(DRAIN_NS);
    assert_eq!(q.counters.dropped_stale, 2);
    assert!(q.is_empty());
    // Later frames use the buffers that were posted.
    assert!(q.push(vec![3; 60], DRAIN_NS));
    let d = q.deliver(&mut ring, &f.page[..]).unwrap();
    assert_eq!(d.packets.len(), 1);
    assert_eq!(q.counters.delivered_gso, 0);
}
