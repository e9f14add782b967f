//! The two kinds of address, kept apart by the type system: an absolute guest address in an
//! address space ([`GuestAddr`]) and an offset inside one region ([`RegionOffset`]).
//!
//! # Why not vm-memory's `GuestAddress`
//!
//! Decided for issue 12 (and not changed across the whole API now): the public API keeps its
//! own [`GuestAddr`], and converts to and from vm-memory's `GuestAddress` for free (`From`
//! both ways, below).
//!
//! * **Most positions the mutators take are not guest addresses.** `add_subregion(container,
//!   addr, child)` and `set_address` place a region at an offset *inside its container*,
//!   `alias` and `set_alias_offset` take an offset inside the target, dirty logging and
//!   coalescing take offsets inside a region. Only a root's view gives absolute addresses.
//!   Typing those as `GuestAddress` would say the wrong thing; they take a [`RegionOffset`]
//!   (`impl Into<RegionOffset>`: a plain `u64` converts, so `add_subregion(sys, 0x1000, ram)`
//!   stays as short as it was).
//! * **Sizes reach 2^64**, which no `u64` (vm-memory's `GuestUsize`) holds; sizes stay
//!   `u128` (a region of the whole 64-bit space is common: QEMU's `system` container).
//! * **No version coupling in the core**: vm-memory is at 0.x; if our core types *were* its
//!   types, every vm-memory release would break our API and users pinned to another version
//!   would get type mismatches. vm-memory stays at the adapter boundary
//!   ([`crate::vm_memory`]), which takes and returns `GuestAddress`.
//!
//! What readers use — accesses, lookups, views — takes [`GuestAddr`] already.
//!
//! ```
//! use addrspace::GuestAddr;
//! use vm_memory::GuestAddress;
//!
//! let a = GuestAddr::from(GuestAddress(0x1000));
//! assert_eq!(a, GuestAddr(0x1000));
//! assert_eq!(GuestAddress::from(a), GuestAddress(0x1000));
//! ```

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

impl From<u64> for RegionOffset {
    fn from(v: u64) -> RegionOffset {
        RegionOffset(v)
    }
}

impl From<::vm_memory::GuestAddress> for GuestAddr {
    fn from(a: ::vm_memory::GuestAddress) -> GuestAddr {
        GuestAddr(a.0)
    }
}

impl From<GuestAddr> for ::vm_memory::GuestAddress {
    fn from(a: GuestAddr) -> ::vm_memory::GuestAddress {
        ::vm_memory::GuestAddress(a.0)
    }
}

/// Serialises a `u64` as a `0x`-prefixed hex string (JSON numbers lose precision past 2^53).
pub(crate) fn hex<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}

/// [`hex`] for sizes, which reach 2^64.
pub(crate) fn hex128<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:#x}"))
}
