//! A simulated PCI hierarchy for tests and benchmarks (feature `fake`): [`SimConfig`].
//!
//! Unlike [`crate::FakeConfigSpace`] (plain registers), the simulator behaves like hardware:
//! - Functions sit on physical buses. A root bus has a fixed number; every other bus is the
//!   downstream side of a bridge, and its number is whatever the bridge's secondary bus
//!   register says *now*. A config access to bus N is routed from the root bus down through
//!   the bridges whose [secondary, subordinate] covers N (the first, by devfn, if several
//!   do), so reprogramming a bridge moves everything behind it, and a bus no bridge covers
//!   is unreachable (reads all ones).
//! - Behind a PCIe root or downstream port only device 0 answers, unless the port has ARI
//!   Forwarding Enable set, which makes devfn an 8-bit ARI function number.
//! - BARs keep their size's low bits hardwired: writing all ones reads back the size mask with
//!   the type bits; 64-bit BARs take two slots; I/O BARs; expansion ROMs with their enable
//!   bit. COMMAND keeps only its writable bits; STATUS error bits are write-1-to-clear.
//! - SR-IOV: VFs appear at PF routing ID + First VF Offset + i * VF Stride only while VF
//!   Enable is set (created from NumVFs when it is set). A VF's ID register reads 0xffff and
//!   its BARs read 0, as the SR-IOV spec says; the VF BARs live in the PF's capability.
//!   NumVFs cannot change while VF Enable is set.
//! - It records [`SimConfig::violations`]: every write to a memory BAR or ROM while
//!   COMMAND.MEM is set, to an I/O BAR while COMMAND.IO is set (any BAR register with either
//!   set, for unimplemented ones), to a VF BAR while VF MSE is set, and to a bridge's memory
//!   window registers (0x20..0x2c) while its COMMAND.MEM is set. It counts accesses.
//! - Bridge windows read back what was written, with the read-only bits: the low nibbles of
//!   the memory base/limit read 0, those of the prefetchable base/limit read 1 (64-bit).
//! - Hostile hardware: [`Hostile`] functions, raw header types, BARs with nonsense masks
//!   ([`SimBar::with_mask`]), and raw pokes ([`SimConfig::poke32`]) for cyclic capability
//!   lists, looping or overlapping bridges and the like.
//!
//! The builder methods ([`SimConfig::add`] and friends) panic on misuse (a slot taken, a bus
//! not reachable, capabilities that do not fit): they build test fixtures. The
//! [`ConfigSpace`] methods never panic.

use crate::model::BarKind;
use crate::regs::*;
use crate::{ConfigSpace, Sbdf};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

/// Ways a function can misbehave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Every read is all ones (there, but dead: indistinguishable from absent).
    AllOnes,
    /// The ID reads fine, every other register all ones.
    OnesAfterId,
    /// Every read returns a fresh pseudo-random value.
    Garbage,
    /// Every register reads the ID (the device ignores the offset).
    SameEverywhere,
}

/// A BAR to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimBar {
    kind: BarKind,
    size: u64,
    address: u64,
    prefetchable: bool,
    mask: Option<u64>,
}

impl SimBar {
    /// A 32-bit memory BAR of `size` (a power of two >= 16) at `address`.
    pub fn mem32(size: u64, address: u64) -> SimBar {
        SimBar {
            kind: BarKind::Mem32,
            size,
            address,
            prefetchable: false,
            mask: None,
        }
    }

    /// A 64-bit memory BAR (this slot and the next).
    pub fn mem64(size: u64, address: u64) -> SimBar {
        SimBar {
            kind: BarKind::Mem64,
            ..SimBar::mem32(size, address)
        }
    }

    /// An I/O BAR of `size` (a power of two >= 4) at port `address`.
    pub fn io(size: u64, address: u64) -> SimBar {
        SimBar {
            kind: BarKind::Io,
            ..SimBar::mem32(size, address)
        }
    }

    pub fn prefetchable(self) -> SimBar {
        SimBar {
            prefetchable: true,
            ..self
        }
    }

    /// Hostile: the writable address bits are `mask` instead of those of the size (a mask
    /// with holes, say, or 0 for a BAR whose writes are ignored).
    pub fn with_mask(self, mask: u64) -> SimBar {
        SimBar {
            mask: Some(mask),
            ..self
        }
    }

    fn def(&self) -> BarDef {
        let size_mask = !self.size.max(1).wrapping_sub(1);
        let (addr_bits, type_bits) = match self.kind {
            BarKind::Mem32 => (u64::from(BAR_MEM_ADDR), u32::from(self.prefetchable) << 3),
            BarKind::Mem64 => (
                !0xf_u64,
                BAR_MEM_TYPE_64 | u32::from(self.prefetchable) << 3,
            ),
            BarKind::Io => (u64::from(BAR_IO_ADDR), BAR_IO),
            BarKind::Rom => (u64::from(ROM_ADDR), 0),
        };
        BarDef {
            kind: self.kind,
            mask: self.mask.unwrap_or(size_mask & addr_bits),
            type_bits,
        }
    }
}

/// The SR-IOV capability of a simulated PF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSriov {
    pub total_vfs: u16,
    pub initial_vfs: u16,
    pub num_vfs: u16,
    pub vf_offset: u16,
    pub vf_stride: u16,
    pub vf_device: u16,
    /// VF Enable at the start.
    pub enabled: bool,
    /// VF Memory Space Enable at the start.
    pub vf_mse: bool,
    /// VF BARs (per-VF size, VF 0's address); 64-bit ones take two slots.
    pub bars: [Option<SimBar>; 6],
}

impl SimSriov {
    /// `total_vfs` VFs (InitialVFs the same), disabled, NumVFs 0, no VF BARs.
    pub fn new(total_vfs: u16, vf_offset: u16, vf_stride: u16, vf_device: u16) -> SimSriov {
        SimSriov {
            total_vfs,
            initial_vfs: total_vfs,
            num_vfs: 0,
            vf_offset,
            vf_stride,
            vf_device,
            enabled: false,
            vf_mse: false,
            bars: [None; 6],
        }
    }

    pub fn bar(mut self, index: usize, bar: SimBar) -> SimSriov {
        self.bars[index] = Some(bar);
        self
    }

    /// Starts with `num_vfs` VFs enabled (VF Enable and VF MSE set), as firmware might leave
    /// it.
    pub fn enabled(mut self, num_vfs: u16) -> SimSriov {
        self.num_vfs = num_vfs;
        self.enabled = true;
        self.vf_mse = true;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SimCap {
    Pm,
    Msi {
        vectors_log2: u8,
        addr64: bool,
    },
    Msix {
        table_size: u16,
        bir: u8,
    },
    Pcie {
        port_type: u8,
        ari_supported: bool,
        ari_enabled: bool,
    },
    Ssvid(u16, u16),
    Raw {
        id: u8,
        len: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SimExtCap {
    Aer,
    Acs,
    Ari { next_fn: u8 },
    Sriov(Box<SimSriov>),
    ReBar,
    Raw { id: u16, len: u16 },
}

/// A function to add to a [`SimConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDevice {
    vendor: u16,
    device: u16,
    class: u32,
    revision: u8,
    header: u8,
    subsystem: Option<(u16, u16)>,
    command: u16,
    status: u16,
    buses: (u8, u8),
    bars: [Option<SimBar>; 6],
    rom: Option<(u64, u64, bool)>,
    caps: Vec<SimCap>,
    ext_caps: Vec<SimExtCap>,
    hostile: Option<Hostile>,
    single: bool,
    command_mask: u16,
    interrupt_pin: u8,
}

impl SimDevice {
    /// A header type 0 function; `class` is base << 16 | sub << 8 | prog-if. Decoding off.
    pub fn endpoint(vendor: u16, device: u16, class: u32) -> SimDevice {
        SimDevice {
            vendor,
            device,
            class,
            revision: 1,
            header: HEADER_ENDPOINT,
            subsystem: None,
            command: 0,
            status: 0,
            buses: (0, 0),
            bars: [None; 6],
            rom: None,
            caps: Vec::new(),
            ext_caps: Vec::new(),
            hostile: None,
            single: false,
            command_mask: 0x0547,
            interrupt_pin: 0,
        }
    }

    /// Interrupt Pin (0x3d): 1..4 for INTA..INTD.
    pub fn pin(mut self, pin: u8) -> SimDevice {
        self.interrupt_pin = pin;
        self
    }

    /// A PCI-to-PCI bridge (header type 1, class 0x060400) with these bus numbers (the
    /// primary is set to the bus it is added on).
    pub fn bridge(vendor: u16, device: u16, secondary: u8, subordinate: u8) -> SimDevice {
        SimDevice {
            header: HEADER_BRIDGE,
            buses: (secondary, subordinate),
            command: CMD_IO | CMD_MEM | CMD_MASTER,
            ..SimDevice::endpoint(vendor, device, 0x06_04_00)
        }
    }

    /// A CardBus bridge (header type 2, class 0x060700).
    pub fn cardbus(vendor: u16, device: u16) -> SimDevice {
        SimDevice {
            header: HEADER_CARDBUS,
            ..SimDevice::endpoint(vendor, device, 0x06_07_00)
        }
    }

    /// The raw header type register (layout in bits 6:0; bit 7 is also set automatically on
    /// function 0 of a device with more functions, unless [`SimDevice::single_function`]).
    pub fn header_type(mut self, raw: u8) -> SimDevice {
        self.header = raw;
        self
    }

    /// Do not set the multi-function bit on this function 0 automatically.
    pub fn single_function(mut self) -> SimDevice {
        self.single = true;
        self
    }

    pub fn revision(mut self, revision: u8) -> SimDevice {
        self.revision = revision;
        self
    }

    /// Type 0: subsystem IDs at 0x2c.
    pub fn subsystem(mut self, vendor: u16, device: u16) -> SimDevice {
        self.subsystem = Some((vendor, device));
        self
    }

    /// COMMAND at the start (e.g. `CMD_IO | CMD_MEM | CMD_MASTER`, decoding on).
    pub fn command(mut self, command: u16) -> SimDevice {
        self.command = command;
        self
    }

    /// STATUS bits at the start (the capability-list bit is set automatically).
    pub fn status(mut self, status: u16) -> SimDevice {
        self.status = status;
        self
    }

    /// BAR `index` (0..6 for endpoints, 0..2 for bridges; a 64-bit BAR takes index + 1 too).
    pub fn bar(mut self, index: usize, bar: SimBar) -> SimDevice {
        self.bars[index] = Some(bar);
        self
    }

    /// An expansion ROM of `size` at `address`, enable bit as given.
    pub fn rom(mut self, size: u64, address: u64, enabled: bool) -> SimDevice {
        self.rom = Some((size, address, enabled));
        self
    }

    pub fn pm(mut self) -> SimDevice {
        self.caps.push(SimCap::Pm);
        self
    }

    /// MSI with 2^`vectors_log2` vectors.
    pub fn msi(mut self, vectors_log2: u8, addr64: bool) -> SimDevice {
        self.caps.push(SimCap::Msi {
            vectors_log2,
            addr64,
        });
        self
    }

    /// MSI-X with `table_size` entries, table and PBA in BAR `bir`.
    pub fn msix(mut self, table_size: u16, bir: u8) -> SimDevice {
        self.caps.push(SimCap::Msix { table_size, bir });
        self
    }

    /// A PCI Express capability (version 2) with this device/port type.
    pub fn pcie(mut self, port_type: u8) -> SimDevice {
        self.caps.push(SimCap::Pcie {
            port_type,
            ari_supported: false,
            ari_enabled: false,
        });
        self
    }

    /// On the PCIe capability added last: ARI Forwarding Supported, and Enable as given.
    pub fn ari_forwarding(mut self, enabled: bool) -> SimDevice {
        for c in self.caps.iter_mut().rev() {
            if let SimCap::Pcie {
                ari_supported,
                ari_enabled,
                ..
            } = c
            {
                *ari_supported = true;
                *ari_enabled = enabled;
                break;
            }
        }
        self
    }

    /// Bridge Subsystem Vendor ID capability.
    pub fn ssvid(mut self, vendor: u16, device: u16) -> SimDevice {
        self.caps.push(SimCap::Ssvid(vendor, device));
        self
    }

    /// A capability with this ID and length and nothing in it.
    pub fn raw_cap(mut self, id: u8, len: u16) -> SimDevice {
        self.caps.push(SimCap::Raw { id, len });
        self
    }

    pub fn aer(mut self) -> SimDevice {
        self.ext_caps.push(SimExtCap::Aer);
        self
    }

    pub fn acs(mut self) -> SimDevice {
        self.ext_caps.push(SimExtCap::Acs);
        self
    }

    /// ARI with this Next Function Number.
    pub fn ari(mut self, next_fn: u8) -> SimDevice {
        self.ext_caps.push(SimExtCap::Ari { next_fn });
        self
    }

    pub fn sriov(mut self, sriov: SimSriov) -> SimDevice {
        self.ext_caps.push(SimExtCap::Sriov(Box::new(sriov)));
        self
    }

    /// Resizable BAR (one BAR).
    pub fn rebar(mut self) -> SimDevice {
        self.ext_caps.push(SimExtCap::ReBar);
        self
    }

    /// An extended capability with this ID and length and nothing in it.
    pub fn raw_ext_cap(mut self, id: u16, len: u16) -> SimDevice {
        self.ext_caps.push(SimExtCap::Raw { id, len });
        self
    }

    /// Hostile: COMMAND ignores writes (decoding cannot be turned off).
    pub fn command_readonly(mut self) -> SimDevice {
        self.command_mask = 0;
        self
    }

    pub fn hostile(mut self, hostile: Hostile) -> SimDevice {
        self.hostile = Some(hostile);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BarDef {
    kind: BarKind,
    /// Writable address bits (64 for Mem64: the high half's are the upper 32).
    mask: u64,
    type_bits: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BarSlot {
    None,
    Lo(BarDef),
    Hi(BarDef),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SriovState {
    at: u16,
    bars: [BarSlot; 6],
    /// Live VFs (function indices), VF i at index i.
    vfs: Vec<usize>,
}

#[derive(Debug, Clone)]
struct SimFn {
    regs: Vec<u32>,
    /// Writable bits of registers without special handling: (dword index, mask).
    wmask: Vec<(usize, u32)>,
    command_mask: u16,
    link: usize,
    devfn: u8,
    layout: u8,
    bars: [BarSlot; 6],
    rom: Option<BarDef>,
    downstream: Option<usize>,
    /// PCIe capability offset.
    pcie: Option<u16>,
    sriov: Option<SriovState>,
    hostile: Option<Hostile>,
    caps: Vec<(u8, u16)>,
    ext_caps: Vec<(u16, u16)>,
    alive: bool,
    /// Keep the multi-function bit clear even with other functions.
    single: bool,
}

#[derive(Debug, Clone)]
struct Link {
    /// Function index + 1 by devfn (0: empty).
    slots: Box<[u32; 256]>,
    /// The bridge this bus is behind; `None` for a root bus.
    upstream: Option<usize>,
    bridges: Vec<usize>,
    pfs: Vec<usize>,
    /// Behind a PCIe root/downstream port: (port, dword index of its Device Control 2).
    port: Option<(usize, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Unknown,
    Unreachable,
    /// Link index, and the bus number that link has now.
    To(u32, u8),
}

#[derive(Debug)]
struct Sim {
    fns: Vec<SimFn>,
    links: Vec<Link>,
    roots: Vec<(u16, u8, usize)>,
    routes: Vec<(u16, Box<[Route; 256]>)>,
    violations: Vec<String>,
    rng: u64,
}

/// A simulated PCI hierarchy; see the module documentation.
#[derive(Debug)]
pub struct SimConfig {
    sim: RefCell<Sim>,
    reads: Cell<u64>,
    writes: Cell<u64>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::new()
    }
}

impl SimConfig {
    /// An empty hierarchy with one root bus: segment 0, bus 0.
    pub fn new() -> SimConfig {
        let s = SimConfig {
            sim: RefCell::new(Sim {
                fns: Vec::new(),
                links: Vec::new(),
                roots: Vec::new(),
                routes: Vec::new(),
                violations: Vec::new(),
                rng: 0x2545_f491_4f6c_dd1d,
            }),
            reads: Cell::new(0),
            writes: Cell::new(0),
        };
        s.add_root(0, 0);
        s
    }

    /// Another root bus (a second host bridge, or a segment).
    pub fn add_root(&self, segment: u16, bus: u8) {
        let mut sim = self.sim.borrow_mut();
        let link = sim.new_link(None);
        sim.roots.push((segment, bus, link));
        sim.invalidate();
    }

    /// Adds a function at `sbdf` (its bus must be reachable through the bridges' current
    /// registers). Panics on misuse: this builds test fixtures.
    pub fn add(&self, sbdf: Sbdf, dev: SimDevice) {
        let mut sim = self.sim.borrow_mut();
        let Some((link, number)) = sim.route(sbdf.segment(), sbdf.bus()) else {
            panic!("sim: bus of {sbdf} is not reachable");
        };
        assert_eq!(number, sbdf.bus(), "sim: {sbdf} would be a VF's bus");
        let devfn = sbdf.devfn();
        assert_eq!(
            sim.links[link].slots[usize::from(devfn)],
            0,
            "sim: {sbdf} taken"
        );
        let index = sim.fns.len();
        let f = build(&dev, link, devfn, sbdf.bus());
        let is_bridge = f.layout == HEADER_BRIDGE;
        let port = f.pcie.and_then(|at| {
            let t = ((f.regs[usize::from(at >> 2)] >> 20) & 0xf) as u8;
            matches!(
                t,
                PCIE_TYPE_ROOT_PORT | PCIE_TYPE_DOWNSTREAM | PCIE_TYPE_PCI_TO_PCIE
            )
            .then_some(usize::from((at + PCIE_DEVCTL2) >> 2))
        });
        let is_pf = f.sriov.is_some();
        sim.fns.push(f);
        sim.links[link].slots[usize::from(devfn)] = index as u32 + 1;
        if is_bridge {
            let down = sim.new_link(Some(index));
            sim.links[down].port = port.map(|d| (index, d));
            sim.fns[index].downstream = Some(down);
            sim.links[link].bridges.push(index);
            let mut bridges = core::mem::take(&mut sim.links[link].bridges);
            bridges.sort_by_key(|&b| sim.fns[b].devfn);
            sim.links[link].bridges = bridges;
        }
        if is_pf {
            sim.links[link].pfs.push(index);
            if dev
                .ext_caps
                .iter()
                .any(|c| matches!(c, SimExtCap::Sriov(s) if s.enabled))
            {
                sim.create_vfs(index);
            }
        }
        // Multi-function bit on function 0 of a device with several functions.
        let f0 = usize::from(devfn & !7);
        let others = (f0..f0 + 8).any(|d| d != f0 && sim.links[link].slots[d] != 0);
        let zero = sim.links[link].slots[f0];
        if zero != 0 && others {
            let z = zero as usize - 1;
            if !sim.fns[z].single {
                sim.fns[z].regs[3] |= u32::from(HEADER_MULTIFUNCTION) << 16;
            }
        }
        sim.invalidate();
    }

    /// Every BAR write made with decoding on (see the module documentation).
    pub fn violations(&self) -> Vec<String> {
        self.sim.borrow().violations.clone()
    }

    /// Config reads and writes so far.
    pub fn reads(&self) -> u64 {
        self.reads.get()
    }

    pub fn writes(&self) -> u64 {
        self.writes.get()
    }

    /// Sets both counters to 0.
    pub fn reset_counts(&self) {
        self.reads.set(0);
        self.writes.set(0);
    }

    /// Reads a dword without counting it (all ones if nothing answers).
    pub fn peek32(&self, sbdf: Sbdf, offset: u16) -> u32 {
        let mut sim = self.sim.borrow_mut();
        match sim.lookup(sbdf) {
            Some(i) => sim.fns[i]
                .regs
                .get(usize::from(offset >> 2))
                .copied()
                .unwrap_or(u32::MAX),
            None => u32::MAX,
        }
    }

    /// Stores a dword as is (no write masks, no side effects but re-routing), uncounted.
    /// Ignored if nothing answers at `sbdf` or `offset` is beyond its config space.
    pub fn poke32(&self, sbdf: Sbdf, offset: u16, value: u32) {
        let mut sim = self.sim.borrow_mut();
        if let Some(i) = sim.lookup(sbdf)
            && let Some(r) = sim.fns[i].regs.get_mut(usize::from(offset >> 2))
        {
            *r = value;
        }
        sim.invalidate();
    }

    /// Stores one byte as is (see [`SimConfig::poke32`]).
    pub fn poke8(&self, sbdf: Sbdf, offset: u16, value: u8) {
        let shift = (offset & 3) * 8;
        let old = self.peek32(sbdf, offset);
        self.poke32(
            sbdf,
            offset,
            (old & !(0xff << shift)) | (u32::from(value) << shift),
        );
    }

    /// Stores 16 bits as is (see [`SimConfig::poke32`]).
    pub fn poke16(&self, sbdf: Sbdf, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.peek32(sbdf, offset);
        self.poke32(
            sbdf,
            offset,
            (old & !(0xffff << shift)) | (u32::from(value) << shift),
        );
    }

    /// Where the builder put capability `id` of `sbdf`.
    pub fn cap_offset(&self, sbdf: Sbdf, id: u8) -> Option<u16> {
        let mut sim = self.sim.borrow_mut();
        let i = sim.lookup(sbdf)?;
        sim.fns[i].caps.iter().find(|c| c.0 == id).map(|c| c.1)
    }

    /// Where the builder put extended capability `id` of `sbdf`.
    pub fn ext_cap_offset(&self, sbdf: Sbdf, id: u16) -> Option<u16> {
        let mut sim = self.sim.borrow_mut();
        let i = sim.lookup(sbdf)?;
        sim.fns[i].ext_caps.iter().find(|c| c.0 == id).map(|c| c.1)
    }
}

impl ConfigSpace for SimConfig {
    fn read32(&self, sbdf: Sbdf, offset: u16) -> u32 {
        self.reads.set(self.reads.get() + 1);
        let mut sim = self.sim.borrow_mut();
        match sim.lookup(sbdf) {
            Some(i) => sim.read(i, offset),
            None => u32::MAX,
        }
    }

    fn write32(&self, sbdf: Sbdf, offset: u16, value: u32) {
        self.writes.set(self.writes.get() + 1);
        let mut sim = self.sim.borrow_mut();
        if let Some(i) = sim.lookup(sbdf) {
            sim.write(i, sbdf, offset, value);
        }
    }
}

/// Lays out a function's registers from its description.
fn build(dev: &SimDevice, link: usize, devfn: u8, bus: u8) -> SimFn {
    let pcie = dev.caps.iter().any(|c| matches!(c, SimCap::Pcie { .. }));
    let size = if pcie || !dev.ext_caps.is_empty() {
        usize::from(CONFIG_SPACE_SIZE / 4)
    } else {
        usize::from(LEGACY_CONFIG_SIZE / 4)
    };
    let mut f = SimFn {
        regs: vec![0; size],
        wmask: Vec::new(),
        command_mask: dev.command_mask,
        link,
        devfn,
        layout: dev.header & 0x7f,
        bars: [BarSlot::None; 6],
        rom: None,
        downstream: None,
        pcie: None,
        sriov: None,
        hostile: dev.hostile,
        caps: Vec::new(),
        ext_caps: Vec::new(),
        alive: true,
        single: dev.single,
    };
    let status = dev.status
        | if dev.caps.is_empty() {
            0
        } else {
            STATUS_CAP_LIST
        };
    f.regs[0] = u32::from(dev.vendor) | u32::from(dev.device) << 16;
    f.regs[1] = u32::from(dev.command) | u32::from(status) << 16;
    f.regs[2] = u32::from(dev.revision) | dev.class << 8;
    f.regs[3] = u32::from(dev.header) << 16;
    f.regs[0x3c / 4] = u32::from(dev.interrupt_pin) << 8;
    let nbars = match f.layout {
        HEADER_ENDPOINT => 6,
        HEADER_BRIDGE => 2,
        _ => 0,
    };
    let mut i = 0;
    while i < nbars {
        if let Some(b) = dev.bars[i] {
            let d = b.def();
            let value = initial_bar(&b, &d);
            f.regs[4 + i] = value as u32;
            f.bars[i] = BarSlot::Lo(d);
            if b.kind == BarKind::Mem64 && i + 1 < nbars {
                f.regs[5 + i] = (value >> 32) as u32;
                f.bars[i + 1] = BarSlot::Hi(d);
                i += 1;
            }
        }
        i += 1;
    }
    let rom_dword = match f.layout {
        HEADER_ENDPOINT => Some(12),
        HEADER_BRIDGE => Some(14),
        _ => None,
    };
    if let (Some((size, address, enabled)), Some(d)) = (dev.rom, rom_dword) {
        let def = SimBar {
            kind: BarKind::Rom,
            ..SimBar::mem32(size, address)
        }
        .def();
        f.regs[d] = (address & def.mask) as u32 | u32::from(enabled);
        f.rom = Some(def);
    }
    match f.layout {
        HEADER_ENDPOINT => {
            if let Some((v, d)) = dev.subsystem {
                f.regs[11] = u32::from(v) | u32::from(d) << 16;
            }
        }
        HEADER_BRIDGE => {
            f.regs[6] = u32::from(bus) | u32::from(dev.buses.0) << 8 | u32::from(dev.buses.1) << 16;
            // Prefetchable base and limit: 64-bit capable (read-only type nibbles 1).
            f.regs[9] = 0x0001_0001;
        }
        _ => {}
    }
    // Standard capabilities from 0x40.
    let mut at: u16 = HEADER_END;
    let mut prev_next: Option<usize> = None; // byte offset of the previous next pointer
    for cap in &dev.caps {
        let (id, len) = match cap {
            SimCap::Pm => (CAP_PM, 8),
            SimCap::Msi { .. } => (CAP_MSI, 0x18),
            SimCap::Msix { .. } => (CAP_MSIX, 0x0c),
            SimCap::Pcie { .. } => (CAP_PCIE, 0x3c),
            SimCap::Ssvid(..) => (CAP_SSVID, 8),
            SimCap::Raw { id, len } => (*id, (*len).max(4)),
        };
        assert!(at + len <= 0x100, "sim: capabilities do not fit");
        match prev_next {
            None => set8(&mut f.regs, usize::from(CAP_PTR), at as u8),
            Some(p) => set8(&mut f.regs, p, at as u8),
        }
        let d = usize::from(at >> 2);
        f.regs[d] = u32::from(id);
        f.caps.push((id, at));
        match *cap {
            SimCap::Pm => {
                f.regs[d] |= 0x0003 << 16; // version 3
                f.wmask.push((d + 1, 0x0000_8103));
            }
            SimCap::Msi {
                vectors_log2,
                addr64,
            } => {
                let ctl = u32::from(vectors_log2.min(7)) << 1 | u32::from(addr64) << 7;
                f.regs[d] |= ctl << 16;
                f.wmask.push((d, 0x0071_0000));
                f.wmask.push((d + 1, 0xffff_fffc));
                f.wmask.push((d + 2, 0xffff_ffff));
                f.wmask.push((d + 3, 0x0000_ffff));
            }
            SimCap::Msix { table_size, bir } => {
                f.regs[d] |= u32::from(table_size.saturating_sub(1) & 0x7ff) << 16;
                f.regs[d + 1] = u32::from(bir & 7);
                f.regs[d + 2] = u32::from(bir & 7) | 0x800;
                f.wmask.push((d, 0xc000_0000));
            }
            SimCap::Pcie {
                port_type,
                ari_supported,
                ari_enabled,
            } => {
                f.regs[d] |= (2 | u32::from(port_type & 0xf) << 4) << 16;
                f.pcie = Some(at);
                f.wmask.push((d + 2, 0x0000_7fff)); // Device Control
                f.wmask.push((d + 4, 0x0000_0fff)); // Link Control
                let dc2 = d + usize::from(PCIE_DEVCTL2 >> 2);
                if ari_supported {
                    f.regs[dc2 - 1] |= PCIE_ARI_FORWARDING;
                    f.wmask.push((dc2, PCIE_ARI_FORWARDING | 0x1f));
                } else {
                    f.wmask.push((dc2, 0x1f));
                }
                if ari_enabled {
                    f.regs[dc2] |= PCIE_ARI_FORWARDING;
                }
            }
            SimCap::Ssvid(v, dv) => f.regs[d + 1] = u32::from(v) | u32::from(dv) << 16,
            SimCap::Raw { .. } => {}
        }
        prev_next = Some(usize::from(at) + 1);
        at += len.div_ceil(4) * 4;
    }
    // Extended capabilities from 0x100.
    let mut at: u16 = EXT_CAP_START;
    let mut prev: Option<usize> = None;
    for cap in &dev.ext_caps {
        let (id, version, len): (u16, u8, u16) = match cap {
            SimExtCap::Aer => (EXT_AER, 2, 0x48),
            SimExtCap::Acs => (EXT_ACS, 1, 8),
            SimExtCap::Ari { .. } => (EXT_ARI, 1, 8),
            SimExtCap::Sriov(_) => (EXT_SRIOV, 1, SRIOV_CAP_LEN),
            SimExtCap::ReBar => (EXT_REBAR, 1, 0x0c),
            SimExtCap::Raw { id, len } => (*id, 1, (*len).max(4)),
        };
        assert!(
            at + len <= CONFIG_SPACE_SIZE,
            "sim: extended capabilities do not fit"
        );
        assert!(
            size == 1024,
            "sim: extended capabilities need a 4 KiB config space"
        );
        if let Some(p) = prev {
            f.regs[p] |= u32::from(at) << 20;
        }
        let d = usize::from(at >> 2);
        f.regs[d] = u32::from(id) | u32::from(version) << 16;
        f.ext_caps.push((id, at));
        match cap {
            SimExtCap::Ari { next_fn } => f.regs[d + 1] = u32::from(*next_fn) << 8,
            SimExtCap::ReBar => {
                f.regs[d + 1] = 0x0000_0ff0; // 1 MiB .. 128 MiB
                f.regs[d + 2] = 0x0000_0020 | 1 << 8; // one BAR; BAR 0 at 2 MiB
            }
            SimExtCap::Acs => f.wmask.push((d + 1, 0x007f_0000)),
            SimExtCap::Sriov(s) => {
                let ctrl = u32::from(s.enabled) | u32::from(s.vf_mse) << 3;
                f.regs[d + 1] = 0; // SR-IOV Capabilities
                f.regs[d + 2] = ctrl;
                f.regs[d + 3] = u32::from(s.initial_vfs) | u32::from(s.total_vfs) << 16;
                f.regs[d + 4] = u32::from(s.num_vfs);
                f.regs[d + 5] = u32::from(s.vf_offset) | u32::from(s.vf_stride) << 16;
                f.regs[d + 6] = u32::from(s.vf_device) << 16;
                f.regs[d + 7] = 0x553; // supported page sizes
                f.regs[d + 8] = 1; // 4 KiB
                let mut bars = [BarSlot::None; 6];
                let mut i = 0;
                while i < 6 {
                    if let Some(b) = s.bars[i] {
                        let def = b.def();
                        let value = initial_bar(&b, &def);
                        f.regs[d + 9 + i] = value as u32;
                        bars[i] = BarSlot::Lo(def);
                        if b.kind == BarKind::Mem64 && i + 1 < 6 {
                            f.regs[d + 10 + i] = (value >> 32) as u32;
                            bars[i + 1] = BarSlot::Hi(def);
                            i += 1;
                        }
                    }
                    i += 1;
                }
                f.sriov = Some(SriovState {
                    at,
                    bars,
                    vfs: Vec::new(),
                });
            }
            SimExtCap::Aer | SimExtCap::Raw { .. } => {}
        }
        prev = Some(d);
        at += len.div_ceil(4) * 4;
    }
    f
}

fn set8(regs: &mut [u32], byte: usize, value: u8) {
    let shift = (byte & 3) * 8;
    regs[byte / 4] = (regs[byte / 4] & !(0xff << shift)) | u32::from(value) << shift;
}

impl Sim {
    fn new_link(&mut self, upstream: Option<usize>) -> usize {
        self.links.push(Link {
            slots: Box::new([0; 256]),
            upstream,
            bridges: Vec::new(),
            pfs: Vec::new(),
            port: None,
        });
        self.links.len() - 1
    }

    fn invalidate(&mut self) {
        for (_, r) in &mut self.routes {
            r.fill(Route::Unknown);
        }
    }

    /// The bus that (segment, bus) reaches now: (link, its current number). The number
    /// differs from `bus` when the bus is beyond a link's own number but inside its bridge's
    /// range (only VFs answer there).
    fn route(&self, segment: u16, bus: u8) -> Option<(usize, u8)> {
        if let Some(&(_, b, l)) = self
            .roots
            .iter()
            .find(|&&(s, b, _)| s == segment && b == bus)
        {
            return Some((l, b));
        }
        for &(s, root_bus, root) in &self.roots {
            if s != segment {
                continue;
            }
            let (mut link, mut number) = (root, root_bus);
            // Every hop goes down the physical tree, so this ends; bounded all the same.
            for _ in 0..=self.links.len() {
                if bus == number {
                    return Some((link, number));
                }
                let next = self.links[link].bridges.iter().find_map(|&b| {
                    let f = &self.fns[b];
                    let r = f.regs[6];
                    let (sec, sub) = ((r >> 8) as u8, (r >> 16) as u8);
                    (f.alive && sec <= bus && bus <= sub)
                        .then_some(())
                        .and(f.downstream)
                        .map(|d| (d, sec))
                });
                match next {
                    Some((d, sec)) => {
                        link = d;
                        number = sec;
                    }
                    None if self.links[link].upstream.is_some() => return Some((link, number)),
                    None => break,
                }
            }
        }
        None
    }

    fn cached_route(&mut self, segment: u16, bus: u8) -> Option<(usize, u8)> {
        let i = match self.routes.iter().position(|(s, _)| *s == segment) {
            Some(i) => i,
            None => {
                self.routes.push((segment, Box::new([Route::Unknown; 256])));
                self.routes.len() - 1
            }
        };
        match self.routes[i].1[usize::from(bus)] {
            Route::To(l, n) => Some((l as usize, n)),
            Route::Unreachable => None,
            Route::Unknown => {
                let r = self.route(segment, bus);
                self.routes[i].1[usize::from(bus)] = match r {
                    Some((l, n)) => Route::To(l as u32, n),
                    None => Route::Unreachable,
                };
                r
            }
        }
    }

    /// A port above `link` that only lets device 0 through (no ARI forwarding).
    fn port_blocks(&self, link: &Link) -> bool {
        match link.port {
            Some((port, dc2)) => self.fns[port]
                .regs
                .get(dc2)
                .is_none_or(|&v| v & PCIE_ARI_FORWARDING == 0),
            None => false,
        }
    }

    /// The function that answers at `sbdf` now.
    fn lookup(&mut self, sbdf: Sbdf) -> Option<usize> {
        let (link, number) = self.cached_route(sbdf.segment(), sbdf.bus())?;
        let l = &self.links[link];
        let devfn = sbdf.devfn();
        let own_bus = sbdf.bus() == number;
        if own_bus && devfn >= 8 && self.port_blocks(l) {
            return None;
        }
        if own_bus {
            let slot = l.slots[usize::from(devfn)];
            if slot != 0 {
                return Some(slot as usize - 1);
            }
        }
        let rid = i64::from(sbdf.bdf());
        for &pf in &l.pfs {
            let f = &self.fns[pf];
            let Some(s) = &f.sriov else { continue };
            if s.vfs.is_empty() {
                continue;
            }
            let d = usize::from(s.at >> 2);
            let pf_rid = i64::from(number) << 8 | i64::from(f.devfn);
            let os = f.regs[d + 5];
            let (offset, stride) = (i64::from(os as u16), i64::from((os >> 16) as u16));
            let delta = rid - pf_rid - offset;
            if delta < 0 {
                continue;
            }
            let i = if stride == 0 {
                if delta == 0 { Some(0) } else { None }
            } else if delta % stride == 0 {
                Some(delta / stride)
            } else {
                None
            };
            if let Some(i) = i
                && let Some(&vf) = s.vfs.get(i as usize)
            {
                return Some(vf);
            }
        }
        None
    }

    fn next_random(&mut self) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 16) as u32
    }

    fn read(&mut self, i: usize, offset: u16) -> u32 {
        let d = usize::from(offset >> 2);
        match self.fns[i].hostile {
            None => {}
            Some(Hostile::AllOnes) => return u32::MAX,
            Some(Hostile::OnesAfterId) => {
                return if d == 0 {
                    self.fns[i].regs[0]
                } else {
                    u32::MAX
                };
            }
            Some(Hostile::Garbage) => return self.next_random(),
            Some(Hostile::SameEverywhere) => return self.fns[i].regs[0],
        }
        self.fns[i].regs.get(d).copied().unwrap_or(u32::MAX)
    }

    fn write(&mut self, i: usize, sbdf: Sbdf, offset: u16, value: u32) {
        let d = usize::from(offset >> 2);
        let f = &self.fns[i];
        if f.hostile.is_some() || d >= f.regs.len() {
            return;
        }
        let layout = f.layout;
        let bar_dwords = match layout {
            HEADER_ENDPOINT => 4..10,
            HEADER_BRIDGE => 4..6,
            _ => 0..0,
        };
        let rom_dword = match layout {
            HEADER_ENDPOINT => Some(12),
            HEADER_BRIDGE => Some(14),
            _ => None,
        };
        let cmd = f.regs[1] as u16;
        if d == 1 {
            let f = &mut self.fns[i];
            let mask = f.command_mask;
            let status = ((f.regs[1] >> 16) as u16) & !((value >> 16) as u16 & 0xf900);
            let command = (cmd & !mask) | (value as u16 & mask);
            f.regs[1] = u32::from(command) | u32::from(status) << 16;
            return;
        }
        if bar_dwords.contains(&d) {
            let slot = self.fns[i].bars[d - 4];
            self.bar_write(i, sbdf, offset, slot, cmd, value, "BAR", (d - 4) as u8);
            return;
        }
        if Some(d) == rom_dword {
            let slot = match self.fns[i].rom {
                Some(def) => BarSlot::Lo(def),
                None => BarSlot::None,
            };
            self.bar_write(i, sbdf, offset, slot, cmd, value, "ROM", 6);
            return;
        }
        if layout == HEADER_BRIDGE && d == 6 {
            self.fns[i].regs[6] = value;
            self.invalidate();
            return;
        }
        if layout == HEADER_BRIDGE && (8..=11).contains(&d) && cmd & CMD_MEM != 0 {
            self.violations.push(format!(
                "{sbdf}: write {value:#010x} to memory window register ({offset:#x}) with \
                 decoding on (COMMAND {cmd:#06x})"
            ));
        }
        if layout == HEADER_BRIDGE && (7..=12).contains(&d) {
            let mask = match d {
                7 => 0x0000_f0f0,
                8 | 9 => 0xfff0_fff0,
                _ => 0xffff_ffff,
            };
            let r = &mut self.fns[i].regs[d];
            *r = (*r & !mask) | (value & mask);
            return;
        }
        if d == 15 {
            let mask = if layout == HEADER_BRIDGE {
                0xffff_00ff
            } else {
                0x0000_00ff
            };
            let r = &mut self.fns[i].regs[d];
            *r = (*r & !mask) | (value & mask);
            return;
        }
        if let Some(s) = &self.fns[i].sriov {
            let base = usize::from(s.at >> 2);
            if (base..base + usize::from(SRIOV_CAP_LEN / 4)).contains(&d) {
                self.sriov_write(i, sbdf, offset, d - base, value);
                return;
            }
        }
        let f = &mut self.fns[i];
        for &(wd, mask) in &f.wmask {
            if wd == d {
                f.regs[d] = (f.regs[d] & !mask) | (value & mask);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bar_write(
        &mut self,
        i: usize,
        sbdf: Sbdf,
        offset: u16,
        slot: BarSlot,
        cmd: u16,
        value: u32,
        what: &str,
        index: u8,
    ) {
        let on = match slot {
            BarSlot::Lo(def) | BarSlot::Hi(def) if def.kind == BarKind::Io => cmd & CMD_IO != 0,
            BarSlot::Lo(_) | BarSlot::Hi(_) => cmd & CMD_MEM != 0,
            BarSlot::None => cmd & (CMD_IO | CMD_MEM) != 0,
        };
        if on {
            let name = if what == "ROM" {
                format!("ROM ({offset:#x})")
            } else {
                format!("{what} {index} ({offset:#x})")
            };
            self.violations.push(format!(
                "{sbdf}: write {value:#010x} to {name} with decoding on (COMMAND {cmd:#06x})"
            ));
        }
        let d = usize::from(offset >> 2);
        let r = &mut self.fns[i].regs[d];
        *r = apply_bar(slot, *r, value);
    }

    fn sriov_write(&mut self, i: usize, sbdf: Sbdf, offset: u16, rel: usize, value: u32) {
        let Some(s) = &self.fns[i].sriov else { return };
        let base = usize::from(s.at >> 2);
        let ctrl = self.fns[i].regs[base + 2] as u16;
        let vfe = ctrl & SRIOV_CTRL_VFE != 0;
        match rel {
            2 => {
                let new = value as u16 & 0x1f;
                self.fns[i].regs[base + 2] = u32::from(new);
                let now = new & SRIOV_CTRL_VFE != 0;
                if now && !vfe {
                    self.create_vfs(i);
                } else if !now && vfe {
                    self.destroy_vfs(i);
                }
            }
            4 if !vfe => self.fns[i].regs[base + 4] = value & 0xffff,
            8 => self.fns[i].regs[base + 8] = value,
            9..=14 => {
                let slot = s.bars[rel - 9];
                if ctrl & SRIOV_CTRL_VF_MSE != 0 {
                    self.violations.push(format!(
                        "{sbdf}: write {value:#010x} to VF BAR {} ({offset:#x}) with VF MSE on \
                         (SR-IOV control {ctrl:#06x})",
                        rel - 9
                    ));
                }
                let r = &mut self.fns[i].regs[base + rel];
                *r = apply_bar(slot, *r, value);
            }
            _ => {}
        }
    }

    fn create_vfs(&mut self, pf: usize) {
        let Some(s) = &self.fns[pf].sriov else { return };
        let base = usize::from(s.at >> 2);
        let regs = &self.fns[pf].regs;
        let total = (regs[base + 3] >> 16) as u16;
        let num = (regs[base + 4] as u16).min(total);
        let class_rev = regs[2];
        let subsystem = regs[11];
        let pcie = self.fns[pf].pcie.is_some();
        let ari = self.fns[pf].ext_caps.iter().any(|c| c.0 == EXT_ARI);
        let link = self.fns[pf].link;
        let mut vfs = Vec::with_capacity(usize::from(num));
        for _ in 0..num {
            let size = if pcie { 1024 } else { 64 };
            let mut regs = vec![0u32; size];
            regs[0] = u32::MAX; // VF Vendor and Device ID read 0xffff
            regs[2] = class_rev;
            regs[11] = subsystem;
            let mut caps = Vec::new();
            let mut ext_caps = Vec::new();
            if pcie {
                regs[1] = u32::from(STATUS_CAP_LIST) << 16;
                regs[13] = 0x40;
                regs[0x40 / 4] =
                    u32::from(CAP_PCIE) | (2 | u32::from(PCIE_TYPE_ENDPOINT) << 4) << 16;
                caps.push((CAP_PCIE, 0x40));
                if ari {
                    regs[0x100 / 4] = u32::from(EXT_ARI) | 1 << 16;
                    ext_caps.push((EXT_ARI, 0x100));
                }
            }
            self.fns.push(SimFn {
                regs,
                wmask: Vec::new(),
                command_mask: CMD_MASTER,
                link,
                devfn: 0,
                layout: HEADER_ENDPOINT,
                bars: [BarSlot::None; 6],
                rom: None,
                downstream: None,
                pcie: pcie.then_some(0x40),
                sriov: None,
                hostile: None,
                caps,
                ext_caps,
                alive: true,
                single: true,
            });
            vfs.push(self.fns.len() - 1);
        }
        if let Some(s) = &mut self.fns[pf].sriov {
            s.vfs = vfs;
        }
    }

    fn destroy_vfs(&mut self, pf: usize) {
        let vfs = match &mut self.fns[pf].sriov {
            Some(s) => core::mem::take(&mut s.vfs),
            None => return,
        };
        for vf in vfs {
            self.fns[vf].alive = false;
        }
    }
}

/// A BAR register after `value` is written to it: the writable bits change, the rest
/// (type bits, hardwired zeros, read-only address bits) stay.
fn apply_bar(slot: BarSlot, old: u32, value: u32) -> u32 {
    let mask = match slot {
        BarSlot::None => 0,
        BarSlot::Lo(def) if def.kind == BarKind::Rom => def.mask as u32 | ROM_ENABLE,
        BarSlot::Lo(def) => def.mask as u32,
        BarSlot::Hi(def) => (def.mask >> 32) as u32,
    };
    (old & !mask) | (value & mask)
}

/// A BAR register's first value: the address's writable bits (all of them for a BAR with
/// a mask of its own) and the type bits.
fn initial_bar(b: &SimBar, def: &BarDef) -> u64 {
    let address = if b.mask.is_some() {
        b.address & !0xf
    } else {
        b.address & def.mask
    };
    address | u64::from(def.type_bits)
}

/// What [`large_tree`] built, to check an enumeration against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LargeTree {
    /// Every function, in depth-first order: (address, vendor, device, header type layout).
    pub functions: Vec<(Sbdf, u16, u16, u8)>,
    /// Buses with something on them or behind a bridge: all 256.
    pub buses: usize,
    /// Memory and I/O BARs of all functions.
    pub bars: usize,
}

/// A 256-bus segment with 2059 functions, like a big PCIe server: bus 0 has a host bridge,
/// 15 root ports and a multi-function ISA/SATA/SMBus device; each root port leads to a switch
/// (upstream port, internal bus with 15 downstream ports), and each downstream port to an
/// 8-function endpoint (functions with a 64-bit prefetchable BAR, a 32-bit BAR, function 0
/// an I/O BAR too; PCIe, PM, MSI-X, AER and ARI capabilities). Every other downstream port
/// has ARI Forwarding enabled, so both scan paths (device/function and the ARI chain) are
/// taken. Decoding is on everywhere, as firmware leaves it.
pub fn large_tree() -> (SimConfig, LargeTree) {
    let sim = SimConfig::new();
    let mut functions = Vec::new();
    let mut bars = 0;
    let s = |b: u8, d: u8, f: u8| Sbdf::new(0, b, d, f).unwrap_or(Sbdf::from_devfn(0, b, 0));
    let on = CMD_IO | CMD_MEM | CMD_MASTER;
    let add = |sim: &SimConfig, at: Sbdf, dev: SimDevice, functions: &mut Vec<_>| {
        functions.push((at, dev.vendor, dev.device, dev.header & 0x7f));
        sim.add(at, dev);
    };
    add(
        &sim,
        s(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00),
        &mut functions,
    );
    let mut mem32 = 0xc000_0000u64;
    let mut mem64 = 0x80_0000_0000u64;
    let mut io = 0x1000u64;
    for r in 1..=15u8 {
        let b = 1 + (r - 1) * 17;
        add(
            &sim,
            s(0, r, 0),
            SimDevice::bridge(0x8086, 0x7000 + u16::from(r), b, b + 16)
                .pcie(PCIE_TYPE_ROOT_PORT)
                .msi(0, true)
                .pm()
                .aer()
                .acs(),
            &mut functions,
        );
        add(
            &sim,
            s(b, 0, 0),
            SimDevice::bridge(0x10b5, 0x8796, b + 1, b + 16)
                .pcie(PCIE_TYPE_UPSTREAM)
                .aer(),
            &mut functions,
        );
        for k in 0..15u8 {
            let bus = b + 2 + k;
            let ari = k % 2 == 1;
            add(
                &sim,
                s(b + 1, k, 0),
                SimDevice::bridge(0x10b5, 0x8796, bus, bus)
                    .pcie(PCIE_TYPE_DOWNSTREAM)
                    .ari_forwarding(ari)
                    .aer()
                    .acs(),
                &mut functions,
            );
            for func in 0..8u8 {
                let mut dev = SimDevice::endpoint(0x15b3, 0x1017, 0x02_00_00)
                    .subsystem(0x15b3, 0x0020)
                    .command(on)
                    .bar(0, SimBar::mem64(0x4000, mem64).prefetchable())
                    .bar(2, SimBar::mem32(0x1000, mem32))
                    .pcie(PCIE_TYPE_ENDPOINT)
                    .pm()
                    .msix(16, 2)
                    .aer()
                    .ari(if func < 7 { func + 1 } else { 0 });
                mem64 += 0x4000;
                mem32 += 0x1000;
                bars += 2;
                if func == 0 {
                    dev = dev.bar(4, SimBar::io(0x20, io));
                    io += 0x20;
                    bars += 1;
                }
                add(&sim, s(bus, 0, func), dev, &mut functions);
            }
        }
    }
    let lpc = SimDevice::endpoint(0x8086, 0x2918, 0x06_01_00).command(on);
    add(&sim, s(0, 0x1f, 0), lpc, &mut functions);
    let sata = SimDevice::endpoint(0x8086, 0x2922, 0x01_06_01)
        .command(on)
        .bar(5, SimBar::mem32(0x1000, 0xfebf_0000))
        .msi(0, true);
    add(&sim, s(0, 0x1f, 2), sata, &mut functions);
    let smbus = SimDevice::endpoint(0x8086, 0x2930, 0x0c_05_00)
        .command(on)
        .bar(4, SimBar::io(0x40, 0x0700));
    add(&sim, s(0, 0x1f, 3), smbus, &mut functions);
    bars += 2;
    // Depth-first order: the root ports' subtrees come before 00:1f.x, which were added last;
    // the builder added everything in that order already.
    (
        sim,
        LargeTree {
            functions,
            buses: 256,
            bars,
        },
    )
}
