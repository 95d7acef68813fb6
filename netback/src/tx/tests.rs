//! The TX path against a simulated frontend: a ring page in memory, requests posted as
//! netfront posts them, and every class of hostile chain from the advisories.

use alloc::vec::Vec;

use super::*;
use crate::ring::{REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::wire::*;

/// A frontend's TX ring: it writes slots and publishes `req_prod`.
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

    fn slot(&mut self, bytes: [u8; TX_SLOT]) {
        let at = 64 + (self.prod & 255) as usize * TX_SLOT;
        self.page[at..at + TX_SLOT].copy_from_slice(&bytes);
        self.prod = self.prod.wrapping_add(1);
    }

    fn req(&mut self, gref: u32, offset: u16, flags: u16, id: u16, size: u16) {
        self.slot(
            TxRequest {
                gref,
                offset,
                flags,
                id,
                size,
            }
            .to_bytes(),
        );
    }

    fn extra(&mut self, bytes: [u8; 8]) {
        let mut s = [0u8; TX_SLOT];
        s[..8].copy_from_slice(&bytes);
        self.slot(s);
    }

    fn publish(&mut self) {
        self.page.store_u32(REQ_PROD, self.prod);
    }
}

fn take(f: &Frontend) -> Result<Option<TxPacket>, TxFatal> {
    let mut ring = BackRing::attach(&f.page[..], TX_SLOT).unwrap();
    next_packet(&mut ring, &f.page[..])
}

#[test]
fn nothing_posted_is_no_packet() {
    let f = Frontend::new();
    assert_eq!(take(&f), Ok(None));
}

#[test]
fn a_one_slot_packet_is_one_copy() {
    let mut f = Frontend::new();
    f.req(7, 100, NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED, 3, 60);
    f.publish();
    let p = take(&f).unwrap().unwrap();
    assert_eq!(p.len, 60);
    assert!(p.csum_blank && p.data_validated);
    assert_eq!(
        p.copies,
        [TxCopy {
            gref: 7,
            offset: 100,
            len: 60,
            dst: 0
        }]
    );
    assert_eq!(
        p.responses(true),
        [TxResponse {
            id: 3,
            status: NETIF_RSP_OKAY
        }]
    );
    // A refused grant copy fails the packet, not the ring.
    assert_eq!(
        p.responses(false),
        [TxResponse {
            id: 3,
            status: NETIF_RSP_ERROR
        }]
    );
}

#[test]
fn a_chain_with_extras_is_assembled_in_order_and_answered_per_slot() {
    let mut f = Frontend::new();
    // 3000-byte packet: first slot 1000 bytes of its own, then 1500 and 500.
    f.req(1, 3000, NETTXF_EXTRA_INFO | NETTXF_MORE_DATA, 10, 3000);
    f.extra([EXTRA_TYPE_GSO, EXTRA_FLAG_MORE, 0xb4, 0x05, 1, 0, 0, 0]);
    f.extra([EXTRA_TYPE_MCAST_ADD, 0, 1, 0, 0x5e, 0, 0, 1]);
    f.req(2, 0, NETTXF_MORE_DATA, 11, 1500);
    f.req(3, 2000, 0, 12, 500);
    f.publish();
    let p = take(&f).unwrap().unwrap();
    assert_eq!(p.extras.len(), 2);
    assert_eq!(
        p.copies,
        [
            TxCopy {
                gref: 1,
                offset: 3000,
                len: 1000,
                dst: 0
            },
            TxCopy {
                gref: 2,
                offset: 0,
                len: 1500,
                dst: 1000
            },
            TxCopy {
                gref: 3,
                offset: 2000,
                len: 500,
                dst: 2500
            },
        ]
    );
    let ids: Vec<(u16, i16)> = p.responses(true).iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(
        ids,
        [
            (10, NETIF_RSP_OKAY),
            (0, NETIF_RSP_NULL),
            (0, NETIF_RSP_NULL),
            (11, NETIF_RSP_OKAY),
            (12, NETIF_RSP_OKAY)
        ]
    );
    assert_eq!(p.slot_count(), 5);
}

#[test]
fn zero_length_fragments_are_accepted_and_copy_nothing() {
    // XSA-448: zero-length non-first fragments must not become empty frags.
    let mut f = Frontend::new();
    f.req(1, 0, NETTXF_MORE_DATA, 1, 100);
    f.req(2, 0, NETTXF_MORE_DATA, 2, 0);
    f.req(3, 0, 0, 3, 40);
    f.publish();
    let p = take(&f).unwrap().unwrap();
    assert!(p.copies.iter().all(|c| c.len > 0));
    assert_eq!(p.copies.len(), 2);
    assert_eq!(p.copies.iter().map(|c| u32::from(c.len)).sum::<u32>(), 100);
}

#[test]
fn malformed_packets_are_dropped_and_answered_with_errors() {
    // Shorter than an Ethernet header.
    let mut f = Frontend::new();
    f.req(1, 0, 0, 1, 13);
    f.publish();
    let p = take(&f).unwrap().unwrap();
    assert_eq!(p.dropped, Some(TxDrop::TooShort(13)));
    assert!(p.copies.is_empty());
    assert_eq!(p.responses(true)[0].status, NETIF_RSP_ERROR);
    // Fragments larger than the packet.
    let mut f = Frontend::new();
    f.req(1, 0, NETTXF_MORE_DATA, 1, 100);
    f.req(2, 0, 0, 2, 200);
    f.publish();
    let p = take(&f).unwrap().unwrap();
    assert_eq!(
        p.dropped,
        Some(TxDrop::FragmentsTooLong {
            total: 100,
            fragments: 200
        })
    );
    assert!(
        p.responses(true)
            .iter()
            .all(|r| r.status == NETIF_RSP_ERROR)
    );
    // 19 data slots: more than a backend must take, fewer than fatal.
    let mut f = Frontend::new();
    for i in 0..19u16 {
        let more = if i < 18 { NETTXF_MORE_DATA } else { 0 };
        f.req(u32::from(i), 0, more, i, if i == 0 { 19 * 10 } else { 10 });
    }
    f.publish();
    let p = take(&f).unwrap().unwrap();
    assert_eq!(p.dropped, Some(TxDrop::TooManySlots(19)));
    assert_eq!(p.responses(true).len(), 19);
}

#[test]
fn hostile_chains_are_fatal() {
    // More than 20 slots (XSA-39 class: a ring of more_data).
    let mut f = Frontend::new();
    for i in 0..30u16 {
        f.req(0, 0, NETTXF_MORE_DATA, i, 20);
    }
    f.publish();
    assert_eq!(take(&f), Err(TxFatal::TooManySlots(21)));
    // A chain that runs past what was posted.
    let mut f = Frontend::new();
    f.req(0, 0, NETTXF_MORE_DATA, 1, 100);
    f.publish();
    assert_eq!(
        take(&f),
        Err(TxFatal::Incomplete {
            needed: 2,
            posted: 1
        })
    );
    // Data crossing its page, in the first slot and in a fragment.
    let mut f = Frontend::new();
    f.req(0, 4000, 0, 1, 200);
    f.publish();
    assert_eq!(
        take(&f),
        Err(TxFatal::CrossesPage {
            slot: 0,
            offset: 4000,
            size: 200
        })
    );
    let mut f = Frontend::new();
    f.req(0, 0, NETTXF_MORE_DATA, 1, 3000);
    f.req(0, 3000, 0, 2, 1500);
    f.publish();
    assert_eq!(
        take(&f),
        Err(TxFatal::CrossesPage {
            slot: 1,
            offset: 3000,
            size: 1500
        })
    );
    // An unknown extra type.
    let mut f = Frontend::new();
    f.req(0, 0, NETTXF_EXTRA_INFO, 1, 60);
    f.extra([9, 0, 0, 0, 0, 0, 0, 0]);
    f.publish();
    assert_eq!(take(&f), Err(TxFatal::UnknownExtra(9)));
    // Extras that never end.
    let mut f = Frontend::new();
    f.req(0, 0, NETTXF_EXTRA_INFO, 1, 60);
    for _ in 0..25 {
        f.extra([EXTRA_TYPE_GSO, EXTRA_FLAG_MORE, 0xb4, 0x05, 1, 0, 0, 0]);
    }
    f.publish();
    assert_eq!(take(&f), Err(TxFatal::TooManySlots(21)));
    // A GSO size of 0 (Linux netback: fatal).
    let mut f = Frontend::new();
    f.req(0, 0, NETTXF_EXTRA_INFO, 1, 60);
    f.extra([EXTRA_TYPE_GSO, 0, 0, 0, 1, 0, 0, 0]);
    f.publish();
    assert_eq!(take(&f), Err(TxFatal::GsoSizeZero));
    // An impossible req_prod.
    let mut f = Frontend::new();
    f.req(0, 0, 0, 1, 60);
    f.publish();
    let mut ring = BackRing::attach(&f.page[..], TX_SLOT).unwrap();
    f.page.store_u32(REQ_PROD, 5000);
    assert!(matches!(
        next_packet(&mut ring, &f.page[..]),
        Err(TxFatal::BadIndex(_))
    ));
}

#[test]
fn packets_follow_one_another_and_responses_reach_the_frontend() {
    let mut f = Frontend::new();
    f.req(1, 0, 0, 1, 60);
    f.req(2, 0, NETTXF_MORE_DATA, 2, 100);
    f.req(3, 0, 0, 3, 40);
    f.publish();
    let mut ring = BackRing::attach(&f.page[..], TX_SLOT).unwrap();
    let mut all = Vec::new();
    while let Some(p) = next_packet(&mut ring, &f.page[..]).unwrap() {
        all.extend(p.responses(true));
    }
    assert_eq!(all.len(), 3);
    for r in &all {
        ring.respond(&mut f.page[..], &r.to_bytes());
    }
    assert!(ring.push_responses(&mut f.page[..]));
    assert_eq!(f.page.load_u32(RSP_PROD), 3);
    assert_eq!(&f.page[64 + 24..64 + 28], &[3, 0, 0, 0]);
}

#[test]
fn random_ring_contents_never_panic() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut fatal = 0;
    for _ in 0..3000 {
        let mut f = Frontend::new();
        for b in f.page[64..].iter_mut() {
            *b = next() as u8;
        }
        // Mostly plausible flags so chains form; sometimes anything.
        for s in 0..256 {
            if next() % 4 != 0 {
                let at = 64 + s * TX_SLOT + 6;
                f.page[at] &= 0x0f;
                f.page[at + 1] = 0;
            }
        }
        let prod = (next() % 300) as u32;
        f.page.store_u32(REQ_PROD, prod);
        let Ok(mut ring) = BackRing::attach(&f.page[..], TX_SLOT) else {
            continue;
        };
        for _ in 0..300 {
            match next_packet(&mut ring, &f.page[..]) {
                Ok(Some(p)) => {
                    for c in &p.copies {
                        assert!(u32::from(c.offset) + u32::from(c.len) <= 4096);
                        assert!(c.len > 0);
                    }
                    assert!(p.copies.iter().map(|c| u32::from(c.len)).sum::<u32>() <= 0xffff);
                }
                Ok(None) => break,
                Err(_) => {
                    fatal += 1;
                    break;
                }
            }
        }
    }
    assert!(fatal > 100, "{fatal}");
}
