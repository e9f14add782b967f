//! Fuzz target `dispatch`: random region topologies, random accesses, random topology
//! changes, every access checked against a naive byte-by-byte model.
//!
//! The model keeps a plain shadow of every RAM block (RAM, ROM, RAM devices, ROM devices)
//! and of every device's register file. For each access it takes the view the access uses
//! (`AddressSpace::view()` / `Accessor::view()` right before it), resolves every byte with
//! `FlatView::lookup`, and computes the exact bytes, result and device callbacks from the
//! shadows: RAM is read/written directly, read-only RAM drops non-debug writes with
//! DECODE_ERROR, holes and reservations read as zero with DECODE_ERROR, bytes past 2^64 are
//! unassigned, device pieces follow QEMU's `memory_access_size` / `access_valid` /
//! `access_with_adjusted_size` rules (and are not clamped to their range). After every access
//! the whole of every RAM block (including the page-rounding tail) is compared with its
//! shadow, and every register file with its model: nothing outside the addressed bytes may
//! change. Any panic (in the library or in an assertion here) is a crash.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use addrspace::memory::WeakMemory;
use addrspace::ram::RamBlock;
use addrspace::{
    AccessRules, Accessor, AddressSpace, Endianness, FlatRange, FlatView, GuestAddr, MemTxAttrs, MemTxResult, Memory,
    RegionId, RegionOps, SizeRule, Transaction, SIZE_2_64,
};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// Replaying a corpus with `DISPATCH_STATS=1` prints running totals of what the inputs did
/// (to judge how much of the model the fuzzer actually reaches).
mod stats {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    pub static INPUTS: AtomicU64 = AtomicU64::new(0);
    pub static ACCESSES: AtomicU64 = AtomicU64::new(0);
    pub static RAM_BYTES_READ: AtomicU64 = AtomicU64::new(0);
    pub static RAM_BYTES_WRITTEN: AtomicU64 = AtomicU64::new(0);
    pub static RO_BYTES_DROPPED: AtomicU64 = AtomicU64::new(0);
    pub static HOLE_BYTES: AtomicU64 = AtomicU64::new(0);
    pub static DEVICE_PIECES: AtomicU64 = AtomicU64::new(0);
    pub static DEVICE_CALLS: AtomicU64 = AtomicU64::new(0);
    pub static DEVICE_INVALID: AtomicU64 = AtomicU64::new(0);
    pub static MUTATIONS_OK: AtomicU64 = AtomicU64::new(0);
    pub static MUTATIONS_ERR: AtomicU64 = AtomicU64::new(0);
    pub static REMAPS: AtomicU64 = AtomicU64::new(0);
    pub static RULES_REFUSED: AtomicU64 = AtomicU64::new(0);
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }
    pub fn print() {
        if std::env::var_os("DISPATCH_STATS").is_none() {
            return;
        }
        let g = |c: &AtomicU64| c.load(Relaxed);
        eprintln!(
            "stats: inputs {} accesses {} ram-read {} ram-written {} ro-dropped {} hole {} dev-pieces {} dev-calls {} dev-invalid {} mutations ok {} err {} remaps in callbacks {} rules refused {}",
            g(&INPUTS), g(&ACCESSES), g(&RAM_BYTES_READ), g(&RAM_BYTES_WRITTEN), g(&RO_BYTES_DROPPED), g(&HOLE_BYTES),
            g(&DEVICE_PIECES), g(&DEVICE_CALLS), g(&DEVICE_INVALID), g(&MUTATIONS_OK), g(&MUTATIONS_ERR), g(&REMAPS), g(&RULES_REFUSED)
        );
    }
}

const MAX_REGIONS: usize = 12;
const MAX_OPS: usize = 256;
/// Register files are at most this long; other device offsets read 0 and ignore writes.
const REGS_MAX: u128 = 256;

mod device;
mod input;
mod model;
mod ops;
mod run;
mod world;
use device::*;
use input::*;
use run::*;
use world::*;

fuzz_target!(|input: Input| {
    run(&input);
});
