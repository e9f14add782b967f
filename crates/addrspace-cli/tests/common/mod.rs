//! Helpers shared by the CLI's integration tests: running the binary from the repository
//! root, the QEMU fixtures, temporary files.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The four QEMU captures under `tests/fixtures/qemu`.
pub const MACHINES: [&str; 4] = [
    "x86-pc-512M",
    "x86-pc-512M-after-bios",
    "arm-virt-a57-smp2-1G",
    "arm-mps2-an385",
];

/// `mtree` flags and the capture each one reproduces.
pub const VARIANTS: [(&[&str], &str); 4] = [
    (&[], "mtree.txt"),
    (&["-D"], "mtree-D.txt"),
    (&["-f"], "mtree-f.txt"),
    (&["-f", "-D"], "mtree-f-D.txt"),
];

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

pub fn fixture(machine: &str, file: &str) -> String {
    format!("tests/fixtures/qemu/{machine}/{file}")
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// Runs the binary from the repository root (so fixture paths are relative).
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_addrspace"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run addrspace")
}

/// Runs the binary, expecting success, nothing on stderr and `\n`-only line ends.
pub fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "addrspace {args:?} failed ({}): {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "addrspace {args:?} wrote to stderr: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    assert!(!stdout.contains('\r'), "addrspace {args:?}: output has a CR");
    assert!(
        stdout.ends_with('\n'),
        "addrspace {args:?}: output does not end with a newline"
    );
    stdout
}

/// Runs the binary, expecting failure with empty stdout; returns stderr.
pub fn run_err(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert!(!out.status.success(), "addrspace {args:?} should fail");
    assert!(
        out.stdout.is_empty(),
        "addrspace {args:?}: stdout should be empty on error"
    );
    assert!(!stderr.trim().is_empty(), "addrspace {args:?}: no error message");
    stderr
}

/// `mtree --from-qemu <machine>/mtree-D.txt --hints <machine>/hints.toml <extra>`.
pub fn from_qemu(machine: &str, extra: &[&str]) -> String {
    let dump = fixture(machine, "mtree-D.txt");
    let hints = fixture(machine, "hints.toml");
    let mut args = vec!["mtree", "--from-qemu", &dump, "--hints", &hints];
    args.extend_from_slice(extra);
    run_ok(&args)
}

/// Blank-line-separated blocks of a text dump, as lists of lines.
pub fn blocks(text: &str) -> Vec<Vec<&str>> {
    text.split("\n\n")
        .map(|b| b.trim_matches('\n'))
        .filter(|b| !b.is_empty())
        .map(|b| b.lines().collect())
        .collect()
}

pub fn tempfile_with(contents: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
    f.write_all(contents.as_bytes()).unwrap();
    f.flush().unwrap();
    f
}
