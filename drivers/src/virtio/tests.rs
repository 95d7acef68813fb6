//! The wrapper against a transport that records what the driver did.

use super::*;
use virtio_drivers::device::net::VirtIONetRaw;

/// A transport with fixed device features that records the driver's writes. Queue setup is
/// accepted and nothing else happens (no DMA: the tests stop at feature negotiation).
#[derive(Debug, Default)]
struct Fake {
    offered: u64,
    written: Option<u64>,
    status: u32,
    resets: u32,
    link: u8,
    notified: Vec<u16>,
}

impl Transport for Fake {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        self.offered
    }
    fn write_driver_features(&mut self, f: u64) {
        self.written = Some(f);
    }
    fn max_queue_size(&mut self, _: u16) -> u32 {
        0
    }
    fn notify(&mut self, q: u16) {
        self.notified.push(q);
    }
    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::from_bits_truncate(self.status)
    }
    fn set_status(&mut self, s: DeviceStatus) {
        if s.is_empty() {
            self.resets += 1;
        }
        self.status = s.bits();
    }
    fn set_guest_page_size(&mut self, _: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, _: u16, _: u32, _: PhysAddr, _: PhysAddr, _: PhysAddr) {}
    fn queue_unset(&mut self, _: u16) {}
    fn queue_used(&mut self, _: u16) -> bool {
        false
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<V: FromBytes + IntoBytes>(&self, at: usize) -> virtio_drivers::Result<V> {
        net_config(self.link, at)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        _: usize,
        _: V,
    ) -> virtio_drivers::Result<()> {
        Ok(())
    }
}

/// `virtio_net_config` (virtio 1.2 §5.1.4) read at `at`: MAC 52:54:00:12:34:56, status
/// (bit 0 = link up) from `link`.
pub(super) fn net_config<V: FromBytes>(link: u8, at: usize) -> virtio_drivers::Result<V> {
    let mut cfg = [0u8; 64];
    cfg[..8].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56, link, 0]);
    cfg.get(at..at + core::mem::size_of::<V>())
        .and_then(|b| V::read_from_bytes(b).ok())
        .ok_or(virtio_drivers::Error::ConfigSpaceTooSmall)
}

const NET_MAC: u64 = 1 << 5;
const NET_STATUS: u64 = 1 << 16;

#[test]
fn refuses_a_device_whose_dma_bypasses_the_iommu() {
    let f = Fake {
        offered: F_VERSION_1 | NET_MAC,
        ..Fake::default()
    };
    let e = AccessPlatform::new(f).unwrap_err();
    assert_eq!(
        e,
        Refused::NoAccessPlatform {
            offered: F_VERSION_1 | NET_MAC
        }
    );
    assert!(e.to_string().contains("iommu_platform=on"), "{e}");
    let f = Fake {
        offered: F_ACCESS_PLATFORM | NET_MAC,
        ..Fake::default()
    };
    assert!(matches!(
        AccessPlatform::new(f),
        Err(Refused::Legacy { .. })
    ));
}

/// The driver above negotiates its own features; the wrapper adds bit 33 and nothing else,
/// and never a bit the device did not offer (here: the device offers GSO bits the driver does
/// not take).
#[test]
fn accepts_access_platform_alongside_the_drivers_features() {
    let offered = F_VERSION_1 | F_ACCESS_PLATFORM | NET_MAC | NET_STATUS | (1 << 11) | (1 << 0);
    let f = Fake {
        offered,
        ..Fake::default()
    };
    let mut t = AccessPlatform::new(f).unwrap();
    assert_eq!(t.inner.resets, 1, "reset before reading the features");
    // What virtio-drivers' net driver asks for, minus the device-specific bits (private there).
    use virtio_drivers::device::common::Feature;
    let negotiated = t.begin_init(Feature::VERSION_1 | Feature::RING_EVENT_IDX);
    assert_eq!(
        negotiated,
        Feature::VERSION_1,
        "the device does not offer EVENT_IDX"
    );
    let written = t.inner.written.unwrap();
    assert_eq!(written, F_VERSION_1 | F_ACCESS_PLATFORM);
    assert_eq!(written & !offered, 0, "only offered bits");
    assert_ne!(written & F_ACCESS_PLATFORM, 0);
    assert_eq!(t.negotiated, written);
}

/// virtio-drivers' net driver stops with an error (no panic) when the device has no queues.
#[test]
fn a_device_without_queues_is_an_error() {
    struct NoHal;
    // SAFETY: never called: queue creation fails on max_queue_size 0 before any allocation.
    #[allow(unsafe_code)]
    unsafe impl virtio_drivers::Hal for NoHal {
        fn dma_alloc(
            _: usize,
            _: virtio_drivers::BufferDirection,
        ) -> (PhysAddr, core::ptr::NonNull<u8>) {
            (0, core::ptr::NonNull::dangling())
        }
        unsafe fn dma_dealloc(_: PhysAddr, _: core::ptr::NonNull<u8>, _: usize) -> i32 {
            0
        }
        unsafe fn mmio_phys_to_virt(_: PhysAddr, _: usize) -> core::ptr::NonNull<u8> {
            core::ptr::NonNull::dangling()
        }
        unsafe fn share(
            _: core::ptr::NonNull<[u8]>,
            _: virtio_drivers::BufferDirection,
        ) -> PhysAddr {
            0
        }
        unsafe fn unshare(
            _: PhysAddr,
            _: core::ptr::NonNull<[u8]>,
            _: virtio_drivers::BufferDirection,
        ) {
        }
    }
    let f = Fake {
        offered: F_VERSION_1 | F_ACCESS_PLATFORM | NET_MAC,
        ..Fake::default()
    };
    let t = AccessPlatform::new(f).unwrap();
    assert!(VirtIONetRaw::<NoHal, _, 16>::new(t).is_err());
}

/// `Shared` lets dom0 read what the driver negotiated and the live link status.
#[test]
fn shared_sees_negotiation_and_link() {
    let f = Fake {
        offered: F_VERSION_1 | F_ACCESS_PLATFORM | NET_MAC | NET_STATUS,
        link: 1,
        ..Fake::default()
    };
    let shared = Shared::new(f);
    let handle = shared.clone();
    assert_eq!(handle.negotiated(), 0);
    assert!(
        handle.net_link_up(),
        "STATUS not negotiated yet: assumed up"
    );
    let mut t = AccessPlatform::new(shared).unwrap();
    // As virtio-drivers' net driver writes them (its feature type is private).
    t.write_driver_features(F_VERSION_1 | NET_STATUS);
    assert_eq!(
        handle.negotiated(),
        F_VERSION_1 | F_ACCESS_PLATFORM | NET_STATUS
    );
    assert!(handle.net_link_up());
    handle.inner.borrow_mut().link = 0;
    assert!(!handle.net_link_up(), "link down read live");
}

/// Inside a batch the driver's notifications are held, and one per queue is made at its end;
/// outside, each goes through at once. Every one made is counted.
#[test]
fn a_batch_makes_one_notification_per_queue() {
    let shared = Shared::new(Fake::default());
    let mut driver = shared.clone();
    driver.notify(1);
    assert_eq!(shared.inner.borrow().notified, [1]);
    shared.begin_batch();
    for _ in 0..45 {
        driver.notify(1);
    }
    driver.notify(0);
    driver.notify(0);
    assert_eq!(shared.inner.borrow().notified, [1], "held");
    shared.end_batch();
    assert_eq!(shared.inner.borrow().notified, [1, 0, 1]);
    assert_eq!(shared.notifications(), 3);
    // An empty batch makes none; a queue beyond the mask is never held.
    shared.begin_batch();
    driver.notify(40);
    shared.end_batch();
    assert_eq!(shared.inner.borrow().notified, [1, 0, 1, 40]);
    assert_eq!(shared.notifications(), 4);
}
