//! Intel 82574 (`e1000e`, QEMU's default NIC on q35): a small polled driver with legacy
//! descriptors, as pure logic over [`Mmio`] and [`DmaMemory`].
//!
//! It follows the bring-up of the 82574 datasheet (§4.6, "Software initialization") and what
//! Linux's `e1000e` and FreeBSD's `em` do for it, minus everything a polled uplink does not
//! need: global reset (`CTRL.RST`), every interrupt masked (dom0 polls), the MAC from receive
//! address 0 (the EEPROM's, loaded by the reset), link forced up (`CTRL.SLU`), one RX and one
//! TX ring of legacy descriptors (§3.2.4, §3.3.3) with a 2 KiB buffer per descriptor.
//!
//! The device is not trusted more than a guest: every length and index it writes back is
//! checked, a descriptor it filled wrongly is counted and skipped, and nothing it does can make
//! the driver index out of bounds or panic. The driver has no clock: the reset wait is bounded
//! by a number of register reads ([`RESET_POLLS`]).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use crate::nic::{DmaMemory, Mmio, Nic, NicCounters, NicError};

/// Register offsets (82574 datasheet §10.2; Linux `e1000e/regs.h`).
pub mod reg {
    pub const CTRL: u32 = 0x0000;
    pub const STATUS: u32 = 0x0008;
    pub const CTRL_EXT: u32 = 0x0018;
    pub const ICR: u32 = 0x00c0;
    pub const IMC: u32 = 0x00d8;
    pub const RCTL: u32 = 0x0100;
    pub const TCTL: u32 = 0x0400;
    pub const TIPG: u32 = 0x0410;
    pub const RDBAL: u32 = 0x2800;
    pub const RDBAH: u32 = 0x2804;
    pub const RDLEN: u32 = 0x2808;
    pub const RDH: u32 = 0x2810;
    pub const RDT: u32 = 0x2818;
    pub const TDBAL: u32 = 0x3800;
    pub const TDBAH: u32 = 0x3804;
    pub const TDLEN: u32 = 0x3808;
    pub const TDH: u32 = 0x3810;
    pub const TDT: u32 = 0x3818;
    pub const MTA: u32 = 0x5200;
    pub const RAL0: u32 = 0x5400;
    pub const RAH0: u32 = 0x5404;
}

/// `CTRL` bits.
pub const CTRL_SLU: u32 = 1 << 6;
pub const CTRL_RST: u32 = 1 << 26;
/// `CTRL_EXT.DRV_LOAD`: a driver owns the device (the manageability firmware keeps off it;
/// Linux's `e1000e_get_hw_control`).
pub const CTRL_EXT_DRV_LOAD: u32 = 1 << 28;
/// `STATUS.LU`: link up.
pub const STATUS_LU: u32 = 1 << 1;
/// `RCTL` bits: enable, unicast and multicast promiscuous, broadcast accept, strip CRC;
/// BSIZE 00 with BSEX 0 is 2048-byte buffers.
pub const RCTL_EN: u32 = 1 << 1;
pub const RCTL_UPE: u32 = 1 << 3;
pub const RCTL_MPE: u32 = 1 << 4;
pub const RCTL_BAM: u32 = 1 << 15;
pub const RCTL_SECRC: u32 = 1 << 26;
/// `TCTL`: enable, pad short packets, collision threshold 0x0f, collision distance 0x3f
/// (full duplex; Linux's `E1000_COLLISION_THRESHOLD` / `E1000_COLLISION_DISTANCE`).
pub const TCTL_EN: u32 = 1 << 1;
pub const TCTL_PSP: u32 = 1 << 3;
pub const TCTL_CT: u32 = 0x0f << 4;
pub const TCTL_COLD: u32 = 0x3f << 12;
/// `TIPG` for copper (IPGT 8, IPGR1 8, IPGR2 6: Linux's `DEFAULT_82543_TIPG_*`).
pub const TIPG_COPPER: u32 = 8 | (8 << 10) | (6 << 20);
/// `RAH.AV`: the receive address is valid.
pub const RAH_AV: u32 = 1 << 31;

/// Legacy descriptor status and command bits.
const DESC_DD: u8 = 1 << 0;
const DESC_EOP: u8 = 1 << 1;
const CMD_EOP: u8 = 1 << 0;
const CMD_IFCS: u8 = 1 << 1;
const CMD_RS: u8 = 1 << 3;

/// Descriptors per ring (a ring's length must be a multiple of 128 bytes: 8 descriptors) and
/// the buffer behind each.
pub const RX_DESCS: u32 = 64;
pub const TX_DESCS: u32 = 64;
pub const BUF: usize = 2048;
const DESC: u64 = 16;
/// The most frame a 2 KiB buffer takes without CRC (stripped on RX, added on TX).
const MAX_FRAME: usize = 1514;
const MIN_FRAME: usize = 14;

/// Register reads the driver waits for `CTRL.RST` to clear (the datasheet asks for ~1 µs
/// before the next access; QEMU clears it at once).
pub const RESET_POLLS: u32 = 100_000;

/// PCI ids this driver takes: 8086:10d3 (82574L, QEMU's `e1000e`) and 8086:10f6 (82574LA,
/// the same MAC; Linux's `E1000_DEV_ID_82574LA`). The 82583V (8086:150c) shares the register
/// layout but is untested, so it is not claimed.
pub fn probe_ids(vendor: u16, device: u16) -> bool {
    vendor == 0x8086 && matches!(device, 0x10d3 | 0x10f6)
}

/// Why the device could not be brought up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitError {
    /// `CTRL.RST` still set after [`RESET_POLLS`] reads (the last value read).
    ResetStuck(u32),
    /// Receive address 0 is not a valid unicast MAC (RAL0, RAH0 as read).
    BadMac { ral: u32, rah: u32 },
    /// No DMA memory for the rings or buffers.
    NoMemory,
    /// All ones from the BAR: the device does not answer there.
    NoDevice,
}

/// The 82574 as a switch port.
#[derive(Debug)]
pub struct E1000e<M: Mmio, D: DmaMemory> {
    mmio: M,
    dma: D,
    mac: [u8; 6],
    rx_ring: u64,
    tx_ring: u64,
    /// Each descriptor's buffer (bus address), fixed at init.
    rx_bufs: Vec<u64>,
    tx_bufs: Vec<u64>,
    /// The next RX descriptor to look at, the next TX descriptor to fill, the oldest TX
    /// descriptor not yet reclaimed, and how many are in flight.
    rx_next: u32,
    /// Inside a frame the device split over descriptors (one without EOP was seen): every
    /// descriptor up to the one with EOP belongs to it and is dropped with it.
    rx_discarding: bool,
    tx_tail: u32,
    tx_clean: u32,
    tx_busy: u32,
    /// Descriptors queued since TDT was last written (the batch's doorbell is still owed).
    tx_unrung: u32,
    /// RDH as last read: descriptors before it are done, so RDH is read again only when
    /// `rx_next` catches up with it (each read is an exit to Xen and QEMU).
    rx_head: u32,
    /// Descriptors handed back in memory but not yet past RDT: RDT moves once per
    /// [`RX_RETURN_BATCH`] or when the driver catches up with the device (as Linux's e1000e
    /// writes RDT every 16 buffers).
    rx_unreturned: u32,
    counters: NicCounters,
}

/// RX descriptors handed back per RDT write at most.
const RX_RETURN_BATCH: u32 = 16;

fn ring_alloc<D: DmaMemory>(dma: &mut D, n: u32) -> Result<(u64, Vec<u64>), InitError> {
    let ring = dma
        .alloc(n as usize * DESC as usize, 128)
        .ok_or(InitError::NoMemory)?;
    let bufs = (0..n)
        .map(|_| dma.alloc(BUF, 16).ok_or(InitError::NoMemory))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((ring, bufs))
}

impl<M: Mmio, D: DmaMemory> E1000e<M, D> {
    /// Reset and bring up the device (see the module documentation).
    pub fn init(mut mmio: M, mut dma: D) -> Result<Self, InitError> {
        if mmio.read32(reg::STATUS) == u32::MAX {
            return Err(InitError::NoDevice);
        }
        // Quiet the device, then reset it (datasheet §4.6.1: mask interrupts before and after).
        mmio.write32(reg::IMC, u32::MAX);
        mmio.write32(reg::RCTL, 0);
        mmio.write32(reg::TCTL, 0);
        let ctrl = mmio.read32(reg::CTRL);
        mmio.write32(reg::CTRL, ctrl | CTRL_RST);
        let mut last = ctrl | CTRL_RST;
        let mut cleared = false;
        for _ in 0..RESET_POLLS {
            last = mmio.read32(reg::CTRL);
            if last & CTRL_RST == 0 {
                cleared = true;
                break;
            }
        }
        if !cleared {
            return Err(InitError::ResetStuck(last));
        }
        mmio.write32(reg::IMC, u32::MAX);
        let _ = mmio.read32(reg::ICR);
        // The MAC the reset loaded from the EEPROM into receive address 0.
        let (ral, rah) = (mmio.read32(reg::RAL0), mmio.read32(reg::RAH0));
        let l = ral.to_le_bytes();
        let h = rah.to_le_bytes();
        let mac = [l[0], l[1], l[2], l[3], h[0], h[1]];
        if rah & RAH_AV == 0 || mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(InitError::BadMac { ral, rah });
        }
        mmio.write32(reg::CTRL, (mmio.read32(reg::CTRL) & !CTRL_RST) | CTRL_SLU);
        mmio.write32(
            reg::CTRL_EXT,
            mmio.read32(reg::CTRL_EXT) | CTRL_EXT_DRV_LOAD,
        );
        for i in 0..128 {
            mmio.write32(reg::MTA + 4 * i, 0);
        }
        let (rx_ring, rx_bufs) = ring_alloc(&mut dma, RX_DESCS)?;
        let (tx_ring, tx_bufs) = ring_alloc(&mut dma, TX_DESCS)?;
        for (i, &b) in rx_bufs.iter().enumerate() {
            dma.write(rx_ring + i as u64 * DESC, &rx_desc(b));
        }
        mmio.write32(reg::RDBAL, rx_ring as u32);
        mmio.write32(reg::RDBAH, (rx_ring >> 32) as u32);
        mmio.write32(reg::RDLEN, RX_DESCS * DESC as u32);
        mmio.write32(reg::RDH, 0);
        // Every descriptor but one is the device's (RDT == RDH would mean "none").
        mmio.write32(reg::RDT, RX_DESCS - 1);
        mmio.write32(reg::TDBAL, tx_ring as u32);
        mmio.write32(reg::TDBAH, (tx_ring >> 32) as u32);
        mmio.write32(reg::TDLEN, TX_DESCS * DESC as u32);
        mmio.write32(reg::TDH, 0);
        mmio.write32(reg::TDT, 0);
        mmio.write32(reg::TIPG, TIPG_COPPER);
        mmio.write32(reg::TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
        // Promiscuous: dom0 bridges DomUs onto this NIC, so frames for their MACs (not the
        // NIC's own) must come in too, as a Linux bridge port puts its NIC in promiscuous mode.
        mmio.write32(
            reg::RCTL,
            RCTL_EN | RCTL_UPE | RCTL_MPE | RCTL_BAM | RCTL_SECRC,
        );
        Ok(E1000e {
            mmio,
            dma,
            mac,
            rx_ring,
            tx_ring,
            rx_bufs,
            tx_bufs,
            rx_next: 0,
            rx_discarding: false,
            tx_tail: 0,
            tx_unrung: 0,
            tx_clean: 0,
            tx_busy: 0,
            rx_head: 0,
            rx_unreturned: 0,
            counters: NicCounters::default(),
        })
    }

    /// The device's registers (for the report and tests).
    pub fn mmio(&self) -> &M {
        &self.mmio
    }

    /// Take back the TX descriptors the device finished (DD set), oldest first.
    fn reclaim(&mut self) {
        while self.tx_busy > 0 {
            let at = self.tx_ring + u64::from(self.tx_clean) * DESC;
            let mut st = [0u8; 1];
            self.dma.read(at + 12, &mut st);
            if st[0] & DESC_DD == 0 {
                break;
            }
            self.tx_clean = (self.tx_clean + 1) % TX_DESCS;
            self.tx_busy -= 1;
        }
    }

    /// Write one frame and its descriptor; the device sees it when [`E1000e::ring_tx`] moves
    /// the tail.
    fn queue_tx(&mut self, frame: &[u8]) -> Result<(), NicError> {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            self.counters.tx_dropped += 1;
            return Err(NicError::BadLength(frame.len()));
        }
        // One descriptor stays free so that TDT never catches up with TDH.
        if self.tx_busy + 1 >= TX_DESCS {
            self.counters.tx_dropped += 1;
            return Err(NicError::Full);
        }
        let i = self.tx_tail;
        let buf = self.tx_bufs[i as usize];
        self.dma.write(buf, frame);
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&buf.to_le_bytes());
        d[8..10].copy_from_slice(&(frame.len() as u16).to_le_bytes());
        d[11] = CMD_EOP | CMD_IFCS | CMD_RS;
        self.dma.write(self.tx_ring + u64::from(i) * DESC, &d);
        self.tx_tail = (i + 1) % TX_DESCS;
        self.tx_busy += 1;
        self.tx_unrung += 1;
        self.counters.tx_frames += 1;
        self.counters.tx_bytes += frame.len() as u64;
        Ok(())
    }

    /// Move TDT past the queued descriptors (they are in memory before the tail moves: x86
    /// keeps stores in order).
    fn ring_tx(&mut self) {
        self.mmio.write32(reg::TDT, self.tx_tail);
        self.counters.doorbells += 1;
        self.tx_unrung = 0;
    }

    /// Move RDT past the descriptors handed back since the last write (RDT = the last one
    /// consumed: the device owns up to the one before it, one descriptor stays a gap).
    fn return_rx(&mut self) {
        if self.rx_unreturned > 0 {
            let last = (self.rx_next + RX_DESCS - 1) % RX_DESCS;
            self.mmio.write32(reg::RDT, last);
            self.counters.doorbells += 1;
            self.rx_unreturned = 0;
        }
    }

    /// Stop the device's DMA (receive and transmit off, then a reset).
    pub fn stop(&mut self) {
        self.mmio.write32(reg::RCTL, 0);
        self.mmio.write32(reg::TCTL, 0);
        let ext = self.mmio.read32(reg::CTRL_EXT);
        self.mmio.write32(reg::CTRL_EXT, ext & !CTRL_EXT_DRV_LOAD);
        let ctrl = self.mmio.read32(reg::CTRL);
        self.mmio.write32(reg::CTRL, ctrl | CTRL_RST);
    }
}

/// A legacy RX descriptor owned by the device: its buffer, status cleared.
fn rx_desc(buf: u64) -> [u8; 16] {
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&buf.to_le_bytes());
    d
}

impl<M: Mmio, D: DmaMemory> Nic for E1000e<M, D> {
    fn mac(&self) -> [u8; 6] {
        self.mac
    }

    fn link_up(&mut self) -> bool {
        self.mmio.read32(reg::STATUS) & STATUS_LU != 0
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), NicError> {
        self.reclaim();
        self.queue_tx(frame)?;
        self.ring_tx();
        Ok(())
    }

    fn transmit_batch(&mut self, frames: &[Vec<u8>]) -> Result<(), NicError> {
        self.reclaim();
        let r = crate::nic::transmit_each(self, frames, Self::queue_tx, |n| {
            if n.tx_unrung == 0 {
                return false;
            }
            // Let the device at what is queued and take back what it finished.
            n.ring_tx();
            n.reclaim();
            n.counters.tx_dropped -= 1;
            true
        });
        if self.tx_unrung > 0 {
            self.ring_tx();
        }
        r
    }

    fn receive(&mut self) -> Result<Option<Vec<u8>>, NicError> {
        for _ in 0..RX_DESCS {
            let i = self.rx_next;
            // Only descriptors the device's head has passed are done (a DD bit elsewhere is
            // not the device's word: its head says which descriptors it wrote back).
            if i == self.rx_head {
                // Caught up: give back what was consumed, then ask where the device is.
                self.return_rx();
                let head = self.mmio.read32(reg::RDH);
                if head >= RX_DESCS {
                    return Err(NicError::Device(format!(
                        "RDH {head} outside the receive ring of {RX_DESCS} descriptors"
                    )));
                }
                self.rx_head = head;
                if i == head {
                    return Ok(None);
                }
            }
            let at = self.rx_ring + u64::from(i) * DESC;
            let mut d = [0u8; 16];
            self.dma.read(at, &mut d);
            let status = d[12];
            if status & DESC_DD == 0 {
                return Ok(None);
            }
            let len = usize::from(u16::from_le_bytes([d[8], d[9]]));
            let errors = d[13];
            // The buffer address is ours, not what the device wrote back.
            let buf = self.rx_bufs[i as usize];
            let eop = status & DESC_EOP != 0;
            // A descriptor without EOP starts (or continues) a frame split over buffers: it and
            // every descriptor up to the EOP one are dropped together (the tail of a split
            // frame must not pass for a frame of its own).
            let continuation = self.rx_discarding;
            self.rx_discarding = !eop;
            let good = eop
                && !continuation
                && errors == 0
                && (MIN_FRAME..=MAX_FRAME.min(BUF)).contains(&len);
            let frame = good.then(|| {
                let mut f = vec![0u8; len];
                self.dma.read(buf, &mut f);
                f
            });
            // Back to the device: a fresh descriptor now, the tail past it in a batch.
            self.dma.write(at, &rx_desc(buf));
            self.rx_next = (i + 1) % RX_DESCS;
            self.rx_unreturned += 1;
            if self.rx_unreturned >= RX_RETURN_BATCH {
                self.return_rx();
            }
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

    fn counters(&self) -> NicCounters {
        self.counters
    }

    fn model(&self) -> &'static str {
        "e1000e"
    }
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::ResetStuck(c) => write!(
                f,
                "CTRL.RST still set after {RESET_POLLS} reads (CTRL {c:#010x})"
            ),
            InitError::BadMac { ral, rah } => write!(
                f,
                "receive address 0 is not a valid unicast MAC (RAL0 {ral:#010x}, RAH0 {rah:#010x})"
            ),
            InitError::NoMemory => f.write_str("no DMA memory for the rings"),
            InitError::NoDevice => f.write_str("the BAR reads all ones: no device answers"),
        }
    }
}

/// What the report says about an init error (kept as text by callers).
pub fn describe(e: &InitError) -> alloc::string::String {
    format!("e1000e: {e}")
}

#[cfg(any(test, feature = "fake"))]
pub mod sim;

#[cfg(test)]
mod tests;
