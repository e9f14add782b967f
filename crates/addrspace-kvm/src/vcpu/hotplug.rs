//! Hot-plug and hot-unplug of vCPUs at run time, with parked vCPU fds; starting the vCPUs of
//! CPUs the board realized at load (QEMU's `-smp` boot CPUs); a machine-wide stop/cont.
//!
//! KVM cannot destroy a vCPU while its VM lives, nor create an id twice (`EEXIST`, even after
//! the fd is closed), so an unplugged vCPU's fd is parked here by id and taken back when the
//! same id is plugged again (QEMU's `kvm_park_vcpu` / `kvm_unpark_vcpu`, spec §7.3).

use std::collections::BTreeMap;
use std::sync::Arc;

use addrspace::cpu::Cluster;
use kvm_ioctls::{VcpuFd, VmFd};

use super::{Entry, ExitStats, Gate, HaltPolicy, RunEnd, SpaceIndices, Vcpu, VcpuOptions};
use crate::error::{Error, Result};
use crate::memslots::UpdateFence;

/// vCPU fds of unplugged CPUs, by vCPU id.
///
/// ```no_run
/// use addrspace_kvm::vcpu::VcpuPool;
/// use addrspace_kvm::Kvm;
///
/// let vm = Kvm::open()?.raw().create_vm().map_err(|e| addrspace_kvm::Error::ioctl("KVM_CREATE_VM", e))?;
/// let mut pool = VcpuPool::new();
/// let fd = pool.take_or_create(&vm, 2)?; // KVM_CREATE_VCPU 2
/// pool.park(2, fd);                      // unplugged: KVM keeps vCPU 2 alive
/// assert!(vm.create_vcpu(2).is_err());   // EEXIST, forever
/// let fd = pool.take_or_create(&vm, 2)?; // the parked fd
/// # drop(fd);
/// # Ok::<(), addrspace_kvm::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct VcpuPool {
    parked: BTreeMap<u64, VcpuFd>,
}

impl VcpuPool {
    /// An empty pool.
    pub fn new() -> VcpuPool {
        VcpuPool::default()
    }

    /// The fd of vCPU `id`: the parked one if there is one, else a new `KVM_CREATE_VCPU`.
    pub fn take_or_create(&mut self, vm: &VmFd, id: u64) -> Result<VcpuFd> {
        match self.parked.remove(&id) {
            Some(fd) => Ok(fd),
            None => vm.create_vcpu(id).map_err(|e| Error::ioctl("KVM_CREATE_VCPU", e)),
        }
    }

    /// Parks `fd` as vCPU `id`'s. A second fd for the same id cannot exist (KVM refuses to
    /// create it), so an existing entry is kept and the new fd dropped with a warning.
    pub fn park(&mut self, id: u64, fd: VcpuFd) {
        if self.parked.contains_key(&id) {
            tracing::warn!(vcpu = id, "a vcpu fd is already parked for this id");
            return;
        }
        self.parked.insert(id, fd);
    }

    /// Number of parked fds.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Whether vCPU `id` has a parked fd.
    pub fn is_parked(&self, id: u64) -> bool {
        self.parked.contains_key(&id)
    }
}

/// A cluster whose CPUs run as KVM vCPUs, plugged and unplugged at run time.
///
/// ```no_run
/// use std::sync::Arc;
/// use addrspace::cpu::{Cluster, CpuModel, CpuSpaceSpec, CpuView};
/// use addrspace::Memory;
/// use addrspace_kvm::vcpu::{Entry, Hotplug, SpaceIndices};
/// use addrspace_kvm::Kvm;
///
/// let mem = Memory::new();
/// let system = mem.container("system", 1 << 64)?;
/// let model = CpuModel {
///     spaces: vec![CpuSpaceSpec { index: 0, prefix: "cpu-memory".into(), view: CpuView::Root(system) }],
///     tlb: false,
/// };
/// let cluster = Cluster::new("cpus", &mem, model, 0, 4)?;
/// let vm = Arc::new(Kvm::open()?.raw().create_vm().map_err(|e| addrspace_kvm::Error::ioctl("KVM_CREATE_VM", e))?);
/// let mut cpus = Hotplug::new(vm, cluster, SpaceIndices { memory: 0, io: None });
/// cpus.plug(1, Entry::real_mode(0x1000))?;   // KVM_CREATE_VCPU 1
/// cpus.wait(1)?;                             // the guest halted
/// cpus.unplug(1)?;                           // fd parked, cpu-memory-1 destroyed
/// cpus.plug(1, Entry::real_mode(0x1000))?;   // the parked fd, registers reset
/// assert_eq!(cpus.pool().parked(), 0);
/// cpus.pause_all()?;                         // stop: every vCPU parked out of KVM_RUN
/// cpus.resume_all();                         // cont
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Hotplug {
    vm: Arc<VmFd>,
    cluster: Cluster,
    spaces: SpaceIndices,
    pool: VcpuPool,
    gate: Arc<Gate>,
    /// By slot: a running vCPU, or the fd of one whose loop ended (still plugged).
    vcpus: Vec<Option<Slot>>,
    /// What `HLT` does on vCPUs started from now on.
    halt: HaltPolicy,
    /// Stopped machine-wide ([`pause_all`](Self::pause_all)): new vCPUs start parked.
    paused: bool,
}

enum Slot {
    Running(Vcpu),
    Ended(VcpuFd, RunEnd, ExitStats),
}

/// What a CPU slot of a [`Hotplug`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotState {
    /// No CPU.
    Empty,
    /// A CPU realized by the board at load, without a vCPU yet ([`Hotplug::start`] starts
    /// it).
    Realized,
    /// A vCPU was started (running, paused, or ended but not yet [waited](Hotplug::wait)
    /// for).
    Running,
    /// The vCPU's run loop ended, for this reason; the CPU is still plugged.
    Ended(RunEnd),
}

impl Hotplug {
    /// vCPUs for `cluster`'s CPUs in `vm`, dispatching through `spaces`. CPUs the cluster
    /// already holds (realized by the board) get their vCPUs from [`start`](Self::start).
    pub fn new(vm: Arc<VmFd>, cluster: Cluster, spaces: SpaceIndices) -> Hotplug {
        let n = cluster.max_cpus();
        Hotplug {
            vm,
            cluster,
            spaces,
            pool: VcpuPool::new(),
            gate: Arc::default(),
            vcpus: (0..n).map(|_| None).collect(),
            halt: HaltPolicy::default(),
            paused: false,
        }
    }

    /// What `HLT` does on the vCPUs started after this call ([`HaltPolicy::Exit`] until
    /// set); running vCPUs keep theirs.
    pub fn set_halt_policy(&mut self, halt: HaltPolicy) {
        self.halt = halt;
    }

    /// The policy new vCPUs get.
    pub fn halt_policy(&self) -> HaltPolicy {
        self.halt
    }

    /// Plugs slot `slot`: realizes its CPU (address spaces created), takes the vCPU fd (a
    /// parked one for this id, or a new one), sets its registers to `entry` and starts it
    /// (parked, if the machine is [paused](Self::pause_all)). On an error the CPU is
    /// unplugged again and the fd (if any) parked.
    ///
    /// [`Error::Slot`] for a slot that does not exist, is plugged, or holds a CPU the board
    /// realized (that one is started with [`start`](Self::start)).
    pub fn plug(&mut self, slot: usize, entry: Entry) -> Result<&Vcpu> {
        match self.slot_state(slot) {
            None => return Err(slot_error(slot, "no such slot")),
            Some(SlotState::Empty) => {}
            Some(SlotState::Realized) => {
                return Err(slot_error(
                    slot,
                    "the board realized this CPU and it has no vCPU yet: start it instead of plugging",
                ))
            }
            Some(_) => return Err(slot_error(slot, "the slot is already plugged")),
        }
        self.cluster.plug(slot)?;
        self.launch(slot, entry, true)
    }

    /// Starts the vCPU of slot `slot`, whose CPU the board realized at load (QEMU's boot
    /// CPUs): takes its fd, sets its registers to `entry` and starts it (parked, if the
    /// machine is [paused](Self::pause_all)). It is then unplugged like a plugged one. On an
    /// error the CPU stays realized and the fd (if any) is parked.
    ///
    /// [`Error::Slot`] for a slot that does not exist, has no CPU (use
    /// [`plug`](Self::plug)) or has a vCPU already.
    pub fn start(&mut self, slot: usize, entry: Entry) -> Result<&Vcpu> {
        match self.slot_state(slot) {
            None => return Err(slot_error(slot, "no such slot")),
            Some(SlotState::Realized) => {}
            Some(SlotState::Empty) => return Err(slot_error(slot, "the slot has no CPU: plug it")),
            Some(_) => return Err(slot_error(slot, "the slot's vCPU is already started")),
        }
        self.launch(slot, entry, false)
    }

    /// Starts a vCPU for the realized CPU of `slot`; on an error parks the fd and, if
    /// `plugged_here`, unplugs the CPU again.
    fn launch(&mut self, slot: usize, entry: Entry, plugged_here: bool) -> Result<&Vcpu> {
        let Some(cpu) = self.cluster.cpu(slot) else {
            return Err(slot_error(slot, "the slot has no CPU"));
        };
        let id = cpu.index();
        let options = VcpuOptions {
            halt: self.halt,
            paused: self.paused,
        };
        let started = match self.pool.take_or_create(&self.vm, id.into()) {
            Ok(fd) => Vcpu::start_or_return(fd, cpu, self.spaces, entry, self.gate.clone(), options),
            Err(e) => Err(Box::new((e, None))),
        };
        match started {
            Ok(vcpu) => match self.vcpus[slot].insert(Slot::Running(vcpu)) {
                Slot::Running(v) => Ok(v),
                Slot::Ended(..) => Err(empty(slot)),
            },
            Err(failed) => {
                let (e, fd) = *failed;
                // A fd that could not start is parked: its id stays pluggable.
                if let Some(fd) = fd {
                    self.pool.park(id.into(), fd);
                }
                if plugged_here {
                    self.cluster.unplug(slot)?;
                }
                Err(e)
            }
        }
    }

    /// Waits until slot `slot`'s guest stops on its own (`HLT` under [`HaltPolicy::Exit`],
    /// shutdown, error); the CPU stays plugged. A `KVM_RUN` error is returned once (the slot
    /// then reports [`RunEnd::Failed`]). A paused or idling vCPU does not stop on its own:
    /// this then blocks until someone else stops it.
    pub fn wait(&mut self, slot: usize) -> Result<RunEnd> {
        match self.vcpus.get_mut(slot).and_then(Option::take) {
            Some(Slot::Running(v)) => {
                let id = v.id();
                match v.wait_keeping_stats() {
                    Ok((fd, end, stats)) => {
                        let end = end.inspect_err(|e| tracing::warn!(vcpu = id, error = %e, "vcpu run loop failed"));
                        self.vcpus[slot] = Some(Slot::Ended(fd, *end.as_ref().unwrap_or(&RunEnd::Failed), stats));
                        end
                    }
                    Err(e) => {
                        // The thread panicked: its fd is gone; the CPU stays plugged until
                        // unplugged.
                        tracing::warn!(vcpu = id, error = %e, "vcpu lost");
                        Err(e)
                    }
                }
            }
            Some(Slot::Ended(fd, end, stats)) => {
                self.vcpus[slot] = Some(Slot::Ended(fd, end, stats));
                Ok(end)
            }
            None => Err(empty(slot)),
        }
    }

    /// Unplugs slot `slot`: stops its vCPU thread (paused or not), parks its fd, unrealizes
    /// the CPU (its address spaces destroyed). Returns why the run loop ended, or its
    /// `KVM_RUN` error (the CPU is unplugged and the fd parked all the same). A CPU the board
    /// realized and whose vCPU was never started is unrealized with [`RunEnd::Stopped`].
    pub fn unplug(&mut self, slot: usize) -> Result<RunEnd> {
        let Some(entry) = self.vcpus.get_mut(slot).and_then(Option::take) else {
            if self.slot_state(slot) == Some(SlotState::Realized) {
                self.cluster.unplug(slot)?;
                return Ok(RunEnd::Stopped);
            }
            return Err(empty(slot));
        };
        let id = match &entry {
            Slot::Running(v) => v.id(),
            Slot::Ended(..) => self.cluster.cpu(slot).map(|c| c.index()).unwrap_or_default(),
        };
        let (fd, end) = match entry {
            Slot::Running(v) => match v.stop() {
                Ok((fd, end)) => (fd, end),
                Err(e) => {
                    // The fd is gone with the thread; the CPU still goes.
                    self.cluster.unplug(slot)?;
                    return Err(e);
                }
            },
            Slot::Ended(fd, end, _) => (fd, Ok(end)),
        };
        self.pool.park(id.into(), fd);
        self.cluster.unplug(slot)?;
        end
    }

    /// Stops the machine (QMP's `stop`): kicks every running vCPU out of `KVM_RUN` and
    /// returns once each is parked with its pending MMIO/PIO completed (or its loop ended).
    /// vCPUs plugged or started while paused start parked. Stays paused until
    /// [`resume_all`](Self::resume_all) (a [`Vcpu::resume`] of one vCPU lets that one run).
    pub fn pause_all(&mut self) -> Result<()> {
        self.paused = true;
        // Every request first, so the vCPUs leave KVM_RUN together.
        let mut failed = None;
        let mut asked = Vec::new();
        for v in self.running() {
            match v.request_pause() {
                Ok(()) => asked.push(v),
                Err(e) => {
                    tracing::warn!(vcpu = v.id(), error = %e, "pausing a vcpu failed");
                    failed.get_or_insert(e);
                }
            }
        }
        for v in asked {
            v.wait_parked();
        }
        failed.map_or(Ok(()), Err)
    }

    /// Resumes the machine (QMP's `cont`): every parked vCPU runs again.
    pub fn resume_all(&mut self) {
        self.paused = false;
        for v in self.running() {
            v.resume();
        }
    }

    /// Whether the machine is stopped by [`pause_all`](Self::pause_all).
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    fn running(&self) -> impl Iterator<Item = &Vcpu> {
        self.vcpus.iter().filter_map(|s| match s {
            Some(Slot::Running(v)) => Some(v),
            _ => None,
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.vcpus.len()
    }

    /// What slot `slot` holds (`None`: no such slot).
    pub fn slot_state(&self, slot: usize) -> Option<SlotState> {
        Some(match self.vcpus.get(slot)? {
            Some(Slot::Running(_)) => SlotState::Running,
            Some(Slot::Ended(_, end, _)) => SlotState::Ended(*end),
            None if self.cluster.cpu(slot).is_some() => SlotState::Realized,
            None => SlotState::Empty,
        })
    }

    /// Whether slot `slot` holds a CPU (plugged, or realized by the board).
    pub fn is_plugged(&self, slot: usize) -> bool {
        self.cluster.cpu(slot).is_some()
    }

    /// The Linux thread id of slot `slot`'s running vCPU (QMP's `thread-id`).
    pub fn thread_id(&self, slot: usize) -> Option<i32> {
        self.vcpu(slot).map(Vcpu::thread_id)
    }

    /// The running vCPU in slot `slot`.
    pub fn vcpu(&self, slot: usize) -> Option<&Vcpu> {
        match self.vcpus.get(slot)?.as_ref()? {
            Slot::Running(v) => Some(v),
            Slot::Ended(..) => None,
        }
    }
    /// The exits slot `slot`'s vCPU handled (final counts once its loop ended).
    pub fn exits(&self, slot: usize) -> Option<ExitStats> {
        match self.vcpus.get(slot)?.as_ref()? {
            Slot::Running(v) => Some(v.exits()),
            Slot::Ended(_, _, stats) => Some(*stats),
        }
    }

    /// The fence of these vCPUs, for [`MemSlots::set_fence`](crate::MemSlots::set_fence):
    /// a commit whose memslot deletions overlap its additions is then applied with every
    /// vCPU held out of `KVM_RUN` (QEMU's ioctl inhibit). The same gate serializes draining
    /// the VM's coalesced-MMIO ring.
    pub fn fence(&self) -> Arc<dyn UpdateFence> {
        self.gate.clone()
    }

    /// The gate behind [`fence`](Self::fence) (how often it had to kick vCPUs out).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The parked fds.
    pub fn pool(&self) -> &VcpuPool {
        &self.pool
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The VM.
    pub fn vm(&self) -> &Arc<VmFd> {
        &self.vm
    }
}

impl Drop for Hotplug {
    fn drop(&mut self) {
        for slot in 0..self.vcpus.len() {
            if self.vcpus[slot].is_some() {
                if let Err(e) = self.unplug(slot) {
                    tracing::warn!(slot, error = %e, "unplug at drop failed");
                }
            }
        }
    }
}

fn empty(slot: usize) -> Error {
    slot_error(slot, "no vCPU is plugged in that slot")
}

fn slot_error(slot: usize, what: &'static str) -> Error {
    Error::Slot { slot, what }
}
