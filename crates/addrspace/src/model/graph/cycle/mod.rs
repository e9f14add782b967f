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
//! in which rendering some region `R` that lies on a cycle — with an unbounded clip, as the
//! root of a view would, through the regions that lead to a cycle — would
//! - come back to `R` at the same absolute address with a non-empty clip (the path would
//!   repeat forever);
//! - come back to `R` more than [`MAX_REENTRIES`] times on one path;
//! - make more than [`PROBE_BUDGET`] visits (cycles nested in cycles multiply: six containers
//!   nested in each other, each showing itself 60 times through an alias of itself, would
//!   render 60^6 times).
//!
//! A change at a region can only lengthen the renders of the regions that reach it, so the
//! regions on cycles among those are checked, each walked through everything below it that
//! leads to a cycle. A region on no cycle renders what the cycles below it render, once per
//! way in, so the rules bound every render. The rules are a property of the graph: a machine
//! accepted one change at a time is accepted again, whatever order a board file or a dump
//! builds it in (every graph on the way is part of the final one, and removing edges or
//! shrinking windows only removes paths). The check ignores `enabled` (enabling a region must
//! not be able to hang the renderer). Cycles made of containers alone are refused outright, as
//! before: a region cannot be inside itself.
//!
//! The check runs only for changes that touch a cycle; its cost is the walks of the regions on
//! cycles above the change — one per region, so a single cycle through `n` regions costs
//! O(n²) to check (a thousand-region cycle: milliseconds).
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

mod reach;
mod scc;
mod walk;

pub(crate) use reach::{inside, reaches, successors, Marks};

use crate::model::graph::Graph;
use crate::model::region::RegionId;

/// Re-entries of a region on a cycle allowed along one rendering path that starts at it.
pub const MAX_REENTRIES: u32 = 64;

/// Region visits a walk from a region on a cycle may make before the change is refused.
pub const PROBE_BUDGET: usize = 100_000;

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

/// Refuses a change at `changed` if rendering a region on a cycle above it would break a
/// rule (see the module doc).
pub(crate) fn probe(g: &Graph, marks: &mut Marks, changed: RegionId) -> Result<(), Endless> {
    let above = reach::closure(g, &[changed], reach::Dir::Up, |_| true);
    // The regions on a cycle among them (the changed one first: its walk names the path a
    // refusal is most about).
    let mut starts: Vec<RegionId> = Vec::new();
    for &r in &above {
        let mut next = Vec::new();
        successors(g, r, |s| {
            next.push(s);
            false
        });
        if reaches(g, marks, &next, r) {
            starts.push(r);
        }
    }
    if starts.is_empty() {
        return Ok(());
    }
    // What their walks can go through: the regions below them that lead to a cycle, found
    // exactly among those marked as possibly leading to one.
    let below = reach::closure(g, &starts, reach::Dir::Down, |id| g.node(id).leads_to_cycle);
    let on_cycle = scc::on_cycles(g, &below);
    let to_cycle = reach::leading_to(g, &below, &on_cycle);
    for start in starts {
        walk::walk(g, &|id| to_cycle[id.index as usize], start)?;
    }
    Ok(())
}
