//! 1. Leaks and retention under churn with readers.

use super::*;

// 1. Leaks and retention.

/// Counters of one memory system and the tracked threads' heap bytes. (Not
/// `RamBlock::live_count()`: it counts every test's RAM, and this churn creates none.)
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) regions: usize,
    pub(crate) address_spaces: usize,
    pub(crate) flatviews: usize,
    pub(crate) listeners: usize,
    pub(crate) live_bytes: isize,
}

pub(crate) fn snapshot(mem: &Memory) -> Snapshot {
    let s = mem.stats();
    Snapshot {
        regions: s.regions,
        address_spaces: s.address_spaces,
        flatviews: s.flatviews,
        listeners: s.listeners,
        live_bytes: live_bytes(),
    }
}

pub(crate) const READERS: usize = 2;

/// Accessors handed to a reader, by slot (the reader takes them).
pub(crate) type Mailbox = Arc<Mutex<Vec<Option<Accessor>>>>;

/// Reads through CPU `slot`'s accessor what cannot depend on the race: RAM (never moved), and
/// the private windows (the CPU's own devices, a system device, or nothing). Returns whether
/// the accessor's space is still alive (an unplugged CPU's accessor sees the empty view).
pub(crate) fn reader_check(acc: &mut Accessor, slot: usize) -> bool {
    let (a, le) = (MemTxAttrs::default(), Endianness::Little);
    let cpu = slot as u32;
    // RAM never moves; an accessor of an unplugged CPU sees the empty view.
    let (v, r) = acc.load::<u64>(GuestAddr(0x1008), le, a);
    let live = r == MemTxResult::OK;
    assert!(
        (v, r) == (word(RAM_TAG, 0x1008), MemTxResult::OK) || (v, r) == (0, MemTxResult::DECODE_ERROR),
        "CPU {slot}: RAM reads {v:#x} {r:?}"
    );
    // The private devices, or what system shows there, or nothing.
    for addr in [NVIC + 0x400, SYSTICK + 4, SYSTICK_ALT + 4] {
        let (v, r) = acc.load::<u32>(GuestAddr(addr), le, a);
        let v = u64::from(v);
        let system_dev = v & !0xff == 0xde00_0000 && (v & 0xff) < DEVS as u64;
        let own = v == nvic_value(cpu) || v == systick_value(cpu);
        assert!(
            (r == MemTxResult::OK && (own || system_dev)) || (r == MemTxResult::DECODE_ERROR && v == 0),
            "CPU {slot}: {addr:#x} reads {v:#x} {r:?}"
        );
    }
    live
}

/// 32 M-profile CPUs over system memory with 16 devices; 5 000 steps of (a) device moves,
/// adds, removals, (b) CPU unplug + re-plug, (c) private device toggles, while two readers
/// read through the CPUs' accessors. Afterwards, back in the canonical layout: the live flat
/// views are exactly system's + one per CPU + the empty view (no layered view keeps an old
/// system view alive), and every counter and the tracked heap bytes equal their baseline.
#[test]
pub(crate) fn churn_keeps_no_old_views_and_leaks_nothing() {
    track_this_thread();
    let t0 = Instant::now();
    let mut ch = Churn::new(CPUS, 0x01a7_e7ed);
    let mailboxes: Vec<Mailbox> = (0..READERS)
        .map(|_| Arc::new(Mutex::new((0..CPUS).map(|_| None).collect())))
        .collect();
    let post = |mailboxes: &[Mailbox], s: usize, cpu: &Cpu| {
        let acc = cpu.address_space(0).unwrap().accessor();
        let old = mailboxes[s % READERS].lock().unwrap()[s].replace(acc);
        drop(old);
    };
    for cpu in ch.cluster.cpus() {
        post(&mailboxes, cpu.index() as usize, cpu);
    }
    let expected_at_setup = 1 + CPUS + 1;
    assert_eq!(ch.views_needed(), expected_at_setup);
    assert_eq!(ch.mem.stats().flatviews, expected_at_setup, "after setup");

    let stop = Arc::new(AtomicBool::new(false));
    // Readers stop when this test ends, even by a failed assertion.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_readers = StopOnDrop(stop.clone());
    let passes: Arc<Vec<AtomicU64>> = Arc::new((0..READERS).map(|_| AtomicU64::new(0)).collect());
    let live_reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|t| {
            let (stop, passes, live_reads, mailbox) =
                (stop.clone(), passes.clone(), live_reads.clone(), mailboxes[t].clone());
            thread::spawn(move || {
                track_this_thread();
                let mut mine: Vec<Option<Accessor>> = (0..CPUS).map(|_| None).collect();
                let mut live = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut m) = mailbox.try_lock() {
                        for (slot, new) in m.iter_mut().enumerate() {
                            if let Some(acc) = new.take() {
                                mine[slot] = Some(acc);
                            }
                        }
                    }
                    for (slot, acc) in mine.iter_mut().enumerate() {
                        if let Some(acc) = acc {
                            live += u64::from(reader_check(acc, slot));
                        }
                    }
                    passes[t].fetch_add(1, Ordering::SeqCst);
                    thread::yield_now();
                }
                live_reads.fetch_add(live, Ordering::Relaxed);
                // `mine` (the accessors) dropped here, on a tracked thread.
            })
        })
        .collect();
    // Readers drop the views they cached at their next access, and pick up posted accessors
    // at their next pass: wait for two more passes of each.
    let settle = |readers: &[thread::JoinHandle<()>]| {
        let p0: Vec<u64> = passes.iter().map(|p| p.load(Ordering::SeqCst)).collect();
        while passes.iter().zip(&p0).any(|(p, &p0)| p.load(Ordering::SeqCst) < p0 + 2) {
            assert!(
                !readers.iter().any(|r| r.is_finished()),
                "a reader failed (see its panic above)"
            );
            thread::yield_now();
        }
    };

    // Warm-up: lazily grown tables reach their working size.
    let mut on_plug = |s: usize, cpu: &Cpu| post(&mailboxes, s, cpu);
    for _ in 0..300 {
        ch.step(&mut on_plug);
    }
    ch.extremes(&mut on_plug);
    for _ in 0..300 {
        ch.step(&mut on_plug);
    }
    ch.restore(&mut on_plug);
    ch.normalize();
    settle(&readers);
    let base = snapshot(&ch.mem);
    assert_eq!(base.flatviews, expected_at_setup, "warm-up left views behind");

    let steps = 5_000;
    let t1 = Instant::now();
    let mut max_views = 0;
    for i in 1..=steps {
        ch.step(&mut on_plug);
        max_views = max_views.max(ch.mem.stats().flatviews);
        if i % 250 == 0 {
            // Once readers moved on, only the published views are alive: a layered view
            // over an old system view would keep that view alive too.
            settle(&readers);
            ch.check_no_old_bases(&format!("step {i}"));
        }
    }
    let churn = t1.elapsed();
    ch.restore(&mut on_plug);
    ch.normalize();
    settle(&readers);
    let end = snapshot(&ch.mem);
    let needed = ch.views_needed();

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let after_readers = ch.mem.stats();
    let stats = ch.mem.stats();
    eprintln!(
        "churn with readers: {steps} steps in {churn:?} ({:.0} us/step), total {:?}; {} live reads; \
         at most {max_views} live views; renders {} patches {} layers {}",
        churn.as_secs_f64() * 1e6 / steps as f64,
        t0.elapsed(),
        live_reads.load(Ordering::Relaxed),
        stats.renders,
        stats.patches,
        stats.layers
    );
    eprintln!("baseline {base:?}\nend      {end:?}");
    assert!(live_reads.load(Ordering::Relaxed) > 0, "readers read something");
    assert_eq!(
        needed, expected_at_setup,
        "the canonical layout needs system + one view per CPU + empty"
    );
    assert_eq!(end.flatviews, needed, "live flat views beyond what the topology needs");
    assert_eq!(
        after_readers.flatviews, needed,
        "after the readers dropped their accessors"
    );
    assert_eq!(end, base, "churn leaked");
    drop(ch);
}
