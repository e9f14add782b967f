//! [`Ranges`]: a view's ranges in address order, whether it stores them in one array, in
//! chunks shared with other versions of the view, or is a layered view merging its own
//! windows with its base's ranges.

use std::fmt;

use super::FlatView;
use crate::view::range::FlatRange;

/// A view's ranges in address order: a slice for most views, chunks for big ones, the merge
/// of a layered view's windows and its base view otherwise. Indexing is O(1) (O(log chunks)
/// or O(log windows) for the others; iteration is O(1) per range for all).
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Ranges<'a> {
    /// Stored in one array.
    Slice(&'a [FlatRange]),
    /// A big view stored in chunks.
    Chunked(&'a FlatView),
    /// A layered view's own windows over its base.
    Layered(&'a FlatView),
}

impl<'a> Ranges<'a> {
    /// Number of ranges.
    pub fn len(&self) -> usize {
        match self {
            Ranges::Slice(s) => s.len(),
            Ranges::Chunked(v) => v.own_ranges(),
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
            Ranges::Chunked(v) => v.own(i),
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
}

/// Indexes [`Ranges`] in mostly ascending order (a diff walk, a delivery): O(1) per range
/// whatever the storage, where indexing a chunked view afresh searches its chunks.
pub(crate) struct Cursor<'a> {
    ranges: Ranges<'a>,
    /// The run of ranges that held the last one asked for (a chunk, or the whole slice),
    /// and the index of its first range.
    run: &'a [FlatRange],
    first: usize,
    /// For a chunked view, the chunk of `run`.
    chunk: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(ranges: Ranges<'a>) -> Cursor<'a> {
        let run = match ranges {
            Ranges::Slice(s) => s,
            _ => &[],
        };
        Cursor {
            ranges,
            run,
            first: 0,
            chunk: 0,
        }
    }

    /// Range `i`; panics if there is none, as indexing [`Ranges`] does.
    #[inline]
    pub(crate) fn at(&mut self, i: usize) -> &'a FlatRange {
        if let Some(r) = self.run.get(i.wrapping_sub(self.first)) {
            return r;
        }
        self.moved(i)
    }

    /// [`at`](Self::at) outside the current run.
    #[inline(never)]
    fn moved(&mut self, i: usize) -> &'a FlatRange {
        let r = match self.ranges {
            Ranges::Chunked(v) => v.body.run_of(i, &mut self.chunk).and_then(|(first, run)| {
                (self.first, self.run) = (first, run);
                run.get(i - first)
            }),
            r => r.get(i),
        };
        match r {
            Some(r) => r,
            None => panic!("range index {i} out of bounds ({} ranges)", self.ranges.len()),
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
    /// For a layered view: windows starting at or before `front`; for a chunked view, the
    /// chunk holding `front`.
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
            Ranges::Chunked(v) => {
                let (first, run) = v.body.run_of(self.front - 1, &mut self.window)?;
                run.get(self.front - 1 - first)
            }
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
