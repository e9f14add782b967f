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

// ---------------------------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------------------------

#[derive(Arbitrary, Debug, Clone, Copy)]
enum SizeSel {
    Tiny(u8),
    Pages(u8),
    Odd(u16),
    Exact64K,
}

impl SizeSel {
    fn get(self) -> u128 {
        match self {
            SizeSel::Tiny(n) => u128::from(n),
            SizeSel::Pages(n) => (u128::from(n % 16) + 1) * 4096,
            SizeSel::Odd(n) => u128::from(n),
            SizeSel::Exact64K => 0x10000,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BigSize {
    Small(SizeSel),
    Big(u64),
    Pow2(u8),
    /// 2^64 - 1 bytes.
    MaxU64,
    Full,
}

impl BigSize {
    fn get(self) -> u128 {
        match self {
            BigSize::Small(s) => s.get(),
            BigSize::Big(n) => u128::from(n),
            BigSize::Pow2(k) => 1u128 << (k % 65),
            BigSize::MaxU64 => u128::from(u64::MAX),
            BigSize::Full => SIZE_2_64,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum AddrSel {
    Small(u16),
    Page(u16),
    NearTop(u16),
    Raw(u64),
    Pow2(u8, i8),
}

impl AddrSel {
    fn get(self) -> u64 {
        match self {
            AddrSel::Small(n) => u64::from(n),
            AddrSel::Page(n) => u64::from(n) << 12,
            AddrSel::NearTop(n) => u64::MAX - u64::from(n),
            AddrSel::Raw(n) => n,
            AddrSel::Pow2(k, d) => (1u64 << (k % 64)).wrapping_add(d as i64 as u64),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct DevSpec {
    vmin: u8,
    vmax: u8,
    vunaligned: bool,
    imin: u8,
    imax: u8,
    iunaligned: bool,
    big: bool,
    /// Callbacks at offsets with these low 6 bits report ERROR (but still act).
    err: Option<u8>,
    /// `accepts` refuses accesses at offsets with these low 4 bits, of one direction.
    reject: Option<u8>,
    /// A write callback at offsets with these low 6 bits (`.1`) toggles whether region `.0`
    /// is enabled, from inside the access: the rest of the access must keep its view.
    remap: Option<(u8, u8)>,
    /// Keep a minimum above the maximum as drawn (such rules must be refused at creation).
    disorder: bool,
}

/// Sizes a device may declare: the dispatchable ones (0 = undeclared) most of the time, and
/// now and then one the library must refuse when the region is created.
fn pick_size(n: u8) -> u8 {
    const GOOD: [u8; 5] = [0, 1, 2, 4, 8];
    const BAD: [u8; 7] = [3, 5, 6, 7, 16, 128, u8::MAX];
    if n < 240 {
        GOOD[usize::from(n % 5)]
    } else {
        BAD[usize::from(n % 7)]
    }
}

fn size_rule(min: u8, max: u8, unaligned: bool, disorder: bool) -> SizeRule {
    let (mut min, mut max) = (pick_size(min), pick_size(max));
    if max != 0 && min > max && !disorder {
        std::mem::swap(&mut min, &mut max);
    }
    SizeRule { min, max, unaligned }
}

/// The library's creation check, restated: sizes 0, 1, 2, 4 or 8 and min <= a declared max.
fn rule_ok(r: SizeRule) -> bool {
    let size = |s: u8| matches!(s, 0 | 1 | 2 | 4 | 8);
    size(r.min) && size(r.max) && (r.max == 0 || r.min <= r.max)
}

impl DevSpec {
    fn rules(self) -> AccessRules {
        AccessRules {
            valid: size_rule(self.vmin, self.vmax, self.vunaligned, self.disorder),
            implementation: size_rule(self.imin, self.imax, self.iunaligned, self.disorder),
            endianness: if self.big { Endianness::Big } else { Endianness::Little },
            allow_reentrancy: false,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum KindSpec {
    Ram(SizeSel),
    Rom(SizeSel),
    RamDevice(SizeSel),
    RomDevice(SizeSel, bool, DevSpec),
    Io(BigSize, DevSpec),
    Reservation(BigSize),
    Container(BigSize),
    Alias { target: u8, offset: AddrSel, size: BigSize },
}

#[derive(Arbitrary, Debug)]
struct MapSpec {
    parent: u8,
    addr: AddrSel,
    prio: i8,
}

#[derive(Arbitrary, Debug)]
struct RegionSpec {
    kind: KindSpec,
    map: Option<MapSpec>,
    readonly: bool,
    disabled: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum How {
    Space(u8),
    Accessor(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum LenSel {
    Small(u8),
    Huge(u16),
    /// Lengths no single device access has: odd, wider than 8, a page and around it.
    Awkward(u8),
}

impl LenSel {
    fn get(self) -> usize {
        match self {
            LenSel::Small(n) => usize::from(n % 65),
            LenSel::Huge(n) => usize::from(n % 4097),
            LenSel::Awkward(n) => [3, 5, 7, 9, 16, 17, 4095, 4096, 4097][usize::from(n % 9)],
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct AttrSel {
    debug: bool,
    memory: bool,
    secure: bool,
    user: bool,
    requester_id: u16,
}

impl AttrSel {
    fn get(self) -> MemTxAttrs {
        MemTxAttrs {
            secure: self.secure,
            user: self.user,
            debug: self.debug,
            memory: self.memory,
            requester_id: self.requester_id,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum AddrPick {
    RangeStart(u8, i8),
    RangeLast(u8, i8),
    NearTop(u8),
    Abs(AddrSel),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Read {
        at: AddrPick,
        len: LenSel,
        attrs: AttrSel,
        how: How,
    },
    Write {
        at: AddrPick,
        len: LenSel,
        seed: u8,
        attrs: AttrSel,
        how: How,
        readback: bool,
    },
    Load {
        at: AddrPick,
        width: u8,
        big: bool,
        attrs: AttrSel,
        how: How,
    },
    Store {
        at: AddrPick,
        width: u8,
        big: bool,
        value: u64,
        attrs: AttrSel,
        how: How,
    },
    SetAddress {
        r: u8,
        addr: AddrSel,
    },
    SetEnabled {
        r: u8,
        on: bool,
    },
    Remove {
        r: u8,
    },
    Add {
        r: u8,
        parent: u8,
        addr: AddrSel,
        prio: i8,
    },
    SetRomd {
        r: u8,
        on: bool,
    },
    SetReadonly {
        r: u8,
        on: bool,
    },
    SetPriority {
        r: u8,
        prio: i8,
    },
    SetAliasOffset {
        r: u8,
        offset: AddrSel,
    },
    SetSize {
        r: u8,
        size: BigSize,
    },
    Delete {
        r: u8,
    },
    BeginTx,
    EndTx,
    NewAccessor {
        space: u8,
    },
    Lookup {
        at: AddrPick,
        how: How,
    },
    DestroySpace,
    RecreateSpace,
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup_in_tx: bool,
    regions: Vec<RegionSpec>,
    ops: Vec<Op>,
}

fn prio(p: i8) -> i32 {
    match p {
        i8::MIN => i32::MIN,
        i8::MAX => i32::MAX,
        p => i32::from(p.rem_euclid(4)) - 1,
    }
}

// ---------------------------------------------------------------------------------------------
// The device: a byte-addressed register file in its declared byte order
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Call {
    dev: usize,
    write: bool,
    off: u64,
    size: u32,
    value: u64,
}

fn from_bytes(big: bool, b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (k, &x) in b.iter().enumerate() {
        let sh = if big { 8 * (b.len() - 1 - k) } else { 8 * k };
        v |= u64::from(x) << sh;
    }
    v
}

fn to_bytes(big: bool, v: u64, n: usize) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (k, o) in out.iter_mut().enumerate().take(n) {
        let sh = if big { 8 * (n - 1 - k) } else { 8 * k };
        *o = (v >> sh) as u8;
    }
    out
}

fn reg_index(regs: &[u8], off: u64, k: u32) -> Option<usize> {
    let o = usize::try_from(off.checked_add(u64::from(k))?).ok()?;
    (o < regs.len()).then_some(o)
}

fn regs_read(regs: &[u8], off: u64, size: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    for k in 0..size.min(8) {
        out[k as usize] = reg_index(regs, off, k).map_or(0, |i| regs[i]);
    }
    out
}

fn regs_write(regs: &mut [u8], off: u64, bytes: &[u8]) {
    for (k, &b) in bytes.iter().enumerate() {
        if let Some(i) = reg_index(regs, off, k as u32) {
            regs[i] = b;
        }
    }
}

fn dev_accepts(reject: Option<u8>, off: u64, is_write: bool) -> bool {
    match reject {
        Some(r) => !(off & 0xf == u64::from(r & 0xf) && is_write == (r & 0x10 != 0)),
        None => true,
    }
}

fn dev_err(err: Option<u8>, off: u64) -> bool {
    err.is_some_and(|e| off & 0x3f == u64::from(e & 0x3f))
}

struct RegDev {
    index: usize,
    spec: DevSpec,
    rules: AccessRules,
    regs: Mutex<Vec<u8>>,
    log: Arc<Mutex<Vec<Call>>>,
    /// Memory (weak: the device lives in it) and the region a `remap` write toggles.
    remap_target: OnceLock<(WeakMemory, RegionId)>,
}

impl RegDev {
    fn check_size(&self, size: u32) {
        assert!(
            matches!(size, 1 | 2 | 4 | 8),
            "device {} called with size {size}",
            self.index
        );
    }
}

impl RegionOps for RegDev {
    fn read(&self, off: u64, size: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.check_size(size);
        self.log.lock().unwrap().push(Call {
            dev: self.index,
            write: false,
            off,
            size,
            value: 0,
        });
        let bytes = regs_read(&self.regs.lock().unwrap(), off, size);
        let v = from_bytes(self.spec.big, &bytes[..size as usize]);
        let res = if dev_err(self.spec.err, off) {
            MemTxResult::ERROR
        } else {
            MemTxResult::OK
        };
        (v, res)
    }

    fn write(&self, off: u64, value: u64, size: u32, _: MemTxAttrs) -> MemTxResult {
        self.check_size(size);
        assert!(
            size == 8 || value >> (8 * size) == 0,
            "device {} write of size {size} with value {value:#x} wider than the access",
            self.index
        );
        self.log.lock().unwrap().push(Call {
            dev: self.index,
            write: true,
            off,
            size,
            value,
        });
        let bytes = to_bytes(self.spec.big, value, size as usize);
        regs_write(&mut self.regs.lock().unwrap(), off, &bytes[..size as usize]);
        if let (Some((_, trigger)), Some((mem, target))) = (self.spec.remap, self.remap_target.get()) {
            if off & 0x3f == u64::from(trigger & 0x3f) {
                if let Some(mem) = mem.upgrade() {
                    if let Ok(info) = mem.region_info(*target) {
                        let _ = mem.set_enabled(*target, !info.enabled);
                        stats::add(&stats::REMAPS, 1);
                    }
                }
            }
        }
        if dev_err(self.spec.err, off) {
            MemTxResult::ERROR
        } else {
            MemTxResult::OK
        }
    }

    fn rules(&self) -> AccessRules {
        self.rules
    }

    fn accepts(&self, off: u64, _size: u32, is_write: bool, _: MemTxAttrs) -> bool {
        dev_accepts(self.spec.reject, off, is_write)
    }
}

// ---------------------------------------------------------------------------------------------
// The world and the model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ram,
    RamDevice,
    RomDevice,
    Io,
    Reservation,
    Container,
    Alias,
}

struct Region {
    id: RegionId,
    kind: Kind,
    /// The largest size the region ever had (a view rendered before a shrink, still held by
    /// an open transaction's readers, may show the old size).
    size: u128,
    block: Option<Arc<RamBlock>>,
    /// Shadow of the whole RAM block (its length is the block's, page-rounded).
    shadow: Vec<u8>,
    dev: Option<Arc<RegDev>>,
    /// Model of the device's register file.
    regs: Vec<u8>,
}

struct World<'m> {
    mem: &'m Memory,
    root: RegionId,
    regions: Vec<Region>,
    by_id: HashMap<RegionId, usize>,
    /// Space 0 over the root (always alive); space 1 (if any) over the first container, which
    /// `DestroySpace` may drop while its accessor lives on.
    spaces: Vec<Option<AddressSpace>>,
    /// Root of each space.
    space_roots: Vec<RegionId>,
    accessors: Vec<Accessor>,
    log: Arc<Mutex<Vec<Call>>>,
    scratch: Vec<u8>,
    checked_views: Vec<Arc<FlatView>>,
}

/// What the model says one access does.
struct Expect {
    bytes: Vec<u8>,
    result: MemTxResult,
    calls: Vec<Call>,
}

/// `FlatView::lookup`, cross-checked against a plain binary search over `ranges()`.
fn lookup(view: &FlatView, a: u64) -> Option<(&FlatRange, u64)> {
    let ranges: Vec<&FlatRange> = view.ranges().iter().collect();
    let i = ranges.partition_point(|r| r.start().0 <= a);
    let naive = i.checked_sub(1).map(|i| ranges[i]).filter(|r| a <= r.last().0);
    let got = view.lookup(GuestAddr(a));
    match (naive, got) {
        (None, None) => None,
        (Some(n), Some((g, off))) => {
            assert!(std::ptr::eq(n, g), "lookup({a:#x}) = {g:?}, expected {n:?}");
            let want = n.offset_in_region().0 + (a - n.start().0);
            assert_eq!(off.0, want, "lookup({a:#x}) offset in {n:?}");
            Some((n, want))
        }
        (n, g) => panic!("lookup({a:#x}) = {:?}, expected {n:?}", g.map(|x| x.0)),
    }
}

/// How the model sees one flat range.
enum Class {
    /// Direct RAM access to region `idx` (read or write as decided by the caller).
    Ram {
        idx: usize,
        writable: bool,
    },
    Device(usize),
    /// Refused: `attrs.memory` and not RAM.
    NotMemory,
    /// Reservation, or RAM that a non-direct access cannot handle.
    Unassigned,
}

impl World<'_> {
    fn idx_of(&self, r: &FlatRange) -> usize {
        *self
            .by_id
            .get(&r.region())
            .unwrap_or_else(|| panic!("flat range {r:?} names an unknown region"))
    }

    /// How a read (`write == false`) or write of `r` with `attrs` is handled.
    fn classify(&self, r: &FlatRange, attrs: MemTxAttrs, write: bool) -> Class {
        let idx = self.idx_of(r);
        let kind = self.regions[idx].kind;
        let is_ram = matches!(kind, Kind::Ram | Kind::RamDevice);
        if attrs.memory && !is_ram {
            return Class::NotMemory;
        }
        match kind {
            Kind::Ram | Kind::RamDevice => Class::Ram {
                idx,
                writable: !write || !r.readonly() || attrs.debug,
            },
            Kind::RomDevice => {
                if r.romd() && (!write || attrs.debug) {
                    Class::Ram { idx, writable: true }
                } else {
                    Class::Device(idx)
                }
            }
            Kind::Io => Class::Device(idx),
            Kind::Reservation => Class::Unassigned,
            Kind::Container | Kind::Alias => panic!("flat range {r:?} of a non-terminating region"),
        }
    }

    /// QEMU's `memory_access_size`.
    fn piece_size(rules: &AccessRules, len: usize, off: u64) -> u32 {
        let mut max: u64 = if rules.valid.max == 0 {
            4
        } else {
            u64::from(rules.valid.max)
        };
        if !rules.implementation.unaligned {
            let align = off & off.wrapping_neg();
            if align != 0 && align < max {
                max = align;
            }
        }
        let l = (len as u64).min(max);
        assert!(l >= 1);
        let mut p = 1;
        while p * 2 <= l {
            p *= 2;
        }
        p as u32
    }

    /// One access of `size` bytes to device `idx` at `off`: QEMU's `access_valid` and
    /// `access_with_adjusted_size`, in memory byte order. `data`: the bytes of a write.
    fn model_device(
        &mut self,
        idx: usize,
        off: u64,
        size: u32,
        data: Option<&[u8]>,
        attrs: MemTxAttrs,
        calls: &mut Vec<Call>,
    ) -> ([u8; 8], MemTxResult) {
        let _ = attrs;
        let region = &mut self.regions[idx];
        let dev = region.dev.clone().expect("device region");
        let rules = dev.rules;
        let valid_size =
            rules.valid.max == 0 || (u32::from(rules.valid.min)..=u32::from(rules.valid.max)).contains(&size);
        let aligned = rules.valid.unaligned || off.is_multiple_of(u64::from(size));
        stats::add(&stats::DEVICE_PIECES, 1);
        if !dev_accepts(dev.spec.reject, off, data.is_some()) || !aligned || !valid_size {
            stats::add(&stats::DEVICE_INVALID, 1);
            return ([0; 8], MemTxResult::DECODE_ERROR);
        }
        let imin = u32::from(rules.implementation.min).max(1);
        let imax = if rules.implementation.max == 0 {
            4
        } else {
            u32::from(rules.implementation.max)
        };
        let chunk = size.min(imax).max(imin);
        let mut out = [0u8; 8];
        let mut result = MemTxResult::OK;
        let mut i = 0;
        while i < size {
            let o = off.wrapping_add(u64::from(i));
            if dev_err(dev.spec.err, o) {
                result |= MemTxResult::ERROR;
            }
            match data {
                Some(d) => {
                    let mut c = [0u8; 8];
                    for k in 0..chunk {
                        if i + k < size {
                            c[k as usize] = d[(i + k) as usize];
                        }
                    }
                    let c = &c[..chunk as usize];
                    regs_write(&mut region.regs, o, c);
                    calls.push(Call {
                        dev: idx,
                        write: true,
                        off: o,
                        size: chunk,
                        value: from_bytes(dev.spec.big, c),
                    });
                }
                None => {
                    let b = regs_read(&region.regs, o, chunk);
                    for k in 0..chunk {
                        if i + k < size {
                            out[(i + k) as usize] = b[k as usize];
                        }
                    }
                    calls.push(Call {
                        dev: idx,
                        write: false,
                        off: o,
                        size: chunk,
                        value: 0,
                    });
                }
            }
            i += chunk;
        }
        (out, result)
    }

    /// The byte-slice path, byte by byte: reads (`data == None`) return the expected bytes;
    /// writes update the shadows.
    fn model_bytes(
        &mut self,
        view: &FlatView,
        addr: u64,
        len: usize,
        data: Option<&[u8]>,
        attrs: MemTxAttrs,
    ) -> Expect {
        let write = data.is_some();
        let mut bytes = vec![0u8; if write { 0 } else { len }];
        let mut result = MemTxResult::OK;
        let mut calls = Vec::new();
        let mut pos = 0usize;
        while pos < len {
            let Ok(a) = u64::try_from(u128::from(addr) + pos as u128) else {
                result |= MemTxResult::DECODE_ERROR; // past 2^64: unassigned
                break;
            };
            let Some((r, off)) = lookup(view, a) else {
                stats::add(&stats::HOLE_BYTES, 1);
                result |= MemTxResult::DECODE_ERROR;
                pos += 1;
                continue;
            };
            match self.classify(r, attrs, write) {
                Class::NotMemory => {
                    result |= MemTxResult::ACCESS_ERROR;
                    pos += 1;
                }
                Class::Unassigned => {
                    result |= MemTxResult::DECODE_ERROR;
                    pos += 1;
                }
                Class::Ram { idx, writable } => {
                    let reg = &mut self.regions[idx];
                    let o = usize::try_from(off).ok().filter(|_| u128::from(off) < reg.size);
                    let o = o.unwrap_or_else(|| {
                        panic!(
                            "{r:?}: offset {off:#x} at {a:#x} outside region of size {:#x}",
                            reg.size
                        )
                    });
                    match data {
                        None => {
                            stats::add(&stats::RAM_BYTES_READ, 1);
                            bytes[pos] = reg.shadow[o]
                        }
                        Some(d) if writable => {
                            stats::add(&stats::RAM_BYTES_WRITTEN, 1);
                            reg.shadow[o] = d[pos]
                        }
                        Some(_) => {
                            stats::add(&stats::RO_BYTES_DROPPED, 1);
                            result |= MemTxResult::DECODE_ERROR
                        }
                    }
                    pos += 1;
                }
                Class::Device(idx) => {
                    let rules = self.regions[idx].dev.as_ref().unwrap().rules;
                    let l = Self::piece_size(&rules, len - pos, off);
                    let piece = data.map(|d| &d[pos..pos + l as usize]);
                    let (b, res) = self.model_device(idx, off, l, piece, attrs, &mut calls);
                    if !write {
                        bytes[pos..pos + l as usize].copy_from_slice(&b[..l as usize]);
                    }
                    result |= res;
                    pos += l as usize;
                }
            }
        }
        Expect { bytes, result, calls }
    }

    fn model_load(&mut self, view: &FlatView, addr: u64, width: u32, big: bool, attrs: MemTxAttrs) -> Expect {
        if let Some((r, off)) = lookup(view, addr) {
            if let Class::Device(idx) = self.classify(r, attrs, false) {
                let mut calls = Vec::new();
                let (b, result) = self.model_device(idx, off, width, None, attrs, &mut calls);
                let v = from_bytes(big, &b[..width as usize]);
                return Expect {
                    bytes: v.to_le_bytes().to_vec(),
                    result,
                    calls,
                };
            }
        }
        let e = self.model_bytes(view, addr, width as usize, None, attrs);
        let v = from_bytes(big, &e.bytes);
        Expect {
            bytes: v.to_le_bytes().to_vec(),
            ..e
        }
    }

    fn model_store(
        &mut self,
        view: &FlatView,
        addr: u64,
        width: u32,
        value: u64,
        big: bool,
        attrs: MemTxAttrs,
    ) -> Expect {
        let data = to_bytes(big, value, width as usize);
        let data = &data[..width as usize];
        if let Some((r, off)) = lookup(view, addr) {
            if let Class::Device(idx) = self.classify(r, attrs, true) {
                let mut calls = Vec::new();
                let (_, result) = self.model_device(idx, off, width, Some(data), attrs, &mut calls);
                return Expect {
                    bytes: Vec::new(),
                    result,
                    calls,
                };
            }
        }
        self.model_bytes(view, addr, width as usize, Some(data), attrs)
    }

    // -----------------------------------------------------------------------------------------
    // Checks
    // -----------------------------------------------------------------------------------------

    /// Structural invariants of a view, and `lookup` against a linear scan at every boundary.
    fn check_view(&mut self, view: &Arc<FlatView>) {
        if self.checked_views.iter().any(|v| Arc::ptr_eq(v, view)) {
            return;
        }
        let ranges = view.ranges();
        for (i, r) in ranges.iter().enumerate() {
            assert!(r.start().0 <= r.last().0, "empty range {r:?}");
            if i > 0 {
                assert!(
                    ranges[i - 1].last().0 < r.start().0,
                    "unsorted/overlapping {:?} {r:?}",
                    ranges[i - 1]
                );
            }
            let idx = self.idx_of(r);
            let reg = &self.regions[idx];
            assert!(
                u128::from(r.offset_in_region().0) + r.size() <= reg.size,
                "{r:?} runs past the end of its region (size {:#x})",
                reg.size
            );
            for a in [
                Some(r.start().0),
                Some(r.last().0),
                r.start().0.checked_sub(1),
                r.last().0.checked_add(1),
            ]
            .into_iter()
            .flatten()
            {
                let naive = ranges.iter().find(|x| x.start().0 <= a && a <= x.last().0);
                let got = lookup(view, a).map(|x| x.0);
                assert!(
                    naive.map(|n| n as *const FlatRange) == got.map(|g| g as *const FlatRange),
                    "lookup({a:#x}) = {got:?}, expected {naive:?}"
                );
            }
        }
        if self.checked_views.len() >= 4 {
            self.checked_views.remove(0);
        }
        self.checked_views.push(view.clone());
    }

    /// Every RAM block equals its shadow, every register file its model, and the device
    /// calls made are exactly the expected ones.
    fn check_state(&mut self, what: &dyn Fn() -> String, expected_calls: &[Call]) {
        let actual: Vec<Call> = std::mem::take(&mut *self.log.lock().unwrap());
        stats::add(&stats::DEVICE_CALLS, actual.len() as u64);
        assert!(
            actual == expected_calls,
            "{}: device calls\n  got      {actual:x?}\n  expected {expected_calls:x?}",
            what()
        );
        for reg in &self.regions {
            if let Some(block) = &reg.block {
                let n = block.len();
                assert!(block.read(0, &mut self.scratch[..n]));
                if self.scratch[..n] != reg.shadow[..] {
                    let i = (0..n).find(|&i| self.scratch[i] != reg.shadow[i]).unwrap();
                    panic!(
                        "{}: RAM of region {:?} (size {:#x}) differs from the model at offset {i:#x}: {:#x} != {:#x}",
                        what(),
                        reg.id,
                        reg.size,
                        self.scratch[i],
                        reg.shadow[i]
                    );
                }
            }
            if let Some(dev) = &reg.dev {
                let regs = dev.regs.lock().unwrap();
                assert!(
                    *regs == reg.regs,
                    "{}: registers of device {:?} differ from the model",
                    what(),
                    reg.id
                );
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Operations
    // -----------------------------------------------------------------------------------------

    fn addr(&self, view: &FlatView, at: AddrPick) -> u64 {
        let ranges = view.ranges();
        match at {
            AddrPick::RangeStart(i, d) if !ranges.is_empty() => ranges[usize::from(i) % ranges.len()]
                .start()
                .0
                .wrapping_add(d as i64 as u64),
            AddrPick::RangeLast(i, d) if !ranges.is_empty() => ranges[usize::from(i) % ranges.len()]
                .last()
                .0
                .wrapping_add(d as i64 as u64),
            AddrPick::RangeStart(_, d) | AddrPick::RangeLast(_, d) => d as i64 as u64,
            AddrPick::NearTop(n) => u64::MAX - u64::from(n),
            AddrPick::Abs(a) => a.get(),
        }
    }

    /// The space an access through `how` uses (a destroyed space falls back to space 0).
    fn space(&self, s: u8) -> &AddressSpace {
        let s = usize::from(s) % self.spaces.len();
        self.spaces[s].as_ref().or(self.spaces[0].as_ref()).unwrap()
    }

    fn accessor(&mut self, s: u8) -> &mut Accessor {
        let n = self.accessors.len();
        &mut self.accessors[usize::from(s) % n]
    }

    /// The view the access through `how` will use.
    fn view_for(&mut self, how: How) -> Arc<FlatView> {
        let view = match how {
            How::Space(s) => self.space(s).view(),
            How::Accessor(s) => {
                let i = usize::from(s) % self.spaces.len();
                let av = self.accessor(s).view().clone();
                match &self.spaces[i] {
                    Some(space) => {
                        assert!(
                            Arc::ptr_eq(&av, &space.view()),
                            "accessor view is not the published view"
                        )
                    }
                    None => assert!(
                        av.ranges().is_empty() && av.root().is_none(),
                        "accessor of a destroyed space still sees {av:?}"
                    ),
                }
                av
            }
        };
        self.check_view(&view);
        view
    }

    /// `AddressSpace::lookup` and `Accessor::lookup` against the model's lookup.
    fn lookup_op(&mut self, how: How, addr: u64) {
        let view = self.view_for(how);
        let want = lookup(&view, addr).map(|(r, off)| (r.clone(), off));
        let got = match how {
            How::Space(s) => self.space(s).lookup(GuestAddr(addr)).map(|(r, off)| (r, off.0)),
            How::Accessor(s) => self
                .accessor(s)
                .lookup(GuestAddr(addr))
                .map(|(r, off)| (r.clone(), off.0)),
        };
        assert!(
            got == want,
            "lookup({addr:#x}) via {how:?} = {got:?}, expected {want:?}"
        );
    }

    fn do_read(&mut self, how: How, addr: u64, buf: &mut [u8], attrs: MemTxAttrs) -> MemTxResult {
        match how {
            How::Space(s) => self.space(s).read(GuestAddr(addr), buf, attrs),
            How::Accessor(s) => self.accessor(s).read(GuestAddr(addr), buf, attrs),
        }
    }

    fn do_write(&mut self, how: How, addr: u64, buf: &[u8], attrs: MemTxAttrs) -> MemTxResult {
        match how {
            How::Space(s) => self.space(s).write(GuestAddr(addr), buf, attrs),
            How::Accessor(s) => self.accessor(s).write(GuestAddr(addr), buf, attrs),
        }
    }

    fn do_load(&mut self, how: How, addr: u64, width: u32, big: bool, attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let order = if big { Endianness::Big } else { Endianness::Little };
        let a = GuestAddr(addr);
        macro_rules! go {
            ($t:ty) => {{
                let (v, r) = match how {
                    How::Space(s) => self.space(s).load::<$t>(a, order, attrs),
                    How::Accessor(s) => self.accessor(s).load::<$t>(a, order, attrs),
                };
                (u64::from(v), r)
            }};
        }
        match width {
            1 => go!(u8),
            2 => go!(u16),
            4 => go!(u32),
            _ => go!(u64),
        }
    }

    fn do_store(&mut self, how: How, addr: u64, width: u32, value: u64, big: bool, attrs: MemTxAttrs) -> MemTxResult {
        let order = if big { Endianness::Big } else { Endianness::Little };
        let a = GuestAddr(addr);
        macro_rules! go {
            ($t:ty) => {{
                let v = value as $t;
                match how {
                    How::Space(s) => self.space(s).store::<$t>(a, v, order, attrs),
                    How::Accessor(s) => self.accessor(s).store::<$t>(a, v, order, attrs),
                }
            }};
        }
        match width {
            1 => go!(u8),
            2 => go!(u16),
            4 => go!(u32),
            _ => go!(u64),
        }
    }

    fn read_op(&mut self, how: How, addr: u64, len: usize, attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let e = self.model_bytes(&view, addr, len, None, attrs);
        let mut buf = vec![0xa5u8; len];
        let res = self.do_read(how, addr, &mut buf, attrs);
        let what = || format!("read({addr:#x}, len {len}, {attrs:?}) via {how:?}");
        assert!(res == e.result, "{}: result {res:?}, expected {:?}", what(), e.result);
        if buf != e.bytes {
            let i = (0..len).find(|&i| buf[i] != e.bytes[i]).unwrap();
            panic!(
                "{}: byte {i} (addr {:#x}) is {:#x}, expected {:#x}\nview: {view:?}",
                what(),
                u128::from(addr) + i as u128,
                buf[i],
                e.bytes[i]
            );
        }
        self.check_state(&what, &e.calls);
    }

    fn write_op(&mut self, how: How, addr: u64, data: &[u8], attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let e = self.model_bytes(&view, addr, data.len(), Some(data), attrs);
        let res = self.do_write(how, addr, data, attrs);
        let len = data.len();
        let what = || format!("write({addr:#x}, len {len}, {attrs:?}) via {how:?}\nview: {view:?}");
        assert!(res == e.result, "{}: result {res:?}, expected {:?}", what(), e.result);
        self.check_state(&what, &e.calls);
    }

    fn load_op(&mut self, how: How, addr: u64, width: u32, big: bool, attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let e = self.model_load(&view, addr, width, big, attrs);
        let (v, res) = self.do_load(how, addr, width, big, attrs);
        let what = || {
            format!(
                "load{}({addr:#x}, big {big}, {attrs:?}) via {how:?}\nview: {view:?}",
                width * 8
            )
        };
        let ev = u64::from_le_bytes(e.bytes[..8].try_into().unwrap());
        assert!(
            (v, res) == (ev, e.result),
            "{}: got ({v:#x}, {res:?}), expected ({ev:#x}, {:?})",
            what(),
            e.result
        );
        self.check_state(&what, &e.calls);
    }

    fn store_op(&mut self, how: How, addr: u64, width: u32, value: u64, big: bool, attrs: MemTxAttrs) {
        stats::add(&stats::ACCESSES, 1);
        let view = self.view_for(how);
        let value = if width == 8 {
            value
        } else {
            value & ((1u64 << (8 * width)) - 1)
        };
        let e = self.model_store(&view, addr, width, value, big, attrs);
        let res = self.do_store(how, addr, width, value, big, attrs);
        let what = || {
            format!(
                "store{}({addr:#x}, {value:#x}, big {big}, {attrs:?}) via {how:?}\nview: {view:?}",
                width * 8
            )
        };
        assert!(res == e.result, "{}: result {res:?}, expected {:?}", what(), e.result);
        self.check_state(&what, &e.calls);
    }

    fn region(&self, r: u8) -> RegionId {
        // One past the last region is the root.
        let n = self.regions.len() + 1;
        let i = usize::from(r) % n;
        if i == self.regions.len() {
            self.root
        } else {
            self.regions[i].id
        }
    }
}

fn width(w: u8) -> u32 {
    [1, 2, 4, 8][usize::from(w % 4)]
}

fn build<'m>(mem: &'m Memory, input: &Input) -> World<'m> {
    let root = mem.container("root", SIZE_2_64).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut w = World {
        mem,
        root,
        regions: Vec::new(),
        by_id: HashMap::new(),
        spaces: Vec::new(),
        space_roots: Vec::new(),
        accessors: Vec::new(),
        log,
        scratch: Vec::new(),
        checked_views: Vec::new(),
    };
    let tx = input.setup_in_tx.then(|| mem.transaction());
    for spec in input.regions.iter().take(MAX_REGIONS) {
        let i = w.regions.len();
        let dev = |spec: &DevSpec, size: u128, idx: usize| {
            Arc::new(RegDev {
                index: idx,
                spec: *spec,
                rules: spec.rules(),
                regs: Mutex::new(vec![0; size.min(REGS_MAX) as usize]),
                log: w.log.clone(),
                remap_target: OnceLock::new(),
            })
        };
        let (id, kind, size, dev) = match &spec.kind {
            KindSpec::Ram(s) => (mem.ram("ram", s.get()), Kind::Ram, s.get(), None),
            KindSpec::Rom(s) => (mem.rom("rom", s.get()), Kind::Ram, s.get(), None),
            KindSpec::RamDevice(s) => (mem.ram_device("ramd", s.get()), Kind::RamDevice, s.get(), None),
            KindSpec::RomDevice(s, romd, d) => {
                let dev = dev(d, s.get(), i);
                let id = mem.rom_device("romdev", s.get(), dev.clone());
                if let Ok(id) = id {
                    mem.set_romd(id, *romd).unwrap();
                }
                (id, Kind::RomDevice, s.get(), Some(dev))
            }
            KindSpec::Io(s, d) => {
                let dev = dev(d, s.get(), i);
                (mem.io("io", s.get(), dev.clone()), Kind::Io, s.get(), Some(dev))
            }
            KindSpec::Reservation(s) => (mem.reservation("resv", s.get()), Kind::Reservation, s.get(), None),
            KindSpec::Container(s) => (mem.container("cont", s.get()), Kind::Container, s.get(), None),
            KindSpec::Alias { target, offset, size } => {
                let t = usize::from(*target) % (i + 1);
                let t = if t == i { root } else { w.regions[t].id };
                (
                    mem.alias("alias", t, offset.get(), size.get()),
                    Kind::Alias,
                    size.get(),
                    None,
                )
            }
        };
        if let Some(dev) = dev
            .as_ref()
            .filter(|d| !(rule_ok(d.rules.valid) && rule_ok(d.rules.implementation)))
        {
            match id {
                Err(addrspace::Error::InvalidAccessRules { .. }) => {
                    stats::add(&stats::RULES_REFUSED, 1);
                    continue;
                }
                other => panic!("{:?} created with {:?}: {other:?}", spec.kind, dev.rules),
            }
        }
        let id = id.unwrap_or_else(|e| panic!("creating {:?}: {e}", spec.kind));
        let block = mem.leaf(id).unwrap().and_then(|l| l.backend().ram().cloned());
        let shadow = vec![0u8; block.as_ref().map_or(0, |b| b.len())];
        let regs = vec![0u8; if dev.is_some() { size.min(REGS_MAX) as usize } else { 0 }];
        if spec.readonly {
            mem.set_readonly(id, true).unwrap();
        }
        if spec.disabled {
            mem.set_enabled(id, false).unwrap();
        }
        if let Some(m) = &spec.map {
            let p = usize::from(m.parent) % (i + 1);
            let parent = if p == i { root } else { w.regions[p].id };
            let _ = mem.add_subregion_overlap(parent, m.addr.get(), id, prio(m.prio));
        }
        w.by_id.insert(id, i);
        w.regions.push(Region {
            id,
            kind,
            size,
            block,
            shadow,
            dev,
            regs,
        });
    }
    drop(tx);
    for reg in &w.regions {
        if let Some(dev) = &reg.dev {
            if let Some((sel, _)) = dev.spec.remap {
                let _ = dev.remap_target.set((mem.downgrade(), w.region(sel)));
            }
        }
    }
    let max_block = w.regions.iter().map(|r| r.shadow.len()).max().unwrap_or(0);
    w.scratch = vec![0; max_block];
    w.spaces.push(Some(mem.address_space("memory", root).unwrap()));
    w.space_roots.push(root);
    // A second space over the first container, when there is one (exercises root
    // simplification and shared views).
    if let Some(c) = w.regions.iter().find(|r| r.kind == Kind::Container) {
        w.spaces.push(Some(mem.address_space("dma", c.id).unwrap()));
        w.space_roots.push(c.id);
    }
    w.accessors = w.spaces.iter().map(|s| s.as_ref().unwrap().accessor()).collect();
    w
}

fn mutated<T>(r: addrspace::Result<T>) {
    match r {
        Ok(_) => stats::add(&stats::MUTATIONS_OK, 1),
        Err(_) => stats::add(&stats::MUTATIONS_ERR, 1),
    }
}

fn run(input: &Input) {
    stats::add(&stats::INPUTS, 1);
    let mem = Memory::new();
    let mut w = build(&mem, input);
    let mut txs: Vec<Transaction<'_>> = Vec::new();
    for op in input.ops.iter().take(MAX_OPS) {
        match *op {
            Op::Read { at, len, attrs, how } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.read_op(how, a, len.get(), attrs.get());
            }
            Op::Write {
                at,
                len,
                seed,
                attrs,
                how,
                readback,
            } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                let data: Vec<u8> = (0..len.get())
                    .map(|i| (usize::from(seed) + i * 131 + (i >> 8)) as u8)
                    .collect();
                w.write_op(how, a, &data, attrs.get());
                if readback {
                    let mut ra = attrs.get();
                    ra.memory = false;
                    w.read_op(how, a, data.len(), ra);
                }
            }
            Op::Load {
                at,
                width: wd,
                big,
                attrs,
                how,
            } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.load_op(how, a, width(wd), big, attrs.get());
            }
            Op::Store {
                at,
                width: wd,
                big,
                value,
                attrs,
                how,
            } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.store_op(how, a, width(wd), value, big, attrs.get());
            }
            Op::SetAddress { r, addr } => {
                mutated(w.mem.set_address(w.region(r), addr.get()));
            }
            Op::SetEnabled { r, on } => {
                mutated(w.mem.set_enabled(w.region(r), on));
            }
            Op::Remove { r } => {
                let id = w.region(r);
                if let Ok(info) = w.mem.region_info(id) {
                    if let Some(c) = info.container {
                        w.mem.remove_subregion(c, id).unwrap();
                    }
                }
            }
            Op::Add {
                r,
                parent,
                addr,
                prio: p,
            } => {
                mutated(
                    w.mem
                        .add_subregion_overlap(w.region(parent), addr.get(), w.region(r), prio(p)),
                );
            }
            Op::SetRomd { r, on } => {
                mutated(w.mem.set_romd(w.region(r), on));
            }
            Op::SetReadonly { r, on } => {
                mutated(w.mem.set_readonly(w.region(r), on));
            }
            Op::SetPriority { r, prio: p } => {
                mutated(w.mem.set_priority(w.region(r), prio(p)));
            }
            Op::SetAliasOffset { r, offset } => {
                mutated(w.mem.set_alias_offset(w.region(r), offset.get()));
            }
            Op::SetSize { r, size } => {
                let id = w.region(r);
                let size = size.get();
                if w.mem.set_size(id, size).is_ok() {
                    if let Some(&i) = w.by_id.get(&id) {
                        let reg = &mut w.regions[i];
                        reg.size = reg.size.max(size);
                    }
                }
            }
            Op::Delete { r } => {
                mutated(w.mem.delete_region(w.region(r)));
            }
            Op::BeginTx => {
                if txs.len() < 4 {
                    txs.push(mem.transaction());
                }
            }
            Op::EndTx => {
                txs.pop();
            }
            Op::NewAccessor { space } => {
                let s = usize::from(space) % w.spaces.len();
                if let Some(sp) = &w.spaces[s] {
                    w.accessors[s] = sp.accessor();
                }
            }
            Op::Lookup { at, how } => {
                let view = w.view_for(how);
                let a = w.addr(&view, at);
                w.lookup_op(how, a);
            }
            Op::DestroySpace => {
                // The last space only; its accessor lives on and must see the empty view.
                if w.spaces.len() > 1 {
                    w.spaces[1] = None;
                }
            }
            Op::RecreateSpace => {
                if w.spaces.len() > 1 && w.spaces[1].is_none() {
                    if let Ok(sp) = w.mem.address_space("dma", w.space_roots[1]) {
                        // The old accessor stays on the old (unpublished) cell.
                        w.accessors[1] = sp.accessor();
                        w.spaces[1] = Some(sp);
                    }
                }
            }
        }
    }
    drop(txs);
    // Final sweep: everything the model knows is still there, through the final view.
    w.check_state(&|| "final".to_string(), &[]);
    if stats::INPUTS
        .load(std::sync::atomic::Ordering::Relaxed)
        .is_multiple_of(1000)
    {
        stats::print();
    }
}

fuzz_target!(|input: Input| {
    run(&input);
});
