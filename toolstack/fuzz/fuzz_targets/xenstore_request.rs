//! A guest's xenstore request stream, as hostile as the fuzzer makes it: parsed as one message,
//! then pushed through a ring connection of an introduced domain in slices of the fuzzer's
//! choosing. The store must never panic, its invariants must hold after every batch, and every
//! index the server writes must stay within the ring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use toolstack::xenstore::{
    Message, MsgType, Quota, RingPage, Server, Store, XENSTORE_RING_SIZE, ring_layout as L,
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
    let mut page = [0u8; 4096];
    let mut prod: u32 = 0;
    // The first byte picks the chunk size, so the fuzzer explores split messages.
    let chunk = usize::from(data.first().copied().unwrap_or(0)).clamp(1, 255);
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
        // The guest reads every reply.
        let rp = page[..].load_u32(L::RSP_PROD);
        assert!(rp.wrapping_sub(page[..].load_u32(L::RSP_CONS)) <= XENSTORE_RING_SIZE);
        page[..].store_u32(L::RSP_CONS, rp);
        s.store.check().expect("store invariants");
    }
});
