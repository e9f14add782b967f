//! Publication of flat views to lock-free readers.
//!
//! Each address space has one [`Cell`] holding the view its readers see ([`SpaceCell`]): at
//! commit the writer stores the space's new `Arc<FlatView>` there and then advances the
//! cell's generation counter; readers never take a lock. A reader's single load of its
//! space's cell gives the space's whole view — there is no second hop through a cell shared
//! with other spaces, so a commit that changes a shared view and moves a space to another
//! view at once can never pair the space with a layout it never had (each space sees its
//! old view or its new one). Spaces that show the same rendered view share the
//! `Arc<FlatView>`, not the cell: a commit stores once per space whose view changed.
//!
//! A reader that keeps a [`Cached`] copy revalidates it with one atomic load of the
//! generation, and reloads the view only when it moved. The old view is freed when its last
//! reader drops it — reclamation is ownership, with no grace-period bookkeeping.
//!
//! The protocol is generic over its two primitives, the view [`Slot`] (arc-swap in
//! production) and the [`Generation`] counter (a std atomic), so that a model checker's
//! doubles can stand in for both: the loom tests at the bottom explore every interleaving of
//! a writer publishing a commit (with [`publish`], the production code path) and readers
//! revalidating.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

/// Holds the current `Arc<T>`: loads and stores never block each other.
pub(crate) trait Slot<T>: Send + Sync {
    fn new(value: Arc<T>) -> Self;
    fn load(&self) -> Arc<T>;
    fn store(&self, value: Arc<T>);
}

impl<T: Send + Sync> Slot<T> for ArcSwap<T> {
    fn new(value: Arc<T>) -> Self {
        ArcSwap::new(value)
    }
    #[inline]
    fn load(&self) -> Arc<T> {
        self.load_full()
    }
    fn store(&self, value: Arc<T>) {
        ArcSwap::store(self, value)
    }
}

/// A counter the writer advances after each store (release) and readers read (acquire).
pub(crate) trait Generation: Send + Sync {
    fn new() -> Self;
    fn get(&self) -> u64;
    fn advance(&self);
}

impl Generation for AtomicU64 {
    fn new() -> Self {
        AtomicU64::new(0)
    }
    #[inline]
    fn get(&self) -> u64 {
        self.load(Ordering::Acquire)
    }
    fn advance(&self) {
        self.fetch_add(1, Ordering::Release);
    }
}

/// An RCU-like cell: the current value plus its generation.
pub(crate) struct Cell<T, S = ArcSwap<T>, G = AtomicU64> {
    slot: S,
    generation: G,
    _value: std::marker::PhantomData<fn() -> T>,
}

/// A reader's copy of a cell's value, valid while the generation has not moved.
pub(crate) struct Cached<T> {
    pub value: Arc<T>,
    generation: u64,
}

impl<T, S: Slot<T>, G: Generation> Cell<T, S, G> {
    pub fn new(value: Arc<T>) -> Self {
        Cell {
            slot: S::new(value),
            generation: G::new(),
            _value: std::marker::PhantomData,
        }
    }

    /// The current value (a counted reference).
    #[inline]
    pub fn load(&self) -> Arc<T> {
        self.slot.load()
    }

    /// Publishes `value`; readers holding the previous one keep it.
    pub fn store(&self, value: Arc<T>) {
        self.slot.store(value);
        self.generation.advance();
    }

    /// A cached copy of the current value.
    pub fn cached(&self) -> Cached<T> {
        // Generation first: if a store races, the copy is stamped old and reloaded next time.
        let generation = self.generation.get();
        Cached {
            value: self.slot.load(),
            generation,
        }
    }

    /// Brings `cached` up to date; `true` if the value was reloaded. Costs one atomic load
    /// when nothing was published since the copy was made.
    #[inline]
    pub fn refresh(&self, cached: &mut Cached<T>) -> bool {
        let generation = self.generation.get();
        if generation == cached.generation {
            return false;
        }
        cached.value = self.slot.load();
        cached.generation = generation;
        true
    }
}

/// The cell of one address space: the view its readers see.
pub(crate) type SpaceCell = Cell<crate::view::flatview::FlatView>;

/// Stores each value in its cell, in order. A commit's publications: every cell is one
/// space's, so each space goes from its old view to its new one in one store.
pub(crate) fn publish<T, S: Slot<T>, G: Generation, C: std::ops::Deref<Target = Cell<T, S, G>>>(
    stores: impl IntoIterator<Item = (C, Arc<T>)>,
) {
    for (cell, value) in stores {
        cell.store(value);
    }
}

#[cfg(test)]
mod loom_model {
    //! Model check of the protocol: a writer publishes 1 then 2 while a reader revalidates.
    //! Whatever the interleaving, a reader never goes back in time, and once it has seen the
    //! generation of a store it sees that store's value (or a newer one).
    use super::*;
    use loom::sync::atomic::AtomicU64 as LoomU64;
    use loom::sync::Mutex;

    /// The double for arc-swap: a mutex around the `Arc` (loom cannot see inside arc-swap).
    struct LoomSlot<T>(Mutex<Arc<T>>);

    impl<T: Send + Sync> Slot<T> for LoomSlot<T> {
        fn new(value: Arc<T>) -> Self {
            LoomSlot(Mutex::new(value))
        }
        fn load(&self) -> Arc<T> {
            self.0.lock().unwrap().clone()
        }
        fn store(&self, value: Arc<T>) {
            *self.0.lock().unwrap() = value;
        }
    }

    impl Generation for LoomU64 {
        fn new() -> Self {
            LoomU64::new(0)
        }
        fn get(&self) -> u64 {
            self.load(loom::sync::atomic::Ordering::Acquire)
        }
        fn advance(&self) {
            self.fetch_add(1, loom::sync::atomic::Ordering::Release);
        }
    }

    type ModelCell = Cell<u32, LoomSlot<u32>, LoomU64>;

    #[test]
    fn readers_never_go_back_and_see_what_the_generation_promises() {
        loom::model(|| {
            let cell = loom::sync::Arc::new(ModelCell::new(Arc::new(0)));
            let writer = {
                let cell = cell.clone();
                loom::thread::spawn(move || {
                    cell.store(Arc::new(1));
                    cell.store(Arc::new(2));
                })
            };
            let mut cached = cell.cached();
            let mut seen = vec![*cached.value];
            for _ in 0..3 {
                cell.refresh(&mut cached);
                // The generation the copy carries promises at least that many stores.
                assert!(
                    u64::from(*cached.value) >= cached.generation,
                    "stale value for its generation"
                );
                seen.push(*cached.value);
            }
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "went back in time: {seen:?}");
            writer.join().unwrap();
            cell.refresh(&mut cached);
            assert_eq!(*cached.value, 2, "after the writer is done, the reader catches up");
        });
    }

    /// The space step of a commit: each space has its own cell, and a commit that changes a
    /// view shared with another space (`system`, cell `y`) while moving space `x` to a view
    /// of its own stores `x`'s new view in one go. A reader of `x` (a cached copy, and plain
    /// loads) only ever sees `x`'s layouts, in commit order: 1 (A), 2 (B), 3 (A again).
    #[test]
    fn a_space_sees_its_whole_old_or_new_view_across_commits() {
        loom::model(|| {
            let x = loom::sync::Arc::new(ModelCell::new(Arc::new(1)));
            let y = loom::sync::Arc::new(ModelCell::new(Arc::new(10)));
            let writer = {
                let (x, y) = (x.clone(), y.clone());
                loom::thread::spawn(move || {
                    publish([(&*y, Arc::new(11)), (&*x, Arc::new(2))]);
                    publish([(&*y, Arc::new(12)), (&*x, Arc::new(3))]);
                })
            };
            let mut cached = x.cached();
            let mut seen = vec![*cached.value];
            let mut loaded = Vec::new();
            for _ in 0..2 {
                x.refresh(&mut cached);
                assert!(
                    u64::from(*cached.value) > cached.generation,
                    "stale value for its generation"
                );
                seen.push(*cached.value);
                loaded.push(*x.load());
            }
            let all = seen.iter().chain(&loaded);
            assert!(all.clone().all(|v| (1..=3).contains(v)), "a layout x never had");
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "went back in time: {seen:?}");
            assert!(loaded.windows(2).all(|w| w[0] <= w[1]), "went back in time: {loaded:?}");
            writer.join().unwrap();
            x.refresh(&mut cached);
            assert_eq!((*cached.value, *y.load()), (3, 12), "the reader catches up");
        });
    }
}
