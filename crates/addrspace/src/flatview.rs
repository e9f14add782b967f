//! Flat views: the rendered, immutable form of an address space.
//!
//! A [`FlatView`] is a sorted array of non-overlapping [`FlatRange`]s, each naming the
//! terminating region that handles it and the offset inside that region. Views are built by
//! [`crate::render`], published through `Arc`, and never change afterwards: a reader that
//! holds one sees a consistent snapshot for as long as it likes.

use std::fmt;
use std::sync::Arc;

use crate::addr::{GuestAddr, RegionOffset};
use crate::region::{Backend, Leaf, RegionId};
use crate::stats::LiveToken;

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

    /// QEMU's type word for this range in `info mtree -f` (`ram`, `rom`, `romd`, `ramd`,
    /// `i/o`).
    pub fn type_word(&self) -> &'static str {
        if self.readonly {
            return "rom";
        }
        match self.leaf.backend {
            Backend::RamDevice(_) => "ramd",
            Backend::RomDevice(..) if self.romd => "romd",
            Backend::Ram(_) => "ram",
            _ => "i/o",
        }
    }

    pub(crate) fn can_merge(&self, next: &FlatRange) -> bool {
        self.end() == u128::from(next.start)
            && Arc::ptr_eq(&self.leaf, &next.leaf)
            && u128::from(self.offset) + self.size() == u128::from(next.offset)
            && self.readonly == next.readonly
            && self.nonvolatile == next.nonvolatile
            && self.romd == next.romd
            && !self.unmergeable
            && !next.unmergeable
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

/// An immutable rendered view: what one or more address spaces currently look like.
pub struct FlatView {
    pub(crate) root: Option<RegionId>,
    pub(crate) root_name: Option<Arc<str>>,
    pub(crate) ranges: Vec<FlatRange>,
    /// The lookup index: range starts in a dense array of their own (8 bytes each), so a
    /// binary search touches a few cache lines even for 10 000+ ranges.
    pub(crate) starts: Box<[u64]>,
    pub(crate) _live: LiveToken,
}

impl FlatView {
    /// The region the view was rendered from (after QEMU's root simplification), or `None`
    /// for the shared empty view.
    pub fn root(&self) -> Option<RegionId> {
        self.root
    }
    /// Name of [`root`](Self::root).
    pub fn root_name(&self) -> Option<&str> {
        self.root_name.as_deref()
    }
    /// The ranges, sorted by address.
    pub fn ranges(&self) -> &[FlatRange] {
        &self.ranges
    }

    pub(crate) fn new(
        root: Option<RegionId>,
        root_name: Option<Arc<str>>,
        ranges: Vec<FlatRange>,
        live: LiveToken,
    ) -> FlatView {
        let starts = ranges.iter().map(|r| r.start).collect();
        FlatView {
            root,
            root_name,
            ranges,
            starts,
            _live: live,
        }
    }

    /// Index of the range containing `addr`, trying `hint` (the last hit) first.
    #[inline]
    pub(crate) fn find(&self, addr: u64, hint: usize) -> Option<usize> {
        if let Some(r) = self.ranges.get(hint) {
            if r.start <= addr && addr <= r.last {
                return Some(hint);
            }
        }
        let i = self.starts.partition_point(|&s| s <= addr).checked_sub(1)?;
        (addr <= self.ranges[i].last).then_some(i)
    }

    /// First range start above `addr` (where an unassigned hole at `addr` ends), as `u128`
    /// so that "none" is 2^64.
    pub(crate) fn next_start(&self, addr: u64) -> u128 {
        let i = self.starts.partition_point(|&s| s <= addr);
        self.starts.get(i).map_or(1 << 64, |&s| u128::from(s))
    }

    /// The range containing `addr` and the offset of `addr` inside its region.
    pub fn lookup(&self, addr: GuestAddr) -> Option<(&FlatRange, RegionOffset)> {
        let r = &self.ranges[self.find(addr.0, usize::MAX)?];
        Some((r, RegionOffset(r.offset + (addr.0 - r.start))))
    }
}

impl fmt::Debug for FlatView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatView")
            .field("root", &self.root_name)
            .field("ranges", &self.ranges)
            .finish()
    }
}
