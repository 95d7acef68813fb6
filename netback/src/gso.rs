//! TCP segmentation of the large packets netfront sends when the backend offers
//! `feature-gso-tcpv4` (`XEN_NETIF_EXTRA_TYPE_GSO` with `XEN_NETIF_GSO_TYPE_TCPV4` and the MSS):
//! what Linux netback leaves to the kernel's `skb_gso_segment`, done here because the switch,
//! dom0's IP stack, other vifs (no GSO on RX) and the NIC all take MTU-sized frames.
//!
//! Each segment gets the headers of the large packet with its own IPv4 total length, id
//! (incremented per segment, as Linux's `inet_gso_segment`) and header checksum, TCP sequence
//! number, flags (FIN and PSH only on the last segment, CWR only on the first: Linux's
//! `tcp_gso_segment`) and a full TCP checksum. The packet is the guest's: every length is
//! checked against the bytes there, and the number of segments is bounded ([`MAX_SEGMENTS`]), so
//! a tiny MSS cannot turn one packet into thousands of frames.

use alloc::vec::Vec;

use crate::csum::{self, fold, sum16};

/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const GSO_TYPE_TCPV4: u8 = 1;

/// Segments one packet may become. A 64 KiB packet at the smallest MSS Linux sends on a
/// 1500-byte MTU path (536, RFC 879) is 123 segments.
pub const MAX_SEGMENTS: usize = 128;

/// Why a GSO packet was not segmented (the packet is dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoError {
    /// A GSO type other than TCPv4 (dom0 offers only `feature-gso-tcpv4`).
    UnsupportedType(u8),
    /// Shorter than the headers it claims, or an IP length beyond the packet.
    Truncated,
    /// Not TCP over IPv4 (behind an optional 802.1Q tag), or an IPv4 fragment.
    NotTcpIpv4,
    /// More than [`MAX_SEGMENTS`] segments at this MSS.
    TooManySegments { mss: u16, payload: usize },
}

fn be16(b: &[u8], at: usize) -> Result<u16, GsoError> {
    Ok(u16::from_be_bytes([
        *b.get(at).ok_or(GsoError::Truncated)?,
        *b.get(at + 1).ok_or(GsoError::Truncated)?,
    ]))
}

fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Where a TCP/IPv4 GSO packet's headers and payload are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    l3: usize,
    ihl: usize,
    l4: usize,
    doff: usize,
    /// First payload byte, and the end of the IP packet.
    data: usize,
    end: usize,
    mss: usize,
    /// Segments at this MSS (at least one).
    count: usize,
}

fn layout(frame: &[u8], mss: u16) -> Result<Layout, GsoError> {
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12)?;
    if ethertype == 0x8100 {
        ethertype = be16(frame, 16)?;
        l3 = 18;
    }
    if ethertype != 0x0800 {
        return Err(GsoError::NotTcpIpv4);
    }
    let ip = frame.get(l3..l3 + 20).ok_or(GsoError::Truncated)?;
    let ihl = usize::from(ip[0] & 0xf) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != 6 || be16(frame, l3 + 6)? & 0x3fff != 0 {
        return Err(GsoError::NotTcpIpv4);
    }
    let total = usize::from(be16(frame, l3 + 2)?);
    let end = l3 + total;
    let l4 = l3 + ihl;
    let doff = usize::from(*frame.get(l4 + 12).ok_or(GsoError::Truncated)? >> 4) * 4;
    let data = l4 + doff;
    if doff < 20 || end > frame.len() || data > end {
        return Err(GsoError::Truncated);
    }
    let payload = end - data;
    let mss = usize::from(mss.max(1));
    let count = payload.div_ceil(mss).max(1);
    if count > MAX_SEGMENTS {
        return Err(GsoError::TooManySegments {
            mss: mss as u16,
            payload,
        });
    }
    Ok(Layout {
        l3,
        ihl,
        l4,
        doff,
        data,
        end,
        mss,
        count,
    })
}

/// Whether `frame` can be segmented at `mss` (what [`segment`] would accept): the check done
/// when a GSO packet is taken from a guest, so that one forwarded whole to another guest is
/// as well-formed as one cut into frames.
pub fn check(frame: &[u8], mss: u16) -> Result<(), GsoError> {
    layout(frame, mss).map(|_| ())
}

/// Put the pseudo-header sum (addresses, protocol, TCP length) in the TCP checksum field of a
/// GSO packet, the `CHECKSUM_PARTIAL` form a receiver told `NETRXF_csum_blank` expects. For a
/// packet the guest sent without `NETTXF_csum_blank` (Linux netback's `checksum_setup` does the
/// same with `recalculate_partial_csum`).
pub fn set_partial_csum(frame: &mut [u8], mss: u16) -> Result<(), GsoError> {
    let l = layout(frame, mss)?;
    let mut sum = sum16(&frame[l.l3 + 12..l.l3 + 20]);
    sum += 6 + (l.end - l.l4) as u32;
    put16(frame, l.l4 + 16, fold(sum));
    Ok(())
}

/// The Ethernet frame `frame` (a TCP/IPv4 packet of any length) cut into frames of at most
/// `mss` bytes of TCP payload each. `mss` is non-zero (a GSO size of 0 is a fatal ring error,
/// checked by the caller as Linux netback does).
pub fn segment(frame: &[u8], mss: u16) -> Result<Vec<Vec<u8>>, GsoError> {
    let Layout {
        l3,
        ihl,
        l4,
        doff,
        data,
        end,
        mss,
        count,
    } = layout(frame, mss)?;
    let id = be16(frame, l3 + 4)?;
    let seq = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]]);
    let flags = frame[l4 + 13];
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let from = data + i * mss;
        let to = (from + mss).min(end);
        let mut s = Vec::with_capacity(data + (to - from));
        s.extend_from_slice(&frame[..data]);
        s.extend_from_slice(&frame[from..to]);
        put16(&mut s, l3 + 2, (ihl + doff + (to - from)) as u16);
        put16(&mut s, l3 + 4, id.wrapping_add(i as u16));
        put16(&mut s, l3 + 10, 0);
        let c = !fold(sum16(&s[l3..l3 + ihl]));
        put16(&mut s, l3 + 10, c);
        s[l4 + 4..l4 + 8].copy_from_slice(&seq.wrapping_add((i * mss) as u32).to_be_bytes());
        let mut f = flags;
        if i + 1 < count {
            f &= !(0x01 | 0x08); // FIN, PSH
        }
        if i > 0 {
            f &= !0x80; // CWR
        }
        s[l4 + 13] = f;
        csum::complete(&mut s).map_err(|_| GsoError::Truncated)?;
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
