//! [`Memory`]: one machine's memory system — the region graph, its address spaces, and the
//! transactions that turn graph changes into newly published flat views.
//!
//! The graph lives behind one re-entrant topology lock (QEMU's BQL, narrowed to memory).
//! Every mutator runs inside a transaction: an explicit [`Transaction`] guard, or an
//! implicit one around the single call. Nested transactions fold into the outermost; only
//! the outermost commit updates views — by default only the views that can see a change, and
//! only in the changed windows (see [`CommitMode`]) — then tells the
//! listeners of the spaces whose view changed. Readers never take the lock: they load the
//! flat view their address space follows, so during a transaction they keep seeing the views
//! of the previous commit.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

use crate::base::error::Result;
use crate::base::idmap::IdMap;
use crate::base::stats::{Counters, LiveToken, Stats};
use crate::model::graph::Graph;
use crate::model::region::{Body, Leaf, RegionId, RegionInfo};
use crate::view::flatview::FlatView;
use crate::view::render::physical_root;
use crate::write::commit::{self, CommitMode, Touch};
use crate::write::shared::Shared;
use crate::write::state::{Reach, State, ViewEntry};

/// A machine's memory system: regions, address spaces and transactions.
///
/// ```
/// use addrspace::{GuestAddr, Memory};
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let ram = mem.ram("ram", 0x10000)?;
/// let rom = mem.rom("rom", 0x1000)?;
/// {
///     let _tx = mem.transaction(); // one render for both changes
///     mem.add_subregion(system, 0, ram)?;
///     mem.add_subregion_overlap(system, 0x8000, rom, 1)?;
/// }
/// let space = mem.address_space("memory", system)?;
/// let (range, offset) = space.lookup(GuestAddr(0x8010)).unwrap();
/// assert_eq!((range.name(), range.type_word(), offset.0), ("rom", "rom", 0x10));
/// # Ok::<(), addrspace::Error>(())
/// ```
#[derive(Clone)]
pub struct Memory {
    pub(crate) shared: Arc<Shared>,
}

/// A handle that does not keep the memory system alive (see [`Memory::downgrade`]).
#[derive(Clone, Default)]
pub struct WeakMemory {
    shared: std::sync::Weak<Shared>,
}

impl WeakMemory {
    /// The memory system, if it is still alive.
    pub fn upgrade(&self) -> Option<Memory> {
        self.shared.upgrade().map(|shared| Memory { shared })
    }
}

impl std::fmt::Debug for WeakMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakMemory")
    }
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory").field("stats", &self.stats()).finish()
    }
}

impl Default for Memory {
    fn default() -> Self {
        Memory::new()
    }
}

/// A read-only snapshot of a memory system (see `Memory::inspect`).
pub(crate) struct Snapshot<'a> {
    /// The region graph.
    pub graph: &'a Graph,
    /// The address spaces, in creation order.
    pub spaces: Vec<SpaceView>,
}

/// One address space as a snapshot shows it.
pub(crate) struct SpaceView {
    pub name: Arc<str>,
    pub root: RegionId,
    /// Its physical root (QEMU's `memory_region_get_flatview_root`).
    pub phys: Option<RegionId>,
    /// The view it publishes.
    pub view: Arc<FlatView>,
}

/// An open transaction. Mutations made while it lives are rendered and published once, when
/// the outermost transaction ends (on drop or [`commit`](Transaction::commit)). It holds the
/// topology lock, so other threads' mutations wait until it ends.
///
/// It is a guard: bind it to a named variable for the scope of the changes. A bare
/// `mem.transaction();` (or `let _ = mem.transaction();`) ends it at once, so the changes
/// after it are committed one by one; the first is a warning:
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let mem = addrspace::Memory::new();
/// mem.transaction(); // error: unused `Transaction` that must be used
/// ```
#[must_use = "the transaction ends (and commits) when this guard is dropped: bind it, `let _tx = mem.transaction();` (not `let _`)"]
pub struct Transaction<'a> {
    memory: &'a Memory,
    _guard: ReentrantMutexGuard<'a, RefCell<State>>,
}

impl Transaction<'_> {
    /// Ends the transaction now (same as dropping it).
    pub fn commit(self) {}
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Memory;
    fn deref(&self) -> &Memory {
        self.memory
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        let outermost = {
            let mut st = self._guard.borrow_mut();
            st.depth -= 1;
            st.depth == 0
        };
        if outermost {
            self.memory.shared.commit(&self._guard);
        }
    }
}

impl Memory {
    /// An empty memory system.
    pub fn new() -> Memory {
        let counters = Arc::new(Counters::default());
        let empty = Arc::new(FlatView::new(None, None, Vec::new(), LiveToken::new(&counters)));
        let mut views = IdMap::default();
        views.insert(None, ViewEntry::new(empty, Arc::default(), None));
        Memory {
            shared: Arc::new(Shared {
                state: ReentrantMutex::new(RefCell::new(State {
                    graph: Graph::default(),
                    spaces: Vec::new(),
                    depth: 0,
                    touched: IdMap::default(),
                    touch_all: false,
                    rerender_all: false,
                    moved: Vec::new(),
                    relayer: Vec::new(),
                    eventfd_touched: Vec::new(),
                    mode: CommitMode::Scoped,
                    views,
                    chains: IdMap::default(),
                    seeds: Vec::new(),
                    scratch: crate::write::propagate::Scratch::default(),
                    reps: Default::default(),
                    listener_space: IdMap::default(),
                    eventfd_regs: 0,
                    delivering: 0,
                    next_space: 0,
                    next_listener: 0,
                })),
                counters,
            }),
        }
    }

    /// A weak handle, for device models: the ops of a region live inside the views of this
    /// memory system, so a device that keeps a strong [`Memory`] would keep the whole
    /// system (and itself) alive forever. Keep a `WeakMemory` and upgrade it when needed.
    pub fn downgrade(&self) -> WeakMemory {
        WeakMemory {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Opens a transaction (see [`Transaction`]). Transactions nest.
    pub fn transaction(&self) -> Transaction<'_> {
        let guard = self.shared.lock();
        guard.borrow_mut().depth += 1;
        Transaction {
            memory: self,
            _guard: guard,
        }
    }

    /// Runs `f` on the state without opening a transaction (queries), with every subregion
    /// list in order.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.with_state_unordered(|st| {
            st.graph.normalize();
            f(st)
        })
    }

    /// A read-only look at the memory system under its lock, for printers and exporters
    /// (`info mtree`): they see the graph and the spaces, never the writer's state.
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&Snapshot<'_>) -> R) -> R {
        self.with_state(|st| {
            let spaces = st
                .spaces
                .iter()
                .map(|sp| SpaceView {
                    name: sp.name.clone(),
                    root: sp.root,
                    phys: sp.phys,
                    view: sp.cell.load(),
                })
                .collect();
            f(&Snapshot {
                graph: &st.graph,
                spaces,
            })
        })
    }

    /// [`with_state`](Self::with_state) for what never reads the order of a subregion list
    /// (creating regions, bookkeeping): it leaves lists that a batch of insertions put out of
    /// order unsorted, so that the batch costs one sort per container, not one per call.
    pub(crate) fn with_state_unordered<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let guard = self.shared.lock();
        let mut st = guard.borrow_mut();
        f(&mut st)
    }

    /// Runs a mutation inside a (possibly implicit) transaction; records the windows it
    /// reports as changed, and the regions whose simplification it may change (`reach`),
    /// for the commit.
    pub(crate) fn mutate(&self, reach: Reach, f: impl FnOnce(&mut Graph) -> Result<Vec<Touch>>) -> Result<()> {
        let tx = self.transaction();
        {
            let mut st = tx._guard.borrow_mut();
            st.check_not_delivering("change the topology")?;
            let touched = f(&mut st.graph)?;
            let st = &mut *st;
            st.seed(&touched, reach);
            if !commit::propagate(&st.graph, &mut st.scratch, &touched, &mut st.touched) {
                st.rerender_all = true;
            }
        }
        drop(tx);
        Ok(())
    }

    /// Records that `id`'s address changed: a view of `id` itself shows it at its address, and
    /// the address is part of its sharing signature.
    pub(crate) fn moved(&self, id: RegionId) {
        self.with_state_unordered(|st| {
            st.moved.push(id);
            st.seeds.push(id);
        });
    }

    /// Chooses between scoped commits (the default) and QEMU's full rebuild.
    pub fn set_commit_mode(&self, mode: CommitMode) {
        self.with_state(|st| {
            if st.mode != mode {
                // QEMU's mode keeps no sharing signatures: forget them rather than trust
                // ones older than the views they describe.
                st.reps.clear();
                for e in st.views.values_mut() {
                    e.sig = None;
                }
            }
            st.mode = mode;
        });
    }

    /// A snapshot of a region's attributes.
    pub fn region_info(&self, id: RegionId) -> Result<RegionInfo> {
        self.with_state(|st| st.graph.info(id))
    }

    /// The reader-side half (name, RAM block, ops) of a terminating region; `None` for
    /// containers and aliases.
    pub fn leaf(&self, id: RegionId) -> Result<Option<Arc<Leaf>>> {
        self.with_state(|st| {
            Ok(match &st.graph.get(id)?.body {
                Body::Leaf(l) => Some(l.clone()),
                _ => None,
            })
        })
    }

    /// Ids of all live regions.
    pub fn regions(&self) -> Vec<RegionId> {
        self.with_state(|st| st.graph.ids().collect())
    }

    /// The region that views of `root` are rendered from, after QEMU's simplification
    /// (`None`: the shared empty view).
    pub fn physical_root(&self, root: RegionId) -> Result<Option<RegionId>> {
        self.with_state(|st| {
            st.graph.get(root)?;
            Ok(physical_root(&st.graph, root))
        })
    }

    /// Renders `root` now, outside any address space (for inspection and tests).
    pub fn render(&self, root: RegionId) -> Result<Arc<FlatView>> {
        self.with_state(|st| {
            st.graph.get(root)?;
            let key = physical_root(&st.graph, root);
            Ok(crate::write::update::render_view(&st.graph, &self.shared.counters, key))
        })
    }

    /// Live-object and work counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let regions = self.with_state(|st| st.graph.live());
        Stats {
            regions,
            address_spaces: c.spaces.load(Ordering::Relaxed),
            flatviews: c.flatviews.load(Ordering::Relaxed),
            renders: c.renders.load(Ordering::Relaxed),
            patches: c.patches.load(Ordering::Relaxed),
            layers: c.layers.load(Ordering::Relaxed),
            resimplified: c.resimplified.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            listeners: c.listeners.load(Ordering::Relaxed),
            listener_calls: c.listener_calls.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, GuestAddr, SIZE_2_64};

    fn machine() -> (Memory, RegionId, RegionId) {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let ram = m.ram("ram", 0x1000).unwrap();
        m.add_subregion(sys, 0, ram).unwrap();
        (m, sys, ram)
    }

    #[test]
    fn nested_transactions_render_once_at_the_outermost_commit() {
        let (m, sys, _) = machine();
        let space = m.address_space("memory", sys).unwrap();
        let before = m.stats();
        let a = m.ram("a", 0x1000).unwrap();
        let b = m.ram("b", 0x1000).unwrap();
        {
            let outer = m.transaction();
            outer.add_subregion(sys, 0x1000, a).unwrap();
            {
                let inner = m.transaction();
                inner.add_subregion(sys, 0x2000, b).unwrap();
            }
            assert_eq!(m.stats().renders, before.renders, "inner commit folds into outer");
            assert!(space.lookup(GuestAddr(0x1000)).is_none(), "readers see the old view");
            outer.commit();
        }
        let after = m.stats();
        assert_eq!(after.renders - before.renders, 1);
        assert_eq!(after.commits - before.commits, 1);
        assert_eq!(space.lookup(GuestAddr(0x2000)).unwrap().0.name(), "b");
    }

    #[test]
    fn no_render_when_nothing_changed() {
        let (m, sys, ram) = machine();
        let _space = m.address_space("memory", sys).unwrap();
        let before = m.stats();
        drop(m.transaction());
        m.set_enabled(ram, true).unwrap(); // already enabled
        m.set_address(ram, 0).unwrap(); // already there
        let unmapped = m.ram("spare", 0x1000).unwrap();
        m.set_readonly(unmapped, false).unwrap();
        assert_eq!(m.stats().renders, before.renders);
    }

    #[test]
    fn failed_mutation_changes_nothing() {
        let (m, sys, ram) = machine();
        let space = m.address_space("memory", sys).unwrap();
        let before = m.stats();
        assert!(matches!(
            m.add_subregion(sys, 0x5000, ram),
            Err(Error::AlreadyMapped { .. })
        ));
        assert!(matches!(m.add_subregion(ram, 0, sys), Err(Error::Cycle { .. })));
        // An alias of its own container at the address it shows: rendering would never end.
        let al = m.alias("loop", sys, 0x8000, 0x1000).unwrap();
        assert!(matches!(
            m.add_subregion(sys, 0x8000, al),
            Err(Error::EndlessCycle { .. })
        ));
        assert_eq!(m.region_info(al).unwrap().container, None, "refused: not mapped");
        assert!(matches!(m.delete_region(ram), Err(Error::InUse { .. })));
        assert!(matches!(m.delete_region(sys), Err(Error::InUse { .. })));
        assert!(matches!(
            m.container("huge", SIZE_2_64 + 1),
            Err(Error::SizeTooLarge { .. })
        ));
        assert!(matches!(m.ram("too-big", SIZE_2_64), Err(Error::RamAlloc { .. })));
        assert_eq!(m.stats().renders, before.renders);
        assert_eq!(space.view().ranges().len(), 1);
    }

    #[test]
    fn spaces_with_the_same_physical_root_share_one_view() {
        let (m, sys, _) = machine();
        let a = m.address_space("memory", sys).unwrap();
        let b = m.address_space("cpu-memory-0", sys).unwrap();
        let bm = m.container("bus master container", SIZE_2_64).unwrap();
        let bma = m.alias("bus master", sys, 0, SIZE_2_64).unwrap();
        m.add_subregion(bm, 0, bma).unwrap();
        let dev = m.address_space("dev", bm).unwrap();
        assert!(Arc::ptr_eq(&a.view(), &b.view()));
        assert!(Arc::ptr_eq(&a.view(), &dev.view()), "alias root collapses onto system");
        m.set_enabled(bma, false).unwrap();
        assert!(dev.view().root().is_none() && dev.view().ranges().is_empty());
        assert!(Arc::ptr_eq(&a.view(), &b.view()), "still shared after a commit");
    }

    #[test]
    fn dropping_the_last_handle_destroys_the_space_and_frees_views() {
        let (m, sys, ram) = machine();
        let base = m.stats();
        let a = m.address_space("memory", sys).unwrap();
        let a2 = a.clone();
        let held = a.view();
        drop(a);
        assert_eq!(m.stats().address_spaces, base.address_spaces + 1, "a clone keeps it");
        drop(a2);
        assert_eq!(m.stats().address_spaces, base.address_spaces);
        assert_eq!(m.stats().flatviews, base.flatviews + 1, "a reader still holds the view");
        m.remove_subregion(sys, ram).unwrap();
        m.delete_region(ram).unwrap();
        assert_eq!(held.ranges()[0].name(), "ram", "the held view keeps the RAM alive");
        drop(held);
        assert_eq!(m.stats().flatviews, base.flatviews);
    }

    #[test]
    fn deleted_ids_are_not_reused() {
        let m = Memory::new();
        let a = m.ram("a", 0x1000).unwrap();
        m.delete_region(a).unwrap();
        let b = m.ram("b", 0x1000).unwrap();
        assert_ne!(a, b);
        assert!(matches!(m.region_info(a), Err(Error::UnknownRegion(_))));
    }

    #[test]
    fn memory_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Memory>();
        assert_send_sync::<crate::AddressSpace>();
        assert_send_sync::<FlatView>();
    }

    #[test]
    fn readers_on_other_threads_do_not_wait_for_an_open_transaction() {
        let (m, sys, _) = machine();
        let space = m.address_space("memory", sys).unwrap();
        let extra = m.ram("extra", 0x1000).unwrap();
        let tx = m.transaction();
        tx.add_subregion(sys, 0x1000, extra).unwrap();
        // The transaction holds the topology lock; a reader thread still completes.
        let reader = space.clone();
        let seen = std::thread::spawn(move || reader.lookup(GuestAddr(0x1000)).map(|(r, _)| r.name().to_string()))
            .join()
            .unwrap();
        assert_eq!(seen, None, "the uncommitted change is not visible");
        drop(tx);
        assert_eq!(space.lookup(GuestAddr(0x1000)).unwrap().0.name(), "extra");
    }

    #[test]
    fn a_terabyte_of_ram_costs_nothing_until_touched() {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let big = m.ram("big", 1 << 40).unwrap();
        m.add_subregion(sys, 1 << 40, big).unwrap();
        let space = m.address_space("memory", sys).unwrap();
        let (range, off) = space.lookup(GuestAddr((1 << 41) - 1)).unwrap();
        assert_eq!((range.name(), off.0), ("big", (1 << 40) - 1));
        let block = m.leaf(big).unwrap().unwrap().backend().ram().unwrap().clone();
        assert!(block.write((1 << 40) - 8, &[0xaa; 8]));
    }

    #[test]
    fn creating_a_space_inside_a_transaction_reuses_a_published_view() {
        let (m, sys, _) = machine();
        // Two children, so the physical root stays `system` (one child at 0 would be
        // simplified to the child itself).
        let rom = m.rom("rom", 0x1000).unwrap();
        m.add_subregion(sys, 0x8000, rom).unwrap();
        let a = m.address_space("memory", sys).unwrap();
        let tx = m.transaction();
        let extra = m.ram("extra", 0x1000).unwrap();
        tx.add_subregion(sys, 0x1000, extra).unwrap();
        let b = m.address_space("cpu-memory-0", sys).unwrap();
        assert!(
            Arc::ptr_eq(&a.view(), &b.view()),
            "joins the existing (pre-commit) view, as QEMU does"
        );
        drop(tx);
        assert!(Arc::ptr_eq(&a.view(), &b.view()));
        assert_eq!(b.view().ranges().len(), 3);
    }
}
