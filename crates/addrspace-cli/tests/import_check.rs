//! The CLI on QEMU dumps beyond `info mtree -D`: what an import guessed is said once on
//! stderr with how to settle it, `--check` compares flat views with a capture, `-o` dumps
//! reproduce QEMU, plain dumps that lost regions are refused with the reason.

mod common;

use addrspace::mtree::canonical;
use common::*;

#[test]
fn import_without_hints_says_once_what_it_guessed() {
    for (machine, key, name) in [
        ("x86-pc-512M", "mmio_containers", "`io`"),
        ("arm-virt-a57-smp2-1G", "pure_containers", "`platform bus`"),
    ] {
        let out = run(&["mtree", "--from-qemu", &fixture(machine, "mtree-D.txt"), "-f"]);
        assert!(out.status.success());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.matches("does not say everything").count(), 1, "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("`{key}`")))
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(line.contains(name), "{machine}: {line}");
        assert!(
            stderr.contains("--hints FILE") && stderr.contains("--check FILE"),
            "{stderr}"
        );
        assert!(String::from_utf8(out.stdout).unwrap().starts_with("FlatView #0\n"));
    }
    // The fixture hints settle everything: nothing on stderr (run_ok checks).
    for machine in MACHINES {
        from_qemu(machine, &[]);
    }
}

#[test]
fn check_passes_for_every_capture_with_its_hints() {
    for machine in MACHINES {
        let (dump, hints, flat) = (
            fixture(machine, "mtree-D.txt"),
            fixture(machine, "hints.toml"),
            fixture(machine, "mtree-f.txt"),
        );
        let out = run_ok(&["mtree", "--from-qemu", &dump, "--hints", &hints, "--check", &flat]);
        assert!(out.contains("match"), "{machine}: {out}");
        let out = run(&["board", "--from-qemu", &dump, "--hints", &hints, "--check", &flat]);
        assert!(
            out.status.success(),
            "{machine}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn check_shows_the_differences_without_hints() {
    for (machine, line) in [
        (
            "x86-pc-512M",
            "-  0000000000000010-000000000000001f (prio 0, i/o): io @0000000000000010\n",
        ),
        (
            "arm-virt-a57-smp2-1G",
            "+  000000000c000000-000000000dffffff (prio 0, i/o): platform bus\n",
        ),
    ] {
        let (dump, flat) = (fixture(machine, "mtree-D.txt"), fixture(machine, "mtree-f.txt"));
        let out = run(&["mtree", "--from-qemu", &dump, "--check", &flat]);
        assert_eq!(out.status.code(), Some(1), "{machine}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.starts_with(&format!("--- {flat} (QEMU)\n")), "{stdout}");
        assert!(stdout.contains(line), "{machine}: {stdout}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains("the flat views differ"), "{stderr}");
        // `board --check` still writes the board, and fails.
        let out = run(&["board", "--from-qemu", &dump, "--check", &flat]);
        assert_eq!(out.status.code(), Some(1), "{machine}");
        assert!(String::from_utf8(out.stdout).unwrap().contains("[[address-space]]"));
        assert!(String::from_utf8(out.stderr).unwrap().contains(line), "{machine}");
    }
    // A board file can be checked too.
    let out = run_ok(&[
        "mtree",
        "boards/pc.toml",
        "--check",
        &fixture("x86-pc-512M", "mtree-f.txt"),
    ]);
    assert!(out.contains("match"), "{out}");
}

#[test]
fn check_refuses_what_is_not_a_flat_dump() {
    let dump = fixture("x86-pc-512M", "mtree-D.txt");
    let err = run_err(&["mtree", "boards/pc.toml", "--check", &dump]);
    assert!(err.contains(&dump) && err.contains("info mtree -f"), "{err}");
    run_err(&["mtree", "boards/pc.toml", "--check", &dump, "--json"]);
}

// ---------------------------------------------------------------------------------------
// Other dump variants.

#[test]
fn owner_dumps_reproduce_qemu() {
    for machine in MACHINES {
        let dump = fixture(machine, "mtree-o-D.txt");
        let hints = fixture(machine, "hints.toml");
        for (flags, capture) in VARIANTS {
            let mut args = vec!["mtree", "--from-qemu", &dump, "--hints", &hints];
            args.extend_from_slice(flags);
            let got = run_ok(&args);
            assert_eq!(
                canonical(&got),
                canonical(&read(&fixture(machine, capture))),
                "{machine} {flags:?}"
            );
        }
    }
}

/// `-o` variants and the capture each one reproduces from an imported `-o -D` dump.
const OWNER_VARIANTS: [(&[&str], &str); 3] = [
    (&["-o", "-D"], "mtree-o-D.txt"),
    (&["-o"], "mtree-o.txt"),
    (&["-f", "-o"], "mtree-f-o.txt"),
];

#[test]
fn owners_are_kept_and_printed_like_qemu() {
    for machine in MACHINES {
        let dump = fixture(machine, "mtree-o-D.txt");
        let hints = fixture(machine, "hints.toml");
        // Through a board file too: `owner = "..."` is written and read back.
        let exported = run_ok(&["board", "--from-qemu", &dump, "--hints", &hints]);
        assert!(
            exported.contains("\nowner = \"owner:{"),
            "{machine}: no owner in the board file"
        );
        let board = tempfile_with(&exported);
        let board = board.path().to_str().unwrap();
        for (flags, capture) in OWNER_VARIANTS {
            let want = canonical(&read(&fixture(machine, capture)));
            let mut args = vec!["mtree", "--from-qemu", &dump, "--hints", &hints];
            args.extend_from_slice(flags);
            assert_eq!(canonical(&run_ok(&args)), want, "{machine} {flags:?}");
            let mut args = vec!["mtree", board];
            args.extend_from_slice(flags);
            assert_eq!(canonical(&run_ok(&args)), want, "{machine} {flags:?} via a board file");
        }
    }
}

#[test]
fn regions_without_owner_print_orphan() {
    let out = run_ok(&["mtree", "boards/pc.toml", "-o"]);
    assert!(out.contains("(prio 0, i/o): system orphan\n"), "{out}");
    assert!(out
        .lines()
        .filter(|l| l.contains("(prio "))
        .all(|l| l.ends_with(" orphan")));
}

/// A `-d` dump with its dispatch sections (QEMU's `  Dispatch`, our `  Lookup index`: each
/// a heading at two spaces and lines indented deeper or by tabs) taken out.
fn without_dispatch(text: &str, heading: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for l in text.lines() {
        if l.starts_with(heading) {
            skipping = true;
            continue;
        }
        if skipping && (l.starts_with("    ") || l.starts_with('\t')) {
            continue;
        }
        skipping = false;
        out += l;
        out += "\n";
    }
    out
}

#[test]
fn d_without_f_prints_the_flat_views_with_their_index_like_qemu() {
    for machine in MACHINES {
        let flat = canonical(&read(&fixture(machine, "mtree-f.txt")));
        // What QEMU's `info mtree -d` printed: its flat views, each with a dispatch tree.
        let qemu = read(&fixture(machine, "mtree-d.txt"));
        assert_eq!(
            canonical(&without_dispatch(&qemu, "  Dispatch")),
            flat,
            "{machine}: QEMU"
        );
        let ours = from_qemu(machine, &["-d"]);
        assert_eq!(ours, from_qemu(machine, &["-f", "-d"]), "{machine}");
        assert!(ours.contains("  Lookup index"), "{machine}: {ours}");
        assert_eq!(
            canonical(&without_dispatch(&ours, "  Lookup index")),
            flat,
            "{machine}: ours"
        );
    }
}

#[test]
fn plain_dumps_that_lost_regions_are_refused_with_the_reason() {
    for machine in ["x86-pc-512M", "arm-virt-a57-smp2-1G"] {
        let dump = fixture(machine, "mtree.txt");
        let err = run_err(&["mtree", "--from-qemu", &dump]);
        assert!(err.contains(&format!("{dump}:")), "{err}");
        assert!(
            err.contains("without -D") && err.contains("import needs `info mtree -D`"),
            "{err}"
        );
    }
}
