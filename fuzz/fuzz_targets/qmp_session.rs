//! Fuzz target `qmp_session`: arbitrary bytes into a QMP [`Session`], cut into reads at
//! arbitrary points, and arbitrary text through HMP's [`run_line`].
//!
//! The machine behind the session is a small fake (four CPU sockets, run state, a fixed
//! `info mtree` text), so every command the monitor accepts reaches a backend that answers
//! or refuses it; the fuzzer exercises the monitor, not a machine.
//!
//! The property:
//! - nothing panics;
//! - every line the session writes is one JSON value followed by `"\r\n"`;
//! - the cut points do not matter: the same bytes in one read give the same lines;
//! - after the input, QEMU's resynchronization (`0xFF`, which cannot occur in JSON text, and
//!   a newline) and `{"execute":"query-status"}` still get an answer: the status when the
//!   session has negotiated, the negotiation error when it has not;
//! - an HMP command line prints lines that end in `"\n"`.

#![no_main]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use addrspace_monitor::{run_line, Backend, Command, ErrorClass, MtreeOptions, QmpError, Session};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const CPU_TYPE: &str = "qemu64-x86_64-cpu";
const SOCKETS: i64 = 4;
const PROBE: &[u8] = b"\xff\n{\"execute\":\"query-status\"}";

#[derive(Arbitrary, Debug)]
struct Input {
    /// Negotiate before the fuzzed bytes (the input may still do it itself).
    negotiate: bool,
    /// The bytes, fed one read per chunk.
    chunks: Vec<Vec<u8>>,
    /// HMP command lines, with the monitor's current CPU.
    hmp: Vec<(String, Option<i8>)>,
}

/// Socket → (device id, QOM path).
#[derive(Default)]
struct State {
    cpus: BTreeMap<i64, (Option<String>, String)>,
    running: bool,
}

struct Fake(Mutex<State>);

impl Fake {
    fn new() -> Arc<Fake> {
        let mut state = State {
            running: true,
            ..State::default()
        };
        state.cpus.insert(0, (None, "/machine/unattached/device[0]".into()));
        Arc::new(Fake(Mutex::new(state)))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn number(v: Option<&Value>) -> Option<i64> {
        match v? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

impl Backend for Fake {
    fn execute(&self, cmd: &Command) -> Result<Value, QmpError> {
        let mut state = self.lock();
        match cmd {
            Command::QueryStatus => {
                let status = if state.running { "running" } else { "paused" };
                Ok(json!({"status": status, "running": state.running}))
            }
            Command::Stop | Command::Quit => {
                state.running = false;
                Ok(json!({}))
            }
            Command::Cont => {
                state.running = true;
                Ok(json!({}))
            }
            Command::QueryCpusFast => Ok(state
                .cpus
                .iter()
                .map(|(s, (_, path))| {
                    json!({"cpu-index": s, "qom-path": path, "thread-id": 1000 + s,
                    "props": {"socket-id": s, "core-id": 0, "thread-id": 0}, "target": "x86_64"})
                })
                .collect()),
            Command::QueryHotpluggableCpus => Ok((0..SOCKETS)
                .rev()
                .map(|s| {
                    let mut slot = json!({"type": CPU_TYPE, "vcpus-count": 1,
                        "props": {"socket-id": s, "core-id": 0, "thread-id": 0}});
                    if let (Some((_, path)), Some(map)) = (state.cpus.get(&s), slot.as_object_mut()) {
                        map.insert("qom-path".into(), json!(path));
                    }
                    slot
                })
                .collect()),
            Command::DeviceAdd { driver, id, props, .. } => {
                if driver != CPU_TYPE {
                    return Err(QmpError::generic(format!(
                        "'{driver}' is not a valid device model name"
                    )));
                }
                let socket = Self::number(props.get("socket-id"))
                    .filter(|s| (0..SOCKETS).contains(s))
                    .ok_or_else(|| QmpError::generic("bad socket-id"))?;
                if state.cpus.contains_key(&socket) {
                    return Err(QmpError::generic("slot in use"));
                }
                let path = match id {
                    Some(id) => format!("/machine/peripheral/{id}"),
                    None => format!("/machine/peripheral-anon/device[{socket}]"),
                };
                state.cpus.insert(socket, (id.clone(), path));
                Ok(json!({}))
            }
            Command::DeviceDel { id } => {
                let found = state
                    .cpus
                    .iter()
                    .find(|(_, (dev, path))| dev.as_deref() == Some(id.as_str()) || path == id)
                    .map(|(s, _)| *s);
                match found {
                    None => Err(QmpError::new(
                        ErrorClass::DeviceNotFound,
                        format!("Device '{id}' not found"),
                    )),
                    Some(0) => Err(QmpError::generic("Boot CPU is unpluggable")),
                    Some(s) => {
                        state.cpus.remove(&s);
                        Ok(json!({}))
                    }
                }
            }
            Command::XQueryLiveObjects => Ok(json!({"cpus": state.cpus.len()})),
            _ => Err(QmpError::generic("not modelled")),
        }
    }

    fn mtree(&self, opts: &MtreeOptions) -> Result<String, QmpError> {
        Ok(format!(
            "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n{opts:?}\n"
        ))
    }
}

/// Every line is one JSON value and ends in "\r\n".
fn check_lines(lines: &[String]) {
    for line in lines {
        let body = line.strip_suffix("\r\n").unwrap_or_else(|| panic!("no CRLF: {line:?}"));
        assert!(!body.contains('\n'), "a newline inside a line: {line:?}");
        if let Err(e) = serde_json::from_str::<Value>(body) {
            panic!("not JSON ({e}): {line:?}");
        }
    }
}

fn session(negotiate: bool) -> Session {
    let mut s = Session::new(Fake::new());
    if negotiate {
        let lines = s.feed_collect(br#"{"execute": "qmp_capabilities"}"#);
        assert_eq!(lines, vec!["{\"return\": {}}\r\n".to_string()]);
    }
    s
}

fuzz_target!(|input: Input| {
    let mut split = session(input.negotiate);
    let mut lines = Vec::new();
    for chunk in &input.chunks {
        lines.extend(split.feed_collect(chunk));
    }
    check_lines(&lines);

    let mut whole = session(input.negotiate);
    let all: Vec<u8> = input.chunks.concat();
    assert_eq!(whole.feed_collect(&all), lines, "the cut points changed the answers");

    let after = split.feed_collect(PROBE);
    check_lines(&after);
    let last: Value = after
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no answer to the probe: {after:?}"));
    if split.is_negotiated() {
        assert!(last["return"]["status"].is_string(), "probe: {last}");
    } else {
        assert_eq!(last["error"]["class"], json!("CommandNotFound"), "probe: {last}");
    }

    let fake = Fake::new();
    for (line, cpu) in &input.hmp {
        let out = run_line(&*fake, line, cpu.map(i64::from));
        assert!(
            out.text.is_empty() || out.text.ends_with('\n'),
            "{line:?} printed {:?}",
            out.text
        );
    }
});
