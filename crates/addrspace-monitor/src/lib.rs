//! A QEMU-compatible monitor for addrspace machines: QMP (QEMU's JSON machine protocol, as
//! spoken by libvirt, QEMU's Python `qemu.qmp` and `qmp-shell`) and HMP (the `(qemu)` text
//! prompt), over Unix or TCP sockets and the terminal.
//!
//! The crate knows the protocol, the command table and QEMU's error classes; it knows
//! nothing about KVM or the memory model. A running machine implements [`Backend`]: the
//! monitor validates a request, turns it into a typed [`Command`] and hands it over; the
//! backend reports events (`DEVICE_DELETED`, `STOP`, ...) through [`Events`].
//!
//! Layers, bottom-up: `error` (QEMU's error classes) → `command` (the command table,
//! argument checking) → `wire` (splitting a byte stream into JSON values) → `session` (one
//! client: greeting, negotiation, dispatch) → `event` (broadcast with timestamps) →
//! `server` (listeners, clients) and `hmp` (text commands over the same backend).

#![warn(missing_docs)]

pub mod command;
pub mod error;
pub mod event;

pub use command::{Command, MtreeOptions};
pub use error::{ErrorClass, QmpError};
pub use event::Events;

/// A running machine, as the monitor sees it.
///
/// Called from the clients' threads, one command at a time per client but concurrently
/// across clients: an implementation serializes what must be serialized.
pub trait Backend: Send + Sync {
    /// Runs a validated command and returns what goes in the reply's `return` member
    /// (`{}` for commands that return nothing). Commands the monitor answers itself
    /// (`qmp_capabilities`, `query-commands`, `query-version`, `human-monitor-command`)
    /// never reach it.
    fn execute(&self, cmd: &Command) -> Result<serde_json::Value, QmpError>;

    /// The live machine's `info mtree` text (HMP), exactly what `addrspace mtree` prints.
    fn mtree(&self, opts: &MtreeOptions) -> Result<String, QmpError>;
}
