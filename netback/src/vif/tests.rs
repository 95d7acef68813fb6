//! Two vifs on `FakeXen`: frames cross grant copies both ways, bad grants fail only their
//! packet, a broken ring is fatal only for its vif, and notifications follow the ring rules.

use super::*;
use crate::packet::Packet;
use crate::ring::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::wire::*;
use crate::xenbus::Channels;
use xen::fake::FakeXen;

const A: u16 = 5;
const BOUNCE_GFN: u64 = 0x9000;

/// The bounce buffer as dom0 frames of the fake hypervisor.
struct FakeBounce<'a>(&'a FakeXen);

impl Bounce for FakeBounce<'_> {
    fn gfn(&self, i: usize) -> u64 {
        BOUNCE_GFN + i as u64
    }
    fn read(&self, at: usize, out: &mut [u8]) {
        for (k, b) in out.iter_mut().enumerate() {
            let p = at + k;
            *b = self.0.local_page(self.gfn(p / PAGE))[p % PAGE];
        }
    }
    fn write(&mut self, at: usize, data: &[u8]) {
        for (k, chunk) in data.chunks(PAGE).enumerate() {
            let p = at + k * PAGE;
            self.0.write_local(self.gfn(p / PAGE), p % PAGE, chunk);
        }
    }
}

fn cfg() -> FrontendConfig {
    FrontendConfig {
        tx_ring_ref: 1,
        rx_ring_ref: 2,
        channels: Channels::Single(9),
        rx_notify: true,
        sg: true,
        rx_gso_tcpv4: false,
        csum_offload: true,
        ipv6_csum_offload: false,
    }
}

/// A TX pass's packets as MTU-sized frames (GSO packets cut as dom0 cuts them for a port that
/// cannot take them whole), counted on `link`.
fn frames(link: &mut Link, t: &Transmitted) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in &t.packets {
        let f = p.frames().ok();
        if p.gso_mss.is_some() {
            link.count_segmented(f.as_ref().map(Vec::len));
        }
        out.extend(f.unwrap_or_default());
    }
    out
}

/// A fresh ring page with `rsp_event` 1 (netfront's initial value).
fn ring() -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p.store_u32(RSP_EVENT, 1);
    p
}

/// Fresh TX and RX rings and a link of domain `A` attached to them with [`cfg`].
fn attached() -> (Vec<u8>, Vec<u8>, Link) {
    attached_as(A)
}

/// [`attached`] for domain `dom`.
fn attached_as(dom: u16) -> (Vec<u8>, Vec<u8>, Link) {
    let (txp, rxp) = (ring(), ring());
    let link = Link::attach(dom, cfg(), &txp[..], &rxp[..]).unwrap();
    (txp, rxp, link)
}

fn post_tx(page: &mut [u8], index: u32, r: TxRequest) {
    let at = 64 + (index as usize % 256) * TX_SLOT;
    page[at..at + TX_SLOT].copy_from_slice(&r.to_bytes());
}

fn post_rx(page: &mut [u8], index: u32, r: RxRequest) {
    let at = 64 + (index as usize % 256) * RX_SLOT;
    page[at..at + RX_SLOT].copy_from_slice(&r.to_bytes());
}

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 6]);
    f[6..12].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 5]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    for (i, b) in f[14..].iter_mut().enumerate() {
        *b = i as u8;
    }
    f
}

#[test]
fn a_frame_goes_out_and_comes_back_through_grant_copies() {
    let x = FakeXen::new(4, 20);
    let (mut txp, mut rxp, mut link) = attached();
    let mut bounce = FakeBounce(&x);

    // A 6000-byte frame in two slots: 4000 bytes of one page, 2000 of another.
    let f = frame(6000);
    x.grant_page(A, 20, &f[..4000], true);
    x.grant_page(A, 21, &f[4000..], true);
    post_tx(
        &mut txp,
        0,
        TxRequest {
            gref: 20,
            offset: 0,
            flags: NETTXF_MORE_DATA,
            id: 3,
            size: 6000,
        },
    );
    post_tx(
        &mut txp,
        1,
        TxRequest {
            gref: 21,
            offset: 0,
            flags: 0,
            id: 4,
            size: 2000,
        },
    );
    txp.store_u32(REQ_PROD, 2);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    assert_eq!(frames(&mut link, &t), vec![f.clone()]);
    assert!(t.notify, "rsp_event 1 asks for the first response");
    assert!(!t.more);
    assert_eq!(txp.load_u32(RSP_PROD), 2);
    assert_eq!(txp.load_u32(REQ_EVENT), 3, "re-armed for the next request");
    let r0 = &txp[64..68];
    assert_eq!(
        r0,
        TxResponse {
            id: 3,
            status: NETIF_RSP_OKAY
        }
        .to_bytes()
    );
    assert_eq!(link.counters.tx_packets, 1);
    assert_eq!(link.counters.tx_bytes, 6000);

    // Back: no buffer posted yet, so it waits; then two buffers take it.
    assert!(link.rxq.push(f.clone(), 0));
    assert!(!link.receive(&x, &mut rxp[..], &mut bounce, 1).unwrap());
    assert_eq!(
        rxp.load_u32(REQ_EVENT),
        1,
        "asks to hear of the next buffer"
    );
    x.grant_page(A, 30, &[], false);
    x.grant_page(A, 31, &[], false);
    post_rx(&mut rxp, 0, RxRequest { id: 7, gref: 30 });
    post_rx(&mut rxp, 1, RxRequest { id: 8, gref: 31 });
    rxp.store_u32(REQ_PROD, 2);
    assert!(link.receive(&x, &mut rxp[..], &mut bounce, 2).unwrap());
    let mut got = x.granted_page(A, 30).unwrap();
    got.extend_from_slice(&x.granted_page(A, 31).unwrap()[..6000 - 4096]);
    assert_eq!(got, f);
    let r = RxResponse::parse(rxp[64..72].try_into().unwrap());
    assert_eq!((r.id, r.status), (7, 4096));
    assert_ne!(r.flags & NETRXF_MORE_DATA, 0);
    let r = RxResponse::parse(rxp[72..80].try_into().unwrap());
    assert_eq!(
        (r.id, r.status, r.flags & NETRXF_MORE_DATA),
        (8, 6000 - 4096, 0)
    );
    assert_eq!(link.counters.rx_packets, 1);
    assert_eq!(link.counters.rx_bytes, 6000);
}

#[test]
fn a_bad_grant_fails_only_its_packet() {
    let x = FakeXen::new(4, 20);
    let (mut txp, rxp) = (ring(), ring());
    let mut link = Link::attach(A, cfg(), &txp[..], &rxp[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    let f = frame(100);
    x.grant_page(A, 20, &f, true);
    // Packet 1 names a grant the guest never made; packet 2 is fine.
    post_tx(
        &mut txp,
        0,
        TxRequest {
            gref: 99,
            offset: 0,
            flags: 0,
            id: 1,
            size: 100,
        },
    );
    post_tx(
        &mut txp,
        1,
        TxRequest {
            gref: 20,
            offset: 0,
            flags: 0,
            id: 2,
            size: 100,
        },
    );
    txp.store_u32(REQ_PROD, 2);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    assert_eq!(frames(&mut link, &t), vec![f]);
    assert_eq!(
        &txp[64..68],
        TxResponse {
            id: 1,
            status: NETIF_RSP_ERROR
        }
        .to_bytes()
    );
    assert_eq!(
        &txp[76..80],
        TxResponse {
            id: 2,
            status: NETIF_RSP_OKAY
        }
        .to_bytes()
    );
    assert_eq!(link.counters.tx_copy_errors, 1);

    // RX into a read-only grant: that packet's response is an error, the next one is fine.
    let mut rxp = rxp;
    x.grant_page(A, 40, &[], true);
    x.grant_page(A, 41, &[], false);
    post_rx(&mut rxp, 0, RxRequest { id: 1, gref: 40 });
    post_rx(&mut rxp, 1, RxRequest { id: 2, gref: 41 });
    rxp.store_u32(REQ_PROD, 2);
    link.rxq.push(frame(60), 0);
    link.rxq.push(frame(70), 0);
    link.receive(&x, &mut rxp[..], &mut bounce, 0).unwrap();
    let r1 = RxResponse::parse(rxp[64..72].try_into().unwrap());
    let r2 = RxResponse::parse(rxp[72..80].try_into().unwrap());
    assert_eq!(r1.status, NETIF_RSP_ERROR);
    assert_eq!(r2.status, 70);
    assert_eq!(
        (link.counters.rx_packets, link.counters.rx_copy_errors),
        (1, 1)
    );
}

#[test]
fn work_per_pass_is_bounded_and_a_broken_ring_is_fatal() {
    let x = FakeXen::new(4, 20);
    let (mut txp, rxp) = (ring(), ring());
    let mut link = Link::attach(A, cfg(), &txp[..], &rxp[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    x.grant_page(A, 20, &frame(64), true);
    for i in 0..10 {
        post_tx(
            &mut txp,
            i,
            TxRequest {
                gref: 20,
                offset: 0,
                flags: 0,
                id: i as u16,
                size: 64,
            },
        );
    }
    txp.store_u32(REQ_PROD, 10);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 4).unwrap();
    assert_eq!(frames(&mut link, &t).len(), 4);
    assert!(t.more, "six requests still wait");
    // The four packets' copies went to Xen in one hypercall.
    assert_eq!(
        (link.counters.grant_copies, link.counters.copy_hypercalls),
        (4, 1)
    );
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    assert_eq!(frames(&mut link, &t).len(), 6);
    assert!(!t.more);
    // The frontend moves req_prod a whole ring ahead: fatal (XSA-39), no response written.
    txp.store_u32(REQ_PROD, 10 + 257);
    let e = link
        .transmit(&x, &mut txp[..], &mut bounce, 64)
        .unwrap_err();
    assert!(matches!(e, TxFatal::BadIndex(_)), "{e:?}");
    assert_eq!(txp.load_u32(RSP_PROD), 10);
}

#[test]
fn stale_frames_are_dropped_and_counted() {
    let x = FakeXen::new(4, 20);
    let (txp, mut rxp) = (ring(), ring());
    let mut link = Link::attach(A, cfg(), &txp[..], &rxp[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    link.rxq.push(frame(60), 0);
    // Nobody posts buffers for longer than the drain time: the frame is dropped.
    link.receive(&x, &mut rxp[..], &mut bounce, crate::rx::DRAIN_NS + 1)
        .unwrap();
    assert!(link.rxq.is_empty());
    assert_eq!(link.rxq.counters.dropped_stale, 1);
}

#[test]
fn a_pass_batches_until_the_bounce_buffer_is_full() {
    let x = FakeXen::new(4, 20);
    let (mut txp, rxp) = (ring(), ring());
    let mut link = Link::attach(A, cfg(), &txp[..], &rxp[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    // 50 frames of 1514 bytes (netfront's MTU-sized packets), each in its own granted page:
    // 75,700 bytes, more than the 64 KiB bounce buffer, so two batches.
    for i in 0..50u32 {
        let mut f = frame(1514);
        f[20] = i as u8;
        x.grant_page(A, 100 + i, &f, true);
        post_tx(
            &mut txp,
            i,
            TxRequest {
                gref: 100 + i,
                offset: 0,
                flags: 0,
                id: i as u16,
                size: 1514,
            },
        );
    }
    txp.store_u32(REQ_PROD, 50);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    assert_eq!(frames(&mut link, &t).len(), 50);
    for (i, f) in frames(&mut link, &t).iter().enumerate() {
        assert_eq!(f[20], i as u8, "frame {i} in order and whole");
        assert_eq!(f.len(), 1514);
    }
    // 50 packets, some split where bounce pages end: ~70 ops in 2 batches of ≤ 64.
    let c = link.counters;
    assert!(c.grant_copies >= 50 && c.grant_copies <= 70, "{c:?}");
    assert!(c.copy_hypercalls <= 3, "{c:?}");
    // And back to the guest: 40 of them, one posted buffer each, batched the same way.
    let mut rxp = rxp;
    for i in 0..40u32 {
        x.grant_page(A, 300 + i, &[], false);
        post_rx(
            &mut rxp,
            i,
            RxRequest {
                id: i as u16,
                gref: 300 + i,
            },
        );
    }
    rxp.store_u32(REQ_PROD, 40);
    for f in &frames(&mut link, &t)[..40] {
        assert!(link.rxq.push(f.clone(), 0));
    }
    let before = link.counters.copy_hypercalls;
    assert!(link.receive(&x, &mut rxp[..], &mut bounce, 0).unwrap());
    assert_eq!(link.counters.rx_packets, 40);
    assert!(link.counters.copy_hypercalls - before <= 3);
    for i in 0..40u32 {
        assert_eq!(
            x.granted_page(A, 300 + i).unwrap()[..1514],
            frames(&mut link, &t)[i as usize][..]
        );
    }
}

/// A TCP/IPv4 frame of `payload` bytes (checksums left blank, as netfront sends GSO packets).
fn tcp_frame(payload: usize) -> Vec<u8> {
    let mut f = vec![0u8; 54 + payload];
    f[..6].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 6]);
    f[6..12].copy_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 5]);
    f[12] = 0x08;
    f[14] = 0x45;
    f[16..18].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    f[22] = 64;
    f[23] = 6;
    f[26..30].copy_from_slice(&[10, 0, 0, 1]);
    f[30..34].copy_from_slice(&[10, 0, 0, 2]);
    f[46] = 5 << 4;
    f[47] = 0x18;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    f
}

/// `feature-gso-tcpv4`: a 10 000-byte packet with a GSO extra (MSS 1448) comes out as seven
/// MTU-sized frames with their payload in order; the extra slot is answered NULL; a GSO type
/// dom0 did not offer drops only that packet.
#[test]
fn a_gso_packet_is_cut_into_mss_sized_frames() {
    let x = FakeXen::new(4, 20);
    let (mut txp, rxp) = (ring(), ring());
    let mut link = Link::attach(A, cfg(), &txp[..], &rxp[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    let f = tcp_frame(10_000);
    for (k, chunk) in f.chunks(4096).enumerate() {
        x.grant_page(A, 20 + k as u32, chunk, true);
    }
    let slots = f.len().div_ceil(4096);
    let mut i = 0;
    let mut post = |txp: &mut Vec<u8>, gso_type: u8, id0: u16| {
        post_tx(
            txp,
            i,
            TxRequest {
                gref: 20,
                offset: 0,
                flags: NETTXF_EXTRA_INFO | NETTXF_MORE_DATA | NETTXF_CSUM_BLANK,
                id: id0,
                size: f.len() as u16,
            },
        );
        let at = 64 + ((i + 1) as usize % 256) * TX_SLOT;
        txp[at..at + 8].copy_from_slice(&[EXTRA_TYPE_GSO, 0, 0xa8, 0x05, gso_type, 0, 0, 0]);
        for k in 1..slots {
            post_tx(
                txp,
                i + 1 + k as u32,
                TxRequest {
                    gref: 20 + k as u32,
                    offset: 0,
                    flags: if k + 1 < slots { NETTXF_MORE_DATA } else { 0 },
                    id: id0 + k as u16,
                    size: f[k * 4096..].len().min(4096) as u16,
                },
            );
        }
        i += 1 + slots as u32;
        txp.store_u32(REQ_PROD, i);
    };
    post(&mut txp, crate::gso::GSO_TYPE_TCPV4, 10);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    // Kept whole on the switch: one packet, checked, with its MSS.
    assert_eq!(t.packets.len(), 1);
    assert_eq!(t.packets[0].gso_mss, Some(1448));
    assert_eq!(t.packets[0].data, f);
    let fr = frames(&mut link, &t);
    assert_eq!(fr.len(), 7);
    let payload: Vec<u8> = fr.iter().flat_map(|s| s[54..].to_vec()).collect();
    assert_eq!(payload, f[54..]);
    assert!(fr.iter().all(|s| s.len() <= 1514));
    assert_eq!(
        (link.counters.tx_gso_packets, link.counters.tx_gso_segments),
        (1, 7)
    );
    // Responses: data slots OKAY with their ids, the extra slot NULL.
    let r = |k: usize| txp[64 + k * TX_SLOT..68 + k * TX_SLOT].to_vec();
    let want = |id, status| TxResponse { id, status }.to_bytes().to_vec();
    assert_eq!(r(0), want(10, NETIF_RSP_OKAY));
    assert_eq!(r(1), want(0, NETIF_RSP_NULL));
    assert_eq!(r(2), want(11, NETIF_RSP_OKAY));
    // GSO type 2 (TCPv6) was not offered: the packet is dropped, the vif goes on.
    post(&mut txp, 2, 20);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    assert!(frames(&mut link, &t).is_empty());
    assert_eq!(link.counters.tx_gso_dropped, 1);
}

/// A GSO packet taken from one guest goes whole into another guest that takes GSO on RX:
/// one packet over 3 data buffers and the extra's, bytes equal through the grant copies,
/// counted as delivered whole; a frontend without `feature-gso-tcpv4` is not offered it.
#[test]
fn a_gso_packet_is_delivered_whole_to_a_frontend_that_takes_gso() {
    let x = FakeXen::new(4, 20);
    let (txp, mut rxp) = (ring(), ring());
    let mut link = Link::attach(
        A,
        FrontendConfig {
            rx_gso_tcpv4: true,
            ..cfg()
        },
        &txp[..],
        &rxp[..],
    )
    .unwrap();
    assert!(link.takes_gso());
    let no_sg = FrontendConfig {
        rx_gso_tcpv4: true,
        sg: false,
        ..cfg()
    };
    assert!(
        !Link::attach(A, no_sg, &txp[..], &rxp[..])
            .unwrap()
            .takes_gso()
    );
    assert!(
        !Link::attach(A, cfg(), &txp[..], &rxp[..])
            .unwrap()
            .takes_gso()
    );
    let mut bounce = FakeBounce(&x);
    let mut f = tcp_frame(10_000);
    crate::gso::set_partial_csum(&mut f, 1448).unwrap();
    for i in 0..4u32 {
        x.grant_page(A, 300 + i, &[], false);
        post_rx(
            &mut rxp,
            i,
            RxRequest {
                id: i as u16,
                gref: 300 + i,
            },
        );
    }
    rxp.store_u32(REQ_PROD, 4);
    assert!(link.rxq.push(
        Packet {
            data: f.clone(),
            gso_mss: Some(1448)
        },
        0
    ));
    assert!(link.receive(&x, &mut rxp[..], &mut bounce, 0).unwrap());
    assert_eq!(
        (link.counters.rx_packets, link.counters.rx_gso_packets),
        (1, 1)
    );
    assert_eq!(link.counters.rx_bytes, f.len() as u64);
    assert_eq!(x.granted_page(A, 300).unwrap()[..4096], f[..4096]);
    assert_eq!(x.granted_page(A, 302).unwrap()[..4096], f[4096..8192]);
    assert_eq!(x.granted_page(A, 303).unwrap()[..f.len() - 8192], f[8192..]);
    assert_eq!(rxp.load_u32(RSP_PROD), 4);
    let slot = |k: usize| rxp[64 + k * RX_SLOT..64 + (k + 1) * RX_SLOT].to_vec();
    let (id, flags) = (
        u16::from_le_bytes([slot(0)[0], slot(0)[1]]),
        u16::from_le_bytes([slot(0)[4], slot(0)[5]]),
    );
    assert_eq!(id, 0);
    assert_eq!(
        flags,
        NETRXF_EXTRA_INFO | NETRXF_CSUM_BLANK | NETRXF_DATA_VALIDATED | NETRXF_MORE_DATA
    );
    assert_eq!(slot(1), [EXTRA_TYPE_GSO, 0, 0xa8, 0x05, 1, 0, 0, 0]);
    // The TCP checksum field holds the pseudo-header sum (CHECKSUM_PARTIAL): completing it
    // over the whole packet gives what segmenting gives the frames.
    let mut full = f.clone();
    crate::csum::complete(&mut full).unwrap();
    assert_ne!(full[50..52], f[50..52]);
}

/// A GSO packet a guest sent without `NETTXF_csum_blank` gets the pseudo-header sum put in its
/// TCP checksum field (Linux netback's `recalculate_partial_csum`), so a receiver told
/// `NETRXF_csum_blank` finds the form it expects; a malformed one is dropped at TX.
#[test]
fn gso_packets_are_checked_and_made_partial_at_tx() {
    let f = tcp_frame(10_000);
    let mut g = f.clone();
    crate::gso::set_partial_csum(&mut g, 1448).unwrap();
    // Pseudo-header: 10.0.0.1 + 10.0.0.2 + proto 6 + TCP length (20 + 10000).
    let want: u32 = 0x0a00 + 0x0001 + 0x0a00 + 0x0002 + 6 + 10_020;
    assert_eq!(u16::from_be_bytes([g[50], g[51]]), want as u16);
    assert_eq!(g[..50], f[..50]);
    assert!(crate::gso::check(&f, 1448).is_ok());
    assert!(crate::gso::check(&f[..100], 1448).is_err());
    assert!(crate::gso::check(&f, 10).is_err(), "too many segments");
}

/// RX buffers the frontend posts count as work (its refill notifications are traffic, not a
/// storm), but only forward moves of `req_prod` within a ring: moving it back and forth or far
/// ahead counts nothing.
#[test]
fn posted_rx_buffers_count_as_work_only_when_they_move_forward() {
    let x = FakeXen::new(4, 20);
    let (txp, mut rxp) = (ring(), ring());
    let mut link = Link::attach(A, cfg(), &txp[..], &rxp[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    let mut look = |rxp: &mut Vec<u8>, prod: u32| {
        rxp.store_u32(REQ_PROD, prod);
        let _ = link.receive(&x, &mut rxp[..], &mut bounce, 0);
        link.rx_posts_seen
    };
    assert_eq!(look(&mut rxp, 0), 0, "nothing posted");
    assert_eq!(look(&mut rxp, 10), 1);
    assert_eq!(look(&mut rxp, 10), 1, "no move");
    assert_eq!(look(&mut rxp, 5), 1, "a step back");
    assert_eq!(look(&mut rxp, 10), 1, "back where it was");
    assert_eq!(look(&mut rxp, 12), 2);
    assert_eq!(look(&mut rxp, 5000), 2, "more than a ring ahead");
    assert_eq!(look(&mut rxp, 256), 3, "a full ring posted");
}

/// A vif's totals over reconnects: every counter adds up.
#[test]
fn counters_add_up_over_connections() {
    let one = VifCounters {
        tx_packets: 1,
        tx_bytes: 2,
        tx_dropped: 3,
        tx_copy_errors: 4,
        rx_packets: 5,
        rx_bytes: 6,
        rx_copy_errors: 7,
        grant_copies: 8,
        copy_hypercalls: 9,
        tx_gso_packets: 10,
        tx_gso_segments: 11,
        tx_gso_dropped: 12,
        rx_gso_packets: 13,
    };
    let mut total = one;
    total += &one;
    assert_eq!(
        total,
        VifCounters {
            tx_packets: 2,
            tx_bytes: 4,
            tx_dropped: 6,
            tx_copy_errors: 8,
            rx_packets: 10,
            rx_bytes: 12,
            rx_copy_errors: 14,
            grant_copies: 16,
            copy_hypercalls: 18,
            tx_gso_packets: 20,
            tx_gso_segments: 22,
            tx_gso_dropped: 24,
            rx_gso_packets: 26,
        }
    );
}

#[test]
fn paged_copies_cross_pages_like_a_flat_buffer() {
    // Three pages back to back against a flat model, at every interesting offset and length.
    let mut pages = alloc::vec![[0u8; PAGE]; 3];
    let mut flat = alloc::vec![0u8; 3 * PAGE];
    let mut seed = 7u32;
    for (at, len) in [
        (0, 0),
        (0, 1),
        (4095, 1),
        (4095, 2),
        (100, PAGE),
        (0, 3 * PAGE),
        (PAGE - 3, PAGE + 6),
        (2 * PAGE + 4000, 96),
    ] {
        let data: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (seed >> 16) as u8
            })
            .collect();
        write_paged(&mut pages, at, &data);
        flat[at..at + len].copy_from_slice(&data);
        let whole: Vec<u8> = pages.iter().flatten().copied().collect();
        assert_eq!(whole, flat, "write at {at} len {len}");
        let mut back = alloc::vec![0u8; len];
        read_paged(&pages, at, &mut back);
        assert_eq!(back, data, "read at {at} len {len}");
        let mut appended = alloc::vec![7u8];
        read_paged_append(&pages, at, len, &mut appended);
        assert_eq!(appended[0], 7);
        assert_eq!(appended[1..], data[..], "read_append at {at} len {len}");
    }
    // Past the end is a panic (an index out of range), never a silent short copy.
    let r = std::panic::catch_unwind(|| {
        let mut out = [0u8; 2];
        read_paged(&[[0u8; PAGE]; 1], PAGE - 1, &mut out);
    });
    assert!(r.is_err());
}

/// A frame that needs more buffers than are posted: dom0 asks to hear of the very next post
/// (`req_event = req_prod + 1`, as Linux netback's `xenvif_rx_ring_slots_available`), not
/// nothing. Before, the final check saw a buffer posted, returned early and left `req_event`
/// stale: netfront's next posts did not notify and the frame waited for an unrelated wakeup
/// (bench-net's DomU -> DomU transfers stalled between such wakeups).
#[test]
fn a_frame_waiting_for_more_buffers_asks_to_hear_of_the_next_one() {
    let x = FakeXen::new(4, 20);
    let (txp, mut rxp) = (ring(), ring());
    let mut link = Link::attach(A, cfg(), &txp[..], &rxp[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    let f = frame(10_000); // three pages
    assert!(link.rxq.push(f.clone(), 0));
    for g in 30..33 {
        x.grant_page(A, g, &[], false);
    }
    post_rx(&mut rxp, 0, RxRequest { id: 0, gref: 30 });
    rxp.store_u32(REQ_PROD, 1);
    rxp.store_u32(REQ_EVENT, 0);
    assert!(!link.receive(&x, &mut rxp[..], &mut bounce, 1).unwrap());
    assert_eq!(
        rxp.load_u32(REQ_EVENT),
        2,
        "the next post (req_prod 2) notifies"
    );
    assert!(!link.rx_more, "nothing to do until buffers come");
    assert_eq!(link.rx.req_cons, 0, "the lone buffer is left for the frame");
    for (i, g) in [(1u32, 31u32), (2, 32)] {
        post_rx(
            &mut rxp,
            i,
            RxRequest {
                id: i as u16,
                gref: g,
            },
        );
    }
    rxp.store_u32(REQ_PROD, 3);
    assert!(link.receive(&x, &mut rxp[..], &mut bounce, 2).unwrap());
    let mut got = x.granted_page(A, 30).unwrap();
    got.extend_from_slice(&x.granted_page(A, 31).unwrap());
    got.extend_from_slice(&x.granted_page(A, 32).unwrap()[..10_000 - 2 * PAGE]);
    assert_eq!(got, f);
    assert!(link.rxq.is_empty() && !link.rx_more);
}

/// A frontend that posts buffers exactly while dom0 re-arms `req_event` (so it does not
/// notify): dom0 delivers into them, and after its bounded two looks says `rx_more` so the
/// loop serves again instead of sleeping.
#[test]
fn buffers_posted_during_the_final_check_are_served_without_a_notification() {
    /// Posts three more buffers whenever the backend writes `req_event`.
    struct Racing {
        page: Vec<u8>,
        next: u32,
    }
    impl RingPage for Racing {
        fn load_u32(&self, off: usize) -> u32 {
            self.page.load_u32(off)
        }
        fn store_u32(&mut self, off: usize, v: u32) {
            self.page.store_u32(off, v);
            if off == REQ_EVENT {
                for _ in 0..3 {
                    let (i, g) = (self.next, 40 + self.next);
                    post_rx(
                        &mut self.page,
                        i,
                        RxRequest {
                            id: i as u16,
                            gref: g,
                        },
                    );
                    self.next += 1;
                }
                self.page.store_u32(REQ_PROD, self.next);
            }
        }
        fn read_bytes(&self, off: usize, dst: &mut [u8]) {
            self.page.read_bytes(off, dst)
        }
        fn write_bytes(&mut self, off: usize, src: &[u8]) {
            self.page.write_bytes(off, src)
        }
    }
    let x = FakeXen::new(4, 20);
    let txp = ring();
    let mut rx = Racing {
        page: ring(),
        next: 0,
    };
    for g in 40..60 {
        x.grant_page(A, g, &[], false);
    }
    let mut link = Link::attach(A, cfg(), &txp[..], &rx.page[..]).unwrap();
    let mut bounce = FakeBounce(&x);
    for _ in 0..3 {
        assert!(link.rxq.push(frame(10_000), 0));
    }
    // First call: no buffer; arming brings three (frame 1 goes), arming again brings three
    // more, and the two looks are used up: serve again.
    link.receive(&x, &mut rx, &mut bounce, 1).unwrap();
    assert_eq!(link.counters.rx_packets, 1);
    assert!(
        link.rx_more,
        "buffers for frame 2 came without a notification"
    );
    // Second call: frame 2 into them, frame 3 after one more arming; nothing left.
    link.receive(&x, &mut rx, &mut bounce, 2).unwrap();
    assert_eq!(link.counters.rx_packets, 3);
    assert!(link.rxq.is_empty());
    assert!(!link.rx_more);
}

/// Each guest slot (TX) and each guest buffer (RX) is one `gnttab_copy`: dom0's side of a copy
/// is placed so that it does not straddle two of the bounce buffer's pages either
/// (`place_tx_slots`, `place_rx_packet`). Packed back to back, the packets below took 6 ops
/// on TX and 4 on RX.
#[test]
fn each_slot_and_each_buffer_is_one_grant_copy() {
    let x = FakeXen::new(4, 20);
    let (mut txp, mut rxp, mut link) = attached();
    let mut bounce = FakeBounce(&x);
    // A 100-byte frame in one slot at offset 10, then a 7892-byte one as netfront lays out a
    // TCP packet: the header part at offset 3000 of one page, then its data from offset 1000
    // of another page to that page's end, a whole page, and 500 bytes.
    let small = frame(100);
    let big = frame(7892);
    let slots: [(u32, u16, &[u8]); 5] = [
        (40, 10, &small[..]),
        (41, 3000, &big[..200]),
        (42, 1000, &big[200..3296]),
        (43, 0, &big[3296..7392]),
        (44, 0, &big[7392..]),
    ];
    let mut index = 0u32;
    for (k, &(gref, offset, data)) in slots.iter().enumerate() {
        let mut page = vec![0u8; PAGE];
        page[usize::from(offset)..usize::from(offset) + data.len()].copy_from_slice(data);
        x.grant_page(A, gref, &page, true);
        let (size, more) = match k {
            0 => (100, false),
            1 => (7892, true),
            4 => (data.len() as u16, false),
            _ => (data.len() as u16, true),
        };
        post_tx(
            &mut txp,
            index,
            TxRequest {
                gref,
                offset,
                flags: if more { NETTXF_MORE_DATA } else { 0 },
                id: k as u16,
                size,
            },
        );
        index += 1;
    }
    txp.store_u32(REQ_PROD, index);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    assert_eq!(frames(&mut link, &t), vec![small.clone(), big.clone()]);
    assert_eq!(link.counters.grant_copies, 5, "one per slot");
    assert_eq!(link.counters.copy_hypercalls, 1);

    // Back: the small frame, then a 6000-byte one over two buffers.
    let f = frame(6000);
    assert!(link.rxq.push(small.clone(), 0));
    assert!(link.rxq.push(f.clone(), 0));
    for i in 0..3u32 {
        x.grant_page(A, 50 + i, &[], false);
        post_rx(
            &mut rxp,
            i,
            RxRequest {
                id: i as u16,
                gref: 50 + i,
            },
        );
    }
    rxp.store_u32(REQ_PROD, 3);
    assert!(link.receive(&x, &mut rxp[..], &mut bounce, 0).unwrap());
    assert_eq!(x.granted_page(A, 50).unwrap()[..100], small[..]);
    let mut got = x.granted_page(A, 51).unwrap();
    got.extend_from_slice(&x.granted_page(A, 52).unwrap()[..6000 - PAGE]);
    assert_eq!(got, f);
    assert_eq!(link.counters.grant_copies, 5 + 3, "one per buffer");
    assert_eq!(link.counters.rx_packets, 2);
}

#[test]
fn slots_that_cannot_all_start_on_fresh_pages_still_fit() {
    // 18 slots of 2 049 bytes cannot share pages, and 18 pages are more than a 16-page buffer
    // has: no placement.
    let copies: Vec<tx::TxCopy> = (0..18u32)
        .map(|i| tx::TxCopy {
            gref: i,
            offset: 0,
            len: 2049,
            dst: i * 2049,
        })
        .collect();
    assert_eq!(place_tx_slots(&copies, 0, 16 * PAGE), None);
    let (pos, end) = place_tx_slots(&copies[..16], 0, 16 * PAGE).unwrap();
    // The buffer dom0 has takes them one per page.
    assert!(place_tx_slots(&copies, 0, BOUNCE_PAGES * PAGE).is_some());
    assert_eq!(pos[1], PAGE);
    assert_eq!(end, 15 * PAGE + 2049);
    // A slot that fits in what is left of the page follows the one before it.
    let two = [
        copies[0],
        tx::TxCopy {
            len: 100,
            ..copies[1]
        },
    ];
    assert_eq!(place_tx_slots(&two, 0, PAGE), Some((vec![0, 2049], 2149)));
    assert_eq!(place_rx_packet(100, 3996), 100);
    assert_eq!(place_rx_packet(100, 3997), PAGE);
    assert_eq!(place_rx_packet(PAGE, 6000), PAGE);
}

#[test]
fn a_packet_of_many_half_page_slots_is_one_copy_per_slot() {
    let x = FakeXen::new(4, 20);
    let (mut txp, _rxp, mut link) = attached();
    let mut bounce = FakeBounce(&x);
    // 18 slots (`NR_SLOTS_MIN`) of 2 049 bytes: no two share a page of the bounce buffer, which
    // has a page for each.
    let f = frame(18 * 2049);
    for i in 0..18u32 {
        let part = &f[i as usize * 2049..(i as usize + 1) * 2049];
        x.grant_page(A, 60 + i, part, true);
        post_tx(
            &mut txp,
            i,
            TxRequest {
                gref: 60 + i,
                offset: 0,
                flags: if i < 17 { NETTXF_MORE_DATA } else { 0 },
                id: i as u16,
                size: if i == 0 { f.len() as u16 } else { 2049 },
            },
        );
    }
    txp.store_u32(REQ_PROD, 18);
    let t = link.transmit(&x, &mut txp[..], &mut bounce, 64).unwrap();
    assert_eq!(frames(&mut link, &t), vec![f]);
    assert_eq!(link.counters.tx_packets, 1);
    assert_eq!(
        (link.counters.grant_copies, link.counters.copy_hypercalls),
        (18, 1)
    );
}

/// Post `f` on a TX ring from request `index` on, a page-sized slot per grant from `gref` on;
/// the index after it.
fn post_frame(x: &FakeXen, dom: u16, txp: &mut [u8], index: u32, gref: u32, f: &[u8]) -> u32 {
    let n = f.len().div_ceil(PAGE) as u32;
    for (k, chunk) in f.chunks(PAGE).enumerate() {
        let k = k as u32;
        x.grant_page(dom, gref + k, chunk, true);
        post_tx(
            txp,
            index + k,
            TxRequest {
                gref: gref + k,
                offset: 0,
                flags: if k + 1 < n { NETTXF_MORE_DATA } else { 0 },
                id: (index + k) as u16,
                size: if k == 0 {
                    f.len() as u16
                } else {
                    chunk.len() as u16
                },
            },
        );
    }
    index + n
}

/// Post `n` RX buffers (grants from `gref` on) from request `index` on.
fn post_buffers(x: &FakeXen, dom: u16, rxp: &mut [u8], index: u32, gref: u32, n: u32) {
    for i in 0..n {
        x.grant_page(dom, gref + i, &[], false);
        post_rx(
            rxp,
            index + i,
            RxRequest {
                id: (index + i) as u16,
                gref: gref + i,
            },
        );
    }
    rxp.store_u32(REQ_PROD, index + n);
}

#[test]
fn two_vifs_share_one_grant_copy_hypercall_each_way() {
    const B: u16 = 6;
    let x = FakeXen::new(4, 20);
    let mut bounce = FakeBounce(&x);
    let (mut atx, mut arx, mut a) = attached();
    let (mut btx, mut brx, mut b) = attached_as(B);
    let (fa, fb) = (frame(6000), frame(300));
    let end = post_frame(&x, A, &mut atx, 0, 20, &fa);
    atx.store_u32(REQ_PROD, end);
    let end = post_frame(&x, B, &mut btx, 0, 20, &fb);
    btx.store_u32(REQ_PROD, end);

    let before = x.traps();
    let mut links = [(&mut a, &mut atx[..]), (&mut b, &mut btx[..])];
    let r = transmit_all(&x, &mut links, &mut bounce, 64);
    assert_eq!(
        x.traps() - before,
        1,
        "both vifs' copies in one GNTTABOP_copy"
    );
    let (ta, tb) = (r[0].as_ref().unwrap(), r[1].as_ref().unwrap());
    assert_eq!(ta.packets, vec![Packet::frame(fa.clone())]);
    assert_eq!(tb.packets, vec![Packet::frame(fb.clone())]);
    assert!(ta.notify && tb.notify);
    for l in [&a, &b] {
        assert_eq!(l.counters.copy_hypercalls, 1, "{:?}", l.counters);
        assert_eq!(l.counters.tx_packets, 1);
    }
    assert_eq!(
        (a.counters.grant_copies, b.counters.grant_copies),
        (2, 1),
        "each vif counts its own ops"
    );
    // Every slot answered, each on its own ring.
    assert_eq!(atx.load_u32(RSP_PROD), 2);
    assert_eq!(btx.load_u32(RSP_PROD), 1);

    // Back: each frame into the other vif's buffers, both in one hypercall.
    assert!(a.rxq.push(fb.clone(), 0));
    assert!(b.rxq.push(fa.clone(), 0));
    post_buffers(&x, A, &mut arx, 0, 50, 1);
    post_buffers(&x, B, &mut brx, 0, 50, 2);
    let before = x.traps();
    let mut links = [(&mut a, &mut arx[..]), (&mut b, &mut brx[..])];
    let r = receive_all(&x, &mut links, &mut bounce, 0);
    assert_eq!(
        x.traps() - before,
        1,
        "both deliveries in one GNTTABOP_copy"
    );
    assert_eq!((r[0], r[1]), (Ok(true), Ok(true)));
    assert_eq!(x.granted_page(A, 50).unwrap()[..300], fb[..]);
    let mut got = x.granted_page(B, 50).unwrap();
    got.extend_from_slice(&x.granted_page(B, 51).unwrap()[..6000 - PAGE]);
    assert_eq!(got, fa);
    assert_eq!((a.counters.rx_packets, b.counters.rx_packets), (1, 1));
    assert_eq!((arx.load_u32(RSP_PROD), brx.load_u32(RSP_PROD)), (1, 2));
}

#[test]
fn a_broken_ring_beside_a_good_one_fails_alone() {
    const B: u16 = 6;
    let x = FakeXen::new(4, 20);
    let mut bounce = FakeBounce(&x);
    let (mut atx, mut arx, mut a) = attached();
    let (mut btx, mut brx, mut b) = attached_as(B);
    // A's producer runs more than a ring ahead (XSA-39's class); B sends a frame.
    atx.store_u32(REQ_PROD, 300);
    let fb = frame(1000);
    let end = post_frame(&x, B, &mut btx, 0, 20, &fb);
    btx.store_u32(REQ_PROD, end);
    let mut links = [(&mut a, &mut atx[..]), (&mut b, &mut btx[..])];
    let r = transmit_all(&x, &mut links, &mut bounce, 64);
    assert!(matches!(r[0], Err(TxFatal::BadIndex(_))), "{:?}", r[0]);
    assert_eq!(r[1].as_ref().unwrap().packets, vec![Packet::frame(fb)]);

    // The same on RX: A's posted buffers run a ring ahead; B still gets its frame.
    assert!(a.rxq.push(frame(100), 0));
    assert!(b.rxq.push(frame(200), 0));
    arx.store_u32(REQ_PROD, 300);
    post_buffers(&x, B, &mut brx, 0, 50, 1);
    let mut links = [(&mut a, &mut arx[..]), (&mut b, &mut brx[..])];
    let r = receive_all(&x, &mut links, &mut bounce, 0);
    assert!(r[0].is_err(), "{:?}", r[0]);
    assert_eq!(r[1], Ok(true));
    assert_eq!(x.granted_page(B, 50).unwrap()[..200], frame(200)[..]);
}

#[test]
fn vifs_whose_packets_overflow_the_bounce_buffer_flush_between_them() {
    // Three 60 000-byte frames of 15 slots per vif: 90 pages, more than the buffer's 64, so
    // the second vif's last two packets wait for a second hypercall, each way; every frame
    // arrives whole on its side.
    const B: u16 = 6;
    const LEN: usize = 60_000;
    let x = FakeXen::new(4, 20);
    let mut bounce = FakeBounce(&x);
    let (mut atx, mut arx, mut a) = attached();
    let (mut btx, mut brx, mut b) = attached_as(B);
    let mark = |m: u8| {
        let mut f = frame(LEN);
        f[100] = m;
        f
    };
    let fa: Vec<Vec<u8>> = (0..3).map(|k| mark(0xa0 + k)).collect();
    let fb: Vec<Vec<u8>> = (0..3).map(|k| mark(0xb0 + k)).collect();
    let (mut ia, mut ib) = (0, 0);
    for k in 0..3 {
        ia = post_frame(&x, A, &mut atx, ia, 20 + 15 * k as u32, &fa[k]);
        ib = post_frame(&x, B, &mut btx, ib, 20 + 15 * k as u32, &fb[k]);
    }
    atx.store_u32(REQ_PROD, ia);
    btx.store_u32(REQ_PROD, ib);
    let before = x.traps();
    let mut links = [(&mut a, &mut atx[..]), (&mut b, &mut btx[..])];
    let r = transmit_all(&x, &mut links, &mut bounce, 64);
    assert_eq!(x.traps() - before, 2);
    let sent = |t: &Transmitted| t.packets.iter().map(|p| p.data.clone()).collect::<Vec<_>>();
    assert_eq!(sent(r[0].as_ref().unwrap()), fa);
    assert_eq!(sent(r[1].as_ref().unwrap()), fb);
    assert_eq!(
        (a.counters.copy_hypercalls, b.counters.copy_hypercalls),
        (1, 2)
    );

    for k in 0..3 {
        assert!(a.rxq.push(fb[k].clone(), 0));
        assert!(b.rxq.push(fa[k].clone(), 0));
    }
    post_buffers(&x, A, &mut arx, 0, 100, 45);
    post_buffers(&x, B, &mut brx, 0, 100, 45);
    let before = x.traps();
    let mut links = [(&mut a, &mut arx[..]), (&mut b, &mut brx[..])];
    let r = receive_all(&x, &mut links, &mut bounce, 0);
    assert_eq!(x.traps() - before, 2);
    assert_eq!((r[0], r[1]), (Ok(true), Ok(true)));
    let got = |dom: u16, k: u32| {
        let mut f = Vec::new();
        for g in 100 + 15 * k..115 + 15 * k {
            f.extend_from_slice(&x.granted_page(dom, g).unwrap());
        }
        f.truncate(LEN);
        f
    };
    for k in 0..3 {
        assert_eq!(got(A, k as u32), fb[k]);
        assert_eq!(got(B, k as u32), fa[k]);
    }
    assert_eq!((a.counters.rx_packets, b.counters.rx_packets), (3, 3));
}
