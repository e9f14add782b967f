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
//! - A CPU unplug completes at once: QEMU's `device_del` of a CPU asks the guest to eject it
//!   (ACPI) and `DEVICE_DELETED` comes when the guest has done so, if ever; our machines'
//!   tiny guests have no ACPI, so a backend unplugs during the command and emits the event
//!   right after the reply ([`Events::emit_after_reply`]).
//! - `info mtree -o` prints the owner text a region was given (imported from a QEMU `-o`
//!   dump, a board file's `owner`, or `Memory::set_owner`): there is no QOM object model
//!   behind it; a region without one prints QEMU's ` orphan`.
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
//! # Example
//!
//! A machine implements [`Backend`]; a [`Session`] speaks QMP with one client. A [`Monitor`]
//! runs one per client on its sockets (`Monitor::listen`); here a session is fed a client's
//! bytes directly. `examples/monitor_backend.rs` is a whole machine (CPU hot-plug with
//! address spaces, `info mtree`, events) served on a socket.
//!
//! ```
//! use std::sync::Arc;
//!
//! use addrspace_monitor::{Backend, Command, MtreeOptions, QmpError, Session};
//! use serde_json::{json, Value};
//!
//! struct Machine;
//!
//! impl Backend for Machine {
//!     fn execute(&self, cmd: &Command) -> Result<Value, QmpError> {
//!         match cmd {
//!             Command::QueryStatus => Ok(json!({"status": "running", "running": true})),
//!             _ => Err(QmpError::generic("Not on this machine")),
//!         }
//!     }
//!
//!     fn mtree(&self, _opts: &MtreeOptions) -> Result<String, QmpError> {
//!         Ok("address-space: memory\n".into())
//!     }
//! }
//!
//! let mut session = Session::new(Arc::new(Machine));
//! let greeting: Value = serde_json::from_str(&session.greeting())?;
//! assert_eq!(greeting["QMP"]["capabilities"], json!([]));
//!
//! // What a client sends: negotiation, then commands (one JSON value after another).
//! let input = br#"{"execute": "qmp_capabilities"}
//!     {"execute": "query-status", "id": 1}
//!     {"execute": "human-monitor-command", "arguments": {"command-line": "info mtree"}}
//!     {"execute": "stop"}
//!     {"execute": "query-status", "arguments": {"verbose": true}}"#;
//! let mut replies = Vec::new();
//! for line in session.feed_collect(input) {
//!     assert!(line.ends_with("\r\n")); // QEMU's line ends
//!     replies.push(serde_json::from_str::<Value>(&line)?);
//! }
//! assert_eq!(
//!     replies,
//!     [
//!         json!({"return": {}}),
//!         json!({"return": {"status": "running", "running": true}, "id": 1}),
//!         json!({"return": "address-space: memory\r\n"}),
//!         // What the backend refuses, in its words; what QAPI refuses, in QEMU's.
//!         json!({"error": {"class": "GenericError", "desc": "Not on this machine"}}),
//!         json!({"error": {"class": "GenericError", "desc": "Parameter 'verbose' is unexpected"}}),
//!     ]
//! );
//! # Ok::<(), serde_json::Error>(())
//! ```
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
    /// never reach it. Answer at least [`Command::QueryCpusFast`]: `human-monitor-command`
    /// checks its `cpu-index` against it, and `qmp-shell -H` sends one with every command.
    fn execute(&self, cmd: &Command) -> Result<serde_json::Value, QmpError>;

    /// The live machine's `info mtree` text (HMP), exactly what `addrspace mtree` prints.
    fn mtree(&self, opts: &MtreeOptions) -> Result<String, QmpError>;
}
