//! What changed between two machines: `addrspace diff`.
//!
//! Two machines share no region ids (two dumps of one guest, a dump and a board file), so
//! regions are matched by their place in the tree: the path of names from a top region (one
//! without a container) down to the region, with `#i` after the name of the i-th same-named
//! sibling (i ≥ 1, in `info mtree` order: address, then priority, then list order). A top
//! region that is the root of address spaces is named after them too, so the three `bus
//! master container`s of a `pc` are told apart. Matched regions are compared field by field
//! (address, size, enabled, priority, kind, alias target); the flat views are compared per
//! address space, range by range, as `info mtree -f` prints them.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::io::mtree::flat::{flat_dump, FlatOptions, RangeLine};
use crate::io::mtree::lookup::kind;
use crate::machine::memory::{Memory, Snapshot};
use crate::model::region::{Body, RegionId};

/// What differs between machine A and machine B.
#[derive(Debug, Clone, Serialize)]
pub struct MachineDiff {
    /// Region changes, in tree order (`info mtree`'s, top regions in creation order).
    pub regions: Vec<RegionChange>,
    /// Flat-view changes, one entry per group of address spaces with the same changes.
    pub spaces: Vec<SpaceDiff>,
}

impl MachineDiff {
    /// Whether the two machines are the same (no region and no flat range differs).
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty() && self.spaces.is_empty()
    }
}

/// One change of one region (a region with several changes has several entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionChange {
    /// The region's place: names from its top region down (see the module doc).
    pub path: Vec<String>,
    /// What changed (in JSON, flattened: `"change": "moved", "from": ..., "to": ...`).
    #[serde(flatten)]
    pub change: Change,
}

/// How a region differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Change {
    /// Only in B.
    Added(RegionState),
    /// Only in A.
    Removed(RegionState),
    /// Its address in its container changed.
    Moved {
        /// In A.
        #[serde(serialize_with = "super::hex")]
        from: u64,
        /// In B.
        #[serde(serialize_with = "super::hex")]
        to: u64,
    },
    /// Its size changed.
    Resized {
        /// In A.
        #[serde(serialize_with = "crate::base::addr::hex128")]
        from: u128,
        /// In B.
        #[serde(serialize_with = "crate::base::addr::hex128")]
        to: u128,
    },
    /// Disabled in A, enabled in B.
    Enabled,
    /// Enabled in A, disabled in B.
    Disabled,
    /// Its priority changed.
    Priority {
        /// In A.
        from: i32,
        /// In B.
        to: i32,
    },
    /// Its kind changed (e.g. `ram` to `rom`, `container` to `io`).
    Kind {
        /// In A.
        from: &'static str,
        /// In B.
        to: &'static str,
    },
    /// An alias shows another region, or from another offset.
    Retargeted {
        /// In A.
        from: AliasOf,
        /// In B.
        to: AliasOf,
    },
}

/// A region's state, for an added or removed one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionState {
    /// Its kind (as [`super::Hop::kind`] says it).
    pub kind: &'static str,
    /// Its address in its container.
    #[serde(serialize_with = "super::hex")]
    pub addr: u64,
    /// Its size.
    #[serde(serialize_with = "crate::base::addr::hex128")]
    pub size: u128,
    /// Its priority.
    pub priority: i32,
    /// Whether it is enabled.
    pub enabled: bool,
    /// For an alias, what it shows.
    pub alias: Option<AliasOf>,
}

/// An alias's target (by its path) and offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasOf {
    /// The target's path.
    pub target: Vec<String>,
    /// The alias offset.
    #[serde(serialize_with = "super::hex")]
    pub offset: u64,
}

/// The flat ranges that differ in some address spaces.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceDiff {
    /// The address spaces (A's creation order, then B's new ones) with these changes.
    pub spaces: Vec<String>,
    /// Whether they exist in A.
    pub in_a: bool,
    /// Whether they exist in B.
    pub in_b: bool,
    /// The ranges only in A (`-`) and only in B (`+`), by address.
    pub lines: Vec<FlatChange>,
}

/// A flat range only one side has.
#[derive(Debug, Clone, Serialize)]
pub struct FlatChange {
    /// `-`: only in A; `+`: only in B.
    pub sign: char,
    /// The range, as `info mtree -f` shows it.
    pub range: RangeLine,
}

/// A place in the tree: the place of its container (or [`TOP`]) and its name segment.
/// Both machines share one table, so the same place has the same number on both sides.
#[derive(Default)]
struct Places {
    number: HashMap<(u32, String), u32>,
    segments: Vec<(u32, String)>,
}

/// The "container" of a top region's place.
const TOP: u32 = u32::MAX;

impl Places {
    fn place(&mut self, up: u32, segment: String) -> u32 {
        let next = self.segments.len() as u32;
        let n = *self.number.entry((up, segment.clone())).or_insert(next);
        if n == next {
            self.segments.push((up, segment));
        }
        n
    }

    /// The names from the top down to `place`.
    fn path(&self, mut place: u32) -> Vec<String> {
        let mut out = Vec::new();
        while place != TOP {
            let (up, segment) = &self.segments[place as usize];
            out.push(segment.clone());
            place = *up;
        }
        out.reverse();
        out
    }
}

/// A region as one side has it: its index among its siblings (in `info mtree` order, to list
/// changes in tree order), and its state with an alias target by place.
#[derive(Clone, PartialEq, Eq)]
struct Slot {
    index: usize,
    kind: &'static str,
    addr: u64,
    size: u128,
    priority: i32,
    enabled: bool,
    alias: Option<(u32, u64)>,
}

/// Every region of `st` by its place.
fn regions(st: &Snapshot<'_>, places: &mut Places) -> HashMap<u32, Slot> {
    let g = st.graph;
    let mut roots: HashMap<RegionId, Vec<String>> = HashMap::new();
    for sp in &st.spaces {
        roots.entry(sp.root).or_default().push(sp.name.to_string());
    }
    // Places first (alias targets are named by place), then states.
    let mut place_of: HashMap<RegionId, (u32, usize)> = HashMap::new();
    let mut seen_tops: HashMap<String, usize> = HashMap::new();
    for (t, id) in g.ids().filter(|&id| g.node(id).container.is_none()).enumerate() {
        let n = g.node(id);
        let top = match roots.get(&id) {
            // Named after its first address space (creation order): unique, and the same
            // when spaces are added or removed later (a second CPU's space over `system`
            // must not rename every region under it).
            Some(spaces) => format!("{} (AS {})", n.name, spaces[0]),
            None => indexed(&n.name, &mut seen_tops),
        };
        let mut stack = vec![(id, places.place(TOP, top), t)];
        while let Some((id, place, index)) = stack.pop() {
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (k, c) in super::tree::print_order(g, id).into_iter().enumerate() {
                let segment = indexed(&g.node(c).name, &mut seen);
                stack.push((c, places.place(place, segment), k));
            }
            place_of.insert(id, (place, index));
        }
    }
    place_of
        .iter()
        .map(|(&id, &(place, index))| {
            let n = g.node(id);
            let alias = match n.body {
                Body::Alias { target, offset } => Some((place_of.get(&target).map_or(TOP, |p| p.0), offset)),
                _ => None,
            };
            let slot = Slot {
                index,
                kind: kind(n),
                addr: n.addr,
                size: n.size,
                priority: n.priority,
                enabled: n.enabled,
                alias,
            };
            (place, slot)
        })
        .collect()
}

/// The sibling indices from the top down to `place` on one side (its tree position).
fn position(places: &Places, side: &HashMap<u32, Slot>, mut place: u32) -> Vec<usize> {
    let mut out = Vec::new();
    while place != TOP {
        out.push(side.get(&place).map_or(0, |s| s.index));
        place = places.segments[place as usize].0;
    }
    out.reverse();
    out
}

fn alias_of(places: &Places, (target, offset): (u32, u64)) -> AliasOf {
    AliasOf {
        target: if target == TOP { Vec::new() } else { places.path(target) },
        offset,
    }
}

fn state(places: &Places, s: &Slot) -> RegionState {
    RegionState {
        kind: s.kind,
        addr: s.addr,
        size: s.size,
        priority: s.priority,
        enabled: s.enabled,
        alias: s.alias.map(|a| alias_of(places, a)),
    }
}

/// `name`, or `name#i` for the i-th (i ≥ 1) use of it in `seen`.
fn indexed(name: &str, seen: &mut HashMap<String, usize>) -> String {
    let i = seen.entry(name.to_string()).or_insert(0);
    *i += 1;
    match *i {
        1 => name.to_string(),
        i => format!("{name}#{}", i - 1),
    }
}

fn compare(places: &Places, a: &Slot, b: &Slot, out: &mut Vec<Change>) {
    let mut push = |change| out.push(change); // in the order the text lists them
    if a.kind != b.kind {
        push(Change::Kind {
            from: a.kind,
            to: b.kind,
        });
    }
    if a.addr != b.addr {
        push(Change::Moved {
            from: a.addr,
            to: b.addr,
        });
    }
    if a.size != b.size {
        push(Change::Resized {
            from: a.size,
            to: b.size,
        });
    }
    if a.enabled != b.enabled {
        push(if b.enabled { Change::Enabled } else { Change::Disabled });
    }
    if a.priority != b.priority {
        push(Change::Priority {
            from: a.priority,
            to: b.priority,
        });
    }
    if let (Some(x), Some(y)) = (a.alias, b.alias) {
        if x != y {
            push(Change::Retargeted {
                from: alias_of(places, x),
                to: alias_of(places, y),
            });
        }
    }
}

/// Every space's flat ranges, by space name, in creation order.
fn flat_ranges(memory: &Memory) -> Vec<(String, Vec<RangeLine>)> {
    let mut out = Vec::new();
    for v in flat_dump(memory, &FlatOptions::default()).views {
        for sp in &v.address_spaces {
            out.push((sp.name.clone(), v.ranges.clone()));
        }
    }
    let order: HashMap<String, usize> = memory.inspect(|st| {
        st.spaces
            .iter()
            .enumerate()
            .map(|(i, sp)| (sp.name.to_string(), i))
            .collect()
    });
    out.sort_by_key(|(name, _)| order.get(name).copied());
    out
}

/// The ranges only one side has, by address (`-` first at the same address).
fn flat_changes(a: &[RangeLine], b: &[RangeLine]) -> Vec<FlatChange> {
    let text = |v: &[RangeLine]| v.iter().map(|r| r.to_string()).collect::<BTreeSet<String>>();
    let (ta, tb) = (text(a), text(b));
    let mut out: Vec<FlatChange> = a
        .iter()
        .filter(|r| !tb.contains(&r.to_string()))
        .map(|r| FlatChange {
            sign: '-',
            range: r.clone(),
        })
        .chain(b.iter().filter(|r| !ta.contains(&r.to_string())).map(|r| FlatChange {
            sign: '+',
            range: r.clone(),
        }))
        .collect();
    out.sort_by_key(|c| (c.range.start, c.sign == '+', c.range.end));
    out
}

/// What differs between the machines whose memory systems are `a` and `b`.
///
/// ```
/// use addrspace::{mtree, Memory, SIZE_2_64};
///
/// let machine = |bios_done: bool| {
///     let m = Memory::new();
///     let sys = m.container("system", SIZE_2_64).unwrap();
///     let ram = m.ram("ram", 0x10000).unwrap();
///     let shadow = m.alias("shadow", ram, 0xc000, 0x4000).unwrap();
///     m.add_subregion(sys, 0, ram).unwrap();
///     m.add_subregion_overlap(sys, 0xc000, shadow, 1).unwrap();
///     m.set_enabled(shadow, bios_done).unwrap();
///     let space = m.address_space("memory", sys).unwrap(); // a space lives while held
///     (m, space)
/// };
/// let d = mtree::diff::diff(&machine(false).0, &machine(true).0);
/// assert_eq!(d.regions.len(), 1);
/// assert_eq!(d.regions[0].path, ["system (AS memory)", "shadow"]);
/// assert_eq!(d.regions[0].change, mtree::diff::Change::Enabled);
/// assert!(d.spaces.is_empty()); // `shadow` shows `ram` where `ram` already was
/// assert!(mtree::diff::diff(&machine(true).0, &machine(true).0).is_empty());
/// ```
pub fn diff(a: &Memory, b: &Memory) -> MachineDiff {
    let mut places = Places::default();
    let ra = a.inspect(|st| regions(st, &mut places));
    let rb = b.inspect(|st| regions(st, &mut places));
    // Each change with the position of its region (in A, or in B for an added one).
    let mut changes: Vec<(Vec<usize>, RegionChange)> = Vec::new();
    for (&place, sa) in &ra {
        let mut found = Vec::new();
        match rb.get(&place) {
            Some(sb) => compare(&places, sa, sb, &mut found),
            None => found.push(Change::Removed(state(&places, sa))),
        }
        if !found.is_empty() {
            // Only now: a path costs its depth.
            let (path, pos) = (places.path(place), position(&places, &ra, place));
            changes.extend(found.into_iter().map(|change| {
                let path = path.clone();
                (pos.clone(), RegionChange { path, change })
            }));
        }
    }
    for (&place, sb) in rb.iter().filter(|(p, _)| !ra.contains_key(p)) {
        let change = Change::Added(state(&places, sb));
        let path = places.path(place);
        changes.push((position(&places, &rb, place), RegionChange { path, change }));
    }
    // Stable: one region's changes keep their order; the path settles equal positions of A and B.
    changes.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.path.cmp(&y.1.path)));
    let changes = changes.into_iter().map(|(_, c)| c).collect();

    let (fa, fb) = (flat_ranges(a), flat_ranges(b));
    let mut names: Vec<&str> = fa.iter().map(|(n, _)| n.as_str()).collect();
    names.extend(
        fb.iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !fa.iter().any(|(m, _)| m == n)),
    );
    let mut spaces: Vec<SpaceDiff> = Vec::new();
    for name in names {
        let find = |v: &[(String, Vec<RangeLine>)]| v.iter().find(|(n, _)| n == name).map(|(_, r)| r.clone());
        let (x, y) = (find(&fa), find(&fb));
        let lines = flat_changes(x.as_deref().unwrap_or(&[]), y.as_deref().unwrap_or(&[]));
        let (in_a, in_b) = (x.is_some(), y.is_some());
        if lines.is_empty() && in_a && in_b {
            continue;
        }
        let same = |s: &SpaceDiff| s.in_a == in_a && s.in_b == in_b && same_lines(&s.lines, &lines);
        match spaces.iter_mut().find(|s| same(s)) {
            Some(s) => s.spaces.push(name.to_string()),
            None => spaces.push(SpaceDiff {
                spaces: vec![name.to_string()],
                in_a,
                in_b,
                lines,
            }),
        }
    }
    MachineDiff {
        regions: changes,
        spaces,
    }
}

fn same_lines(x: &[FlatChange], y: &[FlatChange]) -> bool {
    x.len() == y.len()
        && x.iter()
            .zip(y)
            .all(|(p, q)| p.sign == q.sign && p.range.to_string() == q.range.to_string())
}
