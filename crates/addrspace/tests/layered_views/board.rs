//! The M-profile board of tests 1, 2 and 4, and the churn that drives it.

use super::*;

// The M-profile board of tests 1, 2 and 4.

pub(crate) const NVIC: u64 = 0xe000_e000;
pub(crate) const SYSTICK: u64 = 0xe000_e010;
pub(crate) const SYSTICK_ALT: u64 = 0xe000_e800;
pub(crate) const RAM_SIZE: u64 = 0x10_0000;
pub(crate) const RAM_TAG: u8 = 0x5a;
pub(crate) const DEVS: usize = 16;
pub(crate) const DEV_BASE: u64 = 0x4000_0000;

pub(crate) fn nvic_value(cpu: u32) -> u64 {
    0x4e56_0000 | u64::from(cpu)
}
pub(crate) fn systick_value(cpu: u32) -> u64 {
    0x5354_0000 | u64::from(cpu)
}
pub(crate) fn dev_value(i: usize) -> u64 {
    0xde00_0000 | i as u64
}
pub(crate) fn dev_size(i: usize) -> u128 {
    [0x1000, 0x100, 0x800, 0x2000][i % 4]
}
/// Where device `i` lives in the canonical layout.
pub(crate) fn dev_home(i: usize) -> u64 {
    DEV_BASE + i as u64 * 0x4000
}

/// Places where a moving system device disturbs the CPUs' windows, or RAM: overlapping or
/// abutting the NVIC and SysTick (at both of SysTick's places), over RAM, across RAM's end.
pub(crate) const SPOTS: &[u64] = &[
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
pub(crate) struct Private {
    pub(crate) nvic: RegionId,
    pub(crate) systick: RegionId,
}

pub(crate) type Registry = Arc<Mutex<Vec<Option<Private>>>>;

/// The "private" M-profile builder of benches/hotplug.rs (same structure: a container over an
/// alias of system at priority -1, the NVIC at priority 0, SysTick at priority 1), with
/// devices that identify themselves, recording its regions in `reg`.
pub(crate) fn m_profile(system: RegionId, reg: Registry) -> PerCpuBuilder {
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

pub(crate) fn m_model(system: RegionId, reg: Registry) -> CpuModel {
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
pub(crate) struct DevSlot {
    pub(crate) id: Option<RegionId>,
    pub(crate) mapped: bool,
}

/// What a step did (for the checks that follow it).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    System,
    Cpu(usize),
    Private(usize),
}

/// System memory (RAM + 16 devices), an M-profile cluster, and random changes to both.
pub(crate) struct Churn {
    pub(crate) mem: Memory,
    pub(crate) system: RegionId,
    pub(crate) ram: RegionId,
    pub(crate) memory: AddressSpace,
    pub(crate) devs: Vec<DevSlot>,
    pub(crate) cluster: Cluster,
    pub(crate) reg: Registry,
    pub(crate) rng: Rng,
    pub(crate) logging: bool,
    /// Slots below this are never unplugged.
    pub(crate) pinned: usize,
}

impl Churn {
    pub(crate) fn new(cpus: usize, seed: u64) -> Churn {
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

    pub(crate) fn private(&self, slot: usize) -> Private {
        self.reg.lock().unwrap()[slot].expect("plugged CPUs registered their regions")
    }

    pub(crate) fn random_addr(&mut self) -> u64 {
        if self.rng.below(3) == 0 {
            SPOTS[self.rng.index(SPOTS.len())]
        } else {
            DEV_BASE + self.rng.below(64) * 0x1000
        }
    }

    pub(crate) fn random_prio(&mut self) -> i32 {
        self.rng.below(3) as i32 - 1
    }

    /// One random step of kind (a), (b) or (c).
    pub(crate) fn step(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) -> Step {
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
    pub(crate) fn system_step(&mut self) {
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
                    self.mem.dirty().set(self.ram, DirtyClient::Vga, self.logging).unwrap();
                }
            },
        }
    }

    /// (b) Unplug a CPU and (usually) plug it again at once, or plug an empty slot.
    pub(crate) fn cpu_step(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) -> usize {
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
    pub(crate) fn private_step(&mut self) -> Option<usize> {
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
    pub(crate) fn restore(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) {
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
                self.mem.dirty().set(self.ram, DirtyClient::Vga, false).unwrap();
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
    pub(crate) fn extremes(&mut self, on_plug: &mut dyn FnMut(usize, &Cpu)) {
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
    pub(crate) fn normalize(&self) {
        self.mem.set_enabled(self.ram, false).unwrap();
        self.mem.set_enabled(self.ram, true).unwrap();
    }

    /// The flat views the topology needs: system's, one per distinct CPU view, and the
    /// memory system's shared empty view.
    pub(crate) fn views_needed(&self) -> usize {
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
    pub(crate) fn check_no_old_bases(&self, at: &str) {
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
    pub(crate) fn check_system(&self, at: &str) {
        let fresh = self.mem.render(self.system).unwrap();
        let v = self.memory.view();
        assert!(v.base().is_none(), "{at}: the system view is not layered");
        assert_same_ranges(&v, &fresh, &|| format!("{at}: system"));
    }

    /// CPU `s`'s view equals a fresh flat render of its root (ranges, dirty masks, lookups,
    /// cached lookups), both its spaces show it, and it is layered over system's current
    /// view (or is system's view itself when no private device is enabled). Returns whether
    /// it was layered.
    pub(crate) fn check_cpu(&self, s: usize, at: &str) -> bool {
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

/// CPUs in the churn of tests 1 and 2.
pub(crate) const CPUS: usize = 32;
