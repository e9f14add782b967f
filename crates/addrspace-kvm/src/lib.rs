//! # addrspace-kvm
//!
//! A KVM accelerator for [`addrspace`], built the way QEMU's KVM accelerator is: KVM listens on
//! the system address space only (its RAM ranges become memslots), while every vCPU keeps its
//! own address spaces, through which its MMIO and port-I/O exits are dispatched.
//!
//! It is its own crate so that the core builds and tests without `/dev/kvm` or the KVM crates.
//!
//! ```no_run
//! use addrspace_kvm::Kvm;
//!
//! match Kvm::open() {
//!     Ok(kvm) => println!("KVM API {}", kvm.api_version()),
//!     Err(e) if e.is_unavailable() => println!("no KVM here: {e}"),
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod error;
pub mod guest;
mod ioeventfd;
mod memslots;
mod system;
pub mod vcpu;
mod vm;

pub use error::{Error, Result};
pub use memslots::{MemSlots, SlotInfo, SlotStats, UpdateFence};
pub use system::Kvm;
pub use vm::Vm;
