//! The NIC uplink's platform layer (issue 13): what the drivers in `drivers` need from dom0,
//! and bringing up the function `hwdom::uplink::pick` chose.
//!
//! DMA addresses are dom0's guest-physical addresses, which are its virtual addresses (the
//! identity map): under Xen, the IOMMU context Xen set up when dom0 reported the device
//! (`PHYSDEVOP_pci_device_add`) translates them to dom0's machine frames. Buffers come from
//! the heap (RAM, write-back); device registers are mapped uncached.
//!
//! No interrupt is bound: the service loop polls the NIC (`POLL_ACTIVE_NS` while frames move,
//! `POLL_IDLE_NS` otherwise). Binding MSI-X through `PHYSDEVOP_map_pirq` is left for later;
//! polling keeps the driver independent of the interrupt path and its bound is stated here.

use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;

use drivers::nic::{DmaMemory, Mmio, Nic, NicCounters, NicError};
use drivers::virtio::{AccessPlatform, Shared};
use hwdom::Platform as _;
use hwdom::platform::EcamWindow;
use hwdom::uplink::{Driver, Pick};
use pci::{ConfigSpace, Sbdf};
use report::{PciBarKind, PciFunction, UplinkState, UplinkSummary};
use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::Transport as _;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{Command, ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

use crate::pcicfg::Dom0Config;
use crate::platform::Dom0Platform;

/// Poll period while the uplink moved frames in the last [`ACTIVE_WINDOW_NS`], and when idle.
pub const POLL_ACTIVE_NS: u64 = 1_000_000;
pub const POLL_IDLE_NS: u64 = 10_000_000;
pub const ACTIVE_WINDOW_NS: u64 = 100_000_000;

const PAGE: usize = 4096;

/// virtio-drivers' view of dom0's memory.
#[derive(Debug)]
pub struct Dom0Hal;

// SAFETY: `dma_alloc` hands out zeroed, page-aligned heap memory whose identity address is the
// device address (see the module documentation) and which stays allocated until `dma_dealloc`;
// `mmio_phys_to_virt` is called only for BAR ranges `bring_up` mapped uncached first; `share`
// returns the identity address of memory the caller keeps alive until `unshare`.
unsafe impl Hal for Dom0Hal {
    fn dma_alloc(pages: usize, _: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(layout) = pages
            .checked_mul(PAGE)
            .filter(|&n| n > 0)
            .and_then(|n| Layout::from_size_align(n, PAGE).ok())
        else {
            return (0, NonNull::dangling());
        };
        // SAFETY: a layout of non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        match NonNull::new(p) {
            Some(nn) => (p as u64, nn),
            // virtio-drivers turns address 0 into `Error::DmaError`.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let Ok(layout) = Layout::from_size_align(pages * PAGE, PAGE) else {
            return -1;
        };
        // SAFETY: `vaddr` came from `dma_alloc` with this many pages (the caller's contract).
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _: usize) -> NonNull<u8> {
        // Identity map; `bring_up` mapped every memory BAR of the device before the transport
        // looked for its structures.
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as u64
    }

    unsafe fn unshare(_: PhysAddr, _: NonNull<[u8]>, _: BufferDirection) {}
}

/// Config space for virtio-drivers' PCI root, on one segment.
struct Cam {
    windows: Vec<EcamWindow>,
    cfg: Dom0Config,
    segment: u16,
}

impl Cam {
    fn new(windows: Vec<EcamWindow>, segment: u16) -> Cam {
        Cam {
            cfg: Dom0Config::new(windows.clone()),
            windows,
            segment,
        }
    }

    fn sbdf(&self, df: DeviceFunction) -> Option<Sbdf> {
        Sbdf::new(self.segment, df.bus, df.device, df.function)
    }
}

impl ConfigurationAccess for Cam {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        self.sbdf(df)
            .map_or(u32::MAX, |s| self.cfg.read32(s, u16::from(offset)))
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        if let Some(s) = self.sbdf(df) {
            self.cfg.write32(s, u16::from(offset), data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Cam::new(self.windows.clone(), self.segment)
    }
}

/// Descriptors per virtqueue, and the RX buffer size (a 1514-byte frame and the 12-byte
/// `virtio_net_hdr`, no mergeable buffers).
const QUEUE: usize = 64;
const RX_BUF: usize = 2048;
const MAX_FRAME: usize = 1514;

type VirtioTransport = AccessPlatform<Shared<PciTransport>>;

/// virtio-net as a switch port: virtio-drivers' raw driver, with dom0 holding each buffer
/// the device owns until the device gives it back.
pub struct VirtioNic {
    net: VirtIONetRaw<Dom0Hal, VirtioTransport, QUEUE>,
    shared: Shared<PciTransport>,
    mac: [u8; 6],
    rx: Vec<Option<Box<[u8]>>>,
    tx: Vec<Option<Box<[u8]>>>,
    counters: NicCounters,
}

fn virtio_err(what: &str, e: virtio_drivers::Error) -> NicError {
    NicError::Device(format!("{what}: {e}"))
}

impl VirtioNic {
    fn new(transport: PciTransport) -> Result<VirtioNic, String> {
        let shared = Shared::new(transport);
        let t = AccessPlatform::new(shared.clone()).map_err(|e| e.to_string())?;
        let mut net = VirtIONetRaw::<Dom0Hal, _, QUEUE>::new(t)
            .map_err(|e| format!("virtio-net initialisation: {e}"))?;
        let mut rx: Vec<Option<Box<[u8]>>> = (0..QUEUE).map(|_| None).collect();
        for _ in 0..QUEUE {
            let mut buf = vec![0u8; RX_BUF].into_boxed_slice();
            // SAFETY: `buf` is kept in `rx[token]`, untouched, until `receive_complete` for
            // that token (or the device is reset in `drop`).
            let token = unsafe { net.receive_begin(&mut buf) }
                .map_err(|e| format!("posting RX buffers: {e}"))?;
            let slot = rx
                .get_mut(usize::from(token))
                .ok_or_else(|| format!("RX token {token} beyond the queue"))?;
            *slot = Some(buf);
        }
        Ok(VirtioNic {
            mac: net.mac_address(),
            net,
            shared,
            rx,
            tx: (0..QUEUE).map(|_| None).collect(),
            counters: NicCounters::default(),
        })
    }

    /// The feature bits negotiated (VIRTIO_F_ACCESS_PLATFORM among them).
    pub fn features(&self) -> u64 {
        self.shared.negotiated()
    }

    /// Take back the TX buffers the device finished with.
    fn reclaim(&mut self) -> Result<(), NicError> {
        while let Some(t) = self.net.poll_transmit() {
            let buf = self
                .tx
                .get_mut(usize::from(t))
                .and_then(Option::take)
                .ok_or_else(|| NicError::Device(format!("TX token {t} was not in flight")))?;
            // SAFETY: the buffer `transmit_begin` returned token `t` for.
            unsafe { self.net.transmit_complete(t, &buf) }
                .map_err(|e| virtio_err("TX completion", e))?;
        }
        Ok(())
    }
}

impl Drop for VirtioNic {
    fn drop(&mut self) {
        // Reset the device before its buffers are freed: no DMA after this.
        self.shared
            .clone()
            .set_status(virtio_drivers::transport::DeviceStatus::empty());
    }
}

impl Nic for VirtioNic {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&mut self) -> bool {
        self.shared.net_link_up()
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError> {
        self.reclaim()?;
        if !(14..=MAX_FRAME).contains(&frame.len()) {
            self.counters.tx_dropped += 1;
            return Err(NicError::BadLength(frame.len()));
        }
        if !self.net.can_send() {
            self.counters.tx_dropped += 1;
            return Err(NicError::Full);
        }
        // The header into a small buffer, then header and frame appended once each (the
        // frame's bytes are not zero-filled first: one pass over them, not two).
        let mut head = [0u8; 64];
        let hdr = self
            .net
            .fill_buffer_header(&mut head)
            .map_err(|e| virtio_err("TX header", e))?;
        let mut buf = Vec::with_capacity(hdr + frame.len());
        let head = head
            .get(..hdr)
            .ok_or_else(|| NicError::Device(format!("TX header of {hdr} bytes")))?;
        buf.extend_from_slice(head);
        buf.extend_from_slice(frame);
        let buf = buf.into_boxed_slice();
        // SAFETY: `buf` is kept in `tx[token]`, untouched, until `transmit_complete` (or the
        // device is reset in `drop`).
        let token = unsafe { self.net.transmit_begin(&buf) }.map_err(|e| virtio_err("TX", e))?;
        let slot = self
            .tx
            .get_mut(usize::from(token))
            .ok_or_else(|| NicError::Device(format!("TX token {token} beyond the queue")))?;
        *slot = Some(buf);
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += frame.len() as u64;
        Ok(())
    }

    fn receive(&mut self) -> Result<Option<Vec<u8>>, NicError> {
        // A bad frame is counted and skipped; at most a queue's worth per call.
        for _ in 0..QUEUE {
            let Some(t) = self.net.poll_receive() else {
                return Ok(None);
            };
            let mut buf = self
                .rx
                .get_mut(usize::from(t))
                .and_then(Option::take)
                .ok_or_else(|| NicError::Device(format!("RX token {t} was not posted")))?;
            // SAFETY: the buffer `receive_begin` returned token `t` for.
            let got = unsafe { self.net.receive_complete(t, &mut buf) };
            // The device's length is untrusted: the frame must lie inside the buffer.
            let frame = got
                .ok()
                .and_then(|(hdr, len)| buf.get(hdr..hdr.checked_add(len)?))
                .filter(|f| (14..=MAX_FRAME).contains(&f.len()))
                .map(<[u8]>::to_vec);
            // SAFETY: as in `new`: kept in `rx[token]` until completed.
            let token = unsafe { self.net.receive_begin(&mut buf) }
                .map_err(|e| virtio_err("re-posting an RX buffer", e))?;
            let slot = self
                .rx
                .get_mut(usize::from(token))
                .ok_or_else(|| NicError::Device(format!("RX token {token} beyond the queue")))?;
            *slot = Some(buf);
            match frame {
                Some(f) => {
                    self.counters.rx_frames += 1;
                    self.counters.rx_bytes += f.len() as u64;
                    return Ok(Some(f));
                }
                None => self.counters.rx_errors += 1,
            }
        }
        Ok(None)
    }

    fn transmit_batch(&mut self, frames: &[Vec<u8>]) -> Result<(), NicError> {
        self.shared.begin_batch();
        let r = drivers::nic::transmit_each(self, frames, Self::transmit, |n| {
            // The queue is full of this batch: let the device at it now (`transmit` takes
            // back what it finished).
            n.shared.end_batch();
            n.shared.begin_batch();
            n.counters.tx_dropped -= 1;
            true
        });
        self.shared.end_batch();
        r
    }

    fn receive_batch(&mut self, max: usize, out: &mut Vec<Vec<u8>>) -> Result<(), NicError> {
        self.shared.begin_batch();
        let r = drivers::nic::receive_each(self, max, out);
        self.shared.end_batch();
        r
    }

    fn counters(&self) -> NicCounters {
        NicCounters {
            doorbells: self.shared.notifications(),
            ..self.counters
        }
    }

    fn model(&self) -> &'static str {
        "virtio-net"
    }
}

/// A memory BAR as `drivers::nic::Mmio`: 32-bit volatile accesses inside the BAR only.
#[derive(Debug)]
pub struct BarMmio {
    base: u64,
    len: u64,
}

impl BarMmio {
    fn inside(&self, offset: u32) -> Option<u64> {
        let o = u64::from(offset);
        (o.is_multiple_of(4) && o + 4 <= self.len).then_some(self.base + o)
    }
}

impl Mmio for BarMmio {
    fn read32(&self, offset: u32) -> u32 {
        match self.inside(offset) {
            // SAFETY: inside a memory BAR `bring_up` mapped uncached; aligned.
            Some(a) => unsafe { core::ptr::read_volatile(a as *const u32) },
            None => u32::MAX,
        }
    }

    fn write32(&mut self, offset: u32, value: u32) {
        if let Some(a) = self.inside(offset) {
            // SAFETY: as in `read32`.
            unsafe { core::ptr::write_volatile(a as *mut u32, value) }
        }
    }
}

/// Heap blocks a driver's device reaches by DMA. Never freed: a NIC lives as long as dom0
/// (one taken out of service is reset, and its blocks stay allocated, never reused).
#[derive(Debug, Default)]
pub struct HeapDma {
    blocks: Vec<(u64, u64)>,
}

impl HeapDma {
    /// Whether `[addr, addr + len)` lies inside one block this allocator handed out.
    fn inside(&self, addr: u64, len: usize) -> bool {
        let Some(end) = addr.checked_add(len as u64) else {
            return false;
        };
        self.blocks.iter().any(|&(b, l)| addr >= b && end <= b + l)
    }
}

impl DmaMemory for HeapDma {
    fn alloc(&mut self, len: usize, align: usize) -> Option<u64> {
        let layout = Layout::from_size_align(len.max(1), align.clamp(16, PAGE)).ok()?;
        // SAFETY: a layout of non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        if p.is_null() {
            return None;
        }
        self.blocks.push((p as u64, len as u64));
        Some(p as u64)
    }

    fn read(&self, addr: u64, out: &mut [u8]) {
        if !self.inside(addr, out.len()) {
            out.fill(0xff);
            return;
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: inside a live block of ours (checked above); volatile because the device
            // writes it.
            *b = unsafe { core::ptr::read_volatile((addr as *const u8).add(i)) };
        }
    }

    fn write(&mut self, addr: u64, data: &[u8]) {
        if !self.inside(addr, data.len()) {
            return;
        }
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: as in `read`; volatile because the device reads it.
            unsafe { core::ptr::write_volatile((addr as *mut u8).add(i), b) };
        }
    }
}

/// The memory BARs of `f` (address, size), assigned and sized.
fn memory_bars(f: &PciFunction) -> Vec<(u8, u64, u64)> {
    f.bars
        .iter()
        .filter(|b| matches!(b.kind, PciBarKind::Mem32 | PciBarKind::Mem64))
        .filter(|b| b.size > 0 && b.address != 0)
        .map(|b| (b.index, b.address, b.size))
        .collect()
}

/// Bring up what `pick` chose. The summary always describes what happened; the NIC only
/// when it is up.
pub fn bring_up(
    p: &Dom0Platform,
    windows: &[EcamWindow],
    pick: Pick<'_>,
) -> (Option<Box<dyn Nic>>, UplinkSummary) {
    let (sbdf, driver, f) = match pick {
        Pick::Refuse { summary, .. } => return (None, *summary),
        Pick::Drive {
            sbdf,
            driver,
            function,
        } => (sbdf, driver, function),
    };
    let mut sum = UplinkSummary {
        sbdf: f.sbdf.clone(),
        ids: format!("{:04x}:{:04x}", f.vendor, f.device),
        model: driver.name().into(),
        service: format!(
            "polled every {} ms while frames move, {} ms when idle (no interrupt bound)",
            POLL_ACTIVE_NS / 1_000_000,
            POLL_IDLE_NS / 1_000_000
        ),
        ..UplinkSummary::default()
    };
    match start(p, windows, sbdf, driver, f) {
        Ok((mut nic, features)) => {
            sum.mac = mac_text(nic.mac());
            sum.link_up = nic.link_up();
            sum.features = features;
            sum.state = UplinkState::Up;
            (Some(nic), sum)
        }
        Err(e) => {
            sum.state = UplinkState::Failed;
            sum.error = Some(e);
            (None, sum)
        }
    }
}

pub fn mac_text(m: [u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

fn start(
    p: &Dom0Platform,
    windows: &[EcamWindow],
    sbdf: Sbdf,
    driver: Driver,
    f: &PciFunction,
) -> Result<(Box<dyn Nic>, u64), String> {
    let bars = memory_bars(f);
    for &(i, addr, size) in &bars {
        p.map_uncached(addr, addr.saturating_add(size))
            .map_err(|e| format!("BAR{i} at {addr:#x}: cannot map it: {e}"))?;
    }
    // Memory decoding and bus mastering (the device's DMA); Xen's vPCI maps the BARs into
    // dom0's p2m when decoding is on.
    let cfg = Dom0Config::new(windows.to_vec());
    let cmd = cfg.read16(sbdf, 0x04);
    let want = cmd | 0x0002 | 0x0004;
    if cmd != want {
        let word = cfg.read32(sbdf, 0x04);
        cfg.write32(sbdf, 0x04, (word & 0xffff_0000) | u32::from(want));
    }
    let started = start_driver(windows, sbdf, driver, cmd, f);
    if started.is_err() && cmd != want {
        // A device dom0 does not drive keeps the decoding and bus mastering it had.
        let word = cfg.read32(sbdf, 0x04);
        cfg.write32(sbdf, 0x04, (word & 0xffff_0000) | u32::from(cmd));
    }
    started
}

fn start_driver(
    windows: &[EcamWindow],
    sbdf: Sbdf,
    driver: Driver,
    cmd: u16,
    f: &PciFunction,
) -> Result<(Box<dyn Nic>, u64), String> {
    match driver {
        Driver::VirtioNet => {
            let mut root = PciRoot::new(Cam::new(windows.to_vec(), sbdf.segment()));
            let df = DeviceFunction {
                bus: sbdf.bus(),
                device: sbdf.device(),
                function: sbdf.function(),
            };
            root.set_command(
                df,
                Command::MEMORY_SPACE | Command::BUS_MASTER | Command::from_bits_truncate(cmd),
            );
            let t = PciTransport::new::<Dom0Hal, _>(&mut root, df)
                .map_err(|e| format!("virtio PCI transport: {e}"))?;
            let nic = VirtioNic::new(t)?;
            let features = nic.features();
            Ok((Box::new(nic), features))
        }
        Driver::E1000e => {
            // BAR 0: the 128 KiB register space (82574 §9.3.6.1).
            let (_, base, len) = memory_bars(f)
                .into_iter()
                .find(|&(i, _, _)| i == 0)
                .ok_or("e1000e: no memory BAR 0")?;
            let nic = drivers::e1000e::E1000e::init(BarMmio { base, len }, HeapDma::default())
                .map_err(|e| drivers::e1000e::describe(&e))?;
            Ok((Box::new(nic), 0))
        }
    }
}
