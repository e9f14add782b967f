//! `addrspace board`: a built machine written back as a board file.
//!
//! Kept apart from the loader (`board.rs`) because it goes the other way: from the live
//! region graph to TOML text that the loader reads back into an equivalent machine. What the
//! graph cannot tell — the board's `description`, its `[[cluster]]` and `[[cpu-root]]`
//! tables — the loader keeps in the [`Machine`] as it read it, and the exporter writes back;
//! the CPUs' own regions and address spaces are not exported (they come back from those
//! tables when the file is loaded).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::machine::assembly::Machine;
use crate::model::region::{Backend, RegionId, RegionInfo, RegionKind, SIZE_2_64};

/// A TOML string.
fn q(v: &str) -> String {
    toml::Value::String(v.to_string()).to_string()
}

/// An address or offset: `0`, `"0x…"` or `"2^64"`.
fn num(v: u128) -> String {
    if v == SIZE_2_64 {
        q("2^64")
    } else if v == 0 {
        "0".to_string()
    } else {
        q(&format!("{v:#x}"))
    }
}

/// A size: with a binary suffix when it divides evenly (`"64K"`, `"512M"`).
fn size(v: u128) -> String {
    if v == SIZE_2_64 {
        return q("2^64");
    }
    match (0..6)
        .rev()
        .find(|&k| v >= 1 << (10 * (k + 1)) && v % (1 << (10 * (k + 1))) == 0)
    {
        Some(k) => q(&format!("{}{}", v >> (10 * (k + 1)), &"KMGTPE"[k..k + 1])),
        None => num(v),
    }
}

/// `[[name]]` tables, one per item, as the loader reads them: scalar keys one per line
/// (`id` and `name` first), lists of tables as one inline table per line.
pub(super) fn tables<T: Serialize>(name: &str, items: &[T]) -> Result<String, String> {
    let mut out = String::new();
    for item in items {
        let t = match toml::Value::try_from(item) {
            Ok(toml::Value::Table(t)) => t,
            Ok(_) => return Err(format!("a [[{name}]] table does not serialize as a table")),
            Err(e) => return Err(format!("cannot write a [[{name}]] table back: {e}")),
        };
        out += &format!("[[{name}]]\n");
        let first = ["id", "name"];
        let keys = first
            .iter()
            .filter(|k| t.contains_key(**k))
            .map(|k| k.to_string())
            .chain(t.keys().filter(|k| !first.contains(&k.as_str())).cloned());
        for k in keys {
            match &t[&k] {
                toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => {
                    out += &format!("{k} = [\n");
                    for v in a {
                        out += &format!("  {v},\n");
                    }
                    out += "]\n";
                }
                v => out += &format!("{k} = {v}\n"),
            }
        }
        out += "\n";
    }
    Ok(out)
}

/// Describes a built machine as a board file: the description, regions in tree order (each
/// address space's root, then what is mapped in it, by address) with subregions listed in
/// the order that reproduces their precedence, the address spaces, then the CPU tables.
/// Loading the result rebuilds an equivalent machine: same trees, same views, and the CPU
/// clusters as the board file described them (`cpus` is the count plugged at load time: CPUs
/// plugged or unplugged since are not written).
///
/// The regions written are those of [`Machine::regions`], under the same ids (every live
/// region if that list is empty), and the regions their aliases need.
pub fn export(machine: &Machine) -> String {
    let mem = &machine.memory;
    let live = |id: RegionId| mem.region_info(id).ok();
    let listed: Vec<(String, RegionId)> = if machine.regions.is_empty() {
        mem.regions().into_iter().map(|id| (String::new(), id)).collect()
    } else {
        machine.regions.clone()
    };
    let exported: HashSet<RegionId> = listed.iter().map(|(_, id)| *id).collect();
    // Tree order: roots of address spaces, depth first by address; then everything else.
    let mut info: HashMap<RegionId, RegionInfo> = HashMap::new();
    let mut order: Vec<RegionId> = Vec::new();
    let mut starts: Vec<RegionId> = machine.address_spaces.iter().map(|a| a.root()).collect();
    starts.extend(listed.iter().map(|(_, id)| *id));
    let mut i = 0;
    while i < starts.len() {
        let mut stack = vec![starts[i]];
        i += 1;
        while let Some(id) = stack.pop() {
            if info.contains_key(&id) {
                continue;
            }
            let Some(ri) = live(id) else { continue };
            if let Some((t, _)) = ri.alias {
                starts.push(t);
            }
            let mut kids: Vec<(u64, RegionId)> = ri
                .subregions
                .iter()
                .filter(|c| exported.contains(c))
                .filter_map(|&c| Some((live(c)?.addr, c)))
                .collect();
            kids.sort_by_key(|&(addr, _)| std::cmp::Reverse(addr));
            stack.extend(kids.into_iter().map(|(_, c)| c));
            order.push(id);
            info.insert(id, ri);
        }
    }
    // Keys: the machine's own; otherwise the name when it is free, else name#2, name#3...
    // (never a key already taken, even by a region whose own name looks like `x#2`).
    let mut key_of: HashMap<RegionId, String> = listed
        .into_iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, id)| (id, k))
        .collect();
    let mut taken: HashSet<String> = key_of.values().cloned().collect();
    let names: HashSet<&str> = info.values().map(|ri| ri.name.as_str()).collect();
    let mut next: HashMap<&str, usize> = HashMap::new();
    for id in &order {
        if key_of.contains_key(id) {
            continue;
        }
        let name = info[id].name.as_str();
        let key = if taken.contains(name) {
            let n = next.entry(name).or_insert(2);
            loop {
                let k = format!("{name}#{n}");
                *n += 1;
                if !taken.contains(&k) && !names.contains(k.as_str()) {
                    break k;
                }
            }
        } else {
            name.to_string()
        };
        taken.insert(key.clone());
        key_of.insert(*id, key);
    }
    let mut out = String::new();
    if let Some(d) = &machine.description {
        out += &format!("description = {}\n\n", q(d));
    }
    for id in &order {
        region(&mut out, machine, *id, &info, &key_of);
    }
    for a in &machine.address_spaces {
        out += &format!(
            "[[address-space]]\nname = {}\nroot = {}\n\n",
            q(a.name()),
            q(&key_of[&a.root()])
        );
    }
    out += &machine.cpu_tables;
    out
}

/// One `[[region]]` table.
fn region(
    out: &mut String,
    machine: &Machine,
    id: RegionId,
    info: &HashMap<RegionId, RegionInfo>,
    key_of: &HashMap<RegionId, String>,
) {
    let ri = &info[&id];
    let key = &key_of[&id];
    let ty = ri.kind.type_word(ri.readonly);
    *out += "[[region]]\n";
    if *key != ri.name {
        *out += &format!("id = {}\n", q(key));
    }
    *out += &format!("name = {}\ntype = \"{ty}\"\nsize = {}\n", q(&ri.name), size(ri.size));
    if let Some((t, o)) = ri.alias {
        *out += &format!("target = {}\n", q(&key_of[&t]));
        if o != 0 {
            *out += &format!("offset = {}\n", num(u128::from(o)));
        }
    }
    if ri.container.is_none() && ri.addr != 0 {
        *out += &format!("addr = {}\n", num(u128::from(ri.addr)));
    }
    if ri.container.is_none() && ri.priority != 0 {
        *out += &format!("priority = {}\n", ri.priority);
    }
    let ops = machine.memory.leaf(id).ok().flatten().and_then(|l| match l.backend() {
        Backend::Io(ops) | Backend::RomDevice(_, ops) => ops.describe(),
        _ => None,
    });
    let declared = machine.devices.iter().find(|(k, _)| k == key).map(|(_, n)| n.as_str());
    if let Some(name) = declared.or(ops.filter(|&n| n != "unassigned")) {
        *out += &format!("ops = {}\n", q(name));
    }
    for (flag, on) in [
        ("enabled = false", !ri.enabled),
        ("readonly = true", ri.readonly && ty != "rom"),
        ("nonvolatile = true", ri.nonvolatile),
        ("unmergeable = true", ri.unmergeable),
        ("romd = false", !ri.romd && ri.kind == RegionKind::RomDevice),
    ] {
        if on {
            *out += flag;
            *out += "\n";
        }
    }
    if let Some(owner) = &ri.owner {
        *out += &format!("owner = {}\n", q(owner));
    }
    // Adding in reverse list order reproduces the list (newest first among equals).
    let kids: Vec<&RegionInfo> = ri.subregions.iter().rev().filter_map(|c| info.get(c)).collect();
    if !kids.is_empty() {
        *out += "subregions = [\n";
        for (c, ci) in ri.subregions.iter().rev().filter(|c| info.contains_key(c)).zip(kids) {
            *out += &format!("  {{ region = {}, addr = {}", q(&key_of[c]), num(u128::from(ci.addr)));
            if ci.priority != 0 {
                *out += &format!(", priority = {}", ci.priority);
            }
            *out += " },\n";
        }
        *out += "]\n";
    }
    *out += "\n";
}
