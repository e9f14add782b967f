//! Memory listeners: how accelerators, TLBs and device back-ends follow an address space.
//!
//! A [`MemoryListener`] is registered on one address space with a priority
//! ([`AddressSpace::register_listener`](crate::AddressSpace::register_listener)) and hears,
//! with QEMU's callbacks and QEMU's order, every change of that space's flat view: within a
//! commit, deletions first (highest priority first), then additions and unchanged ranges in
//! address order (lowest priority first), all bracketed by `begin`/`commit`. A change of
//! attributes is a deletion plus an addition, never an update in place.
//!
//! Unlike QEMU, a commit only calls the listeners of address spaces whose view changed — not
//! even `begin`/`commit` elsewhere — so a BAR move no longer flushes every CPU's TLB.
//! `region_nop` costs a call per unchanged range per commit, so it is delivered only to
//! listeners that ask for it ([`MemoryListener::wants_region_nop`]).
//!
//! Callbacks run on the committing thread with the topology lock held. They may read guest
//! memory and query the memory system, but not change its topology (that returns
//! [`Error::InListener`](crate::Error::InListener)).

use std::fmt;
use std::sync::{Arc, Weak};

use crate::base::addr::{GuestAddr, RegionOffset};
use crate::base::dirty::DirtyMask;
pub use crate::base::ioeventfd::IoEventFd;
use crate::base::ram::RamBlock;
use crate::model::region::RegionId;
use crate::view::flatview::FlatRange;

/// The lowest listener priority (QEMU's `MEMORY_LISTENER_PRIORITY_MIN`).
pub const PRIORITY_MIN: u32 = 0;
/// Accelerators (QEMU's `MEMORY_LISTENER_PRIORITY_ACCEL`).
pub const PRIORITY_ACCEL: u32 = 10;
/// Device back-ends such as vhost (QEMU's `MEMORY_LISTENER_PRIORITY_DEV_BACKEND`).
pub const PRIORITY_DEV_BACKEND: u32 = 10;

/// A listener refused to start global dirty tracking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ListenerRefused(pub String);

/// Receives an address space's changes. Every callback has a no-op default.
pub trait MemoryListener: Send + Sync {
    /// A name for diagnostics.
    fn name(&self) -> &str {
        "listener"
    }
    /// Whether [`region_nop`](Self::region_nop) should be called for every unchanged range
    /// of a changed view (QEMU calls it always; it costs one call per range per commit).
    /// Asked once, at registration.
    fn wants_region_nop(&self) -> bool {
        false
    }
    /// Whether the listener takes per-range calls at all (region, logging, coalesced MMIO
    /// and ioeventfd callbacks). A listener that only needs to know *that* a space changed —
    /// a TCG TLB flushing on `commit` — returns `false`: it then hears only `begin`, `commit`
    /// and the global dirty-logging calls, and registering or unregistering it replays
    /// nothing (O(1) instead of a call per range of the view). Asked once, at registration.
    fn wants_sections(&self) -> bool {
        true
    }
    /// A commit (or a registration replay) starts.
    fn begin(&self) {}
    /// A commit ends; the new view is published.
    fn commit(&self) {}
    /// A range appeared (or changed: after its deletion).
    fn region_add(&self, _section: &Section<'_>) {}
    /// A range disappeared (or changed: before its addition).
    fn region_del(&self, _section: &Section<'_>) {}
    /// A range is unchanged (only if [`wants_region_nop`](Self::wants_region_nop)).
    fn region_nop(&self, _section: &Section<'_>) {}
    /// An unchanged range gained dirty-logging clients.
    fn log_start(&self, _section: &Section<'_>, _old: DirtyMask, _new: DirtyMask) {}
    /// An unchanged range lost dirty-logging clients.
    fn log_stop(&self, _section: &Section<'_>, _old: DirtyMask, _new: DirtyMask) {}
    /// Pull dirty bits for a logged range into the memory system
    /// ([`DirtyLogging::mark`](crate::DirtyLogging::mark)).
    fn log_sync(&self, _section: &Section<'_>) {}
    /// Global dirty tracking starts; an error cancels the start.
    fn log_global_start(&self) -> Result<(), ListenerRefused> {
        Ok(())
    }
    /// Global dirty tracking stops.
    fn log_global_stop(&self) {}
    /// An ioeventfd became visible at an absolute address of the space.
    fn eventfd_add(&self, _eventfd: &IoEventFd) {}
    /// An ioeventfd is no longer visible.
    fn eventfd_del(&self, _eventfd: &IoEventFd) {}
    /// A coalesced-MMIO range `[addr, addr + len)` became visible inside `section`.
    fn coalesced_io_add(&self, _section: &Section<'_>, _addr: GuestAddr, _len: u64) {}
    /// A coalesced-MMIO range is no longer visible.
    fn coalesced_io_del(&self, _section: &Section<'_>, _addr: GuestAddr, _len: u64) {}
}

/// One range of an address space as a listener sees it (QEMU's `MemoryRegionSection`).
/// It borrows from the view being delivered; keep [`flat_range`](Self::flat_range)`.clone()`
/// (or the fields you need) to remember it.
#[derive(Clone, Copy)]
pub struct Section<'a> {
    pub(crate) space: &'a str,
    pub(crate) space_id: u64,
    pub(crate) range: &'a FlatRange,
}

impl<'a> Section<'a> {
    /// Name of the address space.
    pub fn space_name(&self) -> &'a str {
        self.space
    }
    /// Identity of the address space (unique within its memory system, never reused).
    pub fn space_id(&self) -> u64 {
        self.space_id
    }
    /// The terminating region.
    pub fn region(&self) -> RegionId {
        self.range.region()
    }
    /// The region's name.
    pub fn name(&self) -> &'a str {
        self.range.name()
    }
    /// First address in the space.
    pub fn start(&self) -> GuestAddr {
        self.range.start()
    }
    /// Length (up to 2^64).
    pub fn size(&self) -> u128 {
        self.range.size()
    }
    /// Offset of `start` inside the region.
    pub fn offset_in_region(&self) -> RegionOffset {
        self.range.offset_in_region()
    }
    /// Read-only through this range.
    pub fn readonly(&self) -> bool {
        self.range.readonly()
    }
    /// Non-volatile.
    pub fn nonvolatile(&self) -> bool {
        self.range.nonvolatile()
    }
    /// romd mode of a ROM device.
    pub fn romd(&self) -> bool {
        self.range.romd()
    }
    /// Dirty-logging clients.
    pub fn dirty_log_mask(&self) -> DirtyMask {
        self.range.dirty_log_mask()
    }
    /// The RAM block behind the range (RAM, ROM, RAM devices, ROM devices).
    pub fn ram_block(&self) -> Option<&'a Arc<RamBlock>> {
        self.range.leaf().backend().ram()
    }
    /// Host address of `start` for RAM-backed ranges (what KVM's memslots take).
    pub fn host_addr(&self) -> Option<*mut u8> {
        let block = self.ram_block()?;
        let off = usize::try_from(self.range.offset_in_region().0).ok()?;
        (off <= block.len()).then(|| block.host_ptr().wrapping_add(off))
    }
    /// The flat range itself.
    pub fn flat_range(&self) -> &'a FlatRange {
        self.range
    }
}

impl fmt::Debug for Section<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.space, self.range)
    }
}

/// A listener registered on one space.
#[derive(Clone)]
pub(crate) struct Registered {
    /// Registration number: the order among equal priorities.
    pub id: u64,
    pub priority: u32,
    pub listener: Arc<dyn MemoryListener>,
    /// The listener's `wants_sections()`, asked once.
    pub sections: bool,
    /// The listener's `wants_region_nop()`, asked once.
    pub nop: bool,
}

/// What a [`ListenerHandle`] calls when dropped: the memory system it registered with
/// (implemented by the writer's shared state, above this module; the handle holds it weakly,
/// so a handle outliving its memory system does nothing).
pub(crate) trait Unregister: Send + Sync {
    /// Unregisters listener `id`, replaying its space's view as deletions.
    fn unregister(&self, id: u64);
}

/// A registration; dropping it unregisters the listener (replaying the view as deletions).
#[must_use = "dropping the handle unregisters the listener"]
pub struct ListenerHandle {
    pub(crate) memory: Weak<dyn Unregister>,
    pub(crate) id: u64,
}

impl ListenerHandle {
    /// Unregisters now (same as dropping the handle).
    pub fn unregister(self) {}
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        if let Some(shared) = self.memory.upgrade() {
            shared.unregister(self.id);
        }
    }
}

impl fmt::Debug for ListenerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListenerHandle({})", self.id)
    }
}
