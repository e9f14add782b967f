//! Board files: every kind of mistake is reported as `LoadError::Board` at the offending line
//! with a message that says what is wrong; random garbage never panics; the shipped boards
//! reproduce QEMU's `info mtree` captures; `board::export` round-trips.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use addrspace::board::{self, load_str};
use addrspace::mtree::{self, canonical, FlatOptions, TreeOptions};
use addrspace::{LoadError, Machine};
use proptest::prelude::*;

/// The name the test boards are loaded under.
const FILE: &str = "bad.toml";

/// Marks the line an error must point at.
const MARK: &str = "# <-- here";

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../")).join(rel)
}

fn read(rel: &str) -> String {
    let p = repo(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Loads `text`, expecting a `LoadError::Board` at `line`; checks the Display form and that the
/// message contains every one of `needles`. Returns the message.
fn board_error_at(text: &str, line: usize, needles: &[&str]) -> String {
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
fn board_error(text: &str, needles: &[&str]) -> String {
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
const RAM_A: &str = r#"
[[region]]
name = "a"
type = "ram"
size = 4096
"#;

// ---------------------------------------------------------------------------------------
// TOML-level mistakes (reported by the parser, mapped to file:line:column).

#[test]
fn toml_syntax_error_unterminated_string() {
    let text = "[[region]]\nname = \"a\ntype = \"ram\"\nsize = 4096\n";
    board_error_at(text, 2, &["string"]);
}

#[test]
fn toml_syntax_error_bad_table_header() {
    let text = format!("{RAM_A}\n[[region {MARK}\n");
    board_error(&text, &["table header"]);
}

#[test]
fn toml_syntax_error_missing_value() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = {MARK}\n");
    board_error(&text, &[]);
}

#[test]
fn unknown_key_in_region() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\nbogus = 1 {MARK}\n");
    let msg = board_error(&text, &["unknown field `bogus`"]);
    // The message lists what is allowed.
    assert!(msg.contains("`subregions`"), "{msg}");
}

#[test]
fn unknown_key_in_subregion_entry() {
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
fn unknown_key_at_top_level() {
    let text = format!("description = \"x\"\nfoo = 1 {MARK}\n{RAM_A}");
    board_error(&text, &["unknown field `foo`"]);
}

#[test]
fn unknown_key_in_address_space() {
    let text = format!("{RAM_A}\n[[address-space]]\nname = \"m\"\nroot = \"a\"\nextra = 1 {MARK}\n");
    board_error(&text, &["unknown field `extra`"]);
}

#[test]
fn unknown_region_type() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"rma\" {MARK}\nsize = 4096\n");
    let msg = board_error(&text, &["unknown variant `rma`"]);
    assert!(msg.contains("`ram`"), "{msg}");
}

#[test]
fn missing_required_field_points_at_its_table() {
    let text = format!("{RAM_A}\n[[region]] {MARK}\ntype = \"ram\"\nsize = 4096\n");
    board_error(&text, &["missing field `name`"]);
}

#[test]
fn wrong_value_type_for_name() {
    let text = format!("[[region]]\nname = 1 {MARK}\ntype = \"ram\"\nsize = 4096\n");
    board_error(&text, &["invalid type", "string"]);
}

#[test]
fn wrong_value_type_for_flag() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\nenabled = \"yes\" {MARK}\n");
    board_error(&text, &["invalid type", "boolean"]);
}

#[test]
fn wrong_value_type_for_priority() {
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
fn wrong_value_type_for_region_list() {
    let text = format!("region = 5 {MARK}\n");
    board_error(&text, &["invalid type", "sequence"]);
}

#[test]
fn wrong_value_type_for_size_is_reported_at_its_line() {
    for value in ["true", "1.5", "[1]", "{ a = 1 }"] {
        let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = {value} {MARK}\n");
        board_error(&text, &[]);
    }
}

/// The message for a size of the wrong type is serde's "data did not match any variant of
/// untagged enum Number", which says neither which key is wrong nor what it should be.
#[test]
fn wrong_value_type_for_size_says_what_is_expected() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = true {MARK}\n");
    let msg = board_error(&text, &[]);
    assert!(!msg.contains("untagged enum"), "internal serde wording leaks: {msg}");
    assert!(
        msg.contains("integer") || msg.contains("string"),
        "should say what is expected: {msg}"
    );
}

#[test]
fn integer_too_large_for_toml() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = 99999999999999999999 {MARK}\n");
    board_error(&text, &["too large"]);
}

// ---------------------------------------------------------------------------------------
// Numbers.

#[test]
fn size_2_pow_65() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"2^65\" {MARK}\n");
    board_error(&text, &["2^65", "exceeds 2^64"]);
}

#[test]
fn size_2_pow_64_plus_one_in_hex() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"0x1_0000_0000_0000_0001\" {MARK}\n");
    board_error(&text, &["size", "0x10000000000000001", "exceeds 2^64"]);
}

#[test]
fn size_17_exbibytes() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"17E\" {MARK}\n");
    board_error(&text, &["size", "exceeds 2^64"]);
}

#[test]
fn size_2_pow_64_is_fine_for_a_container() {
    let text = "[[region]]\nname = \"a\"\ntype = \"container\"\nsize = \"2^64\"\n";
    load_str(text, FILE).expect("2^64 is a valid size");
}

#[test]
fn negative_size() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = -1 {MARK}\n");
    board_error(&text, &["size", "negative", "-1"]);
}

#[test]
fn negative_size_as_string() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = \"-4K\" {MARK}\n");
    board_error(&text, &["size", "not a number"]);
}

#[test]
fn size_that_is_not_a_number() {
    let text = format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = \"lots\" {MARK}\n");
    board_error(&text, &["size", "`lots` is not a number"]);
}

#[test]
fn negative_priority_is_fine() {
    let text = format!(
        "[[region]]\nname = \"s\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [{{ region = \"a\", priority = -5 }}]\n{RAM_A}"
    );
    load_str(&text, FILE).expect("negative priorities are allowed");
}

#[test]
fn address_plus_size_overflows_2_pow_64() {
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
fn address_plus_size_reaching_exactly_2_pow_64_is_fine() {
    let text = format!(
        "[[region]]\nname = \"s\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [{{ region = \"a\", addr = \"0xffff_ffff_ffff_f000\" }}]\n{RAM_A}"
    );
    load_str(&text, FILE).expect("the last page is addressable");
}

#[test]
fn subregion_address_of_2_pow_64() {
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
fn unmapped_region_address_over_2_pow_64() {
    let text =
        format!("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\naddr = \"0x1_0000_0000_0000_0000\" {MARK}\n");
    board_error(&text, &["addr", "overflows 2^64"]);
}

#[test]
fn alias_offset_over_2_pow_64() {
    let text = format!(
        "{RAM_A}\n[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"a\"\noffset = \"0x1_0000_0000_0000_0000\" {MARK}\nsize = 4096\n"
    );
    board_error(&text, &["alias offset", "overflows 2^64"]);
}

// ---------------------------------------------------------------------------------------
// References between regions.

#[test]
fn unknown_alias_target() {
    let text = format!("[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"nope\" {MARK}\nsize = 4096\n");
    board_error(&text, &["unknown alias target `nope`"]);
}

#[test]
fn alias_without_target() {
    let text = format!("[[region]]\nname = \"w\" {MARK}\ntype = \"alias\"\nsize = 4096\n");
    board_error(&text, &["alias needs a `target`"]);
}

#[test]
fn alias_cycle_of_two() {
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
fn alias_to_itself() {
    let text = format!("{RAM_A}\n[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"w\" {MARK}\nsize = 4096\n");
    board_error(&text, &["alias cycle", "`w`"]);
}

#[test]
fn alias_chain_into_a_cycle() {
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
fn region_placed_in_two_containers() {
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
fn region_placed_twice_in_one_container() {
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
fn subregion_refers_to_unknown_region() {
    let text = format!(
        "[[region]]\nname = \"s\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [\n  {{ region = \"nope\" }}, {MARK}\n]\n"
    );
    board_error(&text, &["unknown region `nope`"]);
}

#[test]
fn duplicate_region_names() {
    let text = format!("{RAM_A}\n[[region]]\nname = \"a\" {MARK}\ntype = \"rom\"\nsize = 4096\n");
    board_error(&text, &["duplicate region id `a`", "`id`"]);
}

#[test]
fn duplicate_explicit_id() {
    let text = format!("{RAM_A}\n[[region]]\nid = \"a\" {MARK}\nname = \"other\"\ntype = \"rom\"\nsize = 4096\n");
    board_error(&text, &["duplicate region id `a`"]);
}

#[test]
fn same_name_with_distinct_ids_is_fine() {
    let text = format!("{RAM_A}\n[[region]]\nid = \"a2\"\nname = \"a\"\ntype = \"rom\"\nsize = 4096\n");
    let m = load_str(&text, FILE).expect("distinct ids");
    assert!(m.region("a").is_some() && m.region("a2").is_some());
}

#[test]
fn target_on_a_non_alias() {
    let text = format!("{RAM_A}\n[[region]]\nname = \"r\"\ntype = \"ram\"\ntarget = \"a\" {MARK}\nsize = 4096\n");
    board_error(&text, &["`target` is only for aliases"]);
}

#[test]
fn offset_on_a_non_alias() {
    let text = format!("[[region]]\nname = \"r\"\ntype = \"ram\"\nsize = 4096\noffset = 0 {MARK}\n");
    board_error(&text, &["`offset` is only for aliases"]);
}

#[test]
fn ops_on_ram() {
    let text = format!("[[region]]\nname = \"r\" {MARK}\ntype = \"ram\"\nsize = 4096\nops = \"open-bus\"\n");
    board_error(&text, &["`ops`", "`io`"]);
}

#[test]
fn alias_with_subregions() {
    let text = format!(
        "{RAM_A}\n[[region]]\nname = \"w\"\ntype = \"alias\"\ntarget = \"a\"\nsize = 4096\nsubregions = [\n  {{ region = \"a\" }}, {MARK}\n]\n"
    );
    board_error(&text, &["alias cannot contain subregions"]);
}

#[test]
fn container_cycle_of_two() {
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
fn container_containing_itself() {
    let text = format!(
        "[[region]]\nname = \"a\"\ntype = \"container\"\nsize = 4096\nsubregions = [\n  {{ region = \"a\" }}, {MARK}\n]\n"
    );
    board_error(&text, &["cycle", "`a`"]);
}

#[test]
fn container_cycle_through_an_alias() {
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
fn address_space_root_that_does_not_exist() {
    let text = format!("{RAM_A}\n[[address-space]]\nname = \"memory\"\nroot = \"nope\" {MARK}\n");
    board_error(&text, &["unknown address-space root `nope`"]);
}

#[test]
fn ram_too_big_for_the_host_is_an_error_not_a_panic() {
    let text = format!("[[region]]\nname = \"huge\" {MARK}\ntype = \"ram\"\nsize = \"2^64\"\n");
    board_error(&text, &["`huge`", "host memory"]);
}

// ---------------------------------------------------------------------------------------
// Line counting.

#[test]
fn lines_are_counted_with_crlf_line_ends() {
    let text = format!("[[region]]\r\nname = \"a\"\r\ntype = \"ram\"\r\nsize = 4096\r\nbogus = 1 {MARK}\r\n");
    board_error(&text, &["unknown field `bogus`"]);
}

#[test]
fn lines_are_counted_after_non_ascii_text() {
    let text = format!("# réglages — ça va\n[[region]]\nname = \"é\"\ntype = \"ram\"\nsize = \"ü\" {MARK}\n");
    board_error(&text, &["not a number"]);
}

#[test]
fn first_error_wins_and_names_its_own_line() {
    let text = format!(
        "[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = -1 {MARK}\n\n[[region]]\nname = \"b\"\ntype = \"ram\"\nsize = -2\n"
    );
    board_error(&text, &["-1"]);
}

#[test]
fn load_file_names_the_path_in_errors() {
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

// ---------------------------------------------------------------------------------------
// Shipped boards against QEMU captures, and export round trips.

fn tree_d(m: &Machine) -> String {
    mtree::print_tree(&m.memory, &TreeOptions { disabled: true })
}

fn flat(m: &Machine) -> String {
    mtree::print_flat(&m.memory, &FlatOptions::default())
}

fn check_board_matches_qemu(board_rel: &str, fixture: &str) {
    let m = board::load_file(&repo(board_rel)).unwrap_or_else(|e| panic!("{e}"));
    let want_tree = read(&format!("tests/fixtures/qemu/{fixture}/mtree-D.txt"));
    let want_flat = read(&format!("tests/fixtures/qemu/{fixture}/mtree-f.txt"));
    assert_eq!(
        canonical(&tree_d(&m)),
        canonical(&want_tree),
        "{board_rel}: info mtree -D differs"
    );
    assert_eq!(
        canonical(&flat(&m)),
        canonical(&want_flat),
        "{board_rel}: info mtree -f differs"
    );
}

fn check_export_round_trip(m: &Machine, what: &str) {
    let exported = board::export(m);
    let again = load_str(&exported, "exported.toml").unwrap_or_else(|e| panic!("{what}: export does not load: {e}"));
    assert_eq!(tree_d(&again), tree_d(m), "{what}: tree after export");
    assert_eq!(flat(&again), flat(m), "{what}: flat views after export");
    assert_eq!(
        mtree::print_tree(&again.memory, &TreeOptions::default()),
        mtree::print_tree(&m.memory, &TreeOptions::default()),
        "{what}: tree without -D after export"
    );
    // Exporting is a fixed point after one round.
    assert_eq!(board::export(&again), exported, "{what}: export of the reloaded board");
}

#[test]
fn pc_board_matches_qemu() {
    check_board_matches_qemu("boards/pc.toml", "x86-pc-512M");
}

#[test]
fn virt_board_matches_qemu() {
    check_board_matches_qemu("boards/virt.toml", "arm-virt-a57-smp2-1G");
}

#[test]
fn pc_board_export_round_trips() {
    let m = board::load_file(&repo("boards/pc.toml")).unwrap();
    check_export_round_trip(&m, "pc");
}

#[test]
fn virt_board_export_round_trips() {
    let m = board::load_file(&repo("boards/virt.toml")).unwrap();
    check_export_round_trip(&m, "virt");
}

#[test]
fn small_board_with_every_feature_round_trips() {
    let text = r#"
[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  { region = "ram-lo", addr = 0 },
  { region = "flash", addr = "0xfff0_0000", priority = 2 },
  { region = "mmio", addr = "0xe000_0000", priority = -1 },
  { region = "hidden", addr = "0x1000_0000" },
]

[[region]]
name = "ram"
type = "ram"
size = "256M"
nonvolatile = true

[[region]]
name = "ram-lo"
type = "alias"
target = "ram"
offset = "0x1000"
size = "0x0fff_f000"
readonly = true

[[region]]
name = "flash"
type = "rom-device"
size = "1M"
romd = false

[[region]]
name = "mmio"
type = "io"
ops = "open-bus"
size = "0x1000_0000"
unmergeable = true
subregions = [{ region = "dev", addr = "0x100" }]

[[region]]
id = "dev"
name = "mmio"
type = "ram-device"
size = "0x100"

[[region]]
name = "hidden"
type = "reservation"
size = "4K"
enabled = false

[[region]]
name = "spare"
type = "container"
size = "64K"
addr = "0x4000"

[[address-space]]
name = "memory"
root = "system"

[[address-space]]
name = "cpu"
root = "system"

[[address-space]]
name = "window"
root = "ram-lo"
"#;
    let m = load_str(text, "all.toml").unwrap_or_else(|e| panic!("{e}"));
    check_export_round_trip(&m, "every feature");
}

/// `export` names the second region called `x` `x#2`, which collides with a region whose
/// own name is `x#2`; the exported board then fails to load (duplicate region id).
#[test]
fn export_of_names_containing_hash_round_trips() {
    let text = r##"
[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [
  { region = "x", addr = 0 },
  { region = "x-two", addr = "0x1000" },
  { region = "x#2", addr = "0x2000" },
]

[[region]]
name = "x"
type = "ram"
size = "4K"

[[region]]
id = "x-two"
name = "x"
type = "ram"
size = "4K"

[[region]]
name = "x#2"
type = "ram"
size = "4K"

[[address-space]]
name = "m"
root = "s"
"##;
    let m = load_str(text, "hash.toml").unwrap();
    check_export_round_trip(&m, "names with #");
}

/// `export` writes a size that is not a multiple of 1 KiB as a bare TOML integer, but TOML
/// integers stop at 2^63 - 1: `size = 9223372036854775809` does not load back.
#[test]
fn export_of_sizes_over_2_pow_63_round_trips() {
    let text = r#"
[[region]]
name = "s"
type = "container"
size = "2^64"
subregions = [{ region = "odd", addr = 0 }]

[[region]]
name = "odd"
type = "io"
size = "0x8000_0000_0000_0001"

[[address-space]]
name = "m"
root = "s"
"#;
    let m = load_str(text, "odd.toml").unwrap();
    check_export_round_trip(&m, "odd size");
}

/// `export` never writes `ops`, so an `io` region with `ops = "open-bus"` comes back as
/// `unassigned`: the printed trees match but guest reads now fail instead of returning
/// all ones.
#[test]
fn export_keeps_device_behaviour() {
    let text = r#"
[[region]]
name = "bus"
type = "io"
ops = "open-bus"
size = "64K"

[[address-space]]
name = "io"
root = "bus"
"#;
    let read_at_0 = |m: &Machine| {
        let (range, off) = m.address_spaces[0].lookup(addrspace::GuestAddr(0)).expect("mapped");
        let addrspace::Backend::Io(ops) = range.leaf().backend() else {
            panic!("not MMIO")
        };
        let (v, res) = ops.read(off.0, 4, addrspace::MemTxAttrs::default());
        (v, res.bits())
    };
    let m = load_str(text, "bus.toml").unwrap();
    let again = load_str(&board::export(&m), "exported.toml").unwrap();
    assert_eq!(read_at_0(&again), read_at_0(&m), "exported:\n{}", board::export(&m));
}

// ---------------------------------------------------------------------------------------
// Robustness: nothing a user can type makes loading panic.

const SMALL_BOARD: &str = r#"description = "tiny"

[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  { region = "ram-lo", addr = 0 },
  { region = "rom", addr = "0xffff_0000", priority = 1 },
  { region = "io", addr = "0xe000_0000", priority = -1 },
]

[[region]]
name = "ram"
type = "ram"
size = "64K"

[[region]]
name = "ram-lo"
type = "alias"
target = "ram"
offset = "0x1000"
size = "0xf000"

[[region]]
name = "rom"
type = "rom"
size = "4K"

[[region]]
name = "io"
type = "io"
ops = "open-bus"
size = "1M"

[[address-space]]
name = "memory"
root = "system"
"#;

/// Loads `text`; if it loads, prints and exports it too. Fails the test on any panic.
fn never_panics(text: &str) -> Result<(), TestCaseError> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(m) = load_str(text, "fuzz.toml") {
            let _ = tree_d(&m);
            let _ = flat(&m);
            let _ = board::export(&m);
        }
    }));
    prop_assert!(outcome.is_ok(), "panicked on input:\n{text:?}");
    Ok(())
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
    InsertStr(usize, String),
}

/// Bytes that matter to TOML and to the number parser.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        prop::sample::select(b"[]{}=\",#\n\r'^_-.0123456789xXkKmMgGeE \t\\".to_vec()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), interesting_byte()).prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), interesting_byte()).prop_map(|(p, b)| Edit::Replace(p, b)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "-1",
                "2^64",
                "2^65",
                "0xffff_ffff_ffff_ffff",
                "99999999999999999999",
                "\"ram\"",
                "\"system\"",
                "é",
                "\u{1F600}",
                "\n[[region]]\n",
                "\n[[address-space]]\nname = \"x\"\nroot = \"ram-lo\"\n",
                "target = \"ram-lo\"\n",
                "{ region = \"system\" },",
                "{ region = \"ram\", addr = \"0xffff_ffff_ffff_ffff\" },",
            ])
            .prop_map(str::to_string),
        )
            .prop_map(|(p, s)| Edit::InsertStr(p, s)),
    ]
}

fn apply(base: &str, edits: &[Edit]) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for e in edits {
        let n = bytes.len();
        match e {
            Edit::Delete(p) if n > 0 => {
                bytes.remove(p % n);
            }
            Edit::Delete(_) => {}
            Edit::Insert(p, b) => bytes.insert(p % (n + 1), *b),
            Edit::Replace(p, b) if n > 0 => bytes[p % n] = *b,
            Edit::Replace(..) => {}
            Edit::InsertStr(p, s) => {
                let at = p % (n + 1);
                bytes.splice(at..at, s.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_small_board_loads(_x in 0..1u8) {
        let m = load_str(SMALL_BOARD, "small.toml").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(m.address_spaces.len(), 1);
    }

    #[test]
    fn mutated_boards_never_panic(edits in prop::collection::vec(edit(), 1..8)) {
        never_panics(&apply(SMALL_BOARD, &edits))?;
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        never_panics(&text)?;
    }

    #[test]
    fn toml_like_garbage_never_panics(text in "[\\[\\]{}=\",#\n a-z0-9^_x.-]{0,300}") {
        never_panics(&text)?;
    }

    /// Random numbers in every numeric slot: reaches the semantic checks and the builder.
    #[test]
    fn random_numbers_never_panic(
        vals in prop::collection::vec(
            prop_oneof![
                Just("0".to_string()),
                Just("1".to_string()),
                Just("-1".to_string()),
                Just("\"2^64\"".to_string()),
                Just("\"2^63\"".to_string()),
                Just("\"0xffff_ffff_ffff_ffff\"".to_string()),
                Just("\"0xffff_ffff_ffff_f000\"".to_string()),
                Just("\"16E\"".to_string()),
                (0u64..0x2_0000).prop_map(|v| v.to_string()),
                any::<u64>().prop_map(|v| format!("\"{v:#x}\"")),
            ],
            8,
        ),
        prios in prop::collection::vec(any::<i32>(), 3),
    ) {
        // RAM and ROM stay small (they reserve host memory); everything else is free.
        let text = format!(
            r#"
[[region]]
name = "system"
type = "container"
size = {}
subregions = [
  {{ region = "ram-lo", addr = {}, priority = {} }},
  {{ region = "rom", addr = {}, priority = {} }},
  {{ region = "io", addr = {}, priority = {} }},
]

[[region]]
name = "ram"
type = "ram"
size = "64K"

[[region]]
name = "ram-lo"
type = "alias"
target = "ram"
offset = {}
size = {}

[[region]]
name = "rom"
type = "rom"
size = "4K"

[[region]]
name = "io"
type = "io"
size = {}
addr = {}

[[address-space]]
name = "memory"
root = "system"

[[address-space]]
name = "low"
root = "ram-lo"
"#,
            vals[0], vals[1], prios[0], vals[2], prios[1], vals[3], prios[2], vals[4], vals[5], vals[6], vals[7]
        );
        never_panics(&text)?;
    }
}
