//! Client churn on a running KVM machine: hundreds of QMP clients come and go — negotiated
//! or not, leaving mid-command, never reading their replies or events — while another client
//! keeps the machine emitting events. Afterwards the process must hold exactly the threads
//! and file descriptors it held before (`x-query-live-objects`), counted, not eyeballed: a
//! monitor that keeps anything per departed client grows without bound on a long-lived VM.
//! Skipped (with the reason printed) only where `run` exits with 3: no usable /dev/kvm.

mod qmp_support;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use qmp_support::*;
use serde_json::{json, Value};

/// Clients in all, and how many are connected at once.
const CLIENTS: usize = 300;
const BATCH: usize = 10;

/// One departing client of kind `k` (of 5), connected to `sock`.
fn churn_client(sock: &Path, k: usize) -> Option<UnixStream> {
    match k % 5 {
        // Connects and leaves without reading the greeting.
        0 => UnixStream::connect(sock).ok(),
        // Negotiates, runs a command, and stays until the batch leaves (gets the events).
        1 => {
            let mut c = Client::connect(sock);
            c.read_value();
            c.ok("qmp_capabilities", None);
            c.ok("query-status", None);
            Some(c.stream)
        }
        // Negotiates and leaves in the middle of a command with a long reply.
        2 => {
            let mut c = Client::connect(sock);
            c.read_value();
            c.ok("qmp_capabilities", None);
            c.send_raw(br#"{"execute": "human-monitor-command", "arguments": {"command-line": "info mtree"}}"#);
            None
        }
        // Never reads: negotiation and a pipeline of commands whose replies pile up
        // (greeting, replies and, once negotiated, the batch's events).
        3 => {
            let mut s = UnixStream::connect(sock).ok()?;
            let mut req = br#"{"execute": "qmp_capabilities"}"#.to_vec();
            for _ in 0..50 {
                req.extend_from_slice(br#"{"execute": "query-hotpluggable-cpus"}"#);
            }
            let _ = s.write_all(&req);
            Some(s)
        }
        // Sends half a request and leaves.
        _ => {
            let mut s = UnixStream::connect(sock).ok()?;
            let _ = s.write_all(br#"{"execute": "qmp_capabilities"} {"execute": "query-"#);
            None
        }
    }
}

fn threads_and_fds(c: &mut Client) -> (u64, u64) {
    let v = c.counters();
    let get = |key: &str| v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"));
    (get("threads"), get("open-fds"))
}

#[test]
fn threads_and_fds_return_to_where_they_were_after_300_clients() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut observer = vm.client();
    let before = threads_and_fds(&mut observer);

    let mut held = Vec::new();
    for n in 0..CLIENTS {
        held.extend(churn_client(&vm.sock, n));
        if n % BATCH == BATCH - 1 {
            // Events for everyone negotiated, readers or not.
            observer.ok("stop", None);
            observer.event("STOP");
            observer.ok("cont", None);
            observer.event("RESUME");
            held.clear();
        }
    }
    assert_eq!(observer.ok("query-status", None)["status"], json!("running"));

    // Departed clients' threads may take a moment to notice: poll, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = threads_and_fds(&mut observer);
    while now != before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        now = threads_and_fds(&mut observer);
    }
    assert_eq!(
        now, before,
        "(threads, open fds) before {CLIENTS} clients came and went, and 30 s after"
    );
    let last: Value = observer.counters();
    assert_eq!(last["vcpu-threads"], json!(1), "{last}");
}
