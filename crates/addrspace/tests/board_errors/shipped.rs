//! The shipped boards against QEMU captures, and export round trips.

use super::*;

// Shipped boards against QEMU captures, and export round trips.

pub(crate) fn tree_d(m: &Machine) -> String {
    mtree::print_tree(&m.memory, &TreeOptions::DISABLED)
}

pub(crate) fn flat(m: &Machine) -> String {
    mtree::print_flat(&m.memory, &FlatOptions::default())
}

pub(crate) fn check_board_matches_qemu(board_rel: &str, fixture: &str) {
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

pub(crate) fn check_export_round_trip(m: &Machine, what: &str) {
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
pub(crate) fn pc_board_matches_qemu() {
    check_board_matches_qemu("boards/pc.toml", "x86-pc-512M");
}

#[test]
pub(crate) fn virt_board_matches_qemu() {
    check_board_matches_qemu("boards/virt.toml", "arm-virt-a57-smp2-1G");
}

#[test]
pub(crate) fn q35_board_matches_qemu() {
    check_board_matches_qemu("boards/q35.toml", "x86-q35-1G");
}

#[test]
pub(crate) fn q35_board_export_round_trips() {
    let m = board::load_file(&repo("boards/q35.toml")).unwrap();
    check_export_round_trip(&m, "q35");
}

#[test]
pub(crate) fn pc_board_export_round_trips() {
    let m = board::load_file(&repo("boards/pc.toml")).unwrap();
    check_export_round_trip(&m, "pc");
}

#[test]
pub(crate) fn virt_board_export_round_trips() {
    let m = board::load_file(&repo("boards/virt.toml")).unwrap();
    check_export_round_trip(&m, "virt");
}

#[test]
pub(crate) fn small_board_with_every_feature_round_trips() {
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
pub(crate) fn export_of_names_containing_hash_round_trips() {
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
pub(crate) fn export_of_sizes_over_2_pow_63_round_trips() {
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
pub(crate) fn export_keeps_device_behaviour() {
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
