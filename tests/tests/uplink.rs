//! Issue 13: a physical NIC as the switch's uplink, under Xen 4.17 and 4.20, for virtio-net
//! (`iommu_platform=on`, so its DMA goes through the IOMMU) and e1000e.
//!
//! One boot per (Xen, NIC) shows everything at once:
//! - dom0 leases its address from QEMU's user network by DHCP through the NIC (`ip=dhcp`),
//! - the host reads dom0's report over HTTP on a forwarded loopback port (`hostfwd`),
//! - two unmodified Debian DomUs, bridged onto that network by dom0's switch, each lease their
//!   own address and download a 1 MiB file from a server on the host (`guestfwd`); the MD5
//!   each guest computes is the host file's.
//!
//! The evidence is the host's own HTTP client, the guests' consoles, dom0's report (uplink
//! state and counters, its lease) and Xen's log (the NIC added with `PCI add device`, no IOMMU
//! fault: a device DMA that missed dom0's memory would show as one).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use image::{UplinkNic, XenVersion};
use report::{BootReport, UplinkState};
use tests::{
    assert_domu_ran, assert_pass, assert_xen_log_clean, boot, check, dom0, domu, domu_config,
    serial,
};

const BLOB_BYTES: usize = 1 << 20;

/// The file the DomUs download, and the script QEMU runs for each connection to
/// 10.0.2.100:80. Returns (script path, MD5 of the file).
fn file_server(tag: &str) -> (PathBuf, String) {
    let dir = image::target_dir().join("uplink-server").join(tag);
    std::fs::create_dir_all(&dir).unwrap();
    // Random-looking bytes from a fixed xorshift: the same file each run, no repeats inside.
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let blob: Vec<u8> = (0..BLOB_BYTES)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let blob_path = dir.join("blob");
    std::fs::write(&blob_path, &blob).unwrap();
    let script = dir.join("serve.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             # One HTTP/1.0 reply per connection: read the request head, send the file.\n\
             while IFS= read -r line; do case \"$line\" in ''|\"$(printf '\\r')\") break;; esac; done\n\
             printf 'HTTP/1.0 200 OK\\r\\nContent-Length: {BLOB_BYTES}\\r\\nConnection: close\\r\\n\\r\\n'\n\
             exec cat {}\n",
            blob_path.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let md5 = std::process::Command::new("md5sum")
        .arg(&blob_path)
        .output()
        .expect("md5sum");
    let md5 = String::from_utf8_lossy(&md5.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(md5.len(), 32, "md5sum output");
    (script, md5)
}

/// A free loopback port (there is a window between this and QEMU's bind; nothing else on the
/// bench binds ports at random).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET `path` on 127.0.0.1:`port` until it answers 200 or `limit` passes; the body.
fn poll_http(port: u16, path: &str, limit: Duration) -> Result<Vec<u8>, String> {
    let start = Instant::now();
    let mut last = String::from("never connected");
    while start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(mut s) = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        ) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: dom0\r\n\r\n").as_bytes())
            .is_err()
        {
            continue;
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            last = format!("{} bytes without a header", buf.len());
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        if head.starts_with("HTTP/1.0 200") {
            return Ok(buf[head_end + 4..].to_vec());
        }
        last = head;
    }
    Err(format!(
        "no 200 from 127.0.0.1:{port}{path} within {limit:?}: {last}"
    ))
}

fn uplink_serves_dom0_and_domus(xen: XenVersion, nic: UplinkNic) {
    let (_, minor) = xen.major_minor().expect("a Xen version");
    let tag = format!("{}-4.{minor}", nic.qemu_model());
    let (script, md5) = file_server(&tag);
    let port = free_port();
    let fetch = "domu-ip=dhcp domu-fetch=10.0.2.100/blob";
    let alpha = format!("alpha:vif,cmdline={fetch}");
    let beta = format!("beta:vif,cmdline={fetch}");
    let args = image::uplink_args(&["linger=10".to_string()], nic);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cfg = domu_config(
        xen,
        1,
        &format!("test-uplink-{tag}"),
        &[&alpha, &beta],
        &args,
    );
    cfg.nic_forward = image::qemu::NicForward {
        model: nic.qemu_model().to_string(),
        http_port: Some(port),
        guestfwd: Some((80, script.display().to_string())),
    };
    // The host's client polls while the machine boots and serves.
    let client = std::thread::spawn(move || {
        poll_http(
            port,
            "/report.json",
            tests::DOMU_TIMEOUT + Duration::from_secs(60),
        )
    });
    let out = boot(&cfg);
    let fetched = client.join().expect("HTTP client thread");
    assert_pass(&out);
    assert_xen_log_clean(&out, 4, minor);
    let log = serial(&out);
    let d = dom0(&out);

    // The NIC: Xen added it, dom0 drives it, frames crossed it, and no DMA faulted.
    let sbdf = nic.sbdf();
    check!(
        out,
        out.report
            .xen_log
            .pci_devices_added
            .iter()
            .any(|s| s == sbdf),
        "Xen's log has no 'PCI add device {sbdf}'"
    );
    for fault in ["IO_PAGE_FAULT", "DMAR:[DMA", "INVALID_DEV_REQUEST"] {
        check!(
            out,
            !log.contains(fault),
            "Xen logged an IOMMU fault ({fault})"
        );
    }
    let u = d.uplink.as_ref();
    check!(out, u.is_some(), "no uplink in dom0's report");
    let u = u.unwrap();
    check!(
        out,
        u.state == UplinkState::Up && u.sbdf == sbdf && u.link_up && u.error.is_none(),
        "uplink: {u:?}"
    );
    check!(
        out,
        u.model
            == if nic == UplinkNic::VirtioNet {
                "virtio-net"
            } else {
                "e1000e"
            },
        "uplink model {}",
        u.model
    );
    if nic == UplinkNic::VirtioNet {
        check!(
            out,
            u.features & (1 << 33) != 0,
            "VIRTIO_F_ACCESS_PLATFORM not negotiated: {:#x}",
            u.features
        );
    }
    // Two 1 MiB downloads came in through it.
    check!(
        out,
        u.rx_bytes >= 2 * BLOB_BYTES as u64 && u.tx_frames > 0 && u.rx_errors == 0,
        "uplink counters: {u:?}"
    );
    // The doorbell writes that told the device of them (batched: host-tested in `drivers`).
    check!(out, u.doorbells > 0, "no doorbell write counted: {u:?}");
    eprintln!(
        "uplink {}: {} frames sent, {} received, {} doorbell writes",
        u.model, u.tx_frames, u.rx_frames, u.doorbells
    );

    // dom0's lease, and the report the host read through the forwarded port.
    let net = d.toolstack.as_ref().and_then(|t| t.dom0_net.as_ref());
    check!(out, net.is_some(), "no dom0_net in the report");
    let net = net.unwrap();
    check!(
        out,
        net.dhcp
            && net.address == "10.0.2.15/24"
            && net.dhcp_leases >= 1
            && net.dhcp_server == "10.0.2.2",
        "dom0's lease: {net:?}"
    );
    check!(
        out,
        net.http_requests >= 1,
        "dom0 served no HTTP request: {net:?}"
    );
    let body = match fetched {
        Ok(b) => b,
        Err(e) => panic!(
            "the host's GET of dom0's report: {e}{}",
            tests::context(&out)
        ),
    };
    let text = String::from_utf8_lossy(&body);
    let got = BootReport::from_json(text.trim());
    check!(
        out,
        got.is_ok(),
        "the report over HTTP is not a report: {:?}",
        got.err()
    );
    let got = got.unwrap();
    // Live: the uplink's counters and dom0's lease as they were when the host asked (at
    // ready the uplink had moved nothing and there was no lease yet).
    let live_net = got.toolstack.as_ref().and_then(|t| t.dom0_net.as_ref());
    check!(
        out,
        got.ready
            && got
                .uplink
                .as_ref()
                .is_some_and(|u| u.sbdf == sbdf && u.rx_frames > 0 && u.tx_frames > 0)
            && live_net.is_some_and(|n| n.address == "10.0.2.15/24" && n.dhcp_leases == 1),
        "the report over HTTP: ready {}, uplink {:?}, dom0_net {live_net:?}",
        got.ready,
        got.uplink
    );

    // Each DomU: its own lease on the physical network, and the host's file, intact.
    let mut leases = Vec::new();
    for name in ["alpha", "beta"] {
        assert_domu_ran(&out, name, "poweroff");
        let g = domu(&out, name);
        let line = |prefix: &str| {
            g.console
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
                .unwrap_or_default()
        };
        let eth = line("DOMU-INIT: eth0 ");
        let lease = eth.split(" dhcp ").nth(1).unwrap_or_default().to_string();
        check!(
            out,
            lease.starts_with("10.0.2.") && lease != "10.0.2.15",
            "{name}: no lease of its own: {eth:?} {:?}",
            g.console
        );
        leases.push(lease);
        let f = line("DOMU-INIT: fetch 10.0.2.100/blob: ");
        check!(
            out,
            f == format!("HTTP/1.0 200 OK, md5 {md5}, {BLOB_BYTES} bytes"),
            "{name}: download {f:?} (host md5 {md5}); console {:?}",
            g.console
        );
        check!(
            out,
            g.vifs
                .first()
                .is_some_and(|v| v.error.is_none() && v.rx_bytes >= BLOB_BYTES as u64),
            "{name}: vif {:?}",
            g.vifs
        );
    }
    check!(out, leases[0] != leases[1], "both DomUs got {}", leases[0]);
}

#[test]
fn uplink_virtio_net_xen_4_17() {
    uplink_serves_dom0_and_domus(XenVersion::V4_17, UplinkNic::VirtioNet);
}

#[test]
fn uplink_virtio_net_xen_4_20() {
    uplink_serves_dom0_and_domus(XenVersion::V4_20, UplinkNic::VirtioNet);
}

#[test]
fn uplink_e1000e_xen_4_17() {
    uplink_serves_dom0_and_domus(XenVersion::V4_17, UplinkNic::E1000e);
}

#[test]
fn uplink_e1000e_xen_4_20() {
    uplink_serves_dom0_and_domus(XenVersion::V4_20, UplinkNic::E1000e);
}

/// A virtio-net without `iommu_platform=on` would DMA to machine addresses: dom0 refuses it,
/// says why, and keeps serving everything else (here: boots to ready with the error listed).
#[test]
fn virtio_net_without_iommu_platform_is_refused() {
    let mut cfg = tests::config(XenVersion::V4_20, 1, "test-uplink-no-access-platform");
    cfg.topology = image::Topology::Bridges;
    // In the bridges topology virtio-net sits behind a PCIe switch, without iommu_platform.
    cfg.dom0_args = vec!["nic=auto".into(), "ip=dhcp".into()];
    cfg.expect_errors = vec!["VIRTIO_F_ACCESS_PLATFORM".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    let d = dom0(&out);
    let u = d.uplink.as_ref();
    check!(
        out,
        u.is_some_and(|u| u.state == UplinkState::Failed
            && u.model == "virtio-net"
            && u.error
                .as_deref()
                .is_some_and(|e| e.contains("iommu_platform=on"))),
        "uplink: {u:?}"
    );
    check!(out, d.ready, "dom0 not ready");
}

/// A NIC dom0 has no driver for (the `bridges` topology's e1000, 8086:100e, behind a
/// PCIe-to-PCI bridge) named with `nic=`: an error naming it, ids and class, and the boot goes
/// on. (`nic=auto` finding no NIC at all is host-tested in `hwdom::uplink`: every bench
/// machine has at least QEMU's default e1000e.)
#[test]
fn an_unsupported_nic_is_named() {
    let mut cfg = tests::config(XenVersion::V4_20, 1, "test-uplink-unsupported");
    cfg.topology = image::Topology::Bridges;
    cfg.dom0_args = vec!["nic=07:02.0".into()];
    cfg.expect_errors = vec!["no driver for 0000:07:02.0 [8086:100e] class 02:00:00".into()];
    let out = boot(&cfg);
    assert_pass(&out);
    let d = dom0(&out);
    let u = d.uplink.as_ref();
    check!(
        out,
        u.is_some_and(|u| u.state == UplinkState::Unsupported
            && u.sbdf == "0000:07:02.0"
            && u.ids == "8086:100e"),
        "uplink: {u:?}"
    );
    check!(
        out,
        out.report
            .xen_log
            .pci_devices_added
            .iter()
            .any(|s| s == "0000:07:02.0"),
        "Xen did not add the e1000"
    );
}
