//! QEMU's own Python QMP client (`qemu.qmp`, installed by `.ci/run`) against our server and
//! the fake machine: it must negotiate and run commands, errors and events unmodified.

mod support;

use std::process::Command;

use addrspace_monitor::{ChardevSpec, Events, Monitor};
use support::{Fake, CPU_TYPE};

#[test]
fn qemu_qmp_drives_the_server() {
    let probe = Command::new("python3").args(["-c", "import qemu.qmp"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with qemu.qmp is not installed (pip install qemu.qmp)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("qmp.sock");
    let events = Events::new();
    let fake = Fake::new(events.clone());
    let mut monitor = Monitor::new(fake.clone(), events);
    let spec = ChardevSpec::parse(&format!("unix:{},server=on,wait=off", path.display())).expect("spec");
    monitor.listen(&spec).expect("listen");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/qmp_client_smoke.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&path)
        .arg(CPU_TYPE)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("qemu.qmp session ok"));
    assert!(!fake.lock().cpus.contains_key(&1));
    monitor.shutdown();
}
