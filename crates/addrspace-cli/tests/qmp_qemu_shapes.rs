//! Shape for shape against real QEMU: `tests/qmp/qmp_walk.py` runs the same fixed walk (every
//! command, every error path, junk, two clients, quit) it ran against QEMU 10.0.2
//! (`tests/fixtures/qmp/qemu-10.0.2-q35*.jsonl`) against our running KVM machine, and
//! `tests/qmp/shape.py` compares the transcripts: same steps, same member names in the same
//! order, same JSON types, same error classes and events. Only the differences declared in
//! `tests/qmp/declared-differences.toml` (each with its reason) are accepted.
//! Skipped, saying why, without a usable /dev/kvm or without Python 3.11+ (tomllib).

mod qmp_support;

use std::process::Command;

use qmp_support::*;

fn python_ok() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import tomllib"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: tests/qmp needs python3 3.11 or newer (tomllib)");
    }
    ok
}

fn walk_and_compare(capture: &str, extra: &[&str]) {
    if !python_ok() {
        return;
    }
    let Some(mut vm) = Vm::start(extra) else { return };
    let ours = vm.dir.path().join("ours.jsonl");
    let walk = Command::new("python3")
        .arg(repo().join("tests/qmp/qmp_walk.py"))
        // Our events are sent with the reply that caused them: short silences suffice.
        .args(["--target", "addrspace", "--linger-scale", "0.1"])
        .arg(&vm.sock)
        .output()
        .expect("python3 qmp_walk.py");
    assert!(
        walk.status.success(),
        "qmp_walk.py failed:\n{}",
        String::from_utf8_lossy(&walk.stderr)
    );
    std::fs::write(&ours, &walk.stdout).expect("write our transcript");
    let shape = Command::new("python3")
        .arg(repo().join("tests/qmp/shape.py"))
        .arg(repo().join("tests/fixtures/qmp").join(capture))
        .arg(&ours)
        .arg("--declared")
        .arg(repo().join("tests/qmp/declared-differences.toml"))
        .output()
        .expect("python3 shape.py");
    let report = String::from_utf8_lossy(&shape.stdout);
    println!("{report}");
    assert!(
        shape.status.success(),
        "our replies differ from QEMU's beyond the declared differences:\n{report}{}",
        String::from_utf8_lossy(&shape.stderr)
    );
    let status = vm.wait_exit();
    assert!(status.success(), "the walk ends with quit: {status}: {}", vm.stderr());
}

#[test]
fn replies_have_qemus_shapes_one_socket_four_cores() {
    walk_and_compare("qemu-10.0.2-q35.jsonl", &[]);
}

#[test]
fn replies_have_qemus_shapes_two_sockets_of_two_cores() {
    walk_and_compare("qemu-10.0.2-q35-sockets2-cores2.jsonl", &["--smp", "sockets=2,cores=2"]);
}
