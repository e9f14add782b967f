//! Flat ranges: one contiguous piece of an address space handled by one terminating region,
//! with the attributes a renderer resolved for it. The unit every view, diff and listener
//! section is made of; it knows nothing of the views that hold it.

use std::fmt;
use std::sync::Arc;

use crate::base::addr::{GuestAddr, RegionOffset};
use crate::model::region::{Leaf, RegionId};

/// One contiguous piece of an address space handled by one terminating region.
#[derive(Clone)]
pub struct FlatRange {
    pub(crate) start: u64,
    /// Last address (inclusive): ranges are never empty, and this keeps 2^64-byte ranges in
    /// a `u64` (and the struct small, which the renderer's sort appreciates).
    pub(crate) last: u64,
    pub(crate) offset: u64,
    pub(crate) leaf: Arc<Leaf>,
    pub(crate) priority: i32,
    pub(crate) readonly: bool,
    pub(crate) nonvolatile: bool,
    pub(crate) unmergeable: bool,
    pub(crate) romd: bool,
    /// Effective dirty-logging clients of the region when rendered.
    pub(crate) dirty: crate::base::dirty::DirtyMask,
}

impl FlatRange {
    /// First guest address of the range.
    pub fn start(&self) -> GuestAddr {
        GuestAddr(self.start)
    }
    /// Length in bytes (never zero; up to 2^64).
    pub fn size(&self) -> u128 {
        u128::from(self.last - self.start) + 1
    }
    /// One past the last address, as a `u128` so that 2^64 is representable.
    pub fn end(&self) -> u128 {
        u128::from(self.last) + 1
    }

    /// Last address of the range (inclusive).
    pub fn last(&self) -> GuestAddr {
        GuestAddr(self.last)
    }
    /// Offset of [`start`](Self::start) inside the terminating region.
    pub fn offset_in_region(&self) -> RegionOffset {
        RegionOffset(self.offset)
    }
    /// The terminating region.
    pub fn region(&self) -> RegionId {
        self.leaf.id
    }
    /// Its name.
    pub fn name(&self) -> &str {
        &self.leaf.name
    }
    /// The reader-side half of the region (RAM block or ops).
    pub fn leaf(&self) -> &Arc<Leaf> {
        &self.leaf
    }
    /// The region's own priority (as printed by `info mtree -f`).
    pub fn priority(&self) -> i32 {
        self.priority
    }
    /// Read-only through this range (the region's or any enclosing alias's flag).
    pub fn readonly(&self) -> bool {
        self.readonly
    }
    /// Non-volatile.
    pub fn nonvolatile(&self) -> bool {
        self.nonvolatile
    }
    /// Never merged with neighbours.
    pub fn unmergeable(&self) -> bool {
        self.unmergeable
    }
    /// romd mode of the region when rendered.
    pub fn romd(&self) -> bool {
        self.romd
    }
    /// Dirty-logging clients of the region when rendered (QEMU's `dirty_log_mask`).
    pub fn dirty_log_mask(&self) -> crate::base::dirty::DirtyMask {
        self.dirty
    }

    /// QEMU's type word for this range in `info mtree -f` (`ram`, `rom`, `romd`, `ramd`,
    /// `i/o`).
    pub fn type_word(&self) -> &'static str {
        if self.readonly {
            return "rom";
        }
        self.leaf.backend.type_word(self.romd, false)
    }

    pub(crate) fn can_merge(&self, next: &FlatRange) -> bool {
        self.continues_into(next) && !self.unmergeable && !next.unmergeable
    }

    /// Whether `next` continues this range: adjacent, same region, contiguous offsets, same
    /// attributes (what merging needs, apart from the unmergeable flag).
    pub(crate) fn continues_into(&self, next: &FlatRange) -> bool {
        self.end() == u128::from(next.start)
            && Arc::ptr_eq(&self.leaf, &next.leaf)
            && u128::from(self.offset) + self.size() == u128::from(next.offset)
            && self.readonly == next.readonly
            && self.nonvolatile == next.nonvolatile
            && self.romd == next.romd
            && self.unmergeable == next.unmergeable
    }
}

impl PartialEq for FlatRange {
    /// QEMU's `flatrange_equal`: same region, range, offset and attributes.
    fn eq(&self, o: &FlatRange) -> bool {
        Arc::ptr_eq(&self.leaf, &o.leaf)
            && self.start == o.start
            && self.last == o.last
            && self.offset == o.offset
            && self.readonly == o.readonly
            && self.nonvolatile == o.nonvolatile
            && self.unmergeable == o.unmergeable
            && self.romd == o.romd
    }
}

impl Eq for FlatRange {}

impl fmt::Debug for FlatRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:#x}, {:#x}) {} {} @{:#x}",
            self.start,
            self.end(),
            self.type_word(),
            self.leaf.name,
            self.offset
        )
    }
}
