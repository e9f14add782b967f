//! Pause / resume of a vCPU spinning in a guest loop that never exits on its own: the kick
//! (signal + immediate_exit) brings it out of KVM_RUN, it stays parked until resumed.

mod vcpu_support;

use std::time::Duration;

use addrspace::cpu::Cluster;
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices, VcpuState};
use vcpu_support::{kvm_or_skip, Board};

const COUNTER: u16 = 0x3000;

/// Polls until the guest counter differs from `from` (fails after a generous minute:
/// a hang guard, not a timing assertion).
fn wait_for_progress(board: &Board, from: u16) -> u16 {
    for _ in 0..60_000 {
        let now = board.word(COUNTER.into());
        if now != from {
            return now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the guest made no progress");
}

#[test]
fn vcpu_pause_and_resume_a_spinning_guest() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let program = guest::spin(0x1000, COUNTER).unwrap();
    board.load(&program, &[]);
    let (vm, _slots) = board.vm(&kvm);
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    cpus.plug(0, Entry::real_mode(program.base)).unwrap();
    wait_for_progress(&board, 0);
    for round in 0..20 {
        let v = cpus.vcpu(0).unwrap();
        v.pause().unwrap();
        assert_eq!(v.state(), VcpuState::Paused, "round {round}");
        let frozen = board.word(COUNTER.into());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(board.word(COUNTER.into()), frozen, "a paused guest does not run");
        v.pause().unwrap(); // pausing a paused vCPU is a no-op
        v.resume();
        wait_for_progress(&board, frozen);
        assert_ne!(v.state(), VcpuState::Ended);
    }
    let kicks = cpus.vcpu(0).unwrap().kicks();
    assert!(kicks >= 20, "one kick per pause at least: {kicks}");
    assert_eq!(cpus.exits(0).unwrap().mmio_writes, 0, "the loop never exits on its own");
    // Stopping a running guest.
    assert_eq!(cpus.unplug(0).unwrap(), RunEnd::Stopped);
    assert_eq!(cpus.pool().parked(), 1);
}
