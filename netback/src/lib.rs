//! The netif backend dom0 serves to guests: for now the MAC addresses it gives their
//! interfaces; later the xenbus state machine, rings, grant copies and the switch.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod mac;

pub use mac::MacAddress;
