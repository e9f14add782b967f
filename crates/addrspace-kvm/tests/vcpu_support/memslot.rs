//! Stand-in for the memslot listener (the other half of issue 13): registers one RAM region
//! as a KVM memslot by hand. Swap for the listener once it is merged.

use addrspace::{Memory, RegionId};
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;

/// Registers RAM region `ram` of `mem` at `gpa` as memslot `slot`.
pub fn register_ram(vm: &VmFd, mem: &Memory, ram: RegionId, gpa: u64, slot: u32) {
    let leaf = mem.leaf(ram).unwrap().expect("a RAM region is a leaf");
    let block = leaf.backend().ram().expect("a RAM region has a RAM block").clone();
    let region = kvm_userspace_memory_region {
        slot,
        flags: 0,
        guest_phys_addr: gpa,
        memory_size: block.len() as u64,
        userspace_addr: block.host_ptr() as u64,
    };
    // SAFETY: the host range is the RAM block's whole mapping, owned by the region in `mem`;
    // the tests create the VM after the board and drop it before (reverse declaration
    // order), so the mapping outlives every guest access.
    unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
}
