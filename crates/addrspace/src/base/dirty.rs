//! Dirty logging: which pages of guest RAM were written, per client.
//!
//! QEMU tracks dirty pages for three clients — VGA (display refresh), CODE (TCG's
//! self-modifying-code detection) and MIGRATION — in per-client bitmaps of target pages. A
//! flat range carries the *effective* mask of its region (the region's own clients plus the
//! global ones), computed when the view is rendered; every write through the address-space
//! API to a range with a non-zero mask sets the bits of the pages it touched, for exactly the
//! clients in the mask. A client's bitmap is allocated the first time one of its pages is
//! marked, so RAM that is never logged costs nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Size of the pages the dirty bitmaps count (QEMU's usual `TARGET_PAGE_SIZE`).
pub const DIRTY_PAGE_SIZE: u64 = 4096;

/// A dirty-logging client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirtyClient {
    /// Display refresh (`DIRTY_MEMORY_VGA`).
    Vga = 0,
    /// Translated-code invalidation (`DIRTY_MEMORY_CODE`).
    Code = 1,
    /// Live migration (`DIRTY_MEMORY_MIGRATION`).
    Migration = 2,
}

impl DirtyClient {
    /// All clients, in QEMU's numbering order.
    pub const ALL: [DirtyClient; 3] = [DirtyClient::Vga, DirtyClient::Code, DirtyClient::Migration];

    /// The mask with only this client.
    pub fn mask(self) -> DirtyMask {
        DirtyMask(1 << self as u8)
    }

    /// The client's name: `vga`, `code` or `migration`.
    pub fn name(self) -> &'static str {
        match self {
            DirtyClient::Vga => "vga",
            DirtyClient::Code => "code",
            DirtyClient::Migration => "migration",
        }
    }
}

/// A set of dirty-logging clients (QEMU's `dirty_log_mask`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DirtyMask(pub(crate) u8);

impl DirtyMask {
    /// No client.
    pub const NONE: DirtyMask = DirtyMask(0);
    /// VGA only.
    pub const VGA: DirtyMask = DirtyMask(1);
    /// CODE only.
    pub const CODE: DirtyMask = DirtyMask(2);
    /// MIGRATION only.
    pub const MIGRATION: DirtyMask = DirtyMask(4);

    /// QEMU's bit encoding (bit `n` = client `n`).
    pub fn bits(self) -> u8 {
        self.0
    }
    /// The mask of QEMU's bit encoding `bits` (bits above the known clients are dropped).
    pub fn from_bits(bits: u8) -> DirtyMask {
        DirtyMask(bits & 0b111)
    }
    /// The clients set, in QEMU's numbering order.
    pub fn clients(self) -> impl Iterator<Item = DirtyClient> {
        DirtyClient::ALL.into_iter().filter(move |&c| self.contains(c))
    }
    /// Whether no client is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Whether `client` is set.
    pub fn contains(self, client: DirtyClient) -> bool {
        self.0 & client.mask().0 != 0
    }
    /// Clients in `self` but not in `other`.
    pub fn without(self, other: DirtyMask) -> DirtyMask {
        DirtyMask(self.0 & !other.0)
    }
    /// Clients in either.
    pub fn union(self, other: DirtyMask) -> DirtyMask {
        DirtyMask(self.0 | other.0)
    }
}

/// One word of a dirty bitmap: the atomic operations [`DirtyLog`] uses, with the orderings
/// chosen by `DirtyLog` itself. The library uses std's `AtomicU64`; the model test plugs in
/// loom's, so the orderings it checks are the library's own.
pub(crate) trait BitWord: Send + Sync {
    fn zero() -> Self;
    fn load(&self, order: Ordering) -> u64;
    fn fetch_or(&self, bits: u64, order: Ordering) -> u64;
    fn fetch_and(&self, bits: u64, order: Ordering) -> u64;
}

impl BitWord for AtomicU64 {
    fn zero() -> Self {
        AtomicU64::new(0)
    }
    #[inline]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline]
    fn fetch_or(&self, bits: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_or(self, bits, order)
    }
    #[inline]
    fn fetch_and(&self, bits: u64, order: Ordering) -> u64 {
        AtomicU64::fetch_and(self, bits, order)
    }
}

/// The per-client dirty bitmaps of one RAM block.
#[derive(Debug)]
pub(crate) struct DirtyLog<W = AtomicU64> {
    pages: u64,
    clients: [OnceLock<Box<[W]>>; 3],
}

impl<W: BitWord> DirtyLog<W> {
    pub fn new(len: usize) -> Self {
        DirtyLog {
            pages: (len as u64).div_ceil(DIRTY_PAGE_SIZE),
            clients: Default::default(),
        }
    }

    fn bitmap(&self, client: usize) -> &[W] {
        self.clients[client].get_or_init(|| (0..self.pages.div_ceil(64)).map(|_| W::zero()).collect())
    }

    /// The pages `[first, last]` that `[offset, offset + len)` touches, clipped to the block.
    fn pages(&self, offset: u64, len: u64) -> Option<(u64, u64)> {
        if len == 0 || offset / DIRTY_PAGE_SIZE >= self.pages {
            return None;
        }
        let last = (offset.saturating_add(len - 1) / DIRTY_PAGE_SIZE).min(self.pages - 1);
        Some((offset / DIRTY_PAGE_SIZE, last))
    }

    /// Marks the pages of `[offset, offset + len)` dirty for every client in `mask`.
    pub fn mark(&self, offset: u64, len: u64, mask: DirtyMask) {
        let Some((first, last)) = self.pages(offset, len) else {
            return;
        };
        for c in 0..3 {
            if mask.0 & (1 << c) == 0 {
                continue;
            }
            let words = self.bitmap(c);
            for page in first..=last {
                let bit = 1u64 << (page % 64);
                // Always a read-modify-write, with Release: it pairs with the Acquire
                // take-and-clear in `collect`. A collector that clears this bit therefore sees
                // the data written before it was set; one that cleared it earlier leaves our
                // set standing (the RMWs are ordered on the word), so the page is still dirty.
                // Testing the bit first and skipping the RMW when it looks set is what QEMU
                // avoids too: the load may read a 1 that a collector is just clearing while our
                // data store still sits in the store buffer, and the write is lost.
                words[(page / 64) as usize].fetch_or(bit, Ordering::Release);
            }
        }
    }

    /// Whether the page of block offset `offset` is dirty for `client`.
    pub fn is_dirty(&self, offset: u64, client: DirtyClient) -> bool {
        let page = offset / DIRTY_PAGE_SIZE;
        page < self.pages
            && self.clients[client as usize]
                .get()
                .is_some_and(|w| w[(page / 64) as usize].load(Ordering::Acquire) & (1 << (page % 64)) != 0)
    }

    /// Block offsets of the dirty pages of `client` in `[offset, offset + len)`; with
    /// `clear`, those bits are cleared atomically as they are read. Reading a returned page
    /// afterwards sees every write that marked it (see `mark`).
    pub fn collect(&self, offset: u64, len: u64, client: DirtyClient, clear: bool) -> Vec<u64> {
        let mut out = Vec::new();
        let Some((first, last)) = self.pages(offset, len) else {
            return out;
        };
        let Some(words) = self.clients[client as usize].get() else {
            return out;
        };
        let mut page = first;
        while page <= last {
            let wi = (page / 64) as usize;
            let lo = page % 64;
            let hi = (last - page + lo).min(63);
            let span = if hi - lo == 63 {
                u64::MAX
            } else {
                ((1u64 << (hi - lo + 1)) - 1) << lo
            };
            // Acquire pairs with the Release set in `mark`: the caller's copy of a page this
            // returns sees every write that was made before the bit was set.
            let bits = if clear {
                words[wi].fetch_and(!span, Ordering::Acquire)
            } else {
                words[wi].load(Ordering::Acquire)
            } & span;
            let base = page - lo;
            let mut b = bits;
            while b != 0 {
                let i = u64::from(b.trailing_zeros());
                out.push((base + i) * DIRTY_PAGE_SIZE);
                b &= b - 1;
            }
            page = base + hi + 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_exactly_the_touched_pages_of_the_masked_clients() {
        let log = DirtyLog::<AtomicU64>::new(0x100_000);
        log.mark(0x0fff, 2, DirtyMask::VGA.union(DirtyMask::MIGRATION));
        log.mark(0x41_000, 0x1000, DirtyMask::VGA);
        assert_eq!(
            log.collect(0, 0x100_000, DirtyClient::Vga, false),
            vec![0, 0x1000, 0x41_000]
        );
        assert_eq!(
            log.collect(0, 0x100_000, DirtyClient::Migration, false),
            vec![0, 0x1000]
        );
        assert!(log.collect(0, 0x100_000, DirtyClient::Code, false).is_empty());
        // Clearing a sub-range leaves the rest.
        assert_eq!(log.collect(0x1000, 0x1000, DirtyClient::Vga, true), vec![0x1000]);
        assert_eq!(log.collect(0, 0x100_000, DirtyClient::Vga, false), vec![0, 0x41_000]);
    }

    #[test]
    fn word_boundaries_and_the_last_page() {
        let log = DirtyLog::<AtomicU64>::new(130 * 4096 + 1); // 131 pages
        log.mark(0, 131 * 4096, DirtyMask::CODE);
        let all = log.collect(0, u64::MAX, DirtyClient::Code, true);
        assert_eq!(all.len(), 131);
        assert_eq!(*all.last().unwrap(), 130 * 4096);
        assert!(log.collect(0, u64::MAX, DirtyClient::Code, false).is_empty());
        log.mark(u64::MAX - 1, 10, DirtyMask::CODE); // past the end: ignored
        log.mark(63 * 4096, 2 * 4096, DirtyMask::CODE);
        assert_eq!(
            log.collect(0, u64::MAX, DirtyClient::Code, false),
            vec![63 * 4096, 64 * 4096]
        );
    }
}

#[cfg(test)]
mod loom_model {
    //! Model check of the pairing between a writer (store guest data, then mark its page) and
    //! a migration pass (take-and-clear the page's bit, then copy the data): after the last
    //! pass, the last value written is either in the copy or its page is still marked. The
    //! data words stand for guest RAM, which the library accesses with relaxed atomics.
    use super::*;
    use loom::sync::atomic::AtomicU64 as LoomU64;
    use loom::sync::Arc;

    impl BitWord for LoomU64 {
        fn zero() -> Self {
            LoomU64::new(0)
        }
        fn load(&self, order: Ordering) -> u64 {
            LoomU64::load(self, order)
        }
        fn fetch_or(&self, bits: u64, order: Ordering) -> u64 {
            LoomU64::fetch_or(self, bits, order)
        }
        fn fetch_and(&self, bits: u64, order: Ordering) -> u64 {
            LoomU64::fetch_and(self, bits, order)
        }
    }

    const LEN: u64 = DIRTY_PAGE_SIZE;

    #[test]
    fn every_write_is_copied_or_still_marked() {
        loom::model(|| {
            let log = Arc::new(DirtyLog::<LoomU64>::new(LEN as usize));
            // Allocate the bitmap before the threads start (and leave it clean).
            log.mark(0, LEN, DirtyMask::MIGRATION);
            log.collect(0, LEN, DirtyClient::Migration, true);
            let data = Arc::new(LoomU64::new(0));
            let writer = {
                let (log, data) = (log.clone(), data.clone());
                loom::thread::spawn(move || {
                    for v in 1..=2 {
                        data.store(v, Ordering::Relaxed);
                        log.mark(0, 8, DirtyMask::MIGRATION);
                    }
                })
            };
            let mut copy = 0;
            for _ in 0..2 {
                for _page in log.collect(0, LEN, DirtyClient::Migration, true) {
                    copy = data.load(Ordering::Relaxed);
                }
            }
            writer.join().unwrap();
            let marked = !log.collect(0, LEN, DirtyClient::Migration, false).is_empty();
            assert!(
                marked || copy == 2,
                "lost write: page clean, copy holds {copy}, RAM holds 2"
            );
        });
    }
}
