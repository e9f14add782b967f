//! End-to-end tests of `addrspace diff` on the QEMU captures of a `pc` before and after its
//! BIOS ran, and on a board file. What must show is read off the two dumps (and QEMU's own
//! `info mtree -f` captures), not copied from our output.

mod common;

use common::*;
use serde_json::Value;

const HINTS: &str = "tests/fixtures/qemu/x86-pc-512M/hints.toml";

fn before() -> String {
    fixture("x86-pc-512M", "mtree-D.txt")
}

fn after() -> String {
    fixture("x86-pc-512M-after-bios", "mtree-D.txt")
}

/// Runs `addrspace diff ARGS`: exit status, stdout.
fn diff(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["diff"];
    all.extend_from_slice(args);
    let out = run(&all);
    (out.status.code(), String::from_utf8(out.stdout).expect("UTF-8"))
}

#[test]
fn the_bios_enables_pam_ram_and_rom_disables_pam_pci_and_opens_smram() {
    let (code, out) = diff(&[&before(), &after(), "--hints", HINTS, "--json"]);
    assert_eq!(code, Some(1), "they differ");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let changes = v["regions"].as_array().expect("regions");
    // (last path element without its `#i`, change) for every enable/disable.
    let toggles = |name: &str, what: &str| {
        changes
            .iter()
            .filter(|c| c["change"] == what)
            .filter(|c| {
                let last = c["path"].as_array().unwrap().last().unwrap().as_str().unwrap();
                last.split('#').next() == Some(name)
            })
            .count()
    };
    // Before: the 13 PAM segments (0xc0000-0xeffff by 16 KiB, 0xf0000-0xfffff) show
    // `pam-pci @pci`; after: `pam-rom` (11 segments) or `pam-ram` (0xe8000, 0xec000).
    assert_eq!(toggles("pam-pci", "disabled"), 13, "{out}");
    assert_eq!(toggles("pam-rom", "enabled"), 11, "{out}");
    assert_eq!(toggles("pam-ram", "enabled"), 2, "{out}");
    assert_eq!(
        toggles("pam-pci", "enabled") + toggles("pam-ram", "disabled"),
        0,
        "{out}"
    );
    // SMRAM: the `smram` container (an alias target, shown in cpu-smm-0) is enabled.
    assert!(
        changes
            .iter()
            .any(|c| c["path"] == serde_json::json!(["smram"]) && c["change"] == "enabled"),
        "{out}"
    );
    // In the I/O space, the BIOS maps the PM block at 0x600 and moves SMBus to 0x700.
    let moved = |name: &str, from: &str, to: &str| {
        changes.iter().any(|c| {
            c["path"].as_array().unwrap().last().unwrap() == name
                && c["change"] == "moved"
                && c["from"] == from
                && c["to"] == to
        })
    };
    assert!(
        moved("piix4-pm", "0x0", "0x600") && moved("pm-smbus", "0xb100", "0x700"),
        "{out}"
    );
}

#[test]
fn flat_ranges_differ_as_the_mtree_f_captures_do() {
    let (code, out) = diff(&[&before(), &after(), "--hints", HINTS]);
    assert_eq!(code, Some(1));
    // Lines of QEMU's captures: before, pc.rom answers at 0xc0000; after, the shadowed copy
    // in RAM does (read-only through `pam-rom`).
    let old = "  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom";
    let new = "  00000000000c3000-00000000000e7fff (prio 0, rom): pc.ram @00000000000c3000";
    assert!(read(&fixture("x86-pc-512M", "mtree-f.txt")).contains(&format!("{old}\n")));
    assert!(read(&fixture("x86-pc-512M-after-bios", "mtree-f.txt")).contains(&format!("{new}\n")));
    let section = out
        .split("@@ ")
        .find(|s| s.starts_with("memory, "))
        .unwrap_or_else(|| panic!("no section for memory: {out}"));
    let (minus, plus) = (
        section.find(&format!("\n-{old}\n")),
        section.find(&format!("\n+{new}\n")),
    );
    assert!(minus.is_some() && plus.is_some(), "{out}");
    assert!(minus < plus, "by address: {out}");
    // Every section is in address order, `-` and `+` lines interleaved.
    for section in out.split("@@ ").skip(1) {
        let starts: Vec<u64> = section
            .lines()
            .skip(1)
            .map(|l| u64::from_str_radix(&l[3..19], 16).expect("a range line"))
            .collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "not by address: {section}");
    }
    assert!(
        out.starts_with(&format!("--- {}\n+++ {}\n", before(), after())),
        "{out}"
    );
}

#[test]
fn identical_sources_give_exit_0_and_no_output() {
    assert_eq!(diff(&[&after(), &after()]), (Some(0), String::new()));
    assert_eq!(diff(&["boards/q35.toml", "boards/q35.toml"]), (Some(0), String::new()));
}

#[test]
fn a_board_file_against_a_dump() {
    // boards/pc.toml is the pc before its BIOS ran (the CLI tests check that it prints the
    // capture): nothing differs from that dump, and the BIOS changes from the later one.
    assert_eq!(
        diff(&["boards/pc.toml", &before(), "--hints", HINTS]),
        (Some(0), String::new())
    );
    let (code, out) = diff(&["boards/pc.toml", &after(), "--hints", HINTS]);
    assert_eq!(code, Some(1));
    assert!(out.contains("\n~ smram: enabled\n"), "{out}");
    assert!(out.contains("/pam-pci#1: disabled\n"), "{out}");
}

#[test]
fn errors_exit_2() {
    let (code, out) = diff(&[&before(), "no/such/file"]);
    assert_eq!((code, out.as_str()), (Some(2), ""));
    let (code, _) = diff(&[&before(), &fixture("x86-pc-512M", "mtree-f.txt")]);
    assert_eq!(code, Some(2), "a flat-view capture cannot be compared");
    let err = String::from_utf8(run(&["diff", &before(), "no/such/file"]).stderr).unwrap();
    assert!(err.contains("cannot read no/such/file"), "{err}");
}

/// Two machines rarely share a hints file: `--hints` twice gives A and B their own. With pc's
/// hints applied to virt too, virt's platform bus (an empty container QEMU renders as nothing)
/// shows as an MMIO range QEMU never prints; with virt's own hints it does not.
#[test]
fn hints_given_twice_are_one_per_side() {
    let virt = fixture("arm-virt-a57-smp2-1G", "mtree-D.txt");
    let virt_hints = fixture("arm-virt-a57-smp2-1G", "hints.toml");
    let range = "): platform bus";
    assert!(!read(&virt_hints.replace("hints.toml", "mtree-f.txt")).contains(range));
    let (code, shared) = diff(&[&before(), &virt, "--hints", HINTS]);
    assert_eq!(code, Some(1));
    assert!(shared.contains(range), "pc's hints on virt: {shared}");
    let (code, own) = diff(&[&before(), &virt, "--hints", HINTS, "--hints", &virt_hints]);
    assert_eq!(code, Some(1));
    assert!(!own.contains(range), "virt's own hints: {own}");
    let (code, _) = diff(&[&before(), &virt, "--hints", HINTS, "--hints", HINTS, "--hints", HINTS]);
    assert_eq!(code, Some(2), "three hints files");
}
