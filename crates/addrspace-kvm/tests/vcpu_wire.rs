//! The two halves wired: vCPUs held out of `KVM_RUN` by the memslot listener's fence while
//! RAM they use moves, and the coalesced-MMIO ring drained in order on exits.

mod vcpu_support;

use std::sync::{Arc, Mutex};

use addrspace::cpu::Cluster;
use addrspace::{MemTxAttrs, MemTxResult, RegionOps};
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices};
use vcpu_support::{kvm_or_skip, Board, REPORT};

/// Movable RAM: 16 KiB at 0xc000 or 0xd000 (the two placements overlap).
const MOVING: u64 = 0x4000;
/// The spinning guest's counter, inside both placements.
const COUNTER: u16 = 0xe000;

#[test]
fn vcpu_moving_ram_under_a_spinning_guest_is_fenced() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let spin = guest::spin(0x1000, COUNTER).unwrap();
    board.load(&spin, &[]);
    let moving = board.mem.ram("moving", MOVING.into()).unwrap();
    board.mem.add_subregion(board.system, 0xc000, moving).unwrap();
    let (vm, slots) = board.vm(&kvm);
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    slots.set_fence(Some(cpus.fence()));
    cpus.plug(0, Entry::real_mode(spin.base)).unwrap();

    const MOVES: u64 = 40;
    for i in 0..MOVES {
        // Wait until the guest has run since the last move (a hang guard, not a timing check).
        let before = board.word(u64::from(COUNTER));
        let mut polls = 0u32;
        while board.word(u64::from(COUNTER)) == before {
            polls += 1;
            assert!(polls < 10_000_000, "the spinning guest stopped running (move {i})");
            std::thread::yield_now();
        }
        let to = if i % 2 == 0 { 0xd000 } else { 0xc000 };
        board.mem.set_address(moving, to).unwrap();
    }
    let stats = slots.stats();
    let exits = cpus.exits(0).unwrap();
    let kicked = cpus.gate().waits();
    assert_eq!(cpus.unplug(0).unwrap(), RunEnd::Stopped);
    assert!(slots.take_errors().is_empty());
    assert_eq!(stats.fenced, MOVES, "every overlapping move is fenced");
    // The counter was never missing from the memslots while the guest ran.
    assert_eq!((exits.mmio_reads, exits.mmio_writes), (0, 0), "{exits:?}");
    eprintln!("{MOVES} fenced moves, the vCPU kicked out of KVM_RUN for {kicked} of them");
}

/// Writes seen, in order: (device or port, offset, byte).
type Entries = Arc<Mutex<Vec<(&'static str, u64, u8)>>>;

/// A device and a port logging into one list, so their order can be checked.
struct Log {
    tag: &'static str,
    log: Entries,
}

impl RegionOps for Log {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, offset: u64, value: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        self.log.lock().unwrap().push((self.tag, offset, value as u8));
        MemTxResult::OK
    }
}

#[test]
fn vcpu_coalesced_writes_reach_the_device_before_the_next_exit() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let log: Entries = Arc::default();
    let dev = board
        .mem
        .io(
            "coalesced",
            0x10,
            Arc::new(Log {
                tag: "dev",
                log: log.clone(),
            }),
        )
        .unwrap();
    board.mem.add_subregion(board.system, 0xb000, dev).unwrap();
    board.mem.coalescing().add(dev, 0, 0x10).unwrap();
    // The report port logs into the same list (an overlap over the board's recorder).
    let io_root = board.io.root();
    let port = board
        .mem
        .io(
            "log-port",
            1,
            Arc::new(Log {
                tag: "port",
                log: log.clone(),
            }),
        )
        .unwrap();
    board
        .mem
        .add_subregion_overlap(io_root, u64::from(REPORT), port, 1)
        .unwrap();
    let program = guest::coalesced_then_report(0x1000, 0xb000, 3, REPORT as u8).unwrap();
    board.load(&program, &[]);
    let (vm, slots) = board.vm(&kvm);
    assert_eq!(slots.stats().coalesced, 1, "the zone is registered with KVM");
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    cpus.plug(0, Entry::real_mode(program.base)).unwrap();
    assert_eq!(cpus.wait(0).unwrap(), RunEnd::Halted);
    let exits = cpus.exits(0).unwrap();
    cpus.unplug(0).unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec![("dev", 0, 1), ("dev", 1, 2), ("dev", 2, 3), ("port", 0, 3)]
    );
    assert_eq!(
        (exits.coalesced, exits.mmio_writes, exits.pio_outs),
        (3, 0, 1),
        "{exits:?}"
    );
}
