//! QEMU's own Python QMP client (`qemu.qmp`, installed by `.ci/run`) against our server and
//! the fake machine: it must negotiate and run commands, errors and events unmodified.

mod support;

use std::process::Command;

use support::{serve_unix, Served, CPU_TYPE};

#[test]
fn qemu_qmp_drives_the_server() {
    let probe = Command::new("python3").args(["-c", "import qemu.qmp"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(
            std::env::var_os("ADDRSPACE_REQUIRE_QEMU_QMP").is_none(),
            "ADDRSPACE_REQUIRE_QEMU_QMP is set (.ci/run) but python3 cannot import qemu.qmp"
        );
        eprintln!("skipped: python3 with qemu.qmp is not installed (pip install qemu.qmp)");
        return;
    }
    let Served {
        monitor,
        fake,
        path,
        dir: _dir,
    } = serve_unix("server=on,wait=off");
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
