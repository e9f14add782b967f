//! 200 plug/unplug cycles with short guest runs (one that halts, one still spinning when it
//! is unplugged): no growth in open fds, threads, address spaces, flat views or regions;
//! parked fds bounded by the ids used. Alone in its binary: it counts the process's fds.

mod vcpu_support;

use addrspace::cpu::Cluster;
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices};
use vcpu_support::{kvm_or_skip, open_fds, Board, COM1, UART};

const CYCLES: usize = 200;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn vcpu_plug_unplug_cycles_do_not_grow() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let hello = guest::uart_hello(0x1000, 0x2000, 1, UART, COM1).unwrap();
    board.load(&hello, &[(0x2000, b"x")]);
    let spin = guest::spin(0x1100, 0x3000).unwrap();
    board.load(&spin, &[]);
    let vm = board.vm(&kvm);
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 2).unwrap();
    let mut cpus = Hotplug::new(vm, cluster, SpaceIndices::default());

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
    };
    // The first cycle creates both vCPU fds (they are parked from then on).
    cycle(&mut cpus);
    let (fds, tasks, stats) = (open_fds(), threads(), board.mem.stats());
    for _ in 1..CYCLES {
        cycle(&mut cpus);
        assert!(cpus.pool().parked() <= 2, "parked fds bounded by the ids used");
    }
    let after = board.mem.stats();
    assert_eq!(open_fds(), fds, "open fds");
    assert_eq!(threads(), tasks, "threads");
    assert_eq!(after.address_spaces, stats.address_spaces, "address spaces");
    assert_eq!(after.flatviews, stats.flatviews, "flat views");
    assert_eq!(after.regions, stats.regions, "regions");
    assert_eq!(after.listeners, stats.listeners, "listeners");
    assert_eq!(cpus.pool().parked(), 2);
    assert_eq!(board.uart.bytes().len(), CYCLES);
    eprintln!(
        "{CYCLES} cycles: {} open fds, {} threads, {} address spaces, {} flat views, 2 parked vCPU fds",
        fds, tasks, stats.address_spaces, stats.flatviews
    );
}
