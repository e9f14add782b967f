//! Machine-wide stop/cont ([`Hotplug::pause_all`] / [`Hotplug::resume_all`]): idling guests'
//! heartbeats stop while paused and resume after; a vCPU plugged while paused runs nothing
//! until resumed; a paused vCPU unplugs.

mod vcpu_support;

use std::time::Duration;

use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, HaltPolicy, RunEnd, VcpuState};
use vcpu_support::{eventually, kvm_or_skip, IdleMachine};

#[test]
fn vcpu_pause_all_stops_every_guest_until_resume_all() {
    let Some(kvm) = kvm_or_skip() else { return };
    // Slot N's first instruction is its heartbeat OUT.
    let mut m = IdleMachine::new(&kvm, 2, HaltPolicy::Idle(Duration::from_millis(1)));
    m.cpus.plug(0, IdleMachine::entry(0)).unwrap();
    eventually("vCPU 0 heartbeats", || m.beats(0) >= 2);

    assert!(!m.cpus.is_paused());
    m.cpus.pause_all().unwrap();
    assert!(m.cpus.is_paused());
    assert_eq!(m.cpus.vcpu(0).unwrap().state(), VcpuState::Paused);
    let frozen = m.beats(0);

    // Plugged while paused: parked before its first KVM_RUN.
    let v1 = m.cpus.plug(1, IdleMachine::entry(1)).unwrap();
    assert_eq!(v1.state(), VcpuState::Paused);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(m.beats(0), frozen, "a paused guest writes nothing");
    assert_eq!(m.beats(1), 0, "a vCPU plugged while paused writes nothing");
    assert_eq!(m.cpus.exits(1).unwrap().pio_outs, 0);
    m.cpus.pause_all().unwrap(); // pausing a paused machine is a no-op
    assert_eq!(m.beats(0), frozen);

    m.cpus.resume_all();
    assert!(!m.cpus.is_paused());
    eventually("both vCPUs heartbeat after resume", || {
        m.beats(0) > frozen && m.beats(1) >= 2
    });

    // Unplugging a paused vCPU, then the machine runs on.
    m.cpus.pause_all().unwrap();
    assert_eq!(m.cpus.unplug(1).unwrap(), RunEnd::Stopped);
    let frozen = m.beats(0);
    m.cpus.resume_all();
    eventually("vCPU 0 heartbeats again", || m.beats(0) > frozen);
    assert_eq!(m.cpus.unplug(0).unwrap(), RunEnd::Stopped);
    assert_eq!(m.cpus.pool().parked(), 2);
}

#[test]
fn vcpu_pause_all_with_spinning_and_ended_vcpus() {
    let Some(kvm) = kvm_or_skip() else { return };
    // Default policy: slot 1's idle loop ends on its first HLT.
    let mut m = IdleMachine::new(&kvm, 2, HaltPolicy::default());
    let spin = guest::spin(0x1800, 0x3000).unwrap();
    m.board.load(&spin, &[]);
    m.cpus.plug(1, IdleMachine::entry(1)).unwrap();
    assert_eq!(m.cpus.wait(1).unwrap(), RunEnd::Halted);
    m.cpus.plug(0, Entry::real_mode(spin.base)).unwrap();
    eventually("the spinning guest runs", || m.board.word(0x3000) != 0);
    m.cpus.pause_all().unwrap();
    let frozen = m.board.word(0x3000);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(m.board.word(0x3000), frozen);
    m.cpus.resume_all();
    eventually("the spinning guest runs again", || m.board.word(0x3000) != frozen);
    assert_eq!(m.cpus.unplug(0).unwrap(), RunEnd::Stopped);
    assert_eq!(m.cpus.unplug(1).unwrap(), RunEnd::Halted);
}
