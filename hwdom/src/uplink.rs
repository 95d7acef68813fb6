//! Which PCI function becomes the switch's uplink (`nic=`), decided from what enumeration
//! reported; dom0 then drives it (`dom0/src/nic.rs`).
//!
//! Only a function Xen accepted (`PHYSDEVOP_pci_device_add` ok) is driven: Xen sets up its
//! IOMMU context then, and a device without one cannot reach dom0's memory.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use pci::Sbdf;
use report::{PciBarKind, PciFunction, UplinkState, UplinkSummary};

use crate::options::NicChoice;

/// The drivers dom0 has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// virtio-net through virtio-drivers (modern device id 0x1041, or transitional 0x1000
    /// which then must still offer VIRTIO_F_VERSION_1).
    VirtioNet,
    /// Intel 82574 (QEMU's `e1000e`).
    E1000e,
}

impl Driver {
    pub fn for_ids(vendor: u16, device: u16) -> Option<Driver> {
        match (vendor, device) {
            (0x1af4, 0x1041 | 0x1000) => Some(Driver::VirtioNet),
            (v, d) if drivers::e1000e::probe_ids(v, d) => Some(Driver::E1000e),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::VirtioNet => "virtio-net",
            Driver::E1000e => "e1000e",
        }
    }
}

/// What `nic=` comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Pick<'a> {
    /// Drive this function.
    Drive {
        sbdf: Sbdf,
        driver: Driver,
        function: &'a PciFunction,
    },
    /// Nothing to drive: the report's line for it, and whether that is an error (the user
    /// named a function) or a warning (`nic=auto` found nothing dom0 can drive).
    Refuse {
        summary: alloc::boxed::Box<UplinkSummary>,
        error: bool,
    },
}

/// Network controllers (class 02) among `functions`.
fn is_network(f: &PciFunction) -> bool {
    f.class >> 16 == 0x02
}

fn ids(f: &PciFunction) -> String {
    format!("{:04x}:{:04x}", f.vendor, f.device)
}

fn describe(f: &PciFunction) -> String {
    format!(
        "{} [{}] class {:02x}:{:02x}:{:02x}",
        f.sbdf,
        ids(f),
        f.class >> 16,
        (f.class >> 8) & 0xff,
        f.class & 0xff
    )
}

fn refuse(f: Option<&PciFunction>, state: UplinkState, error: String, is_error: bool) -> Pick<'_> {
    Pick::Refuse {
        summary: alloc::boxed::Box::new(UplinkSummary {
            sbdf: f.map(|f| f.sbdf.clone()).unwrap_or_default(),
            ids: f.map(ids).unwrap_or_default(),
            state,
            error: Some(error),
            ..UplinkSummary::default()
        }),
        error: is_error,
    }
}

/// Why `f` cannot be driven even though a driver knows it, if so.
fn unusable(f: &PciFunction) -> Option<String> {
    if !f.xen_add.is_ok() {
        return Some(format!(
            "Xen did not accept it (PHYSDEVOP_pci_device_add: {}), so it has no IOMMU context",
            f.xen_add
        ));
    }
    if !f.bars.iter().any(|b| {
        b.kind != PciBarKind::Io && b.kind != PciBarKind::Rom && b.size > 0 && b.address != 0
    }) {
        return Some("it has no assigned memory BAR".to_string());
    }
    None
}

fn drive(f: &PciFunction, driver: Driver) -> Pick<'_> {
    match f.sbdf.parse::<Sbdf>() {
        Ok(sbdf) => Pick::Drive {
            sbdf,
            driver,
            function: f,
        },
        Err(e) => refuse(
            Some(f),
            UplinkState::Failed,
            format!("bad address '{}' in the PCI report: {e:?}", f.sbdf),
            true,
        ),
    }
}

/// Decide what `nic=` means on this machine. `None`: `nic=none`.
pub fn pick(choice: NicChoice, functions: &[PciFunction]) -> Option<Pick<'_>> {
    match choice {
        NicChoice::None => None,
        NicChoice::At(sbdf) => {
            let want = sbdf.to_string();
            let Some(f) = functions.iter().find(|f| f.sbdf == want) else {
                return Some(refuse(
                    None,
                    UplinkState::Failed,
                    format!("nic={want}: no such PCI function was enumerated"),
                    true,
                ));
            };
            Some(match Driver::for_ids(f.vendor, f.device) {
                None => refuse(
                    Some(f),
                    UplinkState::Unsupported,
                    format!("nic={want}: no driver for {}", describe(f)),
                    true,
                ),
                Some(d) => match unusable(f) {
                    Some(why) => refuse(
                        Some(f),
                        UplinkState::Failed,
                        format!("{}: {why}", describe(f)),
                        true,
                    ),
                    None => drive(f, d),
                },
            })
        }
        NicChoice::Auto => {
            let mut passed = Vec::new();
            for f in functions {
                match Driver::for_ids(f.vendor, f.device) {
                    Some(d) => match unusable(f) {
                        None => return Some(drive(f, d)),
                        Some(why) => passed.push(format!("{} ({}: {why})", describe(f), d.name())),
                    },
                    None if is_network(f) => passed.push(format!("{} (no driver)", describe(f))),
                    None => {}
                }
            }
            let first = functions.iter().find(|f| is_network(f));
            let msg = if passed.is_empty() {
                "nic=auto: no network controller was enumerated".to_string()
            } else {
                format!("nic=auto: no NIC dom0 can drive: {}", passed.join("; "))
            };
            Some(refuse(first, UplinkState::Unsupported, msg, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use report::{PciBar, XenAdd};

    fn f(sbdf: &str, vendor: u16, device: u16, class: u32) -> PciFunction {
        PciFunction {
            sbdf: sbdf.into(),
            vendor,
            device,
            class,
            xen_add: XenAdd::Ok,
            bars: vec![PciBar {
                index: 0,
                kind: PciBarKind::Mem32,
                address: 0xfe00_0000,
                size: 0x1000,
                ..PciBar::default()
            }],
            ..PciFunction::default()
        }
    }

    fn machine() -> Vec<PciFunction> {
        vec![
            f("0000:00:00.0", 0x8086, 0x29c0, 0x06_00_00),
            f("0000:01:00.0", 0x1af4, 0x1041, 0x02_00_00),
            f("0000:02:00.0", 0x8086, 0x10d3, 0x02_00_00),
        ]
    }

    #[test]
    fn none_touches_nothing() {
        assert_eq!(pick(NicChoice::None, &machine()), None);
    }

    #[test]
    fn auto_takes_the_first_supported_in_enumeration_order() {
        let m = machine();
        let Some(Pick::Drive { sbdf, driver, .. }) = pick(NicChoice::Auto, &m) else {
            panic!()
        };
        assert_eq!(
            (sbdf.to_string().as_str(), driver),
            ("0000:01:00.0", Driver::VirtioNet)
        );
        // Xen refused the first: the second is taken, and the first is not driven.
        let mut m = machine();
        m[1].xen_add = XenAdd::Refused("-ENODEV (19)".into());
        let Some(Pick::Drive { sbdf, driver, .. }) = pick(NicChoice::Auto, &m) else {
            panic!()
        };
        assert_eq!(
            (sbdf.to_string().as_str(), driver),
            ("0000:02:00.0", Driver::E1000e)
        );
    }

    #[test]
    fn explicit_choice_and_its_errors() {
        let m = machine();
        let at = |s: &str| NicChoice::At(s.parse().unwrap());
        let Some(Pick::Drive { driver, .. }) = pick(at("02:00.0"), &m) else {
            panic!()
        };
        assert_eq!(driver, Driver::E1000e);
        let Some(Pick::Refuse { summary, error }) = pick(at("05:00.0"), &m) else {
            panic!()
        };
        assert!(error);
        assert_eq!(summary.state, UplinkState::Failed);
        assert!(summary.error.unwrap().contains("no such PCI function"));
        let Some(Pick::Refuse { summary, error }) = pick(at("00:00.0"), &m) else {
            panic!()
        };
        assert!(error);
        assert_eq!(summary.state, UplinkState::Unsupported);
        assert_eq!(summary.ids, "8086:29c0");
        let mut m = machine();
        m[2].bars.clear();
        let Some(Pick::Refuse { summary, .. }) = pick(at("02:00.0"), &m) else {
            panic!()
        };
        assert!(summary.error.unwrap().contains("no assigned memory BAR"));
    }

    /// Real hardware with NICs dom0 has no driver for: a warning naming each of them.
    #[test]
    fn auto_without_a_driver_names_every_nic() {
        let m = vec![
            f("0000:00:00.0", 0x8086, 0x29c0, 0x06_00_00),
            f("0000:03:00.0", 0x14e4, 0x165f, 0x02_00_00),
            f("0000:03:00.1", 0x14e4, 0x165f, 0x02_00_00),
        ];
        let Some(Pick::Refuse { summary, error }) = pick(NicChoice::Auto, &m) else {
            panic!()
        };
        assert!(!error);
        assert_eq!(summary.state, UplinkState::Unsupported);
        assert_eq!(summary.sbdf, "0000:03:00.0");
        let e = summary.error.unwrap();
        assert!(
            e.contains("0000:03:00.0 [14e4:165f] class 02:00:00 (no driver)"),
            "{e}"
        );
        assert!(e.contains("0000:03:00.1"), "{e}");
        let Some(Pick::Refuse { summary, .. }) = pick(NicChoice::Auto, &m[..1]) else {
            panic!()
        };
        assert!(summary.error.unwrap().contains("no network controller"));
    }
}
