//! Loading has its own error type: `LoadError` says where in which file, and wraps the core
//! `Error` when a call on the memory system failed there (the core `Error` has no board,
//! dump or file variants any more). Messages and lines are what they were.

use addrspace::mtree::{self, Hints};
use addrspace::{board, Error, LoadError};

/// A container holding itself through an alias at the address it shows: a cycle QEMU could
/// not render, refused by the core when the loader maps the alias (line 5).
const ENDLESS: &str = r#"[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [{ region = "loop", addr = "0x3000" }]

[[region]]
name = "loop"
type = "alias"
target = "system"
offset = "0x3000"
size = "4K"
"#;

#[test]
fn a_refused_core_call_is_wrapped_at_its_line() {
    let err = board::load_str(ENDLESS, "loop.toml").unwrap_err();
    assert_eq!(err.line(), Some(5));
    let core = err.core().expect("the core refused the mapping");
    assert!(matches!(core, Error::EndlessCycle { .. }), "{core:?}");
    // The message is the core's, at the line: as before the split.
    assert_eq!(err.to_string(), format!("loop.toml:5:26: {core}"));
    // Not repeated as the source (an error chain would print it twice).
    assert!(std::error::Error::source(&err).is_none());
}

#[test]
fn mistakes_in_the_text_have_no_core_error() {
    let err = board::load_str("[[region]]\nname = \"r\"\ntype = \"rma\"\n", "t.toml").unwrap_err();
    assert!(matches!(err, LoadError::Board { line: 3, .. }), "{err:?}");
    assert!(err.core().is_none());
    let err = Hints::from_toml("readonly = 1\n", "hints.toml").unwrap_err();
    assert!(matches!(err, LoadError::Board { line: 1, .. }), "{err:?}");
    let err = mtree::import_dump("nonsense\n", "dump.txt", &Hints::default()).unwrap_err();
    assert!(matches!(err, LoadError::Dump { line: 1, .. }), "{err:?}");
    assert!(err.core().is_none());
}

#[test]
fn a_dump_wraps_the_core_error_too() {
    let body = "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    \
                0000000000003000-0000000000003fff (prio 0, i/o): alias loop @system \
                0000000000003000-0000000000003fff\n";
    let dump = format!("address-space: memory\n{body}\nmemory-region: system\n{body}\n");
    let err = mtree::import_dump(&dump, "dump.txt", &Hints::default()).unwrap_err();
    assert_eq!(err.line(), Some(3), "{err}");
    assert!(matches!(err.core(), Some(Error::EndlessCycle { .. })), "{err:?}");
}

#[test]
fn an_unreadable_file_is_an_io_load_error() {
    let err = board::load_file(std::path::Path::new("/nonexistent/board.toml")).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    assert_eq!(err.line(), None);
    assert!(
        err.to_string().starts_with("cannot read /nonexistent/board.toml: "),
        "{err}"
    );
}
