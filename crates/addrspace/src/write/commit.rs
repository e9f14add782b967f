//! Commits: turning a transaction's changes into new views and listener events.
//!
//! QEMU re-renders every flat view on every commit and calls `begin`/`commit` on every
//! listener. A scoped commit (the default) does only what the change needs:
//!
//! 1. every mutation records the region and the window (in that region's coordinates) it
//!    may have changed; [`propagate`] carries the windows up the reverse edges — container
//!    parents and the aliases of a region — to every region that can see them;
//! 2. address spaces whose root was reached get their physical root recomputed; views whose
//!    root was reached are patched by re-rendering only their windows ([`crate::view::patch`]);
//! 3. only spaces whose view really changed are published and diffed, and only their
//!    listeners hear `begin`/`commit`.
//!
//! [`CommitMode::Full`] keeps QEMU's full rebuild, for comparison and as a fallback.
//!
//! Planning happens with the topology state borrowed; the result is a `Delivery` of
//! listener events and publications that the caller runs after releasing the borrow, so
//! listeners may query the memory system from their callbacks.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::base::idmap::IdMap;
use crate::base::stats::Counters;
use crate::model::region::RegionId;
use crate::model::sharing::{representative, signature};
use crate::view::flatview::FlatView;
use crate::view::patch::{delta, diff, merge_windows, Delta};
use crate::view::render::physical_root_chain;
use crate::write::commit_layers::{layerable, Deferred};
use crate::write::delivery::{Call, Delivery, Diff, Event, SpaceUpdate};
use crate::write::listener::Registered;
use crate::write::state::State;
use crate::write::update::{patch_view, render_view, view_eventfds, Update, Updates};

pub(crate) use crate::write::propagate::{propagate, Touch, Windows};
pub use crate::write::state::CommitMode;

/// Queues the publications of a commit: every space whose view entry got a new view or that
/// moved to another entry gets its final view, once (see `publish`: one cell per space).
fn publications(st: &State, updates: &Updates, moved: &[(usize, Option<RegionId>)], d: &mut Delivery) {
    for key in updates.keys() {
        let Some(e) = st.views.get(key) else { continue };
        d.publish.0.push((e.spaces.clone(), e.view.clone()));
    }
    // A moved space whose new entry was not updated; its view may have moved with it.
    for &(i, _) in moved {
        let sp = &st.spaces[i];
        if updates.contains_key(&sp.key) {
            continue;
        }
        let view = &st.views[&sp.key].view;
        if !Arc::ptr_eq(&sp.cell.load(), view) {
            d.publish
                .0
                .push((Arc::new(vec![(sp.id, sp.cell.clone())]), view.clone()));
        }
    }
}

/// Views every space of which moves elsewhere in this commit: they are about to be dropped,
/// and nothing may borrow from them (they are not brought up to date).
fn abandoned_views(st: &State, moved: &[(usize, Option<RegionId>)]) -> Vec<Option<RegionId>> {
    let mut moved_ids: Vec<u64> = moved.iter().map(|&(i, _)| st.spaces[i].id).collect();
    moved_ids.sort_unstable();
    let arriving = |k: &Option<RegionId>| moved.iter().any(|&(j, _)| st.spaces[j].key == *k);
    let mut out = Vec::new();
    for &(_, old_key) in moved {
        if let Some(e) = st.views.get(&old_key) {
            let leaving = e.space_ids().all(|id| moved_ids.binary_search(&id).is_ok());
            if leaving && !out.contains(&old_key) && !arriving(&old_key) {
                out.push(old_key);
            }
        }
    }
    out
}

/// Moves the view of a representative root that no space follows any more to the root its
/// spaces moved to, when that root has the signature the view was rendered for.
///
/// Windows changed under the old root this transaction (its own teardown, or a change of what
/// it shows) are carried over to the new root, whose coordinates are the same.
fn transfer_views(st: &mut State, moved: &[(usize, Option<RegionId>)], win: &mut Windows) {
    for &(idx, old_key) in moved {
        let new_key = st.spaces[idx].key;
        let (Some(old), Some(new)) = (old_key, new_key) else {
            continue;
        };
        if st.views.contains_key(&new_key) {
            continue;
        }
        let Some(entry) = st.views.get(&old_key) else { continue };
        let Some(sig) = &entry.sig else { continue };
        if signature(&st.graph, new).as_ref() != Some(sig) {
            continue;
        }
        let all_follow = entry.space_ids().all(|id| {
            moved
                .iter()
                .any(|&(i, _)| st.spaces[i].id == id && st.spaces[i].key == new_key)
        });
        if !all_follow {
            continue;
        }
        let entry = st.views.remove(&old_key).expect("checked above");
        if let Some(sig) = &entry.sig {
            st.reps.insert(sig.clone(), new);
        }
        st.graph.set_view_key(old, false);
        st.graph.set_view_key(new, true);
        st.views.insert(new_key, entry);
        if let Some(w) = win.remove(&old) {
            let list = win.entry(new).or_default();
            list.extend(w);
            merge_windows(list);
        }
    }
}

/// What the open transaction left for its commit, taken out of the state.
struct Pending {
    /// Changed windows by region (region coordinates), merged.
    win: Windows,
    moved_roots: Vec<RegionId>,
    relayer: Vec<RegionId>,
    ev_touched: Vec<RegionId>,
    /// QEMU's mode: everything re-rendered and notified.
    qemu: bool,
    /// A global dirty-logging change: every view re-rendered, changed spaces notified.
    touch_all: bool,
    rerender: bool,
}

impl Pending {
    fn take(st: &mut State) -> Pending {
        let mut win = std::mem::take(&mut st.touched);
        for list in win.values_mut() {
            merge_windows(list);
        }
        Pending {
            win,
            moved_roots: std::mem::take(&mut st.moved),
            relayer: std::mem::take(&mut st.relayer),
            ev_touched: std::mem::take(&mut st.eventfd_touched),
            qemu: st.mode == CommitMode::Full,
            touch_all: std::mem::take(&mut st.touch_all),
            rerender: std::mem::take(&mut st.rerender_all),
        }
    }

    /// Every view is rendered again.
    fn full(&self) -> bool {
        self.qemu || self.touch_all || self.rerender
    }

    fn idle(&self) -> bool {
        self.win.is_empty() && self.ev_touched.is_empty() && self.moved_roots.is_empty() && self.relayer.is_empty()
    }
}

/// Spaces moved to another view entry in this commit: (space index, its old key).
type Moved = Vec<(usize, Option<RegionId>)>;

/// Plans the outermost commit of a transaction, in four phases (each a function below).
pub(crate) fn plan(st: &mut State, counters: &Arc<Counters>) -> Delivery {
    let mut p = Pending::take(st);
    let mut d = Delivery::default();
    // Nothing changed (a failed mutation, an empty transaction): no commit, in QEMU's mode
    // too. (QEMU's own test, `memory_region_update_pending`, is narrower still: it skips
    // changes no view can show, such as mapping a disabled region, and handles
    // ioeventfd-only changes without begin/commit; this mode commits for those.)
    if !p.touch_all && !p.rerender && p.idle() && st.seeds.is_empty() {
        return d;
    }
    if p.qemu {
        p.win.clear();
    }
    let moved = resimplify(st, counters, &p);
    // 1b. A representative root that left (an unplugged CPU's SMM container) hands its view
    //     to a structurally identical root its spaces now follow: same content, nothing to
    //     render, nobody to notify.
    if !p.qemu {
        transfer_views(st, &moved, &mut p.win);
    }
    let updates = new_views(st, counters, &p, &moved);
    let ev_keys = install_views(st, &p, &updates, &moved, &mut d);
    notify(st, &p, &updates, &moved, &ev_keys, &mut d);
    counters.commits.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(views = updates.len(), "memory topology committed");
    d
}

/// 1. Spaces whose simplification chain holds a changed region may simplify to another
///    physical root: recompute it (and the representative root its view is keyed by).
fn resimplify(st: &mut State, counters: &Counters, p: &Pending) -> Moved {
    let seeds = std::mem::take(&mut st.seeds);
    let candidates: Vec<usize> = if p.full() {
        (0..st.spaces.len()).collect()
    } else {
        let mut ids: Vec<u64> = seeds
            .iter()
            .flat_map(|r| st.chains.get(r).into_iter().flatten().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.iter().filter_map(|&id| st.space_index(id)).collect()
    };
    counters
        .resimplified
        .fetch_add(candidates.len() as u64, Ordering::Relaxed);
    let mut moved: Moved = Vec::new();
    let mut chain = Vec::new();
    for idx in candidates {
        let phys = physical_root_chain(&st.graph, st.spaces[idx].root, &mut chain);
        let key = if p.qemu {
            phys
        } else {
            representative(&st.graph, &mut st.reps, phys, &mut chain)
        };
        st.spaces[idx].phys = phys;
        if chain != st.spaces[idx].chain {
            let id = st.spaces[idx].id;
            for r in &st.spaces[idx].chain {
                if let Some(v) = st.chains.get_mut(r) {
                    v.retain(|&s| s != id);
                    if v.is_empty() {
                        st.chains.remove(r);
                    }
                }
            }
            for &r in &chain {
                st.chains.entry(r).or_default().push(id);
            }
            st.spaces[idx].chain = chain.clone();
        }
        if key != st.spaces[idx].key {
            moved.push((idx, st.spaces[idx].key));
            st.spaces[idx].key = key;
        }
    }
    moved
}

/// 2. New views: patched where only windows changed, rendered where new. Roots that show
///    another view whole under private windows are built last, over that view's new state.
fn new_views(st: &State, counters: &Arc<Counters>, p: &Pending, moved: &Moved) -> Updates {
    let mut updates = Updates::default();
    let mut layered: Vec<Deferred> = Vec::new();
    let abandoned = abandoned_views(st, moved);
    if p.full() {
        render_all(st, counters, p, &mut updates, &mut layered);
    } else {
        patch_touched(st, counters, p, moved, &abandoned, &mut updates, &mut layered);
    }
    let full = p.full();
    crate::write::commit_layers::build_deferred(
        &st.graph,
        counters,
        full,
        layered,
        &mut updates,
        &st.views,
        &abandoned,
    );
    updates
}

/// 2, full: every view rendered again (QEMU's mode, a global dirty-logging change, or a
/// change propagation could not follow).
fn render_all(st: &State, counters: &Arc<Counters>, p: &Pending, updates: &mut Updates, layered: &mut Vec<Deferred>) {
    let g = &st.graph;
    let (qemu, rerender, win, moved_roots) = (p.qemu, p.rerender, &p.win, &p.moved_roots);
    let mut done: IdMap<Option<RegionId>, ()> = IdMap::default();
    for sp in &st.spaces {
        if sp.key.is_some() && done.insert(sp.key, ()).is_none() {
            let old = st.views.get(&sp.key).map(|e| e.view.clone());
            // A global dirty-logging change only touches RAM-backed ranges.
            let no_ram = |v: &FlatView| v.ranges().iter().all(|r| r.leaf().backend().ram().is_none());
            let touched = sp.key.is_some_and(|k| win.contains_key(&k) || moved_roots.contains(&k));
            if !qemu && !rerender && !touched && old.as_deref().is_some_and(no_ram) {
                continue;
            }
            if let (false, Some(root)) = (qemu, sp.key) {
                if layerable(g, &st.views, root) {
                    layered.push(Deferred::rebuild(root, old));
                    continue;
                }
            }
            let new = render_view(g, counters, sp.key);
            if !qemu {
                if let Some(o) = &old {
                    match delta(&diff(o.ranges(), new.ranges()), o.ranges(), new.ranges()) {
                        Delta::Unchanged => continue,
                        Delta::Quiet => {
                            updates.insert(sp.key, Update::quiet(new, old));
                            continue;
                        }
                        Delta::Heard => {}
                    }
                }
            }
            updates.insert(sp.key, Update::new(new, old));
        }
    }
}

/// 2, scoped: only roots with changed windows, that moved, or that may borrow a view now
/// can need a new view.
fn patch_touched(
    st: &State,
    counters: &Arc<Counters>,
    p: &Pending,
    moved: &Moved,
    abandoned: &[Option<RegionId>],
    updates: &mut Updates,
    layered: &mut Vec<Deferred>,
) {
    let g = &st.graph;
    let (win, moved_roots, relayer) = (&p.win, &p.moved_roots, &p.relayer);
    let no_windows = Vec::new();
    let mut roots: Vec<RegionId> = win
        .keys()
        .chain(moved_roots.iter())
        .chain(relayer.iter())
        .copied()
        .collect();
    roots.sort_unstable();
    roots.dedup();
    for root in roots {
        let key = Some(root);
        let Some(entry) = st.views.get(&key) else { continue };
        if abandoned.contains(&key) {
            continue;
        }
        let moved_root = moved_roots.contains(&root);
        let Some(w) = win.get(&root).or(moved_root.then_some(&no_windows)) else {
            // Only asked to borrow the current view of its base if it does not already.
            if layerable(g, &st.views, root) && !crate::write::commit_layers::borrows_current(g, &st.views, &entry.view)
            {
                layered.push(Deferred {
                    optional: true,
                    moved: false,
                    ..Deferred::rebuild(root, Some(entry.view.clone()))
                });
            }
            continue;
        };
        let old = &entry.view;
        // A view shows its root at the root's own address.
        let base = u128::from(g.node(root).addr);
        let top = crate::model::region::SIZE_2_64;
        let w: Vec<(u128, u128)> = w
            .iter()
            .map(|&(lo, hi)| ((lo + base).min(top), (hi + base).min(top)))
            .filter(|&(lo, hi)| lo < hi)
            .collect();
        if layerable(g, &st.views, root) {
            layered.push(Deferred {
                root,
                old: Some(old.clone()),
                windows: w,
                moved: moved_root,
                optional: false,
            });
            continue;
        }
        if let Some(u) = patch_view(g, counters, root, old, &w, moved_root) {
            updates.insert(key, u);
        }
    }
    for &(idx, _) in moved {
        let key = st.spaces[idx].key;
        if !st.views.contains_key(&key) && !updates.contains_key(&key) {
            if let Some(root) = key.filter(|&r| layerable(g, &st.views, r)) {
                if !layered.iter().any(|d| d.root == root) {
                    layered.push(Deferred::rebuild(root, None));
                }
                continue;
            }
            updates.insert(key, Update::new(render_view(g, counters, key), None));
        }
    }
}

/// 3. The view table: new views in (published once per view), spaces moved between
///    entries (they follow the new entry's cell), unused entries out; and the views whose
///    ioeventfd lists changed without a re-render, returned.
fn install_views(
    st: &mut State,
    p: &Pending,
    updates: &Updates,
    moved: &Moved,
    d: &mut Delivery,
) -> Vec<Option<RegionId>> {
    let (qemu, ev_touched) = (p.qemu, &p.ev_touched);
    let eventfds_live = st.eventfd_regs > 0;
    for (key, u) in updates {
        let entry = match st.views.entry(*key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if let Some(r) = key {
                    st.graph.set_view_key(*r, true);
                }
                e.insert(crate::write::state::ViewEntry::new(u.new.clone(), Arc::default(), None))
            }
        };
        entry.view = u.new.clone();
        if !qemu {
            let sig = key.and_then(|k| signature(&st.graph, k));
            if let (Some(old), Some(k)) = (&entry.sig, key) {
                if sig.as_ref() != Some(old) {
                    crate::model::sharing::forget(&mut st.reps, old, *k);
                }
            }
            entry.sig = sig;
        }
        if eventfds_live || !entry.eventfds.is_empty() {
            entry.eventfds = Arc::new(view_eventfds(&st.graph, &entry.view));
        }
    }
    for &(idx, old_key) in moved {
        let sp = &st.spaces[idx];
        let (id, listening) = (sp.id, !sp.listeners.is_empty());
        if let Some(e) = st.views.get_mut(&old_key) {
            e.leave(id);
        }
        let e = st.views.get_mut(&sp.key).expect("moved spaces have a view");
        e.join(id, &sp.cell);
        if listening {
            if let Err(pos) = e.listening.binary_search(&id) {
                e.listening.insert(pos, id);
            }
        }
    }
    publications(st, updates, moved, d);
    // Entries lose spaces only by moves: drop those left without any.
    for &(_, old_key) in moved {
        let Some(r) = old_key else { continue };
        if st.views.get(&old_key).is_some_and(|e| e.spaces.is_empty()) {
            let e = st.views.remove(&old_key).expect("checked above");
            st.graph.set_view_key(r, false);
            if let Some(sig) = &e.sig {
                crate::model::sharing::forget(&mut st.reps, sig, r);
            }
        }
    }
    // Registrations changed without a re-render: recompute the lists of views that see them.
    let mut ev_keys: Vec<Option<RegionId>> = Vec::new();
    if !ev_touched.is_empty() {
        let ev_seeds: Vec<Touch> = ev_touched
            .iter()
            .filter_map(|&r| st.graph.get(r).ok().map(|n| (r, 0, n.size)))
            .collect();
        let mut reach = Windows::default();
        st.scratch.begin();
        let complete = propagate(&st.graph, &mut st.scratch, &ev_seeds, &mut reach);
        for (key, entry) in st.views.iter_mut() {
            if key.is_some_and(|k| !complete || reach.contains_key(&k)) && !updates.contains_key(key) {
                entry.eventfds = Arc::new(view_eventfds(&st.graph, &entry.view));
                ev_keys.push(*key);
            }
        }
    }
    ev_keys
}

/// 4. Spaces with listeners whose view (or ioeventfds) changed, in creation order, get their
///    diff queued; listeners that hear anything are bracketed by `begin`/`commit`.
fn notify(
    st: &mut State,
    p: &Pending,
    updates: &Updates,
    moved: &Moved,
    ev_keys: &[Option<RegionId>],
    d: &mut Delivery,
) {
    let qemu = p.qemu;
    let mut affected: Vec<usize> = moved
        .iter()
        .map(|&(i, _)| i)
        .filter(|&i| !st.spaces[i].listeners.is_empty())
        .collect();
    for key in updates.keys().chain(ev_keys.iter()) {
        if let Some(e) = st.views.get(key) {
            affected.extend(e.listening.iter().filter_map(|&id| st.space_index(id)));
        }
    }
    affected.sort_unstable();
    affected.dedup();
    let mut begin: Vec<Registered> = Vec::new();
    let mut diffs: IdMap<(usize, usize), Arc<Diff>> = IdMap::default();
    let State {
        graph: g,
        spaces,
        views,
        ..
    } = st;
    for idx in affected {
        let sp = &mut spaces[idx];
        let entry = &views[&sp.key];
        let new = entry.view.clone();
        let silent = updates
            .get(&sp.key)
            .is_some_and(|u| u.silent && u.old.as_ref().is_some_and(|o| Arc::ptr_eq(o, &sp.view)));
        if silent {
            sp.view = new;
        } else if !Arc::ptr_eq(&sp.view, &new) {
            begin.extend(sp.listeners.iter().cloned());
            let wants_nop = sp.listeners.iter().any(|l| l.nop);
            let patched = updates
                .get(&sp.key)
                .filter(|u| u.old.as_ref().is_some_and(|o| Arc::ptr_eq(o, &sp.view)))
                .and_then(|u| u.changes.clone());
            let diff = match patched {
                Some(c) if !wants_nop => c,
                _ => diffs
                    .entry((Arc::as_ptr(&sp.view) as usize, Arc::as_ptr(&new) as usize))
                    .or_insert_with(|| {
                        let changes = diff(sp.view.ranges(), new.ranges());
                        Arc::new(Diff::new(g, sp.view.ranges(), new.ranges(), changes))
                    })
                    .clone(),
            };
            d.spaces.push(SpaceUpdate {
                name: sp.name.clone(),
                id: sp.id,
                listeners: sp.listeners.clone(),
                old: sp.view.clone(),
                new: new.clone(),
                diff,
                eventfds: None,
                replay: false,
            });
            sp.view = new;
        }
        if !Arc::ptr_eq(&sp.eventfds, &entry.eventfds) {
            if sp.eventfds[..] != entry.eventfds[..] {
                let pair = Some((sp.eventfds.clone(), entry.eventfds.clone()));
                match d.spaces.last_mut() {
                    Some(u) if u.id == sp.id => u.eventfds = pair,
                    _ => d.spaces.push(SpaceUpdate {
                        name: sp.name.clone(),
                        id: sp.id,
                        listeners: sp.listeners.clone(),
                        old: sp.view.clone(),
                        new: sp.view.clone(),
                        diff: Arc::new(Diff::empty()),
                        eventfds: pair,
                        replay: false,
                    }),
                }
            }
            sp.eventfds = entry.eventfds.clone();
        }
    }
    if qemu {
        // QEMU brackets every commit with begin/commit on every listener.
        for sp in spaces.iter() {
            begin.extend(sp.listeners.iter().cloned());
        }
    }
    begin.sort_by_key(|l| (l.priority, l.id));
    begin.dedup_by_key(|l| l.id);
    d.pre = begin.iter().map(|l| Event(l.listener.clone(), Call::Begin)).collect();
    d.post = begin.iter().map(|l| Event(l.listener.clone(), Call::Commit)).collect();
}
