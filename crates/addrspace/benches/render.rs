//! Render time for region trees of 100 to 100 000 regions, three shapes:
//!
//! * `flat`: one container holding n MMIO/RAM leaves over a background MMIO region;
//! * `nested`: containers nested n/4 levels deep, each holding three leaves;
//! * `alias`: n aliases, half onto 4 KiB windows of one big RAM block, half onto windows of
//!   a 64-device I/O bank (each alias re-walks part of the bank).
//!
//! Run: `cargo bench -p addrspace --bench render`. Besides criterion's report, the run ends
//! with one line per case, `render/SHAPE/N ours_ns=…`, and the growth factor per 10x.

use std::sync::Arc;
use std::time::Instant;

use addrspace::{Memory, RegionId, Unassigned, SIZE_2_64};
use criterion::{criterion_group, BenchmarkId, Criterion};

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
    }
}
