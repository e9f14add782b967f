//! Part 1: one CPU, one TLB, checked access by access against a twin board.

use super::*;

/// Part 1: one CPU, one TLB, a long random trace over every kind of range, with the same
/// topology changes on a twin board that is only ever accessed directly.
#[test]
pub(crate) fn trace_matches_direct_accesses() {
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
pub(crate) fn cached_pages_are_dropped_on_every_kind_of_change() {
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
    b.mem.dirty().set(b.logged, DirtyClient::Vga, false).unwrap();
    assert_eq!(tlb.store(GuestAddr(LOGGED), 1u32, le, a), MemTxResult::OK);
    assert_eq!(tlb.store(GuestAddr(LOGGED + 0x1004), 1u32, le, a), MemTxResult::OK);
    let before = tlb.stats().hits;
    assert_eq!(tlb.store(GuestAddr(LOGGED + 0x1000), 1u32, le, a), MemTxResult::OK);
    assert_eq!(tlb.stats().hits, before + 1, "the unlogged page is cached");
    b.mem.dirty().set(b.logged, DirtyClient::Migration, true).unwrap();
    b.mem.dirty().take(b.logged, 0, 0x2000, DirtyClient::Migration).unwrap();
    assert_eq!(tlb.store(GuestAddr(LOGGED + 0x1008), 2u32, le, a), MemTxResult::OK);
    assert_eq!(
        b.mem.dirty().take(b.logged, 0, 0x2000, DirtyClient::Migration).unwrap(),
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
