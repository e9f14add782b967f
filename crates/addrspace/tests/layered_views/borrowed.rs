//! 6. The view a layered view borrows from comes and goes.

use super::*;

// 6. The view a layered view borrows from comes and goes.

/// M-profile CPUs realized before any space shows system memory (nothing to borrow: each CPU
/// renders a copy), then the board's `memory` space created and destroyed at random while
/// system devices move, CPUs are re-plugged, private devices toggle and the commit mode flips
/// between scoped and QEMU's full rebuild. After every step each CPU's view equals a fresh
/// render; every layered CPU view borrows the same system view — `memory`'s current one when
/// it exists (with scoped commits) — and the live flat views are exactly the published views,
/// the views they borrow from and the empty view.
#[test]
pub(crate) fn cpu_views_follow_the_borrowed_view_through_its_space_lifetime() {
    let t0 = Instant::now();
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", RAM_SIZE.into()).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    let mut devs = Vec::new();
    for i in 0..8 {
        let d = mem
            .io(&format!("dev{i}"), dev_size(i), Arc::new(Tagged(dev_value(i))))
            .unwrap();
        mem.add_subregion(system, dev_home(i), d).unwrap();
        devs.push(d);
    }
    const N: usize = 4;
    let reg: Registry = Arc::new(Mutex::new(vec![None; N]));
    let mut cluster = Cluster::new("cpus", &mem, m_model(system, reg.clone()), 0, N).unwrap();
    for s in 0..N {
        cluster.plug(s).unwrap();
    }
    for cpu in cluster.cpus() {
        let space = cpu.address_space(0).unwrap();
        assert_same_ranges(&space.view(), &mem.render(space.root()).unwrap(), &|| {
            "no system space".into()
        });
    }
    let mut memory: Option<AddressSpace> = None;
    let mut full = false;
    // `memory` re-created since the last change of system: CPU views may still borrow the
    // view of the space destroyed before (see the ignored
    // `recreating_the_system_space_keeps_no_old_system_views`); the next change of system
    // moves them all onto the current view.
    let mut recreated = false;
    let mut tolerated = 0u64;
    let mut rng = Rng(0xb0a7);
    let steps = 1_500;
    let (mut layered, mut checks) = (0u64, 0u64);
    for i in 0..steps {
        let what = rng.below(10);
        match what {
            0 | 1 => {
                memory = match memory.take() {
                    Some(_) => None,
                    None => {
                        recreated = true;
                        Some(mem.address_space("memory", system).unwrap())
                    }
                }
            }
            2 => {
                full = !full;
                mem.set_commit_mode(if full { CommitMode::Full } else { CommitMode::Scoped });
            }
            3..=5 => {
                let d = devs[rng.index(devs.len())];
                let addr = if rng.below(2) == 0 {
                    SPOTS[rng.index(SPOTS.len())]
                } else {
                    DEV_BASE + rng.below(32) * 0x1000
                };
                if mem.region_info(d).unwrap().addr != addr {
                    recreated = false;
                }
                mem.set_address(d, addr).unwrap();
            }
            6 | 7 => {
                let s = rng.index(N);
                if cluster.cpu(s).is_some() {
                    let p = reg.lock().unwrap()[s].unwrap();
                    let r = if rng.below(2) == 0 { p.nvic } else { p.systick };
                    let on = mem.region_info(r).unwrap().enabled;
                    mem.set_enabled(r, !on).unwrap();
                }
            }
            _ => {
                let s = rng.index(N);
                if cluster.cpu(s).is_some() {
                    cluster.unplug(s).unwrap();
                }
                cluster.plug(s).unwrap();
            }
        }
        let at = format!("step {i} (kind {what}, full {full}, memory {})", memory.is_some());
        let sys = memory.as_ref().map(|m| m.view());
        if let Some(sys) = &sys {
            assert_same_ranges(sys, &mem.render(system).unwrap(), &|| format!("{at}: system"));
        }
        let mut live: Vec<*const FlatView> = sys.iter().map(Arc::as_ptr).collect();
        let mut bases: Vec<Arc<FlatView>> = Vec::new();
        for cpu in cluster.cpus() {
            let s = cpu.index();
            let space = cpu.address_space(0).unwrap();
            let v = space.view();
            assert!(Arc::ptr_eq(&v, &cpu.address_space(1).unwrap().view()), "{at}: CPU {s}");
            let fresh = mem.render(space.root()).unwrap();
            assert_same_ranges(&v, &fresh, &|| format!("{at}: CPU {s}"));
            for a in [NVIC, SYSTICK, SYSTICK_ALT + 4, NVIC - 1, 0x1000, DEV_BASE] {
                let want = fresh.lookup(GuestAddr(a)).map(|(r, o)| (r.clone(), o));
                assert_eq!(space.lookup(GuestAddr(a)), want, "{at}: CPU {s} lookup {a:#x}");
            }
            if let Some(b) = v.base() {
                assert!(b.base().is_none(), "{at}: CPU {s} borrows from a layered view");
                if let (Some(sys), false) = (&sys, full) {
                    if recreated && !Arc::ptr_eq(b, sys) {
                        tolerated += 1;
                    } else {
                        assert!(Arc::ptr_eq(b, sys), "{at}: CPU {s} borrows from an old system view");
                    }
                }
                live.push(Arc::as_ptr(b));
                bases.push(b.clone());
                layered += 1;
            }
            checks += 1;
            live.push(Arc::as_ptr(&v));
        }
        bases.sort_by_key(Arc::as_ptr);
        bases.dedup_by(|a, b| Arc::ptr_eq(a, b));
        assert!(
            bases.len() <= 1 || recreated,
            "{at}: CPU views borrow from {} system views",
            bases.len()
        );
        live.sort_unstable();
        live.dedup();
        let needed = live.len() + 1;
        drop((sys, bases));
        assert_eq!(
            mem.stats().flatviews,
            needed,
            "{at}: live flat views beyond the published ones"
        );
    }
    eprintln!(
        "borrowed view lifetime: {steps} steps, {checks} CPU checks ({layered} layered, {tolerated} over \
         the view of a destroyed space) in {:?}",
        t0.elapsed()
    );
    assert!(layered > 0);
}

/// Regression (retention): layered CPU views kept borrowing the view of a destroyed space
/// over system after a new space over system was created (its view rendered anew), each CPU
/// view moving onto the new one only when rebuilt — up to one copy of the system view per
/// CPU alive. Creating a view now offers it at once to the views that can borrow it.
#[test]
pub(crate) fn recreating_the_system_space_keeps_no_old_system_views() {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", 0x10_0000).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    let dev = mem.io("dev", 0x1000, Arc::new(Tagged(1))).unwrap();
    mem.add_subregion(system, 0x4000_0000, dev).unwrap();
    let memory = mem.address_space("memory", system).unwrap();
    let mut cpus = Vec::new();
    let mut nvics = Vec::new();
    for i in 0..4u32 {
        let root = mem.container("armv7m-container", SIZE_2_64).unwrap();
        let sa = mem.alias(&format!("system-{i}"), system, 0, SIZE_2_64).unwrap();
        let nvic = mem
            .io(&format!("nvic-{i}"), 0x1000, Arc::new(Tagged(nvic_value(i))))
            .unwrap();
        mem.add_subregion_overlap(root, 0, sa, -1).unwrap();
        mem.add_subregion(root, NVIC, nvic).unwrap();
        cpus.push(mem.address_space(&format!("cpu-memory-{i}"), root).unwrap());
        nvics.push(nvic);
    }
    // The empty view, system's and one per CPU.
    assert_eq!(mem.stats().flatviews, 6);
    drop(memory);
    for (round, &nvic) in nvics.iter().enumerate() {
        let memory = mem.address_space("memory", system).unwrap();
        // Rebuild one CPU's view: it moves onto the new system view, the others do not.
        mem.set_enabled(nvic, false).unwrap();
        mem.set_enabled(nvic, true).unwrap();
        let sys = memory.view();
        let stale = cpus
            .iter()
            .filter(|c| !Arc::ptr_eq(c.view().base().unwrap(), &sys))
            .count();
        drop(sys);
        let live = mem.stats().flatviews;
        eprintln!("round {round}: {stale} CPU views over an old system view; {live} live views (6 needed)");
        assert_eq!(
            stale, 0,
            "round {round}: CPU views borrow the view of a destroyed space"
        );
        assert_eq!(live, 6, "round {round}: old system views kept alive by CPU views");
        drop(memory);
    }
}
