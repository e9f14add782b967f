//! Which lines of a dump are the same region object (rule 2).
//!
//! QEMU prints a region once per place it is seen: nested in its container, again as the
//! root of an `address-space:` group, again as a `memory-region:` section when an alias
//! targets it. A block root is the same object as the first nested line elsewhere with the
//! same name, relative address and subtree; a section with no nested twin is the group root
//! with the same name, address and subtree. Subtrees are compared by a structural hash
//! first (children before parents, one pass), then exactly; each candidate list is walked
//! once, so the whole step is linear in the dump.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use super::parse::Dump;
use crate::io::load_error::LoadError;

type Result<T> = std::result::Result<T, LoadError>;

/// Structural signatures, children before parents (children always follow parents).
pub(super) fn signatures(d: &mut Dump<'_>) {
    for i in (0..d.lines.len()).rev() {
        let l = &d.lines[i];
        let mut h = DefaultHasher::new();
        (&l.name, l.rel, l.size, l.prio, l.ty, l.nv, &l.alias, l.disabled).hash(&mut h);
        for &c in &l.children {
            d.lines[c].sig.hash(&mut h);
        }
        d.lines[i].sig = h.finish();
    }
}

fn same_tree(d: &Dump<'_>, a: usize, b: usize) -> bool {
    let mut stack = vec![(a, b)];
    while let Some((a, b)) = stack.pop() {
        let (x, y) = (&d.lines[a], &d.lines[b]);
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

/// Candidates with one signature, in text order, and how far each kind of block has taken
/// them (a region is the root of at most one group and of at most one section).
#[derive(Default)]
struct Candidates {
    lines: Vec<usize>,
    taken: Vec<bool>,
    /// Every candidate before this index is taken.
    first_free: usize,
}

impl Candidates {
    /// The first free candidate outside block `block` whose subtree equals `root`'s.
    fn take(&mut self, d: &Dump<'_>, block: usize, root: usize) -> Option<usize> {
        while self.first_free < self.lines.len() && self.taken[self.first_free] {
            self.first_free += 1;
        }
        let k = (self.first_free..self.lines.len()).find(|&k| {
            let c = self.lines[k];
            !self.taken[k] && d.lines[c].block != block && same_tree(d, root, c)
        })?;
        self.taken[k] = true;
        Some(self.lines[k])
    }
}

/// Maps every line to the line that is the same object (itself for real objects).
pub(super) fn identities(d: &Dump<'_>) -> Result<Vec<usize>> {
    // Only lines that look like some block's root can be its twin.
    let wanted: HashSet<u64> = d
        .blocks
        .iter()
        .map(|b| d.lines[b.root.expect("checked by parse")].sig)
        .collect();
    let mut nested: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut group_roots: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, l) in d.lines.iter().enumerate() {
        if !wanted.contains(&l.sig) {
            continue;
        }
        if l.parent.is_some() {
            nested.entry(l.sig).or_default().push(i);
        } else if d.blocks[l.block].section.is_none() {
            group_roots.entry(l.sig).or_default().push(i);
        }
    }
    let cands = |m: HashMap<u64, Vec<usize>>| -> HashMap<u64, Candidates> {
        m.into_iter()
            .map(|(sig, lines)| {
                let taken = vec![false; lines.len()];
                let c = Candidates {
                    lines,
                    taken,
                    first_free: 0,
                };
                (sig, c)
            })
            .collect()
    };
    // Groups and sections each take a nested twin at most once; sections may also take a
    // group root.
    let mut nested_by_group = cands(nested);
    let mut nested_by_section: HashMap<u64, Candidates> = nested_by_group
        .iter()
        .map(|(&sig, c)| {
            let fresh = Candidates {
                lines: c.lines.clone(),
                taken: vec![false; c.lines.len()],
                first_free: 0,
            };
            (sig, fresh)
        })
        .collect();
    let mut group_roots = cands(group_roots);
    let mut twin: Vec<Option<usize>> = vec![None; d.blocks.len()];
    for (bi, b) in d.blocks.iter().enumerate() {
        let root = b.root.expect("checked by parse");
        let sig = d.lines[root].sig;
        let nested = if b.section.is_some() {
            &mut nested_by_section
        } else {
            &mut nested_by_group
        };
        twin[bi] = nested.get_mut(&sig).and_then(|c| c.take(d, bi, root));
        if twin[bi].is_none() && b.section.is_some() {
            twin[bi] = group_roots.get_mut(&sig).and_then(|c| c.take(d, bi, root));
        }
    }
    // Direct mapping of each line of a merged block onto the corresponding twin line.
    let mut direct: Vec<usize> = (0..d.lines.len()).collect();
    for (bi, b) in d.blocks.iter().enumerate() {
        if let Some(t) = twin[bi] {
            let mut stack = vec![(b.root.expect("checked"), t)];
            while let Some((x, y)) = stack.pop() {
                direct[x] = y;
                stack.extend(
                    d.lines[x]
                        .children
                        .iter()
                        .copied()
                        .zip(d.lines[y].children.iter().copied()),
                );
            }
        }
    }
    // Follow the chains (a twin may itself be in a merged block), each line once.
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; d.lines.len()];
    let mut canon = vec![0; d.lines.len()];
    let mut path = Vec::new();
    for i in 0..d.lines.len() {
        let mut x = i;
        while state[x] == NEW && direct[x] != x {
            state[x] = ON_PATH;
            path.push(x);
            x = direct[x];
        }
        if state[x] == ON_PATH {
            return Err(d.err(d.lines[i].lineno, "block identities form a cycle"));
        }
        let c = if state[x] == DONE { canon[x] } else { x };
        state[x] = DONE;
        canon[x] = c;
        for y in path.drain(..) {
            state[y] = DONE;
            canon[y] = c;
        }
    }
    Ok(canon)
}
