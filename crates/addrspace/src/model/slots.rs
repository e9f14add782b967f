//! The arena behind [`RegionId`]s, apart from the graph so that what the docs promise about
//! ids is kept in one place: an id names at most one region, ever, of one memory system.
//!
//! Each slot counts generations; deleting a region bumps its slot's generation so the old id
//! stops resolving. A slot whose generation would wrap is retired instead of reused (after
//! 2^32 regions in one slot, one slot of a few dozen bytes is lost), so a stale id can never
//! name a newer region. Every arena takes a tag of its own from a process-wide counter and
//! stamps it into its ids: an id from another memory system is refused rather than taken for
//! whatever lives in the same slot here. Tags repeat only after 2^32 memory systems.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::model::region::RegionId;

/// The next arena's tag.
static NEXT_TAG: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Values addressed by generational, tagged [`RegionId`]s.
#[derive(Debug)]
pub(crate) struct Slots<T> {
    tag: u32,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    live: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            tag: NEXT_TAG.fetch_add(1, Ordering::Relaxed),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Slots<T> {
    /// Live values.
    pub fn live(&self) -> usize {
        self.live
    }

    /// One past the largest index ever used.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn id(&self, index: u32, generation: u32) -> RegionId {
        RegionId {
            index,
            generation,
            tag: self.tag,
        }
    }

    pub fn insert(&mut self, value: T) -> RegionId {
        self.live += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.value = Some(value);
            let generation = slot.generation;
            self.id(index, generation)
        } else {
            let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 regions");
            self.slots.push(Slot {
                generation: 0,
                value: Some(value),
            });
            self.id(index, 0)
        }
    }

    /// The slot of `id` if the id is current (this arena's, this generation).
    #[inline]
    fn slot_mut(&mut self, id: RegionId) -> Option<&mut Slot<T>> {
        let tag = self.tag;
        self.slots
            .get_mut(id.index as usize)
            .filter(|s| s.generation == id.generation && id.tag == tag)
    }

    #[inline]
    pub fn get(&self, id: RegionId) -> Option<&T> {
        self.slots
            .get(id.index as usize)
            .filter(|s| s.generation == id.generation && id.tag == self.tag)?
            .value
            .as_ref()
    }

    #[inline]
    pub fn get_mut(&mut self, id: RegionId) -> Option<&mut T> {
        self.slot_mut(id)?.value.as_mut()
    }

    /// Removes the value of a live id; its slot is reused under the next generation, or
    /// retired if the generation would wrap.
    pub fn remove(&mut self, id: RegionId) -> Option<T> {
        let slot = self.slot_mut(id)?;
        let value = slot.value.take()?;
        let next = slot.generation.checked_add(1);
        if let Some(next) = next {
            slot.generation = next;
            self.free.push(id.index);
        }
        self.live -= 1;
        Some(value)
    }

    /// All live ids, in index order.
    pub fn ids(&self) -> impl Iterator<Item = RegionId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| self.id(i as u32, s.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A slot whose generation would wrap is retired: its ids are never handed out again.
    #[test]
    fn a_slot_is_retired_before_its_generation_wraps() {
        let mut s = Slots::default();
        let first = s.insert(());
        s.remove(first).unwrap();
        s.slots[first.index as usize].generation = u32::MAX;
        let last = s.insert(());
        assert_eq!(last.index, first.index);
        s.remove(last).unwrap();
        let next = s.insert(());
        assert_ne!(next, first, "the first id of the slot is live again");
        assert_ne!(next.index, first.index, "the slot is retired");
        assert!(s.get(first).is_none() && s.get(last).is_none());
        assert_eq!((s.live(), s.capacity()), (1, 2));
    }

    #[test]
    fn ids_of_another_arena_are_refused() {
        let (mut a, mut b) = (Slots::default(), Slots::default());
        let (in_a, in_b) = (a.insert("a"), b.insert("b"));
        assert_eq!((in_a.index, in_a.generation), (in_b.index, in_b.generation));
        assert_ne!(in_a, in_b);
        assert_eq!(b.get(in_a), None);
        assert_eq!(b.get_mut(in_a), None);
        assert_eq!(b.remove(in_a), None);
        assert_eq!(b.get(in_b), Some(&"b"));
    }
}
