//! The crate's memslot and ioeventfd `unsafe`: `KVM_SET_USER_MEMORY_REGION` behind an owning
//! [`Mapping`] (the host memory a slot points at lives as long as the slot), the raw
//! `KVM_IOEVENTFD` ioctl and the host page size.

use std::os::fd::AsRawFd;
use std::sync::Arc;

use addrspace::ram::RamBlock;
use kvm_bindings::{kvm_ioeventfd, kvm_userspace_memory_region, KVMIO};
use kvm_ioctls::VmFd;
use vmm_sys_util::errno;
use vmm_sys_util::eventfd::EventFd;

vmm_sys_util::ioctl_iow_nr!(KVM_IOEVENTFD, KVMIO, 0x79, kvm_ioeventfd);

/// The host page size (what memslots are aligned to).
pub(crate) fn host_page_size() -> u64 {
    // SAFETY: sysconf takes no pointer and only reads a constant of the system.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
}

/// A registered memslot. It owns a reference to the RAM block it maps, so the host memory
/// KVM points at cannot be unmapped (and reused) while the slot exists; dropping it deletes
/// the slot.
pub(crate) struct Mapping {
    vm: Arc<VmFd>,
    slot: u32,
    gpa: u64,
    size: u64,
    host: u64,
    flags: u32,
    block: Arc<RamBlock>,
    live: bool,
}

impl Mapping {
    /// Registers `size` bytes of `block` at `offset` as slot `slot` at `gpa`. Fails with
    /// EINVAL without an ioctl when the range is not inside the block.
    pub(crate) fn new(
        vm: Arc<VmFd>,
        slot: u32,
        gpa: u64,
        block: Arc<RamBlock>,
        offset: u64,
        size: u64,
        flags: u32,
    ) -> Result<Mapping, errno::Error> {
        let inside = offset
            .checked_add(size)
            .is_some_and(|end| end <= block.len() as u64 && size > 0);
        if !inside {
            return Err(errno::Error::new(libc::EINVAL));
        }
        let host = block.host_ptr() as u64 + offset;
        let mut m = Mapping {
            vm,
            slot,
            gpa,
            size,
            host,
            flags,
            block,
            live: false,
        };
        m.set(m.size, m.flags)?;
        m.live = true;
        Ok(m)
    }

    fn set(&self, size: u64, flags: u32) -> Result<(), errno::Error> {
        let region = kvm_userspace_memory_region {
            slot: self.slot,
            flags,
            guest_phys_addr: self.gpa,
            memory_size: size,
            userspace_addr: self.host,
        };
        // SAFETY: `[host, host + size)` lies inside `self.block` (checked in `new`), a live
        // mapping that `self` keeps referenced until the slot is deleted (size 0, which
        // passes no memory) or, if deletion fails, forever (see `Drop`).
        unsafe { self.vm.set_user_memory_region(region) }
    }

    /// Re-registers the slot with new flags (only `KVM_MEM_LOG_DIRTY_PAGES` may change).
    pub(crate) fn set_flags(&mut self, flags: u32) -> Result<(), errno::Error> {
        self.set(self.size, flags)?;
        self.flags = flags;
        Ok(())
    }

    pub(crate) fn slot(&self) -> u32 {
        self.slot
    }
    pub(crate) fn gpa(&self) -> u64 {
        self.gpa
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    pub(crate) fn host(&self) -> u64 {
        self.host
    }
    pub(crate) fn flags(&self) -> u32 {
        self.flags
    }

    /// Deletes the slot.
    pub(crate) fn unmap(mut self) -> Result<(), errno::Error> {
        self.delete()
    }

    fn delete(&mut self) -> Result<(), errno::Error> {
        if !self.live {
            return Ok(());
        }
        self.live = false;
        let r = self.set(0, 0);
        if r.is_err() {
            // KVM may still point at the block: never unmap it.
            std::mem::forget(self.block.clone());
        }
        r
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Err(e) = self.delete() {
            tracing::error!(slot = self.slot, %e, "KVM_SET_USER_MEMORY_REGION (delete) failed; the block is leaked");
        }
    }
}

/// `KVM_IOEVENTFD`: assigns (or, with `deassign`, removes) `fd` for writes of `len` bytes
/// (0: any length) at `addr`, with `data` if given, in port space if `pio`.
pub(crate) fn ioeventfd(
    vm: &VmFd,
    fd: &EventFd,
    addr: u64,
    len: u32,
    data: Option<u64>,
    pio: bool,
    deassign: bool,
) -> Result<(), errno::Error> {
    let mut flags = 0;
    if data.is_some() {
        flags |= 1 << kvm_bindings::kvm_ioeventfd_flag_nr_datamatch;
    }
    if pio {
        flags |= 1 << kvm_bindings::kvm_ioeventfd_flag_nr_pio;
    }
    if deassign {
        flags |= 1 << kvm_bindings::kvm_ioeventfd_flag_nr_deassign;
    }
    let req = kvm_ioeventfd {
        datamatch: data.unwrap_or(0),
        addr,
        len,
        fd: fd.as_raw_fd(),
        flags,
        ..Default::default()
    };
    // SAFETY: `vm` is a VM fd; the kernel reads exactly one `kvm_ioeventfd` from a reference
    // that is valid for the call, and the result is checked.
    let ret = unsafe { vmm_sys_util::ioctl::ioctl_with_ref(vm, KVM_IOEVENTFD(), &req) };
    if ret == 0 {
        Ok(())
    } else {
        Err(errno::Error::last())
    }
}
