//! Layered per-CPU views ([`FlatView::base`]) under churn, through the public API only.
//!
//! An M-profile CPU's root — `container(2^64) { alias of system prio -1; nvic; systick prio 1 }`
//! — is rendered as its private windows over the system view. These tests drive such CPUs
//! (plugged into a [`Cluster`]) while system memory, the CPUs and their private devices change:
//!
//! 1. `churn_keeps_no_old_views_and_leaks_nothing`: 32 CPUs, 16 system devices, 5 000 steps
//!    (device moves/adds/removes, CPU unplug + re-plug, private device toggles) with two
//!    reader threads reading through the CPUs' accessors; every 250 steps and at the end the
//!    live flat views are exactly those the topology needs (no layered view keeps an old
//!    system view alive), and at the end tracked heap bytes are back at their baseline.
//! 2. `churn_keeps_every_cpu_view_equal_to_a_fresh_render`: the same churn without readers;
//!    after every step a sample of CPUs' views equal a fresh flat render (dirty masks and
//!    lookups too), are layered over the system space's *current* view, and the live view
//!    count is exact.
//! 3. `moving_ram_under_layered_readers_is_linearizable`: a writer moves a RAM region between
//!    four places while readers read through per-CPU (layered) accessors, a layered CPU's
//!    software TLB and system's accessor; every access is explained by one layout no older
//!    than the last one committed before it began, and after each burst of moves (stop the
//!    world) every reader sees exactly the last layout.
//! 4. `listeners_on_layered_spaces_replay_to_the_current_view`: recording listeners on CPU
//!    spaces and on system; their region_add/region_del/log_start/log_stop replayed onto an
//!    empty map equal the space's current ranges after every step.
//! 5. `shared_smm_views_stay_layered_over_the_current_system_view`: x86 SMM roots, which share
//!    one layered view between CPUs, through hot-plug of the representative CPU and SMRAM
//!    toggles: equal to a fresh render, layered over the current system view, shared.
//! 6. `cpu_views_follow_the_borrowed_view_through_its_space_lifetime`: the only space over
//!    system created and destroyed, and the commit mode flipped, under the same churn.
//!
//! `recreating_the_system_space_keeps_no_old_system_views` (ignored) reproduces a retention
//! bug: layered views keep borrowing the view of a destroyed space over system after a new
//! one is created, up to one old system view per CPU.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Instant;

use addrspace::cpu::{Cluster, Cpu, CpuModel, CpuSpaceSpec, CpuView, PerCpuBuilder, PerCpuRoot};
use addrspace::tlb::{SoftTlb, TlbListener, TlbStats};
use addrspace::{
    Accessor, AddressSpace, CommitMode, DirtyClient, DirtyMask, Endianness, FlatView, GuestAddr, ListenerHandle,
    MemTxAttrs, MemTxResult, Memory, MemoryListener, RegionId, RegionOps, Section, SIZE_2_64,
};

#[path = "../common/mod.rs"]
mod common;
use common::counting::{live_bytes, track_this_thread, Counting};
use common::Rng;

#[global_allocator]
static GLOBAL: Counting = Counting;

mod board;
mod borrowed;
mod helpers;
mod leaks;
mod linearizable;
mod listeners;
mod renders;
mod smm;
use board::*;
use helpers::*;
