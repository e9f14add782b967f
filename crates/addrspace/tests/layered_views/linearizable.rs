//! 3. Concurrent correctness: a RAM region moving under layered readers.

use super::*;

// 3. Concurrent correctness: a RAM region moving under layered readers.

/// The mover visits `P[k] = BASE + k * SLOT`, k = 0..4, in turn (layout n: at `P[n % 4]`).
pub(crate) const BASE: u64 = 0x100_0000;
pub(crate) const SLOT: u64 = 0x2000;
pub(crate) const PLACES: u64 = 4;
/// A floor under places 0..3 (priority -1); place 3 is a hole when the mover is elsewhere.
pub(crate) const FLOOR_SIZE: u64 = 3 * SLOT;
/// Each CPU's private RAM over the middle of place 1 (and the floor).
pub(crate) const TCM: u64 = BASE + 0x3000;
pub(crate) const TCM_SIZE: u64 = 0x800;
/// The span the readers look at.
pub(crate) const LO: u64 = BASE - 0x100;
pub(crate) const HI: u64 = BASE + PLACES * SLOT + 0x100;
pub(crate) const MOVER_TAG: u8 = 0x4d;
pub(crate) const FLOOR_TAG: u8 = 0xf1;
pub(crate) const FAR_DEV: u64 = 0x5000_0000;

pub(crate) fn tcm_tag(cpu: u32) -> u8 {
    0x70 + cpu as u8
}

/// The byte at `addr` in layout `k` (mover at place `k`) for a reader with private RAM
/// tagged `tcm`; `None` where nothing is mapped.
pub(crate) fn expected_byte(addr: u64, k: u64, tcm: Option<u8>) -> Option<u8> {
    let at = BASE + k * SLOT;
    let (tag, off) = match tcm {
        Some(t) if (TCM..TCM + TCM_SIZE).contains(&addr) => (t, addr - TCM),
        _ if (at..at + SLOT).contains(&addr) => (MOVER_TAG, addr - at),
        _ if (BASE..BASE + FLOOR_SIZE).contains(&addr) => (FLOOR_TAG, addr - BASE),
        _ => return None,
    };
    Some(word(tag, off & !7).to_le_bytes()[(off & 7) as usize])
}

/// Whether `bytes` read at `addr` with result `res` is what layout `k` shows.
pub(crate) fn shows(addr: u64, bytes: &[u8], res: MemTxResult, k: u64, tcm: Option<u8>) -> bool {
    let mut hole = false;
    for (i, &b) in bytes.iter().enumerate() {
        match expected_byte(addr + i as u64, k, tcm) {
            Some(x) if x == b => {}
            Some(_) => return false,
            None if b == 0 => hole = true,
            None => return false,
        }
    }
    res == if hole {
        MemTxResult::DECODE_ERROR
    } else {
        MemTxResult::OK
    }
}

pub(crate) fn cpu_space(cluster: &Cluster, slot: usize) -> AddressSpace {
    cluster.cpu(slot).unwrap().address_space(0).unwrap().clone()
}

/// A per-CPU root over system at priority -1 with a private NVIC and a private RAM (TCM)
/// over place 1.
pub(crate) fn tcm_profile(system: RegionId) -> PerCpuBuilder {
    Arc::new(move |m: &Memory, cpu: u32| {
        let root = m.container(&format!("cpu-container-{cpu}"), SIZE_2_64)?;
        let sa = m.alias(&format!("cpu-sysmem-{cpu}"), system, 0, SIZE_2_64)?;
        let nvic = m.io(&format!("nvic-{cpu}"), 0x1000, Arc::new(Tagged(nvic_value(cpu))))?;
        let tcm = m.ram(&format!("tcm-{cpu}"), TCM_SIZE.into())?;
        fill_words(m, tcm, tcm_tag(cpu));
        m.add_subregion_overlap(root, 0, sa, -1)?;
        m.add_subregion(root, NVIC, nvic)?;
        m.add_subregion(root, TCM, tcm)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, sa, nvic, tcm],
        })
    })
}

/// A writer moves a RAM region around four places in system memory (and toggles a far
/// device, so that layered views are also moved onto new system views without a rebuild)
/// while readers read through per-CPU layered accessors (and one through system's).
///
/// Racing: every access — scalar loads and reads across several ranges — must be explained
/// by a single layout `m` with `p0 <= m <= p1 + 1`, where `p0`/`p1` are the number of moves
/// whose commit had returned before the access began/after it ended: never torn across two
/// layouts, never garbage, never a layout older than one already committed.
/// Stop the world (every 6 moves): every reader sees exactly the last layout, its view
/// equals a fresh render and is layered over system's current view.
#[test]
pub(crate) fn moving_ram_under_layered_readers_is_linearizable() {
    let t0 = Instant::now();
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", 0x1_0000).unwrap();
    fill_words(&mem, ram, RAM_TAG);
    let floor = mem.ram("floor", FLOOR_SIZE.into()).unwrap();
    fill_words(&mem, floor, FLOOR_TAG);
    let mover = mem.ram("mover", SLOT.into()).unwrap();
    fill_words(&mem, mover, MOVER_TAG);
    let far = mem.io("far", 0x1000, Arc::new(Tagged(dev_value(0)))).unwrap();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        mem.add_subregion_overlap(system, BASE, floor, -1).unwrap();
        mem.add_subregion(system, BASE, mover).unwrap();
        mem.add_subregion(system, FAR_DEV, far).unwrap();
    }
    let memory = mem.address_space("memory", system).unwrap();
    let model = CpuModel {
        spaces: vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::PerCpu(tcm_profile(system)),
        }],
        tlb: true,
    };
    let mut cluster = Cluster::new("cpus", &mem, model, 0, 4).unwrap();
    for s in 0..4 {
        cluster.plug(s).unwrap();
    }
    for cpu in cluster.cpus() {
        let v = cpu.address_space(0).unwrap().view();
        assert!(Arc::ptr_eq(v.base().expect("layered"), &memory.view()));
    }

    let phases: u64 = if cfg!(debug_assertions) { 250 } else { 2_000 };
    const MOVES: u64 = 6;
    // Readers: CPUs 0 and 1 (layered), and system.
    // Readers: CPUs 0 and 1 through accessors, CPU 2 through a software TLB (flushed by its
    // listener's commit), all layered; and system through an accessor.
    let tlb_of = |s: usize| cluster.cpu(s).unwrap().tlb_listener(0).unwrap().clone();
    let spaces: Vec<(AddressSpace, Option<u8>, Option<Arc<TlbListener>>)> = vec![
        (cpu_space(&cluster, 0), Some(tcm_tag(0)), None),
        (cpu_space(&cluster, 1), Some(tcm_tag(1)), None),
        (cpu_space(&cluster, 2), Some(tcm_tag(2)), Some(tlb_of(2))),
        (memory.clone(), None, None),
    ];
    let barrier = Arc::new(Barrier::new(spaces.len() + 1));
    let published = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let readers: Vec<_> = spaces
        .into_iter()
        .enumerate()
        .map(|(t, (space, tcm, tlb))| {
            let (barrier, published, done, abort, failure) = (
                barrier.clone(),
                published.clone(),
                done.clone(),
                abort.clone(),
                failure.clone(),
            );
            let (mem, memory) = (mem.clone(), memory.clone());
            thread::spawn(move || {
                let mut acc = space.accessor();
                let mut tlb = tlb.map(|l| SoftTlb::new(&space, l));
                let mut rng = Rng(0x5eed + t as u64);
                let (a, le) = (MemTxAttrs::default(), Endianness::Little);
                let (mut racing, mut exact) = (0u64, 0u64);
                let mut buf = vec![0u8; (HI - LO) as usize];
                let guarded = |f: &mut dyn FnMut()| {
                    if abort.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(e) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        failure.lock().unwrap().get_or_insert(format!("reader {t}: {msg}"));
                        abort.store(true, Ordering::SeqCst);
                    }
                };
                for _ in 0..phases {
                    barrier.wait();
                    guarded(&mut || {
                        let mut spins = 0u64;
                        while !done.load(Ordering::Acquire) || spins < 4 {
                            spins += 1;
                            for _ in 0..8 {
                                // The TLB reader only loads (what a TLB caches).
                                let kind = rng.below(if tlb.is_some() { 9 } else { 16 });
                                let p0 = published.load(Ordering::SeqCst);
                                let (addr, len, res) = match kind {
                                    0..=5 => {
                                        let addr = GuestAddr((LO + rng.below(HI - LO - 8)) & !7);
                                        let (v, r) = match &mut tlb {
                                            Some(tlb) => tlb.load::<u64>(addr, le, a),
                                            None => acc.load::<u64>(addr, le, a),
                                        };
                                        buf[..8].copy_from_slice(&v.to_le_bytes());
                                        (addr.0, 8, r)
                                    }
                                    6..=8 => {
                                        let addr = GuestAddr(((LO + rng.below(HI - LO - 8)) & !7) + 4);
                                        let (v, r) = match &mut tlb {
                                            Some(tlb) => tlb.load::<u32>(addr, le, a),
                                            None => acc.load::<u32>(addr, le, a),
                                        };
                                        buf[..4].copy_from_slice(&v.to_le_bytes());
                                        (addr.0, 4, r)
                                    }
                                    9..=14 => {
                                        // Across a place boundary (or the TCM's edges).
                                        let edges = [
                                            BASE,
                                            BASE + SLOT,
                                            BASE + 2 * SLOT,
                                            BASE + 3 * SLOT,
                                            HI - 0x100,
                                            TCM,
                                            TCM + TCM_SIZE,
                                        ];
                                        let e = edges[rng.index(edges.len())];
                                        let len = 1 + rng.index(96);
                                        let addr = e - rng.below(len as u64);
                                        let r = acc.read(GuestAddr(addr), &mut buf[..len], a);
                                        (addr, len, r)
                                    }
                                    _ => {
                                        let r = acc.read(GuestAddr(LO), &mut buf, a);
                                        (LO, buf.len(), r)
                                    }
                                };
                                let p1 = published.load(Ordering::SeqCst);
                                let ok = (p0..=(p1 + 1).min(p0 + PLACES))
                                    .any(|m| shows(addr, &buf[..len], res, m % PLACES, tcm));
                                if !ok {
                                    let seen: Vec<u64> =
                                        (0..PLACES).filter(|&k| shows(addr, &buf[..len], res, k, tcm)).collect();
                                    panic!(
                                        "access of {len} bytes at {addr:#x} ({res:?}) while layouts {p0}..={} \
                                         were possible is explained by layouts {seen:?} (mod 4): {:02x?}",
                                        p1 + 1,
                                        &buf[..len.min(32)]
                                    );
                                }
                                racing += 1;
                            }
                            thread::yield_now();
                        }
                    });
                    barrier.wait();
                    // Stop the world: exactly the last layout.
                    guarded(&mut || {
                        let k = published.load(Ordering::SeqCst) % PLACES;
                        if let Some(tlb) = &mut tlb {
                            for addr in (LO..HI).step_by(8) {
                                let (v, r) = tlb.load::<u64>(GuestAddr(addr), le, a);
                                let ok = shows(addr, &v.to_le_bytes(), r, k, tcm);
                                assert!(
                                    ok,
                                    "TLB stale at {addr:#x} after the commit of layout {k}: {v:#x} {r:?}"
                                );
                            }
                        }
                        let r = acc.read(GuestAddr(LO), &mut buf, a);
                        assert!(shows(LO, &buf, r, k, tcm), "stale after the commit of layout {k}");
                        let v = acc.view().clone();
                        let fresh = mem.render(space.root()).unwrap();
                        assert_same_ranges(&v, &fresh, &|| format!("reader {t}"));
                        if tcm.is_some() {
                            let base = v.base().expect("per-CPU views are layered");
                            assert!(Arc::ptr_eq(base, &memory.view()), "layered over system's current view");
                        }
                        exact += 1;
                    });
                    barrier.wait();
                    if abort.load(Ordering::SeqCst) {
                        break;
                    }
                }
                (racing, exact, tlb.map(|t| t.stats()))
            })
        })
        .collect();

    let mut rng = Rng(99);
    let mut n = 0u64;
    let mut far_on = true;
    for _ in 0..phases {
        done.store(false, Ordering::Release);
        barrier.wait();
        for _ in 0..MOVES {
            n += 1;
            let to = BASE + (n % PLACES) * SLOT;
            match rng.below(4) {
                0 => {
                    // The move and a far change in one commit.
                    let _tx = mem.transaction();
                    far_on = !far_on;
                    mem.set_enabled(far, far_on).unwrap();
                    mem.set_address(mover, to).unwrap();
                }
                1 => {
                    mem.set_address(mover, to).unwrap();
                    // A change far from every window: layered views move onto the new view.
                    far_on = !far_on;
                    mem.set_enabled(far, far_on).unwrap();
                }
                _ => mem.set_address(mover, to).unwrap(),
            }
            published.store(n, Ordering::SeqCst);
        }
        done.store(true, Ordering::Release);
        barrier.wait();
        barrier.wait();
        if abort.load(Ordering::SeqCst) {
            break;
        }
    }
    let results: Vec<(u64, u64, Option<TlbStats>)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    if let Some(f) = failure.lock().unwrap().take() {
        panic!("{f}");
    }
    eprintln!(
        "linearizability: {phases} phases x {MOVES} moves in {:?}; (racing, exact, TLB stats) per reader: {results:?}",
        t0.elapsed()
    );
    for (racing, exact, _) in &results {
        assert_eq!(*exact, phases);
        assert!(*racing >= phases * 8);
    }
    drop(cluster);
}
