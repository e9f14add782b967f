//! Kicks that land while an MMIO read or a port write is pending lose nothing and repeat
//! nothing: the guest echoes a counting device to a port forever, is paused, resumed and
//! stopped many times, and the port sees every value exactly once, in order.

mod vcpu_support;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use addrspace::cpu::Cluster;
use addrspace::{MemTxAttrs, MemTxResult, RegionOps};
use addrspace_kvm::guest;
use addrspace_kvm::vcpu::{Entry, Hotplug, RunEnd, SpaceIndices, VcpuState};
use vcpu_support::{kvm_or_skip, Board, REPORT};

const DEV: u16 = 0xc000;

/// Reads 0, 1, 2, ... (wrapping).
#[derive(Default)]
struct Counting {
    next: AtomicU8,
    reads: AtomicUsize,
}

impl RegionOps for Counting {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        (self.next.fetch_add(1, Ordering::Relaxed).into(), MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

#[test]
fn vcpu_kicks_with_io_pending_lose_and_repeat_nothing() {
    let Some(kvm) = kvm_or_skip() else { return };
    let board = Board::new();
    let counting = Arc::new(Counting::default());
    let dev = board.mem.io("counting", 1, counting.clone()).unwrap();
    board.mem.add_subregion(board.system, u64::from(DEV), dev).unwrap();
    let program = guest::echo_forever(0x1000, DEV, REPORT).unwrap();
    board.load(&program, &[]);
    let (vm, _slots) = board.vm(&kvm);
    let cluster = Cluster::new("cpus", &board.mem, board.model(), 0, 1).unwrap();
    let mut cpus = Hotplug::new(vm.fd(), cluster, SpaceIndices::default());
    // (values reported, device reads) at the end of each round.
    let mut marks = vec![(0usize, 0usize)];
    for round in 0..10 {
        cpus.plug(0, Entry::real_mode(program.base)).unwrap();
        for _ in 0..20 {
            let before = counting.reads.load(Ordering::Relaxed);
            // Let it make some progress (a hang guard, not a timing check).
            let mut polls = 0u32;
            while counting.reads.load(Ordering::Relaxed) < before + 3 {
                polls += 1;
                assert!(polls < 10_000_000, "the guest made no progress");
                std::thread::yield_now();
            }
            let v = cpus.vcpu(0).unwrap();
            v.pause().unwrap();
            assert_eq!(v.state(), VcpuState::Paused);
            v.resume();
        }
        assert_eq!(cpus.unplug(0).unwrap(), RunEnd::Stopped, "round {round}");
        marks.push((board.report.bytes().len(), counting.reads.load(Ordering::Relaxed)));
    }
    let seen: Vec<u8> = board.report.bytes();
    let reads = counting.reads.load(Ordering::Relaxed);
    assert!(reads >= 600, "{reads} reads");
    for (round, pair) in marks.windows(2).enumerate() {
        let ((from, first), (to, last)) = (pair[0], pair[1]);
        for (i, &b) in seen[from..to].iter().enumerate() {
            assert_eq!(
                b,
                (first + i) as u8,
                "round {round}, value {i}: a lost or repeated access"
            );
        }
        // A stop can land between a completed read and its OUT (the next plug resets the
        // registers): at most that one read per round goes unreported.
        let (reported, read) = (to - from, last - first);
        assert!(read - reported <= 1, "round {round}: {read} reads, {reported} reported");
    }
    eprintln!(
        "{reads} device reads, {} reported, over 10 rounds of 20 pauses",
        seen.len()
    );
}
