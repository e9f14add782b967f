//! Shared by the vCPU tests: opening KVM (skip only on ENOENT/EACCES), a tiny board (RAM,
//! a UART-like MMIO device, an I/O space with recording ports) whose RAM reaches KVM through
//! the memslot listener ([`Vm::attach_memory`]).
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use addrspace::cpu::{CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder};
use addrspace::{AddressSpace, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId, RegionOps};
use addrspace_kvm::guest::Program;
use addrspace_kvm::{Kvm, MemSlots, Vm};

/// RAM at GPA 0 (32 KiB: code at 0x1000, data at 0x2000, counters at 0x3000).
pub const RAM_SIZE: u64 = 0x8000;
/// The UART data register (MMIO, outside RAM: every access exits).
pub const UART: u16 = 0xa000;
/// The UART port.
pub const COM1: u16 = 0x3f8;
/// Report ports: guest N writes to `REPORT + N`.
pub const REPORT: u16 = 0x80;

#[path = "../skip/mod.rs"]
mod skip;
pub use skip::kvm_or_skip;

mod idle;
#[allow(unused_imports)] // not every test binary uses it
pub use idle::IdleMachine;

/// A device that records every byte written to it, tagged with the offset.
#[derive(Default)]
pub struct Recorder {
    pub writes: Mutex<Vec<(u64, u8)>>,
}

impl Recorder {
    /// The bytes written, in order.
    pub fn bytes(&self) -> Vec<u8> {
        self.writes.lock().unwrap().iter().map(|&(_, b)| b).collect()
    }
    /// How many writes hit `offset`.
    pub fn count_at(&self, offset: u64) -> usize {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|&&(o, _)| o == offset)
            .count()
    }
    /// (offset, byte) pairs, in order.
    pub fn entries(&self) -> Vec<(u64, u8)> {
        self.writes.lock().unwrap().clone()
    }
}

impl RegionOps for Recorder {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, offset: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.writes.lock().unwrap().push((offset, value as u8));
        MemTxResult::OK
    }
}

/// A device whose every register reads `value`.
pub struct Constant(pub u8);

impl RegionOps for Constant {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (self.0.into(), MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

/// The board: system memory with RAM and the UART, an I/O space with COM1 and report ports.
pub struct Board {
    pub mem: Memory,
    pub system: RegionId,
    pub ram: RegionId,
    /// `memory` over `system` (loading code, reading counters).
    pub memory: AddressSpace,
    /// The board's I/O space (64 KiB), shared by every CPU.
    pub io: AddressSpace,
    pub uart: Arc<Recorder>,
    pub com1: Arc<Recorder>,
    pub report: Arc<Recorder>,
}

impl Board {
    pub fn new() -> Board {
        let mem = Memory::new();
        let system = mem.container("system", 1 << 64).unwrap();
        let ram = mem.ram("ram", RAM_SIZE.into()).unwrap();
        mem.add_subregion(system, 0, ram).unwrap();
        let uart = Arc::new(Recorder::default());
        let dev = mem.io("uart", 0x10, uart.clone()).unwrap();
        mem.add_subregion(system, u64::from(UART), dev).unwrap();
        let io_root = mem.container("io", 0x10000).unwrap();
        let com1 = Arc::new(Recorder::default());
        let port = mem.io("com1", 8, com1.clone()).unwrap();
        mem.add_subregion(io_root, u64::from(COM1), port).unwrap();
        let report = Arc::new(Recorder::default());
        let port = mem.io("report", 16, report.clone()).unwrap();
        mem.add_subregion(io_root, u64::from(REPORT), port).unwrap();
        let memory = mem.address_space("memory", system).unwrap();
        let io = mem.address_space("io", io_root).unwrap();
        Board {
            mem,
            system,
            ram,
            memory,
            io,
            uart,
            com1,
            report,
        }
    }

    /// x86 CPUs: `cpu-memory-N` over the system root, the board's I/O space at index 1.
    pub fn model(&self) -> CpuModel {
        self.model_with(CpuView::Root(self.system))
    }

    /// x86 CPUs whose memory space is `view`, the board's I/O space at index 1.
    pub fn model_with(&self, view: CpuView) -> CpuModel {
        CpuModel {
            spaces: vec![
                CpuSpaceSpec {
                    index: 0,
                    prefix: "cpu-memory".into(),
                    view,
                },
                CpuSpaceSpec {
                    index: 1,
                    prefix: "cpu-io".into(),
                    view: CpuView::Shared(self.io.clone()),
                },
            ],
            tlb: false,
        }
    }

    /// Each CPU's root: system memory under a private device at `at` that reads `0x40 + index`.
    pub fn private_device(&self, at: u16) -> PerCpuBuilder {
        let system = self.system;
        Arc::new(move |mem: &Memory, index: u32| {
            let root = mem.container(&format!("cpu-root-{index}"), 1 << 64)?;
            let alias = mem.alias(&format!("cpu-system-{index}"), system, 0, 1 << 64)?;
            mem.add_subregion(root, 0, alias)?;
            let dev = mem.io(
                &format!("private-{index}"),
                0x10,
                Arc::new(Constant(0x40 + index as u8)),
            )?;
            mem.add_subregion_overlap(root, u64::from(at), dev, 1)?;
            Ok(addrspace::cpu::PerCpuRoot {
                root,
                regions: vec![root, alias, dev],
            })
        })
    }

    /// Loads `program` at its base and `data` at `at` through the system space.
    pub fn load(&self, program: &Program, data: &[(u64, &[u8])]) {
        let r = self
            .memory
            .write(GuestAddr(program.base), &program.code, MemTxAttrs::DEBUG);
        assert!(r.is_ok(), "loading code: {r:?}");
        for &(at, bytes) in data {
            let r = self.memory.write(GuestAddr(at), bytes, MemTxAttrs::DEBUG);
            assert!(r.is_ok(), "loading data: {r:?}");
        }
    }

    /// A 16-bit RAM word.
    pub fn word(&self, at: u64) -> u16 {
        let mut b = [0u8; 2];
        let r = self.memory.read(GuestAddr(at), &mut b, MemTxAttrs::DEBUG);
        assert!(r.is_ok());
        u16::from_le_bytes(b)
    }

    /// A VM whose memslot listener is attached to the board's system space.
    pub fn vm(&self, kvm: &Kvm) -> (Vm, Arc<MemSlots>) {
        let vm = Vm::new(kvm).expect("KVM_CREATE_VM");
        let slots = vm.attach_memory(&self.mem, &self.memory).expect("attach_memory");
        (vm, slots)
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Threads of this process.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

/// Polls `done` every millisecond until it holds; panics after a generous minute (a hang
/// guard, not a timing assertion).
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..60_000 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    panic!("never happened: {what}");
}

/// Runs `f` on its own thread and returns its result; panics if it has not returned after a
/// generous minute (a hang guard for calls that must not wait out a long tick).
pub fn returns<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(v) => v,
        Err(e) => panic!("{what} did not return: {e}"),
    }
}
