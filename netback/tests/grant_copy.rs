//! The TX and RX paths end to end against `xen::fake::FakeXen`: a simulated netfront posts a
//! multi-slot packet on its TX ring and RX buffers on its RX ring, with the pages granted to
//! dom0; the plans become `GNTTABOP_copy` batches; the bytes arrive whole, the checksum is
//! completed, and the packet goes back to the guest through the switch and the RX path.

use netback::ring::{BackRing, REQ_PROD, RSP_EVENT};
use netback::rx::RxQueue;
use netback::switch::{Forward, Switch};
use netback::tx::next_packet;
use netback::wire::*;
use xen::fake::FakeXen;
use xen::gnttab::{self, Copy, CopyPtr, GrantStatus};
use xen::ring::RingPage;

const GUEST: u16 = 5;
/// dom0's packet buffer frames (a 64 KiB packet needs 16 frames, plus one for an offset).
const BUF_GFN: u64 = 0x8000;

fn udp_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x00, 0x16, 0x3e, 0, 0, 5, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 5, 10, 0, 0, 255]);
    f.extend_from_slice(&68u16.to_be_bytes());
    f.extend_from_slice(&67u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

#[test]
fn a_guest_packet_crosses_grant_copies_and_comes_back() {
    let x = FakeXen::new(4, 20);
    // The guest's packet, split as netfront splits it: 1000 bytes at the end of one page, the
    // rest in a second page.
    let pkt = udp_frame(&[0x5a; 2000]);
    let (a, b) = pkt.split_at(1000);
    let mut page1 = vec![0u8; 4096];
    page1[3096..].copy_from_slice(a);
    x.grant_page(GUEST, 20, &page1, true);
    x.grant_page(GUEST, 21, b, true);
    // Its TX ring.
    let mut tx_page = [0u8; 4096];
    tx_page.store_u32(RSP_EVENT, 1);
    let first = TxRequest {
        gref: 20,
        offset: 3096,
        flags: NETTXF_MORE_DATA | NETTXF_CSUM_BLANK | NETTXF_DATA_VALIDATED,
        id: 1,
        size: pkt.len() as u16,
    };
    let second = TxRequest {
        gref: 21,
        offset: 0,
        flags: 0,
        id: 2,
        size: b.len() as u16,
    };
    tx_page[64..76].copy_from_slice(&first.to_bytes());
    tx_page[76..88].copy_from_slice(&second.to_bytes());
    tx_page.store_u32(REQ_PROD, 2);

    let mut tx = BackRing::attach(&tx_page[..], TX_SLOT).unwrap();
    let p = next_packet(&mut tx, &tx_page[..]).unwrap().unwrap();
    // The plan becomes grant copies into dom0's buffer, split where the buffer's pages end.
    let mut copies = Vec::new();
    for c in &p.copies {
        let (mut src, mut dst, mut left) = (u32::from(c.offset), c.dst, u32::from(c.len));
        while left > 0 {
            let n = left.min(4096 - dst % 4096);
            copies.push(Copy {
                source: CopyPtr::Grant {
                    domid: GUEST,
                    gref: c.gref,
                    offset: src as u16,
                },
                dest: CopyPtr::Local {
                    gfn: BUF_GFN + u64::from(dst / 4096),
                    offset: (dst % 4096) as u16,
                },
                len: n as u16,
            });
            src += n;
            dst += n;
            left -= n;
        }
    }
    let mut st = vec![GrantStatus::OKAY; copies.len()];
    gnttab::copy(&x, &copies, &mut st).unwrap();
    assert!(st.iter().all(|s| s.ok()), "{st:?}");
    let mut got: Vec<u8> = (0..2).flat_map(|i| x.local_page(BUF_GFN + i)).collect();
    got.truncate(usize::from(p.len));
    assert_eq!(got, pkt);
    // Every slot answered OKAY.
    assert!(p.responses(true).iter().all(|r| r.status == NETIF_RSP_OKAY));
    // The checksum the guest left blank is completed.
    assert!(p.csum_blank);
    netback::csum::complete(&mut got).unwrap();
    assert_ne!(&got[40..42], &[0, 0]);

    // Through the switch (guest port → dom0 port, broadcast) and back to the guest's RX ring.
    let mut sw = Switch::new();
    let (guest_port, dom0_port) = (sw.add_port(), sw.add_port());
    assert_eq!(
        sw.forward(guest_port, &got, 0),
        Forward::To(vec![dom0_port])
    );
    let mut rxq = RxQueue::new();
    assert!(rxq.push(got.clone(), 0));
    x.grant_page(GUEST, 30, &[], false);
    let mut rx_page = [0u8; 4096];
    rx_page.store_u32(RSP_EVENT, 1);
    rx_page[64..72].copy_from_slice(&RxRequest { id: 7, gref: 30 }.to_bytes());
    rx_page.store_u32(REQ_PROD, 1);
    let mut rx = BackRing::attach(&rx_page[..], RX_SLOT).unwrap();
    let d = rxq.deliver(&mut rx, &rx_page[..]).unwrap();
    // dom0's copy of the packet sits in one frame here; copy it to the guest's buffer.
    let copies: Vec<Copy> = d
        .copies
        .iter()
        .map(|c| Copy {
            source: CopyPtr::Local {
                gfn: BUF_GFN,
                offset: c.src as u16,
            },
            dest: CopyPtr::Grant {
                domid: GUEST,
                gref: c.gref,
                offset: 0,
            },
            len: c.len,
        })
        .collect();
    let mut st = vec![GrantStatus::OKAY; copies.len()];
    gnttab::copy(&x, &copies, &mut st).unwrap();
    let ok: Vec<bool> = st.iter().map(|s| s.ok()).collect();
    let r = d.responses(&ok);
    let netback::rx::RxSlot::Response(r0) = r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(r0.status as usize, got.len());
    assert_eq!(r0.id, 7);
    // The first 2000-odd bytes are what dom0 held in its first frame (the whole packet).
    assert_eq!(
        &x.granted_page(GUEST, 30).unwrap()[..100],
        &x.local_page(BUF_GFN)[..100]
    );
}
