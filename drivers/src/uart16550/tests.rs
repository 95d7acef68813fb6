//! Tests of `uart16550.rs`.

use super::*;
use core::cell::{Cell, RefCell};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    In(u16),
    Out(u16, u8),
}

/// Records every access. LSR reports THRE after `busy_polls` polls of each byte (never if
/// `dead`); the scratch register holds its value unless `absent`.
#[derive(Default)]
struct FakePorts {
    log: RefCell<Vec<Access>>,
    busy_polls: u32,
    polls_left: Cell<u32>,
    dead: bool,
    absent: bool,
    scratch: Cell<u8>,
}

impl FakePorts {
    fn sent(&self) -> Vec<u8> {
        self.log
            .borrow()
            .iter()
            .filter_map(|a| match a {
                Access::Out(p, v) if *p == COM1 => Some(*v),
                _ => None,
            })
            .collect()
    }
    fn lsr_polls(&self) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|a| **a == Access::In(COM1 + 5))
            .count()
    }
}

impl PortIo for FakePorts {
    fn inb(&self, port: u16) -> u8 {
        self.log.borrow_mut().push(Access::In(port));
        if self.absent {
            return 0xff;
        }
        match port - COM1 {
            5 if self.dead => 0,
            5 if self.polls_left.get() > 0 => {
                self.polls_left.set(self.polls_left.get() - 1);
                0
            }
            5 => 0x60,
            7 => self.scratch.get(),
            _ => 0,
        }
    }
    fn outb(&self, port: u16, v: u8) {
        self.log.borrow_mut().push(Access::Out(port, v));
        if port == COM1 {
            self.polls_left.set(self.busy_polls);
        }
        if port == COM1 + 7 {
            self.scratch.set(v);
        }
    }
}

#[test]
fn init_programs_115200_8n1_fifo() {
    let ports = FakePorts::default();
    let uart = Uart16550::new(COM1);
    uart.init(&ports);
    assert_eq!(
        *ports.log.borrow(),
        [
            Access::Out(0x3f9, 0),
            Access::Out(0x3fb, 0x80),
            Access::Out(0x3f8, 1),
            Access::Out(0x3f9, 0),
            Access::Out(0x3fb, 0x03),
            Access::Out(0x3fa, 0xc7),
            Access::Out(0x3fc, 0x03),
        ]
    );
    assert_eq!(uart.base(), COM1);
}

#[test]
fn write_translates_newlines() {
    let ports = FakePorts::default();
    let uart = Uart16550::new(COM1);
    uart.write_str(&ports, "a\nb\r\n");
    assert_eq!(ports.sent(), b"a\r\nb\r\r\n");
    writeln!(uart.writer(&ports), "{}-{}", 1, 2).unwrap();
    assert_eq!(&ports.sent()[7..], b"1-2\r\n");
    assert_eq!(uart.dropped(), 0);
}

#[test]
fn waits_for_thre() {
    let ports = FakePorts {
        busy_polls: 3,
        ..Default::default()
    };
    let uart = Uart16550::new(COM1);
    assert!(uart.write_byte(&ports, b'x'));
    assert!(uart.write_byte(&ports, b'y'));
    assert_eq!(ports.sent(), b"xy");
    // First byte: ready at once; second: 3 busy polls then ready.
    assert_eq!(ports.lsr_polls(), 1 + 4);
    assert_eq!(uart.dropped(), 0);
}

#[test]
fn dead_uart_drops_bytes_without_hanging() {
    let ports = FakePorts {
        dead: true,
        ..Default::default()
    };
    let uart = Uart16550::new(COM1).with_spin_limit(50);
    assert!(!uart.write_byte(&ports, b'x'));
    assert_eq!(ports.lsr_polls(), 50);
    // Once stuck, each further byte costs one poll.
    uart.write_str(&ports, "hello\n");
    assert_eq!(ports.lsr_polls(), 50 + 7);
    assert_eq!(uart.dropped(), 8);
    assert!(ports.sent().is_empty());
    // Limit 0 is taken as 1.
    let uart = Uart16550::new(COM1).with_spin_limit(0);
    assert!(!uart.write_byte(&ports, b'z'));
}

#[test]
fn recovers_after_being_stuck() {
    let ports = FakePorts {
        busy_polls: 10,
        ..Default::default()
    };
    let uart = Uart16550::new(COM1).with_spin_limit(5);
    assert!(uart.write_byte(&ports, b'a')); // ready at once, then busy for 10 polls
    assert!(!uart.write_byte(&ports, b'b')); // 5 polls: dropped, now stuck
    assert!(!uart.write_byte(&ports, b'c')); // 1 poll
    assert!(!uart.write_byte(&ports, b'd')); // 1 poll
    assert!(!uart.write_byte(&ports, b'e')); // 1 poll
    assert!(!uart.write_byte(&ports, b'f')); // 1 poll: 9 busy polls used
    assert!(!uart.write_byte(&ports, b'g')); // 1 poll: 10th
    assert!(uart.write_byte(&ports, b'h')); // ready again
    // Not stuck any more: a full spin again (5 polls, still short of the 10 needed).
    assert!(!uart.write_byte(&ports, b'i'));
    assert_eq!(ports.lsr_polls(), 1 + 5 + 5 + 1 + 5);
    assert_eq!(ports.sent(), b"ah");
    assert_eq!(uart.dropped(), 7);
}

#[test]
fn usable_from_a_static() {
    static UART: Uart16550 = Uart16550::new(COM1).with_spin_limit(2);
    let ports = FakePorts {
        dead: true,
        ..Default::default()
    };
    UART.write_byte(&ports, b'x');
    Uart16550::new(COM1).write_byte(&ports, b'y');
    assert_eq!(UART.dropped(), 1);
}

#[test]
fn presence_via_scratch_register() {
    let ports = FakePorts::default();
    assert!(Uart16550::new(COM1).present(&ports));
    let absent = FakePorts {
        absent: true,
        ..Default::default()
    };
    assert!(!Uart16550::new(COM1).present(&absent));
}

#[test]
fn base_near_the_top_does_not_overflow() {
    struct Null;
    impl PortIo for Null {
        fn inb(&self, _: u16) -> u8 {
            0x20
        }
        fn outb(&self, _: u16, _: u8) {}
    }
    let uart = Uart16550::new(0xfffe);
    uart.init(&Null);
    uart.write_str(&Null, "x");
    assert!(!uart.present(&Null));
}
