//! The heap: a small seed region inside the image (so the memory map and start_info can be
//! parsed into `Vec`s before dom0 knows which RAM is free), then the largest free RAM region.
//! Use and peak are counted for the boot report.
//!
//! Small blocks (up to 2 KiB, alignment up to 16) from the main heap come in eight power-of-two
//! size classes with a free list each: a freed block goes on its class's list and the next
//! allocation of that class takes it back in O(1). `linked_list_allocator` alone searches its
//! whole free list on every allocation (first fit), and dom0 makes many small, short-lived
//! ones (AML values and paths, frames, xenstore requests); under emulation the walk cost
//! 5 ms of the ACPI namespace's 17. Blocks on the lists stay there (the class lists only ever
//! hold what was once in use at the same time: the peak per class).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use linked_list_allocator::Heap;

const SEED_SIZE: usize = 128 * 1024;

#[repr(C, align(4096))]
struct Seed(UnsafeCell<[u8; SEED_SIZE]>);

// SAFETY: the seed memory is only handed to the seed `Heap`, which is behind a lock.
unsafe impl Sync for Seed {}

static SEED: Seed = Seed(UnsafeCell::new([0; SEED_SIZE]));

/// Smallest class (and the alignment every class block has) and the number of classes:
/// 16, 32, ..., 2048 bytes.
const CLASS_MIN: usize = 16;
const CLASSES: usize = 8;

/// The size class of `layout`, if it has one.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > CLASS_MIN || layout.size() > CLASS_MIN << (CLASSES - 1) {
        return None;
    }
    let size = layout.size().max(CLASS_MIN).next_power_of_two();
    Some((size.trailing_zeros() - CLASS_MIN.trailing_zeros()) as usize)
}

fn class_layout(class: usize) -> Layout {
    // The sizes are powers of two from 16 to 2048 and the alignment is 16: always valid.
    Layout::from_size_align(CLASS_MIN << class, CLASS_MIN).unwrap_or(Layout::new::<u128>())
}

struct Dom0Heap {
    /// Heads of the class free lists (0: empty); each free block holds the next one's address
    /// in its first 8 bytes.
    classes: spin::Mutex<[usize; CLASSES]>,
    seed: spin::Mutex<(bool, Heap)>,
    main: spin::Mutex<Heap>,
    main_start: AtomicU64,
    main_size: AtomicU64,
    used: AtomicUsize,
    peak: AtomicUsize,
}

#[global_allocator]
static HEAP: Dom0Heap = Dom0Heap {
    classes: spin::Mutex::new([0; CLASSES]),
    seed: spin::Mutex::new((false, Heap::empty())),
    main: spin::Mutex::new(Heap::empty()),
    main_start: AtomicU64::new(0),
    main_size: AtomicU64::new(0),
    used: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
};

fn in_seed(p: *mut u8) -> bool {
    let s = SEED.0.get() as usize;
    (s..s + SEED_SIZE).contains(&(p as usize))
}

impl Dom0Heap {
    fn count(&self, size: usize) {
        let used = self.used.fetch_add(size, Ordering::Relaxed) + size;
        self.peak.fetch_max(used, Ordering::Relaxed);
    }
}

// SAFETY: every block handed out comes from one of two linked-list heaps over memory dom0 owns
// exclusively (the seed array, and a free RAM range nothing else uses); each heap is behind a
// lock, and `dealloc` returns a block to the heap whose range contains it.
unsafe impl GlobalAlloc for Dom0Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.main_size.load(Ordering::Acquire) != 0 {
            let class = class_of(layout);
            if let Some(c) = class {
                let mut heads = self.classes.lock();
                let head = heads[c];
                if head != 0 {
                    // `head` is a class-`c` block `dealloc` put on the list (main heap memory,
                    // 16-aligned, ≥ 16 bytes), unused while there; its first 8 bytes link on.
                    // SAFETY: a valid, aligned, initialized usize at `head` (above).
                    heads[c] = unsafe { (head as *const usize).read() };
                    self.count(layout.size());
                    return head as *mut u8;
                }
            }
            // A class block is always allocated at its class's full size, so that any
            // request of the class can reuse it.
            let l = class.map_or(layout, class_layout);
            if let Ok(p) = self.main.lock().allocate_first_fit(l) {
                self.count(layout.size());
                return p.as_ptr();
            }
        }
        let mut seed = self.seed.lock();
        if !seed.0 {
            // SAFETY: first use: the seed array is static, aligned, and used by nothing else.
            unsafe { seed.1.init(SEED.0.get().cast(), SEED_SIZE) };
            seed.0 = true;
        }
        match seed.1.allocate_first_fit(layout) {
            Ok(p) => {
                self.count(layout.size());
                p.as_ptr()
            }
            Err(()) => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(nn) = NonNull::new(ptr) else { return };
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
        if in_seed(ptr) {
            // SAFETY: `ptr` lies in the seed range, so the seed heap allocated it with `layout`.
            unsafe { self.seed.lock().1.deallocate(nn, layout) }
        } else if let Some(c) = class_of(layout) {
            // Not in the seed range and of a class: `alloc` made it a class block (of the
            // class's full size, from the main heap or its list). Onto the list.
            let mut heads = self.classes.lock();
            // SAFETY: the block is at least 16 bytes, 16-aligned, and the caller gives it up:
            // its first 8 bytes may hold the list link.
            unsafe { ptr.cast::<usize>().write(heads[c]) };
            heads[c] = ptr as usize;
        } else {
            // SAFETY: not in the seed range and of no class, so the main heap allocated it
            // with `layout` itself.
            unsafe { self.main.lock().deallocate(nn, layout) }
        }
    }
}

/// Give the heap the RAM range `[start, end)`. Call once.
///
/// # Safety
/// The range must be identity-mapped RAM that nothing else uses, now or later.
pub unsafe fn add_main(start: u64, end: u64) {
    let size = (end - start) as usize;
    // SAFETY: the caller guarantees exclusive ownership of the range.
    unsafe { HEAP.main.lock().init(start as *mut u8, size) };
    HEAP.main_start.store(start, Ordering::Relaxed);
    HEAP.main_size.store(size as u64, Ordering::Release);
}

/// (size of both heaps, bytes in use, peak bytes in use).
pub fn stats() -> (u64, u64, u64) {
    (
        SEED_SIZE as u64 + HEAP.main_size.load(Ordering::Relaxed),
        HEAP.used.load(Ordering::Relaxed) as u64,
        HEAP.peak.load(Ordering::Relaxed) as u64,
    )
}
