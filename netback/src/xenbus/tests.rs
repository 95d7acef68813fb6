//! The handshake as Linux netfront (6.1) performs it, reconnects, and hostile key values.

use alloc::string::ToString;
use alloc::vec::Vec;

use super::*;

/// What netfront writes in one transaction before switching to Connected.
fn netfront_keys() -> Vec<(&'static str, &'static str)> {
    alloc::vec![
        ("tx-ring-ref", "8"),
        ("rx-ring-ref", "9"),
        ("event-channel", "5"),
        ("request-rx-copy", "1"),
        ("feature-rx-notify", "1"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-ipv6-csum-offload", "1"),
        ("multi-queue-num-queues", "1"),
    ]
}

fn reader(keys: Vec<(&'static str, &'static str)>) -> impl Fn(&str) -> Option<Vec<u8>> {
    move |k| {
        keys.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.as_bytes().to_vec())
    }
}

#[test]
fn linux_netfront_connects_straight_from_initialising() {
    let mut b = Backend::new();
    assert_eq!(
        b.start(),
        [
            Action::WriteFeatures,
            Action::SetState(XenbusState::InitWait)
        ]
    );
    let r = reader(netfront_keys());
    // Netfront writes Initialising (nothing to do), then goes straight to Connected.
    assert!(b.on_frontend(XenbusState::Initialising, &r).is_empty());
    let a = b.on_frontend(XenbusState::Connected, &r);
    assert_eq!(
        a,
        [
            Action::Connect(FrontendConfig {
                tx_ring_ref: 8,
                rx_ring_ref: 9,
                channels: Channels::Single(5),
                rx_notify: true,
                sg: true,
                rx_gso_tcpv4: true,
                csum_offload: true,
                ipv6_csum_offload: true,
            }),
            Action::SetState(XenbusState::Connected)
        ]
    );
    assert!(b.is_connected());
    // A repeated Connected changes nothing.
    assert!(b.on_frontend(XenbusState::Connected, &r).is_empty());
}

#[test]
fn close_and_reconnect() {
    let mut b = Backend::new();
    b.start();
    let r = reader(netfront_keys());
    b.on_frontend(XenbusState::Connected, &r);
    assert_eq!(
        b.on_frontend(XenbusState::Closing, &r),
        [Action::Disconnect, Action::SetState(XenbusState::Closing)]
    );
    assert_eq!(
        b.on_frontend(XenbusState::Closed, &r),
        [Action::SetState(XenbusState::Closed)]
    );
    // A new frontend (the guest reloaded its driver): Closed → InitWait, then connects again.
    assert_eq!(
        b.on_frontend(XenbusState::Initialising, &r),
        [Action::SetState(XenbusState::InitWait)]
    );
    assert!(matches!(
        b.on_frontend(XenbusState::Connected, &r)[0],
        Action::Connect(_)
    ));
    // The frontend vanishes without closing (the guest was destroyed): torn down to Closed.
    assert_eq!(
        b.on_frontend(XenbusState::Unknown, &r),
        [
            Action::Disconnect,
            Action::SetState(XenbusState::Closing),
            Action::SetState(XenbusState::Closed)
        ]
    );
}

#[test]
fn split_channels_and_defaults() {
    let r = reader(alloc::vec![
        ("tx-ring-ref", "1"),
        ("rx-ring-ref", "2"),
        ("event-channel-tx", "3"),
        ("event-channel-rx", "4"),
        ("request-rx-copy", "1"),
        ("feature-no-csum-offload", "1"),
    ]);
    let c = read_frontend(&r).unwrap();
    assert_eq!(c.channels, Channels::Split { tx: 3, rx: 4 });
    assert!(!c.rx_notify && !c.sg && !c.csum_offload && !c.ipv6_csum_offload);
}

#[test]
fn bad_keys_close_the_vif_with_the_reason() {
    let cases: [(&str, Option<&str>, &str); 7] = [
        ("request-rx-copy", Some("0"), "request-rx-copy"),
        ("request-rx-copy", None, "request-rx-copy"),
        (
            "multi-queue-num-queues",
            Some("0"),
            "multi-queue-num-queues: 0",
        ),
        (
            "multi-queue-num-queues",
            Some("4"),
            "multi-queue-num-queues: 4",
        ),
        ("tx-ring-ref", Some("-1"), "tx-ring-ref"),
        ("rx-ring-ref", Some("99999999999"), "rx-ring-ref"),
        ("event-channel", Some("five"), "event-channel"),
    ];
    for (key, value, want) in cases {
        let mut keys: Vec<(&str, &str)> = netfront_keys()
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect();
        if let Some(v) = value {
            keys.push((key, v));
        }
        let mut b = Backend::new();
        b.start();
        let a = b.on_frontend(XenbusState::Connected, &reader(keys));
        match &a[..] {
            [Action::Error(why), Action::SetState(XenbusState::Closing)] => {
                assert!(why.contains(want), "{key}: {why}")
            }
            other => panic!("{key}={value:?}: {other:?}"),
        }
        assert!(!b.is_connected());
    }
    // No event channel at all.
    let keys: Vec<_> = netfront_keys()
        .into_iter()
        .filter(|(k, _)| *k != "event-channel")
        .collect();
    let e = read_frontend(&reader(keys)).unwrap_err();
    assert!(e.contains("event-channel: missing"), "{e}");
    // Oversized or binary values.
    let r = |k: &str| (k == "tx-ring-ref").then(|| alloc::vec![0xff; 4096]);
    assert!(read_frontend(&r).is_err());
}

#[test]
fn states_parse_only_their_numbers() {
    for s in 0..=8u8 {
        let t = s.to_string();
        let st = XenbusState::parse(t.as_bytes()).unwrap();
        assert_eq!(st.text(), t);
    }
    for bad in [&b""[..], b"9", b"-1", b"4 ", b"connected", b"\xff"] {
        assert_eq!(XenbusState::parse(bad), None, "{bad:?}");
    }
    assert_eq!(XenbusState::parse(b"4\0"), Some(XenbusState::Connected));
}

#[test]
fn features_include_what_netfront_requires() {
    assert!(BACKEND_FEATURES.contains(&("feature-rx-copy", "1")));
    assert!(BACKEND_FEATURES.contains(&("feature-sg", "1")));
}
