//! The PVH domain builder: the hypercall sequence of libxl/libxc for a PVH guest
//! (`tools/libs/guest/xg_dom_*.c`, `tools/libs/light/libxl_dom.c`), written against [`Hypercall`] and a
//! [`GuestMemory`] that copies bytes into the new domain, so all of it runs in host tests
//! against `xen::fake::FakeXen`.
//!
//! Guest-physical layout (libxl's for PVH, `domain_construct_memmap`, with our ACPI block):
//!
//! | range | what |
//! |---|---|
//! | `0 .. low_end` | RAM (PVH has no VGA hole); `low_end = min(memory, 0xFC00_0000)` |
//! | kernel `p_paddr` ranges | the ELF's PT_LOAD segments (Debian 6.1: 16 MiB .. 74 MiB) |
//! | after the kernel, page aligned | initrd (start_info module 0) |
//! | next page | `hvm_start_info` v1, module list, memory map, command line |
//! | `0xFC00_0000 ..` | ACPI: RSDP, XSDT, FADT, MADT, DSDT (`acpi_fixup::domu`); e820 ACPI |
//! | `0xFEFF_8000 .. 0xFF00_0000` | 8 special pages (libxc's `special_pfn`); xenstore ring at pfn 0xFEFFC, console ring at 0xFEFFF; e820 reserved |
//! | `4 GiB ..` | RAM above the hole, when memory exceeds `low_end` |
//!
//! The domain is left paused: the caller introduces it to xenstore and connects the console
//! before [`start`] unpauses it. Any failure after `createdomain` destroys the domain again.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use xen::domctl::TscMode;
use xen::domctl::{self, CreateDomain, DomId, DomctlVersion, hvmctx, param};
use xen::ops::{self, EvtchnPort};
use xen::{Hypercall, XenError};

use crate::kernel::bzload::{self, BzLoad, LoadError};

pub mod grantcopy;
use crate::kernel::{KernelFormat, elf, kernel_format};

pub const PAGE: u64 = 4096;
/// Start of the MMIO hole for a PVH guest without a device model (libxl: the lowest of the
/// special pages, the LAPIC and the ACPI area).
pub const HOLE_START: u64 = 0xFC00_0000;
/// Where the DomU's ACPI tables go (libxl's `ACPI_INFO_PHYSICAL_ADDRESS`).
pub const ACPI_BASE: u64 = 0xFC00_0000;
/// The 8 special pages (`X86_HVM_END_SPECIAL_REGION` - 8 .. 0xFF000).
pub const SPECIAL_PFN: u64 = 0xFEFF8;
pub const SPECIAL_PAGES: u64 = 8;
/// `special_pfn(SPECIALPAGE_XENSTORE)` and `special_pfn(SPECIALPAGE_CONSOLE)`.
pub const STORE_PFN: u64 = SPECIAL_PFN + 4;
pub const CONSOLE_PFN: u64 = SPECIAL_PFN + 7;
/// Above this, memory goes above 4 GiB.
pub const FOUR_GIB: u64 = 1 << 32;
/// Longest guest command line (libxc `MAX_GUEST_CMDLINE` is 1024; the bundle allows 2048 and
/// the start_info page has room for it).
pub const MAX_CMDLINE: usize = 2048;
/// Slack in max_mem beyond RAM + special + ACPI pages (libxl's `LIBXL_MAXMEM_CONSTANT`).
pub const MAXMEM_SLACK_KIB: u64 = 1024;

/// e820 types.
pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;
pub const E820_ACPI: u32 = 3;

/// Copies bytes into another domain's memory (dom0: through foreign mappings; tests: a map).
pub trait GuestMemory {
    /// Copy `data` to guest-physical address `gpa` of domain `dom`.
    fn write(&mut self, dom: DomId, gpa: u64, data: &[u8]) -> Result<(), XenError>;
    /// Zero `len` bytes at `gpa`.
    fn zero(&mut self, dom: DomId, gpa: u64, len: u64) -> Result<(), XenError>;
    /// Write v1 grant entries (ref, `grant_entry_v1` bytes) into frame 0 of `dom`'s grant
    /// table, each entry's flags last.
    fn seed_grants(&mut self, dom: DomId, entries: &[(u32, [u8; 8])]) -> Result<(), XenError>;
    /// Give `f` the `len` bytes at `gpa` of `dom` as one writable slice, and keep what it
    /// wrote. A kernel decompressed in place needs its whole output at once (the output is the
    /// decoder's dictionary): dom0 maps the DomU's frames into its window for the call
    /// (at most [`MAX_MAPPED`] bytes), with no copy in its heap.
    fn with_mapped(
        &mut self,
        dom: DomId,
        gpa: u64,
        len: u64,
        f: &mut dyn FnMut(&mut [u8]),
    ) -> Result<(), XenError>;
}

/// The most bytes [`GuestMemory::with_mapped`] maps at once: a distribution kernel's
/// decompressed ELF is 30-70 MiB.
pub const MAX_MAPPED: u64 = 128 << 20;

/// `GNTTAB_RESERVED_CONSOLE` and `GNTTAB_RESERVED_XENSTORE` (public/grant_table.h).
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

/// The grants libxc seeds (`xc_dom_gnttab_seed`): the console and xenstore rings, readable and
/// writable by the backend domain.
pub fn seed_entries(backend: DomId) -> [(u32, [u8; 8]); 2] {
    [
        (
            GNTTAB_RESERVED_CONSOLE,
            grant_entry_bytes(backend, CONSOLE_PFN),
        ),
        (
            GNTTAB_RESERVED_XENSTORE,
            grant_entry_bytes(backend, STORE_PFN),
        ),
    ]
}

/// The 8 bytes of a v1 `grant_entry` (flags, domid, frame) letting `backend` read and write
/// the guest's `frame`, as [`GuestMemory::seed_grants`] writes them.
pub fn grant_entry_bytes(backend: DomId, frame: u64) -> [u8; 8] {
    let (flags, rest) = ops::grant_entry_v1(backend, frame as u32, false);
    let mut b = [0u8; 8];
    b[0..2].copy_from_slice(&flags.to_le_bytes());
    b[2..8].copy_from_slice(&rest);
    b
}

/// What to build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    pub name: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub cmdline: String,
    /// Set on every DomU, as libxl does (`xc_domain_set_tsc_info`).
    pub tsc_mode: TscMode,
}

/// A clock in nanoseconds, for per-step timings.
pub type Clock<'a> = &'a dyn Fn() -> u64;

/// Everything the builder needs from dom0.
pub struct Env<'a> {
    pub xen: &'a dyn Hypercall,
    pub mem: &'a mut dyn GuestMemory,
    pub version: DomctlVersion,
    pub now: Clock<'a>,
}

impl fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("version", &self.version)
            .finish()
    }
}

/// A built, paused domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub domid: DomId,
    /// The DomU's ends of its xenstore and console channels (dom0 binds to them).
    pub store_port: EvtchnPort,
    pub console_port: EvtchnPort,
    pub store_pfn: u64,
    pub console_pfn: u64,
    pub layout: Layout,
    /// (step, nanoseconds) in order.
    pub steps: Vec<(&'static str, u64)>,
    /// Why seeding the console/xenstore grants failed, if it did (not fatal: dom0 maps those
    /// rings by frame number, as xenconsoled's fallback does).
    pub grant_seed_error: Option<XenError>,
}

/// Where everything goes in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub memory_bytes: u64,
    pub low_end: u64,
    /// End of RAM above 4 GiB (0 if none).
    pub high_end: u64,
    pub kernel: (u64, u64),
    pub entry: u32,
    pub initrd: Option<(u64, u64)>,
    pub start_info: u64,
    /// ACPI block (start, end) and the RSDP's address.
    pub acpi: (u64, u64),
    pub rsdp: u64,
    pub e820: Vec<(u64, u64, u32)>,
}

/// Why a build failed: the step and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    pub step: &'static str,
    pub detail: String,
    /// The domain that was created and then destroyed again (or left, if destroy failed).
    pub domid: Option<DomId>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.detail)?;
        if let Some(d) = self.domid {
            write!(f, " (domain {d} destroyed again)")?;
        }
        Ok(())
    }
}

fn err(step: &'static str, detail: impl Into<String>) -> BuildError {
    BuildError {
        step,
        detail: detail.into(),
        domid: None,
    }
}

/// Plan the guest's memory. Pure: checks everything that can be checked before any hypercall.
pub fn plan(
    cfg: &DomainConfig,
    kernel: &elf::Kernel,
    initrd_len: Option<u64>,
    acpi_len: u64,
) -> Result<Layout, BuildError> {
    if cfg.vcpus == 0 || cfg.vcpus > 128 {
        return Err(err("plan", format!("{} vCPUs: must be 1..=128", cfg.vcpus)));
    }
    if cfg.cmdline.len() > MAX_CMDLINE || cfg.cmdline.as_bytes().contains(&0) {
        return Err(err(
            "plan",
            format!(
                "command line of {} bytes: at most {MAX_CMDLINE}, no NUL",
                cfg.cmdline.len()
            ),
        ));
    }
    let memory_bytes = cfg
        .memory_mib
        .checked_mul(1 << 20)
        .filter(|m| (1 << 20..=1 << 40).contains(m))
        .ok_or_else(|| {
            err(
                "plan",
                format!("memory {} MiB: must be 1..=1048576", cfg.memory_mib),
            )
        })?;
    let low_end = memory_bytes.min(HOLE_START);
    let high_end = if memory_bytes > low_end {
        FOUR_GIB + (memory_bytes - low_end)
    } else {
        0
    };
    let kend = kernel.end.next_multiple_of(PAGE);
    let initrd = initrd_len.map(|n| (kend, kend + n));
    let start_info = initrd.map_or(kend, |(_, e)| e.next_multiple_of(PAGE));
    let need = start_info + PAGE;
    if need > low_end {
        return Err(err(
            "plan",
            format!(
                "{} MiB is too small: kernel, initrd and start_info need {} MiB below the \
                 MMIO hole (kernel {:#x}..{:#x}{})",
                cfg.memory_mib,
                need.div_ceil(1 << 20) + 1,
                kernel.start,
                kernel.end,
                initrd.map_or(String::new(), |(s, e)| format!(", initrd {s:#x}..{e:#x}")),
            ),
        ));
    }
    let acpi_end = (ACPI_BASE + acpi_len).next_multiple_of(PAGE);
    if acpi_end > SPECIAL_PFN * PAGE {
        return Err(err(
            "plan",
            format!("ACPI tables of {acpi_len} bytes do not fit"),
        ));
    }
    let mut e820 = alloc::vec![(0, low_end, E820_RAM)];
    if acpi_len > 0 {
        e820.push((ACPI_BASE, acpi_end - ACPI_BASE, E820_ACPI));
    }
    e820.push((SPECIAL_PFN * PAGE, SPECIAL_PAGES * PAGE, E820_RESERVED));
    if high_end > 0 {
        e820.push((FOUR_GIB, high_end - FOUR_GIB, E820_RAM));
    }
    Ok(Layout {
        memory_bytes,
        low_end,
        high_end,
        kernel: (kernel.start, kernel.end),
        entry: kernel.entry,
        initrd,
        start_info,
        acpi: (ACPI_BASE, if acpi_len > 0 { acpi_end } else { ACPI_BASE }),
        rsdp: if acpi_len > 0 { ACPI_BASE } else { 0 },
        e820,
    })
}

/// `hvm_start_info` version 1 with its module list, memory map and command line, as one page
/// placed at `layout.start_info` (public/arch-x86/hvm/start_info.h).
pub fn start_info_page(layout: &Layout, cmdline: &str) -> Vec<u8> {
    const MODLIST: usize = 64;
    const MEMMAP: usize = 128;
    const CMDLINE: usize = 1024;
    let base = layout.start_info;
    let mut p = alloc::vec![0u8; PAGE as usize];
    let put32 = |p: &mut [u8], o: usize, v: u32| p[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put64 = |p: &mut [u8], o: usize, v: u64| p[o..o + 8].copy_from_slice(&v.to_le_bytes());
    put32(&mut p, 0, xen::start_info::XEN_HVM_START_MAGIC_VALUE);
    put32(&mut p, 4, 1); // version 1: has a memory map
    let nmods = u32::from(layout.initrd.is_some());
    put32(&mut p, 12, nmods);
    if let Some((s, e)) = layout.initrd {
        put64(&mut p, 16, base + MODLIST as u64);
        put64(&mut p, MODLIST, s);
        put64(&mut p, MODLIST + 8, e - s);
    }
    put64(&mut p, 24, base + CMDLINE as u64);
    put64(&mut p, 32, layout.rsdp);
    put64(&mut p, 40, base + MEMMAP as u64);
    put32(&mut p, 48, layout.e820.len() as u32);
    for (i, &(a, s, t)) in layout.e820.iter().enumerate() {
        let o = MEMMAP + 24 * i;
        put64(&mut p, o, a);
        put64(&mut p, o + 8, s);
        put32(&mut p, o + 16, t);
    }
    let c = cmdline.as_bytes();
    let n = c.len().min(PAGE as usize - CMDLINE - 1);
    p[CMDLINE..CMDLINE + n].copy_from_slice(&c[..n]);
    p
}

/// Frames to populate for `[start, end)`: 2 MiB extents where aligned, else 4 KiB ones.
/// Returns (order-9 extents, order-0 extents), both as first frames.
pub fn extents(start: u64, end: u64) -> (Vec<u64>, Vec<u64>) {
    const SP: u64 = 512;
    let (mut big, mut small) = (Vec::new(), Vec::new());
    let (mut f, e) = (start / PAGE, end / PAGE);
    while f < e {
        if f.is_multiple_of(SP) && f + SP <= e {
            big.push(f);
            f += SP;
        } else {
            small.push(f);
            f += 1;
        }
    }
    (big, small)
}

fn populate(h: &dyn Hypercall, dom: DomId, order: u32, frames: &[u64]) -> Result<(), BuildError> {
    for chunk in frames.chunks(4096) {
        let mut c = chunk.to_vec();
        let done = domctl::populate_physmap(h, dom, order, &mut c)
            .map_err(|e| err("populate memory", format!("XENMEM_populate_physmap: {e}")))?;
        if done < chunk.len() {
            return Err(err(
                "populate memory",
                format!(
                    "Xen populated {done} of {} extents of order {order} at frame {:#x}: not \
                     enough free memory (give Xen more RAM or the DomU less)",
                    chunk.len(),
                    chunk[0]
                ),
            ));
        }
    }
    Ok(())
}

/// Where the kernel's bytes come from.
#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// A plain ELF (`vmlinux`): its segments are copied from the file.
    Elf(&'a [u8]),
    /// A bzImage: its payload is decompressed straight into the guest at `plan.base` (the
    /// image's `pref_address`, where Linux's own decompressor puts it) through one mapping of
    /// `plan.map_len` bytes, then the ELF inside is loaded in place ([`bzload`]).
    Bz { image: &'a [u8], plan: BzLoad },
}

/// What kind of kernel `image` is and, for a bzImage, the guest range it is decompressed into;
/// the kernel to plan with (for a bzImage: that range, entry unknown until it is loaded).
fn prepare(image: &[u8]) -> Result<(elf::Kernel, Source<'_>), BuildError> {
    if !matches!(kernel_format(image), KernelFormat::BzImage { .. }) {
        let k = elf::parse(image).map_err(|e| err("parse kernel", format!("{e}")))?;
        return Ok((k, Source::Elf(image)));
    }
    let bad = |m: String| err("parse kernel", format!("bzImage: {m}"));
    let plan = bzload::plan_bzimage(image).map_err(|e| bad(format!("{e}")))?;
    if plan.base < 1 << 20 || !plan.base.is_multiple_of(PAGE) {
        return Err(bad(format!(
            "pref_address {:#x}: not page-aligned above 1 MiB",
            plan.base
        )));
    }
    let span = plan.map_len.next_multiple_of(PAGE);
    if span > MAX_MAPPED {
        return Err(bad(format!(
            "needs {} MiB to decompress into, more than the {} MiB dom0 maps at once",
            span >> 20,
            MAX_MAPPED >> 20
        )));
    }
    // Planned as one range: the decompressed file and the loaded kernel both lie in it, and
    // the initrd and start_info go after it. The entry is known once it is loaded.
    let k = elf::Kernel {
        segments: Vec::new(),
        entry: 0,
        features: None,
        guest_os: None,
        start: plan.base,
        end: plan.base + span,
    };
    Ok((k, Source::Bz { image, plan }))
}

/// What [`build`] will do with `image` as a DomU's kernel, in words (for `cargo image bundle`
/// and dom0's module report), or why it cannot boot it.
pub fn kernel_plan(image: &[u8]) -> Result<String, String> {
    match prepare(image).map_err(|e| e.detail)? {
        (k, Source::Elf(_)) => Ok(format!(
            "loaded as a PVH ELF ({:#x}..{:#x}, entry {:#x})",
            k.start, k.end, k.entry
        )),
        (_, Source::Bz { plan, .. }) => Ok(format!(
            "decompressed ({}, {} -> {} bytes) into the DomU at {:#x} ({} MiB mapped) and \
             loaded in place",
            plan.payload.compression.as_str(),
            plan.payload.len,
            plan.elf_len,
            plan.base,
            plan.map_len.div_ceil(1 << 20)
        )),
    }
}

/// Build the domain, leaving it paused. `kernel_image` is a PVH-capable ELF or a bzImage (gzip,
/// XZ or zstd payload). `acpi` is the ACPI block for [`ACPI_BASE`] (empty for none); make it
/// with `acpi_fixup::domu::domu_tables(vcpus, ACPI_BASE)`.
pub fn build(
    env: &mut Env<'_>,
    cfg: &DomainConfig,
    kernel_image: &[u8],
    initrd: Option<&[u8]>,
    acpi: &[u8],
) -> Result<Built, BuildError> {
    let (kernel, source) = prepare(kernel_image)?;
    let layout = plan(
        cfg,
        &kernel,
        initrd.map(|i| i.len() as u64),
        acpi.len() as u64,
    )?;
    let h = env.xen;
    let v = env.version;
    let mut handle = [0u8; 16];
    for (i, b) in cfg.name.bytes().take(16).enumerate() {
        handle[i] = b;
    }
    let domid = domctl::create_domain(h, v, &CreateDomain::pvh(cfg.vcpus, handle))
        .map_err(|e| err("createdomain", format!("XEN_DOMCTL_createdomain: {e}")))?;
    match build_created(env, cfg, &kernel, source, initrd, acpi, layout, domid) {
        Ok(b) => Ok(b),
        Err(mut e) => {
            let gone = domctl::destroy(env.xen, env.version, domid);
            e.domid = Some(domid);
            if let Err(x) = gone {
                e.detail
                    .push_str(&format!("; destroying it failed too: {x}"));
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_created(
    env: &mut Env<'_>,
    cfg: &DomainConfig,
    kernel: &elf::Kernel,
    source: Source<'_>,
    initrd: Option<&[u8]>,
    acpi: &[u8],
    mut layout: Layout,
    domid: DomId,
) -> Result<Built, BuildError> {
    let h = env.xen;
    let v = env.version;
    let mut steps = Vec::new();
    let mut t = (env.now)();
    let mut step = |name: &'static str, now: u64| {
        steps.push((name, now.saturating_sub(t)));
        t = now;
    };
    let x = |what: &'static str| move |e: XenError| err(what, format!("{e}"));

    domctl::max_vcpus(h, v, domid, cfg.vcpus).map_err(x("max_vcpus"))?;
    let acpi_pages = (layout.acpi.1 - layout.acpi.0) / PAGE;
    let max_kib = layout.memory_bytes / 1024 + (SPECIAL_PAGES + acpi_pages) * 4 + MAXMEM_SLACK_KIB;
    domctl::max_mem(h, v, domid, max_kib).map_err(x("max_mem"))?;
    // libxl__get_required_paging_memory(): 4 KiB per (256 per vCPU + 1 per MiB).
    let pool = 4096 * (256 * u64::from(cfg.vcpus) + cfg.memory_mib);
    domctl::set_paging_mempool_size(h, v, domid, pool).map_err(x("paging pool"))?;
    // Whether Xen traps the DomU's `rdtsc`: under `default` it does on a host without an
    // invariant TSC (QEMU's software CPU among them), and Linux reads the TSC for every clock
    // read (`pvclock_clocksource_read`), so a busy DomU exits to Xen thousands of times a second.
    domctl::set_tsc_mode(h, v, domid, cfg.tsc_mode).map_err(x("XEN_DOMCTL_settscinfo"))?;
    domctl::set_param(
        h,
        domid,
        param::TIMER_MODE,
        param::TIMER_MODE_NO_DELAY_FOR_MISSED_TICKS,
    )
    .map_err(x("HVM_PARAM_TIMER_MODE"))?;
    let store_port = ops::alloc_unbound(h, domid, 0).map_err(x("xenstore event channel"))?;
    let console_port = ops::alloc_unbound(h, domid, 0).map_err(x("console event channel"))?;
    domctl::set_memory_map(h, domid, &layout.e820).map_err(x("XENMEM_set_memory_map"))?;
    step("create", (env.now)());

    // Memory: RAM, ACPI pages, special pages.
    let mut ranges = alloc::vec![(0, layout.low_end)];
    if layout.high_end > 0 {
        ranges.push((FOUR_GIB, layout.high_end));
    }
    if acpi_pages > 0 {
        ranges.push(layout.acpi);
    }
    ranges.push((SPECIAL_PFN * PAGE, (SPECIAL_PFN + SPECIAL_PAGES) * PAGE));
    for (s, e) in ranges {
        let (big, small) = extents(s, e);
        populate(h, domid, 9, &big)?;
        populate(h, domid, 0, &small)?;
    }
    step("populate", (env.now)());

    // Kernel segments. Their bss is not written: the RAM was just populated, and Xen hands a
    // domain only scrubbed pages (`alloc_heap_pages` scrubs a page marked `PGC_need_scrub`
    // before it is assigned), so it reads zero already on release builds of Xen; writing 24 MiB
    // of zeros through foreign mappings was 40% of this step for Debian's kernel. (A debug Xen
    // booted with `scrub_debug` fills scrubbed pages with a pattern instead; Linux clears its
    // own bss first thing, `clear_bss()`. `parse` refused overlapping segments, so no file
    // bytes of another segment lie in a bss.)
    match source {
        Source::Elf(file) => {
            for s in &kernel.segments {
                let bytes = &file[s.offset as usize..(s.offset + s.filesz) as usize];
                env.mem
                    .write(domid, s.paddr, bytes)
                    .map_err(x("load kernel"))?;
            }
        }
        Source::Bz { image, plan } => {
            // One mapping of the whole range: the decoder's dictionary is its own output.
            let now = env.now;
            let mut decompressed_at = 0;
            let mut loaded: Result<elf::Kernel, LoadError> = Err(LoadError::SliceTooShort {
                len: 0,
                map_len: plan.map_len,
            });
            env.mem
                .with_mapped(domid, plan.base, plan.map_len, &mut |out| {
                    loaded = bzload::load_bzimage_timed(image, &plan, out, &mut || {
                        decompressed_at = now();
                    });
                })
                .map_err(x("map the kernel's range"))?;
            let k = loaded.map_err(|e| match e {
                LoadError::Decompress(d) => err("decompress kernel", format!("{d}")),
                e => err("load kernel", format!("{e}")),
            })?;
            if decompressed_at > 0 {
                step("decompress", decompressed_at);
            }
            layout.kernel = (k.start, k.end);
            layout.entry = k.entry;
        }
    }
    step("kernel", (env.now)());
    if let (Some(data), Some((s, _))) = (initrd, layout.initrd) {
        env.mem.write(domid, s, data).map_err(x("load initrd"))?;
    }
    step("initrd", (env.now)());
    if !acpi.is_empty() {
        env.mem
            .write(domid, layout.acpi.0, acpi)
            .map_err(x("ACPI tables"))?;
    }
    let si = start_info_page(&layout, &cfg.cmdline);
    env.mem
        .write(domid, layout.start_info, &si)
        .map_err(x("start_info"))?;
    // Rings must start zeroed (indices 0, xenstore "connected"); libxc clears all 8.
    env.mem
        .zero(domid, SPECIAL_PFN * PAGE, SPECIAL_PAGES * PAGE)
        .map_err(x("clear special pages"))?;
    step("start_info", (env.now)());

    for (i, val) in [
        (param::STORE_PFN, STORE_PFN),
        (param::CONSOLE_PFN, CONSOLE_PFN),
        (param::STORE_EVTCHN, u64::from(store_port.0)),
        (param::CONSOLE_EVTCHN, u64::from(console_port.0)),
    ] {
        domctl::set_param(h, domid, i, val).map_err(x("HVM params"))?;
    }
    load_vcpu_state(h, v, domid, cfg.vcpus, layout.entry, layout.start_info)?;
    let grant_seed_error = env.mem.seed_grants(domid, &seed_entries(0)).err();
    step("vcpu", (env.now)());

    Ok(Built {
        domid,
        store_port,
        console_port,
        store_pfn: STORE_PFN,
        console_pfn: CONSOLE_PFN,
        layout,
        steps,
        grant_seed_error,
    })
}

/// MTRRs for every vCPU (write-back by default, enabled), then the boot vCPU's registers
/// (libxc `vcpu_hvm()`): each `sethvmcontext` downs the vCPUs without a CPU record, so the
/// boot vCPU's comes last.
fn load_vcpu_state(
    h: &dyn Hypercall,
    v: DomctlVersion,
    domid: DomId,
    vcpus: u32,
    entry: u32,
    start_info: u64,
) -> Result<(), BuildError> {
    let size = domctl::hvmcontext_size(h, v, domid)
        .map_err(|e| err("HVM context", format!("gethvmcontext size: {e}")))?;
    if size == 0 || size > 1 << 20 {
        return Err(err(
            "HVM context",
            format!("Xen reports a context of {size} bytes"),
        ));
    }
    let mut full = alloc::vec![0u8; size as usize];
    let n = domctl::get_hvmcontext(h, v, domid, &mut full)
        .map_err(|e| err("HVM context", format!("gethvmcontext: {e}")))?;
    let recs = hvmctx::records(&full[..n])
        .ok_or_else(|| err("HVM context", "Xen's context does not parse"))?;
    let header = recs
        .iter()
        .find(|r| r.0 == hvmctx::HEADER)
        .map(|r| r.2.to_vec())
        .ok_or_else(|| err("HVM context", "no HEADER record in Xen's context"))?;
    for i in 0..vcpus {
        let mut m = recs
            .iter()
            .find(|r| r.0 == hvmctx::MTRR && u32::from(r.1) == i)
            .map(|r| r.2.to_vec())
            .unwrap_or_else(|| {
                // No record from Xen: PAT at its power-on value, no ranges.
                let mut m = alloc::vec![0u8; hvmctx::MTRR_LEN];
                m[0..8].copy_from_slice(&0x0007_0406_0007_0406u64.to_le_bytes());
                m
            });
        if m.len() < hvmctx::MTRR_LEN {
            return Err(err(
                "HVM context",
                format!("MTRR record of vCPU {i} too short"),
            ));
        }
        m[hvmctx::MTRR_DEF_TYPE..hvmctx::MTRR_DEF_TYPE + 8]
            .copy_from_slice(&hvmctx::MTRR_DEF_WB_ENABLED.to_le_bytes());
        let mut rec = Vec::new();
        hvmctx::push(&mut rec, hvmctx::HEADER, 0, &header);
        hvmctx::push(&mut rec, hvmctx::MTRR, i as u16, &m);
        hvmctx::push(&mut rec, hvmctx::END, 0, &[]);
        domctl::set_hvmcontext(h, v, domid, &rec)
            .map_err(|e| err("HVM context", format!("MTRRs of vCPU {i}: {e}")))?;
    }
    let mut rec = Vec::new();
    hvmctx::push(&mut rec, hvmctx::HEADER, 0, &header);
    hvmctx::push(
        &mut rec,
        hvmctx::CPU,
        0,
        &hvmctx::pvh_boot_cpu(entry, start_info as u32),
    );
    hvmctx::push(&mut rec, hvmctx::END, 0, &[]);
    domctl::set_hvmcontext(h, v, domid, &rec)
        .map_err(|e| err("HVM context", format!("boot vCPU: {e}")))?;
    Ok(())
}

/// Let a built domain run.
pub fn start(h: &dyn Hypercall, v: DomctlVersion, domid: DomId) -> Result<(), XenError> {
    domctl::unpause(h, v, domid)
}

#[cfg(test)]
mod tests;
