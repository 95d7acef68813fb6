//! What moves through dom0's switch: an Ethernet frame, or a large TCP/IPv4 packet a guest
//! sent with a GSO extra (`feature-gso-tcpv4`, up to 64 KiB) and that is still whole.
//!
//! A GSO packet is cut into MSS-sized frames ([`crate::gso::segment`]) only for a port that
//! cannot take it whole: dom0's own IP stack, the NIC, and a vif whose frontend did not ask for
//! GSO on RX. A Linux netfront that wrote `feature-gso-tcpv4` and `feature-sg` takes it as one
//! multi-slot packet with a GSO extra slot ([`crate::rx`]), as Linux netback hands it over
//! between two guests on a bridge: one packet instead of up to 44 frames, each of which would
//! cost a grant copy, a response and a share of the receiver's per-packet work (and its ACKs).

use alloc::vec::Vec;

use crate::gso::{self, GsoError};

/// A packet on the switch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packet {
    /// The Ethernet frame (for a GSO packet: one frame longer than the MTU).
    pub data: Vec<u8>,
    /// `Some(mss)`: a TCP/IPv4 GSO packet, its TCP checksum field holding the pseudo-header
    /// sum (`CHECKSUM_PARTIAL`), checked by [`gso::check`] when it was taken from its guest.
    pub gso_mss: Option<u16>,
}

impl Packet {
    /// A plain frame.
    pub fn frame(data: Vec<u8>) -> Packet {
        Packet {
            data,
            gso_mss: None,
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The packet as MTU-sized frames with complete checksums (a plain frame is itself).
    pub fn frames(&self) -> Result<Vec<Vec<u8>>, GsoError> {
        match self.gso_mss {
            Some(mss) => gso::segment(&self.data, mss),
            None => Ok(alloc::vec![self.data.clone()]),
        }
    }
}

impl From<Vec<u8>> for Packet {
    fn from(data: Vec<u8>) -> Packet {
        Packet::frame(data)
    }
}
