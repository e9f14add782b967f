//! The test board: a Cortex-M-like system with per-CPU peripherals, and helpers.

use super::*;

pub(crate) const LE: Endianness = Endianness::Little;
pub(crate) const NVIC: u64 = 0xe000_e000;
pub(crate) const TCM: u64 = 0x2000_0000;

pub(crate) fn attrs() -> MemTxAttrs {
    MemTxAttrs::default()
}

/// A peripheral: offset 4 of each page is a scratch register, every other offset reads its
/// identity.
pub(crate) struct Periph {
    pub(crate) id: u64,
    pub(crate) scratch: AtomicU64,
}

impl RegionOps for Periph {
    fn read(&self, offset: u64, _size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        match offset & 0xfff {
            4 => (self.scratch.load(Ordering::Relaxed), MemTxResult::OK),
            _ => (self.id, MemTxResult::OK),
        }
    }
    fn write(&self, offset: u64, value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        if offset & 0xfff == 4 {
            self.scratch.store(value, Ordering::Relaxed);
        }
        MemTxResult::OK
    }
}

/// A board: `system` (2^64) with 1 MiB of `pc.ram` at 0 and a system-wide `ppb` device
/// under the NVIC's address (so a CPU's private NVIC visibly overrides it).
pub(crate) struct Board {
    pub(crate) mem: Memory,
    pub(crate) system: RegionId,
    pub(crate) ram: RegionId,
}

pub(crate) fn board() -> Board {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("pc.ram", 0x10_0000).unwrap();
    let ppb = mem
        .io(
            "ppb",
            0x10_0000,
            Arc::new(Periph {
                id: 0xdead,
                scratch: AtomicU64::new(0),
            }),
        )
        .unwrap();
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, 0, ram).unwrap();
        mem.add_subregion(system, 0xe000_0000, ppb).unwrap();
    }
    Board { mem, system, ram }
}

/// Weak handles to what an M-profile CPU's builder created (to prove it is freed).
#[derive(Default)]
pub(crate) struct Created {
    pub(crate) periphs: std::sync::Mutex<Vec<Weak<Periph>>>,
}

/// An M-profile-like per-CPU root: a 2^64 container with an alias of `system` at priority
/// -1, a private `nvic-N` (identity 0x1000 + N) at 0xe000e000 priority 1, and a private
/// `tcm-N` RAM page filled with the byte N + 1.
pub(crate) fn m_profile(system: RegionId, created: Arc<Created>) -> PerCpuBuilder {
    Arc::new(move |mem: &Memory, i: u32| {
        let root = mem.container(&format!("cpu-container-{i}"), SIZE_2_64)?;
        let alias = mem.alias(&format!("cpu-sysmem-{i}"), system, 0, SIZE_2_64)?;
        let periph = Arc::new(Periph {
            id: 0x1000 + u64::from(i),
            scratch: AtomicU64::new(0),
        });
        created.periphs.lock().unwrap().push(Arc::downgrade(&periph));
        let nvic = mem.io(&format!("nvic-{i}"), 0x1000, periph)?;
        let tcm = mem.ram(&format!("tcm-{i}"), 0x1000)?;
        let block = mem.leaf(tcm)?.unwrap().backend().ram().unwrap().clone();
        assert!(block.write(0, &[i as u8 + 1; 0x1000]));
        let _tx = mem.transaction();
        mem.add_subregion_overlap(root, 0, alias, -1)?;
        mem.add_subregion_overlap(root, NVIC, nvic, 1)?;
        mem.add_subregion_overlap(root, TCM, tcm, 1)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, alias, nvic, tcm],
        })
    })
}

pub(crate) fn spec(index: usize, prefix: &str, view: CpuView) -> CpuSpaceSpec {
    CpuSpaceSpec {
        index,
        prefix: prefix.into(),
        view,
    }
}

/// How many `AS "name"` lines `info mtree -f` prints.
pub(crate) fn spaces_named(mem: &Memory, name: &str) -> usize {
    let needle = format!(" AS \"{name}\",");
    mtree::print_flat(mem, &FlatOptions::default())
        .lines()
        .filter(|l| l.starts_with(&needle))
        .count()
}

pub(crate) fn ld32(space: &AddressSpace, addr: u64) -> (u32, MemTxResult) {
    space.load::<u32>(GuestAddr(addr), LE, attrs())
}

pub(crate) fn is_slot_error(e: &Error, what: &str) -> bool {
    matches!(e, Error::WrongKind { kind: "cpu slot", what: w, .. } if *w == what)
}

/// A region id that no longer exists.
pub(crate) fn dead(mem: &Memory) -> RegionId {
    let r = mem.container("gone", 0x1000).unwrap();
    mem.delete_region(r).unwrap();
    r
}
