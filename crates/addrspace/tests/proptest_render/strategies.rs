//! Generators of `render_matches_reference` (and of the round trip's machines): regions to
//! create and where to map them, random changes, and the changes that build cycles through
//! aliases into ancestors (QEMU allows them; ARM's SSE-200 has two kinds).
//!
//! The random `Make::Alias` rarely closes a cycle, so [`Op::Ancestor`] builds one on
//! purpose: an alias of a region's own ancestor (`up` levels above it) mapped into the
//! region, or an alias of such an alias, its window placed relative to the addresses it sits
//! at by a [`Shift`]:
//!
//! * `By(d)`: each trip through the cycle moves the rendered window by `d` (up or down), so
//!   it ends after about `size / |d|` trips: accepted when that is at most
//!   `cycle::MAX_REENTRIES`, refused beyond; `Fraction` aims at that boundary;
//! * `Same`: the alias shows exactly the addresses it sits at (QEMU would recurse forever):
//!   refused;
//! * `Undo`: the opposite shift of the previous ancestor alias, in the same container when
//!   `again` (an `a → b → a` trip back to the same window): refused when the windows meet.
//!
//! [`Op::Tweak`] then moves, re-offsets or grows an alias that lies on a cycle, which the
//! cycle rule must check again. The model decides every outcome (`World::reentries_in`).

use addrspace::SIZE_2_64;
use proptest::prelude::*;
use proptest::sample::{select, Index};

pub use crate::common::change::Change;
use crate::model::{Kind, TestResult, World};
use crate::world::Expect;

#[derive(Debug, Clone)]
pub enum Make {
    Ram(u128),
    Rom(u128),
    RamDevice(u128),
    RomDevice(u128),
    Io(u128),
    Reservation(u128),
    Container(u128),
    /// `target` picks among the regions created before (but the first).
    Alias {
        target: Index,
        offset: u64,
        size: u128,
    },
    /// If the region created just before is a mapped alias: an alias of the same target that
    /// continues it (next offset, next address, same container and priority), so that the
    /// two render as adjacent pieces of one region that must merge (spec 2.4 example B).
    /// Otherwise an alias of the region created just before, at offset 0 (a chain starts).
    AliasNext {
        size: u128,
    },
}

#[derive(Debug, Clone)]
pub enum Op {
    /// A change both properties make.
    Change(Change),
    /// An alias of an ancestor of the region `at` picks (`up` levels above it), mapped
    /// into that region at `addr` (moved up if the shift needs it), its window `shift`ed from
    /// the addresses it sits at. `again`: into the container of the previous one instead.
    Ancestor(Ancestor),
    /// Changes an alias that lies on a cycle (picked among them).
    Tweak { pick: Index, tweak: Tweak },
    /// Enables `node` (picked among the root's subregions) and disables all its siblings
    /// (exercises root simplification). Not in `op_s`: at most one per case, see `Spec1`.
    Solo { node: Index },
}

/// See [`Op::Ancestor`].
#[derive(Debug, Clone, Copy)]
pub struct Ancestor {
    pub at: Index,
    pub again: bool,
    pub up: u8,
    pub shift: Shift,
    pub addr: u64,
    pub size: u128,
    pub prio: i32,
    pub via: Via,
}

/// Where an ancestor alias's window is, relative to the addresses it sits at (how far each
/// trip through the cycle moves what is rendered).
#[derive(Debug, Clone, Copy)]
pub enum Shift {
    /// Not at all: endless.
    Same,
    /// By this many bytes (up if positive).
    By(i64),
    /// By the window size divided by this (up or down): near `MAX_REENTRIES` trips.
    Fraction(u8, bool),
    /// The opposite of the previous ancestor alias's shift.
    Undo,
}

/// How an ancestor alias reaches its ancestor.
#[derive(Debug, Clone, Copy)]
pub enum Via {
    /// It is an alias of the ancestor.
    Direct,
    /// It is an alias, at offset `.0`, of an unmapped alias of the ancestor.
    Alias(u64),
    /// As `Alias`, and the inner alias is also mapped in the first region at `.1`.
    MappedAlias(u64, u64),
}

/// A change of an alias on a cycle.
#[derive(Debug, Clone, Copy)]
pub enum Tweak {
    /// Offset such that it shows the addresses it sits at (refused).
    SameOffset,
    /// Offset moved by this much.
    Offset(i64),
    /// Moved to where it shows the addresses it sits at (refused).
    SameAddress,
    /// Moved by this much.
    Move(i64),
    /// Size multiplied by this.
    Grow(u8),
}

fn shift_s() -> impl Strategy<Value = Shift> {
    let delta = || select(vec![0x10i64, 0x100, 0x800, 0x1000, 0x1800, 0x3000, 0x8000]);
    prop_oneof![
        2 => Just(Shift::Same),
        6 => (delta(), any::<bool>()).prop_map(|(d, down)| Shift::By(if down { -d } else { d })),
        2 => (select(vec![2u8, 3, 63, 64, 65, 66]), any::<bool>()).prop_map(|(k, down)| Shift::Fraction(k, down)),
        2 => Just(Shift::Undo),
    ]
}

fn via_s() -> impl Strategy<Value = Via> {
    let off = || select(vec![0u64, 0x800, 0x1000]);
    prop_oneof![
        5 => Just(Via::Direct),
        2 => off().prop_map(Via::Alias),
        1 => (off(), addr_s()).prop_map(|(o, a)| Via::MappedAlias(o, a)),
    ]
}

fn tweak_s() -> impl Strategy<Value = Tweak> {
    let delta = || select(vec![-0x1000i64, -0x800, -0x10, 0x10, 0x800, 0x1000, 0x3000]);
    prop_oneof![
        1 => Just(Tweak::SameOffset),
        2 => delta().prop_map(Tweak::Offset),
        1 => Just(Tweak::SameAddress),
        2 => delta().prop_map(Tweak::Move),
        2 => select(vec![2u8, 4, 64]).prop_map(Tweak::Grow),
    ]
}

/// Window sizes of ancestor aliases: small to large against the shifts.
fn window_s() -> impl Strategy<Value = u128> {
    select(vec![0x800u128, 0x1000, 0x2000, 0x4000, 0x1_0000, 0x10_0000])
}

fn ancestor_s() -> impl Strategy<Value = Op> {
    (
        (any::<Index>(), prop::bool::weighted(0.4), 0u8..4),
        shift_s(),
        addr_s(),
        window_s(),
        prio_s(),
        via_s(),
    )
        .prop_map(|((at, again, up), shift, addr, size, prio, via)| {
            Op::Ancestor(Ancestor {
                at,
                again,
                up,
                shift,
                addr,
                size,
                prio,
                via,
            })
        })
}

/// Addresses on a coarse grid (lots of overlap and shared boundaries), a few arbitrary ones
/// and a few near the top of the address space (some of which overflow and must be refused).
pub fn addr_s() -> impl Strategy<Value = u64> {
    prop_oneof![
        10 => select(vec![0u64, 0, 0x7ff, 0x800, 0x801, 0x1000, 0x1000, 0x1800, 0x2000, 0x3000]),
        2 => select(vec![0x4000u64, 0x8000]),
        2 => 0u64..0x1_0000,
        1 => select(vec![u64::MAX - 0xfff, u64::MAX - 0x7fff, 1 << 63, u64::MAX]),
    ]
}

/// Sizes for RAM-backed regions (small: they are real host mappings).
pub fn ram_size_s(allow_zero: bool) -> impl Strategy<Value = u128> {
    let min = if allow_zero { 0 } else { 1 };
    prop_oneof![
        1 => Just(min),
        8 => select(vec![0x800u128, 0x1000, 0x2000, 0x3000, 0x8000, 0x1_0000]),
        2 => 2u128..0x3000,
    ]
}

/// Sizes for the other kinds, including 2^63 and 2^64. Never 1: an alias of size 1 prints
/// like one of size 0 (`X-X`), which the importer reads as 0.
pub fn size_s(allow_zero: bool) -> impl Strategy<Value = u128> {
    let min = if allow_zero { 0 } else { 0x1000 };
    prop_oneof![
        1 => Just(min),
        8 => select(vec![0x7ffu128, 0x800, 0x801, 0x1000, 0x2000, 0x3000, 0x4000, 0x8000, 0x1_0000]),
        2 => 2u128..0x3000,
        1 => select(vec![SIZE_2_64, SIZE_2_64, 1 << 63]),
    ]
}

pub fn offset_s() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => select(vec![0u64, 0, 0, 0x800, 0x1000, 0x3000]),
        2 => 0u64..0x4000,
        1 => select(vec![u64::MAX - 0x7ff, 1 << 63]),
    ]
}

pub fn prio_s() -> impl Strategy<Value = i32> {
    select(vec![-2, -1, 0, 0, 0, 0, 1, 2])
}

/// A region to create. `allow_zero`: size 0 for non-alias regions (a dump cannot express it:
/// QEMU prints sizes 0 and 1 alike and the importer reads `X-X` as 1 unless it is an alias).
pub fn make_s(allow_zero: bool) -> impl Strategy<Value = Make> {
    prop_oneof![
        3 => ram_size_s(allow_zero).prop_map(Make::Ram),
        1 => ram_size_s(allow_zero).prop_map(Make::Rom),
        1 => ram_size_s(allow_zero).prop_map(Make::RamDevice),
        1 => ram_size_s(allow_zero).prop_map(Make::RomDevice),
        2 => size_s(allow_zero).prop_map(Make::Io),
        1 => size_s(allow_zero).prop_map(Make::Reservation),
        3 => size_s(allow_zero).prop_map(Make::Container),
        4 => (any::<Index>(), offset_s(), size_s(true))
            .prop_map(|(target, offset, size)| Make::Alias { target, offset, size }),
        3 => size_s(true).prop_map(|size| Make::AliasNext { size }),
    ]
}

/// A region to create, whether to make it read-only at once, and usually where to map it:
/// in the first region (the root) for `None`, else in any earlier non-alias region.
#[derive(Debug, Clone)]
pub struct Placed {
    pub make: Make,
    pub readonly: bool,
    pub at: Option<(Option<Index>, u64, i32)>,
}

pub fn placed_make_s(allow_zero: bool) -> impl Strategy<Value = Placed> {
    make_s(allow_zero).prop_flat_map(|make| {
        // Continuing aliases often differ in read-only-ness from their neighbour: ranges that
        // must then stay unmerged.
        let ro = if matches!(make, Make::AliasNext { .. }) {
            0.4
        } else {
            0.15
        };
        (
            Just(make),
            prop::bool::weighted(ro),
            prop::option::weighted(0.85, (prop::option::weighted(0.6, any::<Index>()), addr_s(), prio_s())),
        )
            .prop_map(|(make, readonly, at)| Placed { make, readonly, at })
    })
}

pub fn op_s() -> impl Strategy<Value = Op> {
    let idx = any::<Index>;
    prop_oneof![
        15 => (idx(), idx(), prop::bool::weighted(0.8), addr_s(), prio_s())
            .prop_map(|(parent, child, fresh, addr, prio)| Op::Change(Change::Add { parent, child, fresh, addr, prio })),
        6 => idx().prop_map(|child| Op::Change(Change::Remove { child })),
        9 => (idx(), addr_s()).prop_map(|(node, addr)| Op::Change(Change::Move { node, addr })),
        6 => (idx(), prop::bool::weighted(0.7)).prop_map(|(node, on)| Op::Change(Change::Enable { node, on })),
        6 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Readonly { node, on })),
        3 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Nonvolatile { node, on })),
        3 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Unmergeable { node, on })),
        3 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Romd { node, on })),
        3 => (idx(), offset_s()).prop_map(|(node, offset)| Op::Change(Change::AliasOffset { node, offset })),
        3 => (idx(), size_s(true)).prop_map(|(node, size)| Op::Change(Change::Resize { node, size })),
        14 => ancestor_s(),
        5 => (idx(), tweak_s()).prop_map(|(pick, tweak)| Op::Tweak { pick, tweak }),
    ]
}

/// Creates every region of `makes` (named after its kind and index) and maps it where asked,
/// the parent chosen among the non-alias regions that exist already.
pub fn build(w: &mut World, makes: &[Placed]) -> TestResult {
    for Placed { make, readonly, at } in makes {
        let name = format!(
            "{}{}",
            match make {
                Make::Ram(_) => "ram",
                Make::Rom(_) => "rom",
                Make::RamDevice(_) => "ramd",
                Make::RomDevice(_) => "romdev",
                Make::Io(_) => "io",
                Make::Reservation(_) => "resv",
                Make::Container(_) => "cont",
                Make::Alias { .. } | Make::AliasNext { .. } => "alias",
            },
            w.m.len()
        );
        // Where a continuing alias goes: right after the previous one.
        let next_to = match (make, w.m.last()) {
            (Make::AliasNext { .. }, Some(prev)) if matches!(prev.kind, Kind::Alias { .. }) => {
                let addr = u64::try_from(u128::from(prev.addr) + prev.size).ok();
                prev.parent.zip(addr).map(|(p, a)| (p, a, prev.prio))
            }
            _ => None,
        };
        let parents: Vec<usize> = (0..w.m.len())
            .filter(|&i| !matches!(w.m[i].kind, Kind::Alias { .. }))
            .collect();
        let c = w.create(name, make)?;
        if *readonly {
            let real = w.mem.set_readonly(w.ids(c), true);
            w.expect(format!("set_readonly {} true", w.m[c].name), real, Expect::Ok)?;
            w.m[c].readonly = true;
        }
        if let Some((p, addr, prio)) = next_to {
            w.add(p, c, addr, prio)?;
        } else if let Some((p, addr, prio)) = at {
            let p = p.map_or(0, |p| parents[p.index(parents.len())]);
            w.add(p, c, *addr, *prio)?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct Spec1 {
    /// The root is an MMIO container (fills its own gaps) instead of a pure container.
    pub root_io: bool,
    pub root_size: u128,
    pub makes: Vec<Placed>,
    pub ops: Vec<Op>,
    /// Ops in `[a, b)` run inside one explicit transaction.
    pub tx: (Index, Index),
    /// Extra addresses to probe besides the boundaries.
    pub probes: Vec<u64>,
    pub bank: Option<Bank>,
    /// An `Op::Solo` inserted at this position of `ops`.
    pub solo: Option<(Index, Index)>,
}

/// A bank of many small devices in one container (enough subregions for the renderer's
/// per-container child index), mapped in the root and seen again through an alias window
/// (a clipped visit, the case the index is for).
#[derive(Debug, Clone)]
pub struct Bank {
    pub addr: u64,
    pub prio: i32,
    /// The window: offset in the bank, size, address in the root, priority.
    pub window: (u64, u128, u64, i32),
    /// Devices: RAM (else MMIO), address in the bank, size, priority.
    pub devices: Vec<(bool, u64, u128, i32)>,
}

pub fn bank_s() -> impl Strategy<Value = Bank> {
    // A 0x100 grid, sometimes off by a byte or so (edges of the child index's searches).
    let grid = || ((0u64..0x100), select(vec![0u64, 0, 0, 0, 1, 0x7f, 0xff])).prop_map(|(x, d)| x * 0x100 + d);
    (
        select(vec![0u64, 0x1000, 0x2_0000]),
        prio_s(),
        (
            grid(),
            select(vec![0x800u128, 0x1000, 0x3000, 0x8000, 0x2801]),
            select(vec![0u64, 0x3_0000]),
            0..3,
        ),
        prop::collection::vec(
            (
                prop::bool::weighted(0.3),
                grid(),
                select(vec![0x80u128, 0x100, 0x180, 0x200, 0x800, 0x101, 0x3000]),
                -1i32..=1,
            ),
            32..48,
        ),
    )
        .prop_map(|(addr, prio, window, devices)| Bank {
            addr,
            prio,
            window,
            devices,
        })
}

pub fn spec1_s() -> impl Strategy<Value = Spec1> {
    (
        prop::bool::weighted(0.2),
        select(vec![SIZE_2_64, SIZE_2_64, 0x1_0000, 0x8000]),
        prop::collection::vec(placed_make_s(true), 2..24),
        prop::collection::vec(op_s(), 0..40),
        (any::<Index>(), any::<Index>()),
        prop::collection::vec(prop_oneof![0u64..0x2_0000, any::<u64>()], 8),
        prop::option::weighted(0.25, bank_s()),
        prop::option::weighted(0.15, (any::<Index>(), any::<Index>())),
    )
        .prop_map(|(root_io, root_size, makes, ops, tx, probes, bank, solo)| Spec1 {
            root_io,
            root_size,
            makes,
            ops,
            tx,
            probes,
            bank,
            solo,
        })
}

pub fn build_bank(w: &mut World, root: usize, bank: &Bank) -> TestResult {
    let b = w.create(format!("bank{}", w.m.len()), &Make::Container(0x1_0000))?;
    w.add(root, b, bank.addr, bank.prio)?;
    for &(ram, addr, size, prio) in &bank.devices {
        let make = if ram { Make::Ram(size) } else { Make::Io(size) };
        let d = w.create(format!("dev{}", w.m.len()), &make)?;
        w.add(b, d, addr, prio)?;
    }
    let (offset, size, addr, prio) = bank.window;
    let a = w.create_alias(format!("bankwin{}", w.m.len()), b, offset, size)?;
    w.add(root, a, addr, prio)
}
