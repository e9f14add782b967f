//! `addrspace run --monitor stdio`: QEMU's `(qemu)` prompt on the terminal, fed from a pipe:
//! status, CPU hot-plug and unplug, `info cpus`, `info hotpluggable-cpus`, errors as text,
//! `quit`. Skipped (with the reason printed) only where `run` exits with 3: no usable /dev/kvm.

mod qmp_support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use qmp_support::*;

#[test]
fn the_hmp_prompt_plugs_lists_and_unplugs_cpus() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_addrspace"))
        .args(["run", "boards/kvm-demo.toml", "--accel", "kvm", "--monitor", "stdio"])
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn addrspace");
    let script = "info status\n\
        device_add qemu64-x86_64-cpu,socket-id=0,core-id=2,thread-id=0,id=c2\n\
        info cpus\n\
        device_add qemu64-x86_64-cpu,socket-id=0,core-id=2,thread-id=0\n\
        info hotpluggable-cpus\n\
        device_del c2\n\
        info cpus\n\
        nosuchcommand\n\
        stop\n\
        info status\n\
        quit\n";
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(NO_KVM) {
        eprintln!("skipped: no usable /dev/kvm: {}", stderr.trim());
        assert!(stderr.contains("/dev/kvm"), "exit 3 must say why: {stderr}");
        return;
    }
    assert!(out.status.success(), "{}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("VM status: running"), "{stdout}");
    assert!(stdout.contains("VM status: paused"), "{stdout}");
    // `info cpus`: both CPUs with their vCPU threads, then only the boot CPU.
    let listed: Vec<&str> = stdout.lines().filter(|l| l.contains("CPU #")).collect();
    assert_eq!(listed.len(), 3, "{stdout}");
    assert!(listed[0].starts_with("* CPU #0: thread_id="), "{stdout}");
    assert!(listed[1].starts_with("  CPU #2: thread_id="), "{stdout}");
    assert!(listed[2].starts_with("* CPU #0: thread_id="), "{stdout}");
    assert!(stdout.contains("Error: CPU[2] with APIC ID 2 exists"), "{stdout}");
    assert!(stdout.contains("qom_path: \"/machine/peripheral/c2\""), "{stdout}");
    assert!(stdout.contains("unknown command: 'nosuchcommand'"), "{stdout}");
}
