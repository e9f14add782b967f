//! A device holding a live vm-memory view of its space is freed with it.

/// A virtio-like device that keeps a live vm-memory view of the space it is mapped in.
pub(crate) struct VirtioLike {
    pub(crate) guest: addrspace::vm_memory::GuestRamSpace,
}

impl addrspace::RegionOps for VirtioLike {
    fn read(&self, _: u64, _: u32, _: addrspace::MemTxAttrs) -> (u64, addrspace::MemTxResult) {
        use vm_memory::{Bytes, GuestAddressSpace};
        let v: u32 = self.guest.memory().read_obj(vm_memory::GuestAddress(0)).unwrap_or(0);
        (u64::from(v), addrspace::MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: addrspace::MemTxAttrs) -> addrspace::MemTxResult {
        addrspace::MemTxResult::OK
    }
}

#[test]
pub(crate) fn a_device_holding_a_guest_ram_space_is_freed() {
    use addrspace::{Endianness, GuestAddr, MemTxAttrs, Memory};
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let ram = mem.ram("ram", 0x1000).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    assert!(space
        .store(GuestAddr(0), 0x1234u32, Endianness::Little, MemTxAttrs::default())
        .is_ok());
    let dev = std::sync::Arc::new(VirtioLike {
        guest: addrspace::vm_memory::GuestRamSpace::new(&space),
    });
    let weak = std::sync::Arc::downgrade(&dev);
    let io = mem.io("virtio", 0x100, dev).unwrap();
    mem.add_subregion(system, 0x1000, io).unwrap();
    assert_eq!(
        space
            .load::<u32>(GuestAddr(0x1000), Endianness::Little, MemTxAttrs::default())
            .0,
        0x1234
    );
    // Unplug frees the device.
    mem.remove_subregion(system, io).unwrap();
    mem.delete_region(io).unwrap();
    assert!(weak.upgrade().is_none(), "device freed on unplug");
    // And a device still mapped at teardown goes with the machine.
    let dev2 = std::sync::Arc::new(VirtioLike {
        guest: addrspace::vm_memory::GuestRamSpace::new(&space),
    });
    let weak2 = std::sync::Arc::downgrade(&dev2);
    let io2 = mem.io("virtio", 0x100, dev2).unwrap();
    mem.add_subregion(system, 0x1000, io2).unwrap();
    let weak_mem = mem.downgrade();
    drop((mem, space));
    assert!(weak_mem.upgrade().is_none(), "memory system freed");
    assert!(weak2.upgrade().is_none(), "device freed with it");
}
