//! Sub-handles of [`Memory`] for what only accelerators and migration use: dirty logging,
//! ioeventfds and coalesced MMIO.
//!
//! `Memory` itself keeps what every VMM calls — the region factory, the mutators,
//! transactions, address spaces, rendering and statistics — so that its page of methods can be
//! held in mind; `mem.dirty()`, `mem.ioeventfds()` and `mem.coalescing()` group the rest by
//! concept. A handle borrows the memory system and holds nothing else: it is free to make.

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::base::addr::RegionOffset;
use crate::base::dirty::DirtyClient;
use crate::base::error::Result;
use crate::machine::memory::Memory;
use crate::model::region::RegionId;

impl Memory {
    /// Dirty logging: per-region clients, global (migration) logging, syncing with the
    /// listeners, and the dirty bitmaps.
    ///
    /// ```
    /// use addrspace::{DirtyClient, GuestAddr, MemTxAttrs, Memory};
    ///
    /// let mem = Memory::new();
    /// let sys = mem.container("system", 1 << 64)?;
    /// let ram = mem.ram("ram", 0x4000)?;
    /// mem.add_subregion(sys, 0, ram)?;
    /// let space = mem.address_space("memory", sys)?;
    /// mem.dirty().start_global()?; // migration: every RAM page is logged
    /// assert!(space.write(GuestAddr(0x1008), &[1, 2], MemTxAttrs::default()).is_ok());
    /// let pages = mem.dirty().take(ram, 0, 0x4000, DirtyClient::Migration)?;
    /// assert_eq!(pages, [0x1000]);
    /// assert!(mem.dirty().pages(ram, 0, 0x4000, DirtyClient::Migration)?.is_empty());
    /// # Ok::<(), addrspace::Error>(())
    /// ```
    pub fn dirty(&self) -> DirtyLogging<'_> {
        DirtyLogging { memory: self }
    }

    /// ioeventfds: guest writes that signal an eventfd instead of reaching a device.
    pub fn ioeventfds(&self) -> IoEventFds<'_> {
        IoEventFds { memory: self }
    }

    /// Coalesced MMIO: device ranges whose writes an accelerator may batch.
    pub fn coalescing(&self) -> Coalescing<'_> {
        Coalescing { memory: self }
    }
}

/// Dirty logging of a memory system (see [`Memory::dirty`]).
#[derive(Clone, Copy)]
pub struct DirtyLogging<'a> {
    memory: &'a Memory,
}

impl DirtyLogging<'_> {
    /// Turns dirty logging of `client` on or off for a region (counted: logging stays on
    /// until every `true` has been matched by a `false`). Listeners hear `log_start` /
    /// `log_stop` for the region's ranges at the commit.
    pub fn set(&self, region: RegionId, client: DirtyClient, on: bool) -> Result<()> {
        self.memory.set_log(region, client, on)
    }

    /// Turns CODE dirty tracking on every RAM-backed range on or off (what TCG does for
    /// self-modifying code detection).
    pub fn set_code_tracking(&self, on: bool) {
        self.memory.set_code_dirty_tracking(on)
    }

    /// Starts global dirty tracking (migration, QEMU's `memory_global_dirty_log_start`):
    /// every listener's `log_global_start` in order — if one refuses, those already started
    /// are stopped in reverse and the error returned — then one commit that adds MIGRATION
    /// to every RAM range (`log_start`).
    pub fn start_global(&self) -> Result<()> {
        self.memory.start_dirty_log()
    }

    /// Stops global dirty tracking: one commit removes MIGRATION (`log_stop`), then every
    /// listener's `log_global_stop` in reverse order.
    pub fn stop_global(&self) -> Result<()> {
        self.memory.stop_dirty_log()
    }

    /// Asks listeners to pull dirty bits (`log_sync`) for every logged range of their
    /// space, or only those of `region`.
    pub fn sync(&self, region: Option<RegionId>) {
        self.memory.log_sync(region)
    }

    /// Marks `[offset, offset + len)` of a RAM-backed region dirty for its current logging
    /// clients (what an accelerator's `log_sync` does with the bits it pulled).
    pub fn mark(&self, region: RegionId, offset: impl Into<RegionOffset>, len: u64) -> Result<()> {
        let (block, mask) = self.memory.ram_of(region)?;
        block.dirty.mark(offset.into().0, len, mask);
        Ok(())
    }

    /// Region offsets of the pages of `[offset, offset + len)` that `client` saw written.
    pub fn pages(
        &self,
        region: RegionId,
        offset: impl Into<RegionOffset>,
        len: u64,
        client: DirtyClient,
    ) -> Result<Vec<u64>> {
        let (block, _) = self.memory.ram_of(region)?;
        Ok(block.dirty.collect(offset.into().0, len, client, false))
    }

    /// Like [`pages`](Self::pages), clearing the bits it returns (atomically with respect
    /// to concurrent writers: a page written after its bit was read stays dirty).
    pub fn take(
        &self,
        region: RegionId,
        offset: impl Into<RegionOffset>,
        len: u64,
        client: DirtyClient,
    ) -> Result<Vec<u64>> {
        let (block, _) = self.memory.ram_of(region)?;
        Ok(block.dirty.collect(offset.into().0, len, client, true))
    }
}

/// The ioeventfds of a memory system (see [`Memory::ioeventfds`]).
#[derive(Clone, Copy)]
pub struct IoEventFds<'a> {
    memory: &'a Memory,
}

impl IoEventFds<'_> {
    /// Registers an ioeventfd on a region: a guest write of `size` bytes (0: any size) at
    /// region offset `offset` — with value `data`, if given, in the guest's byte order —
    /// signals `notifier`. Listeners of every space that shows the region hear
    /// `eventfd_add` with the absolute address at the commit. Software writes (through an
    /// address space, accessor or DMA) that match signal `notifier` instead of reaching the
    /// device, from this call on.
    pub fn add(
        &self,
        region: RegionId,
        offset: impl Into<RegionOffset>,
        size: u64,
        data: Option<u64>,
        notifier: Arc<EventFd>,
    ) -> Result<()> {
        self.memory
            .change_eventfd(region, offset.into().0, size, data, notifier, true)
    }

    /// Removes a registration made by [`add`](Self::add) with the same arguments.
    pub fn del(
        &self,
        region: RegionId,
        offset: impl Into<RegionOffset>,
        size: u64,
        data: Option<u64>,
        notifier: Arc<EventFd>,
    ) -> Result<()> {
        self.memory
            .change_eventfd(region, offset.into().0, size, data, notifier, false)
    }
}

/// The coalesced-MMIO ranges of a memory system (see [`Memory::coalescing`]).
#[derive(Clone, Copy)]
pub struct Coalescing<'a> {
    memory: &'a Memory,
}

impl Coalescing<'_> {
    /// Adds a coalesced-MMIO range `[offset, offset + size)` to a region; listeners of
    /// every space showing it hear `coalesced_io_add` at once (not at a commit, as in QEMU).
    pub fn add(&self, region: RegionId, offset: impl Into<RegionOffset>, size: u64) -> Result<()> {
        self.memory.change_coalescing(region, Some((offset.into().0, size)))
    }

    /// Removes all coalesced-MMIO ranges of a region; listeners hear `coalesced_io_del` for
    /// each visible one first (QEMU empties the list before notifying, so its listeners hear
    /// nothing).
    pub fn clear(&self, region: RegionId) -> Result<()> {
        self.memory.change_coalescing(region, None)
    }
}
