//! CPU realize/unrealize with every `CpuView` kind, clusters (plug, unplug, re-plug, slot
//! errors, an asymmetric zcu102-like machine), RAII unplug under a concurrent reader, the
//! TLB listener's flush counts, and the DMA engine's lifecycle. All deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread;
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;
use common::cpus::{smm, SMRAM};

use addrspace::cpu::{Cluster, Cpu, CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder, PerCpuRoot};
use addrspace::dma::{DmaDevice, DMA_MAX_LEN};
use addrspace::mtree::{self, FlatOptions};
use addrspace::ram::RamBlock;
use addrspace::{
    AddressSpace, Backend, Endianness, Error, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId, RegionOps,
    SIZE_2_64,
};

mod board;
mod clusters;
mod dma;
mod raii;
mod tlb;
mod views;
use board::*;
