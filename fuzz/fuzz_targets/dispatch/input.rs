//! The fuzzer's input: region specs, access rules (valid and refused), sizes, lengths, addresses, operations.

use super::*;

// Input
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum SizeSel {
    Tiny(u8),
    Pages(u8),
    Odd(u16),
    Exact64K,
}

impl SizeSel {
    pub(crate) fn get(self) -> u128 {
        match self {
            SizeSel::Tiny(n) => u128::from(n),
            SizeSel::Pages(n) => (u128::from(n % 16) + 1) * 4096,
            SizeSel::Odd(n) => u128::from(n),
            SizeSel::Exact64K => 0x10000,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum BigSize {
    Small(SizeSel),
    Big(u64),
    Pow2(u8),
    /// 2^64 - 1 bytes.
    MaxU64,
    Full,
}

impl BigSize {
    pub(crate) fn get(self) -> u128 {
        match self {
            BigSize::Small(s) => s.get(),
            BigSize::Big(n) => u128::from(n),
            BigSize::Pow2(k) => 1u128 << (k % 65),
            BigSize::MaxU64 => u128::from(u64::MAX),
            BigSize::Full => SIZE_2_64,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum AddrSel {
    Small(u16),
    Page(u16),
    NearTop(u16),
    Raw(u64),
    Pow2(u8, i8),
}

impl AddrSel {
    pub(crate) fn get(self) -> u64 {
        match self {
            AddrSel::Small(n) => u64::from(n),
            AddrSel::Page(n) => u64::from(n) << 12,
            AddrSel::NearTop(n) => u64::MAX - u64::from(n),
            AddrSel::Raw(n) => n,
            AddrSel::Pow2(k, d) => (1u64 << (k % 64)).wrapping_add(d as i64 as u64),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) struct DevSpec {
    pub(crate) vmin: u8,
    pub(crate) vmax: u8,
    pub(crate) vunaligned: bool,
    pub(crate) imin: u8,
    pub(crate) imax: u8,
    pub(crate) iunaligned: bool,
    pub(crate) big: bool,
    /// Callbacks at offsets with these low 6 bits report ERROR (but still act).
    pub(crate) err: Option<u8>,
    /// `accepts` refuses accesses at offsets with these low 4 bits, of one direction.
    pub(crate) reject: Option<u8>,
    /// A write callback at offsets with these low 6 bits (`.1`) toggles whether region `.0`
    /// is enabled, from inside the access: the rest of the access must keep its view.
    pub(crate) remap: Option<(u8, u8)>,
    /// Keep a minimum above the maximum as drawn (such rules must be refused at creation).
    pub(crate) disorder: bool,
}

/// Sizes a device may declare: the dispatchable ones (0 = undeclared) most of the time, and
/// now and then one the library must refuse when the region is created.
pub(crate) fn pick_size(n: u8) -> u8 {
    const GOOD: [u8; 5] = [0, 1, 2, 4, 8];
    const BAD: [u8; 7] = [3, 5, 6, 7, 16, 128, u8::MAX];
    if n < 240 {
        GOOD[usize::from(n % 5)]
    } else {
        BAD[usize::from(n % 7)]
    }
}

pub(crate) fn size_rule(min: u8, max: u8, unaligned: bool, disorder: bool) -> SizeRule {
    let (mut min, mut max) = (pick_size(min), pick_size(max));
    if max != 0 && min > max && !disorder {
        std::mem::swap(&mut min, &mut max);
    }
    SizeRule { min, max, unaligned }
}

/// The library's creation check, restated: sizes 0, 1, 2, 4 or 8 and min <= a declared max.
pub(crate) fn rule_ok(r: SizeRule) -> bool {
    let size = |s: u8| matches!(s, 0 | 1 | 2 | 4 | 8);
    size(r.min) && size(r.max) && (r.max == 0 || r.min <= r.max)
}

impl DevSpec {
    pub(crate) fn rules(self) -> AccessRules {
        AccessRules {
            valid: size_rule(self.vmin, self.vmax, self.vunaligned, self.disorder),
            implementation: size_rule(self.imin, self.imax, self.iunaligned, self.disorder),
            endianness: if self.big { Endianness::Big } else { Endianness::Little },
            allow_reentrancy: false,
        }
    }
}

#[derive(Arbitrary, Debug)]
pub(crate) enum KindSpec {
    Ram(SizeSel),
    Rom(SizeSel),
    RamDevice(SizeSel),
    RomDevice(SizeSel, bool, DevSpec),
    Io(BigSize, DevSpec),
    Reservation(BigSize),
    Container(BigSize),
    Alias { target: u8, offset: AddrSel, size: BigSize },
}

#[derive(Arbitrary, Debug)]
pub(crate) struct MapSpec {
    pub(crate) parent: u8,
    pub(crate) addr: AddrSel,
    pub(crate) prio: i8,
}

#[derive(Arbitrary, Debug)]
pub(crate) struct RegionSpec {
    pub(crate) kind: KindSpec,
    pub(crate) map: Option<MapSpec>,
    pub(crate) readonly: bool,
    pub(crate) disabled: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum How {
    Space(u8),
    Accessor(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum LenSel {
    Small(u8),
    Huge(u16),
    /// Lengths no single device access has: odd, wider than 8, a page and around it.
    Awkward(u8),
}

impl LenSel {
    pub(crate) fn get(self) -> usize {
        match self {
            LenSel::Small(n) => usize::from(n % 65),
            LenSel::Huge(n) => usize::from(n % 4097),
            LenSel::Awkward(n) => [3, 5, 7, 9, 16, 17, 4095, 4096, 4097][usize::from(n % 9)],
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) struct AttrSel {
    pub(crate) debug: bool,
    pub(crate) memory: bool,
    pub(crate) secure: bool,
    pub(crate) user: bool,
    pub(crate) requester_id: u16,
}

impl AttrSel {
    pub(crate) fn get(self) -> MemTxAttrs {
        MemTxAttrs {
            secure: self.secure,
            user: self.user,
            debug: self.debug,
            memory: self.memory,
            requester_id: self.requester_id,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub(crate) enum AddrPick {
    RangeStart(u8, i8),
    RangeLast(u8, i8),
    NearTop(u8),
    Abs(AddrSel),
}

#[derive(Arbitrary, Debug)]
pub(crate) enum Op {
    Read {
        at: AddrPick,
        len: LenSel,
        attrs: AttrSel,
        how: How,
    },
    Write {
        at: AddrPick,
        len: LenSel,
        seed: u8,
        attrs: AttrSel,
        how: How,
        readback: bool,
    },
    Load {
        at: AddrPick,
        width: u8,
        big: bool,
        attrs: AttrSel,
        how: How,
    },
    Store {
        at: AddrPick,
        width: u8,
        big: bool,
        value: u64,
        attrs: AttrSel,
        how: How,
    },
    SetAddress {
        r: u8,
        addr: AddrSel,
    },
    SetEnabled {
        r: u8,
        on: bool,
    },
    Remove {
        r: u8,
    },
    Add {
        r: u8,
        parent: u8,
        addr: AddrSel,
        prio: i8,
    },
    SetRomd {
        r: u8,
        on: bool,
    },
    SetReadonly {
        r: u8,
        on: bool,
    },
    SetPriority {
        r: u8,
        prio: i8,
    },
    SetAliasOffset {
        r: u8,
        offset: AddrSel,
    },
    SetSize {
        r: u8,
        size: BigSize,
    },
    Delete {
        r: u8,
    },
    BeginTx,
    EndTx,
    NewAccessor {
        space: u8,
    },
    Lookup {
        at: AddrPick,
        how: How,
    },
    DestroySpace,
    RecreateSpace,
}

#[derive(Arbitrary, Debug)]
pub(crate) struct Input {
    pub(crate) setup_in_tx: bool,
    pub(crate) regions: Vec<RegionSpec>,
    pub(crate) ops: Vec<Op>,
}

pub(crate) fn prio(p: i8) -> i32 {
    match p {
        i8::MIN => i32::MIN,
        i8::MAX => i32::MAX,
        p => i32::from(p.rem_euclid(4)) - 1,
    }
}
