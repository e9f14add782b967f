//! An accelerator-style memory listener: a KVM-like memslot table that buffers region
//! additions and deletions and applies them in `commit` (as QEMU's KVM listener does), plus
//! dirty logging of a framebuffer and an ioeventfd on a doorbell register.
//!
//! Run: `cargo run -p addrspace --example listeners`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use addrspace::listener::PRIORITY_ACCEL;
use addrspace::{
    DirtyClient, DirtyMask, GuestAddr, IoEventFd, MemTxAttrs, Memory, MemoryListener, Section, Unassigned, SIZE_2_64,
};
use vmm_sys_util::eventfd::EventFd;

/// A memslot: size, host address, read-only, dirty logging.
type Slot = (u128, usize, bool, bool);
/// Guest-physical start → slot.
type Slots = BTreeMap<u64, Slot>;

/// Slot deletions (by start) and additions queued until `commit`.
#[derive(Default)]
struct Pending {
    dels: Vec<u64>,
    adds: Vec<(u64, Slot)>,
}

#[derive(Default)]
struct Memslots {
    slots: Mutex<Slots>,
    pending: Mutex<Pending>,
}

impl MemoryListener for Memslots {
    fn name(&self) -> &str {
        "memslots"
    }
    fn region_add(&self, s: &Section<'_>) {
        // Only RAM-backed ranges become slots; MMIO traps to the VMM.
        if let Some(host) = s.host_addr() {
            let slot = (s.size(), host as usize, s.readonly(), !s.dirty_log_mask().is_empty());
            self.pending.lock().unwrap().adds.push((s.start().0, slot));
        }
    }
    fn region_del(&self, s: &Section<'_>) {
        if s.host_addr().is_some() {
            self.pending.lock().unwrap().dels.push(s.start().0);
        }
    }
    fn log_start(&self, s: &Section<'_>, _old: DirtyMask, _new: DirtyMask) {
        if let Some(slot) = self.slots.lock().unwrap().get_mut(&s.start().0) {
            slot.3 = true; // KVM_MEM_LOG_DIRTY_PAGES
        }
    }
    fn commit(&self) {
        // All deletions, then all additions: the guest never sees a half-updated table.
        let Pending { dels, adds } = std::mem::take(&mut *self.pending.lock().unwrap());
        let mut slots = self.slots.lock().unwrap();
        for gpa in dels {
            slots.remove(&gpa);
        }
        slots.extend(adds);
    }
    fn eventfd_add(&self, e: &IoEventFd) {
        println!(
            "  KVM_IOEVENTFD assign   gpa={:#x} len={} data={:?}",
            e.addr, e.size, e.data
        );
    }
    fn eventfd_del(&self, e: &IoEventFd) {
        println!(
            "  KVM_IOEVENTFD deassign gpa={:#x} len={} data={:?}",
            e.addr, e.size, e.data
        );
    }
}

fn print_slots(title: &str, l: &Memslots) {
    println!("{title}");
    for (gpa, (size, _host, ro, log)) in l.slots.lock().unwrap().iter() {
        println!("  slot gpa={gpa:#010x} size={size:#x} readonly={ro} log={log}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64)?;
    let ram = mem.ram("ram", 0x10_0000)?;
    let fb = mem.ram("framebuffer", 0x8000)?;
    let bios = mem.rom("bios", 0x1_0000)?;
    let doorbell = mem.io("doorbell", 0x1000, Arc::new(Unassigned))?;
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram)?;
        mem.add_subregion(system, 0xa_0000, fb)?;
        mem.add_subregion(system, 0xf_0000, bios)?;
        mem.add_subregion(system, 0xfee0_0000, doorbell)?;
    }
    let space = mem.address_space("memory", system)?;
    let kvm = Arc::new(Memslots::default());
    let _registration = space.register_listener(kvm.clone(), PRIORITY_ACCEL)?;
    print_slots("after registration (the view is replayed as additions):", &kvm);

    // Logging changes the slot's flags in place (log_start), not the slot table.
    mem.dirty().set(fb, DirtyClient::Vga, true)?;
    print_slots("framebuffer logged for VGA:", &kvm);

    let attrs = MemTxAttrs::default();
    assert!(space.write(GuestAddr(0xa_1234), &[0xff; 4], attrs).is_ok());
    let dirty = mem.dirty().take(fb, 0, 0x8000, DirtyClient::Vga)?;
    println!("dirty framebuffer pages: {dirty:x?}");

    println!("doorbell eventfd:");
    let notifier = Arc::new(EventFd::new(0)?);
    mem.ioeventfds().add(doorbell, 0x40, 4, None, notifier)?;
    mem.set_address(doorbell, 0xfed0_0000)?; // the eventfd moves with its region

    let stats = mem.stats();
    println!(
        "{} commits, {} full renders, {} patched views, {} listener calls",
        stats.commits, stats.renders, stats.patches, stats.listener_calls
    );
    Ok(())
}
