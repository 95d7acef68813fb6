//! The driver against the register-level simulator (`sim`), honest and hostile.

use super::sim::{SimDma, SimE1000e};
use super::*;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x57];

fn up() -> (E1000e<SimE1000e, SimDma>, SimE1000e, SimDma) {
    let dma = SimDma::default();
    let dev = SimE1000e::new(&dma, MAC);
    let nic = E1000e::init(dev.clone(), dma.clone()).unwrap();
    (nic, dev, dma)
}

fn frame(len: usize, tag: u8) -> Vec<u8> {
    let mut f = vec![tag; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&MAC);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

#[test]
fn init_programs_the_device() {
    let (mut nic, dev, _) = up();
    assert_eq!(nic.mac(), MAC);
    assert!(nic.link_up());
    assert_eq!(nic.model(), "e1000e");
    // Interrupts masked before and after the reset; the reset asked for.
    let w = dev.writes();
    let rst = w
        .iter()
        .position(|&(r, v)| r == reg::CTRL && v & CTRL_RST != 0)
        .unwrap();
    assert!(w[..rst].contains(&(reg::IMC, u32::MAX)));
    assert!(w[rst..].contains(&(reg::IMC, u32::MAX)));
    assert_ne!(dev.reg(reg::CTRL) & CTRL_SLU, 0);
    // Rings: 128-byte aligned bases, lengths, heads and tails.
    let rdba = u64::from(dev.reg(reg::RDBAH)) << 32 | u64::from(dev.reg(reg::RDBAL));
    assert_eq!(rdba % 128, 0);
    assert_eq!(dev.reg(reg::RDLEN), RX_DESCS * 16);
    assert_eq!((dev.reg(reg::RDH), dev.reg(reg::RDT)), (0, RX_DESCS - 1));
    assert_eq!(dev.reg(reg::TDLEN), TX_DESCS * 16);
    assert_eq!((dev.reg(reg::TDH), dev.reg(reg::TDT)), (0, 0));
    let rctl = dev.reg(reg::RCTL);
    for bit in [RCTL_EN, RCTL_UPE, RCTL_MPE, RCTL_BAM, RCTL_SECRC] {
        assert_ne!(rctl & bit, 0, "RCTL {rctl:#x} lacks {bit:#x}");
    }
    assert_eq!(rctl & (3 << 16), 0, "BSIZE 2048");
    assert_eq!(dev.reg(reg::TCTL), TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD);
    assert_eq!(dev.reg(reg::TIPG), TIPG_COPPER);
    assert!(probe_ids(0x8086, 0x10d3) && !probe_ids(0x8086, 0x100e));
}

#[test]
fn frames_go_out_and_come_in_across_many_ring_wraps() {
    let (mut nic, dev, _) = up();
    for k in 0..1000u32 {
        let f = frame(60 + (k as usize * 7) % 1400, k as u8);
        nic.transmit(&f).unwrap();
        assert_eq!(dev.sent(), vec![f.clone()], "frame {k}");
        let g = frame(64 + (k as usize * 13) % 1450, !k as u8);
        assert!(dev.inject_rx(&g), "a buffer for frame {k}");
        assert_eq!(nic.receive().unwrap(), Some(g));
        assert_eq!(nic.receive().unwrap(), None);
    }
    let c = nic.counters();
    assert_eq!(
        (c.tx_frames, c.rx_frames, c.rx_errors, c.tx_dropped),
        (1000, 1000, 0, 0)
    );
}

#[test]
fn received_frames_keep_their_order_until_buffers_run_out() {
    let (mut nic, dev, _) = up();
    let mut n = 0;
    while dev.inject_rx(&frame(100, n as u8)) {
        n += 1;
    }
    assert_eq!(n, RX_DESCS - 1, "every posted buffer, and no more");
    for k in 0..n {
        assert_eq!(nic.receive().unwrap(), Some(frame(100, k as u8)));
    }
    assert_eq!(nic.receive().unwrap(), None);
    // The buffers went back: the device takes as many again.
    let mut again = 0;
    while dev.inject_rx(&frame(100, 0)) {
        again += 1;
    }
    assert_eq!(again, RX_DESCS - 1);
}

#[test]
fn a_full_tx_ring_refuses_then_recovers() {
    let (mut nic, dev, _) = up();
    dev.hold_tx(true);
    let mut ok = 0;
    loop {
        match nic.transmit(&frame(100, 1)) {
            Ok(()) => ok += 1,
            Err(NicError::Full) => break,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, TX_DESCS - 1);
    assert_eq!(nic.counters().tx_dropped, 1);
    dev.complete_tx();
    assert_eq!(dev.sent().len(), ok as usize);
    dev.hold_tx(false);
    nic.transmit(&frame(100, 2)).unwrap();
    assert_eq!(dev.sent(), vec![frame(100, 2)]);
    assert_eq!(nic.transmit(&[0; 10]), Err(NicError::BadLength(10)));
    assert_eq!(nic.transmit(&[0; 1515]), Err(NicError::BadLength(1515)));
}

/// Whatever the device writes back, a bad descriptor is counted and skipped, the good ones
/// around it arrive, and nothing panics.
#[test]
fn bad_rx_descriptors_are_counted_and_skipped() {
    let (mut nic, dev, _) = up();
    let good = frame(200, 7);
    // Length 0, beyond the buffer, an error bit, then no EOP (a frame split over buffers) whose
    // EOP descriptor is dropped with it.
    assert!(dev.inject_rx_raw(&good, 0, 0x03, 0));
    assert!(dev.inject_rx_raw(&good, 4000, 0x03, 0));
    assert!(dev.inject_rx_raw(&good, 200, 0x03, 0x80));
    assert!(dev.inject_rx_raw(&good, 200, 0x01, 0));
    assert!(dev.inject_rx_raw(&good, 200, 0x03, 0));
    assert!(dev.inject_rx(&good));
    assert_eq!(nic.receive().unwrap(), Some(good.clone()));
    assert_eq!(nic.counters().rx_errors, 5);
    assert_eq!(nic.receive().unwrap(), None);
}

#[test]
fn the_tail_of_a_split_frame_is_not_a_frame() {
    let (mut nic, dev, _) = up();
    let good = frame(200, 9);
    // A frame over two buffers: the first without EOP, the second with EOP and a length that
    // would pass on its own.
    assert!(dev.inject_rx_raw(&good, 200, 0x01, 0));
    assert!(dev.inject_rx_raw(&good, 200, 0x03, 0));
    assert!(dev.inject_rx(&good));
    assert_eq!(nic.receive().unwrap(), Some(good));
    assert_eq!(nic.counters().rx_errors, 2);
    assert_eq!(nic.counters().rx_frames, 1);
}

#[test]
fn only_descriptors_behind_the_device_head_are_read() {
    let (mut nic, dev, dma) = up();
    // DD written into the next descriptor while RDH has not moved: not the device's word.
    let rdba = u64::from(dev.reg(reg::RDBAL));
    dma.put(rdba + 8, &[200, 0, 0, 0, 0x03, 0]);
    assert_eq!(nic.receive().unwrap(), None);
    assert_eq!(nic.counters().rx_frames + nic.counters().rx_errors, 0);
    // A head outside the ring takes the NIC out of service.
    dev.set_reg(reg::RDH, RX_DESCS + 3);
    assert!(matches!(nic.receive(), Err(NicError::Device(m)) if m.contains("RDH 67")));
}

#[test]
fn the_driver_owns_the_device_while_it_runs() {
    let (mut nic, dev, _) = up();
    assert_ne!(dev.reg(reg::CTRL_EXT) & CTRL_EXT_DRV_LOAD, 0);
    nic.stop();
    assert_eq!(dev.reg(reg::CTRL_EXT) & CTRL_EXT_DRV_LOAD, 0);
    assert!(probe_ids(0x8086, 0x10f6) && probe_ids(0x8086, 0x10d3));
    assert!(!probe_ids(0x8086, 0x100e) && !probe_ids(0x8086, 0x150c));
}

#[test]
fn a_device_that_misbehaves_at_init_is_refused() {
    let dma = SimDma::default();
    let dev = SimE1000e::new(&dma, MAC);
    dev.set_reset_reads(u32::MAX);
    assert!(matches!(
        E1000e::init(dev, dma.clone()),
        Err(InitError::ResetStuck(c)) if c & CTRL_RST != 0
    ));
    // A multicast MAC, an all-zero one.
    for mac in [[1, 2, 3, 4, 5, 6], [0; 6]] {
        let dev = SimE1000e::new(&dma, mac);
        assert!(matches!(
            E1000e::init(dev, dma.clone()),
            Err(InitError::BadMac { .. })
        ));
    }
    let dev = SimE1000e::new(&dma, MAC);
    let e = InitError::BadMac { ral: 1, rah: 2 };
    assert!(describe(&e).contains("RAH0 0x00000002"));
    // No device at the BAR.
    dev.set_reg(reg::STATUS, u32::MAX);
    assert_eq!(E1000e::init(dev, dma).unwrap_err(), InitError::NoDevice);
}

/// Random descriptor contents and registers written by a hostile device: never a panic.
#[test]
fn random_device_writes_never_panic() {
    let (mut nic, dev, dma) = up();
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rdba = u64::from(dev.reg(reg::RDBAL));
    let tdba = u64::from(dev.reg(reg::TDBAL));
    for _ in 0..5000 {
        match next() % 4 {
            0 => {
                let at = rdba + (next() % u64::from(RX_DESCS)) * 16;
                let junk = next().to_le_bytes();
                dma.put(at + 8, &junk);
            }
            1 => {
                let at = tdba + (next() % u64::from(TX_DESCS)) * 16 + 12;
                dma.put(at, &[next() as u8]);
            }
            2 => {
                let _ = dev.inject_rx_raw(&frame(64, 1), next() as u16, next() as u8, next() as u8);
            }
            _ => {
                dev.hold_tx(next() % 2 == 0);
                let _ = nic.transmit(&frame(60 + (next() % 1500) as usize, 3));
            }
        }
        if let Ok(Some(f)) = nic.receive() {
            assert!((14..=1514).contains(&f.len()));
        }
    }
}

/// A GSO packet cut into 45 frames goes out with one TDT write, in order; received frames
/// move RDT once per 16 buffers (or when the driver catches up), and RDH is not read per
/// frame. Each of these register accesses is an exit to Xen and QEMU.
#[test]
fn a_batch_rings_the_doorbell_once_and_buffers_go_back_in_batches() {
    let (mut nic, dev, _) = up();
    let before = dev.writes().len();
    let frames: Vec<Vec<u8>> = (0..45u8).map(|k| frame(1514, k)).collect();
    nic.transmit_batch(&frames).unwrap();
    assert_eq!(dev.sent(), frames);
    let tdt_writes = dev.writes()[before..]
        .iter()
        .filter(|(r, _)| *r == reg::TDT)
        .count();
    assert_eq!(tdt_writes, 1);
    assert_eq!(nic.counters().doorbells, 1);
    assert_eq!(nic.counters().tx_frames, 45);

    let before = dev.writes().len();
    for k in 0..40u8 {
        assert!(dev.inject_rx(&frame(100, k)));
    }
    for k in 0..40u8 {
        assert_eq!(nic.receive().unwrap(), Some(frame(100, k)));
    }
    assert_eq!(nic.receive().unwrap(), None);
    let rdt: Vec<u32> = dev.writes()[before..]
        .iter()
        .filter(|(r, _)| *r == reg::RDT)
        .map(|&(_, v)| v)
        .collect();
    assert_eq!(
        rdt,
        [15, 31, 39],
        "every 16 buffers, then the rest when caught up"
    );
    assert_eq!(nic.counters().doorbells, 4);
    // Every buffer is the device's again.
    let mut again = 0;
    while dev.inject_rx(&frame(100, 0)) {
        again += 1;
    }
    assert_eq!(again, RX_DESCS - 1);
}

/// A batch larger than the free ring: what fits goes (the device is told of it, and what it
/// finished is taken back before the rest is refused), the rest is dropped and counted.
#[test]
fn a_batch_that_overflows_the_ring_drops_only_what_does_not_fit() {
    let (mut nic, dev, _) = up();
    dev.hold_tx(true);
    let frames: Vec<Vec<u8>> = (0..(TX_DESCS + 10)).map(|k| frame(100, k as u8)).collect();
    nic.transmit_batch(&frames).unwrap();
    assert_eq!(nic.counters().tx_frames, u64::from(TX_DESCS - 1));
    assert_eq!(nic.counters().tx_dropped, 11);
    dev.complete_tx();
    assert_eq!(dev.sent(), frames[..(TX_DESCS - 1) as usize].to_vec());
    // Bad lengths are dropped; the good frames around them go out.
    dev.hold_tx(false);
    nic.transmit_batch(&[frame(100, 1), vec![0; 10], frame(100, 2)])
        .unwrap();
    assert_eq!(dev.sent(), vec![frame(100, 1), frame(100, 2)]);
    assert_eq!(nic.counters().tx_dropped, 12);
}
