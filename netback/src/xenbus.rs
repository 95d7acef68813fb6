//! The backend's side of the vif's xenbus handshake (`xen/include/public/io/xenbus.h`, the keys
//! of `netif.h`), as a pure state machine: it is told the frontend's state and can read the
//! frontend's keys; it answers with actions for dom0 (write these keys, set this state, connect
//! with this configuration, disconnect).
//!
//! What dom0 advertises ([`BACKEND_FEATURES`]) and why:
//! - `feature-rx-copy` 1, `feature-rx-flip` 0: netfront requires copying RX (it refuses to
//!   connect without it); page flipping is long gone.
//! - `feature-sg` 1: without it netfront drops every packet needing more than one slot (a
//!   linear area crossing a page); the TX path takes chains ([`crate::tx`]).
//! - `feature-gso-tcpv4` 1: netfront may send TCP/IPv4 packets up to 64 KiB with a GSO extra
//!   slot; dom0 cuts them into MTU-sized frames ([`crate::gso`]), so a guest's bulk TCP costs a
//!   kick and a grant-copy hypercall per 64 KiB instead of per 1.5 KB. `feature-gso-tcpv6` 0
//!   (not segmented yet). Nothing is offered on RX: guests receive MTU-sized frames.
//! - `feature-ipv6-csum-offload` 1: IPv6 checksums are completed like IPv4 ones
//!   ([`crate::csum`]); IPv4 checksum offload is always on in netfront.
//! - `feature-split-event-channels` 1 (both layouts accepted), `multi-queue-max-queues` 1 (one
//!   queue), `feature-multicast-control` 0.
//!
//! Every frontend value is parsed strictly: a bad or missing one closes the vif with the
//! reason (never a panic), and a backend left Closed takes a new frontend (Closed → InitWait).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// `enum xenbus_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    InitWait = 2,
    Initialised = 3,
    Connected = 4,
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    /// From the decimal text in xenstore; `None` for anything else.
    pub fn parse(v: &[u8]) -> Option<XenbusState> {
        Some(match core::str::from_utf8(v).ok()?.trim_end_matches('\0') {
            "0" => XenbusState::Unknown,
            "1" => XenbusState::Initialising,
            "2" => XenbusState::InitWait,
            "3" => XenbusState::Initialised,
            "4" => XenbusState::Connected,
            "5" => XenbusState::Closing,
            "6" => XenbusState::Closed,
            "7" => XenbusState::Reconfiguring,
            "8" => XenbusState::Reconfigured,
            _ => return None,
        })
    }

    /// The text written to xenstore.
    pub fn text(self) -> &'static str {
        ["0", "1", "2", "3", "4", "5", "6", "7", "8"][self as usize]
    }
}

/// The keys dom0 writes in the backend directory before InitWait (see the module docs).
pub const BACKEND_FEATURES: &[(&str, &str)] = &[
    ("feature-rx-copy", "1"),
    ("feature-rx-flip", "0"),
    ("feature-sg", "1"),
    ("feature-gso-tcpv4", "1"),
    ("feature-gso-tcpv6", "0"),
    ("feature-ipv6-csum-offload", "1"),
    ("feature-split-event-channels", "1"),
    ("multi-queue-max-queues", "1"),
    ("feature-multicast-control", "0"),
];

/// The frontend's event channel(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// `event-channel`: one port for both rings.
    Single(u32),
    /// `event-channel-tx` and `event-channel-rx`.
    Split { tx: u32, rx: u32 },
}

/// What the frontend asked for when it connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrontendConfig {
    pub tx_ring_ref: u32,
    pub rx_ring_ref: u32,
    pub channels: Channels,
    /// `feature-rx-notify`: it notifies when it posts RX buffers (else dom0 must poll).
    pub rx_notify: bool,
    pub sg: bool,
    /// `feature-gso-tcpv4` in the frontend's directory: it takes TCP/IPv4 GSO packets on RX
    /// (with `sg`, multi-slot with a GSO extra slot).
    pub rx_gso_tcpv4: bool,
    /// IPv4 checksum offload (on unless `feature-no-csum-offload` is 1).
    pub csum_offload: bool,
    pub ipv6_csum_offload: bool,
}

/// What dom0 must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write [`BACKEND_FEATURES`] in the backend directory.
    WriteFeatures,
    /// Write this `state` in the backend directory.
    SetState(XenbusState),
    /// Map the rings, bind the channel(s), start serving.
    Connect(FrontendConfig),
    /// Stop serving: unmap the rings, close the channels, release the grants.
    Disconnect,
    /// Say why the vif is closed (xenbus `error` node, and dom0's report).
    Error(String),
}

/// The backend of one vif.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub state: XenbusState,
    connected: bool,
}

impl Default for Backend {
    fn default() -> Self {
        Backend::new()
    }
}

impl Backend {
    pub fn new() -> Backend {
        Backend {
            state: XenbusState::Initialising,
            connected: false,
        }
    }

    /// The toolstack created the device: advertise and wait for the frontend.
    pub fn start(&mut self) -> Vec<Action> {
        self.state = XenbusState::InitWait;
        alloc::vec![
            Action::WriteFeatures,
            Action::SetState(XenbusState::InitWait)
        ]
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The frontend's state changed to `fe`; `read(key)` reads a key of the frontend's
    /// directory.
    pub fn on_frontend(
        &mut self,
        fe: XenbusState,
        read: &dyn Fn(&str) -> Option<Vec<u8>>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        match fe {
            XenbusState::Initialising => {
                if matches!(self.state, XenbusState::Closed | XenbusState::Initialising) {
                    // A new frontend after a close, or one that came first.
                    if self.state == XenbusState::Initialising {
                        out.push(Action::WriteFeatures);
                    }
                    self.set(XenbusState::InitWait, &mut out);
                }
            }
            XenbusState::Initialised | XenbusState::Connected => {
                if self.connected || !matches!(self.state, XenbusState::InitWait) {
                    return out;
                }
                match read_frontend(read) {
                    Ok(cfg) => {
                        self.connected = true;
                        out.push(Action::Connect(cfg));
                        self.set(XenbusState::Connected, &mut out);
                    }
                    Err(why) => {
                        out.push(Action::Error(why));
                        self.set(XenbusState::Closing, &mut out);
                    }
                }
            }
            XenbusState::Closing => {
                self.disconnect(&mut out);
                self.set(XenbusState::Closing, &mut out);
            }
            XenbusState::Closed | XenbusState::Unknown => {
                // Closed, or the frontend's directory vanished: walk to Closed, so a new
                // frontend can start over.
                self.disconnect(&mut out);
                if self.state != XenbusState::Closing && self.state != XenbusState::Closed {
                    self.set(XenbusState::Closing, &mut out);
                }
                self.set(XenbusState::Closed, &mut out);
            }
            XenbusState::InitWait | XenbusState::Reconfiguring | XenbusState::Reconfigured => {}
        }
        out
    }

    fn set(&mut self, s: XenbusState, out: &mut Vec<Action>) {
        if self.state != s {
            self.state = s;
            out.push(Action::SetState(s));
        }
    }

    fn disconnect(&mut self, out: &mut Vec<Action>) {
        if self.connected {
            self.connected = false;
            out.push(Action::Disconnect);
        }
    }
}

fn text(read: &dyn Fn(&str) -> Option<Vec<u8>>, key: &str) -> Result<Option<String>, String> {
    match read(key) {
        None => Ok(None),
        Some(v) => match core::str::from_utf8(&v) {
            Ok(s) if !s.is_empty() && s.len() <= 16 => Ok(Some(String::from(s))),
            _ => Err(format!("{key}: not a short text value")),
        },
    }
}

fn number(read: &dyn Fn(&str) -> Option<Vec<u8>>, key: &str) -> Result<Option<u32>, String> {
    match text(read, key)? {
        None => Ok(None),
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("{key}: {s:?} is out of range")),
        Some(s) => Err(format!("{key}: {s:?} is not a decimal number")),
    }
}

fn flag(read: &dyn Fn(&str) -> Option<Vec<u8>>, key: &str, default: bool) -> Result<bool, String> {
    match number(read, key)? {
        None => Ok(default),
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(n) => Err(format!("{key}: {n} is not 0 or 1")),
    }
}

/// Read and check the frontend's keys (Linux netback's `connect`, `read_xenbus_vif_flags`).
pub fn read_frontend(read: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<FrontendConfig, String> {
    if let Some(n) = number(read, "multi-queue-num-queues")?
        && n != 1
    {
        // We offer one queue; 0 is the CVE-2026-45890 case.
        return Err(format!(
            "multi-queue-num-queues: {n} (this backend offers 1)"
        ));
    }
    if !flag(read, "request-rx-copy", false)? {
        return Err("request-rx-copy is not 1: only copying RX is supported".into());
    }
    let need = |key: &str| number(read, key)?.ok_or_else(|| format!("{key}: missing"));
    let tx_ring_ref = need("tx-ring-ref")?;
    let rx_ring_ref = need("rx-ring-ref")?;
    // Split channels first, as Linux netback's `connect_data_rings` reads them: a frontend
    // that reconnects with split channels may leave an older `event-channel` behind.
    let channels = match number(read, "event-channel-tx")? {
        Some(tx) => Channels::Split {
            tx,
            rx: need("event-channel-rx")?,
        },
        None => Channels::Single(need("event-channel")?),
    };
    Ok(FrontendConfig {
        tx_ring_ref,
        rx_ring_ref,
        channels,
        rx_notify: flag(read, "feature-rx-notify", false)?,
        sg: flag(read, "feature-sg", false)?,
        rx_gso_tcpv4: flag(read, "feature-gso-tcpv4", false)?,
        csum_offload: !flag(read, "feature-no-csum-offload", false)?,
        ipv6_csum_offload: flag(read, "feature-ipv6-csum-offload", false)?,
    })
}

#[cfg(test)]
mod tests;
