//! The order in which a board file or a QEMU dump is built, chosen so that building is linear
//! in the input:
//! aliases after their targets (with alias cycles found in one walk per alias), and
//! containers filled before they are placed in theirs (no placement then walks a long chain
//! of containers above it, however deep the nesting).

/// Aliases (indices with a target) ordered targets first, each visited once; `Err` holds the
/// first alias, in file order, whose chain runs into a cycle.
pub(crate) fn alias_order(targets: &[Option<usize>]) -> std::result::Result<Vec<usize>, usize> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; targets.len()];
    let mut order = Vec::new();
    let mut path = Vec::new();
    for start in 0..targets.len() {
        let mut x = start;
        while let Some(t) = targets[x] {
            match state[x] {
                DONE => break,
                ON_PATH => return Err(start),
                _ => {}
            }
            state[x] = ON_PATH;
            path.push(x);
            x = t;
        }
        while let Some(a) = path.pop() {
            state[a] = DONE;
            order.push(a);
        }
    }
    Ok(order)
}

/// The order in which to fill containers so that each is filled before it is placed in its
/// own container: deepest first (file order among equals), then regions inside a
/// containment cycle in file order (the core refuses the placement that closes it).
pub(crate) fn fill_order(parent: &[Option<usize>]) -> Vec<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Depth {
        Unknown,
        OnPath,
        Cyclic,
        At(usize),
    }
    let mut depth = vec![Depth::Unknown; parent.len()];
    let mut path = Vec::new();
    for start in 0..parent.len() {
        // Walk up to a region of known depth or the top; the topmost region on the path then
        // has depth `top` (None: the path runs into a containment cycle).
        let mut x = start;
        let top = loop {
            match depth[x] {
                Depth::At(d) => break Some(d + 1),
                Depth::OnPath | Depth::Cyclic => break None,
                Depth::Unknown => {}
            }
            depth[x] = Depth::OnPath;
            path.push(x);
            match parent[x] {
                Some(p) => x = p,
                None => break Some(0),
            }
        };
        for (k, y) in path.drain(..).rev().enumerate() {
            depth[y] = top.map_or(Depth::Cyclic, |t| Depth::At(t + k));
        }
    }
    let at = |i: usize| match depth[i] {
        Depth::At(d) => Some(d),
        _ => None,
    };
    let mut order: Vec<usize> = (0..parent.len()).filter(|&i| at(i).is_some()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(at(i)));
    order.extend((0..parent.len()).filter(|&i| at(i).is_none()));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_filled_deepest_first_and_cycles_last() {
        // 0 contains 1 contains 2; 3 and 4 contain each other; 5 is alone.
        let parent = [None, Some(0), Some(1), Some(4), Some(3), None];
        assert_eq!(fill_order(&parent), [2, 1, 0, 5, 3, 4]);
    }

    #[test]
    fn aliases_follow_their_targets_and_cycles_name_the_first_alias_into_them() {
        // 0 -> 1 -> 2 (not an alias); 3 -> 4 -> 3.
        assert_eq!(alias_order(&[Some(1), Some(2), None]), Ok(vec![1, 0]));
        assert_eq!(alias_order(&[None, Some(3), None, Some(4), Some(3)]), Err(1));
    }
}
