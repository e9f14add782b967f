//! Host memory behind RAM, ROM and ROM-device regions.
//!
//! A [`RamBlock`] is an anonymous private mapping made with `MAP_NORESERVE`: the kernel
//! commits pages only when they are first touched, so a 4 GiB or 1 TiB guest RAM region
//! costs address space, not memory, until the guest uses it. Blocks are shared through
//! `Arc`, so a flat view that still points at a block keeps it mapped after the region is
//! deleted; the mapping goes away with the last reference.
//!
//! This module holds the crate's only `unsafe` code for host memory: every access is
//! bounds-checked against the block before it touches the mapping, and is made of naturally
//! aligned atomic loads and stores of 1 to 8 bytes, so an aligned guest access does not tear
//! and copies racing with vCPUs are not data races.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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
    pub(crate) dirty: crate::base::dirty::DirtyLog,
}

// SAFETY: the block is a plain memory mapping with no thread affinity; concurrent guest
// accesses to guest RAM are racy by nature, exactly as in a real machine, and this crate
// only accesses the bytes through atomics of 1 to 8 bytes (never `&`/`&mut` references to
// the bytes).
unsafe impl Send for RamBlock {}
// SAFETY: see `Send`: shared access only ever goes through atomic loads and stores.
unsafe impl Sync for RamBlock {}

impl RamBlock {
    /// Reserves `len` bytes of zeroed, lazily committed host memory.
    pub fn new(len: usize) -> std::io::Result<RamBlock> {
        if len == 0 {
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
            return Ok(RamBlock {
                ptr: NonNull::dangling(),
                len: 0,
                dirty: crate::base::dirty::DirtyLog::new(0),
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
            dirty: crate::base::dirty::DirtyLog::new(len),
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
    ///
    /// The bytes are loaded in naturally aligned pieces of 1, 2, 4 or 8 bytes, each one atomic
    /// access: an aligned 1/2/4/8-byte read is a single load that a concurrent
    /// writer cannot tear.
    #[inline]
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        match self.check(offset, buf.len()) {
            Some(off) => {
                // SAFETY: `check` proved `off + buf.len() <= self.len` and the mapping is live
                // while `self` is, so every byte `pieces` touches is inside it.
                let base = unsafe { self.ptr.as_ptr().add(off) };
                pieces(base as usize, buf.len(), |at, size| {
                    let dst = &mut buf[at..at + size];
                    // SAFETY: `pieces` hands out in-bounds, `size`-aligned pieces.
                    unsafe { load_piece(base.add(at), dst) };
                });
                true
            }
            None => false,
        }
    }

    /// Copies `buf` to `offset`; `false` (and nothing written) if out of bounds. Stores are
    /// pieces as in [`read`](Self::read): an aligned 1/2/4/8-byte write is one store.
    #[inline]
    pub fn write(&self, offset: u64, buf: &[u8]) -> bool {
        match self.check(offset, buf.len()) {
            Some(off) => {
                // SAFETY: as in `read`.
                let base = unsafe { self.ptr.as_ptr().add(off) };
                pieces(base as usize, buf.len(), |at, size| {
                    // SAFETY: as in `read`; the mapping is writable (PROT_WRITE).
                    unsafe { store_piece(base.add(at), &buf[at..at + size]) };
                });
                true
            }
            None => false,
        }
    }

    /// `len` bytes at `offset` as a vm-memory [`VolatileSlice`](vm_memory::VolatileSlice) borrowing the block (for the
    /// [`crate::io::vm_memory`] adapter); `None` if out of bounds.
    pub fn volatile_slice(&self, offset: u64, len: usize) -> Option<vm_memory::VolatileSlice<'_, ()>> {
        self.volatile_slice_with(offset, len, ())
    }

    /// [`volatile_slice`](Self::volatile_slice) whose writes report to `bitmap`.
    pub(crate) fn volatile_slice_with<B: vm_memory::bitmap::BitmapSlice>(
        &self,
        offset: u64,
        len: usize,
        bitmap: B,
    ) -> Option<vm_memory::VolatileSlice<'_, B>> {
        let off = self.check(offset, len)?;
        // SAFETY: `VolatileSlice::with_bitmap` needs `len` bytes at the pointer that stay valid for
        // the slice's lifetime and that everybody else accesses without references.
        // - Bounds: `check` proved `off + len <= self.len`.
        // - Lifetime: the slice borrows `self`; the mapping is only unmapped in `drop`.
        // - Aliasing: nothing in this crate makes `&`/`&mut` references to guest RAM; it is
        //   only accessed through atomics, and other users (vCPUs, accelerators, other
        //   slices) access the same bytes concurrently as shared guest memory — the contract
        //   vm-memory's own mmap backend has with a running guest.
        Some(unsafe { vm_memory::VolatileSlice::with_bitmap(self.ptr.as_ptr().add(off), len, bitmap, None) })
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

/// Splits `len` bytes at host address `addr` into naturally aligned pieces, calling
/// `f(offset, size)` for each: the largest of 8, 4, 2, 1 that fits and that the address is
/// aligned to. An aligned 1/2/4/8-byte access is one piece; a bulk copy is 8-byte words
/// between a short head and tail. This is also what a RAM device (a VFIO BAR) needs: QEMU
/// accesses those with loads and stores of at most 8 bytes, never `memcpy`.
#[inline(always)]
fn pieces(addr: usize, len: usize, mut f: impl FnMut(usize, usize)) {
    let mut at = 0;
    let aligned = |at: usize, size: usize| (addr + at) % size == 0 && len - at >= size;
    // Head, up to the first 8-byte boundary (or the end).
    while at < len && !aligned(at, 8) {
        let size = [4, 2, 1].into_iter().find(|&s| aligned(at, s)).unwrap_or(1);
        f(at, size);
        at += size;
    }
    while len - at >= 8 {
        f(at, 8);
        at += 8;
    }
    // Tail: fewer than 8 bytes, starting 8-byte aligned.
    while at < len {
        let size = [4, 2, 1].into_iter().find(|&s| len - at >= s).unwrap_or(1);
        f(at, size);
        at += size;
    }
}

/// Loads `dst.len()` (1, 2, 4 or 8) bytes at `src` with one relaxed atomic load.
///
/// Atomic, not volatile or plain: guest RAM is shared with other threads (vCPUs, devices) that
/// access it concurrently, and only atomic accesses make that race-free in Rust's memory model.
/// Relaxed atomics compile to plain moves. Accesses of different sizes to the same bytes still
/// race in that model (it has no mixed-size atomics); the hardware gives each one single-copy
/// atomicity, which is what guests rely on.
///
/// # Safety
/// `src` is valid for reads of `dst.len()` bytes and aligned to `dst.len()`; those bytes are
/// only ever accessed atomically (or through raw-pointer copies by other users of the mapping).
#[inline(always)]
unsafe fn load_piece(src: *mut u8, dst: &mut [u8]) {
    use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8};
    // SAFETY: (all arms) the caller guarantees validity and alignment for the width read;
    // the atomic is used for this one load only.
    unsafe {
        match dst.len() {
            8 => dst.copy_from_slice(&AtomicU64::from_ptr(src.cast()).load(Ordering::Relaxed).to_ne_bytes()),
            4 => dst.copy_from_slice(&AtomicU32::from_ptr(src.cast()).load(Ordering::Relaxed).to_ne_bytes()),
            2 => dst.copy_from_slice(&AtomicU16::from_ptr(src.cast()).load(Ordering::Relaxed).to_ne_bytes()),
            _ => dst[0] = AtomicU8::from_ptr(src).load(Ordering::Relaxed),
        }
    }
}

/// Stores `src` (1, 2, 4 or 8 bytes) at `dst` with one relaxed atomic store (see
/// [`load_piece`]).
///
/// # Safety
/// As for [`load_piece`], with `dst` valid for writes.
#[inline(always)]
unsafe fn store_piece(dst: *mut u8, src: &[u8]) {
    use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8};
    // SAFETY: (all arms) the caller guarantees validity and alignment for the width written.
    unsafe {
        match src.len() {
            8 => AtomicU64::from_ptr(dst.cast()).store(u64::from_ne_bytes(src.try_into().unwrap()), Ordering::Relaxed),
            4 => AtomicU32::from_ptr(dst.cast()).store(u32::from_ne_bytes(src.try_into().unwrap()), Ordering::Relaxed),
            2 => AtomicU16::from_ptr(dst.cast()).store(u16::from_ne_bytes(src.try_into().unwrap()), Ordering::Relaxed),
            _ => AtomicU8::from_ptr(dst).store(src[0], Ordering::Relaxed),
        }
    }
}

/// Whether a [`DirectTable`] window may be read (`READ`) or written (`WRITE`) directly.
pub(crate) mod perm {
    /// Loads may copy host memory directly.
    pub const READ: u8 = 1;
    /// Stores may write host memory directly (writable RAM with no dirty logging).
    pub const WRITE: u8 = 2;
}

/// One range's direct window: guest addresses `start..=start + span` are host memory from
/// `host` on, with `perms` saying which accesses may use it. Bounds are a start and a span so
/// that "inside" is one unsigned comparison, `addr - start <= span`: a single branch, which
/// matters when a reader's last hit is as often right as wrong.
#[derive(Clone, Copy, Debug)]
struct Direct {
    start: u64,
    span: u64,
    /// Host address of `start` (null when `perms` is empty).
    host: *mut u8,
    perms: u8,
}

/// What a view tells [`DirectTable::new`] about one of its ranges, in address order.
pub(crate) struct DirectSpec<'b> {
    /// First guest address of the range.
    pub start: u64,
    /// Last guest address (inclusive).
    pub last: u64,
    /// The RAM block behind the range, the range's offset in it, and [`perm`] bits; `None`
    /// (or no bits) when every access to the range takes the slow path.
    pub ram: Option<(&'b Arc<RamBlock>, u64, u8)>,
}

/// The reader's fast path: one compact window per range of a view (32 bytes, bounds and
/// host address together), so that a load or store of RAM is a range check and one host
/// access, without going through the range's region and RAM block. The table holds a
/// reference to every block it points into, so its windows stay valid for its whole life.
pub(crate) struct DirectTable {
    entries: Box<[Direct]>,
    /// Kept as built: shrinking it would cost a reallocation per view (or chunk) built.
    _blocks: Vec<Arc<RamBlock>>,
}

// SAFETY: the windows point into blocks the table keeps alive, which are `Send` and `Sync`
// (see `RamBlock`); the table only ever accesses them through atomic loads and stores.
unsafe impl Send for DirectTable {}
// SAFETY: see `Send`.
unsafe impl Sync for DirectTable {}

impl DirectTable {
    /// One window per spec, in the same order (a window's index is its range's).
    pub(crate) fn new<'b>(specs: impl IntoIterator<Item = DirectSpec<'b>>) -> DirectTable {
        let mut blocks: Vec<Arc<RamBlock>> = Vec::new();
        let entries = specs
            .into_iter()
            .map(|s| {
                let mut d = Direct {
                    start: s.start,
                    span: s.last - s.start,
                    host: std::ptr::null_mut(),
                    perms: 0,
                };
                if let Some((block, offset, perms)) = s.ram {
                    // Direct only when the whole range lies inside the block.
                    let fits = u128::from(offset) + u128::from(s.last - s.start) < block.len as u128;
                    if fits && perms != 0 {
                        // `fits` proved `offset < block.len`, a `usize`.
                        d.host = block.ptr.as_ptr().wrapping_add(offset as usize);
                        d.perms = perms;
                        if !blocks.last().is_some_and(|b| Arc::ptr_eq(b, block)) {
                            blocks.push(block.clone());
                        }
                    }
                }
                d
            })
            .collect();
        DirectTable {
            entries,
            _blocks: blocks,
        }
    }

    /// Whether window `i` exists and contains `addr`.
    #[inline(always)]
    pub(crate) fn contains(&self, i: usize, addr: u64) -> bool {
        self.entries
            .get(i)
            .is_some_and(|d| addr.wrapping_sub(d.start) <= d.span)
    }

    /// The host address of the `size`-byte access at `addr` through window `i`, if the
    /// window allows `perm`, holds all of it, and the host address is `size`-aligned.
    #[inline(always)]
    fn host(&self, i: usize, addr: u64, size: usize, perm: u8) -> Option<*mut u8> {
        let d = self.entries.get(i)?;
        let off = addr.wrapping_sub(d.start);
        // `addr..addr + size` inside `start..=start + span`, without overflow.
        let inside = addr >= d.start && u128::from(off) + size as u128 <= u128::from(d.span) + 1;
        // Only computed (not used) when outside: `wrapping_add` keeps that defined.
        let host = d.host.wrapping_add(off as usize);
        let ok = d.perms & perm != 0 && inside && host.addr() % size == 0;
        ok.then_some(host)
    }

    /// Loads `size` (1, 2, 4 or 8) bytes at `addr` through window `i` with one atomic load,
    /// or `None` if the window does not allow it (see [`host`](Self::host)).
    #[inline(always)]
    pub(crate) fn load(&self, i: usize, addr: u64, size: usize) -> Option<[u8; 8]> {
        let src = self.host(i, addr, size, perm::READ)?;
        let mut bytes = [0u8; 8];
        // SAFETY: `host` proved `addr..addr + size` inside `start..=start + span`, which `new`
        // checked lies inside the block from `host` on; the block is alive while `self` holds
        // it; `src` is `size`-aligned.
        unsafe { load_piece(src, &mut bytes[..size]) };
        Some(bytes)
    }

    /// Stores the first `size` bytes of `bytes` at `addr` through window `i` with one atomic
    /// store; `false` if the window does not allow it.
    #[inline(always)]
    pub(crate) fn store(&self, i: usize, addr: u64, bytes: &[u8; 8], size: usize) -> bool {
        let Some(dst) = self.host(i, addr, size, perm::WRITE) else {
            return false;
        };
        // SAFETY: as in `load`; the mapping is writable.
        unsafe { store_piece(dst, &bytes[..size]) };
        true
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
    fn pieces_are_naturally_aligned_and_at_most_8_bytes() {
        let split = |addr, len| {
            let mut v = Vec::new();
            pieces(addr, len, |at, size| v.push((at, size)));
            v
        };
        assert_eq!(split(8, 8), [(0, 8)]);
        assert_eq!(split(4, 4), [(0, 4)]);
        assert_eq!(split(6, 2), [(0, 2)]);
        assert_eq!(split(5, 13), [(0, 1), (1, 2), (3, 8), (11, 2)]);
        assert_eq!(split(4, 8), [(0, 4), (4, 4)], "unaligned 8 bytes: two aligned halves");
        assert_eq!(split(0, 23), [(0, 8), (8, 8), (16, 4), (20, 2), (22, 1)]);
        assert_eq!(split(3, 0), []);
    }

    #[test]
    fn empty_block() {
        let b = RamBlock::new(0).unwrap();
        assert!(b.is_empty());
        assert!(b.read(0, &mut []));
        assert!(!b.read(0, &mut [0]));
    }
}
