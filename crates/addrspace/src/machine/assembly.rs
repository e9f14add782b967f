//! [`Machine`]: a memory system together with the address spaces that keep it alive.
//!
//! Address spaces disappear when their last handle is dropped, so whatever builds a whole
//! machine (a board file, an imported QEMU dump) hands back the handles in one value, with
//! what it needs to be written back as a board file.

use crate::machine::address_space::AddressSpace;
use crate::machine::memory::Memory;
use crate::model::region::RegionId;

/// A built machine: its memory system, its address spaces in creation order, and its CPU
/// clusters.
#[derive(Debug)]
pub struct Machine {
    /// The memory system.
    pub memory: Memory,
    /// Address spaces, in creation order.
    pub address_spaces: Vec<AddressSpace>,
    /// Regions by the unique id they were given in the description, in creation order.
    pub regions: Vec<(String, RegionId)>,
    /// CPU clusters (their CPUs own the per-CPU spaces).
    pub clusters: Vec<crate::machine::cpu::Cluster>,
    /// The board file's `description`, if any.
    pub description: Option<String>,
    /// The board file's `[[cluster]]` and `[[cpu-root]]` tables as TOML, as loaded (empty
    /// for a machine without them). [`crate::io::board::export`] writes them back: the CPUs'
    /// own regions and address spaces are rebuilt from them, never exported as plain ones.
    pub cpu_tables: String,
    /// `(region id, ops name)` of each device region whose board file names a device model
    /// of the VMM's (`ops = "pl011"`), bound or not (see [`crate::board::Loader`]), in file
    /// order; [`crate::board::export`] writes these names back.
    pub devices: Vec<(String, String)>,
}

impl Machine {
    /// The first address space called `name`.
    pub fn address_space(&self, name: &str) -> Option<&AddressSpace> {
        self.address_spaces.iter().find(|s| s.name() == name)
    }

    /// The cluster called `name`.
    pub fn cluster_mut(&mut self, name: &str) -> Option<&mut crate::machine::cpu::Cluster> {
        self.clusters.iter_mut().find(|c| c.name() == name)
    }

    /// The region described under the id `key`.
    pub fn region(&self, key: &str) -> Option<RegionId> {
        self.regions.iter().find(|(k, _)| k == key).map(|(_, id)| *id)
    }
}
