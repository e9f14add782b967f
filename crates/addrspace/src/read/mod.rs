//! The read layer: everything a vCPU thread runs, and nothing it does not.
//!
//! Publication cells (the lock-free pointer to the current view), accessors with their
//! last-hit cache, dispatch of typed and byte-slice accesses, QEMU's MMIO access rules and the
//! re-entrancy guard. Nothing here takes the topology lock.

pub mod accessor;
pub(crate) mod dispatch;
pub(crate) mod mmio;
pub(crate) mod publish;
pub(crate) mod reentrancy;
