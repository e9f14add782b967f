//! The twins driven in lockstep (`World`): the scoped system and its full-rebuild twin get
//! the same regions and the same operations, and must answer every operation alike. The
//! skeleton machine and the ancestor aliases (`World::ancestor_alias`) are built here.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use addrspace::mtree::{self, TreeOptions};
use addrspace::{CommitMode, DirtyClient, Memory, RegionId, Unassigned, SIZE_2_64};
use proptest::test_runner::TestCaseError;

use crate::model::recs;
use crate::side::Side;
use crate::strategies::{Anc, Change, Make, Op, Spec, BACKGROUND};
use crate::TestResult;

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Ram(u128),
    Rom(u128),
    Io(u128),
    RomDevice(u128),
    Container(u128),
    Alias(usize, u64, u128),
}

/// The scoped system (`a`) and its full-rebuild twin (`b`), driven in lockstep.
pub struct World {
    pub a: Side,
    pub b: Side,
    pub names: Vec<String>,
    pub is_alias: Vec<bool>,
    pub log: Vec<String>,
    /// Global dirty tracking is on.
    pub migration: bool,
    /// Global dirty tracking changed in the open transaction.
    pub global_changed: bool,
    /// Ancestor aliases mapped (whose window shows part of their container back to it),
    /// refused (`Error::EndlessCycle`), and commits made while one was mapped and enabled
    /// (for `generator_builds_ancestor_aliases`).
    pub ancestors: [u32; 3],
    anc: Vec<usize>,
}

impl World {
    pub fn new() -> World {
        World {
            a: Side::new(CommitMode::Scoped),
            b: Side::new(CommitMode::Full),
            names: Vec::new(),
            is_alias: Vec::new(),
            log: Vec::new(),
            migration: false,
            global_changed: false,
            ancestors: [0; 3],
            anc: Vec::new(),
        }
    }

    pub fn fail(&self, msg: impl fmt::Display) -> TestCaseError {
        let mut s = format!("{msg}\n---- operations ----\n");
        for l in &self.log {
            let _ = writeln!(s, "  {l}");
        }
        s.push_str("---- scoped system: info mtree -D ----\n");
        s.push_str(&mtree::print_tree(&self.a.mem, &TreeOptions::DISABLED));
        s.push_str("---- scoped views ----\n");
        for (i, sp) in self.a.spaces.iter().enumerate() {
            if let Some(sp) = sp {
                let _ = writeln!(s, "  space {i} {}: {:?}", self.a.space_names[i], recs(&sp.view()));
            }
        }
        TestCaseError::fail(s)
    }

    pub fn create(&mut self, name: &str, kind: Kind) -> TestResult<usize> {
        let make = |side: &Side| match kind {
            Kind::Ram(s) => side.mem.ram(name, s),
            Kind::Rom(s) => side.mem.rom(name, s),
            Kind::Io(s) => side.mem.io(name, s, Arc::new(Unassigned)),
            Kind::RomDevice(s) => side.mem.rom_device(name, s, Arc::new(Unassigned)),
            Kind::Container(s) => side.mem.container(name, s),
            Kind::Alias(t, off, s) => side.mem.alias(name, side.ids[t], off, s),
        };
        let (ra, rb) = (make(&self.a), make(&self.b));
        let (ia, ib) = match (ra, rb) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => return Err(self.fail(format!("creating {name} {kind:?}: {:?} / {:?}", a.err(), b.err()))),
        };
        // Ids of two memory systems never compare equal (each stamps its own tag); their
        // printed forms, slot and generation, must match.
        if format!("{ia:?}") != format!("{ib:?}") {
            return Err(self.fail(format!("the twins gave {name} different ids: {ia:?} / {ib:?}")));
        }
        self.log.push(format!("create {name} = {kind:?}"));
        self.a.ids.push(ia);
        self.b.ids.push(ib);
        self.names.push(name.to_string());
        self.is_alias.push(matches!(kind, Kind::Alias(..)));
        Ok(self.names.len() - 1)
    }

    /// Runs one mutation on both systems; they must agree on the outcome.
    pub fn both(&mut self, what: String, f: impl Fn(&Memory, &[RegionId]) -> addrspace::Result<()>) -> TestResult {
        let outcome = |r: addrspace::Result<()>| match r {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        let ra = outcome(f(&self.a.mem, &self.a.ids));
        let rb = outcome(f(&self.b.mem, &self.b.ids));
        self.log.push(format!("{what} -> {ra}"));
        if ra != rb {
            return Err(self.fail(format!("{what}: scoped gave {ra}, full gave {rb}")));
        }
        Ok(())
    }

    pub fn add(&mut self, p: usize, c: usize, addr: u64, prio: i32) -> TestResult {
        let what = format!("add {} into {} at {addr:#x} prio {prio}", self.names[c], self.names[p]);
        self.both(what, |m, ids| m.add_subregion_overlap(ids[p], addr, ids[c], prio))
    }

    pub fn container_of(&self, i: usize) -> Option<usize> {
        let c = self.a.mem.region_info(self.a.ids[i]).ok()?.container?;
        self.a.ids.iter().position(|&x| x == c)
    }

    pub fn apply(&mut self, op: &Op) -> TestResult {
        let n = self.names.len();
        match *op {
            Op::Change(Change::Add {
                parent,
                child,
                fresh,
                addr,
                prio,
            }) => {
                let pool: Vec<usize> = (1..n).filter(|&i| self.container_of(i).is_none()).collect();
                let c = if fresh && !pool.is_empty() {
                    pool[child.index(pool.len())]
                } else {
                    child.index(n)
                };
                self.add(parent.index(n), c, addr, prio)
            }
            Op::Change(Change::Remove { child }) => {
                let c = child.index(n);
                let p = self.container_of(c).unwrap_or(0);
                let what = format!("remove {} from {}", self.names[c], self.names[p]);
                self.both(what, |m, ids| m.remove_subregion(ids[p], ids[c]))
            }
            Op::Change(Change::Move { node, addr }) => {
                let i = node.index(n);
                self.both(format!("set_address {} {addr:#x}", self.names[i]), |m, ids| {
                    m.set_address(ids[i], addr)
                })
            }
            Op::Prio { node, prio } => {
                let i = node.index(n);
                self.both(format!("set_priority {} {prio}", self.names[i]), |m, ids| {
                    m.set_priority(ids[i], prio)
                })
            }
            Op::Change(Change::Enable { node, on }) => {
                let i = node.index(n);
                self.both(format!("set_enabled {} {on}", self.names[i]), |m, ids| {
                    m.set_enabled(ids[i], on)
                })
            }
            Op::Change(Change::Resize { node, size }) => {
                let i = node.index(n);
                self.both(format!("set_size {} {size:#x}", self.names[i]), |m, ids| {
                    m.set_size(ids[i], size)
                })
            }
            Op::Change(Change::AliasOffset { node, offset }) => {
                let i = node.index(n);
                self.both(format!("set_alias_offset {} {offset:#x}", self.names[i]), |m, ids| {
                    m.set_alias_offset(ids[i], offset)
                })
            }
            Op::Change(Change::Readonly { node, on }) => {
                let i = node.index(n);
                self.both(format!("set_readonly {} {on}", self.names[i]), |m, ids| {
                    m.set_readonly(ids[i], on)
                })
            }
            Op::Change(Change::Romd { node, on }) => {
                let i = node.index(n);
                self.both(format!("set_romd {} {on}", self.names[i]), |m, ids| {
                    m.set_romd(ids[i], on)
                })
            }
            Op::Log { node, on } => {
                let i = node.index(n);
                self.both(format!("set_log {} vga {on}", self.names[i]), |m, ids| {
                    m.dirty().set(ids[i], DirtyClient::Vga, on)
                })
            }
            Op::Change(Change::Nonvolatile { node, on }) => {
                let i = node.index(n);
                self.both(format!("set_nonvolatile {} {on}", self.names[i]), |m, ids| {
                    m.set_nonvolatile(ids[i], on)
                })
            }
            Op::Change(Change::Unmergeable { node, on }) => {
                let i = node.index(n);
                self.both(format!("set_unmergeable {} {on}", self.names[i]), |m, ids| {
                    m.set_unmergeable(ids[i], on)
                })
            }
            Op::Ancestor { at, up, anc } => {
                let parents: Vec<usize> = (0..n).filter(|&i| !self.is_alias[i]).collect();
                self.ancestor_alias(parents[at.index(parents.len())], usize::from(up), anc)
            }
            Op::DirtyLog { on } => {
                if on {
                    self.both("start_dirty_log".into(), |m, _| m.dirty().start_global())?;
                } else {
                    self.both("stop_dirty_log".into(), |m, _| m.dirty().stop_global())?;
                }
                self.global_changed |= self.migration != on;
                self.migration = on;
                Ok(())
            }
        }
    }

    /// Maps into `p` a new alias of its ancestor `up` levels above it (or of the topmost
    /// one), placed as `anc` says: at `anc.addr` in `p`, showing the ancestor's window that
    /// lies `anc.shift` bytes below it (the address is raised if the offset would be
    /// negative). Both twins must accept or refuse it alike.
    pub fn ancestor_alias(&mut self, p: usize, up: usize, anc: Anc) -> TestResult {
        let (mut q, mut d) = (p, 0i128);
        for _ in 0..up {
            let Some(c) = self.container_of(q) else { break };
            d += i128::from(self.a.mem.region_info(self.a.ids[q]).map_err(|e| self.fail(e))?.addr);
            q = c;
        }
        let mut a = i128::from(anc.addr);
        let mut off = d + a - i128::from(anc.shift);
        if off < 0 {
            a -= off;
            off = 0;
        }
        let (Ok(a), Ok(off)) = (u64::try_from(a), u64::try_from(off)) else {
            self.log
                .push(format!("ancestor alias into {}: out of range, skipped", self.names[p]));
            return Ok(());
        };
        let name = format!("anc{}-{}", self.names.len(), self.names[q]);
        let alias = self.create(&name, Kind::Alias(q, off, anc.size))?;
        self.add(p, alias, a, anc.prio)?;
        // Counted when the window shows part of `p` back to it (a cycle rendering goes round).
        let psize = self.a.mem.region_info(self.a.ids[p]).map_err(|e| self.fail(e))?.size as i128;
        let back = i128::from(a) - i128::from(anc.shift);
        let shift = i128::from(anc.shift);
        let live = i128::from(a) < psize && back < psize && back + anc.size as i128 > 0 && shift < psize;
        let last = self.log.last().map_or("", |l| l.as_str());
        if last.ends_with("-> ok") && live {
            self.ancestors[0] += 1;
            self.anc.push(alias);
        } else if last.contains("would create a cycle QEMU cannot render") {
            self.ancestors[1] += 1;
        }
        Ok(())
    }

    /// Counts a commit made while an ancestor alias is mapped and enabled.
    pub fn count_commit(&mut self) {
        let live = self.anc.iter().any(|&i| {
            self.a
                .mem
                .region_info(self.a.ids[i])
                .is_ok_and(|r| r.enabled && r.container.is_some())
        });
        self.ancestors[2] += u32::from(live);
    }

    /// The background of `Spec::background` on both sides, in `system` (`sys`) at priority
    /// -10. Its regions are not the world's: operations never pick them.
    fn background(&mut self, sys: usize) -> TestResult {
        self.log
            .push(format!("background: {BACKGROUND} RAM regions under system"));
        self.each_side("building the background", |_, side| {
            let m = &side.mem;
            let _tx = m.transaction();
            let bg = m.container("background", SIZE_2_64).map_err(|e| e.to_string())?;
            for i in 0..BACKGROUND {
                let r = m.ram(&format!("bg{i}"), 0x20).map_err(|e| e.to_string())?;
                m.add_subregion(bg, 0x8000 + i * 0x60, r).map_err(|e| e.to_string())?;
            }
            m.add_subregion_overlap(side.ids[sys], 0, bg, -10)
                .map_err(|e| e.to_string())
        })
    }

    /// The skeleton (see `Spec`) and the random regions.
    pub fn build(&mut self, spec: &Spec) -> TestResult<Vec<usize>> {
        let sys = self.create("system", Kind::Container(SIZE_2_64))?;
        let ram = self.create("sysram", Kind::Ram(0x8000))?;
        self.add(sys, ram, 0, 0)?;
        let pci = self.create("pci", Kind::Container(spec.pci_size))?;
        self.add(sys, pci, spec.pci_addr, 0)?;
        let bar = self.create("bar0", Kind::Io(0x1000))?;
        self.add(pci, bar, 0, 0)?;
        let bm = self.create("bm", Kind::Container(SIZE_2_64))?;
        let bma = self.create("bm-alias", Kind::Alias(sys, 0, SIZE_2_64))?;
        self.add(bm, bma, 0, 0)?;
        let smm = self.create("smm", Kind::Container(SIZE_2_64))?;
        let smma = self.create("smm-alias", Kind::Alias(sys, 0, SIZE_2_64))?;
        self.add(smm, smma, 0, 0)?;
        let smram = self.create("smram", Kind::Ram(0x2000))?;
        self.add(smm, smram, spec.smram_addr, 1)?;
        let cpu = self.create("cpu1", Kind::Container(SIZE_2_64))?;
        let cpua = self.create("cpu1-alias", Kind::Alias(sys, 0, SIZE_2_64))?;
        self.add(cpu, cpua, 0, 0)?;
        let apic = self.create("apic", Kind::Io(0x1000))?;
        self.add(cpu, apic, 0x1000, 1)?;
        let win = self.create("pci-window", Kind::Alias(pci, 0, 0x8000))?;
        self.add(sys, win, 0x4_0000, 0)?;
        // Two x86-style per-CPU SMM roots, structurally identical (aliases of the same
        // regions): scoped mode shares one view between them until an operation tells them
        // apart.
        let mut cpu_smm = Vec::new();
        for c in ["a", "b"] {
            let root = self.create(&format!("cpu-smm-{c}"), Kind::Container(SIZE_2_64))?;
            let sa = self.create(&format!("cpu-smm-{c}-system"), Kind::Alias(sys, 0, SIZE_2_64))?;
            self.add(root, sa, 0, 0)?;
            let ra = self.create(&format!("cpu-smm-{c}-smram"), Kind::Alias(smram, 0, 0x2000))?;
            self.add(root, ra, spec.smram_addr, 1)?;
            cpu_smm.push(root);
        }
        // Aliases into ancestors: of system in system, of cpu1 in cpu1, of system in pci.
        for (k, (p, up)) in [(sys, 0), (cpu, 0), (pci, 1)].into_iter().enumerate() {
            if let Some(anc) = spec.selfies[k] {
                self.ancestor_alias(p, up, anc)?;
            }
        }
        if spec.background {
            self.background(sys)?;
        }
        if spec.pre_log {
            self.both("set_log sysram vga true".into(), |m, ids| {
                m.dirty().set(ids[ram], DirtyClient::Vga, true)
            })?;
        }
        for p in &spec.makes {
            let n = self.names.len();
            let (word, kind) = match p.make {
                Make::Ram(s) => ("ram", Kind::Ram(s)),
                Make::Rom(s) => ("rom", Kind::Rom(s)),
                Make::Io(s) => ("io", Kind::Io(s)),
                Make::RomDevice(s) => ("romdev", Kind::RomDevice(s)),
                Make::Container(s) => ("cont", Kind::Container(s)),
                Make::Alias { target, offset, size } => ("alias", Kind::Alias(target.index(n), offset, size)),
            };
            let parents: Vec<usize> = (0..n).filter(|&i| !self.is_alias[i]).collect();
            let c = self.create(&format!("{word}{n}"), kind)?;
            if p.readonly {
                self.both(format!("set_readonly {word}{n} true"), |m, ids| {
                    m.set_readonly(ids[c], true)
                })?;
            }
            if let Some((parent, addr, prio)) = p.at {
                let parent = parent.map_or(sys, |x| parents[x.index(parents.len())]);
                self.add(parent, c, addr, prio)?;
            }
        }
        Ok(vec![sys, bm, smm, pci, cpu, cpu_smm[0], cpu_smm[1]])
    }

    /// Runs `f` on the scoped system (0), then on its twin (1); the first error fails the case.
    pub fn each_side(&mut self, what: &str, mut f: impl FnMut(usize, &mut Side) -> Result<(), String>) -> TestResult {
        let mut err = None;
        for (k, side) in [&mut self.a, &mut self.b].into_iter().enumerate() {
            if let Err(e) = f(k, side) {
                err = Some(format!("{what}, {} system: {e}", ["scoped", "full"][k]));
                break;
            }
        }
        match err {
            Some(e) => Err(self.fail(e)),
            None => Ok(()),
        }
    }
}
