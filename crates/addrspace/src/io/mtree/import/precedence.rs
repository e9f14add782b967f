//! The order in which a dump's siblings must sit in their container's list so that
//! rendering and printing reproduce the dump (rule 4), in O(n log n) time and O(n) memory.
//!
//! The rules: higher priority first. Equal priority at the same address: the one printed
//! first wins (QEMU prints such ties newest first, and consecutively). Equal priority at
//! different addresses, overlapping: the smaller one wins; equal sizes, the one printed first.
//!
//! Rather than an edge per overlapping pair (quadratic: 20 000 mutually overlapping siblings
//! are 2·10^8 edges), siblings of one priority are sorted by a key: (effective size, print
//! index of the first line of its same-address run, print index), where the effective size
//! is the running maximum of sizes along the same-address run in print order. Whenever the
//! rules admit an order at all, this order satisfies every one of them; the property test
//! below checks it against the edge-based topological sort it replaces.

use std::cmp::Reverse;
use std::collections::HashMap;

/// One sibling as the dump shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sibling {
    /// Address inside the container.
    pub rel: u64,
    /// Size (0 for a size-0 alias window).
    pub size: u128,
    /// Priority.
    pub prio: i32,
}

/// Indices into `sibs` (given in print order), winner first.
pub(super) fn precedence(sibs: &[Sibling]) -> Vec<usize> {
    // (effective size, first print index of the run) per sibling.
    let mut runs: HashMap<(u64, i32), (u128, usize)> = HashMap::with_capacity(sibs.len());
    let mut key: Vec<(Reverse<i32>, u128, usize, usize)> = Vec::with_capacity(sibs.len());
    for (i, s) in sibs.iter().enumerate() {
        let run = runs.entry((s.rel, s.prio)).or_insert((s.size, i));
        run.0 = run.0.max(s.size);
        key.push((Reverse(s.prio), run.0, run.1, i));
    }
    key.sort_unstable();
    key.into_iter().map(|k| k.3).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BinaryHeap;

    use proptest::prelude::*;

    use super::*;
    use crate::io::mtree::{print_flat, print_tree, FlatOptions, TreeOptions};
    use crate::machine::memory::Memory;
    use crate::SIZE_2_64;

    /// The edge-based algorithm this module replaced (an edge per constrained pair, then a
    /// topological sort preferring higher priority, then print order). `None` when the
    /// rules contradict each other (a cycle).
    fn by_edges(sibs: &[Sibling]) -> Option<Vec<usize>> {
        let n = sibs.len();
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut indeg = vec![0usize; n];
        let mut by_prio: HashMap<i32, Vec<usize>> = HashMap::new();
        for (i, s) in sibs.iter().enumerate() {
            by_prio.entry(s.prio).or_default().push(i);
        }
        let mut edge = |a: usize, b: usize| {
            succ[a].push(b);
            indeg[b] += 1;
        };
        for group in by_prio.values_mut() {
            group.sort_by_key(|&i| (sibs[i].rel, i));
            for w in group.windows(2) {
                if sibs[w[0]].rel == sibs[w[1]].rel {
                    edge(w[0], w[1]);
                }
            }
            let mut active: Vec<usize> = Vec::new();
            for &i in group.iter() {
                let li = sibs[i];
                if li.size == 0 {
                    continue;
                }
                active.retain(|&j| u128::from(sibs[j].rel) + sibs[j].size > u128::from(li.rel));
                for &j in &active {
                    let lj = sibs[j];
                    if lj.rel == li.rel {
                        continue;
                    }
                    let i_first = if li.size != lj.size { li.size < lj.size } else { i < j };
                    if i_first {
                        edge(i, j)
                    } else {
                        edge(j, i)
                    }
                }
                active.push(i);
            }
        }
        let key = |i: usize| (sibs[i].prio, Reverse(i));
        let mut heap: BinaryHeap<_> = (0..n).filter(|&i| indeg[i] == 0).map(key).collect();
        let mut order = Vec::with_capacity(n);
        while let Some((_, Reverse(i))) = heap.pop() {
            order.push(i);
            for &s in &succ[i] {
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    heap.push(key(s));
                }
            }
        }
        (order.len() == n).then_some(order)
    }

    /// Whether `order` (winner first) obeys every rule.
    fn obeys_rules(sibs: &[Sibling], order: &[usize]) -> std::result::Result<(), String> {
        let mut pos = vec![0; sibs.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        for i in 0..sibs.len() {
            for j in 0..sibs.len() {
                let (a, b) = (sibs[i], sibs[j]);
                let overlap = a.size > 0
                    && b.size > 0
                    && u128::from(a.rel) < u128::from(b.rel) + b.size
                    && u128::from(b.rel) < u128::from(a.rel) + a.size;
                let i_wins = if a.prio != b.prio {
                    a.prio > b.prio
                } else if a.rel == b.rel {
                    i < j
                } else if overlap {
                    (a.size, i) < (b.size, j)
                } else {
                    continue;
                };
                if i_wins && i != j && pos[i] > pos[j] {
                    return Err(format!("{i} ({a:?}) should precede {j} ({b:?}) in {order:?}"));
                }
            }
        }
        Ok(())
    }

    /// Builds a container with the siblings placed in `order` (winner first) and prints it.
    fn rendered(sibs: &[Sibling], order: &[usize]) -> (String, String) {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let tx = m.transaction();
        for &i in order.iter().rev() {
            let s = sibs[i];
            let r = m.ram(&format!("r{i}"), s.size.max(1)).unwrap();
            tx.add_subregion_overlap(sys, s.rel, r, s.prio).unwrap();
        }
        drop(tx);
        let _space = m.address_space("memory", sys).unwrap();
        (
            print_flat(&m, &FlatOptions::default()),
            print_tree(&m, &TreeOptions::DISABLED),
        )
    }

    /// Siblings as QEMU prints them: a list order of random regions, printed sorted by
    /// address, then priority (higher first), then list order.
    fn printed() -> impl Strategy<Value = Vec<Sibling>> {
        prop::collection::vec((0u64..8, 1u128..6, -1i32..2), 1..9).prop_map(|raw| {
            let mut sibs: Vec<Sibling> = raw
                .into_iter()
                .map(|(a, s, prio)| Sibling {
                    rel: a * 0x1000,
                    size: s * 0x1000,
                    prio,
                })
                .collect();
            sibs.sort_by_key(|s| (s.rel, Reverse(s.prio)));
            sibs
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn sorted_order_matches_the_edge_order(sibs in printed()) {
            let new = precedence(&sibs);
            if let Some(old) = by_edges(&sibs) {
                prop_assert_eq!(obeys_rules(&sibs, &old), Ok(()));
                prop_assert_eq!(obeys_rules(&sibs, &new), Ok(()));
                prop_assert_eq!(rendered(&sibs, &new), rendered(&sibs, &old));
            }
        }
    }

    #[test]
    fn mutually_overlapping_siblings_need_no_pairwise_edges() {
        // Smaller wins at different addresses; at one address the first printed wins even
        // when it is larger (its run's effective size carries over).
        let s = |rel: u64, size: u128| Sibling { rel, size, prio: 0 };
        let sibs = [s(0, 0x4000), s(0, 0x1000), s(0x1000, 0x2000), s(0x2000, 0x800)];
        let order = precedence(&sibs);
        assert_eq!(obeys_rules(&sibs, &order), Ok(()));
        assert_eq!(order, [3, 2, 0, 1]);
    }
}
