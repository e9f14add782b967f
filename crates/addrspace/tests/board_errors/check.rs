//! Loading a board that must fail, and checking where and what the error says.

use super::*;

/// The name the test boards are loaded under.
pub(crate) const FILE: &str = "bad.toml";

/// Marks the line an error must point at.
pub(crate) const MARK: &str = "# <-- here";

pub(crate) fn repo(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../")).join(rel)
}

pub(crate) fn read(rel: &str) -> String {
    let p = repo(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Loads `text`, expecting a `LoadError::Board` at `line`; checks the Display form and that the
/// message contains every one of `needles`. Returns the message.
pub(crate) fn board_error_at(text: &str, line: usize, needles: &[&str]) -> String {
    let err = match load_str(text, FILE) {
        Ok(_) => panic!("expected an error at line {line}, but the board loaded:\n{text}"),
        Err(e) => e,
    };
    let shown = err.to_string();
    let LoadError::Board {
        file,
        line: got_line,
        column,
        msg,
        ..
    } = err
    else {
        panic!("expected LoadError::Board, got {err:?}");
    };
    assert_eq!(file, FILE, "{shown}");
    assert_eq!(got_line, line, "wrong line in `{shown}` for:\n{text}");
    assert!(column >= 1, "{shown}");
    assert!(
        shown.starts_with(&format!("{FILE}:{line}:{column}: ")),
        "Display must start with FILE:LINE:COLUMN: — got `{shown}`"
    );
    for n in needles {
        assert!(msg.contains(n), "message `{msg}` should mention `{n}`");
    }
    msg
}

/// Like [`board_error_at`], with the line given by the one line of `text` that contains
/// [`MARK`].
pub(crate) fn board_error(text: &str, needles: &[&str]) -> String {
    let marked: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(MARK))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(marked.len(), 1, "test bug: mark exactly one line in:\n{text}");
    board_error_at(text, marked[0], needles)
}

/// A RAM region `a` of 4 KiB and a 2^64 container `s` holding it, as the tail of a board.
pub(crate) const RAM_A: &str = r#"
[[region]]
name = "a"
type = "ram"
size = 4096
"#;
