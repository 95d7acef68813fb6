//! The handshake played as Linux netfront plays it (reference §1), the frontend writing
//! through the store as the DomU, so permissions are exercised too.

use super::*;
use crate::domain::{introduce, read, write_nodes, xenstore_nodes};
use crate::xenstore::{Message, reply_result};
use crate::xenstore::{Quota, Store};
use netback::xenbus::{Channels, FrontendConfig};

const D: DomId = 4;

fn server() -> Server {
    let mut s = Server::new(Store::new(Quota::default()));
    write_nodes(
        &mut s,
        &xenstore_nodes(D, "net", 65536, 1, 0xfeffc, 1, 0xfefff, 2),
    )
    .unwrap();
    introduce(&mut s, D, 0xfeffc, 1).unwrap();
    s
}

/// A write as the DomU (its own permissions apply).
fn guest_write(s: &mut Server, path: &str, v: &str) -> Result<(), String> {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(v.as_bytes());
    reply_result(&s.store.handle(D, &Message::new(MsgType::Write, 0, 0, p))[0].msg)
        .map(drop)
        .map_err(|e| String::from(e.name()))
}

fn back(s: &mut Server, key: &str) -> String {
    let v = read(s, &format!("/local/domain/0/backend/vif/{D}/0/{key}")).unwrap_or_default();
    String::from_utf8(v).unwrap()
}

/// netfront's connect: keys, then straight to Connected.
fn netfront_connects(s: &mut Server, split: bool) {
    let f = "device/vif/0";
    for (k, v) in [
        ("tx-ring-ref", "8"),
        ("rx-ring-ref", "9"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
    ] {
        guest_write(s, &format!("{f}/{k}"), v).unwrap();
    }
    if split {
        guest_write(s, &format!("{f}/event-channel-tx"), "11").unwrap();
        guest_write(s, &format!("{f}/event-channel-rx"), "12").unwrap();
    } else {
        guest_write(s, &format!("{f}/event-channel"), "11").unwrap();
    }
    guest_write(s, &format!("{f}/state"), "4").unwrap();
}

#[test]
fn netfront_connects_closes_and_connects_again() {
    let mut s = server();
    let mac = MacAddress::xen_vif(D, 0);
    let mut v = VifDevice::create(&mut s, D, 0, mac).unwrap();
    // The backend advertised and waits; the guest can read it, not write it.
    assert_eq!(back(&mut s, "state"), "2");
    assert_eq!(back(&mut s, "feature-rx-copy"), "1");
    assert_eq!(back(&mut s, "mac"), format!("{mac}"));
    assert!(guest_write(&mut s, &v.backend_path(), "x").is_err());
    // Frontend still Initialising: nothing to do.
    assert!(v.poll(&mut s).unwrap().is_empty());
    assert!(v.poll(&mut s).unwrap().is_empty(), "no change, no work");

    netfront_connects(&mut s, false);
    let a = v.poll(&mut s).unwrap();
    assert_eq!(
        a,
        [Action::Connect(FrontendConfig {
            tx_ring_ref: 8,
            rx_ring_ref: 9,
            channels: Channels::Single(11),
            rx_notify: true,
            sg: true,
            rx_gso_tcpv4: true,
            csum_offload: true,
            ipv6_csum_offload: false,
        })]
    );
    assert_eq!(back(&mut s, "state"), "4");

    // netfront closes: disconnect, Closing, then Closed.
    guest_write(&mut s, "device/vif/0/state", "5").unwrap();
    assert_eq!(v.poll(&mut s).unwrap(), [Action::Disconnect]);
    assert_eq!(back(&mut s, "state"), "5");
    guest_write(&mut s, "device/vif/0/state", "6").unwrap();
    assert!(v.poll(&mut s).unwrap().is_empty());
    assert_eq!(back(&mut s, "state"), "6");

    // A new frontend (module reloaded): InitWait again, then a split-channel connect.
    guest_write(&mut s, "device/vif/0/state", "1").unwrap();
    assert!(v.poll(&mut s).unwrap().is_empty());
    assert_eq!(back(&mut s, "state"), "2");
    netfront_connects(&mut s, true);
    let a = v.poll(&mut s).unwrap();
    assert!(
        matches!(&a[..], [Action::Connect(c)] if c.channels == Channels::Split { tx: 11, rx: 12 }),
        "{a:?}"
    );
}

#[test]
fn bad_keys_and_a_broken_ring_close_only_this_vif_with_the_reason() {
    let mut s = server();
    let mut v = VifDevice::create(&mut s, D, 0, MacAddress::xen_vif(D, 0)).unwrap();
    guest_write(&mut s, "device/vif/0/tx-ring-ref", "8").unwrap();
    guest_write(&mut s, "device/vif/0/request-rx-copy", "1").unwrap();
    // rx-ring-ref and the channel missing.
    guest_write(&mut s, "device/vif/0/state", "4").unwrap();
    assert!(v.poll(&mut s).unwrap().is_empty());
    assert_eq!(back(&mut s, "state"), "5");
    assert!(
        back(&mut s, "error").contains("rx-ring-ref"),
        "{}",
        back(&mut s, "error")
    );
    assert!(v.error.is_some());

    // A connected vif whose ring broke: dom0 fails it; the frontend then closes.
    let mut s = server();
    let mut v = VifDevice::create(&mut s, D, 0, MacAddress::xen_vif(D, 0)).unwrap();
    netfront_connects(&mut s, false);
    assert!(matches!(&v.poll(&mut s).unwrap()[..], [Action::Connect(_)]));
    assert!(
        v.fail(&mut s, "TX ring: req_prod 300 ahead".into())
            .unwrap()
            .is_empty()
    );
    assert_eq!(back(&mut s, "state"), "5");
    guest_write(&mut s, "device/vif/0/state", "5").unwrap();
    assert_eq!(v.poll(&mut s).unwrap(), [Action::Disconnect]);
}

#[test]
fn a_garbage_or_vanished_frontend_state_is_handled() {
    let mut s = server();
    let mut v = VifDevice::create(&mut s, D, 0, MacAddress::xen_vif(D, 0)).unwrap();
    guest_write(&mut s, "device/vif/0/state", "banana").unwrap();
    assert!(v.poll(&mut s).unwrap().is_empty());
    assert_eq!(back(&mut s, "state"), "2", "ignored, still waiting");
    // The guest removes its vif directory: the backend walks to Closed.
    let rm = s.store.handle(
        D,
        &Message::new(MsgType::Rm, 0, 0, b"device/vif/0\0".to_vec()),
    );
    assert!(reply_result(&rm[0].msg).is_ok());
    assert!(v.poll(&mut s).unwrap().is_empty());
    assert_eq!(back(&mut s, "state"), "6");
    // dom0 removes the backend directory when the DomU goes.
    v.remove(&mut s).unwrap();
    assert!(read(&mut s, &v.backend_path()).is_none());
}
