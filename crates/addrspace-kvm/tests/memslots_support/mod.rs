//! Shared by the memslot, dirty-log and ioeventfd tests: opening KVM (skipping only when
//! there is no usable /dev/kvm) and the slot table a flat view should give.
#![allow(dead_code)]

use addrspace::{Backend, FlatView};
use addrspace_kvm::{Kvm, SlotInfo, Vm};

/// A fresh VM, or `None` (with the reason printed) when /dev/kvm is absent or not permitted.
pub fn vm() -> Option<Vm> {
    match Kvm::open() {
        Ok(kvm) => Some(Vm::new(&kvm).expect("KVM_CREATE_VM")),
        Err(e) if e.is_unavailable() => {
            eprintln!("skipped: {e} (no usable /dev/kvm on this host)");
            None
        }
        Err(e) => panic!("opening /dev/kvm: {e}"),
    }
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

/// What a run of the test guest ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    Hlt,
    MmioWrite(u64, Vec<u8>),
    /// A read of this many bytes (answered with 0x5a bytes).
    MmioRead(u64, usize),
    IoOut(u16, Vec<u8>),
    Other(String),
}

/// A real-mode vCPU (CS base 0, IP 0x1000) made with kvm-ioctls directly, for the tests that
/// need guest accesses (KVM logs and catches guest accesses only); the crate's vCPU code can
/// replace it when it lands.
pub struct Guest {
    pub vcpu: kvm_ioctls::VcpuFd,
}

impl Guest {
    pub fn new(vm: &Vm, id: u64) -> Guest {
        let vcpu = vm.fd().create_vcpu(id).expect("KVM_CREATE_VCPU");
        let mut sregs = vcpu.get_sregs().unwrap();
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs).unwrap();
        let mut regs = vcpu.get_regs().unwrap();
        regs.rip = 0x1000;
        regs.rflags = 2;
        vcpu.set_regs(&regs).unwrap();
        Guest { vcpu }
    }

    /// Runs until HLT; every exit on the way.
    pub fn run_to_hlt(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        loop {
            let e = self.run();
            let done = matches!(e, Exit::Hlt | Exit::Other(_));
            exits.push(e);
            if done || exits.len() > 16 {
                return exits;
            }
        }
    }

    /// Runs until the next exit.
    pub fn run(&mut self) -> Exit {
        match self.vcpu.run().expect("KVM_RUN") {
            kvm_ioctls::VcpuExit::Hlt => Exit::Hlt,
            kvm_ioctls::VcpuExit::MmioWrite(a, d) => Exit::MmioWrite(a, d.to_vec()),
            kvm_ioctls::VcpuExit::MmioRead(a, d) => {
                d.fill(0x5a);
                Exit::MmioRead(a, d.len())
            }
            kvm_ioctls::VcpuExit::IoOut(p, d) => Exit::IoOut(p, d.to_vec()),
            other => Exit::Other(format!("{other:?}")),
        }
    }
}
