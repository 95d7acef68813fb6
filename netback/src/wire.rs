//! The netif wire formats (`xen/include/public/io/netif.h`): requests and responses of the TX
//! and RX rings and the extra-info slots, read from and written to their exact byte layouts
//! (little-endian, sizes and offsets pinned by the tests).

use xen::le::{get_u16, get_u32};

/// `NETTXF_csum_blank`: the L4 checksum holds only the pseudo-header sum; the backend completes it.
pub const NETTXF_CSUM_BLANK: u16 = 1;
/// `NETTXF_data_validated`: the packet's checksum is known good.
pub const NETTXF_DATA_VALIDATED: u16 = 2;
/// `NETTXF_more_data`: another request slot of the same packet follows.
pub const NETTXF_MORE_DATA: u16 = 4;
/// `NETTXF_extra_info`: an extra-info slot follows the first request.
pub const NETTXF_EXTRA_INFO: u16 = 8;

/// `NETRXF_data_validated`.
pub const NETRXF_DATA_VALIDATED: u16 = 1;
/// `NETRXF_csum_blank`.
pub const NETRXF_CSUM_BLANK: u16 = 2;
/// `NETRXF_more_data`: the packet continues in the next slot.
pub const NETRXF_MORE_DATA: u16 = 4;
/// `NETRXF_extra_info`: an extra-info slot follows.
pub const NETRXF_EXTRA_INFO: u16 = 8;

/// `NETIF_RSP_DROPPED`.
pub const NETIF_RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const NETIF_RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const NETIF_RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: the response for a slot an extra-info descriptor used.
pub const NETIF_RSP_NULL: i16 = 1;

/// `XEN_NETIF_MAX_TX_SIZE`: the largest packet a TX request chain may describe.
pub const MAX_TX_SIZE: u16 = 0xffff;
/// `XEN_NETIF_NR_SLOTS_MIN`: slots per packet every backend must accept.
pub const NR_SLOTS_MIN: usize = 18;

/// The extra-info types (`XEN_NETIF_EXTRA_TYPE_*`).
pub const EXTRA_TYPE_GSO: u8 = 1;
pub const EXTRA_TYPE_MCAST_ADD: u8 = 2;
pub const EXTRA_TYPE_MCAST_DEL: u8 = 3;
pub const EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const EXTRA_FLAG_MORE: u8 = 1;

/// Every netif ring entry is 12 (TX) or 8 (RX) bytes; both rings hold 256 of them in a page.
pub const TX_SLOT: usize = 12;
pub const RX_SLOT: usize = 8;

/// `netif_tx_request`: 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxRequest {
    pub gref: u32,
    pub offset: u16,
    pub flags: u16,
    pub id: u16,
    /// The first slot: the whole packet's length; the others: their fragment's.
    pub size: u16,
}

impl TxRequest {
    pub fn parse(b: &[u8; TX_SLOT]) -> TxRequest {
        TxRequest {
            gref: get_u32(b, 0).unwrap_or(0),
            offset: get_u16(b, 4).unwrap_or(0),
            flags: get_u16(b, 6).unwrap_or(0),
            id: get_u16(b, 8).unwrap_or(0),
            size: get_u16(b, 10).unwrap_or(0),
        }
    }

    pub fn to_bytes(&self) -> [u8; TX_SLOT] {
        let mut b = [0u8; TX_SLOT];
        b[0..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..10].copy_from_slice(&self.id.to_le_bytes());
        b[10..12].copy_from_slice(&self.size.to_le_bytes());
        b
    }

    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// `netif_tx_response`: 4 bytes (in a 12-byte slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxResponse {
    pub id: u16,
    pub status: i16,
}

impl TxResponse {
    pub fn to_bytes(&self) -> [u8; 4] {
        let mut b = [0u8; 4];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.status.to_le_bytes());
        b
    }
}

/// `netif_rx_request`: 8 bytes; `gref` is a whole page granted writable to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxRequest {
    pub id: u16,
    pub gref: u32,
}

impl RxRequest {
    pub fn parse(b: &[u8; RX_SLOT]) -> RxRequest {
        RxRequest {
            id: get_u16(b, 0).unwrap_or(0),
            gref: get_u32(b, 4).unwrap_or(0),
        }
    }

    pub fn to_bytes(&self) -> [u8; RX_SLOT] {
        let mut b = [0u8; RX_SLOT];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[4..8].copy_from_slice(&self.gref.to_le_bytes());
        b
    }
}

/// `netif_rx_response`: 8 bytes, written into the slot of the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxResponse {
    pub id: u16,
    pub offset: u16,
    pub flags: u16,
    /// Bytes in this slot if ≥ 0, else a `NETIF_RSP_*` error.
    pub status: i16,
}

impl RxResponse {
    /// The response as netfront reads it (tests play the frontend).
    pub fn parse(b: &[u8; RX_SLOT]) -> RxResponse {
        let u = |i: usize| get_u16(b, i).unwrap_or(0);
        RxResponse {
            id: u(0),
            offset: u(2),
            flags: u(4),
            status: u(6) as i16,
        }
    }

    pub fn to_bytes(&self) -> [u8; RX_SLOT] {
        let mut b = [0u8; RX_SLOT];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.offset.to_le_bytes());
        b[4..6].copy_from_slice(&self.flags.to_le_bytes());
        b[6..8].copy_from_slice(&self.status.to_le_bytes());
        b
    }
}

/// `netif_extra_info`: 8 bytes overlaying a ring slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_GSO`: segmentation offload (MSS, `XEN_NETIF_GSO_TYPE_*`).
    Gso {
        size: u16,
        kind: u8,
        features: u16,
    },
    McastAdd([u8; 6]),
    McastDel([u8; 6]),
    Hash {
        kind: u8,
        algorithm: u8,
        value: [u8; 4],
    },
}

/// An extra-info slot of a type this backend does not know (or `NONE`, which is invalid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownExtra(pub u8);

impl ExtraInfo {
    /// The slot's 8 bytes (`more`: `XEN_NETIF_EXTRA_FLAG_MORE`).
    pub fn to_bytes(&self, more: bool) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[1] = if more { EXTRA_FLAG_MORE } else { 0 };
        match *self {
            ExtraInfo::Gso {
                size,
                kind,
                features,
            } => {
                b[0] = EXTRA_TYPE_GSO;
                b[2..4].copy_from_slice(&size.to_le_bytes());
                b[4] = kind;
                b[6..8].copy_from_slice(&features.to_le_bytes());
            }
            ExtraInfo::McastAdd(m) | ExtraInfo::McastDel(m) => {
                b[0] = if matches!(self, ExtraInfo::McastAdd(_)) {
                    EXTRA_TYPE_MCAST_ADD
                } else {
                    EXTRA_TYPE_MCAST_DEL
                };
                b[2..8].copy_from_slice(&m);
            }
            ExtraInfo::Hash {
                kind,
                algorithm,
                value,
            } => {
                b[0] = EXTRA_TYPE_HASH;
                b[2] = kind;
                b[3] = algorithm;
                b[4..8].copy_from_slice(&value);
            }
        }
        b
    }

    /// The extra and whether another follows (`XEN_NETIF_EXTRA_FLAG_MORE`).
    pub fn parse(b: &[u8; 8]) -> Result<(ExtraInfo, bool), UnknownExtra> {
        let more = b[1] & EXTRA_FLAG_MORE != 0;
        let mac = || {
            let mut m = [0u8; 6];
            m.copy_from_slice(&b[2..8]);
            m
        };
        let e = match b[0] {
            EXTRA_TYPE_GSO => ExtraInfo::Gso {
                size: get_u16(b, 2).unwrap_or(0),
                kind: b[4],
                features: get_u16(b, 6).unwrap_or(0),
            },
            EXTRA_TYPE_MCAST_ADD => ExtraInfo::McastAdd(mac()),
            EXTRA_TYPE_MCAST_DEL => ExtraInfo::McastDel(mac()),
            EXTRA_TYPE_HASH => ExtraInfo::Hash {
                kind: b[2],
                algorithm: b[3],
                value: [b[4], b[5], b[6], b[7]],
            },
            t => return Err(UnknownExtra(t)),
        };
        Ok((e, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_request_layout_is_netif_h() {
        let r = TxRequest {
            gref: 0x0403_0201,
            offset: 0x0605,
            flags: 0x0807,
            id: 0x0a09,
            size: 0x0c0b,
        };
        let b = r.to_bytes();
        assert_eq!(b, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(TxRequest::parse(&b), r);
    }

    #[test]
    fn responses_and_rx_layouts_are_netif_h() {
        assert_eq!(
            TxResponse {
                id: 0x0201,
                status: NETIF_RSP_DROPPED
            }
            .to_bytes(),
            [1, 2, 0xfe, 0xff]
        );
        let rq = RxRequest {
            id: 0x0201,
            gref: 0x0807_0605,
        };
        assert_eq!(rq.to_bytes(), [1, 2, 0, 0, 5, 6, 7, 8]);
        assert_eq!(RxRequest::parse(&rq.to_bytes()), rq);
        let rs = RxResponse {
            id: 1,
            offset: 2,
            flags: NETRXF_MORE_DATA,
            status: 1500,
        };
        assert_eq!(rs.to_bytes(), [1, 0, 2, 0, 4, 0, 0xdc, 0x05]);
    }

    #[test]
    fn extras_parse_and_unknown_types_are_refused() {
        let gso = [EXTRA_TYPE_GSO, EXTRA_FLAG_MORE, 0xb4, 0x05, 1, 0, 0, 0];
        assert_eq!(
            ExtraInfo::parse(&gso),
            Ok((
                ExtraInfo::Gso {
                    size: 1460,
                    kind: 1,
                    features: 0
                },
                true
            ))
        );
        let (e, more) = ExtraInfo::parse(&gso).unwrap();
        assert_eq!(e.to_bytes(more), gso);
        let add = [EXTRA_TYPE_MCAST_ADD, 0, 1, 0, 0x5e, 0, 0, 1];
        assert_eq!(
            ExtraInfo::McastAdd([1, 0, 0x5e, 0, 0, 1]).to_bytes(false),
            add
        );
        assert_eq!(
            ExtraInfo::parse(&add),
            Ok((ExtraInfo::McastAdd([1, 0, 0x5e, 0, 0, 1]), false))
        );
        for t in [0u8, 5, 6, 0xff] {
            assert_eq!(
                ExtraInfo::parse(&[t, 0, 0, 0, 0, 0, 0, 0]),
                Err(UnknownExtra(t))
            );
        }
    }
}
