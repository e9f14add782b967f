//! Interop with rust-vmm's [`vm-memory`](https://docs.rs/vm-memory/0.18) 0.18 traits.
//!
//! Much of the rust-vmm ecosystem — virtio queues and devices, vhost-user backends, kernel
//! loaders — accesses guest memory only through vm-memory's traits, never through a
//! concrete type. This module lets those crates work on the RAM of an [`AddressSpace`]
//! without copying it and without a second source of truth for the memory map:
//!
//! - [`GuestRam`] is an immutable snapshot of an address space's RAM, built from one
//!   [`FlatView`]: one [`GuestRamRegion`] per RAM or ROM [`FlatRange`] (backend
//!   [`Backend::Ram`]), at the range's guest address and pointing at the bytes of its RAM
//!   block that the range shows (so an alias at a different guest address or offset is
//!   followed exactly as the flat view says). MMIO, ROM devices, RAM devices, reservations
//!   and holes are not part of it: vm-memory accesses there fail with an error. Adjacent
//!   ranges stay separate regions; vm-memory splits accesses that span them.
//!   It implements [`GuestMemory`], so vm-memory's blanket impl provides
//!   [`Bytes<GuestAddress>`](Bytes) (`read_obj`, `write_obj`, `load`, `store`, ...); its
//!   regions as a [`GuestMemoryBackend`] are [`GuestRam::map`]. An access that would run past
//!   2^64 is refused instead of continuing at guest address 0 as vm-memory's walk over a
//!   backend does (see [`GuestRamMap`]).
//! - [`GuestRamSpace`] wraps an [`AddressSpace`] as a [`GuestAddressSpace`]: each
//!   [`memory()`](GuestAddressSpace::memory) call returns a snapshot of the *current* layout
//!   (reused while the layout does not change), which is what devices that live across
//!   memory hot-plug want.
//!
//! A snapshot owns its [`FlatView`] and every region owns its [`RamBlock`]: the host
//! memory behind a [`VolatileSlice`] handed to vm-memory cannot be unmapped while the
//! snapshot is in use, even if the region is removed and deleted in the meantime (accesses
//! then reach the old memory, exactly as a reader still holding the old view would).
//!
//! Two differences from [`AddressSpace::read`]/[`write`](AddressSpace::write) follow from
//! vm-memory's model of guest memory as plain host memory:
//!
//! - vm-memory 0.18's backend interface has no read-only regions (its blanket
//!   [`GuestMemory`] impl ignores the requested [`Permissions`](::vm_memory::Permissions)),
//!   so writes through vm-memory reach ROM ranges like a loader's debug write
//!   ([`MemTxAttrs::DEBUG`](crate::MemTxAttrs::DEBUG)) does. Check
//!   [`GuestRamRegion::readonly`] where a guest must not be able to change ROM by DMA.
//! - Accesses are direct memory accesses: no [`MemTxAttrs`](crate::MemTxAttrs), no device
//!   callbacks, and no partial success reported as zero bytes — a read or write that runs
//!   off RAM stops there and vm-memory reports how far it got (or an error).
//!
//! Writes are dirty-logged like [`AddressSpace::write`]: each region's vm-memory bitmap is a
//! [`RamDirtyBitmap`] that marks the written pages for the dirty-logging clients its range had
//! when the snapshot was taken (a [`GuestRamSpace`] takes a new snapshot when logging changes).
//!
//! ```
//! use addrspace::vm_memory::GuestRam;
//! use addrspace::{GuestAddr, MemTxAttrs, Memory};
//! use vm_memory::{Bytes, GuestAddress};
//!
//! let mem = Memory::new();
//! let system = mem.container("system", 1 << 64)?;
//! let ram = mem.ram("ram", 0x1_0000)?;
//! mem.add_subregion(system, 0x10_0000, ram)?;
//! let space = mem.address_space("memory", system)?;
//!
//! let guest = GuestRam::from_space(&space);
//! guest.write_obj(0x1234_5678_u32, GuestAddress(0x10_0010)).unwrap();
//! let mut bytes = [0u8; 4];
//! assert!(space.read(GuestAddr(0x10_0010), &mut bytes, MemTxAttrs::default()).is_ok());
//! assert_eq!(u32::from_le_bytes(bytes), 0x1234_5678);
//! assert!(guest.read_obj::<u32>(GuestAddress(0)).is_err()); // nothing mapped there
//! # Ok::<(), addrspace::Error>(())
//! ```

use std::fmt;
use std::sync::{Arc, Weak};

use ::vm_memory::bitmap::{Bitmap, BS};
use ::vm_memory::{
    Address, GuestAddress, GuestAddressSpace, GuestMemoryBackend, GuestMemoryError, GuestMemoryRegion,
    GuestMemoryRegionBytes, GuestMemoryResult, GuestUsize, MemoryRegionAddress, VolatileSlice,
};
#[cfg(doc)]
use ::vm_memory::{Bytes, GuestMemory};
use parking_lot::Mutex;

use crate::base::addr::RegionOffset;
use crate::base::ram::RamBlock;
use crate::machine::address_space::{AddressSpace, WeakAddressSpace};
use crate::model::region::{Backend, RegionId};
use crate::view::flatview::{FlatRange, FlatView};

mod bitmap;
mod walk;
pub use bitmap::{RamDirtyBitmap, RamDirtySlice};
pub use walk::GuestRamMap;

/// One RAM or ROM [`FlatRange`] of a [`GuestRam`] snapshot, as a vm-memory
/// [`GuestMemoryRegion`].
///
/// It owns the view it was taken from and the RAM block it shows, so the host memory stays
/// mapped for as long as the region (or a slice borrowed from it) exists.
///
/// ```
/// use addrspace::vm_memory::GuestRam;
/// use addrspace::Memory;
/// use vm_memory::{Bytes, GuestAddress, GuestMemoryRegion, MemoryRegionAddress};
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let ram = mem.ram("ram", 0x2000)?;
/// let window = mem.alias("window", ram, 0x1000, 0x1000)?;
/// mem.add_subregion(system, 0x8000, window)?;
/// let space = mem.address_space("memory", system)?;
///
/// let guest = GuestRam::from_space(&space);
/// let region = guest.find_region(GuestAddress(0x8000)).unwrap();
/// assert_eq!((region.start_addr(), region.len()), (GuestAddress(0x8000), 0x1000));
/// assert_eq!(region.name(), "ram");
/// assert_eq!(region.offset_in_region().0, 0x1000); // the alias's offset into `ram`
/// region.write_obj(7u8, MemoryRegionAddress(4)).unwrap();
/// assert_eq!(guest.read_obj::<u8>(GuestAddress(0x8004)).unwrap(), 7);
/// # Ok::<(), addrspace::Error>(())
/// ```
#[derive(Clone)]
pub struct GuestRamRegion {
    view: Arc<FlatView>,
    /// Index of the range in `view.ranges()`.
    index: usize,
    block: Arc<RamBlock>,
    /// Marks what vm-memory writes for the range's dirty-logging clients.
    dirty: RamDirtyBitmap,
    /// Where the range's first byte is in `block`.
    block_offset: usize,
    pub(crate) start: u64,
    /// Never zero; `block_offset + len <= block.len()` (checked when the region is built).
    pub(crate) len: u64,
}

impl GuestRamRegion {
    /// The region for `view.ranges()[index]`, if that range is RAM or ROM.
    fn new(view: &Arc<FlatView>, index: usize) -> Option<GuestRamRegion> {
        let range = view.ranges().get(index)?;
        let Backend::Ram(block) = range.leaf().backend() else {
            return None;
        };
        let block_offset = usize::try_from(range.offset_in_region().0).ok()?;
        // Rendering keeps RAM ranges inside their block; clip defensively all the same, so
        // that the bounds every slice relies on are established here, in one place.
        let in_block = block.len().checked_sub(block_offset)?;
        let len = u64::try_from(range.size().min(in_block as u128)).ok()?;
        (len > 0).then(|| GuestRamRegion {
            view: view.clone(),
            index,
            block: block.clone(),
            dirty: RamDirtyBitmap::new(block.clone(), block_offset as u64, range.dirty),
            block_offset,
            start: range.start().0,
            len,
        })
    }

    /// The flat range this region was built from.
    pub fn flat_range(&self) -> &FlatRange {
        self.view
            .ranges()
            .get(self.index)
            .expect("a region's index is in its view")
    }

    /// The memory region (RAM or ROM) that handles this range.
    pub fn region(&self) -> RegionId {
        self.flat_range().region()
    }

    /// That region's name.
    pub fn name(&self) -> &str {
        self.flat_range().name()
    }

    /// Offset of the first byte inside [`region`](Self::region) (non-zero through an
    /// alias with an offset, or for the upper part of a partly covered region).
    pub fn offset_in_region(&self) -> RegionOffset {
        self.flat_range().offset_in_region()
    }

    /// Whether the range is read-only (ROM, or RAM through a read-only alias). vm-memory
    /// writes are not refused here; see the [module documentation](self).
    pub fn readonly(&self) -> bool {
        self.flat_range().readonly()
    }

    /// The host memory behind the region.
    pub fn ram_block(&self) -> &Arc<RamBlock> {
        &self.block
    }

    /// Host address of byte `offset` of the region, if `offset` is inside it.
    fn host_addr(&self, offset: u64) -> Option<*mut u8> {
        (offset < self.len).then(|| self.block.host_ptr().wrapping_add(self.block_offset + offset as usize))
    }
}

impl GuestMemoryRegion for GuestRamRegion {
    type B = RamDirtyBitmap;

    fn len(&self) -> GuestUsize {
        self.len
    }

    fn start_addr(&self) -> GuestAddress {
        GuestAddress(self.start)
    }

    fn bitmap(&self) -> BS<'_, RamDirtyBitmap> {
        self.dirty.slice_at(0)
    }

    fn get_host_address(&self, addr: MemoryRegionAddress) -> GuestMemoryResult<*mut u8> {
        self.host_addr(addr.raw_value())
            .ok_or(GuestMemoryError::InvalidBackendAddress)
    }

    fn get_slice(
        &self,
        offset: MemoryRegionAddress,
        count: usize,
    ) -> GuestMemoryResult<VolatileSlice<'_, BS<'_, RamDirtyBitmap>>> {
        let end = offset
            .raw_value()
            .checked_add(count as u64)
            .ok_or(GuestMemoryError::InvalidBackendAddress)?;
        if end > self.len {
            return Err(GuestMemoryError::InvalidBackendAddress);
        }
        let bitmap = self.dirty.slice_at(offset.raw_value() as usize);
        self.block
            .volatile_slice_with(self.block_offset as u64 + offset.raw_value(), count, bitmap)
            .ok_or(GuestMemoryError::InvalidBackendAddress)
    }
}

/// `Bytes<MemoryRegionAddress>` for the region comes from vm-memory's default impl over
/// [`get_slice`](GuestMemoryRegion::get_slice): the region is plain memory.
impl GuestMemoryRegionBytes for GuestRamRegion {}

impl fmt::Debug for GuestRamRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:#x}, {:#x}) {} {} @{:#x}",
            self.start,
            u128::from(self.start) + u128::from(self.len),
            if self.readonly() { "rom" } else { "ram" },
            self.name(),
            self.offset_in_region().0
        )
    }
}

/// A snapshot of the RAM of one flat view, as a vm-memory [`GuestMemory`] (and so
/// [`Bytes<GuestAddress>`](Bytes)); [`map`](Self::map) is its [`GuestMemoryBackend`].
///
/// The snapshot does not follow later changes of the address space; build a new one (or
/// use [`GuestRamSpace`]) to see them.
///
/// ```
/// use addrspace::vm_memory::GuestRam;
/// use addrspace::{GuestAddr, MemTxAttrs, Memory};
/// use vm_memory::{Bytes, GuestAddress};
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let low = mem.ram("low", 0x1000)?;
/// let high = mem.ram("high", 0x1000)?;
/// mem.add_subregion(system, 0, low)?;
/// mem.add_subregion(system, 0x1000, high)?;
/// let space = mem.address_space("memory", system)?;
///
/// let guest = GuestRam::from_space(&space);
/// assert_eq!(guest.num_regions(), 2);
/// // One access may span both regions.
/// guest.write_obj(0x1122_3344_5566_7788_u64, GuestAddress(0xffc)).unwrap();
/// assert_eq!(guest.read_obj::<u64>(GuestAddress(0xffc)).unwrap(), 0x1122_3344_5566_7788);
/// let mut b = [0u8; 1];
/// assert!(space.read(GuestAddr(0x1000), &mut b, MemTxAttrs::default()).is_ok());
/// assert_eq!(b[0], 0x44);
/// # Ok::<(), addrspace::Error>(())
/// ```
#[derive(Clone)]
pub struct GuestRam {
    view: Arc<FlatView>,
    pub(crate) map: GuestRamMap,
}

impl GuestRam {
    /// The RAM and ROM ranges of `view`.
    pub fn new(view: Arc<FlatView>) -> GuestRam {
        let regions = (0..view.ranges().len())
            .filter_map(|i| GuestRamRegion::new(&view, i))
            .collect();
        GuestRam {
            view,
            map: GuestRamMap { regions },
        }
    }

    /// The RAM and ROM ranges of `space`'s current view.
    pub fn from_space(space: &AddressSpace) -> GuestRam {
        GuestRam::new(space.view())
    }

    /// The view this snapshot was built from.
    pub fn view(&self) -> &Arc<FlatView> {
        &self.view
    }

    /// The regions, sorted by guest address.
    pub fn regions(&self) -> &[GuestRamRegion] {
        &self.map.regions
    }

    /// Number of regions.
    pub fn num_regions(&self) -> usize {
        self.map.regions.len()
    }

    /// The region that contains `addr`.
    pub fn find_region(&self, addr: GuestAddress) -> Option<&GuestRamRegion> {
        self.map.find_region(addr)
    }

    /// The regions, sorted by guest address.
    pub fn iter(&self) -> impl Iterator<Item = &GuestRamRegion> {
        self.map.regions.iter()
    }

    /// The regions as a vm-memory [`GuestMemoryBackend`] (also its
    /// [`physical_memory`](GuestMemory::physical_memory)).
    pub fn map(&self) -> &GuestRamMap {
        &self.map
    }
}

impl fmt::Debug for GuestRam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestRam")
            .field("root", &self.view.root_name())
            .field("regions", &self.map.regions)
            .finish()
    }
}

/// An [`AddressSpace`] as a vm-memory [`GuestAddressSpace`]: [`memory()`] returns a
/// [`GuestRam`] snapshot of the space's current view, so a device that keeps this handle
/// sees RAM that is added, moved or removed later.
///
/// Consecutive calls share one snapshot while the view does not change (it is cached
/// weakly, so an unused snapshot does not keep old memory alive).
///
/// [`memory()`]: GuestAddressSpace::memory
///
/// ```
/// use addrspace::vm_memory::GuestRamSpace;
/// use addrspace::Memory;
/// use std::sync::Arc;
/// use vm_memory::{Bytes, GuestAddress, GuestAddressSpace};
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let space = mem.address_space("memory", system)?;
/// let guest = GuestRamSpace::new(&space);
/// assert!(guest.memory().read_obj::<u16>(GuestAddress(0x4000)).is_err());
///
/// let ram = mem.ram("hotplug", 0x1000)?;
/// mem.add_subregion(system, 0x4000, ram)?; // the next snapshot shows it
/// let snapshot = guest.memory();
/// snapshot.write_obj(0xabcd_u16, GuestAddress(0x4000)).unwrap();
/// assert!(Arc::ptr_eq(&snapshot, &guest.memory())); // unchanged layout: same snapshot
/// # Ok::<(), addrspace::Error>(())
/// ```
///
/// It does not keep the address space alive, so a device model may hold one (see
/// [`crate::RegionOps`]): it follows the space's published view, which is the empty view
/// once the space is destroyed.
#[derive(Clone)]
pub struct GuestRamSpace {
    space: WeakAddressSpace,
    cell: Arc<crate::read::publish::SpaceCell>,
    cache: Arc<Mutex<Weak<GuestRam>>>,
}

impl GuestRamSpace {
    /// Follows `space` (without keeping it alive).
    pub fn new(space: &AddressSpace) -> GuestRamSpace {
        GuestRamSpace {
            space: space.downgrade(),
            cell: space.cell().clone(),
            cache: Arc::new(Mutex::new(Weak::new())),
        }
    }

    /// The address space, if it still exists.
    pub fn address_space(&self) -> Option<AddressSpace> {
        self.space.upgrade()
    }
}

impl GuestAddressSpace for GuestRamSpace {
    type M = GuestRam;
    type T = Arc<GuestRam>;

    fn memory(&self) -> Arc<GuestRam> {
        let view = self.cell.load();
        let mut cache = self.cache.lock();
        // A live cached snapshot holds its view, so a pointer match cannot be a freed view's
        // address reused by a new one.
        if let Some(ram) = cache.upgrade() {
            if Arc::ptr_eq(&ram.view, &view) {
                return ram;
            }
        }
        let ram = Arc::new(GuestRam::new(view));
        *cache = Arc::downgrade(&ram);
        ram
    }
}

impl fmt::Debug for GuestRamSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuestRamSpace").finish_non_exhaustive()
    }
}
