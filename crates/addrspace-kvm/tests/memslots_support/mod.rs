//! Shared by the memslot, dirty-log and ioeventfd tests: opening KVM (skipping only when
//! there is no usable /dev/kvm) and the slot table a flat view should give.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView};
use addrspace::{Backend, FlatView, MemTxAttrs, MemTxResult, Memory, RegionId, RegionOps};
use addrspace_kvm::vcpu::{Entry, ExitStats, Hotplug, RunEnd, SpaceIndices};
use addrspace_kvm::{SlotInfo, Vm};

#[path = "../skip/mod.rs"]
mod skip;

/// A fresh VM, or `None` (with the reason printed) when /dev/kvm is absent or not permitted.
pub fn vm() -> Option<Vm> {
    skip::kvm_or_skip().map(|kvm| Vm::new(&kvm).expect("KVM_CREATE_VM"))
}

pub const PAGE: u64 = 4096;

/// `(gpa, size, host address, read-only)` of the slots the RAM-backed ranges of `view`
/// should give: RAM, ROM and RAM devices, ROM devices in romd mode; start rounded up and end
/// rounded down to the page; host address page aligned.
pub fn expected(view: &FlatView) -> Vec<(u64, u64, u64, bool)> {
    let mut out = Vec::new();
    for r in view.ranges().iter() {
        let (block, ro) = match r.leaf().backend() {
            Backend::Ram(b) | Backend::RamDevice(b) => (b, r.readonly()),
            Backend::RomDevice(b, _) if r.romd() => (b, true),
            _ => continue,
        };
        let start = r.start().0;
        let end = r.end() as u64;
        let gpa = start.div_ceil(PAGE) * PAGE;
        let last = end / PAGE * PAGE;
        if last <= gpa {
            continue;
        }
        let host = block.host_ptr() as u64 + r.offset_in_region().0 + (gpa - start);
        if host % PAGE != 0 {
            continue;
        }
        out.push((gpa, last - gpa, host, ro));
    }
    out
}

/// The same four fields of a slot table.
pub fn actual(slots: &[SlotInfo]) -> Vec<(u64, u64, u64, bool)> {
    slots
        .iter()
        .map(|s| (s.gpa, s.size, s.host_addr, s.readonly()))
        .collect()
}

/// `mov ax, 0x8000; mov es, ax; mov byte es:[0x10], 1; hlt`: one byte written to 0x80010.
pub const WRITE_80010: [u8; 12] = [0xb8, 0x00, 0x80, 0x8e, 0xc0, 0x26, 0xc6, 0x06, 0x10, 0x00, 0x01, 0xf4];

/// What a guest run through the crate's vCPU code (a [`Hotplug`] of one CPU) did.
#[derive(Debug)]
pub struct Run {
    pub end: RunEnd,
    pub exits: ExitStats,
    /// Bytes the guest wrote to ports, in order: (port, byte).
    pub ports: Vec<(u64, u8)>,
}

/// Records port writes (every port of the I/O space).
#[derive(Default)]
struct Ports(Mutex<Vec<(u64, u8)>>);

impl RegionOps for Ports {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, port: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.0.lock().unwrap().push((port, value as u8));
        MemTxResult::OK
    }
}

/// Runs the guest at 0x1000 (real mode, CS base 0) on vCPU `id` until it halts: its memory
/// space is `system` (MMIO exits dispatched there), its I/O space records port writes.
pub fn run_to_hlt(vm: &Vm, mem: &Memory, system: RegionId, id: u32) -> Run {
    let io_root = mem.container(&format!("io-{id}"), 0x1_0000).unwrap();
    let ports = Arc::new(Ports::default());
    let dev = mem.io(&format!("ports-{id}"), 0x1_0000, ports.clone()).unwrap();
    mem.add_subregion(io_root, 0, dev).unwrap();
    let io = mem.address_space(&format!("io-{id}"), io_root).unwrap();
    let model = CpuModel {
        spaces: vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::Root(system),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-io".into(),
                view: CpuView::Shared(io),
            },
        ],
        tlb: false,
    };
    let cluster = Cluster::new(&format!("cpus-{id}"), mem, model, id, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    cpus.plug(0, Entry::real_mode(0x1000)).unwrap();
    let end = cpus.wait(0).unwrap();
    let exits = cpus.exits(0).unwrap();
    cpus.unplug(0).unwrap();
    let ports = ports.0.lock().unwrap().clone();
    Run { end, exits, ports }
}
