//! Build a small machine by hand: RAM, a boot ROM, an MMIO device, containers, aliases and
//! priorities, grouped in one transaction; then create an address space, look addresses up
//! and print `info mtree -f`.
//!
//! Run with `cargo run -p addrspace --example build_machine`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use addrspace::mtree::{self, FlatOptions, TreeOptions};
use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionOps, SIZE_2_64};

/// A toy UART: one data register at offset 0 that remembers the last byte written.
/// Real devices implement `RegionOps` the same way; vCPU threads call these concurrently,
/// so state lives behind atomics or locks.
struct Uart {
    last: AtomicU64,
}

impl RegionOps for Uart {
    fn read(&self, offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        match offset {
            0 => (self.last.load(Ordering::Relaxed), MemTxResult::OK),
            _ => (0, MemTxResult::OK), // reserved registers read as zero
        }
    }

    fn write(&self, offset: u64, value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        if offset == 0 {
            self.last.store(value & 0xff, Ordering::Relaxed);
        }
        MemTxResult::OK
    }
}

pub fn main() -> Result<(), addrspace::Error> {
    // One `Memory` per machine: it owns the region graph and publishes flat views.
    let mem = Memory::new();

    // The root of the CPU's view: a container covering the whole 64-bit space. Holes in a
    // container fall through to whatever is below it (here: nothing, so they are unmapped).
    let system = mem.container("system", SIZE_2_64)?;

    // 256 MiB of guest RAM. Host memory is reserved lazily, so large sizes are cheap.
    let ram = mem.ram("board.ram", 256 << 20)?;
    // A 64 KiB boot ROM (read-only RAM) and a 4 KiB MMIO device.
    let rom = mem.rom("boot.rom", 64 << 10)?;
    let uart = Arc::new(Uart {
        last: AtomicU64::new(0),
    });
    let uart_mr = mem.io("uart", 0x1000, uart.clone())?;

    // A bus container for devices, so they can be moved or disabled as a group.
    let periph = mem.container("periph", 0x1000_0000)?;

    // Aliases show a window of another region somewhere else, like QEMU's
    // `memory_region_init_alias`: the first 1 MiB of RAM also appears at 0x8000_0000
    // (a "high" mirror), and the ROM is mirrored at the reset vector.
    let ram_low = mem.alias("ram-low", ram, 0, 256 << 20)?;
    let ram_mirror = mem.alias("ram-mirror", ram, 0, 1 << 20)?;
    let rom_reset = mem.alias("rom-reset", rom, 0, 64 << 10)?;

    {
        // Group the wiring in a transaction: the flat views are rendered and published once,
        // when the outermost transaction ends, instead of once per call.
        let tx = mem.transaction();
        tx.add_subregion(system, 0, ram_low)?;
        tx.add_subregion(system, 0x8000_0000, ram_mirror)?;
        tx.add_subregion(periph, 0x1000, uart_mr)?;
        tx.add_subregion(system, 0xe000_0000, periph)?;
        // The ROM mirror at the reset vector, at the top of the 4 GiB space.
        tx.add_subregion_overlap(system, 0xffff_0000, rom_reset, 1)?;
        // Priorities decide overlaps: the ROM itself overlaps the first 64 KiB of RAM and
        // wins with priority 1 over RAM's 0. (At equal priority, the later-added one wins.)
        tx.add_subregion_overlap(system, 0, rom, 1)?;
        tx.commit(); // same as letting `tx` go out of scope
    }

    // An address space is a named view of a root region (a CPU, a DMA master...).
    // Its flat view is available immediately and is read without locks.
    let cpu = mem.address_space("cpu-memory", system)?;

    // Lookup: which region handles an address, and at what offset inside that region.
    for addr in [
        0x0000_0010,
        0x0002_0000,
        0x8000_1234,
        0xe000_1000,
        0xffff_fff0,
        0x9000_0000,
    ] {
        match cpu.lookup(GuestAddr(addr)) {
            Some((range, offset)) => {
                println!(
                    "{addr:#010x} -> {} ({}) + {:#x}",
                    range.name(),
                    range.type_word(),
                    offset.0
                )
            }
            None => println!("{addr:#010x} -> unmapped"),
        }
    }

    // Guest accesses go through an accessor (one per vCPU thread: it caches the view and
    // takes no lock). RAM is copied directly; MMIO calls the device's `RegionOps`.
    let mut vcpu = cpu.accessor();
    let attrs = MemTxAttrs::default();
    assert!(vcpu.write(GuestAddr(0x0002_0000), b"hello", attrs).is_ok());
    let mut buf = [0u8; 5];
    assert!(vcpu.read(GuestAddr(0x0002_0000), &mut buf, attrs).is_ok());
    println!("RAM at 0x20000 now holds {:?}", std::str::from_utf8(&buf).unwrap());
    // The mirror shows the same bytes: it aliases the same RAM.
    let mut again = [0u8; 5];
    assert!(vcpu.read(GuestAddr(0x8002_0000), &mut again, attrs).is_ok());
    assert_eq!(buf, again);
    assert!(vcpu
        .store(GuestAddr(0xe000_1000), b'A', Endianness::Little, attrs)
        .is_ok());
    let (v, res) = vcpu.load::<u8>(GuestAddr(0xe000_1000), Endianness::Little, attrs);
    assert!(res.is_ok());
    println!("UART data register reads {:?}", char::from(v));
    assert_eq!(uart.last.load(Ordering::Relaxed), u64::from(b'A'));

    // Changes after creation are published atomically: disable the peripheral bus and the
    // UART disappears from the view in one commit.
    mem.set_enabled(periph, false)?;
    assert!(cpu.lookup(GuestAddr(0xe000_1000)).is_none());
    mem.set_enabled(periph, true)?;

    // `info mtree -D` (the region tree, including disabled regions) and `info mtree -f`
    // (the rendered flat view), exactly as QEMU prints them.
    println!("\n== info mtree -D ==");
    print!("{}", mtree::print_tree(&mem, &TreeOptions::DISABLED));
    println!("== info mtree -f ==");
    print!("{}", mtree::print_flat(&mem, &FlatOptions::default()));

    let stats = mem.stats();
    println!(
        "{} regions, {} renders, {} commits",
        stats.regions, stats.renders, stats.commits
    );
    Ok(())
}
