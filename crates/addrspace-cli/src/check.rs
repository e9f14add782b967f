//! `--check FILE`: compares a machine's `info mtree -f` output with a QEMU capture, in the
//! canonical form (blocks sorted, `FlatView #N` numbers dropped: QEMU prints them in
//! hash-table order), and shows the differing lines the way `diff -u` would.
//!
//! The line matching is a patience diff (lines unique to both sides anchor the match, the
//! longest increasing run of them is kept, the gaps are matched the same way), so it stays
//! O(n log n) on views of hundreds of thousands of ranges.

use std::collections::HashMap;

use addrspace::mtree::canonical;

/// The outcome of a comparison.
pub struct Check {
    /// Whether the two outputs are the same in canonical form.
    pub same: bool,
    /// The differing lines (empty when the same), `-` for the capture, `+` for ours.
    pub diff: String,
    /// One line saying what was compared and the result.
    pub summary: String,
}

/// Compares `ours` (our `info mtree -f` output) with `theirs` (the capture `file`).
pub fn check(ours: &str, theirs: &str, file: &str) -> Result<Check, String> {
    if !theirs.lines().any(|l| l.starts_with("FlatView #")) {
        return Err(format!(
            "{file}: not `info mtree -f` output (no `FlatView #` line); --check compares flat views"
        ));
    }
    let (a, b) = (canonical(theirs), canonical(ours));
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let pairs = matches(&a, &b);
    let form = "canonical form: block order and FlatView numbers ignored";
    if pairs.len() == a.len() && pairs.len() == b.len() {
        return Ok(Check {
            same: true,
            diff: String::new(),
            summary: format!("the flat views match {file} ({form})"),
        });
    }
    let title = titles(&a);
    let mut diff = format!("--- {file} (QEMU)\n+++ this machine\n");
    let (mut i, mut j, mut minus, mut plus) = (0, 0, 0, 0);
    for (pi, pj) in pairs.into_iter().chain(std::iter::once((a.len(), b.len()))) {
        if i < pi || j < pj {
            diff += &format!(
                "@@ -{} +{} @@ {}\n",
                i + 1,
                j + 1,
                title[i.min(a.len().saturating_sub(1))]
            );
            for l in &a[i..pi] {
                diff += &format!("-{l}\n");
            }
            for l in &b[j..pj] {
                diff += &format!("+{l}\n");
            }
            minus += pi - i;
            plus += pj - j;
        }
        (i, j) = (pi + 1, pj + 1);
    }
    Ok(Check {
        same: false,
        diff,
        summary: format!(
            "the flat views differ from {file}: {minus} line(s) only there (-), {plus} only here (+) ({form})"
        ),
    })
}

/// For each canonical line, the first ` AS` line of its block (the block's title).
fn titles<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::with_capacity(lines.len());
    let mut title = "";
    let mut fresh = true;
    for (k, l) in lines.iter().enumerate() {
        if l.is_empty() {
            fresh = true;
        } else if fresh {
            title = lines[k..]
                .iter()
                .take(3)
                .find(|l| l.starts_with(" AS "))
                .copied()
                .unwrap_or(l);
            fresh = false;
        }
        out.push(title.trim_start());
    }
    out
}

/// Matched line pairs `(index in a, index in b)`, increasing in both.
fn matches(a: &[&str], b: &[&str]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    let mut work = vec![(0, a.len(), 0, b.len())];
    while let Some((mut alo, mut ahi, mut blo, mut bhi)) = work.pop() {
        while alo < ahi && blo < bhi && a[alo] == b[blo] {
            pairs.push((alo, blo));
            (alo, blo) = (alo + 1, blo + 1);
        }
        while alo < ahi && blo < bhi && a[ahi - 1] == b[bhi - 1] {
            pairs.push((ahi - 1, bhi - 1));
            (ahi, bhi) = (ahi - 1, bhi - 1);
        }
        if alo == ahi || blo == bhi {
            continue;
        }
        // Lines that occur once on each side, in `a` order.
        let mut seen: HashMap<&str, (usize, usize, usize, usize)> = HashMap::new();
        for (i, l) in a[alo..ahi].iter().enumerate() {
            let e = seen.entry(l).or_insert((0, 0, 0, 0));
            (e.0, e.1) = (e.0 + 1, alo + i);
        }
        for (j, l) in b[blo..bhi].iter().enumerate() {
            if let Some(e) = seen.get_mut(l) {
                (e.2, e.3) = (e.2 + 1, blo + j);
            }
        }
        let mut unique: Vec<(usize, usize)> = seen
            .values()
            .filter(|e| e.0 == 1 && e.2 == 1)
            .map(|e| (e.1, e.3))
            .collect();
        unique.sort_unstable();
        let anchors = longest_increasing(&unique);
        // The gaps between anchors are matched the same way.
        let (mut ga, mut gb) = (alo, blo);
        for &(i, j) in &anchors {
            pairs.push((i, j));
            work.push((ga, i, gb, j));
            (ga, gb) = (i + 1, j + 1);
        }
        if !anchors.is_empty() {
            work.push((ga, ahi, gb, bhi));
        }
    }
    pairs.sort_unstable();
    pairs
}

/// The longest subsequence of `v` (sorted by `.0`) increasing in `.1` (patience sorting).
fn longest_increasing(v: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let mut tops: Vec<usize> = Vec::new(); // index into v of the top of each pile
    let mut prev: Vec<Option<usize>> = vec![None; v.len()];
    for (k, &(_, j)) in v.iter().enumerate() {
        let pile = tops.partition_point(|&t| v[t].1 < j);
        prev[k] = pile.checked_sub(1).map(|p| tops[p]);
        if pile == tops.len() {
            tops.push(k);
        } else {
            tops[pile] = k;
        }
    }
    let mut out = Vec::with_capacity(tops.len());
    let mut k = tops.last().copied();
    while let Some(x) = k {
        out.push(v[x]);
        k = prev[x];
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "FlatView #0\n AS \"memory\", root: system\n Root memory region: system\n  0000000000000000-0000000000000fff (prio 0, ram): ram\n  0000000000001000-0000000000001fff (prio 0, i/o): uart\n\nFlatView #1\n AS \"I/O\", root: io\n Root memory region: io\n  0000000000000000-000000000000ffff (prio 0, i/o): io\n\n";

    #[test]
    fn same_views_in_another_order_match() {
        let (first, second) = A.split_once("\n\n").unwrap();
        let swapped = format!(
            "{}\n\n{}\n\n",
            second.trim_end().replace("#1", "#0"),
            first.replace("#0", "#1")
        );
        let c = check(&swapped, A, "f.txt").unwrap();
        assert!(c.same, "{}", c.diff);
        assert!(c.diff.is_empty());
    }

    #[test]
    fn differing_lines_are_shown_with_their_view() {
        let ours = A.replace("(prio 0, i/o): uart", "(prio 0, ram): uart");
        let c = check(&ours, A, "f.txt").unwrap();
        assert!(!c.same);
        assert!(
            c.diff
                .contains("\n-  0000000000001000-0000000000001fff (prio 0, i/o): uart\n"),
            "{}",
            c.diff
        );
        assert!(
            c.diff
                .contains("\n+  0000000000001000-0000000000001fff (prio 0, ram): uart\n"),
            "{}",
            c.diff
        );
        assert!(
            c.diff.contains("@@ -10 +10 @@ AS \"memory\", root: system\n"),
            "{}",
            c.diff
        );
        assert_eq!(
            c.diff.lines().filter(|l| l.starts_with(['-', '+'])).count(),
            4,
            "{}",
            c.diff
        );
        assert!(
            c.summary.contains("1 line(s) only there (-), 1 only here (+)"),
            "{}",
            c.summary
        );
    }

    #[test]
    fn a_file_without_flat_views_is_refused() {
        assert!(check(A, "address-space: memory\n", "t.txt").is_err());
    }

    #[test]
    fn repeated_lines_are_matched_in_order() {
        let a = ["x", "y", "x", "y", "z"];
        let b = ["x", "y", "z", "x", "y"];
        let m = matches(&a, &b);
        assert!(m.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1), "{m:?}");
        assert!(m.iter().all(|&(i, j)| a[i] == b[j]), "{m:?}");
        assert_eq!(m.len(), 4, "{m:?}");
    }
}
