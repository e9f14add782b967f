//! Property 3: `mtree::lookup`'s path agrees with the rendered flat view.
//!
//! At every probed address (both sides of every range boundary of the published view, plus
//! the case's random probes) the path must end at the region and offset the view holds there
//! (or be empty where the view has nothing), and must be a real path of the tree: it starts
//! at the space's root, every hop is enabled and is a subregion of the hop before (at an
//! offset lowered by its address) or that hop's alias target (at an offset raised by the
//! alias offset) inside its size.

use std::collections::BTreeSet;

use addrspace::mtree::{self, Answer};
use addrspace::{AddressSpace, GuestAddr};

use crate::model::{TestResult, World};

/// Checks the lookup of every probed address of `space` (whose root is `root`).
pub fn check_lookup(w: &World, root: usize, space: &AddressSpace, probes: &[u64]) -> TestResult {
    // A view whose physical root moved without a commit may legitimately be stale (see
    // `World::silent_moves`); the path reads the live tree.
    if w.physical_root(root).is_some_and(|p| w.silent_moves.contains(&p)) {
        return Ok(());
    }
    let view = space.view();
    let mut points: BTreeSet<u64> = probes.iter().copied().collect();
    for r in view.ranges() {
        let (start, last) = (r.start().0, r.last().0);
        points.extend([start, last, start.wrapping_sub(1), last.wrapping_add(1)]);
    }
    for &a in &points {
        let answers = mtree::lookup(&w.mem, a, Some("as")).map_err(|e| w.fail(e))?;
        let [answer] = answers.as_slice() else {
            return Err(w.fail(format!("{} answers for one space", answers.len())));
        };
        let fail = |msg: String| w.fail(format!("at {a:#x}: {msg}\nanswer: {answer:#?}\nview: {view:#?}"));
        let want = view.lookup(GuestAddr(a)).map(|(r, off)| (r.region(), off.0));
        let end = answer.path.last().map(|h| (h.region.id, h.offset));
        if end != want {
            return Err(fail(format!("the path ends at {end:?}, the view says {want:?}")));
        }
        let range = answer.range.as_ref().map(|r| (r.region.id, r.offset));
        if range != want {
            return Err(fail(format!("the answer's range is {range:?}, the view says {want:?}")));
        }
        check_path(w, w.ids(root), answer).map_err(fail)?;
    }
    Ok(())
}

/// The path is a chain of the tree from `root`, with consistent offsets.
fn check_path(w: &World, root: addrspace::RegionId, answer: &Answer) -> Result<(), String> {
    let Some(first) = answer.path.first() else {
        return Ok(());
    };
    if first.region.id != root {
        return Err(format!("the path starts at {}, not at the root", first.region.name));
    }
    for (i, pair) in answer.path.windows(2).enumerate() {
        let (up, down) = (&pair[0], &pair[1]);
        let info = w.mem.region_info(up.region.id).map_err(|e| e.to_string())?;
        let child = w.mem.region_info(down.region.id).map_err(|e| e.to_string())?;
        if !info.enabled || !child.enabled {
            return Err(format!("hop {i} or {} is disabled", i + 1));
        }
        let want_offset = match info.alias {
            Some((target, offset)) if target == down.region.id => u128::from(up.offset) + u128::from(offset),
            Some(_) => return Err(format!("hop {} is not the alias target of hop {i}", i + 1)),
            None if info.subregions.contains(&down.region.id) => {
                u128::from(up.offset).wrapping_sub(u128::from(child.addr))
            }
            None => return Err(format!("hop {} is not a subregion of hop {i}", i + 1)),
        };
        if u128::from(down.offset) != want_offset || want_offset >= child.size {
            return Err(format!(
                "hop {}: offset {:#x}, expected {want_offset:#x}",
                i + 1,
                down.offset
            ));
        }
    }
    Ok(())
}
