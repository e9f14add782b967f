//! Cycles through aliases into ancestors: which ones are accepted (and render as QEMU does),
//! how a non-terminating one is refused, what the error says, and that a refusal loses
//! nothing already built — through the API (`Memory::add_subregion_overlap`, `set_address`,
//! `set_alias_offset`, `set_size`), a board file (`file:line:column` of the subregion entry
//! that closes the cycle) and an `info mtree -D` dump (the dump line).
//!
//! The refusals exercised: an alias showing exactly the addresses it sits at (directly, two
//! levels up, through an alias of an alias, and an `a → b → a` pair whose shifts cancel), the
//! `cycle::MAX_REENTRIES` limit at its exact boundary, and the `cycle::PROBE_BUDGET` of a
//! cycle pair whose paths multiply.

use std::sync::{Arc, Mutex};

use addrspace::mtree::{self, Hints};
use addrspace::{board, Error, FlatView, LoadError, Memory, MemoryListener, RegionId, Section, Unassigned, SIZE_2_64};

/// Counts every callback it gets.
#[derive(Default)]
struct Calls(Mutex<u32>);

impl MemoryListener for Calls {
    fn begin(&self) {
        *self.0.lock().unwrap() += 1;
    }
    fn region_add(&self, _: &Section<'_>) {
        *self.0.lock().unwrap() += 1;
    }
    fn region_del(&self, _: &Section<'_>) {
        *self.0.lock().unwrap() += 1;
    }
}

/// `(start, name, offset)` of every range.
fn ranges(v: &FlatView) -> Vec<(u64, String, u64)> {
    v.ranges()
        .iter()
        .map(|r| (r.start().0, r.name().to_string(), r.offset_in_region().0))
        .collect()
}

/// The fields of an `EndlessCycle` error (panics on anything else).
fn endless(r: addrspace::Result<()>) -> (String, String, String) {
    match r {
        Err(Error::EndlessCycle { change, why, chain }) => (change, why, chain),
        other => panic!("expected Error::EndlessCycle, got {other:?}"),
    }
}

/// A system (2^64) with RAM at 0 and a device at 0x4000_0000, an address space over it with a
/// counting listener.
struct Machine {
    m: Memory,
    sys: RegionId,
    space: addrspace::AddressSpace,
    calls: Arc<Calls>,
    _handle: addrspace::ListenerHandle,
}

fn machine() -> Machine {
    let m = Memory::new();
    let sys = m.container("system", SIZE_2_64).unwrap();
    let ram = m.ram("ram", 0x1000).unwrap();
    m.add_subregion(sys, 0, ram).unwrap();
    let dev = m.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    m.add_subregion(sys, 0x4000_0000, dev).unwrap();
    let space = m.address_space("memory", sys).unwrap();
    let calls = Arc::new(Calls::default());
    let handle = space.register_listener(calls.clone(), 0).unwrap();
    Machine {
        m,
        sys,
        space,
        calls,
        _handle: handle,
    }
}

impl Machine {
    /// Runs `f`, which must be refused as an endless cycle, and checks that nothing changed:
    /// every region reads back the same, the view is the same `Arc`, no render, no callback.
    fn refused(&self, f: impl FnOnce(&Memory) -> addrspace::Result<()>) -> (String, String, String) {
        let regions: Vec<_> = self
            .m
            .regions()
            .into_iter()
            .map(|r| self.m.region_info(r).unwrap())
            .collect();
        let (view, stats, calls) = (self.space.view(), self.m.stats(), *self.calls.0.lock().unwrap());
        let err = endless(f(&self.m));
        let now: Vec<_> = self
            .m
            .regions()
            .into_iter()
            .map(|r| self.m.region_info(r).unwrap())
            .collect();
        assert_eq!(now, regions, "a refused change changed the graph");
        assert!(
            Arc::ptr_eq(&view, &self.space.view()),
            "a refused change published a view"
        );
        assert_eq!(self.m.stats().renders, stats.renders, "a refused change rendered");
        assert_eq!(
            *self.calls.0.lock().unwrap(),
            calls,
            "a refused change called the listener"
        );
        err
    }
}

#[test]
fn an_alias_showing_where_it_sits_is_refused_and_nothing_is_lost() {
    let mm = machine();
    let (m, sys) = (&mm.m, mm.sys);
    let before = ranges(&mm.space.view());
    let lp = m.alias("loop", sys, 0x3000_0000, 0x1000).unwrap();
    let (change, why, chain) = mm.refused(|m| m.add_subregion_overlap(sys, 0x3000_0000, lp, -1500));
    assert_eq!(change, "mapping `loop` into `system`");
    assert_eq!(
        why,
        "`system` comes back to itself at the same address, so rendering would never end \
         (QEMU recurses until its stack overflows)"
    );
    assert_eq!(chain, "`system` → `loop` → `system`");
    let err = m.add_subregion_overlap(sys, 0x3000_0000, lp, -1500).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("mapping `loop` into `system` would create a cycle QEMU cannot render: {why}; the path: {chain}")
    );
    assert_eq!(m.region_info(lp).unwrap().container, None, "the alias stays unmapped");
    assert_eq!(ranges(&mm.space.view()), before);
    // The same alias one page off is fine: QEMU renders it, and so do we (the device a
    // second time, at 0x3000_0000 + 0x1000_0000 - 0x1000).
    m.set_alias_offset(lp, 0x3000_1000).unwrap();
    m.add_subregion_overlap(sys, 0x3000_0000, lp, -1500).unwrap();
    assert_eq!(ranges(&mm.space.view()), before, "the window shows nothing there");
    m.set_alias_offset(lp, 0x4000_0000).unwrap();
    let seen = ranges(&mm.space.view());
    assert!(seen.contains(&(0x3000_0000, "dev".into(), 0)), "{seen:?}");
    // Now moving it or re-offsetting it onto itself is refused, again losing nothing.
    let (change, _, chain) = mm.refused(|m| m.set_address(lp, 0x4000_0000));
    assert_eq!(change, "moving `loop` to 0x40000000 in `system`");
    assert_eq!(chain, "`system` → `loop` → `system`");
    let (change, _, chain) = mm.refused(|m| m.set_alias_offset(lp, 0x3000_0000));
    assert_eq!(change, "setting the offset of `loop` to 0x30000000");
    assert_eq!(chain, "`loop` → `system` → `loop`");
}

#[test]
fn the_chain_names_every_region_on_the_path() {
    let mm = machine();
    let (m, sys) = (&mm.m, mm.sys);
    // Two levels: an alias of system inside a bus inside system.
    let bus = m.container("bus", 0x1000_0000).unwrap();
    m.add_subregion(sys, 0x1000_0000, bus).unwrap();
    let lp = m.alias("loop", sys, 0x1000_2000, 0x1000).unwrap();
    let (change, _, chain) = mm.refused(|m| m.add_subregion(bus, 0x2000, lp));
    assert_eq!(change, "mapping `loop` into `bus`");
    assert_eq!(chain, "`bus` → `loop` → `system` → `bus`");
    // Through an alias of an alias.
    let inner = m.alias("inner", sys, 0x1000_0000, 0x4000).unwrap();
    let outer = m.alias("outer", inner, 0x2000, 0x1000).unwrap();
    let (_, _, chain) = mm.refused(|m| m.add_subregion(bus, 0x2000, outer));
    assert_eq!(chain, "`bus` → `outer` → `inner` → `system` → `bus`");
    // An `a → b → a` pair: each alone is fine (shifts +0x1000 and -0x1000), together they
    // come back to the same window.
    let a = m.alias("a", sys, 0x2000_0000, 0x4000).unwrap();
    m.add_subregion(sys, 0x2000_1000, a).unwrap();
    let b = m.alias("b", sys, 0x2000_1000, 0x4000).unwrap();
    let (_, why, chain) = mm.refused(|m| m.add_subregion(sys, 0x2000_0000, b));
    assert!(why.contains("same address"), "{why}");
    assert!(
        chain == "`system` → `a` → `system` → `b` → `system`" || chain == "`system` → `b` → `system` → `a` → `system`",
        "{chain}"
    );
}

#[test]
fn the_reentry_limit_is_exact() {
    let mm = machine();
    let (m, sys) = (&mm.m, mm.sys);
    // Shifting by a page each trip, a window of 64 pages re-enters system 64 times: the RAM
    // at 0 shows at 0, 0x1000, ..., 0x40000.
    let a = m.alias("a", sys, 0, 0x4_0000).unwrap();
    m.add_subregion(sys, 0x1000, a).unwrap();
    let seen = ranges(&mm.space.view());
    let copies: Vec<u64> = seen.iter().filter(|r| r.1 == "ram").map(|r| r.0).collect();
    assert_eq!(copies, (0..=64).map(|k| k * 0x1000).collect::<Vec<_>>());
    assert_eq!(ranges(&m.render(sys).unwrap()), seen);
    // Re-entries are counted of every region on the cycles through a change, along paths that
    // start in it. So 65 pages are refused when mapped...
    m.remove_subregion(sys, a).unwrap();
    m.set_size(a, 0x4_1000).unwrap();
    let (change, why, chain) = mm.refused(|m| m.add_subregion(sys, 0x1000, a));
    assert_eq!(change, "mapping `a` into `system`");
    assert_eq!(why, "rendering would re-enter `system` more than 64 times");
    // ... and the long path is shortened in the middle.
    assert!(chain.starts_with("`system` → `a` → `system` → `a`"), "{chain}");
    assert!(chain.contains(" → … (") && chain.contains(" more) … → "), "{chain}");
    assert!(chain.ends_with("`a` → `system`"), "{chain}");
    // ... and when grown to 65 after being mapped at 64: paths from `a` re-enter it only 64
    // times (its own window starts one trip later), but paths from `system` re-enter
    // `system` 65 times, whichever region the change is at.
    m.set_size(a, 0x4_0000).unwrap();
    m.add_subregion(sys, 0x1000, a).unwrap();
    let (change, why, _) = mm.refused(|m| m.set_size(a, 0x4_1000));
    assert_eq!(change, "resizing `a` to 0x41000");
    assert_eq!(why, "rendering would re-enter `system` more than 64 times");
    // Shrinking is never refused.
    m.set_size(a, 0x2000).unwrap();
    assert_eq!(ranges(&mm.space.view()), ranges(&m.render(sys).unwrap()));
}

#[test]
fn the_probe_budget_refuses_paths_that_multiply() {
    let mm = machine();
    let (m, sys) = (&mm.m, mm.sys);
    // Two aliases shifting by 2 and 3 units: the paths through them are the compositions of
    // up to 60 units into 2s and 3s, millions of them, each short (< 30 re-entries).
    let two = m.alias("two", sys, 0, 0x3c00).unwrap();
    m.add_subregion(sys, 0x200, two).unwrap();
    let three = m.alias("three", sys, 0, 0x3c00).unwrap();
    let (change, why, chain) = mm.refused(|m| m.add_subregion(sys, 0x300, three));
    assert_eq!(change, "mapping `three` into `system`");
    assert_eq!(
        why,
        format!(
            "rendering `system` would make more than {} visits through its cycles",
            addrspace::cycle::PROBE_BUDGET
        )
    );
    assert!(chain.starts_with("`system` → "), "{chain}");
}

#[test]
fn a_refused_move_keeps_the_place_among_equal_priorities() {
    let mm = machine();
    let (m, sys) = (&mm.m, mm.sys);
    let a = m.alias("a", sys, 0x2000_0000, 0x1000).unwrap();
    m.add_subregion(sys, 0x2000_1000, a).unwrap();
    let newer = m.io("newer", 0x1000, Arc::new(Unassigned)).unwrap();
    m.add_subregion(sys, 0x2000_1000, newer).unwrap();
    let order = m.region_info(sys).unwrap().subregions;
    // A real move would make `a` the newest; refused, it stays older than `newer`.
    mm.refused(|m| m.set_address(a, 0x2000_0000));
    assert_eq!(m.region_info(sys).unwrap().subregions, order);
    let seen = ranges(&mm.space.view());
    assert!(seen.contains(&(0x2000_1000, "newer".into(), 0)), "{seen:?}");
}

#[test]
fn sse_200_ancestor_aliases_render_as_qemu_does() {
    // ARM SSE-200: `alias 1` shows [0, 0x1000_0000) of armsse-container at 0x1000_0000
    // (prio -1500); each CPU's `alias 3` shows its container's [0x4000_0000, 0x5000_0000) at
    // 0x5000_0000, under the CPU's private devices and over an alias of the shared container.
    let m = Memory::new();
    let c = m.container("armsse-container", SIZE_2_64).unwrap();
    let rom = m.rom("rom", 0x1000).unwrap();
    m.add_subregion(c, 0x800, rom).unwrap();
    let dev = m.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    m.add_subregion(c, 0x4000_0000, dev).unwrap();
    let a1 = m.alias("alias 1", c, 0, 0x1000_0000).unwrap();
    m.add_subregion_overlap(c, 0x1000_0000, a1, -1500).unwrap();
    let cpu = m.container("arm-sse-cpu-container0", SIZE_2_64).unwrap();
    let a0 = m.alias("alias 0", c, 0, SIZE_2_64).unwrap();
    m.add_subregion_overlap(cpu, 0, a0, -1).unwrap();
    let nvic = m.io("nvic", 0x1000, Arc::new(Unassigned)).unwrap();
    m.add_subregion(cpu, 0x4000_1000, nvic).unwrap();
    let a3 = m.alias("alias 3", cpu, 0x4000_0000, 0x1000_0000).unwrap();
    m.add_subregion_overlap(cpu, 0x5000_0000, a3, -1500).unwrap();
    let sys = m.address_space("memory", c).unwrap();
    let cpu0 = m.address_space("cpu-memory-0", cpu).unwrap();
    let want_sys = [(0x800, "rom", 0), (0x1000_0800, "rom", 0), (0x4000_0000, "dev", 0)];
    let want_cpu = [
        (0x800, "rom", 0),
        (0x1000_0800, "rom", 0),
        (0x4000_0000, "dev", 0),
        (0x4000_1000, "nvic", 0),
        (0x5000_0000, "dev", 0),
        (0x5000_1000, "nvic", 0),
    ];
    let own = |w: &[(u64, &str, u64)]| w.iter().map(|&(a, n, o)| (a, n.to_string(), o)).collect::<Vec<_>>();
    assert_eq!(ranges(&sys.view()), own(&want_sys));
    assert_eq!(ranges(&cpu0.view()), own(&want_cpu));
    // A change inside the shared container shows through both aliases at once.
    m.set_address(dev, 0x4000_2000).unwrap();
    let seen = ranges(&cpu0.view());
    assert!(seen.contains(&(0x4000_2000, "dev".into(), 0)) && seen.contains(&(0x5000_2000, "dev".into(), 0)));
    assert_eq!(seen, ranges(&m.render(cpu).unwrap()));
    // So does one that only `alias 1` shows elsewhere in the same view.
    m.set_address(rom, 0x900).unwrap();
    let seen = ranges(&sys.view());
    assert_eq!(
        seen,
        [
            (0x900, "rom".into(), 0),
            (0x1000_0900, "rom".into(), 0),
            (0x4000_2000, "dev".into(), 0)
        ]
    );
    assert_eq!(seen, ranges(&m.render(c).unwrap()));
    assert_eq!(ranges(&cpu0.view()), ranges(&m.render(cpu).unwrap()));
}

/// A board whose `system` maps `loop`, an alias of `system` showing `offset` at `addr`.
fn board_with(offset: &str, addr: &str) -> String {
    format!(
        r#"[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  {{ region = "ram", addr = 0 }},
  {{ region = "loop", addr = "{addr}", priority = -1500 }},
]

[[region]]
name = "ram"
type = "ram"
size = "4K"

[[region]]
name = "loop"
type = "alias"
target = "system"
offset = "{offset}"
size = "4K"

[[address-space]]
name = "memory"
root = "system"
"#
    )
}

#[test]
fn a_board_names_the_subregion_entry_that_closes_an_endless_cycle() {
    let err = board::load_str(&board_with("0x3000", "0x3000"), "board.toml").unwrap_err();
    let LoadError::Board {
        file,
        line,
        column,
        msg,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((file.as_str(), *line, *column), ("board.toml", 7, 14), "{err}");
    assert!(
        msg.starts_with("mapping `loop` into `system` would create a cycle QEMU cannot render: "),
        "{msg}"
    );
    assert!(msg.ends_with("the path: `system` → `loop` → `system`"), "{msg}");
    // One page off, the same board loads and shows the RAM twice.
    let machine = board::load_str(&board_with("0x0", "0x3000"), "board.toml").unwrap();
    let seen = ranges(&machine.address_space("memory").unwrap().view());
    assert_eq!(seen, [(0, "ram".into(), 0), (0x3000, "ram".into(), 0)]);
    // The cycle can close at a container's entry instead: `loop` goes into `bus` first, then
    // `bus` into `system` (line 12) closes it.
    let text = r#"[[region]]
name = "bus"
type = "container"
size = "64K"
subregions = [{ region = "loop", addr = "0x2000" }]

[[region]]
name = "system"
type = "container"
size = "2^64"
subregions = [
  { region = "bus", addr = "0x1000" },
]

[[region]]
name = "loop"
type = "alias"
target = "system"
offset = "0x3000"
size = "4K"
"#;
    let err = board::load_str(text, "bus.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("bus.toml:12:14: mapping `bus` into `system` would create a cycle"),
        "{err}"
    );
}

/// A dump of `system` with `ram` and an alias `loop` of `system` showing `offset` at 0x3000.
fn dump_with(offset: u64) -> String {
    let body = format!(
        "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n    \
         0000000000000000-0000000000000fff (prio 0, ram): ram\n    \
         0000000000003000-0000000000003fff (prio 0, i/o): alias loop @system {offset:016x}-{:016x}\n",
        offset + 0xfff
    );
    format!("address-space: memory\n{body}\nmemory-region: system\n{body}\n")
}

#[test]
fn an_imported_dump_names_the_line_of_an_endless_alias() {
    let err = mtree::import_dump(&dump_with(0x3000), "dump.txt", &Hints::default()).unwrap_err();
    let LoadError::Dump { file, line, msg, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((file.as_str(), *line), ("dump.txt", 4), "{err}");
    assert!(
        msg.starts_with("mapping `loop` into `system` would create a cycle QEMU cannot render: ")
            && msg.ends_with("the path: `system` → `loop` → `system`"),
        "{msg}"
    );
    // A shifted window imports, and prints back as it was.
    let dump = dump_with(0);
    let machine = mtree::import_dump(&dump, "dump.txt", &Hints::default()).unwrap();
    assert_eq!(mtree::print_tree(&machine.memory, &Default::default()), dump);
    let seen = ranges(&machine.address_space("memory").unwrap().view());
    assert_eq!(seen, [(0, "ram".into(), 0), (0x3000, "ram".into(), 0)]);
}

/// The cycle rules are a property of the graph, not of the order it was built in: an alias
/// mapped small and then grown is accepted or refused exactly as the same alias mapped at its
/// final size (what the importer and the board loader do), and a machine the API accepted
/// survives its own dump and its own board export. At the boundary: an alias at 0x1000 of
/// `system`'s first 0x4_0000 bytes makes rendering `system` come back to it 64 times
/// (accepted); 0x4_1000 bytes, 65 times (refused), whichever region the last change was at.
/// (Before, the limits were counted only from the changed region: growing the alias was
/// accepted — 64 re-entries of the alias — and the dump of that machine failed to import.)
#[test]
fn acceptance_does_not_depend_on_build_order() {
    let build = |grow: bool, size: u128| {
        let m = Memory::new();
        let sys = m.container("system", SIZE_2_64).unwrap();
        let ram = m.ram("ram", 0x1000).unwrap();
        m.add_subregion(sys, 0, ram).unwrap();
        let result = if grow {
            let a = m.alias("a", sys, 0, 0x1000).unwrap();
            m.add_subregion(sys, 0x1000, a).unwrap();
            m.set_size(a, size).map(|()| a)
        } else {
            let a = m.alias("a", sys, 0, size).unwrap();
            m.add_subregion(sys, 0x1000, a).map(|()| a)
        };
        (m, sys, ram, result)
    };
    for (size, accepted) in [(0x4_0000u128, true), (0x4_1000, false)] {
        for grow in [false, true] {
            let (m, sys, ram, result) = build(grow, size);
            assert_eq!(result.is_ok(), accepted, "size {size:#x}, grown: {grow}: {result:?}");
            let Ok(a) = result else { continue };
            let space = m.address_space("memory", sys).unwrap();
            let dump = mtree::print_tree(&m, &Default::default());
            let imported = mtree::import_dump(&dump, "dump.txt", &Hints::default());
            assert!(
                imported.is_ok(),
                "the dump of an accepted machine: {:?}",
                imported.err()
            );
            let machine = addrspace::Machine {
                memory: m.clone(),
                address_spaces: vec![space],
                regions: vec![("system".into(), sys), ("ram".into(), ram), ("a".into(), a)],
                clusters: Vec::new(),
                description: None,
                cpu_tables: String::new(),
                devices: Vec::new(),
            };
            let reloaded = board::load_str(&board::export(&machine), "export.toml");
            assert!(
                reloaded.is_ok(),
                "the export of an accepted machine: {:?}",
                reloaded.err()
            );
        }
    }
}

/// Nested self-aliases: level i is a container C_i mapped at 0 in C_{i-1}, holding an alias
/// of itself that shifts what it shows by s_i per trip, ~60 trips (under MAX_REENTRIES).
/// Each cycle is its own strongly connected component, so each probe walks ~60 frames; a
/// render multiplies them: 60^levels visits.
fn nested(m: &Memory, levels: usize) -> Result<RegionId, addrspace::Error> {
    let trips: u64 = 60;
    let mut s: u64 = 1 << 56;
    let mut b: u64 = 1 << 62;
    let top = m.container("c0", SIZE_2_64)?;
    let mut c = top;
    for i in 0..levels {
        let w = trips * s;
        let a = m.alias(&format!("a{i}"), c, b - s, u128::from(w))?;
        m.add_subregion_overlap(c, b, a, 1)?;
        let leaf = m.ram(&format!("leaf{i}"), 0x1000)?;
        m.add_subregion(c, b + w - 0x1000, leaf)?;
        if i + 1 == levels {
            break;
        }
        // The next level sits at the left edge of every clip of this level's trips.
        let next = m.container(&format!("c{}", i + 1), u128::from(b + w))?;
        m.add_subregion(c, 0, next)?;
        c = next;
        b -= s;
        s /= 64;
    }
    Ok(top)
}

/// Cycles nested in cycles multiply: containers nested six deep, each holding an alias of
/// itself that goes round 60 times (under `MAX_REENTRIES`), would render 60^5 times per leaf.
/// Each cycle alone is small; the walk from the outer cycles goes through the inner ones and
/// counts them. (Found in review: the check once walked each cycle on its own, and all six
/// were accepted; four levels already rendered 223 384 ranges.)
#[test]
fn nested_self_aliases_are_refused_past_the_probe_budget() {
    let m = Memory::new();
    let r = nested(&m, 6);
    assert!(
        matches!(r, Err(addrspace::Error::EndlessCycle { .. })),
        "accepted a graph whose render visits ~60^5 regions: {r:?}"
    );
}

/// The same six nested self-aliases as a board file, which the loader builds bottom-up (the
/// inner cycles exist before the outer ones close): refused too, whatever the order.
#[test]
fn nested_self_aliases_in_a_board_file_are_refused() {
    let (trips, mut s, mut b) = (60u64, 1u64 << 56, 1u64 << 62);
    let mut text = String::new();
    let mut size = "2^64".to_string();
    for i in 0..6 {
        let w = trips * s;
        let mut subs = vec![
            format!("{{ region = \"a{i}\", addr = \"{b:#x}\", priority = 1 }}"),
            format!("{{ region = \"leaf{i}\", addr = \"{:#x}\" }}", b + w - 0x1000),
        ];
        if i + 1 < 6 {
            subs.push(format!("{{ region = \"c{}\", addr = 0 }}", i + 1));
        }
        text += &format!(
            "[[region]]\nname = \"c{i}\"\ntype = \"container\"\nsize = \"{size}\"\nsubregions = [\n  {}\n]\n\n",
            subs.join(",\n  ")
        );
        text += &format!(
            "[[region]]\nname = \"a{i}\"\ntype = \"alias\"\ntarget = \"c{i}\"\noffset = \"{:#x}\"\nsize = \"{w:#x}\"\n\n",
            b - s
        );
        text += &format!("[[region]]\nname = \"leaf{i}\"\ntype = \"ram\"\nsize = \"0x1000\"\n\n");
        size = format!("{:#x}", b + w);
        b -= s;
        s /= 64;
    }
    let r = addrspace::board::load_str(&text, "nested.toml");
    assert!(
        r.is_err(),
        "a board whose views would take ~60^5 visits to render loads"
    );
}
