//! Flat views: the rendered, immutable form of an address space.
//!
//! A [`FlatView`] is a sorted sequence of non-overlapping [`FlatRange`]s, each naming the
//! terminating region that handles it and the offset inside that region. Views are built by
//! `render`, published through `Arc`, and never change afterwards: a reader that
//! holds one sees a consistent snapshot for as long as it likes.
//!
//! Most views store their ranges in one array. A view of a per-CPU root that shows a shared
//! view whole with a few private regions over it (an M-profile CPU's NVIC over system memory)
//! is *layered* instead: it stores only the ranges of its private windows and borrows the
//! rest from the shared view (`layer.rs`), so a thousand such CPUs do not cost a
//! thousand copies of the system view. [`FlatView::ranges`] hides the difference.

use std::fmt;
use std::sync::Arc;

use crate::base::addr::{GuestAddr, RegionOffset};
use crate::base::stats::LiveToken;
use crate::model::region::{Leaf, RegionId};
use crate::view::layer::{Hit, Layer};

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

/// An immutable rendered view: what one or more address spaces currently look like.
pub struct FlatView {
    pub(crate) root: Option<RegionId>,
    pub(crate) root_name: Option<Arc<str>>,
    /// The ranges this view stores: all of them, or for a layered view those of its windows.
    pub(crate) ranges: Vec<FlatRange>,
    /// Range starts in a dense array of their own (8 bytes each).
    pub(crate) starts: Box<[u64]>,
    /// The lookup index over `starts`.
    pub(crate) index: Buckets,
    /// The shared view this one borrows its ranges outside its windows from, if layered.
    pub(crate) layer: Option<Box<Layer>>,
    pub(crate) _live: LiveToken,
}

/// The last range a reader hit (QEMU's MRU section), kept by the reader. Only the index is
/// kept: storing the range's bounds too would make every random lookup wait for the previous
/// one's store (measured: 10.4 ns instead of 7 ns per random lookup with 64 ranges). Only
/// valid for the view it was filled from: reset it with [`Mru::EMPTY`] when the view changes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mru {
    /// An index into the view's own ranges, or [`Mru::BASE`] + an index into a layered view's
    /// base ranges.
    pub(crate) index: usize,
}

impl Mru {
    /// Matches no range.
    pub const EMPTY: Mru = Mru { index: usize::MAX };
    /// Tag of indices into a layered view's base (never a valid own index).
    pub(crate) const BASE: usize = 1 << (usize::BITS - 1);
}

/// One run of consecutive buckets with the same candidate window, for `info mtree -f -d`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BucketRun {
    /// First bucket of the run.
    pub first_bucket: usize,
    /// Last bucket of the run.
    pub last_bucket: usize,
    /// Candidate ranges (indices into the view's ranges): `lo..=hi`, or none if `lo > hi`.
    pub lo: usize,
    /// See `lo`.
    pub hi: usize,
}

/// A description of a view's lookup index (see [`FlatView::index_summary`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexSummary {
    /// First address covered.
    #[serde(serialize_with = "crate::io::mtree::hex")]
    pub base: u64,
    /// Last address covered.
    #[serde(serialize_with = "crate::io::mtree::hex")]
    pub top: u64,
    /// log2 of the bucket size.
    pub bucket_bits: u32,
    /// Number of buckets.
    pub buckets: usize,
    /// The buckets, run-length encoded.
    pub runs: Vec<BucketRun>,
    /// Whether the view is layered: it stores only the ranges of `windows` and borrows the
    /// rest from a shared view, whose buckets these are.
    pub layered: bool,
    /// For a layered view, its private windows (first, last address).
    pub windows: Vec<(u64, u64)>,
}

/// A bucketed lookup index. The span from the first range start to the last range end is
/// cut into `2^k` equal buckets (about two per range); `first[b]` counts the ranges that
/// start before bucket `b`. The range holding an address of bucket `b` is then among
/// `starts[first[b] - 1 ..= first[b + 1] - 1]` — usually one to three entries, whatever the
/// number of ranges — so a lookup is a shift, two adjacent loads and a short scan. A layout
/// that crowds many ranges into one bucket degrades to a binary search in that bucket.
pub(crate) struct Buckets {
    base: u64,
    /// Last address covered (inclusive).
    top: u64,
    shift: u32,
    first: Box<[u32]>,
}

impl Buckets {
    fn new(ranges: &[FlatRange], starts: &[u64]) -> Buckets {
        let (Some(f), Some(l)) = (ranges.first(), ranges.last()) else {
            return Buckets {
                base: 1,
                top: 0,
                shift: 0,
                first: Box::new([0, 0]),
            };
        };
        let (base, top) = (f.start, l.last);
        let span = u128::from(top - base) + 1;
        let want = (2 * ranges.len()).next_power_of_two().clamp(2, 1 << 20) as u128;
        // Smallest shift that fits the span into `want` buckets.
        let mut shift = 0;
        while (span >> shift) > want {
            shift += 1;
        }
        let buckets = ((span - 1) >> shift) as usize + 1;
        // `first[b]` counts the starts before bucket `b`, i.e. the starts whose bucket is
        // below `b`: count the starts per bucket, then take prefix sums.
        let mut first = vec![0u32; buckets + 1];
        for &s in starts {
            first[((s - base) >> shift) as usize + 1] += 1;
        }
        for b in 1..=buckets {
            first[b] += first[b - 1];
        }
        Buckets {
            base,
            top,
            shift,
            first: first.into_boxed_slice(),
        }
    }
}

impl FlatView {
    /// The region the view was rendered from (after QEMU's root simplification), or `None`
    /// for the shared empty view. Structurally identical roots (per-CPU SMM containers, say)
    /// share one view in scoped commit mode; it names the root it was rendered from, which
    /// may since have been replaced by an identical one (`info mtree -f` prints each space's
    /// own physical root).
    pub fn root(&self) -> Option<RegionId> {
        self.root
    }
    /// Name of [`root`](Self::root).
    pub fn root_name(&self) -> Option<&str> {
        self.root_name.as_deref()
    }
    /// The ranges, sorted by address.
    pub fn ranges(&self) -> Ranges<'_> {
        match &self.layer {
            None => Ranges::Slice(&self.ranges),
            Some(_) => Ranges::Layered(self),
        }
    }

    /// For a layered view, the shared view it shows outside its private windows (see the
    /// module documentation); `None` for a view that stores all its ranges.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use addrspace::{GuestAddr, Memory, Unassigned, SIZE_2_64};
    ///
    /// let mem = Memory::new();
    /// let system = mem.container("system", SIZE_2_64)?;
    /// for i in 0..32u64 {
    ///     let dev = mem.io(&format!("uart{i}"), 0x1000, Arc::new(Unassigned))?;
    ///     mem.add_subregion(system, 0x4000_0000 + i * 0x1000, dev)?;
    /// }
    /// let memory = mem.address_space("memory", system)?;
    /// // An M-profile CPU: its NVIC over an alias of system memory.
    /// let cpu = mem.container("armv7m-container", SIZE_2_64)?;
    /// let sys = mem.alias("system-0", system, 0, SIZE_2_64)?;
    /// let nvic = mem.io("nvic-0", 0x1000, Arc::new(Unassigned))?;
    /// mem.add_subregion_overlap(cpu, 0, sys, -1)?;
    /// mem.add_subregion(cpu, 0xe000_e000, nvic)?;
    /// let cpu0 = mem.address_space("cpu-memory-0", cpu)?;
    ///
    /// let view = cpu0.view();
    /// assert!(Arc::ptr_eq(view.base().unwrap(), &memory.view()));
    /// assert_eq!((view.ranges().len(), view.own_ranges()), (33, 1));
    /// assert_eq!(cpu0.lookup(GuestAddr(0x4000_1004)).unwrap().0.name(), "uart1");
    /// assert_eq!(cpu0.lookup(GuestAddr(0xe000_e004)).unwrap().0.name(), "nvic-0");
    /// # Ok::<(), addrspace::Error>(())
    /// ```
    pub fn base(&self) -> Option<&Arc<FlatView>> {
        self.layer.as_ref().map(|l| l.base())
    }

    /// How many ranges this view stores itself: all of them, or for a layered view only
    /// those of its private windows.
    pub fn own_ranges(&self) -> usize {
        self.ranges.len()
    }

    pub(crate) fn new(
        root: Option<RegionId>,
        root_name: Option<Arc<str>>,
        ranges: Vec<FlatRange>,
        live: LiveToken,
    ) -> FlatView {
        Self::with_layer(root, root_name, ranges, None, live)
    }

    pub(crate) fn with_layer(
        root: Option<RegionId>,
        root_name: Option<Arc<str>>,
        ranges: Vec<FlatRange>,
        layer: Option<Box<Layer>>,
        live: LiveToken,
    ) -> FlatView {
        // Views live long and splices leave spare room: keep exactly what is needed.
        let mut ranges = ranges;
        ranges.shrink_to_fit();
        let starts: Box<[u64]> = ranges.iter().map(|r| r.start).collect();
        let index = Buckets::new(&ranges, &starts);
        FlatView {
            root,
            root_name,
            ranges,
            starts,
            index,
            layer,
            _live: live,
        }
    }

    /// Index of the own range containing `addr`, through the bucket index (for a layered
    /// view, only addresses inside its windows have one).
    #[inline]
    pub(crate) fn search(&self, addr: u64) -> Option<usize> {
        let ix = &self.index;
        if addr < ix.base || addr > ix.top {
            return None;
        }
        let b = ((addr - ix.base) >> ix.shift) as usize;
        // The candidate is the last range starting at or before `addr`: at least the one
        // before this bucket's first (which starts before the bucket, so before `addr`), at
        // most the one before the next bucket's first.
        let lo = (ix.first[b] as usize).saturating_sub(1);
        let hi = ix.first[b + 1] as usize;
        let i = if hi - lo <= 2 {
            // One or two candidates (the usual case): pick without a loop.
            let top = hi.max(1) - 1;
            top - usize::from(self.starts[top] > addr)
        } else {
            lo + self.starts[lo..hi].partition_point(|&s| s <= addr) - 1
        };
        (addr <= self.ranges[i].last).then_some(i)
    }

    /// The range containing `addr`, trying the last hit first and remembering this one.
    #[inline]
    pub(crate) fn find(&self, addr: u64, mru: &mut Mru) -> Option<&FlatRange> {
        if let Some(r) = self.ranges.get(mru.index) {
            if r.start <= addr && addr <= r.last {
                return Some(r);
            }
        }
        if let Some(layer) = &self.layer {
            return layer.find(self, addr, mru);
        }
        let i = self.search(addr)?;
        mru.index = i;
        Some(&self.ranges[i])
    }

    /// The range containing `addr`, without a last-hit cache.
    pub(crate) fn locate(&self, addr: u64) -> Option<&FlatRange> {
        match &self.layer {
            None => self.search(addr).map(|i| &self.ranges[i]),
            Some(layer) => match layer.search(self, addr)? {
                Hit::Own(i) => Some(&self.ranges[i]),
                Hit::Base(j) => Some(&layer.base().ranges[j]),
            },
        }
    }

    /// First range start above `addr` (where an unassigned hole at `addr` ends), as `u128`
    /// so that "none" is 2^64.
    pub(crate) fn next_start(&self, addr: u64) -> u128 {
        let i = self.starts.partition_point(|&s| s <= addr);
        let own = self.starts.get(i).map_or(1 << 64, |&s| u128::from(s));
        match &self.layer {
            None => own,
            Some(layer) => own.min(layer.next_base_start(addr)),
        }
    }

    /// The lookup index, for diagnostics (`addrspace mtree -f -d`); `None` for an empty view.
    /// A layered view describes its base view's index and lists its own windows.
    pub fn index_summary(&self) -> Option<IndexSummary> {
        if let Some(layer) = &self.layer {
            let mut s = layer.base().index_summary().unwrap_or(IndexSummary {
                base: 1,
                top: 0,
                bucket_bits: 0,
                buckets: 0,
                runs: Vec::new(),
                layered: true,
                windows: Vec::new(),
            });
            s.layered = true;
            s.windows = layer.windows().collect();
            return Some(s);
        }
        if self.ranges.is_empty() {
            return None;
        }
        let ix = &self.index;
        let buckets = ix.first.len() - 1;
        let mut runs: Vec<BucketRun> = Vec::new();
        for b in 0..buckets {
            let lo = (ix.first[b] as usize).saturating_sub(1);
            let hi = (ix.first[b + 1] as usize).saturating_sub(1);
            match runs.last_mut() {
                Some(r) if (r.lo, r.hi) == (lo, hi) => r.last_bucket = b,
                _ => runs.push(BucketRun {
                    first_bucket: b,
                    last_bucket: b,
                    lo,
                    hi,
                }),
            }
        }
        Some(IndexSummary {
            base: ix.base,
            top: ix.top,
            bucket_bits: ix.shift,
            buckets,
            runs,
            layered: false,
            windows: Vec::new(),
        })
    }

    /// The range containing `addr` and the offset of `addr` inside its region.
    pub fn lookup(&self, addr: GuestAddr) -> Option<(&FlatRange, RegionOffset)> {
        let r = self.locate(addr.0)?;
        Some((r, RegionOffset(r.offset + (addr.0 - r.start))))
    }
}

/// A view's ranges in address order: a slice for most views, the merge of a layered view's
/// windows and its base view otherwise. Indexing is O(1) (O(log windows) when layered).
#[derive(Clone, Copy)]
pub enum Ranges<'a> {
    /// Stored in one array.
    Slice(&'a [FlatRange]),
    /// A layered view's own windows over its base.
    Layered(&'a FlatView),
}

impl<'a> Ranges<'a> {
    /// Number of ranges.
    pub fn len(&self) -> usize {
        match self {
            Ranges::Slice(s) => s.len(),
            Ranges::Layered(v) => v.layer.as_ref().map_or(0, |l| l.len()),
        }
    }
    /// No ranges at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `i`-th range.
    pub fn get(&self, i: usize) -> Option<&'a FlatRange> {
        match *self {
            Ranges::Slice(s) => s.get(i),
            Ranges::Layered(v) => v.layer.as_ref()?.get(v, i),
        }
    }
    /// The first range.
    pub fn first(&self) -> Option<&'a FlatRange> {
        self.get(0)
    }
    /// The last range.
    pub fn last(&self) -> Option<&'a FlatRange> {
        self.get(self.len().checked_sub(1)?)
    }
    /// The ranges in address order.
    pub fn iter(&self) -> RangesIter<'a> {
        RangesIter {
            ranges: *self,
            front: 0,
            back: self.len(),
            window: 0,
        }
    }
    /// A copy of every range.
    pub fn to_vec(&self) -> Vec<FlatRange> {
        self.iter().cloned().collect()
    }
    /// The number of leading ranges for which `pred` holds (it must hold for a prefix).
    pub(crate) fn partition_point(&self, mut pred: impl FnMut(&FlatRange) -> bool) -> usize {
        if let Ranges::Slice(s) = self {
            return s.partition_point(pred);
        }
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(&self[mid]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
    /// The stored slice, if the view is not layered.
    pub(crate) fn as_slice(&self) -> Option<&'a [FlatRange]> {
        match *self {
            Ranges::Slice(s) => Some(s),
            Ranges::Layered(_) => None,
        }
    }
}

impl<'a> From<&'a [FlatRange]> for Ranges<'a> {
    fn from(s: &'a [FlatRange]) -> Self {
        Ranges::Slice(s)
    }
}

impl<'a> From<&'a Vec<FlatRange>> for Ranges<'a> {
    fn from(s: &'a Vec<FlatRange>) -> Self {
        Ranges::Slice(s)
    }
}

impl std::ops::Index<usize> for Ranges<'_> {
    type Output = FlatRange;
    fn index(&self, i: usize) -> &FlatRange {
        match self.get(i) {
            Some(r) => r,
            None => panic!("range index {i} out of bounds ({} ranges)", self.len()),
        }
    }
}

impl<'a> IntoIterator for Ranges<'a> {
    type Item = &'a FlatRange;
    type IntoIter = RangesIter<'a>;
    fn into_iter(self) -> RangesIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Ranges`].
#[derive(Clone)]
pub struct RangesIter<'a> {
    ranges: Ranges<'a>,
    front: usize,
    back: usize,
    /// For a layered view: windows starting at or before `front`.
    window: usize,
}

impl<'a> Iterator for RangesIter<'a> {
    type Item = &'a FlatRange;
    fn next(&mut self) -> Option<&'a FlatRange> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        match self.ranges {
            Ranges::Slice(s) => s.get(self.front - 1),
            Ranges::Layered(v) => v.layer.as_ref()?.get_ascending(v, self.front - 1, &mut self.window),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.back - self.front, Some(self.back - self.front))
    }
}

impl DoubleEndedIterator for RangesIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        self.ranges.get(self.back)
    }
}

impl ExactSizeIterator for RangesIter<'_> {}

impl PartialEq for Ranges<'_> {
    fn eq(&self, o: &Ranges<'_>) -> bool {
        self.len() == o.len() && self.iter().zip(o.iter()).all(|(a, b)| a == b)
    }
}

impl fmt::Debug for Ranges<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Debug for FlatView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlatView")
            .field("root", &self.root_name)
            .field("ranges", &self.ranges())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Memory, SIZE_2_64};
    use proptest::prelude::*;

    /// Builds a view of RAM ranges at the given (start, len) pieces (sorted, disjoint).
    fn view(pieces: &[(u64, u64)]) -> Arc<FlatView> {
        let m = Memory::new();
        let sys = m.container("sys", SIZE_2_64).unwrap();
        for (i, &(start, len)) in pieces.iter().enumerate() {
            let r = m.ram(&format!("r{i}"), u128::from(len)).unwrap();
            m.add_subregion(sys, start, r).unwrap();
        }
        m.render(sys).unwrap()
    }

    fn naive(v: &FlatView, addr: u64) -> Option<usize> {
        v.ranges.iter().position(|r| r.start <= addr && addr <= r.last)
    }

    proptest! {
        #[test]
        fn bucket_index_agrees_with_a_scan(
            gaps in prop::collection::vec((0u64..1 << 40, 1u64..1 << 16), 1..40),
            probes in prop::collection::vec(any::<u64>(), 64),
            top in any::<bool>(),
        ) {
            // Sparse layouts: gaps of up to 2^40 between small ranges, optionally one at the
            // very top of the 64-bit space.
            let mut pieces = Vec::new();
            let mut at = 0u64;
            for (gap, len) in gaps {
                let Some(start) = at.checked_add(gap) else { break };
                if start.checked_add(len).is_none() { break }
                pieces.push((start, len));
                at = start + len;
            }
            if top && at < u64::MAX - 0x1000 {
                pieces.push((u64::MAX - 0xfff, 0x1000));
            }
            let v = view(&pieces);
            let mut addrs = probes;
            for r in &v.ranges {
                addrs.extend([r.start, r.last, r.start.wrapping_sub(1), r.last.wrapping_add(1)]);
            }
            for a in addrs {
                prop_assert_eq!(v.search(a), naive(&v, a), "address {:#x}", a);
                let mut mru = Mru::EMPTY;
                let at = |r: Option<&FlatRange>| r.map(|r| r as *const FlatRange);
                let want = at(naive(&v, a).map(|i| &v.ranges[i]));
                prop_assert_eq!(at(v.find(a, &mut mru)), want);
                prop_assert_eq!(at(v.find(a, &mut mru)), want, "second lookup through the MRU");
            }
            let ix = v.index_summary().unwrap();
            prop_assert_eq!(ix.runs.last().unwrap().last_bucket + 1, ix.buckets);
        }
    }

    #[test]
    fn empty_view_finds_nothing() {
        let v = view(&[]);
        assert_eq!(v.search(0), None);
        assert_eq!(v.search(u64::MAX), None);
        assert!(v.index_summary().is_none());
    }
}
