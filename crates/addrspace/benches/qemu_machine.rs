//! QEMU's own commit-cost machine, side by side (issue 15 item 3): q35 with N × virtio-rng-pci
//! behind pci-bridges (`qemu_machine/q35.rs` says what each device holds), at N = 0, 100, 200
//! and 400, in two states: `at -S` (QEMU's measured state: BARs unmapped, bus mastering off)
//! and `booted` (every BAR mapped, windows open, bus mastering on).
//!
//! Per N and state: the whole build (wall time and peak heap, one device at a time with its own
//! commits as QEMU realizes devices, and in one transaction), one commit (tgt's 4 KiB BAR0
//! mapped/unmapped by a command-register write; tgt's bus-master enable), a BAR move (QEMU's
//! two commits, and our one-commit `set_address`), one virtio-rng-pci hot-plug + unplug behind
//! the empty bridge (per-step commits and one transaction each way), and the live address
//! spaces and flat views. The same-run baseline is the library's `CommitMode::Full` (QEMU's
//! algorithm: every view re-rendered on every commit) for one commit; QEMU 10.0.2's measured
//! numbers from `shared/spec/qemu-commit-cost.md` are printed next to ours.
//!
//! Run: `cargo bench -p addrspace --bench qemu_machine` (about a minute); `-- --quick` for
//! fewer samples. Prints one table per state, then `CASE key=value ...` lines.

#[path = "qemu_machine/q35.rs"]
mod q35;
#[path = "support/timing.rs"]
mod timing;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use addrspace::CommitMode;
use q35::{Device, State, Q35, TGT_BAR0, TGT_BAR0_MOVED};
use timing::{median, median_ns};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new >= l.size() {
            let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// One row of QEMU 10.0.2's numbers on this machine (spec §1, virtio-rng-pci, at `-S`).
struct Qemu {
    n: usize,
    spaces: usize,
    views: usize,
    startup_ms: f64,
    peak_rss_mib: f64,
    device_add_ms: f64,
    /// One commit: Δwall against the no-op config write.
    commit_us: f64,
    /// BAR move (2 commits): Δwall.
    bar_move_us: f64,
}

const QEMU: [Qemu; 4] = [
    Qemu {
        n: 0,
        spaces: 12,
        views: 4,
        startup_ms: 47.0,
        peak_rss_mib: 44.0,
        device_add_ms: 2.6,
        commit_us: 84.0,
        bar_move_us: 177.0,
    },
    Qemu {
        n: 100,
        spaces: 224,
        views: 104,
        startup_ms: 861.0,
        peak_rss_mib: 847.0,
        device_add_ms: 15.2,
        commit_us: 881.0,
        bar_move_us: 1832.0,
    },
    Qemu {
        n: 200,
        spaces: 433,
        views: 204,
        startup_ms: 2990.0,
        peak_rss_mib: 3051.0,
        device_add_ms: 28.7,
        commit_us: 1892.0,
        bar_move_us: 3542.0,
    },
    Qemu {
        n: 400,
        spaces: 851,
        views: 404,
        startup_ms: 16746.0,
        peak_rss_mib: 11660.0,
        device_add_ms: 63.1,
        commit_us: 4856.0,
        bar_move_us: 10909.0,
    },
];

/// (median build ms over `runs`, peak heap MiB above the heap before the build, the machine
/// of the last run).
fn build(n: usize, state: State, one_tx: bool, runs: usize) -> (f64, f64, Q35) {
    let mut times = Vec::new();
    let mut peak = 0usize;
    let mut last = None;
    for _ in 0..runs {
        drop(last.take());
        let before = LIVE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let t = Instant::now();
        let m = Q35::build(n, state, one_tx, CommitMode::Scoped);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        peak = peak.max(PEAK.load(Ordering::Relaxed) - before);
        last = Some(m);
    }
    (
        median(&mut times),
        peak as f64 / (1 << 20) as f64,
        last.expect("one run"),
    )
}

/// Maps (even `i`) or unmaps (odd `i`) tgt's BAR0: one commit.
fn mem_toggle(m: &Q35, i: usize) {
    let mem = &m.machine.memory;
    if i % 2 == 0 {
        mem.add_subregion_overlap(m.pci, TGT_BAR0, black_box(m.tgt_bar0), 1)
            .unwrap();
    } else {
        mem.remove_subregion(m.pci, black_box(m.tgt_bar0)).unwrap();
    }
}

struct Row {
    n: usize,
    spaces: usize,
    views: usize,
    system_ranges: usize,
    build_ms: f64,
    build_mib: f64,
    build_tx_ms: f64,
    build_tx_mib: f64,
    toggle_us: f64,
    toggle_full_us: f64,
    bm_us: f64,
    move2_us: f64,
    move1_us: f64,
    plug_us: f64,
    plug_tx_us: f64,
    plug_commits: u64,
}

fn measure(n: usize, state: State, quick: bool, scoped_only: bool) -> Row {
    let runs = if quick { 1 } else { 3 };
    let ops = if quick { 200 } else { 2000 };
    let (build_tx_ms, build_tx_mib, _) = build(n, state, true, runs);
    let (build_ms, build_mib, mut m) = build(n, state, false, runs);
    let st = m.machine.memory.stats();
    let system_ranges = m.machine.address_space("memory").expect("memory").view().ranges().len();
    let mem = m.machine.memory.clone();
    let toggle = median_ns(ops, |i| mem_toggle(&m, i));
    // Leave BAR0 mapped (decode on) for the moves.
    mem.add_subregion_overlap(m.pci, TGT_BAR0, m.tgt_bar0, 1).unwrap();
    let bm = median_ns(ops, |i| {
        mem.set_enabled(black_box(m.tgt_bus_master), i % 2 == 1).unwrap()
    });
    let at = |i: usize| if i % 2 == 0 { TGT_BAR0_MOVED } else { TGT_BAR0 };
    let move2 = median_ns(ops, |i| {
        mem.remove_subregion(m.pci, m.tgt_bar0).unwrap();
        mem.add_subregion_overlap(m.pci, at(i), black_box(m.tgt_bar0), 1)
            .unwrap();
    });
    let move1 = median_ns(ops, |i| mem.set_address(black_box(m.tgt_bar0), at(i + 1)).unwrap());
    let system = m.system();
    let commits_before = mem.stats().commits;
    let plug_ops = ops / 10;
    let plug = median_ns(plug_ops, |_| {
        Device::plug(&mem, system, &mut m.hpbr, state).unplug(&mem)
    });
    let plug_commits = (mem.stats().commits - commits_before) / plug_ops as u64;
    let plug_tx = median_ns(plug_ops, |_| {
        let d = {
            let _tx = mem.transaction();
            Device::plug(&mem, system, &mut m.hpbr, state)
        };
        let _tx = mem.transaction();
        d.unplug(&mem);
    });
    drop(m);
    // QEMU's algorithm in this library (every view re-rendered per commit), same run.
    let toggle_full = if scoped_only {
        f64::NAN
    } else {
        let full = Q35::build(n, state, true, CommitMode::Full);
        median_ns(if quick { 10 } else { 40 }, |i| mem_toggle(&full, i))
    };
    Row {
        n,
        spaces: st.address_spaces,
        views: st.flatviews,
        system_ranges,
        build_ms,
        build_mib,
        build_tx_ms,
        build_tx_mib,
        toggle_us: toggle / 1e3,
        toggle_full_us: toggle_full / 1e3,
        bm_us: bm / 1e3,
        move2_us: move2 / 1e3,
        move1_us: move1 / 1e3,
        plug_us: plug / 1e3,
        plug_tx_us: plug_tx / 1e3,
        plug_commits,
    }
}

fn print_table(state: State, rows: &[Row]) {
    println!("\n## {state:?}: ours (scoped commits) | QEMU 10.0.2 at -S (spec, same machine)");
    println!(
        "| N | ASes ours / QEMU | flat views ours / QEMU | `memory` view ranges | build per-device commits: ms, peak MiB | build one tx: ms, peak MiB | QEMU startup ms, peak RSS MiB | 1 commit (BAR0 map/unmap) µs | same, CommitMode::Full µs | QEMU 1 commit Δwall µs | bus-master toggle µs | BAR move 2 commits / set_address µs | QEMU BAR move µs | hot-plug+unplug µs: per-step / tx (commits per cycle) | QEMU device_add ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let q = QEMU.iter().find(|q| q.n == r.n).expect("a QEMU row per N");
        println!(
            "| {} | {} / {} | {} / {} | {} | {:.1}, {:.1} | {:.1}, {:.1} | {:.0}, {:.0} | {:.2} | {:.1} | {:.0} | {:.2} | {:.2} / {:.2} | {:.0} | {:.0} / {:.0} ({}) | {:.1} |",
            r.n,
            r.spaces,
            q.spaces,
            r.views,
            q.views,
            r.system_ranges,
            r.build_ms,
            r.build_mib,
            r.build_tx_ms,
            r.build_tx_mib,
            q.startup_ms,
            q.peak_rss_mib,
            r.toggle_us,
            r.toggle_full_us,
            q.commit_us,
            r.bm_us,
            r.move2_us,
            r.move1_us,
            q.bar_move_us,
            r.plug_us,
            r.plug_tx_us,
            r.plug_commits,
            q.device_add_ms
        );
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--scoped-only` skips the CommitMode::Full baseline (for profiling); other arguments
    // not starting with `-` select cases by substring of `State/N` (`Booted/400`).
    let scoped_only = std::env::args().any(|a| a == "--scoped-only");
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut lines = Vec::new();
    for state in [State::AtStop, State::Booted] {
        let mut rows = Vec::new();
        for n in [0usize, 100, 200, 400] {
            let case = format!("{state:?}/{n}");
            if !filter.is_empty() && !filter.iter().any(|f| case.contains(f.as_str())) {
                continue;
            }
            eprintln!("qemu_machine: {state:?} N={n}...");
            let r = measure(n, state, quick, scoped_only);
            lines.push(format!(
                "qemu_machine/{state:?}/{} spaces={} views={} system_ranges={} build_ms={:.2} build_mib={:.2} build_tx_ms={:.2} build_tx_mib={:.2} commit_us={:.2} commit_full_us={:.1} bm_us={:.2} move2_us={:.2} move1_us={:.2} plug_us={:.1} plug_tx_us={:.1}",
                r.n, r.spaces, r.views, r.system_ranges, r.build_ms, r.build_mib, r.build_tx_ms, r.build_tx_mib, r.toggle_us,
                r.toggle_full_us, r.bm_us, r.move2_us, r.move1_us, r.plug_us, r.plug_tx_us
            ));
            rows.push(r);
        }
        if !rows.is_empty() {
            print_table(state, &rows);
        }
    }
    println!();
    for l in lines {
        println!("{l}");
    }
}
