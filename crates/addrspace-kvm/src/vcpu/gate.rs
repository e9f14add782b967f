//! The vCPU side of [`UpdateFence`] (QEMU's `accel_ioctl_inhibit_begin`/`_end`): a gate every
//! vCPU thread passes before `KVM_RUN`. [`UpdateFence::begin`] closes it, kicks every vCPU
//! inside `KVM_RUN` out and returns once none is inside; [`UpdateFence::end`] opens it again.
//!
//! The gate also serializes draining the VM's coalesced-MMIO ring (one ring per VM, mapped
//! through every vCPU fd), so its entries are dispatched once and in order.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::kick;
use crate::memslots::UpdateFence;

/// How often `begin` re-kicks vCPUs still inside `KVM_RUN` (a guard against a kick that
/// raced with the thread's arming; not a deadline).
const REKICK: Duration = Duration::from_millis(10);

#[derive(Default)]
struct State {
    /// Open `begin`s (nested fences stay closed until the last `end`).
    held: usize,
    /// Threads between `enter` and `leave` (inside or about to enter `KVM_RUN`).
    inside: usize,
    /// Live vCPU threads by token, to kick.
    threads: BTreeMap<u64, kick::ThreadId>,
    next: u64,
    /// Times `begin` found vCPUs inside `KVM_RUN` and kicked them.
    waits: u64,
}

/// A fence shared by the vCPUs of one VM (see the module docs).
#[derive(Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Condvar,
    /// Held while a thread drains the coalesced-MMIO ring.
    pub(super) ring: Mutex<()>,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the calling vCPU thread (kicked by `begin` while registered).
    pub(super) fn register(&self) -> u64 {
        let mut s = self.lock();
        let token = s.next;
        s.next += 1;
        s.threads.insert(token, kick::current_thread());
        token
    }

    /// Unregisters the calling thread: called before it returns from its run function.
    pub(super) fn unregister(&self, token: u64) {
        self.lock().threads.remove(&token);
    }

    /// Waits while the gate is closed, then counts the caller inside.
    pub(super) fn enter(&self) {
        let mut s = self.lock();
        while s.held > 0 {
            s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.inside += 1;
    }

    /// The caller is out of `KVM_RUN`.
    pub(super) fn leave(&self) {
        let mut s = self.lock();
        s.inside -= 1;
        // Only a fence (`held`) waits for the last vCPU to leave; waking nobody would still
        // cost a futex syscall on every exit.
        if s.inside == 0 && s.held > 0 {
            self.changed.notify_all();
        }
    }

    /// Times a fence had to kick running vCPUs out.
    pub fn waits(&self) -> u64 {
        self.lock().waits
    }
}

impl UpdateFence for Gate {
    fn begin(&self) {
        let mut s = self.lock();
        s.held += 1;
        if s.inside > 0 {
            s.waits += 1;
        }
        while s.inside > 0 {
            for t in s.threads.values() {
                // Registered threads are alive (they unregister before returning).
                kick::kick_thread(*t);
            }
            s = self
                .changed
                .wait_timeout(s, REKICK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn end(&self) {
        let mut s = self.lock();
        s.held = s.held.saturating_sub(1);
        if s.held == 0 {
            self.changed.notify_all();
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Gate")
            .field("held", &s.held)
            .field("inside", &s.inside)
            .finish()
    }
}
