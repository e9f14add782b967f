//! A QEMU-compatible monitor for addrspace machines: QMP (QEMU's JSON machine protocol, as
//! spoken by libvirt, QEMU's Python `qemu.qmp` and `qmp-shell`) and HMP (the `(qemu)` text
//! prompt), over Unix or TCP sockets and the terminal.
//!
//! The crate knows the protocol, the command table and QEMU's error classes; it knows
//! nothing about KVM or the memory model. A running machine implements [`Backend`]: the
//! monitor validates a request, turns it into a typed [`Command`] and hands it over; the
//! backend reports events (`DEVICE_DELETED`, `STOP`, ...) through [`Events`].
//!
//! We model QEMU 10.0.2: `query-version` says so (with `"package": "addrspace VERSION"`),
//! and the wire behaviour — greeting, negotiation, error classes and messages, JSON
//! formatting down to member order and `"\r\n"` line ends, the JSON parser's limits and
//! its recovery from junk — follows QEMU 10.0's source. We offer no out-of-band execution
//! (the greeting's `capabilities` is empty).
//!
//! # Where we differ from QEMU, on purpose
//!
//! - No out-of-band execution: the greeting offers no capability, and `qmp_capabilities`
//!   with `"enable": ["oob"]` gets QEMU's error for a capability not offered (`Capability
//!   oob not available`).
//! - A socket serves several clients at once (QEMU's socket chardev serves one at a time; a
//!   second client waits without a greeting): each gets its own session and the events.
//! - `x-query-live-objects` is ours (live-object counters of the addrspace machine).
//! - `info mtree -o` (owners) is refused, saying why: our regions have no owner (no QOM
//!   object model). Its help line is still QEMU's, `-o` included.
//! - HMP's `help` lists only the commands we implement (with QEMU's lines).
//! - `device_add` refuses an `id` that is not an identifier (letter first, then letters,
//!   digits, `-`, `.`, `_`) with `Parameter 'id' expects an identifier`, the words QEMU
//!   uses for such ids on its command line; QOM paths built from other ids would be
//!   ambiguous.
//! - A number too large even for a double (`1e400`) is `null` to us; QEMU keeps an
//!   infinity and then prints it as the invalid JSON `inf`.
//! - Only listening sockets (`server=on`); QEMU's client mode is not supported. A Unix
//!   socket path holding something other than a socket is not deleted (QEMU would).
//! - A client whose queue of unwritten lines reaches 4096 when an event arrives is
//!   disconnected (QEMU buffers without bound).
//!
//! Event order, as in QEMU: events a command causes (`STOP`, `RESUME`, `SHUTDOWN`) reach
//! clients before that command's reply when the backend emits them with [`Events::emit`]
//! while the command runs; `DEVICE_DELETED` for an unplug that completes at once comes
//! after the reply in QEMU, which [`Events::emit_after_reply`] gives.
//!
//! Layers, bottom-up: `error` (QEMU's error classes) → `command` (the command table,
//! argument checking) → `wire` (splitting a byte stream into JSON values) and `qjson`
//! (QEMU's JSON text) → `session` (one client: greeting, negotiation, dispatch) → `event`
//! (broadcast with timestamps) → `server` (listeners, clients) and `hmp` (text commands
//! over the same backend).

#![warn(missing_docs)]

mod args;
pub mod chardev;
pub mod command;
pub mod error;
pub mod event;
pub mod hmp;
mod hmp_parse;
mod json_parse;
mod outbox;
pub mod qjson;
pub mod server;
pub mod session;
mod stream;
pub mod wire;

pub use chardev::{ChardevSpec, Endpoint};
pub use command::{Command, MtreeOptions, Parsed, COMMAND_NAMES};
pub use error::{ErrorClass, QmpError};
pub use event::Events;
pub use hmp::{run_line, HmpOutput};
pub use server::{Monitor, MonitorError};
pub use session::Session;

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
