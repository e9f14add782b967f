//! `addrspace diff A B`: what changed between two machines (two dumps of one guest, a dump
//! and a board file, ...), scriptable like diff(1): exit status 0 when they are the same, 1
//! when they differ, 2 on an error.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use addrspace::mtree::diff::{AliasOf, Change, MachineDiff, RegionState};
use addrspace::mtree::{self};
use clap::Args;

use crate::source;

/// Exit status of `diff` on an error (0: same, 1: different).
pub const EXIT_TROUBLE: u8 = 2;

/// `addrspace diff` arguments.
#[derive(Args)]
pub struct DiffArgs {
    /// The first machine: a board file or a QEMU `info mtree -D` dump.
    a: PathBuf,
    /// The second machine, likewise.
    b: PathBuf,
    /// What the dumps do not say (TOML, as `mtree --hints`): given once, for both A and B;
    /// given twice, the first for A and the second for B (two machines rarely share one).
    #[arg(long, value_name = "HINTS.toml", num_args = 1, action = clap::ArgAction::Append)]
    hints: Vec<PathBuf>,
    /// Print the differences as JSON.
    #[arg(long)]
    json: bool,
}

/// Loads a side; the hints apply to it if it is a dump, and are an error for a board file
/// given its own hints.
fn load(path: &Path, hints: Option<&Path>, own: bool) -> Result<(addrspace::Machine, String), String> {
    source::load_source(path, hints, own)
}

/// The differences as text; empty when there are none.
pub fn to_text(d: &MachineDiff, a: &str, b: &str) -> String {
    if d.is_empty() {
        return String::new();
    }
    let mut s = format!("--- {a}\n+++ {b}\n");
    if !d.regions.is_empty() {
        s.push_str("regions:\n");
    }
    for c in &d.regions {
        let path = c.path.join("/");
        let _ = match &c.change {
            Change::Added(st) => writeln!(s, "+ {path}: {}", state(st)),
            Change::Removed(st) => writeln!(s, "- {path}: {}", state(st)),
            Change::Moved { from, to } => writeln!(s, "~ {path}: moved from {from:016x} to {to:016x}"),
            Change::Resized { from, to } => writeln!(s, "~ {path}: resized from {from:#x} to {to:#x}"),
            Change::Enabled => writeln!(s, "~ {path}: enabled"),
            Change::Disabled => writeln!(s, "~ {path}: disabled"),
            Change::Priority { from, to } => writeln!(s, "~ {path}: priority {from} -> {to}"),
            Change::Kind { from, to } => writeln!(s, "~ {path}: {from} -> {to}"),
            Change::Retargeted { from, to } => writeln!(s, "~ {path}: {} -> {}", alias(from), alias(to)),
            _ => writeln!(s, "~ {path}: {:?}", c.change),
        };
    }
    for sp in &d.spaces {
        let only = match (sp.in_a, sp.in_b) {
            (true, false) => " (only in A)",
            (false, true) => " (only in B)",
            _ => "",
        };
        let _ = writeln!(s, "@@ {}{only} @@", sp.spaces.join(", "));
        for l in &sp.lines {
            let _ = writeln!(s, "{}  {}", l.sign, l.range);
        }
    }
    s
}

fn state(st: &RegionState) -> String {
    let mut s = format!(
        "{} at {:016x}, size {:#x}, prio {}",
        st.kind, st.addr, st.size, st.priority
    );
    if let Some(a) = &st.alias {
        s += &format!(", {}", alias(a));
    }
    if !st.enabled {
        s += " [disabled]";
    }
    s
}

fn alias(a: &AliasOf) -> String {
    format!("alias of {} @{:016x}", a.target.join("/"), a.offset)
}

/// Runs `diff`: prints the differences (and what the imports guessed, on stderr) and returns
/// the exit status.
pub fn main(args: &DiffArgs) -> ExitCode {
    match run(args) {
        Ok((out, guessed, same)) => {
            if let Err(e) = crate::output::stdout(&out) {
                eprintln!("addrspace: {e}");
                return ExitCode::from(2);
            }
            eprint!("{guessed}");
            ExitCode::from(u8::from(!same))
        }
        Err(e) => {
            eprintln!("addrspace: {e}");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

fn run(args: &DiffArgs) -> Result<(String, String, bool), String> {
    let (ha, hb, own) = match args.hints.as_slice() {
        [] => (None, None, false),
        [h] => (Some(h.as_path()), Some(h.as_path()), false),
        [a, b] => (Some(a.as_path()), Some(b.as_path()), true),
        _ => return Err("--hints: give one hints file for both sources, or one for A and one for B".into()),
    };
    let (ma, ga) = load(&args.a, ha, own)?;
    let (mb, gb) = load(&args.b, hb, own)?;
    let d = mtree::diff(&ma.memory, &mb.memory);
    let out = if args.json {
        serde_json::to_string_pretty(&d).map_err(|e| e.to_string())? + "\n"
    } else {
        to_text(&d, &args.a.display().to_string(), &args.b.display().to_string())
    };
    Ok((out, ga + &gb, d.is_empty()))
}
