//! Typed errors of the core: calls on a [`crate::Memory`] and its handles.
//!
//! Each message names the region involved and, where it helps, what to do instead. A failed
//! call leaves the memory system exactly as it was before the call. Reading board files and
//! QEMU dumps has its own error type, [`crate::LoadError`] (file, line, what), which wraps
//! an `Error` when a call made while loading failed.

/// What went wrong in a call on [`crate::Memory`] or one of its handles.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`crate::RegionId`] that does not name a live region of this memory system.
    #[error("region id {0} does not name a live region (deleted, or from another Memory)")]
    UnknownRegion(String),
    /// A size larger than 2^64 bytes.
    #[error("region `{name}`: size {size:#x} exceeds 2^64 bytes")]
    SizeTooLarge {
        /// Region name.
        name: String,
        /// Requested size.
        size: u128,
    },
    /// A subregion whose end would lie beyond 2^64 inside its container.
    #[error("region `{child}` at {addr:#x} with size {size:#x} overflows 2^64 inside `{container}`")]
    AddressOverflow {
        /// Container name.
        container: String,
        /// Subregion name.
        child: String,
        /// Requested address.
        addr: u64,
        /// Subregion size.
        size: u128,
    },
    /// The subregion is already placed in a container (an MR has at most one container).
    #[error("region `{child}` is already mapped in `{container}`; remove it first or map an alias")]
    AlreadyMapped {
        /// Subregion name.
        child: String,
        /// Its current container.
        container: String,
    },
    /// The region is not a subregion of the named container.
    #[error("region `{child}` is not a subregion of `{container}`")]
    NotMapped {
        /// Subregion name.
        child: String,
        /// Container name.
        container: String,
    },
    /// Subregions cannot be added to an alias.
    #[error("region `{0}` is an alias; aliases cannot contain subregions")]
    AliasHasNoSubregions(String),
    /// The change would make a region visible through itself (container or alias cycle).
    #[error("mapping `{child}` into `{container}` would create a cycle: `{container}` is reachable from `{child}`")]
    Cycle {
        /// Container name.
        container: String,
        /// Subregion name.
        child: String,
    },
    /// The change would create a cycle through aliases into an ancestor that rendering
    /// could not finish (see the `cycle` rules in the crate docs); nothing was changed.
    #[error("{change} would create a cycle QEMU cannot render: {why}; the path: {chain}")]
    EndlessCycle {
        /// What was attempted (`mapping `a` into `b``, ...).
        change: String,
        /// Why rendering could not finish.
        why: String,
        /// The regions on the offending path, outermost first.
        chain: String,
    },
    /// The operation does not apply to this kind of region.
    #[error("region `{name}` is {kind}: {what}")]
    WrongKind {
        /// Region name.
        name: String,
        /// Its kind.
        kind: &'static str,
        /// What was attempted.
        what: &'static str,
    },
    /// The region cannot be deleted because something still uses it.
    #[error("region `{name}` is still in use: {reason}")]
    InUse {
        /// Region name.
        name: String,
        /// What uses it.
        reason: String,
    },
    /// Host memory for a RAM region could not be reserved.
    #[error("region `{name}`: cannot reserve {size:#x} bytes of host memory: {source}")]
    RamAlloc {
        /// Region name.
        name: String,
        /// Requested size.
        size: u128,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listener callback tried to change the topology or the listener set while the
    /// memory system was notifying listeners.
    #[error("cannot {what} from inside a memory-listener callback; defer it until the callback returns")]
    InListener {
        /// What was attempted.
        what: &'static str,
    },
    /// A listener refused to start global dirty tracking; nothing was started.
    #[error("listener `{listener}` refused to start dirty tracking: {reason}")]
    ListenerRefused {
        /// The listener's name.
        listener: String,
        /// Its reason.
        reason: String,
    },
    /// No ioeventfd registration matches.
    #[error(
        "region `{name}`: no ioeventfd registered at offset {offset:#x} (size {size}) with that data and notifier"
    )]
    NoSuchEventFd {
        /// Region name.
        name: String,
        /// Region offset.
        offset: u64,
        /// Access size.
        size: u64,
    },
    /// A device's [`crate::AccessRules`] that the dispatcher cannot carry out (checked when
    /// its MMIO region or ROM device is created).
    #[error("region `{name}`: access rules refused: {field} {why}")]
    InvalidAccessRules {
        /// Region name.
        name: String,
        /// The offending field (`valid.max`, `implementation`, ...).
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The memory system was dropped while a handle still referred to it.
    #[error("the memory system no longer exists")]
    MemoryGone,
    /// A count or an index beyond one of the [`crate::base::limits`].
    #[error("{what} is {value}, beyond the limit of {limit}")]
    Limit {
        /// What was asked for, and where.
        what: String,
        /// The value asked for.
        value: u128,
        /// The largest value allowed.
        limit: u64,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
