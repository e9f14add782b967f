//! Hostile arguments on a running KVM machine: extreme and negative topology ids, APIC IDs
//! at the edge of u32, `cpu-index` values no CPU has, ids and paths that name nothing. Each
//! must get an error reply (never a panic or a dropped connection) and leave the machine as
//! it was. Skipped (with the reason printed) only where `run` exits with 3: no usable /dev/kvm.

mod qmp_support;

use qmp_support::*;
use serde_json::{json, Value};

fn cpu(props: Value) -> Value {
    let mut a = json!({"driver": "qemu64-x86_64-cpu"});
    if let (Some(a), Some(p)) = (a.as_object_mut(), props.as_object()) {
        a.extend(p.clone());
    }
    a
}

#[test]
fn hostile_arguments_get_errors_and_change_nothing() {
    let Some(vm) = Vm::start(&[]) else { return };
    let mut c = vm.client();
    let before = c.counters();
    let big = [
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(i32::MAX),
        json!(i32::MIN),
        json!(-1),
        json!(4),
        json!(1.5),
    ];
    let mut requests = Vec::new();
    for v in &big {
        for key in ["socket-id", "core-id", "thread-id", "die-id", "module-id", "node-id"] {
            if key == "node-id" && v == &json!(-1) {
                continue; // "no node", accepted as QEMU accepts it
            }
            requests.push((
                "device_add",
                cpu(json!({"socket-id": 0, "core-id": 1, "thread-id": 0, key: v})),
            ));
        }
        requests.push(("device_add", cpu(json!({"apic-id": v}))));
        requests.push((
            "human-monitor-command",
            json!({"command-line": "info cpus", "cpu-index": v}),
        ));
        requests.push(("device_del", json!({"id": v})));
    }
    for apic in [u32::MAX, u32::MAX - 1, 1 << 31, 4, 5, 1 << 2] {
        requests.push(("device_add", cpu(json!({"apic-id": apic}))));
        requests.push((
            "device_add",
            cpu(json!({"apic-id": apic, "socket-id": 0, "core-id": 0})),
        ));
    }
    for name in [
        "",
        "/",
        "/machine/unattached/device[0]",
        "/machine/peripheral/",
        "cpu\u{0}",
    ] {
        requests.push(("device_del", json!({"id": name})));
    }
    for (name, args) in &requests {
        let r = c.cmd(name, Some(args.clone()));
        assert!(r.get("error").is_some(), "{name} {args} should fail: {r}");
    }
    assert_eq!(c.ok("query-status", None)["status"], "running");
    assert_eq!(c.ok("query-cpus-fast", None).as_array().map(Vec::len), Some(1));
    let after = c.counters();
    for key in [
        "cpus",
        "vcpu-threads",
        "parked-vcpus",
        "regions",
        "address-spaces",
        "threads",
        "open-fds",
    ] {
        assert_eq!(after[key], before[key], "{key}: {before} -> {after}");
    }
}
