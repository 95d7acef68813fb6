//! Host benchmark of the xenstore service: requests per second for a mixed
//! read/write/directory workload, straight into `Store::handle` and through a ring page.
//!
//! `cargo bench -p toolstack --bench xenstore`

use std::hint::black_box;
use std::time::Instant;

use toolstack::xenstore::{Access, Message, MsgType, Perms, RingPage, Server, Store, ring_layout};

const DOMAINS: u16 = 50;
const KEYS: usize = 20;

fn populate(st: &mut Store) {
    for d in 1..=DOMAINS {
        let ds = d.to_string();
        st.call(0, MsgType::Introduce, &[ds.as_bytes(), b"1", b"1"])
            .unwrap();
        let home = format!("/local/domain/{d}");
        st.write(&home, b"").unwrap();
        st.set_perms(&home, &Perms::new(d, Access::None)).unwrap();
        for k in 0..KEYS {
            st.write(&format!("{home}/device/vif/{k}/state"), b"4")
                .unwrap();
        }
    }
}

/// The workload: 60% read, 25% write, 15% directory, from the guests on their own trees.
fn request(i: usize) -> (u16, Message) {
    let d = (i % DOMAINS as usize) as u16 + 1;
    let k = (i / 7) % KEYS;
    let m = match i % 20 {
        0..=11 => Message::request(
            MsgType::Read,
            i as u32,
            0,
            &[format!("device/vif/{k}/state").as_bytes()],
        ),
        12..=16 => {
            let mut p = format!("device/vif/{k}/state\0").into_bytes();
            p.extend_from_slice(if i.is_multiple_of(2) { b"4" } else { b"5" });
            Message::new(MsgType::Write, i as u32, 0, p)
        }
        _ => Message::request(MsgType::Directory, i as u32, 0, &[b"device/vif"]),
    };
    (d, m)
}

fn bench_store(n: usize) -> (f64, usize) {
    let mut st = Store::default();
    populate(&mut st);
    // A few watchers so writes produce events, as netback/netfront do.
    for d in 1..=DOMAINS {
        st.call(d, MsgType::Watch, &[b"device/vif/0", b"w"])
            .unwrap();
    }
    let reqs: Vec<_> = (0..4096).map(request).collect();
    let t = Instant::now();
    let mut replies = 0usize;
    for i in 0..n {
        let (d, m) = &reqs[i % reqs.len()];
        replies += black_box(st.handle(*d, m)).len();
    }
    let s = t.elapsed().as_secs_f64();
    assert!(replies >= n);
    (n as f64 / s, st.node_count())
}

fn bench_ring(n: usize) -> f64 {
    let mut store = Store::default();
    populate(&mut store);
    let mut srv = Server::new(store);
    for d in 1..=DOMAINS {
        srv.connect(d);
    }
    let mut page = [0u8; 4096];
    let reqs: Vec<Vec<u8>> = (0..4096)
        .map(|i| {
            let (_, m) = request(i);
            m.encode()
        })
        .collect();
    let t = Instant::now();
    let mut done = 0usize;
    let mut next = 0usize;
    while done < n {
        // Guest: fill the request ring.
        let cons = page.load_u32(ring_layout::REQ_CONS);
        let mut prod = page.load_u32(ring_layout::REQ_PROD);
        loop {
            let m = &reqs[next % reqs.len()];
            if 1024 - prod.wrapping_sub(cons) < m.len() as u32 {
                break;
            }
            for b in m {
                page[(prod & 1023) as usize] = *b;
                prod = prod.wrapping_add(1);
            }
            next += 1;
        }
        page.store_u32(ring_layout::REQ_PROD, prod);
        srv.service(1, &mut page).unwrap();
        // Guest: drain responses.
        let rp = page.load_u32(ring_layout::RSP_PROD);
        let mut rc = page.load_u32(ring_layout::RSP_CONS);
        while rc != rp {
            black_box(page[ring_layout::RSP + (rc & 1023) as usize]);
            rc = rc.wrapping_add(1);
        }
        page.store_u32(ring_layout::RSP_CONS, rc);
        done = next;
    }
    let s = t.elapsed().as_secs_f64();
    n as f64 / s
}

fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(1_000_000);
    let (rate, nodes) = bench_store(n);
    println!(
        "xenstore Store::handle, mixed 60/25/15 read/write/directory, {nodes} nodes: {rate:.0} req/s"
    );
    let r = bench_ring(n / 2);
    println!("xenstore through one ring page (parse + handle + reply copy): {r:.0} req/s");
}
