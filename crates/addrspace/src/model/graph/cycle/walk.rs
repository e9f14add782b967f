//! One walk of the cycle check: a render of a region on a cycle with an unbounded clip,
//! keeping the path of every visit so that a refusal can name it.

use super::{Endless, MAX_REENTRIES, PROBE_BUDGET};
use crate::model::graph::Graph;
use crate::model::region::{Body, RegionId};

struct Frame {
    id: RegionId,
    /// Absolute base of the region's container (as `render_window` carries it).
    base: i128,
    clip: (i128, i128),
    parent: u32,
    /// Visits of the start region on the path so far.
    trips: u32,
}

const NO_PARENT: u32 = u32::MAX;

/// Renders `start` as a view root would, through the regions for which `leads_to_cycle`
/// holds, and fails on the first rule it breaks.
pub(super) fn walk(g: &Graph, leads_to_cycle: &dyn Fn(RegionId) -> bool, start: RegionId) -> Result<(), Endless> {
    let unbounded = (i128::MIN / 4, i128::MAX / 4);
    let mut frames = vec![Frame {
        id: start,
        base: 0,
        clip: unbounded,
        parent: NO_PARENT,
        trips: 0,
    }];
    let mut todo = vec![0u32];
    let path = |frames: &[Frame], mut f: u32, stop: Option<u32>| -> Vec<String> {
        let mut names = Vec::new();
        while f != NO_PARENT {
            names.push(g.name(frames[f as usize].id));
            if Some(f) == stop {
                break;
            }
            f = frames[f as usize].parent;
        }
        names.reverse();
        names
    };
    while let Some(f) = todo.pop() {
        if frames.len() > PROBE_BUDGET {
            return Err(Endless {
                why: format!(
                    "rendering `{}` would make more than {PROBE_BUDGET} visits through its cycles",
                    g.name(start)
                ),
                chain: path(&frames, f, None),
            });
        }
        let Frame {
            id, base, clip, trips, ..
        } = frames[f as usize];
        let n = g.node(id);
        let base = base + i128::from(n.addr);
        let (lo, hi) = (clip.0.max(base), clip.1.min(base + n.size as i128));
        if lo >= hi {
            continue;
        }
        let mut trips = trips;
        if id == start && f != 0 {
            trips += 1;
            // The same region at the same address on one path: the path repeats forever.
            let mut a = frames[f as usize].parent;
            while a != NO_PARENT {
                let fa = &frames[a as usize];
                if fa.id == start && fa.base + i128::from(n.addr) == base {
                    return Err(Endless {
                        why: format!(
                            "`{}` comes back to itself at the same address, so rendering would never end \
                             (QEMU recurses until its stack overflows)",
                            n.name
                        ),
                        chain: path(&frames, f, Some(a)),
                    });
                }
                a = fa.parent;
            }
            if trips > MAX_REENTRIES {
                return Err(Endless {
                    why: format!("rendering would re-enter `{}` more than {MAX_REENTRIES} times", n.name),
                    chain: path(&frames, f, None),
                });
            }
        }
        let mut push = |id: RegionId, base: i128, frames: &mut Vec<Frame>| {
            if leads_to_cycle(id) {
                frames.push(Frame {
                    id,
                    base,
                    clip: (lo, hi),
                    parent: f,
                    trips,
                });
                todo.push((frames.len() - 1) as u32);
            }
        };
        if let Body::Alias { target, offset } = n.body {
            let t = g.node(target);
            push(target, base - i128::from(t.addr) - i128::from(offset), &mut frames);
        }
        for &c in &n.subregions {
            push(c, base, &mut frames);
        }
    }
    Ok(())
}
