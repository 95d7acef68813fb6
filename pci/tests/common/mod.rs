//! Fixtures shared by the integration tests.
#![allow(dead_code)]

use pci::regs::*;
use pci::sim::{SimBar, SimConfig, SimDevice};
use pci::{ConfigSpace, EnumOptions, Sbdf, Segment, Topology};
use std::cell::RefCell;

pub fn sbdf(bus: u8, dev: u8, func: u8) -> Sbdf {
    Sbdf::new(0, bus, dev, func).unwrap()
}

pub const ON: u16 = CMD_IO | CMD_MEM | CMD_MASTER;

/// Segment 0, buses 0..=255, ECAM.
pub fn ecam() -> Vec<Segment> {
    vec![Segment {
        segment: 0,
        start_bus: 0,
        end_bus: 0xff,
        ecam: true,
    }]
}

/// What QEMU's q35 machine looks like with a virtio-net behind a root port (as SeaBIOS
/// leaves it): host bridge, root port 00:01.0 -> 01:00.0 virtio-net, VGA, and the ICH9
/// multi-function LPC/SATA/SMBus at 00:1f.
pub fn q35() -> SimConfig {
    let sim = SimConfig::new();
    sim.add(
        sbdf(0, 0, 0),
        SimDevice::endpoint(0x8086, 0x29c0, 0x06_00_00)
            .subsystem(0x1af4, 0x1100)
            .command(CMD_MEM),
    );
    sim.add(
        sbdf(0, 1, 0),
        SimDevice::bridge(0x1b36, 0x000c, 1, 1)
            .bar(0, SimBar::mem32(0x1000, 0xfeb0_0000))
            .pcie(PCIE_TYPE_ROOT_PORT)
            .msix(1, 0)
            .pm()
            .aer()
            .acs(),
    );
    sim.add(
        sbdf(1, 0, 0),
        SimDevice::endpoint(0x1af4, 0x1041, 0x02_00_00)
            .subsystem(0x1af4, 0x1100)
            .command(ON)
            // Received Master Abort (write-1-to-clear): enumeration must not clear it.
            .status(0x2000)
            .bar(1, SimBar::mem32(0x1000, 0xfe80_0000))
            .bar(4, SimBar::mem64(0x4000, 0xfe00_0000).prefetchable())
            .rom(0x40000, 0xfe84_0000, false)
            .msix(3, 1)
            .pcie(PCIE_TYPE_ENDPOINT)
            .pm(),
    );
    sim.add(
        sbdf(0, 2, 0),
        SimDevice::endpoint(0x1234, 0x1111, 0x03_00_00)
            .command(ON)
            .bar(0, SimBar::mem32(0x100_0000, 0xfd00_0000).prefetchable())
            .bar(2, SimBar::mem32(0x1000, 0xfebf_4000))
            .rom(0x10000, 0xfebe_0000, true),
    );
    sim.add(
        sbdf(0, 0x1f, 0),
        SimDevice::endpoint(0x8086, 0x2918, 0x06_01_00).command(ON),
    );
    sim.add(
        sbdf(0, 0x1f, 2),
        SimDevice::endpoint(0x8086, 0x2922, 0x01_06_01)
            .command(ON)
            .bar(4, SimBar::io(0x20, 0xc040))
            .bar(5, SimBar::mem32(0x1000, 0xfebf_1000))
            .msi(0, true)
            .pcie(PCIE_TYPE_RC_ENDPOINT),
    );
    sim.add(
        sbdf(0, 0x1f, 3),
        SimDevice::endpoint(0x8086, 0x2930, 0x0c_05_00)
            .command(CMD_IO)
            .bar(4, SimBar::io(0x40, 0x0700)),
    );
    sim
}

pub fn run(sim: &SimConfig) -> Topology {
    let t = pci::enumerate(sim, &ecam(), &EnumOptions::default());
    assert_eq!(
        sim.violations(),
        Vec::<String>::new(),
        "BAR written with decoding on"
    );
    t
}

pub fn names(t: &Topology) -> Vec<String> {
    t.functions.iter().map(|f| f.sbdf.to_string()).collect()
}

/// Problems containing `needle`.
pub fn problems_with<'a>(t: &'a Topology, needle: &str) -> Vec<&'a str> {
    t.all_problems().filter(|p| p.contains(needle)).collect()
}

/// One config access seen by [`Recorder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read(Sbdf, u16),
    Write(Sbdf, u16, u32),
}

/// A [`ConfigSpace`] that passes through and records every access.
pub struct Recorder<'a> {
    pub inner: &'a dyn ConfigSpace,
    pub log: RefCell<Vec<Access>>,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a dyn ConfigSpace) -> Self {
        Recorder {
            inner,
            log: RefCell::new(Vec::new()),
        }
    }

    pub fn accesses(&self) -> Vec<Access> {
        self.log.borrow().clone()
    }
}

impl ConfigSpace for Recorder<'_> {
    fn read32(&self, sbdf: Sbdf, offset: u16) -> u32 {
        self.log.borrow_mut().push(Access::Read(sbdf, offset));
        self.inner.read32(sbdf, offset)
    }
    fn write32(&self, sbdf: Sbdf, offset: u16, value: u32) {
        self.log
            .borrow_mut()
            .push(Access::Write(sbdf, offset, value));
        self.inner.write32(sbdf, offset, value)
    }
}
