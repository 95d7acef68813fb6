//! The xenstore side of one vif whose backend is dom0: the tree libxl writes
//! ([`crate::domain::vif_nodes`]), the backend's half of the xenbus handshake
//! ([`netback::xenbus::Backend`]) played through dom0's own store, and its removal.
//!
//! dom0 is the store, so it needs no watch on the frontend: after each round of DomU
//! requests it reads the frontend's `state` ([`VifDevice::poll`]) and reacts to a change. The
//! store-side actions (features, `state`, `error`) are done here; mapping the rings and binding
//! the channel ([`Action::Connect`]) and undoing it ([`Action::Disconnect`]) are returned to
//! dom0, which owns the hypercalls.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use netback::MacAddress;
use netback::xenbus::{Action, BACKEND_FEATURES, Backend, XenbusState};

use crate::domain;
use crate::xenstore::DomId;
use crate::xenstore::MsgType;
use crate::xenstore::Server;

/// One vif of one DomU, served by dom0.
#[derive(Debug, Clone)]
pub struct VifDevice {
    pub domid: DomId,
    pub handle: u32,
    pub mac: MacAddress,
    pub backend: Backend,
    /// The frontend's `state` as last read (raw, so any change is seen).
    seen: Option<Vec<u8>>,
    /// Why the vif was closed by dom0 (bad frontend keys, a broken ring).
    pub error: Option<String>,
}

impl VifDevice {
    /// `/local/domain/<domid>/device/vif/<handle>`.
    pub fn frontend_path(&self) -> String {
        format!("/local/domain/{}/device/vif/{}", self.domid, self.handle)
    }

    /// `/local/domain/0/backend/vif/<domid>/<handle>`.
    pub fn backend_path(&self) -> String {
        format!("/local/domain/0/backend/vif/{}/{}", self.domid, self.handle)
    }

    /// Write the vif's tree, advertise the backend's features and go to InitWait.
    pub fn create(
        server: &mut Server,
        domid: DomId,
        handle: u32,
        mac: MacAddress,
    ) -> Result<VifDevice, String> {
        domain::write_nodes(server, &domain::vif_nodes(domid, handle, mac))?;
        let mut v = VifDevice {
            domid,
            handle,
            mac,
            backend: Backend::new(),
            seen: None,
            error: None,
        };
        let actions = v.backend.start();
        v.apply(server, actions)?;
        Ok(v)
    }

    /// Look at the frontend's state; on a change, run the handshake and do its store-side
    /// actions. Returns what dom0 must do with hypercalls (connect, disconnect).
    pub fn poll(&mut self, server: &mut Server) -> Result<Vec<Action>, String> {
        let front = self.frontend_path();
        let now = domain::read(server, &format!("{front}/state"));
        if now == self.seen {
            return Ok(Vec::new());
        }
        self.seen = now.clone();
        // A vanished directory (the DomU removed it, or is going away) counts as Unknown.
        let fe = now
            .as_deref()
            .map_or(Some(XenbusState::Unknown), XenbusState::parse);
        let Some(fe) = fe else {
            // Not a state number: ignore it (Linux netback does the same) and keep serving.
            return Ok(Vec::new());
        };
        // `Server` reads need `&mut`: take the keys now (netfront writes them, in one
        // transaction, before it changes its state).
        let keys = self.frontend_keys(server);
        let lookup = |key: &str| -> Option<Vec<u8>> {
            keys.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let actions = self.backend.on_frontend(fe, &lookup);
        self.apply(server, actions)
    }

    /// The frontend's keys netback reads (see [`netback::xenbus::read_frontend`]).
    fn frontend_keys(&self, server: &mut Server) -> Vec<(String, Vec<u8>)> {
        const KEYS: [&str; 12] = [
            "tx-ring-ref",
            "rx-ring-ref",
            "event-channel",
            "event-channel-tx",
            "event-channel-rx",
            "request-rx-copy",
            "feature-rx-notify",
            "feature-sg",
            "feature-no-csum-offload",
            "feature-ipv6-csum-offload",
            "multi-queue-num-queues",
            "feature-gso-tcpv4",
        ];
        let front = self.frontend_path();
        KEYS.iter()
            .filter_map(|k| {
                domain::read(server, &format!("{front}/{k}")).map(|v| (String::from(*k), v))
            })
            .collect()
    }

    /// Do the store-side actions; return the others for dom0.
    fn apply(&mut self, server: &mut Server, actions: Vec<Action>) -> Result<Vec<Action>, String> {
        let back = self.backend_path();
        let mut rest = Vec::new();
        for a in actions {
            match a {
                Action::WriteFeatures => {
                    for (k, v) in BACKEND_FEATURES {
                        domain::write(server, &format!("{back}/{k}"), v.as_bytes())?;
                    }
                }
                Action::SetState(s) => {
                    domain::write(server, &format!("{back}/state"), s.text().as_bytes())?;
                }
                Action::Error(why) => {
                    // xenbus_dev_fatal's place: the backend's `error` node.
                    domain::write(server, &format!("{back}/error"), why.as_bytes())?;
                    self.error = Some(why);
                }
                other => rest.push(other),
            }
        }
        Ok(rest)
    }

    /// dom0 had to close the vif (a broken ring): say why and walk the backend to Closing,
    /// as Linux netback's `xenvif_fatal_tx_err` does. The frontend then closes.
    pub fn fail(&mut self, server: &mut Server, why: String) -> Result<Vec<Action>, String> {
        let actions = alloc::vec![Action::Error(why), Action::SetState(XenbusState::Closing)];
        self.backend.state = XenbusState::Closing;
        self.apply(server, actions)
    }

    /// Remove the backend directory (the frontend's goes with the DomU's home).
    pub fn remove(&self, server: &mut Server) -> Result<(), String> {
        domain::dom0_request(server, MsgType::Rm, &[self.backend_path().as_bytes()]).map(drop)
    }
}

#[cfg(test)]
mod tests;
