//! What listeners must hear: recording listeners (`Recorder`, each event tagged with the
//! listener's number in one journal per memory system), QEMU's two-pass walk computed from a
//! listener's snapshot (`expected_commit`), the registration, unregistration and teardown
//! replays, and the checks of one commit's callbacks against them (`check_listener`,
//! `check_space_order`).

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use addrspace::listener::ListenerRefused;
use addrspace::{CommitMode, DirtyMask, FlatRange, FlatView, ListenerHandle, MemoryListener, Section};

/// What a listener learns about one range (everything but the priority, which QEMU's
/// `flatrange_equal` ignores too).
#[derive(Clone, PartialEq, Eq)]
pub struct Rec {
    pub start: u64,
    pub size: u128,
    /// The region id as printed (slot and generation): the twins' ids differ in their
    /// memory-system tags only.
    pub region: String,
    pub name: String,
    pub offset: u64,
    pub readonly: bool,
    pub romd: bool,
    pub nonvolatile: bool,
    pub unmergeable: bool,
    pub mask: DirtyMask,
}

impl Rec {
    pub fn of(r: &FlatRange) -> Rec {
        Rec {
            start: r.start().0,
            size: r.size(),
            region: r.region().to_string(),
            name: r.name().to_string(),
            offset: r.offset_in_region().0,
            readonly: r.readonly(),
            romd: r.romd(),
            nonvolatile: r.nonvolatile(),
            unmergeable: r.unmergeable(),
            mask: r.dirty_log_mask(),
        }
    }

    /// Through the section's own accessors (they must agree with its flat range).
    pub fn of_section(s: &Section) -> Rec {
        Rec {
            start: s.start().0,
            size: s.size(),
            region: s.region().to_string(),
            name: s.name().to_string(),
            offset: s.offset_in_region().0,
            readonly: s.readonly(),
            romd: s.romd(),
            nonvolatile: s.nonvolatile(),
            unmergeable: s.flat_range().unmergeable(),
            mask: s.dirty_log_mask(),
        }
    }

    pub fn end(&self) -> u128 {
        u128::from(self.start) + self.size
    }

    /// QEMU's `flatrange_equal`: equal but for the dirty-log mask.
    pub fn same_range(&self, o: &Rec) -> bool {
        (self.start, self.size, self.offset) == (o.start, o.size, o.offset)
            && (self.readonly, self.romd, self.nonvolatile, self.unmergeable)
                == (o.readonly, o.romd, o.nonvolatile, o.unmergeable)
            && (&self.region, &self.name) == (&o.region, &o.name)
    }
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{:#x},{:#x})@{:#x}",
            self.name,
            self.start,
            self.end(),
            self.offset
        )?;
        for (on, word) in [
            (self.readonly, " ro"),
            (!self.romd, " !romd"),
            (self.nonvolatile, " nv"),
            (self.unmergeable, " um"),
        ] {
            if on {
                f.write_str(word)?;
            }
        }
        if !self.mask.is_empty() {
            write!(f, " log{}", self.mask.bits())?;
        }
        Ok(())
    }
}

pub fn recs(v: &FlatView) -> Vec<Rec> {
    v.ranges().iter().map(Rec::of).collect()
}

#[derive(Clone, PartialEq, Eq)]
pub enum Ev {
    Begin,
    Commit,
    Add(Rec),
    Del(Rec),
    Nop(Rec),
    LogStart(Rec, DirtyMask, DirtyMask),
    LogStop(Rec, DirtyMask, DirtyMask),
    GlobalStart,
    GlobalStop,
    /// A section naming another address space than the one the listener is registered on.
    WrongSpace(String),
}

impl Ev {
    /// Global dirty-tracking calls are not part of a commit's bracket.
    pub fn global(&self) -> bool {
        matches!(self, Ev::GlobalStart | Ev::GlobalStop)
    }
}

impl fmt::Debug for Ev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ev::Begin => f.write_str("begin"),
            Ev::Commit => f.write_str("commit"),
            Ev::Add(r) => write!(f, "add {r:?}"),
            Ev::Del(r) => write!(f, "del {r:?}"),
            Ev::Nop(r) => write!(f, "nop {r:?}"),
            Ev::LogStart(r, o, n) => write!(f, "log_start {r:?} {}->{}", o.bits(), n.bits()),
            Ev::LogStop(r, o, n) => write!(f, "log_stop {r:?} {}->{}", o.bits(), n.bits()),
            Ev::GlobalStart => f.write_str("log_global_start"),
            Ev::GlobalStop => f.write_str("log_global_stop"),
            Ev::WrongSpace(s) => write!(f, "section of another space: {s}"),
        }
    }
}

/// Every callback of every listener of one memory system, in call order, tagged with the
/// listener's number.
pub type Journal = Arc<Mutex<Vec<(usize, Ev)>>>;

pub struct Recorder {
    pub id: usize,
    pub nop: bool,
    pub space: String,
    pub journal: Journal,
}

impl Recorder {
    pub fn push(&self, ev: Ev) {
        self.journal.lock().unwrap().push((self.id, ev));
    }

    pub fn section(&self, s: &Section, make: impl FnOnce(Rec) -> Ev) {
        if s.space_name() != self.space {
            self.push(Ev::WrongSpace(format!("{s:?}")));
        }
        self.push(make(Rec::of_section(s)));
    }
}

impl MemoryListener for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn wants_region_nop(&self) -> bool {
        self.nop
    }
    fn begin(&self) {
        self.push(Ev::Begin);
    }
    fn commit(&self) {
        self.push(Ev::Commit);
    }
    fn region_add(&self, s: &Section) {
        self.section(s, Ev::Add);
    }
    fn region_del(&self, s: &Section) {
        self.section(s, Ev::Del);
    }
    fn region_nop(&self, s: &Section) {
        self.section(s, Ev::Nop);
    }
    fn log_start(&self, s: &Section, old: DirtyMask, new: DirtyMask) {
        self.section(s, |r| Ev::LogStart(r, old, new));
    }
    fn log_stop(&self, s: &Section, old: DirtyMask, new: DirtyMask) {
        self.section(s, |r| Ev::LogStop(r, old, new));
    }
    fn log_global_start(&self) -> Result<(), ListenerRefused> {
        self.push(Ev::GlobalStart);
        Ok(())
    }
    fn log_global_stop(&self) {
        self.push(Ev::GlobalStop);
    }
}

pub fn drain(j: &Journal) -> Vec<(usize, Ev)> {
    std::mem::take(&mut *j.lock().unwrap())
}

/// The events of listener `id` (without the global dirty-tracking calls), with their
/// position in the journal.
pub fn of_listener(evs: &[(usize, Ev)], id: usize) -> Vec<(usize, Ev)> {
    evs.iter()
        .enumerate()
        .filter(|(_, (who, e))| *who == id && !e.global())
        .map(|(k, (_, e))| (k, e.clone()))
        .collect()
}

/// QEMU's `address_space_update_topology_pass`, twice, as seen by one listener whose
/// snapshot is `old`: deletions in address order, then unchanged ranges (`region_nop` if
/// wanted, then `log_start` / `log_stop` if the mask changed) and additions in address order.
pub fn expected_commit(old: &[Rec], new: &[Rec], nop: bool) -> Vec<Ev> {
    let mut out = vec![Ev::Begin];
    // Views are sorted and disjoint: a range equal to `r` starts where it does.
    let same = |v: &'_ [Rec], r: &Rec| -> Option<usize> {
        let i = v.partition_point(|x| x.start < r.start);
        v.get(i).filter(|x| x.same_range(r)).map(|_| i)
    };
    for o in old {
        if same(new, o).is_none() {
            out.push(Ev::Del(o.clone()));
        }
    }
    for n in new {
        match same(old, n).map(|i| &old[i]) {
            Some(o) => {
                if nop {
                    out.push(Ev::Nop(n.clone()));
                }
                if !n.mask.without(o.mask).is_empty() {
                    out.push(Ev::LogStart(n.clone(), o.mask, n.mask));
                }
                if !o.mask.without(n.mask).is_empty() {
                    out.push(Ev::LogStop(n.clone(), o.mask, n.mask));
                }
            }
            None => out.push(Ev::Add(n.clone())),
        }
    }
    out.push(Ev::Commit);
    out
}

/// The registration replay: `region_add` per range in address order (`log_start` after it
/// for a logged range), bracketed by `begin`/`commit`.
pub fn expected_replay(view: &[Rec]) -> Vec<Ev> {
    let mut out = vec![Ev::Begin];
    for r in view {
        out.push(Ev::Add(r.clone()));
        if !r.mask.is_empty() {
            out.push(Ev::LogStart(r.clone(), DirtyMask::NONE, r.mask));
        }
    }
    out.push(Ev::Commit);
    out
}

/// The unregistration replay: `log_stop` (for a logged range) then `region_del`, per range.
pub fn expected_unregister(view: &[Rec]) -> Vec<Ev> {
    let mut out = vec![Ev::Begin];
    for r in view {
        if !r.mask.is_empty() {
            out.push(Ev::LogStop(r.clone(), r.mask, DirtyMask::NONE));
        }
        out.push(Ev::Del(r.clone()));
    }
    out.push(Ev::Commit);
    out
}

/// What the listeners of a destroyed space hear: every range deleted.
pub fn expected_teardown(view: &[Rec]) -> Vec<Ev> {
    let mut out = vec![Ev::Begin];
    out.extend(view.iter().cloned().map(Ev::Del));
    out.push(Ev::Commit);
    out
}

pub fn plain(evs: &[(usize, Ev)]) -> Vec<Ev> {
    evs.iter().map(|(_, e)| e.clone()).collect()
}

pub fn list(evs: &[Ev]) -> String {
    let mut s = String::new();
    for e in evs {
        let _ = writeln!(s, "      {e:?}");
    }
    s
}

/// One listener's state in the test: what it was told.
pub struct Lis {
    pub space: usize,
    pub prio: u32,
    pub nop: bool,
    pub believed: Vec<Rec>,
    pub handle: Option<ListenerHandle>,
}

/// Checks one listener's events of one commit against its snapshot and updates the snapshot.
pub fn check_listener(
    l: &mut Lis,
    evs: &[(usize, Ev)],
    new_view: &FlatView,
    must_hear: bool,
    changed: bool,
    mode: CommitMode,
    committed: bool,
) -> Result<(), String> {
    let new = recs(new_view);
    if evs.is_empty() {
        // A transaction with nothing pending commits nothing, in QEMU too.
        if mode == CommitMode::Full && committed {
            return Err(
                "full mode: a commit ran, but the listener heard nothing (QEMU calls begin/commit on every listener)"
                    .into(),
            );
        }
        if must_hear {
            return Err("its space published a new view, but the listener heard nothing".into());
        }
        if l.believed != new {
            return Err(format!(
                "heard nothing, yet its snapshot differs from the view\nsnapshot:\n{:?}\nview:\n{:?}",
                l.believed, new
            ));
        }
        return Ok(());
    }
    let got = plain(evs);
    if mode == CommitMode::Scoped && !changed {
        return Err(format!(
            "scoped mode: its space's view is the same Arc as before, yet the listener heard:\n{}",
            list(&got)
        ));
    }
    let bad = |msg: &str| Err(format!("{msg}\nheard:\n{}", list(&got)));
    if got.first() != Some(&Ev::Begin) || got.last() != Some(&Ev::Commit) || got.len() < 2 {
        return bad("callbacks not bracketed by begin/commit");
    }
    let middle = &got[1..got.len() - 1];
    if middle.iter().any(|e| matches!(e, Ev::Begin | Ev::Commit)) {
        return bad("more than one begin/commit in one commit");
    }
    if let Some(e) = middle.iter().find(|e| matches!(e, Ev::WrongSpace(_))) {
        return bad(&format!("{e:?}"));
    }

    // Apply the deletions and additions to the snapshot.
    let old = l.believed.clone();
    let mut snap = old.clone();
    let mut second = false;
    let mut last_del: Option<u64> = None;
    let mut last_add: Option<u64> = None;
    for e in middle {
        match e {
            Ev::Del(r) => {
                if second {
                    return bad(&format!("{e:?} after an addition, nop or log call"));
                }
                if last_del.is_some_and(|p| p >= r.start) {
                    return bad(&format!("{e:?}: deletions not in ascending address order"));
                }
                last_del = Some(r.start);
                let Some(k) = snap.iter().position(|s| s == r) else {
                    return bad(&format!("{e:?}: not a range of the listener's snapshot"));
                };
                snap.remove(k);
            }
            Ev::Add(r) | Ev::Nop(r) => {
                second = true;
                if last_add.is_some_and(|p| p >= r.start) {
                    return bad(&format!("{e:?}: additions/nops not in ascending address order"));
                }
                last_add = Some(r.start);
                if let Ev::Add(_) = e {
                    if snap
                        .iter()
                        .any(|s| u128::from(s.start) < r.end() && u128::from(r.start) < s.end())
                    {
                        return bad(&format!("{e:?} overlaps a range the listener still has"));
                    }
                    let k = snap.partition_point(|s| s.start < r.start);
                    snap.insert(k, r.clone());
                } else {
                    if !l.nop {
                        return bad(&format!("{e:?} to a listener that does not want nops"));
                    }
                    let Some(s) = snap.iter_mut().find(|s| s.same_range(r)) else {
                        return bad(&format!("{e:?}: not a range of the listener's snapshot"));
                    };
                    s.mask = r.mask;
                }
            }
            Ev::LogStart(r, o, n) | Ev::LogStop(r, o, n) => {
                second = true;
                let start = matches!(e, Ev::LogStart(..));
                let Some(prev) = old.iter().find(|s| s.same_range(r)) else {
                    return bad(&format!("{e:?}: not an unchanged range"));
                };
                let gained = !n.without(*o).is_empty();
                let lost = !o.without(*n).is_empty();
                if prev.mask != *o || r.mask != *n || (start && !gained) || (!start && !lost) {
                    return bad(&format!("{e:?}: the snapshot's mask was {}", prev.mask.bits()));
                }
                let Some(s) = snap.iter_mut().find(|s| s.same_range(r)) else {
                    return bad(&format!("{e:?}: the range was deleted in this commit"));
                };
                s.mask = *n;
            }
            _ => return bad(&format!("unexpected {e:?}")),
        }
    }
    if snap != new {
        return Err(format!(
            "applying the callbacks to the listener's snapshot does not give the new view\nsnapshot before:\n{old:?}\nafter the callbacks:\n{snap:?}\nview:\n{new:?}\nheard:\n{}",
            list(&got)
        ));
    }
    // The exact sequence of QEMU's walk (this also checks that log_start/log_stop come
    // exactly for unchanged ranges whose mask changed, and that nops cover every unchanged
    // range of a listener that wants them).
    let want = expected_commit(&old, &new, l.nop);
    if got != want {
        return Err(format!(
            "callbacks differ from QEMU's walk over snapshot -> view\nexpected:\n{}heard:\n{}",
            list(&want),
            list(&got)
        ));
    }
    l.believed = new;
    Ok(())
}

/// Cross-listener order on one space: all deletions of the commit before any other range
/// callback; deletions reach the higher priority first, additions the lower priority first.
pub fn check_space_order(listeners: &[Lis], space: usize, evs: &[(usize, Ev)]) -> Result<(), String> {
    let ids: Vec<usize> = (0..listeners.len()).filter(|&l| listeners[l].space == space).collect();
    let per: Vec<Vec<(usize, Ev)>> = ids.iter().map(|&l| of_listener(evs, l)).collect();
    let last_del = per
        .iter()
        .flatten()
        .filter(|(_, e)| matches!(e, Ev::Del(_)))
        .map(|(k, _)| *k)
        .max();
    let first_other = per
        .iter()
        .flatten()
        .filter(|(_, e)| matches!(e, Ev::Add(_) | Ev::Nop(_) | Ev::LogStart(..) | Ev::LogStop(..)))
        .map(|(k, _)| *k)
        .min();
    if let (Some(d), Some(o)) = (last_del, first_other) {
        if d > o {
            return Err(format!(
                "a region_del (journal #{d}) after another range callback (journal #{o}) of the same space"
            ));
        }
    }
    if ids.len() != 2 {
        return Ok(());
    }
    let (lo, hi) = if listeners[ids[0]].prio < listeners[ids[1]].prio {
        (0, 1)
    } else {
        (1, 0)
    };
    let pick = |v: &[(usize, Ev)], add: bool| -> Vec<(usize, Rec)> {
        v.iter()
            .filter_map(|(k, e)| match e {
                Ev::Add(r) if add => Some((*k, r.clone())),
                Ev::Del(r) if !add => Some((*k, r.clone())),
                _ => None,
            })
            .collect()
    };
    for add in [false, true] {
        let (a, b) = (pick(&per[lo], add), pick(&per[hi], add));
        if a.len() != b.len() {
            return Err(format!(
                "the two listeners heard different numbers of additions/deletions: {a:?} vs {b:?}"
            ));
        }
        for ((ka, ra), (kb, rb)) in a.iter().zip(&b) {
            let ok = if add { ka < kb } else { kb < ka };
            if ra != rb || !ok {
                let what = if add { "region_add" } else { "region_del" };
                return Err(format!(
                    "{what} order between listeners: priority {} got {ra:?} at journal #{ka}, priority {} got {rb:?} at journal #{kb}",
                    listeners[ids[lo]].prio, listeners[ids[hi]].prio
                ));
            }
        }
    }
    Ok(())
}

pub fn same_ranges(a: addrspace::Ranges<'_>, b: addrspace::Ranges<'_>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x == y && x.dirty_log_mask() == y.dirty_log_mask())
}
