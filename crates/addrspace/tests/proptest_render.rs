//! Property tests for rendering and for the `info mtree -D` round trip.
//!
//! 1. `render_matches_reference`: random region trees, built through the real [`Memory`] API
//!    with a plain model kept alongside, render to the same answer as a deliberately naive
//!    per-address resolver (the "visibility" rules of QEMU's `docs/devel/memory.rst`, spec
//!    2.5); every rendered view is also checked for the structural invariants of a flat view
//!    (sorted, disjoint, non-empty, fully merged).
//!    The reference starts from the physical root (spec 3.1, modelled in
//!    `World::physical_root` and compared with `Memory::physical_root`), which is the root
//!    itself whenever it has two enabled subregions; otherwise it exercises QEMU's root
//!    simplification. Addresses are compared on both sides of every window boundary of the
//!    model and every range boundary of the view, plus random probes.
//! 2. Same test: rendering twice gives equal views, and the view an address space published
//!    through its commits equals a fresh render after every operation (and it does not change
//!    inside an open transaction).
//! 3. `mtree_import_print_is_stable`: a random machine printed with `info mtree -D`, imported
//!    and printed again gives the same `-D` and `-f` text (in `mtree::canonical` form),
//!    provided the machine stays inside what a dump can express (see `Spec3`).
//!
//! The model records everything the library is asked to do, so that failures print a readable
//! log of the operations, the model tree and the real output.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use addrspace::mtree::{self, FlatOptions, Hints, TreeOptions};
use addrspace::{AddressSpace, FlatView, GuestAddr, Memory, RegionId, Unassigned, SIZE_2_64};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::TestCaseError;

type TestResult<T = ()> = Result<T, TestCaseError>;

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
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
    fn terminates(self) -> bool {
        !matches!(self, Kind::Container | Kind::Alias { .. })
    }

    /// Kinds with a RAM block (which limits `set_size`).
    fn ram_backed(self) -> bool {
        matches!(self, Kind::Ram | Kind::Rom | Kind::RamDevice | Kind::RomDevice)
    }

    fn word(self) -> &'static str {
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
struct MNode {
    id: RegionId,
    name: String,
    kind: Kind,
    size: u128,
    /// Length of the RAM block (the size can never grow past it).
    block: u128,
    addr: u64,
    prio: i32,
    enabled: bool,
    readonly: bool,
    nonvolatile: bool,
    unmergeable: bool,
    romd: bool,
    parent: Option<usize>,
    /// When it was last linked into its container (add or real move): larger is newer.
    stamp: u64,
}

/// What a terminating region answers for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hit {
    region: RegionId,
    name: String,
    offset: u64,
    prio: i32,
    readonly: bool,
    nonvolatile: bool,
    unmergeable: bool,
    romd: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    readonly: bool,
    nonvolatile: bool,
    unmergeable: bool,
}

/// The real memory system and its model, driven in lockstep.
struct World {
    mem: Memory,
    m: Vec<MNode>,
    clock: u64,
    log: Vec<String>,
    /// Regions whose address changed without a commit (QEMU: `set_address` on an unmapped
    /// region, or on one whose container or itself is disabled, sets no update-pending
    /// flag). If such a region is a view's physical root, published views may legitimately
    /// be stale until the next commit, exactly as in QEMU.
    silent_moves: BTreeSet<usize>,
    /// Import round-trip mode: refuse (skip) what a dump cannot express.
    restricted: bool,
    /// Candidate address-space roots (restricted mode).
    tops: Vec<usize>,
}

impl World {
    fn new(restricted: bool) -> World {
        World {
            mem: Memory::new(),
            m: Vec::new(),
            clock: 0,
            log: Vec::new(),
            silent_moves: BTreeSet::new(),
            restricted,
            tops: Vec::new(),
        }
    }

    fn ids(&self, i: usize) -> RegionId {
        self.m[i].id
    }

    /// Subregions of `p` in precedence order: priority descending, newest first.
    fn children(&self, p: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.m.len()).filter(|&i| self.m[i].parent == Some(p)).collect();
        v.sort_by_key(|&i| (Reverse(self.m[i].prio), Reverse(self.m[i].stamp)));
        v
    }

    /// Whether `to` is reachable from `from` through subregion and alias-target edges.
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = vec![false; self.m.len()];
        let mut stack = vec![from];
        while let Some(x) = stack.pop() {
            if x == to {
                return true;
            }
            if std::mem::replace(&mut seen[x], true) {
                continue;
            }
            stack.extend(self.children(x));
            if let Kind::Alias { target, .. } = self.m[x].kind {
                stack.push(target);
            }
        }
        false
    }

    /// Whether `x` is `of` or lies inside it through containers alone.
    fn inside(&self, x: usize, of: usize) -> bool {
        let mut at = Some(x);
        while let Some(i) = at {
            if i == of {
                return true;
            }
            at = self.m[i].parent;
        }
        false
    }

    /// The cycle rules (`addrspace::cycle`), naively: rendering `start` with an unbounded
    /// clip, through the regions that can come back to it, never comes back to `start` at
    /// the same address, comes back at most `MAX_REENTRIES` times on one path, and visits at
    /// most `PROBE_BUDGET` regions. `enabled` is ignored.
    fn renders_finitely(&self, start: usize) -> bool {
        let back: Vec<bool> = (0..self.m.len()).map(|x| self.reaches(x, start)).collect();
        let mut visits = 1usize;
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
                    return false;
                }
                trips.push(base);
            }
            let mut next: Vec<(usize, i128)> = Vec::new();
            if let Kind::Alias { target, offset } = n.kind {
                next.push((target, base - i128::from(self.m[target].addr) - i128::from(offset)));
            }
            next.extend(self.children(i).into_iter().map(|c| (c, base)));
            for (j, b) in next {
                if back[j] {
                    visits += 1;
                    if visits > addrspace::cycle::PROBE_BUDGET + 1 {
                        return false;
                    }
                    stack.push((j, b, clip, trips.clone()));
                }
            }
        }
        true
    }

    fn fail(&self, msg: impl std::fmt::Display) -> TestCaseError {
        TestCaseError::fail(format!("{msg}\n{}", self.describe()))
    }

    fn describe(&self) -> String {
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
        s.push_str(&mtree::print_tree(&self.mem, &TreeOptions { disabled: true }));
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

    /// Compares a library result with the model's verdict and logs the operation.
    fn expect(&mut self, what: String, real: addrspace::Result<()>, model_ok: bool) -> TestResult {
        let outcome = match &real {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        self.log.push(format!("{what} -> {outcome}"));
        if real.is_ok() != model_ok {
            let want = if model_ok { "success" } else { "an error" };
            return Err(self.fail(format!("{what}: library gave {outcome}, model expected {want}")));
        }
        Ok(())
    }

    fn create(&mut self, name: String, make: &Make) -> TestResult<usize> {
        let mem = &self.mem;
        let (kind, size, real) = match *make {
            Make::Ram(s) => (Kind::Ram, s, mem.ram(&name, s)),
            Make::Rom(s) => (Kind::Rom, s, mem.rom(&name, s)),
            Make::RamDevice(s) => (Kind::RamDevice, s, mem.ram_device(&name, s)),
            Make::RomDevice(s) => (Kind::RomDevice, s, mem.rom_device(&name, s, Arc::new(Unassigned))),
            Make::Io(s) => (Kind::Io, s, mem.io(&name, s, Arc::new(Unassigned))),
            Make::Reservation(s) => (Kind::Reservation, s, mem.reservation(&name, s)),
            Make::Container(s) => (Kind::Container, s, mem.container(&name, s)),
            Make::Alias { target, offset, size } => {
                // Any region, the root included: an alias of an ancestor, mapped below it,
                // shows a shifted window of it (ARM SSE's `alias 1`).
                let target = target.index(self.m.len());
                let real = mem.alias(&name, self.m[target].id, offset, size);
                (Kind::Alias { target, offset }, size, real)
            }
            Make::AliasNext { size } => {
                let (target, offset) = match self.m.last().map(|n| (n.kind, n.size)) {
                    Some((Kind::Alias { target, offset }, prev)) => {
                        (target, u64::try_from(u128::from(offset) + prev).unwrap_or(0))
                    }
                    _ => (self.m.len() - 1, 0),
                };
                let real = mem.alias(&name, self.m[target].id, offset, size);
                (Kind::Alias { target, offset }, size, real)
            }
        };
        let id = real.map_err(|e| self.fail(format!("creating {name} ({make:?}) failed: {e}")))?;
        Ok(self.push_node(id, name, kind, size))
    }

    /// An alias of region `target` (by model index).
    fn create_alias(&mut self, name: String, target: usize, offset: u64, size: u128) -> TestResult<usize> {
        let real = self.mem.alias(&name, self.m[target].id, offset, size);
        let id = real.map_err(|e| self.fail(format!("creating alias {name} failed: {e}")))?;
        Ok(self.push_node(id, name, Kind::Alias { target, offset }, size))
    }

    fn push_node(&mut self, id: RegionId, name: String, kind: Kind, size: u128) -> usize {
        let mut desc = format!("create {name} = {} size {size:#x}", kind.word());
        if let Kind::Alias { target, offset } = kind {
            let _ = write!(desc, " -> {}+{offset:#x}", self.m[target].name);
        }
        self.log.push(desc);
        self.m.push(MNode {
            id,
            name,
            kind,
            size,
            block: if kind.ram_backed() {
                size.div_ceil(4096) * 4096
            } else {
                0
            },
            addr: 0,
            prio: 0,
            enabled: true,
            readonly: kind == Kind::Rom,
            nonvolatile: false,
            unmergeable: false,
            romd: true,
            parent: None,
            stamp: 0,
        });
        self.m.len() - 1
    }

    /// Restricted mode, importer rule 4: among equal-priority overlapping siblings at
    /// different addresses the importer makes the *smaller* one win, because a dump does not
    /// show recency. `child` is about to become the newest sibling at `addr`, so it may only
    /// overlap an equal-priority sibling at another address if it is strictly smaller.
    /// (Equal sizes would make the lower address win, i.e. the one printed first.)
    ///
    /// At the same address and priority the dump does show recency (QEMU prints newest
    /// first), whatever the sizes, zero included.
    fn recency_expressible(&self, parent: usize, child: usize, addr: u64, prio: i32) -> bool {
        let size = self.m[child].size;
        let (a0, a1) = (u128::from(addr), u128::from(addr) + size);
        self.children(parent).into_iter().all(|s| {
            let n = &self.m[s];
            let (b0, b1) = (u128::from(n.addr), u128::from(n.addr) + n.size);
            // Other priorities and the same address are always expressible.
            s == child
                || n.prio != prio
                || n.addr == addr
                || size == 0
                || n.size == 0
                || a1 <= b0
                || b1 <= a0
                || size < n.size
        })
    }

    fn add(&mut self, p: usize, c: usize, addr: u64, prio: i32) -> TestResult {
        let what = format!(
            "add {} into {} at {addr:#x} prio {prio}",
            self.m[c].name, self.m[p].name
        );
        if self.restricted && !self.recency_expressible(p, c, addr, prio) {
            self.log.push(format!("{what} -> skipped (not expressible in a dump)"));
            return Ok(());
        }
        let mut ok = !matches!(self.m[p].kind, Kind::Alias { .. })
            && self.m[c].parent.is_none()
            && u128::from(addr) + self.m[c].size <= SIZE_2_64
            && !self.inside(p, c);
        if ok {
            // An alias into an ancestor: fine if rendering still ends.
            let saved = self.m[c].clone();
            self.m[c].parent = Some(p);
            self.m[c].addr = addr;
            ok = self.renders_finitely(p);
            self.m[c] = saved;
        }
        let real = self.mem.add_subregion_overlap(self.ids(p), addr, self.ids(c), prio);
        self.expect(what, real, ok)?;
        if ok {
            // Mapping into a disabled container, or mapping a disabled region, commits nothing
            // (QEMU too), yet it sets the region's address, which matters if the region is
            // also a view's physical root.
            if !(self.m[p].enabled && self.m[c].enabled) && self.m[c].addr != addr {
                self.silent_moves.insert(c);
            }
            self.clock += 1;
            let n = &mut self.m[c];
            n.parent = Some(p);
            n.addr = addr;
            n.prio = prio;
            n.stamp = self.clock;
        }
        Ok(())
    }

    fn set_enabled(&mut self, i: usize, on: bool) -> TestResult {
        let real = self.mem.set_enabled(self.ids(i), on);
        self.expect(format!("set_enabled {} {on}", self.m[i].name), real, true)?;
        self.m[i].enabled = on;
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> TestResult {
        let len = self.m.len();
        match *op {
            Op::Add {
                parent,
                child,
                fresh,
                addr,
                prio,
            } => {
                let pool: Vec<usize> = (1..len).filter(|&i| self.m[i].parent.is_none()).collect();
                let c = match (fresh, pool.is_empty()) {
                    (true, false) => pool[child.index(pool.len())],
                    _ => child.index(len),
                };
                self.add(parent.index(len), c, addr, prio)
            }
            Op::Remove { child } => {
                let c = child.index(len);
                match self.m[c].parent {
                    Some(p) => {
                        let real = self.mem.remove_subregion(self.ids(p), self.ids(c));
                        let what = format!("remove {} from {}", self.m[c].name, self.m[p].name);
                        self.expect(what, real, true)?;
                        self.m[c].parent = None;
                    }
                    None => {
                        // Not mapped anywhere: removing it from any container must fail.
                        let real = self.mem.remove_subregion(self.ids(0), self.ids(c));
                        let what = format!("remove unmapped {} from {}", self.m[c].name, self.m[0].name);
                        self.expect(what, real, false)?;
                    }
                }
                Ok(())
            }
            Op::Move { node, addr } => {
                let i = node.index(len);
                let n = self.m[i].clone();
                let what = format!("set_address {} {:#x} -> {addr:#x}", n.name, n.addr);
                if let (true, Some(p)) = (self.restricted, n.parent) {
                    if n.addr != addr && !self.recency_expressible(p, i, addr, n.prio) {
                        self.log.push(format!("{what} -> skipped (not expressible in a dump)"));
                        return Ok(());
                    }
                }
                let real = self.mem.set_address(self.ids(i), addr);
                match n.parent {
                    None => {
                        self.expect(what, real, true)?;
                        if n.addr != addr {
                            self.silent_moves.insert(i);
                        }
                        self.m[i].addr = addr;
                    }
                    Some(_) if n.addr == addr => self.expect(what, real, true)?,
                    Some(p) => {
                        let mut ok = u128::from(addr) + n.size <= SIZE_2_64;
                        if ok {
                            self.m[i].addr = addr;
                            ok = self.renders_finitely(p);
                            self.m[i].addr = n.addr;
                        }
                        self.expect(what, real, ok)?;
                        if ok {
                            // A real move is delete + re-add: it becomes the newest.
                            self.clock += 1;
                            self.m[i].addr = addr;
                            self.m[i].stamp = self.clock;
                            if !(self.m[p].enabled && n.enabled) {
                                self.silent_moves.insert(i);
                            }
                        }
                    }
                }
                Ok(())
            }
            Op::Enable { node, on } => self.set_enabled(node.index(len), on),
            Op::Solo { node } => {
                // Usually among the first region's subregions (the root's, in property 1).
                let kids = self.children(0);
                let i = if kids.is_empty() {
                    node.index(len)
                } else {
                    kids[node.index(kids.len())]
                };
                if let Some(p) = self.m[i].parent {
                    for s in self.children(p) {
                        self.set_enabled(s, s == i)?;
                    }
                }
                Ok(())
            }
            Op::Readonly { node, on } => {
                let i = node.index(len);
                let real = self.mem.set_readonly(self.ids(i), on);
                self.expect(format!("set_readonly {} {on}", self.m[i].name), real, true)?;
                self.m[i].readonly = on;
                Ok(())
            }
            Op::Nonvolatile { node, on } => {
                let i = node.index(len);
                let real = self.mem.set_nonvolatile(self.ids(i), on);
                self.expect(format!("set_nonvolatile {} {on}", self.m[i].name), real, true)?;
                self.m[i].nonvolatile = on;
                Ok(())
            }
            Op::Unmergeable { node, on } => {
                let i = node.index(len);
                if self.restricted {
                    // Not printed by `info mtree`, and it changes how ranges merge.
                    self.log.push(format!("set_unmergeable {} -> skipped", self.m[i].name));
                    return Ok(());
                }
                let real = self.mem.set_unmergeable(self.ids(i), on);
                self.expect(format!("set_unmergeable {} {on}", self.m[i].name), real, true)?;
                self.m[i].unmergeable = on;
                Ok(())
            }
            Op::Romd { node, on } => {
                let i = node.index(len);
                let ok = self.m[i].kind == Kind::RomDevice;
                let real = self.mem.set_romd(self.ids(i), on);
                self.expect(format!("set_romd {} {on}", self.m[i].name), real, ok)?;
                if ok {
                    self.m[i].romd = on;
                }
                Ok(())
            }
            Op::AliasOffset { node, offset } => {
                let i = node.index(len);
                let real = self.mem.set_alias_offset(self.ids(i), offset);
                let what = format!("set_alias_offset {} {offset:#x}", self.m[i].name);
                match self.m[i].kind {
                    Kind::Alias { target, offset: old } => {
                        self.m[i].kind = Kind::Alias { target, offset };
                        let ok = self.renders_finitely(i);
                        if !ok {
                            self.m[i].kind = Kind::Alias { target, offset: old };
                        }
                        self.expect(what, real, ok)?;
                    }
                    _ => self.expect(what, real, false)?,
                }
                Ok(())
            }
            Op::Resize { node, size } => {
                let i = node.index(len);
                let n = self.m[i].clone();
                let what = format!("set_size {} {:#x} -> {size:#x}", n.name, n.size);
                if self.restricted {
                    // Sizes are fine in a dump, but a resize could break the recency rule
                    // checked at add/move time; keep the restricted generator simple.
                    self.log.push(format!("{what} -> skipped"));
                    return Ok(());
                }
                let mut ok = size == n.size
                    || ((!n.kind.ram_backed() || size <= n.block)
                        && (n.parent.is_none() || u128::from(n.addr) + size <= SIZE_2_64));
                if ok && size != n.size {
                    self.m[i].size = size;
                    ok = self.renders_finitely(i);
                    self.m[i].size = n.size;
                }
                let real = self.mem.set_size(self.ids(i), size);
                self.expect(what, real, ok)?;
                if ok {
                    self.m[i].size = size;
                }
                Ok(())
            }
        }
    }

    // ---- the reference ------------------------------------------------------------------

    /// QEMU's `memory_region_get_flatview_root` (spec 3.1), on the model.
    fn physical_root(&self, root: usize) -> Option<usize> {
        let mut i = root;
        for _ in 0..=self.m.len() {
            let n = &self.m[i];
            if !n.enabled {
                return None;
            }
            match n.kind {
                Kind::Alias { target, offset } => {
                    if offset == 0 && n.size >= self.m[target].size {
                        i = target;
                        continue;
                    }
                    return Some(i);
                }
                Kind::Container => {
                    let enabled: Vec<usize> = self.children(i).into_iter().filter(|&c| self.m[c].enabled).collect();
                    match enabled[..] {
                        [] => return None,
                        [only] if self.m[only].addr == 0 && n.size >= self.m[only].size => i = only,
                        _ => return Some(i),
                    }
                }
                _ => return Some(i),
            }
        }
        Some(i)
    }

    /// The naive per-address resolver (docs/devel/memory.rst "Visibility", spec 2.5): which
    /// terminating region handles position `pos` of region `i`, with the flags OR-ed along
    /// the path so far.
    fn resolve(&self, i: usize, pos: u128, mut fl: Flags) -> Option<Hit> {
        let n = &self.m[i];
        if !n.enabled || pos >= n.size {
            return None;
        }
        fl.readonly |= n.readonly;
        fl.nonvolatile |= n.nonvolatile;
        fl.unmergeable |= n.unmergeable;
        if let Kind::Alias { target, offset } = n.kind {
            // Only the alias offset matters, not where the target is mapped.
            return self.resolve(target, pos + u128::from(offset), fl);
        }
        for c in self.children(i) {
            let addr = u128::from(self.m[c].addr);
            if pos >= addr {
                if let Some(hit) = self.resolve(c, pos - addr, fl) {
                    return Some(hit);
                }
            }
        }
        n.kind.terminates().then(|| Hit {
            region: n.id,
            name: n.name.clone(),
            offset: pos as u64,
            prio: n.prio,
            readonly: fl.readonly,
            nonvolatile: fl.nonvolatile,
            unmergeable: fl.unmergeable,
            romd: n.romd,
        })
    }

    /// Absolute start and end of every window reachable from region `i` placed at `start`
    /// (clamped to [0, 2^64]); disabled regions included, extra points do no harm. Windows
    /// are clipped as rendering clips them, so cycles through aliases end.
    fn bounds(&self, i: usize, start: i128, out: &mut BTreeSet<u128>, budget: &mut usize) {
        let clamp = |x: i128| x.clamp(0, SIZE_2_64 as i128) as u128;
        let mut stack = vec![(i, start, (i128::MIN / 4, i128::MAX / 4))];
        while let Some((i, start, clip)) = stack.pop() {
            if *budget == 0 {
                return;
            }
            *budget -= 1;
            let n = &self.m[i];
            let clip = (clip.0.max(start), clip.1.min(start + n.size as i128));
            if clip.0 >= clip.1 {
                continue;
            }
            out.insert(clamp(clip.0));
            out.insert(clamp(clip.1));
            if let Kind::Alias { target, offset } = n.kind {
                stack.push((target, start - i128::from(offset), clip));
            }
            for c in self.children(i) {
                stack.push((c, start + i128::from(self.m[c].addr), clip));
            }
        }
    }
}

fn real_hit(view: &FlatView, a: u64) -> Option<Hit> {
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
fn check_view_invariants(view: &FlatView) -> Result<(), String> {
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

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Make {
    Ram(u128),
    Rom(u128),
    RamDevice(u128),
    RomDevice(u128),
    Io(u128),
    Reservation(u128),
    Container(u128),
    /// `target` picks among the regions created before (but the first).
    Alias {
        target: Index,
        offset: u64,
        size: u128,
    },
    /// If the region created just before is a mapped alias: an alias of the same target that
    /// continues it (next offset, next address, same container and priority), so that the
    /// two render as adjacent pieces of one region that must merge (spec 2.4 example B).
    /// Otherwise an alias of the region created just before, at offset 0 (a chain starts).
    AliasNext {
        size: u128,
    },
}

#[derive(Debug, Clone)]
enum Op {
    /// `fresh`: the child is picked among the unmapped regions (other than the first one).
    Add {
        parent: Index,
        child: Index,
        fresh: bool,
        addr: u64,
        prio: i32,
    },
    Remove {
        child: Index,
    },
    Move {
        node: Index,
        addr: u64,
    },
    Enable {
        node: Index,
        on: bool,
    },
    Readonly {
        node: Index,
        on: bool,
    },
    Nonvolatile {
        node: Index,
        on: bool,
    },
    Unmergeable {
        node: Index,
        on: bool,
    },
    Romd {
        node: Index,
        on: bool,
    },
    AliasOffset {
        node: Index,
        offset: u64,
    },
    Resize {
        node: Index,
        size: u128,
    },
    /// Enables `node` (picked among the root's subregions) and disables all its siblings
    /// (exercises root simplification). Not in `op_s`: at most one per case, see `Spec1`.
    Solo {
        node: Index,
    },
}

/// Addresses on a coarse grid (lots of overlap and shared boundaries), a few arbitrary ones
/// and a few near the top of the address space (some of which overflow and must be refused).
fn addr_s() -> impl Strategy<Value = u64> {
    prop_oneof![
        10 => select(vec![0u64, 0, 0x7ff, 0x800, 0x801, 0x1000, 0x1000, 0x1800, 0x2000, 0x3000]),
        2 => select(vec![0x4000u64, 0x8000]),
        2 => 0u64..0x1_0000,
        1 => select(vec![u64::MAX - 0xfff, u64::MAX - 0x7fff, 1 << 63, u64::MAX]),
    ]
}

/// Sizes for RAM-backed regions (small: they are real host mappings).
fn ram_size_s(allow_zero: bool) -> impl Strategy<Value = u128> {
    let min = if allow_zero { 0 } else { 1 };
    prop_oneof![
        1 => Just(min),
        8 => select(vec![0x800u128, 0x1000, 0x2000, 0x3000, 0x8000, 0x1_0000]),
        2 => 2u128..0x3000,
    ]
}

/// Sizes for the other kinds, including 2^63 and 2^64. Never 1: an alias of size 1 prints
/// like one of size 0 (`X-X`), which the importer reads as 0.
fn size_s(allow_zero: bool) -> impl Strategy<Value = u128> {
    let min = if allow_zero { 0 } else { 0x1000 };
    prop_oneof![
        1 => Just(min),
        8 => select(vec![0x7ffu128, 0x800, 0x801, 0x1000, 0x2000, 0x3000, 0x4000, 0x8000, 0x1_0000]),
        2 => 2u128..0x3000,
        1 => select(vec![SIZE_2_64, SIZE_2_64, 1 << 63]),
    ]
}

fn offset_s() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => select(vec![0u64, 0, 0, 0x800, 0x1000, 0x3000]),
        2 => 0u64..0x4000,
        1 => select(vec![u64::MAX - 0x7ff, 1 << 63]),
    ]
}

fn prio_s() -> impl Strategy<Value = i32> {
    select(vec![-2, -1, 0, 0, 0, 0, 1, 2])
}

/// A region to create. `allow_zero`: size 0 for non-alias regions (a dump cannot express it:
/// QEMU prints sizes 0 and 1 alike and the importer reads `X-X` as 1 unless it is an alias).
fn make_s(allow_zero: bool) -> impl Strategy<Value = Make> {
    prop_oneof![
        3 => ram_size_s(allow_zero).prop_map(Make::Ram),
        1 => ram_size_s(allow_zero).prop_map(Make::Rom),
        1 => ram_size_s(allow_zero).prop_map(Make::RamDevice),
        1 => ram_size_s(allow_zero).prop_map(Make::RomDevice),
        2 => size_s(allow_zero).prop_map(Make::Io),
        1 => size_s(allow_zero).prop_map(Make::Reservation),
        3 => size_s(allow_zero).prop_map(Make::Container),
        4 => (any::<Index>(), offset_s(), size_s(true))
            .prop_map(|(target, offset, size)| Make::Alias { target, offset, size }),
        3 => size_s(true).prop_map(|size| Make::AliasNext { size }),
    ]
}

/// A region to create, whether to make it read-only at once, and usually where to map it:
/// in the first region (the root) for `None`, else in any earlier non-alias region.
#[derive(Debug, Clone)]
struct Placed {
    make: Make,
    readonly: bool,
    at: Option<(Option<Index>, u64, i32)>,
}

fn placed_make_s(allow_zero: bool) -> impl Strategy<Value = Placed> {
    make_s(allow_zero).prop_flat_map(|make| {
        // Continuing aliases often differ in read-only-ness from their neighbour: ranges that
        // must then stay unmerged.
        let ro = if matches!(make, Make::AliasNext { .. }) {
            0.4
        } else {
            0.15
        };
        (
            Just(make),
            prop::bool::weighted(ro),
            prop::option::weighted(0.85, (prop::option::weighted(0.6, any::<Index>()), addr_s(), prio_s())),
        )
            .prop_map(|(make, readonly, at)| Placed { make, readonly, at })
    })
}

fn op_s() -> impl Strategy<Value = Op> {
    let idx = any::<Index>;
    prop_oneof![
        15 => (idx(), idx(), prop::bool::weighted(0.8), addr_s(), prio_s())
            .prop_map(|(parent, child, fresh, addr, prio)| Op::Add { parent, child, fresh, addr, prio }),
        6 => idx().prop_map(|child| Op::Remove { child }),
        9 => (idx(), addr_s()).prop_map(|(node, addr)| Op::Move { node, addr }),
        6 => (idx(), prop::bool::weighted(0.7)).prop_map(|(node, on)| Op::Enable { node, on }),
        6 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Readonly { node, on }),
        3 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Nonvolatile { node, on }),
        3 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Unmergeable { node, on }),
        3 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Romd { node, on }),
        3 => (idx(), offset_s()).prop_map(|(node, offset)| Op::AliasOffset { node, offset }),
        3 => (idx(), size_s(true)).prop_map(|(node, size)| Op::Resize { node, size }),
    ]
}

/// Creates every region of `makes` (named after its kind and index) and maps it where asked,
/// the parent chosen among the non-alias regions that exist already.
fn build(w: &mut World, makes: &[Placed]) -> TestResult {
    for Placed { make, readonly, at } in makes {
        let name = format!(
            "{}{}",
            match make {
                Make::Ram(_) => "ram",
                Make::Rom(_) => "rom",
                Make::RamDevice(_) => "ramd",
                Make::RomDevice(_) => "romdev",
                Make::Io(_) => "io",
                Make::Reservation(_) => "resv",
                Make::Container(_) => "cont",
                Make::Alias { .. } | Make::AliasNext { .. } => "alias",
            },
            w.m.len()
        );
        // Where a continuing alias goes: right after the previous one.
        let next_to = match (make, w.m.last()) {
            (Make::AliasNext { .. }, Some(prev)) if matches!(prev.kind, Kind::Alias { .. }) => {
                let addr = u64::try_from(u128::from(prev.addr) + prev.size).ok();
                prev.parent.zip(addr).map(|(p, a)| (p, a, prev.prio))
            }
            _ => None,
        };
        let parents: Vec<usize> = (0..w.m.len())
            .filter(|&i| !matches!(w.m[i].kind, Kind::Alias { .. }))
            .collect();
        let c = w.create(name, make)?;
        if *readonly {
            let real = w.mem.set_readonly(w.ids(c), true);
            w.expect(format!("set_readonly {} true", w.m[c].name), real, true)?;
            w.m[c].readonly = true;
        }
        if let Some((p, addr, prio)) = next_to {
            w.add(p, c, addr, prio)?;
        } else if let Some((p, addr, prio)) = at {
            let p = p.map_or(0, |p| parents[p.index(parents.len())]);
            w.add(p, c, *addr, *prio)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Properties 1 and 2: rendering against the reference
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Spec1 {
    /// The root is an MMIO container (fills its own gaps) instead of a pure container.
    root_io: bool,
    root_size: u128,
    makes: Vec<Placed>,
    ops: Vec<Op>,
    /// Ops in `[a, b)` run inside one explicit transaction.
    tx: (Index, Index),
    /// Extra addresses to probe besides the boundaries.
    probes: Vec<u64>,
    bank: Option<Bank>,
    /// An `Op::Solo` inserted at this position of `ops`.
    solo: Option<(Index, Index)>,
}

/// A bank of many small devices in one container (enough subregions for the renderer's
/// per-container child index), mapped in the root and seen again through an alias window
/// (a clipped visit, the case the index is for).
#[derive(Debug, Clone)]
struct Bank {
    addr: u64,
    prio: i32,
    /// The window: offset in the bank, size, address in the root, priority.
    window: (u64, u128, u64, i32),
    /// Devices: RAM (else MMIO), address in the bank, size, priority.
    devices: Vec<(bool, u64, u128, i32)>,
}

fn bank_s() -> impl Strategy<Value = Bank> {
    // A 0x100 grid, sometimes off by a byte or so (edges of the child index's searches).
    let grid = || ((0u64..0x100), select(vec![0u64, 0, 0, 0, 1, 0x7f, 0xff])).prop_map(|(x, d)| x * 0x100 + d);
    (
        select(vec![0u64, 0x1000, 0x2_0000]),
        prio_s(),
        (
            grid(),
            select(vec![0x800u128, 0x1000, 0x3000, 0x8000, 0x2801]),
            select(vec![0u64, 0x3_0000]),
            0..3,
        ),
        prop::collection::vec(
            (
                prop::bool::weighted(0.3),
                grid(),
                select(vec![0x80u128, 0x100, 0x180, 0x200, 0x800, 0x101, 0x3000]),
                -1i32..=1,
            ),
            32..48,
        ),
    )
        .prop_map(|(addr, prio, window, devices)| Bank {
            addr,
            prio,
            window,
            devices,
        })
}

fn spec1_s() -> impl Strategy<Value = Spec1> {
    (
        prop::bool::weighted(0.2),
        select(vec![SIZE_2_64, SIZE_2_64, 0x1_0000, 0x8000]),
        prop::collection::vec(placed_make_s(true), 2..24),
        prop::collection::vec(op_s(), 0..40),
        (any::<Index>(), any::<Index>()),
        prop::collection::vec(prop_oneof![0u64..0x2_0000, any::<u64>()], 8),
        prop::option::weighted(0.25, bank_s()),
        prop::option::weighted(0.15, (any::<Index>(), any::<Index>())),
    )
        .prop_map(|(root_io, root_size, makes, ops, tx, probes, bank, solo)| Spec1 {
            root_io,
            root_size,
            makes,
            ops,
            tx,
            probes,
            bank,
            solo,
        })
}

fn build_bank(w: &mut World, root: usize, bank: &Bank) -> TestResult {
    let b = w.create(format!("bank{}", w.m.len()), &Make::Container(0x1_0000))?;
    w.add(root, b, bank.addr, bank.prio)?;
    for &(ram, addr, size, prio) in &bank.devices {
        let make = if ram { Make::Ram(size) } else { Make::Io(size) };
        let d = w.create(format!("dev{}", w.m.len()), &make)?;
        w.add(b, d, addr, prio)?;
    }
    let (offset, size, addr, prio) = bank.window;
    let a = w.create_alias(format!("bankwin{}", w.m.len()), b, offset, size)?;
    w.add(root, a, addr, prio)
}

fn run_spec1(spec: &Spec1) -> TestResult {
    let mut w = World::new(false);
    let root_make = if spec.root_io {
        Make::Io(spec.root_size)
    } else {
        Make::Container(spec.root_size)
    };
    let root = w.create("root".to_string(), &root_make)?;
    // Published from the start, so every commit below updates it.
    let space = w.mem.address_space("as", w.ids(root)).map_err(|e| w.fail(e))?;
    build(&mut w, &spec.makes)?;
    if let Some(bank) = &spec.bank {
        build_bank(&mut w, root, bank)?;
    }

    let mut ops = spec.ops.clone();
    if let Some((at, node)) = spec.solo {
        ops.insert(at.index(ops.len() + 1), Op::Solo { node });
    }
    let n = ops.len();
    let (mut a, mut b) = (spec.tx.0.index(n + 1), spec.tx.1.index(n + 1));
    if a > b {
        std::mem::swap(&mut a, &mut b);
    }
    for op in &ops[..a] {
        w.apply(op)?;
        check_published(&w, root, &space)?;
    }
    {
        let mem = w.mem.clone();
        let tx = mem.transaction();
        let before = space.view();
        w.log.push("begin transaction".to_string());
        for op in &ops[a..b] {
            w.apply(op)?;
            // Readers keep seeing the view of the last commit while a transaction is open.
            if !Arc::ptr_eq(&before, &space.view()) {
                return Err(w.fail("the published view changed inside a transaction"));
            }
        }
        tx.commit();
        w.log.push("commit".to_string());
        check_published(&w, root, &space)?;
    }
    for op in &ops[b..] {
        w.apply(op)?;
        check_published(&w, root, &space)?;
    }
    check_render(&w, root, &space, &spec.probes)
}

/// Property 2, after every committed change: what the address space published is what a
/// fresh render gives (unless its physical root moved without a commit, see `silent_moves`).
fn check_published(w: &World, root: usize, space: &AddressSpace) -> TestResult {
    if w.physical_root(root).is_some_and(|p| w.silent_moves.contains(&p)) {
        return Ok(());
    }
    let fresh = w.mem.render(w.ids(root)).map_err(|e| w.fail(e))?;
    let published = space.view();
    if published.ranges() != fresh.ranges() || published.root() != fresh.root() {
        return Err(w.fail(format!(
            "published view differs from a fresh render after the last operation\npublished: {published:#?}\nfresh: {fresh:#?}"
        )));
    }
    Ok(())
}

fn check_render(w: &World, root: usize, space: &AddressSpace, probes: &[u64]) -> TestResult {
    // The model's precedence lists must be the library's (otherwise nothing below is fair).
    for i in 0..w.m.len() {
        let info = w.mem.region_info(w.ids(i)).map_err(|e| w.fail(e))?;
        let want: Vec<RegionId> = w.children(i).into_iter().map(|c| w.ids(c)).collect();
        if info.subregions != want {
            return Err(w.fail(format!(
                "subregion order of {} differs: library {:?}, model {:?}",
                w.m[i].name, info.subregions, want
            )));
        }
    }

    let phys = w.physical_root(root);
    let real_phys = w.mem.physical_root(w.ids(root)).map_err(|e| w.fail(e))?;
    if real_phys != phys.map(|p| w.ids(p)) {
        return Err(w.fail(format!(
            "physical root: library {real_phys:?}, model {:?}",
            phys.map(|p| &w.m[p].name)
        )));
    }

    let view = w.mem.render(w.ids(root)).map_err(|e| w.fail(e))?;
    let ctx = |msg: String| w.fail(format!("{msg}\nrendered view: {view:#?}"));
    if view.root() != real_phys {
        return Err(ctx(format!("view root {:?} is not the physical root", view.root())));
    }
    check_view_invariants(&view).map_err(&ctx)?;

    // Every range names a terminating region and lies inside it.
    for r in view.ranges() {
        let Some(leaf) = w.m.iter().find(|n| n.id == r.region()) else {
            return Err(ctx(format!("{r:?} names an unknown region")));
        };
        if !leaf.kind.terminates() || u128::from(r.offset_in_region().0) + r.size() > leaf.size {
            return Err(ctx(format!("{r:?} is not inside terminating region {}", leaf.name)));
        }
    }

    // Addresses to compare: both sides of every window boundary of the model, of every range
    // boundary of the view, and some random ones.
    let mut edges = BTreeSet::new();
    if let Some(p) = phys {
        let mut budget = 20_000;
        w.bounds(p, i128::from(w.m[p].addr), &mut edges, &mut budget);
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
        // The view of the physical root renders it at its own address (spec 3.1).
        let want = phys.and_then(|p| {
            let pos = u128::from(a).checked_sub(u128::from(w.m[p].addr))?;
            w.resolve(p, pos, Flags::default())
        });
        let got = real_hit(&view, a);
        if got != want {
            return Err(ctx(format!(
                "at {a:#x}: library {got:?}\n              reference {want:?}"
            )));
        }
    }

    // Property 2: rendering is deterministic, and what the address space published through
    // its commits is what a fresh render gives.
    let again = w.mem.render(w.ids(root)).map_err(|e| w.fail(e))?;
    if again.ranges() != view.ranges() {
        return Err(ctx(format!("second render differs: {again:#?}")));
    }
    let published = space.view();
    check_view_invariants(&published).map_err(&ctx)?;
    let stale_ok = phys.is_some_and(|p| w.silent_moves.contains(&p));
    if !stale_ok && (published.ranges() != view.ranges() || published.root() != view.root()) {
        return Err(ctx(format!(
            "published view differs from a fresh render: {published:#?}"
        )));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Properties 1 and 2.
    #[test]
    fn render_matches_reference(spec in spec1_s()) {
        run_spec1(&spec)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Property 3: info mtree -D -> import -> print is stable
// ---------------------------------------------------------------------------------------------

/// A random machine restricted to what an `info mtree -D` dump (plus hints) can express:
///
/// * every region has a unique name, so the hints (which are by name) are unambiguous;
/// * no non-alias region of size 0: QEMU prints sizes 0 and 1 alike (`X-X`) and the importer
///   reads that as 1 unless the line is an alias (and no size 1 aliases, for the same reason:
///   the size generators never produce 1);
/// * `i/o`-printed regions with children that fill their gaps (io, reservations, ROM devices
///   out of romd mode) are listed in `hints.mmio_containers`, and empty containers in
///   `hints.pure_containers`: a dump prints both as `i/o`, and the importer's default is the
///   opposite;
/// * read-only regions are listed in `hints.readonly`: only RAM shows read-only (`rom`); an
///   alias, container or MMIO region prints its (target's) own type word;
/// * no unmergeable flags (not printed, and they change merging in `info mtree -f`);
/// * equal-priority overlapping siblings are at the same address, or the newer one is strictly
///   smaller (importer rule 4: a dump does not show recency, so the smaller one is taken to
///   win), see `World::recency_expressible`; no resizes, which could break that afterwards;
/// * address-space names are unique and their creation order is given in
///   `hints.address_space_order` (`info mtree -f` lists spaces in creation order, which the
///   `-D` dump does not show);
/// * address spaces are created after the last change, so their published views are fresh
///   (a `set_address` on an unmapped root commits nothing, in QEMU too).
#[derive(Debug, Clone)]
struct Spec3 {
    /// Root regions: (MMIO container instead of a pure one, size).
    roots: Vec<(bool, u128)>,
    /// A "bus master" alias of one root (offset 0, full size), maybe disabled.
    bus_master: Option<(Index, bool)>,
    makes: Vec<Placed>,
    ops: Vec<Op>,
    /// Address spaces, each over one of the roots (or the bus-master alias).
    spaces: Vec<Index>,
}

fn spec3_s() -> impl Strategy<Value = Spec3> {
    (
        prop::collection::vec(
            (
                prop::bool::weighted(0.2),
                select(vec![SIZE_2_64, SIZE_2_64, 0x1_0000, 0x8000]),
            ),
            1..=3,
        ),
        prop::option::weighted(0.3, (any::<Index>(), prop::bool::weighted(0.7))),
        prop::collection::vec(placed_make_s(false), 1..14),
        prop::collection::vec(op_s(), 0..30),
        prop::collection::vec(any::<Index>(), 1..=3),
    )
        .prop_map(|(roots, bus_master, makes, ops, spaces)| Spec3 {
            roots,
            bus_master,
            makes,
            ops,
            spaces,
        })
}

/// The hints a dump of `w` needs (see `Spec3`).
fn hints_for(w: &World, space_names: &[String]) -> Hints {
    let mut h = Hints::default();
    for (i, n) in w.m.iter().enumerate() {
        let has_children = w.m.iter().any(|c| c.parent == Some(i));
        let prints_io_and_terminates =
            matches!(n.kind, Kind::Io | Kind::Reservation) || (n.kind == Kind::RomDevice && !n.romd);
        if has_children && prints_io_and_terminates {
            h.mmio_containers.push(n.name.clone());
        }
        if !has_children && n.kind == Kind::Container {
            h.pure_containers.push(n.name.clone());
        }
        if n.readonly {
            h.readonly.push(n.name.clone());
        }
    }
    h.address_space_order = space_names.to_vec();
    h
}

fn run_spec3(spec: &Spec3) -> TestResult {
    let mut w = World::new(true);
    for (k, &(io, size)) in spec.roots.iter().enumerate() {
        let make = if io { Make::Io(size) } else { Make::Container(size) };
        let r = w.create(format!("root{k}"), &make)?;
        w.tops.push(r);
    }
    if let Some((target, enabled)) = spec.bus_master {
        let t = w.tops[target.index(w.tops.len())];
        let bm = w.create_alias("bus-master".to_string(), t, 0, w.m[t].size)?;
        if !enabled {
            let real = w.mem.set_enabled(w.ids(bm), false);
            w.expect("set_enabled bus-master false".to_string(), real, true)?;
            w.m[bm].enabled = false;
        }
        w.tops.push(bm);
    }
    build(&mut w, &spec.makes)?;
    for op in &spec.ops {
        w.apply(op)?;
    }

    let mut spaces = Vec::new();
    let mut names = Vec::new();
    // Every root gets a space (so that few regions end up printed only in sections), then the
    // extra spaces go over random tops, up to three spaces.
    let mut space_roots: Vec<usize> = w.tops.iter().copied().take(3).collect();
    for s in &spec.spaces {
        if space_roots.len() < 3 {
            space_roots.push(w.tops[s.index(w.tops.len())]);
        }
    }
    for (k, &root) in space_roots.iter().enumerate() {
        let name = format!("as{k}-{}", w.m[root].name);
        spaces.push(w.mem.address_space(&name, w.ids(root)).map_err(|e| w.fail(e))?);
        names.push(name);
    }
    let hints = hints_for(&w, &names);

    let tree1 = mtree::print_tree(&w.mem, &TreeOptions { disabled: true });
    let flat1 = mtree::print_flat(&w.mem, &FlatOptions::default());
    let machine = mtree::import_dump(&tree1, "gen", &hints)
        .map_err(|e| w.fail(format!("import failed: {e}\nhints: {hints:?}")))?;
    let tree2 = mtree::print_tree(&machine.memory, &TreeOptions { disabled: true });
    let flat2 = mtree::print_flat(&machine.memory, &FlatOptions::default());
    if mtree::canonical(&tree1) != mtree::canonical(&tree2) {
        return Err(w.fail(format!(
            "info mtree -D differs after import\nhints: {hints:?}\n---- original ----\n{tree1}---- imported ----\n{tree2}"
        )));
    }
    if mtree::canonical(&flat1) != mtree::canonical(&flat2) {
        return Err(w.fail(format!(
            "info mtree -f differs after import\nhints: {hints:?}\n---- original ----\n{flat1}---- imported ----\n{flat2}"
        )));
    }
    // Importing the re-printed dump is a fixed point too.
    let again = mtree::import_dump(&tree2, "gen2", &hints).map_err(|e| w.fail(format!("re-import failed: {e}")))?;
    let tree3 = mtree::print_tree(&again.memory, &TreeOptions { disabled: true });
    if tree3 != tree2 {
        return Err(w.fail(format!("second import prints differently\n{tree2}----\n{tree3}")));
    }
    drop(spaces);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Property 3.
    #[test]
    fn mtree_import_print_is_stable(spec in spec3_s()) {
        run_spec3(&spec)?;
    }
}

/// 256 cases by default (CI); `PROPTEST_CASES=N` runs more.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}
