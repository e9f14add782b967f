//! How vm-memory walks the regions of a [`GuestRam`] for one access, stopped at 2^64.
//!
//! vm-memory's walk over a [`GuestMemoryBackend`] moves to the next guest address after each
//! region, and lets that address wrap from 2^64 to 0: an 8-byte write at 2^64 − 4 writes
//! 4 bytes at the top and 4 at guest address 0, and `check_range` across 2^64 says yes. The
//! address space refuses those bytes ([`AddressSpace::write`](crate::AddressSpace::write)
//! reports a decode error for them), so [`GuestRam`] implements [`GuestMemory`] itself rather
//! than through vm-memory's blanket impl: it runs vm-memory's walk over its regions
//! ([`GuestRamMap`]) only up to 2^64, and ends it there with
//! [`GuestAddressOverflow`](GuestMemoryError::GuestAddressOverflow).

use std::iter::FusedIterator;

use ::vm_memory::bitmap::BS;
use ::vm_memory::guest_memory::{GuestMemoryBackendSliceIterator, GuestMemorySliceIterator};
use ::vm_memory::{
    GuestAddress, GuestMemory, GuestMemoryBackend, GuestMemoryError, GuestMemoryResult, Permissions, VolatileSlice,
};

use crate::io::vm_memory::{GuestRam, GuestRamRegion, RamDirtyBitmap, RamDirtySlice};

/// The regions of a [`GuestRam`] snapshot as a vm-memory [`GuestMemoryBackend`]: its
/// [`physical_memory`](GuestMemory::physical_memory).
///
/// Access guest memory through the [`GuestRam`] itself: vm-memory's own walk over a backend
/// continues at guest address 0 after 2^64 (see [`crate::io::vm_memory`]).
#[derive(Clone, Debug)]
pub struct GuestRamMap {
    /// Sorted by address, non-overlapping (as the view's ranges are).
    pub(crate) regions: Vec<GuestRamRegion>,
}

impl GuestMemoryBackend for GuestRamMap {
    type R = GuestRamRegion;

    fn num_regions(&self) -> usize {
        self.regions.len()
    }

    fn find_region(&self, addr: GuestAddress) -> Option<&GuestRamRegion> {
        let i = self.regions.partition_point(|r| r.start <= addr.0).checked_sub(1)?;
        let r = &self.regions[i];
        (addr.0 - r.start < r.len).then_some(r)
    }

    fn iter(&self) -> impl Iterator<Item = &GuestRamRegion> {
        self.regions.iter()
    }

    /// Whether all of `[base, base + len)` is in the regions; never across 2^64.
    fn check_range(&self, base: GuestAddress, len: usize) -> bool {
        u128::from(base.0) + len as u128 <= 1 << 64
            && GuestMemoryBackend::get_slices(self, base, len).all(|s| s.is_ok())
    }
}

/// The slices of one access to a [`GuestRam`]: vm-memory's walk over the part below 2^64,
/// then an overflow error if the access asked for more.
struct Slices<'a> {
    walk: GuestMemoryBackendSliceIterator<'a, GuestRamMap>,
    /// The access runs past 2^64 and the walk has not failed: report it after the walk.
    overflow: bool,
}

impl<'a> Iterator for Slices<'a> {
    type Item = GuestMemoryResult<VolatileSlice<'a, RamDirtySlice<'a>>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.walk.next() {
            Some(Ok(s)) => Some(Ok(s)),
            Some(Err(e)) => {
                self.overflow = false;
                Some(Err(e))
            }
            None if self.overflow => {
                self.overflow = false;
                Some(Err(GuestMemoryError::GuestAddressOverflow))
            }
            None => None,
        }
    }
}

/// The walk is fused and `overflow` is reported once.
impl FusedIterator for Slices<'_> {}

impl<'a> GuestMemorySliceIterator<'a, RamDirtySlice<'a>> for Slices<'a> {}

impl GuestMemory for GuestRam {
    type PhysicalMemory = GuestRamMap;
    type Bitmap = RamDirtyBitmap;

    /// Whether all of `[addr, addr + count)` is RAM or ROM of the snapshot; never across 2^64.
    /// (`access` is not checked: vm-memory writes reach ROM, see [`crate::io::vm_memory`].)
    fn check_range(&self, addr: GuestAddress, count: usize, access: Permissions) -> bool {
        self.get_slices(addr, count, access)
            .is_ok_and(|mut slices| slices.all(|s| s.is_ok()))
    }

    fn get_slices<'a>(
        &'a self,
        addr: GuestAddress,
        count: usize,
        _access: Permissions,
    ) -> GuestMemoryResult<impl GuestMemorySliceIterator<'a, BS<'a, RamDirtyBitmap>>> {
        let below_top = (1u128 << 64) - u128::from(addr.0);
        // At most `count`, so it fits a usize.
        let fits = below_top.min(count as u128) as usize;
        Ok(Slices {
            walk: GuestMemoryBackend::get_slices(&self.map, addr, fits),
            overflow: fits < count,
        })
    }

    fn physical_memory(&self) -> Option<&GuestRamMap> {
        Some(&self.map)
    }
}
