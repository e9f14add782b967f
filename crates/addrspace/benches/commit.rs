//! Cost of one topology change on a big board: scoped incremental commits against QEMU's full
//! rebuild (`CommitMode::Full`: every view re-rendered, every listener called), same run, same
//! board, same operations.
//!
//! The board is q35-like with TCG-style per-CPU views: system memory (RAM below and above
//! 4 GiB, a PCI hole aliasing the PCI memory container), 500 PCI-like devices — each with a
//! 16 KiB BAR of 8 MMIO registers blocks, an MSI-X BAR, an I/O BAR, a ROM-device expansion ROM,
//! config registers, and a bus-master address space (a container holding an alias of system
//! memory, as QEMU builds it) — and 256 CPUs, each with `cpu-memory-N` over system memory and
//! `cpu-smm-N` over a per-CPU container that overlays SMRAM on an alias of system memory.
//! Every CPU space has a listener (a TCG TLB would flush on its `commit`). About 1 000
//! address spaces and 10 000 regions.
//!
//! Cases: moving one BAR, toggling one ROM device's romd mode, hot-adding and removing one
//! device (regions, BAR mappings and its bus-master space, as one transaction each way), and
//! QEMU's 2017 sharing case (255 CPUs, 255 virtio-like devices behind 40 bridges): the number
//! of live flat views and the time to build the board.
//!
//! Run: `cargo bench -p addrspace --bench commit`. Ends with one line per case:
//! `CASE ours_ns=… baseline_ns=… speedup=…`.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[path = "support/timing.rs"]
mod timing;
use timing::median_ns;

use addrspace::listener::PRIORITY_MIN;
use addrspace::{AddressSpace, CommitMode, ListenerHandle, Memory, MemoryListener, RegionId, Unassigned, SIZE_2_64};

const DEVICES: usize = 500;
const CPUS: usize = 256;
const PCI_BASE: u64 = 0xc000_0000;

#[derive(Default)]
struct Tlb {
    flushes: AtomicU64,
}

impl MemoryListener for Tlb {
    fn commit(&self) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
    }
}

struct Device {
    regions: Vec<RegionId>,
    bar0: RegionId,
    rom: RegionId,
    bus_master: AddressSpace,
}

struct Board {
    mem: Memory,
    system: RegionId,
    pci: RegionId,
    devices: Vec<Device>,
    _spaces: Vec<AddressSpace>,
    _listeners: Vec<ListenerHandle>,
}

fn io(mem: &Memory, name: &str, size: u128) -> RegionId {
    mem.io(name, size, Arc::new(Unassigned)).unwrap()
}

/// Slot `i`'s BAR addresses inside the PCI hole (64 KiB per device).
fn slot_addr(i: usize) -> u64 {
    PCI_BASE + (i as u64) * 0x1_0000
}

fn add_device(mem: &Memory, system: RegionId, pci: RegionId, i: usize) -> Device {
    let _tx = mem.transaction();
    let mut regions = Vec::new();
    let bar0 = mem.container(&format!("dev{i}-bar0"), 0x4000).unwrap();
    for r in 0..8u64 {
        let reg = io(mem, &format!("dev{i}-regs{r}"), 0x800);
        mem.add_subregion(bar0, r * 0x800, reg).unwrap();
        regions.push(reg);
    }
    let msix = mem.container(&format!("dev{i}-msix"), 0x1000).unwrap();
    let table = io(mem, &format!("dev{i}-msix-table"), 0x800);
    let pba = io(mem, &format!("dev{i}-msix-pba"), 0x800);
    mem.add_subregion(msix, 0, table).unwrap();
    mem.add_subregion(msix, 0x800, pba).unwrap();
    let bar2 = io(mem, &format!("dev{i}-bar2"), 0x1000);
    let rom = mem
        .rom_device(&format!("dev{i}-rom"), 0x4000, Arc::new(Unassigned))
        .unwrap();
    let base = slot_addr(i);
    mem.add_subregion_overlap(pci, base, bar0, 1).unwrap();
    mem.add_subregion_overlap(pci, base + 0x4000, msix, 1).unwrap();
    mem.add_subregion_overlap(pci, base + 0x5000, bar2, 1).unwrap();
    mem.add_subregion_overlap(pci, base + 0x8000, rom, 1).unwrap();
    let cfg = io(mem, &format!("dev{i}-config"), 0x100);
    let bm_root = mem
        .container(&format!("dev{i}-bus-master-container"), SIZE_2_64)
        .unwrap();
    let bm = mem.alias(&format!("dev{i}-bus-master"), system, 0, SIZE_2_64).unwrap();
    mem.add_subregion(bm_root, 0, bm).unwrap();
    regions.extend([bar0, msix, table, pba, bar2, rom, cfg, bm, bm_root]);
    let bus_master = mem.address_space(&format!("dev{i}"), bm_root).unwrap();
    Device {
        regions,
        bar0,
        rom,
        bus_master,
    }
}

fn remove_device(mem: &Memory, d: Device) {
    let _tx = mem.transaction();
    drop(d.bus_master);
    mem.delete_regions(&d.regions).unwrap();
}

fn build(mode: CommitMode, smm: bool) -> Board {
    let mem = Memory::new();
    mem.set_commit_mode(mode);
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 8 << 30).unwrap();
    let pci = mem.container("pci", SIZE_2_64).unwrap();
    let smram = mem.ram("smram", 0x20000).unwrap();
    let mut spaces = Vec::new();
    let mut listeners = Vec::new();
    let mut devices = Vec::new();
    {
        let _tx = mem.transaction();
        let below = mem.alias("ram-below-4g", ram, 0, 0xc000_0000).unwrap();
        let above = mem.alias("ram-above-4g", ram, 0xc000_0000, 0x1_4000_0000).unwrap();
        mem.add_subregion(system, 0, below).unwrap();
        mem.add_subregion(system, 0x1_0000_0000, above).unwrap();
        let hole = mem.alias("pci-hole", pci, PCI_BASE, 0x4000_0000).unwrap();
        mem.add_subregion_overlap(system, PCI_BASE, hole, -1).unwrap();
        let vga = io(&mem, "vga-lowmem", 0x20000);
        mem.add_subregion_overlap(system, 0xa_0000, vga, 1).unwrap();
        spaces.push(mem.address_space("memory", system).unwrap());
        for i in 0..DEVICES {
            devices.push(add_device(&mem, system, pci, i));
        }
    }
    let tlb = Arc::new(Tlb::default());
    for c in 0..CPUS {
        let _tx = mem.transaction();
        let s = mem.address_space(&format!("cpu-memory-{c}"), system).unwrap();
        listeners.push(s.register_listener(tlb.clone(), PRIORITY_MIN).unwrap());
        spaces.push(s);
        if smm {
            let root = mem.container(&format!("cpu-smm-root-{c}"), SIZE_2_64).unwrap();
            let sys = mem.alias(&format!("cpu-smm-system-{c}"), system, 0, SIZE_2_64).unwrap();
            let sm = mem.alias(&format!("cpu-smram-{c}"), smram, 0, 0x20000).unwrap();
            mem.add_subregion(root, 0, sys).unwrap();
            mem.add_subregion_overlap(root, 0xa_0000, sm, 1).unwrap();
            let s = mem.address_space(&format!("cpu-smm-{c}"), root).unwrap();
            listeners.push(s.register_listener(tlb.clone(), PRIORITY_MIN).unwrap());
            spaces.push(s);
        }
    }
    Board {
        mem,
        system,
        pci,
        devices,
        _spaces: spaces,
        _listeners: listeners,
    }
}

fn bar_move(b: &Board, n: usize) -> f64 {
    let d = &b.devices[DEVICES / 2];
    let base = slot_addr(DEVICES / 2);
    median_ns(n, |i| {
        let addr = if i % 2 == 0 { base + 0x2_0000_0000 } else { base };
        b.mem.set_address(black_box(d.bar0), addr).unwrap();
    })
}

fn romd_toggle(b: &Board, n: usize) -> f64 {
    let d = &b.devices[DEVICES / 3];
    median_ns(n, |i| b.mem.set_romd(black_box(d.rom), i % 2 == 1).unwrap())
}

fn hotplug(b: &mut Board, n: usize) -> f64 {
    let (mem, system, pci) = (b.mem.clone(), b.system, b.pci);
    median_ns(n, |_| {
        let d = add_device(&mem, system, pci, DEVICES + 1);
        remove_device(&mem, d);
    })
}

struct Row {
    case: String,
    ours: f64,
    base: f64,
}

fn report(rows: &mut Vec<Row>, case: &str, ours: f64, base: f64) {
    println!("{case}: scoped {:.1} µs, full rebuild {:.1} µs", ours / 1e3, base / 1e3);
    rows.push(Row {
        case: case.to_string(),
        ours,
        base,
    });
}

/// QEMU's 2017 report: 255 CPUs and 255 virtio devices behind 40 bridges.
fn sharing_2017(mode: CommitMode) -> (f64, usize, usize) {
    let start = Instant::now();
    let mem = Memory::new();
    mem.set_commit_mode(mode);
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 1 << 30).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    let io_root = mem.container("io", 0x10000).unwrap();
    let pci = mem.container("pci", SIZE_2_64).unwrap();
    let hole = mem.alias("pci-hole", pci, PCI_BASE, 0x4000_0000).unwrap();
    mem.add_subregion_overlap(system, PCI_BASE, hole, -1).unwrap();
    let mut keep = vec![
        mem.address_space("memory", system).unwrap(),
        mem.address_space("I/O", io_root).unwrap(),
    ];
    for c in 0..255 {
        keep.push(mem.address_space(&format!("cpu-memory-{c}"), system).unwrap());
    }
    // Each bridge: a window into its secondary bus and its own bus-master space.
    let mut buses = Vec::new();
    for b in 0..40u64 {
        let bus = mem.container(&format!("bridge{b}-bus"), SIZE_2_64).unwrap();
        let win = mem.alias(&format!("bridge{b}-mem"), bus, 0, SIZE_2_64).unwrap();
        mem.add_subregion(pci, 0, win).unwrap();
        let bm_root = mem
            .container(&format!("bridge{b}-bus-master-container"), SIZE_2_64)
            .unwrap();
        let bm = mem
            .alias(&format!("bridge{b}-bus-master"), system, 0, SIZE_2_64)
            .unwrap();
        mem.add_subregion(bm_root, 0, bm).unwrap();
        keep.push(mem.address_space(&format!("bridge{b}"), bm_root).unwrap());
        buses.push(bus);
    }
    for i in 0..255u64 {
        let bus = buses[(i % 40) as usize];
        // virtio-pci: the modern BAR container with its capability regions, its own
        // `virtio-pci-cfg-mem-as` over that container, and a bus-master space.
        let bar = mem.container(&format!("virtio{i}"), 0x4000).unwrap();
        for (k, name) in ["common", "isr", "device", "notify"].iter().enumerate() {
            let r = io(&mem, &format!("virtio{i}-{name}"), 0x1000);
            mem.add_subregion(bar, k as u64 * 0x1000, r).unwrap();
        }
        mem.add_subregion(bus, PCI_BASE + i * 0x1_0000, bar).unwrap();
        keep.push(mem.address_space(&format!("virtio-pci-cfg-mem-as{i}"), bar).unwrap());
        let bm_root = mem
            .container(&format!("virtio{i}-bus-master-container"), SIZE_2_64)
            .unwrap();
        let bm = mem
            .alias(&format!("virtio{i}-bus-master"), system, 0, SIZE_2_64)
            .unwrap();
        mem.add_subregion(bm_root, 0, bm).unwrap();
        keep.push(mem.address_space(&format!("virtio{i}"), bm_root).unwrap());
    }
    let ns = start.elapsed().as_nanos() as f64;
    let views = mem.stats().flatviews;
    (ns, views, keep.len())
}

/// One commit on a view of `n` ranges: a 4 KiB device mapped and unmapped between the
/// middle two of `n` 4 KiB RAM regions (one address space, one listener); median ns per
/// commit over `iters` commits. The regions sit in banks (containers) of `bank` regions, as
/// devices sit behind buses, or all in `system` when `bank` is `n`.
fn scale(mode: CommitMode, n: usize, bank: usize, iters: usize) -> f64 {
    let mem = Memory::new();
    mem.set_commit_mode(mode);
    let system = mem.container("system", SIZE_2_64).unwrap();
    let span = bank as u64 * 0x2000;
    let mut banks = Vec::new();
    {
        let _tx = mem.transaction();
        for i in 0..n as u64 {
            let (b, k) = (i / bank as u64, i % bank as u64);
            if k == 0 {
                let c = if bank == n {
                    system
                } else {
                    let c = mem.container(&format!("bank{b}"), u128::from(span)).unwrap();
                    mem.add_subregion(system, b * span, c).unwrap();
                    c
                };
                banks.push(c);
            }
            let r = mem.ram(&format!("ram{i}"), 0x1000).unwrap();
            mem.add_subregion(banks[b as usize], k * 0x2000, r).unwrap();
        }
    }
    let space = mem.address_space("memory", system).unwrap();
    let _l = space.register_listener(Arc::new(Tlb::default()), PRIORITY_MIN).unwrap();
    let dev = io(&mem, "dev", 0x1000);
    let mid = n / 2;
    let (parent, at) = (banks[mid / bank], (mid % bank) as u64 * 0x2000 + 0x1000);
    let ns = median_ns(iters, |i| {
        if i % 2 == 0 {
            mem.add_subregion(parent, at, dev).unwrap();
        } else {
            mem.remove_subregion(parent, dev).unwrap();
        }
    });
    assert_eq!(space.view().ranges().len(), n + iters % 2);
    ns
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let want = |c: &str| filter.is_empty() || filter.iter().any(|f| c.contains(f.as_str()));
    // `--scoped-only` skips the (slow) full-rebuild side, for profiling.
    let scoped_only = std::env::args().any(|a| a == "--scoped-only");
    let mut rows = Vec::new();
    for smm in [false, true] {
        let tag = if smm { "smm" } else { "shared" };
        if !["bar_move", "romd_toggle", "hotplug"]
            .iter()
            .any(|c| want(&format!("{c}_{tag}")))
        {
            continue;
        }
        eprintln!("building the {tag} board twice (scoped and full)...");
        let t = Instant::now();
        let mut scoped = build(CommitMode::Scoped, smm);
        let built_scoped = t.elapsed();
        let t = Instant::now();
        let mut full = build(
            if scoped_only {
                CommitMode::Scoped
            } else {
                CommitMode::Full
            },
            smm,
        );
        let built_full = t.elapsed();
        let st = scoped.mem.stats();
        println!(
            "board {tag}: {} regions, {} address spaces, {} live flat views, {} listeners; built in {:.2} s scoped, {:.2} s full",
            st.regions,
            st.address_spaces,
            st.flatviews,
            st.listeners,
            built_scoped.as_secs_f64(),
            built_full.as_secs_f64()
        );
        let (ns, nf) = if smm {
            (200, 6)
        } else {
            (std::env::var("N").map(|v| v.parse().unwrap()).unwrap_or(400), 20)
        };
        if want(&format!("bar_move_{tag}")) {
            let o = bar_move(&scoped, ns);
            let b = bar_move(&full, nf);
            report(&mut rows, &format!("bar_move_{tag}"), o, b);
        }
        if want(&format!("romd_toggle_{tag}")) {
            let o = romd_toggle(&scoped, ns);
            let b = romd_toggle(&full, nf);
            report(&mut rows, &format!("romd_toggle_{tag}"), o, b);
        }
        if want(&format!("hotplug_{tag}")) {
            let o = hotplug(&mut scoped, ns / 4);
            let b = hotplug(&mut full, nf / 4 + 1);
            report(&mut rows, &format!("hotplug_{tag}"), o, b);
        }
    }
    // View size against commit cost: banks of 100 regions, then one flat container.
    for (layout, bank) in [("banks", Some(100)), ("flat", None)] {
        for n in [1_000usize, 10_000, 100_000] {
            let case = format!("scale_{layout}_{n}");
            if want(&case) {
                let bank = bank.unwrap_or(n);
                let o = scale(CommitMode::Scoped, n, bank, 2000);
                let b = if scoped_only {
                    o
                } else {
                    scale(CommitMode::Full, n, bank, 10)
                };
                report(&mut rows, &case, o, b);
            }
        }
    }
    if want("sharing_2017") {
        let (o, views, spaces) = sharing_2017(CommitMode::Scoped);
        let (b, views_full, _) = sharing_2017(CommitMode::Full);
        println!(
            "sharing_2017: {spaces} address spaces, {views} live flat views (full rebuild: {views_full}; QEMU 2017: 260); built in {:.1} ms scoped, {:.1} ms full",
            o / 1e6,
            b / 1e6
        );
        report(&mut rows, "sharing_2017_build", o, b);
    }
    println!();
    for r in &rows {
        println!(
            "{} ours_ns={:.0} baseline_ns={:.0} speedup={:.1}",
            r.case,
            r.ours,
            r.base,
            r.base / r.ours
        );
    }
}
