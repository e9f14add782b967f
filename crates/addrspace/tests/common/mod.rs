//! Helpers shared by the integration tests (each test file includes this module with
//! `mod common;` and uses what it needs).
#![allow(dead_code)]

pub mod change;
pub mod counting;
pub mod cpus;
pub mod reference;
pub mod sampling;
pub mod scale;

/// xorshift64*: reproducible choices and traces.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
}

/// A memory system with a 2^64 `system` container and the address space `memory` over it.
pub struct Board {
    pub mem: addrspace::Memory,
    pub system: addrspace::RegionId,
    pub space: addrspace::AddressSpace,
}

pub fn board() -> Board {
    let mem = addrspace::Memory::new();
    let system = mem.container("system", addrspace::SIZE_2_64).unwrap();
    let space = mem.address_space("memory", system).unwrap();
    Board { mem, system, space }
}

impl Board {
    /// Creates a 0x100-byte MMIO region handled by `ops` and maps it in `system` at `at`.
    pub fn map_io(&self, name: &str, at: u64, ops: std::sync::Arc<dyn addrspace::RegionOps>) -> addrspace::RegionId {
        let r = self.mem.io(name, 0x100, ops).unwrap();
        self.mem.add_subregion(self.system, at, r).unwrap();
        r
    }
}
