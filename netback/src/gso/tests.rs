use super::*;
use alloc::vec;

/// A TCP/IPv4 frame with `payload` bytes of data, flags `flags`, sequence 1000, IP id 7.
fn packet(payload: usize, flags: u8) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + 20 + payload];
    f[12] = 0x08;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&7u16.to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64;
    ip[9] = 6;
    ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 0, 2, 100]);
    let tcp = &mut f[34..54];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&9u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    for (i, b) in f[54..].iter_mut().enumerate() {
        *b = (i * 7 + i / 251) as u8;
    }
    f
}

/// Whether the IPv4 header and TCP checksums of `s` verify.
fn checksums_ok(s: &[u8]) -> bool {
    let ip_ok = fold(sum16(&s[14..34])) == 0xffff;
    let len = s.len() - 34;
    let pseudo = sum16(&s[26..34]) + 6 + len as u32;
    ip_ok && fold(pseudo + sum16(&s[34..])) == 0xffff
}

#[test]
fn a_large_packet_becomes_mss_sized_segments() {
    let payload = 5000;
    // PSH | ACK | FIN | CWR on the large packet.
    let p = packet(payload, 0x08 | 0x10 | 0x01 | 0x80);
    let segs = segment(&p, 1448).unwrap();
    assert_eq!(segs.len(), 4);
    let mut data = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        let n = if i < 3 { 1448 } else { payload - 3 * 1448 };
        assert_eq!(s.len(), 54 + n);
        assert_eq!(
            u16::from_be_bytes([s[16], s[17]]) as usize,
            40 + n,
            "IP total length"
        );
        assert_eq!(u16::from_be_bytes([s[18], s[19]]), 7 + i as u16, "IP id");
        let seq = u32::from_be_bytes([s[38], s[39], s[40], s[41]]);
        assert_eq!(seq, 1000 + (i * 1448) as u32);
        let f = s[47];
        assert_eq!(f & 0x10, 0x10, "ACK everywhere");
        assert_eq!(f & 0x09 != 0, i == 3, "FIN/PSH only on the last");
        assert_eq!(f & 0x80 != 0, i == 0, "CWR only on the first");
        assert!(checksums_ok(s), "segment {i}");
        data.extend_from_slice(&s[54..]);
    }
    assert_eq!(data, p[54..]);
}

#[test]
fn a_packet_within_the_mss_stays_one_frame_with_its_checksums() {
    let p = packet(100, 0x18);
    let segs = segment(&p, 1448).unwrap();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].len(), p.len());
    assert!(checksums_ok(&segs[0]));
    // No payload at all (a bare ACK marked GSO).
    assert_eq!(segment(&packet(0, 0x10), 1448).unwrap().len(), 1);
}

#[test]
fn hostile_packets_are_refused() {
    // A tiny MSS would make thousands of frames.
    let p = packet(60000, 0x10);
    assert_eq!(
        segment(&p, 1),
        Err(GsoError::TooManySegments {
            mss: 1,
            payload: 60000
        })
    );
    assert!(segment(&p, 536).is_ok());
    // An IP length beyond the packet, a TCP header beyond it, not TCP, a fragment.
    let mut q = packet(100, 0x10);
    q[16..18].copy_from_slice(&2000u16.to_be_bytes());
    assert_eq!(segment(&q, 1448), Err(GsoError::Truncated));
    let mut q = packet(0, 0x10);
    q[46] = 15 << 4;
    assert_eq!(segment(&q, 1448), Err(GsoError::Truncated));
    let mut q = packet(100, 0x10);
    q[23] = 17;
    assert_eq!(segment(&q, 1448), Err(GsoError::NotTcpIpv4));
    let mut q = packet(100, 0x10);
    q[20] = 0x20;
    assert_eq!(segment(&q, 1448), Err(GsoError::NotTcpIpv4));
    assert_eq!(segment(&q[..20], 1448), Err(GsoError::Truncated));
    assert_eq!(segment(&[], 1448), Err(GsoError::Truncated));
}

/// Random damage anywhere: never a panic, and what comes out is well-formed.
#[test]
fn random_damage_never_panics() {
    let base = packet(3000, 0x18);
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let mut p = base.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() % p.len() as u64) as usize;
            p[at] = next() as u8;
        }
        let cut = (next() % (p.len() as u64 + 1)) as usize;
        p.truncate(cut.max(p.len() / 2));
        let mss = (next() % 2000) as u16;
        if let Ok(segs) = segment(&p, mss) {
            assert!(segs.len() <= MAX_SEGMENTS);
            for s in &segs {
                assert!(s.len() <= p.len());
            }
        }
    }
}
