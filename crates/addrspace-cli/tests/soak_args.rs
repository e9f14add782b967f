//! `addrspace soak`'s choices, driving the binary: `--cluster NAME` and `--slot N` pick what
//! is cycled (unknown ones are errors naming what exists), `--cycles 0` is refused by the
//! argument parser, and the progress bar shows on a terminal and nowhere else.

mod common;

use std::process::Command;

use common::*;

/// The report's first line (`soak: <what>, N cycles, R reader thread(s)`), after checking
/// that the soak succeeded and left stderr empty: with stderr not a terminal, the progress
/// bar is hidden, so nothing (no control character either) is written there.
fn soak_line(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "addrspace {args:?} failed: {stderr}");
    assert!(
        stderr.is_empty(),
        "addrspace {args:?} wrote to a captured stderr: {stderr:?}"
    );
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert!(stdout.ends_with("no growth\n"), "{stdout}");
    stdout.lines().next().unwrap_or_default().to_string()
}

#[test]
fn cluster_and_slot_choose_what_is_cycled() {
    // q35-smm: cluster `cpus`, 8 slots, CPUs 0 and 1 plugged at boot.
    let q35 = ["soak", "boards/q35-smm.toml", "--cycles", "20", "--readers", "1"];
    let with = |extra: &[&str]| soak_line(&[&q35[..], extra].concat());
    // By default the first free slot.
    assert!(with(&[]).starts_with("soak: plug + unplug CPU slot 2 of cluster `cpus`, 20 cycles"));
    // A free slot is plugged and unplugged; a plugged one unplugged and re-plugged.
    assert!(with(&["--slot", "5"]).starts_with("soak: plug + unplug CPU slot 5 of cluster `cpus`"));
    let line = with(&["--cluster", "cpus", "--slot", "1"]);
    assert!(
        line.starts_with("soak: unplug + re-plug CPU slot 1 of cluster `cpus`"),
        "{line}"
    );
    // zcu102: two full clusters; the second is chosen by name.
    let zcu = ["soak", "boards/zcu102.toml", "--cycles", "20", "--readers", "1"];
    let line = soak_line(&[&zcu[..], &["--cluster", "rpu-cluster"]].concat());
    assert!(
        line.starts_with("soak: unplug + re-plug CPU slot 1 of cluster `rpu-cluster`"),
        "{line}"
    );
    let line = soak_line(&[&zcu[..], &["--cluster", "apu-cluster", "--slot", "2"]].concat());
    assert!(
        line.starts_with("soak: unplug + re-plug CPU slot 2 of cluster `apu-cluster`"),
        "{line}"
    );
}

#[test]
fn unknown_cluster_or_slot_names_what_exists() {
    let err = run_err(&["soak", "boards/zcu102.toml", "--cycles", "1", "--cluster", "rpu"]);
    assert!(err.contains("no cluster `rpu`"), "{err}");
    assert!(err.contains("`apu-cluster`, `rpu-cluster`"), "{err}");
    let err = run_err(&["soak", "boards/q35-smm.toml", "--cycles", "1", "--slot", "8"]);
    assert!(err.contains("no slot 8"), "{err}");
    assert!(err.contains("slots: 0-7 (plugged: 0, 1)"), "{err}");
    let err = run_err(&[
        "soak",
        "boards/zcu102.toml",
        "--cycles",
        "1",
        "--cluster",
        "rpu-cluster",
        "--slot",
        "18446744073709551615",
    ]);
    assert!(
        err.contains("cluster `rpu-cluster` has no slot") && err.contains("0-1"),
        "{err}"
    );
    // A board without clusters soaks a DMA engine: there is nothing to choose.
    for extra in [["--cluster", "cpus"], ["--slot", "0"]] {
        let err = run_err(&[&["soak", "boards/pc.toml", "--cycles", "1"][..], &extra].concat());
        assert!(err.contains("no CPU clusters"), "{extra:?}: {err}");
    }
}

#[test]
fn zero_cycles_is_refused_by_the_parser() {
    let out = run(&["soak", "boards/q35-smm.toml", "--cycles", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "clap's usage error status: {stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("invalid value '0' for '--cycles"), "{stderr}");
    assert!(!stderr.contains("soak:"), "a soak started: {stderr}");
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), the bar is drawn and
/// cleared at the end; the report follows on a line of its own.
#[test]
fn progress_bar_shows_on_a_terminal() {
    let bin = env!("CARGO_BIN_EXE_addrspace");
    let cmd = format!("{bin} soak boards/q35-smm.toml --cycles 300 --readers 1");
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(repo())
        .output();
    let out = match out {
        Ok(o) if o.status.code() != Some(127) => o,
        other => {
            eprintln!("skipped: cannot run `script` (util-linux) for a terminal: {other:?}");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // How many steps are drawn depends on timing (the bar redraws at most 20 times a second);
    // that it is drawn does not.
    assert!(
        text.contains("soak: [") && text.contains("/300 ("),
        "no bar drawn: {text:?}"
    );
    // The bar is cleared: what is left of the report's line (ended by `\r\n` on a terminal)
    // after the last carriage return is the report (behind the "erase line" sequence), not
    // the bar with the report appended.
    let line = text
        .split('\n')
        .find(|l| l.contains("soak: plug + unplug"))
        .expect("the report");
    let shown = line
        .trim_end_matches('\r')
        .rsplit('\r')
        .next()
        .unwrap_or_default()
        .trim_start_matches("\x1b[2K");
    assert!(shown.starts_with("soak: plug + unplug CPU slot 2"), "{line:?}");
    assert!(text.contains("\nno growth"), "{text:?}");
}
