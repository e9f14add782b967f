//! Which changes make a commit simplify address spaces again (recompute the physical root
//! their view is rendered from, QEMU's `memory_region_get_flatview_root`, and the sharing
//! representative).
//!
//! A commit simplifies again only the spaces whose simplification chain holds a region the
//! transaction may have re-simplified. These tests pin both sides of that scope:
//!
//! * a change below a busy shared root (a BAR mapped, moved or unmapped in `pci`, a ROM
//!   device switched, a leaf made read-only) simplifies no space again, however many bus-master
//!   spaces follow `system` (`Stats::resimplified` does not move);
//! * every change that does alter what a root simplifies to is still seen: an only child
//!   resized to fit (or not) its container, a second child disabled or enabled, an only child
//!   moved off offset 0, a per-CPU root's alias child changed so that the root stops sharing
//!   its twin's view. Each space's view must come from the region
//!   [`Memory::physical_root`] names now, and spaces share one view exactly when they share
//!   that root (or a structurally identical one).

use std::sync::Arc;

use addrspace::{AddressSpace, Memory, RegionId, Unassigned, SIZE_2_64};

/// The region each space's published view was rendered from.
fn view_root(s: &AddressSpace) -> Option<RegionId> {
    s.view().root()
}

/// Every space's view comes from its root's physical root as the graph stands now.
fn check_roots(mem: &Memory, spaces: &[&AddressSpace]) {
    for s in spaces {
        assert_eq!(
            view_root(s),
            mem.physical_root(s.root()).unwrap(),
            "space {} shows a view of a stale physical root",
            s.name()
        );
    }
}

/// `system` with RAM, a `pci` container under it at priority -1 (as on q35), and `n`
/// bus-master spaces (a container holding a full-size alias of `system`).
fn q35_like(mem: &Memory, n: usize) -> (RegionId, RegionId, Vec<AddressSpace>) {
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", 0x10_0000).unwrap();
    let pci = mem.container("pci", SIZE_2_64).unwrap();
    let _tx = mem.transaction();
    mem.add_subregion(system, 0, ram).unwrap();
    mem.add_subregion_overlap(system, 0, pci, -1).unwrap();
    let mut spaces = vec![mem.address_space("memory", system).unwrap()];
    for i in 0..n {
        let root = mem.container(&format!("bm{i}-container"), SIZE_2_64).unwrap();
        let alias = mem.alias(&format!("bm{i}"), system, 0, SIZE_2_64).unwrap();
        mem.add_subregion(root, 0, alias).unwrap();
        spaces.push(mem.address_space(&format!("dev{i}"), root).unwrap());
    }
    (system, pci, spaces)
}

#[test]
fn changes_below_a_shared_root_simplify_no_space_again() {
    let mem = Memory::new();
    let (system, pci, spaces) = q35_like(&mem, 8);
    let bar = mem.io("bar", 0x1000, Arc::new(Unassigned)).unwrap();
    let rom = mem.rom_device("rom", 0x1000, Arc::new(Unassigned)).unwrap();
    let leaf = mem.io("leaf", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(pci, 0x8000_0000, rom).unwrap();
    mem.add_subregion(pci, 0x9000_0000, leaf).unwrap();
    let before = mem.stats();
    let view = spaces[0].view();
    mem.add_subregion_overlap(pci, 0xc000_0000, bar, 1).unwrap();
    mem.set_address(bar, 0xd000_0000).unwrap();
    mem.set_priority(bar, 2).unwrap();
    mem.set_romd(rom, false).unwrap();
    mem.set_readonly(leaf, true).unwrap();
    mem.set_enabled(leaf, false).unwrap();
    mem.set_size(leaf, 0x800).unwrap();
    mem.remove_subregion(pci, bar).unwrap();
    let after = mem.stats();
    assert_eq!(after.commits - before.commits, 8, "every change was committed");
    assert!(
        !Arc::ptr_eq(&view, &spaces[0].view()),
        "the changes reached the shared view"
    );
    assert_eq!(
        after.resimplified, before.resimplified,
        "no change inside `pci` can change what a space simplifies to"
    );
    // All spaces still show system's view, one view for all.
    check_roots(&mem, &spaces.iter().collect::<Vec<_>>());
    assert!(spaces.iter().all(|s| view_root(s) == Some(system)));
    assert!(spaces.iter().all(|s| Arc::ptr_eq(&s.view(), &spaces[0].view())));
}

#[test]
fn a_change_of_system_itself_simplifies_the_spaces_that_follow_it() {
    let mem = Memory::new();
    let (_, _, spaces) = q35_like(&mem, 8);
    let before = mem.stats().resimplified;
    let system = spaces[0].root();
    let dev = mem.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(system, 0x4000_0000, dev).unwrap();
    // system's own children changed: every space whose chain holds it is simplified again.
    assert_eq!(mem.stats().resimplified - before, spaces.len() as u64);
    check_roots(&mem, &spaces.iter().collect::<Vec<_>>());
}

/// A container `c` with an only child `x` (which holds two RAMs: it is its own physical root)
/// too big to stand for it, a space on each.
fn only_child(mem: &Memory) -> (RegionId, RegionId, AddressSpace, AddressSpace) {
    let c = mem.container("c", 0x1_0000).unwrap();
    let x = mem.container("x", 0x2_0000).unwrap();
    let (low, high) = (mem.ram("low", 0x1000).unwrap(), mem.ram("high", 0x1000).unwrap());
    let _tx = mem.transaction();
    mem.add_subregion(x, 0, low).unwrap();
    mem.add_subregion(x, 0x2000, high).unwrap();
    mem.add_subregion(c, 0, x).unwrap();
    let (a, b) = (
        mem.address_space("on-c", c).unwrap(),
        mem.address_space("on-x", x).unwrap(),
    );
    (c, x, a, b)
}

#[test]
fn resizing_an_only_child_to_fit_its_container_simplifies_the_container() {
    let mem = Memory::new();
    let (c, x, a, b) = only_child(&mem);
    assert_eq!(
        view_root(&a),
        Some(c),
        "a child bigger than its container does not stand for it"
    );
    mem.set_size(x, 0x1_0000).unwrap();
    check_roots(&mem, &[&a, &b]);
    assert_eq!(view_root(&a), Some(x), "the child now fits: `c` simplifies to it");
    assert!(Arc::ptr_eq(&a.view(), &b.view()), "both spaces show x's one view");
    mem.set_size(x, 0x1_8000).unwrap();
    check_roots(&mem, &[&a, &b]);
    assert_eq!(view_root(&a), Some(c));
}

#[test]
fn disabling_or_enabling_a_second_child_changes_what_the_container_simplifies_to() {
    let mem = Memory::new();
    let (c, x, a, b) = only_child(&mem);
    mem.set_size(x, 0x8000).unwrap();
    let y = mem.ram("y", 0x1000).unwrap();
    mem.add_subregion(c, 0x8000, y).unwrap();
    assert_eq!(view_root(&a), Some(c), "two enabled children: `c` is its own root");
    mem.set_enabled(y, false).unwrap();
    check_roots(&mem, &[&a, &b]);
    assert_eq!(view_root(&a), Some(x), "one enabled child at 0: `c` simplifies to it");
    mem.set_enabled(y, true).unwrap();
    check_roots(&mem, &[&a, &b]);
    assert_eq!(view_root(&a), Some(c));
    // The only child itself disabled: `c` is empty.
    mem.remove_subregion(c, y).unwrap();
    mem.set_enabled(x, false).unwrap();
    check_roots(&mem, &[&a, &b]);
    assert_eq!(view_root(&a), None, "no enabled child: the empty view");
}

#[test]
fn moving_an_only_child_off_offset_zero_stops_the_simplification() {
    let mem = Memory::new();
    let (c, x, a, b) = only_child(&mem);
    mem.set_size(x, 0x8000).unwrap();
    assert_eq!(view_root(&a), Some(x));
    mem.set_address(x, 0x1000).unwrap();
    check_roots(&mem, &[&a, &b]);
    assert_eq!(
        view_root(&a),
        Some(c),
        "a child at 0x1000 does not stand for its container"
    );
    mem.set_address(x, 0).unwrap();
    check_roots(&mem, &[&a, &b]);
    assert_eq!(view_root(&a), Some(x));
}

#[test]
fn changing_an_alias_child_of_a_per_cpu_root_ends_its_sharing() {
    let mem = Memory::new();
    let (system, _, mut spaces) = q35_like(&mem, 0);
    let smram = mem.ram("smram", 0x2_0000).unwrap();
    let mut children = Vec::new();
    for cpu in 0..2 {
        let _tx = mem.transaction();
        let root = mem.container(&format!("smm-{cpu}"), SIZE_2_64).unwrap();
        let sys = mem.alias(&format!("smm-system-{cpu}"), system, 0, SIZE_2_64).unwrap();
        let sm = mem.alias(&format!("smram-{cpu}"), smram, 0, 0x2_0000).unwrap();
        mem.add_subregion(root, 0, sys).unwrap();
        mem.add_subregion_overlap(root, 0xa_0000, sm, 1).unwrap();
        spaces.push(mem.address_space(&format!("cpu-smm-{cpu}"), root).unwrap());
        children.push(sm);
    }
    let (smm0, smm1) = (&spaces[1], &spaces[2]);
    assert!(
        Arc::ptr_eq(&smm0.view(), &smm1.view()),
        "identical per-CPU roots share a view"
    );
    let sharing = |on: bool| {
        assert_eq!(Arc::ptr_eq(&smm0.view(), &smm1.view()), on);
        for s in [smm0, smm1] {
            let root = mem.physical_root(s.root()).unwrap();
            assert_eq!(root, Some(s.root()), "a per-CPU root is its own physical root");
        }
    };
    // Each change touches only CPU 1's alias; the alias is on CPU 1's chain (a child of its
    // root), which is what must bring CPU 1 off CPU 0's view and back.
    mem.set_readonly(children[1], true).unwrap();
    sharing(false);
    assert_eq!(view_root(smm1), Some(smm1.root()));
    mem.set_readonly(children[1], false).unwrap();
    sharing(true);
    mem.set_alias_offset(children[1], 0x1000).unwrap();
    sharing(false);
    mem.set_alias_offset(children[1], 0).unwrap();
    sharing(true);
    mem.set_size(children[1], 0x1_0000).unwrap();
    sharing(false);
}
