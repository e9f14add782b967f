//! Publication of flat views to lock-free readers.
//!
//! Each address space owns one [`ViewCell`]: writers store a new `Arc<FlatView>` at commit,
//! readers load the current one without locks. The old view is freed when its last reader
//! drops it — reclamation is ownership, with no grace-period bookkeeping. The cell wraps
//! arc-swap behind our own small type so that a model-checking double can replace it.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::flatview::FlatView;

/// An RCU-like cell holding the current view of one address space.
pub(crate) struct ViewCell {
    inner: ArcSwap<FlatView>,
}

impl ViewCell {
    pub fn new(view: Arc<FlatView>) -> ViewCell {
        ViewCell {
            inner: ArcSwap::new(view),
        }
    }

    /// The current view (a counted reference).
    pub fn load(&self) -> Arc<FlatView> {
        self.inner.load_full()
    }

    /// Publishes `view`; readers that loaded the previous one keep it.
    pub fn store(&self, view: Arc<FlatView>) {
        self.inner.store(view);
    }
}
