//! The boot, one module per phase, in the order `rust_start` runs them:
//!
//! 1. [`xen`]: is Xen there (CPUID leaves), hypercall page, consoles, TSC frequency.
//! 2. [`start`]: `hvm_start_info`, the memory map (start_info v1, or `XENMEM_memory_map`),
//!    start_info validated against it.
//! 3. [`options`]: dom0's command line (`hwdom::options`), log level, console choice.
//! 4. [`memory`]: cache attributes, the heap, RAM above 4 GiB.
//! 5. [`events`]: shared_info, the upcall, VIRQ_TIMER, vCPU count, event-channel and grant-table
//!    self-tests.
//! 6. [`vcpus`]: the other vCPUs (`VCPUOP_up`), each sent work and a timer probe; then the boot
//!    watchdog starts.
//! 7. [`cpu`]: the CPU report (`hwdom::cpu_report`) from every vCPU's per-CPU block.
//! 8. ACPI (`hwdom::acpi::boot_survey`), PCI (`hwdom::pci_survey::survey`) and modules
//!    (`hwdom::modules::survey`), called directly on [`crate::platform::Dom0Platform`].
//!    Then [`nic`]: the NIC uplink `nic=` asks for (`hwdom::uplink`, `crate::nic`).
//! 9. [`ready`]: the watchdog's findings, heap and timeline into the report, the report out,
//!    `DOM0-RESULT: ready`.
//! 10. [`domus`]: the boot bundle's DomUs and the network (vifs, dom0's IP, the uplink), served
//!     until they all stop and `linger=` ends; then idle or exit.
//!
//! A phase that cannot do its job records why in the report and the boot goes on; only a
//! start_info or memory map dom0 cannot use stops it ([`crate::stop`]).

pub mod cpu;
pub mod domus;
pub mod events;
pub mod memory;
pub mod nic;
pub mod options;
pub mod ready;
pub mod start;
pub mod vcpus;
pub mod xen;
