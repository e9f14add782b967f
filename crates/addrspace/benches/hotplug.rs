//! CPU hot-plug cost and memory per CPU, for the per-CPU and the board-shared ownership
//! models, with 2 address spaces per CPU and a TLB listener on each.
//!
//! * per-CPU: `cpu-memory-N` over system memory and `cpu-smm-N` over a per-CPU container
//!   (SMRAM alias over an alias of system memory), as x86 TCG builds them;
//! * shared: the CPU holds handles to two board-owned spaces (`memory`, `smm`) — nothing is
//!   allocated per CPU but its listeners;
//! * private: M-profile-like, `cpu-memory-N` and `cpu-secure-memory-N` over a per-CPU
//!   container holding system memory (alias, priority -1) under the CPU's own NVIC and SysTick
//!   — a view of its own per CPU, layered over the system view (its windows only; the last
//!   cases check that its size does not grow with the system view's).
//!
//! For 1, 64 and 1 024 present CPUs: the time of one unplug + re-plug of the last CPU, scoped
//! commits against QEMU's full rebuild (`CommitMode::Full`, same run; skipped at 1 024 where a
//! full rebuild of 1 025 views per commit would take minutes), and the heap bytes per CPU
//! (counting allocator). Run: `cargo bench -p addrspace --bench hotplug`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView, PerCpuRoot};
use addrspace::{CommitMode, Memory, RegionId, Unassigned, SIZE_2_64};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

struct Board {
    mem: Memory,
    system: RegionId,
    smram: RegionId,
    _spaces: Vec<addrspace::AddressSpace>,
}

fn board(mode: CommitMode, devs: u64) -> Board {
    let mem = Memory::new();
    mem.set_commit_mode(mode);
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 1 << 30).unwrap();
    let smram = mem.ram("smram", 0x2_0000).unwrap();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        for i in 0..devs {
            let dev = mem.io(&format!("dev{i}"), 0x1000, Arc::new(Unassigned)).unwrap();
            mem.add_subregion(system, 0xfe00_0000 + i * 0x1000, dev).unwrap();
        }
    }
    let spaces = vec![mem.address_space("memory", system).unwrap()];
    Board {
        mem,
        system,
        smram,
        _spaces: spaces,
    }
}

fn model(b: &Board, kind: &str) -> CpuModel {
    let (system, smram) = (b.system, b.smram);
    let spaces = if kind == "private" {
        let build = Arc::new(move |m: &Memory, cpu: u32| {
            let root = m.container("armv7m-container", SIZE_2_64)?;
            let sa = m.alias(&format!("system-{cpu}"), system, 0, SIZE_2_64)?;
            let nvic = m.io(&format!("nvic-{cpu}"), 0x1000, Arc::new(Unassigned))?;
            let systick = m.io(&format!("systick-{cpu}"), 0xe0, Arc::new(Unassigned))?;
            m.add_subregion_overlap(root, 0, sa, -1)?;
            m.add_subregion(root, 0xe000_e000, nvic)?;
            m.add_subregion_overlap(root, 0xe000_e010, systick, 1)?;
            Ok(PerCpuRoot {
                root,
                regions: vec![root, sa, nvic, systick],
            })
        });
        vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::PerCpu(build),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-secure-memory".into(),
                view: CpuView::SameRootAs(0),
            },
        ]
    } else if kind == "shared" {
        let root = b.mem.container("smm", SIZE_2_64).unwrap();
        let sa = b.mem.alias("smm-system", system, 0, SIZE_2_64).unwrap();
        let ra = b.mem.alias("smm-smram", smram, 0, 0x2_0000).unwrap();
        b.mem.add_subregion(root, 0, sa).unwrap();
        b.mem.add_subregion_overlap(root, 0xa_0000, ra, 1).unwrap();
        let smm = b.mem.address_space("smm", root).unwrap();
        vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::Shared(b._spaces[0].clone()),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-smm".into(),
                view: CpuView::Shared(smm),
            },
        ]
    } else {
        let build = Arc::new(move |m: &Memory, cpu: u32| {
            let root = m.container("memory", SIZE_2_64)?;
            let sa = m.alias(&format!("smm-system-{cpu}"), system, 0, SIZE_2_64)?;
            let ra = m.alias(&format!("smm-smram-{cpu}"), smram, 0, 0x2_0000)?;
            m.add_subregion(root, 0, sa)?;
            m.add_subregion_overlap(root, 0xa_0000, ra, 1)?;
            Ok(PerCpuRoot {
                root,
                regions: vec![root, sa, ra],
            })
        });
        vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::Root(system),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-smm".into(),
                view: CpuView::PerCpu(build),
            },
        ]
    };
    CpuModel { spaces, tlb: true }
}

/// (median ns per unplug + re-plug, heap bytes per CPU)
fn measure(mode: CommitMode, kind: &str, cpus: usize, cycles: usize) -> (f64, f64) {
    measure_with(mode, kind, cpus, cycles, 64)
}

/// [`measure`] with `devs` devices in system memory (a system view of `devs + 1` ranges).
fn measure_with(mode: CommitMode, kind: &str, cpus: usize, cycles: usize, devs: u64) -> (f64, f64) {
    let b = board(mode, devs);
    let m = model(&b, kind);
    let mut cluster = Cluster::new("cpus", &b.mem, m, 0, cpus).unwrap();
    // One plug and unplug first, so that what the first plug allocates once (thread-local
    // state, tables that grow once) is not counted as the CPUs' (it moved the count per CPU
    // by 96 bytes between builds that changed no code on this path).
    cluster.plug(0).unwrap();
    cluster.unplug(0).unwrap();
    let before = LIVE.load(Ordering::Relaxed);
    for s in 0..cpus {
        cluster.plug(s).unwrap();
    }
    let per_cpu = (LIVE.load(Ordering::Relaxed) - before) as f64 / cpus as f64;
    let last = cpus - 1;
    let mut t: Vec<f64> = (0..cycles)
        .map(|_| {
            let s = Instant::now();
            cluster.unplug(last).unwrap();
            cluster.plug(last).unwrap();
            s.elapsed().as_nanos() as f64
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (t[t.len() / 2], per_cpu)
}

fn main() {
    let mut lines = Vec::new();
    for model in ["percpu", "shared", "private"] {
        for cpus in [1usize, 64, 1024] {
            let (ours, bytes) = measure(CommitMode::Scoped, model, cpus, 2000);
            let base = if cpus <= 64 {
                Some(measure(CommitMode::Full, model, cpus, if cpus == 1 { 500 } else { 50 }).0)
            } else {
                None
            };
            eprintln!(
                "hotplug/{model}/{cpus}: {:.1} µs per cycle, {bytes:.0} heap bytes per CPU",
                ours / 1e3
            );
            lines.push(match base {
                Some(b) => format!(
                    "hotplug/{model}/{cpus} ours_ns={ours:.0} baseline_ns={b:.0} speedup={:.1} bytes_per_cpu={bytes:.0}",
                    b / ours
                ),
                None => format!("hotplug/{model}/{cpus} ours_ns={ours:.0} baseline_ns=- speedup=- bytes_per_cpu={bytes:.0}"),
            });
        }
    }
    // A private per-CPU view stores its own windows only: its cost must not grow with the
    // system view (a copy would cost about 90 bytes per system range per CPU).
    for devs in [64u64, 1024] {
        let (ours, bytes) = measure_with(CommitMode::Scoped, "private", 64, 500, devs);
        eprintln!(
            "hotplug/private/64/system_ranges={}: {bytes:.0} heap bytes per CPU",
            devs + 1
        );
        lines.push(format!(
            "hotplug/private/64/system_ranges={} ours_ns={ours:.0} baseline_ns=- speedup=- bytes_per_cpu={bytes:.0}",
            devs + 1
        ));
    }
    println!();
    for l in lines {
        println!("{l}");
    }
}
