//! CPU hot-plug and unplug with per-CPU roots, a TCG-style TLB per vCPU, and a DMA engine —
//! and the counters that show nothing is left behind.
//!
//! Run: `cargo run -p addrspace --example cpu_hotplug`

use std::sync::Arc;

use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView, PerCpuRoot};
use addrspace::dma::DmaDevice;
use addrspace::ram::RamBlock;
use addrspace::tlb::SoftTlb;
use addrspace::{Endianness, GuestAddr, MemTxAttrs, Memory, Unassigned, SIZE_2_64};

fn main() -> Result<(), addrspace::Error> {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64)?;
    let ram = mem.ram("ram", 0x100_0000)?;
    mem.add_subregion(system, 0, ram)?;
    let board_space = mem.address_space("memory", system)?;

    // An M-profile-like CPU: its own container with a private NVIC over system memory.
    let armv7m = Arc::new(move |m: &Memory, cpu: u32| {
        let root = m.container("armv7m-container", SIZE_2_64)?;
        let sys = m.alias("system", system, 0, SIZE_2_64)?;
        let nvic = m.io(&format!("nvic{cpu}"), 0x1000, Arc::new(Unassigned))?;
        m.add_subregion_overlap(root, 0, sys, -1)?;
        m.add_subregion(root, 0xe000_e000, nvic)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, sys, nvic],
        })
    });
    let model = CpuModel {
        spaces: vec![CpuSpaceSpec {
            index: 0,
            prefix: "cpu-memory".into(),
            view: CpuView::PerCpu(armv7m),
        }],
        tlb: true,
    };
    let mut cpus = Cluster::new("cpus", &mem, model, 0, 4)?;
    let baseline = (mem.stats(), RamBlock::live_count());

    let cpu = cpus.plug(0)?;
    let space = cpu.address_space(0).expect("index 0").clone();
    let mut tlb = SoftTlb::new(&space, cpu.tlb_listener(0).expect("tlb").clone());
    let attrs = MemTxAttrs::default();
    for i in 0..1000u64 {
        assert!(tlb.store(GuestAddr(i * 8), i, Endianness::Little, attrs).is_ok());
    }
    let sum: u64 = (0..1000u64)
        .map(|i| tlb.load::<u64>(GuestAddr(i * 8), Endianness::Little, attrs).0)
        .sum();
    println!(
        "cpu 0 wrote and read back 1000 words (sum {sum}); TLB {:?}",
        tlb.stats()
    );
    println!(
        "its NVIC at 0xe000e000: {} through cpu-memory-0, {} through the board's space",
        space
            .lookup(GuestAddr(0xe000_e000))
            .map_or("nothing".into(), |(r, _)| r.name().to_string()),
        board_space
            .lookup(GuestAddr(0xe000_e000))
            .map_or("nothing".into(), |(r, _)| r.name().to_string()),
    );

    // The CPU's view stores only its private window and borrows the rest from the board's.
    let view = space.view();
    println!(
        "cpu-memory-0: {} ranges, {} of its own; the rest borrowed from the board's view: {}",
        view.ranges().len(),
        view.own_ranges(),
        view.base().is_some_and(|b| Arc::ptr_eq(b, &board_space.view())),
    );
    drop(view);

    // A DMA engine copies inside its own space.
    let dma = DmaDevice::plug(&mem, "dma", system, system, 0x1000_0000)?;
    for (reg, v) in [(0x00, 0u64), (0x08, 0x8000), (0x10, 64), (0x18, 1)] {
        assert!(board_space
            .store(GuestAddr(0x1000_0000 + reg), v, Endianness::Little, attrs)
            .is_ok());
    }
    let copied = board_space
        .load::<u64>(GuestAddr(0x8000 + 8), Endianness::Little, attrs)
        .0;
    println!("DMA copied word 1 to 0x8008: {copied}");

    drop(tlb);
    drop(space);
    for _ in 0..10_000 {
        cpus.unplug(0)?;
        cpus.plug(0)?;
    }
    cpus.unplug(0)?;
    drop(dma);
    let after = (mem.stats(), RamBlock::live_count());
    println!(
        "after 10 000 unplug/re-plug cycles: regions {} -> {}, spaces {} -> {}, views {} -> {}, listeners {} -> {}, RAM blocks {} -> {}",
        baseline.0.regions,
        after.0.regions,
        baseline.0.address_spaces,
        after.0.address_spaces,
        baseline.0.flatviews,
        after.0.flatviews,
        baseline.0.listeners,
        after.0.listeners,
        baseline.1,
        after.1
    );
    assert_eq!(
        (after.0.regions, after.0.address_spaces, after.0.listeners),
        (baseline.0.regions, baseline.0.address_spaces, baseline.0.listeners)
    );
    Ok(())
}
