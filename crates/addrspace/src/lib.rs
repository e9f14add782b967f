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
//! Layers, bottom-up (dependencies point one way):
//! [`access`] (device ops and access rules) → [`ram`] (host memory) → [`region`] (region
//! kinds) → `graph` (the mutable tree; [`cycle`]: aliases into their own ancestors, and the
//! check that refuses the cycles QEMU could not render) → `render` → [`flatview`] (`layer`: per-CPU views that
//! borrow a shared view's ranges) → `patch` (windowed view
//! updates, QEMU's diff) → `commit` (scoped commits, listener delivery) → [`memory`]
//! (transactions, publication; [`listener`] and [`dirty`] logging) → [`address_space`] →
//! [`cpu`] (CPUs, clusters, their spaces' lifecycle), [`tlb`], [`dma`] → [`mtree`] (QEMU's
//! `info mtree` text, in and out) → [`board`] (TOML board descriptions, CPU clusters).
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
pub use crate::machine::address_space::{AddressSpace, WeakAddressSpace};
pub use crate::machine::memory::{Memory, Transaction, WeakMemory};
pub use crate::machine::Machine;
pub use crate::model::region::{Backend, Leaf, RegionId, RegionInfo, RegionKind, SIZE_2_64};
pub use crate::read::accessor::Accessor;
pub use crate::read::dispatch::Scalar;
pub use crate::view::flatview::{FlatRange, FlatView, Ranges, RangesIter};
pub use crate::write::commit::CommitMode;
pub use crate::write::listener::{IoEventFd, ListenerHandle, MemoryListener, Section};
