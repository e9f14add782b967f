//! A view's lookup index: range starts cut into equal buckets, so finding the range of an
//! address is a shift, two loads and a short scan; plus the reader's last-hit cache ([`Mru`])
//! and the index's description for `info mtree -f -d`.

/// The last range a reader hit (QEMU's MRU section), kept by the reader. Only the index is
/// kept: storing the range's bounds too would make every random lookup wait for the previous
/// one's store (measured: 10.4 ns instead of 7 ns per random lookup with 64 ranges). Only
/// valid for the view it was filled from: reset it with [`Mru::EMPTY`] when the view changes.
///
/// The last hit is only worth trying first while it is usually right: a wrong guess costs a
/// mispredicted branch, more than the search it hoped to skip (random addresses over 4 RAM
/// regions: 7.9 ns per lookup with the guess, 5.1 ns without). So after [`DOUBT`] searches
/// (misses) the reader stops trying it, and tries it again once the searches have found the
/// same range [`TRUST_AGAIN`] times in a row. Hits are not counted, so that a hit stays one
/// comparison: a vCPU that stays in one RAM range, with a device access now and then,
/// searches a few more times per device access and otherwise keeps its repeated hit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mru {
    /// An index into the view's own ranges, or [`Mru::BASE`] + an index into a layered view's
    /// base ranges; tagged with `DOUBTED` while not worth trying.
    pub(crate) index: usize,
    /// Searches since trusted (below [`DOUBT`]); from [`DOUBT`] on, not trusted, and
    /// `DOUBT +` the number of searches in a row that found the same range.
    doubt: u8,
}

/// Searches (misses) after which the last hit is no longer tried first.
const DOUBT: u8 = 3;
/// Searches in a row finding the same range after which it is tried first again.
const TRUST_AGAIN: u8 = 4;

impl Mru {
    /// Matches no range.
    pub const EMPTY: Mru = Mru {
        index: usize::MAX,
        doubt: 0,
    };
    /// Tag of indices into a layered view's base (never a valid own index).
    pub(crate) const BASE: usize = 1 << (usize::BITS - 1);
    /// Tag of an index whose range is not worth trying first: never a valid index, own or
    /// base, so the last-hit check needs no test of its own.
    const DOUBTED: usize = 1 << (usize::BITS - 2);

    /// [`learn`](Self::learn) in a view of many ranges (a chunked one), where scattered
    /// accesses almost never find the same range twice in a row: the usual case (not
    /// trusted, not a repeat) is a branch the CPU predicts rather than a select, so that the
    /// next lookup's bookkeeping does not wait for this one's long search (random lookups in
    /// a 4 096-range view: 10.1 -> 9.8 ns). With few ranges, repeats by chance make that
    /// branch mispredict (4 ranges: 4.5 -> 8.4 ns), so [`learn`](Self::learn) selects. Both
    /// leave the same state.
    #[inline(always)]
    pub(crate) fn learn_among_many(&mut self, i: usize) {
        let doubted = i | Self::DOUBTED;
        if self.doubt == DOUBT && doubted != self.index {
            self.index = doubted;
            return;
        }
        self.learn_rare(i);
    }

    /// [`learn`](Self::learn), out of line: the last hit is trusted, or repeats.
    #[cold]
    #[inline(never)]
    fn learn_rare(&mut self, i: usize) {
        self.learn(i)
    }

    /// A search found own range `i` of a view that is not layered (the last hit missed, or
    /// was not tried).
    #[inline(always)]
    pub(crate) fn learn(&mut self, i: usize) {
        let d = self.doubt;
        let again = if d + 1 >= DOUBT + TRUST_AGAIN { 0 } else { d + 1 };
        self.doubt = match (d < DOUBT, i | Self::DOUBTED == self.index) {
            (true, _) => d + 1,
            (false, true) => again,
            (false, false) => DOUBT,
        };
        self.index = if self.doubt < DOUBT { i } else { i | Self::DOUBTED };
    }
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

/// A description of a view's lookup index (see [`FlatView::index_summary`](crate::FlatView::index_summary)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexSummary {
    /// First address covered.
    #[serde(serialize_with = "crate::base::addr::hex")]
    pub base: u64,
    /// Last address covered.
    #[serde(serialize_with = "crate::base::addr::hex")]
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
/// cut into `2^k` equal buckets (about two per range). The range holding an address of
/// bucket `b` is the last one starting at or before it, among `cand[b]`'s `lo..=hi`: from the
/// last range starting before the bucket to the last starting in it — usually one or two,
/// whatever the number of ranges. The bucket keeps `hi`'s start beside them, so a lookup is a
/// shift, one load of the bucket and one comparison, with nothing loaded from the starts. A
/// layout that crowds many ranges into one bucket degrades to a binary search in that bucket.
pub(crate) struct Buckets {
    pub(crate) base: u64,
    /// Last address covered (inclusive).
    pub(crate) top: u64,
    pub(crate) shift: u32,
    /// Per bucket, its candidates.
    pub(crate) cand: Box<[Cand]>,
}

/// A bucket's candidate ranges `lo..=hi`, and where `hi` starts.
#[derive(Clone, Copy)]
pub(crate) struct Cand {
    lo: u32,
    hi: u32,
    start: u64,
}

impl Buckets {
    /// The index of a run of ranges whose starts are `starts` (sorted) and whose last
    /// address is `top`.
    pub(crate) fn over(starts: &[u64], top: u64) -> Buckets {
        let Some(&base) = starts.first() else {
            return Buckets {
                base: 1,
                top: 0,
                shift: 0,
                cand: Box::new([]),
            };
        };
        let span = u128::from(top - base) + 1;
        let want = (2 * starts.len()).next_power_of_two().clamp(2, 1 << 20) as u128;
        // Smallest shift that fits the span into `want` buckets.
        let mut shift = 0;
        while (span >> shift) > want {
            shift += 1;
        }
        let buckets = ((span - 1) >> shift) as usize + 1;
        // Bucket `b`'s candidates run from the last start before it to the last start in it:
        // one pass over the buckets and the starts together.
        let mut cand = Vec::with_capacity(buckets);
        let mut next = 0usize; // starts before the current bucket
        for b in 0..buckets {
            let lo = next.saturating_sub(1);
            while starts.get(next).is_some_and(|&s| ((s - base) >> shift) as usize == b) {
                next += 1;
            }
            let hi = next.saturating_sub(1);
            cand.push(Cand {
                lo: lo as u32,
                hi: hi as u32,
                start: starts[hi],
            });
        }
        let cand = cand.into_boxed_slice();
        Buckets { base, top, shift, cand }
    }

    /// The candidate for `addr`: for an address in the indexed span, the last of `starts`
    /// (the starts the index was built over) at or before it. The caller checks that the
    /// candidate's range really contains `addr`: it may end before it (a hole), and for an
    /// address outside the span the answer is `None` or a range that cannot hold it (an
    /// address below the base wraps past the last bucket; one past the top but in the last
    /// bucket gets the last range). Not testing the span saves a comparison per lookup.
    #[inline]
    pub(crate) fn find(&self, starts: &[u64], addr: u64) -> Option<usize> {
        let off = addr.wrapping_sub(self.base);
        // The range is the last candidate starting at or before `addr` (the first one does:
        // it starts before the bucket, or is the first range).
        let c = self.cand.get((off >> self.shift) as usize)?;
        let (lo, hi) = (c.lo as usize, c.hi as usize);
        if hi - lo <= 1 {
            // One or two candidates (the usual case): pick without a loop or a load.
            Some(hi.wrapping_sub(usize::from(c.start > addr)))
        } else {
            Some(lo + starts.get(lo..=hi)?.partition_point(|&s| s <= addr).checked_sub(1)?)
        }
    }

    /// The index described for `info mtree -f -d`, candidates mapped to ranges of the view
    /// by `ranges(lo, hi)` (the first and last range of candidates `lo..=hi`).
    pub(crate) fn summary(&self, ranges: impl Fn(usize, usize) -> (usize, usize)) -> IndexSummary {
        let mut runs: Vec<BucketRun> = Vec::new();
        for (b, c) in self.cand.iter().enumerate() {
            let (lo, hi) = ranges(c.lo as usize, c.hi as usize);
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
        IndexSummary {
            base: self.base,
            top: self.top,
            bucket_bits: self.shift,
            buckets: self.cand.len(),
            runs,
            layered: false,
            windows: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Mru;

    #[test]
    fn learning_among_many_leaves_the_state_learning_leaves() {
        // Runs of repeats and scattered indices, through every doubt state.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let (mut a, mut b) = (Mru::EMPTY, Mru::EMPTY);
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = if x % 3 == 0 {
                (x >> 8) as usize % 4
            } else {
                (step / 7) % 5
            };
            a.learn(i);
            b.learn_among_many(i);
            assert_eq!((a.index, a.doubt), (b.index, b.doubt), "step {step}, range {i}");
        }
    }
}
