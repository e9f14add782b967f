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
