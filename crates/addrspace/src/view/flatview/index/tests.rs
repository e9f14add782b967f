//! Tests of the bucket index on its own: every lookup against a scan of the starts, on
//! layouts crowded at several scales, at the ends of the address space, and empty.

use super::*;
use proptest::prelude::*;

/// The last start at or before `addr`, if `addr` lies between the first start and `top`.
fn scan(starts: &[u64], top: u64, addr: u64) -> Option<usize> {
    if starts.is_empty() || addr < starts[0] || addr > top {
        return None;
    }
    Some(starts.partition_point(|&s| s <= addr) - 1)
}

/// Whether `addr` lies between start `i` and the next start (or `top`): in the range of
/// candidate `i`, if that range reaches that far.
fn covers(starts: &[u64], top: u64, i: usize, addr: u64) -> bool {
    let end = starts.get(i.wrapping_add(1)).map_or(top, |&n| n - 1);
    starts.get(i).is_some_and(|&s| s <= addr && addr <= end)
}

/// Every start, the addresses around it and `probes` agree with [`scan`] (outside the
/// indexed span, the candidate, if any, is one whose range cannot hold the address);
/// returns the index.
fn agrees(starts: &[u64], top: u64, probes: &[u64]) -> Result<Buckets, TestCaseError> {
    let ix = Buckets::over(starts, top);
    let near = starts
        .iter()
        .flat_map(|&s| [s, s.wrapping_sub(1), s.wrapping_add(1), s.wrapping_add(7)]);
    for a in near
        .chain(probes.iter().copied())
        .chain([0, top, top.wrapping_add(1), u64::MAX])
    {
        let (got, want) = (ix.find(starts, a), scan(starts, top, a));
        match want {
            Some(_) => prop_assert_eq!(got, want, "address {:#x}", a),
            None => prop_assert!(
                !got.is_some_and(|i| covers(starts, top, i, a)),
                "address {:#x}: {:?}",
                a,
                got
            ),
        }
    }
    Ok(ix)
}

/// Sorted, distinct starts from gaps (stopping before 2^64) and the last one's end.
fn layout(gaps: &[u64], len: u64) -> (Vec<u64>, u64) {
    let mut starts = Vec::new();
    let mut at = 0u64;
    for &g in gaps {
        let Some(s) = at.checked_add(g) else { break };
        starts.push(s);
        let Some(next) = s.checked_add(1) else { break };
        at = next;
    }
    let last = *starts.last().unwrap_or(&0);
    (starts, last.saturating_add(len))
}

/// QEMU's arm `virt` starts (flash, GIC, UART, RTC, three 8-byte fw_cfg registers, GPIO, 32
/// virtio-mmio transports, PCIe windows, RAM, high ECAM and MMIO).
fn virt() -> (Vec<u64>, u64) {
    let mut s = vec![
        0, 0x400_0000, 0x800_0000, 0x801_0000, 0x802_0000, 0x900_0000, 0x901_0000,
    ];
    s.extend([0x902_0000, 0x902_0008, 0x902_0010, 0x903_0000]);
    s.extend((0..32).map(|i| 0xa00_0000 + i * 0x200));
    s.extend([0x1000_0000, 0x3eff_0000, 0x4000_0000, 0x40_1000_0000, 0x80_0000_0000]);
    (s, 0xff_ffff_ffff)
}

#[test]
fn crowded_buckets_are_split_at_every_scale() {
    let (starts, top) = virt();
    let ix = agrees(&starts, top, &[0x902_0009, 0xa00_3fff, 0x4_0000_0000]).unwrap();
    // The 1 TiB span's first bucket holds 45 starts; the fw_cfg registers 8 bytes apart
    // are separated levels below.
    assert!(ix.depth >= 2, "depth {}", ix.depth);
    let sum = ix.summary(&starts);
    let split = sum.runs[0].split.expect("the first bucket is split");
    assert_eq!((sum.runs[0].lo, sum.runs[0].hi), (0, 45));
    assert_eq!(split.levels, ix.depth);
    assert_eq!(
        split.slots,
        ix.nodes.len() - starts.len(),
        "every nested slot is below bucket 0"
    );
    assert!(sum.runs[1..].iter().all(|r| r.split.is_none()));
    // Every bucket and sub-bucket ends with at most one start in it: the candidate is the
    // start itself or the one before, for every address of every range.
    for (i, &s) in starts.iter().enumerate() {
        let end = starts.get(i.wrapping_add(1)).map_or(top, |&n| n - 1);
        for a in [s, end, s + (end - s) / 2] {
            assert_eq!(ix.find(&starts, a), Some(i), "address {a:#x}");
        }
    }
}

#[test]
fn a_layout_without_crowded_buckets_has_no_levels() {
    let starts: Vec<u64> = (0..64).map(|i| i << 21).collect();
    let ix = agrees(&starts, (64 << 21) - 1, &[]).unwrap();
    assert_eq!((ix.depth, ix.nodes.len()), (0, 0));
    assert!(ix
        .summary(&starts)
        .runs
        .iter()
        .all(|r| r.split.is_none() && r.hi - r.lo <= 1));
}

#[test]
fn empty_index_finds_nothing() {
    let ix = Buckets::over(&[], 0);
    for a in [0, 1, u64::MAX] {
        assert_eq!(ix.find(&[], a), None);
    }
    assert_eq!(ix.summary(&[]).buckets, 0);
}

#[test]
fn single_ranges_anywhere() {
    for (start, top) in [
        (0, 0),
        (0, u64::MAX),
        (u64::MAX, u64::MAX),
        (0x1000, 0x1fff),
        (5, u64::MAX - 3),
    ] {
        agrees(&[start], top, &[start / 2, top / 2 + start / 2]).unwrap();
    }
}

#[test]
fn byte_ranges_at_the_top_of_the_address_space() {
    // One-byte ranges up to 2^64 - 1 after a range at 0: a 2^64 span crowded in its last
    // bucket down to single bytes.
    let mut starts = vec![0, 1 << 40];
    starts.extend((0..40).map(|i| u64::MAX - 39 + i));
    let ix = agrees(&starts, u64::MAX, &[u64::MAX - 40, 1 << 63]).unwrap();
    assert!(ix.depth >= 1);
    assert_eq!(ix.find(&starts, u64::MAX), Some(starts.len() - 1));
}

#[test]
fn many_crowded_clusters_past_the_slot_budget_stay_exact() {
    // 300 clusters of five 1-byte-apart starts, 2^40 apart: once the budget is spent,
    // splits take the fewest sub-buckets and the tree gets deeper, not wrong.
    let starts: Vec<u64> = (0..300u64).flat_map(|c| (0..5).map(move |i| (c << 40) + i)).collect();
    let top = (300 << 40) - 1;
    let ix = agrees(&starts, top, &[]).unwrap();
    assert!(
        ix.nodes.len() > slot_budget(starts.len()),
        "budget spent: {}",
        ix.nodes.len()
    );
}

proptest! {
    #[test]
    fn lookups_agree_with_a_scan(
        gaps in prop::collection::vec(prop_oneof![0u64..16, 16u64..1 << 12, 1u64 << 20..1 << 30, 1u64 << 40..1 << 62], 1..120),
        len in prop_oneof![0u64..16, any::<u64>()],
        probes in prop::collection::vec(any::<u64>(), 32),
    ) {
        let (starts, top) = layout(&gaps, len);
        let near: Vec<u64> = probes.iter().map(|p| p % top.saturating_add(1).max(1)).collect();
        let ix = agrees(&starts, top, &[probes, near].concat())?;
        let sum = ix.summary(&starts);
        prop_assert_eq!(sum.runs.iter().filter_map(|r| r.split).map(|s| s.levels).max().unwrap_or(0), ix.depth);
        let nested: usize = sum.runs.iter().filter_map(|r| r.split).map(|s| s.slots).sum();
        prop_assert_eq!(nested, ix.nodes.len().saturating_sub(starts.len()));
    }
}
