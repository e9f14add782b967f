//! QEMU's own clients drive a running addrspace machine: the `qemu.qmp` Python library
//! (100 CPU unplug/re-plug cycles while the guest runs, counters flat, `info mtree -f`
//! through `human-monitor-command` equal to `addrspace mtree -f` of the board) and its
//! `qmp-shell`. `.ci/run` installs `qemu.qmp` from PyPI and sets ADDRSPACE_REQUIRE_QEMU_QMP=1,
//! so these run in CI; elsewhere they skip, saying why, when the package is missing.

mod qmp_support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use qmp_support::*;

/// Whether `qemu.qmp` imports; panics instead of skipping where CI requires it.
fn have_qemu_qmp() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import qemu.qmp"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("ADDRSPACE_REQUIRE_QEMU_QMP").is_none(),
            "ADDRSPACE_REQUIRE_QEMU_QMP is set but `python3 -c 'import qemu.qmp'` fails"
        );
        eprintln!("skipped: QEMU's Python client is not installed (pip install qemu.qmp; .ci/run does)");
    }
    ok
}

#[test]
fn qemu_qmp_client_cycles_a_cpu_100_times_and_nothing_grows() {
    if !have_qemu_qmp() {
        return;
    }
    let Some(mut vm) = Vm::start(&[]) else { return };
    let out_file = vm.dir.path().join("mtree-f.txt");
    let out = Command::new("python3")
        .arg(repo().join("tests/qmp/hotplug_cycles.py"))
        .arg(&vm.sock)
        .arg("100")
        .arg(&out_file)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hotplug_cycles.py failed\n{stdout}\n{stderr}");
    assert!(stdout.contains("\nok\n"), "{stdout}");
    let status = vm.wait_exit();
    assert!(status.success(), "after quit: {status}: {}", vm.stderr());

    let live = std::fs::read_to_string(&out_file).expect("info mtree -f output");
    let board = Command::new(env!("CARGO_BIN_EXE_addrspace"))
        .args(["mtree", "boards/kvm-demo.toml", "-f"])
        .current_dir(repo())
        .output()
        .expect("addrspace mtree");
    assert_eq!(live, String::from_utf8(board.stdout).unwrap());
}

#[test]
fn qmp_shell_drives_the_machine() {
    if !have_qemu_qmp() {
        return;
    }
    let Some(vm) = Vm::start(&[]) else { return };
    let mut shell = Command::new("python3")
        .args(["-m", "qemu.qmp.qmp_shell"])
        .arg(&vm.sock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qmp-shell");
    let script = "query-status\n\
        device_add driver=qemu64-x86_64-cpu socket-id=0 core-id=2 thread-id=0 id=c2\n\
        query-cpus-fast\n\
        device_del id=c2\n\
        query-hotpluggable-cpus\n\
        device_del id=c2\n";
    shell.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = shell.wait_with_output().expect("qmp-shell output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let replies: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("(QEMU) ")).collect();
    let all = format!("{stdout}\n{stderr}");
    assert!(stdout.contains("Connected to QEMU 10.0.2"), "{all}");
    assert_eq!(
        replies[0], r#"{"return": {"status": "running", "running": true}}"#,
        "{all}"
    );
    assert_eq!(replies[1], r#"{"return": {}}"#, "{all}");
    assert!(
        replies[2].contains(r#""qom-path": "/machine/peripheral/c2", "cpu-index": 2"#),
        "{all}"
    );
    assert_eq!(replies[3], r#"{"return": {}}"#, "{all}");
    assert!(!replies[4].contains("/machine/peripheral/c2"), "unplugged: {all}");
    assert_eq!(
        replies[5], r#"{"error": {"class": "DeviceNotFound", "desc": "Device 'c2' not found"}}"#,
        "{all}"
    );
}
