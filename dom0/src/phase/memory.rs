//! Phase 4: cache attributes of the identity map, the heap, RAM above 4 GiB.

use alloc::format;

use hwdom::finding;
use log::info;
use report::{BootReport, MemoryRegion};
use xen::memmap::{MemType, MemoryMap};
use xen::start_info::StartInfo;

use crate::{boot, heap, mem, time};

pub fn init(si: &StartInfo, map: &MemoryMap, rep: &mut BootReport) {
    let (wb, uc) = mem::refine_cacheability(map);
    info!("identity map: 4 GiB in 2 MiB pages, {wb} write-back, {uc} uncached");
    match mem::guard_boot_stack() {
        Ok(at) => info!(
            "boot stack: {} KiB, guard page at {at:#x}",
            boot::BOOT_STACK_SIZE / 1024
        ),
        Err(e) => finding::warn(rep, format!("boot stack left without a guard page: {e}")),
    }
    let image = boot::image_range();
    if !map.is_ram(image.start, image.end - image.start) {
        finding::warn(
            rep,
            format!(
                "dom0 image [{:#x}, {:#x}) is not wholly in RAM",
                image.start, image.end
            ),
        );
    }
    let mut taken = si.taken_ranges();
    taken.push(image.clone());
    taken.push(0..0x10_0000); // keep the first MiB for firmware data and AP trampolines
    let free = map.free_ram(&taken, 4096);
    let best = free
        .iter()
        .map(|r| r.start..r.end.min(mem::MAPPED_LIMIT))
        .filter(|r| r.end > r.start)
        .max_by_key(|r| r.end - r.start);
    match best {
        Some(r) => {
            // `free_ram` excluded the image, start_info, its strings and modules, and the
            // first MiB; nothing else in dom0 allocates from RAM.
            // SAFETY: so the range is identity-mapped RAM (below the mapped limit) nobody uses.
            unsafe { heap::add_main(r.start, r.end) };
            info!(
                "heap: [{:#x}, {:#x}) = {} KiB",
                r.start,
                r.end,
                (r.end - r.start) / 1024
            );
        }
        None => finding::warn(rep, "no free RAM for the heap beyond the built-in 128 KiB"),
    }
    // RAM above 4 GiB (Xen gives dom0 most of a big machine unless dom0_mem= says otherwise).
    let mut high = 0u64;
    for r in map.regions().iter().filter(|r| r.kind == MemType::Ram) {
        if r.end() > mem::MAPPED_LIMIT {
            match mem::map_identity(r.addr, r.end(), mem::Cache::WriteBack) {
                Ok(()) => high += r.end() - r.addr.max(mem::MAPPED_LIMIT),
                Err(e) => finding::warn(
                    rep,
                    format!("RAM [{:#x}, {:#x}) not mapped: {e:?}", r.addr, r.end()),
                ),
            }
        }
    }
    if high > 0 {
        info!("identity map: {} MiB of RAM above 4 GiB mapped", high >> 20);
    }
    rep.memory_map = map.regions().iter().map(MemoryRegion::from).collect();
    rep.ram_bytes = map.total(MemType::Ram);
    time::phase("heap");
}
