//! A register-level 82574 for host tests: the registers the driver uses, legacy TX and RX
//! descriptors walked in simulated DMA memory shared with the driver, and knobs to make the
//! device misbehave.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use super::reg;
use crate::nic::{DmaMemory, Mmio};

/// Where simulated DMA memory starts (bus address).
pub const DMA_BASE: u64 = 0x1000_0000;

/// DMA memory as one growing block from [`DMA_BASE`]; cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct SimDma(Rc<RefCell<Vec<u8>>>);

impl SimDma {
    fn range(&self, addr: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let start = usize::try_from(addr.checked_sub(DMA_BASE)?).ok()?;
        let end = start.checked_add(len)?;
        (end <= self.0.borrow().len()).then_some(start..end)
    }

    /// Bytes at `addr` (the device's view); `None` outside the memory.
    pub fn get(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let r = self.range(addr, len)?;
        Some(self.0.borrow()[r].to_vec())
    }

    /// Writes bytes at `addr` (the device's DMA); false outside the memory.
    pub fn put(&self, addr: u64, data: &[u8]) -> bool {
        match self.range(addr, data.len()) {
            Some(r) => {
                self.0.borrow_mut()[r].copy_from_slice(data);
                true
            }
            None => false,
        }
    }
}

impl DmaMemory for SimDma {
    fn alloc(&mut self, len: usize, align: usize) -> Option<u64> {
        let mut m = self.0.borrow_mut();
        let start = m.len().next_multiple_of(align.max(1));
        m.resize(start + len, 0);
        Some(DMA_BASE + start as u64)
    }

    fn read(&self, addr: u64, out: &mut [u8]) {
        match self.get(addr, out.len()) {
            Some(b) => out.copy_from_slice(&b),
            None => out.fill(0xff),
        }
    }

    fn write(&mut self, addr: u64, data: &[u8]) {
        let _ = self.put(addr, data);
    }
}

/// The simulated device. Clone it to keep a handle the test drives (`inject_rx`, `sent`)
/// while the driver owns another.
#[derive(Debug, Clone)]
pub struct SimE1000e(Rc<RefCell<State>>);

#[derive(Debug)]
struct State {
    regs: BTreeMap<u32, u32>,
    dma: SimDma,
    mac: [u8; 6],
    /// Frames the device put on the wire.
    sent: Vec<Vec<u8>>,
    /// Reads of CTRL before a reset clears (`u32::MAX`: never).
    reset_reads: u32,
    reset_left: Option<u32>,
    /// Transmit only when the test says so (`complete_tx`), to fill the ring.
    hold_tx: bool,
    writes: Vec<(u32, u32)>,
}

impl SimE1000e {
    pub fn new(dma: &SimDma, mac: [u8; 6]) -> SimE1000e {
        let s = SimE1000e(Rc::new(RefCell::new(State {
            regs: BTreeMap::new(),
            dma: dma.clone(),
            mac,
            sent: Vec::new(),
            reset_reads: 3,
            reset_left: None,
            hold_tx: false,
            writes: Vec::new(),
        })));
        s.reset();
        s
    }

    fn reset(&self) {
        let mut st = self.0.borrow_mut();
        let mac = st.mac;
        st.regs.clear();
        st.regs.insert(reg::STATUS, 0x0008_0283);
        st.regs.insert(
            reg::RAL0,
            u32::from_le_bytes([mac[0], mac[1], mac[2], mac[3]]),
        );
        st.regs.insert(
            reg::RAH0,
            u32::from(mac[4]) | u32::from(mac[5]) << 8 | 1 << 31,
        );
    }

    /// CTRL.RST clears after `n` reads (`u32::MAX`: never).
    pub fn set_reset_reads(&self, n: u32) {
        self.0.borrow_mut().reset_reads = n;
    }

    pub fn set_reg(&self, r: u32, v: u32) {
        self.0.borrow_mut().regs.insert(r, v);
    }

    pub fn reg(&self, r: u32) -> u32 {
        self.0.borrow().regs.get(&r).copied().unwrap_or(0)
    }

    /// Every register write, in order.
    pub fn writes(&self) -> Vec<(u32, u32)> {
        self.0.borrow().writes.clone()
    }

    pub fn hold_tx(&self, hold: bool) {
        self.0.borrow_mut().hold_tx = hold;
    }

    /// Frames transmitted so far (taken).
    pub fn sent(&self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.0.borrow_mut().sent)
    }

    fn desc(&self, base: (u32, u32), i: u32) -> u64 {
        (u64::from(base.1) << 32 | u64::from(base.0)) + u64::from(i) * 16
    }

    /// Transmit what the ring holds from TDH to TDT (82574 §3.3: DD written back for RS).
    pub fn complete_tx(&self) {
        let (dma, base, len, mut head, tail) = {
            let st = self.0.borrow();
            let g = |r| st.regs.get(&r).copied().unwrap_or(0);
            (
                st.dma.clone(),
                (g(reg::TDBAL), g(reg::TDBAH)),
                g(reg::TDLEN) / 16,
                g(reg::TDH),
                g(reg::TDT),
            )
        };
        if len == 0 {
            return;
        }
        let mut frame = Vec::new();
        while head != tail % len {
            let at = self.desc(base, head);
            let d = dma.get(at, 16).unwrap_or_else(|| vec![0; 16]);
            let addr = u64::from_le_bytes(d[..8].try_into().unwrap());
            let n = usize::from(u16::from_le_bytes([d[8], d[9]]));
            frame.extend(dma.get(addr, n).unwrap_or_default());
            if d[11] & 1 != 0 {
                self.0.borrow_mut().sent.push(core::mem::take(&mut frame));
            }
            dma.put(at + 12, &[d[12] | 1]);
            head = (head + 1) % len;
        }
        self.0.borrow_mut().regs.insert(reg::TDH, head);
    }

    /// A frame from the wire into the next RX buffer (DD|EOP, its length); false when the
    /// driver posted no buffer (RDH == RDT).
    pub fn inject_rx(&self, frame: &[u8]) -> bool {
        self.inject_rx_raw(frame, frame.len() as u16, 0x03, 0)
    }

    /// As `inject_rx`, with the length, status and errors the device writes back.
    pub fn inject_rx_raw(&self, frame: &[u8], len: u16, status: u8, errors: u8) -> bool {
        let (dma, base, n, head, tail) = {
            let st = self.0.borrow();
            let g = |r| st.regs.get(&r).copied().unwrap_or(0);
            (
                st.dma.clone(),
                (g(reg::RDBAL), g(reg::RDBAH)),
                g(reg::RDLEN) / 16,
                g(reg::RDH),
                g(reg::RDT),
            )
        };
        if n == 0 || self.reg(reg::RCTL) & super::RCTL_EN == 0 || head == tail {
            return false;
        }
        let at = self.desc(base, head);
        let d = dma.get(at, 16).unwrap_or_else(|| vec![0; 16]);
        let addr = u64::from_le_bytes(d[..8].try_into().unwrap());
        dma.put(addr, &frame[..frame.len().min(super::BUF)]);
        dma.put(at + 8, &len.to_le_bytes());
        dma.put(at + 12, &[status, errors]);
        self.0.borrow_mut().regs.insert(reg::RDH, (head + 1) % n);
        true
    }
}

impl Mmio for SimE1000e {
    fn read32(&self, offset: u32) -> u32 {
        let mut st = self.0.borrow_mut();
        if offset == reg::CTRL
            && let Some(left) = st.reset_left
        {
            if left == 0 {
                st.reset_left = None;
                drop(st);
                self.reset();
                return self.reg(reg::CTRL);
            }
            if left != u32::MAX {
                st.reset_left = Some(left - 1);
            }
            return st.regs.get(&offset).copied().unwrap_or(0) | super::CTRL_RST;
        }
        st.regs.get(&offset).copied().unwrap_or(0)
    }

    fn write32(&mut self, offset: u32, value: u32) {
        {
            let mut st = self.0.borrow_mut();
            st.writes.push((offset, value));
            if offset == reg::CTRL && value & super::CTRL_RST != 0 {
                st.reset_left = Some(st.reset_reads);
                return;
            }
            st.regs.insert(offset, value);
        }
        if offset == reg::TDT && !self.0.borrow().hold_tx {
            self.complete_tx();
        }
    }
}
