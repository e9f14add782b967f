//! A view's lookup index: range starts cut into equal buckets, crowded buckets cut again,
//! so finding the range of an address is a shift, a load per level and one comparison; plus the reader's last-hit cache ([`Mru`])
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
    /// For a bucket crowded with more than two candidates: how it is split again.
    pub split: Option<Split>,
}

/// How a crowded bucket is split again (see [`BucketRun::split`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Split {
    /// Number of sub-buckets.
    pub ways: usize,
    /// log2 of a sub-bucket's size.
    pub bits: u32,
    /// Levels of sub-buckets below the bucket (1: its sub-buckets are not split again).
    pub levels: u32,
    /// Sub-buckets below the bucket, at every level.
    pub slots: usize,
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

/// Where a slot keeps the mask of the sub-table it points to (26 bits from bit 32).
const MASK_AT: u32 = 32;
/// Width of a slot's mask: sub-tables have at most 2^26 slots.
const MASK: u64 = (1 << 26) - 1;
/// Where a slot keeps the shift of the sub-table it points to (its top 6 bits).
const SHIFT_AT: u32 = 58;
/// A crowded bucket is split into at most 2^`MAX_WAYS_BITS` sub-buckets...
const MAX_WAYS_BITS: u32 = 12;
/// ... and at most 2^`WAYS_PER_START_BITS` per start inside it (rounded down to a power of two).
const WAYS_PER_START_BITS: u32 = 4;

/// A bucketed lookup index. The span from the first range start to the last range end is
/// cut into `2^k` equal buckets (about two per range). The range holding an address is the
/// last one starting at or before it; a bucket in which at most one range starts knows that
/// range's index (`hi`), and the range is `hi` or, for an address before `hi` starts, the one
/// before — one comparison. So a lookup is a shift, one load of the bucket's slot and one
/// comparison, whatever the number of ranges.
///
/// A bucket in which several ranges start (QEMU's arm `virt` has 45 of its 48 below 2 GiB of a
/// 1 TiB span) is split again into equal sub-buckets, as many as it takes to separate its
/// closest two starts (within a cap), and so on down: a tree of tables of slots. A slot is
/// one `u64`: the position of the next slot to read (low 32 bits) and, when it points to a
/// sub-table, the mask (26 bits) and shift (6 bits) that pick the sub-bucket of an address.
/// A bucket that is not split holds `hi` itself, as a slot pointing to `nodes[hi]`, which
/// points to itself. So every lookup walks the same number of levels ([`depth`](Self::depth),
/// the deepest split): no branch depends on the address, and a view without crowded buckets
/// (depth 0) reads `hi` straight from its bucket.
pub(crate) struct Buckets {
    pub(crate) base: u64,
    /// Last address covered (inclusive).
    pub(crate) top: u64,
    pub(crate) shift: u32,
    /// One slot per bucket, with the start of its `hi` when it is not split: the one
    /// comparison then needs no load from `starts`.
    roots: Box<[(u64, u64)]>,
    /// Levels of sub-tables below the buckets: the slots every lookup reads in `nodes`.
    depth: u32,
    /// Whether some bucket is crowded. Then a lookup goes on through `nodes`, and a bucket
    /// that is not split may hold up to three starts instead of one: its range is `hi`,
    /// `hi - 1`, `hi - 2` or the one before, three comparisons that do not wait for each
    /// other, which spares a level for clusters of a few tiny ranges (QEMU's fw_cfg
    /// registers, 8 bytes apart). A view without crowded buckets pays one test for this.
    nested: bool,
    /// With `depth > 0`: one slot per range pointing to itself (`nodes[hi] = hi`), then the
    /// sub-tables; empty otherwise.
    nodes: Box<[u64]>,
}

/// A slot pointing to the sub-table at `at` of `2^ways` slots, each `2^shift` bytes wide.
fn pointer(at: usize, ways: u32, shift: u32) -> u64 {
    at as u64 | ((1 << ways) - 1) << MASK_AT | u64::from(shift) << SHIFT_AT
}

/// The slot that slot `s` leads to from an address at offset `off` from the index's base.
#[inline(always)]
fn next(s: u64, off: u64) -> usize {
    let (at, mask, shift) = (s as u32 as usize, (s >> MASK_AT) & MASK, s >> SHIFT_AT);
    at + ((off >> shift) & mask) as usize
}

/// Slots an index of `n` ranges may spend on its sub-tables before splits take the fewest
/// sub-buckets that may do. Views are rebuilt chunk by chunk at every commit that touches
/// them, so a crowded chunk's sub-tables are built often: this keeps that under a few
/// microseconds (a budget of 64 slots per range cost a commit ~50 µs on QEMU's q35 with 100
/// devices, for 2 ns more per lookup in arm `virt`'s crowded map).
pub(crate) fn slot_budget(n: usize) -> usize {
    16 * n + 512
}

/// Builds the slots of crowded buckets (see [`Buckets`]).
struct Builder<'a> {
    starts: &'a [u64],
    base: u64,
    nodes: Vec<u64>,
    depth: u32,
    /// Once `nodes` is this long, splits take the fewest sub-buckets that may do.
    budget: usize,
    /// The most starts a bucket that is not split may hold (see [`Buckets::nested`]).
    inner: usize,
}

impl Builder<'_> {
    /// The slot of the bucket of `2^bits` bytes at offset `from`, `level` levels below the
    /// root table, in which starts `first..end` lie (`end >= 1`: the first start is the
    /// index's base, so every bucket has a start at or before it).
    fn slot(&mut self, first: usize, end: usize, from: u64, bits: u32, level: u32) -> u64 {
        if end - first <= self.inner {
            // Few enough starts inside: the last start up to the bucket's end.
            return (end - 1) as u64;
        }
        let count = (end - first) as u32;
        let cap = if self.nodes.len() < self.budget {
            (count.ilog2() + WAYS_PER_START_BITS).min(MAX_WAYS_BITS)
        } else {
            count.ilog2() + 1
        };
        // The fewest sub-buckets (within the cap) that leave few enough starts in each.
        let starts = &self.starts[first..end];
        let rel = |s: u64| s - self.base - from;
        let crowd = |shift: u32| {
            let (mut most, mut run, mut at) = (0, 0, u64::MAX);
            for &s in starts {
                let j = rel(s) >> shift;
                run = if j == at { run + 1 } else { 1 };
                at = j;
                most = most.max(run);
            }
            most
        };
        let mut ways = 1;
        while ways < cap.min(bits) && crowd(bits - ways) > self.inner {
            ways += 1;
        }
        let shift = bits - ways;
        let at = self.nodes.len();
        self.nodes.resize(at + (1 << ways), 0);
        let mut i = first;
        for j in 0..1u64 << ways {
            let lo = i;
            while i < end && (self.starts[i] - self.base - from) >> shift == j {
                i += 1;
            }
            let s = self.slot(lo, i, from + (j << shift), shift, level + 1);
            self.nodes[at + j as usize] = s;
        }
        self.depth = self.depth.max(level + 1);
        pointer(at, ways, shift)
    }
}

impl Buckets {
    /// The index of ranges starting at `starts` (sorted, distinct), the last one ending at
    /// `top`.
    pub(crate) fn over(starts: &[u64], top: u64) -> Buckets {
        let Some(&base) = starts.first() else {
            return Buckets {
                base: 1,
                top: 0,
                shift: 0,
                roots: Box::new([]),
                depth: 0,
                nested: false,
                nodes: Box::new([]),
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
        // `first[b]` counts the starts before bucket `b`, i.e. the starts whose bucket is
        // below `b`: count the starts per bucket, then take prefix sums.
        let mut first = vec![0usize; buckets + 1];
        for &s in starts {
            first[((s - base) >> shift) as usize + 1] += 1;
        }
        for b in 1..=buckets {
            first[b] += first[b - 1];
        }
        let nested = first.windows(2).any(|w| w[1] - w[0] > 1);
        let mut build = Builder {
            starts,
            base,
            // Every range's slot pointing to itself, where walks that are done wait.
            nodes: (0..starts.len() as u64).collect(),
            depth: 0,
            budget: slot_budget(starts.len()),
            inner: if nested { 3 } else { 1 },
        };
        let roots = (0..buckets)
            .map(|b| {
                let s = build.slot(first[b], first[b + 1], (b as u64) << shift, shift, 0);
                (s, starts.get(s as u32 as usize).copied().unwrap_or(0))
            })
            .collect();
        let nodes = if build.depth == 0 { Vec::new() } else { build.nodes };
        Buckets {
            base,
            top,
            shift,
            roots,
            depth: build.depth,
            nested,
            nodes: nodes.into_boxed_slice(),
        }
    }

    /// The candidate for `addr`: for an address in the indexed span, the last of `starts`
    /// (the starts the index was built over) at or before it. The caller checks that the
    /// candidate's range really contains `addr`: it may end before it (a hole), and for an
    /// address outside the span the answer is `None` or an index, possibly out of bounds,
    /// whose range cannot hold it (not testing the span saves a comparison per lookup).
    #[inline]
    pub(crate) fn find(&self, starts: &[u64], addr: u64) -> Option<usize> {
        let off = addr.wrapping_sub(self.base);
        let &(s, start) = self.roots.get((off >> self.shift) as usize)?;
        if self.nested {
            return self.find_below(starts, addr, off, s);
        }
        // At most one range starts in the address's bucket: `hi`, the last one up to the
        // bucket's end; before it starts, the one before.
        let hi = s as u32 as usize;
        Some(hi.wrapping_sub(usize::from(start > addr)))
    }

    /// The rest of [`find`](Self::find) in an index with crowded buckets, from the slot `s`
    /// of the address's bucket (`off` from the base). Out of line: inlined, it made RAM
    /// loads through plain views 0.45 ns slower (holes/4 read4 5.25 -> 5.73 ns), for no gain
    /// in crowded ones (virt/48 lookup 8.03 inlined, 7.94 not).
    #[inline(never)]
    fn find_below(&self, starts: &[u64], addr: u64, off: u64, mut s: u64) -> Option<usize> {
        for _ in 0..self.depth {
            s = *self.nodes.get(next(s, off))?;
        }
        // At most three ranges start in the address's (sub-)bucket (see `nested`): `hi` is the
        // last one up to the bucket's end; the range is the last one starting at or before
        // `addr`, so step back once per candidate that starts after it.
        let hi = s as u32 as usize;
        let (a, b) = (hi.saturating_sub(1), hi.saturating_sub(2));
        let upto = starts.get(..=hi)?;
        let after = [upto[hi], upto[a], upto[b]].map(|s| usize::from(s > addr));
        Some(hi.wrapping_sub(after[0] + after[1] + after[2]))
    }

    /// The index's description for `info mtree -f -d` (`starts` as for [`find`](Self::find)).
    pub(crate) fn summary(&self, starts: &[u64]) -> IndexSummary {
        let mut runs: Vec<BucketRun> = Vec::new();
        for (b, &(slot, _)) in self.roots.iter().enumerate() {
            // The candidates: from the last range starting before the bucket to the last
            // starting in it.
            let from = self.base + ((b as u64) << self.shift);
            let last = u128::from(from) + (1u128 << self.shift) - 1;
            let last = last.min(u128::from(self.top)) as u64;
            let lo = starts.partition_point(|&s| s < from).saturating_sub(1);
            let hi = starts.partition_point(|&s| s <= last).saturating_sub(1);
            let split = (slot >> MASK_AT != 0).then(|| self.split(slot));
            match runs.last_mut() {
                Some(r) if (r.lo, r.hi, r.split) == (lo, hi, split) => r.last_bucket = b,
                _ => runs.push(BucketRun {
                    first_bucket: b,
                    last_bucket: b,
                    lo,
                    hi,
                    split,
                }),
            }
        }
        IndexSummary {
            base: self.base,
            top: self.top,
            bucket_bits: self.shift,
            buckets: self.roots.len(),
            runs,
            layered: false,
            windows: Vec::new(),
        }
    }

    /// How the sub-table that `slot` points to splits its bucket.
    fn split(&self, slot: u64) -> Split {
        let at = slot as u32 as usize;
        let ways = ((slot >> MASK_AT) & MASK) as usize + 1;
        let mut s = Split {
            ways,
            bits: (slot >> SHIFT_AT) as u32,
            levels: 1,
            slots: ways,
        };
        for &sub in self.nodes.get(at..at + ways).unwrap_or_default() {
            if sub >> MASK_AT != 0 {
                let below = self.split(sub);
                s.levels = s.levels.max(below.levels + 1);
                s.slots += below.slots;
            }
        }
        s
    }
}

#[cfg(test)]
mod tests;
