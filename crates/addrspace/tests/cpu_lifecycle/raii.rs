//! RAII unplug under a concurrent reader.

use super::*;

// RAII unplug
// ---------------------------------------------------------------------------------------

#[test]
pub(crate) fn unplug_is_raii_and_readers_finish_on_their_view() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![spec(
            0,
            "cpu-memory",
            CpuView::PerCpu(m_profile(b.system, created.clone())),
        )],
        tlb: true,
    };
    let cpu = Cpu::realize(&b.mem, 3, &model).unwrap();
    let space = cpu.address_space(0).unwrap();
    let tcm_block: Weak<RamBlock> = {
        let (r, _) = space.lookup(GuestAddr(TCM)).unwrap();
        Arc::downgrade(r.leaf().backend().ram().unwrap())
    };
    let held_view = space.view();
    let mut acc = space.accessor();
    let s = b.mem.stats();
    assert_eq!(
        (s.regions, s.listeners, s.address_spaces),
        (base.regions + 4, base.listeners + 1, base.address_spaces + 1)
    );

    let (started_tx, started_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        // Each access sees one whole view: the CPU's (right values) or, once the space is
        // gone, the empty one (zero, decode error) — and never goes back.
        let (mut ok, mut err) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(20);
        while err < 3000 {
            assert!(Instant::now() < deadline, "reader never saw the unplug");
            let a = MemTxAttrs::default();
            let mut buf = [0xffu8; 64];
            let outcomes = [
                match acc.load::<u32>(GuestAddr(NVIC), LE, a) {
                    (0x1003, MemTxResult::OK) => true,
                    (0, MemTxResult::DECODE_ERROR) => false,
                    other => panic!("nvic load: {other:?}"),
                },
                match acc.load::<u64>(GuestAddr(TCM + 8), LE, a) {
                    (0x0404_0404_0404_0404, MemTxResult::OK) => true,
                    (0, MemTxResult::DECODE_ERROR) => false,
                    other => panic!("tcm load: {other:?}"),
                },
                match acc.read(GuestAddr(TCM + 0xfc0), &mut buf, a) {
                    MemTxResult::OK if buf == [4; 64] => true,
                    MemTxResult::DECODE_ERROR if buf == [0; 64] => false,
                    other => panic!("tcm read: {other:?} {buf:?}"),
                },
            ];
            for good in outcomes {
                if good {
                    assert_eq!(err, 0, "an access succeeded after one saw the empty view");
                    ok += 1;
                } else {
                    err += 1;
                }
            }
            if ok == 3 {
                started_tx.send(()).unwrap();
            }
        }
        (ok, acc)
    });
    started_rx.recv().unwrap();
    drop(cpu); // unplug while the reader runs
    let s = b.mem.stats();
    assert_eq!(s.regions, base.regions, "per-CPU regions deleted");
    assert_eq!(s.listeners, base.listeners, "TLB listener gone");
    assert_eq!(s.address_spaces, base.address_spaces, "space gone");
    let (ok, acc) = reader.join().unwrap();
    assert!(ok > 0);

    // A view held across the unplug still shows (and keeps alive) what it showed.
    let (r, off) = held_view.lookup(GuestAddr(TCM + 16)).unwrap();
    assert_eq!(r.name(), "tcm-3");
    let mut b8 = [0u8; 8];
    assert!(r.leaf().backend().ram().unwrap().read(off.0, &mut b8));
    assert_eq!(b8, [4; 8]);
    let (r, off) = held_view.lookup(GuestAddr(NVIC)).unwrap();
    match r.leaf().backend() {
        Backend::Io(ops) => assert_eq!(ops.read(off.0, 4, attrs()), (0x1003, MemTxResult::OK)),
        other => panic!("nvic is {other:?}"),
    }
    assert!(tcm_block.upgrade().is_some());
    drop(held_view);
    drop(acc);
    assert!(tcm_block.upgrade().is_none(), "TCM freed with the last view");
    assert!(
        created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()),
        "NVIC freed"
    );
    assert_eq!(b.mem.stats().flatviews, base.flatviews, "no view outlives its readers");
}

/// Holding a clone of a CPU's `AddressSpace` across unplug: the space survives (it is a
/// handle), and the per-CPU root goes when the clone goes. (Regression: the root was deleted
/// with the CPU or never — it stayed in the graph forever.)
#[test]
pub(crate) fn cloned_space_handle_does_not_leak_the_per_cpu_root() {
    let b = board();
    let smram = b.mem.ram("smram", 0x20000).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-smm", CpuView::PerCpu(smm(b.system, smram)))],
        tlb: false,
    };
    let cpu = Cpu::realize(&b.mem, 0, &model).unwrap();
    let handle = cpu.address_space(0).unwrap().clone();
    drop(cpu);
    drop(handle);
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
    assert_eq!(b.mem.stats().regions, base.regions, "smm-container-0 leaked");
}
