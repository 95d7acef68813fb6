//! Checksums against values computed independently (RFC 1071, by a separate implementation
//! when the vectors were made), the verification property on every packet, and hostile frames.

use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn eth(ethertype: u16) -> Vec<u8> {
    let mut f = vec![0x00, 0x16, 0x3e, 0, 0, 2, 0x00, 0x16, 0x3e, 0, 0, 1];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(0x0800);
    let total = (20 + l4.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(l4);
    f
}

fn udp(sport: u16, dport: u16, payload: &[u8], partial: u16) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&partial.to_be_bytes());
    u.extend_from_slice(payload);
    u
}

/// The receiver's check: the one's-complement sum over pseudo-header and segment is 0xffff.
fn verifies(frame: &[u8]) -> bool {
    let (pseudo, l4) = if frame[12..14] == [0x08, 0x00] {
        let ip = &frame[14..34];
        let len = u16::from_be_bytes([ip[2], ip[3]]) as usize - 20;
        (
            sum16(&ip[12..20]) + u32::from(ip[9]) + len as u32,
            &frame[34..34 + len],
        )
    } else {
        let ip = &frame[14..54];
        let len = u16::from_be_bytes([ip[4], ip[5]]) as usize;
        (
            sum16(&ip[8..40]) + u32::from(ip[6]) + len as u32,
            &frame[54..54 + len],
        )
    };
    fold(pseudo + sum16(l4)) == 0xffff
}

#[test]
fn udp_over_ipv4_matches_the_reference() {
    // The guest left the pseudo-header sum (any value) in the field: it is replaced.
    let mut f = ipv4(17, &udp(1234, 7, b"hello", 0x1234));
    complete(&mut f).unwrap();
    assert_eq!(&f[40..42], &0xa326u16.to_be_bytes());
    assert!(verifies(&f));
}

#[test]
fn tcp_over_ipv4_matches_the_reference() {
    let mut tcp = Vec::new();
    tcp.extend_from_slice(&40000u16.to_be_bytes());
    tcp.extend_from_slice(&80u16.to_be_bytes());
    tcp.extend_from_slice(&1u32.to_be_bytes());
    tcp.extend_from_slice(&0u32.to_be_bytes());
    tcp.extend_from_slice(&[5 << 4, 0x02, 0xff, 0xff, 0xab, 0xcd, 0, 0]);
    let mut f = ipv4(6, &tcp);
    complete(&mut f).unwrap();
    assert_eq!(&f[50..52], &0xff4eu16.to_be_bytes());
    assert!(verifies(&f));
}

#[test]
fn udp_over_ipv6_and_behind_a_vlan_tag() {
    let mut f = eth(0x86dd);
    let u = udp(5353, 5353, b"abc", 0);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(u.len() as u16).to_be_bytes());
    f.extend_from_slice(&[17, 255]);
    f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&u);
    complete(&mut f).unwrap();
    assert_eq!(&f[60..62], &0x149fu16.to_be_bytes());
    // The same IPv4 packet behind an 802.1Q tag gets the same checksum.
    let plain = ipv4(17, &udp(1234, 7, b"hello", 0));
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    tagged.extend_from_slice(&plain[12..]);
    complete(&mut tagged).unwrap();
    assert_eq!(&tagged[44..46], &0xa326u16.to_be_bytes());
}

#[test]
fn odd_lengths_and_many_sizes_verify() {
    for n in 0..300usize {
        let payload: Vec<u8> = (0..n).map(|i| (i * 7 + n) as u8).collect();
        let mut f = ipv4(17, &udp(1, 2, &payload, 0xffff));
        complete(&mut f).unwrap();
        assert!(verifies(&f), "{n}");
        assert_ne!(&f[40..42], &[0, 0], "UDP never sends a zero checksum");
    }
}

#[test]
fn what_cannot_be_parsed_is_refused() {
    assert_eq!(complete(&mut [0u8; 10]), Err(CsumError::Truncated));
    assert_eq!(complete(&mut eth(0x0806)), Err(CsumError::NotIp(0x0806)));
    let mut icmp = ipv4(1, &[8, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(complete(&mut icmp), Err(CsumError::NotTcpUdp(1)));
    let mut frag = ipv4(17, &udp(1, 2, b"x", 0));
    frag[20] = 0x20; // more fragments
    assert_eq!(complete(&mut frag), Err(CsumError::Fragment));
    let mut short = ipv4(17, &udp(1, 2, b"hello", 0));
    short.truncate(40);
    assert_eq!(complete(&mut short), Err(CsumError::Truncated));
    let mut bad = ipv4(17, &udp(1, 2, b"x", 0));
    bad[14] = 0x44; // IHL 4: 16 bytes
    assert_eq!(complete(&mut bad), Err(CsumError::BadIpHeader));
    let mut tiny_udp = ipv4(17, &[0, 1, 0, 2]);
    assert_eq!(complete(&mut tiny_udp), Err(CsumError::Truncated));
}

#[test]
fn random_frames_never_panic() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let base = ipv4(6, &[0u8; 40]);
    for _ in 0..20_000 {
        let mut f = base.clone();
        for _ in 0..6 {
            let at = next() as usize % f.len();
            f[at] = next() as u8;
        }
        f.truncate(next() as usize % (f.len() + 1));
        let _ = complete(&mut f);
    }
}
