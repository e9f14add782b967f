//! Costs of the KVM accelerator on real `/dev/kvm` (issue 13, item 5):
//!
//! * memslot update latency of one commit: a RAM-backed BAR (64 KiB) moved, a 16 MiB RAM
//!   hot-add and its removal — with the KVM memslot listener attached (ours) against the
//!   same commit on the same board without KVM (baseline: the core's own cost), idle and
//!   with a vCPU spinning in the guest (held out of `KVM_RUN` by the fence when needed);
//! * MMIO-exit round trip: the same guest loop (one MMIO write exit per iteration) run by
//!   our vCPU thread, dispatching through the CPU's address space to a device, against a
//!   bare `KVM_RUN` loop that answers the exit without dispatch; our share in %;
//! * a vCPU plug + unplug cycle (CPU realized, parked fd reset, thread started, guest runs
//!   to `HLT`, thread joined, fd parked, CPU unrealized) against the bare part (parked fd
//!   reset, a thread running it to `HLT`, joined).
//!
//! Run: `cargo bench -p addrspace-kvm --bench kvm`. Ends with one line per case:
//! `CASE ours_ns=… baseline_ns=…` (and `share=…%` for the exit round trip). Skips (with the
//! reason) where /dev/kvm cannot be opened.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView};
use addrspace::{AddressSpace, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId, RegionOps};
use addrspace_kvm::guest::{self, Program};
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices};
use addrspace_kvm::{Kvm, MemSlots, Vm};
use kvm_ioctls::VcpuExit;

const BAR_A: u64 = 0x1000_0000;
const BAR_B: u64 = 0x2000_0000;
const HOTADD_AT: u64 = 0x4000_0000;
const SINK: u16 = 0xa000;
const COUNTER: u16 = 0x3000;
const EXITS: u16 = 20_000;

struct Sink;

impl RegionOps for Sink {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, _: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        black_box(value);
        MemTxResult::OK
    }
}

struct Board {
    mem: Memory,
    system: RegionId,
    bar: RegionId,
    hot: RegionId,
    memory: AddressSpace,
}

impl Board {
    fn new() -> Board {
        let mem = Memory::new();
        let system = mem.container("system", 1 << 64).unwrap();
        let ram = mem.ram("ram", 0x10_0000).unwrap();
        mem.add_subregion(system, 0, ram).unwrap();
        let sink = mem.io("sink", 0x10, Arc::new(Sink)).unwrap();
        mem.add_subregion(system, u64::from(SINK), sink).unwrap();
        let bar = mem.ram("bar", 0x1_0000).unwrap();
        mem.add_subregion(system, BAR_A, bar).unwrap();
        let hot = mem.ram("hot", 16 << 20).unwrap();
        let memory = mem.address_space("memory", system).unwrap();
        Board {
            mem,
            system,
            bar,
            hot,
            memory,
        }
    }

    fn load(&self, p: &Program) {
        assert!(self.memory.write(GuestAddr(p.base), &p.code, MemTxAttrs::DEBUG).is_ok());
    }

    fn model(&self) -> CpuModel {
        CpuModel {
            spaces: vec![CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::Root(self.system),
            }],
            tlb: false,
        }
    }
}

const SPACES: SpaceIndices = SpaceIndices { memory: 0, io: None };

/// Median of `reps` runs of `f`, each returning ns per operation.
fn median(reps: usize, mut f: impl FnMut() -> f64) -> f64 {
    let mut v: Vec<f64> = (0..reps).map(|_| f()).collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bar_moves(b: &Board, n: usize) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        b.mem
            .set_address(b.bar, if i % 2 == 0 { BAR_B } else { BAR_A })
            .unwrap();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// (add, remove) ns of the 16 MiB RAM hot-add.
fn hotadds(b: &Board, n: usize) -> (f64, f64) {
    let (mut add, mut del) = (0u128, 0u128);
    for _ in 0..n {
        let t = Instant::now();
        b.mem.add_subregion(b.system, HOTADD_AT, b.hot).unwrap();
        add += t.elapsed().as_nanos();
        let t = Instant::now();
        b.mem.remove_subregion(b.system, b.hot).unwrap();
        del += t.elapsed().as_nanos();
    }
    (add as f64 / n as f64, del as f64 / n as f64)
}

fn memslot_cases(kvm: &Kvm, running: bool, out: &mut Vec<String>) {
    let ours = Board::new();
    let base = Board::new();
    let vm = Vm::new(kvm).unwrap();
    let slots: Arc<MemSlots> = vm.attach_memory(&ours.mem, &ours.memory).unwrap();
    let cluster = Cluster::new("cpus", &ours.mem, ours.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SPACES);
    slots.set_fence(Some(cpus.fence()));
    if running {
        let spin = guest::spin(0x1000, COUNTER).unwrap();
        ours.load(&spin);
        cpus.plug(0, Entry::real_mode(spin.base)).unwrap();
    }
    let tag = if running { "running_vcpu" } else { "idle" };
    let n = 200;
    let o = median(3, || bar_moves(&ours, n));
    let b = median(3, || bar_moves(&base, n));
    out.push(format!("memslot_bar_move_{tag} ours_ns={o:.0} baseline_ns={b:.0}"));
    let (mut oa, mut od, mut ba, mut bd) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        let (a, d) = hotadds(&ours, n / 2);
        oa.push(a);
        od.push(d);
        let (a, d) = hotadds(&base, n / 2);
        ba.push(a);
        bd.push(d);
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    out.push(format!(
        "memslot_ram_hotadd_16MiB_{tag} ours_ns={:.0} baseline_ns={:.0}",
        med(oa),
        med(ba)
    ));
    out.push(format!(
        "memslot_ram_hotremove_16MiB_{tag} ours_ns={:.0} baseline_ns={:.0}",
        med(od),
        med(bd)
    ));
    if running {
        assert_eq!(cpus.unplug(0).unwrap(), RunEnd::Stopped);
    }
    assert!(slots.take_errors().is_empty());
    eprintln!("{tag}: {:?}", slots.stats());
}

fn exit_round_trip(kvm: &Kvm, out: &mut Vec<String>) {
    let b = Board::new();
    let prog = guest::mmio_write_loop(0x1000, SINK, EXITS).unwrap();
    b.load(&prog);
    let vm = Vm::new(kvm).unwrap();
    let _slots = vm.attach_memory(&b.mem, &b.memory).unwrap();
    let cluster = Cluster::new("cpus", &b.mem, b.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SPACES);
    let mut bare = vm.fd().create_vcpu(7).unwrap();
    let ours = median(5, || {
        let t = Instant::now();
        cpus.plug(0, Entry::real_mode(prog.base)).unwrap();
        assert_eq!(cpus.wait(0).unwrap(), RunEnd::Halted);
        let ns = t.elapsed().as_nanos() as f64;
        assert_eq!(cpus.exits(0).unwrap().mmio_writes, u64::from(EXITS));
        cpus.unplug(0).unwrap();
        ns / f64::from(EXITS)
    });
    let baseline = median(5, || {
        let t = Instant::now();
        Entry::real_mode(prog.base).apply(&mut bare).unwrap();
        let mut exits = 0u32;
        loop {
            match bare.run().unwrap() {
                VcpuExit::MmioWrite(addr, data) => {
                    black_box((addr, data));
                    exits += 1;
                }
                VcpuExit::Hlt => break,
                other => panic!("unexpected exit {other:?}"),
            }
        }
        assert_eq!(exits, u32::from(EXITS));
        t.elapsed().as_nanos() as f64 / f64::from(EXITS)
    });
    let share = (ours - baseline) / ours * 100.0;
    out.push(format!(
        "mmio_exit_round_trip ours_ns={ours:.0} baseline_ns={baseline:.0} share={share:.1}%"
    ));
}

fn plug_cycle(kvm: &Kvm, out: &mut Vec<String>) {
    let b = Board::new();
    let hlt = Program {
        base: 0x1100,
        code: vec![0xf4],
    };
    b.load(&hlt);
    let vm = Vm::new(kvm).unwrap();
    let _slots = vm.attach_memory(&b.mem, &b.memory).unwrap();
    let cluster = Cluster::new("cpus", &b.mem, b.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SPACES);
    let n = 300;
    let ours = median(3, || {
        let t = Instant::now();
        for _ in 0..n {
            cpus.plug(0, Entry::real_mode(hlt.base)).unwrap();
            assert_eq!(cpus.wait(0).unwrap(), RunEnd::Halted);
            cpus.unplug(0).unwrap();
        }
        t.elapsed().as_nanos() as f64 / n as f64
    });
    let mut fd = Some(vm.fd().create_vcpu(9).unwrap());
    let baseline = median(3, || {
        let t = Instant::now();
        for _ in 0..n {
            let mut f = fd.take().unwrap();
            Entry::real_mode(hlt.base).apply(&mut f).unwrap();
            let h = std::thread::spawn(move || {
                while !matches!(f.run().unwrap(), VcpuExit::Hlt) {}
                f
            });
            fd = Some(h.join().unwrap());
        }
        t.elapsed().as_nanos() as f64 / n as f64
    });
    out.push(format!(
        "vcpu_plug_unplug_cycle ours_ns={ours:.0} baseline_ns={baseline:.0}"
    ));
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let kvm = match Kvm::open() {
        Ok(kvm) => kvm,
        Err(e) if e.is_unavailable() => {
            println!("skipped: {e} (no usable /dev/kvm on this host)");
            return;
        }
        Err(e) => panic!("opening /dev/kvm: {e}"),
    };
    let mut out = Vec::new();
    memslot_cases(&kvm, false, &mut out);
    memslot_cases(&kvm, true, &mut out);
    exit_round_trip(&kvm, &mut out);
    plug_cycle(&kvm, &mut out);
    for line in out {
        println!("{line}");
    }
}
