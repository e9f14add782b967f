//! CPU-model pieces shared by the CPU lifecycle tests.

use std::sync::Arc;

use addrspace::cpu::{PerCpuBuilder, PerCpuRoot};
use addrspace::{Memory, RegionId, SIZE_2_64};

/// Where the SMRAM window sits in an SMM root.
pub const SMRAM: u64 = 0xa0000;

/// An x86-SMM-like per-CPU root: alias of `system` at 0 priority 0, alias of the board's
/// 128 KiB `smram` at [`SMRAM`] priority 1.
pub fn smm(system: RegionId, smram: RegionId) -> PerCpuBuilder {
    Arc::new(move |mem: &Memory, i: u32| {
        let root = mem.container(&format!("smm-container-{i}"), SIZE_2_64)?;
        let sys = mem.alias(&format!("smm-memory-{i}"), system, 0, SIZE_2_64)?;
        let sm = mem.alias(&format!("smram-window-{i}"), smram, 0, 0x20000)?;
        let _tx = mem.transaction();
        mem.add_subregion_overlap(root, 0, sys, 0)?;
        mem.add_subregion_overlap(root, SMRAM, sm, 1)?;
        Ok(PerCpuRoot {
            root,
            regions: vec![root, sys, sm],
        })
    })
}
