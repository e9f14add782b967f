//! [`Accessor`]: a vCPU's (or device thread's) handle for reading and writing one address
//! space at full speed.
//!
//! It keeps a counted reference to the view it last used plus the index of the last range
//! it hit (QEMU's MRU section). Before each access it revalidates the view with one atomic
//! load; a repeated access to the same range then costs a bounds check. Each access sees
//! one view from start to end: never a mix of two layouts, and never freed memory, because
//! the view it holds keeps every RAM block and device it shows alive.
//!
//! An accessor does not keep its address space alive: once the space is destroyed, it sees
//! the empty view (every access is a decode error). It does keep its cached view alive until
//! its next access, so device models must not store one (see [`crate::RegionOps`]).

use std::sync::Arc;

use crate::base::access::{Endianness, MemTxAttrs, MemTxResult};
use crate::base::addr::{GuestAddr, RegionOffset};
use crate::read::dispatch::{self, Scalar};
use crate::read::publish::{Cached, SpaceCell};
use crate::view::flatview::{FlatRange, FlatView, Mru};

/// Fast access to one address space for one thread. Create one per vCPU thread with
/// [`crate::AddressSpace::accessor`]; it is `Send`, so it may move between threads, but its
/// methods take `&mut self`.
///
/// ```
/// use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory};
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let ram = mem.ram("ram", 0x1000)?;
/// mem.add_subregion(system, 0x1000, ram)?;
/// let space = mem.address_space("memory", system)?;
/// let mut cpu = space.accessor();
/// let attrs = MemTxAttrs::default();
/// assert_eq!(cpu.store(GuestAddr(0x1004), 0xdead_beef_u32, Endianness::Little, attrs), MemTxResult::OK);
/// assert_eq!(cpu.load::<u16>(GuestAddr(0x1006), Endianness::Little, attrs), (0xdead, MemTxResult::OK));
/// // Nothing is mapped at 0: the read is zero and says so.
/// assert_eq!(cpu.load::<u32>(GuestAddr(0), Endianness::Little, attrs), (0, MemTxResult::DECODE_ERROR));
/// # Ok::<(), addrspace::Error>(())
/// ```
pub struct Accessor {
    space: Arc<SpaceCell>,
    view: Cached<FlatView>,
    mru: Mru,
}

impl Accessor {
    pub(crate) fn new(space: Arc<SpaceCell>) -> Accessor {
        let view = space.cached();
        Accessor {
            space,
            view,
            mru: Mru::EMPTY,
        }
    }

    /// The current view (revalidated) and the last-hit cache that goes with it.
    #[inline]
    fn parts(&mut self) -> (&FlatView, &mut Mru) {
        if self.space.refresh(&mut self.view) {
            self.mru = Mru::EMPTY;
        }
        (&self.view.value, &mut self.mru)
    }

    /// The view this accessor will use for its next access.
    pub fn view(&mut self) -> &Arc<FlatView> {
        self.parts();
        &self.view.value
    }

    /// The range containing `addr` and the offset inside its region (cached lookup).
    #[inline]
    pub fn lookup(&mut self, addr: GuestAddr) -> Option<(&FlatRange, RegionOffset)> {
        let (view, mru) = self.parts();
        let r = view.find(addr.0, mru)?;
        Some((r, RegionOffset(r.offset + (addr.0 - r.start))))
    }

    /// Reads `buf.len()` bytes at `addr`, across ranges. Unassigned bytes read as zero.
    pub fn read(&mut self, addr: GuestAddr, buf: &mut [u8], attrs: MemTxAttrs) -> MemTxResult {
        let (view, mru) = self.parts();
        dispatch::read(view, mru, addr.0, buf, attrs)
    }

    /// Writes `buf` at `addr`, across ranges.
    pub fn write(&mut self, addr: GuestAddr, buf: &[u8], attrs: MemTxAttrs) -> MemTxResult {
        let (view, mru) = self.parts();
        dispatch::write(view, mru, addr.0, buf, attrs)
    }

    /// Loads a `u8`, `u16`, `u32` or `u64` at `addr` in byte order `order`.
    #[inline]
    pub fn load<T: Scalar>(&mut self, addr: GuestAddr, order: Endianness, attrs: MemTxAttrs) -> (T, MemTxResult) {
        let (view, mru) = self.parts();
        dispatch::load(view, mru, addr.0, order, attrs)
    }

    /// Stores a `u8`, `u16`, `u32` or `u64` at `addr` in byte order `order`.
    #[inline]
    pub fn store<T: Scalar>(&mut self, addr: GuestAddr, value: T, order: Endianness, attrs: MemTxAttrs) -> MemTxResult {
        let (view, mru) = self.parts();
        dispatch::store(view, mru, addr.0, value, order, attrs)
    }
}
