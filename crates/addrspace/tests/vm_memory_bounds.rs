//! The vm-memory adapter refuses accesses that run past the top of the address space, as
//! `AddressSpace::read`/`write` do (vm-memory's own region walk would continue at address 0).

use addrspace::vm_memory::GuestRamSpace;
use addrspace::{GuestAddr, MemTxAttrs, MemTxResult, Memory};
use vm_memory::{Bytes, GuestAddress, GuestAddressSpace, GuestMemory, GuestMemoryBackend, Permissions};

#[test]
fn an_access_across_the_top_of_the_address_space_is_refused() {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64).unwrap();
    let low = mem.ram("low", 0x1000).unwrap();
    let top = mem.ram("top", 0x1000).unwrap();
    mem.add_subregion(system, 0, low).unwrap();
    mem.add_subregion(system, u64::MAX - 0xfff, top).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    let guest = GuestRamSpace::new(&space).memory();
    let at = GuestAddress(u64::MAX - 3);

    // AddressSpace::write refuses the bytes past 2^64.
    assert_ne!(
        space.write(GuestAddr(at.0), &[1; 8], MemTxAttrs::default()),
        MemTxResult::OK
    );
    assert!(!GuestMemory::check_range(&*guest, at, 8, Permissions::Write));
    assert!(!GuestMemoryBackend::check_range(guest.map(), at, 8));
    assert!(guest.write_slice(&[0xee; 8], at).is_err());
    assert!(guest.write_obj(u64::MAX, at).is_err());
    let mut low_bytes = [0xffu8; 4];
    assert_eq!(
        space.read(GuestAddr(0), &mut low_bytes, MemTxAttrs::default()),
        MemTxResult::OK
    );
    assert_eq!(
        low_bytes, [0; 4],
        "guest address 0 must not be written by a wrapped access"
    );
    // An access that ends exactly at 2^64 is fine.
    assert!(GuestMemory::check_range(&*guest, at, 4, Permissions::Write));
    guest.write_slice(&[9; 4], at).unwrap();
    assert_eq!(guest.read_obj::<u32>(at).unwrap(), 0x0909_0909);
}
