//! One memory system of the twins (`Side`): its address spaces, its recording listeners, and
//! the checks made on it after every commit — properties (a) to (d) of the crate doc — and
//! at teardown.

use std::sync::Arc;

use addrspace::{AddressSpace, CommitMode, FlatView, Memory, RegionId, Stats};

use crate::common::reference::Reference;
use crate::model::{
    check_listener, check_space_order, drain, expected_replay, expected_teardown, expected_unregister, list,
    of_listener, plain, recs, same_ranges, Ev, Journal, Lis, Recorder,
};

/// One memory system with its spaces and listeners.
pub struct Side {
    pub mem: Memory,
    pub mode: CommitMode,
    pub ids: Vec<RegionId>,
    pub spaces: Vec<Option<AddressSpace>>,
    pub roots: Vec<RegionId>,
    pub space_names: Vec<String>,
    pub listeners: Vec<Lis>,
    pub journal: Journal,
}

impl Side {
    pub fn new(mode: CommitMode) -> Side {
        let mem = Memory::new();
        mem.set_commit_mode(mode);
        Side {
            mem,
            mode,
            ids: Vec::new(),
            spaces: Vec::new(),
            roots: Vec::new(),
            space_names: Vec::new(),
            listeners: Vec::new(),
            journal: Journal::default(),
        }
    }

    pub fn view(&self, i: usize) -> Arc<FlatView> {
        self.spaces[i].as_ref().expect("space alive").view()
    }

    pub fn views(&self) -> Vec<Arc<FlatView>> {
        (0..self.spaces.len()).map(|i| self.view(i)).collect()
    }

    pub fn add_space(&mut self, name: String, root: RegionId) -> Result<(), String> {
        let s = self.mem.address_space(&name, root).map_err(|e| e.to_string())?;
        self.spaces.push(Some(s));
        self.roots.push(root);
        self.space_names.push(name);
        Ok(())
    }

    /// Registers a recording listener and checks its replay.
    pub fn register(&mut self, space: usize, prio: u32, nop: bool) -> Result<(), String> {
        let id = self.listeners.len();
        let rec = Arc::new(Recorder {
            id,
            nop,
            space: self.space_names[space].clone(),
            journal: self.journal.clone(),
        });
        let handle = self.spaces[space]
            .as_ref()
            .expect("space alive")
            .register_listener(rec, prio)
            .map_err(|e| e.to_string())?;
        let view = recs(&self.view(space));
        let evs = drain(&self.journal);
        if evs.iter().any(|(who, _)| *who != id) {
            return Err(format!("registering listener {id} called other listeners: {evs:?}"));
        }
        let (got, want) = (plain(&evs), expected_replay(&view));
        if got != want {
            return Err(format!(
                "registration replay of listener {id}\nexpected:\n{}heard:\n{}",
                list(&want),
                list(&got)
            ));
        }
        self.listeners.push(Lis {
            space,
            prio,
            nop,
            believed: view,
            handle: Some(handle),
        });
        Ok(())
    }

    /// All checks after one commit (see the module documentation).
    /// `global`: the commit changed global dirty tracking.
    pub fn check_commit(&mut self, before: &[Arc<FlatView>], stats: Stats, global: bool) -> Result<(), String> {
        let after = self.mem.stats();
        let evs = drain(&self.journal);
        let calls = evs.iter().filter(|(_, e)| *e != Ev::GlobalStart).count() as u64;
        if after.listener_calls - stats.listener_calls != calls {
            return Err(format!(
                "stats.listener_calls grew by {}, but the listeners recorded {calls} callbacks",
                after.listener_calls - stats.listener_calls
            ));
        }
        let views = self.views();
        let mut phys = Vec::new();
        for &root in &self.roots {
            phys.push(self.mem.physical_root(root).map_err(|e| e.to_string())?);
        }
        let n = views.len();
        // (d) before any render below moves the counter. A render must give some space a new
        // view, except in a commit that changed global dirty tracking: that may change every
        // view, so each physical root may be looked at once (still never once per space).
        if self.mode == CommitMode::Scoped {
            let distinct = |v: Vec<RegionId>| v.into_iter().collect::<std::collections::BTreeSet<_>>();
            let needed = distinct(
                (0..n)
                    .filter(|&i| global || !Arc::ptr_eq(&before[i], &views[i]))
                    .filter_map(|i| phys[i])
                    .collect(),
            );
            let renders = after.renders - stats.renders;
            let bound = needed.len();
            if renders > bound as u64 {
                let what = if global { "live" } else { "that got a new view" };
                return Err(format!(
                    "scoped commit made {renders} full renders, but there are only {} physical roots {what}: {needed:?}",
                    needed.len()
                ));
            }
        }
        // (a) against a fresh render, and view sharing.
        for i in 0..n {
            let fresh = self.mem.render(self.roots[i]).map_err(|e| e.to_string())?;
            // (The view's root may be a structurally identical root whose view it shares.)
            if !same_ranges(fresh.ranges(), views[i].ranges()) {
                return Err(format!(
                    "space {} ({}): published view differs from a fresh render\npublished: {:?}\nfresh:     {:?}",
                    i,
                    self.space_names[i],
                    recs(&views[i]),
                    recs(&fresh)
                ));
            }
            if fresh.root() != phys[i] {
                return Err(format!(
                    "space {i}: view root {:?} is not the physical root {:?}",
                    fresh.root(),
                    phys[i]
                ));
            }
        }
        let mode_scoped = self.mode == CommitMode::Scoped;
        for i in 0..n {
            for j in i + 1..n {
                // Same physical root: shared, always. Shared across physical roots: only by
                // scoped mode's sharing of structurally identical roots (never in QEMU mode).
                let shared = Arc::ptr_eq(&views[i], &views[j]);
                let allowed = phys[i] == phys[j] || mode_scoped;
                if (phys[i] == phys[j] && !shared) || (shared && !allowed) {
                    return Err(format!(
                        "spaces {i} and {j}: physical roots {:?} / {:?}, but views shared: {}",
                        phys[i],
                        phys[j],
                        Arc::ptr_eq(&views[i], &views[j])
                    ));
                }
            }
        }
        // (b), (c)
        let mode = self.mode;
        let committed = after.commits > stats.commits;
        for (id, l) in self.listeners.iter_mut().enumerate() {
            let i = l.space;
            let changed = !Arc::ptr_eq(&before[i], &views[i]);
            // A view may be replaced quietly by one with the same ranges (a layered view over
            // its base's newer view).
            let quiet_ok = changed && same_ranges(before[i].ranges(), views[i].ranges());
            check_listener(
                l,
                &of_listener(&evs, id),
                &views[i],
                changed && !quiet_ok,
                changed,
                mode,
                committed,
            )
            .map_err(|e| {
                format!(
                    "listener {id} (priority {}, nops {}) on space {i} ({}): {e}",
                    l.prio, l.nop, self.space_names[i]
                )
            })?;
        }
        for i in 0..n {
            check_space_order(&self.listeners, i, &evs).map_err(|e| format!("space {i}: {e}"))?;
        }
        Ok(())
    }

    /// The final state against the naive reference renderer (`common::reference`), which
    /// reads the graph back through `region_info` and renders nothing: every space's physical
    /// root is the reference's, and its published view answers every address as the
    /// reference does, priorities included (dirty-log masks are compared with the
    /// full-rebuild twin instead).
    pub fn check_reference(&self) -> Result<(), String> {
        let reference = Reference::of_memory(&self.mem)?;
        for (i, &root) in self.roots.iter().enumerate() {
            let r = reference
                .of(root)
                .ok_or_else(|| format!("space {i}: root {root:?} is not a region"))?;
            let phys = reference.physical_root(r);
            let real = self.mem.physical_root(root).map_err(|e| e.to_string())?;
            let what = format!("space {i} ({})", self.space_names[i]);
            if real != phys.map(|p| reference.nodes[p].id) {
                return Err(format!(
                    "{what}: physical root {real:?}, the reference's {:?}",
                    phys.map(|p| &reference.nodes[p].info.name)
                ));
            }
            let view = self.view(i);
            reference.check_view(phys, &view, &[]).map_err(|e| {
                format!(
                    "{what}: the published view differs from the reference renderer\n{e}\npublished: {:?}\nreference graph:\n{}",
                    recs(&view),
                    reference.describe()
                )
            })?;
        }
        Ok(())
    }

    /// Destroys every space: even ones by unregistering their listeners first, odd ones by
    /// dropping the space first.
    pub fn teardown(&mut self) -> Result<(), String> {
        for i in 0..self.spaces.len() {
            let view = recs(&self.view(i));
            let mine: Vec<usize> = (0..self.listeners.len())
                .filter(|&l| self.listeners[l].space == i)
                .collect();
            if i % 2 == 0 {
                for &l in &mine {
                    drop(self.listeners[l].handle.take());
                    let evs = drain(&self.journal);
                    if evs.iter().any(|(who, _)| *who != l) {
                        return Err(format!("unregistering listener {l} called others: {evs:?}"));
                    }
                    let want = expected_unregister(&self.listeners[l].believed);
                    if plain(&evs) != want || self.listeners[l].believed != view {
                        return Err(format!(
                            "unregistration of listener {l} on space {i}\nexpected:\n{}heard:\n{}",
                            list(&want),
                            list(&plain(&evs))
                        ));
                    }
                    self.listeners[l].believed.clear();
                }
                drop(self.spaces[i].take());
                let evs = drain(&self.journal);
                if !evs.is_empty() {
                    return Err(format!("dropping space {i} without listeners called: {evs:?}"));
                }
            } else {
                drop(self.spaces[i].take());
                let evs = drain(&self.journal);
                for &l in &mine {
                    let want = expected_teardown(&self.listeners[l].believed);
                    let got = plain(&of_listener(&evs, l));
                    if got != want || self.listeners[l].believed != view {
                        return Err(format!(
                            "destruction of space {i}, listener {l}\nexpected:\n{}heard:\n{}",
                            list(&want),
                            list(&got)
                        ));
                    }
                    self.listeners[l].believed.clear();
                }
                if let Some((who, e)) = evs.iter().find(|(who, _)| !mine.contains(who)) {
                    return Err(format!(
                        "destroying space {i} called listener {who} of another space: {e:?}"
                    ));
                }
                check_space_order(&self.listeners, i, &evs)?;
                for &l in &mine {
                    drop(self.listeners[l].handle.take());
                }
                let evs = drain(&self.journal);
                if !evs.is_empty() {
                    return Err(format!("dropping handles of a destroyed space called: {evs:?}"));
                }
            }
        }
        let s = self.mem.stats();
        if s.listeners != 0 || s.address_spaces != 0 {
            return Err(format!("after teardown: {s:?}"));
        }
        Ok(())
    }
}
