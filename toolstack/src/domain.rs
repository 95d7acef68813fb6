//! A running DomU as the toolstack sees it: the xenstore tree libxl would write for it, the
//! requests that introduce and release it, and what to do when it stops.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use xen::domctl::ShutdownCode;

use crate::xenstore::{Access, DomId, Message, MsgType, Perms, Server, reply_result};

/// One node to write: (absolute path, value, permissions).
pub type Node = (String, Vec<u8>, Perms);

/// What a DomU gets in xenstore before it starts (libxl `libxl__domain_make` and
/// `libxl__build_post`, reference §2.3/§2.5): its home `n0 rD`, with `control/shutdown`,
/// `control/feature-*`, `control/sysrq`, `data`, `drivers`, `feature`, `attr` and `error`
/// owned by the DomU so it can write them; memory targets; the console and store ports and
/// rings (read by the guest only for secondary consoles; written as libxl does).
#[allow(clippy::too_many_arguments)]
pub fn xenstore_nodes(
    domid: DomId,
    name: &str,
    memory_kib: u64,
    vcpus: u32,
    store_pfn: u64,
    store_port: u32,
    console_pfn: u64,
    console_port: u32,
) -> Vec<Node> {
    let home = format!("/local/domain/{domid}");
    let ro = Perms::new(0, Access::None).with(domid, Access::Read);
    let rw = Perms::new(domid, Access::None);
    let mut n: Vec<Node> = Vec::new();
    let mut add = |p: &str, v: &str, perms: &Perms| {
        let path = if p.is_empty() {
            home.clone()
        } else {
            format!("{home}/{p}")
        };
        n.push((path, v.as_bytes().to_vec(), perms.clone()));
    };
    add("", "", &ro);
    add("name", name, &ro);
    add("domid", &format!("{domid}"), &ro);
    add("vm", &format!("/vm/{domid}"), &ro);
    add("cpu", "", &ro);
    for i in 0..vcpus {
        add(&format!("cpu/{i}/availability"), "online", &ro);
    }
    add("memory", "", &ro);
    add("memory/static-max", &format!("{memory_kib}"), &ro);
    add("memory/target", &format!("{memory_kib}"), &ro);
    add("device", "", &ro);
    add("control", "", &ro);
    for k in [
        "shutdown",
        "feature-poweroff",
        "feature-reboot",
        "feature-suspend",
        "sysrq",
    ] {
        add(&format!("control/{k}"), "", &rw);
    }
    add("control/platform-feature-multiprocessor-suspend", "1", &ro);
    add("control/platform-feature-xs_reset_watches", "1", &ro);
    for k in ["data", "drivers", "feature", "attr", "error"] {
        add(k, "", &rw);
    }
    add("store", "", &ro);
    add("store/port", &format!("{store_port}"), &ro);
    add("store/ring-ref", &format!("{store_pfn}"), &ro);
    add("console", "", &ro);
    add("console/type", "xenconsoled", &ro);
    add("console/port", &format!("{console_port}"), &ro);
    add("console/ring-ref", &format!("{console_pfn}"), &ro);
    add("console/limit", "1048576", &ro);
    n
}

/// A DomU's network interfaces from its bundle description: `(handle, MAC)` in order, handles
/// 0, 1, ...; a `vif` without a MAC gets one in Xen's OUI from the domain id and handle
/// (`netback::MacAddress::xen_vif`, as libxl picks them).
pub fn vifs(domid: DomId, devices: &[crate::bundle::Device]) -> Vec<(u32, netback::MacAddress)> {
    devices
        .iter()
        .filter_map(|d| match d {
            crate::bundle::Device::Vif { mac } => Some(*mac),
            crate::bundle::Device::Console => None,
        })
        .enumerate()
        .map(|(i, mac)| {
            let handle = i as u32;
            let mac = mac.map_or_else(
                || netback::MacAddress::xen_vif(domid, handle),
                netback::MacAddress,
            );
            (handle, mac)
        })
        .collect()
}

/// The xenstore tree libxl writes for vif `handle` of `domid` with the backend in dom0
/// (`libxl__set_xenstore_nic`, `docs/misc/xenstore-paths.pandoc`; reference §2.5): the frontend
/// directory `/local/domain/<domid>/device/vif/<handle>`, owned by the DomU and readable by
/// dom0, and the backend directory `/local/domain/0/backend/vif/<domid>/<handle>`, owned by dom0
/// and readable by the DomU; both start in state 1 (Initialising). The backend's features are
/// written by the backend itself before it goes to InitWait (`netback::xenbus`).
pub fn vif_nodes(domid: DomId, handle: u32, mac: netback::MacAddress) -> Vec<Node> {
    let front = format!("/local/domain/{domid}/device/vif/{handle}");
    let back = format!("/local/domain/0/backend/vif/{domid}/{handle}");
    let front_perms = Perms::new(domid, Access::None).with(0, Access::Read);
    let back_perms = Perms::new(0, Access::None).with(domid, Access::Read);
    let mac = format!("{mac}");
    let mut n: Vec<Node> = Vec::new();
    let mut add =
        |path: String, v: &str, p: &Perms| n.push((path, v.as_bytes().to_vec(), p.clone()));
    add(front.clone(), "", &front_perms);
    add(format!("{front}/backend"), &back, &front_perms);
    add(format!("{front}/backend-id"), "0", &front_perms);
    add(format!("{front}/state"), "1", &front_perms);
    add(
        format!("{front}/handle"),
        &format!("{handle}"),
        &front_perms,
    );
    add(format!("{front}/mac"), &mac, &front_perms);
    add(format!("{front}/trusted"), "1", &front_perms);
    // The MTU is the toolstack's to set: read-only for the guest.
    add(format!("{front}/mtu"), "1500", &back_perms);
    add(
        format!("/local/domain/0/backend/vif/{domid}"),
        "",
        &back_perms,
    );
    add(back.clone(), "", &back_perms);
    add(format!("{back}/frontend"), &front, &back_perms);
    add(
        format!("{back}/frontend-id"),
        &format!("{domid}"),
        &back_perms,
    );
    add(format!("{back}/online"), "1", &back_perms);
    add(format!("{back}/state"), "1", &back_perms);
    add(format!("{back}/handle"), &format!("{handle}"), &back_perms);
    add(format!("{back}/mac"), &mac, &back_perms);
    add(format!("{back}/type"), "vif", &back_perms);
    n
}

/// Run one request as dom0 through the server (so watch events reach their domains).
pub fn dom0_request(server: &mut Server, ty: MsgType, args: &[&[u8]]) -> Result<Vec<u8>, String> {
    let out = server.local(&Message::request(ty, 0, 0, args));
    let first = out
        .first()
        .ok_or_else(|| String::from("no reply from the store"))?;
    reply_result(first).map_err(|e| e.name().to_string())
}

/// Write `value` at `path` as dom0 (parents created as needed).
pub fn write(server: &mut Server, path: &str, value: &[u8]) -> Result<(), String> {
    let mut payload = Vec::with_capacity(path.len() + 1 + value.len());
    payload.extend_from_slice(path.as_bytes());
    payload.push(0);
    payload.extend_from_slice(value);
    let out = server.local(&Message::new(MsgType::Write, 0, 0, payload));
    match out.first() {
        Some(m) => reply_result(m)
            .map(|_| ())
            .map_err(|e| format!("write {path}: {}", e.name())),
        None => Err(format!("write {path}: no reply from the store")),
    }
}

/// Write the nodes (then their permissions) as dom0.
pub fn write_nodes(server: &mut Server, nodes: &[Node]) -> Result<(), String> {
    for (path, value, perms) in nodes {
        write(server, path, value)?;
        let enc = perms.encode();
        let mut args: Vec<&[u8]> = alloc::vec![path.as_bytes()];
        args.extend(enc.split(|&c| c == 0).filter(|s| !s.is_empty()));
        dom0_request(server, MsgType::SetPerms, &args)
            .map_err(|e| format!("set_perms {path}: {e}"))?;
    }
    Ok(())
}

/// Every node with a value under `domid`'s home, as "relative/path=value", sorted, at most
/// `max`: what the guest wrote (and what dom0 wrote for it), for the report.
pub fn written(server: &mut Server, domid: DomId, max: usize) -> Vec<String> {
    let home = format!("/local/domain/{domid}");
    let mut out = Vec::new();
    let mut stack = alloc::vec![home.clone()];
    while let Some(p) = stack.pop() {
        if out.len() >= max {
            break;
        }
        if let Some(v) = read(server, &p)
            && !v.is_empty()
        {
            let rel = p.strip_prefix(&home).unwrap_or(&p).trim_start_matches('/');
            out.push(format!("{rel}={}", String::from_utf8_lossy(&v)));
        }
        if let Ok(list) = dom0_request(server, MsgType::Directory, &[p.as_bytes()]) {
            for name in list.split(|&c| c == 0).filter(|n| !n.is_empty()).rev() {
                stack.push(format!("{p}/{}", String::from_utf8_lossy(name)));
            }
        }
    }
    lean::sort(&mut out);
    out
}

/// XS_INTRODUCE as dom0: from now on `domid`'s ring is served.
pub fn introduce(server: &mut Server, domid: DomId, gfn: u64, port: u32) -> Result<(), String> {
    dom0_request(
        server,
        MsgType::Introduce,
        &[
            format!("{domid}").as_bytes(),
            format!("{gfn}").as_bytes(),
            format!("{port}").as_bytes(),
        ],
    )
    .map(|_| ())
}

/// Forget a domain: XS_RELEASE (fires `@releaseDomain`), then remove its home.
pub fn release(server: &mut Server, domid: DomId) -> Result<(), String> {
    let r = dom0_request(server, MsgType::Release, &[format!("{domid}").as_bytes()]);
    let rm = dom0_request(
        server,
        MsgType::Rm,
        &[format!("/local/domain/{domid}").as_bytes()],
    );
    r.and(rm).map(|_| ())
}

/// Read a node as dom0.
pub fn read(server: &mut Server, path: &str) -> Option<Vec<u8>> {
    dom0_request(server, MsgType::Read, &[path.as_bytes()]).ok()
}

/// What to do with a domain that stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Destroy,
    Restart,
}

/// Most restarts in a row before a rebooting domain is left destroyed (a boot loop).
pub const MAX_RESTARTS: u32 = 3;

/// xl's defaults: `on_poweroff=destroy`, `on_reboot=restart`, `on_crash=destroy`
/// (xl.cfg(5)), with a cap on reboot loops.
pub fn policy(code: ShutdownCode, restarts: u32) -> Action {
    match code {
        ShutdownCode::Reboot if restarts < MAX_RESTARTS => Action::Restart,
        _ => Action::Destroy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xenstore::{Quota, Store};

    #[test]
    fn the_domu_sees_its_tree_and_writes_only_its_own_nodes() {
        let mut s = Server::new(Store::new(Quota::default()));
        let nodes = xenstore_nodes(3, "demo", 131072, 2, 0xfeffc, 1, 0xfefff, 2);
        write_nodes(&mut s, &nodes).unwrap();
        introduce(&mut s, 3, 0xfeffc, 1).unwrap();
        // As the DomU: read its name, write control/feature-poweroff and data/x.
        let st = &mut s.store;
        assert_eq!(st.call(3, MsgType::Read, &[b"name"]).unwrap(), b"demo");
        let mut write = |path: &str, v: &[u8]| {
            let mut p = path.as_bytes().to_vec();
            p.push(0);
            p.extend_from_slice(v);
            reply_result(&st.handle(3, &Message::new(MsgType::Write, 0, 0, p))[0].msg)
        };
        write("control/feature-poweroff", b"1").unwrap();
        write("data/init", b"hello").unwrap();
        // Not its name, nor another domain's tree.
        assert!(write("name", b"evil").is_err());
        assert!(st.call(3, MsgType::Read, &[b"/local/domain/0"]).is_err());
        assert_eq!(read(&mut s, "/local/domain/3/data/init").unwrap(), b"hello");
        let w = written(&mut s, 3, 64);
        assert!(w.contains(&"data/init=hello".to_string()), "{w:?}");
        assert!(
            w.contains(&"control/feature-poweroff=1".to_string()),
            "{w:?}"
        );
        assert!(w.windows(2).all(|p| p[0] <= p[1]), "sorted");
        assert_eq!(written(&mut s, 3, 2).len(), 2);
        assert_eq!(
            read(&mut s, "/local/domain/3/cpu/1/availability").unwrap(),
            b"online"
        );
        release(&mut s, 3).unwrap();
        assert!(read(&mut s, "/local/domain/3/name").is_none());
    }

    #[test]
    fn vifs_get_handles_in_order_and_xen_macs_when_none_is_given() {
        use crate::bundle::Device;
        let devs = [
            Device::Console,
            Device::Vif { mac: None },
            Device::Vif {
                mac: Some([0x02, 0, 0, 0, 0, 9]),
            },
            Device::Vif { mac: None },
        ];
        let v = vifs(7, &devs);
        let text: Vec<String> = v.iter().map(|(h, m)| format!("{h} {m}")).collect();
        assert_eq!(
            text,
            [
                "0 00:16:3e:00:07:00",
                "1 02:00:00:00:00:09",
                "2 00:16:3e:00:07:02"
            ]
        );
        assert!(vifs(7, &[Device::Console]).is_empty());
    }

    #[test]
    fn the_vif_tree_lets_each_side_read_the_other_and_write_only_its_own() {
        let mut s = Server::new(Store::new(Quota::default()));
        write_nodes(
            &mut s,
            &xenstore_nodes(3, "demo", 131072, 1, 0xfeffc, 1, 0xfefff, 2),
        )
        .unwrap();
        let mac = netback::MacAddress::xen_vif(3, 0);
        write_nodes(&mut s, &vif_nodes(3, 0, mac)).unwrap();
        introduce(&mut s, 3, 0xfeffc, 1).unwrap();
        let st = &mut s.store;
        // The DomU (netfront) reads the backend's path, state and its MAC.
        assert_eq!(
            st.call(3, MsgType::Read, &[b"device/vif/0/backend"])
                .unwrap(),
            b"/local/domain/0/backend/vif/3/0"
        );
        assert_eq!(
            st.call(3, MsgType::Read, &[b"device/vif/0/mac"]).unwrap(),
            b"00:16:3e:00:03:00"
        );
        assert_eq!(
            st.call(
                3,
                MsgType::Read,
                &[b"/local/domain/0/backend/vif/3/0/state"]
            )
            .unwrap(),
            b"1"
        );
        let mut write = |path: &str, v: &[u8]| {
            let mut p = path.as_bytes().to_vec();
            p.push(0);
            p.extend_from_slice(v);
            reply_result(&st.handle(3, &Message::new(MsgType::Write, 0, 0, p))[0].msg)
        };
        // It writes its own keys (state, ring refs) ...
        write("device/vif/0/state", b"4").unwrap();
        write("device/vif/0/tx-ring-ref", b"8").unwrap();
        // ... but not the backend's, nor its MTU.
        assert!(write("/local/domain/0/backend/vif/3/0/state", b"4").is_err());
        assert!(write("device/vif/0/mtu", b"9000").is_err());
        // dom0 (the backend) reads what the frontend wrote.
        assert_eq!(
            read(&mut s, "/local/domain/3/device/vif/0/tx-ring-ref").unwrap(),
            b"8"
        );
        assert_eq!(
            read(&mut s, "/local/domain/0/backend/vif/3/0/frontend").unwrap(),
            b"/local/domain/3/device/vif/0"
        );
    }

    #[test]
    fn policy_is_xl_like() {
        assert_eq!(policy(ShutdownCode::Poweroff, 0), Action::Destroy);
        assert_eq!(policy(ShutdownCode::Crash, 0), Action::Destroy);
        assert_eq!(policy(ShutdownCode::Reboot, 0), Action::Restart);
        assert_eq!(policy(ShutdownCode::Reboot, MAX_RESTARTS), Action::Destroy);
    }
}
