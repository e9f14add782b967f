//! Several clients at once: isolation, events, disconnects, lagging readers, shutdown.

mod support;

use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use addrspace_monitor::{ChardevSpec, Events, Monitor, MonitorError};
use serde_json::{json, Value};
use support::{Client, Fake};

fn spec(path: &Path) -> ChardevSpec {
    ChardevSpec::parse(&format!("unix:{},server=on,wait=off", path.display())).expect("spec")
}

fn start() -> (Monitor, Arc<Fake>, Events, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qmp.sock");
    let events = Events::new();
    let fake = Fake::new(events.clone());
    let mut monitor = Monitor::new(fake.clone(), events.clone());
    monitor.listen(&spec(&path)).expect("listen");
    (monitor, fake, events, path, dir)
}

/// Waits (without a time limit of its own: the test harness has one) until `cond` holds.
fn eventually(mut cond: impl FnMut() -> bool) {
    while !cond() {
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn two_clients_at_once() {
    let (monitor, fake, _events, path, _dir) = start();
    let mut a = Client::unix(&path);
    let mut b = Client::unix(&path);
    a.negotiate();
    b.negotiate();
    assert_eq!(a.cmd("stop", Value::Null), json!({"return": {}}));
    assert_eq!(b.cmd("query-status", Value::Null)["return"]["status"], json!("paused"));
    // Both pipelines interleave without mixing replies.
    a.send(br#"{"execute": "query-status", "id": "a1"}"#);
    b.send(br#"{"execute": "query-version", "id": "b1"}"#);
    a.send(br#"{"execute": "cont", "id": "a2"}"#);
    assert_eq!(b.reply()["id"], json!("b1"));
    assert_eq!(a.reply()["id"], json!("a1"));
    assert_eq!(a.reply()["id"], json!("a2"));
    assert!(fake.lock().running);
    eventually(|| monitor.clients() == 2);
    monitor.shutdown();
}

#[test]
fn events_reach_negotiated_clients_only() {
    let (monitor, _fake, events, path, _dir) = start();
    let mut a = Client::unix(&path);
    a.negotiate();
    let mut b = Client::unix(&path);
    b.json(); // greeting; b stays in negotiation mode for now
    assert_eq!(a.cmd("stop", Value::Null), json!({"return": {}}));
    assert_eq!(a.events.len(), 1);
    events.emit("X_TEST", Some(json!({"n": 1})));
    // b negotiates: the next line it reads is the reply, not the events it was not due.
    b.send(br#"{"execute": "qmp_capabilities", "id": 1}"#);
    assert_eq!(b.line(), r#"{"return": {}, "id": 1}"#);
    events.emit("X_TEST", Some(json!({"n": 2})));
    let seen_by_b = b.json();
    assert_eq!(seen_by_b["event"], json!("X_TEST"));
    assert_eq!(seen_by_b["data"], json!({"n": 2}));
    // a got both, in order, with QEMU's event layout.
    let first = a.json();
    let second = a.json();
    assert_eq!(
        (first["data"]["n"].clone(), second["data"]["n"].clone()),
        (json!(1), json!(2))
    );
    assert!(first["timestamp"]["microseconds"].as_u64().is_some());
    monitor.shutdown();
}

#[test]
fn a_client_leaving_mid_command_disturbs_nobody() {
    let (monitor, fake, events, path, _dir) = start();
    let mut a = Client::unix(&path);
    let mut b = Client::unix(&path);
    a.negotiate();
    b.negotiate();
    fake.close_gate();
    a.send(br#"{"execute": "query-status", "id": 1}"#);
    fake.wait_at_gate(1);
    drop(a);
    // b is served while a's command is still running.
    assert_eq!(
        b.cmd("query-version", Value::Null)["return"]["qemu"]["major"],
        json!(10)
    );
    fake.open_gate();
    events.emit("X_AFTER", None);
    assert_eq!(b.json()["event"], json!("X_AFTER"));
    assert_eq!(b.cmd("query-status", Value::Null)["return"]["running"], json!(true));
    eventually(|| monitor.clients() == 1);
    // a's subscription went away with it.
    assert_eq!(events.subscribers(), 1);
    monitor.shutdown();
    assert_eq!(events.subscribers(), 0);
}

#[test]
fn shutdown_finishes_the_command_in_flight_and_writes_its_reply() {
    let (monitor, fake, events, path, _dir) = start();
    let mut a = Client::unix(&path);
    a.negotiate();
    fake.close_gate();
    a.send(br#"{"execute": "query-status", "id": "last"}"#);
    fake.wait_at_gate(1);
    let stopper = thread::spawn(move || monitor.shutdown());
    // Shutdown has begun once the socket file is gone; then the command completes.
    eventually(|| !path.exists());
    assert!(UnixStream::connect(&path).is_err());
    events.emit("X_DURING", None);
    fake.open_gate();
    assert_eq!(a.json()["event"], json!("X_DURING"));
    let reply = a.json();
    assert_eq!(reply["id"], json!("last"));
    assert_eq!(reply["return"]["status"], json!("running"));
    assert_eq!(a.try_line(), None, "connection closed after the last reply");
    assert!(stopper.join().is_ok());
}

#[test]
fn a_client_that_stops_reading_events_is_cut_off_and_others_are_not() {
    let (monitor, _fake, events, path, _dir) = start();
    let mut lazy = Client::unix(&path);
    lazy.negotiate();
    let mut busy = Client::unix(&path);
    busy.negotiate();
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut n = 0u64;
        while let Some(line) = busy.try_line() {
            let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if event["event"] == "X_FLOOD" {
                n += 1;
                if tx.send(n).is_err() {
                    break;
                }
            }
        }
        n
    });
    // Emit in rounds the reading client keeps up with; the lazy one falls behind.
    let rounds = 100;
    let per_round = 500;
    for round in 1..=rounds {
        for _ in 0..per_round {
            events.emit("X_FLOOD", Some(json!({"pad": "x".repeat(100)})));
        }
        let target = (round * per_round) as u64;
        while rx.recv().is_ok_and(|n| n < target) {}
    }
    // The lazy client was disconnected: it reads what was sent, then end-of-file.
    let mut rest = Vec::new();
    let mut raw = lazy_stream(lazy);
    assert!(raw.read_to_end(&mut rest).is_ok());
    let received = rest.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
    assert!(received < rounds * per_round, "lazy client got all {received} events");
    eventually(|| monitor.clients() == 1);
    monitor.shutdown();
    assert_eq!(reader.join().ok(), Some((rounds * per_round) as u64));
}

/// The socket under a client, for reading to EOF.
fn lazy_stream(client: Client) -> impl Read {
    client.into_reader()
}

#[test]
fn stale_socket_files_are_replaced_but_other_files_are_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stale.sock");
    drop(UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let events = Events::new();
    let mut monitor = Monitor::new(Fake::new(events.clone()), events.clone());
    monitor.listen(&spec(&path)).expect("replaces the stale socket");
    Client::unix(&path).negotiate();
    monitor.shutdown();
    assert!(!path.exists());

    let file = dir.path().join("file");
    std::fs::write(&file, b"keep me").expect("write");
    let mut monitor = Monitor::new(Fake::new(events.clone()), events);
    let err = monitor.listen(&spec(&file));
    assert!(matches!(err, Err(MonitorError::NotASocket { .. })), "{err:?}");
    assert_eq!(std::fs::read(&file).ok(), Some(b"keep me".to_vec()));
    monitor.shutdown();
}

#[test]
fn wait_for_client_returns_once_one_connected() {
    let (monitor, _fake, _events, path, _dir) = start();
    let monitor = Arc::new(monitor);
    let waiter = {
        let monitor = Arc::clone(&monitor);
        thread::spawn(move || monitor.wait_for_client())
    };
    let mut c = Client::unix(&path);
    c.negotiate();
    assert!(waiter.join().is_ok());
    // Returns at once now.
    monitor.wait_for_client();
}

#[test]
fn listen_errors_are_typed() {
    let events = Events::new();
    let mut monitor = Monitor::new(Fake::new(events.clone()), events);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().map(|a| a.port()).unwrap_or(0);
    let spec = ChardevSpec::parse(&format!("tcp:127.0.0.1:{port},server=on,wait=off")).expect("spec");
    assert!(matches!(monitor.listen(&spec), Err(MonitorError::Listen { .. })));
    let missing_dir = ChardevSpec::parse("unix:/nonexistent-dir/q.sock,server=on").expect("spec");
    assert!(matches!(monitor.listen(&missing_dir), Err(MonitorError::Listen { .. })));
    monitor.shutdown();
}

#[test]
fn a_backend_panic_costs_only_that_client() {
    let (monitor, _fake, events, path, _dir) = start();
    let mut victim = Client::unix(&path);
    victim.negotiate();
    let mut other = Client::unix(&path);
    other.negotiate();
    victim.send(br#"{"execute": "device_add", "arguments": {"driver": "x-panic"}, "id": 1}"#);
    assert_eq!(victim.try_line(), None, "the panicking client's connection is closed");
    eventually(|| events.subscribers() == 1);
    events.emit("X_STILL_HERE", None);
    assert_eq!(other.json()["event"], json!("X_STILL_HERE"));
    assert!(other.cmd("query-status", Value::Null).get("return").is_some());
    monitor.shutdown();
}
