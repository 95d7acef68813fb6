//! One connected vif's data path: its two rings, grant copies through dom0's bounce buffer,
//! and the counters the report shows. dom0 maps the ring pages and owns the bounce buffer;
//! everything here runs on a [`RingPage`] and a [`Bounce`], so it is host-tested on `FakeXen`.
//!
//! TX (guest → dom0): each packet's slot chain is validated ([`crate::tx`]), its bytes are
//! grant-copied into the bounce buffer (`GNTTABOP_copy`, never crossing a page on either side,
//! every op's status checked), then copied out as one frame; a `NETTXF_csum_blank` packet gets
//! its checksum completed ([`crate::csum`]); every slot is answered after the copies (netif.h).
//! RX (dom0 → guest): a frame waits in the vif's bounded backlog ([`RxQueue`]) until netfront
//! posts buffers, is written into the bounce buffer and grant-copied into them, one response in
//! the consumed request's slot.

use alloc::vec;
use alloc::vec::Vec;

use xen::Hypercall;
use xen::gnttab::{self, Copy, CopyPtr, GrantStatus};
use xen::ring::RingPage;

use crate::packet::Packet;
use crate::ring::{BackRing, BadIndex};
use crate::rx::{Delivery, RxQueue};
use crate::tx::{self, TxDrop, TxFatal, TxPacket};
use crate::wire::{ExtraInfo, RX_SLOT, TX_SLOT};
use crate::xenbus::FrontendConfig;

const PAGE: usize = 4096;
/// Pages in the bounce buffer (256 KiB, one for all vifs): a service pass's packets of every
/// vif, each way, in one `GNTTABOP_copy` (with 16 pages a DomU -> DomU pass of two or three
/// 27 KB GSO packets took two each way, `cargo image bench-net`). A packet's at most 18 data
/// slots each fit on a fresh page of an empty buffer.
pub const BOUNCE_PAGES: usize = 64;
const _: () = assert!(BOUNCE_PAGES >= crate::wire::NR_SLOTS_MIN);

/// dom0 memory that packets pass through: grant copies land in its frames (TX) and leave
/// from them (RX). In dom0 it is heap memory, identity-mapped, so a frame's number is its
/// address / 4096.
pub trait Bounce {
    /// dom0's frame number of the buffer's page `i` (`i < BOUNCE_PAGES`).
    fn gfn(&self, i: usize) -> u64;
    /// `out.len()` bytes at `at` (the pages back to back).
    fn read(&self, at: usize, out: &mut [u8]);
    /// Append `len` bytes at `at` to `out`. The default zero-fills and then [`Bounce::read`]s;
    /// dom0's appends page slices instead (a 64 KiB GSO packet was written twice).
    fn read_append(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + len, 0);
        self.read(at, &mut out[start..]);
    }
    /// Write `data` at `at`.
    fn write(&mut self, at: usize, data: &[u8]);
}

/// [`Bounce::read`] over pages laid back to back: a `copy_from_slice` per page touched (byte by
/// byte, dom0's copies were a fifth of an emulated machine's time in a DomU -> DomU transfer).
/// Panics if the range runs past the last page, as indexing would.
pub fn read_paged<P: core::borrow::Borrow<[u8; PAGE]>>(pages: &[P], at: usize, out: &mut [u8]) {
    let mut done = 0;
    while done < out.len() {
        let (page, off) = ((at + done) / PAGE, (at + done) % PAGE);
        let n = (PAGE - off).min(out.len() - done);
        out[done..done + n].copy_from_slice(&pages[page].borrow()[off..off + n]);
        done += n;
    }
}

/// [`Bounce::read_append`] over pages laid back to back: `len` bytes at `at` appended to `out`
/// a page slice at a time (no zero fill first).
pub fn read_paged_append<P: core::borrow::Borrow<[u8; PAGE]>>(
    pages: &[P],
    at: usize,
    len: usize,
    out: &mut Vec<u8>,
) {
    out.reserve(len);
    let mut done = 0;
    while done < len {
        let (page, off) = ((at + done) / PAGE, (at + done) % PAGE);
        let n = (PAGE - off).min(len - done);
        out.extend_from_slice(&pages[page].borrow()[off..off + n]);
        done += n;
    }
}

/// Where a TX packet's slots go in the bounce buffer, from `used` on: a slot that fits in what
/// is left of the current page follows the one before it; one that does not starts on the next
/// page at its own offset in the guest's page. A slot never crosses a page on the guest's side,
/// so then it crosses none on dom0's either: one `gnttab_copy` per slot. Packed back to back
/// instead, most full-page slots straddled two of dom0's pages and took two (14 ops for a 26 KB
/// GSO packet of 7-8 slots, `cargo image bench-net`). The slots' positions and the end, or
/// `None` if they run past `cap`.
pub fn place_tx_slots(
    copies: &[tx::TxCopy],
    used: usize,
    cap: usize,
) -> Option<(Vec<usize>, usize)> {
    let mut at = used;
    let mut pos = Vec::with_capacity(copies.len());
    for c in copies {
        let len = usize::from(c.len);
        if at % PAGE + len > PAGE {
            at = (at / PAGE + 1) * PAGE + usize::from(c.offset) % PAGE;
        }
        pos.push(at);
        at += len;
    }
    (at <= cap).then_some((pos, at))
}

/// Where an RX packet of `len` bytes goes in the bounce buffer after `used` bytes: right after
/// them if it fits in what is left of that page, else at the next page's start, so each of the
/// guest's buffers (a page of the packet, [`crate::rx`]) is one `gnttab_copy` from one of
/// dom0's pages (packed back to back, most took two).
pub fn place_rx_packet(used: usize, len: usize) -> usize {
    if used % PAGE + len <= PAGE {
        used
    } else {
        used.div_ceil(PAGE) * PAGE
    }
}

/// [`Bounce::write`] over pages laid back to back (see [`read_paged`]).
pub fn write_paged<P: core::borrow::BorrowMut<[u8; PAGE]>>(
    pages: &mut [P],
    at: usize,
    data: &[u8],
) {
    let mut done = 0;
    while done < data.len() {
        let (page, off) = ((at + done) / PAGE, (at + done) % PAGE);
        let n = (PAGE - off).min(data.len() - done);
        pages[page].borrow_mut()[off..off + n].copy_from_slice(&data[done..done + n]);
        done += n;
    }
}

/// What one vif moved, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VifCounters {
    /// Packets and bytes the guest sent that dom0 took.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets refused with `NETIF_RSP_ERROR` (malformed chain, see [`crate::tx::TxDrop`]).
    pub tx_dropped: u64,
    /// Packets whose grant copies failed (a bad or revoked grant): only that packet fails.
    pub tx_copy_errors: u64,
    /// Packets and bytes delivered into the guest's buffers.
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_copy_errors: u64,
    /// `gnttab_copy` ops issued and the hypercalls that carried them (both directions).
    pub grant_copies: u64,
    pub copy_hypercalls: u64,
    /// GSO packets taken (`feature-gso-tcpv4`), the MTU-sized frames dom0 cut them into for
    /// ports that could not take them whole (counted by whoever cuts them:
    /// [`Link::count_segmented`]), and GSO packets dropped as malformed
    /// ([`crate::gso::GsoError`]) or of a type dom0 did not offer.
    pub tx_gso_packets: u64,
    pub tx_gso_segments: u64,
    pub tx_gso_dropped: u64,
    /// GSO packets delivered whole into the guest's buffers (its netfront asked for
    /// `feature-gso-tcpv4` on RX).
    pub rx_gso_packets: u64,
}

impl core::ops::AddAssign<&VifCounters> for VifCounters {
    /// Add another connection's counters (a vif's total over its reconnects).
    fn add_assign(&mut self, c: &VifCounters) {
        self.tx_packets += c.tx_packets;
        self.tx_bytes += c.tx_bytes;
        self.tx_dropped += c.tx_dropped;
        self.tx_copy_errors += c.tx_copy_errors;
        self.rx_packets += c.rx_packets;
        self.rx_bytes += c.rx_bytes;
        self.rx_copy_errors += c.rx_copy_errors;
        self.grant_copies += c.grant_copies;
        self.copy_hypercalls += c.copy_hypercalls;
        self.tx_gso_packets += c.tx_gso_packets;
        self.tx_gso_segments += c.tx_gso_segments;
        self.tx_gso_dropped += c.tx_gso_dropped;
        self.rx_gso_packets += c.rx_gso_packets;
    }
}

/// A connected vif: the frontend's configuration and the backend's view of both rings.
#[derive(Debug, Clone)]
pub struct Link {
    pub domid: u16,
    pub cfg: FrontendConfig,
    pub tx: BackRing,
    pub rx: BackRing,
    /// Frames waiting for RX buffers (bounded: XSA-392).
    pub rxq: RxQueue,
    pub counters: VifCounters,
    /// The RX ring's `req_prod` when last looked at, and how many looks found it moved: a
    /// frontend posting buffers (and notifying, `feature-rx-notify`) is working, not storming.
    rx_req_prod_seen: u32,
    pub rx_posts_seen: u64,
    /// The last [`Link::receive`] stopped with frames waiting and buffers posted for them
    /// (posted while `req_event` was re-armed, so the frontend did not notify): serve again
    /// without sleeping, or they wait for an unrelated wakeup.
    pub rx_more: bool,
}

/// What a TX pass took from the guest.
#[derive(Debug, Default)]
pub struct Transmitted {
    /// In ring order: frames with their checksums completed, and GSO packets kept whole
    /// (checked, TCP checksum field in `CHECKSUM_PARTIAL` form).
    pub packets: Vec<Packet>,
    /// The frontend asked to be notified of the responses.
    pub notify: bool,
    /// Requests are still waiting (the budget ran out): serve again without sleeping.
    pub more: bool,
}

impl Link {
    /// Attach to the rings netfront initialised (at their current indices).
    pub fn attach<P: RingPage + ?Sized>(
        domid: u16,
        cfg: FrontendConfig,
        tx_page: &P,
        rx_page: &P,
    ) -> Result<Link, BadIndex> {
        Ok(Link {
            domid,
            cfg,
            tx: BackRing::attach(tx_page, TX_SLOT)?,
            rx: BackRing::attach(rx_page, RX_SLOT)?,
            rxq: RxQueue::new(),
            counters: VifCounters::default(),
            rx_req_prod_seen: rx_page.load_u32(crate::ring::REQ_PROD),
            rx_posts_seen: 0,
            rx_more: false,
        })
    }

    /// Take up to `budget` packets from the TX ring (bounded work per wakeup). A fatal
    /// protocol error is returned as is: the caller disables this vif (only this one).
    /// [`transmit_all`] for this one vif.
    pub fn transmit<P: RingPage + ?Sized>(
        &mut self,
        x: &dyn Hypercall,
        page: &mut P,
        bounce: &mut dyn Bounce,
        budget: usize,
    ) -> Result<Transmitted, TxFatal> {
        let mut one = [(self, page)];
        transmit_all(x, &mut one, bounce, budget)
            .pop()
            .unwrap_or(Ok(Transmitted::default()))
    }

    /// Answer one TX packet whose copies are done (`copied`: all of them succeeded): read it
    /// out of the bounce buffer as a frame (slot by slot, each at its position `pos`), check it
    /// and put it in `out`, and write its responses (in ring order: the caller finishes
    /// packets in the order they were taken).
    fn finish_tx_packet<P: RingPage + ?Sized>(
        &mut self,
        page: &mut P,
        bounce: &dyn Bounce,
        p: TxPacket,
        pos: &[usize],
        copied: bool,
        out: &mut Transmitted,
    ) {
        let good = if p.dropped.is_some() {
            self.counters.tx_dropped += 1;
            false
        } else if copied {
            // The slots in order (they cover the packet exactly, `tx::next_packet`).
            let mut frame = Vec::with_capacity(usize::from(p.len));
            for (c, &at) in p.copies.iter().zip(pos) {
                bounce.read_append(at, usize::from(c.len), &mut frame);
            }
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += frame.len() as u64;
            let gso = p.extras.iter().find_map(|e| match *e {
                ExtraInfo::Gso { size, kind, .. } => Some((size, kind)),
                _ => None,
            });
            match gso {
                // A large packet (`feature-gso-tcpv4`): checked now, cut into MTU-sized
                // frames only for the ports that cannot take it whole.
                Some((mss, crate::gso::GSO_TYPE_TCPV4)) => {
                    let checked = if p.csum_blank {
                        crate::gso::check(&frame, mss)
                    } else {
                        crate::gso::set_partial_csum(&mut frame, mss)
                    };
                    match checked {
                        Ok(()) => {
                            self.counters.tx_gso_packets += 1;
                            out.packets.push(Packet {
                                data: frame,
                                gso_mss: Some(mss),
                            });
                        }
                        Err(_) => self.counters.tx_gso_dropped += 1,
                    }
                }
                // A GSO type dom0 did not offer: dropped, as Linux netback drops it.
                Some(_) => self.counters.tx_gso_dropped += 1,
                None => {
                    let mut frame = frame;
                    if p.csum_blank {
                        // The guest left the L4 checksum to us (netfront always offers
                        // IPv4 offload); a frame it cannot be completed for goes on as is,
                        // as Linux netback does.
                        let _ = crate::csum::complete(&mut frame);
                    }
                    out.packets.push(Packet::frame(frame));
                }
            }
            true
        } else {
            self.counters.tx_copy_errors += 1;
            false
        };
        for r in p.responses(good) {
            self.tx.respond(page, &r.to_bytes());
        }
    }

    /// Whether this frontend takes GSO packets whole on RX (it wrote `feature-gso-tcpv4` and
    /// `feature-sg`), as Linux netback's `gso_mask` and `can_sg`.
    pub fn takes_gso(&self) -> bool {
        self.cfg.rx_gso_tcpv4 && self.cfg.sg
    }

    /// Count what cutting one of this vif's GSO packets into frames gave (`Some(n)` frames, or
    /// `None`: it could not be cut and was dropped).
    pub fn count_segmented(&mut self, frames: Option<usize>) {
        match frames {
            Some(n) => self.counters.tx_gso_segments += n as u64,
            None => self.counters.tx_gso_dropped += 1,
        }
    }

    /// Deliver waiting frames into the buffers netfront posted; whether to notify it.
    /// [`receive_all`] for this one vif.
    pub fn receive<P: RingPage + ?Sized>(
        &mut self,
        x: &dyn Hypercall,
        page: &mut P,
        bounce: &mut dyn Bounce,
        now_ns: u64,
    ) -> Result<bool, BadIndex> {
        let mut one = [(self, page)];
        receive_all(x, &mut one, bounce, now_ns)
            .pop()
            .unwrap_or(Ok(false))
    }

    /// Before a delivery: drop stale frames, and count the buffers netfront posted since the
    /// last look.
    fn rx_begin<P: RingPage + ?Sized>(&mut self, page: &P, now_ns: u64) {
        self.rxq.expire(now_ns);
        // Counted only when `req_prod` moved forward and stays within a ring of what dom0
        // consumed: a guest cannot pass kicks off as work by moving it back and forth, and at
        // most a ring's worth of posts counts before dom0 consumes some.
        let prod = page.load_u32(crate::ring::REQ_PROD);
        let ahead = prod.wrapping_sub(self.rx.req_cons);
        let moved = prod.wrapping_sub(self.rx_req_prod_seen);
        let size = self.rx.size();
        if ahead <= size {
            if moved != 0 && moved <= size {
                self.rx_req_prod_seen = prod;
                self.rx_posts_seen += 1;
            } else if self.rx_req_prod_seen.wrapping_sub(prod) > size {
                // Far from the last value (not a step back): resynchronise, count nothing.
                self.rx_req_prod_seen = prod;
            }
        }
        self.rx_more = false;
    }
}

/// One vif served by [`transmit_all`] or [`receive_all`]: its link and the ring page of the
/// direction served.
pub type Served<'a, P> = (&'a mut Link, &'a mut P);

/// Run `ops` for several vifs at once (at most [`gnttab::COPY_BATCH`] per `GNTTABOP_copy`):
/// `owner[j]` is the vif of `ops[j]`. Each vif counts its ops and the hypercalls that carried
/// any of them. Whether each op succeeded.
fn run_copies<P: RingPage + ?Sized>(
    x: &dyn Hypercall,
    links: &mut [Served<'_, P>],
    ops: &[Copy],
    owner: &[usize],
) -> Vec<bool> {
    if ops.is_empty() {
        return Vec::new();
    }
    let mut st = vec![GrantStatus::OKAY; ops.len()];
    let sent = gnttab::copy(x, ops, &mut st).is_ok();
    for chunk in owner.chunks(gnttab::COPY_BATCH) {
        let mut carried = vec![false; links.len()];
        for &i in chunk {
            links[i].0.counters.grant_copies += 1;
            carried[i] = true;
        }
        for (i, c) in carried.into_iter().enumerate() {
            links[i].0.counters.copy_hypercalls += u64::from(c);
        }
    }
    st.iter().map(|s| sent && s.ok()).collect()
}

/// Take up to `budget` packets from each vif's TX ring (bounded work per wakeup, the vifs in
/// the order given), one result per vif. A fatal protocol error is returned as is: the caller
/// disables that vif (only that one); the packets it sent before are answered.
///
/// The copies of every vif's packets go to Xen together, as many as the bounce buffer holds
/// (one `GNTTABOP_copy` per 64 ops): each hypercall is a VM exit, under QEMU a flush of its
/// soft TLB, and one per vif per pass was 4 of dom0's 7.7 traps per pass in a DomU -> DomU
/// transfer. Every packet is answered after its copies, in ring order.
pub fn transmit_all<P: RingPage + ?Sized>(
    x: &dyn Hypercall,
    links: &mut [Served<'_, P>],
    bounce: &mut dyn Bounce,
    budget: usize,
) -> Vec<Result<Transmitted, TxFatal>> {
    let n = links.len();
    let mut outs: Vec<Transmitted> = (0..n).map(|_| Transmitted::default()).collect();
    let mut fatal: Vec<Option<TxFatal>> = (0..n).map(|_| None).collect();
    let mut taken = vec![0usize; n];
    let mut batch: Vec<(usize, TxPacket, Vec<usize>)> = Vec::new();
    let mut used = 0usize;
    let cap = BOUNCE_PAGES * PAGE;
    for i in 0..n {
        while taken[i] < budget {
            let next = {
                let (l, p) = &mut links[i];
                tx::next_packet(&mut l.tx, &**p)
            };
            let mut p = match next {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    fatal[i] = Some(e);
                    break;
                }
            };
            taken[i] += 1;
            let mut pos = Vec::new();
            if p.dropped.is_none() {
                let placed = match place_tx_slots(&p.copies, used, cap) {
                    Some(placed) => Some(placed),
                    None => {
                        flush_tx(x, links, bounce, &mut batch, &mut outs);
                        used = 0;
                        place_tx_slots(&p.copies, 0, cap)
                    }
                };
                match placed {
                    Some(placed) => (pos, used) = placed,
                    // Cannot happen: a packet's at most `NR_SLOTS_MIN` data slots each fit on
                    // a fresh page of the empty buffer (checked at build time, at
                    // `BOUNCE_PAGES`). Refused, not trusted, if it ever did.
                    None => p.dropped = Some(TxDrop::TooManySlots(p.copies.len())),
                }
            }
            batch.push((i, p, pos));
        }
    }
    flush_tx(x, links, bounce, &mut batch, &mut outs);
    let mut res = Vec::with_capacity(n);
    for (i, (mut out, fatal)) in outs.into_iter().zip(fatal).enumerate() {
        let (l, p) = &mut links[i];
        out.notify = l.tx.push_responses(&mut **p);
        if let Some(e) = fatal {
            res.push(Err(e));
            continue;
        }
        let more = if taken[i] == budget {
            l.tx.unconsumed(&**p).map(|u| u > 0)
        } else {
            // Drained: re-arm `req_event` so the next request notifies (and look once more).
            l.tx.final_check(&mut **p)
        };
        res.push(match more {
            Ok(m) => {
                out.more = m;
                Ok(out)
            }
            Err(e) => Err(TxFatal::BadIndex(e)),
        });
    }
    res
}

/// Grant-copy a batch of packets (of any of `links`) into the bounce buffer, each slot at its
/// position ([`place_tx_slots`]), in one go; then read them out and answer every slot.
fn flush_tx<P: RingPage + ?Sized>(
    x: &dyn Hypercall,
    links: &mut [Served<'_, P>],
    bounce: &mut dyn Bounce,
    batch: &mut Vec<(usize, TxPacket, Vec<usize>)>,
    outs: &mut [Transmitted],
) {
    let mut copies = Vec::new();
    let mut owner = Vec::new();
    let mut entry = Vec::new();
    for (k, (i, p, pos)) in batch.iter().enumerate() {
        if p.dropped.is_some() {
            continue;
        }
        let domid = links[*i].0.domid;
        for (c, &at) in p.copies.iter().zip(pos) {
            let (mut src, mut dst, mut left) = (usize::from(c.offset), at, usize::from(c.len));
            while left > 0 {
                // Split where the bounce buffer's pages end (the guest side never crosses).
                let n = left.min(PAGE - dst % PAGE);
                copies.push(Copy {
                    source: CopyPtr::Grant {
                        domid,
                        gref: c.gref,
                        offset: src as u16,
                    },
                    dest: CopyPtr::Local {
                        gfn: bounce.gfn(dst / PAGE),
                        offset: (dst % PAGE) as u16,
                    },
                    len: n as u16,
                });
                owner.push(*i);
                entry.push(k);
                src += n;
                dst += n;
                left -= n;
            }
        }
    }
    let st = run_copies(x, links, &copies, &owner);
    let mut ok = vec![true; batch.len()];
    for (&k, good) in entry.iter().zip(st) {
        ok[k] &= good;
    }
    for (k, (i, p, pos)) in batch.drain(..).enumerate() {
        let (l, page) = &mut links[i];
        l.finish_tx_packet(&mut **page, bounce, p, &pos, ok[k], &mut outs[i]);
    }
}

/// Deliver waiting frames into the buffers each vif's netfront posted; per vif, whether to
/// notify it (or its ring's fatal error: the caller disables that vif only).
///
/// Every vif's first delivery of the pass is copied together (one `GNTTABOP_copy` for all,
/// while the bounce buffer holds them; see [`transmit_all`] for why); what is left (frames for
/// buffers posted while dom0 delivered, rare) each vif delivers on its own.
pub fn receive_all<P: RingPage + ?Sized>(
    x: &dyn Hypercall,
    links: &mut [Served<'_, P>],
    bounce: &mut dyn Bounce,
    now_ns: u64,
) -> Vec<Result<bool, BadIndex>> {
    let mut res: Vec<Result<bool, BadIndex>> = Vec::with_capacity(links.len());
    let mut deliveries: Vec<(usize, Delivery)> = Vec::new();
    for (i, (l, p)) in links.iter_mut().enumerate() {
        l.rx_begin(&**p, now_ns);
        match l.rxq.deliver(&mut l.rx, &**p) {
            Ok(d) => {
                res.push(Ok(false));
                if !d.packets.is_empty() {
                    deliveries.push((i, d));
                }
            }
            Err(e) => res.push(Err(e)),
        }
    }
    let oks = copy_out(x, links, &deliveries, bounce);
    for ((i, d), ok) in deliveries.iter().zip(&oks) {
        let (l, p) = &mut links[*i];
        for r in d.responses(ok) {
            l.rx.respond(&mut **p, &r.to_bytes());
        }
        let notify = l.rx.push_responses(&mut **p);
        if let Ok(n) = res[*i].as_mut() {
            *n |= notify;
        }
    }
    for (i, r) in res.iter_mut().enumerate() {
        if let Ok(notify) = *r {
            *r = receive_rest(x, &mut links[i..=i], bounce, notify);
        }
    }
    res
}

/// One vif's RX after its first delivery: more deliveries while buffers allow, then, with
/// frames still waiting, ask to hear of the next buffer posted; once more if buffers came in
/// meanwhile (they did not notify), after which [`Link::rx_more`] says so.
fn receive_rest<P: RingPage + ?Sized>(
    x: &dyn Hypercall,
    one: &mut [Served<'_, P>],
    bounce: &mut dyn Bounce,
    mut notify: bool,
) -> Result<bool, BadIndex> {
    for _ in 0..2 {
        loop {
            let d = {
                let (l, p) = &mut one[0];
                l.rxq.deliver(&mut l.rx, &**p)?
            };
            if d.packets.is_empty() {
                break;
            }
            let d = [(0, d)];
            let ok = copy_out(x, one, &d, bounce);
            let (l, p) = &mut one[0];
            for r in d[0].1.responses(&ok[0]) {
                l.rx.respond(&mut **p, &r.to_bytes());
            }
            notify |= l.rx.push_responses(&mut **p);
        }
        let (l, p) = &mut one[0];
        // Frames still wait: ask to hear of the next buffer posted, unless the first frame's
        // buffers are already there.
        let ready = match l.rxq.head_need() {
            Some(need) => l.rx.await_requests(&mut **p, need)?,
            None => false,
        };
        l.rx_more = ready;
        if !ready {
            break;
        }
    }
    Ok(notify)
}

/// Grant-copy the deliveries' packets (`(vif, delivery)`) into the guests' buffers, as many
/// packets per hypercall as the bounce buffer holds ([`place_rx_packet`]); whether each of
/// every delivery's copies succeeded.
fn copy_out<P: RingPage + ?Sized>(
    x: &dyn Hypercall,
    links: &mut [Served<'_, P>],
    deliveries: &[(usize, Delivery)],
    bounce: &mut dyn Bounce,
) -> Vec<Vec<bool>> {
    let mut oks: Vec<Vec<bool>> = deliveries
        .iter()
        .map(|(_, d)| vec![true; d.copies.len()])
        .collect();
    // Per delivery, its next copy not yet sent (copies are in packet order).
    let mut next = vec![0usize; deliveries.len()];
    // Packets written into the bounce buffer and not yet copied: (delivery, packet, at).
    let mut staged: Vec<(usize, usize, usize)> = Vec::new();
    let mut used = 0usize;
    for (di, (_, d)) in deliveries.iter().enumerate() {
        for (pi, pkt) in d.packets.iter().enumerate() {
            let len = pkt.len();
            let mut at = place_rx_packet(used, len);
            if !staged.is_empty() && at + len > BOUNCE_PAGES * PAGE {
                flush_rx(x, links, deliveries, bounce, &staged, &mut next, &mut oks);
                staged.clear();
                at = 0;
            }
            bounce.write(at, &pkt.data);
            staged.push((di, pi, at));
            used = at + len;
        }
    }
    flush_rx(x, links, deliveries, bounce, &staged, &mut next, &mut oks);
    oks
}

/// Copy the staged packets (see [`copy_out`]) into their guests' buffers in one go, record
/// each copy's success and count each packet on its vif.
fn flush_rx<P: RingPage + ?Sized>(
    x: &dyn Hypercall,
    links: &mut [Served<'_, P>],
    deliveries: &[(usize, Delivery)],
    bounce: &dyn Bounce,
    staged: &[(usize, usize, usize)],
    next: &mut [usize],
    oks: &mut [Vec<bool>],
) {
    let (mut copies, mut owner, mut whose) = (Vec::new(), Vec::new(), Vec::new());
    for (s, &(di, pi, at)) in staged.iter().enumerate() {
        let (i, d) = &deliveries[di];
        while next[di] < d.copies.len() && d.copies[next[di]].packet == pi {
            let k = next[di];
            let c = d.copies[k];
            // The guest's buffer takes the chunk at offset 0; split where dom0's pages end.
            let (mut src, mut dst, mut left) = (at + c.src, 0usize, usize::from(c.len));
            while left > 0 {
                let n = left.min(PAGE - src % PAGE);
                copies.push(Copy {
                    source: CopyPtr::Local {
                        gfn: bounce.gfn(src / PAGE),
                        offset: (src % PAGE) as u16,
                    },
                    dest: CopyPtr::Grant {
                        domid: links[*i].0.domid,
                        gref: c.gref,
                        offset: dst as u16,
                    },
                    len: n as u16,
                });
                owner.push(*i);
                whose.push((s, k));
                src += n;
                dst += n;
                left -= n;
            }
            next[di] += 1;
        }
    }
    let st = run_copies(x, links, &copies, &owner);
    let mut good = vec![true; staged.len()];
    for (&(s, k), ok) in whose.iter().zip(st) {
        let di = staged[s].0;
        oks[di][k] &= ok;
        good[s] &= ok;
    }
    for (&(di, pi, _), g) in staged.iter().zip(good) {
        let (i, d) = &deliveries[di];
        let c = &mut links[*i].0.counters;
        if g {
            c.rx_packets += 1;
            c.rx_bytes += d.packets[pi].len() as u64;
            if d.packets[pi].gso_mss.is_some() {
                c.rx_gso_packets += 1;
            }
        } else {
            c.rx_copy_errors += 1;
        }
    }
}

#[cfg(test)]
mod tests;
