//! `addrspace soak`: plug and unplug a CPU (or a DMA engine) many times while reader threads
//! use the memory, and check that every live-object counter comes back where it started.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use addrspace::cpu::Cluster;
use addrspace::dma::DmaDevice;
use addrspace::ram::RamBlock;
use addrspace::{Endianness, GuestAddr, Machine, MemTxAttrs};

/// `addrspace soak BOARD [--cycles N] [--readers R] [--cluster NAME] [--slot N]`.
#[derive(clap::Args)]
pub struct SoakArgs {
    /// A board file (TOML) with CPU clusters.
    board: PathBuf,
    /// Plug/unplug cycles (at least 1).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    cycles: u64,
    /// Reader threads using the board's first address space meanwhile.
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// The CPU cluster to cycle a slot of (by default the first with a free slot, else the
    /// last).
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// The slot to cycle: a free slot is plugged and unplugged, a plugged one unplugged and
    /// re-plugged (by default the cluster's first free slot, else its last). Without
    /// --cluster, a slot of the board's first cluster.
    #[arg(long, value_name = "N")]
    slot: Option<usize>,
}

/// Runs `addrspace soak`: the report for stdout, or an error (growth included).
pub fn run(a: &SoakArgs) -> Result<String, String> {
    let m = crate::source::load_board(&a.board, "soak needs a board file with CPU clusters")?;
    let target = target(&m, a.cluster.as_deref(), a.slot)?;
    let (report, ok) = soak(m, target, a.cycles, a.readers)?;
    if ok {
        Ok(report)
    } else {
        Err(format!("{report}live objects grew"))
    }
}

/// Live objects that must not grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    regions: usize,
    address_spaces: usize,
    flatviews: usize,
    listeners: usize,
    ram_blocks: usize,
}

fn counters(m: &Machine) -> Counters {
    let s = m.memory.stats();
    Counters {
        regions: s.regions,
        address_spaces: s.address_spaces,
        flatviews: s.flatviews,
        listeners: s.listeners,
        ram_blocks: RamBlock::live_count(),
    }
}

/// The process's resident set, KiB.
pub(crate) fn rss_kib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4)
}

/// What one cycle plugs and unplugs.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    /// A slot of a cluster (by index in `Machine::clusters`), plugged at the start or not.
    Cpu { cluster: usize, slot: usize, plugged: bool },
    /// A DMA engine over the board's first space (a board without CPU clusters).
    Dma,
}

/// The slots of `c` as text for an error: `0-3 (plugged: 0, 1)`.
fn slots(c: &Cluster) -> String {
    let plugged: Vec<String> = (0..c.max_cpus())
        .filter(|&s| c.cpu(s).is_some())
        .map(|s| s.to_string())
        .collect();
    let plugged = if plugged.is_empty() {
        "none".into()
    } else {
        plugged.join(", ")
    };
    match c.max_cpus() {
        0 => "none".into(),
        n => format!("0-{} (plugged: {plugged})", n - 1),
    }
}

/// What to cycle: `--cluster NAME` and `--slot N` if given (an unknown name or slot is an
/// error naming those that exist), else the first free slot of the first cluster that has
/// one, else the last slot of the last cluster, else (no clusters) a DMA engine.
pub fn target(m: &Machine, cluster: Option<&str>, slot: Option<usize>) -> Result<Target, String> {
    if m.clusters.is_empty() {
        if cluster.is_some() || slot.is_some() {
            return Err(
                "the board has no CPU clusters: --cluster and --slot need one (without them, \
                        soak cycles a DMA engine)"
                    .into(),
            );
        }
        return Ok(Target::Dma);
    }
    let names = || {
        let names: Vec<String> = m.clusters.iter().map(|c| format!("`{}`", c.name())).collect();
        names.join(", ")
    };
    let chosen = match cluster {
        Some(name) => Some(m.clusters.iter().position(|c| c.name() == name).ok_or_else(|| {
            format!(
                "--cluster: the board has no cluster `{name}`; its clusters: {}",
                names()
            )
        })?),
        None if slot.is_some() => Some(0),
        None => None,
    };
    let free = |c: &Cluster| (0..c.max_cpus()).find(|&s| c.cpu(s).is_none());
    let (i, s) = match (chosen, slot) {
        (Some(i), Some(s)) => {
            let c = &m.clusters[i];
            if s >= c.max_cpus() {
                return Err(format!(
                    "--slot {s}: cluster `{}` has no slot {s}; its slots: {}",
                    c.name(),
                    slots(c)
                ));
            }
            (i, s)
        }
        (Some(i), None) => {
            let c = &m.clusters[i];
            let last = c.max_cpus().checked_sub(1);
            let s = free(c)
                .or(last)
                .ok_or_else(|| format!("cluster `{}` has no slots", c.name()))?;
            (i, s)
        }
        (None, _) => {
            let first_free = m.clusters.iter().enumerate().find_map(|(i, c)| free(c).map(|s| (i, s)));
            let i = m.clusters.len() - 1;
            let last = m.clusters[i].max_cpus().checked_sub(1).map(|s| (i, s));
            match first_free.or(last) {
                Some(found) => found,
                None => return Ok(Target::Dma),
            }
        }
    };
    Ok(Target::Cpu {
        cluster: i,
        slot: s,
        plugged: m.clusters[i].cpu(s).is_some(),
    })
}

/// Most reader threads a soak starts: a reader stands for a vCPU, and a VM has at most
/// [`addrspace::limits::MAX_CPUS`].
pub const MAX_READERS: usize = addrspace::limits::MAX_CPUS;

/// Stops the reader threads and waits for them.
fn stop_readers(stop: &AtomicBool, threads: Vec<std::thread::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
}

/// Runs the soak of `target`; returns the report and whether every counter came back. More
/// than [`MAX_READERS`] readers, or readers the host cannot start, are an error.
pub fn soak(mut m: Machine, target: Target, cycles: u64, readers: usize) -> Result<(String, bool), String> {
    if readers > MAX_READERS {
        return Err(format!(
            "--readers {readers} is beyond the limit of {MAX_READERS} (a reader stands for a vCPU)"
        ));
    }
    let space = m
        .address_spaces
        .first()
        .cloned()
        .ok_or("the board has no address space")?;
    let mut report = String::new();
    let what = match &target {
        Target::Cpu { cluster, slot, plugged } => {
            let c = &m.clusters[*cluster];
            let verb = if *plugged { "unplug + re-plug" } else { "plug + unplug" };
            format!("{verb} CPU slot {slot} of cluster `{}`", c.name())
        }
        Target::Dma => format!(
            "plug + unplug a DMA engine over `{}` (the board has no CPU clusters)",
            space.name()
        ),
    };
    let cycle = |m: &mut Machine| -> Result<(), String> {
        match &target {
            Target::Cpu { cluster, slot, plugged } => {
                let c = &mut m.clusters[*cluster];
                if *plugged {
                    c.unplug(*slot).map_err(|e| e.to_string())?;
                    c.plug(*slot).map(|_| ()).map_err(|e| e.to_string())
                } else {
                    c.plug(*slot).map_err(|e| e.to_string())?;
                    c.unplug(*slot).map_err(|e| e.to_string())
                }
            }
            Target::Dma => {
                let root = space.root();
                let dev = DmaDevice::plug(&m.memory, "soak-dma", root, root, 0xffff_ffff_ffff_0000)
                    .map_err(|e| e.to_string())?;
                drop(dev);
                Ok(())
            }
        }
    };
    // Warm up once, so that caches built on first use are part of the baseline.
    cycle(&mut m)?;
    // Readers: loads from the RAM of the board's first space, all the time.
    let ram: Vec<(u64, u64)> = space
        .view()
        .ranges()
        .iter()
        .filter(|r| r.leaf().backend().ram().is_some())
        .map(|r| (r.start().0, (r.size().min(1 << 30)) as u64))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::with_capacity(readers);
    for i in 0..readers {
        let (stopped, reads, space, ram) = (stop.clone(), reads.clone(), space.clone(), ram.clone());
        let started = std::thread::Builder::new()
            .name(format!("soak-reader-{i}"))
            .spawn(move || {
                let mut cpu = space.accessor();
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
                let mut n = 0u64;
                while !stopped.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if let Some(&(start, len)) = ram.get((x % ram.len().max(1) as u64) as usize) {
                            let a = start + (x >> 20) % len.saturating_sub(8).max(1);
                            let _ = std::hint::black_box(cpu.load::<u64>(
                                GuestAddr(a),
                                Endianness::Little,
                                MemTxAttrs::default(),
                            ));
                        }
                        n += 1;
                    }
                }
                reads.fetch_add(n, Ordering::Relaxed);
            });
        match started {
            Ok(t) => threads.push(t),
            Err(e) => {
                stop_readers(&stop, threads);
                return Err(format!("cannot start reader thread {} of {readers}: {e}", i + 1));
            }
        }
    }
    let before = counters(&m);
    let rss_before = rss_kib();
    let _ = writeln!(report, "soak: {what}, {cycles} cycles, {readers} reader thread(s)");
    let _ = writeln!(report, "before: {before:?}");
    let start = Instant::now();
    let mut err = None;
    let bar = crate::progress::bar("soak", cycles);
    for i in 0..cycles {
        if let Err(e) = cycle(&mut m) {
            err = Some(format!("cycle {i}: {e}"));
            break;
        }
        bar.inc(1);
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    // Readers keep the view they last used until their next access (that is the point of
    // lock-free reading): count after they are done.
    stop_readers(&stop, threads);
    let after = counters(&m);
    if let Some(e) = err {
        return Err(e);
    }
    let per = elapsed.as_secs_f64() * 1e6 / cycles.max(1) as f64;
    let _ = writeln!(report, "after:  {after:?}");
    let _ = writeln!(
        report,
        "time: {:.3} s, {per:.1} µs per cycle; {} reads by the readers",
        elapsed.as_secs_f64(),
        reads.load(Ordering::Relaxed)
    );
    if let (Some(a), Some(b)) = (rss_before, rss_kib()) {
        let _ = writeln!(
            report,
            "rss: {a} KiB -> {b} KiB ({:+} KiB; includes guest RAM the readers touched)",
            b as i64 - a as i64
        );
    }
    let ok = after == before;
    let _ = writeln!(
        report,
        "{}",
        if ok {
            "no growth"
        } else {
            "GROWTH: some live-object counter did not come back"
        }
    );
    Ok((report, ok))
}
