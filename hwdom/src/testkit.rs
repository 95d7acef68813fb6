//! A fake platform for the host tests: "physical memory" made of byte regions, a clock that
//! moves when dom0 waits, a PCI simulator as config space, and a log of what was mapped and
//! which device registers were read.

use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use pci::sim::SimConfig;
use pci::{ConfigSpace, Sbdf};
use xen::memmap::{MemRegion, MemType, MemoryMap};
use xen::start_info::{PhysRead, PhysReadError};

use crate::platform::{EcamWindow, Platform};

/// The simulator, shared by the test and the platform.
#[derive(Debug, Clone)]
pub struct SimRef(pub Rc<SimConfig>);

impl ConfigSpace for SimRef {
    fn read32(&self, sbdf: Sbdf, offset: u16) -> u32 {
        self.0.read32(sbdf, offset)
    }
    fn write32(&self, sbdf: Sbdf, offset: u16, value: u32) {
        self.0.write32(sbdf, offset, value)
    }
}

#[derive(Debug, Default)]
pub struct FakePlatform {
    pub sim: Rc<SimConfig>,
    /// Fixed regions (tables, modules): (address, bytes).
    pub regions: Vec<(u64, Vec<u8>)>,
    /// What `place` wrote.
    pub placed: RefCell<Vec<(u64, Vec<u8>)>>,
    next_place: Cell<u64>,
    pub clock_ns: Cell<u64>,
    pub relaxed: Cell<u64>,
    pub mapped: RefCell<Vec<(u64, u64)>>,
    /// `map_uncached` fails at or above this address.
    pub map_limit: Option<u64>,
    /// Device registers: (address, value); others read all ones.
    pub mmio: Vec<(u64, u32)>,
    pub mmio_reads: RefCell<Vec<(u64, u8)>>,
    pub windows_seen: RefCell<Vec<EcamWindow>>,
}

impl FakePlatform {
    pub fn new(sim: SimConfig) -> FakePlatform {
        FakePlatform {
            sim: Rc::new(sim),
            next_place: Cell::new(0x7000_0000),
            ..Default::default()
        }
    }
}

impl PhysRead for FakePlatform {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), PhysReadError> {
        let err = PhysReadError {
            paddr,
            len: buf.len(),
        };
        let end = paddr.checked_add(buf.len() as u64).ok_or(err)?;
        let placed = self.placed.borrow();
        let hit = self
            .regions
            .iter()
            .chain(placed.iter())
            .find(|(a, b)| *a <= paddr && end <= a + b.len() as u64)
            .ok_or(err)?;
        let off = (paddr - hit.0) as usize;
        buf.copy_from_slice(&hit.1[off..off + buf.len()]);
        Ok(())
    }
}

impl Platform for FakePlatform {
    type Config = SimRef;

    fn config_space(&self, windows: &[EcamWindow]) -> SimRef {
        self.windows_seen.borrow_mut().extend_from_slice(windows);
        SimRef(self.sim.clone())
    }

    fn map_uncached(&self, start: u64, end: u64) -> Result<(), String> {
        if self.map_limit.is_some_and(|l| end > l) {
            return Err("no page-table memory".to_string());
        }
        self.mapped.borrow_mut().push((start, end));
        Ok(())
    }

    fn read_mmio(&self, paddr: u64, width: u8) -> Option<u32> {
        self.mmio_reads.borrow_mut().push((paddr, width));
        Some(
            self.mmio
                .iter()
                .find(|(a, _)| *a == paddr)
                .map_or(u32::MAX, |r| r.1),
        )
    }

    fn place(&self, bytes: &[u8]) -> Result<u64, String> {
        let at = self.next_place.get().next_multiple_of(16);
        self.next_place.set(at + bytes.len() as u64);
        self.placed.borrow_mut().push((at, bytes.to_vec()));
        Ok(at)
    }

    fn phys(&self) -> &dyn PhysRead {
        self
    }

    fn module_bytes(&self, paddr: u64, len: u64) -> Option<&[u8]> {
        self.regions
            .iter()
            .find(|(a, b)| *a == paddr && b.len() as u64 == len)
            .map(|(_, b)| b.as_slice())
    }

    fn now_ns(&self) -> u64 {
        self.clock_ns.get()
    }

    fn relax(&self) {
        self.relaxed.set(self.relaxed.get() + 1);
        self.clock_ns.set(self.clock_ns.get() + 1_000_000);
    }
}

/// A q35-like memory map: 2 GiB of RAM, ACPI data at 0x7ffe0000, the MMCONFIG window at
/// 0xb0000000 reserved, the IO-APIC/LAPIC range reserved.
pub fn q35_map() -> MemoryMap {
    MemoryMap::from_regions(&[
        MemRegion {
            addr: 0,
            size: 0x9_fc00,
            kind: MemType::Ram,
        },
        MemRegion {
            addr: 0x10_0000,
            size: 0x7fee_0000,
            kind: MemType::Ram,
        },
        MemRegion {
            addr: 0x7ffe_0000,
            size: 0x2_0000,
            kind: MemType::Acpi,
        },
        MemRegion {
            addr: 0xb000_0000,
            size: 0x1000_0000,
            kind: MemType::Reserved,
        },
        MemRegion {
            addr: 0xfec0_0000,
            size: 0x140_0000,
            kind: MemType::Reserved,
        },
    ])
    .unwrap()
}
