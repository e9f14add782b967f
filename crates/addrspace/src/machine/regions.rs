//! The region half of [`Memory`]: creating regions (RAM, ROM, ROM devices, MMIO, containers,
//! reservations, aliases) and the mutators that place, resize, re-prioritise and delete them.
//!
//! Every mutator runs through `Memory::mutate`, inside a (possibly implicit) transaction, and
//! reports the windows it may have changed, in the changed region's coordinates, so the commit
//! re-renders only what can see them.

use std::sync::Arc;

use crate::base::access::{AccessRules, RegionOps};
use crate::base::addr::RegionOffset;
use crate::base::error::{Error, Result};
use crate::base::ram::RamBlock;
use crate::machine::memory::Memory;
use crate::model::graph::Graph;
use crate::model::region::{Backend, Body, Leaf, Node, RegionId};
use crate::write::commit::Touch;
use crate::write::state::Reach;

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

impl Memory {
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
    pub fn alias(&self, name: &str, target: RegionId, offset: impl Into<RegionOffset>, size: u128) -> Result<RegionId> {
        let offset = offset.into().0;
        self.with_state_unordered(|st| st.graph.insert_alias(name.into(), target, offset, size))
    }

    /// Maps `child` into `container` at `addr` (an offset inside the container: a
    /// [`RegionOffset`], or a plain `u64`) with priority 0.
    ///
    /// ```
    /// use addrspace::{GuestAddr, Memory, RegionOffset};
    ///
    /// let mem = Memory::new();
    /// let sys = mem.container("system", 1 << 64)?;
    /// let (low, high) = (mem.ram("low", 0x1000)?, mem.ram("high", 0x1000)?);
    /// mem.add_subregion(sys, 0x1000, low)?;
    /// mem.add_subregion(sys, RegionOffset(0x8000), high)?;
    /// let space = mem.address_space("memory", sys)?;
    /// assert_eq!(space.lookup(GuestAddr(0x8010)).unwrap().0.name(), "high");
    /// # Ok::<(), addrspace::Error>(())
    /// ```
    pub fn add_subregion(&self, container: RegionId, addr: impl Into<RegionOffset>, child: RegionId) -> Result<()> {
        self.add_subregion_overlap(container, addr, child, 0)
    }

    /// Maps `child` into `container` at `addr` with `priority`. Higher priority wins where
    /// siblings overlap; at equal priority the most recently added wins.
    pub fn add_subregion_overlap(
        &self,
        container: RegionId,
        addr: impl Into<RegionOffset>,
        child: RegionId,
        priority: i32,
    ) -> Result<()> {
        let addr = addr.into().0;
        let tx = self.transaction();
        self.mutate(Reach::Inside, |g| {
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
        self.mutate(Reach::Inside, |g| {
            let before = placed(g, child);
            g.remove_subregion(container, child)?;
            Ok(before.into_iter().collect())
        })
    }

    /// Moves a region inside its container; it becomes the newest of its priority.
    pub fn set_address(&self, id: RegionId, addr: impl Into<RegionOffset>) -> Result<()> {
        let addr = addr.into().0;
        let tx = self.transaction();
        let old = self.with_state_unordered(|st| st.graph.get(id).map(|n| n.addr))?;
        self.mutate(Reach::Inside, |g| {
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
        self.mutate(Reach::Inside, |g| {
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
        self.mutate(Reach::Extent, |g| {
            let changed = g.set_enabled(id, enabled);
            whole_if(g, id, changed?)
        })
    }

    /// Changes a region's size (RAM cannot grow past its block).
    pub fn set_size(&self, id: RegionId, size: u128) -> Result<()> {
        self.mutate(Reach::Extent, |g| {
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
    pub fn set_alias_offset(&self, id: RegionId, offset: impl Into<RegionOffset>) -> Result<()> {
        let offset = offset.into().0;
        self.mutate(Reach::Inside, |g| {
            let changed = g.set_alias_offset(id, offset);
            whole_if(g, id, changed?)
        })
    }

    /// Marks a region (and what is rendered through it) read-only.
    pub fn set_readonly(&self, id: RegionId, readonly: bool) -> Result<()> {
        self.mutate(Reach::Inside, |g| {
            let changed = g.set_flag(id, readonly, |n| &mut n.readonly);
            whole_if(g, id, changed?)
        })
    }

    /// Marks a region non-volatile.
    pub fn set_nonvolatile(&self, id: RegionId, nonvolatile: bool) -> Result<()> {
        self.mutate(Reach::Inside, |g| {
            let changed = g.set_flag(id, nonvolatile, |n| &mut n.nonvolatile);
            whole_if(g, id, changed?)
        })
    }

    /// Forbids merging the region's ranges with their neighbours.
    pub fn set_unmergeable(&self, id: RegionId, unmergeable: bool) -> Result<()> {
        self.mutate(Reach::Inside, |g| {
            let changed = g.set_flag(id, unmergeable, |n| &mut n.unmergeable);
            whole_if(g, id, changed?)
        })
    }

    /// Switches a ROM device between romd mode (reads from RAM) and MMIO mode.
    pub fn set_romd(&self, id: RegionId, romd: bool) -> Result<()> {
        self.mutate(Reach::Inside, |g| {
            let changed = g.set_romd(id, romd);
            whole_if(g, id, changed?)
        })
    }

    /// Sets (or with `None` clears) the owner text `info mtree -o` prints after the region,
    /// in QEMU's words: `owner:{dev id=ID}`, `owner:{dev path=/machine/...}`,
    /// `owner:{obj path=...}`, optionally followed by ` parent:{...}`. A region without one
    /// prints QEMU's ` orphan`. The owner changes no view: nothing is committed.
    ///
    /// ```
    /// use addrspace::Memory;
    /// let m = Memory::new();
    /// let uart = m.reservation("uart", 0x1000).unwrap();
    /// m.set_owner(uart, Some("owner:{dev id=serial0}")).unwrap();
    /// assert_eq!(m.region_info(uart).unwrap().owner.as_deref(), Some("owner:{dev id=serial0}"));
    /// ```
    pub fn set_owner(&self, id: RegionId, owner: Option<&str>) -> Result<()> {
        self.with_state_unordered(|st| {
            st.graph.get_mut(id)?.owner = owner.map(Arc::from);
            Ok(())
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
}
