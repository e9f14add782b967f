//! Which regions lie on a cycle: Tarjan's strongly connected components, iteratively (a
//! graph may be deeper than any stack).

use super::reach::successors;
use crate::model::graph::Graph;
use crate::model::region::RegionId;

const UNSEEN: u32 = u32::MAX;

/// By region index: whether the region is one of `nodes` and lies on a cycle among them, i.e.
/// in a strongly connected component of two regions or more (a region is never its own
/// subregion or alias target). `nodes` must hold every region of the cycles it touches.
pub(crate) fn on_cycles(g: &Graph, nodes: &[RegionId]) -> Vec<bool> {
    let cap = g.capacity();
    let mut index = vec![UNSEEN; cap];
    let mut low = vec![0u32; cap];
    let mut on_stack = vec![false; cap];
    let mut out = vec![false; cap];
    let mut stack: Vec<RegionId> = Vec::new();
    let mut next = 0u32;
    let mut member = vec![false; cap];
    for r in nodes {
        member[r.index as usize] = true;
    }
    let succ = |id: RegionId| {
        let mut v = Vec::new();
        successors(g, id, |s| {
            if member[s.index as usize] {
                v.push(s);
            }
            false
        });
        v
    };
    for &root in nodes {
        if index[root.index as usize] != UNSEEN {
            continue;
        }
        // (region, its successors, how many of them are done)
        let mut calls: Vec<(RegionId, Vec<RegionId>, usize)> = vec![(root, succ(root), 0)];
        index[root.index as usize] = next;
        low[root.index as usize] = next;
        next += 1;
        stack.push(root);
        on_stack[root.index as usize] = true;
        while let Some((v, ss, k)) = calls.last_mut() {
            let v = *v;
            if let Some(&w) = ss.get(*k) {
                *k += 1;
                let wi = w.index as usize;
                if index[wi] == UNSEEN {
                    index[wi] = next;
                    low[wi] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[wi] = true;
                    calls.push((w, succ(w), 0));
                } else if on_stack[wi] {
                    let vi = v.index as usize;
                    low[vi] = low[vi].min(index[wi]);
                }
                continue;
            }
            calls.pop();
            let vi = v.index as usize;
            if let Some((u, ..)) = calls.last() {
                let ui = u.index as usize;
                low[ui] = low[ui].min(low[vi]);
            }
            if low[vi] == index[vi] {
                // `v` roots a component: pop it.
                let mut members = 0;
                let start = stack.len();
                let mut at = start;
                while at > 0 {
                    at -= 1;
                    members += 1;
                    if stack[at] == v {
                        break;
                    }
                }
                for &m in &stack[at..] {
                    on_stack[m.index as usize] = false;
                    out[m.index as usize] = members > 1;
                }
                stack.truncate(at);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::{Memory, SIZE_2_64};

    #[test]
    fn regions_on_cycles_are_found() {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let inner = m.container("inner", 0x10000).unwrap();
        let ram = m.ram("ram", 0x1000).unwrap();
        let self_alias = m.alias("self", inner, 0, 0x1000).unwrap();
        let down = m.alias("down", ram, 0, 0x1000).unwrap();
        m.add_subregion(sys, 0, inner).unwrap();
        m.add_subregion(inner, 0, ram).unwrap();
        m.add_subregion(inner, 0x8000, self_alias).unwrap();
        m.add_subregion(sys, 0x20000, down).unwrap();
        m.with_state(|st| {
            let g = &st.graph;
            let all: Vec<_> = g.ids().collect();
            let cyc = super::on_cycles(g, &all);
            let on = |r: crate::RegionId| cyc[r.index as usize];
            assert!(on(inner) && on(self_alias), "inner and its alias of itself");
            assert!(!on(sys) && !on(ram) && !on(down), "the rest is not on a cycle");
        });
    }
}
