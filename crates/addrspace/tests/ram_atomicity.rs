//! Guest RAM is shared with other threads (vCPUs, devices): an aligned 1/2/4/8-byte access
//! through the library is one access of that width, so a concurrent reader sees the old
//! value or the new one, never a mix of their bytes (a virtio ring index, a page-table entry).
//! Run under Miri too: there, any non-atomic copy racing with another access is reported as a
//! data race, which is how a byte-wise or `memcpy` copy shows up even where the host's memcpy
//! happens not to tear.

use std::thread;

use addrspace::{AddressSpace, Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId, SIZE_2_64};

const A: u64 = 0x0101_0101_0101_0101;
const B: u64 = 0xfefe_fefe_fefe_fefe;
#[cfg(not(miri))]
const ITERS: u64 = 200_000;
#[cfg(miri)]
const ITERS: u64 = 40;

fn space_with(make: impl Fn(&Memory) -> RegionId) -> (Memory, AddressSpace) {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let r = make(&mem);
    mem.add_subregion(system, 0x1000, r).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    (mem, space)
}

/// One thread stores A and B alternately at `addr` (fixed-size stores and byte-slice writes);
/// another loads there (both ways) and must only ever see 0, A or B.
fn alternating_patterns_never_mix(space: &AddressSpace, addr: u64) {
    let attrs = MemTxAttrs::default();
    let writer = {
        let space = space.clone();
        thread::spawn(move || {
            for i in 0..ITERS {
                let v = if i % 2 == 0 { A } else { B };
                let r = if i % 4 < 2 {
                    space.store(GuestAddr(addr), v, Endianness::Little, attrs)
                } else {
                    space.write(GuestAddr(addr), &v.to_le_bytes(), attrs)
                };
                assert_eq!(r, MemTxResult::OK);
            }
        })
    };
    for i in 0..ITERS {
        let v = if i % 2 == 0 {
            let (v, r) = space.load::<u64>(GuestAddr(addr), Endianness::Little, attrs);
            assert_eq!(r, MemTxResult::OK);
            v
        } else {
            let mut b = [0u8; 8];
            assert_eq!(space.read(GuestAddr(addr), &mut b, attrs), MemTxResult::OK);
            u64::from_le_bytes(b)
        };
        assert!(v == 0 || v == A || v == B, "torn 8-byte access at {addr:#x}: {v:#018x}");
    }
    writer.join().unwrap();
}

#[test]
fn aligned_ram_accesses_do_not_tear() {
    let (_mem, space) = space_with(|m| m.ram("ram", 0x1000).unwrap());
    alternating_patterns_never_mix(&space, 0x1008);
}

#[test]
fn aligned_ram_device_accesses_do_not_tear() {
    let (_mem, space) = space_with(|m| m.ram_device("bar", 0x1000).unwrap());
    alternating_patterns_never_mix(&space, 0x1ff8);
}
