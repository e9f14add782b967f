//! The machine of QEMU's commit-cost measurement (`shared/spec/qemu-commit-cost.md`), built
//! with the library: QEMU 10.0.2's own q35 memory map (`boards/q35.toml`, imported from
//! `info mtree -D` of the spec's N = 0 command line: RAM below 4G, the `pci` container under
//! `system` at priority -1, PAM and SMRAM aliases, the I/O space, the pci-testdev `tgt` and
//! the empty pci-bridge `hpbr`), plus N × virtio-rng-pci behind pci-bridges, 31 per bridge,
//! each with what QEMU builds for it:
//!
//! * bridge: its secondary bus (`pci_bridge_pci` container, `pci_bridge_io` container), the
//!   windows into them as aliases in the parent bus (`pci_bridge_mem`, `pci_bridge_pref_mem`,
//!   `pci_bridge_io`), and three address spaces (bus master, `pci_bridge_pci_mem`,
//!   `pci_bridge_pci_io`);
//! * virtio-rng-pci (transitional, on a conventional bus): BAR0 = 32-byte legacy I/O
//!   `virtio-pci`, BAR1 = 4 KiB MSI-X container (`msix-table`, `msix-pba`), BAR4 = 16 KiB
//!   64-bit prefetchable `virtio-pci` container with the common/isr/device/notify regions;
//!   its bus-master space (`bus master container` holding the `bus master` alias of `system`,
//!   enabled by the command register) and `virtio-pci-cfg-mem-as` rooted at BAR4's container.
//!
//! Two states: `Booted` (what firmware leaves: every BAR mapped, bridge windows open, bus
//! mastering on) and `AtStop` (QEMU's `-S`: no BAR mapped, windows closed, bus mastering off —
//! the state QEMU was measured in).

use std::sync::Arc;

use addrspace::{board, AddressSpace, Machine, Memory, RegionId, Unassigned, SIZE_2_64};

/// The q35 board QEMU's measurement starts from.
const Q35: &str = include_str!("../../../../boards/q35.toml");

/// Where tgt's BAR0 sits (the spec's 0xfe000000) and where a BAR move takes it.
pub const TGT_BAR0: u64 = 0xfe00_0000;
/// The other address of the BAR move (the spec's 0xfd000000).
pub const TGT_BAR0_MOVED: u64 = 0xfd00_0000;

/// What firmware did before the measurement.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum State {
    /// QEMU at `-S`: nothing mapped, windows closed, bus mastering off.
    AtStop,
    /// After firmware: BARs mapped, windows open, bus mastering on.
    Booted,
}

/// One pci-bridge's regions and spaces.
pub struct Bridge {
    bus_mem: RegionId,
    bus_io: RegionId,
    slots: u64,
    index: u64,
    _regions: Vec<RegionId>,
    _spaces: Vec<AddressSpace>,
}

/// One virtio-rng-pci.
pub struct Device {
    regions: Vec<RegionId>,
    /// (container, BAR) pairs mapped by firmware.
    mapped: Vec<(RegionId, RegionId)>,
    spaces: Vec<AddressSpace>,
}

/// The whole machine.
pub struct Q35 {
    /// The board and its address spaces.
    pub machine: Machine,
    /// `pci` (the root bus's memory space).
    pub pci: RegionId,
    /// tgt's 4 KiB memory BAR0 (not mapped after the build).
    pub tgt_bar0: RegionId,
    /// tgt's `bus master` alias (the command register's bus-master bit).
    pub tgt_bus_master: RegionId,
    /// The empty bridge the hot-plug samples go behind.
    pub hpbr: Bridge,
    /// The bridges holding the load devices.
    pub _bridges: Vec<Bridge>,
    /// The load devices.
    pub _devices: Vec<Device>,
}

fn region(m: &Machine, key: &str) -> RegionId {
    m.region(key)
        .unwrap_or_else(|| panic!("boards/q35.toml has no region `{key}`"))
}

/// The first subregion of the root of address space `name`.
fn first_child_of_space(m: &Machine, name: &str) -> RegionId {
    let root = m.address_space(name).expect("address space").root();
    m.memory.region_info(root).unwrap().subregions[0]
}

/// Bridge `index`'s memory window base (1 MiB per bridge; hpbr is index 15).
fn mem_window(index: u64) -> u64 {
    0xc000_0000 + index * 0x10_0000
}

/// Bridge `index`'s 64-bit prefetchable window base.
fn pref_window(index: u64) -> u64 {
    0x80_0000_0000 + index * 0x10_0000
}

/// Bridge `index`'s I/O window base (4 KiB per bridge).
fn io_window(index: u64) -> u64 {
    0x1000 + index * 0x1000
}

fn bus_master(mem: &Memory, system: RegionId, name: &str, on: bool) -> (Vec<RegionId>, AddressSpace) {
    let root = mem.container("bus master container", SIZE_2_64).unwrap();
    let alias = mem.alias("bus master", system, 0, SIZE_2_64).unwrap();
    mem.set_enabled(alias, on).unwrap();
    mem.add_subregion(root, 0, alias).unwrap();
    (vec![alias, root], mem.address_space(name, root).unwrap())
}

impl Bridge {
    /// A pci-bridge on the root bus, as `pci_bridge_initfn` builds it; `index` picks its
    /// windows (open when `state` is `Booted`).
    fn new(mem: &Memory, parts: (RegionId, RegionId, RegionId), index: u64, state: State) -> Bridge {
        let (system, pci, io) = parts;
        let (mut regions, bm) = bus_master(mem, system, "pci-bridge", state == State::Booted);
        let bus_mem = mem.container("pci_bridge_pci", SIZE_2_64).unwrap();
        let bus_io = mem.container("pci_bridge_io", 1 << 32).unwrap();
        let spaces = vec![
            bm,
            mem.address_space("pci_bridge_pci_mem", bus_mem).unwrap(),
            mem.address_space("pci_bridge_pci_io", bus_io).unwrap(),
        ];
        let open = state == State::Booted;
        let windows = [
            ("pci_bridge_mem", bus_mem, pci, mem_window(index), 0x10_0000),
            ("pci_bridge_pref_mem", bus_mem, pci, pref_window(index), 0x10_0000),
            ("pci_bridge_io", bus_io, io, io_window(index), 0x1000),
        ];
        for (name, target, parent, base, size) in windows {
            let (base, size) = if open { (base, size) } else { (0, 0) };
            let w = mem.alias(name, target, base, size).unwrap();
            mem.add_subregion_overlap(parent, base, w, 1).unwrap();
            regions.push(w);
        }
        regions.extend([bus_mem, bus_io]);
        Bridge {
            bus_mem,
            bus_io,
            slots: 0,
            index,
            _regions: regions,
            _spaces: spaces,
        }
    }

    /// A bridge of the board file (hpbr), with its windows opened when `Booted`.
    fn from_board(m: &Machine, index: u64, state: State) -> Bridge {
        let mem = &m.memory;
        let bus_mem = region(m, "pci_bridge_pci");
        let bus_io = region(m, "pci_bridge_io");
        if state == State::Booted {
            let _tx = mem.transaction();
            let windows = [
                ("pci_bridge_mem", mem_window(index)),
                ("pci_bridge_pref_mem", pref_window(index)),
            ];
            for (key, base) in windows {
                reopen(mem, region(m, key), base, 0x10_0000);
            }
            reopen(mem, region(m, "pci_bridge_io#2"), io_window(index), 0x1000);
            let bm = first_child_of_space(m, "pci-bridge");
            mem.set_enabled(bm, true).unwrap();
        }
        Bridge {
            bus_mem,
            bus_io,
            slots: 0,
            index,
            _regions: Vec::new(),
            _spaces: Vec::new(),
        }
    }
}

/// Opens a closed bridge window alias at `base` (QEMU re-creates the alias; the library can
/// resize it in place, same rendered result).
fn reopen(mem: &Memory, window: RegionId, base: u64, size: u128) {
    mem.set_alias_offset(window, base).unwrap();
    mem.set_size(window, size).unwrap();
    mem.set_address(window, base).unwrap();
}

impl Device {
    /// A virtio-rng-pci in the next free slot of `bridge`, each step its own commit unless
    /// the caller holds a transaction.
    pub fn plug(mem: &Memory, system: RegionId, bridge: &mut Bridge, state: State) -> Device {
        let slot = bridge.slots % 31;
        bridge.slots += 1;
        let (mut regions, bm) = bus_master(mem, system, "virtio-rng-pci", state == State::Booted);
        let legacy = mem.io("virtio-pci", 0x20, Arc::new(Unassigned)).unwrap();
        let msix = mem.container("virtio-rng-pci-msix", 0x1000).unwrap();
        let table = mem.io("msix-table", 0x800, Arc::new(Unassigned)).unwrap();
        let pba = mem.io("msix-pba", 0x800, Arc::new(Unassigned)).unwrap();
        mem.add_subregion(msix, 0, table).unwrap();
        mem.add_subregion(msix, 0x800, pba).unwrap();
        let modern = mem.container("virtio-pci", 0x4000).unwrap();
        regions.extend([legacy, table, pba, msix]);
        for (k, cap) in ["common", "isr", "device", "notify"].iter().enumerate() {
            let r = mem
                .io(&format!("virtio-pci-{cap}-virtio-rng"), 0x1000, Arc::new(Unassigned))
                .unwrap();
            mem.add_subregion(modern, k as u64 * 0x1000, r).unwrap();
            regions.push(r);
        }
        regions.push(modern);
        let cfg = mem.address_space("virtio-pci-cfg-mem-as", modern).unwrap();
        let mut mapped = Vec::new();
        if state == State::Booted {
            let i = bridge.index;
            let bars = [
                (bridge.bus_io, legacy, io_window(i) + slot * 0x20),
                (bridge.bus_mem, msix, mem_window(i) + slot * 0x1000),
                (bridge.bus_mem, modern, pref_window(i) + slot * 0x4000),
            ];
            for (bus, bar, addr) in bars {
                mem.add_subregion_overlap(bus, addr, bar, 1).unwrap();
                mapped.push((bus, bar));
            }
        }
        Device {
            regions,
            mapped,
            spaces: vec![bm, cfg],
        }
    }

    /// Unplugs as QEMU's unrealize does: BARs unmapped one by one, address spaces destroyed,
    /// regions freed.
    pub fn unplug(self, mem: &Memory) {
        for (bus, bar) in &self.mapped {
            mem.remove_subregion(*bus, *bar).unwrap();
        }
        drop(self.spaces);
        mem.delete_regions(&self.regions).unwrap();
    }
}

impl Q35 {
    /// The machine with `n` virtio-rng-pci, built one device at a time (each step its own
    /// commit, as QEMU's device realize does) or, with `one_tx`, in one transaction.
    pub fn build(n: usize, state: State, one_tx: bool, mode: addrspace::CommitMode) -> Q35 {
        let machine = board::load_str(Q35, "boards/q35.toml").unwrap();
        let mem = machine.memory.clone();
        mem.set_commit_mode(mode);
        let tx = one_tx.then(|| mem.transaction());
        let (system, pci, io) = (
            region(&machine, "system"),
            region(&machine, "pci"),
            region(&machine, "io"),
        );
        let tgt_bar0 = mem.io("pci-testdev-mmio", 0x1000, Arc::new(Unassigned)).unwrap();
        let tgt_bus_master = first_child_of_space(&machine, "pci-testdev");
        let hpbr = Bridge::from_board(&machine, 15, state);
        let mut bridges = Vec::new();
        let mut devices = Vec::new();
        for i in 0..n {
            if i % 31 == 0 {
                bridges.push(Bridge::new(&mem, (system, pci, io), (i / 31) as u64, state));
            }
            let bridge = bridges.last_mut().expect("a bridge");
            devices.push(Device::plug(&mem, system, bridge, state));
        }
        drop(tx);
        Q35 {
            machine,
            pci,
            tgt_bar0,
            tgt_bus_master,
            hpbr,
            _bridges: bridges,
            _devices: devices,
        }
    }

    /// `system`.
    pub fn system(&self) -> RegionId {
        region(&self.machine, "system")
    }
}
