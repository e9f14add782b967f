//! Part 2: topology changes under reader threads running their TLBs.

use super::*;

/// Builds a transparent per-CPU wrapper: a container holding an alias of system.
pub(crate) fn wrapper(system: RegionId) -> PerCpuBuilder {
    Arc::new(move |mem: &Memory, i: u32| {
        let root = mem.container(&format!("wrap-{i}"), SIZE_2_64)?;
        let alias = mem.alias(&format!("wrap-sys-{i}"), system, 0, SIZE_2_64)?;
        mem.add_subregion(root, 0, alias)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, alias],
        })
    })
}

/// Loads that do not depend on what other readers store (everything but SCRATCH and UART).
pub(crate) const SHARED_PLACES: &[(u64, u64)] = &[
    (RAM, RAM_SIZE),
    (OVERLAY, 0x1000),
    (ROM, 0x1_0000),
    (BEDEV, 0x1000),
    (FLASH, 0x2000),
    (WIN, WIN_SIZE),
    (ODD[0], 0x3000),
    (ODD[1], 0x3000),
    (TINY, 0x100),
    (VRAM, 0x2000),
    (RO, 0x2000),
    (LOGGED, 0x2000),
    (MOVER[0], 0x1000),
    (MOVER[1], 0x1000),
    (TOGGLER, 0x2000),
    (TOP, 0x1000),
    (HOLE, 0x3000),
];

/// What the readers report.
#[derive(Debug, Default)]
pub(crate) struct ReaderReport {
    pub(crate) failed: bool,
    pub(crate) stats: TlbStats,
    pub(crate) racing_loads: u64,
    pub(crate) window_checks: u64,
    pub(crate) exact_checks: u64,
}

/// Part 2: a writer changes the topology while readers run their TLBs. During a change the
/// readers check that the window (whose every mapping is recognisable) never shows a mapping
/// older than the last one published before the access began, and that everything else reads
/// as one of its possible layouts; between changes (stop the world) every access through the
/// TLB equals the direct access through the same space.
#[test]
pub(crate) fn concurrent_topology_changes_never_leave_stale_entries() {
    const READERS: usize = 2;
    let b = Arc::new(build());
    let cpus = [
        Cpu::realize(&b.mem, 0, &tlb_model(b.system)).unwrap(),
        Cpu::realize(
            &b.mem,
            1,
            &CpuModel {
                spaces: vec![CpuSpaceSpec {
                    index: 0,
                    prefix: "cpu-memory".into(),
                    view: CpuView::PerCpu(wrapper(b.system)),
                }],
                tlb: true,
            },
        )
        .unwrap(),
    ];
    let phases = ops_count(1500, 10_000);
    let barrier = Arc::new(Barrier::new(READERS + 1));
    let abort = Arc::new(AtomicBool::new(false));
    let changing_done = Arc::new(AtomicBool::new(false));
    // Window mappings published so far: mapping n shows segment n % 4.
    let published = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let readers: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(t, cpu)| {
            let space = cpu.address_space(0).unwrap().clone();
            let listener = cpu.tlb_listener(0).unwrap().clone();
            let (barrier, done, published, abort) =
                (barrier.clone(), changing_done.clone(), published.clone(), abort.clone());
            thread::spawn(move || {
                let mut tlb = SoftTlb::new(&space, listener);
                let mut rng = Rng(0x1234_5678 + t as u64);
                let mut rep = ReaderReport::default();
                let a = MemTxAttrs::default();
                let le = Endianness::Little;
                let own_scratch = SCRATCH + t as u64 * PAGE;
                let own_uart = UART + t as u64 * 0x100;
                let failed = AtomicBool::new(false);
                // A failed check must not leave the others waiting at a barrier: it is caught,
                // reported, and everybody stops at the end of the phase.
                let guarded = |f: &mut dyn FnMut()| {
                    if !abort.load(Ordering::SeqCst) && std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
                        abort.store(true, Ordering::SeqCst);
                        failed.store(true, Ordering::SeqCst);
                    }
                };
                for _ in 0..phases {
                    barrier.wait();
                    // The writer is changing the topology: racing accesses.
                    guarded(&mut || {
                        let mut spins = 0u64;
                        while !done.load(Ordering::Acquire) || spins < 4 {
                            spins += 1;
                            // The window: never older than what was published before we began.
                            let p0 = published.load(Ordering::SeqCst);
                            let off = rng.below(WIN_SIZE / 8) * 8;
                            let (v, r) = tlb.load::<u64>(GuestAddr(WIN + off), le, a);
                            let p1 = published.load(Ordering::SeqCst);
                            assert_eq!(r, MemTxResult::OK);
                            let bytes = v.to_le_bytes();
                            assert!(bytes.iter().all(|&x| x == bytes[0]), "torn window read {v:#x}");
                            let k = u64::from(bytes[0].wrapping_sub(0x10));
                            assert!(k < 4, "window shows {v:#x}");
                            if p1 + 1 - p0 < 3 {
                                assert!(
                                    (p0..=p1 + 1).any(|m| m % 4 == k),
                                    "stale window: segment {k} while mappings {p0}..={} were current",
                                    p1 + 1
                                );
                                rep.window_checks += 1;
                            }
                            // Things that move or toggle read as one of their layouts.
                            let (v, r) = tlb.load::<u32>(GuestAddr(MOVER[rng.below(2) as usize] + 0x10), le, a);
                            assert!(
                                (v, r) == (0x6d6d_6d6d, MemTxResult::OK) || (v, r) == (0, MemTxResult::DECODE_ERROR),
                                "mover: {v:#x} {r:?}"
                            );
                            let (v, r) = tlb.load::<u16>(GuestAddr(TOGGLER + 0x1ffe), le, a);
                            assert!(
                                (v, r) == (0x7e7e, MemTxResult::OK) || (v, r) == (0, MemTxResult::DECODE_ERROR),
                                "toggler: {v:#x} {r:?}"
                            );
                            let (v, r) = tlb.load::<u8>(GuestAddr(FLASH + 0x10), le, a);
                            assert!(
                                r == MemTxResult::OK && (v == FLASH_MMIO_BYTE || v == (0x10 * 7) as u8 ^ 0x5c),
                                "flash: {v:#x} {r:?}"
                            );
                            // Our own scratch page never moves: a store is seen by a load.
                            let at = own_scratch + rng.below(PAGE / 8) * 8;
                            let x = rng.next();
                            assert_eq!(tlb.store(GuestAddr(at), x, le, a), MemTxResult::OK);
                            assert_eq!(tlb.load::<u64>(GuestAddr(at), le, a), (x, MemTxResult::OK));
                            rep.racing_loads += 4;
                        }
                    });
                    barrier.wait();
                    // Stop the world: the TLB must agree with the space, access by access.
                    guarded(&mut || {
                        for _ in 0..48 {
                            let size = random_size(&mut rng);
                            let order = random_order(&mut rng);
                            let attrs = if rng.below(10) == 0 { MemTxAttrs::DEBUG } else { a };
                            match rng.below(4) {
                                0 => {
                                    // A store into our own slots, then both views of it.
                                    let at = if rng.below(2) == 0 {
                                        own_scratch + rng.below(PAGE - 8)
                                    } else {
                                        own_uart + rng.below(0xf8)
                                    };
                                    let v = rng.next();
                                    let got = match size {
                                        Size::B => tlb.store(GuestAddr(at), v as u8, order, attrs),
                                        Size::H => tlb.store(GuestAddr(at), v as u16, order, attrs),
                                        Size::W => tlb.store(GuestAddr(at), v as u32, order, attrs),
                                        Size::D => tlb.store(GuestAddr(at), v, order, attrs),
                                    };
                                    let want = match size {
                                        Size::B => space.store(GuestAddr(at), v as u8, order, attrs),
                                        Size::H => space.store(GuestAddr(at), v as u16, order, attrs),
                                        Size::W => space.store(GuestAddr(at), v as u32, order, attrs),
                                        Size::D => space.store(GuestAddr(at), v, order, attrs),
                                    };
                                    assert_eq!(got, want, "store at {at:#x}");
                                    load_any(&mut tlb, &[&space], size, at, order, attrs);
                                }
                                _ => {
                                    let at = addr_in(&mut rng, SHARED_PLACES);
                                    load_any(&mut tlb, &[&space], size, at, order, attrs);
                                }
                            }
                            rep.exact_checks += 1;
                        }
                    });
                    barrier.wait();
                    if abort.load(Ordering::SeqCst) {
                        break;
                    }
                }
                rep.stats = tlb.stats();
                rep.failed = failed.load(Ordering::SeqCst);
                rep
            })
        })
        .collect();

    let mut state = ChangeState::default();
    let mut rng = Rng(77);
    for _ in 0..phases {
        changing_done.store(false, Ordering::Release);
        barrier.wait();
        // Always move the window once (published after the commit returns), plus another
        // random change.
        state.win = (state.win + 1) % 4;
        b.mem.set_alias_offset(b.win, state.win * WIN_SIZE).unwrap();
        published.fetch_add(1, Ordering::SeqCst);
        assert_eq!(published.load(Ordering::SeqCst) % 4, state.win);
        let k = 1 + rng.below(7);
        change(&b, k, &mut state);
        changing_done.store(true, Ordering::Release);
        barrier.wait(); // readers check
        barrier.wait();
        if abort.load(Ordering::SeqCst) {
            break;
        }
    }
    let reports: Vec<ReaderReport> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let elapsed = started.elapsed();
    eprintln!("concurrent: {phases} phases in {elapsed:?}");
    for (t, r) in reports.iter().enumerate() {
        assert!(!r.failed, "reader {t} failed a check (see its panic above)");
        eprintln!(
            "reader {t}: {} racing accesses, {} window linearizability checks, {} exact checks",
            r.racing_loads, r.window_checks, r.exact_checks
        );
        print_stats(&format!("concurrent reader {t}"), r.stats);
        assert!(r.window_checks > phases / 2);
        assert_eq!(r.exact_checks, phases * 48);
        assert!(r.stats.flushes >= phases, "at least one flush per phase");
    }
    drop(cpus);
}
