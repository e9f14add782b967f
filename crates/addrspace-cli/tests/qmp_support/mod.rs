//! A running `addrspace run --qmp` machine for the monitor tests, and a small QMP client
//! speaking the wire protocol directly (replies and events told apart, events kept in order).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Exit status of `run` without a usable /dev/kvm.
pub const NO_KVM: i32 = 3;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A machine process; killed when dropped.
pub struct Vm {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
}

impl Vm {
    /// Starts the demo board with a QMP socket (plus `extra` arguments); `None` when there is
    /// no usable /dev/kvm (the reason printed).
    pub fn start(extra: &[&str]) -> Option<Vm> {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("qmp.sock");
        let spec = format!("unix:{},server=on,wait=off", sock.display());
        let mut child = Command::new(env!("CARGO_BIN_EXE_addrspace"))
            .args(["run", "boards/kvm-demo.toml", "--accel", "kvm", "--qmp", &spec])
            .args(extra)
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn addrspace");
        let t0 = Instant::now();
        while !sock.exists() {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut err));
                if status.code() == Some(NO_KVM) {
                    eprintln!("skipped: no usable /dev/kvm: {}", err.trim());
                    assert!(err.contains("/dev/kvm"), "exit 3 must say why: {err}");
                    return None;
                }
                panic!("addrspace run exited early ({status}): {err}");
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no QMP socket after 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Vm { child, dir, sock })
    }

    /// A negotiated client.
    pub fn client(&self) -> Client {
        let mut c = Client::connect(&self.sock);
        let greeting = c.read_value();
        assert!(greeting.get("QMP").is_some(), "greeting: {greeting}");
        let r = c.cmd("qmp_capabilities", None);
        assert_eq!(r, json!({"return": {}}), "negotiation");
        c
    }

    /// Waits for the process to exit (after `quit`), at most 30 s.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "still running 30 s after quit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process wrote to stderr (after it exited).
    pub fn stderr(&mut self) -> String {
        let mut err = String::new();
        let _ = self.child.stderr.take().map(|mut e| e.read_to_string(&mut err));
        err
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A QMP client on a Unix socket.
pub struct Client {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// Events received while waiting for replies, oldest first.
    pub events: VecDeque<Value>,
    next_id: u64,
}

impl Client {
    pub fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).expect("connect to the QMP socket");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client {
            stream,
            reader,
            events: VecDeque::new(),
            next_id: 0,
        }
    }

    /// The next JSON value the server sent (one per line, `\r\n`-terminated).
    pub fn read_value(&mut self) -> Value {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read from the QMP socket");
        assert!(n > 0, "the server closed the connection");
        assert!(line.ends_with("\r\n"), "QMP lines end with CR LF: {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// Reads until the connection closes; returns the values received.
    pub fn read_to_close(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return out,
                Ok(_) => out.push(serde_json::from_str(&line).expect("JSON")),
            }
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the QMP socket");
    }

    /// Sends a request with a fresh numeric id and returns its reply (id removed); events
    /// that arrive first are queued.
    pub fn cmd(&mut self, name: &str, args: Option<Value>) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut req = json!({"execute": name, "id": id});
        if let Some(a) = args {
            req["arguments"] = a;
        }
        self.send_raw(req.to_string().as_bytes());
        self.reply_to(id)
    }

    fn reply_to(&mut self, id: u64) -> Value {
        loop {
            let mut v = self.read_value();
            if v.get("event").is_some() {
                self.events.push_back(v);
                continue;
            }
            let got = v.as_object_mut().and_then(|o| o.remove("id"));
            assert_eq!(got, Some(json!(id)), "reply without our id: {v}");
            return v;
        }
    }

    /// The `return` member of a successful command.
    pub fn ok(&mut self, name: &str, args: Option<Value>) -> Value {
        let r = self.cmd(name, args);
        match r.get("return") {
            Some(v) => v.clone(),
            None => panic!("{name} failed: {r}"),
        }
    }

    /// `(class, desc)` of a failed command.
    pub fn err(&mut self, name: &str, args: Option<Value>) -> (String, String) {
        let r = self.cmd(name, args);
        let e = r.get("error").unwrap_or_else(|| panic!("{name} should fail: {r}"));
        (
            e["class"].as_str().expect("class").to_string(),
            e["desc"].as_str().expect("desc").to_string(),
        )
    }

    /// Waits for event `name` (queued or next to arrive).
    pub fn event(&mut self, name: &str) -> Value {
        if let Some(k) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(k).expect("queued");
        }
        loop {
            let v = self.read_value();
            if v["event"] == name {
                return v;
            }
            assert!(
                v.get("event").is_some(),
                "unexpected reply while waiting for {name}: {v}"
            );
            self.events.push_back(v);
        }
    }

    /// HMP through `human-monitor-command`, with QEMU's `\r\n` line ends turned into `\n`.
    pub fn hmp(&mut self, line: &str) -> String {
        let v = self.ok("human-monitor-command", Some(json!({"command-line": line})));
        let text = v.as_str().expect("HMP output is a string");
        assert_eq!(
            text.matches('\n').count(),
            text.matches("\r\n").count(),
            "HMP lines end with CR LF, as QEMU's monitor writes them: {text:?}"
        );
        text.replace("\r\n", "\n")
    }

    /// `x-query-live-objects`.
    pub fn counters(&mut self) -> Value {
        self.ok("x-query-live-objects", None)
    }

    /// Polls `x-query-live-objects` until the guest's heartbeat count passes `than`.
    pub fn heartbeats_pass(&mut self, than: u64) -> u64 {
        let t0 = Instant::now();
        loop {
            let n = self.counters()["guest-heartbeats"].as_u64().expect("heartbeats");
            if n > than {
                return n;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the guest stopped ticking at {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `device_add` arguments for the demo's CPU in slot `core` (one socket, cores preferred).
pub fn cpu_args(core: u32, id: Option<&str>) -> Value {
    let mut a = json!({"driver": "qemu64-x86_64-cpu", "socket-id": 0, "core-id": core, "thread-id": 0});
    if let Some(id) = id {
        a["id"] = json!(id);
    }
    a
}
