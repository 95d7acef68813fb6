//! A bzImage's kernel loaded straight into the guest: dom0 maps `map_len` bytes of the guest's
//! memory from `base` as one slice, the payload is decompressed into it
//! ([`super::decompress`], the slice being the decoder's dictionary) and the ELF inside is
//! loaded where it lies ([`super::elf::load_in_place`]). dom0's heap never holds the kernel.
//!
//! This is what Linux's own boot path does (`arch/x86/boot/compressed/misc.c`,
//! `extract_kernel`: decompress to `output`, the load address, then `parse_elf`), with the
//! setup header's `pref_address` as the load address and `init_size` as the room it may use
//! (`Documentation/arch/x86/boot.rst`).

use core::fmt;

use super::bzimage::{BzError, BzPayload, init_size, locate_payload, pref_address};
use super::decompress::{self, DecompressError};
use super::elf::{ElfError, Kernel, LOAD_LIMIT, load_in_place};

/// `LOAD_PHYSICAL_ADDR` of an x86-64 kernel built with the default `CONFIG_PHYSICAL_START`
/// (16 MiB), for boot protocols before 2.10, which have no `pref_address`.
pub const DEFAULT_LOAD_ADDRESS: u64 = 0x100_0000;

/// Where and how a bzImage's kernel is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BzLoad {
    pub payload: BzPayload,
    /// Size of the decompressed ELF (the size the kernel build appends to the payload).
    pub elf_len: usize,
    /// Guest address of the slice's first byte: the ELF is decompressed there.
    pub base: u64,
    /// Bytes of guest memory from `base` dom0 maps as one slice: `init_size`, or the
    /// decoder's room if that is larger (XZ's dictionary, see
    /// [`decompress::output_room`]).
    pub map_len: u64,
}

impl BzLoad {
    /// End (exclusive) of the guest range the load writes.
    pub const fn end(&self) -> u64 {
        self.base + self.map_len
    }
}

/// Why a bzImage's kernel cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    Bz(BzError),
    Decompress(DecompressError),
    Elf(ElfError),
    /// The load range `base..end` runs above 4 GiB (the PVH entry is 32-bit).
    Above4G {
        base: u64,
        end: u64,
    },
    /// The slice given is shorter than [`BzLoad::map_len`].
    SliceTooShort {
        len: usize,
        map_len: u64,
    },
    /// The payload decompressed to `got` bytes, but the size appended to it says `expected`.
    SizeMismatch {
        expected: usize,
        got: usize,
    },
}

impl core::error::Error for LoadError {}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Bz(e) => write!(f, "{e}"),
            LoadError::Decompress(e) => write!(f, "decompressing the kernel: {e}"),
            LoadError::Elf(e) => write!(f, "loading the decompressed kernel: {e}"),
            LoadError::Above4G { base, end } => {
                write!(f, "kernel load range {base:#x}..{end:#x} runs above 4 GiB")
            }
            LoadError::SliceTooShort { len, map_len } => write!(
                f,
                "the guest mapping has {len} bytes, the kernel's load needs {map_len}"
            ),
            LoadError::SizeMismatch { expected, got } => write!(
                f,
                "the payload decompressed to {got} bytes, but the bzImage says {expected}"
            ),
        }
    }
}

impl From<BzError> for LoadError {
    fn from(e: BzError) -> Self {
        LoadError::Bz(e)
    }
}

impl From<DecompressError> for LoadError {
    fn from(e: DecompressError) -> Self {
        LoadError::Decompress(e)
    }
}

impl From<ElfError> for LoadError {
    fn from(e: ElfError) -> Self {
        LoadError::Elf(e)
    }
}

/// Plans loading `image`'s kernel: reads the setup header and the payload's size; decodes
/// nothing.
pub fn plan_bzimage(image: &[u8]) -> Result<BzLoad, LoadError> {
    let payload = locate_payload(image)?;
    // locate_payload checked offset + len against the image.
    let bytes = image
        .get(payload.offset..payload.offset + payload.len)
        .unwrap_or(&[]);
    let elf_len = decompress::decompressed_size(payload.compression, bytes)?;
    let room = decompress::output_room(payload.compression, bytes)? as u64;
    let base = pref_address(image).unwrap_or(DEFAULT_LOAD_ADDRESS);
    let map_len = room.max(u64::from(init_size(image).unwrap_or(0)));
    let end = base.saturating_add(map_len);
    if end > LOAD_LIMIT {
        return Err(LoadError::Above4G { base, end });
    }
    Ok(BzLoad {
        payload,
        elf_len,
        base,
        map_len,
    })
}

/// Loads `image`'s kernel into `guest`, dom0's mapping of guest memory from `plan.base`
/// (at least `plan.map_len` bytes): decompresses the payload into it and moves the ELF's
/// segments into place. Returns the kernel (segments at their guest addresses, PVH entry).
/// Bytes of `guest` outside the kernel's segments are left as the decompression left them.
pub fn load_bzimage(image: &[u8], plan: &BzLoad, guest: &mut [u8]) -> Result<Kernel, LoadError> {
    load_bzimage_timed(image, plan, guest, &mut || {})
}

/// [`load_bzimage`], calling `decompressed` between the decompression and the load in place
/// (the domain builder times the two steps apart).
pub fn load_bzimage_timed(
    image: &[u8],
    plan: &BzLoad,
    guest: &mut [u8],
    decompressed: &mut dyn FnMut(),
) -> Result<Kernel, LoadError> {
    if (guest.len() as u64) < plan.map_len {
        return Err(LoadError::SliceTooShort {
            len: guest.len(),
            map_len: plan.map_len,
        });
    }
    let p = plan.payload;
    let bytes = image
        .get(p.offset..p.offset.saturating_add(p.len))
        .ok_or(LoadError::Bz(BzError::Overflow))?;
    let n = decompress::decompress_into(p.compression, bytes, guest)?;
    if n != plan.elf_len {
        return Err(LoadError::SizeMismatch {
            expected: plan.elf_len,
            got: n,
        });
    }
    decompressed();
    Ok(load_in_place(guest, n, plan.base)?)
}

#[cfg(test)]
mod tests;
