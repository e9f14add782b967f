//! # addrspace
//!
//! QEMU-grade guest address spaces for emulators and virtual machine monitors.
//!
//! A machine's memory is a graph of *regions* — RAM, ROM, ROM devices, MMIO with callbacks,
//! containers and aliases — that overlap by priority. Each [`AddressSpace`] is a view of one
//! root region; the library renders it into an immutable [`FlatView`] with exactly QEMU's
//! precedence rules, shares one view between spaces whose roots simplify to the same region,
//! and publishes it to readers without locks. Changes are grouped in [`Transaction`]s; the
//! outermost commit updates only the views that can see a change, and tells the
//! [`MemoryListener`]s of the spaces whose view changed, in QEMU's order.
//!
//! The source is in layer folders, bottom-up; each uses only the layers before it, and no two
//! modules use each other (`tests/layering.rs` checks both; `ARCHITECTURE.md` is the map):
//!
//! 1. `base` — addresses, [`access`] rules and device ops, [`error`]s, [`stats`], [`ram`]
//!    blocks, [`dirty`] logs, ioeventfds, [`limits`];
//! 2. `model` — the writer's data: [`region`]s, the region graph (with [`cycle`]: aliases into
//!    their own ancestors, and the check that refuses what QEMU could not render), structural
//!    sharing;
//! 3. `view` — [`flatview`] (ranges, lookup index, layered per-CPU views), rendering, splicing
//!    changed windows, diffs between views;
//! 4. `read` — what a vCPU runs: publication cells, the [`accessor`], dispatch, MMIO rules;
//! 5. `write` — the state behind the topology lock, commit planning, [`listener`]s and
//!    delivery;
//! 6. [`machine`] — the [`memory`] facade and its transactions, [`address_space`]s, [`cpu`]s
//!    and clusters, the soft [`tlb`], [`dma`] devices;
//! 7. `io` — [`mtree`] (QEMU's `info mtree` text, in and out), [`board`] files, the
//!    [`vm_memory`] adapter.
//!
//! The public paths stay flat (`addrspace::flatview`, `addrspace::memory`, ...): this file
//! only declares the layers and re-exports.
//!
//! ```
//! use addrspace::{mtree, Memory};
//!
//! let mem = Memory::new();
//! let system = mem.container("system", 1 << 64)?;
//! let ram = mem.ram("pc.ram", 0x2000_0000)?;
//! let low = mem.alias("ram-below-4g", ram, 0, 0x2000_0000)?;
//! mem.add_subregion(system, 0, low)?;
//! let _memory = mem.address_space("memory", system)?;
//! let text = mtree::print_flat(&mem, &mtree::FlatOptions::default());
//! assert!(text.contains("0000000000000000-000000001fffffff (prio 0, ram): pc.ram"));
//! # Ok::<(), addrspace::Error>(())
//! ```
#![warn(missing_docs)]
// A `pub` type reachable from the API must be nameable (re-exported from a public module):
// a type of a private module in a public field or signature is a warning, and CI denies it.
#![warn(unnameable_types)]

mod base;
mod io;
pub mod machine;
mod model;
mod read;
mod view;
mod write;

// The public module paths of the crate, whatever layer folder holds them.
pub use crate::base::{access, addr, dirty, error, limits, ram, stats};
pub use crate::io::{board, mtree, vm_memory};
pub use crate::machine::{address_space, cpu, dma, memory, tlb};
pub use crate::model::graph::cycle;
pub use crate::model::region;
pub use crate::read::accessor;
pub use crate::view::flatview;
pub use crate::write::listener;

pub use crate::base::access::{
    AccessRules, Endianness, MemTxAttrs, MemTxResult, OpenBus, RegionOps, SizeRule, Unassigned,
};
pub use crate::base::addr::{GuestAddr, RegionOffset};
pub use crate::base::dirty::{DirtyClient, DirtyMask};
pub use crate::base::error::{Error, Result};
pub use crate::base::stats::Stats;
pub use crate::io::load_error::LoadError;
pub use crate::machine::address_space::{AddressSpace, WeakAddressSpace};
pub use crate::machine::handles::{Coalescing, DirtyLogging, IoEventFds};
pub use crate::machine::memory::{Memory, Transaction, WeakMemory};
pub use crate::machine::Machine;
pub use crate::model::region::{Backend, Leaf, RegionId, RegionInfo, RegionKind, SIZE_2_64};
pub use crate::read::accessor::Accessor;
pub use crate::read::dispatch::Scalar;
pub use crate::view::flatview::{FlatRange, FlatView, Ranges, RangesIter};
pub use crate::write::commit::CommitMode;
pub use crate::write::listener::{IoEventFd, ListenerHandle, MemoryListener, Section};
