//! Typed, safe wrappers for the hypercalls dom0 makes.
//!
//! Struct layouts are the x86-64 ones from Xen's public headers (offsets checked against the
//! 4.17 headers, `xen/include/public/*.h`). Each wrapper builds its argument
//! structs as little-endian byte arrays, so the same code runs against the real hypervisor and
//! against [`crate::fake::FakeXen`].

use crate::errno::XenError;
use crate::hypercall::{Arg, Hypercall, call, nr};
use alloc::vec::Vec;

/// `DOMID_SELF` (public/xen.h).
pub const DOMID_SELF: u16 = 0x7ff0;

use crate::le::{put_u16, put_u32, put_u64, u32_at as get_u32, u64_at as get_u64};

pub(crate) fn issue(h: &dyn Hypercall, mut c: crate::hypercall::Call<'_>) -> Result<u64, XenError> {
    XenError::check(h.hypercall(&mut c))
}

// --- console_io (public/xen.h CONSOLEIO_*) -----------------------------------------------------

pub const CONSOLEIO_WRITE: u64 = 0;
pub const CONSOLEIO_READ: u64 = 1;

/// Write bytes to Xen's console (the hardware domain's writes go unfiltered to the serial line).
pub fn console_write(h: &dyn Hypercall, bytes: &[u8]) -> Result<(), XenError> {
    // Xen copies at most INT_MAX bytes per call; dom0 never writes that much at once, but chunk
    // anyway so a huge buffer cannot turn into -E2BIG.
    for chunk in bytes.chunks(1 << 16) {
        issue(
            h,
            call!(
                nr::CONSOLE_IO,
                Arg::Val(CONSOLEIO_WRITE),
                Arg::Val(chunk.len() as u64),
                Arg::In(chunk)
            ),
        )?;
    }
    Ok(())
}

// --- xen_version (public/version.h) ------------------------------------------------------------

pub const XENVER_VERSION: u64 = 0;
pub const XENVER_EXTRAVERSION: u64 = 1;
pub const XENVER_CAPABILITIES: u64 = 3;
pub const XENVER_GET_FEATURES: u64 = 6;

/// `(major, minor)` of the running Xen.
pub fn xen_version(h: &dyn Hypercall) -> Result<(u32, u32), XenError> {
    let v = issue(
        h,
        call!(nr::XEN_VERSION, Arg::Val(XENVER_VERSION), Arg::Val(0)),
    )?;
    Ok(((v >> 16) as u32 & 0xffff, v as u32 & 0xffff))
}

/// Bytes up to the first NUL, as text (lossy: Xen's strings are ASCII).
fn c_string(buf: &[u8]) -> alloc::string::String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    alloc::string::String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The extra version string (`xen_extraversion_t`, 16 bytes), e.g. `.7` or `-unstable`.
pub fn xen_extraversion(h: &dyn Hypercall) -> Result<alloc::string::String, XenError> {
    let mut buf = [0u8; 16];
    issue(
        h,
        call!(
            nr::XEN_VERSION,
            Arg::Val(XENVER_EXTRAVERSION),
            Arg::InOut(&mut buf)
        ),
    )?;
    Ok(c_string(&buf))
}

/// The capabilities string (`xen_capabilities_info_t`, 1024 bytes), e.g. `xen-3.0-x86_64 hvm-3.0-x86_64`.
pub fn xen_capabilities(h: &dyn Hypercall) -> Result<alloc::string::String, XenError> {
    let mut buf = [0u8; 1024];
    issue(
        h,
        call!(
            nr::XEN_VERSION,
            Arg::Val(XENVER_CAPABILITIES),
            Arg::InOut(&mut buf)
        ),
    )?;
    Ok(c_string(&buf))
}

/// Feature submap `idx` (`struct xen_feature_info { u32 submap_idx; u32 submap; }`).
pub fn xen_features(h: &dyn Hypercall, idx: u32) -> Result<u32, XenError> {
    let mut buf = [0u8; 8];
    put_u32(&mut buf, 0, idx);
    issue(
        h,
        call!(
            nr::XEN_VERSION,
            Arg::Val(XENVER_GET_FEATURES),
            Arg::InOut(&mut buf)
        ),
    )?;
    Ok(get_u32(&buf, 4))
}

/// Names of the `XENFEAT_*` bits of submap 0 (public/features.h).
pub const XENFEAT_NAMES: [(u32, &str); 19] = [
    (0, "writable_page_tables"),
    (1, "writable_descriptor_tables"),
    (2, "auto_translated_physmap"),
    (3, "supervisor_mode_kernel"),
    (4, "pae_pgdir_above_4gb"),
    (5, "mmu_pt_update_preserve_ad"),
    (7, "highmem_assist"),
    (8, "gnttab_map_avail_bits"),
    (9, "hvm_callback_vector"),
    (10, "hvm_safe_pvclock"),
    (11, "dom0"),
    (12, "hvm_pirqs"),
    (13, "memory_op_vnode_supported"),
    (14, "ARM_SMCCC_supported"),
    (15, "linux_rsdp_unrestricted"),
    (16, "not_direct_mapped"),
    (17, "direct_mapped"),
    (18, "runstate_phys_area"),
    (19, "vcpu_time_phys_area"),
];

/// The names of the bits set in feature submap 0 (unknown bits as `bit<N>`).
pub fn feature_names(submap0: u32) -> alloc::vec::Vec<alloc::string::String> {
    use alloc::string::ToString;
    (0..32)
        .filter(|b| submap0 & (1 << b) != 0)
        .map(|b| match XENFEAT_NAMES.iter().find(|(n, _)| *n == b) {
            Some((_, name)) => name.to_string(),
            None => alloc::format!("bit{b}"),
        })
        .collect()
}

// --- memory_op (public/memory.h) ---------------------------------------------------------------

pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
pub const XENMEM_MEMORY_MAP: u64 = 9;
pub const XENMAPSPACE_SHARED_INFO: u32 = 0;

/// Size of one `struct e820entry` in the `XENMEM_memory_map` buffer (packed).
pub const E820_ENTRY_SIZE: usize = 20;

/// `XENMEM_memory_map`: fill `buf` with packed e820 entries; returns how many were written.
///
/// `struct xen_memory_map { unsigned int nr_entries; XEN_GUEST_HANDLE(void) buffer; }`:
/// nr_entries u32 @0 (in: capacity, out: count), buffer u64 @8.
pub fn memory_map(h: &dyn Hypercall, buf: &mut [u8]) -> Result<usize, XenError> {
    let cap = buf.len() / E820_ENTRY_SIZE;
    let mut arg = [0u8; 16];
    put_u32(&mut arg, 0, cap as u32);
    put_u64(&mut arg, 8, buf.as_ptr() as u64);
    {
        let c = call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_MEMORY_MAP),
            Arg::InOut(&mut arg)
        )
        .with_extra(Arg::InOut(buf));
        issue(h, c)?;
    }
    let n = get_u32(&arg, 0) as usize;
    if n > cap {
        // Xen never reports more than it was given room for; a fake or a bug might.
        return Err(XenError::E2BIG);
    }
    Ok(n)
}

/// `XENMEM_add_to_physmap` of the shared_info page at guest frame `gfn`.
///
/// `struct xen_add_to_physmap { domid_t domid; u16 size; u32 space; xen_ulong_t idx; xen_pfn_t gpfn; }`
pub fn map_shared_info(h: &dyn Hypercall, gfn: u64) -> Result<(), XenError> {
    let mut arg = [0u8; 24];
    put_u16(&mut arg, 0, DOMID_SELF);
    put_u32(&mut arg, 4, XENMAPSPACE_SHARED_INFO);
    put_u64(&mut arg, 8, 0);
    put_u64(&mut arg, 16, gfn);
    issue(
        h,
        call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_ADD_TO_PHYSMAP),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

// --- sched_op (public/sched.h) -----------------------------------------------------------------

pub const SCHEDOP_YIELD: u64 = 0;
pub const SCHEDOP_BLOCK: u64 = 1;
pub const SCHEDOP_SHUTDOWN: u64 = 2;
pub const SCHEDOP_POLL: u64 = 3;

/// `SHUTDOWN_*` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    Poweroff = 0,
    Reboot = 1,
    Suspend = 2,
    Crash = 3,
    Watchdog = 4,
}

/// Block the vCPU until an event is pending (Xen re-enables event delivery for the call).
pub fn sched_block(h: &dyn Hypercall) -> Result<(), XenError> {
    issue(h, call!(nr::SCHED_OP, Arg::Val(SCHEDOP_BLOCK), Arg::Val(0)))?;
    Ok(())
}

/// Give up the rest of this time slice.
pub fn sched_yield(h: &dyn Hypercall) -> Result<(), XenError> {
    issue(h, call!(nr::SCHED_OP, Arg::Val(SCHEDOP_YIELD), Arg::Val(0)))?;
    Ok(())
}

/// Sleep until one of `ports` is pending or Xen system time reaches `timeout_ns` (0: no
/// timeout). Race-free where `SCHEDOP_block` is not: Xen checks the ports' pending bits after
/// marking the vCPU blocked (`do_poll()`), whatever the guest's interrupt flag.
///
/// `struct sched_poll { XEN_GUEST_HANDLE(evtchn_port_t) ports; unsigned int nr_ports; u64 timeout; }`
pub fn sched_poll(
    h: &dyn Hypercall,
    ports: &[EvtchnPort],
    timeout_ns: u64,
) -> Result<(), XenError> {
    // do_poll(): Xen takes at most 128 ports.
    if ports.len() > 128 {
        return Err(XenError::EINVAL);
    }
    // On the stack, not the heap: the boot watchdog polls from an AP while the boot CPU may be
    // stuck anywhere, including inside the allocator.
    let mut buf = [0u8; 4 * 128];
    for (i, p) in ports.iter().enumerate() {
        put_u32(&mut buf, 4 * i, p.0);
    }
    let list = &buf[..4 * ports.len()];
    let mut arg = [0u8; 24];
    put_u64(&mut arg, 0, list.as_ptr() as u64);
    put_u32(&mut arg, 8, ports.len() as u32);
    put_u64(&mut arg, 16, timeout_ns);
    let c = call!(nr::SCHED_OP, Arg::Val(SCHEDOP_POLL), Arg::In(&arg)).with_extra(Arg::In(list));
    issue(h, c)?;
    Ok(())
}

/// Notify `sends` and then, if `ports` is not empty, sleep in `SCHEDOP_poll` on `ports` until
/// `timeout_ns` (Xen system time), in one trap: a `HYPERVISOR_multicall` of `EVTCHNOP_send`
/// entries with the poll last (multicall is in the HVM hypercall table; the vCPU blocks on the
/// way back to the guest, after the last entry, as a direct poll does). Where Xen emulates a
/// VM exit in software (QEMU), each trap saved is tens of microseconds. Returns each send's
/// result (0 = sent); `Err` if the multicall itself or the poll failed.
pub fn send_then_poll(
    h: &dyn Hypercall,
    sends: &[EvtchnPort],
    ports: &[EvtchnPort],
    timeout_ns: u64,
) -> Result<Vec<i64>, XenError> {
    if ports.len() > 128 {
        return Err(XenError::EINVAL);
    }
    match (sends, ports.is_empty()) {
        ([], true) => return Ok(Vec::new()),
        ([], false) => return sched_poll(h, ports, timeout_ns).map(|()| Vec::new()),
        ([p], true) => {
            return Ok(alloc::vec![
                evtchn_send(h, *p).map_or_else(|e| -i64::from(e.0), |()| 0)
            ]);
        }
        _ => {}
    }
    const ENTRY: usize = crate::domctl::MULTICALL_ENTRY;
    let polls = usize::from(!ports.is_empty());
    // The entries' argument structs back to back: `evtchn_send { port }` (8 bytes each), then
    // `sched_poll { ports, nr_ports, timeout }`; the poll's port list on its own.
    let mut args = alloc::vec![0u8; 8 * sends.len() + 24 * polls];
    let mut list = [0u8; 4 * 128];
    for (i, p) in ports.iter().enumerate() {
        put_u32(&mut list, 4 * i, p.0);
    }
    let list = &list[..4 * ports.len()];
    let mut calls = alloc::vec![0u8; ENTRY * (sends.len() + polls)];
    for (i, p) in sends.iter().enumerate() {
        put_u32(&mut args, 8 * i, p.0);
        let e = ENTRY * i;
        put_u64(&mut calls, e, u64::from(nr::EVENT_CHANNEL_OP));
        put_u64(&mut calls, e + 16, EVTCHNOP_SEND);
        put_u64(&mut calls, e + 24, args.as_ptr() as u64 + 8 * i as u64);
    }
    if polls == 1 {
        let at = 8 * sends.len();
        put_u64(&mut args, at, list.as_ptr() as u64);
        put_u32(&mut args, at + 8, ports.len() as u32);
        put_u64(&mut args, at + 16, timeout_ns);
        let e = ENTRY * sends.len();
        put_u64(&mut calls, e, u64::from(nr::SCHED_OP));
        put_u64(&mut calls, e + 16, SCHEDOP_POLL);
        put_u64(&mut calls, e + 24, args.as_ptr() as u64 + at as u64);
    }
    let n = (sends.len() + polls) as u64;
    issue(
        h,
        call!(nr::MULTICALL, Arg::InOut(&mut calls), Arg::Val(n))
            .with_extra(Arg::In(&args))
            .with_extra(Arg::In(list)),
    )?;
    let result = |i: usize| get_u64(&calls, ENTRY * i + 8) as i64;
    if polls == 1 {
        let r = result(sends.len());
        if r < 0 {
            return Err(XenError(r.unsigned_abs() as i32));
        }
    }
    Ok((0..sends.len()).map(result).collect())
}

/// Shut the domain down (for the hardware domain, Xen then powers off or reboots the host).
/// Returns only if Xen refused.
pub fn sched_shutdown(h: &dyn Hypercall, reason: ShutdownReason) -> XenError {
    let arg = (reason as u32).to_le_bytes();
    match issue(
        h,
        call!(nr::SCHED_OP, Arg::Val(SCHEDOP_SHUTDOWN), Arg::In(&arg)),
    ) {
        Ok(_) => XenError(0),
        Err(e) => e,
    }
}

// --- set_timer_op ------------------------------------------------------------------------------

/// Arm this vCPU's single-shot timer for Xen system time `deadline_ns` (0 cancels).
/// Expiry raises `VIRQ_TIMER`.
pub fn set_timer(h: &dyn Hypercall, deadline_ns: u64) -> Result<(), XenError> {
    issue(h, call!(nr::SET_TIMER_OP, Arg::Val(deadline_ns)))?;
    Ok(())
}

// --- event_channel_op (public/event_channel.h) -------------------------------------------------

pub const EVTCHNOP_BIND_VIRQ: u64 = 1;
pub const EVTCHNOP_CLOSE: u64 = 3;
pub const EVTCHNOP_SEND: u64 = 4;
pub const EVTCHNOP_UNMASK: u64 = 9;
pub const EVTCHNOP_BIND_IPI: u64 = 7;
pub const EVTCHNOP_BIND_INTERDOMAIN: u64 = 0;
pub const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;

/// `VIRQ_*` numbers.
pub const VIRQ_TIMER: u32 = 0;
pub const VIRQ_DEBUG: u32 = 1;
pub const VIRQ_CONSOLE: u32 = 2;
pub const VIRQ_DOM_EXC: u32 = 3;

/// An event channel port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvtchnPort(pub u32);

/// Bind a virtual IRQ on `vcpu` (`struct evtchn_bind_virq { u32 virq; u32 vcpu; u32 port; }`).
pub fn bind_virq(h: &dyn Hypercall, virq: u32, vcpu: u32) -> Result<EvtchnPort, XenError> {
    let mut arg = [0u8; 12];
    put_u32(&mut arg, 0, virq);
    put_u32(&mut arg, 4, vcpu);
    issue(
        h,
        call!(
            nr::EVENT_CHANNEL_OP,
            Arg::Val(EVTCHNOP_BIND_VIRQ),
            Arg::InOut(&mut arg)
        ),
    )?;
    Ok(EvtchnPort(get_u32(&arg, 8)))
}

/// A port for IPIs to `vcpu` (`struct evtchn_bind_ipi { u32 vcpu; u32 port; }`): sending on
/// it raises an event on that vCPU.
pub fn bind_ipi(h: &dyn Hypercall, vcpu: u32) -> Result<EvtchnPort, XenError> {
    let mut arg = [0u8; 8];
    put_u32(&mut arg, 0, vcpu);
    issue(
        h,
        call!(
            nr::EVENT_CHANNEL_OP,
            Arg::Val(EVTCHNOP_BIND_IPI),
            Arg::InOut(&mut arg)
        ),
    )?;
    Ok(EvtchnPort(get_u32(&arg, 4)))
}

/// A port in domain `dom` that `remote` may bind to (`struct evtchn_alloc_unbound { domid_t dom;
/// domid_t remote_dom; u32 port; }`). dom0 makes the store and console ports of a DomU this way
/// (`dom` = the DomU, `remote` = 0).
pub fn alloc_unbound(h: &dyn Hypercall, dom: u16, remote: u16) -> Result<EvtchnPort, XenError> {
    let mut arg = [0u8; 8];
    put_u16(&mut arg, 0, dom);
    put_u16(&mut arg, 2, remote);
    issue(
        h,
        call!(
            nr::EVENT_CHANNEL_OP,
            Arg::Val(EVTCHNOP_ALLOC_UNBOUND),
            Arg::InOut(&mut arg)
        ),
    )?;
    Ok(EvtchnPort(get_u32(&arg, 4)))
}

/// Connect a local port to `remote_port` of `remote_dom` (`struct evtchn_bind_interdomain {
/// domid_t remote_dom; u32 remote_port; u32 local_port; }`).
pub fn bind_interdomain(
    h: &dyn Hypercall,
    remote_dom: u16,
    remote_port: EvtchnPort,
) -> Result<EvtchnPort, XenError> {
    let mut arg = [0u8; 12];
    put_u16(&mut arg, 0, remote_dom);
    put_u32(&mut arg, 4, remote_port.0);
    issue(
        h,
        call!(
            nr::EVENT_CHANNEL_OP,
            Arg::Val(EVTCHNOP_BIND_INTERDOMAIN),
            Arg::InOut(&mut arg)
        ),
    )?;
    Ok(EvtchnPort(get_u32(&arg, 8)))
}

fn port_op(h: &dyn Hypercall, op: u64, port: EvtchnPort) -> Result<(), XenError> {
    let arg = port.0.to_le_bytes();
    issue(h, call!(nr::EVENT_CHANNEL_OP, Arg::Val(op), Arg::In(&arg)))?;
    Ok(())
}

/// Unmask a port (Xen re-raises it if it became pending while masked).
pub fn evtchn_unmask(h: &dyn Hypercall, port: EvtchnPort) -> Result<(), XenError> {
    port_op(h, EVTCHNOP_UNMASK, port)
}

/// Notify the other end of a port.
pub fn evtchn_send(h: &dyn Hypercall, port: EvtchnPort) -> Result<(), XenError> {
    port_op(h, EVTCHNOP_SEND, port)
}

/// Close a port.
pub fn evtchn_close(h: &dyn Hypercall, port: EvtchnPort) -> Result<(), XenError> {
    port_op(h, EVTCHNOP_CLOSE, port)
}

// --- grant_table_op (public/grant_table.h) ------------------------------------------------------

pub const GNTTABOP_QUERY_SIZE: u64 = 6;
pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;

/// (current frames, maximum frames) of a domain's grant table (`struct gnttab_query_size {
/// domid_t dom; u32 nr_frames; u32 max_nr_frames; i16 status; }`, count 1).
pub fn gnttab_query_size(h: &dyn Hypercall, dom: u16) -> Result<(u32, u32), XenError> {
    let mut arg = [0u8; 16];
    put_u16(&mut arg, 0, dom);
    issue(
        h,
        call!(
            nr::GRANT_TABLE_OP,
            Arg::Val(GNTTABOP_QUERY_SIZE),
            Arg::InOut(&mut arg),
            Arg::Val(1)
        ),
    )?;
    let status = i16::from_le_bytes([arg[12], arg[13]]);
    if status != 0 {
        return Err(XenError(i32::from(status).unsigned_abs() as i32));
    }
    Ok((get_u32(&arg, 4), get_u32(&arg, 8)))
}

/// Map frame `idx` of this domain's grant table at guest frame `gfn`
/// (`XENMEM_add_to_physmap`, `XENMAPSPACE_grant_table`; how an HVM/PVH guest reaches its table).
pub fn map_grant_table_frame(h: &dyn Hypercall, idx: u64, gfn: u64) -> Result<(), XenError> {
    let mut arg = [0u8; 24];
    put_u16(&mut arg, 0, DOMID_SELF);
    put_u32(&mut arg, 4, XENMAPSPACE_GRANT_TABLE);
    put_u64(&mut arg, 8, idx);
    put_u64(&mut arg, 16, gfn);
    issue(
        h,
        call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_ADD_TO_PHYSMAP),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

/// `struct grant_entry_v1 { u16 flags; domid_t domid; u32 frame; }`: grant `domid` access to
/// `frame`. The entry is written flags last (the caller writes bytes 2..8 first, then the
/// flags with a release store), so the other domain never sees a half-written grant.
pub fn grant_entry_v1(domid: u16, frame: u32, readonly: bool) -> (u16, [u8; 6]) {
    const GTF_PERMIT_ACCESS: u16 = 1;
    const GTF_READONLY: u16 = 1 << 2;
    let mut rest = [0u8; 6];
    rest[0..2].copy_from_slice(&domid.to_le_bytes());
    rest[2..6].copy_from_slice(&frame.to_le_bytes());
    (
        GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 },
        rest,
    )
}

// --- vcpu_op (public/vcpu.h) -------------------------------------------------------------------

pub const VCPUOP_INITIALISE: u64 = 0;
pub const VCPUOP_UP: u64 = 1;
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;
pub const VCPUOP_IS_UP: u64 = 3;
pub const VCPUOP_SET_PERIODIC_TIMER: u64 = 6;
pub const VCPUOP_STOP_PERIODIC_TIMER: u64 = 7;
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;

/// Give vCPU `id` a periodic VIRQ_TIMER every `period_ns` (`VCPUOP_set_periodic_timer`; Xen
/// refuses periods under 1 ms). The timer lives on the physical CPU the vCPU runs on.
pub fn vcpu_set_periodic_timer(h: &dyn Hypercall, id: u32, period_ns: u64) -> Result<(), XenError> {
    let arg = period_ns.to_le_bytes();
    issue(
        h,
        call!(
            nr::VCPU_OP,
            Arg::Val(VCPUOP_SET_PERIODIC_TIMER),
            Arg::Val(u64::from(id)),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

/// Stop vCPU `id`'s periodic timer (`VCPUOP_stop_periodic_timer`).
pub fn vcpu_stop_periodic_timer(h: &dyn Hypercall, id: u32) -> Result<(), XenError> {
    issue(
        h,
        call!(
            nr::VCPU_OP,
            Arg::Val(VCPUOP_STOP_PERIODIC_TIMER),
            Arg::Val(u64::from(id)),
            Arg::Val(0)
        ),
    )?;
    Ok(())
}

/// Give vCPU `id` its initial register state (`VCPUOP_initialise`; for HVM/PVH the argument is a
/// `vcpu_hvm_context`). The vCPU stays down until [`vcpu_up`]. `-EEXIST` if already initialised.
pub fn vcpu_initialise(
    h: &dyn Hypercall,
    id: u32,
    ctx: &crate::vcpu::VcpuContext64,
) -> Result<(), XenError> {
    if ctx.validate().is_err() {
        return Err(XenError::EINVAL);
    }
    let b = ctx.to_bytes();
    issue(
        h,
        call!(
            nr::VCPU_OP,
            Arg::Val(VCPUOP_INITIALISE),
            Arg::Val(u64::from(id)),
            Arg::In(&b)
        ),
    )?;
    Ok(())
}

/// Start vCPU `id` (`VCPUOP_up`).
pub fn vcpu_up(h: &dyn Hypercall, id: u32) -> Result<(), XenError> {
    issue(
        h,
        call!(
            nr::VCPU_OP,
            Arg::Val(VCPUOP_UP),
            Arg::Val(u64::from(id)),
            Arg::Val(0)
        ),
    )?;
    Ok(())
}

/// Place vCPU `id`'s `vcpu_info` at guest-physical `addr` (`VCPUOP_register_vcpu_info`:
/// `struct { u64 mfn; u32 offset; u32 rsvd; }`, a GFN for HVM). Xen 4.17 requires it before
/// `VCPUOP_initialise` for vCPU ids of 32 and more (their `vcpu_info` is not in shared_info).
/// The 64 bytes at `addr` must not cross a page.
pub fn register_vcpu_info(h: &dyn Hypercall, id: u32, addr: u64) -> Result<(), XenError> {
    if (addr & 0xfff) + 64 > 0x1000 {
        return Err(XenError::EINVAL);
    }
    let mut arg = [0u8; 16];
    put_u64(&mut arg, 0, addr >> 12);
    put_u32(&mut arg, 8, (addr & 0xfff) as u32);
    issue(
        h,
        call!(
            nr::VCPU_OP,
            Arg::Val(VCPUOP_REGISTER_VCPU_INFO),
            Arg::Val(u64::from(id)),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

/// What Xen's scheduler is doing with a vCPU (`RUNSTATE_*` in public/vcpu.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// On a physical CPU now.
    Running,
    /// Ready to run, waiting for a physical CPU.
    Runnable,
    /// Blocked (`SCHEDOP_block`/`SCHEDOP_poll`, or waiting inside Xen).
    Blocked,
    /// Down, or paused by Xen or the toolstack.
    Offline,
}

impl RunState {
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Runnable => "runnable",
            RunState::Blocked => "blocked",
            RunState::Offline => "offline",
        }
    }
}

/// `struct vcpu_runstate_info`: the state, since when (Xen system time, ns), and the total time
/// spent in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runstate {
    pub state: RunState,
    pub state_entry_ns: u64,
    /// ns in running, runnable, blocked, offline.
    pub time_ns: [u64; 4],
}

/// `VCPUOP_get_runstate_info` for vCPU `id` of the calling domain (any vCPU, not only the caller;
/// the boot watchdog asks about vCPU 0 from an AP).
pub fn vcpu_runstate(h: &dyn Hypercall, id: u32) -> Result<Runstate, XenError> {
    // int state; (4 bytes padding) uint64_t state_entry_time; uint64_t time[4];
    let mut b = [0u8; 48];
    issue(
        h,
        call!(
            nr::VCPU_OP,
            Arg::Val(VCPUOP_GET_RUNSTATE_INFO),
            Arg::Val(u64::from(id)),
            Arg::InOut(&mut b)
        ),
    )?;
    let state = match get_u32(&b, 0) {
        0 => RunState::Running,
        1 => RunState::Runnable,
        2 => RunState::Blocked,
        3 => RunState::Offline,
        _ => return Err(XenError::EINVAL),
    };
    Ok(Runstate {
        state,
        state_entry_ns: get_u64(&b, 8),
        time_ns: [
            get_u64(&b, 16),
            get_u64(&b, 24),
            get_u64(&b, 32),
            get_u64(&b, 40),
        ],
    })
}

/// Whether vCPU `id` is up; `Err(ENOENT)` if the domain has no such vCPU.
pub fn vcpu_is_up(h: &dyn Hypercall, id: u32) -> Result<bool, XenError> {
    issue(
        h,
        call!(
            nr::VCPU_OP,
            Arg::Val(VCPUOP_IS_UP),
            Arg::Val(u64::from(id)),
            Arg::Val(0)
        ),
    )
    .map(|v| v != 0)
}

/// The number of vCPUs this domain has: the first id for which `VCPUOP_is_up` says `ENOENT`.
/// `limit` bounds the probe (Xen gives a PVH dom0 at most `HVM_MAX_VCPUS` = 128).
pub fn count_vcpus(h: &dyn Hypercall, limit: u32) -> Result<u32, XenError> {
    for id in 0..limit {
        match vcpu_is_up(h, id) {
            Ok(_) => {}
            Err(XenError::ENOENT) | Err(XenError::EINVAL) if id > 0 => return Ok(id),
            Err(e) => return Err(e),
        }
    }
    Ok(limit)
}

// --- physdev_op (public/physdev.h): reporting PCI to Xen ---------------------------------------

pub const PHYSDEVOP_PCI_MMCFG_RESERVED: u64 = 24;
pub const PHYSDEVOP_PCI_DEVICE_ADD: u64 = 25;
pub const PHYSDEVOP_PCI_DEVICE_REMOVE: u64 = 26;
pub const XEN_PCI_MMCFG_RESERVED: u32 = 1;
pub const XEN_PCI_DEV_EXTFN: u32 = 1;
pub const XEN_PCI_DEV_VIRTFN: u32 = 2;
pub const XEN_PCI_DEV_PXM: u32 = 4;

/// Tell Xen an MCFG window is reserved in the firmware's memory map, so it uses it for
/// extended config space (`struct physdev_pci_mmcfg_reserved { u64 address; u16 segment;
/// u8 start_bus; u8 end_bus; u32 flags; }`). Xen answers `-ENODEV` for a window it does not
/// already know (a dom0 cannot add one), `-EIO` if the address differs from its own.
pub fn pci_mmcfg_reserved(
    h: &dyn Hypercall,
    address: u64,
    segment: u16,
    start_bus: u8,
    end_bus: u8,
) -> Result<(), XenError> {
    let mut arg = [0u8; 16];
    put_u64(&mut arg, 0, address);
    put_u16(&mut arg, 8, segment);
    arg[10] = start_bus;
    arg[11] = end_bus;
    put_u32(&mut arg, 12, XEN_PCI_MMCFG_RESERVED);
    issue(
        h,
        call!(
            nr::PHYSDEV_OP,
            Arg::Val(PHYSDEVOP_PCI_MMCFG_RESERVED),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

/// Report a PCI function to Xen (`struct physdev_pci_device_add { u16 seg; u8 bus; u8 devfn;
/// u32 flags; struct { u8 bus; u8 devfn; } physfn; u32 optarr[]; }`). `physfn` is used with
/// [`XEN_PCI_DEV_VIRTFN`]. Xen logs `PCI add device|extended function|virtual function
/// ssss:bb:dd.f` (at `loglvl=all`), and the call is idempotent for devices it already knows.
///
/// `pxm`: the device's proximity domain (ACPI `_PXM` of the host bridge above, as Linux's
/// `xen_add_device` finds it), passed in `optarr[0]` with [`XEN_PCI_DEV_PXM`].
pub fn pci_device_add(
    h: &dyn Hypercall,
    seg: u16,
    bus: u8,
    devfn: u8,
    flags: u32,
    physfn: Option<(u8, u8)>,
    pxm: Option<u32>,
) -> Result<(), XenError> {
    let mut arg = [0u8; 16];
    put_u16(&mut arg, 0, seg);
    arg[2] = bus;
    arg[3] = devfn;
    put_u32(&mut arg, 4, flags | pxm.map_or(0, |_| XEN_PCI_DEV_PXM));
    if let Some((b, d)) = physfn {
        arg[8] = b;
        arg[9] = d;
    }
    if let Some(p) = pxm {
        put_u32(&mut arg, 12, p);
    }
    issue(
        h,
        call!(
            nr::PHYSDEV_OP,
            Arg::Val(PHYSDEVOP_PCI_DEVICE_ADD),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

/// Withdraw a PCI function from Xen (`struct physdev_pci_device { u16 seg; u8 bus; u8 devfn; }`),
/// e.g. before its bus number changes. `-ENODEV` if Xen does not know it.
pub fn pci_device_remove(h: &dyn Hypercall, seg: u16, bus: u8, devfn: u8) -> Result<(), XenError> {
    let mut arg = [0u8; 4];
    put_u16(&mut arg, 0, seg);
    arg[2] = bus;
    arg[3] = devfn;
    issue(
        h,
        call!(
            nr::PHYSDEV_OP,
            Arg::Val(PHYSDEVOP_PCI_DEVICE_REMOVE),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

// --- hvm_op (public/hvm/hvm_op.h, params.h) ----------------------------------------------------

pub const HVMOP_SET_PARAM: u64 = 0;
pub const HVMOP_GET_PARAM: u64 = 1;
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;

/// `HVM_PARAM_CALLBACK_IRQ` value meaning "deliver events as this IDT vector on any vCPU"
/// (`HVM_PARAM_CALLBACK_TYPE_VECTOR` = 2 in bits 63:56). Needs `XENFEAT_hvm_callback_vector`.
pub fn callback_via_vector(vector: u8) -> u64 {
    (2u64 << 56) | u64::from(vector)
}

/// `struct xen_hvm_param { domid_t domid; u32 index; u64 value; }`
fn hvm_param(h: &dyn Hypercall, op: u64, index: u32, value: u64) -> Result<u64, XenError> {
    let mut arg = [0u8; 16];
    put_u16(&mut arg, 0, DOMID_SELF);
    put_u32(&mut arg, 4, index);
    put_u64(&mut arg, 8, value);
    issue(h, call!(nr::HVM_OP, Arg::Val(op), Arg::InOut(&mut arg)))?;
    Ok(crate::le::get_u64(&arg, 8).unwrap_or(0))
}

/// Set an HVM parameter of this domain.
pub fn hvm_set_param(h: &dyn Hypercall, index: u32, value: u64) -> Result<(), XenError> {
    hvm_param(h, HVMOP_SET_PARAM, index, value).map(|_| ())
}

/// Read an HVM parameter of this domain.
pub fn hvm_get_param(h: &dyn Hypercall, index: u32) -> Result<u64, XenError> {
    hvm_param(h, HVMOP_GET_PARAM, index, 0)
}

#[cfg(test)]
mod tests;
