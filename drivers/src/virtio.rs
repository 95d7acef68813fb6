//! virtio-net through the `virtio-drivers` crate, behind Xen's IOMMU.
//!
//! A PVH dom0 always runs behind an IOMMU (Xen refuses to boot one without), and Xen maps
//! dom0's guest-physical addresses there: a device that translates its DMA through the IOMMU
//! reaches dom0's buffers at the addresses dom0 knows. A virtio device does that only when
//! VIRTIO_F_ACCESS_PLATFORM (bit 33, virtio 1.2 §6) is negotiated; without it the device
//! writes to *machine* addresses, which under Xen are not dom0's (another domain's memory, or
//! Xen's). virtio-drivers 0.13 never accepts the bit, so [`AccessPlatform`] wraps its
//! transport: it refuses a device that does not offer the bit and accepts it for one that
//! does. Everything else passes through unchanged.

use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use core::fmt;

use virtio_drivers::PhysAddr;
use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// VIRTIO_F_ACCESS_PLATFORM: the device's DMA goes through the platform's IOMMU.
pub const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// VIRTIO_F_VERSION_1: a modern (virtio 1.x) device.
pub const F_VERSION_1: u64 = 1 << 32;

/// Why a virtio device was refused before its driver touched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The device does not offer VIRTIO_F_ACCESS_PLATFORM: its DMA would bypass the IOMMU
    /// (QEMU: add `iommu_platform=on` to the device).
    NoAccessPlatform { offered: u64 },
    /// Not a modern device (VIRTIO_F_VERSION_1 missing): legacy devices cannot negotiate bit 33.
    Legacy { offered: u64 },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NoAccessPlatform { offered } => write!(
                f,
                "the device does not offer VIRTIO_F_ACCESS_PLATFORM (features {offered:#x}): its \
                 DMA would bypass Xen's IOMMU and reach machine addresses that are not dom0's \
                 (QEMU: iommu_platform=on)"
            ),
            Refused::Legacy { offered } => write!(
                f,
                "a legacy virtio device (no VIRTIO_F_VERSION_1, features {offered:#x}); only modern \
                 devices can use the IOMMU (QEMU: disable-legacy=on)"
            ),
        }
    }
}

/// A transport that negotiates VIRTIO_F_ACCESS_PLATFORM in addition to what the driver above
/// it accepts.
#[derive(Debug)]
pub struct AccessPlatform<T: Transport> {
    inner: T,
    /// What the driver last wrote (with bit 33), for the report.
    pub negotiated: u64,
}

impl<T: Transport> AccessPlatform<T> {
    /// Resets the device and checks its feature bits; refuses a device whose DMA would not go
    /// through the IOMMU.
    pub fn new(mut inner: T) -> Result<Self, Refused> {
        inner.set_status(DeviceStatus::empty());
        let offered = inner.read_device_features();
        if offered & F_VERSION_1 == 0 {
            return Err(Refused::Legacy { offered });
        }
        if offered & F_ACCESS_PLATFORM == 0 {
            return Err(Refused::NoAccessPlatform { offered });
        }
        Ok(AccessPlatform {
            inner,
            negotiated: 0,
        })
    }
}

impl<T: Transport> Transport for AccessPlatform<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        // Offered (checked in `new`), so accepting it is allowed (virtio 1.2 §2.2).
        self.negotiated = driver_features | F_ACCESS_PLATFORM;
        self.inner.write_driver_features(self.negotiated);
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.inner.notify(queue)
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        self.inner.read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> virtio_drivers::Result<()> {
        self.inner.write_config_space(offset, value)
    }
}

/// A transport shared between the driver that owns it and dom0, which reads what the driver
/// keeps to itself: the features negotiated, and the device's link status later on
/// (virtio-drivers reads `status` only once). Single-threaded: dom0 reads only between the
/// driver's calls, so a borrow never meets another.
///
/// It also holds the driver's queue notifications back while dom0 queues a batch
/// ([`Shared::begin_batch`]), and makes one per queue at [`Shared::end_batch`]: virtio-drivers
/// notifies on almost every buffer (its `should_notify` compares `avail_idx` with the device's
/// `avail_event` without the spec's window), and each notification is a write to the device,
/// under Xen an exit to the hypervisor and to QEMU. A later notification is always allowed
/// (virtio 1.2 §2.7.13: the device then sees every buffer made available before it).
#[derive(Debug)]
pub struct Shared<T: Transport> {
    inner: Rc<RefCell<T>>,
    written: Rc<Cell<u64>>,
    batch: Rc<Batch>,
}

/// Notifications held during a batch (a bit per queue below 32), and those made.
#[derive(Debug, Default)]
struct Batch {
    open: Cell<bool>,
    held: Cell<u32>,
    made: Cell<u64>,
}

impl<T: Transport> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            inner: self.inner.clone(),
            written: self.written.clone(),
            batch: self.batch.clone(),
        }
    }
}

/// VIRTIO_NET_F_STATUS, and VIRTIO_NET_S_LINK_UP in the config's `status` (offset 6, after
/// the 6-byte MAC; virtio 1.2 §5.1.4).
const NET_F_STATUS: u64 = 1 << 16;
const NET_STATUS_OFFSET: usize = 6;
const NET_S_LINK_UP: u16 = 1;

impl<T: Transport> Shared<T> {
    pub fn new(t: T) -> Self {
        Shared {
            inner: Rc::new(RefCell::new(t)),
            written: Rc::new(Cell::new(0)),
            batch: Rc::new(Batch::default()),
        }
    }

    /// Hold the driver's notifications until [`Shared::end_batch`].
    pub fn begin_batch(&self) {
        self.batch.open.set(true);
    }

    /// Make the notifications held since [`Shared::begin_batch`], one per queue.
    pub fn end_batch(&self) {
        self.batch.open.set(false);
        let held = self.batch.held.replace(0);
        for q in 0..32u16 {
            if held & (1 << q) != 0 {
                self.ring(q);
            }
        }
    }

    /// Notifications made to the device so far.
    pub fn notifications(&self) -> u64 {
        self.batch.made.get()
    }

    fn ring(&self, queue: u16) {
        self.batch.made.set(self.batch.made.get() + 1);
        self.inner.borrow_mut().notify(queue);
    }

    /// The feature bits the driver accepted (0 before negotiation).
    pub fn negotiated(&self) -> u64 {
        self.written.get()
    }

    /// The link as the device reports it now; up when the device does not report it
    /// (VIRTIO_NET_F_STATUS not negotiated: "the link should be assumed active", §5.1.4.2).
    pub fn net_link_up(&self) -> bool {
        if self.negotiated() & NET_F_STATUS == 0 {
            return true;
        }
        self.inner
            .try_borrow()
            .ok()
            .and_then(|t| t.read_config_space::<u16>(NET_STATUS_OFFSET).ok())
            .is_some_and(|s| s & NET_S_LINK_UP != 0)
    }
}

impl<T: Transport> Transport for Shared<T> {
    fn device_type(&self) -> DeviceType {
        self.inner.borrow().device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.borrow_mut().read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.written.set(driver_features);
        self.inner
            .borrow_mut()
            .write_driver_features(driver_features)
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.borrow_mut().max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        if self.batch.open.get() && queue < 32 {
            self.batch.held.set(self.batch.held.get() | 1 << queue);
        } else {
            self.ring(queue);
        }
    }
    fn get_status(&self) -> DeviceStatus {
        self.inner.borrow().get_status()
    }
    fn set_status(&mut self, status: DeviceStatus) {
        self.inner.borrow_mut().set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.borrow_mut().set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.borrow().requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.inner
            .borrow_mut()
            .queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.inner.borrow_mut().queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.borrow_mut().queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        self.inner.borrow_mut().ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.borrow().read_config_generation()
    }
    fn read_config_space<V: FromBytes + IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<V> {
        self.inner.borrow().read_config_space(offset)
    }
    fn write_config_space<V: IntoBytes + Immutable>(
        &mut self,
        offset: usize,
        value: V,
    ) -> virtio_drivers::Result<()> {
        self.inner.borrow_mut().write_config_space(offset, value)
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
