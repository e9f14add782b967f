//! Carrying a change up to the views that can see it.
//!
//! Every mutation records the region it changed and the window (in that region's own
//! coordinates) that may look different now. [`propagate`] carries each window up the
//! reverse edges — a region's container, and the aliases of a region — translating and
//! clipping it at every step, and records it at each region that roots a rendered view, so a
//! commit re-renders only those windows of only those views.

use crate::base::idmap::IdMap;
use crate::model::graph::Graph;
use crate::model::region::{Body, RegionId};
use crate::view::patch::merge_windows;

/// A region whose contents changed inside `[lo, hi)` of its own coordinates.
pub(crate) type Touch = (RegionId, u128, u128);

/// Windows past this many per region are folded into their bounding window.
const MAX_WINDOWS: usize = 16;

/// Regions with at least this many aliases keep the list of those that lead somewhere.
const MANY_ALIASES: usize = 16;

/// Per-region marks for [`propagate`], kept for a whole transaction (no hashing, no
/// allocation per region visited).
#[derive(Default)]
pub(crate) struct Scratch {
    stamp: u32,
    /// (stamp of the last visit, generation of the region then, the last window carried up
    /// from it)
    marks: Vec<(u32, u32, u128, u128)>,
    /// For regions with [`MANY_ALIASES`] or more: the aliases that lead somewhere
    /// (`Graph::alias_leads_somewhere`), and the `Graph::alias_epoch` they were found at.
    live_aliases: IdMap<RegionId, (u64, Vec<RegionId>)>,
}

impl Scratch {
    /// The aliases of `id` that lead somewhere, found again only if the graph's alias epoch
    /// moved since the last time.
    fn live_aliases(&mut self, g: &Graph, id: RegionId) -> &[RegionId] {
        let (epoch, list) = self.live_aliases.entry(id).or_insert((u64::MAX, Vec::new()));
        if *epoch != g.alias_epoch {
            list.clear();
            list.extend(
                g.node(id)
                    .aliases
                    .iter()
                    .copied()
                    .filter(|&a| g.alias_leads_somewhere(a)),
            );
            *epoch = g.alias_epoch;
        }
        list
    }

    /// Starts a new scope: marks from earlier calls no longer count.
    pub fn begin(&mut self) {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.marks.clear();
            self.stamp = 1;
        }
    }
}

/// Region visits one [`propagate`] call may make before it gives up (the caller then renders
/// every view again at the commit); only graphs with many cycles through aliases come near it.
const MAX_PROPAGATION_STEPS: usize = 1 << 22;

/// Carries each touched window up through containers and aliases, recording in `win` the
/// windows (in its own coordinates) that reach each root of a rendered view (`Node::view_key`).
/// Returns `false` if it gave up (see [`MAX_PROPAGATION_STEPS`]).
///
/// Mutations propagate at once, against the graph as it is then: a later change of the
/// structure above (a move, a removal) is itself a touch that covers what it disturbs. So a
/// window already carried up from a region in the same scope (a transaction: see
/// [`Scratch::begin`]) need not be carried again — which makes building a tree 20 000 levels
/// deep, one mapping at a time, linear rather than quadratic. Through an alias into an
/// ancestor the walk comes back to regions it has seen, with a shifted window; it ends
/// because the windows are clipped at every step, exactly as rendering ends.
pub(crate) fn propagate(g: &Graph, scratch: &mut Scratch, seeds: &[Touch], win: &mut Windows) -> bool {
    if scratch.stamp == 0 {
        scratch.begin();
    }
    scratch.marks.resize(g.capacity(), (0, 0, 0, 0));
    let stamp = scratch.stamp;
    let mut steps = 0;
    let mut stack: Vec<(RegionId, u128, u128, bool)> = seeds.iter().map(|&(id, lo, hi)| (id, lo, hi, true)).collect();
    while let Some((id, lo, hi, seed)) = stack.pop() {
        steps += 1;
        if steps > MAX_PROPAGATION_STEPS {
            return false;
        }
        let Ok(n) = g.get(id) else { continue };
        // Below a disabled region nothing is visible (a region whose own flag changed is a
        // seed, and its old contents must go).
        if !seed && !n.enabled {
            continue;
        }
        let m = &mut scratch.marks[id.index as usize];
        if m.0 == stamp && m.1 == id.generation {
            let covered = lo >= hi || (m.2 <= lo && hi <= m.3);
            if covered && !seed {
                continue;
            }
            if lo < hi {
                // Remember the last window carried (a bounding box would claim to cover
                // gaps that were never carried up).
                (m.2, m.3) = (lo, hi);
            }
        } else {
            *m = (stamp, id.generation, lo, hi);
        }
        if lo < hi && n.view_key {
            let list = win.entry(id).or_default();
            list.push((lo, hi));
            if list.len() > MAX_WINDOWS {
                merge_windows(list);
                if list.len() > MAX_WINDOWS {
                    let bound = (list[0].0, list[list.len() - 1].1);
                    *list = vec![bound];
                }
            }
        }
        if let Some(p) = n.container {
            let base = u128::from(n.addr);
            let psize = g.node(p).size;
            stack.push((p, lo.saturating_add(base), hi.saturating_add(base).min(psize), false));
        }
        // A disabled alias shows nothing (the walk would stop there anyway: it is not a seed),
        // and an alias that leads nowhere a view can see (not a view root, not aliased, in a
        // container that is a dead end too — a bus-master container, say) is skipped. Both
        // are what N devices' bus-master aliases of system memory are, with bus mastering off
        // and on: no stack traffic for them, and for a region with many aliases not even a
        // look at each (the list of the others is kept while the graph's aliases stay put).
        let cached = n.aliases.len() >= MANY_ALIASES;
        let aliases = if cached {
            scratch.live_aliases(g, id)
        } else {
            &n.aliases[..]
        };
        for &a in aliases {
            if !cached && !g.alias_leads_somewhere(a) {
                continue;
            }
            let an = g.node(a);
            if let Body::Alias { offset, .. } = an.body {
                let off = u128::from(offset);
                stack.push((a, lo.saturating_sub(off), hi.saturating_sub(off).min(an.size), false));
            }
        }
    }
    true
}

/// Changed windows per region, accumulated over a transaction.
pub(crate) type Windows = IdMap<RegionId, Vec<(u128, u128)>>;
