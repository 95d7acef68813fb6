//! `cargo bench -p aml`: loading QEMU's q35 DSDTs and finding their PCI host bridges (what
//! dom0's ACPI phase adds to the boot), timed over repeated runs.

use std::time::Instant;

const TABLES: [(&str, &[u8]); 2] = [
    ("q35", include_bytes!("../tests/data/q35-dsdt.aml")),
    (
        "q35 + 2 expanders",
        include_bytes!("../tests/data/q35-expander-dsdt.aml"),
    ),
];

fn main() {
    for (name, t) in TABLES {
        let runs = 200u32;
        let (mut load, mut bridges) = (0u128, 0u128);
        for _ in 0..runs {
            let t0 = Instant::now();
            let mut ns = aml::Namespace::new();
            ns.load(t);
            let t1 = Instant::now();
            let (b, _) = aml::host_bridges(&ns);
            std::hint::black_box(b);
            load += (t1 - t0).as_nanos();
            bridges += t1.elapsed().as_nanos();
        }
        println!(
            "{name:>20}: {} bytes, load {:.1} us, host bridges (_CRS, _PRT, links) {:.1} us",
            t.len(),
            load as f64 / f64::from(runs) / 1000.0,
            bridges as f64 / f64::from(runs) / 1000.0
        );
    }
}
