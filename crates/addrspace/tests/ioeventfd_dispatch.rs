//! A software write (through an address space or accessor) that matches an ioeventfd
//! registered on the device's region signals the eventfd and does not reach the device, as
//! QEMU's `memory_region_dispatch_write` does when no accelerator handles ioeventfds.

mod common;
use common::board;

use std::io::ErrorKind;
use std::sync::{Arc, Mutex};

use addrspace::{AccessRules, Endianness, GuestAddr, MemTxAttrs, MemTxResult, RegionOps, SizeRule};
use vmm_sys_util::eventfd::EventFd;

const LE: Endianness = Endianness::Little;
const OK: MemTxResult = MemTxResult::OK;

/// Logs writes.
struct Dev {
    rules: AccessRules,
    writes: Mutex<Vec<(u64, u32, u64)>>,
}

impl Dev {
    fn new(rules: AccessRules) -> Arc<Dev> {
        Arc::new(Dev {
            rules,
            writes: Mutex::new(Vec::new()),
        })
    }
    fn writes(&self) -> Vec<(u64, u32, u64)> {
        std::mem::take(&mut *self.writes.lock().unwrap())
    }
}

impl RegionOps for Dev {
    fn read(&self, _: u64, _: u32, _: MemTxAttrs) -> (u64, MemTxResult) {
        (0, OK)
    }
    fn write(&self, offset: u64, value: u64, size: u32, _: MemTxAttrs) -> MemTxResult {
        self.writes.lock().unwrap().push((offset, size, value));
        OK
    }
    fn rules(&self) -> AccessRules {
        self.rules
    }
}

fn fd() -> Arc<EventFd> {
    Arc::new(EventFd::new(libc::EFD_NONBLOCK).unwrap())
}

/// How many times `fd` was signalled since the last call (0 if never).
fn signals(fd: &EventFd) -> u64 {
    match fd.read() {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
        Err(e) => panic!("eventfd read: {e}"),
    }
}

#[test]
fn a_matching_write_signals_the_fd_instead_of_the_device() {
    let b = board();
    let dev = Dev::new(AccessRules::default());
    let r = b.map_io("doorbell", 0x1000, dev.clone());
    let kick = fd();
    b.mem.ioeventfds().add(r, 0x10, 4, Some(0x1234), kick.clone()).unwrap();
    let a = MemTxAttrs::default();

    assert_eq!(b.space.store(GuestAddr(0x1010), 0x1234u32, LE, a), OK);
    assert_eq!(signals(&kick), 1, "the matching store signalled");
    assert_eq!(dev.writes(), [], "and did not reach the device");

    // Other data, another size, another offset: the device gets them, the fd stays quiet.
    assert_eq!(b.space.store(GuestAddr(0x1010), 0x5678u32, LE, a), OK);
    assert_eq!(b.space.store(GuestAddr(0x1010), 0x1234u16, LE, a), OK);
    assert_eq!(b.space.store(GuestAddr(0x1014), 0x1234u32, LE, a), OK);
    assert_eq!(signals(&kick), 0);
    assert_eq!(dev.writes(), [(0x10, 4, 0x5678), (0x10, 2, 0x1234), (0x14, 4, 0x1234)]);

    // Byte slices and accessors go through the same check.
    assert_eq!(b.space.write(GuestAddr(0x1010), &0x1234u32.to_le_bytes(), a), OK);
    let mut acc = b.space.accessor();
    assert_eq!(acc.store(GuestAddr(0x1010), 0x1234u32, LE, a), OK);
    assert_eq!(signals(&kick), 2);
    assert_eq!(dev.writes(), []);

    // Unregistered: back to the device.
    b.mem.ioeventfds().del(r, 0x10, 4, Some(0x1234), kick.clone()).unwrap();
    assert_eq!(b.space.store(GuestAddr(0x1010), 0x1234u32, LE, a), OK);
    assert_eq!(signals(&kick), 0);
    assert_eq!(dev.writes(), [(0x10, 4, 0x1234)]);
}

#[test]
fn size_zero_matches_any_write_at_the_offset_and_data_is_compared_in_device_order() {
    let b = board();
    let dev = Dev::new(AccessRules {
        endianness: Endianness::Big,
        valid: SizeRule::aligned(1, 4),
        ..AccessRules::default()
    });
    let r = b.map_io("be-dev", 0x2000, dev.clone());
    let any = fd();
    let exact = fd();
    b.mem.ioeventfds().add(r, 0x0, 0, None, any.clone()).unwrap();
    // Registered data is in the guest's (little-endian) order, like a little-endian store.
    b.mem
        .ioeventfds()
        .add(r, 0x8, 4, Some(0x1122_3344), exact.clone())
        .unwrap();
    let a = MemTxAttrs::default();

    assert_eq!(b.space.store(GuestAddr(0x2000), 7u8, LE, a), OK);
    assert_eq!(b.space.store(GuestAddr(0x2000), 0xffff_ffffu32, LE, a), OK);
    assert_eq!(signals(&any), 2, "size 0: any size, any value");
    assert_eq!(b.space.store(GuestAddr(0x2008), 0x1122_3344u32, LE, a), OK);
    assert_eq!(signals(&exact), 1);
    // The same number stored big-endian is another value for the device.
    assert_eq!(b.space.store(GuestAddr(0x2008), 0x1122_3344u32, Endianness::Big, a), OK);
    assert_eq!(signals(&exact), 0);
    assert_eq!(dev.writes(), [(0x8, 4, 0x1122_3344)]);

    // An access the device's rules refuse is refused before the ioeventfd check (as QEMU).
    assert_eq!(b.space.store(GuestAddr(0x2000), 1u64, LE, a), MemTxResult::DECODE_ERROR);
    assert_eq!(signals(&any), 0);
    assert_eq!(dev.writes(), []);
}
