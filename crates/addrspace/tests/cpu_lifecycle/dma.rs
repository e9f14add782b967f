//! The DMA engine's lifecycle and reach.

use super::*;

// DMA
// ---------------------------------------------------------------------------------------

pub(crate) const DMA_BASE: u64 = 0x1000_0000;

pub(crate) fn dma_copy(cpu: &AddressSpace, base: u64, src: u64, dst: u64, len: u64) -> (u64, MemTxResult) {
    for (reg, v) in [(0x00, src), (0x08, dst), (0x10, len), (0x18, 1)] {
        assert_eq!(cpu.store(GuestAddr(base + reg), v, LE, attrs()), MemTxResult::OK);
    }
    cpu.load::<u64>(GuestAddr(base + 0x20), LE, attrs())
}

#[test]
pub(crate) fn dma_engine_copies_reports_status_and_unplugs_cleanly() {
    let b = board();
    let model = CpuModel {
        spaces: vec![spec(0, "cpu-memory", CpuView::Root(b.system))],
        tlb: true,
    };
    let cpu = Cpu::realize(&b.mem, 0, &model).unwrap();
    let cs = cpu.address_space(0).unwrap();
    let base = b.mem.stats();

    let dma = DmaDevice::plug(&b.mem, "dma0", b.system, b.system, DMA_BASE).unwrap();
    assert_eq!(dma.address_space().name(), "dma0");
    assert_eq!(format!("{dma:?}"), r#"DmaDevice { space: "dma0" }"#);
    assert_eq!(b.mem.region_info(dma.regs()).unwrap().name, "dma0-regs");
    let s = b.mem.stats();
    assert_eq!(
        (s.address_spaces, s.regions),
        (base.address_spaces + 1, base.regions + 1)
    );
    assert_eq!(spaces_named(&b.mem, "dma0"), 1);

    let pattern: Vec<u8> = (0..0x300u32).map(|i| (i * 7 + 3) as u8).collect();
    assert_eq!(cs.write(GuestAddr(0x1000), &pattern, attrs()), MemTxResult::OK);
    assert_eq!(dma_copy(cs, DMA_BASE, 0x1000, 0x8000, 0x300), (0, MemTxResult::OK));
    let mut out = vec![0u8; 0x300];
    assert_eq!(cs.read(GuestAddr(0x8000), &mut out, attrs()), MemTxResult::OK);
    assert_eq!(out, pattern);
    // Registers read back.
    assert_eq!(
        cs.load::<u64>(GuestAddr(DMA_BASE + 0x10), LE, attrs()),
        (0x300, MemTxResult::OK)
    );
    // Unmapped source: non-zero status (a decode error), destination written with zeros.
    let (st, r) = dma_copy(cs, DMA_BASE, 0x5000_0000, 0x8000, 0x10);
    assert_eq!((st, r), (u64::from(MemTxResult::DECODE_ERROR.bits()), MemTxResult::OK));
    // Unmapped destination.
    assert_ne!(dma_copy(cs, DMA_BASE, 0x1000, 0x5000_0000, 0x10).0, 0);
    // A source half in RAM, half past it.
    assert_ne!(dma_copy(cs, DMA_BASE, 0x10_0000 - 8, 0x9000, 0x10).0, 0);
    // Too long.
    assert_eq!(
        dma_copy(cs, DMA_BASE, 0, 0x9000, DMA_MAX_LEN + 1).0,
        u64::from(MemTxResult::ERROR.bits())
    );
    // Success clears the status again.
    assert_eq!(dma_copy(cs, DMA_BASE, 0x1000, 0x8000, 8).0, 0);
    // The registers only take 8-byte accesses.
    assert_eq!(
        cs.load::<u32>(GuestAddr(DMA_BASE + 0x20), LE, attrs()).1,
        MemTxResult::DECODE_ERROR
    );
    // A copy into its own registers is refused by the re-entrancy guard, without deadlock.
    assert_ne!(dma_copy(cs, DMA_BASE, 0x1000, DMA_BASE, 8).0, 0);

    // A view held across the unplug keeps the engine's ops; `go` then finds no space.
    let held = cs.view();
    let dma_space = dma.address_space().downgrade();
    drop(dma);
    assert!(dma_space.upgrade().is_none(), "the engine's space is destroyed");
    let s = b.mem.stats();
    assert_eq!((s.address_spaces, s.regions), (base.address_spaces, base.regions));
    assert_eq!(spaces_named(&b.mem, "dma0"), 0);
    assert_eq!(
        cs.load::<u64>(GuestAddr(DMA_BASE + 0x20), LE, attrs()).1,
        MemTxResult::DECODE_ERROR,
        "unmapped"
    );
    let (r, off) = held.lookup(GuestAddr(DMA_BASE)).unwrap();
    let Backend::Io(ops) = r.leaf().backend() else {
        panic!("dma regs are i/o")
    };
    let ops = ops.clone();
    assert_eq!(off.0, 0);
    drop(held);
    assert_eq!(ops.write(0x18, 1, 8, attrs()), MemTxResult::OK);
    assert_eq!(
        ops.read(0x20, 8, attrs()).0,
        u64::from(MemTxResult::DECODE_ERROR.bits())
    );
    drop(ops);
    assert_eq!(b.mem.stats().flatviews, base.flatviews);

    // Re-plug under the same name: a fresh space, never two.
    let dma = DmaDevice::plug(&b.mem, "dma0", b.system, b.system, DMA_BASE).unwrap();
    assert_eq!(spaces_named(&b.mem, "dma0"), 1);
    assert_eq!(dma_copy(cs, DMA_BASE, 0x1000, 0xa000, 4).0, 0);
    // Plugging an engine on a bus that is gone fails, and leaves nothing behind.
    let gone = dead(&b.mem);
    let before = b.mem.stats();
    assert!(DmaDevice::plug(&b.mem, "dma1", b.system, gone, 0x80).is_err());
    let after = b.mem.stats();
    assert_eq!(
        (after.address_spaces, after.regions),
        (before.address_spaces, before.regions)
    );
    dma.unplug();
    assert_eq!(b.mem.stats().address_spaces, base.address_spaces);
}

#[test]
pub(crate) fn dma_with_restricted_reach_cannot_reach_outside() {
    let b = board();
    let cs = b.mem.address_space("memory", b.system).unwrap();
    // The engine reaches only the first 32 KiB of pc.ram, at 0.
    let reach = b.mem.container("dma-reach", SIZE_2_64).unwrap();
    let window = b.mem.alias("dma-window", b.ram, 0, 0x8000).unwrap();
    b.mem.add_subregion(reach, 0, window).unwrap();
    let dma = DmaDevice::plug(&b.mem, "dma-restricted", reach, b.system, DMA_BASE).unwrap();
    assert_eq!(dma.address_space().root(), reach);

    let pattern: Vec<u8> = (0..0x100u32).map(|i| i as u8 ^ 0x5a).collect();
    assert_eq!(cs.write(GuestAddr(0x1000), &pattern, attrs()), MemTxResult::OK);
    assert_eq!(cs.write(GuestAddr(0x9000), &pattern, attrs()), MemTxResult::OK);
    // Inside the window: works.
    assert_eq!(dma_copy(&cs, DMA_BASE, 0x1000, 0x2000, 0x100).0, 0);
    let mut out = vec![0u8; 0x100];
    assert!(cs.read(GuestAddr(0x2000), &mut out, attrs()).is_ok());
    assert_eq!(out, pattern);
    // Source outside the window (RAM the CPU sees, the engine does not): error, and the
    // destination receives zeros, not the RAM outside.
    assert_ne!(dma_copy(&cs, DMA_BASE, 0x9000, 0x3000, 0x100).0, 0);
    assert!(cs.read(GuestAddr(0x3000), &mut out, attrs()).is_ok());
    assert_eq!(out, vec![0; 0x100]);
    // Destination outside the window: error, and the RAM there is untouched.
    let before = {
        let mut v = vec![0u8; 0x100];
        assert!(cs.read(GuestAddr(0xa000), &mut v, attrs()).is_ok());
        v
    };
    assert_ne!(dma_copy(&cs, DMA_BASE, 0x1000, 0xa000, 0x100).0, 0);
    assert!(cs.read(GuestAddr(0xa000), &mut out, attrs()).is_ok());
    assert_eq!(out, before);
    // Straddling the window's end: the part inside is copied, the status says error.
    assert_ne!(dma_copy(&cs, DMA_BASE, 0x1000, 0x8000 - 0x80, 0x100).0, 0);
    assert!(cs.read(GuestAddr(0x8000 - 0x80), &mut out, attrs()).is_ok());
    assert_eq!(out[..0x80], pattern[..0x80]);
    assert_ne!(out[0x80..], pattern[0x80..]);
    // Its own registers are not in its reach either.
    assert_ne!(dma_copy(&cs, DMA_BASE, DMA_BASE, 0x4000, 8).0, 0);
    let s = b.mem.stats();
    drop(dma);
    assert_eq!(b.mem.stats().address_spaces, s.address_spaces - 1);
    assert_eq!(b.mem.stats().regions, s.regions - 1);
}
