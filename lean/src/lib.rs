//! Small-code replacements for the `alloc` algorithms dom0 uses most, for its image budget
//! (issue 11: 512 KiB stripped, not met since the network and the kernel decoders; see the
//! README's bench table).
//!
//! Generic code is paid for once per type it is used with. `core`'s sort and `alloc`'s
//! `BTreeMap` are built for large inputs and cost 3–5 KiB per instance; dom0 had twenty sort
//! call sites and twenty map types, ~140 KiB together, for lists of tens to hundreds of
//! entries. The two modules here do the same jobs in a few hundred bytes per instance:
//!
//! - [`sort`]: a stable `O(n log n)` sort whose work is one non-generic heapsort;
//! - [`map`]: [`VecMap`], an ordered map on a sorted `Vec` with `BTreeMap`'s interface (the
//!   part dom0 uses), for maps of at most a few thousand entries.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod map;
pub mod sort;

pub use map::{VecMap, VecSet};
pub use sort::{sort, sort_by, sort_by_key, sort_dedup};
