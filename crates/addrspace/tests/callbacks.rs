//! User code the library calls — device ops, listeners, a device's `Drop` — may call back
//! into the memory system: queries always, changes where the README allows them. The
//! library never calls user code with its own state borrowed. And a listener that panics
//! (caught by the caller) leaves readers seeing what the memory system says is committed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use addrspace::{
    AccessRules, GuestAddr, MemTxAttrs, MemTxResult, Memory, MemoryListener, RegionId, RegionOps, Section, WeakMemory,
    SIZE_2_64,
};

/// Calls `stats()` (a query) on the memory system it is given, and counts the calls.
#[derive(Default)]
struct Asks {
    memory: Mutex<WeakMemory>,
    calls: AtomicUsize,
}

impl Asks {
    fn on(mem: &Memory) -> Arc<Asks> {
        let a = Arc::new(Asks::default());
        *a.memory.lock().unwrap() = mem.downgrade();
        a
    }
    fn ask(&self) -> Option<Memory> {
        let mem = self.memory.lock().unwrap().upgrade()?;
        let _ = mem.stats();
        self.calls.fetch_add(1, Ordering::Relaxed);
        Some(mem)
    }
}

impl RegionOps for Asks {
    fn read(&self, _offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, _offset: u64, _value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
    fn rules(&self) -> AccessRules {
        self.ask();
        AccessRules::default()
    }
}

impl MemoryListener for Asks {
    fn wants_sections(&self) -> bool {
        self.ask();
        true
    }
}

/// A listener that queries the memory system when asked whether it wants `region_nop`.
struct AsksForNop(Arc<Asks>);

impl MemoryListener for AsksForNop {
    fn wants_region_nop(&self) -> bool {
        self.0.ask();
        true
    }
}

fn system(mem: &Memory) -> RegionId {
    let sys = mem.container("system", SIZE_2_64).unwrap();
    mem.add_subregion(sys, 0, mem.ram("ram", 0x1000).unwrap()).unwrap();
    mem.add_subregion(sys, 0x8000, mem.ram("ram2", 0x1000).unwrap())
        .unwrap();
    sys
}

#[test]
fn region_ops_rules_may_query_the_memory_system() {
    let mem = Memory::new();
    let ops = Asks::on(&mem);
    let dev = mem.io("dev", 0x100, ops.clone()).unwrap();
    assert!(ops.calls.load(Ordering::Relaxed) > 0, "rules() was asked");
    assert_eq!(mem.region_info(dev).unwrap().name, "dev");
}

/// Registers the listener `make` builds over `asks`, then commits a change its space sees;
/// `question` was asked (with the state free to query) and the commit went through.
fn listener_asks(make: impl FnOnce(Arc<Asks>) -> Arc<dyn MemoryListener>, question: &str) {
    let mem = Memory::new();
    let sys = system(&mem);
    let space = mem.address_space("memory", sys).unwrap();
    let asks = Asks::on(&mem);
    let _h = space.register_listener(make(asks.clone()), 0).unwrap();
    mem.add_subregion(sys, 0x4000, mem.ram("more", 0x1000).unwrap())
        .unwrap();
    assert!(asks.calls.load(Ordering::Relaxed) > 0, "{question} was asked");
    assert!(space.lookup(GuestAddr(0x4000)).is_some());
}

#[test]
fn wants_sections_may_query_the_memory_system() {
    listener_asks(|a| a, "wants_sections()");
}

#[test]
fn wants_region_nop_may_query_the_memory_system() {
    listener_asks(|a| Arc::new(AsksForNop(a)), "wants_region_nop()");
}

/// A device whose `Drop` queries and changes the memory system (a device model that
/// unregisters something of its own when it goes).
struct Device {
    asks: Arc<Asks>,
    dropped: Arc<AtomicUsize>,
}

impl RegionOps for Device {
    fn read(&self, _offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        (0, MemTxResult::OK)
    }
    fn write(&self, _offset: u64, _value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Some(mem) = self.asks.ask() {
            // A change: the device's scratch region goes with it.
            let scratch = mem.ram("scratch", 0x1000).unwrap();
            mem.delete_region(scratch).unwrap();
        }
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_device_dropped_by_delete_region_may_call_the_memory_system() {
    let mem = Memory::new();
    let sys = system(&mem);
    let space = mem.address_space("memory", sys).unwrap();
    let base = mem.stats();
    let dropped = Arc::new(AtomicUsize::new(0));
    let new_dev = || {
        Arc::new(Device {
            asks: Asks::on(&mem),
            dropped: dropped.clone(),
        })
    };
    // Never mapped: deleting the region drops the device.
    let dev = mem.io("dev", 0x100, new_dev()).unwrap();
    mem.delete_region(dev).unwrap();
    assert_eq!(dropped.load(Ordering::Relaxed), 1);
    // Mapped, unmapped and deleted (a view held it until the commit replaced it).
    let dev = mem.io("dev", 0x100, new_dev()).unwrap();
    mem.add_subregion(sys, 0x2000, dev).unwrap();
    mem.remove_subregion(sys, dev).unwrap();
    mem.delete_region(dev).unwrap();
    assert_eq!(dropped.load(Ordering::Relaxed), 2);
    // Torn down with others in one transaction.
    let dev = mem.io("dev", 0x100, new_dev()).unwrap();
    mem.add_subregion(sys, 0x2000, dev).unwrap();
    mem.delete_regions(&[dev]).unwrap();
    assert_eq!(dropped.load(Ordering::Relaxed), 3);
    assert_eq!(mem.stats().regions, base.regions);
    assert!(space.lookup(GuestAddr(0x2000)).is_none());
}

/// Panics in `region_add` for the region named `boom`.
struct Panics;

impl MemoryListener for Panics {
    fn region_add(&self, s: &Section<'_>) {
        if s.name() == "boom" {
            panic!("listener failure");
        }
    }
}

#[test]
fn a_listener_panicking_in_region_add_leaves_the_commit_published() {
    let mem = Memory::new();
    let sys = system(&mem);
    let space = mem.address_space("memory", sys).unwrap();
    let mut cpu = space.accessor();
    let _h = space.register_listener(Arc::new(Panics), 0).unwrap();
    let boom = mem.ram("boom", 0x1000).unwrap();
    let r = catch_unwind(AssertUnwindSafe(|| mem.add_subregion(sys, 0x4000, boom)));
    assert!(r.is_err(), "the listener's panic reaches the caller");
    // What the memory system says is committed is what readers see.
    let model: Vec<String> = mem
        .render(sys)
        .unwrap()
        .ranges()
        .iter()
        .map(|r| r.name().to_string())
        .collect();
    let seen: Vec<String> = space.view().ranges().iter().map(|r| r.name().to_string()).collect();
    assert_eq!(seen, model, "published view and committed layout differ");
    assert_eq!(
        cpu.lookup(GuestAddr(0x4000))
            .map(|(r, _)| r.name().to_string())
            .as_deref(),
        Some("boom")
    );
    // And the memory system still works.
    mem.add_subregion(sys, 0x6000, mem.ram("after", 0x1000).unwrap())
        .unwrap();
    assert!(space.lookup(GuestAddr(0x6000)).is_some());
}
