//! Replays: a whole view told to one listener as additions (when it registers) or as
//! deletions (when it leaves, or when its space is destroyed), bracketed like a commit.

use std::sync::Arc;

use crate::model::graph::Graph;
use crate::view::flatview::FlatView;
use crate::write::delivery::{Call, Delivery, Diff, Event, SpaceUpdate};
use crate::write::listener::Registered;
use crate::write::state::SpaceRecord;

/// The replay of `sp`'s view for one listener (QEMU's `listener_add_address_space` /
/// `listener_del_address_space`): additions (with `log_start` for logged ranges) or deletions
/// (after `log_stop`), generated while delivering like a commit's changes.
pub(crate) fn replay(g: &Graph, sp: &SpaceRecord, l: &Registered, add: bool, empty: &Arc<FlatView>) -> SpaceUpdate {
    if l.sections {
        return whole_view(g, sp, Arc::new(vec![l.clone()]), add, true, empty);
    }
    // Nothing to replay to a listener that takes no per-range calls.
    SpaceUpdate {
        name: sp.name.clone(),
        id: sp.id,
        listeners: Arc::new(vec![l.clone()]),
        old: empty.clone(),
        new: empty.clone(),
        diff: Arc::new(Diff::empty()),
        eventfds: None,
        replay: true,
    }
}

/// `sp`'s whole view appearing (`add`) or disappearing for `listeners`; as a `replay`, with
/// QEMU's `log_start`/`log_stop` for logged ranges (a destroyed space's commit has none).
fn whole_view(
    g: &Graph,
    sp: &SpaceRecord,
    listeners: Arc<Vec<Registered>>,
    add: bool,
    replay: bool,
    empty: &Arc<FlatView>,
) -> SpaceUpdate {
    let n = sp.view.ranges().len();
    let none: crate::write::delivery::EventFds = Arc::default();
    let (old, new, changes, eventfds) = if add {
        let changes = (0..n).map(crate::view::patch::Change::Add).collect();
        (empty.clone(), sp.view.clone(), changes, (none, sp.eventfds.clone()))
    } else {
        let changes = (0..n).map(crate::view::patch::Change::Del).collect();
        (sp.view.clone(), empty.clone(), changes, (sp.eventfds.clone(), none))
    };
    let diff = Arc::new(Diff::new(g, old.ranges(), new.ranges(), changes));
    SpaceUpdate {
        name: sp.name.clone(),
        id: sp.id,
        listeners,
        old,
        new,
        diff,
        eventfds: Some(eventfds),
        replay,
    }
}

/// What the listeners of a destroyed space hear: its view disappearing.
pub(crate) fn teardown_events(g: &Graph, sp: &SpaceRecord, empty: &Arc<FlatView>) -> Delivery {
    let mut d = Delivery::default();
    if sp.listeners.is_empty() {
        return d;
    }
    d.pre
        .extend(sp.listeners.iter().map(|l| Event(l.listener.clone(), Call::Begin)));
    // Only listeners that take per-range calls hear each range go.
    let ranged: Vec<Registered> = sp.listeners.iter().filter(|l| l.sections).cloned().collect();
    if !ranged.is_empty() {
        d.spaces.push(whole_view(g, sp, Arc::new(ranged), false, false, empty));
    }
    d.post
        .extend(sp.listeners.iter().map(|l| Event(l.listener.clone(), Call::Commit)));
    d
}
