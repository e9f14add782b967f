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
use crate::io::mtree::tree::{print_order, TypeWords};
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
    #[serde(serialize_with = "crate::base::addr::hex128")]
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

fn opt_hex<S: serde::Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => hex(v, s),
        None => s.serialize_none(),
    }
}

/// The top of `id`'s container chain.
fn top(g: &Graph, id: RegionId, known: &mut HashMap<RegionId, RegionId>) -> RegionId {
    // Every region climbed through remembers the top, so that aliases into a deep tree climb
    // it once in all, not once each.
    let mut climbed = Vec::new();
    let mut at = id;
    let t = loop {
        if let Some(&t) = known.get(&at) {
            break t;
        }
        climbed.push(at);
        match g.node(at).container {
            Some(c) => at = c,
            None => break at,
        }
    };
    for c in climbed {
        known.insert(c, t);
    }
    t
}

/// Ids in print order: the trees of the spaces' roots, then those of the alias targets met
/// on the way, each depth first. A region's id is its position in `order`, which holds each
/// region with its parent's position (`None` for a tree's top).
struct Numbering {
    ids: HashMap<RegionId, u32>,
    order: Vec<(RegionId, Option<usize>)>,
}

/// Every region's `id` in the document (for `lookup`'s answers, which name regions too).
pub(super) fn mtree_ids(st: &Snapshot<'_>) -> HashMap<RegionId, u32> {
    number(st).ids
}

fn number(st: &Snapshot<'_>) -> Numbering {
    let g = st.graph;
    let mut tops: Vec<RegionId> = Vec::new();
    let mut seen: HashSet<RegionId> = HashSet::new();
    let mut known = HashMap::new();
    for sp in &st.spaces {
        let t = top(g, sp.root, &mut known);
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
                let t = top(g, target, &mut known);
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
        let mut types = TypeWords::default();
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
                type_word: types.of(g, id),
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

impl RegionJson {
    /// The region without its subregions.
    fn shallow(&self) -> RegionJson {
        RegionJson {
            name: self.name.clone(),
            owner: self.owner.clone(),
            children: None,
            ..*self
        }
    }
}

/// How the text is laid out: serde_json's pretty form (two spaces per level) or compact.
#[derive(Clone, Copy)]
struct Layout {
    pretty: bool,
}

impl Layout {
    /// A line break and the indentation of nesting `level` (nothing when compact).
    fn indent(self, out: &mut String, level: usize) {
        if self.pretty {
            out.push('\n');
            for _ in 0..level {
                out.push_str("  ");
            }
        }
    }

    fn write<T: Serialize>(self, v: &T) -> serde_json::Result<String> {
        if self.pretty {
            serde_json::to_string_pretty(v)
        } else {
            serde_json::to_string(v)
        }
    }

    fn children(self) -> &'static str {
        if self.pretty {
            "\"children\": "
        } else {
            "\"children\":"
        }
    }
}

/// Writes `regions` as a JSON array whose `[` is at nesting `level`, without recursion: a
/// frame per open `children` array, however deep the tree.
fn write_regions(out: &mut String, regions: &[RegionJson], level: usize, lay: Layout) -> serde_json::Result<()> {
    if regions.is_empty() {
        out.push_str("[]");
        return Ok(());
    }
    out.push('[');
    // (items left, their nesting level, whether one was written, closes a region's object).
    let mut stack = vec![(regions.iter(), level + 1, false, false)];
    while let Some((items, lv, written, _)) = stack.last_mut() {
        let lv = *lv;
        let Some(r) = items.next() else {
            let (_, lv, _, in_region) = stack.pop().expect("a frame");
            lay.indent(out, lv - 1);
            out.push(']');
            if in_region {
                lay.indent(out, lv - 2);
                out.push('}');
            }
            continue;
        };
        if std::mem::replace(written, true) {
            out.push(',');
        }
        lay.indent(out, lv);
        let text = lay.write(&r.shallow())?;
        let text = match &r.children {
            Some(_) => text.strip_suffix('}').expect("an object").trim_end_matches('\n'),
            None => &text,
        };
        for (i, line) in text.split('\n').enumerate() {
            if i > 0 {
                lay.indent(out, lv);
            }
            out.push_str(line);
        }
        if let Some(kids) = &r.children {
            out.push(',');
            lay.indent(out, lv + 1);
            out.push_str(lay.children());
            if kids.is_empty() {
                out.push_str("[]");
                lay.indent(out, lv);
                out.push('}');
            } else {
                out.push('[');
                stack.push((kids.iter(), lv + 2, false, true));
            }
        }
    }
    Ok(())
}

/// Nesting depth beyond which [`MtreeJson::to_json`] writes compact JSON.
pub const PRETTY_DEPTH: usize = 100;

impl MtreeJson {
    /// The document as JSON, exactly what `serde_json::to_string_pretty` writes (or, for a
    /// region tree deeper than [`PRETTY_DEPTH`] levels, whose indentation would grow with the
    /// square of its depth, what `serde_json::to_string` writes), without recursing once per
    /// nesting level: a 20 000-deep region tree needs no more stack than a flat one (serde's
    /// own serialisation of [`RegionJson`] recurses into `children`).
    pub fn to_json(&self) -> serde_json::Result<String> {
        let lay = Layout {
            pretty: self.depth() <= PRETTY_DEPTH,
        };
        let rest = MtreeJson {
            format: self.format,
            address_spaces: self.address_spaces.clone(),
            regions: Vec::new(),
            flat_views: self.flat_views.clone(),
        };
        let text = lay.write(&rest)?;
        let empty = if lay.pretty {
            "\"regions\": []"
        } else {
            "\"regions\":[]"
        };
        let (head, tail) = text.split_once(empty).expect("the document has a regions field");
        let mut out = String::with_capacity(text.len() + self.regions.len() * 256);
        out.push_str(head);
        out.push_str(&empty[..empty.len() - 2]);
        write_regions(&mut out, &self.regions, 1, lay)?;
        out.push_str(tail);
        Ok(out)
    }

    /// The depth of the deepest region tree (1 for trees without subregions).
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack: Vec<(&RegionJson, usize)> = self.regions.iter().map(|r| (r, 1)).collect();
        while let Some((r, d)) = stack.pop() {
            deepest = deepest.max(d);
            stack.extend(r.children.iter().flatten().map(|c| (c, d + 1)));
        }
        deepest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::board;
    use crate::SIZE_2_64;

    #[test]
    fn to_json_writes_what_serde_writes() {
        for (file, text) in [
            ("pc.toml", include_str!("../../../../../boards/pc.toml")),
            ("virt.toml", include_str!("../../../../../boards/virt.toml")),
        ] {
            let m = board::load_str(text, file).unwrap();
            let doc = mtree_json(&m.memory, true);
            assert_eq!(
                doc.to_json().unwrap(),
                serde_json::to_string_pretty(&doc).unwrap(),
                "{file}"
            );
        }
        // An empty container, an alias to a region mapped nowhere, no spaces at all.
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let empty = m.container("empty", 0x1000).unwrap();
        m.add_subregion(sys, 0x1000, empty).unwrap();
        let doc = mtree_json(&m, false);
        assert_eq!(doc.to_json().unwrap(), serde_json::to_string_pretty(&doc).unwrap());
        let ram = m.ram("ram", 0x1000).unwrap();
        let al = m.alias("al", ram, 0, 0x1000).unwrap();
        m.add_subregion(sys, 0, al).unwrap();
        let _s = m.address_space("memory", sys).unwrap();
        let doc = mtree_json(&m, false);
        assert_eq!(doc.to_json().unwrap(), serde_json::to_string_pretty(&doc).unwrap());
    }

    /// A machine whose region tree is `depth` containers deep, `ram` at the bottom.
    fn chain(depth: usize) -> (Memory, crate::AddressSpace) {
        let m = Memory::new();
        let tx = m.transaction();
        let mut inner = m.ram("ram", 0x1000).unwrap();
        for k in 0..depth {
            let c = m.container(&format!("c{k}"), 0x1000).unwrap();
            m.add_subregion(c, 0, inner).unwrap();
            inner = c;
        }
        drop(tx);
        let space = m.address_space("memory", inner).unwrap();
        (m, space)
    }

    #[test]
    fn deep_trees_are_written_compact() {
        let doc = mtree_json(&chain(PRETTY_DEPTH).0, false);
        assert_eq!(doc.depth(), PRETTY_DEPTH + 1);
        assert_eq!(doc.to_json().unwrap(), serde_json::to_string(&doc).unwrap());
        let doc = mtree_json(&chain(PRETTY_DEPTH - 1).0, false);
        assert_eq!(doc.to_json().unwrap(), serde_json::to_string_pretty(&doc).unwrap());
    }

    #[test]
    fn a_deep_tree_needs_no_deep_stack() {
        const DEPTH: usize = 20_000;
        let (m, _space) = chain(DEPTH);
        // On a 256 KiB stack, where one frame per level would not fit.
        let text = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let doc = mtree_json(&m, false);
                let text = doc.to_json().unwrap();
                // Dropping the nested document recurses too: leak it on this small stack.
                std::mem::forget(doc);
                text
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(text.matches("\"children\":[").count(), DEPTH, "compact");
        assert!(text.contains("\"name\":\"ram\""));
    }
}
