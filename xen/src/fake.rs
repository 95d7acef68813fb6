//! A fake hypervisor for host tests: decodes the same argument structs the real Xen does, keeps
//! the state dom0 would observe, and can be told to fail any hypercall.

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::errno::XenError;
use crate::hypercall::{Arg, Call, Hypercall, nr};
use crate::ops;

#[derive(Debug, Default)]
struct State {
    console: Vec<u8>,
    fail: Vec<(u32, XenError)>,
    next_port: u32,
    bound_virqs: Vec<(u32, u32, u32)>, // (virq, vcpu, port)
    timer: Option<u64>,
    shutdown: Option<u32>,
    params: Vec<(u32, u64)>,
    shared_info_gfn: Option<u64>,
    lying_count: bool,
    last_poll: Option<(Vec<u32>, u64)>,
    contexts: Vec<(u32, crate::vcpu::VcpuContext64)>,
    up: Vec<u32>,
    ipis: Vec<(u32, u32)>, // (port, vcpu)
    sent: Vec<u32>,
    /// Hypercalls issued (traps), whatever their outcome.
    traps: u64,
    pci_adds: Vec<PciAdd>,
    /// What `XENPF_firmware_info`/`XEN_FW_EFI_INFO` answers; `None`: not an EFI boot
    /// (`-ENOSYS`, as Xen).
    efi: Option<FakeEfi>,
    /// (segment, bus, devfn, pxm) of each add with `XEN_PCI_DEV_PXM`.
    pci_pxms: Vec<(u16, u8, u8, u32)>,
    interdomain: Vec<(u32, u32)>, // (local, remote) pairs, both directions
    unbound: Vec<u32>,
    pci_known: Vec<(u16, u8, u8)>,
    domains: alloc::collections::BTreeMap<u16, FakeDomain>,
    next_domid: u16,
    /// dom0 frame -> (domain, its frame), for foreign mappings.
    foreign: alloc::collections::BTreeMap<u64, (u16, u64)>,
    fail_domctl: Vec<(u32, XenError)>,
    domctl_calls: Vec<u32>,
    /// `XEN_DOMCTL_setvcpuaffinity` calls: (domain, vCPU, effective hard affinity).
    affinity_sets: Vec<(u16, u32, u64)>,
    /// Pages other domains granted dom0: (domain, gref) -> (bytes, read-only).
    grants: alloc::collections::BTreeMap<(u16, u32), (Vec<u8>, bool)>,
    /// dom0's own frames, as grant copies see them.
    local: alloc::collections::BTreeMap<u64, Vec<u8>>,
    /// Grant mappings: (dom0 gpa, domain, gref, handle).
    grant_maps: Vec<(u64, u16, u32, u32)>,
}

impl State {
    /// Whether dom0's `port` is bound (a VIRQ, an IPI or an interdomain channel).
    fn port_bound(&self, port: u32) -> bool {
        self.bound_virqs.iter().any(|&(_, _, p)| p == port)
            || self.ipis.iter().any(|&(p, _)| p == port)
            || self.interdomain.iter().any(|&(p, _)| p == port)
    }
}

/// A domain the fake has created for dom0's toolstack.
#[derive(Debug, Default, Clone)]
pub struct FakeDomain {
    pub max_vcpus: u32,
    pub vcpus_allocated: u32,
    pub max_mem_kib: u64,
    pub paging_pool: u64,
    pub paused: bool,
    pub dying: bool,
    /// SHUTDOWN_* reason once shut down.
    pub shutdown: Option<u8>,
    /// Populated frames.
    pub frames: alloc::collections::BTreeSet<u64>,
    pub memory_map: Vec<(u64, u64, u32)>,
    pub params: Vec<(u32, u64)>,
    /// Every `sethvmcontext` buffer, in order.
    pub hvm_loads: Vec<Vec<u8>>,
    /// Ports allocated in this domain with `alloc_unbound` (port, remote domain).
    pub unbound: Vec<(u32, u16)>,
    pub emulation_flags: u32,
    pub cdf: u32,
    /// `XEN_CPUID_TSC_MODE_*` from `settscinfo` (0, default, until set).
    pub tsc_mode: u32,
}

/// The EFI facts of a fake EFI boot.
#[derive(Debug, Clone, Default)]
pub struct FakeEfi {
    pub version: u32,
    /// The configuration table's address and entry count.
    pub config_table: (u64, u32),
    /// EFI memory descriptors: (start, bytes, type, attributes).
    pub memmap: Vec<(u64, u64, u32, u64)>,
}

/// A recorded `PHYSDEVOP_pci_device_add`: (segment, bus, devfn, flags, physfn).
pub type PciAdd = (u16, u8, u8, u32, Option<(u8, u8)>);

/// The fake. `FakeXen::new(4, 17)` behaves like the Xen 4.17 a PVH dom0 meets.
#[derive(Debug)]
pub struct FakeXen {
    major: u32,
    minor: u32,
    vcpus: u32,
    e820: Vec<(u64, u64, u32)>,
    mmcfg: Vec<(u64, u16, u8, u8)>,
    state: RefCell<State>,
}

use crate::le::{get_u32 as u32_at, get_u64 as u64_at};

/// The buffer behind guest handle `addr` (an extra argument with that address), for reading.
fn handle_in<'a>(extras: &'a [Arg<'_>], addr: u64) -> Result<&'a [u8], XenError> {
    extras
        .iter()
        .find_map(|e| match e {
            Arg::In(b) if b.as_ptr() as u64 == addr => Some(&b[..]),
            Arg::InOut(b) if b.as_ptr() as u64 == addr => Some(&b[..]),
            _ => None,
        })
        .ok_or(XenError::EFAULT)
}

/// The buffer behind guest handle `addr`, for writing (only `InOut` extras qualify).
fn handle_out<'a>(extras: &'a mut [Arg<'_>], addr: u64) -> Result<&'a mut [u8], XenError> {
    extras
        .iter_mut()
        .find_map(|e| match e {
            Arg::InOut(b) if b.as_ptr() as u64 == addr => Some(&mut b[..]),
            _ => None,
        })
        .ok_or(XenError::EFAULT)
}

impl FakeXen {
    /// A Xen `major.minor` with one vCPU and a small dom0 memory map.
    pub fn new(major: u32, minor: u32) -> Self {
        FakeXen {
            major,
            minor,
            vcpus: 1,
            // What Xen 4.17 gives a 64 MiB PVH dom0 under QEMU q35 (from a real run).
            e820: alloc::vec![
                (0, 0x9f000, 1),
                (0x9f000, 0x1000, 2),
                (0xf0000, 0x10000, 2),
                (0x100000, 0x3f00000, 1),
                (0x4000000, 0x1000, 3),
                (0xb0000000, 0x10000000, 2),
            ],
            mmcfg: Vec::new(),
            state: RefCell::new(State {
                next_port: 1,
                next_domid: 1,
                ..State::default()
            }),
        }
    }

    /// Give the domain `n` vCPUs.
    pub fn with_vcpus(mut self, n: u32) -> Self {
        self.vcpus = n;
        self
    }

    /// An MCFG window Xen knows from its own boot (address, segment, start bus, end bus).
    pub fn with_mmcfg(mut self, address: u64, segment: u16, start: u8, end: u8) -> Self {
        self.mmcfg.push((address, segment, start, end));
        self
    }

    /// The other end of an interdomain channel.
    pub fn peer(&self, port: u32) -> Option<u32> {
        self.state
            .borrow()
            .interdomain
            .iter()
            .find(|(l, _)| *l == port)
            .map(|(_, r)| *r)
    }

    /// Let domain `domid` grant dom0 page `gref` with these 4096 bytes.
    pub fn grant_page(&self, domid: u16, gref: u32, bytes: &[u8], readonly: bool) {
        let mut page = alloc::vec![0u8; 4096];
        let n = bytes.len().min(4096);
        page[..n].copy_from_slice(&bytes[..n]);
        self.state
            .borrow_mut()
            .grants
            .insert((domid, gref), (page, readonly));
    }

    /// A granted page as it is now (after dom0's copies into it).
    pub fn granted_page(&self, domid: u16, gref: u32) -> Option<Vec<u8>> {
        self.state
            .borrow()
            .grants
            .get(&(domid, gref))
            .map(|(p, _)| p.clone())
    }

    /// dom0's frame `gfn` as grant copies see it (zeros until written).
    pub fn local_page(&self, gfn: u64) -> Vec<u8> {
        self.state
            .borrow()
            .local
            .get(&gfn)
            .cloned()
            .unwrap_or_else(|| alloc::vec![0u8; 4096])
    }

    /// dom0 writes `bytes` into its own frame `gfn` at `offset` (what a grant copy from that
    /// frame then reads).
    pub fn write_local(&self, gfn: u64, offset: usize, bytes: &[u8]) {
        let mut st = self.state.borrow_mut();
        let p = st
            .local
            .entry(gfn)
            .or_insert_with(|| alloc::vec![0u8; 4096]);
        let end = (offset + bytes.len()).min(4096);
        if offset < end {
            p[offset..end].copy_from_slice(&bytes[..end - offset]);
        }
    }

    /// Grant mappings dom0 holds: (gpa, domain, gref).
    pub fn grant_mappings(&self) -> Vec<(u64, u16, u32)> {
        self.state
            .borrow()
            .grant_maps
            .iter()
            .map(|&(g, d, r, _)| (g, d, r))
            .collect()
    }

    /// Every `PHYSDEVOP_pci_device_add`, in order.
    pub fn pci_adds(&self) -> Vec<PciAdd> {
        self.state.borrow().pci_adds.clone()
    }

    /// (segment, bus, devfn, optarr[0]) of each `PHYSDEVOP_pci_device_add` with
    /// `XEN_PCI_DEV_PXM`.
    pub fn pci_pxms(&self) -> Vec<(u16, u8, u8, u32)> {
        self.state.borrow().pci_pxms.clone()
    }

    /// Make every call of hypercall `op` fail with `err`.
    /// Boot "through EFI": `XEN_FW_EFI_INFO` answers from `efi`.
    pub fn set_efi(&self, efi: FakeEfi) {
        self.state.borrow_mut().efi = Some(efi);
    }

    pub fn fail_op(&self, op: u32, err: XenError) {
        self.state.borrow_mut().fail.push((op, err));
    }

    /// Make `XENMEM_memory_map` claim more entries than the buffer holds (a hostile hypervisor).
    pub fn set_lying_memory_map_count(&self, lie: bool) {
        self.state.borrow_mut().lying_count = lie;
    }

    /// Everything written with `CONSOLEIO_write`.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&self.state.borrow().console).into_owned()
    }

    /// The memory map the fake hands out: (addr, size, type).
    pub fn e820(&self) -> &[(u64, u64, u32)] {
        &self.e820
    }

    /// The armed single-shot timer deadline.
    pub fn timer_deadline(&self) -> Option<u64> {
        self.state.borrow().timer
    }

    /// The reason of the last `SCHEDOP_shutdown`.
    pub fn shutdown_reason(&self) -> Option<u32> {
        self.state.borrow().shutdown
    }

    /// The context vCPU `id` was initialised with.
    pub fn vcpu_context(&self, id: u32) -> Option<crate::vcpu::VcpuContext64> {
        self.state
            .borrow()
            .contexts
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, c)| *c)
    }

    /// The vCPU an IPI port notifies.
    pub fn ipi_target(&self, port: u32) -> Option<u32> {
        self.state
            .borrow()
            .ipis
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, v)| *v)
    }

    /// Ports notified with `EVTCHNOP_send`, in order.
    pub fn traps(&self) -> u64 {
        self.state.borrow().traps
    }

    /// Ports dom0 notified (`EVTCHNOP_send`, direct or in a multicall), in order.
    pub fn sent(&self) -> Vec<u32> {
        self.state.borrow().sent.clone()
    }

    /// The ports and timeout of the last `SCHEDOP_poll`.
    pub fn last_poll(&self) -> Option<(Vec<u32>, u64)> {
        self.state.borrow().last_poll.clone()
    }

    /// Where shared_info was mapped.
    pub fn shared_info_gfn(&self) -> Option<u64> {
        self.state.borrow().shared_info_gfn
    }

    /// A domain created through the fake.
    pub fn domain(&self, id: u16) -> Option<FakeDomain> {
        self.state.borrow().domains.get(&id).cloned()
    }

    /// Ids of live (not destroyed) domains other than dom0.
    pub fn domain_ids(&self) -> Vec<u16> {
        self.state.borrow().domains.keys().copied().collect()
    }

    /// Make domctl `cmd` fail with `err`.
    pub fn fail_domctl(&self, cmd: u32, err: XenError) {
        self.state.borrow_mut().fail_domctl.push((cmd, err));
    }

    /// Domctl commands issued, in order.
    pub fn domctl_calls(&self) -> Vec<u32> {
        self.state.borrow().domctl_calls.clone()
    }

    /// Every hard affinity set: (domain, vCPU, effective mask of physical CPUs).
    pub fn affinity_sets(&self) -> Vec<(u16, u32, u64)> {
        self.state.borrow().affinity_sets.clone()
    }

    /// dom0 frames that currently hold foreign mappings: frame -> (domain, its frame).
    pub fn foreign_mappings(&self) -> Vec<(u64, (u16, u64))> {
        self.state
            .borrow()
            .foreign
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// Let domain `id` shut down with `reason` (what SCHEDOP_shutdown in the guest does).
    pub fn guest_shutdown(&self, id: u16, reason: u8) {
        if let Some(d) = self.state.borrow_mut().domains.get_mut(&id) {
            d.shutdown = Some(reason);
        }
    }

    /// The domctl interface version this fake accepts.
    pub fn domctl_version(&self) -> u32 {
        crate::domctl::DomctlVersion::expected(self.major, self.minor).map_or(0x15, |v| v.0)
    }

    fn domctl(
        &self,
        st: &mut State,
        b: &mut [u8],
        extras: &mut [Arg<'_>],
    ) -> Result<u64, XenError> {
        use crate::domctl::{DOMCTL_U, cmd};
        let c = u32_at(b, 0).ok_or(XenError::EFAULT)?;
        st.domctl_calls.push(c);
        if u32_at(b, 4) != Some(self.domctl_version()) {
            return Err(XenError::EACCES);
        }
        if let Some(&(_, e)) = st.fail_domctl.iter().find(|(k, _)| *k == c) {
            return Err(e);
        }
        let dom = crate::le::get_u16(b, 8).ok_or(XenError::EFAULT)?;
        let u = DOMCTL_U;
        if c == cmd::CREATEDOMAIN {
            let v = self.domctl_version();
            let arch = if v >= 0x17 { 60 } else { 56 };
            let flags = u32_at(b, u + 20).ok_or(XenError::EFAULT)?;
            let emu = u32_at(b, u + arch).ok_or(XenError::EFAULT)?;
            let grant = u32_at(b, u + 44).ok_or(XenError::EFAULT)?;
            // emulation_flags_ok(): a non-hardware HVM domain gets LAPIC only, or all but VPCI.
            if flags & 1 == 0 || (emu != 1 && emu != 0x3ff & !(1 << 10)) || grant & 0xf == 0 {
                return Err(XenError::EINVAL);
            }
            let id = st.next_domid;
            st.next_domid += 1;
            st.domains.insert(
                id,
                FakeDomain {
                    max_vcpus: u32_at(b, u + 28).ok_or(XenError::EFAULT)?,
                    paused: true,
                    emulation_flags: emu,
                    cdf: flags,
                    ..FakeDomain::default()
                },
            );
            b[8..10].copy_from_slice(&id.to_le_bytes());
            return Ok(0);
        }
        if c == cmd::SETVCPUAFFINITY {
            // vcpu_affinity_domctl(): a vCPU the domain has, hard affinity only here, a mask
            // that names at least one of the fake's physical CPUs (it has as many as vCPUs).
            let vcpu = u32_at(b, u).ok_or(XenError::EFAULT)?;
            let flags = u32_at(b, u + 4).ok_or(XenError::EFAULT)?;
            let addr = crate::le::get_u64(b, u + 8).ok_or(XenError::EFAULT)?;
            let nr_bits = u32_at(b, u + 16).ok_or(XenError::EFAULT)?;
            let max = if dom == 0 {
                self.vcpus
            } else {
                st.domains.get(&dom).ok_or(XenError::ESRCH)?.max_vcpus
            };
            if vcpu >= max || flags != crate::domctl::VCPUAFFINITY_HARD {
                return Err(XenError::EINVAL);
            }
            let map = handle_out(extras, addr)?;
            let bytes = (nr_bits as usize).div_ceil(8).min(map.len());
            let pcpus = self.vcpus.min(64);
            let online: u64 = if pcpus == 64 {
                u64::MAX
            } else {
                (1 << pcpus) - 1
            };
            let mut want = [0u8; 8];
            let n = bytes.min(8);
            want[..n].copy_from_slice(&map[..n]);
            let eff = u64::from_le_bytes(want) & online;
            if eff == 0 {
                return Err(XenError::EINVAL);
            }
            map[..bytes].fill(0);
            map[..n].copy_from_slice(&eff.to_le_bytes()[..n]);
            st.affinity_sets.push((dom, vcpu, eff));
            return Ok(0);
        }
        if c == cmd::GETDOMAININFO {
            // 4.17 semantics: the first domain at or above `dom`.
            let next = if dom == 0 {
                Some((0u16, None))
            } else {
                st.domains
                    .range(dom..)
                    .next()
                    .map(|(k, d)| (*k, Some(d.clone())))
            };
            let Some((id, d)) = next else {
                return Err(XenError::ESRCH);
            };
            b[u..].fill(0);
            b[u..u + 2].copy_from_slice(&id.to_le_bytes());
            let mut flags = 0u32;
            if let Some(d) = &d {
                flags |= 2; // hvm
                if d.dying {
                    flags |= 1;
                }
                if d.paused {
                    flags |= 8;
                }
                if let Some(r) = d.shutdown {
                    flags |= 4 | (u32::from(r) << 16);
                }
                b[u + 8..u + 16].copy_from_slice(&(d.frames.len() as u64).to_le_bytes());
                b[u + 64..u + 68].copy_from_slice(&d.vcpus_allocated.to_le_bytes());
            }
            b[u + 4..u + 8].copy_from_slice(&flags.to_le_bytes());
            return Ok(0);
        }
        if c == cmd::SETTSCINFO && dom == 0 {
            // `XEN_DOMCTL_settscinfo` on the caller itself: "no domain_pause()".
            return Err(XenError::EINVAL);
        }
        let d = st.domains.get_mut(&dom).ok_or(XenError::ESRCH)?;
        match c {
            cmd::MAX_VCPUS => {
                let n = u32_at(b, u).ok_or(XenError::EFAULT)?;
                if n != d.max_vcpus {
                    return Err(XenError::EINVAL);
                }
                d.vcpus_allocated = n;
            }
            cmd::MAX_MEM => d.max_mem_kib = u64_at(b, u).ok_or(XenError::EFAULT)?,
            cmd::SET_PAGING_MEMPOOL_SIZE => d.paging_pool = u64_at(b, u).ok_or(XenError::EFAULT)?,
            cmd::SETTSCINFO => {
                // tsc_set_info(): modes 0..=2; PVRDTSCP (3) is gone since Xen 4.13.
                let mode = u32_at(b, u).ok_or(XenError::EFAULT)?;
                if mode > 2 {
                    return Err(XenError::EINVAL);
                }
                d.tsc_mode = mode;
            }
            cmd::GETTSCINFO => {
                b[u..u + 24].fill(0);
                b[u..u + 4].copy_from_slice(&d.tsc_mode.to_le_bytes());
            }
            cmd::UNPAUSEDOMAIN => d.paused = false,
            cmd::PAUSEDOMAIN => d.paused = true,
            cmd::DESTROYDOMAIN => {
                if st.foreign.values().any(|(fd, _)| *fd == dom) {
                    // Xen keeps a domain whose pages are still mapped as a zombie; the fake
                    // marks it dying and keeps it, so tests see the leak.
                    d.dying = true;
                } else {
                    st.domains.remove(&dom);
                }
            }
            cmd::GETHVMCONTEXT => {
                use crate::domctl::hvmctx;
                let mut ctx = Vec::new();
                let mut hdr = [0u8; hvmctx::HEADER_LEN];
                hdr[0..4].copy_from_slice(&hvmctx::HEADER_MAGIC.to_le_bytes());
                hdr[4..8].copy_from_slice(&1u32.to_le_bytes());
                hvmctx::push(&mut ctx, hvmctx::HEADER, 0, &hdr);
                for i in 0..d.vcpus_allocated {
                    hvmctx::push(&mut ctx, hvmctx::CPU, i as u16, &[0; hvmctx::CPU_LEN]);
                }
                for i in 0..d.vcpus_allocated {
                    let mut m = [0u8; hvmctx::MTRR_LEN];
                    m[0..8].copy_from_slice(&0x0007_0406_0007_0406u64.to_le_bytes());
                    m[224..232].copy_from_slice(&0x508u64.to_le_bytes());
                    hvmctx::push(&mut ctx, hvmctx::MTRR, i as u16, &m);
                }
                hvmctx::push(&mut ctx, hvmctx::END, 0, &[]);
                let size = u32_at(b, u).ok_or(XenError::EFAULT)? as usize;
                let addr = u64_at(b, u + 8).ok_or(XenError::EFAULT)?;
                if addr != 0 {
                    let buf = handle_out(extras, addr)?;
                    if size < ctx.len() || buf.len() < ctx.len() {
                        return Err(XenError::ENOSPC);
                    }
                    buf[..ctx.len()].copy_from_slice(&ctx);
                }
                b[u..u + 4].copy_from_slice(&(ctx.len() as u32).to_le_bytes());
            }
            cmd::SETHVMCONTEXT => {
                use crate::domctl::hvmctx;
                let size = u32_at(b, u).ok_or(XenError::EFAULT)? as usize;
                let addr = u64_at(b, u + 8).ok_or(XenError::EFAULT)?;
                let buf = handle_in(extras, addr)?;
                let buf = buf.get(..size).ok_or(XenError::EFAULT)?;
                let recs = hvmctx::records(buf).ok_or(XenError::EINVAL)?;
                // arch_hvm_load(): a HEADER first, with the right magic and version.
                match recs.first() {
                    Some((hvmctx::HEADER, _, h))
                        if u32_at(h, 0) == Some(hvmctx::HEADER_MAGIC)
                            && u32_at(h, 4) == Some(1) => {}
                    _ => return Err(XenError::EINVAL),
                }
                for (ty, inst, body) in &recs {
                    if (*ty == hvmctx::CPU || *ty == hvmctx::MTRR)
                        && u32::from(*inst) >= d.vcpus_allocated
                    {
                        return Err(XenError::ENOENT); // "dom has no vcpuN"
                    }
                    // hvm_load_cpu_ctxt(): pad0 must be 0.
                    if *ty == hvmctx::CPU && u32_at(body, 1028) != Some(0) {
                        return Err(XenError::EINVAL);
                    }
                }
                d.hvm_loads.push(buf.to_vec());
            }
            _ => return Err(XenError::ENOSYS),
        }
        Ok(0)
    }

    fn dispatch(&self, call: &mut Call<'_>) -> Result<u64, XenError> {
        let op = call.op();
        let (regs, extras) = call.split();
        let sub = regs.first().map(Arg::addr).unwrap_or(0);
        let mut st = self.state.borrow_mut();
        match op {
            nr::CONSOLE_IO if sub == ops::CONSOLEIO_WRITE => match regs.get(2) {
                Some(Arg::In(b)) => {
                    let n = (regs[1].addr() as usize).min(b.len());
                    st.console.extend_from_slice(&b[..n]);
                    Ok(0)
                }
                _ => Err(XenError::EFAULT),
            },
            nr::XEN_VERSION => match (sub, regs.get_mut(1)) {
                (ops::XENVER_VERSION, _) => Ok(u64::from((self.major << 16) | self.minor)),
                (ops::XENVER_EXTRAVERSION, Some(Arg::InOut(b))) => {
                    let s: &[u8] = if self.minor == 17 { b".7" } else { b".3" };
                    b[..s.len()].copy_from_slice(s);
                    Ok(0)
                }
                (ops::XENVER_CAPABILITIES, Some(Arg::InOut(b))) => {
                    let s = b"xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64";
                    b[..s.len()].copy_from_slice(s);
                    Ok(0)
                }
                (ops::XENVER_GET_FEATURES, Some(Arg::InOut(b))) => {
                    let idx = u32_at(b, 0).ok_or(XenError::EFAULT)?;
                    // What 4.17 reports to a PVH dom0: writable_page_tables,
                    // auto_translated_physmap, hvm_callback_vector, hvm_safe_pvclock, dom0,
                    // memory_op_vnode_supported, not_direct_mapped.
                    let map: u32 = if idx == 0 {
                        (1 << 0)
                            | (1 << 2)
                            | (1 << 9)
                            | (1 << 10)
                            | (1 << 11)
                            | (1 << 13)
                            | (1 << 16)
                    } else {
                        0
                    };
                    b[4..8].copy_from_slice(&map.to_le_bytes());
                    Ok(0)
                }
                _ => Err(XenError::EFAULT),
            },
            nr::MULTICALL => {
                let n = regs.get(1).map(Arg::addr).unwrap_or(0) as usize;
                let Some(Arg::InOut(list)) = regs.get_mut(0) else {
                    return Err(XenError::EFAULT);
                };
                // The entries' argument structs, and where they start.
                let (args, base) = extras
                    .iter()
                    .find_map(|e| match e {
                        Arg::In(b) => Some((b.to_vec(), b.as_ptr() as u64)),
                        _ => None,
                    })
                    .unwrap_or_default();
                for i in 0..n {
                    let e = crate::domctl::MULTICALL_ENTRY * i;
                    let op = u64_at(list, e).ok_or(XenError::EFAULT)?;
                    let sub = u64_at(list, e + 16).ok_or(XenError::EFAULT)?;
                    let ptr = u64_at(list, e + 24).ok_or(XenError::EFAULT)?;
                    let r: i64 = if op == u64::from(nr::MEMORY_OP)
                        && sub == crate::domctl::XENMEM_REMOVE_FROM_PHYSMAP
                    {
                        let off = ptr.wrapping_sub(base) as usize;
                        match u64_at(&args, off + 8) {
                            Some(g) if st.foreign.remove(&g).is_some() => 0,
                            Some(_) => -22,
                            None => -14,
                        }
                    } else if op == u64::from(nr::EVENT_CHANNEL_OP) && sub == ops::EVTCHNOP_SEND {
                        let off = ptr.wrapping_sub(base) as usize;
                        match u32_at(&args, off) {
                            Some(p) if st.port_bound(p) => {
                                st.sent.push(p);
                                0
                            }
                            Some(_) => -22,
                            None => -14,
                        }
                    } else if op == u64::from(nr::SCHED_OP) && sub == ops::SCHEDOP_POLL {
                        // As a direct poll: the ports and the timeout are recorded.
                        let off = ptr.wrapping_sub(base) as usize;
                        let ports =
                            u64_at(&args, off)
                                .zip(u32_at(&args, off + 8))
                                .and_then(|(addr, n)| {
                                    let list = handle_in(extras, addr).ok()?;
                                    (0..n as usize)
                                        .map(|i| u32_at(list, 4 * i))
                                        .collect::<Option<Vec<_>>>()
                                });
                        match (ports, u64_at(&args, off + 16)) {
                            (Some(p), Some(t)) => {
                                st.last_poll = Some((p, t));
                                0
                            }
                            _ => -14,
                        }
                    } else {
                        -38
                    };
                    list[e + 8..e + 16].copy_from_slice(&r.to_le_bytes());
                }
                Ok(0)
            }
            nr::DOMCTL => match regs.get_mut(0) {
                Some(Arg::InOut(b)) => self.domctl(&mut st, b, extras),
                _ => Err(XenError::EFAULT),
            },
            nr::MEMORY_OP if sub == crate::domctl::XENMEM_POPULATE_PHYSMAP => {
                let Some(Arg::In(arg)) = regs.get(1) else {
                    return Err(XenError::EFAULT);
                };
                let addr = u64_at(arg, 0).ok_or(XenError::EFAULT)?;
                let n = u64_at(arg, 8).ok_or(XenError::EFAULT)? as usize;
                let order = u32_at(arg, 16).ok_or(XenError::EFAULT)?;
                let dom = crate::le::get_u16(arg, 24).ok_or(XenError::EFAULT)?;
                let list = handle_in(extras, addr)?;
                let d = st.domains.get_mut(&dom).ok_or(XenError::ESRCH)?;
                let mut done = 0;
                for i in 0..n {
                    let gfn = u64_at(list, 8 * i).ok_or(XenError::EFAULT)?;
                    let pages = 1u64 << order;
                    if gfn % pages != 0 {
                        return Err(XenError::EINVAL);
                    }
                    if (d.frames.len() as u64 + pages) * 4 > d.max_mem_kib {
                        break; // over max_mem: Xen stops and reports what it did
                    }
                    for g in gfn..gfn + pages {
                        d.frames.insert(g);
                    }
                    done += 1;
                }
                Ok(done)
            }
            nr::MEMORY_OP if sub == crate::domctl::XENMEM_SET_MEMORY_MAP => {
                let Some(Arg::In(arg)) = regs.get(1) else {
                    return Err(XenError::EFAULT);
                };
                let dom = crate::le::get_u16(arg, 0).ok_or(XenError::EFAULT)?;
                let n = u32_at(arg, 8).ok_or(XenError::EFAULT)? as usize;
                let addr = u64_at(arg, 16).ok_or(XenError::EFAULT)?;
                let buf = handle_in(extras, addr)?;
                let mut map = Vec::new();
                for i in 0..n {
                    let o = i * ops::E820_ENTRY_SIZE;
                    map.push((
                        u64_at(buf, o).ok_or(XenError::EFAULT)?,
                        u64_at(buf, o + 8).ok_or(XenError::EFAULT)?,
                        u32_at(buf, o + 16).ok_or(XenError::EFAULT)?,
                    ));
                }
                st.domains.get_mut(&dom).ok_or(XenError::ESRCH)?.memory_map = map;
                Ok(0)
            }
            nr::MEMORY_OP if sub == crate::domctl::XENMEM_ADD_TO_PHYSMAP_BATCH => {
                let Some(Arg::InOut(arg)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                if crate::le::get_u16(arg, 0) != Some(ops::DOMID_SELF)
                    || crate::le::get_u16(arg, 2) != Some(crate::domctl::XENMAPSPACE_GMFN_FOREIGN)
                {
                    return Err(XenError::EINVAL);
                }
                let n = usize::from(crate::le::get_u16(arg, 4).ok_or(XenError::EFAULT)?);
                let fd = crate::le::get_u16(arg, 6).ok_or(XenError::EFAULT)?;
                let (ai, ag, ae) = (
                    u64_at(arg, 8).ok_or(XenError::EFAULT)?,
                    u64_at(arg, 16).ok_or(XenError::EFAULT)?,
                    u64_at(arg, 24).ok_or(XenError::EFAULT)?,
                );
                let idxs = handle_in(extras, ai)?.to_vec();
                let gpfns = handle_in(extras, ag)?.to_vec();
                let mut results: Vec<i32> = Vec::new();
                for i in 0..n {
                    let g = u64_at(&idxs, 8 * i).ok_or(XenError::EFAULT)?;
                    let at = u64_at(&gpfns, 8 * i).ok_or(XenError::EFAULT)?;
                    let ok = st.domains.get(&fd).is_some_and(|d| d.frames.contains(&g));
                    // p2m_add_foreign(): a dom0 frame already holding a foreign page cannot
                    // be reused without removing it first (guest_remove_page fails).
                    let r = if !ok {
                        -22
                    } else {
                        match st.foreign.entry(at) {
                            alloc::collections::btree_map::Entry::Occupied(_) => -6,
                            alloc::collections::btree_map::Entry::Vacant(v) => {
                                v.insert((fd, g));
                                0
                            }
                        }
                    };
                    results.push(r);
                }
                let errs = handle_out(extras, ae)?;
                for (i, r) in results.iter().enumerate() {
                    errs[4 * i..4 * i + 4].copy_from_slice(&r.to_le_bytes());
                }
                Ok(0)
            }
            nr::MEMORY_OP if sub == crate::domctl::XENMEM_ACQUIRE_RESOURCE => {
                let Some(Arg::InOut(arg)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                let dom = crate::le::get_u16(arg, 0).ok_or(XenError::EFAULT)?;
                let ty = crate::le::get_u16(arg, 2).ok_or(XenError::EFAULT)?;
                let addr = u64_at(arg, 24).ok_or(XenError::EFAULT)?;
                if ty != crate::domctl::XENMEM_RESOURCE_GRANT_TABLE {
                    return Err(XenError::EOPNOTSUPP);
                }
                if !st.domains.contains_key(&dom) {
                    return Err(XenError::ESRCH);
                }
                let list = handle_in(extras, addr)?.to_vec();
                let at = u64_at(&list, 0).ok_or(XenError::EFAULT)?;
                if st.foreign.contains_key(&at) {
                    return Err(XenError::EBUSY);
                }
                // Grant frame 0 of `dom`, recorded as its frame u64::MAX.
                st.foreign.insert(at, (dom, u64::MAX));
                Ok(0)
            }
            nr::MEMORY_OP if sub == crate::domctl::XENMEM_REMOVE_FROM_PHYSMAP => {
                let Some(Arg::In(arg)) = regs.get(1) else {
                    return Err(XenError::EFAULT);
                };
                let gfn = u64_at(arg, 8).ok_or(XenError::EFAULT)?;
                match st.foreign.remove(&gfn) {
                    Some(_) => Ok(0),
                    None => Err(XenError::EINVAL),
                }
            }
            nr::MEMORY_OP if sub == ops::XENMEM_MEMORY_MAP => {
                let Some(Arg::InOut(arg)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                let cap = u32_at(arg, 0).ok_or(XenError::EFAULT)? as usize;
                let addr = u64_at(arg, 8).ok_or(XenError::EFAULT)?;
                // Follow the guest handle: it must name one of the extra buffers.
                let buf = handle_out(extras, addr)?;
                if cap < self.e820.len() || buf.len() < cap * ops::E820_ENTRY_SIZE {
                    return Err(XenError::E2BIG);
                }
                for (i, &(a, s, t)) in self.e820.iter().enumerate() {
                    let o = i * ops::E820_ENTRY_SIZE;
                    buf[o..o + 8].copy_from_slice(&a.to_le_bytes());
                    buf[o + 8..o + 16].copy_from_slice(&s.to_le_bytes());
                    buf[o + 16..o + 20].copy_from_slice(&t.to_le_bytes());
                }
                let n = if st.lying_count {
                    cap as u32 + 5
                } else {
                    self.e820.len() as u32
                };
                arg[0..4].copy_from_slice(&n.to_le_bytes());
                Ok(0)
            }
            nr::MEMORY_OP if sub == ops::XENMEM_ADD_TO_PHYSMAP => {
                let Some(Arg::In(arg)) = regs.get(1) else {
                    return Err(XenError::EFAULT);
                };
                match u32_at(arg, 4) {
                    Some(ops::XENMAPSPACE_SHARED_INFO) => st.shared_info_gfn = u64_at(arg, 16),
                    Some(ops::XENMAPSPACE_GRANT_TABLE) => {}
                    _ => return Err(XenError::EINVAL),
                }
                Ok(0)
            }
            nr::SCHED_OP => match sub {
                ops::SCHEDOP_BLOCK | ops::SCHEDOP_YIELD => Ok(0),
                ops::SCHEDOP_POLL => {
                    let Some(Arg::In(arg)) = regs.get(1) else {
                        return Err(XenError::EFAULT);
                    };
                    let addr = u64_at(arg, 0).ok_or(XenError::EFAULT)?;
                    let n = u32_at(arg, 8).ok_or(XenError::EFAULT)? as usize;
                    let timeout = u64_at(arg, 16).ok_or(XenError::EFAULT)?;
                    let list = handle_in(extras, addr)?;
                    let ports = (0..n)
                        .map(|i| u32_at(list, 4 * i))
                        .collect::<Option<Vec<_>>>();
                    st.last_poll = Some((ports.ok_or(XenError::EFAULT)?, timeout));
                    Ok(0)
                }
                ops::SCHEDOP_SHUTDOWN => match regs.get(1) {
                    Some(Arg::In(b)) => {
                        st.shutdown = u32_at(b, 0);
                        Ok(0)
                    }
                    _ => Err(XenError::EFAULT),
                },
                _ => Err(XenError::ENOSYS),
            },
            nr::SET_TIMER_OP => {
                st.timer = Some(sub);
                Ok(0)
            }
            nr::EVENT_CHANNEL_OP => match (sub, regs.get_mut(1)) {
                (ops::EVTCHNOP_BIND_VIRQ, Some(Arg::InOut(b))) => {
                    let virq = u32_at(b, 0).ok_or(XenError::EFAULT)?;
                    let vcpu = u32_at(b, 4).ok_or(XenError::EFAULT)?;
                    if vcpu >= self.vcpus {
                        return Err(XenError::ENOENT);
                    }
                    if st
                        .bound_virqs
                        .iter()
                        .any(|&(v, c, _)| v == virq && c == vcpu)
                    {
                        return Err(XenError::EEXIST);
                    }
                    let port = st.next_port;
                    st.next_port += 1;
                    st.bound_virqs.push((virq, vcpu, port));
                    b[8..12].copy_from_slice(&port.to_le_bytes());
                    Ok(0)
                }
                (ops::EVTCHNOP_ALLOC_UNBOUND, Some(Arg::InOut(b))) => {
                    let dom = crate::le::get_u16(b, 0).ok_or(XenError::EFAULT)?;
                    let remote = crate::le::get_u16(b, 2).ok_or(XenError::EFAULT)?;
                    if dom != ops::DOMID_SELF && dom != 0 {
                        let d = st.domains.get_mut(&dom).ok_or(XenError::ESRCH)?;
                        let port = d.unbound.len() as u32 + 1;
                        d.unbound.push((port, remote));
                        b[4..8].copy_from_slice(&port.to_le_bytes());
                        return Ok(0);
                    }
                    let port = st.next_port;
                    st.next_port += 1;
                    st.unbound.push(port);
                    b[4..8].copy_from_slice(&port.to_le_bytes());
                    Ok(0)
                }
                (ops::EVTCHNOP_BIND_INTERDOMAIN, Some(Arg::InOut(b))) => {
                    let rdom = crate::le::get_u16(b, 0).ok_or(XenError::EFAULT)?;
                    let remote = u32_at(b, 4).ok_or(XenError::EFAULT)?;
                    if rdom != 0 && rdom != ops::DOMID_SELF {
                        let d = st.domains.get_mut(&rdom).ok_or(XenError::ESRCH)?;
                        let Some(i) = d.unbound.iter().position(|&(p, r)| p == remote && r == 0)
                        else {
                            return Err(XenError::EINVAL);
                        };
                        d.unbound.remove(i);
                        let port = st.next_port;
                        st.next_port += 1;
                        // The remote end lives in another domain: record it as (local, 0).
                        st.interdomain.push((port, 0));
                        b[8..12].copy_from_slice(&port.to_le_bytes());
                        return Ok(0);
                    }
                    let Some(i) = st.unbound.iter().position(|&p| p == remote) else {
                        return Err(XenError::EINVAL);
                    };
                    st.unbound.remove(i);
                    let port = st.next_port;
                    st.next_port += 1;
                    st.interdomain.push((port, remote));
                    st.interdomain.push((remote, port));
                    b[8..12].copy_from_slice(&port.to_le_bytes());
                    Ok(0)
                }
                (ops::EVTCHNOP_BIND_IPI, Some(Arg::InOut(b))) => {
                    let vcpu = u32_at(b, 0).ok_or(XenError::EFAULT)?;
                    if vcpu >= self.vcpus {
                        return Err(XenError::ENOENT);
                    }
                    let port = st.next_port;
                    st.next_port += 1;
                    st.ipis.push((port, vcpu));
                    b[4..8].copy_from_slice(&port.to_le_bytes());
                    Ok(0)
                }
                (ops::EVTCHNOP_UNMASK | ops::EVTCHNOP_SEND | ops::EVTCHNOP_CLOSE, Some(a)) => {
                    let port = match a {
                        Arg::In(b) => u32_at(b, 0).ok_or(XenError::EFAULT)?,
                        _ => return Err(XenError::EFAULT),
                    };
                    if !st.port_bound(port) {
                        return Err(XenError::EINVAL);
                    }
                    if sub == ops::EVTCHNOP_SEND {
                        st.sent.push(port);
                    }
                    Ok(0)
                }
                _ => Err(XenError::ENOSYS),
            },
            nr::VCPU_OP => {
                let id = regs.get(1).map(Arg::addr).unwrap_or(u64::MAX);
                if id >= u64::from(self.vcpus) {
                    return Err(XenError::ENOENT);
                }
                let id = id as u32;
                match sub {
                    ops::VCPUOP_IS_UP => Ok(u64::from(id == 0 || st.up.contains(&id))),
                    ops::VCPUOP_GET_RUNSTATE_INFO => {
                        let Some(Arg::InOut(b)) = regs.get_mut(2) else {
                            return Err(XenError::EFAULT);
                        };
                        if b.len() < 48 {
                            return Err(XenError::EFAULT);
                        }
                        // vCPU 0 runs (it is the caller in tests); others are blocked when up.
                        let state: u32 = if id == 0 {
                            0
                        } else if st.up.contains(&id) {
                            2
                        } else {
                            3
                        };
                        b[..48].fill(0);
                        b[0..4].copy_from_slice(&state.to_le_bytes());
                        Ok(0)
                    }
                    ops::VCPUOP_INITIALISE => {
                        let Some(Arg::In(b)) = regs.get(2) else {
                            return Err(XenError::EFAULT);
                        };
                        let ctx =
                            crate::vcpu::VcpuContext64::from_bytes(b).ok_or(XenError::EINVAL)?;
                        ctx.validate().map_err(|_| XenError::EINVAL)?;
                        if id == 0 || st.contexts.iter().any(|(i, _)| *i == id) {
                            return Err(XenError::EEXIST);
                        }
                        st.contexts.push((id, ctx));
                        Ok(0)
                    }
                    ops::VCPUOP_UP => {
                        if !st.contexts.iter().any(|(i, _)| *i == id) {
                            return Err(XenError::EINVAL);
                        }
                        st.up.push(id);
                        Ok(0)
                    }
                    ops::VCPUOP_REGISTER_VCPU_INFO => match regs.get(2) {
                        Some(Arg::In(b)) if b.len() >= 16 => Ok(0),
                        _ => Err(XenError::EFAULT),
                    },
                    _ => Err(XenError::ENOSYS),
                }
            }
            nr::GRANT_TABLE_OP if sub == crate::gnttab::GNTTABOP_COPY => {
                let count = match regs.get(2) {
                    Some(Arg::Val(n)) => *n as usize,
                    _ => return Err(XenError::EFAULT),
                };
                let Some(Arg::InOut(b)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                if b.len() < count * crate::gnttab::COPY_SIZE {
                    return Err(XenError::EFAULT);
                }
                for k in 0..count {
                    let op =
                        &mut b[k * crate::gnttab::COPY_SIZE..(k + 1) * crate::gnttab::COPY_SIZE];
                    let st = fake_copy(&mut st, op);
                    op[36..38].copy_from_slice(&st.to_le_bytes());
                }
                Ok(0)
            }
            nr::GRANT_TABLE_OP if sub == crate::gnttab::GNTTABOP_MAP_GRANT_REF => {
                let Some(Arg::InOut(b)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                let gpa = u64_at(b, 0).ok_or(XenError::EFAULT)?;
                let gref = u32_at(b, 12).ok_or(XenError::EFAULT)?;
                let dom = crate::le::get_u16(b, 16).ok_or(XenError::EFAULT)?;
                let status: i16 = if !st.grants.contains_key(&(dom, gref)) {
                    -3
                } else if st.grant_maps.iter().any(|m| m.0 == gpa) {
                    -5 // bad_virt_addr: the slot is taken (the real Xen would crash dom0)
                } else {
                    let handle = st.grant_maps.len() as u32 + 1;
                    st.grant_maps.push((gpa, dom, gref, handle));
                    b[20..24].copy_from_slice(&handle.to_le_bytes());
                    0
                };
                b[18..20].copy_from_slice(&status.to_le_bytes());
                Ok(0)
            }
            nr::GRANT_TABLE_OP if sub == crate::gnttab::GNTTABOP_UNMAP_GRANT_REF => {
                let Some(Arg::InOut(b)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                let gpa = u64_at(b, 0).ok_or(XenError::EFAULT)?;
                let handle = u32_at(b, 16).ok_or(XenError::EFAULT)?;
                let status: i16 = match st
                    .grant_maps
                    .iter()
                    .position(|m| m.0 == gpa && m.3 == handle)
                {
                    Some(i) => {
                        st.grant_maps.remove(i);
                        0
                    }
                    None => -4,
                };
                b[20..22].copy_from_slice(&status.to_le_bytes());
                Ok(0)
            }
            nr::GRANT_TABLE_OP if sub == ops::GNTTABOP_QUERY_SIZE => {
                let Some(Arg::InOut(b)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                b[4..8].copy_from_slice(&1u32.to_le_bytes());
                b[8..12].copy_from_slice(&64u32.to_le_bytes());
                Ok(0)
            }
            nr::PLATFORM_OP => {
                let Some(Arg::InOut(b)) = regs.get_mut(0) else {
                    return Err(XenError::EFAULT);
                };
                if b.len() < crate::platform::PLATFORM_OP_SIZE {
                    return Err(XenError::EFAULT);
                }
                let (cmd, ty, idx) = (u32_at(b, 0), u32_at(b, 8), u32_at(b, 12));
                if cmd != Some(crate::platform::XENPF_FIRMWARE_INFO)
                    || ty != Some(crate::platform::XEN_FW_EFI_INFO)
                {
                    return Err(XenError::ENOSYS);
                }
                let Some(efi) = &st.efi else {
                    return Err(XenError::ENOSYS);
                };
                match idx {
                    Some(crate::platform::XEN_FW_EFI_VERSION) => {
                        b[16..20].copy_from_slice(&efi.version.to_le_bytes());
                    }
                    Some(crate::platform::XEN_FW_EFI_CONFIG_TABLE) => {
                        b[16..24].copy_from_slice(&efi.config_table.0.to_le_bytes());
                        b[24..28].copy_from_slice(&efi.config_table.1.to_le_bytes());
                    }
                    Some(crate::platform::XEN_FW_EFI_MEM_INFO) => {
                        let addr = crate::le::u64_at(b, 16);
                        let Some(&(start, len, ty, attr)) =
                            efi.memmap.iter().find(|m| addr >= m.0 && addr - m.0 < m.1)
                        else {
                            return Err(XenError::ESRCH);
                        };
                        let size = start + len - addr;
                        b[24..32].copy_from_slice(&size.to_le_bytes());
                        b[32..40].copy_from_slice(&attr.to_le_bytes());
                        b[40..44].copy_from_slice(&ty.to_le_bytes());
                    }
                    _ => return Err(XenError::EINVAL),
                }
                Ok(0)
            }
            nr::PHYSDEV_OP => {
                let Some(Arg::In(b)) = regs.get(1) else {
                    return Err(XenError::EFAULT);
                };
                match sub {
                    ops::PHYSDEVOP_PCI_MMCFG_RESERVED => {
                        let addr = u64_at(b, 0).ok_or(XenError::EFAULT)?;
                        let seg = crate::le::get_u16(b, 8).ok_or(XenError::EFAULT)?;
                        let (start, end) = (b[10], b[11]);
                        // X17 mmconfig-shared.c: the window must be one Xen knows.
                        match self
                            .mmcfg
                            .iter()
                            .find(|m| (m.1, m.2, m.3) == (seg, start, end))
                        {
                            None => Err(XenError::ENODEV),
                            Some(m) if m.0 != addr => Err(XenError::EIO),
                            Some(_) => Ok(0),
                        }
                    }
                    ops::PHYSDEVOP_PCI_DEVICE_ADD => {
                        if b.len() < 12 {
                            return Err(XenError::EFAULT);
                        }
                        let seg = crate::le::get_u16(b, 0).ok_or(XenError::EFAULT)?;
                        let flags = u32_at(b, 4).ok_or(XenError::EFAULT)?;
                        let physfn = (flags & ops::XEN_PCI_DEV_VIRTFN != 0).then_some((b[8], b[9]));
                        st.pci_adds.push((seg, b[2], b[3], flags, physfn));
                        if flags & ops::XEN_PCI_DEV_PXM != 0 {
                            let pxm = u32_at(b, 12).ok_or(XenError::EFAULT)?;
                            st.pci_pxms.push((seg, b[2], b[3], pxm));
                        }
                        if !st.pci_known.contains(&(seg, b[2], b[3])) {
                            st.pci_known.push((seg, b[2], b[3]));
                        }
                        Ok(0)
                    }
                    ops::PHYSDEVOP_PCI_DEVICE_REMOVE => {
                        let seg = crate::le::get_u16(b, 0).ok_or(XenError::EFAULT)?;
                        let key = (seg, b[2], b[3]);
                        match st.pci_known.iter().position(|k| *k == key) {
                            Some(i) => {
                                st.pci_known.remove(i);
                                Ok(0)
                            }
                            None => Err(XenError::ENODEV),
                        }
                    }
                    _ => Err(XenError::ENOSYS),
                }
            }
            nr::HVM_OP => {
                let Some(Arg::InOut(b)) = regs.get_mut(1) else {
                    return Err(XenError::EFAULT);
                };
                let index = u32_at(b, 4).ok_or(XenError::EFAULT)?;
                let dom = crate::le::get_u16(b, 0).ok_or(XenError::EFAULT)?;
                if dom != ops::DOMID_SELF && dom != 0 {
                    let d = st.domains.get_mut(&dom).ok_or(XenError::ESRCH)?;
                    let v = u64_at(b, 8).ok_or(XenError::EFAULT)?;
                    return match sub {
                        ops::HVMOP_SET_PARAM => {
                            d.params.retain(|&(i, _)| i != index);
                            d.params.push((index, v));
                            Ok(0)
                        }
                        _ => Err(XenError::ENOSYS),
                    };
                }
                match sub {
                    ops::HVMOP_SET_PARAM => {
                        let v = u64_at(b, 8).ok_or(XenError::EFAULT)?;
                        st.params.retain(|&(i, _)| i != index);
                        st.params.push((index, v));
                        Ok(0)
                    }
                    ops::HVMOP_GET_PARAM => {
                        let v = st
                            .params
                            .iter()
                            .find(|&&(i, _)| i == index)
                            .map_or(0, |&(_, v)| v);
                        b[8..16].copy_from_slice(&v.to_le_bytes());
                        Ok(0)
                    }
                    _ => Err(XenError::ENOSYS),
                }
            }
            _ => Err(XenError::ENOSYS),
        }
    }
}

impl Hypercall for FakeXen {
    fn hypercall(&self, call: &mut Call<'_>) -> i64 {
        self.state.borrow_mut().traps += 1;
        if let Some(&(_, e)) = self
            .state
            .borrow()
            .fail
            .iter()
            .find(|(op, _)| *op == call.op())
        {
            return -i64::from(e.0);
        }
        match self.dispatch(call) {
            Ok(v) => v as i64,
            Err(e) => -i64::from(e.0),
        }
    }
}

/// One `gnttab_copy` against the fake's grants and dom0 frames; its `GNTST_*` status.
fn fake_copy(st: &mut State, op: &[u8]) -> i16 {
    let flags = crate::le::get_u16(op, 34).unwrap_or(0);
    let len = usize::from(crate::le::get_u16(op, 32).unwrap_or(0));
    let side = |at: usize, gref: bool| {
        let offset = usize::from(crate::le::get_u16(op, at + 10).unwrap_or(0));
        let dom = crate::le::get_u16(op, at + 8).unwrap_or(0);
        let key = if gref {
            Ok((dom, u32_at(op, at).unwrap_or(0)))
        } else {
            Err(u64_at(op, at).unwrap_or(0))
        };
        (key, offset)
    };
    let (src, so) = side(0, flags & crate::gnttab::GNTCOPY_SOURCE_GREF != 0);
    let (dst, d_o) = side(16, flags & crate::gnttab::GNTCOPY_DEST_GREF != 0);
    if so + len > 4096 || d_o + len > 4096 {
        return -10; // bad_copy_arg
    }
    let bytes = match src {
        Ok(k) => match st.grants.get(&k) {
            Some((p, _)) => p[so..so + len].to_vec(),
            None => return -3,
        },
        Err(gfn) => st
            .local
            .get(&gfn)
            .map_or_else(|| alloc::vec![0u8; len], |p| p[so..so + len].to_vec()),
    };
    match dst {
        Ok(k) => match st.grants.get_mut(&k) {
            Some((_, true)) => -8, // permission_denied: granted read-only
            Some((p, false)) => {
                p[d_o..d_o + len].copy_from_slice(&bytes);
                0
            }
            None => -3,
        },
        Err(gfn) => {
            let p = st
                .local
                .entry(gfn)
                .or_insert_with(|| alloc::vec![0u8; 4096]);
            p[d_o..d_o + len].copy_from_slice(&bytes);
            0
        }
    }
}
