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
// A `pub` type reachable from the API must be nameable (re-exported from a public module):
// a type of a private module in a public field or signature is a warning, and CI denies it.
#![warn(unnameable_types)]

pub mod access;
pub mod accessor;
pub mod addr;
pub mod address_space;
pub mod board;
mod board_cpus;
mod build_order;
mod child_index;
mod commit;
mod commit_layers;
pub mod cpu;
pub mod cycle;
mod delivery;
pub mod dirty;
mod dispatch;
pub mod dma;
pub mod error;
pub mod flatview;
mod graph;
mod idmap;
mod ioeventfd;
mod layer;
pub mod limits;
mod listen;
pub mod listener;
mod load_error;
pub mod machine;
pub mod memory;
mod mmio;
pub mod mtree;
mod patch;
mod propagate;
mod publish;
pub mod ram;
mod reentrancy;
pub mod region;
mod render;
mod sharing;
mod slots;
pub mod stats;
pub mod tlb;
pub mod vm_memory;
mod vm_memory_bitmap;
mod vm_memory_walk;

pub use access::{AccessRules, Endianness, MemTxAttrs, MemTxResult, OpenBus, RegionOps, SizeRule, Unassigned};
pub use accessor::Accessor;
pub use addr::{GuestAddr, RegionOffset};
pub use address_space::{AddressSpace, WeakAddressSpace};
pub use commit::CommitMode;
pub use dirty::{DirtyClient, DirtyMask};
pub use dispatch::Scalar;
pub use error::{Error, Result};
pub use flatview::{FlatRange, FlatView, Ranges, RangesIter};
pub use listener::{IoEventFd, ListenerHandle, MemoryListener, Section};
pub use load_error::LoadError;
pub use machine::Machine;
pub use memory::{Memory, Transaction, WeakMemory};
pub use region::{Backend, Leaf, RegionId, RegionInfo, RegionKind, SIZE_2_64};
pub use stats::Stats;
