//! Writes through the vm-memory adapter are guest RAM writes like any other: they mark the
//! pages they touch for the dirty-logging clients of the range (migration must resend a
//! buffer a virtio device filled).

use addrspace::vm_memory::GuestRamSpace;
use addrspace::{AddressSpace, DirtyClient, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestAddressSpace};

const QUEUE_SIZE: u16 = 8;
const DESC_TABLE: u64 = 0x1000;
const AVAIL_RING: u64 = 0x2000;
const USED_RING: u64 = 0x3000;
/// `data` is mapped here through an alias that starts 0x8000 into it.
const DATA_BASE: u64 = 0x10_0000;
const DATA_ALIAS_OFFSET: u64 = 0x8000;

fn put(space: &AddressSpace, addr: u64, bytes: &[u8]) {
    let r = space.write(GuestAddr(addr), bytes, MemTxAttrs::default());
    assert_eq!(r, MemTxResult::OK, "driver write at {addr:#x}");
}

fn dirty(mem: &Memory, region: RegionId, client: DirtyClient) -> Vec<u64> {
    mem.dirty().pages(region, 0, 0x1_0000, client).unwrap()
}

#[test]
fn a_virtqueue_completion_marks_the_pages_it_wrote() {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let rings = mem.ram("rings", 0x1_0000).unwrap();
    let data = mem.ram("data", 0x1_0000).unwrap();
    let window = mem.alias("data-window", data, DATA_ALIAS_OFFSET, 0x8000).unwrap();
    mem.add_subregion(system, 0, rings).unwrap();
    mem.add_subregion(system, DATA_BASE, window).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    mem.dirty().start_global().unwrap();

    // The driver posts a 16-byte request and a 64-byte reply buffer 0x2ff0 into the window
    // (so the reply straddles two pages of `data`).
    let (req, reply) = (DATA_BASE + 0x10, DATA_BASE + 0x2ff0);
    put(&space, req, b"VIRTIO-REQ-0001\0");
    for (i, (addr, len, flags, next)) in [(req, 16, 1, 1), (reply, 64, 2, 0)].into_iter().enumerate() {
        let desc = RawDescriptor::from(Descriptor::new(addr, len, flags, next));
        put(&space, DESC_TABLE + 16 * i as u64, desc.as_slice());
    }
    put(&space, AVAIL_RING + 4, &0u16.to_le_bytes());
    put(&space, AVAIL_RING + 2, &1u16.to_le_bytes());
    // Migration has sent everything so far.
    for r in [rings, data] {
        mem.dirty().take(r, 0, 0x1_0000, DirtyClient::Migration).unwrap();
    }

    // The device completes the chain through virtio-queue over the adapter.
    let live = GuestRamSpace::new(&space);
    let guest = live.memory();
    let mut queue = Queue::new(QUEUE_SIZE).unwrap();
    queue.set_size(QUEUE_SIZE);
    queue.set_desc_table_address(Some(DESC_TABLE as u32), Some(0));
    queue.set_avail_ring_address(Some(AVAIL_RING as u32), Some(0));
    queue.set_used_ring_address(Some(USED_RING as u32), Some(0));
    queue.set_ready(true);
    let chain = queue.pop_descriptor_chain(live.memory()).expect("one chain");
    let mut writer = chain.clone().writer(&*guest).unwrap();
    std::io::Write::write_all(&mut writer, &[0xa5; 64]).unwrap();
    queue.add_used(&*guest, chain.head_index(), 64).unwrap();

    // The reply's two pages of `data` and the used ring's page of `rings`, for MIGRATION only.
    let reply_page = DATA_ALIAS_OFFSET + 0x2000;
    assert_eq!(
        dirty(&mem, data, DirtyClient::Migration),
        [reply_page, reply_page + 0x1000]
    );
    assert_eq!(dirty(&mem, rings, DirtyClient::Migration), [USED_RING]);
    assert!(dirty(&mem, data, DirtyClient::Vga).is_empty());
    // A plain vm-memory store marks too; reads do not.
    guest.write_obj(7u32, GuestAddress(0x5004)).unwrap();
    let _: u64 = guest.read_obj(GuestAddress(0x6000)).unwrap();
    assert_eq!(dirty(&mem, rings, DirtyClient::Migration), [USED_RING, 0x5000]);
}
