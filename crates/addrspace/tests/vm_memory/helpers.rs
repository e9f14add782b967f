//! Shared helpers: access through the address space, byte patterns, a counting device.

use super::*;

pub(crate) const ATTRS: MemTxAttrs = MemTxAttrs {
    secure: false,
    user: false,
    debug: false,
    memory: false,
    requester_id: 0,
};

pub(crate) fn as_read(space: &AddressSpace, addr: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    assert_eq!(
        space.read(GuestAddr(addr), &mut buf, ATTRS),
        MemTxResult::OK,
        "read at {addr:#x}"
    );
    buf
}

pub(crate) fn as_write(space: &AddressSpace, addr: u64, buf: &[u8]) {
    assert_eq!(
        space.write(GuestAddr(addr), buf, ATTRS),
        MemTxResult::OK,
        "write at {addr:#x}"
    );
}

pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// An MMIO device that counts the accesses it sees.
#[derive(Default)]
pub(crate) struct Counter(pub(crate) AtomicU32);

impl RegionOps for Counter {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.0.fetch_add(1, Ordering::Relaxed);
        (0x5a5a_5a5a, MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        MemTxResult::OK
    }
}
