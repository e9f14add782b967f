//! The model of `render_matches_reference`: a plain copy of the region graph (what the library
//! is asked to build), QEMU's rules on it written as naively as possible, and the failure
//! report.
//!
//! * [`World::reference`] hands the model to the naive reference renderer shared with the
//!   commit and layered-view properties (`common::reference`): the per-address "visibility"
//!   resolver of `docs/devel/memory.rst` (spec 2.5).
//! * [`World::reentries_in`] is the cycle rule of `addrspace::cycle`, by brute force:
//!   every rendering path from a region on a cycle, each one carried separately.
//! * [`World::physical_root`] is `memory_region_get_flatview_root` (spec 3.1).
//!
//! The model also counts what the cycle rule decided ([`CycleStats`]), so that the generator's
//! reach can be measured (`generator_reaches_ancestor_aliases`).

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use addrspace::mtree::{self, TreeOptions};
use addrspace::{AddressSpace, Memory, RegionId, RegionInfo, RegionKind};
use proptest::test_runner::TestCaseError;

use crate::common::reference::{RKind, RNode, Reference};

pub type TestResult<T = ()> = Result<T, TestCaseError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Ram,
    Rom,
    RamDevice,
    RomDevice,
    Io,
    Reservation,
    Alias { target: usize, offset: u64 },
}

impl Kind {
    /// QEMU's `terminates`: everything but containers and aliases renders itself.
    pub fn terminates(self) -> bool {
        !matches!(self, Kind::Container | Kind::Alias { .. })
    }

    /// Kinds with a RAM block (which limits `set_size`).
    pub fn ram_backed(self) -> bool {
        matches!(self, Kind::Ram | Kind::Rom | Kind::RamDevice | Kind::RomDevice)
    }

    pub fn word(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Ram => "ram",
            Kind::Rom => "rom",
            Kind::RamDevice => "ramd",
            Kind::RomDevice => "romdev",
            Kind::Io => "io",
            Kind::Reservation => "resv",
            Kind::Alias { .. } => "alias",
        }
    }
}

/// One region of the model: exactly the state the real graph should hold.
#[derive(Debug, Clone)]
pub struct MNode {
    pub id: RegionId,
    pub name: String,
    pub kind: Kind,
    pub size: u128,
    /// Length of the RAM block (the size can never grow past it).
    pub block: u128,
    pub addr: u64,
    pub prio: i32,
    pub enabled: bool,
    pub readonly: bool,
    pub nonvolatile: bool,
    pub unmergeable: bool,
    pub romd: bool,
    pub parent: Option<usize>,
    /// When it was last linked into its container (add or real move): larger is newer.
    pub stamp: u64,
}

/// What the cycle rule decided in one case.
#[derive(Debug, Clone, Copy, Default)]
pub struct CycleStats {
    /// Accepted changes after which rendering the changed region really comes back to it
    /// (through an alias into an ancestor, directly or through other aliases).
    pub accepted: u32,
    /// Changes refused because rendering would not finish.
    pub refused: u32,
    /// Of those: same address again, too many re-entries, too many visits.
    pub why: [u32; 3],
    /// A render compared with the reference really went around such a cycle.
    pub rendered: bool,
}

/// The real memory system and its model, driven in lockstep.
pub struct World {
    pub mem: Memory,
    pub m: Vec<MNode>,
    pub clock: u64,
    pub log: Vec<String>,
    /// Regions whose address changed without a commit (QEMU: `set_address` on an unmapped
    /// region, or on one whose container or itself is disabled, sets no update-pending
    /// flag). If such a region is a view's physical root, published views may legitimately
    /// be stale until the next commit, exactly as in QEMU.
    pub silent_moves: BTreeSet<usize>,
    /// Import round-trip mode: refuse (skip) what a dump cannot express.
    pub restricted: bool,
    /// Candidate address-space roots (restricted mode).
    pub tops: Vec<usize>,
    pub cycles: CycleStats,
    /// The container the last ancestor alias went into (the next one may join it), and the
    /// shift of its window.
    pub last_ancestor: Option<(usize, i128)>,
    /// The address space whose view a refused change must not replace.
    pub watch: Option<AddressSpace>,
    /// The cycle rule, checking the last change, found a path back to the changed region.
    pub came_back: bool,
}

impl World {
    pub fn new(restricted: bool) -> World {
        World {
            mem: Memory::new(),
            m: Vec::new(),
            clock: 0,
            log: Vec::new(),
            silent_moves: BTreeSet::new(),
            restricted,
            tops: Vec::new(),
            cycles: CycleStats::default(),
            last_ancestor: None,
            watch: None,
            came_back: false,
        }
    }

    pub fn ids(&self, i: usize) -> RegionId {
        self.m[i].id
    }

    /// Subregions of `p` in precedence order: priority descending, newest first.
    pub fn children(&self, p: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.m.len()).filter(|&i| self.m[i].parent == Some(p)).collect();
        v.sort_by_key(|&i| (Reverse(self.m[i].prio), Reverse(self.m[i].stamp)));
        v
    }

    /// Where rendering goes from each region: its alias target, then its subregions.
    fn successors(&self) -> Vec<Vec<usize>> {
        let mut next: Vec<Vec<usize>> = self
            .m
            .iter()
            .map(|n| match n.kind {
                Kind::Alias { target, .. } => vec![target],
                _ => Vec::new(),
            })
            .collect();
        for (i, n) in next.iter_mut().enumerate() {
            n.extend(self.children(i));
        }
        next
    }

    /// Whether `x` is `of` or lies inside it through containers alone.
    pub fn inside(&self, x: usize, of: usize) -> bool {
        let mut at = Some(x);
        while let Some(i) = at {
            if i == of {
                return true;
            }
            at = self.m[i].parent;
        }
        false
    }

    /// Whether rendering can come back to `i` (through an alias: containers alone cannot).
    pub fn on_cycle(&self, i: usize) -> bool {
        let next = self.successors();
        next[i].iter().any(|&s| reachable(&next, s, |_| true)[i])
    }

    /// The ancestor `up` levels above `p` (or the topmost one) and `p`'s offset inside it.
    pub fn ancestor(&self, p: usize, up: usize) -> (usize, u128) {
        let (mut q, mut d) = (p, 0u128);
        for _ in 0..up {
            match self.m[q].parent {
                Some(parent) => {
                    d += u128::from(self.m[q].addr);
                    q = parent;
                }
                None => break,
            }
        }
        (q, d)
    }

    /// The graph's cycles as the rules see them, computed once for several
    /// [`reentries_in`](Self::reentries_in).
    pub fn cycles_now(&self) -> Cycles {
        let next = self.successors();
        let cyclic: Vec<bool> = (0..self.m.len()).map(|x| self.on_cycle(x)).collect();
        let to_cycle = (0..self.m.len())
            .map(|x| reachable(&next, x, |_| true).iter().zip(&cyclic).any(|(&r, &c)| r && c))
            .collect();
        Cycles { next, cyclic, to_cycle }
    }

    /// The cycle rules (`addrspace::cycle`), naively: for a region `start` on a cycle,
    /// rendering it with an unbounded clip, through the regions that lead to a region on a
    /// cycle, never comes back to `start` at the same address, comes back at most
    /// `MAX_REENTRIES` times on one path, and visits at most `PROBE_BUDGET` regions (`start`
    /// included). `enabled` is ignored. `None` if not, else the most times a path came back
    /// to `start` (0 for a region on no cycle: the rules are about those on one).
    ///
    /// `c` holds the graph's cycles. The library's rule holds for a graph when it holds for every region; the model checks
    /// them all (see `World::cycle_rule`).
    pub fn reentries_in(&self, c: &Cycles, start: usize) -> Option<usize> {
        let Cycles { next, cyclic, to_cycle } = c;
        if !cyclic[start] {
            return Some(0);
        }
        let (mut visits, mut most) = (1usize, 0usize);
        // (region, base of its container, clip, bases of `start` on the path so far)
        type Visit = (usize, i128, (i128, i128), Vec<i128>);
        let mut stack: Vec<Visit> = vec![(start, 0, (i128::MIN / 4, i128::MAX / 4), Vec::new())];
        while let Some((i, base, clip, mut trips)) = stack.pop() {
            let n = &self.m[i];
            let base = base + i128::from(n.addr);
            let clip = (clip.0.max(base), clip.1.min(base + n.size as i128));
            if clip.0 >= clip.1 {
                continue;
            }
            if i == start {
                if trips.contains(&base) || trips.len() > addrspace::cycle::MAX_REENTRIES as usize {
                    return None;
                }
                most = most.max(trips.len());
                trips.push(base);
            }
            for &j in &next[i] {
                if !to_cycle[j] {
                    continue;
                }
                let b = match n.kind {
                    Kind::Alias { target, offset } if j == target => {
                        base - i128::from(self.m[target].addr) - i128::from(offset)
                    }
                    _ => base,
                };
                visits += 1;
                if visits > addrspace::cycle::PROBE_BUDGET {
                    return None;
                }
                stack.push((j, b, clip, trips.clone()));
            }
        }
        Some(most)
    }

    /// Whether rendering `root` really goes around a cycle: some path through enabled regions
    /// comes back to a region it went through, with a non-empty clip (explored up to
    /// `PROBE_BUDGET` visits).
    pub fn renders_a_cycle(&self, root: usize) -> bool {
        let next = self.successors();
        let mut visits = 0usize;
        // (region, base of its container, clip, regions on the path so far)
        type Visit = (usize, i128, (i128, i128), Vec<usize>);
        let mut stack: Vec<Visit> = vec![(root, 0, (i128::MIN / 4, i128::MAX / 4), Vec::new())];
        while let Some((i, base, clip, mut path)) = stack.pop() {
            let n = &self.m[i];
            let base = base + i128::from(n.addr);
            let clip = (clip.0.max(base), clip.1.min(base + n.size as i128));
            if !n.enabled || clip.0 >= clip.1 {
                continue;
            }
            if path.contains(&i) {
                return true;
            }
            path.push(i);
            for &j in &next[i] {
                visits += 1;
                if visits > addrspace::cycle::PROBE_BUDGET {
                    return false;
                }
                let b = match n.kind {
                    Kind::Alias { target, offset } if j == target => {
                        base - i128::from(self.m[target].addr) - i128::from(offset)
                    }
                    _ => base,
                };
                stack.push((j, b, clip, path.clone()));
            }
        }
        false
    }

    pub fn fail(&self, msg: impl std::fmt::Display) -> TestCaseError {
        TestCaseError::fail(format!("{msg}\n{}", self.describe()))
    }

    pub fn describe(&self) -> String {
        let mut s = String::from("---- operations ----\n");
        for l in &self.log {
            let _ = writeln!(s, "  {l}");
        }
        s.push_str("---- model (unmapped regions and their subtrees, precedence order) ----\n");
        for i in 0..self.m.len() {
            if self.m[i].parent.is_none() {
                self.describe_node(i, 1, &mut s);
            }
        }
        s.push_str("---- library: info mtree -D ----\n");
        s.push_str(&mtree::print_tree(&self.mem, &TreeOptions::DISABLED));
        s
    }

    fn describe_node(&self, i: usize, depth: usize, s: &mut String) {
        let n = &self.m[i];
        let _ = write!(
            s,
            "{:w$}{} {} addr={:#x} size={:#x} prio={} stamp={}",
            "",
            n.name,
            n.kind.word(),
            n.addr,
            n.size,
            n.prio,
            n.stamp,
            w = depth * 2
        );
        if let Kind::Alias { target, offset } = n.kind {
            let _ = write!(s, " -> {}+{offset:#x}", self.m[target].name);
        }
        for (on, word) in [
            (!n.enabled, "disabled"),
            (n.readonly, "ro"),
            (n.nonvolatile, "nv"),
            (n.unmergeable, "unmergeable"),
            (n.kind == Kind::RomDevice && !n.romd, "!romd"),
        ] {
            if on {
                let _ = write!(s, " [{word}]");
            }
        }
        s.push('\n');
        for c in self.children(i) {
            self.describe_node(c, depth + 1, s);
        }
    }

    /// The model as the shared naive reference renderer's graph (`common::reference`), with
    /// the model's own precedence order.
    pub fn reference(&self) -> Reference {
        let nodes = (0..self.m.len())
            .map(|i| {
                let n = &self.m[i];
                let children = self.children(i);
                let (kind, region_kind, alias) = match n.kind {
                    Kind::Alias { target, offset } => (
                        RKind::Alias { target, offset },
                        RegionKind::Alias,
                        Some((self.ids(target), offset)),
                    ),
                    // (The reference only needs to know that it terminates.)
                    k if k.terminates() => (RKind::Leaf, RegionKind::Io, None),
                    _ => (RKind::Container, RegionKind::Container, None),
                };
                let info = RegionInfo {
                    name: n.name.clone(),
                    kind: region_kind,
                    size: n.size,
                    addr: n.addr,
                    priority: n.prio,
                    enabled: n.enabled,
                    readonly: n.readonly,
                    nonvolatile: n.nonvolatile,
                    unmergeable: n.unmergeable,
                    romd: n.romd,
                    owner: None,
                    container: n.parent.map(|p| self.ids(p)),
                    subregions: children.iter().map(|&c| self.ids(c)).collect(),
                    alias,
                };
                RNode {
                    id: n.id,
                    info,
                    kind,
                    children,
                }
            })
            .collect();
        Reference::new(nodes)
    }

    /// QEMU's `memory_region_get_flatview_root` (spec 3.1), on the model.
    pub fn physical_root(&self, root: usize) -> Option<usize> {
        self.reference().physical_root(root)
    }
}

/// Regions reachable from `from` along `edges`, through regions that pass `open`.
/// Successors, regions on cycles, and regions that lead to one (`reachable` includes the
/// region itself, so a region on a cycle leads to one).
pub struct Cycles {
    next: Vec<Vec<usize>>,
    cyclic: Vec<bool>,
    to_cycle: Vec<bool>,
}

fn reachable(edges: &[Vec<usize>], from: usize, open: impl Fn(usize) -> bool) -> Vec<bool> {
    let mut seen = vec![false; edges.len()];
    let mut stack = vec![from];
    while let Some(x) = stack.pop() {
        if open(x) && !std::mem::replace(&mut seen[x], true) {
            stack.extend(&edges[x]);
        }
    }
    seen
}
