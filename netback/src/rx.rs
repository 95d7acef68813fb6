//! The RX path (dom0 → guest), as Linux netback does it with grant copies
//! (`drivers/net/xen-netback/rx.c`): each packet waits in a per-vif backlog until the frontend
//! has posted enough RX requests (one per 4 KiB the packet needs), then each request's granted
//! page receives one chunk (`GNTTABOP_copy` with the destination a guest grant) and its slot the
//! response (`NETRXF_more_data` on all but the last, `NETRXF_data_validated` on the first: dom0
//! sends complete checksums).
//!
//! A GSO packet ([`Packet::gso_mss`], only queued for a frontend that asked for
//! `feature-gso-tcpv4` and `feature-sg`) takes one more request: as in Linux netback's
//! `xenvif_rx_skb`, the first data slot says `NETRXF_extra_info` (with `NETRXF_csum_blank` and
//! `NETRXF_data_validated`: the TCP checksum field holds the pseudo-header sum) and the slot
//! after it carries the GSO extra (`XEN_NETIF_EXTRA_TYPE_GSO`, TCPv4, the MSS) instead of a
//! response; the data continues in the slots after that. netfront reads responses by ring
//! index, so each one sits in the slot of the request it consumed.
//!
//! The backlog is bounded in packets and bytes, and a packet that waited longer than
//! [`DRAIN_NS`] is dropped (XSA-392: a frontend that never posts RX buffers must not make dom0
//! queue without limit); what was dropped is counted.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use xen::ring::RingPage;

use crate::gso::GSO_TYPE_TCPV4;
use crate::packet::Packet;
use crate::ring::{BackRing, BadIndex};
use crate::wire::{
    ExtraInfo, NETIF_RSP_ERROR, NETRXF_CSUM_BLANK, NETRXF_DATA_VALIDATED, NETRXF_EXTRA_INFO,
    NETRXF_MORE_DATA, RX_SLOT, RxRequest, RxResponse,
};

/// Packets waiting per vif.
pub const MAX_PACKETS: usize = 256;
/// Bytes waiting per vif.
pub const MAX_BYTES: usize = 1 << 20;
/// A packet that could not be delivered for this long is dropped (Linux's
/// `rx_drain_timeout_msecs`, 10 s).
pub const DRAIN_NS: u64 = 10_000_000_000;
/// The largest packet the RX path takes (what one TX chain can carry).
pub const MAX_PACKET: usize = 0xffff;
const PAGE: usize = 4096;

/// One grant copy: `len` bytes at `src` of packet `packet` (in this delivery) into the guest's
/// granted page `gref` at offset 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxCopy {
    pub packet: usize,
    pub src: usize,
    pub gref: u32,
    pub len: u16,
}

/// What one consumed request's slot gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxSlot {
    Response(RxResponse),
    /// An extra-info slot (`netif_extra_info` in place of a response).
    Extra(ExtraInfo),
}

impl RxSlot {
    pub fn to_bytes(&self) -> [u8; RX_SLOT] {
        match self {
            RxSlot::Response(r) => r.to_bytes(),
            RxSlot::Extra(e) => e.to_bytes(false),
        }
    }
}

/// What one call of [`RxQueue::deliver`] took from the ring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The packets delivered, in order.
    pub packets: Vec<Packet>,
    pub copies: Vec<RxCopy>,
    /// One slot per consumed request, in ring order (write them with
    /// [`Delivery::responses`] once the copies are done).
    slots: Vec<(RxSlot, usize)>,
}

impl Delivery {
    /// The slots, in ring order: each data slot of a packet whose copies did not all succeed
    /// (`copy_ok[i]` for `copies[i]`) gets `NETIF_RSP_ERROR`, keeping its chain flags (as Linux
    /// netback does), so that netfront drops the whole packet and stays in step with the ring.
    pub fn responses(&self, copy_ok: &[bool]) -> Vec<RxSlot> {
        let mut failed = alloc::vec![false; self.packets.len()];
        for (c, ok) in self
            .copies
            .iter()
            .zip(copy_ok.iter().chain(core::iter::repeat(&false)))
        {
            if !ok {
                failed[c.packet] = true;
            }
        }
        self.slots
            .iter()
            .map(|&(slot, p)| match slot {
                RxSlot::Response(r) if failed[p] => RxSlot::Response(RxResponse {
                    status: NETIF_RSP_ERROR,
                    flags: r.flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO),
                    ..r
                }),
                s => s,
            })
            .collect()
    }
}

/// Counters of one vif's RX side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxCounters {
    pub delivered: u64,
    /// Of those, GSO packets delivered whole (with a GSO extra slot).
    pub delivered_gso: u64,
    /// Refused because the backlog was full (packets or bytes).
    pub dropped_full: u64,
    /// Waited longer than [`DRAIN_NS`].
    pub dropped_stale: u64,
    /// Empty or larger than [`MAX_PACKET`].
    pub dropped_size: u64,
    /// The most bytes the backlog held at once (at most [`MAX_BYTES`]).
    pub peak_bytes: u64,
}

/// One vif's RX backlog.
#[derive(Debug, Clone, Default)]
pub struct RxQueue {
    backlog: VecDeque<(Packet, u64)>,
    bytes: usize,
    pub counters: RxCounters,
}

impl RxQueue {
    pub fn new() -> RxQueue {
        RxQueue::default()
    }

    /// Bytes of the queue itself (its entries, not the frames they own).
    pub fn queue_bytes(&self) -> usize {
        self.backlog.capacity() * core::mem::size_of::<(Packet, u64)>()
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.backlog.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backlog.is_empty()
    }

    /// RX requests (buffers, and the GSO extra slot) the first waiting packet needs.
    pub fn head_need(&self) -> Option<u32> {
        self.backlog
            .front()
            .map(|(p, _)| p.len().div_ceil(PAGE) as u32 + u32::from(p.gso_mss.is_some()))
    }

    /// Queue `pkt` (arrived at `now_ns`) for the guest; false if it was dropped. A GSO packet
    /// is queued only for a frontend that takes GSO on RX (the caller's choice).
    pub fn push(&mut self, pkt: impl Into<Packet>, now_ns: u64) -> bool {
        let pkt = pkt.into();
        if pkt.is_empty() || pkt.len() > MAX_PACKET {
            self.counters.dropped_size += 1;
            return false;
        }
        if self.backlog.len() >= MAX_PACKETS || self.bytes + pkt.len() > MAX_BYTES {
            self.counters.dropped_full += 1;
            return false;
        }
        self.bytes += pkt.len();
        self.counters.peak_bytes = self.counters.peak_bytes.max(self.bytes as u64);
        self.backlog.push_back((pkt, now_ns));
        true
    }

    /// Drop packets that waited longer than [`DRAIN_NS`].
    pub fn expire(&mut self, now_ns: u64) {
        while let Some((p, at)) = self.backlog.front() {
            if now_ns.saturating_sub(*at) < DRAIN_NS {
                break;
            }
            self.bytes -= p.len();
            self.backlog.pop_front();
            self.counters.dropped_stale += 1;
        }
    }

    /// Take as many waiting packets as the frontend has posted buffers for, in order, and plan
    /// their copies and responses.
    pub fn deliver<P: RingPage + ?Sized>(
        &mut self,
        ring: &mut BackRing,
        page: &P,
    ) -> Result<Delivery, BadIndex> {
        let mut d = Delivery::default();
        let mut posted = ring.unconsumed(page)?;
        while let Some((pkt, _)) = self.backlog.front() {
            let extra = pkt.gso_mss.is_some();
            let need = self.head_need().unwrap_or(0);
            if need > posted {
                break;
            }
            let (pkt, _) = self.backlog.pop_front().unwrap_or_default();
            self.bytes -= pkt.len();
            posted -= need;
            let index = d.packets.len();
            for (k, chunk) in pkt.data.chunks(PAGE).enumerate() {
                let req = RxRequest::parse(&ring.take::<P, RX_SLOT>(page));
                let last = (k + 1) * PAGE >= pkt.len();
                d.copies.push(RxCopy {
                    packet: index,
                    src: k * PAGE,
                    gref: req.gref,
                    len: chunk.len() as u16,
                });
                let mut flags = if last { 0 } else { NETRXF_MORE_DATA };
                if k == 0 {
                    flags |= NETRXF_DATA_VALIDATED;
                    if extra {
                        flags |= NETRXF_EXTRA_INFO | NETRXF_CSUM_BLANK;
                    }
                }
                d.slots.push((
                    RxSlot::Response(RxResponse {
                        id: req.id,
                        offset: 0,
                        flags,
                        status: chunk.len() as i16,
                    }),
                    index,
                ));
                if let (0, Some(mss)) = (k, pkt.gso_mss) {
                    // The extra goes right after the first data slot, in the next request's
                    // slot (Linux netback's `xenvif_rx_extra_slot`).
                    ring.take::<P, RX_SLOT>(page);
                    d.slots.push((
                        RxSlot::Extra(ExtraInfo::Gso {
                            size: mss,
                            kind: GSO_TYPE_TCPV4,
                            features: 0,
                        }),
                        index,
                    ));
                }
            }
            if extra {
                self.counters.delivered_gso += 1;
            }
            d.packets.push(pkt);
            self.counters.delivered += 1;
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests;
