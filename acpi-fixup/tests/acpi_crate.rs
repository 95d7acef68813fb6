//! What the builders emit, read back by an independent parser: the `acpi` crate (5.2, no
//! default features). The tables are laid out in a fake physical memory (a leaked buffer) that
//! the crate maps through its `AcpiHandler`; every mapping is bounds-checked, so a table whose
//! length or pointers were wrong fails the test instead of reading stray memory.
//!
//! This file is its own crate, so it may implement the `unsafe` handler trait the `acpi` crate
//! requires; `acpi-fixup` itself stays `#![deny(unsafe_code)]`.

use core::ptr::NonNull;

use acpi::fadt::Fadt;
use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
use acpi_fixup::build::{
    ApicIdScheme, ContainerSpec, EntryKind, IoApic, Nmi, Override, build_madt, build_rsdp,
    build_xsdt, replace_in_xsdt,
};
use acpi_fixup::domu::{DomuSpec, domu_tables, domu_tables_with};
use acpi_fixup::mcfg::{self, McfgEntry};
use acpi_fixup::validate::validate;
use acpi_fixup::{MadtSummary, SdtHeader};

/// Physical memory `[base, base + len)`, backed by a leaked buffer.
#[derive(Clone, Copy, Debug)]
struct Mem {
    base: usize,
    ptr: *mut u8,
    len: usize,
}

impl Mem {
    /// Memory covering every block (address, bytes), holding them; zero elsewhere.
    fn new(blocks: &[(u64, &[u8])]) -> Mem {
        let base = blocks.iter().map(|(a, _)| *a).min().unwrap() as usize;
        let end = blocks
            .iter()
            .map(|(a, b)| *a as usize + b.len())
            .max()
            .unwrap();
        // Slack after the last table: the crate maps `size_of::<T>()` for fixed structs.
        let mut buf = vec![0u8; end - base + 512];
        for (a, b) in blocks {
            let off = *a as usize - base;
            buf[off..off + b.len()].copy_from_slice(b);
        }
        let leaked: &'static mut [u8] = Box::leak(buf.into_boxed_slice());
        Mem {
            base,
            ptr: leaked.as_mut_ptr(),
            len: leaked.len(),
        }
    }
}

impl AcpiHandler for Mem {
    unsafe fn map_physical_region<T>(&self, phys: usize, size: usize) -> PhysicalMapping<Self, T> {
        let off = phys
            .checked_sub(self.base)
            .unwrap_or_else(|| panic!("map of {phys:#x} below memory at {:#x}", self.base));
        assert!(
            off.checked_add(size).is_some_and(|e| e <= self.len),
            "map of {phys:#x}+{size:#x} past the end of memory"
        );
        // SAFETY: `off + size <= len`, so the pointer stays inside the leaked buffer.
        let p = unsafe { self.ptr.add(off) }.cast::<T>();
        let p = NonNull::new(p).unwrap();
        // Every struct the crate maps is `repr(packed)`, so alignment 1 suffices.
        // SAFETY: `p` points at `size` readable bytes of a leaked buffer (live for the run).
        unsafe { PhysicalMapping::new(phys, p, size, size, *self) }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

fn tables_at(mem: Mem, rsdp: u64) -> AcpiTables<Mem> {
    // SAFETY: `rsdp` is inside `mem`, where the RSDP was written.
    unsafe { AcpiTables::from_rsdp(mem, rsdp as usize) }.expect("acpi crate refused the RSDP")
}

/// What the `acpi` crate sees in a MADT, as this crate's entries, to compare.
fn acpi_madt_entries(tables: &AcpiTables<Mem>) -> (u32, u32, Vec<acpi_fixup::madt::MadtEntry>) {
    use acpi_fixup::madt::MadtEntry as E;
    let madt = tables.find_table::<Madt>().expect("no MADT");
    let m = madt.get();
    let mut out = Vec::new();
    for e in m.entries() {
        out.push(match e {
            MadtEntry::LocalApic(l) => E::LocalApic {
                uid: l.processor_id,
                apic_id: l.apic_id,
                flags: l.flags,
            },
            MadtEntry::LocalX2Apic(x) => E::LocalX2apic {
                x2apic_id: x.x2apic_id,
                flags: x.flags,
                uid: x.processor_uid,
            },
            MadtEntry::IoApic(i) => E::IoApic(IoApic {
                id: i.io_apic_id,
                addr: i.io_apic_address,
                gsi_base: i.global_system_interrupt_base,
            }),
            MadtEntry::InterruptSourceOverride(o) => E::Override(Override {
                bus: o.bus,
                source: o.irq,
                gsi: o.global_system_interrupt,
                flags: o.flags,
            }),
            MadtEntry::NmiSource(n) => E::NmiSource {
                flags: n.flags,
                gsi: n.global_system_interrupt,
            },
            MadtEntry::LocalApicNmi(n) => E::LocalApicNmi {
                uid: n.processor_id,
                flags: n.flags,
                lint: n.nmi_line,
            },
            MadtEntry::X2ApicNmi(n) => E::LocalX2apicNmi {
                uid: n.processor_uid,
                flags: n.flags,
                lint: n.nmi_line,
            },
            other => panic!("unexpected entry {other:?}"),
        });
    }
    (m.local_apic_address, m.flags, out)
}

fn decoded(table: &[u8]) -> Vec<acpi_fixup::madt::MadtEntry> {
    MadtSummary::parse(table)
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.entry)
        .collect()
}

#[test]
fn domu_tables_read_back() {
    for vcpus in [1u32, 2, 4, 64, 128, 129] {
        let base = 0xFC00_0000u64;
        let d = domu_tables(vcpus, base).unwrap();
        let blocks: Vec<(u64, &[u8])> = std::iter::once(&d.rsdp)
            .chain(d.tables.iter())
            .map(|(a, t)| (*a, t.as_slice()))
            .collect();
        let tables = tables_at(Mem::new(&blocks), base);
        assert_eq!(tables.revision(), 2);

        let sigs: Vec<String> = tables
            .headers()
            .map(|h| h.signature.as_str().to_string())
            .collect();
        assert_eq!(sigs, ["FACP", "APIC"]);

        let fadt = tables.find_table::<Fadt>().expect("no FADT");
        fadt.validate().unwrap();
        let flags = fadt.flags;
        assert!(flags.system_is_hw_reduced_acpi());
        assert!(flags.supports_equivalent_to_wbinvd());
        let boot = fadt.iapc_boot_arch;
        assert!(boot.dont_probe_vga());
        assert!(!boot.legacy_devices_are_accessible());
        assert!(!boot.motherboard_implements_8042());
        assert!(!boot.dont_enable_msi());
        assert!(
            fadt.facs_address().is_err(),
            "no FACS for a hardware-reduced FADT"
        );
        let (dsdt_at, dsdt) = d.table(b"DSDT").unwrap();
        assert_eq!(fadt.dsdt_address().unwrap() as u64, dsdt_at);
        assert!(fadt.pm_timer_block().unwrap().is_none());
        drop(fadt);

        let aml = tables.dsdt().unwrap();
        assert_eq!(aml.address as u64, dsdt_at + 36);
        assert_eq!(aml.length as usize, dsdt.len() - 36);

        let (lapic, mflags, entries) = acpi_madt_entries(&tables);
        assert_eq!((lapic, mflags), (0xFEE0_0000, 0));
        assert_eq!(entries, decoded(d.table(b"APIC").unwrap().1), "{vcpus}");
        assert_eq!(entries.len(), vcpus as usize);
        for (i, e) in entries.iter().enumerate() {
            let i = i as u32;
            match *e {
                acpi_fixup::madt::MadtEntry::LocalApic {
                    uid,
                    apic_id,
                    flags,
                } => {
                    assert!(vcpus <= 128);
                    assert_eq!((u32::from(uid), u32::from(apic_id), flags), (i, 2 * i, 1));
                }
                acpi_fixup::madt::MadtEntry::LocalX2apic {
                    x2apic_id,
                    flags,
                    uid,
                } => {
                    assert!(vcpus > 128);
                    assert_eq!((uid, x2apic_id, flags), (i, 2 * i, 1));
                }
                ref other => panic!("{other:?}"),
            }
        }
    }
}

#[test]
fn domu_with_ioapic_reads_back() {
    let mut s = DomuSpec::new(2, 0x10_0000);
    s.ioapics = vec![IoApic {
        id: 1,
        addr: 0xFEC0_0000,
        gsi_base: 0,
    }];
    s.overrides = vec![Override {
        bus: 0,
        source: 0,
        gsi: 2,
        flags: 0,
    }];
    let d = domu_tables_with(&s).unwrap();
    let tables = tables_at(Mem::new(&[(d.rsdp.0, &d.image().unwrap())]), d.rsdp.0);
    let (_, _, entries) = acpi_madt_entries(&tables);
    assert_eq!(entries, decoded(d.table(b"APIC").unwrap().1));
    assert_eq!(
        entries[0],
        acpi_fixup::madt::MadtEntry::IoApic(s.ioapics[0])
    );
}

/// A QEMU q35-like native MADT (CPUs first, as QEMU writes it).
fn native_madt() -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"APIC");
    t.extend_from_slice(&[0; 4]);
    t.extend_from_slice(&[3, 0]);
    t.extend_from_slice(b"BOCHS BXPC    ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"BXPC");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&0xFEE0_0000u32.to_le_bytes());
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]);
    t.extend_from_slice(&[0, 8, 1, 1, 1, 0, 0, 0]);
    t.extend_from_slice(&[1, 12, 0, 0, 0x00, 0x00, 0xC0, 0xFE, 0, 0, 0, 0]);
    t.extend_from_slice(&[2, 10, 0, 0, 2, 0, 0, 0, 0, 0]);
    for irq in [5u8, 9, 10, 11] {
        t.extend_from_slice(&[2, 10, 0, irq, irq, 0, 0, 0, 0x0D, 0]);
    }
    t.extend_from_slice(&[4, 6, 0xFF, 0, 0, 1]);
    acpi_fixup::finish_table(&mut t).unwrap();
    t
}

/// Xen's dom0 layout, placed the way Xen places it: RSDP, XSDT, MADT packed back to back at
/// alignment 1.
#[test]
fn xen_dom0_layout_reads_back_unaligned() {
    let host = MadtSummary::parse(&native_madt()).unwrap();
    for vcpus in [1u32, 2, 4] {
        let spec = ContainerSpec::xen_pvh_dom0(&host, vcpus);
        let madt = build_madt(&spec).unwrap();
        let rsdp_at = 0x7F6_0F01u64;
        let xsdt_at = rsdp_at + 36;
        let xsdt_len = 36 + 8;
        let madt_at = xsdt_at + xsdt_len;
        let xsdt = build_xsdt(&SdtHeader::default(), &[madt_at]).unwrap();
        assert_eq!(xsdt.len() as u64, xsdt_len);
        let rsdp = build_rsdp(xsdt_at, *b"BOCHS ");
        let mem = Mem::new(&[(rsdp_at, &rsdp), (xsdt_at, &xsdt), (madt_at, &madt)]);
        let tables = tables_at(mem, rsdp_at);
        let (lapic, flags, entries) = acpi_madt_entries(&tables);
        assert_eq!((lapic, flags), (0xFEE0_0000, 0));
        assert_eq!(entries, decoded(&madt));
        // IO APIC, vCPUs as x2APIC (uid i, id 2i), the five ISOs; no NMI.
        assert_eq!(entries.len(), 1 + vcpus as usize + 5);
        assert!(matches!(entries[0], acpi_fixup::madt::MadtEntry::IoApic(_)));
        for i in 0..vcpus {
            assert_eq!(
                entries[1 + i as usize],
                acpi_fixup::madt::MadtEntry::LocalX2apic {
                    x2apic_id: 2 * i,
                    flags: 1,
                    uid: i
                }
            );
        }
        assert_eq!(
            entries[1 + vcpus as usize..]
                .iter()
                .map(|e| e.entry_type())
                .collect::<Vec<_>>(),
            [2, 2, 2, 2, 2]
        );

        // Swap in a container MADT built another way; the crate follows the new address.
        let mut other = ContainerSpec::from_host_madt(&host, vcpus, ApicIdScheme::Identity);
        other.entries = EntryKind::X2apic;
        other.nmis.push(Nmi::Source { flags: 0, gsi: 7 });
        let madt2 = build_madt(&other).unwrap();
        let madt2_at = 0x7F7_0003u64;
        let xsdt2 = replace_in_xsdt(&xsdt, madt_at, madt2_at).unwrap();
        let mem = Mem::new(&[(rsdp_at, &rsdp), (xsdt_at, &xsdt2), (madt2_at, &madt2)]);
        let tables = tables_at(mem, rsdp_at);
        let (_, flags, entries) = acpi_madt_entries(&tables);
        assert_eq!(flags, 1);
        assert_eq!(entries, decoded(&madt2));
        assert!(entries.iter().any(|e| matches!(
            e,
            acpi_fixup::madt::MadtEntry::LocalX2apicNmi { uid: u32::MAX, .. }
        )));
    }
}

#[test]
fn mcfg_reads_back() {
    let regions = [
        McfgEntry {
            base: 0xB000_0000,
            segment: 0,
            start_bus: 0,
            end_bus: 0xFF,
        },
        McfgEntry {
            base: 0x38_0000_0000,
            segment: 1,
            start_bus: 0x40,
            end_bus: 0x7F,
        },
    ];
    let t = mcfg::build(&SdtHeader::default(), &regions).unwrap();
    let base = 0x1000u64;
    let xsdt = build_xsdt(&SdtHeader::default(), &[base + 0x100]).unwrap();
    let rsdp = build_rsdp(base + 0x40, *b"XENPVH");
    let mem = Mem::new(&[(base, &rsdp), (base + 0x40, &xsdt), (base + 0x100, &t)]);
    let tables = tables_at(mem, base);
    let m = tables.find_table::<Mcfg>().unwrap();
    let got: Vec<McfgEntry> = m
        .entries()
        .iter()
        .map(|e| McfgEntry {
            base: e.base_address,
            segment: e.pci_segment_group,
            start_bus: e.bus_number_start,
            end_bus: e.bus_number_end,
        })
        .collect();
    assert_eq!(got, regions);
    // And this crate's walk agrees (no FADT here, which it reports).
    let v = validate(
        &vec![
            (base, rsdp.to_vec()),
            (base + 0x40, xsdt),
            (base + 0x100, t),
        ],
        base,
    );
    assert_eq!(v.mcfg, regions);
}
