//! Soak of a long-running machine: 200 plug/unplug cycles of an idling AP while vCPU 0 idles
//! and heartbeats: parked fds, open fds, threads, address spaces and flat views do not grow.
//! Alone in its binary: it counts the process's fds and threads.

mod vcpu_support;

use std::time::Duration;

use addrspace_kvm::vcpu::{HaltPolicy, RunEnd, VcpuState};
use vcpu_support::{eventually, kvm_or_skip, open_fds, threads, IdleMachine};

const CYCLES: usize = 200;

#[test]
fn vcpu_idle_ap_plug_unplug_cycles_do_not_grow() {
    let Some(kvm) = kvm_or_skip() else { return };
    let mut m = IdleMachine::new(&kvm, 2, HaltPolicy::Idle(Duration::from_millis(1)));
    m.cpus.plug(0, IdleMachine::entry(0)).unwrap();

    let cycle = |m: &mut IdleMachine| {
        let before = m.beats(1);
        m.cpus.plug(1, IdleMachine::entry(1)).unwrap();
        eventually("an AP heartbeat", || m.beats(1) > before);
        assert_eq!(m.cpus.unplug(1).unwrap(), RunEnd::Stopped);
    };
    // The first cycle creates the AP's vCPU fd (parked from then on).
    cycle(&mut m);
    let (fds, tasks, stats) = (open_fds(), threads(), m.board.mem.stats());
    let memslots = m.slots.slots().len();
    let boot_beats = m.beats(0);
    for _ in 1..CYCLES {
        cycle(&mut m);
        assert_eq!(m.cpus.pool().parked(), 1, "parked fds");
    }
    let after = m.board.mem.stats();
    assert_eq!(open_fds(), fds, "open fds");
    assert_eq!(threads(), tasks, "threads");
    assert_eq!(after.address_spaces, stats.address_spaces, "address spaces");
    assert_eq!(after.flatviews, stats.flatviews, "flat views");
    assert_eq!(after.regions, stats.regions, "regions");
    assert_eq!(m.slots.slots().len(), memslots, "memslots");
    assert!(m.beats(1) >= CYCLES, "every cycle saw a heartbeat");
    // vCPU 0 idled through the soak.
    eventually("vCPU 0 heartbeats on", || m.beats(0) > boot_beats);
    assert_eq!(m.cpus.vcpu(0).unwrap().state(), VcpuState::Running);
    eprintln!(
        "{CYCLES} cycles: {fds} open fds, {tasks} threads, {} address spaces, {} flat views, 1 parked vCPU fd, vCPU 0: {} heartbeats",
        stats.address_spaces,
        stats.flatviews,
        m.beats(0)
    );
    assert_eq!(m.cpus.unplug(0).unwrap(), RunEnd::Stopped);
}
