//! Readers against a writer that keeps remapping: every read sees the old layout or the new
//! one, never a mix, never freed memory. The writer also creates and deletes RAM regions
//! every cycle, so a reader that used freed memory would read garbage (or crash).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, SIZE_2_64};

const PAGE: usize = 0x1000;

/// A fresh page-sized RAM region filled with the 32-bit stamp `word`.
fn filled(mem: &Memory, name: &str, word: u32) -> addrspace::RegionId {
    let r = mem.ram(name, PAGE as u128).unwrap();
    let leaf = mem.leaf(r).unwrap().unwrap();
    let bytes: Vec<u8> = std::iter::repeat_n(word.to_le_bytes(), PAGE / 4).flatten().collect();
    assert!(leaf.backend().ram().unwrap().write(0, &bytes));
    r
}

/// The stamp of a page, if every word of it carries the same one.
fn stamp(page: &[u8]) -> Option<u32> {
    let first = u32::from_le_bytes(page[..4].try_into().unwrap());
    page.chunks(4)
        .all(|w| u32::from_le_bytes(w.try_into().unwrap()) == first)
        .then_some(first)
}

#[test]
fn readers_see_whole_layouts_while_a_writer_remaps() {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    // Layout k: page 0 holds pattern 2k+1, page 1 pattern 2k+2 (fresh regions each time).
    let mut current = (filled(&mem, "a", 1), filled(&mem, "b", 2));
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, current.0).unwrap();
        mem.add_subregion(system, PAGE as u64, current.1).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let space = space.clone();
            let stop = stop.clone();
            let reads = reads.clone();
            thread::spawn(move || {
                let mut cpu = space.accessor();
                let mut buf = vec![0u8; 2 * PAGE];
                let mut last = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // One access spanning both pages: both halves come from one layout.
                    let res = cpu.read(GuestAddr(0), &mut buf, MemTxAttrs::default());
                    assert_eq!(res, MemTxResult::OK, "there is never a hole");
                    let x = stamp(&buf[..PAGE]).expect("page 0 torn");
                    let y = stamp(&buf[PAGE..]).expect("page 1 torn");
                    assert_eq!(y, x + 1, "pages from two different layouts");
                    assert_eq!(x % 2, 1, "stamp of a layout that never existed");
                    assert!(x >= last, "went back from layout {last} to {x}");
                    last = x;
                    // A typed load on the fast path sees the same layout or a newer one.
                    let at = if t == 0 { 0 } else { PAGE as u64 };
                    let (v, r) = cpu.load::<u32>(GuestAddr(at), Endianness::Little, MemTxAttrs::default());
                    assert_eq!(r, MemTxResult::OK);
                    assert!(v >= x, "typed load older than the slice read before it");
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let base = mem.stats();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut k = 0u32;
    let mut cycles = 0u64;
    while Instant::now() < deadline {
        k += 1;
        let x = 2 * k + 1;
        let next = (filled(&mem, "a", x), filled(&mem, "b", x + 1));
        {
            let _tx = mem.transaction();
            mem.remove_subregion(system, current.0).unwrap();
            mem.remove_subregion(system, current.1).unwrap();
            mem.add_subregion(system, 0, next.0).unwrap();
            mem.add_subregion(system, PAGE as u64, next.1).unwrap();
        }
        // The old regions leave the graph now; readers may still hold views of them.
        mem.delete_region(current.0).unwrap();
        mem.delete_region(current.1).unwrap();
        current = next;
        cycles += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader saw a torn or impossible layout");
    }
    let end = mem.stats();
    assert!(cycles > 100, "writer made {cycles} cycles");
    assert!(
        reads.load(Ordering::Relaxed) > 100,
        "readers made {} reads",
        reads.load(Ordering::Relaxed)
    );
    assert_eq!(end.regions, base.regions, "regions back to baseline");
    assert_eq!(end.flatviews, base.flatviews, "old views freed once readers let go");
}

/// Migration against a running guest: a vCPU (an `Accessor`) stores into 8 slots of each of 4
/// logged pages while a collector takes the dirty pages and copies those slots. At the end of
/// each round (writer stopped, one last pass) a slot whose copy differs from RAM is a write
/// that was neither copied nor left marked — lost for migration. Bounded by rounds, not time;
/// whether the race is hit depends on the hardware and the scheduler, so a pass means "none
/// seen" (the loom model in `dirty.rs` is the proof).
#[test]
fn dirty_log_loses_no_write_to_a_concurrent_collector() {
    use addrspace::DirtyClient;
    const PAGES: u64 = 4;
    // More rounds for a longer soak: ADDRSPACE_DIRTY_ROUNDS=1000000 (in release).
    let rounds: u64 = std::env::var("ADDRSPACE_DIRTY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    // Few slots per page: the collector copies them right after taking the bits, while the
    // writer's latest stores may still be in flight.
    const SLOTS: u64 = 8;
    const COPY: usize = SLOTS as usize * 8;
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", u128::from(PAGES) * PAGE as u128).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    mem.dirty().start_global().unwrap();
    let attrs = MemTxAttrs::default();
    // Round handshakes spin (a futex wake would separate the threads for microseconds).
    let started = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let wait_for = |counter: &AtomicU64, round: u64| {
        while counter.load(Ordering::Acquire) <= round {
            std::hint::spin_loop();
        }
    };
    let writer = {
        let (space, started, finished) = (space.clone(), started.clone(), finished.clone());
        thread::spawn(move || {
            // A vCPU's accessor: no fence between a store and the next (as on a real CPU).
            let mut vcpu = space.accessor();
            for round in 0..rounds {
                wait_for(&started, round);
                for slot in (0..SLOTS).step_by(2) {
                    for p in 0..PAGES {
                        for s in [slot, slot + 1] {
                            let addr = GuestAddr(p * PAGE as u64 + s * 8);
                            let r = vcpu.store(addr, round * SLOTS + s + 1, Endianness::Little, attrs);
                            assert_eq!(r, MemTxResult::OK);
                        }
                    }
                }
                finished.store(round + 1, Ordering::Release);
            }
        })
    };
    let mut copies = vec![0u8; PAGES as usize * PAGE];
    let pass = |copies: &mut [u8]| {
        let pages = mem
            .dirty()
            .take(ram, 0, PAGES * PAGE as u64, DirtyClient::Migration)
            .unwrap();
        for off in pages {
            let page = &mut copies[off as usize..off as usize + COPY];
            assert_eq!(space.read(GuestAddr(off), page, attrs), MemTxResult::OK);
        }
    };
    let mut lost = 0usize;
    let mut ram_now = vec![0u8; copies.len()];
    for round in 0..rounds {
        started.store(round + 1, Ordering::Release);
        while finished.load(Ordering::Acquire) <= round {
            pass(&mut copies);
        }
        pass(&mut copies); // the writer is done: the last pass
        for p in 0..PAGES as usize {
            let at = p * PAGE;
            let r = space.read(GuestAddr(at as u64), &mut ram_now[at..at + COPY], attrs);
            assert_eq!(r, MemTxResult::OK);
        }
        lost += copies.chunks(8).zip(ram_now.chunks(8)).filter(|(c, r)| c != r).count();
    }
    writer.join().unwrap();
    assert_eq!(lost, 0, "{lost} completed writes were neither copied nor left marked");
}
