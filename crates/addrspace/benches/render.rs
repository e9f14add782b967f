//! Render time for region trees of 100 to 100 000 regions, three shapes:
//!
//! * `flat`: one container holding n MMIO/RAM leaves over a background MMIO region;
//! * `nested`: containers nested n/4 levels deep, each holding three leaves;
//! * `alias`: n aliases, half onto 4 KiB windows of one big RAM block, half onto windows of
//!   a 64-device I/O bank (each alias re-walks part of the bank).
//!
//! And loading what describes such trees, then printing `info mtree -f`:
//!
//! * `import/siblings/N`: a QEMU dump of one container with N RAM siblings at mixed
//!   priorities (two per address, equal priorities overlapping at different addresses);
//! * `import/nested/20000`: a dump of 20 000 nested containers (400 MB of indentation);
//! * `board/nested/20000` and `board/alias-chain/20000`: board files, the same depth as
//!   nested containers and as a chain of aliases.
//!
//! * `api/…`: the same traps through the `Memory` API, in one transaction: 200 000 siblings
//!   mapped into one container at priorities in random order (then all moved, in a second
//!   transaction), 20 000 containers each mapped into the previous one as soon as it exists
//!   (top-down), a chain of 20 000 aliases.
//!
//! Their summary lines split the time: `plan_ns` is the importer's own work
//! (`mtree::plan_dump`), `build_ns` the calls on `Memory` (`DumpPlan::build`: regions,
//! placements, the commit's render), `print_ns` the `-f` printer.
//!
//! Run: `cargo bench -p addrspace --bench render`. Besides criterion's report, the run ends
//! with one line per case, `render/SHAPE/N ours_ns=…`, and the growth factor per 10x.

use std::cmp::Reverse;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

use addrspace::mtree::{self, FlatOptions, Hints};
use addrspace::{board, Memory, RegionId, Unassigned, SIZE_2_64};
use criterion::{criterion_group, BenchmarkId, Criterion};

#[path = "../tests/common/scale.rs"]
mod scale;

fn flat(n: usize) -> (Memory, RegionId) {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let tx = m.transaction();
    let bg = m.io("background", SIZE_2_64, Arc::new(Unassigned)).unwrap();
    tx.add_subregion_overlap(sys, 0, bg, -1).unwrap();
    for i in 0..n - 2 {
        let r = if i % 2 == 0 {
            m.io("dev", 0x800, Arc::new(Unassigned)).unwrap()
        } else {
            m.ram("ram", 0x800).unwrap()
        };
        tx.add_subregion(sys, 0x1000 * i as u64, r).unwrap();
    }
    drop(tx);
    (m, sys)
}

fn nested(n: usize) -> (Memory, RegionId) {
    let m = Memory::new();
    let root = m.container("root", SIZE_2_64).unwrap();
    let tx = m.transaction();
    let mut parent = root;
    let mut count = 1;
    let mut leaf = 0u64;
    while count < n {
        for _ in 0..3 {
            if count == n {
                break;
            }
            let r = m.io("leaf", 0x800, Arc::new(Unassigned)).unwrap();
            tx.add_subregion(parent, 0x1000 * leaf, r).unwrap();
            leaf += 1;
            count += 1;
        }
        if count == n {
            break;
        }
        let c = m.container("level", SIZE_2_64).unwrap();
        tx.add_subregion_overlap(parent, 0, c, -1).unwrap();
        parent = c;
        count += 1;
    }
    drop(tx);
    (m, root)
}

fn alias_heavy(n: usize) -> (Memory, RegionId) {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let tx = m.transaction();
    let ram = m.ram("ram", (n as u128) * 0x1000).unwrap();
    let bank = m.container("bank", 64 * 0x1000).unwrap();
    for d in 0..64u64 {
        let r = m.io("bank-dev", 0x800, Arc::new(Unassigned)).unwrap();
        tx.add_subregion(bank, d * 0x1000, r).unwrap();
    }
    let aliases = n - 67; // system, ram, bank and its 64 devices make 67
    for i in 0..aliases as u64 {
        let a = if i % 2 == 0 {
            m.alias("ram-window", ram, i * 0x1000, 0x1000).unwrap()
        } else {
            m.alias("bank-window", bank, (i % 60) * 0x1000, 0x4000).unwrap()
        };
        tx.add_subregion(sys, i * 0x10000, a).unwrap();
    }
    drop(tx);
    (m, sys)
}

/// A dump of one container with `n` RAM siblings at mixed priorities, printed as QEMU does
/// (by address, then priority, higher first).
fn siblings_dump(n: usize) -> String {
    let mut sibs: Vec<(u64, i32, u64, usize)> = (0..n)
        .map(|i| {
            let addr = (i as u64 / 2) * 0x1000;
            let prio = (i * 7 % 5) as i32 - 2;
            (addr, prio, 0x1000 * (1 + i as u64 % 8), i)
        })
        .collect();
    sibs.sort_by_key(|&(addr, prio, _, _)| (addr, Reverse(prio)));
    let mut s = String::from("address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n");
    for (addr, prio, size, i) in sibs {
        let _ = writeln!(s, "    {addr:016x}-{:016x} (prio {prio}, ram): ram{i}", addr + size - 1);
    }
    s + "\n"
}

/// Import and print `-f`, as `addrspace mtree --from-qemu DUMP -f` does.
fn import_and_print(text: &str) -> String {
    let m = mtree::import_dump(text, "bench", &Hints::default()).unwrap();
    mtree::print_flat(&m.memory, &FlatOptions::default())
}

/// Load and print `-f`, as `addrspace mtree BOARD -f` does.
fn load_and_print(text: &str) -> String {
    let m = board::load_str(text, "bench.toml").unwrap();
    mtree::print_flat(&m.memory, &FlatOptions::default())
}

/// Through the `Memory` API, in one transaction: `n` MMIO siblings mapped into one container
/// at priorities in random order (each insertion lands anywhere in the precedence list).
fn api_siblings(n: usize) -> Memory {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let _space = m.address_space("memory", sys).unwrap();
    {
        let _tx = m.transaction();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = m.io(&format!("dev{i}"), 0x1000, Arc::new(Unassigned)).unwrap();
            m.add_subregion_overlap(sys, (i as u64 / 2) * 0x1000, r, (x % 7) as i32 - 3)
                .unwrap();
        }
    }
    m
}

/// Through the `Memory` API, in one transaction: `depth` containers, each mapped into the
/// previous one as soon as it is made (top-down, the order a device model builds in).
fn api_nested(depth: usize) -> Memory {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let _space = m.address_space("memory", sys).unwrap();
    {
        let _tx = m.transaction();
        let mut c = sys;
        for d in 0..depth {
            let next = m.container(&format!("level{d}"), SIZE_2_64 - d as u128).unwrap();
            m.add_subregion(c, 0, next).unwrap();
            c = next;
        }
        let ram = m.ram("ram", 0x1000).unwrap();
        m.add_subregion(c, 0, ram).unwrap();
    }
    m
}

/// Through the `Memory` API: a chain of `n` aliases, the last of RAM, the first mapped.
fn api_alias_chain(n: usize) -> Memory {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let _space = m.address_space("memory", sys).unwrap();
    {
        let _tx = m.transaction();
        let mut a = m.ram("ram", 0x1000).unwrap();
        for k in 0..n {
            a = m.alias(&format!("a{k}"), a, 0, 0x1000).unwrap();
        }
        m.add_subregion(sys, 0, a).unwrap();
    }
    m
}

/// [`api_siblings`], then every sibling moved, in one more transaction (each move takes the
/// region out of a list left out of order by the first one).
fn api_moves(n: usize) -> Memory {
    let m = api_siblings(n);
    let ids = m.regions();
    {
        let _tx = m.transaction();
        for (i, &id) in ids.iter().skip(1).enumerate() {
            m.set_address(id, (n as u64 + i as u64) * 0x1000).unwrap();
        }
    }
    m
}

type ApiBuilder = fn(usize) -> Memory;
const API: [(&str, ApiBuilder, usize); 4] = [
    ("siblings-random-priority", api_siblings, 200_000),
    ("siblings-then-all-moved", api_moves, 200_000),
    ("nested-top-down", api_nested, 20_000),
    ("alias-chain", api_alias_chain, 20_000),
];

const SIBLINGS: [usize; 3] = [10_000, 100_000, 200_000];
const DEPTH: usize = 20_000;

type Builder = fn(usize) -> (Memory, RegionId);
const SHAPES: [(&str, Builder); 3] = [("flat", flat), ("nested", nested), ("alias", alias_heavy)];
const SIZES: [usize; 4] = [100, 1_000, 10_000, 100_000];

fn bench(c: &mut Criterion) {
    for (shape, build) in SHAPES {
        let mut g = c.benchmark_group(format!("render/{shape}"));
        g.sample_size(10);
        for n in SIZES {
            let (m, root) = build(n);
            assert_eq!(m.stats().regions, n, "{shape} builds exactly n regions");
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| m.render(root).unwrap())
            });
        }
        g.finish();
    }
    let mut g = c.benchmark_group("import");
    g.sample_size(10);
    for n in SIBLINGS {
        let text = siblings_dump(n);
        g.bench_with_input(BenchmarkId::new("siblings", n), &n, |b, _| {
            b.iter(|| import_and_print(&text))
        });
    }
    let text = scale::nested_dump(DEPTH);
    g.bench_with_input(BenchmarkId::new("nested", DEPTH), &DEPTH, |b, _| {
        b.iter(|| import_and_print(&text))
    });
    g.finish();
    let mut g = c.benchmark_group("api");
    g.sample_size(10);
    for (name, build, n) in API {
        g.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
            b.iter(|| mtree::print_flat(&build(n), &FlatOptions::default()).len())
        });
    }
    g.finish();
    let mut g = c.benchmark_group("board");
    g.sample_size(10);
    for (name, text) in [
        ("nested", scale::nested_board(DEPTH)),
        ("alias-chain", scale::alias_chain_board(DEPTH)),
    ] {
        g.bench_with_input(BenchmarkId::new(name, DEPTH), &DEPTH, |b, _| {
            b.iter(|| load_and_print(&text))
        });
    }
    g.finish();
}

/// Median of repeated renders, for the summary lines.
fn median_ns(m: &Memory, root: RegionId) -> f64 {
    let reps = 15;
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(m.render(root).unwrap());
            s.elapsed().as_nanos() as f64
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn summary() {
    println!("\nrender summary (median of 15):");
    for (shape, build) in SHAPES {
        let mut prev: Option<f64> = None;
        for n in SIZES {
            let (m, root) = build(n);
            let ranges = m.render(root).unwrap().ranges().len();
            let ns = median_ns(&m, root);
            let growth = prev.map_or("-".to_string(), |p| format!("{:.1}x", ns / p));
            println!(
                "render/{shape}/{n} ours_ns={ns:.0} baseline_ns=- speedup=- ranges={ranges} growth_per_10x={growth}"
            );
            prev = Some(ns);
        }
    }
}

/// Median of `reps` runs of `f`, in ns.
fn median(reps: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut t: Vec<f64> = (0..reps).map(|_| f()).collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[reps / 2]
}

fn ns(since: Instant) -> f64 {
    since.elapsed().as_nanos() as f64
}

/// Import cases, phase by phase (median of 7 each).
fn import_summary() {
    println!("\nimport summary (median of 7; plan = importer, build = Memory calls, print = -f printer):");
    let mut cases: Vec<(String, String)> = SIBLINGS
        .iter()
        .map(|&n| (format!("import/siblings/{n}"), siblings_dump(n)))
        .collect();
    cases.push((format!("import/nested/{DEPTH}"), scale::nested_dump(DEPTH)));
    for (case, text) in &cases {
        let hints = Hints::default();
        let plan = median(7, || {
            let t = Instant::now();
            std::hint::black_box(mtree::plan_dump(text, "bench", &hints).unwrap());
            ns(t)
        });
        let p = mtree::plan_dump(text, "bench", &hints).unwrap();
        let build = median(7, || {
            let t = Instant::now();
            let m = p.build().unwrap();
            let e = ns(t);
            drop(m);
            e
        });
        let m = p.build().unwrap();
        let print = median(7, || {
            let t = Instant::now();
            std::hint::black_box(mtree::print_flat(&m.memory, &FlatOptions::default()));
            ns(t)
        });
        let total = plan + build + print;
        println!(
            "{case} ours_ns={total:.0} baseline_ns=- speedup=- plan_ns={plan:.0} build_ns={build:.0} print_ns={print:.0} regions={}",
            p.regions()
        );
    }
    for (case, text) in [
        (format!("board/nested/{DEPTH}"), scale::nested_board(DEPTH)),
        (format!("board/alias-chain/{DEPTH}"), scale::alias_chain_board(DEPTH)),
    ] {
        let total = median(7, || {
            let t = Instant::now();
            std::hint::black_box(load_and_print(&text));
            ns(t)
        });
        println!("{case} ours_ns={total:.0} baseline_ns=- speedup=-");
    }
    for (name, build, n) in API {
        let total = median(7, || {
            let t = Instant::now();
            let m = build(n);
            std::hint::black_box(mtree::print_flat(&m, &FlatOptions::default()));
            let e = ns(t);
            drop(m);
            e
        });
        println!("api/{name}/{n} ours_ns={total:.0} baseline_ns=- speedup=- (build in one transaction + print -f)");
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    // The summary covers every case; skip it when a filter selects some (for profiling).
    let filtered = std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a.parse::<f64>().is_err());
    if !filtered {
        summary();
        import_summary();
    }
}
