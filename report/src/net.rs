//! The network parts of the report: dom0's own IP endpoint, the NIC uplink and each DomU's
//! vifs (issues 12 and 13).

use alloc::string::String;
use core::fmt;

use serde::{Deserialize, Serialize};

/// dom0's IP endpoint on its switch port (`netstack`): address and what it served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dom0NetSummary {
    /// "a.b.c.d/prefix".
    pub address: String,
    pub mac: String,
    pub frames_in: u64,
    pub frames_out: u64,
    /// Frames dropped because the stack's queue was full.
    pub dropped: u64,
    pub echo_bytes: u64,
    pub discard_bytes: u64,
    pub http_requests: u64,
    /// `ip=dhcp`: the address came (or is to come) from a DHCP server through the uplink;
    /// `address` is empty until a lease is held.
    pub dhcp: bool,
    /// The leasing server and the router it named ("" if none).
    pub dhcp_server: String,
    pub router: String,
    /// Leases acquired and lost.
    pub dhcp_leases: u64,
    pub dhcp_lost: u64,
}

/// The physical NIC dom0 drives as its switch's uplink (`nic=`, issue 13).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UplinkSummary {
    /// "ssss:bb:dd.f".
    pub sbdf: String,
    /// "vvvv:dddd".
    pub ids: String,
    /// The driver ("virtio-net", "e1000e"), or "" when none supports the device.
    pub model: String,
    pub state: UplinkState,
    /// Why it is not up (`state` failed or unsupported).
    pub error: Option<String>,
    pub mac: String,
    /// The link as last read (virtio-net: at start, from its `status` field; e1000e: STATUS.LU
    /// on every report).
    pub link_up: bool,
    /// virtio-net: the feature bits negotiated (VIRTIO_F_ACCESS_PLATFORM among them).
    pub features: u64,
    /// How dom0 learns of received frames: "polled every N ms ..." (no interrupt is bound).
    pub service: String,
    /// The device's side: frames and bytes sent and received, refused sends, bad receives.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    /// Writes that told the device of new buffers (e1000e: TDT and RDT; virtio-net: queue
    /// notifications), each an exit to Xen and QEMU: made once per batch, not per frame.
    pub doorbells: u64,
    /// Its switch port: frames flooded (broadcast/unknown) and dropped there.
    pub switch_flooded: u64,
    pub switch_dropped: u64,
}

/// Where the uplink stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UplinkState {
    /// Driven and on the switch.
    #[default]
    Up,
    /// A driver supports it but bringing it up failed (`error` says where).
    Failed,
    /// No driver for it (`error` names the device).
    Unsupported,
    /// Taken out of service after it misbehaved while running (`error`).
    Stopped,
}

impl fmt::Display for UplinkState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UplinkState::Up => "up",
            UplinkState::Failed => "failed",
            UplinkState::Unsupported => "unsupported",
            UplinkState::Stopped => "stopped",
        })
    }
}

/// One vif of a DomU: the handshake's state, what crossed its rings and its switch port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VifSummary {
    pub handle: u32,
    pub mac: String,
    /// The backend's xenbus state when last seen ("4" = Connected, "6" = Closed).
    pub state: String,
    /// Times netfront connected.
    pub connects: u64,
    /// Packets and bytes the guest sent that dom0 took; refused (malformed) and failed
    /// (a bad grant) packets.
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
    pub tx_copy_errors: u64,
    /// Packets and bytes delivered into the guest's buffers; copies that failed; frames
    /// dropped because the guest posted no buffers (backlog full or stale).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_copy_errors: u64,
    pub rx_dropped: u64,
    /// `gnttab_copy` ops and the `GNTTABOP_copy` hypercalls that carried them (both ways).
    pub grant_copies: u64,
    pub copy_hypercalls: u64,
    /// Large TCP packets the guest sent with a GSO extra (`feature-gso-tcpv4`), the
    /// MTU-sized frames dom0 cut them into for ports that could not take them whole (dom0's
    /// stack, the NIC, a vif without GSO on RX), and those it could not segment (dropped).
    pub tx_gso_packets: u64,
    pub tx_gso_segments: u64,
    pub tx_gso_dropped: u64,
    /// GSO packets delivered whole into this guest's buffers (its netfront asked for
    /// `feature-gso-tcpv4` on RX): one multi-slot packet with a GSO extra slot.
    pub rx_gso_packets: u64,
    /// Its switch port: frames flooded (broadcast/unknown) and dropped there.
    pub switch_flooded: u64,
    pub switch_dropped: u64,
    /// Why dom0 closed it (bad keys, a broken ring), if it did.
    pub error: Option<String>,
    /// dom0 memory the vif holds apart from frames waiting for it: its record, its xenstore
    /// nodes and switch port (measured on dom0's heap), its connection's port list and
    /// backlog queue.
    pub memory_bytes: u64,
    /// Its RX backlog: the most bytes of frames it held at once, and the bound (XSA-392).
    pub rx_backlog_peak_bytes: u64,
    pub rx_backlog_limit_bytes: u64,
    /// Passes dom0 went into at once, without sleeping, because this vif's rings still held
    /// work that would not notify: the TX budget used up, or RX buffers for waiting frames
    /// posted while dom0 re-armed `req_event`.
    pub busy_passes: u64,
}
