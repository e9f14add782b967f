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

mod common;
use common::Rng;

const PAGE: u64 = 0x1000;

// Board layout.
const RAM: u64 = 0x0000_0000;
const RAM_SIZE: u64 = 0x4_0000;
const OVERLAY: u64 = 0x3800;
const ROM: u64 = 0x0010_0000;
const UART: u64 = 0x0020_0000;
const BEDEV: u64 = 0x0020_1000;
const FLASH: u64 = 0x0030_0000;
const WIN: u64 = 0x0040_0000;
const WIN_SIZE: u64 = 0x2000;
const ODD: [u64; 2] = [0x0050_0800, 0x0051_0000];
const TINY: u64 = 0x0060_0010;
const VRAM: u64 = 0x0070_0000;
const RO: u64 = 0x0080_0000;
const LOGGED: u64 = 0x0090_0000;
const MOVER: [u64; 2] = [0x00a0_0000, 0x00a1_0000];
const TOGGLER: u64 = 0x00b0_0000;
const SCRATCH: u64 = 0x00c0_0000;
const TOP: u64 = 0xffff_ffff_ffff_f000;
const HOLE: u64 = 0x5000_0000;

/// Byte `i` of the pool segment mapped at `k`: every byte of a segment is the same.
fn win_byte(k: u64) -> u8 {
    0x10 + k as u8
}
const MOVER_BYTE: u8 = 0x6d;
const TOGGLER_BYTE: u8 = 0x7e;
const FLASH_MMIO_BYTE: u8 = 0x0d;

/// A register file of bytes: reads and writes have no side effect beyond the bytes.
struct RegFile {
    bytes: Mutex<Vec<u8>>,
    rules: AccessRules,
}

impl RegFile {
    fn new(len: usize, rules: AccessRules) -> Arc<RegFile> {
        Arc::new(RegFile {
            bytes: Mutex::new((0..len).map(|i| (i * 3 + 1) as u8).collect()),
            rules,
        })
    }
}

impl RegionOps for RegFile {
    fn read(&self, offset: u64, size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let b = self.bytes.lock().unwrap();
        let mut v = [0u8; 8];
        for (i, x) in v.iter_mut().enumerate().take(size as usize) {
            *x = b.get(offset as usize + i).copied().unwrap_or(0);
        }
        (u64::from_le_bytes(v), MemTxResult::OK)
    }
    fn write(&self, offset: u64, value: u64, size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        let mut b = self.bytes.lock().unwrap();
        for (i, x) in value.to_le_bytes().iter().enumerate().take(size as usize) {
            if let Some(y) = b.get_mut(offset as usize + i) {
                *y = *x;
            }
        }
        MemTxResult::OK
    }
    fn rules(&self) -> AccessRules {
        self.rules
    }
}

/// A flash chip's MMIO side: reads a constant, ignores writes.
struct FlashOps;

impl RegionOps for FlashOps {
    fn read(&self, _offset: u64, size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let v = u64::from_le_bytes([FLASH_MMIO_BYTE; 8]);
        (if size >= 8 { v } else { v & ((1 << (8 * size)) - 1) }, MemTxResult::OK)
    }
    fn write(&self, _offset: u64, _value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

/// The board and the regions its topology changes act on.
struct Board {
    mem: Memory,
    system: RegionId,
    win: RegionId,
    odd: RegionId,
    flash: RegionId,
    mover: RegionId,
    toggler: RegionId,
    ro: RegionId,
    logged: RegionId,
    overlay: RegionId,
}

fn fill(mem: &Memory, r: RegionId, f: impl Fn(usize) -> u8) {
    let leaf = mem.leaf(r).unwrap().unwrap();
    let block = leaf.backend().ram().unwrap();
    let bytes: Vec<u8> = (0..block.len()).map(f).collect();
    assert!(block.write(0, &bytes));
}

/// Builds the board deterministically (twice for the differential test).
fn build() -> Board {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", RAM_SIZE.into()).unwrap();
    fill(&mem, ram, |i| (i * 31 + 7) as u8);
    let overlay = mem.ram("overlay", 0x1000).unwrap();
    fill(&mem, overlay, |i| (i as u8).wrapping_mul(5) ^ 0x33);
    let rom = mem.rom("rom", 0x1_0000).unwrap();
    fill(&mem, rom, |i| (i * 13) as u8 ^ 0xa5);
    let any = AccessRules {
        valid: SizeRule::ANY,
        implementation: SizeRule::ANY,
        ..AccessRules::default()
    };
    let uart = mem.io("uart", 0x1000, RegFile::new(0x1000, any)).unwrap();
    let be = AccessRules {
        valid: SizeRule::aligned(4, 4),
        endianness: Endianness::Big,
        ..AccessRules::default()
    };
    let bedev = mem.io("bedev", 0x1000, RegFile::new(0x1000, be)).unwrap();
    let flash = mem.rom_device("flash", 0x2000, Arc::new(FlashOps)).unwrap();
    fill(&mem, flash, |i| (i * 7) as u8 ^ 0x5c);
    let pool = mem.ram("pool", u128::from(4 * WIN_SIZE)).unwrap();
    fill(&mem, pool, |i| win_byte(i as u64 / WIN_SIZE));
    let win = mem.alias("win", pool, 0, WIN_SIZE.into()).unwrap();
    let odd = mem.alias("odd", ram, 0x123, 0x3000).unwrap();
    let tiny = mem.ram("tiny", 0x100).unwrap();
    fill(&mem, tiny, |i| i as u8 ^ 0x99);
    let vram = mem.ram_device("vram", 0x2000).unwrap();
    fill(&mem, vram, |i| (i * 11) as u8);
    let ro = mem.alias("ro", ram, 0x2000, 0x2000).unwrap();
    let logged = mem.ram("logged", 0x2000).unwrap();
    fill(&mem, logged, |i| (i * 17) as u8);
    let mover = mem.ram("mover", 0x1000).unwrap();
    fill(&mem, mover, |_| MOVER_BYTE);
    let toggler = mem.ram("toggler", 0x2000).unwrap();
    fill(&mem, toggler, |_| TOGGLER_BYTE);
    let scratch = mem.ram("scratch", 0x4000).unwrap();
    let top = mem.ram("top", 0x1000).unwrap();
    fill(&mem, top, |i| (i * 3) as u8 ^ 0xf0);
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, RAM, ram).unwrap();
        mem.add_subregion_overlap(system, OVERLAY, overlay, 1).unwrap();
        mem.add_subregion(system, ROM, rom).unwrap();
        mem.add_subregion(system, UART, uart).unwrap();
        mem.add_subregion(system, BEDEV, bedev).unwrap();
        mem.add_subregion(system, FLASH, flash).unwrap();
        mem.add_subregion(system, WIN, win).unwrap();
        mem.add_subregion(system, ODD[0], odd).unwrap();
        mem.add_subregion(system, TINY, tiny).unwrap();
        mem.add_subregion(system, VRAM, vram).unwrap();
        mem.add_subregion(system, RO, ro).unwrap();
        mem.set_readonly(ro, true).unwrap();
        mem.add_subregion(system, LOGGED, logged).unwrap();
        mem.set_log(logged, DirtyClient::Vga, true).unwrap();
        mem.add_subregion(system, MOVER[0], mover).unwrap();
        mem.add_subregion(system, TOGGLER, toggler).unwrap();
        mem.add_subregion(system, SCRATCH, scratch).unwrap();
        mem.add_subregion(system, TOP, top).unwrap();
    }
    Board {
        mem,
        system,
        win,
        odd,
        flash,
        mover,
        toggler,
        ro,
        logged,
        overlay,
    }
}

/// Interesting places: (base, span).
const PLACES: &[(u64, u64)] = &[
    (RAM, RAM_SIZE),
    (OVERLAY, 0x1000),
    (ROM, 0x1_0000),
    (UART, 0x1000),
    (BEDEV, 0x1000),
    (FLASH, 0x2000),
    (WIN, WIN_SIZE),
    (ODD[0], 0x3000),
    (ODD[1], 0x3000),
    (TINY, 0x100),
    (VRAM, 0x2000),
    (RO, 0x2000),
    (LOGGED, 0x2000),
    (MOVER[0], 0x1000),
    (MOVER[1], 0x1000),
    (TOGGLER, 0x2000),
    (SCRATCH, 0x4000),
    (TOP, 0x1000),
    (HOLE, 0x3000),
];

/// An address near one of `places`: inside, at a page boundary (crossing it), or just
/// before or past the place.
fn addr_in(rng: &mut Rng, places: &[(u64, u64)]) -> u64 {
    let (base, span) = places[rng.below(places.len() as u64) as usize];
    match rng.below(8) {
        0..=3 => base.wrapping_add(rng.below(span)),
        4 | 5 => {
            let page = rng.below(span / PAGE + 1);
            base.wrapping_add(page * PAGE).wrapping_sub(rng.below(8))
        }
        6 => base.wrapping_sub(1 + rng.below(8)),
        _ => base.wrapping_add(span).wrapping_sub(rng.below(8)),
    }
}

fn random_attrs(rng: &mut Rng) -> MemTxAttrs {
    match rng.below(20) {
        0 => MemTxAttrs::DEBUG,
        1 => MemTxAttrs {
            memory: true,
            ..MemTxAttrs::default()
        },
        _ => MemTxAttrs::default(),
    }
}

fn random_order(rng: &mut Rng) -> Endianness {
    if rng.below(2) == 0 {
        Endianness::Little
    } else {
        Endianness::Big
    }
}

#[derive(Debug, Clone, Copy)]
enum Size {
    B,
    H,
    W,
    D,
}

fn random_size(rng: &mut Rng) -> Size {
    [Size::B, Size::H, Size::W, Size::D][rng.below(4) as usize]
}

/// Loads through the TLB and directly through each of `direct`; all must agree.
fn check_load<T: Scalar + PartialEq + Debug>(
    tlb: &mut SoftTlb,
    direct: &[&AddressSpace],
    addr: u64,
    order: Endianness,
    attrs: MemTxAttrs,
) {
    let got = tlb.load::<T>(GuestAddr(addr), order, attrs);
    for d in direct {
        let want = d.load::<T>(GuestAddr(addr), order, attrs);
        assert_eq!(
            got,
            want,
            "load{} at {addr:#x} {order:?} {attrs:?} (TLB vs direct on {})",
            T::SIZE * 8,
            d.name()
        );
    }
}

fn load_any(tlb: &mut SoftTlb, direct: &[&AddressSpace], size: Size, addr: u64, order: Endianness, attrs: MemTxAttrs) {
    match size {
        Size::B => check_load::<u8>(tlb, direct, addr, order, attrs),
        Size::H => check_load::<u16>(tlb, direct, addr, order, attrs),
        Size::W => check_load::<u32>(tlb, direct, addr, order, attrs),
        Size::D => check_load::<u64>(tlb, direct, addr, order, attrs),
    }
}

/// Stores `value` through the TLB on one board and directly on `twin`; results must agree.
fn store_any(
    tlb: &mut SoftTlb,
    twin: &AddressSpace,
    size: Size,
    addr: u64,
    value: u64,
    order: Endianness,
    attrs: MemTxAttrs,
) {
    let a = GuestAddr(addr);
    let (got, want) = match size {
        Size::B => (
            tlb.store(a, value as u8, order, attrs),
            twin.store(a, value as u8, order, attrs),
        ),
        Size::H => (
            tlb.store(a, value as u16, order, attrs),
            twin.store(a, value as u16, order, attrs),
        ),
        Size::W => (
            tlb.store(a, value as u32, order, attrs),
            twin.store(a, value as u32, order, attrs),
        ),
        Size::D => (tlb.store(a, value, order, attrs), twin.store(a, value, order, attrs)),
    };
    assert_eq!(got, want, "store{size:?} {value:#x} at {addr:#x} {order:?} {attrs:?}");
}

/// The bytes around `addr` (debug reads see ROM and RAM devices alike).
fn around(space: &AddressSpace, addr: u64) -> ([u8; 32], MemTxResult) {
    let mut b = [0u8; 32];
    let r = space.read(GuestAddr(addr.wrapping_sub(12)), &mut b, MemTxAttrs::DEBUG);
    (b, r)
}

/// Topology change number `k`: the same on every board built by `build`.
fn change(b: &Board, k: u64, state: &mut ChangeState) {
    let m = &b.mem;
    match k % 8 {
        0 => {
            state.win = (state.win + 1) % 4;
            m.set_alias_offset(b.win, state.win * WIN_SIZE).unwrap();
        }
        1 => {
            state.mover ^= 1;
            m.set_address(b.mover, MOVER[state.mover]).unwrap();
        }
        2 => {
            state.romd = !state.romd;
            m.set_romd(b.flash, state.romd).unwrap();
        }
        3 => {
            state.toggler = !state.toggler;
            m.set_enabled(b.toggler, state.toggler).unwrap();
        }
        4 => {
            state.odd ^= 1;
            m.set_address(b.odd, ODD[state.odd]).unwrap();
        }
        5 => {
            state.ro = !state.ro;
            m.set_readonly(b.ro, state.ro).unwrap();
        }
        6 => {
            state.logged = !state.logged;
            m.set_log(b.logged, DirtyClient::Vga, state.logged).unwrap();
        }
        _ => {
            // Several at once, in one commit: the overlay drops below RAM and back.
            let _tx = m.transaction();
            state.overlay = !state.overlay;
            m.set_priority(b.overlay, if state.overlay { 1 } else { -1 }).unwrap();
            state.toggler = !state.toggler;
            m.set_enabled(b.toggler, state.toggler).unwrap();
            state.mover ^= 1;
            m.set_address(b.mover, MOVER[state.mover]).unwrap();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ChangeState {
    win: u64,
    mover: usize,
    odd: usize,
    romd: bool,
    toggler: bool,
    ro: bool,
    logged: bool,
    overlay: bool,
}

impl Default for ChangeState {
    fn default() -> Self {
        ChangeState {
            win: 0,
            mover: 0,
            odd: 0,
            romd: true,
            toggler: true,
            ro: true,
            logged: true,
            overlay: true,
        }
    }
}

fn tlb_model(system: RegionId) -> CpuModel {
    CpuModel {
        spaces: vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::Root(system),
        }],
        tlb: true,
    }
}

fn print_stats(what: &str, s: TlbStats) {
    let total = s.hits + s.misses;
    eprintln!(
        "{what}: {total} TLB accesses, {} hits ({:.1}%), {} misses, {} flushes",
        s.hits,
        100.0 * s.hits as f64 / total.max(1) as f64,
        s.misses,
        s.flushes
    );
}

fn ops_count(debug: u64, release: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

/// Every RAM-backed region's bytes, and every device register file, equal on both boards.
fn same_memory(a: &Memory, b: &Memory) {
    let ra = a.regions();
    let rb = b.regions();
    assert_eq!(ra.len(), rb.len());
    for (x, y) in ra.into_iter().zip(rb) {
        let (ix, iy) = (a.region_info(x).unwrap(), b.region_info(y).unwrap());
        assert_eq!(ix.name, iy.name);
        let (Some(lx), Some(ly)) = (a.leaf(x).unwrap(), b.leaf(y).unwrap()) else {
            continue;
        };
        if let (Some(bx), Some(by)) = (lx.backend().ram(), ly.backend().ram()) {
            let mut vx = vec![0u8; bx.len()];
            let mut vy = vec![0u8; by.len()];
            assert!(bx.read(0, &mut vx) && by.read(0, &mut vy));
            assert!(vx == vy, "RAM of `{}` differs", ix.name);
        }
    }
}

/// Part 1: one CPU, one TLB, a long random trace over every kind of range, with the same
/// topology changes on a twin board that is only ever accessed directly.
#[test]
fn trace_matches_direct_accesses() {
    let a = build();
    let b = build();
    let cpu = Cpu::realize(&a.mem, 0, &tlb_model(a.system)).unwrap();
    let space = cpu.address_space(0).unwrap();
    let twin = b.mem.address_space("memory", b.system).unwrap();
    let mut tlb = SoftTlb::new(space, cpu.tlb_listener(0).unwrap().clone());
    let (mut sa, mut sb) = (ChangeState::default(), ChangeState::default());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let n = ops_count(200_000, 1_000_000);
    let started = Instant::now();
    let (mut loads, mut stores, mut changes) = (0u64, 0u64, 0u64);
    for i in 0..n {
        if i % 997 == 996 {
            let k = rng.below(8);
            change(&a, k, &mut sa);
            change(&b, k, &mut sb);
            changes += 1;
        }
        let addr = addr_in(&mut rng, PLACES);
        let size = random_size(&mut rng);
        let order = random_order(&mut rng);
        let attrs = random_attrs(&mut rng);
        if rng.below(3) == 0 {
            let value = rng.next();
            store_any(&mut tlb, &twin, size, addr, value, order, attrs);
            let (x, y) = (around(space, addr), around(&twin, addr));
            assert_eq!(
                x, y,
                "memory around {addr:#x} after store{size:?} {value:#x} {order:?} {attrs:?}"
            );
            stores += 1;
        } else {
            load_any(&mut tlb, &[space, &twin], size, addr, order, attrs);
            loads += 1;
        }
    }
    same_memory(&a.mem, &b.mem);
    let s = tlb.stats();
    eprintln!(
        "trace: {loads} loads, {stores} stores, {changes} topology changes in {:?}",
        started.elapsed()
    );
    print_stats("trace (random places)", s);
    assert!(s.hits > 0 && s.misses > 0);
    assert!(
        s.flushes >= changes,
        "every visible change flushed ({} < {changes})",
        s.flushes
    );

    // A realistic stream: sequential RAM, mostly hits.
    let mut tlb = SoftTlb::new(space, cpu.tlb_listener(0).unwrap().clone());
    for round in 0..4u64 {
        for addr in (RAM + 0x8000..RAM + 0x2_8000).step_by(4) {
            if addr % 64 == 0 {
                let v = addr ^ round;
                assert_eq!(
                    tlb.store(GuestAddr(addr), v, Endianness::Little, MemTxAttrs::default()),
                    MemTxResult::OK
                );
            }
            check_load::<u32>(&mut tlb, &[space], addr, Endianness::Little, MemTxAttrs::default());
        }
    }
    let s = tlb.stats();
    print_stats("sequential RAM (128 KiB x4, 1 store per 16 loads)", s);
    assert_eq!(s.flushes, 1, "no change, no flush (only the first validation)");
    assert_eq!(s.misses, 0x20, "one miss per page: a 256-entry TLB holds all 32 pages");
}

/// A view change the TLB cannot miss: pages cached from the old view are never served from
/// the new one, however the change is published (romd, readonly, remap, disable).
#[test]
fn cached_pages_are_dropped_on_every_kind_of_change() {
    let b = build();
    let cpu = Cpu::realize(&b.mem, 0, &tlb_model(b.system)).unwrap();
    let space = cpu.address_space(0).unwrap();
    let mut tlb = SoftTlb::new(space, cpu.tlb_listener(0).unwrap().clone());
    let (le, a) = (Endianness::Little, MemTxAttrs::default());
    let ld = |tlb: &mut SoftTlb, addr: u64| tlb.load::<u32>(GuestAddr(addr), le, a);

    // Window: cached, then the alias moves to another segment.
    assert_eq!(ld(&mut tlb, WIN + 8), (0x1010_1010, MemTxResult::OK));
    assert_eq!(ld(&mut tlb, WIN + 12), (0x1010_1010, MemTxResult::OK));
    let hits = tlb.stats().hits;
    assert!(hits >= 1);
    b.mem.set_alias_offset(b.win, 2 * WIN_SIZE).unwrap();
    assert_eq!(ld(&mut tlb, WIN + 8), (0x1212_1212, MemTxResult::OK));
    // romd off: the flash page (cached RAM? no: ROM devices take the slow path) reads MMIO.
    let romd = ld(&mut tlb, FLASH);
    b.mem.set_romd(b.flash, false).unwrap();
    assert_eq!(ld(&mut tlb, FLASH), (0x0d0d_0d0d, MemTxResult::OK));
    b.mem.set_romd(b.flash, true).unwrap();
    assert_eq!(ld(&mut tlb, FLASH), romd);
    // Disable: a cached page becomes a hole.
    assert_eq!(ld(&mut tlb, TOGGLER), (0x7e7e_7e7e, MemTxResult::OK));
    b.mem.set_enabled(b.toggler, false).unwrap();
    assert_eq!(ld(&mut tlb, TOGGLER), (0, MemTxResult::DECODE_ERROR));
    // Read-only: a cached writable page stops taking stores.
    b.mem.set_readonly(b.ro, false).unwrap();
    assert_eq!(tlb.store(GuestAddr(RO), 0xabcd_u32, le, a), MemTxResult::OK);
    assert_eq!(ld(&mut tlb, RO), (0xabcd, MemTxResult::OK));
    b.mem.set_readonly(b.ro, true).unwrap();
    assert_eq!(
        tlb.store(GuestAddr(RO), 0x1234_u32, le, a),
        space.store(GuestAddr(RO), 0x1234_u32, le, a)
    );
    assert_eq!(
        ld(&mut tlb, RO),
        (0xabcd, MemTxResult::OK),
        "a ROM write changed nothing"
    );
    // Dirty logging: a cached page must stop being written behind the log's back.
    b.mem.set_log(b.logged, DirtyClient::Vga, false).unwrap();
    assert_eq!(tlb.store(GuestAddr(LOGGED), 1u32, le, a), MemTxResult::OK);
    assert_eq!(tlb.store(GuestAddr(LOGGED + 0x1004), 1u32, le, a), MemTxResult::OK);
    let before = tlb.stats().hits;
    assert_eq!(tlb.store(GuestAddr(LOGGED + 0x1000), 1u32, le, a), MemTxResult::OK);
    assert_eq!(tlb.stats().hits, before + 1, "the unlogged page is cached");
    b.mem.set_log(b.logged, DirtyClient::Migration, true).unwrap();
    b.mem
        .take_dirty_pages(b.logged, 0, 0x2000, DirtyClient::Migration)
        .unwrap();
    assert_eq!(tlb.store(GuestAddr(LOGGED + 0x1008), 2u32, le, a), MemTxResult::OK);
    assert_eq!(
        b.mem
            .take_dirty_pages(b.logged, 0, 0x2000, DirtyClient::Migration)
            .unwrap(),
        [0x1000],
        "a store through the TLB to a logged page was logged"
    );
    // Remap: the mover's page, cached at its old place, is a hole now.
    assert_eq!(ld(&mut tlb, MOVER[0]), (0x6d6d_6d6d, MemTxResult::OK));
    b.mem.set_address(b.mover, MOVER[1]).unwrap();
    assert_eq!(ld(&mut tlb, MOVER[0]), (0, MemTxResult::DECODE_ERROR));
    assert_eq!(ld(&mut tlb, MOVER[1]), (0x6d6d_6d6d, MemTxResult::OK));
    print_stats("change kinds", tlb.stats());
}

/// Builds a transparent per-CPU wrapper: a container holding an alias of system.
fn wrapper(system: RegionId) -> PerCpuBuilder {
    Arc::new(move |mem: &Memory, i: u32| {
        let root = mem.container(&format!("wrap-{i}"), SIZE_2_64)?;
        let alias = mem.alias(&format!("wrap-sys-{i}"), system, 0, SIZE_2_64)?;
        mem.add_subregion(root, 0, alias)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, alias],
        })
    })
}

/// Loads that do not depend on what other readers store (everything but SCRATCH and UART).
const SHARED_PLACES: &[(u64, u64)] = &[
    (RAM, RAM_SIZE),
    (OVERLAY, 0x1000),
    (ROM, 0x1_0000),
    (BEDEV, 0x1000),
    (FLASH, 0x2000),
    (WIN, WIN_SIZE),
    (ODD[0], 0x3000),
    (ODD[1], 0x3000),
    (TINY, 0x100),
    (VRAM, 0x2000),
    (RO, 0x2000),
    (LOGGED, 0x2000),
    (MOVER[0], 0x1000),
    (MOVER[1], 0x1000),
    (TOGGLER, 0x2000),
    (TOP, 0x1000),
    (HOLE, 0x3000),
];

/// What the readers report.
#[derive(Debug, Default)]
struct ReaderReport {
    failed: bool,
    stats: TlbStats,
    racing_loads: u64,
    window_checks: u64,
    exact_checks: u64,
}

/// Part 2: a writer changes the topology while readers run their TLBs. During a change the
/// readers check that the window (whose every mapping is recognisable) never shows a mapping
/// older than the last one published before the access began, and that everything else reads
/// as one of its possible layouts; between changes (stop the world) every access through the
/// TLB equals the direct access through the same space.
#[test]
fn concurrent_topology_changes_never_leave_stale_entries() {
    const READERS: usize = 2;
    let b = Arc::new(build());
    let cpus = [
        Cpu::realize(&b.mem, 0, &tlb_model(b.system)).unwrap(),
        Cpu::realize(
            &b.mem,
            1,
            &CpuModel {
                spaces: vec![CpuSpaceSpec {
                    index: 0,
                    prefix: "cpu-memory".into(),
                    view: CpuView::PerCpu(wrapper(b.system)),
                }],
                tlb: true,
            },
        )
        .unwrap(),
    ];
    let phases = ops_count(1500, 10_000);
    let barrier = Arc::new(Barrier::new(READERS + 1));
    let abort = Arc::new(AtomicBool::new(false));
    let changing_done = Arc::new(AtomicBool::new(false));
    // Window mappings published so far: mapping n shows segment n % 4.
    let published = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let readers: Vec<_> = cpus
        .iter()
        .enumerate()
        .map(|(t, cpu)| {
            let space = cpu.address_space(0).unwrap().clone();
            let listener = cpu.tlb_listener(0).unwrap().clone();
            let (barrier, done, published, abort) =
                (barrier.clone(), changing_done.clone(), published.clone(), abort.clone());
            thread::spawn(move || {
                let mut tlb = SoftTlb::new(&space, listener);
                let mut rng = Rng(0x1234_5678 + t as u64);
                let mut rep = ReaderReport::default();
                let a = MemTxAttrs::default();
                let le = Endianness::Little;
                let own_scratch = SCRATCH + t as u64 * PAGE;
                let own_uart = UART + t as u64 * 0x100;
                let failed = AtomicBool::new(false);
                // A failed check must not leave the others waiting at a barrier: it is caught,
                // reported, and everybody stops at the end of the phase.
                let guarded = |f: &mut dyn FnMut()| {
                    if !abort.load(Ordering::SeqCst) && std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
                        abort.store(true, Ordering::SeqCst);
                        failed.store(true, Ordering::SeqCst);
                    }
                };
                for _ in 0..phases {
                    barrier.wait();
                    // The writer is changing the topology: racing accesses.
                    guarded(&mut || {
                        let mut spins = 0u64;
                        while !done.load(Ordering::Acquire) || spins < 4 {
                            spins += 1;
                            // The window: never older than what was published before we began.
                            let p0 = published.load(Ordering::SeqCst);
                            let off = rng.below(WIN_SIZE / 8) * 8;
                            let (v, r) = tlb.load::<u64>(GuestAddr(WIN + off), le, a);
                            let p1 = published.load(Ordering::SeqCst);
                            assert_eq!(r, MemTxResult::OK);
                            let bytes = v.to_le_bytes();
                            assert!(bytes.iter().all(|&x| x == bytes[0]), "torn window read {v:#x}");
                            let k = u64::from(bytes[0].wrapping_sub(0x10));
                            assert!(k < 4, "window shows {v:#x}");
                            if p1 + 1 - p0 < 3 {
                                assert!(
                                    (p0..=p1 + 1).any(|m| m % 4 == k),
                                    "stale window: segment {k} while mappings {p0}..={} were current",
                                    p1 + 1
                                );
                                rep.window_checks += 1;
                            }
                            // Things that move or toggle read as one of their layouts.
                            let (v, r) = tlb.load::<u32>(GuestAddr(MOVER[rng.below(2) as usize] + 0x10), le, a);
                            assert!(
                                (v, r) == (0x6d6d_6d6d, MemTxResult::OK) || (v, r) == (0, MemTxResult::DECODE_ERROR),
                                "mover: {v:#x} {r:?}"
                            );
                            let (v, r) = tlb.load::<u16>(GuestAddr(TOGGLER + 0x1ffe), le, a);
                            assert!(
                                (v, r) == (0x7e7e, MemTxResult::OK) || (v, r) == (0, MemTxResult::DECODE_ERROR),
                                "toggler: {v:#x} {r:?}"
                            );
                            let (v, r) = tlb.load::<u8>(GuestAddr(FLASH + 0x10), le, a);
                            assert!(
                                r == MemTxResult::OK && (v == FLASH_MMIO_BYTE || v == (0x10 * 7) as u8 ^ 0x5c),
                                "flash: {v:#x} {r:?}"
                            );
                            // Our own scratch page never moves: a store is seen by a load.
                            let at = own_scratch + rng.below(PAGE / 8) * 8;
                            let x = rng.next();
                            assert_eq!(tlb.store(GuestAddr(at), x, le, a), MemTxResult::OK);
                            assert_eq!(tlb.load::<u64>(GuestAddr(at), le, a), (x, MemTxResult::OK));
                            rep.racing_loads += 4;
                        }
                    });
                    barrier.wait();
                    // Stop the world: the TLB must agree with the space, access by access.
                    guarded(&mut || {
                        for _ in 0..48 {
                            let size = random_size(&mut rng);
                            let order = random_order(&mut rng);
                            let attrs = if rng.below(10) == 0 { MemTxAttrs::DEBUG } else { a };
                            match rng.below(4) {
                                0 => {
                                    // A store into our own slots, then both views of it.
                                    let at = if rng.below(2) == 0 {
                                        own_scratch + rng.below(PAGE - 8)
                                    } else {
                                        own_uart + rng.below(0xf8)
                                    };
                                    let v = rng.next();
                                    let got = match size {
                                        Size::B => tlb.store(GuestAddr(at), v as u8, order, attrs),
                                        Size::H => tlb.store(GuestAddr(at), v as u16, order, attrs),
                                        Size::W => tlb.store(GuestAddr(at), v as u32, order, attrs),
                                        Size::D => tlb.store(GuestAddr(at), v, order, attrs),
                                    };
                                    let want = match size {
                                        Size::B => space.store(GuestAddr(at), v as u8, order, attrs),
                                        Size::H => space.store(GuestAddr(at), v as u16, order, attrs),
                                        Size::W => space.store(GuestAddr(at), v as u32, order, attrs),
                                        Size::D => space.store(GuestAddr(at), v, order, attrs),
                                    };
                                    assert_eq!(got, want, "store at {at:#x}");
                                    load_any(&mut tlb, &[&space], size, at, order, attrs);
                                }
                                _ => {
                                    let at = addr_in(&mut rng, SHARED_PLACES);
                                    load_any(&mut tlb, &[&space], size, at, order, attrs);
                                }
                            }
                            rep.exact_checks += 1;
                        }
                    });
                    barrier.wait();
                    if abort.load(Ordering::SeqCst) {
                        break;
                    }
                }
                rep.stats = tlb.stats();
                rep.failed = failed.load(Ordering::SeqCst);
                rep
            })
        })
        .collect();

    let mut state = ChangeState::default();
    let mut rng = Rng(77);
    for _ in 0..phases {
        changing_done.store(false, Ordering::Release);
        barrier.wait();
        // Always move the window once (published after the commit returns), plus another
        // random change.
        state.win = (state.win + 1) % 4;
        b.mem.set_alias_offset(b.win, state.win * WIN_SIZE).unwrap();
        published.fetch_add(1, Ordering::SeqCst);
        assert_eq!(published.load(Ordering::SeqCst) % 4, state.win);
        let k = 1 + rng.below(7);
        change(&b, k, &mut state);
        changing_done.store(true, Ordering::Release);
        barrier.wait(); // readers check
        barrier.wait();
        if abort.load(Ordering::SeqCst) {
            break;
        }
    }
    let reports: Vec<ReaderReport> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let elapsed = started.elapsed();
    eprintln!("concurrent: {phases} phases in {elapsed:?}");
    for (t, r) in reports.iter().enumerate() {
        assert!(!r.failed, "reader {t} failed a check (see its panic above)");
        eprintln!(
            "reader {t}: {} racing accesses, {} window linearizability checks, {} exact checks",
            r.racing_loads, r.window_checks, r.exact_checks
        );
        print_stats(&format!("concurrent reader {t}"), r.stats);
        assert!(r.window_checks > phases / 2);
        assert_eq!(r.exact_checks, phases * 48);
        assert!(r.stats.flushes >= phases, "at least one flush per phase");
    }
    drop(cpus);
}
