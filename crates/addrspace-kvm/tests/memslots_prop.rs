//! Property: after every commit of random topology changes on a system root, the slot table
//! equals the page-aligned RAM-backed ranges of the system flat view, and KVM agrees (every
//! slot re-registers unchanged). Real KVM; skipped only without a usable /dev/kvm.

mod memslots_support;

use std::sync::Arc;

use addrspace::{Memory, RegionId, Unassigned};
use memslots_support::{actual, expected, vm};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Map region `r` (or move it if mapped) at `addr` with `prio`.
    Map {
        r: usize,
        addr: u64,
        prio: i32,
    },
    Unmap {
        r: usize,
    },
    Romd(bool),
    AliasOffset(u64),
    /// Several ops in one transaction.
    Batch(Vec<Op>),
}

fn leaf_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..REGIONS, 0u64..0x800, 0i32..3).prop_map(|(r, a, prio)| Op::Map { r, addr: a * 0x800, prio }),
        1 => (0..REGIONS).prop_map(|r| Op::Unmap { r }),
        1 => any::<bool>().prop_map(Op::Romd),
        1 => (0u64..32).prop_map(|o| Op::AliasOffset(o * 0x800)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => leaf_op(),
        1 => prop::collection::vec(leaf_op(), 1..5).prop_map(Op::Batch),
    ]
}

const REGIONS: usize = 8;

struct Machine {
    mem: Memory,
    sys: RegionId,
    regions: Vec<RegionId>,
    mapped: Vec<bool>,
    romdev: RegionId,
    alias: RegionId,
}

impl Machine {
    fn new() -> Machine {
        let mem = Memory::new();
        let sys = mem.container("system", 1 << 64).unwrap();
        let ram = mem.ram("ram", 0x10_0000).unwrap();
        let romdev = mem.rom_device("flash", 0x1_0000, Arc::new(Unassigned)).unwrap();
        let alias = mem.alias("ram-alias", ram, 0, 0x8000).unwrap();
        let regions = vec![
            ram,
            mem.ram("ram2", 0x1_0000).unwrap(),
            mem.rom("rom", 0x1_0000).unwrap(),
            romdev,
            mem.ram_device("ramd", 0x4000).unwrap(),
            mem.io("mmio-unaligned", 0x1800, Arc::new(Unassigned)).unwrap(),
            mem.io("mmio", 0x3000, Arc::new(Unassigned)).unwrap(),
            alias,
        ];
        Machine {
            mem,
            sys,
            mapped: vec![false; regions.len()],
            regions,
            romdev,
            alias,
        }
    }

    fn apply(&mut self, op: &Op) {
        let mem = &self.mem;
        match *op {
            Op::Map { r, addr, prio } => {
                let id = self.regions[r];
                if self.mapped[r] {
                    mem.set_address(id, addr).unwrap();
                    mem.set_priority(id, prio).unwrap();
                } else {
                    mem.add_subregion_overlap(self.sys, addr, id, prio).unwrap();
                    self.mapped[r] = true;
                }
            }
            Op::Unmap { r } => {
                if self.mapped[r] {
                    mem.remove_subregion(self.sys, self.regions[r]).unwrap();
                    self.mapped[r] = false;
                }
            }
            Op::Romd(on) => mem.set_romd(self.romdev, on).unwrap(),
            Op::AliasOffset(o) => mem.set_alias_offset(self.alias, o).unwrap(),
            Op::Batch(ref ops) => {
                let mem = self.mem.clone();
                let tx = mem.transaction();
                for o in ops {
                    self.apply(o);
                }
                drop(tx);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn slot_table_equals_the_ram_ranges_of_the_system_view(ops in prop::collection::vec(op(), 1..24)) {
        let Some(vm) = vm() else { return Ok(()) };
        let mut m = Machine::new();
        let space = m.mem.address_space("memory", m.sys).unwrap();
        let slots = vm.attach_memory(&m.mem, &space).unwrap();
        for op in &ops {
            m.apply(op);
            let table = slots.slots();
            prop_assert_eq!(actual(&table), expected(&space.view()), "after {:?}", op);
            let mut ids: Vec<u32> = table.iter().map(|s| s.slot).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), table.len(), "slot ids are unique");
            prop_assert!(ids.iter().all(|&i| (i as usize) < REGIONS * 2 + 2), "ids are reused: {:?}", ids);
            let errors = slots.take_errors();
            prop_assert!(errors.is_empty(), "{:?}", errors);
            slots.verify_with_kvm().unwrap();
            for s in &table {
                // KVM knows the slot's size: a dirty-log read of a non-logging slot is ENOENT,
                // not EINVAL (no such slot).
                let e = vm.fd().get_dirty_log(s.slot, s.size as usize).unwrap_err();
                prop_assert_eq!(e.errno(), libc::ENOENT);
            }
        }
        vm.detach_all();
        prop_assert!(slots.slots().is_empty());
    }
}
