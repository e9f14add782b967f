//! A counting allocator for leak tests: only threads that opt in (`track_this_thread`) are
//! counted, in one global total and in each thread's own share. A test installs it with
//! `#[global_allocator] static GLOBAL: Counting = Counting;`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    static TRACKED: Cell<bool> = const { Cell::new(false) };
    /// This thread's own share of `LIVE` (immune to other tracked threads still exiting).
    static MINE: Cell<isize> = const { Cell::new(0) };
}

fn tracked() -> bool {
    TRACKED.try_with(Cell::get).unwrap_or(false)
}

/// Counts this thread's allocations from now on.
pub fn track_this_thread() {
    TRACKED.with(|t| t.set(true));
}

/// Counts `delta` bytes for a tracked thread.
fn count(delta: isize) {
    LIVE.fetch_add(delta, Ordering::Relaxed);
    let _ = MINE.try_with(|m| m.set(m.get() + delta));
}

/// Live bytes allocated minus freed by every tracked thread.
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::SeqCst)
}

/// Live bytes allocated minus freed by this thread alone.
pub fn my_live_bytes() -> isize {
    MINE.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && tracked() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && tracked() {
            count(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if tracked() {
            count(-(layout.size() as isize));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && tracked() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}
