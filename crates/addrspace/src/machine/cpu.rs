//! CPUs and the address spaces they use: created when a CPU is realized, destroyed — every
//! one, exactly once — when it is unrealized, by ownership alone.
//!
//! QEMU leaked per-CPU address spaces on every vCPU hot-unplug because destruction was a call
//! that nobody made, and freeing an address space after its deferred destruction was hard to
//! get right (spec §6.3). Here a [`Cpu`] owns what it created: its address spaces (with their
//! TLB listeners) and the regions of a per-CPU root. Dropping it (unplug) unregisters the
//! listeners, destroys the spaces and deletes the regions — even if a clone of a space's
//! handle is still held elsewhere (a vCPU thread's): that handle then sees the empty view
//! ([`AddressSpace::destroy_now`]). Readers still inside an access finish on the views they
//! hold, which go away with them. A board-owned space ([`CpuView::Shared`]) is not the CPU's
//! to destroy.
//!
//! Both ownership models of the 2025 discussion, and the mixed case, are one [`CpuModel`]:
//! each address-space index is either created per CPU over a board region
//! ([`CpuView::Root`], QEMU's `cpu_address_space_init`), a board-owned space shared by the
//! cluster ([`CpuView::Shared`]: CPUs hold handles, nothing is allocated per CPU), or a space
//! over a per-CPU root built at realize ([`CpuView::PerCpu`]: M-profile private peripherals,
//! x86 SMM). A [`Cluster`] is a set of CPU slots with one model; asymmetric machines (a53 +
//! r5) have several.

use std::fmt;
use std::sync::Arc;

use crate::base::error::{Error, Result};
use crate::base::limits::MAX_CPU_ID;
use crate::machine::address_space::AddressSpace;
use crate::machine::memory::{Memory, WeakMemory};
use crate::machine::tlb::TlbListener;
use crate::model::region::RegionId;
use crate::write::listener::{ListenerHandle, PRIORITY_MIN};

/// Builds a per-CPU root at realize: returns the root and every region it created (in
/// creation order; they are deleted in reverse at unrealize).
pub type PerCpuBuilder = Arc<dyn Fn(&Memory, u32) -> Result<PerCpuRoot> + Send + Sync>;

/// A per-CPU root and the regions created for it.
#[derive(Debug, Clone)]
pub struct PerCpuRoot {
    /// The root of the CPU's address space.
    pub root: RegionId,
    /// Regions created for this CPU (the root included), in creation order.
    pub regions: Vec<RegionId>,
}

/// Where one of a CPU's address spaces comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum CpuView {
    /// A space `<prefix>-<cpu index>` created for this CPU over a board region (QEMU's
    /// `cpu_address_space_init`); CPUs over the same root share one view.
    Root(RegionId),
    /// A board-owned space shared by the cluster: the CPU only holds a handle.
    Shared(AddressSpace),
    /// A space `<prefix>-<cpu index>` over a root built for this CPU at realize.
    PerCpu(PerCpuBuilder),
    /// A space `<prefix>-<cpu index>` over the same root as this CPU's space `index` (which
    /// must come earlier in the model): M-profile TrustZone CPUs see their container through
    /// both `cpu-memory-N` and `cpu-secure-memory-N`.
    SameRootAs(usize),
}

impl fmt::Debug for CpuView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpuView::Root(r) => write!(f, "Root({r})"),
            CpuView::Shared(s) => write!(f, "Shared({})", s.name()),
            CpuView::PerCpu(_) => f.write_str("PerCpu"),
            CpuView::SameRootAs(i) => write!(f, "SameRootAs({i})"),
        }
    }
}

/// One address-space index of a CPU model.
#[derive(Debug, Clone)]
pub struct CpuSpaceSpec {
    /// QEMU's `asidx` (0 = `cpu->as`).
    pub index: usize,
    /// Name prefix: the space is called `<prefix>-<cpu index>` (e.g. `cpu-memory-0`).
    pub prefix: String,
    /// Where the space comes from.
    pub view: CpuView,
}

/// What realizing a CPU creates.
#[derive(Debug, Clone, Default)]
pub struct CpuModel {
    /// The CPU's address spaces, by index.
    pub spaces: Vec<CpuSpaceSpec>,
    /// Register a TCG-style TLB listener on each space.
    pub tlb: bool,
}

/// One of a CPU's address spaces and what listens on it for the CPU.
struct CpuSpace {
    space: AddressSpace,
    tlb: Option<(Arc<TlbListener>, ListenerHandle)>,
    /// Created for this CPU (destroyed with it, whoever else holds a handle).
    own: bool,
}

impl Drop for CpuSpace {
    fn drop(&mut self) {
        // The CPU's listener goes first (it hears its own deletion replay), then the space.
        self.tlb = None;
        if self.own {
            self.space.destroy_now();
        }
    }
}

/// Regions built for a CPU's root, deleted in reverse order when the last address space over
/// that root is destroyed (a clone of the space's handle may outlive the CPU).
struct Owned {
    memory: WeakMemory,
    regions: Vec<RegionId>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        let Some(memory) = self.memory.upgrade() else { return };
        if let Err(e) = memory.delete_regions(&self.regions) {
            tracing::warn!(error = %e, "a per-CPU region is still in use");
        }
    }
}

/// A realized CPU. Dropping it is unrealize: listeners unregistered, spaces destroyed,
/// per-CPU regions deleted.
pub struct Cpu {
    index: u32,
    // Field order is drop order: spaces (and their listeners) before the regions under them.
    spaces: Vec<Option<CpuSpace>>,
    /// Per-CPU roots by space index (also held by the spaces over them).
    owned: Vec<Option<Arc<Owned>>>,
}

impl Cpu {
    /// Realizes CPU `index` of `model` in `memory`. The index must be below
    /// [`MAX_CPU_ID`] and every space index below [`crate::base::limits::MAX_CPU_SPACES`]
    /// ([`Error::Limit`] otherwise).
    ///
    /// ```
    /// use addrspace::cpu::{Cpu, CpuModel, CpuSpaceSpec, CpuView};
    /// use addrspace::Memory;
    ///
    /// let mem = Memory::new();
    /// let system = mem.container("system", 1 << 64)?;
    /// let model = CpuModel {
    ///     spaces: vec![CpuSpaceSpec { index: 0, prefix: "cpu-memory".into(), view: CpuView::Root(system) }],
    ///     tlb: true,
    /// };
    /// let cpu = Cpu::realize(&mem, 3, &model)?;
    /// assert_eq!(cpu.address_space(0).unwrap().name(), "cpu-memory-3");
    /// drop(cpu); // unrealize: the space and its listener are gone
    /// assert_eq!((mem.stats().address_spaces, mem.stats().listeners), (0, 0));
    /// # Ok::<(), addrspace::Error>(())
    /// ```
    pub fn realize(memory: &Memory, index: u32, model: &CpuModel) -> Result<Cpu> {
        crate::base::limits::at_most(|| "CPU index".into(), index.into(), u64::from(MAX_CPU_ID) - 1)?;
        for spec in &model.spaces {
            crate::base::limits::check_space_index(&spec.prefix, spec.index)?;
        }
        // One commit for everything the CPU adds.
        let _tx = memory.transaction();
        let max = model.spaces.iter().map(|s| s.index + 1).max().unwrap_or(0);
        let mut cpu = Cpu {
            index,
            spaces: (0..max).map(|_| None).collect(),
            owned: (0..max).map(|_| None).collect(),
        };
        for spec in &model.spaces {
            if cpu.spaces[spec.index].is_some() {
                return Err(Error::WrongKind {
                    name: spec.prefix.clone(),
                    kind: "cpu address space",
                    what: "two spaces were given the same index",
                });
            }
            let space = match &spec.view {
                CpuView::Root(root) => memory.address_space(&format!("{}-{index}", spec.prefix), *root)?,
                CpuView::Shared(space) => space.clone(),
                CpuView::PerCpu(build) => {
                    let built = build(memory, index)?;
                    // Owned at once: a failure below still deletes what was built.
                    let owned = Arc::new(Owned {
                        memory: memory.downgrade(),
                        regions: built.regions,
                    });
                    cpu.owned[spec.index] = Some(owned.clone());
                    let space = memory.address_space(&format!("{}-{index}", spec.prefix), built.root)?;
                    space.keep_alive(owned);
                    space
                }
                CpuView::SameRootAs(other) => {
                    let root = cpu
                        .address_space(*other)
                        .map(AddressSpace::root)
                        .ok_or(Error::WrongKind {
                            name: spec.prefix.clone(),
                            kind: "cpu address space",
                            what: "SameRootAs names an index that is not created before it",
                        })?;
                    let space = memory.address_space(&format!("{}-{index}", spec.prefix), root)?;
                    if let Some(owned) = cpu.owned[*other].clone() {
                        cpu.owned[spec.index] = Some(owned.clone());
                        space.keep_alive(owned);
                    }
                    space
                }
            };
            let tlb = if model.tlb {
                let l = Arc::new(TlbListener::default());
                let h = space.register_listener(l.clone(), PRIORITY_MIN)?;
                Some((l, h))
            } else {
                None
            };
            let own = !matches!(spec.view, CpuView::Shared(_));
            cpu.spaces[spec.index] = Some(CpuSpace { space, tlb, own });
        }
        Ok(cpu)
    }

    /// The CPU's index (QEMU's `cpu_index`).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Address space `asidx` (0 is QEMU's `cpu->as`).
    pub fn address_space(&self, asidx: usize) -> Option<&AddressSpace> {
        self.spaces.get(asidx)?.as_ref().map(|s| &s.space)
    }

    /// The TLB listener on space `asidx`, if the model has TLBs.
    pub fn tlb_listener(&self, asidx: usize) -> Option<&Arc<TlbListener>> {
        self.spaces.get(asidx)?.as_ref()?.tlb.as_ref().map(|(l, _)| l)
    }

    /// Unrealizes the CPU (same as dropping it).
    pub fn unrealize(self) {}
}

impl fmt::Debug for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.spaces.iter().flatten().map(|s| s.space.name()).collect();
        f.debug_struct("Cpu")
            .field("index", &self.index)
            .field("spaces", &names)
            .finish()
    }
}

/// CPU slots sharing one model: a cluster (QEMU's `cpu-cluster`), or all CPUs of an SMP
/// machine. Plugging a slot realizes a CPU; unplugging drops it.
pub struct Cluster {
    name: String,
    memory: Memory,
    model: CpuModel,
    first_index: u32,
    slots: Vec<Option<Cpu>>,
}

impl Cluster {
    /// A cluster of `max_cpus` empty slots whose CPUs get indices from `first_index`.
    ///
    /// [`Error::Limit`] if `max_cpus` exceeds [`crate::base::limits::MAX_CPUS`] or an index would
    /// reach [`MAX_CPU_ID`].
    pub fn new(name: &str, memory: &Memory, model: CpuModel, first_index: u32, max_cpus: usize) -> Result<Cluster> {
        crate::base::limits::check_cluster(name, first_index, max_cpus)?;
        Ok(Cluster {
            name: name.to_string(),
            memory: memory.clone(),
            model,
            first_index,
            slots: (0..max_cpus).map(|_| None).collect(),
        })
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of slots.
    pub fn max_cpus(&self) -> usize {
        self.slots.len()
    }

    /// Plugs slot `slot` (realizes its CPU).
    pub fn plug(&mut self, slot: usize) -> Result<&Cpu> {
        let Some(entry) = self.slots.get_mut(slot) else {
            return Err(self.slot_error(slot, "no such slot"));
        };
        if entry.is_some() {
            return Err(self.slot_error(slot, "slot already has a CPU"));
        }
        let index = u32::try_from(slot)
            .ok()
            .and_then(|s| self.first_index.checked_add(s))
            .ok_or_else(|| self.slot_error(slot, "CPU index overflows"))?;
        let cpu = Cpu::realize(&self.memory, index, &self.model)?;
        Ok(self.slots[slot].insert(cpu))
    }

    /// Unplugs slot `slot` (unrealizes its CPU).
    pub fn unplug(&mut self, slot: usize) -> Result<()> {
        match self.slots.get_mut(slot).and_then(Option::take) {
            Some(cpu) => {
                drop(cpu);
                Ok(())
            }
            None => Err(self.slot_error(slot, "slot is empty")),
        }
    }

    /// The CPU in slot `slot`.
    pub fn cpu(&self, slot: usize) -> Option<&Cpu> {
        self.slots.get(slot)?.as_ref()
    }

    /// Present CPUs, by slot.
    pub fn cpus(&self) -> impl Iterator<Item = &Cpu> {
        self.slots.iter().flatten()
    }

    fn slot_error(&self, slot: usize, what: &'static str) -> Error {
        Error::WrongKind {
            name: format!("{}[{slot}]", self.name),
            kind: "cpu slot",
            what,
        }
    }
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("name", &self.name)
            .field("present", &self.cpus().count())
            .field("max", &self.slots.len())
            .finish()
    }
}
