//! Clusters: plug, unplug, re-plug, slot errors, an asymmetric zcu102-like machine.

use super::*;

// Clusters
// ---------------------------------------------------------------------------------------

#[test]
pub(crate) fn cluster_plug_unplug_replug_and_slot_errors() {
    let b = board();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-secure-memory", CpuView::Root(b.system)),
        ],
        tlb: true,
    };
    let mut cl = Cluster::new("apu", &b.mem, model, 4, 2).unwrap();
    assert_eq!((cl.name(), cl.max_cpus()), ("apu", 2));
    assert_eq!(format!("{cl:?}"), r#"Cluster { name: "apu", present: 0, max: 2 }"#);
    for round in 0..5 {
        let cpu = cl.plug(1).unwrap();
        assert_eq!(cpu.index(), 5);
        assert_eq!(cpu.address_space(0).unwrap().name(), "cpu-memory-5");
        let l = cpu.tlb_listener(0).unwrap().clone();
        assert_eq!(
            l.flush_requests(),
            1,
            "a fresh listener (round {round}): only its registration replay"
        );
        assert_eq!(spaces_named(&b.mem, "cpu-memory-5"), 1, "round {round}");
        assert_eq!(spaces_named(&b.mem, "cpu-secure-memory-5"), 1, "round {round}");
        assert_eq!(b.mem.stats().address_spaces, base.address_spaces + 2);

        // Typed errors, never a panic, and nothing changes.
        let e = cl.plug(1).unwrap_err();
        assert!(is_slot_error(&e, "slot already has a CPU"), "{e}");
        assert_eq!(
            e.to_string(),
            Error::WrongKind {
                name: "apu[1]".into(),
                kind: "cpu slot",
                what: "slot already has a CPU"
            }
            .to_string()
        );
        assert!(is_slot_error(&cl.unplug(0).unwrap_err(), "slot is empty"));
        assert!(is_slot_error(&cl.plug(2).unwrap_err(), "no such slot"));
        assert!(is_slot_error(&cl.unplug(2).unwrap_err(), "slot is empty"));
        assert!(is_slot_error(&cl.plug(1 << 32).unwrap_err(), "no such slot"));
        assert_eq!(spaces_named(&b.mem, "cpu-memory-5"), 1);
        assert_eq!(cl.cpus().count(), 1);
        assert!(cl.cpu(0).is_none() && cl.cpu(1).is_some() && cl.cpu(7).is_none());

        cl.unplug(1).unwrap();
        assert_eq!(spaces_named(&b.mem, "cpu-memory-5"), 0);
        assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
        assert_eq!(b.mem.stats().listeners, base.listeners);
        let e = cl.unplug(1).unwrap_err();
        assert!(is_slot_error(&e, "slot is empty"), "{e}");
        // The unplugged CPU's listener hears nothing more.
        let extra = b.mem.ram(&format!("extra{round}"), 0x1000).unwrap();
        b.mem
            .add_subregion(b.system, 0x100_0000 + round * 0x1000, extra)
            .unwrap();
        assert_eq!(
            l.flush_requests(),
            2,
            "registration replay + teardown, nothing after unplug"
        );
    }
    cl.plug(0).unwrap();
    cl.plug(1).unwrap();
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces + 4);
    drop(cl);
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
}

/// A huge slot number on a cluster whose indices do not start at 0 is a "no such slot" error.
/// (Regression: `Cluster::plug` computed the CPU index before checking the slot and overflowed.)
#[test]
pub(crate) fn cluster_plug_huge_slot_is_an_error_not_a_panic() {
    let b = board();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(b.system))],
        tlb: false,
    };
    let mut cl = Cluster::new("rpu", &b.mem, model, 4, 2).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cl.plug(usize::MAX).map(|_| ())));
    let r = r.expect("plug panicked");
    assert!(is_slot_error(&r.unwrap_err(), "no such slot"));
}

#[test]
pub(crate) fn zcu102_like_asymmetric_clusters() {
    let b = board();
    let _memory = b.mem.address_space("memory", b.system).unwrap();
    // The R5s see TCM at 0 over system memory.
    let rpu_root = b.mem.container("rpu-memory", SIZE_2_64).unwrap();
    let rpu_sys = b.mem.alias("rpu-sysmem", b.system, 0, SIZE_2_64).unwrap();
    let tcm = b.mem.ram("tcm", 0x4_0000).unwrap();
    b.mem.add_subregion_overlap(rpu_root, 0, rpu_sys, 0).unwrap();
    b.mem.add_subregion_overlap(rpu_root, 0, tcm, 1).unwrap();
    let base = b.mem.stats();

    let apu_model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(b.system))],
        tlb: true,
    };
    let rpu_model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(rpu_root))],
        tlb: true,
    };
    let mut apu = Cluster::new("apu", &b.mem, apu_model, 0, 4).unwrap();
    let mut rpu = Cluster::new("rpu", &b.mem, rpu_model, 4, 2).unwrap();
    for s in 0..4 {
        apu.plug(s).unwrap();
    }
    for s in 0..2 {
        rpu.plug(s).unwrap();
    }
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces + 6);
    let text = mtree::print_flat(&b.mem, &FlatOptions::default());
    eprintln!("{text}");
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    let names = |root: &str| -> Vec<String> {
        let v: Vec<_> = dump.views.iter().filter(|v| v.root.as_deref() == Some(root)).collect();
        assert_eq!(v.len(), 1, "one view of {root}");
        v[0].address_spaces.iter().map(|a| a.name.clone()).collect()
    };
    assert_eq!(
        names("system"),
        ["memory", "cpu-memory-0", "cpu-memory-1", "cpu-memory-2", "cpu-memory-3"]
    );
    assert_eq!(names("rpu-memory"), ["cpu-memory-4", "cpu-memory-5"]);
    let rpu_view = dump
        .views
        .iter()
        .find(|v| v.root.as_deref() == Some("rpu-memory"))
        .unwrap();
    assert_eq!((rpu_view.ranges[0].name.as_str(), rpu_view.ranges[0].start), ("tcm", 0));
    assert!(text.contains(" AS \"cpu-memory-4\", root: rpu-memory\n"));

    // The APUs write pc.ram at 0, the RPUs write their TCM there.
    let a0 = apu.cpu(0).unwrap().address_space(0).unwrap();
    let r0 = rpu.cpu(0).unwrap().address_space(0).unwrap();
    let r1 = rpu.cpu(1).unwrap().address_space(0).unwrap();
    assert_eq!(a0.store(GuestAddr(0x100), 1u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(r0.store(GuestAddr(0x100), 2u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(
        ld32(apu.cpu(3).unwrap().address_space(0).unwrap(), 0x100),
        (1, MemTxResult::OK)
    );
    assert_eq!(ld32(r1, 0x100), (2, MemTxResult::OK));
    assert_eq!(ld32(r1, 0x4_0000), (0, MemTxResult::OK), "pc.ram past the TCM");
    assert!(Arc::ptr_eq(&r0.view(), &r1.view()));
    assert!(!Arc::ptr_eq(&r0.view(), &a0.view()));

    rpu.unplug(0).unwrap();
    apu.unplug(2).unwrap();
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    let all: Vec<&str> = dump
        .views
        .iter()
        .flat_map(|v| v.address_spaces.iter().map(|a| a.name.as_str()))
        .collect();
    assert_eq!(
        all,
        ["memory", "cpu-memory-0", "cpu-memory-1", "cpu-memory-3", "cpu-memory-5"]
    );
    drop((apu, rpu));
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
    assert_eq!(b.mem.stats().listeners, base.listeners);
}
