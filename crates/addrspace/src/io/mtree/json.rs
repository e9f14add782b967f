//! `info mtree` as data: the region tree as nested objects with ids, aliases by target id,
//! and the flat views with the address spaces that share them (`addrspace mtree --json`).
//!
//! The text of `info mtree` names regions, but names repeat (32 `virtio-mmio` on arm virt)
//! and an alias line only names its target; a program reading the map needs identities.
//! Here every region that any address space or alias can reach appears exactly once, nested
//! in its container, with an `id` numbered in `info mtree` print order (so two machines that
//! print the same tree number it the same, whatever order their regions were created in).
//! The schema, versioned by [`FORMAT`], is described in `docs/json-schema.md`.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::base::addr::hex;
use crate::io::mtree::flat::{range_type, view_groups};
use crate::io::mtree::tree::{print_order, region_type};
use crate::machine::memory::{Memory, Snapshot};
use crate::model::graph::Graph;
use crate::model::region::{Body, RegionId, RegionKind};
use crate::view::flatview::IndexSummary;

/// The value of the `format` field: the schema's name and version.
pub const FORMAT: &str = "addrspace-mtree/2";

/// The whole document.
#[derive(Debug, Clone, Serialize)]
pub struct MtreeJson {
    /// [`FORMAT`].
    pub format: &'static str,
    /// The address spaces, in creation order.
    pub address_spaces: Vec<SpaceJson>,
    /// The region trees: every region without a container that an address space or an alias
    /// reaches, first those of the address spaces (creation order), then those met through
    /// aliases.
    pub regions: Vec<RegionJson>,
    /// One entry per distinct flat view (as `info mtree -f` prints them).
    pub flat_views: Vec<FlatViewJson>,
}

/// An address space: its name and its root region's id.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceJson {
    /// Name.
    pub name: String,
    /// Id of its root region.
    pub root: u32,
}

/// One region, with its subregions nested.
#[derive(Debug, Clone, Serialize)]
pub struct RegionJson {
    /// Unique in the document; numbered in `info mtree` print order.
    pub id: u32,
    /// Name (not unique).
    pub name: String,
    /// `container`, `ram`, `ram-device`, `rom-device`, `io`, `reservation` or `alias`.
    pub kind: &'static str,
    /// QEMU's type word (`ram`, `rom`, `romd`, `ramd`, `i/o`; an alias shows its target's).
    #[serde(rename = "type")]
    pub type_word: &'static str,
    /// Offset in its container (for a top-level region, where it is rendered).
    #[serde(serialize_with = "hex")]
    pub addr: u64,
    /// Size in bytes, up to 2^64 (`0x10000000000000000`).
    #[serde(serialize_with = "hex128")]
    pub size: u128,
    /// Priority among its siblings.
    pub priority: i32,
    /// Whether it is rendered at all.
    pub enabled: bool,
    /// Read-only flag.
    pub readonly: bool,
    /// A ROM device in romd mode (reads from its RAM); false for every other kind.
    pub romd: bool,
    /// Non-volatile flag.
    pub nonvolatile: bool,
    /// Owner text (`info mtree -o`), if any.
    pub owner: Option<String>,
    /// For an alias: the id of its target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<u32>,
    /// For an alias: where its window starts in the target.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_hex")]
    pub offset: Option<u64>,
    /// Subregions in `info mtree` order; present for containers and for regions that have
    /// subregions (an MMIO container such as x86 `io`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<RegionJson>>,
}

/// One flat view.
#[derive(Debug, Clone, Serialize)]
pub struct FlatViewJson {
    /// Names of the address spaces using it, in creation order.
    pub address_spaces: Vec<String>,
    /// Id of its root after QEMU's simplification; `null` for the empty view.
    pub root: Option<u32>,
    /// The ranges, by address.
    pub ranges: Vec<RangeJson>,
    /// The lookup index (`-d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexSummary>,
}

/// One flat range.
#[derive(Debug, Clone, Serialize)]
pub struct RangeJson {
    /// First address.
    #[serde(serialize_with = "hex")]
    pub start: u64,
    /// Last address (inclusive).
    #[serde(serialize_with = "hex")]
    pub last: u64,
    /// Id of the terminating region (`null` only if no address space or alias reaches it any
    /// more, e.g. a view still shared with a space that was dropped).
    pub region: Option<u32>,
    /// Its name (as `info mtree -f` prints it).
    pub name: String,
    /// Offset of `start` in the region.
    #[serde(serialize_with = "hex")]
    pub offset: u64,
    /// Type word as `info mtree -f` prints it (`rom` when read-only through this range).
    #[serde(rename = "type")]
    pub type_word: &'static str,
    /// Read-only through this range.
    pub readonly: bool,
    /// Of a ROM device in romd mode; false for every other kind.
    pub romd: bool,
    /// Non-volatile.
    pub nonvolatile: bool,
    /// Not merged with its neighbours.
    pub unmergeable: bool,
    /// Dirty-logging clients (bits: 1 VGA, 2 code, 4 migration).
    pub dirty_log: u8,
}

fn hex128<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

fn opt_hex<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => hex(v, s),
        None => s.serialize_none(),
    }
}

/// The top of `id`'s container chain.
fn top(g: &Graph, mut id: RegionId) -> RegionId {
    while let Some(c) = g.node(id).container {
        id = c;
    }
    id
}

/// Ids in print order: every tree reached from the spaces, then from aliases met on the way.
/// Returns the trees' tops and the preorder of each (region, its parent's preorder position).
struct Numbering {
    ids: HashMap<RegionId, u32>,
    order: Vec<(RegionId, Option<usize>)>,
}

fn number(st: &Snapshot<'_>) -> Numbering {
    let g = st.graph;
    let mut tops: Vec<RegionId> = Vec::new();
    let mut seen: HashSet<RegionId> = HashSet::new();
    for sp in &st.spaces {
        let t = top(g, sp.root);
        if seen.insert(t) {
            tops.push(t);
        }
    }
    let mut n = Numbering {
        ids: HashMap::new(),
        order: Vec::new(),
    };
    let mut i = 0;
    while i < tops.len() {
        let mut stack = vec![(tops[i], None)];
        while let Some((id, parent)) = stack.pop() {
            let pos = n.order.len();
            n.ids.insert(id, pos as u32);
            n.order.push((id, parent));
            if let Body::Alias { target, .. } = g.node(id).body {
                let t = top(g, target);
                if seen.insert(t) {
                    tops.push(t);
                }
            }
            for c in print_order(g, id).into_iter().rev() {
                stack.push((c, Some(pos)));
            }
        }
        i += 1;
    }
    n
}

/// Builds the document for `memory`; `dispatch` adds each view's lookup index. Serialise it
/// with serde (`serde_json::to_string_pretty`) for `addrspace mtree --json`'s output.
///
/// ```
/// use addrspace::{mtree, Memory, SIZE_2_64};
/// let m = Memory::new();
/// let sys = m.container("system", SIZE_2_64).unwrap();
/// let ram = m.ram("ram", 0x1000).unwrap();
/// let low = m.alias("low", ram, 0, 0x1000).unwrap();
/// m.add_subregion(sys, 0, low).unwrap();
/// let _s = m.address_space("memory", sys).unwrap();
/// let doc = mtree::mtree_json(&m, false);
/// // `ram` is mapped nowhere: a tree of its own, met through the alias.
/// let (system, ram) = (&doc.regions[0], &doc.regions[1]);
/// let alias = &system.children.as_ref().unwrap()[0];
/// assert_eq!((alias.name.as_str(), alias.target), ("low", Some(ram.id)));
/// assert_eq!(doc.address_spaces[0].root, system.id);
/// assert_eq!(doc.flat_views[0].ranges[0].region, Some(ram.id));
/// ```
pub fn mtree_json(memory: &Memory, dispatch: bool) -> MtreeJson {
    memory.inspect(|st| {
        let g = st.graph;
        let Numbering { ids, order } = number(st);
        // Built children first (they follow their parent in preorder), without recursion.
        let mut kids: Vec<Vec<usize>> = vec![Vec::new(); order.len()];
        for (pos, &(_, parent)) in order.iter().enumerate() {
            if let Some(p) = parent {
                kids[p].push(pos);
            }
        }
        let mut built: Vec<Option<RegionJson>> = vec![None; order.len()];
        for pos in (0..order.len()).rev() {
            let id = order[pos].0;
            let n = g.node(id);
            let (target, offset) = match n.body {
                Body::Alias { target, offset } => (ids.get(&target).copied(), Some(offset)),
                _ => (None, None),
            };
            let children = (matches!(n.body, Body::Container) || !kids[pos].is_empty())
                .then(|| kids[pos].iter().filter_map(|&k| built[k].take()).collect());
            built[pos] = Some(RegionJson {
                id: pos as u32,
                name: n.name.to_string(),
                kind: n.kind().as_str(),
                type_word: region_type(g, id),
                addr: n.addr,
                size: n.size,
                priority: n.priority,
                enabled: n.enabled,
                readonly: n.readonly,
                romd: n.romd && n.kind() == RegionKind::RomDevice,
                nonvolatile: n.nonvolatile,
                owner: n.owner.as_deref().map(str::to_string),
                target,
                offset,
                children,
            });
        }
        let regions = order
            .iter()
            .enumerate()
            .filter(|(_, (_, parent))| parent.is_none())
            .filter_map(|(pos, _)| built[pos].take())
            .collect();
        let address_spaces = st
            .spaces
            .iter()
            .map(|sp| SpaceJson {
                name: sp.name.to_string(),
                root: ids[&sp.root],
            })
            .collect();
        let flat_views = view_groups(st)
            .into_iter()
            .map(|(phys, v, spaces)| FlatViewJson {
                address_spaces: spaces.iter().map(|sp| sp.name.to_string()).collect(),
                root: phys.and_then(|p| ids.get(&p).copied()),
                ranges: v
                    .ranges()
                    .iter()
                    .map(|r| RangeJson {
                        start: r.start,
                        last: r.last,
                        region: ids.get(&r.region()).copied(),
                        name: r.name().to_string(),
                        offset: r.offset,
                        type_word: range_type(g, r),
                        readonly: r.readonly,
                        romd: r.romd && r.leaf.backend.kind() == RegionKind::RomDevice,
                        nonvolatile: r.nonvolatile,
                        unmergeable: r.unmergeable,
                        dirty_log: r.dirty.bits(),
                    })
                    .collect(),
                index: if dispatch { v.index_summary() } else { None },
            })
            .collect();
        MtreeJson {
            format: FORMAT,
            address_spaces,
            regions,
            flat_views,
        }
    })
}
