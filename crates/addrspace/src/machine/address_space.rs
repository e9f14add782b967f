//! [`AddressSpace`]: a named view of a root region, as seen by a CPU or a DMA master.
//!
//! The handle is cheap to clone and may be shared by several CPUs (a board-owned space) or
//! owned by one (a per-CPU space). The space is destroyed when the last handle is dropped:
//! it leaves the memory system's list, and its view is freed once no reader holds it. There
//! is no separate "destroy, then free later" step to forget. Its owner may also end it at
//! once, whoever else still holds a handle ([`AddressSpace::destroy_now`], what CPU unplug
//! does): the other handles then see the empty view.
//!
//! [`Memory::address_space`] (here too) creates one: it joins the view of its physical root
//! (or of a structurally identical one), rendering it if it is new.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use crate::base::access::{Endianness, MemTxAttrs, MemTxResult};
use crate::base::addr::{GuestAddr, RegionOffset};
use crate::base::error::Result;
use crate::machine::memory::Memory;
use crate::model::region::RegionId;
use crate::read::accessor::Accessor;
use crate::read::dispatch::{self, Scalar};
use crate::read::publish::SpaceCell;
use crate::view::flatview::{FlatRange, FlatView, Mru};
use crate::view::render::physical_root_chain;
use crate::write::commit::CommitMode;
use crate::write::shared::Shared;
use crate::write::state::{SpaceRecord, ViewEntry};

pub(crate) struct SpaceShared {
    pub id: u64,
    pub name: Arc<str>,
    pub root: RegionId,
    pub cell: Arc<SpaceCell>,
    pub memory: Weak<Shared>,
    /// The memory system's empty view, published after destruction.
    pub empty: Arc<FlatView>,
    /// Things that live exactly as long as the space (a per-CPU root's regions), dropped
    /// after the space has left the memory system.
    pub keep: parking_lot::Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
    /// Set once the space is destroyed (by its last handle, or by `destroy_now`).
    pub destroyed: AtomicBool,
}

impl SpaceShared {
    /// Destroys the space, once: the empty view is published, the space leaves the memory
    /// system (its listeners hear its ranges go), and what it kept alive is released.
    fn end(&self) {
        if self.destroyed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Unpublish first, whether or not the memory system is still alive: whoever still
        // holds the cell (an accessor, a device's vm-memory view) now sees nothing, and a
        // device that sees its own space no longer keeps itself alive through it.
        self.cell.store(self.empty.clone());
        if let Some(shared) = self.memory.upgrade() {
            shared.remove_space(self.id);
        }
        // Dropped with no lock held: a per-CPU root's regions are deleted through the memory
        // system.
        let kept = std::mem::take(&mut *self.keep.lock());
        drop(kept);
    }
}

impl Drop for SpaceShared {
    fn drop(&mut self) {
        self.end();
    }
}

/// A named address space over a root region (QEMU's `AddressSpace`).
#[derive(Clone)]
pub struct AddressSpace {
    inner: Arc<SpaceShared>,
}

impl AddressSpace {
    pub(crate) fn new(inner: SpaceShared) -> AddressSpace {
        AddressSpace { inner: Arc::new(inner) }
    }

    /// The name given at creation (not necessarily unique).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The root region.
    pub fn root(&self) -> RegionId {
        self.inner.root
    }

    /// The currently published view. Holding it keeps everything it shows alive.
    pub fn view(&self) -> Arc<FlatView> {
        self.inner.cell.load()
    }

    /// The flat range that handles `addr` and the offset of `addr` inside its region, or
    /// `None` if nothing is mapped there.
    pub fn lookup(&self, addr: GuestAddr) -> Option<(FlatRange, RegionOffset)> {
        let view = self.view();
        view.lookup(addr).map(|(r, off)| (r.clone(), off))
    }

    /// The memory system, if it still exists.
    pub(crate) fn shared(&self) -> Option<Arc<Shared>> {
        self.inner.memory.upgrade()
    }

    /// Keeps `value` alive until the space is destroyed (its last handle dropped).
    pub(crate) fn keep_alive(&self, value: Arc<dyn std::any::Any + Send + Sync>) {
        self.inner.keep.lock().push(value);
    }

    /// The space's identity inside its memory system.
    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The cell this space publishes its views in.
    pub(crate) fn cell(&self) -> &Arc<SpaceCell> {
        &self.inner.cell
    }

    /// A fast, cached accessor for one thread (see [`Accessor`]).
    pub fn accessor(&self) -> Accessor {
        Accessor::new(self.inner.cell.clone())
    }

    /// Reads `buf.len()` bytes at `addr` through the current view (for occasional accesses;
    /// use an [`Accessor`] on hot paths).
    pub fn read(&self, addr: GuestAddr, buf: &mut [u8], attrs: MemTxAttrs) -> MemTxResult {
        dispatch::read(&self.view(), &mut { Mru::EMPTY }, addr.0, buf, attrs)
    }

    /// Writes `buf` at `addr` through the current view.
    pub fn write(&self, addr: GuestAddr, buf: &[u8], attrs: MemTxAttrs) -> MemTxResult {
        dispatch::write(&self.view(), &mut { Mru::EMPTY }, addr.0, buf, attrs)
    }

    /// Loads a `u8`, `u16`, `u32` or `u64` at `addr` through the current view.
    ///
    /// The [`MemTxResult`] in the pair must be used (a hole reads as 0 with
    /// `DECODE_ERROR`): ignoring the whole pair is a warning.
    ///
    /// ```compile_fail
    /// #![deny(unused_must_use)]
    /// use addrspace::{Endianness, GuestAddr, Memory, MemTxAttrs};
    /// let mem = Memory::new();
    /// let root = mem.container("system", 1 << 64).unwrap();
    /// let space = mem.address_space("memory", root).unwrap();
    /// space.load::<u32>(GuestAddr(0), Endianness::Little, MemTxAttrs::default()); // error
    /// ```
    pub fn load<T: Scalar>(&self, addr: GuestAddr, order: Endianness, attrs: MemTxAttrs) -> (T, MemTxResult) {
        dispatch::load(&self.view(), &mut { Mru::EMPTY }, addr.0, order, attrs)
    }

    /// Stores a `u8`, `u16`, `u32` or `u64` at `addr` through the current view.
    pub fn store<T: Scalar>(&self, addr: GuestAddr, value: T, order: Endianness, attrs: MemTxAttrs) -> MemTxResult {
        dispatch::store(&self.view(), &mut { Mru::EMPTY }, addr.0, value, order, attrs)
    }

    /// A weak handle, for device models that DMA into this space (see
    /// [`crate::RegionOps`]): it does not keep the space alive.
    pub fn downgrade(&self) -> WeakAddressSpace {
        WeakAddressSpace {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Destroys this handle (the space goes away with its last handle).
    pub fn destroy(self) {}

    /// Destroys the space now, for every handle (QEMU's `address_space_destroy`): the space
    /// leaves the memory system and its listeners hear its ranges go; handles still held
    /// elsewhere (a vCPU thread's clone, an accessor) see the empty view from then on — every
    /// access a decode error — and count in no statistic. Readers inside an access finish on
    /// the view they hold. Listeners cannot be registered on a destroyed space
    /// ([`crate::Error::MemoryGone`]). Idempotent.
    pub fn destroy_now(&self) {
        self.inner.end();
    }

    /// Whether the space was destroyed ([`destroy_now`](Self::destroy_now)).
    pub fn is_destroyed(&self) -> bool {
        self.inner.destroyed.load(Ordering::Acquire)
    }
}

/// A handle that does not keep its address space alive (see [`AddressSpace::downgrade`]).
#[derive(Clone, Default)]
pub struct WeakAddressSpace {
    inner: Weak<SpaceShared>,
}

impl WeakAddressSpace {
    /// The address space, if it still exists.
    pub fn upgrade(&self) -> Option<AddressSpace> {
        self.inner.upgrade().map(|inner| AddressSpace { inner })
    }
}

impl std::fmt::Debug for WeakAddressSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WeakAddressSpace")
    }
}

impl std::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressSpace").field("name", &self.inner.name).finish()
    }
}

impl Memory {
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
                    st.graph.set_view_key(r, true);
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
                e.insert(ViewEntry::new(view, eventfds, sig))
            }
        };
        let name: Arc<str> = name.into();
        let cell = Arc::new(SpaceCell::new(entry.view.clone()));
        entry.join(id, &cell);
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
}
