//! Quick start for VMM authors (the README shows this file): RAM below and above a PCI hole,
//! a ROM, a UART whose BAR the guest moves, a memslot-style listener, two CPUs, and the
//! live-object counters back at their baseline. Run: `cargo run -p addrspace --example quick_start`
use std::sync::{Arc, Mutex};

use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView};
use addrspace::listener::PRIORITY_ACCEL;
use addrspace::ram::RamBlock;
use addrspace::Endianness::Little;
use addrspace::{GuestAddr, MemTxAttrs, MemTxResult, Memory, MemoryListener, RegionOps, Section, SIZE_2_64};

/// A PCI UART: its registers are BAR 0; bytes written to offset 0 are collected.
#[derive(Default)]
struct Uart(Mutex<Vec<u8>>);
impl RegionOps for Uart {
    fn read(&self, offset: u64, _size: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (if offset == 5 { 0x60 } else { 0 }, MemTxResult::OK) // line status: transmitter empty
    }
    fn write(&self, offset: u64, value: u64, _size: u32, _: MemTxAttrs) -> MemTxResult {
        if offset == 0 {
            self.0.lock().unwrap().push(value as u8);
        }
        MemTxResult::OK
    }
}

/// Memslot changes, as a KVM VMM would turn them into `KVM_SET_USER_MEMORY_REGION` calls.
#[derive(Default)]
struct Memslots(Mutex<Vec<String>>);
impl MemoryListener for Memslots {
    fn name(&self) -> &str {
        "memslots"
    }
    fn region_add(&self, s: &Section<'_>) {
        let line = format!("add {:#011x} {}", s.start().0, s.name());
        self.0.lock().unwrap().push(line);
    }
    fn region_del(&self, s: &Section<'_>) {
        let line = format!("del {:#011x} {}", s.start().0, s.name());
        self.0.lock().unwrap().push(line);
    }
}

/// Live regions, address spaces, flat views, listeners and RAM blocks.
fn live(mem: &Memory) -> [usize; 5] {
    let s = mem.stats();
    let ram = RamBlock::live_count();
    [s.regions, s.address_spaces, s.flatviews, s.listeners, ram]
}

pub fn main() -> Result<(), addrspace::Error> {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64)?;
    let ram = mem.ram("pc.ram", 3 << 30)?; // 3 GiB, reserved lazily: 2 below the PCI hole, 1 above
    let low = mem.alias("ram-below-4g", ram, 0, 2 << 30)?;
    let high = mem.alias("ram-above-4g", ram, 2u64 << 30, 1 << 30)?;
    let bios = mem.rom("pc.bios", 0x1_0000)?;
    let uart = Arc::new(Uart::default());
    let bar = mem.io("uart-bar0", 0x1000, uart.clone())?;
    {
        let _tx = mem.transaction(); // one commit, one flat view, for all four
        mem.add_subregion(system, 0, low)?;
        mem.add_subregion(system, 4u64 << 30, high)?;
        mem.add_subregion(system, 0xffff_0000, bios)?;
        mem.add_subregion(system, 0xc000_0000, bar)?; // in the PCI hole (2-4 GiB)
    }
    let memory = mem.address_space("memory", system)?;
    // The firmware loader writes ROM with a debug access (the guest cannot).
    assert!(memory.write(GuestAddr(0xffff_fff0), &[0xea], MemTxAttrs::DEBUG).is_ok());
    let baseline = live(&mem);

    let slots = Arc::new(Memslots::default());
    let registration = memory.register_listener(slots.clone(), PRIORITY_ACCEL)?; // replays the map
    let spaces = vec![CpuSpaceSpec {
        index: 0,
        prefix: "cpu-memory".into(),
        view: CpuView::Root(system),
    }];
    let mut cpus = Cluster::new("cpus", &mem, CpuModel { spaces, tlb: false }, 0, 2)?;
    // vCPU 0's thread makes every guest access through its accessor (no lock, view cached).
    let mut cpu0 = cpus.plug(0)?.address_space(0).expect("index 0").accessor();
    cpus.plug(1)?; // cpu-memory-1: shares cpu-memory-0's flat view
    let a = MemTxAttrs::default();
    assert!(cpu0.store(GuestAddr(4 << 30), 0xfeed_u32, Little, a).is_ok()); // RAM above the hole
    assert!(!cpu0.store(GuestAddr(0xffff_fff0), 0u8, Little, a).is_ok()); // refused: ROM
    assert_eq!(cpu0.load::<u8>(GuestAddr(0xffff_fff0), Little, a).0, 0xea);
    assert_eq!(cpu0.load::<u8>(GuestAddr(0xc000_0005), Little, a).0, 0x60); // UART ready
    assert!(cpu0.store(GuestAddr(0xc000_0000), b'h', Little, a).is_ok());
    mem.set_address(bar, 0xd000_0000)?; // the guest moves BAR 0: the listener hears del + add
    assert!(cpu0.store(GuestAddr(0xd000_0000), b'i', Little, a).is_ok());
    assert!(!cpu0.store(GuestAddr(0xc000_0000), b'?', Little, a).is_ok()); // nothing there now
    assert_eq!(*uart.0.lock().unwrap(), b"hi");
    cpus.unplug(1)?; // hot-unplug: cpu-memory-1 is destroyed with the CPU
    println!("{}", slots.0.lock().unwrap().join("\n"));

    drop((cpu0, registration));
    cpus.unplug(0)?;
    assert_eq!(live(&mem), baseline, "something was left behind");
    println!("live regions, spaces, views, listeners, RAM blocks: {baseline:?}, as before");
    Ok(())
}
