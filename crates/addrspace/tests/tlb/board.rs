//! The board: every kind of range a TLB can cache (RAM, ROM, MMIO of both byte orders, ROM devices, windows, odd and tiny ranges), and its devices.

use super::*;

pub(crate) const PAGE: u64 = 0x1000;

// Board layout.
pub(crate) const RAM: u64 = 0x0000_0000;
pub(crate) const RAM_SIZE: u64 = 0x4_0000;
pub(crate) const OVERLAY: u64 = 0x3800;
pub(crate) const ROM: u64 = 0x0010_0000;
pub(crate) const UART: u64 = 0x0020_0000;
pub(crate) const BEDEV: u64 = 0x0020_1000;
pub(crate) const FLASH: u64 = 0x0030_0000;
pub(crate) const WIN: u64 = 0x0040_0000;
pub(crate) const WIN_SIZE: u64 = 0x2000;
pub(crate) const ODD: [u64; 2] = [0x0050_0800, 0x0051_0000];
pub(crate) const TINY: u64 = 0x0060_0010;
pub(crate) const VRAM: u64 = 0x0070_0000;
pub(crate) const RO: u64 = 0x0080_0000;
pub(crate) const LOGGED: u64 = 0x0090_0000;
pub(crate) const MOVER: [u64; 2] = [0x00a0_0000, 0x00a1_0000];
pub(crate) const TOGGLER: u64 = 0x00b0_0000;
pub(crate) const SCRATCH: u64 = 0x00c0_0000;
pub(crate) const TOP: u64 = 0xffff_ffff_ffff_f000;
pub(crate) const HOLE: u64 = 0x5000_0000;

/// Byte `i` of the pool segment mapped at `k`: every byte of a segment is the same.
pub(crate) fn win_byte(k: u64) -> u8 {
    0x10 + k as u8
}
pub(crate) const MOVER_BYTE: u8 = 0x6d;
pub(crate) const TOGGLER_BYTE: u8 = 0x7e;
pub(crate) const FLASH_MMIO_BYTE: u8 = 0x0d;

/// A register file of bytes: reads and writes have no side effect beyond the bytes.
pub(crate) struct RegFile {
    pub(crate) bytes: Mutex<Vec<u8>>,
    pub(crate) rules: AccessRules,
}

impl RegFile {
    pub(crate) fn new(len: usize, rules: AccessRules) -> Arc<RegFile> {
        Arc::new(RegFile {
            bytes: Mutex::new((0..len).map(|i| (i * 3 + 1) as u8).collect()),
            rules,
        })
    }
}

impl RegionOps for RegFile {
    fn read(&self, offset: u64, size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let b = self.bytes.lock().unwrap();
        let mut v = [0u8; 8];
        for (i, x) in v.iter_mut().enumerate().take(size as usize) {
            *x = b.get(offset as usize + i).copied().unwrap_or(0);
        }
        (u64::from_le_bytes(v), MemTxResult::OK)
    }
    fn write(&self, offset: u64, value: u64, size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        let mut b = self.bytes.lock().unwrap();
        for (i, x) in value.to_le_bytes().iter().enumerate().take(size as usize) {
            if let Some(y) = b.get_mut(offset as usize + i) {
                *y = *x;
            }
        }
        MemTxResult::OK
    }
    fn rules(&self) -> AccessRules {
        self.rules
    }
}

/// A flash chip's MMIO side: reads a constant, ignores writes.
pub(crate) struct FlashOps;

impl RegionOps for FlashOps {
    fn read(&self, _offset: u64, size: u32, _attrs: MemTxAttrs) -> (u64, MemTxResult) {
        let v = u64::from_le_bytes([FLASH_MMIO_BYTE; 8]);
        (if size >= 8 { v } else { v & ((1 << (8 * size)) - 1) }, MemTxResult::OK)
    }
    fn write(&self, _offset: u64, _value: u64, _size: u32, _attrs: MemTxAttrs) -> MemTxResult {
        MemTxResult::OK
    }
}

/// The board and the regions its topology changes act on.
pub(crate) struct Board {
    pub(crate) mem: Memory,
    pub(crate) system: RegionId,
    pub(crate) win: RegionId,
    pub(crate) odd: RegionId,
    pub(crate) flash: RegionId,
    pub(crate) mover: RegionId,
    pub(crate) toggler: RegionId,
    pub(crate) ro: RegionId,
    pub(crate) logged: RegionId,
    pub(crate) overlay: RegionId,
}

pub(crate) fn fill(mem: &Memory, r: RegionId, f: impl Fn(usize) -> u8) {
    let leaf = mem.leaf(r).unwrap().unwrap();
    let block = leaf.backend().ram().unwrap();
    let bytes: Vec<u8> = (0..block.len()).map(f).collect();
    assert!(block.write(0, &bytes));
}

/// Builds the board deterministically (twice for the differential test).
pub(crate) fn build() -> Board {
    let mem = Memory::new();
    let system = mem.container("system", SIZE_2_64).unwrap();
    let ram = mem.ram("ram", RAM_SIZE.into()).unwrap();
    fill(&mem, ram, |i| (i * 31 + 7) as u8);
    let overlay = mem.ram("overlay", 0x1000).unwrap();
    fill(&mem, overlay, |i| (i as u8).wrapping_mul(5) ^ 0x33);
    let rom = mem.rom("rom", 0x1_0000).unwrap();
    fill(&mem, rom, |i| (i * 13) as u8 ^ 0xa5);
    let any = AccessRules {
        valid: SizeRule::ANY,
        implementation: SizeRule::ANY,
        ..AccessRules::default()
    };
    let uart = mem.io("uart", 0x1000, RegFile::new(0x1000, any)).unwrap();
    let be = AccessRules {
        valid: SizeRule::aligned(4, 4),
        endianness: Endianness::Big,
        ..AccessRules::default()
    };
    let bedev = mem.io("bedev", 0x1000, RegFile::new(0x1000, be)).unwrap();
    let flash = mem.rom_device("flash", 0x2000, Arc::new(FlashOps)).unwrap();
    fill(&mem, flash, |i| (i * 7) as u8 ^ 0x5c);
    let pool = mem.ram("pool", u128::from(4 * WIN_SIZE)).unwrap();
    fill(&mem, pool, |i| win_byte(i as u64 / WIN_SIZE));
    let win = mem.alias("win", pool, 0, WIN_SIZE.into()).unwrap();
    let odd = mem.alias("odd", ram, 0x123, 0x3000).unwrap();
    let tiny = mem.ram("tiny", 0x100).unwrap();
    fill(&mem, tiny, |i| i as u8 ^ 0x99);
    let vram = mem.ram_device("vram", 0x2000).unwrap();
    fill(&mem, vram, |i| (i * 11) as u8);
    let ro = mem.alias("ro", ram, 0x2000, 0x2000).unwrap();
    let logged = mem.ram("logged", 0x2000).unwrap();
    fill(&mem, logged, |i| (i * 17) as u8);
    let mover = mem.ram("mover", 0x1000).unwrap();
    fill(&mem, mover, |_| MOVER_BYTE);
    let toggler = mem.ram("toggler", 0x2000).unwrap();
    fill(&mem, toggler, |_| TOGGLER_BYTE);
    let scratch = mem.ram("scratch", 0x4000).unwrap();
    let top = mem.ram("top", 0x1000).unwrap();
    fill(&mem, top, |i| (i * 3) as u8 ^ 0xf0);
    {
        let _tx = mem.transaction();
        mem.add_subregion(system, RAM, ram).unwrap();
        mem.add_subregion_overlap(system, OVERLAY, overlay, 1).unwrap();
        mem.add_subregion(system, ROM, rom).unwrap();
        mem.add_subregion(system, UART, uart).unwrap();
        mem.add_subregion(system, BEDEV, bedev).unwrap();
        mem.add_subregion(system, FLASH, flash).unwrap();
        mem.add_subregion(system, WIN, win).unwrap();
        mem.add_subregion(system, ODD[0], odd).unwrap();
        mem.add_subregion(system, TINY, tiny).unwrap();
        mem.add_subregion(system, VRAM, vram).unwrap();
        mem.add_subregion(system, RO, ro).unwrap();
        mem.set_readonly(ro, true).unwrap();
        mem.add_subregion(system, LOGGED, logged).unwrap();
        mem.dirty().set(logged, DirtyClient::Vga, true).unwrap();
        mem.add_subregion(system, MOVER[0], mover).unwrap();
        mem.add_subregion(system, TOGGLER, toggler).unwrap();
        mem.add_subregion(system, SCRATCH, scratch).unwrap();
        mem.add_subregion(system, TOP, top).unwrap();
    }
    Board {
        mem,
        system,
        win,
        odd,
        flash,
        mover,
        toggler,
        ro,
        logged,
        overlay,
    }
}
