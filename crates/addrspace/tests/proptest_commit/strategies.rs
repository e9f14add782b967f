//! Generators of the commit property: the random regions added to the skeleton, the
//! address spaces and listeners, and the transactions of operations — including aliases into
//! ancestors (`Op::Ancestor`), as QEMU allows and ARM's SSE-200 uses.

use addrspace::SIZE_2_64;
use proptest::prelude::*;
use proptest::sample::{select, Index};

pub use crate::common::change::Change;

#[derive(Debug, Clone)]
pub enum Make {
    Ram(u128),
    Rom(u128),
    Io(u128),
    RomDevice(u128),
    Container(u128),
    /// `target` picks among the regions created before (the skeleton included).
    Alias {
        target: Index,
        offset: u64,
        size: u128,
    },
}

/// A region, whether to make it read-only at once, and where to map it: in `system` for a
/// `None` parent, else in any earlier non-alias region.
#[derive(Debug, Clone)]
pub struct Placed {
    pub make: Make,
    pub readonly: bool,
    pub at: Option<(Option<Index>, u64, i32)>,
}

#[derive(Debug, Clone)]
pub enum Op {
    /// A change both properties make.
    Change(Change),
    Prio {
        node: Index,
        prio: i32,
    },
    Log {
        node: Index,
        on: bool,
    },
    DirtyLog {
        on: bool,
    },
    /// An alias of the ancestor `up` levels above the region `at` picks (0: the region
    /// itself), mapped into that region: see `World::ancestor_alias`.
    Ancestor {
        at: Index,
        up: u8,
        anc: Anc,
    },
}

/// An alias into an ancestor, placed relative to the addresses it sits at: mapped at `addr`,
/// its window shows what is `shift` bytes below it in the ancestor (each trip through the
/// cycle moves what is rendered by `shift`; 0 would never end and is refused).
#[derive(Debug, Clone, Copy)]
pub struct Anc {
    pub addr: u64,
    pub shift: i64,
    pub size: u128,
    pub prio: i32,
}

pub fn anc_s() -> impl Strategy<Value = Anc> {
    (
        select(vec![0u64, 0x1000, 0x2000, 0x8000, 0x1_0000, 0x4_0000, 0x10_0000]),
        prop_oneof![
            1 => Just(0i64),
            6 => select(vec![0x800i64, 0x1000, 0x4000, 0x1_0000, 0x4_0000, -0x1000, -0x8000, -0x1_0000]),
            1 => select(vec![0x40i64, -0x100]),
        ],
        select(vec![0x1000u128, 0x4000, 0x1_0000, 0x4_0000, 0x10_0000]),
        select(vec![-1500, -1, 0, 1, 2]),
    )
        .prop_map(|(addr, shift, size, prio)| Anc {
            addr,
            shift,
            size,
            prio,
        })
}

/// One address space: its root among the tops (`system`, `bm`, `smm`, `pci`, `cpu1`,
/// `cpu-smm-a`, `cpu-smm-b`), its
/// first listener (wants nops, priority) and maybe a second one of another priority.
#[derive(Debug, Clone)]
pub struct SpaceSpec {
    pub top: Index,
    pub first: (bool, u32),
    pub second: Option<(bool, u32)>,
}

/// The machine: a fixed skeleton —
///
/// ```text
/// system (2^64)            sysram @0, pci @pci_addr (bar0 @0), pci-window -> pci @0x40000
/// bm (2^64)                bm-alias -> system (bus master: simplifies onto system)
/// smm (2^64)               smm-alias -> system, smram @smram_addr prio 1 (SMM)
/// cpu1 (2^64)              cpu1-alias -> system, apic (io) @0x1000 prio 1 (per-CPU)
/// cpu-smm-a, cpu-smm-b     alias -> system, alias -> smram @smram_addr prio 1 (identical)
/// ```
///
/// — plus, maybe, aliases into ancestors (`selfies`), random regions, 3 to 6 address spaces (the first over `system`, the second over
/// `bm`), and random transactions of operations.
#[derive(Debug, Clone)]
pub struct Spec {
    pub pci_size: u128,
    pub pci_addr: u64,
    pub smram_addr: u64,
    pub pre_log: bool,
    pub makes: Vec<Placed>,
    pub spaces: Vec<SpaceSpec>,
    pub txs: Vec<Vec<Op>>,
    /// Aliases into their own ancestors in the skeleton, each maybe absent: in `system`, of
    /// `system` (ARM SSE's `alias 1`); in `cpu1`, of `cpu1` (SSE's per-CPU `alias 3`); in
    /// `pci`, of `system`, one level up.
    pub selfies: [Option<Anc>; 3],
    /// A background of [`BACKGROUND`] tiny RAM regions under everything in `system`, so that
    /// its views are big enough to be stored in chunks and commits edit those.
    pub background: bool,
}

/// Regions in a [`Spec::background`]: 0x20 bytes every 0x60 from 0x8000 (above `sysram`),
/// under the random regions.
pub const BACKGROUND: u64 = 320;

pub fn addr_s() -> impl Strategy<Value = u64> {
    prop_oneof![
        10 => select(vec![0u64, 0, 0x800, 0x1000, 0x1000, 0x2000, 0x3000, 0x4000, 0x8000, 0x1_0000, 0x4_0000]),
        3 => 0u64..0x2_0000,
        1 => select(vec![u64::MAX - 0xfff, 1 << 63, u64::MAX]),
    ]
}

pub fn ram_size_s() -> impl Strategy<Value = u128> {
    prop_oneof![
        6 => select(vec![0x800u128, 0x1000, 0x2000, 0x4000, 0x8000]),
        2 => 1u128..0x3000,
    ]
}

pub fn size_s() -> impl Strategy<Value = u128> {
    prop_oneof![
        1 => Just(0u128),
        8 => select(vec![0x800u128, 0x1000, 0x2000, 0x4000, 0x8000, 0x1_0000]),
        2 => 1u128..0x3000,
        1 => select(vec![SIZE_2_64, 1 << 63]),
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
    select(vec![-1, 0, 0, 0, 1, 2])
}

pub fn make_s() -> impl Strategy<Value = Make> {
    prop_oneof![
        4 => ram_size_s().prop_map(Make::Ram),
        1 => ram_size_s().prop_map(Make::Rom),
        1 => ram_size_s().prop_map(Make::RomDevice),
        3 => size_s().prop_map(Make::Io),
        3 => size_s().prop_map(Make::Container),
        4 => (any::<Index>(), offset_s(), size_s())
            .prop_map(|(target, offset, size)| Make::Alias { target, offset, size }),
    ]
}

pub fn placed_s() -> impl Strategy<Value = Placed> {
    (
        make_s(),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.85, (prop::option::weighted(0.5, any::<Index>()), addr_s(), prio_s())),
    )
        .prop_map(|(make, readonly, at)| Placed { make, readonly, at })
}

pub fn op_s() -> impl Strategy<Value = Op> {
    let idx = any::<Index>;
    prop_oneof![
        12 => (idx(), idx(), prop::bool::weighted(0.8), addr_s(), prio_s())
            .prop_map(|(parent, child, fresh, addr, prio)| Op::Change(Change::Add { parent, child, fresh, addr, prio })),
        5 => idx().prop_map(|child| Op::Change(Change::Remove { child })),
        8 => (idx(), addr_s()).prop_map(|(node, addr)| Op::Change(Change::Move { node, addr })),
        3 => (idx(), prio_s()).prop_map(|(node, prio)| Op::Prio { node, prio }),
        6 => (idx(), prop::bool::weighted(0.6)).prop_map(|(node, on)| Op::Change(Change::Enable { node, on })),
        3 => (idx(), size_s()).prop_map(|(node, size)| Op::Change(Change::Resize { node, size })),
        3 => (idx(), offset_s()).prop_map(|(node, offset)| Op::Change(Change::AliasOffset { node, offset })),
        4 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Readonly { node, on })),
        3 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Romd { node, on })),
        5 => (idx(), prop::bool::weighted(0.6)).prop_map(|(node, on)| Op::Log { node, on }),
        1 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Nonvolatile { node, on })),
        2 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Change(Change::Unmergeable { node, on })),
        1 => any::<bool>().prop_map(|on| Op::DirtyLog { on }),
        6 => (idx(), 0u8..4, anc_s()).prop_map(|(at, up, anc)| Op::Ancestor { at, up, anc }),
    ]
}

pub fn space_s() -> impl Strategy<Value = SpaceSpec> {
    (
        any::<Index>(),
        (any::<bool>(), select(vec![5u32, 10])),
        prop::option::weighted(0.5, (any::<bool>(), select(vec![0u32, 20]))),
    )
        .prop_map(|(top, first, second)| SpaceSpec { top, first, second })
}

pub fn spec_s() -> impl Strategy<Value = Spec> {
    (
        select(vec![0x1_0000u128, 0x1_0000, SIZE_2_64 - 0x10_0000]),
        select(vec![0x1_0000u64, 0x10_0000]),
        select(vec![0u64, 0x4000, 0x7000]),
        prop::bool::weighted(0.3),
        prop::collection::vec(placed_s(), 2..14),
        prop::collection::vec(space_s(), 3..=6),
        prop::collection::vec(prop::collection::vec(op_s(), 0..5), 3..14),
        [
            prop::option::weighted(0.6, anc_s()),
            prop::option::weighted(0.6, anc_s()),
            prop::option::weighted(0.5, anc_s()),
        ],
    )
        .prop_map(
            |(pci_size, pci_addr, smram_addr, pre_log, makes, spaces, txs, selfies)| Spec {
                pci_size,
                pci_addr,
                smram_addr,
                pre_log,
                makes,
                spaces,
                txs,
                selfies,
                background: false,
            },
        )
}

/// [`spec_s`] over a background: `system`'s views are big enough to be stored in chunks.
pub fn chunked_spec_s() -> impl Strategy<Value = Spec> {
    spec_s().prop_map(|s| Spec { background: true, ..s })
}
