//! `addrspace lookup SOURCE ADDR`: which region answers at an address in each address space,
//! through which containers and aliases, with what attributes (the question a QEMU user asks
//! of `info mtree` by hand).

use std::fmt::Write;

use addrspace::mtree::{self, Answer, Hop};
use addrspace::{DirtyClient, DirtyMask};
use clap::Args;

use crate::source::SourceArg;

/// `addrspace lookup` arguments.
#[derive(Args)]
pub struct LookupArgs {
    #[command(flatten)]
    source: SourceArg,
    /// The guest address: hex (0x...) or decimal.
    #[arg(value_parser = parse_addr)]
    addr: u64,
    /// Only this address space (by default, every one).
    #[arg(long, value_name = "NAME")]
    space: Option<String>,
    /// Print the answers as JSON (one object per address space).
    #[arg(long)]
    json: bool,
}

/// An address: `0x`-prefixed hex or decimal, up to 2^64 - 1 (`_` separators allowed).
pub fn parse_addr(s: &str) -> Result<u64, String> {
    let t = s.trim().replace('_', "");
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse::<u64>(),
    };
    parsed.map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow => "larger than 0xffffffffffffffff",
            std::num::IntErrorKind::Empty => "empty",
            _ => "not a number",
        };
        format!("`{s}` is {why}: give an address in hex (0x...) or decimal")
    })
}

/// Runs `lookup`: the answers on stdout, what an import guessed on stderr.
pub fn run(a: &LookupArgs) -> Result<(String, String), String> {
    let (m, guessed) = a.source.load()?;
    let answers = mtree::lookup(&m.memory, a.addr, a.space.as_deref()).map_err(|e| e.to_string())?;
    let out = if a.json {
        serde_json::to_string_pretty(&answers).map_err(|e| e.to_string())? + "\n"
    } else {
        to_text(&answers)
    };
    Ok((out, guessed))
}

/// The answers as text: spaces with the same answer share one block (named in creation
/// order), each block a headline (the flat range that answers) and the path, one hop a line.
/// As in `info mtree -f`, `@X` is an offset inside a region; `mapped at` is a subregion's
/// address in its container.
pub fn to_text(answers: &[Answer]) -> String {
    let mut groups: Vec<(Vec<&str>, &Answer)> = Vec::new();
    for a in answers {
        match groups.iter_mut().find(|(_, b)| b.range == a.range && b.path == a.path) {
            Some((names, _)) => names.push(&a.space),
            None => groups.push((vec![&a.space], a)),
        }
    }
    let mut s = String::new();
    for (names, a) in groups {
        let _ = write!(s, "{}: 0x{:016x} -> ", names.join(", "), a.addr);
        let Some(r) = &a.range else {
            s.push_str("unassigned\n");
            continue;
        };
        let _ = writeln!(
            s,
            "{} @{:016x} ({}, prio {}) range {:016x}-{:016x}, region {}",
            r.region.name, r.offset, r.type_word, r.priority, r.start, r.last, r.region.id
        );
        let mut prev: Option<&Hop> = None;
        for (i, h) in a.path.iter().enumerate() {
            let word = if i + 1 == a.path.len() { "at " } else { "via" };
            let _ = write!(s, "  {word} {} ({}, prio {}", h.region.name, h.kind, h.priority);
            // Where a subregion sits in its container (an alias target's own address plays
            // no part in what the alias shows).
            if prev.is_some_and(|p| p.alias.is_none()) {
                let _ = write!(s, ", mapped at {:016x}", h.addr);
            }
            let _ = write!(s, ") @{:016x}", h.offset);
            if let Some(al) = &h.alias {
                let _ = write!(s, " -> alias of {} @{:016x}", al.target.name, al.offset);
            }
            s.push('\n');
            prev = Some(h);
        }
        let mut attrs = Vec::new();
        if r.readonly {
            attrs.push("readonly".to_string());
        }
        if r.kind == "rom-device" {
            attrs.push(if r.romd { "romd mode" } else { "not in romd mode" }.to_string());
        }
        if r.nonvolatile {
            attrs.push("nonvolatile".to_string());
        }
        let clients: Vec<&str> = DirtyMask::from_bits(r.dirty_log)
            .clients()
            .map(DirtyClient::name)
            .collect();
        if !clients.is_empty() {
            attrs.push(format!("dirty-log {}", clients.join("+")));
        }
        if !attrs.is_empty() {
            let _ = writeln!(s, "  attributes: {}", attrs.join(", "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_in_hex_and_decimal_and_bad_ones_say_why() {
        assert_eq!(parse_addr("0xc0000"), Ok(0xc0000));
        assert_eq!(parse_addr("0XFFFF_FFFF"), Ok(0xffff_ffff));
        assert_eq!(parse_addr("786432"), Ok(0xc0000));
        assert_eq!(parse_addr("0xffffffffffffffff"), Ok(u64::MAX));
        assert!(parse_addr("0x1_0000_0000_0000_0000")
            .unwrap_err()
            .contains("larger than"));
        assert!(parse_addr("c0000").unwrap_err().contains("not a number"));
        assert!(parse_addr("").unwrap_err().contains("empty"));
        assert!(parse_addr("-1").unwrap_err().contains("hex (0x...) or decimal"));
    }
}
