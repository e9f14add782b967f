//! Delivering a commit to listeners: the callbacks a commit (or a registration replay)
//! produces, generated while delivering from a diff computed once per view, so that 256 CPUs
//! hearing the same change cost 256 calls, not 256 copies of it.
//!
//! A [`Delivery`] runs in order: queued [`Event`]s (`begin`, replays), each space's
//! [`SpaceUpdate`] (QEMU's two passes and the ioeventfd walk), the publications, then `commit`.

use std::sync::Arc;

use crate::base::dirty::DirtyMask;
use crate::model::graph::Graph;
use crate::view::flatview::{Cursor, FlatRange, FlatView, Ranges};
use crate::view::patch::Change;
use crate::write::listener::{IoEventFd, MemoryListener, Registered, Section};
use crate::write::state::Members;

/// A section that owns its data, for callbacks queued outside a commit's diff (replays,
/// log sync, coalescing changes).
pub(crate) struct Owned {
    pub space: Arc<str>,
    pub space_id: u64,
    pub range: FlatRange,
}

impl Owned {
    pub fn new(space: &Arc<str>, space_id: u64, r: &FlatRange) -> Arc<Owned> {
        Arc::new(Owned {
            space: space.clone(),
            space_id,
            range: r.clone(),
        })
    }
    fn get(&self) -> Section<'_> {
        Section {
            space: &self.space,
            space_id: self.space_id,
            range: &self.range,
        }
    }
}

/// One listener callback.
pub(crate) enum Call {
    Begin,
    Commit,
    LogSync(Arc<Owned>),
    EventfdAdd(IoEventFd),
    EventfdDel(IoEventFd),
    CoalescedAdd(Arc<Owned>, u64, u64),
    CoalescedDel(Arc<Owned>, u64, u64),
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
            Call::LogSync(s) => l.log_sync(&s.get()),
            Call::EventfdAdd(e) => l.eventfd_add(e),
            Call::EventfdDel(e) => l.eventfd_del(e),
            Call::CoalescedAdd(s, a, n) => l.coalesced_io_add(&s.get(), crate::base::addr::GuestAddr(*a), *n),
            Call::CoalescedDel(s, a, n) => l.coalesced_io_del(&s.get(), crate::base::addr::GuestAddr(*a), *n),
            Call::GlobalStop => l.log_global_stop(),
        }
    }
}

/// The diff between two views, computed once for every space that moves between them.
pub(crate) struct Diff {
    pub changes: Vec<Change>,
    /// Coalesced ranges (space addresses) of changed ranges, by index into `changes`.
    pub coalesced: Vec<(usize, Vec<(u64, u64)>)>,
}

impl Diff {
    /// No change.
    pub fn empty() -> Diff {
        Diff {
            changes: Vec::new(),
            coalesced: Vec::new(),
        }
    }

    /// The coalesced ranges of change `k` (none for most).
    fn coalesced_at(&self, k: usize) -> &[(u64, u64)] {
        match self.coalesced.binary_search_by_key(&k, |(i, _)| *i) {
            Ok(at) => &self.coalesced[at].1,
            Err(_) => &[],
        }
    }

    pub fn new(g: &Graph, old: Ranges<'_>, new: Ranges<'_>, changes: Vec<Change>) -> Diff {
        let mut coalesced = Vec::new();
        let changes_to_check = if g.any_coalesced { changes.len() } else { 0 };
        let (mut old, mut new) = (Cursor::new(old), Cursor::new(new));
        for (k, c) in changes.iter().enumerate().take(changes_to_check) {
            let r = match *c {
                Change::Del(i) => old.at(i),
                Change::Add(j) => new.at(j),
                Change::Same(..) => continue,
            };
            let c = coalesced_of(g, r);
            if !c.is_empty() {
                coalesced.push((k, c));
            }
        }
        Diff { changes, coalesced }
    }
}

/// A sorted ioeventfd list, shared between the views and spaces that have it.
pub(crate) type EventFds = Arc<Vec<IoEventFd>>;

/// One space's part of a commit: its listeners hear `diff` between `old` and `new`, and the
/// ioeventfd changes, generated while delivering (no per-callback allocation).
pub(crate) struct SpaceUpdate {
    pub name: Arc<str>,
    pub id: u64,
    pub listeners: Arc<Vec<Registered>>,
    pub old: Arc<FlatView>,
    pub new: Arc<FlatView>,
    pub diff: Arc<Diff>,
    /// The ioeventfds before and after, if they changed.
    pub eventfds: Option<(EventFds, EventFds)>,
    /// A registration replay: additions come with `log_start` from no clients, deletions
    /// after `log_stop` to none (QEMU's `listener_add/del_address_space`).
    pub replay: bool,
}

impl SpaceUpdate {
    /// QEMU's two passes: deletions (reverse listener order), then unchanged ranges and
    /// additions in address order (forward; `log_stop` in reverse); then the ioeventfd walk.
    /// Returns the number of callbacks made.
    pub fn deliver(&self) -> u64 {
        // Listeners that take no per-range calls hear only `begin`/`commit` (queued apart).
        let ranged: Vec<Registered>;
        let ls: &[Registered] = if self.listeners.iter().all(|l| l.sections) {
            &self.listeners
        } else {
            ranged = self.listeners.iter().filter(|l| l.sections).cloned().collect();
            &ranged
        };
        if ls.is_empty() {
            return 0;
        }
        let mut calls = 0u64;
        let sec = |r| Section {
            space: &self.name,
            space_id: self.id,
            range: r,
        };
        let (mut old, mut new) = (Cursor::new(self.old.ranges()), Cursor::new(self.new.ranges()));
        let coalesced_of = |k: usize| -> &[(u64, u64)] { self.diff.coalesced_at(k) };
        for (k, c) in self.diff.changes.iter().enumerate() {
            if let Change::Del(i) = *c {
                let r = old.at(i);
                let s = sec(r);
                let mask = r.dirty;
                if self.replay && !mask.is_empty() {
                    for l in ls.iter().rev() {
                        l.listener.log_stop(&s, mask, DirtyMask::NONE);
                        calls += 1;
                    }
                }
                for &(a, n) in coalesced_of(k) {
                    for l in ls.iter().rev() {
                        l.listener.coalesced_io_del(&s, crate::base::addr::GuestAddr(a), n);
                        calls += 1;
                    }
                }
                for l in ls.iter().rev() {
                    l.listener.region_del(&s);
                    calls += 1;
                }
            }
        }
        for (k, c) in self.diff.changes.iter().enumerate() {
            match *c {
                Change::Same(i, j) => {
                    let r = new.at(j);
                    let (o, n) = (old.at(i).dirty, r.dirty);
                    let s = sec(r);
                    for l in ls.iter().filter(|l| l.nop) {
                        l.listener.region_nop(&s);
                        calls += 1;
                    }
                    if !n.without(o).is_empty() {
                        for l in ls {
                            l.listener.log_start(&s, o, n);
                            calls += 1;
                        }
                    }
                    if !o.without(n).is_empty() {
                        for l in ls.iter().rev() {
                            l.listener.log_stop(&s, o, n);
                            calls += 1;
                        }
                    }
                }
                Change::Add(j) => {
                    let r = new.at(j);
                    let s = sec(r);
                    for l in ls {
                        l.listener.region_add(&s);
                        calls += 1;
                    }
                    for &(a, n) in coalesced_of(k) {
                        for l in ls {
                            l.listener.coalesced_io_add(&s, crate::base::addr::GuestAddr(a), n);
                            calls += 1;
                        }
                    }
                    let mask = r.dirty;
                    if self.replay && !mask.is_empty() {
                        for l in ls {
                            l.listener.log_start(&s, DirtyMask::NONE, mask);
                            calls += 1;
                        }
                    }
                }
                Change::Del(_) => {}
            }
        }
        if let Some((old, new)) = &self.eventfds {
            let mut ev = Vec::new();
            eventfd_events(&mut ev, ls, old, new);
            for e in &ev {
                e.deliver();
            }
            calls += ev.len() as u64;
        }
        calls
    }
}

/// What a commit must do once the state is released: `begin` and other queued events,
/// each space's changes, the publications, then `commit`.
#[derive(Default)]
pub(crate) struct Delivery {
    pub pre: Vec<Event>,
    pub spaces: Vec<SpaceUpdate>,
    /// The new view of each space whose view changed, stored in the space's cell.
    pub publish: Publications,
    pub post: Vec<Event>,
}

impl Delivery {
    /// Publishes the new views: one store per space, so each space's readers see its whole
    /// old view or its whole new one.
    pub fn publish_all(&mut self) {
        self.publish.run();
    }
}

/// A commit's publications: each view with the spaces to store it in (a view entry's whole
/// member list, shared, or one moved space). If a callback panics before they are made, they
/// are made as the delivery unwinds: readers then see the layout the memory system has
/// committed (the listeners' own records already moved on), never an older one.
#[derive(Default)]
pub(crate) struct Publications(pub Vec<(Members, Arc<FlatView>)>);

impl Publications {
    fn run(&mut self) {
        for (spaces, view) in self.0.drain(..) {
            crate::read::publish::publish(spaces.iter().map(|(_, cell)| (&**cell, view.clone())));
        }
    }
}

impl Drop for Publications {
    fn drop(&mut self) {
        self.run();
    }
}

/// Coalesced ranges of `r`'s region, intersected with it, in space addresses.
fn coalesced_of(g: &Graph, r: &FlatRange) -> Vec<(u64, u64)> {
    let Ok(n) = g.get(r.region()) else { return Vec::new() };
    n.coalesced
        .iter()
        .filter_map(|&(off, size)| {
            let shift = i128::from(r.start) - i128::from(r.offset);
            let lo = (i128::from(off) + shift).max(i128::from(r.start));
            let hi = (i128::from(off) + i128::from(size) + shift).min(r.end() as i128);
            (lo < hi).then(|| (lo as u64, (hi - lo) as u64))
        })
        .collect()
}

/// Pushes one call per listener, forward or in reverse.
fn each(out: &mut Vec<Event>, ls: &[Registered], reverse: bool, mut call: impl FnMut() -> Call) {
    if reverse {
        out.extend(ls.iter().rev().map(|l| Event(l.listener.clone(), call())));
    } else {
        out.extend(ls.iter().map(|l| Event(l.listener.clone(), call())));
    }
}

/// Queues the coalesced-MMIO additions or deletions of one section.
pub(crate) fn coalesced_events(out: &mut Vec<Event>, g: &Graph, ls: &[Registered], s: &Arc<Owned>, add: bool) {
    for (a, n) in coalesced_of(g, &s.range) {
        if add {
            each(out, ls, false, || Call::CoalescedAdd(s.clone(), a, n));
        } else {
            each(out, ls, true, || Call::CoalescedDel(s.clone(), a, n));
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
