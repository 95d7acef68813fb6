//! What every NIC driver offers dom0's switch, and what the drivers need from dom0: a device's
//! registers ([`Mmio`]) and memory the device reaches by DMA ([`DmaMemory`]).
//!
//! The drivers are pure logic: dom0 implements these traits over its identity map (a PVH dom0's
//! guest-physical addresses are the bus addresses Xen's IOMMU maps for its devices), host tests
//! over simulated devices.

use alloc::vec::Vec;

/// A device's memory-mapped registers (one BAR), 32-bit accesses at byte offsets.
pub trait Mmio {
    fn read32(&self, offset: u32) -> u32;
    fn write32(&mut self, offset: u32, value: u32);
}

/// Memory a device reads and writes by bus address.
///
/// dom0's implementation uses volatile accesses in program order; x86 keeps stores in order
/// and a later register write (uncached) after them, which is all a descriptor ring needs.
pub trait DmaMemory {
    /// `len` zeroed, physically contiguous bytes aligned to `align` (a power of two, at most
    /// 4096); their bus address, or `None` when memory is short.
    fn alloc(&mut self, len: usize, align: usize) -> Option<u64>;
    /// Copies `out.len()` bytes at bus address `addr` into `out`.
    fn read(&self, addr: u64, out: &mut [u8]);
    /// Copies `data` to bus address `addr`.
    fn write(&mut self, addr: u64, data: &[u8]);
}

/// Why a NIC refused a frame or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicError {
    /// No transmit descriptor is free now; try again after the device caught up.
    Full,
    /// The frame is shorter than an Ethernet header or longer than the device takes.
    BadLength(usize),
    /// The device did something the driver does not accept (said in the text); the NIC is
    /// taken out of service.
    Device(alloc::string::String),
}

/// Counters every NIC keeps, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NicCounters {
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames refused because the TX ring was full or the frame's length was bad.
    pub tx_dropped: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames the device flagged as bad or the driver refused (too long, split over buffers).
    pub rx_errors: u64,
    /// Writes that tell the device of new buffers (e1000e: TDT and RDT; virtio: queue
    /// notifications). Under Xen each is an exit to the hypervisor and to QEMU, so they are
    /// made once per batch, not once per frame.
    pub doorbells: u64,
}

/// One Ethernet port on dom0's switch: frames without FCS, polled (no interrupts).
pub trait Nic {
    /// The MAC the device reports (its EEPROM / config space).
    fn mac(&self) -> [u8; 6];
    /// Whether the link is up now.
    fn link_up(&mut self) -> bool;
    /// Queues one frame for transmission (copied; the caller keeps `frame`).
    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError>;
    /// Queues `frames` in order and tells the device of them once (a GSO packet cut into 45
    /// frames was 45 doorbell writes). A frame with a bad length or no room in the ring is
    /// dropped and counted, as [`Nic::transmit`] does, and the rest go on; `Err` only for a
    /// device error (the frames after it are not sent).
    fn transmit_batch(&mut self, frames: &[Vec<u8>]) -> Result<(), NicError> {
        transmit_each(self, frames, |n, f| n.transmit(f), |_| false)
    }
    /// The next received frame, if one is waiting; the buffer goes back to the device.
    fn receive(&mut self) -> Result<Option<Vec<u8>>, NicError>;
    /// Up to `max` received frames appended to `out`, the buffers given back with one doorbell
    /// write for the lot where the driver can (virtio-net). Stops at the first error, keeping
    /// what came before it.
    fn receive_batch(&mut self, max: usize, out: &mut Vec<Vec<u8>>) -> Result<(), NicError> {
        receive_each(self, max, out)
    }
    fn counters(&self) -> NicCounters;
    /// "virtio-net", "e1000e".
    fn model(&self) -> &'static str;
}

/// The loop of [`Nic::transmit_batch`]: each frame through `send`. A frame refused with
/// [`NicError::Full`] gets one more try if `make_room` says it made some (let the device at what
/// is queued and took back what it finished; it also takes back the drop `send` counted, the
/// retry counts it again if it fails). Bad lengths and full rings drop only their frame; `Err`
/// only for a device error (the frames after it are not sent).
pub fn transmit_each<N: ?Sized>(
    nic: &mut N,
    frames: &[Vec<u8>],
    mut send: impl FnMut(&mut N, &[u8]) -> Result<(), NicError>,
    mut make_room: impl FnMut(&mut N) -> bool,
) -> Result<(), NicError> {
    for f in frames {
        let mut r = send(nic, f);
        if r == Err(NicError::Full) && make_room(nic) {
            r = send(nic, f);
        }
        if let Err(e @ NicError::Device(_)) = r {
            return Err(e);
        }
    }
    Ok(())
}

/// The loop of [`Nic::receive_batch`]: up to `max` frames from [`Nic::receive`] appended to
/// `out`, stopping at the first error (what came before it is kept).
pub fn receive_each<N: Nic + ?Sized>(
    nic: &mut N,
    max: usize,
    out: &mut Vec<Vec<u8>>,
) -> Result<(), NicError> {
    for _ in 0..max {
        match nic.receive()? {
            Some(f) => out.push(f),
            None => break,
        }
    }
    Ok(())
}
