//! Which aliases of a region can carry a change to a view root, and when that may change.
//!
//! A change inside `system` must reach the views that show it through aliases, but on a
//! booted q35 machine `system` has one alias per bus-master space, and almost all of them lead
//! nowhere a view is rooted (the bus-master container simplifies onto `system` itself).
//! Propagation skips such dead ends ([`Graph::alias_leads_somewhere`]); for a region with many
//! aliases it keeps the list of the others between commits, valid while
//! [`Graph::alias_epoch`] has not moved. The epoch moves on everything the test reads: an
//! alias created, deleted, enabled or disabled; an alias, or a region holding one, mapped or
//! unmapped; a view root added or dropped ([`Graph::set_view_key`]).

use crate::model::graph::Graph;
use crate::model::region::{Body, Node, RegionId};

impl Graph {
    /// Whether alias `a` can lead a change to a view root: it is enabled and it, or its
    /// container, is a view root, aliased, or (for the container) mapped somewhere.
    pub fn alias_leads_somewhere(&self, a: RegionId) -> bool {
        let an = self.node(a);
        let dead_end = |x: &Node| !x.view_key && x.aliases.is_empty();
        an.enabled
            && !(dead_end(an)
                && an
                    .container
                    .is_none_or(|c| dead_end(self.node(c)) && self.node(c).container.is_none()))
    }

    /// Marks `id` as the root of a rendered view, or no longer.
    pub fn set_view_key(&mut self, id: RegionId, on: bool) {
        if let Ok(n) = self.get_mut(id) {
            if n.view_key != on {
                n.view_key = on;
                self.alias_epoch += 1;
            }
        }
    }

    /// `child` is about to be mapped or unmapped: if it is an alias or holds one, whether
    /// that alias leads somewhere may change.
    pub(super) fn alias_placement(&mut self, child: RegionId) {
        let n = self.node(child);
        let is_alias = |x: &Node| matches!(x.body, Body::Alias { .. });
        if is_alias(n) || n.subregions.iter().any(|&s| is_alias(self.node(s))) {
            self.alias_epoch += 1;
        }
    }
}
