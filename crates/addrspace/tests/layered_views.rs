//! Layered per-CPU views ([`FlatView::base`]) under churn, through the public API only.
//!
//! An M-profile CPU's root — `container(2^64) { alias of system prio -1; nvic; systick prio 1 }`
//! — is rendered as its private windows over the system view. These tests drive such CPUs
//! (plugged into a [`Cluster`]) while system memory, the CPUs and their private devices change:
//!
//! 1. `churn_keeps_no_old_views_and_leaks_nothing`: 32 CPUs, 16 system devices, 5 000 steps
//!    (device moves/adds/removes, CPU unplug + re-plug, private device toggles) with two
//!    reader threads reading through the CPUs' accessors; every 250 steps and at the end the
//!    live flat views are exactly those the topology needs (no layered view keeps an old
//!    system view alive), and at the end tracked heap bytes are back at their baseline.
//! 2. `churn_keeps_every_cpu_view_equal_to_a_fresh_render`: the same churn without readers;
//!    after every step a sample of CPUs' views equal a fresh flat render (dirty masks and
//!    lookups too), are layered over the system space's *current* view, and the live view
//!    count is exact.
//! 3. `moving_ram_under_layered_readers_is_linearizable`: a writer moves a RAM region between
//!    four places while readers read through per-CPU (layered) accessors, a layered CPU's
//!    software TLB and system's accessor; every access is explained by one layout no older
//!    than the last one committed before it began, and after each burst of moves (stop the
//!    world) every reader sees exactly the last layout.
//! 4. `listeners_on_layered_spaces_replay_to_the_current_view`: recording listeners on CPU
//!    spaces and on system; their region_add/region_del/log_start/log_stop replayed onto an
//!    empty map equal the space's current ranges after every step.
//! 5. `shared_smm_views_stay_layered_over_the_current_system_view`: x86 SMM roots, which share
//!    one layered view between CPUs, through hot-plug of the representative CPU and SMRAM
//!    toggles: equal to a fresh render, layered over the current system view, shared.
//! 6. `cpu_views_follow_the_borrowed_view_through_its_space_lifetime`: the only space over
//!    system created and destroyed, and the commit mode flipped, under the same churn.
//!
//! `recreating_the_system_space_keeps_no_old_system_views` (ignored) reproduces a retention
//! bug: layered views keep borrowing the view of a destroyed space over system after a new
//! one is created, up to one old system view per CPU.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Instant;

use addrspace::cpu::{Cluster, Cpu, CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder, PerCpuRoot};
use addrspace::tlb::{SoftTlb, TlbListener, TlbStats};
use addrspace::{
    Accessor, AddressSpace, CommitMode, DirtyClient, DirtyMask, Endianness, FlatView, GuestAddr, ListenerHandle,
    MemTxAttrs, MemTxResult, Memory, MemoryListener, RegionId, RegionOps, Section, SIZE_2_64,
};

mod common;
use common::counting::{live_bytes, track_this_thread, Counting};
use common::Rng;

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// Shared helpers.

/// A device that reads as a constant identifying it.
struct Tagged(u64);

impl RegionOps for Tagged {
    fn read(&self, _offset: u64, size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let mask = if size >= 8 { u64::MAX } else { (1u64 << (8 * size)) - 1 };
        (self.0 & mask, MemTxResult::OK)
    }
    fn write(&self, _offset: u64, _value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

/// Word `off / 8` of a RAM block tagged `tag`: the tag in the top byte, the offset below.
fn word(tag: u8, off: u64) -> u64 {
    (u64::from(tag) << 56) | off
}

/// Fills RAM region `r` with `word(tag, offset)` words.
fn fill_words(mem: &Memory, r: RegionId, tag: u8) {
    let leaf = mem.leaf(r).unwrap().unwrap();
    let block = leaf.backend().ram().unwrap();
    let bytes: Vec<u8> = (0..block.len() as u64 / 8)
        .flat_map(|i| word(tag, i * 8).to_le_bytes())
        .collect();
    assert!(block.write(0, &bytes));
}

/// Ranges equal (QEMU's `flatrange_equal`) and so are their dirty-logging masks. (Not their
/// `priority()`: a render-time copy that, like QEMU's printer, nobody relies on — `info mtree
/// -f` reads the live priority — and that a priority change without effect leaves as is.)
fn assert_same_ranges(got: &FlatView, want: &FlatView, what: &dyn Fn() -> String) {
    let (a, b) = (got.ranges(), want.ranges());
    assert_eq!(a, b, "{}: ranges differ from a fresh render", what());
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!(
            x.dirty_log_mask(),
            y.dirty_log_mask(),
            "{}: dirty mask of {x:?}",
            what()
        );
    }
}

/// Whether a per-CPU view whose private regions claim `claims` (first, end) over system view
/// `sys` may be left unlayered: the library gives up layering when its windows (the claims
/// widened to `sys`'s ranges) cover more than 8 ranges and more than half of `sys`.
fn layering_may_be_refused(sys: &FlatView, claims: &[(u64, u64)]) -> bool {
    let covered = sys
        .ranges()
        .iter()
        .filter(|r| {
            claims
                .iter()
                .any(|&(lo, hi)| u128::from(r.start().0) < u128::from(hi) && r.end() > u128::from(lo))
        })
        .count();
    covered > 8 && covered * 2 > sys.ranges().len()
}

// ---------------------------------------------------------------------------------------------
// The M-profile board of tests 1, 2 and 4.

const NVIC: u64 = 0xe000_e000;
const SYSTICK: u64 = 0xe000_e010;
const SYSTICK_ALT: u64 = 0xe000_e800;
const RAM_SIZE: u64 = 0x10_0000;
const RAM_TAG: u8 = 0x5a;
const DEVS: usize = 16;
const DEV_BASE: u64 = 0x4000_0000;

fn nvic_value(cpu: u32) -> u64 {
    0x4e56_0000 | u64::from(cpu)
}
fn systick_value(cpu: u32) -> u64 {
    0x5354_0000 | u64::from(cpu)
}
fn dev_value(i: usize) -> u64 {
    0xde00_0000 | i as u64
}
fn dev_size(i: usize) -> u128 {
    [0x1000, 0x100, 0x800, 0x2000][i % 4]
}
/// Where device `i` lives in the canonical layout.
fn dev_home(i: usize) -> u64 {
    DEV_BASE + i as u64 * 0x4000
}

/// Places where a moving system device disturbs the CPUs' windows, or RAM: overlapping or
/// abutting the NVIC and SysTick (at both of SysTick's places), over RAM, across RAM's end.
const SPOTS: &[u64] = &[
    NVIC - 0x2000,
    NVIC - 0x1000,
    NVIC - 0x800,
    NVIC - 0x100,
    NVIC,
    NVIC + 0x10,
    NVIC + 0x100,
    NVIC + 0x800,
    NVIC + 0xf00,
    NVIC + 0x1000,
    NVIC + 0x1800,
    0x8_0000,
    RAM_SIZE - 0x1000,
    RAM_SIZE,
];

/// A CPU's private regions, recorded by the builder.
#[derive(Debug, Clone, Copy)]
struct Private {
    nvic: RegionId,
    systick: RegionId,
}

type Registry = Arc<Mutex<Vec<Option<Private>>>>;

/// The "private" M-profile builder of benches/hotplug.rs (same structure: a container over an
/// alias of system at priority -1, the NVIC at priority 0, SysTick at priority 1), with
/// devices that identify themselves, recording its regions in `reg`.
fn m_profile(system: RegionId, reg: Registry) -> PerCpuBuilder {
    Arc::new(move |m: &Memory, cpu: u32| {
        let root = m.container("armv7m-container", SIZE_2_64)?;
        let sa = m.alias(&format!("system-{cpu}"), system, 0, SIZE_2_64)?;
        let nvic = m.io(&format!("nvic-{cpu}"), 0x1000, Arc::new(Tagged(nvic_value(cpu))))?;
        let systick = m.io(&format!("systick-{cpu}"), 0xe0, Arc::new(Tagged(systick_value(cpu))))?;
        m.add_subregion_overlap(root, 0, sa, -1)?;
        m.add_subregion(root, NVIC, nvic)?;
        m.add_subregion_overlap(root, SYSTICK, systick, 1)?;
        reg.lock().unwrap()[cpu as usize] = Some(Private { nvic, systick });
        Ok(PerCpuRoot {
            root,
            regions: vec![root, sa, nvic, systick],
        })
    })
}

fn m_model(system: RegionId, reg: Registry) -> CpuModel {
    CpuModel {
        spaces: vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::PerCpu(m_profile(system, reg)),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-secure-memory".into(),
                view: CpuView::SameRootAs(0),
            },
        ],
        tlb: true,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct DevSlot {
    id: Option<RegionId>,
    mapped: bool,
}

/// What a step did (for the checks that follow it).
#[derive(Debug, Clone, Copy)]
enum Step {
    System,
    Cpu(usize),
    Private(usize),
}

/// System memory (RAM + 16 devices), an M-profile cluster, and random changes to both.
struct Churn {
    mem: Memory,
    system: RegionId,
    ram: RegionId,
    memory: AddressSpace,
    devs: Vec<DevSlot>,
    cluster: Cluster,
    reg: Registry,
    rng: Rng,
    logging: bool,
    /// Slots below this are never unplugged.
    pinned: usize,
}

impl Churn {
    fn new(cpus: usize, seed: u64) -> Churn {
        let mem = Memory::new();
        let system = mem.container("system", SIZE_2_64).unwrap();
        let ram = mem.ram("ram", RAM_SIZE.into()).unwrap();
        fill_words(&mem, ram, RAM_TAG);
        let mut devs = vec![DevSlot::default(); DEVS];
        {
            let _tx = mem.transaction();
            mem.add_subregion(system, 0, ram).unwrap();
            for (i, d) in devs.iter_mut().enumerate() {
                let id = mem
                    .io(&format!("dev{i:02}"), dev_size(i), Arc::new(Tagged(dev_value(i))))
                    .unwrap();
                mem.add_subregion(system, dev_home(i), id).unwrap();
                *d = DevSlot {
                    id: Some(id),
                    mapped: true,
                };
            }
        }
        let memory = mem.address_space("memory", system).unwrap();
        let reg: Registry = Arc::new(Mutex::new(vec![None; cpus]));
        let mut cluster = Cluster::new("cpus", &mem, m_model(system, reg.clone()), 0, cpus).unwrap();
        for s in 0..cpus {
            cluster.plug(s).unwrap();
        }
        Churn {
            mem,
            system,
            ram,
            memory,
            devs,
            cluster,
            reg,
            rng: Rng(seed),
            logging: false,
            pinned: 0,
        }
    }

    fn private(&self, slot: usize) -> Private {
        self.reg.lock().unwrap()[slot].expect("plugged CPUs registered their regions")
    }

    fn random_addr(&mut self) -> u64 {
        if self.rng.below(3) == 0 {
            SPOTS[self.rng.index(SPOTS.len())]
        } else {
            DEV_BASE + self.rng.below(64) * 0x1000
        }
    }

    fn random_prio(&mut self) -> i32 {
        self.rng.below(3) as i32 - 1
    }

    /// One random step of kind (a), (b) or (c).
    fn step(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) -> Step {
        match self.rng.below(3) {
            0 => {
                self.system_step();
                Step::System
            }
            1 => Step::Cpu(self.cpu_step(on_plug)),
            _ => match self.private_step() {
                Some(s) => Step::Private(s),
                None => Step::System,
            },
        }
    }

    /// (a) Move, add, remove, re-prioritise a system device, or toggle dirty logging of RAM.
    fn system_step(&mut self) {
        let i = self.rng.index(DEVS);
        let DevSlot { id, mapped } = self.devs[i];
        match (id, mapped) {
            (None, _) => {
                let id = self
                    .mem
                    .io(&format!("dev{i:02}"), dev_size(i), Arc::new(Tagged(dev_value(i))))
                    .unwrap();
                let (addr, prio) = (self.random_addr(), self.random_prio());
                self.mem.add_subregion_overlap(self.system, addr, id, prio).unwrap();
                self.devs[i] = DevSlot {
                    id: Some(id),
                    mapped: true,
                };
            }
            (Some(id), false) => {
                if self.rng.below(4) == 0 {
                    self.mem.delete_region(id).unwrap();
                    self.devs[i].id = None;
                } else {
                    let (addr, prio) = (self.random_addr(), self.random_prio());
                    self.mem.add_subregion_overlap(self.system, addr, id, prio).unwrap();
                    self.devs[i].mapped = true;
                }
            }
            (Some(id), true) => match self.rng.below(10) {
                0..=4 => {
                    let addr = self.random_addr();
                    self.mem.set_address(id, addr).unwrap();
                }
                5 => {
                    let prio = self.random_prio();
                    self.mem.set_priority(id, prio).unwrap();
                }
                6 | 7 => {
                    self.mem.remove_subregion(self.system, id).unwrap();
                    self.devs[i].mapped = false;
                }
                8 => {
                    // Two devices in one commit.
                    let j = self.rng.index(DEVS);
                    let (a, b) = (self.random_addr(), self.random_addr());
                    let _tx = self.mem.transaction();
                    self.mem.set_address(id, a).unwrap();
                    if let DevSlot {
                        id: Some(other),
                        mapped: true,
                    } = self.devs[j]
                    {
                        self.mem.set_address(other, b).unwrap();
                    }
                }
                _ => {
                    self.logging = !self.logging;
                    self.mem.set_log(self.ram, DirtyClient::Vga, self.logging).unwrap();
                }
            },
        }
    }

    /// (b) Unplug a CPU and (usually) plug it again at once, or plug an empty slot.
    fn cpu_step(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) -> usize {
        let n = self.cluster.max_cpus();
        let s = self.pinned + self.rng.index(n - self.pinned);
        if self.cluster.cpu(s).is_some() {
            self.cluster.unplug(s).unwrap();
            if self.rng.below(4) == 0 {
                return s;
            }
        }
        let cpu = self.cluster.plug(s).unwrap();
        on_plug(s, cpu);
        s
    }

    /// (c) Toggle a plugged CPU's NVIC or SysTick, or move its SysTick.
    fn private_step(&mut self) -> Option<usize> {
        let n = self.cluster.max_cpus();
        let s = (0..4)
            .map(|_| self.rng.index(n))
            .find(|&s| self.cluster.cpu(s).is_some())?;
        let p = self.private(s);
        match self.rng.below(5) {
            0 | 1 => {
                let on = self.mem.region_info(p.nvic).unwrap().enabled;
                self.mem.set_enabled(p.nvic, !on).unwrap();
            }
            2 | 3 => {
                let on = self.mem.region_info(p.systick).unwrap().enabled;
                self.mem.set_enabled(p.systick, !on).unwrap();
            }
            _ => {
                let at = self.mem.region_info(p.systick).unwrap().addr;
                let to = if at == SYSTICK { SYSTICK_ALT } else { SYSTICK };
                self.mem.set_address(p.systick, to).unwrap();
            }
        }
        Some(s)
    }

    /// Back to the canonical layout: every device at home, logging off, every CPU freshly
    /// plugged (its private devices enabled and in place).
    fn restore(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) {
        {
            let _tx = self.mem.transaction();
            for i in 0..DEVS {
                let id = match self.devs[i].id {
                    Some(id) => id,
                    None => self
                        .mem
                        .io(&format!("dev{i:02}"), dev_size(i), Arc::new(Tagged(dev_value(i))))
                        .unwrap(),
                };
                if self.devs[i].mapped {
                    self.mem.remove_subregion(self.system, id).unwrap();
                }
                self.mem.add_subregion(self.system, dev_home(i), id).unwrap();
                self.devs[i] = DevSlot {
                    id: Some(id),
                    mapped: true,
                };
            }
            if self.logging {
                self.logging = false;
                self.mem.set_log(self.ram, DirtyClient::Vga, false).unwrap();
            }
        }
        // Fresh CPUs (a CPU's bookkeeping is sized by what happened to it since its plug).
        for s in 0..self.cluster.max_cpus() {
            if self.cluster.cpu(s).is_some() {
                self.cluster.unplug(s).unwrap();
            }
            let cpu = self.cluster.plug(s).unwrap();
            on_plug(s, cpu);
        }
    }

    /// Drives every high-water mark a random churn can reach, so that warm-up covers them:
    /// every CPU without private devices (all spaces on system's view entry), then every CPU
    /// unplugged and all devices but one deleted at once (the most free region slots); then many
    /// unplug + re-plug cycles (hash tables keyed by fresh ids reach their final size).
    fn extremes(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) {
        let n = self.cluster.max_cpus();
        self.restore(on_plug);
        for s in 0..n {
            let p = self.private(s);
            self.mem.set_enabled(p.nvic, false).unwrap();
            self.mem.set_enabled(p.systick, false).unwrap();
        }
        for s in 0..n {
            self.cluster.unplug(s).unwrap();
        }
        // All but one: system with a single child would simplify to it (a new view entry).
        for d in self.devs.iter_mut().skip(1) {
            if let Some(id) = d.id.take() {
                if d.mapped {
                    self.mem.remove_subregion(self.system, id).unwrap();
                }
                self.mem.delete_region(id).unwrap();
            }
            d.mapped = false;
        }
        self.restore(on_plug);
        for i in 0..100 * n {
            self.cluster.unplug(i % n).unwrap();
            let cpu = self.cluster.plug(i % n).unwrap();
            on_plug(i % n, cpu);
        }
    }

    /// Makes the published views' storage depend on the layout only, not on the history
    /// (a patched view's vectors are sized after the view it was patched from): two commits
    /// far from every CPU window, from the canonical layout back to it.
    fn normalize(&self) {
        self.mem.set_enabled(self.ram, false).unwrap();
        self.mem.set_enabled(self.ram, true).unwrap();
    }

    /// The flat views the topology needs: system's, one per distinct CPU view, and the
    /// memory system's shared empty view.
    fn views_needed(&self) -> usize {
        let mut ptrs: Vec<*const FlatView> = vec![Arc::as_ptr(&self.memory.view())];
        for cpu in self.cluster.cpus() {
            for asidx in 0..2 {
                ptrs.push(Arc::as_ptr(&cpu.address_space(asidx).unwrap().view()));
            }
        }
        ptrs.sort_unstable();
        ptrs.dedup();
        ptrs.len() + 1
    }

    /// Every layered CPU view borrows from system's current view, and the live flat views are
    /// exactly the published ones (nothing else may hold a view when this is called).
    fn check_no_old_bases(&self, at: &str) {
        let sys = self.memory.view();
        for cpu in self.cluster.cpus() {
            let v = cpu.address_space(0).unwrap().view();
            if let Some(base) = v.base() {
                assert!(
                    Arc::ptr_eq(base, &sys),
                    "{at}: CPU {} is layered over an old system view",
                    cpu.index()
                );
            }
        }
        drop(sys);
        assert_eq!(
            self.mem.stats().flatviews,
            self.views_needed(),
            "{at}: live flat views beyond the published ones"
        );
    }

    /// The system view equals a fresh render.
    fn check_system(&self, at: &str) {
        let fresh = self.mem.render(self.system).unwrap();
        let v = self.memory.view();
        assert!(v.base().is_none(), "{at}: the system view is not layered");
        assert_same_ranges(&v, &fresh, &|| format!("{at}: system"));
    }

    /// CPU `s`'s view equals a fresh flat render of its root (ranges, dirty masks, lookups,
    /// cached lookups), both its spaces show it, and it is layered over system's current
    /// view (or is system's view itself when no private device is enabled). Returns whether
    /// it was layered.
    fn check_cpu(&self, s: usize, at: &str) -> bool {
        let cpu = self.cluster.cpu(s).unwrap();
        let space = cpu.address_space(0).unwrap();
        let secure = cpu.address_space(1).unwrap();
        let view = space.view();
        let what = || format!("{at}: CPU {s}");
        assert!(
            Arc::ptr_eq(&view, &secure.view()),
            "{}: both spaces show one view",
            what()
        );
        let sys = self.memory.view();
        let p = self.private(s);
        let (nvic_on, systick_on) = (
            self.mem.region_info(p.nvic).unwrap().enabled,
            self.mem.region_info(p.systick).unwrap().enabled,
        );
        let fresh = self.mem.render(space.root()).unwrap();
        assert_same_ranges(&view, &fresh, &what);
        let layered = view.base().is_some();
        if !nvic_on && !systick_on {
            assert!(
                Arc::ptr_eq(&view, &sys),
                "{}: without private devices the CPU shows system's view",
                what()
            );
        } else if let Some(base) = view.base() {
            assert!(
                Arc::ptr_eq(base, &sys),
                "{}: layered over an old system view ({} ranges) instead of the current one ({} ranges)",
                what(),
                base.ranges().len(),
                sys.ranges().len()
            );
            assert!(view.own_ranges() < view.ranges().len(), "{}: {view:?}", what());
        } else {
            // Layering is given up only when the windows hold most of the ranges.
            let systick_at = self.mem.region_info(p.systick).unwrap().addr;
            let mut claims = Vec::new();
            if nvic_on {
                claims.push((NVIC, NVIC + 0x1000));
            }
            if systick_on {
                claims.push((systick_at, systick_at + 0xe0));
            }
            assert!(
                layering_may_be_refused(&sys, &claims),
                "{}: not layered, though its windows cover few system ranges: {view:?}\nsystem {sys:?}",
                what()
            );
        }
        // Lookups, through the space and through a fresh accessor's last-hit cache.
        let mut probes = vec![
            0x1004,
            NVIC,
            SYSTICK,
            SYSTICK_ALT,
            NVIC + 0xfff,
            NVIC - 1,
            NVIC + 0x1000,
        ];
        for r in fresh.ranges().iter() {
            probes.extend([
                r.start().0,
                r.last().0,
                r.start().0.wrapping_sub(1),
                r.last().0.wrapping_add(1),
            ]);
        }
        let mut acc = space.accessor();
        for &a in probes.iter().chain(probes.iter().rev()) {
            let want = fresh.lookup(GuestAddr(a)).map(|(r, o)| (r.clone(), o));
            assert_eq!(space.lookup(GuestAddr(a)), want, "{}: lookup {a:#x}", what());
            let got = acc.lookup(GuestAddr(a)).map(|(r, o)| (r.clone(), o));
            assert_eq!(got, want, "{}: cached lookup {a:#x}", what());
        }
        layered
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Leaks and retention.

/// Counters of one memory system and the tracked threads' heap bytes. (Not
/// `RamBlock::live_count()`: it counts every test's RAM, and this churn creates none.)
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
struct Snapshot {
    regions: usize,
    address_spaces: usize,
    flatviews: usize,
    listeners: usize,
    live_bytes: isize,
}

fn snapshot(mem: &Memory) -> Snapshot {
    let s = mem.stats();
    Snapshot {
        regions: s.regions,
        address_spaces: s.address_spaces,
        flatviews: s.flatviews,
        listeners: s.listeners,
        live_bytes: live_bytes(),
    }
}

const CPUS: usize = 32;
const READERS: usize = 2;

/// Accessors handed to a reader, by slot (the reader takes them).
type Mailbox = Arc<Mutex<Vec<Option<Accessor>>>>;

/// Reads through CPU `slot`'s accessor what cannot depend on the race: RAM (never moved), and
/// the private windows (the CPU's own devices, a system device, or nothing). Returns whether
/// the accessor's space is still alive (an unplugged CPU's accessor sees the empty view).
fn reader_check(acc: &mut Accessor, slot: usize) -> bool {
    let (a, le) = (MemTxAttrs::default(), Endianness::Little);
    let cpu = slot as u32;
    // RAM never moves; an accessor of an unplugged CPU sees the empty view.
    let (v, r) = acc.load::<u64>(GuestAddr(0x1008), le, a);
    let live = r == MemTxResult::OK;
    assert!(
        (v, r) == (word(RAM_TAG, 0x1008), MemTxResult::OK) || (v, r) == (0, MemTxResult::DECODE_ERROR),
        "CPU {slot}: RAM reads {v:#x} {r:?}"
    );
    // The private devices, or what system shows there, or nothing.
    for addr in [NVIC + 0x400, SYSTICK + 4, SYSTICK_ALT + 4] {
        let (v, r) = acc.load::<u32>(GuestAddr(addr), le, a);
        let v = u64::from(v);
        let system_dev = v & !0xff == 0xde00_0000 && (v & 0xff) < DEVS as u64;
        let own = v == nvic_value(cpu) || v == systick_value(cpu);
        assert!(
            (r == MemTxResult::OK && (own || system_dev)) || (r == MemTxResult::DECODE_ERROR && v == 0),
            "CPU {slot}: {addr:#x} reads {v:#x} {r:?}"
        );
    }
    live
}

/// 32 M-profile CPUs over system memory with 16 devices; 5 000 steps of (a) device moves,
/// adds, removals, (b) CPU unplug + re-plug, (c) private device toggles, while two readers
/// read through the CPUs' accessors. Afterwards, back in the canonical layout: the live flat
/// views are exactly system's + one per CPU + the empty view (no layered view keeps an old
/// system view alive), and every counter and the tracked heap bytes equal their baseline.
#[test]
fn churn_keeps_no_old_views_and_leaks_nothing() {
    track_this_thread();
    let t0 = Instant::now();
    let mut ch = Churn::new(CPUS, 0x01a7_e7ed);
    let mailboxes: Vec<Mailbox> = (0..READERS)
        .map(|_| Arc::new(Mutex::new((0..CPUS).map(|_| None).collect())))
        .collect();
    let post = |mailboxes: &[Mailbox], s: usize, cpu: &Cpu| {
        let acc = cpu.address_space(0).unwrap().accessor();
        let old = mailboxes[s % READERS].lock().unwrap()[s].replace(acc);
        drop(old);
    };
    for cpu in ch.cluster.cpus() {
        post(&mailboxes, cpu.index() as usize, cpu);
    }
    let expected_at_setup = 1 + CPUS + 1;
    assert_eq!(ch.views_needed(), expected_at_setup);
    assert_eq!(ch.mem.stats().flatviews, expected_at_setup, "after setup");

    let stop = Arc::new(AtomicBool::new(false));
    // Readers stop when this test ends, even by a failed assertion.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_readers = StopOnDrop(stop.clone());
    let passes: Arc<Vec<AtomicU64>> = Arc::new((0..READERS).map(|_| AtomicU64::new(0)).collect());
    let live_reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|t| {
            let (stop, passes, live_reads, mailbox) =
                (stop.clone(), passes.clone(), live_reads.clone(), mailboxes[t].clone());
            thread::spawn(move || {
                track_this_thread();
                let mut mine: Vec<Option<Accessor>> = (0..CPUS).map(|_| None).collect();
                let mut live = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut m) = mailbox.try_lock() {
                        for (slot, new) in m.iter_mut().enumerate() {
                            if let Some(acc) = new.take() {
                                mine[slot] = Some(acc);
                            }
                        }
                    }
                    for (slot, acc) in mine.iter_mut().enumerate() {
                        if let Some(acc) = acc {
                            live += u64::from(reader_check(acc, slot));
                        }
                    }
                    passes[t].fetch_add(1, Ordering::SeqCst);
                    thread::yield_now();
                }
                live_reads.fetch_add(live, Ordering::Relaxed);
                // `mine` (the accessors) dropped here, on a tracked thread.
            })
        })
        .collect();
    // Readers drop the views they cached at their next access, and pick up posted accessors
    // at their next pass: wait for two more passes of each.
    let settle = |readers: &[thread::JoinHandle<()>]| {
        let p0: Vec<u64> = passes.iter().map(|p| p.load(Ordering::SeqCst)).collect();
        while passes.iter().zip(&p0).any(|(p, &p0)| p.load(Ordering::SeqCst) < p0 + 2) {
            assert!(
                !readers.iter().any(|r| r.is_finished()),
                "a reader failed (see its panic above)"
            );
            thread::yield_now();
        }
    };

    // Warm-up: lazily grown tables reach their working size.
    let mut on_plug = |s: usize, cpu: &Cpu| post(&mailboxes, s, cpu);
    for _ in 0..300 {
        ch.step(&mut on_plug);
    }
    ch.extremes(&mut on_plug);
    for _ in 0..300 {
        ch.step(&mut on_plug);
    }
    ch.restore(&mut on_plug);
    ch.normalize();
    settle(&readers);
    let base = snapshot(&ch.mem);
    assert_eq!(base.flatviews, expected_at_setup, "warm-up left views behind");

    let steps = 5_000;
    let t1 = Instant::now();
    let mut max_views = 0;
    for i in 1..=steps {
        ch.step(&mut on_plug);
        max_views = max_views.max(ch.mem.stats().flatviews);
        if i % 250 == 0 {
            // Once readers moved on, only the published views are alive: a layered view
            // over an old system view would keep that view alive too.
            settle(&readers);
            ch.check_no_old_bases(&format!("step {i}"));
        }
    }
    let churn = t1.elapsed();
    ch.restore(&mut on_plug);
    ch.normalize();
    settle(&readers);
    let end = snapshot(&ch.mem);
    let needed = ch.views_needed();

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    let after_readers = ch.mem.stats();
    let stats = ch.mem.stats();
    eprintln!(
        "churn with readers: {steps} steps in {churn:?} ({:.0} us/step), total {:?}; {} live reads; \
         at most {max_views} live views; renders {} patches {} layers {}",
        churn.as_secs_f64() * 1e6 / steps as f64,
        t0.elapsed(),
        live_reads.load(Ordering::Relaxed),
        stats.renders,
        stats.patches,
        stats.layers
    );
    eprintln!("baseline {base:?}\nend      {end:?}");
    assert!(live_reads.load(Ordering::Relaxed) > 0, "readers read something");
    assert_eq!(
        needed, expected_at_setup,
        "the canonical layout needs system + one view per CPU + empty"
    );
    assert_eq!(end.flatviews, needed, "live flat views beyond what the topology needs");
    assert_eq!(
        after_readers.flatviews, needed,
        "after the readers dropped their accessors"
    );
    assert_eq!(end, base, "churn leaked");
    drop(ch);
}

// ---------------------------------------------------------------------------------------------
// 2. Every CPU view equals a fresh render, and is layered over the current system view.

/// The churn of test 1 without readers: after every step, the CPU it touched and two random
/// CPUs (all 32 every 500 steps) equal a fresh flat render and are layered over system's
/// current view; system's view equals its render; and the live flat views are exactly the
/// distinct views of system and the CPUs plus the empty view.
#[test]
fn churn_keeps_every_cpu_view_equal_to_a_fresh_render() {
    let t0 = Instant::now();
    let mut ch = Churn::new(CPUS, 0xc0ff_ee11);
    let steps = 5_000;
    let (mut checked, mut layered, mut rebased_only) = (0u64, 0u64, 0u64);
    for i in 0..steps {
        let before = ch.mem.stats();
        let step = ch.step(&mut |_, _| {});
        let after = ch.mem.stats();
        let at = format!("step {i} ({step:?})");
        ch.check_system(&at);
        let mut sample = vec![ch.rng.index(CPUS), ch.rng.index(CPUS)];
        if let Step::Cpu(s) | Step::Private(s) = step {
            sample.push(s);
        }
        if i % 500 == 499 {
            sample = (0..CPUS).collect();
        }
        for s in sample {
            if ch.cluster.cpu(s).is_some() {
                layered += u64::from(ch.check_cpu(s, &at));
                checked += 1;
            }
        }
        if matches!(step, Step::System) && after.layers > before.layers && after.renders == before.renders {
            rebased_only += 1;
        }
        // Renders above were dropped: only published views are alive.
        assert_eq!(
            ch.mem.stats().flatviews,
            ch.views_needed(),
            "{at}: live flat views beyond the published ones"
        );
    }
    let s = ch.mem.stats();
    eprintln!(
        "fresh-render checks: {steps} steps, {checked} CPU checks ({layered} layered) in {:?}; \
         {rebased_only} system steps with layers and no render; renders {} patches {} layers {}",
        t0.elapsed(),
        s.renders,
        s.patches,
        s.layers
    );
    assert!(layered > checked * 3 / 4, "most CPU views are layered");
}

// ---------------------------------------------------------------------------------------------
// 3. Concurrent correctness: a RAM region moving under layered readers.

/// The mover visits `P[k] = BASE + k * SLOT`, k = 0..4, in turn (layout n: at `P[n % 4]`).
const BASE: u64 = 0x100_0000;
const SLOT: u64 = 0x2000;
const PLACES: u64 = 4;
/// A floor under places 0..3 (priority -1); place 3 is a hole when the mover is elsewhere.
const FLOOR_SIZE: u64 = 3 * SLOT;
/// Each CPU's private RAM over the middle of place 1 (and the floor).
const TCM: u64 = BASE + 0x3000;
const TCM_SIZE: u64 = 0x800;
/// The span the readers look at.
const LO: u64 = BASE - 0x100;
const HI: u64 = BASE + PLACES * SLOT + 0x100;
const MOVER_TAG: u8 = 0x4d;
const FLOOR_TAG: u8 = 0xf1;
const FAR_DEV: u64 = 0x5000_0000;

fn tcm_tag(cpu: u32) -> u8 {
    0x70 + cpu as u8
}

/// The byte at `addr` in layout `k` (mover at place `k`) for a reader with private RAM
/// tagged `tcm`; `None` where nothing is mapped.
fn expected_byte(addr: u64, k: u64, tcm: Option<u8>) -> Option<u8> {
    let at = BASE + k * SLOT;
    let (tag, off) = match tcm {
        Some(t) if (TCM..TCM + TCM_SIZE).contains(&addr) => (t, addr - TCM),
        _ if (at..at + SLOT).contains(&addr) => (MOVER_TAG, addr - at),
        _ if (BASE..BASE + FLOOR_SIZE).contains(&addr) => (FLOOR_TAG, addr - BASE),
        _ => return None,
    };
    Some(word(tag, off & !7).to_le_bytes()[(off & 7) as usize])
}

/// Whether `bytes` read at `addr` with result `res` is what layout `k` shows.
fn shows(addr: u64, bytes: &[u8], res: MemTxResult, k: u64, tcm: Option<u8>) -> bool {
    let mut hole = false;
    for (i, &b) in bytes.iter().enumerate() {
        match expected_byte(addr + i as u64, k, tcm) {
            Some(x) if x == b => {}
            Some(_) => return false,
            None if b == 0 => hole = true,
            None => return false,
        }
    }
    res == if hole {
        MemTxResult::DECODE_ERROR
    } else {
        MemTxResult::OK
    }
}

fn cpu_space(cluster: &Cluster, slot: usize) -> AddressSpace {
    cluster.cpu(slot).unwrap().address_space(0).unwrap().clone()
}

/// A per-CPU root over system at priority -1 with a private NVIC and a private RAM (TCM)
/// over place 1.
fn tcm_profile(system: RegionId) -> PerCpuBuilder {
    Arc::new(move |m: &Memory, cpu: u32| {
        let root = m.container(&format!("cpu-container-{cpu}"), SIZE_2_64)?;
        let sa = m.alias(&format!("cpu-sysmem-{cpu}"), system, 0, SIZE_2_64)?;
        let nvic = m.io(&format!("nvic-{cpu}"), 0x1000, Arc::new(Tagged(nvic_value(cpu))))?;
        let tcm = m.ram(&format!("tcm-{cpu}"), TCM_SIZE.into())?;
        fill_words(m, tcm, tcm_tag(cpu));
        m.add_subregion_overlap(root, 0, sa, -1)?;
        m.add_subregion(root, NVIC, nvic)?;
        m.add_subregion(root, TCM, tcm)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, sa, nvic, tcm],
        })
    })
}

/// A writer moves a RAM region around four places in system memory (and toggles a far
/// device, so that layered views are also moved onto new system views without a rebuild)
/// while readers read through per-CPU layered accessors (and one through system's).
///
/// Racing: every access — scalar loads and reads across several ranges — must be explained
/// by a single layout `m` with `p0 <= m <= p1 + 1`, where `p0`/`p1` are the number of moves
/// whose commit had returned before the access began/after it ended: never torn across two
/// layouts, never garbage, never a layout older than one already committed.
/// Stop the world (every 6 moves): every reader sees exactly the last layout, its view
/// equals a fresh render and is layered over system's current view.
#[test]
fn moving_ram_under_layered_readers_is_linearizable() {
    let t0 = Instant::now();
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", 0x1_0000).unwrap();
    fill_words(&mem, ram, RAM_TAG);
    let floor = mem.ram("floor", FLOOR_SIZE.into()).unwrap();
    fill_words(&mem, floor, FLOOR_TAG);
    let mover = mem.ram("mover", SLOT.into()).unwrap();
    fill_words(&mem, mover, MOVER_TAG);
    let far = mem.io("far", 0x1000, Arc::new(Tagged(dev_value(0)))).unwrap();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        mem.add_subregion_overlap(system, BASE, floor, -1).unwrap();
        mem.add_subregion(system, BASE, mover).unwrap();
        mem.add_subregion(system, FAR_DEV, far).unwrap();
    }
    let memory = mem.address_space("memory", system).unwrap();
    let model = CpuModel {
        spaces: vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::PerCpu(tcm_profile(system)),
        }],
        tlb: true,
    };
    let mut cluster = Cluster::new("cpus", &mem, model, 0, 4).unwrap();
    for s in 0..4 {
        cluster.plug(s).unwrap();
    }
    for cpu in cluster.cpus() {
        let v = cpu.address_space(0).unwrap().view();
        assert!(Arc::ptr_eq(v.base().expect("layered"), &memory.view()));
    }

    let phases: u64 = if cfg!(debug_assertions) { 250 } else { 2_000 };
    const MOVES: u64 = 6;
    // Readers: CPUs 0 and 1 (layered), and system.
    // Readers: CPUs 0 and 1 through accessors, CPU 2 through a software TLB (flushed by its
    // listener's commit), all layered; and system through an accessor.
    let tlb_of = |s: usize| cluster.cpu(s).unwrap().tlb_listener(0).unwrap().clone();
    let spaces: Vec<(AddressSpace, Option<u8>, Option<Arc<TlbListener>>)> = vec![
        (cpu_space(&cluster, 0), Some(tcm_tag(0)), None),
        (cpu_space(&cluster, 1), Some(tcm_tag(1)), None),
        (cpu_space(&cluster, 2), Some(tcm_tag(2)), Some(tlb_of(2))),
        (memory.clone(), None, None),
    ];
    let barrier = Arc::new(Barrier::new(spaces.len() + 1));
    let published = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let failure: Arc<Mutex<Option<String>>> = Arc::default();
    let readers: Vec<_> = spaces
        .into_iter()
        .enumerate()
        .map(|(t, (space, tcm, tlb))| {
            let (barrier, published, done, abort, failure) = (
                barrier.clone(),
                published.clone(),
                done.clone(),
                abort.clone(),
                failure.clone(),
            );
            let (mem, memory) = (mem.clone(), memory.clone());
            thread::spawn(move || {
                let mut acc = space.accessor();
                let mut tlb = tlb.map(|l| SoftTlb::new(&space, l));
                let mut rng = Rng(0x5eed + t as u64);
                let (a, le) = (MemTxAttrs::default(), Endianness::Little);
                let (mut racing, mut exact) = (0u64, 0u64);
                let mut buf = vec![0u8; (HI - LO) as usize];
                let guarded = |f: &mut dyn FnMut()| {
                    if abort.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(e) = std::panic::catch_unwind(AssertUnwindSafe(f)) {
                        let msg = e
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        failure.lock().unwrap().get_or_insert(format!("reader {t}: {msg}"));
                        abort.store(true, Ordering::SeqCst);
                    }
                };
                for _ in 0..phases {
                    barrier.wait();
                    guarded(&mut || {
                        let mut spins = 0u64;
                        while !done.load(Ordering::Acquire) || spins < 4 {
                            spins += 1;
                            for _ in 0..8 {
                                // The TLB reader only loads (what a TLB caches).
                                let kind = rng.below(if tlb.is_some() { 9 } else { 16 });
                                let p0 = published.load(Ordering::SeqCst);
                                let (addr, len, res) = match kind {
                                    0..=5 => {
                                        let addr = GuestAddr((LO + rng.below(HI - LO - 8)) & !7);
                                        let (v, r) = match &mut tlb {
                                            Some(tlb) => tlb.load::<u64>(addr, le, a),
                                            None => acc.load::<u64>(addr, le, a),
                                        };
                                        buf[..8].copy_from_slice(&v.to_le_bytes());
                                        (addr.0, 8, r)
                                    }
                                    6..=8 => {
                                        let addr = GuestAddr(((LO + rng.below(HI - LO - 8)) & !7) + 4);
                                        let (v, r) = match &mut tlb {
                                            Some(tlb) => tlb.load::<u32>(addr, le, a),
                                            None => acc.load::<u32>(addr, le, a),
                                        };
                                        buf[..4].copy_from_slice(&v.to_le_bytes());
                                        (addr.0, 4, r)
                                    }
                                    9..=14 => {
                                        // Across a place boundary (or the TCM's edges).
                                        let edges = [
                                            BASE,
                                            BASE + SLOT,
                                            BASE + 2 * SLOT,
                                            BASE + 3 * SLOT,
                                            HI - 0x100,
                                            TCM,
                                            TCM + TCM_SIZE,
                                        ];
                                        let e = edges[rng.index(edges.len())];
                                        let len = 1 + rng.index(96);
                                        let addr = e - rng.below(len as u64);
                                        let r = acc.read(GuestAddr(addr), &mut buf[..len], a);
                                        (addr, len, r)
                                    }
                                    _ => {
                                        let r = acc.read(GuestAddr(LO), &mut buf, a);
                                        (LO, buf.len(), r)
                                    }
                                };
                                let p1 = published.load(Ordering::SeqCst);
                                let ok = (p0..=(p1 + 1).min(p0 + PLACES))
                                    .any(|m| shows(addr, &buf[..len], res, m % PLACES, tcm));
                                if !ok {
                                    let seen: Vec<u64> =
                                        (0..PLACES).filter(|&k| shows(addr, &buf[..len], res, k, tcm)).collect();
                                    panic!(
                                        "access of {len} bytes at {addr:#x} ({res:?}) while layouts {p0}..={} \
                                         were possible is explained by layouts {seen:?} (mod 4): {:02x?}",
                                        p1 + 1,
                                        &buf[..len.min(32)]
                                    );
                                }
                                racing += 1;
                            }
                            thread::yield_now();
                        }
                    });
                    barrier.wait();
                    // Stop the world: exactly the last layout.
                    guarded(&mut || {
                        let k = published.load(Ordering::SeqCst) % PLACES;
                        if let Some(tlb) = &mut tlb {
                            for addr in (LO..HI).step_by(8) {
                                let (v, r) = tlb.load::<u64>(GuestAddr(addr), le, a);
                                let ok = shows(addr, &v.to_le_bytes(), r, k, tcm);
                                assert!(
                                    ok,
                                    "TLB stale at {addr:#x} after the commit of layout {k}: {v:#x} {r:?}"
                                );
                            }
                        }
                        let r = acc.read(GuestAddr(LO), &mut buf, a);
                        assert!(shows(LO, &buf, r, k, tcm), "stale after the commit of layout {k}");
                        let v = acc.view().clone();
                        let fresh = mem.render(space.root()).unwrap();
                        assert_same_ranges(&v, &fresh, &|| format!("reader {t}"));
                        if tcm.is_some() {
                            let base = v.base().expect("per-CPU views are layered");
                            assert!(Arc::ptr_eq(base, &memory.view()), "layered over system's current view");
                        }
                        exact += 1;
                    });
                    barrier.wait();
                    if abort.load(Ordering::SeqCst) {
                        break;
                    }
                }
                (racing, exact, tlb.map(|t| t.stats()))
            })
        })
        .collect();

    let mut rng = Rng(99);
    let mut n = 0u64;
    let mut far_on = true;
    for _ in 0..phases {
        done.store(false, Ordering::Release);
        barrier.wait();
        for _ in 0..MOVES {
            n += 1;
            let to = BASE + (n % PLACES) * SLOT;
            match rng.below(4) {
                0 => {
                    // The move and a far change in one commit.
                    let _tx = mem.transaction();
                    far_on = !far_on;
                    mem.set_enabled(far, far_on).unwrap();
                    mem.set_address(mover, to).unwrap();
                }
                1 => {
                    mem.set_address(mover, to).unwrap();
                    // A change far from every window: layered views move onto the new view.
                    far_on = !far_on;
                    mem.set_enabled(far, far_on).unwrap();
                }
                _ => mem.set_address(mover, to).unwrap(),
            }
            published.store(n, Ordering::SeqCst);
        }
        done.store(true, Ordering::Release);
        barrier.wait();
        barrier.wait();
        if abort.load(Ordering::SeqCst) {
            break;
        }
    }
    let results: Vec<(u64, u64, Option<TlbStats>)> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    if let Some(f) = failure.lock().unwrap().take() {
        panic!("{f}");
    }
    eprintln!(
        "linearizability: {phases} phases x {MOVES} moves in {:?}; (racing, exact, TLB stats) per reader: {results:?}",
        t0.elapsed()
    );
    for (racing, exact, _) in &results {
        assert_eq!(*exact, phases);
        assert!(*racing >= phases * 8);
    }
    drop(cluster);
}

// ---------------------------------------------------------------------------------------------
// 4. Listeners on layered spaces.

/// One range as a listener saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    start: u64,
    size: u128,
    name: String,
    offset: u64,
    readonly: bool,
    region: RegionId,
    mask: DirtyMask,
}

impl Seen {
    fn of(s: &Section<'_>) -> Seen {
        Seen {
            start: s.start().0,
            size: s.size(),
            name: s.name().to_string(),
            offset: s.offset_in_region().0,
            readonly: s.readonly(),
            region: s.region(),
            mask: s.dirty_log_mask(),
        }
    }
    fn of_range(r: &addrspace::FlatRange) -> Seen {
        Seen {
            start: r.start().0,
            size: r.size(),
            name: r.name().to_string(),
            offset: r.offset_in_region().0,
            readonly: r.readonly(),
            region: r.region(),
            mask: r.dirty_log_mask(),
        }
    }
}

#[derive(Debug)]
enum Ev {
    Add(Seen),
    Del(Seen),
    Log(Seen, DirtyMask, DirtyMask),
}

/// Records region and logging callbacks, and replays them onto its own map of ranges.
#[derive(Default)]
struct Rec {
    events: Mutex<Vec<Ev>>,
    state: Mutex<BTreeMap<u64, Seen>>,
}

impl MemoryListener for Rec {
    fn name(&self) -> &str {
        "recorder"
    }
    fn region_add(&self, s: &Section<'_>) {
        self.events.lock().unwrap().push(Ev::Add(Seen::of(s)));
    }
    fn region_del(&self, s: &Section<'_>) {
        self.events.lock().unwrap().push(Ev::Del(Seen::of(s)));
    }
    fn log_start(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        self.events.lock().unwrap().push(Ev::Log(Seen::of(s), old, new));
    }
    fn log_stop(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        self.events.lock().unwrap().push(Ev::Log(Seen::of(s), old, new));
    }
}

impl Rec {
    /// Applies the events recorded since the last call; returns how many.
    fn replay(&self, what: &str) -> usize {
        let events = std::mem::take(&mut *self.events.lock().unwrap());
        let mut st = self.state.lock().unwrap();
        for e in &events {
            match e {
                Ev::Add(s) => {
                    let clash = st
                        .range(..s.start + (s.size - 1) as u64)
                        .next_back()
                        .filter(|(_, o)| u128::from(o.start) + o.size > u128::from(s.start));
                    assert!(clash.is_none(), "{what}: add {s:?} over {clash:?}");
                    st.insert(s.start, s.clone());
                }
                Ev::Del(s) => {
                    // Unregistering sends `log_stop` to no clients first: the mask is
                    // checked through the logging events and the final comparison.
                    let old = st.remove(&s.start).map(|o| Seen { mask: s.mask, ..o });
                    assert_eq!(old.as_ref(), Some(s), "{what}: del of a range not added");
                }
                Ev::Log(s, old, new) => {
                    let e = st.get_mut(&s.start);
                    let e = e.unwrap_or_else(|| panic!("{what}: logging change of unknown {s:?}"));
                    assert_eq!(
                        (e.start, e.size, &e.name, e.offset),
                        (s.start, s.size, &s.name, s.offset),
                        "{what}: logging change {old:?} -> {new:?} does not match the range"
                    );
                    // A registration replay follows each logged range's `region_add` (which
                    // carries the mask) with `log_start` from no clients, as QEMU does.
                    let replayed = *old == DirtyMask::NONE && e.mask == *new;
                    assert!(
                        e.mask == *old || replayed,
                        "{what}: logging change {old:?} -> {new:?} of {e:?}"
                    );
                    e.mask = *new;
                }
            }
        }
        events.len()
    }

    /// The replayed state equals `space`'s current view.
    fn check(&self, space: &AddressSpace, what: &str) -> usize {
        let n = self.replay(what);
        let st = self.state.lock().unwrap();
        let got: Vec<&Seen> = st.values().collect();
        let view = space.view();
        let want: Vec<Seen> = view.ranges().iter().map(Seen::of_range).collect();
        let want: Vec<&Seen> = want.iter().collect();
        assert_eq!(got, want, "{what}: replayed listener events differ from the view");
        n
    }
}

/// Recording listeners on two layered CPUs' spaces (one registered late, on the secure
/// space), and on system; after every random step (system device changes, dirty logging,
/// private toggles, CPU hot-plug of other CPUs) replaying each listener's events onto its
/// map equals its space's current ranges (start, size, name, offset, readonly, region, dirty
/// mask). Unregistering replays everything as deletions: the maps end empty.
#[test]
fn listeners_on_layered_spaces_replay_to_the_current_view() {
    let t0 = Instant::now();
    let mut ch = Churn::new(6, 0x0715_07e4);
    ch.pinned = 2;
    let cpu0 = ch.cluster.cpu(0).unwrap().address_space(0).unwrap().clone();
    let cpu1s = ch.cluster.cpu(1).unwrap().address_space(1).unwrap().clone();
    assert!(cpu0.view().base().is_some(), "CPU 0 is layered");
    let (l_sys, l_cpu0, l_cpu1) = (
        Arc::new(Rec::default()),
        Arc::new(Rec::default()),
        Arc::new(Rec::default()),
    );
    let mut handles: Vec<(ListenerHandle, Arc<Rec>, AddressSpace, &str)> = vec![
        (
            ch.memory.register_listener(l_sys.clone(), 0).unwrap(),
            l_sys,
            ch.memory.clone(),
            "system",
        ),
        (
            cpu0.register_listener(l_cpu0.clone(), 0).unwrap(),
            l_cpu0,
            cpu0.clone(),
            "cpu-memory-0",
        ),
    ];
    let steps = 1_500;
    let mut events = 0;
    for i in 0..steps {
        if i == 300 {
            handles.push((
                cpu1s.register_listener(l_cpu1.clone(), 5).unwrap(),
                l_cpu1.clone(),
                cpu1s.clone(),
                "cpu-secure-memory-1",
            ));
        }
        let step = ch.step(&mut |_, _| {});
        for (_, rec, space, name) in &handles {
            events += rec.check(space, &format!("step {i} ({step:?}), {name}"));
        }
        if i % 100 == 0 {
            for s in 0..2 {
                ch.check_cpu(s, &format!("step {i}"));
            }
        }
    }
    for (h, rec, _, name) in handles {
        drop(h);
        rec.replay(&format!("unregistering {name}"));
        assert!(
            rec.state.lock().unwrap().is_empty(),
            "{name}: unregistering deletes every range"
        );
    }
    eprintln!(
        "listeners: {steps} steps, {events} events replayed in {:?}",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// 5. x86 SMM: per-CPU roots that share one layered view.

const SMRAM: u64 = 0xa_0000;
const SMRAM_SIZE: u64 = 0x2_0000;

/// Where a moving system device meets the SMRAM window: across and next to its edges.
const SMM_SPOTS: &[u64] = &[
    SMRAM - 0x1000,
    SMRAM - 0x800,
    SMRAM,
    SMRAM + 0x8000,
    SMRAM + SMRAM_SIZE - 0x1000,
    SMRAM + SMRAM_SIZE - 0x800,
    SMRAM + SMRAM_SIZE,
];

/// x86 TCG: `cpu-memory-N` over system, `cpu-smm-N` over a per-CPU root (the "percpu" model
/// of benches/hotplug.rs: alias of system at priority 0, alias of SMRAM at priority 1), whose
/// SMRAM alias is recorded in `reg`. Structurally identical SMM roots share one view, layered
/// over system's. After every step — system devices moving across the SMRAM window's edges,
/// CPU unplug + re-plug (the representative CPU included), a CPU's SMRAM window toggled — each
/// CPU's SMM view equals a fresh render and is layered over system's current view (or is
/// system's view, SMRAM off), all CPUs with SMRAM on share one view, and the live flat views
/// are exactly the published ones.
#[test]
fn shared_smm_views_stay_layered_over_the_current_system_view() {
    let t0 = Instant::now();
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 0x10_0000).unwrap();
    let smram = mem.ram("smram", SMRAM_SIZE.into()).unwrap();
    let mut devs = Vec::new();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        for i in 0..8 {
            let d = mem
                .io(&format!("dev{i}"), dev_size(i), Arc::new(Tagged(dev_value(i))))
                .unwrap();
            mem.add_subregion_overlap(system, dev_home(i), d, 1).unwrap();
            devs.push(d);
        }
    }
    let memory = mem.address_space("memory", system).unwrap();
    const N: usize = 8;
    let reg: Arc<Mutex<Vec<Option<RegionId>>>> = Arc::new(Mutex::new(vec![None; N]));
    let build: PerCpuBuilder = {
        let reg = reg.clone();
        Arc::new(move |m: &Memory, cpu: u32| {
            let root = m.container("memory", SIZE_2_64)?;
            let sa = m.alias(&format!("smm-system-{cpu}"), system, 0, SIZE_2_64)?;
            let ra = m.alias(&format!("smm-smram-{cpu}"), smram, 0, SMRAM_SIZE.into())?;
            m.add_subregion(root, 0, sa)?;
            m.add_subregion_overlap(root, SMRAM, ra, 1)?;
            reg.lock().unwrap()[cpu as usize] = Some(ra);
            Ok(PerCpuRoot {
                root,
                regions: vec![root, sa, ra],
            })
        })
    };
    let model = CpuModel {
        spaces: vec![
            CpuSpaceSpec {
                index: 0,
                prefix: "cpu-memory".into(),
                view: CpuView::Root(system),
            },
            CpuSpaceSpec {
                index: 1,
                prefix: "cpu-smm".into(),
                view: CpuView::PerCpu(build),
            },
        ],
        tlb: true,
    };
    let mut cluster = Cluster::new("cpus", &mem, model, 0, N).unwrap();
    for s in 0..N {
        cluster.plug(s).unwrap();
    }
    let mut rng = Rng(0x5177);
    let steps = 2_000;
    let mut refused = 0;
    for i in 0..steps {
        let what = rng.below(3);
        match what {
            0 => {
                let d = devs[rng.index(devs.len())];
                let addr = if rng.below(2) == 0 {
                    SMM_SPOTS[rng.index(SMM_SPOTS.len())]
                } else {
                    DEV_BASE + rng.below(32) * 0x1000
                };
                mem.set_address(d, addr).unwrap();
            }
            1 => {
                // Low slots more often: slot 0 is usually the representative.
                let s = rng.index(N).min(rng.index(N));
                if cluster.cpu(s).is_some() {
                    cluster.unplug(s).unwrap();
                }
                if rng.below(5) != 0 || (0..N).all(|s| cluster.cpu(s).is_none()) {
                    cluster.plug(s).unwrap();
                }
            }
            _ => {
                let s = rng.index(N);
                if cluster.cpu(s).is_some() {
                    let ra = reg.lock().unwrap()[s].unwrap();
                    let on = mem.region_info(ra).unwrap().enabled;
                    mem.set_enabled(ra, !on).unwrap();
                }
            }
        }
        let at = format!("step {i} (kind {what})");
        let sys = memory.view();
        let mut smm_views: Vec<Arc<FlatView>> = Vec::new();
        for cpu in cluster.cpus() {
            let s = cpu.index() as usize;
            assert!(
                Arc::ptr_eq(&cpu.address_space(0).unwrap().view(), &sys),
                "{at}: cpu-memory-{s}"
            );
            let space = cpu.address_space(1).unwrap();
            let v = space.view();
            let fresh = mem.render(space.root()).unwrap();
            assert_same_ranges(&v, &fresh, &|| format!("{at}: cpu-smm-{s}"));
            let ra = reg.lock().unwrap()[s].unwrap();
            if mem.region_info(ra).unwrap().enabled {
                match v.base() {
                    Some(base) => assert!(Arc::ptr_eq(base, &sys), "{at}: cpu-smm-{s} over an old system view"),
                    None => {
                        assert!(
                            layering_may_be_refused(&sys, &[(SMRAM, SMRAM + SMRAM_SIZE)]),
                            "{at}: cpu-smm-{s} is not layered: {v:?}\nsystem {sys:?}"
                        );
                        refused += 1;
                    }
                }
                smm_views.push(v);
            } else {
                assert!(
                    Arc::ptr_eq(&v, &sys),
                    "{at}: cpu-smm-{s} without SMRAM shows system's view"
                );
            }
            for a in [
                SMRAM - 1,
                SMRAM,
                SMRAM + 0x8004,
                SMRAM + SMRAM_SIZE - 1,
                SMRAM + SMRAM_SIZE,
            ] {
                let want = fresh.lookup(GuestAddr(a)).map(|(r, o)| (r.clone(), o));
                assert_eq!(space.lookup(GuestAddr(a)), want, "{at}: cpu-smm-{s} lookup {a:#x}");
            }
        }
        smm_views.dedup_by(|a, b| Arc::ptr_eq(a, b));
        assert!(
            smm_views.len() <= 1,
            "{at}: identical SMM roots show {} views",
            smm_views.len()
        );
        let needed = 2 + smm_views.len(); // system, the shared SMM view, the empty view
        drop((sys, smm_views));
        assert_eq!(
            mem.stats().flatviews,
            needed,
            "{at}: live flat views beyond the published ones"
        );
    }
    let s = mem.stats();
    eprintln!(
        "SMM: {steps} steps in {:?} ({refused} CPU checks found layering refused); renders {} patches {} layers {}",
        t0.elapsed(),
        s.renders,
        s.patches,
        s.layers
    );
    drop(cluster);
    assert_eq!(mem.stats().flatviews, 2, "system and the empty view");
}

// ---------------------------------------------------------------------------------------------
// 6. The view a layered view borrows from comes and goes.

/// M-profile CPUs realized before any space shows system memory (nothing to borrow: each CPU
/// renders a copy), then the board's `memory` space created and destroyed at random while
/// system devices move, CPUs are re-plugged, private devices toggle and the commit mode flips
/// between scoped and QEMU's full rebuild. After every step each CPU's view equals a fresh
/// render; every layered CPU view borrows the same system view — `memory`'s current one when
/// it exists (with scoped commits) — and the live flat views are exactly the published views,
/// the views they borrow from and the empty view.
#[test]
fn cpu_views_follow_the_borrowed_view_through_its_space_lifetime() {
    let t0 = Instant::now();
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", RAM_SIZE.into()).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    let mut devs = Vec::new();
    for i in 0..8 {
        let d = mem
            .io(&format!("dev{i}"), dev_size(i), Arc::new(Tagged(dev_value(i))))
            .unwrap();
        mem.add_subregion(system, dev_home(i), d).unwrap();
        devs.push(d);
    }
    const N: usize = 4;
    let reg: Registry = Arc::new(Mutex::new(vec![None; N]));
    let mut cluster = Cluster::new("cpus", &mem, m_model(system, reg.clone()), 0, N).unwrap();
    for s in 0..N {
        cluster.plug(s).unwrap();
    }
    for cpu in cluster.cpus() {
        let space = cpu.address_space(0).unwrap();
        assert_same_ranges(&space.view(), &mem.render(space.root()).unwrap(), &|| {
            "no system space".into()
        });
    }
    let mut memory: Option<AddressSpace> = None;
    let mut full = false;
    // `memory` re-created since the last change of system: CPU views may still borrow the
    // view of the space destroyed before (see the ignored
    // `recreating_the_system_space_keeps_no_old_system_views`); the next change of system
    // moves them all onto the current view.
    let mut recreated = false;
    let mut tolerated = 0u64;
    let mut rng = Rng(0xb0a7);
    let steps = 1_500;
    let (mut layered, mut checks) = (0u64, 0u64);
    for i in 0..steps {
        let what = rng.below(10);
        match what {
            0 | 1 => {
                memory = match memory.take() {
                    Some(_) => None,
                    None => {
                        recreated = true;
                        Some(mem.address_space("memory", system).unwrap())
                    }
                }
            }
            2 => {
                full = !full;
                mem.set_commit_mode(if full { CommitMode::Full } else { CommitMode::Scoped });
            }
            3..=5 => {
                let d = devs[rng.index(devs.len())];
                let addr = if rng.below(2) == 0 {
                    SPOTS[rng.index(SPOTS.len())]
                } else {
                    DEV_BASE + rng.below(32) * 0x1000
                };
                if mem.region_info(d).unwrap().addr != addr {
                    recreated = false;
                }
                mem.set_address(d, addr).unwrap();
            }
            6 | 7 => {
                let s = rng.index(N);
                if cluster.cpu(s).is_some() {
                    let p = reg.lock().unwrap()[s].unwrap();
                    let r = if rng.below(2) == 0 { p.nvic } else { p.systick };
                    let on = mem.region_info(r).unwrap().enabled;
                    mem.set_enabled(r, !on).unwrap();
                }
            }
            _ => {
                let s = rng.index(N);
                if cluster.cpu(s).is_some() {
                    cluster.unplug(s).unwrap();
                }
                cluster.plug(s).unwrap();
            }
        }
        let at = format!("step {i} (kind {what}, full {full}, memory {})", memory.is_some());
        let sys = memory.as_ref().map(|m| m.view());
        if let Some(sys) = &sys {
            assert_same_ranges(sys, &mem.render(system).unwrap(), &|| format!("{at}: system"));
        }
        let mut live: Vec<*const FlatView> = sys.iter().map(Arc::as_ptr).collect();
        let mut bases: Vec<Arc<FlatView>> = Vec::new();
        for cpu in cluster.cpus() {
            let s = cpu.index();
            let space = cpu.address_space(0).unwrap();
            let v = space.view();
            assert!(Arc::ptr_eq(&v, &cpu.address_space(1).unwrap().view()), "{at}: CPU {s}");
            let fresh = mem.render(space.root()).unwrap();
            assert_same_ranges(&v, &fresh, &|| format!("{at}: CPU {s}"));
            for a in [NVIC, SYSTICK, SYSTICK_ALT + 4, NVIC - 1, 0x1000, DEV_BASE] {
                let want = fresh.lookup(GuestAddr(a)).map(|(r, o)| (r.clone(), o));
                assert_eq!(space.lookup(GuestAddr(a)), want, "{at}: CPU {s} lookup {a:#x}");
            }
            if let Some(b) = v.base() {
                assert!(b.base().is_none(), "{at}: CPU {s} borrows from a layered view");
                if let (Some(sys), false) = (&sys, full) {
                    if recreated && !Arc::ptr_eq(b, sys) {
                        tolerated += 1;
                    } else {
                        assert!(Arc::ptr_eq(b, sys), "{at}: CPU {s} borrows from an old system view");
                    }
                }
                live.push(Arc::as_ptr(b));
                bases.push(b.clone());
                layered += 1;
            }
            checks += 1;
            live.push(Arc::as_ptr(&v));
        }
        bases.sort_by_key(Arc::as_ptr);
        bases.dedup_by(|a, b| Arc::ptr_eq(a, b));
        assert!(
            bases.len() <= 1 || recreated,
            "{at}: CPU views borrow from {} system views",
            bases.len()
        );
        live.sort_unstable();
        live.dedup();
        let needed = live.len() + 1;
        drop((sys, bases));
        assert_eq!(
            mem.stats().flatviews,
            needed,
            "{at}: live flat views beyond the published ones"
        );
    }
    eprintln!(
        "borrowed view lifetime: {steps} steps, {checks} CPU checks ({layered} layered, {tolerated} over \
         the view of a destroyed space) in {:?}",
        t0.elapsed()
    );
    assert!(layered > 0);
}

/// Regression (retention): layered CPU views kept borrowing the view of a destroyed space
/// over system after a new space over system was created (its view rendered anew), each CPU
/// view moving onto the new one only when rebuilt — up to one copy of the system view per
/// CPU alive. Creating a view now offers it at once to the views that can borrow it.
#[test]
fn recreating_the_system_space_keeps_no_old_system_views() {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", 0x10_0000).unwrap();
    mem.add_subregion(system, 0, ram).unwrap();
    let dev = mem.io("dev", 0x1000, Arc::new(Tagged(1))).unwrap();
    mem.add_subregion(system, 0x4000_0000, dev).unwrap();
    let memory = mem.address_space("memory", system).unwrap();
    let mut cpus = Vec::new();
    let mut nvics = Vec::new();
    for i in 0..4u32 {
        let root = mem.container("armv7m-container", SIZE_2_64).unwrap();
        let sa = mem.alias(&format!("system-{i}"), system, 0, SIZE_2_64).unwrap();
        let nvic = mem
            .io(&format!("nvic-{i}"), 0x1000, Arc::new(Tagged(nvic_value(i))))
            .unwrap();
        mem.add_subregion_overlap(root, 0, sa, -1).unwrap();
        mem.add_subregion(root, NVIC, nvic).unwrap();
        cpus.push(mem.address_space(&format!("cpu-memory-{i}"), root).unwrap());
        nvics.push(nvic);
    }
    // The empty view, system's and one per CPU.
    assert_eq!(mem.stats().flatviews, 6);
    drop(memory);
    for (round, &nvic) in nvics.iter().enumerate() {
        let memory = mem.address_space("memory", system).unwrap();
        // Rebuild one CPU's view: it moves onto the new system view, the others do not.
        mem.set_enabled(nvic, false).unwrap();
        mem.set_enabled(nvic, true).unwrap();
        let sys = memory.view();
        let stale = cpus
            .iter()
            .filter(|c| !Arc::ptr_eq(c.view().base().unwrap(), &sys))
            .count();
        drop(sys);
        let live = mem.stats().flatviews;
        eprintln!("round {round}: {stale} CPU views over an old system view; {live} live views (6 needed)");
        assert_eq!(
            stale, 0,
            "round {round}: CPU views borrow the view of a destroyed space"
        );
        assert_eq!(live, 6, "round {round}: old system views kept alive by CPU views");
        drop(memory);
    }
}
