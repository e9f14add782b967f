//! `addrspace soak` with more reader threads than allowed, or than the host can start: a
//! clean error naming the limit or the thread, never a panic.

mod common;

use std::process::Command;

use common::*;

/// A board with one cluster and no RAM, cheap to load under a memory limit.
const TINY: &str = "[[region]]\nname = \"system\"\ntype = \"container\"\nsize = \"2^64\"\n\n\
    [[address-space]]\nname = \"memory\"\nroot = \"system\"\n\n\
    [[cluster]]\nname = \"cpus\"\nmax-cpus = 2\ncpus = 1\n\
    spaces = [{ index = 0, prefix = \"cpu-memory\", root = \"system\" }]\n";

#[test]
fn too_many_readers_is_a_clean_error() {
    let board = tempfile_with(TINY);
    let board = board.path().to_str().unwrap();
    for readers in ["18446744073709551615", "5000", "1025"] {
        let err = run_err(&["soak", board, "--cycles", "1", "--readers", readers]);
        assert!(!err.contains("panicked"), "{readers}: {err}");
        assert!(err.contains("--readers") && err.contains("1024"), "{readers}: {err}");
    }
}

/// Under an address-space limit too small for the readers' stacks, starting them fails:
/// the command says so and exits with an error instead of panicking.
#[test]
fn reader_threads_that_cannot_start_are_an_error() {
    let board = tempfile_with(TINY);
    let board = board.path().to_str().unwrap();
    // 1 024 threads need 2 GiB of stack reservations; allow 256 MiB.
    let out = Command::new("sh")
        .args(["-c", "ulimit -v 262144 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_addrspace"))
        .args(["soak", board, "--cycles", "1", "--readers", "1024"])
        .output();
    let out = match out {
        Ok(o) if o.status.code() != Some(127) => o,
        other => {
            eprintln!("skipped: cannot run `sh -c 'ulimit -v …'` here: {other:?}");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ulimit") {
        eprintln!("skipped: this shell cannot lower the address-space limit: {stderr}");
        return;
    }
    assert!(!out.status.success(), "1 024 readers started in 256 MiB: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("cannot start reader thread"), "{stderr}");
}
