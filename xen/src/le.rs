//! Little-endian field access for the byte layouts of Xen's and ACPI's structures.
//!
//! `u*_at` read a field the caller has already bounds-checked (they panic past the end, which
//! would be a bug in the caller, never a consequence of input); `get_u*` return `None` instead,
//! for places that have not checked.

pub fn get_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub fn get_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub fn get_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// # Panics
/// If `b` is shorter than `off + 4` (callers check lengths first).
pub fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// # Panics
/// If `b` is shorter than `off + 8` (callers check lengths first).
pub fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

pub fn put_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_round_trip() {
        let mut b = [0u8; 16];
        put_u16(&mut b, 0, 0xbeef);
        put_u32(&mut b, 2, 0xdead_beef);
        put_u64(&mut b, 8, 0x0123_4567_89ab_cdef);
        assert_eq!(get_u16(&b, 0), Some(0xbeef));
        assert_eq!(u32_at(&b, 2), 0xdead_beef);
        assert_eq!(u64_at(&b, 8), 0x0123_4567_89ab_cdef);
        assert_eq!(get_u64(&b, 8), Some(0x0123_4567_89ab_cdef));
    }

    #[test]
    fn get_never_panics() {
        let b = [1u8; 7];
        assert_eq!(get_u64(&b, 0), None);
        assert_eq!(get_u32(&b, 4), None);
        assert_eq!(get_u32(&b, usize::MAX), None);
        assert_eq!(get_u16(&b, 6), None);
        assert_eq!(get_u16(&b, 5), Some(0x0101));
    }
}
