//! A simulated modern virtio-net device (virtio 1.2 §2.7 split virtqueues, §5.1 network device)
//! under virtio-drivers' `VirtIONetRaw`, behind [`AccessPlatform`]: the driver's real
//! descriptor tables, available and used rings live in host memory handed out by a test `Hal`
//! (host addresses are the "device" addresses, as dom0's are under Xen's IOMMU), and the device
//! side walks them as QEMU's would: TX chains read and recorded, RX buffers filled with a
//! `virtio_net_hdr` and a frame. A device that misbehaves (a used id it was never given, a
//! length shorter than the header) must give errors, not panics.
//!
//! Test-only `unsafe`: the device reads and writes the driver's DMA memory by address, which
//! is what a device does; every address comes from [`TestHal`] or from a descriptor the driver
//! wrote, and the driver keeps that memory alive while the device owns it.
#![allow(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::ptr::NonNull;
use std::alloc::{Layout, alloc_zeroed, dealloc};

use virtio_drivers::device::net::VirtIONetRaw;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use super::*;

const PAGE: usize = 4096;
const QSIZE: usize = 16;
/// `virtio_net_hdr` of a modern device without mergeable buffers (virtio 1.2 §5.1.6).
const HDR: usize = 12;
const NEXT: u16 = 1;
const WRITE: u16 = 2;

/// Host memory as DMA memory: the device address is the host address.
struct TestHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory that stays allocated until
// `dma_dealloc`; `share` returns the address of memory the driver keeps alive until `unshare`.
unsafe impl Hal for TestHal {
    fn dma_alloc(pages: usize, _: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = Layout::from_size_align(pages * PAGE, PAGE).expect("layout");
        // SAFETY: non-zero size (virtio-drivers never asks for 0 pages).
        let p = unsafe { alloc_zeroed(layout) };
        let nn = NonNull::new(p).expect("test allocation");
        (p as u64, nn)
    }
    unsafe fn dma_dealloc(_: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * PAGE, PAGE).expect("layout");
        // SAFETY: allocated by `dma_alloc` with this layout (the caller's contract).
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }
    unsafe fn mmio_phys_to_virt(_: PhysAddr, _: usize) -> NonNull<u8> {
        NonNull::dangling()
    }
    unsafe fn share(buffer: NonNull<[u8]>, _: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as u64
    }
    unsafe fn unshare(_: PhysAddr, _: NonNull<[u8]>, _: BufferDirection) {}
}

/// Where the driver put one queue (`queue_set`).
#[derive(Debug, Clone, Copy)]
struct Queue {
    desc: u64,
    avail: u64,
    used: u64,
    /// Next available entry the device has not taken.
    seen: u16,
    /// The device's used index.
    used_idx: u16,
}

/// What the device holds; shared with the test through an `Rc`.
#[derive(Debug, Default)]
struct Device {
    queues: [Option<Queue>; 2],
    /// RX buffers posted: (head id, address, length of the writable buffer).
    rx_posted: VecDeque<(u16, u64, u32)>,
    /// Frames the driver sent (without their header), and the header bytes of each.
    sent: Vec<Vec<u8>>,
    headers: Vec<Vec<u8>>,
    notifies: u32,
}

// SAFETY (for the helpers below): `at` is an address inside memory the driver allocated
// through `TestHal` (its rings) or gave the device in a descriptor, alive while the device
// owns it; accesses are unaligned-safe reads and writes of plain bytes.
fn read<const N: usize>(at: u64) -> [u8; N] {
    let mut b = [0u8; N];
    // SAFETY: see above.
    unsafe { core::ptr::copy_nonoverlapping(at as *const u8, b.as_mut_ptr(), N) };
    b
}
fn write(at: u64, data: &[u8]) {
    // SAFETY: see above.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), at as *mut u8, data.len()) };
}
fn u16_at(at: u64) -> u16 {
    u16::from_le_bytes(read::<2>(at))
}

/// One descriptor: (addr, len, flags, next).
fn desc(q: &Queue, i: u16) -> (u64, u32, u16, u16) {
    let b = read::<16>(q.desc + 16 * u64::from(i % QSIZE as u16));
    (
        u64::from_le_bytes(b[..8].try_into().unwrap()),
        u32::from_le_bytes(b[8..12].try_into().unwrap()),
        u16::from_le_bytes([b[12], b[13]]),
        u16::from_le_bytes([b[14], b[15]]),
    )
}

/// Put (id, len) in the used ring and publish it.
fn push_used(q: &mut Queue, id: u32, len: u32) {
    let slot = q.used + 4 + 8 * u64::from(q.used_idx % QSIZE as u16);
    write(slot, &id.to_le_bytes());
    write(slot + 4, &len.to_le_bytes());
    q.used_idx = q.used_idx.wrapping_add(1);
    write(q.used + 2, &q.used_idx.to_le_bytes());
}

impl Device {
    /// The driver notified queue `n`: take what it made available.
    fn notified(&mut self, n: u16) {
        self.notifies += 1;
        let Some(mut q) = self.queues.get(usize::from(n)).copied().flatten() else {
            return;
        };
        let avail_idx = u16_at(q.avail + 2);
        while q.seen != avail_idx {
            let head = u16_at(q.avail + 4 + 2 * u64::from(q.seen % QSIZE as u16));
            q.seen = q.seen.wrapping_add(1);
            // Walk the chain (bounded by the queue size: a loop is a driver bug).
            let mut bytes = Vec::new();
            let mut i = head;
            for _ in 0..QSIZE {
                let (addr, len, flags, next) = desc(&q, i);
                if n == 0 {
                    assert_ne!(flags & WRITE, 0, "RX buffers are device-writable");
                    self.rx_posted.push_back((head, addr, len));
                } else {
                    assert_eq!(flags & WRITE, 0, "TX buffers are device-readable");
                    let mut b = alloc::vec![0u8; len as usize];
                    // SAFETY: as `read`: a buffer the driver gave the device.
                    unsafe {
                        core::ptr::copy_nonoverlapping(addr as *const u8, b.as_mut_ptr(), b.len())
                    };
                    bytes.extend_from_slice(&b);
                }
                if flags & NEXT == 0 {
                    break;
                }
                i = next;
            }
            if n == 1 {
                self.headers.push(bytes[..HDR].to_vec());
                self.sent.push(bytes[HDR..].to_vec());
                push_used(&mut q, u32::from(head), 0);
            }
        }
        self.queues[usize::from(n)] = Some(q);
    }

    /// Deliver `frame` into the next posted RX buffer, as (`id`, `len`) in the used ring
    /// (normally the buffer's head and the bytes written; a hostile test overrides them).
    fn deliver(&mut self, frame: &[u8], hostile: Option<(u32, u32)>) -> bool {
        let (Some(mut q), Some((head, addr, room))) = (self.queues[0], self.rx_posted.pop_front())
        else {
            return false;
        };
        let n = (HDR + frame.len()).min(room as usize);
        let mut b = alloc::vec![0u8; HDR];
        b.extend_from_slice(frame);
        write(addr, &b[..n]);
        let (id, len) = hostile.unwrap_or((u32::from(head), n as u32));
        push_used(&mut q, id, len);
        self.queues[0] = Some(q);
        true
    }
}

/// The transport: fixed features, the device state behind an `Rc` the test keeps too.
#[derive(Debug, Clone)]
struct SimNet {
    offered: u64,
    status: u32,
    dev: Rc<RefCell<Device>>,
}

impl Transport for SimNet {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        self.offered
    }
    fn write_driver_features(&mut self, _: u64) {}
    fn max_queue_size(&mut self, _: u16) -> u32 {
        QSIZE as u32
    }
    fn notify(&mut self, q: u16) {
        self.dev.borrow_mut().notified(q);
    }
    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.status)
    }
    fn set_status(&mut self, s: DeviceStatus) {
        self.status = s.bits();
    }
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, q: u16, size: u32, desc: PhysAddr, driver: PhysAddr, device: PhysAddr) {
        assert_eq!(size as usize, QSIZE);
        self.dev.borrow_mut().queues[usize::from(q)] = Some(Queue {
            desc,
            avail: driver,
            used: device,
            seen: 0,
            used_idx: 0,
        });
    }
    fn queue_unset(&mut self, q: u16) {
        self.dev.borrow_mut().queues[usize::from(q)] = None;
    }
    fn queue_used(&mut self, q: u16) -> bool {
        self.dev.borrow().queues[usize::from(q)].is_some()
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<V: FromBytes + IntoBytes>(&self, at: usize) -> virtio_drivers::Result<V> {
        super::tests::net_config(1, at)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        _: usize,
        _: V,
    ) -> virtio_drivers::Result<()> {
        Ok(())
    }
}

type Net = VirtIONetRaw<TestHal, AccessPlatform<SimNet>, QSIZE>;

fn bring_up() -> (Net, Rc<RefCell<Device>>) {
    let dev = Rc::new(RefCell::new(Device::default()));
    let t = SimNet {
        offered: F_VERSION_1 | F_ACCESS_PLATFORM | (1 << 5) | (1 << 16),
        status: 0,
        dev: dev.clone(),
    };
    let t = AccessPlatform::new(t).expect("ACCESS_PLATFORM offered");
    (Net::new(t).expect("driver up on the simulated device"), dev)
}

fn frame(i: u8, len: usize) -> Vec<u8> {
    (0..len).map(|k| (k as u8).wrapping_mul(7) ^ i).collect()
}

/// Frames cross both virtqueues intact: RX buffers posted, filled by the device with a header
/// and a frame and returned with their tokens; TX frames sent after the driver's header, their
/// buffers given back; more frames than the queue holds, so the rings wrap.
#[test]
fn frames_cross_the_virtqueues_of_a_simulated_device() {
    let (mut net, dev) = bring_up();
    assert_eq!(net.mac_address(), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    // Post every RX buffer, as dom0 does at start.
    let mut rx: Vec<Option<Vec<u8>>> = (0..QSIZE).map(|_| None).collect();
    for _ in 0..QSIZE {
        let mut buf = alloc::vec![0u8; 2048];
        // SAFETY: `buf` is kept in `rx[token]`, untouched, until `receive_complete`.
        let t = unsafe { net.receive_begin(&mut buf) }.unwrap();
        rx[usize::from(t)] = Some(buf);
    }
    assert_eq!(dev.borrow().rx_posted.len(), QSIZE);
    for round in 0..3u8 {
        // Device → driver: QSIZE frames of various sizes, each re-posted after it is read.
        for i in 0..QSIZE as u8 {
            let f = frame(round ^ i, 60 + usize::from(i) * 90);
            assert!(dev.borrow_mut().deliver(&f, None));
            let t = net.poll_receive().expect("a used RX buffer");
            let mut buf = rx[usize::from(t)].take().unwrap();
            // SAFETY: the buffer `receive_begin` returned token `t` for.
            let (hdr, len) = unsafe { net.receive_complete(t, &mut buf) }.unwrap();
            assert_eq!((hdr, &buf[hdr..hdr + len]), (HDR, &f[..]));
            // SAFETY: as above.
            let t = unsafe { net.receive_begin(&mut buf) }.unwrap();
            rx[usize::from(t)] = Some(buf);
        }
        // Driver → device.
        for i in 0..QSIZE as u8 {
            let f = frame(0x80 ^ round ^ i, 1514 - usize::from(i) * 50);
            let mut buf = alloc::vec![0u8; HDR + f.len()];
            let hdr = net.fill_buffer_header(&mut buf).unwrap();
            assert_eq!(hdr, HDR);
            buf[hdr..].copy_from_slice(&f);
            // SAFETY: `buf` stays untouched until `transmit_complete` below.
            let t = unsafe { net.transmit_begin(&buf) }.unwrap();
            assert_eq!(net.poll_transmit(), Some(t));
            // SAFETY: the buffer `transmit_begin` returned token `t` for.
            unsafe { net.transmit_complete(t, &buf) }.unwrap();
            assert_eq!(dev.borrow().sent.last().unwrap(), &f);
            assert_eq!(dev.borrow().headers.last().unwrap(), &[0u8; HDR]);
        }
    }
    assert_eq!(dev.borrow().sent.len(), 3 * QSIZE);
    assert!(dev.borrow().notifies as usize >= 3 * QSIZE, "TX notified");
}

/// A device that returns an RX buffer under another id, or a length shorter than the header,
/// gets an error from the driver (which dom0 counts and survives), never a panic.
#[test]
fn a_misbehaving_device_gives_errors_not_panics() {
    let (mut net, dev) = bring_up();
    let mut bufs: Vec<Vec<u8>> = (0..2).map(|_| alloc::vec![0u8; 2048]).collect();
    let mut tokens = Vec::new();
    for b in &mut bufs {
        // SAFETY: the buffers outlive the driver's use of them (completed or dropped with it).
        tokens.push(unsafe { net.receive_begin(b) }.unwrap());
    }
    // Used under the id of the second buffer while the first is next: a wrong token.
    assert!(
        dev.borrow_mut()
            .deliver(&frame(1, 100), Some((u32::from(tokens[1]), 112)))
    );
    let t = net.poll_receive().unwrap();
    assert_eq!(t, tokens[1], "the driver reports the device's id");
    // SAFETY: `bufs[0]` is the buffer posted first, which the driver expects next.
    let e = unsafe { net.receive_complete(tokens[0], &mut bufs[0]) };
    assert!(e.is_err(), "{e:?}");
    // A length shorter than the virtio-net header.
    let (mut net, dev) = bring_up();
    let mut buf = alloc::vec![0u8; 2048];
    // SAFETY: `buf` outlives the completion below.
    let t = unsafe { net.receive_begin(&mut buf) }.unwrap();
    assert!(
        dev.borrow_mut()
            .deliver(&frame(2, 100), Some((u32::from(t), 4)))
    );
    assert_eq!(net.poll_receive(), Some(t));
    // SAFETY: the buffer posted for `t`.
    let e = unsafe { net.receive_complete(t, &mut buf) };
    assert!(e.is_err(), "{e:?}");
}
