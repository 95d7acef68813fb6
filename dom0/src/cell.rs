//! [`BootCell`]: the one way dom0 has a mutable static (no `static mut`).
//!
//! Its statics are memory the hardware or the boot assembly reads by address (page tables,
//! descriptor tables, stacks, the entry stub's saved values): they are written through the raw
//! pointer [`BootCell::get`] while only one CPU runs (the entry stub, `trap::init`, the page
//! table code under its own rules), and read by the CPU itself afterwards. Nothing hands out a
//! `&mut`, so no two references can alias; each write site carries its own `// SAFETY:`.

use core::cell::UnsafeCell;

/// A static written through raw pointers (see the module documentation). `repr(transparent)`:
/// the symbol's address is the value's, as the assembly that names it expects.
#[repr(transparent)]
pub struct BootCell<T>(UnsafeCell<T>);

// SAFETY: `BootCell` gives out only raw pointers; every access through them is unsafe and
// justified at its site (single CPU at boot, or hardware-read memory).
unsafe impl<T> Sync for BootCell<T> {}

impl<T> BootCell<T> {
    pub const fn new(v: T) -> Self {
        BootCell(UnsafeCell::new(v))
    }

    /// The value's address.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}
