//! How a vCPU is started: what `HLT` does ([`HaltPolicy`]) and whether it starts parked
//! ([`VcpuOptions`]). A long-running machine driven by a monitor idles on `HLT` instead of
//! ending, and a vCPU plugged while the machine is stopped must not run before `cont`.

use std::time::Duration;

/// What a vCPU does when its guest executes `HLT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HaltPolicy {
    /// The run loop ends with [`RunEnd::Halted`](super::RunEnd::Halted) (the default: a
    /// one-shot program's `HLT` is its end).
    #[default]
    Exit,
    /// The vCPU waits like a CPU waiting for its timer interrupt: the thread sleeps for this
    /// tick (or until a pause or stop request, which is served at once), then the guest
    /// continues after the `HLT`. There is no interrupt controller here, so the tick is the
    /// only wake-up source.
    Idle(Duration),
}

/// Options of [`Vcpu::start_with`](super::Vcpu::start_with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VcpuOptions {
    /// What `HLT` does.
    pub halt: HaltPolicy,
    /// Start with a pause request already set: the thread parks before its first `KVM_RUN`
    /// (start returns once it is parked), so the guest executes nothing until
    /// [`Vcpu::resume`](super::Vcpu::resume).
    pub paused: bool,
}
