//! Host memory behind RAM, ROM and ROM-device regions.
//!
//! A [`RamBlock`] is an anonymous private mapping made with `MAP_NORESERVE`: the kernel
//! commits pages only when they are first touched, so a 4 GiB or 1 TiB guest RAM region
//! costs address space, not memory, until the guest uses it. Blocks are shared through
//! `Arc`, so a flat view that still points at a block keeps it mapped after the region is
//! deleted; the mapping goes away with the last reference.
//!
//! This module holds the crate's only `unsafe` code for host memory: every access is
//! bounds-checked against the block before it touches the mapping.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `MAP_NORESERVE` only changes overcommit accounting; Miri's mmap shim does not take it.
#[cfg(not(miri))]
const NORESERVE: libc::c_int = libc::MAP_NORESERVE;
#[cfg(miri)]
const NORESERVE: libc::c_int = 0;

/// Number of live RAM blocks in the process (for leak tests).
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

/// A host mapping backing guest RAM.
#[derive(Debug)]
pub struct RamBlock {
    ptr: NonNull<u8>,
    len: usize,
    /// Dirty pages per logging client.
    pub(crate) dirty: crate::dirty::DirtyLog,
}

// SAFETY: the block is a plain memory mapping with no thread affinity; concurrent guest
// accesses to guest RAM are racy by nature, exactly as in a real machine, and every access
// goes through raw-pointer copies (never `&`/`&mut` references to the bytes).
unsafe impl Send for RamBlock {}
// SAFETY: see `Send`: shared access only ever copies bytes through raw pointers.
unsafe impl Sync for RamBlock {}

impl RamBlock {
    /// Reserves `len` bytes of zeroed, lazily committed host memory.
    pub fn new(len: usize) -> std::io::Result<RamBlock> {
        if len == 0 {
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
            return Ok(RamBlock {
                ptr: NonNull::dangling(),
                len: 0,
                dirty: crate::dirty::DirtyLog::new(0),
            });
        }
        // SAFETY: an anonymous private mapping with a null hint aliases no existing memory;
        // the result is checked for MAP_FAILED before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        Ok(RamBlock {
            // SAFETY: mmap succeeded, so `p` is non-null.
            ptr: unsafe { NonNull::new_unchecked(p.cast()) },
            len,
            dirty: crate::dirty::DirtyLog::new(len),
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Host address of the first byte (for accelerators that map guest memory).
    pub fn host_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Copies bytes at `offset` into `buf`; `false` (and nothing copied) if out of bounds.
    #[inline]
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        match self.check(offset, buf.len()) {
            Some(off) => {
                // SAFETY: `check` proved `off + buf.len() <= self.len`, the mapping is live
                // while `self` is, and `buf` cannot overlap a mapping we own privately.
                unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), buf.as_mut_ptr(), buf.len()) };
                true
            }
            None => false,
        }
    }

    /// Copies `buf` to `offset`; `false` (and nothing written) if out of bounds.
    #[inline]
    pub fn write(&self, offset: u64, buf: &[u8]) -> bool {
        match self.check(offset, buf.len()) {
            Some(off) => {
                // SAFETY: as in `read`; the mapping is writable (PROT_WRITE).
                unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.ptr.as_ptr().add(off), buf.len()) };
                true
            }
            None => false,
        }
    }

    /// `len` bytes at `offset` as a vm-memory [`VolatileSlice`](vm_memory::VolatileSlice) borrowing the block (for the
    /// [`crate::vm_memory`] adapter); `None` if out of bounds.
    pub fn volatile_slice(&self, offset: u64, len: usize) -> Option<vm_memory::VolatileSlice<'_, ()>> {
        let off = self.check(offset, len)?;
        // SAFETY: `VolatileSlice::new` needs `len` bytes at the pointer that stay valid for
        // the slice's lifetime and that everybody else accesses without references.
        // - Bounds: `check` proved `off + len <= self.len`.
        // - Lifetime: the slice borrows `self`; the mapping is only unmapped in `drop`.
        // - Aliasing: nothing in this crate makes `&`/`&mut` references to guest RAM; it is
        //   only copied through raw pointers, and other users (vCPUs, accelerators, other
        //   slices) access the same bytes concurrently as shared guest memory — the contract
        //   vm-memory's own mmap backend has with a running guest.
        Some(unsafe { vm_memory::VolatileSlice::new(self.ptr.as_ptr().add(off), len) })
    }

    #[inline]
    fn check(&self, offset: u64, len: usize) -> Option<usize> {
        let off = usize::try_from(offset).ok()?;
        (off.checked_add(len)? <= self.len).then_some(off)
    }

    /// Number of RAM blocks alive in this process.
    pub fn live_count() -> usize {
        LIVE_BLOCKS.load(Ordering::Relaxed)
    }
}

impl Drop for RamBlock {
    fn drop(&mut self) {
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
        if self.len != 0 {
            // SAFETY: `ptr`/`len` describe a mapping created in `new` and not unmapped since;
            // no reference to it can outlive `self`.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg_attr(miri, ignore = "Miri backs mappings with real allocations; 1 TiB does not fit")]
    fn huge_block_is_lazy_and_usable() {
        let b = RamBlock::new(1 << 40).expect("1 TiB NORESERVE mapping");
        assert!(b.write((1 << 40) - 4, &[1, 2, 3, 4]));
        let mut out = [0u8; 4];
        assert!(b.read((1 << 40) - 4, &mut out));
        assert_eq!(out, [1, 2, 3, 4]);
        assert!(!b.read((1 << 40) - 3, &mut out), "straddles the end");
        assert!(!b.write(u64::MAX, &[0]), "offset overflow");
    }

    #[test]
    fn small_block_bounds_and_contents() {
        let b = RamBlock::new(4096).unwrap();
        let mut out = [0xffu8; 8];
        assert!(b.read(0, &mut out));
        assert_eq!(out, [0; 8], "fresh memory is zeroed");
        assert!(b.write(4088, &[7; 8]));
        assert!(b.read(4088, &mut out));
        assert_eq!(out, [7; 8]);
        assert!(!b.write(4089, &[0; 8]), "one byte past the end");
        assert!(!b.read(u64::MAX - 3, &mut out));
        assert!(b.read(4096, &mut []), "empty access at the end");
        let shared = std::sync::Arc::new(b);
        let other = shared.clone();
        std::thread::spawn(move || assert!(other.write(0, &[1, 2, 3])))
            .join()
            .unwrap();
        assert!(shared.read(0, &mut out[..3]));
        assert_eq!(&out[..3], &[1, 2, 3]);
    }

    #[test]
    fn empty_block() {
        let b = RamBlock::new(0).unwrap();
        assert!(b.is_empty());
        assert!(b.read(0, &mut []));
        assert!(!b.read(0, &mut [0]));
    }
}
