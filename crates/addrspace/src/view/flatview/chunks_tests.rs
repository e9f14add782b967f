//! Tests of a view's chunked storage: edited bodies against fresh builds, and sharing of
//! untouched chunks across a commit.

use super::*;
use crate::view::flatview::FlatView;
use crate::{Memory, SIZE_2_64};
use proptest::prelude::*;

/// A rendered view of `n` RAM slots of 0x1000 bytes every 0x2000: the ranges edits are
/// made of (slot `k` is range `k`).
fn slots(n: u64) -> Arc<FlatView> {
    let m = Memory::new();
    let sys = m.container("sys", SIZE_2_64).unwrap();
    let _tx = m.transaction();
    for k in 0..n {
        let r = m.ram(&format!("r{k}"), 0x1000).unwrap();
        m.add_subregion(sys, k * 0x2000, r).unwrap();
    }
    drop(_tx);
    m.render(sys).unwrap()
}

/// The ranges of `body`, in order.
fn ranges(body: &Body) -> Vec<*const crate::model::region::Leaf> {
    (0..body.len())
        .map(|i| Arc::as_ptr(&body.get(i).unwrap().leaf))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Edits of a chunked body give the body a fresh build of the edited ranges would:
    /// the same ranges, lookups that agree with a scan, chunks within their bounds, and
    /// every chunk the edits did not touch shared with the old body.
    #[test]
    fn edited_bodies_match_fresh_builds(
        old_mask in prop::collection::vec(prop::bool::weighted(0.9), 1400),
        new_mask in prop::collection::vec(prop::bool::weighted(0.5), 1400),
        windows in prop::collection::vec((0usize..1400, 0usize..300), 0..6),
        rounds in 1usize..4,
    ) {
        let all = slots(1400);
        let all = all.ranges();
        let pick = |mask: &[bool], k: usize| mask[k].then(|| all[k].clone());
        let mut want: Vec<FlatRange> = (0..1400).filter_map(|k| pick(&old_mask, k)).collect();
        let mut body = Body::build(want.clone());
        for round in 0..rounds {
            // Slot windows (merged), each replaced by the slots `new_mask` keeps there.
            let mut w: Vec<(usize, usize)> = windows.iter().map(|&(s, l)| (s, (s + l).min(1400))).collect();
            w.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::new();
            for (s, e) in w {
                match merged.last_mut() {
                    Some(m) if s <= m.1 => m.1 = m.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            let slot = |r: &FlatRange| (r.start / 0x2000) as usize;
            let mut edits = Vec::new();
            for &(s, e) in &merged {
                let lo = want.partition_point(|r| slot(r) < s);
                let hi = want.partition_point(|r| slot(r) < e);
                let new = (s..e).filter_map(|k| pick(if round % 2 == 0 { &new_mask } else { &old_mask }, k)).collect();
                edits.push(Edit { old: lo..hi, new });
            }
            let next = body.edited(&edits);
            for e in edits.iter().rev() {
                want.splice(e.old.clone(), e.new.iter().cloned());
            }
            let fresh = Body::build(want.clone());
            prop_assert_eq!(ranges(&next), ranges(&fresh));
            if let (Some(a), Some(b)) = (body.chunks(), next.chunks()) {
                let touched: Vec<usize> = edits.iter().map(|e| a.chunk_of(e.old.start)).collect();
                for (c, part) in a.parts.iter().enumerate() {
                    let shared = b.parts.iter().any(|p| Arc::ptr_eq(p, part));
                    // A chunk no edit starts in and no edit spans is shared (a small
                    // neighbour of an edited chunk may have been merged into it).
                    let spanned = edits.iter().any(|e| a.offsets[c] < e.old.end && e.old.start < a.offsets[c + 1]);
                    if !touched.contains(&c) && !spanned && !touched.iter().any(|&t| t + 1 == c || t == c + 1) {
                        prop_assert!(shared, "untouched chunk {} was copied", c);
                    }
                }
            }
            if let Some(m) = next.chunks() {
                for p in m.parts.iter() {
                    prop_assert!(!p.ranges.is_empty() && p.ranges.len() <= CHUNK_MAX);
                }
                prop_assert!(m.parts.len() <= want.len() / (CHUNK / 4) + 2, "{} chunks for {} ranges", m.parts.len(), want.len());
            }
            for k in 0..1400u64 {
                for a in [k * 0x2000, k * 0x2000 + 0xfff, k * 0x2000 + 0x1000] {
                    let scan = want.iter().position(|r| r.start <= a && a <= r.last);
                    let found = next.search(a).map(|p| next.at(p).unwrap() as *const FlatRange);
                    prop_assert_eq!(found, scan.map(|i| next.get(i).unwrap() as *const FlatRange), "address {:#x}", a);
                    prop_assert_eq!(next.next_start(a), want.iter().find(|r| r.start > a).map(|r| r.start));
                }
            }
            body = next;
        }
    }
}

mod commit {
    use super::*;

    /// A commit that changes one range of a 3 000-range view shares every other chunk with
    /// the old view: the new view costs one chunk, not a copy.
    #[test]
    fn a_one_range_commit_shares_the_untouched_chunks() {
        let m = Memory::new();
        let sys = m.container("sys", SIZE_2_64).unwrap();
        let tx = m.transaction();
        let mut regions = Vec::new();
        for k in 0..3000u64 {
            let r = m.ram(&format!("r{k}"), 0x1000).unwrap();
            m.add_subregion(sys, k * 0x2000, r).unwrap();
            regions.push(r);
        }
        drop(tx);
        let space = m.address_space("memory", sys).unwrap();
        let old = space.view();
        m.remove_subregion(sys, regions[1500]).unwrap();
        let new = space.view();
        assert_eq!((old.ranges().len(), new.ranges().len()), (3000, 2999));
        let (Some(a), Some(b)) = (old.body.chunks(), new.body.chunks()) else {
            panic!("a 3 000-range view is stored in chunks");
        };
        let shared = b
            .parts
            .iter()
            .filter(|p| a.parts.iter().any(|q| Arc::ptr_eq(p, q)))
            .count();
        assert_eq!((a.parts.len(), shared), (b.parts.len(), b.parts.len() - 1));
        assert!(new.lookup(crate::GuestAddr(1500 * 0x2000)).is_none());
        assert_eq!(new.lookup(crate::GuestAddr(1501 * 0x2000)).unwrap().0.name(), "r1501");
    }
}
