//! Phase 8b: the NIC uplink (`nic=`, issue 13). `hwdom::uplink::pick` chooses from what PCI
//! enumeration reported; `crate::nic::bring_up` drives it. A NIC that cannot be driven is in
//! the report (an error when the user named it, a warning for `nic=auto`) and the boot goes on.

use alloc::format;

use hwdom::options::Dom0Options;
use hwdom::platform::EcamWindow;
use log::{error, info, warn};
use report::{BootReport, UplinkState};

use crate::domu::net::Uplink;
use crate::platform::Dom0Platform;

pub fn bring_up(
    p: &Dom0Platform,
    rep: &mut BootReport,
    mcfg: &[acpi_fixup::McfgEntry],
    opts: &Dom0Options,
) -> Option<Uplink> {
    let functions = rep
        .pci
        .as_ref()
        .map(|p| p.functions.as_slice())
        .unwrap_or(&[]);
    let pick = hwdom::uplink::pick(opts.nic, functions)?;
    let is_error = match &pick {
        hwdom::uplink::Pick::Refuse { error, .. } => *error,
        hwdom::uplink::Pick::Drive { .. } => true,
    };
    // pci_survey mapped these windows (uncached) and told Xen about them.
    let windows: alloc::vec::Vec<EcamWindow> = mcfg
        .iter()
        .map(|m| EcamWindow {
            segment: m.segment,
            start_bus: m.start_bus,
            end_bus: m.end_bus,
            base: m.base,
        })
        .collect();
    let (nic, sum) = crate::nic::bring_up(p, &windows, pick);
    match (&nic, &sum.error) {
        (Some(_), _) => info!(
            "uplink {} [{}] {}: up, MAC {}, link {}, features {:#x}",
            sum.sbdf,
            sum.ids,
            sum.model,
            sum.mac,
            if sum.link_up { "up" } else { "down" },
            sum.features
        ),
        (None, e) => {
            let m = format!(
                "uplink {}{}: {}",
                if sum.sbdf.is_empty() { "-" } else { &sum.sbdf },
                if sum.model.is_empty() {
                    alloc::string::String::new()
                } else {
                    format!(" ({})", sum.model)
                },
                e.as_deref().unwrap_or("not brought up")
            );
            if is_error || sum.state == UplinkState::Failed {
                error!("{m}");
                rep.errors.push(m);
            } else {
                warn!("{m}");
                rep.warnings.push(m);
            }
        }
    }
    rep.uplink = Some(sum.clone());
    nic.map(|n| Uplink::new(n, sum))
}

/// Without Xen there is no service loop to carry the network: `nic=` is noted and not acted on.
pub fn without_xen(rep: &mut BootReport, opts: &Dom0Options) {
    if opts.nic != hwdom::options::NicChoice::None {
        let m = "nic= ignored: the uplink is served by the DomU service loop, which runs only under Xen";
        warn!("{m}");
        rep.warnings.push(m.into());
    }
}
