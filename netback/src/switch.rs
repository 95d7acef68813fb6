//! A learning L2 switch: one port per vif, one for dom0 itself (and later one for the NIC).
//! Source MACs are learnt with the time they were seen and aged out; broadcast, multicast and
//! unknown unicast are flooded; a frame never goes back to the port it came from; every port
//! counts what it received, sent and dropped.
//!
//! The MAC table is bounded ([`MAX_MACS`]): a guest spraying source addresses cannot grow it,
//! nor push out stations that are alive. When it is full (after addresses not seen for the
//! ageing time are dropped), a new address is not learnt: frames to it are flooded, and the
//! refusal is counted on the port it came from.

use alloc::vec::Vec;

use crate::mac::MacAddress;

/// Entries in the MAC table, all ports together.
pub const MAX_MACS: usize = 1024;
/// An address not seen for this long is forgotten (Linux bridge's default ageing time, 300 s).
pub const AGEING_NS: u64 = 300_000_000_000;

/// A port's number.
pub type PortId = usize;

/// What one port saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Frames received from this port (into the switch).
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames the switch delivered to this port.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames from this port the switch could not forward (too short, from a group address).
    pub dropped: u64,
    /// Frames from this port that were flooded (broadcast, multicast, unknown destination).
    pub flooded: u64,
    /// Source addresses from this port the full table could not take.
    pub learn_refused: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: MacAddress,
    port: PortId,
    seen_ns: u64,
}

/// Where a frame goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forward {
    /// To these ports (never the one it came from).
    To(Vec<PortId>),
    /// Nowhere (counted as dropped on its port).
    Drop,
}

#[derive(Debug, Clone, Default)]
pub struct Switch {
    ports: Vec<Option<PortCounters>>,
    table: Vec<Entry>,
}

impl Switch {
    pub fn new() -> Switch {
        Switch::default()
    }

    /// Add a port; its id.
    pub fn add_port(&mut self) -> PortId {
        match self.ports.iter().position(Option::is_none) {
            Some(i) => {
                self.ports[i] = Some(PortCounters::default());
                i
            }
            None => {
                self.ports.push(Some(PortCounters::default()));
                self.ports.len() - 1
            }
        }
    }

    /// Remove a port and forget the addresses learnt on it.
    pub fn remove_port(&mut self, port: PortId) {
        if let Some(p) = self.ports.get_mut(port) {
            *p = None;
        }
        self.table.retain(|e| e.port != port);
    }

    pub fn counters(&self, port: PortId) -> Option<PortCounters> {
        self.ports.get(port).copied().flatten()
    }

    /// Addresses currently learnt.
    pub fn learnt(&self) -> usize {
        self.table.len()
    }

    /// Where `frame` from `from` goes at time `now_ns`; learns its source, counts it.
    pub fn forward(&mut self, from: PortId, frame: &[u8], now_ns: u64) -> Forward {
        if self.counters(from).is_none() {
            return Forward::Drop;
        }
        let len = frame.len() as u64;
        let Some((dst, src)) = macs(frame) else {
            self.count(from, |c| c.dropped += 1);
            return Forward::Drop;
        };
        self.count(from, |c| {
            c.rx_frames += 1;
            c.rx_bytes += len;
        });
        if src.is_multicast() {
            // A group address as source is invalid (IEEE 802.3): never learnt, never forwarded.
            self.count(from, |c| c.dropped += 1);
            return Forward::Drop;
        }
        self.age(now_ns);
        self.learn(src, from, now_ns);
        let out: Vec<PortId> = if !dst.is_multicast()
            && let Some(e) = self.table.iter().find(|e| e.mac == dst)
        {
            if e.port == from {
                // Both ends behind the same port: nothing to do (a bridge does not hairpin).
                Vec::new()
            } else {
                alloc::vec![e.port]
            }
        } else {
            self.count(from, |c| c.flooded += 1);
            (0..self.ports.len())
                .filter(|&p| p != from && self.ports[p].is_some())
                .collect()
        };
        for &p in &out {
            self.count(p, |c| {
                c.tx_frames += 1;
                c.tx_bytes += len;
            });
        }
        Forward::To(out)
    }

    fn count(&mut self, port: PortId, f: impl FnOnce(&mut PortCounters)) {
        if let Some(Some(c)) = self.ports.get_mut(port) {
            f(c);
        }
    }

    fn age(&mut self, now_ns: u64) {
        self.table
            .retain(|e| now_ns.saturating_sub(e.seen_ns) < AGEING_NS);
    }

    fn learn(&mut self, mac: MacAddress, port: PortId, now_ns: u64) {
        if let Some(e) = self.table.iter_mut().find(|e| e.mac == mac) {
            // A station that moved is followed to its new port.
            e.port = port;
            e.seen_ns = now_ns;
            return;
        }
        if self.table.len() < MAX_MACS {
            self.table.push(Entry {
                mac,
                port,
                seen_ns: now_ns,
            });
            return;
        }
        // Full, and `age` already dropped every expired entry: the newcomer is refused, so a
        // flood of addresses cannot churn the table.
        self.count(port, |c| c.learn_refused += 1);
    }
}

/// (destination, source) of an Ethernet frame; `None` if shorter than a header.
fn macs(frame: &[u8]) -> Option<(MacAddress, MacAddress)> {
    if frame.len() < 14 {
        return None;
    }
    let mut d = [0u8; 6];
    let mut s = [0u8; 6];
    d.copy_from_slice(&frame[0..6]);
    s.copy_from_slice(&frame[6..12]);
    Some((MacAddress(d), MacAddress(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(60, 0);
        f
    }

    const A: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 1];
    const B: [u8; 6] = [0, 0x16, 0x3e, 0, 0, 2];
    const BCAST: [u8; 6] = [0xff; 6];

    fn three() -> (Switch, PortId, PortId, PortId) {
        let mut s = Switch::new();
        let (a, b, c) = (s.add_port(), s.add_port(), s.add_port());
        (s, a, b, c)
    }

    #[test]
    fn unknown_unicast_floods_then_learnt_addresses_go_to_one_port() {
        let (mut s, a, b, c) = three();
        assert_eq!(s.forward(a, &frame(B, A), 0), Forward::To(vec![b, c]));
        assert_eq!(s.forward(b, &frame(A, B), 1), Forward::To(vec![a]));
        assert_eq!(s.forward(a, &frame(B, A), 2), Forward::To(vec![b]));
        let ca = s.counters(a).unwrap();
        assert_eq!((ca.rx_frames, ca.flooded, ca.tx_frames), (2, 1, 1));
        assert_eq!(s.counters(c).unwrap().tx_frames, 1);
    }

    #[test]
    fn broadcast_floods_and_never_returns_to_its_sender() {
        let (mut s, a, b, c) = three();
        for from in [a, b, c] {
            let Forward::To(out) = s.forward(from, &frame(BCAST, [0, 1, 2, 3, 4, from as u8]), 0)
            else {
                panic!("dropped");
            };
            assert!(!out.contains(&from));
            assert_eq!(out.len(), 2);
        }
    }

    #[test]
    fn addresses_age_out_and_stations_move() {
        let (mut s, a, b, c) = three();
        s.forward(a, &frame(BCAST, A), 0);
        assert_eq!(s.forward(b, &frame(A, B), 10), Forward::To(vec![a]));
        // A moved to port c.
        s.forward(c, &frame(BCAST, A), 20);
        assert_eq!(s.forward(b, &frame(A, B), 30), Forward::To(vec![c]));
        // Not seen for the ageing time: flooded again.
        assert_eq!(
            s.forward(b, &frame(A, B), 20 + AGEING_NS),
            Forward::To(vec![a, c])
        );
    }

    #[test]
    fn hostile_frames_are_dropped_and_counted() {
        let (mut s, a, _, _) = three();
        assert_eq!(s.forward(a, &[0u8; 13], 0), Forward::Drop);
        assert_eq!(s.forward(a, &frame(B, BCAST), 0), Forward::Drop);
        assert_eq!(s.forward(99, &frame(B, A), 0), Forward::Drop);
        assert_eq!(s.counters(a).unwrap().dropped, 2);
        assert_eq!(s.learnt(), 0);
    }

    #[test]
    fn a_mac_flood_cannot_grow_the_table_or_evict_live_stations() {
        let (mut s, a, b, _) = three();
        s.forward(b, &frame(BCAST, B), 0);
        for i in 0..5000u32 {
            let src = [0x02, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1];
            s.forward(a, &frame(BCAST, src), 1);
        }
        assert_eq!(s.learnt(), MAX_MACS);
        assert!(s.counters(a).unwrap().learn_refused >= 5000 - MAX_MACS as u64);
        // B, learnt first and refreshed, is still known.
        s.forward(b, &frame(BCAST, B), 2);
        assert_eq!(s.forward(a, &frame(B, A), 3), Forward::To(vec![b]));
    }

    #[test]
    fn removing_a_port_forgets_its_addresses() {
        let (mut s, a, b, c) = three();
        s.forward(a, &frame(BCAST, A), 0);
        s.remove_port(a);
        assert_eq!(s.forward(b, &frame(A, B), 1), Forward::To(vec![c]));
        assert_eq!(s.add_port(), a, "the slot is reused");
    }
}
