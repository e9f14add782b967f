//! The KVM memory listener: RAM-backed ranges of the system address space's flat view become
//! memslots, dirty logging follows the view's logging clients, and ioeventfds reach
//! `KVM_IOEVENTFD` (QEMU's `kvm-memory` and `kvm-io` listeners).
//!
//! Additions and deletions are queued by `region_add` / `region_del` and applied at `commit`,
//! all deletions before all additions; a deletion and an addition of the same slot in one
//! commit cancel out, so a commit that changes no RAM-backed range makes no ioctl. KVM
//! errors cannot be returned from a listener callback: they are logged (`tracing`) and kept,
//! typed, for [`MemSlots::take_errors`] (running out of slot ids is reported as
//! `KVM_SET_USER_MEMORY_REGION` with ENOSPC, without an ioctl).
//!
//! Every slot holds its RAM block, so the host memory KVM maps is never unmapped while the
//! slot exists; a slot whose deletion fails keeps its block forever.

mod sys;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use addrspace::listener::{IoEventFd, MemoryListener, Section};
use addrspace::ram::RamBlock;
use addrspace::{Backend, DirtyMask, GuestAddr, RegionId, WeakMemory};
use kvm_bindings::{KVM_MEM_LOG_DIRTY_PAGES, KVM_MEM_READONLY};
use kvm_ioctls::VmFd;

use crate::error::Error;
use sys::Mapping;
pub(crate) use sys::{host_page_size, ioeventfd};

/// One memslot as registered with KVM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    /// The slot id passed to KVM.
    pub slot: u32,
    /// First guest-physical address (host-page aligned).
    pub gpa: u64,
    /// Length in bytes (a multiple of the host page).
    pub size: u64,
    /// Host address of `gpa`.
    pub host_addr: u64,
    /// `KVM_MEM_*` flags (`KVM_MEM_READONLY`, `KVM_MEM_LOG_DIRTY_PAGES`).
    pub flags: u32,
    /// The region behind the slot.
    pub region: RegionId,
    /// Offset of `gpa` inside the region.
    pub offset_in_region: u64,
}

impl SlotInfo {
    /// Whether guest writes exit as MMIO (ROM, ROM devices in romd mode).
    pub fn readonly(&self) -> bool {
        self.flags & KVM_MEM_READONLY != 0
    }
    /// Whether KVM logs guest writes to the slot.
    pub fn logging(&self) -> bool {
        self.flags & KVM_MEM_LOG_DIRTY_PAGES != 0
    }
}

/// Counters of what the listener asked of KVM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlotStats {
    /// Commits heard.
    pub commits: u64,
    /// `KVM_SET_USER_MEMORY_REGION` calls (additions, deletions, flag changes).
    pub set_region: u64,
    /// `KVM_GET_DIRTY_LOG` calls.
    pub get_dirty_log: u64,
    /// `KVM_IOEVENTFD` calls.
    pub ioeventfd: u64,
    /// `KVM_(UN)REGISTER_COALESCED_MMIO` calls.
    pub coalesced: u64,
    /// Commits applied inside the [`UpdateFence`] (deletions overlapping additions).
    pub fenced: u64,
    /// Failed ioctls (kept for [`MemSlots::take_errors`]).
    pub errors: u64,
}

/// Which space the listener follows: memory (memslots, MMIO ioeventfds) or port I/O (PIO
/// ioeventfds only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpaceKind {
    Memory,
    Io,
}

/// A slot a section asks for (host-page aligned).
#[derive(Clone)]
struct Want {
    gpa: u64,
    size: u64,
    flags: u32,
    region: RegionId,
    offset: u64,
    block: Arc<RamBlock>,
}

impl Want {
    fn same_slot(&self, o: &Want) -> bool {
        self.gpa == o.gpa
            && self.size == o.size
            && self.flags == o.flags
            && self.region == o.region
            && self.offset == o.offset
            && Arc::ptr_eq(&self.block, &o.block)
    }
}

struct Slot {
    map: Mapping,
    region: RegionId,
    offset: u64,
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Live slots by guest-physical address.
    slots: BTreeMap<u64, Slot>,
    free: Vec<u32>,
    next: u32,
    add: Vec<Want>,
    del: Vec<Want>,
    pub(crate) stats: SlotStats,
    errors: Vec<Error>,
    fence: Option<Arc<dyn UpdateFence>>,
}

impl Inner {
    pub(crate) fn fail(&mut self, ioctl: &'static str, e: vmm_sys_util::errno::Error) {
        tracing::error!(ioctl, %e, "KVM ioctl failed");
        self.stats.errors += 1;
        self.errors.push(Error::ioctl(ioctl, e));
    }
}

/// Sorts both lists by address; whether a deletion overlaps an addition (a merge walk, as
/// QEMU's `kvm_region_commit`).
fn overlap(del: &mut [Want], add: &mut [Want]) -> bool {
    del.sort_by_key(|w| w.gpa);
    add.sort_by_key(|w| w.gpa);
    let (mut i, mut j) = (0, 0);
    while i < del.len() && j < add.len() {
        let (d, a) = (&del[i], &add[j]);
        if d.gpa < a.gpa + a.size && a.gpa < d.gpa + d.size {
            return true;
        }
        if d.gpa + d.size <= a.gpa + a.size {
            i += 1;
        } else {
            j += 1;
        }
    }
    false
}

/// Makes a commit's memslot changes look atomic to running vCPUs (QEMU's
/// `accel_ioctl_inhibit_begin`/`_end`): when the deletions of a commit overlap its additions
/// — a RAM range split, shrunk, moved by less than its size or made read-only — a vCPU
/// running between the deletion and the addition would see the range missing and exit as
/// MMIO. The vCPU side implements this: `begin` returns once every vCPU is out of `KVM_RUN`
/// and will stay out, `end` lets them run again. Set with [`MemSlots::set_fence`].
pub trait UpdateFence: Send + Sync {
    /// The memslot update starts: kick every vCPU out of `KVM_RUN` and hold it out.
    fn begin(&self);
    /// The update is done: vCPUs may run again.
    fn end(&self);
}

/// Whether a range's logging clients ask KVM to log (CODE is TCG's, never KVM's).
fn logs(mask: DirtyMask) -> bool {
    !mask.without(DirtyMask::CODE).is_empty()
}

/// The slot a RAM-backed section becomes, as QEMU's `kvm_align_section`: start rounded up
/// and end rounded down to the host page; `None` for MMIO, ROM devices out of romd mode,
/// ranges with no whole page, and ranges whose host address is not page aligned with their
/// guest address (KVM refuses those; their accesses exit as MMIO).
fn slot_for(s: &Section<'_>, page: u64) -> Option<Want> {
    let fr = s.flat_range();
    let (block, mut flags) = match fr.leaf().backend() {
        Backend::Ram(b) | Backend::RamDevice(b) => (b, 0),
        Backend::RomDevice(b, _) if fr.romd() => (b, KVM_MEM_READONLY),
        _ => return None,
    };
    if fr.readonly() {
        flags |= KVM_MEM_READONLY;
    }
    if logs(fr.dirty_log_mask()) {
        flags |= KVM_MEM_LOG_DIRTY_PAGES;
    }
    let start = fr.start().0;
    let end = u64::try_from(fr.end()).unwrap_or(u64::MAX);
    let gpa = start.checked_next_multiple_of(page)?;
    let last = end - end % page;
    if last <= gpa {
        return None;
    }
    let offset = fr.offset_in_region().0 + (gpa - start);
    let host = (block.host_ptr() as u64).wrapping_add(offset);
    if host % page != 0 {
        tracing::warn!(
            name = s.name(),
            gpa,
            "RAM range not page aligned with its host memory: not a memslot"
        );
        return None;
    }
    Some(Want {
        gpa,
        size: last - gpa,
        flags,
        region: s.region(),
        offset,
        block: block.clone(),
    })
}

/// The KVM memory listener of one VM (see the module doc). Get it from
/// [`Vm::attach_memory`](crate::Vm::attach_memory).
pub struct MemSlots {
    pub(crate) vm: Arc<VmFd>,
    memory: WeakMemory,
    pub(crate) kind: SpaceKind,
    page: u64,
    max_slots: u32,
    inner: Mutex<Inner>,
}

impl MemSlots {
    pub(crate) fn new(vm: Arc<VmFd>, memory: WeakMemory, kind: SpaceKind, max_slots: u32) -> MemSlots {
        MemSlots {
            vm,
            memory,
            kind,
            page: host_page_size(),
            max_slots,
            inner: Mutex::new(Inner::default()),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn want(&self, s: &Section<'_>) -> Option<Want> {
        if self.kind != SpaceKind::Memory {
            return None;
        }
        slot_for(s, self.page)
    }

    pub(crate) fn is_memory(&self) -> bool {
        self.kind == SpaceKind::Memory
    }

    /// Sets (or removes) what brackets a commit whose deletions overlap its additions.
    pub fn set_fence(&self, fence: Option<Arc<dyn UpdateFence>>) {
        self.lock().fence = fence;
    }

    /// The slot table, by guest-physical address.
    pub fn slots(&self) -> Vec<SlotInfo> {
        self.lock()
            .slots
            .values()
            .map(|s| SlotInfo {
                slot: s.map.slot(),
                gpa: s.map.gpa(),
                size: s.map.size(),
                host_addr: s.map.host(),
                flags: s.map.flags(),
                region: s.region,
                offset_in_region: s.offset,
            })
            .collect()
    }

    /// What the listener asked of KVM so far.
    pub fn stats(&self) -> SlotStats {
        self.lock().stats
    }

    /// The ioctl errors since the last call (a listener callback cannot return them).
    pub fn take_errors(&self) -> Vec<Error> {
        std::mem::take(&mut self.lock().errors)
    }

    /// Asks KVM to confirm the table: every slot is registered again with identical
    /// parameters, which KVM accepts only if it holds exactly that slot (a different size
    /// or host address is EINVAL, an overlap EEXIST). These calls are not counted in
    /// [`stats`](Self::stats).
    pub fn verify_with_kvm(&self) -> Result<(), Error> {
        let mut inner = self.lock();
        for s in inner.slots.values_mut() {
            let flags = s.map.flags();
            s.map
                .set_flags(flags)
                .map_err(|e| Error::ioctl("KVM_SET_USER_MEMORY_REGION", e))?;
        }
        Ok(())
    }

    fn alloc(&self, inner: &mut Inner) -> Option<u32> {
        if let Some(id) = inner.free.pop() {
            return Some(id);
        }
        (inner.next < self.max_slots).then(|| {
            inner.next += 1;
            inner.next - 1
        })
    }

    /// Reads and clears KVM's dirty bitmap of `slot`; the dirty pages as
    /// `(region, offset, len)` runs.
    fn pull(&self, inner: &mut Inner, gpa: u64) -> Vec<(RegionId, u64, u64)> {
        let Some(s) = inner.slots.get(&gpa) else {
            return Vec::new();
        };
        if !s.map.logging() {
            return Vec::new();
        }
        let (slot, size, region, base) = (s.map.slot(), s.map.size(), s.region, s.offset);
        inner.stats.get_dirty_log += 1;
        let bitmap = match self.vm.get_dirty_log(slot, size as usize) {
            Ok(b) => b,
            Err(e) => {
                inner.fail("KVM_GET_DIRTY_LOG", e);
                return Vec::new();
            }
        };
        let mut runs: Vec<(RegionId, u64, u64)> = Vec::new();
        for (w, &word) in bitmap.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let page = w as u64 * 64 + u64::from(bits.trailing_zeros());
                bits &= bits - 1;
                let off = base + page * self.page;
                match runs.last_mut() {
                    Some((_, o, l)) if *o + *l == off => *l += self.page,
                    _ => runs.push((region, off, self.page)),
                }
            }
        }
        runs
    }

    /// Marks pulled pages dirty in the memory system (with no lock of ours held).
    fn mark(&self, runs: Vec<(RegionId, u64, u64)>) {
        if runs.is_empty() {
            return;
        }
        let Some(mem) = self.memory.upgrade() else {
            return;
        };
        for (region, off, len) in runs {
            if let Err(e) = mem.dirty().mark(region, off, len) {
                tracing::debug!(%e, "dirty pages of a region that is gone");
            }
        }
    }

    fn set_logging(&self, s: &Section<'_>, on: bool) {
        let Some(w) = self.want(s) else { return };
        let mut inner = self.lock();
        let runs = if on { Vec::new() } else { self.pull(&mut inner, w.gpa) };
        let inner = &mut *inner;
        let Some(slot) = inner.slots.get_mut(&w.gpa).filter(|x| x.map.size() == w.size) else {
            return;
        };
        let flags = if on {
            slot.map.flags() | KVM_MEM_LOG_DIRTY_PAGES
        } else {
            slot.map.flags() & !KVM_MEM_LOG_DIRTY_PAGES
        };
        if flags != slot.map.flags() {
            inner.stats.set_region += 1;
            if let Err(e) = slot.map.set_flags(flags) {
                inner.fail("KVM_SET_USER_MEMORY_REGION", e);
            }
        }
        self.mark(runs);
    }
}

impl Slot {
    fn matches(&self, w: &Want) -> bool {
        self.map.size() == w.size && self.region == w.region && self.offset == w.offset
    }
}

impl Mapping {
    fn logging(&self) -> bool {
        self.flags() & KVM_MEM_LOG_DIRTY_PAGES != 0
    }
}

impl MemoryListener for MemSlots {
    fn name(&self) -> &str {
        match self.kind {
            SpaceKind::Memory => "kvm-memory",
            SpaceKind::Io => "kvm-io",
        }
    }

    fn region_add(&self, s: &Section<'_>) {
        if let Some(w) = self.want(s) {
            self.lock().add.push(w);
        }
    }

    fn region_del(&self, s: &Section<'_>) {
        if let Some(w) = self.want(s) {
            self.lock().del.push(w);
        }
    }

    fn commit(&self) {
        let (mut add, mut del, fence) = {
            let mut inner = self.lock();
            inner.stats.commits += 1;
            (
                std::mem::take(&mut inner.add),
                std::mem::take(&mut inner.del),
                inner.fence.clone(),
            )
        };
        // A range deleted and added back unchanged keeps its slot.
        del.retain(|d| match add.iter().position(|a| a.same_slot(d)) {
            Some(i) => {
                add.swap_remove(i);
                false
            }
            None => true,
        });
        let fence = fence.filter(|_| overlap(&mut del, &mut add));
        if let Some(f) = &fence {
            f.begin();
        }
        let mut guard = self.lock();
        let inner = &mut *guard;
        if fence.is_some() {
            inner.stats.fenced += 1;
        }
        let mut runs = Vec::new();
        for d in del {
            if !inner.slots.get(&d.gpa).is_some_and(|s| s.matches(&d)) {
                tracing::warn!(gpa = d.gpa, size = d.size, "deleted range had no memslot");
                continue;
            }
            runs.extend(self.pull(inner, d.gpa));
            let Some(slot) = inner.slots.remove(&d.gpa) else {
                continue;
            };
            let id = slot.map.slot();
            inner.stats.set_region += 1;
            match slot.map.unmap() {
                Ok(()) => inner.free.push(id),
                Err(e) => inner.fail("KVM_SET_USER_MEMORY_REGION", e),
            }
        }
        for a in add {
            let Some(id) = self.alloc(inner) else {
                inner.fail(
                    "KVM_SET_USER_MEMORY_REGION",
                    vmm_sys_util::errno::Error::new(libc::ENOSPC),
                );
                continue;
            };
            inner.stats.set_region += 1;
            match Mapping::new(self.vm.clone(), id, a.gpa, a.block, a.offset, a.size, a.flags) {
                Ok(map) => {
                    let slot = Slot {
                        map,
                        region: a.region,
                        offset: a.offset,
                    };
                    if let Some(old) = inner.slots.insert(a.gpa, slot) {
                        tracing::warn!(gpa = a.gpa, "two memslots at one address");
                        inner.free.push(old.map.slot());
                    }
                }
                Err(e) => {
                    inner.free.push(id);
                    inner.fail("KVM_SET_USER_MEMORY_REGION", e);
                }
            }
        }
        drop(guard);
        if let Some(f) = &fence {
            f.end();
        }
        self.mark(runs);
    }

    fn log_start(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        if !logs(old) && logs(new) {
            self.set_logging(s, true);
        }
    }

    fn log_stop(&self, s: &Section<'_>, old: DirtyMask, new: DirtyMask) {
        if logs(old) && !logs(new) {
            self.set_logging(s, false);
        }
    }

    fn log_sync(&self, s: &Section<'_>) {
        let Some(w) = self.want(s) else { return };
        let runs = {
            let mut inner = self.lock();
            self.pull(&mut inner, w.gpa)
        };
        self.mark(runs);
    }

    fn eventfd_add(&self, e: &IoEventFd) {
        self.eventfd(e, false);
    }

    fn eventfd_del(&self, e: &IoEventFd) {
        self.eventfd(e, true);
    }

    fn coalesced_io_add(&self, _s: &Section<'_>, addr: GuestAddr, len: u64) {
        self.coalesced(addr.0, len, true);
    }

    fn coalesced_io_del(&self, _s: &Section<'_>, addr: GuestAddr, len: u64) {
        self.coalesced(addr.0, len, false);
    }
}
