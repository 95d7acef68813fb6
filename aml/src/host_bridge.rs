//! PCI host bridges in the namespace (`PNP0A03`, `PNP0A08`), as Linux's `acpi_pci_root_add`
//! reads them: `_STA`, `_SEG`, `_BBN`, `_UID`, `_PXM`, the windows and bus range of `_CRS`,
//! and the legacy interrupt routing of `_PRT` (evaluated after `\_PIC (1)`, APIC mode, as
//! Linux does), each link device resolved through its `_CRS` where that is data.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::eval::{Eval, Value};
use crate::name::Path;
use crate::namespace::{Kind, Namespace};
use crate::resource::{self, AddressRange, RangeKind};
use crate::{eisa_id, eisa_id_text};

/// `PNP0A03` (PCI) and `PNP0A08` (PCI Express) host bridges.
pub const PCI_IDS: [u32; 2] = [eisa_id(b"PNP0A03"), eisa_id(b"PNP0A08")];

/// Where a `_PRT` entry routes a device's interrupt pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrtSource {
    /// A global system interrupt, directly.
    Gsi(u32),
    /// Through a link device (`\_SB_.GSIA`), with the GSI its `_CRS` names, or why that was
    /// not evaluated.
    Link {
        device: String,
        index: u32,
        gsi: Result<u32, String>,
    },
}

/// One `_PRT` entry: device `dev` (all functions), pin 0..3 (INTA..INTD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrtEntry {
    pub dev: u8,
    pub pin: u8,
    pub source: PrtSource,
}

/// One PCI host bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBridge {
    pub path: Path,
    /// `PNP0A08` or `PNP0A03` (from `_HID`, or `_CID`).
    pub hid: String,
    /// `_STA` (0xf when absent). Bit 0: present.
    pub status: u64,
    pub segment: u16,
    /// Root bus and the last bus number behind it (`_CRS` bus range, else `_BBN`..0xff).
    pub bus_start: u8,
    pub bus_end: u8,
    pub uid: Option<u64>,
    pub pxm: Option<u32>,
    /// Memory and I/O windows `_CRS` produces (what BARs behind the bridge may use).
    pub windows: Vec<AddressRange>,
    /// `_PRT`, or why it was not evaluated.
    pub routing: Result<Vec<PrtEntry>, String>,
    /// What could not be evaluated (the object stays at its default).
    pub problems: Vec<String>,
}

impl HostBridge {
    pub fn present(&self) -> bool {
        self.status & 1 != 0
    }
}

fn ids(v: &Value) -> Vec<String> {
    match v {
        Value::Integer(x) => alloc::vec![eisa_id_text(*x as u32)],
        Value::String(s) => alloc::vec![s.clone()],
        Value::Package(p) => p.iter().flat_map(ids).collect(),
        _ => Vec::new(),
    }
}

fn child(p: &Path, name: &[u8; 4]) -> Path {
    p.child(*name)
}

/// Every PCI host bridge, in namespace order, and the problems of the evaluation as a whole
/// (`\_PIC`).
pub fn host_bridges(ns: &Namespace<'_>) -> (Vec<HostBridge>, Vec<String>) {
    let mut ev = Eval::new(ns);
    let mut problems = Vec::new();
    if let Some(pic) = Path::parse("\\_PIC")
        && let Err(e) = ev.evaluate(&pic, &[Value::Integer(1)])
    {
        problems.push(format!("\\_PIC (1): {e}; _PRT may describe PIC mode"));
    }
    let mut out = Vec::new();
    for dev in &ns.devices {
        let mut found = None;
        for name in [b"_HID", b"_CID"] {
            if found.is_some() {
                break;
            }
            if let Ok(Some(v)) = ev.evaluate(&child(dev, name), &[]) {
                let pci = [eisa_id_text(PCI_IDS[1]), eisa_id_text(PCI_IDS[0])];
                found = ids(&v).into_iter().find(|i| pci.contains(i));
            }
        }
        if let Some(hid) = found {
            out.push(bridge(&mut ev, dev, hid));
        }
    }
    (out, problems)
}

fn bridge(ev: &mut Eval<'_, '_>, dev: &Path, hid: String) -> HostBridge {
    let mut problems = Vec::new();
    let mut int = |ev: &mut Eval<'_, '_>, name: &[u8; 4]| -> Option<u64> {
        match ev.integer(&child(dev, name)) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{}: {e}", String::from_utf8_lossy(name)));
                None
            }
        }
    };
    let status = int(ev, b"_STA").unwrap_or(0xf);
    let segment = int(ev, b"_SEG");
    let bbn = int(ev, b"_BBN");
    let uid = int(ev, b"_UID");
    let pxm = int(ev, b"_PXM");
    let mut b = HostBridge {
        path: dev.clone(),
        hid,
        status,
        segment: 0,
        bus_start: 0,
        bus_end: 0xff,
        uid,
        pxm: pxm.map(|v| v as u32),
        windows: Vec::new(),
        routing: Err("no _PRT".into()),
        problems,
    };
    if let Some(s) = segment {
        match u16::try_from(s) {
            Ok(s) => b.segment = s,
            Err(_) => b
                .problems
                .push(format!("_SEG {s:#x} is not a segment number")),
        }
    }
    if let Some(n) = bbn {
        match u8::try_from(n) {
            Ok(n) => b.bus_start = n,
            Err(_) => b.problems.push(format!("_BBN {n:#x} is not a bus number")),
        }
    }
    match ev.evaluate(&child(dev, b"_CRS"), &[]) {
        Ok(Some(Value::Buffer(buf))) => match resource::decode(&buf) {
            Ok(r) => {
                for range in r.ranges {
                    match range.kind {
                        RangeKind::BusNumber => {
                            // Linux takes the bus range from _CRS when it has one.
                            let (s, e) = (range.min.min(255) as u8, range.max.min(255) as u8);
                            if bbn.is_some_and(|n| n != u64::from(s)) {
                                b.problems.push(format!(
                                    "_BBN {:#04x} differs from the _CRS bus range {s:#04x}-{e:#04x}; \
                                     _CRS used",
                                    b.bus_start
                                ));
                            }
                            b.bus_start = s;
                            b.bus_end = e;
                        }
                        _ if range.producer => b.windows.push(range),
                        _ => {}
                    }
                }
            }
            Err(e) => b.problems.push(format!("_CRS: {e}")),
        },
        Ok(Some(v)) => b.problems.push(format!("_CRS is not a buffer ({v:?})")),
        Ok(None) => b.problems.push("no _CRS: windows unknown".into()),
        Err(e) => b.problems.push(format!("_CRS: {e}")),
    }
    b.routing = match ev.evaluate(&child(dev, b"_PRT"), &[]) {
        Ok(Some(v)) => routing(ev, &v),
        Ok(None) => Err("no _PRT".into()),
        Err(e) => Err(e),
    };
    b
}

fn routing(ev: &mut Eval<'_, '_>, v: &Value) -> Result<Vec<PrtEntry>, String> {
    let Value::Package(entries) = v else {
        return Err("_PRT is not a package".into());
    };
    let mut out = Vec::new();
    // Each link device is evaluated once (a _PRT names the same few links 128 times).
    let mut links: Vec<(Path, u64, Result<u32, String>)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let Value::Package(f) = e else {
            return Err(format!("_PRT entry {i} is not a package"));
        };
        let (Some(addr), Some(pin), Some(src), Some(idx)) = (
            f.first().and_then(Value::as_integer),
            f.get(1).and_then(Value::as_integer),
            f.get(2),
            f.get(3).and_then(Value::as_integer),
        ) else {
            return Err(format!(
                "_PRT entry {i} is not {{address, pin, source, index}}"
            ));
        };
        let source = match src {
            Value::Integer(0) => PrtSource::Gsi(idx as u32),
            Value::Ref(p) => {
                let gsi = match links.iter().find(|(l, i, _)| l == p && *i == idx) {
                    Some((_, _, g)) => g.clone(),
                    None => {
                        let g = link_gsi(ev, p, idx);
                        links.push((p.clone(), idx, g.clone()));
                        g
                    }
                };
                PrtSource::Link {
                    device: format!("{p}"),
                    index: idx as u32,
                    gsi,
                }
            }
            other => {
                return Err(format!("_PRT entry {i}: source {other:?} is not a device"));
            }
        };
        out.push(PrtEntry {
            dev: ((addr >> 16) & 0x1f) as u8,
            pin: (pin & 3) as u8,
            source,
        });
    }
    Ok(out)
}

fn link_gsi(ev: &mut Eval<'_, '_>, link: &Path, idx: u64) -> Result<u32, String> {
    if !matches!(
        ev_kind(ev, link),
        Some(Kind::Device) | Some(Kind::Processor)
    ) {
        return Err(format!("{link} is not a device"));
    }
    match ev.evaluate(&child(link, b"_CRS"), &[])? {
        Some(Value::Buffer(b)) => {
            let r = resource::decode(&b)?;
            r.interrupts
                .get(usize::try_from(idx).unwrap_or(usize::MAX))
                .copied()
                .ok_or_else(|| format!("{link}._CRS has no interrupt {idx}"))
        }
        Some(_) => Err(format!("{link}._CRS is not a buffer")),
        None => Err(format!("{link} has no _CRS")),
    }
}

fn ev_kind<'a>(ev: &Eval<'_, 'a>, p: &Path) -> Option<Kind<'a>> {
    ev.namespace().get(p).map(|o| o.kind.clone())
}
