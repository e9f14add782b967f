//! Line counting.

use super::*;

// Line counting.

#[test]
pub(crate) fn lines_are_counted_with_crlf_line_ends() {
    let text = format!("[[region]]\r\nname = \"a\"\r\ntype = \"ram\"\r\nsize = 4096\r\nbogus = 1 {MARK}\r\n");
    board_error(&text, &["unknown field `bogus`"]);
}

#[test]
pub(crate) fn lines_are_counted_after_non_ascii_text() {
    let text = format!("# réglages — ça va\n[[region]]\nname = \"é\"\ntype = \"ram\"\nsize = \"ü\" {MARK}\n");
    board_error(&text, &["not a number"]);
}

#[test]
pub(crate) fn first_error_wins_and_names_its_own_line() {
    let text = format!(
        "[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = -1 {MARK}\n\n[[region]]\nname = \"b\"\ntype = \"ram\"\nsize = -2\n"
    );
    board_error(&text, &["-1"]);
}

#[test]
pub(crate) fn load_file_names_the_path_in_errors() {
    let dir = std::env::temp_dir().join(format!("addrspace-board-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.toml");
    std::fs::write(
        &path,
        "[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\nbogus = 1\n",
    )
    .unwrap();
    let err = board::load_file(&path).expect_err("error");
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{}:5:", path.display())), "{shown}");
    assert!(matches!(err, LoadError::Board { line: 5, .. }));

    let missing = dir.join("missing.toml");
    let err = board::load_file(&missing).expect_err("error");
    assert!(matches!(err, LoadError::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.toml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
