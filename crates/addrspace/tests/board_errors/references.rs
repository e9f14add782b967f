//! References between regions: alias targets, cycles, placements, names and ids.

use super::*;

// References between regions.

#[test]
pub(crate) fn unknown_alias_target() {
    let text = format!("[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"nope\" {MARK}\nsize = 4096\n");
    board_error(&text, &["unknown alias target `nope`"]);
}

#[test]
pub(crate) fn alias_without_target() {
    let text = format!("[[region]]\nname = \"w\" {MARK}\ntype = \"alias\"\nsize = 4096\n");
    board_error(&text, &["alias needs a `target`"]);
}

#[test]
pub(crate) fn alias_cycle_of_two() {
    let text = format!(
        r#"[[region]]
name = "a"
type = "alias"
target = "b" {MARK}
size = 4096

[[region]]
name = "b"
type = "alias"
target = "a"
size = 4096
"#
    );
    board_error(&text, &["alias cycle", "`a`"]);
}

#[test]
pub(crate) fn alias_to_itself() {
    let text = format!("{RAM_A}\n[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"w\" {MARK}\nsize = 4096\n");
    board_error(&text, &["alias cycle", "`w`"]);
}

#[test]
pub(crate) fn alias_chain_into_a_cycle() {
    // `x` is not itself on the cycle but leads into it: still an error, still a line.
    let text = format!(
        r#"[[region]]
name = "x"
type = "alias"
target = "a" {MARK}
size = 4096

[[region]]
name = "a"
type = "alias"
target = "b"
size = 4096

[[region]]
name = "b"
type = "alias"
target = "a"
size = 4096
"#
    );
    board_error(&text, &["alias cycle"]);
}

#[test]
pub(crate) fn region_placed_in_two_containers() {
    let text = format!(
        r#"[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [{{ region = "a" }}]

[[region]]
name = "t"
type = "container"
size = "2^64"
subregions = [
  {{ region = "a", addr = "0x1000" }}, {MARK}
]
{RAM_A}"#
    );
    board_error(&text, &["`a`", "two containers", "`s`", "`t`", "alias"]);
}

#[test]
pub(crate) fn region_placed_twice_in_one_container() {
    let text = format!(
        r#"[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [
  {{ region = "a" }},
  {{ region = "a", addr = "0x1000" }}, {MARK}
]
{RAM_A}"#
    );
    board_error(&text, &["`a`"]);
}

#[test]
pub(crate) fn subregion_refers_to_unknown_region() {
    let text = format!(
        "[[region]]\nname = \"s\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [\n  {{ region = \"nope\" }}, {MARK}\n]\n"
    );
    board_error(&text, &["unknown region `nope`"]);
}

#[test]
pub(crate) fn duplicate_region_names() {
    let text = format!("{RAM_A}\n[[region]]\nname = \"a\" {MARK}\ntype = \"rom\"\nsize = 4096\n");
    board_error(&text, &["duplicate region id `a`", "`id`"]);
}

#[test]
pub(crate) fn duplicate_explicit_id() {
    let text = format!("{RAM_A}\n[[region]]\nid = \"a\" {MARK}\nname = \"other\"\ntype = \"rom\"\nsize = 4096\n");
    board_error(&text, &["duplicate region id `a`"]);
}

#[test]
pub(crate) fn same_name_with_distinct_ids_is_fine() {
    let text = format!("{RAM_A}\n[[region]]\nid = \"a2\"\nname = \"a\"\ntype = \"rom\"\nsize = 4096\n");
    let m = load_str(&text, FILE).expect("distinct ids");
    assert!(m.region("a").is_some() && m.region("a2").is_some());
}

#[test]
pub(crate) fn target_on_a_non_alias() {
    let text = format!("{RAM_A}\n[[region]]\nname = \"r\"\ntype = \"ram\"\ntarget = \"a\" {MARK}\nsize = 4096\n");
    board_error(&text, &["`target` is only for aliases"]);
}

#[test]
pub(crate) fn offset_on_a_non_alias() {
    let text = format!("[[region]]\nname = \"r\"\ntype = \"ram\"\nsize = 4096\noffset = 0 {MARK}\n");
    board_error(&text, &["`offset` is only for aliases"]);
}

#[test]
pub(crate) fn ops_on_ram() {
    let text = format!("[[region]]\nname = \"r\" {MARK}\ntype = \"ram\"\nsize = 4096\nops = \"open-bus\"\n");
    board_error(&text, &["`ops`", "`io`"]);
}

#[test]
pub(crate) fn alias_with_subregions() {
    let text = format!(
        "{RAM_A}\n[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"a\"\nsize = 4096\nsubregions = [\n  {{ region = \"a\" }}, {MARK}\n]\n"
    );
    board_error(&text, &["alias cannot contain subregions"]);
}

#[test]
pub(crate) fn container_cycle_of_two() {
    let text = format!(
        r#"[[region]]
name = "a"
type = "container"
size = 4096
subregions = [{{ region = "b" }}]

[[region]]
name = "b"
type = "container"
size = 4096
subregions = [
  {{ region = "a" }}, {MARK}
]
"#
    );
    board_error(&text, &["cycle", "`a`", "`b`"]);
}

#[test]
pub(crate) fn container_containing_itself() {
    let text = format!(
        "[[region]]\nname = \"a\"\ntype = \"container\"\nsize = 4096\nsubregions = [\n  {{ region = \"a\" }}, {MARK}\n]\n"
    );
    board_error(&text, &["cycle", "`a`"]);
}

#[test]
pub(crate) fn container_cycle_through_an_alias() {
    let text = format!(
        r#"[[region]]
name = "a"
type = "container"
size = 4096
subregions = [
  {{ region = "w" }}, {MARK}
]

[[region]]
name = "w"
type = "alias"
target = "a"
size = 4096
"#
    );
    board_error(&text, &["cycle"]);
}

#[test]
pub(crate) fn address_space_root_that_does_not_exist() {
    let text = format!("{RAM_A}\n[[address-space]]\nname = \"memory\"\nroot = \"nope\" {MARK}\n");
    board_error(&text, &["unknown address-space root `nope`"]);
}

#[test]
pub(crate) fn ram_too_big_for_the_host_is_an_error_not_a_panic() {
    let text = format!("[[region]]\nname = \"huge\" {MARK}\ntype = \"ram\"\nsize = \"2^64\"\n");
    board_error(&text, &["`huge`", "host memory"]);
}
