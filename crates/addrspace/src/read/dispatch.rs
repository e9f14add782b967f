//! Reads and writes through a flat view: QEMU's `flatview_read/write` and `address_space_ld*/
//! st*`, over one immutable snapshot.
//!
//! Byte-slice accesses split at range boundaries: RAM is copied directly, each device gets
//! pieces of the size its rules allow, holes read as zero with a decode error. Fixed-size
//! loads and stores of RAM take the view's direct windows first (`FlatView::find_own`):
//! a lookup (usually the last hit), one range check and one aligned host access, without
//! touching the range's region or RAM block; stores only where the range is writable and not
//! dirty-logged. Otherwise a device gets the whole access (device lengths are not clamped to
//! the range, as in QEMU), and anything else falls back to the byte-slice path.
//!
//! Every address computation is checked: guest-controlled addresses and lengths may run past
//! 2^64 or off the end of the view, and such bytes are simply unassigned.

use crate::base::access::{Endianness, MemTxAttrs, MemTxResult};
use crate::base::ram::RamBlock;
use crate::model::region::Backend;
use crate::read::mmio::{dispatch_read, dispatch_write, piece_size, Device};
use crate::view::flatview::{FlatRange, FlatView, Mru};

/// A fixed-size value that can be loaded from or stored to guest memory.
pub trait Scalar: Copy + Default + sealed::Sealed {
    /// Size in bytes (1, 2, 4 or 8).
    const SIZE: usize;
    /// The value from the low bytes of `v`.
    fn from_u64(v: u64) -> Self;
    /// The value, zero-extended.
    fn to_u64(self) -> u64;
}

mod sealed {
    /// Seals [`super::Scalar`]: unnameable outside on purpose.
    #[allow(unnameable_types)]
    pub trait Sealed {}
}

macro_rules! scalar {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Scalar for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline]
            fn from_u64(v: u64) -> Self {
                v as $t
            }
            #[inline]
            fn to_u64(self) -> u64 {
                self as u64
            }
        }
    )*};
}
scalar!(u8, u16, u32, u64);

/// Where one access to a range goes, decided by a single look at its backend.
enum Target<'r> {
    /// Copy host memory directly.
    Direct(&'r RamBlock),
    /// Hand the access to a device.
    Device(Device<'r>),
    /// `attrs.memory` access to something that is not RAM.
    Refused,
    /// Nothing takes it: ROM or read-only writes, reservations.
    Dropped,
}

/// Classifies an access to `r`: RAM is direct (writes only if writable, or for a debug
/// access, which may write ROM); a ROM device reads RAM in romd mode, and a debug write in romd
/// mode goes to its RAM too; everything else with ops goes to the device.
#[inline]
fn target(r: &FlatRange, is_write: bool, attrs: MemTxAttrs) -> Target<'_> {
    match &r.leaf.backend {
        Backend::Ram(b) | Backend::RamDevice(b) => {
            if is_write && r.readonly && !attrs.debug {
                Target::Dropped
            } else {
                Target::Direct(b)
            }
        }
        _ if attrs.memory => Target::Refused,
        Backend::RomDevice(b, _) if r.romd && (!is_write || attrs.debug) => Target::Direct(b),
        _ => Device::of(&r.leaf).map_or(Target::Dropped, Target::Device),
    }
}

/// What the next piece of an access at `addr` hits.
enum Piece<'v> {
    /// Nothing mapped, for this many bytes (up to the next range or 2^64).
    Hole(u128),
    /// Range `r`, at `off` inside its region, with `avail` bytes left in the range.
    Range { r: &'v FlatRange, off: u64, avail: u128 },
}

#[inline]
fn piece<'v>(view: &'v FlatView, mru: &mut Mru, addr: u64) -> Piece<'v> {
    match view.find_own(addr, mru) {
        Some(own) => own_piece(view, mru, own.range(), addr),
        None => past_own(view, mru, addr),
    }
}

/// The piece at `addr` in the view's own range `range` (the one its search found).
#[inline]
fn own_piece<'v>(view: &'v FlatView, mru: &mut Mru, range: Option<&'v FlatRange>, addr: u64) -> Piece<'v> {
    match range {
        Some(r) => in_range(r, addr),
        None => past_own(view, mru, addr),
    }
}

/// The piece at `addr` once the view's own ranges missed (without searching them again).
#[inline]
fn past_own<'v>(view: &'v FlatView, mru: &mut Mru, addr: u64) -> Piece<'v> {
    match view.find_past_own(addr, mru) {
        Some(r) => in_range(r, addr),
        None => Piece::Hole(view.next_start(addr) - u128::from(addr)),
    }
}

/// The piece at `addr` of range `r`, which holds it.
#[inline]
fn in_range(r: &FlatRange, addr: u64) -> Piece<'_> {
    Piece::Range {
        r,
        off: r.offset + (addr - r.start),
        avail: u128::from(r.last - addr) + 1,
    }
}

/// Reads `buf.len()` bytes at `addr`.
pub(crate) fn read(view: &FlatView, mru: &mut Mru, addr: u64, buf: &mut [u8], attrs: MemTxAttrs) -> MemTxResult {
    let mut result = MemTxResult::OK;
    let mut pos = 0;
    while pos < buf.len() {
        let rest = buf.len() - pos;
        let Ok(a) = u64::try_from(u128::from(addr) + pos as u128) else {
            buf[pos..].fill(0); // past 2^64
            return result | MemTxResult::DECODE_ERROR;
        };
        let n = match piece(view, mru, a) {
            Piece::Hole(len) => {
                let n = len.min(rest as u128) as usize;
                buf[pos..pos + n].fill(0);
                result |= MemTxResult::DECODE_ERROR;
                n
            }
            Piece::Range { r, off, avail } => {
                let in_range = avail.min(rest as u128) as usize;
                match target(r, false, attrs) {
                    Target::Direct(block) if block.read(off, &mut buf[pos..pos + in_range]) => in_range,
                    Target::Device(dev) => {
                        // Device pieces may run past the range end (QEMU does not clamp them).
                        let l = piece_size(dev.rules, rest, off);
                        let (v, res) = dispatch_read(dev, off, l, Endianness::Little, attrs);
                        buf[pos..pos + l as usize].copy_from_slice(&v.to_le_bytes()[..l as usize]);
                        result |= res;
                        l as usize
                    }
                    other => {
                        buf[pos..pos + in_range].fill(0);
                        result |= match other {
                            Target::Refused => MemTxResult::ACCESS_ERROR,
                            _ => MemTxResult::DECODE_ERROR,
                        };
                        in_range
                    }
                }
            }
        };
        pos += n;
    }
    result
}

/// Writes `buf` at `addr`.
pub(crate) fn write(view: &FlatView, mru: &mut Mru, addr: u64, buf: &[u8], attrs: MemTxAttrs) -> MemTxResult {
    let mut result = MemTxResult::OK;
    let mut pos = 0;
    while pos < buf.len() {
        let rest = buf.len() - pos;
        let Ok(a) = u64::try_from(u128::from(addr) + pos as u128) else {
            return result | MemTxResult::DECODE_ERROR;
        };
        let n = match piece(view, mru, a) {
            Piece::Hole(len) => {
                result |= MemTxResult::DECODE_ERROR;
                len.min(rest as u128) as usize
            }
            Piece::Range { r, off, avail } => {
                let in_range = avail.min(rest as u128) as usize;
                match target(r, true, attrs) {
                    Target::Direct(block) if block.write(off, &buf[pos..pos + in_range]) => {
                        if !r.dirty.is_empty() {
                            block.dirty.mark(off, in_range as u64, r.dirty);
                        }
                        in_range
                    }
                    Target::Device(dev) => {
                        let l = piece_size(dev.rules, rest, off) as usize;
                        let mut bytes = [0u8; 8];
                        bytes[..l].copy_from_slice(&buf[pos..pos + l]);
                        let v = u64::from_le_bytes(bytes);
                        result |= dispatch_write(dev, off, v, l as u32, Endianness::Little, attrs);
                        l
                    }
                    // ROM, read-only ranges, reservations: the write is dropped.
                    other => {
                        result |= match other {
                            Target::Refused => MemTxResult::ACCESS_ERROR,
                            _ => MemTxResult::DECODE_ERROR,
                        };
                        in_range
                    }
                }
            }
        };
        pos += n;
    }
    result
}

#[inline]
pub(crate) fn from_bytes<T: Scalar>(bytes: [u8; 8], order: Endianness) -> T {
    let v = u64::from_le_bytes(bytes);
    T::from_u64(match order {
        Endianness::Little => v,
        Endianness::Big => crate::read::mmio::bswap(v, T::SIZE as u32),
    })
}

#[inline]
pub(crate) fn to_bytes<T: Scalar>(value: T, order: Endianness) -> [u8; 8] {
    let v = value.to_u64();
    match order {
        Endianness::Little => v,
        Endianness::Big => crate::read::mmio::bswap(v, T::SIZE as u32),
    }
    .to_le_bytes()
}

/// Loads a `T` at `addr` in byte order `order`.
#[inline]
pub(crate) fn load<T: Scalar>(
    view: &FlatView,
    mru: &mut Mru,
    addr: u64,
    order: Endianness,
    attrs: MemTxAttrs,
) -> (T, MemTxResult) {
    // RAM through the view's direct windows; anything else with the range found on the way.
    let found = match view.find_own(addr, mru) {
        Some(own) => match own.load(addr, T::SIZE) {
            Some(bytes) => return (from_bytes(bytes, order), MemTxResult::OK),
            None => own_piece(view, mru, own.range(), addr),
        },
        None => past_own(view, mru, addr),
    };
    if let Piece::Range { r, off, avail } = found {
        match target(r, false, attrs) {
            Target::Direct(block) => {
                let mut bytes = [0u8; 8];
                if avail >= T::SIZE as u128 && block.read(off, &mut bytes[..T::SIZE]) {
                    return (from_bytes(bytes, order), MemTxResult::OK);
                }
            }
            Target::Device(dev) => {
                let (v, res) = dispatch_read(dev, off, T::SIZE as u32, order, attrs);
                return (T::from_u64(v), res);
            }
            _ => {}
        }
    }
    let mut bytes = [0u8; 8];
    let res = read(view, mru, addr, &mut bytes[..T::SIZE], attrs);
    (from_bytes(bytes, order), res)
}

/// Stores `value` at `addr` in byte order `order`.
#[inline]
pub(crate) fn store<T: Scalar>(
    view: &FlatView,
    mru: &mut Mru,
    addr: u64,
    value: T,
    order: Endianness,
    attrs: MemTxAttrs,
) -> MemTxResult {
    let bytes = to_bytes(value, order);
    let found = match view.find_own(addr, mru) {
        Some(own) if own.store(addr, &bytes, T::SIZE) => return MemTxResult::OK,
        Some(own) => own_piece(view, mru, own.range(), addr),
        None => past_own(view, mru, addr),
    };
    if let Piece::Range { r, off, avail } = found {
        match target(r, true, attrs) {
            Target::Direct(block) if avail >= T::SIZE as u128 && block.write(off, &bytes[..T::SIZE]) => {
                if !r.dirty.is_empty() {
                    block.dirty.mark(off, T::SIZE as u64, r.dirty);
                }
                return MemTxResult::OK;
            }
            Target::Device(dev) => {
                return dispatch_write(dev, off, value.to_u64(), T::SIZE as u32, order, attrs);
            }
            _ => {}
        }
    }
    write(view, mru, addr, &bytes[..T::SIZE], attrs)
}
