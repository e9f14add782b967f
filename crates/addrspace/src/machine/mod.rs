//! The machine layer: the [`Memory`](memory::Memory) facade, address spaces, CPUs and
//! clusters, the soft TLB and DMA devices — what a VMM holds — and [`Machine`], a memory
//! system together with the address spaces that keep it alive.
//!
//! (The root re-exports these modules: `addrspace::memory` is `addrspace::machine::memory`.)

pub mod address_space;
pub(crate) mod assembly;
pub mod cpu;
pub mod dma;
pub mod handles;
pub(crate) mod listen;
pub mod memory;
pub(crate) mod regions;
pub mod tlb;

pub use assembly::Machine;
