//! Layered views: a per-CPU view that stores only its private windows and borrows every
//! other range from a shared view.
//!
//! QEMU gives an M-profile CPU its own container — the CPU's NVIC and SysTick over an alias
//! of system memory — and renders that container into a full FlatView of its own, a copy of
//! the system view's ranges per CPU. Here a root that shows another rendered root *whole*
//! through one alias ([`base_of`]) is rendered as that root's view (the base) plus windows
//! around its other children: outside the windows only the alias contributes, so the
//! ranges there are exactly the base's; inside them the root is rendered as usual.
//!
//! Windows are widened to the base's range boundaries, so every base range lies entirely
//! inside a window (replaced) or entirely outside (shown as is), and a lookup is a window
//! check followed by either the view's own small index or the base's. The edges are checked
//! as a full render's simplification would: a private piece that continues the base range
//! next to the window widens the window over it.

use std::sync::Arc;

use crate::model::graph::Graph;
use crate::model::region::{Body, RegionId};
use crate::view::flatview::{FlatRange, FlatView, Layer, Ranges, Window};
use crate::view::patch::{diff_into, merge_windows, widen, Change, Patch};
use crate::view::render::{physical_root_chain, render_window};

/// The diff of two layered views, walking only where they can differ: their windows, and
/// where their bases differ — nowhere if they share a base, or inside `base_update`'s patches
/// (old base, new base, where they differ) if that is how the base changed. `None` when that
/// cannot be told (a plain view, another base): the caller walks everything.
///
/// Every range lies wholly inside or wholly outside these spans (windows are aligned to their
/// base's ranges, patches to both bases' ranges), and outside them both views show the same
/// base ranges, so the walk inside them is the whole diff, as with a splice's patches.
pub(crate) fn diff(
    old: &FlatView,
    new: &FlatView,
    base_update: Option<(&Arc<FlatView>, &Arc<FlatView>, &[Patch])>,
) -> Option<Vec<Change>> {
    let (lo, ln) = (old.layer.as_deref()?, new.layer.as_deref()?);
    let mut spans: Vec<(u128, u128)> = lo
        .windows()
        .chain(ln.windows())
        .map(|(f, l)| (u128::from(f), u128::from(l) + 1))
        .collect();
    if !Arc::ptr_eq(&lo.base, &ln.base) {
        let (bo, bn, patches) = base_update?;
        if !Arc::ptr_eq(bo, &lo.base) || !Arc::ptr_eq(bn, &ln.base) {
            return None;
        }
        let extent = |v: &FlatView, r: &std::ops::Range<usize>| {
            let (Some(a), Some(b)) = (v.own(r.start), r.end.checked_sub(1).and_then(|e| v.own(e))) else {
                return None;
            };
            Some((u128::from(a.start), b.end()))
        };
        for p in patches {
            spans.extend(extent(bo, &p.old));
            spans.extend(extent(bn, &p.new));
        }
    }
    merge_windows(&mut spans);
    let (o, n) = (old.ranges(), new.ranges());
    let first = |v: &crate::view::flatview::Ranges<'_>, lo: u128| v.partition_point(|r| r.end() <= lo);
    let last = |v: &crate::view::flatview::Ranges<'_>, hi: u128| v.partition_point(|r| u128::from(r.start) < hi);
    let mut out = Vec::new();
    for (lo, hi) in spans {
        diff_into(o, n, first(&o, lo)..last(&o, hi), first(&n, lo)..last(&n, hi), &mut out);
    }
    Some(out)
}

/// The alias through which `root` shows another region whole, and the physical root of that
/// region (whose view it then shows): `root` is an enabled container at address 0 without
/// attributes of its own (read-only, non-volatile, unmergeable), and one of its enabled
/// children is an alias at 0, offset 0, without attributes, of an enabled region at address 0
/// that fits inside both the alias and `root`, and simplifies to a region at address 0
/// through regions without attributes either.
pub(crate) fn base_of(g: &Graph, root: RegionId) -> Option<(RegionId, RegionId)> {
    let r = g.get(root).ok()?;
    if !matches!(r.body, Body::Container) || r.addr != 0 || !r.enabled || r.readonly || r.nonvolatile || r.unmergeable {
        return None;
    }
    // The lowest-precedence candidate: the others become windows.
    let (alias, target) = r.subregions.iter().rev().find_map(|&c| {
        let a = g.node(c);
        let Body::Alias { target, offset: 0 } = a.body else {
            return None;
        };
        let t = g.node(target);
        let plain = a.enabled && a.addr == 0 && !a.readonly && !a.nonvolatile && !a.unmergeable;
        (plain && t.enabled && t.addr == 0 && t.size <= a.size.min(r.size)).then_some((c, target))
    })?;
    // The view of `phys` is `target`'s rendering only if nothing skipped on the way there
    // (full-size aliases, single-child containers) adds attributes of its own.
    let mut chain = Vec::new();
    let phys = physical_root_chain(g, target, &mut chain)?;
    let flagged = |n: &crate::model::region::Node| n.readonly || n.nonvolatile || n.unmergeable;
    let plain_chain = chain
        .iter()
        .take_while(|&&id| id != phys)
        .all(|&id| !flagged(g.node(id)));
    (plain_chain && g.node(phys).addr == 0 && phys != root).then_some((alias, phys))
}

/// Nodes visited per root before a child's extent is taken whole.
const CONTENT_BUDGET: usize = 256;

/// Where the children of `root` other than `alias` can claim addresses: the extents of the
/// leaves below them, followed through containers and aliases as rendering would (so an
/// alias of a sparse 4 GiB SMRAM container costs the SMRAM's window, not 4 GiB), sorted and
/// merged. Past [`CONTENT_BUDGET`] nodes a subtree's whole extent is taken.
fn private_extents(g: &Graph, root: RegionId, alias: RegionId) -> Vec<(u128, u128)> {
    let r = g.node(root);
    let mut out = Vec::new();
    let mut budget = CONTENT_BUDGET;
    // (region, base of its container, clip window): as `render_window` walks.
    let mut stack: Vec<(RegionId, i128, (i128, i128))> = r
        .subregions
        .iter()
        .filter(|&&c| c != alias)
        .map(|&c| (c, 0, (0, r.size as i128)))
        .collect();
    while let Some((id, base, clip)) = stack.pop() {
        let n = g.node(id);
        if !n.enabled {
            continue;
        }
        let start = base + i128::from(n.addr);
        let (lo, hi) = (clip.0.max(start), clip.1.min(start + n.size as i128));
        if lo >= hi {
            continue;
        }
        if budget == 0 {
            out.push((lo as u128, hi as u128));
            continue;
        }
        budget -= 1;
        match n.body {
            Body::Alias { target, offset } => {
                let t = g.node(target);
                stack.push((target, start - i128::from(t.addr) - i128::from(offset), (lo, hi)));
            }
            Body::Container => stack.extend(n.subregions.iter().map(|&c| (c, start, (lo, hi)))),
            Body::Leaf(_) => out.push((lo as u128, hi as u128)),
        }
    }
    merge_windows(&mut out);
    out
}

/// The view of `old` (a layered view of `root`) over `base`, a newer view of the same root,
/// without rendering anything — valid when nothing changed inside or next to its windows
/// (`touched`, absolute addresses, are the windows this commit changed) and its private
/// children claim the same addresses. `None` when it must be built anew.
pub(crate) fn rebase(
    g: &Graph,
    root: RegionId,
    alias: RegionId,
    old: &FlatView,
    base: &Arc<FlatView>,
    touched: &[(u128, u128)],
) -> Option<(Vec<FlatRange>, Layer)> {
    let l = old.layer.as_deref()?;
    // A newer view of the same root (another root would mean another base altogether).
    if base.layer.is_some() || base.root() != l.base.root() {
        return None;
    }
    let near = |w: &Window, &(lo, hi): &(u128, u128)| lo <= u128::from(w.last) + 1 && u128::from(w.first) <= hi;
    if l.windows.iter().any(|w| touched.iter().any(|t| near(w, t))) {
        return None;
    }
    if *private_extents(g, root, alias) != *l.claims {
        return None;
    }
    let windows: Vec<(u128, u128, (usize, usize))> = l
        .windows
        .iter()
        .map(|w| (u128::from(w.first), u128::from(w.last) + 1, w.own))
        .collect();
    // `None` if a window no longer falls on the base's range boundaries.
    let layer = Layer::new(base, l.claims.clone(), &windows, old.own_ranges())?;
    let own = (0..old.own_ranges()).filter_map(|i| old.own(i)).cloned().collect();
    Some((own, layer))
}

/// The base ranges `[lo, hi)` covers, touching or partly: `b[first..last]`.
fn covered(b: Ranges<'_>, lo: u128, hi: u128) -> (usize, usize) {
    (
        b.partition_point(|x| x.end() <= lo),
        b.partition_point(|x| u128::from(x.start) < hi),
    )
}

impl Layer {
    /// A layer over `base` whose windows `[lo, hi)` show own ranges `own.0..own.1` (of
    /// `own_len`); `None` if a window cuts a base range.
    fn new(
        base: &Arc<FlatView>,
        claims: Box<[(u128, u128)]>,
        windows: &[(u128, u128, (usize, usize))],
        own_len: usize,
    ) -> Option<Layer> {
        let b = base.ranges();
        let mut table = Vec::with_capacity(windows.len());
        let mut replaced = 0;
        for &(lo, hi, own) in windows {
            let (b0, b1) = covered(b, lo, hi);
            let aligned = b.get(b0).is_none_or(|x| u128::from(x.start) >= lo)
                && b1.checked_sub(1).is_none_or(|i| i < b0 || b[i].end() <= hi);
            if !aligned {
                return None;
            }
            table.push(Window {
                first: lo as u64,
                last: (hi - 1) as u64,
                base: (b0, b1),
                own,
                at: b0 - replaced + own.0,
            });
            replaced += b1 - b0;
        }
        Some(Layer {
            base: base.clone(),
            claims,
            windows: table.into_boxed_slice(),
            len: b.len() - replaced + own_len,
        })
    }
}

/// Renders `root`, whose alias `alias` shows the root of `base` whole, as a layered view:
/// the ranges of its windows and the layer. `None` when layering would not save much (the
/// windows hold more than half of the ranges).
pub(crate) fn build(
    g: &Graph,
    root: RegionId,
    alias: RegionId,
    base: &Arc<FlatView>,
) -> Option<(Vec<FlatRange>, Layer)> {
    let b = base.ranges();
    if base.layer.is_some() {
        return None;
    }
    let claims = private_extents(g, root, alias);
    // What to render: the claims, grown over base ranges that private pieces continue.
    let mut wanted = claims.clone();
    'widen: loop {
        let windows = widen(b, &wanted);
        // Refused before rendering when the windows cover most of the base anyway.
        let spans: Vec<(usize, usize)> = windows.iter().map(|&(lo, hi)| covered(b, lo, hi)).collect();
        let replaced: usize = spans.iter().map(|&(b0, b1)| b1 - b0).sum();
        if replaced > 8 && replaced * 2 > b.len() {
            return None;
        }
        let mut own: Vec<FlatRange> = Vec::new();
        let mut table: Vec<(u128, u128, (usize, usize))> = Vec::with_capacity(windows.len());
        for (&(lo, hi), &(b0, b1)) in windows.iter().zip(&spans) {
            let pieces = render_window(g, root, lo, hi);
            // A piece continuing the base range next to the window: take that range in.
            let before = b0.checked_sub(1).map(|i| &b[i]).filter(|x| x.end() == lo);
            let after = b.get(b1).filter(|x| u128::from(x.start) == hi);
            let grow_lo = matches!((before, pieces.first()), (Some(x), Some(p)) if x.continues_into(p));
            let grow_hi = matches!((pieces.last(), after), (Some(p), Some(x)) if p.continues_into(x));
            if grow_lo || grow_hi {
                for (grow, x) in [(grow_lo, before), (grow_hi, after)] {
                    if let (true, Some(x)) = (grow, x) {
                        wanted.push((u128::from(x.start), x.end()));
                    }
                }
                merge_windows(&mut wanted);
                continue 'widen;
            }
            let k0 = own.len();
            own.extend(pieces);
            table.push((lo, hi, (k0, own.len())));
        }
        if own.len() > 8 && own.len() * 2 > b.len() {
            return None;
        }
        let layer = Layer::new(base, claims.into_boxed_slice(), &table, own.len())?;
        return Some((own, layer));
    }
}

#[cfg(test)]
mod tests {
    use crate::view::flatview::{FlatView, Mru};
    use crate::{DirtyClient, GuestAddr, Memory, RegionId, Unassigned, SIZE_2_64};
    use proptest::prelude::*;
    use std::sync::Arc;

    /// The layered view agrees with a flat render of the same root: ranges (with dirty
    /// masks), lookups through the last-hit cache and without, and where holes end.
    fn check(
        cpu: &Arc<FlatView>,
        flat: &FlatView,
        probes: &[u64],
        system: &Arc<FlatView>,
    ) -> Result<(), TestCaseError> {
        let (a, b) = (cpu.ranges(), flat.ranges());
        // Small views are always layered (only big windows fall back to a copy), unless the
        // CPU shows system's view itself (no private region enabled).
        let shared = Arc::ptr_eq(cpu, system);
        prop_assert!(cpu.base().is_some() || shared || b.len() > 8, "not layered: {:?}", b);
        prop_assert_eq!(a, b);
        for (x, y) in a.iter().zip(b.iter()) {
            prop_assert_eq!(x.dirty_log_mask(), y.dirty_log_mask());
        }
        let mut addrs = probes.to_vec();
        for r in b.iter() {
            addrs.extend([r.start, r.last, r.start.wrapping_sub(1), r.last.wrapping_add(1)]);
        }
        let mut mru = Mru::EMPTY;
        for &x in &addrs {
            let want = flat.lookup(GuestAddr(x)).map(|(r, o)| (r.clone(), o));
            let got = cpu.lookup(GuestAddr(x)).map(|(r, o)| (r.clone(), o));
            prop_assert_eq!(&got, &want, "lookup {:#x}", x);
            prop_assert_eq!(
                cpu.find(x, &mut mru).cloned(),
                want.map(|w| w.0),
                "cached lookup {:#x}",
                x
            );
            if flat.lookup(GuestAddr(x)).is_none() {
                prop_assert_eq!(cpu.next_start(x), flat.next_start(x), "hole end after {:#x}", x);
            }
        }
        Ok(())
    }

    /// A private child of the CPU root: (kind, address in pages, pages, priority,
    /// unmergeable). Kinds: 0 device, 1 alias of the RAM system maps, 2 RAM of its own.
    type Private = (u8, u64, u64, i32, bool);

    fn machine(devs: &[(u64, i32)], privs: &[Private], alias_prio: i32) -> (Memory, RegionId, RegionId, Vec<RegionId>) {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let ram = m.ram("ram", 0x40000).unwrap();
        let lo = m.alias("ram-lo", ram, 0, 0x8000).unwrap();
        m.add_subregion(sys, 0, lo).unwrap();
        for (i, &(page, prio)) in devs.iter().enumerate() {
            let d = m.io(&format!("dev{i}"), 0x1000, Arc::new(Unassigned)).unwrap();
            m.add_subregion_overlap(sys, page * 0x1000, d, prio).unwrap();
        }
        let cpu = m.container("cpu", SIZE_2_64).unwrap();
        let a = m.alias("cpu-system", sys, 0, SIZE_2_64).unwrap();
        m.add_subregion_overlap(cpu, 0, a, alias_prio).unwrap();
        let mut ids = Vec::new();
        for (i, &(kind, page, pages, prio, unmergeable)) in privs.iter().enumerate() {
            let size = u128::from(pages) * 0x1000;
            let r = match kind {
                0 => m.io(&format!("p{i}"), size, Arc::new(Unassigned)).unwrap(),
                1 => m.alias(&format!("p{i}"), ram, page * 0x1000, size).unwrap(),
                _ => m.ram(&format!("p{i}"), size).unwrap(),
            };
            m.set_unmergeable(r, unmergeable).unwrap();
            m.add_subregion_overlap(cpu, page * 0x1000, r, prio).unwrap();
            ids.push(r);
        }
        (m, sys, cpu, ids)
    }

    #[test]
    fn a_private_alias_continuing_the_shared_ram_merges_with_it() {
        // System maps RAM [0, 0x8000); the CPU adds the next 0x1000 bytes of the same RAM.
        let (m, sys, cpu, _) = machine(&[], &[(1, 8, 1, 0, false)], 0);
        let _memory = m.address_space("memory", sys).unwrap();
        let space = m.address_space("cpu-memory-0", cpu).unwrap();
        let v = space.view();
        assert!(v.base().is_some(), "layered: {:?}", v.ranges());
        assert_eq!(v.ranges().len(), 1, "{:?}", v.ranges());
        assert_eq!(v.ranges()[0].size(), 0x9000);
        assert_eq!(v.ranges(), m.render(cpu).unwrap().ranges());
    }

    #[test]
    fn per_cpu_views_store_only_their_windows() {
        let devs: Vec<(u64, i32)> = (0..64).map(|i| (0x100 + 2 * i, 0)).collect();
        let (m, sys, cpu, _) = machine(&devs, &[(0, 0xe000, 1, 1, false)], -1);
        let _memory = m.address_space("memory", sys).unwrap();
        let space = m.address_space("cpu-memory-0", cpu).unwrap();
        let v = space.view();
        assert!(Arc::ptr_eq(v.base().unwrap(), &_memory.view()));
        assert_eq!(v.own_ranges(), 1, "only the private device");
        assert_eq!(v.ranges().len(), 66);
        // A change of system reaches the CPU over the new system view.
        let extra = m.ram("extra", 0x1000).unwrap();
        m.add_subregion(sys, 0x9000, extra).unwrap();
        let v = space.view();
        assert!(Arc::ptr_eq(v.base().unwrap(), &_memory.view()));
        assert_eq!(v.ranges(), m.render(cpu).unwrap().ranges());
    }

    #[test]
    fn a_space_created_inside_a_transaction_is_layered_over_the_committed_view() {
        let (m, sys, cpu, _) = machine(&[(0x10, 0)], &[(0, 0x20, 1, 1, false)], -1);
        let memory = m.address_space("memory", sys).unwrap();
        let space = {
            let _tx = m.transaction();
            let extra = m.ram("extra", 0x1000).unwrap();
            m.add_subregion(sys, 0x30000, extra).unwrap();
            m.address_space("cpu-memory-0", cpu).unwrap()
        };
        let v = space.view();
        assert!(Arc::ptr_eq(v.base().unwrap(), &memory.view()), "over system's new view");
        assert_eq!(v.ranges(), m.render(cpu).unwrap().ranges());
        assert!(v.ranges().iter().any(|r| r.name() == "extra"));
    }

    #[test]
    fn a_cpu_space_created_before_the_view_it_borrows_is_layered_at_the_commit() {
        let (m, sys, cpu, _) = machine(&[(0x10, 0)], &[(0, 0x20, 1, 1, false)], -1);
        let (space, memory) = {
            let _tx = m.transaction();
            let space = m.address_space("cpu-memory-0", cpu).unwrap();
            (space, m.address_space("memory", sys).unwrap())
        };
        assert!(Arc::ptr_eq(space.view().base().unwrap(), &memory.view()));
    }

    /// Regression (review): a read-only full-size alias between the CPU's alias and system
    /// memory is skipped by root simplification; the view must still show everything
    /// read-only.
    #[test]
    fn attributes_skipped_by_simplification_still_apply() {
        let (m, sys, _, _) = machine(&[(0x10, 0)], &[], 0);
        let _memory = m.address_space("memory", sys).unwrap();
        let ro = m.alias("ro", sys, 0, SIZE_2_64).unwrap();
        m.set_readonly(ro, true).unwrap();
        let cpu = m.container("cpu", SIZE_2_64).unwrap();
        let a = m.alias("cpu-ro", ro, 0, SIZE_2_64).unwrap();
        let nvic = m.io("nvic", 0x1000, Arc::new(Unassigned)).unwrap();
        m.add_subregion_overlap(cpu, 0, a, -1).unwrap();
        m.add_subregion(cpu, 0xe000_e000, nvic).unwrap();
        let space = m.address_space("cpu0", cpu).unwrap();
        assert_eq!(space.view().ranges(), m.render(cpu).unwrap().ranges());
        assert!(space.view().ranges()[0].readonly());
    }

    /// Regression (review): a commit that re-renders everything (global dirty tracking) must
    /// not layer a view over a view every space of which left in the same commit.
    #[test]
    fn a_full_commit_does_not_borrow_an_abandoned_view() {
        let (m, sys, cpu, privs) = machine(&[(0x10, 0)], &[(0, 0x20, 1, 1, false)], -1);
        m.set_enabled(privs[0], false).unwrap();
        let space = m.address_space("cpu0", cpu).unwrap(); // shows system's view
        {
            let _tx = m.transaction();
            m.set_enabled(privs[0], true).unwrap();
            let extra = m.ram("extra", 0x1000).unwrap();
            m.add_subregion(sys, 0x30000, extra).unwrap();
            m.dirty().set_code_tracking(true);
        }
        let (v, fresh) = (space.view(), m.render(cpu).unwrap());
        assert_eq!(v.ranges(), fresh.ranges());
        for (a, b) in v.ranges().iter().zip(fresh.ranges().iter()) {
            assert_eq!(a.dirty_log_mask(), b.dirty_log_mask());
        }
    }

    /// Regression (review): a root that cannot be layered with profit is not rendered again
    /// at every later commit.
    #[test]
    fn a_root_not_worth_layering_is_left_alone() {
        let devs: Vec<(u64, i32)> = (0..16).map(|i| (0x10 + i, 0)).collect();
        let (m, sys, cpu, _) = machine(&devs, &[(0, 0, 0x40, -2, false)], 0);
        let _memory = m.address_space("memory", sys).unwrap();
        let space = m.address_space("cpu0", cpu).unwrap();
        assert!(
            space.view().base().is_none(),
            "the private region spans most of the view"
        );
        let before = m.stats();
        let other = m.container("elsewhere", 0x1000).unwrap();
        let r = m.ram("r", 0x1000).unwrap();
        m.add_subregion(other, 0, r).unwrap();
        assert_eq!(m.stats().renders, before.renders);
    }

    proptest! {
        #[test]
        fn layered_views_equal_a_flat_render(
            devs in prop::collection::vec((0u64..48, -1i32..2), 0..8),
            privs in prop::collection::vec((0u8..3, 0u64..48, 1u64..6, -2i32..3, any::<bool>()), 0..5),
            alias_prio in -1i32..1,
            steps in prop::collection::vec((0u8..4, any::<prop::sample::Index>(), 0u64..48), 0..6),
            probes in prop::collection::vec(0u64..0x40000, 16),
        ) {
            let (m, sys, cpu, privs) = machine(&devs, &privs, alias_prio);
            let memory = m.address_space("memory", sys).unwrap();
            let space = m.address_space("cpu-memory-0", cpu).unwrap();
            check(&space.view(), &m.render(cpu).unwrap(), &probes, &memory.view())?;
            prop_assert!(memory.view().base().is_none());
            let sys_devs: Vec<RegionId> = m.regions().into_iter()
                .filter(|&r| m.region_info(r).unwrap().name.starts_with("dev"))
                .collect();
            for (what, pick, page) in steps {
                match what {
                    0 if !sys_devs.is_empty() => m.set_address(*pick.get(&sys_devs), page * 0x1000).unwrap(),
                    1 if !privs.is_empty() => {
                        let p = *pick.get(&privs);
                        m.set_enabled(p, !m.region_info(p).unwrap().enabled).unwrap();
                    }
                    2 if !privs.is_empty() => m.set_address(*pick.get(&privs), page * 0x1000).unwrap(),
                    _ => {
                        let ram = m.regions().into_iter().find(|&r| m.region_info(r).unwrap().name == "ram").unwrap();
                        m.dirty().set(ram, DirtyClient::Vga, page % 2 == 0).unwrap();
                    }
                }
                check(&space.view(), &m.render(cpu).unwrap(), &probes, &memory.view())?;
                let (v, fresh) = (memory.view(), m.render(sys).unwrap());
                prop_assert!(v.base().is_none());
                prop_assert_eq!(v.ranges(), fresh.ranges());
            }
        }
    }
}
