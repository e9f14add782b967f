//! A refused re-entrant access is reported once, not once per refusal (QEMU's
//! `warn_report_once`): a guest that makes a device DMA into itself in a loop cannot flood
//! the host's log. Later refusals are `debug` events. A test binary of its own, because the
//! "once" is per process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use addrspace::{Endianness, GuestAddr, MemTxAttrs, MemTxResult, Memory, RegionOps, WeakAddressSpace, SIZE_2_64};
use tracing::{span, Event, Level, Metadata, Subscriber};

/// Counts events by level; no output.
#[derive(Default)]
struct Counts {
    warn: AtomicUsize,
    debug: AtomicUsize,
}

struct Counter(Arc<Counts>);

impl Subscriber for Counter {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, e: &Event<'_>) {
        match *e.metadata().level() {
            Level::WARN => self.0.warn.fetch_add(1, Ordering::Relaxed),
            Level::DEBUG => self.0.debug.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Register 0 reads register 4 of itself through the space.
struct Loop(OnceLock<WeakAddressSpace>);

impl RegionOps for Loop {
    fn read(&self, offset: u64, _: u32, a: MemTxAttrs) -> (u64, MemTxResult) {
        if offset == 0 {
            let space = self.0.get().unwrap().upgrade().unwrap();
            let (_, r) = space.load::<u32>(GuestAddr(0x1004), Endianness::Little, a);
            return (u64::from(r.bits()), MemTxResult::OK);
        }
        (0, MemTxResult::OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

#[test]
fn a_flood_of_refused_reentries_warns_once() {
    let mem = Memory::new();
    let root = mem.container("system", SIZE_2_64).unwrap();
    let space = mem.address_space("memory", root).unwrap();
    let dev = Arc::new(Loop(OnceLock::new()));
    let r = mem.io("loop", 0x100, dev.clone()).unwrap();
    mem.add_subregion(root, 0x1000, r).unwrap();
    dev.0.set(space.downgrade()).unwrap();
    let counts = Arc::new(Counts::default());
    tracing::subscriber::with_default(Counter(counts.clone()), || {
        for _ in 0..100 {
            let (inner, _) = space.load::<u32>(GuestAddr(0x1000), Endianness::Little, MemTxAttrs::default());
            assert_eq!(inner, u32::from(MemTxResult::ACCESS_ERROR.bits()), "each one refused");
        }
    });
    assert_eq!(counts.warn.load(Ordering::Relaxed), 1, "one warning for 100 refusals");
    assert_eq!(counts.debug.load(Ordering::Relaxed), 99, "the others at debug level");
}
