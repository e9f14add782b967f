//! `info mtree` and `info mtree -D`: the region tree of every address space.
//!
//! One group per distinct root region (names sorted byte-wise inside a group), then one
//! `memory-region:` section per alias target, in the order aliases are met. Children print
//! sorted by address, then priority (higher first), then list order. Without `-D` a disabled
//! region's own line is left out but its subregions still print.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use serde::Serialize;

use crate::machine::memory::Memory;
use crate::model::graph::Graph;
use crate::model::region::{Body, RegionId};

/// Options of `info mtree`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeOptions {
    /// Show disabled regions, marked ` [disabled]` (`-D`).
    pub disabled: bool,
    /// Show each region's owner text, or ` orphan` (`-o`).
    pub owners: bool,
}

impl TreeOptions {
    /// `info mtree -D`: disabled regions too, no owners.
    pub const DISABLED: TreeOptions = TreeOptions {
        disabled: true,
        owners: false,
    };
}

/// The whole `info mtree` output.
#[derive(Debug, Clone, Serialize)]
pub struct TreeDump {
    /// Address-space groups, then alias-target sections.
    pub blocks: Vec<TreeBlock>,
    /// Lines end with their owner text (`-o`).
    pub owners: bool,
}

/// One group or section.
#[derive(Debug, Clone, Serialize)]
pub struct TreeBlock {
    /// Names of the address spaces sharing this root (empty for a section).
    pub address_spaces: Vec<String>,
    /// For a `memory-region:` section, the region's name.
    pub memory_region: Option<String>,
    /// The printed lines, in order.
    pub lines: Vec<TreeLine>,
}

/// One printed region line.
#[derive(Debug, Clone, Serialize)]
pub struct TreeLine {
    /// Nesting level (1 for the block's root).
    pub level: usize,
    /// Absolute first address.
    #[serde(serialize_with = "super::hex")]
    pub start: u64,
    /// Absolute last address (inclusive; equal to `start` for a size-0 region).
    #[serde(serialize_with = "super::hex")]
    pub end: u64,
    /// QEMU's `[DETECTED OVERFLOW!]` condition.
    pub overflow: bool,
    /// Priority.
    pub priority: i32,
    /// Non-volatile.
    pub nonvolatile: bool,
    /// Type word (`ram`, `rom`, `romd`, `ramd`, `i/o`; an alias shows its target's).
    #[serde(rename = "type")]
    pub type_word: &'static str,
    /// Region name.
    pub name: String,
    /// For an alias: target name and the window inside the target.
    pub alias: Option<AliasWindow>,
    /// Whether the region is enabled.
    pub enabled: bool,
    /// Owner text (see [`Memory::set_owner`]).
    pub owner: Option<String>,
}

/// The target window of an alias line.
#[derive(Debug, Clone, Serialize)]
pub struct AliasWindow {
    /// Target region name.
    pub target: String,
    /// First offset in the target.
    #[serde(serialize_with = "super::hex")]
    pub start: u64,
    /// Last offset in the target (inclusive).
    #[serde(serialize_with = "super::hex")]
    pub end: u64,
}

/// QEMU's `memory_region_type`: an alias shows its final target's type.
pub(crate) fn region_type(g: &Graph, mut id: RegionId) -> &'static str {
    loop {
        let n = g.node(id);
        match &n.body {
            Body::Alias { target, .. } => id = *target,
            Body::Container => return "i/o",
            Body::Leaf(leaf) => return leaf.backend.type_word(n.romd, n.readonly),
        }
    }
}

/// A container's subregions in `info mtree`'s order: by address, then priority (higher
/// first); ties keep QEMU's list order (newest first among equal priorities).
pub(crate) fn print_order(g: &Graph, id: RegionId) -> Vec<RegionId> {
    let mut kids: Vec<(usize, RegionId)> = g.node(id).subregions.iter().rev().copied().enumerate().collect();
    kids.sort_by_key(|&(i, c)| {
        let c = g.node(c);
        (c.addr, std::cmp::Reverse(c.priority), i)
    });
    kids.into_iter().map(|(_, c)| c).collect()
}

fn last(size: u128) -> u64 {
    if size == 0 {
        0
    } else {
        (size - 1) as u64
    }
}

/// [`region_type`] of many regions, each link of an alias chain walked once in all: the words
/// of the aliases already resolved.
#[derive(Default)]
pub(crate) struct TypeWords {
    aliases: HashMap<RegionId, &'static str>,
}

impl TypeWords {
    /// [`region_type`]`(g, id)`, remembering every alias on the way.
    pub(crate) fn of(&mut self, g: &Graph, id: RegionId) -> &'static str {
        let mut chain = Vec::new();
        let mut x = id;
        let word = loop {
            if let Some(&w) = self.aliases.get(&x) {
                break w;
            }
            match g.node(x).body {
                Body::Alias { target, .. } => {
                    chain.push(x);
                    x = target;
                }
                _ => break region_type(g, x),
            }
        };
        for a in chain {
            self.aliases.insert(a, word);
        }
        word
    }
}

struct Printer<'g> {
    g: &'g Graph,
    disabled: bool,
    queue: Vec<RegionId>,
    queued: HashSet<RegionId>,
    types: TypeWords,
}

impl Printer<'_> {
    fn type_word(&mut self, id: RegionId) -> &'static str {
        self.types.of(self.g, id)
    }

    fn region(&mut self, root: RegionId, lines: &mut Vec<TreeLine>) {
        let mut stack = vec![(root, 1usize, 0u64)];
        while let Some((id, level, base)) = stack.pop() {
            let n = self.g.node(id);
            let start = base.wrapping_add(n.addr);
            let end = start.wrapping_add(last(n.size));
            let alias = match n.body {
                Body::Alias { target, offset } => {
                    if self.queued.insert(target) {
                        self.queue.push(target);
                    }
                    Some(AliasWindow {
                        target: self.g.node(target).name.to_string(),
                        start: offset,
                        end: offset.wrapping_add(last(n.size)),
                    })
                }
                _ => None,
            };
            if n.enabled || self.disabled {
                let type_word = self.type_word(id);
                lines.push(TreeLine {
                    level,
                    start,
                    end,
                    overflow: start < base || end < start,
                    priority: n.priority,
                    nonvolatile: n.nonvolatile,
                    type_word,
                    name: n.name.to_string(),
                    alias,
                    enabled: n.enabled,
                    owner: n.owner.as_deref().map(str::to_string),
                });
            }
            for c in print_order(self.g, id).into_iter().rev() {
                stack.push((c, level + 1, start));
            }
        }
    }
}

/// Builds the `info mtree` model of `memory`.
pub fn tree_dump(memory: &Memory, opts: &TreeOptions) -> TreeDump {
    memory.inspect(|st| {
        let mut groups: Vec<(RegionId, Vec<String>)> = Vec::new();
        let mut group_of: HashMap<RegionId, usize> = HashMap::new();
        for sp in &st.spaces {
            let g = *group_of.entry(sp.root).or_insert_with(|| {
                groups.push((sp.root, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push(sp.name.to_string());
        }
        let mut p = Printer {
            g: st.graph,
            disabled: opts.disabled,
            queue: Vec::new(),
            queued: HashSet::new(),
            types: TypeWords::default(),
        };
        let mut blocks = Vec::new();
        for (root, mut names) in groups {
            names.sort();
            let mut lines = Vec::new();
            p.region(root, &mut lines);
            blocks.push(TreeBlock {
                address_spaces: names,
                memory_region: None,
                lines,
            });
        }
        let mut i = 0;
        while i < p.queue.len() {
            let id = p.queue[i];
            let mut lines = Vec::new();
            p.region(id, &mut lines);
            blocks.push(TreeBlock {
                address_spaces: Vec::new(),
                memory_region: Some(p.g.node(id).name.to_string()),
                lines,
            });
            i += 1;
        }
        TreeDump {
            blocks,
            owners: opts.owners,
        }
    })
}

impl TreeDump {
    /// QEMU's exact text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for b in &self.blocks {
            for n in &b.address_spaces {
                let _ = writeln!(s, "address-space: {n}");
            }
            if let Some(n) = &b.memory_region {
                let _ = writeln!(s, "memory-region: {n}");
            }
            for l in &b.lines {
                if l.overflow {
                    s.push_str("[DETECTED OVERFLOW!] ");
                }
                for _ in 0..l.level {
                    s.push_str("  ");
                }
                let nv = if l.nonvolatile { "nv-" } else { "" };
                let _ = write!(
                    s,
                    "{:016x}-{:016x} (prio {}, {nv}{}): ",
                    l.start, l.end, l.priority, l.type_word
                );
                match &l.alias {
                    Some(a) => {
                        let _ = write!(s, "alias {} @{} {:016x}-{:016x}", l.name, a.target, a.start, a.end);
                    }
                    None => s.push_str(&l.name),
                }
                if !l.enabled {
                    s.push_str(" [disabled]");
                }
                if self.owners {
                    push_owner(&mut s, l.owner.as_deref());
                }
                s.push('\n');
            }
            s.push('\n');
        }
        s
    }
}

/// QEMU's `-o` suffix: the owner text, or ` orphan` for a region that has none.
pub(crate) fn push_owner(s: &mut String, owner: Option<&str>) {
    s.push(' ');
    s.push_str(owner.unwrap_or("orphan"));
}

/// `info mtree` (`-D` with `opts.disabled`, `-o` with `opts.owners`) as QEMU prints it.
pub fn print_tree(memory: &Memory, opts: &TreeOptions) -> String {
    tree_dump(memory, opts).to_text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::mtree::{print_flat, FlatOptions};
    use crate::SIZE_2_64;

    #[test]
    fn disabled_lines_hide_but_children_print_and_overflow_is_flagged() {
        let m = Memory::new();
        let io = m.container("io", 0x10000).unwrap();
        let pm = m.container("pm", 0x40).unwrap();
        let evt = m.container("evt", 4).unwrap();
        m.add_subregion(pm, 0, evt).unwrap();
        m.add_subregion(io, 0x600, pm).unwrap();
        m.set_enabled(pm, false).unwrap();
        let _s = m.address_space("I/O", io).unwrap();
        let plain = print_tree(&m, &TreeOptions::default());
        assert_eq!(
            plain,
            "address-space: I/O\n  0000000000000000-000000000000ffff (prio 0, i/o): io\n      0000000000000600-0000000000000603 (prio 0, i/o): evt\n\n"
        );
        let all = print_tree(&m, &TreeOptions::DISABLED);
        assert!(all.contains("    0000000000000600-000000000000063f (prio 0, i/o): pm [disabled]\n"));

        let m = Memory::new();
        let root = m.container("root", 0x2000).unwrap();
        let child = m.container("child", 0x2000).unwrap();
        m.add_subregion(root, 0, child).unwrap();
        m.set_address(root, u64::MAX - 0xfff).unwrap();
        let _s = m.address_space("wrap", root).unwrap();
        let text = print_tree(&m, &TreeOptions::default());
        assert!(
            text.contains("[DETECTED OVERFLOW!]   fffffffffffff000-0000000000000fff (prio 0, i/o): root"),
            "{text}"
        );
    }

    #[test]
    fn alias_roots_and_sections() {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let ram = m.ram("ram", 0x1000).unwrap();
        let rom = m.rom("rom", 0x1000).unwrap();
        m.add_subregion(sys, 0, ram).unwrap();
        m.add_subregion(sys, 0x1000, rom).unwrap();
        let window = m.alias("window", sys, 0x1000, 0x1000).unwrap();
        let _a = m.address_space("memory", sys).unwrap();
        let _b = m.address_space("dma", window).unwrap();
        let flat = print_flat(&m, &FlatOptions::default());
        assert!(flat.contains(" AS \"dma\", root: window, alias system\n Root memory region: window\n  0000000000000000-0000000000000fff (prio 0, rom): rom\n"), "{flat}");
        let tree = print_tree(&m, &TreeOptions::default());
        assert!(tree.contains("address-space: dma\n  0000000000000000-0000000000000fff (prio 0, i/o): alias window @system 0000000000001000-0000000000001fff\n"), "{tree}");
        assert!(tree.ends_with("memory-region: system\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    0000000000000000-0000000000000fff (prio 0, ram): ram\n    0000000000001000-0000000000001fff (prio 0, rom): rom\n\n"), "{tree}");
    }

    #[test]
    fn flat_view_prints_the_live_priority_like_qemu() {
        // `ram` is visible only through an alias; re-mapping it (with another priority) into
        // a disabled container commits nothing, yet `-f` shows the new priority, because
        // QEMU's printer reads the region's priority at print time.
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let ram = m.ram("ram", 0x1000).unwrap();
        let other = m.ram("other", 0x1000).unwrap();
        let al = m.alias("al", ram, 0, 0x1000).unwrap();
        m.add_subregion(sys, 0, al).unwrap();
        m.add_subregion(sys, 0x1000, other).unwrap();
        let _s = m.address_space("memory", sys).unwrap();
        let dis = m.container("dis", 0x1000).unwrap();
        m.set_enabled(dis, false).unwrap();
        let renders = m.stats().renders;
        m.add_subregion_overlap(dis, 0, ram, 5).unwrap();
        assert_eq!(m.stats().renders, renders, "nothing visible changed");
        let flat = print_flat(&m, &FlatOptions::default());
        assert!(
            flat.contains("0000000000000000-0000000000000fff (prio 5, ram): ram\n"),
            "{flat}"
        );
    }
}
