//! The CPU report over simulated vCPUs: CPUID differences, a vCPU that never came up, MTRRs
//! that disagree, and `mtrr=fix` making them agree (or failing to).

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use report::BootReport;

use super::*;
use crate::testkit::q35_map;

/// WB default, enabled; fixed ranges on, all WB; one variable range: [3 GiB, 4 GiB) UC.
fn mtrrs() -> cpu::MtrrState {
    cpu::MtrrState {
        cap: 0x508,
        def_type: 0xc06,
        fixed: Some([0x0606_0606_0606_0606; 11]),
        var: vec![
            (0xc000_0000, 0xff_c000_0800),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
            (0, 0),
        ],
    }
}

fn cpuid(apic: u32) -> cpu::CpuidReport {
    cpu::CpuidReport {
        vendor: "AuthenticAMD".to_string(),
        family: 15,
        model: 107,
        brand: "QEMU Virtual CPU".to_string(),
        initial_apic_id: apic,
        features: vec!["fpu", "mtrr"],
        phys_addr_bits: 40,
        ..Default::default()
    }
}

/// MSR writes asked of one vCPU.
type Fix = (u32, Vec<(u32, u64)>);

struct SimVcpus {
    facts: RefCell<Vec<VcpuFacts>>,
    refuse_fix: bool,
    fixes: RefCell<Vec<Fix>>,
}

impl SimVcpus {
    fn new(n: u32) -> SimVcpus {
        SimVcpus {
            facts: RefCell::new(
                (0..n)
                    .map(|id| VcpuFacts {
                        id,
                        known: true,
                        up: true,
                        cpuid: Some(cpuid(2 * id)),
                        mtrr: Some(mtrrs()),
                        online_ns: u64::from(id) * 1000,
                        work_done: u64::from(id > 0) * 2,
                    })
                    .collect(),
            ),
            refuse_fix: false,
            fixes: RefCell::new(Vec::new()),
        }
    }
}

impl Vcpus for SimVcpus {
    fn facts(&self, id: u32) -> VcpuFacts {
        self.facts
            .borrow()
            .get(id as usize)
            .cloned()
            .unwrap_or(VcpuFacts {
                id,
                ..Default::default()
            })
    }

    fn write_mtrrs(&self, id: u32, writes: &[(u32, u64)]) -> Result<u64, String> {
        if self.refuse_fix {
            return Err("IPI not answered".to_string());
        }
        self.fixes.borrow_mut().push((id, writes.to_vec()));
        // A vCPU that applies them has vCPU 0's MTRRs afterwards.
        let zero = self.facts.borrow()[0].mtrr.clone();
        self.facts.borrow_mut()[id as usize].mtrr = zero;
        Ok(writes.len() as u64)
    }
}

fn rep_with(vcpus: u32) -> BootReport {
    BootReport {
        vcpus,
        ..Default::default()
    }
}

#[test]
fn agreeing_vcpus_give_a_clean_report() {
    let v = SimVcpus::new(4);
    let mut rep = rep_with(4);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Check, true);
    let c = rep.cpu.as_ref().unwrap();
    assert_eq!(
        (c.vendor.as_str(), c.family, c.phys_addr_bits),
        ("AuthenticAMD", 15, 40)
    );
    let ids: Vec<u32> = rep.vcpu_list.iter().map(|v| v.apic_id).collect();
    assert_eq!(ids, [0, 2, 4, 6]);
    assert!(
        rep.vcpu_list
            .iter()
            .all(|v| v.up && v.cpuid_differences.is_empty())
    );
    let m = rep.mtrr.as_ref().unwrap();
    assert!(m.consistent && !m.corrected, "{m:?}");
    assert_eq!(m.default_type, "WB");
}

#[test]
fn a_vcpu_that_never_came_up_is_listed_down() {
    let v = SimVcpus::new(2);
    let mut rep = rep_with(3);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Check, true);
    assert_eq!(rep.vcpu_list.len(), 3);
    assert!(!rep.vcpu_list[2].up);
    assert_eq!(rep.vcpu_list[2].id, 2);
}

#[test]
fn cpuid_differences_are_reported_per_vcpu() {
    let v = SimVcpus::new(2);
    v.facts.borrow_mut()[1].cpuid.as_mut().unwrap().features = vec!["fpu"];
    let mut rep = rep_with(2);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Check, true);
    assert!(rep.vcpu_list[0].cpuid_differences.is_empty());
    assert!(
        rep.vcpu_list[1]
            .cpuid_differences
            .iter()
            .any(|d| d.contains("mtrr")),
        "{:?}",
        rep.vcpu_list[1].cpuid_differences
    );
}

#[test]
fn skewed_mtrrs_are_inconsistent_and_mtrr_fix_corrects_them() {
    let v = SimVcpus::new(3);
    v.facts.borrow_mut()[2].mtrr.as_mut().unwrap().def_type = 0xc00; // UC default
    let mut rep = rep_with(3);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Check, true);
    let m = rep.mtrr.as_ref().unwrap();
    assert!(!m.consistent && !m.corrected);
    assert!(v.fixes.borrow().is_empty(), "mtrr=check must not write");

    let mut rep = rep_with(3);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Fix, true);
    let m = rep.mtrr.as_ref().unwrap();
    assert!(!m.consistent && m.corrected, "{m:?}");
    let fixes = v.fixes.borrow();
    assert_eq!(fixes.len(), 1);
    assert_eq!(fixes[0].0, 2);
    assert!(fixes[0].1.contains(&(0x2ff, 0xc06)), "{:?}", fixes[0].1);
}

#[test]
fn a_failed_fix_is_a_problem_and_not_corrected() {
    let mut v = SimVcpus::new(2);
    v.refuse_fix = true;
    v.facts.borrow_mut()[1].mtrr.as_mut().unwrap().def_type = 0xc00;
    let mut rep = rep_with(2);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Fix, true);
    let m = rep.mtrr.as_ref().unwrap();
    assert!(!m.corrected);
    assert!(
        m.problems
            .iter()
            .any(|p| p == "MTRR fix on vCPU 1 failed: IPI not answered"),
        "{:?}",
        m.problems
    );
}

#[test]
fn without_mtrrs_there_is_no_mtrr_summary() {
    let v = SimVcpus::new(1);
    v.facts.borrow_mut()[0].mtrr = None;
    let mut rep = rep_with(1);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Check, false);
    assert!(rep.mtrr.is_none());
    assert!(rep.cpu.is_some());
}

#[test]
fn mmio_in_the_pci_hole_must_be_uncached() {
    // q35_map reserves the MMCONFIG window at 0xb0000000, above low RAM: it must be UC, and the
    // only variable range covers [3 GiB, 4 GiB): the window's first 256 MiB is WB.
    let v = SimVcpus::new(1);
    let mut rep = rep_with(1);
    report_cpus(&mut rep, &q35_map(), &v, None, MtrrMode::Check, false);
    let m = rep.mtrr.as_ref().unwrap();
    assert!(
        m.problems
            .iter()
            .any(|p| p.starts_with("mmio_cached: MMIO [0xb0000000")),
        "{:?}",
        m.problems
    );
}
