//! What a hostile DomU can make dom0 hold, measured with a counting allocator (this test
//! binary's global allocator, `counting`, counts per thread the bytes live and the peak).
//!
//! Every test here would fail on the service before issue 10: unbounded transaction change
//! lists, watch events built for every watch and change, output queues bounded only in
//! messages, no memory accounting at all.

use toolstack::xenstore::account::{DOM0_SLACK, output_reserve, request_bound};
use toolstack::xenstore::{
    Access, DomId, Message, MsgType, Perms, Quota, RingPage, Server, Store, XENSTORE_RING_SIZE,
    ring_layout as L,
};

mod counting;
use counting::live;

/// Run `f`; the most bytes live above the level before it.
fn peak_of(f: impl FnOnce()) -> i64 {
    counting::peak_of(f).1
}

/// A guest's side of its ring page.
struct Guest {
    page: Box<[u8; 4096]>,
    prod: u32,
}

impl Guest {
    fn new() -> Guest {
        Guest {
            page: Box::new([0; 4096]),
            prod: 0,
        }
    }

    /// Put as much of `m` as fits; returns whether all of it went in.
    fn send(&mut self, m: &[u8]) -> bool {
        let cons = self.page[..].load_u32(L::REQ_CONS);
        if (XENSTORE_RING_SIZE - self.prod.wrapping_sub(cons)) < m.len() as u32 {
            return false;
        }
        for &b in m {
            self.page[L::REQ + (self.prod % XENSTORE_RING_SIZE) as usize] = b;
            self.prod = self.prod.wrapping_add(1);
        }
        self.page[..].store_u32(L::REQ_PROD, self.prod);
        true
    }

    /// Consume every reply (a guest that reads).
    fn drain(&mut self) {
        let p = self.page[..].load_u32(L::RSP_PROD);
        self.page[..].store_u32(L::RSP_CONS, p);
    }
}

fn req(ty: MsgType, tx: u32, args: &[&[u8]]) -> Vec<u8> {
    Message::request(ty, 0, tx, args).encode()
}

fn write(tx: u32, path: &str, value: &[u8]) -> Vec<u8> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(value);
    Message::new(MsgType::Write, 0, tx, p).encode()
}

fn server(q: Quota) -> Server {
    let mut s = Server::new(Store::new(q));
    for d in 1..=8u16 {
        introduce(&mut s, d);
    }
    s
}

fn introduce(s: &mut Server, d: DomId) {
    let ds = d.to_string();
    let r = s.local(&Message::request(
        MsgType::Introduce,
        0,
        0,
        &[ds.as_bytes(), b"1", b"1"],
    ));
    assert_eq!(r[0].payload, b"OK\0");
    let home = format!("/local/domain/{d}");
    s.store.write(&home, b"").unwrap();
    s.store
        .set_perms(&home, &Perms::new(d, Access::None))
        .unwrap();
    let _ = s.take_local();
}

/// Send `n` requests made by `next` (streamed through the ring in pieces, as a guest
/// does), serving `d` in between; stop early if the server stops reading them.
fn flood(
    s: &mut Server,
    g: &mut Guest,
    d: DomId,
    n: usize,
    reads: bool,
    mut next: impl FnMut(usize) -> Vec<u8>,
) {
    let mut buf: Vec<u8> = Vec::new();
    let mut i = 0;
    let mut stalled = 0;
    while (i < n || !buf.is_empty()) && stalled < 3 {
        if buf.is_empty() {
            buf = next(i);
            i += 1;
        }
        let cons = g.page[..].load_u32(L::REQ_CONS);
        let free = (XENSTORE_RING_SIZE - g.prod.wrapping_sub(cons)) as usize;
        let k = free.min(buf.len());
        assert!(g.send(&buf[..k]));
        buf.drain(..k);
        s.service(d, &mut g.page[..]).unwrap();
        if reads {
            g.drain();
        }
        stalled = if k == 0 { stalled + 1 } else { 0 };
    }
    s.service(d, &mut g.page[..]).unwrap();
    if reads {
        g.drain();
    }
}

/// Every quota respected, every request the worst it can be: a DomU still cannot make dom0
/// hold more than its limit, and once it is released dom0 holds nothing for it.
#[test]
fn hostile_domu_within_quotas_cannot_exceed_its_limit() {
    let q = Quota::default();
    let limit = q.max_bytes as i64;
    let mut s = server(q.clone());
    let mut g = Guest::new();
    let before = live();
    // Long paths with long values, many of them (until the node or memory quota says no).
    let deep = "x".repeat(200);
    flood(&mut s, &mut g, 1, 1200, true, |i| {
        write(
            0,
            &format!("{deep}/{i}/{deep}"),
            &[b'v'; 2048][..(2048 - i % 7)],
        )
    });
    // Watches with the longest tokens, transactions staging big values, never committed.
    flood(&mut s, &mut g, 1, 130, true, |i| {
        req(
            MsgType::Watch,
            0,
            &[
                format!("w{i}/{deep}").as_bytes(),
                "t".repeat(900).as_bytes(),
            ],
        )
    });
    for t in 1..=12u32 {
        flood(&mut s, &mut g, 1, 1, true, |_| {
            req(MsgType::TransactionStart, 0, &[b""])
        });
        flood(&mut s, &mut g, 1, 300, true, |i| {
            write(t, &format!("tx/{deep}/{i}"), &[b'y'; 2048])
        });
    }
    // Then it stops reading its replies and keeps asking for big ones.
    flood(&mut s, &mut g, 1, 500, false, |_| {
        req(MsgType::Read, 0, &[format!("{deep}/1/{deep}").as_bytes()])
    });
    s.sample_all();
    let held = live() - before;
    let st = s.stats(1);
    println!(
        "domain 1: dom0 holds {held} bytes, charged {} (peak {}), limit {limit}, refused {:?}",
        st.bytes,
        st.peak_bytes,
        st.refusals.lines()
    );
    assert!(st.refusals.requests() > 0, "the quotas were reached");
    assert!(
        held <= st.bytes as i64,
        "charges under-count: held {held}, charged {}",
        st.bytes
    );
    assert!(st.bytes as i64 <= limit && st.peak_bytes as i64 <= limit);
    s.store.check_accounting().unwrap();
    // Released: nothing stays charged, and dom0's heap is back where it was.
    let r = s.local(&Message::request(MsgType::Release, 0, 0, &[b"1"]));
    assert_eq!(r[0].payload, b"OK\0");
    let r = s.local(&Message::request(MsgType::Rm, 0, 0, &[b"/local/domain/1"]));
    assert_eq!(r[0].payload, b"OK\0");
    let _ = s.take_domain_events();
    assert_eq!(s.charged(1), 0);
    let after = live() - before;
    assert!(
        after < 4096,
        "{after} bytes left behind for a released domain"
    );
}

/// Eight DomUs each with 128 watches on what one DomU changes in a 1,000-node transaction:
/// its TRANSACTION_END allocates at most the documented bound plus the receivers' free
/// output room (events beyond that room are never built).
#[test]
fn one_commit_with_many_watches_and_changes_stays_under_the_documented_peak() {
    let q = Quota::default();
    let mut s = server(q.clone());
    let mut gs: Vec<Guest> = (0..=8).map(|_| Guest::new()).collect();
    s.local(&Message::request(MsgType::Write, 0, 0, &[b"/shared"]));
    s.store
        .set_perms("/shared", &Perms::new(1, Access::Read))
        .unwrap();
    for d in 1..=8u16 {
        flood(&mut s, &mut gs[d as usize], d, 129, true, |i| {
            req(
                MsgType::Watch,
                0,
                &[b"/shared", format!("token-{i:0>40}").as_bytes()],
            )
        });
        assert_eq!(
            s.store.stats(d).refusals.requests(),
            1,
            "128 watches, then one E2BIG"
        );
    }
    let g = &mut gs[1];
    flood(&mut s, g, 1, 1, true, |_| {
        req(MsgType::TransactionStart, 0, &[b""])
    });
    flood(&mut s, g, 1, 990, true, |i| {
        write(1, &format!("/shared/n{i}"), b"value")
    });
    let receivers = 8u64;
    let room = receivers * q.max_output_bytes as u64;
    let bound = request_bound(&q) + room;
    g.send(&req(MsgType::TransactionEnd, 1, &[b"T"]));
    let peak = peak_of(|| {
        s.service(1, &mut g.page[..]).unwrap();
    });
    println!(
        "TRANSACTION_END of 990 nodes seen by 8 x 128 watches: peak {peak} bytes, bound {bound}"
    );
    assert!(peak as u64 <= bound, "peak {peak} > bound {bound}");
    // The commit happened, and each receiver got events only up to its room.
    assert_eq!(
        s.store.call(0, MsgType::Read, &[b"/shared/n5"]).unwrap(),
        b"value"
    );
    for d in 1..=8u16 {
        let c = s.connection(d).unwrap();
        assert!(c.pending_bytes() <= q.max_output_bytes);
        assert!(c.dropped_events() > 0);
    }
    s.store.check_accounting().unwrap();
}

/// A node written 5,000 times in one transaction is one staged change: the transaction's
/// charge does not grow, and the commit fires its watch once.
#[test]
fn repeated_writes_in_a_transaction_are_one_change() {
    let mut st = Store::default();
    st.call(0, MsgType::Introduce, &[b"1", b"1", b"1"]).unwrap();
    st.write("/local/domain/1", b"").unwrap();
    st.set_perms("/local/domain/1", &Perms::new(1, Access::None))
        .unwrap();
    st.call(1, MsgType::Watch, &[b"k", b"w"]).unwrap();
    let t: u32 = String::from_utf8(st.call(1, MsgType::TransactionStart, &[b""]).unwrap())
        .unwrap()
        .trim_end_matches('\0')
        .parse()
        .unwrap();
    let w = |st: &mut Store, i: usize| {
        let mut p = b"k\0".to_vec();
        p.extend_from_slice(format!("{:04}", i % 10000).as_bytes());
        let r = st.handle(1, &Message::new(MsgType::Write, 0, t, p));
        assert_eq!(r[0].msg.payload, b"OK\0");
    };
    w(&mut st, 0);
    let charged = st.charged(1);
    let held = live();
    for i in 1..5000 {
        w(&mut st, i);
    }
    assert_eq!(st.charged(1), charged);
    assert!(
        live() - held < 1024,
        "staging 5,000 writes to one node grew dom0's heap"
    );
    let r = st.handle(1, &Message::request(MsgType::TransactionEnd, 0, t, &[b"T"]));
    assert_eq!(r[0].msg.payload, b"OK\0");
    assert_eq!(r.len(), 2, "one event for one changed node: {r:?}");
    assert_eq!(st.call(1, MsgType::Read, &[b"k"]).unwrap(), b"4999");
}

/// A guest that never reads its responses: dom0 queues at most `max_output_bytes` (plus one
/// reply) for it, and its further requests stay in its own ring.
#[test]
fn unread_replies_are_bounded_in_bytes() {
    let q = Quota::default();
    let mut s = server(q.clone());
    let mut g = Guest::new();
    flood(&mut s, &mut g, 1, 1, true, |_| {
        write(0, "big", &[b'b'; 2048])
    });
    let before = live();
    flood(&mut s, &mut g, 1, 500, false, |_| {
        req(MsgType::Read, 0, &[b"big"])
    });
    let c = s.connection(1).unwrap();
    let held = live() - before;
    println!(
        "unread replies: {} queued ({} bytes), dom0 holds {held} more bytes",
        c.pending(),
        c.pending_bytes()
    );
    assert!(c.pending_bytes() <= q.max_output_bytes + 4112);
    assert!(c.pending() <= q.max_outstanding);
    assert!(held as u64 <= output_reserve(q.max_output_bytes, q.max_pending));
    // The rest of its requests wait in its ring.
    let cons = g.page[..].load_u32(L::REQ_CONS);
    assert_ne!(cons, g.prod, "requests were left in the ring");
    assert!(c.held() > 0);
    assert!(s.stats(1).bytes <= q.max_bytes);
    // Once it reads, it is served again (a 2 KiB reply takes three passes of a 1 KiB ring).
    for _ in 0..4 {
        g.drain();
        s.service(1, &mut g.page[..]).unwrap();
    }
    assert_ne!(g.page[..].load_u32(L::REQ_CONS), cons);
}

/// The peak allocation of the worst single requests a DomU can send, each within quotas.
#[test]
fn worst_single_request_peak() {
    let q = Quota::default();
    let mut s = server(q.clone());
    let mut g = Guest::new();
    let deep = (0..60)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join("/");
    let long = "z".repeat(1900);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "WRITE 2 KiB value, 60 missing parents",
            write(0, &deep, &[b'v'; 2048]),
        ),
        (
            "WRITE 2 KiB at a 2 KiB path",
            write(0, &long, &[b'v'; 2048]),
        ),
        (
            "WATCH with a 1 KiB token",
            req(MsgType::Watch, 0, &[b"w", &[b't'; 1000]]),
        ),
        (
            "DIRECTORY of 60 levels",
            req(MsgType::Directory, 0, &[b"c0"]),
        ),
        ("GET_PERMS", req(MsgType::GetPerms, 0, &[long.as_bytes()])),
        (
            "SET_PERMS 5 entries",
            req(
                MsgType::SetPerms,
                0,
                &[b"c0", b"n1", b"r2", b"r3", b"r4", b"r5"],
            ),
        ),
        ("RM of 60 levels", req(MsgType::Rm, 0, &[b"c0"])),
    ];
    let mut worst = 0i64;
    for (name, m) in cases {
        let p = peak_of(|| {
            // The message goes through the ring in pieces: send what fits, serve, repeat.
            let mut off = 0;
            while off < m.len() {
                let n = (m.len() - off).min(1000);
                assert!(g.send(&m[off..off + n]));
                off += n;
                s.service(1, &mut g.page[..]).unwrap();
            }
            g.drain();
        });
        println!("{name}: peak {p} bytes");
        worst = worst.max(p);
    }
    // TRANSACTION_END of (nearly) the most nodes a transaction may stage, no watchers.
    let mut s = server(q.clone());
    let mut g = Guest::new();
    flood(&mut s, &mut g, 1, 1, true, |_| {
        req(MsgType::TransactionStart, 0, &[b""])
    });
    flood(&mut s, &mut g, 1, 999, true, |i| {
        write(1, &format!("n{i}"), &[b'v'; 100])
    });
    g.send(&req(MsgType::TransactionEnd, 1, &[b"T"]));
    let p = peak_of(|| {
        s.service(1, &mut g.page[..]).unwrap();
    });
    let n = s.store.call(0, MsgType::Read, &[b"/local/domain/1/n998"]);
    assert_eq!(n.unwrap().len(), 100, "committed");
    println!("TRANSACTION_END of 999 staged nodes: peak {p} bytes");
    worst = worst.max(p);
    println!(
        "worst single request: {worst} bytes (bound {})",
        request_bound(&q)
    );
    assert!(worst as u64 <= request_bound(&q));
    assert!(q.max_bytes > DOM0_SLACK);
}
