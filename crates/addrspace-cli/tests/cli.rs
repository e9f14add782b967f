//! End-to-end tests of the `addrspace` binary: QEMU captures are reproduced, JSON is valid
//! (its content: `mtree_json.rs`), errors go to stderr with the file (and line) named, and
//! `addrspace board` output loads back to the same machine.

mod common;

use addrspace::mtree::canonical;
use common::*;

// ---------------------------------------------------------------------------------------

#[test]
fn demo_prints_tree_and_flat_views() {
    let out = run_ok(&["demo"]);
    assert!(out.contains("address-space: memory\n"), "{out}");
    assert!(out.contains("address-space: I/O\n"), "{out}");
    assert!(out.contains("FlatView #0\n"), "{out}");
    assert!(out.contains(" Root memory region: system\n"), "{out}");
    let tree_at = out.find("address-space:").unwrap();
    let flat_at = out.find("FlatView #").unwrap();
    assert!(tree_at < flat_at, "the tree comes before the flat views");
}

#[test]
fn demo_matches_the_pc_capture() {
    let out = run_ok(&["demo"]);
    let (tree, flat) = out.split_once("== info mtree -f ==\n").expect("two sections");
    let tree = tree.strip_prefix("== info mtree ==\n").expect("tree header");
    assert_eq!(canonical(tree), canonical(&read(&fixture("x86-pc-512M", "mtree.txt"))));
    assert_eq!(
        canonical(flat),
        canonical(&read(&fixture("x86-pc-512M", "mtree-f.txt")))
    );
}

fn check_reproduces_qemu(machine: &str) {
    for (flags, capture) in VARIANTS {
        let got = from_qemu(machine, flags);
        let want = read(&fixture(machine, capture));
        assert_eq!(
            canonical(&got),
            canonical(&want),
            "{machine} {flags:?} differs from {capture}"
        );
    }
}

#[test]
fn reproduces_x86_pc() {
    check_reproduces_qemu("x86-pc-512M");
}

#[test]
fn reproduces_x86_pc_after_bios() {
    check_reproduces_qemu("x86-pc-512M-after-bios");
}

#[test]
fn reproduces_arm_virt() {
    check_reproduces_qemu("arm-virt-a57-smp2-1G");
}

#[test]
fn reproduces_arm_mps2() {
    check_reproduces_qemu("arm-mps2-an385");
}

/// A board file on disk reproduces the capture too.
#[test]
fn board_files_reproduce_qemu() {
    for (board, machine) in [
        ("boards/pc.toml", "x86-pc-512M"),
        ("boards/virt.toml", "arm-virt-a57-smp2-1G"),
    ] {
        for (flags, capture) in VARIANTS {
            let mut args = vec!["mtree", board];
            args.extend_from_slice(flags);
            let got = run_ok(&args);
            let want = read(&fixture(machine, capture));
            assert_eq!(
                canonical(&got),
                canonical(&want),
                "{board} {flags:?} differs from {capture}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON.

#[test]
fn json_output_uses_newlines_only() {
    for flags in [&["--json"][..], &["-D", "--json"], &["-f", "--json"]] {
        // run_ok checks for CRs and a final newline.
        let out = from_qemu("x86-pc-512M", flags);
        serde_json::from_str::<serde_json::Value>(&out).expect("valid JSON");
    }
}

// ---------------------------------------------------------------------------------------
// Errors.

#[test]
fn malformed_board_names_file_and_line() {
    let f = tempfile_with("[[region]]\nname = \"a\"\ntype = \"ram\"\nsize = 4096\nbogus = 1\n");
    let path = f.path().to_str().unwrap();
    let err = run_err(&["mtree", path]);
    assert!(
        err.contains(&format!("{path}:5:")),
        "stderr should name {path}:5: — got {err}"
    );
    assert!(err.contains("bogus"), "{err}");

    let err = run_err(&["board", path]);
    assert!(err.contains(&format!("{path}:5:")), "{err}");
}

#[test]
fn board_with_semantic_error_names_file_and_line() {
    let f = tempfile_with(
        "[[region]]\nname = \"s\"\ntype = \"container\"\nsize = \"2^64\"\nsubregions = [\n  { region = \"nope\" },\n]\n",
    );
    let path = f.path().to_str().unwrap();
    let err = run_err(&["mtree", "-f", path]);
    assert!(err.contains(&format!("{path}:6:")), "{err}");
    assert!(err.contains("unknown region `nope`"), "{err}");
}

#[test]
fn malformed_dump_names_file_and_line() {
    let f = tempfile_with("address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n  this is not a region line\n");
    let path = f.path().to_str().unwrap();
    let err = run_err(&["mtree", "--from-qemu", path]);
    assert!(
        err.contains(&format!("{path}:3:")),
        "stderr should name {path}:3: — got {err}"
    );
}

#[test]
fn malformed_hints_names_file_and_line() {
    let f = tempfile_with("mmio_containers = [\"io\"]\nbogus = 1\n");
    let path = f.path().to_str().unwrap();
    let dump = fixture("x86-pc-512M", "mtree-D.txt");
    let err = run_err(&["mtree", "--from-qemu", &dump, "--hints", path]);
    assert!(err.contains(&format!("{path}:2:")), "{err}");
}

#[test]
fn nonexistent_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-board.toml");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["mtree", missing],
        vec!["mtree", "-f", "--json", missing],
        vec!["board", missing],
        vec!["mtree", "--from-qemu", missing],
    ] {
        let err = run_err(&args);
        assert!(err.contains(missing), "{args:?}: stderr should name {missing}: {err}");
    }
    let dump = fixture("x86-pc-512M", "mtree-D.txt");
    let err = run_err(&["mtree", "--from-qemu", &dump, "--hints", missing]);
    assert!(err.contains(missing), "{err}");
}

#[test]
fn usage_errors_fail() {
    run_err(&["mtree"]);
    run_err(&["frobnicate"]);
    run_err(&["mtree", "--hints", "x.toml"]);
    run_err(&["mtree", "boards/pc.toml", "--from-qemu", "x.txt"]);
}

/// `--hints` only means something with `--from-qemu`; with a board file it is silently
/// ignored (the hints file is not even opened). The `requires = "from_qemu"` in main.rs is
/// bypassed because `from_qemu` conflicts with the board given (clap-rs/clap#4520).
#[test]
fn hints_without_from_qemu_is_rejected() {
    run_err(&["mtree", "boards/pc.toml", "--hints", "x.toml"]);
}

// ---------------------------------------------------------------------------------------
// `addrspace board` round trips.

#[test]
fn board_from_qemu_loads_back_identically() {
    for machine in MACHINES {
        let dump = fixture(machine, "mtree-D.txt");
        let hints = fixture(machine, "hints.toml");
        let exported = run_ok(&["board", "--from-qemu", &dump, "--hints", &hints]);
        let f = tempfile_with(&exported);
        let path = f.path().to_str().unwrap();
        for flags in [&[][..], &["-D"], &["-f"], &["-D", "--json"], &["-f", "--json"]] {
            let mut args = vec!["mtree", path];
            args.extend_from_slice(flags);
            assert_eq!(
                run_ok(&args),
                from_qemu(machine, flags),
                "{machine} {flags:?}: board file prints differently"
            );
        }
        // Exporting the board file again gives the same board.
        assert_eq!(
            run_ok(&["board", path]),
            exported,
            "{machine}: board export is not a fixed point"
        );
    }
}

/// Every board in `boards/` (globbed: new boards are covered too).
fn boards() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("boards"))
        .expect("boards/")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .map(|n| format!("boards/{n}"))
        .collect();
    v.sort();
    assert!(v.len() >= 6, "{v:?}");
    v
}

#[test]
fn board_from_board_file_loads_back_identically() {
    for board in boards() {
        let exported = run_ok(&["board", &board]);
        let f = tempfile_with(&exported);
        let path = f.path().to_str().unwrap();
        for flags in [&[][..], &["-D"], &["-f"]] {
            let mut a = vec!["mtree", board.as_str()];
            a.extend_from_slice(flags);
            let mut b = vec!["mtree", path];
            b.extend_from_slice(flags);
            assert_eq!(run_ok(&b), run_ok(&a), "{board} {flags:?}");
        }
        // What the graph cannot say comes back too.
        let original = read(&board);
        // ... and what the CPUs build is not exported as plain regions and spaces.
        for table in [
            "[[cluster]]",
            "[[cpu-root]]",
            "description = ",
            "[[address-space]]",
            "[[region]]",
        ] {
            assert_eq!(
                original.matches(table).count(),
                exported.matches(table).count(),
                "{board}: {table}"
            );
        }
        assert_eq!(
            run_ok(&["board", path]),
            exported,
            "{board}: export is not a fixed point"
        );
    }
}

#[test]
fn board_help_says_it_takes_a_board_file_or_a_dump() {
    let help = run_ok(&["board", "--help"]);
    assert!(help.contains("from a board file, or from a QEMU dump"), "{help}");
    assert!(help.contains("--from-qemu"), "{help}");
    assert!(help.contains("--check"), "{help}");
}

/// The per-CPU boards print the view sharing QEMU 10.0.2 shows for the machines they model.
#[test]
fn cpu_boards_share_views_as_qemu_does() {
    // (board, spaces that must share one view, spaces that must be alone in theirs)
    let cases: [(&str, &[&[&str]]); 4] = [
        (
            "boards/virt-secure.toml",
            &[
                &["memory", "cpu-memory-0", "cpu-memory-1"],
                &["cpu-secure-memory-0", "cpu-secure-memory-1"],
            ],
        ),
        (
            "boards/mps2-an521.toml",
            &[
                &["memory"],
                &["cpu-memory-0", "cpu-secure-memory-0"],
                &["cpu-memory-1", "cpu-secure-memory-1"],
            ],
        ),
        (
            "boards/q35-smm.toml",
            &[
                &["memory", "cpu-memory-0", "cpu-memory-1"],
                &["cpu-smm-0"],
                &["cpu-smm-1"],
            ],
        ),
        (
            "boards/zcu102.toml",
            &[&[
                "memory",
                "rpu-memory",
                "cpu-memory-0",
                "cpu-memory-1",
                "cpu-memory-2",
                "cpu-memory-3",
            ]],
        ),
    ];
    for (board, groups) in cases {
        let out = run_ok(&["mtree", board, "-f"]);
        let views: Vec<Vec<String>> = out
            .split("FlatView #")
            .skip(1)
            .map(|v| {
                v.lines()
                    .filter_map(|l| l.strip_prefix(" AS \""))
                    .map(|l| l.split('"').next().unwrap().to_string())
                    .collect()
            })
            .collect();
        for g in groups {
            let want: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            assert!(
                views.contains(&want),
                "{board}: no view shared by exactly {want:?}\n{out}"
            );
        }
    }
}

/// `soak` succeeds and reports on stdout; its progress bar is hidden when stderr is not a
/// terminal (here: captured), so stderr stays empty.
fn soak_ok(args: &[&str]) -> String {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "addrspace {args:?} failed: {stderr}");
    assert!(stderr.is_empty(), "progress written to a captured stderr: {stderr:?}");
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

#[test]
fn soak_plugs_and_unplugs_without_growth() {
    let out = soak_ok(&["soak", "boards/q35-smm.toml", "--cycles", "300", "--readers", "2"]);
    assert!(
        out.contains("plug + unplug CPU slot 2 of cluster `cpus`, 300 cycles"),
        "{out}"
    );
    let before = out.lines().find(|l| l.starts_with("before:")).unwrap();
    let after = out.lines().find(|l| l.starts_with("after:")).unwrap();
    assert_eq!(
        before.trim_start_matches("before:").trim(),
        after.trim_start_matches("after:").trim()
    );
    assert!(out.contains("µs per cycle"), "{out}");
    assert!(out.ends_with("no growth\n"), "{out}");
    // A board without CPU clusters soaks a DMA engine instead.
    let out = soak_ok(&["soak", "boards/pc.toml", "--cycles", "100", "--readers", "1"]);
    assert!(out.contains("DMA engine"), "{out}");
    // Errors name the file.
    let err = run_err(&["soak", "boards/nope.toml"]);
    assert!(err.contains("nope.toml"), "{err}");
}
