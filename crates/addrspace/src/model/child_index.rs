//! The renderer's address index of a container's children: a visit through a narrow clip
//! window (an alias into a big bank of devices, or of its own ancestor) walks only the
//! children that can intersect the window instead of all of them. Built on demand, cached on
//! the container, kept up to date by the graph for a few changes and dropped after more.

/// Children of a large container sorted by address, with the running maximum of their ends,
/// so a visit through a narrow clip window (an alias into a big bank of devices) walks only
/// the children that can intersect it instead of all of them.
#[derive(Debug)]
pub(crate) struct ChildIndex {
    /// (relative start, relative end, position in the subregion list), sorted by start.
    sorted: Vec<(u128, u128, u32)>,
    /// `max_end[i]`: the largest end among `sorted[..=i]`.
    max_end: Vec<u128>,
    /// Incremental updates taken since it was built.
    updates: u32,
}

/// Incremental updates an index takes before it is dropped and rebuilt when next needed.
const MAX_INDEX_UPDATES: u32 = 64;

/// Containers with fewer children are walked in full.
pub(crate) const INDEX_MIN_CHILDREN: usize = 32;

impl ChildIndex {
    /// The index of children whose extents, in subregion-list order, are `extents`
    /// (start, end) relative to the container. (It takes extents, not the graph, so that the
    /// region that caches it does not depend on the graph that holds the region.)
    pub(crate) fn new(extents: impl Iterator<Item = (u128, u128)>) -> ChildIndex {
        let mut sorted: Vec<(u128, u128, u32)> = extents
            .enumerate()
            .map(|(i, (start, end))| (start, end, i as u32))
            .collect();
        sorted.sort_unstable();
        let mut m = 0;
        let max_end = sorted
            .iter()
            .map(|&(_, e, _)| {
                m = m.max(e);
                m
            })
            .collect();
        ChildIndex {
            sorted,
            max_end,
            updates: 0,
        }
    }

    fn recompute_max(&mut self) {
        let mut m = 0;
        for (i, &(_, e, _)) in self.sorted.iter().enumerate() {
            m = m.max(e);
            self.max_end[i] = m;
        }
    }

    /// The child at storage position `pos` left; later positions shift down. `false` (and
    /// nothing done) once the index has taken [`MAX_INDEX_UPDATES`] updates: each costs
    /// O(children), so a batch of changes rebuilds it instead, at the next render.
    pub(crate) fn remove(&mut self, pos: u32) -> bool {
        if !self.take_update() {
            return false;
        }
        self.sorted.retain(|&(_, _, p)| p != pos);
        for e in &mut self.sorted {
            if e.2 > pos {
                e.2 -= 1;
            }
        }
        self.max_end.pop();
        self.recompute_max();
        true
    }

    /// A child `[start, end)` arrived at storage position `pos`; later positions shift up.
    /// `false` (and nothing done) past the update budget, as for [`remove`](Self::remove).
    pub(crate) fn insert(&mut self, pos: u32, start: u128, end: u128) -> bool {
        if !self.take_update() {
            return false;
        }
        for e in &mut self.sorted {
            if e.2 >= pos {
                e.2 += 1;
            }
        }
        let at = self.sorted.partition_point(|&(s, _, _)| s <= start);
        self.sorted.insert(at, (start, end, pos));
        self.max_end.push(0);
        self.recompute_max();
        true
    }

    fn take_update(&mut self) -> bool {
        self.updates += 1;
        self.updates <= MAX_INDEX_UPDATES
    }

    /// Storage positions of the children intersecting `[lo, hi)`, ascending (so the last one
    /// has the highest precedence).
    pub(crate) fn overlapping(&self, lo: u128, hi: u128) -> Vec<u32> {
        let upper = self.sorted.partition_point(|&(s, _, _)| s < hi);
        let first = self.max_end[..upper].partition_point(|&e| e <= lo);
        let mut hits: Vec<u32> = self.sorted[first..upper]
            .iter()
            .filter(|&&(_, e, _)| e > lo)
            .map(|&(_, _, i)| i)
            .collect();
        hits.sort_unstable();
        hits
    }
}
