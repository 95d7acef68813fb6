//! dom0's consoles and the `log` backend.
//!
//! Under Xen the console is `CONSOLEIO_write`: the hardware domain's bytes go unfiltered to
//! Xen's serial line (Xen owns COM1, so dom0 must not touch the UART). Without Xen dom0 drives
//! COM1 itself. Port 0xE9 (Bochs/QEMU debug port; under Xen, `(d0)` lines at guest debug log
//! level) can be added with `console=e9`. Fatal paths write to every enabled console without
//! taking the lock ([`Emergency`]).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use drivers::uart16550::{PortIo, Uart16550};

pub const XEN: u8 = 1 << 0;
pub const SERIAL: u8 = 1 << 1;
pub const E9: u8 = 1 << 2;

static ENABLED: AtomicU8 = AtomicU8::new(0);
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

const COM1: u16 = 0x3f8;

/// Real port I/O for the UART driver.
struct Ports;

impl PortIo for Ports {
    fn inb(&self, port: u16) -> u8 {
        // SAFETY: only the COM1 register block is passed in by the driver (base 0x3f8 + 0..8),
        // which dom0 owns when it runs without Xen.
        unsafe { crate::arch::inb(port) }
    }
    fn outb(&self, port: u16, v: u8) {
        // SAFETY: as above.
        unsafe { crate::arch::outb(port, v) }
    }
}

/// COM1, kept in a static so its dropped-byte count and "looks dead" flag persist.
static UART: Uart16550 = Uart16550::new(COM1);

fn uart() -> &'static Uart16550 {
    &UART
}

/// Choose the consoles. `XEN` requires the hypercall page (see [`crate::hypercall::init`]).
pub fn enable(mask: u8) {
    if mask & SERIAL != 0 && ENABLED.load(Ordering::Relaxed) & SERIAL == 0 {
        uart().init(&Ports);
    }
    ENABLED.store(mask, Ordering::Release);
}

pub fn enabled() -> u8 {
    ENABLED.load(Ordering::Acquire)
}

fn raw_write(bytes: &[u8]) {
    let m = enabled();
    if m & XEN != 0
        && let Some(x) = crate::hypercall::get()
    {
        let _ = xen::ops::console_write(&x, bytes);
    }
    if m & SERIAL != 0 {
        let u = uart();
        for &b in bytes {
            if b == b'\n' {
                u.write_byte(&Ports, b'\r');
            }
            u.write_byte(&Ports, b);
        }
    }
    if m & E9 != 0 {
        for &b in bytes {
            // SAFETY: port 0xE9 is the debug console; under Xen it is emulated for dom0
            // (`hvm_print_line`), on QEMU it is the isa-debugcon port or unassigned.
            unsafe { crate::arch::outb(0xe9, b) };
        }
    }
}

/// While booting, console output is collected here and written in one go at each phase end
/// ([`flush`]): under Xen every write is a hypercall, and on an emulated bench each VM exit costs
/// about a millisecond. Fatal paths flush it first, so nothing is lost on a crash.
/// Big enough for the whole boot log at `loglevel=info` (about 4-6 KiB), so it goes out once.
const BOOT_BUF_SIZE: usize = 16 * 1024;

struct BootBuf {
    on: bool,
    buf: [u8; BOOT_BUF_SIZE],
    len: usize,
}

static BOOT_BUF: spin::Mutex<BootBuf> = spin::Mutex::new(BootBuf {
    on: false,
    buf: [0; BOOT_BUF_SIZE],
    len: 0,
});

/// Collect console output until [`flush`] (or until buffering is switched off).
pub fn set_buffering(on: bool) {
    if !on {
        flush();
    }
    BOOT_BUF.lock().on = on;
}

/// Write out what the boot buffer holds.
pub fn flush() {
    let _g = LOCK.lock();
    let mut b = BOOT_BUF.lock();
    if b.len > 0 {
        raw_write(&b.buf[..b.len]);
        b.len = 0;
    }
}

/// For the watchdog, which may run while the boot CPU holds either lock: write out what the
/// boot buffer holds and stop buffering, if the locks are free; otherwise leave it.
pub fn try_unbuffer() {
    let Some(_g) = LOCK.try_lock() else {
        return;
    };
    let Some(mut b) = BOOT_BUF.try_lock() else {
        return;
    };
    if b.len > 0 {
        raw_write(&b.buf[..b.len]);
        b.len = 0;
    }
    b.on = false;
}

/// Write without the lock (watchdog and fatal paths).
pub fn emergency_write(bytes: &[u8]) {
    raw_write(bytes);
}

fn write_out(bytes: &[u8]) {
    let mut b = BOOT_BUF.lock();
    if b.on {
        if b.len + bytes.len() > b.buf.len() {
            raw_write(&b.buf[..b.len]);
            b.len = 0;
        }
        if bytes.len() <= b.buf.len() {
            let l = b.len;
            b.buf[l..l + bytes.len()].copy_from_slice(bytes);
            b.len += bytes.len();
            return;
        }
    }
    drop(b);
    raw_write(bytes);
}

/// A line buffer so each console write is one hypercall per line, not per fragment.
struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl LineBuf {
    fn flush(&mut self) {
        if self.len > 0 {
            write_out(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' {
                self.flush();
            }
        }
        Ok(())
    }
}

/// Print under the console lock.
pub fn print(args: fmt::Arguments<'_>) {
    let _g = LOCK.lock();
    let mut lb = LineBuf {
        buf: [0; 256],
        len: 0,
    };
    let _ = lb.write_fmt(args);
    lb.flush();
}

/// Print a long string (e.g. the JSON report) in one go.
pub fn print_str(s: &str) {
    let _g = LOCK.lock();
    write_out(s.as_bytes());
}

#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// The console for fatal paths: writes without the lock (the lock holder may be the code that
/// faulted), to every enabled console; falls back to all of them if none was chosen yet.
pub struct Emergency;

impl Write for Emergency {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if enabled() == 0 {
            let mask = if crate::hypercall::get().is_some() {
                XEN | E9
            } else {
                SERIAL | E9
            };
            enable(mask);
        }
        raw_write(s.as_bytes());
        Ok(())
    }
}

/// The `log` backend: `[dom0 +12.345ms] LEVEL message` (`[dom0] LEVEL message` when reading
/// the TSC traps to Xen).
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let lvl = match r.level() {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARN ",
            log::Level::Info => "INFO ",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        };
        if crate::time::tsc_traps() {
            print(format_args!("[dom0] {} {}\n", lvl, r.args()));
        } else {
            let ns = crate::time::since_entry_ns();
            print(format_args!(
                "[dom0 +{}.{:03}ms] {} {}\n",
                ns / 1_000_000,
                (ns / 1000) % 1000,
                lvl,
                r.args()
            ));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Logger = Logger;

pub fn init_log(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
