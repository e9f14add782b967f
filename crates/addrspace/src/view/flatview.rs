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
//! rest from the shared view (`layered`; built by `view::layer`), so a thousand such CPUs do not cost a
//! thousand copies of the system view. [`FlatView::ranges`] hides the difference.

use std::fmt;
use std::sync::Arc;

use crate::base::addr::{GuestAddr, RegionOffset};
use crate::base::stats::LiveToken;
use crate::model::region::RegionId;

mod chunks;
mod index;
mod layered;
mod ranges;

pub use crate::view::range::FlatRange;
pub(crate) use chunks::{Body, Edit, Own, Pos};
pub(crate) use index::Mru;
pub use index::{BucketRun, IndexSummary};
pub(crate) use layered::{Hit, Layer, Window};
pub(crate) use ranges::Cursor;
pub use ranges::{Ranges, RangesIter};

/// An immutable rendered view: what one or more address spaces currently look like.
pub struct FlatView {
    pub(crate) root: Option<RegionId>,
    pub(crate) root_name: Option<Arc<str>>,
    /// The ranges this view stores — all of them, or for a layered view those of its
    /// windows — with their lookup index and direct windows (see `chunks`).
    pub(crate) body: Body,
    /// The shared view this one borrows its ranges outside its windows from, if layered.
    pub(crate) layer: Option<Box<Layer>>,
    pub(crate) _live: LiveToken,
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
            None => match self.body.single() {
                Some(c) => Ranges::Slice(&c.ranges),
                None => Ranges::Chunked(self),
            },
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
        self.body.len()
    }

    /// Own range `i` (an index into the ranges the view stores).
    pub(crate) fn own(&self, i: usize) -> Option<&FlatRange> {
        self.body.get(i)
    }

    /// The own range at reader position `pos` (from [`search`](Self::search) or
    /// [`find_own`](Self::find_own)).
    #[inline(always)]
    pub(crate) fn at(&self, pos: Pos) -> Option<&FlatRange> {
        self.body.at(pos)
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
        Self::with_body(root, root_name, Body::build(ranges), layer, live)
    }

    pub(crate) fn with_body(
        root: Option<RegionId>,
        root_name: Option<Arc<str>>,
        body: Body,
        layer: Option<Box<Layer>>,
        live: LiveToken,
    ) -> FlatView {
        FlatView {
            root,
            root_name,
            body,
            layer,
            _live: live,
        }
    }

    /// Position of the own range containing `addr`, through the lookup index (for a
    /// layered view, only addresses inside its windows have one).
    #[inline]
    pub(crate) fn search(&self, addr: u64) -> Option<Pos> {
        self.body.search(addr)
    }

    /// The own range containing `addr` (the last hit first, remembering this one) of a view
    /// that is not layered; `None` for a hole, and for a layered view unless it is the last
    /// hit. The result carries the range's chunk, whose direct window a load or store then
    /// takes without looking the chunk up again.
    #[inline(always)]
    pub(crate) fn find_own(&self, addr: u64, mru: &mut Mru) -> Option<Own<'_>> {
        // The last hit first, before anything else is loaded or tested (testing whether the
        // view is layered first cost every repeated lookup 0.25 ns); then two copies of the
        // rest, each with `search` constant (the compiler laid the run-time flag's version
        // out with the search further from the hit: random lookups 0.3 ns slower).
        if let Some(own) = self.body.last_hit(addr, mru) {
            return Some(own);
        }
        match self.layer {
            None => self.body.find_past_hit(addr, mru, true),
            Some(_) => self.body.find_past_hit(addr, mru, false),
        }
    }

    /// The range containing `addr`, trying the last hit first and remembering this one.
    #[inline(always)]
    pub(crate) fn find(&self, addr: u64, mru: &mut Mru) -> Option<&FlatRange> {
        if let Some(own) = self.find_own(addr, mru) {
            return own.range();
        }
        self.find_past_own(addr, mru)
    }

    /// The rest of [`find`](Self::find) once [`find_own`](Self::find_own) missed: the
    /// range from a layered view's base, `None` for a hole (a plain view has no more to
    /// search).
    #[inline]
    pub(crate) fn find_past_own(&self, addr: u64, mru: &mut Mru) -> Option<&FlatRange> {
        self.layer.as_ref()?.find(self, addr, mru)
    }

    /// The range containing `addr`, without a last-hit cache.
    pub(crate) fn locate(&self, addr: u64) -> Option<&FlatRange> {
        match &self.layer {
            None => self.at(self.search(addr)?),
            Some(layer) => match layer.search(self, addr)? {
                Hit::Own(pos) => self.at(pos),
                Hit::Base(pos) => layer.base().at(pos),
            },
        }
    }

    /// First range start above `addr` (where an unassigned hole at `addr` ends), as `u128`
    /// so that "none" is 2^64.
    pub(crate) fn next_start(&self, addr: u64) -> u128 {
        let own = self.body.next_start(addr).map_or(1 << 64, u128::from);
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
        match (self.body.single(), self.body.chunks()) {
            (_, Some(m)) => Some(m.summary()),
            (Some(c), None) if !c.ranges.is_empty() => Some(c.index.summary(|lo, hi| (lo, hi))),
            _ => None,
        }
    }

    /// The range containing `addr` and the offset of `addr` inside its region.
    pub fn lookup(&self, addr: GuestAddr) -> Option<(&FlatRange, RegionOffset)> {
        let r = self.locate(addr.0)?;
        Some((r, RegionOffset(r.offset + (addr.0 - r.start))))
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

    /// The range holding `addr`, by a scan.
    fn naive(v: &FlatView, addr: u64) -> Option<*const FlatRange> {
        v.ranges()
            .iter()
            .find(|r| r.start <= addr && addr <= r.last)
            .map(|r| r as *const FlatRange)
    }

    /// Every lookup path of `v` (index, MRU) against a scan, at `probes` and around every
    /// range's bounds.
    fn agrees_with_a_scan(v: &FlatView, probes: Vec<u64>) -> Result<(), TestCaseError> {
        let mut addrs = probes;
        for r in v.ranges() {
            addrs.extend([r.start, r.last, r.start.wrapping_sub(1), r.last.wrapping_add(1)]);
        }
        for a in addrs {
            let at = |r: Option<&FlatRange>| r.map(|r| r as *const FlatRange);
            let want = naive(v, a);
            prop_assert_eq!(at(v.search(a).and_then(|p| v.at(p))), want, "address {:#x}", a);
            let mut mru = Mru::EMPTY;
            prop_assert_eq!(at(v.find(a, &mut mru)), want);
            prop_assert_eq!(at(v.find(a, &mut mru)), want, "second lookup through the MRU");
        }
        let ix = v.index_summary().unwrap();
        prop_assert_eq!(ix.runs.last().unwrap().last_bucket + 1, ix.buckets);
        Ok(())
    }

    proptest! {
        #[test]
        fn crowded_buckets_agree_with_a_scan(
            gaps in prop::collection::vec((prop_oneof![0u64..64, 1u64 << 20..1 << 24, 1u64 << 36..1 << 40], 1u64..1 << 12), 1..80),
            probes in prop::collection::vec(any::<u64>(), 64),
        ) {
            // Clusters of tiny ranges far apart (QEMU's arm `virt` is one): buckets crowded
            // at several scales, so lookups go through nested levels.
            let mut pieces = Vec::new();
            let mut at = 0u64;
            for (gap, len) in gaps {
                pieces.push((at + gap, len));
                at += gap + len;
            }
            let v = view(&pieces);
            let near: Vec<u64> = probes.iter().map(|p| p % (at + 1)).collect();
            agrees_with_a_scan(&v, near.into_iter().chain(probes).collect())?;
        }

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
            agrees_with_a_scan(&view(&pieces), probes)?;
        }
    }

    #[test]
    fn a_last_hit_that_keeps_missing_is_dropped_and_trusted_again_when_it_repeats() {
        let v = view(&[(0, 0x1000), (0x2000, 0x1000), (0x4000, 0x1000), (0x6000, 0x1000)]);
        let mut mru = Mru::EMPTY;
        // A new range every time: every guess misses.
        for k in 0..8u64 {
            assert_eq!(
                v.find((k % 4) * 0x2000 + 8, &mut mru).map(|r| r.start),
                Some((k % 4) * 0x2000)
            );
        }
        let tried = v
            .body
            .chunk(mru.index)
            .is_some_and(|(c, i)| c.direct.contains(i, 0x6008));
        assert!(!tried, "a doubted last hit is not tried");
        // The same range again and again: tried first again.
        for _ in 0..4 {
            assert_eq!(v.find(0x6010, &mut mru).map(|r| r.start), Some(0x6000));
        }
        assert_eq!(mru.index, 3, "trusted again");
        assert_eq!(v.find(0x6ff8, &mut mru).map(|r| r.start), Some(0x6000));
    }

    #[test]
    fn a_virt_like_map_finds_every_range() {
        // 32 devices of 512 bytes in one 16 KiB window, RAM at 1 GiB, one range at 512 GiB.
        let mut pieces: Vec<(u64, u64)> = (0..32).map(|i| (0xa00_0000 + i * 0x200, 0x200)).collect();
        pieces.extend([(0x4000_0000, 0x4000_0000), (0x80_0000_0000, 0x1000)]);
        let v = view(&pieces);
        for (i, r) in v.ranges().iter().enumerate() {
            for a in [r.start, r.last, r.start + (r.last - r.start) / 2] {
                assert_eq!(v.search(a), Some(i), "address {a:#x}");
            }
        }
        assert_eq!(v.search(0x9ff_ffff), None);
    }

    #[test]
    fn empty_view_finds_nothing() {
        let v = view(&[]);
        assert_eq!(v.search(0), None);
        assert_eq!(v.search(u64::MAX), None);
        assert!(v.index_summary().is_none());
    }
}
