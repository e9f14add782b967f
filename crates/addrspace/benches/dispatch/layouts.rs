//! The layouts issue 15 names, each measured for ours and vm-memory's `GuestMemoryMmap` in
//! the same run on the same 64 Ki random addresses: random lookups and 4- and 8-byte RAM
//! reads, plus the harness floors (an empty loop, and a loop that only fetches the next
//! address) that every other number includes.
//!
//! Layouts:
//! - `big/4x256M`: four 256 MiB RAM regions, 256 MiB apart (few big regions);
//! - `holes/N` for N = 4, 64, 256: RAM cut into 64 KiB regions by 4 KiB holes;
//! - `virt`: `boards/virt.toml` (QEMU's arm `virt`, 48 ranges, 45 of them below 8 GiB in a
//!   1 TiB span); vm-memory gets one region per flat range at the same place and size.
//!   Lookups pick a random range and a random address in it; reads go to the 1 GiB of RAM.

use std::hint::black_box;

use addrspace::{AddressSpace, GuestAddr, Memory, SIZE_2_64};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

use crate::{line, time, A, LE};

/// Number of random addresses per layout (a power of two).
const ADDRS: usize = 1 << 16;

/// One layout built both ways, with its addresses.
struct Layout {
    name: String,
    space: AddressSpace,
    /// Keeps the memory system (and for `virt`, the machine) alive.
    _keep: Box<dyn std::any::Any>,
    baseline: GuestMemoryMmap<()>,
    /// Random 8-byte-aligned addresses for lookups (anywhere mapped).
    lookups: Vec<u64>,
    /// Random 8-byte-aligned addresses in RAM.
    reads: Vec<u64>,
}

/// A xorshift stream (deterministic: both sides get the same addresses every run).
fn rng() -> impl FnMut() -> u64 {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// `ADDRS` random 8-byte-aligned addresses, each in a random one of `ranges` (start, size).
fn addresses(ranges: &[(u64, u64)]) -> Vec<u64> {
    let mut next = rng();
    (0..ADDRS)
        .map(|_| {
            let (start, size) = ranges[(next() % ranges.len() as u64) as usize];
            start + next() % (size.max(8) - 7) / 8 * 8
        })
        .collect()
}

/// RAM regions at `ranges` (start, size) in a system container, and the same for vm-memory.
fn ram_layout(name: &str, ranges: &[(u64, u64)]) -> Layout {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    {
        let _tx = mem.transaction();
        for &(start, size) in ranges {
            let r = mem.ram("ram", u128::from(size)).unwrap();
            mem.add_subregion(system, start, r).unwrap();
        }
    }
    let space = mem.address_space("memory", system).unwrap();
    let vm: Vec<(GuestAddress, usize)> = ranges.iter().map(|&(s, l)| (GuestAddress(s), l as usize)).collect();
    let addrs = addresses(ranges);
    Layout {
        name: name.to_string(),
        space,
        _keep: Box::new(mem),
        baseline: GuestMemoryMmap::<()>::from_ranges(&vm).unwrap(),
        lookups: addrs.clone(),
        reads: addrs,
    }
}

/// `boards/virt.toml`'s system space; vm-memory maps every flat range as RAM.
fn virt_layout() -> Layout {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../boards/virt.toml");
    let machine = addrspace::board::load_file(&path).unwrap();
    let space = machine.address_space("memory").unwrap().clone();
    let view = space.view();
    let ranges: Vec<(u64, u64)> = view
        .ranges()
        .iter()
        .map(|r| (r.start().0, u64::try_from(r.size()).unwrap()))
        .collect();
    let ram: Vec<(u64, u64)> = view
        .ranges()
        .iter()
        .filter(|r| r.name() == "mach-virt.ram")
        .map(|r| (r.start().0, u64::try_from(r.size()).unwrap()))
        .collect();
    let vm: Vec<(GuestAddress, usize)> = ranges.iter().map(|&(s, l)| (GuestAddress(s), l as usize)).collect();
    Layout {
        name: format!("virt/{}", ranges.len()),
        space,
        _keep: Box::new(machine.memory.clone()),
        baseline: GuestMemoryMmap::<()>::from_ranges(&vm).unwrap(),
        lookups: addresses(&ranges),
        reads: addresses(&ram),
    }
}

fn measure(l: &Layout) {
    let mut cpu = l.space.accessor();
    let look = &l.lookups;
    let mut i = 0;
    let ours = time(1, || {
        i = (i + 1) & (ADDRS - 1);
        black_box(cpu.lookup(GuestAddr(look[i])).map(|(r, _)| r.start()));
    });
    let theirs = time(1, || {
        i = (i + 1) & (ADDRS - 1);
        black_box(l.baseline.find_region(GuestAddress(look[i])).map(|r| r as *const _));
    });
    line(&format!("layout/{}/lookup", l.name), ours, Some(theirs));
    read::<u32>(l, &mut cpu, "read4");
    read::<u64>(l, &mut cpu, "read8");
}

/// Loads of `T` at the layout's RAM addresses, ours against `read_obj`.
fn read<T: addrspace::Scalar + vm_memory::ByteValued>(l: &Layout, cpu: &mut addrspace::Accessor, case: &str) {
    let mut i = 0;
    let ours = time(1, || {
        i = (i + 1) & (ADDRS - 1);
        let _ = black_box(cpu.load::<T>(GuestAddr(l.reads[i]), LE, A));
    });
    let theirs = time(1, || {
        i = (i + 1) & (ADDRS - 1);
        black_box(l.baseline.read_obj::<T>(GuestAddress(l.reads[i])).unwrap());
    });
    line(&format!("layout/{}/{case}", l.name), ours, Some(theirs));
}

/// The harness floors: an empty loop, and a loop that only walks the 64 Ki addresses.
pub fn floors() {
    let empty = time(1, || black_box(()));
    line("floor/empty-loop", empty, None);
    let addrs = addresses(&[(0, 1 << 30)]);
    let mut i = 0;
    let walk = time(1, || {
        i = (i + 1) & (ADDRS - 1);
        black_box(addrs[i]);
    });
    line("floor/address-stream", walk, None);
}

/// Every layout, ours against vm-memory.
pub fn layouts() {
    const M: u64 = 1 << 20;
    let big: Vec<(u64, u64)> = (0..4).map(|i| (i * 512 * M, 256 * M)).collect();
    measure(&ram_layout("big/4x256M", &big));
    for n in [4u64, 64, 256] {
        let holes: Vec<(u64, u64)> = (0..n).map(|i| (i * 68 * 1024, 64 * 1024)).collect();
        measure(&ram_layout(&format!("holes/{n}"), &holes));
    }
    measure(&virt_layout());
}
