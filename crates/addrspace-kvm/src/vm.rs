//! The VM: its fd, and the listeners that keep KVM in step with the memory system.

use std::sync::{Arc, Mutex};

use addrspace::listener::{ListenerHandle, PRIORITY_ACCEL};
use addrspace::{AddressSpace, Memory};
use kvm_ioctls::{Cap, VmFd};

use crate::error::{Error, Result};
use crate::memslots::{MemSlots, SpaceKind};
use crate::system::Kvm;

/// The memslot count QEMU assumes when the kernel reports none.
const DEFAULT_MEMSLOTS: u32 = 32;

/// A KVM virtual machine (the VM fd).
///
/// ```no_run
/// use addrspace::Memory;
/// use addrspace_kvm::{Kvm, Vm};
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let ram = mem.ram("ram", 0x10_0000)?;
/// mem.add_subregion(system, 0, ram)?;
/// let memory = mem.address_space("memory", system)?;
///
/// let vm = Vm::new(&Kvm::open()?)?;
/// let slots = vm.attach_memory(&mem, &memory)?; // the view's RAM is now slot 0
/// assert_eq!(slots.slots()[0].size, 0x10_0000);
/// mem.set_address(ram, 0x20_0000)?; // one commit: delete, then add
/// assert_eq!(slots.slots()[0].gpa, 0x20_0000);
/// assert!(slots.take_errors().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Vm {
    fd: Arc<VmFd>,
    max_slots: u32,
    /// Listener registrations, dropped (slots deleted) before the fd.
    attached: Mutex<Vec<(Arc<MemSlots>, ListenerHandle)>>,
}

impl Vm {
    /// `KVM_CREATE_VM`.
    pub fn new(kvm: &Kvm) -> Result<Vm> {
        let fd = kvm.raw().create_vm().map_err(|e| Error::ioctl("KVM_CREATE_VM", e))?;
        let n = fd.check_extension_int(Cap::NrMemslots);
        let max_slots = u32::try_from(n).ok().filter(|&n| n > 0).unwrap_or(DEFAULT_MEMSLOTS);
        Ok(Vm {
            fd: Arc::new(fd),
            max_slots,
            attached: Mutex::new(Vec::new()),
        })
    }

    /// The VM fd, shared (vCPUs are created from it).
    pub fn fd(&self) -> Arc<VmFd> {
        self.fd.clone()
    }

    /// `KVM_CAP_NR_MEMSLOTS`: how many memslots the listener may use.
    pub fn max_memslots(&self) -> u32 {
        self.max_slots
    }

    /// Registers the KVM memory listener on `system`, the machine's **system** address space
    /// (QEMU's `address_space_memory`; vCPUs' own spaces are dispatched by the vCPU code, not
    /// mapped): its RAM-backed ranges become memslots at once, and follow every commit.
    /// Attach one system space per VM. The listener stays registered as long as the `Vm`.
    pub fn attach_memory(&self, mem: &Memory, system: &AddressSpace) -> Result<Arc<MemSlots>> {
        self.attach(mem, system, SpaceKind::Memory)
    }

    /// Registers a listener on a port-I/O address space: its ioeventfds become PIO
    /// `KVM_IOEVENTFD`s (QEMU's `kvm-io`). It makes no memslots.
    pub fn attach_io(&self, mem: &Memory, io: &AddressSpace) -> Result<Arc<MemSlots>> {
        self.attach(mem, io, SpaceKind::Io)
    }

    fn attach(&self, mem: &Memory, space: &AddressSpace, kind: SpaceKind) -> Result<Arc<MemSlots>> {
        let l = Arc::new(MemSlots::new(self.fd.clone(), mem.downgrade(), kind, self.max_slots));
        let handle = space.register_listener(l.clone(), PRIORITY_ACCEL)?;
        self.lock().push((l.clone(), handle));
        Ok(l)
    }

    /// The memory listener attached by [`attach_memory`](Self::attach_memory), if any.
    pub fn memslots(&self) -> Option<Arc<MemSlots>> {
        self.lock().iter().find(|(l, _)| l.is_memory()).map(|(l, _)| l.clone())
    }

    /// Unregisters every listener: memslots are deleted, ioeventfds removed.
    pub fn detach_all(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Arc<MemSlots>, ListenerHandle)>> {
        self.attached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.detach_all();
    }
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").field("max_slots", &self.max_slots).finish()
    }
}
