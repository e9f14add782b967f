//! Rendering a region tree into flat ranges, with QEMU's exact precedence rules.
//!
//! QEMU walks the tree in precedence order (a container's subregions highest priority first,
//! newest first among equals, children before their own container's background) and lets
//! every terminating region claim the parts of its clip window that nothing claimed before.
//! QEMU finds those parts by scanning the whole view from index 0 for every leaf, which is
//! O(n²). We walk the same way but only *record* each leaf's window, numbered in visit order;
//! then one sweep over the windows sorted by address, with a min-heap of the windows
//! covering the current address, gives every address to the earliest window that covers it.
//! That is exactly QEMU's result, produced already sorted, in O(n log n).
//!
//! The walk uses an explicit stack, so arbitrarily deep trees cannot overflow the host stack.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::base::dirty::DirtyMask;
use crate::model::child_index::{ChildIndex, INDEX_MIN_CHILDREN};
use crate::model::graph::Graph;
use crate::model::region::{Backend, Body, Node, RegionId, SIZE_2_64};
use crate::view::flatview::FlatRange;

/// The region a view of `root` is rendered from (QEMU's `memory_region_get_flatview_root`):
/// full-size aliases at offset 0 are replaced by their target, pure containers with exactly
/// one enabled child at offset 0 that fits by that child; a disabled region or a container
/// with no enabled child gives `None` (the shared empty view).
pub(crate) fn physical_root(g: &Graph, root: RegionId) -> Option<RegionId> {
    physical_root_chain(g, root, &mut Vec::new())
}

/// [`physical_root`], also listing in `chain` every region the answer depends on the
/// children or attributes of (the root, and each alias target or only child followed).
pub(crate) fn physical_root_chain(g: &Graph, root: RegionId, chain: &mut Vec<RegionId>) -> Option<RegionId> {
    debug_assert!(g.is_normal(), "subregion lists are sorted before they are read");
    let mut id = root;
    chain.clear();
    // Bounded: a cycle of full-size aliases and only children would never end (the cycle
    // check refuses it; this is a second line of defence).
    for _ in 0..=g.live() {
        chain.push(id);
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
                // The answer depends on the target's size even when it is not followed.
                chain.push(target);
                return Some(id);
            }
            Body::Container => {
                let mut enabled = n.subregions.iter().filter(|&&c| g.node(c).enabled);
                let &only = enabled.next()?;
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
    Some(id)
}

/// A leaf's window, recorded in visit (precedence) order: a smaller index wins.
struct Claim<'g> {
    first: u64,
    last: u64,
    base: i128,
    node: &'g Node,
    flags: Flags,
}

impl Claim<'_> {
    fn range(&self, first: u64, last: u64, global: DirtyMask) -> Option<FlatRange> {
        let Body::Leaf(leaf) = &self.node.body else { return None };
        // QEMU's `memory_region_get_dirty_log_mask`: the region's clients, MIGRATION for
        // migratable RAM while global tracking is on, CODE for anything with a RAM block.
        let mut dirty = self.node.log_mask();
        match leaf.backend {
            Backend::Ram(_) | Backend::RomDevice(..) => dirty = dirty.union(global),
            Backend::RamDevice(_) => dirty = dirty.union(global.without(DirtyMask::MIGRATION)),
            _ => {}
        }
        Some(FlatRange {
            start: first,
            last,
            offset: (i128::from(first) - self.base) as u64,
            leaf: Arc::clone(leaf),
            priority: self.node.priority,
            readonly: self.flags.readonly,
            nonvolatile: self.flags.nonvolatile,
            unmergeable: self.flags.unmergeable,
            romd: self.node.romd,
            dirty,
        })
    }
}

/// Gives every address to the earliest claim covering it; returns the pieces sorted by
/// address, one per maximal run of a single claim.
fn resolve(claims: &[Claim<'_>], global: DirtyMask) -> Vec<FlatRange> {
    let mut by_start: Vec<(u64, u32)> = claims.iter().enumerate().map(|(i, c)| (c.first, i as u32)).collect();
    by_start.sort_unstable();
    let mut out: Vec<FlatRange> = Vec::with_capacity(claims.len());
    let mut active: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    let mut next = 0; // next claim in `by_start` to activate
    let mut pos: u128 = 0; // first address not yet given out
    let mut owner_of_last: Option<u32> = None;
    loop {
        if active.is_empty() {
            let Some(&(first, _)) = by_start.get(next) else { break };
            pos = pos.max(u128::from(first));
        }
        while let Some(&(first, i)) = by_start.get(next) {
            if u128::from(first) > pos {
                break;
            }
            active.push(Reverse(i));
            next += 1;
        }
        // Drop claims that ended before `pos` (lazily, when they reach the top).
        while let Some(&Reverse(i)) = active.peek() {
            if u128::from(claims[i as usize].last) < pos {
                active.pop();
            } else {
                break;
            }
        }
        let Some(&Reverse(top)) = active.peek() else { continue };
        let c = &claims[top as usize];
        // The owner holds until it ends or until another claim starts (which may win).
        let mut end = u128::from(c.last) + 1;
        if let Some(&(first, _)) = by_start.get(next) {
            end = end.min(u128::from(first));
        }
        let (first, last) = (pos as u64, (end - 1) as u64);
        match out.last_mut() {
            // Still the same claim's window: one piece, as QEMU's gap fill makes one range.
            Some(prev) if owner_of_last == Some(top) && u128::from(prev.last) + 1 == pos => prev.last = last,
            _ => out.extend(c.range(first, last, global)),
        }
        owner_of_last = Some(top);
        pos = end;
        if pos > u128::from(u64::MAX) {
            break;
        }
    }
    out
}

#[derive(Clone, Copy, Default)]
struct Flags {
    readonly: bool,
    nonvolatile: bool,
    unmergeable: bool,
}

enum Step {
    Visit {
        id: RegionId,
        base: i128,
        clip: (i128, i128),
        flags: Flags,
    },
    Fill {
        id: RegionId,
        base: i128,
        clip: (i128, i128),
        flags: Flags,
    },
}

/// Renders `root` (an already simplified root, or `None` for the empty view) into sorted,
/// merged flat ranges.
pub(crate) fn render(g: &Graph, root: Option<RegionId>) -> Vec<FlatRange> {
    match root {
        Some(root) => render_window(g, root, 0, SIZE_2_64),
        None => Vec::new(),
    }
}

/// Renders only the addresses `[lo, hi)` of `root`: exactly the full render's ranges cut at
/// `lo` and `hi` (so a scoped commit can re-render just what a change can affect).
pub(crate) fn render_window(g: &Graph, root: RegionId, lo: u128, hi: u128) -> Vec<FlatRange> {
    debug_assert!(g.is_normal(), "subregion lists are sorted before they are read");
    let mut claims: Vec<Claim<'_>> = Vec::new();
    let mut stack = vec![Step::Visit {
        id: root,
        base: 0,
        clip: (lo as i128, hi as i128),
        flags: Flags::default(),
    }];
    while let Some(step) = stack.pop() {
        match step {
            Step::Visit {
                id,
                base,
                clip,
                mut flags,
            } => {
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
                    // A leaf claims its window after its subregions (an MMIO container's
                    // background); without subregions it can claim at once.
                    Body::Leaf(_) if n.subregions.is_empty() => {
                        claims.push(Claim {
                            first: clip.0 as u64,
                            last: (clip.1 - 1) as u64,
                            base,
                            node: n,
                            flags,
                        });
                        continue;
                    }
                    Body::Leaf(_) => stack.push(Step::Fill { id, base, clip, flags }),
                    Body::Container => {}
                }
                let whole = clip.0 == base && clip.1 == base + n.size as i128;
                // Pushed lowest precedence first, so the highest is visited first.
                let (lo, hi) = ((clip.0 - base) as u128, (clip.1 - base) as u128);
                children_within(g, n, (lo, hi), whole, |c| {
                    stack.push(Step::Visit {
                        id: c,
                        base,
                        clip,
                        flags,
                    })
                });
            }
            Step::Fill { id, base, clip, flags } => {
                let n = g.node(id);
                claims.push(Claim {
                    first: clip.0 as u64,
                    last: (clip.1 - 1) as u64,
                    base,
                    node: n,
                    flags,
                });
            }
        }
    }
    simplify(resolve(&claims, g.log_global))
}

/// Merges adjacent ranges of the same region with contiguous offsets and equal attributes
/// (QEMU's `flatview_simplify`).
pub(crate) fn simplify(ranges: Vec<FlatRange>) -> Vec<FlatRange> {
    let mut out: Vec<FlatRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(prev) if prev.can_merge(&r) => prev.last = r.last,
            _ => out.push(r),
        }
    }
    out
}

/// Calls `f` with the children of container `n` that can intersect its offsets `lo..hi`,
/// lowest precedence first: every child when there are few or the window is the whole
/// container (`whole`), else those its child index finds (cached on the container until its
/// children change). The renderer's visit and `mtree::lookup`'s walk both go through it.
pub(crate) fn children_within(g: &Graph, n: &Node, (lo, hi): (u128, u128), whole: bool, mut f: impl FnMut(RegionId)) {
    if n.subregions.len() < INDEX_MIN_CHILDREN || whole {
        n.subregions.iter().for_each(|&c| f(c));
        return;
    }
    let index = n
        .child_index
        .get_or_init(|| Arc::new(ChildIndex::new(n.subregions.iter().map(|&c| g.extent(c)))));
    for &i in &index.overlapping(lo, hi) {
        f(n.subregions[i as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_claim_wins_and_pieces_are_maximal() {
        let g = {
            let m = crate::Memory::new();
            let _ = m.ram("r", 0x10).unwrap();
            m
        };
        g.with_state(|st| {
            let id = st.graph.ids().next().unwrap();
            let node = st.graph.node(id);
            let c = |first: u64, last: u64| Claim {
                first,
                last,
                base: 0,
                node,
                flags: Flags::default(),
            };
            let pieces = |claims: &[Claim<'_>]| -> Vec<(u64, u64)> {
                resolve(claims, DirtyMask::NONE)
                    .iter()
                    .map(|r| (r.start, r.last))
                    .collect()
            };
            // Claimed in order: [10,19], [30,39], then [0,49] fills the gaps around them.
            let v = pieces(&[c(10, 19), c(30, 39), c(0, 49)]);
            assert_eq!(v, vec![(0, 9), (10, 19), (20, 29), (30, 39), (40, 49)]);
            // A later, larger claim under an earlier one: the earlier keeps its window.
            assert_eq!(pieces(&[c(0, 99), c(10, 19)]), vec![(0, 99)]);
            // The top of the 64-bit space.
            assert_eq!(
                pieces(&[c(u64::MAX - 15, u64::MAX), c(0, u64::MAX)]),
                vec![(0, u64::MAX - 16), (u64::MAX - 15, u64::MAX)]
            );
            assert_eq!(pieces(&[]), vec![]);
        });
    }
}

/// The worked examples of the spec (§2.4) and the root-simplification rules (§3.1), driven
/// through the public API.
#[cfg(test)]
mod examples {
    use crate::{GuestAddr, Memory, OpenBus, RegionId, Unassigned, SIZE_2_64};
    use std::sync::Arc;

    fn io(m: &Memory, name: &str, size: u128) -> RegionId {
        m.io(name, size, Arc::new(Unassigned)).unwrap()
    }

    /// (start, end-exclusive, name, offset, type word)
    fn flat(m: &Memory, root: RegionId) -> Vec<(u64, u128, String, u64, &'static str)> {
        m.render(root)
            .unwrap()
            .ranges()
            .iter()
            .map(|r| {
                (
                    r.start().0,
                    r.end(),
                    r.name().to_string(),
                    r.offset_in_region().0,
                    r.type_word(),
                )
            })
            .collect()
    }

    fn row(s: u64, e: u128, n: &str, o: u64, t: &'static str) -> (u64, u128, String, u64, &'static str) {
        (s, e, n.to_string(), o, t)
    }

    /// Example A's tree; `b_has_ops` gives container B its own ops (a background).
    fn example_a(b_has_ops: bool) -> Vec<(u64, u128, String, u64, &'static str)> {
        let m = Memory::new();
        let a = m.container("A", 0x8000).unwrap();
        let c = io(&m, "C", 0x6000);
        let b = if b_has_ops {
            m.io("B", 0x4000, Arc::new(OpenBus)).unwrap()
        } else {
            m.container("B", 0x4000).unwrap()
        };
        let d = io(&m, "D", 0x1000);
        let e = io(&m, "E", 0x1000);
        m.add_subregion(b, 0, d).unwrap();
        m.add_subregion(b, 0x2000, e).unwrap();
        m.add_subregion_overlap(a, 0, c, 1).unwrap();
        m.add_subregion_overlap(a, 0x2000, b, 2).unwrap();
        flat(&m, a)
    }

    #[test]
    fn example_a_priorities_and_holes() {
        assert_eq!(
            example_a(false),
            vec![
                row(0, 0x2000, "C", 0, "i/o"),
                row(0x2000, 0x3000, "D", 0, "i/o"),
                row(0x3000, 0x4000, "C", 0x3000, "i/o"),
                row(0x4000, 0x5000, "E", 0, "i/o"),
                row(0x5000, 0x6000, "C", 0x5000, "i/o"),
            ]
        );
        // If B has its own ops it fills its gaps before C is visited.
        let f = example_a(true);
        assert_eq!(f[2], row(0x3000, 0x4000, "B", 0x1000, "i/o"));
        assert_eq!(f[4], row(0x5000, 0x6000, "B", 0x3000, "i/o"));
    }

    #[test]
    fn example_b_alias_arithmetic_and_merging() {
        let m = Memory::new();
        let ram = m.ram("ram", 0x10000).unwrap();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let lo = m.alias("lo", ram, 0, 0x8000).unwrap();
        let mid = m.alias("mid", ram, 0x8000, 0x8000).unwrap();
        let hi = m.alias("hi", ram, 0x8000, 0x8000).unwrap();
        m.add_subregion(sys, 0, lo).unwrap();
        m.add_subregion(sys, 0x8000, mid).unwrap();
        m.add_subregion(sys, 0x100000, hi).unwrap();
        assert_eq!(
            flat(&m, sys),
            vec![
                row(0, 0x10000, "ram", 0, "ram"),
                row(0x100000, 0x108000, "ram", 0x8000, "ram")
            ]
        );
        // Unmergeable keeps the two halves apart.
        m.set_unmergeable(mid, true).unwrap();
        assert_eq!(flat(&m, sys).len(), 3);
    }

    #[test]
    fn example_c_equal_priority_background_readonly_alias() {
        let m = Memory::new();
        let sys = m.container("sys", SIZE_2_64).unwrap();
        let bg = io(&m, "bg", SIZE_2_64);
        let r1 = m.ram("r1", 0x2000).unwrap();
        let r2 = m.ram("r2", 0x2000).unwrap();
        let pam = m.alias("pam-rom", r1, 0x800, 0x800).unwrap();
        m.set_readonly(pam, true).unwrap();
        m.add_subregion_overlap(sys, 0, bg, -1).unwrap();
        m.add_subregion(sys, 0x1000, r1).unwrap();
        m.add_subregion(sys, 0x2000, r2).unwrap();
        m.add_subregion_overlap(sys, 0x5000, pam, 1).unwrap();
        assert_eq!(
            flat(&m, sys),
            vec![
                row(0, 0x1000, "bg", 0, "i/o"),
                row(0x1000, 0x2000, "r1", 0, "ram"),
                row(0x2000, 0x4000, "r2", 0, "ram"),
                row(0x4000, 0x5000, "bg", 0x4000, "i/o"),
                row(0x5000, 0x5800, "r1", 0x800, "rom"),
                row(0x5800, SIZE_2_64, "bg", 0x5800, "i/o"),
            ]
        );
        // Moving r1 makes it the newest of priority 0: it now wins the overlap.
        m.set_address(r1, 0x1800).unwrap();
        let f = flat(&m, sys);
        assert_eq!(f[1], row(0x1800, 0x3800, "r1", 0, "ram"));
        assert_eq!(f[2], row(0x3800, 0x4000, "r2", 0x1800, "ram"));
    }

    #[test]
    fn example_d_alias_clipped_by_target() {
        let m = Memory::new();
        let sys = m.container("sys", SIZE_2_64).unwrap();
        let t = io(&m, "t", 0x4000);
        let al = m.alias("al", t, 0x3800, 0x1000).unwrap();
        m.add_subregion(sys, 0x10000, t).unwrap();
        m.add_subregion(sys, 0x20000, al).unwrap();
        assert_eq!(
            flat(&m, sys),
            vec![
                row(0x10000, 0x14000, "t", 0, "i/o"),
                row(0x20000, 0x20800, "t", 0x3800, "i/o")
            ]
        );
        let v = m.render(sys).unwrap();
        assert!(v.lookup(GuestAddr(0x20800)).is_none(), "rest of the window is a hole");
    }

    #[test]
    fn disabled_and_empty_regions_are_invisible() {
        let m = Memory::new();
        let sys = m.container("sys", SIZE_2_64).unwrap();
        let c = m.container("c", 0x1000).unwrap();
        let r = m.ram("r", 0x1000).unwrap();
        let z = m.ram("z", 0).unwrap();
        m.add_subregion(c, 0, r).unwrap();
        m.add_subregion(sys, 0, c).unwrap();
        m.add_subregion(sys, 0x5000, z).unwrap();
        assert_eq!(flat(&m, sys).len(), 1);
        m.set_enabled(c, false).unwrap();
        assert!(
            flat(&m, sys).is_empty(),
            "a disabled container hides its enabled children"
        );
    }

    #[test]
    fn romd_and_rom_device_type_words() {
        let m = Memory::new();
        let sys = m.container("sys", SIZE_2_64).unwrap();
        let dev = m.rom_device("flash", 0x1000, Arc::new(Unassigned)).unwrap();
        let other = m.ram("other", 0x1000).unwrap();
        m.add_subregion(sys, 0, dev).unwrap();
        m.add_subregion(sys, 0x1000, other).unwrap();
        assert_eq!(flat(&m, sys)[0].4, "romd");
        m.set_romd(dev, false).unwrap();
        assert_eq!(flat(&m, sys)[0].4, "i/o");
        assert!(m.set_romd(other, false).is_err(), "only ROM devices have romd mode");
    }

    #[test]
    fn physical_root_simplification() {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let ram = m.ram("ram", 0x1000).unwrap();
        m.add_subregion(sys, 0, ram).unwrap();
        let io2 = io(&m, "dev", 0x1000);
        m.add_subregion(sys, 0x1000, io2).unwrap();
        // Bus master container: one full alias of system.
        let bm = m.container("bus master container", SIZE_2_64).unwrap();
        let bma = m.alias("bus master", sys, 0, SIZE_2_64).unwrap();
        m.add_subregion(bm, 0, bma).unwrap();
        assert_eq!(m.physical_root(bm).unwrap(), Some(sys));
        m.set_enabled(bma, false).unwrap();
        assert_eq!(m.physical_root(bm).unwrap(), None, "no enabled child: empty view");
        m.set_enabled(bma, true).unwrap();
        // A partial alias is its own root.
        let part = m.alias("part", sys, 0x1000, 0x1000).unwrap();
        assert_eq!(m.physical_root(part).unwrap(), Some(part));
        // Two enabled children: not simplified (x86 per-CPU SMM containers).
        let smm = m.container("memory", SIZE_2_64).unwrap();
        let smram = m.container("smram", 0x1000).unwrap();
        let sa = m.alias("smram", smram, 0, 0x1000).unwrap();
        let ma = m.alias("memory", sys, 0, SIZE_2_64).unwrap();
        m.add_subregion_overlap(smm, 0, sa, 1).unwrap();
        m.add_subregion(smm, 0, ma).unwrap();
        assert_eq!(m.physical_root(smm).unwrap(), Some(smm));
        // A single child that does not sit at 0 is not taken.
        let off = m.container("off", SIZE_2_64).unwrap();
        let r2 = m.ram("r2", 0x1000).unwrap();
        m.add_subregion(off, 0x1000, r2).unwrap();
        assert_eq!(m.physical_root(off).unwrap(), Some(off));
    }

    #[test]
    fn full_size_region_at_top_of_space() {
        let m = Memory::new();
        let sys = m.container("sys", SIZE_2_64).unwrap();
        let top = m.ram("top", 0x1000).unwrap();
        let bg = io(&m, "bg", SIZE_2_64);
        m.add_subregion(sys, u64::MAX - 0xfff, top).unwrap();
        m.add_subregion_overlap(sys, 0, bg, -1).unwrap();
        let f = flat(&m, sys);
        assert_eq!(f.last().unwrap(), &row(u64::MAX - 0xfff, SIZE_2_64, "top", 0, "ram"));
        assert!(m
            .add_subregion(sys, u64::MAX - 0xffe, m.ram("x", 0x1000).unwrap())
            .is_err());
    }
}
