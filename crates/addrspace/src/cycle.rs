//! Cycles in the region graph: which ones QEMU renders, and the check that refuses the rest.
//!
//! A region can be an alias of its own container or of any ancestor: ARM's SSE-200 maps
//! `alias 1` (a window of `armsse-container`) into `armsse-container`, and each CPU's
//! `alias 3` (a window of `arm-sse-cpu-containerN`) into that same container. QEMU has no
//! cycle check on aliases: rendering follows the alias back into its ancestor, and stops
//! because every step intersects the clip window with the previous one — the alias's own
//! range lies outside the shifted window, so the second visit renders nothing of it. A cycle
//! whose trip does not shift the window (an alias at address B showing offset B of its own
//! container) would recurse forever; QEMU overflows its stack.
//!
//! So the graph allows cycles through aliases and refuses, when a change is made, any graph
//! in which rendering some region `R` — with an unbounded clip, as the root of a view would,
//! through the regions that can lead back to `R` — would
//! - come back to `R` at the same absolute address with a non-empty clip (the path would
//!   repeat forever);
//! - come back to `R` more than [`MAX_REENTRIES`] times on one path;
//! - visit more than [`PROBE_BUDGET`] regions in all (the cycles would make every render that
//!   slow).
//!
//! A change can only lengthen the renders of the regions on a cycle through the changed
//! region, so those are the regions checked. Any view that reaches `R` enters it with a
//! narrower clip, so what the check accepts, every render finishes. The rules are a property
//! of the graph: a machine accepted one change at a time is accepted again, whatever order a
//! board file or a dump builds it in (every graph on the way is part of the final one, and
//! removing edges or shrinking windows only removes paths). The check ignores `enabled`
//! (enabling a region must not be able to hang the renderer). Cycles made of containers alone
//! are refused outright, as before: a region cannot be inside itself.
//!
//! Reachability walks forward from one end and backward from the other in lockstep, so it
//! costs what the smaller side costs: mapping a fresh region into a deep tree, or a deep tree
//! into a fresh container, is O(1) whatever the depth.
//!
//! ```
//! use addrspace::{Error, GuestAddr, Memory, SIZE_2_64};
//!
//! let mem = Memory::new();
//! let sse = mem.container("armsse-container", SIZE_2_64)?;
//! let ram = mem.ram("sram", 0x8000)?;
//! mem.add_subregion(sse, 0x2000_0000, ram)?;
//! // ARM SSE-200's `alias 2`: the container's 0x2000_0000 window again at 0x3000_0000.
//! let alias2 = mem.alias("alias 2", sse, 0x2000_0000, 0x1000_0000)?;
//! mem.add_subregion_overlap(sse, 0x3000_0000, alias2, -1500)?;
//! let space = mem.address_space("cpu", sse)?;
//! let (range, offset) = space.lookup(GuestAddr(0x3000_0010)).unwrap();
//! assert_eq!((range.name(), offset.0), ("sram", 0x10));
//!
//! // The same window shown at its own address would recurse forever: refused, not mapped.
//! let endless = mem.alias("endless", sse, 0x2000_0000, 0x1000)?;
//! let err = mem.add_subregion(sse, 0x2000_0000, endless).unwrap_err();
//! assert!(matches!(err, Error::EndlessCycle { .. }));
//! assert_eq!(mem.region_info(endless)?.container, None);
//! # Ok::<(), addrspace::Error>(())
//! ```

use crate::graph::Graph;
use crate::region::{Body, RegionId};

/// Re-entries of the changed region allowed along one rendering path.
pub const MAX_REENTRIES: u32 = 64;

/// Region visits a probe may make through cycles before the change is refused.
pub const PROBE_BUDGET: usize = 100_000;

/// Visit marks by region index, stamped so that a walk needs no clearing and no hashing.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    stamp: u32,
    fwd: Vec<u32>,
    bwd: Vec<u32>,
}

impl Marks {
    fn begin(&mut self, capacity: usize) -> u32 {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.fwd.iter_mut().chain(self.bwd.iter_mut()).for_each(|m| *m = 0);
            self.stamp = 1;
        }
        self.fwd.resize(capacity, 0);
        self.bwd.resize(capacity, 0);
        self.stamp
    }
}

/// Regions rendering goes to from `id`: its subregions, or its alias target.
pub(crate) fn successors(g: &Graph, id: RegionId, mut f: impl FnMut(RegionId) -> bool) -> bool {
    let n = g.node(id);
    if let Body::Alias { target, .. } = n.body {
        if f(target) {
            return true;
        }
    }
    n.subregions.iter().any(|&c| f(c))
}

/// Regions rendering comes to `id` from: its container, and its aliases.
fn predecessors(g: &Graph, id: RegionId, mut f: impl FnMut(RegionId) -> bool) -> bool {
    let n = g.node(id);
    n.container.is_some_and(&mut f) || n.aliases.iter().any(|&a| f(a))
}

/// Whether rendering can go from any of `from` to `to` (through subregions and alias
/// targets, enabled or not). Bidirectional: costs about twice the smaller side's walk.
pub(crate) fn reaches(g: &Graph, marks: &mut Marks, from: &[RegionId], to: RegionId) -> bool {
    let stamp = marks.begin(g.capacity());
    let Marks { fwd, bwd, .. } = marks;
    bwd[to.index as usize] = stamp;
    let mut ahead: Vec<RegionId> = Vec::new();
    for &f in from {
        if f == to {
            return true;
        }
        if fwd[f.index as usize] != stamp {
            fwd[f.index as usize] = stamp;
            ahead.push(f);
        }
    }
    let mut behind = vec![to];
    loop {
        let Some(x) = ahead.pop() else { return false };
        let met = successors(g, x, |s| {
            let i = s.index as usize;
            if bwd[i] == stamp {
                return true;
            }
            if fwd[i] != stamp {
                fwd[i] = stamp;
                ahead.push(s);
            }
            false
        });
        if met {
            return true;
        }
        let Some(y) = behind.pop() else { return false };
        let met = predecessors(g, y, |p| {
            let i = p.index as usize;
            if fwd[i] == stamp {
                return true;
            }
            if bwd[i] != stamp {
                bwd[i] = stamp;
                behind.push(p);
            }
            false
        });
        if met {
            return true;
        }
    }
}

/// Whether `id` lies inside `of` through containers alone (or is `of`).
pub(crate) fn inside(g: &Graph, id: RegionId, of: RegionId) -> bool {
    let mut at = Some(id);
    while let Some(x) = at {
        if x == of {
            return true;
        }
        at = g.node(x).container;
    }
    false
}

/// Why a probe refused a change, and the path that shows it (region names, outermost first).
#[derive(Debug)]
pub(crate) struct Endless {
    pub why: String,
    pub chain: Vec<String>,
}

impl Endless {
    /// The chain as `a` → `b` → …, shortened in the middle when long.
    pub fn chain_text(&self) -> String {
        let quote = |s: &String| format!("`{s}`");
        let c = &self.chain;
        if c.len() <= 16 {
            return c.iter().map(quote).collect::<Vec<_>>().join(" → ");
        }
        let head: Vec<String> = c[..8].iter().map(quote).collect();
        let tail: Vec<String> = c[c.len() - 8..].iter().map(quote).collect();
        format!(
            "{} → … ({} more) … → {}",
            head.join(" → "),
            c.len() - 16,
            tail.join(" → ")
        )
    }
}

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

/// Refuses a change at `changed` if rendering would not finish, from any region of the
/// cycles through it (see the module doc). Every region whose renders the change can make
/// longer is on such a cycle, so the verdict is a property of the graph, not of the order in
/// which it was built: a machine accepted one change at a time is accepted again when a board
/// file or a dump builds it in another order.
pub(crate) fn probe(g: &Graph, marks: &mut Marks, changed: RegionId) -> Result<(), Endless> {
    // Regions that can reach `changed`: only they can be on a path that comes back to it.
    let stamp = marks.begin(g.capacity());
    let Marks { fwd, bwd: back, .. } = marks;
    back[changed.index as usize] = stamp;
    let mut stack = vec![changed];
    while let Some(y) = stack.pop() {
        predecessors(g, y, |p| {
            if back[p.index as usize] != stamp {
                back[p.index as usize] = stamp;
                stack.push(p);
            }
            false
        });
    }
    // Its cycles: what it reaches among those (every region on the way reaches it too).
    let mut cycle = vec![changed];
    fwd[changed.index as usize] = stamp;
    let mut k = 0;
    while let Some(&x) = cycle.get(k) {
        k += 1;
        successors(g, x, |s| {
            let i = s.index as usize;
            if back[i] == stamp && fwd[i] != stamp {
                fwd[i] = stamp;
                cycle.push(s);
            }
            false
        });
    }
    let leads_back = |id: RegionId| back[id.index as usize] == stamp;
    for &start in &cycle {
        walk(g, &leads_back, start)?;
    }
    Ok(())
}

/// Renders `start` as a view root would, through the regions for which `leads_back` holds,
/// and fails on the first rule it breaks.
fn walk(g: &Graph, leads_back: &dyn Fn(RegionId) -> bool, start: RegionId) -> Result<(), Endless> {
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
                why: format!("rendering would visit more than {PROBE_BUDGET} regions through its cycles"),
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
            if leads_back(id) {
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
