//! Proof that a PCI device answers at its BARs: read one register whose value is known for the
//! device, through its memory BAR. dom0 uses it after enumeration and after moving BARs (a moved
//! BAR must still reach the device; under Xen that also proves vPCI re-mapped it).
//!
//! Pure logic: config space and MMIO are reached through closures the caller provides.

use alloc::format;
use alloc::string::String;

/// Which check applies to a device, by ids and class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Modern virtio (device id 0x1040..=0x107f): `num_queues` in the common configuration,
    /// found through the vendor-specific capability with `cfg_type` 1 (virtio 1.x §4.1.4.3).
    VirtioCommon,
    /// Intel e1000/e1000e: the STATUS register at BAR0 + 0x8.
    E1000Status,
    /// NVMe (class 01:08:02): CAP at BAR0 + 0x0 and VS at BAR0 + 0x8 (NVMe base spec §3.1).
    NvmeVersion,
}

/// The check for a function, if dom0 knows one.
pub fn check_for(vendor: u16, device: u16, class: u32) -> Option<Check> {
    match (vendor, device) {
        (0x1af4, 0x1040..=0x107f) => Some(Check::VirtioCommon),
        (0x8086, 0x100e | 0x100f | 0x10d3 | 0x10f5 | 0x153a) => Some(Check::E1000Status),
        _ if class == 0x01_08_02 => Some(Check::NvmeVersion),
        _ => None,
    }
}

/// What a check read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub check: Check,
    /// "BAR4+0x0012 num_queues = 3".
    pub detail: String,
    pub ok: bool,
}

/// Run `check`. `cfg(offset)` reads a config dword; `mmio(bar, offset, width)` reads a register
/// of `width` bytes (2 or 4, naturally aligned) at that offset of a memory BAR (`None` if the BAR
/// is not a usable memory BAR). Fields are read at their own width: virtio devices decode the
/// common configuration field by field (QEMU returns only `msix_config` for a 4-byte read at
/// 0x10), as the virtio spec requires. `caps` lists the
/// standard capabilities as (id, offset).
pub fn run(
    check: Check,
    caps: &[(u8, u16)],
    cfg: &dyn Fn(u16) -> u32,
    mmio: &dyn Fn(u8, u64, u8) -> Option<u32>,
) -> CheckResult {
    match check {
        Check::VirtioCommon => virtio(caps, cfg, mmio),
        Check::E1000Status => {
            let (detail, ok) = match mmio(0, 0x8, 4) {
                Some(v) => (format!("BAR0+0x0008 STATUS = {v:#010x}"), v != u32::MAX),
                None => ("BAR0 is not a usable memory BAR".into(), false),
            };
            CheckResult { check, detail, ok }
        }
        Check::NvmeVersion => {
            let (detail, ok) = match (mmio(0, 0x0, 4), mmio(0, 0x8, 4)) {
                (Some(cap), Some(vs)) => {
                    let (maj, min) = (vs >> 16, (vs >> 8) & 0xff);
                    (
                        format!(
                            "BAR0+0x0000 CAP.lo = {cap:#010x}, BAR0+0x0008 VS = {vs:#010x} (NVMe {maj}.{min})"
                        ),
                        vs != u32::MAX && maj >= 1 && cap != u32::MAX,
                    )
                }
                _ => ("BAR0 is not a usable memory BAR".into(), false),
            };
            CheckResult { check, detail, ok }
        }
    }
}

/// Vendor-specific capability id, and virtio's `cfg_type` for the common configuration.
const CAP_VNDR: u8 = 0x09;
const VIRTIO_PCI_CAP_COMMON_CFG: u8 = 1;

fn virtio(
    caps: &[(u8, u16)],
    cfg: &dyn Fn(u16) -> u32,
    mmio: &dyn Fn(u8, u64, u8) -> Option<u32>,
) -> CheckResult {
    let check = Check::VirtioCommon;
    for &(_, off) in caps.iter().filter(|(id, _)| *id == CAP_VNDR) {
        // struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type @3, bar @4, ..., offset @8.
        let w0 = cfg(off);
        let cfg_type = (w0 >> 24) as u8;
        if cfg_type != VIRTIO_PCI_CAP_COMMON_CFG {
            continue;
        }
        let bar = cfg(off + 4) as u8;
        let offset = u64::from(cfg(off + 8));
        if bar > 5 {
            return CheckResult {
                check,
                detail: format!("common config names BAR {bar}"),
                ok: false,
            };
        }
        // num_queues (le16) sits at offset 0x12 of the common configuration.
        let (detail, ok) = match mmio(bar, offset + 0x12, 2) {
            Some(v) => {
                let n = v as u16;
                (
                    format!("BAR{bar}+{:#06x} num_queues = {n}", offset + 0x12),
                    n != 0 && n != 0xffff,
                )
            }
            None => (format!("BAR{bar} is not a usable memory BAR"), false),
        };
        return CheckResult { check, detail, ok };
    }
    CheckResult {
        check,
        detail: "no virtio common-config capability".into(),
        ok: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_check() {
        assert_eq!(
            check_for(0x1af4, 0x1041, 0x020000),
            Some(Check::VirtioCommon)
        );
        assert_eq!(check_for(0x1af4, 0x1000, 0x020000), None); // transitional: no modern caps
        assert_eq!(
            check_for(0x8086, 0x10d3, 0x020000),
            Some(Check::E1000Status)
        );
        assert_eq!(
            check_for(0x1b36, 0x0010, 0x010802),
            Some(Check::NvmeVersion)
        );
        assert_eq!(check_for(0x1234, 0x1111, 0x030000), None);
    }

    #[test]
    fn virtio_common_config_through_its_capability() {
        // A vendor cap at 0x84: cfg_type 1, BAR 4, offset 0x0000.
        let cfg = |off: u16| match off {
            0x84 => 0x0110_7009, // vndr, next 0x70, len 0x10, cfg_type 1
            0x88 => 4,
            0x8c => 0,
            _ => 0,
        };
        let mmio = |bar: u8, off: u64, w: u8| (bar == 4 && off == 0x12 && w == 2).then_some(3u32);
        let r = run(
            Check::VirtioCommon,
            &[(0x11, 0x98), (0x09, 0x84)],
            &cfg,
            &mmio,
        );
        assert!(r.ok, "{r:?}");
        assert!(r.detail.contains("num_queues = 3"));
        // The device vanished: all ones.
        let gone = |_: u8, _: u64, w: u8| Some(if w == 2 { 0xffff } else { u32::MAX });
        assert!(!run(Check::VirtioCommon, &[(0x09, 0x84)], &cfg, &gone).ok);
        assert!(!run(Check::VirtioCommon, &[], &cfg, &mmio).ok);
        let bad_bar = |off: u16| if off == 0x88 { 9 } else { cfg(off) };
        assert!(!run(Check::VirtioCommon, &[(0x09, 0x84)], &bad_bar, &mmio).ok);
    }

    #[test]
    fn nvme_and_e1000() {
        let nvme = |_: u8, off: u64, _: u8| Some(if off == 8 { 0x0001_0400 } else { 0x0040_07ff });
        let r = run(Check::NvmeVersion, &[], &|_| 0, &nvme);
        assert!(r.ok && r.detail.contains("NVMe 1.4"), "{r:?}");
        let ones = |_: u8, _: u64, _: u8| Some(u32::MAX);
        assert!(!run(Check::NvmeVersion, &[], &|_| 0, &ones).ok);
        assert!(!run(Check::NvmeVersion, &[], &|_| 0, &|_, _, _| None).ok);
        let e = |_: u8, off: u64, _: u8| (off == 8).then_some(0x8008_0783u32);
        assert!(run(Check::E1000Status, &[], &|_| 0, &e).ok);
        assert!(!run(Check::E1000Status, &[], &|_| 0, &ones).ok);
    }
}
