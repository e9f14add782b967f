//! Golden tests against real QEMU 10.0.2 captures (tests/fixtures/qemu): importing each
//! machine's `info mtree -D` dump and printing it reproduces QEMU's `info mtree`,
//! `info mtree -D` and `info mtree -f` output exactly, compared in canonical block order
//! (QEMU prints blocks in hash-table order, which changes from run to run).

use std::path::PathBuf;

use addrspace::mtree::{self, canonical, FlatOptions, Hints, TreeOptions};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qemu")
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn machines() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    assert!(v.len() >= 4, "the four QEMU captures are present");
    v
}

fn import(machine: &str) -> addrspace::Machine {
    let dir = fixtures().join(machine);
    let hints = Hints::from_toml(&read(dir.join("hints.toml")), "hints.toml").unwrap();
    mtree::import_dump(&read(dir.join("mtree-D.txt")), "mtree-D.txt", &hints).unwrap()
}

fn assert_same(machine: &str, file: &str, ours: &str) {
    let theirs = read(fixtures().join(machine).join(file));
    let (a, b) = (canonical(ours), canonical(&theirs));
    if a != b {
        let first = a.lines().zip(b.lines()).position(|(x, y)| x != y).unwrap_or(0);
        panic!(
            "{machine}/{file} differs at canonical line {}:\n  ours:   {:?}\n  qemu:   {:?}",
            first + 1,
            a.lines().nth(first),
            b.lines().nth(first)
        );
    }
}

#[test]
fn info_mtree_matches_qemu() {
    for m in machines() {
        let mach = import(&m);
        assert_same(
            &m,
            "mtree.txt",
            &mtree::print_tree(&mach.memory, &TreeOptions::default()),
        );
    }
}

#[test]
fn info_mtree_disabled_matches_qemu() {
    for m in machines() {
        let mach = import(&m);
        assert_same(
            &m,
            "mtree-D.txt",
            &mtree::print_tree(&mach.memory, &TreeOptions::DISABLED),
        );
    }
}

#[test]
fn info_mtree_flat_matches_qemu() {
    for m in machines() {
        let mach = import(&m);
        let flat = mtree::print_flat(&mach.memory, &FlatOptions::default());
        assert_same(&m, "mtree-f.txt", &flat);
        // QEMU ignores -D in flat mode.
        assert_same(&m, "mtree-f-D.txt", &flat);
    }
}

#[test]
fn canonical_form_is_not_trivially_equal() {
    // Guard against a comparison that cannot fail: different machines must differ.
    let a = canonical(&read(fixtures().join("x86-pc-512M/mtree-f.txt")));
    let b = canonical(&read(fixtures().join("x86-pc-512M-after-bios/mtree-f.txt")));
    assert_ne!(a, b);
}

#[test]
fn sharing_follows_qemu() {
    // x86 pc: four bus masters share the empty view; memory and cpu-memory-0 share system;
    // the SMM space has its own view with identical content.
    let m = import("x86-pc-512M");
    let view = |n: &str| m.address_space(n).unwrap().view();
    assert!(std::sync::Arc::ptr_eq(&view("memory"), &view("cpu-memory-0")));
    assert!(std::sync::Arc::ptr_eq(&view("i440FX"), &view("PIIX4_PM")));
    assert!(view("i440FX").root().is_none());
    assert!(!std::sync::Arc::ptr_eq(&view("memory"), &view("cpu-smm-0")));
    assert_eq!(view("memory").ranges(), view("cpu-smm-0").ranges());
    assert_eq!(m.memory.stats().address_spaces, 8);
}

#[test]
fn import_errors_name_the_line() {
    let bad =
        "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    zzzz (prio 0, ram): x\n";
    let e = mtree::import_dump(bad, "dump.txt", &Hints::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.starts_with("dump.txt:3:"), "{e}");
    let alias = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    0000000000000000-0000000000000fff (prio 0, ram): alias a @nowhere 0000000000000000-0000000000000fff\n";
    let e = mtree::import_dump(alias, "d", &Hints::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("d:3:") && e.contains("nowhere"), "{e}");
    let flat = read(fixtures().join("x86-pc-512M/mtree-f.txt"));
    let e = mtree::import_dump(&flat, "f", &Hints::default())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("info mtree -D"), "{e}");
}

#[test]
fn readme_board_example_loads() {
    // The board file shown in the README must stay valid.
    let readme = read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md"));
    let section = readme
        .split("## Board files")
        .nth(1)
        .expect("README has a board section");
    let toml = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    let m = addrspace::board::load_str(toml, "README.md").unwrap();
    let view = m.address_space("memory").unwrap().view();
    let names: Vec<&str> = view.ranges().iter().map(|r| r.name()).collect();
    assert_eq!(names, ["pc.ram", "uart", "bios"]);
}
