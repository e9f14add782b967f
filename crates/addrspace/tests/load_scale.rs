//! What loading QEMU dumps and board files costs at scale, checked without clocks: peak
//! memory grows linearly with the number of mutually overlapping siblings, and deep trees
//! (thousands of nested containers, long alias chains) import and print on a small stack.
//! Their speed is measured by `cargo bench -p addrspace --bench render` (import cases).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use addrspace::mtree::{self, FlatOptions, Hints, TreeOptions};
use common::scale;

/// Counts live and peak heap bytes of the whole process.
struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as our caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Peak = Peak;

/// Tests run one at a time here: the counters are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Peak heap bytes above the starting point while `f` runs.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let out = f();
    (out, PEAK.load(Ordering::SeqCst) - base)
}

/// One container of `n` RAM siblings of one priority, all overlapping each other, at
/// different addresses and of a few different sizes.
fn overlapping(n: usize) -> String {
    let mut s = String::from("address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n");
    for i in 0..n as u64 {
        let start = i * 0x1000;
        let size = 0x1_0000_0000 - (i % 7) * 0x1000;
        let _ = writeln!(s, "    {start:016x}-{:016x} (prio 0, ram): r{i}", start + size - 1);
    }
    s + "\n"
}

/// Runs `f` on a thread with a small stack: a recursion as deep as the tree overflows it.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .expect("ran without overflowing a 256 KiB stack");
}

#[test]
fn overlapping_equal_priority_siblings_cost_linear_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let peak = |n: usize| {
        let text = overlapping(n);
        let (m, bytes) = peak_of(|| mtree::import_dump(&text, "gen", &Hints::default()).unwrap());
        assert_eq!(m.memory.stats().regions, n + 1);
        bytes
    };
    let (small, large) = (peak(2_000), peak(4_000));
    // Twice the siblings, about twice the memory (pairwise edges made it four times).
    assert!(
        large < 3 * small,
        "peak {small} B for 2 000 siblings, {large} B for 4 000: not linear"
    );
}

#[test]
fn a_deep_dump_imports_and_prints_on_a_small_stack() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const DEPTH: usize = 3_000;
    on_small_stack(|| {
        let text = scale::nested_dump(DEPTH);
        let m = mtree::import_dump(&text, "deep", &Hints::default()).unwrap();
        assert_eq!(mtree::print_tree(&m.memory, &TreeOptions::DISABLED), text);
        let flat = mtree::print_flat(&m.memory, &FlatOptions::default());
        assert!(
            flat.contains("  0000000000000000-0000000000000fff (prio 0, ram): ram\n"),
            "{flat}"
        );
    });
}

/// An alias chain: `a0` in system, each `aK` an alias of `aK+1`, the last one of `ram`.
fn alias_chain(n: usize) -> String {
    let window = "0000000000000000-0000000000000fff";
    let mut s = format!(
        "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    {window} (prio 0, ram): alias a0 @a1 {window}\n\n"
    );
    for k in 1..n {
        let target = if k + 1 < n { format!("a{}", k + 1) } else { "ram".into() };
        let _ = writeln!(
            s,
            "memory-region: a{k}\n  {window} (prio 0, ram): alias a{k} @{target} {window}\n"
        );
    }
    let _ = writeln!(s, "memory-region: ram\n  {window} (prio 0, ram): ram\n");
    s
}

#[test]
fn a_long_alias_chain_imports_and_prints_on_a_small_stack() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const CHAIN: usize = 20_000;
    on_small_stack(|| {
        let text = alias_chain(CHAIN);
        let m = mtree::import_dump(&text, "chain", &Hints::default()).unwrap();
        assert_eq!(mtree::print_tree(&m.memory, &TreeOptions::DISABLED), text);
        let flat = mtree::print_flat(&m.memory, &FlatOptions::default());
        assert!(
            flat.contains("  0000000000000000-0000000000000fff (prio 0, ram): ram\n"),
            "{flat}"
        );
    });
}

#[test]
fn deep_board_files_load_and_print_on_a_small_stack() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const DEPTH: usize = 20_000;
    on_small_stack(|| {
        let m = addrspace::board::load_str(&scale::nested_board(DEPTH), "deep.toml").unwrap();
        let flat = mtree::print_flat(&m.memory, &FlatOptions::default());
        // Each level below the root adds 0x1000, and so does the RAM: 20 000 * 0x1000.
        let at = DEPTH as u64 * 0x1000;
        assert!(
            flat.contains(&format!("  {at:016x}-{:016x} (prio 0, ram): ram\n", at + 0xfff)),
            "{flat}"
        );
        // (The tree print is 400 MB of indentation at this depth; the deep dump test prints one.)
        // The exported board loads back to the same machine.
        let again = addrspace::board::load_str(&addrspace::board::export(&m), "again.toml").unwrap();
        assert_eq!(mtree::print_flat(&again.memory, &FlatOptions::default()), flat);

        let m = addrspace::board::load_str(&scale::alias_chain_board(DEPTH), "chain.toml").unwrap();
        let flat = mtree::print_flat(&m.memory, &FlatOptions::default());
        assert!(
            flat.contains("  0000000000000000-0000000000000fff (prio 0, ram): ram\n"),
            "{flat}"
        );
        let tree = mtree::print_tree(&m.memory, &TreeOptions::default());
        assert!(tree.contains(&format!("memory-region: a{}\n", DEPTH - 1)), "{tree}");
    });
}

#[test]
fn a_cycle_at_the_end_of_a_long_alias_chain_is_found() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let text = scale::alias_chain_board(20_000).replace("target = \"ram\"", "target = \"a10000\"");
    let e = addrspace::board::load_str(&text, "cycle.toml").unwrap_err().to_string();
    // Reported at the first alias (in file order) that leads into the cycle: a0's target.
    let line = text[..text.find("target = \"a1\"").unwrap()].matches('\n').count() + 1;
    assert!(e.starts_with(&format!("cycle.toml:{line}:")), "{e}");
    assert!(e.contains("alias cycle through `a0`"), "{e}");
}
