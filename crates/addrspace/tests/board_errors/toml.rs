//! TOML-level mistakes, reported by the parser and mapped to file:line:column.

use super::*;

// TOML-level mistakes (reported by the parser, mapped to file:line:column).

#[test]
pub(crate) fn toml_syntax_error_unterminated_string() {
    let text = "[[region]]\nname = \"a\ntype = \"ram\"\nsize = 4096\n";
    board_error_at(text, 2, &["string"]);
}

#[test]
pub(crate) fn toml_syntax_error_bad_table_header() {
    let text = format!("{RAM_A}\n[[region {MARK}\n");
    board_error(&text, &["table header"]);
}

#[test]
pub(crate) fn toml_syntax_error_missing_value() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = {MARK}\n");
    board_error(&text, &[]);
}

#[test]
pub(crate) fn unknown_key_in_region() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\nbogus = 1 {MARK}\n");
    let msg = board_error(&text, &["unknown field `bogus`"]);
    // The message lists what is allowed.
    assert!(msg.contains("`subregions`"), "{msg}");
}

#[test]
pub(crate) fn unknown_key_in_subregion_entry() {
    let text = format!(
        r#"[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [
  {{ region = "a", adr = 0 }}, {MARK}
]
{RAM_A}"#
    );
    let msg = board_error(&text, &["unknown field `adr`"]);
    assert!(msg.contains("`addr`"), "should suggest the real key: {msg}");
}

#[test]
pub(crate) fn unknown_key_at_top_level() {
    let text = format!("description = \"x\"\nfoo = 1 {MARK}\n{RAM_A}");
    board_error(&text, &["unknown field `foo`"]);
}

#[test]
pub(crate) fn unknown_key_in_address_space() {
    let text = format!("{RAM_A}\n[[address-space]]\nname = \"m\"\nroot = \"a\"\nextra = 1 {MARK}\n");
    board_error(&text, &["unknown field `extra`"]);
}

#[test]
pub(crate) fn unknown_region_type() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"rma\" {MARK}\nsize = 4096\n");
    let msg = board_error(&text, &["unknown variant `rma`"]);
    assert!(msg.contains("`ram`"), "{msg}");
}

#[test]
pub(crate) fn missing_required_field_points_at_its_table() {
    let text = format!("{RAM_A}\n[[region]] {MARK}\ntype = \"ram\"\nsize = 4096\n");
    board_error(&text, &["missing field `name`"]);
}

#[test]
pub(crate) fn wrong_value_type_for_name() {
    let text = format!("[[region]]\nname = 1 {MARK}\ntype = \"ram\"\nsize = 4096\n");
    board_error(&text, &["invalid type", "string"]);
}

#[test]
pub(crate) fn wrong_value_type_for_flag() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\nenabled = \"yes\" {MARK}\n");
    board_error(&text, &["invalid type", "boolean"]);
}

#[test]
pub(crate) fn wrong_value_type_for_priority() {
    let text = format!(
        r#"[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [
  {{ region = "a", priority = "high" }}, {MARK}
]
{RAM_A}"#
    );
    board_error(&text, &["invalid type", "i32"]);
}

#[test]
pub(crate) fn wrong_value_type_for_region_list() {
    let text = format!("region = 5 {MARK}\n");
    board_error(&text, &["invalid type", "sequence"]);
}

#[test]
pub(crate) fn wrong_value_type_for_size_is_reported_at_its_line() {
    for value in ["true", "1.5", "[1]", "{ a = 1 }"] {
        let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = {value} {MARK}\n");
        board_error(&text, &[]);
    }
}

/// The message for a size of the wrong type is serde's "data did not match any variant of
/// untagged enum Number", which says neither which key is wrong nor what it should be.
#[test]
pub(crate) fn wrong_value_type_for_size_says_what_is_expected() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = true {MARK}\n");
    let msg = board_error(&text, &[]);
    assert!(!msg.contains("untagged enum"), "internal serde wording leaks: {msg}");
    assert!(
        msg.contains("integer") || msg.contains("string"),
        "should say what is expected: {msg}"
    );
}

#[test]
pub(crate) fn integer_too_large_for_toml() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = 99999999999999999999 {MARK}\n");
    board_error(&text, &["too large"]);
}
