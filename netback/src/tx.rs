//! One guest packet from the TX ring (guest → dom0), as Linux netback takes it
//! (`drivers/net/xen-netback/netback.c`: `xenvif_tx_build_gops`, `xenvif_count_requests`,
//! `xenvif_get_extras`): the first request, its extra-info slots, the `more_data` chain; each
//! slot copied out of the ring once; then validated, and turned into a plan of grant copies
//! (`GNTTABOP_copy` with the source a guest grant) and the responses to write, one per slot.
//!
//! What is fatal for the whole vif (the frontend is broken or hostile, Linux's
//! `xenvif_fatal_tx_err`) and what only drops the packet follows Linux:
//! - fatal: an impossible ring index (XSA-39), a chain of more than [`FATAL_SLOTS`] slots or one
//!   that runs past what the frontend posted, a slot whose data crosses its page
//!   (`offset + size > 4096`), an unknown extra-info type;
//! - dropped (responses `NETIF_RSP_ERROR`, the ring goes on): a first slot shorter than an
//!   Ethernet header, fragments adding up to more than the packet, more than
//!   [`wire::NR_SLOTS_MIN`] data slots.
//!
//! Zero-length fragments (XSA-448) are accepted and produce no copy. A copy whose grant the
//! hypervisor refuses fails only that packet ([`TxPacket::responses`] with `ok = false`).

use alloc::vec::Vec;

use xen::ring::RingPage;

use crate::ring::{BackRing, BadIndex};
use crate::wire::{
    self, ExtraInfo, NETIF_RSP_ERROR, NETIF_RSP_NULL, NETIF_RSP_OKAY, TX_SLOT, TxRequest,
};

/// Linux's `fatal_skb_slots` default: a chain longer than this is an attack, not a packet.
pub const FATAL_SLOTS: usize = 20;
/// `ETH_HLEN`: a first slot shorter than an Ethernet header is an error.
pub const ETH_HLEN: u16 = 14;
const PAGE: u32 = 4096;

/// Why a vif must be disabled: the frontend broke the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxFatal {
    BadIndex(BadIndex),
    /// More slots than [`FATAL_SLOTS`].
    TooManySlots(usize),
    /// The chain (or its extras) needs more slots than the frontend posted.
    Incomplete {
        needed: usize,
        posted: u32,
    },
    /// A slot's data crosses its page.
    CrossesPage {
        slot: usize,
        offset: u16,
        size: u16,
    },
    UnknownExtra(u8),
    /// A GSO extra with size 0 (Linux netback: "GSO size must not be zero", fatal).
    GsoSizeZero,
}

/// Why one packet was dropped (the vif goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxDrop {
    /// The first slot is shorter than an Ethernet header.
    TooShort(u16),
    /// The fragments add up to more than the packet's length.
    FragmentsTooLong { total: u16, fragments: u32 },
    /// More data slots than a backend must take (`XEN_NETIF_NR_SLOTS_MIN`).
    TooManySlots(usize),
}

/// One grant copy: `len` bytes at `offset` of the guest's granted page `gref` to `dst` in the
/// packet buffer. Never crosses a page on the guest's side (checked) and `len` ≤ 4096.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxCopy {
    pub gref: u32,
    pub offset: u16,
    pub len: u16,
    pub dst: u32,
}

/// A packet taken from the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPacket {
    /// Its length (the first slot's `size`).
    pub len: u16,
    /// `NETTXF_csum_blank`: the L4 checksum must be completed before the packet goes on.
    pub csum_blank: bool,
    pub data_validated: bool,
    pub extras: Vec<ExtraInfo>,
    /// The copies that assemble it, in order; empty if dropped.
    pub copies: Vec<TxCopy>,
    /// Set if the packet is dropped (its responses are errors whatever the copies did).
    pub dropped: Option<TxDrop>,
    /// Request ids in slot order, and which slots were extra-info slots.
    slots: Vec<(u16, bool)>,
}

impl TxPacket {
    /// The responses to write, one per slot in slot order (`NETIF_RSP_NULL` for extra-info
    /// slots): OKAY if the packet was taken and every copy succeeded (`copies_ok`), else ERROR.
    pub fn responses(&self, copies_ok: bool) -> Vec<wire::TxResponse> {
        let status = if self.dropped.is_none() && copies_ok {
            NETIF_RSP_OKAY
        } else {
            NETIF_RSP_ERROR
        };
        self.slots
            .iter()
            .map(|&(id, extra)| wire::TxResponse {
                id,
                status: if extra { NETIF_RSP_NULL } else { status },
            })
            .collect()
    }

    /// How many ring slots the packet used.
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }
}

/// Take the next packet from the TX ring, if the frontend posted one.
pub fn next_packet<P: RingPage + ?Sized>(
    ring: &mut BackRing,
    page: &P,
) -> Result<Option<TxPacket>, TxFatal> {
    let posted = ring.unconsumed(page).map_err(TxFatal::BadIndex)?;
    if posted == 0 {
        return Ok(None);
    }
    let mut used = 1usize;
    let need = |used: usize| {
        if used as u32 > posted {
            Err(TxFatal::Incomplete {
                needed: used,
                posted,
            })
        } else {
            Ok(())
        }
    };
    let first = TxRequest::parse(&ring.take::<P, TX_SLOT>(page));
    let mut slots = alloc::vec![(first.id, false)];
    let mut extras = Vec::new();
    if first.has(wire::NETTXF_EXTRA_INFO) {
        loop {
            used += 1;
            if used > FATAL_SLOTS {
                return Err(TxFatal::TooManySlots(used));
            }
            need(used)?;
            let raw: [u8; TX_SLOT] = ring.take(page);
            let mut e = [0u8; 8];
            e.copy_from_slice(&raw[..8]);
            let (extra, more) = ExtraInfo::parse(&e).map_err(|u| TxFatal::UnknownExtra(u.0))?;
            if let ExtraInfo::Gso { size: 0, .. } = extra {
                return Err(TxFatal::GsoSizeZero);
            }
            extras.push(extra);
            slots.push((0, true));
            if !more {
                break;
            }
        }
    }
    let mut data = alloc::vec![first];
    let mut last = first;
    while last.has(wire::NETTXF_MORE_DATA) {
        used += 1;
        if used > FATAL_SLOTS {
            return Err(TxFatal::TooManySlots(used));
        }
        need(used)?;
        last = TxRequest::parse(&ring.take::<P, TX_SLOT>(page));
        slots.push((last.id, false));
        data.push(last);
    }
    let mut pkt = TxPacket {
        len: first.size,
        csum_blank: first.has(wire::NETTXF_CSUM_BLANK),
        data_validated: first.has(wire::NETTXF_DATA_VALIDATED),
        extras,
        copies: Vec::new(),
        dropped: None,
        slots,
    };
    // Every slot's data stays inside its page, the first slot's own part included.
    let fragments: u32 = data[1..].iter().map(|r| u32::from(r.size)).sum();
    for (i, r) in data.iter().enumerate() {
        let size = if i == 0 {
            u32::from(first.size).saturating_sub(fragments)
        } else {
            u32::from(r.size)
        };
        if u32::from(r.offset) + size > PAGE {
            return Err(TxFatal::CrossesPage {
                slot: i,
                offset: r.offset,
                size: size as u16,
            });
        }
    }
    pkt.dropped = if first.size < ETH_HLEN {
        Some(TxDrop::TooShort(first.size))
    } else if fragments > u32::from(first.size) {
        Some(TxDrop::FragmentsTooLong {
            total: first.size,
            fragments,
        })
    } else if data.len() > wire::NR_SLOTS_MIN {
        Some(TxDrop::TooManySlots(data.len()))
    } else {
        None
    };
    if pkt.dropped.is_none() {
        let mut dst = 0u32;
        for (i, r) in data.iter().enumerate() {
            let len = if i == 0 {
                u32::from(first.size) - fragments
            } else {
                u32::from(r.size)
            };
            if len > 0 {
                pkt.copies.push(TxCopy {
                    gref: r.gref,
                    offset: r.offset,
                    len: len as u16,
                    dst,
                });
            }
            dst += len;
        }
    }
    Ok(Some(pkt))
}

#[cfg(test)]
mod tests;
