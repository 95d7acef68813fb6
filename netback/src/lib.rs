//! The netif backend dom0 serves to guests (`xen/include/public/io/netif.h`): the protocol
//! logic, host-tested on plain bytes; dom0 will wire it to grant copies and event channels.
//!
//! - [`mac`]: MAC addresses, and the ones dom0 gives guest interfaces.
//! - [`wire`]: TX/RX requests and responses and extra-info slots, at their exact layouts.
//! - [`ring`]: the back end of a shared ring (`ring.h`), guest indices never trusted.
//! - [`tx`]: one guest packet from the TX ring: its slot chain validated as Linux netback does,
//!   turned into a plan of grant copies that never cross a page, and its responses.
//! - [`rx`]: packets to a guest: a bounded backlog (XSA-392), filled into the buffers the
//!   frontend posts, one grant copy and one response per 4 KiB.
//! - [`packet`]: what the switch moves: a frame, or a TCP/IPv4 GSO packet kept whole for
//!   the ports that take it ([`gso`] cuts it into frames for the others).
//! - [`csum`]: completing the TCP/UDP checksum of a packet sent with `NETTXF_csum_blank`.
//! - [`xenbus`]: the backend's handshake with netfront as a state machine: the features it
//!   advertises (and why), the frontend's keys parsed strictly, connect, close, reconnect.
//! - [`switch`]: the learning L2 switch between vifs and dom0 (bounded MAC table, ageing,
//!   per-port counters).
//!
//! Not here yet (issue 12): the vif's xenstore nodes from the bundle, and dom0's wiring
//! (`GNTTABOP_map_grant_ref` for the ring pages, `GNTTABOP_copy` for the data, the event
//! channels, the service loop).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod csum;
pub mod gso;
pub mod mac;
pub mod packet;
pub mod ring;
pub mod rx;
pub mod switch;
pub mod tx;
pub mod vif;
pub mod wire;
pub mod xenbus;

pub use mac::MacAddress;
