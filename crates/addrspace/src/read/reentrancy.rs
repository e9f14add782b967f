//! The re-entrancy guard: QEMU's `MemReentrancyGuard`, which stops a device's MMIO handler
//! from re-entering the same device (directly, or by DMA into its own registers) — a classic
//! source of use-after-free in device models.
//!
//! What counts as one device: every ops object returning the same
//! [`RegionOps::device_key`](crate::RegionOps::device_key) (by default, the ops object
//! itself), like QEMU's guard which lives in the owning `DeviceState` and covers all of the
//! device's regions. As in QEMU, ROM devices are not guarded (in romd mode or not), and
//! [`AccessRules::allow_reentrancy`](crate::AccessRules::allow_reentrancy) opts a device out
//! (QEMU's `disable_reentrancy_guard`). A refusal is
//! [`MemTxResult::ACCESS_ERROR`](crate::MemTxResult::ACCESS_ERROR); the first one in the
//! process is a `tracing` warning and later ones are `debug` events (QEMU's
//! `warn_report_once`), so a guest that loops a device into itself cannot flood the log.
//!
//! One deliberate difference: QEMU's flag is per device, shared by every thread, which is
//! sound there because the big lock serializes MMIO. Here vCPU threads dispatch
//! concurrently, so the guard is per device *and per thread*: an access is refused only when
//! the same thread is already inside the device. Another vCPU's concurrent access to the
//! device is not re-entrancy and goes through.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Device keys with an access in progress on this thread, innermost last.
    static ACTIVE: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Whether a refusal was already reported at warning level in this process.
static WARNED: AtomicBool = AtomicBool::new(false);

/// Marks a device busy on this thread until dropped (also on unwinding).
pub(crate) struct Busy(Option<usize>);

impl Busy {
    /// Enters device `key` on this thread; `None` (and a report) if the thread is already
    /// inside it. An unguarded device (`guarded` false) always enters.
    #[inline]
    pub(crate) fn enter(key: usize, guarded: bool, offset: u64) -> Option<Busy> {
        if !guarded {
            return Some(Busy(None));
        }
        ACTIVE.with(|a| {
            let mut a = a.borrow_mut();
            if a.contains(&key) {
                refused(key, offset);
                return None;
            }
            a.push(key);
            Some(Busy(Some(key)))
        })
    }

    /// Whether this thread has no guarded access in progress.
    #[cfg(test)]
    pub(crate) fn idle() -> bool {
        ACTIVE.with(|a| a.borrow().is_empty())
    }
}

impl Drop for Busy {
    #[inline]
    fn drop(&mut self) {
        if let Some(key) = self.0 {
            ACTIVE.with(|a| {
                let mut a = a.borrow_mut();
                if let Some(i) = a.iter().rposition(|&k| k == key) {
                    a.remove(i);
                }
            });
        }
    }
}

#[cold]
fn refused(key: usize, offset: u64) {
    if WARNED.swap(true, Ordering::Relaxed) {
        tracing::debug!(device = key, offset, "re-entrant device access refused");
    } else {
        tracing::warn!(
            device = key,
            offset,
            "re-entrant device access refused (reported once; later refusals are debug events)"
        );
    }
}
