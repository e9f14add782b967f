//! The run loop of a vCPU thread.

use kvm_ioctls::{VcpuExit, VcpuFd};

use super::exits::{self, Spaces};
use super::kick::Armed;
use super::{Request, RunEnd, Shared, VcpuState};
use crate::error::{Error, Result};

/// Runs `fd` until `HLT`, shutdown, a stop request or an error; returns the fd and why.
pub(super) fn run(fd: VcpuFd, shared: &Shared, spaces: &Spaces) -> (VcpuFd, Result<RunEnd>) {
    // Marks the loop ended however it ends (a device model panicking included), so that
    // nobody waits on `pause` forever.
    let _ended = Ended(shared);
    let mut armed = Armed::new(fd);
    let end = run_loop(&mut armed, shared, spaces);
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

fn run_loop(armed: &mut Armed, shared: &Shared, spaces: &Spaces) -> Result<RunEnd> {
    // The last exit was MMIO or PIO: KVM completes it on the next KVM_RUN only.
    let mut pending_io = false;
    loop {
        {
            let mut c = shared.lock();
            if c.request != Request::Run {
                if pending_io {
                    // Enter KVM_RUN once with immediate_exit set: KVM completes the I/O
                    // and returns EINTR without running the guest.
                    armed.fd().set_kvm_immediate_exit(1);
                } else if c.request == Request::Stop {
                    return Ok(RunEnd::Stopped);
                } else {
                    c.state = VcpuState::Paused;
                    shared.changed.notify_all();
                    while c.request == Request::Pause {
                        c = shared.changed.wait(c).unwrap_or_else(|p| p.into_inner());
                    }
                    c.state = VcpuState::Running;
                    shared.changed.notify_all();
                    continue;
                }
            }
        }
        pending_io = false;
        match armed.fd().run() {
            Ok(exit) => match exits::dispatch(spaces, &shared.counts, exit) {
                Ok(()) => pending_io = true,
                Err(VcpuExit::Hlt) => return Ok(RunEnd::Halted),
                Err(VcpuExit::Shutdown) => return Ok(RunEnd::Shutdown),
                Err(VcpuExit::Intr) => {}
                Err(other) => {
                    tracing::warn!(exit = ?other, "unhandled vcpu exit");
                    return Ok(RunEnd::Unhandled);
                }
            },
            // A kick (signal, or immediate_exit set by the kick handler or above).
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                armed.fd().set_kvm_immediate_exit(0);
            }
            Err(e) => return Err(Error::ioctl("KVM_RUN", e)),
        }
    }
}
