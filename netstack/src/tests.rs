//! A client smoltcp stack talks to dom0's stack frame by frame (no network in between but
//! the frames themselves): ARP, ping, TCP echo and discard, HTTP.

use super::*;
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint};

const DOM0: [u8; 4] = [10, 0, 0, 254];

struct Client {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Frames,
}

fn client() -> Client {
    let mut dev = Frames::default();
    let config = Config::new(HardwareAddress::Ethernet(EthernetAddress([
        0, 0x16, 0x3e, 0, 0, 1,
    ])));
    let mut iface = Interface::new(config, &mut dev, Instant::from_millis(0));
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(Ipv4Address::new(10, 0, 0, 1).into(), 24));
    });
    Client {
        iface,
        sockets: SocketSet::new(Vec::new()),
        dev,
    }
}

fn pages(path: &str) -> Option<(&'static str, Vec<u8>)> {
    match path {
        "/report.json" => Some(("application/json", br#"{"report_version":1}"#.to_vec())),
        "/" => Some(("text/plain", vec![b'x'; 40_000])),
        _ => None,
    }
}

/// Move frames both ways for `steps` milliseconds.
fn pump(s: &mut Stack, c: &mut Client, now: &mut i64, steps: usize) {
    for _ in 0..steps {
        c.iface
            .poll(Instant::from_millis(*now), &mut c.dev, &mut c.sockets);
        for f in c.dev.tx.drain(..) {
            s.input(f);
        }
        for f in s.poll(*now, &mut pages) {
            c.dev.rx.push_back(f);
        }
        *now += 1;
    }
}

fn stack() -> Stack {
    Stack::new([0, 0x16, 0x3e, 0, 0, 0xfe], DOM0, 24, 0)
}

/// Connect a client TCP socket to dom0's `port`, send `data`, half-close, and return what
/// came back before dom0 closed.
fn tcp_exchange(port: u16, data: &[u8]) -> (Vec<u8>, Stack) {
    let mut s = stack();
    let mut c = client();
    let h = c.sockets.add(tcp_socket(65536, 65536));
    let mut now = 0;
    {
        let sock = c.sockets.get_mut::<tcp::Socket<'_>>(h);
        let cx = c.iface.context();
        sock.connect(cx, (Ipv4Address::from(DOM0), port), 49152)
            .unwrap();
    }
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..5000 {
        pump(&mut s, &mut c, &mut now, 1);
        let sock = c.sockets.get_mut::<tcp::Socket<'_>>(h);
        if sock.can_send() && sent < data.len() {
            sent += sock.send_slice(&data[sent..]).unwrap();
            if sent == data.len() {
                sock.close();
            }
        }
        while sock.can_recv() {
            sock.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        if sent == data.len() && !sock.is_open() {
            break;
        }
        if sent == data.len() && sock.state() == tcp::State::TimeWait {
            break;
        }
    }
    (got, s)
}

#[test]
fn it_answers_ping() {
    let mut s = stack();
    let mut c = client();
    let h = c.sockets.add(icmp::Socket::new(
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
        icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
    ));
    c.sockets
        .get_mut::<icmp::Socket<'_>>(h)
        .bind(icmp::Endpoint::Ident(0x1234))
        .unwrap();
    let repr = Icmpv4Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 1,
        data: b"ping from a DomU",
    };
    let mut now = 0;
    let mut replied = false;
    for i in 0..200 {
        let sock = c.sockets.get_mut::<icmp::Socket<'_>>(h);
        if i == 0 || (i % 50 == 0 && !replied) {
            let buf = sock
                .send(repr.buffer_len(), IpAddress::v4(10, 0, 0, 254))
                .unwrap();
            let mut p = Icmpv4Packet::new_unchecked(buf);
            repr.emit(&mut p, &smoltcp::phy::ChecksumCapabilities::default());
        }
        if sock.can_recv() {
            let (payload, from) = sock.recv().unwrap();
            let p = Icmpv4Packet::new_checked(payload).unwrap();
            assert_eq!(from, IpAddress::v4(10, 0, 0, 254));
            assert_eq!(p.echo_seq_no(), 1);
            assert_eq!(p.data(), b"ping from a DomU");
            replied = true;
            break;
        }
        pump(&mut s, &mut c, &mut now, 1);
    }
    assert!(replied, "no echo reply; {:?}", s.counters);
    assert!(
        s.counters.frames_in >= 2 && s.counters.frames_out >= 2,
        "ARP and ICMP"
    );
}

#[test]
fn tcp_echo_returns_what_it_gets_and_discard_eats_it() {
    let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
    let (got, s) = tcp_exchange(ECHO_PORT, &data);
    assert_eq!(got, data);
    assert_eq!(s.counters.echo_bytes, data.len() as u64);
    let big = vec![0x5a; 100_000];
    let (got, s) = tcp_exchange(DISCARD_PORT, &big);
    assert!(got.is_empty());
    assert_eq!(s.counters.discard_bytes, big.len() as u64);
}

#[test]
fn http_serves_the_report_and_refuses_the_rest() {
    let (got, s) = tcp_exchange(
        HTTP_PORT,
        b"GET /report.json HTTP/1.0\r\nHost: dom0\r\n\r\n",
    );
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Type: application/json\r\n"));
    assert!(text.ends_with("\r\n\r\n{\"report_version\":1}"), "{text}");
    assert_eq!(s.counters.http_requests, 1);
    // A body larger than the send buffer is streamed whole.
    let (got, _) = tcp_exchange(HTTP_PORT, b"GET / HTTP/1.0\r\n\r\n");
    let body_at = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - body_at, 40_000);
    assert!(String::from_utf8_lossy(&got[..body_at]).contains("Content-Length: 40000"));
    // Unknown paths, other methods, over-long heads.
    let (got, _) = tcp_exchange(HTTP_PORT, b"GET /etc/passwd HTTP/1.0\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.0 404 Not Found"));
    let (got, _) = tcp_exchange(HTTP_PORT, b"POST / HTTP/1.0\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.0 405"));
    let mut long = b"GET / HTTP/1.0\r\nX: ".to_vec();
    long.extend(vec![b'a'; 5000]);
    let (got, _) = tcp_exchange(HTTP_PORT, &long);
    assert!(
        got.starts_with(b"HTTP/1.0 431"),
        "{}",
        String::from_utf8_lossy(&got[..40.min(got.len())])
    );
}

/// Requests one after the other on one stack, each client keeping its end open until dom0
/// has sent everything and closed (as `nc` with its input held open does): dom0 closes
/// first, so its socket passes through TIME-WAIT.
#[test]
fn http_serves_more_requests_than_sockets_in_a_row() {
    let mut s = stack();
    let mut c = client();
    let mut now = 0;
    for i in 0..(HTTP_SOCKETS as u16 * 3) {
        let h = c.sockets.add(tcp_socket(65536, 4096));
        {
            let sock = c.sockets.get_mut::<tcp::Socket<'_>>(h);
            let cx = c.iface.context();
            sock.connect(cx, (Ipv4Address::from(DOM0), HTTP_PORT), 50000 + i)
                .unwrap();
        }
        let mut asked = false;
        let mut got = Vec::new();
        for _ in 0..2000 {
            pump(&mut s, &mut c, &mut now, 1);
            let sock = c.sockets.get_mut::<tcp::Socket<'_>>(h);
            if sock.can_send() && !asked {
                sock.send_slice(b"GET /report.json HTTP/1.0\r\n\r\n")
                    .unwrap();
                asked = true;
            }
            while sock.can_recv() {
                sock.recv(|b| {
                    got.extend_from_slice(b);
                    (b.len(), ())
                })
                .unwrap();
            }
            // dom0 closed (its FIN came): close this end too, and move on once done.
            if sock.state() == tcp::State::CloseWait {
                sock.close();
            }
            if asked && sock.state() == tcp::State::Closed {
                break;
            }
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.0 200 OK"), "request {i}: {text:?}");
        c.sockets.remove(h);
    }
    assert_eq!(s.counters.http_requests, u64::from(HTTP_SOCKETS as u16 * 3));
    // Every request within well under TIME-WAIT's 10 s.
    assert!(now < 10_000, "{now} ms");
}

#[test]
fn a_flood_is_bounded_and_counted() {
    let mut s = stack();
    for _ in 0..MAX_QUEUED + 10 {
        s.input(vec![0xff; 60]);
    }
    assert_eq!(s.counters.dropped, 10);
    // Garbage frames are dropped by smoltcp without replies.
    assert!(s.poll(0, &mut pages).is_empty());
    let _ = IpEndpoint::new(IpAddress::v4(10, 0, 0, 1), 1);
}

/// A DHCP server that knows one answer: parses a client's DISCOVER or REQUEST (broadcast, UDP
/// 68 → 67) and answers OFFER or ACK for `offer`, from 10.0.2.2 (QEMU user networking's
/// layout). Anything else is ignored.
fn dhcp_server(frame: &[u8], offer: [u8; 4], lease_s: u32) -> Option<Vec<u8>> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        DhcpMessageType, DhcpPacket, DhcpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
        IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    };
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() == EthernetProtocol::Arp {
        return arp_reply(frame, [10, 0, 2, 2]);
    }
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let req = DhcpRepr::parse(&dhcp).ok()?;
    let reply_type = match req.message_type {
        DhcpMessageType::Discover => DhcpMessageType::Offer,
        DhcpMessageType::Request => DhcpMessageType::Ack,
        _ => return None,
    };
    let server = Ipv4Address::new(10, 0, 2, 2);
    let reply = DhcpRepr {
        message_type: reply_type,
        transaction_id: req.transaction_id,
        secs: 0,
        client_hardware_address: req.client_hardware_address,
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: Ipv4Address::from(offer),
        server_ip: server,
        router: Some(server),
        subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: true,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(server),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(lease_s),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let dhcp_len = reply.buffer_len();
    let udp_repr = UdpRepr {
        src_port: 67,
        dst_port: 68,
    };
    let ip_repr = Ipv4Repr {
        src_addr: server,
        dst_addr: Ipv4Address::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: 8 + dhcp_len,
        hop_limit: 64,
    };
    let eth_repr = EthernetRepr {
        src_addr: EthernetAddress([0x52, 0x55, 10, 0, 2, 2]),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut out = vec![0u8; 14 + 20 + 8 + dhcp_len];
    let mut f = EthernetFrame::new_unchecked(&mut out[..]);
    eth_repr.emit(&mut f);
    let caps = ChecksumCapabilities::default();
    let mut ipp = Ipv4Packet::new_unchecked(f.payload_mut());
    ip_repr.emit(&mut ipp, &caps);
    let mut u = UdpPacket::new_unchecked(ipp.payload_mut());
    udp_repr.emit(
        &mut u,
        &server.into(),
        &Ipv4Address::BROADCAST.into(),
        dhcp_len,
        |p| {
            let mut d = DhcpPacket::new_unchecked(p);
            reply.emit(&mut d).unwrap();
        },
        &caps,
    );
    Some(out)
}

/// The server's answer to an ARP request for `ip` (a renewal is unicast to the server).
fn arp_reply(frame: &[u8], ip: [u8; 4]) -> Option<Vec<u8>> {
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
    };
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = arp
    else {
        return None;
    };
    if target_protocol_addr != Ipv4Address::from(ip) {
        return None;
    }
    let mac = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut out = vec![0u8; 14 + reply.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut out[..]);
    EthernetRepr {
        src_addr: mac,
        dst_addr: source_hardware_addr,
        ethertype: EthernetProtocol::Arp,
    }
    .emit(&mut f);
    reply.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
    Some(out)
}

/// `ip=dhcp`: the stack discovers, requests, takes the lease and answers on it; it renews
/// before the lease ends, and loses the address when the server goes away for good.
#[test]
fn dhcp_lease_renewal_and_loss() {
    let offer = [10, 0, 2, 15];
    let mut s = Stack::new_dhcp([0, 0x16, 0x3e, 0, 0, 0], 0);
    assert_eq!(s.address(), None);
    let mut now = 0i64;
    let mut server_up = true;
    let mut requests = 0;
    let step = |s: &mut Stack, now: i64, server_up: bool, requests: &mut u32| {
        for f in s.poll(now, &mut pages) {
            if server_up && let Some(r) = dhcp_server(&f, offer, 120) {
                // DHCP replies only (not ARP): 0x0800 at bytes 12..14.
                *requests += u32::from(r[12..14] == [8, 0]);
                s.input(r);
            }
        }
    };
    while now < 10_000 && s.lease().is_none() {
        step(&mut s, now, server_up, &mut requests);
        now += 10;
    }
    let l = s.lease().expect("a lease within 10 s");
    assert_eq!(
        (l.addr, l.prefix, l.router),
        (offer, 24, Some([10, 0, 2, 2]))
    );
    assert_eq!(s.address(), Some((offer, 24)));
    assert_eq!(s.counters.dhcp_leases, 1);
    assert!(requests >= 2, "an OFFER and an ACK");
    // It renews (T1 = 60 s) and keeps the address: no new lease is counted.
    let before = requests;
    while now < 100_000 {
        step(&mut s, now, server_up, &mut requests);
        now += 100;
    }
    assert!(requests > before, "renewed");
    assert_eq!(s.counters.dhcp_leases, 1);
    assert_eq!(s.address(), Some((offer, 24)));
    // The server goes away: the lease ends and the address goes with it.
    server_up = false;
    while now < 400_000 && s.lease().is_some() {
        step(&mut s, now, server_up, &mut requests);
        now += 100;
    }
    assert_eq!(s.lease(), None);
    assert_eq!(s.address(), None);
    assert_eq!(s.counters.dhcp_lost, 1);
}

/// Garbage to the DHCP client's port changes nothing.
#[test]
fn dhcp_ignores_garbage() {
    let mut s = Stack::new_dhcp([0, 0x16, 0x3e, 0, 0, 0], 0);
    let mut seed = 0x1234_5678_u32;
    for now in 0..2000i64 {
        let out = s.poll(now, &mut pages);
        for f in out {
            // A reply with every byte after the Ethernet header scrambled.
            if let Some(mut r) = dhcp_server(&f, [10, 0, 2, 15], 120) {
                for b in r.iter_mut().skip(14 + (seed as usize % 300)) {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    *b = seed as u8;
                }
                s.input(r);
            }
        }
    }
    assert_eq!(s.address(), None);
    assert_eq!(s.counters.dhcp_leases, 0);
}

#[test]
fn discard_advertises_its_whole_window() {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{
        EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, TcpRepr,
    };
    let mut s = stack();
    let mut c = client();
    let h = c.sockets.add(tcp_socket(65536, 1 << 20));
    {
        let cx = c.iface.context();
        c.sockets
            .get_mut::<tcp::Socket<'_>>(h)
            .connect(cx, (Ipv4Address::from(DOM0), DISCARD_PORT), 49153)
            .unwrap();
    }
    let (mut scale, mut widest) = (None, 0usize);
    for now in 0..200 {
        c.iface
            .poll(Instant::from_millis(now), &mut c.dev, &mut c.sockets);
        for f in c.dev.tx.drain(..) {
            s.input(f);
        }
        for f in s.poll(now, &mut pages) {
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            if eth.ethertype() == EthernetProtocol::Ipv4 {
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                if ip.next_header() == IpProtocol::Tcp {
                    let t = TcpPacket::new_checked(ip.payload()).unwrap();
                    let (src, dst) = (ip.src_addr().into(), ip.dst_addr().into());
                    let r =
                        TcpRepr::parse(&t, &src, &dst, &ChecksumCapabilities::default()).unwrap();
                    if t.syn() && t.ack() {
                        // RFC 7323: the shift rides on the SYN-ACK; its own window is unscaled.
                        scale = r.window_scale;
                    } else if let Some(sh) = scale {
                        widest = widest.max(usize::from(t.window_len()) << sh);
                    }
                }
            }
            c.dev.rx.push_back(f);
        }
        let sock = c.sockets.get_mut::<tcp::Socket<'_>>(h);
        if sock.can_send() {
            let _ = sock.send_slice(&[0x5a; 4096]);
        }
    }
    assert!(scale.is_some_and(|sh| sh >= 2), "window scale {scale:?}");
    assert!(
        widest > 65536 && widest <= DISCARD_WINDOW,
        "widest window {widest} of {DISCARD_WINDOW}"
    );
    assert!(s.counters.discard_bytes > 65536, "{:?}", s.counters);
}
