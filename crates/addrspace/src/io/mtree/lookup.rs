//! Where an address lands, and the path that led there: `addrspace lookup`.
//!
//! A flat view says which terminating region answers at an address; it has forgotten how the
//! region tree got there. [`lookup`] asks both: the published view gives the flat range and
//! its attributes, and a walk of the tree from the space's root, in QEMU's rendering order,
//! gives every container and alias crossed on the way. The walk makes the renderer's
//! decisions for one address: subregions highest precedence first (priority, then newest),
//! disabled regions skipped, each region's window clipping what lies below it (alias windows
//! included), a container with a hole at the address letting lower-precedence siblings show
//! through, and an MMIO region with subregions answering itself only where none of them do.

use std::collections::HashMap;

use serde::Serialize;

use crate::base::addr::GuestAddr;
use crate::machine::memory::{Memory, Snapshot, SpaceView};
use crate::model::graph::Graph;
use crate::model::region::{Backend, Body, Node, RegionId};
use crate::view::render::{children_within, physical_root_chain};

/// Why [`lookup`] could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// No address space has this name.
    #[error("no address space named {name:?}; the address spaces are: {}", known.join(", "))]
    #[non_exhaustive]
    UnknownSpace {
        /// The name asked for.
        name: String,
        /// The names that exist, in creation order.
        known: Vec<String>,
    },
}

/// A region, by name and by id (names repeat: a `pc` has 32 `virtio-mmio` regions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionRef {
    /// The region's id in its memory system; serialised as its `Display` form (`#12v0`).
    #[serde(serialize_with = "id_string")]
    pub id: RegionId,
    /// Its name.
    pub name: String,
    /// Its `id` in `addrspace mtree --json`'s document (numbered in `info mtree` print order),
    /// so an answer can be joined with the tree; `None` for a region that document does not
    /// list (one no address space reaches).
    pub mtree_id: Option<u32>,
}

fn id_string<S: serde::Serializer>(id: &RegionId, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// One region crossed on the way from a space's root to the region that answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The region.
    pub region: RegionRef,
    /// Its kind: `container`, `alias`, or the terminating kind (`ram`, `rom` for read-only
    /// RAM, `rom-device`, `io`, `ram-device`, `reservation`; an `io` region crossed is an
    /// MMIO region whose subregion answers).
    pub kind: &'static str,
    /// Its address inside its container (QEMU's `mr->addr`).
    #[serde(serialize_with = "super::hex")]
    pub addr: u64,
    /// Its priority among its siblings.
    pub priority: i32,
    /// The offset of the looked-up address inside this region.
    #[serde(serialize_with = "super::hex")]
    pub offset: u64,
    /// For an alias, the region it shows and where.
    pub alias: Option<AliasHop>,
}

/// An alias's window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasHop {
    /// The aliased region.
    pub target: RegionRef,
    /// The alias offset: where in the target the alias's window starts.
    #[serde(serialize_with = "super::hex")]
    pub offset: u64,
}

/// The flat range that answers, as the space's published flat view holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Landing {
    /// First address of the flat range.
    #[serde(serialize_with = "super::hex")]
    pub start: u64,
    /// Last address of the flat range (inclusive).
    #[serde(serialize_with = "super::hex")]
    pub last: u64,
    /// The terminating region.
    pub region: RegionRef,
    /// The offset of the looked-up address inside the region.
    #[serde(serialize_with = "super::hex")]
    pub offset: u64,
    /// The region's kind, as [`Hop::kind`] says it.
    pub kind: &'static str,
    /// QEMU's type word for the range in `info mtree -f` (`ram`, `rom`, `romd`, `ramd`,
    /// `i/o`).
    #[serde(rename = "type")]
    pub type_word: &'static str,
    /// The region's own priority.
    pub priority: i32,
    /// Read-only through this range (the region's flag or an enclosing region's).
    pub readonly: bool,
    /// A ROM device in romd mode (reads from its RAM); false for every other kind.
    pub romd: bool,
    /// Non-volatile.
    pub nonvolatile: bool,
    /// QEMU's dirty-log mask: bit 0 VGA, bit 1 CODE, bit 2 MIGRATION.
    pub dirty_log: u8,
}

/// What one address space shows at one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// The address space.
    pub space: String,
    /// The address looked up.
    #[serde(serialize_with = "super::hex")]
    pub addr: u64,
    /// The flat range that answers; `None`: unassigned (no range covers the address).
    pub range: Option<Landing>,
    /// Every region crossed, from the space's root down to the terminating region (the last
    /// hop); empty when the address is unassigned.
    pub path: Vec<Hop>,
}

/// What every address space (or the one named `space`) shows at `addr`: one [`Answer`] per
/// space, in creation order, with an unassigned answer where no range covers it.
///
/// ```
/// use addrspace::{mtree, Memory, SIZE_2_64};
///
/// let m = Memory::new();
/// let sys = m.container("system", SIZE_2_64).unwrap();
/// let ram = m.ram("ram", 0x10000).unwrap();
/// let low = m.alias("ram-below-4g", ram, 0x1000, 0x2000).unwrap();
/// m.add_subregion(sys, 0x4000, low).unwrap();
/// let _space = m.address_space("memory", sys).unwrap();
///
/// let answers = mtree::lookup(&m, 0x4010, None).unwrap();
/// let a = &answers[0];
/// let range = a.range.as_ref().unwrap();
/// assert_eq!((range.region.name.as_str(), range.offset), ("ram", 0x1010));
/// let names: Vec<&str> = a.path.iter().map(|h| h.region.name.as_str()).collect();
/// assert_eq!(names, ["system", "ram-below-4g", "ram"]);
/// assert_eq!(a.path[1].alias.as_ref().unwrap().offset, 0x1000);
///
/// assert!(mtree::lookup(&m, 0x9000, None).unwrap()[0].range.is_none()); // unassigned
/// assert!(mtree::lookup(&m, 0, Some("io")).is_err()); // no such space
/// ```
pub fn lookup(memory: &Memory, addr: u64, space: Option<&str>) -> Result<Vec<Answer>, LookupError> {
    memory.inspect(|st| {
        if let Some(name) = space {
            space_view(st, name)?;
        }
        let ids = super::json::mtree_ids(st);
        Ok(st
            .spaces
            .iter()
            .filter(|sp| space.is_none_or(|n| &*sp.name == n))
            .map(|sp| answer(st, sp, &RootChain::of(st.graph, sp.root), addr, &ids))
            .collect())
    })
}

/// [`lookup`] of many addresses in one address space, from one snapshot of the machine (a
/// picture of the map asks about every range: one lock and one numbering of the regions,
/// not one per address). The answers are in the order of `addrs`.
///
/// ```
/// use addrspace::{mtree, Memory, SIZE_2_64};
/// let m = Memory::new();
/// let sys = m.container("system", SIZE_2_64).unwrap();
/// let ram = m.ram("ram", 0x1000).unwrap();
/// m.add_subregion(sys, 0x1000, ram).unwrap();
/// let _space = m.address_space("memory", sys).unwrap();
/// let answers = mtree::lookup_in(&m, "memory", &[0, 0x1000]).unwrap();
/// assert!(answers[0].range.is_none());
/// assert_eq!(answers[1].range.as_ref().unwrap().region.name, "ram");
/// ```
pub fn lookup_in(memory: &Memory, space: &str, addrs: &[u64]) -> Result<Vec<Answer>, LookupError> {
    memory.inspect(|st| {
        let sp = space_view(st, space)?;
        let ids = super::json::mtree_ids(st);
        let root = RootChain::of(st.graph, sp.root);
        Ok(addrs.iter().map(|&a| answer(st, sp, &root, a, &ids)).collect())
    })
}

/// The space named `name`, or an error naming the spaces that exist.
fn space_view<'s>(st: &'s Snapshot<'_>, name: &str) -> Result<&'s SpaceView, LookupError> {
    st.spaces
        .iter()
        .find(|sp| &*sp.name == name)
        .ok_or_else(|| LookupError::UnknownSpace {
            name: name.to_string(),
            known: st.spaces.iter().map(|sp| sp.name.to_string()).collect(),
        })
}

fn region_ref(g: &Graph, ids: &HashMap<RegionId, u32>, id: RegionId) -> RegionRef {
    RegionRef {
        id,
        name: g.node(id).name.to_string(),
        mtree_id: ids.get(&id).copied(),
    }
}

/// A region's kind word: its board `type` (`rom` for read-only RAM).
pub(crate) fn kind(n: &Node) -> &'static str {
    n.kind().type_word(n.readonly)
}

fn answer(st: &Snapshot<'_>, sp: &SpaceView, root: &RootChain, addr: u64, ids: &HashMap<RegionId, u32>) -> Answer {
    let g = st.graph;
    let range = sp.view.lookup(GuestAddr(addr)).map(|(r, off)| Landing {
        start: r.start,
        last: r.last,
        region: region_ref(g, ids, r.region()),
        offset: off.0,
        kind: g.get(r.region()).map_or(r.leaf.backend().kind().as_str(), kind),
        type_word: r.type_word(),
        priority: r.priority,
        readonly: r.readonly,
        // Every range carries QEMU's romd_mode (true unless a ROM device left it); it means
        // something only for a ROM device, as `mtree --json` reports it.
        romd: r.romd && matches!(r.leaf.backend(), Backend::RomDevice(..)),
        nonvolatile: r.nonvolatile,
        dirty_log: r.dirty.bits(),
    });
    let path = path_to(g, root, addr)
        .into_iter()
        .map(|(id, base)| {
            let n = g.node(id);
            Hop {
                region: region_ref(g, ids, id),
                kind: kind(n),
                addr: n.addr,
                priority: n.priority,
                // The walk only enters a region whose window holds `addr`.
                offset: (i128::from(addr) - base) as u64,
                alias: match n.body {
                    Body::Alias { target, offset } => Some(AliasHop {
                        target: region_ref(g, ids, target),
                        offset,
                    }),
                    _ => None,
                },
            }
        })
        .collect();
    Answer {
        space: sp.name.to_string(),
        addr,
        range,
        path,
    }
}

/// A space's root and the regions QEMU's root simplification steps through from it
/// (full-size aliases at offset 0, only children at 0), up to `phys`, the region its view is
/// rendered from (at that region's own address, as QEMU's `render_memory_region` does).
struct RootChain {
    chain: Vec<RegionId>,
    phys: Option<RegionId>,
}

impl RootChain {
    fn of(g: &Graph, root: RegionId) -> RootChain {
        let mut chain = Vec::new();
        let phys = physical_root_chain(g, root, &mut chain);
        RootChain { chain, phys }
    }
}

/// The path at `addr` from a space's root: the simplified-away regions (which all hold `addr`
/// at the offset the view's root holds it), then the walk from the view's root.
fn path_to(g: &Graph, root: &RootChain, addr: u64) -> Vec<(RegionId, i128)> {
    let Some(phys) = root.phys else {
        return Vec::new();
    };
    let mut path = walk(g, phys, addr);
    if let Some(&(_, base)) = path.first() {
        let k = root.chain.iter().position(|&c| c == phys).unwrap_or(0);
        path.splice(0..0, root.chain[..k].iter().map(|&id| (id, base)));
    }
    path
}

/// A step of the walk, at `depth` in the path.
enum Step {
    /// Enter a region whose container's base (where its container's offset 0 sits) is `base`.
    Visit { id: RegionId, base: i128, depth: usize },
    /// An MMIO region with subregions, none of which answered: it answers itself.
    Fill { depth: usize },
}

/// The regions crossed to reach the one that answers at `addr`, each with its base (the
/// address its offset 0 sits at, which may lie outside the 64-bit space for an alias
/// target): the renderer's visit order (`view::render`) for a single address, stopping at the
/// first terminating region that claims it. Empty when nothing claims it.
fn walk(g: &Graph, root: RegionId, addr: u64) -> Vec<(RegionId, i128)> {
    let a = i128::from(addr);
    let mut path: Vec<(RegionId, i128)> = Vec::new();
    let mut stack = vec![Step::Visit {
        id: root,
        base: 0,
        depth: 0,
    }];
    while let Some(step) = stack.pop() {
        let (id, base, depth) = match step {
            Step::Fill { depth } => {
                path.truncate(depth + 1);
                return path;
            }
            Step::Visit { id, base, depth } => (id, base, depth),
        };
        let n = g.node(id);
        let base = base + i128::from(n.addr);
        // Ancestors' windows were checked on the way down: inside this window is inside
        // the renderer's clip.
        if !n.enabled || a < base || a >= base + n.size as i128 {
            continue;
        }
        path.truncate(depth);
        path.push((id, base));
        match &n.body {
            Body::Alias { target, offset } => {
                let t = g.node(*target);
                stack.push(Step::Visit {
                    id: *target,
                    base: base - i128::from(t.addr) - i128::from(*offset),
                    depth: depth + 1,
                });
            }
            Body::Leaf(_) if n.subregions.is_empty() => return path,
            Body::Leaf(_) | Body::Container => {
                if matches!(n.body, Body::Leaf(_)) {
                    stack.push(Step::Fill { depth });
                }
                // Lowest precedence pushed first, so the highest is tried first; only the
                // children that can hold `addr` (the renderer's child index).
                let off = (a - base) as u128;
                children_within(g, n, (off, off + 1), false, |c| {
                    stack.push(Step::Visit {
                        id: c,
                        base,
                        depth: depth + 1,
                    })
                });
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SIZE_2_64;

    fn names(a: &Answer) -> Vec<&str> {
        a.path.iter().map(|h| h.region.name.as_str()).collect()
    }

    #[test]
    fn a_simplified_root_answers_where_the_view_puts_it() {
        // `root` is also mapped elsewhere at 1 GiB; QEMU renders its space from `bank` (its
        // only child, at 0), at `bank`'s own address, so `dev` answers at 0x10, not at
        // 1 GiB + 0x10 (a walk from `root` at its address found nothing there).
        let m = Memory::new();
        let outer = m.container("outer", SIZE_2_64).unwrap();
        let root = m.container("root", 0x10000).unwrap();
        let bank = m.container("bank", 0x10000).unwrap();
        let dev = m.ram("dev", 0x100).unwrap();
        m.add_subregion(bank, 0, dev).unwrap();
        m.add_subregion(root, 0, bank).unwrap();
        m.add_subregion(outer, 0x4000_0000, root).unwrap();
        let _s = m.address_space("as", root).unwrap();
        let a = &lookup(&m, 0x10, None).unwrap()[0];
        assert_eq!(a.range.as_ref().map(|r| r.region.id), Some(dev));
        assert_eq!(names(a), ["root", "bank", "dev"]);
        assert_eq!(a.path.iter().map(|h| h.offset).collect::<Vec<_>>(), [0x10, 0x10, 0x10]);
    }

    #[test]
    fn a_container_of_many_children_answers_through_its_child_index() {
        // 100 children (the renderer's child index serves containers of 32 or more), one
        // overlapping pair: every address answers as the flat view does.
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        for k in 0..100u64 {
            let r = m.ram(&format!("r{k}"), 0x1000).unwrap();
            m.add_subregion(sys, k * 0x2000, r).unwrap();
        }
        let top = m.ram("top", 0x3000).unwrap();
        m.add_subregion_overlap(sys, 0x1_0800, top, 1).unwrap();
        let space = m.address_space("as", sys).unwrap();
        let view = space.view();
        let addrs: Vec<u64> = (0..0x64000u64).step_by(0x400).collect();
        let answers = lookup_in(&m, "as", &addrs).unwrap();
        for (a, ans) in addrs.iter().zip(&answers) {
            let want = view.lookup(GuestAddr(*a)).map(|(r, _)| r.region());
            assert_eq!(ans.range.as_ref().map(|l| l.region.id), want, "at {a:#x}");
            assert_eq!(ans.path.last().map(|h| h.region.id), want, "path at {a:#x}");
        }
    }

    #[test]
    fn holes_fall_through_priorities_win_and_disabled_is_skipped() {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let low = m.ram("low", 0x10000).unwrap();
        let pci = m.container("pci", 0x8000).unwrap();
        let bar = m.io("bar", 0x100, std::sync::Arc::new(crate::Unassigned)).unwrap();
        let off = m.ram("off", 0x10000).unwrap();
        m.add_subregion(pci, 0x1000, bar).unwrap();
        m.add_subregion_overlap(sys, 0, low, 0).unwrap();
        m.add_subregion_overlap(sys, 0, pci, 1).unwrap();
        m.add_subregion_overlap(sys, 0, off, 2).unwrap();
        m.set_enabled(off, false).unwrap();
        let _s = m.address_space("memory", sys).unwrap();

        let a = &lookup(&m, 0x1010, None).unwrap()[0];
        assert_eq!(names(a), ["system", "pci", "bar"]);
        assert_eq!(a.path[2].offset, 0x10);
        assert_eq!(a.range.as_ref().unwrap().region.id, bar);
        // A hole in `pci` shows `low` below it.
        let a = &lookup(&m, 0x2000, None).unwrap()[0];
        assert_eq!(names(a), ["system", "low"]);
        assert_eq!(a.range.as_ref().unwrap().offset, 0x2000);
        let a = &lookup(&m, 0x10000, None).unwrap()[0];
        assert!(a.range.is_none() && a.path.is_empty());
    }

    #[test]
    fn mmio_background_answers_only_where_no_subregion_does() {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let dev = m.io("dev", 0x1000, std::sync::Arc::new(crate::Unassigned)).unwrap();
        let reg = m.ram("reg", 0x10).unwrap();
        m.add_subregion(dev, 0x100, reg).unwrap();
        m.add_subregion(sys, 0x8000, dev).unwrap();
        let _s = m.address_space("memory", sys).unwrap();
        assert_eq!(names(&lookup(&m, 0x8104, None).unwrap()[0]), ["system", "dev", "reg"]);
        let a = &lookup(&m, 0x8200, None).unwrap()[0];
        assert_eq!(names(a), ["system", "dev"]);
        assert_eq!((a.path[1].kind, a.path[1].offset), ("io", 0x200));
    }

    #[test]
    fn unknown_space_names_the_known_ones() {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let _a = m.address_space("memory", sys).unwrap();
        let _b = m.address_space("I/O", sys).unwrap();
        let e = lookup(&m, 0, Some("mem")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no address space named \"mem\"; the address spaces are: memory, I/O"
        );
        assert_eq!(lookup(&m, 0, Some("I/O")).unwrap().len(), 1);
        assert_eq!(lookup(&m, 0, None).unwrap().len(), 2);
    }
}
