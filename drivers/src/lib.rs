//! Device drivers dom0 needs: the serial console, and the NICs its switch uses as uplink
//! (`nic`: the interface; `virtio`: virtio-net through virtio-drivers behind the IOMMU).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod e1000e;
pub mod nic;
pub mod pcicheck;
pub mod uart16550;
pub mod virtio;

pub use uart16550::{PortIo, Uart16550, UartWriter};
