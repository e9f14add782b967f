//! A view's update in a commit, and the ways to make one: render a root in full, or splice
//! the changed windows into its previous view (with the diff listeners will hear).
//!
//! Shared by the commit planner and by the builder of layered views, which both produce
//! updates and neither of which owns the other.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::base::idmap::IdMap;
use crate::base::ioeventfd::IoEventFd;
use crate::base::stats::{Counters, LiveToken};
use crate::model::graph::Graph;
use crate::model::region::RegionId;
use crate::view::flatview::{Cursor, Edit, FlatRange, FlatView, Ranges};
use crate::view::patch::{delta, diff_patches, splice, Delta, Patch};
use crate::view::render::render;
use crate::write::delivery::Diff;

/// A view's update in this commit.
pub(crate) struct Update {
    pub new: Arc<FlatView>,
    /// The diff against the previous view of the same root, if it was patched.
    pub changes: Option<Arc<Diff>>,
    pub old: Option<Arc<FlatView>>,
    /// The same ranges as `old`, stored differently (a copy replaced by a layered view, or a
    /// layered view moved to its base's newer view), or ranges that differ only in priority:
    /// published, but nobody is told.
    pub silent: bool,
    /// Where a spliced view differs from `old` (so views layered over it can tell where
    /// they differ too).
    pub patches: Option<Vec<Patch>>,
}

impl Update {
    /// A view published without telling anybody (see `silent`).
    pub fn quiet(new: Arc<FlatView>, old: Option<Arc<FlatView>>) -> Update {
        Update {
            silent: true,
            ..Update::new(new, old)
        }
    }

    /// A new view; listeners get the diff computed when delivering.
    pub fn new(new: Arc<FlatView>, old: Option<Arc<FlatView>>) -> Update {
        Update {
            new,
            changes: None,
            old,
            silent: false,
            patches: None,
        }
    }
}

/// The views to update in a commit.
pub(crate) type Updates = IdMap<Option<RegionId>, Update>;

pub(crate) fn make_view(
    g: &Graph,
    counters: &Arc<Counters>,
    key: Option<RegionId>,
    ranges: Vec<FlatRange>,
) -> Arc<FlatView> {
    let name = key.map(|r| g.node(r).name.clone());
    Arc::new(FlatView::new(key, name, ranges, LiveToken::new(counters)))
}

pub(crate) fn render_view(g: &Graph, counters: &Arc<Counters>, key: Option<RegionId>) -> Arc<FlatView> {
    counters.renders.fetch_add(1, Ordering::Relaxed);
    make_view(g, counters, key, render(g, key))
}

/// The update of `old`, the view of `root`, after changes inside `windows`: spliced (`None`
/// if nothing a listener hears about changed), or rendered in full if `render` or if the
/// splice cannot decide a seam.
pub(crate) fn patch_view(
    g: &Graph,
    counters: &Arc<Counters>,
    root: RegionId,
    old: &Arc<FlatView>,
    windows: &[(u128, u128)],
    render: bool,
) -> Option<Update> {
    let spliced = match old.layer {
        None if !render => splice(g, root, old.ranges(), windows),
        _ => None,
    };
    let Some((edits, patches)) = spliced else {
        return Some(Update::new(render_view(g, counters, Some(root)), Some(old.clone())));
    };
    counters.patches.fetch_add(1, Ordering::Relaxed);
    // Most patches of views that merely see a changed region's neighbourhood change nothing:
    // tell before building anything.
    if unchanged(old.ranges(), &edits) {
        return None;
    }
    // Chunks the edits do not touch are shared with the old view.
    let name = Some(g.node(root).name.clone());
    let body = old.body.edited(&edits);
    let new = Arc::new(FlatView::with_body(
        Some(root),
        name,
        body,
        None,
        LiveToken::new(counters),
    ));
    let changes = diff_patches(old.ranges(), new.ranges(), &patches);
    // Not `Unchanged` (told above): a priority-only change is published without a word.
    let silent = delta(&changes, old.ranges(), new.ranges()) == Delta::Quiet;
    let diff = Diff::new(g, old.ranges(), new.ranges(), changes);
    Some(Update {
        new,
        changes: Some(Arc::new(diff)),
        old: Some(old.clone()),
        silent,
        patches: Some(patches),
    })
}

/// Whether `edits` of `old` give back the same ranges, down to what only `info mtree -f`
/// prints (dirty masks and priorities too): then no listener hears anything and nothing is
/// published (see [`Delta::Unchanged`]).
fn unchanged(old: Ranges<'_>, edits: &[Edit]) -> bool {
    let mut at = Cursor::new(old);
    edits.iter().all(|e| {
        e.old.len() == e.new.len()
            && e.old.clone().zip(&e.new).all(|(i, n)| {
                let o = at.at(i);
                o == n && o.dirty == n.dirty && o.priority == n.priority
            })
    })
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
