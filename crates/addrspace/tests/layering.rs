//! The shape of the library, checked: layers point one way, modules form no cycle, files
//! stay small.
//!
//! The library's modules live in layer folders under `src/` (see `ARCHITECTURE.md`), in
//! this order, each allowed to use only itself and the layers before it:
//!
//! `base` < `model` < `view` < `read` < `write` < `machine` < `io`
//!
//! This test reads every `.rs` file of `src/`, drops comments, string literals and
//! `#[cfg(test)] mod` blocks and files (`#[cfg(test)] #[path = "…"] mod …;`: unit tests may
//! build a whole `Memory`, as integration tests do), and collects every `crate::` path in what is left — in `use` lines and in code,
//! including `use crate::{a::X, b::Y}` groups, and string literals that are such a path
//! (`#[serde(serialize_with = "crate::base::addr::hex")]`). It fails on:
//!
//! 1. a path into a layer above the file's own (an upward import);
//! 2. a path that does not name a layer (`crate::Memory`: library code names the layer path,
//!    so the check can see the dependency; only `lib.rs` re-exports at the root);
//! 3. a cycle between modules, at the granularity of the second-level module
//!    (`crate::write::commit`; a folder module such as `model::graph` with its `cycle`
//!    submodules is one node: its parts are one concept and may refer to each other);
//! 4. any `.rs` file of the workspace (`src/`, `tests/`, `benches/`, `examples/` of every
//!    crate) or of the fuzz targets over 600 lines.
//!
//! Every failure names the file, the line and the path.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom-up.
const LAYERS: [&str; 7] = ["base", "model", "view", "read", "write", "machine", "io"];

/// The longest a source file may be.
const MAX_LINES: usize = 600;

/// Known back-edges still to invert, as (from module, to module). Each is reported in the
/// output; the list may only shrink (an entry that no longer occurs is an error).
const KNOWN_BACK_EDGES: &[(&str, &str)] = &[];

/// Known files over the limit, still to split. The list may only shrink.
const KNOWN_LONG_FILES: &[&str] = &[];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("readable source dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src/` (`write/commit.rs` → `["write", "commit"]`).
fn module_of(rel: &Path) -> Vec<String> {
    let mut segs: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into_owned()).collect();
    let last = segs.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        segs.push(stem.to_string());
    }
    segs
}

/// `text` with comments, string and char literals blanked (newlines kept, so line numbers
/// stay right).
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && (i == 0 || !is_ident(b[i - 1])) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &x in &b[i..j.min(b.len())] {
                out.push(blank(x));
            }
            i = j;
        } else if c == '"' {
            // A string that is a path (`#[serde(serialize_with = "crate::base::addr::hex")]`)
            // is a dependency too: keep it.
            let end = (i + 1..b.len()).find(|&j| b[j] == '"' || b[j] == '\\' || b[j] == '\n');
            if let Some(end) = end.filter(|&j| b[j] == '"') {
                let inner: String = b[i + 1..end].iter().collect();
                if inner.starts_with("crate::") && inner.chars().all(|x| is_ident(x) || x == ':') {
                    out.push(' ');
                    out.push_str(&inner);
                    out.push(' ');
                    i = end + 1;
                    continue;
                }
            }
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime.
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                for _ in i..=j.min(b.len() - 1) {
                    out.push(' ');
                }
                i = j + 1;
            } else if b.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Files that are unit-test modules of another file (`#[cfg(test)] #[path = "x.rs"] mod m;`):
/// their code is test code, as a `#[cfg(test)] mod m { ... }` block's is.
fn test_module_files(files: &[std::path::PathBuf]) -> BTreeSet<std::path::PathBuf> {
    let mut out = BTreeSet::new();
    for f in files {
        let text = fs::read_to_string(f).expect("readable source");
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for w in lines.windows(3) {
            let path = w[1].strip_prefix("#[path = \"").and_then(|p| p.strip_suffix("\"]"));
            if let (Some(path), true, true) = (path, w[0] == "#[cfg(test)]", w[2].starts_with("mod ")) {
                out.insert(f.parent().expect("in a folder").join(path));
            }
        }
    }
    out
}

/// Blanks every `#[cfg(test)]` module (its whole `{ ... }` block).
fn drop_test_modules(code: &str) -> String {
    let mut b: Vec<char> = code.chars().collect();
    let pat: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + pat.len() <= b.len() {
        if b[i..i + pat.len()] != pat[..] {
            i += 1;
            continue;
        }
        // Only a module: `#[cfg(test)] mod name {`.
        let mut j = i + pat.len();
        while j < b.len() && b[j].is_whitespace() {
            j += 1;
        }
        let rest: String = b[j..(j + 4).min(b.len())].iter().collect();
        if rest != "mod " {
            i += pat.len();
            continue;
        }
        while j < b.len() && b[j] != '{' && b[j] != ';' {
            j += 1;
        }
        if j >= b.len() || b[j] == ';' {
            i += pat.len();
            continue;
        }
        let mut depth = 0;
        let mut k = j;
        while k < b.len() {
            match b[k] {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let last = k.min(b.len() - 1);
        for x in &mut b[i..=last] {
            if *x != '\n' {
                *x = ' ';
            }
        }
        i = k + 1;
    }
    b.into_iter().collect()
}

/// Reads a path `a::b::{c::d, e}` starting at `i`; pushes every full path it names.
fn read_paths(b: &[char], mut i: usize, prefix: &[String], out: &mut Vec<Vec<String>>) -> usize {
    let mut segs = prefix.to_vec();
    loop {
        while i < b.len() && b[i].is_whitespace() {
            i += 1;
        }
        if b.get(i) == Some(&'{') {
            i += 1;
            loop {
                while i < b.len() && (b[i].is_whitespace() || b[i] == ',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == '}' {
                    return i + 1;
                }
                i = read_paths(b, i, &segs, out);
                // Skip `as name` and anything else up to the next item.
                while i < b.len() && b[i] != ',' && b[i] != '}' {
                    i += 1;
                }
            }
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if start == i {
            if segs.len() > prefix.len() || !prefix.is_empty() {
                out.push(segs);
            }
            return i;
        }
        segs.push(b[start..i].iter().collect());
        let mut j = i;
        while j < b.len() && b[j].is_whitespace() {
            j += 1;
        }
        if b.get(j) == Some(&':') && b.get(j + 1) == Some(&':') {
            i = j + 2;
        } else {
            out.push(segs);
            return i;
        }
    }
}

/// One `crate::` path found in a file.
struct Use {
    line: usize,
    path: Vec<String>,
}

fn crate_paths(code: &str) -> Vec<Use> {
    let b: Vec<char> = code.chars().collect();
    let pat: Vec<char> = "crate::".chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        if b[i] == '\n' {
            line += 1;
        }
        if b[i..].starts_with(&pat) && (i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == '$')) {
            let mut paths = Vec::new();
            let end = read_paths(&b, i + pat.len(), &[], &mut paths);
            for path in paths {
                out.push(Use { line, path });
            }
            for &c in &b[i..end.min(b.len())] {
                if c == '\n' {
                    line += 1;
                }
            }
            i = end.max(i + 1);
            continue;
        }
        i += 1;
    }
    out
}

fn rank(layer: &str) -> Option<usize> {
    LAYERS.iter().position(|&l| l == layer)
}

/// The second-level module a path names (`["write", "commit", "plan"]` → `write::commit`), or
/// the layer itself for an item of the layer's `mod.rs`.
fn node_of(path: &[String], modules: &BTreeSet<String>) -> String {
    let two = path.iter().take(2).cloned().collect::<Vec<_>>().join("::");
    if modules.contains(&two) {
        two
    } else {
        path[0].clone()
    }
}

/// Strongly connected components with more than one node (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        on: BTreeSet<String>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit(t: &mut T<'_>, v: &str) {
        t.index.insert(v.to_string(), t.next);
        t.low.insert(v.to_string(), t.next);
        t.next += 1;
        t.stack.push(v.to_string());
        t.on.insert(v.to_string());
        let succ: Vec<String> = t.edges.get(v).into_iter().flatten().cloned().collect();
        for w in succ {
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let l = t.low[&w].min(t.low[v]);
                t.low.insert(v.to_string(), l);
            } else if t.on.contains(&w) {
                let l = t.index[&w].min(t.low[v]);
                t.low.insert(v.to_string(), l);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = t.stack.pop().expect("on the stack");
                t.on.remove(&w);
                let done = w == v;
                scc.push(w);
                if done {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: Vec<String> = edges.keys().cloned().collect();
    for v in nodes {
        if !t.index.contains_key(&v) {
            visit(&mut t, &v);
        }
    }
    t.out
}

/// The shortest cycle through the strongly connected `scc`, as a closed walk (first node
/// repeated at the end).
fn shortest_cycle(edges: &BTreeMap<String, BTreeSet<String>>, scc: &[String]) -> Vec<String> {
    let mut best: Option<Vec<String>> = None;
    for start in scc {
        // Breadth-first from `start`, inside the component, back to `start`.
        let mut prev: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        let mut found = None;
        while let Some(v) = queue.pop_front() {
            for w in edges[&v].iter().filter(|w| scc.contains(w)) {
                if w == start {
                    found = Some(v.clone());
                    break;
                }
                if !prev.contains_key(w) {
                    prev.insert(w.clone(), v.clone());
                    queue.push_back(w.clone());
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some(mut at) = found else { continue };
        let mut ring = vec![start.clone(), at.clone()];
        while &at != start {
            at = prev[&at].clone();
            ring.push(at.clone());
        }
        ring.reverse();
        if best.as_ref().is_none_or(|b| ring.len() < b.len()) {
            best = Some(ring);
        }
    }
    best.unwrap_or_default()
}

#[test]
fn layers_point_one_way_modules_form_no_cycle_files_stay_small() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = manifest.join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let test_files = test_module_files(&files);

    // Every second-level module: a file or a folder under a layer.
    let mut modules = BTreeSet::new();
    for f in &files {
        let m = module_of(f.strip_prefix(&src).expect("under src"));
        if m.len() >= 2 {
            modules.insert(m[..2].join("::"));
        }
    }

    let mut errors = String::new();
    let mut report = String::new();
    let mut seen_known: BTreeSet<(String, String)> = BTreeSet::new();
    // Module edges, each with where it was first seen.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut wherefrom: BTreeMap<(String, String), String> = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(&src).expect("under src");
        let shown = format!("src/{}", rel.display());
        let m = module_of(rel);
        if m.is_empty() {
            continue; // lib.rs: declares the layers and re-exports the public paths.
        }
        let Some(own) = rank(&m[0]) else {
            let _ = writeln!(errors, "{shown}: not in a layer folder ({})", LAYERS.join(", "));
            continue;
        };
        let from = if m.len() >= 2 { m[..2].join("::") } else { m[0].clone() };
        let text = fs::read_to_string(f).expect("readable source");
        let code = if test_files.contains(f) {
            String::new()
        } else {
            drop_test_modules(&strip(&text))
        };
        for u in crate_paths(&code) {
            let path = format!("crate::{}", u.path.join("::"));
            let Some(theirs) = rank(&u.path[0]) else {
                let _ = writeln!(
                    errors,
                    "{shown}:{}: `{path}` does not name a layer: use the layer path (e.g. `crate::base::...`)",
                    u.line
                );
                continue;
            };
            let to = node_of(&u.path, &modules);
            if to == from {
                continue;
            }
            let known = KNOWN_BACK_EDGES.iter().any(|&(a, b)| a == from && b == to);
            if known {
                seen_known.insert((from.clone(), to.clone()));
                let _ = writeln!(
                    report,
                    "known back-edge, to invert: {shown}:{}: `{path}` ({from} -> {to})",
                    u.line
                );
                continue;
            }
            if theirs > own {
                let _ = writeln!(
                    errors,
                    "{shown}:{}: `{path}` imports from layer `{}`, above this file's layer `{}` (order: {})",
                    u.line,
                    u.path[0],
                    m[0],
                    LAYERS.join(" < ")
                );
            }
            edges.entry(from.clone()).or_default().insert(to.clone());
            edges.entry(to.clone()).or_default();
            wherefrom
                .entry((from.clone(), to.clone()))
                .or_insert_with(|| format!("{shown}:{}: `{path}`", u.line));
        }
    }
    for &(a, b) in KNOWN_BACK_EDGES {
        if !seen_known.contains(&(a.to_string(), b.to_string())) {
            let _ = writeln!(
                errors,
                "KNOWN_BACK_EDGES lists {a} -> {b}, which no longer occurs: remove it"
            );
        }
    }
    for scc in cycles(&edges) {
        let ring = shortest_cycle(&edges, &scc);
        let _ = writeln!(
            errors,
            "module cycle: {} (one of {} modules that reach each other: {})",
            ring.join(" -> "),
            scc.len(),
            scc.join(", ")
        );
        for pair in ring.windows(2) {
            let _ = writeln!(errors, "    {}", wherefrom[&(pair[0].clone(), pair[1].clone())]);
        }
    }

    // Every source file of every crate of the workspace.
    let root = manifest
        .parent()
        .and_then(Path::parent)
        .expect("crates/<name> in a workspace");
    let mut all = Vec::new();
    for krate in fs::read_dir(root.join("crates")).expect("crates/").flatten() {
        for part in ["src", "tests", "benches", "examples"] {
            let dir = krate.path().join(part);
            if dir.is_dir() {
                rs_files(&dir, &mut all);
            }
        }
    }
    let fuzz = root.join("fuzz/fuzz_targets");
    if fuzz.is_dir() {
        rs_files(&fuzz, &mut all);
    }
    for f in &all {
        let n = fs::read_to_string(f).expect("readable source").lines().count();
        let rel = f.strip_prefix(root).expect("under the workspace").display().to_string();
        if n > MAX_LINES {
            if KNOWN_LONG_FILES.contains(&rel.as_str()) {
                let _ = writeln!(report, "known long file, to split: {rel}: {n} lines");
            } else {
                let _ = writeln!(
                    errors,
                    "{rel}: {n} lines, over {MAX_LINES}: split it along its concepts"
                );
            }
        }
    }
    print!("{report}");
    assert!(errors.is_empty(), "the layering check failed:\n{errors}");
}
