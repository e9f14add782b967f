//! The writer-side region graph: an arena of [`Node`]s and QEMU's mutation rules.
//!
//! Every mutator validates first and changes nothing on error. Each returns whether the
//! change can alter a rendered view (QEMU's `memory_region_update_pending` rules), so the
//! caller knows whether the enclosing transaction must re-render. Aliases may lead back into
//! their own ancestors; a change that would make such a cycle unrenderable is refused (see
//! [`crate::model::graph::cycle`]).

use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::model::region::{Body, Node, RegionId, RegionInfo, SIZE_2_64};

mod alias_reach;
pub mod cycle;

/// Arena of region nodes addressed by generational [`RegionId`]s.
#[derive(Debug, Default)]
pub(crate) struct Graph {
    slots: crate::model::slots::Slots<Node>,
    /// Dirty-logging clients every RAM-backed range gets on top of its region's own
    /// (MIGRATION while global dirty tracking is on, CODE while code tracking is on).
    pub log_global: crate::base::dirty::DirtyMask,
    /// Whether any region ever had coalesced-MMIO ranges (until then commits skip looking).
    pub any_coalesced: bool,
    /// The last `Node::seq` handed out.
    next_seq: u64,
    /// Containers whose subregion lists are out of order (see `Node::subregions`).
    unsorted: Vec<RegionId>,
    /// Marks for reachability walks and cycle probes.
    marks: crate::model::graph::cycle::Marks,
    /// Advanced whenever an alias may start or stop leading to a view root (see `alias_reach`).
    pub alias_epoch: u64,
}

impl Graph {
    pub fn live(&self) -> usize {
        self.slots.live()
    }

    /// One past the largest region index ever used (for arrays indexed by region).
    pub fn capacity(&self) -> usize {
        self.slots.capacity()
    }

    pub fn insert(&mut self, node: Node) -> RegionId {
        self.slots.insert(node)
    }

    pub fn get(&self, id: RegionId) -> Result<&Node> {
        self.slots.get(id).ok_or_else(|| Error::UnknownRegion(id.to_string()))
    }

    pub fn get_mut(&mut self, id: RegionId) -> Result<&mut Node> {
        self.slots
            .get_mut(id)
            .ok_or_else(|| Error::UnknownRegion(id.to_string()))
    }

    /// The node of an id known to be live (ids stored inside the graph always are).
    pub fn node(&self, id: RegionId) -> &Node {
        self.get(id).expect("graph invariant: stored ids are live")
    }

    /// Where `id` sits in its container: (start, end) relative to the container.
    pub fn extent(&self, id: RegionId) -> (u128, u128) {
        let n = self.node(id);
        (u128::from(n.addr), u128::from(n.addr) + n.size)
    }

    fn node_mut(&mut self, id: RegionId) -> &mut Node {
        self.get_mut(id).expect("graph invariant: stored ids are live")
    }

    pub fn name(&self, id: RegionId) -> String {
        self.get(id)
            .map(|n| n.name.to_string())
            .unwrap_or_else(|_| id.to_string())
    }

    /// All live region ids, in index order.
    pub fn ids(&self) -> impl Iterator<Item = RegionId> + '_ {
        self.slots.ids()
    }

    pub fn info(&self, id: RegionId) -> Result<RegionInfo> {
        let n = self.get(id)?;
        Ok(RegionInfo {
            name: n.name.to_string(),
            kind: n.kind(),
            size: n.size,
            addr: n.addr,
            priority: n.priority,
            enabled: n.enabled,
            readonly: n.readonly,
            nonvolatile: n.nonvolatile,
            unmergeable: n.unmergeable,
            romd: n.romd,
            owner: n.owner.as_deref().map(str::to_string),
            container: n.container,
            subregions: n.subregions.iter().rev().copied().collect(),
            alias: match n.body {
                Body::Alias { target, offset } => Some((target, offset)),
                _ => None,
            },
        })
    }

    pub fn check_size(name: &str, size: u128) -> Result<()> {
        if size > SIZE_2_64 {
            return Err(Error::SizeTooLarge {
                name: name.to_string(),
                size,
            });
        }
        Ok(())
    }

    /// Creates an alias node, counting the reference on its target.
    pub fn insert_alias(&mut self, name: Arc<str>, target: RegionId, offset: u64, size: u128) -> Result<RegionId> {
        Self::check_size(&name, size)?;
        self.get(target)?;
        let leads = self.node(target).leads_to_cycle;
        let id = self.insert(Node::new(name, Body::Alias { target, offset }, size));
        self.node_mut(id).leads_to_cycle = leads;
        self.node_mut(target).aliases.push(id);
        self.alias_epoch += 1;
        Ok(id)
    }

    fn check_fits(&self, container: RegionId, child: RegionId, addr: u64) -> Result<()> {
        let size = self.node(child).size;
        if u128::from(addr) + size > SIZE_2_64 {
            return Err(Error::AddressOverflow {
                container: self.name(container),
                child: self.name(child),
                addr,
                size,
            });
        }
        Ok(())
    }

    /// Whether rendering can go from `from` to `to` (subregion and alias-target edges).
    fn reaches(&mut self, from: &[RegionId], to: RegionId) -> bool {
        let mut marks = std::mem::take(&mut self.marks);
        let r = crate::model::graph::cycle::reaches(self, &mut marks, from, to);
        self.marks = marks;
        r
    }

    /// Refuses, as `change`, a graph in which rendering `start` would not finish.
    fn probe(&mut self, start: RegionId, change: impl FnOnce(&Graph) -> String) -> Result<()> {
        // In precedence order, so that the path a refusal names is the same whatever order
        // the lists were built in (the verdict does not depend on it).
        self.normalize();
        let mut marks = std::mem::take(&mut self.marks);
        let r = crate::model::graph::cycle::probe(self, &mut marks, start);
        self.marks = marks;
        r.map_err(|e| Error::EndlessCycle {
            change: change(self),
            chain: e.chain_text(),
            why: e.why,
        })
    }

    fn mapping(&self, child: RegionId, container: RegionId) -> String {
        format!("mapping `{}` into `{}`", self.name(child), self.name(container))
    }

    /// Places `child` in `container` at `addr` with `priority` (QEMU's
    /// `memory_region_add_subregion_overlap`). Returns whether views may change.
    pub fn add_subregion(&mut self, container: RegionId, addr: u64, child: RegionId, priority: i32) -> Result<bool> {
        let c = self.get(container)?;
        if matches!(c.body, Body::Alias { .. }) {
            return Err(Error::AliasHasNoSubregions(c.name.to_string()));
        }
        let ch = self.get(child)?;
        if let Some(cur) = ch.container {
            return Err(Error::AlreadyMapped {
                child: ch.name.to_string(),
                container: self.name(cur),
            });
        }
        self.check_fits(container, child, addr)?;
        let cycle = self.reaches(&[child], container);
        if cycle && crate::model::graph::cycle::inside(self, container, child) {
            // Containers alone: a region inside itself.
            return Err(Error::Cycle {
                container: self.name(container),
                child: self.name(child),
            });
        }
        let (old_addr, old_priority, old_seq) = {
            let n = self.node(child);
            (n.addr, n.priority, n.seq)
        };
        let visible = self.link(container, addr, child, priority);
        if cycle || self.node(child).leads_to_cycle {
            // Through an alias into an ancestor, or above a cycle: fine if rendering the
            // regions on cycles above still finishes.
            self.flag_up(container);
            if let Err(e) = self.probe(container, |g| g.mapping(child, container)) {
                self.unlink(container, child);
                let n = self.node_mut(child);
                (n.addr, n.priority, n.seq) = (old_addr, old_priority, old_seq);
                return Err(e);
            }
        }
        Ok(visible)
    }

    /// Sorts the subregion lists that insertions left out of order (see `Node::subregions`).
    /// Everything that reads a list's order runs after this.
    pub fn normalize(&mut self) {
        for id in std::mem::take(&mut self.unsorted) {
            let Ok(n) = self.get_mut(id) else { continue };
            if !n.unsorted {
                continue;
            }
            n.unsorted = false;
            n.child_index.take();
            let mut subs = std::mem::take(&mut n.subregions);
            let key = |c: RegionId| {
                let m = self.node(c);
                (m.priority, m.seq)
            };
            // A few insertions after a sorted prefix (one mapping per commit) go in by binary
            // search; a batch is sorted whole.
            let prefix = subs
                .windows(2)
                .position(|w| key(w[0]) > key(w[1]))
                .map_or(subs.len(), |i| i + 1);
            if subs.len() - prefix <= 8 {
                for c in subs.split_off(prefix) {
                    let k = key(c);
                    let at = subs.partition_point(|&s| key(s) < k);
                    subs.insert(at, c);
                }
            } else {
                subs.sort_unstable_by_key(|&c| key(c));
            }
            self.node_mut(id).subregions = subs;
        }
    }

    /// Whether no subregion list is out of order.
    pub fn is_normal(&self) -> bool {
        self.unsorted.is_empty()
    }

    /// Inserts without validation, as QEMU does: the newest among its priority. In our
    /// ascending storage that is a push when no sibling has a higher priority; otherwise it is
    /// a push too, and the list is sorted before it is next read (`normalize`), so a batch of
    /// insertions at mixed priorities costs O(n log n), not O(n²).
    fn link(&mut self, container: RegionId, addr: u64, child: RegionId, priority: i32) -> bool {
        self.alias_placement(child);
        self.next_seq += 1;
        let seq = self.next_seq;
        let ch = self.node_mut(child);
        ch.addr = addr;
        ch.priority = priority;
        ch.seq = seq;
        ch.container = Some(container);
        let child_enabled = ch.enabled;
        let (start, end) = (u128::from(addr), u128::from(addr) + ch.size);
        let in_order = self
            .node(container)
            .subregions
            .last()
            .is_none_or(|&l| self.node(l).priority <= priority);
        let c = self.node_mut(container);
        let pos = c.subregions.len();
        c.subregions.push(child);
        let visible = c.enabled && child_enabled;
        self.node_mut(child).slot = pos as u32;
        let c = self.node_mut(container);
        if in_order && !c.unsorted {
            // Keep a built address index up to date instead of rebuilding it (a BAR move in
            // a bus with thousands of devices would otherwise re-sort them all).
            let kept = c
                .child_index
                .get_mut()
                .and_then(Arc::get_mut)
                .is_some_and(|index| index.insert(pos as u32, start, end));
            if !kept {
                c.child_index.take();
            }
        } else {
            c.child_index.take();
            self.unsort(container);
        }
        visible
    }

    /// Marks `container`'s list as out of order (sorted before it is next read), recording
    /// every child's place in it.
    fn unsort(&mut self, container: RegionId) {
        let c = self.node_mut(container);
        if c.unsorted {
            return;
        }
        c.unsorted = true;
        let subs = std::mem::take(&mut c.subregions);
        for (i, &s) in subs.iter().enumerate() {
            self.node_mut(s).slot = i as u32;
        }
        self.node_mut(container).subregions = subs;
        self.unsorted.push(container);
    }

    fn unlink(&mut self, container: RegionId, child: RegionId) -> bool {
        self.alias_placement(child);
        let key = {
            let n = self.node(child);
            (n.priority, n.seq)
        };
        let c = self.node(container);
        if c.unsorted {
            // Out of order anyway: swap the last one into its place (O(1): the slot says
            // where it is).
            let slot = self.node(child).slot as usize;
            let pos = if c.subregions.get(slot) == Some(&child) {
                Some(slot)
            } else {
                c.subregions.iter().position(|&s| s == child)
            };
            let c = self.node_mut(container);
            c.child_index.take();
            let container_enabled = c.enabled;
            if let Some(pos) = pos {
                c.subregions.swap_remove(pos);
                if let Some(&moved) = c.subregions.get(pos) {
                    self.node_mut(moved).slot = pos as u32;
                }
            }
            let ch = self.node_mut(child);
            ch.container = None;
            return container_enabled && ch.enabled;
        }
        let pos = c
            .subregions
            .binary_search_by_key(&key, |&s| {
                let n = self.node(s);
                (n.priority, n.seq)
            })
            .ok();
        let c = self.node_mut(container);
        if let Some(pos) = pos {
            c.subregions.remove(pos);
        }
        let sorted = !c.unsorted;
        let kept = match (pos, c.child_index.get_mut().and_then(Arc::get_mut)) {
            (Some(pos), Some(index)) => sorted && index.remove(pos as u32),
            _ => false,
        };
        if !kept {
            c.child_index.take();
        }
        let container_enabled = c.enabled;
        let ch = self.node_mut(child);
        ch.container = None;
        container_enabled && ch.enabled
    }

    /// Puts `child` back where it was (same place, priority and age), after a refused move.
    fn relink(&mut self, container: RegionId, child: RegionId, addr: u64, priority: i32, seq: u64) {
        self.alias_placement(child);
        let ch = self.node_mut(child);
        (ch.addr, ch.priority, ch.seq, ch.container) = (addr, priority, seq, Some(container));
        let c = self.node(container);
        let pos = if c.unsorted {
            c.subregions.len()
        } else {
            c.subregions.partition_point(|&s| {
                let n = self.node(s);
                (n.priority, n.seq) < (priority, seq)
            })
        };
        let c = self.node_mut(container);
        c.subregions.insert(pos, child);
        c.child_index.take();
        if c.unsorted {
            self.node_mut(child).slot = pos as u32;
        }
    }

    /// Removes `child` from `container` (QEMU's `memory_region_del_subregion`).
    pub fn remove_subregion(&mut self, container: RegionId, child: RegionId) -> Result<bool> {
        self.get(container)?;
        let ch = self.get(child)?;
        if ch.container != Some(container) {
            return Err(Error::NotMapped {
                child: ch.name.to_string(),
                container: self.name(container),
            });
        }
        Ok(self.unlink(container, child))
    }

    /// Moves a mapped region; a real move makes it the newest among equal priorities.
    pub fn set_address(&mut self, id: RegionId, addr: u64) -> Result<bool> {
        let priority = self.get(id)?.priority;
        self.replace(id, addr, priority)
    }

    /// Changes a region's priority; a mapped region is re-inserted (and becomes the newest of
    /// its new priority), as if removed and added again.
    pub fn set_priority(&mut self, id: RegionId, priority: i32) -> Result<bool> {
        let addr = self.get(id)?.addr;
        self.replace(id, addr, priority)
    }

    /// Gives a region a new address and priority. Unmapped, it just records them; mapped and
    /// changed, it is removed and added again, as QEMU's `set_address` does. A move along a
    /// cycle is refused, and undone, if rendering would no longer finish.
    fn replace(&mut self, id: RegionId, addr: u64, priority: i32) -> Result<bool> {
        let n = self.get(id)?;
        let Some(container) = n.container else {
            let n = self.node_mut(id);
            (n.addr, n.priority) = (addr, priority);
            return Ok(false);
        };
        if (n.addr, n.priority) == (addr, priority) {
            return Ok(false);
        }
        let (old_addr, old_priority, old_seq) = (n.addr, n.priority, n.seq);
        self.check_fits(container, id, addr)?;
        let a = self.unlink(container, id);
        let b = self.link(container, addr, id, priority);
        if addr != old_addr && self.node(id).leads_to_cycle {
            let change = |g: &Graph| format!("moving `{}` to {addr:#x} in `{}`", g.name(id), g.name(container));
            if let Err(e) = self.probe(container, change) {
                self.unlink(container, id);
                self.relink(container, id, old_addr, old_priority, old_seq);
                return Err(e);
            }
        }
        Ok(a || b)
    }

    /// Marks `start` and every region that can reach it as leading to a cycle (the set stays
    /// closed upwards: a walk stops at regions marked already).
    fn flag_up(&mut self, start: RegionId) {
        let mut stack = vec![start];
        while let Some(id) = stack.pop() {
            let n = self.node_mut(id);
            if std::mem::replace(&mut n.leads_to_cycle, true) {
                continue;
            }
            let n = self.node(id);
            stack.extend(n.container);
            stack.extend(n.aliases.iter().copied());
        }
    }

    pub fn set_enabled(&mut self, id: RegionId, enabled: bool) -> Result<bool> {
        let n = self.get_mut(id)?;
        if n.enabled == enabled {
            return Ok(false);
        }
        let alias = matches!(n.body, Body::Alias { .. });
        n.enabled = enabled;
        self.alias_epoch += u64::from(alias);
        Ok(true)
    }

    pub fn set_size(&mut self, id: RegionId, size: u128) -> Result<bool> {
        let n = self.get(id)?;
        Self::check_size(&n.name, size)?;
        if n.size == size {
            return Ok(false);
        }
        if let Body::Leaf(leaf) = &n.body {
            if let Some(block) = leaf.backend.ram() {
                if size > block.len() as u128 {
                    return Err(Error::WrongKind {
                        name: n.name.to_string(),
                        kind: n.kind().as_str(),
                        what: "cannot grow beyond its RAM block",
                    });
                }
            }
        }
        if let Some(c) = n.container {
            if u128::from(n.addr) + size > SIZE_2_64 {
                return Err(Error::AddressOverflow {
                    container: self.name(c),
                    child: n.name.to_string(),
                    addr: n.addr,
                    size,
                });
            }
        }
        if let Some(c) = self.node(id).container {
            self.node_mut(c).child_index.take();
        }
        let old = std::mem::replace(&mut self.node_mut(id).size, size);
        if size > old && self.node(id).leads_to_cycle {
            let change = |g: &Graph| format!("resizing `{}` to {size:#x}", g.name(id));
            if let Err(e) = self.probe(id, change) {
                self.node_mut(id).size = old;
                return Err(e);
            }
        }
        Ok(true)
    }

    pub fn set_alias_offset(&mut self, id: RegionId, offset: u64) -> Result<bool> {
        let n = self.get_mut(id)?;
        let old = match &mut n.body {
            Body::Alias { offset: o, .. } => std::mem::replace(o, offset),
            _ => {
                return Err(Error::WrongKind {
                    name: n.name.to_string(),
                    kind: n.kind().as_str(),
                    what: "only aliases have an alias offset",
                })
            }
        };
        if old == offset {
            return Ok(false);
        }
        let enabled = n.enabled;
        if self.node(id).leads_to_cycle {
            let change = |g: &Graph| format!("setting the offset of `{}` to {offset:#x}", g.name(id));
            if let Err(e) = self.probe(id, change) {
                if let Body::Alias { offset: o, .. } = &mut self.node_mut(id).body {
                    *o = old;
                }
                return Err(e);
            }
        }
        Ok(enabled)
    }

    /// Sets one of the boolean rendering flags through `field`.
    pub fn set_flag(&mut self, id: RegionId, value: bool, field: fn(&mut Node) -> &mut bool) -> Result<bool> {
        let n = self.get_mut(id)?;
        let f = field(n);
        if *f == value {
            return Ok(false);
        }
        *f = value;
        Ok(n.enabled)
    }

    pub fn set_romd(&mut self, id: RegionId, romd: bool) -> Result<bool> {
        let n = self.get(id)?;
        if n.kind() != crate::model::region::RegionKind::RomDevice {
            return Err(Error::WrongKind {
                name: n.name.to_string(),
                kind: n.kind().as_str(),
                what: "only ROM devices have a romd mode",
            });
        }
        self.set_flag(id, romd, |n| &mut n.romd)
    }

    /// Deletes an unused region. Fails, changing nothing, while it is mapped, contains
    /// subregions, is the target of an alias or the root of an address space.
    /// Returns the node, for the caller to drop once it holds no borrow (its ops may be a
    /// device whose `Drop` calls the memory system).
    pub fn delete(&mut self, id: RegionId) -> Result<Node> {
        let n = self.get(id)?;
        let busy = |reason: String| Error::InUse {
            name: n.name.to_string(),
            reason,
        };
        if let Some(c) = n.container {
            return Err(busy(format!("mapped in `{}`", self.name(c))));
        }
        if !n.subregions.is_empty() {
            return Err(busy(format!("{} subregions still mapped in it", n.subregions.len())));
        }
        if !n.aliases.is_empty() {
            return Err(busy(format!("target of {} alias(es)", n.aliases.len())));
        }
        if n.space_users > 0 {
            return Err(busy(format!("root of {} address space(s)", n.space_users)));
        }
        if let Body::Alias { target, .. } = n.body {
            self.node_mut(target).aliases.retain(|&a| a != id);
            self.alias_epoch += 1;
        }
        Ok(self.slots.remove(id).expect("checked live above"))
    }
}
