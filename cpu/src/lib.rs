//! CPUID and MTRR decoding and consistency checks for dom0's vCPUs.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
