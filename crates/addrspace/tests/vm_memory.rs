//! vm-memory 0.18 interop: `GuestRam` / `GuestRamSpace` against `AddressSpace` reads and
//! writes, and a real consumer (a virtio-queue 0.18 split queue) walking guest RAM.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use addrspace::vm_memory::{GuestRam, GuestRamSpace};
use addrspace::{AddressSpace, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionOps};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{
    ByteValued, Bytes, GuestAddress, GuestAddressSpace, GuestMemory, GuestMemoryBackend, GuestMemoryError,
    GuestMemoryRegion, Permissions,
};

const ATTRS: MemTxAttrs = MemTxAttrs {
    secure: false,
    user: false,
    debug: false,
    memory: false,
    requester_id: 0,
};

fn as_read(space: &AddressSpace, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    assert_eq!(
        space.read(GuestAddr(addr), &mut buf, ATTRS),
        MemTxResult::OK,
        "read at {addr:#x}"
    );
    buf
}

fn as_write(space: &AddressSpace, addr: u64, buf: &[u8]) {
    assert_eq!(
        space.write(GuestAddr(addr), buf, ATTRS),
        MemTxResult::OK,
        "write at {addr:#x}"
    );
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// An MMIO device that counts the accesses it sees.
#[derive(Default)]
struct Counter(AtomicU32);

impl RegionOps for Counter {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.0.fetch_add(1, Ordering::Relaxed);
        (0x5a5a_5a5a, MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        MemTxResult::OK
    }
}

#[test]
fn snapshot_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<GuestRam>();
    check::<GuestRamSpace>();
    check::<addrspace::vm_memory::GuestRamRegion>();
}

/// `low` and `mid` are adjacent (two regions, one boundary), `high` is behind a hole.
fn three_rams() -> (Memory, AddressSpace) {
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
fn bytes_and_address_space_see_the_same_ram() {
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
fn mmio_reservations_and_holes_are_not_in_the_view() {
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
fn rom_is_included_and_marked_readonly() {
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
fn snapshot_outlives_removal_and_deletion_of_its_region() {
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
fn live_space_follows_hotplug_and_moves() {
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

// ---------------------------------------------------------------------------------------
// A real consumer: virtio-queue 0.18 over the address space's RAM.

const VRING_DESC_F_NEXT: u16 = 1;
const VRING_DESC_F_WRITE: u16 = 2;
const QUEUE_SIZE: u16 = 16;
const DESC_TABLE: u64 = 0x1000;
const AVAIL_RING: u64 = 0x2000;
const USED_RING: u64 = 0x3000;

/// The driver side, written the way a guest CPU would: through the address space.
struct Driver<'a> {
    space: &'a AddressSpace,
    avail_idx: u16,
}

impl Driver<'_> {
    fn set_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let desc = RawDescriptor::from(Descriptor::new(addr, len, flags, next));
        as_write(self.space, DESC_TABLE + 16 * u64::from(index), desc.as_slice());
    }

    fn make_available(&mut self, head: u16) {
        let slot = AVAIL_RING + 4 + 2 * u64::from(self.avail_idx % QUEUE_SIZE);
        as_write(self.space, slot, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        as_write(self.space, AVAIL_RING + 2, &self.avail_idx.to_le_bytes());
    }

    /// (used idx, [(id, len)]) from the used ring.
    fn used(&self) -> (u16, Vec<(u32, u32)>) {
        let idx = u16::from_le_bytes(as_read(self.space, USED_RING + 2, 2).try_into().unwrap());
        let elems = (0..idx)
            .map(|i| {
                let e = as_read(self.space, USED_RING + 4 + 8 * u64::from(i), 8);
                (
                    u32::from_le_bytes(e[..4].try_into().unwrap()),
                    u32::from_le_bytes(e[4..].try_into().unwrap()),
                )
            })
            .collect();
        (idx, elems)
    }
}

fn device_queue(mem: &GuestRam) -> Queue {
    let mut q = Queue::new(QUEUE_SIZE).unwrap();
    q.set_size(QUEUE_SIZE);
    q.set_desc_table_address(Some(DESC_TABLE as u32), Some(0));
    q.set_avail_ring_address(Some(AVAIL_RING as u32), Some(0));
    q.set_used_ring_address(Some(USED_RING as u32), Some(0));
    q.set_ready(true);
    assert!(q.is_valid(mem));
    q
}

/// Queue memory in `ram0` at 0; data buffers in `ram1`, which is mapped only through an
/// alias at 4 GiB (window starting 0x8000 into `ram1`) and, for checking, directly at
/// 0x2000_0000 in a second address space.
struct Machine {
    _mem: Memory,
    space: AddressSpace,
    check: AddressSpace,
}

const ALIAS_BASE: u64 = 0x1_0000_0000;
const ALIAS_OFFSET: u64 = 0x8000;
const DIRECT_BASE: u64 = 0x2000_0000;

fn machine() -> Machine {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let ram0 = mem.ram("ram0", 0x1_0000).unwrap();
    let ram1 = mem.ram("ram1", 0x1_0000).unwrap();
    let high = mem.alias("ram1-high", ram1, ALIAS_OFFSET, 0x4000).unwrap();
    mem.add_subregion(system, 0, ram0).unwrap();
    mem.add_subregion(system, ALIAS_BASE, high).unwrap();
    let space = mem.address_space("memory", system).unwrap();

    let other = mem.container("check", 1 << 64).unwrap();
    let direct = mem.alias("ram1-direct", ram1, 0, 0x1_0000).unwrap();
    mem.add_subregion(other, DIRECT_BASE, direct).unwrap();
    let check = mem.address_space("check", other).unwrap();
    Machine {
        _mem: mem,
        space,
        check,
    }
}

#[test]
fn virtqueue_chain_is_walked_through_the_address_space() {
    let m = machine();
    let live = GuestRamSpace::new(&m.space);
    let guest = live.memory();
    let high = guest.find_region(GuestAddress(ALIAS_BASE)).unwrap();
    assert_eq!(
        (high.name(), high.offset_in_region().0, high.len()),
        ("ram1", ALIAS_OFFSET, 0x4000)
    );

    // The driver posts one request: a header and a payload to read, a buffer to write.
    let header = *b"VIRTIO-REQ-0001\0";
    let payload = pattern(300, 0x30);
    let (hdr_addr, data_addr, resp_addr) = (0x4000, ALIAS_BASE + 0x100, ALIAS_BASE + 0x2000);
    as_write(&m.space, hdr_addr, &header);
    as_write(&m.space, data_addr, &payload);
    let mut driver = Driver {
        space: &m.space,
        avail_idx: 0,
    };
    driver.set_desc(0, hdr_addr, 16, VRING_DESC_F_NEXT, 5);
    driver.set_desc(5, data_addr, payload.len() as u32, VRING_DESC_F_NEXT, 9);
    driver.set_desc(9, resp_addr, 64, VRING_DESC_F_WRITE, 0);
    driver.make_available(0);

    // The device: virtio-queue over vm-memory over the flat view.
    let mut queue = device_queue(&guest);
    let chain = queue.pop_descriptor_chain(live.memory()).expect("one chain");
    assert_eq!(chain.head_index(), 0);
    let descs: Vec<Descriptor> = chain.clone().collect();
    assert_eq!(
        descs
            .iter()
            .map(|d| (d.addr().0, d.len(), d.is_write_only(), d.has_next()))
            .collect::<Vec<_>>(),
        [
            (hdr_addr, 16, false, true),
            (data_addr, 300, false, true),
            (resp_addr, 64, true, false)
        ]
    );
    let mem = chain.memory();
    let mut request = Vec::new();
    for d in chain.clone().readable() {
        let mut buf = vec![0; d.len() as usize];
        mem.read_slice(&mut buf, d.addr()).unwrap();
        request.extend_from_slice(&buf);
    }
    assert_eq!(&request[..16], &header);
    assert_eq!(&request[16..], &payload[..]);
    let checksum: u32 = request.iter().map(|&b| u32::from(b)).sum();
    let mut response = b"OK ".to_vec();
    response.extend_from_slice(&checksum.to_le_bytes());
    let resp = chain.clone().writable().next().unwrap();
    assert!(resp.len() as usize >= response.len());
    mem.write_slice(&response, resp.addr()).unwrap();
    queue
        .add_used(&*guest, chain.head_index(), response.len() as u32)
        .unwrap();
    assert!(
        queue.pop_descriptor_chain(live.memory()).is_none(),
        "nothing else posted"
    );

    // The driver sees the completion and the response.
    assert_eq!(driver.used(), (1, vec![(0, response.len() as u32)]));
    assert_eq!(as_read(&m.space, resp_addr, response.len()), response);
    // The bytes are in `ram1` at the alias offset: visible at its direct mapping.
    assert_eq!(
        as_read(&m.check, DIRECT_BASE + ALIAS_OFFSET + 0x2000, response.len()),
        response
    );
    assert_eq!(as_read(&m.check, DIRECT_BASE + ALIAS_OFFSET + 0x100, 300), payload);
}

#[test]
fn virtqueue_reader_writer_span_regions_and_reject_mmio() {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let ram0 = mem.ram("ram0", 0x1_0000).unwrap();
    let ram1 = mem.ram("ram1", 0x1_0000).unwrap();
    let ram2 = mem.ram("ram2", 0x1_0000).unwrap();
    let dev = Arc::new(Counter::default());
    let mmio = mem.io("mmio", 0x1000, dev.clone()).unwrap();
    mem.add_subregion(system, 0, ram0).unwrap();
    mem.add_subregion(system, 0x1_0000, ram1).unwrap(); // adjacent: separate regions
    mem.add_subregion(system, 0x2_0000, ram2).unwrap();
    mem.add_subregion(system, 0x10_0000, mmio).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    let live = GuestRamSpace::new(&space);
    let guest = live.memory();
    assert_eq!(guest.num_regions(), 3);

    let mut driver = Driver {
        space: &space,
        avail_idx: 0,
    };
    // Chain 0: a 0x100-byte request across the ram0/ram1 boundary and a 0x200-byte reply
    // buffer across the ram1/ram2 boundary.
    let request = pattern(0x100, 0x55);
    as_write(&space, 0xff80, &request);
    driver.set_desc(0, 0xff80, 0x100, VRING_DESC_F_NEXT, 1);
    driver.set_desc(1, 0x1_ff80, 0x200, VRING_DESC_F_WRITE, 0);
    driver.make_available(0);
    // Chain 2: a reply buffer in MMIO, which a device must not be able to use.
    driver.set_desc(2, 0x10_0000, 0x10, VRING_DESC_F_WRITE, 0);
    driver.make_available(2);

    let mut queue = device_queue(&guest);
    let mut chains = queue.iter(live.memory()).unwrap();
    let chain = chains.next().unwrap();
    let bad = chains.next().unwrap();
    assert!(chains.next().is_none());
    drop(chains);

    let mut reader = chain.clone().reader(&*guest).unwrap();
    let mut writer = chain.clone().writer(&*guest).unwrap();
    assert_eq!((reader.available_bytes(), writer.available_bytes()), (0x100, 0x200));
    let mut got = vec![0; 0x100];
    std::io::Read::read_exact(&mut reader, &mut got).unwrap();
    assert_eq!(got, request);
    let reply: Vec<u8> = got.iter().rev().copied().collect();
    std::io::Write::write_all(&mut writer, &reply).unwrap();
    writer.write_obj(0xc0ffee_u32).unwrap();
    queue
        .add_used(&*guest, chain.head_index(), writer.bytes_written() as u32)
        .unwrap();
    assert_eq!(as_read(&space, 0x1_ff80, 0x100), reply);
    assert_eq!(as_read(&space, 0x2_0080, 4), 0xc0ffee_u32.to_le_bytes());

    // The MMIO-backed chain cannot become a writer; the device is never called.
    assert!(bad.clone().writer(&*guest).is_err());
    queue.add_used(&*guest, bad.head_index(), 0).unwrap();
    assert_eq!(dev.0.load(Ordering::Relaxed), 0);
    assert_eq!(driver.used(), (2, vec![(0, 0x104), (2, 0)]));
}

/// A virtio-like device that keeps a live vm-memory view of the space it is mapped in.
struct VirtioLike {
    guest: addrspace::vm_memory::GuestRamSpace,
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
fn a_device_holding_a_guest_ram_space_is_freed() {
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
