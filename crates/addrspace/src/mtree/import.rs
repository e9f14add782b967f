//! Importing a QEMU `info mtree -D` dump into a region graph with its address spaces.
//!
//! The text loses some facts; the rules of `mtree-format.md` ("Importing an `info mtree -D`
//! dump") recover them, and a [`Hints`] file supplies the rest:
//!
//! 1. Hierarchy by indentation; a child's address is its start minus its parent's.
//! 2. Identity: every `address-space:` group is its own root object; a block root is the
//!    same object as the first nested line (anywhere else) with the same name, relative
//!    address and subtree; a section with no nested twin is the group root with the same
//!    name, address and subtree, or else an unmapped region of its own.
//! 3. Alias targets: the `memory-region:` section of that name (same type word preferred).
//! 4. Precedence among equal-priority overlapping siblings: at the same address the one
//!    printed first wins; otherwise the smaller one; equal sizes, the one printed first.
//! 5. `i/o` lines with children are pure containers and without children MMIO regions,
//!    unless the hints say otherwise.
//! 6. Read-only from the `rom` type word or the hints; non-volatile from `nv-`.
//!
//! Address-space creation order (the order of ` AS` lines in `info mtree -f`) is not in the
//! dump either: `memory` and `I/O` come first (QEMU creates them before anything else), then
//! the rest in dump order, unless the hints give the order.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::Deserialize;

use crate::access::Unassigned;
use crate::error::{Error, Result};
use crate::machine::Machine;
use crate::memory::Memory;
use crate::region::RegionId;

/// What a dump cannot say, by region or address-space name (the `--hints` TOML file).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hints {
    /// `i/o` regions with children that have ops and fill their own gaps (x86 `io`).
    #[serde(default)]
    pub mmio_containers: Vec<String>,
    /// `i/o` regions without children that are pure containers (render nothing).
    #[serde(default)]
    pub pure_containers: Vec<String>,
    /// Regions or aliases that are read-only though the dump cannot show it.
    #[serde(default)]
    pub readonly: Vec<String>,
    /// Address-space creation order, by name; unnamed spaces follow in the default order.
    #[serde(default)]
    pub address_space_order: Vec<String>,
}

impl Hints {
    /// Parses a hints file; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Hints> {
        toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| crate::board::line_col(text, s.start))
                .unwrap_or((1, 1));
            Error::Board {
                file: file.to_string(),
                line,
                column,
                msg: e.message().to_string(),
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Ty {
    Ram,
    Rom,
    Romd,
    Ramd,
    Io,
    Container,
}

impl Ty {
    fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "ram" => Ty::Ram,
            "rom" => Ty::Rom,
            "romd" => Ty::Romd,
            "ramd" => Ty::Ramd,
            "i/o" => Ty::Io,
            "container" => Ty::Container,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq)]
struct AliasRef {
    target: String,
    offset: u64,
}

#[derive(Debug)]
struct Line {
    lineno: usize,
    block: usize,
    level: usize,
    start: u64,
    size: u128,
    prio: i32,
    ty: Ty,
    nv: bool,
    name: String,
    alias: Option<AliasRef>,
    disabled: bool,
    parent: Option<usize>,
    children: Vec<usize>,
    /// Address relative to the parent (a block root's own address for roots).
    rel: u64,
    sig: u64,
}

#[derive(Debug)]
struct Block {
    spaces: Vec<String>,
    section: Option<String>,
    root: Option<usize>,
    lineno: usize,
}

struct Parser<'a> {
    file: &'a str,
    lines: Vec<Line>,
    blocks: Vec<Block>,
    sections: HashSet<String>,
}

fn hex(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

fn hex_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('-')?;
    Some((hex(a)?, hex(b)?))
}

impl Parser<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> Error {
        Error::Dump {
            file: self.file.to_string(),
            line,
            msg: msg.into(),
        }
    }

    fn parse(&mut self, text: &str) -> Result<()> {
        let raw: Vec<&str> = text.lines().map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
        for l in &raw {
            if let Some(n) = l.strip_prefix("memory-region: ") {
                self.sections.insert(n.to_string());
            }
        }
        let mut open = false;
        for (i, l) in raw.iter().enumerate() {
            let lineno = i + 1;
            if l.trim().is_empty() {
                open = false;
                continue;
            }
            if let Some(n) = l.strip_prefix("address-space: ") {
                let continues = open
                    && self
                        .blocks
                        .last()
                        .is_some_and(|b| b.section.is_none() && b.root.is_none());
                if !continues {
                    self.blocks.push(Block {
                        spaces: Vec::new(),
                        section: None,
                        root: None,
                        lineno,
                    });
                }
                self.blocks.last_mut().expect("pushed").spaces.push(n.to_string());
                open = true;
                continue;
            }
            if let Some(n) = l.strip_prefix("memory-region: ") {
                self.blocks.push(Block {
                    spaces: Vec::new(),
                    section: Some(n.to_string()),
                    root: None,
                    lineno,
                });
                open = true;
                continue;
            }
            if l.starts_with("FlatView #") {
                return Err(self.err(lineno, "this is `info mtree -f` output; import needs `info mtree -D`"));
            }
            if !open {
                return Err(self.err(
                    lineno,
                    "region line outside an `address-space:` or `memory-region:` block",
                ));
            }
            self.line(l, lineno)?;
        }
        for b in &self.blocks {
            if b.root.is_none() {
                return Err(self.err(
                    b.lineno,
                    "block has no root region line (a disabled root? import needs `info mtree -D`)",
                ));
            }
        }
        Ok(())
    }

    fn line(&mut self, l: &str, lineno: usize) -> Result<()> {
        let l = l.strip_prefix("[DETECTED OVERFLOW!] ").unwrap_or(l);
        let body = l.trim_start_matches(' ');
        let indent = l.len() - body.len();
        if indent < 2 || indent % 2 != 0 {
            return Err(self.err(
                lineno,
                format!("indentation of {indent} spaces; expected a positive even number"),
            ));
        }
        let level = indent / 2;
        let bad = |what: &str| self.err(lineno, format!("cannot parse region line ({what}): `{body}`"));
        let (range, rest) = body.split_once(' ').ok_or_else(|| bad("address range"))?;
        let (start, end) = hex_range(range).ok_or_else(|| bad("address range"))?;
        let rest = rest.strip_prefix("(prio ").ok_or_else(|| bad("`(prio`"))?;
        let (prio, rest) = rest.split_once(", ").ok_or_else(|| bad("priority"))?;
        let prio: i32 = prio.parse().map_err(|_| bad("priority"))?;
        let (ty, rest) = rest.split_once("): ").ok_or_else(|| bad("type"))?;
        let (nv, ty) = match ty.strip_prefix("nv-") {
            Some(t) => (true, t),
            None => (false, ty),
        };
        let ty = Ty::parse(ty).ok_or_else(|| bad("unknown type word"))?;
        let (rest, disabled) = match rest.strip_suffix(" [disabled]") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (name, alias) = match rest.strip_prefix("alias ") {
            Some(a) => {
                let (head, window) = a.rsplit_once(' ').ok_or_else(|| bad("alias window"))?;
                let (ts, _te) = hex_range(window).ok_or_else(|| bad("alias window"))?;
                let splits: Vec<usize> = head.match_indices(" @").map(|(i, _)| i).collect();
                let at = splits
                    .iter()
                    .copied()
                    .find(|&i| self.sections.contains(&head[i + 2..]))
                    .or_else(|| splits.last().copied())
                    .ok_or_else(|| bad("alias target"))?;
                (
                    head[..at].to_string(),
                    Some(AliasRef {
                        target: head[at + 2..].to_string(),
                        offset: ts,
                    }),
                )
            }
            None => (rest.to_string(), None),
        };
        let size = if alias.is_some() && start == end {
            0
        } else {
            u128::from(end.wrapping_sub(start)) + 1
        };
        let block = self.blocks.len() - 1;
        let idx = self.lines.len();
        let parent = if level == 1 {
            if self.blocks[block].root.is_some() {
                return Err(self.err(lineno, "second root line in one block"));
            }
            self.blocks[block].root = Some(idx);
            None
        } else {
            // The nearest earlier line of this block one level up.
            let mut p = None;
            for j in (0..idx).rev() {
                if self.lines[j].block != block {
                    break;
                }
                if self.lines[j].level < level {
                    p = Some(j);
                    break;
                }
            }
            let p = p.ok_or_else(|| self.err(lineno, "indented line with no parent line above it"))?;
            if self.lines[p].level != level - 1 {
                return Err(self.err(lineno, "line is indented more than one level below its parent"));
            }
            if self.lines[p].alias.is_some() {
                return Err(self.err(lineno, "an alias cannot have subregions"));
            }
            Some(p)
        };
        let rel = match parent {
            Some(p) => start.wrapping_sub(self.lines[p].start),
            None => start,
        };
        if let Some(p) = parent {
            self.lines[p].children.push(idx);
        }
        self.lines.push(Line {
            lineno,
            block,
            level,
            start,
            size,
            prio,
            ty,
            nv,
            name,
            alias,
            disabled,
            parent,
            children: Vec::new(),
            rel,
            sig: 0,
        });
        Ok(())
    }

    /// Structural signatures, children before parents (children always follow parents).
    fn signatures(&mut self) {
        for i in (0..self.lines.len()).rev() {
            let l = &self.lines[i];
            let mut h = DefaultHasher::new();
            (&l.name, l.rel, l.size, l.prio, l.ty, l.nv, &l.alias, l.disabled).hash(&mut h);
            for &c in &l.children {
                self.lines[c].sig.hash(&mut h);
            }
            self.lines[i].sig = h.finish();
        }
    }

    fn same_tree(&self, a: usize, b: usize) -> bool {
        let mut stack = vec![(a, b)];
        while let Some((a, b)) = stack.pop() {
            let (x, y) = (&self.lines[a], &self.lines[b]);
            if (&x.name, x.rel, x.size, x.prio, x.ty, x.nv, &x.alias, x.disabled)
                != (&y.name, y.rel, y.size, y.prio, y.ty, y.nv, &y.alias, y.disabled)
                || x.children.len() != y.children.len()
            {
                return false;
            }
            stack.extend(x.children.iter().copied().zip(y.children.iter().copied()));
        }
        true
    }
}

/// Maps every line to the line that is the same object (itself for real objects).
fn identities(p: &Parser<'_>) -> Result<Vec<usize>> {
    let mut nested: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut group_roots: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, l) in p.lines.iter().enumerate() {
        if l.parent.is_some() {
            nested.entry(l.sig).or_default().push(i);
        } else if p.blocks[l.block].section.is_none() {
            group_roots.entry(l.sig).or_default().push(i);
        }
    }
    // A region is printed as the root of at most one group (groups are per root object) and
    // of at most one section (targets are queued once), so each candidate twin can be taken
    // by one group and by one section.
    let mut taken_by_group: HashSet<usize> = HashSet::new();
    let mut taken_by_section: HashSet<usize> = HashSet::new();
    let mut twin: Vec<Option<usize>> = vec![None; p.blocks.len()];
    for (bi, b) in p.blocks.iter().enumerate() {
        let root = b.root.expect("checked by parse");
        let sig = p.lines[root].sig;
        let taken = if b.section.is_some() {
            &mut taken_by_section
        } else {
            &mut taken_by_group
        };
        let mut find = |m: &HashMap<u64, Vec<usize>>| {
            let hit = m.get(&sig).and_then(|v| {
                v.iter()
                    .copied()
                    .find(|&c| p.lines[c].block != bi && !taken.contains(&c) && p.same_tree(root, c))
            });
            if let Some(c) = hit {
                taken.insert(c);
            }
            hit
        };
        twin[bi] = find(&nested);
        if twin[bi].is_none() && b.section.is_some() {
            twin[bi] = find(&group_roots);
        }
    }
    // Direct mapping of each line of a merged block onto the corresponding twin line.
    let mut direct: Vec<usize> = (0..p.lines.len()).collect();
    for (bi, b) in p.blocks.iter().enumerate() {
        if let Some(t) = twin[bi] {
            let mut stack = vec![(b.root.expect("checked"), t)];
            while let Some((x, y)) = stack.pop() {
                direct[x] = y;
                stack.extend(
                    p.lines[x]
                        .children
                        .iter()
                        .copied()
                        .zip(p.lines[y].children.iter().copied()),
                );
            }
        }
    }
    let mut canon = vec![0; p.lines.len()];
    for (i, c) in canon.iter_mut().enumerate() {
        let mut x = i;
        for _ in 0..=p.lines.len() {
            if direct[x] == x {
                break;
            }
            x = direct[x];
        }
        if direct[x] != x {
            return Err(p.err(p.lines[i].lineno, "block identities form a cycle"));
        }
        *c = x;
    }
    Ok(canon)
}

/// The order in which the dump's siblings must sit in their container's list so that
/// rendering and printing reproduce the dump (rule 4).
fn precedence(p: &Parser<'_>, kids: &[usize]) -> Vec<usize> {
    let n = kids.len();
    let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    let mut by_prio: HashMap<i32, Vec<usize>> = HashMap::new();
    for (i, &k) in kids.iter().enumerate() {
        by_prio.entry(p.lines[k].prio).or_default().push(i);
    }
    let mut edge = |a: usize, b: usize| {
        succ[a].push(b);
        indeg[b] += 1;
    };
    for group in by_prio.values_mut() {
        group.sort_by_key(|&i| (p.lines[kids[i]].rel, i));
        // Same address (any size, even 0): the one printed first comes first.
        for w in group.windows(2) {
            if p.lines[kids[w[0]]].rel == p.lines[kids[w[1]]].rel {
                edge(w[0], w[1]);
            }
        }
        // Overlapping at different addresses: the smaller first; equal sizes, printed first.
        let mut active: Vec<usize> = Vec::new();
        for &i in group.iter() {
            let li = &p.lines[kids[i]];
            if li.size == 0 {
                continue;
            }
            let s = u128::from(li.rel);
            active.retain(|&j| {
                let lj = &p.lines[kids[j]];
                u128::from(lj.rel) + lj.size > s
            });
            for &j in &active {
                let lj = &p.lines[kids[j]];
                if lj.rel == li.rel {
                    continue;
                }
                let i_first = if li.size != lj.size { li.size < lj.size } else { i < j };
                if i_first {
                    edge(i, j)
                } else {
                    edge(j, i)
                }
            }
            active.push(i);
        }
    }
    let key = |i: usize| (p.lines[kids[i]].prio, std::cmp::Reverse(i));
    let mut heap: BinaryHeap<_> = (0..n).filter(|&i| indeg[i] == 0).map(key).collect();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let i = match heap.pop() {
            Some((_, std::cmp::Reverse(i))) if placed[i] => continue,
            Some((_, std::cmp::Reverse(i))) => i,
            // A precedence cycle (never seen in real dumps): fall back to print order.
            None => (0..n)
                .filter(|&i| !placed[i])
                .max_by_key(|&i| key(i))
                .expect("some left"),
        };
        placed[i] = true;
        order.push(kids[i]);
        for &s in &succ[i] {
            indeg[s] -= 1;
            if indeg[s] == 0 && !placed[s] {
                heap.push(key(s));
            }
        }
    }
    order
}

/// Imports an `info mtree -D` dump. `file` names the dump in error messages.
///
/// ```
/// use addrspace::mtree::{self, Hints};
///
/// let dump = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    0000000000000000-0000000000000fff (prio 0, ram): ram\n\n";
/// let machine = mtree::import_dump(dump, "dump.txt", &Hints::default())?;
/// assert_eq!(mtree::print_tree(&machine.memory, &Default::default()), dump);
/// # Ok::<(), addrspace::Error>(())
/// ```
pub fn import_dump(text: &str, file: &str, hints: &Hints) -> Result<Machine> {
    let mut p = Parser {
        file,
        lines: Vec::new(),
        blocks: Vec::new(),
        sections: HashSet::new(),
    };
    p.parse(text)?;
    if p.blocks.iter().all(|b| b.spaces.is_empty()) {
        return Err(p.err(1, "no `address-space:` block found"));
    }
    p.signatures();
    let canon = identities(&p)?;
    let memory = Memory::new();
    let tx = memory.transaction();
    let mut ids: HashMap<usize, RegionId> = HashMap::new();
    let real: Vec<usize> = (0..p.lines.len()).filter(|&i| canon[i] == i).collect();
    let section_root = |name: &str, ty: Ty| -> Option<usize> {
        let roots: Vec<usize> = p
            .blocks
            .iter()
            .filter(|b| b.section.as_deref() == Some(name))
            .map(|b| b.root.expect("checked"))
            .collect();
        roots
            .iter()
            .copied()
            .find(|&r| p.lines[r].ty == ty)
            .or_else(|| roots.first().copied())
            .or_else(|| real.iter().copied().find(|&i| p.lines[i].name == name))
    };
    let region_err = |i: usize, e: Error| p.err(p.lines[i].lineno, e.to_string());
    // Non-alias regions first.
    for &i in &real {
        let l = &p.lines[i];
        if l.alias.is_some() {
            continue;
        }
        let ops = || Arc::new(Unassigned) as Arc<dyn crate::access::RegionOps>;
        let name = l.name.as_str();
        let has_children = !l.children.is_empty();
        let r = match l.ty {
            Ty::Ram => memory.ram(name, l.size),
            Ty::Rom => memory.rom(name, l.size),
            Ty::Romd => memory.rom_device(name, l.size, ops()),
            Ty::Ramd => memory.ram_device(name, l.size),
            Ty::Container => memory.container(name, l.size),
            Ty::Io => {
                let mmio = if has_children {
                    hints.mmio_containers.iter().any(|h| h == name)
                } else {
                    !hints.pure_containers.iter().any(|h| h == name)
                };
                if mmio {
                    memory.io(name, l.size, ops())
                } else {
                    memory.container(name, l.size)
                }
            }
        };
        ids.insert(i, r.map_err(|e| region_err(i, e))?);
    }
    // Aliases, targets first (alias chains), with cycle detection.
    for &i in &real {
        let mut chain = Vec::new();
        let mut x = i;
        while p.lines[x].alias.is_some() && !ids.contains_key(&x) {
            if chain.contains(&x) {
                return Err(p.err(p.lines[i].lineno, "alias cycle"));
            }
            chain.push(x);
            let a = p.lines[x].alias.as_ref().expect("alias");
            let t = section_root(&a.target, p.lines[x].ty).ok_or_else(|| {
                p.err(
                    p.lines[x].lineno,
                    format!("alias target `{}` not found in the dump", a.target),
                )
            })?;
            x = canon[t];
        }
        while let Some(a) = chain.pop() {
            let al = p.lines[a].alias.as_ref().expect("alias");
            let t = canon[section_root(&al.target, p.lines[a].ty).expect("resolved above")];
            let target = ids[&t];
            let r = memory.alias(&p.lines[a].name, target, al.offset, p.lines[a].size);
            ids.insert(a, r.map_err(|e| region_err(a, e))?);
        }
    }
    // Placement in precedence order, then flags.
    for &i in &real {
        let kids = precedence(&p, &p.lines[i].children);
        for &k in kids.iter().rev() {
            let l = &p.lines[k];
            tx.add_subregion_overlap(ids[&i], l.rel, ids[&k], l.prio)
                .map_err(|e| region_err(k, e))?;
        }
        let l = &p.lines[i];
        let id = ids[&i];
        if l.nv {
            tx.set_nonvolatile(id, true).map_err(|e| region_err(i, e))?;
        }
        if l.disabled {
            tx.set_enabled(id, false).map_err(|e| region_err(i, e))?;
        }
        if hints.readonly.contains(&l.name) {
            tx.set_readonly(id, true).map_err(|e| region_err(i, e))?;
        }
        if l.parent.is_none() {
            // Block roots keep their printed address and priority even when unmapped.
            tx.set_address(id, l.rel).map_err(|e| region_err(i, e))?;
            tx.set_priority(id, l.prio).map_err(|e| region_err(i, e))?;
        }
    }
    drop(tx);
    // Address spaces in creation order.
    let mut spaces: Vec<(String, usize)> = Vec::new();
    for b in &p.blocks {
        for s in &b.spaces {
            spaces.push((s.clone(), canon[b.root.expect("checked")]));
        }
    }
    let rank = |name: &str| -> usize {
        match hints.address_space_order.iter().position(|h| h == name) {
            Some(k) => k,
            None => {
                hints.address_space_order.len()
                    + match name {
                        "memory" => 0,
                        "I/O" => 1,
                        _ => 2,
                    }
            }
        }
    };
    spaces.sort_by_key(|(n, _)| rank(n));
    let mut address_spaces = Vec::new();
    for (name, root) in spaces {
        address_spaces.push(memory.address_space(&name, ids[&root])?);
    }
    let regions = real
        .iter()
        .map(|&i| (format!("line{}", p.lines[i].lineno), ids[&i]))
        .collect();
    Ok(Machine {
        memory,
        address_spaces,
        regions,
        clusters: Vec::new(),
    })
}
