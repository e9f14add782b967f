//! Reachability in the region graph: which regions rendering can go to from which.
//!
//! Rendering goes from a region to its subregions and from an alias to its target
//! ([`successors`]); changes travel the other way (`predecessors`). A walk in both
//! directions at once answers "can this mapping close a cycle?" at the cost of the smaller
//! side.

use crate::model::graph::Graph;
use crate::model::region::{Body, RegionId};

/// Visit marks by region index, stamped so that a walk needs no clearing and no hashing.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    stamp: u32,
    fwd: Vec<u32>,
    bwd: Vec<u32>,
}

impl Marks {
    fn begin(&mut self, capacity: usize) -> u32 {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.fwd.iter_mut().chain(self.bwd.iter_mut()).for_each(|m| *m = 0);
            self.stamp = 1;
        }
        self.fwd.resize(capacity, 0);
        self.bwd.resize(capacity, 0);
        self.stamp
    }
}

/// Regions rendering goes to from `id`: its subregions, or its alias target.
pub(crate) fn successors(g: &Graph, id: RegionId, mut f: impl FnMut(RegionId) -> bool) -> bool {
    let n = g.node(id);
    if let Body::Alias { target, .. } = n.body {
        if f(target) {
            return true;
        }
    }
    n.subregions.iter().any(|&c| f(c))
}

/// Regions rendering comes to `id` from: its container, and its aliases.
pub(crate) fn predecessors(g: &Graph, id: RegionId, mut f: impl FnMut(RegionId) -> bool) -> bool {
    let n = g.node(id);
    n.container.is_some_and(&mut f) || n.aliases.iter().any(|&a| f(a))
}

/// Which way a walk follows the edges.
#[derive(Clone, Copy)]
pub(crate) enum Dir {
    /// As rendering goes: [`successors`].
    Down,
    /// Back to what renders a region: [`predecessors`].
    Up,
}

fn neighbours(g: &Graph, id: RegionId, dir: Dir, f: impl FnMut(RegionId) -> bool) -> bool {
    match dir {
        Dir::Down => successors(g, id, f),
        Dir::Up => predecessors(g, id, f),
    }
}

/// One step of a bidirectional walk: marks `x`'s unmarked neighbours in `mine` and queues
/// them; `true` as soon as one is marked in `other` (the two walks met).
fn expand(
    g: &Graph,
    x: RegionId,
    dir: Dir,
    stamp: u32,
    mine: &mut [u32],
    other: &[u32],
    queue: &mut Vec<RegionId>,
) -> bool {
    neighbours(g, x, dir, |n| {
        let i = n.index as usize;
        if other[i] == stamp {
            return true;
        }
        if mine[i] != stamp {
            mine[i] = stamp;
            queue.push(n);
        }
        false
    })
}

/// Whether rendering can go from any of `from` to `to` (through subregions and alias
/// targets, enabled or not). Bidirectional: costs about twice the smaller side's walk.
pub(crate) fn reaches(g: &Graph, marks: &mut Marks, from: &[RegionId], to: RegionId) -> bool {
    let stamp = marks.begin(g.capacity());
    let Marks { fwd, bwd, .. } = marks;
    bwd[to.index as usize] = stamp;
    let mut ahead: Vec<RegionId> = Vec::new();
    for &f in from {
        if f == to {
            return true;
        }
        if fwd[f.index as usize] != stamp {
            fwd[f.index as usize] = stamp;
            ahead.push(f);
        }
    }
    let mut behind = vec![to];
    loop {
        let Some(x) = ahead.pop() else { return false };
        if expand(g, x, Dir::Down, stamp, fwd, bwd, &mut ahead) {
            return true;
        }
        let Some(y) = behind.pop() else { return false };
        if expand(g, y, Dir::Up, stamp, bwd, fwd, &mut behind) {
            return true;
        }
    }
}

/// Whether `id` lies inside `of` through containers alone (or is `of`).
pub(crate) fn inside(g: &Graph, id: RegionId, of: RegionId) -> bool {
    let mut at = Some(id);
    while let Some(x) = at {
        if x == of {
            return true;
        }
        at = g.node(x).container;
    }
    false
}

/// The regions reached from `from` (they included) going `dir`, through regions for which
/// `keep` holds.
pub(crate) fn closure(g: &Graph, from: &[RegionId], dir: Dir, keep: impl Fn(RegionId) -> bool) -> Vec<RegionId> {
    let mut seen = vec![false; g.capacity()];
    let mut out = Vec::with_capacity(from.len());
    for &r in from {
        if !std::mem::replace(&mut seen[r.index as usize], true) {
            out.push(r);
        }
    }
    let mut k = 0;
    while let Some(&x) = out.get(k) {
        k += 1;
        neighbours(g, x, dir, |n| {
            if keep(n) && !std::mem::replace(&mut seen[n.index as usize], true) {
                out.push(n);
            }
            false
        });
    }
    out
}

/// By region index: whether the region is one of `nodes` and rendering can go from it, through
/// `nodes`, to a region on a cycle (`on_cycle`, by region index).
pub(crate) fn leading_to(g: &Graph, nodes: &[RegionId], on_cycle: &[bool]) -> Vec<bool> {
    let mut member = vec![false; g.capacity()];
    for r in nodes {
        member[r.index as usize] = true;
    }
    let cyclic: Vec<RegionId> = nodes.iter().copied().filter(|r| on_cycle[r.index as usize]).collect();
    let mut out = vec![false; g.capacity()];
    for r in closure(g, &cyclic, Dir::Up, |r| member[r.index as usize]) {
        out[r.index as usize] = true;
    }
    out
}
