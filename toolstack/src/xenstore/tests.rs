//! Conformance table and behaviour tests: permissions, watches, transactions, quotas, rings,
//! hostile input, and a deterministic randomized run of parse + handle.

use alloc::vec;
use alloc::vec::Vec;

use super::ring_layout as L;
use super::*;

use MsgType as T;

// ---------------------------------------------------------------------------------------------
// Conformance table
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum Expect {
    /// Reply of the request's type with exactly this payload.
    Ok(&'static [u8]),
    /// Reply of the request's type whose payload ends with this.
    OkSuffix(&'static [u8]),
    /// XS_ERROR with this name.
    Err(&'static str),
}

struct Step {
    dom: DomId,
    ty: u32,
    tx: u32,
    payload: &'static [u8],
    expect: Expect,
}

const fn s(dom: DomId, ty: MsgType, payload: &'static [u8], expect: Expect) -> Step {
    Step {
        dom,
        ty: ty as u32,
        tx: 0,
        payload,
        expect,
    }
}

const fn stx(dom: DomId, ty: MsgType, tx: u32, payload: &'static [u8], expect: Expect) -> Step {
    Step {
        dom,
        ty: ty as u32,
        tx,
        payload,
        expect,
    }
}

const fn sraw(dom: DomId, ty: u32, payload: &'static [u8], expect: Expect) -> Step {
    Step {
        dom,
        ty,
        tx: 0,
        payload,
        expect,
    }
}

use Expect::{Err as E, Ok as O, OkSuffix as OS};

/// Request/response pairs, run in order against one fresh store. Domains 1 and 2 are guests.
const TABLE: &[Step] = &[
    // Domain introduction.
    s(0, T::Introduce, b"1\x004096\x005\0", O(b"OK\0")),
    s(0, T::Introduce, b"2\x004097\x006\0", O(b"OK\0")),
    s(0, T::Introduce, b"1\x004096\x005\0", O(b"OK\0")),
    s(0, T::Introduce, b"1\x001\x001\0", E("EINVAL")),
    s(1, T::Introduce, b"3\x001\x001\0", E("EACCES")),
    s(0, T::Introduce, b"0\x001\x001\0", E("EINVAL")),
    s(0, T::Introduce, b"x\x001\x001\0", E("EINVAL")),
    s(0, T::Introduce, b"32752\x001\x001\0", E("EINVAL")),
    s(0, T::Introduce, b"3\x001\0", E("EINVAL")),
    s(0, T::IsDomainIntroduced, b"1\0", O(b"T\0")),
    s(0, T::IsDomainIntroduced, b"9\0", O(b"F\0")),
    s(1, T::IsDomainIntroduced, b"0\0", O(b"T\0")),
    s(1, T::GetDomainPath, b"1\0", O(b"/local/domain/1\0")),
    s(2, T::GetDomainPath, b"0\0", O(b"/local/domain/0\0")),
    s(1, T::GetDomainPath, b"abc\0", E("EINVAL")),
    // Basic nodes and permissions.
    s(0, T::Write, b"/local/domain/1\0", O(b"OK\0")),
    s(0, T::SetPerms, b"/local/domain/1\0n0\0r1\0", O(b"OK\0")),
    s(0, T::GetPerms, b"/local/domain/1\0", O(b"n0\0r1\0")),
    s(0, T::GetPerms, b"/local\0", O(b"n0\0")),
    s(0, T::Write, b"/local/domain/1/name\0guest", O(b"OK\0")),
    s(0, T::GetPerms, b"/local/domain/1/name\0", O(b"n0\0r1\0")),
    s(1, T::Read, b"name\0", O(b"guest")),
    s(1, T::Read, b"/local/domain/1/name\0", O(b"guest")),
    s(2, T::Read, b"/local/domain/1/name\0", E("EACCES")),
    s(1, T::Write, b"name\0evil", E("EACCES")),
    s(1, T::Read, b"nothere\0", E("ENOENT")),
    s(2, T::Read, b"/local/domain/1/nothere\0", E("EACCES")),
    s(2, T::Read, b"/local/domain/0/secret\0", E("EACCES")),
    s(1, T::Directory, b"/local/domain/1\0", O(b"name\0")),
    s(2, T::Directory, b"/local/domain/1\0", E("EACCES")),
    s(1, T::Directory, b"/local/domain/1/name\0", O(b"")),
    s(1, T::Directory, b"/local/domain/1/none\0", E("ENOENT")),
    s(0, T::Mkdir, b"/local/domain/1/data\0", O(b"OK\0")),
    s(0, T::SetPerms, b"/local/domain/1/data\0n1\0", O(b"OK\0")),
    s(1, T::Write, b"data/x\0hello", O(b"OK\0")),
    s(1, T::GetPerms, b"data/x\0", O(b"n1\0")),
    s(1, T::Directory, b"/local/domain/1\0", O(b"data\0name\0")),
    s(1, T::SetPerms, b"data/x\0n1\0r2\0", O(b"OK\0")),
    s(2, T::Read, b"/local/domain/1/data/x\0", O(b"hello")),
    s(1, T::SetPerms, b"data/x\0n2\0", E("EPERM")),
    s(1, T::SetPerms, b"data/x\0z1\0", E("EINVAL")),
    s(1, T::SetPerms, b"data/x\0", E("EINVAL")),
    s(2, T::Write, b"/local/domain/1/data/x\0z", E("EACCES")),
    s(2, T::Write, b"/local/domain/1/data/new\0z", E("EACCES")),
    s(2, T::Write, b"/local/domain/2/x\0v", E("EACCES")),
    s(1, T::Write, b"data/deep/er/node\0v", O(b"OK\0")),
    s(1, T::Read, b"data/deep/er\0", O(b"")),
    s(1, T::Write, b"data/bin\0a\0b\xff", O(b"OK\0")),
    s(1, T::Read, b"data/bin\0", O(b"a\0b\xff")),
    s(1, T::Mkdir, b"/local/domain/1/name\0", E("EACCES")),
    s(1, T::Mkdir, b"data/m\0", O(b"OK\0")),
    s(1, T::Mkdir, b"data/m\0", O(b"OK\0")),
    // Removal.
    s(1, T::Rm, b"data/x\0", O(b"OK\0")),
    s(1, T::Rm, b"data/x\0", O(b"OK\0")),
    s(1, T::Rm, b"data/nope/deeper\0", E("ENOENT")),
    s(1, T::Rm, b"data/deep\0", O(b"OK\0")),
    s(1, T::Read, b"data/deep/er/node\0", E("ENOENT")),
    s(2, T::Rm, b"/local/domain/1/data\0", E("EACCES")),
    s(0, T::Rm, b"/\0", E("EINVAL")),
    s(1, T::Rm, b"/\0", E("EACCES")),
    // Malformed paths and arguments.
    s(1, T::Read, b"/bad//path\0", E("EINVAL")),
    s(1, T::Read, b"/trailing/\0", E("EINVAL")),
    s(1, T::Read, b"/a b\0", E("EINVAL")),
    s(1, T::Read, b"\0", E("EINVAL")),
    s(1, T::Read, b"/a\0b\0", E("EINVAL")),
    s(1, T::Read, b"/a", E("EINVAL")),
    s(1, T::Read, b"@releaseDomain\0", E("EINVAL")),
    s(1, T::Write, b"nonul", E("EINVAL")),
    // Watches.
    s(1, T::Watch, b"data\0tok\0", O(b"OK\0")),
    s(1, T::Watch, b"data\0tok\0", E("EEXIST")),
    s(1, T::Watch, b"data\0tok2\0", O(b"OK\0")),
    s(1, T::Unwatch, b"data\0tok\0", O(b"OK\0")),
    s(1, T::Unwatch, b"data\0tok\0", E("ENOENT")),
    s(1, T::Unwatch, b"data\0", E("EINVAL")),
    s(1, T::Watch, b"/a\0", E("EINVAL")),
    s(1, T::Watch, b"/a//b\0t\0", E("EINVAL")),
    s(1, T::Watch, b"@introduceDomain\0t\0", O(b"OK\0")),
    s(1, T::ResetWatches, b"\0", O(b"OK\0")),
    s(1, T::Unwatch, b"data\0tok2\0", E("ENOENT")),
    // Transactions.
    s(1, T::TransactionStart, b"\0", O(b"1\0")),
    stx(1, T::TransactionStart, 1, b"\0", E("EBUSY")),
    stx(1, T::Write, 1, b"data/t\0v", O(b"OK\0")),
    s(1, T::Read, b"data/t\0", E("ENOENT")),
    stx(1, T::Read, 1, b"data/t\0", O(b"v")),
    stx(1, T::Directory, 1, b"data\0", O(b"bin\0m\0t\0")),
    s(1, T::Directory, b"data\0", O(b"bin\0m\0")),
    stx(1, T::TransactionEnd, 1, b"T\0", O(b"OK\0")),
    s(1, T::Read, b"data/t\0", O(b"v")),
    stx(1, T::TransactionEnd, 1, b"T\0", E("ENOENT")),
    s(1, T::TransactionEnd, b"T\0", E("ENOENT")),
    s(1, T::TransactionStart, b"\0", O(b"2\0")),
    stx(1, T::TransactionEnd, 2, b"X\0", E("EINVAL")),
    stx(1, T::Rm, 2, b"data/t\0", O(b"OK\0")),
    stx(1, T::TransactionEnd, 2, b"F\0", O(b"OK\0")),
    s(1, T::Read, b"data/t\0", O(b"v")),
    stx(1, T::Read, 99, b"name\0", E("ENOENT")),
    stx(2, T::TransactionEnd, 2, b"T\0", E("ENOENT")),
    stx(1, T::Watch, 77, b"data\0tx-ignored\0", O(b"OK\0")),
    // Domain management.
    s(1, T::Resume, b"1\0", E("EACCES")),
    s(0, T::Resume, b"1\0", O(b"OK\0")),
    s(0, T::Resume, b"7\0", E("ENOENT")),
    s(1, T::SetTarget, b"2\x001\0", E("EACCES")),
    s(0, T::SetTarget, b"2\x001\0", O(b"OK\0")),
    s(0, T::SetTarget, b"8\x001\0", E("ENOENT")),
    s(2, T::Read, b"/local/domain/1/name\0", O(b"guest")),
    s(0, T::Control, b"check\0", O(b"OK\0")),
    s(0, T::Control, b"print\0hello\0", O(b"OK\0")),
    s(1, T::Control, b"check\0", E("EACCES")),
    s(0, T::Control, b"bogus\0", E("EINVAL")),
    // Unknown and server-only types.
    sraw(1, 20, b"\0", E("EINVAL")),
    sraw(1, 0xffff, b"", E("EINVAL")),
    s(1, T::WatchEvent, b"a\0b\0", E("EINVAL")),
    s(1, T::Error, b"EINVAL\0", E("EINVAL")),
    // Partial directory listing.
    s(
        1,
        T::DirectoryPart,
        b"/local/domain/1\x000\0",
        OS(b"\0data\0name\0\0"),
    ),
    s(
        1,
        T::DirectoryPart,
        b"/local/domain/1\x005\0",
        OS(b"\0name\0\0"),
    ),
    s(
        1,
        T::DirectoryPart,
        b"/local/domain/1\x00999\0",
        E("EINVAL"),
    ),
    s(1, T::DirectoryPart, b"/local/domain/1\0", E("EINVAL")),
    s(2, T::DirectoryPart, b"/local/domain/0\x000\0", E("EACCES")),
    // Special nodes.
    s(0, T::GetPerms, b"@releaseDomain\0", O(b"n0\0")),
    s(1, T::GetPerms, b"@releaseDomain\0", E("EACCES")),
    s(1, T::SetPerms, b"@releaseDomain\0n0\0r1\0", E("EACCES")),
    s(0, T::SetPerms, b"@releaseDomain\0n0\0r1\0", O(b"OK\0")),
    s(1, T::GetPerms, b"@releaseDomain\0", O(b"n0\0r1\0")),
    s(1, T::GetPerms, b"@bogus\0", E("ENOENT")),
    // Release.
    s(1, T::Release, b"1\0", E("EACCES")),
    s(0, T::Release, b"2\0", O(b"OK\0")),
    s(0, T::Release, b"2\0", E("ENOENT")),
    s(0, T::Release, b"0\0", E("EINVAL")),
    s(0, T::IsDomainIntroduced, b"2\0", O(b"F\0")),
    s(0, T::GetPerms, b"/local/domain/1/data/bin\0", O(b"n1\0")),
];

#[test]
fn conformance_table() {
    let mut st = Store::default();
    for (i, step) in TABLE.iter().enumerate() {
        let req = Message {
            msg_type: step.ty,
            req_id: 1000 + i as u32,
            tx_id: step.tx,
            payload: step.payload.to_vec(),
        };
        let out = st.handle(step.dom, &req);
        let r = &out[0];
        assert_eq!(r.to, step.dom, "step {i}");
        assert_eq!(r.msg.req_id, req.req_id, "step {i}");
        assert_eq!(r.msg.tx_id, req.tx_id, "step {i}");
        let ok = match step.expect {
            Expect::Ok(p) => r.msg.msg_type == step.ty && r.msg.payload == p,
            Expect::OkSuffix(p) => r.msg.msg_type == step.ty && r.msg.payload.ends_with(p),
            Expect::Err(name) => {
                let mut want = name.as_bytes().to_vec();
                want.push(0);
                r.msg.msg_type == T::Error as u32 && r.msg.payload == want
            }
        };
        assert!(
            ok,
            "step {i}: {:?} → {:?}, wanted {:?}",
            req, r.msg, step.expect
        );
        st.check().unwrap();
    }
    assert!(TABLE.len() >= 40);
    // Every known message type appears in the table.
    for t in MsgType::ALL {
        assert!(TABLE.iter().any(|s| s.ty == t as u32), "{t:?} not covered");
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn req(ty: MsgType, tx: u32, args: &[&[u8]]) -> Message {
    Message::request(ty, 7, tx, args)
}

fn write_req(tx: u32, path: &str, value: &[u8]) -> Message {
    let mut p = path.as_bytes().to_vec();
    p.push(0);
    p.extend_from_slice(value);
    Message::new(T::Write, 7, tx, p)
}

/// Answer payload or error of the first reply; the rest are events.
fn call(st: &mut Store, dom: DomId, m: &Message) -> (Result<Vec<u8>, XsError>, Vec<Reply>) {
    let mut out = st.handle(dom, m);
    let first = out.remove(0);
    (reply_result(&first.msg), out)
}

fn ok(st: &mut Store, dom: DomId, m: &Message) -> Vec<Reply> {
    let (r, ev) = call(st, dom, m);
    assert!(r.is_ok(), "{m:?} as {dom}: {r:?}");
    ev
}

fn err(st: &mut Store, dom: DomId, m: &Message) -> XsError {
    call(st, dom, m).0.expect_err("expected an error")
}

fn events(ev: &[Reply]) -> Vec<(DomId, Vec<u8>, Vec<u8>)> {
    ev.iter()
        .map(|r| {
            assert_eq!(r.msg.msg_type, T::WatchEvent as u32);
            assert_eq!((r.msg.req_id, r.msg.tx_id), (0, 0));
            let a = split_args(&r.msg.payload).unwrap();
            (r.to, a[0].to_vec(), a[1].to_vec())
        })
        .collect()
}

fn ev(dom: DomId, path: &str, token: &str) -> (DomId, Vec<u8>, Vec<u8>) {
    (dom, path.as_bytes().to_vec(), token.as_bytes().to_vec())
}

/// A store with guests 1 and 2 set up as libxl does (home `n0 rD`, `data` owned by the guest).
fn setup() -> Store {
    let mut st = Store::default();
    for d in [1u16, 2] {
        let ds = alloc::format!("{d}");
        ok(
            &mut st,
            0,
            &req(T::Introduce, 0, &[ds.as_bytes(), b"1", b"1"]),
        );
        let home = domain_path(d);
        st.write(&home, b"").unwrap();
        st.set_perms(&home, &Perms::new(0, Access::None).with(d, Access::Read))
            .unwrap();
        let data = alloc::format!("{home}/data");
        st.write(&data, b"").unwrap();
        st.set_perms(&data, &Perms::new(d, Access::None)).unwrap();
    }
    st.write("/local/domain/0/secret", b"s3cr3t").unwrap();
    st
}

// ---------------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------------

#[test]
fn domu_isolation() {
    let mut st = setup();
    assert_eq!(
        err(&mut st, 1, &req(T::Read, 0, &[b"/local/domain/0/secret"])),
        XsError::Acces
    );
    assert_eq!(
        err(&mut st, 1, &req(T::Directory, 0, &[b"/local/domain/0"])),
        XsError::Acces
    );
    assert_eq!(
        err(
            &mut st,
            1,
            &req(T::GetPerms, 0, &[b"/local/domain/0/secret"])
        ),
        XsError::Acces
    );
    assert_eq!(
        err(&mut st, 1, &write_req(0, "/local/domain/0/secret", b"x")),
        XsError::Acces
    );
    assert_eq!(
        err(&mut st, 1, &req(T::Rm, 0, &[b"/local/domain/0"])),
        XsError::Acces
    );
    assert_eq!(
        err(&mut st, 1, &req(T::Directory, 0, &[b"/"])),
        XsError::Acces
    );
    assert_eq!(
        err(&mut st, 1, &write_req(0, "/newtop", b"x")),
        XsError::Acces
    );
    // Its own home: readable, `data` writable; the other guest's is closed.
    ok(&mut st, 1, &req(T::Directory, 0, &[b"/local/domain/1"]));
    ok(&mut st, 1, &write_req(0, "data/k", b"v"));
    assert_eq!(
        err(&mut st, 2, &req(T::Read, 0, &[b"/local/domain/1/data/k"])),
        XsError::Acces
    );
    assert_eq!(
        err(
            &mut st,
            2,
            &req(T::Read, 0, &[b"/local/domain/1/data/nope"])
        ),
        XsError::Acces
    );
    assert_eq!(err(&mut st, 1, &write_req(0, "name", b"v")), XsError::Acces);
    // Ownership can't be given away by a guest, and it owns what it creates.
    assert_eq!(
        st.call(0, T::GetPerms, &[b"/local/domain/1/data/k"])
            .unwrap(),
        b"n1\0"
    );
    assert_eq!(
        err(&mut st, 1, &req(T::SetPerms, 0, &[b"data/k", b"n0"])),
        XsError::Perm
    );
    // dom0 reads everything.
    assert_eq!(
        st.call(0, T::Read, &[b"/local/domain/1/data/k"]).unwrap(),
        b"v"
    );
}

#[test]
fn created_node_inherits_parent_perms() {
    let mut st = setup();
    st.set_perms(
        "/local/domain/1/data",
        &Perms::new(1, Access::None).with(2, Access::Read),
    )
    .unwrap();
    ok(&mut st, 1, &write_req(0, "data/a/b", b"v"));
    assert_eq!(
        st.call(0, T::GetPerms, &[b"/local/domain/1/data/a/b"])
            .unwrap(),
        b"n1\0r2\0"
    );
    assert_eq!(
        st.call(2, T::Read, &[b"/local/domain/1/data/a/b"]).unwrap(),
        b"v"
    );
    // A node dom0 creates keeps the parent's owner.
    st.write("/local/domain/1/data/z", b"").unwrap();
    assert_eq!(
        st.call(0, T::GetPerms, &[b"/local/domain/1/data/z"])
            .unwrap(),
        b"n1\0r2\0"
    );
}

#[test]
fn release_revokes_access_and_deletes_orphans() {
    let mut st = setup();
    ok(&mut st, 1, &write_req(0, "data/k", b"v"));
    ok(&mut st, 1, &write_req(0, "data/k/below", b"w"));
    st.set_perms(
        "/local/domain/1/data/k",
        &Perms::new(1, Access::None).with(2, Access::Read),
    )
    .unwrap();
    st.write("/local/domain/2/shared", b"s").unwrap();
    st.set_perms(
        "/local/domain/2/shared",
        &Perms::new(0, Access::None)
            .with(1, Access::Both)
            .with(2, Access::Read),
    )
    .unwrap();
    // A node dom0 gave domain 1 outside its home.
    st.write("/tool/d1", b"x").unwrap();
    st.set_perms("/tool/d1", &Perms::new(1, Access::None))
        .unwrap();
    assert!(st.charged(1) > 0);
    ok(&mut st, 0, &req(T::Watch, 0, &[b"/tool", b"t"]));
    let e = ok(&mut st, 0, &req(T::Release, 0, &[b"1"]));
    // What domain 1 owned is gone (C xenstored's default for orphans), wherever it was,
    // and watchers hear about it; nothing stays charged to it.
    for p in [
        &b"/local/domain/1/data/k"[..],
        b"/local/domain/1/data/k/below",
        b"/tool/d1",
    ] {
        assert_eq!(st.call(0, T::Read, &[p]), Err(XsError::NoEnt));
    }
    assert!(events(&e).contains(&ev(0, "/tool/d1", "t")));
    assert_eq!(st.charged(1), 0);
    // Its entries are struck from everything else (XSA-322).
    assert_eq!(
        st.call(0, T::GetPerms, &[b"/local/domain/2/shared"])
            .unwrap(),
        b"n0\0r2\0"
    );
    st.check().unwrap();
    assert_eq!(
        st.take_domain_events().last(),
        Some(&DomainEvent::Released { dom: 1 })
    );
}

/// C xenstored asks for write access *and* ownership (XS_PERM_WRITE | XS_PERM_OWNER) before
/// SET_PERMS, on ordinary nodes and on @introduceDomain/@releaseDomain alike: a domain that
/// may only write a node cannot re-open it to others (or take it).
#[test]
fn set_perms_by_a_writer_who_is_not_the_owner_is_eacces() {
    let mut st = setup();
    ok(&mut st, 1, &write_req(0, "data/k", b"v"));
    // Domain 1 owns it and lets domain 2 write it.
    ok(&mut st, 1, &req(T::SetPerms, 0, &[b"data/k", b"n1", b"w2"]));
    ok(&mut st, 2, &write_req(0, "/local/domain/1/data/k", b"w"));
    for perms in [&[&b"n1"[..], b"b2"][..], &[b"n1", b"w2", b"r3"], &[b"n2"]] {
        let mut a: Vec<&[u8]> = vec![b"/local/domain/1/data/k"];
        a.extend_from_slice(perms);
        assert_eq!(err(&mut st, 2, &req(T::SetPerms, 0, &a)), XsError::Acces);
    }
    assert_eq!(
        st.call(0, T::GetPerms, &[b"/local/domain/1/data/k"])
            .unwrap(),
        b"n1\0w2\0"
    );
    // The special nodes too: dom0 lets domain 2 write @releaseDomain, not own it.
    st.set_perms(
        RELEASE_DOMAIN,
        &Perms::new(0, Access::None).with(2, Access::Both),
    )
    .unwrap();
    assert_eq!(
        err(
            &mut st,
            2,
            &req(T::SetPerms, 0, &[b"@releaseDomain", b"n0", b"r3"])
        ),
        XsError::Acces
    );
    // The refusals are counted for the report.
    assert!(st.refusals(2).get(Refusal::Permission) >= 4);
}

// ---------------------------------------------------------------------------------------------
// Watches
// ---------------------------------------------------------------------------------------------

#[test]
fn watch_initial_event_and_relative_paths() {
    let mut st = setup();
    let e = ok(&mut st, 1, &req(T::Watch, 0, &[b"data", b"t1"]));
    assert_eq!(events(&e), vec![ev(1, "data", "t1")]);
    let e = ok(&mut st, 0, &req(T::Watch, 0, &[b"/local/domain/1", b"d0"]));
    assert_eq!(events(&e), vec![ev(0, "/local/domain/1", "d0")]);
    let e = ok(&mut st, 1, &write_req(0, "data/x/y", b"v"));
    assert_eq!(
        events(&e),
        vec![
            ev(0, "/local/domain/1/data/x/y", "d0"),
            ev(1, "data/x/y", "t1")
        ]
    );
    // Absolute watch by a guest reports absolute paths.
    ok(
        &mut st,
        1,
        &req(T::Watch, 0, &[b"/local/domain/1/data/x", b"abs"]),
    );
    let e = st.write("/local/domain/1/data/x/y", b"w").unwrap();
    assert!(events(&e).contains(&ev(1, "/local/domain/1/data/x/y", "abs")));
    assert!(events(&e).contains(&ev(1, "data/x/y", "t1")));
}

#[test]
fn watch_events_always_fit() {
    let mut st = Store::default();
    let tok = vec![b't'; 1022];
    ok(&mut st, 0, &req(T::Watch, 0, &[b"/", &tok]));
    let long = vec![b't'; 1023];
    assert_eq!(
        err(&mut st, 0, &req(T::Watch, 0, &[b"/", &long])),
        XsError::Inval
    );
    let mut p = alloc::string::String::new();
    while p.len() < XENSTORE_ABS_PATH_MAX - 2 {
        p.push_str("/a");
    }
    let e = st.write(&p, b"").unwrap();
    assert_eq!(e.len(), 1);
    assert!(e[0].msg.payload.len() <= XENSTORE_PAYLOAD_MAX);
}

#[test]
fn nested_watches_and_removal() {
    let mut st = Store::default();
    st.write("/a/b/c", b"").unwrap();
    ok(&mut st, 0, &req(T::Watch, 0, &[b"/a", b"A"]));
    ok(&mut st, 0, &req(T::Watch, 0, &[b"/a/b", b"B"]));
    ok(&mut st, 0, &req(T::Watch, 0, &[b"/a/b/c/d", b"D"]));
    ok(&mut st, 0, &req(T::Watch, 0, &[b"/x", b"X"]));
    let e = st.write("/a/b/c", b"1").unwrap();
    assert_eq!(events(&e), vec![ev(0, "/a/b/c", "A"), ev(0, "/a/b/c", "B")]);
    let e = st.write("/a/b/c/d", b"1").unwrap();
    assert_eq!(events(&e).len(), 3);
    // Removing an ancestor fires watches below it with their own path.
    let e = ok(&mut st, 0, &req(T::Rm, 0, &[b"/a/b"]));
    assert_eq!(
        events(&e),
        vec![
            ev(0, "/a/b", "A"),
            ev(0, "/a/b", "B"),
            ev(0, "/a/b/c/d", "D")
        ]
    );
    // Unwatch stops events; set_perms and mkdir fire.
    ok(&mut st, 0, &req(T::Unwatch, 0, &[b"/a", b"A"]));
    let e = ok(&mut st, 0, &req(T::Mkdir, 0, &[b"/a/b"]));
    assert_eq!(events(&e), vec![ev(0, "/a/b", "B")]);
    let e = st.set_perms("/a/b", &Perms::new(0, Access::Read)).unwrap();
    assert_eq!(events(&e), vec![ev(0, "/a/b", "B")]);
    // A root watch sees everything.
    ok(&mut st, 0, &req(T::Watch, 0, &[b"/", b"R"]));
    let e = st.write("/x", b"").unwrap();
    assert_eq!(events(&e), vec![ev(0, "/x", "X"), ev(0, "/x", "R")]);
}

#[test]
fn watch_events_respect_permissions() {
    let mut st = setup();
    ok(&mut st, 2, &req(T::Watch, 0, &[b"/local/domain/1", b"spy"]));
    ok(&mut st, 2, &req(T::Watch, 0, &[b"/", b"spy2"]));
    let e = ok(&mut st, 1, &write_req(0, "data/private", b"v"));
    assert!(events(&e).iter().all(|(d, _, _)| *d != 2));
    // Special watches need the special node's permissions.
    ok(&mut st, 2, &req(T::Watch, 0, &[b"@introduceDomain", b"i"]));
    ok(&mut st, 0, &req(T::Watch, 0, &[b"@introduceDomain", b"i0"]));
    let e = ok(&mut st, 0, &req(T::Introduce, 0, &[b"5", b"1", b"1"]));
    assert_eq!(events(&e), vec![ev(0, "@introduceDomain", "i0")]);
    ok(
        &mut st,
        0,
        &req(T::SetPerms, 0, &[b"@introduceDomain", b"n0", b"r2"]),
    );
    let e = ok(&mut st, 0, &req(T::Introduce, 0, &[b"6", b"1", b"1"]));
    assert_eq!(events(&e).len(), 2);
}

#[test]
fn release_and_reset_remove_watches() {
    let mut st = setup();
    ok(&mut st, 0, &req(T::Watch, 0, &[b"@releaseDomain", b"rel"]));
    ok(&mut st, 1, &req(T::Watch, 0, &[b"data", b"t"]));
    ok(&mut st, 1, &req(T::ResetWatches, 0, &[b""]));
    assert!(events(&st.write("/local/domain/1/data/a", b"").unwrap()).is_empty());
    ok(&mut st, 2, &req(T::Watch, 0, &[b"data", b"t"]));
    let e = ok(&mut st, 0, &req(T::Release, 0, &[b"2"]));
    assert_eq!(events(&e), vec![ev(0, "@releaseDomain", "rel")]);
    assert!(events(&st.write("/local/domain/2/data/a", b"").unwrap()).is_empty());
    // Death without XS_RELEASE.
    let e = st.domain_gone(1);
    assert_eq!(events(&e), vec![ev(0, "@releaseDomain", "rel")]);
    assert!(st.domains().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Transactions
// ---------------------------------------------------------------------------------------------

fn start(st: &mut Store, dom: DomId) -> u32 {
    let (r, _) = call(st, dom, &req(T::TransactionStart, 0, &[b""]));
    let id = r.unwrap();
    core::str::from_utf8(&id[..id.len() - 1])
        .unwrap()
        .parse()
        .unwrap()
}

fn end(
    st: &mut Store,
    dom: DomId,
    tx: u32,
    commit: bool,
) -> (Result<Vec<u8>, XsError>, Vec<Reply>) {
    call(
        st,
        dom,
        &req(T::TransactionEnd, tx, &[if commit { b"T" } else { b"F" }]),
    )
}

#[test]
fn transaction_commit_fires_watches_on_commit_only() {
    let mut st = setup();
    ok(
        &mut st,
        0,
        &req(T::Watch, 0, &[b"/local/domain/1/data", b"w"]),
    );
    let t = start(&mut st, 1);
    let e = ok(&mut st, 1, &write_req(t, "data/a", b"1"));
    assert!(e.is_empty());
    ok(&mut st, 1, &write_req(t, "data/b", b"2"));
    ok(&mut st, 1, &req(T::Rm, t, &[b"data/a"]));
    let (r, e) = end(&mut st, 1, t, true);
    assert_eq!(r.unwrap(), b"OK\0");
    // One event per changed node (data/a was written then removed: one change).
    assert_eq!(
        events(&e),
        vec![
            ev(0, "/local/domain/1/data/a", "w"),
            ev(0, "/local/domain/1/data/b", "w"),
        ]
    );
    assert_eq!(st.call(1, T::Read, &[b"data/b"]).unwrap(), b"2");
    assert_eq!(st.call(1, T::Read, &[b"data/a"]), Err(XsError::NoEnt));
    st.check().unwrap();
}

#[test]
fn transaction_conflict_is_eagain() {
    let mut st = setup();
    ok(&mut st, 1, &write_req(0, "data/x", b"0"));
    let t = start(&mut st, 1);
    assert_eq!(st.call(1, T::Read, &[b"data/x"]).unwrap(), b"0");
    let (v, _) = call(&mut st, 1, &req(T::Read, t, &[b"data/x"]));
    assert_eq!(v.unwrap(), b"0");
    ok(&mut st, 1, &write_req(t, "data/y", b"from-tx"));
    // Someone else changes what the transaction read.
    st.write("/local/domain/1/data/x", b"1").unwrap();
    let (r, e) = end(&mut st, 1, t, true);
    assert_eq!(r, Err(XsError::Again));
    assert!(e.is_empty());
    assert_eq!(st.call(1, T::Read, &[b"data/y"]), Err(XsError::NoEnt));
    // The transaction is gone after EAGAIN.
    assert_eq!(end(&mut st, 1, t, true).0, Err(XsError::NoEnt));
}

#[test]
fn transaction_conflicts_on_siblings_and_absent_reads() {
    let mut st = setup();
    // Two transactions creating children of the same directory: the second loses.
    let t1 = start(&mut st, 1);
    let t2 = start(&mut st, 1);
    ok(&mut st, 1, &write_req(t1, "data/a", b"1"));
    ok(&mut st, 1, &write_req(t2, "data/b", b"2"));
    assert!(end(&mut st, 1, t1, true).0.is_ok());
    assert_eq!(end(&mut st, 1, t2, true).0, Err(XsError::Again));
    // A transaction that saw a node absent conflicts when it appears.
    let t = start(&mut st, 1);
    assert_eq!(
        call(&mut st, 1, &req(T::Read, t, &[b"data/later"])).0,
        Err(XsError::NoEnt)
    );
    st.write("/local/domain/1/data/later", b"x").unwrap();
    assert_eq!(end(&mut st, 1, t, true).0, Err(XsError::Again));
    // Unrelated changes do not conflict.
    let t = start(&mut st, 1);
    ok(&mut st, 1, &write_req(t, "data/a", b"new"));
    st.write("/local/domain/2/data/z", b"x").unwrap();
    assert!(end(&mut st, 1, t, true).0.is_ok());
    assert_eq!(st.call(1, T::Read, &[b"data/a"]).unwrap(), b"new");
}

#[test]
fn transaction_abort_and_isolation() {
    let mut st = setup();
    ok(&mut st, 1, &write_req(0, "data/keep", b"k"));
    let t = start(&mut st, 1);
    ok(&mut st, 1, &req(T::Rm, t, &[b"data/keep"]));
    ok(&mut st, 1, &write_req(t, "data/n/m", b"v"));
    assert_eq!(
        call(&mut st, 1, &req(T::Read, t, &[b"data/keep"])).0,
        Err(XsError::NoEnt)
    );
    assert_eq!(st.call(1, T::Read, &[b"data/keep"]).unwrap(), b"k");
    assert_eq!(st.call(1, T::Read, &[b"data/n/m"]), Err(XsError::NoEnt));
    // Permissions still apply inside a transaction.
    assert_eq!(
        call(&mut st, 1, &req(T::Read, t, &[b"/local/domain/0/secret"])).0,
        Err(XsError::Acces)
    );
    assert!(end(&mut st, 1, t, false).0.is_ok());
    assert_eq!(st.call(1, T::Read, &[b"data/keep"]).unwrap(), b"k");
    st.check().unwrap();
    // Transaction ids are per domain.
    let t1 = start(&mut st, 1);
    assert_eq!(
        call(&mut st, 2, &req(T::Read, t1, &[b"data"])).0,
        Err(XsError::NoEnt)
    );
}

#[test]
fn transactions_die_with_domain() {
    let mut st = setup();
    let t = start(&mut st, 2);
    ok(&mut st, 0, &req(T::Release, 0, &[b"2"]));
    st.check().unwrap();
    ok(&mut st, 0, &req(T::Introduce, 0, &[b"2", b"1", b"1"]));
    assert_eq!(end(&mut st, 2, t, true).0, Err(XsError::NoEnt));
}

// ---------------------------------------------------------------------------------------------
// Quotas
// ---------------------------------------------------------------------------------------------

fn setup_quota(q: Quota) -> Store {
    let mut st = Store::new(q);
    ok(&mut st, 0, &req(T::Introduce, 0, &[b"1", b"1", b"1"]));
    st.write("/local/domain/1/data", b"").unwrap();
    st.set_perms("/local/domain/1/data", &Perms::new(1, Access::None))
        .unwrap();
    st
}

#[test]
fn node_quota() {
    let mut st = setup_quota(Quota {
        max_nodes: 5,
        ..Quota::default()
    });
    // `data` itself counts.
    for i in 0..4 {
        ok(&mut st, 1, &write_req(0, &alloc::format!("data/{i}"), b""));
    }
    assert_eq!(
        err(&mut st, 1, &write_req(0, "data/x", b"")),
        XsError::NoSpc
    );
    assert_eq!(
        err(&mut st, 1, &req(T::Mkdir, 0, &[b"data/x"])),
        XsError::NoSpc
    );
    // Overwriting is fine; removing frees room; multi-level creation counts every level.
    ok(&mut st, 1, &write_req(0, "data/0", b"v"));
    ok(&mut st, 1, &req(T::Rm, 0, &[b"data/0"]));
    ok(&mut st, 1, &req(T::Rm, 0, &[b"data/1"]));
    assert_eq!(
        err(&mut st, 1, &write_req(0, "data/a/b/c", b"")),
        XsError::NoSpc
    );
    ok(&mut st, 1, &write_req(0, "data/a/b", b""));
    // In a transaction too.
    ok(&mut st, 1, &req(T::Rm, 0, &[b"data/a"]));
    let t = start(&mut st, 1);
    ok(&mut st, 1, &write_req(t, "data/t1", b""));
    ok(&mut st, 1, &write_req(t, "data/t2", b""));
    assert_eq!(
        err(&mut st, 1, &write_req(t, "data/t3", b"")),
        XsError::NoSpc
    );
    // dom0 is exempt.
    for i in 0..10 {
        st.write(&alloc::format!("/local/domain/1/data/d0-{i}"), b"")
            .unwrap();
    }
    st.check().unwrap();
}

#[test]
fn value_depth_perms_quotas() {
    let mut st = setup_quota(Quota::default());
    let big = vec![b'x'; 2048];
    ok(&mut st, 1, &write_req(0, "data/v", &big));
    let bigger = vec![b'x'; 2049];
    assert_eq!(
        err(&mut st, 1, &write_req(0, "data/v", &bigger)),
        XsError::NoSpc
    );
    st.write("/local/domain/1/data/v", &[b'y'; 4000]).unwrap();
    // Depth.
    let mut p = alloc::string::String::from("data");
    while path_depth_abs(&p) < Quota::default().max_depth {
        p.push_str("/d");
    }
    ok(&mut st, 1, &write_req(0, &p, b""));
    p.push_str("/d");
    assert_eq!(err(&mut st, 1, &write_req(0, &p, b"")), XsError::NoSpc);
    // Permission entries.
    assert_eq!(
        err(
            &mut st,
            1,
            &req(
                T::SetPerms,
                0,
                &[b"data/v", b"n1", b"r2", b"r3", b"r4", b"r5", b"r6"]
            )
        ),
        XsError::NoSpc
    );
    ok(
        &mut st,
        1,
        &req(
            T::SetPerms,
            0,
            &[b"data/v", b"n1", b"r2", b"r3", b"r4", b"r5"],
        ),
    );
}

fn path_depth_abs(rel: &str) -> usize {
    3 + rel.split('/').count()
}

#[test]
fn watch_and_transaction_quotas() {
    let mut st = setup_quota(Quota::default());
    for i in 0..128 {
        ok(
            &mut st,
            1,
            &req(T::Watch, 0, &[b"data", alloc::format!("{i}").as_bytes()]),
        );
    }
    assert_eq!(
        err(&mut st, 1, &req(T::Watch, 0, &[b"data", b"one-more"])),
        XsError::TooBig
    );
    for _ in 0..10 {
        start(&mut st, 1);
    }
    assert_eq!(
        err(&mut st, 1, &req(T::TransactionStart, 0, &[b""])),
        XsError::NoSpc
    );
    // dom0 has no such limits.
    for i in 0..200 {
        ok(
            &mut st,
            0,
            &req(T::Watch, 0, &[b"/", alloc::format!("{i}").as_bytes()]),
        );
    }
    for _ in 0..20 {
        start(&mut st, 0);
    }
}

#[test]
fn transaction_size_quota() {
    let mut st = setup_quota(Quota {
        max_tx_nodes: 20,
        ..Quota::default()
    });
    let t = start(&mut st, 1);
    let mut last = Ok(Vec::new());
    for i in 0..40 {
        last = call(
            &mut st,
            1,
            &req(T::Read, t, &[alloc::format!("data/{i}").as_bytes()]),
        )
        .0;
    }
    assert_eq!(last, Err(XsError::NoSpc));
    assert_eq!(end(&mut st, 1, t, true).0, Err(XsError::NoSpc));
}

#[test]
fn big_directory() {
    let mut st = Store::default();
    for i in 0..400 {
        st.write(&alloc::format!("/d/child-number-{i:04}"), b"")
            .unwrap();
    }
    assert_eq!(st.call(0, T::Directory, &[b"/d"]), Err(XsError::TooBig));
    // DIRECTORY_PART walks it in pieces.
    let mut names = Vec::new();
    let mut off = 0usize;
    loop {
        let off_s = alloc::format!("{off}");
        let r = st
            .call(0, T::DirectoryPart, &[b"/d", off_s.as_bytes()])
            .unwrap();
        assert!(r.len() <= XENSTORE_PAYLOAD_MAX);
        let gen_end = r.iter().position(|b| *b == 0).unwrap();
        let body = &r[gen_end + 1..];
        let done = body.ends_with(b"\0\0") || body == b"\0";
        let list = if done { &body[..body.len() - 1] } else { body };
        for n in split_args(list).unwrap_or_default() {
            names.push(n.to_vec());
        }
        off += list.len();
        if done {
            break;
        }
    }
    assert_eq!(names.len(), 400);
    assert_eq!(names[0], b"child-number-0000");
    assert_eq!(names[399], b"child-number-0399");
}

// ---------------------------------------------------------------------------------------------
// Rings
// ---------------------------------------------------------------------------------------------

/// The guest's side of a ring page.
struct Guest {
    page: [u8; 4096],
}

impl Guest {
    fn new(start: u32) -> Guest {
        let mut page = [0u8; 4096];
        for off in [L::REQ_CONS, L::REQ_PROD, L::RSP_CONS, L::RSP_PROD] {
            page.store_u32(off, start);
        }
        Guest { page }
    }

    /// Put bytes into the request ring; returns how many fit.
    fn send_bytes(&mut self, b: &[u8]) -> usize {
        let cons = self.page.load_u32(L::REQ_CONS);
        let mut prod = self.page.load_u32(L::REQ_PROD);
        let free = 1024 - prod.wrapping_sub(cons) as usize;
        let n = b.len().min(free);
        for &c in &b[..n] {
            self.page[L::REQ + (prod & 1023) as usize] = c;
            prod = prod.wrapping_add(1);
        }
        self.page.store_u32(L::REQ_PROD, prod);
        n
    }

    fn send(&mut self, m: &Message) {
        let w = m.encode();
        assert_eq!(self.send_bytes(&w), w.len());
    }

    fn recv_bytes(&mut self) -> Vec<u8> {
        let mut cons = self.page.load_u32(L::RSP_CONS);
        let prod = self.page.load_u32(L::RSP_PROD);
        let mut v = Vec::new();
        while cons != prod {
            v.push(self.page[L::RSP + (cons & 1023) as usize]);
            cons = cons.wrapping_add(1);
        }
        self.page.store_u32(L::RSP_CONS, cons);
        v
    }
}

fn parse_all(mut b: &[u8]) -> Vec<Message> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let m = Message::parse(b).unwrap();
        b = &b[m.wire_len()..];
        v.push(m);
    }
    v
}

fn server_with_guest() -> Server {
    let mut srv = Server::new(Store::default());
    let r = srv.local(&req(T::Introduce, 0, &[b"1", b"1", b"1"]));
    assert_eq!(r[0].payload, b"OK\0");
    assert_eq!(
        srv.take_domain_events(),
        vec![DomainEvent::Introduced {
            dom: 1,
            gfn: 1,
            port: 1
        }]
    );
    srv.local(&write_req(0, "/local/domain/1", b""));
    srv.local(&req(T::SetPerms, 0, &[b"/local/domain/1", b"n1"]));
    srv
}

#[test]
fn ring_roundtrip_with_wraparound() {
    // Indexes near the top of u32 and mid-ring: every copy wraps both ways.
    for start in [0u32, 1000, u32::MAX - 7, u32::MAX - 1030] {
        let mut srv = server_with_guest();
        let mut g = Guest::new(start);
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..50u32 {
            let val = alloc::format!("value-{i}-{}", "x".repeat((i * 37 % 300) as usize));
            let m = write_req(0, &alloc::format!("k{i}"), val.as_bytes());
            let mut m = m;
            m.req_id = i;
            g.send(&m);
            let mut r = req(T::Read, 0, &[alloc::format!("k{i}").as_bytes()]);
            r.req_id = 1000 + i;
            g.send(&r);
            expected.push((i, b"OK\0".to_vec()));
            expected.push((1000 + i, val.into_bytes()));
            assert!(srv.service(1, &mut g.page).unwrap());
            got.extend(g.recv_bytes());
        }
        let msgs = parse_all(&got);
        let pairs: Vec<_> = msgs.into_iter().map(|m| (m.req_id, m.payload)).collect();
        assert_eq!(pairs, expected);
    }
}

#[test]
fn ring_partial_messages_and_full_response_ring() {
    let mut srv = server_with_guest();
    let mut g = Guest::new(5);
    let big = vec![b'v'; 1500];
    srv.local(&write_req(0, "/local/domain/1/big", &big));
    let m = req(T::Read, 0, &[b"big"]).encode();
    // Header in two pieces, then the payload.
    g.send_bytes(&m[..7]);
    assert!(srv.service(1, &mut g.page).unwrap());
    assert!(g.recv_bytes().is_empty());
    g.send_bytes(&m[7..16]);
    srv.service(1, &mut g.page).unwrap();
    assert!(g.recv_bytes().is_empty());
    g.send_bytes(&m[16..]);
    srv.service(1, &mut g.page).unwrap();
    // The reply is larger than the ring: it arrives in pieces as the guest reads.
    let mut got = g.recv_bytes();
    assert_eq!(got.len(), 1024);
    assert!(srv.has_output(1));
    srv.flush(1, &mut g.page).unwrap();
    got.extend(g.recv_bytes());
    assert!(!srv.has_output(1));
    let msgs = parse_all(&got);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].payload, big);
}

#[test]
fn hostile_request_indexes() {
    let mut srv = server_with_guest();
    let mut g = Guest::new(0);
    g.page.store_u32(L::REQ_PROD, 2000);
    assert_eq!(srv.service(1, &mut g.page), Err(RingError::Index));
    assert_eq!(g.page.load_u32(L::ERROR), L::ERROR_RINGIDX);
    // The connection stays dead, even if the guest repairs its indexes.
    g.page.store_u32(L::REQ_PROD, 0);
    assert_eq!(srv.service(1, &mut g.page), Err(RingError::Index));
    // prod behind cons is just as bogus.
    let mut srv = server_with_guest();
    let mut g = Guest::new(100);
    g.page.store_u32(L::REQ_PROD, 99);
    assert_eq!(srv.service(1, &mut g.page), Err(RingError::Index));
}

#[test]
fn hostile_response_indexes() {
    let mut srv = server_with_guest();
    let mut g = Guest::new(0);
    g.page.store_u32(L::RSP_CONS, 5000);
    g.send(&req(T::Read, 0, &[b"x"]));
    assert_eq!(srv.service(1, &mut g.page), Err(RingError::Index));
    assert_eq!(g.page.load_u32(L::ERROR), L::ERROR_RINGIDX);
}

#[test]
fn hostile_oversized_length() {
    let mut srv = server_with_guest();
    let mut g = Guest::new(0);
    let h = Header {
        msg_type: T::Read as u32,
        req_id: 1,
        tx_id: 0,
        len: 4097,
    };
    g.send_bytes(&h.encode());
    assert_eq!(srv.service(1, &mut g.page), Err(RingError::Proto));
    assert_eq!(g.page.load_u32(L::ERROR), L::ERROR_PROTO);
    let h = Header { len: u32::MAX, ..h };
    let mut srv = server_with_guest();
    let mut g = Guest::new(0);
    g.send_bytes(&h.encode());
    assert_eq!(srv.service(1, &mut g.page), Err(RingError::Proto));
}

#[test]
fn garbage_payloads_get_errors_not_disconnects() {
    let mut srv = server_with_guest();
    let mut g = Guest::new(0);
    for (ty, p) in [
        (9999u32, &b"junk"[..]),
        (T::Read as u32, b"\xff\xfe"),
        (T::Write as u32, b""),
        (T::Watch as u32, b"\0\0\0"),
        (T::TransactionEnd as u32, b"TT"),
        (T::SetPerms as u32, b"/\0\0\0"),
    ] {
        g.send(&Message {
            msg_type: ty,
            req_id: 3,
            tx_id: 0,
            payload: p.to_vec(),
        });
    }
    srv.service(1, &mut g.page).unwrap();
    let msgs = parse_all(&g.recv_bytes());
    assert_eq!(msgs.len(), 6);
    assert!(msgs.iter().all(|m| m.msg_type == T::Error as u32));
    // Still alive.
    g.send(&req(T::GetDomainPath, 0, &[b"1"]));
    srv.service(1, &mut g.page).unwrap();
    assert_eq!(parse_all(&g.recv_bytes())[0].payload, b"/local/domain/1\0");
}

#[test]
fn slow_reader_is_throttled_and_events_dropped() {
    let mut srv = Server::new(Store::new(Quota {
        max_pending: 8,
        ..Quota::default()
    }));
    srv.local(&req(T::Introduce, 0, &[b"1", b"1", b"1"]));
    srv.local(&write_req(0, "/local/domain/1", b""));
    srv.local(&req(T::SetPerms, 0, &[b"/local/domain/1", b"n1"]));
    srv.local(&write_req(0, "/local/domain/1/big", &[b'x'; 1000]));
    let mut g = Guest::new(0);
    g.send(&req(T::Watch, 0, &[b"big", b"t"]));
    for _ in 0..20 {
        g.send(&req(T::Read, 0, &[b"big"]));
    }
    for _ in 0..5 {
        srv.service(1, &mut g.page).unwrap();
    }
    let c = srv.connection(1).unwrap();
    assert!(c.pending() <= 8 + srv.batch);
    // The guest never reads: events from dom0's writes are dropped beyond the limit.
    for i in 0..50 {
        srv.local(&write_req(
            0,
            "/local/domain/1/big",
            alloc::format!("{i}").as_bytes(),
        ));
    }
    let c = srv.connection(1).unwrap();
    assert!(c.pending() <= 8 + srv.batch);
    assert!(c.dropped_events() > 0);
    // Once it reads, everything it asked for arrives.
    let mut bytes = Vec::new();
    for _ in 0..200 {
        srv.service(1, &mut g.page).unwrap();
        bytes.extend(g.recv_bytes());
    }
    let replies = parse_all(&bytes)
        .iter()
        .filter(|m| m.msg_type == T::Read as u32)
        .count();
    assert_eq!(replies, 20);
}

#[test]
fn release_drops_connection() {
    let mut srv = server_with_guest();
    let mut g = Guest::new(0);
    srv.local(&req(T::Release, 0, &[b"1"]));
    assert!(srv.connection(1).is_none());
    g.send(&req(T::Read, 0, &[b"x"]));
    assert_eq!(srv.service(1, &mut g.page), Ok(false));
}

#[test]
fn watch_events_reach_other_rings() {
    let mut srv = server_with_guest();
    let mut g = Guest::new(0);
    g.send(&req(T::Watch, 0, &[b"control/shutdown", b"sd"]));
    srv.service(1, &mut g.page).unwrap();
    let m = parse_all(&g.recv_bytes());
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].msg_type, T::WatchEvent as u32);
    srv.local(&write_req(
        0,
        "/local/domain/1/control/shutdown",
        b"poweroff",
    ));
    assert_eq!(srv.domains_with_output(), vec![1]);
    assert!(srv.flush(1, &mut g.page).unwrap());
    let m = parse_all(&g.recv_bytes());
    assert_eq!(m[0].payload, b"control/shutdown\0sd\0");
}

// ---------------------------------------------------------------------------------------------
// Randomized robustness (in place of cargo-fuzz, which is not installed here)
// ---------------------------------------------------------------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, s: &'a [T]) -> &'a T {
        &s[self.below(s.len())]
    }
}

const FRAGMENTS: &[&[u8]] = &[
    b"/",
    b"/local",
    b"/local/domain",
    b"/local/domain/0",
    b"/local/domain/1",
    b"/local/domain/2/data",
    b"data",
    b"data/a",
    b"data/a/b",
    b"name",
    b"/x",
    b"/x/y",
    b"@introduceDomain",
    b"@releaseDomain",
    b"",
    b"//",
    b"/trailing/",
    b"n0",
    b"r1",
    b"b2",
    b"w3",
    b"T",
    b"F",
    b"1",
    b"2",
    b"0",
    b"65535",
    b"99999999999999999999999",
    b"tok",
    b"\xff\x00",
];

fn random_message(rng: &mut Rng, last: &[Message]) -> Message {
    if !last.is_empty() && rng.below(4) == 0 {
        // Mutate an earlier message.
        let mut m = rng.pick(last).clone();
        match rng.below(4) {
            0 if !m.payload.is_empty() => {
                let i = rng.below(m.payload.len());
                m.payload[i] = rng.next() as u8;
            }
            1 => m.payload.truncate(rng.below(m.payload.len() + 1)),
            2 => m.tx_id = rng.below(4) as u32,
            _ => m.msg_type = rng.below(25) as u32,
        }
        return m;
    }
    let ty = if rng.below(20) == 0 {
        rng.next() as u32
    } else {
        rng.below(24) as u32
    };
    let mut payload = Vec::new();
    if rng.below(10) == 0 {
        for _ in 0..rng.below(64) {
            payload.push(rng.next() as u8);
        }
    } else {
        for _ in 0..rng.below(5) {
            let f = rng.pick(FRAGMENTS);
            payload.extend_from_slice(f);
            if rng.below(3) == 0 {
                let g: &[u8] = rng.pick::<&[u8]>(FRAGMENTS);
                payload.extend_from_slice(g);
            }
            if rng.below(8) != 0 {
                payload.push(0);
            }
        }
    }
    Message {
        msg_type: ty,
        req_id: rng.next() as u32,
        tx_id: if rng.below(3) == 0 {
            rng.below(4) as u32
        } else {
            0
        },
        payload,
    }
}

#[test]
fn randomized_requests_never_panic() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut st = Store::new(Quota {
        max_nodes: 50,
        max_tx_nodes: 100,
        ..Quota::default()
    });
    st.write("/local/domain/1/data", b"").unwrap();
    st.set_perms("/local/domain/1/data", &Perms::new(1, Access::None))
        .unwrap();
    let mut history: Vec<Message> = Vec::new();
    for i in 0..100_000u32 {
        let m = random_message(&mut rng, &history);
        // Through the wire form, as a ring would deliver it.
        let wire = m.encode();
        let m = Message::parse(&wire).unwrap();
        let dom = *rng.pick(&[0u16, 1, 1, 2, 3]);
        let out = st.handle(dom, &m);
        assert_eq!(out[0].to, dom);
        assert_eq!(out[0].msg.req_id, m.req_id);
        assert!(
            out.iter()
                .all(|r| r.msg.payload.len() <= XENSTORE_PAYLOAD_MAX)
        );
        if i % 1000 == 0 {
            st.check_accounting().unwrap();
            assert!(st.node_count() < 10_000);
        }
        if history.len() < 256 {
            history.push(m);
        } else {
            let j = rng.below(256);
            history[j] = m;
        }
    }
    st.check().unwrap();
    // Nothing a guest did may have touched dom0's private area.
    assert!(st.call(1, T::Read, &[b"/local/domain/0"]).is_err());
}

#[test]
fn randomized_ring_pages_never_panic_or_hang() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..3000 {
        let mut srv = server_with_guest();
        let mut page = [0u8; 4096];
        for _ in 0..8 {
            // Random bytes and mostly plausible indexes.
            for _ in 0..rng.below(200) {
                let i = rng.below(4096);
                page[i] = rng.next() as u8;
            }
            if rng.below(2) == 0 {
                let cons = page.load_u32(L::REQ_CONS);
                page.store_u32(L::REQ_PROD, cons.wrapping_add(rng.below(1100) as u32));
                let rc = page.load_u32(L::RSP_PROD);
                page.store_u32(L::RSP_CONS, rc.wrapping_sub(rng.below(1100) as u32));
            }
            if rng.below(3) == 0 {
                // A valid request now and then.
                let m = req(T::Write, 0, &[b"k", b"v"]).encode();
                let prod = page.load_u32(L::REQ_PROD);
                for (k, b) in m.iter().enumerate() {
                    page[(prod.wrapping_add(k as u32) & 1023) as usize] = *b;
                }
                page.store_u32(L::REQ_PROD, prod.wrapping_add(m.len() as u32));
            }
            let _ = srv.service(1, &mut page);
            let c = srv.connection(1).unwrap();
            assert!(c.pending() <= srv.store.quota().max_pending + srv.batch);
            let q = srv.store.quota();
            assert!(c.pending_bytes() <= q.max_output_bytes + 4112);
            assert!(srv.charged(1) <= q.max_bytes);
        }
        srv.store.check_accounting().unwrap();
    }
}
