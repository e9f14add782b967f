//! Unplug ends the CPU's address spaces even if someone kept a handle (a vCPU thread's clone,
//! as in real VMMs): the stale handle sees the empty view (decode errors), counts nothing, and
//! the memory system's counters are back at their baseline. A board-owned space the CPU only
//! used stays. A reader inside an access during the unplug finishes on the view it holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

mod common;
use common::cpus::{smm, SMRAM};

use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView};
use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionId, SIZE_2_64};

/// System with 64 KiB of RAM (every byte 0x11) and a board-owned SMRAM (every byte 0x5a).
fn board() -> (Memory, RegionId, RegionId) {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let fill = |name: &str, size: usize, byte: u8| {
        let r = mem.ram(name, size as u128).unwrap();
        let block = mem.leaf(r).unwrap().unwrap().backend().ram().unwrap().clone();
        assert!(block.write(0, &vec![byte; size]));
        r
    };
    let ram = fill("ram", 0x10000, 0x11);
    let smram = fill("smram", 0x20000, 0x5a);
    mem.add_subregion(system, 0, ram).unwrap();
    (mem, system, smram)
}

/// Per CPU: `cpu-memory-N` over system, `cpu-smm-N` over a per-CPU root, and index 2 the
/// board's own space (shared by every CPU, not the CPU's to end).
fn cluster(mem: &Memory, system: RegionId, smram: RegionId, board_space: &addrspace::AddressSpace) -> Cluster {
    let spec = |index, prefix: &str, view| CpuSpaceSpec {
        index,
        prefix: prefix.into(),
        view,
    };
    let model = CpuModel {
        spaces: vec![
            spec(0, "cpu-memory", CpuView::Root(system)),
            spec(1, "cpu-smm", CpuView::PerCpu(smm(system, smram))),
            spec(2, "board", CpuView::Shared(board_space.clone())),
        ],
        tlb: true,
    };
    Cluster::new("cpus", mem, model, 0, 4).unwrap()
}

fn read_u8(space: &addrspace::AddressSpace, addr: u64) -> (u8, MemTxResult) {
    space.load::<u8>(GuestAddr(addr), Endianness::Little, MemTxAttrs::default())
}

#[test]
fn unplug_ends_the_cpus_spaces_even_with_a_handle_kept() {
    let (mem, system, smram) = board();
    let board_space = mem.address_space("memory", system).unwrap();
    let mut cpus = cluster(&mem, system, smram, &board_space);
    cpus.plug(0).unwrap();
    let base = mem.stats();
    cpus.plug(1).unwrap();
    let kept: Vec<_> = (0..3)
        .map(|i| cpus.cpu(1).unwrap().address_space(i).unwrap().clone())
        .collect();
    let mut accessor = kept[1].accessor();
    let weak = kept[0].downgrade();
    assert_eq!(read_u8(&kept[0], 0x100), (0x11, MemTxResult::OK));
    assert_eq!(read_u8(&kept[1], SMRAM), (0x5a, MemTxResult::OK));
    assert!(mem.stats().address_spaces > base.address_spaces);

    cpus.unplug(1).unwrap();
    // The CPU's own spaces are gone for every handle: empty view, decode errors.
    for stale in &kept[..2] {
        assert!(
            stale.view().ranges().is_empty(),
            "{} still shows a layout",
            stale.name()
        );
        assert_eq!(read_u8(stale, 0x100), (0, MemTxResult::DECODE_ERROR));
        assert!(stale.lookup(GuestAddr(SMRAM)).is_none());
    }
    let (_, res) = accessor.load::<u8>(GuestAddr(SMRAM), Endianness::Little, MemTxAttrs::default());
    assert_eq!(
        res,
        MemTxResult::DECODE_ERROR,
        "an accessor of a stale handle sees nothing"
    );
    // The board's space is not the CPU's to end.
    assert_eq!(read_u8(&kept[2], 0x100), (0x11, MemTxResult::OK));
    // Counted nothing: spaces, listeners, regions and views are back where they were.
    let after = mem.stats();
    assert_eq!(
        (after.address_spaces, after.listeners, after.regions, after.flatviews),
        (base.address_spaces, base.listeners, base.regions, base.flatviews),
        "{after:?} vs {base:?}"
    );
    // The stale handle still exists but cannot bring the space back to life.
    assert!(weak.upgrade().is_some(), "the handle itself is still held");
    assert!(kept[0].register_listener(Arc::new(Nop), 0).is_err());
    assert_eq!(mem.stats().listeners, base.listeners);
    // The slot can be plugged again.
    cpus.plug(1).unwrap();
    assert_eq!(
        read_u8(cpus.cpu(1).unwrap().address_space(1).unwrap(), SMRAM),
        (0x5a, MemTxResult::OK)
    );
    drop(kept);
    cpus.unplug(1).unwrap();
    assert_eq!(mem.stats().address_spaces, base.address_spaces);
}

struct Nop;
impl addrspace::MemoryListener for Nop {}

#[test]
fn a_reader_inside_an_access_during_unplug_finishes_safely() {
    let (mem, system, smram) = board();
    let board_space = mem.address_space("memory", system).unwrap();
    let mut cpus = cluster(&mem, system, smram, &board_space);
    let base = mem.stats();
    cpus.plug(1).unwrap();
    let space = cpus.cpu(1).unwrap().address_space(1).unwrap().clone();
    // A view held across the unplug (a reader in the middle of an access): it keeps what it
    // shows alive and readable.
    let held = space.view();
    let started = Arc::new(AtomicBool::new(false));
    let reader = {
        let (space, started) = (space, started.clone());
        thread::spawn(move || {
            let mut cpu = space.accessor();
            let mut buf = [0u8; 64];
            // Bounded: a reader that never sees the unplug fails the test below.
            for i in 0..50_000_000u64 {
                let res = cpu.read(GuestAddr(SMRAM), &mut buf, MemTxAttrs::default());
                if i == 0 {
                    assert_eq!(res, MemTxResult::OK);
                    started.store(true, Ordering::Release);
                }
                if res == MemTxResult::OK {
                    assert_eq!(buf, [0x5a; 64], "a whole old view, never freed memory");
                } else {
                    assert_eq!(res, MemTxResult::DECODE_ERROR);
                    assert_eq!(buf, [0; 64], "unassigned reads as zero");
                    return true;
                }
            }
            false
        })
    };
    while !started.load(Ordering::Acquire) {
        thread::yield_now();
    }
    cpus.unplug(1).unwrap();
    assert!(reader.join().unwrap(), "the reader saw the space end");
    let (range, off) = held.lookup(GuestAddr(SMRAM)).unwrap();
    let block = range.leaf().backend().ram().unwrap();
    let mut byte = [0u8; 1];
    assert!(block.read(off.0, &mut byte));
    assert_eq!(byte, [0x5a], "the held view still reads what it showed");
    drop(held);
    let after = mem.stats();
    assert_eq!(
        (after.address_spaces, after.regions, after.flatviews),
        (base.address_spaces, base.regions, base.flatviews)
    );
}
