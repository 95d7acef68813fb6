//! DomUs from the boot bundle: build them (`toolstack::builder`), serve their xenstore rings
//! and consoles, notice when they stop (`VIRQ_DOM_EXC`), tear them down and apply the policy.
//!
//! The unsafe part is memory (`memory`): copying into a DomU through foreign mappings in a
//! window of dom0's physical address space that holds neither RAM nor MMIO, and the shared ring
//! pages. Everything else is `toolstack` logic. The service loop runs on the boot vCPU with
//! interrupts off, sleeping in `SCHEDOP_poll` on the DomUs' (masked) ports: an event that
//! arrives at any time wakes it, with no lost-wakeup window.
//!
//! Hostile guests (issue 10): each wakeup does a bounded amount of work per DomU (at most
//! `Server::batch` xenstore requests, one rate-limited console drain), visiting the DomUs
//! round-robin from a different one each time; a DomU whose ports wake dom0 too often
//! (XSA-332: event storms) is left out of the poll set until the storm period ends, so it
//! cannot starve the others or dom0's own work; its rings are still served on the others'
//! wakeups and the period's end. Its xenstore memory is limited (`xenstore-quota=`), and all
//! DomUs together are held to a quarter of the heap dom0 has free when the toolstack starts.
//! Those decisions (storms, sleep bounds, order, stop policy, window placement, limits) are
//! `toolstack::service`, host-tested; `memory` holds the unsafe part.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use log::{error, info, warn};
use report::{DomuState, DomuSummary, ToolstackSummary};
use toolstack::builder::{self, DomainConfig, Env};
use toolstack::bundle::{Bundle, DomainSpec};
use toolstack::console::ConsoleBackend;
use toolstack::domain::{self, Action};
use toolstack::service::{self, RoundRobin, StopReason, StopStep, StormGuard};
use toolstack::xenstore::{Quota, Server, Store};
use xen::domctl::{self, DomId, DomctlVersion};
use xen::memmap::MemoryMap;
use xen::ops::{self, EvtchnPort};

use crate::events;
use crate::hypercall::Xen;

const PAGE: u64 = 4096;
/// Pages mapped at once while copying into a DomU (one `add_to_physmap_batch`).
const CHUNK_PAGES: u64 = 1024;
/// Window slots for ring pages (two per DomU), before the copy chunk.
const RING_SLOTS: u64 = 512;
/// Pages for `GuestMemory::with_mapped` (a kernel decompressed in place), after the chunk.
const MAPPED_PAGES: u64 = toolstack::builder::MAX_MAPPED / PAGE;
const WINDOW_PAGES: u64 = RING_SLOTS + CHUNK_PAGES + MAPPED_PAGES;

mod memory;
pub mod net;
use memory::{ForeignMem, SharedPage};

/// One DomU being served.
struct Running {
    spec: usize,
    domid: DomId,
    store_local: EvtchnPort,
    console_local: EvtchnPort,
    slots: [u64; 2],
    console: ConsoleBackend,
    summary: DomuSummary,
    stop_asked_ns: Option<u64>,
    storm: StormGuard,
}

/// DomU options from dom0's command line.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Ask running DomUs to power off this many seconds after the first one started (0: never).
    pub stop_after_s: u64,
    /// `xenstore-quota=`: xenstore memory per DomU in KiB (`None`: 2.5 MiB, as C xenstored).
    pub xenstore_quota_kib: Option<u32>,
    /// `ip=`: dom0's own address on its switch.
    pub ip: hwdom::options::Dom0Ip,
    /// `linger=`: keep serving the network this long once no DomU runs (`None`: stop then).
    pub linger: Option<hwdom::options::Linger>,
}

struct Toolstack<'a> {
    x: Xen,
    v: DomctlVersion,
    bundle: &'a Bundle<'a>,
    server: Server,
    window: u64,
    free_slots: Vec<u64>,
    running: Vec<Running>,
    done: Vec<DomuSummary>,
    destroyed: Vec<DomId>,
    first_start_ns: Option<u64>,
    /// Which DomU the next wakeup serves first.
    order: RoundRobin,
    last_check_ns: u64,
    /// The vifs and their switch.
    net: net::Net,
    /// A DomU's xenstore requests were served since the vifs last looked at their frontends
    /// (a frontend's state changes only through its own requests).
    store_activity: bool,
    /// Notifications the pass owes (console and xenstore replies): sent with the loop's next
    /// `SCHEDOP_poll`, in one multicall (`ops::send_then_poll`).
    sends: Vec<EvtchnPort>,
}

/// Owe a notification on `port` (once per pass however often it is owed): the loop sends it
/// with its next poll. Each trap is an emulated VM exit on the bench (tens of microseconds),
/// and the pass ends soon after every place that owes one.
fn owe(sends: &mut Vec<EvtchnPort>, port: EvtchnPort) {
    if !sends.contains(&port) {
        sends.push(port);
    }
}

fn now() -> u64 {
    crate::time::since_entry_ns()
}

/// dom0's time since entry and Xen's system time from one TSC read: where Xen emulates the TSC
/// (as on the bench) every read traps, and the loop used to read it nine times per wakeup.
fn clocks() -> (u64, u64) {
    let tsc = crate::arch::rdtsc();
    (
        crate::time::since_entry_at(tsc),
        events::time_info().system_time_at(tsc),
    )
}

/// Build every DomU of the bundle and serve them until all have stopped.
/// `busy`: (start, end) of 64-bit BARs, which the window must avoid. The uplink's final
/// state goes to `uplink_out`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    x: Xen,
    bundle: &Bundle<'_>,
    map: &MemoryMap,
    busy: &[(u64, u64)],
    opts: Options,
    pages: net::Pages,
    uplink: Option<net::Uplink>,
    uplink_out: &mut Option<report::UplinkSummary>,
) -> ToolstackSummary {
    let mut sum = ToolstackSummary::default();
    let (major, minor) = match ops::xen_version(&x) {
        Ok(v) => v,
        Err(e) => {
            sum.leaks.push(format!("XENVER_version: {e}"));
            return sum;
        }
    };
    let v = match DomctlVersion::detect(&x, major, minor) {
        Ok((v, probes)) => {
            sum.domctl_version = u64::from(v.0);
            sum.domctl_probes = u64::from(probes);
            info!(
                "toolstack: Xen {major}.{minor}, domctl interface {:#x} ({probes} probe(s))",
                v.0
            );
            v
        }
        Err(e) => {
            let m = format!(
                "no domctl interface version this dom0 knows is accepted by Xen {major}.{minor}: {e}"
            );
            error!("toolstack: {m}");
            sum.leaks.push(m);
            return sum;
        }
    };
    let window = match map_window(map, busy) {
        Ok(w) => w,
        Err(m) => {
            error!("toolstack: {m}");
            sum.leaks.push(m);
            return sum;
        }
    };
    sum.window_gfn = window;
    sum.window_pages = WINDOW_PAGES;
    info!(
        "toolstack: foreign-mapping window at {:#x} ({} pages)",
        window * PAGE,
        WINDOW_PAGES
    );
    let dom_exc = match ops::bind_virq(&x, ops::VIRQ_DOM_EXC, 0) {
        Ok(p) => p,
        Err(e) => {
            let m = format!("EVTCHNOP_bind_virq(VIRQ_DOM_EXC): {e}");
            error!("toolstack: {m}");
            sum.leaks.push(m);
            return sum;
        }
    };
    events::mask(dom_exc);
    let (heap_size, heap_used, _) = crate::heap::stats();
    let (per_domu, global) =
        service::xenstore_limits(opts.xenstore_quota_kib, heap_size.saturating_sub(heap_used));
    let quota = Quota {
        max_bytes: per_domu,
        ..Quota::default()
    };
    sum.xenstore_limit_bytes = quota.max_bytes;
    sum.xenstore_global_limit_bytes = global;
    info!(
        "toolstack: xenstore limit {} KiB per DomU, {} KiB for all DomUs",
        quota.max_bytes / 1024,
        global / 1024
    );
    let mut store = Store::new(quota);
    store.set_global_limit(global);
    let mut server = Server::new(store);
    server.batch = 32;
    let mut ts = Toolstack {
        x,
        v,
        bundle,
        server,
        window,
        free_slots: (0..RING_SLOTS).rev().map(|i| window + i).collect(),
        running: Vec::new(),
        done: Vec::new(),
        destroyed: Vec::new(),
        first_start_ns: None,
        order: RoundRobin::default(),
        last_check_ns: 0,
        net: net::Net::new(opts.ip, pages, (now() / 1_000_000) as i64, uplink, v),
        store_activity: false,
        sends: Vec::new(),
    };
    crate::arch::cli();
    for i in 0..bundle.domains.len() {
        ts.start(i, 0);
    }
    ts.serve(dom_exc, opts);
    let _ = ops::evtchn_close(&x, dom_exc);
    sum.dom0_net = ts.net.dom0_summary();
    if let Some(u) = ts.net.uplink_summary() {
        *uplink_out = Some(u);
    }
    sum.leaks = ts.leaks();
    sum.domus = ts.done;
    sum
}

/// Choose (`service::window_base`: above 4 GiB, clear of every memory-map entry, e.g. AMD's
/// HyperTransport hole, and of every 64-bit BAR, below the CPU's physical address width and what
/// dom0 maps) and map the foreign-mapping window.
fn map_window(map: &MemoryMap, busy: &[(u64, u64)]) -> Result<u64, String> {
    let width = crate::arch::cpuid(0x8000_0008, 0).eax & 0xff;
    let ceiling = crate::mem::MAP_CEILING.min(1u64 << width.clamp(32, 52));
    let size = WINDOW_PAGES * PAGE;
    let base = service::window_base(&map.gaps(1 << 32, ceiling), busy, size).ok_or_else(|| {
        format!("no free 1 GiB-aligned range of {size:#x} bytes between 4 GiB and {ceiling:#x}")
    })?;
    crate::mem::map_identity(base, base + size, crate::mem::Cache::WriteBack)
        .map_err(|e| format!("cannot map the foreign-mapping window at {base:#x}: {e:?}"))?;
    Ok(base / PAGE)
}

impl Toolstack<'_> {
    fn spec(&self, i: usize) -> &DomainSpec {
        &self.bundle.domains[i]
    }

    /// Build, connect and unpause DomU `i`.
    fn start(&mut self, i: usize, restarts: u64) {
        let spec = self.spec(i).clone();
        let mut s = DomuSummary {
            name: spec.name.clone(),
            memory_mib: spec.memory_mib,
            vcpus: u64::from(spec.vcpus),
            restarts,
            built_at_ns: now(),
            ..DomuSummary::default()
        };
        match self.try_start(i, &spec, &mut s) {
            Ok(r) => {
                info!(
                    "domu {}: domain {} running ({} MiB, {} vCPU(s)), built in {} ms",
                    spec.name,
                    r.domid,
                    spec.memory_mib,
                    spec.vcpus,
                    (r.summary.started_at_ns - r.summary.built_at_ns) / 1_000_000
                );
                self.first_start_ns.get_or_insert(r.summary.started_at_ns);
                self.running.push(r);
            }
            Err(m) => {
                error!("domu {}: {m}", spec.name);
                s.state = DomuState::BuildFailed;
                s.errors.push(m);
                s.stopped_at_ns = Some(now());
                self.done.push(s);
            }
        }
    }

    fn try_start(
        &mut self,
        i: usize,
        spec: &DomainSpec,
        s: &mut DomuSummary,
    ) -> Result<Running, String> {
        let b = self.bundle;
        let kernel = b
            .kernel_of(spec)
            .ok_or_else(|| format!("kernel '{}' is not in the bundle", spec.kernel))?;
        let initrd = match &spec.initrd {
            None => None,
            Some(n) => Some(
                b.initrd_of(spec)
                    .ok_or_else(|| format!("initrd '{n}' is not in the bundle"))?
                    .data,
            ),
        };
        let acpi = acpi_fixup::domu::domu_tables(spec.vcpus, builder::ACPI_BASE)
            .ok()
            .and_then(|t| t.image())
            .ok_or_else(|| format!("cannot make ACPI tables for {} vCPUs", spec.vcpus))?;
        let heap_before = crate::heap::stats().1;
        let x = self.x;
        let mut mem = ForeignMem {
            x: &x,
            chunk_gfn: self.window + RING_SLOTS,
            mapped_gfn: self.window + RING_SLOTS + CHUNK_PAGES,
            pages: 0,
            map_ns: 0,
            copy_ns: 0,
            unmap_ns: 0,
            grant_copy: true,
            grant_copies: 0,
            grant_fallback: None,
        };
        let cfg = DomainConfig {
            name: spec.name.clone(),
            memory_mib: spec.memory_mib,
            vcpus: spec.vcpus,
            cmdline: spec.cmdline.clone(),
            tsc_mode: spec.tsc_mode,
        };
        let clock = now;
        let mut env = Env {
            xen: &x,
            mem: &mut mem,
            version: self.v,
            now: &clock,
        };
        let built = builder::build(&mut env, &cfg, kernel.data, initrd, &acpi)
            .map_err(|e| format!("build failed at {e}"))?;
        s.pages_copied = mem.pages;
        s.grant_copies = mem.grant_copies;
        let fallback = match mem.grant_fallback {
            Some(e) => format!(" (then foreign mappings: {e})"),
            None => String::new(),
        };
        info!(
            "domu {}: copies: map {} us, copy {} us, unmap {} us, grant copies {}{fallback}",
            spec.name,
            mem.map_ns / 1000,
            mem.copy_ns / 1000,
            mem.unmap_ns / 1000,
            mem.grant_copies
        );
        s.domid = u64::from(built.domid);
        // Xen's own answer, not the bundle's: what the guest's rdtsc really gets.
        match domctl::tsc_mode(&x, self.v, built.domid) {
            Ok(Some(m)) => {
                s.tsc_mode = m.as_str().to_string();
                s.tsc_emulated = match m {
                    builder::TscMode::Native => false,
                    builder::TscMode::AlwaysEmulate => true,
                    // tsc_set_info(): native only on a host with a safe (invariant) TSC,
                    // which Xen decides once for all domains, dom0 included.
                    builder::TscMode::Default => crate::time::tsc_traps(),
                };
                if s.tsc_emulated {
                    info!(
                        "domu {}: Xen traps its rdtsc (tsc_mode={}{}): every clock read in it \
                         is a VM exit; tsc_mode=native in its description avoids that",
                        spec.name,
                        m.as_str(),
                        if m == builder::TscMode::Default {
                            ", and this host's TSC is not invariant"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(None) => s.tsc_mode = "unknown".to_string(),
            Err(e) => s.tsc_mode = format!("unknown (XEN_DOMCTL_gettscinfo: {e})"),
        }
        s.build_steps = built
            .steps
            .iter()
            .map(|(n, t)| (n.to_string(), *t))
            .collect();
        match self.connect(spec, &built) {
            Ok((store_local, console_local, slots)) => {
                builder::start(&x, self.v, built.domid).map_err(|e| {
                    self.teardown_parts(built.domid, store_local, console_local, slots);
                    format!("XEN_DOMCTL_unpausedomain: {e}")
                })?;
                s.started_at_ns = now();
                s.state = DomuState::Running;
                s.dom0_heap_bytes = crate::heap::stats().1.saturating_sub(heap_before);
                Ok(Running {
                    spec: i,
                    domid: built.domid,
                    store_local,
                    console_local,
                    slots,
                    console: ConsoleBackend::new(),
                    summary: core::mem::take(s),
                    stop_asked_ns: None,
                    storm: StormGuard::default(),
                })
            }
            Err(m) => {
                let _ = domctl::destroy(&x, self.v, built.domid);
                self.destroyed.push(built.domid);
                Err(m)
            }
        }
    }

    /// Map the rings, bind the channels, write the xenstore tree and introduce the domain.
    fn connect(
        &mut self,
        spec: &DomainSpec,
        b: &builder::Built,
    ) -> Result<(EvtchnPort, EvtchnPort, [u64; 2]), String> {
        let x = self.x;
        let (Some(s0), Some(s1)) = (self.free_slots.pop(), self.free_slots.pop()) else {
            return Err("no free ring slots in the window".to_string());
        };
        let slots = [s0, s1];
        let mut errs = [0i32; 2];
        let mapped = domctl::map_foreign(
            &x,
            b.domid,
            &[b.store_pfn, b.console_pfn],
            &slots,
            &mut errs,
        );
        if mapped.is_err() || errs != [0, 0] {
            for (k, e) in errs.iter().enumerate() {
                if mapped.is_ok() && *e == 0 {
                    let _ = domctl::unmap_own(&x, slots[k]);
                }
            }
            self.free_slots.extend(slots);
            return Err(format!("mapping the rings: {mapped:?} {errs:?}"));
        }
        let bind = |p| ops::bind_interdomain(&x, b.domid, p);
        let store_local =
            bind(b.store_port).map_err(|e| format!("binding the xenstore channel: {e}"));
        let console_local =
            bind(b.console_port).map_err(|e| format!("binding the console channel: {e}"));
        let (store_local, console_local) = match (store_local, console_local) {
            (Ok(a), Ok(c)) => (a, c),
            (a, c) => {
                for p in [a.as_ref().ok(), c.as_ref().ok()].into_iter().flatten() {
                    let _ = ops::evtchn_close(&x, *p);
                }
                for sl in slots {
                    let _ = domctl::unmap_own(&x, sl);
                }
                self.free_slots.extend(slots);
                return Err(a.err().or(c.err()).unwrap_or_default());
            }
        };
        events::mask(store_local);
        events::mask(console_local);
        let nodes = domain::xenstore_nodes(
            b.domid,
            &spec.name,
            spec.memory_mib * 1024,
            spec.vcpus,
            b.store_pfn,
            b.store_port.0,
            b.console_pfn,
            b.console_port.0,
        );
        let vifs = domain::vifs(b.domid, &spec.devices);
        let r = domain::write_nodes(&mut self.server, &nodes)
            .and_then(|()| self.net.add(&mut self.server, b.domid, &vifs))
            .and_then(|()| {
                domain::introduce(&mut self.server, b.domid, b.store_pfn, b.store_port.0)
            });
        let _ = self.server.take_domain_events();
        // The new vifs look at their frontends once (dom0 wrote their first state itself).
        self.store_activity = true;
        if let Err(m) = r {
            self.teardown_parts(b.domid, store_local, console_local, slots);
            return Err(format!("xenstore: {m}"));
        }
        Ok((store_local, console_local, slots))
    }

    /// Release everything dom0 holds for a domain (not the domain itself).
    fn teardown_parts(
        &mut self,
        domid: DomId,
        store: EvtchnPort,
        console: EvtchnPort,
        slots: [u64; 2],
    ) {
        let x = self.x;
        let _ = domain::release(&mut self.server, domid);
        let _ = self.server.take_domain_events();
        for p in [store, console] {
            if let Err(e) = ops::evtchn_close(&x, p) {
                warn!("domain {domid}: closing port {}: {e}", p.0);
            }
        }
        for sl in slots {
            match domctl::unmap_own(&x, sl) {
                Ok(()) => self.free_slots.push(sl),
                Err(e) => warn!("domain {domid}: unmapping ring slot {sl:#x}: {e} (slot retired)"),
            }
        }
    }

    fn page(slot: u64) -> SharedPage {
        SharedPage::at_slot(slot)
    }

    /// The service loop: until every DomU has stopped.
    fn serve(&mut self, dom_exc: EvtchnPort, opts: Options) {
        let x = self.x;
        let mut wake_at: Option<u64> = None;
        // `linger=`: when to stop once no DomU runs (set when the last one stopped).
        let mut linger_until: Option<u64> = None;
        // One clock read per pass (under Xen's TSC emulation each is an exit): the poll's
        // deadline is taken from the read after the last wakeup, which is exact however long
        // the pass took, since Xen's system time and dom0's clock come from the same read.
        let (mut t, mut sys) = clocks();
        loop {
            if self.running.is_empty() {
                let until = *linger_until.get_or_insert_with(|| match opts.linger {
                    None => 0,
                    Some(hwdom::options::Linger::Forever) => u64::MAX,
                    Some(hwdom::options::Linger::Seconds(s)) => {
                        info!("toolstack: no DomU runs; serving the network for {s} s more");
                        t.saturating_add(u64::from(s) * 1_000_000_000)
                    }
                });
                if t >= until {
                    break;
                }
            } else {
                linger_until = None;
            }
            let mut ports = alloc::vec![dom_exc];
            for r in &mut self.running {
                if r.storm.polled(t) {
                    ports.push(r.store_local);
                    ports.push(r.console_local);
                    ports.extend(self.net.ports(r.domid));
                }
            }
            // Sleep at most 1 s, less when a throttled console or a storm period ends sooner.
            let stack_at = self.net.poll_delay_ns(t).map(|d| t.saturating_add(d));
            let deadlines = wake_at
                .into_iter()
                .chain(stack_at)
                .chain(self.net.uplink_due(t))
                .chain(linger_until.filter(|&u| u != u64::MAX))
                .chain(self.running.iter().filter_map(|r| r.storm.paused_until()));
            let sleep = service::sleep_ns(t, deadlines);
            // A ring that holds work without notifying (TX budget used up, RX buffers posted
            // during the final check) is served again at once, not after the next wakeup.
            let polled: &[EvtchnPort] = if self.net.busy() {
                &[] // No sleep: the pass below is the wakeup.
            } else {
                &ports[..ports.len().min(128)]
            };
            // The notifications the last pass owes (TX responses and frames delivered to
            // netfronts, xenstore replies) go in the same trap as the poll: a multicall. A send that fails (the
            // port closed since) loses nothing: that DomU is gone.
            let mut sends = core::mem::take(&mut self.sends);
            sends.extend(self.net.take_notifications());
            if let Err(e) = ops::send_then_poll(&x, &sends, polled, sys + sleep) {
                warn!("toolstack: SCHEDOP_poll: {e}");
            }
            // A wakeup is progress for the watchdog (vCPU 1 watches this loop, see `watchdog`).
            crate::watchdog::progress();
            crate::stats::pass();
            // Every ring is looked at on every wakeup, not only those whose port is pending:
            // reading two indices is cheap, and a notification that went missing then costs
            // at most one poll timeout instead of a guest waiting forever. Round-robin, from
            // a different DomU each time, each with bounded work.
            // One clock read for the whole pass (see `clocks`).
            (t, sys) = clocks();
            wake_at = None;
            // Per DomU: did one of its ports wake dom0, and did serving it find work?
            let mut kicked = alloc::vec![false; self.running.len()];
            let mut worked = alloc::vec![false; self.running.len()];
            for k in self.order.order(self.running.len()) {
                kicked[k] = self.note_wakeup(k);
                // Console work is a whole line (hvc_xen kicks once per write, a line or more).
                let lines_before = self.running[k].console.lines;
                if let Some(u) = self.service_console(k, t) {
                    wake_at = Some(wake_at.map_or(u, |w: u64| w.min(u)));
                }
                worked[k] = self.running[k].console.lines != lines_before;
                worked[k] |= self.service_store(k);
            }
            // The vifs: handshakes first, after a pass that served xenstore requests (a
            // frontend's state changes only through its own; before, every pass read every
            // frontend's `state` node), then frames; what dom0 wrote to xenstore goes out as
            // watch events.
            if core::mem::take(&mut self.store_activity) {
                self.net.poll(&x, &mut self.server, &mut self.free_slots);
            }
            self.net
                .service(&x, &mut self.server, &mut self.free_slots, t);
            // A kick counts towards the storm guard only when serving that DomU found nothing
            // to do: no request handled, no console line, no packet moved.
            for (k, &kick) in kicked.iter().enumerate() {
                self.running[k].storm.pass(t);
                if kick && !worked[k] && !self.net.worked(self.running[k].domid) {
                    self.count_wakeup(k, t);
                }
            }
            self.flush_others();
            self.server.sample_all();
            // VIRQ_DOM_EXC says only that *some* domain changed: then every DomU is checked,
            // and at least every 100 ms anyway (a missed one is found then), not on every
            // wakeup (a storm must not turn into a storm of domctls).
            let exc = events::take_pending(dom_exc);
            if exc || t >= self.last_check_ns + service::CHECK_PERIOD_NS {
                self.last_check_ns = t;
                self.check_stopped();
            }
            self.maybe_ask_to_stop(opts, t);
        }
    }

    /// Whether one of DomU `k`'s ports (xenstore, console, vifs) is pending; clears them. The
    /// caller counts the wakeup for the storm guard (`service::StormGuard`: past a bound in a
    /// period its ports leave the poll set until the period ends) only if serving the DomU
    /// then found no work: Linux's xenbus kicks for every request while it probes its devices
    /// and netfront for every few packets, and neither is a storm (before, a xenstore kick
    /// counted at once and a Linux DomU doing its netfront handshake was flagged).
    fn note_wakeup(&mut self, k: usize) -> bool {
        let r = &mut self.running[k];
        let mut kicked = events::take_pending(r.store_local);
        kicked |= events::take_pending(r.console_local);
        for p in self.net.ports(r.domid) {
            kicked |= events::take_pending(p);
        }
        kicked
    }

    /// One wakeup DomU `k` caused, for its storm guard.
    fn count_wakeup(&mut self, k: usize, t: u64) {
        let r = &mut self.running[k];
        if let Some(n) = r.storm.wakeup(t)
            && r.storm.storms == 1
        {
            warn!(
                "domu {}: event storm ({n} wakeups in {} ms); its ports are polled less",
                r.summary.name,
                service::STORM_PERIOD_NS / 1_000_000
            );
        }
    }

    /// Drain DomU `k`'s console as far as its rate allows; returns when a throttled console
    /// may go on.
    fn service_console(&mut self, k: usize, t: u64) -> Option<u64> {
        let r = &mut self.running[k];
        let mut page = Self::page(r.slots[1]);
        let throttled_before = r.console.throttled;
        let d = r.console.service_at(&mut page, t);
        if let Some((c, p)) = d.bad_indices {
            // Said once; later occurrences are counted and the report gets one line.
            warn!(
                "domu {}: console ring indices out of range (cons {c}, prod {p}); skipped ahead",
                r.summary.name
            );
        }
        if throttled_before == 0 && r.console.throttled > 0 {
            warn!(
                "domu {}: console output over {} KiB at once and {} KiB/s; throttled",
                r.summary.name,
                toolstack::console::RATE_BURST / 1024,
                toolstack::console::RATE_BYTES_PER_S / 1024
            );
        }
        for line in &d.lines {
            r.summary.first_console_ns.get_or_insert(t);
            if r.summary.init_ns.is_none()
                && (line.contains("DOMU-INIT") || line.contains("Run /init"))
            {
                r.summary.init_ns = Some(t);
            }
            crate::println!("[{}] {}", r.summary.name, line);
        }
        if d.notify {
            owe(&mut self.sends, r.console_local);
        }
        d.throttled_until
    }

    /// Serve DomU `k`'s xenstore ring; true if it handled at least one whole request.
    fn service_store(&mut self, k: usize) -> bool {
        let (domid, port, slot) = {
            let r = &self.running[k];
            (r.domid, r.store_local, r.slots[0])
        };
        let mut page = Self::page(slot);
        let requests = |s: &Server| s.connection(domid).map_or(0, |c| c.requests());
        let before = requests(&self.server);
        match self.server.service(domid, &mut page) {
            Ok(true) => {
                self.store_activity = true;
                owe(&mut self.sends, port);
            }
            Ok(false) => {}
            Err(e) => {
                let m = format!("xenstore connection closed: {e:?}");
                let r = &mut self.running[k];
                if !r.summary.errors.contains(&m) {
                    warn!("domu {}: {m}", r.summary.name);
                    r.summary.errors.push(m);
                }
            }
        }
        // Work is a whole request handled: bytes dribbled in a few per kick are not.
        let answered = requests(&self.server) > before;
        self.flush_others();
        answered
    }

    /// Write watch events queued for any DomU into its ring.
    fn flush_others(&mut self) {
        for d in self.server.domains_with_output() {
            if let Some(r) = self.running.iter().find(|r| r.domid == d) {
                let mut page = Self::page(r.slots[0]);
                if let Ok(true) = self.server.flush(d, &mut page) {
                    owe(&mut self.sends, r.store_local);
                }
            }
        }
    }

    fn check_stopped(&mut self) {
        let mut k = 0;
        while k < self.running.len() {
            let domid = self.running[k].domid;
            let why = match domctl::getdomaininfo(&self.x, self.v, domid) {
                Ok(i) => {
                    // Its CPU time so far; final once it has stopped (for the report and
                    // for `/cpu.txt` after it is gone).
                    self.running[k].summary.cpu_time_ns = i.cpu_time_ns;
                    match i.shutdown() {
                        Some(code) => Some(StopReason::Shutdown(code)),
                        None if i.dying() => Some(StopReason::Dying),
                        None => None,
                    }
                }
                Err(_) => Some(StopReason::Vanished),
            };
            match why {
                None => k += 1,
                Some(why) => {
                    let r = self.running.remove(k);
                    self.stopped(r, why);
                }
            }
        }
    }

    /// A DomU stopped: drain its console, record what it wrote to xenstore, tear it down,
    /// apply the policy.
    fn stopped(&mut self, mut r: Running, why: StopReason) {
        let x = self.x;
        let mut page = Self::page(r.slots[1]);
        let d = r.console.service(&mut page);
        for line in d.lines.iter().chain(r.console.flush().iter()) {
            crate::println!("[{}] {}", r.summary.name, line);
        }
        let state = hwdom::domu::state_after(why);
        info!(
            "domu {}: domain {} stopped: {state}",
            r.summary.name, r.domid
        );
        r.summary.xenstore_written = domain::written(&mut self.server, r.domid, 64);
        if let Some(c) = self.server.connection(r.domid) {
            r.summary.xenstore_requests = c.requests();
        }
        self.net.stopped_cpu(r.domid, r.summary.cpu_time_ns);
        r.summary.vifs = self
            .net
            .remove(&x, &mut self.server, &mut self.free_slots, r.domid);
        self.teardown_parts(r.domid, r.store_local, r.console_local, r.slots);
        // After the release: what it was charged at most and refused, and what it is
        // charged now (nothing, once released).
        let st = self.server.take_stats(r.domid);
        r.summary.xenstore_bytes = st.bytes;
        r.summary.xenstore_peak_bytes = st.peak_bytes;
        r.summary.xenstore_refused = st.refusals.requests();
        r.summary.console_throttled = r.console.throttled;
        r.summary.refusals = service::refusal_lines(
            st.refusals.lines(),
            r.console.throttled,
            r.console.bad_indices,
            &r.storm,
        );
        r.summary.storm_peak_wakeups = u64::from(r.storm.peak_wakeups);
        if let Some(m) = r.console.bad_indices_report() {
            r.summary.errors.push(m);
        }
        if st.bytes != 0 {
            r.summary.errors.push(format!(
                "xenstore still charges {} bytes to the released domain",
                st.bytes
            ));
        }
        if let Err(e) = domctl::destroy(&x, self.v, r.domid) {
            r.summary
                .errors
                .push(format!("XEN_DOMCTL_destroydomain: {e}"));
        }
        self.destroyed.push(r.domid);
        r.summary.state = state;
        r.summary.stopped_at_ns = Some(now());
        r.summary.console_lines = r.console.lines;
        r.summary.console_bytes = r.console.bytes;
        r.summary.console = r
            .console
            .head
            .iter()
            .chain(r.console.tail.iter())
            .cloned()
            .collect();
        let restarts = r.summary.restarts;
        let spec = r.spec;
        self.done.push(r.summary);
        if domain::policy(why.code(), restarts as u32) == Action::Restart {
            info!(
                "domu {}: restarting (restart {})",
                self.spec(spec).name,
                restarts + 1
            );
            self.start(spec, restarts + 1);
        }
    }

    /// `domu-stop=`: ask DomUs to power off through `control/shutdown` (what `xl shutdown`
    /// does), and destroy the ones that ignore it for the grace period (`service::stop_step`).
    fn maybe_ask_to_stop(&mut self, opts: Options, t: u64) {
        let x = self.x;
        let mut k = 0;
        while k < self.running.len() {
            let domid = self.running[k].domid;
            let asked = self.running[k].stop_asked_ns;
            match service::stop_step(t, opts.stop_after_s, self.first_start_ns, asked) {
                StopStep::Ask => {
                    let path = format!("/local/domain/{domid}/control/shutdown");
                    if let Err(e) = domain::write(&mut self.server, &path, b"poweroff") {
                        warn!("domu {}: {e}", self.running[k].summary.name);
                    }
                    self.flush_others();
                    info!(
                        "domu {}: asked to power off (control/shutdown)",
                        self.running[k].summary.name
                    );
                    self.running[k].stop_asked_ns = Some(t);
                    k += 1;
                }
                StopStep::Destroy => {
                    let r = self.running.remove(k);
                    warn!(
                        "domu {}: ignored control/shutdown for {} s; destroying it",
                        r.summary.name,
                        service::STOP_GRACE_NS / 1_000_000_000
                    );
                    let _ = domctl::pause(&x, self.v, r.domid);
                    self.stopped(r, StopReason::IgnoredShutdown);
                }
                StopStep::Wait => k += 1,
            }
        }
    }

    /// Destroyed domains Xen still knows about (something still maps their memory).
    fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        for &d in &self.destroyed {
            if let Ok(i) = domctl::getdomaininfo(&self.x, self.v, d) {
                out.push(format!(
                    "domain {d} still exists after destroy (flags {:#x}, {} pages)",
                    i.flags, i.tot_pages
                ));
            }
        }
        out
    }
}
