//! One QMP client, independent of sockets: bytes in, lines out.
//!
//! A session starts in negotiation mode, where only `qmp_capabilities` exists, and moves to
//! command mode once it succeeds. Every request gets one reply line, `{"return": ...}` or
//! `{"error": {"class": ..., "desc": ...}}`, with the request's `id` (any JSON value) copied
//! when the request was an object; bad input that is not even an object gets an error
//! without `id`, as in QEMU. Requests run one at a time, in order (QEMU without OOB).
//! Every line ends with `"\r\n"`, like everything QEMU's monitor writes.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::command::{Command, Parsed, COMMAND_NAMES};
use crate::error::{ErrorClass, QmpError};
use crate::event;
use crate::hmp;
use crate::qjson;
use crate::wire::{Item, Splitter};
use crate::Backend;

/// The QEMU version whose QMP we model (10.0.2).
pub const QEMU_VERSION: (u32, u32, u32) = (10, 0, 2);

/// Where a session's output goes.
pub trait Sink {
    /// One complete line (a reply), `"\r\n"` included.
    fn send(&mut self, line: String);
    /// Capability negotiation just completed: from now on the client gets events.
    fn negotiated(&mut self) {}
    /// Whether to stop running requests (the monitor is shutting down); requests not yet
    /// started are then dropped unanswered.
    fn stopping(&self) -> bool {
        false
    }
    /// Called before each request runs: a sink whose client lags behind waits here for room
    /// (never in [`Sink::send`], which would hold back the events the request defers until
    /// after its reply, for every client).
    fn ready(&mut self) {}
}

impl Sink for Vec<String> {
    fn send(&mut self, line: String) {
        self.push(line);
    }
}

/// `query-version`'s reply (also the greeting's `version`).
pub fn version() -> Value {
    let (major, minor, micro) = QEMU_VERSION;
    json!({
        "qemu": {"major": major, "minor": minor, "micro": micro},
        "package": format!("addrspace {}", env!("CARGO_PKG_VERSION")),
    })
}

/// `value` as one line of monitor output.
pub fn line(value: &Value) -> String {
    let mut text = qjson::to_string(value);
    text.push_str("\r\n");
    text
}

/// One client's protocol state: feed it the client's bytes, send the client what it returns.
///
/// The crate documentation has an example; [`Monitor`](crate::Monitor) runs one per client.
pub struct Session {
    splitter: Splitter,
    dispatcher: Dispatcher,
}

struct Dispatcher {
    backend: Arc<dyn Backend>,
    negotiated: bool,
}

impl Session {
    /// A session in negotiation mode.
    pub fn new(backend: Arc<dyn Backend>) -> Session {
        Session {
            splitter: Splitter::new(),
            dispatcher: Dispatcher {
                backend,
                negotiated: false,
            },
        }
    }

    /// The greeting line, sent when the client connects (no OOB: capabilities are empty).
    pub fn greeting(&self) -> String {
        line(&json!({"QMP": {"version": version(), "capabilities": []}}))
    }

    /// Whether capability negotiation has completed.
    pub fn is_negotiated(&self) -> bool {
        self.dispatcher.negotiated
    }

    /// Feeds bytes from the client; runs every request they complete and sends its reply.
    pub fn feed(&mut self, bytes: &[u8], sink: &mut dyn Sink) {
        let Session { splitter, dispatcher } = self;
        splitter.feed(bytes, &mut |item| {
            sink.ready();
            if !sink.stopping() {
                dispatcher.handle(item, sink);
            }
        });
    }

    /// Feeds bytes and returns the reply lines (for tests and tools).
    pub fn feed_collect(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        self.feed(bytes, &mut lines);
        lines
    }
}

impl Dispatcher {
    fn handle(&mut self, item: Item, sink: &mut dyn Sink) {
        let was_negotiated = self.negotiated;
        let ((result, id), after_reply) = event::run_deferring(|| match item {
            Err(desc) => (Err(QmpError::generic(desc)), None),
            Ok(request) => self.dispatch(request),
        });
        let mut reply = Map::new();
        match result {
            Ok(value) => {
                reply.insert("return".into(), value);
            }
            Err(e) => {
                tracing::debug!(class = %e.class, desc = %e.desc, "QMP error reply");
                reply.insert("error".into(), json!({"class": e.class.as_str(), "desc": e.desc}));
            }
        }
        if let Some(id) = id {
            reply.insert("id".into(), id);
        }
        // As in QEMU, the client is in command mode (and gets events) before the reply to
        // `qmp_capabilities` goes out: no event after that reply can be missed.
        if self.negotiated && !was_negotiated {
            sink.negotiated();
        }
        sink.send(line(&Value::Object(reply)));
        after_reply.emit();
    }

    /// Runs one parsed request: its result and the `id` to echo.
    fn dispatch(&mut self, request: Value) -> (Result<Value, QmpError>, Option<Value>) {
        let Value::Object(request) = request else {
            return (Err(QmpError::generic("QMP input must be a JSON object")), None);
        };
        let id = request.get("id").cloned();
        (self.execute(&request), id)
    }

    fn execute(&mut self, request: &Map<String, Value>) -> Result<Value, QmpError> {
        let name = check_request(request)?;
        if !self.negotiated && name != "qmp_capabilities" {
            return Err(QmpError::new(
                ErrorClass::CommandNotFound,
                "Expecting capabilities negotiation with 'qmp_capabilities'",
            ));
        }
        let empty = Map::new();
        let args = match request.get("arguments") {
            Some(Value::Object(args)) => args,
            _ => &empty,
        };
        match Command::parse(name, args)? {
            Parsed::Capabilities { enable } => self.capabilities(&enable),
            Parsed::QueryCommands => Ok(Value::Array(
                COMMAND_NAMES.iter().rev().map(|name| json!({ "name": name })).collect(),
            )),
            Parsed::QueryVersion => Ok(version()),
            Parsed::HumanMonitorCommand {
                command_line,
                cpu_index,
            } => {
                let backend = &*self.backend;
                if let Some(index) = cpu_index {
                    if !hmp::cpu_exists(backend, index) {
                        return Err(QmpError::generic("Parameter 'cpu-index' expects a CPU number"));
                    }
                }
                let output = hmp::run_line(backend, &command_line, cpu_index);
                Ok(Value::String(output.text.replace('\n', "\r\n")))
            }
            Parsed::Backend(command) => self.backend.execute(&command),
        }
    }

    fn capabilities(&mut self, enable: &[String]) -> Result<Value, QmpError> {
        if self.negotiated {
            return Err(QmpError::new(
                ErrorClass::CommandNotFound,
                "Capabilities negotiation is already complete, command ignored",
            ));
        }
        // We offer no capability (no OOB): any requested one is unavailable.
        if !enable.is_empty() {
            return Err(QmpError::generic(format!(
                "Capability {} not available",
                enable.join(", ")
            )));
        }
        self.negotiated = true;
        Ok(json!({}))
    }
}

/// QEMU's checks of a request object's members (walked in QEMU's member order): `execute`
/// is a string, `arguments` an object, `id` anything, nothing else. Returns the command.
fn check_request(request: &Map<String, Value>) -> Result<&str, QmpError> {
    let mut execute = None;
    for (key, value) in qjson::qemu_order(request) {
        match key.as_str() {
            "execute" => match value {
                Value::String(name) => execute = Some(name.as_str()),
                _ => return Err(QmpError::generic("QMP input member 'execute' must be a string")),
            },
            "arguments" if !value.is_object() => {
                return Err(QmpError::generic("QMP input member 'arguments' must be an object"))
            }
            "arguments" | "id" => {}
            other => return Err(QmpError::generic(format!("QMP input member '{other}' is unexpected"))),
        }
    }
    execute.ok_or_else(|| QmpError::generic("QMP input lacks member 'execute'"))
}
