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

/// The per-client dirty bitmaps of one RAM block.
#[derive(Debug)]
pub(crate) struct DirtyLog {
    pages: u64,
    clients: [OnceLock<Box<[AtomicU64]>>; 3],
}

impl DirtyLog {
    pub fn new(len: usize) -> DirtyLog {
        DirtyLog {
            pages: (len as u64).div_ceil(DIRTY_PAGE_SIZE),
            clients: Default::default(),
        }
    }

    fn bitmap(&self, client: usize) -> &[AtomicU64] {
        self.clients[client].get_or_init(|| (0..self.pages.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
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
                let w = &words[(page / 64) as usize];
                // A plain load first: re-dirtying a dirty page (the common case) stays a read.
                if w.load(Ordering::Relaxed) & bit == 0 {
                    w.fetch_or(bit, Ordering::Relaxed);
                }
            }
        }
    }

    /// Block offsets of the dirty pages of `client` in `[offset, offset + len)`; with
    /// `clear`, those bits are cleared atomically as they are read.
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
            let bits = if clear {
                words[wi].fetch_and(!span, Ordering::Relaxed)
            } else {
                words[wi].load(Ordering::Relaxed)
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
        let log = DirtyLog::new(0x100_000);
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
        let log = DirtyLog::new(130 * 4096 + 1); // 131 pages
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
