//! `addrspace soak`: plug and unplug a CPU (or a DMA engine) many times while reader threads
//! use the memory, and check that every live-object counter comes back where it started.

use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use addrspace::dma::DmaDevice;
use addrspace::ram::RamBlock;
use addrspace::{Endianness, GuestAddr, Machine, MemTxAttrs};

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

/// A progress bar on a terminal (redrawn in place), a line per call otherwise (callers call
/// it every 10% then), prefixed with `label`.
pub(crate) fn progress(label: &str, done: u64, total: u64, tty: bool) {
    let pct = done * 100 / total.max(1);
    let bar: String = (0..40).map(|k| if k * 100 / 40 < pct { '#' } else { '.' }).collect();
    if tty {
        eprint!("\r{label}: [{bar}] {pct:3}% {done}/{total}");
        if done == total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    } else {
        eprintln!("{label}: [{bar}] {pct:3}% {done}/{total}");
    }
}

/// What one cycle plugs and unplugs.
enum Target {
    Cpu { cluster: usize, slot: usize, plugged: bool },
    Dma,
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

/// Runs the soak; returns the report and whether every counter came back. More than
/// [`MAX_READERS`] readers, or readers the host cannot start, are an error.
pub fn soak(mut m: Machine, cycles: u64, readers: usize) -> Result<(String, bool), String> {
    if readers > MAX_READERS {
        return Err(format!(
            "--readers {readers} is beyond the limit of {MAX_READERS} (a reader stands for a vCPU)"
        ));
    }
    let target = m
        .clusters
        .iter()
        .enumerate()
        .find_map(|(i, c)| (0..c.max_cpus()).find(|&s| c.cpu(s).is_none()).map(|s| (i, s, false)))
        .or_else(|| {
            let i = m.clusters.len().checked_sub(1)?;
            Some((i, m.clusters[i].max_cpus().checked_sub(1)?, true))
        })
        .map_or(Target::Dma, |(cluster, slot, plugged)| Target::Cpu {
            cluster,
            slot,
            plugged,
        });
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
    let mut shown = u64::MAX;
    let mut err = None;
    let tty = std::io::stderr().is_terminal();
    for i in 0..cycles {
        let pct = i * 100 / cycles.max(1);
        if pct != shown && (tty || pct % 10 == 0) {
            shown = pct;
            progress("soak", i, cycles, tty);
        }
        if let Err(e) = cycle(&mut m) {
            err = Some(format!("cycle {i}: {e}"));
            break;
        }
    }
    let elapsed = start.elapsed();
    progress("soak", cycles, cycles, tty);
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
