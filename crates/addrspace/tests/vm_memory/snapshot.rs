//! GuestRam snapshots and GuestRamSpace against AddressSpace reads and writes.

use super::*;

#[test]
pub(crate) fn snapshot_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GuestRam>();
    check::<GuestRamSpace>();
    check::<addrspace::vm_memory::GuestRamRegion>();
}

/// `low` and `mid` are adjacent (two regions, one boundary), `high` is behind a hole.
pub(crate) fn three_rams() -> (Memory, AddressSpace) {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let low = mem.ram("low", 0x1_0000).unwrap();
    let mid = mem.ram("mid", 0x1_0000).unwrap();
    let high = mem.ram("high", 0x1_0000).unwrap();
    mem.add_subregion(system, 0, low).unwrap();
    mem.add_subregion(system, 0x1_0000, mid).unwrap();
    mem.add_subregion(system, 0x10_0000, high).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    (mem, space)
}

#[test]
pub(crate) fn bytes_and_address_space_see_the_same_ram() {
    let (_mem, space) = three_rams();
    let guest = GuestRam::from_space(&space);
    let layout: Vec<_> = guest
        .iter()
        .map(|r| (r.start_addr().0, r.len(), r.name().to_string()))
        .collect();
    assert_eq!(
        layout,
        [
            (0, 0x1_0000, "low".to_string()),
            (0x1_0000, 0x1_0000, "mid".to_string()),
            (0x10_0000, 0x1_0000, "high".to_string())
        ]
    );
    assert_eq!(guest.map().last_addr(), GuestAddress(0x10_ffff));

    // vm-memory writes, the address space reads.
    let a = pattern(64, 1);
    guest.write_slice(&a, GuestAddress(0x100)).unwrap();
    assert_eq!(as_read(&space, 0x100, 64), a);
    guest.write_obj(0xfeed_face_u32, GuestAddress(0x10_0040)).unwrap();
    assert_eq!(as_read(&space, 0x10_0040, 4), 0xfeed_face_u32.to_le_bytes());
    guest
        .store(
            0x1234_u16,
            GuestAddress(0x10_0080),
            std::sync::atomic::Ordering::Release,
        )
        .unwrap();
    assert_eq!(as_read(&space, 0x10_0080, 2), 0x1234_u16.to_le_bytes());

    // The address space writes, vm-memory reads.
    let b = pattern(100, 7);
    as_write(&space, 0x10_0200, &b);
    let mut back = vec![0; 100];
    guest.read_slice(&mut back, GuestAddress(0x10_0200)).unwrap();
    assert_eq!(back, b);
    as_write(&space, 0x300, &0x0102_0304_0506_0708_u64.to_le_bytes());
    assert_eq!(
        guest.read_obj::<u64>(GuestAddress(0x300)).unwrap(),
        0x0102_0304_0506_0708
    );
    assert_eq!(
        guest
            .load::<u32>(GuestAddress(0x304), std::sync::atomic::Ordering::Acquire)
            .unwrap(),
        0x0102_0304
    );

    // One access across the boundary of two adjacent regions is split by vm-memory.
    let c = pattern(32, 3);
    guest.write_slice(&c, GuestAddress(0xfff0)).unwrap();
    assert_eq!(as_read(&space, 0xfff0, 32), c);
    let slices: Vec<_> = GuestMemoryBackend::get_slices(guest.map(), GuestAddress(0xfff0), 32)
        .map(|s| s.unwrap().len())
        .collect();
    assert_eq!(slices, [16, 16]);
    let d = pattern(32, 9);
    as_write(&space, 0xfff8, &d);
    let mut back = [0u8; 32];
    guest.read_slice(&mut back, GuestAddress(0xfff8)).unwrap();
    assert_eq!(back[..], d[..]);

    // Region-relative access goes to the same bytes.
    let high = guest.find_region(GuestAddress(0x10_0000)).unwrap();
    assert_eq!(
        high.read_obj::<u32>(vm_memory::MemoryRegionAddress(0x40)).unwrap(),
        0xfeed_face
    );
    // The host address is the block's: the same memory, not a copy.
    let host = GuestMemoryBackend::get_host_address(guest.map(), GuestAddress(0x10_0040)).unwrap();
    assert_eq!(host, high.ram_block().host_ptr().wrapping_add(0x40));
}

#[test]
pub(crate) fn mmio_reservations_and_holes_are_not_in_the_view() {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let ram = mem.ram("ram", 0x1000).unwrap();
    let dev = Arc::new(Counter::default());
    let mmio = mem.io("mmio", 0x1000, dev.clone()).unwrap();
    let ramd = mem.ram_device("ramd", 0x1000).unwrap();
    let romd = mem.rom_device("romd", 0x1000, dev.clone()).unwrap();
    let reserved = mem.reservation("reserved", 0x1000).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    mem.add_subregion(system, 0x1000, mmio).unwrap();
    mem.add_subregion(system, 0x2000, ramd).unwrap();
    mem.add_subregion(system, 0x3000, romd).unwrap();
    mem.add_subregion(system, 0x4000, reserved).unwrap();
    // 0x5000.. is a hole.
    let space = mem.address_space("memory", system).unwrap();
    assert_eq!(space.view().ranges().len(), 5);

    let guest = GuestRam::from_space(&space);
    assert_eq!(guest.num_regions(), 1, "only the RAM range: {guest:?}");
    for addr in [0x1000, 0x1ffc, 0x2000, 0x3000, 0x4000, 0x5000, u64::MAX - 3] {
        let a = GuestAddress(addr);
        assert!(!guest.map().address_in_range(a), "{addr:#x}");
        assert!(matches!(guest.read_obj::<u32>(a), Err(GuestMemoryError::InvalidGuestAddress(x)) if x == a));
        assert!(matches!(
            guest.write_obj(1u32, a),
            Err(GuestMemoryError::InvalidGuestAddress(_))
        ));
        assert!(guest.load::<u32>(a, std::sync::atomic::Ordering::Relaxed).is_err());
        assert!(GuestMemoryBackend::get_host_address(guest.map(), a).is_err());
    }
    assert_eq!(
        dev.0.load(Ordering::Relaxed),
        0,
        "vm-memory never reaches device callbacks"
    );

    // An access that runs off RAM into MMIO stops at the end of RAM.
    let buf = pattern(32, 5);
    assert_eq!(guest.write(&buf, GuestAddress(0xff0)).unwrap(), 16);
    assert!(matches!(
        guest.write_slice(&buf, GuestAddress(0xff0)),
        Err(GuestMemoryError::PartialBuffer {
            expected: 32,
            completed: 16
        })
    ));
    assert_eq!(as_read(&space, 0xff0, 16), buf[..16]);
    assert!(!GuestMemoryBackend::check_range(guest.map(), GuestAddress(0xff0), 32));
    assert!(GuestMemoryBackend::check_range(guest.map(), GuestAddress(0xff0), 16));
    assert!(!GuestMemory::check_range(
        &guest,
        GuestAddress(0x1000),
        4,
        Permissions::Read
    ));
    assert_eq!(dev.0.load(Ordering::Relaxed), 0);

    // The region itself refuses out-of-range region addresses.
    let r = guest.find_region(GuestAddress(0)).unwrap();
    assert!(r.get_slice(vm_memory::MemoryRegionAddress(0xffc), 8).is_err());
    assert!(r.get_slice(vm_memory::MemoryRegionAddress(u64::MAX), 2).is_err());
    assert_eq!(r.get_slice(vm_memory::MemoryRegionAddress(0x1000), 0).unwrap().len(), 0);
    assert!(r.get_host_address(vm_memory::MemoryRegionAddress(0x1000)).is_err());
}

#[test]
pub(crate) fn rom_is_included_and_marked_readonly() {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let rom = mem.rom("bios", 0x1000).unwrap();
    mem.add_subregion(system, 0xf_f000, rom).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    let image = pattern(0x1000, 0x42);
    assert!(space.write(GuestAddr(0xf_f000), &image, MemTxAttrs::DEBUG).is_ok());

    let guest = GuestRam::from_space(&space);
    let region = guest.find_region(GuestAddress(0xf_f000)).unwrap();
    assert!(region.readonly());
    let mut back = vec![0; 0x1000];
    guest.read_slice(&mut back, GuestAddress(0xf_f000)).unwrap();
    assert_eq!(back, image);

    // Documented limitation: vm-memory's backend interface has no read-only regions, so a
    // write through it changes ROM (as a debug write through the address space would),
    // while a normal guest write through the address space is dropped.
    assert_eq!(space.write(GuestAddr(0xf_f000), &[0], ATTRS), MemTxResult::DECODE_ERROR);
    guest.write_obj(0u8, GuestAddress(0xf_f000)).unwrap();
    assert_eq!(as_read(&space, 0xf_f000, 1), [0]);
}

#[test]
pub(crate) fn snapshot_outlives_removal_and_deletion_of_its_region() {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let keep = mem.ram("keep", 0x1000).unwrap();
    let doomed = mem.ram("doomed", 0x1000).unwrap();
    mem.add_subregion(system, 0, keep).unwrap();
    mem.add_subregion(system, 0x8000, doomed).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    let live = GuestRamSpace::new(&space);
    let data = pattern(0x80, 0x11);
    as_write(&space, 0x8100, &data);

    let snapshot = live.memory();
    assert!(Arc::ptr_eq(&snapshot, &live.memory()), "unchanged view: one snapshot");
    let block = Arc::downgrade(snapshot.find_region(GuestAddress(0x8000)).unwrap().ram_block());

    mem.remove_subregion(system, doomed).unwrap();
    mem.delete_region(doomed).unwrap();
    let mut gone = [0u8; 4];
    assert_eq!(
        space.read(GuestAddr(0x8100), &mut gone, ATTRS),
        MemTxResult::DECODE_ERROR
    );

    // The live handle follows the new layout...
    let now = live.memory();
    assert!(!Arc::ptr_eq(&snapshot, &now));
    assert_eq!(now.num_regions(), 1);
    assert!(now.read_obj::<u32>(GuestAddress(0x8100)).is_err());
    // ...while the old snapshot still maps the deleted region's memory.
    assert_eq!(snapshot.num_regions(), 2);
    let mut back = vec![0; 0x80];
    snapshot.read_slice(&mut back, GuestAddress(0x8100)).unwrap();
    assert_eq!(back, data);
    snapshot.write_obj(0xdead_beef_u32, GuestAddress(0x8ffc)).unwrap();
    assert_eq!(snapshot.read_obj::<u32>(GuestAddress(0x8ffc)).unwrap(), 0xdead_beef);
    // Shared RAM is still shared: a write through the old snapshot reaches `keep`.
    snapshot.write_obj(0x77u8, GuestAddress(0x10)).unwrap();
    assert_eq!(as_read(&space, 0x10, 1), [0x77]);

    // The memory goes away with the last snapshot that shows it.
    assert!(block.upgrade().is_some());
    drop(snapshot);
    assert!(block.upgrade().is_none(), "the deleted region's RAM block was freed");
}

#[test]
pub(crate) fn live_space_follows_hotplug_and_moves() {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    let live = GuestRamSpace::new(&space);
    assert_eq!(live.memory().num_regions(), 0);
    assert!(live.memory().read_obj::<u8>(GuestAddress(0)).is_err());

    let ram = mem.ram("dimm", 0x2000).unwrap();
    mem.add_subregion(system, 0x4000_0000, ram).unwrap();
    live.memory().write_obj(0xabu8, GuestAddress(0x4000_1000)).unwrap();
    mem.set_address(ram, 0x8000_0000).unwrap();
    let m = live.memory();
    assert_eq!(m.read_obj::<u8>(GuestAddress(0x8000_1000)).unwrap(), 0xab);
    assert!(m.read_obj::<u8>(GuestAddress(0x4000_1000)).is_err());
    assert!(Arc::ptr_eq(m.view(), &space.view()));
}
