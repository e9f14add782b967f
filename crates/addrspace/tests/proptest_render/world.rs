//! Driving the library and the model in lockstep: every change is made through the real
//! [`Memory`](addrspace::Memory) API and mirrored in the model, and the library's answer
//! (success, refusal, refusal as an endless cycle) must be the model's.
//!
//! A refused change must leave everything as it was: after an `EndlessCycle` refusal the
//! changed region and its container read back exactly as before (`region_info`, subregion
//! order included).

use std::fmt::Write as _;
use std::sync::Arc;

use addrspace::{Error, FlatView, RegionInfo, Unassigned, SIZE_2_64};

use crate::model::{Kind, MNode, TestResult, World};
use crate::strategies::Make;

/// What a refused change must leave as it was.
pub struct Snapshot {
    regions: Vec<Option<RegionInfo>>,
    view: Option<Arc<FlatView>>,
}

/// What the model expects of one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Ok,
    /// Refused for another reason (overflow, wrong kind, already mapped, ...).
    Refused,
    /// Refused by the cycle rule: `Error::EndlessCycle`.
    Endless,
}

impl World {
    /// Compares a library result with the model's verdict and logs the operation.
    pub fn expect(&mut self, what: String, real: addrspace::Result<()>, model: Expect) -> TestResult {
        let outcome = match &real {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        self.log.push(format!("{what} -> {outcome}"));
        let endless = matches!(real, Err(Error::EndlessCycle { .. }));
        let agrees = match model {
            Expect::Ok => real.is_ok(),
            Expect::Refused => real.is_err() && !endless,
            Expect::Endless => endless,
        };
        if !agrees {
            return Err(self.fail(format!("{what}: library gave {outcome}, model expected {model:?}")));
        }
        if let Err(Error::EndlessCycle { why, .. }) = &real {
            self.cycles.refused += 1;
            let k = ["same address", "re-enter", "visits through its cycles"]
                .iter()
                .position(|w| why.contains(w));
            match k {
                Some(k) => self.cycles.why[k] += 1,
                None => return Err(self.fail(format!("{what}: unexpected reason: {why}"))),
            }
        }
        Ok(())
    }

    /// `Endless` if the model refuses the graph by the cycle rule after a change at `start`,
    /// else `Ok` (noting whether rendering `start` comes back to it at all). The rule is a
    /// property of the graph — every region renders within the limits — so the model checks
    /// every region, by brute force; the library checks the regions on cycles through the
    /// change, which must give the same verdict.
    fn cycle_rule(&mut self, start: usize) -> Expect {
        let cycles = self.cycles_now();
        match self.reentries_in(&cycles, start) {
            Some(k) => self.came_back |= k > 0,
            None => return Expect::Endless,
        }
        if (0..self.m.len()).all(|x| self.reentries_in(&cycles, x).is_some()) {
            Expect::Ok
        } else {
            Expect::Endless
        }
    }

    /// The library's picture of `i` and of its container, and the watched view (to compare
    /// after a refusal).
    fn snapshot(&self, i: usize) -> Snapshot {
        let mut regions = vec![self.mem.region_info(self.ids(i)).ok()];
        if let Some(p) = self.m[i].parent {
            regions.push(self.mem.region_info(self.ids(p)).ok());
        }
        Snapshot {
            regions,
            view: self.watch.as_ref().map(|s| s.view()),
        }
    }

    /// After a change of `i`: a refusal changed nothing and published nothing; an accepted
    /// change that leaves `i` on a cycle counts.
    fn after(&mut self, i: usize, model: Expect, before: Snapshot) -> TestResult {
        match model {
            Expect::Ok if std::mem::take(&mut self.came_back) => self.cycles.accepted += 1,
            Expect::Ok => {}
            Expect::Refused | Expect::Endless => {
                self.came_back = false;
                let now = self.snapshot(i);
                if now.regions != before.regions {
                    return Err(self.fail(format!(
                        "a refused change of {} changed the graph\nbefore: {:#?}\nafter: {:#?}",
                        self.m[i].name, before.regions, now.regions
                    )));
                }
                if let (Some(a), Some(b)) = (&before.view, &now.view) {
                    if !Arc::ptr_eq(a, b) {
                        return Err(self.fail(format!("a refused change of {} published a new view", self.m[i].name)));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn create(&mut self, name: String, make: &Make) -> TestResult<usize> {
        let mem = &self.mem;
        let (kind, size, real) = match *make {
            Make::Ram(s) => (Kind::Ram, s, mem.ram(&name, s)),
            Make::Rom(s) => (Kind::Rom, s, mem.rom(&name, s)),
            Make::RamDevice(s) => (Kind::RamDevice, s, mem.ram_device(&name, s)),
            Make::RomDevice(s) => (Kind::RomDevice, s, mem.rom_device(&name, s, Arc::new(Unassigned))),
            Make::Io(s) => (Kind::Io, s, mem.io(&name, s, Arc::new(Unassigned))),
            Make::Reservation(s) => (Kind::Reservation, s, mem.reservation(&name, s)),
            Make::Container(s) => (Kind::Container, s, mem.container(&name, s)),
            Make::Alias { target, offset, size } => {
                // Any region, the root included: an alias of an ancestor, mapped below it,
                // shows a shifted window of it (ARM SSE's `alias 1`).
                let target = target.index(self.m.len());
                let real = mem.alias(&name, self.m[target].id, offset, size);
                (Kind::Alias { target, offset }, size, real)
            }
            Make::AliasNext { size } => {
                let (target, offset) = match self.m.last().map(|n| (n.kind, n.size)) {
                    Some((Kind::Alias { target, offset }, prev)) => {
                        (target, u64::try_from(u128::from(offset) + prev).unwrap_or(0))
                    }
                    _ => (self.m.len() - 1, 0),
                };
                let real = mem.alias(&name, self.m[target].id, offset, size);
                (Kind::Alias { target, offset }, size, real)
            }
        };
        let id = real.map_err(|e| self.fail(format!("creating {name} ({make:?}) failed: {e}")))?;
        Ok(self.push_node(id, name, kind, size))
    }

    /// An alias of region `target` (by model index).
    pub fn create_alias(&mut self, name: String, target: usize, offset: u64, size: u128) -> TestResult<usize> {
        let real = self.mem.alias(&name, self.m[target].id, offset, size);
        let id = real.map_err(|e| self.fail(format!("creating alias {name} failed: {e}")))?;
        Ok(self.push_node(id, name, Kind::Alias { target, offset }, size))
    }

    fn push_node(&mut self, id: addrspace::RegionId, name: String, kind: Kind, size: u128) -> usize {
        let mut desc = format!("create {name} = {} size {size:#x}", kind.word());
        if let Kind::Alias { target, offset } = kind {
            let _ = write!(desc, " -> {}+{offset:#x}", self.m[target].name);
        }
        self.log.push(desc);
        self.m.push(MNode {
            id,
            name,
            kind,
            size,
            block: if kind.ram_backed() {
                size.div_ceil(4096) * 4096
            } else {
                0
            },
            addr: 0,
            prio: 0,
            enabled: true,
            readonly: kind == Kind::Rom,
            nonvolatile: false,
            unmergeable: false,
            romd: true,
            parent: None,
            stamp: 0,
        });
        self.m.len() - 1
    }

    /// Restricted mode, importer rule 4: among equal-priority overlapping siblings at
    /// different addresses the importer makes the *smaller* one win, because a dump does not
    /// show recency. `child` is about to become the newest sibling at `addr`, so it may only
    /// overlap an equal-priority sibling at another address if it is strictly smaller.
    /// (Equal sizes would make the lower address win, i.e. the one printed first.)
    ///
    /// At the same address and priority the dump does show recency (QEMU prints newest
    /// first), whatever the sizes, zero included.
    pub fn recency_expressible(&self, parent: usize, child: usize, addr: u64, prio: i32) -> bool {
        let size = self.m[child].size;
        let (a0, a1) = (u128::from(addr), u128::from(addr) + size);
        self.children(parent).into_iter().all(|s| {
            let n = &self.m[s];
            let (b0, b1) = (u128::from(n.addr), u128::from(n.addr) + n.size);
            // Other priorities and the same address are always expressible.
            s == child
                || n.prio != prio
                || n.addr == addr
                || size == 0
                || n.size == 0
                || a1 <= b0
                || b1 <= a0
                || size < n.size
        })
    }

    pub fn add(&mut self, p: usize, c: usize, addr: u64, prio: i32) -> TestResult {
        let what = format!(
            "add {} into {} at {addr:#x} prio {prio}",
            self.m[c].name, self.m[p].name
        );
        if self.restricted && !self.recency_expressible(p, c, addr, prio) {
            self.log.push(format!("{what} -> skipped (not expressible in a dump)"));
            return Ok(());
        }
        let valid = !matches!(self.m[p].kind, Kind::Alias { .. })
            && self.m[c].parent.is_none()
            && u128::from(addr) + self.m[c].size <= SIZE_2_64
            && !self.inside(p, c);
        let mut model = if valid { Expect::Ok } else { Expect::Refused };
        if valid {
            // Through an alias into an ancestor, or a subtree with cycles placed below a
            // cycle: fine if rendering still ends (the rule is about the whole graph).
            let saved = self.m[c].clone();
            self.m[c].parent = Some(p);
            self.m[c].addr = addr;
            model = self.cycle_rule(p);
            self.m[c] = saved;
        }
        let before = self.snapshot(c);
        let real = self.mem.add_subregion_overlap(self.ids(p), addr, self.ids(c), prio);
        self.expect(what, real, model)?;
        if model == Expect::Ok {
            // Mapping into a disabled container, or mapping a disabled region, commits nothing
            // (QEMU too), yet it sets the region's address, which matters if the region is
            // also a view's physical root.
            if !(self.m[p].enabled && self.m[c].enabled) && self.m[c].addr != addr {
                self.silent_moves.insert(c);
            }
            self.clock += 1;
            let n = &mut self.m[c];
            n.parent = Some(p);
            n.addr = addr;
            n.prio = prio;
            n.stamp = self.clock;
        }
        self.after(c, model, before)
    }

    pub fn set_enabled(&mut self, i: usize, on: bool) -> TestResult {
        let real = self.mem.set_enabled(self.ids(i), on);
        self.expect(format!("set_enabled {} {on}", self.m[i].name), real, Expect::Ok)?;
        self.m[i].enabled = on;
        Ok(())
    }

    /// `set_address`: a real move of a mapped region is checked by the cycle rule.
    pub fn move_to(&mut self, i: usize, addr: u64) -> TestResult {
        let n = self.m[i].clone();
        let what = format!("set_address {} {:#x} -> {addr:#x}", n.name, n.addr);
        if let (true, Some(p)) = (self.restricted, n.parent) {
            if n.addr != addr && !self.recency_expressible(p, i, addr, n.prio) {
                self.log.push(format!("{what} -> skipped (not expressible in a dump)"));
                return Ok(());
            }
        }
        let before = self.snapshot(i);
        let real = self.mem.set_address(self.ids(i), addr);
        match n.parent {
            None => {
                self.expect(what, real, Expect::Ok)?;
                if n.addr != addr {
                    self.silent_moves.insert(i);
                }
                self.m[i].addr = addr;
                Ok(())
            }
            Some(_) if n.addr == addr => self.expect(what, real, Expect::Ok),
            Some(p) => {
                let mut model = Expect::Refused;
                if u128::from(addr) + n.size <= SIZE_2_64 {
                    self.m[i].addr = addr;
                    model = self.cycle_rule(p);
                    self.m[i].addr = n.addr;
                }
                self.expect(what, real, model)?;
                if model == Expect::Ok {
                    // A real move is delete + re-add: it becomes the newest.
                    self.clock += 1;
                    self.m[i].addr = addr;
                    self.m[i].stamp = self.clock;
                    if !(self.m[p].enabled && n.enabled) {
                        self.silent_moves.insert(i);
                    }
                }
                self.after(i, model, before)
            }
        }
    }

    pub fn alias_offset(&mut self, i: usize, offset: u64) -> TestResult {
        let what = format!("set_alias_offset {} {offset:#x}", self.m[i].name);
        let before = self.snapshot(i);
        let real = self.mem.set_alias_offset(self.ids(i), offset);
        let Kind::Alias { target, offset: old } = self.m[i].kind else {
            return self.expect(what, real, Expect::Refused);
        };
        self.m[i].kind = Kind::Alias { target, offset };
        let model = self.cycle_rule(i);
        if model != Expect::Ok {
            self.m[i].kind = Kind::Alias { target, offset: old };
        }
        self.expect(what, real, model)?;
        self.after(i, model, before)
    }

    /// `set_size`: only growing can make rendering endless (a smaller window is clipped more).
    pub fn resize(&mut self, i: usize, size: u128) -> TestResult {
        let n = self.m[i].clone();
        let what = format!("set_size {} {:#x} -> {size:#x}", n.name, n.size);
        if self.restricted {
            // Sizes are fine in a dump, but a resize could break the recency rule
            // checked at add/move time; keep the restricted generator simple.
            self.log.push(format!("{what} -> skipped"));
            return Ok(());
        }
        let valid = size == n.size
            || ((!n.kind.ram_backed() || size <= n.block)
                && (n.parent.is_none() || u128::from(n.addr) + size <= SIZE_2_64));
        let mut model = if valid { Expect::Ok } else { Expect::Refused };
        if valid && size > n.size {
            self.m[i].size = size;
            model = self.cycle_rule(i);
            self.m[i].size = n.size;
        }
        let before = self.snapshot(i);
        let real = self.mem.set_size(self.ids(i), size);
        self.expect(what, real, model)?;
        if model == Expect::Ok {
            self.m[i].size = size;
        }
        self.after(i, model, before)
    }
}
