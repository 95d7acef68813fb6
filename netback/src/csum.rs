//! Completing the checksum of a packet a guest sent with `NETTXF_csum_blank` (netfront always
//! offloads TCP/UDP checksums: the L4 field holds only the pseudo-header sum). Linux netback
//! hands such packets on as `CHECKSUM_PARTIAL` (`skb_checksum_setup`); dom0's switch, its own
//! IP stack and a NIC without offload need them complete, so the checksum is computed here in
//! full (RFC 1071 over the pseudo-header and the L4 segment), for TCP and UDP over IPv4 and
//! IPv6, behind an optional 802.1Q tag. What cannot be parsed is refused, with the reason.

/// Why a packet's checksum could not be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsumError {
    /// Shorter than the headers it claims.
    Truncated,
    /// Not IPv4 or IPv6 (the EtherType).
    NotIp(u16),
    /// An IPv4 header length under 20 bytes, or a version that disagrees with the EtherType.
    BadIpHeader,
    /// An IPv4 fragment: its L4 header may not be here.
    Fragment,
    /// Not TCP or UDP (the IP protocol or IPv6 next header; IPv6 extension headers included).
    NotTcpUdp(u8),
}

const TCP: u8 = 6;
const UDP: u8 = 17;

/// Complete the TCP or UDP checksum of the Ethernet frame `frame` in place.
pub fn complete(frame: &mut [u8]) -> Result<(), CsumError> {
    let mut l3 = 14;
    let mut ethertype = be16(frame, 12).ok_or(CsumError::Truncated)?;
    if ethertype == 0x8100 {
        ethertype = be16(frame, 16).ok_or(CsumError::Truncated)?;
        l3 = 18;
    }
    let (proto, l4, l4_len, pseudo) = match ethertype {
        0x0800 => {
            let ip = frame.get(l3..l3 + 20).ok_or(CsumError::Truncated)?;
            if ip[0] >> 4 != 4 || usize::from(ip[0] & 0xf) * 4 < 20 {
                return Err(CsumError::BadIpHeader);
            }
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
                return Err(CsumError::Fragment);
            }
            let proto = ip[9];
            let l4 = l3 + ihl;
            let l4_len = total.checked_sub(ihl).ok_or(CsumError::BadIpHeader)?;
            if l3 + total > frame.len() {
                return Err(CsumError::Truncated);
            }
            let mut sum = sum16(&frame[l3 + 12..l3 + 20]);
            sum += u32::from(proto) + l4_len as u32;
            (proto, l4, l4_len, sum)
        }
        0x86dd => {
            let ip = frame.get(l3..l3 + 40).ok_or(CsumError::Truncated)?;
            if ip[0] >> 4 != 6 {
                return Err(CsumError::BadIpHeader);
            }
            let l4_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            let proto = ip[6];
            let l4 = l3 + 40;
            if l4 + l4_len > frame.len() {
                return Err(CsumError::Truncated);
            }
            let mut sum = sum16(&frame[l3 + 8..l3 + 40]);
            sum += u32::from(proto) + l4_len as u32;
            (proto, l4, l4_len, sum)
        }
        other => return Err(CsumError::NotIp(other)),
    };
    let field = match proto {
        TCP if l4_len >= 20 => l4 + 16,
        UDP if l4_len >= 8 => l4 + 6,
        TCP | UDP => return Err(CsumError::Truncated),
        p => return Err(CsumError::NotTcpUdp(p)),
    };
    frame[field] = 0;
    frame[field + 1] = 0;
    let sum = pseudo + sum16(&frame[l4..l4 + l4_len]);
    let mut c = !fold(sum);
    if proto == UDP && c == 0 {
        c = 0xffff; // RFC 768: 0 means "no checksum"
    }
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The one's-complement sum of `b` as big-endian 16-bit words (odd length padded), unfolded.
pub(crate) fn sum16(b: &[u8]) -> u32 {
    let mut s = 0u32;
    let mut chunks = b.chunks_exact(2);
    for w in &mut chunks {
        s = s.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
        s = (s & 0xffff) + (s >> 16);
    }
    if let [last] = chunks.remainder() {
        s += u32::from(*last) << 8;
    }
    s
}

pub(crate) fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

#[cfg(test)]
mod tests;
