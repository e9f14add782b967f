//! The shape comparison our monitor is judged by must itself be right: this runs
//! `tests/qmp/test_shape.py`, which checks `tests/qmp/shape.py` against the QEMU 10.0.2
//! reference transcript (`tests/fixtures/qmp/`) — identical transcripts match, a reordered
//! member, a changed error class or JSON type, a missing event, step or command is reported,
//! and only the differences declared in `tests/qmp/declared-differences.toml` are accepted.
//!
//! Needs `python3` 3.11 or newer (for `tomllib`); without it the test says so and skips.

use std::path::Path;
use std::process::Command;

#[test]
fn shape_comparison_tool_passes_its_own_tests() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let script = repo.join("tests/qmp/test_shape.py");
    let out = match Command::new("python3").arg(&script).output() {
        Ok(o) => o,
        Err(e) => {
            println!("SKIPPED: python3 cannot be run ({e}); tests/qmp needs Python 3.11+");
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named 'tomllib'") {
        println!("SKIPPED: python3 is older than 3.11 (no tomllib); tests/qmp needs 3.11+");
        return;
    }
    assert!(out.status.success(), "tests/qmp/test_shape.py failed:\n{stderr}");
    assert!(stderr.contains("OK"), "unittest did not report OK:\n{stderr}");
}
