//! Importing the dump variants a user captures from QEMU 10.0.2 (`tests/fixtures/qemu`):
//! `info mtree -D -o` (owners) imports to the same machine as `-D`; plain `info mtree` is
//! refused with a reason unless it lost nothing; and the import reports what it guessed.

use std::path::PathBuf;

use addrspace::mtree::{self, canonical, FlatOptions, GuessKind, Hints, TreeOptions};
use addrspace::Machine;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/qemu")
}

fn read(machine: &str, file: &str) -> String {
    let p = fixtures().join(machine).join(file);
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

fn hints(machine: &str) -> Hints {
    Hints::from_toml(&read(machine, "hints.toml"), "hints.toml").unwrap()
}

fn import(machine: &str, file: &str) -> Result<Machine, addrspace::LoadError> {
    mtree::import_dump(&read(machine, file), file, &hints(machine))
}

/// `info mtree`, `-D` and `-f` of a machine, canonical.
fn prints(m: &Machine) -> [String; 3] {
    [
        canonical(&mtree::print_tree(&m.memory, &TreeOptions::default())),
        canonical(&mtree::print_tree(&m.memory, &TreeOptions::DISABLED)),
        canonical(&mtree::print_flat(&m.memory, &FlatOptions::default())),
    ]
}

#[test]
fn owner_dumps_import_like_plain_dumps() {
    for m in machines() {
        let with_owners = import(&m, "mtree-o-D.txt").unwrap_or_else(|e| panic!("{m}: {e}"));
        let plain = import(&m, "mtree-D.txt").unwrap();
        assert_eq!(prints(&with_owners), prints(&plain), "{m}");
        assert_eq!(prints(&with_owners)[2], canonical(&read(&m, "mtree-f.txt")), "{m}");
    }
}

#[test]
fn owner_text_is_not_taken_for_names_with_spaces_at_signs_and_parentheses() {
    let plain = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    0000000000001000-0000000000001fff (prio 0, i/o): my dev (bar 0) @x\n    0000000000002000-0000000000002fff (prio 0, ram): alias win @x @ram (lo) 0000000000000000-0000000000000fff [disabled]\n\nmemory-region: ram (lo)\n  0000000000000000-0000000000000fff (prio 0, ram): ram (lo)\n\n";
    let owners = [
        " owner:{dev path=/machine/unattached/device[0]}",
        " owner:{dev id=nic0} parent:{obj path=/machine/peripheral}",
        " parent:{obj path=/machine/unattached}",
        " orphan",
        " owner:{obj type=memory-region-portio-list}",
    ];
    let mut with_owners = String::new();
    for (i, l) in plain.lines().enumerate() {
        with_owners.push_str(l);
        if l.starts_with("  ") {
            with_owners.push_str(owners[i % owners.len()]);
        }
        with_owners.push('\n');
    }
    let a = mtree::import_dump(plain, "plain", &Hints::default()).unwrap();
    let b = mtree::import_dump(&with_owners, "owners", &Hints::default()).unwrap();
    let tree = |m: &Machine| mtree::print_tree(&m.memory, &TreeOptions::DISABLED);
    assert_eq!(tree(&a), plain);
    assert_eq!(tree(&b), plain);
}

#[test]
fn a_line_without_owner_text_in_an_owner_dump_names_its_line() {
    let mut dump = read("x86-pc-512M", "mtree-o-D.txt");
    let at = dump.find(" owner:{").unwrap();
    let end = at + dump[at..].find('\n').unwrap();
    dump.replace_range(at..end, "");
    let line = dump[..at].matches('\n').count() + 1;
    let e = mtree::import_dump(&dump, "o.txt", &hints("x86-pc-512M"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with(&format!("o.txt:{line}:")), "{e}");
    assert!(e.contains("owner text"), "{e}");
}

#[test]
fn plain_dumps_that_visibly_lost_disabled_regions_are_refused_with_a_reason() {
    // pc: subregions of the disabled `piix4-pm` print two levels below `io`; virt: the
    // `memory-region: system` section is queued by a disabled alias that is not printed.
    for (m, file) in [
        ("x86-pc-512M", "mtree.txt"),
        ("arm-virt-a57-smp2-1G", "mtree.txt"),
        ("x86-pc-512M", "mtree-o.txt"),
        ("arm-virt-a57-smp2-1G", "mtree-o.txt"),
    ] {
        let e = import(m, file)
            .err()
            .unwrap_or_else(|| panic!("{m}/{file} imported"))
            .to_string();
        assert!(e.starts_with(&format!("{file}:")), "{m}: {e}");
        assert!(e.contains("without -D"), "{m}: {e}");
        assert!(e.contains("import needs `info mtree -D`"), "{m}: {e}");
    }
    // pc's `memory-region: smram` without -D: the disabled root is left out, its child is not.
    let smram = "address-space: memory\n  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    00000000000a0000-00000000000bffff (prio 1, i/o): alias smram-region @smram 0000000000000000-000000000001ffff\n\nmemory-region: smram\n    00000000000a0000-00000000000bffff (prio 0, ram): alias smram-low @pc.ram 00000000000a0000-00000000000bffff\n\n";
    let e = mtree::import_dump(smram, "plain.txt", &Hints::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("plain.txt:6:") && e.contains("without -D"), "{e}");
}

#[test]
fn a_plain_dump_that_shows_nothing_disabled_imports_with_a_warning() {
    // After the BIOS, pc's plain dump lacks only disabled aliases, which leave no trace in
    // the text. The report says regions may be missing — and they matter: three `bus master
    // container`s lost their only (disabled) subregion and now pass for MMIO regions.
    let m = "x86-pc-512M-after-bios";
    let (plain, guesses) = mtree::import_dump_with_report(&read(m, "mtree.txt"), "mtree.txt", &hints(m)).unwrap();
    let kinds: Vec<GuessKind> = guesses.iter().map(|g| g.kind).collect();
    assert_eq!(kinds, [GuessKind::NoDisabledRegions]);
    assert!(
        guesses[0].to_string().contains("no_disabled_regions = true"),
        "{}",
        guesses[0]
    );
    assert_eq!(prints(&plain)[0], canonical(&read(m, "mtree.txt")));
    assert_ne!(prints(&plain)[1], canonical(&read(m, "mtree-D.txt")));
    assert_ne!(prints(&plain)[2], canonical(&read(m, "mtree-f.txt")));
    // With -D the same machine shows disabled regions: nothing to warn about.
    let (_full, guesses) = mtree::import_dump_with_report(&read(m, "mtree-D.txt"), "d", &hints(m)).unwrap();
    assert_eq!(guesses, []);
}

#[test]
fn a_plain_dump_of_a_machine_with_nothing_disabled_imports() {
    // mps2-an385 has no disabled region: `info mtree` is `info mtree -D` there, and its
    // hints say so (`no_disabled_regions = true`).
    let m = "arm-mps2-an385";
    assert_eq!(read(m, "mtree.txt"), read(m, "mtree-D.txt"));
    let (plain, guesses) = mtree::import_dump_with_report(&read(m, "mtree.txt"), "mtree.txt", &hints(m)).unwrap();
    assert_eq!(guesses, []);
    let owners = import(m, "mtree-o.txt").unwrap();
    assert_eq!(prints(&plain)[2], canonical(&read(m, "mtree-f.txt")));
    assert_eq!(prints(&owners), prints(&plain));
    let (_m, guesses) = mtree::import_dump_with_report(&read(m, "mtree.txt"), "mtree.txt", &Hints::default()).unwrap();
    assert!(guesses.iter().any(|g| g.kind == GuessKind::NoDisabledRegions));
}

#[test]
fn the_import_reports_what_it_guessed() {
    let report = |m: &str, h: &Hints| {
        let (machine, guesses) = mtree::import_dump_with_report(&read(m, "mtree-D.txt"), "d", h).unwrap();
        drop(machine);
        guesses
    };
    let names = |g: &[mtree::Guess], k: GuessKind| -> Vec<String> {
        g.iter()
            .find(|g| g.kind == k)
            .map(|g| g.names.clone())
            .unwrap_or_default()
    };
    // Without hints, pc's `io` and `rtc` (MMIO containers) were taken for pure containers,
    // virt's `platform bus` (an empty container) for MMIO, and aliases for writable.
    let pc = report("x86-pc-512M", &Hints::default());
    let pure = names(&pc, GuessKind::PureContainers);
    assert!(
        pure.contains(&"io".to_string()) && pure.contains(&"rtc".to_string()),
        "{pure:?}"
    );
    assert!(names(&pc, GuessKind::WritableAliases).contains(&"pam-rom".to_string()));
    assert!(
        !names(&pc, GuessKind::WritableAliases).contains(&"isa-bios".to_string()),
        "an alias of ROM is read-only anyway"
    );
    let virt = report("arm-virt-a57-smp2-1G", &Hints::default());
    assert!(names(&virt, GuessKind::MmioRegions).contains(&"platform bus".to_string()));
    // Names are listed once, however many regions share them.
    let bm = names(&pc, GuessKind::WritableAliases);
    assert_eq!(bm.iter().filter(|n| *n == "bus master").count(), 1, "{bm:?}");
    // A hints file that gives a key, even as an empty list, settles that kind of guess.
    for m in machines() {
        assert_eq!(report(&m, &hints(&m)), [], "{m}: the fixture hints settle everything");
    }
    let partial = Hints::from_toml("readonly = []", "h.toml").unwrap();
    let kinds: Vec<GuessKind> = report("x86-pc-512M", &partial).iter().map(|g| g.kind).collect();
    assert_eq!(kinds, [GuessKind::PureContainers, GuessKind::MmioRegions]);
    // A region the hints name is not a guess, whatever the key.
    let named = Hints::from_toml("pure_containers = [\"io\"]", "h.toml").unwrap();
    assert!(!names(&report("x86-pc-512M", &named), GuessKind::PureContainers).contains(&"io".to_string()));
}

#[test]
fn guesses_print_compactly_with_the_key_that_settles_them() {
    let (_m, guesses) =
        mtree::import_dump_with_report(&read("x86-pc-512M", "mtree-D.txt"), "d", &Hints::default()).unwrap();
    for g in &guesses {
        let line = g.to_string();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains(&format!("`{}`", g.kind.hint_key())), "{line}");
        assert!(line.starts_with(&g.names.len().to_string()), "{line}");
        if g.names.len() > 6 {
            assert!(line.contains(&format!("and {} more", g.names.len() - 6)), "{line}");
        }
    }
}

/// A hints file read through serde settles what `Hints::from_toml` settles (a key given as an
/// empty list means "none"), and code can settle a guess too. (Found in review: only
/// `from_toml` recorded the keys given.)
#[test]
fn hints_read_through_serde_settle_what_from_toml_settles() {
    use addrspace::mtree::{GuessKind, Hints};
    let text = "readonly = []\nmmio_containers = []\npure_containers = []";
    let a = Hints::from_toml(text, "hints.toml").unwrap();
    let b: Hints = toml::from_str(text).unwrap();
    for k in [
        GuessKind::WritableAliases,
        GuessKind::PureContainers,
        GuessKind::MmioRegions,
    ] {
        assert_eq!(a.settles(k), b.settles(k), "{k:?}");
    }
    let mut c = Hints::default();
    assert!(!c.settles(GuessKind::WritableAliases));
    c.settle(GuessKind::WritableAliases);
    assert!(c.settles(GuessKind::WritableAliases), "settled in code");
}
