//! The TLB listener's flush counts.

use super::*;

// TLB listener
// ---------------------------------------------------------------------------------------

#[test]
pub(crate) fn tlb_listener_flushes_exactly_once_per_visible_commit() {
    let b = board();
    let created = Arc::new(Created::default());
    let pci = b.mem.container("pci", SIZE_2_64).unwrap();
    let _pci_space = b.mem.address_space("pci-memory", pci).unwrap();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created))),
            spec(1, "cpu-normal", CpuView::Root(b.system)),
        ],
        tlb: true,
    };
    let c0 = Cpu::realize(&b.mem, 0, &model).unwrap();
    let c1 = Cpu::realize(&b.mem, 1, &model).unwrap();
    let listeners = [
        c0.tlb_listener(0).unwrap().clone(),
        c1.tlb_listener(0).unwrap().clone(),
        c0.tlb_listener(1).unwrap().clone(),
        c1.tlb_listener(1).unwrap().clone(),
    ];
    let counts = || listeners.iter().map(|l| l.flush_requests()).collect::<Vec<_>>();
    let mut last = counts();
    let mut expect = |what: &str, delta: [u64; 4]| {
        let now = counts();
        let got: Vec<u64> = now.iter().zip(&last).map(|(n, l)| n - l).collect();
        assert_eq!(got, delta, "{what}");
        last = now;
    };
    let m = &b.mem;

    // A change in system: every space sees it, once.
    let r1 = m.ram("r1", 0x1000).unwrap();
    m.add_subregion(b.system, 0x4000_0000, r1).unwrap();
    expect("add to system", [1, 1, 1, 1]);
    // Several changes in one transaction: one flush.
    {
        let _tx = m.transaction();
        m.set_address(r1, 0x4000_1000).unwrap();
        m.set_readonly(r1, true).unwrap();
        let r2 = m.ram("r2", 0x1000).unwrap();
        m.add_subregion(b.system, 0x5000_0000, r2).unwrap();
    }
    expect("transaction", [1, 1, 1, 1]);
    // Nothing changes: no flush.
    m.set_enabled(r1, true).unwrap();
    m.set_address(r1, 0x4000_1000).unwrap();
    drop(m.transaction());
    expect("no-op", [0, 0, 0, 0]);
    // A change inside CPU 0's private container.
    let nvic0 = m
        .regions()
        .into_iter()
        .find(|&r| m.region_info(r).unwrap().name == "nvic-0")
        .unwrap();
    m.set_enabled(nvic0, false).unwrap();
    expect("CPU 0 private", [1, 0, 0, 0]);
    m.set_enabled(nvic0, true).unwrap();
    expect("CPU 0 private back", [1, 0, 0, 0]);
    // A change in an unrelated address space.
    let bar = m.ram("bar", 0x1000).unwrap();
    m.add_subregion(pci, 0x1000, bar).unwrap();
    m.set_address(bar, 0x2000).unwrap();
    expect("pci", [0, 0, 0, 0]);
    // A change of system hidden from the M-profile CPUs by their NVIC (priority 1 over the
    // priority -1 alias), but visible to system's own spaces.
    let under = m.ram("under-nvic", 0x1000).unwrap();
    m.add_subregion_overlap(b.system, NVIC, under, 5).unwrap();
    expect("hidden under the NVICs", [0, 0, 1, 1]);
    // Unplugging CPU 1 changes nothing CPU 0 sees.
    drop(c1);
    expect("unplug CPU 1", [0, 1, 0, 1]);
    let r3 = m.ram("r3", 0x1000).unwrap();
    m.add_subregion(b.system, 0x6000_0000, r3).unwrap();
    expect("after unplug", [1, 0, 1, 0]);
    drop(c0);
}

/// Structurally identical SMM roots share one view, rendered from the oldest root (the
/// representative). Unplugging the CPU that owns it is invisible to the other CPUs: no
/// render, no listener call, the same view. (Regression: every other CPU was re-rendered and
/// its TLB flushed — O(CPUs) per unplug, about 30 ms with 1024 CPUs in a debug build.)
#[test]
pub(crate) fn unplugging_the_representative_cpu_does_not_touch_the_others() {
    let b = board();
    let smram = b.mem.ram("smram", 0x20000).unwrap();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-smm", CpuView::PerCpu(smm(b.system, smram)))],
        tlb: true,
    };
    let mut cpus: Vec<Cpu> = (0..3).map(|i| Cpu::realize(&b.mem, i, &model).unwrap()).collect();
    let flushes = |cpus: &[Cpu]| -> Vec<u64> {
        cpus.iter()
            .map(|c| c.tlb_listener(0).unwrap().flush_requests())
            .collect()
    };
    let view = cpus[2].address_space(0).unwrap().view();
    let before = (flushes(&cpus[1..]), b.mem.stats().renders);
    drop(cpus.remove(0)); // the representative
    let after = (flushes(&cpus), b.mem.stats().renders);
    assert_eq!(after, before, "(TLB flush requests of CPUs 1 and 2, renders)");
    assert!(
        Arc::ptr_eq(&view, &cpus[1].address_space(0).unwrap().view()),
        "view replaced"
    );
}
