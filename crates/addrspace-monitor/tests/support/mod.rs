//! Test support: a fake machine (a map of CPUs behind the `Backend` trait) and a QMP client
//! over real sockets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use addrspace_monitor::{Backend, ChardevSpec, Command, ErrorClass, Events, Monitor, MtreeOptions, QmpError};
use serde_json::{json, Map, Value};

/// The CPU type the fake board hot-plugs.
pub const CPU_TYPE: &str = "qemu64-x86_64-cpu";
/// Sockets on the fake board (one CPU each).
pub const SOCKETS: i64 = 4;

/// A plugged CPU.
#[derive(Debug, Clone)]
pub struct Cpu {
    pub id: Option<String>,
    pub path: String,
    pub thread: i64,
}

#[derive(Debug, Default)]
pub struct State {
    /// Socket → CPU (the CPU index is the socket number).
    pub cpus: BTreeMap<i64, Cpu>,
    pub running: bool,
    pub quit: bool,
    /// While set, `query-status` blocks (a command "in flight").
    pub gate: bool,
    /// Commands currently blocked at the gate.
    pub at_gate: usize,
    /// Commands run, by name.
    pub log: Vec<String>,
}

/// A fake machine: CPUs in sockets, run state, events.
pub struct Fake {
    pub state: Mutex<State>,
    changed: Condvar,
    pub events: Events,
}

impl Fake {
    /// A running machine with CPU 0 (the boot CPU) plugged.
    pub fn new(events: Events) -> Arc<Fake> {
        let mut state = State {
            running: true,
            ..State::default()
        };
        state.cpus.insert(
            0,
            Cpu {
                id: None,
                path: "/machine/unattached/device[0]".into(),
                thread: 1000,
            },
        );
        Arc::new(Fake {
            state: Mutex::new(state),
            changed: Condvar::new(),
            events,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `query-status` block until [`Fake::open_gate`].
    pub fn close_gate(&self) {
        self.lock().gate = true;
    }

    pub fn open_gate(&self) {
        self.lock().gate = false;
        self.changed.notify_all();
    }

    /// Waits until `n` commands are blocked at the gate.
    pub fn wait_at_gate(&self, n: usize) {
        let mut state = self.lock();
        while state.at_gate < n {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The fake `info mtree` text: it shows which options it got.
    pub fn mtree_text(&self, flat: bool, dispatch: bool, disabled: bool) -> String {
        self.mtree_owners(flat, dispatch, disabled, false)
    }

    /// [`Fake::mtree_text`] with `-o` too.
    pub fn mtree_owners(&self, flat: bool, dispatch: bool, disabled: bool, owners: bool) -> String {
        let cpus = self.lock().cpus.len();
        format!(
            "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n\
             cpus={cpus} flat={flat} dispatch={dispatch} disabled={disabled} owners={owners}\n"
        )
    }

    fn props(socket: i64) -> Value {
        json!({"socket-id": socket, "core-id": 0, "thread-id": 0})
    }

    fn number(v: Option<&Value>) -> Option<i64> {
        match v? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }

    fn device_add(&self, driver: &str, id: &Option<String>, props: &Map<String, Value>) -> Result<Value, QmpError> {
        if driver == "x-panic" {
            panic!("fake backend bug, on purpose");
        }
        if driver != CPU_TYPE {
            return Err(QmpError::generic(format!(
                "'{driver}' is not a valid device model name"
            )));
        }
        let mut state = self.lock();
        if let Some(id) = id {
            if state.cpus.values().any(|c| c.id.as_deref() == Some(id)) {
                return Err(QmpError::generic(format!("Duplicate device ID '{id}'")));
            }
        }
        let socket =
            Self::number(props.get("socket-id")).ok_or_else(|| QmpError::generic("CPU socket-id is not set"))?;
        if !(0..SOCKETS).contains(&socket) {
            return Err(QmpError::generic(format!(
                "Invalid CPU socket-id: {socket} must be in range 0:{}",
                SOCKETS - 1
            )));
        }
        if state.cpus.contains_key(&socket) {
            return Err(QmpError::generic(format!("CPU[{socket}] with APIC ID {socket} exists")));
        }
        let path = match id {
            Some(id) => format!("/machine/peripheral/{id}"),
            None => format!("/machine/peripheral-anon/device[{socket}]"),
        };
        state.cpus.insert(
            socket,
            Cpu {
                id: id.clone(),
                path,
                thread: 1000 + socket,
            },
        );
        Ok(json!({}))
    }

    fn device_del(&self, id: &str) -> Result<Value, QmpError> {
        let mut state = self.lock();
        let found = state
            .cpus
            .iter()
            .find(|(_, c)| c.id.as_deref() == Some(id) || c.path == id)
            .map(|(socket, c)| (*socket, c.clone()));
        let Some((socket, cpu)) = found else {
            return Err(QmpError::new(
                ErrorClass::DeviceNotFound,
                format!("Device '{id}' not found"),
            ));
        };
        if socket == 0 {
            return Err(QmpError::generic("Boot CPU is unpluggable"));
        }
        state.cpus.remove(&socket);
        drop(state);
        let mut data = Map::new();
        if let Some(id) = &cpu.id {
            data.insert("device".into(), json!(id));
        }
        data.insert("path".into(), json!(cpu.path));
        self.events
            .emit_after_reply("DEVICE_DELETED", Some(Value::Object(data)));
        Ok(json!({}))
    }
}

impl Backend for Fake {
    fn execute(&self, cmd: &Command) -> Result<Value, QmpError> {
        self.lock().log.push(format!("{cmd:?}"));
        match cmd {
            Command::QueryStatus => {
                let mut state = self.lock();
                if state.gate {
                    state.at_gate += 1;
                    self.changed.notify_all();
                    while state.gate {
                        state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                    }
                    state.at_gate -= 1;
                }
                let status = if state.running { "running" } else { "paused" };
                Ok(json!({"status": status, "running": state.running}))
            }
            Command::Stop => {
                self.lock().running = false;
                self.events.emit("STOP", None);
                Ok(json!({}))
            }
            Command::Cont => {
                self.lock().running = true;
                self.events.emit("RESUME", None);
                Ok(json!({}))
            }
            Command::Quit => {
                self.lock().quit = true;
                self.events
                    .emit("SHUTDOWN", Some(json!({"guest": false, "reason": "host-qmp-quit"})));
                Ok(json!({}))
            }
            Command::QueryCpusFast => Ok(Value::Array(
                self.lock()
                    .cpus
                    .iter()
                    .map(|(socket, c)| {
                        json!({"cpu-index": socket, "qom-path": c.path, "thread-id": c.thread,
                               "props": Self::props(*socket), "target": "x86_64"})
                    })
                    .collect(),
            )),
            Command::QueryHotpluggableCpus => {
                let state = self.lock();
                Ok(Value::Array(
                    (0..SOCKETS)
                        .rev()
                        .map(|socket| {
                            let mut slot = json!({"type": CPU_TYPE, "vcpus-count": 1,
                                                  "props": Self::props(socket)});
                            if let (Some(cpu), Some(map)) = (state.cpus.get(&socket), slot.as_object_mut()) {
                                map.insert("qom-path".into(), json!(cpu.path));
                            }
                            slot
                        })
                        .collect(),
                ))
            }
            Command::DeviceAdd { driver, id, props, .. } => self.device_add(driver, id, props),
            Command::DeviceDel { id } => self.device_del(id),
            Command::XQueryLiveObjects => Ok(json!({"cpus": self.lock().cpus.len()})),
            other => Err(QmpError::generic(format!("fake: {other:?} not modelled"))),
        }
    }

    fn mtree(&self, opts: &MtreeOptions) -> Result<String, QmpError> {
        Ok(self.mtree_owners(opts.flat, opts.dispatch, opts.disabled, opts.owners))
    }
}

/// A QMP client over a real socket.
pub struct Client {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
    /// Events seen while waiting for replies.
    pub events: Vec<Value>,
    next_id: u64,
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    pub fn unix(path: &Path) -> Client {
        let s = UnixStream::connect(path).expect("connect unix");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let w = s.try_clone().expect("clone");
        Client::from_parts(Box::new(s), Box::new(w))
    }

    pub fn tcp(addr: &str) -> Client {
        let s = TcpStream::connect(addr).expect("connect tcp");
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let w = s.try_clone().expect("clone");
        Client::from_parts(Box::new(s), Box::new(w))
    }

    fn from_parts(r: Box<dyn Read + Send>, w: Box<dyn Write + Send>) -> Client {
        Client {
            reader: BufReader::new(r),
            writer: w,
            events: Vec::new(),
            next_id: 0,
        }
    }

    /// The reading side (buffered data included), for reading to end-of-file.
    pub fn into_reader(self) -> impl Read {
        self.reader
    }

    /// Raw bytes to the server.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
        self.writer.flush().expect("flush");
    }

    /// The next line, which must end in "\r\n" (returned without it); `None` at EOF.
    pub fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        let text = String::from_utf8(buf).expect("utf-8 line");
        assert!(text.ends_with("\r\n"), "line without CRLF: {text:?}");
        Some(text.trim_end_matches("\r\n").to_string())
    }

    pub fn line(&mut self) -> String {
        self.try_line().expect("a line before EOF")
    }

    pub fn json(&mut self) -> Value {
        serde_json::from_str(&self.line()).expect("a JSON line")
    }

    /// The next reply line (raw text), events before it collected in `events`.
    pub fn reply_line(&mut self) -> String {
        loop {
            let line = self.line();
            let v: Value = serde_json::from_str(&line).expect("a JSON line");
            if v.get("event").is_some() {
                self.events.push(v);
            } else {
                return line;
            }
        }
    }

    pub fn reply(&mut self) -> Value {
        serde_json::from_str(&self.reply_line()).expect("JSON")
    }

    /// Sends a command with a fresh numeric id; returns the reply (id checked and removed).
    pub fn cmd(&mut self, name: &str, args: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let req = if args.is_null() {
            json!({"execute": name, "id": id})
        } else {
            json!({"execute": name, "arguments": args, "id": id})
        };
        self.send(req.to_string().as_bytes());
        let mut reply = self.reply();
        assert_eq!(reply.get("id"), Some(&json!(id)), "{reply}");
        if let Some(map) = reply.as_object_mut() {
            map.remove("id");
        }
        reply
    }

    /// Reads the greeting and negotiates.
    pub fn negotiate(&mut self) {
        let greeting = self.json();
        assert!(greeting.get("QMP").is_some(), "{greeting}");
        assert_eq!(self.cmd("qmp_capabilities", Value::Null), json!({"return": {}}));
    }

    /// The error class and description of `reply`.
    pub fn error(reply: &Value) -> (String, String) {
        let e = &reply["error"];
        (
            e["class"].as_str().unwrap_or("<none>").to_string(),
            e["desc"].as_str().unwrap_or("<none>").to_string(),
        )
    }
}

/// A generic-error pair.
pub fn generic(desc: &str) -> (String, String) {
    ("GenericError".to_string(), desc.to_string())
}

/// A monitor serving a fake machine on a fresh Unix socket.
pub struct Served {
    pub monitor: Monitor,
    pub fake: Arc<Fake>,
    pub path: PathBuf,
    /// The socket's directory (removed when dropped).
    pub dir: tempfile::TempDir,
}

/// Serves a new [`Fake`] on `unix:PATH,<opts>` (e.g. `server=on,wait=off`, or QEMU's old
/// `server,nowait`) in a temporary directory.
pub fn serve_unix(opts: &str) -> Served {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qmp.sock");
    let events = Events::new();
    let fake = Fake::new(events.clone());
    let mut monitor = Monitor::new(fake.clone(), events);
    let spec = ChardevSpec::parse(&format!("unix:{},{opts}", path.display())).expect("spec");
    let bound = monitor.listen(&spec).expect("listen");
    assert_eq!(bound, path.display().to_string());
    Served {
        monitor,
        fake,
        path,
        dir,
    }
}
