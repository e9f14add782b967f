//! Hand an address space's RAM to code written for rust-vmm's `vm-memory` traits.
//!
//! Builds RAM, an alias onto it at 4 GiB, a ROM and an MMIO device; lists what the
//! vm-memory view contains; moves data both ways between `vm_memory::Bytes` and the address
//! space; then hot-plugs RAM and shows that the live handle follows.
//!
//! Run with `cargo run -p addrspace --example vm_memory_interop`.

use std::sync::Arc;

use addrspace::vm_memory::GuestRamSpace;
use addrspace::{GuestAddr, MemTxAttrs, Memory, Unassigned};
use vm_memory::{Bytes, GuestAddress, GuestAddressSpace, GuestMemoryBackend, GuestMemoryRegion};

/// A generic consumer, as a virtio device or a loader would be written: it knows nothing of
/// `addrspace`, only of vm-memory's traits.
fn checksum<AS: GuestAddressSpace>(
    space: &AS,
    addr: GuestAddress,
    len: usize,
) -> Result<u32, vm_memory::GuestMemoryError> {
    let mut buf = vec![0; len];
    space.memory().read_slice(&mut buf, addr)?;
    Ok(buf.iter().map(|&b| u32::from(b)).sum())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mem = Memory::new();
    let system = mem.container("system", 1 << 64)?;
    let ram = mem.ram("pc.ram", 0x10_0000)?;
    let low = mem.alias("ram-below-4g", ram, 0, 0x8_0000)?;
    let high = mem.alias("ram-above-4g", ram, 0x8_0000, 0x8_0000)?;
    let bios = mem.rom("bios", 0x1_0000)?;
    let mmio = mem.io("mmio", 0x1000, Arc::new(Unassigned))?;
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, low)?;
        mem.add_subregion(system, 0x1_0000_0000, high)?;
        mem.add_subregion(system, 0xf_0000, bios)?;
        mem.add_subregion(system, 0xfee0_0000, mmio)?;
    }
    let space = mem.address_space("memory", system)?;

    let guest = GuestRamSpace::new(&space);
    let snapshot = guest.memory();
    println!(
        "vm-memory view of {:?} ({} regions):",
        space.name(),
        snapshot.num_regions()
    );
    for r in snapshot.iter() {
        println!("  {r:?}");
    }

    // vm-memory writes at 4 GiB land in pc.ram at 0x8_0000...
    snapshot.write_obj(0x1234_5678_u32, GuestAddress(0x1_0000_0010))?;
    let mut b = [0u8; 4];
    assert!(space
        .read(GuestAddr(0x1_0000_0010), &mut b, MemTxAttrs::default())
        .is_ok());
    println!("address space reads {:#x} at 4 GiB + 0x10", u32::from_le_bytes(b));
    // ...and address-space writes are seen by vm-memory consumers.
    assert!(space.write(GuestAddr(0x100), b"hello", MemTxAttrs::default()).is_ok());
    println!(
        "checksum of \"hello\" via vm-memory: {}",
        checksum(&guest, GuestAddress(0x100), 5)?
    );

    // MMIO is not memory: vm-memory reports an error instead of calling the device.
    println!(
        "read at MMIO: {:?}",
        snapshot.read_obj::<u32>(GuestAddress(0xfee0_0000)).err()
    );

    // Hot-plug: the live handle sees it, the old snapshot does not.
    let dimm = mem.ram("dimm0", 0x10_0000)?;
    mem.add_subregion(system, 0x2_0000_0000, dimm)?;
    let plugged = GuestAddress(0x2_0000_0000);
    let len = guest.memory().find_region(plugged).map_or(0, |r| r.len());
    println!(
        "after hot-plug: live view has {len:#x} bytes at {:#x}; old snapshot has them: {}",
        plugged.0,
        snapshot.map().address_in_range(plugged)
    );
    Ok(())
}
