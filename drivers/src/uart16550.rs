//! The 16550 UART (COM1 at 0x3f8 on a PC; QEMU's `-serial`), polled, transmit only.
//!
//! Register offsets from the base port: 0 THR/RBR (DLL when DLAB=1), 1 IER (DLM when DLAB=1),
//! 2 IIR/FCR, 3 LCR, 4 MCR, 5 LSR, 7 SCR.

use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Byte-wide port I/O. dom0 implements it with `in`/`out` (Xen gives a PVH dom0 direct access
/// to the legacy UART ports unless Xen itself uses that UART); tests record the accesses.
pub trait PortIo {
    fn inb(&self, port: u16) -> u8;
    fn outb(&self, port: u16, v: u8);
}

impl<T: PortIo + ?Sized> PortIo for &T {
    fn inb(&self, port: u16) -> u8 {
        (**self).inb(port)
    }
    fn outb(&self, port: u16, v: u8) {
        (**self).outb(port, v)
    }
}

/// COM1's base port.
pub const COM1: u16 = 0x3f8;

const THR: u16 = 0;
const DLL: u16 = 0;
const IER: u16 = 1;
const DLM: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const SCR: u16 = 7;

const LCR_DLAB: u8 = 0x80;
const LCR_8N1: u8 = 0x03;
/// FIFO enable, clear receive and transmit FIFOs, 14-byte receive trigger.
const FCR_ENABLE_CLEAR: u8 = 0xc7;
/// DTR and RTS; OUT2 stays off, so the UART raises no interrupt.
const MCR_DTR_RTS: u8 = 0x03;
/// Transmit holding register empty.
const LSR_THRE: u8 = 0x20;
/// Divisor for 115200 baud from the standard 1.8432 MHz clock (1843200 / 16 / 115200).
const DIVISOR_115200: u16 = 1;

/// How many LSR polls to wait for THRE before dropping a byte. At 115200 baud one byte takes
/// about 87 us; each poll is a port read (a trap to Xen or QEMU), far slower than that per
/// thousand polls, so this is generous for a working UART and bounded for a dead one.
pub const DEFAULT_SPIN_LIMIT: u32 = 100_000;

/// A polled 16550 UART at `base`. The port I/O is passed to each call, so the value is cheap
/// to make anywhere; the dropped-byte count and the stuck flag live in atomics, so keep one in
/// a `static` to keep the count across calls.
#[derive(Debug)]
pub struct Uart16550 {
    base: u16,
    spin_limit: u32,
    dropped: AtomicU64,
    /// Set after a byte was dropped: the UART looks dead, so later bytes get one poll only
    /// instead of a full spin each, until THRE shows up again.
    stuck: AtomicBool,
}

impl Uart16550 {
    pub const fn new(base: u16) -> Self {
        Uart16550 {
            base,
            spin_limit: DEFAULT_SPIN_LIMIT,
            dropped: AtomicU64::new(0),
            stuck: AtomicBool::new(false),
        }
    }

    /// Change how many polls a byte may wait (at least 1).
    pub const fn with_spin_limit(mut self, limit: u32) -> Self {
        self.spin_limit = if limit == 0 { 1 } else { limit };
        self
    }

    pub const fn base(&self) -> u16 {
        self.base
    }

    /// Bytes given up on because the transmitter never became ready.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn port(&self, reg: u16) -> u16 {
        self.base.wrapping_add(reg)
    }

    /// True if something that behaves like a 16550 answers: the scratch register keeps what
    /// is written to it (an absent port reads 0xff).
    pub fn present(&self, io: &dyn PortIo) -> bool {
        [0x5a, 0xa5].iter().all(|&v| {
            io.outb(self.port(SCR), v);
            io.inb(self.port(SCR)) == v
        })
    }

    /// 115200 baud, 8 data bits, no parity, 1 stop bit, FIFOs on, interrupts off.
    pub fn init(&self, io: &dyn PortIo) {
        let [lo, hi] = DIVISOR_115200.to_le_bytes();
        io.outb(self.port(IER), 0);
        io.outb(self.port(LCR), LCR_DLAB);
        io.outb(self.port(DLL), lo);
        io.outb(self.port(DLM), hi);
        io.outb(self.port(LCR), LCR_8N1);
        io.outb(self.port(FCR), FCR_ENABLE_CLEAR);
        io.outb(self.port(MCR), MCR_DTR_RTS);
        self.stuck.store(false, Ordering::Relaxed);
    }

    /// Send one byte once the transmitter is ready. Returns false (and counts a dropped byte)
    /// if it did not become ready within the spin limit.
    pub fn write_byte(&self, io: &dyn PortIo, byte: u8) -> bool {
        let polls = if self.stuck.load(Ordering::Relaxed) {
            1
        } else {
            self.spin_limit
        };
        for _ in 0..polls {
            if io.inb(self.port(LSR)) & LSR_THRE != 0 {
                io.outb(self.port(THR), byte);
                self.stuck.store(false, Ordering::Relaxed);
                return true;
            }
            core::hint::spin_loop();
        }
        self.stuck.store(true, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Send a string, "\n" as "\r\n" for terminals.
    pub fn write_str(&self, io: &dyn PortIo, s: &str) {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(io, b'\r');
            }
            self.write_byte(io, b);
        }
    }

    /// A [`fmt::Write`] over this UART and `io`.
    pub fn writer<'a>(&'a self, io: &'a dyn PortIo) -> UartWriter<'a> {
        UartWriter { uart: self, io }
    }
}

/// [`fmt::Write`] for a [`Uart16550`]; never fails: bytes the UART cannot take are counted in
/// [`Uart16550::dropped`].
pub struct UartWriter<'a> {
    uart: &'a Uart16550,
    io: &'a dyn PortIo,
}

impl fmt::Debug for UartWriter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UartWriter")
            .field("uart", self.uart)
            .finish_non_exhaustive()
    }
}

impl fmt::Write for UartWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.uart.write_str(self.io, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
