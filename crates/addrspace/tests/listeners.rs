//! Listener features beyond region add/del: dirty logging (per-region clients, global
//! tracking with refusal rollback, log_sync, the dirty bitmap written through the address
//! space), ioeventfds and coalesced MMIO — each checked against the exact callback sequence.

use std::sync::{Arc, Mutex};

use addrspace::listener::{ListenerRefused, PRIORITY_ACCEL, PRIORITY_MIN};
use addrspace::{
    AddressSpace, DirtyClient, DirtyMask, Endianness, GuestAddr, IoEventFd, ListenerHandle, MemTxAttrs, Memory,
    MemoryListener, RegionId, Section, Unassigned, SIZE_2_64,
};
use vmm_sys_util::eventfd::EventFd;

/// Records callbacks as short strings.
#[derive(Default)]
struct Rec {
    name: String,
    log: Mutex<Vec<String>>,
    refuse: bool,
}

impl Rec {
    fn named(name: &str) -> Arc<Rec> {
        Arc::new(Rec {
            name: name.into(),
            ..Rec::default()
        })
    }
    fn push(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn sec(s: &Section<'_>) -> String {
    format!("{}@{:#x}+{:#x}", s.name(), s.start().0, s.size())
}

impl MemoryListener for Rec {
    fn name(&self) -> &str {
        &self.name
    }
    fn begin(&self) {
        self.push("begin".into());
    }
    fn commit(&self) {
        self.push("commit".into());
    }
    fn region_add(&self, s: &Section<'_>) {
        self.push(format!("add {}", sec(s)));
    }
    fn region_del(&self, s: &Section<'_>) {
        self.push(format!("del {}", sec(s)));
    }
    fn log_start(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        self.push(format!("log_start {} {}->{}", sec(s), old.bits(), new.bits()));
    }
    fn log_stop(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        self.push(format!("log_stop {} {}->{}", sec(s), old.bits(), new.bits()));
    }
    fn log_sync(&self, s: &Section<'_>) {
        self.push(format!("log_sync {}", sec(s)));
    }
    fn log_global_start(&self) -> Result<(), ListenerRefused> {
        self.push("global_start".into());
        if self.refuse {
            return Err(ListenerRefused("no dirty ring".into()));
        }
        Ok(())
    }
    fn log_global_stop(&self) {
        self.push("global_stop".into());
    }
    fn eventfd_add(&self, e: &IoEventFd) {
        self.push(format!("eventfd_add {:#x}/{} {:?}", e.addr, e.size, e.data));
    }
    fn eventfd_del(&self, e: &IoEventFd) {
        self.push(format!("eventfd_del {:#x}/{} {:?}", e.addr, e.size, e.data));
    }
    fn coalesced_io_add(&self, s: &Section<'_>, addr: GuestAddr, len: u64) {
        self.push(format!("coalesced_add {} {:#x}+{:#x}", s.name(), addr.0, len));
    }
    fn coalesced_io_del(&self, s: &Section<'_>, addr: GuestAddr, len: u64) {
        self.push(format!("coalesced_del {} {:#x}+{:#x}", s.name(), addr.0, len));
    }
}

struct Board {
    mem: Memory,
    sys: RegionId,
    vram: RegionId,
    dev: RegionId,
    space: AddressSpace,
}

/// RAM at 0, "vram" RAM at 0x10000, an MMIO device at 0x20000.
fn board() -> Board {
    let mem = Memory::new();
    let sys = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", 0x10000).unwrap();
    let vram = mem.ram("vram", 0x4000).unwrap();
    let dev = mem.io("dev", 0x1000, Arc::new(Unassigned)).unwrap();
    mem.add_subregion(sys, 0, ram).unwrap();
    mem.add_subregion(sys, 0x10000, vram).unwrap();
    mem.add_subregion(sys, 0x20000, dev).unwrap();
    let space = mem.address_space("memory", sys).unwrap();
    Board {
        mem,
        sys,
        vram,
        dev,
        space,
    }
}

fn listen(space: &AddressSpace, l: &Arc<Rec>, prio: u32) -> ListenerHandle {
    let h = space.register_listener(l.clone(), prio).unwrap();
    l.take();
    h
}

#[test]
fn per_region_logging_is_counted_and_heard_as_log_start_and_stop() {
    let b = board();
    let l = Rec::named("kvm");
    let _h = listen(&b.space, &l, PRIORITY_ACCEL);
    b.mem.dirty().set(b.vram, DirtyClient::Vga, true).unwrap();
    assert_eq!(l.take(), ["begin", "log_start vram@0x10000+0x4000 0->1", "commit"]);
    b.mem.dirty().set(b.vram, DirtyClient::Vga, true).unwrap(); // second user: no change
    assert!(l.take().is_empty());
    b.mem.dirty().set(b.vram, DirtyClient::Vga, false).unwrap();
    assert!(l.take().is_empty(), "one user still logs");
    b.mem.dirty().set(b.vram, DirtyClient::Vga, false).unwrap();
    assert_eq!(l.take(), ["begin", "log_stop vram@0x10000+0x4000 1->0", "commit"]);
}

#[test]
fn writes_through_the_space_mark_pages_for_the_logging_clients_only() {
    let b = board();
    let attrs = MemTxAttrs::default();
    assert!(b.space.write(GuestAddr(0x10000), &[1], attrs).is_ok()); // before logging: not recorded
    b.mem.dirty().set(b.vram, DirtyClient::Vga, true).unwrap();
    let mut cpu = b.space.accessor();
    assert!(cpu
        .store(GuestAddr(0x11ffe), 0xabcd_u32, Endianness::Little, attrs)
        .is_ok()); // straddles pages 1 and 2
    assert!(b.space.write(GuestAddr(0x13000), &[0; 16], attrs).is_ok());
    assert!(b.space.write(GuestAddr(0x0), &[0; 16], attrs).is_ok()); // "ram" does not log
    let vga = b.mem.dirty().pages(b.vram, 0, 0x4000, DirtyClient::Vga).unwrap();
    assert_eq!(vga, [0x1000, 0x2000, 0x3000]);
    assert!(b
        .mem
        .dirty()
        .pages(b.vram, 0, 0x4000, DirtyClient::Migration)
        .unwrap()
        .is_empty());
    // Snapshot-and-clear one range; the rest stays.
    assert_eq!(
        b.mem.dirty().take(b.vram, 0x2000, 0x2000, DirtyClient::Vga).unwrap(),
        [0x2000, 0x3000]
    );
    assert_eq!(
        b.mem.dirty().pages(b.vram, 0, 0x4000, DirtyClient::Vga).unwrap(),
        [0x1000]
    );
    // Reads do not dirty; an MMIO region has no bitmap.
    let mut buf = [0u8; 8];
    assert!(b.space.read(GuestAddr(0x13000), &mut buf, attrs).is_ok());
    assert_eq!(
        b.mem.dirty().pages(b.vram, 0, 0x4000, DirtyClient::Vga).unwrap(),
        [0x1000]
    );
    assert!(b.mem.dirty().pages(b.dev, 0, 0x1000, DirtyClient::Vga).is_err());
}

#[test]
fn global_dirty_tracking_starts_every_listener_then_logs_all_ram() {
    let b = board();
    let (l1, l2) = (Rec::named("low"), Rec::named("high"));
    let _h1 = listen(&b.space, &l1, PRIORITY_MIN);
    let _h2 = listen(&b.space, &l2, PRIORITY_ACCEL);
    b.mem.dirty().start_global().unwrap();
    assert_eq!(
        l1.take(),
        [
            "global_start",
            "begin",
            "log_start ram@0x0+0x10000 0->4",
            "log_start vram@0x10000+0x4000 0->4",
            "commit"
        ]
    );
    assert_eq!(l2.take().len(), 5);
    // Migration sees guest writes now.
    assert!(b.space.write(GuestAddr(0x5000), &[9], MemTxAttrs::default()).is_ok());
    let ram = b.space.lookup(GuestAddr(0)).unwrap().0.region();
    assert_eq!(
        b.mem.dirty().pages(ram, 0, 0x10000, DirtyClient::Migration).unwrap(),
        [0x5000]
    );
    // log_sync: every logged range of each listener's space, in listener order.
    b.mem.dirty().sync(None);
    assert_eq!(l1.take(), ["log_sync ram@0x0+0x10000", "log_sync vram@0x10000+0x4000"]);
    b.mem.dirty().sync(Some(b.vram));
    assert_eq!(l1.take(), ["log_sync vram@0x10000+0x4000"]);
    assert_eq!(l2.take()[2..], ["log_sync vram@0x10000+0x4000"]);
    b.mem.dirty().stop_global().unwrap();
    let stop = l1.take();
    assert_eq!(stop[0], "begin");
    assert_eq!(stop[1], "log_stop ram@0x0+0x10000 4->0");
    assert_eq!(stop[3..], ["commit", "global_stop"]);
}

#[test]
fn a_refusing_listener_rolls_back_the_ones_already_started() {
    let b = board();
    let ok = Rec::named("ok");
    let no = Arc::new(Rec {
        name: "no".into(),
        refuse: true,
        ..Rec::default()
    });
    let _h1 = listen(&b.space, &ok, PRIORITY_MIN);
    let _h2 = listen(&b.space, &no, PRIORITY_ACCEL);
    let e = b.mem.dirty().start_global().unwrap_err();
    assert!(e.to_string().contains("`no` refused"), "{e}");
    assert_eq!(ok.take(), ["global_start", "global_stop"]);
    assert_eq!(no.take(), ["global_start"]);
    assert!(b.space.write(GuestAddr(0x5000), &[9], MemTxAttrs::default()).is_ok());
    let ram = b.space.lookup(GuestAddr(0)).unwrap().0.region();
    assert!(b
        .mem
        .dirty()
        .pages(ram, 0, 0x10000, DirtyClient::Migration)
        .unwrap()
        .is_empty());
}

#[test]
fn ioeventfds_follow_their_region_with_absolute_addresses() {
    let b = board();
    let l = Rec::named("kvm");
    let _h = listen(&b.space, &l, PRIORITY_ACCEL);
    let fd = Arc::new(EventFd::new(0).unwrap());
    b.mem.ioeventfds().add(b.dev, 0x10, 4, Some(1), fd.clone()).unwrap();
    assert_eq!(l.take(), ["eventfd_add 0x20010/4 Some(1)"]);
    // The region moves: the eventfd moves with it, inside one commit.
    b.mem.set_address(b.dev, 0x30000).unwrap();
    assert_eq!(
        l.take(),
        [
            "begin",
            "del dev@0x20000+0x1000",
            "add dev@0x30000+0x1000",
            "eventfd_del 0x20010/4 Some(1)",
            "eventfd_add 0x30010/4 Some(1)",
            "commit"
        ]
    );
    // A late listener gets the current set in its replay.
    let late = Rec::named("late");
    let _h2 = b.space.register_listener(late.clone(), PRIORITY_MIN).unwrap();
    assert!(late.take().contains(&"eventfd_add 0x30010/4 Some(1)".to_string()));
    // Removing the region removes the eventfd.
    b.mem.remove_subregion(b.sys, b.dev).unwrap();
    let heard = l.take();
    assert!(
        heard.contains(&"eventfd_del 0x30010/4 Some(1)".to_string()),
        "{heard:?}"
    );
    assert!(
        b.mem.ioeventfds().del(b.dev, 0x10, 4, Some(2), fd.clone()).is_err(),
        "no such registration"
    );
    b.mem.ioeventfds().del(b.dev, 0x10, 4, Some(1), fd).unwrap();
}

#[test]
fn coalesced_ranges_are_pushed_at_once_and_follow_the_diff() {
    let b = board();
    let l = Rec::named("kvm");
    let _h = listen(&b.space, &l, PRIORITY_ACCEL);
    b.mem.coalescing().add(b.dev, 0x100, 0x100).unwrap();
    assert_eq!(l.take(), ["coalesced_add dev 0x20100+0x100"]);
    b.mem.set_address(b.dev, 0x30000).unwrap();
    assert_eq!(
        l.take(),
        [
            "begin",
            "coalesced_del dev 0x20100+0x100",
            "del dev@0x20000+0x1000",
            "add dev@0x30000+0x1000",
            "coalesced_add dev 0x30100+0x100",
            "commit"
        ]
    );
    b.mem.coalescing().clear(b.dev).unwrap();
    assert_eq!(l.take(), ["coalesced_del dev 0x30100+0x100"]);
}

#[test]
fn listeners_cannot_change_the_topology_from_a_callback() {
    struct Meddler {
        mem: addrspace::WeakMemory,
        region: RegionId,
        result: Mutex<Option<String>>,
    }
    impl MemoryListener for Meddler {
        fn region_add(&self, _: &Section<'_>) {
            if let Some(m) = self.mem.upgrade() {
                let r = m.set_enabled(self.region, false);
                *self.result.lock().unwrap() = Some(format!("{r:?}"));
                // Queries are fine.
                let _ = m.stats();
            }
        }
    }
    let b = board();
    let meddler = Arc::new(Meddler {
        mem: b.mem.downgrade(),
        region: b.vram,
        result: Mutex::new(None),
    });
    let _h = b.space.register_listener(meddler.clone(), PRIORITY_MIN).unwrap();
    let r = meddler.result.lock().unwrap().clone().unwrap();
    assert!(r.contains("InListener"), "{r}");
    assert!(b.mem.region_info(b.vram).unwrap().enabled, "nothing changed");
}

#[test]
fn ram_sections_carry_their_host_memory() {
    let b = board();
    #[derive(Default)]
    struct Slots(Mutex<Vec<(u64, usize)>>);
    impl MemoryListener for Slots {
        fn region_add(&self, s: &Section<'_>) {
            if let Some(p) = s.host_addr() {
                self.0.lock().unwrap().push((s.start().0, p as usize));
            }
        }
    }
    let slots = Arc::new(Slots::default());
    let _h = b.space.register_listener(slots.clone(), PRIORITY_ACCEL).unwrap();
    let got = slots.0.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "ram and vram, not the device");
    assert!(b
        .space
        .write(GuestAddr(0x10008), &[0x5a], MemTxAttrs::default())
        .is_ok());
    let (gpa, host) = got[1];
    assert_eq!(gpa, 0x10000);
    let block = b.mem.leaf(b.vram).unwrap().unwrap().backend().ram().unwrap().clone();
    assert_eq!(block.host_ptr() as usize, host);
    let mut byte = [0u8];
    assert!(block.read(8, &mut byte));
    assert_eq!(byte[0], 0x5a);
}

#[test]
fn structurally_identical_per_cpu_roots_share_one_view_until_they_differ() {
    use addrspace::{mtree, CommitMode};
    for mode in [CommitMode::Scoped, CommitMode::Full] {
        let b = board();
        b.mem.set_commit_mode(mode);
        let smram = b.mem.ram("smram", 0x2_0000).unwrap();
        // x86 SMM: every CPU's root overlays SMRAM on an alias of system memory.
        let mut smram_aliases = Vec::new();
        let cpus: Vec<AddressSpace> = (0..4)
            .map(|c| {
                let root = b.mem.container(&format!("smm-root-{c}"), SIZE_2_64).unwrap();
                let sys = b.mem.alias(&format!("smm-system-{c}"), b.sys, 0, SIZE_2_64).unwrap();
                let sm = b.mem.alias(&format!("smm-smram-{c}"), smram, 0, 0x2_0000).unwrap();
                b.mem.add_subregion(root, 0, sys).unwrap();
                b.mem.add_subregion_overlap(root, 0xa_0000, sm, 1).unwrap();
                smram_aliases.push(sm);
                b.mem.address_space(&format!("cpu-smm-{c}"), root).unwrap()
            })
            .collect();
        let shared = |i: usize, j: usize| Arc::ptr_eq(&cpus[i].view(), &cpus[j].view());
        let scoped = mode == CommitMode::Scoped;
        assert_eq!(shared(0, 3), scoped, "one view for identical roots, scoped only");
        let views = b.mem.stats().flatviews;
        // CPU 2 leaves SMM-visible SMRAM: it gets its own view, the others keep theirs.
        b.mem.set_enabled(smram_aliases[2], false).unwrap();
        assert!(!shared(2, 0) && shared(0, 1) == scoped && shared(1, 3) == scoped);
        assert!(
            cpus[2].lookup(GuestAddr(0xa_0000)).is_none(),
            "nothing there without SMRAM"
        );
        assert_eq!(cpus[0].lookup(GuestAddr(0xa_0000)).unwrap().0.name(), "smram");
        // ... and joins again.
        b.mem.set_enabled(smram_aliases[2], true).unwrap();
        assert_eq!(shared(2, 0), scoped);
        assert_eq!(b.mem.stats().flatviews, views, "no view left behind");
        // A change in system memory reaches every CPU, with one patch when shared.
        let before = b.mem.stats();
        b.mem.set_address(b.dev, 0x30000).unwrap();
        let after = b.mem.stats();
        for c in &cpus {
            assert_eq!(c.lookup(GuestAddr(0x30000)).unwrap().0.name(), "dev");
        }
        let work = |s: addrspace::Stats| s.renders + s.patches + s.layers;
        assert_eq!(
            work(after) - work(before),
            if scoped { 2 } else { 5 },
            "system + the shared SMM view (scoped); every view (full)"
        );
        // Scoped, the SMM view stores only its SMRAM window and borrows system's ranges.
        let base = cpus[0].view().base().cloned();
        assert_eq!(base.is_some(), scoped);
        if let Some(base) = base {
            assert!(base.root().is_some_and(|r| r == b.sys), "layered over system's view");
            assert!(cpus[0].view().own_ranges() < cpus[0].view().ranges().len());
        }
        // `info mtree -f` still prints one view per physical root, as QEMU does.
        let text = mtree::print_flat(&b.mem, &mtree::FlatOptions::default());
        for c in 0..4 {
            assert!(text.contains(&format!("Root memory region: smm-root-{c}")), "{text}");
        }
    }
}

/// A listener that only needs to know *that* its space changed (a TCG TLB).
struct CommitOnly(Arc<Rec>);

impl MemoryListener for CommitOnly {
    fn wants_sections(&self) -> bool {
        false
    }
    fn begin(&self) {
        self.0.begin();
    }
    fn commit(&self) {
        self.0.commit();
    }
}

#[test]
fn a_listener_without_sections_gets_no_replay_but_every_commit() {
    let b = board();
    let rec = Rec::named("tlb");
    let handle = b
        .space
        .register_listener(Arc::new(CommitOnly(rec.clone())), PRIORITY_MIN)
        .unwrap();
    assert_eq!(rec.take(), ["begin", "commit"], "registration replays no range");
    b.mem.set_address(b.dev, 0x30000).unwrap();
    assert_eq!(rec.take(), ["begin", "commit"]);
    let before = b.mem.stats().listener_calls;
    drop(handle);
    assert_eq!(rec.take(), ["begin", "commit"], "nor does unregistration");
    assert_eq!(b.mem.stats().listener_calls - before, 2);
}

/// QEMU's full rebuild (`CommitMode::Full`) runs when an update is pending, as QEMU's does
/// (`memory_region_update_pending`): a mutation that fails, or an empty transaction, calls
/// no listener. A change, even one no view shows, does: QEMU commits for it too.
#[test]
fn full_mode_commits_only_when_an_update_is_pending() {
    let b = board();
    b.mem.set_commit_mode(addrspace::CommitMode::Full);
    let l = Rec::named("l");
    let _h = listen(&b.space, &l, PRIORITY_ACCEL);
    l.take();
    // A refused mapping (the child is mapped already) and an empty transaction.
    assert!(b.mem.add_subregion(b.sys, 0x9000, b.vram).is_err());
    drop(b.mem.transaction());
    assert_eq!(l.take(), Vec::<String>::new(), "nothing pending, nothing heard");
    // A change to a region no view shows still commits (and nothing differs).
    let spare = b.mem.ram("spare", 0x1000).unwrap();
    b.mem.set_readonly(spare, true).unwrap();
    assert_eq!(l.take(), ["begin", "commit"]);
}
