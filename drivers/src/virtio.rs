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

#[cfg(test)]
mod tests;
