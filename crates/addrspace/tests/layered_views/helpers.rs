//! Shared helpers: devices that identify themselves, tagged RAM words, view comparisons.

use super::*;

// Shared helpers.

/// A device that reads as a constant identifying it.
pub(crate) struct Tagged(pub(crate) u64);

impl RegionOps for Tagged {
    fn read(&self, _offset: u64, size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let mask = if size >= 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
        (self.0 & mask, MemTxResult::OK)
    }
    fn write(&self, _offset: u64, _value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

/// Word `off / 8` of a RAM block tagged `tag`: the tag in the top byte, the offset below.
pub(crate) fn word(tag: u8, off: u64) -> u64 {
    (u64::from(tag) << 56) | off
}

/// Fills RAM region `r` with `word(tag, offset)` words.
pub(crate) fn fill_words(mem: &Memory, r: RegionId, tag: u8) {
    let leaf = mem.leaf(r).unwrap().unwrap();
    let block = leaf.backend().ram().unwrap();
    let bytes: Vec<u8> = (0..block.len() as u64 / 8)
        .flat_map(|i| word(tag, i * 8).to_le_bytes())
        .collect();
    assert!(block.write(0, &bytes));
}

/// Ranges equal (QEMU's `flatrange_equal`) and so are their dirty-logging masks. (Not their
/// `priority()`: a render-time copy that, like QEMU's printer, nobody relies on — `info mtree
/// -f` reads the live priority — and that a priority change without effect leaves as is.)
pub(crate) fn assert_same_ranges(got: &FlatView, want: &FlatView, what: &dyn Fn() -> String) {
    let (a, b) = (got.ranges(), want.ranges());
    assert_eq!(a, b, "{}: ranges differ from a fresh render", what());
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!(
            x.dirty_log_mask(),
            y.dirty_log_mask(),
            "{}: dirty mask of {x:?}",
            what()
        );
    }
}

/// Whether a per-CPU view whose private regions claim `claims` (first, end) over system view
/// `sys` may be left unlayered: the library gives up layering when its windows (the claims
/// widened to `sys`'s ranges) cover more than 8 ranges and more than half of `sys`.
pub(crate) fn layering_may_be_refused(sys: &FlatView, claims: &[(u64, u64)]) -> bool {
    let covered = sys
        .ranges()
        .iter()
        .filter(|r| {
            claims
                .iter()
                .any(|&(lo, hi)| u128::from(r.start().0) < u128::from(hi) && r.end() > u128::from(lo))
        })
        .count();
    covered > 8 && covered * 2 > sys.ranges().len()
}
