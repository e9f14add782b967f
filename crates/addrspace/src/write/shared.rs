//! The writer's shared half of a memory system: the state behind one re-entrant topology
//! lock, and the delivery of a commit's events with the state released but the lock held.
//!
//! [`Memory`](crate::Memory) handles and address spaces hold it strongly; listener handles
//! hold it weakly, through the [`Unregister`](crate::write::listener::Unregister) trait.

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::{ReentrantMutex, ReentrantMutexGuard};

use crate::base::stats::Counters;
use crate::write::commit;
use crate::write::delivery::Delivery;
use crate::write::state::State;

pub(crate) struct Shared {
    pub state: ReentrantMutex<RefCell<State>>,
    pub counters: Arc<Counters>,
}

/// Marks listener delivery in progress for as long as it lives (even if a callback panics).
struct Delivering<'a>(&'a RefCell<State>);

impl Drop for Delivering<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().delivering -= 1;
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> ReentrantMutexGuard<'_, RefCell<State>> {
        self.state.lock()
    }

    /// Runs listener callbacks and publications with the state released (so callbacks may
    /// query it) but the lock held (so no other thread changes the topology meanwhile).
    pub(crate) fn deliver(&self, state: &RefCell<State>, mut d: Delivery) {
        if d.pre.is_empty() && d.post.is_empty() && d.spaces.is_empty() {
            d.publish_all();
            return;
        }
        state.borrow_mut().delivering += 1;
        let _delivering = Delivering(state);
        let mut n = (d.pre.len() + d.post.len()) as u64;
        for e in &d.pre {
            e.deliver();
        }
        for u in &d.spaces {
            n += u.deliver();
        }
        let post = std::mem::take(&mut d.post);
        d.publish_all();
        for e in &post {
            e.deliver();
        }
        self.counters.listener_calls.fetch_add(n, Ordering::Relaxed);
    }

    /// The outermost commit: plan with the state borrowed, then deliver.
    pub(crate) fn commit(&self, state: &RefCell<State>) {
        let d = {
            let mut st = state.borrow_mut();
            st.graph.normalize();
            let d = commit::plan(&mut st, &self.counters);
            // The transaction's propagation scope ends with it.
            st.scratch.begin();
            d
        };
        self.deliver(state, d);
    }

    /// Removes a destroyed space: its listeners hear its view disappear (QEMU's
    /// `address_space_destroy` commits an empty root first), then they are unlinked.
    pub(crate) fn remove_space(&self, id: u64) {
        let guard = self.lock();
        // The record (its listeners) is dropped after delivery, with the state released.
        let (d, _rec) = {
            let mut st = guard.borrow_mut();
            let Some(pos) = st.space_index(id) else {
                return;
            };
            let rec = st.spaces.remove(pos);
            let st = &mut *st;
            if let Ok(n) = st.graph.get_mut(rec.root) {
                n.space_users -= 1;
            }
            for r in &rec.chain {
                if let Some(v) = st.chains.get_mut(r) {
                    v.retain(|&s| s != id);
                    if v.is_empty() {
                        st.chains.remove(r);
                    }
                }
            }
            if let Some(e) = st.views.get_mut(&rec.key) {
                e.leave(id);
                if e.spaces.is_empty() && rec.key.is_some() {
                    if let (Some(e), Some(k)) = (st.views.remove(&rec.key), rec.key) {
                        if let Some(sig) = &e.sig {
                            crate::model::sharing::forget(&mut st.reps, sig, k);
                        }
                    }
                    if let Some(r) = rec.key {
                        st.graph.set_view_key(r, false);
                    }
                }
            }
            for l in rec.listeners.iter() {
                st.listener_space.remove(&l.id);
            }
            self.counters.spaces.fetch_sub(1, Ordering::Relaxed);
            self.counters
                .listeners
                .fetch_sub(rec.listeners.len(), Ordering::Relaxed);
            (
                crate::write::replay::teardown_events(&st.graph, &rec, &st.views[&None].view),
                rec,
            )
        };
        self.deliver(&guard, d);
    }
}
