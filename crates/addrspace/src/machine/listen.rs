//! The listener-facing half of [`Memory`]: registration with replay, dirty logging,
//! ioeventfds and coalesced MMIO.
//!
//! Registration replays the current view as additions and unregistration as deletions
//! (QEMU's `listener_add_address_space` / `listener_del_address_space`); both are bracketed by
//! `begin`/`commit` of that listener only. Dirty-logging and ioeventfd changes go through
//! transactions like any topology change, so listeners hear them in one commit.

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use crate::base::dirty::{DirtyClient, DirtyMask};
use crate::base::error::{Error, Result};
use crate::machine::address_space::AddressSpace;
use crate::write::delivery::{coalesced_events, Call, Delivery, Event, Owned};
use crate::write::listener::Registered;
use crate::write::listener::{IoEventFd, ListenerHandle, MemoryListener};

use crate::machine::memory::Memory;
use crate::machine::regions::whole_if;
use crate::model::region::{Body, RegionId};
use crate::write::registry::global_order;

impl AddressSpace {
    /// Registers `listener` on this space with `priority` (lower hears additions first and
    /// deletions last; equal priorities keep registration order). The current view is
    /// replayed to it at once as additions; dropping the handle replays it as deletions.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use addrspace::listener::{MemoryListener, Section, PRIORITY_ACCEL};
    /// use addrspace::Memory;
    ///
    /// #[derive(Default)]
    /// struct Slots(Mutex<Vec<String>>);
    /// impl MemoryListener for Slots {
    ///     fn region_add(&self, s: &Section<'_>) {
    ///         self.0.lock().unwrap().push(format!("+{}@{:#x}", s.name(), s.start().0));
    ///     }
    ///     fn region_del(&self, s: &Section<'_>) {
    ///         self.0.lock().unwrap().push(format!("-{}@{:#x}", s.name(), s.start().0));
    ///     }
    /// }
    ///
    /// let mem = Memory::new();
    /// let sys = mem.container("system", 1 << 64)?;
    /// let ram = mem.ram("ram", 0x10000)?;
    /// mem.add_subregion(sys, 0, ram)?;
    /// let space = mem.address_space("memory", sys)?;
    /// let slots = Arc::new(Slots::default());
    /// let handle = space.register_listener(slots.clone(), PRIORITY_ACCEL)?;
    /// let mmio = mem.io("dev", 0x1000, Arc::new(addrspace::Unassigned))?;
    /// mem.add_subregion_overlap(sys, 0x4000, mmio, 1)?;
    /// assert_eq!(*slots.0.lock().unwrap(), ["+ram@0x0", "-ram@0x0", "+ram@0x0", "+dev@0x4000", "+ram@0x5000"]);
    /// drop(handle);
    /// # Ok::<(), addrspace::Error>(())
    /// ```
    pub fn register_listener(&self, listener: Arc<dyn MemoryListener>, priority: u32) -> Result<ListenerHandle> {
        let shared = self.shared().ok_or(Error::MemoryGone)?;
        shared.register(self.id(), listener, priority)
    }
}

impl Memory {
    /// [`DirtyLogging::set`](crate::machine::handles::DirtyLogging::set).
    pub(crate) fn set_log(&self, region: RegionId, client: DirtyClient, on: bool) -> Result<()> {
        self.mutate(crate::write::state::Reach::Inside, |g| {
            let n = g.get_mut(region)?;
            let before = n.log_mask();
            let c = &mut n.log_counts[client as usize];
            *c = if on { *c + 1 } else { c.saturating_sub(1) };
            let changed = n.log_mask() != before;
            whole_if(g, region, changed)
        })
    }

    /// [`DirtyLogging::set_code_tracking`](crate::machine::handles::DirtyLogging::set_code_tracking).
    pub(crate) fn set_code_dirty_tracking(&self, on: bool) {
        self.set_global_mask(DirtyMask::CODE, on);
    }

    fn set_global_mask(&self, bit: DirtyMask, on: bool) -> bool {
        let tx = self.transaction();
        let changed = self.with_state(|st| {
            let g = &mut st.graph;
            let new = if on {
                g.log_global.union(bit)
            } else {
                g.log_global.without(bit)
            };
            let changed = new != g.log_global;
            g.log_global = new;
            st.touch_all |= changed;
            changed
        });
        drop(tx);
        changed
    }

    /// Every registered listener, in QEMU's global order (priority, then registration).
    fn all_listeners(&self) -> Vec<Registered> {
        self.with_state(|st| global_order(st).into_iter().map(|(l, _)| l).collect())
    }

    /// [`DirtyLogging::start_global`](crate::machine::handles::DirtyLogging::start_global).
    pub(crate) fn start_dirty_log(&self) -> Result<()> {
        let _tx = self.transaction();
        if self.with_state(|st| st.graph.log_global.contains(DirtyClient::Migration)) {
            return Ok(());
        }
        self.with_state(|st| st.check_not_delivering("start dirty tracking"))?;
        let ls = self.all_listeners();
        for (i, l) in ls.iter().enumerate() {
            if let Err(e) = l.listener.log_global_start() {
                for started in ls[..i].iter().rev() {
                    started.listener.log_global_stop();
                }
                return Err(Error::ListenerRefused {
                    listener: l.listener.name().to_string(),
                    reason: e.0,
                });
            }
        }
        self.set_global_mask(DirtyMask::MIGRATION, true);
        Ok(())
    }

    /// [`DirtyLogging::stop_global`](crate::machine::handles::DirtyLogging::stop_global).
    pub(crate) fn stop_dirty_log(&self) -> Result<()> {
        let guard = self.shared.lock();
        guard.borrow().check_not_delivering("stop dirty tracking")?;
        if !self.set_global_mask(DirtyMask::MIGRATION, false) {
            return Ok(());
        }
        let post = self
            .all_listeners()
            .into_iter()
            .rev()
            .map(|l| Event(l.listener, Call::GlobalStop))
            .collect();
        self.shared.deliver(
            &guard,
            Delivery {
                post,
                ..Delivery::default()
            },
        );
        Ok(())
    }

    /// [`DirtyLogging::sync`](crate::machine::handles::DirtyLogging::sync).
    pub(crate) fn log_sync(&self, region: Option<RegionId>) {
        let guard = self.shared.lock();
        let pre = {
            let st = guard.borrow();
            let mut pre = Vec::new();
            for (l, i) in global_order(&st).into_iter().filter(|(l, _)| l.sections) {
                let sp = &st.spaces[i];
                for r in sp.view.ranges() {
                    if !r.dirty_log_mask().is_empty() && region.is_none_or(|m| r.region() == m) {
                        pre.push(Event(l.listener.clone(), Call::LogSync(Owned::new(&sp.name, sp.id, r))));
                    }
                }
            }
            pre
        };
        self.shared.deliver(
            &guard,
            Delivery {
                pre,
                ..Delivery::default()
            },
        );
    }

    /// The RAM block of a RAM-backed region, and the dirty clients its writes mark.
    pub(crate) fn ram_of(&self, region: RegionId) -> Result<(Arc<crate::base::ram::RamBlock>, DirtyMask)> {
        self.with_state(|st| {
            let n = st.graph.get(region)?;
            let block = match &n.body {
                Body::Leaf(l) => l.backend.ram().cloned(),
                _ => None,
            };
            let block = block.ok_or_else(|| Error::WrongKind {
                name: n.name.to_string(),
                kind: n.kind().as_str(),
                what: "only RAM-backed regions have dirty bitmaps",
            })?;
            Ok((block, n.log_mask().union(st.graph.log_global)))
        })
    }

    /// Adds (`add`) or removes an ioeventfd registration (see [`IoEventFds`](crate::machine::handles::IoEventFds)).
    pub(crate) fn change_eventfd(
        &self,
        region: RegionId,
        offset: u64,
        size: u64,
        data: Option<u64>,
        notifier: Arc<EventFd>,
        add: bool,
    ) -> Result<()> {
        let tx = self.transaction();
        let result = self.with_state(|st| {
            st.check_not_delivering("change ioeventfds")?;
            let n = st.graph.get_mut(region)?;
            // QEMU converts the data to the device's byte order.
            let big = match &n.body {
                Body::Leaf(l) => l.rules.endianness == crate::base::access::Endianness::Big,
                _ => false,
            };
            let data = match data {
                Some(d) if big && (1..=8).contains(&size) => Some(crate::read::mmio::bswap(d, size as u32)),
                d => d,
            };
            let e = IoEventFd {
                addr: offset,
                size,
                data,
                notifier,
            };
            let pos = n.eventfds.binary_search(&e);
            match (add, pos) {
                (true, Ok(_)) => return Ok(()),
                (true, Err(p)) => {
                    n.eventfds.insert(p, e);
                    st.eventfd_regs += 1;
                }
                (false, Ok(p)) => {
                    n.eventfds.remove(p);
                    st.eventfd_regs -= 1;
                }
                (false, Err(_)) => {
                    return Err(Error::NoSuchEventFd {
                        name: n.name.to_string(),
                        offset,
                        size,
                    })
                }
            }
            if let Body::Leaf(l) = &n.body {
                l.eventfds.set(&n.eventfds);
            }
            st.eventfd_touched.push(region);
            Ok(())
        });
        drop(tx);
        result
    }

    /// Adds a coalesced range (`Some`) or clears them all (see [`Coalescing`](crate::machine::handles::Coalescing)).
    pub(crate) fn change_coalescing(&self, region: RegionId, add: Option<(u64, u64)>) -> Result<()> {
        let guard = self.shared.lock();
        let pre = {
            let mut st = guard.borrow_mut();
            st.check_not_delivering("change coalesced MMIO")?;
            let st = &mut *st;
            let n = st.graph.get_mut(region)?;
            let saved = std::mem::take(&mut n.coalesced);
            // Notify with only the ranges concerned, then leave the right list in place.
            let (concerned, keep) = match add {
                Some(r) => (vec![r], [saved, vec![r]].concat()),
                None => (saved, Vec::new()),
            };
            n.coalesced = concerned;
            st.graph.any_coalesced |= add.is_some();
            let mut pre = Vec::new();
            for sp in st.spaces.iter().filter(|s| !s.listeners.is_empty()) {
                for r in sp.view.ranges().iter().filter(|r| r.region() == region) {
                    let s = Owned::new(&sp.name, sp.id, r);
                    let ranged: Vec<Registered> = sp.listeners.iter().filter(|l| l.sections).cloned().collect();
                    coalesced_events(&mut pre, &st.graph, &ranged, &s, add.is_some());
                }
            }
            st.graph.get_mut(region)?.coalesced = keep;
            pre
        };
        self.shared.deliver(
            &guard,
            Delivery {
                pre,
                ..Delivery::default()
            },
        );
        Ok(())
    }
}
