//! Dispatch semantics through the public API: RAM, ROM, ROM devices, MMIO access rules,
//! holes, hostile addresses, the re-entrancy guard, and topology changes from callbacks.

mod common;
use common::board;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use addrspace::{AccessRules, Endianness, GuestAddr, MemTxAttrs, MemTxResult, RegionId, RegionOps, SizeRule};

const LE: Endianness = Endianness::Little;
const BE: Endianness = Endianness::Big;
const OK: MemTxResult = MemTxResult::OK;
const DECODE: MemTxResult = MemTxResult::DECODE_ERROR;

fn attrs() -> MemTxAttrs {
    MemTxAttrs::default()
}

/// Logs callbacks; reads return the offset in every byte lane.
struct Dev {
    rules: AccessRules,
    log: Mutex<Vec<(char, u64, u32, u64)>>,
}

impl Dev {
    fn new(rules: AccessRules) -> Arc<Dev> {
        Arc::new(Dev {
            rules,
            log: Mutex::new(Vec::new()),
        })
    }
    fn calls(&self) -> Vec<(char, u64, u32, u64)> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

impl RegionOps for Dev {
    fn read(&self, offset: u64, size: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.log.lock().unwrap().push(('r', offset, size, 0));
        (
            (offset * 0x0101_0101_0101_0101) & ((1u128 << (8 * size)) - 1) as u64,
            OK,
        )
    }
    fn write(&self, offset: u64, value: u64, size: u32, _: MemTxAttrs) -> MemTxResult {
        self.log.lock().unwrap().push(('w', offset, size, value));
        OK
    }
    fn rules(&self) -> AccessRules {
        self.rules
    }
}

#[test]
fn ram_reads_and_writes_split_across_ranges() {
    let b = board();
    let lo = b.mem.ram("lo", 0x1000).unwrap();
    let hi = b.mem.ram("hi", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0x1000, lo).unwrap();
    b.mem.add_subregion(b.system, 0x2000, hi).unwrap();
    let data: Vec<u8> = (0..32).collect();
    assert_eq!(b.space.write(GuestAddr(0x1ff0), &data, attrs()), OK);
    let mut back = [0u8; 32];
    assert_eq!(b.space.read(GuestAddr(0x1ff0), &mut back, attrs()), OK);
    assert_eq!(&back[..], &data[..]);
    let mut cpu = b.space.accessor();
    assert_eq!(
        cpu.load::<u32>(GuestAddr(0x1ffe), LE, attrs()),
        (0x1110_0f0e, OK),
        "straddles lo/hi"
    );
    assert_eq!(cpu.load::<u32>(GuestAddr(0x1ffe), BE, attrs()), (0x0e0f_1011, OK));
    assert_eq!(cpu.store(GuestAddr(0x2000), 0x0102_0304_0506_0708u64, BE, attrs()), OK);
    assert_eq!(cpu.load::<u8>(GuestAddr(0x2000), LE, attrs()), (1, OK));
}

#[test]
fn holes_read_zero_with_a_decode_error() {
    let b = board();
    let r = b.mem.ram("r", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0x1000, r).unwrap();
    assert!(b.space.write(GuestAddr(0x1000), &[0xff; 4], attrs()).is_ok());
    let mut buf = [0xaau8; 8];
    assert_eq!(b.space.read(GuestAddr(0xffc), &mut buf, attrs()), DECODE);
    assert_eq!(buf, [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], "the mapped half is read");
    assert_eq!(b.space.write(GuestAddr(0), &[1, 2], attrs()), DECODE);
}

#[test]
fn hostile_addresses_never_panic() {
    let b = board();
    let top = b.mem.ram("top", 0x1000).unwrap();
    b.mem.add_subregion(b.system, u64::MAX - 0xfff, top).unwrap();
    let mut buf = [0u8; 16];
    // Runs past 2^64: the in-range bytes are read, the rest is unassigned.
    assert_eq!(b.space.read(GuestAddr(u64::MAX - 7), &mut buf, attrs()), DECODE);
    assert_eq!(b.space.write(GuestAddr(u64::MAX - 7), &buf, attrs()), DECODE);
    assert_eq!(b.space.load::<u64>(GuestAddr(u64::MAX - 3), LE, attrs()).1, DECODE);
    assert_eq!(b.space.store(GuestAddr(u64::MAX), 7u64, LE, attrs()), DECODE);
    // The byte at 2^64 - 1 was written by the store that ran off the end; the rest stays 0.
    assert_eq!(b.space.load::<u64>(GuestAddr(u64::MAX - 7), LE, attrs()), (7 << 56, OK));
    // Zero-length accesses succeed and touch nothing.
    assert_eq!(b.space.read(GuestAddr(u64::MAX), &mut [], attrs()), OK);
    assert_eq!(b.space.write(GuestAddr(0), &[], attrs()), OK);
    let mut big = vec![0u8; 1 << 20];
    assert_eq!(b.space.read(GuestAddr(u64::MAX - 0x800), &mut big, attrs()), DECODE);
}

#[test]
fn rom_reads_directly_and_drops_writes_unless_debug() {
    let b = board();
    let rom = b.mem.rom("rom", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0, rom).unwrap();
    assert_eq!(b.space.store(GuestAddr(0), 0x55u8, LE, attrs()), DECODE);
    assert_eq!(b.space.load::<u8>(GuestAddr(0), LE, attrs()), (0, OK));
    assert_eq!(b.space.store(GuestAddr(0), 0x55u8, LE, MemTxAttrs::DEBUG), OK);
    assert_eq!(b.space.load::<u8>(GuestAddr(0), LE, attrs()), (0x55, OK));
    // A read-only alias over RAM is enforced too (a deliberate choice: QEMU only enforces it
    // in TCG's TLB).
    let ram = b.mem.ram("ram", 0x1000).unwrap();
    let ro = b.mem.alias("ro", ram, 0, 0x1000).unwrap();
    b.mem.set_readonly(ro, true).unwrap();
    b.mem.add_subregion(b.system, 0x8000, ro).unwrap();
    assert_eq!(b.space.write(GuestAddr(0x8000), &[1], attrs()), DECODE);
}

#[test]
fn rom_device_romd_mode() {
    let b = board();
    let dev = Dev::new(AccessRules::default());
    let flash = b.mem.rom_device("flash", 0x1000, dev.clone()).unwrap();
    b.mem.add_subregion(b.system, 0, flash).unwrap();
    assert!(b.space.write(GuestAddr(8), &[0xab], MemTxAttrs::DEBUG).is_ok());
    assert_eq!(
        b.space.load::<u8>(GuestAddr(8), LE, attrs()),
        (0xab, OK),
        "romd: reads from RAM"
    );
    assert_eq!(b.space.store(GuestAddr(8), 0x12u8, LE, attrs()), OK);
    assert_eq!(dev.calls(), vec![('w', 8, 1, 0x12)], "writes go to the device");
    b.mem.set_romd(flash, false).unwrap();
    assert_eq!(
        b.space.load::<u8>(GuestAddr(8), LE, attrs()),
        (8, OK),
        "romd off: reads go to the device"
    );
    assert_eq!(dev.calls(), vec![('r', 8, 1, 0)]);
}

#[test]
fn mmio_byte_slices_follow_valid_and_impl_sizes() {
    let b = board();
    let rules = AccessRules {
        valid: SizeRule::aligned(1, 4),
        implementation: SizeRule::aligned(1, 4),
        ..AccessRules::default()
    };
    let dev = Dev::new(rules);
    let io = b.mem.io("dev", 0x2000, dev.clone()).unwrap();
    b.mem.add_subregion(b.system, 0x10000, io).unwrap();
    // The spec's example: an 8-byte write at region offset 0x1002 -> 2, 4, 2.
    assert_eq!(
        b.space.write(GuestAddr(0x11002), &[1, 2, 3, 4, 5, 6, 7, 8], attrs()),
        OK
    );
    assert_eq!(
        dev.calls(),
        vec![
            ('w', 0x1002, 2, 0x0201),
            ('w', 0x1004, 4, 0x0605_0403),
            ('w', 0x1008, 2, 0x0807)
        ]
    );
    // A typed 8-byte load is one access of size 8, invalid for this device.
    assert_eq!(b.space.load::<u64>(GuestAddr(0x10000), LE, attrs()), (0, DECODE));
    // A misaligned 4-byte load is invalid (valid.unaligned is false).
    assert_eq!(b.space.load::<u32>(GuestAddr(0x10002), LE, attrs()), (0, DECODE));
    assert!(dev.calls().is_empty());
    // attrs.memory refuses devices.
    let mem_only = MemTxAttrs {
        memory: true,
        ..MemTxAttrs::default()
    };
    assert_eq!(
        b.space.load::<u32>(GuestAddr(0x10000), LE, mem_only).1,
        MemTxResult::ACCESS_ERROR
    );
}

#[test]
fn device_accesses_are_not_clamped_to_the_range() {
    // Like PC ports 0xcf8 (4 bytes) and 0xcf9 (1 byte, higher priority): a 4-byte access at
    // 0xcf8 goes entirely to the first device even though its range is 1 byte long.
    let b = board();
    let idx = Dev::new(AccessRules::default());
    let reset = Dev::new(AccessRules::default());
    let r1 = b.mem.io("pci-conf-idx", 4, idx.clone()).unwrap();
    let r2 = b.mem.io("reset", 1, reset.clone()).unwrap();
    b.mem.add_subregion(b.system, 0xcf8, r1).unwrap();
    b.mem.add_subregion_overlap(b.system, 0xcf9, r2, 1).unwrap();
    assert_eq!(b.space.store(GuestAddr(0xcf8), 0x8000_0000u32, LE, attrs()), OK);
    assert_eq!(idx.calls(), vec![('w', 0, 4, 0x8000_0000)]);
    assert!(reset.calls().is_empty());
}

#[test]
fn big_endian_device_through_byte_slices() {
    let b = board();
    let dev = Dev::new(AccessRules {
        endianness: BE,
        valid: SizeRule::aligned(4, 4),
        implementation: SizeRule::aligned(4, 4),
        ..AccessRules::default()
    });
    let io = b.mem.io("be", 0x100, dev.clone()).unwrap();
    b.mem.add_subregion(b.system, 0, io).unwrap();
    assert!(b.space.write(GuestAddr(4), &[0x11, 0x22, 0x33, 0x44], attrs()).is_ok());
    assert_eq!(
        dev.calls(),
        vec![('w', 4, 4, 0x1122_3344)],
        "memory order is the register's BE order"
    );
    assert_eq!(b.space.load::<u32>(GuestAddr(4), BE, attrs()), (0x0404_0404, OK));
}

#[test]
fn reservations_refuse_everything() {
    let b = board();
    let res = b.mem.reservation("kvm-ioapic", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0, res).unwrap();
    assert_eq!(b.space.load::<u32>(GuestAddr(0), LE, attrs()), (0, DECODE));
    assert_eq!(b.space.store(GuestAddr(0), 1u32, LE, attrs()), DECODE);
}

/// A device whose register 0 reads register 4 of an address space (itself, via "DMA").
/// It holds the space weakly, as devices must (see `RegionOps`).
struct Loopback {
    space: OnceLock<addrspace::WeakAddressSpace>,
    inner: Mutex<Option<MemTxResult>>,
}

impl RegionOps for Loopback {
    fn read(&self, offset: u64, _: u32, a: MemTxAttrs) -> (u64, MemTxResult) {
        if offset == 0 {
            let space = self.space.get().unwrap().upgrade().unwrap();
            let (_, r) = space.load::<u32>(GuestAddr(0x1004), LE, a);
            *self.inner.lock().unwrap() = Some(r);
        }
        (offset, OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        OK
    }
}

#[test]
fn a_device_reentering_itself_is_refused() {
    let b = board();
    let dev = Arc::new(Loopback {
        space: OnceLock::new(),
        inner: Mutex::new(None),
    });
    let io = b.mem.io("loop", 0x100, dev.clone()).unwrap();
    b.mem.add_subregion(b.system, 0x1000, io).unwrap();
    dev.space.set(b.space.downgrade()).unwrap();
    assert_eq!(b.space.load::<u32>(GuestAddr(0x1000), LE, attrs()), (0, OK));
    assert_eq!(
        *dev.inner.lock().unwrap(),
        Some(MemTxResult::ACCESS_ERROR),
        "nested access refused"
    );
    // The guard is released afterwards: a direct access to register 4 works.
    assert_eq!(b.space.load::<u32>(GuestAddr(0x1004), LE, attrs()), (4, OK));
}

/// A PCI-BAR-like device: writing an address to its register 0 moves region `bar`.
struct BarControl {
    mem: addrspace::WeakMemory,
    bar: OnceLock<RegionId>,
    moves: AtomicU64,
}

impl RegionOps for BarControl {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, OK)
    }
    fn write(&self, _: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        let mem = self.mem.upgrade().unwrap();
        mem.set_address(*self.bar.get().unwrap(), value).unwrap();
        self.moves.fetch_add(1, Ordering::Relaxed);
        OK
    }
}

#[test]
fn a_callback_can_remap_and_the_next_access_sees_it() {
    let b = board();
    let ctl = Arc::new(BarControl {
        mem: b.mem.downgrade(),
        bar: OnceLock::new(),
        moves: AtomicU64::new(0),
    });
    let ctl_region = b.mem.io("ctl", 8, ctl.clone()).unwrap();
    let bar = b.mem.ram("bar", 0x1000).unwrap();
    ctl.bar.set(bar).unwrap();
    b.mem.add_subregion(b.system, 0x100, ctl_region).unwrap();
    b.mem.add_subregion(b.system, 0x10000, bar).unwrap();
    let mut cpu = b.space.accessor();
    assert!(cpu.store(GuestAddr(0x10000), 0xcafeu16, LE, attrs()).is_ok());
    // The guest moves the BAR from inside an MMIO write: no deadlock.
    assert_eq!(cpu.store(GuestAddr(0x100), 0x20000u32, LE, attrs()), OK);
    assert_eq!(ctl.moves.load(Ordering::Relaxed), 1);
    assert_eq!(
        cpu.load::<u16>(GuestAddr(0x20000), LE, attrs()),
        (0xcafe, OK),
        "next access: new layout"
    );
    assert_eq!(cpu.load::<u16>(GuestAddr(0x10000), LE, attrs()).1, DECODE);
    // Also from inside an open transaction on another thread's behalf: the commit happens
    // when the transaction ends, and only then does the accessor see it.
    let tx = b.mem.transaction();
    assert_eq!(cpu.store(GuestAddr(0x100), 0x30000u32, LE, attrs()), OK);
    assert_eq!(
        cpu.load::<u16>(GuestAddr(0x20000), LE, attrs()),
        (0xcafe, OK),
        "not committed yet"
    );
    drop(tx);
    assert_eq!(cpu.load::<u16>(GuestAddr(0x30000), LE, attrs()), (0xcafe, OK));
}

#[test]
fn a_held_view_keeps_removed_ram_alive() {
    let b = board();
    let ram = b.mem.ram("ram", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0, ram).unwrap();
    let mut cpu = b.space.accessor();
    assert!(cpu.store(GuestAddr(0x10), 42u32, LE, attrs()).is_ok());
    let old = cpu.view().clone();
    b.mem.remove_subregion(b.system, ram).unwrap();
    b.mem.delete_region(ram).unwrap();
    assert_eq!(
        cpu.load::<u32>(GuestAddr(0x10), LE, attrs()).1,
        DECODE,
        "new view: gone"
    );
    let (r, off) = old.lookup(GuestAddr(0x10)).unwrap();
    let mut buf = [0u8; 4];
    assert!(r.leaf().backend().ram().unwrap().read(off.0, &mut buf));
    assert_eq!(u32::from_le_bytes(buf), 42, "old view: still readable");
}

#[test]
fn an_accessor_outliving_its_space_sees_nothing() {
    let b = board();
    let ram = b.mem.ram("ram", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0, ram).unwrap();
    let mut cpu = b.space.accessor();
    assert_eq!(cpu.load::<u8>(GuestAddr(0), LE, attrs()).1, OK);
    let before = b.mem.stats();
    drop(b.space);
    assert_eq!(
        b.mem.stats().address_spaces,
        before.address_spaces - 1,
        "the accessor does not keep it"
    );
    assert_eq!(cpu.load::<u8>(GuestAddr(0), LE, attrs()).1, DECODE);
    assert!(cpu.view().ranges().is_empty());
}

/// A DMA engine that does DMA into the space it is mapped in, holding it weakly.
struct Dma {
    space: addrspace::WeakAddressSpace,
}

impl RegionOps for Dma {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, OK)
    }
    fn write(&self, _: u64, value: u64, _: u32, a: MemTxAttrs) -> MemTxResult {
        match self.space.upgrade() {
            Some(space) => space.accessor().store(GuestAddr(0), value as u8, LE, a),
            None => MemTxResult::ERROR,
        }
    }
}

#[test]
fn a_dma_device_is_freed_on_unplug() {
    let b = board();
    let ram = b.mem.ram("ram", 0x1000).unwrap();
    b.mem.add_subregion(b.system, 0, ram).unwrap();
    let dma = Arc::new(Dma {
        space: b.space.downgrade(),
    });
    let weak = Arc::downgrade(&dma);
    let io = b.mem.io("dma", 0x10, dma).unwrap();
    b.mem.add_subregion(b.system, 0x100, io).unwrap();
    assert_eq!(b.space.store(GuestAddr(0x100), 9u8, LE, attrs()), OK);
    assert_eq!(b.space.load::<u8>(GuestAddr(0), LE, attrs()), (9, OK));
    // Unplug: unmap and delete the region. The next commit drops the last view showing the
    // device, and with it the device.
    b.mem.remove_subregion(b.system, io).unwrap();
    b.mem.delete_region(io).unwrap();
    assert!(weak.upgrade().is_none(), "the device was freed");
    // The whole system goes away with its handles: nothing keeps anything alive.
    let weak_mem = b.mem.downgrade();
    drop(b);
    assert!(weak_mem.upgrade().is_none(), "no cycle keeps the memory system alive");
}
