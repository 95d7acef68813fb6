//! Tests of `ops.rs`.

use super::*;
use crate::fake::FakeXen;

#[test]
fn console_write_reaches_the_console() {
    let x = FakeXen::new(4, 17);
    console_write(&x, b"hello\n").unwrap();
    assert_eq!(x.console(), "hello\n");
}

/// The sub-op numbers of public/vcpu.h. A wrong one is not caught by the fake (it uses the
/// same constants), and on Xen it can be another operation entirely: 2 is VCPUOP_down,
/// which a first draft of the boot watchdog called on vCPU 0 instead of reading its runstate.
#[test]
fn vcpu_op_numbers_are_public_vcpu_h() {
    assert_eq!(VCPUOP_INITIALISE, 0);
    assert_eq!(VCPUOP_UP, 1);
    assert_eq!(VCPUOP_IS_UP, 3);
    assert_eq!(VCPUOP_GET_RUNSTATE_INFO, 4);
    assert_eq!(VCPUOP_SET_PERIODIC_TIMER, 6);
    assert_eq!(VCPUOP_STOP_PERIODIC_TIMER, 7);
    assert_eq!(VCPUOP_REGISTER_VCPU_INFO, 10);
}

#[test]
fn runstate_of_another_vcpu() {
    let x = FakeXen::new(4, 17).with_vcpus(2);
    assert_eq!(vcpu_runstate(&x, 0).unwrap().state, RunState::Running);
    // vCPU 1 is down until VCPUOP_up.
    assert_eq!(vcpu_runstate(&x, 1).unwrap().state, RunState::Offline);
    assert_eq!(vcpu_runstate(&x, 2), Err(XenError::ENOENT));
    assert_eq!(RunState::Runnable.name(), "runnable");
}

#[test]
fn version_features_and_strings() {
    let x = FakeXen::new(4, 20);
    assert_eq!(xen_version(&x).unwrap(), (4, 20));
    assert_eq!(xen_extraversion(&x).unwrap(), ".3");
    assert!(xen_capabilities(&x).unwrap().contains("hvm-3.0-x86_64"));
    let f = xen_features(&x, 0).unwrap();
    let names = feature_names(f);
    assert!(names.iter().any(|n| n == "dom0"));
    assert!(names.iter().any(|n| n == "hvm_callback_vector"));
    assert_eq!(xen_features(&x, 1).unwrap(), 0);
    assert_eq!(feature_names(1 << 30), ["bit30"]);
}

#[test]
fn memory_map_fills_buffer_and_counts() {
    let x = FakeXen::new(4, 17);
    let mut buf = [0u8; 20 * 16];
    let n = memory_map(&x, &mut buf).unwrap();
    assert_eq!(n, x.e820().len());
    let first_size = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    assert_eq!(first_size, x.e820()[0].1);
}

#[test]
fn memory_map_too_small_buffer_is_an_error_not_an_overflow() {
    let x = FakeXen::new(4, 17);
    let mut buf = [0u8; 20];
    assert_eq!(memory_map(&x, &mut buf), Err(XenError::E2BIG));
    x.set_lying_memory_map_count(true);
    let mut buf = [0u8; 20 * 16];
    assert_eq!(memory_map(&x, &mut buf), Err(XenError::E2BIG));
}

#[test]
fn virq_bind_unmask_and_timer() {
    let x = FakeXen::new(4, 17);
    let p = bind_virq(&x, VIRQ_TIMER, 0).unwrap();
    assert_eq!(p, EvtchnPort(1));
    let p2 = bind_virq(&x, VIRQ_CONSOLE, 0).unwrap();
    assert_eq!(p2, EvtchnPort(2));
    evtchn_unmask(&x, p).unwrap();
    assert_eq!(evtchn_unmask(&x, EvtchnPort(99)), Err(XenError::EINVAL));
    set_timer(&x, 123_456).unwrap();
    assert_eq!(x.timer_deadline(), Some(123_456));
    // A VIRQ may only be bound once per vCPU.
    assert_eq!(bind_virq(&x, VIRQ_TIMER, 0), Err(XenError::EEXIST));
}

#[test]
fn vcpus_are_counted_by_probing() {
    let x = FakeXen::new(4, 17).with_vcpus(3);
    assert_eq!(count_vcpus(&x, 128).unwrap(), 3);
    let x = FakeXen::new(4, 17).with_vcpus(200);
    assert_eq!(count_vcpus(&x, 128).unwrap(), 128);
}

#[test]
fn poll_passes_the_port_list() {
    let x = FakeXen::new(4, 17);
    let p = bind_virq(&x, VIRQ_TIMER, 0).unwrap();
    sched_poll(&x, &[p], 99).unwrap();
    assert_eq!(x.last_poll(), Some((alloc::vec![p.0], 99)));
    assert_eq!(
        sched_poll(&x, &[EvtchnPort(1); 129], 0),
        Err(XenError::EINVAL)
    );
}

#[test]
fn vcpus_are_initialised_and_brought_up() {
    use crate::vcpu::VcpuContext64;
    let x = FakeXen::new(4, 17).with_vcpus(4);
    let ctx = VcpuContext64::long_mode(0x10_2000, 0x20_0000, 0x12_5000, 9);
    assert_eq!(vcpu_up(&x, 1), Err(XenError::EINVAL)); // not initialised yet
    vcpu_initialise(&x, 1, &ctx).unwrap();
    assert_eq!(vcpu_initialise(&x, 1, &ctx), Err(XenError::EEXIST));
    vcpu_up(&x, 1).unwrap();
    assert_eq!(vcpu_is_up(&x, 1), Ok(true));
    assert_eq!(x.vcpu_context(1), Some(ctx));
    assert_eq!(vcpu_initialise(&x, 9, &ctx), Err(XenError::ENOENT));
    let bad = VcpuContext64 { cr0: 1, ..ctx };
    assert_eq!(vcpu_initialise(&x, 2, &bad), Err(XenError::EINVAL));
    assert_eq!(
        register_vcpu_info(&x, 2, 0x5000 + 0xfe0),
        Err(XenError::EINVAL)
    );
    register_vcpu_info(&x, 2, 0x5040).unwrap();
}

#[test]
fn ipi_ports_target_a_vcpu() {
    let x = FakeXen::new(4, 17).with_vcpus(2);
    let p = bind_ipi(&x, 1).unwrap();
    assert_eq!(x.ipi_target(p.0), Some(1));
    assert_eq!(bind_ipi(&x, 5), Err(XenError::ENOENT));
    evtchn_send(&x, p).unwrap();
    assert_eq!(x.sent(), [p.0]);
}

#[test]
fn pci_devices_and_mmcfg_are_reported() {
    let x = FakeXen::new(4, 17).with_mmcfg(0xb000_0000, 0, 0, 255);
    pci_mmcfg_reserved(&x, 0xb000_0000, 0, 0, 255).unwrap();
    assert_eq!(
        pci_mmcfg_reserved(&x, 0xb000_0000, 0, 0, 127),
        Err(XenError::ENODEV)
    );
    assert_eq!(
        pci_mmcfg_reserved(&x, 0xc000_0000, 0, 0, 255),
        Err(XenError::EIO)
    );
    pci_device_add(&x, 0, 0, 0x18, 0, None, None).unwrap();
    pci_device_add(&x, 0, 1, 0x10, XEN_PCI_DEV_VIRTFN, Some((1, 0)), None).unwrap();
    pci_device_add(&x, 0, 0x80, 0x08, 0, None, Some(1)).unwrap();
    assert_eq!(
        x.pci_adds(),
        [
            (0, 0, 0x18, 0, None),
            (0, 1, 0x10, 2, Some((1, 0))),
            (0, 0x80, 0x08, XEN_PCI_DEV_PXM, None)
        ]
    );
    assert_eq!(x.pci_pxms(), [(0, 0x80, 0x08, 1)]);
    pci_device_remove(&x, 0, 0, 0x18).unwrap();
    assert_eq!(pci_device_remove(&x, 0, 0, 0x18), Err(XenError::ENODEV));
    x.fail_op(nr::PHYSDEV_OP, XenError::ENOSYS);
    assert_eq!(
        pci_device_add(&x, 0, 0, 0, 0, None, None),
        Err(XenError::ENOSYS)
    );
}

#[test]
fn interdomain_loopback_and_grant_table() {
    let x = FakeXen::new(4, 17);
    let a = alloc_unbound(&x, DOMID_SELF, 0).unwrap();
    let b = bind_interdomain(&x, 0, a).unwrap();
    assert_ne!(a, b);
    assert_eq!(x.peer(b.0), Some(a.0));
    assert_eq!(
        bind_interdomain(&x, 0, EvtchnPort(999)),
        Err(XenError::EINVAL)
    );
    evtchn_send(&x, b).unwrap();
    assert_eq!(x.sent(), [b.0]);
    assert_eq!(gnttab_query_size(&x, DOMID_SELF).unwrap(), (1, 64));
    map_grant_table_frame(&x, 0, 0x1234).unwrap();
    let (flags, rest) = grant_entry_v1(5, 0x1_2345, true);
    assert_eq!(flags, 1 | 4);
    assert_eq!(rest, [5, 0, 0x45, 0x23, 0x01, 0]);
}

#[test]
fn shutdown_records_reason() {
    let x = FakeXen::new(4, 17);
    assert_eq!(sched_shutdown(&x, ShutdownReason::Poweroff), XenError(0));
    assert_eq!(x.shutdown_reason(), Some(0));
}

#[test]
fn failures_are_reported_as_errno() {
    let x = FakeXen::new(4, 17);
    x.fail_op(nr::XEN_VERSION, XenError::ENOSYS);
    assert_eq!(xen_version(&x), Err(XenError::ENOSYS));
    x.fail_op(nr::HVM_OP, XenError::EPERM);
    assert_eq!(
        hvm_set_param(&x, HVM_PARAM_CALLBACK_IRQ, callback_via_vector(0xf3)),
        Err(XenError::EPERM)
    );
}

#[test]
fn callback_param_records_vector() {
    let x = FakeXen::new(4, 17);
    hvm_set_param(&x, HVM_PARAM_CALLBACK_IRQ, callback_via_vector(0xf3)).unwrap();
    assert_eq!(
        hvm_get_param(&x, HVM_PARAM_CALLBACK_IRQ).unwrap(),
        (2 << 56) | 0xf3
    );
}

#[test]
fn shared_info_mapping_checks_space() {
    let x = FakeXen::new(4, 17);
    map_shared_info(&x, 0x1234).unwrap();
    assert_eq!(x.shared_info_gfn(), Some(0x1234));
}

#[test]
fn sends_and_the_poll_go_in_one_trap() {
    let x = FakeXen::new(4, 17);
    let t = bind_virq(&x, VIRQ_TIMER, 0).unwrap();
    let a = alloc_unbound(&x, DOMID_SELF, 0).unwrap();
    let b = bind_interdomain(&x, 0, a).unwrap();
    let before = x.traps();
    let r = send_then_poll(&x, &[a, b, EvtchnPort(999)], &[t, a], 77).unwrap();
    assert_eq!(x.traps(), before + 1, "one multicall");
    // An unbound port fails only its own entry.
    assert_eq!(r, [0, 0, -22]);
    assert_eq!(x.sent(), [a.0, b.0]);
    assert_eq!(x.last_poll(), Some((alloc::vec![t.0, a.0], 77)));
    // Sends alone (a pass that goes round without sleeping), and no sends: a plain poll.
    assert_eq!(send_then_poll(&x, &[b, a], &[], 0).unwrap(), [0, 0]);
    assert_eq!(x.traps(), before + 2);
    assert_eq!(send_then_poll(&x, &[], &[t], 5).unwrap(), [0; 0]);
    assert_eq!(x.last_poll(), Some((alloc::vec![t.0], 5)));
    assert_eq!(send_then_poll(&x, &[a], &[], 0).unwrap(), [0]);
    assert_eq!(x.sent(), [a.0, b.0, b.0, a.0, a.0]);
    assert_eq!(send_then_poll(&x, &[], &[], 0).unwrap(), [0; 0]);
    assert_eq!(x.traps(), before + 4, "nothing to do is no trap");
    assert_eq!(
        send_then_poll(&x, &[a], &[EvtchnPort(1); 129], 0),
        Err(XenError::EINVAL)
    );
}
