//! `addrspace board`: a built machine written back as a board file.
//!
//! Kept apart from the loader (`board.rs`) because it goes the other way: from the live
//! region graph to TOML text that the loader reads back into an equivalent machine.

use std::collections::{HashMap, HashSet};

use crate::machine::Machine;
use crate::region::{Backend, RegionId, RegionKind, SIZE_2_64};

/// Describes a built machine as a board file: regions in tree order (each address space's
/// root, then what is mapped in it, by address), subregions listed in the order that
/// reproduces their precedence. Loading the result rebuilds an equivalent machine: same
/// trees, same views.
pub fn export(machine: &Machine) -> String {
    let mem = &machine.memory;
    let info = |id: RegionId| mem.region_info(id).expect("live region");
    // Tree order: roots of address spaces, depth first by address; then everything else.
    let mut order: Vec<RegionId> = Vec::new();
    let mut seen: HashSet<RegionId> = HashSet::new();
    let mut starts: Vec<RegionId> = machine.address_spaces.iter().map(|a| a.root()).collect();
    starts.extend(mem.regions());
    let mut i = 0;
    while i < starts.len() {
        let mut stack = vec![starts[i]];
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            order.push(id);
            let ri = info(id);
            if let Some((t, _)) = ri.alias {
                starts.push(t);
            }
            let mut kids = ri.subregions.clone();
            kids.sort_by_key(|&c| std::cmp::Reverse(info(c).addr));
            stack.extend(kids);
        }
        i += 1;
    }
    // Keys: the name when it is free, else name#2, name#3... (never a key already taken,
    // even by a region whose own name looks like `x#2`).
    let names: HashSet<String> = order.iter().map(|&id| info(id).name).collect();
    let mut taken: HashSet<String> = HashSet::new();
    let mut key_of: HashMap<RegionId, String> = HashMap::new();
    for &id in &order {
        let name = info(id).name;
        let key = if taken.contains(&name) {
            (2..)
                .map(|n| format!("{name}#{n}"))
                .find(|k| !taken.contains(k) && !names.contains(k))
                .expect("an unused suffix exists")
        } else {
            name
        };
        taken.insert(key.clone());
        key_of.insert(id, key);
    }
    let q = |v: &str| toml::Value::String(v.to_string()).to_string();
    let num = |v: u128| {
        if v == SIZE_2_64 {
            q("2^64")
        } else if v == 0 {
            "0".to_string()
        } else {
            q(&format!("{v:#x}"))
        }
    };
    let size = |v: u128| match (0..6)
        .rev()
        .find(|&k| v >= 1 << (10 * (k + 1)) && v % (1 << (10 * (k + 1))) == 0)
    {
        _ if v == SIZE_2_64 => q("2^64"),
        Some(k) => q(&format!("{}{}", v >> (10 * (k + 1)), &"KMGTPE"[k..k + 1])),
        None => num(v),
    };
    let mut out = String::new();
    for &id in &order {
        let ri = info(id);
        let key = &key_of[&id];
        let ty = match ri.kind {
            RegionKind::Container => "container",
            RegionKind::Ram if ri.readonly => "rom",
            RegionKind::Ram => "ram",
            RegionKind::RamDevice => "ram-device",
            RegionKind::RomDevice => "rom-device",
            RegionKind::Io => "io",
            RegionKind::Reservation => "reservation",
            RegionKind::Alias => "alias",
        };
        out += "[[region]]\n";
        if *key != ri.name {
            out += &format!("id = {}\n", q(key));
        }
        out += &format!("name = {}\ntype = \"{ty}\"\nsize = {}\n", q(&ri.name), size(ri.size));
        if let Some((t, o)) = ri.alias {
            out += &format!("target = {}\n", q(&key_of[&t]));
            if o != 0 {
                out += &format!("offset = {}\n", num(u128::from(o)));
            }
        }
        if ri.container.is_none() && ri.addr != 0 {
            out += &format!("addr = {}\n", num(u128::from(ri.addr)));
        }
        if ri.container.is_none() && ri.priority != 0 {
            out += &format!("priority = {}\n", ri.priority);
        }
        let ops = mem.leaf(id).ok().flatten().and_then(|l| match l.backend() {
            Backend::Io(ops) | Backend::RomDevice(_, ops) => ops.describe(),
            _ => None,
        });
        if let Some(name) = ops.filter(|&n| n != "unassigned") {
            out += &format!("ops = {}\n", q(name));
        }
        for (flag, on) in [
            ("enabled = false", !ri.enabled),
            ("readonly = true", ri.readonly && ty != "rom"),
            ("nonvolatile = true", ri.nonvolatile),
            ("unmergeable = true", ri.unmergeable),
            ("romd = false", !ri.romd && ri.kind == RegionKind::RomDevice),
        ] {
            if on {
                out += flag;
                out += "\n";
            }
        }
        if !ri.subregions.is_empty() {
            out += "subregions = [\n";
            // Adding in reverse list order reproduces the list (newest first among equals).
            for &c in ri.subregions.iter().rev() {
                let ci = info(c);
                out += &format!("  {{ region = {}, addr = {}", q(&key_of[&c]), num(u128::from(ci.addr)));
                if ci.priority != 0 {
                    out += &format!(", priority = {}", ci.priority);
                }
                out += " },\n";
            }
            out += "]\n";
        }
        out += "\n";
    }
    for a in &machine.address_spaces {
        out += &format!(
            "[[address-space]]\nname = {}\nroot = {}\n\n",
            q(a.name()),
            q(&key_of[&a.root()])
        );
    }
    out
}
