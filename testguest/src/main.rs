//! A hostile PVH DomU, built by the project for the tests (`tests/tests/hostile.rs`; issue 10):
//! it does what a malicious guest can do to dom0's xenstore, console and event service with
//! requests that each look valid, and prints every step so that the test can follow it.
//!
//! Like `dom0`, this is a test artifact that runs on bare (virtual) hardware, so `unsafe` is
//! allowed here: the boot stub, the hypercall page, the shared_info page, the ring pages and
//! port 0xE9. Every `unsafe` block carries a `// SAFETY:` comment. Everything Xen-specific comes
//! from the `xen` crate (hypercalls, HVM params, CPUID leaves, shared_info layout) and the
//! `toolstack` crate (xenstore wire format and ring layout, console ring layout), so the guest
//! speaks exactly the ABI dom0 serves.
//!
//! Each step is printed as `HOSTILE: ...` on its PV console (what dom0 prints as
//! `[name] HOSTILE: ...`) and on Xen's debug port 0xE9 (which Xen logs as `(d<id>) HOSTILE:
//! ...` with `guest_loglvl=all`, so the test sees the guest's progress even when dom0 throttles
//! its console). The phases, in order:
//!
//! 1. `console-flood`: up to 1 MiB of console output in 10 s, as fast as dom0 takes it, in
//!    lines longer than dom0's line limit; then `console-bad-index`: 20 producer indices a megabyte or more
//!    ahead of the consumer.
//! 2. `xenstore-hello`: one well-behaved read, to prove the connection works.
//! 3. `xenstore-flood`: watches with long tokens on a node it then writes below (each write
//!    fires every watch), many writes of large values under its home (more than a DomU's
//!    memory limit). No response is read until dom0 stops taking requests (it holds them while
//!    replies go unread); then it reads what came and goes on. Every later flood works the same
//!    way, except the 5000 writes to one node.
//! 4. `xenstore-read-responses`: reads what dom0 answered and counts the error replies; then
//!    removes its flood nodes to make room for the next attacks.
//! 5. `xenstore-transactions`: many transactions, each staging many writes (responses unread),
//!    one node written 5000 times in one transaction, then every commit.
//! 6. `xenstore-set-perms`: SET_PERMS on nodes it does not own (dom0's, the special watch
//!    nodes, the other DomUs' homes, the read-only nodes of its own home).
//! 7. `xenstore-oversized`: values over the size limit, paths over the relative and absolute
//!    limits. Then `HOSTILE: xenstore error replies: N (...)`, the total of all phases.
//! 8. `console-flood-again`: up to 1 MiB more in 8 s (the first flood competes with the other
//!    DomUs' boot for the CPU; this one comes when they may be done).
//! 9. `event-storm`: `EVTCHNOP_send` on its store and console ports in a tight loop.
//! 10. `ignore-shutdown`: it never looks at `control/shutdown`; it loops for ever sending
//!     events and now and then a console line, until dom0 destroys it.
//!
//! With a vif (`device=vif` in its bundle entry) a `netif` phase comes right after
//! `xenstore-hello` (`netif.rs`: a netfront that breaks the ring protocol); with
//! `hostile=netif` on its command line it skips the floods and then only ignores
//! `control/shutdown`, quietly (no event storm).
//!
//! It never stops on its own: every wait has a deadline, and a panic (a bug) only halts it.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod hv;
mod netif;
mod rings;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use toolstack::xenstore::{MsgType, XENSTORE_REL_PATH_MAX};
use xen::domctl::param;
use xen::ops::{self, EvtchnPort};

use hv::Xen;
use rings::{Console, SharedPage, Store, Tally};

// --- heap ---------------------------------------------------------------------------------

const HEAP_SIZE: usize = 1 << 20;

#[repr(C, align(4096))]
struct HeapArea(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the area is only handed to the allocator below, which is behind a lock.
unsafe impl Sync for HeapArea {}

static HEAP_AREA: HeapArea = HeapArea(UnsafeCell::new([0; HEAP_SIZE]));

struct GuestHeap(spin::Mutex<(bool, linked_list_allocator::Heap)>);

#[global_allocator]
static HEAP: GuestHeap = GuestHeap(spin::Mutex::new((
    false,
    linked_list_allocator::Heap::empty(),
)));

// SAFETY: every block comes from one linked-list heap over a static area nothing else uses,
// behind a lock; `dealloc` returns blocks to that heap with the layout they were made with.
unsafe impl GlobalAlloc for GuestHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut h = self.0.lock();
        if !h.0 {
            // SAFETY: first use: the static area is aligned and used by nothing else.
            unsafe { h.1.init(HEAP_AREA.0.get().cast(), HEAP_SIZE) };
            h.0 = true;
        }
        h.1.allocate_first_fit(layout)
            .map_or(core::ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` above with this `layout`.
            unsafe { self.0.lock().1.deallocate(p, layout) }
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hv::debug_port_line(&format!("HOSTILE: PANIC {info}"));
    halt()
}

fn halt() -> ! {
    loop {
        // SAFETY: interrupts are off; hlt only stops this vCPU.
        unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

// --- the guest ----------------------------------------------------------------------------

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
/// dom0 is holding our requests when it has taken no request byte for this long.
const HOLD: u64 = 300 * MS;
/// dom0 has stopped answering when nothing has come back for this long.
const IDLE: u64 = 3 * S;
/// How long a console write waits for dom0 to make room.
const CONSOLE_PATIENCE: u64 = 3 * S;

/// Whether a flood reads xenstore's responses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// Only when dom0 stops taking requests.
    Never,
    AsTheyCome,
}

struct Guest {
    x: Xen,
    domid: u16,
    console: Console,
    store: Store,
    /// Every response read so far, over all phases.
    total: Tally,
}

impl Guest {
    /// One progress line on the console (waiting at most a second for room) and port 0xE9.
    fn say(&mut self, line: &str) {
        hv::debug_port_line(line);
        let mut l = String::from(line);
        l.push('\n');
        self.console.write(&self.x, l.as_bytes(), S);
    }

    fn phase(&mut self, name: &str) {
        self.say(&format!("HOSTILE: phase {name}"));
    }

    /// Send the requests `make(i)` for `i` in `0..n`. With [`Reading::Never`] no response is
    /// read until dom0 stops taking requests (it holds them while replies go unread: nothing
    /// moved for [`HOLD`]); then everything it answered is read and the flood goes on. With
    /// [`Reading::AsTheyCome`] responses are read all along. Gives up if dom0 answers nothing
    /// for [`IDLE`] even after its replies were read.
    fn flood(
        &mut self,
        what: &str,
        n: u32,
        reading: Reading,
        mut make: impl FnMut(u32) -> (MsgType, u32, Vec<u8>),
    ) {
        let read = reading == Reading::AsTheyCome;
        let (mut holds, mut queued, mut gave_up) = (0u32, 0u32, false);
        let mut last = hv::now_ns();
        let mut next = None;
        while queued < n || self.store.backlog() > 0 {
            if queued < n {
                let (ty, tx, payload) = next.take().unwrap_or_else(|| make(queued));
                if self.store.queue(ty, tx, &payload).is_some() {
                    queued += 1;
                    continue;
                }
                next = Some((ty, tx, payload));
            }
            let moved = self.store.pump(&self.x);
            while read && self.store.recv(&self.x).is_some() {}
            let now = hv::now_ns();
            if moved > 0 {
                last = now;
            } else if now - last > HOLD {
                // dom0 holds our requests: read what it answered, then go on.
                holds += 1;
                let answered = self.store.answered;
                self.store.drain(&self.x, IDLE);
                if self.store.answered == answered && self.store.pump(&self.x) == 0 {
                    gave_up = true;
                    break;
                }
                last = hv::now_ns();
            } else {
                hv::wait(&self.x, &[self.store.port], 5 * MS);
            }
        }
        let how = match (holds, gave_up) {
            (_, true) => String::from("; dom0 stopped answering, gave up"),
            (0, _) => String::new(),
            (h, _) => format!("; dom0 held the requests until its replies were read {h} times"),
        };
        self.say(&format!(
            "HOSTILE: xenstore {what}: sent {queued} of {n}{how}"
        ));
    }

    /// Read responses until none has come for [`IDLE`], then report and fold the counts into
    /// the total.
    fn read_responses(&mut self, what: &str) {
        self.store.drain(&self.x, IDLE);
        let t = core::mem::take(&mut self.store.tally);
        self.say(&format!(
            "HOSTILE: xenstore {what}: {} replies, {} watch events, {} errors ({})",
            t.replies,
            t.watch_events,
            t.error_count(),
            t.errors_text()
        ));
        self.total.add(&t);
    }

    /// 1 MiB in 2000-byte lines (longer than dom0's 512-byte line limit), as fast as dom0
    /// takes them, for at most `secs` seconds.
    fn console_flood(&mut self, phase: &str, secs: u64) {
        self.phase(phase);
        let start = hv::now_ns();
        let (mut bytes, mut lines, mut stalled) = (0usize, 0u32, false);
        let filler = [b'x'; 2000];
        while bytes < 1 << 20 && hv::now_ns() - start < secs * S {
            let mut l = format!("HOSTILE-FLOOD {lines:06} ").into_bytes();
            let fill = 1999 - l.len();
            l.extend_from_slice(&filler[..fill]);
            l.push(b'\n');
            let n = self.console.write(&self.x, &l, CONSOLE_PATIENCE);
            bytes += n;
            lines += 1;
            if n < l.len() {
                stalled = true;
                break;
            }
        }
        let ms = (hv::now_ns() - start) / MS;
        let how = if stalled {
            "; dom0 stopped reading"
        } else {
            ""
        };
        self.say(&format!(
            "HOSTILE: {phase} wrote {bytes} bytes in {lines} lines in {ms} ms{how}"
        ));
    }

    fn console_bad_index(&mut self) {
        self.phase("console-bad-index");
        for i in 0..20u32 {
            let prod = self.console.corrupt_producer(&self.x, 0x10_0000 + i * 4096);
            let t = hv::now_ns();
            while !self.console.drained() && hv::now_ns() - t < S {
                hv::wait(&self.x, &[self.console.port], 10 * MS);
            }
            if i == 0 {
                self.say(&format!(
                    "HOSTILE: console producer index set to {prod:#x}, a megabyte ahead"
                ));
            }
        }
        self.say("HOSTILE: console-bad-index: 20 out-of-range producer indices sent");
    }

    fn xenstore_hello(&mut self) {
        self.phase("xenstore-hello");
        let name = self
            .store
            .call(&self.x, MsgType::Read, 0, b"name\0", 20 * S);
        let name = match name {
            Some(r) => match r.error() {
                Some(e) => format!("error {e}"),
                None => rings::text(&r.payload),
            },
            None => String::from("no answer"),
        };
        self.say(&format!("HOSTILE: xenstore read name: {name}"));
        let t = core::mem::take(&mut self.store.tally);
        self.total.add(&t);
    }

    fn xenstore_flood(&mut self) {
        self.phase("xenstore-flood (responses read only when dom0 holds the requests)");
        // Watches on data/w with 1000-byte tokens (the longest whose events still fit in one
        // message), more than the quota allows.
        self.flood("watches with 1000-byte tokens", 200, Reading::Never, |i| {
            let mut p = format!("data/w\0token-{i:05}-").into_bytes();
            p.resize(7 + 1000, b't');
            p.push(0);
            (MsgType::Watch, 0, p)
        });
        // Writes below data/w: each fires every watch (128 events of 1 KiB per write).
        self.flood("writes below the watched node", 10, Reading::Never, |i| {
            (MsgType::Write, 0, format!("data/w/n{i:02}\0v").into_bytes())
        });
        // Many writes of 2000-byte values (each within the per-value limit) under its home:
        // 2.8 MB in all, more than a DomU's xenstore memory limit.
        self.flood("writes of 2000-byte values", 1400, Reading::Never, |i| {
            let mut p = format!("data/f/n{i:04}\0").into_bytes();
            p.resize(p.len() + 2000, b'v');
            (MsgType::Write, 0, p)
        });
        self.phase("xenstore-read-responses");
        self.read_responses("flood");
        // Make room for the next attacks, as a hostile guest at its limit would.
        let mut removed = String::new();
        for path in ["data/f", "data/w"] {
            let mut p = String::from(path).into_bytes();
            p.push(0);
            let r = self.store.call(&self.x, MsgType::Rm, 0, &p, 10 * S);
            let how = match r.as_ref().map(rings::Reply::error) {
                Some(None) => String::from("ok"),
                Some(Some(e)) => e,
                None => String::from("no answer"),
            };
            removed.push_str(&format!(" {path}: {how};"));
        }
        self.say(&format!(
            "HOSTILE: xenstore removed its flood nodes:{removed}"
        ));
        let t = core::mem::take(&mut self.store.tally);
        self.total.add(&t);
    }

    fn xenstore_transactions(&mut self) {
        self.phase("xenstore-transactions");
        let mut txs = Vec::new();
        for _ in 0..20 {
            let Some(r) = self
                .store
                .call(&self.x, MsgType::TransactionStart, 0, b"\0", 10 * S)
            else {
                break;
            };
            if r.error().is_none()
                && let Ok(id) = rings::text(&r.payload).parse::<u32>()
            {
                txs.push(id);
            }
        }
        self.say(&format!(
            "HOSTILE: xenstore transactions: {} of 20 started",
            txs.len()
        ));
        // Each open transaction stages 100 writes of 1000 bytes.
        let n = 100 * txs.len() as u32;
        let ids = txs.clone();
        self.flood("writes staged in transactions", n, Reading::Never, |i| {
            let (t, k) = (i / 100, i % 100);
            let mut p = format!("data/t{t:02}/n{k:03}\0").into_bytes();
            p.resize(p.len() + 1000, b'T');
            (MsgType::Write, ids[t as usize], p)
        });
        // One node written 5000 times in one transaction (replies read as they come: only
        // the transaction's staging is at stake here).
        if let Some(&first) = txs.first() {
            let what = "writes to one node in one transaction";
            self.flood(what, 5000, Reading::AsTheyCome, |k| {
                let p = format!("data/same\0value {k:04}").into_bytes();
                (MsgType::Write, first, p)
            });
        }
        self.read_responses("staged writes");
        let n = txs.len() as u32;
        self.flood("commits", n, Reading::Never, |k| {
            (MsgType::TransactionEnd, txs[k as usize], b"T\0".to_vec())
        });
        self.read_responses("commits");
    }

    fn xenstore_set_perms(&mut self) {
        self.phase("xenstore-set-perms");
        let me = self.domid;
        let targets = [
            String::from("/local/domain/0"),
            String::from("/local/domain/0/name"),
            String::from("@introduceDomain"),
            String::from("@releaseDomain"),
            format!("/local/domain/{}", me.wrapping_sub(1)),
            format!("/local/domain/{}", me.wrapping_add(1)),
            format!("/local/domain/{me}"),
            format!("/local/domain/{me}/name"),
            String::from("domid"),
            String::from("/local"),
        ];
        let n = 50 * targets.len() as u32;
        let what = "SET_PERMS on nodes it does not own";
        self.flood(what, n, Reading::Never, |i| {
            let mut p = targets[(i as usize) % targets.len()].clone().into_bytes();
            p.extend_from_slice(format!("\0b{me}\0").as_bytes());
            (MsgType::SetPerms, 0, p)
        });
        self.read_responses("set-perms");
    }

    fn xenstore_oversized(&mut self) {
        self.phase("xenstore-oversized");
        let me = self.domid;
        // Values over the per-value limit, each still one valid message.
        self.flood("writes of 4000-byte values", 100, Reading::Never, |i| {
            let mut p = format!("data/big{i:03}\0").into_bytes();
            p.resize(p.len() + 4000, b'B');
            (MsgType::Write, 0, p)
        });
        let what = "requests with overlong paths";
        self.flood(what, 300, Reading::Never, |i| {
            let mut path = match i % 3 {
                // Absolute, over the 3072-byte limit.
                1 => format!("/local/domain/{me}/data/"),
                // Relative, over the 2048-byte limit for unprivileged paths (a write, or a
                // watch).
                _ => String::from("data/"),
            };
            let target = if i % 3 == 1 {
                3100
            } else {
                XENSTORE_REL_PATH_MAX + 50
            };
            while path.len() < target {
                path.push_str("abcdefgh/");
            }
            let mut p = path.into_bytes();
            p.push(0);
            if i % 3 == 2 {
                p.extend_from_slice(b"tok\0");
                (MsgType::Watch, 0, p)
            } else {
                p.extend_from_slice(b"v");
                (MsgType::Write, 0, p)
            }
        });
        self.read_responses("oversized");
    }

    fn event_storm(&mut self) {
        self.phase("event-storm");
        let start = hv::now_ns();
        let mut sent = 0u64;
        let ports = [self.store.port, self.console.port];
        while hv::now_ns() - start < 5 * S {
            for _ in 0..100 {
                for &p in &ports {
                    if ops::evtchn_send(&self.x, p).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        self.say(&format!(
            "HOSTILE: event-storm sent {sent} notifications in {} ms",
            (hv::now_ns() - start) / MS
        ));
    }

    /// `hostile=netif`: ignore `control/shutdown` without storming (the scenario is about the
    /// rings; the storm has its own). A line every 5 s until dom0 destroys it.
    fn ignore_shutdown_quietly(&mut self) -> ! {
        self.phase("ignore-shutdown-quietly (never reads control/shutdown; destroy me)");
        loop {
            hv::wait(&self.x, &[], 5 * S);
            self.say("HOSTILE: still here");
        }
    }

    fn ignore_shutdown(&mut self) -> ! {
        self.phase("ignore-shutdown (never reads control/shutdown; destroy me)");
        let ports = [self.store.port, self.console.port];
        let mut sent = 0u64;
        let mut next_line = hv::now_ns() + 5 * S;
        loop {
            for _ in 0..200 {
                for &p in &ports {
                    if ops::evtchn_send(&self.x, p).is_ok() {
                        sent += 1;
                    }
                }
            }
            if hv::now_ns() > next_line {
                self.say(&format!("HOSTILE: still here, {sent} more notifications"));
                next_line = hv::now_ns() + 5 * S;
            }
            hv::wait(&self.x, &[], 10 * MS);
        }
    }
}

/// The kernel command line from `hvm_start_info` (`cmdline_paddr` at offset 24), at most
/// 1 KiB, empty if there is none.
fn cmdline(start_info: u32) -> String {
    let si = u64::from(start_info);
    if si == 0 {
        return String::new();
    }
    // SAFETY: start_info and the command line are guest RAM below 4 GiB (identity-mapped)
    // that dom0's builder wrote; both are only read.
    let at = unsafe { core::ptr::read_volatile((si + 24) as *const u64) };
    let mut out = String::new();
    if at == 0 || at >= 1 << 32 {
        return out;
    }
    for i in 0..1024 {
        // SAFETY: as above; the string ends with a NUL within its page or the bound.
        let b = unsafe { core::ptr::read_volatile((at + i) as *const u8) };
        if b == 0 {
            break;
        }
        out.push(b as char);
    }
    out
}

#[unsafe(no_mangle)]
extern "C" fn rust_start(start_info: u32) -> ! {
    hv::debug_port_line("HOSTILE: entered");
    let Some((x, leaves)) = hv::init() else {
        hv::debug_port_line("HOSTILE: no Xen (CPUID) or shared_info refused; halting");
        halt()
    };
    let started = hv::now_ns();
    let param = |p: u32| ops::hvm_get_param(&x, p).unwrap_or(0);
    let (store_pfn, store_port) = (param(param::STORE_PFN), param(param::STORE_EVTCHN));
    let (console_pfn, console_port) = (param(param::CONSOLE_PFN), param(param::CONSOLE_EVTCHN));
    let domid = xen::cpuid::hvm_leaf(&hv::cpuid, &leaves)
        .and_then(|(_, _, d)| d)
        .unwrap_or(0);
    let rings_ok = [store_pfn, console_pfn]
        .iter()
        .all(|&p| p != 0 && p < (1 << 20));
    if !rings_ok {
        hv::debug_port_line(&format!(
            "HOSTILE: no usable rings (store pfn {store_pfn:#x}, console pfn {console_pfn:#x}); halting"
        ));
        halt()
    }
    // dom0's builder gave these special pages to this guest for the two rings (HVM params);
    // they are below 4 GiB (checked), so identity-mapped, and only the rings use them.
    let (store_page, console_page) =
        // SAFETY: as above.
        unsafe { (SharedPage::new(store_pfn), SharedPage::new(console_pfn)) };
    let mut g = Guest {
        x,
        domid,
        console: Console::new(console_page, EvtchnPort(console_port as u32)),
        store: Store::new(store_page, EvtchnPort(store_port as u32)),
        total: Tally::default(),
    };
    g.say(&format!(
        "HOSTILE: up: domain {domid}, Xen {}.{}, start_info {start_info:#x}, store pfn \
         {store_pfn:#x} port {store_port}, console pfn {console_pfn:#x} port {console_port}",
        leaves.major, leaves.minor
    ));
    let netif_only = cmdline(start_info).split(' ').any(|w| w == "hostile=netif");
    if !netif_only {
        g.console_flood("console-flood", 10);
        g.console_bad_index();
    }
    g.xenstore_hello();
    g.netif();
    if netif_only {
        g.ignore_shutdown_quietly()
    }
    g.xenstore_flood();
    g.xenstore_transactions();
    g.xenstore_set_perms();
    g.xenstore_oversized();
    let t = &g.total;
    let line = format!(
        "HOSTILE: xenstore error replies: {} ({}); {} replies to {} requests, {} watch events; \
         {} ms since start",
        t.error_count(),
        t.errors_text(),
        t.replies,
        g.store.sent,
        t.watch_events,
        (hv::now_ns() - started) / MS
    );
    g.say(&line);
    g.console_flood("console-flood-again", 8);
    g.event_storm();
    g.ignore_shutdown()
}
