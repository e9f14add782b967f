//! Publication of flat views to lock-free readers.
//!
//! Each rendered view has one [`Cell`], shared by all the address spaces that show it (each
//! space follows its view's cell through a [`SpaceCell`]): at commit the writer stores a new
//! `Arc<FlatView>` once per changed view and then advances the cell's generation counter;
//! readers never take a lock. A reader that keeps a
//! [`Cached`] copy revalidates it with one atomic load of the generation, and reloads the
//! view only when it moved. The old view is freed when its last reader drops it —
//! reclamation is ownership, with no grace-period bookkeeping.
//!
//! The protocol is generic over its two primitives, the view [`Slot`] (arc-swap in
//! production) and the [`Generation`] counter (a std atomic), so that a model checker's
//! doubles can stand in for both: the loom test at the bottom explores every interleaving of
//! a writer publishing and readers revalidating.

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

    /// Tells readers to look again without changing the value (see [`SpaceCell::follow`]).
    pub fn bump(&self) {
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

/// The cell of one rendered view, shared by every address space whose root simplifies to
/// the same region: a commit publishes each changed view once, however many spaces show it.
pub(crate) type ViewCell = Cell<crate::flatview::FlatView>;

/// What one address space follows: the view cell of its current physical root.
pub(crate) struct SpaceCell {
    slot: ArcSwap<ViewCell>,
}

impl SpaceCell {
    pub fn new(cell: Arc<ViewCell>) -> SpaceCell {
        SpaceCell {
            slot: ArcSwap::new(cell),
        }
    }

    /// The view cell the space follows now.
    pub fn current(&self) -> Arc<ViewCell> {
        self.slot.load_full()
    }

    /// The space's current view.
    pub fn load(&self) -> Arc<crate::flatview::FlatView> {
        self.slot.load().load()
    }

    /// Makes the space follow another view cell. Readers that cached the old cell see its
    /// generation move (the bump comes after the switch), look here again and find the new one.
    pub fn follow(&self, cell: Arc<ViewCell>) {
        let old = self.slot.swap(cell);
        old.bump();
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
}
