//! [`World::apply`]: one generated operation, on the library and on the model — including
//! the ancestor aliases of [`Op::Ancestor`] and the changes of [`Op::Tweak`] (see
//! `strategies` for what they aim at).

use addrspace::SIZE_2_64;

use crate::model::{Kind, TestResult, World};
use crate::strategies::{Ancestor, Change, Op, Shift, Tweak, Via};
use crate::world::Expect;

impl World {
    pub fn apply(&mut self, op: &Op) -> TestResult {
        let len = self.m.len();
        match *op {
            Op::Change(Change::Add {
                parent,
                child,
                fresh,
                addr,
                prio,
            }) => {
                let pool: Vec<usize> = (1..len).filter(|&i| self.m[i].parent.is_none()).collect();
                let c = match (fresh, pool.is_empty()) {
                    (true, false) => pool[child.index(pool.len())],
                    _ => child.index(len),
                };
                self.add(parent.index(len), c, addr, prio)
            }
            Op::Change(Change::Remove { child }) => {
                let c = child.index(len);
                match self.m[c].parent {
                    Some(p) => {
                        let real = self.mem.remove_subregion(self.ids(p), self.ids(c));
                        let what = format!("remove {} from {}", self.m[c].name, self.m[p].name);
                        self.expect(what, real, Expect::Ok)?;
                        self.m[c].parent = None;
                    }
                    None => {
                        // Not mapped anywhere: removing it from any container must fail.
                        let real = self.mem.remove_subregion(self.ids(0), self.ids(c));
                        let what = format!("remove unmapped {} from {}", self.m[c].name, self.m[0].name);
                        self.expect(what, real, Expect::Refused)?;
                    }
                }
                Ok(())
            }
            Op::Change(Change::Move { node, addr }) => self.move_to(node.index(len), addr),
            Op::Change(Change::Enable { node, on }) => self.set_enabled(node.index(len), on),
            Op::Solo { node } => {
                // Usually among the first region's subregions (the root's, in property 1).
                let kids = self.children(0);
                let i = if kids.is_empty() {
                    node.index(len)
                } else {
                    kids[node.index(kids.len())]
                };
                if let Some(p) = self.m[i].parent {
                    for s in self.children(p) {
                        self.set_enabled(s, s == i)?;
                    }
                }
                Ok(())
            }
            Op::Change(Change::Readonly { node, on }) => {
                let i = node.index(len);
                let real = self.mem.set_readonly(self.ids(i), on);
                self.expect(format!("set_readonly {} {on}", self.m[i].name), real, Expect::Ok)?;
                self.m[i].readonly = on;
                Ok(())
            }
            Op::Change(Change::Nonvolatile { node, on }) => {
                let i = node.index(len);
                let real = self.mem.set_nonvolatile(self.ids(i), on);
                self.expect(format!("set_nonvolatile {} {on}", self.m[i].name), real, Expect::Ok)?;
                self.m[i].nonvolatile = on;
                Ok(())
            }
            Op::Change(Change::Unmergeable { node, on }) => {
                let i = node.index(len);
                if self.restricted {
                    // Not printed by `info mtree`, and it changes how ranges merge.
                    self.log.push(format!("set_unmergeable {} -> skipped", self.m[i].name));
                    return Ok(());
                }
                let real = self.mem.set_unmergeable(self.ids(i), on);
                self.expect(format!("set_unmergeable {} {on}", self.m[i].name), real, Expect::Ok)?;
                self.m[i].unmergeable = on;
                Ok(())
            }
            Op::Change(Change::Romd { node, on }) => {
                let i = node.index(len);
                let ok = self.m[i].kind == Kind::RomDevice;
                let real = self.mem.set_romd(self.ids(i), on);
                let model = if ok { Expect::Ok } else { Expect::Refused };
                self.expect(format!("set_romd {} {on}", self.m[i].name), real, model)?;
                if ok {
                    self.m[i].romd = on;
                }
                Ok(())
            }
            Op::Change(Change::AliasOffset { node, offset }) => self.alias_offset(node.index(len), offset),
            Op::Change(Change::Resize { node, size }) => self.resize(node.index(len), size),
            Op::Ancestor(anc) => {
                let parents: Vec<usize> = (0..len)
                    .filter(|&i| !matches!(self.m[i].kind, Kind::Alias { .. }))
                    .collect();
                let p = match self.last_ancestor {
                    Some((p, _)) if anc.again => p,
                    _ => parents[anc.at.index(parents.len())],
                };
                self.ancestor_alias(p, &anc)
            }
            Op::Tweak { pick, tweak } => self.tweak(pick, tweak),
        }
    }

    /// Maps into `p` an alias of its ancestor `up` levels up whose window is `shift`ed from
    /// the addresses it sits at (see `strategies`). Returns without a change (logged) only
    /// when the numbers do not fit in 64 bits.
    fn ancestor_alias(&mut self, p: usize, anc: &Ancestor) -> TestResult {
        let Ancestor {
            up,
            shift,
            addr,
            size,
            prio,
            via,
            ..
        } = *anc;
        let (q, d) = self.ancestor(p, usize::from(up));
        let s: i128 = match shift {
            Shift::Same => 0,
            Shift::By(x) => i128::from(x),
            Shift::Fraction(k, down) => {
                let x = (size / u128::from(k)).max(1) as i128;
                if down {
                    -x
                } else {
                    x
                }
            }
            Shift::Undo => -self.last_ancestor.map_or(0x1000, |(_, s)| s),
        };
        // Inside `p` (else the window shows nothing of it), and where the offset is >= 0.
        let psize = self.m[p].size;
        let mut a = i128::from(addr);
        if psize < SIZE_2_64 && a as u128 >= psize {
            a %= psize.max(1) as i128;
        }
        let mut off = d as i128 + a - s;
        if off < 0 {
            a -= off;
            off = 0;
        }
        let (Ok(a), Ok(off)) = (u64::try_from(a), u64::try_from(off)) else {
            self.log
                .push(format!("ancestor alias into {}: out of range, skipped", self.m[p].name));
            return Ok(());
        };
        self.last_ancestor = Some((p, s));
        let name = format!("anc{}", self.m.len());
        let alias = match via {
            Via::Direct => self.create_alias(name, q, off, size)?,
            Via::Alias(o2) | Via::MappedAlias(o2, _) => {
                let o2 = o2.min(off);
                let inner_size = (size + u128::from(o2)).min(SIZE_2_64);
                let inner = self.create_alias(format!("{name}-inner"), q, off - o2, inner_size)?;
                if let Via::MappedAlias(_, at) = via {
                    self.add(0, inner, at, prio)?;
                }
                self.create_alias(name, inner, o2, size)?
            }
        };
        self.add(p, alias, a, prio)
    }

    /// Applies `tweak` to a mapped alias that lies on a cycle.
    fn tweak(&mut self, pick: proptest::sample::Index, tweak: Tweak) -> TestResult {
        let cands: Vec<usize> = (0..self.m.len())
            .filter(|&i| matches!(self.m[i].kind, Kind::Alias { .. }) && self.m[i].parent.is_some())
            .filter(|&i| self.on_cycle(i))
            .collect();
        if cands.is_empty() {
            self.log.push(format!("tweak {tweak:?}: no alias on a cycle, skipped"));
            return Ok(());
        }
        let i = cands[pick.index(cands.len())];
        let n = self.m[i].clone();
        let (Kind::Alias { offset, .. }, Some(p)) = (n.kind, n.parent) else {
            unreachable!("picked among mapped aliases")
        };
        // The region the alias chain ends in, and the offset there.
        let (mut t, mut total) = (i, 0i128);
        while let Kind::Alias { target, offset } = self.m[t].kind {
            total += i128::from(offset);
            t = target;
        }
        // The shift, if that region is an ancestor (else a plain offset or move).
        let shift = self.inside(p, t).then(|| {
            let (mut x, mut d) = (p, 0i128);
            while x != t {
                d += i128::from(self.m[x].addr);
                x = self.m[x].parent.expect("inside");
            }
            d + i128::from(n.addr) - total
        });
        let offset_by = |x: i128| u64::try_from(i128::from(offset) + x).ok();
        let addr_by = |x: i128| u64::try_from(i128::from(n.addr) + x).ok();
        let skip = |w: &mut World| {
            w.log
                .push(format!("tweak {tweak:?} of {}: out of range, skipped", n.name));
            Ok(())
        };
        match tweak {
            Tweak::SameOffset => match offset_by(shift.unwrap_or(0x1000)) {
                Some(o) => self.alias_offset(i, o),
                None => skip(self),
            },
            Tweak::Offset(x) => match offset_by(i128::from(x)) {
                Some(o) => self.alias_offset(i, o),
                None => skip(self),
            },
            Tweak::SameAddress => match addr_by(-shift.unwrap_or(0x1000)) {
                Some(a) => self.move_to(i, a),
                None => skip(self),
            },
            Tweak::Move(x) => match addr_by(i128::from(x)) {
                Some(a) => self.move_to(i, a),
                None => skip(self),
            },
            Tweak::Grow(k) => self.resize(i, (n.size * u128::from(k)).min(SIZE_2_64 - u128::from(n.addr))),
        }
    }
}
