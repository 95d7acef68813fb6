//! dom0's own address on its switch port: a smoltcp interface (IPv4, Ethernet) fed with the
//! frames the switch hands to dom0, whose replies go back into the switch.
//!
//! It answers ICMP echo (smoltcp does), serves TCP echo on port 7 and discard on port 9 (for
//! tests and benchmarks) and a small HTTP server on port 80 that serves the boot report
//! (`/report.json`, and the text form at `/`). Everything is bounded: the frames waiting for
//! the stack (`MAX_QUEUED`), each socket's buffers, a request's size (`MAX_REQUEST`). No
//! `unsafe`, no clock of its own: the caller passes the time, and asks how long it may sleep.
//!
//! Its address is fixed ([`Stack::new`]) or leased by DHCP ([`Stack::new_dhcp`], smoltcp's
//! DHCPv4 client: discover, request, renew and rebind on the lease's timers; a lost lease
//! removes the address until a new one is acquired).

#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// Frames waiting for the stack; more are dropped (and counted).
pub const MAX_QUEUED: usize = 256;
/// Frames the stack may emit in one poll.
const MAX_OUT: usize = 256;
/// A longer HTTP request head is refused.
pub const MAX_REQUEST: usize = 2048;
/// TCP ports served.
pub const ECHO_PORT: u16 = 7;
pub const DISCARD_PORT: u16 = 9;
/// Receive buffer (the advertised window) of the discard port, bytes.
pub const DISCARD_WINDOW: usize = 256 * 1024;
pub const HTTP_PORT: u16 = 80;
/// Concurrent HTTP connections.
const HTTP_SOCKETS: usize = 2;

/// The stack's device: frames in from the switch, frames out to it.
#[derive(Debug, Default)]
struct Frames {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct RxTok(Vec<u8>);
struct TxTok<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxTok {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxTok<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0u8; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

impl Device for Frames {
    type RxToken<'a> = RxTok;
    type TxToken<'a> = TxTok<'a>;

    fn receive(&mut self, _: Instant) -> Option<(RxTok, TxTok<'_>)> {
        if self.tx.len() >= MAX_OUT {
            return None;
        }
        let f = self.rx.pop_front()?;
        Some((RxTok(f), TxTok(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<TxTok<'_>> {
        (self.tx.len() < MAX_OUT).then_some(TxTok(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        // An Ethernet frame without FCS at the standard MTU (what netfront sends).
        c.max_transmission_unit = 1514;
        c
    }
}

/// What the stack did, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StackCounters {
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames dropped because the stack's queue was full.
    pub dropped: u64,
    pub echo_bytes: u64,
    pub discard_bytes: u64,
    pub http_requests: u64,
    /// DHCP leases acquired (a renewal that keeps the address does not count).
    pub dhcp_leases: u64,
    /// DHCP leases lost (expired without renewal).
    pub dhcp_lost: u64,
}

/// The address DHCP leased, and the router it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub addr: [u8; 4],
    pub prefix: u8,
    pub router: Option<[u8; 4]>,
    pub server: [u8; 4],
}

/// What an HTTP path serves: `(content type, body)`, or `None` for 404. Called once per
/// request, so a page can be made when it is asked for (dom0's live report).
pub type Pages<'a> = &'a mut dyn FnMut(&str) -> Option<(&'static str, Vec<u8>)>;

#[derive(Debug, Default)]
struct HttpConn {
    request: Vec<u8>,
    reply: Vec<u8>,
    sent: usize,
    answered: bool,
}

/// dom0's IPv4 endpoint.
pub struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Frames,
    echo: SocketHandle,
    discard: SocketHandle,
    http: Vec<(SocketHandle, HttpConn)>,
    /// The DHCP client, with `ip=dhcp`.
    dhcp: Option<SocketHandle>,
    lease: Option<Lease>,
    pub counters: StackCounters,
}

impl core::fmt::Debug for Stack {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stack")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

fn tcp_socket(rx: usize, tx: usize) -> tcp::Socket<'static> {
    tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; rx]),
        tcp::SocketBuffer::new(vec![0; tx]),
    )
}

impl Stack {
    /// A stack with `mac` and `addr`/`prefix`, at time `now_ms`.
    pub fn new(mac: [u8; 6], addr: [u8; 4], prefix: u8, now_ms: i64) -> Stack {
        let mut s = Self::bare(mac, now_ms);
        s.iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(Ipv4Address::from(addr).into(), prefix));
        });
        s
    }

    /// A stack with `mac` that asks a DHCP server for its address (none until leased).
    pub fn new_dhcp(mac: [u8; 6], now_ms: i64) -> Stack {
        let mut s = Self::bare(mac, now_ms);
        s.dhcp = Some(s.sockets.add(dhcpv4::Socket::new()));
        s
    }

    /// The DHCP lease in force, if any.
    pub fn lease(&self) -> Option<Lease> {
        self.lease
    }

    /// The address the stack answers on now, if any.
    pub fn address(&self) -> Option<([u8; 4], u8)> {
        // Only IPv4 is built (`proto-ipv4`), so the first address is the one.
        self.iface.ip_addrs().first().map(|c| match c {
            IpCidr::Ipv4(c) => (c.address().octets(), c.prefix_len()),
        })
    }

    fn bare(mac: [u8; 6], now_ms: i64) -> Stack {
        let mut dev = Frames::default();
        let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let iface = Interface::new(config, &mut dev, Instant::from_millis(now_ms));
        let mut sockets = SocketSet::new(Vec::new());
        let echo = sockets.add(tcp_socket(8192, 8192));
        // The discard port is the benchmark's sink: its receive buffer is the window a sender
        // gets (smoltcp scales it past 64 KiB), and at 16 KiB a DomU sending to it spent 40%
        // of the emulated machine's time idle, waiting for window (a QMP sampling profile).
        let discard = sockets.add(tcp_socket(DISCARD_WINDOW, 64));
        let http = (0..HTTP_SOCKETS)
            .map(|_| {
                (
                    sockets.add(tcp_socket(MAX_REQUEST, 16384)),
                    HttpConn::default(),
                )
            })
            .collect();
        let mut s = Stack {
            iface,
            sockets,
            dev,
            echo,
            discard,
            http,
            dhcp: None,
            lease: None,
            counters: StackCounters::default(),
        };
        s.listen();
        s
    }

    /// A frame the switch delivered to dom0's port.
    pub fn input(&mut self, frame: Vec<u8>) {
        if self.dev.rx.len() >= MAX_QUEUED {
            self.counters.dropped += 1;
            return;
        }
        self.counters.frames_in += 1;
        self.dev.rx.push_back(frame);
    }

    /// Whether frames wait for the stack.
    pub fn has_input(&self) -> bool {
        !self.dev.rx.is_empty()
    }

    /// (Re)open every listening socket that is closed.
    fn listen(&mut self) {
        let ports = [(self.echo, ECHO_PORT), (self.discard, DISCARD_PORT)];
        let http: Vec<SocketHandle> = self.http.iter().map(|(h, _)| *h).collect();
        for (h, port) in ports
            .into_iter()
            .chain(http.into_iter().map(|h| (h, HTTP_PORT)))
        {
            let s = self.sockets.get_mut::<tcp::Socket<'_>>(h);
            // dom0 closes first (HTTP/1.0, the discard and echo ends of a client's close), so
            // its socket would sit in TIME-WAIT for smoltcp's 10 s and, with two HTTP
            // sockets, a third request within 10 s was refused. Both FINs are acknowledged by
            // then: reuse it now (as SO_LINGER 0 does); a peer's retransmitted FIN gets a RST.
            if s.state() == tcp::State::TimeWait {
                s.abort();
            }
            if s.state() == tcp::State::Closed {
                let _ = s.listen(port);
            }
        }
        for (h, c) in &mut self.http {
            if self.sockets.get::<tcp::Socket<'_>>(*h).state() == tcp::State::Listen {
                *c = HttpConn::default();
            }
        }
    }

    /// Run the stack at `now_ms`: take the queued frames, serve the sockets; the frames to
    /// send into the switch.
    pub fn poll(&mut self, now_ms: i64, mut pages: Pages<'_>) -> Vec<Vec<u8>> {
        let now = Instant::from_millis(now_ms);
        for _ in 0..4 {
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            self.dhcp_event();
            let before = self.dev.tx.len();
            self.serve(&mut pages);
            self.listen();
            self.iface.poll(now, &mut self.dev, &mut self.sockets);
            if self.dev.tx.len() == before && self.dev.rx.is_empty() {
                break;
            }
        }
        let out = core::mem::take(&mut self.dev.tx);
        self.counters.frames_out += out.len() as u64;
        out
    }

    /// Apply what the DHCP client learnt: the address and the default route.
    fn dhcp_event(&mut self) {
        let Some(h) = self.dhcp else {
            return;
        };
        match self.sockets.get_mut::<dhcpv4::Socket<'_>>(h).poll() {
            Some(dhcpv4::Event::Configured(c)) => {
                let lease = Lease {
                    addr: c.address.address().octets(),
                    prefix: c.address.prefix_len(),
                    router: c.router.map(|r| r.octets()),
                    server: c.server.address.octets(),
                };
                let cidr: Ipv4Cidr = c.address;
                self.iface.update_ip_addrs(|a| {
                    a.clear();
                    let _ = a.push(IpCidr::Ipv4(cidr));
                });
                match c.router {
                    Some(r) => {
                        let _ = self.iface.routes_mut().add_default_ipv4_route(r);
                    }
                    None => {
                        let _ = self.iface.routes_mut().remove_default_ipv4_route();
                    }
                }
                if self.lease.map(|l| l.addr) != Some(lease.addr) {
                    self.counters.dhcp_leases += 1;
                }
                self.lease = Some(lease);
            }
            Some(dhcpv4::Event::Deconfigured) => {
                if self.lease.take().is_some() {
                    self.counters.dhcp_lost += 1;
                }
                self.iface.update_ip_addrs(|a| a.clear());
                let _ = self.iface.routes_mut().remove_default_ipv4_route();
            }
            None => {}
        }
    }

    /// Milliseconds until the stack needs a poll without new frames (TCP timers).
    pub fn poll_delay_ms(&mut self, now_ms: i64) -> Option<u64> {
        self.iface
            .poll_delay(Instant::from_millis(now_ms), &self.sockets)
            .map(|d| d.total_millis())
    }

    fn serve(&mut self, pages: &mut Pages<'_>) {
        // Echo: what arrives goes back, as far as the send buffer takes it.
        let s = self.sockets.get_mut::<tcp::Socket<'_>>(self.echo);
        while s.can_recv() && s.can_send() {
            let room = s.send_capacity() - s.send_queue();
            let mut buf = [0u8; 2048];
            let n = s.recv_slice(&mut buf[..room.min(2048)]).unwrap_or(0);
            if n == 0 {
                break;
            }
            let _ = s.send_slice(&buf[..n]);
            self.counters.echo_bytes += n as u64;
        }
        if !s.may_recv() && s.may_send() && s.send_queue() == 0 {
            s.close();
        }
        // Discard: read and forget.
        let s = self.sockets.get_mut::<tcp::Socket<'_>>(self.discard);
        while s.can_recv() {
            let n = s.recv(|b| (b.len(), b.len())).unwrap_or(0);
            if n == 0 {
                break;
            }
            self.counters.discard_bytes += n as u64;
        }
        if !s.may_recv() && s.may_send() {
            s.close();
        }
        // HTTP/1.0: one request per connection, the reply streamed as the buffer allows.
        for (h, c) in &mut self.http {
            let s = self.sockets.get_mut::<tcp::Socket<'_>>(*h);
            if !c.answered {
                while s.can_recv() && c.request.len() < MAX_REQUEST {
                    let room = MAX_REQUEST - c.request.len();
                    let mut buf = [0u8; 512];
                    let n = s.recv_slice(&mut buf[..room.min(512)]).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    c.request.extend_from_slice(&buf[..n]);
                }
                let complete = c.request.windows(4).any(|w| w == b"\r\n\r\n")
                    || c.request.windows(2).any(|w| w == b"\n\n");
                if complete
                    || c.request.len() >= MAX_REQUEST
                    || (!s.may_recv() && !c.request.is_empty())
                {
                    c.reply = respond(&c.request, pages);
                    c.answered = true;
                    self.counters.http_requests += 1;
                }
            }
            if c.answered {
                while c.sent < c.reply.len() && s.can_send() {
                    let n = s.send_slice(&c.reply[c.sent..]).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    c.sent += n;
                }
                if c.sent == c.reply.len() && s.may_send() {
                    s.close();
                }
            }
        }
    }
}

/// The reply to one request head.
fn respond(request: &[u8], pages: &mut Pages<'_>) -> Vec<u8> {
    let line = request.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = core::str::from_utf8(line).unwrap_or("").trim_end();
    let mut words = line.split(' ');
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (status, ctype, body) = if request.len() >= MAX_REQUEST && !request.ends_with(b"\r\n\r\n") {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            b"request too long\n".to_vec(),
        )
    } else if method != "GET" && method != "HEAD" {
        (
            "405 Method Not Allowed",
            "text/plain",
            b"only GET\n".to_vec(),
        )
    } else {
        match pages(path) {
            Some((ctype, body)) => ("200 OK", ctype, body),
            None => ("404 Not Found", "text/plain", b"not found\n".to_vec()),
        }
    };
    let mut r = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        r.extend_from_slice(&body);
    }
    r
}

#[cfg(test)]
mod tests;
