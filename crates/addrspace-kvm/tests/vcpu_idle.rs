//! Idling on `HLT` ([`HaltPolicy::Idle`]): a heartbeat loop keeps running, halts are counted,
//! pause and stop while halted do not wait out the tick, and the default policy still ends
//! the loop on `HLT`. Also the vCPU thread ids.

mod vcpu_support;

use std::time::Duration;

use addrspace_kvm::vcpu::{HaltPolicy, RunEnd, VcpuState};
use vcpu_support::{eventually, kvm_or_skip, returns, IdleMachine};

#[test]
fn vcpu_idle_policy_keeps_the_guest_running() {
    let Some(kvm) = kvm_or_skip() else { return };
    let tick = Duration::from_millis(2);
    let mut m = IdleMachine::new(&kvm, 1, HaltPolicy::Idle(tick));
    m.cpus.plug(0, IdleMachine::entry(0)).unwrap();
    assert_eq!(m.cpus.vcpu(0).unwrap().halt_policy(), HaltPolicy::Idle(tick));

    eventually("three heartbeats", || m.beats(0) >= 3);
    let seen = m.beats(0);
    eventually("more heartbeats", || m.beats(0) > seen);
    let v = m.cpus.vcpu(0).unwrap();
    assert_eq!(v.state(), VcpuState::Running);
    let exits = v.exits();
    // Each heartbeat is followed by one HLT: the counts differ by the one in flight at most.
    assert!(exits.halts >= 3, "{exits:?}");
    assert!(exits.pio_outs.abs_diff(exits.halts) <= 1, "{exits:?}");
    assert_eq!(m.cpus.unplug(0).unwrap(), RunEnd::Stopped);
}

#[test]
fn vcpu_pause_and_stop_while_halted_do_not_wait_out_the_tick() {
    let Some(kvm) = kvm_or_skip() else { return };
    // A tick no test would wait out: the calls below return only if they cut it short.
    let day = Duration::from_secs(24 * 3600);
    let IdleMachine {
        cpus,
        board,
        slots: _slots,
        vm: _vm,
    } = IdleMachine::new(&kvm, 1, HaltPolicy::Idle(day));
    let mut cpus = cpus;
    cpus.plug(0, IdleMachine::entry(0)).unwrap();
    eventually("the first halt", || cpus.exits(0).unwrap().halts == 1);

    let cpus = returns("pause while halted", move || {
        cpus.vcpu(0).unwrap().pause().unwrap();
        cpus
    });
    let v = cpus.vcpu(0).unwrap();
    assert_eq!(v.state(), VcpuState::Paused);
    assert_eq!((v.exits().pio_outs, v.exits().halts), (1, 1));
    // Resumed, the guest continues after its HLT: the next heartbeat, the next halt.
    v.resume();
    eventually("the second halt", || cpus.exits(0).unwrap().halts == 2);
    assert_eq!(board.report.count_at(0), 2);

    let (cpus, end) = returns("stop while halted", move || {
        let mut cpus = cpus;
        let end = cpus.unplug(0);
        (cpus, end)
    });
    assert_eq!(end.unwrap(), RunEnd::Stopped);
    assert_eq!(cpus.pool().parked(), 1);
}

#[test]
fn vcpu_default_policy_ends_the_loop_on_hlt() {
    let Some(kvm) = kvm_or_skip() else { return };
    let mut m = IdleMachine::new(&kvm, 1, HaltPolicy::default());
    assert_eq!(m.cpus.halt_policy(), HaltPolicy::Exit);
    m.cpus.plug(0, IdleMachine::entry(0)).unwrap();
    assert_eq!(m.cpus.wait(0).unwrap(), RunEnd::Halted);
    let exits = m.cpus.exits(0).unwrap();
    assert_eq!((exits.pio_outs, exits.halts), (1, 1));
    assert_eq!(m.beats(0), 1);
    m.cpus.unplug(0).unwrap();
}

#[test]
fn vcpu_thread_ids_name_the_vcpu_threads() {
    let Some(kvm) = kvm_or_skip() else { return };
    // Slots 0 and 1 are CPU indices 2 and 3.
    let mut m = IdleMachine::with(&kvm, 2, 2, 0, HaltPolicy::Idle(Duration::from_millis(5)));
    let comm = |tid: i32| std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap();
    let mut tids = Vec::new();
    for slot in 0..2 {
        let tid = m.cpus.plug(slot, IdleMachine::entry(slot)).unwrap().thread_id();
        assert_eq!(m.cpus.thread_id(slot), Some(tid));
        assert_eq!(comm(tid).trim_end(), format!("vcpu-{}", slot + 2));
        tids.push(tid);
    }
    assert_ne!(tids[0], tids[1]);
    m.cpus.unplug(1).unwrap();
    assert_eq!(m.cpus.thread_id(1), None);
    assert!(
        !std::path::Path::new(&format!("/proc/self/task/{}", tids[1])).exists(),
        "the unplugged vCPU's thread is gone"
    );
    // Re-plugged, the vCPU gets a new thread with the same name.
    let tid = m.cpus.plug(1, IdleMachine::entry(1)).unwrap().thread_id();
    assert_eq!(comm(tid).trim_end(), "vcpu-3");
}
