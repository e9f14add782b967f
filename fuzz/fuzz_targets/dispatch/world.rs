//! The world (regions, spaces, accessors) and what the model expects of an access.

use super::*;

// The world and the model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ram,
    RamDevice,
    RomDevice,
    Io,
    Reservation,
    Container,
    Alias,
}

pub(crate) struct Region {
    pub(crate) id: RegionId,
    pub(crate) kind: Kind,
    /// The largest size the region ever had (a view rendered before a shrink, still held by
    /// an open transaction's readers, may show the old size).
    pub(crate) size: u128,
    pub(crate) block: Option<Arc<RamBlock>>,
    /// Shadow of the whole RAM block (its length is the block's, page-rounded).
    pub(crate) shadow: Vec<u8>,
    pub(crate) dev: Option<Arc<RegDev>>,
    /// Model of the device's register file.
    pub(crate) regs: Vec<u8>,
}

pub(crate) struct World<'m> {
    pub(crate) mem: &'m Memory,
    pub(crate) root: RegionId,
    pub(crate) regions: Vec<Region>,
    pub(crate) by_id: HashMap<RegionId, usize>,
    /// Space 0 over the root (always alive); space 1 (if any) over the first container, which
    /// `DestroySpace` may drop while its accessor lives on.
    pub(crate) spaces: Vec<Option<AddressSpace>>,
    /// Root of each space.
    pub(crate) space_roots: Vec<RegionId>,
    pub(crate) accessors: Vec<Accessor>,
    pub(crate) log: Arc<Mutex<Vec<Call>>>,
    pub(crate) scratch: Vec<u8>,
    pub(crate) checked_views: Vec<Arc<FlatView>>,
}

/// What the model says one access does.
pub(crate) struct Expect {
    pub(crate) bytes: Vec<u8>,
    pub(crate) result: MemTxResult,
    pub(crate) calls: Vec<Call>,
}

/// `FlatView::lookup`, cross-checked against a plain binary search over `ranges()`.
pub(crate) fn lookup(view: &FlatView, a: u64) -> Option<(&FlatRange, u64)> {
    let ranges: Vec<&FlatRange> = view.ranges().iter().collect();
    let i = ranges.partition_point(|r| r.start().0 <= a);
    let naive = i.checked_sub(1).map(|i| ranges[i]).filter(|r| a <= r.last().0);
    let got = view.lookup(GuestAddr(a));
    match (naive, got) {
        (None, None) => None,
        (Some(n), Some((g, off))) => {
            assert!(std::ptr::eq(n, g), "lookup({a:#x}) = {g:?}, expected {n:?}");
            let want = n.offset_in_region().0 + (a - n.start().0);
            assert_eq!(off.0, want, "lookup({a:#x}) offset in {n:?}");
            Some((n, want))
        }
        (n, g) => panic!("lookup({a:#x}) = {:?}, expected {n:?}", g.map(|x| x.0)),
    }
}

/// How the model sees one flat range.
pub(crate) enum Class {
    /// Direct RAM access to region `idx` (read or write as decided by the caller).
    Ram {
        idx: usize,
        writable: bool,
    },
    Device(usize),
    /// Refused: `attrs.memory` and not RAM.
    NotMemory,
    /// Reservation, or RAM that a non-direct access cannot handle.
    Unassigned,
}
