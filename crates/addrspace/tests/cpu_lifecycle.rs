//! CPU realize/unrealize with every `CpuView` kind, clusters (plug, unplug, re-plug, slot
//! errors, an asymmetric zcu102-like machine), RAII unplug under a concurrent reader, the
//! TLB listener's flush counts, and the DMA engine's lifecycle. All deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

mod common;
use common::cpus::{smm, SMRAM};

use addrspace::cpu::{Cluster, Cpu, CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder, PerCpuRoot};
use addrspace::dma::{DmaDevice, DMA_MAX_LEN};
use addrspace::mtree::{self, FlatOptions};
use addrspace::ram::RamBlock;
use addrspace::{
    AddressSpace, Backend, Endianness, Error, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId, RegionOps,
    SIZE_2_64,
};

const LE: Endianness = Endianness::Little;
const NVIC: u64 = 0xe000_e000;
const TCM: u64 = 0x2000_0000;

fn attrs() -> MemTxAttrs {
    MemTxAttrs::default()
}

/// A peripheral: offset 4 of each page is a scratch register, every other offset reads its
/// identity.
struct Periph {
    id: u64,
    scratch: AtomicU64,
}

impl RegionOps for Periph {
    fn read(&self, offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        match offset & 0xfff {
            4 => (self.scratch.load(Ordering::Relaxed), MemTxResult::OK),
            _ => (self.id, MemTxResult::OK),
        }
    }
    fn write(&self, offset: u64, value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        if offset & 0xfff == 4 {
            self.scratch.store(value, Ordering::Relaxed);
        }
        MemTxResult::OK
    }
}

/// A board: `system` (2^64) with 1 MiB of `pc.ram` at 0 and a system-wide `ppb` device
/// under the NVIC's address (so a CPU's private NVIC visibly overrides it).
struct Board {
    mem: Memory,
    system: RegionId,
    ram: RegionId,
}

fn board() -> Board {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 0x10_0000).unwrap();
    let ppb = mem
        .io(
            "ppb",
            0x10_0000,
            Arc::new(Periph {
                id: 0xdead,
                scratch: AtomicU64::new(0),
            }),
        )
        .unwrap();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        mem.add_subregion(system, 0xe000_0000, ppb).unwrap();
    }
    Board { mem, system, ram }
}

/// Weak handles to what an M-profile CPU's builder created (to prove it is freed).
#[derive(Default)]
struct Created {
    periphs: std::sync::Mutex<Vec<Weak<Periph>>>,
}

/// An M-profile-like per-CPU root: a 2^64 container with an alias of `system` at priority
/// -1, a private `nvic-N` (identity 0x1000 + N) at 0xe000e000 priority 1, and a private
/// `tcm-N` RAM page filled with the byte N + 1.
fn m_profile(system: RegionId, created: Arc<Created>) -> PerCpuBuilder {
    Arc::new(move |mem: &Memory, i: u32| {
        let root = mem.container(&format!("cpu-container-{i}"), SIZE_2_64)?;
        let alias = mem.alias(&format!("cpu-sysmem-{i}"), system, 0, SIZE_2_64)?;
        let periph = Arc::new(Periph {
            id: 0x1000 + u64::from(i),
            scratch: AtomicU64::new(0),
        });
        created.periphs.lock().unwrap().push(Arc::downgrade(&periph));
        let nvic = mem.io(&format!("nvic-{i}"), 0x1000, periph)?;
        let tcm = mem.ram(&format!("tcm-{i}"), 0x1000)?;
        let block = mem.leaf(tcm)?.unwrap().backend().ram().unwrap().clone();
        assert!(block.write(0, &[i as u8 + 1; 0x1000]));
        let _tx = mem.transaction();
        mem.add_subregion_overlap(root, 0, alias, -1)?;
        mem.add_subregion_overlap(root, NVIC, nvic, 1)?;
        mem.add_subregion_overlap(root, TCM, tcm, 1)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, alias, nvic, tcm],
        })
    })
}

fn spec(index: usize, prefix: &str, view: CpuView) -> CpuSpaceSpec {
    CpuSpaceSpec {
        index,
        prefix: prefix.into(),
        view,
    }
}

/// How many `AS "name"` lines `info mtree -f` prints.
fn spaces_named(mem: &Memory, name: &str) -> usize {
    let needle = format!(" AS \"{name}\",");
    mtree::print_flat(mem, &FlatOptions::default())
        .lines()
        .filter(|l| l.starts_with(&needle))
        .count()
}

fn ld32(space: &AddressSpace, addr: u64) -> (u32, MemTxResult) {
    space.load::<u32>(GuestAddr(addr), LE, attrs())
}

fn is_slot_error(e: &Error, what: &str) -> bool {
    matches!(e, Error::WrongKind { kind: "cpu slot", what: w, .. } if *w == what)
}

// ---------------------------------------------------------------------------------------
// CpuView kinds
// ---------------------------------------------------------------------------------------

#[test]
fn root_view_creates_named_spaces_per_cpu() {
    let b = board();
    let secure = b.mem.container("secure-memory", SIZE_2_64).unwrap();
    let sram = b.mem.ram("secure-sram", 0x1000).unwrap();
    b.mem.add_subregion(secure, 0x1000, sram).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-secure-memory", CpuView::Root(secure)),
        ],
        tlb: true,
    };
    let c0 = Cpu::realize(&b.mem, 0, &model).unwrap();
    let c1 = Cpu::realize(&b.mem, 1, &model).unwrap();
    assert_eq!(c1.index(), 1);
    assert_eq!(c0.address_space(0).unwrap().name(), "cpu-memory-0");
    assert_eq!(c0.address_space(1).unwrap().name(), "cpu-secure-memory-0");
    assert_eq!(c1.address_space(0).unwrap().name(), "cpu-memory-1");
    assert_eq!(c1.address_space(1).unwrap().name(), "cpu-secure-memory-1");
    assert!(c0.address_space(2).is_none());
    assert_eq!(
        format!("{c0:?}"),
        r#"Cpu { index: 0, spaces: ["cpu-memory-0", "cpu-secure-memory-0"] }"#
    );
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces + 4);
    assert_eq!(s.listeners, base.listeners + 4);
    assert_eq!(s.regions, base.regions, "Root spaces create no region");
    // CPUs over the same root share one view.
    assert!(Arc::ptr_eq(
        &c0.address_space(0).unwrap().view(),
        &c1.address_space(0).unwrap().view()
    ));
    for n in [
        "cpu-memory-0",
        "cpu-memory-1",
        "cpu-secure-memory-0",
        "cpu-secure-memory-1",
    ] {
        assert_eq!(spaces_named(&b.mem, n), 1, "{n}");
    }
    // Each index sees its own root.
    let s0 = c0.address_space(0).unwrap();
    let s1 = c0.address_space(1).unwrap();
    assert_eq!(
        s0.store(GuestAddr(0x1000), 0x1234_5678u32, LE, attrs()),
        MemTxResult::OK
    );
    assert_eq!(
        ld32(c1.address_space(0).unwrap(), 0x1000),
        (0x1234_5678, MemTxResult::OK)
    );
    assert_eq!(ld32(s1, 0x1000), (0, MemTxResult::OK), "secure SRAM, not pc.ram");
    assert_eq!(ld32(s1, 0x3000).1, MemTxResult::DECODE_ERROR);

    drop(c0);
    assert_eq!(spaces_named(&b.mem, "cpu-memory-0"), 0);
    assert_eq!(spaces_named(&b.mem, "cpu-memory-1"), 1);
    c1.unrealize();
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
    assert_eq!(b.mem.stats().listeners, base.listeners);
    assert_eq!(b.mem.stats().regions, base.regions);
}

#[test]
fn shared_view_allocates_no_space_per_cpu() {
    let b = board();
    let cluster_mem = b.mem.address_space("cluster-memory", b.system).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![spec(0, "unused-prefix", CpuView::Shared(cluster_mem.clone()))],
        tlb: true,
    };
    assert_eq!(format!("{:?}", model.spaces[0].view), "Shared(cluster-memory)");
    let mut cl = Cluster::new("cluster0", &b.mem, model, 0, 4).unwrap();
    for slot in 0..4 {
        let cpu = cl.plug(slot).unwrap();
        assert_eq!(cpu.address_space(0).unwrap().name(), "cluster-memory");
        assert!(Arc::ptr_eq(&cpu.address_space(0).unwrap().view(), &cluster_mem.view()));
    }
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces, "plugging created no space");
    assert_eq!(s.regions, base.regions);
    assert_eq!(
        s.listeners,
        base.listeners + 4,
        "one TLB listener per CPU on the shared space"
    );
    assert_eq!(spaces_named(&b.mem, "cluster-memory"), 1);
    assert_eq!(spaces_named(&b.mem, "unused-prefix-0"), 0);
    assert_eq!(cl.cpus().count(), 4);

    // A change flushes every CPU's TLB once (each CPU has its own listener).
    let before: Vec<u64> = cl.cpus().map(|c| c.tlb_listener(0).unwrap().flush_requests()).collect();
    let extra = b.mem.ram("extra", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0x4000_0000, extra).unwrap();
    let after: Vec<u64> = cl.cpus().map(|c| c.tlb_listener(0).unwrap().flush_requests()).collect();
    assert!(
        before.iter().zip(&after).all(|(b, a)| a - b == 1),
        "{before:?} -> {after:?}"
    );

    for slot in 0..4 {
        cl.unplug(slot).unwrap();
    }
    let s = b.mem.stats();
    assert_eq!(
        s.address_spaces, base.address_spaces,
        "the shared space outlives the cluster's CPUs"
    );
    assert_eq!(s.listeners, base.listeners);
    assert_eq!(
        ld32(&cluster_mem, 0x10).1,
        MemTxResult::OK,
        "the board's space still works"
    );
}

#[test]
fn m_profile_private_peripherals_are_private() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let sysmem = b.mem.address_space("memory", b.system).unwrap();
    let model = CpuModel {
        spaces: vec![spec(
            0,
            "cpu-memory",
            CpuView::PerCpu(m_profile(b.system, created.clone())),
        )],
        tlb: true,
    };
    assert_eq!(format!("{:?}", model.spaces[0].view), "PerCpu");
    let c0 = Cpu::realize(&b.mem, 0, &model).unwrap();
    let c1 = Cpu::realize(&b.mem, 1, &model).unwrap();
    let (s0, s1) = (c0.address_space(0).unwrap(), c1.address_space(0).unwrap());
    assert_eq!((s0.name(), s1.name()), ("cpu-memory-0", "cpu-memory-1"));
    assert_eq!(b.mem.stats().regions, base.regions + 8, "4 regions per CPU");

    // Each CPU sees its own NVIC over the system `ppb`; system sees only `ppb`.
    assert_eq!(ld32(s0, NVIC), (0x1000, MemTxResult::OK));
    assert_eq!(ld32(s1, NVIC), (0x1001, MemTxResult::OK));
    assert_eq!(ld32(&sysmem, NVIC), (0xdead, MemTxResult::OK));
    assert_eq!(
        ld32(s0, 0xe000_0000),
        (0xdead, MemTxResult::OK),
        "the rest of ppb is shared"
    );
    // Private scratch registers.
    assert_eq!(s0.store(GuestAddr(NVIC + 4), 77u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(s0, NVIC + 4), (77, MemTxResult::OK));
    assert_eq!(ld32(s1, NVIC + 4), (0, MemTxResult::OK));
    assert_eq!(ld32(&sysmem, NVIC + 4), (0, MemTxResult::OK));
    // Private TCM; system RAM shared through the alias.
    assert_eq!(ld32(s0, TCM), (0x0101_0101, MemTxResult::OK));
    assert_eq!(ld32(s1, TCM), (0x0202_0202, MemTxResult::OK));
    assert_eq!(ld32(&sysmem, TCM).1, MemTxResult::DECODE_ERROR);
    assert_eq!(sysmem.store(GuestAddr(0x80), 0xabcdu32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(s0, 0x80), (0xabcd, MemTxResult::OK));
    assert_eq!(ld32(s1, 0x80), (0xabcd, MemTxResult::OK));

    // `info mtree -f`: nvic-0 is only in cpu-memory-0's view.
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    for v in &dump.views {
        let names: Vec<&str> = v.address_spaces.iter().map(|a| a.name.as_str()).collect();
        let has = |r: &str| v.ranges.iter().any(|x| x.name == r);
        assert_eq!(has("nvic-0"), names == ["cpu-memory-0"], "{names:?}");
        assert_eq!(has("nvic-1"), names == ["cpu-memory-1"], "{names:?}");
    }

    drop(c0);
    assert_eq!(b.mem.stats().regions, base.regions + 4);
    assert_eq!(ld32(s1, NVIC), (0x1001, MemTxResult::OK), "the other CPU is untouched");
    drop(c1);
    let s = b.mem.stats();
    assert_eq!(s.regions, base.regions);
    assert_eq!(s.address_spaces, base.address_spaces + 1);
    assert_eq!(s.listeners, base.listeners);
    assert!(
        created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()),
        "every private NVIC was freed"
    );
}

#[test]
fn smm_like_per_cpu_root_overlays_smram() {
    let b = board();
    let smram = b.mem.ram("smram", 0x20000).unwrap();
    let sysmem = b.mem.address_space("memory", b.system).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-smm", CpuView::PerCpu(smm(b.system, smram))),
        ],
        tlb: true,
    };
    let cpus: Vec<Cpu> = (0..3).map(|i| Cpu::realize(&b.mem, i, &model).unwrap()).collect();
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces + 6);
    assert_eq!(s.regions, base.regions + 9);
    assert_eq!(s.listeners, base.listeners + 6);
    assert_eq!(spaces_named(&b.mem, "cpu-smm-2"), 1);

    // The normal space writes pc.ram at 0xa0000, the SMM space writes SMRAM there.
    let normal = cpus[0].address_space(0).unwrap();
    let smm0 = cpus[0].address_space(1).unwrap();
    assert_eq!(normal.store(GuestAddr(SMRAM), 0x1111u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(smm0.store(GuestAddr(SMRAM), 0x2222u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(&sysmem, SMRAM), (0x1111, MemTxResult::OK));
    for c in &cpus {
        assert_eq!(ld32(c.address_space(1).unwrap(), SMRAM), (0x2222, MemTxResult::OK));
        assert_eq!(ld32(c.address_space(0).unwrap(), SMRAM), (0x1111, MemTxResult::OK));
    }
    // Outside SMRAM the SMM space is the system view.
    assert_eq!(normal.store(GuestAddr(0x10), 0x3333u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(ld32(smm0, 0x10), (0x3333, MemTxResult::OK));
    assert_eq!(
        ld32(smm0, SMRAM + 0x20000),
        (0, MemTxResult::OK),
        "pc.ram again past SMRAM"
    );
    // Structurally identical SMM roots share one view (spec §12.6), and it is current.
    let v: Vec<_> = cpus.iter().map(|c| c.address_space(1).unwrap().view()).collect();
    assert!(v.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])), "SMM views are shared");
    // ... but `info mtree -f` prints one view per physical root, as QEMU does.
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    for i in 0..3 {
        let name = format!("cpu-smm-{i}");
        let view = dump
            .views
            .iter()
            .find(|v| v.address_spaces.iter().any(|a| a.name == name))
            .unwrap();
        assert_eq!(view.address_spaces.len(), 1);
        assert_eq!(view.root.as_deref(), Some(format!("smm-container-{i}").as_str()));
        assert!(view.ranges.iter().any(|r| r.name == "smram" && r.start == SMRAM));
    }

    // Unplug the representative (the first SMM CPU) while the others stay: their shared view
    // must survive and follow later changes.
    let mut cpus = cpus;
    drop(cpus.remove(0));
    let extra = b.mem.ram("extra", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0x10_0000, extra).unwrap();
    for c in &cpus {
        let smm = c.address_space(1).unwrap();
        assert_eq!(ld32(smm, SMRAM), (0x2222, MemTxResult::OK));
        assert_eq!(smm.store(GuestAddr(0x10_0000), 5u32, LE, attrs()), MemTxResult::OK);
        assert_eq!(ld32(smm, 0x10_0000), (5, MemTxResult::OK), "a later change is visible");
    }
    assert_eq!(ld32(&sysmem, 0x10_0000), (5, MemTxResult::OK));
    drop(cpus);
    let s = b.mem.stats();
    assert_eq!(s.address_spaces, base.address_spaces);
    assert_eq!(s.regions, base.regions + 1, "only `extra` is new");
    assert_eq!(s.listeners, base.listeners);
}

#[test]
fn same_root_as_shares_a_per_cpu_root_between_two_indices() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created.clone()))),
            spec(1, "cpu-secure-memory", CpuView::SameRootAs(0)),
        ],
        tlb: true,
    };
    assert_eq!(format!("{:?}", model.spaces[1].view), "SameRootAs(0)");
    let cpu = Cpu::realize(&b.mem, 2, &model).unwrap();
    let (ns, s) = (cpu.address_space(0).unwrap(), cpu.address_space(1).unwrap());
    assert_eq!((ns.name(), s.name()), ("cpu-memory-2", "cpu-secure-memory-2"));
    assert_eq!(ns.root(), s.root());
    assert!(Arc::ptr_eq(&ns.view(), &s.view()));
    assert_eq!(ld32(s, NVIC), (0x1002, MemTxResult::OK));
    assert_eq!(
        b.mem.stats().regions,
        base.regions + 4,
        "one per-CPU root for both spaces"
    );
    drop(cpu);
    let st = b.mem.stats();
    assert_eq!(
        (st.regions, st.address_spaces, st.listeners),
        (base.regions, base.address_spaces, base.listeners)
    );
    // Naming a later (or missing) index is a typed error, and leaves nothing behind.
    let bad = CpuModel {
        spaces: vec![
            spec(0, "cpu-secure-memory", CpuView::SameRootAs(1)),
            spec(1, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created.clone()))),
        ],
        tlb: true,
    };
    let e = Cpu::realize(&b.mem, 0, &bad).unwrap_err();
    assert!(
        matches!(
            e,
            Error::WrongKind {
                kind: "cpu address space",
                ..
            }
        ),
        "{e}"
    );
    let st = b.mem.stats();
    assert_eq!(
        (st.regions, st.address_spaces, st.listeners),
        (base.regions, base.address_spaces, base.listeners)
    );
    assert!(created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()));
}

#[test]
fn realize_failure_deletes_what_it_built() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created.clone()))),
            spec(0, "cpu-other", CpuView::Root(b.system)),
        ],
        tlb: true,
    };
    let err = Cpu::realize(&b.mem, 0, &model).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKind {
                kind: "cpu address space",
                ..
            }
        ),
        "{err}"
    );
    // A builder that fails.
    let failing: PerCpuBuilder = Arc::new(|mem: &Memory, _| Err(mem.region_info(dead(mem)).unwrap_err()));
    let model2 = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-bad", CpuView::PerCpu(failing)),
        ],
        tlb: true,
    };
    assert!(Cpu::realize(&b.mem, 0, &model2).is_err());
    let s = b.mem.stats();
    assert_eq!(
        (s.regions, s.address_spaces, s.listeners),
        (base.regions, base.address_spaces, base.listeners)
    );
    assert!(created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()));
}

/// A region id that no longer exists.
fn dead(mem: &Memory) -> RegionId {
    let r = mem.container("gone", 0x1000).unwrap();
    mem.delete_region(r).unwrap();
    r
}

// ---------------------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------------------

#[test]
fn cluster_plug_unplug_replug_and_slot_errors() {
    let b = board();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(b.system)),
            spec(1, "cpu-secure-memory", CpuView::Root(b.system)),
        ],
        tlb: true,
    };
    let mut cl = Cluster::new("apu", &b.mem, model, 4, 2).unwrap();
    assert_eq!((cl.name(), cl.max_cpus()), ("apu", 2));
    assert_eq!(format!("{cl:?}"), r#"Cluster { name: "apu", present: 0, max: 2 }"#);
    for round in 0..5 {
        let cpu = cl.plug(1).unwrap();
        assert_eq!(cpu.index(), 5);
        assert_eq!(cpu.address_space(0).unwrap().name(), "cpu-memory-5");
        let l = cpu.tlb_listener(0).unwrap().clone();
        assert_eq!(
            l.flush_requests(),
            1,
            "a fresh listener (round {round}): only its registration replay"
        );
        assert_eq!(spaces_named(&b.mem, "cpu-memory-5"), 1, "round {round}");
        assert_eq!(spaces_named(&b.mem, "cpu-secure-memory-5"), 1, "round {round}");
        assert_eq!(b.mem.stats().address_spaces, base.address_spaces + 2);

        // Typed errors, never a panic, and nothing changes.
        let e = cl.plug(1).unwrap_err();
        assert!(is_slot_error(&e, "slot already has a CPU"), "{e}");
        assert_eq!(
            e.to_string(),
            Error::WrongKind {
                name: "apu[1]".into(),
                kind: "cpu slot",
                what: "slot already has a CPU"
            }
            .to_string()
        );
        assert!(is_slot_error(&cl.unplug(0).unwrap_err(), "slot is empty"));
        assert!(is_slot_error(&cl.plug(2).unwrap_err(), "no such slot"));
        assert!(is_slot_error(&cl.unplug(2).unwrap_err(), "slot is empty"));
        assert!(is_slot_error(&cl.plug(1 << 32).unwrap_err(), "no such slot"));
        assert_eq!(spaces_named(&b.mem, "cpu-memory-5"), 1);
        assert_eq!(cl.cpus().count(), 1);
        assert!(cl.cpu(0).is_none() && cl.cpu(1).is_some() && cl.cpu(7).is_none());

        cl.unplug(1).unwrap();
        assert_eq!(spaces_named(&b.mem, "cpu-memory-5"), 0);
        assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
        assert_eq!(b.mem.stats().listeners, base.listeners);
        let e = cl.unplug(1).unwrap_err();
        assert!(is_slot_error(&e, "slot is empty"), "{e}");
        // The unplugged CPU's listener hears nothing more.
        let extra = b.mem.ram(&format!("extra{round}"), 0x1000).unwrap();
        b.mem
            .add_subregion(b.system, 0x100_0000 + round * 0x1000, extra)
            .unwrap();
        assert_eq!(
            l.flush_requests(),
            2,
            "registration replay + teardown, nothing after unplug"
        );
    }
    cl.plug(0).unwrap();
    cl.plug(1).unwrap();
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces + 4);
    drop(cl);
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
}

/// A huge slot number on a cluster whose indices do not start at 0 is a "no such slot" error.
/// (Regression: `Cluster::plug` computed the CPU index before checking the slot and overflowed.)
#[test]
fn cluster_plug_huge_slot_is_an_error_not_a_panic() {
    let b = board();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(b.system))],
        tlb: false,
    };
    let mut cl = Cluster::new("rpu", &b.mem, model, 4, 2).unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cl.plug(usize::MAX).map(|_| ())));
    let r = r.expect("plug panicked");
    assert!(is_slot_error(&r.unwrap_err(), "no such slot"));
}

#[test]
fn zcu102_like_asymmetric_clusters() {
    let b = board();
    let _memory = b.mem.address_space("memory", b.system).unwrap();
    // The R5s see TCM at 0 over system memory.
    let rpu_root = b.mem.container("rpu-memory", SIZE_2_64).unwrap();
    let rpu_sys = b.mem.alias("rpu-sysmem", b.system, 0, SIZE_2_64).unwrap();
    let tcm = b.mem.ram("tcm", 0x4_0000).unwrap();
    b.mem.add_subregion_overlap(rpu_root, 0, rpu_sys, 0).unwrap();
    b.mem.add_subregion_overlap(rpu_root, 0, tcm, 1).unwrap();
    let base = b.mem.stats();

    let apu_model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(b.system))],
        tlb: true,
    };
    let rpu_model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(rpu_root))],
        tlb: true,
    };
    let mut apu = Cluster::new("apu", &b.mem, apu_model, 0, 4).unwrap();
    let mut rpu = Cluster::new("rpu", &b.mem, rpu_model, 4, 2).unwrap();
    for s in 0..4 {
        apu.plug(s).unwrap();
    }
    for s in 0..2 {
        rpu.plug(s).unwrap();
    }
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces + 6);
    let text = mtree::print_flat(&b.mem, &FlatOptions::default());
    eprintln!("{text}");
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    let names = |root: &str| -> Vec<String> {
        let v: Vec<_> = dump.views.iter().filter(|v| v.root.as_deref() == Some(root)).collect();
        assert_eq!(v.len(), 1, "one view of {root}");
        v[0].address_spaces.iter().map(|a| a.name.clone()).collect()
    };
    assert_eq!(
        names("system"),
        ["memory", "cpu-memory-0", "cpu-memory-1", "cpu-memory-2", "cpu-memory-3"]
    );
    assert_eq!(names("rpu-memory"), ["cpu-memory-4", "cpu-memory-5"]);
    let rpu_view = dump
        .views
        .iter()
        .find(|v| v.root.as_deref() == Some("rpu-memory"))
        .unwrap();
    assert_eq!((rpu_view.ranges[0].name.as_str(), rpu_view.ranges[0].start), ("tcm", 0));
    assert!(text.contains(" AS \"cpu-memory-4\", root: rpu-memory\n"));

    // The APUs write pc.ram at 0, the RPUs write their TCM there.
    let a0 = apu.cpu(0).unwrap().address_space(0).unwrap();
    let r0 = rpu.cpu(0).unwrap().address_space(0).unwrap();
    let r1 = rpu.cpu(1).unwrap().address_space(0).unwrap();
    assert_eq!(a0.store(GuestAddr(0x100), 1u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(r0.store(GuestAddr(0x100), 2u32, LE, attrs()), MemTxResult::OK);
    assert_eq!(
        ld32(apu.cpu(3).unwrap().address_space(0).unwrap(), 0x100),
        (1, MemTxResult::OK)
    );
    assert_eq!(ld32(r1, 0x100), (2, MemTxResult::OK));
    assert_eq!(ld32(r1, 0x4_0000), (0, MemTxResult::OK), "pc.ram past the TCM");
    assert!(Arc::ptr_eq(&r0.view(), &r1.view()));
    assert!(!Arc::ptr_eq(&r0.view(), &a0.view()));

    rpu.unplug(0).unwrap();
    apu.unplug(2).unwrap();
    let dump = mtree::flat::flat_dump(&b.mem, &FlatOptions::default());
    let all: Vec<&str> = dump
        .views
        .iter()
        .flat_map(|v| v.address_spaces.iter().map(|a| a.name.as_str()))
        .collect();
    assert_eq!(
        all,
        ["memory", "cpu-memory-0", "cpu-memory-1", "cpu-memory-3", "cpu-memory-5"]
    );
    drop((apu, rpu));
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
    assert_eq!(b.mem.stats().listeners, base.listeners);
}

// ---------------------------------------------------------------------------------------
// RAII unplug
// ---------------------------------------------------------------------------------------

#[test]
fn unplug_is_raii_and_readers_finish_on_their_view() {
    let b = board();
    let created = Arc::new(Created::default());
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![spec(
            0,
            "cpu-memory",
            CpuView::PerCpu(m_profile(b.system, created.clone())),
        )],
        tlb: true,
    };
    let cpu = Cpu::realize(&b.mem, 3, &model).unwrap();
    let space = cpu.address_space(0).unwrap();
    let tcm_block: Weak<RamBlock> = {
        let (r, _) = space.lookup(GuestAddr(TCM)).unwrap();
        Arc::downgrade(r.leaf().backend().ram().unwrap())
    };
    let held_view = space.view();
    let mut acc = space.accessor();
    let s = b.mem.stats();
    assert_eq!(
        (s.regions, s.listeners, s.address_spaces),
        (base.regions + 4, base.listeners + 1, base.address_spaces + 1)
    );

    let (started_tx, started_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        // Each access sees one whole view: the CPU's (right values) or, once the space is
        // gone, the empty one (zero, decode error) — and never goes back.
        let (mut ok, mut err) = (0u64, 0u64);
        let deadline = Instant::now() + Duration::from_secs(20);
        while err < 3000 {
            assert!(Instant::now() < deadline, "reader never saw the unplug");
            let a = MemTxAttrs::default();
            let mut buf = [0xffu8; 64];
            let outcomes = [
                match acc.load::<u32>(GuestAddr(NVIC), LE, a) {
                    (0x1003, MemTxResult::OK) => true,
                    (0, MemTxResult::DECODE_ERROR) => false,
                    other => panic!("nvic load: {other:?}"),
                },
                match acc.load::<u64>(GuestAddr(TCM + 8), LE, a) {
                    (0x0404_0404_0404_0404, MemTxResult::OK) => true,
                    (0, MemTxResult::DECODE_ERROR) => false,
                    other => panic!("tcm load: {other:?}"),
                },
                match acc.read(GuestAddr(TCM + 0xfc0), &mut buf, a) {
                    MemTxResult::OK if buf == [4; 64] => true,
                    MemTxResult::DECODE_ERROR if buf == [0; 64] => false,
                    other => panic!("tcm read: {other:?} {buf:?}"),
                },
            ];
            for good in outcomes {
                if good {
                    assert_eq!(err, 0, "an access succeeded after one saw the empty view");
                    ok += 1;
                } else {
                    err += 1;
                }
            }
            if ok == 3 {
                started_tx.send(()).unwrap();
            }
        }
        (ok, acc)
    });
    started_rx.recv().unwrap();
    drop(cpu); // unplug while the reader runs
    let s = b.mem.stats();
    assert_eq!(s.regions, base.regions, "per-CPU regions deleted");
    assert_eq!(s.listeners, base.listeners, "TLB listener gone");
    assert_eq!(s.address_spaces, base.address_spaces, "space gone");
    let (ok, acc) = reader.join().unwrap();
    assert!(ok > 0);

    // A view held across the unplug still shows (and keeps alive) what it showed.
    let (r, off) = held_view.lookup(GuestAddr(TCM + 16)).unwrap();
    assert_eq!(r.name(), "tcm-3");
    let mut b8 = [0u8; 8];
    assert!(r.leaf().backend().ram().unwrap().read(off.0, &mut b8));
    assert_eq!(b8, [4; 8]);
    let (r, off) = held_view.lookup(GuestAddr(NVIC)).unwrap();
    match r.leaf().backend() {
        Backend::Io(ops) => assert_eq!(ops.read(off.0, 4, attrs()), (0x1003, MemTxResult::OK)),
        other => panic!("nvic is {other:?}"),
    }
    assert!(tcm_block.upgrade().is_some());
    drop(held_view);
    drop(acc);
    assert!(tcm_block.upgrade().is_none(), "TCM freed with the last view");
    assert!(
        created.periphs.lock().unwrap().iter().all(|w| w.upgrade().is_none()),
        "NVIC freed"
    );
    assert_eq!(b.mem.stats().flatviews, base.flatviews, "no view outlives its readers");
}

/// Holding a clone of a CPU's `AddressSpace` across unplug: the space survives (it is a
/// handle), and the per-CPU root goes when the clone goes. (Regression: the root was deleted
/// with the CPU or never — it stayed in the graph forever.)
#[test]
fn cloned_space_handle_does_not_leak_the_per_cpu_root() {
    let b = board();
    let smram = b.mem.ram("smram", 0x20000).unwrap();
    let base = b.mem.stats();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-smm", CpuView::PerCpu(smm(b.system, smram)))],
        tlb: false,
    };
    let cpu = Cpu::realize(&b.mem, 0, &model).unwrap();
    let handle = cpu.address_space(0).unwrap().clone();
    drop(cpu);
    drop(handle);
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
    assert_eq!(b.mem.stats().regions, base.regions, "smm-container-0 leaked");
}

// ---------------------------------------------------------------------------------------
// TLB listener
// ---------------------------------------------------------------------------------------

#[test]
fn tlb_listener_flushes_exactly_once_per_visible_commit() {
    let b = board();
    let created = Arc::new(Created::default());
    let pci = b.mem.container("pci", SIZE_2_64).unwrap();
    let _pci_space = b.mem.address_space("pci-memory", pci).unwrap();
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::PerCpu(m_profile(b.system, created))),
            spec(1, "cpu-normal", CpuView::Root(b.system)),
        ],
        tlb: true,
    };
    let c0 = Cpu::realize(&b.mem, 0, &model).unwrap();
    let c1 = Cpu::realize(&b.mem, 1, &model).unwrap();
    let listeners = [
        c0.tlb_listener(0).unwrap().clone(),
        c1.tlb_listener(0).unwrap().clone(),
        c0.tlb_listener(1).unwrap().clone(),
        c1.tlb_listener(1).unwrap().clone(),
    ];
    let counts = || listeners.iter().map(|l| l.flush_requests()).collect::<Vec<_>>();
    let mut last = counts();
    let mut expect = |what: &str, delta: [u64; 4]| {
        let now = counts();
        let got: Vec<u64> = now.iter().zip(&last).map(|(n, l)| n - l).collect();
        assert_eq!(got, delta, "{what}");
        last = now;
    };
    let m = &b.mem;

    // A change in system: every space sees it, once.
    let r1 = m.ram("r1", 0x1000).unwrap();
    m.add_subregion(b.system, 0x4000_0000, r1).unwrap();
    expect("add to system", [1, 1, 1, 1]);
    // Several changes in one transaction: one flush.
    {
        let _tx = m.transaction();
        m.set_address(r1, 0x4000_1000).unwrap();
        m.set_readonly(r1, true).unwrap();
        let r2 = m.ram("r2", 0x1000).unwrap();
        m.add_subregion(b.system, 0x5000_0000, r2).unwrap();
    }
    expect("transaction", [1, 1, 1, 1]);
    // Nothing changes: no flush.
    m.set_enabled(r1, true).unwrap();
    m.set_address(r1, 0x4000_1000).unwrap();
    drop(m.transaction());
    expect("no-op", [0, 0, 0, 0]);
    // A change inside CPU 0's private container.
    let nvic0 = m
        .regions()
        .into_iter()
        .find(|&r| m.region_info(r).unwrap().name == "nvic-0")
        .unwrap();
    m.set_enabled(nvic0, false).unwrap();
    expect("CPU 0 private", [1, 0, 0, 0]);
    m.set_enabled(nvic0, true).unwrap();
    expect("CPU 0 private back", [1, 0, 0, 0]);
    // A change in an unrelated address space.
    let bar = m.ram("bar", 0x1000).unwrap();
    m.add_subregion(pci, 0x1000, bar).unwrap();
    m.set_address(bar, 0x2000).unwrap();
    expect("pci", [0, 0, 0, 0]);
    // A change of system hidden from the M-profile CPUs by their NVIC (priority 1 over the
    // priority -1 alias), but visible to system's own spaces.
    let under = m.ram("under-nvic", 0x1000).unwrap();
    m.add_subregion_overlap(b.system, NVIC, under, 5).unwrap();
    expect("hidden under the NVICs", [0, 0, 1, 1]);
    // Unplugging CPU 1 changes nothing CPU 0 sees.
    drop(c1);
    expect("unplug CPU 1", [0, 1, 0, 1]);
    let r3 = m.ram("r3", 0x1000).unwrap();
    m.add_subregion(b.system, 0x6000_0000, r3).unwrap();
    expect("after unplug", [1, 0, 1, 0]);
    drop(c0);
}

/// Structurally identical SMM roots share one view, rendered from the oldest root (the
/// representative). Unplugging the CPU that owns it is invisible to the other CPUs: no
/// render, no listener call, the same view. (Regression: every other CPU was re-rendered and
/// its TLB flushed — O(CPUs) per unplug, about 30 ms with 1024 CPUs in a debug build.)
#[test]
fn unplugging_the_representative_cpu_does_not_touch_the_others() {
    let b = board();
    let smram = b.mem.ram("smram", 0x20000).unwrap();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-smm", CpuView::PerCpu(smm(b.system, smram)))],
        tlb: true,
    };
    let mut cpus: Vec<Cpu> = (0..3).map(|i| Cpu::realize(&b.mem, i, &model).unwrap()).collect();
    let flushes = |cpus: &[Cpu]| -> Vec<u64> {
        cpus.iter()
            .map(|c| c.tlb_listener(0).unwrap().flush_requests())
            .collect()
    };
    let view = cpus[2].address_space(0).unwrap().view();
    let before = (flushes(&cpus[1..]), b.mem.stats().renders);
    drop(cpus.remove(0)); // the representative
    let after = (flushes(&cpus), b.mem.stats().renders);
    assert_eq!(after, before, "(TLB flush requests of CPUs 1 and 2, renders)");
    assert!(
        Arc::ptr_eq(&view, &cpus[1].address_space(0).unwrap().view()),
        "view replaced"
    );
}

// ---------------------------------------------------------------------------------------
// DMA
// ---------------------------------------------------------------------------------------

const DMA_BASE: u64 = 0x1000_0000;

fn dma_copy(cpu: &AddressSpace, base: u64, src: u64, dst: u64, len: u64) -> (u64, MemTxResult) {
    for (reg, v) in [(0x00, src), (0x08, dst), (0x10, len), (0x18, 1)] {
        assert_eq!(cpu.store(GuestAddr(base + reg), v, LE, attrs()), MemTxResult::OK);
    }
    cpu.load::<u64>(GuestAddr(base + 0x20), LE, attrs())
}

#[test]
fn dma_engine_copies_reports_status_and_unplugs_cleanly() {
    let b = board();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(b.system))],
        tlb: true,
    };
    let cpu = Cpu::realize(&b.mem, 0, &model).unwrap();
    let cs = cpu.address_space(0).unwrap();
    let base = b.mem.stats();

    let dma = DmaDevice::plug(&b.mem, "dma0", b.system, b.system, DMA_BASE).unwrap();
    assert_eq!(dma.address_space().name(), "dma0");
    assert_eq!(format!("{dma:?}"), r#"DmaDevice { space: "dma0" }"#);
    assert_eq!(b.mem.region_info(dma.regs()).unwrap().name, "dma0-regs");
    let s = b.mem.stats();
    assert_eq!(
        (s.address_spaces, s.regions),
        (base.address_spaces + 1, base.regions + 1)
    );
    assert_eq!(spaces_named(&b.mem, "dma0"), 1);

    let pattern: Vec<u8> = (0..0x300u32).map(|i| (i * 7 + 3) as u8).collect();
    assert_eq!(cs.write(GuestAddr(0x1000), &pattern, attrs()), MemTxResult::OK);
    assert_eq!(dma_copy(cs, DMA_BASE, 0x1000, 0x8000, 0x300), (0, MemTxResult::OK));
    let mut out = vec![0u8; 0x300];
    assert_eq!(cs.read(GuestAddr(0x8000), &mut out, attrs()), MemTxResult::OK);
    assert_eq!(out, pattern);
    // Registers read back.
    assert_eq!(
        cs.load::<u64>(GuestAddr(DMA_BASE + 0x10), LE, attrs()),
        (0x300, MemTxResult::OK)
    );
    // Unmapped source: non-zero status (a decode error), destination written with zeros.
    let (st, r) = dma_copy(cs, DMA_BASE, 0x5000_0000, 0x8000, 0x10);
    assert_eq!((st, r), (u64::from(MemTxResult::DECODE_ERROR.bits()), MemTxResult::OK));
    // Unmapped destination.
    assert_ne!(dma_copy(cs, DMA_BASE, 0x1000, 0x5000_0000, 0x10).0, 0);
    // A source half in RAM, half past it.
    assert_ne!(dma_copy(cs, DMA_BASE, 0x10_0000 - 8, 0x9000, 0x10).0, 0);
    // Too long.
    assert_eq!(
        dma_copy(cs, DMA_BASE, 0, 0x9000, DMA_MAX_LEN + 1).0,
        u64::from(MemTxResult::ERROR.bits())
    );
    // Success clears the status again.
    assert_eq!(dma_copy(cs, DMA_BASE, 0x1000, 0x8000, 8).0, 0);
    // The registers only take 8-byte accesses.
    assert_eq!(
        cs.load::<u32>(GuestAddr(DMA_BASE + 0x20), LE, attrs()).1,
        MemTxResult::DECODE_ERROR
    );
    // A copy into its own registers is refused by the re-entrancy guard, without deadlock.
    assert_ne!(dma_copy(cs, DMA_BASE, 0x1000, DMA_BASE, 8).0, 0);

    // A view held across the unplug keeps the engine's ops; `go` then finds no space.
    let held = cs.view();
    let dma_space = dma.address_space().downgrade();
    drop(dma);
    assert!(dma_space.upgrade().is_none(), "the engine's space is destroyed");
    let s = b.mem.stats();
    assert_eq!((s.address_spaces, s.regions), (base.address_spaces, base.regions));
    assert_eq!(spaces_named(&b.mem, "dma0"), 0);
    assert_eq!(
        cs.load::<u64>(GuestAddr(DMA_BASE + 0x20), LE, attrs()).1,
        MemTxResult::DECODE_ERROR,
        "unmapped"
    );
    let (r, off) = held.lookup(GuestAddr(DMA_BASE)).unwrap();
    let Backend::Io(ops) = r.leaf().backend() else {
        panic!("dma regs are i/o")
    };
    let ops = ops.clone();
    assert_eq!(off.0, 0);
    drop(held);
    assert_eq!(ops.write(0x18, 1, 8, attrs()), MemTxResult::OK);
    assert_eq!(
        ops.read(0x20, 8, attrs()).0,
        u64::from(MemTxResult::DECODE_ERROR.bits())
    );
    drop(ops);
    assert_eq!(b.mem.stats().flatviews, base.flatviews);

    // Re-plug under the same name: a fresh space, never two.
    let dma = DmaDevice::plug(&b.mem, "dma0", b.system, b.system, DMA_BASE).unwrap();
    assert_eq!(spaces_named(&b.mem, "dma0"), 1);
    assert_eq!(dma_copy(cs, DMA_BASE, 0x1000, 0xa000, 4).0, 0);
    // Plugging an engine on a bus that is gone fails, and leaves nothing behind.
    let gone = dead(&b.mem);
    let before = b.mem.stats();
    assert!(DmaDevice::plug(&b.mem, "dma1", b.system, gone, 0x80).is_err());
    let after = b.mem.stats();
    assert_eq!(
        (after.address_spaces, after.regions),
        (before.address_spaces, before.regions)
    );
    dma.unplug();
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
}

#[test]
fn dma_with_restricted_reach_cannot_reach_outside() {
    let b = board();
    let cs = b.mem.address_space("memory", b.system).unwrap();
    // The engine reaches only the first 32 KiB of pc.ram, at 0.
    let reach = b.mem.container("dma-reach", SIZE_2_64).unwrap();
    let window = b.mem.alias("dma-window", b.ram, 0, 0x8000).unwrap();
    b.mem.add_subregion(reach, 0, window).unwrap();
    let dma = DmaDevice::plug(&b.mem, "dma-restricted", reach, b.system, DMA_BASE).unwrap();
    assert_eq!(dma.address_space().root(), reach);

    let pattern: Vec<u8> = (0..0x100u32).map(|i| i as u8 ^ 0x5a).collect();
    assert_eq!(cs.write(GuestAddr(0x1000), &pattern, attrs()), MemTxResult::OK);
    assert_eq!(cs.write(GuestAddr(0x9000), &pattern, attrs()), MemTxResult::OK);
    // Inside the window: works.
    assert_eq!(dma_copy(&cs, DMA_BASE, 0x1000, 0x2000, 0x100).0, 0);
    let mut out = vec![0u8; 0x100];
    assert!(cs.read(GuestAddr(0x2000), &mut out, attrs()).is_ok());
    assert_eq!(out, pattern);
    // Source outside the window (RAM the CPU sees, the engine does not): error, and the
    // destination receives zeros, not the RAM outside.
    assert_ne!(dma_copy(&cs, DMA_BASE, 0x9000, 0x3000, 0x100).0, 0);
    assert!(cs.read(GuestAddr(0x3000), &mut out, attrs()).is_ok());
    assert_eq!(out, vec![0; 0x100]);
    // Destination outside the window: error, and the RAM there is untouched.
    let before = {
        let mut v = vec![0u8; 0x100];
        assert!(cs.read(GuestAddr(0xa000), &mut v, attrs()).is_ok());
        v
    };
    assert_ne!(dma_copy(&cs, DMA_BASE, 0x1000, 0xa000, 0x100).0, 0);
    assert!(cs.read(GuestAddr(0xa000), &mut out, attrs()).is_ok());
    assert_eq!(out, before);
    // Straddling the window's end: the part inside is copied, the status says error.
    assert_ne!(dma_copy(&cs, DMA_BASE, 0x1000, 0x8000 - 0x80, 0x100).0, 0);
    assert!(cs.read(GuestAddr(0x8000 - 0x80), &mut out, attrs()).is_ok());
    assert_eq!(out[..0x80], pattern[..0x80]);
    assert_ne!(out[0x80..], pattern[0x80..]);
    // Its own registers are not in its reach either.
    assert_ne!(dma_copy(&cs, DMA_BASE, DMA_BASE, 0x4000, 8).0, 0);
    let s = b.mem.stats();
    drop(dma);
    assert_eq!(b.mem.stats().address_spaces, s.address_spaces - 1);
    assert_eq!(b.mem.stats().regions, s.regions - 1);
}
