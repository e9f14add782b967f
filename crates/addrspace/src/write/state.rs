//! The writer's state behind the topology lock: the region graph, the address spaces in
//! creation order, the table of rendered views, and what the open transaction touched.
//!
//! It is data, with no behaviour beyond lookups: [`commit`](crate::write::commit) plans over
//! it, [`shared`](crate::write::shared) locks it, the facade above mutates it.

use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::base::idmap::IdMap;
use crate::base::ioeventfd::IoEventFd;
use crate::model::graph::Graph;
use crate::model::region::RegionId;
use crate::read::publish::SpaceCell;
use crate::view::flatview::FlatView;
use crate::write::listener::Registered;

/// How a commit recomputes views.
///
/// More modes may come (the enum is `#[non_exhaustive]`), so a match needs a `_` arm:
///
/// ```compile_fail
/// fn scoped(mode: addrspace::CommitMode) -> bool {
///     match mode {
///         addrspace::CommitMode::Scoped => true,
///         addrspace::CommitMode::Full => false,
///     } // error: `_` not covered
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CommitMode {
    /// Only views that can see a changed region, only the changed windows, only the
    /// listeners of changed address spaces.
    #[default]
    Scoped,
    /// QEMU's behaviour: every view re-rendered, every listener called, at every commit that
    /// changed something. (QEMU's own test, `memory_region_update_pending`, also skips
    /// changes no view can show — mapping a disabled region — and handles ioeventfd-only
    /// changes without `begin`/`commit` or a render; this mode commits for those.)
    Full,
}

/// One registered address space, in creation order.
pub(crate) struct SpaceRecord {
    pub id: u64,
    pub name: Arc<str>,
    pub root: RegionId,
    /// The root its view is rendered from (`None`: the empty view): its physical root, or a
    /// structurally identical one's (see `sharing`).
    pub key: Option<RegionId>,
    /// Its physical root (QEMU's `memory_region_get_flatview_root`).
    pub phys: Option<RegionId>,
    /// Where its view is published (one cell per space: see `publish`).
    pub cell: Arc<SpaceCell>,
    /// The regions its physical root depends on (see `render::physical_root_chain`).
    pub chain: Vec<RegionId>,
    /// The view its listeners were last told about (kept for spaces with listeners).
    pub view: Arc<FlatView>,
    /// Listeners, in priority then registration order.
    pub listeners: Arc<Vec<Registered>>,
    /// The ioeventfds its listeners were last told about.
    pub eventfds: Arc<Vec<IoEventFd>>,
}

/// One rendered view and the spaces that show it (QEMU's `flat_views` table entry).
/// The rendered views, by the region they were rendered from (`None`: the empty view).
pub(crate) type Views = IdMap<Option<RegionId>, ViewEntry>;

/// The spaces showing a view: (space id, the space's cell), ascending by id (creation order).
///
/// Shared with a commit's publications, which take one reference per updated view rather
/// than one per space (a view of `system` has hundreds of spaces); membership changes copy
/// it if a delivery still holds it.
pub(crate) type Members = Arc<Vec<(u64, Arc<SpaceCell>)>>;

pub(crate) struct ViewEntry {
    pub view: Arc<FlatView>,
    /// The spaces using it.
    pub spaces: Members,
    /// The subset of `spaces` with listeners.
    pub listening: Vec<u64>,
    /// The ioeventfds visible in it.
    pub eventfds: Arc<Vec<IoEventFd>>,
    /// The sharing signature of its root when last rendered (scoped mode).
    pub sig: Option<crate::model::sharing::Signature>,
}

pub(crate) struct State {
    pub graph: Graph,
    pub spaces: Vec<SpaceRecord>,
    pub depth: u32,
    /// Regions that can see a change of the open transaction, with the changed windows.
    pub touched: crate::write::propagate::Windows,
    /// Every view must be re-rendered (global dirty-logging changes).
    pub touch_all: bool,
    /// A change could not be followed to the views it reaches (propagation gave up): every
    /// view is rendered again at the commit.
    pub rerender_all: bool,
    /// Regions that moved inside their container (a view of such a root shifts).
    pub moved: Vec<RegionId>,
    /// Roots whose view may borrow a view that did not exist when it was made (see
    /// `layer`): the next commit tries again.
    pub relayer: Vec<RegionId>,
    /// Regions whose ioeventfd registrations changed.
    pub eventfd_touched: Vec<RegionId>,
    pub mode: CommitMode,
    /// One view per physical root; `None` is the empty view.
    pub views: Views,
    /// Space ids by region of their simplification chain.
    pub chains: IdMap<RegionId, Vec<u64>>,
    /// Regions whose simplification may have changed in the open transaction (see
    /// [`State::seed`]): the spaces whose chain holds one are simplified again at the commit.
    pub seeds: Vec<RegionId>,
    pub scratch: crate::write::propagate::Scratch,
    /// Representative roots of structurally identical roots.
    pub reps: crate::model::sharing::Representatives,
    /// The space of each registered listener.
    pub listener_space: IdMap<u64, u64>,
    /// Number of ioeventfd registrations on all regions.
    pub eventfd_regs: usize,
    /// Listener callbacks are running (topology changes are refused).
    pub delivering: u32,
    pub next_space: u64,
    pub next_listener: u64,
}

/// What a mutation changed about the regions it reports as touched, which decides whose
/// simplification (QEMU's flat-view root, and the sharing representative) it can change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Something a touched region holds or is: its subregions (mapped, unmapped, moved,
    /// re-prioritised), its alias window, flags or dirty logging. A region's simplification
    /// reads its own attributes and its subregions' (and its signature: its own and its
    /// children's, which `representative` puts on the chain), so the touched region is
    /// the only seed.
    Inside,
    /// A touched region's size or enabled flag: its container's simplification reads both
    /// (an only child must be enabled and cover the container), so the container is a seed
    /// too, even when the child itself is on no chain (a child that does not cover).
    Extent,
}

impl ViewEntry {
    /// An entry for `view`, with no space yet.
    pub(crate) fn new(
        view: Arc<FlatView>,
        eventfds: Arc<Vec<IoEventFd>>,
        sig: Option<crate::model::sharing::Signature>,
    ) -> ViewEntry {
        ViewEntry {
            view,
            spaces: Members::default(),
            listening: Vec::new(),
            eventfds,
            sig,
        }
    }

    /// The ids of its spaces, ascending.
    pub(crate) fn space_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.spaces.iter().map(|&(id, _)| id)
    }

    /// Adds a space (once).
    pub(crate) fn join(&mut self, id: u64, cell: &Arc<SpaceCell>) {
        if let Err(pos) = self.spaces.binary_search_by_key(&id, |&(s, _)| s) {
            Arc::make_mut(&mut self.spaces).insert(pos, (id, cell.clone()));
        }
    }

    /// Removes a space, from the spaces and the listening ones.
    pub(crate) fn leave(&mut self, id: u64) {
        if let Ok(pos) = self.spaces.binary_search_by_key(&id, |&(s, _)| s) {
            Arc::make_mut(&mut self.spaces).remove(pos);
        }
        self.listening.retain(|&s| s != id);
    }
}

impl State {
    /// Records the seeds of a mutation that touched `touched` (see [`Reach`]).
    ///
    /// A change inside a region never reaches its container's simplification: a busy
    /// container such as `system` (on the chain of every bus-master space) is seeded only
    /// when its own children change, not when a device deep under it moves a BAR.
    pub(crate) fn seed(&mut self, touched: &[crate::write::propagate::Touch], reach: Reach) {
        for &(r, ..) in touched {
            self.seeds.push(r);
            if reach == Reach::Extent {
                if let Some(c) = self.graph.get(r).ok().and_then(|n| n.container) {
                    self.seeds.push(c);
                }
            }
        }
    }

    pub(crate) fn space_index(&self, id: u64) -> Option<usize> {
        self.spaces.binary_search_by_key(&id, |s| s.id).ok()
    }

    pub(crate) fn check_not_delivering(&self, what: &'static str) -> Result<()> {
        if self.delivering > 0 {
            return Err(Error::InListener { what });
        }
        Ok(())
    }
}
