//! Fuzz target `board_load`: `board::load_str` on arbitrary text and on generated, mostly
//! valid board files whose `[[region]]` aliases target their own ancestor containers.
//!
//! The first byte picks the mode. Even: the rest is the board text (lossy UTF-8), so the
//! boards of `boards/` make a seed corpus (`fuzz/seeds/board_load`, each prefixed with a zero
//! byte). Odd: the rest drives a [`Spec`] — regions nested in containers, aliases of their own
//! ancestors (`up` levels above the container they are listed in, the window shifted by a
//! chosen amount, or not at all for an endless one), aliases of aliases and of anything,
//! address spaces, maybe a CPU cluster over a region or over a `[[cpu-root]]` template —
//! written as TOML with the tables in a chosen order, sometimes damaged by a few line edits.
//!
//! The property: no panic and no hang (run with `-timeout=1`): loading either fails with an
//! error or builds a machine, which `mtree::print_tree`, `mtree::print_flat` and
//! `board::export` must get through, and whose export must load again.

#![no_main]

use std::fmt::Write as _;

use addrspace::board;
use addrspace::mtree::{self, FlatOptions, TreeOptions};
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

/// Replaying a corpus with `FUZZ_STATS=1` prints running totals (every 100 inputs) of what
/// the inputs did, to judge how much of the property the fuzzer reaches.
mod stats {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    pub static INPUTS: AtomicU64 = AtomicU64::new(0);
    pub static TEXT: AtomicU64 = AtomicU64::new(0);
    pub static GENERATED: AtomicU64 = AtomicU64::new(0);
    /// Generated with an alias into an ancestor, with an endless one.
    pub static ANCESTOR: AtomicU64 = AtomicU64::new(0);
    pub static ENDLESS: AtomicU64 = AtomicU64::new(0);
    pub static BUILT: AtomicU64 = AtomicU64::new(0);
    /// Refused as an endless cycle; refused otherwise.
    pub static CYCLE_ERRORS: AtomicU64 = AtomicU64::new(0);
    pub static OTHER_ERRORS: AtomicU64 = AtomicU64::new(0);
    pub fn add(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
    pub fn print() {
        let g = |c: &AtomicU64| c.load(Relaxed);
        if std::env::var_os("FUZZ_STATS").is_none() || g(&INPUTS) % 100 != 0 {
            return;
        }
        eprintln!(
            "stats: inputs {} text {} generated {} (ancestor aliases {} endless {}) built {} cycle-errors {} other-errors {}",
            g(&INPUTS), g(&TEXT), g(&GENERATED), g(&ANCESTOR), g(&ENDLESS), g(&BUILT), g(&CYCLE_ERRORS), g(&OTHER_ERRORS)
        );
    }
}

const MAX_NODES: usize = 24;
const MAX_EDITS: usize = 3;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ty {
    Container,
    Ram,
    Rom,
    Io,
    RomDevice,
    RamDevice,
    Reservation,
}

impl Ty {
    fn word(self) -> &'static str {
        match self {
            Ty::Container => "container",
            Ty::Ram => "ram",
            Ty::Rom => "rom",
            Ty::Io => "io",
            Ty::RomDevice => "rom-device",
            Ty::RamDevice => "ram-device",
            Ty::Reservation => "reservation",
        }
    }
}

/// How far an ancestor alias's window is from the addresses it sits at.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Shift {
    /// Not at all: rendering would never end.
    Zero,
    Bytes(i16),
    Pages(i8),
    /// The window size divided by this (+1): around the re-entry limit.
    Fraction(u8, bool),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Plain(Ty),
    /// An alias of an earlier region (by index, modulo), at an offset; of any region, later
    /// ones too, with the flag (the loader must refuse alias cycles).
    Alias(u8, u32, bool),
    /// An alias of the ancestor `up` levels above its container.
    Ancestor(u8, Shift),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Page(u8),
    Small(u16),
    Big(u64),
    Full,
}

impl Size {
    fn get(self) -> u128 {
        match self {
            Size::Page(n) => (u128::from(n % 64) + 1) * 0x1000,
            Size::Small(n) => u128::from(n),
            Size::Big(n) => u128::from(n),
            Size::Full => 1 << 64,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Node {
    /// Container: a root (`None`) or another region (by index, modulo).
    parent: Option<u8>,
    kind: Kind,
    addr: u32,
    size: Size,
    prio: i8,
    disabled: bool,
    readonly: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Cpus {
    /// One space per CPU over a region.
    Root(u8),
    /// Per-CPU roots from a template: an alias of a region and a private device.
    Template(u8, u32),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Edit {
    Drop(u8),
    Duplicate(u8),
    Swap(u8, u8),
    /// Replace the first number of a line.
    Number(u8, u64),
}

#[derive(Arbitrary, Debug)]
struct Spec {
    nodes: Vec<Node>,
    /// Address spaces over regions (by index, modulo).
    spaces: Vec<u8>,
    cluster: Option<(u8, Cpus)>,
    /// Table order: each table swapped with a later one.
    order: Vec<u8>,
    /// Apply `edits` (else the board stays as written).
    damage: bool,
    edits: Vec<Edit>,
}

/// One region as written.
struct R {
    ty: Ty,
    addr: u64,
    size: u128,
    prio: i32,
    disabled: bool,
    readonly: bool,
    parent: Option<usize>,
    alias: Option<(usize, u64)>,
}

/// Builds the regions: containment forms a forest (a parent comes earlier), aliases go
/// anywhere, ancestor aliases get the offset that makes their shift.
fn regions(spec: &Spec) -> Vec<R> {
    let mut rs: Vec<R> = Vec::new();
    for (i, n) in spec.nodes.iter().take(MAX_NODES).enumerate() {
        let containers: Vec<usize> = (0..i).filter(|&j| rs[j].alias.is_none()).collect();
        let parent = match (n.parent, containers.is_empty()) {
            (Some(p), false) => Some(containers[usize::from(p) % containers.len()]),
            _ => None,
        };
        let addr = u64::from(n.addr) & !0xf;
        // RAM is real host memory: at most 16 MiB (huge sizes only exercise an allocation error).
        let ram = matches!(n.kind, Kind::Plain(Ty::Ram | Ty::Rom | Ty::RomDevice | Ty::RamDevice));
        let size = if ram { n.size.get().min(1 << 24) } else { n.size.get() };
        let (ty, alias) = match n.kind {
            Kind::Plain(ty) => (ty, None),
            Kind::Alias(t, off, any) => {
                let n = if any { spec.nodes.len().min(MAX_NODES) } else { i.max(1) };
                (Ty::Container, Some((usize::from(t) % n, u64::from(off))))
            }
            Kind::Ancestor(up, shift) => match parent {
                Some(p) => {
                    let (mut q, mut d) = (p, 0i128);
                    for _ in 0..up % 4 {
                        let Some(pp) = rs[q].parent else { break };
                        d += i128::from(rs[q].addr);
                        q = pp;
                    }
                    let s: i128 = match shift {
                        Shift::Zero => 0,
                        Shift::Bytes(b) => i128::from(b),
                        Shift::Pages(k) => i128::from(k) * 0x1000,
                        Shift::Fraction(k, down) => {
                            let x = (size / (u128::from(k) + 1)).max(1) as i128;
                            if down {
                                -x
                            } else {
                                x
                            }
                        }
                    };
                    let off = (d + i128::from(addr) - s).clamp(0, i128::from(u64::MAX)) as u64;
                    (Ty::Container, Some((q, off)))
                }
                None => (Ty::Io, None),
            },
        };
        rs.push(R {
            ty,
            addr,
            size,
            prio: i32::from(n.prio),
            disabled: n.disabled,
            readonly: n.readonly,
            parent,
            alias,
        });
    }
    rs
}

fn size_text(size: u128) -> String {
    if size == 1 << 64 {
        "\"2^64\"".into()
    } else {
        format!("\"{size:#x}\"")
    }
}

/// The board file, tables in the order `spec.order` makes.
fn board_text(rs: &[R], spec: &Spec) -> String {
    let mut tables: Vec<String> = Vec::new();
    for (i, r) in rs.iter().enumerate() {
        let mut s = format!("[[region]]\nname = \"r{i}\"\n");
        match r.alias {
            Some((t, off)) => {
                let _ = write!(s, "type = \"alias\"\ntarget = \"r{t}\"\noffset = \"{off:#x}\"\n");
            }
            None => {
                let _ = writeln!(s, "type = \"{}\"", r.ty.word());
            }
        }
        let _ = writeln!(s, "size = {}", size_text(r.size));
        if r.disabled {
            s.push_str("enabled = false\n");
        }
        if r.readonly {
            s.push_str("readonly = true\n");
        }
        let kids: Vec<usize> = (0..rs.len()).filter(|&c| rs[c].parent == Some(i)).collect();
        if !kids.is_empty() {
            s.push_str("subregions = [\n");
            for c in kids {
                let _ = writeln!(
                    s,
                    "  {{ region = \"r{c}\", addr = \"{:#x}\", priority = {} }},",
                    rs[c].addr, rs[c].prio
                );
            }
            s.push_str("]\n");
        }
        tables.push(s);
    }
    for (k, &root) in spec.spaces.iter().take(4).enumerate() {
        tables.push(format!(
            "[[address-space]]\nname = \"as{k}\"\nroot = \"r{}\"\n",
            usize::from(root) % rs.len()
        ));
    }
    if let Some((cpus, how)) = spec.cluster {
        let max = usize::from(cpus % 4) + 1;
        let space = match how {
            Cpus::Root(r) => format!("root = \"r{}\"", usize::from(r) % rs.len()),
            Cpus::Template(r, at) => {
                tables.push(format!(
                    "[[cpu-root]]\nid = \"percpu\"\nname = \"cpu-container\"\nsize = \"2^64\"\nsubregions = [\n  \
                     {{ name = \"system\", alias = \"r{}\", priority = -1 }},\n  \
                     {{ name = \"nvic\", io = \"0x1000\", addr = \"{:#x}\", priority = 1 }},\n]\n",
                    usize::from(r) % rs.len(),
                    u64::from(at) & !0xfff
                ));
                "per-cpu = \"percpu\"".into()
            }
        };
        tables.push(format!(
            "[[cluster]]\nname = \"cpus\"\nmax-cpus = {max}\ncpus = {}\nspaces = [{{ index = 0, prefix = \"cpu-memory\", {space} }}]\n",
            max.div_ceil(2)
        ));
    }
    let n = tables.len();
    for (i, &k) in spec.order.iter().enumerate().take(n) {
        tables.swap(i, i + usize::from(k) % (n - i));
    }
    tables.join("\n")
}

fn edit(text: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for e in edits.iter().take(MAX_EDITS) {
        if lines.is_empty() {
            break;
        }
        let at = |k: u8| usize::from(k) % lines.len();
        match *e {
            Edit::Drop(k) => {
                lines.remove(at(k));
            }
            Edit::Duplicate(k) => {
                let l = lines[at(k)].clone();
                lines.insert(at(k), l);
            }
            Edit::Swap(a, b) => {
                let (a, b) = (at(a), at(b));
                lines.swap(a, b);
            }
            Edit::Number(k, v) => {
                let i = at(k);
                if let Some(p) = lines[i].find("0x") {
                    let end = lines[i][p + 2..]
                        .find(|c: char| !c.is_ascii_hexdigit())
                        .map_or(lines[i].len(), |e| p + 2 + e);
                    lines[i].replace_range(p..end, &format!("{v:#x}"));
                }
            }
        }
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

/// Loads `text`; a machine built must print and export, and its export must load again.
fn exercise(text: &str) {
    let machine = match board::load_str(text, "fuzz.toml") {
        Ok(m) => m,
        Err(e) => {
            let cycle = e.to_string().contains("would create a cycle QEMU cannot render");
            stats::add(if cycle {
                &stats::CYCLE_ERRORS
            } else {
                &stats::OTHER_ERRORS
            });
            return;
        }
    };
    stats::add(&stats::BUILT);
    let _ = mtree::print_tree(
        &machine.memory,
        &TreeOptions {
            disabled: true,
            owners: true,
        },
    );
    let _ = mtree::print_flat(
        &machine.memory,
        &FlatOptions {
            dispatch: true,
            owners: true,
        },
    );
    let _ = mtree::mtree_json(&machine.memory, true);
    let exported = board::export(&machine);
    if let Ok(again) = board::load_str(&exported, "exported.toml") {
        let _ = mtree::print_flat(&again.memory, &FlatOptions::default());
    }
}

fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    stats::add(&stats::INPUTS);
    if mode % 2 == 0 {
        stats::add(&stats::TEXT);
        exercise(&String::from_utf8_lossy(rest));
        return;
    }
    let Ok(spec) = Spec::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    let rs = regions(&spec);
    if rs.is_empty() {
        return;
    }
    stats::add(&stats::GENERATED);
    let ancestors = spec
        .nodes
        .iter()
        .take(MAX_NODES)
        .filter(|n| n.parent.is_some() && matches!(n.kind, Kind::Ancestor(..)));
    if ancestors.clone().next().is_some() {
        stats::add(&stats::ANCESTOR);
    }
    if ancestors
        .clone()
        .any(|n| matches!(n.kind, Kind::Ancestor(_, Shift::Zero)))
    {
        stats::add(&stats::ENDLESS);
    }
    let mut text = board_text(&rs, &spec);
    if spec.damage {
        text = edit(&text, &spec.edits);
    }
    exercise(&text);
}

fuzz_target!(|data: &[u8]| {
    run(data);
    stats::print();
});
