//! The lookup half of a layered view: a per-CPU view that stores only its private windows
//! and borrows every other range from a shared view (how such a view is built is
//! [`view::layer`](crate::view::layer)'s business). A lookup checks the windows, then either
//! the view's own small index or the base's.

use std::sync::Arc;

use super::{FlatView, Mru, Pos};
use crate::view::range::FlatRange;

/// A layered view's windows over its base.
pub(crate) struct Layer {
    pub(crate) base: Arc<FlatView>,
    /// Where the root's private children can claim addresses (before widening).
    pub(crate) claims: Box<[(u128, u128)]>,
    pub(crate) windows: Box<[Window]>,
    /// Number of ranges, own and borrowed.
    pub(crate) len: usize,
}

/// One private window: base ranges `base.0..base.1` are replaced by own ranges
/// `own.0..own.1`, which come at position `at` of the merged sequence.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) first: u64,
    pub(crate) last: u64,
    pub(crate) base: (usize, usize),
    pub(crate) own: (usize, usize),
    pub(crate) at: usize,
}

/// Where an address was found in a layered view.
pub(crate) enum Hit {
    /// An own range (its position in the view).
    Own(Pos),
    /// A base range (its position in the base).
    Base(Pos),
}

impl Layer {
    pub fn base(&self) -> &Arc<FlatView> {
        &self.base
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The windows, as (first, last) addresses.
    pub fn windows(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.windows.iter().map(|w| (w.first, w.last))
    }

    /// The `i`-th range of the merged sequence.
    pub fn get<'v>(&'v self, view: &'v FlatView, i: usize) -> Option<&'v FlatRange> {
        self.get_at(view, i, self.windows.partition_point(|w| w.at <= i))
    }

    /// [`get`](Self::get) for ascending `i`: `*next` counts the windows starting at or before
    /// the previous `i` and moves forward with it (no search per range).
    pub fn get_ascending<'v>(&'v self, view: &'v FlatView, i: usize, next: &mut usize) -> Option<&'v FlatRange> {
        while self.windows.get(*next).is_some_and(|w| w.at <= i) {
            *next += 1;
        }
        self.get_at(view, i, *next)
    }

    /// The `i`-th range, `w` being the number of windows starting at or before it.
    fn get_at<'v>(&'v self, view: &'v FlatView, i: usize, w: usize) -> Option<&'v FlatRange> {
        let Some(win) = w.checked_sub(1).map(|w| &self.windows[w]) else {
            return self.base.own(i);
        };
        let k = i - win.at;
        let own = win.own.1 - win.own.0;
        if k < own {
            view.own(win.own.0 + k)
        } else {
            self.base.own(win.base.1 + (k - own))
        }
    }

    /// The window holding `addr`, if any.
    pub(crate) fn window(&self, addr: u64) -> Option<&Window> {
        let w = self.windows.partition_point(|w| w.last < addr);
        self.windows.get(w).filter(|w| w.first <= addr)
    }

    /// The range holding `addr`: an own one inside a window, a base one outside.
    pub fn search(&self, view: &FlatView, addr: u64) -> Option<Hit> {
        if self.window(addr).is_some() {
            view.search(addr).map(Hit::Own)
        } else {
            self.base.search(addr).map(Hit::Base)
        }
    }

    /// [`FlatView::find`] once the view's own last hit missed: the base's last hit, then a
    /// search. Kept out of line so plain views' lookups stay as they were.
    #[inline(never)]
    pub fn find<'v>(&'v self, view: &'v FlatView, addr: u64, mru: &mut Mru) -> Option<&'v FlatRange> {
        if let Some(r) = mru.index.checked_sub(Mru::BASE).and_then(|j| self.base.at(j)) {
            if r.start <= addr && addr <= r.last {
                return Some(r);
            }
        }
        match self.search(view, addr)? {
            Hit::Own(pos) => {
                mru.index = pos;
                view.at(pos)
            }
            Hit::Base(pos) => {
                mru.index = Mru::BASE + pos;
                self.base.at(pos)
            }
        }
    }

    /// The first base range start above `addr` that lies outside every window (2^64 if none).
    pub fn next_base_start(&self, addr: u64) -> u128 {
        let mut at = addr;
        loop {
            let s = self.base.next_start(at);
            let Ok(s64) = u64::try_from(s) else { return s };
            match self.window(s64) {
                Some(w) if w.last == u64::MAX => return 1 << 64,
                Some(w) => at = w.last,
                None => return s,
            }
        }
    }
}
