//! A machine for the idle tests: slot N's guest is the idle loop `l: out REPORT+N, al; hlt;
//! jmp l` at `0x1000 + 0x100 * N`, its vCPUs under a [`HaltPolicy`] given by the test.

use std::sync::Arc;

use addrspace::cpu::Cluster;
use addrspace_kvm::guest::{self, Idle};
use addrspace_kvm::vcpu::{Entry, HaltPolicy, Hotplug, SpaceIndices};
use addrspace_kvm::{Kvm, MemSlots, Vm};

use super::{Board, REPORT};

/// The vCPUs (first: dropped, so unplugged, before the board), the VM and the board.
pub struct IdleMachine {
    pub cpus: Hotplug,
    pub slots: Arc<MemSlots>,
    pub vm: Vm,
    pub board: Board,
}

impl IdleMachine {
    /// `n` empty slots (CPU indices from 0).
    pub fn new(kvm: &Kvm, n: u16, halt: HaltPolicy) -> IdleMachine {
        IdleMachine::with(kvm, n, 0, 0, halt)
    }

    /// `n` slots with CPU indices from `first_index`, the first `realized` of them realized
    /// by the board (no vCPU yet).
    pub fn with(kvm: &Kvm, n: u16, first_index: u32, realized: usize, halt: HaltPolicy) -> IdleMachine {
        let board = Board::new();
        for slot in 0..n {
            let p = guest::idle(IdleMachine::base(slot.into()), &Idle::new(REPORT + slot)).unwrap();
            board.load(&p, &[]);
        }
        let (vm, slots) = board.vm(kvm);
        let mut cluster = Cluster::new("cpus", &board.mem, board.model(), first_index, n.into()).unwrap();
        for slot in 0..realized {
            cluster.plug(slot).unwrap();
        }
        let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
        cpus.set_halt_policy(halt);
        IdleMachine { cpus, slots, vm, board }
    }

    /// Where slot `slot`'s idle loop is.
    pub fn base(slot: usize) -> u64 {
        0x1000 + 0x100 * slot as u64
    }

    /// Slot `slot`'s entry.
    pub fn entry(slot: usize) -> Entry {
        Entry::real_mode(IdleMachine::base(slot))
    }

    /// Heartbeats slot `slot`'s guest wrote so far.
    pub fn beats(&self, slot: usize) -> usize {
        self.board.report.count_at(slot as u64)
    }
}
