//! Fuzz target `import_dump`: `mtree::import_dump` on arbitrary text and on generated,
//! mostly valid `info mtree -D` dumps full of aliases into ancestors.
//!
//! The first byte picks the mode. Even: the rest is the dump text (lossy UTF-8), so the
//! QEMU captures of `tests/fixtures/qemu` make a seed corpus (`fuzz/seeds/import_dump`, each
//! prefixed with a zero byte). Odd: the rest drives a [`Spec`] — a forest of regions, some
//! of them aliases of their own ancestors (`up` levels above their container, the window
//! shifted by a chosen amount, none at all for an endless one), of aliases, or of anything —
//! printed as QEMU prints `info mtree -D` (address-space groups, then one `memory-region:`
//! section per alias target), sometimes damaged by a few line edits, with random hints.
//!
//! The property: no panic and no hang (run with `-timeout=1`): the import either fails with
//! an error or builds a machine, which `mtree::print_tree`, `mtree::print_flat` (also with
//! the dispatch index) and a second import of its own dump must get through.

#![no_main]

use std::fmt::Write as _;

use addrspace::mtree::{self, FlatOptions, Hints, TreeOptions};
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
const MAX_EDITS: usize = 4;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ty {
    Container,
    Ram,
    Rom,
    Io,
    Romd,
    Ramd,
}

impl Ty {
    fn word(self) -> &'static str {
        match self {
            Ty::Container | Ty::Io => "i/o",
            Ty::Ram => "ram",
            Ty::Rom => "rom",
            Ty::Romd => "romd",
            Ty::Ramd => "ramd",
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
    /// An alias of an earlier region (by index, modulo), at an offset.
    Alias(u8, u32),
    /// An alias of the ancestor `up` levels above its container.
    Ancestor(u8, Shift),
    /// An alias of an earlier alias (by index among them, modulo), at an offset: an alias of
    /// an ancestor alias comes back to the ancestor too.
    OfAlias(u8, u16),
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
    /// Container: a root (`None`) or an earlier region (by index, modulo).
    parent: Option<u8>,
    kind: Kind,
    addr: u32,
    size: Size,
    prio: i8,
    disabled: bool,
    nv: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Edit {
    Drop(u8),
    Duplicate(u8),
    Swap(u8, u8),
    /// Indent a line deeper (or shallower) by two spaces.
    Indent(u8, bool),
    /// Replace the first hex number of a line.
    Hex(u8, u64),
    Truncate(u16),
}

#[derive(Arbitrary, Debug)]
struct Spec {
    nodes: Vec<Node>,
    /// Address spaces per root (0: the root only prints as a section, if at all).
    spaces: [u8; 3],
    /// Apply `edits` (else the dump stays as printed).
    damage: bool,
    edits: Vec<Edit>,
    /// Hints by node index: MMIO containers, pure containers, read-only.
    hints: Vec<(u8, u8)>,
}

/// One region as printed.
struct R {
    name: String,
    ty: Ty,
    addr: u64,
    size: u128,
    prio: i32,
    disabled: bool,
    nv: bool,
    parent: Option<usize>,
    alias: Option<(usize, u64)>,
}

/// Builds the regions; ancestor aliases get the offset that makes their shift.
fn regions(spec: &Spec) -> Vec<R> {
    let mut rs: Vec<R> = Vec::new();
    for (i, n) in spec.nodes.iter().take(MAX_NODES).enumerate() {
        // Only non-aliases contain anything; the first region is always a root.
        let containers: Vec<usize> = (0..i).filter(|&j| rs[j].alias.is_none()).collect();
        let parent = match (n.parent, containers.is_empty()) {
            (Some(p), false) => Some(containers[usize::from(p) % containers.len()]),
            _ => None,
        };
        let addr = u64::from(n.addr) & !0xf;
        // RAM is real host memory: at most 16 MiB (huge sizes only exercise an allocation error).
        let ram = matches!(n.kind, Kind::Plain(Ty::Ram | Ty::Rom | Ty::Romd | Ty::Ramd));
        let size = if ram { n.size.get().min(1 << 24) } else { n.size.get() };
        let (ty, alias) = match n.kind {
            Kind::Plain(ty) => (ty, None),
            Kind::Alias(t, off) if i > 0 => (Ty::Container, Some((usize::from(t) % i, u64::from(off)))),
            Kind::Ancestor(up, shift) => match parent {
                Some(p) => {
                    // The ancestor `up` levels above the container, and the container's offset.
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
            Kind::OfAlias(t, off) => {
                let aliases: Vec<usize> = (0..i).filter(|&j| rs[j].alias.is_some()).collect();
                match aliases.is_empty() {
                    false => (
                        Ty::Container,
                        Some((aliases[usize::from(t) % aliases.len()], u64::from(off))),
                    ),
                    true => (Ty::Ram, None),
                }
            }
            _ => (Ty::Ram, None),
        };
        rs.push(R {
            name: format!("r{i}"),
            ty,
            addr,
            size,
            prio: i32::from(n.prio),
            disabled: n.disabled,
            nv: n.nv,
            parent,
            alias,
        });
    }
    rs
}

/// The type word QEMU prints: an alias shows its final target's.
fn word(rs: &[R], mut i: usize) -> &'static str {
    for _ in 0..=rs.len() {
        match rs[i].alias {
            Some((t, _)) => i = t,
            None => return rs[i].ty.word(),
        }
    }
    "i/o"
}

/// Prints `i` and its subtree at `level`, its container at absolute `base`; queues alias
/// targets for their sections.
fn print(rs: &[R], i: usize, level: usize, base: u64, out: &mut String, queue: &mut Vec<usize>) {
    let r = &rs[i];
    let start = base.wrapping_add(r.addr);
    let last = |size: u128| if size == 0 { 0 } else { (size - 1) as u64 };
    let end = start.wrapping_add(last(r.size));
    let nv = if r.nv { "nv-" } else { "" };
    let _ = write!(
        out,
        "{:w$}{start:016x}-{end:016x} (prio {}, {nv}{}): ",
        "",
        r.prio,
        word(rs, i),
        w = level * 2
    );
    match r.alias {
        Some((t, off)) => {
            if !queue.contains(&t) {
                queue.push(t);
            }
            let _ = write!(
                out,
                "alias {} @{} {off:016x}-{:016x}",
                r.name,
                rs[t].name,
                off.wrapping_add(last(r.size))
            );
        }
        None => out.push_str(&r.name),
    }
    if r.disabled {
        out.push_str(" [disabled]");
    }
    out.push('\n');
    let mut kids: Vec<usize> = (0..rs.len()).filter(|&c| rs[c].parent == Some(i)).collect();
    kids.sort_by_key(|&c| (rs[c].addr, std::cmp::Reverse(rs[c].prio), std::cmp::Reverse(c)));
    for c in kids {
        print(rs, c, level + 1, start, out, queue);
    }
}

/// The dump QEMU would print for `rs`.
fn dump(rs: &[R], spaces: &[u8; 3]) -> String {
    let mut out = String::new();
    let mut queue = Vec::new();
    let roots: Vec<usize> = (0..rs.len()).filter(|&i| rs[i].parent.is_none()).collect();
    for (k, &root) in roots.iter().take(3).enumerate() {
        let n = spaces[k] % 3;
        if n == 0 && k > 0 {
            continue;
        }
        for s in 0..n.max(1) {
            let _ = writeln!(out, "address-space: as{k}.{s}");
        }
        print(rs, root, 1, 0, &mut out, &mut queue);
        out.push('\n');
    }
    let mut k = 0;
    while k < queue.len() {
        let t = queue[k];
        let _ = writeln!(out, "memory-region: {}", rs[t].name);
        print(rs, t, 1, 0, &mut out, &mut queue);
        out.push('\n');
        k += 1;
    }
    out
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
            Edit::Indent(k, deeper) => {
                let i = at(k);
                if deeper {
                    lines[i].insert_str(0, "  ");
                } else if let Some(rest) = lines[i].strip_prefix("  ") {
                    lines[i] = rest.to_string();
                }
            }
            Edit::Hex(k, v) => {
                let i = at(k);
                if let Some(p) = lines[i].find(|c: char| c.is_ascii_hexdigit()) {
                    let end = (p + 16).min(lines[i].len());
                    if lines[i].is_char_boundary(end) {
                        lines[i].replace_range(p..end, &format!("{v:016x}"));
                    }
                }
            }
            Edit::Truncate(n) => {
                let keep = usize::from(n) % (lines.len() + 1);
                lines.truncate(keep);
            }
        }
    }
    let mut s = lines.join("\n");
    s.push('\n');
    s
}

fn hints(rs: &[R], picks: &[(u8, u8)]) -> Hints {
    let mut h = Hints::default();
    for &(i, what) in picks.iter().take(8) {
        let Some(r) = rs.get(usize::from(i) % rs.len().max(1)) else {
            continue;
        };
        match what % 3 {
            0 => h.mmio_containers.push(r.name.clone()),
            1 => h.pure_containers.push(r.name.clone()),
            _ => h.readonly.push(r.name.clone()),
        }
    }
    h
}

/// Imports `text`; a machine built must print, and its own dump must import again.
fn exercise(text: &str, hints: &Hints) {
    let machine = match mtree::import_dump(text, "fuzz.txt", hints) {
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
    let tree = mtree::print_tree(&machine.memory, &TreeOptions::DISABLED);
    let _ = mtree::print_tree(
        &machine.memory,
        &TreeOptions {
            disabled: false,
            owners: true,
        },
    );
    let _ = mtree::print_flat(
        &machine.memory,
        &FlatOptions {
            dispatch: false,
            owners: true,
        },
    );
    let _ = mtree::print_flat(
        &machine.memory,
        &FlatOptions {
            dispatch: true,
            owners: false,
        },
    );
    let _ = mtree::mtree_json(&machine.memory, true);
    if let Ok(again) = mtree::import_dump(&tree, "again.txt", hints) {
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
        exercise(&String::from_utf8_lossy(rest), &Hints::default());
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
    let mut text = dump(&rs, &spec.spaces);
    if spec.damage {
        text = edit(&text, &spec.edits);
    }
    exercise(&text, &hints(&rs, &spec.hints));
}

fuzz_target!(|data: &[u8]| {
    run(data);
    stats::print();
});
