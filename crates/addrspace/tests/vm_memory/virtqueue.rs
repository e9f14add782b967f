//! A real consumer: virtio-queue 0.18 over the address space's RAM.

use super::*;

// A real consumer: virtio-queue 0.18 over the address space's RAM.

pub(crate) const VRING_DESC_F_NEXT: u16 = 1;
pub(crate) const VRING_DESC_F_WRITE: u16 = 2;
pub(crate) const QUEUE_SIZE: u16 = 16;
pub(crate) const DESC_TABLE: u64 = 0x1000;
pub(crate) const AVAIL_RING: u64 = 0x2000;
pub(crate) const USED_RING: u64 = 0x3000;

/// The driver side, written the way a guest CPU would: through the address space.
pub(crate) struct Driver<'a> {
    pub(crate) space: &'a AddressSpace,
    pub(crate) avail_idx: u16,
}

impl Driver<'_> {
    pub(crate) fn set_desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let desc = RawDescriptor::from(Descriptor::new(addr, len, flags, next));
        as_write(self.space, DESC_TABLE + 16 * u64::from(index), desc.as_slice());
    }

    pub(crate) fn make_available(&mut self, head: u16) {
        let slot = AVAIL_RING + 4 + 2 * u64::from(self.avail_idx % QUEUE_SIZE);
        as_write(self.space, slot, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        as_write(self.space, AVAIL_RING + 2, &self.avail_idx.to_le_bytes());
    }

    /// (used idx, [(id, len)]) from the used ring.
    pub(crate) fn used(&self) -> (u16, Vec<(u32, u32)>) {
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

pub(crate) fn device_queue(mem: &GuestRam) -> Queue {
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
pub(crate) struct Machine {
    pub(crate) _mem: Memory,
    pub(crate) space: AddressSpace,
    pub(crate) check: AddressSpace,
}

pub(crate) const ALIAS_BASE: u64 = 0x1_0000_0000;
pub(crate) const ALIAS_OFFSET: u64 = 0x8000;
pub(crate) const DIRECT_BASE: u64 = 0x2000_0000;

pub(crate) fn machine() -> Machine {
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
pub(crate) fn virtqueue_chain_is_walked_through_the_address_space() {
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
pub(crate) fn virtqueue_reader_writer_span_regions_and_reject_mmio() {
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
