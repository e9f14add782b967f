//! The two kinds of address, kept apart by the type system: an absolute guest address in an
//! address space ([`GuestAddr`]) and an offset inside one region ([`RegionOffset`]).

use std::fmt;

/// An absolute address in an address space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GuestAddr(pub u64);

/// An offset from the start of a memory region.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RegionOffset(pub u64);

impl fmt::Debug for GuestAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuestAddr({:#x})", self.0)
    }
}

impl fmt::Debug for RegionOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionOffset({:#x})", self.0)
    }
}

/// Serialises a `u64` as a `0x`-prefixed hex string (JSON numbers lose precision past 2^53).
pub(crate) fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}
