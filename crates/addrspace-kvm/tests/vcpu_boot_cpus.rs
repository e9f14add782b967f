//! CPUs the board realized at load (QEMU's boot CPUs): [`Hotplug::start`] gives them a
//! vCPU, `plug` on them errors clearly, and they unplug and re-plug like hot-plugged ones.

mod vcpu_support;

use std::time::Duration;

use addrspace_kvm::vcpu::{HaltPolicy, RunEnd, SlotState};
use addrspace_kvm::Error;
use vcpu_support::{eventually, kvm_or_skip, IdleMachine};

#[test]
fn vcpu_start_a_board_realized_cpu_then_unplug_and_replug_it() {
    let Some(kvm) = kvm_or_skip() else { return };
    // The board realizes CPU 0 at load (`cpus = 1` of 2 slots).
    let mut m = IdleMachine::with(&kvm, 2, 0, 1, HaltPolicy::Idle(Duration::from_millis(2)));
    let spaces = m.board.mem.stats().address_spaces;
    let entry = IdleMachine::entry(0);
    let cpus = &mut m.cpus;
    assert_eq!(cpus.slots(), 2);
    assert_eq!(cpus.slot_state(0), Some(SlotState::Realized));
    assert_eq!(cpus.slot_state(1), Some(SlotState::Empty));
    assert_eq!(cpus.slot_state(2), None);
    assert!(cpus.is_plugged(0) && !cpus.is_plugged(1));

    // Plugging a realized slot is a clear, typed error, and changes nothing.
    let err = cpus.plug(0, entry).map(|_| ()).unwrap_err();
    assert!(matches!(err, Error::Slot { slot: 0, .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("realized") && text.contains("start"), "{text}");
    assert_eq!(cpus.slot_state(0), Some(SlotState::Realized));
    // Starting needs a realized CPU without a vCPU.
    assert!(matches!(cpus.start(1, entry), Err(Error::Slot { slot: 1, .. })));
    assert!(matches!(cpus.start(5, entry), Err(Error::Slot { slot: 5, .. })));

    assert_eq!(cpus.start(0, entry).unwrap().id(), 0);
    assert_eq!(cpus.slot_state(0), Some(SlotState::Running));
    assert!(matches!(cpus.start(0, entry), Err(Error::Slot { slot: 0, .. })));
    assert!(matches!(cpus.plug(0, entry), Err(Error::Slot { slot: 0, .. })));
    let beats = |m: &IdleMachine| m.beats(0);
    eventually("boot CPU heartbeats", || beats(&m) >= 2);

    assert_eq!(m.cpus.unplug(0).unwrap(), RunEnd::Stopped);
    assert_eq!(m.cpus.slot_state(0), Some(SlotState::Empty));
    assert_eq!(m.board.mem.stats().address_spaces, spaces - 1, "cpu-memory-0 destroyed");
    assert!(m.cpus.pool().is_parked(0));

    // Re-plugged as a hot-plugged CPU: the parked fd, the guest from its entry again.
    let before = m.beats(0);
    m.cpus.plug(0, entry).unwrap();
    assert_eq!(m.cpus.pool().parked(), 0);
    eventually("heartbeats after re-plug", || beats(&m) > before);
    assert_eq!(m.cpus.unplug(0).unwrap(), RunEnd::Stopped);
}

#[test]
fn vcpu_unplug_a_realized_cpu_that_never_started() {
    let Some(kvm) = kvm_or_skip() else { return };
    let mut m = IdleMachine::with(&kvm, 1, 0, 1, HaltPolicy::default());
    let spaces = m.board.mem.stats().address_spaces;
    assert_eq!(m.cpus.unplug(0).unwrap(), RunEnd::Stopped);
    assert_eq!(m.board.mem.stats().address_spaces, spaces - 1, "cpu-memory-0 destroyed");
    assert_eq!(m.cpus.pool().parked(), 0, "no vCPU was ever created");
    assert!(m.cpus.unplug(0).is_err());
}
