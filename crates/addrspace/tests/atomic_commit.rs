//! A commit is atomic for every address space: while a writer commits transactions that
//! change a shared view *and* move a space to another view, every snapshot a reader of that
//! space takes is the space's whole old layout or its whole new one.
//!
//! The layouts: `system` maps `A` (plus two fixed pages so that it stays its own physical
//! root); the space's root `W` holds a full alias of `system`. One transaction removes `A`
//! from `system` and maps `B` into `W` (so `system` gets a new view and the space moves to
//! `W`'s own view); the next one undoes both. A snapshot of the space always shows exactly
//! one of `A` and `B`: neither (or both) is a layout that never existed for it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use addrspace::{AddressSpace, GuestAddr, Memory, RegionId, SIZE_2_64};

const PAGE: u64 = 0x1000;
const A_AT: u64 = 0x10 * PAGE;
const B_AT: u64 = 0x20 * PAGE;
/// Transactions the writer commits (each one flips the layout).
const COMMITS: usize = 2000;

struct Machine {
    mem: Memory,
    system: RegionId,
    a: RegionId,
    /// The roots `B` goes into (one per space under test).
    roots: Vec<RegionId>,
    /// What each root maps: an alias of the one page `B` (identical roots stay identical).
    bs: Vec<RegionId>,
    spaces: Vec<AddressSpace>,
    /// Keeps `system`'s view alive whatever the spaces under test follow.
    _memory: AddressSpace,
}

fn page(mem: &Memory, name: &str) -> RegionId {
    mem.ram(name, u128::from(PAGE)).unwrap()
}

/// `system` with `A`, and `n` roots `W` that each show `system` whole through an alias
/// (structurally identical, like x86's per-CPU SMM roots, so they may share one view).
fn machine(n: usize) -> Machine {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let a = page(&mem, "A");
    let b = page(&mem, "B");
    mem.add_subregion(system, 0, page(&mem, "low")).unwrap();
    mem.add_subregion(system, PAGE, page(&mem, "high")).unwrap();
    mem.add_subregion(system, A_AT, a).unwrap();
    let memory = mem.address_space("memory", system).unwrap();
    let mut roots = Vec::new();
    let mut bs = Vec::new();
    let mut spaces = Vec::new();
    for i in 0..n {
        let w = mem.container(&format!("W{i}"), SIZE_2_64).unwrap();
        let all = mem.alias(&format!("W{i}-system"), system, 0, SIZE_2_64).unwrap();
        mem.add_subregion(w, 0, all).unwrap();
        spaces.push(mem.address_space(&format!("cpu{i}"), w).unwrap());
        roots.push(w);
        bs.push(mem.alias(&format!("W{i}-B"), b, 0, u128::from(PAGE)).unwrap());
    }
    Machine {
        mem,
        system,
        a,
        roots,
        bs,
        spaces,
        _memory: memory,
    }
}

/// One transaction: `A` out of `system` and `B` into the roots, or back.
fn flip(m: &Machine, to_b: bool) {
    let _tx = m.mem.transaction();
    if to_b {
        m.mem.remove_subregion(m.system, m.a).unwrap();
        for (&w, &b) in m.roots.iter().zip(&m.bs) {
            m.mem.add_subregion_overlap(w, B_AT, b, 1).unwrap();
        }
    } else {
        for (&w, &b) in m.roots.iter().zip(&m.bs) {
            m.mem.remove_subregion(w, b).unwrap();
        }
        m.mem.add_subregion(m.system, A_AT, m.a).unwrap();
    }
}

/// Whether a snapshot shows `A` and whether it shows `B`.
fn shows(view: &addrspace::FlatView) -> (bool, bool) {
    let at = |addr: u64| view.lookup(GuestAddr(addr)).is_some();
    (at(A_AT), at(B_AT))
}

/// Runs the writer against two readers per space (one through `view()`, one through an
/// accessor); returns (snapshots taken, snapshots showing neither or both).
fn torn_snapshots(m: Machine) -> (u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let taken = Arc::new(AtomicU64::new(0));
    let torn = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for space in &m.spaces {
        for use_accessor in [false, true] {
            let (space, stop, taken, torn) = (space.clone(), stop.clone(), taken.clone(), torn.clone());
            readers.push(thread::spawn(move || {
                let mut cpu = space.accessor();
                let mut n = 0u64;
                let mut bad = 0u64;
                // At least some snapshots even if the writer finishes first.
                while !stop.load(Ordering::Relaxed) || n < 1000 {
                    let (a, b) = if use_accessor {
                        shows(cpu.view())
                    } else {
                        shows(&space.view())
                    };
                    n += 1;
                    if a == b {
                        bad += 1;
                    }
                }
                taken.fetch_add(n, Ordering::Relaxed);
                torn.fetch_add(bad, Ordering::Relaxed);
            }));
        }
    }
    for k in 0..COMMITS {
        flip(&m, k % 2 == 0);
        if k % 2 == 1 {
            thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    (taken.load(Ordering::Relaxed), torn.load(Ordering::Relaxed))
}

#[test]
fn a_space_moving_off_a_view_that_changes_never_shows_a_layout_it_never_had() {
    let m = machine(1);
    // Before and after a flip the space shows exactly one of A and B (the setup is right).
    assert_eq!(shows(&m.spaces[0].view()), (true, false));
    flip(&m, true);
    assert_eq!(shows(&m.spaces[0].view()), (false, true));
    flip(&m, false);
    let (taken, torn) = torn_snapshots(m);
    assert_eq!(torn, 0, "{torn} of {taken} snapshots showed neither or both of A and B");
}

#[test]
fn per_cpu_roots_sharing_a_view_move_atomically_too() {
    let m = machine(4);
    for s in &m.spaces {
        assert_eq!(shows(&s.view()), (true, false));
    }
    let (taken, torn) = torn_snapshots(m);
    assert_eq!(torn, 0, "{torn} of {taken} snapshots showed neither or both of A and B");
}
