//! A TCG-style software TLB: what an emulator's vCPU caches about an address space, and the
//! listener that tells it when to forget.
//!
//! The [`TlbListener`] is registered on one of a CPU's address spaces; its `commit` — called
//! only when that space's view changed, since commits are scoped — requests a flush (QEMU's
//! `tcg_commit` queues `tlb_flush` on the vCPU). The [`SoftTlb`] belongs to the vCPU thread:
//! page-granular entries for RAM filled on a miss through the CPU's [`Accessor`], flushed when
//! a flush was requested *or* when the accessor finds a newer view (whichever it sees first),
//! so a hit always answers from the view a direct lookup would use.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::base::access::{Endianness, MemTxAttrs, MemTxResult};
use crate::base::addr::GuestAddr;
use crate::base::ram::RamBlock;
use crate::machine::address_space::AddressSpace;
use crate::read::accessor::Accessor;
use crate::read::dispatch::{from_bytes, to_bytes, Scalar};
use crate::write::listener::MemoryListener;

/// Number of TLB entries (direct-mapped by page number).
pub const TLB_ENTRIES: usize = 256;
/// Page size of TLB entries.
pub const TLB_PAGE: u64 = 4096;

/// Listens on one address space for a CPU and counts the flushes it requests.
#[derive(Debug, Default)]
pub struct TlbListener {
    flush_requests: AtomicU64,
}

impl TlbListener {
    /// Flushes requested so far (one per commit that changed the space's view).
    pub fn flush_requests(&self) -> u64 {
        self.flush_requests.load(Ordering::Acquire)
    }
}

impl MemoryListener for TlbListener {
    fn name(&self) -> &str {
        "tcg"
    }
    fn wants_sections(&self) -> bool {
        false
    }
    fn commit(&self) {
        self.flush_requests.fetch_add(1, Ordering::Release);
    }
}

#[derive(Clone)]
struct Entry {
    page: u64,
    block: Arc<RamBlock>,
    /// Block offset of the page's first byte.
    offset: u64,
    writable: bool,
}

/// Hit, miss and flush counts of a [`SoftTlb`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TlbStats {
    /// Accesses answered from the TLB.
    pub hits: u64,
    /// Accesses that went through the address space.
    pub misses: u64,
    /// Flushes done.
    pub flushes: u64,
}

/// A vCPU's TLB for one address space.
pub struct SoftTlb {
    accessor: Accessor,
    listener: Arc<TlbListener>,
    seen_requests: u64,
    /// Address of the view the entries came from (an identity tag, never dereferenced, so
    /// the TLB does not keep an old view alive).
    filled_from: usize,
    entries: Vec<Option<Entry>>,
    stats: TlbStats,
}

impl SoftTlb {
    /// A TLB over `space`, flushed on `listener`'s requests (see [`crate::machine::cpu::Cpu::tlb_listener`]).
    pub fn new(space: &AddressSpace, listener: Arc<TlbListener>) -> SoftTlb {
        SoftTlb {
            accessor: space.accessor(),
            seen_requests: listener.flush_requests(),
            listener,
            filled_from: 0,
            entries: vec![None; TLB_ENTRIES],
            stats: TlbStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> TlbStats {
        self.stats
    }

    fn flush(&mut self) {
        self.entries.iter_mut().for_each(|e| *e = None);
        self.stats.flushes += 1;
    }

    /// Flushes if a flush was requested or the space published a newer view.
    fn validate(&mut self) {
        let requests = self.listener.flush_requests();
        let view = Arc::as_ptr(self.accessor.view()) as usize;
        if requests != self.seen_requests || view != self.filled_from {
            self.seen_requests = requests;
            self.filled_from = view;
            self.flush();
        }
    }

    /// The entry for `addr`'s page, filled on a miss when the page is plain RAM.
    fn entry(&mut self, addr: u64) -> Option<&Entry> {
        let page = addr / TLB_PAGE;
        let slot = (page % TLB_ENTRIES as u64) as usize;
        if self.entries[slot].as_ref().is_some_and(|e| e.page == page) {
            self.stats.hits += 1;
            return self.entries[slot].as_ref();
        }
        self.stats.misses += 1;
        let base = page * TLB_PAGE;
        let (r, off) = self.accessor.lookup(GuestAddr(base))?;
        // Only whole pages of RAM without dirty logging are cached (QEMU marks the rest
        // TLB_MMIO / TLB_NOTDIRTY and takes the slow path every time).
        let block = match r.leaf().backend() {
            crate::model::region::Backend::Ram(b) => b.clone(),
            _ => return None,
        };
        if u128::from(r.last().0) < u128::from(base) + u128::from(TLB_PAGE) - 1 || !r.dirty_log_mask().is_empty() {
            return None;
        }
        let writable = !r.readonly();
        self.entries[slot] = Some(Entry {
            page,
            block,
            offset: off.0,
            writable,
        });
        self.entries[slot].as_ref()
    }

    /// Loads a value at `addr`: from the TLB when its page is cached RAM (the whole access
    /// within the page), else through the address space.
    pub fn load<T: Scalar>(&mut self, addr: GuestAddr, order: Endianness, attrs: MemTxAttrs) -> (T, MemTxResult) {
        self.validate();
        let in_page = addr.0 % TLB_PAGE + T::SIZE as u64 <= TLB_PAGE;
        if in_page {
            if let Some(e) = self.entry(addr.0) {
                let mut bytes = [0u8; 8];
                if e.block.read(e.offset + addr.0 % TLB_PAGE, &mut bytes[..T::SIZE]) {
                    return (from_bytes(bytes, order), MemTxResult::OK);
                }
            }
        }
        self.accessor.load(addr, order, attrs)
    }

    /// Stores a value at `addr` (cached writable RAM directly, else through the space).
    pub fn store<T: Scalar>(&mut self, addr: GuestAddr, value: T, order: Endianness, attrs: MemTxAttrs) -> MemTxResult {
        self.validate();
        let in_page = addr.0 % TLB_PAGE + T::SIZE as u64 <= TLB_PAGE;
        if in_page {
            if let Some(e) = self.entry(addr.0) {
                if e.writable {
                    let bytes = to_bytes(value, order);
                    if e.block.write(e.offset + addr.0 % TLB_PAGE, &bytes[..T::SIZE]) {
                        return MemTxResult::OK;
                    }
                }
            }
        }
        self.accessor.store(addr, value, order, attrs)
    }
}
