use super::*;

#[test]
fn createdomain_layouts_differ_after_0x17() {
    let c = CreateDomain::pvh(2, [7; 16]);
    let a = c.encode(DomctlVersion(0x15));
    let b = c.encode(DomctlVersion(0x17));
    assert_eq!(a.len(), 64);
    assert_eq!(b.len(), 68);
    assert_eq!(get_u32(&a, 20), Some(3));
    assert_eq!(get_u32(&a, 28), Some(2));
    assert_eq!(get_u32(&a, 36), Some(u32::MAX));
    assert_eq!(get_u32(&a, 44), Some(1));
    assert_eq!(get_u32(&a, 56), Some(X86_EMU_LAPIC));
    assert_eq!(get_u32(&b, 56), Some(0));
    assert_eq!(get_u32(&b, 60), Some(X86_EMU_LAPIC));
    assert_eq!(&a[4..20], &[7; 16]);
}

#[test]
fn vcpu_affinity_is_set_and_read_back() {
    let x = crate::fake::FakeXen::new(4, 17).with_vcpus(2);
    let v = DomctlVersion(0x15);
    // Every CPU asked for: Xen answers with the ones it has (two here).
    let mut all = [0xffu8; 8];
    set_vcpu_affinity(&x, v, 0, 0, &mut all).unwrap();
    assert_eq!(all, [0b11, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(x.affinity_sets(), [(0, 0, 0b11)]);
    // No CPU Xen has, a vCPU dom0 does not have, an empty map: refused.
    let mut none = [0u8; 8];
    assert_eq!(
        set_vcpu_affinity(&x, v, 0, 0, &mut none),
        Err(XenError::EINVAL)
    );
    assert_eq!(
        set_vcpu_affinity(&x, v, 0, 2, &mut all),
        Err(XenError::EINVAL)
    );
    assert_eq!(
        set_vcpu_affinity(&x, v, 0, 0, &mut []),
        Err(XenError::EINVAL)
    );
    // The wrong interface version is refused like any domctl.
    assert_eq!(
        set_vcpu_affinity(&x, DomctlVersion(0x17), 0, 0, &mut all),
        Err(XenError::EACCES)
    );
}

#[test]
fn expected_versions() {
    assert_eq!(DomctlVersion::expected(4, 17), Some(DomctlVersion(0x15)));
    assert_eq!(DomctlVersion::expected(4, 20), Some(DomctlVersion(0x17)));
    assert_eq!(DomctlVersion::expected(3, 4), None);
}

#[test]
fn records_round_trip_and_reject_truncation() {
    let mut v = Vec::new();
    hvmctx::push(&mut v, hvmctx::HEADER, 0, &[1; hvmctx::HEADER_LEN]);
    hvmctx::push(
        &mut v,
        hvmctx::CPU,
        0,
        &hvmctx::pvh_boot_cpu(0x1000850, 0x5000),
    );
    hvmctx::push(&mut v, hvmctx::END, 0, &[]);
    let r = hvmctx::records(&v).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(r[1].0, hvmctx::CPU);
    assert_eq!(get_u64(r[1].2, 640), Some(0x1000850));
    assert_eq!(get_u64(r[1].2, 520), Some(0x5000));
    assert!(hvmctx::records(&v[..v.len() - 9]).is_none());
    assert!(hvmctx::records(&[]).is_none());
}

#[test]
fn foreign_maps_are_undone_in_one_multicall() {
    let x = crate::fake::FakeXen::new(4, 17);
    let v = DomctlVersion(0x15);
    let d = create_domain(&x, v, &CreateDomain::pvh(1, [0; 16])).unwrap();
    max_mem(&x, v, d, 1 << 20).unwrap();
    assert_eq!(populate_physmap(&x, d, 0, &mut [5, 6, 7]).unwrap(), 3);
    let mut errs = [0; 3];
    map_foreign(&x, d, &[5, 6, 8], &[0x100, 0x101, 0x102], &mut errs).unwrap();
    assert_eq!(errs, [0, 0, -22], "frame 8 was never populated");
    assert_eq!(x.foreign_mappings().len(), 2);
    // A mapped slot cannot be mapped again before it is removed.
    map_foreign(&x, d, &[7], &[0x100], &mut errs[..1]).unwrap();
    assert_eq!(errs[0], -6);
    let r = unmap_own_batch(&x, &[0x100, 0x101, 0x102]).unwrap();
    assert_eq!(r, [0, 0, -22]);
    assert!(x.foreign_mappings().is_empty());
}

#[test]
fn shutdown_reason_from_flags() {
    let i = DomainInfo {
        domid: 3,
        flags: dominf::SHUTDOWN | (3 << 16),
        tot_pages: 0,
        max_pages: 0,
        cpu_time_ns: 0,
        online_vcpus: 1,
    };
    assert_eq!(i.shutdown(), Some(ShutdownCode::Crash));
    assert!(!i.dying());
}
