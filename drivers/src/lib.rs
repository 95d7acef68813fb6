//! Device drivers dom0 needs: the serial console now; virtio-net and more NICs later.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod nic;
pub mod pcicheck;
pub mod uart16550;

pub use uart16550::{PortIo, Uart16550, UartWriter};
