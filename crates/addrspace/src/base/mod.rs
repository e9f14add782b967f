//! The base layer: what every other layer speaks in, and nothing that knows about regions.
//!
//! Addresses, device access rules and the [`RegionOps`](access::RegionOps) trait, the
//! core's errors, id maps, statistics counters, host RAM blocks, dirty bitmaps and
//! ioeventfds. It uses no other layer of the crate.

pub mod access;
pub mod addr;
pub mod dirty;
pub mod error;
pub(crate) mod idmap;
pub(crate) mod ioeventfd;
pub mod limits;
pub mod ram;
pub mod stats;
