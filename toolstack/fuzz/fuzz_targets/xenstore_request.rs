//! A guest's xenstore request stream, as hostile as the fuzzer makes it: parsed as one message,
//! then pushed through a ring connection of an introduced domain in slices of the fuzzer's
//! choosing. The store must never panic, its invariants must hold after every batch, every
//! index the server writes must stay within the ring, and the memory accounting must hold:
//! every charge recomputed from scratch matches, the domain is charged at most its limit,
//! its output queue stays within its byte bound (the guest reads its replies or not, as the
//! fuzzer decides), and once released nothing stays charged to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolstack::xenstore::{
    HEADER_LEN, Message, MsgType, Quota, RingPage, Server, Store, XENSTORE_PAYLOAD_MAX,
    XENSTORE_RING_SIZE, ring_layout as L,
};

fuzz_target!(|data: &[u8]| {
    let _ = Message::parse(data);

    let mut s = Server::new(Store::new(Quota::default()));
    let _ = s.local(&Message::request(
        MsgType::Introduce,
        0,
        0,
        &[b"1", b"4096", b"5"],
    ));
    // Its home, owned by it, so its writes, watches and transactions reach the quotas.
    let _ = s.local(&Message::request(
        MsgType::Mkdir,
        0,
        0,
        &[b"/local/domain/1"],
    ));
    let _ = s.local(&Message::request(
        MsgType::SetPerms,
        0,
        0,
        &[b"/local/domain/1", b"n1"],
    ));
    let mut page = [0u8; 4096];
    let mut prod: u32 = 0;
    // The first byte picks the chunk size, so the fuzzer explores split messages; its top
    // bit makes a guest that never reads its replies.
    let first = data.first().copied().unwrap_or(0);
    let chunk = usize::from(first & 0x7f).clamp(1, 127) * 2;
    let reads = first & 0x80 == 0;
    let q = s.store.quota().clone();
    for piece in data.get(1..).unwrap_or(&[]).chunks(chunk) {
        let cons = page[..].load_u32(L::REQ_CONS);
        for &b in piece {
            // A guest writes only into free space (bytes beyond it are dropped here).
            if prod.wrapping_sub(cons) >= XENSTORE_RING_SIZE {
                break;
            }
            page[L::REQ + (prod % XENSTORE_RING_SIZE) as usize] = b;
            prod = prod.wrapping_add(1);
        }
        page[..].store_u32(L::REQ_PROD, prod);
        if s.service(1, &mut page[..]).is_err() {
            break; // connection marked broken: the rest is ignored, as it should be
        }
        let cons = page[..].load_u32(L::REQ_CONS);
        assert!(prod.wrapping_sub(cons) <= XENSTORE_RING_SIZE);
        let rp = page[..].load_u32(L::RSP_PROD);
        assert!(rp.wrapping_sub(page[..].load_u32(L::RSP_CONS)) <= XENSTORE_RING_SIZE);
        if reads {
            page[..].store_u32(L::RSP_CONS, rp);
        }
        s.store
            .check_accounting()
            .expect("store and accounting invariants");
        assert!(s.charged(1) <= q.max_bytes, "over the per-domain limit");
        if let Some(c) = s.connection(1) {
            assert!(c.pending_bytes() <= q.max_output_bytes + HEADER_LEN + XENSTORE_PAYLOAD_MAX);
        }
    }
    let _ = s.local(&Message::request(MsgType::Release, 0, 0, &[b"1"]));
    assert_eq!(s.charged(1), 0, "a released domain is charged nothing");
    s.store
        .check_accounting()
        .expect("accounting after release");
});
