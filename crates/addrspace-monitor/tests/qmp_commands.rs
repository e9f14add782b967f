//! Every QMP command and its error paths, over a real socket, against a fake machine.

mod support;

use addrspace_monitor::COMMAND_NAMES;
use serde_json::{json, Value};
use support::{generic, serve_unix, Client, Served, CPU_TYPE, SOCKETS};

fn start() -> (Served, Client) {
    // QEMU's old flag syntax, `server,nowait`, on purpose.
    let served = serve_unix("server,nowait");
    let mut client = Client::unix(&served.path);
    client.negotiate();
    (served, client)
}

fn not_found(name: &str) -> (String, String) {
    (
        "CommandNotFound".into(),
        format!("The command {name} has not been found"),
    )
}

#[test]
fn query_commands_lists_exactly_ours_and_each_exists() {
    let (s, mut c) = start();
    let reply = c.cmd("query-commands", Value::Null);
    let mut listed: Vec<String> = reply["return"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["name"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    listed.sort();
    let mut expected: Vec<String> = COMMAND_NAMES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(listed.contains(&"x-query-live-objects".to_string()));
    assert_eq!(
        Client::error(&c.cmd("query-block", Value::Null)),
        not_found("query-block")
    );
    s.monitor.shutdown();
}

#[test]
fn query_version_and_status_stop_cont() {
    let (s, mut c) = start();
    let v = c.cmd("query-version", Value::Null);
    assert_eq!(v["return"]["qemu"], json!({"major": 10, "minor": 0, "micro": 2}));
    assert_eq!(
        v["return"]["package"],
        json!(format!("addrspace {}", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(c.cmd("stop", Value::Null), json!({"return": {}}));
    assert!(!s.fake.lock().running);
    assert_eq!(c.events.last().map(|e| e["event"].clone()), Some(json!("STOP")));
    assert_eq!(
        c.cmd("query-status", Value::Null),
        json!({"return": {"status": "paused", "running": false}})
    );
    assert_eq!(c.cmd("cont", Value::Null), json!({"return": {}}));
    assert_eq!(c.events.last().map(|e| e["event"].clone()), Some(json!("RESUME")));
    for name in [
        "stop",
        "cont",
        "query-status",
        "quit",
        "query-version",
        "x-query-live-objects",
    ] {
        let reply = c.cmd(name, json!({"bogus": 1}));
        assert_eq!(
            Client::error(&reply),
            generic("Parameter 'bogus' is unexpected"),
            "{name}"
        );
    }
    assert!(!s.fake.lock().quit);
    s.monitor.shutdown();
}

#[test]
fn cpu_queries_come_from_the_backend() {
    let (s, mut c) = start();
    let cpus = c.cmd("query-cpus-fast", Value::Null);
    let list = cpus["return"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), s.fake.lock().cpus.len());
    assert_eq!(list[0]["qom-path"], json!("/machine/unattached/device[0]"));
    let slots = c.cmd("query-hotpluggable-cpus", Value::Null);
    let slots = slots["return"].as_array().cloned().unwrap_or_default();
    assert_eq!(slots.len() as i64, SOCKETS);
    let plugged: Vec<&Value> = slots.iter().filter(|s| s.get("qom-path").is_some()).collect();
    assert_eq!(plugged.len(), 1);
    assert_eq!(plugged[0]["props"]["socket-id"], json!(0));
    assert_eq!(
        c.cmd("x-query-live-objects", Value::Null),
        json!({"return": {"cpus": 1}})
    );
    s.monitor.shutdown();
}

#[test]
fn device_add_and_del_with_events_and_errors() {
    let (s, mut c) = start();
    let add = json!({"driver": CPU_TYPE, "id": "cpu1", "socket-id": 1, "core-id": 0, "thread-id": 0});
    assert_eq!(c.cmd("device_add", add.clone()), json!({"return": {}}));
    assert!(s.fake.lock().cpus.contains_key(&1));
    // Occupied slot, duplicate id, unknown driver: the backend's errors, passed through.
    let again = json!({"driver": CPU_TYPE, "id": "cpu9", "socket-id": 1});
    assert_eq!(
        Client::error(&c.cmd("device_add", again)),
        generic("CPU[1] with APIC ID 1 exists")
    );
    assert_eq!(
        Client::error(&c.cmd("device_add", add)),
        generic("Duplicate device ID 'cpu1'")
    );
    let bogus = json!({"driver": "bogus-cpu", "socket-id": 2});
    assert_eq!(
        Client::error(&c.cmd("device_add", bogus)),
        generic("'bogus-cpu' is not a valid device model name")
    );
    // The monitor's own checks.
    assert_eq!(
        Client::error(&c.cmd("device_add", json!({"socket-id": 2}))),
        generic("Parameter 'driver' is missing")
    );
    assert_eq!(
        Client::error(&c.cmd("device_add", json!({"driver": CPU_TYPE, "id": "2cpu"}))),
        generic("Parameter 'id' expects an identifier")
    );
    // String numbers are passed as given (HMP sends strings; the backend takes both).
    let anon = json!({"driver": CPU_TYPE, "socket-id": "2"});
    assert_eq!(c.cmd("device_add", anon), json!({"return": {}}));
    // Unplug by id: the reply, then DEVICE_DELETED (the backend emits it after the reply,
    // as QEMU's synchronous unplugs do).
    c.events.clear();
    assert_eq!(c.cmd("device_del", json!({"id": "cpu1"})), json!({"return": {}}));
    assert!(c.events.is_empty(), "nothing before the reply: {:?}", c.events);
    let deleted = c.json();
    assert_eq!(deleted["event"], json!("DEVICE_DELETED"));
    assert_eq!(
        deleted["data"],
        json!({"device": "cpu1", "path": "/machine/peripheral/cpu1"})
    );
    assert!(deleted["timestamp"]["seconds"].as_u64().is_some());
    // Unplug by QOM path; a device without id has no "device" member.
    let path = "/machine/peripheral-anon/device[2]";
    assert_eq!(c.cmd("device_del", json!({"id": path})), json!({"return": {}}));
    assert!(!s.fake.lock().cpus.contains_key(&2));
    assert_eq!(c.json()["data"], json!({"path": path}));
    // Through HMP too: the empty reply first, then the event.
    assert_eq!(
        c.cmd("device_add", json!({"driver": CPU_TYPE, "socket-id": 3, "id": "h3"})),
        json!({"return": {}})
    );
    let out = c.cmd("human-monitor-command", json!({"command-line": "device_del h3"}));
    assert_eq!(out, json!({"return": ""}));
    assert_eq!(c.json()["data"]["device"], json!("h3"));
    assert_eq!(
        Client::error(&c.cmd("device_del", json!({"id": "cpu1"}))),
        ("DeviceNotFound".into(), "Device 'cpu1' not found".into())
    );
    assert_eq!(
        Client::error(&c.cmd("device_del", json!({"id": "/machine/unattached/device[0]"}))),
        generic("Boot CPU is unpluggable")
    );
    assert_eq!(
        Client::error(&c.cmd("device_del", json!({}))),
        generic("Parameter 'id' is missing")
    );
    assert_eq!(
        Client::error(&c.cmd("device_del", json!({"id": ["x"]}))),
        generic("Invalid parameter type for 'id', expected: string")
    );
    s.monitor.shutdown();
}

#[test]
fn human_monitor_command_runs_hmp_with_crlf_output() {
    let (s, mut c) = start();
    let out = c.cmd("human-monitor-command", json!({"command-line": "info status"}));
    assert_eq!(out, json!({"return": "VM status: running\r\n"}));
    let out = c.cmd("human-monitor-command", json!({"command-line": "info mtree -f -d"}));
    let expected = s.fake.mtree_text(true, true, false).replace('\n', "\r\n");
    assert_eq!(out["return"], json!(expected));
    let out = c.cmd("human-monitor-command", json!({"command-line": "stop"}));
    assert_eq!(out, json!({"return": ""}));
    assert!(!s.fake.lock().running);
    let out = c.cmd("human-monitor-command", json!({"command-line": "frobnicate"}));
    assert_eq!(out, json!({"return": "unknown command: 'frobnicate'\r\n"}));
    let out = c.cmd(
        "human-monitor-command",
        json!({"command-line": "info cpus", "cpu-index": 0}),
    );
    assert_eq!(out, json!({"return": "* CPU #0: thread_id=1000\r\n"}));
    assert_eq!(
        Client::error(&c.cmd(
            "human-monitor-command",
            json!({"command-line": "info cpus", "cpu-index": 7})
        )),
        generic("Parameter 'cpu-index' expects a CPU number")
    );
    assert_eq!(
        Client::error(&c.cmd("human-monitor-command", json!({}))),
        generic("Parameter 'command-line' is missing")
    );
    assert_eq!(
        Client::error(&c.cmd("human-monitor-command", json!({"command-line": "x", "cpu-index": 1.5}))),
        generic("Invalid parameter type for 'cpu-index', expected: integer")
    );
    assert_eq!(
        Client::error(&c.cmd("human-monitor-command", json!({"command-line": 3}))),
        generic("Invalid parameter type for 'command-line', expected: string")
    );
    s.monitor.shutdown();
}

#[test]
fn quit_replies_then_the_backend_quits() {
    let (s, mut c) = start();
    assert_eq!(c.cmd("quit", Value::Null), json!({"return": {}}));
    assert!(s.fake.lock().quit);
    assert!(c.events.iter().any(|e| e["event"] == "SHUTDOWN"));
    s.monitor.shutdown();
}
