//! `addrspace run boards/kvm-demo.toml --accel kvm`: the guest boots on real KVM (UART
//! message, ROM device read in and out of romd mode, BAR moved by the guest), a second vCPU is
//! plugged, run and unplugged 20 times, and nothing grows. Skipped (with the reason printed)
//! only where the command exits with 3: no usable /dev/kvm.

mod common;

use std::process::Command;

use common::*;

/// Exit status of `run` without a usable /dev/kvm.
const NO_KVM: i32 = 3;

#[test]
fn run_kvm_demo_boots_hotplugs_and_does_not_grow() {
    let board = repo().join("boards/kvm-demo.toml");
    let out = run(&["run", board.to_str().unwrap(), "--accel", "kvm", "--cycles", "20"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(NO_KVM) {
        eprintln!("skipped: {}", stderr.trim());
        assert!(stderr.contains("/dev/kvm"), "exit 3 must say why: {stderr}");
        return;
    }
    assert!(out.status.success(), "status {:?}\n{stdout}\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let has = |line: &str| stdout.lines().any(|l| l == line);
    assert!(has("uart: Hello from a KVM guest on addrspace!"), "{stdout}");
    assert!(
        has("romd: on -> 0xf1 (ROM data 0xf1), off -> 0xd5 (device value 0xd5)"),
        "{stdout}"
    );
    assert!(
        has("bar: moved to 0xd000 by the guest's BAR register write, wrote [0x42 at +0x4] through it, read back 0x42"),
        "{stdout}"
    );
    assert!(stdout.contains("memslot updates during the boot: 2 "), "{stdout}");
    assert!(has("vcpu 0: Halted"), "{stdout}");
    assert!(
        has("cpu1: 20/20 plug/run/unplug cycles reported \"cpu1 ok\" through the uart"),
        "{stdout}"
    );
    for counter in [
        "memslots",
        "vcpus",
        "parked fds",
        "open fds",
        "address spaces",
        "flat views",
        "rss",
    ] {
        assert!(
            stdout.contains(&format!("\n  {counter}: ")),
            "{counter} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("  memslots: 3 / 3 -> 3\n"), "{stdout}");
    assert!(stdout.contains("  parked fds: 0 / 1 -> 1\n"), "{stdout}");
    assert!(!stdout.contains("GREW"), "{stdout}");
    assert_eq!(stdout.lines().last(), Some("no growth"), "{stdout}");
    // The progress bar is hidden when stderr is not a terminal: a captured stderr holds only
    // the timing line, without control characters.
    assert!(stderr.starts_with("run: 20 cycles in "), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(!stderr.contains(['\r', '\x1b']), "{stderr:?}");
}

/// Without access to /dev/kvm (an unprivileged user: EACCES here, where it is root-only),
/// `run` says why and exits with 3. Needs root and `setpriv` to drop privileges; otherwise
/// the plain run above already covers the unavailable case.
#[test]
fn run_without_kvm_access_exits_3() {
    let board = repo().join("boards/kvm-demo.toml");
    let bin = env!("CARGO_BIN_EXE_addrspace");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
        .args(["run", board.to_str().unwrap(), "--accel", "kvm"])
        .output();
    let out = match out {
        Ok(o) if o.status.code() != Some(127) && !String::from_utf8_lossy(&o.stderr).contains("setpriv:") => o,
        other => {
            eprintln!("skipped: cannot run as an unprivileged user with setpriv: {other:?}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("cannot read") {
        eprintln!("skipped: the unprivileged user cannot read the board: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(NO_KVM), "{stderr}");
    assert!(
        stderr.contains("cannot use KVM") && stderr.contains("/dev/kvm"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
