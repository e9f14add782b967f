//! The re-entrancy guard, as QEMU's `MemReentrancyGuard`: it belongs to a device (the ops
//! object, or every ops object sharing a `RegionOps::device_key`), so a device's handler may
//! DMA into *another* device's registers on the same thread but not into its own; ROM
//! devices are exempt, as in QEMU.

mod common;
use common::{board, Board};
use std::sync::{Arc, Mutex, OnceLock};

use addrspace::{AccessRules, Endianness, GuestAddr, MemTxAttrs, MemTxResult, RegionOps, WeakAddressSpace};

const LE: Endianness = Endianness::Little;
const OK: MemTxResult = MemTxResult::OK;

fn attrs() -> MemTxAttrs {
    MemTxAttrs::default()
}

/// A device whose read of register 0 first loads 4 bytes at `dma_to` through an address
/// space (its DMA), recording the result; other registers read as their offset.
struct Dma {
    space: OnceLock<WeakAddressSpace>,
    dma_to: u64,
    /// Shared by every region of one device (`device_key`), if set.
    key: Option<usize>,
    seen: Mutex<Option<(u32, MemTxResult)>>,
}

impl Dma {
    fn new(dma_to: u64, key: Option<usize>) -> Arc<Dma> {
        Arc::new(Dma {
            space: OnceLock::new(),
            dma_to,
            key,
            seen: Mutex::new(None),
        })
    }
    fn seen(&self) -> Option<(u32, MemTxResult)> {
        self.seen.lock().unwrap().take()
    }
}

impl RegionOps for Dma {
    fn read(&self, offset: u64, _: u32, a: MemTxAttrs) -> (u64, MemTxResult) {
        if offset == 0 {
            let space = self.space.get().unwrap().upgrade().unwrap();
            *self.seen.lock().unwrap() = Some(space.load::<u32>(GuestAddr(self.dma_to), LE, a));
        }
        (offset, OK)
    }
    fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
        OK
    }
    fn rules(&self) -> AccessRules {
        AccessRules::default()
    }
    fn device_key(&self) -> usize {
        self.key.unwrap_or(self as *const Dma as usize)
    }
}

/// Maps `dev` at `at` and lets it DMA through the board's space.
fn plug(b: &Board, name: &str, at: u64, dev: &Arc<Dma>) {
    b.map_io(name, at, dev.clone());
    dev.space.set(b.space.downgrade()).unwrap();
}

#[test]
fn dma_into_another_device_on_the_same_thread_is_allowed() {
    let b = board();
    let a = Dma::new(0x2004, None);
    let other = Dma::new(0, None);
    plug(&b, "a", 0x1000, &a);
    plug(&b, "b", 0x2000, &other);
    assert_eq!(b.space.load::<u32>(GuestAddr(0x1000), LE, attrs()), (0, OK));
    assert_eq!(a.seen(), Some((4, OK)), "A's DMA reached B's register 4");
    // And back: B's handler DMAs into A while A is idle.
    let b2 = Dma::new(0x1004, None);
    plug(&b, "b2", 0x3000, &b2);
    assert_eq!(b.space.load::<u32>(GuestAddr(0x3000), LE, attrs()), (0, OK));
    assert_eq!(b2.seen(), Some((4, OK)));
}

#[test]
fn dma_into_itself_is_refused_also_through_another_region_of_the_device() {
    let b = board();
    let itself = Dma::new(0x1004, None);
    plug(&b, "self", 0x1000, &itself);
    assert_eq!(b.space.load::<u32>(GuestAddr(0x1000), LE, attrs()), (0, OK));
    assert_eq!(itself.seen(), Some((0, MemTxResult::ACCESS_ERROR)));
    // Two ops objects, one device: region 1's handler DMAs into region 2.
    let bar0 = Dma::new(0x5004, Some(0xbeef));
    let bar1 = Dma::new(0, Some(0xbeef));
    plug(&b, "bar0", 0x4000, &bar0);
    plug(&b, "bar1", 0x5000, &bar1);
    assert_eq!(b.space.load::<u32>(GuestAddr(0x4000), LE, attrs()), (0, OK));
    assert_eq!(bar0.seen(), Some((0, MemTxResult::ACCESS_ERROR)), "same device_key");
    // The guard is released: a direct access works.
    assert_eq!(b.space.load::<u32>(GuestAddr(0x5004), LE, attrs()), (4, OK));
}

#[test]
fn rom_devices_are_exempt() {
    // QEMU does not guard ROM devices (`mr->rom_device`), in romd mode or not.
    let b = board();
    let flash = Dma::new(0x1004, None);
    let r = b.mem.rom_device("flash", 0x1000, flash.clone()).unwrap();
    b.mem.add_subregion(b.system, 0x1000, r).unwrap();
    b.mem.set_romd(r, false).unwrap();
    flash.space.set(b.space.downgrade()).unwrap();
    assert_eq!(b.space.load::<u32>(GuestAddr(0x1000), LE, attrs()), (0, OK));
    assert_eq!(flash.seen(), Some((4, OK)), "a ROM device may re-enter itself");
}

#[test]
fn the_guard_does_not_span_threads() {
    // Deliberately unlike QEMU (whose flag lives in the device and is shared by every thread,
    // which the BQL serializes): a vCPU thread inside a device does not refuse another vCPU's
    // concurrent access to it. Here the handler waits for a second thread's access.
    struct Waits {
        space: OnceLock<WeakAddressSpace>,
        other: Mutex<Option<(u32, MemTxResult)>>,
    }
    impl RegionOps for Waits {
        fn read(&self, offset: u64, _: u32, a: MemTxAttrs) -> (u64, MemTxResult) {
            if offset == 0 {
                let space = self.space.get().unwrap().upgrade().unwrap();
                let r = std::thread::scope(|s| s.spawn(|| space.load::<u32>(GuestAddr(0x1008), LE, a)).join());
                *self.other.lock().unwrap() = Some(r.unwrap());
            }
            (offset, OK)
        }
        fn write(&self, _: u64, _: u64, _: u32, _: MemTxAttrs) -> MemTxResult {
            OK
        }
    }
    let b = board();
    let dev = Arc::new(Waits {
        space: OnceLock::new(),
        other: Mutex::new(None),
    });
    b.map_io("waits", 0x1000, dev.clone());
    dev.space.set(b.space.downgrade()).unwrap();
    assert_eq!(b.space.load::<u32>(GuestAddr(0x1000), LE, attrs()), (0, OK));
    assert_eq!(*dev.other.lock().unwrap(), Some((8, OK)));
}
