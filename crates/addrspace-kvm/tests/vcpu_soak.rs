//! The soak: 1 000 plug/unplug cycles with short guest runs (one that halts, one
//! still spinning when it is unplugged), RAM through the memslot listener: parked fds
//! reused, no growth in open fds, threads, memslots, address spaces, flat views, regions or
//! heap (a counting global allocator). Alone in its binary: it counts the process's fds and
//! heap.

mod vcpu_support;

#[path = "vcpu_support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

use addrspace::cpu::Cluster;
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices};
use vcpu_support::{kvm_or_skip, open_fds, threads, Board, COM1, UART};

const CYCLES: usize = 1_000;

#[test]
fn vcpu_plug_unplug_cycles_do_not_grow() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let hello = guest::uart_hello(0x1000, 0x2000, 1, UART, COM1).unwrap();
    board.load(&hello, &[(0x2000, b"x")]);
    let spin = guest::spin(0x1100, 0x3000).unwrap();
    board.load(&spin, &[]);
    let (vm, slots) = board.vm(&kvm);
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 2).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());

    let cycle = |cpus: &mut Hotplug| {
        let counter = board.word(0x3000);
        cpus.plug(0, Entry::real_mode(hello.base)).unwrap();
        cpus.plug(1, Entry::real_mode(spin.base)).unwrap();
        assert_eq!(cpus.wait(0).unwrap(), RunEnd::Halted);
        // Unplug slot 1 only once its guest is running (a hang guard, not a timing check).
        let mut polls = 0u32;
        while board.word(0x3000) == counter {
            polls += 1;
            assert!(polls < 1_000_000, "the spinning guest never ran");
            std::thread::yield_now();
        }
        assert_eq!(cpus.unplug(0).unwrap(), RunEnd::Halted);
        assert_eq!(cpus.unplug(1).unwrap(), RunEnd::Stopped);
        // One byte through the UART per cycle; cleared (capacity kept) so the recorders
        // do not grow the heap.
        assert_eq!(board.uart.bytes(), b"x");
        board.uart.writes.lock().unwrap().clear();
        board.com1.writes.lock().unwrap().clear();
    };
    // The first cycle creates both vCPU fds (they are parked from then on).
    cycle(&mut cpus);
    let (fds, tasks, stats) = (open_fds(), threads(), board.mem.stats());
    let (memslots, ioctls) = (slots.slots().len(), slots.stats().set_region);
    let heap = counting::live_bytes();
    for _ in 1..CYCLES {
        cycle(&mut cpus);
        assert!(cpus.pool().parked() <= 2, "parked fds bounded by the ids used");
    }
    let grown = counting::live_bytes() - heap;
    let after = board.mem.stats();
    assert_eq!(slots.slots().len(), memslots, "memslots");
    assert_eq!(slots.stats().set_region, ioctls, "plugging vCPUs changes no memslot");
    assert!(slots.take_errors().is_empty());
    assert_eq!(open_fds(), fds, "open fds");
    assert_eq!(threads(), tasks, "threads");
    assert_eq!(after.address_spaces, stats.address_spaces, "address spaces");
    assert_eq!(after.flatviews, stats.flatviews, "flat views");
    assert_eq!(after.regions, stats.regions, "regions");
    assert_eq!(after.listeners, stats.listeners, "listeners");
    assert_eq!(cpus.pool().parked(), 2);
    eprintln!(
        "{CYCLES} cycles: {} open fds, {} threads, {memslots} memslots, {} address spaces, {} flat views, 2 parked vCPU fds, heap {grown:+} bytes",
        fds, tasks, stats.address_spaces, stats.flatviews
    );
    assert_eq!(grown, 0, "heap grew by {grown} bytes");
}
