//! Leak proof by counting: a counting global allocator (live bytes), the memory system's live
//! counters and `RamBlock::live_count()`, all back at their baseline after 100 000 CPU
//! plug/unplug cycles and 100 000 DMA-engine plug/unplug cycles with readers running. Also
//! measures the memory one CPU costs.
//!
//! Only threads that opt in are counted (the test's own thread and its readers), so the test
//! harness's own allocations (result printing, output capture) cannot perturb the count.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use addrspace::cpu::{Cluster, Cpu, CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder, PerCpuRoot};
use addrspace::dma::DmaDevice;
use addrspace::ram::RamBlock;
use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId, RegionOps, Stats, SIZE_2_64};

mod common;
use common::counting::{live_bytes, my_live_bytes, track_this_thread, Counting};
use common::cpus::{smm, SMRAM};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests share the allocator count: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const DMA_BASE: u64 = 0x1000_0000;

struct Board {
    mem: Memory,
    system: RegionId,
    smram: RegionId,
    bus: RegionId,
}

/// System with 1 MiB of RAM (byte i = i as u8), a peripheral bus container at 0x1000_0000
/// (where DMA engines are plugged) and a board-owned SMRAM (all 0x5a).
fn board() -> Board {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 0x10_0000).unwrap();
    let block = mem.leaf(ram).unwrap().unwrap().backend().ram().unwrap().clone();
    let bytes: Vec<u8> = (0..block.len()).map(|i| i as u8).collect();
    assert!(block.write(0, &bytes));
    let smram = mem.ram("smram", 0x20000).unwrap();
    let block = mem.leaf(smram).unwrap().unwrap().backend().ram().unwrap().clone();
    assert!(block.write(0, &[0x5a; 0x20000]));
    let bus = mem.container("periph-bus", 0x1000_0000).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    mem.add_subregion(system, DMA_BASE, bus).unwrap();
    Board {
        mem,
        system,
        smram,
        bus,
    }
}

/// The x86 model: `cpu-memory-N` over system, `cpu-smm-N` over a per-CPU SMM root.
fn smm_model(b: &Board) -> CpuModel {
    CpuModel {
        spaces: vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::Root(b.system),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-smm".into(),
                view: CpuView::PerCpu(smm(b.system, b.smram)),
            },
        ],
        tlb: true,
    }
}

/// One space per CPU over system.
fn root_model(b: &Board) -> CpuModel {
    CpuModel {
        spaces: vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::Root(b.system),
        }],
        tlb: true,
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Snapshot {
    regions: usize,
    address_spaces: usize,
    flatviews: usize,
    listeners: usize,
    ram_blocks: usize,
    live_bytes: isize,
}

fn snapshot(mem: &Memory) -> Snapshot {
    let s: Stats = mem.stats();
    Snapshot {
        regions: s.regions,
        address_spaces: s.address_spaces,
        flatviews: s.flatviews,
        listeners: s.listeners,
        ram_blocks: RamBlock::live_count(),
        live_bytes: live_bytes(),
    }
}

fn cycles() -> usize {
    100_000
}

#[test]
fn plug_unplug_cycles_leak_nothing() {
    let _serial = serial();
    track_this_thread();
    let b = board();
    let model = smm_model(&b);
    let memory = b.mem.address_space("memory", b.system).unwrap();
    let mut cluster = Cluster::new("cpus", &b.mem, model, 0, 2).unwrap();
    // CPU 1 stays plugged; slot 0 cycles.
    cluster.plug(1).unwrap();
    let smm1 = cluster.cpu(1).unwrap().address_space(1).unwrap().clone();
    // Warm up: one plug/unplug of each kind, so lazily built caches exist.
    for _ in 0..2 {
        cluster.plug(0).unwrap();
        cluster.unplug(0).unwrap();
        drop(DmaDevice::plug(&b.mem, "dma", b.system, b.bus, 0).unwrap());
    }

    // Readers: one through the board's space, one through CPU 1's SMM space. They allocate
    // nothing once warm, and they are counted.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let passes: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let warm = Arc::new(Barrier::new(3));
    let readers: Vec<_> = [(memory.clone(), 0x03u8), (smm1.clone(), 0x5a)]
        .into_iter()
        .enumerate()
        .map(|(t, (space, smram_byte))| {
            let (stop, reads, warm, passes) = (stop.clone(), reads.clone(), warm.clone(), passes.clone());
            thread::spawn(move || {
                track_this_thread();
                let mut acc = space.accessor();
                let a = MemTxAttrs::default();
                let le = Endianness::Little;
                let mut buf = [0u8; 64];
                let mut n = 0u64;
                let mut check = |acc: &mut addrspace::Accessor| {
                    assert_eq!(
                        acc.load::<u32>(GuestAddr(0x1004), le, a),
                        (0x0706_0504, MemTxResult::OK)
                    );
                    assert_eq!(
                        acc.load::<u8>(GuestAddr(SMRAM + 3), le, a),
                        (smram_byte, MemTxResult::OK)
                    );
                    assert_eq!(acc.read(GuestAddr(0x40), &mut buf, a), MemTxResult::OK);
                    assert_eq!(buf[0x3f], 0x7f);
                    assert_eq!(
                        acc.load::<u32>(GuestAddr(0x5000_0000), le, a).1,
                        MemTxResult::DECODE_ERROR
                    );
                };
                check(&mut acc);
                warm.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        check(&mut acc);
                    }
                    n += 64;
                    passes[t].fetch_add(1, Ordering::SeqCst);
                    thread::yield_now();
                }
                reads.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    warm.wait();
    // Readers drop the view they cached at their next access: wait for two more passes of
    // each before counting, so that no reader still holds a view older than the current one.
    let settle = || {
        let p0: Vec<u64> = passes.iter().map(|p| p.load(Ordering::SeqCst)).collect();
        while passes.iter().zip(&p0).any(|(p, &p0)| p.load(Ordering::SeqCst) < p0 + 2) {
            thread::yield_now();
        }
    };

    settle();
    let base = snapshot(&b.mem);
    let n = cycles();
    let t0 = Instant::now();
    for _ in 0..n {
        let cpu = cluster.plug(0).unwrap();
        debug_assert_eq!(cpu.address_space(1).unwrap().name(), "cpu-smm-0");
        cluster.unplug(0).unwrap();
    }
    let cpu_time = t0.elapsed();
    settle();
    let after_cpus = snapshot(&b.mem);
    let t1 = Instant::now();
    for _ in 0..n {
        // On the peripheral bus, not straight into `system`: see
        // `region_churn_in_a_small_root_leaks_nothing` for what that leaks.
        let dma = DmaDevice::plug(&b.mem, "dma", b.system, b.bus, 0).unwrap();
        drop(dma);
    }
    let dma_time = t1.elapsed();
    settle();
    let end = snapshot(&b.mem);
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }

    eprintln!(
        "{n} CPU plug/unplug cycles ({} build): {cpu_time:?}, {:.1} us/cycle",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        cpu_time.as_secs_f64() * 1e6 / n as f64
    );
    eprintln!(
        "{n} DMA plug/unplug cycles: {dma_time:?}, {:.1} us/cycle",
        dma_time.as_secs_f64() * 1e6 / n as f64
    );
    eprintln!(
        "readers made {} checked passes meanwhile",
        reads.load(Ordering::Relaxed)
    );
    eprintln!("baseline {base:?}\nafter CPUs {after_cpus:?}\nend {end:?}");
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(after_cpus, base, "CPU plug/unplug leaked");
    assert_eq!(end, base, "DMA plug/unplug leaked");
    drop((cluster, smm1, memory));
}

/// An M-profile-like builder: alias of system at priority -1 and a private NVIC and TCM.
fn m_profile(system: RegionId) -> PerCpuBuilder {
    struct Nvic;
    impl RegionOps for Nvic {
        fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
            (1, MemTxResult::OK)
        }
        fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
            MemTxResult::OK
        }
    }
    Arc::new(move |mem: &Memory, i: u32| {
        let root = mem.container(&format!("cpu-container-{i}"), SIZE_2_64)?;
        let alias = mem.alias(&format!("cpu-sysmem-{i}"), system, 0, SIZE_2_64)?;
        let nvic = mem.io(&format!("nvic-{i}"), 0x1000, Arc::new(Nvic))?;
        let tcm = mem.ram(&format!("tcm-{i}"), 0x1000)?;
        let _tx = mem.transaction();
        mem.add_subregion_overlap(root, 0, alias, -1)?;
        mem.add_subregion_overlap(root, 0xe000_e000, nvic, 1)?;
        mem.add_subregion_overlap(root, 0x2000_0000, tcm, 1)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, alias, nvic, tcm],
        })
    })
}

/// Per-CPU roots with private regions (M-profile): nothing may grow either. (Regression: the
/// table of representative roots (spec §12.6) kept an entry per unplugged root, about 640
/// bytes a cycle.)
#[test]
fn m_profile_plug_unplug_leaks_nothing() {
    let _serial = serial();
    track_this_thread();
    let b = board();
    let model = CpuModel {
        spaces: vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::PerCpu(m_profile(b.system)),
        }],
        tlb: true,
    };
    for _ in 0..2 {
        drop(Cpu::realize(&b.mem, 0, &model).unwrap());
    }
    let base = snapshot(&b.mem);
    for _ in 0..1000 {
        drop(Cpu::realize(&b.mem, 0, &model).unwrap());
    }
    let end = snapshot(&b.mem);
    eprintln!(
        "M-profile: {:+} bytes over 1000 cycles",
        end.live_bytes - base.live_bytes
    );
    assert_eq!(end, base);
}

/// Memory per CPU for 1, 64 and 1024 plugged CPUs, for the SMM model (Root + per-CPU SMM
/// root) and the Root model, each under an upper bound: the README gives x86 SMM at 3.1–7.1
/// KiB per CPU (`--bench hotplug`, the same two spaces and TLB listeners), so SMM may use
/// 8 KiB; the Root model (a space and a TLB listener per CPU) measures under 1 KiB and may
/// use 2 KiB.
#[test]
fn memory_per_cpu() {
    let _serial = serial();
    track_this_thread();
    let mut lines = Vec::new();
    for (name, model, bound) in [
        ("SMM (Root + PerCpu)", smm_model as fn(&Board) -> CpuModel, 8 * 1024),
        ("Root", root_model, 2 * 1024),
    ] {
        for n in [1usize, 64, 1024] {
            let b = board();
            let _memory = b.mem.address_space("memory", b.system).unwrap();
            let mut cluster = Cluster::new("cpus", &b.mem, model(&b), 0, n).unwrap();
            // Warm up slot 0 once (lazily built caches are not per-CPU cost).
            cluster.plug(0).unwrap();
            cluster.unplug(0).unwrap();
            let before = live_bytes();
            let t = Instant::now();
            for s in 0..n {
                cluster.plug(s).unwrap();
            }
            let elapsed = t.elapsed();
            let per_cpu = (live_bytes() - before) as f64 / n as f64;
            let s = b.mem.stats();
            lines.push(format!(
                "{name:>20}: {n:>5} CPUs: {per_cpu:>8.0} bytes/CPU, {} spaces, {} views, {} regions, plug {:.1} us/CPU",
                s.address_spaces,
                s.flatviews,
                s.regions,
                elapsed.as_secs_f64() * 1e6 / n as f64
            ));
            assert!(per_cpu > 0.0);
            assert!(
                per_cpu <= f64::from(bound),
                "{name}: {per_cpu:.0} bytes per CPU at {n} CPUs, more than {bound}"
            );
            let before_unplug = snapshot(&b.mem);
            // Last plugged first: unplugging the oldest SMM CPU (the representative of the
            // shared view) re-renders every other CPU's view, see
            // `cpu_lifecycle::unplugging_the_representative_cpu_does_not_touch_the_others`.
            let t = Instant::now();
            for s in (0..n).rev() {
                cluster.unplug(s).unwrap();
            }
            let unplug = t.elapsed();
            drop(cluster);
            lines.push(format!(
                "{name:>20}: {n:>5} CPUs: unplug all {:.1} us/CPU",
                unplug.as_secs_f64() * 1e6 / n as f64
            ));
            let after = snapshot(&b.mem);
            assert!(after.live_bytes < before_unplug.live_bytes);
            assert_eq!(after.address_spaces, 1);
        }
    }
    for l in &lines {
        eprintln!("{l}");
    }
    // Keep the measurement honest: the thread-local flag really tracks this thread.
    let before = live_bytes();
    let v = vec![0u8; 1000];
    assert_eq!(live_bytes() - before, 1000);
    drop(v);
    thread::sleep(Duration::from_millis(1));
}

/// Mapping and unmapping a region in an address space's small root container leaves nothing
/// behind. (Regression: each cycle left a representative-table entry, about 350 bytes; DMA
/// engines plugged straight into `system` and M-profile per-CPU roots hit it.)
#[test]
fn region_churn_in_a_small_root_leaks_nothing() {
    let _serial = serial();
    track_this_thread();
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let _space = mem.address_space("memory", system).unwrap();
    let cycle = || {
        let dev = mem.ram("dev", 0x1000).unwrap();
        mem.add_subregion(system, 0x1000_0000, dev).unwrap();
        mem.remove_subregion(system, dev).unwrap();
        mem.delete_region(dev).unwrap();
    };
    for _ in 0..3 {
        cycle();
    }
    // Single-threaded: this thread's own count (the previous test's thread may still be
    // freeing its thread-locals after releasing the serial lock).
    let before = my_live_bytes();
    for _ in 0..1000 {
        cycle();
    }
    assert_eq!(my_live_bytes() - before, 0, "bytes leaked by 1000 map/unmap cycles");
}
