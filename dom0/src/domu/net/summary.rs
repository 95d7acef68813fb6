//! The network's parts of dom0's report: the uplink, dom0's own endpoint and each vif, read
//! from the live switch, stack, NIC and links.

use alloc::format;
use alloc::string::String;

use report::{Dom0NetSummary, UplinkState, UplinkSummary, VifSummary};
use xen::ops::EvtchnPort;

use super::{Dom0Ip, Net, NetVif};

impl Net {
    /// The uplink as it stands, for the report.
    pub fn uplink_summary(&mut self) -> Option<UplinkSummary> {
        let sw = self
            .uplink
            .as_ref()
            .map(|u| u.port)
            .and_then(|p| self.switch.counters(p));
        let u = self.uplink.as_mut()?;
        let mut s = u.summary.clone();
        let c = u.nic.counters();
        if s.state == UplinkState::Up {
            s.link_up = u.nic.link_up();
        }
        s.tx_frames = c.tx_frames;
        s.tx_bytes = c.tx_bytes;
        s.tx_dropped = c.tx_dropped;
        s.rx_frames = c.rx_frames;
        s.rx_bytes = c.rx_bytes;
        s.rx_errors = c.rx_errors;
        s.doorbells = c.doorbells;
        let sw = sw.unwrap_or_default();
        s.switch_flooded = sw.flooded;
        s.switch_dropped = sw.dropped;
        Some(s)
    }

    /// dom0's endpoint for the report.
    pub fn dom0_summary(&self) -> Option<Dom0NetSummary> {
        let s = self.stack.as_ref()?;
        let c = s.counters;
        let ip4 = |a: [u8; 4]| format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
        let lease = s.lease();
        Some(Dom0NetSummary {
            address: s
                .address()
                .map(|(a, p)| format!("{}/{p}", ip4(a)))
                .unwrap_or_default(),
            dhcp: self.ip == Dom0Ip::Dhcp,
            dhcp_server: lease.map(|l| ip4(l.server)).unwrap_or_default(),
            router: lease.and_then(|l| l.router).map(ip4).unwrap_or_default(),
            dhcp_leases: c.dhcp_leases,
            dhcp_lost: c.dhcp_lost,
            mac: format!("{}", self.mac),
            frames_in: c.frames_in,
            frames_out: c.frames_out,
            dropped: c.dropped,
            echo_bytes: c.echo_bytes,
            discard_bytes: c.discard_bytes,
            http_requests: c.http_requests,
        })
    }

    pub(super) fn summary(&self, v: &NetVif) -> VifSummary {
        let mut c = v.past;
        let mut rx_dropped = v.rx_dropped_past;
        if let Some(a) = &v.att {
            c += &a.link.counters;
            rx_dropped += a.link.rxq.counters.dropped_full + a.link.rxq.counters.dropped_stale;
        }
        let sw = self.switch.counters(v.port).unwrap_or_default();
        let backlog_peak = v
            .att
            .as_ref()
            .map_or(0, |a| a.link.rxq.counters.peak_bytes)
            .max(v.rx_backlog_peak);
        VifSummary {
            handle: v.dev.handle,
            mac: format!("{}", v.dev.mac),
            state: String::from(v.dev.backend.state.text()),
            connects: v.connects,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
            tx_dropped: c.tx_dropped,
            tx_copy_errors: c.tx_copy_errors,
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            rx_copy_errors: c.rx_copy_errors,
            rx_dropped,
            grant_copies: c.grant_copies,
            copy_hypercalls: c.copy_hypercalls,
            tx_gso_packets: c.tx_gso_packets,
            tx_gso_segments: c.tx_gso_segments,
            tx_gso_dropped: c.tx_gso_dropped,
            rx_gso_packets: c.rx_gso_packets,
            switch_flooded: sw.flooded,
            switch_dropped: sw.dropped,
            error: v.dev.error.clone(),
            // The connection adds its port list and the backlog's queue of frame handles (at
            // most MAX_PACKETS entries); the rings are the guest's pages mapped into window
            // slots, not dom0 memory; the frames' bytes are the backlog below.
            memory_bytes: v.heap_bytes
                + v.att.as_ref().map_or(0, |a| {
                    (a.ports.capacity() * core::mem::size_of::<EvtchnPort>()
                        + a.link.rxq.queue_bytes()) as u64
                }),
            rx_backlog_peak_bytes: backlog_peak,
            rx_backlog_limit_bytes: netback::rx::MAX_BYTES as u64,
            busy_passes: v.busy_passes,
        }
    }
}
