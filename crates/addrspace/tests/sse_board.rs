//! The SSE-200 board (`boards/mps2-an521.toml`): aliases into their own ancestors, end to end.
//!
//! `armsse-container` holds `alias 1` and `alias 2`, windows of itself; each CPU's
//! `arm-sse-cpu-containerN` holds `alias 3`, a window of itself. The expected `info mtree`,
//! `-D` and `-f` texts in `tests/fixtures/boards/mps2-an521/` were checked by hand against
//! QEMU's printing rules (`shared/spec/mtree-format.md`: child order, alias lines, sections
//! queued as aliases are met, a section's root at its own address and priority) and, for `-f`,
//! against `tests/oracle/qemu_flat.py`, a transcription of QEMU's own renderer (see
//! `qemu_oracle.rs`). The dump of the board imports back to the same machine (QEMU's real
//! an505/an521/an547 dumps failed to import with "would create a cycle" before). Then the
//! dynamic side: changes inside a container that an ancestor alias shows elsewhere update both
//! places, for views, listeners and lookups, and CPU hot-plug leaves nothing behind.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use addrspace::listener::PRIORITY_ACCEL;
use addrspace::mtree::{self, canonical, FlatOptions, Hints, TreeOptions};
use addrspace::{GuestAddr, Machine, MemoryListener, Section, Unassigned};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn board() -> Machine {
    addrspace::board::load_file(&repo().join("boards/mps2-an521.toml")).expect("the SSE board loads")
}

fn expected(file: &str) -> String {
    let p = repo().join("tests/fixtures/boards/mps2-an521").join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn texts(m: &Machine) -> [String; 3] {
    [
        mtree::print_tree(&m.memory, &TreeOptions::default()),
        mtree::print_tree(&m.memory, &TreeOptions::DISABLED),
        mtree::print_flat(&m.memory, &FlatOptions::default()),
    ]
}

const FILES: [&str; 3] = ["mtree.txt", "mtree-D.txt", "mtree-f.txt"];

#[test]
fn prints_what_qemu_prints_for_the_sse_structure() {
    let m = board();
    for (file, ours) in FILES.iter().zip(texts(&m)) {
        assert_eq!(canonical(&ours), canonical(&expected(file)), "{file}");
    }
}

#[test]
fn its_dump_imports_back_to_the_same_machine() {
    let dump = expected("mtree-D.txt");
    let m = mtree::import_dump(&dump, "mtree-D.txt", &Hints::default()).expect("an SSE dump imports");
    for (file, ours) in FILES.iter().zip(texts(&m)) {
        assert_eq!(canonical(&ours), canonical(&expected(file)), "imported: {file}");
    }
}

/// Where `addr` lands in a space: (region name, offset).
fn at(m: &Machine, space: &str, addr: u64) -> Option<(String, u64)> {
    let s = space_named(m, space);
    s.lookup(GuestAddr(addr)).map(|(r, o)| (r.name().to_string(), o.0))
}

fn space_named(m: &Machine, name: &str) -> addrspace::AddressSpace {
    if let Some(s) = m.address_space(name) {
        return s.clone();
    }
    m.clusters
        .iter()
        .flat_map(|c| c.cpus())
        .flat_map(|cpu| (0..2).filter_map(move |i| cpu.address_space(i)))
        .find(|s| s.name() == name)
        .unwrap_or_else(|| panic!("no space {name}"))
        .clone()
}

#[test]
fn per_cpu_devices_answer_at_both_addresses_with_the_right_offset() {
    let m = board();
    for cpu in 0..2 {
        let space = format!("cpu-memory-{cpu}");
        assert_eq!(at(&m, &space, 0x4001_f004), Some(("armsse-cpuid".into(), 4)));
        assert_eq!(
            at(&m, &space, 0x5001_f004),
            Some(("armsse-cpuid".into(), 4)),
            "through alias 3"
        );
        // A shared device seen through alias 3 (0x4000_0000 window of the CPU's container).
        assert_eq!(at(&m, &space, 0x5000_0010), Some(("tz-ppc-port[0]".into(), 0x10)));
        // The secure-only device at 0x5008_0000 wins over alias 3 (priority -1 over -1500).
        assert_eq!(at(&m, &space, 0x5008_0000), Some(("iotkit-secctl-s-regs".into(), 0)));
        // alias 1 shows system RAM again at 0x1000_0000, alias 2 the SRAM at 0x3000_0000.
        assert_eq!(at(&m, &space, 0x1000_0100), Some(("ssram-0".into(), 0x100)));
        assert_eq!(at(&m, &space, 0x3000_0100), Some(("armsse.sram0".into(), 0x100)));
        // Nothing past alias 3's own window shows through it again (the clip ends the loop).
        assert_eq!(at(&m, &space, 0x6000_0000), None);
    }
    let cpu = |k: u32| format!("cachectrl{k}");
    assert_eq!(at(&m, "cpu-memory-0", 0x5001_0000), Some((cpu(0), 0)));
    assert_eq!(at(&m, "cpu-memory-1", 0x5001_0000), Some((cpu(1), 0)));
    assert_eq!(at(&m, "memory", 0x5000_0000), None, "system memory has no SSE devices");
}

/// Records the ranges a listener has been told about.
#[derive(Default)]
struct Picture(Mutex<Vec<(u64, u128, String)>>);

impl MemoryListener for Picture {
    fn region_add(&self, s: &Section<'_>) {
        self.0
            .lock()
            .unwrap()
            .push((s.start().0, s.size(), s.name().to_string()));
    }
    fn region_del(&self, s: &Section<'_>) {
        let mut v = self.0.lock().unwrap();
        let k = v
            .iter()
            .position(|e| e.0 == s.start().0 && e.1 == s.size())
            .expect("deleted range was added");
        v.remove(k);
    }
}

fn picture_matches_view(p: &Picture, space: &addrspace::AddressSpace) {
    let mut got = p.0.lock().unwrap().clone();
    got.sort();
    let want: Vec<(u64, u128, String)> = space
        .view()
        .ranges()
        .iter()
        .map(|r| (r.start().0, r.size(), r.name().to_string()))
        .collect();
    assert_eq!(got, want, "listener of {}", space.name());
}

#[test]
fn a_change_inside_an_aliased_ancestor_updates_every_window_that_shows_it() {
    let m = board();
    let mem = &m.memory;
    let spaces: Vec<_> = ["memory", "cpu-memory-0", "cpu-memory-1"]
        .iter()
        .map(|n| space_named(&m, n))
        .collect();
    let pictures: Vec<Arc<Picture>> = spaces.iter().map(|_| Arc::new(Picture::default())).collect();
    let _handles: Vec<_> = spaces
        .iter()
        .zip(&pictures)
        .map(|(s, p)| s.register_listener(p.clone(), PRIORITY_ACCEL).expect("register"))
        .collect();
    let container = m.region("armsse-container").expect("board region");
    let renders = mem.stats().renders;

    // A new shared device at 0x4000_5000: every CPU sees it there and, through alias 3, at
    // 0x5000_5000; system memory does not see it at all.
    let dev = mem.io("mhu-new", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(container, 0x4000_5000, dev).unwrap();
    for cpu in ["cpu-memory-0", "cpu-memory-1"] {
        assert_eq!(at(&m, cpu, 0x4000_5008), Some(("mhu-new".into(), 8)));
        assert_eq!(at(&m, cpu, 0x5000_5008), Some(("mhu-new".into(), 8)));
    }
    assert_eq!(at(&m, "memory", 0x4000_5008), None);
    // RAM moved inside system shows at its new place and through alias 1 (0x1000_0000 up).
    let ssram = m.region("ssram-0").unwrap();
    mem.set_address(ssram, 0x8_0000).unwrap();
    assert_eq!(at(&m, "cpu-memory-1", 0x1008_0010), Some(("ssram-0".into(), 0x10)));
    assert_eq!(at(&m, "cpu-memory-1", 0x1000_0010), None);
    assert_eq!(at(&m, "memory", 0x8_0010), Some(("ssram-0".into(), 0x10)));
    // Scoped commits did it without full renders, and every view equals a fresh render.
    assert_eq!(mem.stats().renders, renders, "patched, not re-rendered");
    for (s, p) in spaces.iter().zip(&pictures) {
        let fresh = mem.render(s.root()).unwrap();
        assert_eq!(s.view().ranges(), fresh.ranges(), "{} equals a fresh render", s.name());
        picture_matches_view(p, s);
    }
    // And QEMU's full rebuild agrees.
    mem.set_commit_mode(addrspace::CommitMode::Full);
    mem.remove_subregion(container, dev).unwrap();
    assert_eq!(at(&m, "cpu-memory-0", 0x5000_5008), None);
    for (s, p) in spaces.iter().zip(&pictures) {
        picture_matches_view(p, s);
    }
}

#[test]
fn a_private_device_shows_only_in_its_cpus_windows() {
    let m = board();
    let cpu1 = space_named(&m, "cpu-memory-1");
    let root = cpu1.root();
    let info = m.memory.region_info(root).unwrap();
    let container = info
        .subregions
        .iter()
        .copied()
        .find(|&c| m.memory.region_info(c).unwrap().name == "arm-sse-cpu-container1")
        .expect("CPU 1's container");
    let dev = m.memory.io("pwrctrl1", 0x1000, Arc::new(Unassigned)).unwrap();
    m.memory.add_subregion(container, 0x4001_2000, dev).unwrap();
    assert_eq!(at(&m, "cpu-memory-1", 0x5001_2000), Some(("pwrctrl1".into(), 0)));
    assert_eq!(at(&m, "cpu-secure-memory-1", 0x4001_2000), Some(("pwrctrl1".into(), 0)));
    assert_eq!(at(&m, "cpu-memory-0", 0x5001_2000), None);
}

#[test]
fn cpu_hot_plug_cycles_leave_nothing_behind() {
    let mut m = board();
    let before = m.memory.stats();
    let text = mtree::print_flat(&m.memory, &FlatOptions::default());
    for _ in 0..50 {
        let c = m.cluster_mut("cpus").unwrap();
        c.unplug(1).unwrap();
        c.plug(1).unwrap();
    }
    let after = m.memory.stats();
    assert_eq!(
        (after.regions, after.address_spaces, after.flatviews, after.listeners),
        (
            before.regions,
            before.address_spaces,
            before.flatviews,
            before.listeners
        ),
        "live objects"
    );
    assert_eq!(mtree::print_flat(&m.memory, &FlatOptions::default()), text);
}

#[test]
fn an_endless_alias_of_an_ancestor_is_refused_and_changes_nothing() {
    let m = board();
    let container = m.region("armsse-container").unwrap();
    let text = mtree::print_flat(&m.memory, &FlatOptions::default());
    // Showing 0x4000_0000 of the container at 0x4000_0000 again: rendering would never end.
    let bad = m.memory.alias("loop", container, 0x4000_0000, 0x1000).unwrap();
    let e = m
        .memory
        .add_subregion_overlap(container, 0x4000_0000, bad, -1500)
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, addrspace::Error::EndlessCycle { .. }), "{msg}");
    assert!(
        msg.contains("`armsse-container` → `loop` → `armsse-container`"),
        "{msg}"
    );
    assert_eq!(m.memory.region_info(bad).unwrap().container, None);
    // Moving alias 1 onto its own window is refused too, and it stays where it was.
    let alias1 = m.region("alias 1").unwrap();
    assert!(m.memory.set_address(alias1, 0).is_err());
    assert_eq!(m.memory.region_info(alias1).unwrap().addr, 0x1000_0000);
    assert_eq!(mtree::print_flat(&m.memory, &FlatOptions::default()), text);
}
