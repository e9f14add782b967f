//! Listener registration and unregistration on the writer's shared state: a new listener
//! hears its space's current view replayed as additions, a leaving one as deletions.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::base::dirty::DirtyClient;
use crate::base::error::{Error, Result};
use crate::write::delivery::{Call, Delivery, Event};
use crate::write::listener::{ListenerHandle, MemoryListener, Registered, Unregister};
use crate::write::replay::replay;
use crate::write::shared::Shared;
use crate::write::state::State;

/// Every listener with its space's index, in QEMU's global order (priority, then
/// registration).
pub(crate) fn global_order(st: &State) -> Vec<(Registered, usize)> {
    let mut v: Vec<(Registered, usize)> = st
        .spaces
        .iter()
        .enumerate()
        .flat_map(|(i, sp)| sp.listeners.iter().map(move |l| (l.clone(), i)))
        .collect();
    v.sort_by_key(|(l, _)| (l.priority, l.id));
    v
}

/// After a space's last listener left: it no longer keeps a view or an ioeventfd list.
fn stop_listening(st: &mut State, idx: usize) {
    let sp = &mut st.spaces[idx];
    if !sp.listeners.is_empty() {
        return;
    }
    let (id, key) = (sp.id, sp.key);
    sp.view = st.views[&None].view.clone();
    sp.eventfds = Arc::default();
    if let Some(e) = st.views.get_mut(&key) {
        e.listening.retain(|&s| s != id);
    }
}

impl Shared {
    pub(crate) fn register(
        self: &Arc<Self>,
        space: u64,
        listener: Arc<dyn MemoryListener>,
        priority: u32,
    ) -> Result<ListenerHandle> {
        let guard = self.lock();
        // Asked once, before the state is borrowed (the listener may query it).
        let (sections, nop) = (listener.wants_sections(), listener.wants_region_nop());
        let (reg, events, global) = {
            let mut st = guard.borrow_mut();
            st.check_not_delivering("register a listener")?;
            let idx = st.space_index(space).ok_or(Error::MemoryGone)?;
            let id = st.next_listener;
            st.next_listener += 1;
            let reg = Registered {
                id,
                priority,
                listener,
                sections,
                nop,
            };
            let st = &mut *st;
            let sp = &mut st.spaces[idx];
            let entry = st.views.get_mut(&sp.key).expect("every space has a view entry");
            if sp.listeners.is_empty() {
                // Spaces without listeners are not kept up to date; this one starts now.
                sp.view = entry.view.clone();
                sp.eventfds = entry.eventfds.clone();
                let at = entry.listening.partition_point(|&s| s < space);
                entry.listening.insert(at, space);
            }
            let pos = sp.listeners.partition_point(|l| (l.priority, l.id) <= (priority, id));
            Arc::make_mut(&mut sp.listeners).insert(pos, reg.clone());
            st.listener_space.insert(id, space);
            let events = replay(&st.graph, &st.spaces[idx], &reg, true, &st.views[&None].view);
            (reg, events, st.graph.log_global.contains(DirtyClient::Migration))
        };
        self.counters.listeners.fetch_add(1, Ordering::Relaxed);
        let handle = ListenerHandle {
            memory: Arc::downgrade(self) as std::sync::Weak<dyn Unregister>,
            id: reg.id,
        };
        self.deliver(
            &guard,
            Delivery {
                pre: vec![Event(reg.listener.clone(), Call::Begin)],
                ..Delivery::default()
            },
        );
        if global {
            if let Err(e) = reg.listener.log_global_start() {
                self.deliver(
                    &guard,
                    Delivery {
                        post: vec![Event(reg.listener.clone(), Call::Commit)],
                        ..Delivery::default()
                    },
                );
                // Unlink without a deletion replay: nothing was added.
                let mut st = guard.borrow_mut();
                if let Some(i) = st.space_index(space) {
                    Arc::make_mut(&mut st.spaces[i].listeners).retain(|l| l.id != reg.id);
                    stop_listening(&mut st, i);
                }
                st.listener_space.remove(&reg.id);
                drop(st);
                self.counters.listeners.fetch_sub(1, Ordering::Relaxed);
                std::mem::forget(handle);
                return Err(Error::ListenerRefused {
                    listener: reg.listener.name().to_string(),
                    reason: e.0,
                });
            }
        }
        self.deliver(
            &guard,
            Delivery {
                spaces: vec![events],
                post: vec![Event(reg.listener.clone(), Call::Commit)],
                ..Delivery::default()
            },
        );
        Ok(handle)
    }

    pub(crate) fn unregister(&self, id: u64) {
        let guard = self.lock();
        let events = {
            let mut st = guard.borrow_mut();
            let Some(space) = st.listener_space.remove(&id) else {
                return;
            };
            let Some(idx) = st.space_index(space) else { return };
            let st = &mut *st;
            let Some(pos) = st.spaces[idx].listeners.iter().position(|l| l.id == id) else {
                return;
            };
            let reg = Arc::make_mut(&mut st.spaces[idx].listeners).remove(pos);
            self.counters.listeners.fetch_sub(1, Ordering::Relaxed);
            // Dropped inside a callback: unlinked, but no replay into a running commit.
            let events = if st.delivering > 0 {
                Vec::new()
            } else {
                let update = replay(&st.graph, &st.spaces[idx], &reg, false, &st.views[&None].view);
                vec![update]
            };
            stop_listening(st, idx);
            (events, reg.listener)
        };
        let (spaces, listener) = events;
        if spaces.is_empty() {
            // (The listener's name is asked with the state released.)
            tracing::warn!(
                listener = listener.name(),
                "listener dropped inside a callback; no deletion replay"
            );
            return;
        }
        self.deliver(
            &guard,
            Delivery {
                pre: vec![Event(listener.clone(), Call::Begin)],
                spaces,
                post: vec![Event(listener, Call::Commit)],
                ..Delivery::default()
            },
        );
    }
}

impl Unregister for Shared {
    fn unregister(&self, id: u64) {
        Shared::unregister(self, id);
    }
}
