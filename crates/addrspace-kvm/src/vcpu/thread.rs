//! The run loop of a vCPU thread.

use std::time::{Duration, Instant};

use kvm_ioctls::{VcpuExit, VcpuFd};

use super::exits::{self, Spaces};
use super::gate::Gate;
use super::kick::{self, Armed};
use super::{HaltPolicy, Request, RunEnd, Shared, VcpuState};
use crate::error::{Error, Result};

/// Runs `fd` until `HLT` (under [`HaltPolicy::Exit`]), shutdown, a stop request or an
/// error; returns the fd and why.
pub(super) fn run(mut fd: VcpuFd, shared: &Shared, spaces: &Spaces, gate: &Gate) -> (VcpuFd, Result<RunEnd>) {
    // Marks the loop ended however it ends (a device model panicking included), so that
    // nobody waits on `pause` forever.
    let _ended = Ended(shared);
    let _registered = Registered(gate, gate.register());
    // Without the ring (no KVM_CAP_COALESCED_MMIO) no zone can be registered either.
    let ring = match fd.map_coalesced_mmio_ring() {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(error = %e, "no coalesced mmio ring");
            false
        }
    };
    let mut armed = Armed::new(fd);
    let mut l = Loop {
        armed: &mut armed,
        shared,
        spaces,
        gate,
        ring,
        buf: Vec::new(),
    };
    let end = l.run_loop();
    tracing::debug!(?end, "vcpu run loop ended");
    (armed.into_inner(), end)
}

struct Ended<'a>(&'a Shared);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        let mut c = self.0.lock();
        c.state = VcpuState::Ended;
        self.0.changed.notify_all();
    }
}

struct Registered<'a>(&'a Gate, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.unregister(self.1);
    }
}

struct Loop<'a> {
    armed: &'a mut Armed,
    shared: &'a Shared,
    spaces: &'a Spaces,
    gate: &'a Gate,
    ring: bool,
    buf: Vec<u8>,
}

impl Loop<'_> {
    /// Dispatches the coalesced ring's entries in order (the ring is the VM's: the gate's
    /// lock makes one thread drain it at a time).
    fn drain(&mut self) {
        if !self.ring {
            return;
        }
        let _one = self.gate.ring.lock().unwrap_or_else(|p| p.into_inner());
        while let Ok(Some(e)) = self.armed.fd().coalesced_mmio_read() {
            exits::coalesced(self.spaces, &self.shared.counts, &e);
        }
    }

    /// Sleeps on `HLT` until `tick` elapsed or a pause/stop request came (whichever is
    /// first); the loop then serves the request or re-enters `KVM_RUN` after the `HLT`.
    fn idle(&self, tick: Duration) {
        let deadline = Instant::now().checked_add(tick);
        let mut c = self.shared.lock();
        while c.request == Request::Run {
            // A tick too long to represent is a wait for the next request.
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                },
                None => Duration::MAX,
            };
            c = self
                .shared
                .changed
                .wait_timeout(c, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn run_loop(&mut self) -> Result<RunEnd> {
        // The last exit was MMIO or PIO: KVM completes it on the next KVM_RUN only.
        let mut pending_io = false;
        loop {
            {
                let mut c = self.shared.lock();
                if c.request != Request::Run {
                    if pending_io {
                        // Enter KVM_RUN once with immediate_exit set: KVM completes the I/O
                        // and returns EINTR without running the guest.
                        self.armed.fd().set_kvm_immediate_exit(1);
                    } else if c.request == Request::Stop {
                        drop(c);
                        self.drain();
                        return Ok(RunEnd::Stopped);
                    } else {
                        drop(c);
                        self.drain();
                        c = self.shared.lock();
                        c.state = VcpuState::Paused;
                        self.shared.changed.notify_all();
                        while c.request == Request::Pause {
                            c = self.shared.changed.wait(c).unwrap_or_else(|p| p.into_inner());
                        }
                        c.state = VcpuState::Running;
                        self.shared.changed.notify_all();
                        continue;
                    }
                }
            }
            pending_io = false;
            self.gate.enter();
            let result = self.armed.fd().run();
            // Out of KVM_RUN before dispatching: a device model may commit a topology
            // change whose fence waits for every vCPU (this one included) to be out.
            self.gate.leave();
            let owned = match result {
                Ok(exit) => exits::own(exit, &mut self.buf),
                // A kick (signal, or immediate_exit set by the kick handler or above).
                Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                    self.armed.fd().set_kvm_immediate_exit(0);
                    continue;
                }
                Err(e) => return Err(Error::ioctl("KVM_RUN", e)),
            };
            match owned {
                Ok(io) => {
                    // Writes the guest made to coalesced zones before this access come first.
                    self.drain();
                    if exits::dispatch_owned(self.spaces, &self.shared.counts, &io, &mut self.buf) {
                        kick::fill_read(self.armed.fd(), &self.buf);
                    }
                    pending_io = true;
                }
                Err(VcpuExit::Hlt) => {
                    self.drain();
                    self.shared.counts.halted();
                    match self.shared.halt {
                        HaltPolicy::Exit => return Ok(RunEnd::Halted),
                        HaltPolicy::Idle(tick) => self.idle(tick),
                    }
                }
                Err(VcpuExit::Shutdown) => {
                    self.drain();
                    return Ok(RunEnd::Shutdown);
                }
                Err(VcpuExit::Intr) => {}
                Err(other) => {
                    tracing::warn!(exit = ?other, "unhandled vcpu exit");
                    return Ok(RunEnd::Unhandled);
                }
            }
        }
    }
}
