//! 5. x86 SMM: per-CPU roots that share one layered view.

use super::*;

// 5. x86 SMM: per-CPU roots that share one layered view.

pub(crate) const SMRAM: u64 = 0xa_0000;
pub(crate) const SMRAM_SIZE: u64 = 0x2_0000;

/// Where a moving system device meets the SMRAM window: across and next to its edges.
pub(crate) const SMM_SPOTS: &[u64] = &[
    SMRAM - 0x1000,
    SMRAM - 0x800,
    SMRAM,
    SMRAM + 0x8000,
    SMRAM + SMRAM_SIZE - 0x1000,
    SMRAM + SMRAM_SIZE - 0x800,
    SMRAM + SMRAM_SIZE,
];

/// x86 TCG: `cpu-memory-N` over system, `cpu-smm-N` over a per-CPU root (the "percpu" model
/// of benches/hotplug.rs: alias of system at priority 0, alias of SMRAM at priority 1), whose
/// SMRAM alias is recorded in `reg`. Structurally identical SMM roots share one view, layered
/// over system's. After every step — system devices moving across the SMRAM window's edges,
/// CPU unplug + re-plug (the representative CPU included), a CPU's SMRAM window toggled — each
/// CPU's SMM view equals a fresh render and is layered over system's current view (or is
/// system's view, SMRAM off), all CPUs with SMRAM on share one view, and the live flat views
/// are exactly the published ones.
#[test]
pub(crate) fn shared_smm_views_stay_layered_over_the_current_system_view() {
    let t0 = Instant::now();
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 0x10_0000).unwrap();
    let smram = mem.ram("smram", SMRAM_SIZE.into()).unwrap();
    let mut devs = Vec::new();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        for i in 0..8 {
            let d = mem
                .io(&format!("dev{i}"), dev_size(i), Arc::new(Tagged(dev_value(i))))
                .unwrap();
            mem.add_subregion_overlap(system, dev_home(i), d, 1).unwrap();
            devs.push(d);
        }
    }
    let memory = mem.address_space("memory", system).unwrap();
    const N: usize = 8;
    let reg: Arc<Mutex<Vec<Option<RegionId>>>> = Arc::new(Mutex::new(vec![None; N]));
    let build: PerCpuBuilder = {
        let reg = reg.clone();
        Arc::new(move |m: &Memory, cpu: u32| {
            let root = m.container("memory", SIZE_2_64)?;
            let sa = m.alias(&format!("smm-system-{cpu}"), system, 0, SIZE_2_64)?;
            let ra = m.alias(&format!("smm-smram-{cpu}"), smram, 0, SMRAM_SIZE.into())?;
            m.add_subregion(root, 0, sa)?;
            m.add_subregion_overlap(root, SMRAM, ra, 1)?;
            reg.lock().unwrap()[cpu as usize] = Some(ra);
            Ok(PerCpuRoot {
                root,
                regions: vec![root, sa, ra],
            })
        })
    };
    let model = CpuModel {
        spaces: vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::Root(system),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-smm".into(),
                view: CpuView::PerCpu(build),
            },
        ],
        tlb: true,
    };
    let mut cluster = Cluster::new("cpus", &mem, model, 0, N).unwrap();
    for s in 0..N {
        cluster.plug(s).unwrap();
    }
    let mut rng = Rng(0x5177);
    let steps = 2_000;
    let mut refused = 0;
    for i in 0..steps {
        let what = rng.below(3);
        match what {
            0 => {
                let d = devs[rng.index(devs.len())];
                let addr = if rng.below(2) == 0 {
                    SMM_SPOTS[rng.index(SMM_SPOTS.len())]
                } else {
                    DEV_BASE + rng.below(32) * 0x1000
                };
                mem.set_address(d, addr).unwrap();
            }
            1 => {
                // Low slots more often: slot 0 is usually the representative.
                let s = rng.index(N).min(rng.index(N));
                if cluster.cpu(s).is_some() {
                    cluster.unplug(s).unwrap();
                }
                if rng.below(5) != 0 || (0..N).all(|s| cluster.cpu(s).is_none()) {
                    cluster.plug(s).unwrap();
                }
            }
            _ => {
                let s = rng.index(N);
                if cluster.cpu(s).is_some() {
                    let ra = reg.lock().unwrap()[s].unwrap();
                    let on = mem.region_info(ra).unwrap().enabled;
                    mem.set_enabled(ra, !on).unwrap();
                }
            }
        }
        let at = format!("step {i} (kind {what})");
        let sys = memory.view();
        let mut smm_views: Vec<Arc<FlatView>> = Vec::new();
        for cpu in cluster.cpus() {
            let s = cpu.index() as usize;
            assert!(
                Arc::ptr_eq(&cpu.address_space(0).unwrap().view(), &sys),
                "{at}: cpu-memory-{s}"
            );
            let space = cpu.address_space(1).unwrap();
            let v = space.view();
            let fresh = mem.render(space.root()).unwrap();
            assert_same_ranges(&v, &fresh, &|| format!("{at}: cpu-smm-{s}"));
            let ra = reg.lock().unwrap()[s].unwrap();
            if mem.region_info(ra).unwrap().enabled {
                match v.base() {
                    Some(base) => assert!(Arc::ptr_eq(base, &sys), "{at}: cpu-smm-{s} over an old system view"),
                    None => {
                        assert!(
                            layering_may_be_refused(&sys, &[(SMRAM, SMRAM + SMRAM_SIZE)]),
                            "{at}: cpu-smm-{s} is not layered: {v:?}\nsystem {sys:?}"
                        );
                        refused += 1;
                    }
                }
                smm_views.push(v);
            } else {
                assert!(
                    Arc::ptr_eq(&v, &sys),
                    "{at}: cpu-smm-{s} without SMRAM shows system's view"
                );
            }
            for a in [
                SMRAM - 1,
                SMRAM,
                SMRAM + 0x8004,
                SMRAM + SMRAM_SIZE - 1,
                SMRAM + SMRAM_SIZE,
            ] {
                let want = fresh.lookup(GuestAddr(a)).map(|(r, o)| (r.clone(), o));
                assert_eq!(space.lookup(GuestAddr(a)), want, "{at}: cpu-smm-{s} lookup {a:#x}");
            }
        }
        smm_views.dedup_by(|a, b| Arc::ptr_eq(a, b));
        assert!(
            smm_views.len() <= 1,
            "{at}: identical SMM roots show {} views",
            smm_views.len()
        );
        let needed = 2 + smm_views.len(); // system, the shared SMM view, the empty view
        drop((sys, smm_views));
        assert_eq!(
            mem.stats().flatviews,
            needed,
            "{at}: live flat views beyond the published ones"
        );
    }
    let s = mem.stats();
    eprintln!(
        "SMM: {steps} steps in {:?} ({refused} CPU checks found layering refused); renders {} patches {} layers {}",
        t0.elapsed(),
        s.renders,
        s.patches,
        s.layers
    );
    drop(cluster);
    assert_eq!(mem.stats().flatviews, 2, "system and the empty view");
}
