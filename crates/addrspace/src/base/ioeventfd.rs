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

use std::cmp::Ordering as Order;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use vmm_sys_util::eventfd::EventFd;

/// An ioeventfd: a guest write of `size` bytes at `addr` (with `data`, if given) signals
/// `notifier` instead of reaching the device. Registered with region offsets
/// ([`IoEventFds::add`](crate::IoEventFds::add)); listeners get absolute addresses.
#[derive(Clone)]
pub struct IoEventFd {
    /// Region offset (registration) or address in the space (listener callbacks).
    pub addr: u64,
    /// Access size in bytes; 0 matches any size.
    pub size: u64,
    /// The value that must be written (already in the device's byte order), or any value.
    pub data: Option<u64>,
    /// The eventfd signalled.
    pub notifier: Arc<EventFd>,
}

impl IoEventFd {
    fn key(&self) -> (u64, u64, bool, u64, usize) {
        let data = self.data.unwrap_or(0);
        (
            self.addr,
            self.size,
            self.data.is_some(),
            data,
            Arc::as_ptr(&self.notifier) as usize,
        )
    }
}

impl PartialEq for IoEventFd {
    fn eq(&self, o: &Self) -> bool {
        self.key() == o.key()
    }
}
impl Eq for IoEventFd {}
impl PartialOrd for IoEventFd {
    fn partial_cmp(&self, o: &Self) -> Option<Order> {
        Some(self.cmp(o))
    }
}
impl Ord for IoEventFd {
    /// QEMU's order: address, size, match-data flag, data, notifier.
    fn cmp(&self, o: &Self) -> Order {
        self.key().cmp(&o.key())
    }
}

impl fmt::Debug for IoEventFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "eventfd[{:#x}+{}", self.addr, self.size)?;
        if let Some(d) = self.data {
            write!(f, " ={d:#x}")?;
        }
        write!(f, "]")
    }
}

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
