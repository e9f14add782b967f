//! Layered views against fresh renders, under random machines and changes (written during a
//! review of the layered views; it found two bugs, now regressions in `layer.rs`): a system
//! with RAM, devices, a background and a region at the top; CPU roots over system (directly
//! or through a wrapper) with private devices, RAM aliases continuing system's RAM, RAM,
//! sparse containers, aliases of system and regions at the top of the 64-bit space; random
//! changes of both sides, attributes, dirty logging, transactions, spaces created and
//! destroyed, listeners re-registered, the commit mode switched. After every commit every
//! space's view equals `Memory::render` of its root (ranges, attributes, dirty masks), every
//! lookup (view and accessor) agrees, and every listener's picture equals its view.
//!
//! Aliases into ancestors, as ARM's SSE-200 builds them: system may show a window of itself
//! elsewhere (`alias 1`), and a CPU root may hold, besides its private devices over an alias
//! of system, an alias of itself (`alias 3`: a window of the CPU container mapped into that
//! same container), so that changes in system or in the CPU's devices show up twice in the
//! CPU's view. Steps move, re-offset and toggle those aliases too (a change that would make
//! rendering endless is refused, and must leave every view as it was).
//!
//! `Memory::render` is the renderer under test, so every case also ends by comparing every
//! space's view with the naive reference renderer (`common::reference`), which reads the
//! graph back through `region_info`.
mod common;

use addrspace::*;
use common::reference::Reference;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Clone, PartialEq, Eq, Debug)]
struct R {
    start: u64,
    size: u128,
    region: RegionId,
    offset: u64,
    ro: bool,
    nv: bool,
    um: bool,
    romd: bool,
    mask: DirtyMask,
}
fn rec(r: &FlatRange) -> R {
    R {
        start: r.start().0,
        size: r.size(),
        region: r.region(),
        offset: r.offset_in_region().0,
        ro: r.readonly(),
        nv: r.nonvolatile(),
        um: r.unmergeable(),
        romd: r.romd(),
        mask: r.dirty_log_mask(),
    }
}
#[derive(Default)]
struct L {
    believed: Mutex<BTreeMap<u64, R>>,
    errors: Mutex<Vec<String>>,
}
impl MemoryListener for L {
    fn region_add(&self, s: &Section<'_>) {
        let r = rec(s.flat_range());
        if let Some(o) = self.believed.lock().unwrap().insert(r.start, r.clone()) {
            self.errors
                .lock()
                .unwrap()
                .push(format!("add over existing {o:?} <- {r:?}"));
        }
    }
    fn region_del(&self, s: &Section<'_>) {
        let r = rec(s.flat_range());
        match self.believed.lock().unwrap().remove(&r.start) {
            Some(o)
                if R {
                    mask: r.mask,
                    ..o.clone()
                } == r => {}
            o => self
                .errors
                .lock()
                .unwrap()
                .push(format!("del of unknown {r:?} (had {o:?})")),
        }
    }
    fn log_start(&self, s: &Section<'_>, _o: DirtyMask, n: DirtyMask) {
        if let Some(x) = self.believed.lock().unwrap().get_mut(&s.start().0) {
            x.mask = n;
        }
    }
    fn log_stop(&self, s: &Section<'_>, _o: DirtyMask, n: DirtyMask) {
        if let Some(x) = self.believed.lock().unwrap().get_mut(&s.start().0) {
            x.mask = n;
        }
    }
}

struct World {
    m: Memory,
    sys: RegionId,
    ram: RegionId,
    ram_hi: RegionId,
    devs: Vec<RegionId>,
    cpus: Vec<RegionId>,
    privs: Vec<RegionId>,
    /// Aliases into their own container (`alias 1` in system, `alias 3` in CPU roots).
    selfs: Vec<RegionId>,
    spaces: Vec<(AddressSpace, RegionId, Arc<L>, ListenerHandle)>,
}

type Private = (u8, u64, u64, i32, bool, bool);

/// An alias of a container mapped into that container: (offset page, address page, pages,
/// priority). Offset and address equal would never end: refused, and then left unmapped.
type SelfAlias = (u64, u64, u64, i32);

/// Maps into `c` an alias of `c` itself (see [`SelfAlias`]); returns it whether the mapping
/// was accepted or refused.
fn self_alias(m: &Memory, c: RegionId, name: &str, (off, at, pages, prio): SelfAlias) -> RegionId {
    let a = m.alias(name, c, off * 0x1000, u128::from(pages) * 0x1000).unwrap();
    let before = m.region_info(c).unwrap();
    match m.add_subregion_overlap(c, at * 0x1000, a, prio) {
        Ok(()) => assert_ne!(off, at, "an alias showing exactly where it sits was accepted"),
        Err(Error::EndlessCycle { .. }) => assert_eq!(m.region_info(c).unwrap(), before),
        Err(e) => panic!("{e}"),
    }
    a
}

fn io(m: &Memory, n: &str, size: u128) -> RegionId {
    m.io(n, size, Arc::new(Unassigned)).unwrap()
}

/// A CPU root over `(system, ram)`, its private regions appended to `out`.
fn cpu_root(
    m: &Memory,
    (w_sys, ram): (RegionId, RegionId),
    tag: &str,
    privs: &[Private],
    alias_prio: i32,
    (wrap, sse): (bool, Option<SelfAlias>),
    (out, selfs): (&mut Vec<RegionId>, &mut Vec<RegionId>),
) -> RegionId {
    let cpu = m.container(&format!("cpu{tag}"), SIZE_2_64).unwrap();
    let target = if wrap {
        let w = m.container(&format!("wrap{tag}"), SSZ.with(|c| c.get())).unwrap();
        let a = m
            .alias(&format!("wrapa{tag}"), w_sys, 0, SSZ.with(|c| c.get()))
            .unwrap();
        m.add_subregion(w, 0, a).unwrap();
        w
    } else {
        w_sys
    };
    let a = m
        .alias(
            &format!("cpu-sys{tag}"),
            target,
            0,
            (SSZ.with(|c| c.get()) + if alias_prio == 0 { 0x10000 } else { 0 }).min(SIZE_2_64),
        )
        .unwrap();
    m.add_subregion_overlap(cpu, 0, a, alias_prio).unwrap();
    for (i, &(kind, page, pages, prio, um, ro)) in privs.iter().enumerate() {
        let size = u128::from(pages) * 0x1000;
        let name = format!("p{tag}.{i}");
        let (r, addr) = match kind {
            0 => (io(m, &name, size), page * 0x1000),
            1 => (m.alias(&name, ram, page * 0x1000, size).unwrap(), page * 0x1000),
            2 => (m.ram(&name, size).unwrap(), page * 0x1000),
            3 => {
                let c = m.container(&name, size + 0x2000).unwrap();
                let d = io(m, &format!("{name}.d"), 0x1000);
                m.add_subregion(c, 0x1000, d).unwrap();
                let ra = m.alias(&format!("{name}.r"), ram, page * 0x1000, size).unwrap();
                m.add_subregion_overlap(c, 0x2000, ra, -1).unwrap();
                (c, page * 0x1000)
            }
            4 => (
                m.alias(&name, w_sys, (page % 8) * 0x1000, size).unwrap(),
                page * 0x1000 + 0x3000,
            ),
            _ => (io(m, &name, size), u64::MAX - (size as u64 - 1) - (page % 2) * 0x1000),
        };
        m.set_unmergeable(r, um).unwrap();
        m.set_readonly(r, ro).unwrap();
        m.add_subregion_overlap(cpu, addr, r, prio).unwrap();
        out.push(r);
    }
    if let Some(sse) = sse {
        selfs.push(self_alias(m, cpu, &format!("alias3.{tag}"), sse));
    }
    cpu
}

impl World {
    fn new(
        devs: &[(u64, i32)],
        bg: bool,
        top: bool,
        privs: &[Private],
        alias_prio: i32,
        (wrap, small): (bool, bool),
        (sse, alias1): (Option<SelfAlias>, Option<SelfAlias>),
    ) -> World {
        let m = Memory::new();
        let ssz: u128 = if small { 1 << 32 } else { SIZE_2_64 };
        SSZ.with(|c| c.set(ssz));
        let sys = m.container("system", ssz).unwrap();
        let ram = m.ram("ram", 0x40000).unwrap();
        let lo = m.alias("ram-lo", ram, 0, 0x8000).unwrap();
        let hi = m.alias("ram-hi", ram, 0x8000, 0x8000).unwrap();
        m.add_subregion(sys, 0, lo).unwrap();
        m.add_subregion(sys, 0x8000, hi).unwrap();
        let mut ds = Vec::new();
        for (i, &(page, prio)) in devs.iter().enumerate() {
            let d = io(&m, &format!("dev{i}"), 0x1000);
            m.add_subregion_overlap(sys, page * 0x1000, d, prio).unwrap();
            ds.push(d);
        }
        if bg {
            let b = io(&m, "bg", ssz);
            m.add_subregion_overlap(sys, 0, b, -1).unwrap();
        }
        if top {
            let t = m.ram("top", 0x1000).unwrap();
            m.add_subregion(sys, (ssz - 0x1000) as u64, t).unwrap();
        }
        let mut selfs = Vec::new();
        if let Some(a1) = alias1 {
            selfs.push(self_alias(&m, sys, "alias1", a1));
        }
        let mut out = Vec::new();
        let cpu = cpu_root(
            &m,
            (sys, ram),
            "0",
            privs,
            alias_prio,
            (wrap, sse),
            (&mut out, &mut selfs),
        );
        let mut w = World {
            m,
            sys,
            ram,
            ram_hi: hi,
            devs: ds,
            cpus: vec![cpu],
            privs: out,
            selfs,
            spaces: Vec::new(),
        };
        w.add_space("memory", sys);
        w.add_space("cpu0", cpu);
        w
    }
    fn add_space(&mut self, name: &str, root: RegionId) {
        let s = self.m.address_space(name, root).unwrap();
        let l = Arc::new(L::default());
        let h = s.register_listener(l.clone(), 0).unwrap();
        self.spaces.push((s, root, l, h));
    }
    fn check(&self, probes: &[u64]) -> Result<(), TestCaseError> {
        for (s, root, l, _) in &self.spaces {
            let v = s.view();
            let f = self.m.render(*root).unwrap();
            let a: Vec<R> = v.ranges().iter().map(rec).collect();
            let b: Vec<R> = f.ranges().iter().map(rec).collect();
            prop_assert_eq!(&a, &b, "space {} layered {}", s.name(), v.base().is_some());
            let errs = l.errors.lock().unwrap().clone();
            prop_assert!(errs.is_empty(), "space {}: {:?}", s.name(), errs);
            let bel: Vec<R> = l.believed.lock().unwrap().values().cloned().collect();
            prop_assert_eq!(&bel, &b, "listener of {} (layered {})", s.name(), v.base().is_some());
            let mut acc = s.accessor();
            let mut addrs = probes.to_vec();
            for r in f.ranges().iter() {
                addrs.extend([
                    r.start().0,
                    r.start().0.wrapping_sub(1),
                    (r.start().0 as u128 + r.size() - 1) as u64,
                ]);
            }
            for &x in &addrs {
                let want = f.lookup(GuestAddr(x)).map(|(r, o)| (rec(r), o));
                let got = v.lookup(GuestAddr(x)).map(|(r, o)| (rec(r), o));
                prop_assert_eq!(&got, &want, "lookup {:#x} in {}", x, s.name());
                let got2 = acc.lookup(GuestAddr(x)).map(|(r, o)| (rec(r), o));
                prop_assert_eq!(&got2, &want, "accessor lookup {:#x} in {}", x, s.name());
            }
        }
        Ok(())
    }
    /// Every space's view against the naive reference renderer (see the module doc),
    /// priorities included.
    fn check_reference(&self, probes: &[u64]) -> Result<(), TestCaseError> {
        let reference = Reference::of_memory(&self.m).map_err(TestCaseError::fail)?;
        for (s, root, _, _) in &self.spaces {
            let phys = reference.physical_root(reference.of(*root).expect("a live root"));
            let real = self.m.physical_root(*root).unwrap();
            prop_assert_eq!(
                real,
                phys.map(|p| reference.nodes[p].id),
                "physical root of {}",
                s.name()
            );
            let v = s.view();
            if let Err(e) = reference.check_view(phys, &v, probes) {
                let got: Vec<R> = v.ranges().iter().map(rec).collect();
                prop_assert!(
                    false,
                    "space {} (layered {}) differs from the reference renderer\n{}\nview: {:?}\ngraph:\n{}",
                    s.name(),
                    v.base().is_some(),
                    e,
                    got,
                    reference.describe()
                );
            }
        }
        Ok(())
    }
}

thread_local! { static SSZ: std::cell::Cell<u128> = const { std::cell::Cell::new(1 << 64) }; }

proptest! {
    #[test]
    fn layered_fuzz(
        devs in prop::collection::vec((0u64..48, -1i32..2), 0..24),
        bg in any::<bool>(),
        top in any::<bool>(),
        wrap in any::<bool>(),
        privs in prop::collection::vec((0u8..6, 0u64..48, 1u64..5, -2i32..3, any::<bool>(), any::<bool>()), 0..7),
        alias_prio in -1i32..1,
        small in any::<bool>(),
        selfs in (
            prop::option::weighted(0.6, (0u64..48, 0u64..48, 1u64..24, -2i32..3)),
            prop::option::weighted(0.4, (0u64..48, 0u64..48, 1u64..24, -2i32..0)),
        ),
        steps in prop::collection::vec((0u8..21, any::<Index>(), 0u64..48, any::<bool>()), 0..12),
        probes in prop::collection::vec(0u64..0x40000, 8),
    ) {
        let mut w = World::new(&devs, bg, top, &privs, alias_prio, (wrap, small), selfs);
        w.check(&probes)?;
        let mem = w.m.clone();
        let m = &mem;
        let mut tx_open: Option<Transaction<'_>> = None;
        let mut full = false;
        for (what, pick, page, flag) in steps {
            match what {
                0 if !w.devs.is_empty() => m.set_address(*pick.get(&w.devs), page * 0x1000).unwrap(),
                1 if !w.privs.is_empty() => {
                    let p = *pick.get(&w.privs);
                    m.set_enabled(p, !m.region_info(p).unwrap().enabled).unwrap();
                }
                2 if !w.privs.is_empty() => {
                    let _ = m.set_address(*pick.get(&w.privs), page * 0x1000);
                }
                3 => m.dirty().set(w.ram, DirtyClient::Vga, flag).unwrap(),
                4 => m.set_unmergeable(w.ram_hi, flag).unwrap(),
                5 if !w.devs.is_empty() => {
                    let p = *pick.get(&w.devs);
                    m.set_enabled(p, !m.region_info(p).unwrap().enabled).unwrap();
                }
                6 if !w.privs.is_empty() => m.set_priority(*pick.get(&w.privs), (page % 5) as i32 - 2).unwrap(),
                7 => m.dirty().set_code_tracking(flag),
                8 if !w.privs.is_empty() => m.set_readonly(*pick.get(&w.privs), flag).unwrap(),
                9 => m.set_size(w.ram_hi, u128::from(0x1000 * (page % 16 + 1))).unwrap(),
                10 => {
                    // toggle a transaction
                    match tx_open.take() {
                        Some(t) => {
                            drop(t);
                            w.check(&probes)?;
                        }
                        None => tx_open = Some(m.transaction()),
                    }
                    continue;
                }
                11 if w.spaces.len() < 4 => {
                    let mut out = Vec::new();
                    let tag = format!("{}", w.cpus.len());
                    let sse = flag.then_some((page, (page + 5) % 48, 8, -1));
                    let c = cpu_root(m, (w.sys, w.ram), &tag, &[(0, page, 1, 1, false, false)], -1, (flag, sse), (&mut out, &mut w.selfs));
                    w.cpus.push(c);
                    w.privs.extend(out);
                    w.add_space(&format!("cpu{tag}"), c);
                }
                12 => {
                    // drop or recreate the memory space
                    if let Some(i) = w.spaces.iter().position(|s| s.1 == w.sys) {
                        let (s, _, _, h) = w.spaces.remove(i);
                        if flag {
                            drop(h);
                            drop(s);
                        } else {
                            drop(s);
                            drop(h);
                        }
                    } else {
                        let sys = w.sys;
                        w.add_space("memory", sys);
                    }
                }
                13 => {
                    // the cpu alias: priority, offset, enable
                    let c = *pick.get(&w.cpus);
                    let a = m.region_info(c).unwrap().subregions.iter().copied().find(|&r| m.region_info(r).unwrap().name.starts_with("cpu-sys")).unwrap();
                    match page % 4 {
                        0 => m.set_priority(a, (page % 3) as i32 - 1).unwrap(),
                        1 => m.set_alias_offset(a, if flag { 0x1000 } else { 0 }).unwrap(),
                        2 => m.set_enabled(a, flag).unwrap(),
                        _ => m.set_size(a, if flag { SIZE_2_64 } else { 1u128 << 31 }).unwrap(),
                    }
                }
                14 => {
                    if flag {
                        let _ = m.dirty().start_global();
                    } else {
                        let _ = m.dirty().stop_global();
                    }
                }
                15 => {
                    full = flag;
                    m.set_commit_mode(if flag { CommitMode::Full } else { CommitMode::Scoped });
                }
                16 => {
                    // re-register the listener of a space (replay from the current view)
                    let i = pick.index(w.spaces.len());
                    let l = Arc::new(L::default());
                    let h = w.spaces[i].0.register_listener(l.clone(), 0).unwrap();
                    w.spaces[i].2 = l;
                    w.spaces[i].3 = h;
                }
                17 => {
                    // a second child in a wrapper (physical root moves off system)
                    let wraps: Vec<RegionId> = m.regions().into_iter().filter(|&r| m.region_info(r).unwrap().name.starts_with("wrap") && m.region_info(r).unwrap().kind == RegionKind::Container).collect();
                    if !wraps.is_empty() {
                        let wr = *pick.get(&wraps);
                        let kids = m.region_info(wr).unwrap().subregions;
                        if kids.len() == 1 {
                            let d = io(m, "wrapdev", 0x1000);
                            m.add_subregion_overlap(wr, page * 0x1000, d, 1).unwrap();
                        } else {
                            let d = kids.into_iter().find(|&k| m.region_info(k).unwrap().name == "wrapdev").unwrap();
                            m.set_enabled(d, !m.region_info(d).unwrap().enabled).unwrap();
                        }
                    }
                }
                18..=20 if !w.selfs.is_empty() => {
                    // An alias into its own container: move it, re-offset it, toggle it. A
                    // refused change (it would show exactly where it sits) changes nothing.
                    let a = *pick.get(&w.selfs);
                    let views: Vec<_> = w.spaces.iter().map(|s| s.0.view()).collect();
                    let r = match what {
                        18 => m.set_address(a, page * 0x1000),
                        19 => m.set_alias_offset(a, page * 0x1000),
                        _ => m.set_enabled(a, flag),
                    };
                    match r {
                        Ok(()) => {}
                        Err(Error::EndlessCycle { .. }) => {
                            // Scoped: nothing is even republished. (Full mode re-renders and
                            // republishes every view at every commit, this one's included.)
                            for (s, v) in w.spaces.iter().zip(&views) {
                                let same = s.0.view().ranges().iter().map(rec).eq(v.ranges().iter().map(rec));
                                prop_assert!(same, "refused, yet {} changed", s.0.name());
                                prop_assert!(full || Arc::ptr_eq(&s.0.view(), v), "refused, yet {} was republished", s.0.name());
                            }
                        }
                        Err(e) => prop_assert!(false, "{}", e),
                    }
                }
                _ => {}
            }
            if tx_open.is_none() {
                w.check(&probes)?;
            }
        }
        drop(tx_open);
        w.check(&probes)?;
        w.check_reference(&probes)?;
    }
}

/// The generator's machines really get layered views.
#[test]
fn the_generator_builds_layered_views() {
    let w = World::new(
        &[(4, 0)],
        false,
        false,
        &[(0, 20, 1, 1, false, false)],
        -1,
        (false, false),
        (None, None),
    );
    assert!(w.spaces[1].0.view().base().is_some());
    w.check(&[0x1000]).unwrap();
}

/// The SSE-200 shape: system shows a window of itself (`alias 1`), and the CPU root holds
/// its private device over an alias of system plus an alias of itself (`alias 3`), which
/// shows the device, and system's devices, a second time. A change inside system then
/// reaches the CPU's view through both aliases.
#[test]
fn sse_self_aliases_show_changes_twice() {
    let w = World::new(
        &[(4, 0)],
        false,
        false,
        &[(0, 20, 1, 1, false, false)],
        -1,
        (false, false),
        (Some((16, 32, 8, -1)), Some((0, 40, 8, -1))),
    );
    w.check(&[0x4000, 0x14000, 0x24000, 0x2c000]).unwrap();
    let cpu = w.spaces[1].0.view();
    assert!(
        cpu.base().is_some(),
        "the CPU's view borrows from system's: {:?}",
        cpu.base()
    );
    let names = |v: &FlatView| -> Vec<(u64, String)> {
        v.ranges().iter().map(|r| (r.start().0, r.name().to_string())).collect()
    };
    let seen = names(&cpu);
    // dev0 at 0x4000 in system, again at 0x2c000 (alias 1: system's [0, 0x8000) at 0x28000);
    // the private p0.0 at 0x14000 in cpu0, again at 0x24000 (alias 3: cpu0's [0x10000,
    // 0x18000) at 0x20000).
    for (a, n) in [
        (0x4000, "dev0"),
        (0x2c000, "dev0"),
        (0x14000, "p0.0"),
        (0x24000, "p0.0"),
    ] {
        assert!(seen.contains(&(a, n.to_string())), "{n} at {a:#x} in {seen:?}");
    }
    // Moving the device in system moves both of its pictures in the CPU's view.
    w.m.set_address(w.devs[0], 0x5000).unwrap();
    w.check(&[0x5000, 0x2d000]).unwrap();
    let seen = names(&w.spaces[1].0.view());
    assert!(
        seen.contains(&(0x5000, "dev0".into())) && seen.contains(&(0x2d000, "dev0".into())),
        "{seen:?}"
    );
    // An alias 3 that shows exactly where it sits is refused, and nothing changes.
    let view = w.spaces[1].0.view();
    let a3 = w.selfs[1];
    assert!(matches!(
        w.m.set_alias_offset(a3, 0x20000),
        Err(Error::EndlessCycle { .. })
    ));
    assert!(Arc::ptr_eq(&view, &w.spaces[1].0.view()));
    w.check(&[0x24000]).unwrap();
    w.check_reference(&[]).unwrap();
}
