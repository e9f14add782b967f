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

use crate::base::access::{AccessRules, RegionOps};
use crate::base::error::{Error, Result};
use crate::base::idmap::IdMap;
use crate::base::ram::RamBlock;
use crate::base::stats::{Counters, LiveToken, Stats};
use crate::machine::address_space::{AddressSpace, SpaceShared};
use crate::model::graph::Graph;
use crate::model::region::{Backend, Body, Leaf, Node, RegionId, RegionInfo};
use crate::read::publish::SpaceCell;
use crate::view::flatview::FlatView;
use crate::view::render::{physical_root, physical_root_chain};
use crate::write::commit::{self, CommitMode, Touch};
use crate::write::shared::Shared;
use crate::write::state::{SpaceRecord, State, ViewEntry};

/// The window `child` occupies in its container, if it is mapped.
fn placed(g: &Graph, child: RegionId) -> Option<Touch> {
    let n = g.get(child).ok()?;
    let start = u128::from(n.addr);
    Some((n.container?, start, start + n.size))
}

/// The windows a re-placed region left and entered, if its place or priority changed.
fn moved_between(g: &Graph, id: RegionId, before: Option<Touch>, old_priority: i32) -> Vec<Touch> {
    let after = placed(g, id);
    let same = before == after && g.get(id).is_ok_and(|n| n.priority == old_priority);
    if same {
        return Vec::new();
    }
    before.into_iter().chain(after).collect()
}

/// The whole of `id`, if `changed`.
pub(crate) fn whole_if(g: &Graph, id: RegionId, changed: bool) -> Result<Vec<Touch>> {
    Ok(if changed {
        vec![(id, 0, g.get(id)?.size)]
    } else {
        Vec::new()
    })
}

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

/// An open transaction. Mutations made while it lives are rendered and published once, when
/// the outermost transaction ends (on drop or [`commit`](Transaction::commit)). It holds the
/// topology lock, so other threads' mutations wait until it ends.
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
        views.insert(
            None,
            ViewEntry {
                view: empty,
                spaces: Vec::new(),
                listening: Vec::new(),
                eventfds: Arc::default(),
                sig: None,
            },
        );
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

    /// [`with_state`](Self::with_state) for what never reads the order of a subregion list
    /// (creating regions, bookkeeping): it leaves lists that a batch of insertions put out of
    /// order unsorted, so that the batch costs one sort per container, not one per call.
    pub(crate) fn with_state_unordered<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let guard = self.shared.lock();
        let mut st = guard.borrow_mut();
        f(&mut st)
    }

    /// Runs a mutation inside a (possibly implicit) transaction; records the windows it
    /// reports as changed, for the commit.
    pub(crate) fn mutate(&self, f: impl FnOnce(&mut Graph) -> Result<Vec<Touch>>) -> Result<()> {
        let tx = self.transaction();
        {
            let mut st = tx._guard.borrow_mut();
            st.check_not_delivering("change the topology")?;
            let touched = f(&mut st.graph)?;
            let st = &mut *st;
            for &(r, ..) in &touched {
                st.seeds.push(r);
                if let Some(c) = st.graph.get(r).ok().and_then(|n| n.container) {
                    st.seeds.push(c);
                }
            }
            if !commit::propagate(&st.graph, &mut st.scratch, &touched, &mut st.touched) {
                st.rerender_all = true;
            }
        }
        drop(tx);
        Ok(())
    }

    /// Records that `id`'s address changed: a view of `id` itself shows it at its address, and
    /// the address is part of its sharing signature.
    fn moved(&self, id: RegionId) {
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

    fn create(&self, name: &str, size: u128, body: impl FnOnce() -> Result<Body>) -> Result<RegionId> {
        Graph::check_size(name, size)?;
        let body = body()?;
        Ok(self.with_state_unordered(|st| st.graph.insert(Node::new(name.into(), body, size))))
    }

    fn create_leaf(&self, name: &str, size: u128, backend: impl FnOnce() -> Result<Backend>) -> Result<RegionId> {
        Graph::check_size(name, size)?;
        let backend = backend()?;
        // Asked before the state is borrowed: the device may query the memory system.
        let rules = match &backend {
            Backend::Io(ops) | Backend::RomDevice(_, ops) => ops.rules(),
            _ => AccessRules::default(),
        };
        crate::base::access::check_rules(name, &rules)?;
        Ok(self.with_state_unordered(|st| {
            let name: Arc<str> = name.into();
            let id = st.graph.insert(Node::new(name.clone(), Body::Container, size));
            let leaf = Arc::new(Leaf {
                id,
                name,
                backend,
                rules,
                eventfds: Default::default(),
            });
            st.graph.get_mut(id).expect("just inserted").body = Body::Leaf(leaf);
            id
        }))
    }

    fn block(name: &str, size: u128) -> Result<Arc<RamBlock>> {
        let err = |source| Error::RamAlloc {
            name: name.to_string(),
            size,
            source,
        };
        let len = usize::try_from(size.div_ceil(4096) * 4096)
            .map_err(|_| err(std::io::Error::from(std::io::ErrorKind::OutOfMemory)))?;
        RamBlock::new(len).map(Arc::new).map_err(err)
    }

    /// A pure container of `size` bytes (up to 2^64): holes fall through.
    pub fn container(&self, name: &str, size: u128) -> Result<RegionId> {
        self.create(name, size, || Ok(Body::Container))
    }

    /// RAM backed by lazily committed host memory.
    pub fn ram(&self, name: &str, size: u128) -> Result<RegionId> {
        self.create_leaf(name, size, || Ok(Backend::Ram(Self::block(name, size)?)))
    }

    /// ROM: RAM that guest writes cannot change.
    pub fn rom(&self, name: &str, size: u128) -> Result<RegionId> {
        let id = self.ram(name, size)?;
        self.with_state_unordered(|st| st.graph.get_mut(id).expect("just created").readonly = true);
        Ok(id)
    }

    /// Device memory accessed through sized loads and stores (QEMU's `ram_device`).
    pub fn ram_device(&self, name: &str, size: u128) -> Result<RegionId> {
        self.create_leaf(name, size, || Ok(Backend::RamDevice(Self::block(name, size)?)))
    }

    /// A ROM device: romd mode (the default) reads RAM directly, writes go to `ops`.
    pub fn rom_device(&self, name: &str, size: u128, ops: Arc<dyn RegionOps>) -> Result<RegionId> {
        self.create_leaf(name, size, || Ok(Backend::RomDevice(Self::block(name, size)?, ops)))
    }

    /// MMIO or port I/O handled by `ops`. With subregions it fills its own gaps.
    pub fn io(&self, name: &str, size: u128, ops: Arc<dyn RegionOps>) -> Result<RegionId> {
        self.create_leaf(name, size, || Ok(Backend::Io(ops)))
    }

    /// A reservation: a range nothing handles; every access is refused.
    pub fn reservation(&self, name: &str, size: u128) -> Result<RegionId> {
        self.create_leaf(name, size, || Ok(Backend::Reservation))
    }

    /// An alias: `size` bytes of `target` starting at `offset`.
    pub fn alias(&self, name: &str, target: RegionId, offset: u64, size: u128) -> Result<RegionId> {
        self.with_state_unordered(|st| st.graph.insert_alias(name.into(), target, offset, size))
    }

    /// Maps `child` into `container` at `addr` with priority 0.
    pub fn add_subregion(&self, container: RegionId, addr: u64, child: RegionId) -> Result<()> {
        self.add_subregion_overlap(container, addr, child, 0)
    }

    /// Maps `child` into `container` at `addr` with `priority`. Higher priority wins where
    /// siblings overlap; at equal priority the most recently added wins.
    pub fn add_subregion_overlap(&self, container: RegionId, addr: u64, child: RegionId, priority: i32) -> Result<()> {
        let tx = self.transaction();
        self.mutate(|g| {
            // Touched even when invisible now: the structure above the child changed, and
            // a later change in the same transaction may make it visible.
            let prio = g.get(child)?.priority;
            g.add_subregion(container, addr, child, priority)?;
            let mut touched: Vec<Touch> = placed(g, child).into_iter().collect();
            // A new priority shows wherever it was already seen (through aliases of it).
            touched.extend(whole_if(g, child, prio != priority)?);
            Ok(touched)
        })?;
        self.moved(child);
        drop(tx);
        Ok(())
    }

    /// Unmaps `child` from `container`.
    pub fn remove_subregion(&self, container: RegionId, child: RegionId) -> Result<()> {
        self.mutate(|g| {
            let before = placed(g, child);
            g.remove_subregion(container, child)?;
            Ok(before.into_iter().collect())
        })
    }

    /// Moves a region inside its container; it becomes the newest of its priority.
    pub fn set_address(&self, id: RegionId, addr: u64) -> Result<()> {
        let tx = self.transaction();
        let old = self.with_state_unordered(|st| st.graph.get(id).map(|n| n.addr))?;
        self.mutate(|g| {
            let before = placed(g, id);
            let prio = g.get(id)?.priority;
            g.set_address(id, addr)?;
            Ok(moved_between(g, id, before, prio))
        })?;
        if old != addr {
            self.moved(id);
        }
        drop(tx);
        Ok(())
    }

    /// Changes a region's priority. A mapped region is re-inserted among its siblings and
    /// becomes the newest of its new priority (QEMU has no such call: it is remove + add);
    /// an unmapped region keeps the priority for when it is printed (`info mtree` sections).
    pub fn set_priority(&self, id: RegionId, priority: i32) -> Result<()> {
        self.mutate(|g| {
            let before = placed(g, id);
            let prio = g.get(id)?.priority;
            g.set_priority(id, priority)?;
            // Its ranges carry its priority wherever it shows (through aliases of it, in a
            // view rooted at it), not only in its container.
            let mut touched = moved_between(g, id, before, prio);
            touched.extend(whole_if(g, id, prio != priority)?);
            Ok(touched)
        })
    }

    /// Enables or disables a region (a disabled region and its subtree are invisible).
    pub fn set_enabled(&self, id: RegionId, enabled: bool) -> Result<()> {
        self.mutate(|g| {
            let changed = g.set_enabled(id, enabled);
            whole_if(g, id, changed?)
        })
    }

    /// Changes a region's size (RAM cannot grow past its block).
    pub fn set_size(&self, id: RegionId, size: u128) -> Result<()> {
        self.mutate(|g| {
            let old = g.get(id)?.size;
            let changed = g.set_size(id, size)?;
            Ok(if changed {
                vec![(id, 0, old.max(size))]
            } else {
                Vec::new()
            })
        })
    }

    /// Changes where an alias's window starts in its target.
    pub fn set_alias_offset(&self, id: RegionId, offset: u64) -> Result<()> {
        self.mutate(|g| {
            let changed = g.set_alias_offset(id, offset);
            whole_if(g, id, changed?)
        })
    }

    /// Marks a region (and what is rendered through it) read-only.
    pub fn set_readonly(&self, id: RegionId, readonly: bool) -> Result<()> {
        self.mutate(|g| {
            let changed = g.set_flag(id, readonly, |n| &mut n.readonly);
            whole_if(g, id, changed?)
        })
    }

    /// Marks a region non-volatile.
    pub fn set_nonvolatile(&self, id: RegionId, nonvolatile: bool) -> Result<()> {
        self.mutate(|g| {
            let changed = g.set_flag(id, nonvolatile, |n| &mut n.nonvolatile);
            whole_if(g, id, changed?)
        })
    }

    /// Forbids merging the region's ranges with their neighbours.
    pub fn set_unmergeable(&self, id: RegionId, unmergeable: bool) -> Result<()> {
        self.mutate(|g| {
            let changed = g.set_flag(id, unmergeable, |n| &mut n.unmergeable);
            whole_if(g, id, changed?)
        })
    }

    /// Switches a ROM device between romd mode (reads from RAM) and MMIO mode.
    pub fn set_romd(&self, id: RegionId, romd: bool) -> Result<()> {
        self.mutate(|g| {
            let changed = g.set_romd(id, romd);
            whole_if(g, id, changed?)
        })
    }

    /// Deletes a region that is unmapped, empty, not aliased and not an address-space root.
    /// Flat views that still show it keep its RAM or ops alive until they are dropped; if
    /// nothing does, its ops are dropped here, after the memory system's state is released
    /// (a device's `Drop` may call it).
    pub fn delete_region(&self, id: RegionId) -> Result<()> {
        let node = self.with_state_unordered(|st| st.graph.delete(id))?;
        drop(node);
        Ok(())
    }

    /// Tears down what a device or a CPU built: unmaps `regions` and deletes them, last
    /// first, in one transaction. Every region that can go does; the first failure (a region
    /// something else still uses) is returned.
    pub fn delete_regions(&self, regions: &[RegionId]) -> Result<()> {
        let _tx = self.transaction();
        for &r in regions.iter().rev() {
            if let Ok(Some(c)) = self.region_info(r).map(|i| i.container) {
                let _ = self.remove_subregion(c, r);
            }
        }
        let mut first = Ok(());
        for &r in regions.iter().rev() {
            if let Err(e) = self.delete_region(r) {
                first = first.and(Err(e));
            }
        }
        first
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

    /// Creates an address space named `name` over `root`. Its view is available at once:
    /// shared with existing spaces of the same physical root, or rendered now. The space
    /// lives until the last clone of the returned handle is dropped.
    pub fn address_space(&self, name: &str, root: RegionId) -> Result<AddressSpace> {
        let guard = self.shared.lock();
        let mut guard_state = guard.borrow_mut();
        let st = &mut *guard_state;
        st.graph.normalize();
        st.graph.get_mut(root)?.space_users += 1;
        let mut chain = Vec::new();
        let phys = physical_root_chain(&st.graph, root, &mut chain);
        let key = match st.mode {
            CommitMode::Full => phys,
            CommitMode::Scoped => crate::model::sharing::representative(&st.graph, &mut st.reps, phys, &mut chain),
        };
        let id = st.next_space;
        for &r in &chain {
            st.chains.entry(r).or_default().push(id);
        }
        st.next_space += 1;
        let settled =
            st.touched.is_empty() && st.seeds.is_empty() && st.moved.is_empty() && !st.touch_all && !st.rerender_all;
        let fresh = match (st.views.contains_key(&key), st.mode) {
            (true, _) => None,
            (false, CommitMode::Scoped) => {
                let view = crate::write::commit_layers::new_view(&st.graph, &self.shared.counters, key, &st.views);
                if let Some(r) = key.filter(|&r| crate::view::layer::base_of(&st.graph, r).is_some()) {
                    if view.base().is_some() && !settled {
                        // Borrowing views that may not show the pending changes yet: the
                        // commit builds it again.
                        st.moved.push(r);
                    } else if !crate::write::commit_layers::layerable(&st.graph, &st.views, r) {
                        // The view to borrow from does not exist yet: the next commit tries.
                        st.relayer.push(r);
                    }
                }
                Some(view)
            }
            (false, CommitMode::Full) => Some(crate::write::update::render_view(&st.graph, &self.shared.counters, key)),
        };
        let fresh_entry = fresh.is_some();
        let entry = match st.views.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if let Some(r) = key {
                    st.graph.get_mut(r).expect("physical roots are live").view_key = true;
                    // Windows carried up earlier in this transaction did not record for it.
                    st.scratch.begin();
                }
                let view = fresh.expect("rendered above for a new key");
                let eventfds = if st.eventfd_regs > 0 {
                    Arc::new(crate::write::update::view_eventfds(&st.graph, &view))
                } else {
                    Arc::default()
                };
                let sig = match st.mode {
                    CommitMode::Scoped => key.and_then(|k| crate::model::sharing::signature(&st.graph, k)),
                    CommitMode::Full => None,
                };
                e.insert(ViewEntry {
                    view,
                    spaces: Vec::new(),
                    listening: Vec::new(),
                    eventfds,
                    sig,
                })
            }
        };
        entry.spaces.push(id);
        let name: Arc<str> = name.into();
        let cell = Arc::new(SpaceCell::new(entry.view.clone()));
        // Without listeners a space keeps no view of its own (that would keep old views
        // alive); registering the first listener fills these in.
        let empty = st.views[&None].view.clone();
        st.spaces.push(SpaceRecord {
            id,
            name: name.clone(),
            root,
            key,
            phys,
            cell: cell.clone(),
            chain,
            view: empty,
            listeners: Arc::default(),
            eventfds: Arc::default(),
        });

        self.shared.counters.spaces.fetch_add(1, Ordering::Relaxed);
        let space = AddressSpace::new(SpaceShared {
            id,
            name,
            root,
            cell,
            memory: Arc::downgrade(&self.shared),
            empty: st.views[&None].view.clone(),
            keep: Default::default(),
            destroyed: Default::default(),
        });
        // A new view may be borrowed by views that could not borrow it before (its previous
        // space was destroyed): offer it to them now.
        if let (Some(fresh), CommitMode::Scoped) = (key.filter(|_| fresh_entry), st.mode) {
            let g = &st.graph;
            for &a in &g.node(fresh).aliases {
                let borrower = g
                    .node(a)
                    .container
                    .filter(|&c| g.node(c).view_key && crate::view::layer::base_of(g, c) == Some((a, fresh)));
                st.relayer.extend(borrower);
            }
            if !st.relayer.is_empty() && st.depth == 0 {
                drop(guard_state);
                self.shared.commit(&guard);
            }
        }
        Ok(space)
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
            commits: c.commits.load(Ordering::Relaxed),
            listeners: c.listeners.load(Ordering::Relaxed),
            listener_calls: c.listener_calls.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GuestAddr, SIZE_2_64};

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
