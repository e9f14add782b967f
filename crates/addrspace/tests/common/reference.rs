//! The naive reference renderer that the property tests compare flat views with.
//!
//! It exists so that no property test has to trust `Memory::render` (the renderer under test)
//! as its oracle. A [`Reference`] is a plain copy of a region graph; [`Reference::resolve`]
//! answers, one address at a time, which terminating region QEMU's "visibility" rules
//! (`docs/devel/memory.rst`, spec 2.5) pick, following aliases into their ancestors as QEMU
//! does (an address must lie inside every window on its path, which ends the recursion).
//! [`Reference::check_view`] compares a whole flat view with it: on both sides of every window
//! boundary of the graph and of every range boundary of the view (between two such points both
//! are linear, so this covers every address), plus the caller's probes, after checking the
//! structural invariants of a flat view.
//!
//! Where the graph comes from is up to the caller: the render property builds it from its own
//! model of what it asked the library to do (`proptest_render`), the commit and layered-view
//! properties read the library's graph back through `region_info` ([`Reference::of_memory`]),
//! which renders nothing. Dirty-log masks are not part of the reference.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use addrspace::{FlatView, GuestAddr, Memory, RegionId, RegionInfo, RegionKind, SIZE_2_64};

/// What one region is to the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RKind {
    /// Renders its subregions only.
    Container,
    /// Renders its subregions, then itself in the gaps (QEMU's `terminates`).
    Leaf,
    /// A window onto `target`, starting `offset` bytes into it.
    Alias { target: usize, offset: u64 },
}

/// One region of the reference graph: its attributes as `region_info` reports them, with
/// the alias target and subregions as node indices.
#[derive(Debug, Clone)]
pub struct RNode {
    pub id: RegionId,
    pub info: RegionInfo,
    pub kind: RKind,
    /// Subregions in precedence order (priority descending, newest first).
    pub children: Vec<usize>,
}

/// What a terminating region answers for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub region: RegionId,
    pub name: String,
    pub offset: u64,
    pub prio: i32,
    pub readonly: bool,
    pub nonvolatile: bool,
    pub unmergeable: bool,
    pub romd: bool,
}

/// Attributes OR-ed along the path from the root.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub readonly: bool,
    pub nonvolatile: bool,
    pub unmergeable: bool,
}

/// A region graph and the naive rules on it.
pub struct Reference {
    pub nodes: Vec<RNode>,
    index: HashMap<RegionId, usize>,
}

/// How many windows [`Reference::check_view`] collects boundaries from (cycles through
/// aliases are clipped, but their paths can still be many).
const BOUNDS_BUDGET: usize = 20_000;

impl Reference {
    pub fn new(nodes: Vec<RNode>) -> Reference {
        let index = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
        Reference { nodes, index }
    }

    /// The library's graph as `region_info` reports it (no rendering involved). The only
    /// thing taken on trust is the order of equal-priority siblings (newest first), which
    /// `region_info` cannot prove; a list that is not sorted by priority is an error.
    pub fn of_memory(mem: &Memory) -> Result<Reference, String> {
        let ids = mem.regions();
        let index: HashMap<RegionId, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        let at = |id: RegionId, what: &str| {
            index
                .get(&id)
                .copied()
                .ok_or_else(|| format!("{what} {id:?} is not among Memory::regions()"))
        };
        let mut nodes = Vec::with_capacity(ids.len());
        for &id in &ids {
            let info = mem.region_info(id).map_err(|e| format!("region_info({id:?}): {e}"))?;
            let kind = match (info.kind, info.alias) {
                (RegionKind::Alias, Some((target, offset))) => RKind::Alias {
                    target: at(target, "alias target of")?,
                    offset,
                },
                (RegionKind::Alias, None) => return Err(format!("alias {} has no target", info.name)),
                (k, _) if k.terminates() => RKind::Leaf,
                _ => RKind::Container,
            };
            let children = info
                .subregions
                .iter()
                .map(|&c| at(c, "subregion"))
                .collect::<Result<Vec<_>, _>>()?;
            nodes.push(RNode {
                id,
                info,
                kind,
                children,
            });
        }
        for n in &nodes {
            let prios: Vec<i32> = n.children.iter().map(|&c| nodes[c].info.priority).collect();
            if prios.windows(2).any(|w| w[0] < w[1]) {
                return Err(format!(
                    "subregions of {} are not in priority order: {prios:?}",
                    n.info.name
                ));
            }
        }
        Ok(Reference::new(nodes))
    }

    /// The node of region `id`.
    pub fn of(&self, id: RegionId) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// QEMU's `memory_region_get_flatview_root` (spec 3.1).
    pub fn physical_root(&self, root: usize) -> Option<usize> {
        let mut i = root;
        for _ in 0..=self.nodes.len() {
            let n = &self.nodes[i];
            if !n.info.enabled {
                return None;
            }
            match n.kind {
                RKind::Alias { target, offset } => {
                    if offset == 0 && n.info.size >= self.nodes[target].info.size {
                        i = target;
                        continue;
                    }
                    return Some(i);
                }
                RKind::Container => {
                    let enabled: Vec<usize> = n
                        .children
                        .iter()
                        .copied()
                        .filter(|&c| self.nodes[c].info.enabled)
                        .collect();
                    match enabled[..] {
                        [] => return None,
                        [only] if self.nodes[only].info.addr == 0 && n.info.size >= self.nodes[only].info.size => {
                            i = only
                        }
                        _ => return Some(i),
                    }
                }
                RKind::Leaf => return Some(i),
            }
        }
        Some(i)
    }

    /// The naive per-address resolver: which terminating region handles position `pos` of
    /// region `i`, with the flags OR-ed along the path so far.
    pub fn resolve(&self, i: usize, pos: u128, mut fl: Flags) -> Option<Hit> {
        let n = &self.nodes[i];
        if !n.info.enabled || pos >= n.info.size {
            return None;
        }
        fl.readonly |= n.info.readonly;
        fl.nonvolatile |= n.info.nonvolatile;
        fl.unmergeable |= n.info.unmergeable;
        if let RKind::Alias { target, offset } = n.kind {
            // Only the alias offset matters, not where the target is mapped.
            return self.resolve(target, pos + u128::from(offset), fl);
        }
        for &c in &n.children {
            let addr = u128::from(self.nodes[c].info.addr);
            if pos >= addr {
                if let Some(hit) = self.resolve(c, pos - addr, fl) {
                    return Some(hit);
                }
            }
        }
        (n.kind == RKind::Leaf).then(|| Hit {
            region: n.id,
            name: n.info.name.clone(),
            offset: pos as u64,
            prio: n.info.priority,
            readonly: fl.readonly,
            nonvolatile: fl.nonvolatile,
            unmergeable: fl.unmergeable,
            romd: n.info.romd,
        })
    }

    /// What the view of physical root `phys` shows at address `a`: the root is rendered at
    /// its own address (spec 3.1).
    pub fn at(&self, phys: Option<usize>, a: u64) -> Option<Hit> {
        let p = phys?;
        let pos = u128::from(a).checked_sub(u128::from(self.nodes[p].info.addr))?;
        self.resolve(p, pos, Flags::default())
    }

    /// Absolute start and end of every window reachable from region `i` placed at `start`
    /// (clamped to [0, 2^64]); disabled regions included, extra points do no harm. Windows
    /// are clipped as rendering clips them, so cycles through aliases end.
    pub fn bounds(&self, i: usize, start: i128, out: &mut BTreeSet<u128>, budget: &mut usize) {
        let clamp = |x: i128| x.clamp(0, SIZE_2_64 as i128) as u128;
        let mut stack = vec![(i, start, (i128::MIN / 4, i128::MAX / 4))];
        while let Some((i, start, clip)) = stack.pop() {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let n = &self.nodes[i];
            let clip = (clip.0.max(start), clip.1.min(start + n.info.size as i128));
            if clip.0 >= clip.1 {
                continue;
            }
            out.insert(clamp(clip.0));
            out.insert(clamp(clip.1));
            if let RKind::Alias { target, offset } = n.kind {
                stack.push((target, start - i128::from(offset), clip));
            }
            for &c in &n.children {
                stack.push((c, start + i128::from(self.nodes[c].info.addr), clip));
            }
        }
    }

    /// Compares `view` with what the reference renders from the physical root `phys`: the
    /// structural invariants, every range inside a terminating region, and every address
    /// (both sides of every window boundary of the graph and range boundary of the view, and
    /// `probes`), priorities included. The error names the first address where they differ.
    pub fn check_view(&self, phys: Option<usize>, view: &FlatView, probes: &[u64]) -> Result<(), String> {
        check_view_invariants(view)?;
        for r in view.ranges() {
            let Some(leaf) = self.of(r.region()).map(|i| &self.nodes[i]) else {
                return Err(format!("{r:?} names an unknown region"));
            };
            if leaf.kind != RKind::Leaf || u128::from(r.offset_in_region().0) + r.size() > leaf.info.size {
                return Err(format!("{r:?} is not inside terminating region {}", leaf.info.name));
            }
        }
        let mut edges = BTreeSet::new();
        if let Some(p) = phys {
            let mut budget = BOUNDS_BUDGET;
            self.bounds(p, i128::from(self.nodes[p].info.addr), &mut edges, &mut budget);
        }
        for r in view.ranges() {
            edges.insert(u128::from(r.start().0));
            edges.insert(r.end());
        }
        let mut points: BTreeSet<u64> = probes.iter().copied().collect();
        for e in edges {
            if e < SIZE_2_64 {
                points.insert(e as u64);
            }
            if e > 0 {
                points.insert((e - 1) as u64);
            }
        }
        for &a in &points {
            let (got, want) = (real_hit(view, a), self.at(phys, a));
            if got != want {
                return Err(format!("at {a:#x}: library {got:?}\n              reference {want:?}"));
            }
        }
        Ok(())
    }

    /// The graph, one region a line (`node: name kind ...`, children by node), for failure
    /// messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {i}: {} {:?} addr={:#x} size={:#x} prio={} enabled={} children={:?}",
                n.info.name, n.kind, n.info.addr, n.info.size, n.info.priority, n.info.enabled, n.children
            );
        }
        s
    }
}

/// What the library's view answers at `a`, as a [`Hit`].
pub fn real_hit(view: &FlatView, a: u64) -> Option<Hit> {
    view.lookup(GuestAddr(a)).map(|(r, off)| Hit {
        region: r.region(),
        name: r.name().to_string(),
        offset: off.0,
        prio: r.priority(),
        readonly: r.readonly(),
        nonvolatile: r.nonvolatile(),
        unmergeable: r.unmergeable(),
        romd: r.romd(),
    })
}

/// Structural invariants of any flat view: sorted, non-overlapping, non-empty ranges inside
/// the 64-bit space, and no two neighbours that `flatview_simplify` should have merged.
pub fn check_view_invariants(view: &FlatView) -> Result<(), String> {
    let rs = view.ranges().to_vec();
    for (i, r) in rs.iter().enumerate() {
        if r.size() == 0 {
            return Err(format!("range {i} {r:?} is empty"));
        }
        if r.end() > SIZE_2_64 {
            return Err(format!("range {i} {r:?} runs past 2^64"));
        }
        if u128::from(r.offset_in_region().0) + r.size() > SIZE_2_64 {
            return Err(format!("range {i} {r:?} has an offset past 2^64"));
        }
    }
    for (i, w) in rs.windows(2).enumerate() {
        let (a, b) = (&w[0], &w[1]);
        if a.end() > u128::from(b.start().0) {
            return Err(format!("ranges {i} {a:?} and {} {b:?} are unsorted or overlap", i + 1));
        }
        let mergeable = a.end() == u128::from(b.start().0)
            && a.region() == b.region()
            && Arc::ptr_eq(a.leaf(), b.leaf())
            && u128::from(a.offset_in_region().0) + a.size() == u128::from(b.offset_in_region().0)
            && a.readonly() == b.readonly()
            && a.nonvolatile() == b.nonvolatile()
            && a.romd() == b.romd()
            && !a.unmergeable()
            && !b.unmergeable();
        if mergeable {
            return Err(format!("ranges {i} {a:?} and {} {b:?} should have been merged", i + 1));
        }
    }
    Ok(())
}
