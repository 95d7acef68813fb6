//! dom0's netback: the vifs of the bundle's DomUs on one learning switch (issue 12).
//!
//! The logic is elsewhere and host-tested: the xenstore handshake in `toolstack::vif`, the
//! rings and grant copies in `netback::vif`, the switch in `netback::switch`. Here are the
//! hypercalls around them: the ring pages mapped with `GNTTABOP_map_grant_ref` into window
//! slots, the frontend's event channel(s) bound, and everything undone when the frontend
//! closes or the DomU goes. A vif whose frontend breaks the ring protocol is closed with the
//! reason (in xenstore's `error` node and the report); the others go on.
//!
//! dom0's own switch port carries its IP endpoint (`netstack`, smoltcp; `ip=`): ping, TCP echo
//! and discard, and the boot report over HTTP; with `ip=dhcp` it leases its address through
//! the uplink.
//!
//! With `nic=`, a physical NIC (`crate::nic`, drivers in `drivers`) is one more port: DomUs are
//! bridged onto the physical network, and frames for it go out through the NIC. It is polled
//! (no interrupt): every service pass takes what it received, and the loop wakes at least
//! every `nic::POLL_IDLE_NS` (`POLL_ACTIVE_NS` while frames move) to look.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use drivers::nic::{Nic, NicError};
use hwdom::options::Dom0Ip;
use log::{info, warn};
use netback::MacAddress;
use netback::packet::Packet;
use netback::switch::{Forward, PortId, Switch};
use netback::vif::{BOUNCE_PAGES, Bounce, Link};
use netback::xenbus::{Action, Channels, FrontendConfig};
use netstack::Stack;
use report::{Dom0NetSummary, UplinkState, UplinkSummary, VifSummary};
use toolstack::vif::VifDevice;
use toolstack::xenstore::Server;
use xen::domctl::{DomId, DomctlVersion};
use xen::gnttab;
use xen::ops::{self, EvtchnPort};

mod summary;

use super::PAGE;
use super::memory::SharedPage;
use crate::events;
use crate::hypercall::Xen;

/// Packets taken from one vif's TX ring per wakeup (bounded work, round-robin by the caller).
const TX_BUDGET: usize = 64;
/// Frames taken from the NIC per wakeup.
const NIC_RX_BUDGET: usize = 64;

/// The physical NIC on the switch.
pub struct Uplink {
    pub nic: Box<dyn Nic>,
    pub summary: UplinkSummary,
    port: PortId,
    /// When it last moved a frame either way, ns.
    active_ns: u64,
    /// Frames the switch sent it during this pass: transmitted together at the end of the
    /// pass's forwarding (`Net::flush_uplink`), one doorbell for all of them.
    out: Vec<Vec<u8>>,
}

impl Uplink {
    pub fn new(nic: Box<dyn Nic>, summary: UplinkSummary) -> Uplink {
        Uplink {
            nic,
            summary,
            port: 0,
            active_ns: 0,
            out: Vec::new(),
        }
    }
}

#[repr(C, align(4096))]
#[derive(Clone)]
struct Frame([u8; 4096]);

impl core::borrow::Borrow<[u8; 4096]> for Frame {
    fn borrow(&self) -> &[u8; 4096] {
        &self.0
    }
}

impl core::borrow::BorrowMut<[u8; 4096]> for Frame {
    fn borrow_mut(&mut self) -> &mut [u8; 4096] {
        &mut self.0
    }
}

/// dom0 heap pages that grant copies land in and leave from. dom0's memory is identity-mapped,
/// so a page's frame number is its address / 4096.
struct BounceBuffer(Box<[Frame]>);

impl BounceBuffer {
    fn new() -> BounceBuffer {
        BounceBuffer(alloc::vec![Frame([0; 4096]); BOUNCE_PAGES].into_boxed_slice())
    }
}

impl Bounce for BounceBuffer {
    fn gfn(&self, i: usize) -> u64 {
        // Exposed: Xen writes these frames during GNTTABOP_copy (the hypercall's asm may
        // touch any exposed memory, so reads after it are not reordered before it).
        (self.0[i].0.as_ptr().expose_provenance() as u64) / PAGE
    }
    fn read(&self, at: usize, out: &mut [u8]) {
        netback::vif::read_paged(&self.0, at, out);
    }
    fn read_append(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        netback::vif::read_paged_append(&self.0, at, len, out);
    }
    fn write(&mut self, at: usize, data: &[u8]) {
        netback::vif::write_paged(&mut self.0, at, data);
    }
}

/// A connected vif's rings and channels.
struct Attached {
    link: Link,
    slots: [u64; 2],
    handles: [u32; 2],
    /// Local ports: one, or TX then RX.
    ports: Vec<EvtchnPort>,
}

struct NetVif {
    dev: VifDevice,
    port: PortId,
    att: Option<Attached>,
    connects: u64,
    /// Counters of earlier connections (a reconnect starts a new `Link`).
    past: netback::vif::VifCounters,
    rx_dropped_past: u64,
    /// dom0 memory this vif's record and creation took (its xenstore nodes, its switch port:
    /// heap measured around them, plus the record itself).
    heap_bytes: u64,
    /// The largest RX backlog of any of its connections, bytes.
    rx_backlog_peak: u64,
    /// It moved packets in the last service pass.
    worked: bool,
    /// Its rings still hold work no notification will announce (`Transmitted::more`,
    /// `Link::rx_more`): the loop serves again without sleeping. And how often that happened.
    more: bool,
    busy_passes: u64,
}

/// Work a vif's current connection has done, both ways: packets taken, refused, delivered,
/// and RX buffers found posted (a receiver's refill notifications are traffic too).
fn moved(v: &NetVif) -> u64 {
    v.att.as_ref().map_or(0, |a| {
        let c = &a.link.counters;
        c.tx_packets
            + c.tx_dropped
            + c.tx_copy_errors
            + c.rx_packets
            + c.rx_copy_errors
            + a.link.rx_posts_seen
    })
}

/// dom0 heap bytes in use now.
fn heap_used() -> u64 {
    crate::heap::stats().1
}

/// What dom0's web server serves: `/report.json` (and its text form at `/`) is the boot report
/// as it was at ready with its network parts (`uplink`, `toolstack.dom0_net`) as they are when
/// the page is asked for; `/ready.json` is the report exactly as printed at ready. (`/cpu.txt`,
/// live CPU times and dom0's counters, is made in `Net::service_pass`: it needs Xen.)
pub struct Pages {
    pub report: report::BootReport,
}

impl Pages {
    /// The report with the live network parts, as JSON or text.
    fn page(
        &self,
        path: &str,
        uplink: &Option<UplinkSummary>,
        dom0_net: &Option<Dom0NetSummary>,
    ) -> Option<(&'static str, Vec<u8>)> {
        let json = match path {
            "/report.json" => true,
            "/" | "/report.txt" => false,
            // Exactly what dom0 printed at ready (a client can compare it byte for byte).
            "/ready.json" => {
                let mut out = String::new();
                let _ = self.report.write_json(&mut out);
                return Some(("application/json", out.into_bytes()));
            }
            _ => return None,
        };
        let mut r = self.report.clone();
        if uplink.is_some() {
            r.uplink = uplink.clone();
        }
        r.toolstack
            .get_or_insert_with(Default::default)
            .dom0_net
            .clone_from(dom0_net);
        let mut out = String::new();
        if json {
            let _ = r.write_json(&mut out);
            Some(("application/json", out.into_bytes()))
        } else {
            let _ = r.write_text(&mut out);
            Some(("text/plain; charset=utf-8", out.into_bytes()))
        }
    }
}

pub struct Net {
    switch: Switch,
    dom0_port: PortId,
    vifs: Vec<NetVif>,
    bounce: BounceBuffer,
    /// dom0's IP endpoint (`ip=none`: frames for dom0 are dropped).
    stack: Option<Stack>,
    /// When the stack next needs a poll without new frames (its TCP timers), ns.
    stack_due: u64,
    ip: Dom0Ip,
    mac: MacAddress,
    pages: Pages,
    uplink: Option<Uplink>,
    /// For `/cpu.txt`'s `XEN_DOMCTL_getdomaininfo` calls.
    domctl: DomctlVersion,
    /// Domains that were on the switch and stopped: their CPU time when dom0 found them
    /// stopped (`/cpu.txt` goes on showing it: a reader's second read may come after).
    stopped_cpu: Vec<(DomId, u64)>,
    /// TX and RX notifications owed to frontends: sent with the loop's next `SCHEDOP_poll` in
    /// one multicall (`take_notifications`), not one trap each.
    notify: Vec<EvtchnPort>,
}

impl Net {
    pub fn new(
        ip: Dom0Ip,
        pages: Pages,
        now_ms: i64,
        mut uplink: Option<Uplink>,
        domctl: DomctlVersion,
    ) -> Net {
        let mut switch = Switch::new();
        let dom0_port = switch.add_port();
        if let Some(u) = uplink.as_mut() {
            u.port = switch.add_port();
            info!(
                "net: uplink {} ({}, {}) on switch port {}",
                u.summary.sbdf, u.summary.model, u.summary.mac, u.port
            );
        }
        // dom0's MAC: Xen's OUI with domain 0's id, as libxl picks a vif's.
        let mac = MacAddress::xen_vif(0, 0);
        let stack = match ip {
            Dom0Ip::Static { addr, prefix } => {
                info!(
                    "net: dom0 is {}.{}.{}.{}/{prefix} ({mac}) on its switch",
                    addr[0], addr[1], addr[2], addr[3]
                );
                Some(Stack::new(mac.0, addr, prefix, now_ms))
            }
            Dom0Ip::Dhcp => {
                info!("net: dom0 ({mac}) asks for an address by DHCP");
                Some(Stack::new_dhcp(mac.0, now_ms))
            }
            Dom0Ip::Off => None,
        };
        Net {
            switch,
            dom0_port,
            vifs: Vec::new(),
            bounce: BounceBuffer::new(),
            stack,
            stack_due: 0,
            notify: Vec::new(),
            ip,
            mac,
            pages,
            uplink,
            domctl,
            stopped_cpu: Vec::new(),
        }
    }

    /// DomU `domid` stopped having used `cpu_ns` of CPU (kept for `/cpu.txt` if it had a vif;
    /// a domid Xen reuses later replaces its entry).
    pub fn stopped_cpu(&mut self, domid: DomId, cpu_ns: u64) {
        if self.vifs.iter().any(|v| v.dev.domid == domid) {
            self.stopped_cpu.retain(|&(d, _)| d != domid);
            self.stopped_cpu.push((domid, cpu_ns));
        }
    }

    /// When the NIC should be looked at next (it raises no interrupt), ns.
    pub fn uplink_due(&self, now_ns: u64) -> Option<u64> {
        let u = self.uplink.as_ref()?;
        let period = if now_ns.saturating_sub(u.active_ns) < crate::nic::ACTIVE_WINDOW_NS {
            crate::nic::POLL_ACTIVE_NS
        } else {
            crate::nic::POLL_IDLE_NS
        };
        Some(now_ns.saturating_add(period))
    }

    /// The NIC misbehaved: take it out of service (its port stays, frames to it are dropped).
    fn stop_uplink(&mut self, why: String) {
        if let Some(u) = self.uplink.as_mut()
            && u.summary.state == UplinkState::Up
        {
            log::error!(
                "uplink {} ({}): {why}; taken out of service",
                u.summary.sbdf,
                u.summary.model
            );
            u.summary.state = UplinkState::Stopped;
            u.summary.error = Some(why);
        }
    }

    /// Frames the NIC received, into the switch (bounded per pass).
    fn uplink_receive(&mut self, now_ns: u64) {
        let mut got = Vec::new();
        let mut failed = None;
        if let Some(u) = self
            .uplink
            .as_mut()
            .filter(|u| u.summary.state == UplinkState::Up)
        {
            if let Err(e) = u.nic.receive_batch(NIC_RX_BUDGET, &mut got) {
                failed = Some(format!("receive: {e:?}"));
            }
            if !got.is_empty() {
                u.active_ns = now_ns;
            }
        }
        if let Some(why) = failed {
            self.stop_uplink(why);
        }
        if let Some(from) = self.uplink.as_ref().map(|u| u.port) {
            for f in got {
                self.forward(from, Packet::frame(f), now_ns);
            }
        }
    }

    /// When the stack needs a poll without new frames (TCP timers), in ns from `now_ns`.
    pub fn poll_delay_ns(&mut self, now_ns: u64) -> Option<u64> {
        let s = self.stack.as_mut()?;
        if s.has_input() {
            return Some(0);
        }
        s.poll_delay_ms(ms(now_ns))
            .map(|d| d.saturating_mul(1_000_000))
    }

    /// Create DomU `domid`'s vifs in xenstore (backends at InitWait).
    pub fn add(
        &mut self,
        server: &mut Server,
        domid: DomId,
        vifs: &[(u32, MacAddress)],
    ) -> Result<(), String> {
        for &(handle, mac) in vifs {
            let before = heap_used();
            let dev = VifDevice::create(server, domid, handle, mac)
                .map_err(|e| format!("vif {handle}: {e}"))?;
            let port = self.switch.add_port();
            let heap_bytes =
                heap_used().saturating_sub(before) + core::mem::size_of::<NetVif>() as u64;
            info!("vif {domid}.{handle}: {mac}, switch port {port}, waiting for netfront");
            self.vifs.push(NetVif {
                dev,
                port,
                att: None,
                connects: 0,
                past: Default::default(),
                rx_dropped_past: 0,
                heap_bytes,
                rx_backlog_peak: 0,
                worked: false,
                more: false,
                busy_passes: 0,
            });
        }
        Ok(())
    }

    /// Local ports of `domid`'s connected vifs (for the poll set).
    pub fn ports(&self, domid: DomId) -> impl Iterator<Item = EvtchnPort> + '_ {
        self.vifs
            .iter()
            .filter(move |v| v.dev.domid == domid)
            .filter_map(|v| v.att.as_ref())
            .flat_map(|a| a.ports.iter().copied())
    }

    /// Follow the frontends' states (after each round of xenstore requests).
    pub fn poll(&mut self, x: &Xen, server: &mut Server, free: &mut Vec<u64>) {
        for k in 0..self.vifs.len() {
            let actions = match self.vifs[k].dev.poll(server) {
                Ok(a) => a,
                Err(e) => {
                    warn!("vif {}: xenstore: {e}", name(&self.vifs[k].dev));
                    continue;
                }
            };
            for a in actions {
                match a {
                    Action::Connect(cfg) => match attach(x, self.vifs[k].dev.domid, cfg, free) {
                        Ok(att) => {
                            let v = &mut self.vifs[k];
                            v.connects += 1;
                            info!(
                                "vif {}: netfront connected (rings {}/{}, {:?})",
                                name(&v.dev),
                                cfg.tx_ring_ref,
                                cfg.rx_ring_ref,
                                cfg.channels
                            );
                            v.att = Some(att);
                        }
                        Err(m) => {
                            warn!("vif {}: {m}", name(&self.vifs[k].dev));
                            let _ = self.vifs[k].dev.fail(server, m);
                        }
                    },
                    Action::Disconnect => {
                        info!("vif {}: netfront disconnected", name(&self.vifs[k].dev));
                        self.detach(x, k, free);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Move frames: every connected vif's TX ring (bounded), through the switch into the
    /// receivers' backlogs and dom0's stack, the stack's replies back into the switch, then
    /// every backlog into its guest's buffers.
    pub fn service(&mut self, x: &Xen, server: &mut Server, free: &mut Vec<u64>, now_ns: u64) {
        let before: Vec<u64> = self.vifs.iter().map(moved).collect();
        self.service_pass(x, server, free, now_ns);
        for (v, b) in self.vifs.iter_mut().zip(before) {
            v.worked = moved(v) != b;
            // The loop goes round again without sleeping for this vif (`busy`).
            v.busy_passes += u64::from(v.more);
        }
    }

    /// Some vif's rings hold work that no notification will announce (its TX budget ran out,
    /// or buffers for its waiting frames came during the final check): serve again before
    /// sleeping, or that work waits for an unrelated wakeup (up to the loop's 1 s bound).
    /// Counted per vif in the report (`busy_passes`, at the end of each pass).
    pub fn busy(&self) -> bool {
        self.vifs.iter().any(|v| v.more)
    }

    /// The notifications this pass owes the frontends (see `notify`), for the loop to send.
    pub fn take_notifications(&mut self) -> Vec<EvtchnPort> {
        core::mem::take(&mut self.notify)
    }

    /// Whether any of `domid`'s vifs moved a packet (either way) in the last service pass: a
    /// kick that found work is traffic, not an event storm.
    pub fn worked(&self, domid: DomId) -> bool {
        self.vifs.iter().any(|v| v.dev.domid == domid && v.worked)
    }

    fn service_pass(&mut self, x: &Xen, server: &mut Server, free: &mut Vec<u64>, now_ns: u64) {
        self.uplink_receive(now_ns);
        // Every connected vif's TX ring at once: their copies share hypercalls
        // (`netback::vif::transmit_all`).
        for v in &mut self.vifs {
            v.more = false;
        }
        let (on, mut pages) = self.rings(0);
        let results = netback::vif::transmit_all(
            x,
            &mut links(&mut self.vifs, &mut pages),
            &mut self.bounce,
            TX_BUDGET,
        );
        // A sender hears of its TX responses with the pass's RX notifications, in the loop's
        // next trap (`take_notifications`; or before the pass's NIC transmission, see
        // `flush_uplink`): a guest whose TX and RX ports are both pending
        // takes one upcall for both (an IPI or a wakeup and an EOI write, each an emulated VM
        // exit on the bench), and dom0 one trap less. Measured on 2 CPUs (`cargo image
        // bench-net`, 3 runs each): DomU -> dom0 9-14 -> 16-21 MiB/s, DomU -> DomU 5.5-9.9 ->
        // 8.2-10.7 MiB/s, dom0's traps per pass 5.0 -> 4.1. (On 1 CPU and an older dom0,
        // sending them at the end of the pass had cut DomU -> dom0 from 1.8 to 0.8-1.2 MiB/s.)
        for (&k, r) in on.iter().zip(&results) {
            if r.as_ref().is_ok_and(|t| t.notify)
                && let Some(a) = self.vifs[k].att.as_ref()
            {
                super::owe(&mut self.notify, a.ports[0]);
            }
        }
        for (k, r) in on.into_iter().zip(results) {
            match r {
                Ok(t) => {
                    let from = self.vifs[k].port;
                    self.vifs[k].more = t.more;
                    for p in t.packets {
                        self.forward(from, p, now_ns);
                    }
                }
                Err(e) => {
                    // XSA-39 / Linux's xenvif_fatal_tx_err: this vif only.
                    let m = format!("TX ring: {e:?}; vif closed");
                    warn!("vif {}: {m}", name(&self.vifs[k].dev));
                    let _ = self.vifs[k].dev.fail(server, m);
                    // Stop serving it now (its rings are unmapped, its channels closed).
                    self.detach(x, k, free);
                }
            }
        }
        // The stack only when frames wait for it or its timers are due (a poll costs).
        let due = self
            .stack
            .as_ref()
            .is_some_and(|st| st.has_input() || now_ns >= self.stack_due);
        if due {
            // The live parts of the pages, taken before the stack is borrowed (cheap: counters).
            let uplink = self.uplink_summary();
            let dom0_net = self.dom0_summary();
            let pages = &self.pages;
            let (domctl, vifs, gone) = (self.domctl, &self.vifs, &self.stopped_cpu);
            let mut serve = |path: &str| {
                if path != "/cpu.txt" {
                    return pages.page(path, &uplink, &dom0_net);
                }
                // Live CPU times of dom0 and of the domains on the switch (see `stats`).
                let sys = events::time_info().system_time_at(crate::arch::rdtsc());
                let mut domids: Vec<DomId> = vifs.iter().map(|v| v.dev.domid).collect();
                domids.sort_unstable();
                domids.dedup();
                let page = crate::stats::cpu_page(x, domctl, sys, domids.into_iter(), gone);
                Some(("text/plain; charset=utf-8", page.into_bytes()))
            };
            let mut out = Vec::new();
            if let Some(st) = self.stack.as_mut() {
                out = st.poll(ms(now_ns), &mut serve);
                self.stack_due = st.poll_delay_ms(ms(now_ns)).map_or(u64::MAX, |d| {
                    now_ns.saturating_add(d.saturating_mul(1_000_000))
                });
            }
            let from = self.dom0_port;
            for f in out {
                self.forward(from, Packet::frame(f), now_ns);
            }
        }
        self.flush_uplink(x);
        // The NIC once more: what it received while this pass worked (the host's ACKs for
        // earlier frames, on the bench) reaches its vifs in this pass's RX phase, not a pass
        // later (up to the 1 ms poll period, or a sender's next notification, after). Frames
        // for dom0's own stack wait for the next pass, which comes at once (`poll_delay_ns`).
        self.uplink_receive(now_ns);
        // Every connected vif's RX ring at once, the copies together (`receive_all`).
        let (on, mut pages) = self.rings(1);
        let results = netback::vif::receive_all(
            x,
            &mut links(&mut self.vifs, &mut pages),
            &mut self.bounce,
            now_ns,
        );
        for (k, r) in on.into_iter().zip(results) {
            let Some(att) = self.vifs[k].att.as_ref() else {
                continue;
            };
            let rx_more = att.link.rx_more;
            match r {
                Ok(true) => {
                    // Owed, not sent: the pass ends right after this, and the loop sends it
                    // with its next poll (one trap for both).
                    let p = *att.ports.last().unwrap_or(&att.ports[0]);
                    super::owe(&mut self.notify, p);
                    self.vifs[k].more |= rx_more;
                }
                Ok(false) => self.vifs[k].more |= rx_more,
                Err(e) => {
                    let m = format!("RX ring: {e:?}; vif closed");
                    warn!("vif {}: {m}", name(&self.vifs[k].dev));
                    let _ = self.vifs[k].dev.fail(server, m);
                    self.detach(x, k, free);
                }
            }
        }
    }

    /// Transmit the frames the pass forwarded to the NIC, with one doorbell write (one per
    /// packet before: 1.8 per pass moving 10 KB on the bench). The senders' TX notifications
    /// owed so far go first, in one trap: their slots are free already, and a sender woken
    /// now fills its ring while dom0 segments and queues (the NIC path is dom0's longest:
    /// with the notification at the end of the pass, sender and dom0 took turns).
    fn flush_uplink(&mut self, x: &Xen) {
        let Some(u) = self.uplink.as_mut().filter(|u| !u.out.is_empty()) else {
            return;
        };
        let frames = core::mem::take(&mut u.out);
        // A send that fails (the port closed since) loses nothing: that DomU is gone.
        let _ = ops::send_then_poll(x, &core::mem::take(&mut self.notify), &[], 0);
        // Full: dropped and counted by the driver, as a congested NIC drops.
        let sent = self.uplink.as_mut().map(|u| u.nic.transmit_batch(&frames));
        if let Some(Err(NicError::Device(e))) = sent {
            self.stop_uplink(format!("transmit: {e}"));
        }
    }

    /// The connected vifs (their indices) and their TX (`ring` 0) or RX (1) ring pages.
    fn rings(&self, ring: usize) -> (Vec<usize>, Vec<SharedPage>) {
        self.vifs
            .iter()
            .enumerate()
            .filter_map(|(k, v)| Some((k, SharedPage::at_slot(v.att.as_ref()?.slots[ring]))))
            .unzip()
    }

    /// Hand `pkt` to the ports the switch chooses. A GSO packet goes whole to a vif whose
    /// frontend takes GSO on RX; the others (dom0's stack, the NIC, other vifs) get it cut into
    /// MTU-sized frames, cut once however many ports take them, and counted on the sender.
    fn forward(&mut self, from: PortId, mut pkt: Packet, now_ns: u64) {
        let Forward::To(ports) = self.switch.forward(from, &pkt.data, now_ns) else {
            return;
        };
        // The last port a packet goes to gets the packet itself, not a copy (`take_or_clone`).
        let last = ports.last().copied();
        let mut cut: Option<Vec<Vec<u8>>> = None;
        let mut frames = |pkt: &mut Packet, vifs: &mut Vec<NetVif>, last: bool| -> Vec<Vec<u8>> {
            if pkt.gso_mss.is_none() {
                return alloc::vec![take_or_clone(&mut pkt.data, last)];
            }
            if cut.is_none() {
                let f = pkt.frames().ok();
                if let Some(a) = vifs
                    .iter_mut()
                    .find(|v| v.port == from)
                    .and_then(|v| v.att.as_mut())
                {
                    a.link.count_segmented(f.as_ref().map(Vec::len));
                }
                cut = Some(f.unwrap_or_default());
            }
            take_or_clone(&mut cut, last).unwrap_or_default()
        };
        for p in ports {
            if let Some(u) = self.uplink.as_mut().filter(|u| u.port == p) {
                if u.summary.state != UplinkState::Up {
                    continue;
                }
                u.active_ns = now_ns;
                // Queued for the pass's one transmission (`flush_uplink`).
                let fs = frames(&mut pkt, &mut self.vifs, Some(p) == last);
                if let Some(u) = self.uplink.as_mut() {
                    u.out.extend(fs);
                }
                continue;
            }
            if p == self.dom0_port {
                if self.stack.is_some() {
                    for f in frames(&mut pkt, &mut self.vifs, Some(p) == last) {
                        if let Some(st) = self.stack.as_mut() {
                            st.input(f);
                        }
                    }
                }
                continue;
            }
            let Some(k) = self.vifs.iter().position(|v| v.port == p) else {
                continue;
            };
            let whole = pkt.gso_mss.is_none()
                || self.vifs[k]
                    .att
                    .as_ref()
                    .is_some_and(|a| a.link.takes_gso());
            if whole {
                if let Some(a) = self.vifs[k].att.as_mut() {
                    let data = take_or_clone(&mut pkt.data, Some(p) == last);
                    a.link.rxq.push(
                        Packet {
                            data,
                            gso_mss: pkt.gso_mss,
                        },
                        now_ns,
                    );
                }
            } else if self.vifs[k].att.is_some() {
                for f in frames(&mut pkt, &mut self.vifs, Some(p) == last) {
                    if let Some(a) = self.vifs[k].att.as_mut() {
                        a.link.rxq.push(f, now_ns);
                    }
                }
            }
        }
    }

    /// The frontend closed: unmap its rings and close its channels.
    fn detach(&mut self, x: &Xen, k: usize, free: &mut Vec<u64>) {
        if let Some(a) = self.vifs[k].att.take() {
            self.release(x, k, a, free);
        }
    }

    fn release(&mut self, x: &Xen, k: usize, a: Attached, free: &mut Vec<u64>) {
        let v = &mut self.vifs[k];
        v.past += &a.link.counters;
        v.rx_backlog_peak = v.rx_backlog_peak.max(a.link.rxq.counters.peak_bytes);
        v.rx_dropped_past += a.link.rxq.counters.dropped_full + a.link.rxq.counters.dropped_stale;
        for p in &a.ports {
            if let Err(e) = ops::evtchn_close(x, *p) {
                warn!("vif {}: closing port {}: {e}", name(&v.dev), p.0);
            }
        }
        for (slot, h) in a.slots.iter().zip(a.handles) {
            match gnttab::unmap(x, slot * PAGE, h) {
                Ok(st) if st.ok() => free.push(*slot),
                r => warn!(
                    "vif {}: unmapping ring slot {slot:#x}: {r:?} (slot retired)",
                    name(&v.dev)
                ),
            }
        }
    }

    /// DomU `domid` stopped: close its vifs, remove their backends and switch ports; their
    /// summaries for the report.
    pub fn remove(
        &mut self,
        x: &Xen,
        server: &mut Server,
        free: &mut Vec<u64>,
        domid: DomId,
    ) -> Vec<VifSummary> {
        let mut out = Vec::new();
        let mut k = 0;
        while k < self.vifs.len() {
            if self.vifs[k].dev.domid != domid {
                k += 1;
                continue;
            }
            self.detach(x, k, free);
            let v = self.vifs.remove(k);
            out.push(self.summary(&v));
            self.switch.remove_port(v.port);
            if let Err(e) = v.dev.remove(server) {
                warn!("vif {}: removing the backend: {e}", name(&v.dev));
            }
        }
        out
    }
}

/// The stack's clock: milliseconds since dom0's entry.
fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

fn name(d: &VifDevice) -> String {
    format!("{}.{}", d.domid, d.handle)
}

/// Map the two ring pages into window slots and bind the channel(s); undone on any failure.
fn attach(
    x: &Xen,
    domid: DomId,
    cfg: FrontendConfig,
    free: &mut Vec<u64>,
) -> Result<Attached, String> {
    let (Some(s0), Some(s1)) = (free.pop(), free.pop()) else {
        return Err(String::from("no free ring slots in the window"));
    };
    let slots = [s0, s1];
    let mut handles = Vec::new();
    let mut fail = |x: &Xen, handles: &[u32], m: String| {
        for (slot, h) in slots.iter().zip(handles) {
            if gnttab::unmap(x, slot * PAGE, *h).is_ok() {
                free.push(*slot);
            }
        }
        for s in &slots[handles.len()..] {
            free.push(*s);
        }
        Err(m)
    };
    for (slot, gref, what) in [(s0, cfg.tx_ring_ref, "TX"), (s1, cfg.rx_ring_ref, "RX")] {
        match gnttab::map(x, domid, gref, slot * PAGE, false) {
            Ok(Ok(h)) => handles.push(h),
            Ok(Err(st)) => {
                return fail(
                    x,
                    &handles,
                    format!("mapping the {what} ring (grant {gref}): {}", st.name()),
                );
            }
            Err(e) => {
                return fail(
                    x,
                    &handles,
                    format!("mapping the {what} ring (grant {gref}): {e}"),
                );
            }
        }
    }
    let remote: Vec<u32> = match cfg.channels {
        Channels::Single(p) => alloc::vec![p],
        Channels::Split { tx, rx } => alloc::vec![tx, rx],
    };
    let mut ports = Vec::new();
    for r in remote {
        match ops::bind_interdomain(x, domid, EvtchnPort(r)) {
            Ok(p) => {
                events::mask(p);
                ports.push(p);
            }
            Err(e) => {
                for p in &ports {
                    let _ = ops::evtchn_close(x, *p);
                }
                return fail(x, &handles, format!("binding event channel {r}: {e}"));
            }
        }
    }
    let (tx_page, rx_page) = (SharedPage::at_slot(s0), SharedPage::at_slot(s1));
    match Link::attach(domid, cfg, &tx_page, &rx_page) {
        // netfront kicked its channel before dom0 bound it (reference §1): nothing is lost,
        // the service pass that follows looks at both rings.
        Ok(link) => Ok(Attached {
            link,
            slots,
            handles: [handles[0], handles[1]],
            ports,
        }),
        Err(e) => {
            for p in &ports {
                let _ = ops::evtchn_close(x, *p);
            }
            fail(x, &handles, format!("rings: {e:?}"))
        }
    }
}

/// The connected vifs' links, each with its ring page from `pages` (see `Net::rings`).
fn links<'a>(
    vifs: &'a mut [NetVif],
    pages: &'a mut [SharedPage],
) -> Vec<(&'a mut Link, &'a mut SharedPage)> {
    vifs.iter_mut()
        .filter_map(|v| v.att.as_mut().map(|a| &mut a.link))
        .zip(pages.iter_mut())
        .collect()
}

/// `v` itself for the last port a packet goes to, a copy for the others (unicast: the only
/// port, and a 64 KiB GSO packet was copied once more here before, bench-net).
fn take_or_clone<T: Clone + Default>(v: &mut T, last: bool) -> T {
    if last { core::mem::take(v) } else { v.clone() }
}
