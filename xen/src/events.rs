//! The shared_info page (public/xen.h, x86-64 layout) and the 2-level event channel ABI.
//!
//! dom0 owns the page and does the atomic accesses; this module gives it the offsets and the
//! pure logic (which ports are pending, what time it is), tested on the host.

/// Byte offsets inside `struct shared_info` (x86-64).
pub mod layout {
    /// `vcpu_info[XEN_LEGACY_MAX_VCPUS]`, 64 bytes each.
    pub const VCPU_INFO: usize = 0;
    pub const VCPU_INFO_SIZE: usize = 64;
    pub const LEGACY_MAX_VCPUS: usize = 32;
    /// In `vcpu_info`: `u8 evtchn_upcall_pending`.
    pub const UPCALL_PENDING: usize = 0;
    /// In `vcpu_info`: `u8 evtchn_upcall_mask`.
    pub const UPCALL_MASK: usize = 1;
    /// In `vcpu_info`: `xen_ulong_t evtchn_pending_sel`.
    pub const PENDING_SEL: usize = 8;
    /// In `vcpu_info`: `struct vcpu_time_info time` (after `arch_vcpu_info` {cr2, pad}).
    pub const TIME: usize = 32;
    /// `xen_ulong_t evtchn_pending[64]`.
    pub const EVTCHN_PENDING: usize = 2048;
    /// `xen_ulong_t evtchn_mask[64]`.
    pub const EVTCHN_MASK: usize = 2560;
    /// `u32 wc_version, wc_sec, wc_nsec` and (x86-64) `u32 wc_sec_hi`.
    pub const WC_VERSION: usize = 3072;
    pub const WC_SEC: usize = 3076;
    pub const WC_NSEC: usize = 3080;
    pub const WC_SEC_HI: usize = 3084;
    /// Number of ports the 2-level ABI has on x86-64 (64 × 64).
    pub const NR_PORTS: u32 = 4096;
}

/// `struct vcpu_time_info` (32 bytes): Xen's pvclock for one vCPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    /// Odd while Xen is updating the record.
    pub version: u32,
    pub tsc_timestamp: u64,
    /// Xen system time (ns since Xen booted) at `tsc_timestamp`.
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
}

impl VcpuTimeInfo {
    /// Decode the 32-byte record.
    pub fn from_bytes(b: &[u8; 32]) -> Self {
        let u32at = |o: usize| crate::le::u32_at(b, o);
        let u64at = |o: usize| u64::from(u32at(o)) | (u64::from(u32at(o + 4)) << 32);
        VcpuTimeInfo {
            version: u32at(0),
            tsc_timestamp: u64at(8),
            system_time: u64at(16),
            tsc_to_system_mul: u32at(24),
            tsc_shift: b[28] as i8,
            flags: b[29],
        }
    }

    /// Xen system time in ns at TSC value `tsc` (the pvclock formula:
    /// `system_time + ((tsc - tsc_timestamp) << shift) * mul >> 32`).
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        // Wrapping, as Linux's pvclock does: an HVM guest's TSC offset can make
        // `tsc_timestamp` "negative" (seen under Xen 4.17: 0xffff_ffff_f835_...). A TSC read
        // that is really before the stamp (another vCPU's record) counts as no time passed.
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        let mut delta = if (delta as i64) < 0 { 0 } else { delta };
        if self.tsc_shift >= 0 {
            delta = delta
                .checked_shl(u32::from(self.tsc_shift.unsigned_abs()))
                .unwrap_or(u64::MAX);
        } else {
            delta >>= u32::from(self.tsc_shift.unsigned_abs()).min(63);
        }
        let scaled = ((u128::from(delta) * u128::from(self.tsc_to_system_mul)) >> 32) as u64;
        self.system_time.saturating_add(scaled)
    }

    /// The TSC frequency in kHz this record implies (for reports).
    pub fn tsc_khz(&self) -> u64 {
        if self.tsc_to_system_mul == 0 {
            return 0;
        }
        // ns per tick = mul / 2^32 * 2^shift, so kHz = 10^6 / that.
        let mut khz = (1_000_000u128 << 32) / u128::from(self.tsc_to_system_mul);
        if self.tsc_shift >= 0 {
            khz >>= u32::from(self.tsc_shift.unsigned_abs());
        } else {
            khz <<= u32::from(self.tsc_shift.unsigned_abs());
        }
        khz.min(u128::from(u64::MAX)) as u64
    }
}

/// The ports that are pending and not masked, in the 2-level scheme: `sel` says which words of
/// `pending` to look at (Xen sets a bit per word), then each word is masked with `mask`.
/// Returns them in ascending order through `f`.
pub fn for_each_pending(sel: u64, pending: &[u64; 64], mask: &[u64; 64], mut f: impl FnMut(u32)) {
    let mut sel = sel;
    while sel != 0 {
        let w = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        let mut bits = pending[w] & !mask[w];
        while bits != 0 {
            let b = bits.trailing_zeros();
            bits &= bits - 1;
            f(w as u32 * 64 + b);
        }
    }
}

/// Word index and bit of `port` in the pending/mask arrays.
pub fn port_word_bit(port: u32) -> Option<(usize, u64)> {
    if port >= layout::NR_PORTS {
        return None;
    }
    Some(((port / 64) as usize, 1u64 << (port % 64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvclock_converts_tsc_to_ns() {
        // A 2 GHz TSC: 0.5 ns per tick = mul 2^31 with shift 0.
        let t = VcpuTimeInfo {
            version: 2,
            tsc_timestamp: 1000,
            system_time: 5_000_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            flags: 0,
        };
        assert_eq!(t.system_time_at(1000), 5_000_000);
        assert_eq!(t.system_time_at(3000), 5_001_000);
        // A TSC read before the record (another vCPU's record) never goes backwards.
        assert_eq!(t.system_time_at(0), 5_000_000);
        // A stamp taken while the guest TSC was "negative" (it wraps): still counts forward.
        let w = VcpuTimeInfo {
            tsc_timestamp: u64::MAX - 999,
            ..t
        };
        assert_eq!(w.system_time_at(1000), 5_000_000 + 1000);
        assert_eq!(t.tsc_khz(), 2_000_000);
        // Shifted forms of the same clock agree.
        let s = VcpuTimeInfo {
            tsc_to_system_mul: 1 << 30,
            tsc_shift: 1,
            ..t
        };
        assert_eq!(s.system_time_at(3000), 5_001_000);
        assert_eq!(s.tsc_khz(), 2_000_000);
        let n = VcpuTimeInfo {
            tsc_to_system_mul: 1 << 31 | 1 << 30,
            tsc_shift: -1,
            ..t
        };
        assert_eq!(n.system_time_at(1000 + 4000), 5_000_000 + 1500);
    }

    #[test]
    fn pvclock_survives_hostile_values() {
        let t = VcpuTimeInfo {
            tsc_timestamp: 0,
            system_time: u64::MAX - 1,
            tsc_to_system_mul: u32::MAX,
            tsc_shift: 127,
            ..Default::default()
        };
        assert_eq!(t.system_time_at(u64::MAX), u64::MAX);
        let z = VcpuTimeInfo {
            tsc_shift: -128,
            ..t
        };
        let _ = z.system_time_at(u64::MAX);
        assert_eq!(VcpuTimeInfo::default().tsc_khz(), 0);
    }

    #[test]
    fn time_record_decodes() {
        let mut b = [0u8; 32];
        b[0] = 4;
        b[8..16].copy_from_slice(&77u64.to_le_bytes());
        b[16..24].copy_from_slice(&99u64.to_le_bytes());
        b[24..28].copy_from_slice(&(1u32 << 31).to_le_bytes());
        b[28] = (-2i8) as u8;
        b[29] = 1;
        let t = VcpuTimeInfo::from_bytes(&b);
        assert_eq!(t.version, 4);
        assert_eq!((t.tsc_timestamp, t.system_time), (77, 99));
        assert_eq!((t.tsc_shift, t.flags), (-2, 1));
    }

    #[test]
    fn pending_scan_honours_selector_and_mask() {
        let mut pending = [0u64; 64];
        let mut mask = [0u64; 64];
        pending[0] = 0b1010;
        pending[2] = 1 << 63;
        pending[5] = 1; // not selected: ignored
        mask[0] = 0b1000;
        let mut got = alloc::vec::Vec::new();
        for_each_pending((1 << 0) | (1 << 2), &pending, &mask, |p| got.push(p));
        assert_eq!(got, [1, 2 * 64 + 63]);
        assert_eq!(port_word_bit(65), Some((1, 2)));
        assert_eq!(port_word_bit(4096), None);
    }
}
