//! `addrspace run --qmp`: a running KVM machine driven over QMP — status, stop/cont with
//! their events, CPU hot-plug and unplug by props, id and QOM path (`DEVICE_DELETED`),
//! QEMU's errors for bad requests, HMP through `human-monitor-command`, two clients, `quit`.
//! Skipped (with the reason printed) only where `run` exits with 3: no usable /dev/kvm.

mod qmp_support;

use std::process::Command;

use qmp_support::*;
use serde_json::json;

#[test]
fn status_stop_cont_and_the_guest_ticks_only_while_running() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    assert_eq!(
        c.ok("query-status", None),
        json!({"status": "running", "running": true})
    );
    let n = c.heartbeats_pass(0);
    c.heartbeats_pass(n);

    assert_eq!(c.ok("stop", None), json!({}));
    let stop = c.event("STOP");
    assert!(
        stop["timestamp"]["seconds"].as_u64().is_some_and(|s| s > 1_600_000_000),
        "{stop}"
    );
    assert_eq!(
        c.ok("query-status", None),
        json!({"status": "paused", "running": false})
    );
    let paused_at = c.counters()["guest-heartbeats"].as_u64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        c.counters()["guest-heartbeats"].as_u64().unwrap(),
        paused_at,
        "a paused guest ticked"
    );
    // A CPU plugged while paused runs nothing until `cont`.
    assert_eq!(c.ok("device_add", Some(cpu_args(1, Some("c1")))), json!({}));
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(c.counters()["guest-heartbeats"].as_u64().unwrap(), paused_at);

    assert_eq!(c.ok("cont", None), json!({}));
    c.event("RESUME");
    assert_eq!(
        c.ok("query-status", None),
        json!({"status": "running", "running": true})
    );
    c.heartbeats_pass(paused_at);
}

#[test]
fn started_with_dash_s_is_prelaunch_until_cont() {
    let Some(vm) = Vm::start(&["-S"]) else { return };
    let mut c = vm.client();
    assert_eq!(
        c.ok("query-status", None),
        json!({"status": "prelaunch", "running": false})
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(c.counters()["guest-heartbeats"], json!(0), "the guest ran before cont");
    c.ok("cont", None);
    c.event("RESUME");
    c.heartbeats_pass(0);
}

#[test]
fn cpu_hotplug_by_props_id_and_qom_path() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    let slots = c.ok("query-hotpluggable-cpus", None);
    let slots = slots.as_array().expect("a list");
    assert_eq!(slots.len(), 4, "{slots:?}");
    // Last slot first, as QEMU lists them; only the boot CPU has a QOM path.
    assert_eq!(slots[3]["props"], json!({"core-id": 0, "thread-id": 0, "socket-id": 0}));
    assert_eq!(slots[3]["qom-path"], "/machine/unattached/device[0]");
    assert_eq!(slots[0]["props"]["core-id"], 3);
    assert!(slots[..3].iter().all(|s| s.get("qom-path").is_none()));
    assert!(slots
        .iter()
        .all(|s| s["type"] == "qemu64-x86_64-cpu" && s["vcpus-count"] == 1));

    assert_eq!(c.ok("device_add", Some(cpu_args(2, Some("cpu2")))), json!({}));
    assert_eq!(c.ok("device_add", Some(cpu_args(1, None))), json!({}));
    let cpus = c.ok("query-cpus-fast", None);
    let cpus = cpus.as_array().unwrap();
    let paths: Vec<&str> = cpus.iter().map(|c| c["qom-path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/machine/unattached/device[0]",
            "/machine/peripheral-anon/device[0]",
            "/machine/peripheral/cpu2"
        ]
    );
    for cpu in cpus {
        let tid = cpu["thread-id"].as_u64().expect("thread-id");
        let comm = std::fs::read_to_string(format!("/proc/{}/task/{tid}/comm", vm.child.id()))
            .unwrap_or_else(|e| panic!("thread {tid} of {cpu}: {e}"));
        assert_eq!(comm.trim(), format!("vcpu-{}", cpu["cpu-index"]), "{cpu}");
        assert_eq!(cpu["target"], "x86_64");
    }

    // Occupied slot, missing and out-of-range ids, wrong driver, duplicate id.
    let e = c.err("device_add", Some(cpu_args(2, Some("again"))));
    assert_eq!(e, ("GenericError".into(), "CPU[2] with APIC ID 2 exists".into()));
    let e = c.err(
        "device_add",
        Some(json!({"driver": "qemu64-x86_64-cpu", "core-id": 3, "thread-id": 0})),
    );
    assert_eq!(e.1, "CPU socket-id is not set");
    let e = c.err("device_add", Some(cpu_args(4, None)));
    assert_eq!(e.1, "Invalid CPU core-id: 4 must be in range 0:3");
    let e = c.err("device_add", Some(json!({"driver": "nosuch"})));
    assert_eq!(e.1, "'nosuch' is not a valid device model name");
    let e = c.err("device_add", Some(cpu_args(3, Some("cpu2"))));
    assert_eq!(e.1, "Duplicate device ID 'cpu2'");
    let e = c.err("device_add", Some(json!({"driver": "qemu64-x86_64-cpu", "bogus": 1})));
    assert_eq!(e.1, "Property 'qemu64-x86_64-cpu.bogus' not found");

    // Unplug by id, then by QOM path: each completes with DEVICE_DELETED after the reply.
    assert_eq!(c.ok("device_del", Some(json!({"id": "cpu2"}))), json!({}));
    let ev = c.event("DEVICE_DELETED");
    assert_eq!(
        ev["data"],
        json!({"device": "cpu2", "path": "/machine/peripheral/cpu2"})
    );
    c.ok("device_del", Some(json!({"id": "/machine/peripheral-anon/device[0]"})));
    let ev = c.event("DEVICE_DELETED");
    assert_eq!(ev["data"], json!({"path": "/machine/peripheral-anon/device[0]"}));
    assert_eq!(c.ok("query-cpus-fast", None).as_array().unwrap().len(), 1);

    let e = c.err("device_del", Some(json!({"id": "/machine/unattached/device[0]"})));
    assert_eq!(e, ("GenericError".into(), "Boot CPU is unpluggable".into()));
    let e = c.err("device_del", Some(json!({"id": "cpu2"})));
    assert_eq!(e, ("DeviceNotFound".into(), "Device 'cpu2' not found".into()));
    // Anonymous devices count up and never reuse a number; as in QEMU, a device_add
    // without an id that failed after its driver was found used one too (three above).
    c.ok("device_add", Some(cpu_args(1, None)));
    let cpus = c.ok("query-cpus-fast", None);
    assert_eq!(cpus[1]["qom-path"], "/machine/peripheral-anon/device[4]", "{cpus}");
}

#[test]
fn plug_unplug_cycles_leave_nothing_behind() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    let cycle = |c: &mut Client| {
        c.ok("device_add", Some(cpu_args(1, Some("cpu1"))));
        c.ok("device_del", Some(json!({"id": "cpu1"})));
        c.event("DEVICE_DELETED");
    };
    // The first unplug parks vCPU 1's fd (KVM cannot destroy it): count from there.
    cycle(&mut c);
    let before = c.counters();
    for _ in 0..30 {
        cycle(&mut c);
    }
    let after = c.counters();
    for key in [
        "regions",
        "address-spaces",
        "flatviews",
        "listeners",
        "memslots",
        "cpus",
        "vcpu-threads",
        "parked-vcpus",
        "open-fds",
        "threads",
    ] {
        assert_eq!(after[key], before[key], "{key} changed: {before} -> {after}");
    }
}

#[test]
fn hmp_info_mtree_is_what_addrspace_mtree_prints() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    let mtree = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_addrspace"))
            .arg("mtree")
            .arg("boards/kvm-demo.toml")
            .args(args)
            .current_dir(repo())
            .output()
            .expect("addrspace mtree");
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    // Plug and unplug a CPU first: the machine must be back where the board started it.
    c.ok("device_add", Some(cpu_args(3, Some("x"))));
    let with = c.hmp("info mtree -f");
    assert!(with.contains("AS \"cpu-memory-3\""), "{with}");
    c.ok("device_del", Some(json!({"id": "x"})));
    assert_eq!(c.hmp("info mtree -f"), mtree(&["-f"]));
    assert_eq!(c.hmp("info mtree"), mtree(&[]));
    assert_eq!(c.hmp("info mtree -D"), mtree(&["-D"]));
}

#[test]
fn two_clients_both_see_events_and_bad_input_disturbs_no_one() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut a = vm.client();
    let mut b = vm.client();
    // A client that never negotiates gets no events; one that sends junk and leaves
    // mid-request changes nothing.
    let mut lurker = Client::connect(&vm.sock);
    lurker.read_value();
    {
        let mut rude = vm.client();
        rude.send_raw(b"{\"execute\": \"query-status\", \"argu");
    }
    // A client that sends a whole command and leaves before its reply: the command still
    // runs (as in QEMU), its reply goes nowhere, nobody else notices.
    {
        let mut gone = vm.client();
        gone.send_raw(br#"{"execute": "device_add", "arguments": {"driver": "qemu64-x86_64-cpu", "socket-id": 0, "core-id": 3, "thread-id": 0, "id": "orphan"}}"#);
    }
    let t0 = std::time::Instant::now();
    while !a
        .ok("query-cpus-fast", None)
        .to_string()
        .contains("/machine/peripheral/orphan")
    {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "the orphaned device_add never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    a.ok("device_del", Some(json!({"id": "orphan"})));
    a.event("DEVICE_DELETED");
    b.event("DEVICE_DELETED");
    a.send_raw(b"{ this is not json }\r\n");
    let junk = a.read_value();
    assert_eq!(junk["error"]["class"], "GenericError", "{junk}");
    assert_eq!(a.err("no-such-command", None).0, "CommandNotFound");
    assert_eq!(
        a.err("query-status", Some(json!({"x": 1}))).1,
        "Parameter 'x' is unexpected"
    );

    a.ok("device_add", Some(cpu_args(1, Some("c1"))));
    a.ok("device_del", Some(json!({"id": "c1"})));
    assert_eq!(a.event("DEVICE_DELETED")["data"]["device"], "c1");
    assert_eq!(b.event("DEVICE_DELETED")["data"]["device"], "c1");
    b.ok("stop", None);
    a.event("STOP");
    b.event("STOP");
    b.ok("cont", None);
    let n = b.heartbeats_pass(0);
    a.heartbeats_pass(n);

    // The lurker is still in negotiation mode: nothing was sent to it.
    assert_eq!(lurker.cmd("query-status", None)["error"]["class"], "CommandNotFound");
}

#[test]
fn quit_replies_then_shuts_down() {
    let Some(mut vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    assert_eq!(c.ok("quit", None), json!({}));
    let mut rest: Vec<_> = c.events.drain(..).collect();
    rest.extend(c.read_to_close());
    let shutdown = rest.iter().find(|v| v["event"] == "SHUTDOWN").expect("SHUTDOWN");
    assert_eq!(shutdown["data"], json!({"guest": false, "reason": "host-qmp-quit"}));
    let status = vm.wait_exit();
    let err = vm.stderr();
    assert!(status.success(), "{status}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!vm.sock.exists(), "the socket file is removed at exit");
}

#[test]
fn sigterm_shuts_down_like_qemu() {
    let Some(mut vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    c.ok("device_add", Some(cpu_args(1, Some("c1"))));
    let killed = Command::new("kill")
        .args(["-TERM", &vm.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let rest = c.read_to_close();
    let shutdown = rest.iter().find(|v| v["event"] == "SHUTDOWN").expect("SHUTDOWN");
    assert_eq!(shutdown["data"], json!({"guest": false, "reason": "host-signal"}));
    let status = vm.wait_exit();
    assert!(status.success(), "{status}: {}", vm.stderr());
    assert!(!vm.sock.exists(), "the socket file is removed at exit");
}
