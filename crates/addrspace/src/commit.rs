//! Commits: turning a transaction's changes into new views and listener events.
//!
//! QEMU re-renders every flat view on every commit and calls `begin`/`commit` on every
//! listener. A scoped commit (the default) does only what the change needs:
//!
//! 1. every mutation records the region and the window (in that region's coordinates) it
//!    may have changed; [`propagate`] carries the windows up the reverse edges — container
//!    parents and the aliases of a region — to every region that can see them;
//! 2. address spaces whose root was reached get their physical root recomputed; views whose
//!    root was reached are patched by re-rendering only their windows ([`crate::patch`]);
//! 3. only spaces whose view really changed are published and diffed, and only their
//!    listeners hear `begin`/`commit`.
//!
//! [`CommitMode::Full`] keeps QEMU's full rebuild, for comparison and as a fallback.
//!
//! Planning happens with the topology state borrowed; the result is a [`Delivery`] of
//! listener events and publications that the caller runs after releasing the borrow, so
//! listeners may query the memory system from their callbacks.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::dirty::DirtyMask;
use crate::flatview::{FlatRange, FlatView};
use crate::graph::Graph;
use crate::listener::{IoEventFd, MemoryListener, Section};
use crate::memory::{SpaceRecord, State};
use crate::patch::{diff, diff_patches, is_change, merge_windows, splice, Change};
use crate::publish::ViewCell;
use crate::region::{Body, RegionId};
use crate::render::{physical_root, render};
use crate::stats::{Counters, LiveToken};

/// How a commit recomputes views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// Only views that can see a changed region, only the changed windows, only the
    /// listeners of changed address spaces.
    #[default]
    Scoped,
    /// QEMU's behaviour: every view re-rendered, every listener called.
    Full,
}

/// A region whose contents changed inside `[lo, hi)` of its own coordinates.
pub(crate) type Touch = (RegionId, u128, u128);

/// One listener callback.
pub(crate) enum Call {
    Begin,
    Commit,
    Add(Arc<Section>),
    Del(Arc<Section>),
    Nop(Arc<Section>),
    LogStart(Arc<Section>, DirtyMask, DirtyMask),
    LogStop(Arc<Section>, DirtyMask, DirtyMask),
    LogSync(Arc<Section>),
    EventfdAdd(IoEventFd),
    EventfdDel(IoEventFd),
    CoalescedAdd(Arc<Section>, u64, u64),
    CoalescedDel(Arc<Section>, u64, u64),
    GlobalStop,
}

/// A callback bound to its listener.
pub(crate) struct Event(pub Arc<dyn MemoryListener>, pub Call);

impl Event {
    pub fn deliver(&self) {
        let l = &*self.0;
        match &self.1 {
            Call::Begin => l.begin(),
            Call::Commit => l.commit(),
            Call::Add(s) => l.region_add(s),
            Call::Del(s) => l.region_del(s),
            Call::Nop(s) => l.region_nop(s),
            Call::LogStart(s, o, n) => l.log_start(s, *o, *n),
            Call::LogStop(s, o, n) => l.log_stop(s, *o, *n),
            Call::LogSync(s) => l.log_sync(s),
            Call::EventfdAdd(e) => l.eventfd_add(e),
            Call::EventfdDel(e) => l.eventfd_del(e),
            Call::CoalescedAdd(s, a, n) => l.coalesced_io_add(s, crate::GuestAddr(*a), *n),
            Call::CoalescedDel(s, a, n) => l.coalesced_io_del(s, crate::GuestAddr(*a), *n),
            Call::GlobalStop => l.log_global_stop(),
        }
    }
}

/// What a commit must do once the state is released: events before publication, the
/// publications, events after.
#[derive(Default)]
pub(crate) struct Delivery {
    pub pre: Vec<Event>,
    pub publish: Vec<(Arc<ViewCell>, Arc<FlatView>)>,
    pub post: Vec<Event>,
}

/// A listener registered on one space.
#[derive(Clone)]
pub(crate) struct Registered {
    /// Registration number: the order among equal priorities.
    pub id: u64,
    pub priority: u32,
    pub listener: Arc<dyn MemoryListener>,
}

/// Windows past this many per region are folded into their bounding window.
const MAX_WINDOWS: usize = 16;

/// Carries each touched window up through containers and aliases. Returns, for every region
/// that can see a change, the changed windows in its coordinates (sorted, merged).
///
/// Mutations propagate at once, against the graph as it is then: a later change of the
/// structure above (a move, a removal) is itself a touch that covers what it disturbs.
pub(crate) fn propagate(g: &Graph, seeds: &[Touch], win: &mut Windows) {
    let mut stack: Vec<(RegionId, u128, u128, bool)> = seeds.iter().map(|&(id, lo, hi)| (id, lo, hi, true)).collect();
    while let Some((id, lo, hi, seed)) = stack.pop() {
        let Ok(n) = g.get(id) else { continue };
        // Below a disabled region nothing is visible (a region whose own flag changed is a
        // seed, and its old contents must go); such a region is not recorded, so that
        // enabling it later in the transaction propagates in full.
        if !seed && !n.enabled {
            continue;
        }
        // An empty window still matters: a region's structure decides physical roots.
        // A seed always propagates (the structure above it may have changed since it was
        // last seen); a region reached from below only carries news.
        let seen = win.contains_key(&id);
        let list = win.entry(id).or_default();
        let covered = if lo >= hi {
            seen
        } else if list.iter().any(|&(a, b)| a <= lo && hi <= b) {
            true
        } else {
            list.push((lo, hi));
            false
        };
        if covered && !seed {
            continue;
        }
        if list.len() > MAX_WINDOWS {
            let bound = list.iter().fold((u128::MAX, 0), |(a, b), &(l, h)| (a.min(l), b.max(h)));
            *list = vec![bound];
        }
        if let Some(p) = n.container {
            let base = u128::from(n.addr);
            let psize = g.node(p).size;
            stack.push((p, lo.saturating_add(base), hi.saturating_add(base).min(psize), false));
        }
        for &a in &n.aliases {
            let an = g.node(a);
            if let Body::Alias { offset, .. } = an.body {
                let off = u128::from(offset);
                stack.push((a, lo.saturating_sub(off), hi.saturating_sub(off).min(an.size), false));
            }
        }
    }
}

/// Changed windows per region, accumulated over a transaction.
pub(crate) type Windows = HashMap<RegionId, Vec<(u128, u128)>>;

/// A view's update in this commit.
struct Update {
    new: Arc<FlatView>,
    /// The diff against the previous view of the same root, if it was patched.
    changes: Option<Arc<Vec<Change>>>,
    old: Option<Arc<FlatView>>,
}

fn make_view(g: &Graph, counters: &Arc<Counters>, key: Option<RegionId>, ranges: Vec<FlatRange>) -> Arc<FlatView> {
    let name = key.map(|r| g.node(r).name.clone());
    Arc::new(FlatView::new(key, name, ranges, LiveToken::new(counters)))
}

pub(crate) fn render_view(g: &Graph, counters: &Arc<Counters>, key: Option<RegionId>) -> Arc<FlatView> {
    counters.renders.fetch_add(1, Ordering::Relaxed);
    make_view(g, counters, key, render(g, key))
}

/// The ioeventfds visible in `view`, with absolute addresses, sorted.
pub(crate) fn view_eventfds(g: &Graph, view: &FlatView) -> Vec<IoEventFd> {
    let mut out = Vec::new();
    for r in view.ranges() {
        let Ok(n) = g.get(r.region()) else { continue };
        for e in &n.eventfds {
            let abs = i128::from(e.addr) + i128::from(r.start) - i128::from(r.offset);
            let end = abs + i128::from(e.size.max(1));
            if abs < r.end() as i128 && i128::from(r.start) < end && abs >= 0 {
                out.push(IoEventFd {
                    addr: abs as u64,
                    ..e.clone()
                });
            }
        }
    }
    out.sort();
    out
}

fn section(sp: &SpaceRecord, r: &FlatRange) -> Arc<Section> {
    Arc::new(Section {
        space: sp.name.clone(),
        space_id: sp.id,
        range: r.clone(),
    })
}

/// Coalesced ranges of the section's region, intersected with it, in space addresses.
fn coalesced(g: &Graph, s: &Section) -> Vec<(u64, u64)> {
    let Ok(n) = g.get(s.region()) else { return Vec::new() };
    let r = &s.range;
    n.coalesced
        .iter()
        .filter_map(|&(off, size)| {
            let lo = (i128::from(off) + i128::from(r.start) - i128::from(r.offset)).max(i128::from(r.start));
            let hi =
                (i128::from(off) + i128::from(size) + i128::from(r.start) - i128::from(r.offset)).min(r.end() as i128);
            (lo < hi).then(|| (lo as u64, (hi - lo) as u64))
        })
        .collect()
}

/// Pushes `call(section)` for every listener, forward or in reverse.
fn each(out: &mut Vec<Event>, ls: &[Registered], reverse: bool, mut call: impl FnMut() -> Call) {
    if reverse {
        out.extend(ls.iter().rev().map(|l| Event(l.listener.clone(), call())));
    } else {
        out.extend(ls.iter().map(|l| Event(l.listener.clone(), call())));
    }
}

pub(crate) fn coalesced_events(out: &mut Vec<Event>, g: &Graph, ls: &[Registered], s: &Arc<Section>, add: bool) {
    for (a, n) in coalesced(g, s) {
        if add {
            each(out, ls, false, || Call::CoalescedAdd(s.clone(), a, n));
        } else {
            each(out, ls, true, || Call::CoalescedDel(s.clone(), a, n));
        }
    }
}

/// QEMU's two passes for one space: deletions (reverse listener order), then unchanged
/// ranges and additions in address order (forward; `log_stop` in reverse).
pub(crate) fn space_events(
    out: &mut Vec<Event>,
    g: &Graph,
    sp: &SpaceRecord,
    old: &[FlatRange],
    new: &[FlatRange],
    changes: &[Change],
) {
    let ls = &sp.listeners[..];
    let nop: Vec<Registered> = ls.iter().filter(|l| l.listener.wants_region_nop()).cloned().collect();
    for c in changes {
        if let Change::Del(i) = *c {
            let s = section(sp, &old[i]);
            coalesced_events(out, g, ls, &s, false);
            each(out, ls, true, || Call::Del(s.clone()));
        }
    }
    for c in changes {
        match *c {
            Change::Same(i, j) => {
                let (o, n) = (old[i].dirty, new[j].dirty);
                if nop.is_empty() && o == n {
                    continue;
                }
                let s = section(sp, &new[j]);
                each(out, &nop, false, || Call::Nop(s.clone()));
                if !n.without(o).is_empty() {
                    each(out, ls, false, || Call::LogStart(s.clone(), o, n));
                }
                if !o.without(n).is_empty() {
                    each(out, ls, true, || Call::LogStop(s.clone(), o, n));
                }
            }
            Change::Add(j) => {
                let s = section(sp, &new[j]);
                each(out, ls, false, || Call::Add(s.clone()));
                coalesced_events(out, g, ls, &s, true);
            }
            Change::Del(_) => {}
        }
    }
}

/// QEMU's ioeventfd walk: one merged pass, `eventfd_del` forward and `eventfd_add` in
/// reverse listener order (QEMU's order, the opposite of the region convention).
pub(crate) fn eventfd_events(out: &mut Vec<Event>, ls: &[Registered], old: &[IoEventFd], new: &[IoEventFd]) {
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if j == new.len() || (i < old.len() && old[i] < new[j]) {
            each(out, ls, false, || Call::EventfdDel(old[i].clone()));
            i += 1;
        } else if i == old.len() || new[j] < old[i] {
            each(out, ls, true, || Call::EventfdAdd(new[j].clone()));
            j += 1;
        } else {
            i += 1;
            j += 1;
        }
    }
}

fn space_index(spaces: &[SpaceRecord], id: u64) -> usize {
    spaces
        .binary_search_by_key(&id, |s| s.id)
        .expect("space ids index the space list")
}

/// Plans the outermost commit of a transaction.
pub(crate) fn plan(st: &mut State, counters: &Arc<Counters>) -> Delivery {
    let mut win = std::mem::take(&mut st.touched);
    for list in win.values_mut() {
        merge_windows(list);
    }
    let moved_roots = std::mem::take(&mut st.moved);
    let ev_touched = std::mem::take(&mut st.eventfd_touched);
    let full = st.mode == CommitMode::Full || std::mem::take(&mut st.touch_all);
    let mut d = Delivery::default();
    if !full && win.is_empty() && ev_touched.is_empty() && moved_roots.is_empty() {
        return d;
    }
    let g = &st.graph;
    if full {
        win.clear();
    }
    for &r in &moved_roots {
        if g.get(r).is_ok() {
            win.entry(r).or_default();
        }
    }

    // 1. Spaces whose root can see a change may simplify to another physical root.
    let candidates: Vec<usize> = if full {
        (0..st.spaces.len()).collect()
    } else {
        let mut c: Vec<usize> = win
            .keys()
            .filter(|r| g.node(**r).space_users > 0)
            .flat_map(|r| st.by_root.get(r).into_iter().flatten())
            .map(|&id| space_index(&st.spaces, id))
            .collect();
        c.sort_unstable();
        c
    };
    let mut moved: Vec<(usize, Option<RegionId>)> = Vec::new();
    for idx in candidates {
        let key = physical_root(g, st.spaces[idx].root);
        if key != st.spaces[idx].key {
            moved.push((idx, st.spaces[idx].key));
            st.spaces[idx].key = key;
        }
    }

    // 2. New views: patched where only windows changed, rendered where new.
    let mut updates: HashMap<Option<RegionId>, Update> = HashMap::new();
    if full {
        for sp in &st.spaces {
            if sp.key.is_some() && !updates.contains_key(&sp.key) {
                let old = st.views.get(&sp.key).map(|e| e.view.clone());
                let new = render_view(g, counters, sp.key);
                updates.insert(
                    sp.key,
                    Update {
                        new,
                        changes: None,
                        old,
                    },
                );
            }
        }
    } else {
        for (key, entry) in &st.views {
            let Some(root) = *key else { continue };
            let Some(w) = win.get(&root) else { continue };
            if w.is_empty() && !moved_roots.contains(&root) {
                continue;
            }
            let old = &entry.view;
            // A view shows its root at the root's own address; a root that moved is rendered
            // afresh.
            let base = u128::from(g.node(root).addr);
            let top = crate::SIZE_2_64;
            let w: Vec<(u128, u128)> = w
                .iter()
                .map(|&(lo, hi)| ((lo + base).min(top), (hi + base).min(top)))
                .filter(|&(lo, hi)| lo < hi)
                .collect();
            let spliced = if moved_roots.contains(&root) {
                None
            } else {
                splice(g, root, old.ranges(), &w)
            };
            let u = match spliced {
                Some((ranges, patches)) => {
                    counters.patches.fetch_add(1, Ordering::Relaxed);
                    let changes = diff_patches(old.ranges(), &ranges, &patches);
                    if !is_change(&changes, old.ranges(), &ranges) {
                        continue;
                    }
                    Update {
                        new: make_view(g, counters, *key, ranges),
                        changes: Some(Arc::new(changes)),
                        old: Some(old.clone()),
                    }
                }
                None => Update {
                    new: render_view(g, counters, *key),
                    changes: None,
                    old: Some(old.clone()),
                },
            };
            updates.insert(*key, u);
        }
        for &(idx, _) in &moved {
            let key = st.spaces[idx].key;
            if !st.views.contains_key(&key) && !updates.contains_key(&key) {
                let new = render_view(g, counters, key);
                updates.insert(
                    key,
                    Update {
                        new,
                        changes: None,
                        old: None,
                    },
                );
            }
        }
    }

    // 3. The view table: new views in, spaces moved between entries, unused entries out.
    let eventfds_live = st.eventfd_regs > 0;
    for (key, u) in &updates {
        let entry = st.views.entry(*key).or_insert_with(|| crate::memory::ViewEntry {
            view: u.new.clone(),
            spaces: Vec::new(),
            eventfds: Arc::default(),
        });
        entry.view = u.new.clone();
        if eventfds_live || !entry.eventfds.is_empty() {
            entry.eventfds = Arc::new(view_eventfds(&st.graph, &entry.view));
        }
    }
    for &(idx, old_key) in &moved {
        let id = st.spaces[idx].id;
        if let Some(e) = st.views.get_mut(&old_key) {
            e.spaces.retain(|&s| s != id);
        }
        let e = st.views.get_mut(&st.spaces[idx].key).expect("moved spaces have a view");
        let pos = e.spaces.partition_point(|&s| s < id);
        e.spaces.insert(pos, id);
    }
    st.views.retain(|k, e| k.is_none() || !e.spaces.is_empty());
    // Registrations changed without a re-render: recompute the lists of views that see them.
    let mut ev_keys: Vec<Option<RegionId>> = Vec::new();
    if !ev_touched.is_empty() {
        let seeds: Vec<Touch> = ev_touched
            .iter()
            .filter_map(|&r| st.graph.get(r).ok().map(|n| (r, 0, n.size)))
            .collect();
        let mut reach = Windows::new();
        propagate(&st.graph, &seeds, &mut reach);
        for (key, entry) in st.views.iter_mut() {
            if key.is_some_and(|k| reach.contains_key(&k)) && !updates.contains_key(key) {
                entry.eventfds = Arc::new(view_eventfds(&st.graph, &entry.view));
                ev_keys.push(*key);
            }
        }
    }

    // 4. Spaces to publish and notify, in creation order.
    let mut affected: Vec<usize> = moved.iter().map(|&(i, _)| i).collect();
    for key in updates.keys().chain(ev_keys.iter()) {
        if let Some(e) = st.views.get(key) {
            affected.extend(e.spaces.iter().map(|&id| space_index(&st.spaces, id)));
        }
    }
    affected.sort_unstable();
    affected.dedup();
    let mut begin: Vec<Registered> = Vec::new();
    let mut diffs: HashMap<(usize, usize), Arc<Vec<Change>>> = HashMap::new();
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
        if !Arc::ptr_eq(&sp.view, &new) {
            d.publish.push((sp.cell.clone(), new.clone()));
            if !sp.listeners.is_empty() {
                begin.extend(sp.listeners.iter().cloned());
                let wants_nop = sp.listeners.iter().any(|l| l.listener.wants_region_nop());
                let patched = updates
                    .get(&sp.key)
                    .filter(|u| u.old.as_ref().is_some_and(|o| Arc::ptr_eq(o, &sp.view)))
                    .and_then(|u| u.changes.clone());
                let changes = match patched {
                    Some(c) if !wants_nop => c,
                    _ => diffs
                        .entry((Arc::as_ptr(&sp.view) as usize, Arc::as_ptr(&new) as usize))
                        .or_insert_with(|| Arc::new(diff(sp.view.ranges(), new.ranges())))
                        .clone(),
                };
                space_events(&mut d.pre, g, sp, sp.view.ranges(), new.ranges(), &changes);
            }
            sp.view = new;
        }
        if !Arc::ptr_eq(&sp.eventfds, &entry.eventfds) {
            if !sp.listeners.is_empty() && sp.eventfds[..] != entry.eventfds[..] {
                eventfd_events(&mut d.pre, &sp.listeners, &sp.eventfds, &entry.eventfds);
            }
            sp.eventfds = entry.eventfds.clone();
        }
    }
    if full {
        // QEMU brackets every commit with begin/commit on every listener.
        for sp in spaces.iter() {
            begin.extend(sp.listeners.iter().cloned());
        }
    }
    begin.sort_by_key(|l| (l.priority, l.id));
    begin.dedup_by_key(|l| l.id);
    let mut pre: Vec<Event> = begin.iter().map(|l| Event(l.listener.clone(), Call::Begin)).collect();
    pre.append(&mut d.pre);
    d.pre = pre;
    d.post = begin.iter().map(|l| Event(l.listener.clone(), Call::Commit)).collect();
    counters.commits.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(views = updates.len(), "memory topology committed");
    d
}
