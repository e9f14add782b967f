//! Random traces: places, accesses checked against direct loads and stores, topology changes.

use super::*;

/// Interesting places: (base, span).
pub(crate) const PLACES: &[(u64, u64)] = &[
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
pub(crate) fn addr_in(rng: &mut Rng, places: &[(u64, u64)]) -> u64 {
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

pub(crate) fn random_attrs(rng: &mut Rng) -> MemTxAttrs {
    match rng.below(20) {
        0 => MemTxAttrs::DEBUG,
        1 => MemTxAttrs {
            memory: true,
            ..MemTxAttrs::default()
        },
        _ => MemTxAttrs::default(),
    }
}

pub(crate) fn random_order(rng: &mut Rng) -> Endianness {
    if rng.below(2) == 0 {
        Endianness::Little
    } else {
        Endianness::Big
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    B,
    H,
    W,
    D,
}

pub(crate) fn random_size(rng: &mut Rng) -> Size {
    [Size::B, Size::H, Size::W, Size::D][rng.below(4) as usize]
}

/// Loads through the TLB and directly through each of `direct`; all must agree.
pub(crate) fn check_load<T: Scalar + PartialEq + Debug>(
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

pub(crate) fn load_any(
    tlb: &mut SoftTlb,
    direct: &[&AddressSpace],
    size: Size,
    addr: u64,
    order: Endianness,
    attrs: MemTxAttrs,
) {
    match size {
        Size::B => check_load::<u8>(tlb, direct, addr, order, attrs),
        Size::H => check_load::<u16>(tlb, direct, addr, order, attrs),
        Size::W => check_load::<u32>(tlb, direct, addr, order, attrs),
        Size::D => check_load::<u64>(tlb, direct, addr, order, attrs),
    }
}

/// Stores `value` through the TLB on one board and directly on `twin`; results must agree.
pub(crate) fn store_any(
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
pub(crate) fn around(space: &AddressSpace, addr: u64) -> ([u8; 32], MemTxResult) {
    let mut b = [0u8; 32];
    let r = space.read(GuestAddr(addr.wrapping_sub(12)), &mut b, MemTxAttrs::DEBUG);
    (b, r)
}

/// Topology change number `k`: the same on every board built by `build`.
pub(crate) fn change(b: &Board, k: u64, state: &mut ChangeState) {
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
            m.dirty().set(b.logged, DirtyClient::Vga, state.logged).unwrap();
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
pub(crate) struct ChangeState {
    pub(crate) win: u64,
    pub(crate) mover: usize,
    pub(crate) odd: usize,
    pub(crate) romd: bool,
    pub(crate) toggler: bool,
    pub(crate) ro: bool,
    pub(crate) logged: bool,
    pub(crate) overlay: bool,
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

pub(crate) fn tlb_model(system: RegionId) -> CpuModel {
    CpuModel {
        spaces: vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::Root(system),
        }],
        tlb: true,
    }
}

pub(crate) fn print_stats(what: &str, s: TlbStats) {
    let total = s.hits + s.misses;
    eprintln!(
        "{what}: {total} TLB accesses, {} hits ({:.1}%), {} misses, {} flushes",
        s.hits,
        100.0 * s.hits as f64 / total.max(1) as f64,
        s.misses,
        s.flushes
    );
}

pub(crate) fn ops_count(debug: u64, release: u64) -> u64 {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

/// Every RAM-backed region's bytes, and every device register file, equal on both boards.
pub(crate) fn same_memory(a: &Memory, b: &Memory) {
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
