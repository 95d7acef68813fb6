//! Phase 2: `hvm_start_info` and the memory map. The only phase that may stop the boot: without
//! a usable start_info or memory map dom0 cannot know which memory is its own.

use alloc::format;
use alloc::string::ToString;

use hwdom::finding;
use report::{BootReport, StartInfoSummary};
use xen::memmap::MemoryMap;
use xen::start_info::{StartInfo, StartInfoHeader};

use crate::hypercall::Xen;
use crate::mem::IdentityMem;
use crate::{boot, stop, time};

/// Room for `XENMEM_memory_map` (Xen's E820MAX is 1024 entries on x86).
const E820_BUF_ENTRIES: usize = 256;

/// Read and validate start_info and the memory map.
pub fn load(start_info_paddr: u32, x: Option<Xen>, rep: &mut BootReport) -> (StartInfo, MemoryMap) {
    let phys = IdentityMem;
    let si_paddr = u64::from(start_info_paddr);
    let hdr = match StartInfoHeader::read(si_paddr, &phys) {
        Ok(h) => h,
        Err(e) => stop(&format!("start_info at {si_paddr:#x} is unusable: {e}")),
    };
    rep.start_info = Some(StartInfoSummary {
        paddr: si_paddr,
        version: hdr.version,
        flags: hdr.flags,
        nr_modules: hdr.nr_modules,
        rsdp: hdr.rsdp_paddr,
    });
    let map = match xen::start_info::read_memmap(&hdr, &phys) {
        Ok(Some(m)) => {
            rep.memmap_source = "start_info".to_string();
            m
        }
        Ok(None) => match x {
            Some(x) => {
                rep.memmap_source = "XENMEM_memory_map".to_string();
                match xenmem_memory_map(&x) {
                    Ok(m) => m,
                    Err(e) => stop(&e),
                }
            }
            None => stop("start_info has no memory map and there is no Xen to ask for one"),
        },
        Err(e) => stop(&format!("start_info memory map: {e}")),
    };
    time::phase("memory map");
    let si = match StartInfo::load(si_paddr, hdr, &map, boot::image_range(), &phys) {
        Ok(s) => s,
        Err(e) => stop(&format!("start_info: {e}")),
    };
    for w in map.warnings().iter().chain(si.warnings.iter()) {
        finding::warn(rep, w.clone());
    }
    time::phase("start_info");
    (si, map)
}

/// Read the memory map from Xen (`XENMEM_memory_map`, memory_op 9).
fn xenmem_memory_map(x: &dyn xen::Hypercall) -> Result<MemoryMap, alloc::string::String> {
    let mut buf = alloc::vec![0u8; E820_BUF_ENTRIES * xen::ops::E820_ENTRY_SIZE];
    let n =
        xen::ops::memory_map(x, &mut buf).map_err(|e| format!("XENMEM_memory_map failed: {e}"))?;
    MemoryMap::from_e820_bytes(&buf, n)
        .map_err(|e| format!("XENMEM_memory_map returned a bad map: {e}"))
}
