//! A per-CPU private MMIO region answers only its own vCPU: two vCPUs whose per-CPU roots
//! hold a private device at the same address each read their own value (QEMU's KVM path
//! dispatches every MMIO exit through `address_space_memory` and cannot do this).

mod vcpu_support;

use addrspace::cpu::{Cluster, CpuView};
use addrspace::{GuestAddr, MemTxAttrs};
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices};
use vcpu_support::{kvm_or_skip, Board, REPORT};

const PRIVATE: u16 = 0xb000;

#[test]
fn vcpu_private_mmio_answers_its_own_cpu_only() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    // vCPU N runs code at 0x1000 + 0x100 * N: read the private register, report on port 0x80 + N.
    let programs: Vec<_> = (0..2u16)
        .map(|n| guest::read_and_report(0x1000 + 0x100 * u64::from(n), PRIVATE, REPORT + n).unwrap())
        .collect();
    for p in &programs {
        board.load(p, &[]);
    }
    let (vm, _slots) = board.vm(&kvm);
    let model = board.model_with(CpuView::PerCpu(board.private_device(PRIVATE)));
    let cluster = Cluster::new("cpus", &board.mem, model, 0, 2).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    // Both run at once.
    for (slot, p) in programs.iter().enumerate() {
        cpus.plug(slot, Entry::real_mode(p.base)).unwrap();
    }
    for slot in 0..2 {
        assert_eq!(cpus.wait(slot).unwrap(), RunEnd::Halted);
        let exits = cpus.exits(slot).unwrap();
        assert_eq!((exits.mmio_reads, exits.pio_outs, exits.failed), (1, 1, 0));
    }
    let mut seen = board.report.entries();
    seen.sort();
    assert_eq!(seen, [(0, 0x40), (1, 0x41)], "each vCPU read its own device");
    // The device is nowhere in system memory.
    let mut b = [0u8];
    assert!(!board
        .memory
        .read(GuestAddr(PRIVATE.into()), &mut b, MemTxAttrs::default())
        .is_ok());
    // Unplug destroys each CPU's space and its private regions.
    let before = board.mem.stats();
    cpus.unplug(0).unwrap();
    cpus.unplug(1).unwrap();
    let after = board.mem.stats();
    assert_eq!(before.address_spaces - after.address_spaces, 2);
    assert_eq!(before.regions - after.regions, 6);
    assert_eq!(cpus.pool().parked(), 2);
}
