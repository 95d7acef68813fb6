//! Ethernet MAC addresses, and the ones dom0 gives guest network interfaces.

use core::fmt;
use core::str::FromStr;

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddress(pub [u8; 6]);

/// The OUI Xen's toolstack uses for guest interfaces (XenSource, Inc.): libxl and xl give
/// every vif `00:16:3e:xx:xx:xx` unless told otherwise.
pub const XEN_OUI: [u8; 3] = [0x00, 0x16, 0x3e];

impl MacAddress {
    pub const BROADCAST: MacAddress = MacAddress([0xff; 6]);
    pub const ZERO: MacAddress = MacAddress([0; 6]);

    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The I/G bit (bit 0 of the first octet): a group address, broadcast included.
    pub const fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// The U/L bit (bit 1 of the first octet): locally administered, not from an OUI.
    pub const fn is_local(self) -> bool {
        self.0[0] & 0x02 != 0
    }

    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    pub fn is_zero(self) -> bool {
        self == Self::ZERO
    }

    /// A unicast address that is not all zeros: usable for an interface.
    pub fn is_valid_unicast(self) -> bool {
        !self.is_multicast() && !self.is_zero()
    }

    /// The address dom0 gives guest `domid`'s vif number `devid` when the configuration names
    /// none. Like libxl's, it is `00:16:3e` (Xen's OUI) followed by three octets with the top
    /// bit of the first cleared; unlike libxl's (random), it is derived so it stays the same
    /// across reboots and rebuilds of the guest:
    ///
    /// `00:16:3e : (domid >> 8) & 0x7f : domid & 0xff : devid`
    ///
    /// Distinct for every real domain id (below `DOMID_FIRST_RESERVED`, 0x7ff0) and devid below
    /// 256; larger devids are folded into the last octet (XOR of their bytes), so may collide.
    ///
    /// Being in Xen's OUI it is a universally administered address (`is_local()` is false),
    /// as every libxl-generated vif address is; a unicast address in any case.
    pub fn xen_vif(domid: u16, devid: u32) -> MacAddress {
        let [d0, d1, d2, d3] = devid.to_le_bytes();
        let [hi, lo] = domid.to_be_bytes();
        let [o0, o1, o2] = XEN_OUI;
        MacAddress([o0, o1, o2, hi & 0x7f, lo, d0 ^ d1 ^ d2 ^ d3])
    }
}

impl fmt::Display for MacAddress {
    /// `00:16:3e:01:02:03`: lower-case hex, colon-separated, as Linux and Xen print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseMacError {
    /// Not six parts separated by ':' (or all by '-').
    WrongShape,
    /// Part `index` (0-based) is not exactly two hex digits.
    BadOctet { index: usize },
}

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseMacError::WrongShape => {
                f.write_str("not a MAC address (expected six hex octets like 00:16:3e:01:02:03)")
            }
            ParseMacError::BadOctet { index } => {
                write!(f, "MAC address octet {index} is not two hex digits")
            }
        }
    }
}

impl FromStr for MacAddress {
    type Err = ParseMacError;

    /// `00:16:3e:01:02:03` or `00-16-3E-01-02-03` (either case; one separator throughout).
    fn from_str(s: &str) -> Result<MacAddress, ParseMacError> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for (index, slot) in out.iter_mut().enumerate() {
            let part = parts.next().ok_or(ParseMacError::WrongShape)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseMacError::BadOctet { index });
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| ParseMacError::BadOctet { index })?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError::WrongShape);
        }
        Ok(MacAddress(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn display_and_parse() {
        let m = MacAddress([0x00, 0x16, 0x3e, 0x0a, 0xbc, 0xff]);
        assert_eq!(m.to_string(), "00:16:3e:0a:bc:ff");
        assert_eq!("00:16:3e:0a:bc:ff".parse(), Ok(m));
        assert_eq!("00:16:3E:0A:BC:FF".parse(), Ok(m));
        assert_eq!("00-16-3e-0a-bc-ff".parse(), Ok(m));
        assert_eq!(MacAddress::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
        for m in [
            MacAddress::ZERO,
            MacAddress::BROADCAST,
            MacAddress::xen_vif(0x7fef, 255),
        ] {
            assert_eq!(m.to_string().parse(), Ok(m));
        }
    }

    #[test]
    fn parse_errors() {
        use ParseMacError::*;
        for (input, err) in [
            ("", BadOctet { index: 0 }),
            ("00:16:3e:0a:bc", WrongShape),
            ("00:16:3e:0a:bc:ff:00", WrongShape),
            ("00:16:3e:0a:bc:", BadOctet { index: 5 }),
            ("0:16:3e:0a:bc:ff", BadOctet { index: 0 }),
            ("000:16:3e:0a:bc:ff", BadOctet { index: 0 }),
            ("00:16:3g:0a:bc:ff", BadOctet { index: 2 }),
            ("00:16:3e:0a:bc:+f", BadOctet { index: 5 }),
            ("00-16:3e:0a:bc:ff", BadOctet { index: 1 }),
            ("00:16:3e:0a:bc:\u{e9}", BadOctet { index: 5 }),
            (" 00:16:3e:0a:bc:ff", BadOctet { index: 0 }),
        ] {
            assert_eq!(input.parse::<MacAddress>(), Err(err), "{input:?}");
        }
        assert_eq!(
            "x".parse::<MacAddress>().unwrap_err().to_string(),
            "MAC address octet 0 is not two hex digits"
        );
    }

    #[test]
    fn bits() {
        assert!(MacAddress::BROADCAST.is_multicast() && MacAddress::BROADCAST.is_broadcast());
        let mcast: MacAddress = "01:00:5e:00:00:01".parse().unwrap();
        assert!(mcast.is_multicast() && !mcast.is_local() && !mcast.is_valid_unicast());
        let local: MacAddress = "02:00:00:00:00:01".parse().unwrap();
        assert!(local.is_local() && !local.is_multicast() && local.is_valid_unicast());
        // Linux netback's own vif address.
        let fe: MacAddress = "fe:ff:ff:ff:ff:ff".parse().unwrap();
        assert!(fe.is_local() && !fe.is_multicast());
        assert!(MacAddress::ZERO.is_zero() && !MacAddress::ZERO.is_valid_unicast());
    }

    #[test]
    fn xen_vif_addresses() {
        assert_eq!(MacAddress::xen_vif(1, 0).to_string(), "00:16:3e:00:01:00");
        assert_eq!(
            MacAddress::xen_vif(0x1234, 2).to_string(),
            "00:16:3e:12:34:02"
        );
        let m = MacAddress::xen_vif(7, 1);
        assert_eq!(m, MacAddress::xen_vif(7, 1), "stable");
        assert!(m.is_valid_unicast() && !m.is_local());
        // Top bit of the fourth octet is always clear, as libxl does.
        assert_eq!(MacAddress::xen_vif(0xffff, 0).0[3], 0x7f);
        assert_eq!(
            MacAddress::xen_vif(0, 0x1020_4080).0[5],
            0x10 ^ 0x20 ^ 0x40 ^ 0x80
        );
    }

    #[test]
    fn xen_vif_distinct_for_real_domains() {
        let mut seen = BTreeSet::new();
        for domid in (0..0x7ff0u16).step_by(97).chain([0x7fef]) {
            for devid in 0..256 {
                assert!(
                    seen.insert(MacAddress::xen_vif(domid, devid)),
                    "{domid} {devid}"
                );
            }
        }
    }
}
