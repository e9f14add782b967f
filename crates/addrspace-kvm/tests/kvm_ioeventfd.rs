//! ioeventfds reach KVM_IOEVENTFD and coalesced zones KVM's ring, on real KVM (skipped only without a usable /dev/kvm).
//!
//! Proof that a registration is in the kernel: registering the same (address, length,
//! datamatch, fd) again directly fails with EEXIST; proof that it is gone: deassigning it
//! directly fails with ENOENT.

#[path = "memslots_support/mod.rs"]
mod memslots_support;

use std::sync::Arc;

use addrspace::{AddressSpace, GuestAddr, MemTxAttrs, Memory, RegionId, Unassigned};
use addrspace_kvm::vcpu::RunEnd;
use addrspace_kvm::{MemSlots, Vm};
use kvm_ioctls::{IoEventAddress, NoDatamatch};
use memslots_support::{run_to_hlt, vm, Run, WRITE_80010};
use vmm_sys_util::eventfd::EventFd;

fn errno(r: Result<(), kvm_ioctls::Error>) -> i32 {
    r.expect_err("the kernel should refuse").errno()
}

/// A device at 0x1000_0000 in a system space the VM listens to.
fn mmio_machine(vm: &Vm) -> (Memory, RegionId, AddressSpace, Arc<MemSlots>) {
    let mem = Memory::new();
    let sys = mem.container("system", 1 << 64).unwrap();
    let dev = mem.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(sys, 0x1000_0000, dev).unwrap();
    let space = mem.address_space("memory", sys).unwrap();
    let slots = vm.attach_memory(&mem, &space).unwrap();
    (mem, dev, space, slots)
}

#[test]
fn mmio_ioeventfds_with_and_without_datamatch_reach_kvm() {
    let Some(vm) = vm() else { return };
    let (mem, dev, _space, slots) = mmio_machine(&vm);
    let any = Arc::new(EventFd::new(0).unwrap());
    let matched = Arc::new(EventFd::new(0).unwrap());
    mem.ioeventfds().add(dev, 0x10, 0, None, any.clone()).unwrap();
    mem.ioeventfds()
        .add(dev, 0x20, 4, Some(0x1234), matched.clone())
        .unwrap();
    assert_eq!(slots.stats().ioeventfd, 2);
    assert!(slots.take_errors().is_empty());
    let fd = vm.fd();
    let a = IoEventAddress::Mmio(0x1000_0010);
    let b = IoEventAddress::Mmio(0x1000_0020);
    assert_eq!(errno(fd.register_ioevent(&any, &a, NoDatamatch)), libc::EEXIST);
    assert_eq!(errno(fd.register_ioevent(&matched, &b, 0x1234u32)), libc::EEXIST);
    // Moving the device moves the registrations.
    mem.set_address(dev, 0x2000_0000).unwrap();
    assert_eq!(errno(fd.unregister_ioevent(&any, &a, NoDatamatch)), libc::ENOENT);
    let a2 = IoEventAddress::Mmio(0x2000_0010);
    assert_eq!(errno(fd.register_ioevent(&any, &a2, NoDatamatch)), libc::EEXIST);
    mem.ioeventfds().del(dev, 0x10, 0, None, any.clone()).unwrap();
    mem.ioeventfds()
        .del(dev, 0x20, 4, Some(0x1234), matched.clone())
        .unwrap();
    assert_eq!(errno(fd.unregister_ioevent(&any, &a2, NoDatamatch)), libc::ENOENT);
    let b2 = IoEventAddress::Mmio(0x2000_0020);
    assert_eq!(errno(fd.unregister_ioevent(&matched, &b2, 0x1234u32)), libc::ENOENT);
    assert!(slots.take_errors().is_empty());
}

#[test]
fn pio_ioeventfds_through_an_io_space() {
    let Some(vm) = vm() else { return };
    let mem = Memory::new();
    let io = mem.container("io", 0x1_0000).unwrap();
    let port = mem.io("port", 0x10, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(io, 0x90, port).unwrap();
    let space = mem.address_space("I/O", io).unwrap();
    let l = vm.attach_io(&mem, &space).unwrap();
    assert!(l.slots().is_empty(), "an I/O space makes no memslots");
    let efd = Arc::new(EventFd::new(0).unwrap());
    mem.ioeventfds().add(port, 0, 0, None, efd.clone()).unwrap();
    let p = IoEventAddress::Pio(0x90);
    assert_eq!(errno(vm.fd().register_ioevent(&efd, &p, NoDatamatch)), libc::EEXIST);
    vm.detach_all();
    assert!(l.take_errors().is_empty());
}

#[test]
fn a_refused_registration_is_a_typed_error_not_a_panic() {
    let Some(vm) = vm() else { return };
    let (mem, dev, _space, slots) = mmio_machine(&vm);
    let efd = Arc::new(EventFd::new(0).unwrap());
    // Taken first, directly: the listener's registration then fails with EEXIST.
    vm.fd()
        .register_ioevent(&efd, &IoEventAddress::Mmio(0x1000_0000), NoDatamatch)
        .unwrap();
    mem.ioeventfds().add(dev, 0, 0, None, efd.clone()).unwrap();
    let errors = slots.take_errors();
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(text.contains("KVM_IOEVENTFD") && text.contains("File exists"), "{text}");
    assert_eq!(slots.stats().errors, 1);
}

/// RAM at 0 with `WRITE_80010` at 0x1000, the device at 0x80000.
fn guest_machine(vm: &Vm) -> (Memory, RegionId, AddressSpace, Arc<MemSlots>) {
    let mem = Memory::new();
    let sys = mem.container("system", 1 << 64).unwrap();
    let ram = mem.ram("ram", 0x1_0000).unwrap();
    mem.add_subregion(sys, 0, ram).unwrap();
    let dev = mem.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(sys, 0x8_0000, dev).unwrap();
    let space = mem.address_space("memory", sys).unwrap();
    assert!(space
        .write(GuestAddr(0x1000), &WRITE_80010, MemTxAttrs::default())
        .is_ok());
    let slots = vm.attach_memory(&mem, &space).unwrap();
    (mem, dev, space, slots)
}

#[test]
fn without_ioeventfd_or_coalescing_the_guest_write_exits() {
    let Some(vm) = vm() else { return };
    let (mem, _dev, space, _slots) = guest_machine(&vm);
    let run = halted(run_to_hlt(&vm, &mem, space.root(), 0));
    assert_eq!((run.exits.mmio_writes, run.exits.coalesced), (1, 0), "{run:?}");
}

#[test]
fn a_guest_write_to_an_ioeventfd_signals_it_without_an_exit() {
    let Some(vm) = vm() else { return };
    let (mem, dev, space, slots) = guest_machine(&vm);
    let efd = Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap());
    mem.ioeventfds().add(dev, 0x10, 1, Some(1), efd.clone()).unwrap();
    let run = halted(run_to_hlt(&vm, &mem, space.root(), 0));
    assert_eq!(run.exits.mmio_writes, 0, "the write did not exit to the device");
    assert_eq!(efd.read().unwrap(), 1);
    assert!(slots.take_errors().is_empty());
}

#[test]
fn coalesced_mmio_writes_land_in_the_ring_not_in_exits() {
    let Some(vm) = vm() else { return };
    let (mem, dev, space, slots) = guest_machine(&vm);
    mem.coalescing().add(dev, 0, 0x1000).unwrap();
    assert_eq!(slots.stats().coalesced, 1);
    // The write went to the ring, drained (one entry) and dispatched at the HLT exit.
    let run = halted(run_to_hlt(&vm, &mem, space.root(), 0));
    assert_eq!((run.exits.mmio_writes, run.exits.coalesced), (0, 1), "{run:?}");
    mem.coalescing().clear(dev).unwrap();
    assert_eq!(slots.stats().coalesced, 2);
    assert!(slots.take_errors().is_empty());
}

fn halted(run: Run) -> Run {
    assert_eq!(run.end, RunEnd::Halted, "{run:?}");
    run
}
