//! 4. Listeners on layered spaces replay to the current view.

use super::*;

// 4. Listeners on layered spaces.

/// One range as a listener saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) start: u64,
    pub(crate) size: u128,
    pub(crate) name: String,
    pub(crate) offset: u64,
    pub(crate) readonly: bool,
    pub(crate) region: RegionId,
    pub(crate) mask: DirtyMask,
}

impl Seen {
    pub(crate) fn of(s: &Section<'_>) -> Seen {
        Seen {
            start: s.start().0,
            size: s.size(),
            name: s.name().to_string(),
            offset: s.offset_in_region().0,
            readonly: s.readonly(),
            region: s.region(),
            mask: s.dirty_log_mask(),
        }
    }
    pub(crate) fn of_range(r: &addrspace::FlatRange) -> Seen {
        Seen {
            start: r.start().0,
            size: r.size(),
            name: r.name().to_string(),
            offset: r.offset_in_region().0,
            readonly: r.readonly(),
            region: r.region(),
            mask: r.dirty_log_mask(),
        }
    }
}

#[derive(Debug)]
pub(crate) enum Ev {
    Add(Seen),
    Del(Seen),
    Log(Seen, DirtyMask, DirtyMask),
}

/// Records region and logging callbacks, and replays them onto its own map of ranges.
#[derive(Default)]
pub(crate) struct Rec {
    pub(crate) events: Mutex<Vec<Ev>>,
    pub(crate) state: Mutex<BTreeMap<u64, Seen>>,
}

impl MemoryListener for Rec {
    fn name(&self) -> &str {
        "recorder"
    }
    fn region_add(&self, s: &Section<'_>) {
        self.events.lock().unwrap().push(Ev::Add(Seen::of(s)));
    }
    fn region_del(&self, s: &Section<'_>) {
        self.events.lock().unwrap().push(Ev::Del(Seen::of(s)));
    }
    fn log_start(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        self.events.lock().unwrap().push(Ev::Log(Seen::of(s), old, new));
    }
    fn log_stop(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        self.events.lock().unwrap().push(Ev::Log(Seen::of(s), old, new));
    }
}

impl Rec {
    /// Applies the events recorded since the last call; returns how many.
    pub(crate) fn replay(&self, what: &str) -> usize {
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        let mut st = self.state.lock().unwrap();
        for e in &events {
            match e {
                Ev::Add(s) => {
                    let clash = st
                        .range(..s.start + (s.size - 1) as u64)
                        .next_back()
                        .filter(|(_, o)| u128::from(o.start) + o.size > u128::from(s.start));
                    assert!(clash.is_none(), "{what}: add {s:?} over {clash:?}");
                    st.insert(s.start, s.clone());
                }
                Ev::Del(s) => {
                    // Unregistering sends `log_stop` to no clients first: the mask is
                    // checked through the logging events and the final comparison.
                    let old = st.remove(&s.start).map(|o| Seen { mask: s.mask, ..o });
                    assert_eq!(old.as_ref(), Some(s), "{what}: del of a range not added");
                }
                Ev::Log(s, old, new) => {
                    let e = st.get_mut(&s.start);
                    let e = e.unwrap_or_else(|| panic!("{what}: logging change of unknown {s:?}"));
                    assert_eq!(
                        (e.start, e.size, &e.name, e.offset),
                        (s.start, s.size, &s.name, s.offset),
                        "{what}: logging change {old:?} -> {new:?} does not match the range"
                    );
                    // A registration replay follows each logged range's `region_add` (which
                    // carries the mask) with `log_start` from no clients, as QEMU does.
                    let replayed = *old == DirtyMask::NONE && e.mask == *new;
                    assert!(
                        e.mask == *old || replayed,
                        "{what}: logging change {old:?} -> {new:?} of {e:?}"
                    );
                    e.mask = *new;
                }
            }
        }
        events.len()
    }

    /// The replayed state equals `space`'s current view.
    pub(crate) fn check(&self, space: &AddressSpace, what: &str) -> usize {
        let n = self.replay(what);
        let st = self.state.lock().unwrap();
        let got: Vec<&Seen> = st.values().collect();
        let view = space.view();
        let want: Vec<Seen> = view.ranges().iter().map(Seen::of_range).collect();
        let want: Vec<&Seen> = want.iter().collect();
        assert_eq!(got, want, "{what}: replayed listener events differ from the view");
        n
    }
}

/// Recording listeners on two layered CPUs' spaces (one registered late, on the secure
/// space), and on system; after every random step (system device changes, dirty logging,
/// private toggles, CPU hot-plug of other CPUs) replaying each listener's events onto its
/// map equals its space's current ranges (start, size, name, offset, readonly, region, dirty
/// mask). Unregistering replays everything as deletions: the maps end empty.
#[test]
pub(crate) fn listeners_on_layered_spaces_replay_to_the_current_view() {
    let t0 = Instant::now();
    let mut ch = Churn::new(6, 0x0715_07e4);
    ch.pinned = 2;
    let cpu0 = ch.cluster.cpu(0).unwrap().address_space(0).unwrap().clone();
    let cpu1s = ch.cluster.cpu(1).unwrap().address_space(1).unwrap().clone();
    assert!(cpu0.view().base().is_some(), "CPU 0 is layered");
    let (l_sys, l_cpu0, l_cpu1) = (
        Arc::new(Rec::default()),
        Arc::new(Rec::default()),
        Arc::new(Rec::default()),
    );
    let mut handles: Vec<(ListenerHandle, Arc<Rec>, AddressSpace, &str)> = vec![
        (
            ch.memory.register_listener(l_sys.clone(), 0).unwrap(),
            l_sys,
            ch.memory.clone(),
            "system",
        ),
        (
            cpu0.register_listener(l_cpu0.clone(), 0).unwrap(),
            l_cpu0,
            cpu0.clone(),
            "cpu-memory-0",
        ),
    ];
    let steps = 1_500;
    let mut events = 0;
    for i in 0..steps {
        if i == 300 {
            handles.push((
                cpu1s.register_listener(l_cpu1.clone(), 5).unwrap(),
                l_cpu1.clone(),
                cpu1s.clone(),
                "cpu-secure-memory-1",
            ));
        }
        let step = ch.step(&mut |_, _| {});
        for (_, rec, space, name) in &handles {
            events += rec.check(space, &format!("step {i} ({step:?}), {name}"));
        }
        if i % 100 == 0 {
            for s in 0..2 {
                ch.check_cpu(s, &format!("step {i}"));
            }
        }
    }
    for (h, rec, _, name) in handles {
        drop(h);
        rec.replay(&format!("unregistering {name}"));
        assert!(
            rec.state.lock().unwrap().is_empty(),
            "{name}: unregistering deletes every range"
        );
    }
    eprintln!(
        "listeners: {steps} steps, {events} events replayed in {:?}",
        t0.elapsed()
    );
}
