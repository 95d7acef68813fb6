//! The hostile netfront (issue 12): when the toolstack gave this guest a vif, it connects to
//! dom0's netback as Linux netfront does (grants, event channel, keys, state 4), then breaks
//! the protocol: a TX request naming a grant it never made (Linux netback answers that packet
//! with an error and goes on), then a TX slot whose data crosses its page (fatal: netback
//! must close the vif, only this one). It prints what dom0 did each time.
//!
//! Layouts come from the `netback` crate (`wire`, `ring`) and the grant entry from `xen::ops`,
//! so the guest speaks exactly the ABI dom0 serves.

use alloc::format;
use alloc::string::String;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU16, Ordering};

use netback::ring::{ENTRIES, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use netback::wire::{TX_SLOT, TxRequest};
use toolstack::xenstore::{MsgType, RingPage};
use xen::ops;

use crate::hv;
use crate::rings::{self, SharedPage};
use crate::{Guest, S};

/// Where this guest maps frame 0 of its grant table: a guest frame below 4 GiB (identity-
/// mapped by the boot stub) that is neither its RAM nor a special page.
const GRANT_GFN: u64 = 0xd_0000;
/// Grant references it uses (0..8 are the toolstack's).
const TX_REF: u32 = 8;
const RX_REF: u32 = 9;
const DATA_REF: u32 = 10;
/// A grant it never makes.
const BAD_REF: u32 = 99;

#[repr(C, align(4096))]
struct Pages(UnsafeCell<[[u8; 4096]; 3]>);

// SAFETY: only the netif phase (one vCPU, no interrupts) and dom0 through the grants use it.
unsafe impl Sync for Pages {}

/// TX ring, RX ring, one data page.
static PAGES: Pages = Pages(UnsafeCell::new([[0; 4096]; 3]));

fn pfn(i: usize) -> u64 {
    (PAGES.0.get() as u64 + 4096 * i as u64) >> 12
}

impl Guest {
    /// Write `value` at `path` (relative to the guest's home) and wait for the reply.
    fn xs_write(&mut self, path: &str, value: &str) -> bool {
        let mut p = format!("{path}\0").into_bytes();
        p.extend_from_slice(value.as_bytes());
        let r = self.store.call(&self.x, MsgType::Write, 0, &p, 10 * S);
        r.is_some_and(|r| r.error().is_none())
    }

    fn xs_read(&mut self, path: &str) -> Option<String> {
        let p = format!("{path}\0").into_bytes();
        let r = self.store.call(&self.x, MsgType::Read, 0, &p, 10 * S)?;
        match r.error() {
            Some(_) => None,
            None => Some(rings::text(&r.payload)),
        }
    }

    /// Wait (at most `ns`) until the backend's `state` is `want`; the last state read.
    fn backend_state(&mut self, back: &str, want: &str, ns: u64) -> String {
        let deadline = hv::now_ns() + ns;
        loop {
            let s = self.xs_read(&format!("{back}/state")).unwrap_or_default();
            if s == want || hv::now_ns() > deadline {
                return s;
            }
            hv::wait(&self.x, &[], 100_000_000);
        }
    }

    /// The netif phase, if this guest has a vif.
    pub fn netif(&mut self) {
        let Some(back) = self.xs_read("device/vif/0/backend") else {
            return;
        };
        self.phase("netif (a hostile netfront)");
        if ops::map_grant_table_frame(&self.x, 0, GRANT_GFN).is_err() {
            self.say("HOSTILE: netif: cannot map the grant table; skipped");
            return;
        }
        // Grant dom0 the two rings and the data page (entries written flags last).
        for (r, page) in [(TX_REF, 0), (RX_REF, 1), (DATA_REF, 2)] {
            let (flags, rest) = ops::grant_entry_v1(0, pfn(page) as u32, false);
            let at = ((GRANT_GFN << 12) + 8 * u64::from(r)) as *mut u8;
            // SAFETY: the grant table frame is mapped at GRANT_GFN (identity-mapped, 4 KiB)
            // and entry `r` (< 512) lies inside it; only this guest writes its entries.
            unsafe {
                for (i, b) in rest.iter().enumerate() {
                    core::ptr::write_volatile(at.add(2 + i), *b);
                }
                AtomicU16::from_ptr(at.cast()).store(flags, Ordering::Release);
            }
        }
        // SAFETY: PAGES is this guest's RAM below 4 GiB, shared only with dom0 (granted).
        let (mut tx, mut rx) = unsafe { (SharedPage::new(pfn(0)), SharedPage::new(pfn(1))) };
        for ring in [&mut tx, &mut rx] {
            // SHARED_RING_INIT: producers 0, events 1.
            ring.store_u32(REQ_PROD, 0);
            ring.store_u32(RSP_PROD, 0);
            ring.store_u32(REQ_EVENT, 1);
            ring.store_u32(RSP_EVENT, 1);
        }
        let Ok(port) = ops::alloc_unbound(&self.x, self.domid, 0) else {
            self.say("HOSTILE: netif: no event channel; skipped");
            return;
        };
        let keys = [
            ("tx-ring-ref", format!("{TX_REF}")),
            ("rx-ring-ref", format!("{RX_REF}")),
            ("event-channel", format!("{}", port.0)),
            ("request-rx-copy", String::from("1")),
            ("feature-rx-notify", String::from("1")),
            ("state", String::from("4")),
        ];
        for (k, v) in keys {
            if !self.xs_write(&format!("device/vif/0/{k}"), &v) {
                self.say(&format!("HOSTILE: netif: writing {k} failed"));
            }
        }
        let st = self.backend_state(&back, "4", 20 * S);
        self.say(&format!("HOSTILE: netif connected: backend state {st}"));

        // 1. A packet from a grant that does not exist: its slot must come back as an error.
        let bad = TxRequest {
            gref: BAD_REF,
            offset: 0,
            flags: 0,
            id: 1,
            size: 60,
        };
        tx.write_bytes(ENTRIES, &bad.to_bytes());
        tx.store_u32(REQ_PROD, 1);
        let _ = ops::evtchn_send(&self.x, port);
        let deadline = hv::now_ns() + 10 * S;
        while tx.load_u32(RSP_PROD) < 1 && hv::now_ns() < deadline {
            hv::wait(&self.x, &[port], 50_000_000);
        }
        let mut rsp = [0u8; 4];
        tx.read_bytes(ENTRIES, &mut rsp);
        let status = i16::from_le_bytes([rsp[2], rsp[3]]);
        self.say(&format!(
            "HOSTILE: netif bad grant: {} response(s), status {status}",
            tx.load_u32(RSP_PROD)
        ));

        // 2. A slot whose data runs past its page (offset 4000, 200 bytes): fatal.
        let cross = TxRequest {
            gref: DATA_REF,
            offset: 4000,
            flags: 0,
            id: 2,
            size: 200,
        };
        tx.write_bytes(ENTRIES + TX_SLOT, &cross.to_bytes());
        tx.store_u32(REQ_PROD, 2);
        let _ = ops::evtchn_send(&self.x, port);
        let st = self.backend_state(&back, "5", 20 * S);
        let err = self.xs_read(&format!("{back}/error")).unwrap_or_default();
        self.say(&format!(
            "HOSTILE: netif after a slot crossing its page: backend state {st}, error {err:?}"
        ));
    }
}
