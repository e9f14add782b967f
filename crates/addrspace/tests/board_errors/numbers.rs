//! Numbers: sizes and addresses up to and beyond 2^64.

use super::*;

// Numbers.

#[test]
pub(crate) fn size_2_pow_65() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"2^65\" {MARK}\n");
    board_error(&text, &["2^65", "exceeds 2^64"]);
}

#[test]
pub(crate) fn size_2_pow_64_plus_one_in_hex() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"0x1_0000_0000_0000_0001\" {MARK}\n");
    board_error(&text, &["size", "0x10000000000000001", "exceeds 2^64"]);
}

#[test]
pub(crate) fn size_17_exbibytes() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"17E\" {MARK}\n");
    board_error(&text, &["size", "exceeds 2^64"]);
}

#[test]
pub(crate) fn size_2_pow_64_is_fine_for_a_container() {
    let text = "[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"2^64\"\n";
    load_str(text, FILE).expect("2^64 is a valid size");
}

#[test]
pub(crate) fn negative_size() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = -1 {MARK}\n");
    board_error(&text, &["size", "negative", "-1"]);
}

#[test]
pub(crate) fn negative_size_as_string() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = \"-4K\" {MARK}\n");
    board_error(&text, &["size", "not a number"]);
}

#[test]
pub(crate) fn size_that_is_not_a_number() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = \"lots\" {MARK}\n");
    board_error(&text, &["size", "`lots` is not a number"]);
}

#[test]
pub(crate) fn negative_priority_is_fine() {
    let text = format!(
        "[[region]]\nname = \"s\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [{{ region = \"a\", priority = -5 }}]\n{RAM_A}"
    );
    load_str(&text, FILE).expect("negative priorities are allowed");
}

#[test]
pub(crate) fn address_plus_size_overflows_2_pow_64() {
    let text = format!(
        r#"[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [
  {{ region = "a", addr = "0xffff_ffff_ffff_f800" }}, {MARK}
]
{RAM_A}"#
    );
    board_error(&text, &["`a`", "0xfffffffffffff800", "overflows 2^64"]);
}

#[test]
pub(crate) fn address_plus_size_reaching_exactly_2_pow_64_is_fine() {
    let text = format!(
        "[[region]]\nname = \"s\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [{{ region = \"a\", addr = \"0xffff_ffff_ffff_f000\" }}]\n{RAM_A}"
    );
    load_str(&text, FILE).expect("the last page is addressable");
}

#[test]
pub(crate) fn subregion_address_of_2_pow_64() {
    let text = format!(
        r#"[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [
  {{ region = "a", addr = "2^64" }}, {MARK}
]
{RAM_A}"#
    );
    board_error(&text, &["addr", "overflows 2^64"]);
}

#[test]
pub(crate) fn unmapped_region_address_over_2_pow_64() {
    let text =
        format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\naddr = \"0x1_0000_0000_0000_0000\" {MARK}\n");
    board_error(&text, &["addr", "overflows 2^64"]);
}

#[test]
pub(crate) fn alias_offset_over_2_pow_64() {
    let text = format!(
        "{RAM_A}\n[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"a\"\noffset = \"0x1_0000_0000_0000_0000\" {MARK}\nsize = 4096\n"
    );
    board_error(&text, &["alias offset", "overflows 2^64"]);
}
