//! PCI for dom0: addresses, config-space access, enumeration with BAR sizing, the plan of
//! `PHYSDEVOP_pci_device_add` calls for Xen, and lspci-like text.
//!
//! - [`Sbdf`]: a function's address; [`ConfigSpace`]: how config space is reached.
//! - [`enumerate()`]: depth-first enumeration into a [`Topology`] of [`Function`]s, with
//!   capabilities, BARs sized with decoding off ([`bar`]) and SR-IOV VFs; [`check_bars`] against
//!   host bridge windows; [`enable_vfs`].
//! - [`xen::xen_add_order`]: what to report to Xen, in which order, with which flags.
//! - [`tree::tree_text`] and [`tree::detail_text`]: `lspci -tv`-style and per-function text.
//! - `sim` (feature `fake`): a simulated PCI hierarchy with real routing, BAR sizing,
//!   SR-IOV and hostile hardware, which counts accesses and records every BAR write made with
//!   decoding on.
//!
//! Nothing read from hardware is trusted and nothing panics on bad input: every problem
//! becomes a string naming the function (`ssss:bb:dd.f`) and the register offset.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod assign;
pub mod bar;
pub mod caps;
pub mod check;
pub mod config;
pub mod enumerate;
pub mod model;
pub mod regs;
pub mod renumber;
#[cfg(any(test, feature = "fake"))]
pub mod sim;
pub mod sriov;
pub mod tree;
pub mod xen;

pub use check::check_bars;
#[cfg(any(test, feature = "fake"))]
pub use config::FakeConfigSpace;
pub use config::{ConfigSpace, Counting, read_ids};
pub use enumerate::enumerate;
pub use model::{
    Bar, BarKind, Bus, Cap, EnumOptions, ExtCap, Function, FunctionKind, Msi, Msix, Pcie, Segment,
    Sriov, Topology,
};
pub use sriov::{enable_vfs, vf_sbdfs};
pub use xen::{XenAdd, xen_add_order};

use alloc::string::String;
use alloc::vec::Vec;

/// Records a problem (and logs it as a warning).
pub(crate) fn problem(list: &mut Vec<String>, text: String) {
    log::warn!("pci: {text}");
    list.push(text);
}

use core::fmt;
use core::str::FromStr;

/// A PCI function's address: segment (PCI domain), bus, device (0..32), function (0..8).
///
/// The fields are private so every `Sbdf` is in range; build one with [`Sbdf::new`] or
/// [`Sbdf::from_devfn`]. Ordered by segment, bus, device, function (enumeration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sbdf {
    segment: u16,
    bus: u8,
    device: u8,
    function: u8,
}

impl Sbdf {
    /// `None` if `device` >= 32 or `function` >= 8.
    pub const fn new(segment: u16, bus: u8, device: u8, function: u8) -> Option<Sbdf> {
        if device < 32 && function < 8 {
            Some(Sbdf {
                segment,
                bus,
                device,
                function,
            })
        } else {
            None
        }
    }

    /// From the 8-bit devfn (device << 3 | function) that Xen's `physdev_pci_device_add` and
    /// the PCI-to-PCI bridge registers use; every devfn is valid.
    pub const fn from_devfn(segment: u16, bus: u8, devfn: u8) -> Sbdf {
        Sbdf {
            segment,
            bus,
            device: devfn >> 3,
            function: devfn & 7,
        }
    }

    pub const fn segment(self) -> u16 {
        self.segment
    }
    pub const fn bus(self) -> u8 {
        self.bus
    }
    pub const fn device(self) -> u8 {
        self.device
    }
    pub const fn function(self) -> u8 {
        self.function
    }

    /// device << 3 | function.
    pub const fn devfn(self) -> u8 {
        self.device << 3 | self.function
    }

    /// bus << 8 | devfn, the 16-bit BDF (Xen's `PCI_BDF`).
    pub const fn bdf(self) -> u16 {
        (self.bus as u16) << 8 | self.devfn() as u16
    }

    /// Function 0 of the same device.
    pub const fn function0(self) -> Sbdf {
        Sbdf {
            function: 0,
            ..self
        }
    }
}

impl fmt::Display for Sbdf {
    /// `ssss:bb:dd.f`, as Xen prints it (`PCI add device 0000:00:03.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// Why a string is not an SBDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseSbdfError {
    /// Not `[ssss:]bb:dd.f`.
    Syntax,
    /// A part is not hexadecimal or too long; `part` is "segment", "bus", "device" or
    /// "function".
    BadNumber { part: &'static str },
    /// Device >= 32 or function >= 8.
    OutOfRange { part: &'static str },
}

impl fmt::Display for ParseSbdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseSbdfError::Syntax => f.write_str("not a PCI address (expected ssss:bb:dd.f)"),
            ParseSbdfError::BadNumber { part } => {
                write!(
                    f,
                    "PCI address: {part} is not a hex number of the right width"
                )
            }
            ParseSbdfError::OutOfRange { part } => {
                write!(
                    f,
                    "PCI address: {part} out of range (device < 0x20, function < 8)"
                )
            }
        }
    }
}

fn hex(s: &str, max_digits: usize, part: &'static str) -> Result<u16, ParseSbdfError> {
    // from_str_radix accepts a leading '+'; a PCI address never has one.
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseSbdfError::BadNumber { part });
    }
    u16::from_str_radix(s, 16).map_err(|_| ParseSbdfError::BadNumber { part })
}

impl FromStr for Sbdf {
    type Err = ParseSbdfError;

    /// `ssss:bb:dd.f` (as Xen and lspci -D print) or `bb:dd.f` (segment 0, as lspci prints).
    fn from_str(s: &str) -> Result<Sbdf, ParseSbdfError> {
        let (rest, function) = s.rsplit_once('.').ok_or(ParseSbdfError::Syntax)?;
        let mut parts = rest.split(':');
        let (segment, bus, device) = match (parts.next(), parts.next(), parts.next(), parts.next())
        {
            (Some(b), Some(d), None, None) => ("0", b, d),
            (Some(s), Some(b), Some(d), None) => (s, b, d),
            _ => return Err(ParseSbdfError::Syntax),
        };
        let segment = hex(segment, 4, "segment")?;
        let bus = hex(bus, 2, "bus")? as u8;
        let device = hex(device, 2, "device")? as u8;
        let function = hex(function, 1, "function")? as u8;
        if device >= 32 {
            return Err(ParseSbdfError::OutOfRange { part: "device" });
        }
        Sbdf::new(segment, bus, device, function)
            .ok_or(ParseSbdfError::OutOfRange { part: "function" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_ranges() {
        assert!(Sbdf::new(0, 0, 31, 7).is_some());
        assert_eq!(Sbdf::new(0, 0, 32, 0), None);
        assert_eq!(Sbdf::new(0, 0, 0, 8), None);
        assert_eq!(Sbdf::new(0, 0, 255, 255), None);
        let s = Sbdf::new(0x1234, 0xab, 0x1f, 5).unwrap();
        assert_eq!(
            (s.segment(), s.bus(), s.device(), s.function()),
            (0x1234, 0xab, 0x1f, 5)
        );
    }

    #[test]
    fn devfn_round_trips() {
        for devfn in 0..=255u8 {
            let s = Sbdf::from_devfn(1, 2, devfn);
            assert_eq!(s.devfn(), devfn);
            assert!(s.device() < 32 && s.function() < 8);
            assert_eq!(Sbdf::new(1, 2, s.device(), s.function()), Some(s));
        }
        let s = Sbdf::new(0, 0x3a, 3, 1).unwrap();
        assert_eq!(s.devfn(), 0x19);
        assert_eq!(s.bdf(), 0x3a19);
        assert_eq!(s.function0(), Sbdf::new(0, 0x3a, 3, 0).unwrap());
    }

    #[test]
    fn display_like_xen() {
        assert_eq!(Sbdf::new(0, 0, 3, 0).unwrap().to_string(), "0000:00:03.0");
        assert_eq!(
            Sbdf::new(0xffff, 0xff, 31, 7).unwrap().to_string(),
            "ffff:ff:1f.7"
        );
    }

    #[test]
    fn parse() {
        let s: Sbdf = "0000:00:03.0".parse().unwrap();
        assert_eq!(s, Sbdf::new(0, 0, 3, 0).unwrap());
        assert_eq!("00:1f.3".parse(), Ok(Sbdf::new(0, 0, 0x1f, 3).unwrap()));
        assert_eq!(
            "ABCD:Ef:1F.7".parse(),
            Ok(Sbdf::new(0xabcd, 0xef, 0x1f, 7).unwrap())
        );
        for bdf in 0..=0xffffu16 {
            let s = Sbdf::from_devfn(7, (bdf >> 8) as u8, bdf as u8);
            assert_eq!(s.to_string().parse(), Ok(s));
        }
    }

    #[test]
    fn parse_errors() {
        use ParseSbdfError::*;
        for (input, err) in [
            ("", Syntax),
            ("0000:00:03", Syntax),
            ("0:0:0:0.0", Syntax),
            ("00.0", Syntax),
            ("0000:00:20.0", OutOfRange { part: "device" }),
            ("0000:00:03.8", OutOfRange { part: "function" }),
            ("0000:00:03.10", BadNumber { part: "function" }),
            ("00000:00:03.0", BadNumber { part: "segment" }),
            ("0000:100:03.0", BadNumber { part: "bus" }),
            ("0000:+1:03.0", BadNumber { part: "bus" }),
            ("0000::03.0", BadNumber { part: "bus" }),
            ("0000:00:x3.0", BadNumber { part: "device" }),
            ("0000:00:03.", BadNumber { part: "function" }),
            ("0000:00:\u{e9}.0", BadNumber { part: "device" }),
        ] {
            assert_eq!(input.parse::<Sbdf>(), Err(err), "{input:?}");
        }
        assert_eq!(
            "x".parse::<Sbdf>().unwrap_err().to_string(),
            "not a PCI address (expected ssss:bb:dd.f)"
        );
        assert_eq!(
            "0:0:20.0".parse::<Sbdf>().unwrap_err().to_string(),
            "PCI address: device out of range (device < 0x20, function < 8)"
        );
    }

    #[test]
    fn ordering_is_enumeration_order() {
        let mut v = [
            Sbdf::new(1, 0, 0, 0).unwrap(),
            Sbdf::new(0, 1, 0, 0).unwrap(),
            Sbdf::new(0, 0, 1, 0).unwrap(),
            Sbdf::new(0, 0, 0, 1).unwrap(),
            Sbdf::new(0, 0, 0, 0).unwrap(),
        ];
        v.sort();
        let text: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            text,
            [
                "0000:00:00.0",
                "0000:00:00.1",
                "0000:00:01.0",
                "0000:01:00.0",
                "0001:00:00.0"
            ]
        );
    }
}
