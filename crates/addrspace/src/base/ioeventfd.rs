//! ioeventfds in software dispatch: a write that matches a registration on the device's
//! region signals the eventfd instead of reaching the device (QEMU's
//! `memory_region_dispatch_write_eventfds`).
//!
//! Registrations live in the region graph (listeners hear them at commits, with absolute
//! addresses, to program an accelerator); each MMIO region's leaf also keeps a copy that the
//! lock-free dispatcher reads, replaced whenever a registration is added or removed, so it
//! takes effect at once, as in QEMU. Unlike QEMU, which skips the check when the accelerator
//! handles ioeventfds itself (KVM), the check is always made here: a write that reaches the
//! software dispatcher was not caught by an accelerator.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::write::listener::IoEventFd;

/// A region's ioeventfd registrations (region offsets, sorted), as the dispatcher sees them.
#[derive(Debug, Default)]
pub(crate) struct SoftEventFds {
    /// Whether `list` may be non-empty: lets a device without ioeventfds skip the list
    /// (one relaxed load instead of an `ArcSwap` load on every MMIO write).
    any: AtomicBool,
    list: ArcSwap<Vec<IoEventFd>>,
}

impl SoftEventFds {
    /// Replaces the registrations with `list` (sorted).
    pub(crate) fn set(&self, list: &[IoEventFd]) {
        self.list.store(Arc::new(list.to_vec()));
        // Release: a writer that sees `any` also sees the list stored before it.
        self.any.store(!list.is_empty(), Ordering::Release);
    }

    /// Signals the first registration matching a write of `size` bytes of `value` (in the
    /// device's byte order) at region offset `offset`; whether one matched. A registration
    /// matches at its offset when its size is 0 (any write) or equal to `size` and it has no
    /// data or the same value.
    #[inline]
    pub(crate) fn signal(&self, offset: u64, value: u64, size: u32) -> bool {
        self.any.load(Ordering::Acquire) && self.signal_listed(offset, value, size)
    }

    fn signal_listed(&self, offset: u64, value: u64, size: u32) -> bool {
        let list = self.list.load();
        let first = list.partition_point(|e| e.addr < offset);
        let hit = list[first..]
            .iter()
            .take_while(|e| e.addr == offset)
            .find(|e| e.size == 0 || (e.size == u64::from(size) && e.data.is_none_or(|d| d == value)));
        let Some(e) = hit else {
            return false;
        };
        // A full counter (EAGAIN) is still a pending signal; nothing is lost.
        if let Err(err) = e.notifier.write(1) {
            tracing::debug!(offset, size, %err, "ioeventfd signal failed");
        }
        true
    }
}
