//! Races on a running KVM machine: `quit` and SIGTERM arriving while other clients have
//! commands in flight (hot-plug, stop/cont, `info mtree`), and `stop`/`cont` racing
//! `device_add`/`device_del` from another client. The process must end cleanly (no panic,
//! every client sees end-of-file, the socket file removed), and a machine stopped after the
//! storm must be stopped for every CPU, the ones plugged while it was stopped included.
//! Skipped (with the reason printed) only where `run` exits with 3: no usable /dev/kvm.

mod qmp_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use qmp_support::*;
use serde_json::{json, Value};

/// A client that pipelines `requests` over and over until the server closes the
/// connection; returns how many lines it read (it reads everything, to end-of-file).
fn storm(sock: &Path, requests: &'static [&'static str]) -> JoinHandle<usize> {
    let mut stream = UnixStream::connect(sock).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let reader = BufReader::new(stream.try_clone().expect("clone"));
    thread::spawn(move || {
        let writer = thread::spawn(move || {
            let _ = stream.write_all(br#"{"execute": "qmp_capabilities"}"#);
            'out: loop {
                for r in requests {
                    if stream.write_all(r.as_bytes()).is_err() {
                        break 'out;
                    }
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        let mut lines = 0;
        for line in reader.lines() {
            match line {
                Ok(_) => lines += 1,
                Err(e) => panic!("a storm client read failed (no end-of-file in 30 s?): {e}"),
            }
        }
        writer.join().expect("storm writer");
        lines
    })
}

const PLUG: &[&str] = &[
    r#"{"execute": "device_add", "arguments": {"driver": "qemu64-x86_64-cpu", "id": "s1", "socket-id": 0, "core-id": 1, "thread-id": 0}}"#,
    r#"{"execute": "device_del", "arguments": {"id": "s1"}}"#,
];
const STOP_CONT: &[&str] = &[r#"{"execute": "stop"}"#, r#"{"execute": "cont"}"#];
const INSPECT: &[&str] = &[
    r#"{"execute": "human-monitor-command", "arguments": {"command-line": "info mtree"}}"#,
    r#"{"execute": "query-hotpluggable-cpus"}"#,
    r#"{"execute": "x-query-live-objects"}"#,
];

fn storms(vm: &Vm) -> Vec<JoinHandle<usize>> {
    [PLUG, STOP_CONT, INSPECT, PLUG]
        .into_iter()
        .map(|r| storm(&vm.sock, r))
        .collect()
}

/// Waits for the process to end after `ended_by`, checking it ended cleanly.
fn ends_cleanly(mut vm: Vm, storms: Vec<JoinHandle<usize>>, ended_by: &str) {
    for s in storms {
        let lines = s.join().expect("a storm client panicked");
        assert!(lines > 1, "a storm client got no more than its greeting");
    }
    let status = vm.wait_exit();
    let err = vm.stderr();
    assert!(status.success(), "exit after {ended_by}: {status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!vm.sock.exists(), "the socket file is removed at exit");
}

/// Lets the storms get going: the machine has been plugged, stopped and resumed.
fn storming(c: &mut Client) {
    let counters = c.counters();
    let start = counters["guest-heartbeats"].as_u64().unwrap_or(0);
    let mut seen: Value = json!(null);
    for _ in 0..3000 {
        seen = c.counters();
        if seen["parked-vcpus"].as_u64() > Some(0) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("no CPU unplugged in 30 s of storm (heartbeats from {start}): {seen}");
}

#[test]
fn quit_with_commands_in_flight_ends_cleanly() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    let storms = storms(&vm);
    storming(&mut c);
    let r = c.cmd("quit", None);
    assert_eq!(r, json!({"return": {}}));
    assert!(
        c.read_to_close().iter().all(|v| v.get("event").is_some()),
        "only events may follow the quit reply"
    );
    ends_cleanly(vm, storms, "quit");
}

#[test]
fn sigterm_with_commands_in_flight_ends_cleanly() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    let storms = storms(&vm);
    storming(&mut c);
    let killed = Command::new("kill")
        .args(["-TERM", &vm.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut rest: Vec<Value> = c.events.drain(..).collect();
    rest.extend(c.read_to_close());
    assert!(rest.iter().any(|v| v["event"] == "SHUTDOWN"), "SHUTDOWN before the end");
    ends_cleanly(vm, storms, "SIGTERM");
}

#[test]
fn stop_racing_device_add_leaves_every_cpu_stopped() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut toggler = vm.client();
    let mut plugger = vm.client();
    let done = Arc::new(AtomicBool::new(false));
    let plugged_all = Arc::clone(&done);
    let plugging = thread::spawn(move || {
        for k in 0..30 {
            let id = format!("r{}", k % 3 + 1);
            plugger.ok("device_add", Some(cpu_args(k % 3 + 1, Some(&id))));
            plugger.ok("device_del", Some(json!({"id": id})));
        }
        // These stay, plugged while the machine may be stopped or resuming.
        for core in 1..3 {
            plugger.ok("device_add", Some(cpu_args(core, Some(&format!("k{core}")))));
        }
        plugged_all.store(true, Ordering::SeqCst);
        plugger
    });
    while !done.load(Ordering::SeqCst) {
        toggler.ok("stop", None);
        toggler.ok("cont", None);
    }
    let mut plugger = plugging.join().expect("plugger");
    toggler.ok("stop", None);
    assert_eq!(toggler.ok("query-status", None)["status"], "paused");
    // And one plugged now, stopped from the start.
    plugger.ok("device_add", Some(cpu_args(3, Some("k3"))));
    let cpus = plugger.ok("query-cpus-fast", None);
    let plugged = cpus.as_array().map_or(0, Vec::len);
    assert_eq!(plugged, 4, "the boot CPU and k1..k3: {cpus}");
    let counters = toggler.counters();
    assert_eq!(counters["vcpu-threads"], json!(plugged), "{counters}");

    // Stopped for every CPU: nothing ticks.
    let at = counters["guest-heartbeats"].as_u64().expect("heartbeats");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        toggler.counters()["guest-heartbeats"].as_u64(),
        Some(at),
        "a stopped CPU ran"
    );
    toggler.ok("cont", None);
    toggler.heartbeats_pass(at);
}
