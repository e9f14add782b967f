//! Dirty logging for writes made through the [`crate::io::vm_memory`] adapter.
//!
//! vm-memory lets a guest-memory region name a [`Bitmap`] type that every write through its
//! [`VolatileSlice`](::vm_memory::VolatileSlice)s reports to (`write`, `store`, `write_obj`,
//! copies into guest memory, ...). Without one, a virtio device completing a chain through
//! virtio-queue writes guest RAM behind the dirty log's back, and migration never resends the
//! buffer it filled. [`RamDirtyBitmap`] is that hook: it marks the written pages in the RAM
//! block's own dirty log, for the dirty-logging clients of the flat range the region was built
//! from — the same pages and clients an [`AddressSpace::write`](crate::AddressSpace::write)
//! of the same bytes marks.

use std::sync::Arc;

use ::vm_memory::bitmap::{Bitmap, BitmapSlice, WithBitmapSlice};

use crate::base::dirty::{DirtyClient, DirtyMask};
use crate::base::ram::RamBlock;

/// The vm-memory [`Bitmap`] of a [`GuestRamRegion`](crate::io::vm_memory::GuestRamRegion): writes
/// mark pages of its RAM block for the range's dirty-logging clients.
#[derive(Debug, Clone)]
pub struct RamDirtyBitmap {
    block: Arc<RamBlock>,
    /// Block offset of the region's first byte.
    base: u64,
    mask: DirtyMask,
}

impl RamDirtyBitmap {
    pub(crate) fn new(block: Arc<RamBlock>, base: u64, mask: DirtyMask) -> RamDirtyBitmap {
        RamDirtyBitmap { block, base, mask }
    }

    /// The clients a write marks (the range's mask when the snapshot was taken).
    pub fn mask(&self) -> DirtyMask {
        self.mask
    }
}

impl<'a> WithBitmapSlice<'a> for RamDirtyBitmap {
    type S = RamDirtySlice<'a>;
}

impl Bitmap for RamDirtyBitmap {
    fn mark_dirty(&self, offset: usize, len: usize) {
        self.slice_at(0).mark_dirty(offset, len);
    }

    fn dirty_at(&self, offset: usize) -> bool {
        self.slice_at(0).dirty_at(offset)
    }

    fn slice_at(&self, offset: usize) -> RamDirtySlice<'_> {
        RamDirtySlice {
            block: &self.block,
            base: self.base.saturating_add(offset as u64),
            mask: self.mask,
        }
    }
}

/// A [`RamDirtyBitmap`] from some offset on: what a vm-memory slice of the region carries.
#[derive(Debug, Clone, Copy)]
pub struct RamDirtySlice<'a> {
    block: &'a RamBlock,
    base: u64,
    mask: DirtyMask,
}

impl<'a> WithBitmapSlice<'a> for RamDirtySlice<'_> {
    type S = Self;
}

impl BitmapSlice for RamDirtySlice<'_> {}

impl Bitmap for RamDirtySlice<'_> {
    fn mark_dirty(&self, offset: usize, len: usize) {
        if !self.mask.is_empty() {
            // Offsets past the block (impossible for slices of a region) are clipped by the log.
            let at = self.base.saturating_add(offset as u64);
            self.block.dirty.mark(at, len as u64, self.mask);
        }
    }

    /// Whether the page of `offset` is dirty for any of the slice's clients.
    fn dirty_at(&self, offset: usize) -> bool {
        let at = self.base.saturating_add(offset as u64);
        DirtyClient::ALL
            .into_iter()
            .any(|c| self.mask.contains(c) && self.block.dirty.is_dirty(at, c))
    }

    fn slice_at(&self, offset: usize) -> Self {
        RamDirtySlice {
            base: self.base.saturating_add(offset as u64),
            ..*self
        }
    }
}
