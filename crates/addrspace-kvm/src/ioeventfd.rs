//! The I/O notifications of the KVM listener: ioeventfds (`KVM_IOEVENTFD`) and coalesced
//! MMIO / PIO zones (`KVM_(UN)REGISTER_COALESCED_MMIO`). Addresses are the space's: MMIO on
//! the system space, port numbers on an I/O space ([`Vm::attach_io`](crate::Vm::attach_io)).
//!
//! The coalesced ring is per vCPU (page 2 of its `kvm_run` mapping): the vCPU code drains it
//! on exits; this module only tells KVM which zones to batch.

use addrspace::listener::IoEventFd;
use kvm_ioctls::IoEventAddress;

use crate::memslots::{ioeventfd, MemSlots, SpaceKind};

impl MemSlots {
    fn address(&self, addr: u64) -> IoEventAddress {
        match self.kind {
            SpaceKind::Memory => IoEventAddress::Mmio(addr),
            SpaceKind::Io => IoEventAddress::Pio(addr),
        }
    }

    /// Assigns or removes an ioeventfd. The exact length and datamatch are passed through
    /// (kvm-ioctls' `register_ioevent` ties the length to the datamatch type, so a sized
    /// registration without datamatch needs the raw ioctl); length 0 is "any length"
    /// (`KVM_CAP_IOEVENTFD_ANY_LENGTH`).
    pub(crate) fn eventfd(&self, e: &IoEventFd, deassign: bool) {
        let mut inner = self.lock();
        inner.stats.ioeventfd += 1;
        let Ok(len) = u32::try_from(e.size) else {
            inner.fail("KVM_IOEVENTFD", vmm_sys_util::errno::Error::new(libc::EINVAL));
            return;
        };
        let pio = self.kind == SpaceKind::Io;
        if let Err(err) = ioeventfd(&self.vm, &e.notifier, e.addr, len, e.data, pio, deassign) {
            inner.fail("KVM_IOEVENTFD", err);
        }
    }

    /// Registers or unregisters a coalesced zone `[addr, addr + len)`.
    pub(crate) fn coalesced(&self, addr: u64, len: u64, add: bool) {
        let mut inner = self.lock();
        inner.stats.coalesced += 1;
        let (name, r) = match (u32::try_from(len), add) {
            (Err(_), _) => (
                "KVM_REGISTER_COALESCED_MMIO",
                Err(vmm_sys_util::errno::Error::new(libc::EINVAL)),
            ),
            (Ok(n), true) => (
                "KVM_REGISTER_COALESCED_MMIO",
                self.vm.register_coalesced_mmio(self.address(addr), n),
            ),
            (Ok(n), false) => (
                "KVM_UNREGISTER_COALESCED_MMIO",
                self.vm.unregister_coalesced_mmio(self.address(addr), n),
            ),
        };
        if let Err(e) = r {
            inner.fail(name, e);
        }
    }
}
