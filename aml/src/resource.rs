//! Resource templates (`_CRS` buffers, ACPI 6.5 §6.4): the address ranges a host bridge
//! decodes (bus numbers, I/O and memory windows) and the interrupts a link device uses.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::Cursor;

/// What an address range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    Memory,
    Io,
    BusNumber,
}

/// One range of a resource template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    pub kind: RangeKind,
    pub min: u64,
    /// Inclusive.
    pub max: u64,
    /// Added to a CPU-side address to get the bus-side one (non-zero on some hosts).
    pub translation: u64,
    /// `ResourceProducer`: a window the device decodes for its children.
    pub producer: bool,
}

/// What one resource template holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub ranges: Vec<AddressRange>,
    /// Interrupts (IRQ and Extended Interrupt descriptors: GSIs).
    pub interrupts: Vec<u32>,
}

/// Decodes a resource template; a truncated or unknown descriptor is an error that names its
/// offset (ranges decoded before it are not returned: a half-read `_CRS` is not a truth).
pub fn decode(buf: &[u8]) -> Result<Resources, String> {
    let mut out = Resources::default();
    let mut c = Cursor::new(buf);
    while !c.at_end() {
        let at = c.pos;
        let tag = c.u8()?;
        if tag & 0x80 == 0 {
            let len = usize::from(tag & 7);
            let mut d = Cursor::new(c.take(len)?);
            match (tag >> 3) & 0xf {
                0xf => return Ok(out),
                0x4 => {
                    let mask = d.le(2)?;
                    out.interrupts
                        .extend((0..16).filter(|i| mask & (1 << i) != 0));
                }
                0x8 => {
                    // IO: decode, min, max, alignment, length.
                    d.u8()?;
                    let min = d.le(2)?;
                    d.le(2)?;
                    d.u8()?;
                    let n = d.le(1)?;
                    if n > 0 {
                        out.ranges.push(AddressRange {
                            kind: RangeKind::Io,
                            min,
                            max: min + n - 1,
                            translation: 0,
                            producer: false,
                        });
                    }
                }
                0x5 | 0x6 | 0x7 | 0x9 | 0xa | 0xe => {}
                t => return Err(format!("small resource type {t:#x} at {at:#x} not known")),
            }
        } else {
            let len = usize::try_from(c.le(2)?).unwrap_or(usize::MAX);
            let mut d = Cursor::new(c.take(len)?);
            match tag & 0x7f {
                0x07 | 0x08 | 0x0a => {
                    let w = match tag & 0x7f {
                        0x08 => 2,
                        0x07 => 4,
                        _ => 8,
                    };
                    let rtype = d.u8()?;
                    let general = d.u8()?;
                    d.u8()?;
                    d.le(w)?;
                    let min = d.le(w)?;
                    let max = d.le(w)?;
                    let translation = d.le(w)?;
                    let length = d.le(w)?;
                    let kind = match rtype {
                        0 => RangeKind::Memory,
                        1 => RangeKind::Io,
                        2 => RangeKind::BusNumber,
                        _ => continue,
                    };
                    if length == 0 {
                        continue;
                    }
                    if max < min {
                        return Err(format!(
                            "address range at {at:#x}: maximum {max:#x} below minimum {min:#x}"
                        ));
                    }
                    out.ranges.push(AddressRange {
                        kind,
                        min,
                        max,
                        translation,
                        producer: general & 1 == 0,
                    });
                }
                0x06 => {
                    // Memory32Fixed: info, base, length.
                    d.u8()?;
                    let base = d.le(4)?;
                    let n = d.le(4)?;
                    if n > 0 {
                        out.ranges.push(AddressRange {
                            kind: RangeKind::Memory,
                            min: base,
                            max: base + n - 1,
                            translation: 0,
                            producer: false,
                        });
                    }
                }
                0x09 => {
                    d.u8()?;
                    let count = d.u8()?;
                    for _ in 0..count {
                        out.interrupts.push(d.le(4)? as u32);
                    }
                }
                0x01 | 0x02 | 0x04 | 0x05 | 0x0b | 0x0c | 0x0d | 0x0e | 0x0f | 0x10 | 0x11
                | 0x12 => {}
                t => return Err(format!("large resource type {t:#x} at {at:#x} not known")),
            }
        }
    }
    Err("resource template without an end tag".into())
}
