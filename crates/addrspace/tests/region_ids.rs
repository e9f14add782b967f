//! What the docs promise about `RegionId`: an id from another `Memory` is refused (not taken
//! for this memory's region with the same slot), and a deleted region's id never names a live
//! region again.

use addrspace::{Error, Memory};

#[test]
fn an_id_from_another_memory_is_refused() {
    let a = Memory::new();
    let b = Memory::new();
    let in_a = a.ram("in-a", 0x1000).unwrap();
    let in_b = b.ram("in-b", 0x1000).unwrap();
    assert!(
        matches!(b.region_info(in_a), Err(Error::UnknownRegion(_))),
        "B took A's id for {:?}",
        b.region_info(in_a).map(|i| i.name)
    );
    let sys = b.container("system", 1 << 64).unwrap();
    assert!(matches!(b.add_subregion(sys, 0, in_a), Err(Error::UnknownRegion(_))));
    assert!(matches!(b.delete_region(in_a), Err(Error::UnknownRegion(_))));
    assert_eq!(b.region_info(in_b).unwrap().name, "in-b", "B's own region is untouched");
    assert_eq!(a.region_info(in_a).unwrap().name, "in-a");
}
