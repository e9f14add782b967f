//! Shared by the memslot, dirty-log and ioeventfd tests: opening KVM (skipping only when
//! there is no usable /dev/kvm) and the slot table a flat view should give.
#![allow(dead_code)]

use addrspace::{Backend, FlatView};
use addrspace_kvm::{Kvm, SlotInfo, Vm};

/// A fresh VM, or `None` (with the reason printed) when /dev/kvm is absent or not permitted.
pub fn vm() -> Option<Vm> {
    match Kvm::open() {
        Ok(kvm) => Some(Vm::new(&kvm).expect("KVM_CREATE_VM")),
        Err(e) if e.is_unavailable() => {
            eprintln!("skipped: {e} (no usable /dev/kvm on this host)");
            None
        }
        Err(e) => panic!("opening /dev/kvm: {e}"),
    }
}

pub const PAGE: u64 = 4096;

/// `(gpa, size, host address, read-only)` of the slots the RAM-backed ranges of `view`
/// should give: RAM, ROM and RAM devices, ROM devices in romd mode; start rounded up and end
/// rounded down to the page; host address page aligned.
pub fn expected(view: &FlatView) -> Vec<(u64, u64, u64, bool)> {
    let mut out = Vec::new();
    for r in view.ranges().iter() {
        let (block, ro) = match r.leaf().backend() {
            Backend::Ram(b) | Backend::RamDevice(b) => (b, r.readonly()),
            Backend::RomDevice(b, _) if r.romd() => (b, true),
            _ => continue,
        };
        let start = r.start().0;
        let end = r.end() as u64;
        let gpa = start.div_ceil(PAGE) * PAGE;
        let last = end / PAGE * PAGE;
        if last <= gpa {
            continue;
        }
        let host = block.host_ptr() as u64 + r.offset_in_region().0 + (gpa - start);
        if host % PAGE != 0 {
            continue;
        }
        out.push((gpa, last - gpa, host, ro));
    }
    out
}

/// The same four fields of a slot table.
pub fn actual(slots: &[SlotInfo]) -> Vec<(u64, u64, u64, bool)> {
    slots
        .iter()
        .map(|s| (s.gpa, s.size, s.host_addr, s.readonly()))
        .collect()
}
