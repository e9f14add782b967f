//! Incremental view updates and QEMU's two-pass diff, as pure functions of flat ranges.
//!
//! A scoped commit knows, for each view, the address windows a change can have affected.
//! [`splice`] re-renders only those windows (widened to the old view's range boundaries so
//! nothing has to be cut) and copies the rest of the old view, merging at the seams exactly
//! as a full render's simplification would. The result equals a full re-render (a property
//! test checks it); the one case where a seam cannot be decided locally — two unmergeable
//! pieces that continue each other — makes [`splice`] give up, and the caller renders fully.
//!
//! [`diff`] is QEMU's `address_space_update_topology_pass` walk: ranges only in the old view
//! are deletions, equal ranges are unchanged, the rest are additions; a splice's [`Patch`]es
//! let the walk skip everything outside the windows.

use std::ops::Range;

use crate::model::graph::Graph;
use crate::model::region::RegionId;
use crate::view::flatview::{Cursor, Edit, FlatRange, Ranges};
use crate::view::render::render_window;

/// Old ranges `old` were replaced by new ranges `new`; everything between patches is equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Patch {
    pub old: Range<usize>,
    pub new: Range<usize>,
}

/// One step of the diff walk, with indices into the old and new views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Only in the old view (or changed): `region_del`.
    Del(usize),
    /// In both, equal (`flatrange_equal`): `region_nop`, maybe `log_start`/`log_stop`.
    Same(usize, usize),
    /// Only in the new view (or changed): `region_add`.
    Add(usize),
}

/// Sorts windows and merges those that overlap or touch.
pub(crate) fn merge_windows(w: &mut Vec<(u128, u128)>) {
    w.retain(|&(lo, hi)| lo < hi);
    w.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(w.len());
    for &(lo, hi) in w.iter() {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *w = out;
}

/// Widens each window to the boundaries of the old ranges it cuts, then merges.
pub(crate) fn widen<'a>(old: impl Into<Ranges<'a>>, windows: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let old: Ranges<'a> = old.into();
    let mut w: Vec<(u128, u128)> = windows
        .iter()
        .map(|&(mut lo, mut hi)| {
            let a = old.partition_point(|r| r.end() <= lo);
            if let Some(r) = old.get(a) {
                lo = lo.min(u128::from(r.start));
            }
            let b = old.partition_point(|r| u128::from(r.start) < hi);
            if b > 0 {
                hi = hi.max(old[b - 1].end());
            }
            (lo, hi)
        })
        .collect();
    merge_windows(&mut w);
    w
}

/// Merges `r` into the last range where simplification would; `None` if that cannot be
/// decided here (unmergeable pieces that continue each other).
fn join(out: &mut [FlatRange], r: &FlatRange) -> Option<bool> {
    let Some(prev) = out.last_mut() else { return Some(false) };
    if !prev.continues_into(r) {
        return Some(false);
    }
    if prev.unmergeable {
        return None;
    }
    prev.last = r.last;
    Some(true)
}

/// Re-renders `windows` of the view of `root` whose current ranges are `old`; returns the
/// edits that turn `old` into the new view and where they differ ([`Patch`]es: the same
/// edits in both views' indices), or `None` if a full render is needed.
pub(crate) fn splice(
    g: &Graph,
    root: RegionId,
    old: Ranges<'_>,
    windows: &[(u128, u128)],
) -> Option<(Vec<Edit>, Vec<Patch>)> {
    let mut edits: Vec<Edit> = Vec::new();
    // Old ranges before `i` are settled.
    let mut i = 0;
    for (lo, hi) in widen(old, windows) {
        let first = old.partition_point(|r| r.end() <= lo).max(i);
        let last = old.partition_point(|r| u128::from(r.start) < hi).max(first);
        // The previous edit, if it reaches this window (it took in the range between).
        let (mut e, fresh) = match edits.pop() {
            Some(q) if q.old.end >= first => (q, false),
            q => {
                edits.extend(q);
                let e = Edit {
                    old: first..first,
                    new: Vec::new(),
                };
                (e, true)
            }
        };
        let mut pieces = render_window(g, root, lo, hi).into_iter();
        if let Some(head) = pieces.next() {
            // A piece continuing the untouched range before the window changes that range.
            if let Some(before) = first.checked_sub(1).and_then(|b| old.get(b)).filter(|_| fresh) {
                if before.continues_into(&head) {
                    e.old.start -= 1;
                    e.new.push(before.clone());
                }
            }
            if !join(&mut e.new, &head)? {
                e.new.push(head);
            }
        }
        e.new.extend(pieces);
        e.old.end = last;
        if let Some(next) = old.get(last) {
            if join(&mut e.new, next)? {
                e.old.end += 1;
            }
        }
        i = e.old.end;
        match edits.last_mut() {
            Some(q) if q.old.end == e.old.start => {
                q.old.end = e.old.end;
                q.new.append(&mut e.new);
            }
            _ if e.old.is_empty() && e.new.is_empty() => {}
            _ => edits.push(e),
        }
    }
    let mut at = 0isize;
    let patches = edits
        .iter()
        .map(|e| {
            let s = (e.old.start as isize + at) as usize;
            at += e.new.len() as isize - e.old.len() as isize;
            Patch {
                old: e.old.clone(),
                new: s..s + e.new.len(),
            }
        })
        .collect();
    Some((edits, patches))
}

/// QEMU's diff walk over `old[os]` and `new[ns]`, appending to `out`.
pub(crate) fn diff_into(old: Ranges<'_>, new: Ranges<'_>, os: Range<usize>, ns: Range<usize>, out: &mut Vec<Change>) {
    let (mut i, mut j) = (os.start, ns.start);
    let (mut oc, mut nc) = (Cursor::new(old), Cursor::new(new));
    loop {
        let o = (i < os.end).then(|| oc.at(i));
        let n = (j < ns.end).then(|| nc.at(j));
        match (o, n) {
            (Some(o), n) if n.is_none_or(|n| o.start < n.start || (o.start == n.start && o != n)) => {
                out.push(Change::Del(i));
                i += 1;
            }
            (Some(o), Some(n)) => {
                if o == n {
                    out.push(Change::Same(i, j));
                    i += 1;
                } else {
                    out.push(Change::Add(j));
                }
                j += 1;
            }
            (None, Some(_)) => {
                out.push(Change::Add(j));
                j += 1;
            }
            _ => break,
        }
    }
}

/// The whole diff of two views.
pub(crate) fn diff(old: Ranges<'_>, new: Ranges<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    diff_into(old, new, 0..old.len(), 0..new.len(), &mut out);
    out
}

/// The diff inside `patches` only (everything else is unchanged).
pub(crate) fn diff_patches(old: Ranges<'_>, new: Ranges<'_>, patches: &[Patch]) -> Vec<Change> {
    let mut out = Vec::new();
    for p in patches {
        diff_into(old, new, p.old.clone(), p.new.clone(), &mut out);
    }
    out
}

/// What a diff means for the spaces showing the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delta {
    /// Nothing differs: keep the old view.
    Unchanged,
    /// Only what no listener hears about differs: the priority `info mtree -f` prints
    /// (QEMU's `flatrange_equal` ignores it, and QEMU rebuilds the view anyway). Publish the
    /// new view silently.
    Quiet,
    /// Ranges or dirty masks differ: publish and tell the listeners.
    Heard,
}

/// Classifies a diff in one pass (see [`Delta`]).
pub(crate) fn delta(changes: &[Change], old: Ranges<'_>, new: Ranges<'_>) -> Delta {
    let mut quiet = false;
    let (mut old, mut new) = (Cursor::new(old), Cursor::new(new));
    for c in changes {
        match *c {
            Change::Same(i, j) => {
                let (o, n) = (old.at(i), new.at(j));
                if o.dirty != n.dirty {
                    return Delta::Heard;
                }
                quiet |= o.priority != n.priority;
            }
            _ => return Delta::Heard,
        }
    }
    if quiet {
        Delta::Quiet
    } else {
        Delta::Unchanged
    }
}
