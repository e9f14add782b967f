//! Rendering a region tree into flat ranges, with QEMU's exact precedence rules.
//!
//! QEMU walks the tree in precedence order (a container's subregions highest priority first,
//! newest first among equals, children before their own container's background) and lets
//! every terminating region claim the parts of its clip window that nothing claimed before.
//! QEMU finds those parts by scanning the whole view from index 0 for every leaf, which is
//! O(n²). We keep the claimed set as an interval map instead, so each claim costs
//! O(log n) plus the pieces it produces, and the whole render is O(n log n).
//!
//! The walk uses an explicit stack, so arbitrarily deep trees cannot overflow the host stack.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::flatview::FlatRange;
use crate::graph::Graph;
use crate::region::{Body, RegionId, SIZE_2_64};

/// The region a view of `root` is rendered from (QEMU's `memory_region_get_flatview_root`):
/// full-size aliases at offset 0 are replaced by their target, pure containers with exactly
/// one enabled child at offset 0 that fits by that child; a disabled region or a container
/// with no enabled child gives `None` (the shared empty view).
pub(crate) fn physical_root(g: &Graph, root: RegionId) -> Option<RegionId> {
    let mut id = root;
    loop {
        let n = g.node(id);
        if !n.enabled {
            return None;
        }
        match n.body {
            Body::Alias { target, offset } => {
                if offset == 0 && n.size >= g.node(target).size {
                    id = target;
                    continue;
                }
                return Some(id);
            }
            Body::Container => {
                let mut enabled = n.children.iter().filter(|&&c| g.node(c).enabled);
                let Some(&only) = enabled.next() else {
                    return None;
                };
                if enabled.next().is_some() {
                    return Some(id);
                }
                let c = g.node(only);
                if c.addr == 0 && n.size >= c.size {
                    id = only;
                    continue;
                }
                return Some(id);
            }
            Body::Leaf(_) => return Some(id),
        }
    }
}

/// Union of the address intervals already claimed, as `start -> end` (half-open, merged when
/// they touch).
#[derive(Default)]
struct Claimed {
    map: BTreeMap<u128, u128>,
}

impl Claimed {
    /// Claims `[a, b)` and calls `gap` for every maximal sub-interval that was free.
    fn claim(&mut self, a: u128, b: u128, mut gap: impl FnMut(u128, u128)) {
        let mut cur = a;
        let mut new_start = a;
        let mut new_end = b;
        let mut remove_first = None;
        if let Some((&s, &e)) = self.map.range(..=a).next_back() {
            if e >= a {
                new_start = s;
                new_end = new_end.max(e);
                cur = cur.max(e);
                remove_first = Some(s);
            }
        }
        let mut doomed = Vec::new();
        if a < b {
            for (&s, &e) in self.map.range(a + 1..=b) {
                if s > cur {
                    gap(cur, s);
                }
                cur = cur.max(e);
                new_end = new_end.max(e);
                doomed.push(s);
            }
        }
        if cur < b {
            gap(cur, b);
        }
        if let Some(s) = remove_first {
            self.map.remove(&s);
        }
        for s in doomed {
            self.map.remove(&s);
        }
        self.map.insert(new_start, new_end);
    }
}

#[derive(Clone, Copy, Default)]
struct Flags {
    readonly: bool,
    nonvolatile: bool,
    unmergeable: bool,
}

enum Step {
    Visit { id: RegionId, base: i128, clip: (i128, i128), flags: Flags },
    Fill { id: RegionId, base: i128, clip: (i128, i128), flags: Flags },
}

/// Renders `root` (an already simplified root, or `None` for the empty view) into sorted,
/// merged flat ranges.
pub(crate) fn render(g: &Graph, root: Option<RegionId>) -> Vec<FlatRange> {
    let Some(root) = root else {
        return Vec::new();
    };
    let mut claimed = Claimed::default();
    let mut out: Vec<FlatRange> = Vec::new();
    let mut stack = vec![Step::Visit {
        id: root,
        base: 0,
        clip: (0, SIZE_2_64 as i128),
        flags: Flags::default(),
    }];
    while let Some(step) = stack.pop() {
        match step {
            Step::Visit { id, base, clip, mut flags } => {
                let n = g.node(id);
                if !n.enabled {
                    continue;
                }
                let base = base + i128::from(n.addr);
                flags.readonly |= n.readonly;
                flags.nonvolatile |= n.nonvolatile;
                flags.unmergeable |= n.unmergeable;
                let lo = clip.0.max(base);
                let hi = clip.1.min(base + n.size as i128);
                if lo >= hi {
                    continue;
                }
                let clip = (lo, hi);
                match n.body {
                    Body::Alias { target, offset } => {
                        let t = g.node(target);
                        stack.push(Step::Visit {
                            id: target,
                            base: base - i128::from(t.addr) - i128::from(offset),
                            clip,
                            flags,
                        });
                        continue;
                    }
                    Body::Leaf(_) => stack.push(Step::Fill { id, base, clip, flags }),
                    Body::Container => {}
                }
                for &c in n.children.iter().rev() {
                    stack.push(Step::Visit { id: c, base, clip, flags });
                }
            }
            Step::Fill { id, base, clip, flags } => {
                let n = g.node(id);
                let Body::Leaf(leaf) = &n.body else { continue };
                claimed.claim(clip.0 as u128, clip.1 as u128, |a, b| {
                    out.push(FlatRange {
                        start: a as u64,
                        size: b - a,
                        offset: (a as i128 - base) as u64,
                        leaf: Arc::clone(leaf),
                        priority: n.priority,
                        readonly: flags.readonly,
                        nonvolatile: flags.nonvolatile,
                        unmergeable: flags.unmergeable,
                        romd: n.romd,
                    })
                });
            }
        }
    }
    out.sort_unstable_by_key(|r| r.start);
    simplify(out)
}

/// Merges adjacent ranges of the same region with contiguous offsets and equal attributes
/// (QEMU's `flatview_simplify`).
fn simplify(ranges: Vec<FlatRange>) -> Vec<FlatRange> {
    let mut out: Vec<FlatRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.can_merge(&r) => last.size += r.size,
            _ => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(c: &mut Claimed, a: u128, b: u128) -> Vec<(u128, u128)> {
        let mut v = Vec::new();
        c.claim(a, b, |x, y| v.push((x, y)));
        v
    }

    #[test]
    fn claimed_reports_free_pieces() {
        let mut c = Claimed::default();
        assert_eq!(gaps(&mut c, 10, 20), vec![(10, 20)]);
        assert_eq!(gaps(&mut c, 30, 40), vec![(30, 40)]);
        assert_eq!(gaps(&mut c, 0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(c.map.len(), 1);
        assert_eq!(gaps(&mut c, 5, 45), vec![]);
        assert_eq!(gaps(&mut c, 50, 60), vec![(50, 60)]);
        assert_eq!(c.map.len(), 1, "touching intervals merge");
        assert_eq!(gaps(&mut c, 0, SIZE_2_64), vec![(60, SIZE_2_64)]);
    }
}
