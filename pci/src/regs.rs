//! Config-space register offsets and bits used by enumeration, BAR sizing and the simulator
//! (PCI Local Bus 3.0, PCI-to-PCI Bridge 1.2, PCI Express Base 4.0, SR-IOV 1.1).

/// Vendor ID (16) and Device ID (16).
pub const ID: u16 = 0x00;
/// COMMAND (16), STATUS (16).
pub const COMMAND: u16 = 0x04;
/// Revision ID (8), class code (24: prog-if, sub-class, base class).
pub const CLASS_REV: u16 = 0x08;
/// Cache line (8), latency timer (8), header type (8), BIST (8).
pub const HEADER: u16 = 0x0c;
/// First BAR.
pub const BAR0: u16 = 0x10;
/// Type 1: primary, secondary, subordinate bus, secondary latency timer.
pub const BUS_NUMBERS: u16 = 0x18;
/// Type 0: subsystem vendor ID (16), subsystem ID (16).
pub const SUBSYSTEM: u16 = 0x2c;
/// Type 0: expansion ROM base address.
pub const ROM0: u16 = 0x30;
/// Capabilities pointer (8), types 0 and 1.
pub const CAP_PTR: u16 = 0x34;
/// Type 1: expansion ROM base address.
pub const ROM1: u16 = 0x38;
/// Interrupt line (8), pin (8); bridge control (16) in type 1.
pub const INTERRUPT: u16 = 0x3c;
/// First byte after the standard header, where capabilities may start.
pub const HEADER_END: u16 = 0x40;
/// First extended capability (PCIe extended config space).
pub const EXT_CAP_START: u16 = 0x100;
/// Size of a PCIe function's config space.
pub const CONFIG_SPACE_SIZE: u16 = 0x1000;
/// Size of a conventional PCI function's config space (all CF8/CFC reaches).
pub const LEGACY_CONFIG_SIZE: u16 = 0x100;

/// COMMAND: I/O space decoding.
pub const CMD_IO: u16 = 1 << 0;
/// COMMAND: memory space decoding.
pub const CMD_MEM: u16 = 1 << 1;
/// COMMAND: bus master.
pub const CMD_MASTER: u16 = 1 << 2;
/// COMMAND: INTx disable.
pub const CMD_INTX_DISABLE: u16 = 1 << 10;
/// STATUS: capabilities list present.
pub const STATUS_CAP_LIST: u16 = 1 << 4;

/// Header type: multi-function device.
pub const HEADER_MULTIFUNCTION: u8 = 0x80;
/// Header type layouts.
pub const HEADER_ENDPOINT: u8 = 0;
pub const HEADER_BRIDGE: u8 = 1;
pub const HEADER_CARDBUS: u8 = 2;

/// BAR: I/O space indicator.
pub const BAR_IO: u32 = 1;
/// Memory BAR type field (bits 2:1): 0 = 32-bit, 1 = below 1 MiB (PCI 2.x), 2 = 64-bit.
pub const BAR_MEM_TYPE_MASK: u32 = 0b110;
pub const BAR_MEM_TYPE_64: u32 = 0b100;
pub const BAR_MEM_TYPE_1M: u32 = 0b010;
/// Memory BAR: prefetchable.
pub const BAR_PREFETCH: u32 = 1 << 3;
/// Address bits of a memory BAR, an I/O BAR and an expansion ROM BAR.
pub const BAR_MEM_ADDR: u32 = !0xf;
pub const BAR_IO_ADDR: u32 = !0x3;
pub const ROM_ADDR: u32 = !0x7ff;
/// Expansion ROM: decoder enable.
pub const ROM_ENABLE: u32 = 1;

/// Capability IDs.
pub const CAP_PM: u8 = 0x01;
pub const CAP_MSI: u8 = 0x05;
pub const CAP_SSVID: u8 = 0x0d;
pub const CAP_PCIE: u8 = 0x10;
pub const CAP_MSIX: u8 = 0x11;

/// Extended capability IDs.
pub const EXT_AER: u16 = 0x0001;
pub const EXT_ACS: u16 = 0x000d;
pub const EXT_ARI: u16 = 0x000e;
pub const EXT_SRIOV: u16 = 0x0010;
pub const EXT_REBAR: u16 = 0x0015;

/// PCIe capability: PCI Express Capabilities register (16) at +2, Device Control 2 at +0x28.
pub const PCIE_FLAGS: u16 = 0x02;
pub const PCIE_DEVCAP2: u16 = 0x24;
pub const PCIE_DEVCTL2: u16 = 0x28;
/// Device Capabilities 2 / Device Control 2: ARI forwarding supported / enabled.
pub const PCIE_ARI_FORWARDING: u32 = 1 << 5;
/// The PCIe capability must reach Device Control 2 to be read whole.
pub const PCIE_CAP_LEN: u16 = 0x2c;

/// Device/port types (PCI Express Capabilities register bits 7:4).
pub const PCIE_TYPE_ENDPOINT: u8 = 0x0;
pub const PCIE_TYPE_LEGACY_ENDPOINT: u8 = 0x1;
pub const PCIE_TYPE_ROOT_PORT: u8 = 0x4;
pub const PCIE_TYPE_UPSTREAM: u8 = 0x5;
pub const PCIE_TYPE_DOWNSTREAM: u8 = 0x6;
pub const PCIE_TYPE_PCIE_TO_PCI: u8 = 0x7;
pub const PCIE_TYPE_PCI_TO_PCIE: u8 = 0x8;
pub const PCIE_TYPE_RC_ENDPOINT: u8 = 0x9;
pub const PCIE_TYPE_RC_EVENT_COLLECTOR: u8 = 0xa;

/// MSI-X: table and PBA offset/BIR registers, relative to the capability.
pub const MSIX_TABLE: u16 = 0x04;
pub const MSIX_PBA: u16 = 0x08;

/// ARI capability register (16) at +4: bits 15:8 next function number.
pub const ARI_CAP: u16 = 0x04;

/// SR-IOV capability registers, relative to the capability.
pub const SRIOV_CAPS: u16 = 0x04;
pub const SRIOV_CTRL: u16 = 0x08;
pub const SRIOV_INITIAL_TOTAL: u16 = 0x0c;
pub const SRIOV_NUM_VFS: u16 = 0x10;
pub const SRIOV_OFFSET_STRIDE: u16 = 0x14;
pub const SRIOV_VF_DEVICE: u16 = 0x18;
pub const SRIOV_PAGE_SIZES: u16 = 0x1c;
pub const SRIOV_SYSTEM_PAGE_SIZE: u16 = 0x20;
pub const SRIOV_VF_BAR0: u16 = 0x24;
pub const SRIOV_CAP_LEN: u16 = 0x40;
/// SR-IOV control bits.
pub const SRIOV_CTRL_VFE: u16 = 1 << 0;
pub const SRIOV_CTRL_VF_MSE: u16 = 1 << 3;
pub const SRIOV_CTRL_ARI_HIERARCHY: u16 = 1 << 4;

/// Xen's `physdev_pci_device_add` flags (`public/physdev.h`).
pub const XEN_PCI_DEV_EXTFN: u32 = 0x1;
pub const XEN_PCI_DEV_VIRTFN: u32 = 0x2;
pub const XEN_PCI_DEV_PXM: u32 = 0x4;
