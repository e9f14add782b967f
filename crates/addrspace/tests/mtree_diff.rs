//! `mtree::diff` on two small machines built through the API: every kind of region change is
//! reported once, against the region's place in the tree (same-named siblings told apart by
//! index), and the flat ranges that differ are listed by address, per group of spaces.

use addrspace::mtree::diff::{diff, AliasOf, Change, RegionChange};
use addrspace::{AddressSpace, Memory, Unassigned, SIZE_2_64};
use std::sync::Arc;

/// A small machine (and its address spaces, which live as long as they are held); `changed`
/// applies one of each change to it.
fn machine(changed: bool) -> (Memory, Vec<AddressSpace>) {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let ram = m.ram("ram", 0x10000).unwrap();
    let low = m.alias("low", ram, 0, 0x8000).unwrap();
    m.add_subregion(sys, 0, low).unwrap();
    let bus = m.container("bus", 0x1000).unwrap();
    m.add_subregion(sys, 0x10_0000, bus).unwrap();
    let mut uarts = Vec::new();
    for addr in [0x100, 0x200] {
        let uart = m.io("uart", 0x10, Arc::new(Unassigned)).unwrap();
        m.add_subregion(bus, addr, uart).unwrap();
        uarts.push(uart);
    }
    let rtc = m.io("rtc", 0x10, Arc::new(Unassigned)).unwrap();
    m.add_subregion(bus, 0x300, rtc).unwrap();
    let flash = m.rom("flash", 0x1000).unwrap();
    m.add_subregion_overlap(sys, 0xf000, flash, 0).unwrap();
    let io = m.container("io", 0x10000).unwrap();
    let spaces = vec![
        m.address_space("memory", sys).unwrap(),
        m.address_space("dma", sys).unwrap(),
        m.address_space("I/O", io).unwrap(),
    ];
    if changed {
        m.set_address(uarts[1], 0x280).unwrap();
        m.set_enabled(rtc, false).unwrap();
        m.set_size(bus, 0x2000).unwrap();
        m.set_priority(flash, 2).unwrap();
        m.set_alias_offset(low, 0x1000).unwrap();
        let port = m.io("port", 4, Arc::new(Unassigned)).unwrap();
        m.add_subregion(io, 0x60, port).unwrap();
    }
    (m, spaces)
}

/// The diff of the unchanged machine and the changed one (or the reverse).
fn diff_of(a: bool, b: bool) -> addrspace::mtree::MachineDiff {
    diff(&machine(a).0, &machine(b).0)
}

fn change(path: &[&str], change: Change) -> RegionChange {
    RegionChange {
        path: path.iter().map(|s| s.to_string()).collect(),
        change,
    }
}

#[test]
fn every_change_is_reported_at_its_place_in_the_tree() {
    let d = diff_of(false, true);
    let sys = "system (AS memory)";
    let want = [
        change(
            &[sys, "low"],
            Change::Retargeted {
                from: AliasOf {
                    target: vec!["ram".into()],
                    offset: 0,
                },
                to: AliasOf {
                    target: vec!["ram".into()],
                    offset: 0x1000,
                },
            },
        ),
        change(&[sys, "flash"], Change::Priority { from: 0, to: 2 }),
        change(
            &[sys, "bus"],
            Change::Resized {
                from: 0x1000,
                to: 0x2000,
            },
        ),
        change(&[sys, "bus", "uart#1"], Change::Moved { from: 0x200, to: 0x280 }),
        change(&[sys, "bus", "rtc"], Change::Disabled),
    ];
    let got: Vec<&RegionChange> = d
        .regions
        .iter()
        .filter(|c| !matches!(c.change, Change::Added(_)))
        .collect();
    assert_eq!(got, want.iter().collect::<Vec<_>>(), "{:#?}", d.regions);
    let added: Vec<&RegionChange> = d
        .regions
        .iter()
        .filter(|c| matches!(c.change, Change::Added(_)))
        .collect();
    assert_eq!(added.len(), 1, "{added:#?}");
    assert_eq!(added[0].path, ["io (AS I/O)", "port"]);
    let Change::Added(st) = &added[0].change else {
        unreachable!()
    };
    assert_eq!((st.kind, st.addr, st.size), ("io", 0x60, 4));

    // The reverse diff says the opposite.
    let back = diff_of(true, false);
    assert!(back
        .regions
        .iter()
        .any(|c| c.path == [sys, "bus", "rtc"] && c.change == Change::Enabled));
    assert!(back
        .regions
        .iter()
        .any(|c| c.path == ["io (AS I/O)", "port"] && matches!(c.change, Change::Removed(_))));
}

#[test]
fn flat_changes_are_by_address_and_grouped_by_space() {
    let d = diff_of(false, true);
    assert_eq!(d.spaces.len(), 2, "{:#?}", d.spaces);
    assert_eq!(d.spaces[0].spaces, ["memory", "dma"]);
    assert_eq!(d.spaces[1].spaces, ["I/O"]);
    let lines: Vec<String> = d.spaces[0]
        .lines
        .iter()
        .map(|l| format!("{}{}", l.sign, l.range))
        .collect();
    // `low` now shows `ram` from 0x1000; `uart#1` moved; `rtc` is gone. `flash` changed
    // priority only, which `info mtree -f` prints: its line changes too.
    assert_eq!(
        lines,
        [
            "-0000000000000000-0000000000007fff (prio 0, ram): ram",
            "+0000000000000000-0000000000007fff (prio 0, ram): ram @0000000000001000",
            "-000000000000f000-000000000000ffff (prio 0, rom): flash",
            "+000000000000f000-000000000000ffff (prio 2, rom): flash",
            "-0000000000100200-000000000010020f (prio 0, i/o): uart",
            "+0000000000100280-000000000010028f (prio 0, i/o): uart",
            "-0000000000100300-000000000010030f (prio 0, i/o): rtc",
        ]
    );
    assert_eq!(d.spaces[1].lines.len(), 1);
    assert_eq!(d.spaces[1].lines[0].sign, '+');
}

#[test]
fn identical_machines_have_an_empty_diff() {
    let d = diff_of(true, true);
    assert!(d.is_empty(), "{d:#?}");
}

/// A second space over a root (a second CPU's `cpu-memory-1` over `system`) changes no
/// region's place: roots are named after their first address space, not after all of them.
#[test]
fn a_space_added_over_an_existing_root_renames_no_region() {
    let (a, _a_spaces) = machine(false);
    let (b, mut b_spaces) = machine(false);
    let system = b_spaces[0].root();
    b_spaces.push(b.address_space("cpu-memory-1", system).unwrap());
    let d = diff(&a, &b);
    assert!(d.regions.is_empty(), "region changes: {:?}", d.regions);
}
