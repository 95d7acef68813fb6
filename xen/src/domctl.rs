//! What a toolstack needs to build and run other domains: `XEN_DOMCTL_*` (public/domctl.h),
//! the `XENMEM_*` sub-ops that act on another domain (public/memory.h), HVM parameters of
//! another domain, and the HVM save records `sethvmcontext` takes (public/arch-x86/hvm/save.h).
//!
//! The domctl ABI is versioned: Xen refuses a call whose `interface_version` is not its own
//! with `-EACCES` (`do_domctl`, xen/common/domctl.c), and `xen_domctl_createdomain` grew a field
//! in 0x17 (`altp2m_opts`). [`DomctlVersion::detect`] asks Xen rather than trusting a table.
//! Layouts: `xen/include/public/domctl.h` and `hvm/save.h` (offsets checked with `offsetof`
//! against the 4.17 and 4.20 headers).

use alloc::vec::Vec;

use crate::errno::XenError;
use crate::hypercall::{Arg, Hypercall, call, nr};
use crate::le::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use crate::ops::{DOMID_SELF, E820_ENTRY_SIZE, issue};

/// A domain id (`domid_t`).
pub type DomId = u16;

/// Domctl command numbers used here.
pub mod cmd {
    pub const CREATEDOMAIN: u32 = 1;
    pub const DESTROYDOMAIN: u32 = 2;
    pub const PAUSEDOMAIN: u32 = 3;
    pub const UNPAUSEDOMAIN: u32 = 4;
    pub const GETDOMAININFO: u32 = 5;
    pub const SETVCPUAFFINITY: u32 = 9;
    pub const MAX_MEM: u32 = 11;
    pub const MAX_VCPUS: u32 = 15;
    pub const GETTSCINFO: u32 = 59;
    pub const SETTSCINFO: u32 = 60;
    pub const GETHVMCONTEXT: u32 = 33;
    pub const SETHVMCONTEXT: u32 = 34;
    pub const SET_PAGING_MEMPOOL_SIZE: u32 = 86;
}

/// `sizeof(struct xen_domctl)`: cmd, interface_version, domain, pad, then a 128-byte union.
pub const DOMCTL_SIZE: usize = 144;
/// Offset of the union in `struct xen_domctl`.
pub const DOMCTL_U: usize = 16;

/// `XEN_DOMCTL_INTERFACE_VERSION` of the running Xen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomctlVersion(pub u32);

impl DomctlVersion {
    /// The oldest and newest versions this code knows the layouts of.
    pub const KNOWN: core::ops::RangeInclusive<u32> = 0x15..=0x18;

    /// The version a release ships (public/domctl.h on each stable branch).
    pub fn expected(major: u32, minor: u32) -> Option<DomctlVersion> {
        match (major, minor) {
            (4, 17) => Some(DomctlVersion(0x15)),
            (4, 18) => Some(DomctlVersion(0x16)),
            (4, 19..=21) => Some(DomctlVersion(0x17)),
            (4, 22) => Some(DomctlVersion(0x18)),
            _ => None,
        }
    }

    /// Find the version Xen accepts: the release's own first, then every known one.
    /// `getdomaininfo` of dom0 is the probe: harmless, and refused with `-EACCES` only for a
    /// wrong version. Returns the version and how many probes it took.
    pub fn detect(
        h: &dyn Hypercall,
        major: u32,
        minor: u32,
    ) -> Result<(DomctlVersion, u32), XenError> {
        let first = Self::expected(major, minor);
        let order = first
            .into_iter()
            .chain(Self::KNOWN.map(DomctlVersion).filter(|v| Some(*v) != first));
        let mut tries = 0;
        for v in order {
            tries += 1;
            match getdomaininfo(h, v, 0) {
                Err(XenError::EACCES) => continue,
                Ok(_) => return Ok((v, tries)),
                Err(e) => return Err(e),
            }
        }
        Err(XenError::EACCES)
    }

    /// Size of `xen_domctl_createdomain` in this version.
    pub fn createdomain_size(self) -> usize {
        if self.0 >= 0x17 { 68 } else { 64 }
    }
}

fn domctl(
    h: &dyn Hypercall,
    v: DomctlVersion,
    cmd: u32,
    dom: DomId,
    payload: &[u8],
) -> Result<[u8; DOMCTL_SIZE], XenError> {
    domctl_with(h, v, cmd, dom, payload, None)
}

/// A domctl whose payload points at `extra` (a guest handle inside the union).
fn domctl_with(
    h: &dyn Hypercall,
    v: DomctlVersion,
    cmd: u32,
    dom: DomId,
    payload: &[u8],
    extra: Option<Arg<'_>>,
) -> Result<[u8; DOMCTL_SIZE], XenError> {
    let mut b = [0u8; DOMCTL_SIZE];
    put_u32(&mut b, 0, cmd);
    put_u32(&mut b, 4, v.0);
    put_u16(&mut b, 8, dom);
    let n = payload.len().min(DOMCTL_SIZE - DOMCTL_U);
    b[DOMCTL_U..DOMCTL_U + n].copy_from_slice(&payload[..n]);
    let c = call!(nr::DOMCTL, Arg::InOut(&mut b));
    issue(
        h,
        if let Some(e) = extra {
            c.with_extra(e)
        } else {
            c
        },
    )?;
    Ok(b)
}

/// `XEN_VCPUAFFINITY_HARD` in `xen_domctl_vcpuaffinity.flags`.
pub const VCPUAFFINITY_HARD: u32 = 1 << 0;

/// Set vCPU `vcpu` of `dom` to hard affinity `cpus` (a bitmap, bit n = physical CPU n), as
/// `xl vcpu-pin` does (`XEN_DOMCTL_setvcpuaffinity`). `cpus` is IN/OUT: Xen writes back the
/// affinity it uses (the mask and the cpupool's online CPUs). Setting an affinity, even an
/// unchanged one, makes Xen migrate the vCPU (`vcpu_set_affinity()` marks it `_VPF_migrating`):
/// it is taken off its run queue and placed again on a physical CPU that is told to schedule.
///
/// `struct xen_domctl_vcpuaffinity { u32 vcpu; u32 flags; struct xenctl_bitmap cpumap_hard,
/// cpumap_soft; }`, `struct xenctl_bitmap { XEN_GUEST_HANDLE_64(uint8) bitmap; u32 nr_bits; }`.
pub fn set_vcpu_affinity(
    h: &dyn Hypercall,
    v: DomctlVersion,
    dom: DomId,
    vcpu: u32,
    cpus: &mut [u8],
) -> Result<(), XenError> {
    if cpus.is_empty() || cpus.len() > (u32::MAX / 8) as usize {
        return Err(XenError::EINVAL);
    }
    let mut a = [0u8; 40];
    put_u32(&mut a, 0, vcpu);
    put_u32(&mut a, 4, VCPUAFFINITY_HARD);
    put_u64(&mut a, 8, cpus.as_ptr() as u64);
    put_u32(&mut a, 16, (cpus.len() * 8) as u32);
    domctl_with(h, v, cmd::SETVCPUAFFINITY, dom, &a, Some(Arg::InOut(cpus))).map(|_| ())
}

/// `struct xen_domctl_hvmcontext { u32 size; XEN_GUEST_HANDLE_64(uint8) buffer; }`
fn hvmcontext_arg(size: usize, addr: u64) -> [u8; 16] {
    let mut a = [0u8; 16];
    put_u32(&mut a, 0, size as u32);
    put_u64(&mut a, 8, addr);
    a
}

/// `XEN_DOMCTL_CDF_*` (createdomain flags).
pub mod cdf {
    pub const HVM: u32 = 1 << 0;
    pub const HAP: u32 = 1 << 1;
}
/// `XEN_X86_EMU_LAPIC`: the only emulation a PVH DomU gets (`emulation_flags_ok`).
pub const X86_EMU_LAPIC: u32 = 1 << 0;
/// `XEN_DOMCTL_GRANT_version(1)`: grant table v1 (version 0 is refused).
pub const GRANT_OPTS_V1: u32 = 1;

/// What `XEN_DOMCTL_createdomain` gets for a PVH DomU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateDomain {
    pub handle: [u8; 16],
    pub flags: u32,
    pub max_vcpus: u32,
    pub max_evtchn_port: u32,
    pub max_grant_frames: i32,
    pub max_maptrack_frames: i32,
    pub emulation_flags: u32,
}

impl CreateDomain {
    /// A PVH DomU as libxl makes one: HVM container with HAP, LAPIC only, grant v1, the
    /// hypervisor's default grant limits, libxl's default 1023 event channels.
    pub fn pvh(max_vcpus: u32, handle: [u8; 16]) -> CreateDomain {
        CreateDomain {
            handle,
            flags: cdf::HVM | cdf::HAP,
            max_vcpus,
            max_evtchn_port: 1023,
            max_grant_frames: -1,
            max_maptrack_frames: -1,
            emulation_flags: X86_EMU_LAPIC,
        }
    }

    /// The struct in version `v`'s layout.
    pub fn encode(&self, v: DomctlVersion) -> Vec<u8> {
        let mut b = alloc::vec![0u8; v.createdomain_size()];
        // ssidref @0 = 0 (no FLASK label)
        b[4..20].copy_from_slice(&self.handle);
        put_u32(&mut b, 20, self.flags);
        // iommu_opts @24 = 0
        put_u32(&mut b, 28, self.max_vcpus);
        put_u32(&mut b, 32, self.max_evtchn_port);
        put_u32(&mut b, 36, self.max_grant_frames as u32);
        put_u32(&mut b, 40, self.max_maptrack_frames as u32);
        put_u32(&mut b, 44, GRANT_OPTS_V1);
        // 0x17 inserted altp2m_opts @48; vmtrace_size and cpupool_id stay 0.
        let arch = if v.0 >= 0x17 { 60 } else { 56 };
        put_u32(&mut b, arch, self.emulation_flags);
        b
    }
}

/// Create a domain (paused); Xen picks its id.
pub fn create_domain(
    h: &dyn Hypercall,
    v: DomctlVersion,
    cfg: &CreateDomain,
) -> Result<DomId, XenError> {
    let out = domctl(h, v, cmd::CREATEDOMAIN, 0, &cfg.encode(v))?;
    let id = get_u16(&out, 8).unwrap_or(0);
    if id == 0 || id >= DOMID_SELF {
        return Err(XenError::EINVAL);
    }
    Ok(id)
}

/// Allocate the domain's vCPUs (must equal `max_vcpus` of createdomain).
pub fn max_vcpus(h: &dyn Hypercall, v: DomctlVersion, dom: DomId, n: u32) -> Result<(), XenError> {
    domctl(h, v, cmd::MAX_VCPUS, dom, &n.to_le_bytes()).map(|_| ())
}

/// The most memory the domain may hold, in KiB.
pub fn max_mem(h: &dyn Hypercall, v: DomctlVersion, dom: DomId, kib: u64) -> Result<(), XenError> {
    domctl(h, v, cmd::MAX_MEM, dom, &kib.to_le_bytes()).map(|_| ())
}

/// Size of the domain's HAP paging pool in bytes (`XEN_DOMCTL_set_paging_mempool_size`).
pub fn set_paging_mempool_size(
    h: &dyn Hypercall,
    v: DomctlVersion,
    dom: DomId,
    bytes: u64,
) -> Result<(), XenError> {
    domctl(
        h,
        v,
        cmd::SET_PAGING_MEMPOOL_SIZE,
        dom,
        &bytes.to_le_bytes(),
    )
    .map(|_| ())
}

/// How Xen gives a domain its TSC (`XEN_CPUID_TSC_MODE_*`, public/arch-x86/cpuid.h; xl.cfg's
/// `tsc_mode`). Under `Default`, Xen runs `rdtsc` natively only when the host's TSC is safe
/// (`host_tsc_is_safe()`: the CPU reports an invariant TSC) and otherwise traps and emulates
/// every read (`tsc_set_info()`, xen/arch/x86/time.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TscMode {
    #[default]
    Default,
    AlwaysEmulate,
    /// `NEVER_EMULATE`: `rdtsc` runs natively whatever the host (xl's `native`).
    Native,
}

impl TscMode {
    /// The `XEN_CPUID_TSC_MODE_*` value.
    pub fn raw(self) -> u32 {
        match self {
            TscMode::Default => 0,
            TscMode::AlwaysEmulate => 1,
            TscMode::Native => 2,
        }
    }

    /// From the `XEN_CPUID_TSC_MODE_*` value (3, `PVRDTSCP`, is no longer accepted by Xen).
    pub fn from_raw(v: u32) -> Option<TscMode> {
        match v {
            0 => Some(TscMode::Default),
            1 => Some(TscMode::AlwaysEmulate),
            2 => Some(TscMode::Native),
            _ => None,
        }
    }

    /// xl.cfg's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TscMode::Default => "default",
            TscMode::AlwaysEmulate => "always_emulate",
            TscMode::Native => "native",
        }
    }

    /// From xl.cfg's spelling.
    pub fn parse(s: &str) -> Option<TscMode> {
        [TscMode::Default, TscMode::AlwaysEmulate, TscMode::Native]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// `struct xen_domctl_tsc_info { u32 tsc_mode, gtsc_khz, incarnation, pad; u64 elapsed_nsec; }`
/// for `XEN_DOMCTL_settscinfo`: the mode, with the rest zero as for a new domain (Xen then uses
/// the host's frequency). Xen refuses it for the calling domain itself (`-EINVAL`).
pub fn set_tsc_mode(
    h: &dyn Hypercall,
    v: DomctlVersion,
    dom: DomId,
    mode: TscMode,
) -> Result<(), XenError> {
    let mut a = [0u8; 24];
    put_u32(&mut a, 0, mode.raw());
    domctl(h, v, cmd::SETTSCINFO, dom, &a).map(|_| ())
}

/// The domain's TSC mode (`XEN_DOMCTL_gettscinfo`), or `None` for a value this code does not
/// know.
pub fn tsc_mode(
    h: &dyn Hypercall,
    v: DomctlVersion,
    dom: DomId,
) -> Result<Option<TscMode>, XenError> {
    let b = domctl(h, v, cmd::GETTSCINFO, dom, &[])?;
    Ok(get_u32(&b, DOMCTL_U).and_then(TscMode::from_raw))
}

/// Start (or resume) a paused domain.
pub fn unpause(h: &dyn Hypercall, v: DomctlVersion, dom: DomId) -> Result<(), XenError> {
    domctl(h, v, cmd::UNPAUSEDOMAIN, dom, &[]).map(|_| ())
}

/// Pause a domain.
pub fn pause(h: &dyn Hypercall, v: DomctlVersion, dom: DomId) -> Result<(), XenError> {
    domctl(h, v, cmd::PAUSEDOMAIN, dom, &[]).map(|_| ())
}

/// Destroy a domain (Xen finishes freeing it once nothing maps its pages any more).
pub fn destroy(h: &dyn Hypercall, v: DomctlVersion, dom: DomId) -> Result<(), XenError> {
    domctl(h, v, cmd::DESTROYDOMAIN, dom, &[]).map(|_| ())
}

/// `XEN_DOMINF_*` bits of `xen_domctl_getdomaininfo.flags`.
pub mod dominf {
    pub const DYING: u32 = 1 << 0;
    pub const HVM: u32 = 1 << 1;
    pub const SHUTDOWN: u32 = 1 << 2;
    pub const PAUSED: u32 = 1 << 3;
    pub const BLOCKED: u32 = 1 << 4;
    pub const RUNNING: u32 = 1 << 5;
    pub const SHUTDOWN_SHIFT: u32 = 16;
}

/// Why a domain shut down (`SHUTDOWN_*`, public/sched.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownCode {
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
    Other(u8),
}

impl ShutdownCode {
    pub fn from_u8(v: u8) -> ShutdownCode {
        match v {
            0 => ShutdownCode::Poweroff,
            1 => ShutdownCode::Reboot,
            2 => ShutdownCode::Suspend,
            3 => ShutdownCode::Crash,
            4 => ShutdownCode::Watchdog,
            5 => ShutdownCode::SoftReset,
            o => ShutdownCode::Other(o),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ShutdownCode::Poweroff => "poweroff",
            ShutdownCode::Reboot => "reboot",
            ShutdownCode::Suspend => "suspend",
            ShutdownCode::Crash => "crash",
            ShutdownCode::Watchdog => "watchdog",
            ShutdownCode::SoftReset => "soft_reset",
            ShutdownCode::Other(_) => "unknown",
        }
    }
}

/// The parts of `xen_domctl_getdomaininfo` a toolstack acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    pub domid: DomId,
    pub flags: u32,
    pub tot_pages: u64,
    pub max_pages: u64,
    pub cpu_time_ns: u64,
    pub online_vcpus: u32,
}

impl DomainInfo {
    pub fn dying(&self) -> bool {
        self.flags & dominf::DYING != 0
    }
    /// The shutdown reason, when the domain has shut down.
    pub fn shutdown(&self) -> Option<ShutdownCode> {
        (self.flags & dominf::SHUTDOWN != 0)
            .then(|| ShutdownCode::from_u8((self.flags >> dominf::SHUTDOWN_SHIFT) as u8))
    }
}

/// Information about domain `dom`; `Err(ESRCH)` when it does not exist. (Before 4.18 Xen
/// answers with the next domain at or above `dom`; that is treated as "gone" too.)
pub fn getdomaininfo(
    h: &dyn Hypercall,
    v: DomctlVersion,
    dom: DomId,
) -> Result<DomainInfo, XenError> {
    let out = domctl(h, v, cmd::GETDOMAININFO, dom, &[])?;
    let u = &out[DOMCTL_U..];
    let info = DomainInfo {
        domid: get_u16(u, 0).unwrap_or(0),
        flags: get_u32(u, 4).unwrap_or(0),
        tot_pages: get_u64(u, 8).unwrap_or(0),
        max_pages: get_u64(u, 16).unwrap_or(0),
        cpu_time_ns: get_u64(u, 56).unwrap_or(0),
        online_vcpus: get_u32(u, 64).unwrap_or(0),
    };
    if info.domid != dom {
        return Err(XenError::ESRCH);
    }
    Ok(info)
}

/// Size of domain `dom`'s HVM context (`gethvmcontext` with a null buffer).
pub fn hvmcontext_size(h: &dyn Hypercall, v: DomctlVersion, dom: DomId) -> Result<u32, XenError> {
    let out = domctl(h, v, cmd::GETHVMCONTEXT, dom, &[0u8; 16])?;
    Ok(get_u32(&out, DOMCTL_U).unwrap_or(0))
}

/// Fetch domain `dom`'s HVM context into `buf`; returns the bytes written.
pub fn get_hvmcontext(
    h: &dyn Hypercall,
    v: DomctlVersion,
    dom: DomId,
    buf: &mut [u8],
) -> Result<usize, XenError> {
    let arg = hvmcontext_arg(buf.len(), buf.as_ptr() as u64);
    let cap = buf.len();
    let out = domctl_with(h, v, cmd::GETHVMCONTEXT, dom, &arg, Some(Arg::InOut(buf)))?;
    let n = get_u32(&out, DOMCTL_U).unwrap_or(0) as usize;
    if n > cap {
        return Err(XenError::E2BIG);
    }
    Ok(n)
}

/// Load HVM save records (see [`hvmctx`]) into domain `dom`. Every load downs all vCPUs and
/// brings up only those with a CPU record (`hvm_load`, xen/arch/x86/hvm/save.c).
pub fn set_hvmcontext(
    h: &dyn Hypercall,
    v: DomctlVersion,
    dom: DomId,
    records: &[u8],
) -> Result<(), XenError> {
    let arg = hvmcontext_arg(records.len(), records.as_ptr() as u64);
    domctl_with(h, v, cmd::SETHVMCONTEXT, dom, &arg, Some(Arg::In(records))).map(|_| ())
}

// --- memory_op on another domain ---------------------------------------------------------------

pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
pub const XENMEM_SET_MEMORY_MAP: u64 = 13;
pub const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u64 = 23;
pub const XENMAPSPACE_GMFN_FOREIGN: u16 = 4;

/// Give domain `dom` fresh memory: one extent of `2^order` pages at each gfn of `gfns`.
/// Returns how many extents Xen populated (fewer than asked means it ran out).
///
/// `struct xen_memory_reservation { XEN_GUEST_HANDLE(xen_pfn_t) extent_start; xen_ulong_t
/// nr_extents; u32 extent_order; u32 mem_flags; domid_t domid; }`
pub fn populate_physmap(
    h: &dyn Hypercall,
    dom: DomId,
    order: u32,
    gfns: &mut [u64],
) -> Result<usize, XenError> {
    let mut list: Vec<u8> = gfns.iter().flat_map(|g| g.to_le_bytes()).collect();
    let mut arg = [0u8; 32];
    put_u64(&mut arg, 0, list.as_ptr() as u64);
    put_u64(&mut arg, 8, gfns.len() as u64);
    put_u32(&mut arg, 16, order);
    put_u16(&mut arg, 24, dom);
    let done = issue(
        h,
        call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_POPULATE_PHYSMAP),
            Arg::In(&arg)
        )
        .with_extra(Arg::InOut(&mut list)),
    )?;
    Ok((done as usize).min(gfns.len()))
}

/// Tell Xen domain `dom`'s memory map (what `XENMEM_memory_map` returns to it).
/// `entries` are (address, size, e820 type).
pub fn set_memory_map(
    h: &dyn Hypercall,
    dom: DomId,
    entries: &[(u64, u64, u32)],
) -> Result<(), XenError> {
    let mut buf = alloc::vec![0u8; entries.len() * E820_ENTRY_SIZE];
    for (i, &(a, s, t)) in entries.iter().enumerate() {
        let o = i * E820_ENTRY_SIZE;
        put_u64(&mut buf, o, a);
        put_u64(&mut buf, o + 8, s);
        put_u32(&mut buf, o + 16, t);
    }
    // struct xen_foreign_memory_map { domid_t domid; struct xen_memory_map map; }
    let mut arg = [0u8; 24];
    put_u16(&mut arg, 0, dom);
    put_u32(&mut arg, 8, entries.len() as u32);
    put_u64(&mut arg, 16, buf.as_ptr() as u64);
    issue(
        h,
        call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_SET_MEMORY_MAP),
            Arg::In(&arg)
        )
        .with_extra(Arg::In(&buf)),
    )?;
    Ok(())
}

/// Map frames `gfns` of domain `dom` at dom0's own frames `at` (`XENMEM_add_to_physmap_batch`,
/// `XENMAPSPACE_gmfn_foreign`; allowed for the hardware domain). The call fails as a whole
/// only for bad arguments; each entry's own result lands in `errs` (0 = mapped).
pub fn map_foreign(
    h: &dyn Hypercall,
    dom: DomId,
    gfns: &[u64],
    at: &[u64],
    errs: &mut [i32],
) -> Result<(), XenError> {
    if gfns.len() != at.len() || errs.len() != gfns.len() || gfns.len() > usize::from(u16::MAX) {
        return Err(XenError::EINVAL);
    }
    let idxs: Vec<u8> = gfns.iter().flat_map(|g| g.to_le_bytes()).collect();
    let gpfns: Vec<u8> = at.iter().flat_map(|g| g.to_le_bytes()).collect();
    let mut eb = alloc::vec![0u8; errs.len() * 4];
    let mut arg = [0u8; 32];
    put_u16(&mut arg, 0, DOMID_SELF);
    put_u16(&mut arg, 2, XENMAPSPACE_GMFN_FOREIGN);
    put_u16(&mut arg, 4, gfns.len() as u16);
    put_u16(&mut arg, 6, dom);
    put_u64(&mut arg, 8, idxs.as_ptr() as u64);
    put_u64(&mut arg, 16, gpfns.as_ptr() as u64);
    put_u64(&mut arg, 24, eb.as_ptr() as u64);
    issue(
        h,
        call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_ADD_TO_PHYSMAP_BATCH),
            Arg::InOut(&mut arg)
        )
        .with_extra(Arg::In(&idxs))
        .with_extra(Arg::In(&gpfns))
        .with_extra(Arg::InOut(&mut eb)),
    )?;
    for (i, e) in errs.iter_mut().enumerate() {
        *e = get_u32(&eb, 4 * i).unwrap_or(0) as i32;
    }
    Ok(())
}

pub const XENMEM_ACQUIRE_RESOURCE: u64 = 28;
pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;

/// Map frame 0 of domain `dom`'s (shared) grant table at dom0's frame `at`
/// (`XENMEM_acquire_resource`; for an HVM caller `frame_list` names where the frames go).
/// Undo with [`unmap_own`].
pub fn map_grant_frame(h: &dyn Hypercall, dom: DomId, at: u64) -> Result<(), XenError> {
    let list = at.to_le_bytes();
    let mut arg = [0u8; 32];
    put_u16(&mut arg, 0, dom);
    put_u16(&mut arg, 2, XENMEM_RESOURCE_GRANT_TABLE);
    put_u32(&mut arg, 4, XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED);
    put_u32(&mut arg, 8, 1);
    put_u64(&mut arg, 16, 0);
    put_u64(&mut arg, 24, list.as_ptr() as u64);
    issue(
        h,
        call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_ACQUIRE_RESOURCE),
            Arg::InOut(&mut arg)
        )
        .with_extra(Arg::In(&list)),
    )?;
    Ok(())
}

/// Remove whatever is mapped at dom0's own frame `gfn` (undoes [`map_foreign`]).
pub fn unmap_own(h: &dyn Hypercall, gfn: u64) -> Result<(), XenError> {
    let mut arg = [0u8; 16];
    put_u16(&mut arg, 0, DOMID_SELF);
    put_u64(&mut arg, 8, gfn);
    issue(
        h,
        call!(
            nr::MEMORY_OP,
            Arg::Val(XENMEM_REMOVE_FROM_PHYSMAP),
            Arg::In(&arg)
        ),
    )?;
    Ok(())
}

/// Size of one `struct multicall_entry` (op, result, args[6]; all `xen_ulong_t`).
pub const MULTICALL_ENTRY: usize = 64;

/// [`unmap_own`] for many frames in one trap: `HYPERVISOR_multicall` of
/// `XENMEM_remove_from_physmap` entries (multicall is in the HVM hypercall table; each entry
/// goes through the same filters as a direct call). Returns each entry's result (0 = removed).
pub fn unmap_own_batch(h: &dyn Hypercall, gfns: &[u64]) -> Result<Vec<i64>, XenError> {
    let mut args = alloc::vec![0u8; 16 * gfns.len()];
    for (i, g) in gfns.iter().enumerate() {
        put_u16(&mut args, 16 * i, DOMID_SELF);
        put_u64(&mut args, 16 * i + 8, *g);
    }
    let mut list = alloc::vec![0u8; MULTICALL_ENTRY * gfns.len()];
    for i in 0..gfns.len() {
        let e = MULTICALL_ENTRY * i;
        put_u64(&mut list, e, u64::from(nr::MEMORY_OP));
        put_u64(&mut list, e + 16, XENMEM_REMOVE_FROM_PHYSMAP);
        put_u64(&mut list, e + 24, args.as_ptr() as u64 + 16 * i as u64);
    }
    let n = gfns.len() as u64;
    issue(
        h,
        call!(nr::MULTICALL, Arg::InOut(&mut list), Arg::Val(n)).with_extra(Arg::In(&args)),
    )?;
    Ok((0..gfns.len())
        .map(|i| get_u64(&list, MULTICALL_ENTRY * i + 8).unwrap_or(0) as i64)
        .collect())
}

// --- HVM parameters of another domain ----------------------------------------------------------

/// `HVM_PARAM_*` a toolstack sets (public/hvm/params.h).
pub mod param {
    pub const STORE_PFN: u32 = 1;
    pub const STORE_EVTCHN: u32 = 2;
    pub const TIMER_MODE: u32 = 10;
    pub const CONSOLE_PFN: u32 = 17;
    pub const CONSOLE_EVTCHN: u32 = 18;
    /// `HVMPTM_no_delay_for_missed_ticks`, libxl's default timer mode.
    pub const TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS: u64 = 1;
}

/// Set HVM parameter `index` of domain `dom`.
pub fn set_param(h: &dyn Hypercall, dom: DomId, index: u32, value: u64) -> Result<(), XenError> {
    let mut arg = [0u8; 16];
    put_u16(&mut arg, 0, dom);
    put_u32(&mut arg, 4, index);
    put_u64(&mut arg, 8, value);
    issue(
        h,
        call!(
            nr::HVM_OP,
            Arg::Val(crate::ops::HVMOP_SET_PARAM),
            Arg::InOut(&mut arg)
        ),
    )?;
    Ok(())
}

/// HVM save records (public/arch-x86/hvm/save.h): an 8-byte descriptor {u16 typecode,
/// u16 instance, u32 length} before each payload, ending with an END record.
pub mod hvmctx {
    use alloc::vec::Vec;

    use crate::le::{get_u16, get_u32, put_u32, put_u64};

    pub const END: u16 = 0;
    pub const HEADER: u16 = 1;
    pub const CPU: u16 = 2;
    pub const MTRR: u16 = 14;
    pub const DESC_LEN: usize = 8;
    pub const HEADER_LEN: usize = 24;
    pub const CPU_LEN: usize = 1032;
    pub const MTRR_LEN: usize = 240;
    /// `HVM_FILE_MAGIC`.
    pub const HEADER_MAGIC: u32 = 0x5438_1286;
    /// Offset of `msr_mtrr_def_type` in the MTRR record.
    pub const MTRR_DEF_TYPE: usize = 232;
    /// Default type write-back, MTRRs enabled (libxc's `vcpu_hvm()`; pvh.pandoc: a PVH guest
    /// starts with MTRRs enabled and WB by default).
    pub const MTRR_DEF_WB_ENABLED: u64 = 6 | (1 << 11);

    /// One record: (typecode, instance, payload).
    pub type Record<'a> = (u16, u16, &'a [u8]);

    /// Split a context into records; `None` if a record runs past the end.
    pub fn records(buf: &[u8]) -> Option<Vec<Record<'_>>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + DESC_LEN <= buf.len() {
            let ty = get_u16(buf, at)?;
            let inst = get_u16(buf, at + 2)?;
            let len = get_u32(buf, at + 4)? as usize;
            let body = buf.get(at + DESC_LEN..at + DESC_LEN + len)?;
            out.push((ty, inst, body));
            at += DESC_LEN + len;
            if ty == END {
                return Some(out);
            }
        }
        None
    }

    /// Append one record.
    pub fn push(out: &mut Vec<u8>, ty: u16, inst: u16, body: &[u8]) {
        out.extend_from_slice(&ty.to_le_bytes());
        out.extend_from_slice(&inst.to_le_bytes());
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(body);
    }

    /// The CPU record of a vCPU entering the PVH ABI (docs/misc/pvh.pandoc): 32-bit protected
    /// mode, paging off, flat 4 GiB CS/DS/ES/SS, a 32-bit busy TSS, `ebx` = start_info.
    /// Values as libxc's `vcpu_hvm()` writes them.
    pub fn pvh_boot_cpu(entry: u32, start_info: u32) -> Vec<u8> {
        let mut c = alloc::vec![0u8; CPU_LEN];
        put_u64(&mut c, 520, u64::from(start_info)); // rbx
        put_u64(&mut c, 640, u64::from(entry)); // rip
        put_u64(&mut c, 648, 0x2); // rflags: reserved bit 1
        put_u64(&mut c, 656, 0x11); // cr0: PE | ET
        put_u64(&mut c, 720, 0xffff_0ff0); // dr6
        put_u64(&mut c, 728, 0x400); // dr7
        // limits: cs ds es fs gs ss tr ldtr idtr gdtr @768..804
        for off in [768, 772, 776, 788] {
            put_u32(&mut c, off, 0xffff_ffff); // cs, ds, es, ss
        }
        put_u32(&mut c, 792, 0x67); // tr
        // arbytes: cs ds es fs gs ss tr ldtr @888..916
        put_u32(&mut c, 888, 0xc9b); // cs: code, exec/read, accessed, S, P, D, G
        for off in [892, 896, 908] {
            put_u32(&mut c, off, 0xc93); // ds, es, ss: data, read/write, accessed
        }
        put_u32(&mut c, 912, 0x8b); // tr: busy 32-bit TSS, present
        c
    }
}

#[cfg(test)]
mod tests;
