//! A region with many aliases — `system` with one bus-master alias per device — carries a
//! change inside it to every view that shows it through one of them, as those aliases start
//! and stop leading to a view.
//!
//! Propagation skips aliases that lead nowhere a view is rooted, and for a region with many
//! aliases keeps the list of the others between commits (`model/graph/alias_reach.rs`). Each
//! test brings one alias to life by one of the changes that list depends on (a bus-master
//! container that stops simplifying onto `system` and roots a view of its own, an alias
//! enabled again, a window of `system` mapped into a rooted container, a new alias of an
//! alias) and then changes `system`: every space's published view must equal a fresh render
//! of its root. A list kept past such a change would leave the new view stale.

use std::sync::Arc;

use addrspace::{AddressSpace, FlatRange, Memory, RegionId, Unassigned, SIZE_2_64};

/// Devices: more than the number of aliases past which the list is kept.
const DEVICES: usize = 24;

struct Board {
    mem: Memory,
    system: RegionId,
    /// Bus-master containers and their aliases of `system`.
    bm: Vec<(RegionId, RegionId)>,
    spaces: Vec<AddressSpace>,
}

fn board() -> Board {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", 0x10_0000).unwrap();
    let mut spaces = Vec::new();
    let mut bm = Vec::new();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        // Two children: `system` is its own physical root from the start.
        let high = mem.ram("high", 0x1000).unwrap();
        mem.add_subregion(system, 0x1_0000_0000, high).unwrap();
        spaces.push(mem.address_space("memory", system).unwrap());
        for i in 0..DEVICES {
            let root = mem.container(&format!("bm{i}-container"), SIZE_2_64).unwrap();
            let alias = mem.alias(&format!("bm{i}"), system, 0, SIZE_2_64).unwrap();
            mem.add_subregion(root, 0, alias).unwrap();
            spaces.push(mem.address_space(&format!("dev{i}"), root).unwrap());
            bm.push((root, alias));
        }
    }
    Board {
        mem,
        system,
        bm,
        spaces,
    }
}

fn ranges(v: &addrspace::FlatView) -> Vec<FlatRange> {
    v.ranges().iter().cloned().collect()
}

impl Board {
    /// Maps one more device region into `system` (a change every view of it must show) and
    /// checks every space against a fresh render.
    fn change_system_and_check(&self, step: &str) {
        let n = self.mem.regions().len();
        let dev = self.mem.io(&format!("dev-{n}"), 0x1000, Arc::new(Unassigned)).unwrap();
        let addr = 0x1000_0000 + (n as u64) * 0x1_0000;
        self.mem.add_subregion(self.system, addr, dev).unwrap();
        for s in &self.spaces {
            let fresh = self.mem.render(s.root()).unwrap();
            assert_eq!(
                ranges(&s.view()),
                ranges(&fresh),
                "after {step}: space {} misses a change of system",
                s.name()
            );
        }
        let seen = self.spaces[0].lookup(addrspace::GuestAddr(addr));
        assert!(seen.is_some(), "after {step}: `memory` shows the new region");
    }

    /// A new container with a space on it, holding two RAMs (so that it is its own physical
    /// root whatever else it holds).
    fn rooted(&mut self, name: &str) -> RegionId {
        let c = self.mem.container(name, SIZE_2_64).unwrap();
        for (ram, at) in [("low", 0), ("high", 0x2000)] {
            let r = self.mem.ram(ram, 0x1000).unwrap();
            self.mem.add_subregion(c, at, r).unwrap();
        }
        self.spaces.push(self.mem.address_space(name, c).unwrap());
        c
    }

    /// Gives bus-master container `i` a second child: it no longer simplifies onto `system`
    /// and roots a view of its own, which sees `system` through its alias.
    fn own_view(&self, i: usize) {
        let extra = self.mem.io(&format!("extra{i}"), 0x1000, Arc::new(Unassigned)).unwrap();
        self.mem.add_subregion(self.bm[i].0, 0xffff_0000_0000, extra).unwrap();
    }
}

#[test]
fn a_bus_master_container_that_roots_its_own_view_hears_system() {
    let b = board();
    b.change_system_and_check("nothing");
    b.own_view(3);
    b.change_system_and_check("bm3 roots a view");
    b.own_view(17);
    b.change_system_and_check("bm17 roots a view");
}

#[test]
fn an_alias_enabled_again_carries_changes_again() {
    let b = board();
    b.own_view(5);
    b.mem.set_enabled(b.bm[5].1, false).unwrap();
    b.change_system_and_check("bm5's alias disabled");
    b.mem.set_enabled(b.bm[5].1, true).unwrap();
    b.change_system_and_check("bm5's alias enabled again");
}

#[test]
fn a_window_of_system_mapped_into_a_rooted_container_carries_changes() {
    let mut b = board();
    let top = b.rooted("top");
    // The low 4 GiB of system through an alias in an unmapped container: a dead end.
    let window = b.mem.container("window", 0x1_0000_0000).unwrap();
    let alias = b.mem.alias("sys-window", b.system, 0, 0x1_0000_0000).unwrap();
    b.mem.add_subregion(window, 0, alias).unwrap();
    b.change_system_and_check("window built");
    // Mapped (at an offset, so `top` is not a view layered over system's): it leads to `top`.
    b.mem.add_subregion(top, 0x100_0000_0000, window).unwrap();
    b.change_system_and_check("window mapped into top");
    b.mem.remove_subregion(top, window).unwrap();
    b.change_system_and_check("window unmapped from top");
}

#[test]
fn an_alias_of_a_bus_master_alias_carries_changes() {
    let mut b = board();
    let outer = b.rooted("outer");
    let again = b.mem.alias("bm11-again", b.bm[11].1, 0, SIZE_2_64).unwrap();
    b.mem.add_subregion_overlap(outer, 0, again, -1).unwrap();
    b.change_system_and_check("an alias of bm11's alias");
}
