//! Every CpuView kind: root, shared, private M-profile peripherals, SMM overlays, shared per-CPU roots.

use super::*;

// CpuView kinds
// ---------------------------------------------------------------------------------------

#[test]
pub(crate) fn root_view_creates_named_spaces_per_cpu() {
    let b = board();
    let secure = b.mem.container("secure-memory", SIZE_2_64).unwrap();
    let sram = b.mem.ram("secure-sram", 0x1000).unwrap();
    b.mem.add_subregion(secure, 0x1000, sram).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-secure-memory", CpuView::Root(secure)),
        ],
        tlb: true,
    };
    let c0 = Cpu::realize(&b.mem, 0, &model).unwrap();
    let c1 = Cpu::realize(&b.mem, 1, &model).unwrap();
    assert_eq!(c1.index(), 1);
    assert_eq!(c0.address_space(0).unwrap().name(), "cpu-memory-0");
    assert_eq!(c0.address_space(1).unwrap().name(), "cpu-secure-memory-0");
    assert_eq!(c1.address_space(0).unwrap().name(), "cpu-memory-1");
    assert_eq!(c1.address_space(1).unwrap().name(), "cpu-secure-memory-1");
    assert!(c0.address_space(2).is_none());
    assert_eq!(
        format!("{c0:?}"),
        r#"Cpu { index: 0, spaces: ["cpu-memory-0", "cpu-secure-memory-0"] }"#
    );
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces + 4);
    assert_eq!(s.listeners, base.listeners + 4);
    assert_eq!(s.regions, base.regions, "Root spaces create no region");
    // CPUs over the same root share one view.
    assert!(Arc::ptr_eq(
        &c0.address_space(0).unwrap().view(),
        &c1.address_space(0).unwrap().view()
    ));
    for n in [
        "cpu-memory-0",
        "cpu-memory-1",
        "cpu-secure-memory-0",
        "cpu-secure-memory-1",
    ] {
        assert_eq!(spaces_named(&b.mem, n), 1, "{n}");
    }
    // Each index sees its own root.
    let s0 = c0.address_space(0).unwrap();
    let s1 = c0.address_space(1).unwrap();
    assert_eq!(
        s0.store(GuestAddr(0x1000), 0x1234_5678u32, LE, attrs()),
        MemTxResult::OK
    );
    assert_eq!(
        ld32(c1.address_space(0).unwrap(), 0x1000),
        (0x1234_5678, MemTxResult::OK)
    );
    assert_eq!(ld32(s1, 0x1000), (0, MemTxResult::OK), "secure SRAM, not pc.ram");
    assert_eq!(ld32(s1, 0x3000).1, MemTxResult::DECODE_ERROR);

    drop(c0);
    assert_eq!(spaces_named(&b.mem, "cpu-memory-0"), 0);
    assert_eq!(spaces_named(&b.mem, "cpu-memory-1"), 1);
    c1.unrealize();
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
    assert_eq!(b.mem.stats().listeners, base.listeners);
    assert_eq!(b.mem.stats().regions, base.regions);
}

#[test]
pub(crate) fn shared_view_allocates_no_space_per_cpu() {
    let b = board();
    let cluster_mem = b.mem.address_space("cluster-memory", b.system).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![spec(0, "unused-prefix", CpuView::Shared(cluster_mem.clone()))],
        tlb: true,
    };
    assert_eq!(format!("{:?}", model.spaces[0].view), "Shared(cluster-memory)");
    let mut cl = Cluster::new("cluster0", &b.mem, model, 0, 4).unwrap();
    for slot in 0..4 {
        let cpu = cl.plug(slot).unwrap();
        assert_eq!(cpu.address_space(0).unwrap().name(), "cluster-memory");
        assert!(Arc::ptr_eq(&cpu.address_space(0).unwrap().view(), &cluster_mem.view()));
    }
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces, "plugging created no space");
    assert_eq!(s.regions, base.regions);
    assert_eq!(
        s.listeners,
        base.listeners + 4,
        "one TLB listener per CPU on the shared space"
    );
    assert_eq!(spaces_named(&b.mem, "cluster-memory"), 1);
    assert_eq!(spaces_named(&b.mem, "unused-prefix-0"), 0);
    assert_eq!(cl.cpus().count(), 4);

    // A change flushes every CPU's TLB once (each CPU has its own listener).
    let before: Vec<u64> = cl.cpus().map(|c| c.tlb_listener(0).unwrap().flush_requests()).collect();
    let extra = b.mem.ram("extra", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0x4000_0000, extra).unwrap();
    let after: Vec<u64> = cl.cpus().map(|c| c.tlb_listener(0).unwrap().flush_requests()).collect();
    assert!(
        before.iter().zip(&after).all(|(b, a)| a - b == 1),
        "{before:?} -> {after:?}"
    );

    for slot in 0..4 {
        cl.unplug(slot).unwrap();
    }
    let s = b.mem.stats();
    assert_eq!(
        s.address_spaces, base.address_spaces,
        "the shared space outlives the cluster's CPUs"
    );
    assert_eq!(s.listeners, base.listeners);
    assert_eq!(
        ld32(&cluster_mem, 0x10).1,
        MemTxResult::OK,
        "the board's space still works"
    );
}

#[test]
pub(crate) fn m_profile_private_peripherals_are_private() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let sysmem = b.mem.address_space("memory", b.system).unwrap();
    let model = CpuModel {
        spaces: vec![spec(
            0,
            "cpu-memory",
            CpuView::PerCpu(m_profile(b.system, created.clone())),
        )],
        tlb: true,
    };
    assert_eq!(format!("{:?}", model.spaces[0].view), "PerCpu");
    let c0 = Cpu::realize(&b.mem, 0, &model).unwrap();
    let c1 = Cpu::realize(&b.mem, 1, &model).unwrap();
    let (s0, s1) = (c0.address_space(0).unwrap(), c1.address_space(0).unwrap());
    assert_eq!((s0.name(), s1.name()), ("cpu-memory-0", "cpu-memory-1"));
    assert_eq!(b.mem.stats().regions, base.regions + 8, "4 regions per CPU");

    // Each CPU sees its own NVIC over the system `ppb`; system sees only `ppb`.
    assert_eq!(ld32(s0, NVIC), (0x1000, MemTxResult::OK));
    assert_eq!(ld32(s1, NVIC), (0x1001, MemTxResult::OK));
    assert_eq!(ld32(&sysmem, NVIC), (0xdead, MemTxResult::OK));
    assert_eq!(
        ld32(s0, 0xe000_0000),
        (0xdead, MemTxResult::OK),
        "the rest of ppb is shared"
    );
    // Private scratch registers.
    assert_eq!(s0.store(GuestAddr(NVIC + 4), 77u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(s0, NVIC + 4), (77, MemTxResult::OK));
    assert_eq!(ld32(s1, NVIC + 4), (0, MemTxResult::OK));
    assert_eq!(ld32(&sysmem, NVIC + 4), (0, MemTxResult::OK));
    // Private TCM; system RAM shared through the alias.
    assert_eq!(ld32(s0, TCM), (0x0101_0101, MemTxResult::OK));
    assert_eq!(ld32(s1, TCM), (0x0202_0202, MemTxResult::OK));
    assert_eq!(ld32(&sysmem, TCM).1, MemTxResult::DECODE_ERROR);
    assert_eq!(sysmem.store(GuestAddr(0x80), 0xabcdu32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(s0, 0x80), (0xabcd, MemTxResult::OK));
    assert_eq!(ld32(s1, 0x80), (0xabcd, MemTxResult::OK));

    // `info mtree -f`: nvic-0 is only in cpu-memory-0's view.
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    for v in &dump.views {
        let names: Vec<&str> = v.address_spaces.iter().map(|a| a.name.as_str()).collect();
        let has = |r: &str| v.ranges.iter().any(|x| x.name == r);
        assert_eq!(has("nvic-0"), names == ["cpu-memory-0"], "{names:?}");
        assert_eq!(has("nvic-1"), names == ["cpu-memory-1"], "{names:?}");
    }

    drop(c0);
    assert_eq!(b.mem.stats().regions, base.regions + 4);
    assert_eq!(ld32(s1, NVIC), (0x1001, MemTxResult::OK), "the other CPU is untouched");
    drop(c1);
    let s = b.mem.stats();
    assert_eq!(s.regions, base.regions);
    assert_eq!(s.address_spaces, base.address_spaces + 1);
    assert_eq!(s.listeners, base.listeners);
    assert!(
        created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()),
        "every private NVIC was freed"
    );
}

#[test]
pub(crate) fn smm_like_per_cpu_root_overlays_smram() {
    let b = board();
    let smram = b.mem.ram("smram", 0x20000).unwrap();
    let sysmem = b.mem.address_space("memory", b.system).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-smm", CpuView::PerCpu(smm(b.system, smram))),
        ],
        tlb: true,
    };
    let cpus: Vec<Cpu> = (0..3).map(|i| Cpu::realize(&b.mem, i, &model).unwrap()).collect();
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces + 6);
    assert_eq!(s.regions, base.regions + 9);
    assert_eq!(s.listeners, base.listeners + 6);
    assert_eq!(spaces_named(&b.mem, "cpu-smm-2"), 1);

    // The normal space writes pc.ram at 0xa0000, the SMM space writes SMRAM there.
    let normal = cpus[0].address_space(0).unwrap();
    let smm0 = cpus[0].address_space(1).unwrap();
    assert_eq!(normal.store(GuestAddr(SMRAM), 0x1111u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(smm0.store(GuestAddr(SMRAM), 0x2222u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(&sysmem, SMRAM), (0x1111, MemTxResult::OK));
    for c in &cpus {
        assert_eq!(ld32(c.address_space(1).unwrap(), SMRAM), (0x2222, MemTxResult::OK));
        assert_eq!(ld32(c.address_space(0).unwrap(), SMRAM), (0x1111, MemTxResult::OK));
    }
    // Outside SMRAM the SMM space is the system view.
    assert_eq!(normal.store(GuestAddr(0x10), 0x3333u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(smm0, 0x10), (0x3333, MemTxResult::OK));
    assert_eq!(
        ld32(smm0, SMRAM + 0x20000),
        (0, MemTxResult::OK),
        "pc.ram again past SMRAM"
    );
    // Structurally identical SMM roots share one view (spec §12.6), and it is current.
    let v: Vec<_> = cpus.iter().map(|c| c.address_space(1).unwrap().view()).collect();
    assert!(v.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])), "SMM views are shared");
    // ... but `info mtree -f` prints one view per physical root, as QEMU does.
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    for i in 0..3 {
        let name = format!("cpu-smm-{i}");
        let view = dump
            .views
            .iter()
            .find(|v| v.address_spaces.iter().any(|a| a.name == name))
            .unwrap();
        assert_eq!(view.address_spaces.len(), 1);
        assert_eq!(view.root.as_deref(), Some(format!("smm-container-{i}").as_str()));
        assert!(view.ranges.iter().any(|r| r.name == "smram" && r.start == SMRAM));
    }

    // Unplug the representative (the first SMM CPU) while the others stay: their shared view
    // must survive and follow later changes.
    let mut cpus = cpus;
    drop(cpus.remove(0));
    let extra = b.mem.ram("extra", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0x10_0000, extra).unwrap();
    for c in &cpus {
        let smm = c.address_space(1).unwrap();
        assert_eq!(ld32(smm, SMRAM), (0x2222, MemTxResult::OK));
        assert_eq!(smm.store(GuestAddr(0x10_0000), 5u32, LE, attrs()), MemTxResult::OK);
        assert_eq!(ld32(smm, 0x10_0000), (5, MemTxResult::OK), "a later change is visible");
    }
    assert_eq!(ld32(&sysmem, 0x10_0000), (5, MemTxResult::OK));
    drop(cpus);
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces);
    assert_eq!(s.regions, base.regions + 1, "only `extra` is new");
    assert_eq!(s.listeners, base.listeners);
}

#[test]
pub(crate) fn same_root_as_shares_a_per_cpu_root_between_two_indices() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created.clone()))),
            spec(1, "cpu-secure-memory", CpuView::SameRootAs(0)),
        ],
        tlb: true,
    };
    assert_eq!(format!("{:?}", model.spaces[1].view), "SameRootAs(0)");
    let cpu = Cpu::realize(&b.mem, 2, &model).unwrap();
    let (ns, s) = (cpu.address_space(0).unwrap(), cpu.address_space(1).unwrap());
    assert_eq!((ns.name(), s.name()), ("cpu-memory-2", "cpu-secure-memory-2"));
    assert_eq!(ns.root(), s.root());
    assert!(Arc::ptr_eq(&ns.view(), &s.view()));
    assert_eq!(ld32(s, NVIC), (0x1002, MemTxResult::OK));
    assert_eq!(
        b.mem.stats().regions,
        base.regions + 4,
        "one per-CPU root for both spaces"
    );
    drop(cpu);
    let st = b.mem.stats();
    assert_eq!(
        (st.regions, st.address_spaces, st.listeners),
        (base.regions, base.address_spaces, base.listeners)
    );
    // Naming a later (or missing) index is a typed error, and leaves nothing behind.
    let bad = CpuModel {
        spaces: vec![
            spec(0, "cpu-secure-memory", CpuView::SameRootAs(1)),
            spec(1, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created.clone()))),
        ],
        tlb: true,
    };
    let e = Cpu::realize(&b.mem, 0, &bad).unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongKind {
                kind: "cpu address space",
                ..
            }
        ),
        "{e}"
    );
    let st = b.mem.stats();
    assert_eq!(
        (st.regions, st.address_spaces, st.listeners),
        (base.regions, base.address_spaces, base.listeners)
    );
    assert!(created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()));
}

#[test]
pub(crate) fn realize_failure_deletes_what_it_built() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created.clone()))),
            spec(0, "cpu-other", CpuView::Root(b.system)),
        ],
        tlb: true,
    };
    let err = Cpu::realize(&b.mem, 0, &model).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKind {
                kind: "cpu address space",
                ..
            }
        ),
        "{err}"
    );
    // A builder that fails.
    let failing: PerCpuBuilder = Arc::new(|mem: &Memory, _| Err(mem.region_info(dead(mem)).unwrap_err()));
    let model2 = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-bad", CpuView::PerCpu(failing)),
        ],
        tlb: true,
    };
    assert!(Cpu::realize(&b.mem, 0, &model2).is_err());
    let s = b.mem.stats();
    assert_eq!(
        (s.regions, s.address_spaces, s.listeners),
        (base.regions, base.address_spaces, base.listeners)
    );
    assert!(created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()));
}
