//! From parsed lines to a [`DumpPlan`] — every region with its kind, alias target, flags and
//! children in insertion order — and from the plan to a live [`Machine`].
//!
//! Planning is all the importer's own work (rules 3 to 6, the hints, the guesses); building
//! is calls on [`Memory`], ordered so that the core does as little as it can: regions get
//! their flags while nothing can see them yet, aliases are created after their targets, and
//! containers are filled bottom-up (a container's children are placed before the container
//! itself is), so that no placement walks a long chain of containers above it.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::guess::{Guess, GuessKind};
use super::parse::{Dump, Ty};
use super::precedence::{precedence, Sibling};
use super::Hints;
use crate::base::access::{RegionOps, Unassigned};
use crate::base::error::Error;
use crate::io::load_error::LoadError;

type Result<T, E = LoadError> = std::result::Result<T, E>;
use crate::machine::assembly::Machine;
use crate::machine::memory::Memory;
use crate::model::region::RegionId;

/// What a region is made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Make {
    Ram,
    Rom,
    RomDevice,
    RamDevice,
    Io,
    Container,
    /// An alias of the region with this index, at this offset.
    Alias(usize, u64),
}

#[derive(Debug)]
struct Planned {
    lineno: usize,
    key: String,
    name: String,
    make: Make,
    size: u128,
    /// Address in the container (a block root's own address).
    rel: u64,
    prio: i32,
    /// A block root: keeps its printed address and priority though mapped nowhere.
    root: bool,
    nv: bool,
    disabled: bool,
    readonly: bool,
    /// Owner text of an `-o` dump.
    owner: Option<String>,
    /// Children in the order they are added (the winner last).
    children: Vec<usize>,
}

/// An imported dump, resolved and ready to build: see [`super::plan_dump`].
#[derive(Debug)]
pub struct DumpPlan {
    file: String,
    /// Real regions in dump order (a container before what it holds).
    regions: Vec<Planned>,
    /// Aliases, each after its target.
    aliases: Vec<usize>,
    /// Address spaces in creation order, with their root.
    spaces: Vec<(String, usize)>,
    guesses: Vec<Guess>,
}

/// Unique keys for [`Machine::regions`]: the name, else `name#2`, `name#3`… (never a key
/// taken by another region, even one whose own name looks like `x#2`).
fn keys<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let all: HashSet<&str> = names.clone().collect();
    let mut used: HashSet<&str> = HashSet::with_capacity(all.len());
    let mut made: HashSet<String> = HashSet::new();
    let mut next: HashMap<&str, usize> = HashMap::new();
    names
        .map(|name| {
            if used.insert(name) {
                return name.to_string();
            }
            let n = next.entry(name).or_insert(2);
            loop {
                let k = format!("{name}#{n}");
                *n += 1;
                if !all.contains(k.as_str()) && made.insert(k.clone()) {
                    break k;
                }
            }
        })
        .collect()
}

/// Distinct names in order.
fn distinct(names: Vec<&str>) -> Vec<String> {
    let mut seen = HashSet::new();
    names
        .into_iter()
        .filter(|n| seen.insert(*n))
        .map(str::to_string)
        .collect()
}

pub(super) fn plan(d: &Dump<'_>, canon: &[usize], hints: &Hints) -> Result<DumpPlan> {
    let real: Vec<usize> = (0..d.lines.len()).filter(|&i| canon[i] == i).collect();
    let mut index = vec![usize::MAX; d.lines.len()];
    for (k, &i) in real.iter().enumerate() {
        index[i] = k;
    }
    let of = |line: usize| index[canon[line]];
    let mmio: HashSet<&str> = hints.mmio_containers.iter().map(String::as_str).collect();
    let pure: HashSet<&str> = hints.pure_containers.iter().map(String::as_str).collect();
    let readonly: HashSet<&str> = hints.readonly.iter().map(String::as_str).collect();
    // Rule 3: alias targets by section name (same type word preferred), else any line.
    let mut sections: HashMap<&str, Vec<usize>> = HashMap::new();
    for b in &d.blocks {
        if let Some(s) = &b.section {
            sections.entry(s).or_default().push(b.root.expect("checked by parse"));
        }
    }
    // Targets without a section (hand-written dumps): the first line of that name.
    let first_named: OnceCell<HashMap<&str, usize>> = OnceCell::new();
    let target = |name: &str, ty: Ty| -> Option<usize> {
        let roots = sections.get(name);
        let root = roots
            .and_then(|r| {
                r.iter()
                    .copied()
                    .find(|&x| d.lines[x].ty == ty)
                    .or_else(|| r.first().copied())
            })
            .or_else(|| {
                let first = first_named.get_or_init(|| {
                    let mut m = HashMap::new();
                    for &i in &real {
                        m.entry(d.lines[i].name.as_str()).or_insert(i);
                    }
                    m
                });
                first.get(name).copied()
            })?;
        Some(of(root))
    };
    let mut guessed: HashMap<GuessKind, Vec<(&str, u128)>> = HashMap::new();
    let keys = keys(real.iter().map(|&i| d.lines[i].name.as_str()));
    let mut regions = Vec::with_capacity(real.len());
    for (k, &i) in real.iter().enumerate() {
        let l = &d.lines[i];
        let name = l.name.as_str();
        let make = match (&l.alias, l.ty) {
            (Some(a), _) => {
                let t = target(&a.target, l.ty)
                    .ok_or_else(|| d.err(l.lineno, format!("alias target `{}` not found in the dump", a.target)))?;
                if l.ty != Ty::Rom && !readonly.contains(name) {
                    guessed
                        .entry(GuessKind::WritableAliases)
                        .or_default()
                        .push((name, l.size));
                }
                Make::Alias(t, a.offset)
            }
            (None, Ty::Ram) => Make::Ram,
            (None, Ty::Rom) => Make::Rom,
            (None, Ty::Romd) => Make::RomDevice,
            (None, Ty::Ramd) => Make::RamDevice,
            (None, Ty::Container) => Make::Container,
            (None, Ty::Io) => {
                let named = mmio.contains(name) || pure.contains(name);
                let has_children = !l.children.is_empty();
                if !named {
                    let kind = if has_children {
                        GuessKind::PureContainers
                    } else {
                        GuessKind::MmioRegions
                    };
                    guessed.entry(kind).or_default().push((name, l.size));
                }
                let is_mmio = if has_children {
                    mmio.contains(name)
                } else {
                    !pure.contains(name)
                };
                if is_mmio {
                    Make::Io
                } else {
                    Make::Container
                }
            }
        };
        // Rule 4: siblings in precedence order; added in reverse (the winner last).
        let sibs: Vec<Sibling> = l
            .children
            .iter()
            .map(|&c| {
                let c = &d.lines[c];
                Sibling {
                    rel: c.rel,
                    size: c.size,
                    prio: c.prio,
                }
            })
            .collect();
        let children = precedence(&sibs).into_iter().rev().map(|c| of(l.children[c])).collect();
        regions.push(Planned {
            lineno: l.lineno,
            key: keys[k].clone(),
            name: l.name.clone(),
            make,
            size: l.size,
            rel: l.rel,
            prio: l.prio,
            root: l.parent.is_none(),
            nv: l.nv,
            disabled: l.disabled,
            readonly: readonly.contains(name),
            owner: l.owner.clone(),
            children,
        });
    }
    let aliases = alias_order(d, &regions)?;
    // Address spaces in creation order.
    let mut spaces: Vec<(String, usize)> = Vec::new();
    for b in &d.blocks {
        for s in &b.spaces {
            spaces.push((s.clone(), of(b.root.expect("checked"))));
        }
    }
    let order: HashMap<&str, usize> = hints
        .address_space_order
        .iter()
        .enumerate()
        .rev()
        .map(|(k, n)| (n.as_str(), k))
        .collect();
    let rank = |name: &str| -> usize {
        order.get(name).copied().unwrap_or_else(|| {
            order.len()
                + match name {
                    "memory" => 0,
                    "I/O" => 1,
                    _ => 2,
                }
        })
    };
    spaces.sort_by_key(|(n, _)| rank(n));
    if !d.lines.iter().any(|l| l.disabled) {
        guessed.insert(GuessKind::NoDisabledRegions, Vec::new());
    }
    let guesses = [
        GuessKind::PureContainers,
        GuessKind::MmioRegions,
        GuessKind::WritableAliases,
        GuessKind::NoDisabledRegions,
    ]
    .into_iter()
    .filter(|&k| !hints.settles(k))
    .filter_map(|kind| {
        let mut names = guessed.remove(&kind)?;
        // Most doubtful first: an `i/o` region with subregions that fills its gaps is a
        // device (small), an empty pure container is a bus or window (large).
        match kind {
            GuessKind::PureContainers => names.sort_by_key(|&(_, size)| size),
            GuessKind::MmioRegions => names.sort_by_key(|&(_, size)| std::cmp::Reverse(size)),
            _ => {}
        }
        let names = distinct(names.into_iter().map(|(n, _)| n).collect());
        Some(Guess { kind, names })
    })
    .collect();
    Ok(DumpPlan {
        file: d.file.to_string(),
        regions,
        aliases,
        spaces,
        guesses,
    })
}

/// Aliases ordered targets first (see `build_order::alias_order`); a cycle is an error at
/// the first alias that leads into it.
fn alias_order(d: &Dump<'_>, regions: &[Planned]) -> Result<Vec<usize>> {
    let targets: Vec<Option<usize>> = regions
        .iter()
        .map(|r| match r.make {
            Make::Alias(t, _) => Some(t),
            _ => None,
        })
        .collect();
    crate::io::build_order::alias_order(&targets).map_err(|start| d.err(regions[start].lineno, "alias cycle"))
}

impl DumpPlan {
    /// What the import had to guess and the hints did not settle.
    pub fn guesses(&self) -> &[Guess] {
        &self.guesses
    }

    /// Number of regions the machine will have.
    pub fn regions(&self) -> usize {
        self.regions.len()
    }

    /// Builds the machine: regions, then address spaces in creation order.
    pub fn build(&self) -> Result<Machine> {
        let err = |i: usize, e: Error| LoadError::dump(&self.file, self.regions[i].lineno, e.to_string(), Some(e));
        let memory = Memory::new();
        let tx = memory.transaction();
        let mut ids: Vec<Option<RegionId>> = vec![None; self.regions.len()];
        // Flags first, while nothing can see the region (and nothing walks up from it).
        let flags = |i: usize, id: RegionId| -> Result<()> {
            let r = &self.regions[i];
            let ok = (|| -> Result<(), Error> {
                if r.nv {
                    tx.set_nonvolatile(id, true)?;
                }
                if r.disabled {
                    tx.set_enabled(id, false)?;
                }
                if r.readonly {
                    tx.set_readonly(id, true)?;
                }
                if r.root && r.rel != 0 {
                    tx.set_address(id, r.rel)?;
                }
                if r.root && r.prio != 0 {
                    tx.set_priority(id, r.prio)?;
                }
                if r.owner.is_some() {
                    tx.set_owner(id, r.owner.as_deref())?;
                }
                Ok(())
            })();
            ok.map_err(|e| err(i, e))
        };
        let ops = || Arc::new(Unassigned) as Arc<dyn RegionOps>;
        for (i, r) in self.regions.iter().enumerate() {
            let made = match r.make {
                Make::Ram => memory.ram(&r.name, r.size),
                Make::Rom => memory.rom(&r.name, r.size),
                Make::RomDevice => memory.rom_device(&r.name, r.size, ops()),
                Make::RamDevice => memory.ram_device(&r.name, r.size),
                Make::Io => memory.io(&r.name, r.size, ops()),
                Make::Container => memory.container(&r.name, r.size),
                Make::Alias(..) => continue,
            };
            let id = made.map_err(|e| err(i, e))?;
            flags(i, id)?;
            ids[i] = Some(id);
        }
        for &i in &self.aliases {
            let r = &self.regions[i];
            let Make::Alias(t, offset) = r.make else {
                unreachable!("only aliases are listed")
            };
            let target = ids[t].expect("targets come first");
            let id = memory.alias(&r.name, target, offset, r.size).map_err(|e| err(i, e))?;
            flags(i, id)?;
            ids[i] = Some(id);
        }
        let id = |i: usize| ids[i].expect("every region is built");
        // Bottom-up: in reverse dump order, a container is filled before it is placed.
        for (i, r) in self.regions.iter().enumerate().rev() {
            for &k in &r.children {
                let c = &self.regions[k];
                tx.add_subregion_overlap(id(i), c.rel, id(k), c.prio)
                    .map_err(|e| err(k, e))?;
            }
        }
        drop(tx);
        let mut address_spaces = Vec::with_capacity(self.spaces.len());
        {
            // One commit for all the spaces.
            let _tx = memory.transaction();
            for (name, root) in &self.spaces {
                address_spaces.push(memory.address_space(name, id(*root)).map_err(|e| err(*root, e))?);
            }
        }
        let regions = self
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key.clone(), id(i)))
            .collect();
        Ok(Machine {
            memory,
            address_spaces,
            regions,
            clusters: Vec::new(),
            description: None,
            cpu_tables: String::new(),
            devices: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_unique_even_against_names_that_look_like_keys() {
        let names = ["a", "a", "a#2", "a", "b"];
        let keys = super::keys(names.iter().copied());
        assert_eq!(keys, ["a", "a#3", "a#2", "a#4", "b"]);
    }
}
