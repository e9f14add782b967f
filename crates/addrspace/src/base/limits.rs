//! Limits on what a board file, a command-line flag or a caller can ask for.
//!
//! Numbers that size host allocations or name CPUs come from files and flags; without a
//! bound, `max-cpus = 1000000000000` aborts on allocation, an address-space index near
//! `usize::MAX` overflows a vector's capacity, and CPU indices wrap past 2^32 back to 0. The
//! bounds follow KVM's, which QEMU machines live within: at most 1 024 vCPUs per VM
//! (`KVM_MAX_VCPUS` on x86) and vCPU ids below 4 096 (`KVM_MAX_VCPU_IDS`). Going beyond one
//! is [`Error::Limit`], which names the limit.

use crate::base::error::{Error, Result};

/// Most CPU slots a [`crate::machine::cpu::Cluster`] can have (KVM's `KVM_MAX_VCPUS`).
pub const MAX_CPUS: usize = 1024;

/// CPU indices (QEMU's `cpu_index`) are below this (KVM's `KVM_MAX_VCPU_IDS`).
pub const MAX_CPU_ID: u32 = 4096;

/// Address-space indices of a CPU are below this (QEMU CPUs use at most 4: Arm's secure and
/// tag spaces; x86 uses 2, KVM's SMM space).
pub const MAX_CPU_SPACES: usize = 16;

/// `value` must be at most `limit`.
pub(crate) fn at_most(what: impl FnOnce() -> String, value: u128, limit: u64) -> Result<()> {
    if value > u128::from(limit) {
        return Err(Error::Limit {
            what: what(),
            value,
            limit,
        });
    }
    Ok(())
}

/// Checks the slots of a cluster: at most [`MAX_CPUS`], and indices
/// `first_index..first_index + max_cpus` below [`MAX_CPU_ID`].
pub(crate) fn check_cluster(name: &str, first_index: u32, max_cpus: usize) -> Result<()> {
    at_most(
        || format!("cluster `{name}`: max-cpus"),
        max_cpus as u128,
        MAX_CPUS as u64,
    )?;
    let last = u128::from(first_index) + (max_cpus as u128).saturating_sub(1);
    at_most(
        || format!("cluster `{name}`: last CPU index (first-index {first_index} + max-cpus {max_cpus} - 1)"),
        last,
        u64::from(MAX_CPU_ID) - 1,
    )
}

/// Checks a CPU's address-space index: below [`MAX_CPU_SPACES`].
pub(crate) fn check_space_index(prefix: &str, index: usize) -> Result<()> {
    at_most(
        || format!("CPU address space `{prefix}`: index"),
        index as u128,
        MAX_CPU_SPACES as u64 - 1,
    )
}
