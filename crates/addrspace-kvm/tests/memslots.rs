//! Memslots from the system flat view, on real KVM (skipped only without a usable /dev/kvm).

mod memslots_support;

use std::sync::Arc;

use addrspace::{AddressSpace, GuestAddr, MemTxAttrs, Memory, RegionId, Unassigned};
use addrspace::{MemTxResult, RegionOps};
use addrspace_kvm::vcpu::RunEnd;
use addrspace_kvm::{MemSlots, Vm};
use memslots_support::{actual, expected, run_to_hlt, vm, PAGE};

/// 1 MiB of RAM at 0 in a system space the VM listens to.
struct Ram {
    mem: Memory,
    sys: RegionId,
    ram: RegionId,
    space: AddressSpace,
    slots: Arc<MemSlots>,
}

impl Ram {
    fn new(vm: &Vm) -> Ram {
        let mem = Memory::new();
        let sys = mem.container("system", 1 << 64).unwrap();
        let ram = mem.ram("ram", 0x10_0000).unwrap();
        mem.add_subregion(sys, 0, ram).unwrap();
        let space = mem.address_space("memory", sys).unwrap();
        let slots = vm.attach_memory(&mem, &space).unwrap();
        Ram {
            mem,
            sys,
            ram,
            space,
            slots,
        }
    }
}

#[test]
fn ram_becomes_a_slot_and_moves_with_one_delete_and_one_add() {
    let Some(vm) = vm() else { return };
    let Ram {
        mem, ram, space, slots, ..
    } = Ram::new(&vm);
    let t = slots.slots();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].slot, t[0].gpa, t[0].size, t[0].flags), (0, 0, 0x10_0000, 0));
    let before = slots.stats().set_region;
    mem.set_address(ram, 0x40_0000).unwrap();
    assert_eq!(slots.stats().set_region - before, 2, "one deletion, one addition");
    let t = slots.slots();
    assert_eq!((t[0].slot, t[0].gpa), (0, 0x40_0000), "the freed id is reused");
    assert_eq!(actual(&t), expected(&space.view()));
    slots.verify_with_kvm().unwrap();
    assert!(slots.take_errors().is_empty());
    vm.detach_all();
    assert!(slots.slots().is_empty(), "detaching deletes every slot");
}

#[test]
fn a_commit_that_changes_only_mmio_makes_no_ioctl() {
    let Some(vm) = vm() else { return };
    let Ram {
        mem, sys, space, slots, ..
    } = Ram::new(&vm);
    let s0 = slots.stats();
    let dev = mem.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(sys, 0x1000_0000, dev).unwrap();
    mem.set_address(dev, 0x2000_0000).unwrap();
    let dev2 = mem.io("dev2", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(sys, 0x3000_0000, dev2).unwrap();
    mem.set_enabled(dev, false).unwrap();
    let s1 = slots.stats();
    assert_eq!(s1.set_region, s0.set_region, "MMIO-only commits make no memslot ioctl");
    assert!(s1.commits > s0.commits, "the commits were heard");
    // An MMIO window over RAM splits it: the slot goes, two come.
    mem.set_enabled(dev, true).unwrap();
    mem.set_address(dev, 0x8000).unwrap();
    let t = slots.slots();
    assert_eq!(actual(&t), expected(&space.view()));
    assert_eq!(
        t.iter().map(|s| (s.gpa, s.size)).collect::<Vec<_>>(),
        [(0, 0x8000), (0x9000, 0xf7000)]
    );
    slots.verify_with_kvm().unwrap();
    assert!(slots.take_errors().is_empty());
}

#[test]
fn rom_and_romd_slots_are_read_only_and_romd_off_removes_the_slot() {
    let Some(vm) = vm() else { return };
    let mem = Memory::new();
    let sys = mem.container("system", 1 << 64).unwrap();
    let rom = mem.rom("bios", 0x1_0000).unwrap();
    mem.add_subregion(sys, 0xf_0000, rom).unwrap();
    let flash = mem.rom_device("flash", 0x2_0000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(sys, 0x100_0000, flash).unwrap();
    let ram = mem.ram("ram", 0x1_0000).unwrap();
    mem.add_subregion(sys, 0, ram).unwrap();
    let space = mem.address_space("memory", sys).unwrap();
    let slots = vm.attach_memory(&mem, &space).unwrap();
    let ro: Vec<_> = slots.slots().iter().map(|s| (s.gpa, s.readonly())).collect();
    assert_eq!(ro, [(0, false), (0xf_0000, true), (0x100_0000, true)]);
    assert_eq!(slots.slots()[1].flags, kvm_bindings::KVM_MEM_READONLY);
    mem.set_romd(flash, false).unwrap();
    assert_eq!(slots.slots().len(), 2, "romd off: the ROM device's reads exit as MMIO");
    assert_eq!(actual(&slots.slots()), expected(&space.view()));
    mem.set_romd(flash, true).unwrap();
    assert_eq!(slots.slots().len(), 3);
    // A RAM region made read-only is deleted and re-added (KVM cannot flip READONLY in place).
    mem.set_readonly(ram, true).unwrap();
    assert!(slots.slots()[0].readonly());
    slots.verify_with_kvm().unwrap();
    assert!(slots.take_errors().is_empty());
}

#[test]
fn unaligned_ranges_keep_only_their_whole_pages() {
    let Some(vm) = vm() else { return };
    let mem = Memory::new();
    let sys = mem.container("system", 1 << 64).unwrap();
    let a = mem.ram("a", 0x4000).unwrap();
    mem.add_subregion(sys, 0x10_0000, a).unwrap();
    // MMIO over [0x100000, 0x100800) and [0x103800, 0x104000): RAM left at [0x100800, 0x103800),
    // whose whole pages are [0x101000, 0x103000).
    let dev = mem.io("dev", 0x800, Arc::new(Unassigned)).unwrap();
    mem.add_subregion_overlap(sys, 0x10_0000, dev, 1).unwrap();
    let dev2 = mem.io("dev2", 0x800, Arc::new(Unassigned)).unwrap();
    mem.add_subregion_overlap(sys, 0x10_3800, dev2, 1).unwrap();
    let d = mem.ram("d", 0x3000).unwrap();
    mem.add_subregion(sys, 0x40_0800, d).unwrap(); // guest and host misaligned: no slot
    let b = mem.ram("b", 0x800).unwrap();
    mem.add_subregion(sys, 0x20_0000, b).unwrap(); // less than a page: no slot
    let c = mem.ram("c", 0x4000).unwrap();
    let c_alias = mem.alias("c@0x800", c, 0x800, 0x2000).unwrap();
    mem.add_subregion(sys, 0x30_0000, c_alias).unwrap(); // host not page aligned: no slot
    let space = mem.address_space("memory", sys).unwrap();
    let slots = vm.attach_memory(&mem, &space).unwrap();
    let t: Vec<_> = slots
        .slots()
        .iter()
        .map(|s| (s.gpa, s.size, s.offset_in_region))
        .collect();
    assert_eq!(t, [(0x10_1000, 0x2000, 0x1000)]);
    assert_eq!(actual(&slots.slots()), expected(&space.view()));
    assert_eq!(slots.slots()[0].size % PAGE, 0);
    assert!(slots.take_errors().is_empty());
}

#[test]
fn slot_ids_come_back_under_churn() {
    let Some(vm) = vm() else { return };
    let mem = Memory::new();
    let sys = mem.container("system", 1 << 64).unwrap();
    let space = mem.address_space("memory", sys).unwrap();
    let slots = vm.attach_memory(&mem, &space).unwrap();
    let ram = mem.ram("ram", 0x1000).unwrap();
    for i in 0..200u64 {
        mem.add_subregion(sys, i * 0x1_0000, ram).unwrap();
        assert_eq!(slots.slots()[0].slot, 0);
        mem.remove_subregion(sys, ram).unwrap();
    }
    assert!(slots.slots().is_empty());
    assert_eq!(slots.stats().set_region, 400);
    assert!(slots.take_errors().is_empty());
}

/// `mov ax, 0x2000; mov es, ax; mov byte es:[0x10], 0x77; mov al, es:[0x10]; out 0x81, al; hlt`:
/// write, then read back, the byte at 0x20010.
const WRITE_READ_20010: [u8; 18] = [
    0xb8, 0x00, 0x20, 0x8e, 0xc0, 0x26, 0xc6, 0x06, 0x10, 0x00, 0x77, 0x26, 0xa0, 0x10, 0x00, 0xe6, 0x81, 0xf4,
];

/// A ROM device's MMIO side (romd off): reads 0x5a, ignores writes.
struct Reads5a;

impl RegionOps for Reads5a {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0x5a, MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

#[test]
fn a_guest_write_to_rom_exits_and_is_dropped_and_romd_off_makes_reads_exit() {
    let Some(vm) = vm() else { return };
    let mem = Memory::new();
    let sys = mem.container("system", 1 << 64).unwrap();
    let ram = mem.ram("ram", 0x1_0000).unwrap();
    mem.add_subregion(sys, 0, ram).unwrap();
    let flash = mem.rom_device("flash", 0x1_0000, Arc::new(Reads5a)).unwrap();
    mem.add_subregion(sys, 0x2_0000, flash).unwrap();
    let space = mem.address_space("memory", sys).unwrap();
    assert!(space
        .write(GuestAddr(0x1000), &WRITE_READ_20010, MemTxAttrs::default())
        .is_ok());
    let leaf = mem.leaf(flash).unwrap().unwrap();
    assert!(leaf.backend().ram().unwrap().write(0x10, &[0xcd]));
    let slots = vm.attach_memory(&mem, &space).unwrap();
    // romd: the write exits (KVM_MEM_READONLY) and is dropped, the read comes from the
    // unchanged ROM without an exit.
    let run = run_to_hlt(&vm, &mem, sys, 0);
    assert_eq!(run.end, RunEnd::Halted);
    assert_eq!((run.exits.mmio_writes, run.exits.mmio_reads), (1, 0), "{run:?}");
    assert_eq!(run.ports, [(0x81, 0xcd)]);
    let mut byte = [0u8];
    assert!(leaf.backend().ram().unwrap().read(0x10, &mut byte));
    assert_eq!(byte, [0xcd], "the ROM is unchanged");
    // romd off: no slot, so the read exits too (to the device, which reads 0x5a).
    mem.set_romd(flash, false).unwrap();
    let run = run_to_hlt(&vm, &mem, sys, 1);
    assert_eq!(run.end, RunEnd::Halted);
    assert_eq!((run.exits.mmio_writes, run.exits.mmio_reads), (1, 1), "{run:?}");
    assert_eq!(run.ports, [(0x81, 0x5a)]);
    assert!(slots.take_errors().is_empty());
}

#[derive(Default)]
struct CountingFence(std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64);

impl addrspace_kvm::UpdateFence for CountingFence {
    fn begin(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn end(&self) {
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn only_commits_whose_deletions_overlap_their_additions_are_fenced() {
    let Some(vm) = vm() else { return };
    let Ram {
        mem,
        sys,
        ram,
        space,
        slots,
    } = Ram::new(&vm);
    let fence = Arc::new(CountingFence::default());
    slots.set_fence(Some(fence.clone()));
    let count = || {
        let o = std::sync::atomic::Ordering::Relaxed;
        (fence.0.load(o), fence.1.load(o), slots.stats().fenced)
    };
    mem.set_address(ram, 0x100_0000).unwrap(); // far: the old and new ranges are disjoint
    assert_eq!(count(), (0, 0, 0));
    mem.set_address(ram, 0x100_1000).unwrap(); // by one page: they overlap
    assert_eq!(count(), (1, 1, 1));
    let dev = mem.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(sys, 0x2000_0000, dev).unwrap(); // MMIO only
    assert_eq!(count(), (1, 1, 1));
    mem.set_address(dev, 0x100_8000).unwrap(); // splits the RAM slot
    assert_eq!(count(), (2, 2, 2));
    assert_eq!(actual(&slots.slots()), expected(&space.view()));
    assert!(slots.take_errors().is_empty());
}
