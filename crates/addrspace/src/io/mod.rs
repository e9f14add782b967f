//! The io layer: text in and out of the core — board files, QEMU's `info mtree` printing and
//! import — and the adapter to rust-vmm's vm-memory traits.
//!
//! It uses the core only through the [`machine`](crate::machine) facade and the types below it.

pub mod board;
pub(crate) mod build_order;
pub mod load_error;
pub mod mtree;
pub mod vm_memory;
