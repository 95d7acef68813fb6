//! Config-space access. dom0 implements [`ConfigSpace`] over port 0xCF8/0xCFC or ECAM (both
//! trapped by Xen's vPCI for a PVH dom0); host tests use `FakeConfigSpace` (feature `fake`).

use crate::Sbdf;

/// Counts the accesses made through another [`ConfigSpace`]: under Xen each one is a VM exit
/// that vPCI emulates, so the number per function is what enumeration costs (issue 15 keeps it
/// from growing unnoticed).
pub struct Counting<'a> {
    inner: &'a dyn ConfigSpace,
    reads: core::cell::Cell<u64>,
    writes: core::cell::Cell<u64>,
}

impl core::fmt::Debug for Counting<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Counting")
            .field("reads", &self.reads.get())
            .field("writes", &self.writes.get())
            .finish()
    }
}

impl<'a> Counting<'a> {
    pub fn new(inner: &'a dyn ConfigSpace) -> Self {
        Counting {
            inner,
            reads: core::cell::Cell::new(0),
            writes: core::cell::Cell::new(0),
        }
    }

    /// (dword reads, dword writes) so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.reads.get(), self.writes.get())
    }
}

impl ConfigSpace for Counting<'_> {
    fn read32(&self, sbdf: Sbdf, offset: u16) -> u32 {
        self.reads.set(self.reads.get() + 1);
        self.inner.read32(sbdf, offset)
    }

    fn write32(&self, sbdf: Sbdf, offset: u16, value: u32) {
        self.writes.set(self.writes.get() + 1);
        self.inner.write32(sbdf, offset, value)
    }
}

/// Reads and writes a function's configuration space, one aligned dword at a time.
///
/// `offset` is meant to be a multiple of 4 below 4096 (256 without extended config space).
/// Implementations ignore the low two bits, and return all ones for a read they cannot do
/// (no such function, offset beyond what the access method reaches), which is what the
/// hardware does for a master abort.
pub trait ConfigSpace {
    fn read32(&self, sbdf: Sbdf, offset: u16) -> u32;
    fn write32(&self, sbdf: Sbdf, offset: u16, value: u32);

    /// The 16-bit register at `offset` (2-aligned), from the dword that holds it.
    fn read16(&self, sbdf: Sbdf, offset: u16) -> u16 {
        (self.read32(sbdf, offset & !3) >> ((offset & 2) * 8)) as u16
    }

    /// The byte at `offset`, from the dword that holds it.
    fn read8(&self, sbdf: Sbdf, offset: u16) -> u8 {
        (self.read32(sbdf, offset & !3) >> ((offset & 3) * 8)) as u8
    }

    /// Write the 16-bit register at `offset` (2-aligned) by read-modify-write of the dword
    /// that holds it.
    ///
    /// Beware: the other half of the dword is written back with the value just read, which
    /// clears any write-1-to-clear bits set in it (STATUS beside COMMAND, for one). Callers
    /// that write COMMAND use `write32` with the STATUS half zero instead; implementations
    /// with real 16-bit accesses (port 0xCFC, ECAM) should override this.
    fn write16(&self, sbdf: Sbdf, offset: u16, value: u16) {
        let aligned = offset & !3;
        let shift = (offset & 2) * 8;
        let old = self.read32(sbdf, aligned);
        let new = (old & !(0xffff << shift)) | (u32::from(value) << shift);
        self.write32(sbdf, aligned, new);
    }

    /// Write the byte at `offset` by read-modify-write of the dword that holds it (same
    /// caveat as [`ConfigSpace::write16`]).
    fn write8(&self, sbdf: Sbdf, offset: u16, value: u8) {
        let aligned = offset & !3;
        let shift = (offset & 3) * 8;
        let old = self.read32(sbdf, aligned);
        let new = (old & !(0xff << shift)) | (u32::from(value) << shift);
        self.write32(sbdf, aligned, new);
    }
}

/// (vendor, device) IDs, or `None` if nothing answers at `sbdf`.
///
/// A read from an absent function returns all ones, so vendor 0xffff means "no device"
/// (PCI Local Bus spec 6.2.1: 0xffff is never assigned). Vendor 0 is not assigned either; some
/// bridges return it for absent functions, so it is treated the same way.
pub fn read_ids(cs: &dyn ConfigSpace, sbdf: Sbdf) -> Option<(u16, u16)> {
    let id = cs.read32(sbdf, 0);
    let vendor = id as u16;
    let device = (id >> 16) as u16;
    if vendor == 0xffff || vendor == 0 {
        None
    } else {
        Some((vendor, device))
    }
}

#[cfg(any(test, feature = "fake"))]
mod fake {
    use super::ConfigSpace;
    use crate::Sbdf;
    use alloc::boxed::Box;
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    /// Size of one function's config space (PCIe extended).
    pub const CONFIG_SIZE: usize = 4096;

    /// An in-memory config space for tests: functions added with [`FakeConfigSpace::add`]
    /// are plain 4 KiB of registers (every write sticks, no read-only bits); every other
    /// address reads as all ones and ignores writes. All writes are logged.
    #[derive(Debug, Default)]
    pub struct FakeConfigSpace {
        functions: RefCell<BTreeMap<Sbdf, Box<[u8; CONFIG_SIZE]>>>,
        writes: RefCell<Vec<(Sbdf, u16, u32)>>,
    }

    impl FakeConfigSpace {
        pub fn new() -> Self {
            Self::default()
        }

        /// Add a function with the given IDs, class code (base, sub, prog-if) and header
        /// type; the rest of its config space is zero.
        pub fn add(&self, sbdf: Sbdf, vendor: u16, device: u16, class: [u8; 3], header: u8) {
            let mut regs = Box::new([0u8; CONFIG_SIZE]);
            regs[0..2].copy_from_slice(&vendor.to_le_bytes());
            regs[2..4].copy_from_slice(&device.to_le_bytes());
            regs[9] = class[2];
            regs[10] = class[1];
            regs[11] = class[0];
            regs[0x0e] = header;
            self.functions.borrow_mut().insert(sbdf, regs);
        }

        /// Set a dword without logging it as a write.
        pub fn poke32(&self, sbdf: Sbdf, offset: u16, value: u32) {
            let off = usize::from(offset & !3);
            if let Some(regs) = self.functions.borrow_mut().get_mut(&sbdf)
                && off < CONFIG_SIZE
            {
                regs[off..off + 4].copy_from_slice(&value.to_le_bytes());
            }
        }

        /// Every `write32` so far: (function, offset, value).
        pub fn writes(&self) -> Vec<(Sbdf, u16, u32)> {
            self.writes.borrow().clone()
        }

        /// The functions present, in order.
        pub fn present(&self) -> Vec<Sbdf> {
            self.functions.borrow().keys().copied().collect()
        }
    }

    impl ConfigSpace for FakeConfigSpace {
        fn read32(&self, sbdf: Sbdf, offset: u16) -> u32 {
            let off = usize::from(offset & !3);
            match self.functions.borrow().get(&sbdf) {
                Some(regs) if off < CONFIG_SIZE => {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(&regs[off..off + 4]);
                    u32::from_le_bytes(b)
                }
                _ => u32::MAX,
            }
        }

        fn write32(&self, sbdf: Sbdf, offset: u16, value: u32) {
            self.writes.borrow_mut().push((sbdf, offset, value));
            self.poke32(sbdf, offset, value);
        }
    }
}

#[cfg(any(test, feature = "fake"))]
pub use fake::{CONFIG_SIZE, FakeConfigSpace};

#[cfg(test)]
mod tests {
    use super::*;

    fn sbdf(b: u8, d: u8, f: u8) -> Sbdf {
        Sbdf::new(0, b, d, f).unwrap()
    }

    #[test]
    fn ids_of_present_and_absent_functions() {
        let cs = FakeConfigSpace::new();
        // QEMU q35: host bridge 8086:29c0, e1000e 8086:10d3 at 00:02.0.
        cs.add(sbdf(0, 0, 0), 0x8086, 0x29c0, [6, 0, 0], 0);
        cs.add(sbdf(0, 2, 0), 0x8086, 0x10d3, [2, 0, 0], 0);
        assert_eq!(read_ids(&cs, sbdf(0, 0, 0)), Some((0x8086, 0x29c0)));
        assert_eq!(read_ids(&cs, sbdf(0, 2, 0)), Some((0x8086, 0x10d3)));
        assert_eq!(read_ids(&cs, sbdf(0, 1, 0)), None);
        assert_eq!(read_ids(&cs, Sbdf::new(1, 0, 0, 0).unwrap()), None);
        assert_eq!(cs.present(), [sbdf(0, 0, 0), sbdf(0, 2, 0)]);
    }

    #[test]
    fn vendor_zero_and_ffff_are_absent() {
        let cs = FakeConfigSpace::new();
        cs.add(sbdf(0, 3, 0), 0xffff, 0x1234, [0; 3], 0);
        cs.add(sbdf(0, 4, 0), 0, 0x1234, [0; 3], 0);
        cs.add(sbdf(0, 5, 0), 0x1af4, 0xffff, [0; 3], 0);
        assert_eq!(read_ids(&cs, sbdf(0, 3, 0)), None);
        assert_eq!(read_ids(&cs, sbdf(0, 4, 0)), None);
        // Device 0xffff with a real vendor is still a device.
        assert_eq!(read_ids(&cs, sbdf(0, 5, 0)), Some((0x1af4, 0xffff)));
    }

    #[test]
    fn narrow_reads_and_writes() {
        let cs = FakeConfigSpace::new();
        let s = sbdf(0, 3, 0);
        cs.add(s, 0x1af4, 0x1000, [2, 0, 0], 0x80);
        assert_eq!(cs.read16(s, 0), 0x1af4);
        assert_eq!(cs.read16(s, 2), 0x1000);
        assert_eq!(cs.read8(s, 0x0b), 2); // base class: network
        assert_eq!(cs.read8(s, 0x0e), 0x80); // multi-function
        // Unaligned offsets use the containing dword.
        cs.write32(s, 0x11, 0xfebf_0000);
        assert_eq!(cs.read32(s, 0x10), 0xfebf_0000);
        assert_eq!(cs.read32(s, 0x13), 0xfebf_0000);
        assert_eq!(cs.writes(), [(s, 0x11, 0xfebf_0000)]);
        // Beyond 4 KiB, or an absent function: all ones, writes ignored (but logged).
        assert_eq!(cs.read32(s, 0x1000), u32::MAX);
        assert_eq!(cs.read32(s, u16::MAX), u32::MAX);
        cs.write32(s, u16::MAX, 0);
        cs.write32(sbdf(9, 0, 0), 0, 0);
        assert_eq!(cs.read32(sbdf(9, 0, 0), 0), u32::MAX);
        assert_eq!(cs.read16(sbdf(9, 0, 0), 2), 0xffff);
        assert_eq!(cs.writes().len(), 3);
        // poke does not log.
        cs.poke32(s, 0x3c, 0x0000_010b);
        assert_eq!(cs.read8(s, 0x3c), 0x0b);
        assert_eq!(cs.writes().len(), 3);
    }

    #[test]
    fn narrow_writes_are_read_modify_write() {
        let cs = FakeConfigSpace::new();
        let s = sbdf(0, 3, 0);
        cs.add(s, 0x1af4, 0x1000, [2, 0, 0], 0);
        cs.poke32(s, 0x3c, 0x1122_3344);
        cs.write16(s, 0x3e, 0xaabb);
        assert_eq!(cs.read32(s, 0x3c), 0xaabb_3344);
        cs.write16(s, 0x3c, 0x5566);
        assert_eq!(cs.read32(s, 0x3c), 0xaabb_5566);
        // An odd offset writes the aligned half that holds it.
        cs.write16(s, 0x3d, 0x7788);
        assert_eq!(cs.read32(s, 0x3c), 0xaabb_7788);
        for (off, expect) in [
            (0x3c, 0xaabb_7701),
            (0x3d, 0xaabb_0201),
            (0x3e, 0xaa03_0201),
            (0x3f, 0x0403_0201),
        ] {
            cs.write8(s, off, (off - 0x3b) as u8);
            assert_eq!(cs.read32(s, 0x3c), expect, "{off:#x}");
        }
        // Each narrow write is one aligned dword write.
        let w = cs.writes();
        assert_eq!(w.len(), 7);
        assert!(w.iter().all(|&(_, off, _)| off == 0x3c));
        // Absent function: the write goes out (all ones merged) and is ignored.
        cs.write8(sbdf(9, 0, 0), 0x3c, 0);
        assert_eq!(
            cs.writes().last(),
            Some(&(sbdf(9, 0, 0), 0x3c, 0xffff_ff00))
        );
    }
}
