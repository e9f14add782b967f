//! Dirty logging through memslots, on real KVM (skipped only without a usable /dev/kvm).
//!
//! KVM logs guest writes only (host writes through the mapping are not logged), so the
//! guest-write tests run a tiny real-mode guest on the crate's own vCPU code
//! (`memslots_support::run_to_hlt`).

#[path = "memslots_support/mod.rs"]
mod memslots_support;

use addrspace::{DirtyClient, GuestAddr, MemTxAttrs, Memory, RegionId};
use std::sync::Arc;

use addrspace_kvm::vcpu::RunEnd;
use addrspace_kvm::{MemSlots, Vm};
use memslots_support::{run_to_hlt, vm};

/// `mov byte [0x3000], 1; mov byte [0x5000], 1; hlt` (16-bit real mode).
const WRITE_3000_5000: [u8; 11] = [0xc6, 0x06, 0x00, 0x30, 0x01, 0xc6, 0x06, 0x00, 0x50, 0x01, 0xf4];

/// Puts `code` at guest address 0x1000 (before logging starts: the library logs host writes
/// itself).
fn load(space: &addrspace::AddressSpace, code: &[u8]) {
    assert!(space.write(GuestAddr(0x1000), code, MemTxAttrs::default()).is_ok());
}

fn machine() -> (Memory, RegionId, addrspace::AddressSpace) {
    let mem = Memory::new();
    let sys = mem.container("system", 1 << 64).unwrap();
    let ram = mem.ram("ram", 0x10_0000).unwrap();
    mem.add_subregion(sys, 0, ram).unwrap();
    let space = mem.address_space("memory", sys).unwrap();
    (mem, ram, space)
}

#[test]
fn log_start_sets_the_flag_sync_without_writes_reports_nothing_log_stop_clears_it() {
    let Some(vm) = vm() else { return };
    let (mem, ram, space) = machine();
    let slots = vm.attach_memory(&mem, &space).unwrap();
    assert!(!slots.slots()[0].logging());
    mem.dirty().set(ram, DirtyClient::Vga, true).unwrap();
    assert!(
        slots.slots()[0].logging(),
        "log_start re-registers with KVM_MEM_LOG_DIRTY_PAGES"
    );
    mem.dirty().sync(None);
    assert_eq!(slots.stats().get_dirty_log, 1);
    assert!(mem
        .dirty()
        .pages(ram, 0, 0x10_0000, DirtyClient::Vga)
        .unwrap()
        .is_empty());
    // A second client changes nothing in KVM.
    let n = slots.stats().set_region;
    mem.dirty().start_global().unwrap();
    assert_eq!(slots.stats().set_region, n);
    mem.dirty().stop_global().unwrap();
    mem.dirty().set(ram, DirtyClient::Vga, false).unwrap();
    assert!(!slots.slots()[0].logging(), "log_stop drops the flag");
    // CODE tracking is TCG's: KVM does not log for it.
    mem.dirty().set_code_tracking(true);
    assert!(!slots.slots()[0].logging());
    slots.verify_with_kvm().unwrap();
    assert!(slots.take_errors().is_empty());
}

/// The machine, with the VGA client logging its RAM, after the guest wrote pages 3 and 5.
fn after_guest_writes(vm: &Vm) -> (Memory, RegionId, addrspace::AddressSpace, Arc<MemSlots>) {
    let (mem, ram, space) = machine();
    let slots = vm.attach_memory(&mem, &space).unwrap();
    load(&space, &WRITE_3000_5000);
    mem.dirty().set(ram, DirtyClient::Vga, true).unwrap();
    assert_eq!(run_to_hlt(vm, &mem, space.root(), 0).end, RunEnd::Halted);
    (mem, ram, space, slots)
}

#[test]
fn log_sync_marks_exactly_the_pages_the_guest_wrote() {
    let Some(vm) = vm() else { return };
    let (mem, ram, _space, slots) = after_guest_writes(&vm);
    // Marking from inside log_sync (the listener calls mem.dirty().mark) must not deadlock.
    mem.dirty().sync(Some(ram));
    let pages = mem.dirty().take(ram, 0, 0x10_0000, DirtyClient::Vga).unwrap();
    assert_eq!(pages, [0x3000, 0x5000]);
    mem.dirty().sync(Some(ram));
    assert!(
        mem.dirty()
            .pages(ram, 0, 0x10_0000, DirtyClient::Vga)
            .unwrap()
            .is_empty(),
        "the get cleared KVM's log"
    );
    assert!(slots.take_errors().is_empty());
}

#[test]
fn a_logging_slot_is_synced_before_it_is_deleted() {
    let Some(vm) = vm() else { return };
    let (mem, ram, _space, slots) = after_guest_writes(&vm);
    // No sync: moving the RAM deletes the slot, which pulls its log first.
    mem.set_address(ram, 0x100_0000).unwrap();
    let pages = mem.dirty().pages(ram, 0, 0x10_0000, DirtyClient::Vga).unwrap();
    assert_eq!(pages, [0x3000, 0x5000]);
    assert!(slots.slots()[0].logging(), "the re-added slot logs too");
    assert!(slots.take_errors().is_empty());
}
