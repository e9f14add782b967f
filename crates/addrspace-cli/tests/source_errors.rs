//! What a new user runs into first (found by trying the README's commands): output piped into
//! a reader that stops early, an empty file, a dump where a board file was expected, and two
//! outputs of `map` naming one file. Each gets a clean exit or a clear error, never a panic.

mod common;

use std::process::{Command, Stdio};

use common::*;

/// `addrspace ARGS | head -1`: the reader goes away before the output is written.
fn into_closed_pipe(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_addrspace"))
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run addrspace");
    drop(child.stdout.take());
    child.wait_with_output().expect("wait")
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dump = fixture("x86-q35-1G", "mtree-D.txt");
    for args in [
        vec!["mtree", "boards/q35.toml", "--json"],
        vec!["mtree", "boards/q35.toml", "-f", "-D"],
        vec!["lookup", dump.as_str(), "0", "--json"],
        vec!["diff", "boards/pc.toml", "boards/q35.toml"],
        vec!["demo"],
    ] {
        let out = into_closed_pipe(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stderr}");
    }
}

#[test]
fn an_empty_source_is_an_error_that_says_so() {
    let empty = tempfile_with("\n  \n");
    let path = empty.path().to_str().unwrap();
    for args in [
        vec!["lookup", path, "0x10"],
        vec!["map", path, "--svg", "/dev/null"],
        vec!["diff", path, "boards/pc.toml"],
        vec!["mtree", path],
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains("is empty"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_dump_where_a_board_file_goes_is_read_as_a_dump_or_refused_clearly() {
    let dump = fixture("x86-pc-512M", "mtree-D.txt");
    let hints = fixture("x86-pc-512M", "hints.toml");
    // `mtree` tells a dump by its content, as lookup, diff and map do.
    let by_content = run_ok(&["mtree", &dump, "-f", "--hints", &hints]);
    let by_flag = run_ok(&["mtree", "--from-qemu", &dump, "-f", "--hints", &hints]);
    assert_eq!(by_content, by_flag);
    // `soak` needs CPU clusters, which no dump has.
    let err = run_err(&["soak", &dump, "--cycles", "1"]);
    assert!(err.contains("is a QEMU `info mtree` dump"), "{err}");
}

#[test]
fn map_refuses_one_file_for_both_pictures() {
    let out = run(&["map", "boards/pc.toml", "--svg", "/tmp/x.map", "--html", "/tmp/x.map"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("same file"), "{stderr}");
}

#[test]
fn a_source_that_is_not_utf8_says_where() {
    use std::io::Write;
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(b"# a board\nname = \"\xff\"\n").unwrap();
    f.flush().unwrap();
    let path = f.path().to_str().unwrap();
    for args in [
        vec!["lookup", path, "0x10"],
        vec!["diff", path, "boards/pc.toml"],
        vec!["mtree", path],
        vec!["soak", path, "--cycles", "1"],
    ] {
        let err = run_err(&args);
        assert!(err.contains("not UTF-8 at byte 18"), "{args:?}: {err}");
    }
}
