//! Live-object and work counters of one memory system.
//!
//! Leak claims are made by counting: every flat view registers itself here on creation and
//! deregisters on drop (even when the last reference is dropped long after the memory system
//! changed), and commits count the renders they do, so tests can assert "exactly one render"
//! or "back to baseline" instead of eyeballing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub flatviews: AtomicUsize,
    pub renders: AtomicU64,
    pub commits: AtomicU64,
    pub spaces: AtomicUsize,
    pub patches: AtomicU64,
    pub layers: AtomicU64,
    pub resimplified: AtomicU64,
    pub listeners: AtomicUsize,
    pub listener_calls: AtomicU64,
}

/// Held by each flat view; keeps the live count honest.
#[derive(Debug)]
pub(crate) struct LiveToken(Arc<Counters>);

impl LiveToken {
    pub fn new(c: &Arc<Counters>) -> LiveToken {
        c.flatviews.fetch_add(1, Ordering::Relaxed);
        LiveToken(c.clone())
    }
}

impl Drop for LiveToken {
    fn drop(&mut self) {
        self.0.flatviews.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of a memory system's counters (see [`crate::Memory::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Live regions in the graph.
    pub regions: usize,
    /// Live address spaces.
    pub address_spaces: usize,
    /// Flat views still alive anywhere (published, cached or held by readers).
    pub flatviews: usize,
    /// Flat views rendered in full since creation.
    pub renders: u64,
    /// Views updated by re-rendering only the windows a change affected.
    pub patches: u64,
    /// Views built as private windows over a shared view (layered: a per-CPU container
    /// showing system memory under its own devices), or moved onto that view's newer
    /// version; not counted in `renders`.
    pub layers: u64,
    /// Address spaces whose physical root (and sharing representative) commits recomputed:
    /// the spaces whose simplification chain held a region a change could re-simplify.
    pub resimplified: u64,
    /// Outermost commits that had something to do.
    pub commits: u64,
    /// Registered memory listeners.
    pub listeners: usize,
    /// Listener callbacks made since creation.
    pub listener_calls: u64,
}
