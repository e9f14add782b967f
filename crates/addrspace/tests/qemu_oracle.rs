//! Fidelity against an independent oracle: `tests/oracle/qemu_flat.py` transcribes QEMU's own
//! rendering (recursive `render_memory_region` with its O(n²) gap fill, QEMU's subregion list
//! insertion, `memory_region_get_flatview_root`, `flatview_simplify`) in Python, sharing no
//! code or algorithm with the library. For every board in `boards/`, and for random boards
//! whose aliases point into their own ancestors (ARM SSE's shape), every address space's flat
//! ranges printed by `info mtree -f` must be the oracle's, line for line.
//!
//! Needs `python3` (3.11 or newer, for `tomllib`); without it the test says so and skips.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use addrspace::mtree::{self, FlatOptions};
use common::Rng;

/// Address-space name -> the range lines of each space of that name (names may repeat).
type PerSpace = BTreeMap<String, Vec<Vec<String>>>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the oracle on `boards`; `None` (with the reason printed) if Python cannot run it.
fn oracle(boards: &[PathBuf]) -> Option<Vec<PerSpace>> {
    let script = repo().join("tests/oracle/qemu_flat.py");
    let mut args: Vec<&Path> = vec![&script];
    args.extend(boards.iter().map(|p| p.as_path()));
    // Always name the files (one output block each), even for a single board.
    if boards.len() == 1 {
        args.push(&boards[0]);
    }
    let out = match Command::new("python3").args(&args).output() {
        Ok(o) => o,
        Err(e) => {
            println!("SKIPPED: python3 cannot be run ({e}); the QEMU oracle needs Python 3.11+");
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'tomllib'") {
        println!("SKIPPED: python3 is older than 3.11 (no tomllib); the QEMU oracle needs 3.11+");
        return None;
    }
    assert!(out.status.success(), "oracle failed: {stderr}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let mut all: Vec<PerSpace> = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        if line.starts_with("== ") {
            flush(&mut all, &mut current);
            all.push(PerSpace::new());
        } else if let Some(name) = line.strip_prefix("AS \"") {
            flush(&mut all, &mut current);
            current = Some((name.trim_end_matches('"').to_string(), Vec::new()));
        } else if let Some((_, lines)) = &mut current {
            lines.push(line.to_string());
        }
    }
    flush(&mut all, &mut current);
    if boards.len() == 1 {
        all.truncate(1);
    }
    Some(all)
}

fn flush(all: &mut [PerSpace], current: &mut Option<(String, Vec<String>)>) {
    if let (Some((name, lines)), Some(last)) = (current.take(), all.last_mut()) {
        last.entry(name).or_default().push(lines);
    }
}

/// What the library prints for each address space (`info mtree -f`, regrouped by space).
fn ours(text: &str) -> PerSpace {
    let mut out = PerSpace::new();
    for block in text.split("FlatView #").skip(1) {
        let spaces: Vec<String> = block
            .lines()
            .filter_map(|l| l.strip_prefix(" AS \""))
            .map(|l| l.split('"').next().expect("quoted").to_string())
            .collect();
        let ranges: Vec<String> = block
            .lines()
            .filter(|l| l.starts_with("  ") && l.as_bytes().get(2).is_some_and(u8::is_ascii_hexdigit))
            .map(str::to_string)
            .collect();
        for s in spaces {
            out.entry(s).or_default().push(ranges.clone());
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn compare(what: &str, ours: &PerSpace, mut theirs: PerSpace) {
    for v in theirs.values_mut() {
        v.sort();
    }
    for (name, want) in &theirs {
        let got = ours
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no address space `{name}`"));
        assert_eq!(
            got,
            want,
            "{what}: address space `{name}` differs from QEMU's algorithm\n--- ours ---\n{}\n--- oracle ---\n{}",
            got.iter().map(|v| v.join("\n")).collect::<Vec<_>>().join("\n~~\n"),
            want.iter().map(|v| v.join("\n")).collect::<Vec<_>>().join("\n~~\n"),
        );
    }
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what}: the same address spaces"
    );
}

#[test]
fn every_board_renders_as_qemus_algorithm() {
    let mut boards: Vec<PathBuf> = std::fs::read_dir(repo().join("boards"))
        .expect("boards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    boards.sort();
    assert!(boards.len() >= 6, "the boards folder holds the example boards");
    let Some(expected) = oracle(&boards) else { return };
    for (path, want) in boards.iter().zip(expected) {
        // Device models a board names (`ops = "uart"`) are the VMM's: placeholders here.
        let m = addrspace::board::Loader::new()
            .placeholders(true)
            .load_file(path)
            .expect("board loads");
        let text = mtree::print_flat(&m.memory, &FlatOptions::default());
        compare(&path.display().to_string(), &ours(&text), want);
    }
}

/// A random board: containers nested a few levels, leaves of every kind, equal and mixed
/// priorities, and aliases — most of them of an ancestor of the container they are mapped in
/// (or of that container), with shifted windows, so chains of them come back again and again.
fn random_board(rng: &mut Rng) -> String {
    struct Spec {
        /// The region's keys (name, type, size, ...), one per line.
        keys: String,
        container: bool,
        parent: Option<usize>,
        /// `subregions` entries, in the order they are added.
        placed: Vec<String>,
    }
    let grid = |rng: &mut Rng| rng.below(64) * 0x400;
    let root_ty = if rng.below(4) == 0 { "io" } else { "container" };
    let mut specs = vec![Spec {
        keys: format!("type = \"{root_ty}\"\nsize = \"2^64\"\n"),
        container: true,
        parent: None,
        placed: Vec::new(),
    }];
    for i in 1..4 + rng.index(14) {
        let containers: Vec<usize> = (0..specs.len()).filter(|&k| specs[k].container).collect();
        let parent = containers[rng.index(containers.len())];
        let size: u128 = [0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000][rng.index(6)];
        let mut keys = match rng.below(10) {
            0 | 1 => format!("type = \"container\"\nsize = {}\n", size * 4),
            2 => format!("type = \"ram\"\nsize = {size}\n"),
            3 => format!("type = \"rom\"\nsize = {size}\n"),
            4 => format!("type = \"rom-device\"\nsize = {size}\nromd = {}\n", rng.below(2) == 0),
            5 => format!("type = \"io\"\nsize = {size}\n"),
            _ => {
                let mut ancestors = vec![parent];
                while let Some(a) = specs[*ancestors.last().expect("one")].parent {
                    ancestors.push(a);
                }
                let target = if rng.below(4) > 0 {
                    ancestors[rng.index(ancestors.len())]
                } else {
                    rng.index(specs.len())
                };
                let offset = grid(rng);
                format!("type = \"alias\"\ntarget = \"r{target}\"\noffset = {offset}\nsize = {size}\n")
            }
        };
        if rng.below(8) == 0 {
            keys += "readonly = true\n";
        }
        if rng.below(12) == 0 {
            keys += "enabled = false\n";
        }
        let prio = [-1500, -1, 0, 0, 0, 1][rng.index(6)];
        let addr = grid(rng);
        specs[parent]
            .placed
            .push(format!("{{ region = \"r{i}\", addr = {addr}, priority = {prio} }}"));
        let container = keys.starts_with("type = \"container\"");
        specs.push(Spec {
            keys,
            container,
            parent: Some(parent),
            placed: Vec::new(),
        });
    }
    let mut out = String::new();
    for (k, spec) in specs.iter().enumerate() {
        let _ = write!(out, "[[region]]\nname = \"r{k}\"\n{}", spec.keys);
        if !spec.placed.is_empty() {
            let _ = writeln!(out, "subregions = [{}]", spec.placed.join(", "));
        }
        out.push('\n');
    }
    out += "[[address-space]]\nname = \"memory\"\nroot = \"r0\"\n\n";
    let inner: Vec<usize> = (1..specs.len()).filter(|&k| specs[k].container).collect();
    if !inner.is_empty() {
        let k = inner[rng.index(inner.len())];
        let _ = writeln!(out, "[[address-space]]\nname = \"inner\"\nroot = \"r{k}\"\n");
    }
    out
}

#[test]
fn random_boards_with_ancestor_aliases_render_as_qemus_algorithm() {
    let cases: usize = std::env::var("ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = std::env::temp_dir().join(format!("addrspace-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut rng = Rng(0x5eed_0123_4567_89ab);
    let (mut boards, mut texts, mut refused) = (Vec::new(), Vec::new(), 0);
    for i in 0..cases {
        let text = random_board(&mut rng);
        // Boards the library refuses (an endless cycle, say) would hang the oracle too.
        if addrspace::board::load_str(&text, "random.toml").is_err() {
            refused += 1;
            continue;
        }
        let path = dir.join(format!("b{i}.toml"));
        std::fs::write(&path, &text).expect("write");
        boards.push(path);
        texts.push(text);
    }
    let cyclic = texts
        .iter()
        .filter(|t| {
            let m = addrspace::board::load_str(t, "random.toml").expect("loaded before");
            has_ancestor_alias(&m.memory)
        })
        .count();
    println!(
        "{} boards compared ({cyclic} with an alias into an ancestor), {refused} refused",
        boards.len()
    );
    assert!(
        cyclic * 3 >= boards.len(),
        "at least a third of the boards have ancestor aliases"
    );
    let Some(expected) = oracle(&boards) else { return };
    for ((path, text), want) in boards.iter().zip(&texts).zip(expected) {
        let m = addrspace::board::load_str(text, "random.toml").expect("loaded before");
        let flat = mtree::print_flat(&m.memory, &FlatOptions::default());
        compare(&format!("{}\n{text}", path.display()), &ours(&flat), want);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether some mapped alias targets its own container or an ancestor of it.
fn has_ancestor_alias(m: &addrspace::Memory) -> bool {
    m.regions().into_iter().any(|id| {
        let info = m.region_info(id).expect("live");
        let Some((target, _)) = info.alias else { return false };
        let mut at = info.container;
        while let Some(c) = at {
            if c == target {
                return true;
            }
            at = m.region_info(c).expect("live").container;
        }
        false
    })
}
