//! The `monitor_backend` example, driven the way a QMP client drives it: the example's own
//! `start` (its machine, backend and monitor) on a Unix socket, then CPU hot-plug and unplug
//! over QMP and HMP, each checked in `info mtree` (the CPU's `cpu-memory-N` space appears and
//! disappears), run-state events, and `quit`.
//!
//! The example file is compiled into this test as a module (its `main` left unused) rather
//! than run as a binary: Cargo gives tests no path to example binaries, and this way the test
//! always runs the example's current code.

#[allow(dead_code)]
#[path = "../examples/monitor_backend.rs"]
mod example;
mod support;

use serde_json::{json, Value};
use support::Client;

/// Runs an HMP line through `human-monitor-command`; returns its output.
fn hmp(c: &mut Client, line: &str) -> String {
    let reply = c.cmd("human-monitor-command", json!({ "command-line": line }));
    match &reply["return"] {
        Value::String(text) => text.clone(),
        _ => panic!("{line}: {reply}"),
    }
}

/// Names of the address spaces `info mtree -f` lists (its `AS "NAME", root: ...` lines).
fn flat_spaces(c: &mut Client) -> Vec<String> {
    hmp(c, "info mtree -f")
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("AS \"")?.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The next line, which must be event `name`; returns its data.
fn event(c: &mut Client, name: &str) -> Value {
    let e = c.json();
    assert_eq!(e["event"], name, "{e}");
    e["data"].clone()
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["event"].as_str()).collect()
}

#[test]
fn hot_plug_and_unplug_show_in_info_mtree_then_quit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qmp.sock");
    let spec = format!("unix:{},server=on,wait=off", path.display());
    let (monitor, address, quitting) = example::start(&spec).expect("the example starts");
    assert_eq!(address, path.display().to_string());
    let mut c = Client::unix(&path);
    c.negotiate();

    let boot = flat_spaces(&mut c);
    assert_eq!(boot, ["cpu-memory-0"], "{boot:?}");

    // Plug over QMP: socket-id is a JSON number there.
    let add = json!({"driver": "example-cpu", "socket-id": 1, "id": "cpu1"});
    assert_eq!(c.cmd("device_add", add.clone()), json!({"return": {}}));
    assert_eq!(flat_spaces(&mut c), ["cpu-memory-0", "cpu-memory-1"]);
    let args = json!({"command-line": "info cpus", "cpu-index": 1});
    let cpus = c.cmd("human-monitor-command", args);
    assert_eq!(cpus["return"], "  CPU #0: thread_id=0\r\n* CPU #1: thread_id=0\r\n");
    let tree = hmp(&mut c, "info mtree");
    assert!(tree.lines().any(|l| l == "address-space: cpu-memory-1"), "{tree}");
    // The same id again, a text socket-id over QMP, an unknown driver: refused, nothing added.
    let refused = [
        add,
        json!({"driver": "example-cpu", "socket-id": "2"}),
        json!({"driver": "other-cpu", "socket-id": 2}),
    ];
    for args in refused {
        let reply = c.cmd("device_add", args.clone());
        assert_eq!(Client::error(&reply).0, "GenericError", "{args} -> {reply}");
    }
    assert_eq!(flat_spaces(&mut c), ["cpu-memory-0", "cpu-memory-1"]);

    // Unplug by id: the reply, then DEVICE_DELETED, and the space is gone.
    assert_eq!(c.cmd("device_del", json!({"id": "cpu1"})), json!({"return": {}}));
    let data = event(&mut c, "DEVICE_DELETED");
    assert_eq!(data, json!({"device": "cpu1", "path": "/machine/peripheral/cpu1"}));
    assert_eq!(flat_spaces(&mut c), boot);
    let reply = c.cmd("device_del", json!({"id": "cpu1"}));
    assert_eq!(
        Client::error(&reply),
        ("DeviceNotFound".into(), "Device 'cpu1' not found".into())
    );

    // The same over HMP, whose `key=value` properties are text; unplug by QOM path.
    assert_eq!(hmp(&mut c, "device_add example-cpu,socket-id=3,id=c3"), "");
    assert_eq!(flat_spaces(&mut c), ["cpu-memory-0", "cpu-memory-3"]);
    assert_eq!(hmp(&mut c, "device_del /machine/peripheral/c3"), "");
    assert_eq!(event(&mut c, "DEVICE_DELETED")["device"], "c3");
    assert_eq!(flat_spaces(&mut c), boot);
    let text = hmp(&mut c, "device_add example-cpu,socket-id=9");
    assert!(text.starts_with("Error: "), "{text}");

    // Run state: each event reaches the client before the reply of the command causing it.
    assert!(names(&c.events).is_empty(), "{:?}", c.events);
    assert_eq!(c.cmd("stop", Value::Null), json!({"return": {}}));
    assert_eq!(names(&c.events), ["STOP"]);
    let status = c.cmd("query-status", Value::Null);
    assert_eq!(status, json!({"return": {"status": "paused", "running": false}}));
    assert_eq!(c.cmd("cont", Value::Null), json!({"return": {}}));
    assert_eq!(c.cmd("cont", Value::Null), json!({"return": {}}));
    assert_eq!(names(&c.events), ["STOP", "RESUME"]);
    let reply = c.cmd("x-query-live-objects", Value::Null);
    assert_eq!(Client::error(&reply).0, "CommandNotFound", "{reply}");

    // quit: SHUTDOWN, the reply, `main`'s receiver fires; shutdown closes and cleans up.
    assert_eq!(c.cmd("quit", Value::Null), json!({"return": {}}));
    assert_eq!(names(&c.events), ["STOP", "RESUME", "SHUTDOWN"]);
    quitting.recv().expect("quit is signalled");
    monitor.shutdown();
    assert_eq!(c.try_line(), None, "the connection is closed");
    assert!(!path.exists(), "the socket file is removed");
}
