//! Numbers survive `addrspace board`: what `board --from-qemu` writes (hex addresses and
//! sizes such as `"0xb"` and `"0xc35b"`, whose last digit is also a byte suffix letter)
//! loads back with the same values.

mod common;

use common::*;

/// A dump whose addresses and sizes end in hex digits that are also suffix letters.
const DUMP: &str = "\
address-space: memory
  0000000000000000-ffffffffffffffff (prio 0, i/o): system
    000000000000000b-000000000000c365 (prio 1, ram): alias tiny @ram 0000000000000000-000000000000c35a
    00000000000000ab-00000000000000ab (prio 2, i/o): dev
    0000000000100000-00000000001fffff (prio 0, ram): ram

";

const HINTS: &str = "mmio_containers = []\npure_containers = []\nreadonly = []\nno_disabled_regions = true\n";

#[test]
fn hex_addresses_and_sizes_load_back() {
    let dump = tempfile_with(DUMP);
    let hints = tempfile_with(HINTS);
    let (dump, hints) = (dump.path().to_str().unwrap(), hints.path().to_str().unwrap());
    let exported = run_ok(&["board", "--from-qemu", dump, "--hints", hints]);
    for written in ["addr = \"0xb\"", "size = \"0xc35b\"", "addr = \"0xab\""] {
        assert!(exported.contains(written), "expected {written} in:\n{exported}");
    }
    let board = tempfile_with(&exported);
    let board = board.path().to_str().unwrap();
    for flags in [&[][..], &["-D"], &["-f"]] {
        let mut from_board = vec!["mtree", board];
        from_board.extend_from_slice(flags);
        let mut from_dump = vec!["mtree", "--from-qemu", dump, "--hints", hints];
        from_dump.extend_from_slice(flags);
        assert_eq!(run_ok(&from_board), run_ok(&from_dump), "{flags:?}");
    }
    let tree = run_ok(&["mtree", board]);
    assert!(
        tree.contains(
            "000000000000000b-000000000000c365 (prio 1, ram): alias tiny @ram 0000000000000000-000000000000c35a"
        ),
        "{tree}"
    );
    assert_eq!(run_ok(&["board", board]), exported, "export is a fixed point");
}
