//! A bounded reader of the ACPI namespace, for the facts dom0 needs from the DSDT and SSDTs:
//! PCI host bridges with `_SEG`, `_BBN`, `_UID`, `_STA`, `_PXM`, `_CRS` and `_PRT`
//! ([`host_bridge`]).
//!
//! No maintained AML interpreter builds on stable Rust for `x86_64-unknown-none` (the `aml`
//! crate needs nightly), so this is a small one. It loads the definition blocks into a flat
//! namespace ([`Namespace`]), keeping method bodies as bytes, and evaluates objects on demand
//! ([`eval`]) with the subset of AML that firmware uses to compute these objects: integers,
//! strings, buffers, packages, locals and arguments, arithmetic and logic, `If`/`Else`/`While`,
//! `Store` (also into package elements), method calls. Everything else (operation regions,
//! fields, mutexes, notifications, `Load`) is **refused** with an error that names the object
//! and the opcode: dom0 reports what it could not evaluate rather than guessing.
//!
//! Nothing read is trusted: every read is bounds-checked, nesting depth and the number of
//! evaluation steps are bounded, and bad AML ends the evaluation of that object (or the loading
//! of that scope) with an error, never a panic.

#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

pub mod eval;
pub mod host_bridge;
pub mod name;
pub mod namespace;
pub mod resource;

pub use eval::{Eval, Value};
pub use host_bridge::{HostBridge, PrtEntry, PrtSource, host_bridges};
pub use name::{NameSeg, NameString, Path};
pub use namespace::{Kind, Namespace, Object};
pub use resource::{AddressRange, RangeKind};

use alloc::format;
use alloc::string::String;

/// A bounds-checked reader over AML bytes; errors name the offset.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub fn peek(&self) -> Result<u8, String> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or_else(|| format!("unexpected end at {:#x}", self.pos))
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("{n} bytes at {:#x} run past the end", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn le(&mut self, n: usize) -> Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// A PkgLength (§20.2.4); returns the end offset of the package it measures (the length
    /// counts its own bytes), checked against the end of the enclosing bytes.
    pub fn pkg_end(&mut self) -> Result<usize, String> {
        let start = self.pos;
        let lead = self.u8()?;
        let follow = usize::from(lead >> 6);
        let mut len = if follow == 0 {
            usize::from(lead & 0x3f)
        } else {
            usize::from(lead & 0x0f)
        };
        for i in 0..follow {
            len |= usize::from(self.u8()?) << (4 + 8 * i);
        }
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.bytes.len() && e >= self.pos)
            .ok_or_else(|| {
                format!(
                    "package length {len:#x} at {start:#x} runs past its container (end {:#x})",
                    self.bytes.len()
                )
            })?;
        Ok(end)
    }

    /// A view of `self.pos..end`, and `self` moved to `end`.
    pub fn sub(&mut self, end: usize) -> Cursor<'a> {
        let c = Cursor {
            bytes: &self.bytes[..end],
            pos: self.pos,
        };
        self.pos = end;
        c
    }
}

/// The EISA id `PNP0A03` as AML stores it (`EisaId ("PNP0A03")`, a DWord).
pub const fn eisa_id(s: &[u8; 7]) -> u32 {
    let vendor = (c(s[0]) << 10) | (c(s[1]) << 5) | c(s[2]);
    let product = (hex(s[3]) << 12) | (hex(s[4]) << 8) | (hex(s[5]) << 4) | hex(s[6]);
    // Stored big-endian in the DWord's bytes: vendor high byte first.
    let b = [
        (vendor >> 8) as u8,
        vendor as u8,
        (product >> 8) as u8,
        product as u8,
    ];
    u32::from_le_bytes(b)
}

const fn c(x: u8) -> u32 {
    (x - b'@') as u32 & 0x1f
}

const fn hex(x: u8) -> u32 {
    match x {
        b'0'..=b'9' => (x - b'0') as u32,
        _ => (x - b'A' + 10) as u32,
    }
}

/// The text of an EISA id DWord (`0x030ad041` -> `PNP0A03`).
pub fn eisa_id_text(v: u32) -> String {
    let b = v.to_le_bytes();
    let vendor = (u32::from(b[0]) << 8) | u32::from(b[1]);
    let letter = |shift: u32| char::from(b'@' + ((vendor >> shift) & 0x1f) as u8);
    format!(
        "{}{}{}{:02X}{:02X}",
        letter(10),
        letter(5),
        letter(0),
        b[2],
        b[3]
    )
}

#[cfg(test)]
mod tests;
