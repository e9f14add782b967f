//! A trace-driven CPU with a software TLB (`addrspace::tlb::SoftTlb`), checked access by
//! access against direct `AddressSpace` loads and stores: first single-threaded, with the same
//! topology changes applied to a twin board that only sees direct accesses; then with a
//! writer thread changing the topology while reader threads run their TLBs, checked exactly
//! in stop-the-world phases and, during the changes, by a linearizability check on a window
//! whose every mapping is recognisable.

use std::fmt::Debug;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Instant;

use addrspace::cpu::{Cpu, CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder, PerCpuRoot};
use addrspace::tlb::{SoftTlb, TlbStats};
use addrspace::{
    AccessRules, AddressSpace, DirtyClient, Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId,
    RegionOps, Scalar, SizeRule, SIZE_2_64,
};

#[path = "../common/mod.rs"]
mod common;
use common::Rng;

mod board;
mod concurrent;
mod single;
mod trace;
use board::*;
use trace::*;
