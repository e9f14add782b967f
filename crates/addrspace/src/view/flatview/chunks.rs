//! A view's storage: its ranges in chunks that successive views share, so that a commit
//! changing a few ranges of a 100 000-range view rebuilds one chunk and a small table of
//! chunks instead of copying, re-indexing and freeing the whole view.
//!
//! A view of at most [`CHUNK_MAX`] ranges (nearly every view) is one chunk stored inline:
//! a lookup is exactly one bucket index, one candidate check and one direct window, with no
//! hop through a chunk table. A bigger view is a table of shared chunks of about [`CHUNK`]
//! ranges with an index over their first addresses: a lookup finds the chunk, then the
//! range in it. Readers address a range by a [`Pos`]ition (chunk and index inside it);
//! everything else (diffs, listeners, `info mtree`) by its index in the whole view.

use std::ops::Range;
use std::sync::Arc;

use super::index::{Buckets, Mru};
use crate::base::ram::{perm, DirectSpec, DirectTable};
use crate::model::region::Backend;
use crate::view::range::FlatRange;

/// Target number of ranges per chunk of a chunked view.
pub(crate) const CHUNK: usize = 128;
/// Largest number of ranges kept in one chunk (and in a view stored as one chunk).
pub(crate) const CHUNK_MAX: usize = 2 * CHUNK;

/// A reader's handle on a range: the chunk in the high 32 bits, the index inside it in the
/// low 32 (so for a one-chunk view, the range's index). Values with higher bits set (the
/// last-hit cache's tags) name no range.
pub(crate) type Pos = usize;

const POS_SHIFT: u32 = 32;
const POS_MASK: usize = (1 << POS_SHIFT) - 1;

/// Up to [`CHUNK_MAX`] consecutive ranges of a view, with their lookup index and direct
/// windows.
pub(crate) struct Chunk {
    pub(crate) ranges: Box<[FlatRange]>,
    /// Range starts in a dense array of their own (8 bytes each).
    pub(crate) starts: Box<[u64]>,
    /// The lookup index over `starts`.
    pub(crate) index: Buckets,
    /// One compact window per range: bounds, and host memory for RAM (the fast path).
    pub(crate) direct: DirectTable,
}

impl Chunk {
    fn new(ranges: Box<[FlatRange]>) -> Chunk {
        let starts: Box<[u64]> = ranges.iter().map(|r| r.start).collect();
        let top = ranges.last().map_or(0, |r| r.last);
        let index = Buckets::over(&starts, top);
        let direct = DirectTable::new(ranges.iter().map(direct_spec));
        Chunk {
            ranges,
            starts,
            index,
            direct,
        }
    }

    /// Index of the range containing `addr`.
    #[inline(always)]
    pub(crate) fn search(&self, addr: u64) -> Option<usize> {
        let i = self.index.find(&self.starts, addr)?;
        self.direct.contains(i, addr).then_some(i)
    }
}

/// What the fast path may do with range `r`: RAM (and RAM devices, which take sized loads
/// and stores too) is read directly, and written directly when writable and not dirty-logged
/// (dirty logging needs the general path's marking). Everything else takes the general path.
fn direct_spec(r: &FlatRange) -> DirectSpec<'_> {
    let ram = match &r.leaf.backend {
        Backend::Ram(b) | Backend::RamDevice(b) => {
            let write = !r.readonly && r.dirty.is_empty();
            Some((b, r.offset, perm::READ | if write { perm::WRITE } else { 0 }))
        }
        _ => None,
    };
    DirectSpec {
        start: r.start,
        last: r.last,
        ram,
    }
}

/// An own range a reader found: its chunk and its index there.
#[derive(Clone, Copy)]
pub(crate) struct Own<'v> {
    chunk: &'v Chunk,
    i: usize,
}

impl<'v> Own<'v> {
    /// The range.
    #[inline(always)]
    pub(crate) fn range(self) -> Option<&'v FlatRange> {
        self.chunk.ranges.get(self.i)
    }

    /// The fast path of a `size`-byte load at `addr`: its bytes, or `None` when the access
    /// has to take the general path (not RAM, not aligned, crossing the range's end).
    #[inline(always)]
    pub(crate) fn load(self, addr: u64, size: usize) -> Option<[u8; 8]> {
        self.chunk.direct.load(self.i, addr, size)
    }

    /// The fast path of a `size`-byte store at `addr` (writable RAM without dirty logging);
    /// `false` when the access has to take the general path.
    #[inline(always)]
    pub(crate) fn store(self, addr: u64, bytes: &[u8; 8], size: usize) -> bool {
        self.chunk.direct.store(self.i, addr, bytes, size)
    }
}

/// A chunked view's chunks, shared with the views before and after it.
pub(crate) struct Chunks {
    pub(crate) parts: Box<[Arc<Chunk>]>,
    /// First address of each chunk.
    firsts: Box<[u64]>,
    /// Index in the whole view of each chunk's first range, and the number of ranges last.
    offsets: Box<[usize]>,
    /// The lookup index over `firsts`: which chunk an address belongs to.
    pub(crate) index: Buckets,
}

/// A chunk table being built: the chunks, and what the table keeps of each (its first
/// address and number of ranges), taken from the old table for a shared chunk so that an
/// edit reads nothing of the chunks it does not touch (a 100 000-range view has ~800).
#[derive(Default)]
struct Table {
    parts: Vec<Arc<Chunk>>,
    firsts: Vec<u64>,
    lens: Vec<usize>,
}

impl Table {
    fn push(&mut self, c: Arc<Chunk>) {
        self.firsts.push(c.starts[0]);
        self.lens.push(c.ranges.len());
        self.parts.push(c);
    }

    /// Chunks `cs` of `m`, shared.
    fn share(&mut self, m: &Chunks, cs: Range<usize>) {
        self.parts.extend(m.parts[cs.clone()].iter().cloned());
        self.firsts.extend_from_slice(&m.firsts[cs.clone()]);
        self.lens.extend(cs.map(|c| m.offsets[c + 1] - m.offsets[c]));
    }

    fn pop(&mut self) -> Option<Arc<Chunk>> {
        self.firsts.pop();
        self.lens.pop();
        self.parts.pop()
    }

    fn len(&self) -> usize {
        self.lens.iter().sum()
    }

    fn finish(self) -> Chunks {
        let mut offsets = Vec::with_capacity(self.lens.len() + 1);
        let mut n = 0;
        for l in &self.lens {
            offsets.push(n);
            n += l;
        }
        offsets.push(n);
        let top = self.parts.last().and_then(|c| c.ranges.last()).map_or(0, |r| r.last);
        let index = Buckets::over(&self.firsts, top);
        Chunks {
            parts: self.parts.into_boxed_slice(),
            firsts: self.firsts.into_boxed_slice(),
            offsets: offsets.into_boxed_slice(),
            index,
        }
    }
}

impl Chunks {
    /// The chunk holding range `i` of the whole view (the last chunk for `i == len`).
    fn chunk_of(&self, i: usize) -> usize {
        let c = self.offsets.partition_point(|&o| o <= i);
        c.saturating_sub(1).min(self.parts.len() - 1)
    }

    // The reader's paths through a chunked view. The entry points from `Body` are out of
    // line, so that the code of the one-chunk paths (nearly every view) stays as small as
    // it was before views had chunks; inside them everything is inline.

    #[inline]
    fn chunk(&self, pos: Pos) -> Option<(&Chunk, usize)> {
        Some((self.parts.get(pos >> POS_SHIFT)?, pos & POS_MASK))
    }

    /// The range containing `addr`: its chunk, position and index in the chunk.
    #[inline]
    fn locate(&self, addr: u64) -> Option<(&Chunk, Pos, usize)> {
        let c = self.index.find(&self.firsts, addr)?;
        let chunk = self.parts.get(c)?;
        let i = chunk.search(addr)?;
        Some((chunk, c << POS_SHIFT | i, i))
    }

    #[inline(never)]
    fn search(&self, addr: u64) -> Option<Pos> {
        self.locate(addr).map(|(_, pos, _)| pos)
    }

    /// [`Body::find_past_hit`] in a chunked view.
    #[inline(never)]
    fn find(&self, addr: u64, mru: &mut Mru, search: bool) -> Option<Own<'_>> {
        if let Some((chunk, i)) = self.chunk(mru.index).filter(|(c, i)| c.direct.contains(*i, addr)) {
            return Some(Own { chunk, i });
        }
        if !search {
            return None;
        }
        let (chunk, pos, i) = self.locate(addr)?;
        mru.learn_among_many(pos);
        Some(Own { chunk, i })
    }

    /// The index's description for `info mtree -f -d`: buckets pick chunks here, so a
    /// bucket's candidates are the ranges of its candidate chunks.
    pub(crate) fn summary(&self) -> super::IndexSummary {
        self.index
            .summary(|lo, hi| (self.offsets[lo], self.offsets[hi + 1] - 1))
    }
}

/// A view's ranges: one inline chunk, or shared chunks.
///
/// Not an enum on purpose: every lookup starts with the last-hit test on the inline chunk,
/// which for a chunked view is empty and so fails on its own bounds check. A test of which
/// kind the view is would come first on every lookup, and made the compiler turn the hit
/// test into a select that the range's load waits for (repeated lookups 1.3 -> 2.0 ns).
pub(crate) struct Body {
    /// All the ranges of a view of at most [`CHUNK_MAX`]; empty when `many` holds them.
    one: Chunk,
    /// Boxed: 80 bytes less in every view, and nearly every view has none.
    many: Option<Box<Chunks>>,
}

/// `old` ranges of a view (indices into the whole view) replaced by `new` ones.
#[derive(Debug)]
pub(crate) struct Edit {
    pub old: Range<usize>,
    pub new: Vec<FlatRange>,
}

impl Body {
    /// Stores `ranges` (sorted, disjoint): inline if few, else in chunks of [`CHUNK`].
    pub(crate) fn build(ranges: Vec<FlatRange>) -> Body {
        if ranges.len() <= CHUNK_MAX {
            return Body::one(Chunk::new(ranges.into_boxed_slice()));
        }
        let mut table = Table::default();
        cut(ranges, &mut table);
        Body::many(table.finish())
    }

    fn one(chunk: Chunk) -> Body {
        Body { one: chunk, many: None }
    }

    fn many(chunks: Chunks) -> Body {
        Body {
            one: Chunk::new(Box::new([])),
            many: Some(Box::new(chunks)),
        }
    }

    /// The one chunk of a view stored inline.
    pub(crate) fn single(&self) -> Option<&Chunk> {
        self.many.is_none().then_some(&self.one)
    }

    /// The chunks of a view stored in chunks.
    pub(crate) fn chunks(&self) -> Option<&Chunks> {
        self.many.as_deref()
    }

    /// Number of ranges.
    pub(crate) fn len(&self) -> usize {
        match &self.many {
            None => self.one.ranges.len(),
            Some(m) => m.offsets[m.parts.len()],
        }
    }

    /// Range `i` of the whole view.
    pub(crate) fn get(&self, i: usize) -> Option<&FlatRange> {
        let (first, run) = self.run_of(i, &mut 0)?;
        run.get(i - first)
    }

    /// The ranges of the chunk holding range `i` of the whole view, and the index of the
    /// chunk's first range; `*chunk` is a guess of that chunk (the one that held the previous
    /// `i`), updated: O(1) when `i` is in the guessed chunk or the next one.
    pub(crate) fn run_of(&self, i: usize, chunk: &mut usize) -> Option<(usize, &[FlatRange])> {
        let Some(m) = &self.many else {
            let c = &self.one;
            return (i < c.ranges.len()).then_some((0, &c.ranges[..]));
        };
        let holds = |c: usize| m.offsets[c] <= i && m.offsets.get(c + 1).is_some_and(|&o| i < o);
        if !(*chunk < m.parts.len() && holds(*chunk)) {
            *chunk = if *chunk + 1 < m.parts.len() && holds(*chunk + 1) {
                *chunk + 1
            } else {
                m.chunk_of(i)
            };
        }
        Some((m.offsets[*chunk], &m.parts.get(*chunk)?.ranges[..]))
    }

    /// The last hit, if it is a range of the inline chunk that contains `addr`. A lookup is
    /// this, then [`find_past_hit`](Self::find_past_hit): split so that a view tests
    /// nothing (not even whether it is layered) before its last hit.
    #[inline(always)]
    pub(crate) fn last_hit(&self, addr: u64, mru: &Mru) -> Option<Own<'_>> {
        let c = &self.one;
        c.direct
            .contains(mru.index, addr)
            .then_some(Own { chunk: c, i: mru.index })
    }

    /// The range containing `addr` once [`last_hit`](Self::last_hit) missed, remembering
    /// it; with `search` false (a layered view's own ranges), only a chunked view's last hit.
    #[inline(always)]
    pub(crate) fn find_past_hit(&self, addr: u64, mru: &mut Mru, search: bool) -> Option<Own<'_>> {
        let c = &self.one;
        if search {
            if let Some(i) = c.search(addr) {
                mru.learn(i);
                return Some(Own { chunk: c, i });
            }
        }
        // A hole, or a chunked view (whose inline chunk is empty).
        self.many.as_ref()?.find(addr, mru, search)
    }

    /// The chunk and index inside it of the range at `pos`.
    #[inline(always)]
    pub(crate) fn chunk(&self, pos: Pos) -> Option<(&Chunk, usize)> {
        match &self.many {
            None => Some((&self.one, pos)),
            Some(m) => m.chunk(pos),
        }
    }

    /// The range at `pos`.
    #[inline(always)]
    pub(crate) fn at(&self, pos: Pos) -> Option<&FlatRange> {
        let (c, i) = self.chunk(pos)?;
        c.ranges.get(i)
    }

    /// The position of the range containing `addr`.
    #[inline(always)]
    pub(crate) fn search(&self, addr: u64) -> Option<Pos> {
        match &self.many {
            None => self.one.search(addr),
            Some(m) => m.search(addr),
        }
    }

    /// First range start above `addr`, if any.
    pub(crate) fn next_start(&self, addr: u64) -> Option<u64> {
        let after = |c: &Chunk| c.starts.get(c.starts.partition_point(|&s| s <= addr)).copied();
        match &self.many {
            None => after(&self.one),
            Some(m) => {
                let c = m.firsts.partition_point(|&f| f <= addr).saturating_sub(1);
                after(&m.parts[c]).or_else(|| m.firsts.get(c + 1).copied())
            }
        }
    }

    /// This body with `edits` (sorted, disjoint, in whole-view indices) applied. Chunks no
    /// edit touches are shared with `self`; touched ones are rebuilt, merged with a
    /// neighbour when they shrink to a quarter of [`CHUNK`], split when they outgrow
    /// [`CHUNK_MAX`].
    pub(crate) fn edited(&self, edits: &[Edit]) -> Body {
        let Some(m) = &self.many else {
            return Body::build(apply(self, 0..self.len(), edits));
        };
        let last_chunk = m.parts.len() - 1;
        let mut parts = Table::default();
        let (mut next, mut e) = (0, 0);
        while e < edits.len() {
            // A group: the chunks the next edits touch, grown while the following edit
            // starts inside them or the rebuilt ranges would make too small a chunk.
            let c0 = m.chunk_of(edits[e].old.start);
            parts.share(m, next..c0);
            let mut c1 = c0;
            let mut e1 = e;
            loop {
                while e1 < edits.len() && m.chunk_of(edits[e1].old.start) <= c1 {
                    c1 = c1.max(m.chunk_of(edits[e1].old.end.max(1) - 1));
                    e1 += 1;
                }
                let span = m.offsets[c0]..m.offsets[c1 + 1];
                let removed: usize = edits[e..e1].iter().map(|d| d.old.len()).sum();
                let added: usize = edits[e..e1].iter().map(|d| d.new.len()).sum();
                let grown = span.len() - removed + added;
                if grown >= CHUNK / 4 || c1 == last_chunk {
                    break;
                }
                c1 += 1;
            }
            let mut ranges = apply(self, m.offsets[c0]..m.offsets[c1 + 1], &edits[e..e1]);
            // A small group at the very end takes the chunk before it in.
            if ranges.len() < CHUNK / 4 && c1 == last_chunk {
                if let Some(prev) = parts.pop() {
                    ranges.splice(0..0, prev.ranges.iter().cloned());
                }
            }
            cut(ranges, &mut parts);
            next = c1 + 1;
            e = e1;
        }
        parts.share(m, next..m.parts.len());
        if parts.len() <= CHUNK_MAX {
            let ranges: Vec<FlatRange> = parts.parts.iter().flat_map(|c| c.ranges.iter().cloned()).collect();
            return Body::one(Chunk::new(ranges.into_boxed_slice()));
        }
        Body::many(parts.finish())
    }
}

/// Ranges `span` of `body` with `edits` (all inside `span`) applied.
fn apply(body: &Body, span: Range<usize>, edits: &[Edit]) -> Vec<FlatRange> {
    let mut out = Vec::with_capacity(span.len() + edits.iter().map(|e| e.new.len()).sum::<usize>());
    let mut chunk = 0;
    let mut i = span.start;
    for e in edits {
        copy(body, i..e.old.start, &mut chunk, &mut out);
        out.extend(e.new.iter().cloned());
        i = e.old.end;
    }
    copy(body, i..span.end, &mut chunk, &mut out);
    out
}

/// Appends ranges `span` of `body` to `out`, a chunk's slice at a time.
fn copy(body: &Body, span: Range<usize>, chunk: &mut usize, out: &mut Vec<FlatRange>) {
    let mut i = span.start;
    while i < span.end {
        let Some((first, run)) = body.run_of(i, chunk) else {
            return;
        };
        let end = (first + run.len()).min(span.end);
        out.extend_from_slice(&run[i - first..end - first]);
        i = end;
    }
}

/// Cuts `ranges` into chunks: one if they fit in [`CHUNK_MAX`], else equal ones of about
/// [`CHUNK`].
fn cut(ranges: Vec<FlatRange>, parts: &mut Table) {
    if ranges.is_empty() {
        return;
    }
    if ranges.len() <= CHUNK_MAX {
        parts.push(Arc::new(Chunk::new(ranges.into_boxed_slice())));
        return;
    }
    let k = ranges.len().div_ceil(CHUNK);
    let (q, r) = (ranges.len() / k, ranges.len() % k);
    let mut it = ranges.into_iter();
    for j in 0..k {
        let take = q + usize::from(j < r);
        parts.push(Arc::new(Chunk::new(it.by_ref().take(take).collect())));
    }
}

#[cfg(test)]
#[path = "chunks_tests.rs"]
mod tests;
