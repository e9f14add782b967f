//! vm-memory 0.18 interop: `GuestRam` / `GuestRamSpace` against `AddressSpace` reads and
//! writes, and a real consumer (a virtio-queue 0.18 split queue) walking guest RAM.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use addrspace::vm_memory::{GuestRam, GuestRamSpace};
use addrspace::{AddressSpace, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionOps};
use virtio_queue::desc::split::Descriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{
    ByteValued, Bytes, GuestAddress, GuestAddressSpace, GuestMemory, GuestMemoryBackend, GuestMemoryError,
    GuestMemoryRegion, Permissions,
};

mod helpers;
mod lifetime;
mod snapshot;
mod virtqueue;
use helpers::*;
