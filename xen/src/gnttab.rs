//! Grant operations a backend uses (`xen/include/public/grant_table.h`): mapping a guest's
//! granted page into dom0's physical address space (the shared rings), unmapping it, and
//! copying to or from granted pages (the data). Each operation carries its own status; the
//! hypercall's return value only reports argument errors. Layouts pinned by the tests.
//!
//! For a PVH dom0 `host_addr` is a guest-physical address in dom0's p2m, which must be an
//! unpopulated slot reserved for such mappings (Xen crashes the caller that maps over a grant,
//! foreign or MMIO entry).

use crate::errno::XenError;
use crate::hypercall::{Arg, Hypercall, call, nr};
use crate::le::{get_u16, get_u32, put_u16, put_u32, put_u64};
use crate::ops::issue;

pub const GNTTABOP_MAP_GRANT_REF: u64 = 0;
pub const GNTTABOP_UNMAP_GRANT_REF: u64 = 1;
pub const GNTTABOP_COPY: u64 = 5;

/// `GNTMAP_host_map`: map for the CPU at `host_addr`.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTCOPY_source_gref`: the source is a grant reference of `source.domid`.
pub const GNTCOPY_SOURCE_GREF: u16 = 1;
/// `GNTCOPY_dest_gref`.
pub const GNTCOPY_DEST_GREF: u16 = 2;

pub const MAP_SIZE: usize = 32;
pub const UNMAP_SIZE: usize = 24;
pub const COPY_SIZE: usize = 40;
/// Copies per hypercall (Linux netback's `COPY_BATCH_SIZE`).
pub const COPY_BATCH: usize = 64;

/// A grant status (`GNTST_*`, negative) from one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantStatus(pub i16);

impl GrantStatus {
    pub const OKAY: GrantStatus = GrantStatus(0);
    pub const BAD_GNTREF: GrantStatus = GrantStatus(-3);
    pub const PERMISSION_DENIED: GrantStatus = GrantStatus(-8);
    pub const BAD_COPY_ARG: GrantStatus = GrantStatus(-10);

    pub fn ok(self) -> bool {
        self.0 == 0
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "okay",
            -1 => "general_error",
            -2 => "bad_domain",
            -3 => "bad_gntref",
            -4 => "bad_handle",
            -5 => "bad_virt_addr",
            -6 => "bad_dev_addr",
            -7 => "no_device_space",
            -8 => "permission_denied",
            -9 => "bad_page",
            -10 => "bad_copy_arg",
            -11 => "address_too_big",
            -12 => "eagain",
            -13 => "no_space",
            _ => "unknown",
        }
    }
}

/// One side of a copy: a grant of another domain, or a frame of dom0 itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPtr {
    Grant {
        domid: u16,
        gref: u32,
        offset: u16,
    },
    /// dom0's own guest frame (`domid` `DOMID_SELF`).
    Local {
        gfn: u64,
        offset: u16,
    },
}

/// One `gnttab_copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copy {
    pub source: CopyPtr,
    pub dest: CopyPtr,
    pub len: u16,
}

impl Copy {
    /// The 40-byte `struct gnttab_copy`.
    pub fn to_bytes(&self) -> [u8; COPY_SIZE] {
        let mut b = [0u8; COPY_SIZE];
        let mut flags = 0;
        for (at, side, bit) in [
            (0, self.source, GNTCOPY_SOURCE_GREF),
            (16, self.dest, GNTCOPY_DEST_GREF),
        ] {
            match side {
                CopyPtr::Grant {
                    domid,
                    gref,
                    offset,
                } => {
                    put_u32(&mut b, at, gref);
                    put_u16(&mut b, at + 8, domid);
                    put_u16(&mut b, at + 10, offset);
                    flags |= bit;
                }
                CopyPtr::Local { gfn, offset } => {
                    put_u64(&mut b, at, gfn);
                    put_u16(&mut b, at + 8, crate::ops::DOMID_SELF);
                    put_u16(&mut b, at + 10, offset);
                }
            }
        }
        put_u16(&mut b, 32, self.len);
        put_u16(&mut b, 34, flags);
        b
    }

    /// Neither side crosses its page (Xen refuses such a copy with `bad_copy_arg`).
    pub fn within_pages(&self) -> bool {
        let off = |p: CopyPtr| match p {
            CopyPtr::Grant { offset, .. } | CopyPtr::Local { offset, .. } => u32::from(offset),
        };
        off(self.source) + u32::from(self.len) <= 4096
            && off(self.dest) + u32::from(self.len) <= 4096
    }
}

/// Run `copies` (at most [`COPY_BATCH`] per hypercall) and write each one's status into
/// `status` (same length). A copy that would cross a page is not sent and gets `bad_copy_arg`.
pub fn copy(
    h: &dyn Hypercall,
    copies: &[Copy],
    status: &mut [GrantStatus],
) -> Result<(), XenError> {
    if status.len() != copies.len() {
        return Err(XenError::EINVAL);
    }
    for (chunk, st) in copies.chunks(COPY_BATCH).zip(status.chunks_mut(COPY_BATCH)) {
        let mut buf = [0u8; COPY_SIZE * COPY_BATCH];
        let mut sent = [usize::MAX; COPY_BATCH];
        let mut n = 0;
        for (i, c) in chunk.iter().enumerate() {
            if c.within_pages() {
                buf[n * COPY_SIZE..(n + 1) * COPY_SIZE].copy_from_slice(&c.to_bytes());
                sent[n] = i;
                n += 1;
            } else {
                st[i] = GrantStatus::BAD_COPY_ARG;
            }
        }
        if n == 0 {
            continue;
        }
        issue(
            h,
            call!(
                nr::GRANT_TABLE_OP,
                Arg::Val(GNTTABOP_COPY),
                Arg::InOut(&mut buf[..n * COPY_SIZE]),
                Arg::Val(n as u64)
            ),
        )?;
        for (k, &i) in sent[..n].iter().enumerate() {
            st[i] = GrantStatus(get_u16(&buf, k * COPY_SIZE + 36).unwrap_or(0) as i16);
        }
    }
    Ok(())
}

/// Map `domid`'s grant `gref` at dom0's guest-physical `gpa` (a reserved, unpopulated slot);
/// the handle for [`unmap`].
pub fn map(
    h: &dyn Hypercall,
    domid: u16,
    gref: u32,
    gpa: u64,
    readonly: bool,
) -> Result<Result<u32, GrantStatus>, XenError> {
    let mut b = [0u8; MAP_SIZE];
    put_u64(&mut b, 0, gpa);
    let flags = GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 };
    put_u32(&mut b, 8, flags);
    put_u32(&mut b, 12, gref);
    put_u16(&mut b, 16, domid);
    issue(
        h,
        call!(
            nr::GRANT_TABLE_OP,
            Arg::Val(GNTTABOP_MAP_GRANT_REF),
            Arg::InOut(&mut b),
            Arg::Val(1)
        ),
    )?;
    let st = GrantStatus(get_u16(&b, 18).unwrap_or(0) as i16);
    Ok(if st.ok() {
        Ok(get_u32(&b, 20).unwrap_or(0))
    } else {
        Err(st)
    })
}

/// Undo [`map`].
pub fn unmap(h: &dyn Hypercall, gpa: u64, handle: u32) -> Result<GrantStatus, XenError> {
    let mut b = [0u8; UNMAP_SIZE];
    put_u64(&mut b, 0, gpa);
    put_u32(&mut b, 16, handle);
    issue(
        h,
        call!(
            nr::GRANT_TABLE_OP,
            Arg::Val(GNTTABOP_UNMAP_GRANT_REF),
            Arg::InOut(&mut b),
            Arg::Val(1)
        ),
    )?;
    Ok(GrantStatus(get_u16(&b, 20).unwrap_or(0) as i16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_layout_is_grant_table_h() {
        let c = Copy {
            source: CopyPtr::Grant {
                domid: 3,
                gref: 0x1234,
                offset: 100,
            },
            dest: CopyPtr::Local {
                gfn: 0x1_0000_0042,
                offset: 8,
            },
            len: 1500,
        };
        let b = c.to_bytes();
        assert_eq!(get_u32(&b, 0), Some(0x1234));
        assert_eq!(get_u16(&b, 8), Some(3));
        assert_eq!(get_u16(&b, 10), Some(100));
        assert_eq!(crate::le::get_u64(&b, 16), Some(0x1_0000_0042));
        assert_eq!(get_u16(&b, 24), Some(crate::ops::DOMID_SELF));
        assert_eq!(get_u16(&b, 26), Some(8));
        assert_eq!(get_u16(&b, 32), Some(1500));
        assert_eq!(get_u16(&b, 34), Some(GNTCOPY_SOURCE_GREF));
        assert!(c.within_pages());
        let over = Copy { len: 4000, ..c };
        assert!(!over.within_pages());
    }

    #[test]
    fn copies_maps_and_unmaps_against_the_fake() {
        use crate::fake::FakeXen;
        let x = FakeXen::new(4, 17);
        x.grant_page(3, 10, b"hello from domU", true);
        x.grant_page(3, 11, &[], false);
        let copies = [
            // TX: from the guest's read-only grant into dom0's frame 0x500.
            Copy {
                source: CopyPtr::Grant {
                    domid: 3,
                    gref: 10,
                    offset: 6,
                },
                dest: CopyPtr::Local {
                    gfn: 0x500,
                    offset: 100,
                },
                len: 4,
            },
            // RX: from dom0's frame into the guest's writable grant.
            Copy {
                source: CopyPtr::Local {
                    gfn: 0x500,
                    offset: 100,
                },
                dest: CopyPtr::Grant {
                    domid: 3,
                    gref: 11,
                    offset: 0,
                },
                len: 4,
            },
            // Into a read-only grant: refused, only this one.
            Copy {
                source: CopyPtr::Local {
                    gfn: 0x500,
                    offset: 0,
                },
                dest: CopyPtr::Grant {
                    domid: 3,
                    gref: 10,
                    offset: 0,
                },
                len: 4,
            },
            // A grant that does not exist.
            Copy {
                source: CopyPtr::Grant {
                    domid: 3,
                    gref: 99,
                    offset: 0,
                },
                dest: CopyPtr::Local {
                    gfn: 0x501,
                    offset: 0,
                },
                len: 4,
            },
            // Crossing a page: never sent.
            Copy {
                source: CopyPtr::Grant {
                    domid: 3,
                    gref: 10,
                    offset: 4095,
                },
                dest: CopyPtr::Local {
                    gfn: 0x501,
                    offset: 0,
                },
                len: 2,
            },
        ];
        let mut st = [GrantStatus::OKAY; 5];
        copy(&x, &copies, &mut st).unwrap();
        assert_eq!(
            st,
            [
                GrantStatus::OKAY,
                GrantStatus::OKAY,
                GrantStatus::PERMISSION_DENIED,
                GrantStatus::BAD_GNTREF,
                GrantStatus::BAD_COPY_ARG
            ]
        );
        assert_eq!(&x.local_page(0x500)[100..104], b"from");
        assert_eq!(&x.granted_page(3, 11).unwrap()[..4], b"from");
        // More than one batch.
        let many: alloc::vec::Vec<Copy> = (0..150).map(|_| copies[0]).collect();
        let mut st = alloc::vec![GrantStatus(-1); 150];
        copy(&x, &many, &mut st).unwrap();
        assert!(st.iter().all(|s| s.ok()));
        // Map, a second map on the same slot refused, unmap.
        let h = map(&x, 3, 11, 0x1_0000_0000, false).unwrap().unwrap();
        assert_eq!(x.grant_mappings(), [(0x1_0000_0000, 3, 11)]);
        assert!(map(&x, 3, 10, 0x1_0000_0000, true).unwrap().is_err());
        assert_eq!(
            map(&x, 3, 77, 0x1_0000_1000, true).unwrap(),
            Err(GrantStatus::BAD_GNTREF)
        );
        assert_eq!(unmap(&x, 0x1_0000_0000, h).unwrap(), GrantStatus::OKAY);
        assert!(x.grant_mappings().is_empty());
        assert_eq!(unmap(&x, 0x1_0000_0000, h).unwrap(), GrantStatus(-4));
    }

    #[test]
    fn status_names() {
        assert_eq!(GrantStatus::OKAY.name(), "okay");
        assert_eq!(GrantStatus(-3).name(), "bad_gntref");
        assert_eq!(GrantStatus(-99).name(), "unknown");
    }
}
