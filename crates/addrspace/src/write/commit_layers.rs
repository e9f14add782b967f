//! The commit step for layered views (see [`crate::view::layer`]): views that borrow another
//! view's ranges are built after every other view of the commit, over the borrowed view as it
//! is after the commit, and their listeners hear only where they changed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::base::idmap::IdMap;
use crate::base::stats::{Counters, LiveToken};
use crate::model::graph::Graph;
use crate::model::region::RegionId;
use crate::view::flatview::FlatView;
use crate::view::layer::{base_of, build, diff as layer_diff, rebase};
use crate::view::patch::{delta, diff, Delta};
use crate::write::delivery::Diff;
use crate::write::state::Views;
use crate::write::update::{patch_view, render_view, Update, Updates};

/// A view whose root may be layered over another view, built once the others are.
pub(crate) struct Deferred {
    pub root: RegionId,
    pub old: Option<Arc<FlatView>>,
    /// Changed windows (absolute addresses); none when rebuilt whole.
    pub windows: Vec<(u128, u128)>,
    /// Rendered in full if not layered (new, moved, or re-rendered in full mode).
    pub moved: bool,
    /// Only an attempt to borrow a view that exists now: if it fails, the old view stays.
    pub optional: bool,
}

impl Deferred {
    /// `root`'s view built anew.
    pub fn rebuild(root: RegionId, old: Option<Arc<FlatView>>) -> Deferred {
        Deferred {
            root,
            old,
            windows: Vec::new(),
            moved: true,
            optional: false,
        }
    }
}

/// Whether `root` shows the root of an existing view whole under private windows, so its
/// view may be layered over that view.
pub(crate) fn layerable(g: &Graph, views: &Views, root: RegionId) -> bool {
    base_of(g, root).is_some_and(|(_, t)| views.contains_key(&Some(t)))
}

/// Whether `view` is layered over the current view of its base.
pub(crate) fn borrows_current(g: &Graph, views: &Views, view: &FlatView) -> bool {
    let (Some(base), Some(root)) = (view.base(), view.root()) else {
        return false;
    };
    base_of(g, root)
        .and_then(|(_, t)| views.get(&Some(t)))
        .is_some_and(|e| Arc::ptr_eq(&e.view, base))
}

/// The view of a space created outside a commit: layered over an existing view if its root
/// allows, rendered otherwise.
pub(crate) fn new_view(g: &Graph, counters: &Arc<Counters>, key: Option<RegionId>, views: &Views) -> Arc<FlatView> {
    key.and_then(|root| layered_view(g, counters, root, &IdMap::default(), views, &[], None))
        .unwrap_or_else(|| render_view(g, counters, key))
}

/// The view of `root` as private windows over the view its base alias shows, if that view is
/// current after this commit and layering pays; reusing `previous` (the old view and the
/// windows this commit changed) when its windows' neighbourhood did not change.
fn layered_view(
    g: &Graph,
    counters: &Arc<Counters>,
    root: RegionId,
    updates: &Updates,
    views: &Views,
    abandoned: &[Option<RegionId>],
    previous: Option<(&FlatView, &[(u128, u128)])>,
) -> Option<Arc<FlatView>> {
    let (alias, target) = base_of(g, root)?;
    let key = Some(target);
    if abandoned.contains(&key) {
        return None;
    }
    let base = match updates.get(&key) {
        Some(u) => &u.new,
        None => &views.get(&key)?.view,
    };
    let rebased = previous.and_then(|(old, touched)| rebase(g, root, alias, old, base, touched));
    let (own, layer) = match rebased {
        Some(r) => r,
        None => build(g, root, alias, base)?,
    };
    counters.layers.fetch_add(1, Ordering::Relaxed);
    let name = Some(g.node(root).name.clone());
    Some(Arc::new(FlatView::with_layer(
        Some(root),
        name,
        own,
        Some(Box::new(layer)),
        LiveToken::new(counters),
    )))
}

/// Builds the deferred views into `updates`, a borrowed view before the views borrowing it.
/// A view that cannot be layered is patched (scoped) or rendered (`full`) like any other.
pub(crate) fn build_deferred(
    g: &Graph,
    counters: &Arc<Counters>,
    full: bool,
    mut layered: Vec<Deferred>,
    updates: &mut Updates,
    views: &Views,
    abandoned: &[Option<RegionId>],
) {
    let deferred: IdMap<RegionId, ()> = layered.iter().map(|d| (d.root, ())).collect();
    let depth = |mut r: RegionId| {
        let mut d = 0;
        while let Some((_, t)) = base_of(g, r).filter(|&(_, t)| deferred.contains_key(&t) && d < deferred.len()) {
            (r, d) = (t, d + 1);
        }
        d
    };
    layered.sort_by_cached_key(|d| depth(d.root));
    for d in layered {
        let previous = d.old.as_deref().filter(|_| !d.moved).map(|o| (o, &d.windows[..]));
        let new = match layered_view(g, counters, d.root, updates, views, abandoned, previous) {
            Some(v) => v,
            None if d.optional => continue,
            None => match &d.old {
                Some(old) if !full => {
                    if let Some(u) = patch_view(g, counters, d.root, old, &d.windows, d.moved) {
                        updates.insert(Some(d.root), u);
                    }
                    continue;
                }
                _ => render_view(g, counters, Some(d.root)),
            },
        };
        let Some(old) = d.old else {
            updates.insert(Some(d.root), Update::new(new, None));
            continue;
        };
        // Over the base's update, where the two layered views can differ is known.
        let base_update = new
            .base()
            .and_then(|b| b.root())
            .and_then(|r| updates.get(&Some(r)))
            .and_then(|u| Some((u.old.as_ref()?, &u.new, u.patches.as_deref()?)));
        let changes = layer_diff(&old, &new, base_update).unwrap_or_else(|| diff(old.ranges(), new.ranges()));
        let kind = delta(&changes, old.ranges(), new.ranges());
        if kind != Delta::Heard {
            // Unchanged for listeners, but new priorities, a copy (a space created inside a
            // transaction renders one) or a layer over an older base view are worth
            // replacing quietly.
            let base = |v: &FlatView| v.base().map(Arc::as_ptr);
            if kind == Delta::Quiet || (new.base().is_some() && base(&old) != base(&new)) {
                updates.insert(Some(d.root), Update::quiet(new, Some(old)));
            }
            continue;
        }
        let diff = Diff::new(g, old.ranges(), new.ranges(), changes);
        let u = Update {
            changes: Some(Arc::new(diff)),
            ..Update::new(new, Some(old))
        };
        updates.insert(Some(d.root), u);
    }
}
