//! End-to-end tests of `addrspace lookup` on the QEMU captures and a board file. The
//! expected regions and paths are read off the dumps by hand (and agree with QEMU's own
//! `info mtree -f` captures), not copied from our output.

mod common;

use common::*;
use serde_json::Value;

/// `lookup --json` of `source` at `addr` in `space`: the one answer.
fn answer(source: &str, addr: &str, space: &str) -> Value {
    let out = run(&["lookup", source, addr, "--space", space, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let all = v.as_array().expect("an array of answers");
    assert_eq!(all.len(), 1, "{v:#}");
    all[0].clone()
}

fn path_names(a: &Value) -> Vec<String> {
    a["path"]
        .as_array()
        .expect("path")
        .iter()
        .map(|h| h["region"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn before_the_bios_pam_shows_pci_and_its_rom() {
    // mtree-D: `pam-pci @pci` is the enabled one of the four PAM aliases at 0xc0000 (prio 1,
    // above `ram-below-4g`); `pci` holds `pc.rom` at 0xc0000.
    let dump = fixture("x86-pc-512M", "mtree-D.txt");
    let a = answer(&dump, "0xc0000", "memory");
    assert_eq!(path_names(&a), ["system", "pam-pci", "pci", "pc.rom"]);
    assert_eq!(a["path"][1]["alias"]["target"]["name"], "pci");
    assert_eq!(a["path"][1]["alias"]["offset"], "0xc0000");
    assert_eq!(a["range"]["region"]["name"], "pc.rom");
    assert_eq!(a["range"]["offset"], "0x0");
    assert_eq!(a["range"]["type"], "rom");
    // The same address in decimal.
    assert_eq!(answer(&dump, "786432", "memory"), a);
}

#[test]
fn a_hole_in_a_higher_priority_container_shows_what_lies_below() {
    // `smram-region @pci` (prio 1) covers 0xa0000, but `pci` has nothing there, so
    // `ram-below-4g` (prio 0) answers: QEMU's mtree-f says pc.ram at 0xa0000.
    let a = answer(&fixture("x86-pc-512M", "mtree-D.txt"), "0xa0000", "memory");
    assert_eq!(path_names(&a), ["system", "ram-below-4g", "pc.ram"]);
    assert_eq!(a["range"]["offset"], "0xa0000");
    assert_eq!(a["range"]["start"], "0x0");
    assert_eq!(a["range"]["last"], "0xbffff");
}

#[test]
fn after_the_bios_smram_and_pam_ram_answer() {
    let dump = fixture("x86-pc-512M-after-bios", "mtree-D.txt");
    // SMRAM is enabled: in cpu-smm-0, `smram @smram` (prio 1) leads to `smram-low @pc.ram`.
    let a = answer(&dump, "0xa0000", "cpu-smm-0");
    assert_eq!(path_names(&a), ["memory", "smram", "smram", "smram-low", "pc.ram"]);
    assert_eq!(a["range"]["offset"], "0xa0000");
    // `pam-rom @pc.ram` is enabled at 0xc0000-0xc3fff; `kvmvapic-rom` (prio 1000) covers
    // 0xc0000-0xc2fff above it.
    let a = answer(&dump, "0xc3000", "memory");
    assert_eq!(path_names(&a), ["system", "pam-rom", "pc.ram"]);
    assert_eq!(a["range"]["offset"], "0xc3000");
    let a = answer(&dump, "0xc2fff", "memory");
    assert_eq!(path_names(&a), ["system", "kvmvapic-rom", "pc.ram"]);
}

#[test]
fn same_named_regions_have_different_ids() {
    // arm virt: `virtio-mmio` regions every 0x200 bytes from 0xa000000.
    let dump = fixture("arm-virt-a57-smp2-1G", "mtree-D.txt");
    let a = answer(&dump, "0xa000000", "memory");
    let b = answer(&dump, "0xa000200", "memory");
    assert_eq!(a["range"]["region"]["name"], "virtio-mmio");
    assert_eq!(b["range"]["region"]["name"], "virtio-mmio");
    assert_ne!(a["range"]["region"]["id"], b["range"]["region"]["id"]);
}

#[test]
fn text_groups_spaces_and_says_unassigned() {
    let out = run(&["lookup", &fixture("x86-pc-512M", "mtree-D.txt"), "0xc0000"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    // `memory` and `cpu-memory-0` share their root and hence their answer.
    assert!(
        text.contains("memory, cpu-memory-0: 0x00000000000c0000 -> pc.rom @0000000000000000 (rom, prio 1) range 00000000000c0000-00000000000dffff"),
        "{text}"
    );
    assert!(text.contains("  via pam-pci (alias, prio 1, mapped at 00000000000c0000) @0000000000000000 -> alias of pci @00000000000c0000\n"), "{text}");
    // The I/O space is 64 KiB.
    assert!(
        text.lines()
            .any(|l| l.starts_with("I/O") && l.ends_with("-> unassigned")),
        "{text}"
    );
}

#[test]
fn board_files_work_too() {
    // boards/pc.toml maps `ram-below-4g` (an alias of `pc.ram`) at 0 in `system`.
    let a = answer("boards/pc.toml", "0x1000", "memory");
    assert_eq!(path_names(&a), ["system", "ram-below-4g", "pc.ram"]);
    assert_eq!(a["range"]["offset"], "0x1000");
    assert_eq!(a["range"]["kind"], "ram");
}

#[test]
fn bad_addresses_and_spaces_are_clear_errors() {
    let dump = fixture("x86-pc-512M", "mtree-D.txt");
    let err = run_err(&["lookup", &dump, "0xfoo"]);
    assert!(err.contains("`0xfoo` is not a number"), "{err}");
    let err = run_err(&["lookup", &dump, "0x10000000000000000"]);
    assert!(err.contains("larger than 0xffffffffffffffff"), "{err}");
    let err = run_err(&["lookup", &dump, "0", "--space", "mem"]);
    assert!(err.contains("no address space named \"mem\""), "{err}");
    assert!(err.contains("memory, ") && err.contains("I/O"), "{err}");
}
