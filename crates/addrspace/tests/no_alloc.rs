//! Proof that the RAM fast path allocates nothing: a counting global allocator, and
//! thousands of RAM loads, stores and byte-slice copies through an `Accessor` and through
//! `AddressSpace` methods with the allocation count unchanged.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, SIZE_2_64};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts calls on this thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn ram_accesses_do_not_allocate() {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let mut addr = 0;
    for i in 0..64 {
        let r = mem.ram(&format!("ram{i}"), 0x10000).unwrap();
        mem.add_subregion(system, addr, r).unwrap();
        addr += 0x20000;
    }
    let space = mem.address_space("memory", system).unwrap();
    let mut cpu = space.accessor();
    let a = MemTxAttrs::default();
    let le = Endianness::Little;
    let be = Endianness::Big;
    let mut buf = [0u8; 4096];
    // Warm up (first-touch page faults do not allocate either, but keep the loop clean).
    assert_eq!(cpu.read(GuestAddr(0), &mut buf, a), MemTxResult::OK);

    let before = allocations();
    let mut sum = 0u64;
    for i in 0..20_000u64 {
        let at = GuestAddr((i % 64) * 0x20000 + (i * 8) % 0xff00);
        assert_eq!(cpu.store(at, i, le, a), MemTxResult::OK);
        sum = sum.wrapping_add(cpu.load::<u64>(at, le, a).0);
        sum = sum.wrapping_add(u64::from(cpu.load::<u32>(at, be, a).0));
        sum = sum.wrapping_add(u64::from(cpu.load::<u16>(at, le, a).0));
        sum = sum.wrapping_add(u64::from(cpu.load::<u8>(at, le, a).0));
        assert!(cpu.store(at, i as u32, be, a).is_ok());
        assert!(cpu.store(at, i as u16, le, a).is_ok());
        assert!(cpu.store(at, i as u8, le, a).is_ok());
        if i % 16 == 0 {
            assert_eq!(cpu.read(at, &mut buf[..256], a), MemTxResult::OK);
            assert_eq!(cpu.write(at, &buf[..256], a), MemTxResult::OK);
            sum = sum.wrapping_add(space.load::<u32>(at, le, a).0.into());
            assert!(space.store(at, 7u32, le, a).is_ok());
        }
    }
    let after = allocations();
    assert_ne!(sum, 0);
    assert_eq!(
        after - before,
        0,
        "the RAM fast path allocated {} times",
        after - before
    );

    // The counter does count: creating a region allocates.
    let _r = mem.ram("one-more", 0x1000).unwrap();
    assert!(allocations() > after);
}
